//! Write coalescing: protocol v2 JSON lets one WebSocket frame carry several replies and pushes
//! separated by `\n`, so everything a session produces in one turn leaves as one frame (one
//! frame header, one encode, one socket write) instead of one frame per line. Frames stay small
//! enough for every SDK: at most [`MAX_LINES`] lines and [`MAX_BYTES`] bytes each (a longer line
//! goes alone), like Centrifugo's writer.

use bytestring::ByteString;

/// Lines per frame.
pub(super) const MAX_LINES: usize = 16;

/// Bytes per joined frame (well under the 1 MiB default frame limit of Python's `websockets`).
pub(super) const MAX_BYTES: usize = 64 * 1024;

/// Outgoing lines, joined into frames.
#[derive(Debug, Default)]
pub(super) struct Frames {
    /// Frames already full, oldest first.
    full: Vec<ByteString>,
    /// The frame being built.
    current: Current,
    lines: usize,
}

#[derive(Debug, Default)]
enum Current {
    #[default]
    Empty,
    /// One shared line, not copied yet (the common case: a lone push).
    Shared(ByteString),
    /// Lines joined with `\n`.
    Joined(String),
}

impl Current {
    fn len(&self) -> usize {
        match self {
            Current::Empty => 0,
            Current::Shared(line) => line.len(),
            Current::Joined(text) => text.len(),
        }
    }
}

impl Frames {
    /// Adds a shared, pre-encoded line (a channel's push) without copying it if it ends up alone.
    pub(super) fn push_shared(&mut self, line: ByteString) {
        self.make_room(line.len());
        if matches!(self.current, Current::Empty) {
            self.current = Current::Shared(line);
            self.lines = 1;
        } else {
            self.append(&line);
        }
    }

    /// Adds a line.
    pub(super) fn push_str(&mut self, line: &str) {
        self.make_room(line.len());
        self.append(line);
    }

    /// Hands every frame to `write`, oldest first, and starts over.
    pub(super) fn drain(&mut self, mut write: impl FnMut(ByteString)) {
        if !self.full.is_empty() {
            // Only after a burst; not worth keeping the list's memory on an idle connection.
            std::mem::take(&mut self.full).into_iter().for_each(&mut write);
        }
        if let Some(frame) = self.take_current() {
            write(frame);
        }
    }

    /// Closes the current frame if `len` more bytes would not fit in it.
    fn make_room(&mut self, len: usize) {
        let size = self.current.len();
        if self.lines > 0 && (self.lines >= MAX_LINES || size + 1 + len > MAX_BYTES) {
            self.finish();
        }
    }

    fn finish(&mut self) {
        if let Some(frame) = self.take_current() {
            self.full.push(frame);
        }
    }

    fn take_current(&mut self) -> Option<ByteString> {
        self.lines = 0;
        match std::mem::take(&mut self.current) {
            Current::Empty => None,
            Current::Shared(line) => Some(line),
            Current::Joined(text) => Some(ByteString::from(text)),
        }
    }

    fn append(&mut self, line: &str) {
        let mut text = match std::mem::take(&mut self.current) {
            Current::Empty => String::with_capacity(line.len()),
            Current::Shared(first) => {
                let mut text = String::with_capacity(first.len() + 1 + line.len());
                text.push_str(&first);
                text
            }
            Current::Joined(text) => text,
        };
        if !text.is_empty() {
            text.push('\n');
        }
        text.push_str(line);
        self.current = Current::Joined(text);
        self.lines += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drained(frames: &mut Frames) -> Vec<String> {
        let mut out = Vec::new();
        frames.drain(|frame| out.push(frame.to_string()));
        out
    }

    #[test]
    fn lines_of_one_turn_leave_as_one_frame_in_order() {
        let mut frames = Frames::default();
        frames.push_str(r#"{"id":1,"connect":{}}"#);
        frames.push_shared(ByteString::from_static(r#"{"push":{"channel":"a","pub":{}}}"#));
        frames.push_str(r#"{"id":2,"subscribe":{}}"#);
        assert_eq!(
            drained(&mut frames),
            [r#"{"id":1,"connect":{}}
{"push":{"channel":"a","pub":{}}}
{"id":2,"subscribe":{}}"#]
        );
        assert!(drained(&mut frames).is_empty());
    }

    #[test]
    fn a_lone_shared_line_is_written_without_a_copy() {
        let line = ByteString::from(String::from("{}"));
        let mut frames = Frames::default();
        frames.push_shared(line.clone());
        let mut written = Vec::new();
        frames.drain(|frame| written.push(frame));
        assert_eq!(written.len(), 1);
        assert_eq!(written[0].as_bytes().as_ptr(), line.as_bytes().as_ptr());
    }

    #[test]
    fn frames_hold_at_most_max_lines() {
        let mut frames = Frames::default();
        for n in 0..MAX_LINES * 2 + 1 {
            frames.push_shared(ByteString::from(n.to_string()));
        }
        let out = drained(&mut frames);
        let lines: Vec<usize> = out.iter().map(|frame| frame.split('\n').count()).collect();
        assert_eq!(lines, [MAX_LINES, MAX_LINES, 1]);
        let all: Vec<String> = out.iter().flat_map(|frame| frame.split('\n')).map(str::to_owned).collect();
        let expected: Vec<String> = (0..MAX_LINES * 2 + 1).map(|n| n.to_string()).collect();
        assert_eq!(all, expected);
    }

    #[test]
    fn frames_stay_under_max_bytes_and_a_longer_line_goes_alone() {
        let half = "x".repeat(MAX_BYTES / 2);
        let huge = "y".repeat(MAX_BYTES + 1);
        let mut frames = Frames::default();
        frames.push_str(&half);
        frames.push_str(&half);
        frames.push_str(&huge);
        frames.push_str("z");
        let sizes: Vec<usize> = drained(&mut frames).iter().map(String::len).collect();
        assert_eq!(sizes, [half.len(), half.len(), huge.len(), 1]);
    }
}
