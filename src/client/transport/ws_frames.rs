//! A client's WebSocket frames (RFC 6455 §5), decoded as its bytes arrive, and
//! permessage-deflate (RFC 7692) without context takeover, as Centrifugo's WebSocket library
//! negotiates it.
//!
//! The decoder keeps only the frame being received (and a fragmented message so far): a header
//! that declares more than `websocket.message_size_limit` is refused (1009) before a byte of its
//! payload is kept, and a compressed message that inflates past the decompressed limit is
//! refused as it inflates. Compressors are per thread, not per connection: without context
//! takeover every message starts from an empty window, so an idle connection holds no
//! compression state at all.

use std::cell::RefCell;

use bytes::{Buf, Bytes, BytesMut};
use bytestring::ByteString;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use crate::protocol::Disconnect;

/// Longest header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;
/// Longest control frame payload (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;
use crate::protocol::outgoing::opcode::{
    BINARY as OPCODE_BINARY, CLOSE as OPCODE_CLOSE, CONTINUATION as OPCODE_CONTINUATION, PING as OPCODE_PING,
    PONG as OPCODE_PONG, TEXT as OPCODE_TEXT,
};
const FIN: u8 = 0x80;
const RSV1: u8 = 0x40;
const RSV2_RSV3: u8 = 0x30;
/// What a sync flush ends a deflate block with; RFC 7692 §7.2.1 leaves it off the wire.
const DEFLATE_TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// What a WebSocket transport hands its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// A whole text message (fragments joined, inflated), valid UTF-8.
    Text(ByteString),
    /// A whole binary message.
    Binary(Bytes),
    /// A ping; the session answers with a pong carrying the same payload.
    Ping(Bytes),
    Pong,
    /// The client's close frame and its code, if it gave one.
    Close(Option<u16>),
    /// What the client sent breaks the protocol or a limit: close with this, read nothing more.
    Refused(Disconnect),
}

/// Limits and extensions of one connection's decoder.
#[derive(Debug, Clone, Copy)]
pub struct DecoderSettings {
    /// Longest message on the wire (`message_size_limit`), compressed or not.
    pub limit: usize,
    /// Longest message once inflated (`decompressed_message_size_limit`).
    pub inflated_limit: usize,
    /// permessage-deflate was negotiated: RSV1 marks a compressed message.
    pub deflate: bool,
}

/// Decodes the client's frames from the bytes it sends, in any split.
#[derive(Debug)]
pub struct Decoder {
    settings: DecoderSettings,
    /// A header split across reads.
    header: [u8; MAX_HEADER],
    header_len: u8,
    /// The frame whose payload is arriving (boxed, as the next: an idle connection has neither).
    frame: Option<Box<FrameInProgress>>,
    /// A fragmented message so far.
    message: Option<Box<MessageInProgress>>,
    failed: bool,
}

#[derive(Debug)]
struct FrameInProgress {
    first: u8,
    mask: [u8; 4],
    len: usize,
    payload: Vec<u8>,
}

#[derive(Debug)]
struct MessageInProgress {
    text: bool,
    compressed: bool,
    data: Vec<u8>,
}

enum Header {
    Whole { len: usize, first: u8, masked: bool, payload: u64, mask: [u8; 4] },
    Partial,
}

impl Decoder {
    pub fn new(settings: DecoderSettings) -> Self {
        Self { settings, header: [0; MAX_HEADER], header_len: 0, frame: None, message: None, failed: false }
    }

    /// Takes bytes from the front of `input` until one item is whole (returned) or `input` is
    /// used up (`None`: send more). After a refusal nothing more is decoded.
    pub fn decode(&mut self, input: &mut Bytes) -> Option<Inbound> {
        while !self.failed && !input.is_empty() {
            if self.frame.is_none() {
                if let Err(refusal) = self.read_header(input) {
                    return Some(self.refuse(refusal));
                }
                if self.frame.is_none() {
                    continue;
                }
            }
            let Some(frame) = self.frame.as_mut() else { continue };
            let take = (frame.len - frame.payload.len()).min(input.len());
            frame.payload.extend_from_slice(&input[..take]);
            input.advance(take);
            if frame.payload.len() == frame.len {
                match self.finish_frame() {
                    Ok(Some(item)) => return Some(item),
                    Ok(None) => {}
                    Err(refusal) => return Some(self.refuse(refusal)),
                }
            }
        }
        // A frame without payload completes with its header.
        if !self.failed && self.frame.as_ref().is_some_and(|frame| frame.len == 0) {
            return match self.finish_frame() {
                Ok(item) => item,
                Err(refusal) => Some(self.refuse(refusal)),
            };
        }
        None
    }

