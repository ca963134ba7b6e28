#!/bin/sh
# Browser tests (selenium driving Debian's headless Chromium) and vlm-bulk's WordPress tests, all
# against real stacks on loopback:
#   - the `make run` stack (scripts/run-local.sh), which serves the demo page;
#   - a real WordPress (tests/browser/wp-env.sh: Debian's wordpress, MariaDB, php-fpm, served by
#     the same nginx that loads our module, next to the vlm API and vlmd with the fixture model).
# Stacks already running are reused and left running; ones started here are stopped on exit.
# Screenshots land in build/test-artifacts/. Extra arguments go to pytest (e.g. -k demo).
set -eu

root=$(cd "$(dirname "$0")/../.." && pwd)
venv=$root/build/venv-browser
req=$root/tests/browser/requirements.txt
run=$root/build/run
started_run=0
started_wp=0

cleanup() {
    [ "$started_wp" = 1 ] && sh "$root/tests/browser/wp-env.sh" stop >/dev/null 2>&1
    [ "$started_run" = 1 ] && sh "$root/scripts/stop-local.sh" >/dev/null 2>&1
    true
}
trap cleanup EXIT INT TERM

if [ ! -x "$venv/bin/python" ] || ! cmp -s "$req" "$venv/requirements.txt"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check -r "$req"
    cp "$req" "$venv/requirements.txt"
fi

. "$root/scripts/local-stack.sh"
local_stack_up "$root/build/browser-run-local.log"
started_run=$stack_started
port=$stack_port

if [ -f "$root/build/wp-env/nginx.pid" ] && kill -0 "$(cat "$root/build/wp-env/nginx.pid")" 2>/dev/null; then
    echo "browser: reusing the WordPress environment in build/wp-env" >&2
else
    started_wp=1
    sh "$root/tests/browser/wp-env.sh" start
fi
# shellcheck disable=SC1091
. "$root/build/wp-env/env.sh"

tests="$root/tests/browser"
[ -f "$root/tests/bulk/test_bulk_wordpress.py" ] && tests="$tests $root/tests/bulk/test_bulk_wordpress.py"

cd "$root"
# shellcheck disable=SC2086
VLM_DEMO_URL=http://127.0.0.1:$port VLM_DEMO_KEY_FILE=$run/dev-api-key \
VLM_DEMO_ACCESS_LOG=$run/nginx-access.log \
VLM_BULK=${VLM_BULK:-$root/build/bin/vlm-bulk} \
    "$venv/bin/python" -m pytest -q -p no:cacheprovider $tests "$@"
