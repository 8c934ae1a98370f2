//! Node configuration: the typed [`Settings`] tree, with Centrifugo v6 key names.
//!
//! Every section is `#[serde(default)]`, so a config file only names what it changes. Loading
//! (file → v5 key mapping → environment overrides → validation) lives in [`load`]; the
//! documented example of every key is `config/default.yaml`.

pub mod code_maps;
mod compat;
pub mod duration;
mod env;
pub mod generate;
pub mod load;
pub mod proxy;
pub mod rate_limit;
mod schema;
pub mod tls;
mod v5;
pub mod validate;

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use load::{load, load_with, load_with_env, process_env, ConfigError, Loaded, Override};
pub use tls::TlsSettings;
pub use validate::validate;

/// The whole node configuration (Centrifugo v6 layout).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// `http_server.*`: listeners.
    pub http_server: HttpServerSettings,
    /// `log.*`: logging.
    pub log: LogSettings,
    /// `node.*`: node identity.
    pub node: NodeSettings,
    /// `shutdown.*`: graceful shutdown.
    pub shutdown: ShutdownSettings,
    /// `engine.*`: which engine backs history and presence.
    pub engine: EngineSettings,
    /// `broker.*`: the cross-node publication relay.
    pub broker: BrokerSettings,
    /// `presence_manager.*`: where presence lives.
    pub presence_manager: PresenceManagerSettings,
    /// `client.*`: client connections.
    pub client: ClientSettings,
    /// `channel.*`: channel names and per-namespace options.
    pub channel: ChannelSettings,
    /// `rpc.*`: built-in client RPC.
    pub rpc: RpcSettings,
    /// `http_api.*`: the server HTTP API.
    pub http_api: HttpApiSettings,
    /// `websocket.*`: the bidirectional WebSocket transport.
    pub websocket: WebsocketSettings,
    /// `uni_websocket.*`: the unidirectional WebSocket transport.
    pub uni_websocket: UniWebsocketSettings,
    /// `http_stream.*`: bidirectional emulation over HTTP streaming.
    pub http_stream: HttpStreamSettings,
    /// `sse.*`: bidirectional emulation over Server-Sent Events.
    pub sse: SseSettings,
    /// `emulation.*`: where emulated transports send their commands.
    pub emulation: EmulationSettings,
    /// `uni_sse.*`: unidirectional Server-Sent Events.
    pub uni_sse: UniSseSettings,
    /// `uni_http_stream.*`: unidirectional HTTP streaming.
    pub uni_http_stream: UniHttpStreamSettings,
    /// `uni_grpc.*`: the unidirectional gRPC stream, on a port of its own.
    pub uni_grpc: UniGrpcSettings,
    /// `grpc_api.*`: the server API over gRPC, on a port of its own.
    pub grpc_api: GrpcApiSettings,
    /// `prometheus.*`: `/metrics`.
    pub prometheus: PrometheusSettings,
    /// `health.*`: `/health`.
    pub health: HealthSettings,
    /// `swagger.*`: the OpenAPI document of the server HTTP API.
    pub swagger: SwaggerSettings,
    /// `admin.*`: the admin API (`/admin/init`, `/admin/auth`, `/admin/api`).
    pub admin: AdminSettings,
    /// Named proxies, referenced by `*_proxy_name` options.
    pub proxies: Vec<proxy::NamedProxy>,
}

/// `http_server.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpServerSettings {
    /// Address to bind; empty means all interfaces. Default "".
    pub address: String,
    /// Main port (WebSocket, and API/health/metrics unless `internal_port` is set). Default 8000.
    pub port: u16,
    /// Address for the internal port; empty falls back to `address`.
    pub internal_address: String,
    /// Port for API, `/health` and `/metrics`; empty means "same as `port`".
    pub internal_port: String,
    /// gyre: HTTP worker threads per listener; 0 (default) means one per CPU the process may use.
    /// With one worker the registry and channels run on the worker's thread too.
    pub workers: usize,
    /// TLS on the main port (and on the internal port, unless `tls_external` or `internal_tls`).
    pub tls: TlsSettings,
    /// TLS on the main port only: the internal port stays plain. Default false.
    pub tls_external: bool,
    /// TLS of its own for the internal port (used when enabled, whatever `tls_external` says).
    pub internal_tls: TlsSettings,
}

