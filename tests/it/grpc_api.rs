//! The server gRPC API (`grpc_api`): Centrifugo's `CentrifugoApi` service, called as a client
//! generated from its api.proto would (tonic with the Protobuf codec, one path per rpc).

use std::str::FromStr;

use bytes::Bytes;
use gyre::api::grpc::proto;
use serde_json::json;
use tonic::{Code, Status};

use crate::support::*;

const GRPC_KEY: &str = "grpc-test-key";

/// A node serving the gRPC API on a free port, with `key` (empty: no authentication).
async fn grpc_node(key: &str, change: impl FnOnce(&mut gyre::config::Settings)) -> TestNode {
    TestNode::start_with(|s| {
        s.grpc_api.enabled = true;
        s.grpc_api.port = 0;
        s.grpc_api.address = "127.0.0.1".into();
        s.grpc_api.key = key.into();
        change(s);
    })
    .await
}

/// Calls `method` with `metadata` pairs, answering the response message or the status.
async fn call<Req, Res>(node: &TestNode, method: &str, request: Req, metadata: &[(&str, &str)]) -> Result<Res, Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Res: prost::Message + Default + Send + Sync + 'static,
{
    let endpoint = format!("http://{}", node.grpc_api_addr());
    let channel =
        tonic::transport::Endpoint::from_shared(endpoint).expect("endpoint").connect().await.expect("gRPC connect");
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.expect("ready");
    let path = http::uri::PathAndQuery::from_str(&format!("/centrifugal.centrifugo.api.CentrifugoApi/{method}"))
        .expect("path");
    let mut request = tonic::Request::new(request);
    for (name, value) in metadata {
        let name = tonic::metadata::MetadataKey::from_str(name).expect("metadata name");
        request.metadata_mut().insert(name, value.parse().expect("metadata value"));
    }
    let codec = tonic_prost::ProstCodec::<Req, Res>::default();
    grpc.unary(request, path, codec).await.map(tonic::Response::into_inner)
}

/// A call with the test key.
async fn authed<Req, Res>(node: &TestNode, method: &str, request: Req) -> Result<Res, Status>
where
    Req: prost::Message + Send + Sync + 'static,
    Res: prost::Message + Default + Send + Sync + 'static,
{
    call(node, method, request, &[("authorization", &format!("apikey {GRPC_KEY}"))]).await
}

fn publish_request(channel: &str, data: &[u8]) -> proto::PublishRequest {
    proto::PublishRequest { channel: channel.into(), data: Bytes::copy_from_slice(data), ..Default::default() }
}

