"""Backend proxies over gRPC, protocol-extensions.md §6.7: a grpcio (asyncio) server implementing
`centrifugal.centrifugo.proxy.CentrifugoProxy` from gyre's own src/proxy/proxy.proto (compiled
with grpcio-tools at test time) answers gyre's Connect, Refresh, Subscribe, Publish, RPC and
SubRefresh calls, and the official centrifuge-python SDK sees the outcome. The server runs on
its own event loop in a thread and is bound (port 0) before gyre starts.

How a test steers the backend: `GrpcBackend.answers[(kind, key)]` holds a function of the
request returning the response message (or a list of them, used in turn, or "abort"/"slow");
the key is the connect data's `tag`, the refresh's user, the channel or the RPC method."""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional

import grpc
import pytest
from centrifuge import ClientState, ReplyError
from grpc_tools import protoc

from conftest import REPO_ROOT, WAIT, GyreNode, Sdk, rand

PROTO_DIR = REPO_ROOT / "src" / "proxy"
CREDENTIALS = ("authorization", "Bearer proxy-" + rand())
SLOW = 1.5  # seconds the "slow" backend takes: past the connect proxy's 500ms timeout


def compile_proto(out) -> tuple:
    args = ["protoc", f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}", "proxy.proto"]
    assert protoc.main(args) == 0, "grpcio-tools could not compile src/proxy/proxy.proto"
    sys.path.insert(0, str(out))
    try:
        return importlib.import_module("proxy_pb2"), importlib.import_module("proxy_pb2_grpc")
    finally:
        sys.path.remove(str(out))


@dataclass
class Call:
    kind: str
    request: Any
    metadata: Dict[str, str]


class GrpcBackend:
    """A grpc.aio CentrifugoProxy server on an event loop of its own in a thread."""

    def __init__(self, pb2: Any, pb2_grpc: Any) -> None:
        self.pb2 = pb2
        self.calls: List[Call] = []
        self.answers: Dict[tuple, Any] = {}
        self._cond = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="grpc-proxy-backend", daemon=True)
        self._thread.start()
        self._server: Optional[grpc.aio.Server] = None
        port = asyncio.run_coroutine_threadsafe(self._start(pb2_grpc), self.loop).result(WAIT)
        self.endpoint = f"grpc://127.0.0.1:{port}"

    async def _start(self, pb2_grpc: Any) -> int:
        backend = self
        pb2 = self.pb2

        def method(kind: str, key: Callable[[Any], str], default: Callable[[Any], Any]):
            async def handler(self, request, context):
                metadata = {k: v for k, v in context.invocation_metadata()}
                backend._record(Call(kind, request, metadata))
                answer = backend.answers.get((kind, key(request)), default)
                if isinstance(answer, list):
                    answer = answer.pop(0) if answer else default
                if answer == "abort":
                    await context.abort(grpc.StatusCode.UNAVAILABLE, "backend is down")
                if answer == "slow":
                    await asyncio.sleep(SLOW)  # the backend's latency, past the proxy timeout
                    answer = default
                return answer(request) if callable(answer) else answer

            return handler

        def connect_tag(request) -> str:
            return json.loads(request.data or b"{}").get("tag", "")

        servicer = type(
            "Servicer",
            (pb2_grpc.CentrifugoProxyServicer,),
            {
                "Connect": method(
                    "connect", connect_tag,
                    lambda r: pb2.ConnectResponse(result=pb2.ConnectResult(user="grpc-user")),
                ),
                "Refresh": method(
                    "refresh", lambda r: r.user,
                    lambda r: pb2.RefreshResponse(result=pb2.RefreshResult(expired=True)),
                ),
                "Subscribe": method(
                    "subscribe", lambda r: r.channel,
                    lambda r: pb2.SubscribeResponse(result=pb2.SubscribeResult()),
                ),
                "Publish": method(
                    "publish", lambda r: r.channel,
                    lambda r: pb2.PublishResponse(result=pb2.PublishResult()),
                ),
                "RPC": method(
                    "rpc", lambda r: r.method,
                    lambda r: pb2.RPCResponse(result=pb2.RPCResult()),
                ),
                "SubRefresh": method(
                    "sub_refresh", lambda r: r.channel,
                    lambda r: pb2.SubRefreshResponse(result=pb2.SubRefreshResult(expired=True)),
                ),
            },
        )()
        self._server = grpc.aio.server()
        pb2_grpc.add_CentrifugoProxyServicer_to_server(servicer, self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        await self._server.start()
        return port

    def stop(self) -> None:
        if self._server is not None:
            asyncio.run_coroutine_threadsafe(self._server.stop(None), self.loop).result(WAIT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT)
        self.loop.close()

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
                f"backend got {len(self.of(kind, pred))} matching {kind!r} calls in {timeout}s, wanted {count}"
            )
        return self.of(kind, pred)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    pb2, pb2_grpc = compile_proto(tmp_path_factory.mktemp("proxyproto"))
    b = GrpcBackend(pb2, pb2_grpc)
    try:
        yield b
    finally:
        b.stop()


