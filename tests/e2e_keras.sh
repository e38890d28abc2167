#!/usr/bin/env bash
# Keras weight files: the three layouts users have (Keras 2 save_weights with the names of the
# VGG16 file the book downloads, a Keras 2 whole-model file, Keras 3 .weights.h5) import into the
# same checkpoint, whose parameters and state are those the fixture script computed from the
# arrays, and whose outputs on two images are numpy's to 1e-4; a file for another network, a wrong shape, a truncated file and a file that is not HDF5
# are errors naming the file (and the layer and both shapes), and write nothing; so are files and
# checkpoints holding a NaN, an infinity or a negative moving variance (for every command that
# loads weights), and a loss that overflows to NaN. A checkpoint without class names works for
# predict (with no data folder) and evaluate, its names from [data] class_names, from
# import-weights --class-names, else the class index.
# Fixtures: tests/keras/ (made by make_fixtures.py with python3-h5py). Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

k=$src/tests/keras
cfg=$k/tiny.cfg
for f in keras2_book.h5 keras2_model.h5 keras3.weights.h5; do
    "$bin" import-weights "$cfg" --keras "$k/$f" -o "$f.ckpt" > "$f.out" 2>&1
    check "$f: exit 0" test $? -eq 0
    check "$f: says what it wrote" contains "$f.out" "$f.ckpt: 631 parameters of .*tiny.cfg from"
    "$bin" inspect "$f.ckpt" --config "$cfg" > "$f.inspect" 2>&1
    while read -r what a b c; do # "layer NAME COUNT HASH" or "state COUNT HASH"
        if [[ $what == layer ]]; then
            check "$f: layer $a's $b parameters as computed from the arrays" \
                contains "$f.inspect" "layer $a  *$b parameters, hash $c"
        else
            check "$f: batch normalization's moving statistics" contains "$f.inspect" "state hash $b"
        fi
    done < "$k/expected.txt"
done
# --- the network's outputs on two images against numpy's (predictions.txt, made with the
# fixtures from the arrays alone), on each backend
close_to() { # OUT: every "IMAGE class p ..." of OUT within 1e-4 of predictions.txt's
    awk 'NR == FNR { for (i = 2; i < NF; i += 2) want[$1 "/" $i] = $(i + 1); next }
         { n = split($1, p, "/"); img = p[n]
           for (i = 2; i < NF; i += 2) { d = $(i + 1) - want[img "/" $i]; if (d < 0) d = -d
                                          if (!((img "/" $i) in want) || d > 1e-4) bad++; seen++ } }
         END { exit !(seen == 6 && bad == 0) }' "$k/predictions.txt" "$1" \
        || { echo "--- $1 differs from numpy's:"; cat "$1" "$k/predictions.txt"; return 1; }
}
for f in keras2_book.h5 keras3.weights.h5; do
    for backend in blas onednn ref; do
        "$bin" predict "$cfg" --checkpoint "$f.ckpt" --top 3 --digits 6 --set model.backend=$backend \
            "$k/image1.png" "$k/image2.png" > "pred_${f}_$backend.out" 2>&1
        check "$f, $backend: class probabilities of numpy's to 1e-4" close_to "pred_${f}_$backend.out"
    done
done
"$bin" inspect keras2_book.h5.ckpt --compare keras3.weights.h5.ckpt > same.out 2>&1
check "Keras 2 and Keras 3 files: identical parameters" contains same.out "identical parameters"
check "Keras 2 and Keras 3 files: identical checkpoints" contains same.out "^identical checkpoints: parameters, state and optimizer moments$"

