"""The server gRPC API (grpc_api) with a client generated from gyre's api.proto: grpcio-tools
compiles src/api/grpc/api.proto at test time and the generated CentrifugoApiStub calls every
method gyre implements on its gRPC API port, as a Centrifugo gRPC API client would. Effects on
connections are observed through real centrifuge-python clients."""

import asyncio
import importlib
import json
import re
import sys
import time

import grpc
import pytest
from grpc_tools import protoc

from conftest import REPO_ROOT, rand

GRPC_KEY = "grpc-key-" + rand(8)
GYRE_CONFIG_PATCH = {"grpc_api": {"enabled": True, "port": 0, "address": "127.0.0.1", "key": GRPC_KEY}}
PROTO_DIR = REPO_ROOT / "src" / "api" / "grpc"
GRPC_API_LISTENING = re.compile(r"grpc_api listening.*addr=(127\.0\.0\.1:\d+)")
AUTH = (("authorization", f"apikey {GRPC_KEY}"),)
TRANSPORT = AUTH + (("x-centrifugo-error-mode", "transport"),)
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def api_pb(tmp_path_factory):
    out = tmp_path_factory.mktemp("grpc_api")
    args = ["protoc", f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}", "api.proto"]
    assert protoc.main(args) == 0, "grpcio-tools could not compile api.proto"
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("api_pb2"), importlib.import_module("api_pb2_grpc")
    finally:
        sys.path.remove(str(out))


