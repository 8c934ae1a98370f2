//! Newline-delimited framing: one WebSocket text message carries one or more JSON objects.

use std::collections::VecDeque;

use bytes::Bytes;
use bytestring::ByteString;

use super::command::Command;
use super::protobuf::{command_at, DecodeError};

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

/// Frames received and not processed yet, read one command at a time: a frame is kept as the
/// bytes that arrived (parsed commands are ten times larger), and commands are processed as
/// they are read, as Centrifugo's decoders do.
#[derive(Debug, Default)]
pub struct PendingCommands {
    frames: VecDeque<Incoming>,
    /// Where the next command of the front frame starts.
    at: usize,
}

/// A received frame, as its connection's protocol reads it.
#[derive(Debug)]
enum Incoming {
    Json(ByteString),
    Protobuf(Bytes),
}

/// Why a command could not be read (close 3501).
#[derive(Debug, thiserror::Error)]
pub enum Malformed {
    /// An empty JSON frame or line.
    #[error("empty frame or line")]
    EmptyLine,
    /// A JSON line that is not a command.
    #[error("{0}")]
    Json(#[from] serde_json::Error),
    /// A Protobuf frame that does not hold commands.
    #[error("{0}")]
    Protobuf(#[from] DecodeError),
}

impl PendingCommands {
    /// Queues a JSON frame (newline-separated commands).
    pub fn push_json(&mut self, frame: ByteString) {
        self.frames.push_back(Incoming::Json(frame));
    }

    /// Queues a Protobuf frame (length-delimited commands).
    pub fn push_protobuf(&mut self, frame: Bytes) {
        self.frames.push_back(Incoming::Protobuf(frame));
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Frames waiting (their commands not all run yet).
    pub fn waiting(&self) -> usize {
        self.frames.len()
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// The next command and its size in bytes; `None` when all were taken. A malformed frame
    /// yields its error once and is dropped.
    pub fn next_command(&mut self) -> Option<Result<(Command, usize), Malformed>> {
        loop {
            let at = self.at;
            let next = match self.frames.front()? {
                Incoming::Json(frame) => line_at(body_of(frame), at).map(|(line, next)| {
                    let command = line.map_err(|_| Malformed::EmptyLine).and_then(|line| {
                        Command::parse(line).map(|command| (command, line.len())).map_err(Malformed::from)
                    });
                    (command, Some(next))
                }),
                Incoming::Protobuf(frame) => command_at(frame, at).map(|decoded| match decoded {
                    Ok((command, next)) => (Ok((command, next - at)), Some(next)),
                    Err(error) => (Err(Malformed::from(error)), None),
                }),
            };
            match next {
                Some((command, Some(next))) => {
                    self.at = next;
                    return Some(command);
                }
                Some((error, None)) => {
                    self.drop_front();
                    return Some(error);
                }
                None => self.drop_front(),
            }
        }
    }

    fn drop_front(&mut self) {
        self.frames.pop_front();
        self.at = 0;
        if self.frames.is_empty() {
            // An idle connection keeps no queue allocation.
            self.frames = VecDeque::new();
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

    /// Each command's id, or `Err` with what was wrong.
    fn drain(pending: &mut PendingCommands) -> Vec<Result<u32, String>> {
        std::iter::from_fn(|| pending.next_command())
            .map(|next| next.map(|(command, _)| command.id).map_err(|error| error.to_string()))
            .collect()
    }

    #[test]
    fn pending_commands_come_out_one_at_a_time_across_frames() {
        let mut pending = PendingCommands::default();
        pending.push_json("{\"id\":1}\r\n{\"id\":2}\n".into());
        pending.push_json("{\"id\":3}".into());
        assert_eq!(pending.next_command().map(|next| next.map(|(c, size)| (c.id, size)).ok()), Some(Some((1, 8))));
        assert!(!pending.is_empty());
        assert_eq!(drain(&mut pending), vec![Ok(2), Ok(3)]);
        assert!(pending.is_empty());
        pending.push_json("{\"id\":4}\n\n{\"id\":5}".into());
        pending.push_json("".into());
        let empty = Err("empty frame or line".to_owned());
        assert_eq!(drain(&mut pending), vec![Ok(4), empty.clone(), Ok(5), empty]);
    }

    #[test]
    fn protobuf_frames_yield_their_commands_then_an_error_ends_the_frame() {
        let mut pending = PendingCommands::default();
        // Two delimited commands (id 1, id 2), then a frame whose length runs past its end.
        pending.push_protobuf(Bytes::from_static(&[2, 0x08, 0x01, 2, 0x08, 0x02]));
        pending.push_protobuf(Bytes::from_static(&[9, 0x08]));
        pending.push_protobuf(Bytes::new());
        let past_end = Err("command length 9 past the end of the frame".to_owned());
        assert_eq!(drain(&mut pending), vec![Ok(1), Ok(2), past_end, Err("empty frame".to_owned())]);
    }
}