impl Default for HttpServerSettings {
    fn default() -> Self {
        Self {
            address: String::new(),
            port: 8000,
            internal_address: String::new(),
            internal_port: String::new(),
            workers: 0,
            tls: TlsSettings::default(),
            tls_external: false,
            internal_tls: TlsSettings::default(),
        }
    }
}

impl HttpServerSettings {
    /// Worker threads per listener: `workers`, or one per CPU this process may run on (its
    /// affinity mask and cgroup quota), as actix-web's own default.
    pub fn worker_threads(&self) -> usize {
        match self.workers {
            0 => std::thread::available_parallelism().map_or(1, usize::from),
            n => n,
        }
    }
}

/// `log.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogSettings {
    /// One of `none`, `trace`, `debug`, `info`, `warn`, `error`. Default `info`.
    pub level: String,
    /// Log file path; empty means stdout.
    pub file: String,
    /// `text` (default) or `json`.
    pub format: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self { level: "info".into(), file: String::new(), format: "text".into() }
    }
}

/// `node.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NodeSettings {
    /// Human-readable node name; empty means `<hostname>_<port>`.
    pub name: String,
    /// Most channels this node holds: channels with subscribers here, history kept without
    /// subscribers, and kept stream positions (the oldest of those is forgotten to make room).
    /// A new channel over it is refused with 106. 0 = no limit (Centrifugo has none).
    pub channel_limit: usize,
}

/// `shutdown.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ShutdownSettings {
    /// Upper bound for a graceful shutdown. Default 30s.
    #[serde(with = "duration")]
    pub timeout: Duration,
}

impl Default for ShutdownSettings {
    fn default() -> Self {
        Self { timeout: Duration::from_secs(30) }
    }
}

/// `engine.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineSettings {
    /// `memory` (the only engine gyre has; `redis` is refused at validation).
    #[serde(rename = "type")]
    pub kind: String,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self { kind: "memory".into() }
    }
}

/// `broker.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BrokerSettings {
    /// Use a broker other than the engine's.
    pub enabled: bool,
    /// `memory` or `nats`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `broker.nats.*`.
    pub nats: NatsSettings,
}

impl Default for BrokerSettings {
    fn default() -> Self {
        Self { enabled: false, kind: "memory".into(), nats: NatsSettings::default() }
    }
}

/// `broker.nats.*` and `presence_manager.nats.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NatsSettings {
    /// NATS server URL. Default `nats://localhost:4222`.
    pub url: String,
    /// Subject prefix. Default `centrifugo`.
    pub prefix: String,
    /// Connect timeout. Default 1s.
    #[serde(with = "duration")]
    pub dial_timeout: Duration,
    /// Write timeout. Default 1s.
    #[serde(with = "duration")]
    pub write_timeout: Duration,
    /// gyre: replicas of the JetStream history streams (1–5; use 3 on a 3-server NATS cluster).
    /// Default 1.
    pub history_replicas: usize,
}

impl Default for NatsSettings {
    fn default() -> Self {
        Self {
            url: "nats://localhost:4222".into(),
            prefix: "centrifugo".into(),
            dial_timeout: Duration::from_secs(1),
            write_timeout: Duration::from_secs(1),
            history_replicas: 1,
        }
    }
}

/// `presence_manager.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PresenceManagerSettings {
    /// Use a presence manager other than the engine's.
    pub enabled: bool,
    /// `memory` or `nats`.
    #[serde(rename = "type")]
    pub kind: String,
    /// `presence_manager.nats.*`.
    pub nats: NatsSettings,
}

impl Default for PresenceManagerSettings {
    fn default() -> Self {
        Self { enabled: false, kind: "memory".into(), nats: NatsSettings::default() }
    }
}

