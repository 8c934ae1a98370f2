//! Command line: one subcommand per scenario, with the options they share flattened in.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::codec::Protocol;

#[derive(Parser, Debug)]
#[command(name = "gyre-bench", version, about = "Load generator for gyre and the Go centrifuge peer (loopback only)")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Ramp to N connected + subscribed clients and hold them idle: RSS/conn, idle CPU, connect rate.
    Idle(IdleArgs),
    /// One channel, N subscribers, stepped publish rates: deliveries/s, CPU/delivery, latency, loss.
    Fanout(FanoutArgs),
    /// Personal + group channels; publishes via /api/publish, then /api/broadcast batches.
    Channels(ChannelsArgs),
    /// Two nodes: subscribers on the publishing node, then on the other node; the latency delta.
    Cluster(ClusterArgs),
    /// Publish throughput and API latency to channels of a namespace with history.
    History(HistoryArgs),
    /// A recovery storm: clients with recovery on several nodes, one node killed with SIGKILL;
    /// time until its clients are subscribed elsewhere with `recovered: true`, loss and repeats.
    Storm(StormArgs),
    /// Side-by-side table of two report directories (e.g. gyre vs peer), with ratios and plot data.
    Compare(CompareArgs),
    /// N connects (no subscribe) per round: with an HS256 JWT, or without a token (the server asks
    /// its connect proxy); connects/s, connect latency, server CPU per connect.
    ConnectRate(ConnectRateArgs),
    /// Client `publish` commands into namespaces with and without a publish proxy: command reply
    /// time and publish → subscriber latency, steps interleaved by namespace.
    PublishLatency(PublishLatencyArgs),
    /// A proxy backend that answers at once: POST /connect → {"result":{"user":"bench-<n>"}},
    /// POST /publish → {"result":{}} (loopback, keep-alive HTTP/1.1).
    ProxyBackend(ProxyBackendArgs),
}

/// Options every scenario takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Server address host:port (loopback only).
    #[arg(long, default_value = "127.0.0.1:8000")]
    pub addr: String,
    /// Client protocol: v2 (gyre, Centrifugo v4+) or v1 (centrifuge 0.15 Go peer), JSON; v2pb and
    /// v1pb are the same in Protobuf (binary frames, `?format=protobuf`).
    #[arg(long, value_enum, default_value = "v2")]
    pub protocol: Protocol,
    /// How clients connect: websocket, or Centrifugo's emulated HTTP transports http_stream and
    /// sse (JSON, protocol v2; later commands are posted to /emulation).
    #[arg(long, value_enum, default_value = "websocket")]
    pub transport: crate::stream::Transport,
    /// HS256 secret for connection JWTs.
    #[arg(long, default_value = "bench-secret")]
    pub secret: String,
    /// HTTP API key (sent as X-API-Key).
    #[arg(long, default_value = "bench-key")]
    pub api_key: String,
    /// Server PID(s), comma-separated: CPU (utime+stime) and RSS are read from /proc/PID and
    /// summed (a cluster: both nodes and nats-server).
    #[arg(long, value_delimiter = ',')]
    pub server_pid: Vec<u32>,
    /// Tokio worker threads of the loader.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Spread connections over source addresses 127.0.0.2 … 127.0.0.(N+1).
    #[arg(long, default_value_t = 16)]
    pub source_ips: usize,
    /// Max new connections per second while ramping.
    #[arg(long, default_value_t = 5000)]
    pub connect_rate: usize,
    /// Max connections being opened at once.
    #[arg(long, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Refuse to open more connections than this (the fd limit here is 20,000 per process).
    #[arg(long, default_value_t = 19_900)]
    pub max_conns: usize,
    /// Abort the run after this many seconds.
    #[arg(long, default_value_t = 1800)]
    pub max_duration: u64,
    /// Name of the server in reports (e.g. gyre, peer).
    #[arg(long, default_value = "server")]
    pub label: String,
    /// Write LABEL-SCENARIO[-TAG].json and .md here (Markdown also goes to stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Distinguishes runs of one scenario with other sizes (e.g. 10k, 19.5k) in file names and tables.
    #[arg(long, default_value = "")]
    pub tag: String,
    /// Padding bytes in each publication's data.
    #[arg(long, default_value_t = 100)]
    pub payload: usize,
    /// Concurrent keep-alive HTTP publisher connections.
    #[arg(long, default_value_t = 8)]
    pub publishers: usize,
    /// Measured seconds per publishing step.
    #[arg(long, default_value_t = 10.0)]
    pub step_secs: f64,
    /// Unmeasured warm-up seconds before each step (same rate).
    #[arg(long, default_value_t = 2.0)]
    pub warmup_secs: f64,
    /// No progress line on stderr.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections to hold.
    #[arg(long, default_value_t = 1000)]
    pub conns: usize,
    /// Personal channels per connection (0, 1 or 2).
    #[arg(long, default_value_t = 1)]
    pub channels_per_conn: usize,
    /// Hold time in seconds (gyre pings every 25 s: 60 s spans two ping intervals).
    #[arg(long, default_value_t = 60.0)]
    pub hold_secs: f64,
    /// Connections opened before the RSS baseline (warms allocator arenas and threads).
    #[arg(long, default_value_t = 10)]
    pub warmup_conns: usize,
}

