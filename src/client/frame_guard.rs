//! Frame boundaries of a client's WebSocket byte stream, checked as the bytes arrive.
//!
//! actix-http's decoder checks a frame's length against the size limit only once the whole frame
//! is buffered, so a header that declares 2^40 bytes made it buffer whatever followed. The guard
//! reads each header as soon as it is complete and refuses a data frame longer than
//! `websocket.message_size_limit` (close 1009) or a control frame longer than 125 bytes
//! (RFC 6455 §5.5, close 1002) before a byte of its payload is kept. It also lets the transport
//! hand the decoder one frame at a time, so the decoder's buffer never holds more than one frame.

/// Longest header: 2 bytes, 8 of extended length, 4 of mask.
const MAX_HEADER: usize = 14;
/// Longest control frame payload (RFC 6455 §5.5).
const MAX_CONTROL_PAYLOAD: u64 = 125;

/// Why a frame is refused as soon as its header is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A data frame longer than the message size limit (close 1009).
    TooBig,
    /// A control frame longer than 125 bytes (close 1002).
    ControlTooLong,
}

impl Refusal {
    /// Bytes that make actix-http's decoder fail with the matching protocol error as soon as it
    /// reads them, so frames before the refused one are still decoded, in order.
    pub fn poison(self) -> &'static [u8] {
        match self {
            // A masked binary frame whose 64-bit length has its top bit set: `Overflow` (1009).
            Refusal::TooBig => &[0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
            // Reserved opcode 3: `InvalidOpcode` (1002).
            Refusal::ControlTooLong => &[0x83, 0x80],
        }
    }
}

/// What the next bytes of the stream hold, from [`FrameGuard::next`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Header bytes the guard took into its own buffer (the header is split across reads): they
    /// are not passed on until the header is whole.
    HeaderPart(usize),
    /// This many bytes of the input (a whole header and payload) belong to the current frame.
    Frame(usize),
    /// The header split across reads is now whole: the guard took the first `taken` bytes of
    /// the input into it; pass [`FrameGuard::take_buffered_header`] on, then the rest.
    BufferedHeader { taken: usize },
    /// The frame whose header starts here is refused.
    Refused(Refusal),
}

/// Tracks where frames start and end in a client's byte stream.
#[derive(Debug)]
pub struct FrameGuard {
    limit: u64,
    /// Payload bytes of the current frame still to come; `None` while reading a header.
    payload_left: Option<u64>,
    /// A header split across reads.
    header: [u8; MAX_HEADER],
    header_len: u8,
}

impl FrameGuard {
    /// A guard for a stream whose data frames may be at most `limit` bytes long.
    pub fn new(limit: usize) -> Self {
        Self { limit: limit as u64, payload_left: None, header: [0; MAX_HEADER], header_len: 0 }
    }

    /// Whether part of a frame has been passed on and the rest has not.
    pub fn mid_frame(&self) -> bool {
        self.payload_left.is_some() || self.header_len > 0
    }

    /// The buffered header, once [`Span::BufferedHeader`] was returned; clears it.
    pub fn take_buffered_header(&mut self) -> Vec<u8> {
        let header = self.header[..self.header_len as usize].to_vec();
        self.header_len = 0;
        header
    }

    /// Classifies the start of `input` (non-empty). The caller passes on or drops what the span
    /// covers and calls again with the rest.
    pub fn next(&mut self, input: &[u8]) -> Span {
        if let Some(left) = self.payload_left {
            let len = left.min(input.len() as u64);
            self.finish_payload(len);
            return Span::Frame(len as usize);
        }
        if self.header_len > 0 {
            return self.continue_header(input);
        }
        match parse_header(input) {
            Header::Whole { header_len, payload } => match self.check(input, payload) {
                Some(refusal) => Span::Refused(refusal),
                None => {
                    let len = (payload.min((input.len() - header_len) as u64)) as usize;
                    self.payload_left = Some(payload);
                    self.finish_payload(len as u64);
                    Span::Frame(header_len + len)
                }
            },
            Header::Partial => {
                let len = input.len().min(MAX_HEADER);
                self.header[..len].copy_from_slice(&input[..len]);
                self.header_len = len as u8;
                Span::HeaderPart(len)
            }
        }
    }

    /// Adds bytes to a split header, one at a time until it is whole.
    fn continue_header(&mut self, input: &[u8]) -> Span {
        let mut taken = 0;
        for &byte in input {
            let have = self.header_len as usize;
            self.header[have] = byte;
            self.header_len += 1;
            taken += 1;
            let header = &self.header[..have + 1];
            if let Header::Whole { payload, .. } = parse_header(header) {
                return match self.check(header, payload) {
                    Some(refusal) => Span::Refused(refusal),
                    None => {
                        self.payload_left = (payload > 0).then_some(payload);
                        Span::BufferedHeader { taken }
                    }
                };
            }
        }
        Span::HeaderPart(taken)
    }

    fn finish_payload(&mut self, len: u64) {
        if let Some(left) = self.payload_left {
            let left = left - len;
            self.payload_left = (left > 0).then_some(left);
        }
    }

    fn check(&self, header: &[u8], payload: u64) -> Option<Refusal> {
        let control = header[0] & 0x08 != 0;
        if control && payload > MAX_CONTROL_PAYLOAD {
            Some(Refusal::ControlTooLong)
        } else if !control && payload > self.limit {
            Some(Refusal::TooBig)
        } else {
            None
        }
    }
}

