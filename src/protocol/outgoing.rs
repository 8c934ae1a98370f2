//! What the server writes to a connection, in the connection's encoding: JSON lines joined with
//! `\n` in a text frame, or length-delimited Protobuf `Reply`s in a binary frame.

use bytes::Bytes;
use bytestring::ByteString;

use super::codes::ErrorBody;
use super::protobuf::{self, wire, ReplyBody};
use super::reply::{self, JoinLeave, NotJson, SubRefreshResult, SubscribePush, UnsubscribePush};
use crate::domain::{ClientInfo, Payload, Publication};

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

    fn json(&self, channel: &str) -> Result<String, NotJson> {
        match self {
            Push::Publication(publication) => reply::push(channel, "pub", publication),
            Push::Join(info) => reply::push(channel, "join", &JoinLeave { info }),
            Push::Leave(info) => reply::push(channel, "leave", &JoinLeave { info }),
            Push::Unsubscribe(body) => reply::push(channel, "unsubscribe", body),
            Push::Subscribe(body) => reply::push(channel, "subscribe", body),
            Push::Refresh(body) => Ok(format!("{{\"push\":{{\"refresh\":{}}}}}", reply::to_json(body))),
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
                    data: body.data.map(Payload::to_bytes).unwrap_or_default(),
                })
            }
            Push::Refresh(body) => {
                push.channel.clear();
                push.refresh = Some(wire::Refresh { expires: body.expires, ttl: body.ttl });
            }
        }
        push
    }

    /// This push as a frame of its own, for channels that encode a push once per protocol;
    /// [`NotJson`] when it holds a payload the JSON protocol cannot carry.
    pub fn frame(&self, protocol: Protocol, channel: &str) -> Result<Frame, NotJson> {
        Ok(match protocol {
            Protocol::Json => Frame::Text(self.json(channel)?.into()),
            Protocol::Protobuf => {
                let mut buf = Vec::new();
                protobuf::encode_push(&mut buf, self.proto(channel));
                Frame::Binary(buf.into())
            }
        })
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

    /// Adds a success reply; returns the bytes added, or [`NotJson`] (nothing added) when it
    /// holds a payload the JSON protocol cannot carry.
    pub fn reply<T: ReplyBody + ?Sized>(&mut self, id: u32, method: &str, result: &T) -> Result<usize, NotJson> {
        self.try_add(
            |text| reply::reply(id, method, result).map(|line| text.push_str(&line)),
            |buf| protobuf::encode_reply(buf, id, method, result),
        )
    }

    /// Adds an error reply; returns the bytes added.
    pub fn error(&mut self, id: u32, error: &ErrorBody) -> usize {
        self.add(|text| text.push_str(&reply::error_reply(id, error)), |buf| protobuf::encode_error(buf, id, error))
    }

    /// Adds a push; returns the bytes added, or [`NotJson`] as [`Self::reply`] does.
    pub fn push(&mut self, channel: &str, push: &Push<'_>) -> Result<usize, NotJson> {
        self.try_add(
            |text| push.json(channel).map(|line| text.push_str(&line)),
            |buf| protobuf::encode_push(buf, push.proto(channel)),
        )
    }

    /// Adds a server ping; returns the bytes added.
    pub fn ping(&mut self) -> usize {
        self.add(|text| text.push_str(reply::PING), |buf| buf.extend_from_slice(protobuf::PING))
    }

    fn add(&mut self, json: impl FnOnce(&mut String), proto: impl FnOnce(&mut Vec<u8>)) -> usize {
        let added = self.try_add(
            |text| {
                json(text);
                Ok(())
            },
            proto,
        );
        added.unwrap_or_default()
    }

    fn try_add(
        &mut self,
        json: impl FnOnce(&mut String) -> Result<(), NotJson>,
        proto: impl FnOnce(&mut Vec<u8>),
    ) -> Result<usize, NotJson> {
        let before = self.len();
        match self {
            Outgoing::Json(text) => {
                let separator = !text.is_empty();
                if separator {
                    text.push('\n');
                }
                if let Err(error) = json(text) {
                    text.truncate(before);
                    return Err(error);
                }
            }
            Outgoing::Protobuf(buf) => proto(buf),
        }
        Ok(self.len() - before)
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
        json.reply(1, "publish", &Empty {}).expect("json");
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
        proto.reply(1, "publish", &Empty {}).expect("protobuf");
        proto.ping();
        let Some(Frame::Binary(bytes)) = proto.take() else { panic!("a binary frame") };
        assert_eq!(&bytes[..], &[4, 0x08, 0x01, 0x42, 0x00, 0x00]);
    }

    #[test]
    fn a_publication_push_is_the_same_in_both_encodings() {
        let publication = Publication { data: Payload::from(r#"{"x":1}"#), offset: 7, ..Default::default() };
        let push = Push::Publication(&publication);
        assert_eq!(
            push.frame(Protocol::Json, "news"),
            Ok(Frame::Text(r#"{"push":{"channel":"news","pub":{"data":{"x":1},"offset":7}}}"#.into()))
        );
        let Ok(Frame::Binary(bytes)) = push.frame(Protocol::Protobuf, "news") else { panic!("binary") };
        let replies = protobuf::decode_replies(&bytes).expect("decodes");
        let push = replies[0].push.as_ref().expect("a push");
        let decoded = push.r#pub.as_ref().expect("a publication");
        assert_eq!((push.channel.as_str(), &decoded.data[..], decoded.offset), ("news", &br#"{"x":1}"#[..], 7));
    }

    #[test]
    fn binary_payloads_reach_protobuf_only_and_leave_the_json_buffer_as_it_was() {
        let publication = Publication { data: Payload::new(vec![0, 159, 146, 150]), offset: 3, ..Default::default() };
        let push = Push::Publication(&publication);
        assert_eq!(push.frame(Protocol::Json, "bin"), Err(NotJson));
        let Ok(Frame::Binary(bytes)) = push.frame(Protocol::Protobuf, "bin") else { panic!("binary") };
        let replies = protobuf::decode_replies(&bytes).expect("decodes");
        let data = replies[0].push.as_ref().and_then(|p| p.r#pub.as_ref()).map(|p| p.data.clone());
        assert_eq!(data.as_deref(), Some(&[0, 159, 146, 150][..]));
        let mut json = Outgoing::new(Protocol::Json);
        json.ping();
        assert_eq!(json.push("bin", &push), Err(NotJson));
        assert_eq!(json.take(), Some(Frame::Text("{}".into())));
    }
}