#[derive(Args, Debug)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    /// Subscriber counts, ascending; connections are added between them.
    #[arg(long, value_delimiter = ',', default_value = "1,100,1000")]
    pub subscribers: Vec<usize>,
    /// Publish rates for every N, in publications/s (HTTP publishes, each delivered to all N
    /// subscribers, not deliveries/s); default: sized per N for ~10k–100k deliveries/s. A step
    /// whose rate is not reached still ends on time and is marked saturated.
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// Stop stepping up the rate for an N once a step's p99 exceeds this and twice the p99 of
    /// that N's first rate.
    #[arg(long, default_value_t = 50.0)]
    pub stop_p99_ms: f64,
    /// Channel name.
    #[arg(long, default_value = "fanout")]
    pub channel: String,
}

#[derive(Args, Debug)]
pub struct ChannelsArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connections; each subscribes to its personal channel and to one group channel.
    #[arg(long, default_value_t = 2000)]
    pub conns: usize,
    /// Members per group channel.
    #[arg(long, default_value_t = 10)]
    pub group_size: usize,
    /// Channel publications per second via /api/publish (random channel each).
    #[arg(long, value_delimiter = ',', default_value = "1000,5000")]
    pub rates: Vec<f64>,
    /// Channels per /api/broadcast request.
    #[arg(long, default_value_t = 100)]
    pub batch: usize,
    /// Channel publications per second via /api/broadcast (requests/s = rate / batch).
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    pub broadcast_rates: Vec<f64>,
}

#[derive(Args, Debug)]
pub struct ClusterArgs {
    #[command(flatten)]
    pub common: Common,
    /// The second node (subscribers of the cross-node phase); publishes always go to --addr.
    #[arg(long)]
    pub addr2: String,
    /// Subscribers in each phase.
    #[arg(long, default_value_t = 100)]
    pub subscribers: usize,
    /// Publish rates.
    #[arg(long, value_delimiter = ',', default_value = "100")]
    pub rates: Vec<f64>,
}

#[derive(Args, Debug)]
pub struct HistoryArgs {
    #[command(flatten)]
    pub common: Common,
    /// Channels published to, NAMESPACE:c0 … NAMESPACE:c(N-1).
    #[arg(long, default_value_t = 100)]
    pub channels: usize,
    /// Namespace with history enabled in the server's config.
    #[arg(long, default_value = "hist")]
    pub namespace: String,
    /// Publish rates; 0 = as fast as --publishers closed-loop connections go.
    #[arg(long, value_delimiter = ',', default_value = "0")]
    pub rates: Vec<f64>,
    /// One subscriber per channel (checks that every publication is delivered).
    #[arg(long)]
    pub subscribe: bool,
}

