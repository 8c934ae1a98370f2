//! Backend proxies over HTTP against a backend of the test's own: what gyre sends (bodies and
//! the headers it may pass on), what it does with each answer, and how every way a backend can
//! fail ends for the client — Centrifugo's code, a failure counted in `centrifugo_proxy_errors`,
//! and nobody else affected.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use gyre::config::proxy::{NamedProxy, ProxySettings, RpcNamespace, RpcProxyChoice, StatusTransform};
use gyre::config::{ChannelOptions, NamespaceSettings, Settings};
use serde_json::{json, Value};

use crate::support::*;

/// One request the backend got.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: HashMap<String, String>,
    body: Value,
}

/// How the backend answers a path: status, body, delay; `{}` by default.
#[derive(Clone)]
struct Answer {
    status: u16,
    body: String,
    delay: Duration,
}

impl Answer {
    fn json(body: Value) -> Self {
        Self { status: 200, body: body.to_string(), delay: Duration::ZERO }
    }

    fn raw(status: u16, body: &str) -> Self {
        Self { status, body: body.to_owned(), delay: Duration::ZERO }
    }
}

/// The test's backend: answers by path (a list is used in turn, the last one repeated).
#[derive(Clone, Default)]
struct Backend {
    answers: Arc<Mutex<HashMap<String, Vec<Answer>>>>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Backend {
    fn answer(&self, path: &str, answers: Vec<Answer>) {
        self.answers.lock().unwrap().insert(path.to_owned(), answers);
    }

    fn seen(&self, path: &str) -> Vec<Seen> {
        self.seen.lock().unwrap().iter().filter(|s| s.path == path).cloned().collect()
    }

    fn next_answer(&self, path: &str) -> Answer {
        let mut answers = self.answers.lock().unwrap();
        match answers.get_mut(path) {
            Some(list) if list.len() > 1 => list.remove(0),
            Some(list) if !list.is_empty() => list[0].clone(),
            _ => Answer::json(json!({})),
        }
    }

    /// Starts the server on a free port; returns its base URL.
    fn start(&self) -> String {
        let backend = self.clone();
        let server = HttpServer::new(move || {
            let backend = backend.clone();
            App::new().app_data(web::PayloadConfig::new(1 << 20)).default_service(web::to(
                move |req: HttpRequest, body: web::Bytes| {
                    let backend = backend.clone();
                    async move { backend.handle(req, body).await }
                },
            ))
        })
        .workers(1)
        .bind(("127.0.0.1", 0))
        .expect("bind the backend");
        let addr = server.addrs()[0];
        actix_web::rt::spawn(server.run());
        format!("http://{addr}")
    }

    async fn handle(&self, req: HttpRequest, body: web::Bytes) -> HttpResponse {
        let path = req.path().to_owned();
        let headers = req
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap_or_default().to_owned()))
            .collect();
        let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
        self.seen.lock().unwrap().push(Seen { path: path.clone(), headers, body });
        let answer = self.next_answer(&path);
        if !answer.delay.is_zero() {
            actix_web::rt::time::sleep(answer.delay).await;
        }
        let status = actix_web::http::StatusCode::from_u16(answer.status).unwrap();
        let mut response = HttpResponse::build(status);
        if answer.status == 302 {
            response.insert_header(("Location", "/nowhere"));
        }
        response.content_type("application/json").body(answer.body)
    }
}

fn proxy(url: &str, path: &str) -> ProxySettings {
    ProxySettings { endpoint: format!("{url}{path}"), timeout: Duration::from_millis(500), ..Default::default() }
}