# --- import -> export -> import: the same parameters and state, bit for bit
"$bin" export-weights "$cfg" --checkpoint keras2_book.h5.ckpt -o exported.h5 > export.out 2>&1
check "export: exit 0" test $? -eq 0
check "export: says what it wrote" contains export.out "exported.h5: 631 parameters of keras2_book.h5.ckpt, Keras 2 layout"
check "export: no temporary file left" test -z "$(ls exported.h5.tmp.* 2>/dev/null)"
"$bin" import-weights "$cfg" --keras exported.h5 -o again.ckpt > again.out 2>&1
check "export, import again: exit 0" test $? -eq 0
"$bin" inspect keras2_book.h5.ckpt --compare again.ckpt > round.out 2>&1
check "import, export, import: identical parameters" contains round.out "identical parameters"
check "import, export, import: identical state, said" contains round.out "^compare state: identical state (12 values)$"
check "import, export, import: identical state" \
    test "$(grep -o 'state hash [0-9a-f]*' round.out | sort -u | wc -l)" -eq 1
"$bin" export-weights "$src/configs/mnist_convnet.cfg" --checkpoint again.ckpt -o x.h5 > other.out 2>&1
check "export with another config: exit 1" test $? -eq 1
check "export with another config: named" contains other.out "again.ckpt: has 631 parameters, the model has 104202"

# --- bad files: an error naming the file, and no checkpoint written
expect_error() { # NAME FILE PATTERN [CONFIG]
    local name=$1 file=$2 pattern=$3 c=${4:-$cfg}
    "$bin" import-weights "$c" --keras "$file" -o bad.ckpt > "$name.out" 2>&1
    local rc=$?
    check "$name: exit 1 (got $rc)" test $rc -eq 1
    check "$name: message" contains "$name.out" "$pattern"
    check "$name: nothing written" test ! -e bad.ckpt
}
expect_error wrong_shape "$k/wrong_shape.h5" "layer 'block2_conv1', array 0 (block2_conv1/block2_conv1_W_1:0): shape (3, 3, 5, 6) in the file, (3, 3, 4, 6) in the config"
expect_error extra_layer "$k/other_net.h5" "other_net.h5 holds weights for layer 'fc1', which the config does not have"
expect_error missing_layer "$k/keras2_book.h5" "keras2_book.h5 has no weights for layer 'conv2d' (Conv2D); it has: block1_conv1, block2_conv1, block2_bn, predictions" "$src/configs/mnist_convnet.cfg"
head -c 12000 "$k/keras2_book.h5" > truncated.h5
expect_error truncated truncated.h5 "truncated.h5 cannot be opened as HDF5 (truncated or damaged?)"
expect_error not_hdf5 "$cfg" "tiny.cfg is not an HDF5 file"
expect_error missing_file nowhere.h5 "cannot read nowhere.h5"
"$bin" import-weights "$cfg" --keras "$k/keras3.weights.h5" > noout.out 2>&1
check "no -o: usage error, exit 2" test $? -eq 2

# --- values a network cannot run on: a NaN or an infinity, a negative moving variance. Refused
# on import, naming the layer and the element
expect_error nan_kernel "$k/nan_kernel.h5" "nan_kernel.h5: block1_conv1: kernel\[1,2,0,3\] is NaN (1 bad value in the file)"
expect_error inf_bias "$k/inf_bias.h5" "inf_bias.h5: predictions: bias\[2\] is -Inf"
expect_error negative_variance "$k/negative_variance.h5" "negative_variance.h5: block2_bn: moving_variance\[4\] is -0.25: a variance cannot be negative"
# checkpoints that hold them (written through the test hook, as the import wrote them before it
# checked) are refused by every command that loads weights, and nothing is written
SN_TEST_UNCHECKED_VALUES=1 "$hooked" import-weights "$cfg" --keras "$k/nan_kernel.h5" -o nan.ckpt > hooked1.out 2>&1
SN_TEST_UNCHECKED_VALUES=1 "$hooked" import-weights "$cfg" --keras "$k/negative_variance.h5" -o negvar.ckpt > hooked2.out 2>&1
check "a NaN written through the test hook" test -s nan.ckpt -a -s negvar.ckpt
# --- inspect --compare: the same parameters with other batch normalization statistics differ
"$bin" inspect keras2_book.h5.ckpt --compare negvar.ckpt > cmp_state.out 2>&1
check "other statistics: exit 0" test $? -eq 0
check "other statistics: the parameters are the same" contains cmp_state.out "(identical parameters)"
check "other statistics: the state differs, by how much" contains cmp_state.out "^compare state: differ by [0-9.e+-]* at most"
check "other statistics: the verdict names the state" contains cmp_state.out "^the checkpoints differ in: state$"
check "other statistics: not identical checkpoints" lacks cmp_state.out "identical checkpoints"
# checkpoints of other networks: what differs
printf '[data]\nimage_size = 12,12\ncolor_mode = rgb\n[preprocess]\nmode = caffe\n[conv2d]\nname = block1_conv1\nfilters = 4\nkernel_size = 3\npadding = same\nactivation = relu\n' > part.cfg
"$bin" import-weights part.cfg --keras "$k/keras2_book.h5" --by-name -o part.ckpt > part.out 2>&1
"$bin" inspect part.ckpt --compare keras2_book.h5.ckpt > cmp_shape.out 2>&1
check "other networks: exit 1" test $? -eq 1
check "other networks: the counts that differ" contains cmp_shape.out "part.ckpt and keras2_book.h5.ckpt hold other networks (112 parameters and 631, 0 state and 12; model hash"

