use serde_json::json;

use crate::support::*;

#[actix_web::test]
async fn broadcast_answers_per_channel_in_order() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    client.request(2, "subscribe", json!({"channel": "a"})).await;
    client.request(3, "subscribe", json!({"channel": "chat:b"})).await;
    let result = node.api_ok("broadcast", json!({"channels": ["a", "nope:x", "chat:b"], "data": {"x": 1}})).await;
    let responses = result["responses"].as_array().unwrap();
    assert_eq!(responses[0], json!({"result": {}}));
    assert_eq!(responses[1], json!({"error": {"code": 102, "message": "unknown channel"}}));
    assert_eq!(responses[2]["result"]["offset"], 1);
    assert_eq!(client.publication("a").await["data"], json!({"x": 1}));
    assert_eq!(client.publication("chat:b").await["data"], json!({"x": 1}));
    let (_, empty) = node.api("broadcast", json!({"channels": []})).await;
    assert_eq!(empty, r#"{"error":{"code":107,"message":"bad request"}}"#);
}

/// A large broadcast is answered as it runs (chunked), in request order, per-channel errors in
/// place, and every channel got its publication.
#[actix_web::test]
async fn a_large_broadcast_is_streamed_in_request_order() {
    let node = TestNode::start().await;
    let mut channels: Vec<String> = (0..20_000).map(|n| format!("chat:big{n}")).collect();
    channels[12_345] = "nope:x".into();
    let body = json!({"channels": channels, "data": {"x": 1}}).to_string();
    let mut response = awc::Client::new()
        .post(format!("http://{}/api/broadcast", node.addr))
        .insert_header(("X-API-Key", API_KEY))
        .send_body(body)
        .await
        .expect("broadcast");
    assert_eq!(response.status().as_u16(), 200);
    assert!(response.headers().get("content-length").is_none(), "streamed, not buffered");
    let bytes = response.body().limit(64 << 20).await.expect("whole body");
    let value: serde_json::Value = serde_json::from_slice(&bytes).expect("one JSON document");
    let responses = value["result"]["responses"].as_array().expect("responses");
    assert_eq!(responses.len(), 20_000);
    assert_eq!(responses[12_345], json!({"error": {"code": 102, "message": "unknown channel"}}));
    assert!(responses.iter().enumerate().all(|(i, r)| i == 12_345 || r["result"]["offset"] == 1));
    let history = node.api_ok("history", json!({"channel": "chat:big19999", "limit": -1})).await;
    assert_eq!(history["publications"][0]["data"], json!({"x": 1}));

    let (status, text) = node.api_raw("broadcast", r#"{"channels":["a"],"b64data":"!"}"#, Some(API_KEY)).await;
    assert_eq!((status, text.as_str()), (200, r#"{"error":{"code":107,"message":"bad request"}}"#));
}

#[actix_web::test]
async fn api_key_is_accepted_from_authorization_header() {
    let node = TestNode::start().await;
    let mut response = awc::Client::new()
        .post(format!("http://{}/api/info", node.addr))
        .insert_header(("Authorization", format!("apikey {API_KEY}")))
        .send_body("{}")
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: serde_json::Value = serde_json::from_slice(&response.body().await.unwrap()).unwrap();
    let nodes = body["result"]["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 1);
    assert!(nodes[0]["uid"].is_string() && nodes[0]["name"].is_string());
}

#[actix_web::test]
async fn get_on_api_is_405_with_empty_body() {
    let node = TestNode::start().await;
    let mut response = awc::Client::new().get(format!("http://{}/api/publish", node.addr)).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 405);
    assert!(response.body().await.unwrap().is_empty());
}

#[actix_web::test]
async fn b64data_publishes_decoded_json() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    client.request(2, "subscribe", json!({"channel": "news"})).await;
    // base64 of {"a":1}
    node.api_ok("publish", json!({"channel": "news", "b64data": "eyJhIjoxfQ=="})).await;
    assert_eq!(client.publication("news").await["data"], json!({"a": 1}));
}

#[actix_web::test]
async fn pretty_printed_data_is_delivered_without_raw_newlines() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    client.request(2, "subscribe", json!({"channel": "news"})).await;
    let body = "{\"channel\":\"news\",\"data\":{\n  \"a\": \"x\\ny\"\n}}";
    assert_eq!(node.api_raw("publish", body, Some(API_KEY)).await.0, 200);
    assert_eq!(client.publication("news").await["data"], json!({"a": "x\ny"}));
}

#[actix_web::test]
async fn api_subscribe_pushes_subscribe_and_api_unsubscribe_pushes_2000() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("alice").await;
    node.api_ok("subscribe", json!({"user": "alice", "channel": "chat:srv", "data": {"hello": 1}})).await;
    let push = client.push("chat:srv").await;
    assert_eq!(push["subscribe"]["recoverable"], true);
    assert_eq!(push["subscribe"]["data"], json!({"hello": 1}));
    node.api_ok("publish", json!({"channel": "chat:srv", "data": "x"})).await;
    assert_eq!(client.publication("chat:srv").await["data"], "x");
    let channels = node.api_ok("channels", json!({"pattern": "chat:*"})).await;
    assert_eq!(channels, json!({"channels": {"chat:srv": {"num_clients": 1}}}));
    node.api_ok("unsubscribe", json!({"user": "alice", "channel": "chat:srv"})).await;
    loop {
        let push = client.push("chat:srv").await;
        if let Some(unsubscribe) = push.get("unsubscribe") {
            assert_eq!(unsubscribe, &json!({"code": 2000, "reason": "server unsubscribe"}));
            break;
        }
    }
    assert_eq!(node.api_ok("channels", json!({})).await, json!({"channels": {}}));
}