def GYRE_CONFIG_PATCH(request: pytest.FixtureRequest) -> Dict[str, Any]:
    endpoint = request.getfixturevalue("backend").endpoint
    creds = {"credentials_key": CREDENTIALS[0], "credentials_value": CREDENTIALS[1]}
    proxy = {"endpoint": endpoint, "timeout": "1s", "grpc": creds}
    return {
        "prometheus": {"enabled": True},
        "client": {
            "expired_sub_close_delay": "1s",
            "proxy": {
                "connect": {
                    "enabled": True,
                    "endpoint": endpoint,
                    "timeout": "500ms",
                    "http_headers": ["X-Allowed"],
                    "grpc": creds,
                },
                "refresh": {"enabled": True, **proxy},
            },
        },
        "channel": {
            "proxy": {"subscribe": proxy, "publish": proxy, "sub_refresh": proxy},
            "namespaces": [
                {
                    "name": "gx",
                    "subscribe_proxy_enabled": True,
                    "publish_proxy_enabled": True,
                    "sub_refresh_proxy_enabled": True,
                },
            ],
        },
        "proxies": [
            {"name": "named-rpc", "endpoint": endpoint, "timeout": "1s", "grpc": {"static_metadata": {"x-proxy": "named"}}}
        ],
        "rpc": {
            "proxy": proxy,
            "without_namespace": {"proxy_enabled": True},
            "namespaces": [{"name": "ns", "proxy_enabled": True, "proxy_name": "named-rpc"}],
        },
    }


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


def tagged(sdk: Sdk, tag: str, **kwargs: Any):
    """A client without a token; its connect data's tag selects the backend's Connect answer."""
    return sdk.client("", data={"tag": tag}, **kwargs)


def proxy_errors(node: GyreNode, protocol: str, kind: str) -> int:
    """centrifugo_proxy_errors{protocol, type} summed over names, from GET /metrics."""
    with urllib.request.urlopen(f"http://{node.addr}/metrics", timeout=WAIT) as response:
        text = response.read().decode()
    total = 0
    for line in text.splitlines():
        m = re.match(r"centrifugo_proxy_errors\{([^}]*)\} (\S+)$", line)
        if m:
            labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1)))
            if labels.get("protocol") == protocol and labels.get("type") == kind:
                total += int(float(m.group(2)))
    return total


async def test_connect_over_grpc_gives_user_data_and_channels_with_credentials_and_allowed_headers(
    sdk, node, backend
):
    pb2 = backend.pb2
    tag, user, channel = rand(), "grpc-" + rand(), "gsrv-" + rand()
    backend.answers[("connect", tag)] = lambda r: pb2.ConnectResponse(
        result=pb2.ConnectResult(user=user, data=js({"hello": user}), channels=[channel])
    )
    client = tagged(sdk, tag, headers={"X-Allowed": "a-" + tag, "X-Denied": "secret"})
    ctx = await sdk.connected(client)
    assert ctx.data == {"hello": user}
    call = (await backend.wait("connect", lambda c: json.loads(c.request.data).get("tag") == tag))[0]
    req = call.request
    assert (req.client, req.transport, req.protocol, req.encoding, req.name) == (
        ctx.client, "websocket", "json", "json", "python",
    )
    assert json.loads(req.data) == {"tag": tag}
    assert call.metadata[CREDENTIALS[0]] == CREDENTIALS[1]
    assert call.metadata.get("x-allowed") == "a-" + tag
    assert "x-denied" not in call.metadata
    await client.log.wait("server_subscribed", lambda c: c.channel == channel)
    await node.publish(channel, {"via": "api"})
    pub = await client.log.wait("server_publication", lambda c: c.channel == channel)
    assert pub.pub.data == {"via": "api"}


