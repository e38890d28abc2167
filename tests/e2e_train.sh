#!/usr/bin/env bash
# End to end, one process: dataset -> summary -> train -> best checkpoint -> evaluate -> predict
# (also of the same weights imported without class names), and the errors a user meets: bad config key, bad value, missing section, corrupt checkpoint.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

"$bin" dataset fashion-mnist fm --limit 3000 > dataset.out 2>&1
check "dataset written" test -d fm/train/9_Ankle_boot -a -d fm/val -a -d fm/test
check "dataset count" test "$(find fm/train -name '*.jpg' | wc -l)" -eq 3000

cfg=$src/configs/mnist_convnet.cfg
sets=(--set data.dir=fm --set checkpoint.dir=run --set train.epochs=3)
"$bin" summary "$cfg" > summary.out 2>&1
check "summary total" contains summary.out "Total params: 104,202"
check "summary conv rows" contains summary.out "18,496"
# VGG16 without its top at 180x180x3, as keras.applications.VGG16(include_top=False) shows it
"$bin" summary "$src/configs/vgg16_base.cfg" > vgg16.out 2>&1
check "vgg16 base: Keras's parameter count" contains vgg16.out "Total params: 14,714,688"
check "vgg16 base: output (5, 5, 512)" contains vgg16.out "block5_pool (MaxPooling2D)   (None, 5, 5, 512) "
check "vgg16 base: Keras's layer names" contains vgg16.out "block3_conv3 (Conv2D)        (None, 45, 45, 256)       590,080"
check "vgg16 base: caffe preprocessing shown" contains vgg16.out "preprocess (Preprocess)      (None, 180, 180, 3)"
# a base without [train] may end in a ReLU (its outputs are features, not logits)
"$bin" summary "$src/configs/transfer/base.cfg" > tbase.out 2>&1
check "a base ending in ReLU: summary exit 0" test $? -eq 0
check "a base ending in ReLU: its parameters" contains tbase.out "Total params: 92,672"

"$bin" train "$cfg" "${sets[@]}" > train.out 2>&1
check "train exit 0" test $? -eq 0
check "progress line" contains train.out "val_accuracy"
check "best checkpoint" test -s run/mnist_convnet-best.ckpt
check "last checkpoint" test -s run/mnist_convnet-last.ckpt
check "history rows" test "$(wc -l < run/history.csv)" -eq 4
check "history header" contains run/history.csv "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds"
check "no temporary files" test -z "$(find run -name '*.tmp*')"

"$bin" evaluate "$cfg" "${sets[@]}" --checkpoint run/mnist_convnet-best.ckpt > eval.out 2>&1
check "evaluate exit 0" test $? -eq 0
acc=$(sed -n 's/.*accuracy: \([0-9.]*\).*/\1/p' eval.out)
check "test accuracy >= 0.70 after 3 epochs on 3000 images (got $acc)" \
    awk -v a="${acc:-0}" 'BEGIN { exit !(a >= 0.70) }'

img=$(find fm/test/7_Sneaker -name '*.jpg' | head -1)
"$bin" predict "$cfg" "${sets[@]}" --checkpoint run/mnist_convnet-best.ckpt "$img" > predict.out 2>&1
check "predict names the class" contains predict.out "7_Sneaker/.*\.jpg 7_Sneaker 0\.[0-9][0-9][0-9]$"

# a checkpoint without class names (Keras weights imported with a config that names none):
# predict labels by the training folder when it is there, by the class index when it is not,
# never with the old "format 2" error; evaluate labels by the split's folders
"$bin" export-weights "$cfg" --checkpoint run/mnist_convnet-best.ckpt -o best.h5 > export.out 2>&1
"$bin" import-weights "$cfg" --keras best.h5 -o imported.ckpt > import.out 2>&1
check "import of the trained weights: exit 0" test $? -eq 0
"$bin" predict "$cfg" "${sets[@]}" --checkpoint imported.ckpt "$img" > pred_imp.out 2> pred_imp.err
check "imported, data folder there: its class names" contains pred_imp.out "7_Sneaker/.*\.jpg 7_Sneaker 0\.[0-9][0-9][0-9]$"
check "imported, data folder there: said where they come from" contains pred_imp.err "imported.ckpt holds no class names (imported without --class-names): taking them from fm/train"
"$bin" predict "$cfg" --set data.dir=nowhere --checkpoint imported.ckpt "$img" > pred_idx.out 2> pred_idx.err
check "imported, no data folder: predict exit 0" test $? -eq 0
check "imported, no data folder: the class index" contains pred_idx.out "\.jpg class_7 0\.[0-9][0-9][0-9]$"
check "imported, no data folder: no old-format error" lacks pred_idx.err "format 2"
"$bin" evaluate "$cfg" --set data.dir=nowhere --data fm/test --checkpoint imported.ckpt > eval_imp.out 2>&1
check "imported, evaluate on a split folder: exit 0" test $? -eq 0
acc_imp=$(sed -n 's/.*accuracy: \([0-9.]*\).*/\1/p' eval_imp.out)
check "imported, evaluate: the trained accuracy ($acc_imp = $acc)" test "$acc_imp" = "$acc"
# --compare: the best checkpoint against the import of its own weights: the same parameters,
# but the import has no optimizer moments
"$bin" inspect run/mnist_convnet-best.ckpt --compare imported.ckpt > cmp_imp.out 2>&1
check "best vs its import: identical parameters" contains cmp_imp.out "(identical parameters)"
check "best vs its import: the moments differ" contains cmp_imp.out "^the checkpoints differ in: optimizer moments$"

