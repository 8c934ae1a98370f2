//! One client connection: connect with a JWT, subscribe to its channels, then read pushes until
//! the run ends, recording publish → deliver latency and answering protocol-v2 pings. A
//! connection is one tokio task holding only its socket, its read buffer and a few integers.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

use crate::clock;
use crate::codec::{Incoming, Protocol};
use crate::jwt::Minter;
use crate::stats::Stats;
use crate::stream::{HttpStream, Transport};
use crate::target::{Sources, Target};
use crate::ws::{Received, Ws};

const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// What every connection of one group shares.
pub struct ConnCtx {
    pub protocol: Protocol,
    pub transport: Transport,
    pub target: Target,
    pub sources: Sources,
    pub minter: Minter,
    /// Connect without a token (the server's connect proxy authenticates).
    pub tokenless: bool,
    /// Channel names, indexed by channel number.
    pub channels: Arc<Vec<String>>,
    pub stats: Arc<Stats>,
}

/// One connection to open: its number (index into per-connection counters), user and channels.
#[derive(Clone, Debug)]
pub struct ConnSpec {
    pub index: usize,
    pub user: String,
    pub channels: Vec<u32>,
}

/// Opens the connection, then reads until the socket closes or the task is aborted. The
/// permit bounds how many connections are being opened at once; it is released once subscribed.
pub async fn run(ctx: Arc<ConnCtx>, spec: ConnSpec, permit: OwnedSemaphorePermit) {
    let started = Instant::now();
    let opened = open(&ctx, &spec).await;
    drop(permit);
    let stats = &ctx.stats;
    let mut ws = match opened {
        Ok(ws) => ws,
        Err(error) => {
            stats.connect_failed.fetch_add(1, Relaxed);
            stats.note_error(format!("connect: {error}"));
            return;
        }
    };
    stats.connect_latency.record_us(started.elapsed().as_micros() as u64);
    stats.connected.fetch_add(1, Relaxed);
    if let Err(error) = read_loop(&ctx, spec.index, &mut ws).await {
        stats.disconnected.fetch_add(1, Relaxed);
        stats.note_error(format!("disconnected: {error}"));
    }
}

/// A client's connection: a WebSocket, or an emulated HTTP stream.
pub enum Link {
    Ws(Ws),
    Http(HttpStream),
}

impl Link {
    pub async fn send(&mut self, protocol: Protocol, bytes: Vec<u8>) -> Result<(), String> {
        match self {
            Link::Ws(ws) => ws.send(protocol, bytes).await,
            Link::Http(stream) => stream.send(bytes).await,
        }
    }

    pub async fn next(&mut self) -> Received {
        match self {
            Link::Ws(ws) => ws.next().await,
            Link::Http(stream) => stream.next().await,
        }
    }
}

/// WebSocket upgrade (or nothing yet over HTTP), connect command, subscribe commands (one
/// frame), all replies checked.
pub async fn open(ctx: &ConnCtx, spec: &ConnSpec) -> Result<Link, String> {
    let source = ctx.sources.pick(spec.index);
    let mut ws = match ctx.transport {
        Transport::Websocket => Link::Ws(Ws::connect(&ctx.target, source, ctx.protocol.query()).await?),
        transport if ctx.protocol == Protocol::V2 => Link::Http(HttpStream::new(&ctx.target, source, transport)),
        transport => return Err(format!("--transport {transport:?} takes --protocol v2 (JSON)")),
    };
    let connect = if ctx.tokenless {
        ctx.protocol.connect_tokenless()
    } else {
        ctx.protocol.connect(&ctx.minter.token(&spec.user))
    };
    ws.send(ctx.protocol, connect).await?;
    await_replies(ctx, &mut ws, 1).await?;
    if !spec.channels.is_empty() {
        let names: Vec<String> = spec
            .channels
            .iter()
            .map(|&ch| ctx.channels.get(ch as usize).cloned().ok_or_else(|| format!("no channel #{ch}")))
            .collect::<Result<_, _>>()?;
        ws.send(ctx.protocol, ctx.protocol.subscribe(&names)).await?;
        await_replies(ctx, &mut ws, names.len()).await?;
    }
    Ok(ws)
}

/// Waits for `count` replies; an error reply fails the connection.
async fn await_replies(ctx: &ConnCtx, ws: &mut Link, count: usize) -> Result<(), String> {
    let mut replies = 0;
    while replies < count {
        let frame = match tokio::time::timeout(REPLY_TIMEOUT, ws.next()).await {
            Err(_) => return Err(format!("no reply within {REPLY_TIMEOUT:?}")),
            Ok(Received::Closed(why)) => return Err(why),
            Ok(Received::Text(frame)) => frame,
        };
        let mut ping = false;
        for message in ctx.protocol.decode_frame(&frame) {
            match message? {
                Incoming::Reply { id, error: Some(e) } => {
                    return Err(format!("server refused command {id}: {} {}", e.code, e.message))
                }
                Incoming::Reply { .. } => replies += 1,
                Incoming::Ping => ping = true,
                _ => {}
            }
        }
        if ping {
            ws.send(ctx.protocol, ctx.protocol.pong().to_vec()).await?;
        }
    }
    Ok(())
}

/// Reads pushes until the connection closes.
async fn read_loop(ctx: &ConnCtx, index: usize, ws: &mut Link) -> Result<(), String> {
    let stats = &ctx.stats;
    loop {
        let frame = match ws.next().await {
            Received::Closed(why) => return Err(why),
            Received::Text(frame) => frame,
        };
        let now = clock::unix_nanos();
        let mut ping = false;
        for message in ctx.protocol.decode_frame(&frame) {
            match message {
                Ok(Incoming::Publication(stamp)) => {
                    stats.record_delivery(index, stamp.s, now.saturating_sub(stamp.t) / 1000)
                }
                Ok(Incoming::Ping) => ping = true,
                Ok(_) => {}
                Err(error) => {
                    stats.decode_errors.fetch_add(1, Relaxed);
                    stats.note_error(format!("decode: {error}"));
                }
            }
        }
        if ping {
            stats.pings.fetch_add(1, Relaxed);
            ws.send(ctx.protocol, ctx.protocol.pong().to_vec()).await?;
        }
    }
}
