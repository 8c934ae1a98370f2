//! Newline-delimited framing: one WebSocket text message carries one or more JSON objects.

use std::collections::VecDeque;

use bytestring::ByteString;

/// Splits an incoming frame into command lines. A single trailing `\n` is accepted; an empty
/// frame or an empty line is malformed (close 3501, as the reference server does).
pub fn split_lines(frame: &str) -> Result<Vec<&str>, EmptyLine> {
    let body = body_of(frame);
    let mut lines = Vec::new();
    let mut at = 0;
    while let Some((line, next)) = line_at(body, at) {
        lines.push(line?);
        at = next;
    }
    Ok(lines)
}

/// The frame without its one optional trailing line end.
fn body_of(frame: &str) -> &str {
    let body = frame.strip_suffix('\n').unwrap_or(frame);
    body.strip_suffix('\r').unwrap_or(body)
}

/// The line of `body` that starts at `at` and where the next one starts; `None` past the end.
fn line_at(body: &str, at: usize) -> Option<(Result<&str, EmptyLine>, usize)> {
    let rest = body.get(at..)?;
    let end = rest.find('\n').unwrap_or(rest.len());
    let line = &rest[..end];
    let line = line.strip_suffix('\r').unwrap_or(line);
    let line = if line.trim().is_empty() { Err(EmptyLine) } else { Ok(line) };
    Some((line, at + end + 1))
}

/// Frames received and not processed yet, read one command line at a time: a frame is kept as
/// the bytes that arrived (parsed commands are ten times larger), and commands are processed as
/// they are read, as Centrifugo's decoder does.
#[derive(Debug, Default)]
pub struct PendingLines {
    frames: VecDeque<ByteString>,
    /// Where the next line of the front frame starts.
    at: usize,
}

impl PendingLines {
    pub fn push(&mut self, frame: ByteString) {
        self.frames.push_back(frame);
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// Hands the next line to `read`; `Err` for an empty frame or line, `None` when all lines
    /// were taken.
    pub fn next_line<T>(&mut self, read: impl FnOnce(&str) -> T) -> Option<Result<T, EmptyLine>> {
        loop {
            let frame = self.frames.front()?;
            match line_at(body_of(frame), self.at) {
                Some((line, next)) => {
                    self.at = next;
                    return Some(line.map(read));
                }
                None => {
                    self.frames.pop_front();
                    self.at = 0;
                    if self.frames.is_empty() {
                        // An idle connection keeps no queue allocation.
                        self.frames = VecDeque::new();
                    }
                }
            }
        }
    }
}

/// An empty frame or an empty line between commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmptyLine;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_batched_commands_and_accepts_trailing_newline() {
        assert_eq!(split_lines("{\"id\":1}\n{\"id\":2}\n").unwrap(), vec!["{\"id\":1}", "{\"id\":2}"]);
        assert_eq!(split_lines("{}").unwrap(), vec!["{}"]);
    }

    #[test]
    fn rejects_empty_frames_and_lines() {
        assert_eq!(split_lines(""), Err(EmptyLine));
        assert_eq!(split_lines("{}\n\n{}"), Err(EmptyLine));
        assert_eq!(split_lines("  "), Err(EmptyLine));
        assert_eq!(split_lines("{}\r\n"), Ok(vec!["{}"]));
    }

    fn drain(pending: &mut PendingLines) -> Vec<Result<String, EmptyLine>> {
        std::iter::from_fn(|| pending.next_line(str::to_owned)).collect()
    }

    #[test]
    fn pending_lines_come_out_one_at_a_time_across_frames() {
        let mut pending = PendingLines::default();
        pending.push("a\r\nb\n".into());
        pending.push("c".into());
        assert_eq!(pending.next_line(str::to_owned), Some(Ok("a".to_owned())));
        assert!(!pending.is_empty());
        assert_eq!(drain(&mut pending), vec![Ok("b".to_owned()), Ok("c".to_owned())]);
        assert!(pending.is_empty());
        pending.push("x\n\ny".into());
        pending.push("".into());
        let expected = vec![Ok("x".to_owned()), Err(EmptyLine), Ok("y".to_owned()), Err(EmptyLine)];
        assert_eq!(drain(&mut pending), expected);
    }
}