#[actix_web::test]
async fn api_disconnect_uses_custom_code_and_spares_the_whitelist() {
    let node = TestNode::start().await;
    let mut first = node.connect_as("bob").await;
    let mut spared = node.connect_as("bob").await;
    let info = node.api_ok("info", json!({})).await;
    assert_eq!(info["nodes"][0]["num_clients"], 2);
    assert_eq!(info["nodes"][0]["num_users"], 1);
    let body = json!({"user": "bob", "whitelist": [spared.id], "disconnect": {"code": 4501, "reason": "go away"}});
    node.api_ok("disconnect", body).await;
    assert_eq!(first.closed().await, (4501, "go away".to_owned()));
    assert_eq!(spared.request(2, "ping", json!({})).await, json!({"id": 2, "ping": {}}));
    node.api_ok("disconnect", json!({"user": "nobody"})).await;
    node.api_ok("disconnect", json!({"user": "bob", "client": spared.id})).await;
    assert_eq!(spared.closed().await, (3503, "force disconnect".to_owned()));
}

#[actix_web::test]
async fn api_refresh_expired_closes_with_3005() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("dave").await;
    node.api_ok("refresh", json!({"user": "dave", "expired": true})).await;
    assert_eq!(client.closed().await, (3005, "connection expired".to_owned()));
}

#[actix_web::test]
async fn idempotent_publish_delivers_once_and_returns_the_first_result() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    client.request(2, "subscribe", json!({"channel": "chat:idem"})).await;
    let body = json!({"channel": "chat:idem", "data": {"n": 1}, "idempotency_key": "k1"});
    let first = node.api_ok("publish", body.clone()).await;
    let second = node.api_ok("publish", body).await;
    assert_eq!(first, second);
    node.api_ok("publish", json!({"channel": "chat:idem", "data": {"n": 2}})).await;
    assert_eq!(client.publication("chat:idem").await["data"], json!({"n": 1}));
    assert_eq!(client.publication("chat:idem").await["data"], json!({"n": 2}));
    let history = node.api_ok("history", json!({"channel": "chat:idem", "limit": -1})).await;
    assert_eq!(history["publications"].as_array().unwrap().len(), 2);
}

