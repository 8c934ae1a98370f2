//! API error codes and messages (protocol-server.md §1.5), which differ slightly from the
//! client protocol's (104 is "not found" here).

use actix_web::http::StatusCode;
use serde::Serialize;

use crate::protocol::ReplyError;

/// An error inside a 200 body (or a status in transport mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// 100.
    #[error("internal server error")]
    Internal,
    /// 102.
    #[error("unknown channel")]
    UnknownChannel,
    /// 104.
    #[error("not found")]
    NotFound,
    /// 106: the node holds `node.channel_limit` channels already.
    #[error("limit exceeded")]
    LimitExceeded,
    /// 107.
    #[error("bad request")]
    BadRequest,
    /// 108.
    #[error("not available")]
    NotAvailable,
    /// 112.
    #[error("unrecoverable position")]
    UnrecoverablePosition,
    /// The result holds data the JSON API cannot carry (binary payloads): Centrifugo's encoder
    /// fails and the whole response is HTTP 500 `Internal Server Error`, in every error mode.
    #[error("internal server error")]
    Unencodable,
}

/// Wire form `{"code":N,"message":"..."}`.
#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub(super) code: u32,
    pub(super) message: String,
}

impl ApiError {
    /// Numeric code.
    pub fn code(self) -> u32 {
        match self {
            Self::Internal | Self::Unencodable => 100,
            Self::UnknownChannel => 102,
            Self::NotFound => 104,
            Self::LimitExceeded => 106,
            Self::BadRequest => 107,
            Self::NotAvailable => 108,
            Self::UnrecoverablePosition => 112,
        }
    }

    /// HTTP status in transport error mode.
    pub fn http_status(self) -> StatusCode {
        match self {
            Self::UnknownChannel | Self::NotFound => StatusCode::NOT_FOUND,
            Self::BadRequest | Self::NotAvailable => StatusCode::BAD_REQUEST,
            Self::UnrecoverablePosition => StatusCode::RANGE_NOT_SATISFIABLE,
            Self::LimitExceeded => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal | Self::Unencodable => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub(super) fn to_wire(self) -> ErrorBody {
        ErrorBody { code: self.code(), message: self.to_string() }
    }
}

impl From<ReplyError> for ApiError {
    fn from(error: ReplyError) -> Self {
        match error {
            ReplyError::UnknownChannel => Self::UnknownChannel,
            ReplyError::BadRequest => Self::BadRequest,
            ReplyError::NotAvailable => Self::NotAvailable,
            ReplyError::UnrecoverablePosition => Self::UnrecoverablePosition,
            ReplyError::MethodNotFound => Self::NotFound,
            ReplyError::LimitExceeded => Self::LimitExceeded,
            _ => Self::Internal,
        }
    }
}
