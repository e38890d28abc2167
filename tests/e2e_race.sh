#!/usr/bin/env bash
# e2e_race.sh — launcher/race end to end on a tiny Fashion-MNIST folder for one epoch (both
# sides, the CPU model, accuracies in range), and tests/peers/pytorch_fit.py refusing what it
# does not understand. Skipped (77) where Debian's PyTorch is not installed.
source "$(dirname "$0")/lib.sh" "$@"

if ! /usr/bin/python3 -c 'import torch, PIL' 2>/dev/null; then
    echo "skipped: python3-torch or python3-pil not installed (apt-get install python3-torch python3-pil; launcher/setup installs them)"
    exit 77
fi
peer=$src/tests/peers/pytorch_fit.py
cfg=$src/configs/mnist_convnet.cfg

# 100 images a split
"$bin" dataset fashion-mnist data --limit 100 > dataset.out 2>&1
check "tiny dataset written" test -d data/test

# --- the race, one epoch ------------------------------------------------------------------------
SHARDNET_BIN=$bin "$src/launcher/race" --config "$cfg" --data data --work work \
    --set train.epochs=1 > race.out 2>&1
rc=$?
check "race exits 0 (got $rc)" test $rc -eq 0
check "race names the CPU model" grep -Eq '^CPU model: .+' race.out
check "race ran shardnet" contains race.out "seed 1337: shardnet: mpirun -np 2 shardnet train"
check "race ran pytorch" contains race.out "seed 1337: pytorch: pytorch_fit.py --ranks 2 --target"
# the table: shardnet and pytorch rows, each with seconds and an accuracy in [0, 1]
for side in shardnet pytorch; do
    row=$(grep -E "^$side +[0-9]" race.out | tail -1)
    check "table has a $side row" test -n "$row"
    read -r _ secs acc _ <<<"$row"
    check "$side: finish seconds positive ($secs)" atleast "${secs:-0}" 0.1
    check "$side: test accuracy in [0.05, 1] ($acc)" \
        awk -v a="${acc:--1}" 'BEGIN { exit !(a >= 0.05 && a <= 1) }'
done
check "race prints the ratio" grep -Eq '^ratio \(pytorch / shardnet, seconds to shardnet.s accuracy\): >?[0-9.]+x' race.out
check "pytorch's log has its epoch line" grep -Eq '^epoch 1/1: elapsed [0-9.]+ s .* test_accuracy 0\.[0-9]{4}$' work/seed1337/pytorch.log
check "pytorch's log has its summary" grep -Eq '^pytorch_fit: wall [0-9.]+ s, 1 epochs in .* target 0\.[0-9]+ (reached at|not reached)' work/seed1337/pytorch.log
[ $rc -eq 0 ] || cat race.out

# --- what pytorch_fit.py refuses (exit 2, naming the key; nothing trains) -----------------------
refuses() {  # refuses NAME PATTERN ARGS...
    local name=$1 pattern=$2
    shift 2
    /usr/bin/python3 "$peer" "$@" > refuse.out 2>&1
    local r=$?
    check "$name: exit 2 (got $r)" test $r -eq 2
    check "$name: says why" contains refuse.out "$pattern"
    check "$name: trains nothing" lacks refuse.out "^epoch "
}
refuses "an unknown [train] key" "--set train.bogus: \[train\] bogus: unknown key" \
    "$cfg" --set data.dir=data --set train.bogus=1
sed 's/^kernel_size = 3$/kernel_size = 3\nstride = 2/' "$cfg" > stride.cfg
line=$(grep -n '^stride = 2' stride.cfg | head -1 | cut -d: -f1)
refuses "an unknown layer key" "stride.cfg:$line: \[conv2d\] stride: unknown key" \
    stride.cfg --set data.dir=data
refuses "an unknown section" "\[conv3d\]: unknown section type" \
    <(printf '[data]\nimage_size = 28\n[conv3d]\nfilters = 2\n')
refuses "bf16" "precision: bf16 is not done here" \
    "$cfg" --set data.dir=data --set train.precision=bf16
refuses "a key the optimizer does not use" "momentum: optimizer = rmsprop does not use it" \
    "$cfg" --set data.dir=data --set train.momentum=0.9
refuses "a [base]" "\[base\]: not supported here" \
    "$cfg" --set data.dir=data --set base.config=x.cfg

# --- the keys issue 20 adds, understood (one tiny epoch on one process) -------------------------
/usr/bin/python3 "$peer" "$cfg" --set data.dir=data --set train.epochs=1 \
    --set train.optimizer=adamw --set train.weight_decay_exclude=bias \
    --set train.label_smoothing=0.1 --set train.lr_schedule=linear --set train.decay_steps=auto \
    --set train.warmup_steps=2 --set train.warmup_target=0.002 --set augment.crop=26,26 \
    --set augment.translation=0.1 --set augment.fill_mode=constant > keys.out 2>&1
rc=$?
check "issue 20's keys: exit 0 (got $rc)" test $rc -eq 0
check "issue 20's keys: trained an epoch" grep -Eq '^epoch 1/1: ' keys.out
[ $rc -eq 0 ] || cat keys.out

finish