#[derive(Args, Debug)]
pub struct StormArgs {
    #[command(flatten)]
    pub common: Common,
    /// Every node's address, comma-separated; clients are spread over them round-robin.
    /// Publications go through the first (`--addr` is ignored).
    #[arg(long, value_delimiter = ',', required = true)]
    pub nodes: Vec<String>,
    /// Index in `--nodes` of the node to kill (not 0: it takes the publications).
    #[arg(long, default_value_t = 2)]
    pub victim: usize,
    /// PID of that node; it is sent SIGKILL.
    #[arg(long)]
    pub victim_pid: u32,
    /// Clients; client i subscribes to channel i % channels.
    #[arg(long, default_value_t = 10_000)]
    pub clients: usize,
    /// Channels NAMESPACE:storm-0 … NAMESPACE:storm-(N-1).
    #[arg(long, default_value_t = 1000)]
    pub channels: usize,
    /// Namespace with history and `force_recovery` in the servers' config.
    #[arg(long, default_value = "chat")]
    pub namespace: String,
    /// Put all clients of a channel on one node (channel k on node k % nodes), so the killed
    /// node's channels have no subscriber left anywhere and every recovery reads the store.
    /// Default: a channel's clients are spread over every node.
    #[arg(long)]
    pub affinity: bool,
    /// Publications per second through the first node, round-robin over the channels.
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of publishing before the kill.
    #[arg(long, default_value_t = 3.0)]
    pub before_secs: f64,
    /// Seconds of publishing after the last client recovered.
    #[arg(long, default_value_t = 2.0)]
    pub after_secs: f64,
    /// Give up waiting for the recoveries after this many seconds.
    #[arg(long, default_value_t = 60.0)]
    pub recover_wait_secs: f64,
    /// Reconnect backoff as the SDKs do it (full jitter): attempt k waits
    /// min(max, min + random(0 .. min·2^k)) ms. The SDKs' defaults are 500 and 20000; 0 = at once.
    #[arg(long, default_value_t = 500)]
    pub reconnect_min_ms: u64,
    #[arg(long, default_value_t = 20_000)]
    pub reconnect_max_ms: u64,
    /// nats-server's monitoring address (host:port): JetStream API calls (`/jsz`) during the storm.
    #[arg(long)]
    pub nats_monitor: Option<String>,
}

/// How a `connect-rate` round authenticates its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Auth {
    /// An HS256 JWT in the connect command (`--secret`).
    Jwt,
    /// No token: the server must call its connect proxy (`client.proxy.connect`).
    Tokenless,
}

impl Auth {
    pub fn name(self) -> &'static str {
        match self {
            Auth::Jwt => "jwt",
            Auth::Tokenless => "tokenless",
        }
    }
}

#[derive(Args, Debug)]
pub struct ConnectRateArgs {
    #[command(flatten)]
    pub common: Common,
    /// Connects per round (each only connects: no subscribe); a round's connections are closed
    /// before the next round.
    #[arg(long, default_value_t = 5000)]
    pub conns: usize,
    /// Modes measured in every round, in this order.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "jwt")]
    pub auth: Vec<Auth>,
    /// Shorthand for `--auth tokenless`.
    #[arg(long, conflicts_with = "auth")]
    pub tokenless: bool,
    /// Rounds (each runs every `--auth` mode once): interleaving spreads drift of a shared box
    /// over the modes.
    #[arg(long, default_value_t = 1)]
    pub rounds: usize,
    /// Connections opened (and closed) before the first round, in every mode.
    #[arg(long, default_value_t = 100)]
    pub warmup_conns: usize,
    /// Seconds to wait after closing a round's connections (the server tears them down).
    #[arg(long, default_value_t = 1.0)]
    pub settle_secs: f64,
    /// PID of the proxy backend: its CPU is reported per round.
    #[arg(long)]
    pub backend_pid: Option<u32>,
}

#[derive(Args, Debug)]
pub struct PublishLatencyArgs {
    #[command(flatten)]
    pub common: Common,
    /// Namespaces published to (channel NAMESPACE:CHANNEL each); the server's config decides
    /// which of them has `publish_proxy_enabled`. Each round runs one step per namespace.
    #[arg(long, value_delimiter = ',', default_value = "plain,proxied")]
    pub namespaces: Vec<String>,
    /// Channel name inside every namespace.
    #[arg(long, default_value = "lat")]
    pub channel: String,
    /// Subscribers per channel (JWT connections subscribed with `subscribe`).
    #[arg(long, default_value_t = 1)]
    pub subscribers: usize,
    /// Client publish commands per second, from one publishing connection (one command in
    /// flight: the next is sent at its tick or when the previous reply arrives, if later).
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Rounds of steps (one step per namespace each, `--step-secs` measured after
    /// `--warmup-secs`).
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// PID of the proxy backend: its CPU is reported per step.
    #[arg(long)]
    pub backend_pid: Option<u32>,
}

#[derive(Args, Debug)]
pub struct ProxyBackendArgs {
    /// Address to listen on (loopback only).
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: String,
    /// Port (0 = any free port; the address is printed on stdout as `listening addr=…`).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    pub workers: usize,
    /// Exit after this many seconds.
    #[arg(long, default_value_t = 3600)]
    pub max_duration: u64,
    /// No call counts on stderr.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Args, Debug)]
pub struct CompareArgs {
    /// Reports of the first server (LABEL-SCENARIO.json files).
    pub a: PathBuf,
    /// Reports of the second server.
    pub b: PathBuf,
    /// Write combined.md, combined.json and plot data here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}
