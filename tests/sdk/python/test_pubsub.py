"""Publish/subscribe with the official centrifuge-python SDK and cent for the backend side."""

from centrifuge import ClientState, SubscriptionState

from conftest import rand, sign


async def test_delivers_exactly_the_data_published_with_cent_to_a_subscriber(sdk, node):
    client = sdk.client(node.token("alice"))
    await sdk.connected(client)
    channel = "news-" + rand()
    sub = sdk.sub(client, channel)
    await sdk.subscribed(sub)
    data = {"text": "hello", "n": 42, "nested": {"list": [1, "two", None, True]}, "unicode": "héllo ✓"}
    result = await node.publish(channel, data)
    assert result.offset == 0 and result.epoch == "", "no history on this channel"
    pubs = await sub.log.wait_count("publication", 1)
    assert pubs[0].pub.data == data
    assert pubs[0].pub.info is None
    await node.publish(channel, {"seq": 2})
    pubs = await sub.log.wait_count("publication", 2)
    assert [p.pub.data for p in pubs] == [data, {"seq": 2}]


async def test_broadcasts_a_client_side_publish_with_info_user_of_the_publisher(sdk, node):
    channel = "chat:room-" + rand()
    alice = sdk.client(node.token("alice", info={"name": "Alice"}))
    bob = sdk.client(node.token("bob"))
    alice_ctx = await sdk.connected(alice)
    await sdk.connected(bob)
    alice_sub = sdk.sub(alice, channel)
    bob_sub = sdk.sub(bob, channel)
    await sdk.subscribed(alice_sub)
    await sdk.subscribed(bob_sub)

    await alice_sub.publish({"text": "hi from alice"})
    pubs = await bob_sub.log.wait_count("publication", 1)
    pub = pubs[0].pub
    assert pub.data == {"text": "hi from alice"}
    assert pub.info is not None
    assert pub.info.user == "alice"
    assert pub.info.client == alice_ctx.client
    assert pub.info.conn_info == {"name": "Alice"}
    assert pub.offset >= 1
    own = await alice_sub.log.wait_count("publication", 1)
    assert own[0].pub.data == {"text": "hi from alice"}


async def test_subscribes_to_a_private_channel_with_a_token_from_get_token(sdk, node):
    channel = "priv:room-" + rand()
    client = sdk.client(node.token("carol"))
    await sdk.connected(client)
    asked = []

    async def get_token(ch):
        asked.append(ch)
        return node.sub_token("carol", ch)

    sub = sdk.sub(client, channel, get_token=get_token)
    ctx = await sdk.subscribed(sub)
    assert ctx.channel == channel
    assert asked == [channel]
    assert sub.log.of("error") == []
    await node.publish(channel, {"secret": 1})
    pubs = await sub.log.wait_count("publication", 1)
    assert pubs[0].pub.data == {"secret": 1}


async def test_unsubscribes_with_code_103_from_a_private_channel_without_a_token(sdk, node):
    channel = "priv:room-" + rand()
    client = sdk.client(node.token("carol"))
    await sdk.connected(client)
    sub = sdk.sub(client, channel)
    await sub.subscribe()
    ctx = await sub.log.wait("unsubscribed")
    assert ctx.code == 103
    assert ctx.reason == "permission denied"
    assert sub.state == SubscriptionState.UNSUBSCRIBED
    assert client.state == ClientState.CONNECTED


async def test_unsubscribes_with_code_103_when_the_subscription_token_has_a_wrong_signature(sdk, node):
    channel = "priv:room-" + rand()
    client = sdk.client(node.token("carol"))
    await sdk.connected(client)
    sub = sdk.sub(client, channel, token=sign({"sub": "carol", "channel": channel}, "wrong-secret-but-long-enough-for-hs256-signing"))
    await sub.subscribe()
    ctx = await sub.log.wait("unsubscribed")
    assert ctx.code == 103
    assert client.state == ClientState.CONNECTED


async def test_returns_publications_with_offsets_from_subscription_history(sdk, node):
    channel = "chat:hist-" + rand()
    results = [await node.publish(channel, {"i": i}) for i in (1, 2, 3)]
    assert [r.offset for r in results] == [1, 2, 3]
    assert results[0].epoch and all(r.epoch == results[0].epoch for r in results)

    client = sdk.client(node.token("dave"))
    await sdk.connected(client)
    sub = sdk.sub(client, channel)
    await sdk.subscribed(sub)
    hist = await sub.history(limit=10)
    assert [p.data for p in hist.publications] == [{"i": 1}, {"i": 2}, {"i": 3}]
    assert [p.offset for p in hist.publications] == [1, 2, 3]
    assert hist.offset == 3
    assert hist.epoch == results[0].epoch

    newest = await sub.history(limit=2, reverse=True)
    assert [p.offset for p in newest.publications] == [3, 2]
    position_only = await sub.history()
    assert position_only.publications == []
    assert position_only.offset == 3
