# Sourced by test scripts that need the `make run` stack (scripts/run-local.sh):
#   local_stack_up LOGFILE   reuses the stack running from build/run, or starts one on a free
#                            port (DETACH=1); sets stack_port, and stack_started=1 when it started
#                            it (the caller stops it with scripts/stop-local.sh).
# Expects $root (the repository) to be set.

local_stack_up() {
    stack_started=0
    if [ -f "$root/build/run/nginx.pid" ] && kill -0 "$(cat "$root/build/run/nginx.pid")" 2>/dev/null; then
        stack_port=$(sed -n 's/^ *listen 127\.0\.0\.1:\([0-9]*\);.*/\1/p' "$root/build/run/nginx.conf" | head -1)
        echo "reusing the running make-run stack on port $stack_port" >&2
        return 0
    fi
    stack_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    stack_started=1
    PORT=$stack_port DETACH=1 sh "$root/scripts/run-local.sh" > "$1" 2>&1 \
        || { cat "$1" >&2; return 1; }
}
