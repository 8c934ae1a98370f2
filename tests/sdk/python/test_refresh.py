"""Token refresh with the official centrifuge-python SDK. The node closes unrefreshed
connections and subscriptions 2 s after expiry (expiries checked every second), so a missing
refresh shows up fast."""

import asyncio

from centrifuge import ClientState, SubscriptionState

from conftest import now, observe_until, rand

CLOSE_DELAY = 2
GYRE_CONFIG_PATCH = {
    "client": {
        "expired_close_delay": f"{CLOSE_DELAY}s",
        "expired_sub_close_delay": f"{CLOSE_DELAY}s",
        "presence_update_interval": "1s",
    }
}


async def never() -> str:
    await asyncio.Event().wait()
    return ""


async def test_stays_connected_past_token_expiry_when_get_token_supplies_a_fresh_token(sdk, node):
    exp = now() + 3
    calls = []

    async def get_token():
        calls.append(now())
        return node.token("frank", exp=now() + 3600)

    client = sdk.client(node.token("frank", exp=exp), get_token=get_token)
    await sdk.connected(client)
    mark = len(client.log.items)

    async def refreshed():
        while not calls:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(refreshed(), 8)
    await observe_until(exp + CLOSE_DELAY + 2)
    after = [n for n, _ in client.log.items[mark:]]
    assert "connecting" not in after and "disconnected" not in after, after
    assert client.log.of("error") == []
    assert client.state == ClientState.CONNECTED

    channel = "after-refresh-" + rand()
    sub = sdk.sub(client, channel)
    await sdk.subscribed(sub)
    await node.publish(channel, {"ok": True})
    pubs = await sub.log.wait_count("publication", 1)
    assert pubs[0].pub.data == {"ok": True}


async def test_closes_an_unrefreshed_connection_with_3005_after_the_expired_close_delay(sdk, node):
    client = sdk.client(node.token("gina", exp=now() + 2), get_token=never)
    await sdk.connected(client)
    ctx = await client.log.wait("connecting", lambda c: c.code == 3005, timeout=2 + CLOSE_DELAY + 4)
    assert ctx.reason == "connection expired"


async def test_keeps_a_private_subscription_past_its_token_expiry_when_get_token_refreshes_it(sdk, node):
    channel = "priv:refresh-" + rand()
    client = sdk.client(node.token("hana"))
    await sdk.connected(client)
    issued = []

    async def get_token(ch):
        exp = now() + 3 if not issued else now() + 3600
        issued.append(exp)
        return node.sub_token("hana", ch, exp=exp)

    sub = sdk.sub(client, channel, get_token=get_token)
    await sdk.subscribed(sub)
    mark = len(sub.log.items)

    async def refreshed():
        while len(issued) < 2:
            await asyncio.sleep(0.02)

    await asyncio.wait_for(refreshed(), 8)
    await observe_until(issued[0] + CLOSE_DELAY + 3)
    after = [n for n, _ in sub.log.items[mark:]]
    assert "subscribing" not in after and "unsubscribed" not in after, after
    assert sub.log.of("error") == []
    assert sub.state == SubscriptionState.SUBSCRIBED
    await node.publish(channel, {"still": "subscribed"})
    pubs = await sub.log.wait_count("publication", 1)
    assert pubs[0].pub.data == {"still": "subscribed"}


async def test_unsubscribes_an_unrefreshed_private_subscription_with_2501_and_the_sdk_resubscribes(sdk, node):
    channel = "priv:expire-" + rand()
    client = sdk.client(node.token("ivan"))
    await sdk.connected(client)
    calls = []

    async def get_token(ch):
        calls.append(ch)
        if len(calls) == 1:
            return node.sub_token("ivan", ch, exp=now() + 2)
        return await never()

    sub = sdk.sub(client, channel, get_token=get_token)
    await sdk.subscribed(sub)
    ctx = await sub.log.wait("subscribing", lambda c: c.code == 2501, timeout=2 + CLOSE_DELAY + 5)
    assert ctx.reason == "subscription expired"
    assert client.state == ClientState.CONNECTED
