//! The admin endpoints: login for a token, who is logged in, the admin API with that token,
//! throttled password guessing, and tokens of one kind refused by the other API.

use serde_json::{json, Value};

use crate::support::*;

const PASSWORD: &str = "admin-password";
const ADMIN_SECRET: &str = "admin-secret";

async fn admin_node() -> TestNode {
    TestNode::start_with(|s| {
        s.admin.enabled = true;
        s.admin.password = PASSWORD.into();
        s.admin.secret = ADMIN_SECRET.into();
    })
    .await
}

/// `method` on `path` with an optional Authorization header and body; (status, body).
async fn call(node: &TestNode, method: &str, path: &str, auth: Option<&str>, body: &str) -> (u16, String) {
    let url = format!("http://{}{path}", node.addr);
    let client = awc::Client::new();
    let mut request = match method {
        "GET" => client.get(url),
        _ => client.post(url).insert_header(("Content-Type", "application/x-www-form-urlencoded")),
    };
    if let Some(auth) = auth {
        request = request.insert_header(("Authorization", auth));
    }
    let mut response = request.send_body(body.to_owned()).await.expect("admin request");
    let bytes = response.body().await.expect("admin body");
    (response.status().as_u16(), String::from_utf8_lossy(&bytes).into_owned())
}

async fn login(node: &TestNode) -> String {
    let (status, body) = call(node, "POST", "/admin/auth", None, &format!("password={PASSWORD}")).await;
    assert_eq!(status, 200, "{body}");
    let value: Value = serde_json::from_str(&body).unwrap();
    value["token"].as_str().expect("a token").to_owned()
}

