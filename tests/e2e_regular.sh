#!/usr/bin/env bash
# Every file the program reads is a regular file (symbolic links followed): a FIFO named by
# mistake (which a plain open waits on until a writer comes, forever) or a directory is an
# error naming it, at once: an image to predict, a checkpoint to evaluate, inspect or resume,
# a config, a feature file, a Keras weight file, a trace for timeline, a CSV for plot, an IDX
# file for dataset. In training, such a file among the images (or a link to one) is skipped
# and counted like a corrupt image, and named. Every command runs under `timeout`: a
# regression fails here instead of hanging the suite.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"
export OMPI_MCA_rmaps_base_oversubscribe=1

"$bin" dataset fashion-mnist fm --limit 120 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cfg=$src/configs/mnist_convnet.cfg
sets=(--set data.dir=fm --set train.threads=1)
timeout 300 "$bin" train "$cfg" "${sets[@]}" --set train.epochs=1 --set checkpoint.dir=run > run.out 2>&1 ||
    { echo "training failed"; cat run.out; exit 1; }
ckpt=run/mnist_convnet-last.ckpt
mkfifo fifo.jpg fifo.ckpt fifo.cfg fifo.bin fifo.h5 fifo.json fifo.csv
T=30 # seconds: each command ends long before; a hang ends at T with 124

# expect NAME STATUS TEXT COMMAND...: COMMAND ends with STATUS (not 124: a hang) and says TEXT
expect() {
    local name=$1 want=$2 text=$3
    shift 3
    timeout $T "$@" > "$name.out" 2>&1
    local rc=$?
    check "$name: exit $want (got $rc${rc/#124/, a hang})" test $rc -eq "$want"
    check "$name: says what the file is" contains "$name.out" "$text"
}
expect predict 1 "fifo.jpg: the image is a FIFO, not a regular file" \
    "$bin" predict "$cfg" --checkpoint $ckpt fifo.jpg
expect predict_dir 1 "fm: the image is a directory, not a regular file" \
    "$bin" predict "$cfg" --checkpoint $ckpt fm
expect evaluate 1 "fifo.ckpt: the checkpoint is a FIFO, not a regular file" \
    "$bin" evaluate "$cfg" "${sets[@]}" --checkpoint fifo.ckpt
expect inspect 1 "fifo.ckpt: the checkpoint is a FIFO, not a regular file" \
    "$bin" inspect fifo.ckpt
expect resume 1 "fifo.ckpt: the checkpoint is a FIFO, not a regular file" \
    "$bin" train "$cfg" "${sets[@]}" --set checkpoint.dir=resume --resume fifo.ckpt
expect config 1 "fifo.cfg: the config is a FIFO, not a regular file" \
    "$bin" train fifo.cfg
expect config_evaluate 1 "fifo.cfg: the config is a FIFO, not a regular file" \
    "$bin" evaluate fifo.cfg --checkpoint $ckpt
expect features 1 "fifo.bin: the feature file is a FIFO, not a regular file" \
    "$bin" train "$cfg" --set data.features=fifo.bin --set checkpoint.dir=feat
expect keras 1 "fifo.h5: the Keras weight file is a FIFO, not a regular file" \
    "$bin" import-weights "$cfg" --keras fifo.h5 -o imported.ckpt
expect timeline 1 "fifo.json: the trace file is a FIFO, not a regular file" \
    "$bin" timeline fifo.json -o step.png
expect plot 1 "fifo.csv: the CSV file is a FIFO, not a regular file" \
    "$bin" plot fifo.csv -o curves.png
mkdir -p idx
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    mkfifo idx/$f.gz
done
expect dataset 1 "idx/train-images-idx3-ubyte.gz: the IDX file is a FIFO, not a regular file" \
    "$bin" dataset fashion-mnist fmout --source idx

# --- training: a FIFO among the images, and a link to one, are skipped, counted and named
cp -r fm fmf
mkfifo fmf/train/0_T-shirt_top/zz_fifo.png
ln -s "$PWD/fifo.jpg" fmf/train/1_Trouser/zz_link.jpg
timeout 300 "$bin" train "$cfg" --set data.dir=fmf --set train.threads=1 --set train.epochs=1 \
    --set checkpoint.dir=fifotrain > train.out 2>&1
rc=$?
check "train, a FIFO among the images: exit 0 (got $rc${rc/#124/, a hang})" test $rc -eq 0
check "train: the FIFO listed with the images" contains train.out "Found 122 files belonging to 10 classes"
check "train: the FIFO skipped, named" \
    contains train.out "skipping fmf/train/0_T-shirt_top/zz_fifo.png: the image is a FIFO, not a regular file"
check "train: the link to a FIFO skipped, named" \
    contains train.out "skipping fmf/train/1_Trouser/zz_link.jpg: the image is a FIFO, not a regular file"
check "train: both counted as skipped" contains train.out "2 unreadable files skipped"
timeout 300 "${mpirun[@]}" -np 2 "$bin" train "$cfg" --set data.dir=fmf --set train.threads=1 \
    --set train.epochs=1 --set checkpoint.dir=fifotrain2 > train2.out 2>&1
rc=$?
check "train on 2 ranks, a FIFO among the images: exit 0 (got $rc${rc/#124/, a hang})" test $rc -eq 0
check "train on 2 ranks: both counted as skipped" contains train2.out "2 unreadable files skipped"

finish
