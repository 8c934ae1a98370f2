//! Newline-delimited framing: one WebSocket text message carries one or more JSON objects.

/// Splits an incoming frame into command lines. A single trailing `\n` is accepted; an empty
/// frame or an empty line is malformed (close 3501, as the reference server does).
pub fn split_lines(frame: &str) -> Result<Vec<&str>, EmptyLine> {
    let body = frame.strip_suffix('\n').unwrap_or(frame);
    let body = body.strip_suffix('\r').unwrap_or(body);
    let lines: Vec<&str> = body.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l)).collect();
    if lines.iter().any(|l| l.trim().is_empty()) {
        return Err(EmptyLine);
    }
    Ok(lines)
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
    }
}
