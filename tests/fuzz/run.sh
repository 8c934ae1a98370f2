#!/usr/bin/env bash
# Runs every fuzz target for a bounded time with its seed corpus (tests/fuzz/seeds/TARGET, from
# the tests) plus the corpus it grows (tests/fuzz/corpus/TARGET, git-ignored). Fails on the first
# crash; the crashing input is kept in tests/fuzz/artifacts/TARGET/.
#
# Usage: bash tests/fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]   (default 20 s, every target)
# Env:   FUZZ_BUILD  cargo-fuzz build flags; default "--dev -s none": an unoptimized build without
#        AddressSanitizer compiles in half the time for CI's short runs (gyre forbids unsafe code,
#        so the sanitizer finds little a panic would not). Long runs use FUZZ_BUILD=" " (cargo-fuzz's
#        default: optimized, debug assertions, AddressSanitizer); docs/reliability.md records them.
# Needs the nightly toolchain (rustup) and cargo-fuzz (installed from crates.io if missing).
# Ends with "fuzz: N passed, M failed".
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
SECONDS_PER_TARGET="${1:-20}"
shift || true
FUZZ_DIR=tests/fuzz
read -r -a BUILD_FLAGS <<<"${FUZZ_BUILD:---dev -s none}"

if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "tests/fuzz/run.sh: the nightly toolchain is missing (rustup toolchain install nightly)" >&2
  echo "fuzz: 0 passed, 1 failed"
  exit 1
fi
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked --quiet || { echo "fuzz: 0 passed, 1 failed"; exit 1; }
fi

TARGETS=("$@")
if [[ ${#TARGETS[@]} -eq 0 ]]; then
  mapfile -t TARGETS < <(cargo +nightly fuzz list --fuzz-dir "$FUZZ_DIR")
fi
echo "==> building ${#TARGETS[@]} fuzz targets"
cargo +nightly fuzz build --fuzz-dir "$FUZZ_DIR" "${BUILD_FLAGS[@]}" || { echo "fuzz: 0 passed, 1 failed"; exit 1; }

passed=0
failed=0
for target in "${TARGETS[@]}"; do
  corpus="$FUZZ_DIR/corpus/$target"
  mkdir -p "$corpus"
  echo "==> $target (${SECONDS_PER_TARGET}s)"
  if cargo +nightly fuzz run --fuzz-dir "$FUZZ_DIR" "${BUILD_FLAGS[@]}" "$target" "$corpus" "$FUZZ_DIR/seeds/$target" -- \
      -max_total_time="$SECONDS_PER_TARGET" -rss_limit_mb=2048 -print_final_stats=1 2>&1 |
      grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb|==|SUMMARY|Done)|panicked|ERROR"; then :; fi
  if [[ ${PIPESTATUS[0]} -eq 0 ]]; then
    passed=$((passed + 1))
  else
    echo "FAILED: $target (the crashing input is in $FUZZ_DIR/artifacts/$target/)"
    failed=$((failed + 1))
  fi
done
echo "fuzz: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
