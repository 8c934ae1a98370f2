"""Error replies as the official centrifuge-python SDK surfaces them."""

import pytest
from centrifuge import ClientState, ReplyError

from conftest import GyreNode, Sdk, rand


async def test_unsubscribes_with_code_102_from_a_channel_in_an_unknown_namespace(sdk, node):
    client = sdk.client(node.token("eve"))
    await sdk.connected(client)
    sub = sdk.sub(client, "nosuchns:" + rand())
    await sub.subscribe()
    ctx = await sub.log.wait("unsubscribed")
    assert ctx.code == 102
    assert ctx.reason == "unknown channel"
    assert client.state == ClientState.CONNECTED


async def test_rejects_history_and_presence_with_108_on_a_channel_where_they_are_off(sdk, node):
    client = sdk.client(node.token("eve"))
    await sdk.connected(client)
    sub = sdk.sub(client, "plain-" + rand())
    await sdk.subscribed(sub)
    with pytest.raises(ReplyError) as hist:
        await sub.history(limit=10)
    assert (hist.value.code, hist.value.message) == (108, "not available")
    with pytest.raises(ReplyError) as pres:
        await sub.presence()
    assert pres.value.code == 108
    assert client.state == ClientState.CONNECTED


async def test_rejects_a_client_publish_with_103_where_the_namespace_does_not_allow_it(sdk, node):
    channel = "priv:ro-" + rand()
    client = sdk.client(node.token("eve"))
    await sdk.connected(client)

    async def get_token(ch):
        return node.sub_token("eve", ch)

    sub = sdk.sub(client, channel, get_token=get_token)
    await sdk.subscribed(sub)
    with pytest.raises(ReplyError) as err:
        await sub.publish({"nope": True})
    assert (err.value.code, err.value.message) == (103, "permission denied")


async def test_rejects_an_rpc_with_108_when_no_rpc_handler_is_configured(sdk, node):
    client = sdk.client(node.token("eve"))
    await sdk.connected(client)
    with pytest.raises(ReplyError) as err:
        await client.rpc("anything", {"a": 1})
    assert err.value.code == 108
    assert client.state == ClientState.CONNECTED


async def test_answers_the_built_in_ping_rpc_and_an_unknown_method_with_104():
    n = GyreNode({"rpc": {"ping": {"enabled": True}}})
    s = Sdk(n)
    try:
        client = s.client(n.token("eve"))
        await s.connected(client)
        res = await client.rpc("ping", {})
        assert res.data is None
        with pytest.raises(ReplyError) as err:
            await client.rpc("nosuchmethod", {})
        assert (err.value.code, err.value.message) == (104, "method not found")
    finally:
        await s.close()
        n.stop()
