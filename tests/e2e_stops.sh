#!/usr/bin/env bash
# Stops on request, at every moment a user can send one: a SIGUSR1 right after the start (the
# trainer catches it before anything else and stops after its first step, with a checkpoint);
# Ctrl-C in a terminal (SIGINT to the whole foreground process group, sent here with setsid and
# kill -INT -PGID) to `shardnet train` and to launcher/shardnet-run: both exit 75 with a
# checkpoint, and a second Ctrl-C ends the run at once (exit 130); a second SIGTERM to the
# launcher ends the run at once (exit 143), also while mpirun is still starting the ranks, with
# no crash of mpirun; a stop sent to the launcher before its ranks have started is held and
# passed on once they have (a stop after the first step); a rank ended by a stop signal before
# it could catch it is a stop (75), not a lost rank; Ctrl-C to a bare mpirun (Open MPI's: SIGTERM
# to the ranks after odls_base_sigkill_timeout). Each resumed run ends as one never interrupted.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"
export OMPI_MCA_rmaps_base_oversubscribe=1
export SHARDNET_BIN=$bin
run=$src/launcher/shardnet-run

"$bin" dataset fashion-mnist fm --limit 120 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cfg=$src/configs/mnist_convnet.cfg
# slow steps (the reference backend: about half a second each) leave time to act mid-run;
# 2 epochs of 5 steps
slow=(--set data.dir=fm --set train.batch_size=24 --set model.backend=ref --set train.epochs=2
      --set train.threads=1)

