#!/bin/sh
# make bench: performance of the model runtime on this machine, against the
# machine's own measured limits. `make bench` has built everything; this
#   1. makes build/bench-model/ with mkmodel (real GLM-4.6V-Flash shapes, 2 text
#      layers, 2 vision blocks, random bf16) unless it is already up to date,
#   2. runs bench-ops (read bandwidth, bf16/fp32 peaks, matmul vs floor),
#   3. runs bench-model (decode, prefill, vision; extrapolated to the full model)
#      with bench-ops' machine limits,
#   4. runs bench-jinja (the chat template's cost per alt-text prompt),
#   5. runs bench-daemon (vlmd over shared memory), bench-sched (a small
#      client beside a heavy one) and the nginx benches (cache hit, module
#      overhead, hostile JSON bodies),
#   6. prints one summary table. Full outputs stay in build/bench-logs/.
# Beside vlm, at the same thread count and in the same run, the peer:
# scripts/bench-peer.sh builds llama.cpp from PyPI's llama-cpp-python source
# package into build/peer/ (first time: long), converts the benchmark model to
# GGUF bf16 / q8_0 / q4_0 before the timed stages ("peer prepare"), then after
# bench-model times ggml's matmul and llama.cpp's decode and prefill ("peer").
# PEER=0 skips it; a failed peer build is reported and skipped.
# Environment: BUILD (default build), THREADS (default: all CPUs), PEER (1).
set -eu

BUILD=${BUILD:-build}
BIN=$BUILD/bin
MODEL_DIR=$BUILD/bench-model
LOGS=$BUILD/bench-logs
THREADS=${THREADS:-0}
PEER=${PEER:-1}

for tool in mkmodel bench-ops bench-quant bench-model bench-daemon bench-sched bench-jinja vlmd vlm-run; do
    if [ ! -x "$BIN/$tool" ]; then
        echo "bench: $BIN/$tool is missing; run 'make bench' (it builds first)" >&2
        exit 1
    fi
done
mkdir -p "$LOGS"

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

load=$(cut -d' ' -f1 /proc/loadavg)
cpus=$(nproc)
echo "bench: $(date '+%Y-%m-%d %H:%M'), $cpus CPUs, load average $load at start"

# ---- 1. the benchmark model ----
t0=$(now)
"$BIN/mkmodel" --out "$MODEL_DIR" --text-layers 2 --vision-depth 2 --seed 1 --if-changed
t_model=$(elapsed "$t0")
echo "bench: stage model: $t_model s"

# ---- 1b. the peer: build llama.cpp, convert and quantize the model (no timing) ----
t0=$(now)
peer_ok=0
peer_note="PEER=0: not run"
if [ "$PEER" != 0 ]; then
    echo "bench: peer prepare: llama.cpp from PyPI's source package into $BUILD/peer/ (PEER=0 skips)"
    ok_file=$LOGS/bench-peer-prepare.ok
    rm -f "$ok_file"
    (if BUILD=$BUILD MODEL_DIR=$MODEL_DIR sh scripts/bench-peer.sh prepare 2>&1; then echo 1 >"$ok_file"
     else echo 0 >"$ok_file"; fi) | tee "$LOGS/bench-peer-prepare.txt"
    peer_ok=$(cat "$ok_file" 2>/dev/null || echo 0)
    [ "$peer_ok" = 1 ] || peer_note="peer build/convert failed, skipped (see $LOGS/bench-peer-prepare.txt)"
fi
t_peer_prep=$(elapsed "$t0")
echo "bench: stage peer prepare: $t_peer_prep s"

# ---- 2. machine limits and matmul ----
t0=$(now)
ops_args=""
[ "$THREADS" -gt 0 ] && ops_args="$THREADS"
# shellcheck disable=SC2086
if ! "$BIN/bench-ops" $ops_args >"$LOGS/bench-ops.txt" 2>&1; then
    cat "$LOGS/bench-ops.txt"
    echo "bench: bench-ops failed (see $LOGS/bench-ops.txt); bench-model will measure the machine itself" >&2
fi
cat "$LOGS/bench-ops.txt"
t_ops=$(elapsed "$t0")
echo "bench: stage bench-ops: $t_ops s"

