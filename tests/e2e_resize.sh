#!/usr/bin/env bash
# Resizing: one run stopped and resumed on 1, then 2, then 4, then 3 ranks at the same global
# batch continues at the right sample and ends where the uninterrupted run ends.
#  - each leg is started with `--resume auto` and stopped by SIGUSR1 (SLURM's warning before a
#    time limit) once its `last` checkpoint has passed a chosen step: it exits 75;
#  - the next leg, on another number of ranks, says it resumes from exactly the step (and epoch)
#    that the checkpoint's record holds (`shardnet inspect --record`);
#  - ReduceLROnPlateau and EarlyStopping fire during the run (as in e2e_resume.sh), so their
#    state crosses the resizes too: the run stops early after epoch 4 on every path;
#  - the parameters end within 1e-4 (relative) of the uninterrupted run's, and the history's
#    epochs, losses and learning rates agree.
# Sums over ranks are added in another order on another number of ranks, hence a tolerance and
# not bit-for-bit equality (e2e_resume.sh checks that at a constant number of ranks).
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

"$bin" dataset fashion-mnist fm120 --limit 120 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cfg=$src/configs/mnist_convnet.cfg
# 120 images, global batch 24: 5 steps an epoch. min_delta = 1 makes every epoch after the first
# a plateau: the learning rate halves at the ends of epochs 2, 3 and 4, early stopping ends the
# run after epoch 4, 20 steps in all (decisions that no rounding difference can flip).
cb=(--set data.dir=fm120 --set train.batch_size=24 --set train.epochs=10 --set model.backend=ref
    --set checkpoint.save_every=1 --set train.optimizer=sgd --set train.learning_rate=0.05
    --set train.momentum=0.9 --set early_stopping.patience=3 --set early_stopping.min_delta=1
    --set reduce_lr_on_plateau.patience=1 --set reduce_lr_on_plateau.factor=0.5
    --set reduce_lr_on_plateau.min_delta=1 --set reduce_lr_on_plateau.cooldown=1)
steps_per_epoch=5
last=resized/mnist_convnet-last.ckpt

"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${cb[@]}" --set checkpoint.dir=straight > straight.out 2>&1
check "uninterrupted run: exit 0" test $? -eq 0
check "uninterrupted run: early stopping after epoch 4" contains straight.out "Epoch 4: early stopping"

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
# end (the log says), mid-epoch or right before an epoch's validation
leg 1 2
leg 2 7
leg 4 12
leg 3
check "the resized run stopped early after epoch 4 too" contains leg3.out "Epoch 4: early stopping"

"$bin" inspect straight/mnist_convnet-last.ckpt --compare "$last" > cmp.out 2>&1
rel=$(sed -n 's/.*max rel diff \([0-9.e+-]*\).*/\1/p' cmp.out)
echo "resized run against the uninterrupted one: max rel diff ${rel:-?}"
check "1 -> 2 -> 4 -> 3 ranks ends within 1e-4 of the uninterrupted run (got ${rel:-?})" \
    awk -v a="${rel:-1}" 'BEGIN { exit !(a + 0 < 1e-4) }'
# epoch, loss and learning rate of each epoch: the same to 4 significant digits
hist() { awk -F, 'NR > 1 { printf "%s %.4g %.4g %.4g\n", $1, $2, $4, $6 }' "$1"; }
hist straight/history.csv > straight.hist
hist resized/history.csv > resized.hist
check "history: the same 4 epochs, losses and learning rates" cmp -s straight.hist resized.hist ||
    diff straight.hist resized.hist
check "history has the 4 epochs" test "$(wc -l < resized/history.csv)" -eq 5

finish
