#!/bin/sh
# Fuzz smoke test: builds every libFuzzer target (tests/fuzz/build.sh) and runs
# each briefly over its seed corpus (build/fuzz/seeds_<name> for fuzz_<name>),
# so the targets cannot rot. Fails on a build failure, a missing target, a
# crash, a leak or a hang; prints each target's executed inputs.
# Usage: tests/fuzz/smoke.sh [out_dir]   (default: build/fuzz)
# Bounds per target: FUZZ_SMOKE_RUNS inputs (20000) or FUZZ_SMOKE_TIME
# seconds (10), whichever comes first. Needs Debian clang, libclang-rt-14-dev
# and nginx-dev. Findings go to a temporary directory, never to the seeds.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
OUT=${1:-$ROOT/build/fuzz}
RUNS=${FUZZ_SMOKE_RUNS:-20000}
TIME=${FUZZ_SMOKE_TIME:-10}
start=$(date +%s)

if ! sh "$ROOT/tests/fuzz/build.sh" "$OUT"; then
    echo "smoke: FAILED: tests/fuzz/build.sh" >&2
    exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/vlm-fuzz-smoke.XXXXXX")
trap 'rm -rf "$tmp"' EXIT INT TERM
status=0

for src in "$ROOT"/tests/fuzz/fuzz_*.cpp "$ROOT"/tests/fuzz/fuzz_*.c; do
    [ -f "$src" ] || continue
    name=$(basename "$src"); name=${name%.*}
    bin=$OUT/$name
    if [ ! -x "$bin" ]; then
        echo "smoke: FAILED: $name was not built" >&2
        status=1
        continue
    fi
    seeds=$OUT/seeds_${name#fuzz_}
    [ -d "$seeds" ] || seeds=""
    # inputs that once crashed a target, committed so the bug stays fixed
    regressions=$ROOT/tests/fuzz/regressions/${name#fuzz_}
    [ -d "$regressions" ] && seeds="$seeds $regressions"
    mkdir -p "$tmp/corpus_$name"
    t0=$(date +%s)
    # a fixed seed: the same inputs on every run, so CI is repeatable
    # shellcheck disable=SC2086
    "$bin" -seed="${FUZZ_SMOKE_SEED:-1}" -runs="$RUNS" -max_total_time="$TIME" -timeout=10 -max_len=8192 \
        -print_final_stats=1 -artifact_prefix="$tmp/$name-" \
        "$tmp/corpus_$name" $seeds >"$tmp/$name.log" 2>&1
    rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/$name.log")
    secs=$(( $(date +%s) - t0 ))
    if [ $rc -ne 0 ] || [ -z "$execs" ]; then
        echo "smoke: FAILED: $name (exit $rc) after ${execs:-?} inputs:" >&2
        grep -E 'ERROR|SUMMARY|Test unit written|deadly|Running:' "$tmp/$name.log" | head -20 >&2
        for a in "$tmp/$name"-*; do
            [ -f "$a" ] || continue
            mkdir -p "$OUT/smoke-artifacts"
            cp "$a" "$OUT/smoke-artifacts/"
            echo "smoke: reproducer kept: $OUT/smoke-artifacts/$(basename "$a")" >&2
        done
        status=1
    else
        echo "smoke: ok $name: $execs inputs in ${secs}s"
    fi
done

echo "smoke: done in $(( $(date +%s) - start ))s, status $status"
exit $status