# bench-ops prints a table; take `BENCH key=value` lines when it has them,
# else the table's labelled lines.
ops_value() {   # $1 = BENCH key, $2 = table label
    v=$(awk -v k="$1" '$1 == "BENCH" { for (i = 2; i <= NF; i++) { split($i, kv, "=");
            if (kv[1] == k) r = kv[2] } } END { print r }' "$LOGS/bench-ops.txt")
    if [ -z "$v" ]; then
        v=$(awk -v l="$2" 'index($0, l) == 1 { sub(l, ""); print $1; exit }' "$LOGS/bench-ops.txt")
    fi
    echo "$v"
}
bw=$(ops_value bandwidth_gbs "read bandwidth")
bf16=$(ops_value bf16_peak_gflops "bf16 dot peak")
fp32=$(ops_value fp32_peak_gflops "fp32 FMA peak")

# ---- 3. the model ----
t0=$(now)
set -- --model "$MODEL_DIR" --threads "$THREADS"
[ -n "$bw" ] && set -- "$@" --bandwidth-gbs "$bw"
[ -n "$bf16" ] && set -- "$@" --bf16-peak-gflops "$bf16"
[ -n "$fp32" ] && set -- "$@" --fp32-peak-gflops "$fp32"
if ! "$BIN/bench-model" "$@" >"$LOGS/bench-model.txt" 2>&1; then
    cat "$LOGS/bench-model.txt"
    echo "bench: bench-model failed (see $LOGS/bench-model.txt)" >&2
    exit 1
fi
echo
cat "$LOGS/bench-model.txt"
t_run=$(elapsed "$t0")
echo "bench: stage bench-model: $t_run s"

# ---- 3a. quantized weights (int8, int4): products against their byte floors,
# then the model with the text decoder, vision tower and vocabulary matrices
# quantized (the plan that fits the full model in 11 / 7 GB), no vision ----
t0=$(now)
"$BIN/bench-quant" $ops_args >"$LOGS/bench-quant.txt" 2>&1 || echo "bench: bench-quant failed (see $LOGS/bench-quant.txt)" >&2
cat "$LOGS/bench-quant.txt"
for fmt in int8 int4; do
    if ! "$BIN/bench-model" "$@" --weights "$fmt" --quantize-vision --quantize-lm-head --no-vision \
            >"$LOGS/bench-model-$fmt.txt" 2>&1; then
        cat "$LOGS/bench-model-$fmt.txt"
        echo "bench: bench-model --weights $fmt failed (see $LOGS/bench-model-$fmt.txt)" >&2
    fi
    grep -E '^(weights|model):|tok/s best' "$LOGS/bench-model-$fmt.txt" || true
done
t_quant=$(elapsed "$t0")
echo "bench: stage quantized weights: $t_quant s"

# ---- 3b. the peer, timed at vlm's thread count with bench-ops' limits ----
t0=$(now)
: >"$LOGS/bench-peer.txt"
if [ "$peer_ok" = 1 ]; then
    vlm_threads=$(awk '$1 == "BENCH" { for (i = 2; i <= NF; i++) { split($i, kv, "=");
        if (kv[1] == "threads") r = kv[2] } } END { print r }' "$LOGS/bench-model.txt")
    [ -n "$vlm_threads" ] || vlm_threads=$THREADS
    # bench-model's limits: bench-ops' when it ran, else measured by bench-model (AVX2-only hosts)
    peer_bw=$(awk '$1 == "BENCH" { for (i = 2; i <= NF; i++) { split($i, kv, "=");
        if (kv[1] == "bandwidth_gbs") r = kv[2] } } END { print r }' "$LOGS/bench-model.txt")
    [ -n "$peer_bw" ] || peer_bw=$bw
    if BUILD=$BUILD MODEL_DIR=$MODEL_DIR THREADS=$vlm_threads BANDWIDTH_GBS=$peer_bw BF16_PEAK_GFLOPS=$bf16 \
            sh scripts/bench-peer.sh run >"$LOGS/bench-peer.txt" 2>&1; then
        peer_note=""
    else
        peer_note="peer timing failed (see $LOGS/bench-peer.txt)"
    fi
    echo
    cat "$LOGS/bench-peer.txt"
fi
t_peer=$(elapsed "$t0")
echo "bench: stage peer: $t_peer s"

