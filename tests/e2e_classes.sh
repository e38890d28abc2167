#!/usr/bin/env bash
# Class names, not folder order, define labels: the training split fixes them, every checkpoint
# stores them, validation and test folders are labelled by name (a lacking class is noted, an
# unknown one refused), evaluate and predict read them from the checkpoint. Labels are checked
# against the network's outputs before any work.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

"$bin" dataset fashion-mnist fm --limit 600 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cfg=$src/configs/mnist_convnet.cfg
sets=(--set train.epochs=2 --set train.threads=1)

# --- a validation split without its first class: labels by name, not by folder position
mkdir -p nodress && cp -r fm/train nodress/ && cp -r fm/val nodress/ && rm -rf nodress/val/0_T-shirt_top
"$bin" train "$cfg" "${sets[@]}" --set data.dir=nodress --set checkpoint.dir=run1 > run1.out 2>&1
check "val lacking a class: exit 0" test $? -eq 0
check "Keras's Found line" contains run1.out "Found 600 files belonging to 10 classes."
check "the lacking class is named" contains run1.out "lacks 1 of the 10 classes: 0_T-shirt_top"
acc=$(sed -n 's/.*val_accuracy: \([0-9.]*\).*/\1/p' run1.out | tail -1)
check "val_accuracy with the right labels (got $acc, shifted labels give ~0)" atleast "${acc:-0}" 0.4

# --- evaluate labels by the checkpoint's classes: a split lacking one, an extra folder refused
"$bin" evaluate "$cfg" --set data.dir=nodress --checkpoint run1/mnist_convnet-best.ckpt \
    --split val > ev_lack.out 2>&1
check "evaluate a split lacking a class: exit 0" test $? -eq 0
check "evaluate says which class the split lacks" contains ev_lack.out "0_T-shirt_top"
mkdir -p extra && cp -r fm/test extra/ && mkdir extra/test/10_Hat
cp "$(find fm/test/8_Bag -name '*.jpg' | head -1)" extra/test/10_Hat/
"$bin" evaluate "$cfg" --set data.dir=extra --checkpoint run1/mnist_convnet-best.ckpt > ev_extra.out 2>&1
check "a test folder with an 11th class: exit 1" test $? -eq 1
check "the unknown class folder is named" contains ev_extra.out "extra/test/10_Hat: class '10_Hat' is not one of the model's 10 classes"

# --- evaluate --data: a data root or the split folder itself give the same figures
"$bin" evaluate "$cfg" --set data.dir=nowhere --data fm --checkpoint run1/mnist_convnet-best.ckpt > ev_root.out 2>&1
check "evaluate --data ROOT: exit 0" test $? -eq 0
"$bin" evaluate "$cfg" --set data.dir=nowhere --data fm/test --checkpoint run1/mnist_convnet-best.ckpt > ev_split.out 2>&1
check "evaluate --data SPLIT: exit 0" test $? -eq 0
check "--data ROOT and --data ROOT/test agree" test "$(grep '^test:' ev_root.out)" = "$(grep '^test:' ev_split.out)"

# --- predict names classes from the checkpoint, with no data folder at hand
img=$(find fm/test/7_Sneaker -name '*.jpg' | head -1)
"$bin" predict "$cfg" --set data.dir=nowhere --checkpoint run1/mnist_convnet-best.ckpt --top 3 "$img" > pred.out 2>&1
check "predict without data: exit 0" test $? -eq 0
check "predict prints three class names and probabilities" \
    grep -Eq "\.jpg( [0-9]_[A-Za-z_-]+ [01]\.[0-9]{3}){3}$" pred.out

# --- labels against outputs, before any work
"$bin" train "$cfg" "${sets[@]}" --set data.dir=fm --set train.loss=binary_crossentropy \
    --set dense.units=1 --set dense.activation=sigmoid --set checkpoint.dir=bce > bce.out 2>&1
check "binary_crossentropy with 10 classes: exit 1" test $? -eq 1
check "binary_crossentropy with 10 classes: named" contains bce.out "has 10 classes, but loss = binary_crossentropy needs exactly 2"
check "binary_crossentropy with 10 classes: no epoch ran" lacks bce.out "Epoch 1"
"$bin" train "$cfg" "${sets[@]}" --set data.dir=fm --set data.label_mode=binary --set checkpoint.dir=lm > lm.out 2>&1
check "label_mode = binary with a softmax loss: exit 1" test $? -eq 1
check "label_mode against the loss: named" contains lm.out "label_mode = binary gives labels for binary_crossentropy"
"$bin" train "$cfg" "${sets[@]}" --set data.dir=fm --set dense.units=9 --set checkpoint.dir=units > units.out 2>&1
check "10 classes, 9 units: exit 1" test $? -eq 1
check "10 classes, 9 units: named" contains units.out "has 10 classes but the last layer has 9 units"

finish
