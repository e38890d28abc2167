#!/usr/bin/env bash
# A run stopped by SIGUSR1 (SLURM's warning before a time limit) on 2 ranks saves a resumable
# checkpoint and exits 75; `--resume auto` continues from the exact step and ends with the same
# parameters, bit for bit, as a run that was never stopped.
# Args: SHARDNET SOURCE_DIR TMP_DIR
set -uo pipefail
bin=$1 src=$2 tmp=$3
rm -rf "$tmp" && mkdir -p "$tmp" && cd "$tmp" || exit 1
export OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-Haswell}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun=(mpirun --oversubscribe --bind-to none -x OPENBLAS_CORETYPE -x OPENBLAS_NUM_THREADS=1)
fails=0 passes=0
check() {
    local name=$1; shift
    if "$@"; then passes=$((passes + 1)); else echo "FAIL: $name"; fails=$((fails + 1)); fi
}
contains() { grep -q -- "$2" "$1" || { echo "--- $1 does not contain '$2':"; cat "$1"; return 1; }; }

"$bin" dataset fashion-mnist fm --limit 240 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cfg=$src/configs/mnist_convnet.cfg
# the reference backend makes steps slow enough to be interrupted mid-epoch
common=(--set data.dir=fm --set train.batch_size=24 --set train.epochs=2 --set model.backend=ref
        --set checkpoint.save_every=1)

"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=straight > straight.out 2>&1
check "uninterrupted run exit 0" test $? -eq 0

"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=stopped > stopped.out 2>&1 &
job=$!
for _ in $(seq 1 300); do
    [ -s stopped/mnist_convnet-last.ckpt ] && break
    sleep 0.1
done
kill -USR1 $job
wait $job
rc=$?
check "stopped run exits 75 (got $rc)" test $rc -eq 75
check "stop reported" contains stopped.out "stopped by a signal"
"$bin" inspect stopped/mnist_convnet-last.ckpt > stop.meta 2>&1
check "stopped before the end" test -z "$(grep 'step 20,' stop.meta)"

"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=stopped --resume auto > resumed.out 2>&1
check "resumed run exit 0" test $? -eq 0
check "resume reported" contains resumed.out "Resuming from"
"$bin" inspect straight/mnist_convnet-last.ckpt --compare stopped/mnist_convnet-last.ckpt > cmp.out 2>&1
check "stopped + resumed = uninterrupted, bit for bit" contains cmp.out "identical parameters"
check "history has both epochs" test "$(wc -l < stopped/history.csv)" -eq 3

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
