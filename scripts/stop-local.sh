#!/bin/sh
# make stop: stops what scripts/run-local.sh started (nginx, vlmd, Redis),
# by the pids it recorded in build/run/, and nothing else.
set -u

run=$(cd "$(dirname "$0")/.." && pwd)/build/run

for name in nginx vlmd redis; do
    pidfile=$run/$name.pid
    [ -f "$pidfile" ] || continue
    pid=$(cat "$pidfile")
    if kill -0 "$pid" 2>/dev/null; then
        # nginx: QUIT finishes requests in flight; the others drain on TERM
        if [ "$name" = nginx ]; then kill -QUIT "$pid"; else kill -TERM "$pid"; fi
        i=0
        while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do
            sleep 0.1
            i=$((i + 1))
        done
        if kill -0 "$pid" 2>/dev/null; then
            echo "stop-local: $name ($pid) did not stop in 10s, killing" >&2
            kill -KILL "$pid" 2>/dev/null
        fi
        echo "stop-local: stopped $name ($pid)"
    fi
    rm -f "$pidfile"
done
