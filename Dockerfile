# syntax=docker/dockerfile:1.7
#
# The kseal-controller image for Docker users: a static binary on an empty
# base, running as the non-root user 65532 (the UID the Helm chart sets).
# `cargo xtask image` builds the same image without Docker (an OCI archive);
# tests/testenv/tests/image.rs checks the two agree on user, entrypoint and
# exposed ports.
#
#   docker build -t ghcr.io/kseal-dev/kseal-controller:0.1.0 \
#     --build-arg KSEAL_GIT_COMMIT=$(git rev-parse --short=12 HEAD) \
#     --build-arg KSEAL_GIT_REVISION=$(git rev-parse HEAD) .
#
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 …
# (the build stage cross-compiles for TARGETARCH, so no emulation is needed
# for Rust itself; the C parts of `ring` need the matching gcc).

ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
ARG TARGETARCH
# .git is not in the build context (.dockerignore): pass the commit for
# `kseal-controller --version`.
ARG KSEAL_GIT_COMMIT=unknown
RUN set -eux; \
    case "$TARGETARCH" in \
      amd64) echo x86_64-unknown-linux-gnu > /target ;; \
      arm64) echo aarch64-unknown-linux-gnu > /target ;; \
      *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    rustup target add "$(cat /target)"; \
    if [ "$TARGETARCH" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then \
      apt-get update; \
      apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu libc6-dev-arm64-cross; \
      rm -rf /var/lib/apt/lists/*; \
    fi
WORKDIR /src
COPY . .
# The gnu target with +crt-static gives a static-pie binary (as
# `cargo xtask image` builds it); with --target, RUSTFLAGS reach only the
# target's crates, not build scripts.
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc \
    RUSTFLAGS="-C target-feature=+crt-static" \
    KSEAL_GIT_COMMIT=${KSEAL_GIT_COMMIT}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eux; \
    target="$(cat /target)"; \
    cargo build --release --locked -p kseal-controller --target "$target"; \
    install -D -m 0755 "target/$target/release/kseal-controller" /out/kseal-controller

# Empty base: the binary is static and talks only to the API server (whose
# CA comes with the ServiceAccount token); no shell, no package manager.
FROM scratch
ARG KSEAL_GIT_REVISION=unknown
LABEL org.opencontainers.image.source="https://github.com/kseal-dev/kseal" \
      org.opencontainers.image.revision="${KSEAL_GIT_REVISION}" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.title="kseal-controller" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=build /out/kseal-controller /usr/local/bin/kseal-controller
USER 65532:65532
EXPOSE 8080/tcp 8081/tcp
ENTRYPOINT ["/usr/local/bin/kseal-controller"]
