"""Subscription streams through a gRPC proxy (`subscribe_stream_proxy_enabled`): a grpcio
CentrifugoProxy server built from gyre's src/proxy/proxy.proto answers SubscribeUnidirectional
and SubscribeBidirectional; the stream's first message decides the subscribe, its publications
reach that subscriber alone, a client publish goes into a bidirectional stream, and the stream's
end unsubscribes (2000). centrifuge-python is the client."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, Dict, List

import grpc
import pytest
from centrifuge import ReplyError

from conftest import WAIT, Sdk, rand
from test_proxy_grpc import compile_proto


def js(value: Any) -> bytes:
    return json.dumps(value).encode()


class StreamBackend:
    """A grpc.aio server on its own loop; a test feeds a channel's stream with `push`."""

    def __init__(self, pb2: Any, pb2_grpc: Any) -> None:
        self.pb2 = pb2
        self.queues: Dict[str, asyncio.Queue] = {}
        self.opened: List[Any] = []
        self.closed: List[str] = []
        self.cond = threading.Condition()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="stream-backend", daemon=True)
        self.thread.start()
        port = asyncio.run_coroutine_threadsafe(self._start(pb2_grpc), self.loop).result(WAIT)
        self.endpoint = f"grpc://127.0.0.1:{port}"

    def _queue(self, channel: str) -> asyncio.Queue:
        return self.queues.setdefault(channel, asyncio.Queue())

    def _note(self, items: List[Any], item: Any) -> None:
        with self.cond:
            items.append(item)
            self.cond.notify_all()

    def _first(self, request: Any) -> Any:
        pb2 = self.pb2
        if request.channel.split(":", 1)[-1].startswith("refused"):
            return pb2.StreamSubscribeResponse(
                subscribe_response=pb2.SubscribeResponse(error=pb2.Error(code=1403, message="no stream"))
            )
        result = pb2.SubscribeResult(data=js({"stream": request.user}))
        return pb2.StreamSubscribeResponse(subscribe_response=pb2.SubscribeResponse(result=result))

    async def _start(self, pb2_grpc: Any) -> int:
        backend, pb2 = self, self.pb2

        class Servicer(pb2_grpc.CentrifugoProxyServicer):
            async def SubscribeUnidirectional(self, request, context):
                backend._note(backend.opened, request)
                queue = backend._queue(request.channel)
                try:
                    yield backend._first(request)
                    while True:
                        data = await queue.get()
                        if data is None:
                            return
                        yield pb2.StreamSubscribeResponse(publication=pb2.Publication(data=data))
                finally:
                    backend._note(backend.closed, request.channel)

            async def SubscribeBidirectional(self, request_iterator, context):
                first = await request_iterator.__anext__()
                request = first.subscribe_request
                backend._note(backend.opened, request)
                try:
                    yield backend._first(request)
                    async for message in request_iterator:
                        if message.HasField("publication"):
                            echo = {"echo": json.loads(message.publication.data), "user": request.user}
                            yield pb2.StreamSubscribeResponse(publication=pb2.Publication(data=js(echo)))
                finally:
                    backend._note(backend.closed, request.channel)

        self.server = grpc.aio.server()
        pb2_grpc.add_CentrifugoProxyServicer_to_server(Servicer(), self.server)
        port = self.server.add_insecure_port("127.0.0.1:0")
        await self.server.start()
        return port

    def push(self, channel: str, data: Any) -> None:
        payload = None if data is None else js(data)
        self.loop.call_soon_threadsafe(lambda: self._queue(channel).put_nowait(payload))

    async def wait(self, items: List[Any], pred, what: str) -> Any:
        def block() -> bool:
            with self.cond:
                return self.cond.wait_for(lambda: any(pred(i) for i in items), WAIT)

        assert await asyncio.to_thread(block), f"the backend never saw {what}"
        with self.cond:
            return next(i for i in items if pred(i))

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(None), self.loop).result(WAIT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT)


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    pb2, pb2_grpc = compile_proto(tmp_path_factory.mktemp("streamproto"))
    b = StreamBackend(pb2, pb2_grpc)
    try:
        yield b
    finally:
        b.stop()


def GYRE_CONFIG_PATCH(request: pytest.FixtureRequest) -> Dict[str, Any]:
    endpoint = request.getfixturevalue("backend").endpoint
    return {
        "channel": {
            "proxy": {"subscribe_stream": {"endpoint": endpoint, "timeout": "2s"}},
            "namespaces": [
                {"name": "st", "subscribe_stream_proxy_enabled": True},
                {
                    "name": "sb",
                    "subscribe_stream_proxy_enabled": True,
                    "subscribe_stream_proxy_bidirectional": True,
                },
            ],
        },
    }


async def test_a_stream_publishes_to_its_subscriber_and_unsubscribes_it_when_it_ends(sdk: Sdk, node, backend):
    user, channel = "st-" + rand(), "st:feed-" + rand()
    client = sdk.client(node.token(user))
    await sdk.connected(client)
    sub = sdk.sub(client, channel)
    subscribed = await sdk.subscribed(sub)
    assert subscribed.data == {"stream": user}
    opened = await backend.wait(backend.opened, lambda r: r.channel == channel, "the stream request")
    assert (opened.user, opened.transport, opened.protocol) == (user, "websocket", "json")

    backend.push(channel, {"from": "stream"})
    first = (await sub.log.wait_count("publication", 1))[0]
    assert first.pub.data == {"from": "stream"}
    # It is a subscription like any other: API publications arrive as well.
    await node.publish(channel, {"from": "api"})
    second = (await sub.log.wait_count("publication", 2))[1]
    assert second.pub.data == {"from": "api"}

    backend.push(channel, None)  # the backend ends the stream
    ended = await sub.log.wait("unsubscribed")
    assert (ended.code, ended.reason) == (2000, "server unsubscribe")


async def test_a_refusal_in_the_first_message_refuses_the_subscribe(sdk: Sdk, node, backend):
    client = sdk.client(node.token("st-" + rand()))
    await sdk.connected(client)
    sub = sdk.sub(client, "st:refused-" + rand())
    await sub.subscribe()
    refused = await sub.log.wait("unsubscribed")
    assert (refused.code, refused.reason) == (1403, "no stream")


async def test_a_bidirectional_stream_takes_the_clients_publications(sdk: Sdk, node, backend):
    user, channel = "sb-" + rand(), "sb:chat-" + rand()
    client = sdk.client(node.token(user))
    await sdk.connected(client)
    sub = sdk.sub(client, channel)
    await sdk.subscribed(sub)
    await sub.publish({"text": "hi"})
    echoed = (await sub.log.wait_count("publication", 1))[0]
    assert echoed.pub.data == {"echo": {"text": "hi"}, "user": user}

    # A one-way stream's namespace takes no client publications: 108.
    oneway = sdk.sub(client, "st:quiet-" + rand())
    await sdk.subscribed(oneway)
    with pytest.raises(ReplyError) as refused:
        await oneway.publish({"text": "nobody listens"})
    assert refused.value.code == 108

    # Unsubscribing cancels the backend's stream.
    await sub.unsubscribe()
    await backend.wait(backend.closed, lambda c: c == channel, "the stream cancelled")
