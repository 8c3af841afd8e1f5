# syntax=docker/dockerfile:1.7
#
# The kseal-controller image: a static (musl) binary on distroless/static,
# running as the non-root user 65532 (the UID the Helm chart sets).
#
#   docker build -t ghcr.io/kseal-dev/kseal-controller:0.1.0 \
#     --build-arg KSEAL_GIT_COMMIT=$(git rev-parse --short=12 HEAD) .
#
# Multi-arch: docker buildx build --platform linux/amd64,linux/arm64 …
# (the build stage cross-compiles for TARGETARCH, so no emulation is needed
# for Rust itself; the C parts of `ring` need the matching musl toolchain).

ARG RUST_VERSION=1.95

FROM --platform=$BUILDPLATFORM rust:${RUST_VERSION}-bookworm AS build
ARG TARGETARCH
# .git is not in the build context (.dockerignore): pass the commit for
# `kseal-controller --version`.
ARG KSEAL_GIT_COMMIT=unknown
RUN set -eux; \
    case "$TARGETARCH" in \
      amd64) echo x86_64-unknown-linux-musl > /target ;; \
      arm64) echo aarch64-unknown-linux-musl > /target ;; \
      *) echo "unsupported TARGETARCH $TARGETARCH" >&2; exit 1 ;; \
    esac; \
    rustup target add "$(cat /target)"; \
    apt-get update; \
    apt-get install -y --no-install-recommends musl-tools; \
    if [ "$TARGETARCH" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then \
      apt-get install -y --no-install-recommends gcc-aarch64-linux-gnu; \
    fi; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
ENV CARGO_TARGET_AARCH64_UNKNOWN_LINUX_MUSL_LINKER=aarch64-linux-gnu-gcc \
    CC_aarch64_unknown_linux_musl=aarch64-linux-gnu-gcc \
    KSEAL_GIT_COMMIT=${KSEAL_GIT_COMMIT}
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    set -eux; \
    target="$(cat /target)"; \
    cargo build --release --locked -p kseal-controller --target "$target"; \
    install -D -m 0755 "target/$target/release/kseal-controller" /out/kseal-controller; \
    /out/kseal-controller --version || true

# distroless/static: no shell, no package manager, CA certificates and
# /etc/passwd with the nonroot user (65532) only.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kseal-controller /usr/local/bin/kseal-controller
USER 65532:65532
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/kseal-controller"]