/// JWT verification keys and claim checks (`client.token.*`, `client.subscription_token.*`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TokenSettings {
    /// Enables HS256/384/512 with this secret.
    pub hmac_secret_key: String,
    /// Previous HMAC secret accepted during rotation.
    pub hmac_previous_secret_key: String,
    /// Unix seconds after which the previous secret is refused (0 = no limit).
    pub hmac_previous_secret_key_valid_until: i64,
    /// PEM public key (PKIX or certificate); enables RS256/384/512.
    pub rsa_public_key: String,
    /// PEM public key (PKIX or certificate); enables ES256/384.
    pub ecdsa_public_key: String,
    /// JWKS URL (http or https); when set, only its keys verify tokens (by `kid`).
    pub jwks_public_endpoint: String,
    /// Required `aud` value.
    pub audience: String,
    /// Some `aud` element must match this regex (instead of `audience`).
    pub audience_regex: String,
    /// Required `iss` value.
    pub issuer: String,
    /// `iss` must match this regex (instead of `issuer`).
    pub issuer_regex: String,
    /// Accept a templated JWKS endpoint whose placeholders come from regex groups that are not
    /// plain lists of alternatives (a warning instead of an error).
    pub insecure_skip_jwks_endpoint_safety_check: bool,
    /// Claim holding the user id instead of `sub`.
    pub user_id_claim: String,
}

/// `client.subscription_token.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubscriptionTokenSettings {
    /// Use these keys (instead of `client.token`) for subscription tokens.
    pub enabled: bool,
    /// The keys and checks.
    #[serde(flatten)]
    pub token: TokenSettings,
}

/// `client.subscribe_to_user_personal_channel.*`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PersonalChannelSettings {
    /// Subscribe every authenticated connection to `#<user>` server-side.
    pub enabled: bool,
    /// Namespace of the personal channel.
    pub personal_channel_namespace: String,
    /// Keep one connection per user (needs presence in that namespace).
    pub single_connection: bool,
}

/// `client.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientSettings {
    /// Origin patterns allowed for WebSocket handshakes (`*` wildcards). Empty: only requests
    /// without an Origin header are accepted.
    pub allowed_origins: Vec<String>,
    /// Connection (and, by default, subscription) token verification.
    pub token: TokenSettings,
    /// Separate subscription token verification.
    pub subscription_token: SubscriptionTokenSettings,
    /// Accept connects without a token as anonymous.
    pub allow_anonymous_connect_without_token: bool,
    /// The connect result includes the server time (`time`, Unix milliseconds). Default false.
    pub connect_include_server_time: bool,
    /// A header an authenticating gateway sets to the user id: a connect without a token is
    /// that user's. Empty: not used. Default "".
    pub user_id_http_header: String,
    /// Refuse connection tokens with an empty `sub` (3507).
    pub disallow_anonymous_connection_tokens: bool,
    /// Development mode: no token needed, every permission granted.
    pub insecure: bool,
    /// Accept tokens without checking their signature (development only).
    pub insecure_skip_token_signature_verify: bool,
    /// Server ping period. Default 25s.
    #[serde(with = "duration")]
    pub ping_interval: Duration,
    /// Time a client has to answer a ping. Default 8s.
    #[serde(with = "duration")]
    pub pong_timeout: Duration,
    /// Grace after connection expiry before 3005. Default 25s.
    #[serde(with = "duration")]
    pub expired_close_delay: Duration,
    /// Grace after subscription expiry before 2501. Default 25s.
    #[serde(with = "duration")]
    pub expired_sub_close_delay: Duration,
    /// Time allowed to send a successful connect before 3502. Default 10s.
    #[serde(with = "duration")]
    pub stale_close_delay: Duration,
    /// Max subscriptions per connection (error 106). Default 128.
    pub channel_limit: usize,
    /// Bytes that may wait for one client before it is closed with 3008. Default 1 MiB.
    pub queue_max_size: usize,
    /// How often presence entries are refreshed and expiries checked. Default 27s.
    #[serde(with = "duration")]
    pub presence_update_interval: Duration,
    /// Commands processed concurrently per connection (gyre always processes in order).
    pub concurrency: usize,
    /// Periodic stream position check for positioned subscriptions. Default 40s.
    #[serde(with = "duration")]
    pub channel_position_check_delay: Duration,
    /// Max connections per node (0 = unlimited).
    pub connection_limit: usize,
    /// Max connections per user per node (0 = unlimited).
    pub user_connection_limit: usize,
    /// Max new connections per second per node (0 = unlimited).
    pub connection_rate_limit: usize,
    /// Clamp for client history `limit`. Default 300.
    pub history_max_publication_limit: usize,
    /// Max publications returned by recovery. Default 300.
    pub recovery_max_publication_limit: usize,
    /// Automatic personal channel subscription.
    pub subscribe_to_user_personal_channel: PersonalChannelSettings,
    /// Per-connection command rate limits (Centrifugo PRO's `client.rate_limit`).
    pub rate_limit: rate_limit::RateLimitSettings,
    /// Error codes of refused unidirectional connects → the disconnect the client gets.
    pub connect_code_to_unidirectional_disconnect: code_maps::CodeToDisconnect,
    /// Connect and refresh proxies.
    pub proxy: proxy::ClientProxySettings,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            token: TokenSettings::default(),
            subscription_token: SubscriptionTokenSettings::default(),
            allow_anonymous_connect_without_token: false,
            user_id_http_header: String::new(),
            connect_include_server_time: false,
            disallow_anonymous_connection_tokens: false,
            insecure: false,
            insecure_skip_token_signature_verify: false,
            ping_interval: Duration::from_secs(25),
            pong_timeout: Duration::from_secs(8),
            expired_close_delay: Duration::from_secs(25),
            expired_sub_close_delay: Duration::from_secs(25),
            stale_close_delay: Duration::from_secs(10),
            channel_limit: 128,
            queue_max_size: 1_048_576,
            presence_update_interval: Duration::from_secs(27),
            concurrency: 0,
            channel_position_check_delay: Duration::from_secs(40),
            connection_limit: 0,
            user_connection_limit: 0,
            connection_rate_limit: 0,
            connect_code_to_unidirectional_disconnect: code_maps::CodeToDisconnect::default(),
            history_max_publication_limit: 300,
            recovery_max_publication_limit: 300,
            subscribe_to_user_personal_channel: PersonalChannelSettings::default(),
            rate_limit: rate_limit::RateLimitSettings::default(),
            proxy: proxy::ClientProxySettings::default(),
        }
    }
}

