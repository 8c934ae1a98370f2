//! What the server writes to a connection, in the connection's encoding: JSON lines joined with
//! `\n` in a text frame, or length-delimited Protobuf `Reply`s in a binary frame.

use bytes::Bytes;

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
    /// JSON of the unidirectional transports (`uni_websocket`): pushes without the Reply
    /// wrapper, the connect result as a `connect` push, nothing read after the connect request.
    UniJson,
    /// Protobuf of the unidirectional gRPC stream: written as `Protobuf` is (delimited `Reply`s
    /// holding pushes, so channels share one encoding), the connect result as a `connect` push;
    /// the transport sends each `Reply`'s push as one gRPC message.
    UniProtobuf,
}

impl Protocol {
    /// How many encodings channels keep of a push (one per protocol, the two Protobufs share).
    pub const COUNT: usize = 3;

    /// The encoding of a channel's pushes for this protocol: an index below [`Self::COUNT`].
    pub fn push_encoding(self) -> Protocol {
        match self {
            Protocol::UniProtobuf => Protocol::Protobuf,
            other => other,
        }
    }

    /// A unidirectional transport's protocol: no replies but the connect push, errors are
    /// disconnects, the client never pongs.
    pub fn is_uni(self) -> bool {
        matches!(self, Protocol::UniJson | Protocol::UniProtobuf)
    }

    /// Whether it is one of the Protobuf encodings.
    pub fn is_protobuf(self) -> bool {
        matches!(self, Protocol::Protobuf | Protocol::UniProtobuf)
    }
}

/// A server WebSocket frame as it goes on the wire, header included (RFC 6455 §5.2: FIN,
/// opcode, length; server frames are not masked). Built once and shared (reference-counted)
/// by every connection it goes to: a session hands the same bytes to its socket.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    wire: Bytes,
    header: u8,
}

/// WebSocket opcodes (RFC 6455 §5.2), for the frames built here and the transports that read
/// them or decode the client's.
pub mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xA;
}
use opcode::{
    BINARY as OPCODE_BINARY, CLOSE as OPCODE_CLOSE, PING as OPCODE_PING, PONG as OPCODE_PONG, TEXT as OPCODE_TEXT,
};
/// A control frame's payload is at most 125 bytes (RFC 6455 §5.5).
const CONTROL_MAX: usize = 125;
/// Room left before a payload being built, for the longest header (2 + 8 bytes).
const HEADROOM: usize = 10;

impl Frame {
    /// A text frame (JSON).
    pub fn text(payload: &str) -> Self {
        Self::copied(OPCODE_TEXT, payload.as_bytes())
    }

    /// A binary frame (Protobuf).
    pub fn binary(payload: &[u8]) -> Self {
        Self::copied(OPCODE_BINARY, payload)
    }

    /// A ping frame without payload (unidirectional WebSocket keepalive).
    pub fn ping() -> Self {
        Self::copied(OPCODE_PING, &[])
    }

    /// A pong echoing a ping's payload.
    pub fn pong(payload: &[u8]) -> Self {
        Self::copied(OPCODE_PONG, &payload[..payload.len().min(CONTROL_MAX)])
    }

    /// A close frame: the code and reason (cut to fit a control frame, on a character
    /// boundary), or an empty payload for "no code".
    pub fn close(code: Option<u16>, reason: &str) -> Self {
        let Some(code) = code else { return Self::copied(OPCODE_CLOSE, &[]) };
        let mut end = reason.len().min(CONTROL_MAX - 2);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(&reason.as_bytes()[..end]);
        Self::copied(OPCODE_CLOSE, &payload)
    }

    fn copied(opcode: u8, payload: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(HEADROOM + payload.len());
        buf.resize(HEADROOM, 0);
        buf.extend_from_slice(payload);
        Self::framed(opcode, buf)
    }

    /// Frames a payload built after [`HEADROOM`] bytes of `buf`, without copying it.
    fn framed(opcode: u8, mut buf: Vec<u8>) -> Self {
        let len = buf.len() - HEADROOM;
        let mut header = [0u8; HEADROOM];
        header[0] = 0x80 | opcode;
        let header_len = match len {
            0..=125 => {
                header[1] = len as u8;
                2
            }
            126..=0xFFFF => {
                header[1] = 126;
                header[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            _ => {
                header[1] = 127;
                header[2..10].copy_from_slice(&(len as u64).to_be_bytes());
                10
            }
        };
        let start = HEADROOM - header_len;
        buf[start..HEADROOM].copy_from_slice(&header[..header_len]);
        Self { wire: Bytes::from(buf).slice(start..), header: header_len as u8 }
    }

    /// Bytes of the payload.
    pub fn len(&self) -> usize {
        self.wire.len() - usize::from(self.header)
    }

    /// Whether the payload is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        &self.wire[usize::from(self.header)..]
    }

    /// A text (JSON) frame, else binary.
    pub fn is_text(&self) -> bool {
        self.wire[0] & 0x0F == OPCODE_TEXT
    }

    /// The whole frame as it goes on the wire (a reference-count increment, no copy).
    pub fn wire(&self) -> Bytes {
        self.wire.clone()
    }
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.is_text(), std::str::from_utf8(self.payload())) {
            (true, Ok(text)) => write!(f, "Frame::text({text:?})"),
            _ => write!(f, "Frame::binary({:?})", self.payload()),
        }
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

