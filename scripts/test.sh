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
echo "==> tests"
cd build
exec ctest --output-on-failure --no-label-summary --timeout 300 -j2 "$@"
