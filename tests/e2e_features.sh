#!/usr/bin/env bash
# Feature extraction (the book's fast feature extraction): `extract` runs a base with its
# weights over train, val and test once, on 1 or N ranks with the same file (also when a rank has
# no image in a step, and with [augment] crop's inference resize); a top trains and
# evaluates on the stored features in memory; a feature file of another base, augmentation on
# features, a file that is not one and a truncated one are errors naming the file.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

"$bin" dataset shapes shapes --limit 24 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
k=$src/tests/keras
# tiny.cfg's convolutional part as a base, at 12x12 RGB, weights from the Keras fixture by name
sed -n '/^\[preprocess\]/,/^\[flatten\]/p' "$k/tiny.cfg" | sed '$d' > layers.cfg
{ printf '[model]\nname = tinybase\n[data]\nimage_size = 12,12\ncolor_mode = rgb\n'; cat layers.cfg; } > base.cfg
"$bin" import-weights base.cfg --keras "$k/keras2_book.h5" --by-name -o base.ckpt > import.out 2>&1
check "base weights imported by name" test $? -eq 0

# --- 1 rank and 2 ranks write the same file (naive backend: no batch-size-dependent sums)
"$bin" extract base.cfg --checkpoint base.ckpt --data shapes -o feat1.bin --set model.backend=ref > x1.out 2>&1
check "extract, 1 rank: exit 0" test $? -eq 0
check "extract: the three splits, with their rate" contains x1.out "feat1.bin: test 24 x (4, 4, 6), [0-9.]* images/s on 1 rank$"
"${mpirun[@]}" -np 2 "$bin" extract base.cfg --checkpoint base.ckpt --data shapes -o feat2.bin \
    --set model.backend=ref > x2.out 2>&1
check "extract, 2 ranks: exit 0" test $? -eq 0
check "extract: 2 ranks write the file 1 rank writes" cmp -s feat1.bin feat2.bin
check "extract: no temporary file left" test -z "$(ls feat*.tmp.* 2>/dev/null)"
# uneven: 3 ranks, global batches of 2, so one rank has no image in every step; same file
"${mpirun[@]}" -np 3 "$bin" extract base.cfg --checkpoint base.ckpt --data shapes -o feat3.bin \
    --set model.backend=ref --set train.validation_batch_size=2 --set train.watchdog=60 > x3.out 2>&1
check "extract, 3 ranks, an empty rank each step: exit 0" test $? -eq 0
check "extract, 3 ranks, an empty rank each step: the file 1 rank writes" cmp -s feat1.bin feat3.bin

# --- with [augment] crop = 10, 10 the base sees RandomCrop's inference output (the 12x12 images'
# centred 10x10 resize) on every split, on 1 and 2 ranks alike
crop=(--set augment.crop=10,10 --set model.backend=ref)
"$bin" import-weights base.cfg --keras "$k/keras2_book.h5" --by-name -o crop.ckpt "${crop[@]}" \
    > import_crop.out 2>&1
check "crop: base weights imported for the 10x10 input" test $? -eq 0
"$bin" extract base.cfg --checkpoint crop.ckpt --data shapes -o featc1.bin "${crop[@]}" > xc1.out 2>&1
check "crop: extract exit 0" test $? -eq 0
check "crop: the base's output from 10x10 inputs" contains xc1.out "featc1.bin: train 24 x (3, 3, 6)"
"${mpirun[@]}" -np 2 "$bin" extract base.cfg --checkpoint crop.ckpt --data shapes -o featc2.bin \
    "${crop[@]}" > xc2.out 2>&1
check "crop: 2 ranks write the file 1 rank writes" cmp -s featc1.bin featc2.bin

# --- a dense top on the features, in memory
cat > top.cfg <<'CFG'
[model]
name = top
input_shape = 4,4,6
[data]
features = feat2.bin
[train]
loss = binary_crossentropy
epochs = 3
batch_size = 8
[checkpoint]
dir = top
[flatten]
[dense]
units = 8
activation = relu
[dense]
units = 1
activation = sigmoid
CFG
"$bin" train top.cfg > top.out 2>&1
check "top on features: exit 0" test $? -eq 0
check "top on features: the samples named" contains top.out "Found [0-9]* samples in feat2.bin#train belonging to 2 classes."
"$bin" evaluate top.cfg --checkpoint top/top-best.ckpt > eval.out 2>&1
check "top on features: evaluate on the test features" contains eval.out "test: 24 images - loss"

# --- bad feature files and settings
expect_bad() { # NAME PATTERN --set ...
    local name=$1 pattern=$2; shift 2
    "$bin" train top.cfg --set checkpoint.dir="$name" "$@" > "$name.out" 2>&1
    local rc=$?
    check "$name: exit 1 (got $rc)" test $rc -eq 1
    check "$name: message" contains "$name.out" "$pattern"
    check "$name: no epoch" lacks "$name.out" "Epoch 1/"
}
expect_bad other_base "the feature file feat2.bin (\[data\] features, top.cfg:5) holds samples of (4, 4, 6), the model's input_shape is (5, 5, 6): features of another base?" --set model.input_shape=5,5,6
printf '[augment]\nflip = horizontal\n' >> top.cfg
expect_bad augmented "\[augment\] with \[data\] features"
sed -i '/^\[augment\]/,$d' top.cfg
expect_bad not_features "base.cfg is not a feature file" --set data.features=base.cfg
head -c 2000 feat2.bin > cut.bin
expect_bad truncated "cut.bin: damaged or truncated feature file" --set data.features=cut.bin
# --- a rank that stops answering during extract: the watchdog ends the job with 76 (peer lost)
# within its time, and no feature file, whole or partial, is left
"$bin" dataset shapes big --limit 4000 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
"${mpirun[@]}" -np 2 "$bin" extract base.cfg --checkpoint base.ckpt --data big -o stuck.bin \
    --set model.backend=ref --set train.validation_batch_size=2 --set train.watchdog=5 > stuck.out 2>&1 &
job=$!
for _ in $(seq 1 300); do grep -q "^Found" stuck.out && break; sleep 0.1; done
victim=$(pgrep -f "stuck.bin" | while read -r p; do
    [ "$(cat /proc/$p/comm 2>/dev/null)" = shardnet ] && echo "$p"; done | tail -1)
check "stuck rank in extract: found a rank" test -n "$victim"
kill -STOP "$victim" 2>/dev/null
start=$(date +%s)
for _ in $(seq 1 120); do kill -0 "$job" 2>/dev/null || break; sleep 0.5; done
kill -CONT "$victim" 2>/dev/null
wait "$job"
rc=$?
check "stuck rank in extract: exit 76, peer lost (got $rc)" test $rc -eq 76
check "stuck rank in extract: ended within 30 s" test $(( $(date +%s) - start )) -le 30
check "stuck rank in extract: no feature file" test ! -e stuck.bin
check "stuck rank in extract: no temporary file" test -z "$(ls stuck.bin.* .stuck.bin* 2>/dev/null)"
pkill -9 -f "stuck.bin" 2>/dev/null

finish