async def test_refresh_over_grpc_extends_the_connection_then_expired_closes_it_with_3005(sdk, node, backend):
    pb2 = backend.pb2
    tag, user = rand(), "grefresh-" + rand()
    backend.answers[("connect", tag)] = lambda r: pb2.ConnectResponse(
        result=pb2.ConnectResult(user=user, expire_at=int(time.time()) + 2)
    )
    backend.answers[("refresh", user)] = [
        lambda r: pb2.RefreshResponse(result=pb2.RefreshResult(expire_at=int(time.time()) + 2)),
        lambda r: pb2.RefreshResponse(result=pb2.RefreshResult(expired=True)),
    ]
    client = tagged(sdk, tag)
    ctx = await sdk.connected(client)
    first = (await backend.wait("refresh", lambda c: c.request.user == user, timeout=6))[0]
    assert first.request.client == ctx.client
    assert first.metadata[CREDENTIALS[0]] == CREDENTIALS[1]
    # Extended: still connected, commands work.
    channel = "gx:alive-" + rand()
    await sdk.subscribed(sdk.sub(client, channel))
    assert client.state == ClientState.CONNECTED and len(client.log.of("connecting")) == 1
    closed = await client.log.wait("connecting", lambda c: c.code == 3005, timeout=6)
    assert closed.reason == "connection expired"
    assert len(backend.of("refresh", lambda c: c.request.user == user)) == 2


async def test_subscribe_publish_and_rpc_over_grpc(sdk, node, backend):
    pb2 = backend.pb2
    tag, user = rand(), "gcmd-" + rand()
    ok, denied = "gx:ok-" + rand(), "gx:no-" + rand()
    backend.answers[("connect", tag)] = lambda r: pb2.ConnectResponse(result=pb2.ConnectResult(user=user))
    backend.answers[("subscribe", ok)] = lambda r: pb2.SubscribeResponse(
        result=pb2.SubscribeResult(data=js({"granted": r.user}))
    )
    backend.answers[("subscribe", denied)] = lambda r: pb2.SubscribeResponse(
        error=pb2.Error(code=1403, message="not for you")
    )
    backend.answers[("publish", ok)] = lambda r: pb2.PublishResponse(
        result=pb2.PublishResult(data=js({"rewritten": json.loads(r.data)}))
    )
    backend.answers[("rpc", "sum")] = lambda r: pb2.RPCResponse(
        result=pb2.RPCResult(data=js({"sum": sum(json.loads(r.data)["n"])}))
    )
    backend.answers[("rpc", "fail")] = lambda r: pb2.RPCResponse(error=pb2.Error(code=1500, message="rpc failed"))
    backend.answers[("rpc", "ns:who")] = lambda r: pb2.RPCResponse(result=pb2.RPCResult(data=js({"user": r.user})))
    client = tagged(sdk, tag)
    await sdk.connected(client)

    sub = sdk.sub(client, ok)
    subscribed = await sdk.subscribed(sub)
    assert subscribed.data == {"granted": user}
    sub_call = (await backend.wait("subscribe", lambda c: c.request.channel == ok))[0]
    assert sub_call.request.user == user and sub_call.metadata[CREDENTIALS[0]] == CREDENTIALS[1]

    no = sdk.sub(client, denied)
    await no.subscribe()
    unsub = await no.log.wait("unsubscribed")
    assert (unsub.code, unsub.reason) == (1403, "not for you")

    await sub.publish({"text": "hi"})
    pub = (await sub.log.wait_count("publication", 1))[0].pub
    assert pub.data == {"rewritten": {"text": "hi"}}
    pub_call = (await backend.wait("publish", lambda c: c.request.channel == ok))[0]
    assert (pub_call.request.user, json.loads(pub_call.request.data)) == (user, {"text": "hi"})

    assert (await client.rpc("sum", {"n": [2, 3, 4]})).data == {"sum": 9}
    with pytest.raises(ReplyError) as err:
        await client.rpc("fail", {})
    assert (err.value.code, err.value.message) == (1500, "rpc failed")
    # A namespace's named proxy (static metadata tells it apart); an unknown namespace is 104.
    assert (await client.rpc("ns:who", {})).data == {"user": user}
    named = (await backend.wait("rpc", lambda c: c.request.method == "ns:who"))[0]
    assert named.metadata.get("x-proxy") == "named"
    assert "x-proxy" not in (await backend.wait("rpc", lambda c: c.request.method == "sum"))[0].metadata
    with pytest.raises(ReplyError) as unknown:
        await client.rpc("nope:x", {})
    assert unknown.value.code == 104
    assert client.state == ClientState.CONNECTED


