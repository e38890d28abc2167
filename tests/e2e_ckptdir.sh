#!/usr/bin/env bash
# The checkpoint directory: one run at a time, and room for every file the run will write.
# - a second run in a directory that a live run holds is refused at start, naming the holder,
#   having done nothing (alone and under mpirun); the first ends normally with its own files;
# - an array task in its sibling's directory is told to use a directory of its own;
# - a lock left by kill -9 is taken over at once on the same host (the resume works); a lock of
#   another host is refused while it beats and taken over once stale; an earlier run of the
#   same SLURM job (a requeue) is taken over at once;
# - the lock is removed after a normal end, an error and a stop (exit 75);
# - a run stopped (SIGSTOP) past the staleness period whose lock another run took over ends
#   without writing when it wakes, and the other run's files are its own;
# - the free-space check counts every file: one checkpoint per epoch with save_best_only =
#   false, and a trace.
# Every run is bounded (`timeout`, or end_of for a run in the background, whose pid the test
# signals), so that a regression fails instead of hanging the suite.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"
export OMPI_MCA_rmaps_base_oversubscribe=1

"$bin" dataset fashion-mnist fm --limit 120 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cfg=$src/configs/mnist_convnet.cfg
# slow steps (the reference backend) leave time to act while a run holds its directory
slow=(--set data.dir=fm --set train.batch_size=24 --set model.backend=ref --set train.threads=1)
fast=(--set data.dir=fm --set train.threads=1)
host=$(hostname)
lock=.shardnet-lock

