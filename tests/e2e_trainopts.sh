#!/usr/bin/env bash
# The training options of a fast recipe, end to end:
#  - adamw with weight_decay and weight_decay_exclude, label_smoothing, a warmup from
#    learning_rate to warmup_target and a cosine decay over decay_steps = auto: the run says the
#    number auto stands for, and its history's learning rates are the schedule's (the floor,
#    alpha * warmup_target, at training's last update);
#  - the same run stopped by SIGUSR1 twice (once in the warmup, once in the decay of the second
#    epoch) and resumed each time ends with the uninterrupted run's parameters, batch-norm
#    statistics, optimizer moments and history, on 1 rank and on 2 ranks;
#  - a word of weight_decay_exclude that names no variable is refused before any work, naming
#    the config line and the variables;
#  - configs/fashion_fast.cfg itself (its schedule, flip and micro-batches) on a small folder,
#    stopped by SIGUSR1 twice mid-epoch and resumed, ends as the uninterrupted run did.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

"$bin" dataset fashion-mnist fm --limit 240 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
# 240 images in batches of 24: 10 updates an epoch, 20 in all; 5 of warmup leave 15 to decay
cat > fast.cfg <<'EOF'
[model]
name = fast
; the reference backend makes steps slow enough to be stopped mid-epoch
backend = ref

[data]
dir = fm
image_size = 28
color_mode = grayscale

[train]
optimizer = adamw
learning_rate = 0.0005
weight_decay = 0.01
weight_decay_exclude = bias, gamma, beta
label_smoothing = 0.1
lr_schedule = cosine
warmup_steps = 5
warmup_target = 0.004
decay_steps = auto
alpha = 0.1
batch_size = 24
epochs = 2

[checkpoint]
save_every = 1

[rescaling]
scale = 1/255

[conv2d]
filters = 8
kernel_size = 3
use_bias = false

[batchnormalization]

[activation]
activation = relu

[maxpooling2d]

[conv2d]
filters = 16
kernel_size = 3
activation = relu

[globalaveragepooling2d]

[dense]
units = 10
activation = softmax
EOF

"${mpirun[@]}" -np 2 "$bin" train fast.cfg --set checkpoint.dir=straight > straight.out 2>&1
check "uninterrupted run: exit 0" test $? -eq 0
check "decay_steps = auto is said" \
    contains straight.out "decay_steps = auto: 15 updates (2 epochs x 10 updates, less 5 of warmup)"
# history.csv's lr: the rate of the next update. After epoch 1 (update 10): the cosine a third of
# the way, 0.004 * (0.9 * (1 + cos(pi/3)) / 2 + 0.1) = 0.0031; after epoch 2 (update 20, the
# decay's end): the floor 0.1 * 0.004
check "history: the rate after epoch 1 is the cosine's" test "$(sed -n 2p straight/history.csv | cut -d, -f6)" = 0.0031
check "history: the rate at training's end is the floor" test "$(sed -n 3p straight/history.csv | cut -d, -f6)" = 0.0004

# the step a checkpoint holds: bytes 32-39 of its header (little-endian), read without decoding
step_of() { od -An -t d8 -j 32 -N 8 "$1" 2>/dev/null | tr -d ' '; }
# leg NP DIR AT: runs (or resumes) the run in DIR on NP ranks; with AT, sends SIGUSR1 once its
# `last` checkpoint has reached step AT and expects exit 75, else expects the end. The run is
# $leg_cfg with the overrides in leg_set, its checkpoints named $leg_name.
leg_cfg=fast.cfg leg_name=fast leg_set=()
leg() {
    local np=$1 dir=$2 at=${3:-} last=$2/$leg_name-last.ckpt
    "${mpirun[@]}" -np "$np" "$bin" train "$leg_cfg" "${leg_set[@]}" --set checkpoint.dir="$dir" \
        --resume auto >> "$dir.out" 2>&1 &
    local job=$!
    if [ -n "$at" ]; then
        for _ in $(seq 1 1500); do
            [ "$(step_of "$last")" -ge "$at" ] 2>/dev/null && break
            kill -0 $job 2>/dev/null || break
            sleep 0.02
        done
        kill -USR1 $job 2>/dev/null
    fi
    wait $job
    local rc=$?
    if [ -n "$at" ]; then
        check "$dir: stopped by SIGUSR1 after step $at, exit 75 (got $rc)" test $rc -eq 75
        echo "$dir: stopped at step $(step_of "$last")"
    else
        check "$dir: ran to the end, exit 0 (got $rc)" test $rc -eq 0
    fi
}
hashes() { "$bin" inspect "$1" | grep -o 'parameter hash .*'; }
hist() { cut -d, -f1-6 "$1"; }
for np in 1 2; do
    dir=stopped$np
    leg "$np" "$dir" 2   # in the warmup
    leg "$np" "$dir" 13  # in the second epoch's decay
    leg "$np" "$dir"
    s1=$(grep -c 'Resuming from' "$dir.out")
    check "$dir: resumed twice (said $s1 times)" test "$s1" -eq 2
    check "$dir: stopped mid-epoch both times" \
        test "$(grep -c 'stopped by a signal at epoch [12], step \(3\|4\|5\|6\|7\|8\|9\|1[4-9]\);' "$dir.out")" -eq 2
    check "$dir ($np rank(s)): stopped twice and resumed = uninterrupted: parameters, state, moments" \
        test "$(hashes straight/fast-last.ckpt)" = "$(hashes "$dir/fast-last.ckpt")"
    "$bin" inspect straight/fast-last.ckpt --compare "$dir/fast-last.ckpt" > "cmp$np.out" 2>&1
    check "$dir: inspect --compare says identical" contains "cmp$np.out" "identical checkpoints"
    check "$dir: the same history (losses, accuracies, rates) to the last digit" \
        cmp -s <(hist straight/history.csv) <(hist "$dir/history.csv") ||
        diff <(hist straight/history.csv) <(hist "$dir/history.csv")
