#!/usr/bin/env bash
# The single test command: installs what the test suites need (if missing), builds gyre, then
# runs the Rust tests, the centrifuge-js SDK suite and the centrifuge-python/cent suite against
# the real binary, then the offline checks of the deployment files (Dockerfile, docker-compose.yml,
# k8s/), then the benchmark harness smoke test (gyre-bench unit tests + tiny fanout, idle,
# connect-rate and publish-latency runs, the last two through its proxy-backend, against the
# built gyre, no timing thresholds), then every fuzz target for FUZZ_SECONDS each
# (default 20; tests/fuzz/run.sh, nightly + cargo-fuzz), then the admin web UI: its committed
# build checked against its sources (web/admin/check.sh) and its browser tests (Debian's
# chromium driven by playwright-core on a 3-node cluster, tests/browser), then the cluster
# tests again (Rust and centrifuge-js) with every test cluster grown to five nodes
# (GYRE_CLUSTER_NODES=5: bystander nodes join each test's own). Exits non-zero if any stage
# fails; prints a summary at the end.
#
# Usage: bash tests/run.sh [rust] [js] [python] [deploy] [bench] [fuzz] [uidist] [browser]
#                          [cluster5]
#        (no argument = all nine)
# Env:   GYRE_BIN   path of the gyre binary the SDK suites start (default target/debug/gyre)
#        SKIP_INSTALL=1  do not install anything, use what is there
#        FUZZ_SECONDS    seconds per fuzz target (default 20)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

JS_DIR="tests/sdk/js"
BROWSER_DIR="tests/browser"
CHROMIUM_BIN="${CHROMIUM_BIN:-/usr/bin/chromium}"
PY_DIR="tests/sdk/python"
VENV="$PY_DIR/.venv"

STAGES=("$@")
[[ ${#STAGES[@]} -eq 0 ]] && STAGES=(rust js python deploy bench fuzz uidist browser cluster5)
want() { local s; for s in "${STAGES[@]}"; do [[ "$s" == "$1" ]] && return 0; done; return 1; }

log() { printf '\n==> %s\n' "$*"; }
die() { printf 'tests/run.sh: %s\n' "$*" >&2; exit 2; }

SUDO=""
if [[ $(id -u) -ne 0 ]] && command -v sudo >/dev/null 2>&1; then SUDO="sudo"; fi
APT_UPDATED=0
apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "need to install $*, but apt-get is not available"
  if [[ $APT_UPDATED -eq 0 ]]; then
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@"
}

hash_of() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }

# ---------------------------------------------------------------- dependencies
if [[ "${SKIP_INSTALL:-0}" != "1" ]]; then
  command -v cargo >/dev/null 2>&1 || die "cargo is required (install Rust with rustup)"

  # The cluster tests start their own nats-server processes.
  if ! command -v nats-server >/dev/null 2>&1; then
    log "installing nats-server"
    apt_install nats-server
  fi

  if want js || want uidist || want browser || want cluster5; then
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
      log "installing nodejs and npm"
      apt_install nodejs npm
    fi
    stamp="$JS_DIR/node_modules/.gyre-deps-stamp"
    want_hash="$(hash_of "$JS_DIR/package.json" "$JS_DIR/package-lock.json")"
    if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want_hash" ]]; then
      log "installing JS SDK test dependencies (npm ci)"
      npm ci --prefix "$JS_DIR" --no-audit --no-fund --loglevel=error
      echo "$want_hash" >"$stamp"
    fi
  fi

  if want browser; then
    # The browser tests use the JS suite's harness (and its centrifuge and ws packages).
    for dir in "$JS_DIR" "$BROWSER_DIR"; do
      stamp="$dir/node_modules/.gyre-deps-stamp"
      want_hash="$(hash_of "$dir/package.json" "$dir/package-lock.json")"
      if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want_hash" ]]; then
        log "installing $dir dependencies (npm ci)"
        npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
        echo "$want_hash" >"$stamp"
      fi
    done
    # Debian's chromium (playwright-core drives it; no browser download).
    if [[ ! -x "$CHROMIUM_BIN" ]]; then
      log "installing chromium"
      apt_install chromium
    fi
  fi

  if want python; then
    command -v python3 >/dev/null 2>&1 || { log "installing python3"; apt_install python3 python3-venv; }
    stamp="$VENV/.gyre-deps-stamp"
    want_hash="$(hash_of "$PY_DIR/requirements.txt")"
    if [[ ! -x "$VENV/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want_hash" ]]; then
      log "creating Python venv at $VENV"
      if ! python3 -m venv --clear "$VENV" 2>/dev/null; then
        apt_install python3-venv
        python3 -m venv --clear "$VENV"
      fi
      "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$PY_DIR/requirements.txt"
      echo "$want_hash" >"$stamp"
    fi
  fi
fi

# ---------------------------------------------------------------- build
log "cargo build"
cargo build
if [[ -z "${GYRE_BIN:-}" ]]; then
  GYRE_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/gyre"
fi
[[ -x "$GYRE_BIN" ]] || die "gyre binary not found at $GYRE_BIN after cargo build"
export GYRE_BIN

# ---------------------------------------------------------------- stages
LOGDIR="$(mktemp -d)"
trap 'rm -rf "$LOGDIR"' EXIT
NAMES=()
RESULTS=()
TIMES=()
PASSED=()
FAILED=()
OVERALL=0

# run_stage NAME COUNTER CMD... : runs CMD with output shown and saved, records status and time.
run_stage() {
  local name="$1" counter="$2"
  shift 2
  log "$name: $*"
  local start end status=0
  start=$(date +%s)
  "$@" 2>&1 | tee "$LOGDIR/$name.log" || status=$?
  end=$(date +%s)
  local counts
  counts="$("$counter" "$LOGDIR/$name.log")"
  NAMES+=("$name")
  TIMES+=("$((end - start))s")
  PASSED+=("${counts% *}")
  FAILED+=("${counts#* }")
  if [[ $status -eq 0 ]]; then RESULTS+=("ok"); else RESULTS+=("FAILED (exit $status)"); OVERALL=1; fi
}

# Counters print "PASSED FAILED" from a runner's output.
count_cargo() {
  awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed;?$/) p += $i; if ($(i+1) ~ /^failed;?$/) f += $i } }
       END { print p + 0, f + 0 }' "$1"
}
count_node() {
  # Tests cancelled because a hook failed (e.g. gyre did not start) count as failed.
  awk '/^# pass / { p = $3 } /^# fail / { f += $3 } /^# cancelled / { f += $3 } END { print p + 0, f + 0 }' "$1"
}
count_deploy() {
  # tests/deploy/validate.sh ends with "deploy checks: N passed, M failed".
  awk '/^deploy checks: [0-9]+ passed, [0-9]+ failed/ { p = $3; f = $5 } END { print p + 0, f + 0 }' "$1"
}
count_fuzz() {
  # tests/fuzz/run.sh ends with "fuzz: N passed, M failed".
  awk '/^fuzz: [0-9]+ passed, [0-9]+ failed/ { p = $2; f = $4 } END { print p + 0, f + 0 }' "$1"
}
count_uidist() {
  # web/admin/check.sh ends with "ui dist: N passed, M failed".
  awk '/^ui dist: [0-9]+ passed, [0-9]+ failed/ { p = $3; f = $5 } END { print p + 0, f + 0 }' "$1"
}
count_cargo_and_node() {
  local cargo node
  cargo="$(count_cargo "$1")"
  node="$(count_node "$1")"
  echo "$((${cargo% *} + ${node% *})) $((${cargo#* } + ${node#* }))"
}
count_pytest() {
  grep -E '(passed|failed|errors?|no tests ran).* in [0-9.]+s' "$1" | tail -n 1 |
    awk '{ for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p = $i; if ($(i+1) ~ /^(failed|errors?)/) f += $i } }
         END { print p + 0, f + 0 }'
}