/// Connect and refresh proxies, channel proxies on `px:`, RPC proxies.
fn proxied(url: &str, s: &mut Settings) {
    s.client.proxy.connect.enabled = true;
    s.client.proxy.connect.proxy = ProxySettings {
        http_headers: vec!["Cookie".into()],
        emulated_headers: vec!["Authorization".into()],
        ..proxy(url, "/connect")
    };
    s.channel.proxy.subscribe = ProxySettings {
        include_connection_meta: true,
        http_headers: vec!["cookie".into()],
        ..proxy(url, "/subscribe")
    };
    s.channel.proxy.publish = proxy(url, "/publish");
    s.channel.proxy.sub_refresh = proxy(url, "/sub_refresh");
    s.channel.namespaces.push(NamespaceSettings {
        name: "px".into(),
        options: ChannelOptions {
            subscribe_proxy_enabled: true,
            publish_proxy_enabled: true,
            history_size: 10,
            history_ttl: Duration::from_secs(60),
            ..Default::default()
        },
    });
    s.rpc.proxy = proxy(url, "/rpc");
    s.rpc.without_namespace = RpcProxyChoice { proxy_enabled: true, proxy_name: String::new() };
    s.rpc.namespaces = vec![
        RpcNamespace { name: "ns".into(), choice: RpcProxyChoice { proxy_enabled: true, proxy_name: "other".into() } },
        RpcNamespace { name: "off".into(), choice: RpcProxyChoice::default() },
    ];
    s.proxies = vec![NamedProxy { name: "other".into(), proxy: proxy(url, "/other") }];
}

/// Sends a command on a raw socket and returns the next text frame as JSON lines' first value.
async fn command(socket: &mut RawSocket, command: Value) -> Value {
    socket.send_frame(true, TEXT, command.to_string().as_bytes()).await;
    loop {
        let (opcode, payload) = socket.next_frame().await.expect("an answer");
        if opcode == TEXT {
            let text = String::from_utf8(payload).unwrap();
            let first = text.split('\n').next().unwrap_or_default().to_owned();
            let value: Value = serde_json::from_str(&first).unwrap();
            if value.as_object().is_some_and(|o| !o.is_empty()) {
                return value;
            }
        }
    }
}

async fn metrics(node: &TestNode) -> String {
    let mut response = awc::Client::new().get(format!("http://{}/metrics", node.addr)).send().await.unwrap();
    String::from_utf8(response.body().await.unwrap().to_vec()).unwrap()
}

