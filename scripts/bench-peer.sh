#!/bin/sh
# scripts/bench-peer.sh: llama.cpp / ggml beside vlm, at the same thread count.
#   sh scripts/bench-peer.sh prepare   download, build, convert, quantize (no timing)
#   sh scripts/bench-peer.sh run       time ggml's matmul and llama.cpp's decode/prefill
#   sh scripts/bench-peer.sh           both
# `make bench` (scripts/bench.sh) calls `prepare` before its timed stages and
# `run` after bench-model, with vlm's thread count and bench-ops' limits.
#
# Nothing of llama.cpp is committed: PyPI's llama-cpp-python source package,
# which vendors llama.cpp and ggml, is downloaded into build/peer/ and built
# there. Every step is skipped when its output exists, so a second run only
# measures. Steps, outputs under $BUILD/peer/:
#   1. pip download --no-deps --no-binary :all: llama-cpp-python==$LLAMA_PY_VERSION
#   2. unpack; vendor/llama.cpp is the source
#   3. cmake Release, GGML_NATIVE=ON LLAMA_CURL=OFF LLAMA_BUILD_TESTS=ON, static
#      libraries; ninja llama-bench llama-quantize test-backend-ops
#      llama-batched-bench (niced) -> llama-build/bin/
#   4. bench/peer/ggml_matmul_bench.c (ours) against that ggml -> bin/ggml-matmul-bench
#   5. a Python venv for llama.cpp's converter (torch, transformers): it reuses
#      make fixtures' build/venv-ref when present instead of a second
#      multi-GB torch, else installs the same pins from PyPI
#   6. the benchmark model (build/bench-model + the fixture tokenizer) through
#      convert_hf_to_gguf.py (via bench/peer/convert_glm4v.py) -> bf16 GGUF,
#      then llama-quantize -> q8_0, q4_0 (llama.cpp's defaults for these types)
# `run` prints machine-readable lines:
#   PEER matmul fmt=... layout=... n=... threads=... ms=... [floor_pct=...]
#   PEER decode fmt=... threads=... tok_s=... [gb_per_tok=... bw_pct=...]
#   PEER prefill fmt=... threads=... n=512 tok_s=...
# Environment: BUILD (build), THREADS (0 = all CPUs, as vlm's bench), MODEL_DIR
# (build/bench-model), BANDWIDTH_GBS / BF16_PEAK_GFLOPS (bench-ops' measurements:
# adds the floor columns), PEER_FORMATS (bf16 q8_0 q4_0), PEER_REPS (llama-bench
# repetitions, 5), PEER_QUANT_ARGS (extra llama-quantize options, e.g. --pure: every
# matrix in the named type; by default output.weight becomes q6_K), LLAMA_PY_VERSION (0.3.36: llama.cpp 0c1e570, ggml 0.25.3, with
# GLM-4.6V support).
set -eu

BUILD=${BUILD:-build}
PEER=$BUILD/peer
LLAMA_PY_VERSION=${LLAMA_PY_VERSION:-0.3.36}
MODEL_DIR=${MODEL_DIR:-$BUILD/bench-model}
THREADS=${THREADS:-0}
[ "$THREADS" -gt 0 ] || THREADS=$(nproc)
BANDWIDTH_GBS=${BANDWIDTH_GBS:-}
BF16_PEAK_GFLOPS=${BF16_PEAK_GFLOPS:-}
PEER_FORMATS=${PEER_FORMATS:-bf16 q8_0 q4_0}
PEER_REPS=${PEER_REPS:-5}
PEER_QUANT_ARGS=${PEER_QUANT_ARGS:-}
MODE=${1:-all}
case $MODE in prepare | run | all) ;; *) echo "usage: $0 [prepare|run|all]" >&2; exit 2 ;; esac

SDIST=$PEER/llama_cpp_python-$LLAMA_PY_VERSION.tar.gz
SRC=$PEER/llama_cpp_python-$LLAMA_PY_VERSION/vendor/llama.cpp
LBUILD=$PEER/llama-build
LBIN=$LBUILD/bin
TARGETS="llama-bench llama-quantize test-backend-ops llama-batched-bench"
MATMUL=$PEER/bin/ggml-matmul-bench
VENV=$PEER/venv
HF=$PEER/hf-model
GGUF=$PEER/gguf

now() { date +%s; }
say() { echo "bench-peer: $*"; }
took() { say "$1: done in $(( $(now) - $2 )) s"; }
mkdir -p "$PEER"