    /// Whether part of a frame or message has arrived and the rest has not.
    pub fn mid_message(&self) -> bool {
        self.header_len > 0 || self.frame.is_some() || self.message.is_some()
    }

    fn refuse(&mut self, disconnect: Disconnect) -> Inbound {
        self.failed = true;
        self.frame = None;
        self.message = None;
        Inbound::Refused(disconnect)
    }

    /// Moves header bytes from `input`; once the header is whole, checks it and starts its frame.
    fn read_header(&mut self, input: &mut Bytes) -> Result<(), Disconnect> {
        let had = self.header_len as usize;
        let take = (MAX_HEADER - had).min(input.len());
        self.header[had..had + take].copy_from_slice(&input[..take]);
        match parse_header(&self.header[..had + take]) {
            Header::Partial => {
                self.header_len += take as u8;
                input.advance(take);
                Ok(())
            }
            Header::Whole { len, first, masked, payload, mask } => {
                input.advance(len - had);
                self.header_len = 0;
                let len = self.check(first, masked, payload)?;
                let capacity = len.min(input.len());
                self.frame =
                    Some(Box::new(FrameInProgress { first, mask, len, payload: Vec::with_capacity(capacity) }));
                Ok(())
            }
        }
    }

    /// RFC 6455 §5.2–5.5 and RFC 7692 §6 on a whole header; the payload length if it passes.
    fn check(&self, first: u8, masked: bool, payload: u64) -> Result<usize, Disconnect> {
        let opcode = first & 0x0F;
        let control = opcode & 0x08 != 0;
        let rsv1 = first & RSV1 != 0;
        let protocol_error = Err(Disconnect::PROTOCOL_ERROR);
        if !masked || first & RSV2_RSV3 != 0 {
            return protocol_error;
        }
        if !matches!(
            opcode,
            OPCODE_CONTINUATION | OPCODE_TEXT | OPCODE_BINARY | OPCODE_CLOSE | OPCODE_PING | OPCODE_PONG
        ) {
            return protocol_error;
        }
        if control {
            if first & FIN == 0 || rsv1 || payload > MAX_CONTROL_PAYLOAD {
                return protocol_error;
            }
            return Ok(payload as usize);
        }
        // Compression is marked on a message's first frame only.
        if rsv1 && (!self.settings.deflate || opcode == OPCODE_CONTINUATION) {
            return protocol_error;
        }
        if (opcode == OPCODE_CONTINUATION) != self.message.is_some() {
            return protocol_error;
        }
        let so_far = self.message.as_ref().map_or(0, |message| message.data.len()) as u64;
        if so_far.saturating_add(payload) > self.settings.limit as u64 {
            return Err(Disconnect::MESSAGE_TOO_BIG);
        }
        Ok(payload as usize)
    }

    /// The frame's payload is whole: unmask it and make it an item, or part of a message.
    fn finish_frame(&mut self) -> Result<Option<Inbound>, Disconnect> {
        let Some(frame) = self.frame.take() else { return Ok(None) };
        let FrameInProgress { first, mask, mut payload, .. } = *frame;
        unmask(&mut payload, mask);
        let fin = first & FIN != 0;
        match first & 0x0F {
            OPCODE_CLOSE => close_code(&payload).map(|code| Some(Inbound::Close(code))),
            OPCODE_PING => Ok(Some(Inbound::Ping(payload.into()))),
            OPCODE_PONG => Ok(Some(Inbound::Pong)),
            OPCODE_CONTINUATION => {
                let Some(message) = self.message.as_mut() else { return Err(Disconnect::PROTOCOL_ERROR) };
                message.data.extend_from_slice(&payload);
                if !fin {
                    return Ok(None);
                }
                let Some(message) = self.message.take() else { return Ok(None) };
                self.complete(*message).map(Some)
            }
            opcode => {
                let message =
                    MessageInProgress { text: opcode == OPCODE_TEXT, compressed: first & RSV1 != 0, data: payload };
                if fin {
                    return self.complete(message).map(Some);
                }
                self.message = Some(Box::new(message));
                Ok(None)
            }
        }
    }

    fn complete(&self, message: MessageInProgress) -> Result<Inbound, Disconnect> {
        let data = match message.compressed {
            true => inflate(&message.data, self.settings.inflated_limit)?,
            false => message.data,
        };
        if !message.text {
            return Ok(Inbound::Binary(data.into()));
        }
        ByteString::try_from(Bytes::from(data)).map(Inbound::Text).map_err(|_| Disconnect::INVALID_UTF8)
    }
}

