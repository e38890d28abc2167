# tests/lib.sh — what the end-to-end scripts share. Each e2e_*.sh starts with
#     source "$(dirname "$0")/lib.sh" "$@"
# given its arguments SHARDNET SOURCE_DIR TMP_DIR: this sets bin, src and tmp, enters a fresh
# $tmp, exports what every run needs (Open MPI as root, one OpenBLAS thread), and defines the
# mpirun command line, the checks, and `finish`, which prints the tally and is the verdict.
set -uo pipefail
bin=$1 src=$2 tmp=$3
# the same command with the test hooks on (src/base/hooks.h), for the checks that set SN_TEST_*:
# the release binary reads no such variable
hooked=${SN_HOOKED_BIN:-$(dirname "$bin")/tests/shardnet-testhooks}
rm -rf "$tmp" && mkdir -p "$tmp" && cd "$tmp" || exit 1
export OPENBLAS_NUM_THREADS=1
# [model] backend = auto keeps its per-layer choices here, one cache per test
export XDG_CACHE_HOME=$tmp/cache
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun=(mpirun --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none
        -x OPENBLAS_NUM_THREADS)
fails=0 passes=0 skips=0

# check NAME COMMAND...: COMMAND's status is the verdict on NAME
check() {
    local name=$1; shift
    if "$@"; then passes=$((passes + 1)); else echo "FAIL: $name"; fails=$((fails + 1)); fi
}
contains() { grep -q -- "$2" "$1" || { echo "--- $1 does not contain '$2':"; cat "$1"; return 1; }; }
lacks() { ! grep -q -- "$2" "$1" || { echo "--- $1 contains '$2':"; cat "$1"; return 1; }; }
below() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; }
atleast() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 >= b + 0) }'; }
# wait_for_file FILE [SECONDS]: until FILE is there and not empty, at most SECONDS (30); the
# checks that follow say what it means if it never came
wait_for_file() {
    local _
    for _ in $(seq 1 $(( ${2:-30} * 10 ))); do [ -s "$1" ] && return 0; sleep 0.1; done
    return 1
}
# skip NAME WHY: a check that cannot run here (a CPU without the feature it checks, a tool
# missing) is said, one line each, and counted as skipped, never as passed
skip() { echo "SKIP: $1 ($2)"; skips=$((skips + 1)); }
finish() {
    echo "$passes passed, $fails failed, $skips skipped"
    [ "$fails" -eq 0 ]
}
# best_epoch_matches HISTORY EVAL_OUT: the loss and accuracy `evaluate --split val` printed in
# EVAL_OUT are those of the epoch of lowest val_loss in HISTORY (a history.csv), to 1e-4
best_epoch_matches() {
    local best got
    best=$(awk -F, 'NR > 1 && (min == "" || $4 < min) { min = $4; acc = $5 } END { print min, acc }' "$1")
    got=$(sed -n 's/.*loss: \([0-9.]*\) - accuracy: \([0-9.]*\).*/\1 \2/p' "$2")
    awk -v g="$got" -v b="$best" 'BEGIN { split(g, x, " "); split(b, y, " ");
        d1 = x[1] - y[1]; d2 = x[2] - y[2];
        exit !(x[1] != "" && d1 * d1 < 1e-8 && d2 * d2 < 1e-8) }' ||
        { echo "--- $2 gives '$got', the best epoch of $1 '$best'"; return 1; }
}
# netns_up NAME WHAT ARGS...: cluster/netns-hosts up ARGS as namespaces NAME-*, removed when the
# test exits; exits 77 (skip) where namespaces cannot be made here, and ends the test as failed
# where up fails otherwise. Its output is in up.out.
netns_up() {
    local name=$1 what=$2 rc
    shift 2
    # shellcheck disable=SC2064 # the name is fixed now
    trap "'$src/cluster/netns-hosts' down --name '$name' > /dev/null 2>&1 || echo 'could not remove namespaces $name-*'" EXIT
    "$src/cluster/netns-hosts" up "$@" --name "$name" > up.out 2>&1
    rc=$?
    if [ $rc -eq 77 ]; then
        echo "skipped: $(tail -1 up.out)"
        exit 77
    fi
    check "$what (exit $rc)" test $rc -eq 0
    [ $rc -eq 0 ] || { cat up.out; finish; exit 1; }
}
