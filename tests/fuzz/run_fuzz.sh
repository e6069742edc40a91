#!/bin/sh
# A bounded libFuzzer run of the client-frame decoder, for CTest in any
# build (gcc included): builds fuzz_frame_decode with clang in a temporary
# directory (CC=clang, -DCHAT_FUZZ=ON), fuzzes it for SECONDS over a scratch
# corpus seeded from tests/fuzz/corpus with tests/fuzz/frame.dict, and fails
# on any crash, sanitizer report, leak, timeout or out-of-memory. Each input
# that failed is printed (hex and base64) and copied to ARTIFACT_DIR, ready
# to become a seed in tests/fuzz/corpus and a case in the unit tests.
#
# usage: run_fuzz.sh SOURCE_DIR [SECONDS] [ARTIFACT_DIR]
# env:   CHAT_FUZZ_SECONDS (wins over SECONDS), CHAT_FUZZ_CC (default clang)
# exit:  0 clean, 1 failure, 77 skipped (no clang / no libFuzzer runtime)
set -u

src=${1:?usage: run_fuzz.sh SOURCE_DIR [SECONDS] [ARTIFACT_DIR]}
secs=${CHAT_FUZZ_SECONDS:-${2:-60}}
artifacts=${3:-$PWD/fuzz-artifacts}
cc=${CHAT_FUZZ_CC:-clang}

if ! command -v "$cc" >/dev/null 2>&1; then
    echo "SKIP: $cc is not installed (apt-get install clang libclang-rt-14-dev)"
    exit 77
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/chat-fuzz.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT INT TERM

# Whether this clang can link -fsanitize=fuzzer at all (the runtime is in
# libclang-rt-NN-dev on Debian).
printf 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n){(void)d;(void)n;return 0;}\n' \
    > "$work/probe.c"
if ! "$cc" -fsanitize=fuzzer "$work/probe.c" -o "$work/probe" >"$work/probe.log" 2>&1; then
    echo "SKIP: $cc cannot link -fsanitize=fuzzer (apt-get install libclang-rt-14-dev):"
    cat "$work/probe.log"
    exit 77
fi

echo "==> configure (CC=$cc, CHAT_FUZZ=ON) in $work/build"
if ! CC=$cc cmake -S "$src" -B "$work/build" -DCHAT_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
        >"$work/configure.log" 2>&1; then
    cat "$work/configure.log"
    echo "FAIL: configure"
    exit 1
fi
echo "==> build fuzz_frame_decode"
if ! cmake --build "$work/build" --target fuzz_frame_decode -j2 >"$work/build.log" 2>&1; then
    cat "$work/build.log"
    echo "FAIL: build"
    exit 1
fi
bin="$work/build/bin/fuzz_frame_decode"

mkdir -p "$work/corpus" "$work/artifacts"
echo "==> fuzz for ${secs}s over $(ls "$src/tests/fuzz/corpus" | wc -l) seeds"
# -timeout: one input taking 10 s is a hang; -rss_limit_mb: one input
# blowing up memory is a bug too. The outer timeout is only a guard.
timeout -s KILL $((secs + 120)) "$bin" \
    -dict="$src/tests/fuzz/frame.dict" \
    -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
    -print_final_stats=1 -artifact_prefix="$work/artifacts/" \
    "$work/corpus" "$src/tests/fuzz/corpus" >"$work/fuzz.log" 2>&1
rc=$?

found=$(ls "$work/artifacts" 2>/dev/null)
if [ "$rc" -eq 0 ] && [ -z "$found" ]; then
    grep -E '^(#[0-9]+.*DONE|stat::number_of_executed_units|stat::peak_rss_mb|stat::new_units_added)' \
        "$work/fuzz.log" || tail -n 5 "$work/fuzz.log"
    echo "OK: no crash in ${secs}s"
    exit 0
fi

echo "FAIL: the fuzzer exited with $rc"
echo "---- last 80 lines of its output"
tail -n 80 "$work/fuzz.log"
mkdir -p "$artifacts"
for f in $found; do
    p="$work/artifacts/$f"
    echo "---- failing input $f ($(wc -c <"$p") bytes), hex:"
    od -A x -t x1z -v "$p" | head -n 64
    echo "---- base64:"
    base64 "$p" | head -n 40
    cp "$p" "$artifacts/$f"
    echo "---- kept as $artifacts/$f; replay it with a fuzz build (see CMakeLists.txt here):"
    echo "     <fuzzbuild>/bin/fuzz_frame_decode $artifacts/$f"
    echo "     (a crash input belongs in tests/fuzz/corpus and as a case in tests/unit)"
done
exit 1
