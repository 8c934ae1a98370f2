"""The Protobuf protocol with the official centrifuge-python SDK (`use_protobuf=True`): the
subprotocol `centrifuge-protobuf`, binary frames of length-delimited commands and replies. Payloads
are bytes on this side, and gyre carries any bytes: binary data arrives byte for byte."""

import asyncio
import base64
import json
import time

import cent

from centrifuge import CentrifugeError

from conftest import observe_until, rand

# Pings every second with pongs required: the SDK answers them in Protobuf.
GYRE_CONFIG_PATCH = {"client": {"ping_interval": "1s", "pong_timeout": "500ms"}, "rpc": {"ping": {"enabled": True}}}


def as_json(data: bytes):
    assert isinstance(data, bytes), f"Protobuf payloads are bytes, got {type(data)}"
    return json.loads(data)


async def test_connects_subscribes_and_receives_api_publications_as_bytes(sdk, node):
    client = sdk.client(node.token("alice", info={"name": "Alice"}), use_protobuf=True)
    connected = await sdk.connected(client)
    assert connected.client
    channel = "chat:pb-" + rand()
    sub = sdk.sub(client, channel)
    subscribed = await sdk.subscribed(sub)
    assert subscribed.recoverable is True and subscribed.stream_position.epoch
    data = {"text": "héllo ✓", "n": 42, "nested": [1, None, True]}
    result = await node.publish(channel, data)
    pubs = await sub.log.wait_count("publication", 1)
    assert as_json(pubs[0].pub.data) == data
    assert pubs[0].pub.offset == result.offset == 1


async def test_client_publish_reaches_a_json_subscriber_and_a_protobuf_one(sdk, node):
    channel = "chat:mixed-" + rand()
    pb = sdk.client(node.token("pb", info={"kind": "protobuf"}), use_protobuf=True)
    js = sdk.client(node.token("js"))
    pb_ctx = await sdk.connected(pb)
    await sdk.connected(js)
    pb_sub = sdk.sub(pb, channel)
    js_sub = sdk.sub(js, channel)
    await sdk.subscribed(pb_sub)
    await sdk.subscribed(js_sub)
    await pb_sub.publish(json.dumps({"from": "protobuf"}).encode())
    got = await js_sub.log.wait_count("publication", 1)
    assert got[0].pub.data == {"from": "protobuf"}
    assert got[0].pub.info.user == "pb" and got[0].pub.info.client == pb_ctx.client
    assert got[0].pub.info.conn_info == {"kind": "protobuf"}
    own = await pb_sub.log.wait_count("publication", 1)
    assert as_json(own[0].pub.data) == {"from": "protobuf"}
    assert own[0].pub.info.user == "pb"
    # And the other way: JSON publishes arrive at the Protobuf client as bytes.
    await js_sub.publish({"from": "json"})
    back = await pb_sub.log.wait_count("publication", 2)
    assert as_json(back[1].pub.data) == {"from": "json"}


async def test_presence_history_and_join_leave_over_protobuf(sdk, node):
    channel = "chat:meta-" + rand()
    watcher = sdk.client(node.token("watcher"), use_protobuf=True)
    await sdk.connected(watcher)
    watch = sdk.sub(watcher, channel)
    await sdk.subscribed(watch)
    other = sdk.client(node.token("other", info={"n": 1}), use_protobuf=True)
    other_ctx = await sdk.connected(other)
    other_sub = sdk.sub(other, channel)
    await sdk.subscribed(other_sub)
    join = await watch.log.wait("join", lambda c: c.info.user == "other")
    assert join.info.client == other_ctx.client and as_json(join.info.conn_info) == {"n": 1}

    presence = await watch.presence()
    assert {info.user for info in presence.clients.values()} == {"watcher", "other"}
    stats = await watch.presence_stats()
    assert (stats.num_clients, stats.num_users) == (2, 2)

    for seq in (1, 2, 3):
        await node.publish(channel, {"seq": seq})
    history = await watch.history(limit=-1)
    assert [as_json(p.data)["seq"] for p in history.publications] == [1, 2, 3]
    assert [p.offset for p in history.publications] == [1, 2, 3]
    assert history.offset == 3 and history.epoch

    await other_sub.unsubscribe()
    leave = await watch.log.wait("leave", lambda c: c.info.user == "other")
    assert leave.info.client == other_ctx.client


