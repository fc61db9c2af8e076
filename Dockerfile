# syntax=docker/dockerfile:1.7
#
# One image with every Ordinaut binary: ordinaut-operator, ordinaut-worker, ordinaut-gateway,
# the ordinaut CLI and ordinaut-mcp-bridge (a stdio McpServer's pod copies it out of this image
# with an init container: `ordinaut-mcp-bridge install DEST`, as the image has no shell or cp).
#
# Why one image and not one per binary: the binaries share almost all their code (the workspace
# compiles once), are always released together at one version, and a cluster pulls, and kind
# loads, one image instead of three. Each Deployment picks its binary with `command`. A
# per-binary image is still one flag away: `--target operator` or `--target worker` builds an
# image holding only that binary.
#
#   docker build -t ordinaut:dev .
#   docker run --rm ordinaut:dev ordinaut-worker --help
#
# Runtime: distroless cc (glibc, CA certificates, no shell, no package manager), uid 65532
# (nonroot), works with a read-only root filesystem: nothing writes outside /tmp.

ARG RUST_VERSION=1.95
ARG DEBIAN=bookworm

FROM rust:${RUST_VERSION}-${DEBIAN} AS build
WORKDIR /src
# The whole workspace (.dockerignore leaves out target/, charts/, docs/, tests/e2e/): every
# member's manifest is needed to resolve it, and migrations/ is embedded by sqlx at build time.
COPY . .
# Cache mounts keep the registry and the target dir across builds; the binaries are copied out
# of the cached target dir in the same step. --locked: the image builds what Cargo.lock says.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked \
        -p ordinaut-operator -p ordinaut-worker -p ordinaut-gateway -p ordinaut -p ordinaut-mcp-bridge \
        --bin ordinaut-operator --bin ordinaut-worker --bin ordinaut-gateway --bin ordinaut \
        --bin ordinaut-mcp-bridge \
 && mkdir -p /out \
 && for b in ordinaut-operator ordinaut-worker ordinaut-gateway ordinaut; do \
        cp "target/release/$b" /out/ && strip "/out/$b"; \
    done

# --- the image the chart uses: every binary ----------------------------------------------
FROM gcr.io/distroless/cc-debian12:nonroot AS runtime-base
LABEL org.opencontainers.image.source="https://github.com/ordinaut/ordinaut" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.description="Ordinaut: Kubernetes-native scheduler for AI agents"
USER 65532:65532
WORKDIR /tmp
# The worker serves /metrics, /healthz and /readyz on 9090, the operator on 9091: probe them
# with httpGet (the image has no shell or curl for exec probes, and needs none).
EXPOSE 9090 9091

FROM runtime-base AS operator
COPY --from=build /out/ordinaut-operator /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/ordinaut-operator"]

FROM runtime-base AS worker
COPY --from=build /out/ordinaut-worker /usr/local/bin/
ENTRYPOINT ["/usr/local/bin/ordinaut-worker"]

# Last stage = the default target: all binaries, no entrypoint (the chart sets `command`).
FROM runtime-base AS all
COPY --from=build /out/ /usr/local/bin/
CMD ["/usr/local/bin/ordinaut", "--help"]
