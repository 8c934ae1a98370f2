//! TLS on the listeners, with a CA and certificates made by each test: wss and https carry the
//! protocol and the API (large messages included), plain and distrusting clients are refused
//! while others keep working, mutual TLS, the internal port's choices, and gRPC over TLS.

use std::sync::Arc;

use bytes::Bytes;
use gyre::api::grpc::proto;
use gyre::config::TlsSettings;
use gyre::protocol::protobuf::wire;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};

use crate::support::*;

/// A CA and what it signed.
struct TestPki {
    ca_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, PEM.
struct Leaf {
    cert_pem: String,
    key_pem: String,
}

impl TestPki {
    fn new(name: &str) -> Self {
        let key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let cert = params.self_signed(&key).expect("CA certificate");
        Self { ca_pem: cert.pem(), issuer: Issuer::new(params, key) }
    }

    /// A certificate for `names` (DNS names or IP addresses).
    fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("key");
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let params = CertificateParams::new(names).expect("params");
        let cert = params.signed_by(&key, &self.issuer).expect("signed");
        Leaf { cert_pem: cert.pem(), key_pem: key.serialize_pem() }
    }

    fn server(&self) -> TlsSettings {
        let leaf = self.leaf(&["localhost", "127.0.0.1"]);
        TlsSettings { enabled: true, cert_pem: leaf.cert_pem, key_pem: leaf.key_pem, ..TlsSettings::default() }
    }

    fn roots(&self) -> rustls::RootCertStore {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(self.ca_pem.as_bytes()).expect("CA PEM")).expect("CA root");
        roots
    }
}

fn client_builder() -> rustls::ConfigBuilder<rustls::ClientConfig, rustls::WantsVerifier> {
    rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
}

/// An HTTP/WebSocket client that trusts `roots`, presenting `identity` if given.
fn https_client(roots: rustls::RootCertStore, identity: Option<&Leaf>) -> awc::Client {
    let builder = client_builder().with_root_certificates(roots);
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some(leaf) => {
            let chain = vec![CertificateDer::from_pem_slice(leaf.cert_pem.as_bytes()).expect("cert")];
            let key = PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).expect("key");
            builder.with_client_auth_cert(chain, key).expect("client certificate")
        }
    };
    awc::Client::builder().connector(awc::Connector::new().rustls_0_23(Arc::new(config))).finish()
}

fn wss_url(node: &TestNode) -> String {
    format!("wss://localhost:{}/connection/websocket", node.addr.port())
}

async fn wss_connect(client: &awc::Client, node: &TestNode, user: &str) -> TestClient {
    let (_, framed) = client.ws(wss_url(node)).max_frame_size(4 << 20).connect().await.expect("wss handshake");
    let mut socket = TestClient::over(framed);
    let reply = socket.request(1, "connect", json!({"token": token(json!({"sub": user}))})).await;
    assert!(reply["connect"]["client"].is_string(), "{reply}");
    socket
}

