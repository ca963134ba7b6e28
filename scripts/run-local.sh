#!/bin/sh
# make run: builds the nginx module and starts Redis, vlmd and nginx (with
# ngx_http_vlm_module) on 127.0.0.1:${PORT:-8080}, all files in build/run/.
# Stays in the foreground until Ctrl-C (then stops everything), or with
# DETACH=1 returns once /readyz answers; scripts/stop-local.sh stops it.
# VLM_MODEL picks the model directory (default: the tiny test model).
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
run=$root/build/run
port=${PORT:-8080}
model=${VLM_MODEL:-$root/tests/fixtures/models/tiny-flash}
vlmd=${VLMD:-$root/build/bin/vlmd}
ready_timeout=${VLM_READY_TIMEOUT:-600}

die() { echo "run-local: $*" >&2; exit 1; }

[ -x "$vlmd" ] || die "$vlmd is missing: run 'make build' first"
[ -f "$model/config.json" ] || die "$model has no config.json (VLM_MODEL must be a model directory)"
command -v nginx >/dev/null || die "nginx is missing: run 'make deps'"
command -v redis-server >/dev/null || die "redis-server is missing: run 'make deps'"

if [ -f "$run/nginx.pid" ] && kill -0 "$(cat "$run/nginx.pid")" 2>/dev/null; then
    die "already running (pid $(cat "$run/nginx.pid")); 'make stop' first"
fi

# Another stack (another worktree, a test stage) may hold the port: then our
# nginx could not listen, and /readyz below would be answered by the other one.
if ! python3 -c 'import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as nginx does
s.bind(("127.0.0.1", int(sys.argv[1])))' "$port" 2>/dev/null; then
    die "127.0.0.1:$port is in use; pick another port: PORT=<port> make run"
fi

bash "$root/scripts/build-module.sh" >/dev/null

mkdir -p "$run"
rm -f "$run/vlmd.sock" "$run/redis.sock"

# A development API key (only its SHA-256 goes into the nginx config) and
# an HS256 secret for minting test JWTs. Both are kept across runs.
if [ ! -s "$run/dev-api-key" ]; then
    (umask 077; printf 'vlm-dev-%s\n' "$(openssl rand -hex 24)" > "$run/dev-api-key")
fi
key=$(cat "$run/dev-api-key")
printf '%s developer\n' "$(printf %s "$key" | sha256sum | cut -d' ' -f1)" > "$run/api-keys"
if [ ! -s "$run/jwt-hs256.secret" ]; then
    (umask 077; openssl rand -hex 32 > "$run/jwt-hs256.secret")
fi

# Headers for the demo's static files: no inline script, nothing loaded
# from elsewhere; data:/blob: because images are read and shrunk locally.
cat > "$run/demo-headers.conf" <<'HDR'
add_header Content-Security-Policy "default-src 'self'; img-src 'self' data: blob:; connect-src 'self' data: blob:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'" always;
add_header X-Content-Type-Options nosniff always;
add_header Referrer-Policy no-referrer always;
add_header Cache-Control no-cache always;
HDR

# The shared development preamble (conf/dev/nginx.conf.in) around this
# stack's http settings; see conf/nginx-vlm.conf for every option. Errors
# are logged from notice: at info nginx quotes client headers, a duplicated
# Authorization included (see "logs" in conf/nginx-vlm.conf).
sh "$root/scripts/dev-nginx-conf.sh" --run "$run" \
    --module "$root/build/modules/ngx_http_vlm_module.so" --workers 2 --log-level notice <<CONF
    access_log $run/nginx-access.log;
    # idle or stalled clients need no key: free their connections soon
    client_header_timeout 10s;
    client_body_timeout 10s;
    reset_timedout_connection on;
    client_max_body_size 24m;
    client_body_buffer_size 24m;

    vlm_daemon $run/vlmd.sock;
    vlm_model_revision local-$(basename "$model");
    vlm_redis unix:$run/redis.sock timeout=100ms;
    vlm_api_keys $run/api-keys;
    vlm_jwt_key alg=HS256 file=$run/jwt-hs256.secret;
    vlm_cors_origin http://127.0.0.1:$port;

    server {
        listen 127.0.0.1:$port;
        include $root/conf/dev/api-locations.conf;

        # The demo editor (editor_plugin/demo) and the browser client
        # (editor_plugin/js), read-only static files from the same origin as
        # the API, so the page needs no CORS. The key travels in the URL
        # fragment, which browsers never send, so it is not in access logs.
        location = / {
            root $root/editor_plugin/demo;
            try_files /index.html =404;
            limit_except GET { deny all; }
            include $run/demo-headers.conf;
        }
        location /demo/ {
            alias $root/editor_plugin/demo/;
            limit_except GET { deny all; }
            include $run/demo-headers.conf;
        }
        location /js/ {
            alias $root/editor_plugin/js/;
            limit_except GET { deny all; }
            include $run/demo-headers.conf;
        }
    }