async def test_sub_refresh_over_grpc_keeps_an_extended_subscription_and_ends_an_expired_one(sdk, node, backend):
    pb2 = backend.pb2
    tag, user, channel = rand(), "gsr-" + rand(), "gx:sr-" + rand()
    backend.answers[("connect", tag)] = lambda r: pb2.ConnectResponse(result=pb2.ConnectResult(user=user))
    # The first subscribe expires at once; the resubscribe after 2501 does not expire.
    backend.answers[("subscribe", channel)] = [
        lambda r: pb2.SubscribeResponse(result=pb2.SubscribeResult(expire_at=int(time.time()) + 1)),
    ]
    backend.answers[("sub_refresh", channel)] = [
        lambda r: pb2.SubRefreshResponse(result=pb2.SubRefreshResult(expire_at=int(time.time()) + 2)),
        lambda r: pb2.SubRefreshResponse(result=pb2.SubRefreshResult(expired=True)),
    ]
    client = tagged(sdk, tag)
    await sdk.connected(client)
    sub = sdk.sub(client, channel)
    await sdk.subscribed(sub)
    # gyre asks SubRefresh after expire_at + expired_sub_close_delay (1s).
    first = (await backend.wait("sub_refresh", lambda c: c.request.channel == channel, timeout=6))[0]
    assert (first.request.user, first.request.client) == (user, client.client_id)
    assert first.metadata[CREDENTIALS[0]] == CREDENTIALS[1]
    # Extended: the subscription stays and gets publications.
    await node.publish(channel, {"still": "here"})
    assert (await sub.log.wait_count("publication", 1))[0].pub.data == {"still": "here"}
    assert [n for n, _ in sub.log.items] == ["subscribing", "subscribed", "publication"]
    # The second answer is expired: unsubscribed with 2501, and the SDK subscribes again.
    ctx = await sub.log.wait("subscribing", lambda c: c.code == 2501, timeout=6)
    assert ctx.reason == "subscription expired"
    await backend.wait("subscribe", lambda c: c.request.channel == channel, count=2)
    await sub.log.wait_count("subscribed", 2)
    assert len(backend.of("sub_refresh", lambda c: c.request.channel == channel)) == 2
    assert client.state == ClientState.CONNECTED


async def test_an_error_or_disconnect_from_the_grpc_backend_reaches_the_sdk(sdk, node, backend):
    pb2 = backend.pb2
    refused, banned = rand(), rand()
    backend.answers[("connect", refused)] = lambda r: pb2.ConnectResponse(error=pb2.Error(code=1403, message="no"))
    backend.answers[("connect", banned)] = lambda r: pb2.ConnectResponse(
        disconnect=pb2.Disconnect(code=4501, reason="banned")
    )
    a = tagged(sdk, refused)
    await a.connect()
    assert ((ctx := await a.log.wait("disconnected")).code, ctx.reason) == (1403, "no")
    b = tagged(sdk, banned)
    await b.connect()
    assert ((ctx := await b.log.wait("disconnected")).code, ctx.reason) == (4501, "banned")
    assert a.log.of("connected") == [] and b.log.of("connected") == []


@pytest.mark.parametrize("failure", ["abort", "slow"])
async def test_a_failing_grpc_backend_is_error_100_counted_in_metrics_while_jwt_clients_work(
    sdk, node, backend, failure
):
    tag = rand()
    backend.answers[("connect", tag)] = [failure]  # the first connect only
    before = proxy_errors(node, "grpc", "connect")
    client = tagged(sdk, tag)
    await client.connect()
    err = await client.log.wait("error")
    assert isinstance(err.error, ReplyError), err
    assert (err.error.code, err.error.temporary) == (100, True)
    # Temporary: the SDK tries again (the default answer then lets it in).
    await backend.wait("connect", lambda c: json.loads(c.request.data).get("tag") == tag, count=2)
    await client.log.wait("connected")
    assert proxy_errors(node, "grpc", "connect") >= before + 1

    # A subscribe whose backend fails is error 100 too; the subscription retries.
    jwt = sdk.client(node.token("gjwt-" + rand()))
    await sdk.connected(jwt)
    channel = "gx:fail-" + rand()
    backend.answers[("subscribe", channel)] = [failure]
    sub_before = proxy_errors(node, "grpc", "subscribe")
    sub = sdk.sub(jwt, channel, min_resubscribe_delay=0.1, max_resubscribe_delay=0.5)
    await sub.subscribe()
    sub_err = await sub.log.wait("error")
    assert (sub_err.error.code, sub_err.error.temporary) == (100, True)
    await sub.log.wait("subscribed")  # the retry gets the default answer
    assert proxy_errors(node, "grpc", "subscribe") >= sub_before + 1
    plain = "plain-" + rand()
    psub = sdk.sub(jwt, plain)
    await sdk.subscribed(psub)
    await node.publish(plain, {"ok": 1})
    assert (await psub.log.wait_count("publication", 1))[0].pub.data == {"ok": 1}
