#!/bin/sh
# Integration tests: real nginx (with ngx_http_vlm_module), redis-server and
# vlmd on loopback, driven by pytest in build/venv-it (pinned packages from
# tests/integration/requirements.txt, including the official openai client).
# Needs build/bin/vlmd and build/bin/vlm-run (make build). Extra arguments
# go to pytest, e.g.  tests/integration/run.sh -k auth
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
venv=$root/build/venv-it
req=$root/tests/integration/requirements.txt

bash "$root/scripts/build-module.sh" >/dev/null

if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/requirements.txt"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$venv/requirements.txt"
fi

for b in vlmd vlm-run; do
    if [ ! -x "${VLM_BIN_DIR:-$root/build/bin}/$b" ]; then
        echo "integration: ${VLM_BIN_DIR:-$root/build/bin}/$b is missing (make build)" >&2
        exit 1
    fi
done

cd "$root"
exec "$venv/bin/python" -m pytest -q -p no:cacheprovider "$root/tests/integration" "$@"