# [augment] crop = 24, 24 (Keras's RandomCrop): the network's input is 24x24; training takes
# random windows, validation, evaluate and predict the centred resize, the same on each path
csets=(--set data.dir=fm --set checkpoint.dir=crop --set train.epochs=2 --set augment.crop=24,24)
"$bin" summary "$cfg" --set augment.crop=24,24 > crop_summary.out 2>&1
check "crop: summary shows the 24x24 input" \
    contains crop_summary.out "input_1 (InputLayer)         \[(None, 24, 24, 1)\]"
check "crop: the first convolution sees 24x24" \
    contains crop_summary.out "conv2d (Conv2D)              (None, 22, 22, 32)        320"
"$bin" train "$cfg" "${csets[@]}" > crop_train.out 2>&1
check "crop: train exit 0" test $? -eq 0
check "crop: validated" contains crop_train.out "val_accuracy"
"$bin" evaluate "$cfg" "${csets[@]}" --split val --checkpoint crop/mnist_convnet-best.ckpt \
    > crop_evalval.out 2>&1
check "crop: evaluate exit 0" test $? -eq 0
# the best epoch's validation is what evaluate finds on the same split
check "crop: evaluate on val gives the best epoch's val_loss and val_accuracy" \
    best_epoch_matches crop/history.csv crop_evalval.out
# predict reads an image as evaluate does: one image's loss is -log of predict's probability
mkdir -p one/7_Sneaker && cp "$img" one/7_Sneaker/
"$bin" evaluate "$cfg" "${csets[@]}" --data one --checkpoint crop/mnist_convnet-best.ckpt \
    > crop_eval1.out 2>&1
"$bin" predict "$cfg" "${csets[@]}" --checkpoint crop/mnist_convnet-best.ckpt --top 10 \
    --digits 6 "$img" > crop_pred.out 2>&1
check "crop: predict exit 0" test $? -eq 0
loss1=$(sed -n 's/.*loss: \([0-9.]*\).*/\1/p' crop_eval1.out)
p7=$(grep -o '7_Sneaker 0\.[0-9]*' crop_pred.out | tail -1 | cut -d' ' -f2)
check "crop: predict's probability of the class is exp(-evaluate's loss) ($p7, $loss1)" \
    awk -v p="$p7" -v l="$loss1" 'BEGIN { d = p - exp(-l); exit !(p != "" && l != "" && d * d < 1e-8) }'
"$bin" bench "$cfg" "${csets[@]}" --iters 2 > crop_bench.out 2>&1
check "crop: bench on random 24x24 inputs exit 0" test $? -eq 0
"$bin" bench "$cfg" "${csets[@]}" --iters 2 --data-only > crop_data.out 2>&1
check "crop: the loader delivers 24x24" contains crop_data.out "24x24x1, augmented"
"$bin" train "$cfg" "${csets[@]}" --set augment.crop=24 > crop_bad.out 2>&1
check "crop = 24: exit 1" test $? -eq 1
check "crop = 24: two integers expected, the key named" \
    contains crop_bad.out "\[augment\] crop = '24': expected two integers"
"$bin" train "$cfg" "${csets[@]}" --set model.input_shape=28,28,1 > crop_shape.out 2>&1
check "crop with another input_shape: exit 1" test $? -eq 1
check "crop with another input_shape: said" \
    contains crop_shape.out "RandomCrop makes them 24x24x1, the model expects 28x28x1"

# RGB, binary crossentropy, augmentation and dropout: the book's second experiment on the synthetic
# shapes set, at 96x96 to stay quick
"$bin" dataset shapes shapes --limit 48 > shapes.out 2>&1
check "shapes dataset written" test -d shapes/train/circle -a -d shapes/validation/square -a -d shapes/test
aug=$src/configs/catsdogs_augmented.cfg
asets=(--set data.dir=shapes --set data.image_size=96,96 --set checkpoint.dir=aug
       --set train.epochs=2 --set train.batch_size=16)
