#!/usr/bin/env python3
"""Control-plane traffic of an idle gyre cluster, per node, for several cluster sizes.

Starts its own nats-server (JetStream, monitoring port) on free loopback ports and N gyre nodes
(`broker.type: nats`, no clients), lets them settle, then reads nats-server's /connz twice
`--window` seconds apart: the messages and bytes each node's NATS connection sent and received
per second. With nothing published, that is heartbeats and cluster bookkeeping only.

Usage: python3 benches/control_plane.py [--gyre target/release/gyre] [--sizes 2,3,5]
                                        [--settle 8] [--window 15]
Prints a Markdown table (for docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connz(monitor: int) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{monitor}/connz?subs=0", timeout=5) as r:
        return {c["cid"]: c for c in json.load(r)["connections"]}


def wait_for(what: str, check, timeout: float = 15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    sys.exit(f"control_plane.py: {what} did not happen within {timeout}s")


def measure(gyre: str, size: int, settle: float, window: float) -> dict:
    work = tempfile.mkdtemp(prefix="gyre-cp-")
    port, monitor = free_port(), free_port()
    nats = subprocess.Popen(
        ["nats-server", "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor), "-js", "-sd", work],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    nodes = []
    try:
        wait_for("nats-server monitoring", lambda: _try(lambda: connz(monitor) is not None))
        for i in range(size):
            config = os.path.join(work, f"n{i}.json")
            with open(config, "w") as f:
                json.dump({
                    "node": {"name": f"n{i}"},
                    "http_server": {"address": "127.0.0.1", "port": free_port()},
                    "broker": {"enabled": True, "type": "nats", "nats": {"url": f"nats://127.0.0.1:{port}"}},
                    "log": {"level": "warn"},
                }, f)
            nodes.append(subprocess.Popen([gyre, "-c", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(f"{size} NATS connections", lambda: len(connz(monitor)) >= size)
        time.sleep(settle)  # the measured window starts once start-up traffic is over
        before = connz(monitor)
        time.sleep(window)
        after = connz(monitor)
        per_node = []
        for cid, c in after.items():
            b = before.get(cid)
            if b is None:
                continue
            per_node.append({
                # NATS counts from the server's side: in = what the node sent, out = what it got.
                "sent": (c["in_msgs"] - b["in_msgs"]) / window,
                "received": (c["out_msgs"] - b["out_msgs"]) / window,
                "bytes": (c["in_bytes"] - b["in_bytes"] + c["out_bytes"] - b["out_bytes"]) / window,
            })
        avg = {k: sum(n[k] for n in per_node) / len(per_node) for k in ("sent", "received", "bytes")}
        avg["nodes"] = size
        avg["connections"] = len(per_node)
        return avg
    finally:
        for node in nodes:
            node.terminate()
        for node in nodes:
            try:
                node.wait(5)
            except subprocess.TimeoutExpired:
                node.kill()
        nats.terminate()
        nats.wait(5)


def _try(f):
    try:
        return f()
    except OSError:
        return False


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--gyre", default="target/release/gyre")
    parser.add_argument("--sizes", default="2,3,5")
    parser.add_argument("--settle", type=float, default=8.0)
    parser.add_argument("--window", type=float, default=15.0)
    args = parser.parse_args()
    print("| nodes | NATS connections | msgs/s sent per node | msgs/s received per node | bytes/s per node |")
    print("|---|---|---|---|---|")
    for size in (int(s) for s in args.sizes.split(",")):
        r = measure(args.gyre, size, args.settle, args.window)
        print(f"| {size} | {r['connections']} | {r['sent']:.2f} | {r['received']:.2f} | {r['bytes']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
