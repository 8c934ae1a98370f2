"""Server pings with the official centrifuge-python SDK, whose watchdog is re-armed only by
pings: with a 1 s ping interval and max_server_ping_delay of 1 s, a missing ping reconnects the
client within 2 s, and a missing pong makes the server close it after 500 ms."""

import time

from centrifuge import ClientState

from conftest import observe_until

GYRE_CONFIG_PATCH = {"client": {"ping_interval": "1s", "pong_timeout": "500ms"}}


async def test_stays_connected_across_several_server_pings_with_a_tight_watchdog(sdk, node):
    client = sdk.client(node.token("pat"), max_server_ping_delay=1.0)
    await sdk.connected(client)
    mark = len(client.log.items)
    await observe_until(time.time() + 5)
    after = [(n, getattr(c, "code", None)) for n, c in client.log.items[mark:]]
    assert after == [], after
    assert client.state == ClientState.CONNECTED
