#!/bin/sh
# make test / make check: build, then run the suites, printing how long each
# stage took. Usage: scripts/run-tests.sh [test|check]
#   test (make test, the default): every stage: release build; the kernels
#     through the real nvcc; unit, golden, CLI and daemon suites (CTest, in
#     parallel); the Q8/Q4 weights' error against ggml's q8_0/q4_0 on the
#     fixture models (tests/quant); the nginx integration suite; vlm-bulk
#     against the make-run stack; the browser stage (Debian's Chromium
#     through a real WordPress and the demo page, on the same make-run
#     stack); the fuzz stage (every
#     libFuzzer target built and run for a fixed number of inputs); then the
#     sanitizer (ASan+UBSan) build with the same CTest suites and the
#     integration suite against the sanitized module and vlmd.
#   check (make check, the inner loop): release build, CTest suites,
#     integration suite. No nvcc, browser, fuzz or sanitizers.
# The layering checks (scripts/check-layers.py, no build needed) run first.
# tests/README.md says how to run one suite or one test.
set -eu
cd "$(dirname "$0")/.."

case "${1:-test}" in
test) mode=test ;;
check) mode=check ;;
*) echo "usage: $0 [test|check]" >&2; exit 2 ;;
esac

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
        printf '\nstage times (make %s):\n%s' "$mode" "$summary"
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

# The make-run stack (scripts/run-local.sh) that the bulk and browser stages
# share: started once here, or a running one reused (local-stack.sh).
root=$PWD
stack_started=0
stop_stack() {
    if [ "$stack_started" = 1 ]; then
        sh scripts/stop-local.sh >/dev/null 2>&1 || true
        stack_started=0
    fi
}
trap stop_stack EXIT
trap 'exit 130' INT TERM
start_stack() {
    VLMD="$PWD/$BUILD/bin/vlmd"
    export VLMD
    . scripts/local-stack.sh
    local_stack_up "$BUILD/test-run-local.log"
}

stage "build (release)" build_release
if [ $mode = test ] && ls kernels/*.cu >/dev/null 2>&1; then
    stage "nvcc sm_80/89/90 + cuobjdump" sh scripts/check-nvcc.sh "$BUILD/release"
fi
stage "unit, golden, CLI, daemon suites" run_ctest "$BUILD/release"
if [ $mode = test ] && [ -f tests/quant/run.sh ]; then
    stage "quant error: vlm vs ggml (gguf)" env VLM_BIN_DIR="$PWD/$BUILD/bin" sh tests/quant/run.sh
fi
if [ -f tests/integration/run.sh ]; then
    stage "integration (nginx, Redis, vlmd)" sh scripts/run-integration.sh
fi
if [ $mode = test ]; then
    stage "make-run stack for bulk + browser" start_stack
    if [ -f tests/bulk/run.sh ]; then
        stage "vlm-bulk against the stack" env VLM_BULK="$PWD/$BUILD/bin/vlm-bulk" \
            VLMD="$PWD/$BUILD/bin/vlmd" sh tests/bulk/run.sh
    fi
    if [ -f tests/browser/run.sh ]; then
        stage "browser: WordPress, demo, vlm-bulk" env VLM_BULK="$PWD/$BUILD/bin/vlm-bulk" \
            VLMD="$PWD/$BUILD/bin/vlmd" sh tests/browser/run.sh
    fi
    stop_stack
    if [ -f tests/fuzz/smoke.sh ]; then
        stage "fuzz targets, fixed runs each" sh tests/fuzz/smoke.sh "$PWD/$BUILD/fuzz"
    fi
    stage "build (asan+ubsan)" build_sanitize
    stage "suites under asan+ubsan" run_ctest_sanitized "$BUILD/sanitize"
    if [ -f tests/integration/run.sh ]; then
        stage "integration, module+vlmd with asan" sh scripts/run-integration.sh asan
    fi
fi

printf '\nstage times (make %s):\n%s' "$mode" "$summary"
echo "total: $(( $(date +%s) - total_start ))s"