#[actix_web::test]
async fn a_login_buys_a_token_that_runs_server_api_commands() {
    let node = admin_node().await;
    let (status, body) = call(&node, "GET", "/admin/init", None, "").await;
    assert_eq!((status, body.as_str()), (200, r#"{"authenticated":false,"edition":"oss","insecure":false}"#));

    let token = login(&node).await;
    let auth = format!("token {token}");
    let (_, body) = call(&node, "GET", "/admin/init", Some(&auth), "").await;
    assert_eq!(body, r#"{"authenticated":true,"edition":"oss","insecure":false}"#);

    let mut client = node.connect_as("watched").await;
    client.request(2, "subscribe", json!({"channel": "news"})).await;
    let commands = r#"{"id":1,"method":"publish","params":{"channel":"news","data":{"from":"admin"}}}
{"id":2,"method":"info","params":{}}"#;
    let (status, body) = call(&node, "POST", "/admin/api", Some(&auth), commands).await;
    assert_eq!(status, 200, "{body}");
    let replies: Vec<Value> = body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(replies.len(), 2, "{body}");
    assert!(replies[1]["result"]["nodes"].is_array(), "{body}");
    assert_eq!(client.publication("news").await["data"], json!({"from": "admin"}));
}

#[actix_web::test]
async fn wrong_missing_or_foreign_credentials_are_refused() {
    let node = admin_node().await;
    let (status, _) = call(&node, "POST", "/admin/auth", None, "password=wrong").await;
    assert_eq!(status, 400);
    let (status, _) = call(&node, "GET", "/admin/auth", None, "").await;
    assert_eq!(status, 405);
    let publish = r#"{"method":"publish","params":{"channel":"news","data":{}}}"#;
    for auth in [None, Some("token forged"), Some("apikey test-api-key"), Some("token")] {
        let (status, _) = call(&node, "POST", "/admin/api", auth, publish).await;
        assert_eq!(status, 401, "{auth:?}");
    }
    // A token another secret signed is not this node's.
    let foreign = gyre::admin::token::issue("another-secret", now()).unwrap();
    let (status, _) = call(&node, "POST", "/admin/api", Some(&format!("token {foreign}")), publish).await;
    assert_eq!(status, 401);
    // An admin token is not an API key.
    let token = login(&node).await;
    let (status, _) = node.api_raw("publish", r#"{"channel":"news","data":{}}"#, Some(&token)).await;
    assert_eq!(status, 401);
}

#[actix_web::test]
async fn password_guessing_is_throttled_per_address() {
    let node = admin_node().await;
    for attempt in 0..5 {
        let (status, _) = call(&node, "POST", "/admin/auth", None, "password=guess").await;
        assert_eq!(status, 400, "attempt {attempt}");
    }
    let (status, _) = call(&node, "POST", "/admin/auth", None, &format!("password={PASSWORD}")).await;
    assert_eq!(status, 429, "even the right password waits once the address used up its failures");
}

#[actix_web::test]
async fn insecure_admin_needs_no_login_and_disabled_admin_is_not_served() {
    let node = TestNode::start_with(|s| {
        s.admin.enabled = true;
        s.admin.insecure = true;
    })
    .await;
    let (_, body) = call(&node, "GET", "/admin/init", None, "").await;
    assert_eq!(body, r#"{"authenticated":true,"edition":"oss","insecure":true}"#);
    let (status, body) = call(&node, "POST", "/admin/api", None, r#"{"method":"info","params":{}}"#).await;
    assert_eq!(status, 200, "{body}");
    let plain = TestNode::start().await;
    let (status, _) = call(&plain, "GET", "/admin/init", None, "").await;
    assert_eq!(status, 404);
}

#[actix_web::test]
async fn the_live_tail_streams_a_channels_publications_to_token_holders_only() {
    use futures_util::StreamExt;
    let node = admin_node().await;
    let token = login(&node).await;
    let url = format!("http://{}/admin/tail", node.addr);
    let (status, _) = call(&node, "POST", "/admin/tail", None, r#"{"channel":"news"}"#).await;
    assert_eq!(status, 401);
    let (status, _) =
        call(&node, "POST", "/admin/tail", Some(&format!("token {token}")), r#"{"channel":"nope:x"}"#).await;
    assert_eq!(status, 400, "unknown namespace");

    // A private channel: the admin needs no subscription token.
    let mut response = awc::Client::new()
        .post(url)
        .insert_header(("Authorization", format!("token {token}")))
        .send_body(r#"{"channel":"$secret"}"#)
        .await
        .expect("tail request");
    assert_eq!(response.status().as_u16(), 200);
    let mut text = String::new();
    let mut published = false;
    let line = loop {
        let chunk = tokio::time::timeout(WAIT, response.next()).await.expect("the tail answers").expect("more body");
        text.push_str(std::str::from_utf8(&chunk.expect("a chunk")).unwrap());
        if !published && text.contains("\"connect\"") {
            node.api_ok("publish", json!({"channel": "$secret", "data": {"n": 1}})).await;
            published = true;
        }
        if let Some(line) = text.lines().find(|l| l.contains("\"pub\"")) {
            break serde_json::from_str::<Value>(line).unwrap();
        }
    };
    assert_eq!(line["channel"], "$secret");
    assert_eq!(line["pub"]["data"], json!({"n": 1}));
}

#[actix_web::test]
async fn a_tail_is_an_observer_not_in_presence_and_it_sees_joins() {
    use futures_util::StreamExt;
    let node = admin_node().await;
    let token = login(&node).await;
    let mut response = awc::Client::new()
        .post(format!("http://{}/admin/tail", node.addr))
        .insert_header(("Authorization", format!("token {token}")))
        .send_body(r#"{"channel":"chat:watched"}"#)
        .await
        .expect("tail request");
    let mut text = String::new();
    let mut joined = false;
    let join = loop {
        let chunk = tokio::time::timeout(WAIT, response.next()).await.expect("the tail answers").expect("more body");
        text.push_str(std::str::from_utf8(&chunk.expect("a chunk")).unwrap());
        if !joined && text.contains("\"connect\"") {
            let presence = node.api_ok("presence", json!({"channel": "chat:watched"})).await;
            assert_eq!(presence["presence"], json!({}), "the tail is not in presence: {presence}");
            let mut client = node.connect_as("visitor").await;
            client.request(2, "subscribe", json!({"channel": "chat:watched"})).await;
            std::mem::forget(client);
            joined = true;
        }
        if let Some(line) = text.lines().find(|l| l.contains("\"join\"")) {
            break serde_json::from_str::<Value>(line).unwrap();
        }
    };
    assert_eq!(join["join"]["info"]["user"], "visitor");
}