# ---- 4. the chat template (tiny-flash's directory: its chat_template.jinja) ----
t0=$(now)
jinja_ok=1
"$BIN/bench-jinja" --model tests/fixtures/models/tiny-flash >"$LOGS/bench-jinja.txt" 2>&1 || jinja_ok=0
cat "$LOGS/bench-jinja.txt"
[ "$jinja_ok" = 1 ] || echo "bench: bench-jinja failed (see $LOGS/bench-jinja.txt)" >&2
t_jinja=$(elapsed "$t0")
echo "bench: stage bench-jinja: $t_jinja s"
jval() {   # value of a BENCH key printed by bench-jinja ("-" when absent)
    awk -v k="$1" '$1 == "BENCH" { for (i = 2; i <= NF; i++) { split($i, kv, "=");
        if (kv[1] == k) r = kv[2] } } END { print (r == "" ? "-" : r) }' "$LOGS/bench-jinja.txt"
}

# ---- 5. summary ----
val() {   # value of a BENCH key printed by bench-model ("-" when absent)
    awk -v k="$1" '$1 == "BENCH" { for (i = 2; i <= NF; i++) { split($i, kv, "=");
        if (kv[1] == k) r = kv[2] } } END { print (r == "" ? "-" : r) }' "$LOGS/bench-model.txt"
}
# matmul rows of bench-ops: "(4096,14336)  n  ms  GB/s  GFLOP/s  floor_ms  eff"
matmul_row() {   # $1 = n
    awk -v n="$1" '$1 == "(4096,14336)" && $2 == n {
        printf "%8.3f ms  %7.1f GB/s  %7.1f GFLOP/s  floor %8.3f ms  %s of floor", $3, $4, $5, $6, $7; exit }' \
        "$LOGS/bench-ops.txt"
}

echo
echo "==================================================================================="
echo " vlm bench summary ($(val threads) threads; load average $load at start$( \
    awk -v l="$load" -v c="$cpus" 'BEGIN { if (l > 0.5 * c) printf ": UNDER LOAD, not final" }'))"
echo "==================================================================================="
printf ' %-38s %s GB/s\n' "measured read bandwidth" "$(val bandwidth_gbs)"
printf ' %-38s %s GFLOP/s\n' "bf16 dot peak (vdpbf16ps)" "$(val bf16_peak_gflops)"
printf ' %-38s %s GFLOP/s\n' "fp32 FMA peak" "$(val fp32_peak_gflops)"
for n in 1 8 512; do
    printf ' %-38s %s\n' "bf16 matmul 4096x14336, n=$n" "$(matmul_row "$n")"
done
# ggml's rows: the weight layout llama.cpp loads a model with (repacked where
# ggml's CPU backend repacks that type, else plain).
peer() {   # $1 = kind, $2 = fmt, $3 = n ("" = any), $4 = key: value of the PEER line ("-" when absent)
    awk -v kind="$1" -v fmt="$2" -v n="$3" -v key="$4" '$1 == "PEER" && $2 == kind {
            delete kv; for (i = 3; i <= NF; i++) { split($i, p, "="); kv[p[1]] = p[2] }
            if (kv["fmt"] != fmt || (n != "" && kv["n"] != n)) next
            if (kv["layout"] == "repack") { rep = kv[key]; has_rep = 1 } else if (!has_rep) plain = kv[key] }
        END { r = has_rep ? rep : plain; print (r == "" ? "-" : r) }' "$LOGS/bench-peer.txt"
}
peer_layout() {   # $1 = fmt
    if grep -q "^PEER matmul fmt=$1 layout=repack" "$LOGS/bench-peer.txt"; then echo " repacked"; fi
}
if [ -z "$peer_note" ]; then
    echo " -- ggml / llama.cpp $(peer decode bf16 "" build), this run, $(peer matmul bf16 1 threads) threads as vlm (% of the byte floor)"
    for n in 1 8 512; do
        line=""
        for f in bf16 q8_0 q4_0; do
            line="$line${line:+, }$f$(peer_layout $f) $(peer matmul $f $n ms) ms ($(peer matmul $f $n floor_pct)%)"
        done
        printf ' %-38s %s\n' "ggml matmul 4096x14336, n=$n" "$line"
    done