async def test_recovers_missed_publications_after_a_reconnect(sdk, node):
    channel = "chat:recover-pb-" + rand()
    client = sdk.client(node.token("erin"), use_protobuf=True)
    await sdk.connected(client)
    sub = sdk.sub(client, channel)
    first = await sdk.subscribed(sub)
    await node.publish(channel, {"seq": 1})
    await sub.log.wait_count("publication", 1)
    await client.disconnect()
    await client.log.wait("disconnected")
    for seq in (2, 3, 4):
        await node.publish(channel, {"seq": seq})
    await client.connect()
    subscribed = await sub.log.wait_count("subscribed", 2)
    assert subscribed[1].was_recovering is True and subscribed[1].recovered is True
    assert subscribed[1].stream_position.epoch == first.stream_position.epoch
    pubs = await sub.log.wait_count("publication", 4)
    assert [as_json(c.pub.data)["seq"] for c in pubs] == [1, 2, 3, 4]
    assert [c.pub.offset for c in pubs] == [1, 2, 3, 4]


async def test_rpc_and_errors_over_protobuf(sdk, node):
    client = sdk.client(node.token("rpc"), use_protobuf=True)
    await sdk.connected(client)
    result = await client.rpc("ping", b"")
    assert result.data is None or result.data == b""
    try:
        await client.rpc("nope", b"{}")
        raise AssertionError("an unknown RPC method must fail")
    except CentrifugeError as error:
        assert error.code == 104, error
    sub = sdk.sub(client, "nosuchns:" + rand())
    await sub.subscribe()
    ctx = await sub.log.wait("unsubscribed")
    assert (ctx.code, ctx.reason) == (102, "unknown channel")


async def test_stays_connected_across_server_pings_answered_in_protobuf(sdk, node):
    client = sdk.client(node.token("pat"), use_protobuf=True, max_server_ping_delay=1.0)
    await sdk.connected(client)
    channel = "chat:ping-" + rand()
    sub = sdk.sub(client, channel)
    await sdk.subscribed(sub)
    # Three ping intervals: a missed pong (500 ms timeout) or ping would disconnect the client.
    await observe_until(time.time() + 3.5)
    assert client.log.of("disconnected") == []
    await node.publish(channel, {"after": "pings"})
    pubs = await sub.log.wait_count("publication", 1)
    assert as_json(pubs[0].pub.data) == {"after": "pings"}


# Every byte value, a newline and a lone quote: nothing a JSON path could carry unchanged.
BINARY = bytes(range(256)) + b'\n"'


async def test_binary_data_is_byte_exact_through_api_b64data_and_client_publish(sdk, node):
    channel = "chat:bin-" + rand()
    client = sdk.client(node.token("bin"), use_protobuf=True)
    await sdk.connected(client)
    sub = sdk.sub(client, channel)
    await sdk.subscribed(sub)
    request = cent.PublishRequest(channel=channel, data=None, b64data=base64.b64encode(BINARY).decode())
    result = await asyncio.to_thread(node.cent.publish, request)
    assert result.offset == 1
    pubs = await sub.log.wait_count("publication", 1)
    assert pubs[0].pub.data == BINARY
    await sub.publish(BINARY[::-1])
    pubs = await sub.log.wait_count("publication", 2)
    assert pubs[1].pub.data == BINARY[::-1] and pubs[1].pub.info.user == "bin"
    history = await sub.history(limit=-1)
    assert [p.data for p in history.publications] == [BINARY, BINARY[::-1]]


async def test_a_json_client_in_a_channel_with_binary_data_is_disconnected_with_3506(sdk, node):
    channel = "chat:mixed-bin-" + rand()
    pb = sdk.client(node.token("pb"), use_protobuf=True)
    js = sdk.client(node.token("js"))
    await sdk.connected(pb)
    await sdk.connected(js)
    pb_sub = sdk.sub(pb, channel)
    js_sub = sdk.sub(js, channel)
    await sdk.subscribed(pb_sub)
    await sdk.subscribed(js_sub)
    await pb_sub.publish(b"\xff\x00 not json")
    disconnected = await js.log.wait("disconnected")
    assert (disconnected.code, disconnected.reason) == (3506, "inappropriate protocol")
    own = await pb_sub.log.wait_count("publication", 1)
    assert own[0].pub.data == b"\xff\x00 not json"
    # The Protobuf client and the channel go on.
    await node.publish(channel, {"still": "here"})
    pubs = await pb_sub.log.wait_count("publication", 2)
    assert as_json(pubs[1].pub.data) == {"still": "here"}
