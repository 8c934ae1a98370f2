"""The cent 5.2.0 HTTP API client against gyre, together with centrifuge-python subscribers."""

import asyncio

import pytest
from cent import (
    AsyncClient,
    BatchRequest,
    BroadcastRequest,
    ChannelsRequest,
    Client,
    CentUnauthorizedError,
    HistoryRequest,
    InfoRequest,
    PresenceRequest,
    PresenceStatsRequest,
    PublishRequest,
)

from conftest import rand


def test_cent_publish_to_a_history_channel_returns_increasing_offsets_and_one_epoch(node):
    api = Client(node.api_url, node.api_key)
    channel = "chat:cent-" + rand()
    first = api.publish(PublishRequest(channel=channel, data={"n": 1}))
    second = api.publish(PublishRequest(channel=channel, data={"n": 2}))
    assert (first.offset, second.offset) == (1, 2)
    assert first.epoch and first.epoch == second.epoch
    hist = api.history(HistoryRequest(channel=channel, limit=10))
    assert [p.data for p in hist.publications] == [{"n": 1}, {"n": 2}]
    assert [p.offset for p in hist.publications] == [1, 2]
    assert (hist.offset, hist.epoch) == (2, first.epoch)


async def test_cent_broadcast_reaches_subscribers_of_every_channel(sdk, node):
    client = sdk.client(node.token("bea"))
    await sdk.connected(client)
    channels = ["bcast-a-" + rand(), "chat:bcast-b-" + rand()]
    subs = [sdk.sub(client, ch) for ch in channels]
    for s in subs:
        await sdk.subscribed(s)
    api = AsyncClient(node.api_url, node.api_key)
    try:
        result = await api.broadcast(BroadcastRequest(channels=channels, data={"to": "all"}))
    finally:
        await api.close()
    assert len(result.responses) == 2
    assert all(r.error is None for r in result.responses), result.responses
    assert result.responses[0].result.offset == 0, "no history without a namespace"
    assert result.responses[1].result.offset == 1, "chat channels have history"
    for s in subs:
        pubs = await s.log.wait_count("publication", 1)
        assert pubs[0].pub.data == {"to": "all"}


def test_cent_raises_unauthorized_for_a_wrong_api_key(node):
    api = Client(node.api_url, "wrong-" + node.api_key)
    with pytest.raises(CentUnauthorizedError):
        api.publish(PublishRequest(channel="chat:x", data={}))


async def test_cent_async_client_raises_unauthorized_for_a_wrong_api_key(node):
    api = AsyncClient(node.api_url, "wrong-" + node.api_key)
    try:
        with pytest.raises(CentUnauthorizedError):
            await api.publish(PublishRequest(channel="chat:x", data={}))
    finally:
        await api.close()


async def test_cent_presence_and_channels_see_connected_subscribers(sdk, node):
    channel = "chat:cent-presence-" + rand()
    client = sdk.client(node.token("cyd"))
    ctx = await sdk.connected(client)
    await sdk.subscribed(sdk.sub(client, channel))
    api = Client(node.api_url, node.api_key)
    presence = await asyncio.to_thread(api.presence, PresenceRequest(channel=channel))
    assert list(presence.presence) == [ctx.client]
    assert presence.presence[ctx.client].user == "cyd"
    stats = await asyncio.to_thread(api.presence_stats, PresenceStatsRequest(channel=channel))
    assert (stats.num_clients, stats.num_users) == (1, 1)
    channels = await asyncio.to_thread(api.channels, ChannelsRequest(pattern="chat:cent-presence-*"))
    assert channel in channels.channels
    assert channels.channels[channel].num_clients == 1


def test_cent_info_reports_this_node(node):
    info = Client(node.api_url, node.api_key).info(InfoRequest())
    assert len(info.nodes) == 1
    assert info.nodes[0].uid and info.nodes[0].name


def test_cent_batch_returns_one_reply_per_command(node):
    channel = "chat:batch-" + rand()
    api = Client(node.api_url, node.api_key)
    result = api.batch(
        BatchRequest(
            requests=[
                PublishRequest(channel=channel, data={"b": 1}),
                PublishRequest(channel=channel, data={"b": 2}),
                HistoryRequest(channel=channel, limit=10),
            ],
            parallel=False,
        )
    )
    assert len(result.replies) == 3
    assert (result.replies[0].offset, result.replies[1].offset) == (1, 2)
    assert [p.data for p in result.replies[2].publications] == [{"b": 1}, {"b": 2}]


def test_cent_history_remove_empties_history_but_keeps_the_stream_position(node):
    from cent import HistoryRemoveRequest

    api = Client(node.api_url, node.api_key)
    channel = "chat:remove-" + rand()
    first = api.publish(PublishRequest(channel=channel, data={"n": 1}))
    api.publish(PublishRequest(channel=channel, data={"n": 2}))
    api.history_remove(HistoryRemoveRequest(channel=channel))
    hist = api.history(HistoryRequest(channel=channel, limit=10))
    assert hist.publications == []
    assert (hist.offset, hist.epoch) == (2, first.epoch)


async def test_cent_refresh_with_expired_closes_the_client_with_3005_and_it_reconnects(sdk, node):
    from cent import RefreshRequest

    user = "refresh-" + rand()
    client = sdk.client(node.token(user))
    await sdk.connected(client)
    api = AsyncClient(node.api_url, node.api_key)
    try:
        await api.refresh(RefreshRequest(user=user, expired=True))
    finally:
        await api.close()
    connecting = await client.log.wait("connecting", lambda ctx: ctx.code == 3005)
    assert connecting.reason == "connection expired"
    await client.log.wait_count("connected", 2)