prepare() {
    # ---- 1. the source package ----
    if [ -s "$SDIST" ]; then
        say "1/6 source package: $SDIST present, skipped"
    else
        t=$(now)
        say "1/6 source package: pip download llama-cpp-python==$LLAMA_PY_VERSION (sdist, ~75 MB)"
        nice -n 19 python3 -m pip download --quiet --no-deps --no-binary :all: \
            "llama-cpp-python==$LLAMA_PY_VERSION" -d "$PEER"
        took "1/6 source package" "$t"
    fi
    # ---- 2. unpack ----
    if [ -f "$SRC/CMakeLists.txt" ]; then
        say "2/6 unpack: $SRC present, skipped"
    else
        t=$(now)
        if ! tar tzf "$SDIST" | grep -q "/vendor/llama.cpp/ggml/include/ggml.h$"; then
            say "2/6 unpack: $SDIST has no vendor/llama.cpp" >&2
            exit 1
        fi
        tar xzf "$SDIST" -C "$PEER"
        took "2/6 unpack" "$t"
    fi
    # ---- 3. llama.cpp ----
    if [ -f "$LBUILD/build.ninja" ]; then
        say "3/6 configure: $LBUILD present, skipped"
    else
        t=$(now)
        say "3/6 configure: cmake Release, GGML_NATIVE=ON"
        nice -n 19 cmake -S "$SRC" -B "$LBUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
            -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=ON -DLLAMA_BUILD_SERVER=OFF -DBUILD_SHARED_LIBS=OFF \
            >"$PEER/configure.log" 2>&1 || { tail -20 "$PEER/configure.log" >&2; exit 1; }
        took "3/6 configure" "$t"
    fi
    missing=""
    for tgt in $TARGETS; do [ -x "$LBIN/$tgt" ] || missing="$missing $tgt"; done
    if [ -z "$missing" ]; then
        say "3/6 build: $TARGETS present, skipped"
    else
        t=$(now)
        say "3/6 build:$missing (nice 19; about 25 min on 2 busy cores the first time; log $PEER/build.log)"
        # shellcheck disable=SC2086
        nice -n 19 ninja -C "$LBUILD" -j "$(nproc)" ggml $TARGETS >"$PEER/build.log" 2>&1 ||
            { tail -30 "$PEER/build.log" >&2; exit 1; }
        took "3/6 build" "$t"
    fi
    # ---- 4. our ggml matmul bench ----
    if [ -x "$MATMUL" ] && [ -z "$(find bench/peer/ggml_matmul_bench.c -newer "$MATMUL")" ]; then
        say "4/6 ggml-matmul-bench: up to date, skipped"
    else
        t=$(now)
        mkdir -p "$PEER/bin"
        libs=$LBUILD/ggml/src
        nice -n 19 cc -O2 -march=native -std=c11 -Wall -o "$MATMUL" bench/peer/ggml_matmul_bench.c \
            -I"$SRC/ggml/include" "$libs/libggml.a" "$libs/libggml-cpu.a" "$libs/libggml-base.a" \
            -fopenmp -lstdc++ -lm -lpthread
        took "4/6 ggml-matmul-bench" "$t"
    fi
    # ---- 5. the converter's Python ----
    if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import torch, transformers, safetensors, numpy, yaml, tqdm, requests' 2>/dev/null; then
        say "5/6 converter venv: $VENV present, skipped"
    else
        t=$(now)
        rm -rf "$VENV"
        python3 -m venv "$VENV"
        ref=$BUILD/venv-ref
        site=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
        if [ -x "$ref/bin/python" ] && "$ref/bin/python" -c 'import torch, transformers, safetensors' 2>/dev/null &&
            [ "$("$ref/bin/python" -c 'import sys; print(sys.version_info[:2])')" = \
              "$("$VENV/bin/python" -c 'import sys; print(sys.version_info[:2])')" ]; then
            say "5/6 converter venv: reusing torch and transformers of $ref (make fixtures' venv)"
            "$ref/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' >"$site/venv-ref.pth"
        else
            say "5/6 converter venv: installing torch, transformers (tests/reference pins) from PyPI: several GB"
            pins=$(grep -E '^(torch|transformers|tokenizers|safetensors|numpy)==' tests/reference/requirements.txt)
            # shellcheck disable=SC2086
            nice -n 19 "$VENV/bin/pip" install --quiet $pins
        fi
        nice -n 19 "$VENV/bin/pip" install --quiet pyyaml tqdm requests
        took "5/6 converter venv" "$t"
    fi
    # ---- 6. the benchmark model as GGUF ----
    if [ ! -f "$MODEL_DIR/config.json" ]; then
        say "6/6 model: $MODEL_DIR missing: run mkmodel first (scripts/bench.sh does)" >&2
        exit 1
    fi
    stamp="$(cat "$MODEL_DIR/mkmodel.stamp" 2>/dev/null || echo none) quantize:$PEER_QUANT_ARGS"
    if [ -f "$GGUF/source.stamp" ] && [ "$(cat "$GGUF/source.stamp")" = "$stamp" ]; then
        say "6/6 model: GGUF files of this model present, skipped"
    else
        t=$(now)
        rm -rf "$GGUF" "$HF"
        mkdir -p "$GGUF" "$HF"
        # The bench model has no tokenizer: take the fixture's (as bench.sh does for vlmd).
        for f in "$MODEL_DIR"/*; do ln -s "$(realpath "$f")" "$HF/"; done
        for f in tokenizer.json tokenizer_config.json; do
            ln -sf "$(realpath "tests/fixtures/models/tiny-flash/$f")" "$HF/$f"
        done
        say "6/6 model: convert_hf_to_gguf.py --outtype bf16 (text model)"
        if ! nice -n 19 "$VENV/bin/python" bench/peer/convert_glm4v.py "$SRC" "$HF" --outtype bf16 \
                --outfile "$GGUF/bench-bf16.gguf" >"$PEER/convert.log" 2>&1; then
            tail -25 "$PEER/convert.log" >&2
            say "6/6 model: convert_hf_to_gguf.py failed on the GLM-4.6V benchmark model (log $PEER/convert.log)" >&2
            exit 1
        fi
        for q in q8_0 q4_0; do
            say "6/6 model: llama-quantize $q"
            # shellcheck disable=SC2086
            nice -n 19 "$LBIN/llama-quantize" $PEER_QUANT_ARGS "$GGUF/bench-bf16.gguf" "$GGUF/bench-$q.gguf" "$(echo "$q" | tr '[:lower:]' '[:upper:]')" \
                "$(nproc)" >"$PEER/quantize-$q.log" 2>&1 || { tail -20 "$PEER/quantize-$q.log" >&2; exit 1; }
        done
        echo "$stamp" >"$GGUF/source.stamp"
        took "6/6 model" "$t"
    fi
}

run() {
    for f in "$MATMUL" "$LBIN/llama-bench"; do
        [ -x "$f" ] || { say "$f missing: run '$0 prepare' first" >&2; exit 1; }
    done
    say "timing at $THREADS threads (load average $(cut -d' ' -f1 /proc/loadavg) at start)"
    set -- --threads "$THREADS"
    [ -n "$BANDWIDTH_GBS" ] && set -- "$@" --bandwidth-gbs "$BANDWIDTH_GBS"
    [ -n "$BF16_PEAK_GFLOPS" ] && set -- "$@" --bf16-peak-gflops "$BF16_PEAK_GFLOPS"
    "$MATMUL" "$@" --fmt "$(echo "$PEER_FORMATS" | tr ' ' ,)"
    for fmt in $PEER_FORMATS; do
        m=$GGUF/bench-$fmt.gguf
        [ -f "$m" ] || { say "$m missing: run '$0 prepare' first" >&2; exit 1; }
        # Bytes a decode step reads: every tensor but the token embedding (one row of it).
        bytes=$("$VENV/bin/python" - "$SRC/gguf-py" "$m" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
from gguf import GGUFReader
print(sum(int(t.n_bytes) for t in GGUFReader(sys.argv[2]).tensors if t.name != "token_embd.weight"))
PY
)
        for kind in decode prefill; do
            if [ $kind = decode ]; then args="-p 0 -n 64"; else args="-p 512 -n 0"; fi
            # shellcheck disable=SC2086
            "$LBIN/llama-bench" -m "$m" -t "$THREADS" $args -r "$PEER_REPS" -o jsonl \
                >"$PEER/llama-bench-$fmt-$kind.jsonl" 2>"$PEER/llama-bench-$fmt-$kind.log" ||
                { tail -20 "$PEER/llama-bench-$fmt-$kind.log" >&2; exit 1; }
            python3 - "$PEER/llama-bench-$fmt-$kind.jsonl" "$fmt" "$kind" "$THREADS" "$bytes" "$BANDWIDTH_GBS" <<'PY'
import json, sys
path, fmt, kind, threads, nbytes, bw = sys.argv[1:7]
r = [json.loads(l) for l in open(path) if l.strip()][-1]
line = f"PEER {kind} fmt={fmt} threads={r['n_threads']} "
if kind == "decode":
    gb = int(nbytes) / 1e9
    line += f"n={r['n_gen']} tok_s={r['avg_ts']:.2f} stddev={r['stddev_ts']:.2f} gb_per_tok={gb:.3f}"
    if bw:
        line += f" gbs={gb * r['avg_ts']:.1f} bw_pct={100 * gb * r['avg_ts'] / float(bw):.0f}"
else:
    line += f"n={r['n_prompt']} tok_s={r['avg_ts']:.1f} stddev={r['stddev_ts']:.1f}"
print(line + f" model_gb={r['model_size'] / 1e9:.3f} build={r['build_commit']}")
PY
        done
    done
}

case $MODE in
    prepare) prepare ;;
    run) run ;;
    all) prepare; run ;;
esac
