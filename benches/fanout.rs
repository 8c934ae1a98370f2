//! In-process fan-out: one real [`gyre::channel::Channel`] actor hands every publication to N
//! subscriber sinks through the same path a WebSocket session is fed by (pre-encoded shared
//! frame, per-client byte budget, the client's [`Outbox`] and its wake-up), with no sockets, no
//! HTTP and no registry. Each sink is a small actor fed by its outbox exactly as
//! `ClientSession` is (`Deliveries::attach`, batches through `Deliveries::deliver`); it counts the
//! frames and, with `--write MODE`, also does what a session does to hand each frame to its
//! socket writer, without the socket: `--write session` queues the frame's shared wire bytes
//! (header included, built once per channel) as the session does since 2026-12-07; `--write
//! codec` encodes each frame with actix's WebSocket codec into a per-connection buffer, as the
//! session's `ctx.text` did before (header and payload copied per subscriber).
//!
//! Run (timing): `cargo bench --bench fanout -- [subscribers] [publications] [rounds] [--paced]`
//! (defaults 1000 200 10). Every round starts a fresh channel and fresh sinks (not timed), then
//! times M `Broadcast`s until every sink has counted M frames; prints deliveries, wall time and
//! deliveries/s per round, and the median. By default all M are queued at once, so a sink finds
//! many frames per wake-up (a busy channel); `--paced` sends the next publication only after the
//! channel answered the previous one, so every sink is woken once per frame (a quiet channel).
//!
//! Deterministic instruction counts (callgrind): `bash benches/callgrind_fanout.sh` builds the
//! release bench and runs it twice under `valgrind --tool=callgrind` with the same subscriber
//! count and a small and a large publication count (one round each). Instructions per delivery
//! are `(Ir_large - Ir_small) / (deliveries_large - deliveries_small)`: process start, actix
//! system start, spawning and joining the N sinks are identical in both runs and cancel out, so
//! what is left is the per-publication cost (encode once, `Broadcast` message) spread over N
//! subscribers plus the per-delivery cost (budget accounting, outbox push, wake-up, sink
//! handler). By hand:
//!
//! ```sh
//! cargo bench --bench fanout --no-run            # prints the binary: target/release/deps/fanout-<hash>
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.small target/release/deps/fanout-<hash> 1000 20 1
//! valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.large target/release/deps/fanout-<hash> 1000 200 1
//! grep -E '^(summary|totals):' /tmp/cg.small /tmp/cg.large   # total Ir of each run
//! ```
//!
//! `callgrind_annotate /tmp/cg.large | head -40` shows where the instructions go.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use gyre::channel::messages::{Broadcast, Join};
use gyre::channel::{Channel, ChannelRules};
use gyre::client::messages::{ClientHandle, Deliver};
use gyre::client::outbox::{Deliveries, Outbox};
use gyre::config::Settings;
use gyre::domain::{ClientId, ClientInfo, Payload, Publication};
use gyre::protocol::Protocol;
use gyre::registry::messages::ChannelIdle;
use tokio::sync::Notify;

const CHANNEL: &str = "news";

/// Stands in for the registry: channels report idleness to it; nothing to do here.
struct IdleProbe;

impl Actor for IdleProbe {
    type Context = Context<Self>;
}

impl Handler<ChannelIdle> for IdleProbe {
    type Result = ();

    fn handle(&mut self, _: ChannelIdle, _: &mut Self::Context) {}
}

/// Counts when every sink has seen all the frames it expects.
struct Finish {
    sinks_left: AtomicUsize,
    done: Notify,
}

/// What a sink does with each frame besides counting it.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Write {
    /// Nothing.
    Count,
    /// Queue the shared wire bytes for the writer (the session's path).
    Session,
    /// Encode with actix's codec into a buffer (the session's path before shared wire frames).
    Codec,
}

