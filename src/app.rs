//! Wiring: builds the shared [`Node`], starts the registry, binds the listeners (port 0 allowed)
//! and runs the HTTP servers until a shutdown signal.

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::Actor;
use actix_http::{HttpService, TlsAcceptorConfig};
use actix_service::{fn_service, map_config};
use actix_web::dev::{AppConfig, ServerHandle};
use actix_web::{web, App, HttpResponse};
use anyhow::Context as _;
use tracing_actix_web::TracingLogger;

use crate::auth::TokenVerifier;
use crate::channel::ChannelRules;
use crate::client::messages::EmulatedSessions;
use crate::client::transport::websocket::UpgradedIo;
use crate::cluster::history::HistoryStore;
use crate::cluster::idempotency::Idempotency;
use crate::cluster::{self, NatsBridge};
use crate::config::Settings;
use crate::metrics::METRICS;
use crate::node::{Node, NodeParts};
use crate::registry::messages::{AttachBridge, GetStats};
use crate::registry::{PendingRegistry, Registry};
use crate::tls::ListenerTls;
use crate::{api, client, shutdown};

/// A running node: its bound addresses and server handles.
pub struct RunningNode {
    /// Shared node context.
    pub node: Arc<Node>,
    /// Main listener (WebSocket; also API/health unless an internal port is set).
    pub addr: SocketAddr,
    /// Internal listener (API, health, metrics) when `http_server.internal_port` is set.
    pub internal_addr: Option<SocketAddr>,
    /// The unidirectional gRPC stream's listener, when `uni_grpc.enabled`.
    pub grpc_addr: Option<SocketAddr>,
    /// Stops the gRPC server.
    grpc_stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The server gRPC API's listener, when `grpc_api.enabled`.
    pub grpc_api_addr: Option<SocketAddr>,
    /// Stops the gRPC API server.
    grpc_api_stop: Option<tokio::sync::oneshot::Sender<()>>,
    /// The gRPC API server's task, awaited on shutdown so its port is closed when that returns.
    grpc_api_task: Option<actix_web::rt::task::JoinHandle<()>>,
    servers: Vec<ServerHandle>,
    tasks: Vec<actix_web::rt::task::JoinHandle<std::io::Result<()>>>,
}

/// How long a client has to complete its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Which endpoints a listener serves.
#[derive(Clone, Copy)]
struct Endpoints {
    websocket: bool,
    api: bool,
    ops: bool,
    admin: bool,
}

/// Runs a node on the current thread until SIGINT/SIGTERM, then shuts it down gracefully.
pub fn run(settings: Settings) -> anyhow::Result<()> {
    actix::System::new().block_on(async move {
        let running = start(settings).await?;
        shutdown::signal().await;
        running.shutdown().await;
        Ok(())
    })
}

