#!/usr/bin/env bash
# Installs what building, running and testing the cluster needs on Debian 12:
# compilers and -dev packages, redis-server, haproxy, Node.js for the test
# clients, Chromium for the browser tests, and the npm packages in tests/.
# Idempotent: apt-get only runs when something is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake pkg-config clang libclang-rt-14-dev
  libwebsockets-dev libuv1-dev libhiredis-dev libevent-dev libcjson-dev uthash-dev
  libssl-dev libcmocka-dev valgrind openssl
  redis-server redis-tools haproxy curl ca-certificates chromium
  python3-yaml systemd gnuplot-nox
)
# Node may come from elsewhere than Debian (a newer one); only its presence matters.
command -v node >/dev/null && command -v npm >/dev/null || PACKAGES+=(nodejs npm)

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done

if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "==> installing: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts a system redis on 6379; the cluster and the tests run their own.
  $SUDO systemctl disable --now redis-server >/dev/null 2>&1 || true
fi

if [ ! -d tests/node_modules/ws ] || [ tests/package-lock.json -nt tests/node_modules/.package-lock.json ]; then
  echo "==> npm ci (tests/)"
  (cd tests && npm ci --no-audit --no-fund --loglevel=error)
fi
