//! NATS subject names, derived from one prefix (`broker.nats.prefix`, default `centrifugo`), as
//! Centrifugo's NATS broker names them:
//!
//! * `<prefix>.client.<channel>` — publications, join and leave of one channel;
//! * `<prefix>.control` — control messages to every node;
//! * `<prefix>.node.<node-uid>` — replies meant for one node (surveys).
//!
//! A channel name becomes exactly one subject token with a reversible escape: bytes outside
//! `[A-Za-z0-9_-]` are written as `=XX` (upper-case hex), so `.`, `*`, `>`, spaces and `:` can never
//! change the subject's meaning (`news.>` is not a wildcard, `chat:index` → `chat=3Aindex`).

use std::fmt::Write as _;

/// Subject names of one cluster.
#[derive(Debug, Clone)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// Subjects under `prefix`.
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.to_owned() }
    }

    /// Traffic of one channel.
    pub fn channel(&self, channel: &str) -> String {
        format!("{}.client.{}", self.prefix, encode_token(channel))
    }

    /// Control messages for every node.
    pub fn control(&self) -> String {
        format!("{}.control", self.prefix)
    }

    /// Messages for one node.
    pub fn node(&self, uid: &str) -> String {
        format!("{}.node.{}", self.prefix, encode_token(uid))
    }
}

/// Escapes a name into one safe subject token.
pub fn encode_token(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for byte in name.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' => out.push(byte as char),
            _ => {
                let _ = write!(out, "={byte:02X}");
            }
        }
    }
    if out.is_empty() {
        // Subjects need non-empty tokens; a lone `=` cannot come from a non-empty name.
        out.push('=');
    }
    out
}

/// Reverses [`encode_token`]; `None` for tokens this node could not have produced.
pub fn decode_token(token: &str) -> Option<String> {
    if token == "=" {
        return Some(String::new());
    }
    let bytes = token.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' {
            let hex = token.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_become_one_safe_token() {
        let s = Subjects::new("centrifugo");
        assert_eq!(s.channel("chat:index"), "centrifugo.client.chat=3Aindex");
        assert_eq!(s.channel("news.>"), "centrifugo.client.news=2E=3E");
        assert_eq!(s.channel("a b*"), "centrifugo.client.a=20b=2A");
        assert_eq!(s.control(), "centrifugo.control");
    }

    #[test]
    fn encoding_round_trips_any_name() {
        for name in ["chat:index", "$priv:x#1,2", "ünï", "a.b.c", "=3A", ""] {
            assert_eq!(decode_token(&encode_token(name)).as_deref(), Some(name), "{name}");
        }
        assert_eq!(decode_token("bad=Z1"), None);
    }
}