/// Options of one channel namespace (or of channels without a namespace).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelOptions {
    /// Track presence (needed for presence and presence_stats).
    pub presence: bool,
    /// Emit join/leave to subscribers that ask for them.
    pub join_leave: bool,
    /// Push join/leave even when the client did not ask.
    pub force_push_join_leave: bool,
    /// Publications kept in history (history is on when size and ttl are both > 0).
    pub history_size: usize,
    /// How long publications stay in history.
    #[serde(with = "duration")]
    pub history_ttl: Duration,
    /// How long stream metadata (epoch, top offset) is kept; 0 = `channel.history_meta_ttl`.
    #[serde(with = "duration")]
    pub history_meta_ttl: Duration,
    /// Every subscription is positioned.
    pub force_positioning: bool,
    /// Clients may ask for positioning.
    pub allow_positioning: bool,
    /// Every subscription is recoverable (needs history).
    pub force_recovery: bool,
    /// Clients may ask for recovery.
    pub allow_recovery: bool,
    /// `""`/`stream` (recover every missed publication) or `cache` (recover only the latest).
    pub force_recovery_mode: String,
    /// Cache mode: every subscription recovers the latest publication, even without asking
    /// (needs `force_recovery` and `force_recovery_mode: cache`).
    pub auto_cache_recover: bool,
    /// Authenticated clients may subscribe without a subscription token.
    pub allow_subscribe_for_client: bool,
    /// Anonymous clients may subscribe without a token (with `allow_subscribe_for_client`).
    pub allow_subscribe_for_anonymous: bool,
    /// Subscribers may publish.
    pub allow_publish_for_subscriber: bool,
    /// Any authenticated client may publish.
    pub allow_publish_for_client: bool,
    /// Anonymous clients may publish.
    pub allow_publish_for_anonymous: bool,
    /// Subscribers may query presence.
    pub allow_presence_for_subscriber: bool,
    /// Any authenticated client may query presence.
    pub allow_presence_for_client: bool,
    /// Anonymous clients may query presence.
    pub allow_presence_for_anonymous: bool,
    /// Subscribers may query history.
    pub allow_history_for_subscriber: bool,
    /// Any authenticated client may query history.
    pub allow_history_for_client: bool,
    /// Anonymous clients may query history.
    pub allow_history_for_anonymous: bool,
    /// Enable `#`-limited channels (`dialog#42,43`).
    pub allow_user_limited_channels: bool,
    /// Regex the channel name (after the namespace) must match on client subscribe.
    pub channel_regex: String,
    /// Publication data check: `""` (not empty), `json`, `json_object`, `binary` (anything);
    /// empty = `channel.publication_data_format`.
    pub publication_data_format: String,
    /// Treat every publish (API and client) as a delta publish.
    pub delta_publish: bool,
    /// Delta types clients may negotiate: only `fossil` (patches need history and a positioned
    /// or recoverable subscription).
    pub allowed_delta_types: Vec<String>,
    /// Clients may send tag filters (not supported: subscribe with `tf` gets 107).
    pub allow_tags_filter: bool,
    /// `""`/`stream` only.
    pub subscription_type: String,
    /// Subscribes are decided by a subscribe proxy.
    pub subscribe_proxy_enabled: bool,
    /// Which one (`""`/`default` = `channel.proxy.subscribe`).
    pub subscribe_proxy_name: String,
    /// Client publications go through a publish proxy.
    pub publish_proxy_enabled: bool,
    /// Which one (`""`/`default` = `channel.proxy.publish`).
    pub publish_proxy_name: String,
    /// Subscriptions are extended by a sub_refresh proxy when they expire.
    pub sub_refresh_proxy_enabled: bool,
    /// Which one (`""`/`default` = `channel.proxy.sub_refresh`).
    pub sub_refresh_proxy_name: String,
    /// Subscription streams from a gRPC proxy (refused: not supported yet).
    pub subscribe_stream_proxy_enabled: bool,
    /// Which one.
    pub subscribe_stream_proxy_name: String,
    /// Bidirectional subscription streams.
    pub subscribe_stream_proxy_bidirectional: bool,
}

