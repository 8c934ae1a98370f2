"""Connection scenarios with the official centrifuge-python SDK."""

from centrifuge import ClientState

from conftest import now, observe_until, sign

import time


async def test_connects_with_a_valid_token_and_reports_a_client_id(sdk, node):
    client = sdk.client(node.token("alice"))
    ctx = await sdk.connected(client)
    assert isinstance(ctx.client, str) and ctx.client
    assert client.state == ClientState.CONNECTED
    assert [n for n, _ in client.log.items] == ["connecting", "connected"]


async def test_gives_two_connections_of_one_user_different_client_ids(sdk, node):
    a = sdk.client(node.token("alice"))
    b = sdk.client(node.token("alice"))
    ca = await sdk.connected(a)
    cb = await sdk.connected(b)
    assert ca.client != cb.client


async def test_goes_to_disconnected_with_code_3500_without_reconnecting_when_the_token_has_a_wrong_signature(sdk, node):
    client = sdk.client(sign({"sub": "mallory"}, "not-the-server-secret-but-long-enough-for-hs256"))
    await client.connect()
    ctx = await client.log.wait("disconnected")
    assert ctx.code == 3500
    assert client.state == ClientState.DISCONNECTED
    attempts = len(client.log.of("connecting"))
    # Reconnect delay is 0.1-1 s here: a reconnect attempt would show within 1.5 s.
    await observe_until(time.time() + 1.5)
    assert len(client.log.of("connecting")) == attempts
    assert client.state == ClientState.DISCONNECTED
    assert client.log.of("connected") == []


async def test_refreshes_an_expired_token_through_get_token_after_error_109(sdk, node):
    calls = []

    async def get_token():
        calls.append(time.time())
        return node.token("bob", exp=now() + 3600)

    client = sdk.client(node.token("bob", exp=now() - 60), get_token=get_token)
    ctx = await sdk.connected(client, timeout=10)
    assert ctx.client
    assert len(calls) == 1
    errors = client.log.of("error")
    assert len(errors) == 1, errors
    assert errors[0].error.code == 109
    assert errors[0].error.message == "token expired"
    assert client.state == ClientState.CONNECTED


async def test_goes_to_disconnected_with_3501_when_connecting_without_any_token(sdk, node):
    client = sdk.client("")
    await client.connect()
    ctx = await client.log.wait("disconnected")
    assert ctx.code == 3501
    assert client.state == ClientState.DISCONNECTED
