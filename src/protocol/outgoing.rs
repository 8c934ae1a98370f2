//! What the server writes to a connection, in the connection's encoding: JSON lines joined with
//! `\n` in a text frame, or length-delimited Protobuf `Reply`s in a binary frame.

use bytes::Bytes;
use bytestring::ByteString;

use super::codes::ErrorBody;
use super::protobuf::{self, wire, ReplyBody};
use super::reply::{self, JoinLeave, SubRefreshResult, SubscribePush, UnsubscribePush};
use crate::domain::{ClientInfo, Publication};

/// The encoding a connection negotiated at its handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// `centrifuge-json` (the default).
    #[default]
    Json,
    /// `centrifuge-protobuf`.
    Protobuf,
}

/// An encoded WebSocket message, shared (reference-counted) by every connection it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A JSON text frame.
    Text(ByteString),
    /// A Protobuf binary frame.
    Binary(Bytes),
}

impl Frame {
    /// Bytes of the payload.
    pub fn len(&self) -> usize {
        match self {
            Frame::Text(text) => text.len(),
            Frame::Binary(bytes) => bytes.len(),
        }
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A push to one channel's subscribers (or, for `Refresh`, to the connection).
#[derive(Debug, Clone, Copy)]
pub enum Push<'a> {
    /// A publication.
    Publication(&'a Publication),
    /// Someone subscribed.
    Join(&'a ClientInfo),
    /// Someone unsubscribed.
    Leave(&'a ClientInfo),
    /// The server ended the subscription.
    Unsubscribe(&'a UnsubscribePush<'a>),
    /// A server-side subscription was added.
    Subscribe(&'a SubscribePush<'a>),
    /// The connection's expiry changed (server-side refresh); not tied to a channel.
    Refresh(&'a SubRefreshResult),
}

impl Push<'_> {
    /// The metrics `frame_type` of this push.
    pub fn frame_type(&self) -> &'static str {
        match self {
            Push::Publication(_) => "push_publication",
            Push::Join(_) => "push_join",
            Push::Leave(_) => "push_leave",
            Push::Unsubscribe(_) => "push_unsubscribe",
            Push::Subscribe(_) => "push_subscribe",
            Push::Refresh(_) => "push_refresh",
        }
    }

    fn json(&self, channel: &str) -> String {
        match self {
            Push::Publication(publication) => reply::push(channel, "pub", publication),
            Push::Join(info) => reply::push(channel, "join", &JoinLeave { info }),
            Push::Leave(info) => reply::push(channel, "leave", &JoinLeave { info }),
            Push::Unsubscribe(body) => reply::push(channel, "unsubscribe", body),
            Push::Subscribe(body) => reply::push(channel, "subscribe", body),
            Push::Refresh(body) => format!("{{\"push\":{{\"refresh\":{}}}}}", reply::to_json(body)),
        }
    }

    fn proto(&self, channel: &str) -> wire::Push {
        let mut push = wire::Push { channel: channel.to_owned(), ..Default::default() };
        match self {
            Push::Publication(publication) => push.r#pub = Some(protobuf::publication(publication)),
            Push::Join(info) => push.join = Some(wire::Join { info: Some(protobuf::client_info(info)) }),
            Push::Leave(info) => push.leave = Some(wire::Leave { info: Some(protobuf::client_info(info)) }),
            Push::Unsubscribe(body) => {
                push.unsubscribe = Some(wire::Unsubscribe { code: body.code, reason: body.reason.to_owned() })
            }
            Push::Subscribe(body) => {
                push.subscribe = Some(wire::Subscribe {
                    recoverable: body.recoverable,
                    epoch: body.epoch.to_owned(),
                    offset: body.offset,
                    positioned: body.positioned,
                    data: body.data.map(|raw| Bytes::copy_from_slice(raw.get().as_bytes())).unwrap_or_default(),
                })
            }
            Push::Refresh(body) => {
                push.channel.clear();
                push.refresh = Some(wire::Refresh { expires: body.expires, ttl: body.ttl });
            }
        }
        push
    }

    /// This push as a frame of its own, for channels that encode a push once per protocol.
    pub fn frame(&self, protocol: Protocol, channel: &str) -> Frame {
        match protocol {
            Protocol::Json => Frame::Text(self.json(channel).into()),
            Protocol::Protobuf => {
                let mut buf = Vec::new();
                protobuf::encode_push(&mut buf, self.proto(channel));
                Frame::Binary(buf.into())
            }
        }
    }
}

/// Replies and pushes waiting to be written together as one frame.
#[derive(Debug)]
pub enum Outgoing {
    /// JSON lines.
    Json(String),
    /// Delimited Protobuf replies.
    Protobuf(Vec<u8>),
}

impl Outgoing {
    /// An empty buffer for `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        match protocol {
            Protocol::Json => Outgoing::Json(String::new()),
            Protocol::Protobuf => Outgoing::Protobuf(Vec::new()),
        }
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        match self {
            Outgoing::Json(text) => text.len(),
            Outgoing::Protobuf(bytes) => bytes.len(),
        }
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a success reply; returns the bytes added.
    pub fn reply<T: ReplyBody + ?Sized>(&mut self, id: u32, method: &str, result: &T) -> usize {
        self.add(
            |text| text.push_str(&reply::reply(id, method, result)),
            |buf| protobuf::encode_reply(buf, id, method, result),
        )
    }

    /// Adds an error reply; returns the bytes added.
    pub fn error(&mut self, id: u32, error: &ErrorBody) -> usize {
        self.add(|text| text.push_str(&reply::error_reply(id, error)), |buf| protobuf::encode_error(buf, id, error))
    }

    /// Adds a push; returns the bytes added.
    pub fn push(&mut self, channel: &str, push: &Push<'_>) -> usize {
        self.add(|text| text.push_str(&push.json(channel)), |buf| protobuf::encode_push(buf, push.proto(channel)))
    }

    /// Adds a server ping; returns the bytes added.
    pub fn ping(&mut self) -> usize {
        self.add(|text| text.push_str(reply::PING), |buf| buf.extend_from_slice(protobuf::PING))
    }

    fn add(&mut self, json: impl FnOnce(&mut String), proto: impl FnOnce(&mut Vec<u8>)) -> usize {
        let before = self.len();
        match self {
            Outgoing::Json(text) => {
                if !text.is_empty() {
                    text.push('\n');
                }
                json(text);
            }
            Outgoing::Protobuf(buf) => proto(buf),
        }
        self.len() - before
    }

    /// Everything waiting, as one frame; `None` when nothing waits.
    pub fn take(&mut self) -> Option<Frame> {
        if self.is_empty() {
            return None;
        }
        Some(match self {
            Outgoing::Json(text) => Frame::Text(std::mem::take(text).into()),
            Outgoing::Protobuf(buf) => Frame::Binary(std::mem::take(buf).into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::reply::Empty;

    #[test]
    fn json_lines_are_joined_with_newlines_and_protobuf_replies_are_delimited() {
        let mut json = Outgoing::new(Protocol::Json);
        json.reply(1, "publish", &Empty {});
        json.ping();
        assert_eq!(
            json.take(),
            Some(Frame::Text(
                r#"{"id":1,"publish":{}}
{}"#
                .into()
            ))
        );
        assert_eq!(json.take(), None);
        let mut proto = Outgoing::new(Protocol::Protobuf);
        proto.reply(1, "publish", &Empty {});
        proto.ping();
        let Some(Frame::Binary(bytes)) = proto.take() else { panic!("a binary frame") };
        assert_eq!(&bytes[..], &[4, 0x08, 0x01, 0x42, 0x00, 0x00]);
    }

    #[test]
    fn a_publication_push_is_the_same_in_both_encodings() {
        let publication = Publication {
            data: serde_json::value::RawValue::from_string(r#"{"x":1}"#.into()).expect("json").into(),
            info: None,
            offset: 7,
            tags: Default::default(),
        };
        let push = Push::Publication(&publication);
        assert_eq!(
            push.frame(Protocol::Json, "news"),
            Frame::Text(r#"{"push":{"channel":"news","pub":{"data":{"x":1},"offset":7}}}"#.into())
        );
        let Frame::Binary(bytes) = push.frame(Protocol::Protobuf, "news") else { panic!("binary") };
        let replies = protobuf::decode_replies(&bytes).expect("decodes");
        let push = replies[0].push.as_ref().expect("a push");
        let decoded = push.r#pub.as_ref().expect("a publication");
        assert_eq!((push.channel.as_str(), &decoded.data[..], decoded.offset), ("news", &br#"{"x":1}"#[..], 7));
    }
}
