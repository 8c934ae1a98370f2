//! Logging: `tracing` with `log.level` (or a `GYRE_LOG` filter directive), text or JSON, to
//! stdout or `log.file`. ANSI colours only on a terminal. Tokens and keys are never logged.

use std::io::IsTerminal;
use std::sync::Mutex;

use anyhow::Context as _;
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
            "json" => builder.json().with_writer(std::io::stdout).try_init(),
            _ => builder.with_ansi(ansi).with_writer(std::io::stdout).try_init(),
        }
    } else {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log.file)
            .with_context(|| format!("cannot open log.file {}", log.file))?;
        let writer = Mutex::new(file);
        match log.format.as_str() {
            "json" => builder.json().with_writer(writer).try_init(),
            _ => builder.with_ansi(false).with_writer(writer).try_init(),
        }
    };
    result.map_err(|e| anyhow::anyhow!("cannot install the logger: {e}"))
}