/// Builds and starts a node inside the current actix system.
pub async fn start(settings: Settings) -> anyhow::Result<RunningNode> {
    let verifier = TokenVerifier::from_settings(&settings).context("invalid token key in config")?;
    let rules =
        Arc::new(ChannelRules::from_settings(&settings).map_err(anyhow::Error::msg).context("invalid channel config")?);
    let tls = ListenersTls::from_settings(&settings).map_err(anyhow::Error::msg).context("invalid TLS config")?;
    // Listeners first: a start-up failure must come before any actor exists (an actor started
    // and then dropped with the runtime panics in its `started`).
    let http = &settings.http_server;
    let host = if http.address.is_empty() { "0.0.0.0" } else { http.address.as_str() };
    let main =
        TcpListener::bind((host, http.port)).with_context(|| format!("cannot listen on {host}:{}", http.port))?;
    deepen_backlog(&main);
    let addr = main.local_addr()?;
    let internal = match http.internal_port.trim() {
        "" => None,
        port => {
            let port: u16 =
                port.parse().with_context(|| format!("http_server.internal_port {port:?} is not a port number"))?;
            let internal_host = if http.internal_address.is_empty() { host } else { http.internal_address.as_str() };
            Some(
                TcpListener::bind((internal_host, port))
                    .with_context(|| format!("cannot listen on {internal_host}:{port}"))?,
            )
        }
    };
    let grpc = bind_uni_grpc(&settings)?;
    let grpc_api = bind_grpc_api(&settings)?;
    let workers = settings.http_server.worker_threads();
    let registry = Registry::new(settings.client.queue_max_size, settings.channel.history_meta_ttl)
        .with_channel_limit(settings.node.channel_limit);
    // One worker (e.g. a process pinned to one core): the registry and its channels join the
    // worker's thread, so a publish wakes no other thread. Several: the registry keeps its own.
    let (registry, mut pending_registry) = match workers {
        1 => {
            let (addr, pending) = registry.start_later();
            (addr, Some(pending))
        }
        _ => (registry.start(), None),
    };
    let name = node_name(&settings, addr.port());
    let uid = uuid::Uuid::new_v4().to_string();
    let emulated = Arc::new(EmulatedSessions::default());
    let cluster = start_cluster(&settings, &uid, &name, &registry, &rules, &emulated).await?;
    let node = Arc::new(Node::new(NodeParts { settings, rules, verifier, registry, cluster, uid, name, emulated }));
    let mut running = RunningNode {
        node: node.clone(),
        addr,
        internal_addr: None,
        grpc_addr: None,
        grpc_stop: None,
        grpc_api_addr: None,
        grpc_api_stop: None,
        grpc_api_task: None,
        servers: Vec::new(),
        tasks: Vec::new(),
    };
    let api_on_main = internal.is_none() || node.settings.http_api.external;
    let admin_on_main = internal.is_none() || node.settings.admin.external;
    let endpoints = Endpoints { websocket: true, api: api_on_main, ops: internal.is_none(), admin: admin_on_main };
    running.serve(main, endpoints, tls.main.clone(), workers, pending_registry.take())?;
    tracing::info!(addr = %addr, name = %node.name, tls = tls.main.is_some(), "listening");
    if let Some(listener) = internal {
        let internal_addr = listener.local_addr()?;
        let endpoints = Endpoints { websocket: false, api: !api_on_main, ops: true, admin: !admin_on_main };
        running.serve(listener, endpoints, tls.internal.clone(), workers, None)?;
        running.internal_addr = Some(internal_addr);
        tracing::info!(addr = %internal_addr, tls = tls.internal.is_some(), "internal endpoints listening");
    }
    if let Some(listener) = grpc {
        running.serve_uni_grpc(listener, tls.uni_grpc.as_ref())?;
    }
    if let Some(listener) = grpc_api {
        running.serve_grpc_api(listener, tls.grpc_api.as_ref())?;
    }
    log_endpoints(&node, addr, tls.main.is_some());
    Ok(running)
}

/// Each listener's TLS, read and checked before anything starts.
struct ListenersTls {
    main: Option<ListenerTls>,
    internal: Option<ListenerTls>,
    uni_grpc: Option<ListenerTls>,
    grpc_api: Option<ListenerTls>,
}

impl ListenersTls {
    /// As Centrifugo: the internal port uses `internal_tls` when enabled, else the main port's
    /// TLS unless `tls_external` keeps it plain.
    fn from_settings(settings: &Settings) -> Result<Self, String> {
        let http = &settings.http_server;
        let main = ListenerTls::from_settings(&http.tls, "http_server.tls")?;
        let internal = match (http.internal_tls.enabled, http.tls_external) {
            (true, _) => ListenerTls::from_settings(&http.internal_tls, "http_server.internal_tls")?,
            (false, true) => None,
            (false, false) => main.clone(),
        };
        let uni_grpc = match settings.uni_grpc.enabled {
            true => ListenerTls::from_settings(&settings.uni_grpc.tls, "uni_grpc.tls")?,
            false => None,
        };
        let grpc_api = match settings.grpc_api.enabled {
            true => ListenerTls::from_settings(&settings.grpc_api.tls, "grpc_api.tls")?,
            false => None,
        };
        Ok(Self { main, internal, uni_grpc, grpc_api })
    }
}

