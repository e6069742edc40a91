#!/bin/sh
# Runs one integration test file for CTest. CHAT_BIN_DIR from the outer
# environment wins (the sanitizer job sets it); otherwise the build's own
# bin/ directory, which CMake passes as CHAT_DEFAULT_BIN_DIR.
: "${CHAT_BIN_DIR:=${CHAT_DEFAULT_BIN_DIR}}"
export CHAT_BIN_DIR
exec "$@"
