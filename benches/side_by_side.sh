#!/usr/bin/env bash
# gyre and the Go centrifuge 0.15 peer (benches/peer), side by side: same loader (gyre-bench),
# same parameters, same machine. Each scenario gets a fresh server process per server; the
# server is pinned to CPU 0 (taskset -c 0), the loader to CPU 1.
#
# Usage: bash benches/side_by_side.sh [--quick] [--scenarios idle,fanout,channels,cluster,history]
#                                     [--servers gyre,peer] [--out DIR] [--no-install] [--no-build]
# Sizes (environment, defaults in brackets; --quick shrinks them for a ~2 minute run):
#   IDLE_CONNS ["10000 19500"]  IDLE_HOLD [60]  (gyre pings every 25 s: 60 s spans two pings)
#   BURST_CONNS [10000]  (connect+subscribe rate unthrottled: --connect-rate 100000; "" = skip)
#   FANOUT_SUBS [1,100,1000,10000]  FANOUT_RATES [per-N defaults of gyre-bench]
#   STEP_SECS [10]  WARMUP_SECS [2]  PUBLISHERS [8]
#   CHANNELS_CONNS [10000]  CHANNELS_RATES [1000,5000]  BROADCAST_RATES [10000]  BATCH [100]
#   CLUSTER_SUBS [100]  CLUSTER_RATES [100,1000]  HISTORY_CHANNELS [100]  HISTORY_RATES [0 = max]
#   ENCODING [json]  (protobuf: both servers' Protobuf protocol, gyre-bench --protocol v2pb / v1pb)
#   TRANSPORT [websocket]  (http_stream or sse: gyre's emulated HTTP transports; gyre only)
# Output: DIR (default target/bench-report): gyre/ and peer/ reports, combined.md and
# combined.json (ratios gyre/peer), fanout-latency.png and idle-rss.png.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
OUT="$TARGET/bench-report"
SCENARIOS="idle,fanout,channels,cluster,history"
SERVERS="gyre,peer"
INSTALL=1
BUILD=1
QUICK=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --scenarios) SCENARIOS="$2"; shift ;;
    --servers) SERVERS="$2"; shift ;;
    --out) OUT="$2"; shift ;;
    --no-install) INSTALL=0 ;;
    --no-build) BUILD=0 ;;
    -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
    *) echo "side_by_side.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done

if [[ $QUICK -eq 1 ]]; then
  : "${IDLE_CONNS:=1000}" "${IDLE_HOLD:=5}" "${BURST_CONNS:=1000}" "${FANOUT_SUBS:=1,100}" "${STEP_SECS:=3}" "${WARMUP_SECS:=1}"
  : "${CHANNELS_CONNS:=500}" "${CHANNELS_RATES:=500}" "${BROADCAST_RATES:=2000}" "${CLUSTER_SUBS:=20}"
  : "${CLUSTER_RATES:=100}"
fi
: "${IDLE_CONNS:=10000 19500}" "${IDLE_HOLD:=60}" "${BURST_CONNS=10000}" "${FANOUT_SUBS:=1,100,1000,10000}" "${FANOUT_RATES:=}"
: "${STEP_SECS:=10}" "${WARMUP_SECS:=2}" "${PUBLISHERS:=8}"
: "${CHANNELS_CONNS:=10000}" "${CHANNELS_RATES:=1000,5000}" "${BROADCAST_RATES:=10000}" "${BATCH:=100}"
: "${CLUSTER_SUBS:=100}" "${CLUSTER_RATES:=100,1000}" "${HISTORY_CHANNELS:=100}" "${HISTORY_RATES:=0}"

SECRET="bench-secret"
API_KEY="bench-key"
log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'side_by_side.sh: %s\n' "$*" >&2; exit 1; }
has() { [[ ",$2," == *",$1,"* ]]; }

