#!/usr/bin/env python3
"""Hostile-client floods against a gyre binary, with the node's RSS sampled from /proc.

Starts GYRE (default target/release/gyre) on a free loopback port and runs, one at a time:

* ``commands``: a connected client sends frames of 1,000 ``history`` commands and never reads.
* ``huge-header``: a connected client declares a 2^40-byte frame and streams data behind it.
* ``huge-header-unauthenticated``: the same before ``connect``.

Each flood is bounded (``--seconds``, loopback only) and reports the node's RSS before, the
peak during, whether and how the node closed the connection, and the bytes it accepted.
Usage: python3 benches/floods.py [--gyre PATH] [--seconds 20]
"""

import argparse
import base64
import hashlib
import hmac
import json
import os
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

SECRET = "flood-secret"


def jwt(claims):
    def b64(data):
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    body = b64(json.dumps(claims).encode())
    sig = b64(hmac.new(SECRET.encode(), head + b"." + body, hashlib.sha256).digest())
    return (head + b"." + body + b"." + sig).decode()


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def frame(opcode, payload, declared=None):
    length = len(payload) if declared is None else declared
    head = bytes([0x80 | opcode])
    if length < 126:
        head += bytes([0x80 | length])
    elif length < 65536:
        head += bytes([0x80 | 126]) + struct.pack(">H", length)
    else:
        head += bytes([0x80 | 127]) + struct.pack(">Q", length)
    return head + b"\0\0\0\0" + payload  # zero mask: payload as is


def open_socket(addr, user=None):
    host, port = addr.split(":")
    sock = socket.create_connection((host, int(port)))
    sock.sendall(
        b"GET /connection/websocket HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    answer = b""
    while b"\r\n\r\n" not in answer:
        answer += sock.recv(4096)
    if user is not None:
        connect = json.dumps({"id": 1, "connect": {"token": jwt({"sub": user})}}).encode()
        sock.sendall(frame(1, connect))
        read_frame(sock)  # the connect reply
    return sock


def recv_exact(sock, count):
    data = b""
    while len(data) < count:
        more = sock.recv(count - len(data))
        if not more:
            raise ConnectionError("closed")
        data += more
    return data


def read_frame(sock):
    """One whole server frame (opcode, payload), so later reads stay aligned on frames."""
    sock.settimeout(5)
    first, second = recv_exact(sock, 2)
    length = second & 0x7F
    if length == 126:
        length = struct.unpack(">H", recv_exact(sock, 2))[0]
    elif length == 127:
        length = struct.unpack(">Q", recv_exact(sock, 8))[0]
    return first & 0x0F, recv_exact(sock, length)


def flood(sock, chunk, pid, seconds):
    """Sends `chunk` repeatedly without reading; returns (bytes sent, peak RSS KiB, outcome)."""
    sock.setblocking(False)
    sent, peak, deadline = 0, rss_kib(pid), time.time() + seconds
    next_sample = time.time()
    outcome = f"still open after {seconds}s"
    while time.time() < deadline:
        try:
            # Partial sends continue where they stopped, so frames stay whole.
            sent += sock.send(chunk[sent % len(chunk):])
        except BlockingIOError:
            time.sleep(0.01)  # the socket is full: the node is not reading
        except OSError as error:
            outcome = f"closed by the node ({error.__class__.__name__})"
            break
        if time.time() >= next_sample:
            peak = max(peak, rss_kib(pid))
            next_sample = time.time() + 0.2
    return sent, max(peak, rss_kib(pid)), outcome


def close_code(sock):
    """The close code the node sent, if any (reads until the connection ends, bounded)."""
    sock.setblocking(True)
    sock.settimeout(3)
    data = b""
    try:
        while True:
            more = sock.recv(65536)
            if not more:
                break
            data += more
    except OSError:
        pass
    at = 0
    while at + 2 <= len(data):
        opcode, length = data[at] & 0x0F, data[at + 1] & 0x7F
        at += 2
        if length == 126:
            length = struct.unpack(">H", data[at : at + 2])[0]
            at += 2
        elif length == 127:
            length = struct.unpack(">Q", data[at : at + 8])[0]
            at += 8
        if opcode == 8 and length >= 2:
            return struct.unpack(">H", data[at : at + 2])[0]
        at += length
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gyre", default="target/release/gyre")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        config = os.path.join(tmp, "config.json")
        with open(config, "w") as out:
            json.dump(
                {
                    "http_server": {"address": "127.0.0.1", "port": 0},
                    "client": {"token": {"hmac_secret_key": SECRET}},
                    "channel": {"namespaces": [{"name": "hist", "history_size": 10, "history_ttl": "60s",
                                                "allow_subscribe_for_client": True,
                                                "allow_history_for_subscriber": True}]},
                    "log": {"level": "warn"},
                },
                out,
            )
        node = subprocess.Popen([args.gyre, "--config", config, "--log.level", os.environ.get("GYRE_LOG_LEVEL", "info")], stdout=subprocess.PIPE, text=True)
        try:
            addr = None
            for line in node.stdout:
                if "listening" in line and "addr=" in line:
                    addr = line.split("addr=")[1].split()[0]
                    break
            if addr is None:
                sys.exit("gyre did not start")
            # Keep reading its output: a full pipe would block the node's logging.
            threading.Thread(target=lambda: [None for _ in node.stdout], daemon=True).start()
            pid = node.pid
            print(f"gyre {args.gyre} pid {pid} at {addr}; idle RSS {rss_kib(pid)} KiB")
            lines = "\n".join(json.dumps({"id": n + 10, "history": {"channel": "hist:x", "limit": 0}}) for n in range(1000))
            sock = open_socket(addr, "flooder")
            sock.sendall(frame(1, json.dumps({"id": 2, "subscribe": {"channel": "hist:x"}}).encode()))
            read_frame(sock)
            before = rss_kib(pid)
            sent, peak, outcome = flood(sock, frame(1, lines.encode()), pid, args.seconds)
            print(f"commands: RSS {before} -> peak {peak} KiB; sent {sent / 1e6:.1f} MB; {outcome}; "
                  f"close code {close_code(sock)}")
            sock.close()
            for name, user in (("huge-header", "big"), ("huge-header-unauthenticated", None)):
                sock = open_socket(addr, user)
                before = rss_kib(pid)
                sock.sendall(frame(2, b"", declared=1 << 40))
                sent, peak, outcome = flood(sock, b"x" * 65536, pid, min(args.seconds, 5))
                print(f"{name}: RSS {before} -> peak {peak} KiB; sent {sent / 1e6:.1f} MB after the header; "
                      f"{outcome}; close code {close_code(sock)}")
                sock.close()
            print(f"after: RSS {rss_kib(pid)} KiB; node alive: {node.poll() is None}")
        finally:
            node.terminate()
            node.wait(10)


if __name__ == "__main__":
    main()
