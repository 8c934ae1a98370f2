//! Test support: a real node on 127.0.0.1:0 in this process, raw WebSocket clients, tokens and
//! an API caller. Every wait is bounded (5 s) so a missing message fails instead of hanging.

use std::collections::VecDeque;
use std::time::Duration;

use actix_codec::Framed;
use actix_http::ws::{CloseCode, Codec, Frame, Message};
use awc::BoxedSocket;
use futures_util::{SinkExt, StreamExt};
use gyre::config::{ChannelOptions, NamespaceSettings, Settings};
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};

pub const SECRET: &str = "test-secret";
pub const API_KEY: &str = "test-api-key";
pub const WAIT: Duration = Duration::from_secs(5);

/// A node running in the test's actix system.
pub struct TestNode {
    pub running: Option<gyre::app::RunningNode>,
    pub addr: std::net::SocketAddr,
}

/// Settings most tests use: HMAC tokens, an API key, a few namespaces.
pub fn test_settings() -> Settings {
    let mut s = Settings::default();
    s.http_server.address = "127.0.0.1".into();
    s.http_server.port = 0;
    // One worker: the registry and channels share its thread (the layout of a node pinned to one
    // core). The SDK suites run the binary with a worker per CPU, the other layout.
    s.http_server.workers = 1;
    s.client.token.hmac_secret_key = SECRET.into();
    s.http_api.key = API_KEY.into();
    s.shutdown.timeout = Duration::from_secs(5);
    s.channel.without_namespace =
        ChannelOptions { allow_subscribe_for_client: true, allow_publish_for_subscriber: true, ..Default::default() };
    s.channel.namespaces = vec![
        NamespaceSettings {
            name: "chat".into(),
            options: ChannelOptions {
                presence: true,
                join_leave: true,
                force_push_join_leave: true,
                history_size: 10,
                history_ttl: Duration::from_secs(300),
                force_recovery: true,
                allow_subscribe_for_client: true,
                allow_publish_for_subscriber: true,
                allow_presence_for_subscriber: true,
                allow_history_for_subscriber: true,
                ..Default::default()
            },
        },
        NamespaceSettings { name: "priv".into(), options: ChannelOptions { presence: true, ..Default::default() } },
    ];
    s
}

impl TestNode {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = test_settings();
        change(&mut settings);
        Self::start_from(settings).await
    }

    /// A node with exactly these settings.
    pub async fn start_from(settings: Settings) -> Self {
        init_test_log();
        let running = gyre::app::start(settings).await.expect("node starts");
        let addr = running.addr;
        Self { running: Some(running), addr }
    }

    /// The unidirectional gRPC stream's address (`uni_grpc.enabled`, port 0 in tests).
    pub fn grpc_addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().and_then(|running| running.grpc_addr).expect("uni_grpc is enabled")
    }

    /// The server gRPC API's address (`grpc_api.enabled`, port 0 in tests).
    pub fn grpc_api_addr(&self) -> std::net::SocketAddr {
        self.running.as_ref().and_then(|running| running.grpc_api_addr).expect("grpc_api is enabled")
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/connection/websocket", self.addr)
    }

    /// A raw WebSocket client, not yet connected at the protocol level.
    pub async fn socket(&self) -> TestClient {
        let (_, framed) =
            awc::Client::new().ws(self.ws_url()).max_frame_size(1 << 20).connect().await.expect("websocket handshake");
        TestClient { framed, lines: VecDeque::new(), id: String::new() }
    }

    /// A client that completed `connect` as `user`.
    pub async fn connect_as(&self, user: &str) -> TestClient {
        let mut client = self.socket().await;
        let reply = client.request(1, "connect", json!({"token": token(json!({"sub": user}))})).await;
        client.id = reply["connect"]["client"].as_str().expect("connect succeeded").to_owned();
        client
    }

    /// POST /api/<method> with the API key; returns (status, body text).
    pub async fn api(&self, method: &str, body: Value) -> (u16, String) {
        self.api_raw(method, &body.to_string(), Some(API_KEY)).await
    }

    pub async fn api_raw(&self, method: &str, body: &str, key: Option<&str>) -> (u16, String) {
        let mut request = awc::Client::new().post(format!("http://{}/api/{method}", self.addr));
        if let Some(key) = key {
            request = request.insert_header(("X-API-Key", key));
        }
        let mut response = request.send_body(body.to_owned()).await.expect("api request");
        let bytes = response.body().await.expect("api body");
        (response.status().as_u16(), String::from_utf8_lossy(&bytes).into_owned())
    }

    /// API call that must succeed; returns `result`.
    pub async fn api_ok(&self, method: &str, body: Value) -> Value {
        let (status, text) = self.api(method, body).await;
        assert_eq!(status, 200, "{text}");
        let value: Value = serde_json::from_str(&text).expect("api json");
        assert!(value.get("error").is_none(), "api error: {value}");
        value["result"].clone()
    }
}

