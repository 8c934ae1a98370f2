"""centrifuge-python and cent over TLS: the node serves ``http_server.tls`` with a certificate
signed by a CA this module makes (openssl CLI); the SDK connects over wss:// trusting that CA
through its ``ssl_context``, cent publishes over https:// with a requests session that trusts it,
and a client that does not trust the CA never connects while the others keep working."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
from pathlib import Path

import cent
import pytest
import requests
from centrifuge import Client, ClientState

from conftest import GYRE_BIN, WAIT, ClientRecorder, Log, base_config


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> dict:
    """A CA and a certificate for localhost and 127.0.0.1 signed by it, valid for a day."""
    d: Path = tmp_path_factory.mktemp("tls")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)

    openssl("req", "-x509", *ec, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-days", "1",
            "-subj", "/CN=gyre test CA")
    openssl("req", *ec, "-keyout", str(d / "node.key"), "-out", str(d / "node.csr"), "-subj", "/CN=localhost")
    (d / "ext.cnf").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", str(d / "node.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
            "-CAcreateserial", "-out", str(d / "node.pem"), "-days", "1", "-extfile", str(d / "ext.cnf"))
    return {"ca": str(d / "ca.pem"), "cert": str(d / "node.pem"), "key": str(d / "node.key")}


def GYRE_CONFIG_PATCH(request):
    pki = request.getfixturevalue("pki")
    # The key as inline PEM text (Centrifugo's PEMData accepts a path, PEM or base64 of PEM).
    return {"http_server": {"tls": {"enabled": True, "cert_pem": pki["cert"], "key_pem": Path(pki["key"]).read_text()}}}


def port(node) -> str:
    return node.addr.rsplit(":", 1)[1]


def trusting_cent(node, pki) -> cent.Client:
    session = requests.Session()
    # The environment's REQUESTS_CA_BUNDLE would win over the session's CA otherwise.
    session.trust_env = False
    session.verify = pki["ca"]
    return cent.Client(f"https://localhost:{port(node)}/api", node.api_key, timeout=WAIT, session=session)


async def test_connects_over_wss_and_receives_what_cent_publishes_over_https(sdk, node, pki):
    context = ssl.create_default_context(cafile=pki["ca"])
    client = make_wss(sdk, node, "alice", context)
    await sdk.connected(client)
    sub = sdk.sub(client, "chat:tls")
    await sdk.subscribed(sub)
    api = trusting_cent(node, pki)
    presence = await asyncio.to_thread(api.presence, cent.PresenceRequest(channel="chat:tls"))
    assert [info.user for info in presence.presence.values()] == ["alice"]
    await asyncio.to_thread(api.publish, cent.PublishRequest(channel="chat:tls", data={"over": "tls"}))
    ctx = await sub.log.wait("publication")
    assert ctx.pub.data == {"over": "tls"}
    big = "b" * 150_000
    await asyncio.to_thread(api.publish, cent.PublishRequest(channel="chat:tls", data={"big": big}))
    ctx = await sub.log.wait("publication", lambda c: "big" in c.pub.data)
    assert len(ctx.pub.data["big"]) == len(big) and ctx.pub.data["big"] == big


async def test_a_client_that_does_not_trust_the_ca_does_not_connect(sdk, node, pki):
    distrusting = make_wss(sdk, node, "eve", ssl.create_default_context())
    await distrusting.connect()
    await distrusting.log.wait("error")
    assert distrusting.state != ClientState.CONNECTED
    await distrusting.disconnect()
    trusted = make_wss(sdk, node, "carol", ssl.create_default_context(cafile=pki["ca"]))
    await sdk.connected(trusted)
    assert trusted.state == ClientState.CONNECTED


def make_wss(sdk, node, user: str, context: ssl.SSLContext):
    """A centrifuge-python client for the node's wss:// address, recorded like sdk.client()'s."""
    log = Log()
    client = Client(
        f"wss://localhost:{port(node)}/connection/websocket",
        events=ClientRecorder(log),
        token=node.token(user),
        proxy=None,
        ssl_context=context,
        min_reconnect_delay=0.1,
        max_reconnect_delay=1.0,
    )
    client.log = log  # type: ignore[attr-defined]
    sdk.clients.append(client)
    return client


@pytest.mark.parametrize("case", ["missing", "mismatched"])
def test_gyre_refuses_to_start_with_a_bad_certificate_or_key_and_names_the_file(pki, tmp_path, case):
    key = str(tmp_path / "absent.key")
    if case == "mismatched":
        key = str(tmp_path / "other.key")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                        "-out", key], check=True, capture_output=True)
    config = base_config("secret-" + "x" * 32, "api-key")
    config["http_server"] = {"tls": {"enabled": True, "cert_pem": pki["cert"], "key_pem": key}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    result = subprocess.run([GYRE_BIN, "serve", "--config", str(path), "--port", "0", "--address", "127.0.0.1"],
                            capture_output=True, text=True, timeout=15)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert key in output, output
    expected = "does not exist" if case == "missing" else "does not match the certificate"
    assert expected in output, output
    assert "PRIVATE KEY" not in output