CONF

nginx -t -q -p "$run" -c "$run/nginx.conf" -e "$run/nginx-error.log" \
    || die "nginx rejected $run/nginx.conf (see $run/nginx-error.log)"

stop() { sh "$root/scripts/stop-local.sh"; }

# Each process records its pid; stop-local.sh ends exactly those.
redis-server "$root/conf/redis.conf" --port 0 --unixsocket "$run/redis.sock" \
    --unixsocketperm 700 --dir "$run" --daemonize no \
    > "$run/redis.log" 2>&1 &
echo $! > "$run/redis.pid"

"$vlmd" --model "$model" --socket "$run/vlmd.sock" --prompts "$root/conf/prompts" \
    > "$run/vlmd.log" 2>&1 &
echo $! > "$run/vlmd.pid"

nginx -p "$run" -c "$run/nginx.conf" -e "$run/nginx-error.log" \
    > "$run/nginx.out" 2>&1 &
nginx_pid=$!   # nginx writes nginx.pid itself (stop-local.sh uses that)

trap 'echo; echo "run-local: stopping"; stop; exit 0' INT TERM

waited=0
until curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; do
    for p in redis vlmd; do
        if ! kill -0 "$(cat "$run/$p.pid")" 2>/dev/null; then
            tail -5 "$run/$p.log" >&2
            stop
            die "$p exited during startup (log: $run/$p.log)"
        fi
    done
    if ! kill -0 "$nginx_pid" 2>/dev/null; then
        tail -5 "$run/nginx-error.log" >&2
        stop
        die "nginx exited during startup (log: $run/nginx-error.log)"
    fi
    if [ "$waited" -ge "$ready_timeout" ]; then
        stop
        die "not ready after ${ready_timeout}s (logs in $run)"
    fi
    sleep 1
    waited=$((waited + 1))
done

cat <<MSG
vlm is running: http://127.0.0.1:$port   (logs and keys in $run)
  model:   $model
  API key: $run/dev-api-key
  demo:    http://127.0.0.1:$port/#key=$key

  curl -s http://127.0.0.1:$port/v1/chat/completions \\
    -H "Authorization: Bearer \$(cat $run/dev-api-key)" \\
    -H 'Content-Type: application/json' \\
    -d '{"model":"glm-4.6v-flash","max_tokens":32,"temperature":0,
         "messages":[{"role":"user","content":"Hello"}]}'

MSG
case "$model" in
*tests/fixtures/models/*)
    echo "NOTE: this is the tiny random TEST model: its answers are meaningless text."
    echo "      For real answers: VLM_MODEL=/path/to/GLM-4.6V-Flash make run"
    ;;
esac

if [ "${DETACH:-0}" = 1 ]; then
    echo "Detached; 'make stop' stops it."
    exit 0
fi

echo "Press Ctrl-C to stop."
while kill -0 "$(cat "$run/vlmd.pid")" 2>/dev/null \
      && kill -0 "$(cat "$run/redis.pid")" 2>/dev/null; do
    sleep 1
done
echo "run-local: a component exited (see $run/*.log); stopping" >&2
stop
exit 1