/// Binds `uni_grpc`'s port (with the other listeners, before any actor exists).
fn bind_uni_grpc(settings: &Settings) -> anyhow::Result<Option<TcpListener>> {
    let grpc = &settings.uni_grpc;
    if !grpc.enabled {
        return Ok(None);
    }
    let host = if grpc.address.is_empty() { "0.0.0.0" } else { grpc.address.as_str() };
    let listener = TcpListener::bind((host, grpc.port))
        .with_context(|| format!("cannot listen on {host}:{} (uni_grpc.port)", grpc.port))?;
    Ok(Some(listener))
}

/// Binds `grpc_api`'s port (with the other listeners, before any actor exists).
fn bind_grpc_api(settings: &Settings) -> anyhow::Result<Option<TcpListener>> {
    let grpc = &settings.grpc_api;
    if !grpc.enabled {
        return Ok(None);
    }
    let host = if grpc.address.is_empty() { "0.0.0.0" } else { grpc.address.as_str() };
    let listener = TcpListener::bind((host, grpc.port))
        .with_context(|| format!("cannot listen on {host}:{} (grpc_api.port)", grpc.port))?;
    Ok(Some(listener))
}

/// The HTTP/1 service of one listener's worker, plain or TLS (`.tcp()` or `.rustls_0_23…()`
/// on the result): the App, and WebSocket upgrades outside it (see `RunningNode::serve`).
macro_rules! http_service {
    ($node:expr, $endpoints:expr, $stopping:expr) => {{
        let (node, endpoints) = (&$node, $endpoints);
        let data = web::Data::new(node.clone());
        let routes_node = node.clone();
        let app = App::new()
            .app_data(data)
            .wrap(TracingLogger::default())
            .configure(move |cfg| routes(cfg, &routes_node, endpoints));
        let upgrade_node = node.clone();
        let upgrades = fn_service(move |upgrade| {
            client::transport::websocket::accept(upgrade_node.clone(), endpoints.websocket, upgrade)
        });
        let stopping = $stopping.clone();
        let serves_streams = endpoints.websocket && {
            let s = &node.settings;
            s.http_stream.enabled || s.sse.enabled || s.uni_sse.enabled || s.uni_http_stream.enabled
        };
        // Go servers such as Centrifugo disable Nagle too: small frames (replies, pushes) go out
        // at once instead of waiting for the peer's delayed ACK.
        HttpService::build()
            .tcp_nodelay(true)
            // HTTP streams watch their client's socket (see `client::transport::http::PeerSocket`).
            .on_connect_ext(move |io, extensions| {
                if serves_streams {
                    client::transport::http::PeerSocket::keep(UpgradedIo::tcp(io), extensions);
                }
            })
            // As actix-web's HttpServer: idle keep-alive connections close when the server
            // stops, and a refused request body is drained for up to 1 s so the client reads
            // the answer instead of a reset.
            .graceful_shutdown_signal(move || {
                let stopping = stopping.clone();
                async move { stopping.notified().await }
            })
            .client_disconnect_timeout(Duration::from_secs(1))
            .upgrade(upgrades)
            .finish(map_config(app, |_| AppConfig::default()))
    }};
}

impl RunningNode {
    /// Serves `endpoints` on `listener`, over TLS when `tls` is given. WebSocket upgrades bypass the App: actix-http hands them
    /// over with the socket ([`client::transport::websocket::accept`]), so a connection does not keep the HTTP/1
    /// dispatcher (and its buffers) for its lifetime. A `registry` waiting to start is started
    /// by the first worker, on its thread.
    fn serve(
        &mut self,
        listener: TcpListener,
        endpoints: Endpoints,
        tls: Option<ListenerTls>,
        workers: usize,
        registry: Option<PendingRegistry>,
    ) -> anyhow::Result<()> {
        let node = self.node.clone();
        let registry = Arc::new(Mutex::new(registry));
        let builder = actix_server::Server::build();
        let stopping = builder.graceful_shutdown_signal();
        let builder = builder
            .disable_signals()
            .shutdown_timeout(self.node.settings.shutdown.timeout.as_secs().max(1))
            .workers(workers);
        let start_registry = move || {
            if let Some(pending) = registry.lock().ok().and_then(|mut waiting| waiting.take()) {
                pending.run_here();
            }
        };
        let server = match tls {
            None => builder.listen("gyre-http", listener, move || {
                start_registry();
                http_service!(node, endpoints, stopping).tcp()
            })?,
            Some(tls) => builder.listen("gyre-https", listener, move || {
                start_registry();
                let handshake = TlsAcceptorConfig::default().handshake_timeout(TLS_HANDSHAKE_TIMEOUT);
                http_service!(node, endpoints, stopping).rustls_0_23_with_config((*tls.config).clone(), handshake)
            })?,
        }
        .run();
        self.servers.push(server.handle());
        self.tasks.push(actix_web::rt::spawn(server));
        Ok(())
    }

