#!/bin/sh
# The quantization error check of make test: vlm's Q8/Q4 (vlm-quant-error)
# against ggml's q8_0/q4_0 (the gguf package) on every matrix of the fixture
# models and on the synthetic heavy-tailed matrices; fails if vlm's error is
# larger on any of them. A few seconds. Python packages are pinned in
# tests/quant/requirements.txt and installed into build/venv-quant.
# Extra arguments go to check_quant_error.py; e.g. the benchmark model:
#   sh tests/quant/run.sh --no-fixtures --per-kind 6 build/bench-model
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
venv=$root/build/venv-quant
req=$root/tests/quant/requirements.txt
bin=${VLM_BIN_DIR:-$root/build/bin}/vlm-quant-error

if [ ! -x "$bin" ]; then
    echo "quant: $bin is missing (make build)" >&2
    exit 1
fi
if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/requirements.txt"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$venv/requirements.txt"
fi

if [ "${1:-}" = --no-fixtures ]; then
    shift
    exec "$venv/bin/python" "$root/tests/quant/check_quant_error.py" --bin "$bin" "$@"
fi
exec "$venv/bin/python" "$root/tests/quant/check_quant_error.py" --bin "$bin" \
    --synthetic "$root/build/quant-synthetic" "$root"/tests/fixtures/models/* "$@"
