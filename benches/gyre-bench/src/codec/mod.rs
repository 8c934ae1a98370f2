//! The client protocols the loader speaks: Centrifugo protocol v2 (gyre) and the centrifuge 0.15
//! library's protocol v1 (the Go peer), each in JSON (several messages per text frame, separated
//! by newlines) or Protobuf (varint-delimited messages per binary frame, `?format=protobuf`);
//! `decode_frame` splits a frame into its messages.

pub mod pb;
pub mod v1;
pub mod v2;

use serde::Deserialize;

/// Which wire shape to speak.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    V2,
    V1,
    /// v2 in Protobuf.
    V2pb,
    /// v1 in Protobuf.
    V1pb,
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
    /// Binary frames of varint-delimited Protobuf messages (else JSON lines in text frames).
    pub fn is_protobuf(self) -> bool {
        matches!(self, Protocol::V2pb | Protocol::V1pb)
    }

    /// The query that selects the encoding on the connection URL.
    pub fn query(self) -> &'static str {
        if self.is_protobuf() {
            "?format=protobuf"
        } else {
            ""
        }
    }

    /// The connect command (id 1) carrying a JWT.
    pub fn connect(self, token: &str) -> Vec<u8> {
        match self {
            Protocol::V2 => v2::connect(token).into_bytes(),
            Protocol::V1 => v1::connect(token).into_bytes(),
            Protocol::V2pb => pb::connect(false, Some(token)),
            Protocol::V1pb => pb::connect(true, Some(token)),
        }
    }

    /// The connect command (id 1) without a token (a server with a connect proxy asks it).
    pub fn connect_tokenless(self) -> Vec<u8> {
        match self {
            Protocol::V2 => br#"{"id":1,"connect":{}}"#.to_vec(),
            Protocol::V1 => br#"{"id":1,"params":{}}"#.to_vec(),
            Protocol::V2pb => pb::connect(false, None),
            Protocol::V1pb => pb::connect(true, None),
        }
    }

    /// Subscribe commands (ids 2, 3, …) for `channels`, batched in one frame.
    pub fn subscribe(self, channels: &[String]) -> Vec<u8> {
        let json = |command: fn(u32, &str) -> String| {
            let commands: Vec<String> =
                channels.iter().enumerate().map(|(i, channel)| command(i as u32 + 2, channel)).collect();
            commands.join("\n").into_bytes()
        };
        match self {
            Protocol::V2 => json(v2::subscribe),
            Protocol::V1 => json(v1::subscribe),
            Protocol::V2pb => pb::subscribe(false, channels),
            Protocol::V1pb => pb::subscribe(true, channels),
        }
    }

    /// The answer to a server ping.
    pub fn pong(self) -> &'static [u8] {
        if self.is_protobuf() {
            pb::PONG
        } else {
            b"{}"
        }
    }

    /// Decodes one message of a frame. Malformed messages are an error with the bytes quoted.
    pub fn decode(self, message: &[u8]) -> Result<Incoming, String> {
        let decoded = match self {
            Protocol::V2 => v2::decode(message).map_err(|e| e.to_string()),
            Protocol::V1 => v1::decode(message).map_err(|e| e.to_string()),
            Protocol::V2pb => pb::decode(false, message),
            Protocol::V1pb => pb::decode(true, message),
        };
        decoded.map_err(|e| format!("cannot decode {:?}: {e}", String::from_utf8_lossy(message)))
    }

    /// Decodes every message of a frame.
    pub fn decode_frame(self, frame: &[u8]) -> impl Iterator<Item = Result<Incoming, String>> + '_ {
        Messages { frame, protobuf: self.is_protobuf() }.map(move |message| message.and_then(|m| self.decode(m)))
    }
}

/// The messages of one frame: JSON lines, or varint-delimited Protobuf messages.
struct Messages<'a> {
    frame: &'a [u8],
    protobuf: bool,
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<&'a [u8], String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.protobuf {
            let (message, rest) = match pb::next_delimited(self.frame)? {
                Ok(split) => split,
                Err(error) => {
                    self.frame = &[];
                    return Some(Err(error));
                }
            };
            self.frame = rest;
            return Some(Ok(message));
        }
        loop {
            if self.frame.is_empty() {
                return None;
            }
            let end = self.frame.iter().position(|&b| b == b'\n').unwrap_or(self.frame.len());
            let line = &self.frame[..end];
            self.frame = self.frame.get(end + 1..).unwrap_or_default();
            if !line.is_empty() {
                return Some(Ok(line));
            }
        }
    }
}

/// JSON string literal for `value` (channel names and tokens may need escaping).
pub fn quoted(value: &str) -> String {
    serde_json::Value::from(value).to_string()
}
