#!/bin/sh
# End-to-end tests of vlm-bulk against the REAL stack (nginx + module, Redis, vlmd with the tiny
# fixture model) started by scripts/run-local.sh DETACH=1 on a free port. No mocks.
# Reuses a stack that is already running from build/run (and leaves it running); otherwise
# starts one and stops it on exit. VLM_BULK names the binary (default build/bin/vlm-bulk; when
# missing it is compiled with g++ into a temp dir). VLMD is passed through to run-local.sh.
# The scanner unit tests (test_bulk_units) run in CTest, not here. Arguments name the tests of
# test_bulk.py to run (default: all), e.g. `sh tests/bulk/run.sh test_fetch_remote`.
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
run=$root/build/run
work=$(mktemp -d /tmp/vlm-bulk-test.XXXXXX)
started=0

cleanup() {
    if [ "$started" = 1 ]; then sh "$root/scripts/stop-local.sh" >/dev/null 2>&1 || true; fi
    rm -rf "$work"
}
trap cleanup EXIT INT TERM

bin=${VLM_BULK:-$root/build/bin/vlm-bulk}
if [ ! -x "$bin" ]; then
    echo "run.sh: $bin missing; compiling vlm-bulk with g++" >&2
    bin=$work/vlm-bulk
    g++ -std=c++20 -O2 -Wall -Wextra -Wno-unused-parameter -I"$root/model_runtime" -o "$bin" "$root"/editor_plugin/bulk/*.cpp \
        "$root"/model_runtime/image/image_decode.cpp "$root"/model_runtime/image/image_jpeg.cpp \
        "$root"/model_runtime/image/image_png.cpp "$root"/model_runtime/image/image_webp.cpp \
        "$root"/model_runtime/image/image_gif.cpp "$root"/model_runtime/util/utf8.cpp \
        -lcurl -ljansson -ljpeg -lpng16 -lwebp -lgif -lexif -pthread
fi

. "$root/scripts/local-stack.sh"
local_stack_up "$work/run-local.log"
started=$stack_started
port=$stack_port

VLM_BULK=$bin VLM_ENDPOINT=http://127.0.0.1:$port VLM_API_KEY_FILE=$run/dev-api-key \
VLM_ACCESS_LOG=$run/nginx-access.log VLM_BULK_WORK=$work \
    python3 "$root/tests/bulk/test_bulk.py" "$@"