    /// The push in JSON, as the bidirectional protocol wraps it (`{"push":{…}}`) or bare as the
    /// unidirectional transports send it.
    fn json(&self, channel: &str, wrapped: bool) -> Result<String, NotJson> {
        let (channel, kind, body) = match self {
            Push::Publication(publication) => (channel, "pub", reply::try_json(*publication)?),
            Push::Join(info) => (channel, "join", reply::try_json(&JoinLeave { info })?),
            Push::Leave(info) => (channel, "leave", reply::try_json(&JoinLeave { info })?),
            Push::Unsubscribe(body) => (channel, "unsubscribe", reply::try_json(*body)?),
            Push::Subscribe(body) => (channel, "subscribe", reply::try_json(*body)?),
            Push::Refresh(body) => ("", "refresh", reply::try_json(*body)?),
        };
        Ok(reply::push_json(channel, kind, &body, wrapped))
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
            Protocol::Json => Frame::text(&self.json(channel, true)?),
            Protocol::UniJson => Frame::text(&self.json(channel, false)?),
            Protocol::Protobuf | Protocol::UniProtobuf => {
                let mut buf = vec![0; HEADROOM];
                protobuf::encode_push(&mut buf, self.proto(channel));
                Frame::framed(OPCODE_BINARY, buf)
            }
        })
    }
}

/// Replies and pushes waiting to be written together as one frame: JSON lines joined with
/// `\n`, or delimited Protobuf replies. Built after room for the frame header, so taking the
/// frame copies nothing; an empty buffer holds no allocation.
#[derive(Debug)]
pub struct Outgoing {
    protocol: Protocol,
    buf: Vec<u8>,
}

