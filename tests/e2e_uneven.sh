#!/usr/bin/env bash
# Steps in which some rank has no images: the rank still takes part in every collective, in the
# same order, with zero gradients, and the job neither hangs nor miscounts. A short watchdog turns
# a hang into a failure within seconds instead of minutes.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

"$bin" dataset fashion-mnist fm --limit 201 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
# two images, one per class, for three ranks
for split in train val; do
    mkdir -p two/$split/a two/$split/b
    cp "$(find fm/train/0_T-shirt_top -name '*.jpg' | head -1)" two/$split/a/1.jpg
    cp "$(find fm/train/1_Trouser -name '*.jpg' | head -1)" two/$split/b/2.jpg
done
cfg=$src/configs/mnist_convnet.cfg

# run NAME RANKS SETS...: 2 epochs with a 20 s watchdog, under a 120 s timeout
run() {
    local name=$1 np=$2; shift 2
    local start=$(date +%s)
    timeout 120 "${mpirun[@]}" -np "$np" "$bin" train "$cfg" --set train.epochs=2 \
        --set train.watchdog=20 --set checkpoint.dir="$name" "$@" > "$name.out" 2>&1
    local rc=$?
    check "$name: exit 0 (got $rc)" test $rc -eq 0
    check "$name: no watchdog, within 60 s" test $(( $(date +%s) - start )) -le 60
    check "$name: both epochs ran" contains "$name.out" "Epoch 2/2"
}

# 201 images, global batch 200: the second step has one image, on rank 0 only
run b200 2 --set data.dir=fm --set train.batch_size=200
check "b200: 2 steps per epoch" contains b200.out "2/2"
check "b200: validated 201 images" contains b200.out "validated 201 images"
# global batch 1 on 2 ranks: rank 1 is empty at every step
run b1 2 --set data.dir=fm --set train.batch_size=1
check "b1: 201 steps per epoch" contains b1.out "201/201"
# 2 images on 3 ranks: one rank always empty, in training and in validation
run two3 3 --set data.dir=two --set dense.units=2 --set train.batch_size=2 --set checkpoint.save_every=1
check "two3: validated 2 images" contains two3.out "validated 2 images"
# the same with the decoded images kept (cache = memory): the empty rank keeps nothing and still
# takes part
run two3c 3 --set data.dir=two --set dense.units=2 --set train.batch_size=2 --set data.cache=memory
check "two3c: validated 2 images" contains two3c.out "validated 2 images"
check "two3c: the cache said" contains two3c.out "cache = memory: [0-9.]* MB of decoded images"

# an empty rank's zero gradients change nothing: batch 1 on 2 ranks equals 1 rank, step by step
"${mpirun[@]}" -np 1 "$bin" train "$cfg" --set data.dir=fm --set train.batch_size=1 \
    --set train.epochs=1 --set train.optimizer=sgd --set train.threads=1 --set checkpoint.dir=one > one.out 2>&1
"${mpirun[@]}" -np 2 "$bin" train "$cfg" --set data.dir=fm --set train.batch_size=1 \
    --set train.epochs=1 --set train.optimizer=sgd --set train.threads=1 --set checkpoint.dir=pair > pair.out 2>&1
"$bin" inspect one/mnist_convnet-last.ckpt --compare pair/mnist_convnet-last.ckpt > cmp.out 2>&1
check "batch 1: 2 ranks (one always empty) = 1 rank" contains cmp.out "identical parameters"

finish