#[actix_web::test]
async fn batch_runs_every_command_and_reports_each() {
    let node = TestNode::start().await;
    let (status, body) = node
        .api(
            "batch",
            json!({"commands": [
                {"publish": {"channel": "chat:b", "data": 1}},
                {"publish": {"channel": "nope:x", "data": 1}},
                {"presence_stats": {"channel": "chat:b"}},
                {"teleport": {}},
                null
            ], "parallel": false}),
        )
        .await;
    assert_eq!(status, 200);
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    let replies = body["replies"].as_array().unwrap();
    assert_eq!(replies[0]["publish"]["offset"], 1);
    assert_eq!(replies[1]["error"]["code"], 102);
    assert_eq!(replies[2]["presence_stats"], json!({"num_clients": 0, "num_users": 0}));
    assert_eq!(replies[3]["error"]["code"], 104);
    assert_eq!(replies[4]["error"]["code"], 107);
    let (_, parallel) =
        node.api("batch", json!({"commands": [{"publish": {"channel": "chat:b", "data": 2}}], "parallel": true})).await;
    assert_eq!(
        parallel,
        r#"{"replies":[{"publish":{"offset":2,"epoch":"#.to_owned()
            + &format!("{}", replies[0]["publish"]["epoch"])
            + "}}]}"
    );
}

#[actix_web::test]
async fn legacy_api_endpoint_answers_line_per_command() {
    let node = TestNode::start().await;
    let body = "{\"method\":\"publish\",\"params\":{\"channel\":\"chat:l\",\"data\":1}}\n{\"id\":7,\"method\":9,\"params\":{}}\n{\"params\":{\"channel\":\"\",\"data\":1}}\n{\"method\":99}";
    let mut response = awc::Client::new()
        .post(format!("http://{}/api", node.addr))
        .insert_header(("X-API-Key", API_KEY))
        .send_body(body)
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let text = String::from_utf8(response.body().await.unwrap().to_vec()).unwrap();
    let lines: Vec<serde_json::Value> = text.split('\n').map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["result"]["offset"], 1);
    assert_eq!(lines[1]["id"], 7);
    assert!(lines[1]["result"]["nodes"].is_array());
    assert_eq!(lines[2]["error"]["code"], 107);
    assert_eq!(lines[3]["error"]["code"], 104);
    let unknown = awc::Client::new()
        .post(format!("http://{}/api", node.addr))
        .insert_header(("X-API-Key", API_KEY))
        .send_body("{\"method\":\"teleport\"}")
        .await
        .unwrap();
    assert_eq!(unknown.status().as_u16(), 400);
}

#[actix_web::test]
async fn api_key_in_the_query_is_percent_decoded_and_tried_after_a_wrong_header() {
    const KEY: &str = "k+e/y=%1";
    let node = TestNode::start_with(|s| s.http_api.key = KEY.into()).await;
    let status = |query: &'static str, header: Option<&'static str>| {
        let addr = node.addr;
        async move {
            let mut request = awc::Client::new().post(format!("http://{addr}/api/info{query}"));
            if let Some(header) = header {
                request = request.insert_header(("X-API-Key", header));
            }
            request.send_body("{}").await.expect("api request").status().as_u16()
        }
    };
    assert_eq!(status("", Some(KEY)).await, 200);
    assert_eq!(status("?api_key=k%2Be%2Fy%3D%251", None).await, 200);
    assert_eq!(status("?api_key=k%2Be%2Fy%3D%251", Some("wrong")).await, 200, "a wrong header falls back to the query");
    assert_eq!(status("?api_key=k+e/y=%1", None).await, 401, "`+` is a space, as in Go");
    assert_eq!(status("?api_key=wrong", Some("wrong")).await, 401);
}

#[actix_web::test]
async fn api_keys_match_fields_case_insensitively_as_go_does() {
    let node = TestNode::start().await;
    let mut client = node.connect_as("1").await;
    client.request(2, "subscribe", json!({"channel": "news"})).await;
    let (status, body) = node.api_raw("publish", r#"{"Channel":"news","DATA":{"Kept":"As Is"}}"#, Some(API_KEY)).await;
    assert_eq!((status, body.as_str()), (200, r#"{"result":{}}"#));
    assert_eq!(client.publication("news").await["data"], json!({"Kept": "As Is"}));
}