else
    echo " -- ggml / llama.cpp: $peer_note"
fi
qval() {   # $1 = fmt, $2 = key: BENCH value of bench-model --weights fmt ("-" when absent)
    awk -v k="$2" '$1 == "BENCH" { for (i = 2; i <= NF; i++) { split($i, kv, "=");
        if (kv[1] == k) r = kv[2] } } END { print (r == "" ? "-" : r) }' "$LOGS/bench-model-$1.txt" 2>/dev/null || echo -
}
quant_row() {   # $1 = Q8|Q4, $2 = n: "ms (eff of byte floor, x bf16)"
    awk -v f="$1" -v n="$2" '$1 == f && $2 == n { printf "%s ms (%s of its byte floor%s)", $3, $6, ($7 != "" ? ", " $7 " " $8 : ""); exit }' \
        "$LOGS/bench-quant.txt"
}
for n in 1 8 512; do
    printf ' %-38s bf16 %s ms; int8 %s; int4 %s\n' "vlm matmul 4096x14336, n=$n" \
        "$(awk -v n="$n" '$1 == "BF16" && $2 == n { print $3; exit }' "$LOGS/bench-quant.txt")" \
        "$(quant_row Q8 "$n")" "$(quant_row Q4 "$n")"
done
echo " -- benchmark model: $(val text_layers) text layers, $(val vision_depth) vision blocks (real shapes)"
printf ' %-38s %s tok/s (median %s), %s GB/token, %s GB/s = %s%% of bandwidth (target >= 85%%)\n' \
    "decode, batch 1" "$(val decode_tok_s)" "$(val decode_tok_s_median)" "$(val decode_gb_per_tok)" \
    "$(val decode_gbs)" "$(val decode_bw_pct)"
printf ' %-38s %s tok/s (median %s), %s GFLOP/s = %s%% of bf16 peak\n' \
    "prefill, $(val prefill_tokens) tokens" "$(val prefill_tok_s)" "$(val prefill_tok_s_median)" \
    "$(val prefill_gflops)" "$(val prefill_peak_pct)"
for fmt in int8 int4; do
    printf ' %-38s decode %s tok/s (median %s; %sx bf16), %s GB/token = %s%% of bandwidth; prefill %s tok/s\n' \
        "weights $fmt (+vision, lm_head, embed)" "$(qval $fmt decode_tok_s)" "$(qval $fmt decode_tok_s_median)" \
        "$(awk -v a="$(qval $fmt decode_tok_s_median)" -v b="$(val decode_tok_s_median)" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')" \
        "$(qval $fmt decode_gb_per_tok)" "$(qval $fmt decode_bw_pct)" "$(qval $fmt prefill_tok_s)"
done
if [ -z "$peer_note" ]; then
    line=""; pline=""
    for f in bf16 q8_0 q4_0; do
        line="$line${line:+, }$f $(peer decode $f "" tok_s) ($(peer decode $f "" bw_pct)%)"
        pline="$pline${pline:+, }$f $(peer prefill $f "" tok_s)"
    done
    printf ' %-38s %s tok/s (%% of bandwidth)\n' "llama.cpp decode (llama-bench tg64)" "$line"
    printf ' %-38s %s tok/s\n' "llama.cpp prefill (llama-bench pp512)" "$pline"
fi
for s in 448 1024; do
    printf ' %-38s %s images/s (median %s), %s GFLOP/s = %s%% of bf16 peak\n' \
        "vision ${s}x${s} (grid $(val vision${s}_grid))" "$(val vision${s}_img_s)" \
        "$(val vision${s}_img_s_median)" "$(val vision${s}_gflops)" "$(val vision${s}_peak_pct)"
done
echo " -- extrapolated to the full model ($(val full_text_layers) text layers, $(val full_vision_depth) vision blocks):"
echo "    measured time per layer x layers + measured fixed parts (embedding, lm_head, merger)"
printf ' %-38s %s tok/s (bandwidth bound %s tok/s)\n' "decode, batch 1" "$(val decode_full_tok_s)" \
    "$(val decode_full_bound_tok_s)"
printf ' %-38s %s tok/s\n' "prefill, $(val prefill_tokens) tokens" "$(val prefill_full_tok_s)"
for s in 448 1024; do
    printf ' %-38s %s images/s (%s s per image)\n' "vision ${s}x${s}" "$(val vision${s}_full_img_s)" \
        "$(val vision${s}_full_s)"
