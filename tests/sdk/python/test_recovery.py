"""Recovery with the official centrifuge-python SDK: missed publications arrive after reconnect."""

from conftest import rand


async def test_recovers_publications_missed_while_disconnected_in_order_exactly_once(sdk, node):
    channel = "chat:recover-" + rand()
    client = sdk.client(node.token("erin"))
    await sdk.connected(client)
    sub = sdk.sub(client, channel)
    first = await sdk.subscribed(sub)
    assert first.recoverable is True
    assert first.positioned is True
    assert first.was_recovering is False
    assert first.stream_position is not None and first.stream_position.epoch

    for seq in (1, 2, 3):
        await node.publish(channel, {"seq": seq})
    await sub.log.wait_count("publication", 3)

    await client.disconnect()
    await client.log.wait("disconnected")

    missed = 5
    for seq in range(4, 4 + missed):
        await node.publish(channel, {"seq": seq})

    await client.connect()
    subscribed = await sub.log.wait_count("subscribed", 2)
    ctx = subscribed[1]
    assert ctx.was_recovering is True
    assert ctx.recovered is True
    assert ctx.stream_position.epoch == first.stream_position.epoch

    await sub.log.wait_count("publication", 3 + missed)
    # A live publication after recovery: once it is here, a duplicate would have arrived too.
    await node.publish(channel, {"seq": 9})
    await sub.log.wait("publication", lambda c: c.pub.data == {"seq": 9})
    pubs = [c.pub for c in sub.log.of("publication")]
    assert [p.data["seq"] for p in pubs] == list(range(1, 10))
    assert [p.offset for p in pubs] == list(range(1, 10))


async def test_reports_recovered_with_no_publications_when_nothing_was_missed(sdk, node):
    channel = "chat:recover-" + rand()
    client = sdk.client(node.token("erin"))
    await sdk.connected(client)
    sub = sdk.sub(client, channel)
    await sdk.subscribed(sub)
    await node.publish(channel, {"seq": 1})
    await sub.log.wait_count("publication", 1)

    await client.disconnect()
    await client.connect()
    ctx = (await sub.log.wait_count("subscribed", 2))[1]
    assert ctx.was_recovering is True
    assert ctx.recovered is True
    await node.publish(channel, {"seq": 2})
    pubs = await sub.log.wait_count("publication", 2)
    assert [c.pub.offset for c in pubs] == [1, 2]
