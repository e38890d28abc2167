#!/usr/bin/env bash
# A pretrained base under a new top, as the book stacks VGG16: a config names its base ([base]
# config, checkpoint) without copying its layers; the base's weights come from a checkpoint of the
# base alone (here: taken by name from a whole trained network, as Keras's load_weights(by_name)
# does); trainable = false freezes the whole base and on 2 ranks it stays bit-identical while
# the top trains; freeze_until = LAYER freezes up to LAYER (fine-tuning); bad [base] settings are
# errors naming the key before any work. Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

"$bin" dataset fashion-mnist fm --limit 60 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cat > base.cfg <<'CFG'
[data]
image_size = 28
color_mode = grayscale
[rescaling]
scale = 1/255
[conv2d]
name = c1
filters = 8
kernel_size = 3
activation = relu
[maxpooling2d]
name = p1
[conv2d]
name = c2
filters = 16
kernel_size = 3
activation = relu
[maxpooling2d]
name = p2
CFG
top() { # NAME [BASE KEYS...]: a top of flatten + dense over base.cfg
    local name=$1; shift
    { printf '[model]\nname = %s\n[data]\ndir = fm\nimage_size = 28\ncolor_mode = grayscale\n' "$name"
      printf '[train]\nepochs = 2\nbatch_size = 16\nthreads = 1\n[checkpoint]\ndir = %s\n' "$name"
      printf '[base]\nconfig = base.cfg\n'
      for kv in "$@"; do printf '%s\n' "$kv"; done
      printf '[flatten]\n[dense]\nunits = 10\nactivation = softmax\n'; } > "$name.cfg"
}

# --- a whole network trained, its base taken from it by name
top full
"$bin" train full.cfg > full.out 2>&1
check "base + top trains (no base weights: fresh)" test $? -eq 0
"$bin" export-weights full.cfg --checkpoint full/full-last.ckpt -o full.h5 > export.out 2>&1
"$bin" import-weights base.cfg --keras full.h5 -o base.ckpt > import.out 2>&1
check "the whole network's file into the base alone: refused without --by-name" contains import.out "holds weights for layer 'dense'.*--by-name"
"$bin" import-weights base.cfg --keras full.h5 -o base.ckpt --by-name > import.out 2>&1
check "--by-name: the base's layers alone" test $? -eq 0
"$bin" inspect base.ckpt --config base.cfg > base.inspect 2>&1
"$bin" inspect full/full-last.ckpt --config full.cfg > full.inspect 2>&1
hash_of() { grep -o "layer $1 .*hash [0-9a-f]*" "$2"; } # LAYER INSPECT-OUTPUT
for l in c1 c2; do
    check "base layer $l taken as trained" test "$(hash_of $l base.inspect)" = "$(hash_of $l full.inspect)"
done

# --- a frozen base on 2 ranks: bit-identical after training, the top trained
top frozen "checkpoint = base.ckpt" "trainable = false"
"$bin" summary frozen.cfg > frozen.summary 2>&1
check "summary: the base's parameters non-trainable" contains frozen.summary "Non-trainable params: 1,248"
check "summary: the base is one row, as Keras shows a nested model" contains frozen.summary "^ base (Functional) *(None, 5, 5, 16) *1,248 *$"
check "summary: its layers are not listed" lacks frozen.summary "c1 (Conv2D)"
"$bin" summary frozen.cfg --expand-nested > frozen.nested 2>&1
check "summary --expand-nested: the base's layers, indented" contains frozen.nested "^   c2 (Conv2D) *(None, 11, 11, 16) *1,168 *$"
"${mpirun[@]}" -np 2 "$bin" train frozen.cfg > frozen.out 2>&1
check "frozen base, 2 ranks: exit 0" test $? -eq 0
check "frozen base: said at start" contains frozen.out "base: 5 layers of .*base.cfg, weights from .*base.ckpt, 1248 of 5258 parameters frozen"
"$bin" inspect frozen/frozen-last.ckpt --config frozen.cfg > frozen.inspect 2>&1
for l in c1 c2; do
    check "frozen base: $l bit-identical to base.ckpt" test "$(hash_of $l base.inspect)" = "$(hash_of $l frozen.inspect)"
