# haproxy 2.6 from Debian 12's package, laid out like the official haproxy
# image (configuration in /usr/local/etc/haproxy/haproxy.cfg, runs as the
# haproxy user), for where no image registry is reachable:
#   docker build -f deploy/docker/haproxy.Dockerfile --build-arg BASE=chat-base:bookworm \
#       -t chat-haproxy:bookworm deploy/docker
#   CHAT_HAPROXY_IMAGE=chat-haproxy:bookworm docker compose up
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends haproxy \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && mkdir -p /usr/local/etc/haproxy
USER haproxy
STOPSIGNAL SIGUSR1
CMD ["haproxy", "-W", "-db", "-f", "/usr/local/etc/haproxy/haproxy.cfg"]