impl ChannelOptions {
    /// History is on only when both size and ttl are set (Centrifugo rule).
    pub fn history_enabled(&self) -> bool {
        self.history_size > 0 && !self.history_ttl.is_zero()
    }
}

/// One entry of `channel.namespaces`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NamespaceSettings {
    /// Namespace name, the part before `:` in channel names.
    pub name: String,
    /// The namespace's channel options.
    #[serde(flatten)]
    pub options: ChannelOptions,
}

/// `channel.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChannelSettings {
    /// Options of channels without a namespace.
    pub without_namespace: ChannelOptions,
    /// Named namespaces.
    pub namespaces: Vec<NamespaceSettings>,
    /// Default stream metadata retention. Default 720h.
    #[serde(with = "duration")]
    pub history_meta_ttl: Duration,
    /// Default publication data check.
    pub publication_data_format: String,
    /// Max channel name length (client side). Default 255.
    pub max_length: usize,
    /// Prefix of private channels. Default `$`.
    pub private_prefix: String,
    /// Separator between namespace and name. Default `:`.
    pub namespace_boundary: String,
    /// Marks user-limited channels. Default `#`.
    pub user_boundary: String,
    /// Separates user ids in user-limited channels. Default `,`.
    pub user_separator: String,
    /// The proxies namespaces use under the name `default`.
    pub proxy: proxy::ChannelProxySettings,
}

impl Default for ChannelSettings {
    fn default() -> Self {
        Self {
            without_namespace: ChannelOptions::default(),
            namespaces: Vec::new(),
            history_meta_ttl: Duration::from_secs(720 * 3600),
            publication_data_format: String::new(),
            max_length: 255,
            private_prefix: "$".into(),
            namespace_boundary: ":".into(),
            user_boundary: "#".into(),
            user_separator: ",".into(),
            proxy: proxy::ChannelProxySettings::default(),
        }
    }
}

impl ChannelSettings {
    /// Every channel options object with its config path (`channel.without_namespace`,
    /// `channel.namespaces[i]`), for checks across namespaces.
    pub fn namespace_options(&self) -> impl Iterator<Item = (String, &ChannelOptions)> {
        std::iter::once(("channel.without_namespace".to_owned(), &self.without_namespace))
            .chain(self.namespaces.iter().enumerate().map(|(i, ns)| (format!("channel.namespaces[{i}]"), &ns.options)))
    }
}