# wait_lock DIR: until DIR's lock is there (30 s at most)
wait_lock() { wait_for_file "$1/$lock" 30; }
# wait_line FILE TEXT: until FILE holds TEXT (60 s at most)
wait_line() {
    local _
    for _ in $(seq 1 600); do grep -q -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
rows() { echo $(( $(wc -l < "$1") - 1 )); }
# end_of PID [SECONDS]: PID's exit status, once it ended; killed after SECONDS (300)
end_of() {
    local _
    for _ in $(seq 1 $(( ${2:-300} * 10 ))); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$1" 2>/dev/null && { echo "pid $1 still running: killed"; kill -9 "$1"; }
    wait "$1"
}
# a lock as another run left it: lock_file DIR HOST PID JOB RESTART AGE
lock_file() {
    mkdir -p "$1"
    printf '# shardnet: written by hand for a test\nhost = %s\nmachine = \npid = %s\nprocess_start = 0\njob = %s\nrestart = %s\nconfig = other.cfg\nsince = %s (then)\nheartbeat = %s (then)\n' \
        "$2" "$3" "$4" "$5" "$(date +%s)" "$(date +%s)" > "$1/$lock"
    touch -d "@$(( $(date +%s) - $6 ))" "$1/$lock"
}

# --- two runs in one directory: the second is refused, the first keeps its own files
SLURM_ARRAY_JOB_ID=77 SLURM_ARRAY_TASK_ID=1 \
    "$bin" train "$cfg" "${slow[@]}" --set train.epochs=3 --set checkpoint.dir=two > first.out 2>&1 &
first=$!
wait_lock two
wait_line first.out "Epoch 1/3"
# held still while the others try: the outcome cannot depend on how fast the first one runs
kill -STOP $first
start=$(date +%s)
SLURM_ARRAY_JOB_ID=77 SLURM_ARRAY_TASK_ID=2 \
    timeout 120 "$bin" train "$cfg" "${fast[@]}" --set train.epochs=2 --set train.learning_rate=0.003 \
    --set checkpoint.dir=two > second.out 2>&1
rc=$?
check "second run in the same directory: exit 1 (got $rc)" test $rc -eq 1
check "second run: refused at once" test $(( $(date +%s) - start )) -le 30
check "second run: names the directory and the holder" \
    contains second.out "two: the checkpoint directory (\[checkpoint\] dir, --set checkpoint.dir) is in use by another run: host $host (this host), pid $first (running), SLURM job 77_1, config $cfg, since "
check "second run: says what to do" contains second.out "HINT: give this run another \[checkpoint\] dir"
check "second run: says which file to remove if the holder is dead" contains second.out "remove two/$lock"
check "second run, an array task: a directory of its own per task" \
    contains second.out "each task of a job array needs a \[checkpoint\] dir of its own"
check "second run: did no work" lacks second.out "Epoch 1"
timeout 120 "${mpirun[@]}" -np 2 "$bin" train "$cfg" "${fast[@]}" --set checkpoint.dir=two > second_mpi.out 2>&1
rc=$?
check "second run under mpirun -np 2: exit 1, every rank ended (got $rc)" test $rc -eq 1
check "second run under mpirun: names the holder" contains second_mpi.out "is in use by another run: host $host (this host), pid $first"
check "second run under mpirun: did no work" lacks second_mpi.out "Epoch 1"
kill -CONT $first
end_of $first
rc=$?
check "first run: exit 0 (got $rc)" test $rc -eq 0
check "first run: its history, 3 epochs" test "$(rows two/history.csv)" -eq 3
"$bin" inspect two/mnist_convnet-last.ckpt > two.meta 2>&1
check "first run: its checkpoint, 3 epochs" contains two.meta "epoch 3,"
check "first run: the lock removed at the end" test ! -e two/$lock
check "first run: nothing else left" test -z "$(find two -name "$lock*" -o -name '*.tmp.*')"

# --- the lock is removed after an error and after a stop
timeout 120 "$bin" train "$cfg" "${fast[@]}" --set data.dir=nowhere --set checkpoint.dir=err > err.out 2>&1
rc=$?
check "an error after the lock was taken: exit 1 (got $rc)" test $rc -eq 1
check "an error: the data's, said" contains err.out "nowhere"
check "an error: the lock removed" test -d err -a ! -e err/$lock
timeout 120 "${mpirun[@]}" -np 2 "$bin" train "$cfg" "${fast[@]}" --set data.dir=nowhere --set checkpoint.dir=errmpi > errmpi.out 2>&1
check "an error under mpirun -np 2: exit 1, the lock removed" test $? -eq 1 -a -d errmpi -a ! -e errmpi/$lock
"$bin" train "$cfg" "${slow[@]}" --set train.epochs=3 --set checkpoint.dir=stop > stop.out 2>&1 &
job=$!
wait_line stop.out "Epoch 1/3"
kill -USR1 $job
end_of $job
rc=$?
check "a stop: exit 75 (got $rc)" test $rc -eq 75
check "a stop: a checkpoint, the lock removed" test -s stop/mnist_convnet-last.ckpt -a ! -e stop/$lock

# --- kill -9: the lock stays, the resume takes it over at once
"$bin" train "$cfg" "${slow[@]}" --set train.epochs=2 --set checkpoint.dir=k9 > k9.out 2>&1 &
job=$!
wait_for_file k9/mnist_convnet-last.ckpt 120
kill -9 $job
end_of $job 2>/dev/null
check "kill -9: the lock is left behind" test -e k9/$lock
start=$(date +%s)
timeout 300 "$bin" train "$cfg" "${slow[@]}" --set train.epochs=2 --set checkpoint.dir=k9 --resume auto > k9b.out 2>&1
rc=$?
check "resume after kill -9: exit 0 (got $rc)" test $rc -eq 0
check "resume after kill -9: the dead process's lock taken over, said" \
    contains k9b.out "took over the stale lock k9/$lock of host $host (this host), pid $job, .*: its process is gone"
check "resume after kill -9: it resumed" contains k9b.out "Resuming from k9/mnist_convnet-last.ckpt"
check "resume after kill -9: no wait for staleness" test $(( $(date +%s) - start )) -le 120
check "resume after kill -9: the lock removed at the end" test ! -e k9/$lock

# --- another host's lock: refused while it beats, taken over once stale
lock_file far elsewhere-node 4242 "" 0 5
timeout 120 "$bin" train "$cfg" "${fast[@]}" --set train.epochs=1 --set checkpoint.dir=far > far.out 2>&1
rc=$?
check "another host's live lock: exit 1 (got $rc)" test $rc -eq 1
check "another host's live lock: names it" contains far.out "is in use by another run: host elsewhere-node, pid 4242, config other.cfg"
check "another host's live lock: says when it becomes stale" \
    contains far.out "from another host it cannot be told whether the run is alive: the lock is taken over once its heartbeat is 60 s old (in about 5[0-9] s)"
check "another host's live lock: left alone" grep -q "^host = elsewhere-node" far/$lock
lock_file far elsewhere-node 4242 "" 0 600
timeout 120 "$bin" train "$cfg" "${fast[@]}" --set train.epochs=1 --set checkpoint.dir=far > far2.out 2>&1
rc=$?
check "another host's stale lock: taken over, exit 0 (got $rc)" test $rc -eq 0
check "another host's stale lock: said" \
    contains far2.out "took over the stale lock far/$lock of host elsewhere-node, pid 4242, .*: no heartbeat for [0-9]* s, more than the 60 s"
check "another host's stale lock: removed at the end" test ! -e far/$lock
# a requeued SLURM job: its earlier run's lock (another node, still fresh) is taken over at once
lock_file requeue elsewhere-node 4242 8800 0 5
SLURM_JOB_ID=8800 SLURM_RESTART_COUNT=1 \
    timeout 120 "$bin" train "$cfg" "${fast[@]}" --set train.epochs=1 --set checkpoint.dir=requeue > requeue.out 2>&1
rc=$?
check "requeued job: its earlier run's lock taken over, exit 0 (got $rc)" test $rc -eq 0
check "requeued job: said" contains requeue.out "an earlier run of this SLURM job"

# --- stopped past the staleness period: another run takes over; the first writes nothing more
# (the test binary's heartbeat every 0.2 s, stale after 2 s)
export SN_TEST_LOCK_TIMES=0.2,2
"$hooked" train "$cfg" "${slow[@]}" --set train.epochs=3 --set checkpoint.dir=taken > taken1.out 2>&1 &
first=$!
wait_line taken1.out "Epoch 1/3"
kill -STOP $first
sleep 3
"$hooked" train "$cfg" "${slow[@]}" --set train.epochs=2 --set checkpoint.dir=taken > taken2.out 2>&1 &
second=$!
wait_line taken2.out "Epoch 1/2"
kill -CONT $first
end_of $first
rc=$?
check "a stopped run whose lock was taken over: exit 1 when it wakes (got $rc)" test $rc -eq 1
check "a stopped run: says its lock was taken over, and by whom" \
    contains taken1.out "this run's lock of the checkpoint directory .* was taken over by host $host (this host), pid $second"
check "a stopped run: wrote no checkpoint" lacks taken1.out "saved taken/"
end_of $second
rc=$?
check "the run that took over: exit 0 (got $rc)" test $rc -eq 0
check "the run that took over: said" contains taken2.out "took over the stale lock taken/$lock of host $host (this host), pid $first (running), .*: no heartbeat for"
check "the run that took over: its own history, 2 epochs" test "$(rows taken/history.csv)" -eq 2
"$bin" inspect taken/mnist_convnet-last.ckpt > taken.meta 2>&1
check "the run that took over: its own checkpoint, 2 epochs" contains taken.meta "epoch 2,"
unset SN_TEST_LOCK_TIMES

# --- free space: every file the run will write is counted, before the first epoch
if unshare -m true 2>/dev/null; then
    # three 4 MB disks; the network's checkpoint takes 0.75 MB
    mkdir -p each traced best
    unshare -m bash -c "mount -t tmpfs -o size=4m tmpfs each && mount -t tmpfs -o size=4m tmpfs traced &&
        mount -t tmpfs -o size=4m tmpfs best &&
        timeout 300 '$bin' train '$cfg' ${fast[*]} --set train.epochs=5 --set checkpoint.save_best_only=false \
            --set checkpoint.dir=each/run > each.out 2>&1; echo \$? > each.rc;
        timeout 300 '$bin' train '$cfg' ${fast[*]} --set train.epochs=300 --set checkpoint.dir=traced/run \
            --trace traced/run/t.json --trace-events 100000 > traced.out 2>&1; echo \$? > traced.rc;
        timeout 300 '$bin' train '$cfg' ${fast[*]} --set train.epochs=5 --set checkpoint.dir=best/run > best.out 2>&1; echo \$? > best.rc"
    check "a checkpoint per epoch on a 4 MB disk: exit 1 (got $(cat each.rc))" test "$(cat each.rc)" = 1
    check "a checkpoint per epoch: the room they need, named" \
        contains each.out "each/run: the checkpoint directory .* has [0-9.]* MB free, the run's files need about [0-9.]* MB"
    check "a checkpoint per epoch: refused before the first epoch" lacks each.out "Epoch 1"
    check "a trace that does not fit: exit 1 (got $(cat traced.rc))" test "$(cat traced.rc)" = 1
    check "a trace that does not fit: named" \
        contains traced.out "--trace traced/run/t.json: traced/run has [0-9.]* MB free; the trace needs about [0-9.]* MB, and the checkpoint files beside it"
    check "a trace that does not fit: refused before the first epoch" lacks traced.out "Epoch 1"
    check "save_best_only on the same disk: fits, exit 0 (got $(cat best.rc))" test "$(cat best.rc)" = 0
else
    skip "free space on a small file system (7 checks)" "no mount namespace here"
fi

finish
