//! One storm client: sessions (connect, subscribe or recover, read) until the run stops, with
//! the SDKs' backoff and a load balancer's spread between them; every offset is checked.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use crate::cli::StormArgs;
use crate::codec::{quoted, Protocol};
use crate::ws::{Received, Ws};

use super::Shared;

const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// The SDKs' reconnect backoff (full jitter): attempt k waits min(max, min + rand(0..min·2^k)).
#[derive(Clone, Copy)]
pub(super) struct Backoff {
    pub(super) min_ms: u64,
    pub(super) max_ms: u64,
}

impl Backoff {
    fn delay(self, attempt: u32) -> Duration {
        if self.min_ms == 0 {
            return Duration::ZERO;
        }
        let ceiling = self.min_ms.saturating_mul(1u64 << attempt.min(31)).min(self.max_ms);
        let jitter = rand::random_range(0..=ceiling);
        Duration::from_millis((self.min_ms + jitter).min(self.max_ms))
    }
}

/// One client's account of the run.
#[derive(Default)]
pub(super) struct ClientReport {
    pub(super) gaps: u64,
    pub(super) repeats: u64,
    /// Connections lost (the victim's clients lose one each; anything more is noted).
    pub(super) losses: u32,
    pub(super) failed_attempts: u32,
    /// Milliseconds from the kill, for a client that lost its connection after it.
    pub(super) noticed_ms: Option<f64>,
    pub(super) first_attempt_ms: Option<f64>,
    pub(super) connected_ms: Option<f64>,
    pub(super) resubscribed_ms: Option<f64>,
    /// The resubscribe's `recovered` flag (and the epoch was the same).
    pub(super) recovered: Option<bool>,
    pub(super) last_error: Option<String>,
}

/// The client's place in its channel's stream.
struct Position {
    offset: u64,
    epoch: String,
}

/// Starts every client at `--connect-rate` per second.
pub(super) async fn spawn_clients(
    shared: &Arc<Shared>,
    args: &StormArgs,
    stop: &watch::Receiver<bool>,
) -> Vec<tokio::task::JoinHandle<ClientReport>> {
    let batch = 50;
    let pause = Duration::from_secs_f64(batch as f64 / args.common.connect_rate.max(1) as f64);
    let mut handles = Vec::with_capacity(args.clients);
    for index in 0..args.clients {
        let home = home_node(args, index);
        handles.push(tokio::spawn(client(shared.clone(), index, home, args.channels, stop.clone())));
        if (index + 1) % batch == 0 {
            tokio::time::sleep(pause).await;
        }
    }
    handles
}

/// How a session ended.
enum Ended {
    Stopped,
    /// The connection failed before it was subscribed.
    Refused(String),
    /// A subscribed connection was lost.
    Lost(String),
}

/// One client: sessions until the run stops; after a lost or refused session it backs off and
/// tries another node than the one it was on.
async fn client(
    shared: Arc<Shared>,
    index: usize,
    home: usize,
    channels: usize,
    mut stop: watch::Receiver<bool>,
) -> ClientReport {
    let mut report = ClientReport::default();
    let mut position: Option<Position> = None;
    let mut node = home;
    let mut attempt = 0u32;
    loop {
        let session = Session { shared: &shared, index, channel: index % channels };
        match session.run(node, &mut position, &mut report, &mut stop).await {
            Ended::Stopped => return report,
            Ended::Refused(error) => {
                report.failed_attempts += 1;
                report.last_error = Some(error);
                attempt += 1;
            }
            Ended::Lost(error) => {
                report.losses += 1;
                shared.stats.disconnected.fetch_add(1, Relaxed);
                if report.noticed_ms.is_none() {
                    report.noticed_ms = shared.since_kill_ms();
                }
                report.last_error = Some(error);
                attempt = 0;
            }
        }
        node = next_node(node, index + attempt as usize, shared.nodes.len());
        tokio::select! {
            _ = tokio::time::sleep(shared.backoff.delay(attempt)) => {}
            _ = stop.changed() => return report,
        }
        if report.noticed_ms.is_some() && report.first_attempt_ms.is_none() {
            report.first_attempt_ms = shared.since_kill_ms();
        }
    }
}

/// The node client `index` first connects to.
pub(super) fn home_node(args: &StormArgs, index: usize) -> usize {
    let spread_by = if args.affinity { index % args.channels } else { index };
    spread_by % args.nodes.len()
}

/// Another node than `from`, chosen by `spread` (a load balancer's choice among the others).
fn next_node(from: usize, spread: usize, nodes: usize) -> usize {
    (from + 1 + spread % (nodes - 1)) % nodes
}

struct Session<'a> {
    shared: &'a Shared,
    index: usize,
    channel: usize,
}