impl Drop for TestNode {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            actix_web::rt::spawn(running.shutdown());
        }
    }
}

/// HS256 token signed with [`SECRET`].
pub fn token(claims: Value) -> String {
    token_with(claims, SECRET)
}

pub fn token_with(claims: Value, secret: &str) -> String {
    encode(&Header::default(), &claims, &EncodingKey::from_secret(secret.as_bytes())).expect("sign")
}

pub fn now() -> i64 {
    gyre::domain::unix_now()
}

/// What the server did next.
#[derive(Debug, PartialEq)]
pub enum Event {
    Line(Value),
    Closed(u16, String),
}

pub struct TestClient {
    framed: Framed<BoxedSocket, Codec>,
    lines: VecDeque<Value>,
    /// Connection id from the connect reply (empty until connected via `connect_as`).
    pub id: String,
}

impl TestClient {
    /// A client on a WebSocket opened elsewhere (e.g. over TLS).
    pub fn over(framed: Framed<BoxedSocket, Codec>) -> Self {
        Self { framed, lines: VecDeque::new(), id: String::new() }
    }

    pub async fn send(&mut self, text: &str) {
        self.framed.send(Message::Text(text.to_owned().into())).await.expect("send frame");
    }

    /// Sends one command and waits for its reply (pushes and pings in between are skipped).
    pub async fn request(&mut self, id: u32, method: &str, params: Value) -> Value {
        self.send(&json!({"id": id, method: params}).to_string()).await;
        self.reply(id).await
    }

    pub async fn reply(&mut self, id: u32) -> Value {
        loop {
            match self.next().await {
                Event::Line(line) if line["id"] == id => return line,
                Event::Line(_) => continue,
                Event::Closed(code, reason) => panic!("closed {code} {reason} while waiting for reply {id}"),
            }
        }
    }

    /// Next push for `channel` (replies and pings skipped).
    pub async fn push(&mut self, channel: &str) -> Value {
        loop {
            match self.next().await {
                Event::Line(line) if line["push"]["channel"] == channel => return line["push"].clone(),
                Event::Line(_) => continue,
                Event::Closed(code, reason) => panic!("closed {code} {reason} while waiting for a push on {channel}"),
            }
        }
    }

    /// Next `pub` push for `channel` (join/leave and others skipped); returns the publication.
    pub async fn publication(&mut self, channel: &str) -> Value {
        loop {
            let push = self.push(channel).await;
            if let Some(publication) = push.get("pub") {
                return publication.clone();
            }
        }
    }

    /// Waits for the close frame.
    pub async fn closed(&mut self) -> (u16, String) {
        loop {
            if let Event::Closed(code, reason) = self.next().await {
                return (code, reason);
            }
        }
    }

    /// The next text frame as sent, lines not split (pings skipped); panics on close.
    pub async fn text_frame(&mut self) -> String {
        assert!(self.lines.is_empty(), "lines of an earlier frame are still unread");
        loop {
            let frame = tokio::time::timeout(WAIT, self.framed.next()).await.expect("server answered in time");
            match frame {
                Some(Ok(Frame::Text(bytes))) => return String::from_utf8(bytes.to_vec()).expect("utf-8 frame"),
                Some(Ok(Frame::Ping(_) | Frame::Pong(_))) => continue,
                other => panic!("expected a text frame, got {other:?}"),
            }
        }
    }

