#!/usr/bin/env bash
# Runs every test: installs what is missing, builds the normal tree and an
# AddressSanitizer + UndefinedBehaviorSanitizer tree (warnings are errors in
# both), then one CTest run over unit tests, integration tests against both
# sets of binaries, browser tests and the fuzz smoke run. Ends with CTest's
# summary line.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/deps.sh
echo "==> build (sanitizers)"
scripts/build.sh build-asan -DCHAT_SANITIZE=ON -DCHAT_TESTS=OFF
echo "==> build"
scripts/build.sh build -DCHAT_SANITIZED_BIN_DIR="$PWD/build-asan/bin"
# The docker compose test takes minutes: its own step with its own time
# limit, before CTest so that CTest's summary stays the last line. Only on
# a full run (no CTest arguments); CHAT_SKIP_DOCKER_TEST=1 skips it.
docker_status=0
if [ $# -eq 0 ] && [ "${CHAT_SKIP_DOCKER_TEST:-0}" != 1 ]; then
  echo "==> docker compose test (several minutes): scripts/docker-test.sh"
  scripts/docker-test.sh || docker_status=$?
  echo "==> docker compose test: $([ "$docker_status" -eq 0 ] && echo passed || echo "FAILED (exit $docker_status)")"
fi
echo "==> tests"
cd build
ctest --output-on-failure --no-label-summary --timeout 300 -j2 "$@" || exit
exit "$docker_status"
