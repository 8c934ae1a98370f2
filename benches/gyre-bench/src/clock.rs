//! Wall-clock time as the publisher embeds it (CLOCK_REALTIME, ns since the epoch).

use std::time::{SystemTime, UNIX_EPOCH};

pub fn unix_nanos() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

pub fn unix_secs() -> u64 {
    unix_nanos() / 1_000_000_000
}
