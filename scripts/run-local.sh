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

bash "$root/scripts/build-module.sh" >/dev/null

mkdir -p "$run/body" "$run/proxy" "$run/fastcgi" "$run/uwsgi" "$run/scgi"
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

user_line=""
[ "$(id -u)" -eq 0 ] && user_line="user root;"

cat > "$run/nginx.conf" <<CONF
# written by scripts/run-local.sh; see conf/nginx-vlm.conf for every option
$user_line
load_module $root/build/modules/ngx_http_vlm_module.so;
worker_processes 2;
daemon off;
pid $run/nginx.pid;
# notice: at info nginx quotes client headers, a duplicated Authorization
# included (see "logs" in conf/nginx-vlm.conf)
error_log $run/nginx-error.log notice;
events { worker_connections 512; }
http {
    access_log $run/nginx-access.log;
    # idle or stalled clients need no key: free their connections soon
    client_header_timeout 10s;
    client_body_timeout 10s;
    reset_timedout_connection on;
    client_body_temp_path $run/body;
    proxy_temp_path $run/proxy;
    fastcgi_temp_path $run/fastcgi;
    uwsgi_temp_path $run/uwsgi;
    scgi_temp_path $run/scgi;
    client_max_body_size 24m;
    client_body_buffer_size 24m;
    include /etc/nginx/mime.types;
    default_type application/octet-stream;

    vlm_daemon $run/vlmd.sock;
    vlm_model_revision local-$(basename "$model");
    vlm_redis unix:$run/redis.sock timeout=100ms;
    vlm_api_keys $run/api-keys;
    vlm_jwt_key alg=HS256 file=$run/jwt-hs256.secret;
    vlm_cors_origin http://127.0.0.1:$port;

    server {
        listen 127.0.0.1:$port;
        location = /v1/chat/completions { vlm_api chat_completions; }
        location = /v1/alt-text { vlm_api alt_text; }
        location = /v1/summary { vlm_api summary; }
        location = /v1/models { vlm_api models; }
        location = /healthz { vlm_api health; }
        location = /readyz { vlm_api ready; }
        location = /metrics { allow 127.0.0.1; deny all; vlm_api metrics; }

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
# nginx writes nginx.pid itself

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