"$bin" train "$aug" "${asets[@]}" > aug.out 2>&1
check "augmented RGB training exit 0" test $? -eq 0
check "augmented RGB training validates" contains aug.out "validated 48 images"
"$bin" evaluate "$aug" "${asets[@]}" --checkpoint aug/catsdogs_augmented-best.ckpt > aug_eval.out 2>&1
check "augmented RGB evaluate" contains aug_eval.out "test: 48 images"
"$bin" predict "$aug" "${asets[@]}" --checkpoint aug/catsdogs_augmented-best.ckpt --top 2 \
    "$(find shapes/test/square -name '*.jpg' | head -1)" > aug_pred.out 2>&1
check "binary predict names both classes" grep -Eq "jpg (circle|square) 0\.[0-9]+ (circle|square) 0\.[0-9]+$" aug_pred.out
"$bin" bench "$aug" "${asets[@]}" --data-only --iters 2 > aug_bench.out 2>&1
check "data bench compares with the plain decode" contains aug_bench.out "the plain decode rate"
# on 2 ranks the folder is listed once, by rank 0: rank 1 would fail if it read it
"${mpirun[@]}" -np 1 "$bin" bench "$aug" "${asets[@]}" --data-only --iters 2 : \
    -np 1 -x SN_TEST_FORBID_SCAN=1 "$hooked" bench "$aug" "${asets[@]}" --data-only --iters 2 > aug_bench2.out 2>&1
check "data bench on 2 ranks: exit 0, rank 1 never lists the folder" test $? -eq 0

# bad files in the training folder: skipped, counted, training completes; strict mode stops on them
mkdir -p badfm && cp -r fm/train fm/val badfm/
head -c 200 "$(find badfm/train/0_T-shirt_top -name '*.jpg' | head -1)" > badfm/train/0_T-shirt_top/trunc.jpg
: > badfm/train/1_Trouser/empty.jpg
echo "not an image" > badfm/train/2_Pullover/text.jpg
echo "not an image either" > badfm/val/3_Dress/valtext.jpg
bsets=(--set data.dir=badfm --set checkpoint.dir=badrun --set train.epochs=1 --set train.batch_size=100)
"$bin" train "$cfg" "${bsets[@]}" > bad.out 2>&1
check "bad files: training completes" test $? -eq 0
check "bad files: 3 skipped in the epoch" contains bad.out "3 unreadable files skipped"
check "bad files: each named once" test "$(grep -c 'skipping .*trunc.jpg' bad.out)" -eq 1
check "bad files: validation skips counted" contains bad.out "1 unreadable validation files skipped"
"$bin" train "$cfg" "${bsets[@]}" --set data.on_bad_image=fail > strict.out 2>&1
check "strict mode: exit 1" test $? -eq 1
check "strict mode: names the file" grep -q "empty.jpg\|trunc.jpg\|text.jpg" strict.out

# errors: each names the file and line, exits non-zero, starts no work
printf '[data]\ndir = fm\nimage_size = 28\ncolor_mode = grayscale\n[conv2d]\nfilter = 3\nkernel_size = 3\n[flatten]\n[dense]\nunits = 10\n' > typo.cfg
"$bin" train typo.cfg > typo.out 2>&1
check "typo exit 1" test $? -eq 1
check "misspelt required key names its own line, with a suggestion" \
    contains typo.out "typo.cfg:6: unknown key 'filter' in \[conv2d\] (section at line 5); did you mean 'filters'?"
printf '[data]\ndir = fm\nimage_size = 28\ncolor_mode = grayscale\n[conv2d]\nfilters = 3\nkernel_size = 3\nactivaton = relu\n[flatten]\n[dense]\nunits = 10\n' > typo2.cfg
"$bin" train typo2.cfg > typo2.out 2>&1
check "unknown key exit 1" test $? -eq 1
check "unknown key names file:line:key" contains typo2.out "typo2.cfg:8: unknown key 'activaton'"
printf '[data]\nimage_size = 28\ncolor_mode = grayscale\n[conv2d]\nfilters = many\nkernel_size = 3\n' > badnum.cfg
"$bin" summary badnum.cfg > badnum.out 2>&1
check "bad number exit 1" test $? -eq 1
check "bad number names line and key" contains badnum.out "badnum.cfg:5"
printf '[conv2d]\nfilters = 8\nkernel_size = 3\n[flatten]\n[dense]\nunits = 2\n' > noinput.cfg
"$bin" summary noinput.cfg > noinput.out 2>&1
check "missing section exit 1" test $? -eq 1
check "missing section hint" contains noinput.out "image_size"
"$bin" train "$cfg" "${sets[@]}" --set data.dir=nowhere > nodata.out 2>&1
check "missing data dir exit 1" test $? -eq 1
check "missing data dir named" contains nodata.out "nowhere"

head -c 100 run/mnist_convnet-best.ckpt > truncated.ckpt
"$bin" evaluate "$cfg" "${sets[@]}" --checkpoint truncated.ckpt > trunc.out 2>&1
check "truncated checkpoint exit 1" test $? -eq 1
check "truncated checkpoint named" contains trunc.out "truncated.ckpt"

finish
