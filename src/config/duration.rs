//! Go-style duration values (`"25s"`, `"1m30s"`, `"720h"`, `"300ms"`), as Centrifugo config uses.
//!
//! A bare number is read as nanoseconds, exactly as Centrifugo reads it (its durations are an
//! int64 underneath); a negative duration (`"-1s"`, used by `ping_interval: -1`) is clamped to 0,
//! which means "disabled" wherever a key allows that.

use std::time::Duration;

use serde::{de, Deserializer, Serializer};

/// Parses a Go duration string. Returns a message naming what is wrong.
pub fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration; use a value like \"25s\"".into());
    }
    let (negative, mut rest) = match text.as_bytes()[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total_nanos: f64 = 0.0;
    if rest.is_empty() {
        return Err(format!("invalid duration {text:?}"));
    }
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        if number_len == 0 {
            return Err(format!("invalid duration {text:?}: expected a number"));
        }
        let number: f64 = rest[..number_len].parse().map_err(|_| format!("invalid duration {text:?}: bad number"))?;
        rest = &rest[number_len..];
        let unit_len = rest.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let scale = unit_nanos(unit)
            .ok_or_else(|| format!("invalid duration {text:?}: unknown unit {unit:?} (use ns, us, ms, s, m, h)"))?;
        total_nanos += number * scale;
    }
    if negative || total_nanos <= 0.0 {
        return Ok(Duration::ZERO);
    }
    Ok(Duration::from_nanos(total_nanos.round() as u64))
}

fn unit_nanos(unit: &str) -> Option<f64> {
    Some(match unit {
        "ns" => 1.0,
        "us" | "µs" | "μs" => 1e3,
        "ms" => 1e6,
        "s" => 1e9,
        "m" => 60e9,
        "h" => 3600e9,
        _ => return None,
    })
}

/// Formats a duration the way Go prints it (`"25s"`, `"1m30s"`, `"720h0m0s"`, `"300ms"`).
pub fn format(value: Duration) -> String {
    let nanos = value.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    if nanos < 1_000_000_000 {
        return match nanos {
            n if n % 1_000_000 == 0 => format!("{}ms", n / 1_000_000),
            n if n % 1_000 == 0 => format!("{}us", n / 1_000),
            n => format!("{n}ns"),
        };
    }
    let secs = value.as_secs();
    let frac = value.subsec_nanos();
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let seconds = if frac == 0 {
        format!("{s}s")
    } else {
        let text = format!("{s}.{frac:09}");
        format!("{}s", text.trim_end_matches('0'))
    };
    match (h, m) {
        (0, 0) => seconds,
        (0, m) => format!("{m}m{seconds}"),
        (h, m) => format!("{h}h{m}m{seconds}"),
    }
}

/// serde `serialize_with` for [`Duration`] fields.
pub fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format(*value))
}

/// serde `deserialize_with` for [`Duration`] fields: Go duration strings or nanosecond numbers.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor)
}

struct DurationVisitor;

impl de::Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration string such as \"25s\" or \"1m30s\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_nanos(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        Ok(Duration::from_nanos(v.max(0) as u64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Ok(Duration::from_nanos(v.max(0.0) as u64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse("25s"), Ok(Duration::from_secs(25)));
        assert_eq!(parse("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse("720h"), Ok(Duration::from_secs(720 * 3600)));
        assert_eq!(parse("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse("1.5h"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
        assert_eq!(parse("-1s"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_bad_durations_with_a_reason() {
        assert!(parse("").is_err());
        assert!(parse("25").unwrap_err().contains("unknown unit"));
        assert!(parse("5 days").is_err());
        assert!(parse("s").is_err());
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format(Duration::from_secs(25)), "25s");
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(format(Duration::from_secs(720 * 3600)), "720h0m0s");
        assert_eq!(format(Duration::from_millis(300)), "300ms");
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_millis(1500)), "1.5s");
    }
}
