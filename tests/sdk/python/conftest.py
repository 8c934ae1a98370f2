"""Shared fixtures for the centrifuge-python and cent suites.

`node` starts the real gyre binary (``GYRE_BIN`` or ``target/debug/gyre``) on a free port, one
per test module, and stops it afterwards (also when tests fail). A module can change the config
by defining ``GYRE_CONFIG_PATCH`` (deep-merged into the base config), or a function
``GYRE_CONFIG_PATCH(request)`` returning it: it may ask for module fixtures that must exist before
gyre starts (e.g. a backend whose address goes into the config) with ``request.getfixturevalue``.
Every wait is bounded and waits on a real event; nothing sleeps as a readiness check.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import secrets
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import cent
import jwt
import pytest
from centrifuge import Client, ClientEventHandler, SubscriptionEventHandler

REPO_ROOT = Path(__file__).resolve().parents[3]
GYRE_BIN = os.environ.get("GYRE_BIN") or str(REPO_ROOT / "target" / "debug" / "gyre")
START_TIMEOUT = 15.0
STOP_TIMEOUT = 5.0
WAIT = 5.0
LISTENING = re.compile(r"listening.*addr=(127\.0\.0\.1:\d+)")
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def base_config(secret: str, api_key: str) -> Dict[str, Any]:
    return {
        "client": {
            "token": {"hmac_secret_key": secret},
            "allowed_origins": ["*"],
            "expired_close_delay": "2s",
        },
        "http_api": {"key": api_key},
        "shutdown": {"timeout": "3s"},
        "channel": {
            "without_namespace": {
                "allow_subscribe_for_client": True,
                "allow_publish_for_subscriber": True,
            },
            "namespaces": [
                {
                    "name": "chat",
                    "presence": True,
                    "join_leave": True,
                    "force_push_join_leave": True,
                    "history_size": 100,
                    "history_ttl": "300s",
                    "force_recovery": True,
                    "allow_subscribe_for_client": True,
                    "allow_publish_for_subscriber": True,
                    "allow_presence_for_subscriber": True,
                    "allow_history_for_subscriber": True,
                },
                {"name": "priv", "presence": True, "history_size": 10, "history_ttl": "60s"},
                {
                    "name": "state",
                    "history_size": 10,
                    "history_ttl": "300s",
                    "force_recovery": True,
                    "force_recovery_mode": "cache",
                    "auto_cache_recover": True,
                    "allow_subscribe_for_client": True,
                },
                {
                    "name": "delta",
                    "history_size": 100,
                    "history_ttl": "300s",
                    "force_recovery": True,
                    "allowed_delta_types": ["fossil"],
                    "delta_publish": True,
                    "allow_subscribe_for_client": True,
                    "allow_publish_for_subscriber": True,
                    "allow_history_for_subscriber": True,
                },
            ],
        },
    }


def deep_merge(target: Dict[str, Any], patch: Dict[str, Any]) -> Dict[str, Any]:
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_merge(target[key], value)
        else:
            target[key] = copy.deepcopy(value)
    return target


def rand(n: int = 6) -> str:
    return secrets.token_hex(n)


def now() -> int:
    return int(time.time())


def sign(claims: Dict[str, Any], secret: str) -> str:
    return jwt.encode(claims, secret, algorithm="HS256")


class GyreNode:
    """A running gyre process."""

    def __init__(self, patch: Optional[Dict[str, Any]] = None) -> None:
        if not Path(GYRE_BIN).exists():
            raise RuntimeError(f"gyre binary not found at {GYRE_BIN}: run cargo build or set GYRE_BIN")
        self.secret = "secret-" + rand(16)
        self.api_key = "key-" + rand(16)
        self.config = deep_merge(base_config(self.secret, self.api_key), patch or {})
        self._dir = tempfile.TemporaryDirectory(prefix="gyre-py-")
        self.config_path = Path(self._dir.name) / "config.json"
        self.config_path.write_text(json.dumps(self.config, indent=2))
        self.output: List[str] = []
        env = dict(os.environ, NO_COLOR="1")
        self.proc = subprocess.Popen(
            [GYRE_BIN, "serve", "--config", str(self.config_path), "--port", "0", "--address", "127.0.0.1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        found = threading.Event()
        self.addr = ""

        def pump() -> None:
            assert self.proc.stdout is not None
            for raw in self.proc.stdout:
                line = ANSI.sub("", raw.decode("utf-8", "replace"))
                self.output.append(line)
                if not found.is_set():
                    m = LISTENING.search(line)
                    if m:
                        self.addr = m.group(1)
                        found.set()
            found.set()  # process ended: stop waiting

        self._pump = threading.Thread(target=pump, daemon=True)
        self._pump.start()
        if not found.wait(START_TIMEOUT) or not self.addr:
            self.stop()
            raise RuntimeError(
                f"gyre did not log a listening line within {START_TIMEOUT}s; output:\n" + "".join(self.output)
            )
        self.ws_url = f"ws://{self.addr}/connection/websocket"
        self.api_url = f"http://{self.addr}/api"
        self.cent = cent.Client(self.api_url, self.api_key, timeout=WAIT)

    async def publish(self, channel: str, data: Any) -> "cent.PublishResult":
        """Publishes through the HTTP API with cent's (synchronous) Client, off the event loop."""
        return await asyncio.to_thread(self.cent.publish, cent.PublishRequest(channel=channel, data=data))

    async def api(self, method: str, body: Dict[str, Any]) -> Dict[str, Any]:
        """A raw HTTP API call, for request fields cent 5.2.0 does not know (`version`)."""

        def call() -> Dict[str, Any]:
            request = urllib.request.Request(
                f"{self.api_url}/{method}",
                data=json.dumps(body).encode(),
                headers={"X-API-Key": self.api_key, "Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=WAIT) as response:
                return json.loads(response.read())

        return await asyncio.to_thread(call)

    def token(self, sub: str, **claims: Any) -> str:
        return sign({"sub": sub, **claims}, self.secret)

    def sub_token(self, sub: str, channel: str, **claims: Any) -> str:
        return sign({"sub": sub, "channel": channel, **claims}, self.secret)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(STOP_TIMEOUT)
        self._dir.cleanup()


@pytest.fixture(scope="module")
def node(request: pytest.FixtureRequest):
    patch = getattr(request.module, "GYRE_CONFIG_PATCH", None)
    if callable(patch):
        patch = patch(request)
    n = GyreNode(patch)
    try:
        yield n
    finally:
        n.stop()


class Log:
    """Events recorded from SDK handlers, with a bounded wait for a matching one."""

    def __init__(self) -> None:
        self.items: List[tuple] = []
        self._changed: Optional[asyncio.Event] = None

    def _event(self) -> asyncio.Event:
        if self._changed is None:
            self._changed = asyncio.Event()
        return self._changed

    def add(self, name: str, ctx: Any) -> None:
        self.items.append((name, ctx))
        self._event().set()

    def of(self, name: str) -> List[Any]:
        return [ctx for n, ctx in self.items if n == name]

    async def wait(self, name: str, pred: Callable[[Any], bool] = lambda _: True, timeout: float = WAIT) -> Any:
        """Returns the first recorded `name` event matching `pred`, waiting at most `timeout`."""

        async def loop() -> Any:
            while True:
                for n, ctx in self.items:
                    if n == name and pred(ctx):
                        return ctx
                ev = self._event()
                ev.clear()
                await ev.wait()

        try:
            return await asyncio.wait_for(loop(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {name!r}; recorded: {[n for n, _ in self.items]}"
            ) from None

    async def wait_count(self, name: str, count: int, timeout: float = WAIT) -> List[Any]:
        """Waits until at least `count` `name` events were recorded."""

        async def loop() -> List[Any]:
            while True:
                got = self.of(name)
                if len(got) >= count:
                    return got
                ev = self._event()
                ev.clear()
                await ev.wait()

        try:
            return await asyncio.wait_for(loop(), timeout)
        except asyncio.TimeoutError:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {count} {name!r}; got {len(self.of(name))}"
            ) from None


class ClientRecorder(ClientEventHandler):
    def __init__(self, log: Log) -> None:
        self.log = log

    async def on_connecting(self, ctx):
        self.log.add("connecting", ctx)

    async def on_connected(self, ctx):
        self.log.add("connected", ctx)

    async def on_disconnected(self, ctx):
        self.log.add("disconnected", ctx)

    async def on_error(self, ctx):
        self.log.add("error", ctx)

    async def on_subscribed(self, ctx):
        self.log.add("server_subscribed", ctx)

    async def on_publication(self, ctx):
        self.log.add("server_publication", ctx)


class SubRecorder(SubscriptionEventHandler):
    def __init__(self, log: Log) -> None:
        self.log = log

    async def on_subscribing(self, ctx):
        self.log.add("subscribing", ctx)

    async def on_subscribed(self, ctx):
        self.log.add("subscribed", ctx)

    async def on_unsubscribed(self, ctx):
        self.log.add("unsubscribed", ctx)

    async def on_publication(self, ctx):
        self.log.add("publication", ctx)

    async def on_join(self, ctx):
        self.log.add("join", ctx)

    async def on_leave(self, ctx):
        self.log.add("leave", ctx)

    async def on_error(self, ctx):
        self.log.add("error", ctx)


@dataclass
class Sdk:
    """Factory for centrifuge-python clients against one node; disconnects them all at the end."""

    node: GyreNode
    clients: List[Client] = field(default_factory=list)

    def client(self, token: str = "", **kwargs: Any) -> Client:
        log = Log()
        kwargs.setdefault("min_reconnect_delay", 0.1)
        kwargs.setdefault("max_reconnect_delay", 1.0)
        c = Client(self.node.ws_url, events=ClientRecorder(log), token=token, proxy=None, **kwargs)
        c.log = log  # type: ignore[attr-defined]
        self.clients.append(c)
        return c

    def sub(self, client: Client, channel: str, **kwargs: Any):
        log = Log()
        s = client.new_subscription(channel, events=SubRecorder(log), **kwargs)
        s.log = log  # type: ignore[attr-defined]
        return s

    async def connected(self, client: Client, timeout: float = WAIT):
        await client.connect()
        return await client.log.wait("connected", timeout=timeout)  # type: ignore[attr-defined]

    async def subscribed(self, sub, timeout: float = WAIT):
        await sub.subscribe()
        return await sub.log.wait("subscribed", timeout=timeout)

    async def close(self) -> None:
        for c in self.clients:
            try:
                await asyncio.wait_for(c.disconnect(), WAIT)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass


@pytest.fixture
async def sdk(node: GyreNode):
    s = Sdk(node)
    try:
        yield s
    finally:
        await s.close()


async def observe_until(deadline: float) -> None:
    """Waits until wall-clock `deadline`: an observation window for "nothing bad happens until
    then" assertions (e.g. no disconnect past a token's expiry), never a readiness check."""
    delay = deadline - time.time()
    if delay > 0:
        await asyncio.sleep(delay)
