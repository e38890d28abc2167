#!/usr/bin/env bash
# Resume is the same run:
#  - a run stopped by SIGUSR1 (SLURM's warning before a time limit) on 2 ranks saves a resumable
#    checkpoint and exits 75; `--resume auto` continues from the exact step and ends with the
#    same parameters, bit for bit, as a run that was never stopped;
#  - a run in which ReduceLROnPlateau and EarlyStopping both fire, killed (SIGKILL, every rank)
#    at several steps, one of them right after a learning-rate change, and resumed each time,
#    ends with the same checkpoint and history as the uninterrupted run (resuming on other
#    numbers of ranks, 1 -> 2 -> 4 -> 3: e2e_resize.sh);
#  - `--resume auto` refuses a checkpoint of another run (network, config, data) naming what
#    differs, trains nothing when the run is complete, and refuses fewer epochs than done.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

"$bin" dataset fashion-mnist fm --limit 240 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cfg=$src/configs/mnist_convnet.cfg
# the reference backend makes steps slow enough to be interrupted mid-epoch
common=(--set data.dir=fm --set train.batch_size=24 --set train.epochs=2 --set model.backend=ref
        --set checkpoint.save_every=1)

"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=straight > straight.out 2>&1
check "uninterrupted run exit 0" test $? -eq 0

"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=stopped > stopped.out 2>&1 &
job=$!
wait_for_file stopped/mnist_convnet-last.ckpt
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

# --- ReduceLROnPlateau and EarlyStopping both fire; the run is killed three times and resumed.
# min_delta = 1 makes every epoch after the first a plateau: the learning rate halves at the ends
# of epochs 2, 3 and 4 (patience 1, cooldown 1) and early stopping ends the run after epoch 4
# (patience 3), 20 steps in all.
cb=(--set data.dir=fm120 --set train.batch_size=24 --set train.epochs=10 --set model.backend=ref
    --set checkpoint.save_every=1 --set train.optimizer=sgd --set train.learning_rate=0.05
    --set train.momentum=0.9 --set early_stopping.patience=3 --set early_stopping.min_delta=1
    --set reduce_lr_on_plateau.patience=1 --set reduce_lr_on_plateau.factor=0.5
    --set reduce_lr_on_plateau.min_delta=1 --set reduce_lr_on_plateau.cooldown=1)
"$bin" dataset fashion-mnist fm120 --limit 120 > /dev/null 2>&1
"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${cb[@]}" --set checkpoint.dir=cbstraight > cbstraight.out 2>&1
check "callbacks run: exit 0" test $? -eq 0
check "callbacks run: the learning rate changed 3 times" test "$(grep -c 'ReduceLROnPlateau: learning rate' cbstraight.out)" -eq 3
check "callbacks run: early stopping after epoch 4" contains cbstraight.out "Epoch 4: early stopping"

# the step a checkpoint holds: bytes 32-39 of its header (little-endian), read without decoding
step_of() { od -An -t d8 -j 32 -N 8 "$1" 2>/dev/null | tr -d ' '; }
# kill_at DIR STEP: starts (or resumes) the run in DIR, SIGKILLs every process of it once its
# `last` checkpoint has reached STEP
kill_at() {
    local dir=$1 at=$2
    "${mpirun[@]}" -np 2 "$bin" train "$cfg" "${cb[@]}" --set checkpoint.dir="$dir" --resume auto \
        >> "$dir.out" 2>&1 &
    local job=$! s=0
    for _ in $(seq 1 600); do
        s=$(step_of "$dir/mnist_convnet-last.ckpt")
        [ "${s:-0}" -ge "$at" ] && break
        sleep 0.02
    done
    pkill -9 -f "checkpoint.dir=$dir" 2>/dev/null
    wait $job 2>/dev/null
    echo "killed at step $(step_of "$dir/mnist_convnet-last.ckpt") (wanted $at)" >> "$dir.kills"
}
kill_at cbkilled 3
kill_at cbkilled 11  # the first step after the learning rate changed at the end of epoch 2
kill_at cbkilled 17
"${mpirun[@]}" -np 2 "$bin" train "$cfg" "${cb[@]}" --set checkpoint.dir=cbkilled --resume auto >> cbkilled.out 2>&1
check "killed 3 times, resumed: exit 0" test $? -eq 0
cat cbkilled.kills
check "killed 3 times before the end" test "$(wc -l < cbkilled.kills)" -eq 3
check "a stale temporary file is removed" test -z "$(find cbkilled -name '*.tmp.*')"
# same parameters, batch-norm state, optimizer moments, callbacks' state and history; only the
# wall-clock seconds may differ
summary() {
    "$bin" inspect "$1/mnist_convnet-last.ckpt" --record | grep -e 'parameter hash' -e '^cb\.' -e '^finished' \
        -e '^lr_scale' -e 'epoch [0-9]*, step'
    cut -d, -f1-6 "$1/history.csv"
}
summary cbstraight > cbstraight.sum
summary cbkilled > cbkilled.sum
check "killed and resumed = uninterrupted: checkpoint, callbacks and history" \
    cmp -s cbstraight.sum cbkilled.sum || diff cbstraight.sum cbkilled.sum
