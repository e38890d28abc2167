#!/usr/bin/env bash
# What a user meets when things go wrong: problems found at start-up, before the first epoch
# (a checkpoint directory that is a file, read-only or full; a missing or class-less split);
# the exit statuses of a stop on request (75) and of a lost rank (76); SIGTERM to the launcher
# checkpointing like SIGUSR1; stale temporary files removed; logs written as whole lines, in
# order, as they happen; skipped-file reports on a line of their own.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"
export OMPI_MCA_rmaps_base_oversubscribe=1
export SHARDNET_BIN=$bin
run=$src/launcher/shardnet-run

"$bin" dataset fashion-mnist fm --limit 120 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cfg=$src/configs/mnist_convnet.cfg
sets=(--set data.dir=fm --set train.epochs=1 --set train.threads=1)
# slow steps (the reference backend) leave time to act in the middle of a run
slow=(--set data.dir=fm --set train.batch_size=24 --set model.backend=ref --set train.epochs=4)

# --- found at start-up, before any epoch
: > afile
"$bin" train "$cfg" "${sets[@]}" --set checkpoint.dir=afile/run > file.out 2>&1
check "checkpoint dir under a file: exit 1" test $? -eq 1
check "checkpoint dir under a file: named with its key" contains file.out "checkpoint directory (\[checkpoint\] dir, --set checkpoint.dir)"
check "checkpoint dir under a file: before the first epoch" lacks file.out "Epoch 1"
# read-only and full file systems, in a mount namespace of this test's own (root only)
if unshare -m true 2>/dev/null; then
    mkdir -p ro full
    unshare -m bash -c "mount -t tmpfs -o ro,size=1m tmpfs ro && mount -t tmpfs -o size=256k tmpfs full &&
        '$bin' train '$cfg' ${sets[*]} --set checkpoint.dir=ro/run > ro.out 2>&1; echo \$? > ro.rc;
        '$bin' train '$cfg' ${sets[*]} --set checkpoint.dir=full > full.out 2>&1; echo \$? > full.rc"
    check "read-only checkpoint dir: exit 1" test "$(cat ro.rc)" = 1
    check "read-only checkpoint dir: named" contains ro.out "ro/run: cannot create the checkpoint directory"
    check "full checkpoint dir: exit 1" test "$(cat full.rc)" = 1
    check "full checkpoint dir: named with the room it needs" contains full.out "full: the checkpoint directory .* has 0.3 MB free, the run's files need about"
    check "full checkpoint dir: before the first epoch" lacks full.out "Epoch 1"
else
    skip "read-only and full checkpoint directories (5 checks)" "no mount namespace here"
fi
mkdir -p noval && cp -r fm/train noval/
"$bin" train "$cfg" "${sets[@]}" --set data.dir=noval --set checkpoint.dir=nv > noval.out 2>&1
check "no validation split: exit 1" test $? -eq 1
check "no validation split: names the key, validation/ and validation_split" \
    contains noval.out "\[data\] dir = noval (--set data.dir): no validation split: neither noval/val nor noval/validation exists"
check "no validation split: the way out" contains noval.out "validation_split = 0.2"
mkdir -p emptyval/val && cp -r fm/train emptyval/
"$bin" train "$cfg" "${sets[@]}" --set data.dir=emptyval --set checkpoint.dir=ev > emptyval.out 2>&1
check "class-less validation split: exit 1, before an epoch" test $? -eq 1 -a -z "$(grep 'Epoch 1' emptyval.out)"
check "class-less validation split: named" contains emptyval.out "emptyval/val has no class subfolders"

# --- SIGTERM to the launcher: a resumable checkpoint and exit 75, like SIGUSR1
mkdir -p term && echo stale > term/mnist_convnet-last.ckpt.tmp.99999
"$run" -n 2 -- train "$cfg" "${slow[@]}" --set checkpoint.dir=term > term.out 2>&1 &
job=$!
for _ in $(seq 1 200); do [ -s term/mnist_convnet-last.ckpt ] && break; grep -q "Epoch 2" term.out && break; sleep 0.1; done
check "a stale temporary file is removed at start" test ! -e term/mnist_convnet-last.ckpt.tmp.99999
kill -TERM $job
wait $job
rc=$?
check "SIGTERM to shardnet-run: exit 75 (got $rc)" test $rc -eq 75
check "SIGTERM to shardnet-run: stopped with a checkpoint" contains term.out "stopped by a signal at epoch"
"$bin" inspect term/mnist_convnet-last.ckpt > term.meta 2>&1
check "SIGTERM to shardnet-run: the checkpoint is whole" test $? -eq 0
check "SIGTERM to shardnet-run: no temporary file left" test -z "$(find term -name '*.tmp.*')"
"$run" -n 2 -- train "$cfg" "${slow[@]}" --set checkpoint.dir=term --resume auto > term2.out 2>&1
check "resumed after SIGTERM: exit 0" test $? -eq 0

