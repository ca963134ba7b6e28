#!/bin/sh
# make test: build, then run every suite, printing how long each stage took.
# Stages: release build; the kernels through the real nvcc; unit, golden,
# CLI and daemon suites (CTest, in parallel); the nginx integration suite;
# then the sanitizer (ASan+UBSan) build with the same suites and the
# integration suite against the sanitized module and vlmd. The browser stage
# drives Debian's Chromium through a real WordPress and the demo page; the
# fuzz stage builds every libFuzzer target and runs each briefly. The
# layering checks (scripts/check-layers.py, no build needed) run first.
set -eu
cd "$(dirname "$0")/.."

JOBS=$(nproc)
BUILD=${BUILD:-build}
total_start=$(date +%s)
summary=""

stage() {
    name=$1; shift
    start=$(date +%s)
    echo "==> $name"
    if "$@"; then status=ok; else status=FAILED; fi
    secs=$(( $(date +%s) - start ))
    summary="$summary$(printf '  %-34s %5ss  %s' "$name" "$secs" "$status")
"
    echo "==> $name: ${secs}s $status"
    if [ "$status" = FAILED ]; then
        printf '\nstage times:\n%s' "$summary"
        exit 1
    fi
}

configure() {
    dir=$1; shift
    [ -f "$dir/build.ninja" ] || cmake -S . -B "$dir" -G Ninja "$@" >/dev/null
}

build_release() {
    configure "$BUILD/release" -DCMAKE_BUILD_TYPE=Release \
        -DVLM_BIN_DIR="$PWD/$BUILD/bin" && ninja -C "$BUILD/release" -j "$JOBS"
}

build_sanitize() {
    configure "$BUILD/sanitize" -DCMAKE_BUILD_TYPE=Debug -DVLM_SANITIZE=ON \
        -DVLM_BIN_DIR="$PWD/$BUILD/sanitize/bin" && ninja -C "$BUILD/sanitize" -j "$JOBS"
}

run_ctest() {
    ctest --test-dir "$1" --output-on-failure -j "$JOBS"
}

# Leaks are real failures; the suites free everything they allocate.
run_ctest_sanitized() {
    ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
        ctest --test-dir "$1" --output-on-failure -j "$JOBS"
}

if [ -f scripts/check-layers.py ]; then
    stage "layering: include and call cycles" python3 scripts/check-layers.py
fi
stage "build (release)" build_release
if ls kernels/*.cu >/dev/null 2>&1; then
    stage "nvcc sm_80/89/90 + cuobjdump" sh scripts/check-nvcc.sh "$BUILD/release"
fi
stage "unit, golden, CLI, daemon suites" run_ctest "$BUILD/release"
if [ -f tests/integration/run.sh ]; then
    stage "integration (nginx, Redis, vlmd)" sh scripts/run-integration.sh
fi
if [ -f tests/bulk/run.sh ]; then
    stage "vlm-bulk against the stack" env VLM_BULK="$PWD/$BUILD/bin/vlm-bulk" \
        VLMD="$PWD/$BUILD/bin/vlmd" sh tests/bulk/run.sh
fi
if [ -f tests/browser/run.sh ]; then
    stage "browser: WordPress, demo, vlm-bulk" env VLM_BULK="$PWD/$BUILD/bin/vlm-bulk" \
        VLMD="$PWD/$BUILD/bin/vlmd" sh tests/browser/run.sh
fi
if [ -f tests/fuzz/smoke.sh ]; then
    stage "fuzz targets, brief run each" sh tests/fuzz/smoke.sh "$PWD/$BUILD/fuzz"
fi
stage "build (asan+ubsan)" build_sanitize
stage "suites under asan+ubsan" run_ctest_sanitized "$BUILD/sanitize"
if [ -f tests/integration/run.sh ]; then
    stage "integration, module+vlmd with asan" sh scripts/run-integration.sh asan
fi

printf '\nstage times:\n%s' "$summary"
echo "total: $(( $(date +%s) - total_start ))s"
