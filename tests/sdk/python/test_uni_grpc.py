"""uni_grpc with a client generated from the uni-stream proto: grpcio-tools compiles
tests/sdk/python/proto/unistream.proto at test time and the generated stub calls
CentrifugoUniStream.Consume on gyre's gRPC port, as a Centrifugo uni_grpc client would."""

import importlib
import json
import re
import sys
import time

import cent
import grpc
import pytest
from grpc_tools import protoc

from conftest import REPO_ROOT, rand

GYRE_CONFIG_PATCH = {"uni_grpc": {"enabled": True, "port": 0, "address": "127.0.0.1"}}
PROTO_DIR = REPO_ROOT / "tests" / "sdk" / "python" / "proto"
GRPC_LISTENING = re.compile(r"uni_grpc listening.*addr=(127\.0\.0\.1:\d+)")
TIMEOUT = 10.0


@pytest.fixture(scope="module")
def unistream(tmp_path_factory):
    out = tmp_path_factory.mktemp("unistream")
    args = ["protoc", f"-I{PROTO_DIR}", f"--python_out={out}", f"--grpc_python_out={out}", "unistream.proto"]
    assert protoc.main(args) == 0, "grpcio-tools could not compile unistream.proto"
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("unistream_pb2"), importlib.import_module("unistream_pb2_grpc")
    finally:
        sys.path.remove(str(out))


def grpc_addr(node) -> str:
    """The gRPC port gyre logged (it binds port 0 here); bounded wait for the log line."""
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for line in list(node.output):
            match = GRPC_LISTENING.search(line)
            if match:
                return match.group(1)
        time.sleep(0.02)
    raise AssertionError("gyre did not log its uni_grpc address:\n" + "".join(node.output))


def test_a_generated_stub_consumes_the_connect_push_publications_and_the_disconnect(node, unistream):
    pb2, pb2_grpc = unistream
    channel, user = "grpc-" + rand(), "grpc-" + rand()
    with grpc.insecure_channel(grpc_addr(node)) as conn:
        stub = pb2_grpc.CentrifugoUniStreamStub(conn)
        stream = stub.Consume(pb2.ConnectRequest(token=node.token(user, channels=[channel])), timeout=TIMEOUT)
        first = next(stream)
        assert first.HasField("connect")
        assert first.connect.client
        assert channel in first.connect.subs
        node.cent.publish(cent.PublishRequest(channel=channel, data={"via": "grpc"}))
        publication = next(stream)
        assert publication.channel == channel
        assert json.loads(publication.pub.data) == {"via": "grpc"}
        node.cent.disconnect(
            cent.DisconnectRequest(user=user, disconnect=cent.Disconnect(code=4000, reason="bye"))
        )
        last = next(stream)
        assert (last.disconnect.code, last.disconnect.reason) == (4000, "bye")
        with pytest.raises(StopIteration):
            next(stream)
        assert stream.code() == grpc.StatusCode.OK


def test_an_expired_token_is_a_3005_disconnect_push(node, unistream):
    pb2, pb2_grpc = unistream
    with grpc.insecure_channel(grpc_addr(node)) as conn:
        stub = pb2_grpc.CentrifugoUniStreamStub(conn)
        expired = node.token("late-" + rand(), exp=int(time.time()) - 60)
        pushes = list(stub.Consume(pb2.ConnectRequest(token=expired), timeout=TIMEOUT))
        assert [p.disconnect.code for p in pushes] == [3005]
