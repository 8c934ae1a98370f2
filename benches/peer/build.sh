#!/usr/bin/env bash
# Builds the Go centrifuge 0.15 peer offline in GOPATH mode against Debian's packages.
# Output: target/peer/bin/peer (GOPATH and GOCACHE live under target/peer too).
# Needs: apt-get install golang-go golang-github-centrifugal-centrifuge-dev
#   golang-github-centrifugal-protocol-dev golang-github-igm-sockjs-go-dev
#   golang-github-mna-redisc-dev golang-github-fzambia-eagle-dev golang-github-nats-io-go-nats-dev
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OUT="${CARGO_TARGET_DIR:-$ROOT/target}/peer"
mkdir -p "$OUT/src/peer" "$OUT/bin"
cp "$ROOT/benches/peer/main.go" "$OUT/src/peer/main.go"
cd "$OUT"
export GO111MODULE=off GOPROXY=off GOFLAGS= GOPATH="$OUT:/usr/share/gocode" GOCACHE="$OUT/.cache"
go build -o bin/peer peer
echo "$OUT/bin/peer"
