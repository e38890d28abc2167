#!/usr/bin/env bash
# End to end under mpirun: N ranks train the same model as one rank; the same run twice gives the
# same bits; uneven shards neither hang nor miscount; frozen layers stay frozen; a failing or dead
# rank ends the whole job quickly, with its reason, and leaves no half-written checkpoint.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

# 101 images per split: a prime, so no world size divides it
"$bin" dataset fashion-mnist fm --limit 101 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cfg=$src/configs/mnist_convnet.cfg
# One thread per rank on every world size (the number of threads changes the bits: docs/kernels.md)
common=(--set data.dir=fm --set train.optimizer=sgd --set train.learning_rate=0.05
        --set train.momentum=0.9 --set train.batch_size=24 --set train.epochs=1
        --set train.threads=1 --set model.backend=blas)

# --- N ranks against 1 rank, same global batch, 4 steps (the 5th is the partial last batch)
for n in 1 2 3 4; do
    "${mpirun[@]}" -np $n "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=np$n \
        > np$n.out 2>&1
    check "train on $n ranks exit 0" test $? -eq 0
    check "validation counts each of the 101 images once on $n ranks" contains np$n.out "validated 101 images"
done
for n in 2 3 4; do
    "$bin" inspect np1/mnist_convnet-last.ckpt --compare np$n/mnist_convnet-last.ckpt > cmp$n.out 2>&1
    check "$n ranks = 1 rank: identical parameters" contains cmp$n.out "(identical parameters)"
done

# --- same config, seed and world size: bit-identical checkpoints
cp np2/mnist_convnet-last.ckpt first.ckpt
"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=np2 > again.out 2>&1
"$bin" inspect first.ckpt --compare np2/mnist_convnet-last.ckpt > same.out 2>&1
check "same seed, same world: identical parameters" contains same.out "identical parameters"
# the files differ only in wall-clock times (history seconds, data wait)
for f in first.ckpt np2/mnist_convnet-last.ckpt; do
    "$bin" inspect "$f" --record | grep -v -e '^history=' -e 'seconds' -e 'data_wait' \
        -e '^first.ckpt' -e '^np2/' > "$(basename "$(dirname "$f")").rec"
done
check "same seed, same world: identical parameters, state, moments and run record" \
    cmp -s ..rec np2.rec

# --- a frozen layer stays bit-identical while the rest trains (2 ranks)
"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --set conv2d.trainable=false \
    --set checkpoint.dir=frozen > frozen.out 2>&1
check "frozen run exit 0" test $? -eq 0
"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --set conv2d.trainable=false \
    --set train.steps_per_epoch=1 --set checkpoint.dir=frozen1 > frozen1.out 2>&1
"$bin" inspect frozen/mnist_convnet-last.ckpt --config "$cfg" --set conv2d.trainable=false > f5.out 2>&1
"$bin" inspect frozen1/mnist_convnet-last.ckpt --config "$cfg" --set conv2d.trainable=false > f1.out 2>&1
check "frozen layer identical after 1 and 5 steps" \
    test "$(grep 'layer conv2d ' f5.out)" = "$(grep 'layer conv2d ' f1.out)"
check "frozen layer listed" contains f5.out "(frozen)"
check "trained layer changed" test "$(grep 'layer dense ' f5.out)" != "$(grep 'layer dense ' f1.out)"

# --- bench under mpirun: aggregate rate, the exchange split into transfer and imbalance, and
# the in-job scaling pairs (ranks 1.. sleep in a barrier while rank 0 trains alone)
"${mpirun[@]}" -np 2 "$bin" bench "$cfg" --batch 8 --iters 4 > bench2.out 2>&1
check "bench on 2 ranks exit 0" test $? -eq 0
check "bench reports the aggregate rate" contains bench2.out "2 ranks x 1 thread, batch 8 per rank (16 global)"
check "bench splits the exchange" contains bench2.out "waiting for the slower rank"
check "bench measures scaling in the job" contains bench2.out "scaling: 2 ranks .*x one rank alone (median of 3 pairs"

# --- a NaN loss on 2 ranks: every rank stops at the same step, rank 0 says why, nothing saved
"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --set rescaling.scale=1e38 \
    --set checkpoint.dir=nan > nan.out 2>&1
check "NaN loss: exit non-zero" test $? -ne 0
check "NaN loss: named with its step" contains nan.out "the loss became NaN at epoch 1, step 0"
check "NaN loss: no checkpoint written" test -z "$(ls nan 2>/dev/null)"

# --- one rank given another (unreadable) dataset path: the job ends non-zero, with the reason
start=$(date +%s)
timeout 60 mpirun --oversubscribe -np 1 "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=bad : \
    -np 1 "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=bad --set data.dir=/nonexistent/fm \
    > badpath.out 2>&1
rc=$?
check "bad path on one rank: exit non-zero (got $rc)" test $rc -ne 0 -a $rc -ne 124
check "bad path on one rank: within 30 s" test $(( $(date +%s) - start )) -le 30
# only rank 0 reads the data folders (the others receive its file list): the other rank's path
# is never opened, and the ranks' configs are found to differ
check "bad path on one rank: reason printed" contains badpath.out "every rank must read the same config"

# Starts a long 2-rank run into checkpoint dir $1 (more --set arguments follow) in the
# background, waits for its first checkpoint, and sets $job and $victim (one rank's pid).
start_long_run() {
    local dir=$1; shift
    "${mpirun[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --set train.epochs=1000 \
        --set checkpoint.save_every=1 --set checkpoint.dir="$dir" "$@" > "$dir.out" 2>&1 &
    job=$!
    wait_for_file "$dir/mnist_convnet-last.ckpt" 20
    victim=$(pgrep -f "checkpoint.dir=$dir" | while read -r p; do
        [ "$(cat /proc/$p/comm 2>/dev/null)" = shardnet ] && echo "$p"; done | tail -1)
    check "$dir: found a rank" test -n "$victim"
}
# Gives $job at most $1 half-seconds to end, resumes $victim (a stopped rank would keep the job
# from ending), then sets $rc to the job's exit code.
wait_job() {
    local waited=0
    while kill -0 "$job" 2>/dev/null && [ $waited -lt "$1" ]; do sleep 0.5; waited=$((waited + 1)); done
    kill -CONT "$victim" 2>/dev/null
    wait "$job"
    rc=$?
}

# --- one rank killed mid-run: the job ends non-zero within 30 s, no half-written checkpoint
start_long_run killed
start=$(date +%s)
kill -9 "$victim" 2>/dev/null
wait_job 60
check "killed rank: job exit non-zero (got $rc)" test $rc -ne 0
check "killed rank: job ended within 30 s" test $(( $(date +%s) - start )) -le 30
pkill -9 -f "checkpoint.dir=killed" 2>/dev/null
for f in killed/*.ckpt; do
    "$bin" inspect "$f" > /dev/null 2>&1
    check "checkpoint $f is whole" test $? -eq 0
done

# --- a rank that stops answering (SIGSTOP) is reported by the watchdog, naming the step
start_long_run stuck --set train.watchdog=5
start=$(date +%s)
kill -STOP "$victim" 2>/dev/null
wait_job 120
check "stuck rank: job exit 76, peer lost (got $rc)" test $rc -eq 76
check "stuck rank: ended within 30 s" test $(( $(date +%s) - start )) -le 30
check "stuck rank: watchdog names the wait and the step" contains stuck.out "at step"
pkill -9 -f "checkpoint.dir=stuck" 2>/dev/null

finish
