//! The one table of client-visible codes: command errors and disconnects.
//!
//! Mirrors centrifuge `errors.go` and `disconnect.go` (protocol-client.md §5). Numbers and
//! messages appear nowhere else in the crate.

use std::borrow::Cow;

use serde::Serialize;

/// An error answered to one command (`{"id":N,"error":{...}}`); the connection stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// 100, temporary: server failure.
    #[error("internal server error")]
    Internal,
    /// 101: request unauthorized.
    #[error("unauthorized")]
    Unauthorized,
    /// 102: the channel's namespace is not configured.
    #[error("unknown channel")]
    UnknownChannel,
    /// 103: no permission.
    #[error("permission denied")]
    PermissionDenied,
    /// 104: RPC method unknown.
    #[error("method not found")]
    MethodNotFound,
    /// 105: second subscribe to the same channel.
    #[error("already subscribed")]
    AlreadySubscribed,
    /// 106: too many subscriptions on one connection.
    #[error("limit exceeded")]
    LimitExceeded,
    /// 107: malformed but parseable request.
    #[error("bad request")]
    BadRequest,
    /// 108: the feature is off for this channel.
    #[error("not available")]
    NotAvailable,
    /// 109: token expired (SDKs fetch a new one and retry).
    #[error("token expired")]
    TokenExpired,
    /// 110: expiry in the past.
    #[error("expired")]
    Expired,
    /// 111, temporary: rate limited.
    #[error("too many requests")]
    TooManyRequests,
    /// 112: recovery impossible, or history epoch mismatch.
    #[error("unrecoverable position")]
    UnrecoverablePosition,
}

impl ReplyError {
    /// The numeric code on the wire.
    pub const fn code(self) -> u32 {
        match self {
            Self::Internal => 100,
            Self::Unauthorized => 101,
            Self::UnknownChannel => 102,
            Self::PermissionDenied => 103,
            Self::MethodNotFound => 104,
            Self::AlreadySubscribed => 105,
            Self::LimitExceeded => 106,
            Self::BadRequest => 107,
            Self::NotAvailable => 108,
            Self::TokenExpired => 109,
            Self::Expired => 110,
            Self::TooManyRequests => 111,
            Self::UnrecoverablePosition => 112,
        }
    }

    /// SDKs retry temporary errors.
    pub const fn temporary(self) -> bool {
        matches!(self, Self::Internal | Self::TooManyRequests)
    }

    /// The wire object `{"code":N,"message":"...","temporary":true?}`.
    pub fn to_wire(self) -> ErrorBody {
        ErrorBody { code: self.code(), message: self.to_string(), temporary: self.temporary() }
    }
}

/// Wire form of an error; `message` is never empty (Py SDK reads it unconditionally).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorBody {
    /// Error code.
    pub code: u32,
    /// Human-readable message.
    pub message: String,
    /// Whether SDKs should retry.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub temporary: bool,
}

/// Why the server closes a connection: the WebSocket close code and reason.
///
/// 3000–3499 and 4000–4499 let SDKs reconnect; 3500–3999 and 4500–4999 are terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Disconnect {
    /// Close code.
    pub code: u16,
    /// Close reason: plain words, ≤ 123 bytes, never valid JSON (SDKs JSON-parse it first).
    pub reason: Cow<'static, str>,
}

macro_rules! disconnects {
    ($($name:ident = $code:literal, $reason:literal;)*) => {
        impl Disconnect {
            $(
                #[doc = concat!($code, " \"", $reason, "\"")]
                pub const $name: Disconnect = Disconnect { code: $code, reason: Cow::Borrowed($reason) };
            )*
        }
    };
}

disconnects! {
    PROTOCOL_ERROR = 1002, "protocol error";
    INVALID_UTF8 = 1007, "invalid UTF-8";
    MESSAGE_TOO_BIG = 1009, "message too big";
    SHUTDOWN = 3001, "shutdown";
    SERVER_ERROR = 3004, "internal server error";
    EXPIRED = 3005, "connection expired";
    SUBSCRIPTION_EXPIRED = 3006, "subscription expired";
    SLOW = 3008, "slow";
    WRITE_ERROR = 3009, "write error";
    INSUFFICIENT_STATE = 3010, "insufficient state";
    FORCE_RECONNECT = 3011, "force reconnect";
    NO_PONG = 3012, "no pong";
    TOO_MANY_REQUESTS = 3013, "too many requests";
    INVALID_TOKEN = 3500, "invalid token";
    BAD_REQUEST = 3501, "bad request";
    STALE = 3502, "stale";
    FORCE_NO_RECONNECT = 3503, "force disconnect";
    CONNECTION_LIMIT = 3504, "connection limit";
    CHANNEL_LIMIT = 3505, "channel limit";
    INAPPROPRIATE_PROTOCOL = 3506, "inappropriate protocol";
    PERMISSION_DENIED = 3507, "permission denied";
    NOT_AVAILABLE = 3508, "not available";
}

impl Disconnect {
    /// A custom disconnect (server API); the reason is cut to fit a close frame.
    pub fn custom(code: u16, reason: &str) -> Self {
        Self { code, reason: Cow::Owned(fit_close_reason(reason)) }
    }

    /// Whether SDKs reconnect after this code.
    pub fn reconnect(&self) -> bool {
        matches!(self.code, 3000..=3499 | 4000..=4499) || self.code < 3000 || self.code >= 5000
    }
}

/// Close reasons must fit a close frame (123 bytes) and be cut on a char boundary.
fn fit_close_reason(reason: &str) -> String {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_wire_form_has_message_and_temporary_only_when_true() {
        let json = serde_json::to_string(&ReplyError::PermissionDenied.to_wire()).unwrap();
        assert_eq!(json, r#"{"code":103,"message":"permission denied"}"#);
        let json = serde_json::to_string(&ReplyError::Internal.to_wire()).unwrap();
        assert_eq!(json, r#"{"code":100,"message":"internal server error","temporary":true}"#);
    }

    #[test]
    fn reconnect_follows_code_ranges() {
        assert!(Disconnect::SHUTDOWN.reconnect());
        assert!(Disconnect::NO_PONG.reconnect());
        assert!(!Disconnect::INVALID_TOKEN.reconnect());
        assert!(Disconnect::custom(4000, "x").reconnect());
        assert!(!Disconnect::custom(4500, "x").reconnect());
    }

    #[test]
    fn custom_reason_is_cut_to_fit_a_close_frame() {
        let long = "é".repeat(100);
        let d = Disconnect::custom(4000, &long);
        assert!(d.reason.len() <= 123);
        assert!(d.reason.chars().all(|c| c == 'é'));
    }
}