impl Session<'_> {
    async fn run(
        &self,
        node: usize,
        position: &mut Option<Position>,
        report: &mut ClientReport,
        stop: &mut watch::Receiver<bool>,
    ) -> Ended {
        let mut ws = match self.subscribe(node, position, report).await {
            Ok(ws) => ws,
            Err(error) => return Ended::Refused(error),
        };
        loop {
            let frame = tokio::select! {
                received = ws.next() => received,
                _ = stop.changed() => return Ended::Stopped,
            };
            let frame = match frame {
                Received::Closed(why) => return Ended::Lost(why),
                Received::Text(frame) => frame,
            };
            match self.read_pushes(&frame, position, report) {
                Ok(false) => {}
                Ok(true) => {
                    if let Err(error) = ws.send(Protocol::V2, b"{}".to_vec()).await {
                        return Ended::Lost(error);
                    }
                }
                Err(error) => return Ended::Lost(error),
            }
        }
    }

    /// Connects to `node` and subscribes, recovering from `position` when there is one.
    async fn subscribe(
        &self,
        node: usize,
        position: &mut Option<Position>,
        report: &mut ClientReport,
    ) -> Result<Ws, String> {
        let shared = self.shared;
        let mut ws = Ws::connect(&shared.nodes[node], shared.sources.pick(self.index), "").await?;
        let token = shared.minter.token(&format!("storm-{}", self.index));
        ws.send(Protocol::V2, format!(r#"{{"id":1,"connect":{{"token":{}}}}}"#, quoted(&token)).into_bytes()).await?;
        reply(&mut ws, 1).await?;
        let recovering = report.noticed_ms.is_some();
        if recovering && report.connected_ms.is_none() {
            report.connected_ms = shared.since_kill_ms();
        }
        let channel = quoted(&shared.channels[self.channel]);
        let command = match position {
            None => format!(r#"{{"id":2,"subscribe":{{"channel":{channel}}}}}"#),
            Some(p) => format!(
                r#"{{"id":2,"subscribe":{{"channel":{channel},"recover":true,"offset":{},"epoch":{}}}}}"#,
                p.offset,
                quoted(&p.epoch)
            ),
        };
        ws.send(Protocol::V2, command.into_bytes()).await?;
        let result = reply(&mut ws, 2).await?;
        let result = &result["subscribe"];
        let epoch = result["epoch"].as_str().unwrap_or_default().to_owned();
        match position {
            None => {
                *position = Some(Position { offset: result["offset"].as_u64().unwrap_or(0), epoch });
                shared.subscribed_once.fetch_add(1, Relaxed);
                shared.stats.connected.fetch_add(1, Relaxed);
            }
            Some(p) => {
                let same_epoch = p.epoch == epoch;
                for publication in result["publications"].as_array().into_iter().flatten() {
                    self.accept(p, publication["offset"].as_u64().unwrap_or(0), report);
                }
                if recovering && report.resubscribed_ms.is_none() {
                    report.resubscribed_ms = shared.since_kill_ms();
                    report.recovered = Some(same_epoch && result["recovered"].as_bool() == Some(true));
                    shared.resubscribed.fetch_add(1, Relaxed);
                }
            }
        }
        Ok(ws)
    }

    /// Takes the publications of one frame; `Ok(true)` when it held a ping to answer.
    fn read_pushes(
        &self,
        frame: &[u8],
        position: &mut Option<Position>,
        report: &mut ClientReport,
    ) -> Result<bool, String> {
        let mut ping = false;
        for line in frame.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let message: Value = serde_json::from_slice(line).map_err(|e| format!("undecodable frame: {e}"))?;
            let push = &message["push"];
            if let (Some(p), Some(offset)) = (position.as_mut(), push["pub"]["offset"].as_u64()) {
                self.accept(p, offset, report);
            } else if !push["disconnect"].is_null() {
                return Err(format!("disconnect push {}", push["disconnect"]));
            } else if message.as_object().is_some_and(|m| m.is_empty()) {
                ping = true;
            }
        }
        Ok(ping)
    }

    /// Counts a publication at `offset` against the client's position.
    fn accept(&self, position: &mut Position, offset: u64, report: &mut ClientReport) {
        match offset.cmp(&(position.offset + 1)) {
            std::cmp::Ordering::Equal => {}
            std::cmp::Ordering::Less => report.repeats += 1,
            std::cmp::Ordering::Greater => report.gaps += offset - position.offset - 1,
        }
        position.offset = position.offset.max(offset);
        self.shared.positions[self.index].store(position.offset, Relaxed);
        self.shared.stats.delivered.fetch_add(1, Relaxed);
    }
}

/// Reads frames until the reply to command `id`; fails on an error reply or a close.
async fn reply(ws: &mut Ws, id: u64) -> Result<Value, String> {
    loop {
        let frame = match tokio::time::timeout(REPLY_TIMEOUT, ws.next()).await {
            Err(_) => return Err(format!("no reply to command {id} within {REPLY_TIMEOUT:?}")),
            Ok(Received::Closed(why)) => return Err(why),
            Ok(Received::Text(frame)) => frame,
        };
        for line in frame.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
            let message: Value = serde_json::from_slice(line).map_err(|e| format!("undecodable frame: {e}"))?;
            if message["id"].as_u64() != Some(id) {
                continue;
            }
            if !message["error"].is_null() {
                return Err(format!("command {id} refused: {}", message["error"]));
            }
            return Ok(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_follows_the_sdks_full_jitter() {
        let backoff = Backoff { min_ms: 500, max_ms: 20_000 };
        for _ in 0..200 {
            let first = backoff.delay(0).as_millis();
            assert!((500..=1000).contains(&first), "attempt 0 waits 500..=1000 ms, got {first}");
            let later = backoff.delay(10).as_millis();
            assert!((500..=20_000).contains(&later), "capped at max, got {later}");
        }
        assert_eq!(Backoff { min_ms: 0, max_ms: 20_000 }.delay(3), Duration::ZERO);
    }

    #[test]
    fn next_node_never_picks_the_node_it_left() {
        for from in 0..3 {
            let picks: std::collections::BTreeSet<usize> = (0..10).map(|s| next_node(from, s, 3)).collect();
            assert!(!picks.contains(&from));
            assert_eq!(picks.len(), 2, "spreads over both others");
        }
    }
}
