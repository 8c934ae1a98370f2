//! Logging: `tracing` with `log.level` (or a `GYRE_LOG` filter directive), text or JSON, to
//! stdout or `log.file`. ANSI colours only on a terminal. Tokens and keys are never logged.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use anyhow::Context as _;
use tracing_subscriber::filter::DynFilterFn;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

/// Installs the global subscriber.
pub fn init(log: &LogSettings) -> anyhow::Result<()> {
    let level = match log.level.as_str() {
        "none" => "off",
        level => level,
    };
    let directive = std::env::var("GYRE_LOG").ok().filter(|v| !v.is_empty()).unwrap_or_else(|| level.to_owned());
    let filter = EnvFilter::try_new(&directive).with_context(|| format!("invalid log filter {directive:?}"))?;
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_target(false);
    let result = if log.file.is_empty() {
        let ansi = std::io::stdout().is_terminal();
        match log.format.as_str() {
            "json" => builder.json().with_writer(std::io::stdout).finish().with(client_caused_budget()).try_init(),
            _ => builder.with_ansi(ansi).with_writer(std::io::stdout).finish().with(client_caused_budget()).try_init(),
        }
    } else {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log.file)
            .with_context(|| format!("cannot open log.file {}", log.file))?;
        let writer = Mutex::new(file);
        match log.format.as_str() {
            "json" => builder.json().with_writer(writer).finish().with(client_caused_budget()).try_init(),
            _ => builder.with_ansi(false).with_writer(writer).finish().with(client_caused_budget()).try_init(),
        }
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}

/// Decided per event: a filter evaluated once per call site would let all or nothing through.
fn client_caused_budget<S: tracing::Subscriber>() -> impl tracing_subscriber::Layer<S> {
    DynFilterFn::new(|meta: &tracing::Metadata<'_>, _: &tracing_subscriber::layer::Context<'_, S>| {
        within_client_caused_budget(meta)
    })
    .with_callsite_filter(|_| tracing::subscriber::Interest::sometimes())
}

/// actix-http logs a malformed request (`stream error: request parse error`) at ERROR, so anyone
/// who can reach the port could write error lines at will: those pass at most 10 a minute.
fn within_client_caused_budget(meta: &tracing::Metadata<'_>) -> bool {
    static ACTIX_HTTP: LogBudget = LogBudget::new(10);
    !meta.target().starts_with("actix_http") || *meta.level() > tracing::Level::WARN || ACTIX_HTTP.allow()
}

/// At most `per_minute` log lines a minute, for lines that unauthenticated input can cause.
pub struct LogBudget {
    minute: AtomicU64,
    used: AtomicU32,
    per_minute: u32,
}

impl LogBudget {
    pub const fn new(per_minute: u32) -> Self {
        Self { minute: AtomicU64::new(0), used: AtomicU32::new(0), per_minute }
    }

    /// Whether one more line may be written now.
    pub fn allow(&self) -> bool {
        self.allow_in(crate::domain::unix_now().max(0) as u64 / 60)
    }

    fn allow_in(&self, minute: u64) -> bool {
        if self.minute.swap(minute, Relaxed) != minute {
            self.used.store(0, Relaxed);
        }
        self.used.fetch_add(1, Relaxed) < self.per_minute
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_log_budget_allows_its_lines_per_minute_then_refills() {
        let budget = LogBudget::new(3);
        let allowed = |minute| (0..10).filter(|_| budget.allow_in(minute)).count();
        assert_eq!(allowed(100), 3);
        assert_eq!(allowed(100), 0);
        assert_eq!(allowed(101), 3);
    }
}