# the hashes of a checkpoint (parameters, state, optimizer moments)
hashes() { "$bin" inspect "$1" 2>/dev/null | grep -o 'parameter hash.*'; }
# the step a checkpoint holds
step_of() { "$bin" inspect "$1" 2>/dev/null | sed -n 's/.*epoch [0-9]*, step \([0-9]*\),.*/\1/p'; }
# waits (at most 30 s) until log $1 holds $2
wait_log() {
    for _ in $(seq 1 300); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
# `setsid env --default-signal=INT CMD...` in the background: CMD leads a process group of its
# own, as a terminal's foreground job does, with SIGINT's default action (a background job of
# this script would inherit it ignored); `kill -INT -- -$!` is then the terminal's Ctrl-C
in_group() { setsid env --default-signal=INT "$@" & }

# --- the runs never interrupted, on 1 rank and on 2
"$bin" train "$cfg" "${slow[@]}" --set checkpoint.dir=ref1 > ref1.out 2>&1
check "uninterrupted, 1 rank: exit 0" test $? -eq 0
"$run" -n 2 -- train "$cfg" "${slow[@]}" --set checkpoint.dir=ref2 > ref2.out 2>&1
check "uninterrupted, 2 ranks: exit 0" test $? -eq 0

# --- SIGUSR1 0.3 s after the start: the handler is in before anything else; the stop is taken
#     after the first step, with a checkpoint
"$bin" train "$cfg" "${slow[@]}" --set checkpoint.dir=early > early.out 2>&1 &
job=$!
sleep 0.3
kill -USR1 $job
wait $job
rc=$?
check "SIGUSR1 at 0.3 s: exit 75, not killed (got $rc)" test $rc -eq 75
check "SIGUSR1 at 0.3 s: stopped after the first step" contains early.out "stopped by a signal at epoch 1, step 1;"
check "SIGUSR1 at 0.3 s: the checkpoint holds step 1" test "$(step_of early/mnist_convnet-last.ckpt)" = 1
"$bin" train "$cfg" "${slow[@]}" --set checkpoint.dir=early --resume auto > early2.out 2>&1
check "resumed after the early stop: exit 0" test $? -eq 0
check "resumed after the early stop = never interrupted" \
    test -n "$(hashes ref1/mnist_convnet-last.ckpt)" -a "$(hashes early/mnist_convnet-last.ckpt)" = "$(hashes ref1/mnist_convnet-last.ckpt)"

# --- a stop that came just before the exec that changes OpenBLAS's kernels (a wrong product
#     in the start-up check; the hooked binary raises SIGUSR1 right before it) is kept across it
core=$("$bin" version 2>&1 | sed -n 's/.*OpenBLAS [0-9.]* \([A-Za-z0-9]*\) kernels.*/\1/p')
env -u OPENBLAS_CORETYPE SN_TEST_BLAS_WRONG="$core" SN_TEST_STOP_BEFORE_EXEC=1 \
    "$hooked" train "$cfg" "${slow[@]}" --set checkpoint.dir=exec > exec.out 2>&1
rc=$?
check "a stop before the kernels' exec: exit 75 (got $rc)" test $rc -eq 75
check "a stop before the kernels' exec: the program started again" contains exec.out "computed a wrong product in the start-up check"
check "a stop before the kernels' exec: stopped after the first step" contains exec.out "stopped by a signal at epoch 1, step 1;"

# --- Ctrl-C to `shardnet train` in a terminal: 75 with a checkpoint
in_group "$bin" train "$cfg" "${slow[@]}" --set checkpoint.dir=intr > intr.out 2>&1
job=$!
check "Ctrl-C: the run is in epoch 1" wait_log intr.out "Epoch 1/2"
sleep 1
kill -INT -- -$job
wait $job
rc=$?
check "Ctrl-C to shardnet train: exit 75 (got $rc)" test $rc -eq 75
check "Ctrl-C to shardnet train: said" contains intr.out "SIGINT: stopping at the end of this step with a checkpoint"
check "Ctrl-C to shardnet train: stopped with a checkpoint" contains intr.out "stopped by a signal at epoch"
"$bin" train "$cfg" "${slow[@]}" --set checkpoint.dir=intr --resume auto > intr2.out 2>&1
check "resumed after Ctrl-C: exit 0" test $? -eq 0
check "resumed after Ctrl-C = never interrupted" \
    test "$(hashes intr/mnist_convnet-last.ckpt)" = "$(hashes ref1/mnist_convnet-last.ckpt)"

# --- a second Ctrl-C ends it at once: killed by SIGINT (130); what was written stays whole
in_group "$bin" train "$cfg" "${slow[@]}" --set checkpoint.dir=intr2x > intr2x.out 2>&1
job=$!
check "second Ctrl-C: the run is in epoch 2" wait_log intr2x.out "Epoch 2/2"
kill -INT -- -$job
sleep 0.1
kill -INT -- -$job
start=$(date +%s.%N)
wait $job
rc=$?
check "second Ctrl-C to shardnet train: exit 130 (got $rc)" test $rc -eq 130
check "second Ctrl-C: at once (under 1 s)" below "$(awk -v a="$start" -v b="$(date +%s.%N)" 'BEGIN { print b - a }')" 1
check "second Ctrl-C: said" contains intr2x.out "second SIGINT: ending at once (exit 130)"
# epoch 1's checkpoint (step 5), or the stop's (step 6) if the step ended within the 0.1 s
check "second Ctrl-C: the last checkpoint is whole" grep -qx -e 5 -e 6 <<<"$(step_of intr2x/mnist_convnet-last.ckpt)"
check "second Ctrl-C: no temporary file left behind" test -z "$(find intr2x -name '*.tmp.*')"

# --- Ctrl-C to launcher/shardnet-run: its ranks stop with a checkpoint, 75
in_group "$run" -n 2 -- train "$cfg" "${slow[@]}" --set checkpoint.dir=lintr > lintr.out 2>&1
job=$!
check "launcher Ctrl-C: the run is in epoch 1" wait_log lintr.out "Epoch 1/2"
sleep 1
kill -INT -- -$job
wait $job
rc=$?
check "Ctrl-C to shardnet-run: exit 75 (got $rc)" test $rc -eq 75
check "Ctrl-C to shardnet-run: stopped with a checkpoint" contains lintr.out "stopped (rank 0): stopped by a signal at epoch"
"$run" -n 2 -- train "$cfg" "${slow[@]}" --set checkpoint.dir=lintr --resume auto > lintr2.out 2>&1
check "resumed after Ctrl-C to shardnet-run: exit 0" test $? -eq 0
check "resumed after Ctrl-C to shardnet-run = never interrupted" \
    test -n "$(hashes ref2/mnist_convnet-last.ckpt)" -a "$(hashes lintr/mnist_convnet-last.ckpt)" = "$(hashes ref2/mnist_convnet-last.ckpt)"

# --- a second Ctrl-C to the launcher: the ranks are killed, exit 130, nothing left running
in_group "$run" -n 2 -- train "$cfg" "${slow[@]}" --set checkpoint.dir=lintr2x > lintr2x.out 2>&1
job=$!
check "launcher, second Ctrl-C: the run is in epoch 1" wait_log lintr2x.out "Epoch 1/2"
kill -INT -- -$job
sleep 0.3
kill -INT -- -$job
wait $job
rc=$?
check "second Ctrl-C to shardnet-run: exit 130 (got $rc)" test $rc -eq 130
check "second Ctrl-C to shardnet-run: said" contains lintr2x.out "second SIGINT: ending the run at once (exit 130)"
sleep 0.5
check "second Ctrl-C to shardnet-run: no rank left" test -z "$(pgrep -f 'checkpoint.dir=lintr2x')"

# --- a second SIGTERM to the launcher, mid-run and while mpirun starts the ranks: exit 143,
#     and mpirun does not crash (its SIGTERM while it aborted a job made it segfault in
#     PMIx_Finalize, exit 139)
for when in "mid-run" "start-up"; do
    d=term2x-${when%-*}
    "$run" -n 2 -- train "$cfg" "${slow[@]}" --set checkpoint.dir=$d > $d.out 2>&1 &
    job=$!
    if [ "$when" = mid-run ]; then wait_log $d.out "Epoch 1/2"; sleep 1; else sleep 0.3; fi
    kill -TERM $job
    sleep 0.3
    kill -TERM $job
    wait $job
    rc=$?
    check "second SIGTERM to shardnet-run ($when): exit 143 (got $rc)" test $rc -eq 143
    check "second SIGTERM ($when): no crash of mpirun" lacks $d.out "Segmentation fault"
    check "second SIGTERM ($when): said" contains $d.out "second SIGTERM: ending the run at once (exit 143)"
    sleep 0.5
    check "second SIGTERM ($when): no rank left" test -z "$(pgrep -f "checkpoint.dir=$d")"
done

# --- a stop to the launcher before its ranks have started: held, then passed on; the ranks
#     stop after their first step
"$run" -n 2 -- train "$cfg" "${slow[@]}" --set checkpoint.dir=lstart > lstart.out 2>&1 &
job=$!
sleep 0.2
kill -USR1 $job
wait $job
rc=$?
check "SIGUSR1 to shardnet-run as it starts: exit 75 (got $rc)" test $rc -eq 75
check "SIGUSR1 as it starts: stopped after the first step" contains lstart.out "stopped by a signal at epoch 1, step 1;"
check "SIGUSR1 as it starts: no start line in the output" lacks lstart.out "SN_RUN_STARTED"

# --- a rank ended by a stop signal before it could catch it (here a stand-in still starting):
#     a stop, 75, not a lost rank
printf '#!/bin/bash\nsleep 5\nexec "%s" "$@"\n' "$bin" > slowstart
chmod +x slowstart
SHARDNET_BIN=$PWD/slowstart "$run" -n 2 -- train "$cfg" "${slow[@]}" --set checkpoint.dir=slowstart > slowstart.out 2>&1 &
job=$!
victim=""
for _ in $(seq 1 50); do
    victim=$(pgrep -f "slowstart train" | while read -r p; do
        [ "$(ps -o comm= -p "$(ps -o ppid= -p "$p" | tr -d ' ')")" = mpirun ] && echo "$p"; done | head -1)
    [ -n "$victim" ] && break
    sleep 0.1
done
check "a rank still starting: found" test -n "$victim"
kill -USR1 "$victim"
wait $job
rc=$?
check "a rank ended by SIGUSR1 while starting: exit 75 (got $rc)" test $rc -eq 75
check "a rank ended by SIGUSR1 while starting: said" contains slowstart.out "ended by signal 10 while it was being loaded"

# --- Ctrl-C to a bare mpirun is Open MPI's: mpirun alone gets it (each rank is in a process
#     group of its own), waits odls_base_sigkill_timeout, sends SIGTERM (the ranks stop with a
#     checkpoint if they can within that time again), then SIGKILL, and exits 1
in_group mpirun -np 2 --bind-to none --mca odls_base_sigkill_timeout 5 -x OPENBLAS_NUM_THREADS \
    "$bin" train "$cfg" "${slow[@]}" --set train.epochs=4 --set checkpoint.dir=bare > bare.out 2>&1
job=$!
check "bare mpirun: the run is in epoch 1" wait_log bare.out "Epoch 1/4"
kill -INT -- -$job
wait $job
rc=$?
check "Ctrl-C to a bare mpirun: exit 1, Open MPI's (got $rc)" test $rc -eq 1
check "Ctrl-C to a bare mpirun: the ranks stopped with a checkpoint" contains bare.out "stopped (rank 0): stopped by a signal at epoch"
mpirun -np 2 --bind-to none -x OPENBLAS_NUM_THREADS "$bin" train "$cfg" "${slow[@]}" --set train.epochs=4 \
    --set checkpoint.dir=bare --resume auto > bare2.out 2>&1
check "Ctrl-C to a bare mpirun: --resume auto continues it (exit 0)" test $? -eq 0

finish
