"""Graceful shutdown as SDK clients see it: 3001 "shutdown", reconnect attempts, a timely exit."""

import asyncio
import signal
import time

from conftest import GyreNode, Sdk


async def test_sigterm_disconnects_sdk_clients_with_3001_and_the_process_exits_in_time():
    node = GyreNode({"shutdown": {"timeout": "5s"}, "health": {"enabled": True}})
    sdk = Sdk(node)
    try:
        clients = [sdk.client(node.token(f"bye-{n}")) for n in range(3)]
        for client in clients:
            await sdk.connected(client)
        started = time.monotonic()
        node.proc.send_signal(signal.SIGTERM)
        for client in clients:
            # 3001 is a reconnect code: the SDK goes back to connecting with the server's reason.
            ctx = await client.log.wait("connecting", lambda c: c.code == 3001)
            assert ctx.reason == "shutdown"
        exit_code = await asyncio.to_thread(node.proc.wait, 10)
        elapsed = time.monotonic() - started
        assert exit_code == 0
        assert elapsed < 5, f"exit took {elapsed:.1f}s, past shutdown.timeout"
        assert any("shutdown complete" in line for line in node.output), "".join(node.output[-20:])
    finally:
        await sdk.close()
        node.stop()
