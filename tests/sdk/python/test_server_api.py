"""Server-side actions seen through the official centrifuge-python SDK, driven with cent."""

import asyncio
import time

from cent import Disconnect, DisconnectRequest, SubscribeRequest, UnsubscribeRequest
from centrifuge import ClientState, SubscriptionState

from conftest import observe_until, rand


async def test_subscribes_the_connection_to_the_channels_claim_and_delivers_publications(sdk, node):
    channel = "srv-" + rand()
    client = sdk.client(node.token("sam", channels=[channel]))
    await sdk.connected(client)
    await client.log.wait("server_subscribed", lambda c: c.channel == channel)
    await node.publish(channel, {"server": "side"})
    ctx = await client.log.wait("server_publication")
    assert ctx.channel == channel
    assert ctx.pub.data == {"server": "side"}


async def test_recovers_missed_publications_of_a_recoverable_server_side_subscription(sdk, node):
    channel = "chat:srvrec-" + rand()
    client = sdk.client(node.token("sal", channels=[channel]))
    await sdk.connected(client)
    first = await client.log.wait("server_subscribed", lambda c: c.channel == channel)
    assert first.recoverable is True
    assert first.was_recovering is False
    for seq in (1, 2):
        await node.publish(channel, {"seq": seq})
    await client.log.wait_count("server_publication", 2)

    await client.disconnect()
    for seq in (3, 4, 5):
        await node.publish(channel, {"seq": seq})
    await client.connect()
    subs = await client.log.wait_count("server_subscribed", 2)
    assert subs[1].was_recovering is True
    assert subs[1].recovered is True
    await client.log.wait_count("server_publication", 5)
    await node.publish(channel, {"seq": 6})
    await client.log.wait("server_publication", lambda c: c.pub.data == {"seq": 6})
    pubs = [c.pub for c in client.log.of("server_publication")]
    assert [p.data["seq"] for p in pubs] == [1, 2, 3, 4, 5, 6]
    assert [p.offset for p in pubs] == [1, 2, 3, 4, 5, 6]


async def test_announces_a_subscription_made_with_cent_subscribe_to_the_connected_client(sdk, node):
    channel = "srv-api-" + rand()
    user = "sub-" + rand()
    client = sdk.client(node.token(user))
    await sdk.connected(client)
    await asyncio.to_thread(node.cent.subscribe, SubscribeRequest(user=user, channel=channel))
    await client.log.wait("server_subscribed", lambda c: c.channel == channel)
    await node.publish(channel, {"via": "api subscribe"})
    ctx = await client.log.wait("server_publication")
    assert ctx.pub.data == {"via": "api subscribe"}


async def test_unsubscribes_a_client_side_subscription_with_code_2000_on_cent_unsubscribe(sdk, node):
    channel = "chat:unsub-" + rand()
    user = "uns-" + rand()
    client = sdk.client(node.token(user))
    await sdk.connected(client)
    sub = sdk.sub(client, channel)
    await sdk.subscribed(sub)
    await asyncio.to_thread(node.cent.unsubscribe, UnsubscribeRequest(user=user, channel=channel))
    ctx = await sub.log.wait("unsubscribed")
    assert ctx.code == 2000
    assert ctx.reason == "server unsubscribe"
    assert sub.state == SubscriptionState.UNSUBSCRIBED
    assert client.state == ClientState.CONNECTED


async def test_disconnects_the_client_with_3503_on_cent_disconnect_without_reconnecting(sdk, node):
    user = "dis-" + rand()
    client = sdk.client(node.token(user))
    await sdk.connected(client)
    mark = len(client.log.of("connecting"))
    await asyncio.to_thread(node.cent.disconnect, DisconnectRequest(user=user))
    ctx = await client.log.wait("disconnected")
    assert ctx.code == 3503
    assert ctx.reason == "force disconnect"
    await observe_until(time.time() + 1.5)
    assert len(client.log.of("connecting")) == mark
    assert client.state == ClientState.DISCONNECTED


async def test_reconnects_after_cent_disconnect_with_a_reconnect_range_custom_code(sdk, node):
    user = "rec-" + rand()
    client = sdk.client(node.token(user))
    first = await sdk.connected(client)
    await asyncio.to_thread(
        node.cent.disconnect,
        DisconnectRequest(user=user, disconnect=Disconnect(code=4000, reason="come back")),
    )
    ctx = await client.log.wait("connecting", lambda c: c.code == 4000)
    assert ctx.reason == "come back"
    again = (await client.log.wait_count("connected", 2))[1]
    assert again.client and again.client != first.client