# --- SIGTERM to mpirun itself is Open MPI's: it kills the ranks and exits 1, as documented
mpirun -np 2 --bind-to none "$bin" train "$cfg" "${slow[@]}" --set checkpoint.dir=mpiterm > mpiterm.out 2>&1 &
job=$!
for _ in $(seq 1 200); do grep -q "Epoch 1" mpiterm.out && break; sleep 0.1; done
kill -TERM $job
wait $job
rc=$?
check "SIGTERM to mpirun: exit 1, as documented (got $rc)" test $rc -eq 1
pkill -9 -f "checkpoint.dir=mpiterm" 2>/dev/null

# --- the log as a file, under mpirun: whole lines in order, each written as it happens
"$run" -n 2 -- train "$cfg" "${slow[@]}" --set train.epochs=2 --set checkpoint.dir=log > log.out 2>&1 &
job=$!
early=0
for _ in $(seq 1 300); do
    if grep -q "Epoch 1/2" log.out; then
        # the header is in the file while the first epoch still runs
        [ ! -e log/history.csv ] && early=1
        break
    fi
    sleep 0.05
done
wait $job
check "log: the epoch header is written before the epoch ends" test $early -eq 1
check "log: no carriage returns" test "$(tr -cd '\r' < log.out | wc -c)" -eq 0
check "log: epoch 1's checkpoint message comes before epoch 2" \
    test "$(grep -n 'val_loss improved from inf' log.out | cut -d: -f1)" -lt "$(grep -n 'Epoch 2/2' log.out | cut -d: -f1)"

# --- a skipped file is reported on a line of its own, also under a terminal's progress bar
mkdir -p badfm && cp -r fm/train fm/val badfm/
# the last file of the last class, unshuffled: decoded when the bar has long been drawn
echo "not an image" > badfm/train/9_Ankle_boot/zz_text.jpg
script -qec "'$bin' train '$cfg' --set data.dir=badfm --set train.epochs=1 --set train.batch_size=8 \
    --set train.shuffle=false --set model.backend=ref --set checkpoint.dir=bad" /dev/null > tty.out 2>&1
check "under a terminal: a bar is drawn" contains tty.out "/16 \[=*>*\.*\] - ETA"
check "under a terminal: the skipped file starts its own line" \
    grep -q '^shardnet: skipping badfm/train/9_Ankle_boot/zz_text.jpg' <(tr '\r' '\n' < tty.out)
check "under a terminal: the skip is not glued after the bar" \
    test -z "$(tr '\r' '\n' < tty.out | grep '.shardnet: skipping')"

# --- a lost rank: the watchdog ends the job with 76, not the resumable 75
"$run" -n 2 -- train "$cfg" "${slow[@]}" --set train.watchdog=3 --set checkpoint.dir=faults_stuck > faults_stuck.out 2>&1 &
job=$!
for _ in $(seq 1 200); do grep -q "Epoch 1" faults_stuck.out && break; sleep 0.1; done
victim=$(pgrep -f "checkpoint.dir=faults_stuck" | while read -r p; do
    [ "$(cat /proc/$p/comm 2>/dev/null)" = shardnet ] && echo "$p"; done | tail -1)
kill -STOP "$victim"
start=$(date +%s)
for _ in $(seq 1 60); do kill -0 $job 2>/dev/null || break; sleep 0.5; done
kill -CONT "$victim" 2>/dev/null
wait $job
rc=$?
check "stuck rank: exit 76 (got $rc)" test $rc -eq 76
check "stuck rank: within 20 s" test $(( $(date +%s) - start )) -le 20
check "stuck rank: the watchdog names the wait" contains faults_stuck.out "another rank is stuck or dead"
pkill -9 -f "checkpoint.dir=faults_stuck" 2>/dev/null
# a rank killed outright, in the first epoch, while the ranks fill their caches of decoded images
# (cache = memory): mpirun reports 128 + 9, the launcher says peer lost
"$run" -n 2 -- train "$cfg" "${slow[@]}" --set data.cache=memory --set checkpoint.dir=faults_dead \
    > faults_dead.out 2>&1 &
job=$!
for _ in $(seq 1 200); do grep -q "Epoch 1" faults_dead.out && break; sleep 0.1; done
pkill -9 -n -f "checkpoint.dir=faults_dead"
wait $job
rc=$?
check "killed rank under shardnet-run: exit 76 (got $rc)" test $rc -eq 76
check "killed rank: said" contains faults_dead.out "a rank died on signal 9"
pkill -9 -f "checkpoint.dir=faults_dead" 2>/dev/null

finish
