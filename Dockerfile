# Multi-stage build of the chat cluster's two binaries.
#   docker build -t chat .                      (from debian:bookworm-slim)
#   docker build --build-arg BASE=local/bookworm -t chat .   (a base made locally)
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      build-essential cmake pkg-config libwebsockets-dev libuv1-dev libhiredis-dev \
      libevent-dev libcjson-dev uthash-dev && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY common common
COPY gateway gateway
COPY worker worker
COPY web web
COPY tests/CMakeLists.txt tests/CMakeLists.txt
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release -DCHAT_TESTS=OFF -DCHAT_WERROR=ON \
      -DCMAKE_INSTALL_PREFIX=/usr/local && cmake --build /build -j"$(nproc)" && \
    cmake --install /build

FROM ${BASE}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libwebsockets17 libwebsockets-evlib-uv libuv1 libhiredis0.14 libevent-2.1-7 libcjson1 curl \
    && rm -rf /var/lib/apt/lists/* && useradd --system --no-create-home --shell /usr/sbin/nologin chat
COPY --from=build /usr/local /usr/local
USER chat
EXPOSE 8080
ENV CHAT_LISTEN=0.0.0.0:8080
HEALTHCHECK --interval=5s --timeout=2s --retries=3 CMD curl -fs http://127.0.0.1:8080/healthz || exit 1
CMD ["chat-gateway"]
