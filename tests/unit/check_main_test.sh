#!/bin/sh
# Checks the shared Check main (tests/unit/check_main.h) on one real suite:
# --list names every test, --only and VLM_CHECK_ONLY run exactly the tests
# they select, and a pattern that selects nothing or an unknown argument is
# an error, not an empty pass.
# Usage: check_main_test.sh build/bin/test_sampler   (CTest: check_main_filter)
set -u
bin=$1
out=$(mktemp "${TMPDIR:-/tmp}/vlm-check-main.XXXXXX")
trap 'rm -f "$out"' EXIT
fails=0

fail() { echo "check_main_test: FAIL: $*" >&2; fails=$((fails + 1)); }

# run EXPECTED_EXIT ARGS...: runs the suite, output in $out
run() {
    want=$1; shift
    "$@" >"$out" 2>&1
    got=$?
    [ "$got" = "$want" ] || { fail "'$*' exited $got, expected $want:"; cat "$out" >&2; }
}

# the number after "Checks: " in Check's summary line
checks() { sed -n 's/.*Checks: \([0-9]*\),.*/\1/p' "$out"; }

run 0 "$bin" --list
total=$(wc -l <"$out")
[ "$total" -ge 2 ] || fail "--list printed $total lines"
grep -qx 'core/greedy_picks_argmax_lowest_id_on_ties' "$out" || fail "--list lacks core/greedy_picks_argmax_lowest_id_on_ties"

run 0 "$bin"
[ "$(checks)" = "$total" ] || fail "a full run did $(checks) checks, --list has $total tests"

run 0 "$bin" --only greedy_picks_argmax_lowest_id_on_ties
[ "$(checks)" = 1 ] || fail "--only NAME ran $(checks) checks"

run 0 "$bin" --only 'core/*_on_ties'
[ "$(checks)" = 1 ] || fail "--only tcase/glob ran $(checks) checks"

run 0 "$bin" --list --only '*utf8*'
[ "$(cat "$out")" = core/utf8_lossy_repairs_only_invalid_bytes ] || fail "--list --only printed: $(cat "$out")"

run 0 env VLM_CHECK_ONLY=greedy_picks_argmax_lowest_id_on_ties,utf8_lossy_repairs_only_invalid_bytes "$bin"
[ "$(checks)" = 2 ] || fail "VLM_CHECK_ONLY with two names ran $(checks) checks"

run 0 "$bin" --only core
[ "$(checks)" = "$total" ] || fail "--only TCASE ran $(checks) of $total"

run 2 "$bin" --only no_such_test
grep -q "no test matches 'no_such_test'" "$out" || fail "no message for an unknown test name"

run 2 "$bin" --only greedy_picks_argmax_lowest_id_on_ties --only no_such_test
run 2 "$bin" --bogus

[ $fails -eq 0 ] || exit 1
echo "check_main_test: ok ($total tests listed)"
