#!/usr/bin/env bash
# Rebuilds the admin web UI from web/admin into a temporary directory and fails if it differs
# from the committed build in src/admin/ui/dist (which the gyre binary embeds). Installs the
# pinned npm dependencies (npm ci) when they are missing or stale, unless SKIP_INSTALL=1.
# Also builds twice and compares, so a non-reproducible build is caught here, not in review.
#
# Usage: bash web/admin/check.sh          (prints "ui dist: 1 passed, 0 failed" or the diff)
# To update the committed build after changing the sources: (cd web/admin && npm run build)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
DIST="$ROOT/src/admin/ui/dist"
cd "$HERE"

if [[ "${SKIP_INSTALL:-0}" != "1" ]]; then
  stamp="node_modules/.gyre-deps-stamp"
  want="$(sha256sum package.json package-lock.json | sha256sum | cut -d' ' -f1)"
  if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    echo "==> web/admin: npm ci"
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" >"$stamp"
  fi
fi

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT

npx --no-install tsc --noEmit
for n in 1 2; do
  npx --no-install vite build --logLevel warn --outDir "$OUT/build$n" --emptyOutDir
done

fail=0
if ! diff -r "$OUT/build1" "$OUT/build2" >/dev/null; then
  echo "web/admin: two builds of the same sources differ (the build is not reproducible):" >&2
  diff -r "$OUT/build1" "$OUT/build2" | head -20 >&2 || true
  fail=1
fi
if ! diff -r "$OUT/build1" "$DIST" >"$OUT/diff"; then
  echo "web/admin: src/admin/ui/dist does not match its sources; rebuild it with" >&2
  echo "  (cd web/admin && npm run build)   and commit src/admin/ui/dist (and ASSETS in src/admin/ui.rs" >&2
  echo "  if files were added or removed). Differences:" >&2
  head -40 "$OUT/diff" >&2
  fail=1
fi

if [[ $fail -eq 0 ]]; then
  echo "ui dist: 1 passed, 0 failed"
else
  echo "ui dist: 0 passed, 1 failed"
  exit 1
fi