done

# a typo in weight_decay_exclude: refused at once, naming where it was set and the variables
"$bin" train fast.cfg --set checkpoint.dir=typo --set train.weight_decay_exclude=bias,gama > typo.out 2>&1
rc=$?
check "weight_decay_exclude typo: refused (exit $rc)" test $rc -ne 0 -a $rc -ne 75
check "weight_decay_exclude typo: the word and the key named" \
    contains typo.out "\[train\] weight_decay_exclude: 'gama' is in the name of no variable"
check "weight_decay_exclude typo: the variables listed" contains typo.out "batchnormalization/gamma"
check "weight_decay_exclude typo: nothing written" test ! -e typo/fast-last.ckpt
sed 's/^weight_decay_exclude = .*/weight_decay_exclude = bias, gama/' fast.cfg > typo.cfg
"$bin" summary typo.cfg > typo2.out 2>&1
check "weight_decay_exclude typo: refused by summary too, naming typo.cfg:15" \
    contains typo2.out "typo.cfg:15: \[train\] weight_decay_exclude: 'gama'"

# --- the fast recipe itself (configs/fashion_fast.cfg) stopped mid-epoch and resumed ------------
# Its schedule (warmup to warmup_target, cosine to the last update), its augmentation (the flip's
# draws) and its micro-batches, on the small folder: 240 images in batches of 24, 2 epochs; the
# reference backend makes the steps slow enough to be stopped mid-epoch.
recipe=$src/configs/fashion_fast.cfg
leg_cfg=$recipe leg_name=fashion_fast
leg_set=(--set data.dir=fm --set train.epochs=2 --set train.batch_size=24 --set train.micro_batch=12
         --set train.warmup_steps=5 --set model.backend=ref --set checkpoint.save_every=1)
"${mpirun[@]}" -np 2 "$bin" train "$recipe" "${leg_set[@]}" --set checkpoint.dir=rstraight > rstraight.out 2>&1
check "fashion_fast.cfg, uninterrupted: exit 0" test $? -eq 0
check "fashion_fast.cfg: flips in its augmentation" grep -q '^flip = horizontal' "$recipe"
leg 2 rstopped 3    # in the warmup
leg 2 rstopped 14   # in the second epoch's decay
leg 2 rstopped
check "fashion_fast.cfg: stopped mid-epoch twice" \
    test "$(grep -c 'stopped by a signal at epoch [12], step \(4\|5\|6\|7\|8\|9\|1[5-9]\);' rstopped.out)" -eq 2
check "fashion_fast.cfg: stopped twice and resumed = uninterrupted: parameters, state, moments" \
    test "$(hashes rstraight/fashion_fast-last.ckpt)" = "$(hashes rstopped/fashion_fast-last.ckpt)"
"$bin" inspect rstraight/fashion_fast-best.ckpt --compare rstopped/fashion_fast-best.ckpt > rcmp.out 2>&1
check "fashion_fast.cfg: the same best checkpoint" contains rcmp.out "identical checkpoints"
check "fashion_fast.cfg: the same history (losses, accuracies, rates) to the last digit" \
    cmp -s <(hist rstraight/history.csv) <(hist rstopped/history.csv)

finish