async fn https_api(client: &awc::Client, base: &str, method: &str, body: Value) -> (u16, Value) {
    let mut response = client
        .post(format!("{base}/api/{method}"))
        .insert_header(("X-API-Key", API_KEY))
        .send_body(body.to_string())
        .await
        .expect("https API call");
    let status = response.status().as_u16();
    let body = response.body().limit(8 << 20).await.expect("API body");
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// wss and https: connect, subscribe, publications through the API in order, and publications
/// larger than a TLS record (so the socket takes them in many writes) arrive intact.
#[actix_web::test]
async fn wss_and_https_carry_the_protocol_and_the_api() {
    let pki = TestPki::new("gyre test CA");
    let node = TestNode::start_with(|s| s.http_server.tls = pki.server()).await;
    let client = https_client(pki.roots(), None);
    let mut socket = wss_connect(&client, &node, "alice").await;
    let reply = socket.request(2, "subscribe", json!({"channel": "news"})).await;
    assert!(reply["subscribe"].is_object(), "{reply}");

    let base = format!("https://localhost:{}", node.addr.port());
    let big = "x".repeat(300_000);
    for n in 0..200 {
        let (status, answer) = https_api(&client, &base, "publish", json!({"channel": "news", "data": {"n": n}})).await;
        assert_eq!((status, answer["error"].clone()), (200, Value::Null), "{answer}");
    }
    https_api(&client, &base, "publish", json!({"channel": "news", "data": {"big": big}})).await;
    for n in 0..200 {
        assert_eq!(socket.publication("news").await["data"], json!({"n": n}));
    }
    assert_eq!(socket.publication("news").await["data"]["big"].as_str().map(str::len), Some(300_000));

    // And the client's own commands, as large as websocket.message_size_limit (64 KiB) allows.
    let command_sized = "y".repeat(60_000);
    socket.send(&json!({"id": 3, "publish": {"channel": "news", "data": {"big": command_sized}}}).to_string()).await;
    let (mut replied, mut delivered) = (false, false);
    while !(replied && delivered) {
        let Event::Line(line) = socket.next().await else { panic!("closed while publishing") };
        replied |= line["id"] == 3 && line["publish"].is_object();
        delivered |= line["push"]["pub"]["data"]["big"].as_str().map(str::len) == Some(60_000);
    }
    let (_, info) = https_api(&client, &base, "info", json!({})).await;
    assert_eq!(info["result"]["nodes"][0]["num_clients"], 1, "{info}");
}

/// A client speaking plain HTTP to the TLS port, and one that does not trust the CA, get no
/// connection; clients that do trust it keep being served, and the refused ones are not counted.
#[actix_web::test]
async fn plain_and_distrusting_clients_are_refused_and_others_keep_working() {
    let pki = TestPki::new("gyre test CA");
    let node = TestNode::start_with(|s| s.http_server.tls = pki.server()).await;
    let good = https_client(pki.roots(), None);
    let mut socket = wss_connect(&good, &node, "alice").await;

    let plain = awc::Client::new().ws(format!("ws://{}/connection/websocket", node.addr)).connect().await;
    assert!(plain.is_err(), "a plain handshake to the TLS port must fail");
    let other_ca = TestPki::new("another CA");
    let distrusting = https_client(other_ca.roots(), None).ws(wss_url(&node)).connect().await;
    assert!(distrusting.is_err(), "a client that does not trust the certificate must not connect");
    let garbage = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(node.addr).await.expect("tcp");
        stream.write_all(&[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3]).await.expect("write");
        let mut answer = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut answer)).await.expect("the node closes it")
    };
    assert!(garbage.is_err() || garbage.is_ok_and(|n| n < 64), "a broken handshake gets at most an alert");

    assert_eq!(socket.request(2, "ping", json!({})).await, json!({"id": 2, "ping": {}}));
    let base = format!("https://localhost:{}", node.addr.port());
    let (_, info) = https_api(&good, &base, "info", json!({})).await;
    assert_eq!(info["result"]["nodes"][0]["num_clients"], 1, "{info}");
}

/// `client_ca_pem` requires a client certificate signed by that CA.
#[actix_web::test]
async fn mutual_tls_requires_a_client_certificate_from_client_ca() {
    let pki = TestPki::new("gyre test CA");
    let clients = TestPki::new("client CA");
    let node = TestNode::start_with(|s| {
        s.http_server.tls = TlsSettings { client_ca_pem: clients.ca_pem.clone(), ..pki.server() };
    })
    .await;
    let anonymous = https_client(pki.roots(), None).ws(wss_url(&node)).connect().await;
    assert!(anonymous.is_err(), "no client certificate: refused");
    let stranger = pki.leaf(&["stranger"]);
    let wrong = https_client(pki.roots(), Some(&stranger)).ws(wss_url(&node)).connect().await;
    assert!(wrong.is_err(), "a client certificate from another CA: refused");
    let member = clients.leaf(&["member"]);
    let mut socket = wss_connect(&https_client(pki.roots(), Some(&member)), &node, "member").await;
    assert_eq!(socket.request(2, "ping", json!({})).await, json!({"id": 2, "ping": {}}));
}

