#!/usr/bin/env bash
# The docker compose test (tests/deploy/docker/compose_up.test.mjs): installs
# Debian's docker.io, docker-compose and debootstrap if missing, then runs it
# with its own time limit. It starts a private dockerd, builds every image
# from a debootstrap'd Debian 12 (no registry needed), brings the compose
# cluster up on the host network, chats through haproxy, and removes it all,
# dockerd included. Takes a few minutes. Needs root (uses sudo otherwise).
#
#   scripts/docker-test.sh      CHAT_DOCKER_TEST_TIMEOUT: seconds [1500]
#                               CHAT_DEBIAN_MIRROR: debootstrap's mirror [apt's]
set -euo pipefail
cd "$(dirname "$0")/.."

limit=${CHAT_DOCKER_TEST_TIMEOUT:-1500}
# Its own dockerd and debootstrap need root.
if [ "$(id -u)" -ne 0 ]; then
  exec sudo --preserve-env=CHAT_DOCKER_TEST_TIMEOUT,CHAT_DEBIAN_MIRROR,PATH "$0" "$@"
fi

missing=()
for p in docker.io docker-compose debootstrap; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> installing: ${missing[*]}"
  apt-get update -qq
  # The package would start the system's docker if systemd runs; the test
  # uses its own daemon, so keep the system one from starting.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  systemctl disable --now docker.service docker.socket >/dev/null 2>&1 || true
fi
[ -d tests/node_modules/ws ] || (cd tests && npm ci --no-audit --no-fund --loglevel=error)

dir=$(mktemp -d /tmp/chat-docker-test.XXXXXX)
status=0
CHAT_DOCKER_TEST_DIR=$dir timeout --kill-after=30 "$limit" \
  node --test --test-reporter=spec tests/deploy/docker/compose_up.test.mjs || status=$?
# Whatever the test could not remove (it was killed, say): dockerd, shims,
# containers, mounts, the directory.
tests/deploy/docker/cleanup.sh "$dir" || true
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "docker compose test: killed after its limit of ${limit} s" >&2
fi
exit "$status"
