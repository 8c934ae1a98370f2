# syntax=docker/dockerfile:1
#
# gyre container image: a multi-stage build of a small image that runs as a non-root user.
#
#   docker build -t gyre:local .
#   docker run --rm -p 8000:8000 -p 9000:9000 \
#     -e GYRE_CLIENT__TOKEN__HMAC_SECRET_KEY=... -e GYRE_HTTP_API__KEY=... gyre:local
#
# Configuration: the image ships config/container.json as /etc/gyre/config.json (client port
# 8000; API, /health and /metrics on the internal port 9000; JSON logs; no secrets). Mount your
# own file over /etc/gyre/config.json (Kubernetes: a ConfigMap; docker-compose: a bind mount) and
# pass secrets through the environment: GYRE_CLIENT__TOKEN__HMAC_SECRET_KEY and
# GYRE_HTTP_API__KEY (Centrifugo's CENTRIFUGO_CLIENT_TOKEN_HMAC_SECRET_KEY and
# CENTRIFUGO_HTTP_API_KEY work too). Any other key can be overridden the same way, e.g.
# GYRE_BROKER__NATS__URL=nats://nats:4222.
#
# CI note: the CI machine has the docker CLI but no Docker engine, so this image is never built
# there. Instead CI (tests/run.sh, stage "deploy", script tests/deploy/validate.sh) checks that the
# build stage below runs exactly `cargo build --release --locked` (the one cargo command in this
# file), compiles the same sources with `cargo build --locked` (same flags except the release
# profile, which would add minutes), and checks that every file this Dockerfile copies exists.
# Keep the build command in sync with CARGO_BUILD_CMD in tests/deploy/validate.sh.

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

# ---------------------------------------------------------------- build stage
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# Everything cargo needs to resolve the package (benches are declared targets in Cargo.toml).
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY benches ./benches
# BuildKit cache mounts keep the registry and target directory between builds; the binary is
# copied out of the cached target directory so that the next stage can take it.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked \
    && install -D -m 0755 target/release/gyre /out/gyre

# ---------------------------------------------------------------- runtime stage
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: TLS to NATS (a tls:// broker.nats.url) with the system roots. bash (already in the
# base image) runs the HEALTHCHECK below, so no curl is needed.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 gyre \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gyre
COPY --from=build /out/gyre /usr/local/bin/gyre
COPY config/container.json /etc/gyre/config.json

# Numeric user so that Kubernetes' runAsNonRoot can verify it; the root filesystem can be
# mounted read-only (gyre writes nothing but stdout/stderr when started with --config).
USER 10001:10001
# An empty working directory: gyre reads ./.env if present (as Centrifugo v6 does).
WORKDIR /
EXPOSE 8000 9000
STOPSIGNAL SIGTERM

# Port of /health: the internal port (9000) in the shipped config; set GYRE_HEALTHCHECK_PORT=8000
# if your config has no http_server.internal_port. /health answers 503 while draining.
ENV GYRE_HEALTHCHECK_PORT=9000
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${GYRE_HEALTHCHECK_PORT} && printf 'GET /health HTTP/1.0\\r\\nHost: localhost\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]

ENTRYPOINT ["/usr/local/bin/gyre"]
CMD ["serve", "--config", "/etc/gyre/config.json"]