done
check "frozen base: listed as frozen" contains frozen.inspect "layer c2 .* (frozen)"
check "frozen base: the top trained" test "$(hash_of dense frozen.inspect)" != "$(hash_of dense full.inspect)"

# --- fine-tuning: freeze_until c1 keeps c1, trains c2
top tune "checkpoint = base.ckpt" "freeze_until = p1"
"$bin" train tune.cfg > tune.out 2>&1
check "freeze_until: exit 0" test $? -eq 0
"$bin" inspect tune/tune-last.ckpt --config tune.cfg > tune.inspect 2>&1
check "freeze_until p1: c1 bit-identical" test "$(hash_of c1 base.inspect)" = "$(hash_of c1 tune.inspect)"
check "freeze_until p1: c2 trained" test "$(hash_of c2 base.inspect)" != "$(hash_of c2 tune.inspect)"

# --- the book's sequence: the frozen run's best model, fine-tuned with a new optimizer (--init)
top finetune "freeze_until = p1"
"$bin" train finetune.cfg --init frozen/frozen-best.ckpt --set train.learning_rate=1e-5 > finetune.out 2>&1
check "--init: exit 0" test $? -eq 0
check "--init: said at start" contains finetune.out "initial weights from frozen/frozen-best.ckpt (epoch [0-9]* of the run that wrote it), a new optimizer; 80 of 5258 parameters frozen"
"$bin" inspect frozen/frozen-best.ckpt --config frozen.cfg > fbest.inspect 2>&1
"$bin" inspect finetune/finetune-last.ckpt --config finetune.cfg > finetune.inspect 2>&1
check "--init: c1 kept (frozen)" test "$(hash_of c1 fbest.inspect)" = "$(hash_of c1 finetune.inspect)"
check "--init: c2 fine-tuned" test "$(hash_of c2 fbest.inspect)" != "$(hash_of c2 finetune.inspect)"
check "--init: a new optimizer (step count from 0)" contains finetune.inspect "epoch 2, step 8,"
"$bin" train finetune.cfg --init base.ckpt --set checkpoint.dir=finetune2 > initbad.out 2>&1
check "--init with another network's checkpoint: exit 1" test $? -eq 1
check "--init with another network's checkpoint: named" contains initbad.out "base.ckpt: this checkpoint was made for another network"

# --- bad [base] settings: named, before any work
expect_bad() { # NAME PATTERN BASE-KEYS...
    local name=$1 pattern=$2; shift 2
    top "$name" "$@"
    "$bin" train "$name.cfg" > "$name.out" 2>&1
    local rc=$?
    check "$name: exit 1 (got $rc)" test $rc -eq 1
    check "$name: message" contains "$name.out" "$pattern"
    check "$name: no epoch" lacks "$name.out" "Epoch 1/"
}
expect_bad until_unknown "freeze_until = c9: the base (.*base.cfg) has no such layer" "freeze_until = c9"
expect_bad both "freeze_until and trainable = false both say what to freeze" "trainable = false" "freeze_until = c1"
expect_bad other_ckpt "\[base\] checkpoint .*full-last.ckpt holds 5258 parameters and 0 statistics; the base .*base.cfg has 1248 and 0" "checkpoint = full/full-last.ckpt"
printf '[model]\nname = nobase\n[data]\ndir = fm\nimage_size = 28\ncolor_mode = grayscale\n[base]\nconfig = missing.cfg\n[flatten]\n[dense]\nunits = 10\nactivation = softmax\n' > nobase.cfg
"$bin" summary nobase.cfg > nobase.out 2>&1
check "missing base config: exit 1" test $? -eq 1
check "missing base config: the key and line named" contains nobase.out "\[base\] config (nobase.cfg:8).*missing.cfg"
finish