/// The internal port: the main TLS by default, plain with `tls_external`, its own certificate
/// with `internal_tls`.
#[actix_web::test]
async fn internal_port_follows_tls_external_and_internal_tls() {
    let pki = TestPki::new("gyre test CA");
    let internal = TestPki::new("internal CA");
    let free_port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let health = |client: awc::Client, url: String| async move {
        client.get(url).send().await.map(|response| response.status().as_u16()).ok()
    };
    let port = free_port();
    let same = TestNode::start_with(|s| {
        s.http_server.tls = pki.server();
        s.http_server.internal_port = port.to_string();
        s.health.enabled = true;
    })
    .await;
    let url = format!("https://localhost:{port}/health");
    assert_eq!(health(https_client(pki.roots(), None), url).await, Some(200));
    assert_eq!(health(awc::Client::new(), format!("http://127.0.0.1:{port}/health")).await, None);
    drop(same);

    let port = free_port();
    let _external_only = TestNode::start_with(|s| {
        s.http_server.tls = pki.server();
        s.http_server.tls_external = true;
        s.http_server.internal_port = port.to_string();
        s.health.enabled = true;
    })
    .await;
    assert_eq!(health(awc::Client::new(), format!("http://127.0.0.1:{port}/health")).await, Some(200));

    let port = free_port();
    let _own = TestNode::start_with(|s| {
        s.http_server.tls = pki.server();
        s.http_server.internal_tls = internal.server();
        s.http_server.internal_port = port.to_string();
        s.health.enabled = true;
    })
    .await;
    let url = format!("https://localhost:{port}/health");
    assert_eq!(health(https_client(pki.roots(), None), url.clone()).await, None, "signed by the internal CA only");
    assert_eq!(health(https_client(internal.roots(), None), url).await, Some(200));
}

/// The gRPC API and the uni_grpc stream over TLS; a plaintext gRPC client gets no answer.
#[actix_web::test]
async fn grpc_api_and_uni_grpc_serve_over_tls() {
    let pki = TestPki::new("gyre test CA");
    let node = TestNode::start_with(|s| {
        s.grpc_api.enabled = true;
        s.grpc_api.port = 0;
        s.grpc_api.address = "127.0.0.1".into();
        s.grpc_api.tls = pki.server();
        s.uni_grpc.enabled = true;
        s.uni_grpc.port = 0;
        s.uni_grpc.address = "127.0.0.1".into();
        s.uni_grpc.tls = pki.server();
    })
    .await;
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(&pki.ca_pem))
        .domain_name("localhost");
    let channel = |port: u16| {
        tonic::transport::Endpoint::from_shared(format!("https://localhost:{port}"))
            .expect("endpoint")
            .tls_config(tls.clone())
            .expect("client TLS")
    };

    let mut stream = {
        let channel = channel(node.grpc_addr().port()).connect().await.expect("uni_grpc TLS connect");
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.expect("ready");
        let path =
            http::uri::PathAndQuery::from_static("/centrifugal.centrifugo.unistream.CentrifugoUniStream/Consume");
        let codec = tonic_prost::ProstCodec::<wire::ConnectRequest, wire::Push>::default();
        let request =
            wire::ConnectRequest { token: token(json!({"sub": "g", "channels": ["news"]})), ..Default::default() };
        grpc.server_streaming(tonic::Request::new(request), path, codec).await.expect("Consume").into_inner()
    };
    let connect = tokio::time::timeout(WAIT, stream.message()).await.expect("in time").expect("OK");
    assert!(connect.and_then(|push| push.connect).is_some_and(|connect| connect.subs.contains_key("news")));

    let api = channel(node.grpc_api_addr().port()).connect().await.expect("grpc_api TLS connect");
    let mut grpc = tonic::client::Grpc::new(api);
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_static("/centrifugal.centrifugo.api.CentrifugoApi/Publish");
    let codec = tonic_prost::ProstCodec::<proto::PublishRequest, proto::PublishResponse>::default();
    let request = proto::PublishRequest {
        channel: "news".into(),
        data: Bytes::from_static(br#"{"over":"tls"}"#),
        ..Default::default()
    };
    let answer = grpc.unary(tonic::Request::new(request), path, codec).await.expect("Publish").into_inner();
    assert_eq!(answer.error, None);
    let publication = tokio::time::timeout(WAIT, stream.message()).await.expect("in time").expect("OK");
    let data = publication.and_then(|push| push.r#pub).expect("a publication").data;
    assert_eq!(serde_json::from_slice::<Value>(&data).unwrap(), json!({"over": "tls"}));

    let plaintext = tonic::transport::Endpoint::from_shared(format!("http://{}", node.grpc_api_addr()))
        .expect("endpoint")
        .connect_timeout(WAIT)
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        let mut grpc = tonic::client::Grpc::new(channel);
        let ready = tokio::time::timeout(WAIT, grpc.ready()).await;
        let path = http::uri::PathAndQuery::from_static("/centrifugal.centrifugo.api.CentrifugoApi/Info");
        let codec = tonic_prost::ProstCodec::<proto::InfoRequest, proto::InfoResponse>::default();
        if let Ok(Ok(())) = ready {
            let call = tokio::time::timeout(WAIT, grpc.unary(tonic::Request::new(proto::InfoRequest {}), path, codec));
            assert!(!matches!(call.await, Ok(Ok(_))), "plaintext gRPC must not be answered on a TLS port");
        }
    }
}