/// Reads a frame header from the start of `bytes`.
fn parse_header(bytes: &[u8]) -> Header {
    let [first, second, ..] = *bytes else { return Header::Partial };
    let masked = second & 0x80 != 0;
    let (length_len, payload) = match second & 0x7F {
        126 => match bytes.get(2..4) {
            Some(&[a, b]) => (2, u64::from(u16::from_be_bytes([a, b]))),
            _ => return Header::Partial,
        },
        127 => match bytes.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
            Some(length) => (8, u64::from_be_bytes(length)),
            None => return Header::Partial,
        },
        short => (0, u64::from(short)),
    };
    let mask_at = 2 + length_len;
    let len = mask_at + if masked { 4 } else { 0 };
    if bytes.len() < len {
        return Header::Partial;
    }
    let mut mask = [0; 4];
    if masked {
        mask.copy_from_slice(&bytes[mask_at..len]);
    }
    Header::Whole { len, first, masked, payload, mask }
}

fn unmask(payload: &mut [u8], mask: [u8; 4]) {
    for (i, byte) in payload.iter_mut().enumerate() {
        *byte ^= mask[i % 4];
    }
}

/// A close frame's code (RFC 6455 §5.5.1, §7.4): none, or one a client may send; the reason
/// must be UTF-8. Anything else is a protocol error (1002), as Autobahn's cases 7.x expect.
fn close_code(payload: &[u8]) -> Result<Option<u16>, Disconnect> {
    let Some((code, reason)) = payload.split_first_chunk::<2>() else {
        return if payload.is_empty() { Ok(None) } else { Err(Disconnect::PROTOCOL_ERROR) };
    };
    let code = u16::from_be_bytes(*code);
    let allowed = matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999);
    if !allowed {
        return Err(Disconnect::PROTOCOL_ERROR);
    }
    std::str::from_utf8(reason).map_err(|_| Disconnect::PROTOCOL_ERROR)?;
    Ok(Some(code))
}

thread_local! {
    static INFLATER: RefCell<Decompress> = RefCell::new(Decompress::new(false));
    static DEFLATER: RefCell<Option<(u32, Compress)>> = const { RefCell::new(None) };
    /// The last frame compressed on this thread and its compressed form: a publication goes to
    /// every subscriber on the thread in turn, so it is compressed about once per thread, not
    /// once per connection. Holding the original keeps its address from being reused.
    static LAST_COMPRESSED: RefCell<Option<(Bytes, Bytes)>> = const { RefCell::new(None) };
}

/// Inflates one message (RFC 7692 §7.2.2), refusing it (1009) once it passes `limit` bytes.
fn inflate(data: &[u8], limit: usize) -> Result<Vec<u8>, Disconnect> {
    INFLATER.with_borrow_mut(|inflater| {
        inflater.reset(false);
        let mut out = Vec::with_capacity(data.len().saturating_mul(2).max(64).min(limit.saturating_add(1)));
        for mut input in [data, &DEFLATE_TAIL[..]] {
            loop {
                if out.len() == out.capacity() {
                    if out.len() > limit {
                        return Err(Disconnect::MESSAGE_TOO_BIG);
                    }
                    out.reserve(out.len().max(256).min(limit + 1 - out.len()));
                }
                let (read_before, written_before) = (inflater.total_in(), out.len());
                let status = inflater
                    .decompress_vec(input, &mut out, FlushDecompress::Sync)
                    .map_err(|_| Disconnect::INVALID_UTF8)?;
                let consumed = (inflater.total_in() - read_before) as usize;
                input = &input[consumed..];
                if out.len() > limit {
                    return Err(Disconnect::MESSAGE_TOO_BIG);
                }
                let room_left = out.len() < out.capacity();
                // Without progress and with room, the rest is missing (a truncated stream).
                let stalled = consumed == 0 && out.len() == written_before && room_left;
                if status == Status::StreamEnd || (input.is_empty() && room_left) || stalled {
                    break;
                }
            }
        }
        Ok(out)
    })
}

/// How a connection's outgoing messages are compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionSettings {
    /// Messages whose payload is shorter go out as they are.
    pub min_size: usize,
    /// zlib level, 1 (fastest) to 9.
    pub level: u32,
}