/// A subscriber without a socket: counts the frames its outbox hands it.
struct Sink {
    outbox: Arc<Outbox>,
    frames: usize,
    bytes: usize,
    expected: usize,
    finish: Arc<Finish>,
    write: Write,
    /// The writer's queue (`Write::Session`), emptied after each batch as a socket write would.
    queued: VecDeque<bytes::Bytes>,
    /// The context's write buffer (`Write::Codec`), emptied after each batch.
    encoded: bytes::BytesMut,
    codec: actix_http::ws::Codec,
}

impl Actor for Sink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        Self::attach(self.outbox.clone(), ctx);
    }
}

impl Deliveries for Sink {
    fn deliver(&mut self, batch: &mut VecDeque<Deliver>, ctx: &mut Self::Context) {
        batch.drain(..).for_each(|message| self.count(message));
        if self.write != Write::Count {
            // The socket takes the batch: the queue and buffer are emptied, as after a write.
            std::hint::black_box((&self.queued, &self.encoded));
            self.queued.clear();
            self.encoded.clear();
        }
        if self.frames == self.expected {
            // Its outbox never ends by itself (a session's ends with its socket).
            ctx.stop();
        }
    }
}

impl Sink {
    fn count(&mut self, message: Deliver) {
        match message {
            Deliver::Frame(frame) => {
                self.bytes += frame.len();
                match self.write {
                    Write::Count => {}
                    Write::Session => self.queued.push_back(frame.wire()),
                    Write::Codec => {
                        let payload = frame.wire().slice(frame.wire().len() - frame.len()..);
                        let message = actix_http::ws::Message::Binary(payload);
                        tokio_util::codec::Encoder::encode(&mut self.codec, message, &mut self.encoded)
                            .expect("encodes");
                    }
                }
                self.frames += 1;
                if self.frames == self.expected && self.finish.sinks_left.fetch_sub(1, Ordering::AcqRel) == 1 {
                    self.finish.done.notify_one();
                }
            }
            Deliver::Subscribed(answer) => assert!(answer.outcome.is_ok(), "subscribe refused: {:?}", answer.outcome),
            Deliver::Disconnect(disconnect) => {
                panic!("sink disconnected: {disconnect:?} (byte budget too small)")
            }
            other => panic!("unexpected message for a sink: {other:?}"),
        }
    }
}

struct Round {
    deliveries: usize,
    elapsed: Duration,
}