/// An HTTP stream over TLS: the uni_sse connect push arrives, and the session ends when the
/// client goes away (its socket is watched under TLS too).
#[actix_web::test]
async fn uni_sse_streams_over_https() {
    use futures_util::StreamExt;
    let pki = TestPki::new("gyre test CA");
    let node = TestNode::start_with(|s| {
        s.http_server.tls = pki.server();
        s.uni_sse.enabled = true;
    })
    .await;
    let client = https_client(pki.roots(), None);
    let connect = json!({"token": token(json!({"sub": "sse"}))}).to_string();
    let query: String = connect.bytes().map(|b| format!("%{b:02X}")).collect();
    let url = format!("https://localhost:{}/connection/uni_sse?cf_connect={query}", node.addr.port());
    let mut response = client.get(url).send().await.expect("uni_sse over https");
    assert_eq!(response.status().as_u16(), 200);
    let mut text = String::new();
    while !text.contains("\n\n") || text.trim().is_empty() {
        let chunk = tokio::time::timeout(WAIT, response.next()).await.expect("in time").expect("a chunk").expect("ok");
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(text.contains(r#""connect":{"client""#), "{text}");
    let base = format!("https://localhost:{}", node.addr.port());
    let clients =
        || async { https_api(&client, &base, "info", json!({})).await.1["result"]["nodes"][0]["num_clients"].clone() };
    assert_eq!(clients().await, 1);
    drop(response);
    let mut gone = false;
    for _ in 0..100 {
        if clients().await == 0 {
            gone = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(gone, "the session ends when the client closes its TLS stream");
}

/// A node does not start with an expired certificate: the error names the setting and the date.
#[actix_web::test]
async fn an_expired_certificate_stops_the_node_at_start() {
    let pki = TestPki::new("gyre test CA");
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["localhost".to_string()]).expect("params");
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(2020, 6, 1);
    let expired = params.signed_by(&key, &pki.issuer).expect("signed");
    let dir = tempfile::tempdir().expect("dir");
    let cert_path = dir.path().join("expired.crt");
    std::fs::write(&cert_path, expired.pem()).expect("write");
    let mut settings = test_settings();
    settings.http_server.tls = TlsSettings {
        enabled: true,
        cert_pem: cert_path.display().to_string(),
        key_pem: key.serialize_pem(),
        ..TlsSettings::default()
    };
    let Err(error) = gyre::app::start(settings).await else { panic!("a node with an expired certificate started") };
    let message = format!("{error:#}");
    assert!(message.contains("expired.crt") && message.contains("expired on 2020-06-01"), "{message}");
}

/// Over TLS too, a client whose socket takes nothing for `websocket.write_timeout` is dropped
/// (rustls holding records it could not send counts as not taken), and the node serves on.
#[actix_web::test]
async fn a_tls_client_that_reads_nothing_is_dropped_after_write_timeout() {
    let pki = TestPki::new("gyre test CA");
    let node = TestNode::start_with(|s| {
        s.http_server.tls = pki.server();
        s.client.queue_max_size = 256 * 1024 * 1024;
        s.websocket.write_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let client = https_client(pki.roots(), None);
    let mut stuck = wss_connect(&client, &node, "stuck").await;
    stuck.request(2, "subscribe", json!({"channel": "flood"})).await;
    let base = format!("https://localhost:{}", node.addr.port());
    let chunk = "x".repeat(100_000);
    for n in 0..300 {
        https_api(&client, &base, "publish", json!({"channel": "flood", "data": {"n": n, "pad": chunk}})).await;
    }
    let clients =
        || async { https_api(&client, &base, "info", json!({})).await.1["result"]["nodes"][0]["num_clients"].clone() };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while clients().await != 0 {
        assert!(std::time::Instant::now() < deadline, "the stuck TLS client was never dropped");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut other = wss_connect(&client, &node, "other").await;
    assert_eq!(other.request(2, "ping", json!({})).await, json!({"id": 2, "ping": {}}));
}
