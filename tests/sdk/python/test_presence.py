"""Presence with the official centrifuge-python SDK."""

import asyncio
import time

from conftest import rand


async def test_lists_both_clients_in_presence_with_join_and_leave_events(sdk, node):
    channel = "chat:presence-" + rand()
    alice = sdk.client(node.token("alice", info={"role": "host"}))
    bob = sdk.client(node.token("bob"))
    alice_ctx = await sdk.connected(alice)
    bob_ctx = await sdk.connected(bob)

    alice_sub = sdk.sub(alice, channel)
    await sdk.subscribed(alice_sub)
    bob_sub = sdk.sub(bob, channel)
    await sdk.subscribed(bob_sub)

    join = await alice_sub.log.wait("join", lambda c: c.info.user == "bob")
    assert join.info.client == bob_ctx.client

    presence = await alice_sub.presence()
    assert sorted(presence.clients) == sorted([alice_ctx.client, bob_ctx.client])
    assert presence.clients[alice_ctx.client].user == "alice"
    assert presence.clients[alice_ctx.client].conn_info == {"role": "host"}
    assert presence.clients[bob_ctx.client].user == "bob"

    stats = await alice_sub.presence_stats()
    assert (stats.num_clients, stats.num_users) == (2, 2)

    await bob_sub.unsubscribe()
    leave = await alice_sub.log.wait("leave", lambda c: c.info.user == "bob")
    assert leave.info.client == bob_ctx.client
    assert len([c for c in alice_sub.log.of("join") if c.info.user == "bob"]) == 1

    # Presence removal may trail the leave push by a moment (as with Centrifugo's Redis engine).
    deadline = time.time() + 5
    while True:
        stats = await alice_sub.presence_stats()
        if stats.num_clients == 1 or time.time() > deadline:
            break
        await asyncio.sleep(0.05)
    assert (stats.num_clients, stats.num_users) == (1, 1)
    presence = await alice_sub.presence()
    assert list(presence.clients) == [alice_ctx.client]


async def test_counts_one_user_with_two_connections_once(sdk, node):
    channel = "chat:presence-" + rand()
    a1 = sdk.client(node.token("same"))
    a2 = sdk.client(node.token("same"))
    await sdk.connected(a1)
    await sdk.connected(a2)
    s1 = sdk.sub(a1, channel)
    s2 = sdk.sub(a2, channel)
    await sdk.subscribed(s1)
    await sdk.subscribed(s2)
    stats = await a1.presence_stats(channel)
    assert (stats.num_clients, stats.num_users) == (2, 1)