/// `admin.*`: Centrifugo's admin endpoints, on the internal port unless `external`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AdminSettings {
    /// Serve the admin endpoints.
    pub enabled: bool,
    /// Path prefix of the admin endpoints (`""`: `/admin/...`).
    pub handler_prefix: String,
    /// The login password.
    pub password: String,
    /// Signs admin tokens (HMAC-SHA256).
    pub secret: String,
    /// No login: every admin call is allowed (development only).
    pub insecure: bool,
    /// Serve them on the main port even when an internal port is set.
    pub external: bool,
    /// A directory of web UI files to serve instead of the built-in one.
    pub web_path: String,
    /// An address to proxy the web UI from (UI development).
    pub web_proxy_address: String,
}

/// `rpc.ping.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcPingSettings {
    /// Answer client RPC `method` with an empty result.
    pub enabled: bool,
    /// The method name. Default `ping`.
    pub method: String,
}

impl Default for RpcPingSettings {
    fn default() -> Self {
        Self { enabled: false, method: "ping".into() }
    }
}

/// `rpc.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RpcSettings {
    /// Built-in ping RPC.
    pub ping: RpcPingSettings,
    /// The proxy RPC namespaces use under the name `default`.
    pub proxy: proxy::ProxySettings,
    /// Methods without a namespace.
    pub without_namespace: proxy::RpcProxyChoice,
    /// RPC namespaces (the method's text before `namespace_boundary`).
    pub namespaces: Vec<proxy::RpcNamespace>,
    /// Separates an RPC namespace from the method. Default `:`.
    pub namespace_boundary: String,
}

impl Default for RpcSettings {
    fn default() -> Self {
        Self {
            ping: RpcPingSettings::default(),
            proxy: proxy::ProxySettings::default(),
            without_namespace: proxy::RpcProxyChoice::default(),
            namespaces: Vec::new(),
            namespace_boundary: ":".into(),
        }
    }
}

/// `http_api.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpApiSettings {
    /// API key; empty means every call gets 401 unless `insecure`.
    pub key: String,
    /// No API key check.
    pub insecure: bool,
    /// `""` (errors in a 200 body) or `transport` (errors as HTTP statuses).
    pub error_mode: String,
    /// Serve the API on the main port even when `internal_port` is set.
    pub external: bool,
    /// No HTTP API at all.
    pub disabled: bool,
    /// Path prefix. Default `/api`.
    pub handler_prefix: String,
}

impl Default for HttpApiSettings {
    fn default() -> Self {
        Self {
            key: String::new(),
            insecure: false,
            error_mode: String::new(),
            external: false,
            disabled: false,
            handler_prefix: "/api".into(),
        }
    }
}

/// `websocket.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct WebsocketSettings {
    /// No WebSocket endpoint.
    pub disabled: bool,
    /// Path. Default `/connection/websocket`.
    pub handler_prefix: String,
    /// Max incoming message size; larger closes with 1009. Default 65536.
    pub message_size_limit: usize,
    /// A socket that takes nothing for this long is closed (the client stopped reading). Default 1s.
    #[serde(with = "duration")]
    pub write_timeout: Duration,
    /// Offer permessage-deflate (RFC 7692, without context takeover). Default false.
    pub compression: bool,
    /// Messages shorter than this go out uncompressed. Default 0.
    pub compression_min_size: usize,
    /// zlib level: 1 (fastest) to 9, 0 stores, -1 is 6. Default 1.
    pub compression_level: i32,
    /// Longest incoming message once inflated; 0 is 10 × `message_size_limit`. Default 0.
    pub decompressed_message_size_limit: usize,
}

impl WebsocketSettings {
    /// The zlib level `compression_level` stands for (-1 is zlib's default, 6; -2, Go's
    /// Huffman-only level, has no equivalent here and is the fastest level, 1).
    pub fn deflate_level(&self) -> u32 {
        match self.compression_level {
            -1 => 6,
            -2 => 1,
            level => level.clamp(0, 9) as u32,
        }
    }
}

