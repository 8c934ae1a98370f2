"""The OpenAPI document gyre serves with `swagger.enabled` (docs/openapi.json, built into the binary).

Checks that it is a valid OpenAPI document (openapi-spec-validator), that the routes it documents
are exactly the API routes the node serves (every documented path answers, the documented method
names are gyre's method list in src/api/methods.rs, undocumented names are 404), and that real
requests and answers — results, errors in both error modes — match its schemas.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from typing import Any, Dict, Optional, Tuple

import jsonschema
import pytest
from openapi_spec_validator import validate

from conftest import REPO_ROOT, WAIT, rand

GYRE_CONFIG_PATCH = {"swagger": {"enabled": True}}

API_PREFIX = "/api"


def http(
    node,
    method: str,
    path: str,
    body: Optional[bytes] = None,
    headers: Optional[Dict[str, str]] = None,
    key: Optional[str] = "",
) -> Tuple[int, Dict[str, str], bytes]:
    """One HTTP call; `key=""` sends the node's API key in X-API-Key, `None` sends none."""
    all_headers = dict(headers or {})
    if key is not None:
        all_headers.setdefault("X-API-Key", key or node.api_key)
    request = urllib.request.Request(f"http://{node.addr}{path}", data=body, headers=all_headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


@pytest.fixture(scope="module")
def document(node) -> Dict[str, Any]:
    status, headers, body = http(node, "GET", "/swagger/openapi.json", key=None)
    assert status == 200, body
    assert headers["content-type"].startswith("application/json")
    return json.loads(body)


def pointer(*parts: str) -> str:
    return "#/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


def check(document: Dict[str, Any], schema_pointer: str, instance: Any) -> None:
    """Validates `instance` against the document's schema at `schema_pointer` (refs resolve inside
    the document; OpenAPI 3.1 schemas are JSON Schema 2020-12)."""
    root = dict(document)
    root["$ref"] = schema_pointer
    jsonschema.Draft202012Validator(root).validate(instance)


def request_schema(path: str) -> str:
    return pointer("paths", path, "post", "requestBody", "content", "application/json", "schema")


def response_schema(document: Dict[str, Any], path: str, status: int, content_type: str = "application/json") -> str:
    """The pointer to the schema of an answer, through a `$ref` to a shared response."""
    response = document["paths"][path]["post"]["responses"][str(status)]
    if "$ref" in response:
        name = response["$ref"].rsplit("/", 1)[1]
        return pointer("components", "responses", name, "content", content_type, "schema")
    return pointer("paths", path, "post", "responses", str(status), "content", content_type, "schema")


def resolve_response(document: Dict[str, Any], path: str, status: int) -> Dict[str, Any]:
    response = document["paths"][path]["post"]["responses"][str(status)]
    if "$ref" in response:
        response = document["components"]["responses"][response["$ref"].rsplit("/", 1)[1]]
    return response


def gyre_methods() -> set:
    """The methods gyre routes, read from its source (`KNOWN` in src/api/methods.rs) plus `batch`."""
    source = (REPO_ROOT / "src" / "api" / "methods.rs").read_text()
    block = re.search(r"const KNOWN: &\[&str\] = &\[(.*?)\];", source, re.S)
    assert block, "KNOWN not found in src/api/methods.rs"
    return set(re.findall(r'"([a-z_]+)"', block.group(1))) | {"batch"}


def documented_methods(document: Dict[str, Any]) -> set:
    return {path[len(API_PREFIX) + 1 :] for path in document["paths"] if path.startswith(API_PREFIX + "/")}


def test_the_document_is_valid_openapi(node, document):
    validate(document)
    assert document["openapi"].startswith("3.1")
    status, _, body = http(node, "GET", "/swagger/swagger.json", key=None)
    assert status == 200 and json.loads(body) == document, "swagger.json (Centrifugo's name) is the same"
    status, headers, page = http(node, "GET", "/swagger/", key=None)
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert b"openapi.json" in page and b"/api/publish" in page


def test_documented_methods_are_exactly_the_methods_gyre_serves(document):
    assert documented_methods(document) == gyre_methods()
    assert set(document["paths"]) == {f"{API_PREFIX}/{m}" for m in gyre_methods()} | {API_PREFIX}
    for path, item in document["paths"].items():
        assert set(item) == {"post"}, f"{path} documents {set(item)}"


def test_every_documented_path_is_served(node, document):
    for path in document["paths"]:
        body = b'{"method": "info"}' if path == API_PREFIX else b"{}"
        status, headers, answer = http(node, "POST", path, body)
        assert status == 200, f"{path}: {status} {answer!r}"
        assert headers["content-type"] == "application/json"
        for line in answer.decode().split("\n"):
            check(document, response_schema(document, path, 200), json.loads(line))
        # Only POST: any other method is 405 (before the key is checked), a bad key 401.
        assert http(node, "GET", path, key=None)[0] == 405, path
        assert http(node, "POST", path, body, key="wrong")[:3:2] == (401, b""), path


@pytest.mark.parametrize("name", ["connections", "map_publish", "publish/", "Publish", "update_user_status", ""])
def test_undocumented_names_are_not_served(node, document, name):
    assert f"{API_PREFIX}/{name}" not in document["paths"]
    assert http(node, "POST", f"{API_PREFIX}/{name}", b"{}")[0] == 404


def test_every_documented_key_scheme_works(node, document):
    schemes = document["components"]["securitySchemes"]
    assert {(s["in"], s["name"]) for s in schemes.values()} == {
        ("header", "X-API-Key"),
        ("header", "Authorization"),
        ("query", "api_key"),
    }
    # Any one of them (alternatives, not all at once).
    assert sorted(list(r) for r in document["security"]) == sorted([name] for name in schemes)
    path = f"{API_PREFIX}/info"
    assert http(node, "POST", path, b"{}", key=None)[0] == 401
    assert http(node, "POST", path, b"{}", headers={"Authorization": f"apikey {node.api_key}"}, key=None)[0] == 200
    query = urllib.parse.urlencode({"api_key": node.api_key})
    assert http(node, "POST", f"{path}?{query}", b"{}", key=None)[0] == 200


def call(node, document, method: str, body: Any, status: int = 200, transport: bool = False) -> Any:
    """Calls `method` with a body that must match its request schema; checks the answer against
    the schema documented for its status and returns it decoded."""
    path = f"{API_PREFIX}/{method}"
    check(document, request_schema(path), body)
    headers = {"X-Centrifugo-Error-Mode": "transport"} if transport else {}
    got, answer_headers, answer = http(node, "POST", path, json.dumps(body).encode(), headers=headers)
    assert got == status, f"{method}: {got} {answer!r}"
    content = resolve_response(document, path, status)["content"]
    assert answer_headers["content-type"] in content, f"{method} {status}: {answer_headers['Content-Type']}"
    decoded = json.loads(answer)
    check(document, response_schema(document, path, status), decoded)
    return decoded


async def test_results_match_the_documented_schemas(node, document, sdk):
    channel = "chat:openapi-" + rand()
    client = sdk.client(node.token("alice", info={"role": "host"}))
    await sdk.connected(client)
    await sdk.subscribed(sdk.sub(client, channel))

    published = call(node, document, "publish", {"channel": channel, "data": {"n": 1}, "tags": {"k": "v"}})
    assert published["result"]["offset"] == 1 and published["result"]["epoch"]
    assert call(node, document, "publish", {"channel": "news-" + rand(), "data": 1}) == {"result": {}}
    responses = call(node, document, "broadcast", {"channels": [channel, "", "nope:x"], "data": [1]})
    assert [sorted(r) for r in responses["result"]["responses"]] == [["result"], ["error"], ["error"]]
    history = call(node, document, "history", {"channel": channel, "limit": -1, "since": {"offset": 0}})
    assert history["result"]["publications"][0]["data"] == {"n": 1}
    presence = call(node, document, "presence", {"channel": channel})["result"]["presence"]
    assert [info["conn_info"] for info in presence.values()] == [{"role": "host"}]
    assert call(node, document, "presence_stats", {"channel": channel})["result"] == {"num_clients": 1, "num_users": 1}
    assert channel in call(node, document, "channels", {"pattern": "chat:*"})["result"]["channels"]
    assert call(node, document, "info", {})["result"]["nodes"][0]["version"].endswith(" OSS")
    override = {"presence": {"value": False}}
    target = {"user": "nobody-" + rand()}
    assert call(node, document, "subscribe", {**target, "channel": "chat:x", "override": override}) == {"result": {}}
    assert call(node, document, "unsubscribe", {**target, "channel": "chat:x"}) == {"result": {}}
    assert call(node, document, "refresh", {**target, "expire_at": 1}) == {"result": {}}
    assert call(node, document, "disconnect", {**target, "disconnect": {"code": 4000, "reason": "x"}}) == {"result": {}}
    assert call(node, document, "history_remove", {"channel": channel}) == {"result": {}}
    assert call(node, document, "rpc", {"method": "nope"}) == {"error": {"code": 104, "message": "not found"}}
    batch = call(
        node,
        document,
        "batch",
        {"commands": [{"publish": {"channel": channel, "data": 2}}, {"info": {}}, None, {}], "parallel": True},
    )
    assert [list(r) for r in batch["replies"]] == [["publish"], ["info"], ["error"], ["error"]]
    assert call(node, document, "batch", {"commands": []}) == {}


def test_errors_match_the_documented_schemas_in_both_modes(node, document):
    bad = {"code": 107, "message": "bad request"}
    assert call(node, document, "publish", {"channel": ""}) == {"error": bad}
    assert call(node, document, "publish", {"channel": ""}, status=400, transport=True) == bad
    unknown = {"code": 102, "message": "unknown channel"}
    assert call(node, document, "presence", {"channel": "nope:x"}, status=404, transport=True) == unknown
    assert call(node, document, "rpc", {"method": "nope"}, status=404, transport=True)["code"] == 104
    history = {"channel": "chat:" + rand(), "since": {"offset": 1, "epoch": "not-the-epoch"}}
    assert call(node, document, "history", history, status=416, transport=True)["code"] == 112
    assert call(node, document, "presence", {"channel": "news"}, status=400, transport=True)["code"] == 108


def test_plain_text_answers_are_documented(node, document):
    for path in document["paths"]:
        status, headers, body = http(node, "POST", path, b'{"channel": 1')
        assert status == 400 and headers["content-type"].startswith("text/plain"), path
        content = resolve_response(document, path, 400)["content"]
        check(document, response_schema(document, path, 400, "text/plain"), body.decode())
        assert "text/plain" in content
    path = f"{API_PREFIX}/publish"
    status, headers, _ = http(node, "POST", path, b" " * (8 * 1024 * 1024 + 1))
    assert status == 413, status
    assert "413" in document["paths"][path]["post"]["responses"]