/// JSON bytes and binary bytes both go into history as sent and come back as sent: the HTTP API
/// cannot return the binary one (500), the gRPC API can.
#[actix_web::test]
async fn publish_then_history_returns_json_and_binary_data() {
    let node = grpc_node(GRPC_KEY, |_| {}).await;
    let first: proto::PublishResponse =
        authed(&node, "Publish", publish_request("chat:g", br#"{"n":1}"#)).await.expect("answered");
    assert_eq!(first.error, None);
    let first = first.result.expect("result");
    assert_eq!(first.offset, 1);
    assert!(!first.epoch.is_empty());
    let mut binary = publish_request("chat:g", &[0, 159, 146, 150, 255]);
    binary.tags.insert("kind".into(), "bin".into());
    let second: proto::PublishResponse = authed(&node, "Publish", binary).await.expect("answered");
    assert_eq!(second.result.expect("result").offset, 2);

    let request = proto::HistoryRequest { channel: "chat:g".into(), limit: -1, ..Default::default() };
    let history: proto::HistoryResponse = authed(&node, "History", request).await.expect("answered");
    let history = history.result.expect("result");
    assert_eq!((history.offset, history.epoch.as_str()), (2, first.epoch.as_str()));
    let data: Vec<&[u8]> = history.publications.iter().map(|p| p.data.as_ref()).collect();
    assert_eq!(data, [&br#"{"n":1}"#[..], &[0, 159, 146, 150, 255][..]]);
    assert_eq!(history.publications[1].offset, 2);
    assert_eq!(history.publications[1].tags.get("kind").map(String::as_str), Some("bin"));

    let (status, _) = node.api("history", json!({"channel": "chat:g", "limit": -1})).await;
    assert_eq!(status, 500, "the JSON API cannot carry the binary publication");
}

/// `b64data` is decoded as over HTTP; a JSON client subscribed to the channel gets the JSON
/// payload embedded as JSON.
#[actix_web::test]
async fn published_json_bytes_reach_a_json_client_and_b64data_is_decoded() {
    let node = grpc_node("", |_| {}).await;
    let mut client = node.connect_as("reader").await;
    client.request(2, "subscribe", json!({"channel": "chat:live"})).await;
    let _: proto::PublishResponse =
        call(&node, "Publish", publish_request("chat:live", br#"{"a":[1,2]}"#), &[]).await.expect("answered");
    assert_eq!(client.publication("chat:live").await["data"], json!({"a": [1, 2]}));

    let request = proto::PublishRequest { channel: "chat:b64".into(), b64data: "AAEC".into(), ..Default::default() };
    let _: proto::PublishResponse = call(&node, "Publish", request, &[]).await.expect("answered");
    let request = proto::HistoryRequest { channel: "chat:b64".into(), limit: -1, ..Default::default() };
    let history: proto::HistoryResponse = call(&node, "History", request, &[]).await.expect("answered");
    assert_eq!(history.result.expect("result").publications[0].data.as_ref(), &[0, 1, 2]);
    let request =
        proto::PublishRequest { channel: "chat:b64".into(), b64data: "not base64!".into(), ..Default::default() };
    let bad: proto::PublishResponse = call(&node, "Publish", request, &[]).await.expect("answered");
    assert_eq!(bad.error.map(|e| e.code), Some(107));
}

#[actix_web::test]
async fn a_wrong_or_missing_key_is_unauthenticated() {
    let node = grpc_node(GRPC_KEY, |_| {}).await;
    for metadata in [&[][..], &[("authorization", "apikey wrong")], &[("authorization", GRPC_KEY)]] {
        let status =
            call::<_, proto::InfoResponse>(&node, "Info", proto::InfoRequest {}, metadata).await.expect_err("refused");
        assert_eq!((status.code(), status.message()), (Code::Unauthenticated, "unauthenticated"), "{metadata:?}");
    }
    // The HTTP API's key is not the gRPC API's.
    let metadata = [("authorization", format!("apikey {API_KEY}"))];
    let metadata: Vec<(&str, &str)> = metadata.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let status =
        call::<_, proto::InfoResponse>(&node, "Info", proto::InfoRequest {}, &metadata).await.expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
    let info: proto::InfoResponse = authed(&node, "Info", proto::InfoRequest {}).await.expect("answered");
    assert!(info.result.is_some());
}

/// Unlike the HTTP API, an empty `grpc_api.key` means no authentication.
#[actix_web::test]
async fn an_empty_key_needs_no_authentication() {
    let node = grpc_node("", |_| {}).await;
    let info: proto::InfoResponse = call(&node, "Info", proto::InfoRequest {}, &[]).await.expect("answered");
    assert!(info.result.is_some());
    let info: proto::InfoResponse =
        call(&node, "Info", proto::InfoRequest {}, &[("authorization", "apikey whatever")]).await.expect("answered");
    assert!(info.result.is_some());
}

#[actix_web::test]
async fn info_describes_this_node() {
    let node = grpc_node(GRPC_KEY, |_| {}).await;
    let _client = node.connect_as("someone").await;
    let info: proto::InfoResponse = authed(&node, "Info", proto::InfoRequest {}).await.expect("answered");
    let nodes = info.result.expect("result").nodes;
    assert_eq!(nodes.len(), 1);
    let running = node.running.as_ref().expect("running");
    assert_eq!(nodes[0].uid, running.node.uid);
    assert_eq!(nodes[0].name, running.node.name);
    assert!(nodes[0].version.ends_with(" OSS"), "{}", nodes[0].version);
    assert_eq!((nodes[0].num_clients, nodes[0].num_users), (1, 1));
}

/// The default error mode answers errors inside the response with status OK.
#[actix_web::test]
async fn errors_are_in_the_response_by_default() {
    let node = grpc_node("", |_| {}).await;
    let unknown: proto::PublishResponse =
        call(&node, "Publish", publish_request("nope:x", b"{}"), &[]).await.expect("answered");
    assert_eq!(unknown.error, Some(proto::Error { code: 102, message: "unknown channel".into() }));
    assert_eq!(unknown.result, None);
    let request = proto::RpcRequest { method: "m".into(), ..Default::default() };
    let rpc: proto::RpcResponse = call(&node, "RPC", request, &[]).await.expect("answered");
    assert_eq!(rpc.error.map(|e| e.code), Some(104));
}

/// Transport mode, per call (metadata) or for the server (`grpc_api.error_mode`): Centrifugo's
/// code → status mapping, with the `Error` as the status detail.
#[actix_web::test]
async fn transport_error_mode_answers_grpc_statuses() {
    let node = grpc_node("", |_| {}).await;
    let transport = [("x-centrifugo-error-mode", "transport")];
    let status = call::<_, proto::PublishResponse>(&node, "Publish", publish_request("nope:x", b"{}"), &transport)
        .await
        .expect_err("a status");
    assert_eq!((status.code(), status.message()), (Code::NotFound, "unknown channel"));
    assert!(!status.details().is_empty(), "the Error travels as the status detail");

    let node = grpc_node("", |s| s.grpc_api.error_mode = "transport".into()).await;
    let empty_channel = call::<_, proto::PublishResponse>(&node, "Publish", publish_request("", b"{}"), &[]).await;
    assert_eq!(status_of(empty_channel), Code::InvalidArgument, "107");
    let request = proto::HistoryRequest { channel: "news".into(), ..Default::default() };
    let no_history = call::<_, proto::HistoryResponse>(&node, "History", request, &[]).await;
    assert_eq!(status_of(no_history), Code::InvalidArgument, "108");
    let _: proto::PublishResponse =
        call(&node, "Publish", publish_request("chat:t", b"1"), &[]).await.expect("answered");
    let since = proto::StreamPosition { offset: 1, epoch: "not-the-epoch".into() };
    let request = proto::HistoryRequest { channel: "chat:t".into(), since: Some(since), ..Default::default() };
    let wrong_epoch = call::<_, proto::HistoryResponse>(&node, "History", request, &[]).await;
    assert_eq!(status_of(wrong_epoch), Code::OutOfRange, "112");
    let request = proto::RpcRequest { method: "m".into(), ..Default::default() };
    assert_eq!(status_of(call::<_, proto::RpcResponse>(&node, "RPC", request, &[]).await), Code::NotFound, "104");
    // Successes are unchanged.
    let ok: proto::PublishResponse =
        call(&node, "Publish", publish_request("chat:t", b"2"), &[]).await.expect("answered");
    assert_eq!(ok.result.map(|r| r.offset), Some(2));
}

/// The status code of a call that must have failed.
fn status_of<T: std::fmt::Debug>(outcome: Result<T, Status>) -> Code {
    outcome.expect_err("a status").code()
}

/// Batch answers OK even in transport mode, one reply per command in order, each with its own
/// result or error; a command without a (supported) method is 104.
#[actix_web::test]
async fn batch_answers_each_command_in_order() {
    let node = grpc_node("", |s| s.grpc_api.error_mode = "transport".into()).await;
    for parallel in [false, true] {
        let commands = vec![
            proto::Command { publish: Some(publish_request("chat:batch", b"{}")), ..Default::default() },
            proto::Command { publish: Some(publish_request("nope:x", b"{}")), ..Default::default() },
            proto::Command::default(),
            proto::Command {
                presence_stats: Some(proto::PresenceStatsRequest { channel: "chat:batch".into() }),
                ..Default::default()
            },
            proto::Command { info: Some(proto::InfoRequest {}), ..Default::default() },
        ];
        let response: proto::BatchResponse =
            call(&node, "Batch", proto::BatchRequest { commands, parallel }, &[]).await.expect("answered");
        let [published, unknown, empty, stats, info] = response.replies.as_slice() else {
            panic!("five replies: {response:?}")
        };
        assert_eq!(published.error, None);
        assert!(published.publish.as_ref().is_some_and(|r| r.offset > 0), "{published:?}");
        assert_eq!(unknown.error.as_ref().map(|e| e.code), Some(102));
        assert_eq!(unknown.publish, None);
        assert_eq!(empty.error, Some(proto::Error { code: 104, message: "not found".into() }));
        assert_eq!(stats.presence_stats, Some(proto::PresenceStatsResult { num_clients: 0, num_users: 0 }));
        assert_eq!(info.info.as_ref().map(|i| i.nodes.len()), Some(1));
    }
}

/// Server-side subscribe, presence, refresh, unsubscribe and disconnect act on a real client.
#[actix_web::test]
async fn user_methods_act_on_connected_clients() {
    let node = grpc_node("", |_| {}).await;
    let mut client = node.connect_as("grace").await;
    let request = proto::SubscribeRequest {
        user: "grace".into(),
        channel: "chat:srv".into(),
        data: Bytes::from_static(br#"{"hello":1}"#),
        ..Default::default()
    };
    let subscribed: proto::SubscribeResponse = call(&node, "Subscribe", request, &[]).await.expect("answered");
    assert_eq!(subscribed.error, None);
    let push = client.push("chat:srv").await;
    assert_eq!(push["subscribe"]["data"], json!({"hello": 1}));

    let request = proto::PresenceRequest { channel: "chat:srv".into() };
    let presence: proto::PresenceResponse = call(&node, "Presence", request, &[]).await.expect("answered");
    let presence = presence.result.expect("result").presence;
    assert_eq!(presence.get(&client.id).map(|info| info.user.as_str()), Some("grace"));
    let request = proto::ChannelsRequest { pattern: "chat:*".into() };
    let channels: proto::ChannelsResponse = call(&node, "Channels", request, &[]).await.expect("answered");
    assert_eq!(channels.result.expect("result").channels.get("chat:srv").map(|c| c.num_clients), Some(1));

    let request = proto::UnsubscribeRequest { user: "grace".into(), channel: "chat:srv".into(), ..Default::default() };
    let _: proto::UnsubscribeResponse = call(&node, "Unsubscribe", request, &[]).await.expect("answered");
    loop {
        if let Some(unsubscribe) = client.push("chat:srv").await.get("unsubscribe") {
            assert_eq!(unsubscribe["code"], 2000);
            break;
        }
    }
    let request = proto::RefreshRequest { user: "grace".into(), expire_at: now() + 3600, ..Default::default() };
    let refreshed: proto::RefreshResponse = call(&node, "Refresh", request, &[]).await.expect("answered");
    assert_eq!(refreshed.error, None);
    let disconnect = proto::Disconnect { code: 4321, reason: "grpc bye".into() };
    let request = proto::DisconnectRequest { user: "grace".into(), disconnect: Some(disconnect), ..Default::default() };
    let _: proto::DisconnectResponse = call(&node, "Disconnect", request, &[]).await.expect("answered");
    assert_eq!(client.closed().await, (4321, "grpc bye".to_owned()));
}

/// The rpcs gyre does not implement answer UNIMPLEMENTED (after the key check).
#[actix_web::test]
async fn methods_gyre_lacks_are_unimplemented() {
    let node = grpc_node(GRPC_KEY, |_| {}).await;
    for method in ["Connections", "UpdateUserStatus", "RevokeToken", "DeviceRegister", "MapPublish"] {
        let status = authed::<_, proto::ConnectionsResponse>(&node, method, proto::ConnectionsRequest {})
            .await
            .expect_err("unimplemented");
        assert_eq!(status.code(), Code::Unimplemented, "{method}");
    }
    let status = call::<_, proto::ConnectionsResponse>(&node, "Connections", proto::ConnectionsRequest {}, &[])
        .await
        .expect_err("refused");
    assert_eq!(status.code(), Code::Unauthenticated);
}

/// The server stops with the node: its port no longer answers.
#[actix_web::test]
async fn the_server_stops_with_the_node() {
    let mut node = grpc_node("", |_| {}).await;
    let addr = node.grpc_api_addr();
    let _: proto::InfoResponse = call(&node, "Info", proto::InfoRequest {}, &[]).await.expect("answered");
    node.running.take().expect("running").shutdown().await;
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
    assert!(endpoint.connect().await.is_err(), "the gRPC API port is closed after shutdown");
}

/// Calls are recorded under Centrifugo's metric names with `protocol="grpc"`, errors by code.
#[actix_web::test]
async fn calls_are_recorded_with_the_grpc_protocol_label() {
    let node = grpc_node("", |s| s.prometheus.enabled = true).await;
    let _: proto::PublishResponse =
        call(&node, "Publish", publish_request("chat:m", b"{}"), &[]).await.expect("answered");
    let _: proto::PublishResponse =
        call(&node, "Publish", publish_request("nope:m", b"{}"), &[]).await.expect("answered");
    let mut response =
        awc::Client::new().get(format!("http://{}/metrics", node.addr)).send().await.expect("metrics answered");
    let text = String::from_utf8_lossy(&response.body().await.expect("metrics body")).into_owned();
    let count = "centrifugo_api_command_duration_seconds_histogram_count{method=\"publish\",protocol=\"grpc\"}";
    let error = "centrifugo_api_command_errors_total{error=\"102\",method=\"publish\",protocol=\"grpc\"}";
    assert!(text.contains(count) && text.contains(error), "{text}");
}