for s in train val test; do # the fixture's images as a data set of the three classes
    for c in cat dog fox; do mkdir -p "data/$s/$c" && cp "$k/image1.png" "$k/image2.png" "data/$s/$c/"; done
done
refused() { # NAME PATTERN COMMAND...: exit 1, PATTERN in the output
    local name=$1 pattern=$2 rc
    shift 2
    "$@" > "$name.out" 2>&1
    rc=$?
    check "$name: exit 1 (got $rc)" test $rc -eq 1
    check "$name: message" contains "$name.out" "$pattern"
}
nan_at="nan.ckpt: block1_conv1: kernel\[1,2,0,3\] is NaN"
refused eval_nan "$nan_at" "$bin" evaluate "$cfg" --checkpoint nan.ckpt --data data
refused eval_negvar "negvar.ckpt: block2_bn: moving_variance\[4\] is -0.25" \
    "$bin" evaluate "$cfg" --checkpoint negvar.ckpt --data data
refused predict_nan "$nan_at" "$bin" predict "$cfg" --checkpoint nan.ckpt "$k/image1.png"
refused init_nan "$nan_at" "$bin" train "$cfg" --init nan.ckpt --set data.dir=data \
    --set checkpoint.dir=initrun --set train.epochs=1
check "train --init from a NaN: no checkpoint written" test -z "$(ls initrun/*.ckpt 2>/dev/null)"
refused export_nan "$nan_at" "$bin" export-weights "$cfg" --checkpoint nan.ckpt -o nan_out.h5
check "export of a NaN: nothing written" test ! -e nan_out.h5
refused extract_nan "$nan_at" "$bin" extract "$cfg" --checkpoint nan.ckpt --data data -o nan.feat
check "extract from a NaN: nothing written" test ! -e nan.feat
# finite weights whose activations overflow: a loss that is NaN is an error on every backend,
# as in training, naming the checkpoint and the split; predict refuses NaN probabilities
"$bin" import-weights "$cfg" --keras "$k/overflow.h5" -o over.ckpt > over.out 2>&1
check "finite weights that overflow: imported" test $? -eq 0
for backend in blas onednn ref; do
    refused "eval_overflow_$backend" "over.ckpt: the loss on the test split (data/test, 6 images) is NaN" \
        "$bin" evaluate "$cfg" --checkpoint over.ckpt --data data --set model.backend=$backend
    refused "predict_overflow_$backend" "image1.png: the network of over.ckpt computes NaN" \
        "$bin" predict "$cfg" --checkpoint over.ckpt --set model.backend=$backend "$k/image1.png"
done
"$bin" evaluate "$cfg" --checkpoint keras2_book.h5.ckpt --data data > eval_good.out 2>&1
check "the same data with good weights: exit 0" test $? -eq 0
check "the same data with good weights: a loss" contains eval_good.out "test: 6 images - loss: [0-9]"