    /// Serves the unidirectional gRPC stream on `listener`; its sessions live on this thread.
    fn serve_uni_grpc(&mut self, listener: TcpListener, tls: Option<&ListenerTls>) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let node = self.node.clone();
        let secure = tls.is_some();
        let tls = tls.map(ListenerTls::grpc);
        actix_web::rt::spawn(async move {
            let stopped = async move {
                let _ = stopped.await;
            };
            if let Err(error) = client::transport::grpc::serve(node, listener, tls, stopped).await {
                tracing::error!(%error, "uni_grpc server failed; the gRPC stream is no longer served");
            }
        });
        self.grpc_addr = Some(addr);
        self.grpc_stop = Some(stop);
        tracing::info!(addr = %addr, tls = secure, "uni_grpc listening");
        Ok(())
    }

    /// Serves the server gRPC API on `listener`, on this thread.
    fn serve_grpc_api(&mut self, listener: TcpListener, tls: Option<&ListenerTls>) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let node = self.node.clone();
        let settings = &node.settings.grpc_api;
        if settings.key.is_empty() {
            tracing::warn!("grpc_api.key is empty: the gRPC API accepts every call without authentication");
        }
        if settings.reflection {
            tracing::warn!("grpc_api.reflection is not supported by gyre; ignored");
        }
        let grpc_tls = tls.map(ListenerTls::grpc);
        let task = actix_web::rt::spawn(async move {
            let stopped = async move {
                let _ = stopped.await;
            };
            if let Err(error) = api::grpc::serve(node, listener, grpc_tls, stopped).await {
                tracing::error!(%error, "grpc_api server failed; the gRPC API is no longer served");
            }
        });
        self.grpc_api_addr = Some(addr);
        self.grpc_api_stop = Some(stop);
        self.grpc_api_task = Some(task);
        tracing::info!(addr = %addr, tls = tls.is_some(), "grpc_api listening");
        Ok(())
    }

    /// Graceful shutdown: drain clients with 3001, stop the servers, bounded by
    /// `shutdown.timeout`.
    pub async fn shutdown(mut self) {
        shutdown::drain(&self.node, &self.servers, self.node.settings.shutdown.timeout).await;
        if let Some(stop) = self.grpc_stop.take() {
            let _ = stop.send(());
        }
        if let Some(stop) = self.grpc_api_stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.grpc_api_task.take() {
            // Calls in flight finish first, within the shutdown timeout.
            let _ = tokio::time::timeout(self.node.settings.shutdown.timeout, task).await;
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

fn routes(cfg: &mut web::ServiceConfig, node: &Node, endpoints: Endpoints) {
    let settings = &node.settings;
    if endpoints.websocket && !settings.websocket.disabled {
        cfg.route(&settings.websocket.handler_prefix, web::get().to(client::transport::websocket::not_upgraded));
    }
    if endpoints.websocket && settings.uni_websocket.enabled {
        cfg.route(&settings.uni_websocket.handler_prefix, web::get().to(client::transport::websocket::not_upgraded));
    }
    if endpoints.websocket && settings.http_stream.enabled {
        let limit = web::PayloadConfig::new(settings.http_stream.max_request_body_size.saturating_add(1));
        cfg.service(
            web::resource(&settings.http_stream.handler_prefix)
                .app_data(limit)
                .to(client::transport::http::emulated_http_stream),
        );
    }
    if endpoints.websocket && settings.sse.enabled {
        let limit = web::PayloadConfig::new(settings.sse.max_request_body_size.saturating_add(1));
        cfg.service(
            web::resource(&settings.sse.handler_prefix).app_data(limit).to(client::transport::http::emulated_sse),
        );
    }
    if endpoints.websocket && (settings.http_stream.enabled || settings.sse.enabled) {
        let limit = web::PayloadConfig::new(settings.emulation.max_request_body_size.saturating_add(1));
        cfg.service(
            web::resource(&settings.emulation.handler_prefix).app_data(limit).to(client::transport::http::emulation),
        );
    }
    if endpoints.websocket && settings.uni_sse.enabled {
        let limit = web::PayloadConfig::new(settings.uni_sse.max_request_body_size.saturating_add(1));
        cfg.service(web::resource(&settings.uni_sse.handler_prefix).app_data(limit).to(client::transport::http::sse));
    }
    if endpoints.websocket && settings.uni_http_stream.enabled {
        let limit = web::PayloadConfig::new(settings.uni_http_stream.max_request_body_size.saturating_add(1));
        cfg.service(
            web::resource(&settings.uni_http_stream.handler_prefix)
                .app_data(limit)
                .to(client::transport::http::http_stream),
        );
    }
    if endpoints.ops && settings.health.enabled {
        cfg.route(&settings.health.handler_prefix, web::route().to(health));
    }
    if endpoints.ops && settings.prometheus.enabled {
        cfg.route(&settings.prometheus.handler_prefix, web::get().to(metrics));
    }
    if endpoints.ops && settings.swagger.enabled {
        api::openapi::configure(cfg, &settings.swagger.handler_prefix, &settings.http_api.handler_prefix);
    }
    if endpoints.api && !settings.http_api.disabled {
        api::configure(cfg, &settings.http_api.handler_prefix);
    }
    if endpoints.admin && settings.admin.enabled {
        crate::admin::configure(cfg, &settings.admin.handler_prefix);
    }
}

/// Cluster mode (`broker.enabled` with `type: nats`): connects to NATS — failing fast with a
/// clear error when it is unreachable — and starts the bridge.
async fn start_cluster(
    settings: &Settings,
    uid: &str,
    name: &str,
    registry: &actix::Addr<Registry>,
    rules: &Arc<ChannelRules>,
    emulated: &Arc<EmulatedSessions>,
) -> anyhow::Result<Option<actix::Addr<NatsBridge>>> {
    let broker = &settings.broker;
    if !(broker.enabled && broker.kind == "nats") {
        return Ok(None);
    }
    let client = cluster::connect(&broker.nats, name, registry.clone().recipient()).await?;
    let idempotency = match Idempotency::open(&client, &broker.nats.prefix).await {
        Ok(markers) => Some(markers),
        Err(error) => {
            tracing::warn!(%error, "JetStream unavailable (start nats-server with -js): idempotent publish holds per node only");
            None
        }
    };
    let history = if idempotency.is_some() { open_history(&client, settings, rules).await? } else { None };
    let bridge =
        NatsBridge::new(client, &broker.nats.prefix, uid.to_owned(), name.to_owned(), registry.clone(), rules.clone())
            .with_idempotency(idempotency)
            .with_live_prefix(history.as_ref().map(|h| h.live_prefix()))
            .with_emulated(emulated.clone())
            .start();
    registry.do_send(AttachBridge { bridge: bridge.clone(), history });
    tracing::info!(url = %broker.nats.url, prefix = %broker.nats.prefix, "cluster mode: relaying through NATS");
    Ok(Some(bridge))
}

/// Cluster-wide history streams, one per history shape of the config (none when no namespace
/// keeps history).
async fn open_history(
    client: &async_nats::Client,
    settings: &Settings,
    rules: &ChannelRules,
) -> anyhow::Result<Option<Arc<HistoryStore>>> {
    let shapes = rules.history_shapes();
    if shapes.is_empty() {
        return Ok(None);
    }
    let nats = &settings.broker.nats;
    let store = HistoryStore::open(client, &nats.prefix, &shapes, nats.history_replicas)
        .await?
        .with_position_check(settings.client.channel_position_check_delay);
    tracing::info!(streams = shapes.len(), "history and recovery are cluster-wide (JetStream)");
    Ok(Some(Arc::new(store)))
}

/// Lets a burst of reconnecting clients queue instead of being dropped: std listens with a
/// backlog of 128, which turns a burst of handshakes into 1 s SYN retransmits. The kernel caps
/// the value at `net.core.somaxconn` (Go servers ask for that maximum too).
fn deepen_backlog(listener: &TcpListener) {
    if let Err(error) = socket2::SockRef::from(listener).listen(65_535) {
        tracing::debug!(%error, "cannot raise the listen backlog; keeping the default");
    }
}

/// `/health`: `{}` while serving, 503 while draining.
async fn health(node: web::Data<Arc<Node>>) -> HttpResponse {
    if node.is_draining() {
        return HttpResponse::ServiceUnavailable().content_type("application/json").body("{}");
    }
    HttpResponse::Ok().content_type("application/json").body("{}")
}

/// `/metrics`: Prometheus text format; node gauges are refreshed from the registry first.
async fn metrics(node: web::Data<Arc<Node>>) -> HttpResponse {
    if let Ok(stats) = node.registry.send(GetStats).await {
        METRICS.num_clients.set(stats.num_clients as i64);
        METRICS.num_users.set(stats.num_users as i64);
        METRICS.num_channels.set(stats.num_channels as i64);
        METRICS.num_subscriptions.set(stats.num_subs as i64);
        METRICS.num_nodes.set(1);
    }
    HttpResponse::Ok().content_type("text/plain; version=0.0.4").body(METRICS.render())
}

fn node_name(settings: &Settings, port: u16) -> String {
    if !settings.node.name.is_empty() {
        return settings.node.name.clone();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "gyre".to_owned());
    format!("{host}_{port}")
}

/// Tells the operator what is where (never secrets).
fn log_endpoints(node: &Node, addr: SocketAddr, tls: bool) {
    let settings = &node.settings;
    let (ws, http) = if tls { ("wss", "https") } else { ("ws", "http") };
    tracing::info!(
        websocket = %format!("{ws}://{addr}{}", settings.websocket.handler_prefix),
        api = %format!("{http}://{}{}", node_api_addr(node, addr), settings.http_api.handler_prefix),
        engine = %settings.engine.kind,
        "endpoints"
    );
    if !node.verifier.has_connection_keys()
        && !settings.client.insecure
        && !settings.client.allow_anonymous_connect_without_token
    {
        tracing::warn!("no client.token key configured: every connection with a token will be refused (set client.token.hmac_secret_key)");
    }
    let channels = &settings.channel;
    if channels.namespaces.is_empty()
        && !channels.without_namespace.allow_subscribe_for_client
        && !settings.client.insecure
    {
        tracing::info!(
            "no namespaces and channel.without_namespace.allow_subscribe_for_client is off: clients can subscribe \
             only with subscription tokens (gyre gensubtoken) until you allow it (see README)"
        );
    }
    if node.verifier.has_connection_keys() {
        tracing::info!("mint a client token with: gyre gentoken -c <config file> -u <user id>");
    }
    if settings.http_api.key.is_empty() && !settings.http_api.insecure {
        tracing::warn!("http_api.key is empty: every API call will get 401 (set http_api.key)");
    }
    let admin = &settings.admin;
    if admin.enabled && admin.insecure {
        tracing::warn!("admin.insecure is on: the admin endpoints need no login; use it only in development");
    } else if admin.enabled && (admin.password.is_empty() || admin.secret.is_empty()) {
        tracing::warn!("admin.password or admin.secret is empty: admin logins will be refused (set both)");
    }
}

fn node_api_addr(node: &Node, addr: SocketAddr) -> String {
    match node.settings.http_server.internal_port.trim() {
        "" => addr.to_string(),
        port if !node.settings.http_api.external => format!("{}:{port}", addr.ip()),
        _ => addr.to_string(),
    }
}
