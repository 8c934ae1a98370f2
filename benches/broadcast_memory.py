#!/usr/bin/env python3
"""Memory a large `/api/broadcast` leaves behind (issue #13, defect 3).

Starts gyre (GYRE_BIN, default target/release/gyre) with a namespace `hist` (history 10, ttl
5 s), broadcasts `{"x":1}` to N channels in one call, and prints RSS per channel right after the
call and again once the history has expired and the channels are gone, for channels with history
(`hist:c0` …) and without (`c0` …).

    python3 benches/broadcast_memory.py [N]        # default 100000
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


def run(n, prefix):
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as config:
        json.dump(CONFIG, config)
    node = subprocess.Popen(
        [GYRE, "serve", "--config", config.name, "--port", str(port), "--address", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 15
        while True:
            try:
                api(port, "info", {})
                break
            except OSError:
                if time.time() > deadline:
                    raise RuntimeError("gyre did not start")
                time.sleep(0.1)
        before = rss_kib(node.pid)
        started = time.time()
        reply = api(port, "broadcast", {"channels": [f"{prefix}c{i}" for i in range(n)], "data": {"x": 1}})
        took = time.time() - started
        after = rss_kib(node.pid)
        # History expires after 5 s; the expiry tick runs every 5 s; idle channels are then dropped.
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
        os.unlink(config.name)


if __name__ == "__main__":
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 100_000
    run(count, "hist:")
    run(count, "")