def grpc_api_addr(node) -> str:
    """The gRPC API port gyre logged (it binds port 0 here); bounded wait for the log line."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for line in list(node.output):
            match = GRPC_API_LISTENING.search(line)
            if match:
                return match.group(1)
        time.sleep(0.02)
    raise AssertionError("gyre did not log its grpc_api address:\n" + "".join(node.output))


@pytest.fixture(scope="module")
def api(node, api_pb):
    """(messages module, stub) on one channel for the module."""
    pb2, pb2_grpc = api_pb
    with grpc.insecure_channel(grpc_api_addr(node)) as conn:
        yield pb2, pb2_grpc.CentrifugoApiStub(conn)


async def call(method, request, metadata=AUTH):
    """A blocking stub call, off the event loop (the SDK clients run on it)."""
    return await asyncio.to_thread(method, request, metadata=metadata, timeout=TIMEOUT)


def test_publish_then_history_returns_json_and_binary_payloads_and_history_remove_clears_it(api):
    pb2, stub = api
    channel = "chat:grpc-" + rand()
    first = stub.Publish(pb2.PublishRequest(channel=channel, data=b'{"n":1}'), metadata=AUTH)
    assert not first.HasField("error")
    assert first.result.offset == 1 and first.result.epoch
    second = stub.Publish(
        pb2.PublishRequest(channel=channel, data=bytes([0, 159, 146, 150, 255]), tags={"kind": "bin"}),
        metadata=AUTH,
    )
    assert second.result.offset == 2
    history = stub.History(pb2.HistoryRequest(channel=channel, limit=-1), metadata=AUTH).result
    assert [p.data for p in history.publications] == [b'{"n":1}', bytes([0, 159, 146, 150, 255])]
    assert [p.offset for p in history.publications] == [1, 2]
    assert dict(history.publications[1].tags) == {"kind": "bin"}
    assert (history.offset, history.epoch) == (2, first.result.epoch)

    removed = stub.HistoryRemove(pb2.HistoryRemoveRequest(channel=channel), metadata=AUTH)
    assert removed.HasField("result") and not removed.HasField("error")
    after = stub.History(pb2.HistoryRequest(channel=channel, limit=-1), metadata=AUTH).result
    assert list(after.publications) == []
    assert (after.offset, after.epoch) == (2, first.result.epoch)


async def test_publish_and_broadcast_reach_a_subscribed_sdk_client(sdk, node, api):
    pb2, stub = api
    channel, other = "chat:pub-" + rand(), "chat:pub-" + rand()
    client = sdk.client(node.token("reader-" + rand()))
    await sdk.connected(client)
    sub = sdk.sub(client, channel)
    await sdk.subscribed(sub)

    await call(stub.Publish, pb2.PublishRequest(channel=channel, data=json.dumps({"via": "grpc"}).encode()))
    ctx = await sub.log.wait("publication")
    assert ctx.pub.data == {"via": "grpc"}

    request = pb2.BroadcastRequest(channels=[channel, other, "nope:" + rand()], data=b'{"all":true}')
    broadcast = (await call(stub.Broadcast, request)).result
    assert [r.HasField("error") for r in broadcast.responses] == [False, False, True]
    assert broadcast.responses[1].result.offset == 1
    assert broadcast.responses[2].error.code == 102
    ctx = await sub.log.wait("publication", lambda c: c.pub.data == {"all": True})
    assert ctx.pub.offset == 2


async def test_subscribe_presence_stats_channels_and_unsubscribe_act_on_sdk_clients(sdk, node, api):
    pb2, stub = api
    user = "srv-" + rand()
    channel = "chat:srv-" + rand()
    client = sdk.client(node.token(user))
    connected = await sdk.connected(client)

    request = pb2.SubscribeRequest(user=user, channel=channel, data=b'{"hello":1}')
    assert not (await call(stub.Subscribe, request)).HasField("error")
    subscribed = await client.log.wait("server_subscribed", lambda c: c.channel == channel)
    assert subscribed.data == {"hello": 1}
    await call(stub.Publish, pb2.PublishRequest(channel=channel, data=b'"server side"'))
    assert (await client.log.wait("server_publication")).pub.data == "server side"

    presence = (await call(stub.Presence, pb2.PresenceRequest(channel=channel))).result.presence
    assert list(presence) == [connected.client]
    assert (presence[connected.client].user, presence[connected.client].client) == (user, connected.client)
    stats = (await call(stub.PresenceStats, pb2.PresenceStatsRequest(channel=channel))).result
    assert (stats.num_clients, stats.num_users) == (1, 1)
    channels = (await call(stub.Channels, pb2.ChannelsRequest(pattern="chat:srv-*"))).result.channels
    assert channels[channel].num_clients == 1

    own = "chat:own-" + rand()
    sub = sdk.sub(client, own)
    await sdk.subscribed(sub)
    await call(stub.Unsubscribe, pb2.UnsubscribeRequest(user=user, channel=own))
    ctx = await sub.log.wait("unsubscribed")
    assert (ctx.code, ctx.reason) == (2000, "server unsubscribe")


async def test_disconnect_with_a_custom_code_and_refresh_expired(sdk, node, api):
    pb2, stub = api
    user = "dis-" + rand()
    client = sdk.client(node.token(user))
    await sdk.connected(client)
    request = pb2.DisconnectRequest(user=user, disconnect=pb2.Disconnect(code=4000, reason="come back"))
    assert not (await call(stub.Disconnect, request)).HasField("error")
    ctx = await client.log.wait("connecting", lambda c: c.code == 4000)
    assert ctx.reason == "come back"
    await client.log.wait_count("connected", 2)

    assert not (await call(stub.Refresh, pb2.RefreshRequest(user=user, expired=True))).HasField("error")
    ctx = await client.log.wait("connecting", lambda c: c.code == 3005)
    assert ctx.reason == "connection expired"
    await client.log.wait_count("connected", 3)


async def test_info_counts_connected_sdk_clients(sdk, node, api):
    pb2, stub = api
    client = sdk.client(node.token("info-" + rand()))
    await sdk.connected(client)
    nodes = (await call(stub.Info, pb2.InfoRequest())).result.nodes
    assert len(nodes) == 1
    assert nodes[0].uid and nodes[0].version.endswith(" OSS")
    assert nodes[0].num_clients >= 1 and nodes[0].num_users >= 1


def test_rpc_without_extensions_is_104_in_the_response_or_not_found_in_transport_mode(api):
    pb2, stub = api
    response = stub.RPC(pb2.RPCRequest(method="anything", params=b"{}"), metadata=AUTH)
    assert (response.error.code, response.error.message) == (104, "not found")
    with pytest.raises(grpc.RpcError) as raised:
        stub.RPC(pb2.RPCRequest(method="anything"), metadata=TRANSPORT)
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_transport_error_mode_maps_codes_to_statuses(api):
    pb2, stub = api
    cases = [
        (pb2.PublishRequest(channel="nope:" + rand(), data=b"{}"), grpc.StatusCode.NOT_FOUND, "unknown channel"),
        (pb2.PublishRequest(channel="", data=b"{}"), grpc.StatusCode.INVALID_ARGUMENT, "bad request"),
    ]
    for request, code, message in cases:
        in_body = stub.Publish(request, metadata=AUTH)
        assert in_body.error.message == message
        with pytest.raises(grpc.RpcError) as raised:
            stub.Publish(request, metadata=TRANSPORT)
        assert (raised.value.code(), raised.value.details()) == (code, message)
        # The Error rides along as the status detail (google.rpc.Status in grpc-status-details-bin).
        trailers = dict(raised.value.trailing_metadata() or ())
        assert "grpc-status-details-bin" in trailers
    with pytest.raises(grpc.RpcError) as raised:
        stub.History(pb2.HistoryRequest(channel="news"), metadata=TRANSPORT)
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_batch_answers_every_command_in_order_with_status_ok_in_transport_mode(api):
    pb2, stub = api
    channel = "chat:batch-" + rand()
    for parallel in (False, True):
        commands = [
            pb2.Command(publish=pb2.PublishRequest(channel=channel, data=b'{"b":1}')),
            pb2.Command(publish=pb2.PublishRequest(channel="nope:" + rand(), data=b"{}")),
            pb2.Command(),
            pb2.Command(history=pb2.HistoryRequest(channel=channel, limit=-1)),
            pb2.Command(info=pb2.InfoRequest()),
        ]
        replies = stub.Batch(pb2.BatchRequest(commands=commands, parallel=parallel), metadata=TRANSPORT).replies
        assert len(replies) == 5
        assert replies[0].publish.offset >= 1 and not replies[0].HasField("error")
        assert replies[1].error.code == 102
        assert (replies[2].error.code, replies[2].error.message) == (104, "not found")
        if not parallel:
            assert [p.data for p in replies[3].history.publications] == [b'{"b":1}']
        assert len(replies[4].info.nodes) == 1


def test_calls_without_the_key_or_with_a_wrong_one_are_unauthenticated(node, api):
    pb2, stub = api
    for metadata in ((), (("authorization", "apikey wrong"),), (("authorization", f"apikey {node.api_key}"),)):
        with pytest.raises(grpc.RpcError) as raised:
            stub.Info(pb2.InfoRequest(), metadata=metadata)
        assert (raised.value.code(), raised.value.details()) == (grpc.StatusCode.UNAUTHENTICATED, "unauthenticated")


def test_methods_gyre_lacks_answer_unimplemented(api):
    pb2, stub = api
    for method, request in (
        (stub.Connections, pb2.ConnectionsRequest()),
        (stub.UpdateUserStatus, pb2.UpdateUserStatusRequest()),
        (stub.SendPushNotification, pb2.SendPushNotificationRequest()),
        (stub.MapPublish, pb2.MapPublishRequest()),
        (stub.SharedPollPublish, pb2.SharedPollPublishRequest()),
    ):
        with pytest.raises(grpc.RpcError) as raised:
            method(request, metadata=AUTH)
        assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
