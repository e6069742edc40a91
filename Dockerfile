# The chat cluster's image: chat-gateway (the default command) and
# chat-worker, built on Debian 12 with the -dev packages, run on a slim
# Debian 12 with only the runtime libraries, as an unprivileged user.
#
#   docker build -t chat .                                        (from debian:bookworm-slim)
#   docker build --build-arg BASE=chat-base:bookworm -t chat .    (from a base made locally,
#                                                                  e.g. with debootstrap: deploy/README.md)
#
# Both binaries read their settings from CHAT_* environment variables (see
# README.md, "Flags"). CHAT_LISTEN decides the port, and the HEALTHCHECK
# follows it, so the same image serves as gateway (8080) and worker (9090).
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       build-essential cmake pkg-config libwebsockets-dev libuv1-dev libhiredis-dev \
       libevent-dev libcjson-dev libssl-dev uthash-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# Only what the binaries are built from (.dockerignore keeps the rest out).
COPY CMakeLists.txt ./
COPY cmake cmake
COPY common common
COPY gateway gateway
COPY worker worker
COPY web web
COPY clients/js/src clients/js/src
COPY tools tools
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DCHAT_TESTS=OFF -DCHAT_WERROR=ON \
       -DCMAKE_INSTALL_PREFIX=/usr/local \
    && cmake --build /build -j"$(nproc)" \
    && DESTDIR=/out cmake --install /build

FROM ${BASE}
# The runtime libraries of exactly what the binaries link (ldd), lws's libuv
# event-loop plugin (loaded at run time, so ldd does not show it), and curl
# for the health check.
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
       libwebsockets17 libwebsockets-evlib-uv libuv1 libhiredis0.14 libevent-2.1-7 libcjson1 libssl3 \
       curl \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && groupadd --gid 10001 chat \
    && useradd --uid 10001 --gid chat --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin chat
# /usr/local/bin/chat-gateway, /usr/local/bin/chat-worker, chat-bench (the
# load generator), and the web client in /usr/local/share/chat/web (the
# gateway's default --web-root).
COPY --from=build /out/usr/local /usr/local
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 10001:10001
EXPOSE 8080 9090
ENV CHAT_LISTEN=0.0.0.0:8080
# SIGTERM makes a gateway drain (fail /readyz, tell clients to reconnect,
# close with 1001) within --drain-grace-ms + --drain-ms: give it longer than
# that to stop (docker stop -t / compose stop_grace_period).
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=5s --timeout=2s --start-period=5s --retries=3 \
    CMD curl -fsS -o /dev/null "http://127.0.0.1:${CHAT_LISTEN##*:}/healthz" || exit 1
CMD ["chat-gateway"]
