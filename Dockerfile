# syntax=docker/dockerfile:1
# ward container image. No pipeline publishes one: build it and push it to your
# own registry (README "Deploying", "Building and publishing the image"):
#
#   docker build -t registry.example.com/ward:0.1.0 .
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     -t registry.example.com/ward:0.1.0 --push .
#   docker run --rm -v "$PWD/ward.yaml:/etc/ward/ward.yaml:ro" -p 9001:9001 -p 9002:9002 registry.example.com/ward:0.1.0
#
# registry.example.com is a placeholder: use your registry, and point the
# manifests at the image with kustomize `images:` (k8s/base/kustomization.yaml).
#
# The runtime image is distroless: no shell and no package manager, only glibc
# and libgcc for the Rust binary. It runs as uid/gid 65532 (nonroot), the user
# the Kubernetes manifests in k8s/ expect.
#
# Health: there is no shell or HTTP client in the image for a Docker HEALTHCHECK;
# orchestrators probe ward's admin /healthz and /readyz (port 9002) and
# grpc.health.v1 on port 9001 instead (k8s/base/deployment.yaml).
# checkov:skip=CKV_DOCKER_2:Distroless runtime has no shell or client to run a HEALTHCHECK command; health is probed over HTTP (/healthz, /readyz on 9002) and grpc.health.v1 (9001) by the orchestrator.

# ---- build ------------------------------------------------------------------
FROM rust:1-bookworm AS builder
WORKDIR /src
# Everything the build needs; .dockerignore keeps target/, .git and the
# deployment files out of the context.
COPY . .
# --locked: build exactly the dependency versions in Cargo.lock.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked --bin ward \
    && install -D -m 0755 target/release/ward /out/ward

# ---- runtime ----------------------------------------------------------------
# Debian 12 distroless, matching the glibc of the bookworm builder.
FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="ward" \
      org.opencontainers.image.description="Envoy external-authorization (ext_authz) gRPC server" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /out/ward /usr/local/bin/ward
USER 65532:65532
# The ports of the default config (server.grpc_addr, server.admin_addr):
# 9001: gRPC — envoy.service.auth.v3.Authorization/Check, grpc.health.v1,
#       server reflection.
# 9002: admin HTTP — /healthz, /readyz, /metrics, and only when the config has
#       `signing`: /.well-known/jwks.json, /.well-known/openid-configuration and
#       POST /token (404 without it).
# Not exposed: the plain-HTTP authorization port for nginx, Caddy, Traefik and
# Envoy's http_service listens only when server.http_addr (or --http-addr) is
# set, on the port you choose there (9003 in the examples).
EXPOSE 9001 9002
ENTRYPOINT ["/usr/local/bin/ward"]
CMD ["serve", "--config", "/etc/ward/ward.yaml"]