    pub async fn next(&mut self) -> Event {
        if let Some(line) = self.lines.pop_front() {
            return Event::Line(line);
        }
        loop {
            let frame = tokio::time::timeout(WAIT, self.framed.next()).await.expect("server answered in time");
            match frame {
                Some(Ok(Frame::Text(bytes))) => {
                    let text = std::str::from_utf8(&bytes).expect("utf-8 frame");
                    for line in text.split('\n') {
                        self.lines.push_back(serde_json::from_str(line).expect("each line is JSON"));
                    }
                    if let Some(line) = self.lines.pop_front() {
                        return Event::Line(line);
                    }
                }
                Some(Ok(Frame::Close(reason))) => {
                    let reason = reason.unwrap_or_else(|| CloseCode::Abnormal.into());
                    return Event::Closed(reason.code.into(), reason.description.unwrap_or_default());
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Event::Closed(1006, String::new()),
            }
        }
    }
}

/// A real `nats-server` with JetStream on a free loopback port, killed on drop.
///
/// It also owns the cluster's bystanders: with `GYRE_CLUSTER_NODES=N` set, a test that starts
/// k < N nodes on it gets N - k more, full nodes with the settings of the test's first clustered
/// node (named `bystander-1`, ...). They start with that node, take part in heartbeats, surveys,
/// user actions and JetStream history like any node, reconnect when NATS restarts, and stop
/// with the server. Tests count them through [`NatsServer::cluster_size`].
pub struct NatsServer {
    child: std::process::Child,
    pub port: u16,
    dir: tempfile::TempDir,
    /// How many nodes the test itself starts on this server.
    test_nodes: usize,
    bystanders: std::cell::RefCell<Option<Vec<TestNode>>>,
}

/// Prefix of the bystanders' node names (and so of their NATS connection names).
const BYSTANDER: &str = "bystander-";

/// The cluster size asked for by `GYRE_CLUSTER_NODES` (0 when unset).
fn wanted_cluster_size() -> usize {
    match std::env::var("GYRE_CLUSTER_NODES") {
        Ok(text) => text.trim().parse().unwrap_or_else(|_| panic!("GYRE_CLUSTER_NODES is not a number: {text:?}")),
        Err(_) => 0,
    }
}

impl NatsServer {
    /// Starts one for a test that starts `test_nodes` clustered nodes on it; fails the test
    /// (never skips) when the binary is missing: `tests/run.sh` installs it.
    pub async fn for_nodes(test_nodes: usize) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut nats = Self::start_in(dir, None).await;
        nats.test_nodes = test_nodes;
        nats
    }

    /// Nodes added to the test's own (none unless `GYRE_CLUSTER_NODES` asks for more).
    pub fn bystander_count(&self) -> usize {
        wanted_cluster_size().saturating_sub(self.test_nodes)
    }

    /// How many nodes `info` lists while `test_nodes` of the test's nodes run (bystanders
    /// included).
    pub fn cluster_size(&self, test_nodes: usize) -> usize {
        test_nodes + self.bystander_count()
    }

    /// The sorted names `info` lists while the test's nodes `names` run (bystanders included).
    pub fn node_names(&self, names: &[&str]) -> Vec<String> {
        let mut all: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
        all.extend((1..=self.bystander_count()).map(|i| format!("{BYSTANDER}{i}")));
        all.sort();
        all
    }