done
# Serving: vlmd through the shared-memory protocol (aggregate tokens/s at 1, 4
# and 16 concurrent clients, protocol overhead), then nginx (cache hit vs a
# static file of the same size, the module's overhead on a miss, hostile JSON
# bodies: memory and event-loop blocking). The bench
# model has no tokenizer of its own: borrow the fixture's (ids stay < 1500),
# with its token ids in config.json and its generation_config.json (greedy),
# so vlmd's startup check finds files that agree.
t0=$(now)
DAEMON_MODEL=$BUILD/bench-daemon-model
rm -rf "$DAEMON_MODEL"
mkdir -p "$DAEMON_MODEL"
for f in "$MODEL_DIR"/*; do ln -sf "$(realpath "$f")" "$DAEMON_MODEL/"; done
FIXTURE_MODEL=tests/fixtures/models/tiny-flash
for f in tokenizer.json tokenizer_config.json chat_template.jinja generation_config.json; do
    ln -sf "$(realpath "$FIXTURE_MODEL/$f")" "$DAEMON_MODEL/$f"
done
rm -f "$DAEMON_MODEL/config.json"
python3 - "$MODEL_DIR/config.json" "$FIXTURE_MODEL/config.json" "$DAEMON_MODEL/config.json" <<'PY'
import json, sys
shapes, ids = (json.load(open(p)) for p in sys.argv[1:3])
def take_ids(dst, src):
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            take_ids(dst[k], v)
        elif k.endswith("token_id"):
            dst[k] = v
take_ids(shapes, ids)
json.dump(shapes, open(sys.argv[3], "w"), indent=2)
PY
run_daemon() {   # $1 = weights format, $2 = log name; prints bench-daemon's JSON line ("{}" on failure)
    if "$BIN/bench-daemon" --model "$DAEMON_MODEL" --vlmd "$BIN/vlmd" --threads "$THREADS" --weights "$1" \
            --max-tokens 32 --seconds 20 >"$LOGS/$2.txt" 2>&1; then
        tail -1 "$LOGS/$2.txt"
    else
        cat "$LOGS/$2.txt" >&2
        echo "bench: bench-daemon --weights $1 failed (see $LOGS/$2.txt)" >&2
        echo "{}"
    fi
}
daemon=$(run_daemon bf16 bench-daemon)
daemon_int4=$(run_daemon int4 bench-daemon-int4)
t_daemon=$(elapsed "$t0")

# Scheduling: what a heavy client costs a small one on vlmd (tiny model, so
# image decoding and queueing are what is measured), with the scheduling of
# before issue 12 and today's, in one run (bench-sched's header says how).
t0=$(now)
if "$BIN/bench-sched" --model tests/fixtures/models/tiny-flash --vlmd "$BIN/vlmd" --threads "$THREADS" \
        >"$LOGS/bench-sched.txt" 2>&1; then
    sched=$(tail -1 "$LOGS/bench-sched.txt")
else
    cat "$LOGS/bench-sched.txt"
    echo "bench: bench-sched failed (see $LOGS/bench-sched.txt)" >&2
    sched="{}"
fi
t_sched=$(elapsed "$t0")

t0=$(now)
if VLMD=$BIN/vlmd VLM_RUN=$BIN/vlm-run bash scripts/bench-nginx.sh >"$LOGS/bench-nginx.txt" 2>&1; then
    nginx_line=$(grep '^BENCH ' "$LOGS/bench-nginx.txt" | tail -1)
else
    tail -20 "$LOGS/bench-nginx.txt"
    echo "bench: bench-nginx failed (see $LOGS/bench-nginx.txt)" >&2
    nginx_line=""
fi
t_nginx=$(elapsed "$t0")

json_in() { python3 -c 'import json,sys; d=json.loads(sys.argv[1]); v=d
for k in sys.argv[2].split("."): v=v.get(k, {}) if isinstance(v, dict) else {}
print(v if v != {} else "-")' "$1" "$2"; }
json_num() { json_in "$daemon" "$1"; }
sched_num() { json_in "$sched" "$1"; }
nval() { echo "$nginx_line" | tr ' ' '\n' | awk -F= -v k="$1" '$1 == k { print $2 }'; }
t1=$(json_num tokens_per_s_by_clients.1); t4=$(json_num tokens_per_s_by_clients.4)
t16=$(json_num tokens_per_s_by_clients.16)
echo " -- serving (vlmd on the benchmark model, 32-token answers; nginx with the tiny model)"
printf ' %-38s %s / %s / %s tok/s (16 vs 1: %sx, target >= 6x)\n' "aggregate at 1 / 4 / 16 clients" \
    "$t1" "$t4" "$t16" "$(awk -v a="$t16" -v b="$t1" 'BEGIN { if (b > 0) printf "%.1f", a / b; else print "-" }')"
q1=$(json_in "$daemon_int4" tokens_per_s_by_clients.1); q4=$(json_in "$daemon_int4" tokens_per_s_by_clients.4)
q16=$(json_in "$daemon_int4" tokens_per_s_by_clients.16)
printf ' %-38s %s / %s / %s tok/s (int4 text decoder vs bf16: %sx at 1 client, %sx at 16)\n' \
    "  the same, weights int4" "$q1" "$q4" "$q16" \
    "$(awk -v a="$q1" -v b="$t1" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')" \
    "$(awk -v a="$q16" -v b="$t16" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
printf ' %-38s %s us ping, %s ms per tiny request over the model alone\n' "protocol round trip" \
    "$(json_num ping_rtt_us_p50)" "$(json_num protocol_overhead_ms)"
for sc in images flood; do
    case $sc in
        images) label="small request, 4 large images in flight" ;;
        flood) label="small request behind 60 of another's" ;;
    esac
    printf ' %-38s p50 %s -> %s ms, p99 %s -> %s ms (before -> after issue 12)\n' "$label" \
        "$(sched_num before_$sc.small_ms_p50)" "$(sched_num after_$sc.small_ms_p50)" \
        "$(sched_num before_$sc.small_ms_p99)" "$(sched_num after_$sc.small_ms_p99)"
done
printf ' %-38s %s req/s (p50 %s ms, p99 %s ms)\n' "nginx cache hit" "$(nval nginx_hit_rps)" \
    "$(nval nginx_hit_p50_ms)" "$(nval nginx_hit_p99_ms)"
printf ' %-38s %s req/s (p50 %s ms, p99 %s ms); hit/static = %s\n' "nginx static file, same size" \
    "$(nval nginx_static_rps)" "$(nval nginx_static_p50_ms)" "$(nval nginx_static_p99_ms)" \
    "$(nval nginx_hit_static_ratio)"
printf ' %-38s %s ms median, %s ms fastest\n' "module overhead on a miss" \
    "$(nval nginx_miss_overhead_ms)" "$(nval nginx_miss_overhead_fastest_ms)"
printf ' %-38s answer <= %s ms (worker CPU <= %s ms), peak <= %s MB, kept <= %s MB, small requests <= %s ms\n' \
    "hostile 23 MB JSON bodies (worst)" "$(nval hostile_json_answer_ms_max)" \
    "$(nval hostile_json_cpu_ms_max)" "$(nval hostile_json_peak_mb_max)" \
    "$(nval hostile_json_kept_mb_max)" "$(nval hostile_json_probe_ms_max)"
echo " -- prompt (alt text: system + image + text, thinking off; thread CPU time)"
printf ' %-38s %s us per render (target < 50 us); %s us for the prompt ids (+ tokenize, 256 image tokens)\n' \
    "chat template render" "$(jval prompt_render_us)" "$(jval prompt_ids_us)"
echo " -- full model, weights held (extrapolated per layer): bf16 $(val full_weight_gb) GB, int8 $(qval int8 full_weight_gb) GB, int4 $(qval int4 full_weight_gb) GB; decode bf16 $(val decode_full_tok_s), int8 $(qval int8 decode_full_tok_s), int4 $(qval int4 decode_full_tok_s) tok/s"
echo " stage times: model $t_model s, peer prepare $t_peer_prep s, bench-ops $t_ops s, bench-model $t_run s, quantized $t_quant s, peer $t_peer s, bench-jinja $t_jinja s, daemon $t_daemon s, sched $t_sched s, nginx $t_nginx s"
echo "==================================================================================="
