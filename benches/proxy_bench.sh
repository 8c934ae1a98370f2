#!/usr/bin/env bash
# gyre's backend proxies under load (gyre only: the Go peer has no proxies). One gyre node pinned
# to CPU 0 with a connect proxy and a publish proxy pointing at `gyre-bench proxy-backend`; the
# backend and the loader (gyre-bench) share CPU 1. Two runs, each against a fresh node:
#   connect-rate     CONNS connects per round, ≤ CONCURRENCY in flight, ROUNDS rounds of
#                    (HS256 JWT, then no token = connect proxy); connects/s, p50/p99, CPU/connect
#   publish-latency  client publish commands at RATE/s into namespace `plain`
#                    (allow_publish_for_client) and `proxied` (publish_proxy_enabled), ROUNDS
#                    interleaved steps each: reply time and publish → subscriber latency
#
# Usage: bash benches/proxy_bench.sh [--quick] [--out DIR] [--no-build] [--scenarios connect-rate,publish-latency]
# Sizes (environment, defaults in brackets; --quick: 500 connects, 2 rounds, 3 s steps):
#   CONNS [5000]  CONCURRENCY [50]  ROUNDS [3]  RATE [200]  STEP_SECS [10]  WARMUP_SECS [2]
#   SUBSCRIBERS [1]  PIN [1] (0: no taskset)  GYRE_BIN [target/release/gyre]  GYRE_REV (describes GYRE_BIN)
# Output: DIR (default target/bench-report-proxy): gyre-connect-rate.{json,md},
# gyre-publish-latency.{json,md}, machine.txt, backend.log.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET/bench-report-proxy"
SCENARIOS="connect-rate,publish-latency"
BUILD=1
QUICK=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --out) OUT="$2"; shift ;;
    --no-build) BUILD=0 ;;
    --scenarios) SCENARIOS="$2"; shift ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "proxy_bench.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
if [[ $QUICK -eq 1 ]]; then
  : "${CONNS:=500}" "${ROUNDS:=2}" "${STEP_SECS:=3}" "${WARMUP_SECS:=1}"
fi
: "${CONNS:=5000}" "${CONCURRENCY:=50}" "${ROUNDS:=3}" "${RATE:=200}" "${STEP_SECS:=10}" "${WARMUP_SECS:=2}"
: "${SUBSCRIBERS:=1}" "${PIN:=1}"
SECRET="bench-secret"
log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'proxy_bench.sh: %s\n' "$*" >&2; exit 1; }
has() { [[ ",$2," == *",$1,"* ]]; }
# Pinning prefixes (taskset execs the command, so $! is the server's own PID).
CPU0=()
CPU1=()
if [[ "$PIN" == 1 ]]; then CPU0=(taskset -c 0); CPU1=(taskset -c 1); fi

if [[ $BUILD -eq 1 ]]; then
  log "building gyre and gyre-bench (release)"
  cargo build --release --bin gyre
  cargo build --release -p gyre-bench
fi
GYRE="${GYRE_BIN:-$TARGET/release/gyre}"
BENCH="$TARGET/release/gyre-bench"
[[ -x "$GYRE" && -x "$BENCH" ]] || die "missing $GYRE or $BENCH (run without --no-build)"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
mkdir -p "$OUT"

source "$ROOT/benches/ports.sh"

{
  # GYRE_REV describes a binary built elsewhere (GYRE_BIN), e.g. from a clean checkout of a commit.
  echo "gyre: ${GYRE_REV:-working tree of $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD -- src 2>/dev/null || echo ' (+ uncommitted changes under src/)')}"
  echo "gyre binary: $GYRE ($(stat -c %y "$GYRE" | cut -d. -f1))"
  echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "kernel: $(uname -r); fd limit: $(ulimit -n); pinning: $([[ "$PIN" == 1 ]] && echo 'gyre CPU 0, backend + loader CPU 1' || echo none)"
  echo "start: $(date -u +%FT%TZ) load average: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.txt"
note_load() { echo "$(date -u +%T) $1: load average $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"; }

# The backend: one process for every run (it keeps no state but a call counter).
BACKEND_PORT="$(free_port)"
"${CPU1[@]}" "$BENCH" proxy-backend --port "$BACKEND_PORT" --max-duration 3600 >"$WORK/backend.out" 2>"$OUT/backend.log" &
BACKEND_PID=$!
PIDS+=("$BACKEND_PID")
wait_port "$BACKEND_PORT"
BACKEND="http://127.0.0.1:$BACKEND_PORT"

# start_gyre: a fresh node pinned to CPU 0 on a free port; sets GYRE_PID and ADDR.
start_gyre() {
  local port
  port="$(free_port)"
  cat >"$WORK/gyre-$port.json" <<EOF
{"client":{"token":{"hmac_secret_key":"$SECRET"},
   "proxy":{"connect":{"enabled":true,"endpoint":"$BACKEND/connect","timeout":"5s"}}},
 "http_api":{"key":"bench-key"},
 "channel":{"proxy":{"publish":{"endpoint":"$BACKEND/publish","timeout":"5s"}},
   "without_namespace":{"allow_subscribe_for_client":true},
   "namespaces":[
     {"name":"plain","allow_subscribe_for_client":true,"allow_publish_for_client":true},
     {"name":"proxied","allow_subscribe_for_client":true,"publish_proxy_enabled":true}]},
 "log":{"level":"warn"}}
EOF
  cp "$WORK/gyre-$port.json" "$OUT/gyre-config.json"
  "${CPU0[@]}" "$GYRE" serve --config "$WORK/gyre-$port.json" --port "$port" --address 127.0.0.1 \
    >"$WORK/gyre-$port.log" 2>&1 &
  GYRE_PID=$!
  PIDS+=("$GYRE_PID")
  wait_port "$port"
  ADDR="127.0.0.1:$port"
}
stop_gyre() {
  kill "$GYRE_PID" 2>/dev/null || true
  wait "$GYRE_PID" 2>/dev/null || true
}
bench() { # bench SCENARIO ARGS...
  local scenario="$1"
  shift
  "${CPU1[@]}" "$BENCH" "$scenario" --addr "$ADDR" --server-pid "$GYRE_PID" --backend-pid "$BACKEND_PID" \
    --label gyre --out "$OUT" --secret "$SECRET" --max-duration 900 "$@"
}

if has connect-rate "$SCENARIOS"; then
  start_gyre
  note_load connect-rate
  log "connect-rate: $ROUNDS rounds × (jwt, tokenless) × $CONNS connects, ≤ $CONCURRENCY in flight"
  bench connect-rate --auth jwt,tokenless --conns "$CONNS" --rounds "$ROUNDS" \
    --connect-concurrency "$CONCURRENCY" --connect-rate 1000000
  stop_gyre
fi
if has publish-latency "$SCENARIOS"; then
  start_gyre
  note_load publish-latency
  log "publish-latency: $RATE/s, $ROUNDS rounds × (plain, proxied), $STEP_SECS s steps"
  bench publish-latency --namespaces plain,proxied --rate "$RATE" --rounds "$ROUNDS" \
    --subscribers "$SUBSCRIBERS" --step-secs "$STEP_SECS" --warmup-secs "$WARMUP_SECS"
  stop_gyre
fi
note_load end
log "reports in $OUT"
