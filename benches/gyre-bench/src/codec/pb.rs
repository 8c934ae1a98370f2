//! The Protobuf encodings of both protocols, written by hand for the few messages the loader
//! needs (no code generation): varint-length-delimited messages in binary frames.
//!
//! * v2 (Centrifugo, `centrifuge-protobuf`): `Command{id=1, connect=4{token=1},
//!   subscribe=5{channel=1}}`; `Reply{id=1, error=2{code=1, message=2}, push=4{channel=2,
//!   pub=4{data=4}}}`; an empty `Reply` is a server ping, answered with an empty `Command`.
//! * v1 (centrifuge 0.15, `?format=protobuf`): `Command{id=1, method=2, params=3}` with the
//!   request encoded in `params`; `Reply{id=1, error=2, result=3}`, a push being a `Reply` without
//!   id whose result is `Push{type=1 (0 = publication), channel=2, data=3 = Publication{data=4}}`.
//!
//! The publication data itself is the JSON stamp the publisher sent through the HTTP API.

use super::{Incoming, ReplyError, Stamp};

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_varint(out, u64::from(field << 3 | 2));
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

fn put_uint(out: &mut Vec<u8>, field: u32, value: u64) {
    if value != 0 {
        put_varint(out, u64::from(field << 3));
        put_varint(out, value);
    }
}

/// Appends `message` with its length prefix.
fn delimited(out: &mut Vec<u8>, message: &[u8]) {
    put_varint(out, message.len() as u64);
    out.extend_from_slice(message);
}

fn command_v2(id: u32, field: u32, request: &[u8]) -> Vec<u8> {
    let mut command = Vec::new();
    put_uint(&mut command, 1, u64::from(id));
    put_bytes(&mut command, field, request);
    command
}

fn command_v1(id: u32, method: u64, params: &[u8]) -> Vec<u8> {
    let mut command = Vec::new();
    put_uint(&mut command, 1, u64::from(id));
    put_uint(&mut command, 2, method);
    put_bytes(&mut command, 3, params);
    command
}

fn string_field(value: &str) -> Vec<u8> {
    let mut message = Vec::new();
    put_bytes(&mut message, 1, value.as_bytes());
    message
}

/// The connect command (id 1), delimited; without a token its request is empty.
pub fn connect(v1: bool, token: Option<&str>) -> Vec<u8> {
    let request = token.map(string_field).unwrap_or_default();
    let command = if v1 { command_v1(1, 0, &request) } else { command_v2(1, 4, &request) };
    let mut out = Vec::new();
    delimited(&mut out, &command);
    out
}

/// Subscribe commands (ids 2, 3, …), delimited back to back in one frame.
pub fn subscribe(v1: bool, channels: &[String]) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, channel) in channels.iter().enumerate() {
        let id = i as u32 + 2;
        let request = string_field(channel);
        let command = if v1 { command_v1(id, 1, &request) } else { command_v2(id, 5, &request) };
        delimited(&mut out, &command);
    }
    out
}

/// The answer to a v2 server ping: an empty command.
pub const PONG: &[u8] = &[0];

/// One field of a message: number and value (varint or bytes).
enum Value<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(bytes: &[u8], at: &mut usize) -> Result<u64, String> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *bytes.get(*at).ok_or("truncated varint")?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err("varint too long".into())
}

/// The fields of one message, in order; unknown wire types are an error.
fn fields(bytes: &[u8]) -> Result<Vec<(u32, Value<'_>)>, String> {
    let mut at = 0;
    let mut out = Vec::new();
    while at < bytes.len() {
        let key = varint(bytes, &mut at)?;
        let field = (key >> 3) as u32;
        let value = match key & 7 {
            0 => Value::Varint(varint(bytes, &mut at)?),
            2 => {
                let len = varint(bytes, &mut at)? as usize;
                let end = at.checked_add(len).filter(|&end| end <= bytes.len()).ok_or("field past the end")?;
                let value = Value::Bytes(&bytes[at..end]);
                at = end;
                value
            }
            1 => {
                at += 8;
                continue;
            }
            5 => {
                at += 4;
                continue;
            }
            other => return Err(format!("wire type {other}")),
        };
        out.push((field, value));
    }
    Ok(out)
}

fn bytes_of<'a>(fields: &[(u32, Value<'a>)], number: u32) -> Option<&'a [u8]> {
    fields.iter().find_map(|(n, v)| match v {
        Value::Bytes(b) if *n == number => Some(*b),
        _ => None,
    })
}