impl Outgoing {
    /// An empty buffer for `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        Self { protocol, buf: Vec::new() }
    }

    /// Bytes waiting.
    pub fn len(&self) -> usize {
        self.buf.len().saturating_sub(HEADROOM)
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds a success reply; returns the bytes added, or [`NotJson`] (nothing added) when it
    /// holds a payload the JSON protocol cannot carry.
    /// On a unidirectional connection the reply is a push named after the method (the
    /// `connect` result is the `connect` push).
    pub fn reply<T: ReplyBody + ?Sized>(&mut self, id: u32, method: &str, result: &T) -> Result<usize, NotJson> {
        let uni = self.protocol.is_uni();
        self.try_add(
            || if uni { reply::uni_push("", method, result) } else { reply::reply(id, method, result) },
            |buf| match uni {
                true => protobuf::encode_uni_push(buf, method, result),
                false => protobuf::encode_reply(buf, id, method, result),
            },
        )
    }

    /// Adds an error reply; returns the bytes added. Unidirectional connections get none
    /// (their errors are disconnects).
    pub fn error(&mut self, id: u32, error: &ErrorBody) -> usize {
        if self.protocol.is_uni() {
            return 0;
        }
        let added = self.try_add(|| Ok(reply::error_reply(id, error)), |buf| protobuf::encode_error(buf, id, error));
        added.unwrap_or_default()
    }

    /// Adds a push; returns the bytes added, or [`NotJson`] as [`Self::reply`] does.
    pub fn push(&mut self, channel: &str, push: &Push<'_>) -> Result<usize, NotJson> {
        let wrapped = self.protocol != Protocol::UniJson;
        self.try_add(|| push.json(channel, wrapped), |buf| protobuf::encode_push(buf, push.proto(channel)))
    }

    /// Adds the `disconnect` push unidirectional and emulated transports send before closing
    /// (bare on unidirectional ones, in the Reply wrapper on emulated ones).
    pub fn disconnect(&mut self, code: u32, reason: &str) -> usize {
        let body = reply::DisconnectPush { code, reason };
        let wrapped = self.protocol != Protocol::UniJson;
        let json = || Ok(reply::push_json("", "disconnect", &reply::to_json(&body), wrapped));
        self.try_add(json, |buf| protobuf::encode_disconnect(buf, code, reason)).unwrap_or_default()
    }

    /// Adds a line already encoded for this JSON connection (a push taken out of a shared
    /// frame), joined to what waits with `\n`.
    pub fn append_line(&mut self, line: &[u8]) {
        self.make_room();
        if !self.is_empty() {
            self.buf.push(b'\n');
        }
        self.buf.extend_from_slice(line);
    }

    /// Adds a server ping; returns the bytes added.
    pub fn ping(&mut self) -> usize {
        let added = self.try_add(|| Ok(reply::PING.to_owned()), |buf| buf.extend_from_slice(protobuf::PING));
        added.unwrap_or_default()
    }

    fn try_add(
        &mut self,
        json: impl FnOnce() -> Result<String, NotJson>,
        proto: impl FnOnce(&mut Vec<u8>),
    ) -> Result<usize, NotJson> {
        let before = self.len();
        match self.protocol {
            Protocol::Json | Protocol::UniJson => {
                let line = json()?;
                self.make_room();
                if before > 0 {
                    self.buf.push(b'\n');
                }
                self.buf.extend_from_slice(line.as_bytes());
            }
            Protocol::Protobuf | Protocol::UniProtobuf => {
                self.make_room();
                proto(&mut self.buf);
            }
        }
        Ok(self.len() - before)
    }

    fn make_room(&mut self) {
        if self.buf.is_empty() {
            self.buf.resize(HEADROOM, 0);
        }
    }

    /// Everything waiting, as one frame; `None` when nothing waits.
    pub fn take(&mut self) -> Option<Frame> {
        if self.is_empty() {
            return None;
        }
        let opcode = match self.protocol {
            Protocol::Json | Protocol::UniJson => OPCODE_TEXT,
            Protocol::Protobuf | Protocol::UniProtobuf => OPCODE_BINARY,
        };
        Some(Frame::framed(opcode, std::mem::take(&mut self.buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::reply::Empty;

    #[test]
    fn frames_carry_their_websocket_header() {
        let short = Frame::text("hi");
        assert_eq!(&short.wire()[..], b"\x81\x02hi");
        let medium = Frame::binary(&[7; 300]);
        assert_eq!(&medium.wire()[..4], &[0x82, 126, 0x01, 0x2c]);
        assert_eq!((medium.len(), medium.payload(), medium.is_text()), (300, &[7; 300][..], false));
        let long = Frame::text(&"x".repeat(70_000));
        assert_eq!(&long.wire()[..10], &[0x81, 127, 0, 0, 0, 0, 0, 1, 0x11, 0x70]);
        assert_eq!(long.len(), 70_000);
        assert_eq!(&Frame::pong(b"p").wire()[..], b"\x8a\x01p");
        assert_eq!(&Frame::close(Some(3501), "bad request").wire()[..], b"\x88\x0d\x0d\xadbad request");
        assert_eq!(&Frame::close(None, "ignored").wire()[..], b"\x88\x00");
        assert_eq!(Frame::close(Some(1000), &"é".repeat(100)).len(), 124, "cut on a character boundary");
        let mut idle = Outgoing::new(Protocol::Json);
        assert_eq!((idle.take(), idle.buf.capacity()), (None, 0), "an idle buffer holds nothing");
    }

    #[test]
    fn json_lines_are_joined_with_newlines_and_protobuf_replies_are_delimited() {
        let mut json = Outgoing::new(Protocol::Json);
        json.reply(1, "publish", &Empty {}).expect("json");
        json.ping();
        assert_eq!(json.take(), Some(Frame::text("{\"id\":1,\"publish\":{}}\n{}")));
        assert_eq!(json.take(), None);
        let mut proto = Outgoing::new(Protocol::Protobuf);
        proto.reply(1, "publish", &Empty {}).expect("protobuf");
        proto.ping();
        let frame = proto.take().expect("a frame");
        assert_eq!((frame.is_text(), frame.payload()), (false, &[4, 0x08, 0x01, 0x42, 0x00, 0x00][..]));
    }

    #[test]
    fn a_publication_push_is_the_same_in_both_encodings() {
        let publication = Publication { data: Payload::from(r#"{"x":1}"#), offset: 7, ..Default::default() };
        let push = Push::Publication(&publication);
        assert_eq!(
            push.frame(Protocol::Json, "news"),
            Ok(Frame::text(r#"{"push":{"channel":"news","pub":{"data":{"x":1},"offset":7}}}"#))
        );
        let frame = push.frame(Protocol::Protobuf, "news").expect("binary");
        let replies = protobuf::decode_replies(frame.payload()).expect("decodes");
        let push = replies[0].push.as_ref().expect("a push");
        let decoded = push.r#pub.as_ref().expect("a publication");
        assert_eq!((push.channel.as_str(), &decoded.data[..], decoded.offset), ("news", &br#"{"x":1}"#[..], 7));
    }

    #[test]
    fn binary_payloads_reach_protobuf_only_and_leave_the_json_buffer_as_it_was() {
        let publication = Publication { data: Payload::new(vec![0, 159, 146, 150]), offset: 3, ..Default::default() };
        let push = Push::Publication(&publication);
        assert_eq!(push.frame(Protocol::Json, "bin"), Err(NotJson));
        let frame = push.frame(Protocol::Protobuf, "bin").expect("binary");
        let replies = protobuf::decode_replies(frame.payload()).expect("decodes");
        let data = replies[0].push.as_ref().and_then(|p| p.r#pub.as_ref()).map(|p| p.data.clone());
        assert_eq!(data.as_deref(), Some(&[0, 159, 146, 150][..]));
        let mut json = Outgoing::new(Protocol::Json);
        json.ping();
        assert_eq!(json.push("bin", &push), Err(NotJson));
        assert_eq!(json.take(), Some(Frame::text("{}")));
    }
}
