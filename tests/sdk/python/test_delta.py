"""Fossil delta compression with centrifuge-python's own decoder (`delta=DeltaType.FOSSIL`), in
both protocols: the first publication is full, the next ones arrive as patches (`pub.delta`) and
decode to exactly what was published."""

import json

import pytest
from centrifuge import DeltaType

from conftest import rand


def state(minute: int):
    return {"match": "home-away", "score": "1:0", "minute": minute, "events": ["kickoff", "goal", "x" * 200]}


@pytest.mark.parametrize("use_protobuf", [False, True], ids=["json", "protobuf"])
async def test_successive_states_arrive_as_patches_and_decode_exactly(sdk, node, use_protobuf):
    channel = "delta:py-" + rand()
    client = sdk.client(node.token("d"), use_protobuf=use_protobuf)
    await sdk.connected(client)
    sub = sdk.sub(client, channel, delta=DeltaType.FOSSIL)
    await sdk.subscribed(sub)
    for minute in range(1, 5):
        await node.publish(channel, state(minute))
    pubs = await sub.log.wait_count("publication", 4)
    decoded = [json.loads(c.pub.data) if use_protobuf else c.pub.data for c in pubs]
    assert decoded == [state(m) for m in range(1, 5)]
    assert [c.pub.delta for c in pubs] == [False, True, True, True]
    # Client publishes in a delta_publish namespace are deltas too, and mix with API ones.
    body = state(5)
    await sub.publish(json.dumps(body).encode() if use_protobuf else body)
    pubs = await sub.log.wait_count("publication", 5)
    assert (json.loads(pubs[4].pub.data) if use_protobuf else pubs[4].pub.data) == body
    assert pubs[4].pub.delta is True


async def test_a_json_and_a_protobuf_delta_subscriber_share_a_channel_with_a_plain_one(sdk, node):
    channel = "delta:mixed-" + rand()
    subs = {}
    for name, kwargs in {"json": {}, "protobuf": {"use_protobuf": True}}.items():
        client = sdk.client(node.token(name), **kwargs)
        await sdk.connected(client)
        subs[name] = sdk.sub(client, channel, delta=DeltaType.FOSSIL)
        await sdk.subscribed(subs[name])
    plain_client = sdk.client(node.token("plain"))
    await sdk.connected(plain_client)
    subs["plain"] = sdk.sub(plain_client, channel)
    await sdk.subscribed(subs["plain"])
    for minute in range(1, 4):
        await node.publish(channel, state(minute))
    for name, sub in subs.items():
        pubs = await sub.log.wait_count("publication", 3)
        decoded = [json.loads(c.pub.data) if name == "protobuf" else c.pub.data for c in pubs]
        assert decoded == [state(m) for m in range(1, 4)], name
        expected = [False, False, False] if name == "plain" else [False, True, True]
        assert [c.pub.delta for c in pubs] == expected, name
