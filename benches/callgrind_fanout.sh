#!/usr/bin/env bash
# Deterministic instructions per delivery for the in-process fan-out bench (benches/fanout.rs).
#
# Builds the release bench, runs it under `valgrind --tool=callgrind` twice with the same
# subscriber count and a small and a large publication count (one round each), and prints
#
#     (Ir_large - Ir_small) / (deliveries_large - deliveries_small)
#
# Everything both runs share (process and actix start-up, spawning and joining the sinks)
# cancels out; what remains is the steady-state cost of one delivery, including its share of
# the per-publication work (encode once, one Broadcast message) at this subscriber count.
#
# Usage: bash benches/callgrind_fanout.sh [subscribers] [small_publications] [large_publications]
#        (defaults 1000 20 200). KEEP=1 keeps the callgrind output files and prints their path.
#        PACED=1 passes --paced: one publication at a time, so every subscriber is woken per frame.
set -euo pipefail
cd "$(dirname "$0")/.."

subscribers=${1:-1000}
small=${2:-20}
large=${3:-200}
if [ "$large" -le "$small" ]; then
  echo "large_publications ($large) must exceed small_publications ($small)" >&2
  exit 2
fi
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 2; }

bin=$(cargo bench --bench fanout --no-run --message-format=json 2>/dev/null \
  | grep -o '"executable":"[^"]*/fanout-[^"]*"' | tail -n 1 | cut -d'"' -f4)
[ -x "$bin" ] || { echo "could not build or find the fanout bench binary" >&2; exit 1; }

out=$(mktemp -d)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$out"' EXIT

# total Ir from a callgrind output file: the `totals:` line (or `summary:` in older formats)
instructions() {
  local ir
  ir=$(grep -E '^totals:' "$1" | tail -n 1 | awk '{print $2}')
  [ -n "$ir" ] || ir=$(grep -E '^summary:' "$1" | tail -n 1 | awk '{print $2}')
  echo "$ir"
}

run() { # name publications -> sets ir_<name>, deliveries_<name>
  local name=$1 publications=$2 log
  log="$out/$name.log"
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$name" "$bin" "$subscribers" "$publications" 1 $paced \
    >"$log" 2>"$out/$name.valgrind"
  printf -v "ir_$name" '%s' "$(instructions "$out/cg.$name")"
  printf -v "deliveries_$name" '%s' "$(sed -n 's/^total deliveries: //p' "$log")"
}

paced=""
[ "${PACED:-0}" = 1 ] && paced="--paced"
# WRITE=session|codec: the sinks also hand each frame to a writer (see benches/fanout.rs).
[ -n "${WRITE:-}" ] && paced="$paced --write $WRITE"
echo "binary: $bin"
echo "callgrind: $subscribers subscribers, $small and $large publications ${paced}"
run small "$small"
run large "$large"

python3 - "$ir_small" "$ir_large" "$deliveries_small" "$deliveries_large" <<'PY'
import sys
ir_s, ir_l, d_s, d_l = map(int, sys.argv[1:])
print(f"small: {ir_s:>15,} Ir for {d_s:>9,} deliveries")
print(f"large: {ir_l:>15,} Ir for {d_l:>9,} deliveries")
print(f"instructions per delivery: {(ir_l - ir_s) / (d_l - d_s):.1f}"
      f"  (whole large run, start-up included: {ir_l / d_l:.1f})")
PY
if [ "${KEEP:-0}" = 1 ]; then
  echo "callgrind files kept in $out (callgrind_annotate $out/cg.large | head -40)"
fi