enum Header {
    Whole { header_len: usize, payload: u64 },
    Partial,
}

/// Reads a frame header (RFC 6455 §5.2) from the start of `bytes`.
fn parse_header(bytes: &[u8]) -> Header {
    let [_, second, ..] = bytes else { return Header::Partial };
    let mask_len = if second & 0x80 != 0 { 4 } else { 0 };
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
    let header_len = 2 + length_len + mask_len;
    if bytes.len() < header_len {
        return Header::Partial;
    }
    Header::Whole { header_len, payload }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A masked client frame header for `payload` bytes (`opcode` with FIN).
    fn header(opcode: u8, payload: u64) -> Vec<u8> {
        let mut bytes = vec![0x80 | opcode];
        match payload {
            0..=125 => bytes.push(0x80 | payload as u8),
            126..=0xFFFF => {
                bytes.push(0x80 | 126);
                bytes.extend_from_slice(&(payload as u16).to_be_bytes());
            }
            _ => {
                bytes.push(0x80 | 127);
                bytes.extend_from_slice(&payload.to_be_bytes());
            }
        }
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        bytes
    }

    /// Feeds `stream` in chunks of `chunk` bytes; returns what the guard passes on, as frames
    /// (the bytes between frame ends), and the refusal if any.
    fn run(guard: &mut FrameGuard, stream: &[u8], chunk: usize) -> (Vec<Vec<u8>>, Option<Refusal>) {
        let (mut frames, mut current) = (Vec::new(), Vec::new());
        for mut input in stream.chunks(chunk) {
            while !input.is_empty() {
                match guard.next(input) {
                    Span::HeaderPart(taken) => {
                        assert!(guard.mid_frame());
                        input = &input[taken..];
                    }
                    Span::BufferedHeader { taken } => {
                        current.extend(guard.take_buffered_header());
                        input = &input[taken..];
                    }
                    Span::Frame(len) => {
                        current.extend_from_slice(&input[..len]);
                        input = &input[len..];
                    }
                    Span::Refused(refusal) => return (frames, Some(refusal)),
                }
                if !guard.mid_frame() && !current.is_empty() {
                    frames.push(std::mem::take(&mut current));
                }
            }
        }
        assert!(current.is_empty() || guard.mid_frame());
        (frames, None)
    }

    fn frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mut bytes = header(opcode, payload.len() as u64);
        bytes.extend_from_slice(payload);
        bytes
    }

    #[test]
    fn passes_frames_whole_and_one_at_a_time_however_the_bytes_are_split() {
        let frames = [frame(1, b"hello"), frame(9, b""), frame(2, &[7; 300]), frame(1, &[b'x'; 70_000])];
        let stream = frames.concat();
        for chunk in [1, 2, 3, 7, 13, 14, 100, 1 << 20] {
            let (passed, refused) = run(&mut FrameGuard::new(100_000), &stream, chunk);
            assert_eq!(refused, None, "chunk {chunk}");
            assert_eq!(passed, frames.to_vec(), "chunk {chunk}");
        }
    }

    #[test]
    fn refuses_a_data_frame_over_the_limit_from_its_header_alone() {
        for (declared, chunk) in [(1u64 << 40, 1), (1 << 40, 1000), (65_537, 1), (65_537, 14), (u64::MAX, 3)] {
            let mut stream = frame(1, b"first");
            stream.extend(header(2, declared));
            let (passed, refused) = run(&mut FrameGuard::new(65_536), &stream, chunk);
            assert_eq!(passed, vec![frame(1, b"first")], "{declared}");
            assert_eq!(refused, Some(Refusal::TooBig), "{declared}");
        }
        let (_, refused) = run(&mut FrameGuard::new(65_536), &header(0, 65_537), 64);
        assert_eq!(refused, Some(Refusal::TooBig), "continuation frames count too");
        let at_limit = frame(1, &[b'a'; 65_536]);
        assert_eq!(run(&mut FrameGuard::new(65_536), &at_limit, 4096), (vec![at_limit.clone()], None));
    }

    #[test]
    fn refuses_a_control_frame_over_125_bytes() {
        for opcode in [8, 9, 10] {
            let (_, refused) = run(&mut FrameGuard::new(65_536), &header(opcode, 126), 5);
            assert_eq!(refused, Some(Refusal::ControlTooLong));
        }
        let ping = frame(9, &[0; 125]);
        assert_eq!(run(&mut FrameGuard::new(65_536), &ping, 5), (vec![ping.clone()], None));
    }

    #[test]
    fn poison_bytes_make_actix_http_fail_with_the_matching_error() {
        use actix_codec::Decoder;
        use actix_http::ws::{Codec, ProtocolError};
        let decode = |bytes: &[u8]| {
            let mut buffer = bytes::BytesMut::from(bytes);
            Codec::new().max_size(65_536).decode(&mut buffer)
        };
        assert!(matches!(decode(Refusal::TooBig.poison()), Err(ProtocolError::Overflow)));
        assert!(matches!(decode(Refusal::ControlTooLong.poison()), Err(ProtocolError::InvalidOpcode(3))));
    }
}