/// `wire` (a whole server frame: unmasked, FIN set) as a compressed frame with RSV1 set, when it
/// is a data frame of at least `min_size` bytes and compressing makes it smaller; else as it is.
pub fn compress_frame(wire: &Bytes, compression: CompressionSettings) -> Bytes {
    let Some((first, payload)) = server_frame_payload(wire) else { return wire.clone() };
    let opcode = first & 0x0F;
    if !matches!(opcode, OPCODE_TEXT | OPCODE_BINARY) || payload.len() < compression.min_size.max(1) {
        return wire.clone();
    }
    let cached = LAST_COMPRESSED.with_borrow(|last| {
        last.as_ref()
            .filter(|(original, _)| original.as_ptr() == wire.as_ptr() && original.len() == wire.len())
            .map(|(_, compressed)| compressed.clone())
    });
    if let Some(compressed) = cached {
        return compressed;
    }
    let compressed = match deflate(payload, compression.level) {
        Some(deflated) if deflated.len() < payload.len() => server_frame(first | RSV1, &deflated),
        _ => wire.clone(),
    };
    LAST_COMPRESSED.with_borrow_mut(|last| *last = Some((wire.clone(), compressed.clone())));
    compressed
}

/// The raw deflate of one message without its sync-flush tail (RFC 7692 §7.2.1).
fn deflate(payload: &[u8], level: u32) -> Option<Vec<u8>> {
    DEFLATER.with_borrow_mut(|slot| {
        let compressor = match slot {
            Some((kept_level, compressor)) if *kept_level == level => compressor,
            _ => &mut slot.insert((level, Compress::new(Compression::new(level), false))).1,
        };
        compressor.reset();
        let mut out = Vec::with_capacity(payload.len() / 2 + 64);
        let mut input = payload;
        loop {
            if out.len() == out.capacity() {
                out.reserve(out.len().max(64));
            }
            let read_before = compressor.total_in();
            compressor.compress_vec(input, &mut out, FlushCompress::Sync).ok()?;
            input = &input[(compressor.total_in() - read_before) as usize..];
            if input.is_empty() && out.len() < out.capacity() {
                break;
            }
        }
        if out.ends_with(&DEFLATE_TAIL) {
            out.truncate(out.len() - DEFLATE_TAIL.len());
        }
        Some(out)
    })
}

/// The first byte and payload of a server frame (unmasked, as the session builds them).
pub fn server_frame_payload(wire: &[u8]) -> Option<(u8, &[u8])> {
    let [first, second, rest @ ..] = wire else { return None };
    let (len, rest) = match second & 0x7F {
        126 => {
            let (len, rest) = rest.split_first_chunk::<2>()?;
            (u64::from(u16::from_be_bytes(*len)), rest)
        }
        127 => {
            let (len, rest) = rest.split_first_chunk::<8>()?;
            (u64::from_be_bytes(*len), rest)
        }
        short => (u64::from(short), rest),
    };
    let len = usize::try_from(len).ok()?;
    Some((*first, rest.get(..len)?))
}

/// A server frame (unmasked) with this first byte and payload.
fn server_frame(first: u8, payload: &[u8]) -> Bytes {
    let mut wire = BytesMut::with_capacity(payload.len() + 10);
    wire.extend_from_slice(&[first]);
    match payload.len() {
        len @ 0..=125 => wire.extend_from_slice(&[len as u8]),
        len @ 126..=0xFFFF => {
            wire.extend_from_slice(&[126]);
            wire.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            wire.extend_from_slice(&[127]);
            wire.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    wire.extend_from_slice(payload);
    wire.freeze()
}

/// The answer to a client's `Sec-WebSocket-Extensions` when compression is enabled: the first
/// permessage-deflate offer the node can honour, answered without context takeover on both
/// sides (as Centrifugo's WebSocket library does). An offer that limits the server's window
/// below 15 bits is declined: the compressor always uses the full window.
pub fn negotiate_deflate<'a>(offers: impl IntoIterator<Item = &'a str>) -> Option<&'static str> {
    let acceptable = |offer: &str| {
        let mut params = offer.split(';').map(str::trim);
        params.next() == Some("permessage-deflate")
            && params.all(|param| {
                let (name, value) = param.split_once('=').map_or((param, None), |(n, v)| (n.trim(), Some(v.trim())));
                match name {
                    "server_no_context_takeover" | "client_no_context_takeover" | "client_max_window_bits" => true,
                    "server_max_window_bits" => value.is_some_and(|bits| bits.trim_matches('"') == "15"),
                    _ => false,
                }
            })
    };
    offers
        .into_iter()
        .flat_map(|header| header.split(','))
        .any(acceptable)
        .then_some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
}

#[cfg(test)]
mod tests;