# --- a checkpoint without class names (imported with a config that has no [data] class_names)
# works for predict with no data folder, and for evaluate
sed '/^class_names/d' "$cfg" > nocls.cfg
"$bin" import-weights nocls.cfg --keras "$k/keras2_book.h5" -o nocls.ckpt > nocls.out 2>&1
check "import without class names: exit 0" test $? -eq 0
"$bin" predict nocls.cfg --checkpoint nocls.ckpt --top 3 "$k/image1.png" > pred_index.out 2> pred_index.err
check "no class names anywhere: predict exit 0" test $? -eq 0
check "no class names anywhere: classes by index" grep -Eq "image1.png class_[012] 0\.[0-9]{3} class_[012] 0\.[0-9]{3} class_[012] 0\.[0-9]{3}$" pred_index.out
check "no class names anywhere: said once, with the way to give them" \
    test "$(grep -c 'nocls.ckpt holds no class names (imported without --class-names)' pred_index.err)" -eq 1
check "no class names anywhere: not called an old checkpoint" lacks pred_index.err "format 2"
"$bin" predict "$cfg" --checkpoint nocls.ckpt --top 3 --digits 6 "$k/image1.png" "$k/image2.png" \
    > pred_cfgnames.out 2> pred_cfgnames.err
check "[data] class_names: predict names the classes, numpy's probabilities" close_to pred_cfgnames.out
check "[data] class_names: not another config" lacks pred_cfgnames.err "another config"
"$bin" import-weights nocls.cfg --keras "$k/keras2_book.h5" -o named.ckpt --class-names "cat, dog,fox" > named.out 2>&1
check "--class-names: exit 0" test $? -eq 0
"$bin" predict nocls.cfg --checkpoint named.ckpt --top 3 --digits 6 "$k/image1.png" "$k/image2.png" > pred_named.out 2>&1
check "--class-names: kept in the checkpoint, predict needs nothing else" close_to pred_named.out
printf 'cat\n\ndog\nfox\n' > names.txt
"$bin" import-weights nocls.cfg --keras "$k/keras2_book.h5" -o named2.ckpt --class-names @names.txt > named2.out 2>&1
"$bin" inspect named2.ckpt --record > named2.inspect 2>&1
check "--class-names @FILE: one name a line, in the record" \
    test "$(grep -c '^class=\(cat\|dog\|fox\)$' named2.inspect)" -eq 3
refused names_count "--class-names has 2 classes but the last layer has 3 units" \
    "$bin" import-weights nocls.cfg --keras "$k/keras2_book.h5" -o bad.ckpt --class-names a,b
refused names_differ "--class-names a,b,c (3 names, a first) and \[data\] class_names of .*tiny.cfg (3 names, cat first) differ" \
    "$bin" import-weights "$cfg" --keras "$k/keras2_book.h5" -o bad.ckpt --class-names a,b,c
refused names_twice "'dog' is listed twice" \
    "$bin" import-weights nocls.cfg --keras "$k/keras2_book.h5" -o bad.ckpt --class-names dog,cat,dog
check "bad --class-names: nothing written" test ! -e bad.ckpt
"$bin" evaluate nocls.cfg --checkpoint nocls.ckpt --data data > eval_nocls.out 2>&1
check "no class names anywhere: evaluate takes the split's folders" test $? -eq 0
check "no class names anywhere: evaluate says so" contains eval_nocls.out "the split's folders name the classes"
"$bin" evaluate "$cfg" --checkpoint nocls.ckpt --data data > eval_cfgnames.out 2>&1
check "[data] class_names: evaluate exit 0" test $? -eq 0
check "[data] class_names: evaluate, not another config" lacks eval_cfgnames.out "another config"
# a path given as absolute is not called relative
"$bin" evaluate nocls.cfg --checkpoint nocls.ckpt --data "$PWD/nowhere" > abs.out 2>&1
check "an absolute folder that is missing: named" contains abs.out "$PWD/nowhere does not exist: "
check "an absolute folder: not called relative" lacks abs.out "relative"
"$bin" evaluate nocls.cfg --checkpoint nocls.ckpt --data nowhere > rel.out 2>&1
check "a relative folder: said relative to what" contains rel.out " nowhere does not exist (relative to the current directory)"
finish
