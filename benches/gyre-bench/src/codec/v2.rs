//! Centrifugo client protocol v2, JSON: `{"id":1,"connect":{"token":..}}`,
//! `{"id":2,"subscribe":{"channel":..}}`, pushes `{"push":{"channel":..,"pub":{"data":..}}}`,
//! server pings `{}` answered with `{}`.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{quoted, Incoming, ReplyError, Stamp};

pub fn connect(token: &str) -> String {
    format!(r#"{{"id":1,"connect":{{"token":{}}}}}"#, quoted(token))
}

pub fn subscribe(id: u32, channel: &str) -> String {
    format!(r#"{{"id":{id},"subscribe":{{"channel":{}}}}}"#, quoted(channel))
}

/// A client publish command; `data` is a JSON value.
pub fn publish(id: u32, channel: &str, data: &str) -> String {
    format!(r#"{{"id":{id},"publish":{{"channel":{},"data":{data}}}}}"#, quoted(channel))
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    id: u32,
    error: Option<ReplyError>,
    #[serde(borrow)]
    push: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Push {
    #[serde(rename = "pub")]
    publication: Option<Publication>,
}

#[derive(Deserialize)]
struct Publication {
    data: Stamp,
}

pub fn decode(line: &[u8]) -> Result<Incoming, serde_json::Error> {
    let envelope: Envelope<'_> = serde_json::from_slice(line)?;
    if envelope.id > 0 {
        return Ok(Incoming::Reply { id: envelope.id, error: envelope.error });
    }
    if let Some(push) = envelope.push {
        let push: Push = serde_json::from_str(push.get())?;
        return Ok(push.publication.map_or(Incoming::Other, |p| Incoming::Publication(p.data)));
    }
    if envelope.error.is_none() && line.iter().filter(|b| !b.is_ascii_whitespace()).eq(b"{}".iter()) {
        return Ok(Incoming::Ping);
    }
    Ok(Incoming::Other)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(connect("a.b.c"), r#"{"id":1,"connect":{"token":"a.b.c"}}"#);
        assert_eq!(subscribe(2, "chat"), r#"{"id":2,"subscribe":{"channel":"chat"}}"#);
        assert_eq!(publish(7, "ns:c", r#"{"t":1}"#), r#"{"id":7,"publish":{"channel":"ns:c","data":{"t":1}}}"#);
    }

    #[test]
    fn decodes_replies_pushes_and_pings() {
        assert_eq!(
            decode(br#"{"id":1,"connect":{"client":"x","version":"0.1","ping":25,"pong":true}}"#).ok(),
            Some(Incoming::Reply { id: 1, error: None })
        );
        let refused = decode(br#"{"id":2,"error":{"code":103,"message":"permission denied"}}"#).ok();
        assert_eq!(
            refused,
            Some(Incoming::Reply { id: 2, error: Some(ReplyError { code: 103, message: "permission denied".into() }) })
        );
        let push = br#"{"push":{"channel":"c","pub":{"data":{"t":1700000000000000000,"s":3,"p":"xx"},"offset":7}}}"#;
        assert_eq!(decode(push).ok(), Some(Incoming::Publication(Stamp { t: 1_700_000_000_000_000_000, s: 3 })));
        assert_eq!(decode(br#"{"push":{"channel":"c","join":{"info":{"user":"u"}}}}"#).ok(), Some(Incoming::Other));
        assert_eq!(decode(b"{}").ok(), Some(Incoming::Ping));
        assert!(decode(b"not json").is_err());
    }
}