    /// Starts the bystanders once, with the settings of the test's first clustered node (and
    /// this server's own URL, in case that node reaches NATS through a proxy).
    async fn start_bystanders(&self, settings: &Settings) {
        if self.bystanders.borrow().is_some() {
            return;
        }
        // Marked before the first await: a node started meanwhile does not start more.
        *self.bystanders.borrow_mut() = Some(Vec::new());
        for i in 1..=self.bystander_count() {
            let mut own = settings.clone();
            own.node.name = format!("{BYSTANDER}{i}");
            own.broker.nats.url = self.url();
            let bystander = TestNode::start_from(own).await;
            self.bystanders.borrow_mut().get_or_insert_with(Vec::new).push(bystander);
        }
    }

    async fn start_in(dir: tempfile::TempDir, port: Option<u16>) -> Self {
        let port_arg = port.map_or("-1".to_owned(), |p| p.to_string());
        let bin = std::env::var("NATS_SERVER_BIN").unwrap_or_else(|_| "nats-server".to_owned());
        let child = std::process::Command::new(&bin)
            .args(["-a", "127.0.0.1", "-p", &port_arg, "-m", "-1", "-js", "--ports_file_dir"])
            .arg(dir.path())
            .arg("-sd")
            .arg(dir.path().join("js"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {bin} ({e}); install nats-server (tests/run.sh does)"));
        let ports_file = dir.path().join(format!("nats-server_{}.ports", child.id()));
        let port = eventually("nats-server writes its ports file", || {
            let text = std::fs::read_to_string(&ports_file).ok()?;
            let url = serde_json::from_str::<Value>(&text).ok()?["nats"][0].as_str()?.to_owned();
            url.rsplit(':').next()?.parse::<u16>().ok()
        })
        .await;
        // The ports file appears when the listener is ready.
        Self { child, port, dir, test_nodes: 0, bystanders: std::cell::RefCell::new(None) }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Messages the test's nodes have sent the server so far (`/connz` `in_msgs`): their NATS
    /// and JetStream requests, publishes included. Bystanders are left out: their heartbeats
    /// and survey answers are not what a test measures.
    pub async fn messages_from_clients(&self) -> u64 {
        let ports = self.dir.path().join(format!("nats-server_{}.ports", self.child.id()));
        let text = std::fs::read_to_string(ports).expect("ports file");
        let ports: Value = serde_json::from_str(&text).expect("ports json");
        let monitoring = ports["monitoring"][0].as_str().expect("monitoring port (-m)").to_owned();
        let mut response = awc::Client::new().get(format!("{monitoring}/connz")).send().await.expect("connz");
        let connz: Value = response.json().limit(1 << 22).await.expect("connz json");
        let bystander = format!("gyre {BYSTANDER}");
        let connections = connz["connections"].as_array().into_iter().flatten();
        let of_test_nodes =
            connections.filter(|c| !c["name"].as_str().is_some_and(|name| name.starts_with(&bystander)));
        of_test_nodes.filter_map(|c| c["in_msgs"].as_u64()).sum()
    }

    /// Kills the server (clients see the connection drop).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.dir.path().join(format!("nats-server_{}.ports", self.child.id())));
    }

    /// Starts it again on the same port and store; the bystanders stay (and reconnect).
    pub async fn restart(mut self) -> Self {
        self.stop();
        let port = self.port;
        let dir = tempfile::tempdir().expect("temp dir");
        let old = std::mem::replace(&mut self.dir, dir);
        let mut fresh = Self::start_in(old, Some(port)).await;
        fresh.test_nodes = self.test_nodes;
        fresh.bystanders = std::mem::take(&mut self.bystanders);
        drop(self);
        fresh
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        // The bystanders leave the cluster while NATS still runs.
        drop(self.bystanders.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` every 50 ms until it yields a value; fails after 10 s naming `what`.
pub async fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl TestNode {
    /// A node in cluster mode on `nats`.
    pub async fn start_clustered(nats: &NatsServer, name: &str) -> Self {
        Self::start_clustered_with(nats, name, |_| {}).await
    }

    /// A node in cluster mode on `nats`, with more settings changed (the first such node on
    /// `nats` brings the bystanders up with its settings).
    pub async fn start_clustered_with(nats: &NatsServer, name: &str, change: impl FnOnce(&mut Settings)) -> Self {
        let mut settings = test_settings();
        settings.broker.enabled = true;
        settings.broker.kind = "nats".into();
        settings.broker.nats.url = nats.url();
        settings.node.name = name.to_owned();
        settings.prometheus.enabled = true;
        change(&mut settings);
        nats.start_bystanders(&settings).await;
        Self::start_from(settings).await
    }

    /// Waits until `info` lists `count` nodes.
    pub async fn wait_for_nodes(&self, count: usize) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let info = self.api_ok("info", json!({})).await;
            if info["nodes"].as_array().map_or(0, Vec::len) == count {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "info never listed {count} nodes: {info}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Installs a log subscriber once when `TEST_LOG` is set (debugging aid).
pub fn init_test_log() {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = tracing_subscriber::fmt().with_env_filter("debug").with_test_writer().try_init();
    }
}

/// A TCP proxy on a free loopback port in front of `target`, to cut one node off NATS without
/// touching the others. While cut, open connections are closed and new ones are accepted and
/// closed at once (the client keeps retrying).
pub struct TcpProxy {
    pub port: u16,
    cut: std::rc::Rc<std::cell::Cell<bool>>,
    links: std::rc::Rc<std::cell::RefCell<Vec<actix_rt::task::JoinHandle<()>>>>,
}

impl TcpProxy {
    pub async fn start(target: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let cut = std::rc::Rc::new(std::cell::Cell::new(false));
        let links = std::rc::Rc::new(std::cell::RefCell::new(Vec::new()));
        let (is_cut, open) = (cut.clone(), links.clone());
        actix_rt::spawn(async move {
            while let Ok((mut downstream, _)) = listener.accept().await {
                if is_cut.get() {
                    continue;
                }
                let link = actix_rt::spawn(async move {
                    if let Ok(mut upstream) = tokio::net::TcpStream::connect(("127.0.0.1", target)).await {
                        let _ = tokio::io::copy_bidirectional(&mut downstream, &mut upstream).await;
                    }
                });
                open.borrow_mut().push(link);
            }
        });
        Self { port, cut, links }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Drops every proxied connection and refuses new ones.
    pub fn cut(&self) {
        self.cut.set(true);
        for link in self.links.borrow_mut().drain(..) {
            link.abort();
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.set(false);
    }
}

/// A WebSocket client on a plain TCP socket, for frames no WebSocket library would send.
pub struct RawSocket {
    pub stream: tokio::net::TcpStream,
    /// Bytes read and not parsed into frames yet.
    read: Vec<u8>,
}

/// Opcodes (RFC 6455 §5.2).
pub const TEXT: u8 = 1;
pub const BINARY: u8 = 2;
pub const CLOSE: u8 = 8;
pub const PING: u8 = 9;
pub const PONG: u8 = 10;

impl RawSocket {
    /// Opens the connection and completes the handshake.
    pub async fn open(node: &TestNode) -> Self {
        Self::open_with(node, "", "").await.0
    }

    /// Opens the connection with `query` (e.g. `?format=protobuf`) and extra header lines (each
    /// ending in `\r\n`); returns the socket and the 101 answer's head.
    pub async fn open_with(node: &TestNode, query: &str, headers: &str) -> (Self, String) {
        Self::open_path(node, &format!("/connection/websocket{query}"), headers).await
    }

    /// Upgrades `target` (path and query) with extra `headers`; returns the socket and the head.
    pub async fn open_path(node: &TestNode, target: &str, headers: &str) -> (Self, String) {
        use tokio::io::AsyncWriteExt;
        let mut stream = tokio::net::TcpStream::connect(node.addr).await.expect("connect");
        let request = format!(
            "GET {target} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{headers}\r\n"
        );
        stream.write_all(request.as_bytes()).await.expect("send handshake");
        let mut socket = Self { stream, read: Vec::new() };
        let end = loop {
            if let Some(at) = socket.read.windows(4).position(|w| w == b"\r\n\r\n") {
                break at + 4;
            }
            assert!(socket.fill().await, "the node closed the connection during the handshake");
        };
        let head = String::from_utf8_lossy(&socket.read[..end]).into_owned();
        assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
        socket.read.drain(..end);
        (socket, head)
    }

    /// Opens the connection and completes `connect` as `user`.
    pub async fn connected(node: &TestNode, user: &str) -> Self {
        let mut socket = Self::open(node).await;
        let connect = json!({"id": 1, "connect": {"token": token(json!({"sub": user}))}}).to_string();
        socket.send_frame(true, TEXT, connect.as_bytes()).await;
        let (opcode, reply) = socket.next_frame().await.expect("a connect reply");
        assert_eq!(opcode, TEXT);
        assert!(String::from_utf8_lossy(&reply).contains(r#""connect":{"client""#));
        socket
    }

    /// Reads more bytes; false at end of stream (or on a reset).
    async fn fill(&mut self) -> bool {
        use tokio::io::AsyncReadExt;
        let mut buffer = [0u8; 16 * 1024];
        match tokio::time::timeout(WAIT, self.stream.read(&mut buffer)).await.expect("node answered in time") {
            Ok(0) | Err(_) => false,
            Ok(read) => {
                self.read.extend_from_slice(&buffer[..read]);
                true
            }
        }
    }

    /// Writes bytes as they are; false if the node closed the connection.
    pub async fn send_raw(&mut self, bytes: &[u8]) -> bool {
        use tokio::io::AsyncWriteExt;
        self.stream.write_all(bytes).await.is_ok()
    }

    /// Sends one masked frame.
    pub async fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> bool {
        let mut frame = frame_header(fin, opcode, payload.len() as u64);
        frame.extend(masked(payload));
        self.send_raw(&frame).await
    }

    /// The next frame from the node (opcode, payload); `None` once the connection ends.
    pub async fn next_frame(&mut self) -> Option<(u8, Vec<u8>)> {
        let (first, payload) = self.next_frame_with_flags().await?;
        Some((first & 0x0F, payload))
    }

    /// The next frame from the node with its whole first byte (FIN, RSV bits, opcode).
    pub async fn next_frame_with_flags(&mut self) -> Option<(u8, Vec<u8>)> {
        loop {
            if let Some((opcode, payload, used)) = parse_server_frame(&self.read) {
                self.read.drain(..used);
                return Some((opcode, payload));
            }
            if !self.fill().await {
                return None;
            }
        }
    }

    /// Reads until the close frame; its code (`None` if the connection ended without one).
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.next_frame().await? {
                (CLOSE, payload) if payload.len() >= 2 => return Some(u16::from_be_bytes([payload[0], payload[1]])),
                (CLOSE, _) => return Some(1005),
                _ => continue,
            }
        }
    }
}

/// The mask every [`RawSocket`] frame uses.
const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// A masked client frame header declaring `len` payload bytes.
pub fn frame_header(fin: bool, opcode: u8, len: u64) -> Vec<u8> {
    let mut header = vec![if fin { 0x80 | opcode } else { opcode }];
    match len {
        0..=125 => header.push(0x80 | len as u8),
        126..=0xFFFF => {
            header.push(0x80 | 126);
            header.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            header.push(0x80 | 127);
            header.extend_from_slice(&len.to_be_bytes());
        }
    }
    header.extend_from_slice(&MASK);
    header
}

/// `payload` masked with [`MASK`] from its first byte.
pub fn masked(payload: &[u8]) -> Vec<u8> {
    payload.iter().enumerate().map(|(i, byte)| byte ^ MASK[i % 4]).collect()
}

/// One unmasked server frame at the start of `bytes`: (opcode, payload, bytes used).
fn parse_server_frame(bytes: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    let [first, second, ..] = *bytes else { return None };
    let (len, at) = match second & 0x7F {
        126 => (u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?) as usize, 4),
        127 => (u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?) as usize, 10),
        short => (short as usize, 2),
    };
    let payload = bytes.get(at..at + len)?.to_vec();
    Some((first, payload, at + len))
}
