//! Channel patterns of the `channels` method (gobwas/glob syntax, no separators):
//! `*`, `?`, `[abc]`, `[!a]`, `[a-z]`, `{a,b}` and `\` escapes.

use regex::Regex;

/// Compiles a glob into an anchored regex; `None` when the pattern is malformed.
pub(super) fn compile(pattern: &str) -> Option<Regex> {
    let mut out = String::from("^");
    let mut chars = pattern.chars();
    let mut braces = 0usize;
    while let Some(c) = chars.next() {
        match c {
            '*' => out.push_str(".*"),
            '?' => out.push('.'),
            '\\' => out.push_str(&regex::escape(&chars.next()?.to_string())),
            '[' => {
                out.push('[');
                let mut first = true;
                loop {
                    let c = chars.next()?;
                    match c {
                        ']' if !first => break,
                        '!' if first => out.push('^'),
                        '\\' => out.push_str(&regex::escape(&chars.next()?.to_string())),
                        '-' => out.push('-'),
                        c => out.push_str(&regex::escape(&c.to_string())),
                    }
                    first = false;
                }
                out.push(']');
            }
            '{' => {
                braces += 1;
                out.push_str("(?:");
            }
            ',' if braces > 0 => out.push('|'),
            '}' if braces > 0 => {
                braces -= 1;
                out.push(')');
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    if braces > 0 {
        return None;
    }
    out.push('$');
    Regex::new(&out).ok()
}

#[cfg(test)]
mod tests {
    use super::compile;

    #[test]
    fn globs_match_like_gobwas() {
        let m = |p: &str, s: &str| compile(p).unwrap().is_match(s);
        assert!(m("chat:*", "chat:room"));
        assert!(!m("chat:*", "news"));
        assert!(m("user?", "user1"));
        assert!(m("[ab]x", "bx") && !m("[!ab]x", "bx"));
        assert!(m("{chat,news}:*", "news:1"));
        assert!(m("a\\*", "a*") && !m("a\\*", "ab"));
        assert!(m("[a-c]1", "b1"));
    }

    #[test]
    fn malformed_globs_are_refused() {
        assert!(compile("[abc").is_none());
        assert!(compile("{a,b").is_none());
        assert!(compile("x\\").is_none());
    }
}