# Every test that clusters nodes over NATS, each cluster grown to five nodes by bystanders
# (tests/it/support.rs NatsServer, tests/sdk/js/harness.mjs startNats). The Rust filter
# `cluster` takes the cluster*.rs modules and the cluster test of proxy.rs; uni.rs has one more.
cluster_tests_on_five_nodes() {
  local status=0
  GYRE_CLUSTER_NODES=5 cargo test --test it -- cluster uni::an_emulation_request_to_another_node || status=$?
  GYRE_CLUSTER_NODES=5 node --test --test-timeout=120000 "$JS_DIR/cluster.test.mjs" \
    "$JS_DIR/cluster_history.test.mjs" "$JS_DIR/failover.test.mjs" "$JS_DIR/slow_node.test.mjs" \
    "$JS_DIR/chaos.test.mjs" "$JS_DIR/recovery_storm.test.mjs" || status=$?
  return $status
}

if want rust; then
  run_stage rust count_cargo cargo test
fi
if want js; then
  run_stage js count_node node --test --test-timeout=60000 "$JS_DIR/"
fi
if want python; then
  run_stage python count_pytest "$VENV/bin/python" -m pytest "$PY_DIR" -q
fi
if want deploy; then
  # Installs its own tools (tests/deploy/.venv) unless SKIP_INSTALL=1.
  run_stage deploy count_deploy bash tests/deploy/validate.sh
fi
if want bench; then
  # benches/gyre-bench: its unit tests and tests/smoke.rs (starts $GYRE_BIN, runs gyre-bench;
  # the proxy runs also start gyre-bench proxy-backend).
  run_stage bench count_cargo cargo test -p gyre-bench
fi

if want fuzz; then
  # Every fuzz target for FUZZ_SECONDS (default 20) with its seeds; fails on a crash.
  run_stage fuzz count_fuzz bash tests/fuzz/run.sh "${FUZZ_SECONDS:-20}"
fi

if want uidist; then
  # The committed admin UI build (src/admin/ui/dist, embedded in the binary) matches web/admin.
  run_stage uidist count_uidist bash web/admin/check.sh
fi
if want browser; then
  # The admin web UI in chromium against a 3-node cluster; screenshots go to docs/img/admin-*.png.
  run_stage browser count_node env CHROMIUM_BIN="$CHROMIUM_BIN" node --test --test-timeout=120000 "$BROWSER_DIR/"
fi

if want cluster5; then
  run_stage cluster5 count_cargo_and_node cluster_tests_on_five_nodes
fi

# ---------------------------------------------------------------- summary
total_p=0
total_f=0
printf '\n==> summary (gyre binary: %s)\n' "$GYRE_BIN"
for i in "${!NAMES[@]}"; do
  printf '  %-8s %-20s %4s passed %4s failed  %s\n' "${NAMES[$i]}" "${RESULTS[$i]}" "${PASSED[$i]}" "${FAILED[$i]}" "${TIMES[$i]}"
  total_p=$((total_p + PASSED[i]))
  total_f=$((total_f + FAILED[i]))
done
if [[ $OVERALL -ne 0 && $total_f -eq 0 ]]; then
  # A stage failed without a failed test (crash, build or collection error): count it.
  total_f=1
fi
echo "total: $total_p passed, $total_f failed"
exit $OVERALL
