#!/usr/bin/env python3
"""Memory a large `/api/broadcast` leaves behind (issue #13, defect 3).

Starts gyre (GYRE_BIN, default target/release/gyre) with a namespace `hist` (history 10, ttl
5 s), broadcasts `{"x":1}` to N channels in one call, and prints RSS per channel right after the
call and again once the history has expired and the channels are gone, for channels with history
(`hist:c0` …) and without (`c0` …).

    python3 benches/broadcast_memory.py [N]             # default 100000
    python3 benches/broadcast_memory.py N --rounds R    # R broadcasts of N new `hist:` channels,
                                                        # 15 s apart, on one node: RSS per round
"""

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GYRE = os.environ.get("GYRE_BIN", os.path.join(ROOT, "target", "release", "gyre"))
CONFIG = {
    "client": {"token": {"hmac_secret_key": "bench-secret"}},
    "http_api": {"key": "bench-key"},
    "channel": {"namespaces": [{"name": "hist", "history_size": 10, "history_ttl": "5s"}]},
    "log": {"level": "warn"},
}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def api(port, method, body):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/{method}", data=json.dumps(body).encode(), headers={"X-API-Key": "bench-key"}
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        return response.read()


def start_node():
    """A gyre node on a free port, answering; returns (process, port, config path)."""
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as config:
        json.dump(CONFIG, config)
    node = subprocess.Popen(
        [GYRE, "serve", "--config", config.name, "--port", str(port), "--address", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 15
    while True:
        try:
            api(port, "info", {})
            return node, port, config.name
        except OSError:
            if time.time() > deadline:
                node.terminate()
                raise RuntimeError("gyre did not start")
            time.sleep(0.1)


def run(n, prefix):
    node, port, config = start_node()
    try:
        before = rss_kib(node.pid)
        started = time.time()
        reply = api(port, "broadcast", {"channels": [f"{prefix}c{i}" for i in range(n)], "data": {"x": 1}})
        took = time.time() - started
        after = rss_kib(node.pid)
        # History expires after 5 s (parked history is expired each second), then only positions stay.
        time.sleep(15)
        later = rss_kib(node.pid)
        per = lambda kib: (kib - before) * 1024 / n
        print(
            f"{prefix or '(no namespace)':>14} N={n}: broadcast {took:.1f} s, response {len(reply):,} B; "
            f"RSS {before:,} KiB -> {after:,} KiB (+{per(after):,.0f} B/channel), "
            f"15 s later {later:,} KiB (+{per(later):,.0f} B/channel)"
        )
    finally:
        node.terminate()
        node.wait()
        os.unlink(config)


def rounds(n, count):
    node, port, config = start_node()
    try:
        print(f"start: RSS {rss_kib(node.pid):,} KiB")
        for r in range(count):
            api(port, "broadcast", {"channels": [f"hist:r{r}c{i}" for i in range(n)], "data": {"x": 1}})
            after = rss_kib(node.pid)
            time.sleep(15)
            print(f"round {r + 1}: {n:,} new channels; RSS {after:,} KiB after, {rss_kib(node.pid):,} KiB 15 s later")
    finally:
        node.terminate()
        node.wait()
        os.unlink(config)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    if "--rounds" in sys.argv:
        rounds(count, int(sys.argv[sys.argv.index("--rounds") + 1]))
    else:
        run(count, "hist:")
        run(count, "")
