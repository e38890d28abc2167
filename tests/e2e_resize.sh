#!/usr/bin/env bash
# Resizing: one run stopped and resumed on 2, then 3, then 1, then 4 ranks at the same global
# batch continues at the right sample and ends with the bits of the uninterrupted run.
#  - each leg is started with `--resume auto` and stopped by SIGUSR1 (SLURM's warning before a
#    time limit) once its `last` checkpoint has passed a chosen step: it exits 75;
#  - the next leg, on another number of ranks, says it resumes from exactly the step (and epoch)
#    that the checkpoint's record holds (`shardnet inspect --record`);
#  - epochs of 40 steps, 3 micro-batches a step (so on 4 ranks one rank has none), rmsprop,
#    backend = auto, a stop mid-epoch on every leg and one across an epoch's end;
#  - the end: the same parameters, batch-norm-free state and optimizer moments (their hashes),
#    the same history but for the seconds, as the run never stopped (on 2 ranks).
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

"$bin" dataset fashion-mnist fm480 --limit 480 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cfg=$src/configs/mnist_convnet.cfg
# 480 images, global batch 12 in micro-batches of 4: 40 steps an epoch, 3 micro-batches a step
cb=(--set data.dir=fm480 --set train.batch_size=12 --set train.micro_batch=4
    --set train.epochs=2 --set train.threads=1 --set checkpoint.save_every=1)
steps_per_epoch=40
last=resized/mnist_convnet-last.ckpt

"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${cb[@]}" --set checkpoint.dir=straight > straight.out 2>&1
check "uninterrupted run: exit 0" test $? -eq 0

# the step a checkpoint holds: bytes 32-39 of its header (little-endian), read without decoding
step_of() { od -An -t d8 -j 32 -N 8 "$1" 2>/dev/null | tr -d ' '; }
# the "epoch E, step S" line of a checkpoint's record
record_pos() { "$bin" inspect "$1" --record 2>/dev/null | grep -o -m1 'epoch [0-9]*, step [0-9]*'; }

# leg NP AT: runs (or resumes) the resized run on NP ranks; with AT, sends SIGUSR1 once its
# `last` checkpoint has reached step AT and expects exit 75. Checks that a resumed leg starts
# where the checkpoint left off.
prev_step=""
leg() {
    local np=$1 at=${2:-} out="leg$1.out"
    local before=""
    [ -f "$last" ] && before=$(record_pos "$last")
    "${mpirun[@]}" -np "$np" "$bin" train "$cfg" "${cb[@]}" --set checkpoint.dir=resized \
        --resume auto > "$out" 2>&1 &
    local job=$! s=0
    if [ -n "$at" ]; then
        for _ in $(seq 1 1500); do
            s=$(step_of "$last")
            [ "${s:-0}" -ge "$at" ] && break
            kill -0 $job 2>/dev/null || break
            sleep 0.02
        done
        kill -USR1 $job 2>/dev/null
    fi
    wait $job
    local rc=$?
    if [ -n "$at" ]; then
        check "$np ranks: stopped by SIGUSR1, exit 75 (got $rc)" test $rc -eq 75
    else
        check "$np ranks: ran to the end, exit 0 (got $rc)" test $rc -eq 0
    fi
    check "$np ranks: says it runs $np ranks" contains "$out" "rank $((np - 1)) of $np"
    if [ -n "$before" ]; then
        # the record's "epoch E, step S": E epochs closed, S global steps done (S - 5E of epoch
        # E+1, whose samples are the same on any number of ranks); the resumed leg must start
        # there, at epoch E+1 counted from 1
        local e=${before#epoch } st=${before##*step }
        e=${e%%,*}
        check "$np ranks: resumes at epoch $((e + 1)), step $st, where the checkpoint stopped" \
            contains "$out" "Resuming from $last: epoch $((e + 1)), step $st\$"
        check "$np ranks: the record's position is within its epoch" \
            test "$st" -ge $((e * steps_per_epoch)) -a "$st" -le $(((e + 1) * steps_per_epoch))
        echo "leg on $np ranks: the record said '$before'; resumed at step $st," \
             "batch $((st - e * steps_per_epoch)) of epoch $((e + 1))"
    fi
    [ -f "$last" ] && echo "leg on $np ranks ended at step $(step_of "$last")"
}
# SIGUSR1 is acted on at a step boundary a step or two after it is sent: the legs end where they
# end (the log says): the first two mid-epoch, the third in the second epoch
leg 2 10
leg 3 25
leg 1 50
leg 4

hashes() { "$bin" inspect "$1" | grep -o 'parameter hash .*'; }
check "the resized run ends with the uninterrupted run's parameters, state and moments" \
    test "$(hashes straight/mnist_convnet-last.ckpt)" = "$(hashes "$last")"
"$bin" inspect straight/mnist_convnet-last.ckpt --compare "$last" > cmp.out 2>&1
check "inspect --compare: identical parameters" contains cmp.out "(identical parameters)"
# the history but for its last column, the seconds
hist() { cut -d, -f1-6 "$1"; }
check "history: the same 2 epochs, losses, accuracies and learning rates to the last digit" \
    cmp -s <(hist straight/history.csv) <(hist resized/history.csv) ||
    diff <(hist straight/history.csv) <(hist resized/history.csv)
check "history has the 2 epochs" test "$(wc -l < resized/history.csv)" -eq 3

# --- the threads: a run started on 1 rank with the default threads (the node's cores) keeps
# them when it resumes on 2 ranks (which would take half as many each), so it still ends with
# the bits of the run never stopped
one=(--set data.dir=fm480 --set train.batch_size=12 --set train.micro_batch=4 --set train.epochs=1
     --set checkpoint.save_every=1)
"$bin" train "$cfg" "${one[@]}" --set checkpoint.dir=straight1 > straight1.out 2>&1
check "1 rank, default threads: exit 0" test $? -eq 0
threads=$(sed -n 's/^rank 0 of 1 on [^:]*: \([0-9]*\) compute thread.*/\1/p' straight1.out)
"$bin" train "$cfg" "${one[@]}" --set checkpoint.dir=kept > kept1.out 2>&1 &
job=$!
for _ in $(seq 1 1500); do
    [ "$(step_of kept/mnist_convnet-last.ckpt)" -ge 10 ] 2>/dev/null && break
    sleep 0.02
done
kill -USR1 $job 2>/dev/null
wait $job
rc=$?
check "1 rank, default threads: stopped, exit 75 (got $rc)" test $rc -eq 75
"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${one[@]}" --set checkpoint.dir=kept --resume auto > kept2.out 2>&1
check "resumed on 2 ranks: exit 0" test $? -eq 0
check "resumed on 2 ranks: keeps the run's ${threads:-?} compute threads per rank" \
    contains kept2.out "^rank 1 of 2 on [^:]*: ${threads:-?} compute thread"
check "resumed on 2 ranks with the run's threads: the bits of the run never stopped" \
    test "$(hashes straight1/mnist_convnet-last.ckpt)" = "$(hashes kept/mnist_convnet-last.ckpt)"

finish
