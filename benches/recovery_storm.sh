#!/usr/bin/env bash
# Recovery storm (issue #17, item 3): three release gyre nodes on one fresh nats-server with
# JetStream, gyre-bench `storm` clients spread over them with recovery, publications through
# node a, node c killed with SIGKILL. Prints gyre-bench's report (time until every client of
# node c is subscribed again with `recovered: true`, JetStream API calls, loss and repeats).
#
# Usage: bash benches/recovery_storm.sh [--no-build]
# Sizes (environment, defaults in brackets):
#   STORM_CLIENTS [10000]  STORM_CHANNELS [1000]  STORM_RATE [1000 publications/s]
#   STORM_AFFINITY [0]  (1: a channel's clients all on one node, so recoveries read JetStream)
#   RECONNECT_MIN_MS [500]  RECONNECT_MAX_MS [20000]  (the SDKs' defaults; 0 = at once)
#   NATS_SERVER_BIN [nats-server]  OUT [target/bench-report/storm]
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
BUILD=1
[[ "${1:-}" == "--no-build" ]] && BUILD=0
: "${STORM_CLIENTS:=10000}" "${STORM_CHANNELS:=1000}" "${STORM_RATE:=1000}"
: "${STORM_AFFINITY:=0}" "${RECONNECT_MIN_MS:=500}" "${RECONNECT_MAX_MS:=20000}"
: "${NATS_SERVER_BIN:=nats-server}" "${OUT:=$TARGET/bench-report/storm}"
SECRET="bench-secret"
API_KEY="bench-key"

log() { printf '\n==> %s\n' "$*" >&2; }
die() { printf 'recovery_storm.sh: %s\n' "$*" >&2; exit 1; }

if [[ $BUILD -eq 1 ]]; then
  log "cargo build --release (gyre, gyre-bench)"
  cargo build --release -p gyre -p gyre-bench >&2
fi
GYRE="$TARGET/release/gyre"
BENCH="$TARGET/release/gyre-bench"
[[ -x "$GYRE" && -x "$BENCH" ]] || die "release binaries missing in $TARGET/release (run without --no-build)"

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

source "$ROOT/benches/ports.sh"

nats_port="$(free_port)"
monitor_port="$(free_port)"
"$NATS_SERVER_BIN" -a 127.0.0.1 -p "$nats_port" -m "$monitor_port" -js -sd "$WORK/js" >"$WORK/nats.log" 2>&1 &
NATS_PID=$!
PIDS+=("$NATS_PID")
wait_port "$nats_port"
wait_port "$monitor_port"

cat >"$WORK/gyre.json" <<EOF
{"client":{"token":{"hmac_secret_key":"$SECRET"}},"http_api":{"key":"$API_KEY"},
 "channel":{"namespaces":[{"name":"chat","history_size":100,"history_ttl":"300s","force_recovery":true,
   "allow_subscribe_for_client":true}]},
 "broker":{"enabled":true,"type":"nats","nats":{"url":"nats://127.0.0.1:$nats_port"}},
 "log":{"level":"warn"}}
EOF

declare -A NODE_PID NODE_PORT
for name in a b c; do
  port="$(free_port)"
  CENTRIFUGO_NODE_NAME="$name" "$GYRE" serve --config "$WORK/gyre.json" --port "$port" --address 127.0.0.1 \
    >"$WORK/gyre-$name.log" 2>&1 &
  NODE_PID[$name]=$!
  NODE_PORT[$name]=$port
  PIDS+=("$!")
  wait_port "$port"
done

# Membership rides on heartbeats: wait until node a lists all three (bounded).
for i in $(seq 1 150); do
  count="$(curl -sf -H "X-API-Key: $API_KEY" -d '{}' "http://127.0.0.1:${NODE_PORT[a]}/api/info" |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["result"]["nodes"]))' 2>/dev/null || echo 0)"
  [[ "$count" == 3 ]] && break
  [[ $i -eq 150 ]] && die "node a never listed three nodes (logs in $WORK)"
  sleep 0.1
done

log "storm: $STORM_CLIENTS clients, $STORM_CHANNELS channels, $STORM_RATE/s; killing node c (pid ${NODE_PID[c]})"
"$BENCH" storm --label gyre --out "$OUT" --secret "$SECRET" --api-key "$API_KEY" \
  --nodes "127.0.0.1:${NODE_PORT[a]},127.0.0.1:${NODE_PORT[b]},127.0.0.1:${NODE_PORT[c]}" \
  --victim 2 --victim-pid "${NODE_PID[c]}" --server-pid "${NODE_PID[a]},${NODE_PID[b]},$NATS_PID" \
  --nats-monitor "127.0.0.1:$monitor_port" --clients "$STORM_CLIENTS" --channels "$STORM_CHANNELS" \
  --rate "$STORM_RATE" --reconnect-min-ms "$RECONNECT_MIN_MS" --reconnect-max-ms "$RECONNECT_MAX_MS" \
  --publishers 16 --workers 1 $([[ "$STORM_AFFINITY" == 1 ]] && echo --affinity)
