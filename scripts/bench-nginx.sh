#!/usr/bin/env bash
# bench-nginx: the nginx half of `make bench`. In a private temp directory it
# starts Redis, vlmd (tiny fixture model) and nginx with ngx_http_vlm_module,
# on loopback only, then measures
#   1. cache hits: wrk (POST, --latency) against one cached deterministic
#      chat request, checking every response is a 200 HIT, and against a
#      static file in the same nginx with exactly the same body size;
#      prints requests/s, p50, p99 of both and the ratio hit / static;
#   2. the module's own overhead on a miss: N sequential uncached requests
#      (unique prompts, max_tokens 1) through nginx (curl's time_total) and
#      the same kind of request straight to vlmd (vlm-run --daemon --json,
#      submit to done); overhead = median(nginx) - median(direct);
#   3. hostile JSON (issue 12): 23 MB bodies shaped to hurt a parser, to a
#      location with client_max_body_size 24m (conf/nginx-vlm.conf's):
#      the answer's latency, the worker's peak and kept RSS, and the
#      slowest small request on the same worker meanwhile
#      (scripts/bench-hostile-json.py).
# Prints a stage table; exits non-zero on any failure; a trap stops every
# process it started (by pid) and removes the temp directory.
# Leaves out: model speed (bench.sh's other stages), streaming, images.
#
# Environment: BUILD (default build), VLMD, VLM_RUN, VLM_NGX_MODULE, VLM_MODEL,
#   PORT (default: a free port), DURATION (seconds per wrk run, default 5),
#   ROUNDS (alternating hit/static wrk runs, default 2), CONNECTIONS (default
#   32), MISS_N (default 30), HOSTILE_MB (body size, default 23; 0 skips the
#   stage), KEEP=1 keeps the temp dir.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$root/build}
case "$BUILD" in /*) ;; *) BUILD=$root/$BUILD ;; esac
vlmd=${VLMD:-$BUILD/bin/vlmd}
vlm_run=${VLM_RUN:-$BUILD/bin/vlm-run}
model=${VLM_MODEL:-$root/tests/fixtures/models/tiny-flash}
duration=${DURATION:-5}
rounds=${ROUNDS:-2}
connections=${CONNECTIONS:-32}
miss_n=${MISS_N:-30}
hostile_mb=${HOSTILE_MB:-23}
threads=2

die() { echo "bench-nginx: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

for tool in wrk nginx redis-server redis-cli curl openssl python3; do
    command -v "$tool" >/dev/null || die "$tool is missing: run 'make deps'"
done
[ -x "$vlmd" ] || die "$vlmd is missing: run 'make build' (or set VLMD)"
[ -x "$vlm_run" ] || die "$vlm_run is missing: run 'make build' (or set VLM_RUN)"
[ -f "$model/config.json" ] || die "$model has no config.json"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vlm-bench-nginx.XXXXXX")
redis_pid="" vlmd_pid="" nginx_pid="" wrk_pid=""

stop_pid() {   # $1 pid, $2 signal: ask, wait up to 10 s, then kill
    local pid=$1 i=0
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$2" "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    stop_pid "$wrk_pid" TERM
    stop_pid "$nginx_pid" QUIT
    stop_pid "$vlmd_pid" TERM
    stop_pid "$redis_pid" TERM
    if [ "${KEEP:-0}" = 1 ] || [ $rc -ne 0 ]; then
        echo "bench-nginx: logs kept in $tmp" >&2
    else
        rm -rf "$tmp"
    fi
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
port=${PORT:-$(free_port)}
base=http://127.0.0.1:$port

echo "bench-nginx: $(date '+%Y-%m-%d %H:%M'), $(nproc) CPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"

# ---- stage: start the stack ----
t0=$(now)
if [ -n "${VLM_NGX_MODULE:-}" ]; then
    module=$VLM_NGX_MODULE
else
    bash "$root/scripts/build-module.sh" >"$tmp/build-module.log" 2>&1 \
        || { tail -20 "$tmp/build-module.log" >&2; die "module build failed"; }
    module=$root/build/modules/ngx_http_vlm_module.so
fi
[ -f "$module" ] || die "$module is missing"

mkdir -p "$tmp/static"
key="vlm-bench-$(openssl rand -hex 16)"
printf '%s bench\n' "$(printf %s "$key" | sha256sum | cut -d' ' -f1)" >"$tmp/api-keys"

# One worker: wrk's two threads get the other core. No access log for
# either location, so the static baseline and the module do the same I/O;
# error log at warn, so neither pays for info lines.
sh "$root/scripts/dev-nginx-conf.sh" --run "$tmp" --module "$module" \
    --workers 1 --log-level warn <<CONF
    access_log off;
    client_max_body_size 1m;
    client_body_buffer_size 64k;
    keepalive_requests 1000000;

    vlm_daemon $tmp/vlmd.sock;
    vlm_model glm-4.6v-flash;
    vlm_model_revision bench-$(basename "$model");
    vlm_redis unix:$tmp/redis.sock timeout=200ms;
    vlm_cache_ttl 3600s;
    vlm_api_keys $tmp/api-keys;
    vlm_max_tokens 64;
    vlm_timeout 60s;

    server {
        listen 127.0.0.1:$port;
        include $root/conf/dev/api-locations.conf;
        # as conf/nginx-vlm.conf: bodies up to 24m, in memory
        location = /hostile/v1/alt-text {
            client_max_body_size 24m;
            client_body_buffer_size 24m;
            vlm_api alt_text;
        }
        location = /static/answer.json {
            root $tmp;
            default_type application/json;
        }
    }
CONF

redis-server --port 0 --unixsocket "$tmp/redis.sock" --unixsocketperm 700 \
    --save "" --appendonly no --dir "$tmp" >"$tmp/redis.log" 2>&1 &
redis_pid=$!
"$vlmd" --model "$model" --socket "$tmp/vlmd.sock" --threads 1 \
    --prompts "$root/conf/prompts" >"$tmp/vlmd.log" 2>&1 &
vlmd_pid=$!
nginx -t -q -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" \
    || die "nginx rejected $tmp/nginx.conf"
nginx -p "$tmp" -c "$tmp/nginx.conf" -e "$tmp/nginx-error.log" >"$tmp/nginx.out" 2>&1 &
nginx_pid=$!

waited=0
until curl -fsS "$base/readyz" >/dev/null 2>&1; do
    for p in redis vlmd nginx; do
        pv=${p}_pid
        kill -0 "${!pv}" 2>/dev/null || { tail -5 "$tmp/$p"*.log >&2 || true; die "$p exited during startup"; }
    done
    [ $waited -lt 600 ] || die "not ready after 60 s (logs in $tmp)"
    sleep 0.1
    waited=$((waited + 1))
done
t_start=$(elapsed "$t0")

# ---- stage: fill the cache with one deterministic request ----
t0=$(now)
body='{"model":"glm-4.6v-flash","messages":[{"role":"user","content":"Write alt text for a photo of a red bicycle leaning on a blue wall."}],"max_tokens":16,"temperature":0}'
printf %s "$body" >"$tmp/request.json"
post() {   # $1 body file, $2 output body file; prints "status cache-header"
    curl -sS -o "$2" -D "$tmp/headers.txt" -X POST "$base/v1/chat/completions" \
        -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
        --data-binary "@$1" -w '%{http_code}' >"$tmp/status.txt" || return 1
    printf '%s %s\n' "$(cat "$tmp/status.txt")" \
        "$(awk -F': *' 'tolower($1) == "x-vlm-cache" { sub(/\r$/, "", $2); print $2 }' "$tmp/headers.txt")"
}
first=$(post "$tmp/request.json" "$tmp/first.json") || die "fill request failed"
[ "${first% *}" = 200 ] || die "fill request: HTTP ${first% *}: $(head -c 300 "$tmp/first.json")"
second=$(post "$tmp/request.json" "$tmp/hit.json") || die "second request failed"
[ "$second" = "200 HIT" ] || die "second identical request is not a 200 HIT: '$second'"
# The static file is the cached answer itself: same bytes, same size.
cp "$tmp/hit.json" "$tmp/static/answer.json"
answer_bytes=$(wc -c <"$tmp/hit.json")
static_bytes=$(curl -fsS "$base/static/answer.json" | wc -c)
[ "$static_bytes" = "$answer_bytes" ] || die "static file is $static_bytes bytes, the answer $answer_bytes"
t_fill=$(elapsed "$t0")

# ---- stage: wrk, cache hit vs static ----
# Same Lua for both runs (a response callback costs wrk time; both pay it).
# Per-thread counters are summed in done() through setup()'s thread handles.
cat >"$tmp/bench.lua" <<'LUA'
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args)
  mode = args[1]
  ok, bad_status, not_hit = 0, 0, 0
  if mode == "hit" then
    local f = assert(io.open(args[2], "rb"))
    wrk.method = "POST"
    wrk.body = f:read("*a")
    f:close()
    wrk.headers["Content-Type"] = "application/json"
    wrk.headers["Authorization"] = "Bearer " .. args[3]
  end
end
function response(status, headers, body)
  if status ~= 200 then bad_status = bad_status + 1 end
  if mode == "hit" then
    local cache
    for k, v in pairs(headers) do
      if string.lower(k) == "x-vlm-cache" then cache = v end
    end
    if cache ~= "HIT" then not_hit = not_hit + 1 end
  end
  ok = ok + 1
end
function done(summary, latency, requests)
  local n, bad, miss = 0, 0, 0
  for _, t in ipairs(threads) do
    n = n + t:get("ok"); bad = bad + t:get("bad_status"); miss = miss + t:get("not_hit")
  end
  local e = summary.errors
  io.write(string.format(
    "BENCH requests=%d rps=%.1f p50_us=%d p99_us=%d non200=%d nonhit=%d errors=%d\n",
    n, summary.requests / (summary.duration / 1e6), latency:percentile(50),
    latency:percentile(99), bad, miss, e.connect + e.read + e.write + e.timeout))
end
LUA

run_wrk() {   # $1 name, $2 url, then script args; appends the BENCH line to $tmp/wrk-lines-*
    local name=$1 url=$2; shift 2
    # In the background and waited for, so a signal reaches the trap at once.
    wrk --latency -t "$threads" -c "$connections" -d "${duration}s" --timeout 5s \
        -s "$tmp/bench.lua" "$url" -- "$@" >"$tmp/wrk-$name.txt" 2>&1 &
    wrk_pid=$!
    wait "$wrk_pid" || { cat "$tmp/wrk-$name.txt" >&2; die "wrk ($name) failed"; }
    wrk_pid=""
    grep '^BENCH ' "$tmp/wrk-$name.txt" >>"$tmp/wrk-lines-${name%-*}" \
        || { cat "$tmp/wrk-$name.txt" >&2; die "wrk ($name) printed no summary"; }
}
field() { awk -v k="$2" '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) print kv[2] } }' <<<"$1"; }

# Rounds alternate hit / static so load drift from the shared machine hits
# both; each target reports its best round (all rounds are in the logs).
best() {   # BENCH lines on stdin -> the one with the highest rps
    awk '{ for (i = 2; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "rps" && kv[2] + 0 > b) { b = kv[2] + 0; l = $0 } } }
         END { print l }'
}
t_hit=0 t_static=0
for round in $(seq 1 "$rounds"); do
    t0=$(now)
    run_wrk "hit-$round" "$base/v1/chat/completions" hit "$tmp/request.json" "$key"
    t_hit=$(awk -v a="$t_hit" -v b="$(elapsed "$t0")" 'BEGIN { printf "%.1f", a + b }')
    t0=$(now)
    run_wrk "static-$round" "$base/static/answer.json" static
    t_static=$(awk -v a="$t_static" -v b="$(elapsed "$t0")" 'BEGIN { printf "%.1f", a + b }')
done
for name in hit static; do
    while IFS= read -r line; do
        [ -n "$line" ] || continue
        [ "$(field "$line" requests)" -gt 0 ] || die "wrk ($name) completed no request"
        [ "$(field "$line" non200)" = 0 ] || die "wrk ($name): $(field "$line" non200) responses were not 200"
        [ "$(field "$line" errors)" = 0 ] || die "wrk ($name): $(field "$line" errors) socket errors/timeouts"
        if [ $name = hit ]; then
            [ "$(field "$line" nonhit)" = 0 ] || die "wrk (hit): $(field "$line" nonhit) responses were not cache HITs"
        fi
    done <"$tmp/wrk-lines-$name"
done
hit=$(best <"$tmp/wrk-lines-hit")
static=$(best <"$tmp/wrk-lines-static")

# ---- stage: the module's overhead on a miss ----
# Unique prompts of equal length (vlmd's prefix cache then helps both paths
# equally); the nginx request, the direct request and a static GET of the
# answer's size alternate, so load drift hits all three. The overhead is the
# median of the per-round differences nginx - direct. The static GET shows
# how much of it is plain HTTP on loopback (curl + TCP connect + nginx core).
t0=$(now)
nonce=$(openssl rand -hex 4)
: >"$tmp/miss-nginx.txt"; : >"$tmp/miss-direct.txt"; : >"$tmp/miss-static.txt"; : >"$tmp/miss-diff.txt"
for i in $(seq 1 "$miss_n"); do
    tag=$(printf '%s%05d' "$nonce" "$i")
    printf '{"model":"glm-4.6v-flash","messages":[{"role":"user","content":"Describe item n%s."}],"max_tokens":1,"temperature":0}' \
        "$tag" >"$tmp/miss.json"
    out=$(curl -sS -o "$tmp/miss-out.json" -D "$tmp/miss-headers.txt" -X POST "$base/v1/chat/completions" \
        -H "Authorization: Bearer $key" -H 'Content-Type: application/json' \
        --data-binary "@$tmp/miss.json" -w '%{http_code} %{time_total}') || die "miss request $i failed"
    cache=$(awk -F': *' 'tolower($1) == "x-vlm-cache" { sub(/\r$/, "", $2); print $2 }' "$tmp/miss-headers.txt")
    [ "${out% *}" = 200 ] || die "miss request $i: HTTP ${out% *}: $(head -c 300 "$tmp/miss-out.json")"
    [ "$cache" = MISS ] || die "miss request $i was '$cache', not MISS"
    t_n=$(awk -v s="${out#* }" 'BEGIN { printf "%.3f", s * 1000 }')

    "$vlm_run" --daemon "$tmp/vlmd.sock" --prompt "Describe item d${tag}." --max-tokens 1 \
        --temperature 0 --json >"$tmp/direct-out.json" 2>"$tmp/direct-err.txt" \
        || die "vlm-run --daemon failed: $(cat "$tmp/direct-err.txt")"
    t_d=$(python3 -c 'import json, sys; print("%.3f" % json.load(sys.stdin)["timings"]["total_ms"])' \
        <"$tmp/direct-out.json") || die "vlm-run printed no timings"

    out=$(curl -sS -o /dev/null "$base/static/answer.json" -w '%{http_code} %{time_total}') \
        || die "static request $i failed"
    [ "${out% *}" = 200 ] || die "static request $i: HTTP ${out% *}"
    t_s=$(awk -v s="${out#* }" 'BEGIN { printf "%.3f", s * 1000 }')

    echo "$t_n" >>"$tmp/miss-nginx.txt"
    echo "$t_d" >>"$tmp/miss-direct.txt"
    echo "$t_s" >>"$tmp/miss-static.txt"
    awk -v a="$t_n" -v b="$t_d" 'BEGIN { printf "%.3f\n", a - b }' >>"$tmp/miss-diff.txt"
done
median() { sort -g "$1" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
p90() { sort -g "$1" | awk '{ v[NR] = $1 } END { i = int(NR * 0.9 + 0.5); if (i < 1) i = 1; print v[i] }'; }
m_nginx=$(median "$tmp/miss-nginx.txt")
m_direct=$(median "$tmp/miss-direct.txt")
m_static=$(median "$tmp/miss-static.txt")
overhead=$(median "$tmp/miss-diff.txt")
# On a loaded machine every process wake-up can wait for a core; the fastest
# request of each path is the closest to an idle machine.
fastest() { sort -g "$1" | head -1; }
overhead_min=$(awk -v a="$(fastest "$tmp/miss-nginx.txt")" -v b="$(fastest "$tmp/miss-direct.txt")" 'BEGIN { printf "%.3f", a - b }')
t_miss=$(elapsed "$t0")

# ---- stage: hostile JSON bodies (issue 12) ----
t0=$(now)
hostile_line="hostile_json_answer_ms_max=- hostile_json_cpu_ms_max=- hostile_json_peak_mb_max=- hostile_json_kept_mb_max=- hostile_json_probe_ms_max=-"
if [ "$hostile_mb" -gt 0 ]; then
    python3 "$root/scripts/bench-hostile-json.py" 127.0.0.1 "$port" /hostile/v1/alt-text /healthz \
        "$key" "$nginx_pid" $((hostile_mb * 1024 * 1024)) >"$tmp/hostile.txt" 2>&1 \
        || { cat "$tmp/hostile.txt" >&2; die "hostile JSON stage failed"; }
    hostile_line=$(grep '^BENCH ' "$tmp/hostile.txt" | sed 's/^BENCH //')
fi
t_hostile=$(elapsed "$t0")

# ---- report ----
ms() { awk -v u="$1" 'BEGIN { printf "%.2f", u / 1000 }'; }
ratio=$(awk -v a="$(field "$hit" rps)" -v b="$(field "$static" rps)" 'BEGIN { printf "%.2f", a / b }')

echo
echo "nginx, loopback, 1 worker; wrk ${threads} threads, ${connections} connections, ${duration} s, --latency"
echo "answer body: $answer_bytes bytes (the static file is the same bytes)"
printf '%-26s %12s %10s %10s %10s\n' "" "requests" "req/s" "p50 ms" "p99 ms"
for name in hit static; do
    line=${!name}
    label="cache hit (POST, HIT)"; [ $name = static ] && label="static file (GET)"
    printf '%-26s %12s %10s %10s %10s\n' "$label" "$(field "$line" requests)" "$(field "$line" rps)" \
        "$(ms "$(field "$line" p50_us)")" "$(ms "$(field "$line" p99_us)")"
done
echo "ratio cache-hit / static req/s: $ratio"
echo
echo "miss, $miss_n sequential requests each way, max_tokens 1 (ms)"
printf '%-34s %8s %8s %8s\n' "" "median" "p90" "fastest"
printf '%-34s %8s %8s %8s\n' "through nginx (curl time_total)" "$m_nginx" "$(p90 "$tmp/miss-nginx.txt")" "$(fastest "$tmp/miss-nginx.txt")"
printf '%-34s %8s %8s %8s\n' "straight to vlmd (vlm-run --daemon)" "$m_direct" "$(p90 "$tmp/miss-direct.txt")" "$(fastest "$tmp/miss-direct.txt")"
printf '%-34s %8s %8s %8s\n' "static GET, same size (baseline)" "$m_static" "$(p90 "$tmp/miss-static.txt")" "$(fastest "$tmp/miss-static.txt")"
printf '%-34s %8s %8s %8s\n' "difference nginx - direct" "$overhead" "$(p90 "$tmp/miss-diff.txt")" "-"
echo "module overhead on a miss (median of per-request differences): $overhead ms"
echo "  fastest nginx - fastest direct (closest to an idle machine): $overhead_min ms"
echo "  plain HTTP on loopback (curl + TCP + nginx core) is about the static GET: $m_static ms"
if [ "$hostile_mb" -gt 0 ]; then
    echo
    grep -v '^BENCH ' "$tmp/hostile.txt"
fi
echo
echo "stage                 seconds"
printf '%-21s %7s\n' start "$t_start" fill-cache "$t_fill" wrk-cache-hit "$t_hit" wrk-static "$t_static" miss-overhead "$t_miss" hostile-json "$t_hostile"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "BENCH nginx_hit_rps=$(field "$hit" rps) nginx_hit_p50_ms=$(ms "$(field "$hit" p50_us)") nginx_hit_p99_ms=$(ms "$(field "$hit" p99_us)") nginx_static_rps=$(field "$static" rps) nginx_static_p50_ms=$(ms "$(field "$static" p50_us)") nginx_static_p99_ms=$(ms "$(field "$static" p99_us)") nginx_hit_static_ratio=$ratio nginx_miss_overhead_ms=$overhead nginx_miss_overhead_fastest_ms=$overhead_min nginx_miss_http_baseline_ms=$m_static $hostile_line"