fn payload(n: usize) -> Payload {
    // ~100 bytes of JSON, like the load plan's payload (a counter and a filler string).
    let text = format!(r#"{{"n":{n},"text":"{}"}}"#, "x".repeat(80));
    Payload::from(text.as_str())
}

async fn round(settings: &Settings, subscribers: usize, publications: usize, paced: bool, write: Write) -> Round {
    let rules = ChannelRules::from_settings(settings).expect("channel rules");
    let resolved = rules.resolve(CHANNEL).expect("channel resolves");
    let registry = IdleProbe.start();
    let channel = Channel::new(
        resolved.name.clone(),
        resolved.namespace.clone(),
        None,
        std::sync::Arc::new(registry.recipient()),
        settings.client.queue_max_size,
        1,
    )
    .start();

    let finish = Arc::new(Finish { sinks_left: AtomicUsize::new(subscribers), done: Notify::new() });
    let mut sinks = Vec::with_capacity(subscribers);
    for i in 0..subscribers {
        let outbox = Outbox::new();
        let sink = Sink {
            outbox: outbox.clone(),
            frames: 0,
            bytes: 0,
            expected: publications,
            finish: finish.clone(),
            write,
            queued: VecDeque::new(),
            encoded: bytes::BytesMut::new(),
            codec: actix_http::ws::Codec::new().max_size(usize::MAX),
        }
        .start();
        let id = ClientId::from(format!("sink-{i:06}").as_str());
        let info =
            ClientInfo { user: Arc::from(format!("user-{i}")), client: id.clone(), conn_info: None, chan_info: None };
        channel.do_send(Join {
            client: ClientHandle::new(id, outbox, Protocol::Json),
            info,
            push_join_leave: false,
            emit_join_leave: false,
            recover: None,
            recovery_limit: 0,
            delta: Default::default(),
        });
        sinks.push(sink);
    }
    // Every Join (and its Subscribed answer) is handled before timing starts: a request/response
    // through the channel's mailbox returns only after the joins queued before it.
    let publications_data: Vec<Publication> =
        (0..publications).map(|n| Publication { data: payload(n), ..Default::default() }).collect();
    let mut publications_data = publications_data.into_iter();
    let first = publications_data.next().expect("at least one publication");
    channel
        .send(Broadcast { publication: first, skip_history: false, idempotency_key: None, reply: None })
        .await
        .expect("channel alive");
    // That warm-up publication counts: each sink expects `publications` frames in total.
    let started = Instant::now();
    for publication in publications_data {
        let broadcast = Broadcast { publication, skip_history: false, idempotency_key: None, reply: None };
        if paced {
            // The answer comes after the channel woke every sink, which then run before this
            // task: each subscriber handles one frame per wake-up, as at a low publication rate.
            channel.send(broadcast).await.expect("channel alive");
        } else {
            channel.do_send(broadcast);
        }
    }
    if publications > 0 && subscribers > 0 {
        finish.done.notified().await;
    }
    let elapsed = started.elapsed();
    drop(sinks);
    Round { deliveries: subscribers * publications.saturating_sub(1), elapsed }
}

fn arg(n: usize, default: usize) -> usize {
    std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-') && !["count", "session", "codec"].contains(&a.as_str()))
        .nth(n)
        .map(|a| a.parse().unwrap_or_else(|_| panic!("argument {} must be a number, got {a:?}", n + 1)))
        .unwrap_or(default)
}

fn main() {
    let subscribers = arg(0, 1000);
    let publications = arg(1, 200).max(1);
    let rounds = arg(2, 10).max(1);
    let paced = std::env::args().any(|a| a == "--paced");
    let args: Vec<String> = std::env::args().collect();
    let write = match args.iter().position(|a| a == "--write").and_then(|i| args.get(i + 1)).map(String::as_str) {
        None | Some("count") => Write::Count,
        Some("session") => Write::Session,
        Some("codec") => Write::Codec,
        Some(other) => panic!("--write takes count, session or codec, got {other:?}"),
    };
    let settings = Settings::default();
    println!(
        "fan-out: {subscribers} subscribers x {publications} publications (1 untimed warm-up + {} timed), {rounds} round(s){}",
        publications - 1,
        if paced { ", paced (one publication at a time)" } else { "" }
    );
    // Each queued delivery takes one `Deliver` slot (whatever its variant) in the outbox.
    println!("size_of::<Deliver>() = {} bytes", std::mem::size_of::<Deliver>());
    let results = System::new().block_on(async move {
        let mut results = Vec::with_capacity(rounds);
        for n in 1..=rounds {
            let r = round(&settings, subscribers, publications, paced, write).await;
            println!(
                "round {n}: {} deliveries in {:.1} ms = {:.0} deliveries/s ({:.0} ns/delivery)",
                r.deliveries,
                r.elapsed.as_secs_f64() * 1e3,
                r.deliveries as f64 / r.elapsed.as_secs_f64(),
                r.elapsed.as_nanos() as f64 / r.deliveries.max(1) as f64
            );
            results.push(r);
        }
        results
    });
    let mut rates: Vec<f64> = results.iter().map(|r| r.deliveries as f64 / r.elapsed.as_secs_f64()).collect();
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!("median: {median:.0} deliveries/s ({:.0} ns/delivery) over {rounds} round(s)", 1e9 / median);
    // Every frame the process delivered, warm-up ones included (what callgrind's total covers).
    println!("total deliveries: {}", rounds * subscribers * publications);
}
