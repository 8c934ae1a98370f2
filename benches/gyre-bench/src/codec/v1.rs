//! The centrifuge 0.15 library's client protocol v1, JSON (what the Go peer speaks):
//! `{"id":1,"params":{"token":..}}`, `{"id":2,"method":1,"params":{"channel":..}}`, replies
//! `{"id":N,"result":{..}}`, publication pushes `{"result":{"channel":..,"data":{"data":..}}}`
//! (other push types carry a numeric `type`). Pings are WebSocket control frames.

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{quoted, Incoming, ReplyError, Stamp};

pub fn connect(token: &str) -> String {
    format!(r#"{{"id":1,"params":{{"token":{}}}}}"#, quoted(token))
}

pub fn subscribe(id: u32, channel: &str) -> String {
    format!(r#"{{"id":{id},"method":1,"params":{{"channel":{}}}}}"#, quoted(channel))
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default)]
    id: u32,
    error: Option<ReplyError>,
    #[serde(borrow)]
    result: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Push {
    /// 0 (absent) = publication; join, leave, unsub, … have other numbers.
    #[serde(rename = "type", default)]
    kind: u32,
    data: Option<Publication>,
}

#[derive(Deserialize)]
struct Publication {
    /// Join/leave pushes carry `info` here instead.
    #[serde(default)]
    data: Option<Stamp>,
}

pub fn decode(line: &[u8]) -> Result<Incoming, serde_json::Error> {
    let envelope: Envelope<'_> = serde_json::from_slice(line)?;
    if envelope.id > 0 {
        return Ok(Incoming::Reply { id: envelope.id, error: envelope.error });
    }
    let Some(result) = envelope.result else {
        return Ok(Incoming::Other);
    };
    let push: Push = serde_json::from_str(result.get())?;
    Ok(match push.data {
        Some(Publication { data: Some(stamp) }) if push.kind == 0 => Incoming::Publication(stamp),
        _ => Incoming::Other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands() {
        assert_eq!(connect("a.b.c"), r#"{"id":1,"params":{"token":"a.b.c"}}"#);
        assert_eq!(subscribe(2, "chat"), r#"{"id":2,"method":1,"params":{"channel":"chat"}}"#);
    }

    #[test]
    fn decodes_replies_and_pushes() {
        assert_eq!(
            decode(br#"{"id":1,"result":{"client":"c1","version":"0.0.0"}}"#).ok(),
            Some(Incoming::Reply { id: 1, error: None })
        );
        assert!(matches!(
            decode(br#"{"id":1,"error":{"code":109,"message":"token expired"}}"#),
            Ok(Incoming::Reply { id: 1, error: Some(ReplyError { code: 109, .. }) })
        ));
        let push = br#"{"result":{"channel":"chat","data":{"data":{"t":42,"s":1,"p":"x"}}}}"#;
        assert_eq!(decode(push).ok(), Some(Incoming::Publication(Stamp { t: 42, s: 1 })));
        let join = br#"{"result":{"type":2,"channel":"chat","data":{"info":{"user":"u"}}}}"#;
        assert_eq!(decode(join).ok(), Some(Incoming::Other));
    }

    #[test]
    fn frames_split_on_newlines() {
        let frame = b"{\"id\":1,\"result\":{}}\n{\"result\":{\"channel\":\"c\",\"data\":{\"data\":{\"t\":5}}}}\n";
        let all: Vec<_> = super::super::Protocol::V1.decode_frame(frame).collect();
        assert_eq!(all.len(), 2);
        assert_eq!(all[1], Ok(Incoming::Publication(Stamp { t: 5, s: 0 })));
    }
}
