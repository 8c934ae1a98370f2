//! The two client protocols the loader speaks: Centrifugo protocol v2 JSON (gyre) and the
//! centrifuge 0.15 library's protocol v1 JSON (the Go peer). Both put several messages in one
//! WebSocket frame separated by newlines; `decode_frame` splits them.

pub mod v1;
pub mod v2;

use serde::Deserialize;

/// Which wire shape to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    V2,
    V1,
}

/// The timestamp and step number the publisher put into a publication's data.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
pub struct Stamp {
    /// Publish time, ns since the Unix epoch.
    #[serde(default)]
    pub t: u64,
    /// Step (rate) the publication belongs to.
    #[serde(default)]
    pub s: u32,
}

/// An error object in a reply.
#[derive(Debug, Deserialize, PartialEq, Eq)]
pub struct ReplyError {
    #[serde(default)]
    pub code: u32,
    #[serde(default)]
    pub message: String,
}

/// One message received from the server.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming {
    /// The reply to command `id`, with its error if the command failed.
    Reply { id: u32, error: Option<ReplyError> },
    /// A publication pushed on a subscribed channel.
    Publication(Stamp),
    /// A protocol-v2 ping (an empty `{}`); must be answered with `{}`.
    Ping,
    /// Anything else (join/leave pushes, other data): ignored.
    Other,
}

impl Protocol {
    /// The connect command (id 1) carrying a JWT.
    pub fn connect(self, token: &str) -> String {
        match self {
            Protocol::V2 => v2::connect(token),
            Protocol::V1 => v1::connect(token),
        }
    }

    /// Subscribe commands (ids 2, 3, …) for `channels`, newline-batched in one frame.
    pub fn subscribe(self, channels: &[String]) -> String {
        let commands: Vec<String> = channels
            .iter()
            .enumerate()
            .map(|(i, channel)| {
                let id = i as u32 + 2;
                match self {
                    Protocol::V2 => v2::subscribe(id, channel),
                    Protocol::V1 => v1::subscribe(id, channel),
                }
            })
            .collect();
        commands.join("\n")
    }

    /// The answer to a server ping, if this protocol has application-level pings.
    pub fn pong(self) -> &'static str {
        "{}"
    }

    /// Decodes one line of a frame. Malformed lines are an error with the line quoted.
    pub fn decode(self, line: &[u8]) -> Result<Incoming, String> {
        let decoded = match self {
            Protocol::V2 => v2::decode(line),
            Protocol::V1 => v1::decode(line),
        };
        decoded.map_err(|e| format!("cannot decode {:?}: {e}", String::from_utf8_lossy(line)))
    }

    /// Decodes every newline-separated message of a frame.
    pub fn decode_frame(self, frame: &[u8]) -> impl Iterator<Item = Result<Incoming, String>> + '_ {
        frame.split(|&b| b == b'\n').filter(|line| !line.is_empty()).map(move |line| self.decode(line))
    }
}

/// JSON string literal for `value` (channel names and tokens may need escaping).
fn quoted(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}