#[actix_web::test]
async fn a_connect_without_token_takes_the_connect_proxys_credentials_and_headers_pass_by_name() {
    let backend = Backend::default();
    let url = backend.start();
    backend.answer(
        "/connect",
        vec![Answer::json(json!({"result": {
            "user": "alice", "info": {"role": "admin"}, "data": {"hello": 1},
            "channels": ["news"], "meta": {"tenant": 7}
        }}))],
    );
    backend.answer("/subscribe", vec![Answer::json(json!({"result": {"data": {"welcome": true}}}))]);
    let node = TestNode::start_with(|s| proxied(&url, s)).await;

    let (mut socket, _) = RawSocket::open_with(&node, "", "Cookie: session=abc\r\nX-Private: secret\r\n").await;
    let connect = json!({"id": 1, "connect": {
        "name": "sdk", "version": "1.0", "data": {"k": 1}, "subs": {"chat:lobby": {}},
        "headers": {"Authorization": "Bearer t", "X-Emulated": "no"}
    }});
    let reply = command(&mut socket, connect).await;
    let result = &reply["connect"];
    assert_eq!(result["data"], json!({"hello": 1}), "{reply}");
    assert!(result["subs"].get("news").is_some(), "the proxy's channels are subscribed: {reply}");
    assert!(result.get("expires").is_none());

    let seen = backend.seen("/connect");
    assert_eq!(seen.len(), 1);
    let body = &seen[0].body;
    assert_eq!(body["client"], result["client"]);
    assert_eq!((body["transport"].as_str(), body["protocol"].as_str()), (Some("websocket"), Some("json")));
    assert_eq!(body["encoding"], "json");
    assert_eq!((body["name"].as_str(), body["version"].as_str()), (Some("sdk"), Some("1.0")));
    assert_eq!(body["data"], json!({"k": 1}));
    assert_eq!(body["channels"], json!(["chat:lobby"]));
    assert!(body.get("user").is_none() && body.get("meta").is_none(), "{body}");
    let headers = &seen[0].headers;
    assert_eq!(headers.get("cookie").map(String::as_str), Some("session=abc"));
    assert_eq!(headers.get("authorization").map(String::as_str), Some("Bearer t"));
    assert!(!headers.contains_key("x-private") && !headers.contains_key("x-emulated"), "{headers:?}");
    assert_eq!(headers.get("content-type").map(String::as_str), Some("application/json"));

    // The connection is alice's, with the proxy's info, and gets the server-side channel.
    let presence_free = node.api_ok("publish", json!({"channel": "news", "data": {"n": 1}})).await;
    assert!(presence_free.is_object());
    let pushed = loop {
        let (_, payload) = socket.next_frame().await.expect("a publication");
        let text = String::from_utf8(payload).unwrap();
        if text.contains("\"pub\"") {
            break serde_json::from_str::<Value>(&text).unwrap();
        }
    };
    assert_eq!(pushed["push"]["pub"]["data"], json!({"n": 1}));

    // Later calls carry the user, the connection's meta (include_connection_meta) and the
    // same allowed headers.
    let reply = command(&mut socket, json!({"id": 2, "subscribe": {"channel": "px:room"}})).await;
    assert_eq!(reply["subscribe"]["data"], json!({"welcome": true}), "{reply}");
    let subscribe = &backend.seen("/subscribe")[0];
    assert_eq!(subscribe.body["user"], "alice");
    assert_eq!(subscribe.body["channel"], "px:room");
    assert_eq!(subscribe.body["meta"], json!({"tenant": 7}));
    assert_eq!(subscribe.headers.get("cookie").map(String::as_str), Some("session=abc"));
}

