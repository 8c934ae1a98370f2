"""Backend proxies over HTTP (JSON), protocol-extensions.md §6: an aiohttp backend written here
answers gyre's connect, refresh, subscribe, publish and RPC proxy calls, and the official
centrifuge-python SDK sees the outcome. The backend runs on its own event loop in a thread and is
bound (port 0) before gyre starts, so its URL goes into gyre's config.

How a test steers the backend: a connect without a token carries the client's connect `data`,
whose `respond` is the JSON answer the backend sends (or `mode` picks a failure); subscribe,
publish and RPC answers are looked up by channel / method in `Backend.answers`; refresh answers
are queued per user in `Backend.refresh_answers`."""

from __future__ import annotations

import asyncio
import re
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import pytest
from aiohttp import web
from centrifuge import ClientState, ReplyError

from conftest import WAIT, GyreNode, Sdk, rand

CONNECT_TIMEOUT = "500ms"
SLOW = 1.5  # seconds the "slow" backend takes: well past CONNECT_TIMEOUT
BIG = 10 * 1024 * 1024


@dataclass
class Call:
    kind: str
    method: str
    body: Dict[str, Any]
    headers: Dict[str, str]  # lower-cased names


class Backend:
    """The aiohttp proxy backend, on an event loop of its own in a thread."""

    def __init__(self) -> None:
        self.calls: List[Call] = []
        self._cond = threading.Condition()
        # ("subscribe" | "publish", channel) or ("rpc", method) -> answer or fn(body) -> answer
        self.answers: Dict[tuple, Any] = {}
        self.refresh_answers: Dict[str, List[Any]] = {}  # user -> answers (or fn(body) -> answer)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="proxy-backend", daemon=True)
        self._thread.start()
        self._runner: Optional[web.AppRunner] = None
        self.url = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(WAIT)

    async def _start(self) -> str:
        app = web.Application(client_max_size=BIG * 2)
        app.router.add_post("/landing", self._landing)
        app.router.add_get("/landing", self._landing)
        app.router.add_post("/{kind}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(WAIT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT)
        self.loop.close()

    # ------------------------------------------------------------------ records

    def _record(self, call: Call) -> None:
        with self._cond:
            self.calls.append(call)
            self._cond.notify_all()

    def of(self, kind: str, pred: Callable[[Call], bool] = lambda _: True) -> List[Call]:
        with self._cond:
            return [c for c in self.calls if c.kind == kind and pred(c)]

    async def wait(
        self, kind: str, pred: Callable[[Call], bool] = lambda _: True, count: int = 1, timeout: float = WAIT
    ) -> List[Call]:
        """Waits (bounded) until the backend got at least `count` matching `kind` calls."""

        def block() -> bool:
            with self._cond:
                return self._cond.wait_for(lambda: len(self.of(kind, pred)) >= count, timeout)

        if not await asyncio.to_thread(block):
            raise AssertionError(
                f"backend got {len(self.of(kind, pred))} matching {kind!r} calls in {timeout}s, wanted {count}; "
                f"all calls: {[(c.kind, c.body) for c in self.calls][-10:]}"
            )
        return self.of(kind, pred)

    # ------------------------------------------------------------------ handlers

    async def _landing(self, request: web.Request) -> web.Response:
        self._record(Call("landing", request.method, {}, {k.lower(): v for k, v in request.headers.items()}))
        return web.json_response({"result": {"user": "landed"}})

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        body = await request.json()
        self._record(Call(kind, request.method, body, {k.lower(): v for k, v in request.headers.items()}))
        if kind == "connect":
            return await self._connect(body.get("data") or {})
        if kind == "refresh":
            queued = self.refresh_answers.get(body.get("user", ""), [])
            answer = queued.pop(0) if queued else {"result": {"expired": True}}
            return web.json_response(answer(body) if callable(answer) else answer)
        key = (kind, body.get("method") if kind == "rpc" else body.get("channel"))
        answer = self.answers.get(key, {"result": {}})
        return web.json_response(answer(body) if callable(answer) else answer)

    async def _connect(self, data: Dict[str, Any]) -> web.StreamResponse:
        mode = data.get("mode", "respond")
        if mode == "respond":
            return web.json_response(data["respond"])
        if mode == "raw":
            return web.Response(text=data["raw"], content_type="application/json")
        if mode == "status":
            return web.json_response({"result": {"user": "status"}}, status=data["status"])
        if mode == "redirect":
            raise web.HTTPFound("/landing")
        if mode == "big":
            # Valid JSON (a result and 10 MB of trailing whitespace), larger than gyre reads.
            return web.Response(body=b'{"result":{"user":"big"}}' + b" " * BIG, content_type="application/json")
        if mode == "slow":
            await asyncio.sleep(SLOW)  # the backend's latency, past the proxy timeout
            return web.json_response({"result": {"user": "slow"}})
        raise AssertionError(f"unknown backend mode {mode!r}")


@pytest.fixture(scope="module")
def backend():
    b = Backend()
    try:
        yield b
    finally:
        b.stop()


def GYRE_CONFIG_PATCH(request: pytest.FixtureRequest) -> Dict[str, Any]:
    url = request.getfixturevalue("backend").url
    return {
        "prometheus": {"enabled": True},
        "client": {
            "proxy": {
                "connect": {
                    "enabled": True,
                    "endpoint": f"{url}/connect",
                    "timeout": CONNECT_TIMEOUT,
                    "http_headers": ["X-Allowed"],
                },
                "refresh": {"enabled": True, "endpoint": f"{url}/refresh", "timeout": "1s"},
            },
        },
        "channel": {
            "proxy": {
                "subscribe": {
                    "endpoint": f"{url}/subscribe",
                    "timeout": "1s",
                    "http_headers": ["x-allowed"],
                    "include_connection_meta": True,
                },
                "publish": {"endpoint": f"{url}/publish", "timeout": "1s"},
            },
            "namespaces": [
                {"name": "px", "subscribe_proxy_enabled": True, "publish_proxy_enabled": True},
            ],
        },
        "rpc": {"proxy": {"endpoint": f"{url}/rpc", "timeout": "1s"}, "without_namespace": {"proxy_enabled": True}},
    }


def proxied(sdk: Sdk, respond: Optional[Dict[str, Any]] = None, **data: Any):
    """A client without a token whose connect tells the backend what to answer."""
    if respond is not None:
        data = {"mode": "respond", "respond": respond, **data}
    return sdk.client("", data=data)


def proxy_errors(node: GyreNode, protocol: str, kind: str) -> int:
    """centrifugo_proxy_errors{protocol, type} summed over names, from GET /metrics."""
    with urllib.request.urlopen(f"http://{node.addr}/metrics", timeout=WAIT) as response:
        text = response.read().decode()
    total = 0
    for line in text.splitlines():
        m = re.match(r"centrifugo_proxy_errors\{([^}]*)\} (\S+)$", line)
        if not m:
            continue
        labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
        if labels.get("protocol") == protocol and labels.get("type") == kind:
            total += int(float(m.group(2)))
    return total


async def jwt_client_works(sdk: Sdk, node: GyreNode) -> None:
    """A client with a JWT connects, subscribes and gets a publication: the node is fine."""
    client = sdk.client(node.token("jwt-" + rand()))
    await sdk.connected(client)
    channel = "plain-" + rand()
    sub = sdk.sub(client, channel)
    await sdk.subscribed(sub)
    await node.publish(channel, {"alive": True})
    pubs = await sub.log.wait_count("publication", 1)
    assert pubs[0].pub.data == {"alive": True}


# ---------------------------------------------------------------------------- connect


async def test_connect_without_a_token_is_the_backends_user_with_its_data_and_server_side_channel(
    sdk, node, backend
):
    user, channel = "proxy-" + rand(), "srv-" + rand()
    client = proxied(
        sdk,
        {"result": {"user": user, "data": {"welcome": user}, "channels": [channel], "meta": {"tenant": "t1"}}},
    )
    ctx = await sdk.connected(client)
    assert ctx.data == {"welcome": user}
    # What the backend was asked (Centrifugo's ConnectRequest fields, omitempty).
    call = (await backend.wait("connect", lambda c: c.body.get("data", {}).get("respond", {}).get("result", {}).get("user") == user))[0]
    assert call.method == "POST"
    assert call.headers["content-type"].startswith("application/json")
    assert call.body["client"] == ctx.client
    assert (call.body["transport"], call.body["protocol"], call.body["encoding"]) == ("websocket", "json", "json")
    assert call.body["name"] == "python"
    assert "user" not in call.body and "meta" not in call.body
    # The server-side subscription from `channels` gets a publication sent through the HTTP API.
    sub_ctx = await client.log.wait("server_subscribed", lambda c: c.channel == channel)
    assert sub_ctx.channel == channel
    await node.publish(channel, {"n": 1})
    pub = await client.log.wait("server_publication", lambda c: c.channel == channel)
    assert pub.pub.data == {"n": 1}
    # Later proxy calls of this connection carry the proxy's user and its meta.
    px = "px:who-" + rand()
    await sdk.subscribed(sdk.sub(client, px))
    sub_call = (await backend.wait("subscribe", lambda c: c.body.get("channel") == px))[0]
    assert sub_call.body["user"] == user
    assert sub_call.body["client"] == ctx.client
    assert sub_call.body["meta"] == {"tenant": "t1"}


async def test_a_result_with_an_empty_user_is_an_anonymous_connection(sdk, node, backend):
    # Centrifugo accepts it even though anonymous connections are not allowed (§6.5).
    client = proxied(sdk, {"result": {"user": "", "data": {"anon": True}}})
    ctx = await sdk.connected(client)
    assert ctx.data == {"anon": True}
    px = "px:anon-" + rand()
    await sdk.subscribed(sdk.sub(client, px))
    call = (await backend.wait("subscribe", lambda c: c.body.get("channel") == px))[0]
    assert "user" not in call.body  # empty, left out


async def test_a_response_without_result_closes_with_3501_when_anonymous_connections_are_off(sdk, node, backend):
    client = proxied(sdk, {})
    await client.connect()
    ctx = await client.log.wait("disconnected")
    assert ctx.code == 3501
    assert client.state == ClientState.DISCONNECTED


async def test_an_error_from_the_backend_is_the_connect_error(sdk, node, backend):
    client = proxied(sdk, {"error": {"code": 1403, "message": "go away"}})
    await client.connect()
    ctx = await client.log.wait("disconnected")
    assert (ctx.code, ctx.reason) == (1403, "go away")
    assert client.log.of("connected") == []


async def test_a_temporary_error_from_the_backend_makes_the_sdk_retry(sdk, node, backend):
    tag = rand()
    client = proxied(sdk, {"error": {"code": 1503, "message": "later", "temporary": True}}, tag=tag)
    await client.connect()
    err = await client.log.wait("error")
    assert isinstance(err.error, ReplyError)
    assert (err.error.code, err.error.message, err.error.temporary) == (1503, "later", True)
    await backend.wait("connect", lambda c: c.body.get("data", {}).get("tag") == tag, count=2)
    assert client.state == ClientState.CONNECTING


async def test_a_terminal_disconnect_from_the_backend_disconnects_the_sdk(sdk, node, backend):
    client = proxied(sdk, {"disconnect": {"code": 4501, "reason": "banned"}})
    await client.connect()
    ctx = await client.log.wait("disconnected")
    assert (ctx.code, ctx.reason) == (4501, "banned")
    assert client.log.of("connected") == []


async def test_a_reconnect_disconnect_4000_from_the_backend_makes_the_sdk_reconnect(sdk, node, backend):
    # 4000-4499 are reconnect codes: the SDK stays connecting and tries again (without an event,
    # as it never connected), so the backend sees a second connect.
    tag = rand()
    client = proxied(sdk, {"disconnect": {"code": 4000, "reason": "again"}}, tag=tag)
    await client.connect()
    await backend.wait("connect", lambda c: c.body.get("data", {}).get("tag") == tag, count=2)
    assert client.state == ClientState.CONNECTING
    assert client.log.of("connected") == [] and client.log.of("disconnected") == []


# ---------------------------------------------------------------------------- headers


async def test_a_header_listed_in_http_headers_is_forwarded_and_an_unlisted_one_is_not(sdk, node, backend):
    value = "yes-" + rand()
    client = sdk.client(
        "",
        data={"mode": "respond", "respond": {"result": {"user": "hdr"}}, "tag": value},
        headers={"X-Allowed": value, "X-Denied": "secret"},
    )
    await sdk.connected(client)
    call = (await backend.wait("connect", lambda c: c.body.get("data", {}).get("tag") == value))[0]
    assert call.headers.get("x-allowed") == value
    assert "x-denied" not in call.headers
    # The subscribe proxy lists it too: the connection's header goes on its later calls.
    px = "px:hdr-" + rand()
    await sdk.subscribed(sdk.sub(client, px))
    sub_call = (await backend.wait("subscribe", lambda c: c.body.get("channel") == px))[0]
    assert sub_call.headers.get("x-allowed") == value
    assert "x-denied" not in sub_call.headers


# ---------------------------------------------------------------------------- refresh


async def test_the_refresh_proxy_extends_a_connection_and_expired_closes_it_with_3005(sdk, node, backend):
    user = "refresh-" + rand()
    backend.refresh_answers[user] = [
        lambda _: {"result": {"expire_at": int(time.time()) + 2}},  # computed when asked
        {"result": {"expired": True}},
    ]
    client = proxied(sdk, {"result": {"user": user, "expire_at": int(time.time()) + 2}})
    await sdk.connected(client)
    first = (await backend.wait("refresh", lambda c: c.body.get("user") == user, timeout=6))[0]
    assert first.body["client"] == client.client_id
    assert (first.body["transport"], first.body["protocol"], first.body["encoding"]) == ("websocket", "json", "json")
    assert client.state == ClientState.CONNECTED
    # Still connected after the first refresh: a subscribe works in between.
    px = "px:refresh-" + rand()
    await sdk.subscribed(sdk.sub(client, px))
    assert len(client.log.of("connecting")) == 1  # only the initial one
    # The second refresh says expired: closed with 3005 (a reconnect code for the SDK).
    ctx = await client.log.wait("connecting", lambda c: c.code == 3005, timeout=6)
    assert ctx.reason == "connection expired"
    assert len(backend.of("refresh", lambda c: c.body.get("user") == user)) == 2


# ---------------------------------------------------------------------------- subscribe / publish / rpc


async def test_the_subscribe_proxy_allows_with_data_and_refuses_with_the_backends_error(sdk, node, backend):
    ok, denied = "px:ok-" + rand(), "px:deny-" + rand()
    backend.answers[("subscribe", ok)] = {"result": {"data": {"granted": True}}}
    backend.answers[("subscribe", denied)] = {"error": {"code": 1403, "message": "not yours"}}
    client = proxied(sdk, {"result": {"user": "sub-" + rand()}})
    await sdk.connected(client)
    sub_ok = sdk.sub(client, ok)
    subscribed = await sdk.subscribed(sub_ok)
    assert subscribed.data == {"granted": True}
    await node.publish(ok, {"to": "ok"})
    assert (await sub_ok.log.wait_count("publication", 1))[0].pub.data == {"to": "ok"}
    sub_no = sdk.sub(client, denied)
    await sub_no.subscribe()
    ctx = await sub_no.log.wait("unsubscribed")
    assert (ctx.code, ctx.reason) == (1403, "not yours")
    assert client.state == ClientState.CONNECTED


async def test_the_publish_proxy_rewrites_what_subscribers_receive_and_can_refuse(sdk, node, backend):
    channel, readonly = "px:pub-" + rand(), "px:ro-" + rand()
    backend.answers[("publish", channel)] = lambda body: {"result": {"data": {"rewritten": body["data"]}}}
    backend.answers[("publish", readonly)] = {"error": {"code": 1404, "message": "read only"}}
    user = "pub-" + rand()
    client = proxied(sdk, {"result": {"user": user}})
    await sdk.connected(client)
    sub = sdk.sub(client, channel)
    await sdk.subscribed(sub)
    await sub.publish({"text": "hi"})
    pub = (await sub.log.wait_count("publication", 1))[0].pub
    assert pub.data == {"rewritten": {"text": "hi"}}
    assert pub.info.user == user
    call = (await backend.wait("publish", lambda c: c.body.get("channel") == channel))[0]
    assert (call.body["user"], call.body["data"]) == (user, {"text": "hi"})
    with pytest.raises(ReplyError) as err:
        await client.publish(readonly, {"text": "no"})
    assert (err.value.code, err.value.message) == (1404, "read only")


async def test_an_rpc_is_answered_by_the_backend_or_refused_with_its_error(sdk, node, backend):
    backend.answers[("rpc", "sum")] = lambda body: {"result": {"data": {"sum": sum(body["data"]["n"])}}}
    backend.answers[("rpc", "fail")] = {"error": {"code": 1500, "message": "rpc failed"}}
    user = "rpc-" + rand()
    client = proxied(sdk, {"result": {"user": user}})
    await sdk.connected(client)
    result = await client.rpc("sum", {"n": [1, 2, 3]})
    assert result.data == {"sum": 6}
    call = (await backend.wait("rpc", lambda c: c.body.get("method") == "sum" and c.body.get("user") == user))[0]
    assert call.body["data"] == {"n": [1, 2, 3]}
    with pytest.raises(ReplyError) as err:
        await client.rpc("fail", {})
    assert (err.value.code, err.value.message) == (1500, "rpc failed")
    assert client.state == ClientState.CONNECTED


# ---------------------------------------------------------------------------- failures


FAILURES = {
    "non_json_body": {"mode": "raw", "raw": "this is not json"},
    "json_array": {"mode": "raw", "raw": '[{"user": "array-user"}]'},
    "http_500": {"mode": "status", "status": 500},
    "http_404": {"mode": "status", "status": 404},
    # Centrifugo's Go http.Client would follow it (GET /landing); gyre does not follow
    # redirects (src/proxy/http.rs), so the redirect itself is the failed answer.
    "redirect_302": {"mode": "redirect"},
    "ten_mb_body": {"mode": "big"},
    "slower_than_the_timeout": {"mode": "slow"},
}


@pytest.mark.parametrize("failure", list(FAILURES))
async def test_a_broken_backend_answer_is_connect_error_100_and_other_clients_keep_working(
    sdk, node, backend, failure
):
    before = proxy_errors(node, "http", "connect")
    tag = rand()
    client = sdk.client("", data={**FAILURES[failure], "tag": tag})
    await client.connect()
    err = await client.log.wait("error", timeout=WAIT)
    assert isinstance(err.error, ReplyError), err
    assert (err.error.code, err.error.message, err.error.temporary) == (100, "internal server error", True)
    # Temporary: the SDK tries again, the backend sees the retry, and it fails the same way.
    await backend.wait("connect", lambda c: c.body.get("data", {}).get("tag") == tag, count=2)
    again = (await client.log.wait_count("error", 2))[1]
    assert (again.error.code, again.error.temporary) == (100, True)
    assert client.log.of("connected") == []
    await asyncio.wait_for(client.disconnect(), WAIT)
    await jwt_client_works(sdk, node)
    assert proxy_errors(node, "http", "connect") >= before + 2
    if failure == "redirect_302":
        assert backend.of("landing") == []


async def test_a_json_null_body_is_a_response_without_result(sdk, node, backend):
    client = sdk.client("", data={"mode": "raw", "raw": "null"})
    await client.connect()
    ctx = await client.log.wait("disconnected")
    assert ctx.code == 3501