# ---------------------------------------------------------------- install and build
install_deps() {
  local missing=()
  command -v go >/dev/null || missing+=(golang-go)
  [[ -d /usr/share/gocode/src/github.com/centrifugal/centrifuge ]] || missing+=(golang-github-centrifugal-centrifuge-dev)
  [[ -d /usr/share/gocode/src/github.com/centrifugal/protocol ]] || missing+=(golang-github-centrifugal-protocol-dev)
  [[ -d /usr/share/gocode/src/github.com/igm/sockjs-go ]] || missing+=(golang-github-igm-sockjs-go-dev)
  [[ -d /usr/share/gocode/src/github.com/mna/redisc ]] || missing+=(golang-github-mna-redisc-dev)
  [[ -d /usr/share/gocode/src/github.com/FZambia/eagle ]] || missing+=(golang-github-fzambia-eagle-dev)
  [[ -d /usr/share/gocode/src/github.com/nats-io/nats.go ]] || missing+=(golang-github-nats-io-go-nats-dev)
  command -v nats-server >/dev/null || missing+=(nats-server)
  command -v gnuplot >/dev/null || missing+=(gnuplot-nox)
  command -v taskset >/dev/null || missing+=(util-linux)
  if [[ ${#missing[@]} -gt 0 ]]; then
    log "installing ${missing[*]}"
    local sudo=""
    [[ $(id -u) -ne 0 ]] && sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
  fi
}

build_all() {
  log "building gyre and gyre-bench (release) and the Go peer"
  # Two invocations, so gyre is built with its own feature set (no unification with the loader).
  cargo build --release --bin gyre
  cargo build --release -p gyre-bench
  if has peer "$SERVERS"; then bash benches/peer/build.sh >/dev/null; fi
}

[[ $INSTALL -eq 1 ]] && install_deps
[[ $BUILD -eq 1 ]] && build_all
GYRE="$TARGET/release/gyre"
BENCH="$TARGET/release/gyre-bench"
PEER="$TARGET/peer/bin/peer"
[[ -x "$BENCH" ]] || die "missing $BENCH (run without --no-build)"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  local pid
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
rm -rf "$OUT/gyre" "$OUT/peer"
mkdir -p "$OUT/gyre" "$OUT/peer"
{
  echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "cpus: $(nproc) ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)), memory: $(free -g | awk '/Mem:/ {print $2}') GiB"
  echo "kernel: $(uname -r); rustc: $(rustc --version 2>/dev/null); go: $(go version 2>/dev/null)"
  echo "fd limit: $(ulimit -n); server: taskset -c 0, loader: taskset -c 1"
  echo "start: $(date -u +%FT%TZ) load average: $(cut -d' ' -f1-3 /proc/loadavg)"
} >"$OUT/machine.txt"
note_load() { echo "$(date -u +%T) $1: load average $(cut -d' ' -f1-3 /proc/loadavg)" >>"$OUT/machine.txt"; }

# ---------------------------------------------------------------- servers
source "$ROOT/benches/ports.sh"

# gyre_config FILE [NATS_URL]
gyre_config() {
  local broker=""
  [[ -n "${2:-}" ]] && broker=",\"broker\":{\"enabled\":true,\"type\":\"nats\",\"nats\":{\"url\":\"$2\"}}"
  cat >"$1" <<EOF
{"client":{"token":{"hmac_secret_key":"$SECRET"}},"http_api":{"key":"$API_KEY"},
 "channel":{"without_namespace":{"allow_subscribe_for_client":true},
   "namespaces":[{"name":"hist","history_size":100,"history_ttl":"300s","allow_subscribe_for_client":true}]},
 "http_stream":{"enabled":true},"sse":{"enabled":true},
 "log":{"level":"warn"}$broker}
EOF
}

# start_server KIND PORT [NATS_URL]: starts gyre or the peer pinned to CPU 0; sets SERVER_PID.
start_server() {
  local kind="$1" port="$2" nats="${3:-}"
  case "$kind" in
    gyre)
      gyre_config "$WORK/gyre-$port.json" "$nats"
      taskset -c 0 "$GYRE" serve --config "$WORK/gyre-$port.json" --port "$port" --address 127.0.0.1 \
        >"$WORK/gyre-$port.log" 2>&1 &
      ;;
    peer)
      local args=(-addr "127.0.0.1:$port" -secret "$SECRET" -api_key "$API_KEY")
      [[ -n "$nats" ]] && args+=(-nats "$nats")
      taskset -c 0 "$PEER" "${args[@]}" >"$WORK/peer-$port.log" 2>&1 &
      ;;
  esac
  SERVER_PID=$!
  PIDS+=("$SERVER_PID")
  wait_port "$port"
}

stop_pid() {
  kill "$1" 2>/dev/null || true
  wait "$1" 2>/dev/null || true
}

# start_nats: nats-server with JetStream on a free port, pinned to CPU 0; sets NATS_URL, NATS_PID.
start_nats() {
  local port
  port="$(free_port)"
  taskset -c 0 nats-server -a 127.0.0.1 -p "$port" -js -sd "$WORK/js-$port" >"$WORK/nats-$port.log" 2>&1 &
  NATS_PID=$!
  PIDS+=("$NATS_PID")
  wait_port "$port"
  NATS_URL="nats://127.0.0.1:$port"
}

# bench KIND SCENARIO ARGS...: runs gyre-bench pinned to CPU 1 against the running server.
bench() {
  local kind="$1" scenario="$2"
  shift 2
  local protocol=v2
  [[ "$kind" == peer ]] && protocol=v1
  # ENCODING=protobuf: both servers' Protobuf encodings (binary frames, ?format=protobuf).
  [[ "${ENCODING:-json}" == protobuf ]] && protocol="${protocol}pb"
  local transport="${TRANSPORT:-websocket}"
  [[ "$transport" != websocket && "$kind" != gyre ]] && die "TRANSPORT=$transport: the peer serves WebSocket only"
  taskset -c 1 "$BENCH" "$scenario" --protocol "$protocol" --transport "$transport" --label "$kind" --out "$OUT/$kind" \
    --secret "$SECRET" --api-key "$API_KEY" --publishers "$PUBLISHERS" \
    --step-secs "$STEP_SECS" --warmup-secs "$WARMUP_SECS" "$@"
}

# ---------------------------------------------------------------- scenarios
run_single() { # KIND SCENARIO ARGS...: fresh server, one gyre-bench run, server stopped
  local kind="$1" port
  port="$(free_port)"
  start_server "$kind" "$port"
  log "$2 on $kind (pid $SERVER_PID, port $port)"
  note_load "$kind $2"
  bench "$@" --addr "127.0.0.1:$port" --server-pid "$SERVER_PID"
  stop_pid "$SERVER_PID"
}

run_cluster() { # KIND: nats-server + two nodes; publish on A, subscribers on A then on B
  local kind="$1" port_a port_b pid_a pid_b
  start_nats
  port_a="$(free_port)"
  start_server "$kind" "$port_a" "$NATS_URL"
  pid_a=$SERVER_PID
  port_b="$(free_port)"
  start_server "$kind" "$port_b" "$NATS_URL"
  pid_b=$SERVER_PID
  log "cluster on $kind (nodes $pid_a, $pid_b; $NATS_URL)"
  note_load "$kind cluster"
  # CPU is summed over both nodes and nats-server: the cross-node phase delivers on node B.
  bench "$kind" cluster --addr "127.0.0.1:$port_a" --addr2 "127.0.0.1:$port_b" \
    --server-pid "$pid_a,$pid_b,$NATS_PID" \
    --subscribers "$CLUSTER_SUBS" --rates "$CLUSTER_RATES"
  stop_pid "$pid_a"
  stop_pid "$pid_b"
  stop_pid "$NATS_PID"
}

IFS=',' read -r -a server_list <<<"$SERVERS"
for kind in "${server_list[@]}"; do
  [[ "$kind" == gyre || "$kind" == peer ]] || die "unknown server $kind (gyre or peer)"
done
fanout_rates=()
[[ -n "$FANOUT_RATES" ]] && fanout_rates=(--rates "$FANOUT_RATES")

# Scenario by scenario, each server in turn, so both see the machine in the same state.
if has idle "$SCENARIOS"; then
  for conns in $IDLE_CONNS; do
    for kind in "${server_list[@]}"; do
      run_single "$kind" idle --conns "$conns" --hold-secs "$IDLE_HOLD" --tag "$conns"
    done
  done
  if [[ -n "$BURST_CONNS" ]]; then
    for kind in "${server_list[@]}"; do
      run_single "$kind" idle --conns "$BURST_CONNS" --hold-secs 2 --connect-rate 100000 --tag "burst$BURST_CONNS"
    done
  fi
fi
for kind in "${server_list[@]}"; do
  if has fanout "$SCENARIOS"; then
    run_single "$kind" fanout --subscribers "$FANOUT_SUBS" "${fanout_rates[@]}"
  fi
done
for kind in "${server_list[@]}"; do
  if has channels "$SCENARIOS"; then
    run_single "$kind" channels --conns "$CHANNELS_CONNS" --rates "$CHANNELS_RATES" \
      --broadcast-rates "$BROADCAST_RATES" --batch "$BATCH"
  fi
done
for kind in "${server_list[@]}"; do
  if has history "$SCENARIOS"; then
    run_single "$kind" history --channels "$HISTORY_CHANNELS" --rates "$HISTORY_RATES"
  fi
done
for kind in "${server_list[@]}"; do
  if has cluster "$SCENARIOS"; then
    run_cluster "$kind"
  fi
done

# ---------------------------------------------------------------- combined report and plots
if [[ ${#server_list[@]} -eq 2 ]]; then
  a="${server_list[0]}"
  b="${server_list[1]}"
  log "combined report: $OUT/combined.md"
  "$BENCH" compare "$OUT/$a" "$OUT/$b" --out "$OUT"
  if command -v gnuplot >/dev/null; then
    na=$(grep -c '^N=' "$OUT/fanout-$a.dat" || true)
    nb=$(grep -c '^N=' "$OUT/fanout-$b.dat" || true)
    if [[ $na -gt 0 && $nb -gt 0 ]]; then
      gnuplot -e "dir='$OUT'; a='$a'; b='$b'; na=$na; nb=$nb" benches/plots.gp || log "gnuplot failed"
      log "plots: $OUT/fanout-latency.png $OUT/idle-rss.png"
    fi
  fi
fi
