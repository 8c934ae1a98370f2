"""State channels with centrifuge-python: cache recovery mode (a subscriber gets the latest
publication at once) and publication versions (outdated versions are dropped), in both protocols."""

import json

import pytest

from conftest import rand


def decoded(ctx, use_protobuf: bool):
    return json.loads(ctx.pub.data) if use_protobuf else ctx.pub.data


@pytest.mark.parametrize("use_protobuf", [False, True], ids=["json", "protobuf"])
async def test_a_subscriber_gets_the_latest_state_at_once(sdk, node, use_protobuf):
    channel = "state:py-" + rand()
    for n in (1, 2, 3):
        await node.publish(channel, {"n": n})
    client = sdk.client(node.token("s"), use_protobuf=use_protobuf)
    await sdk.connected(client)
    sub = sdk.sub(client, channel)
    subscribed = await sdk.subscribed(sub)
    assert subscribed.was_recovering is True and subscribed.recovered is True
    await node.publish(channel, {"n": 4})
    pubs = await sub.log.wait_count("publication", 2)
    assert [decoded(c, use_protobuf)["n"] for c in pubs] == [3, 4], "only the latest was recovered"
    assert [c.pub.offset for c in pubs] == [3, 4]


@pytest.mark.parametrize("use_protobuf", [False, True], ids=["json", "protobuf"])
async def test_outdated_versions_never_reach_subscribers(sdk, node, use_protobuf):
    channel = "chat:ver-" + rand()
    client = sdk.client(node.token("v"), use_protobuf=use_protobuf)
    await sdk.connected(client)
    sub = sdk.sub(client, channel)
    await sdk.subscribed(sub)
    answers = []
    for n, version in [(1, 10), (2, 9), (3, 10), (4, 11)]:
        reply = await node.api("publish", {"channel": channel, "data": {"n": n}, "version": version})
        answers.append(reply["result"]["offset"])
    assert answers == [1, 1, 1, 2], "dropped publications are answered with the current offset"
    pubs = await sub.log.wait_count("publication", 2)
    assert [decoded(c, use_protobuf)["n"] for c in pubs] == [1, 4]
    history = await sub.history(limit=-1)
    assert [p.offset for p in history.publications] == [1, 2]
