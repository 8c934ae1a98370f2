"""The unidirectional HTTP transports with nothing but Python's own HTTP client (http.client,
reading the streamed response as it arrives): uni_http_stream (POST the connect request; one
JSON push per line) and uni_sse (GET with cf_connect; "data:" events)."""

import http.client
import json
import urllib.parse

import cent

from conftest import rand

GYRE_CONFIG_PATCH = {"uni_http_stream": {"enabled": True}, "uni_sse": {"enabled": True}}
TIMEOUT = 10


def messages(response, sse: bool):
    """Yields the JSON messages of a streamed body: lines, or the data of SSE events."""
    while True:
        line = response.readline()
        if not line:
            return
        line = line.decode().strip()
        if sse:
            if not line.startswith("data: "):
                continue
            line = line[len("data: "):]
        if line:
            yield json.loads(line)


def open_stream(node, sse: bool, request: dict):
    host, port = node.addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    if sse:
        query = urllib.parse.quote(json.dumps(request))
        conn.request("GET", f"/connection/uni_sse?cf_connect={query}")
    else:
        conn.request("POST", "/connection/uni_http_stream", body=json.dumps(request))
    response = conn.getresponse()
    return conn, response


def test_plain_http_clients_receive_the_connect_push_publications_and_the_disconnect(node):
    for sse in (False, True):
        channel, user = "plain-" + rand(), "plain-" + rand()
        conn, response = open_stream(node, sse, {"token": node.token(user, channels=[channel])})
        assert response.status == 200
        expected_type = "text/event-stream" if sse else "text/plain"
        assert response.getheader("Content-Type").startswith(expected_type)
        stream = messages(response, sse)
        connect = next(stream)
        assert channel in connect["connect"]["subs"]
        node.cent.publish(cent.PublishRequest(channel=channel, data={"plain": sse}))
        assert next(stream) == {"channel": channel, "pub": {"data": {"plain": sse}}}
        node.cent.disconnect(cent.DisconnectRequest(user=user, disconnect=cent.Disconnect(code=4000, reason="bye")))
        assert next(stream) == {"disconnect": {"code": 4000, "reason": "bye"}}
        assert list(stream) == [], "the body ends after the disconnect"
        conn.close()


def test_a_bad_connect_request_is_an_http_error_and_an_expired_token_a_disconnect(node):
    host, port = node.addr.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
    conn.request("POST", "/connection/uni_http_stream", body="{not json")
    assert conn.getresponse().status == 400
    conn.close()
    conn, response = open_stream(node, False, {"token": node.token("late-" + rand(), exp=1000)})
    assert list(messages(response, False)) == [{"disconnect": {"code": 3005, "reason": "connection expired"}}]
    conn.close()