/// `uni_websocket.*`: a plain WebSocket that receives pushes (Centrifugo's unidirectional
/// client protocol): the connect request comes as the first message or in `cf_connect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UniWebsocketSettings {
    /// Serve the endpoint. Default false.
    pub enabled: bool,
    /// Path. Default `/connection/uni_websocket`.
    pub handler_prefix: String,
    /// Max incoming message size (the connect request); larger closes with 1009. Default 65536.
    pub message_size_limit: usize,
    /// A socket that takes nothing for this long is closed. Default 1s.
    #[serde(with = "duration")]
    pub write_timeout: Duration,
    /// Close without the `{"disconnect":…}` message before the close frame.
    pub disable_disconnect_push: bool,
    /// The pushes of one delivery batch go out as `\n`-joined lines of one frame. Default false.
    pub join_push_messages: bool,
    /// Close the socket without a close frame (after the disconnect message). Default false.
    pub disable_closing_handshake: bool,
    /// As `websocket.compression`, `compression_min_size`, `compression_level` and
    /// `decompressed_message_size_limit`, for this endpoint.
    pub compression: bool,
    pub compression_min_size: usize,
    pub compression_level: i32,
    pub decompressed_message_size_limit: usize,
}

impl UniWebsocketSettings {
    /// This endpoint's socket settings, in the shape the WebSocket transport takes.
    pub fn socket_settings(&self) -> WebsocketSettings {
        WebsocketSettings {
            disabled: !self.enabled,
            handler_prefix: self.handler_prefix.clone(),
            message_size_limit: self.message_size_limit,
            write_timeout: self.write_timeout,
            compression: self.compression,
            compression_min_size: self.compression_min_size,
            compression_level: self.compression_level,
            decompressed_message_size_limit: self.decompressed_message_size_limit,
        }
    }
}

impl Default for UniWebsocketSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            handler_prefix: "/connection/uni_websocket".into(),
            message_size_limit: 65536,
            write_timeout: Duration::from_secs(1),
            disable_disconnect_push: false,
            join_push_messages: false,
            disable_closing_handshake: false,
            compression: false,
            compression_min_size: 0,
            compression_level: 1,
            decompressed_message_size_limit: 0,
        }
    }
}

/// `http_stream.*`: the bidirectional emulation over HTTP streaming (centrifuge-js
/// `http_stream` transport): `POST` opens the stream with the connect command.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpStreamSettings {
    /// Serve the endpoint (and `/emulation`). Default false.
    pub enabled: bool,
    /// Path. Default `/connection/http_stream`.
    pub handler_prefix: String,
    /// Largest opening request body; more is answered 413. Default 65536.
    pub max_request_body_size: usize,
}

impl Default for HttpStreamSettings {
    fn default() -> Self {
        Self { enabled: false, handler_prefix: "/connection/http_stream".into(), max_request_body_size: 65536 }
    }
}

/// `sse.*`: the bidirectional emulation over Server-Sent Events (centrifuge-js `sse`
/// transport): `GET` with the connect command in `cf_connect`, or `POST`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SseSettings {
    /// Serve the endpoint (and `/emulation`). Default false.
    pub enabled: bool,
    /// Path. Default `/connection/sse`.
    pub handler_prefix: String,
    /// Largest opening request body; more is answered 413. Default 65536.
    pub max_request_body_size: usize,
}

impl Default for SseSettings {
    fn default() -> Self {
        Self { enabled: false, handler_prefix: "/connection/sse".into(), max_request_body_size: 65536 }
    }
}

/// `emulation.*`: the endpoint emulated sessions post their commands to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct EmulationSettings {
    /// Path. Default `/emulation`.
    pub handler_prefix: String,
    /// Largest request body; more is answered 413. Default 65536.
    pub max_request_body_size: usize,
}

impl Default for EmulationSettings {
    fn default() -> Self {
        Self { handler_prefix: "/emulation".into(), max_request_body_size: 65536 }
    }
}

/// `uni_sse.*`: unidirectional Server-Sent Events (`GET` with `cf_connect`, or `POST`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UniSseSettings {
    /// Serve the endpoint. Default false.
    pub enabled: bool,
    /// Path. Default `/connection/uni_sse`.
    pub handler_prefix: String,
    /// Largest connect request body; more is answered 413. Default 65536.
    pub max_request_body_size: usize,
    /// Answer a refused connect with an HTTP status instead of a stream.
    pub connect_code_to_http_response: code_maps::CodeToHttpResponse,
}

impl Default for UniSseSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            handler_prefix: "/connection/uni_sse".into(),
            max_request_body_size: 65536,
            connect_code_to_http_response: code_maps::CodeToHttpResponse::default(),
        }
    }
}

