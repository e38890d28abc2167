#!/usr/bin/env bash
# The same bits on any number of ranks: one config trained on 1, 2, 3 and 4 ranks (more ranks
# than cores: oversubscribed) ends with the same parameters, batch-norm statistics and optimizer
# moments (their hashes in `shardnet inspect`), and the same history but for the seconds.
#  - Listing 8.1 with rmsprop and backend = auto;
#  - a network with BatchNormalization, dropout and augmentation (flip, rotation, zoom), adam,
#    a global batch that leaves a partial last batch and a partial last micro-batch; on 1 and 2
#    ranks also with RandomCrop before the other layers; on 3 ranks with cache = memory.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

"$bin" dataset fashion-mnist fm --limit 150 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }

cat > bn.cfg <<'CFG'
[model]
name = bn
[data]
dir = fm
image_size = 28
color_mode = grayscale
[augment]
flip = horizontal
rotation = 0.1
zoom = 0.1
[train]
batch_size = 40
micro_batch = 12
epochs = 2
optimizer = adam
threads = 1
[rescaling]
scale = 1/255
[conv2d]
filters = 16
kernel_size = 3
[batchnormalization]
[activation]
activation = relu
[maxpooling2d]
[conv2d]
filters = 32
kernel_size = 3
activation = relu
[globalaveragepooling2d]
[dropout]
rate = 0.3
[dense]
units = 10
activation = softmax
CFG

hashes() { "$bin" inspect "$1" | grep -o 'parameter hash .*'; }
hist() { cut -d, -f1-6 "$1"; } # all but the seconds

# run NAME CONFIG ARGS...: trains on 1 to 4 ranks into NAME1..NAME4, then compares with NAME1
run() {
    local name=$1 cfg=$2 ckpt=$3
    shift 3
    for np in 1 2 3 4; do
        "${mpirun[@]}" -np $np "$bin" train "$cfg" "$@" --set checkpoint.dir=$name$np \
            > $name$np.out 2>&1
        check "$name on $np ranks: exit 0" test $? -eq 0
    done
    for np in 2 3 4; do
        check "$name: $np ranks end with the parameters, state and moments of 1" \
            test "$(hashes $name$np/$ckpt)" = "$(hashes ${name}1/$ckpt)"
        check "$name: $np ranks write the history of 1 (but for the seconds)" \
            cmp -s <(hist $name$np/history.csv) <(hist ${name}1/history.csv)
        check "$name: $np ranks keep the best checkpoint of 1" \
            test "$(hashes ${name}$np/${ckpt%-last.ckpt}-best.ckpt)" = \
                 "$(hashes ${name}1/${ckpt%-last.ckpt}-best.ckpt)"
    done
}

# 150 images at 64: steps of 64, 64 and 22 images, 4, 4 and 2 micro-batches of 16 (3 and 4 ranks:
# some rank has none in the last step)
run mnist "$src/configs/mnist_convnet.cfg" mnist_convnet-last.ckpt --set data.dir=fm \
    --set train.epochs=2 --set train.threads=1
# 150 images at 40 in micro-batches of 12: 4 micro-batches a step (the last of 4 images), and a
# last step of 30 images in 3 (the last of 6)
run bn bn.cfg bn-last.ckpt
# RandomCrop first in the chain ([augment] crop = 24, 24 on the 28x28 images, then flip, rotation
# and zoom on the window): 2 ranks end as 1 does, and the crop did change the run
for np in 1 2; do
    "${mpirun[@]}" -np $np "$bin" train bn.cfg --set augment.crop=24,24 \
        --set checkpoint.dir=crop$np > crop$np.out 2>&1
    check "crop on $np ranks: exit 0" test $? -eq 0
done
check "crop: 2 ranks end with the parameters, state and moments of 1" \
    test "$(hashes crop2/bn-last.ckpt)" = "$(hashes crop1/bn-last.ckpt)"
check "crop: 2 ranks write the history of 1 (but for the seconds)" \
    cmp -s <(hist crop2/history.csv) <(hist crop1/history.csv)
check "crop: not the run without it" test "$(hashes crop1/bn-last.ckpt)" != "$(hashes bn1/bn-last.ckpt)"
# cache = memory (the decoded images kept from the first epoch) changes nothing: 3 ranks with it
# end as 1 rank without it, and the run says what the cache takes
"${mpirun[@]}" -np 3 "$bin" train bn.cfg --set data.cache=memory --set checkpoint.dir=cache3 \
    > cache3.out 2>&1
check "cache on 3 ranks: exit 0" test $? -eq 0
check "cache: 3 ranks end with the parameters, state and moments of 1 rank without it" \
    test "$(hashes cache3/bn-last.ckpt)" = "$(hashes bn1/bn-last.ckpt)"
check "cache: the history of 1 rank without it (but for the seconds)" \
    cmp -s <(hist cache3/history.csv) <(hist bn1/history.csv)
check "cache: the run says what it keeps" grep -q 'cache = memory: [0-9.]* MB of decoded images' \
    cache3.out
# the statistics did move: a run whose BatchNormalization is frozen keeps the initial ones
"$bin" train bn.cfg --set checkpoint.dir=frozen --set batchnormalization.trainable=false \
    > frozen.out 2>&1
check "bn frozen: exit 0" test $? -eq 0
state() { "$bin" inspect "$1" | grep -o 'state hash [0-9a-f]*'; }
check "bn: the batch-norm statistics moved (not those of a frozen layer)" \
    test "$(state bn1/bn-last.ckpt)" != "$(state frozen/bn-last.ckpt)"
finish
