# Redis from Debian 12's package, for where no image registry is reachable
# (docker-compose.yml uses redis:7-bookworm otherwise):
#   docker build -f deploy/docker/redis.Dockerfile --build-arg BASE=chat-base:bookworm \
#       -t chat-redis:bookworm deploy/docker
#   CHAT_REDIS_IMAGE=chat-redis:bookworm docker compose up
ARG BASE=debian:bookworm-slim
FROM ${BASE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
    && mkdir -p /data && chown redis:redis /data
VOLUME /data
WORKDIR /data
USER redis
EXPOSE 6379
CMD ["redis-server", "--dir", "/data", "--protected-mode", "no"]