/// `uni_http_stream.*`: unidirectional HTTP streaming (`POST` with the connect request).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UniHttpStreamSettings {
    /// Serve the endpoint. Default false.
    pub enabled: bool,
    /// Path. Default `/connection/uni_http_stream`.
    pub handler_prefix: String,
    /// Largest connect request body; more is answered 413. Default 65536.
    pub max_request_body_size: usize,
    /// Answer a refused connect with an HTTP status instead of a stream.
    pub connect_code_to_http_response: code_maps::CodeToHttpResponse,
}

impl Default for UniHttpStreamSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            handler_prefix: "/connection/uni_http_stream".into(),
            max_request_body_size: 65536,
            connect_code_to_http_response: code_maps::CodeToHttpResponse::default(),
        }
    }
}

/// `uni_grpc.*`: Centrifugo's unidirectional gRPC stream (`CentrifugoUniStream.Consume`), on a
/// port of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct UniGrpcSettings {
    /// Serve it. Default false.
    pub enabled: bool,
    /// Interface to listen on; empty is every interface. Default "".
    pub address: String,
    /// Port. Default 11000.
    pub port: u16,
    /// Largest request message (the connect request) in bytes; 0 is gRPC's 4 MiB. Default 0.
    pub max_receive_message_size: usize,
    /// TLS on this port.
    pub tls: TlsSettings,
}

impl Default for UniGrpcSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            address: String::new(),
            port: 11000,
            max_receive_message_size: 0,
            tls: TlsSettings::default(),
        }
    }
}

/// `grpc_api.*`: Centrifugo's server API over gRPC (`centrifugal.centrifugo.api.CentrifugoApi`),
/// on a port of its own.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct GrpcApiSettings {
    /// Serve it. Default false.
    pub enabled: bool,
    /// Interface to listen on; empty is every interface. Default "".
    pub address: String,
    /// Port. Default 10000.
    pub port: u16,
    /// When set, every call must carry the metadata `authorization: apikey <KEY>`; empty means no
    /// authentication (unlike the HTTP API). Default "".
    pub key: String,
    /// `""` (errors in the response's `error`) or `transport` (errors as gRPC statuses).
    pub error_mode: String,
    /// Accepted for compatibility and ignored: gyre does not register gRPC server reflection.
    pub reflection: bool,
    /// Largest request message in bytes; 0 is gRPC's 4 MiB. Default 0.
    pub max_receive_message_size: usize,
    /// TLS on this port.
    pub tls: TlsSettings,
}

impl Default for GrpcApiSettings {
    fn default() -> Self {
        Self {
            enabled: false,
            address: String::new(),
            port: 10000,
            key: String::new(),
            error_mode: String::new(),
            reflection: false,
            max_receive_message_size: 0,
            tls: TlsSettings::default(),
        }
    }
}

impl Default for WebsocketSettings {
    fn default() -> Self {
        Self {
            disabled: false,
            handler_prefix: "/connection/websocket".into(),
            message_size_limit: 65536,
            write_timeout: Duration::from_secs(1),
            compression: false,
            compression_min_size: 0,
            compression_level: 1,
            decompressed_message_size_limit: 0,
        }
    }
}

/// `prometheus.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PrometheusSettings {
    /// Serve `/metrics`.
    pub enabled: bool,
    /// Path. Default `/metrics`.
    pub handler_prefix: String,
}

impl Default for PrometheusSettings {
    fn default() -> Self {
        Self { enabled: false, handler_prefix: "/metrics".into() }
    }
}

/// `health.*`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthSettings {
    /// Serve `/health`.
    pub enabled: bool,
    /// Path. Default `/health`.
    pub handler_prefix: String,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self { enabled: false, handler_prefix: "/health".into() }
    }
}

/// `swagger.*`: the OpenAPI document of the server HTTP API, where `/health` and `/metrics` are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SwaggerSettings {
    /// Serve `{handler_prefix}/openapi.json`, `{handler_prefix}/swagger.json` and a page at
    /// `{handler_prefix}/`.
    pub enabled: bool,
    /// Path prefix (trailing `/` trimmed; empty = the root). Default `/swagger`.
    pub handler_prefix: String,
}

impl Default for SwaggerSettings {
    fn default() -> Self {
        Self { enabled: false, handler_prefix: "/swagger".into() }
    }
}