#[actix_web::test]
async fn every_way_a_connect_proxy_fails_gets_centrifugos_code_and_nobody_else_notices() {
    let backend = Backend::default();
    let url = backend.start();
    let node = TestNode::start_with(|s| {
        proxied(&url, s);
        s.prometheus.enabled = true;
    })
    .await;
    let mut bystander = node.connect_as("bob").await;
    bystander.request(1, "subscribe", json!({"channel": "news"})).await;

    let big = format!(r#"{{"result":{{"user":"x","data":"{}"}}}}"#, "a".repeat(10 << 20));
    let slow = Answer { delay: Duration::from_secs(2), ..Answer::json(json!({"result": {"user": "late"}})) };
    let failures = [
        ("HTTP 500", Answer::raw(500, "oops")),
        ("HTTP 404", Answer::raw(404, "")),
        ("a redirect", Answer::raw(302, "")),
        ("not JSON", Answer::raw(200, "<html>")),
        ("a JSON array", Answer::raw(200, "[1,2]")),
        ("a 10 MB body", Answer { status: 200, body: big, delay: Duration::ZERO }),
        ("slower than the timeout", slow),
        ("bad base64", Answer::json(json!({"result": {"user": "u", "b64info": "***"}}))),
    ];
    for (what, answer) in failures {
        eprintln!("connect proxy answers {what}");
        backend.answer("/connect", vec![answer]);
        let mut socket = RawSocket::open(&node).await;
        let reply = command(&mut socket, json!({"id": 1, "connect": {}})).await;
        assert_eq!(reply["error"]["code"], 100, "{what}: {reply}");
        assert_eq!(reply["error"]["temporary"], true, "{what}: {reply}");
    }

    backend.answer("/connect", vec![Answer::json(json!({"error": {"code": 1000, "message": "custom"}}))]);
    let mut socket = RawSocket::open(&node).await;
    let reply = command(&mut socket, json!({"id": 1, "connect": {}})).await;
    assert_eq!(reply["error"], json!({"code": 1000, "message": "custom"}));

    backend.answer("/connect", vec![Answer::json(json!({"disconnect": {"code": 4000, "reason": "go away"}}))]);
    let mut socket = RawSocket::open(&node).await;
    socket.send_frame(true, TEXT, br#"{"id":1,"connect":{}}"#).await;
    assert_eq!(socket.close_code().await, Some(4000));

    // No credentials and anonymous connections not allowed: 3501.
    backend.answer("/connect", vec![Answer::json(json!({"unknown": true}))]);
    let mut socket = RawSocket::open(&node).await;
    socket.send_frame(true, TEXT, br#"{"id":1,"connect":{}}"#).await;
    assert_eq!(socket.close_code().await, Some(3501));

    // An empty user in a result is an anonymous connection, as Centrifugo has it.
    backend.answer("/connect", vec![Answer::json(json!({"result": {"user": ""}}))]);
    let mut socket = RawSocket::open(&node).await;
    let reply = command(&mut socket, json!({"id": 1, "connect": {}})).await;
    assert!(reply["connect"]["client"].is_string(), "{reply}");

    node.api_ok("publish", json!({"channel": "news", "data": {"still": "here"}})).await;
    assert_eq!(bystander.publication("news").await["data"], json!({"still": "here"}));
    let text = metrics(&node).await;
    let errors = text
        .lines()
        .find(|l| l.starts_with("centrifugo_proxy_errors{") && l.contains(r#"type="connect""#))
        .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(errors >= 7, "failed calls are counted: {errors}\n{text}");
    assert!(text.contains(
        r#"centrifugo_proxy_duration_seconds_histogram_count{name="default",protocol="http",type="connect"}"#
    ));
}

#[actix_web::test]
async fn status_transforms_turn_backend_statuses_into_errors_and_disconnects() {
    let backend = Backend::default();
    let url = backend.start();
    let node = TestNode::start_with(|s| {
        proxied(&url, s);
        s.client.proxy.connect.proxy.http.status_to_code_transforms = vec![
            serde_json::from_value::<StatusTransform>(
                json!({"status_code": 404, "to_error": {"code": 1404, "message": "not found", "temporary": true}}),
            )
            .unwrap(),
            serde_json::from_value(json!({"status_code": 403, "to_disconnect": {"code": 4403, "reason": "forbidden"}}))
                .unwrap(),
        ];
    })
    .await;
    backend.answer("/connect", vec![Answer::raw(404, "")]);
    let mut socket = RawSocket::open(&node).await;
    let reply = command(&mut socket, json!({"id": 1, "connect": {}})).await;
    assert_eq!(reply["error"], json!({"code": 1404, "message": "not found", "temporary": true}));
    backend.answer("/connect", vec![Answer::raw(403, "")]);
    let mut socket = RawSocket::open(&node).await;
    socket.send_frame(true, TEXT, br#"{"id":1,"connect":{}}"#).await;
    assert_eq!(socket.close_code().await, Some(4403));
}

#[actix_web::test]
async fn the_refresh_proxy_extends_an_expiring_connection_and_ends_it_when_the_backend_says_so() {
    let backend = Backend::default();
    let url = backend.start();
    let node = TestNode::start_with(|s| {
        proxied(&url, s);
        s.client.proxy.refresh.enabled = true;
        s.client.proxy.refresh.proxy = proxy(&url, "/refresh");
    })
    .await;
    backend.answer("/connect", vec![Answer::json(json!({"result": {"user": "carol", "expire_at": now() + 1}}))]);
    backend.answer(
        "/refresh",
        vec![
            Answer::json(json!({"result": {"expire_at": now() + 2, "info": {"v": 2}}})),
            Answer::json(json!({"result": {"expired": true}})),
        ],
    );
    let mut socket = RawSocket::open(&node).await;
    let reply = command(&mut socket, json!({"id": 1, "connect": {}})).await;
    // The server refreshes: the client is not told the connection expires.
    assert!(reply["connect"].get("expires").is_none() && reply["connect"].get("ttl").is_none(), "{reply}");
    assert_eq!(socket.close_code().await, Some(3005));
    let refreshes = backend.seen("/refresh");
    assert_eq!(refreshes.len(), 2, "extended once, then refused");
    assert_eq!(refreshes[0].body["user"], "carol");

    // A client-side refresh is not expected with a refresh proxy: 3501.
    backend.answer("/connect", vec![Answer::json(json!({"result": {"user": "dave"}}))]);
    let mut socket = RawSocket::open(&node).await;
    command(&mut socket, json!({"id": 1, "connect": {}})).await;
    socket.send_frame(true, TEXT, br#"{"id":2,"refresh":{"token":"x"}}"#).await;
    assert_eq!(socket.close_code().await, Some(3501));
}

#[actix_web::test]
async fn the_subscribe_proxy_allows_refuses_and_overrides_channel_options() {
    let backend = Backend::default();
    let url = backend.start();
    let node = TestNode::start_with(|s| proxied(&url, s)).await;
    let mut client = node.connect_as("erin").await;

    backend.answer(
        "/subscribe",
        vec![
            Answer::json(json!({"result": {"override": {"force_recovery": {"value": true}}}})),
            Answer::json(json!({"error": {"code": 403, "message": "forbidden"}})),
            Answer::raw(500, ""),
            Answer::json(json!({"disconnect": {"code": 4001, "reason": "banned"}})),
        ],
    );
    let reply = client.request(2, "subscribe", json!({"channel": "px:ok"})).await;
    assert_eq!(reply["subscribe"]["recoverable"], true, "the override forces recovery: {reply}");
    let reply = client.request(3, "subscribe", json!({"channel": "px:no"})).await;
    assert_eq!(reply["error"], json!({"code": 403, "message": "forbidden"}));
    let reply = client.request(4, "subscribe", json!({"channel": "px:broken"})).await;
    assert_eq!(reply["error"]["code"], 100);
    client.send(r#"{"id":5,"subscribe":{"channel":"px:bye"}}"#).await;
    assert_eq!(client.closed().await.0, 4001);
    let seen = backend.seen("/subscribe");
    assert_eq!(seen.len(), 4);
    assert_eq!(seen[0].body["user"], "erin");
    assert!(seen[0].body.get("meta").is_none(), "no meta without one");
}

#[actix_web::test]
async fn the_publish_proxy_replaces_the_permission_check_and_may_rewrite_the_data() {
    let backend = Backend::default();
    let url = backend.start();
    let node = TestNode::start_with(|s| proxied(&url, s)).await;
    backend.answer("/subscribe", vec![Answer::json(json!({"result": {}}))]);
    let mut client = node.connect_as("frank").await;
    client.request(2, "subscribe", json!({"channel": "px:feed"})).await;

    backend.answer(
        "/publish",
        vec![
            Answer::json(json!({"result": {"data": {"rewritten": true}}})),
            Answer::json(json!({"result": {"skip_history": true}})),
            Answer::json(json!({"error": {"code": 1001, "message": "moderated"}})),
        ],
    );
    // The publication reaches the subscriber before the publish reply does.
    client.send(&json!({"id": 3, "publish": {"channel": "px:feed", "data": {"text": "hi"}}}).to_string()).await;
    assert_eq!(client.publication("px:feed").await["data"], json!({"rewritten": true}));
    assert!(client.reply(3).await.get("error").is_none());
    client
        .send(&json!({"id": 4, "publish": {"channel": "px:feed", "data": {"text": "off the record"}}}).to_string())
        .await;
    assert_eq!(client.publication("px:feed").await["data"], json!({"text": "off the record"}));
    assert!(client.reply(4).await.get("error").is_none());
    let reply = client.request(5, "publish", json!({"channel": "px:feed", "data": {"text": "bad"}})).await;
    assert_eq!(reply["error"], json!({"code": 1001, "message": "moderated"}));

    let history = node.api_ok("history", json!({"channel": "px:feed", "limit": 10})).await;
    let stored: Vec<Value> = history["publications"].as_array().unwrap().iter().map(|p| p["data"].clone()).collect();
    assert_eq!(stored, vec![json!({"rewritten": true})], "skip_history kept the second out of history");
    let publish = &backend.seen("/publish")[0];
    assert_eq!((publish.body["user"].as_str(), publish.body["channel"].as_str()), (Some("frank"), Some("px:feed")));
    assert_eq!(publish.body["data"], json!({"text": "hi"}));
}

#[actix_web::test]
async fn rpc_goes_to_the_proxy_of_its_namespace() {
    let backend = Backend::default();
    let url = backend.start();
    let node = TestNode::start_with(|s| proxied(&url, s)).await;
    backend.answer("/rpc", vec![Answer::json(json!({"result": {"data": {"answer": 42}}}))]);
    backend.answer("/other", vec![Answer::json(json!({"error": {"code": 1002, "message": "nope"}}))]);
    let mut client = node.connect_as("gina").await;

    let reply = client.request(2, "rpc", json!({"method": "sum", "data": {"a": 40, "b": 2}})).await;
    assert_eq!(reply["rpc"], json!({"data": {"answer": 42}}));
    let sent = &backend.seen("/rpc")[0].body;
    assert_eq!((sent["method"].as_str(), sent["user"].as_str()), (Some("sum"), Some("gina")));
    assert_eq!(sent["data"], json!({"a": 40, "b": 2}));
    let reply = client.request(3, "rpc", json!({"method": "ns:thing"})).await;
    assert_eq!(reply["error"], json!({"code": 1002, "message": "nope"}));
    assert_eq!(backend.seen("/other")[0].body["method"], "ns:thing");
    let reply = client.request(4, "rpc", json!({"method": "unknown:thing"})).await;
    assert_eq!(reply["error"]["code"], 104);
    let reply = client.request(5, "rpc", json!({"method": "off:thing"})).await;
    assert_eq!(reply["error"]["code"], 108);
}

#[actix_web::test]
async fn the_sub_refresh_proxy_extends_subscriptions_until_the_backend_refuses() {
    let backend = Backend::default();
    let url = backend.start();
    let node = TestNode::start_with(|s| {
        proxied(&url, s);
        s.client.expired_sub_close_delay = Duration::ZERO;
        if let Some(ns) = s.channel.namespaces.iter_mut().find(|ns| ns.name == "px") {
            ns.options.sub_refresh_proxy_enabled = true;
        }
    })
    .await;
    backend.answer("/subscribe", vec![Answer::json(json!({"result": {"expire_at": now() + 1}}))]);
    backend.answer(
        "/sub_refresh",
        vec![
            Answer::json(json!({"result": {"expire_at": now() + 2}})),
            Answer::json(json!({"result": {"expired": true}})),
        ],
    );
    let mut client = node.connect_as("hank").await;
    let reply = client.request(2, "subscribe", json!({"channel": "px:timed"})).await;
    assert!(reply["subscribe"].get("expires").is_none(), "the server refreshes it: {reply}");
    let unsubscribed = loop {
        let push = client.push("px:timed").await;
        if let Some(unsubscribe) = push.get("unsubscribe") {
            break unsubscribe.clone();
        }
    };
    assert_eq!(unsubscribed["code"], 2501);
    let refreshes = backend.seen("/sub_refresh");
    assert_eq!(refreshes.len(), 2);
    assert_eq!(
        (refreshes[0].body["user"].as_str(), refreshes[0].body["channel"].as_str()),
        (Some("hank"), Some("px:timed"))
    );
}

#[actix_web::test]
async fn proxies_work_on_every_node_of_a_cluster_and_api_calls_reach_proxied_users_everywhere() {
    let backend = Backend::default();
    let url = backend.start();
    let nats = NatsServer::for_nodes(2).await;
    let a = TestNode::start_clustered_with(&nats, "a", |s| proxied(&url, s)).await;
    let b = TestNode::start_clustered_with(&nats, "b", |s| proxied(&url, s)).await;
    a.wait_for_nodes(nats.cluster_size(2)).await;
    backend.answer(
        "/connect",
        vec![Answer::json(json!({"result": {"user": "reader"}})), Answer::json(json!({"result": {"user": "writer"}}))],
    );
    backend.answer("/subscribe", vec![Answer::json(json!({"result": {}}))]);
    backend.answer("/publish", vec![Answer::json(json!({"result": {"data": {"checked": true}}}))]);

    let mut reader = RawSocket::open(&a).await;
    command(&mut reader, json!({"id": 1, "connect": {}})).await;
    let reply = command(&mut reader, json!({"id": 2, "subscribe": {"channel": "px:shared"}})).await;
    assert!(reply.get("subscribe").is_some(), "{reply}");
    let mut writer = RawSocket::open(&b).await;
    command(&mut writer, json!({"id": 1, "connect": {}})).await;
    let reply = command(&mut writer, json!({"id": 2, "publish": {"channel": "px:shared", "data": {"raw": 1}}})).await;
    assert!(reply.get("error").is_none(), "{reply}");

    // The publication the publish proxy on node b rewrote reaches the reader on node a.
    let delivered = loop {
        let (_, payload) = reader.next_frame().await.expect("the publication");
        let value: Value = serde_json::from_slice(&payload).unwrap_or(Value::Null);
        if value["push"]["pub"].is_object() {
            break value;
        }
    };
    assert_eq!(delivered["push"]["pub"]["data"], json!({"checked": true}));
    let publish = &backend.seen("/publish")[0];
    assert_eq!(publish.body["user"], "writer");

    // A user the connect proxy named on node a is disconnected through node b's API.
    b.api_ok("disconnect", json!({"user": "reader", "disconnect": {"code": 4100, "reason": "by api"}})).await;
    assert_eq!(reader.close_code().await, Some(4100));
}

#[actix_web::test]
async fn subscribe_proxy_overrides_of_presence_and_join_leave_apply_to_that_subscription() {
    let backend = Backend::default();
    let url = backend.start();
    let node = TestNode::start_with(|s| {
        proxied(&url, s);
        s.channel.namespaces.push(NamespaceSettings {
            name: "pp".into(),
            options: ChannelOptions { subscribe_proxy_enabled: true, presence: true, ..Default::default() },
        });
    })
    .await;
    let hidden = json!({"result": {"override": {"presence": {"value": false}}}});
    let announced = json!({"result": {"override": {
        "join_leave": {"value": true}, "force_push_join_leave": {"value": true}
    }}});
    backend.answer("/subscribe", vec![Answer::json(hidden), Answer::json(announced.clone()), Answer::json(announced)]);
    let mut ghost = node.connect_as("ghost").await;
    ghost.request(2, "subscribe", json!({"channel": "pp:room"})).await;
    let presence = node.api_ok("presence", json!({"channel": "pp:room"})).await;
    assert_eq!(presence["presence"], json!({}), "override presence false keeps it out: {presence}");

    let mut first = node.connect_as("first").await;
    first.request(2, "subscribe", json!({"channel": "pp:room"})).await;
    let mut second = node.connect_as("second").await;
    second.request(2, "subscribe", json!({"channel": "pp:room"})).await;
    // The namespace has join_leave off; the override announces these two (each sees its own too).
    let join = loop {
        let push = first.push("pp:room").await;
        if let Some(join) = push.get("join").filter(|j| j["info"]["user"] != "first") {
            break join.clone();
        }
    };
    assert_eq!(join["info"]["user"], "second");
}
