# derp-controller, derp-relay and derp-probe in one image.
#
#   docker build -t derp-controller .        (or podman: see docs/IMAGE.md)
#   docker run --rm -p 8080:8080 -p 3340:3340 -p 3478:3478/udp derp-controller
#
# Stage 1 builds with .ci/build, the script .ci/start and CI use (Release,
# no tests, no benchmarks). Stage 2 is Debian's slim image with only the
# runtime libraries, running as the non-root user 65532.

FROM debian:bookworm AS build
# What building needs (tests and benchmarks are off, so not cmocka, clang or
# the rest of .ci/setup's list): installed before the sources are copied so
# that this layer is reused across source changes.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config \
        libssl-dev libsodium-dev libjansson-dev libyaml-dev libcurl4-openssl-dev zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# Release: -O3, NDEBUG, and the hardening flags of the top CMakeLists.txt.
RUN bash .ci/build --no-setup --release --no-tests --no-bench --build-dir /out

FROM debian:bookworm-slim
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="derp-controller" \
      org.opencontainers.image.description="DERP relay fabric for Kubernetes clusters: derp-controller (Clusters to a Tailscale DERP map), derp-relay (DERP server, protocol version 2, and STUN), derp-probe" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="debian:bookworm-slim"
# Runtime libraries only (what `ldd` shows for the programs, plus libcurl for
# the Kubernetes client), CA certificates, and the user 65532 with its state
# directory.
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libssl3 libsodium23 libjansson4 libyaml-0-2 libcurl4 ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --gid 65532 derp \
    && useradd --uid 65532 --gid 65532 --home-dir /var/lib/derp --no-create-home \
        --shell /usr/sbin/nologin derp \
    && mkdir -p /var/lib/derp /etc/derp/clusters \
    && chown 65532:65532 /var/lib/derp \
    && chmod 0750 /var/lib/derp
COPY --from=build /out/bin/derp-controller /out/bin/derp-relay /out/bin/derp-probe /usr/local/bin/
# Fails the build when a library the programs need is missing here.
RUN for b in /usr/local/bin/derp-*; do \
        if ldd "$b" | grep 'not found'; then echo "$b: missing library" >&2; exit 1; fi; \
    done \
    && derp-relay --version && derp-controller --version
USER 65532:65532
WORKDIR /var/lib/derp
VOLUME ["/var/lib/derp"]
# 8080: /derpmap, /healthz, /readyz, /metrics; 3340: DERP (HTTP); 3478/udp: STUN.
EXPOSE 8080 3340 3478/udp
ENTRYPOINT ["derp-controller"]
# The embedded default: Clusters from the files in /etc/derp/clusters (mount
# a ConfigMap or a directory there), region IDs and the relay's node key kept
# in /var/lib/derp, the relay supervised on :3340 and STUN on :3478. Replace
# --central-endpoint with the central relay's public name.
CMD ["--clusters-dir", "/etc/derp/clusters", "--central-endpoint", "localhost:3340", \
     "--listen", ":8080", "--state-dir", "/var/lib/derp", "--relay", "--", \
     "--listen", ":3340", "--stun-listen", ":3478", "--key-file", "/var/lib/derp/derp-relay.key"]