fn uint_of(fields: &[(u32, Value<'_>)], number: u32) -> u64 {
    fields
        .iter()
        .find_map(|(n, v)| match v {
            Value::Varint(x) if *n == number => Some(*x),
            _ => None,
        })
        .unwrap_or(0)
}

fn error_of(fields: &[(u32, Value<'_>)]) -> Result<Option<ReplyError>, String> {
    let Some(error) = bytes_of(fields, 2) else { return Ok(None) };
    let error = self::fields(error)?;
    let message = bytes_of(&error, 2).map(|m| String::from_utf8_lossy(m).into_owned()).unwrap_or_default();
    Ok(Some(ReplyError { code: uint_of(&error, 1) as u32, message }))
}

/// The stamp in a publication's data (JSON, as the publisher sent it).
fn stamp(publication: &[u8]) -> Result<Incoming, String> {
    let data = bytes_of(&fields(publication)?, 4).unwrap_or_default();
    serde_json::from_slice::<Stamp>(data).map(Incoming::Publication).map_err(|e| e.to_string())
}

/// Decodes one `Reply`.
pub fn decode(v1: bool, reply: &[u8]) -> Result<Incoming, String> {
    if reply.is_empty() {
        return Ok(if v1 { Incoming::Other } else { Incoming::Ping });
    }
    let fields = fields(reply)?;
    let id = uint_of(&fields, 1) as u32;
    if id > 0 {
        return Ok(Incoming::Reply { id, error: error_of(&fields)? });
    }
    if v1 {
        let Some(push) = bytes_of(&fields, 3) else { return Ok(Incoming::Other) };
        let push = self::fields(push)?;
        return match (uint_of(&push, 1), bytes_of(&push, 3)) {
            (0, Some(publication)) => stamp(publication),
            _ => Ok(Incoming::Other),
        };
    }
    let Some(push) = bytes_of(&fields, 4) else { return Ok(Incoming::Other) };
    match bytes_of(&self::fields(push)?, 4) {
        Some(publication) => stamp(publication),
        None => Ok(Incoming::Other),
    }
}

/// A message and the bytes after it.
type Split<'a> = (&'a [u8], &'a [u8]);

/// The first delimited message of `frame` and what follows it; `None` when `frame` is empty.
pub fn next_delimited(frame: &[u8]) -> Option<Result<Split<'_>, String>> {
    if frame.is_empty() {
        return None;
    }
    let mut at = 0;
    Some(varint(frame, &mut at).and_then(|len| {
        let end = at.checked_add(len as usize).filter(|&end| end <= frame.len()).ok_or("message past the end")?;
        Ok((&frame[at..end], &frame[end..]))
    }))
}

/// Splits a frame into its delimited messages.
#[cfg(test)]
fn split(mut frame: &[u8]) -> impl Iterator<Item = Result<&[u8], String>> + '_ {
    std::iter::from_fn(move || match next_delimited(frame)? {
        Ok((message, rest)) => {
            frame = rest;
            Some(Ok(message))
        }
        Err(error) => {
            frame = &[];
            Some(Err(error))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(fields: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        delimited(&mut out, fields);
        out
    }

    #[test]
    fn v2_commands_and_replies() {
        // {id: 1, connect: {token: "t"}}
        assert_eq!(connect(false, Some("t")), vec![7, 0x08, 1, 0x22, 3, 0x0a, 1, b't']);
        // {id: 1, connect: {}}
        assert_eq!(connect(false, None), vec![4, 0x08, 1, 0x22, 0]);
        let frame = subscribe(false, &["a".into(), "b".into()]);
        let commands: Vec<&[u8]> = split(&frame).collect::<Result<_, _>>().expect("delimited");
        assert_eq!(commands, vec![&[0x08, 2, 0x2a, 3, 0x0a, 1, b'a'][..], &[0x08, 3, 0x2a, 3, 0x0a, 1, b'b'][..]]);
        assert_eq!(decode(false, &[]), Ok(Incoming::Ping));
        // {id: 2, error: {code: 103, message: "x"}}
        let refused = [0x08, 2, 0x12, 5, 0x08, 103, 0x12, 1, b'x'];
        assert_eq!(
            decode(false, &refused),
            Ok(Incoming::Reply { id: 2, error: Some(ReplyError { code: 103, message: "x".into() }) })
        );
        // {push: {channel: "c", pub: {data: {"t":5,"s":2}}}}
        let data = br#"{"t":5,"s":2}"#;
        let mut publication = Vec::new();
        put_bytes(&mut publication, 4, data);
        let mut push = Vec::new();
        put_bytes(&mut push, 2, b"c");
        put_bytes(&mut push, 4, &publication);
        let mut message = Vec::new();
        put_bytes(&mut message, 4, &push);
        let frame = reply(&message);
        let decoded: Vec<Incoming> =
            split(&frame).map(|r| decode(false, r.expect("split")).expect("decodes")).collect();
        assert_eq!(decoded, vec![Incoming::Publication(Stamp { t: 5, s: 2 })]);
    }

    #[test]
    fn v1_commands_and_pushes() {
        // {id: 2, method: SUBSCRIBE (1), params: {channel: "a"}}
        assert_eq!(subscribe(true, &["a".into()]), vec![9, 0x08, 2, 0x10, 1, 0x1a, 3, 0x0a, 1, b'a']);
        let mut publication = Vec::new();
        put_bytes(&mut publication, 4, br#"{"t":9,"s":1}"#);
        let mut push = Vec::new();
        put_bytes(&mut push, 2, b"c");
        put_bytes(&mut push, 3, &publication);
        let mut message = Vec::new();
        put_bytes(&mut message, 3, &push);
        assert_eq!(decode(true, &message), Ok(Incoming::Publication(Stamp { t: 9, s: 1 })));
        let mut join = Vec::new();
        put_uint(&mut join, 1, 1);
        let mut message = Vec::new();
        put_bytes(&mut message, 3, &join);
        assert_eq!(decode(true, &message), Ok(Incoming::Other));
        assert!(split(&[5, 1]).next().is_some_and(|r| r.is_err()));
    }
}