check "history has the 4 epochs" test "$(wc -l < cbkilled/history.csv)" -eq 5

# --- --resume auto continues only the same run
own=(--set data.dir=fm --set train.batch_size=24 --set train.epochs=2 --set checkpoint.dir=own)
"${mpirun[@]}" -np 1 "$bin" train "$cfg" "${own[@]}" > own.out 2>&1
check "own run: exit 0" test $? -eq 0
"${mpirun[@]}" -np 1 "$bin" train "$cfg" "${own[@]}" --resume auto > done.out 2>&1
check "complete run: exit 0" test $? -eq 0
check "complete run: nothing trained" contains done.out "the run is complete after epoch 2 of 2; nothing left to train"
"${mpirun[@]}" -np 1 "$bin" train "$cfg" "${own[@]}" --set data.dir=fm120 --set train.epochs=3 --resume auto > data.out 2>&1
check "other data: exit 1" test $? -eq 1
check "other data: named" contains data.out "belongs to another run; what differs:"
check "other data: the split" contains data.out "train split: 240 files in the checkpoint, 120 now in fm120/train"
"${mpirun[@]}" -np 1 "$bin" train "$cfg" "${own[@]}" --set train.learning_rate=0.01 --set train.epochs=3 --resume auto > lr.out 2>&1
check "other learning rate: exit 1" test $? -eq 1
check "other learning rate: the key named" contains lr.out "\[train\] learning_rate: 0.001 in the checkpoint, 0.01 now"
"${mpirun[@]}" -np 1 "$bin" train "$cfg" "${own[@]}" --set conv2d.filters=16 --resume auto > net.out 2>&1
check "other network: exit 1" test $? -eq 1
check "other network: named" contains net.out "made for another network"
"${mpirun[@]}" -np 1 "$bin" train "$cfg" "${own[@]}" --set train.epochs=1 --resume auto > fewer.out 2>&1
check "fewer epochs than done: exit 1" test $? -eq 1
check "fewer epochs than done: names [train] epochs" contains fewer.out "\[train\] epochs = 1 (--set train.epochs), but own/mnist_convnet-last.ckpt has already trained 2 epochs"
"${mpirun[@]}" -np 1 "$bin" train "$cfg" "${own[@]}" --set train.epochs=3 --resume auto > more.out 2>&1
check "more epochs: exit 0" test $? -eq 0
check "more epochs: resumed, no change named" lacks more.out "what differs"
check "more epochs: trains the third epoch" contains more.out "Epoch 3/3"
check "history grows to 3 epochs" test "$(wc -l < own/history.csv)" -eq 4
"${mpirun[@]}" -np 1 "$bin" train "$cfg" "${own[@]}" --set train.learning_rate=0.01 --set train.epochs=4 \
    --resume auto --allow-config-change > allow.out 2>&1
check "--allow-config-change: exit 0" test $? -eq 0
check "--allow-config-change: says what differs" contains allow.out "note: continuing .* with --allow-config-change"
check "--allow-config-change: trains the fourth epoch" contains allow.out "Epoch 4/4"
check "history grows to 4 epochs" test "$(wc -l < own/history.csv)" -eq 5

finish
