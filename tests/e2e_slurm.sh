#!/usr/bin/env bash
# e2e_slurm.sh — shardnet's SLURM path on a private one-node cluster (cluster/local-cluster).
#
# usage: e2e_slurm.sh SHARDNET_BINARY SOURCE_DIR TMP_DIR
# Checks: the process-tracking plugins chosen from a tree's cgroup mounts (fake trees, and
# `start` says its choice); a 2-task srun --mpi=pmix job completes (mpi_dist, if built, sees one 2-rank world;
# the shardnet binary, if built, runs `version` on both tasks and, a one-process command,
# prints it once);
# a failing job is reported FAILED (so the checks can fail); cluster/train.sbatch requeues every
# stop that leaves a checkpoint (SIGUSR1 or SIGTERM to the steps or to the batch shell, a time
# limit with and without its warning, --signal=USR1@N), and the requeued job completes, but not
# a cancelled job nor a lost rank; the real trainer stopped as it starts resumes exactly;
# cluster/train-multinode.sbatch trains on 2 nodes x 2 ranks (two slurmd on this host) with
# shared data and checkpoint folders, as submitted (it fits 4-CPU nodes); two more clusters at
# once do not kill each other's jobs. Exit 77 = skipped (no SLURM).
# The cluster is always stopped at the end, and every wait is bounded.
set -uo pipefail

bin="$1" src="$2" tmp="$3"
mkdir -p "$tmp"
tmp="$(cd "$tmp" && pwd)"
# the user's cache folder of every job (sbatch passes the environment on): the backend choices
# and the file lists rank 0 keeps, here rather than in the home of whoever runs the test
export XDG_CACHE_HOME="$tmp/cache"
# Job ids restart at 1 on each fresh cluster and train.sbatch appends: clear the last run's output.
rm -f "$tmp"/job-*.out
lc="$src/cluster/local-cluster"
mpi_dist="$(cd "$tmp/.." && pwd)/../mpi_dist"

# A private cluster: own directory (short: the munge socket path must fit in 108 bytes) and
# own ports, so that it neither meets a developer's cluster nor a second run of this test.
export SN_CLUSTER_DIR
SN_CLUSTER_DIR="$(mktemp -d /tmp/sn-e2e-slurm.XXXXXX)"
export SN_CLUSTER_PORT=$((20000 + ($$ % 10000) * 3))
# two slurmd standing in for two nodes (HOST1, HOST2), for cluster/train-multinode.sbatch
export SN_CLUSTER_NODES=2

two=()
cleanup() {
    local k
    for k in "${!two[@]}"; do
        SN_CLUSTER_DIR="${two[$k]}" SN_CLUSTER_PORT=$((SN_CLUSTER_PORT + 3 * (k + 1))) SN_CLUSTER_NODES=1 \
            "$lc" stop >/dev/null 2>&1
        rm -rf "${two[$k]}"
    done
    "$lc" stop >"$tmp/stop.log" 2>&1 || true
    rm -rf "$tmp/cluster-log"
    cp -r "$SN_CLUSTER_DIR/log" "$tmp/cluster-log" 2>/dev/null || true
    rm -rf "$SN_CLUSTER_DIR"
}
trap cleanup EXIT

failures=0
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
pass() { echo "ok: $*"; }

# 0. The process-tracking choice, judged on fake file system trees (no SLURM needed): cgroup v2,
#    cgroup v1 with the freezer, v1 without it, and nothing mounted (a container or chroot).
fake="$tmp/fake-root"
rm -rf "$fake"
mkdir -p "$fake"/{v2/sys/fs/cgroup,v1/proc,v1nofreezer/proc,none/proc,empty}
touch "$fake/v2/sys/fs/cgroup/cgroup.controllers"
echo "cgroup /sys/fs/cgroup/freezer cgroup rw,nosuid,nodev,noexec,relatime,freezer 0 0" >"$fake/v1/proc/mounts"
echo "cgroup /sys/fs/cgroup/memory cgroup rw,relatime,memory 0 0" >"$fake/v1nofreezer/proc/mounts"
echo "proc /proc proc rw,relatime 0 0" >"$fake/none/proc/mounts"
plugins_of() { SN_CLUSTER_CGROUP="${2:-auto}" "$lc" plugins "$fake/$1" 2>&1; }
[[ "$(plugins_of v2)" == "ProctrackType=proctrack/cgroup TaskPlugin=task/cgroup (cgroup v2"* ]] &&
    pass "cgroup v2 tree: cgroup plugins" || fail "cgroup v2 tree: $(plugins_of v2)"
[[ "$(plugins_of v1)" == "ProctrackType=proctrack/cgroup TaskPlugin=task/cgroup (cgroup v1 freezer mounted at /sys/fs/cgroup/freezer)" ]] &&
    pass "cgroup v1 tree: cgroup plugins" || fail "cgroup v1 tree: $(plugins_of v1)"
for t in v1nofreezer none empty; do
    [[ "$(plugins_of $t)" == "ProctrackType=proctrack/linuxproc TaskPlugin=task/none (no cgroup file system mounted"* ]] &&
        pass "$t tree: falls back to linuxproc" || fail "$t tree: $(plugins_of $t)"
done
[[ "$(plugins_of v2 no)" == "ProctrackType=proctrack/linuxproc TaskPlugin=task/none (SN_CLUSTER_CGROUP=no)" ]] &&
    pass "SN_CLUSTER_CGROUP=no: linuxproc" || fail "SN_CLUSTER_CGROUP=no: $(plugins_of v2 no)"
plugins_of none yes >/dev/null && fail "SN_CLUSTER_CGROUP=yes without cgroups should fail" ||
    pass "SN_CLUSTER_CGROUP=yes without cgroups fails"

start_out="$("$lc" start 2>&1)"
rc=$?
if [[ $rc -eq 77 ]]; then
    echo "SKIP: SLURM packages are absent and cannot be installed here"
    echo "$start_out"
    exit 77
fi
if [[ $rc -ne 0 ]]; then
    echo "$start_out"
    echo "FAIL: local cluster did not start (logs: $tmp/cluster-log)"
    exit 1
fi
eval "$(grep '^export SLURM_CONF=' <<<"$start_out")"
grep -q "process tracking: proctrack/" <<<"$start_out" && pass "start says which process tracking it chose" ||
    fail "start did not say which process tracking it chose"
grep "process tracking:" <<<"$start_out"
[[ -n "${SLURM_CONF:-}" ]] || { echo "FAIL: start printed no SLURM_CONF line"; exit 1; }

# Waits at most $2 seconds for job $1 to end; prints "STATE EXITCODE RESTARTS".
job_end() {
    local id="$1" secs="$2" line="" state="" i
    for ((i = 0; i < secs * 2; i++)); do
        line="$(scontrol -o show job "$id" 2>/dev/null)"
        state="$(sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p' <<<"$line")"
        case "$state" in
            COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE) break ;;
        esac
        sleep 0.5
    done
    echo "${state:-UNKNOWN} $(sed -n 's/.* ExitCode=\([0-9:]*\).*/\1/p' <<<"$line") $(sed -n 's/.* Restarts=\([0-9]*\).*/\1/p' <<<"$line")"
}

# Waits at most $2 seconds for job $1 to be RUNNING.
job_running() {
    local i
    for ((i = 0; i < $2 * 2; i++)); do
        [[ "$(scontrol -o show job "$1" 2>/dev/null)" == *JobState=RUNNING* ]] && return 0
        sleep 0.5
    done
    return 1
}

# 1. Two tasks through PMIx: hostname twice, then the MPI test program as one 2-rank world.
{
    echo '#!/bin/bash'
    echo 'set -e'
    echo 'srun --mpi=pmix hostname'
    if [[ -x "$mpi_dist" ]]; then echo "srun --mpi=pmix $(printf %q "$mpi_dist")"; fi
    if [[ -x "$bin" ]]; then echo "srun --mpi=pmix $(printf %q "$bin") version"; fi
} >"$tmp/job-mpi.sh"
[[ -x "$mpi_dist" ]] || echo "note: $mpi_dist not built; the job runs hostname only"
id="$(sbatch --parsable --ntasks=2 --time=2 --output="$tmp/job-mpi-%j.out" "$tmp/job-mpi.sh")"
read -r state code _ <<<"$(job_end "$id" 90)"
out="$tmp/job-mpi-$id.out"
if [[ "$state" == COMPLETED && "$code" == 0:0 ]]; then pass "2-task pmix job $id COMPLETED 0:0"; else fail "2-task job $id: JobState=$state ExitCode=$code"; fi
[[ "$(grep -c -x "$(hostname)" "$out" 2>/dev/null)" -ge 2 ]] && pass "hostname ran on 2 tasks" || fail "expected 2 hostname lines in $out"
if [[ -x "$mpi_dist" ]]; then
    grep -q "mpi_dist: rank 1 of 2" "$out" && pass "mpi_dist saw one 2-rank world" || fail "mpi_dist did not report 'rank 1 of 2' in $out"
    [[ "$(grep -c 'PASSED' "$out")" -eq 2 ]] && pass "mpi_dist passed on both ranks" || fail "mpi_dist did not pass on 2 ranks (see $out)"
fi

if [[ -x "$bin" ]]; then
    # a one-process command under a launcher runs on rank 0 alone: one line, not two
    [[ "$(grep -c '^shardnet ' "$out")" -eq 1 ]] && pass "shardnet version on 2 tasks printed once" || fail "expected 1 'shardnet VERSION' line in $out"
fi

# 2. A failing step must make the job FAILED with its exit code: the checks above can fail.
printf '#!/bin/bash\nsrun --mpi=pmix bash -c "exit 3"\n' >"$tmp/job-false.sh"
id="$(sbatch --parsable --ntasks=2 --time=2 --output="$tmp/job-false-%j.out" "$tmp/job-false.sh")"
read -r state code _ <<<"$(job_end "$id" 60)"
if [[ "$state" == FAILED && "$code" == 3:0 ]]; then pass "failing job $id reported FAILED 3:0"; else fail "failing job $id: JobState=$state ExitCode=$code (want FAILED 3:0)"; fi

# 3. cluster/train.sbatch with a stand-in trainer that behaves as shardnet train does: its
#    start line for shardnet-run (SN_RUN_STARTED) once its traps are set, SIGUSR1 or SIGTERM
#    stop it with 75 ("checkpointed, resumable"), and a requeued run (SLURM_RESTART_COUNT > 0)
#    completes. Every stop that leaves a checkpoint is requeued and the second run completes; a
#    cancelled job and a 76 are not requeued.
cat >"$tmp/fake-trainer" <<'EOF'
#!/bin/bash
echo "fake rank $SLURM_PROCID restart ${SLURM_RESTART_COUNT:-0}: $*"
if [[ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]]; then exit 0; fi
stop() { echo "fake rank $SLURM_PROCID got $1"; exit "${FAKE_STOP_STATUS:-75}"; }
if [[ -n "${FAKE_IGNORE_USR1:-}" ]]; then
    trap 'echo "fake rank $SLURM_PROCID ignores USR1"' USR1
else
    trap 'stop USR1' USR1
fi
trap 'stop TERM' TERM
[[ "$SLURM_PROCID" != 0 || -z "${SN_RUN_STARTED:-}" ]] || echo "SN_RUN_STARTED $SN_RUN_STARTED $SLURM_NTASKS"
for i in $(seq 480); do sleep 0.25; done
exit 9
EOF
chmod +x "$tmp/fake-trainer"
# submit_fake NAME [SBATCH-OPTION... --] [VAR=VALUE...]: submits train.sbatch with the stand-in
# (output job-NAME-ID.out); sets id and out
submit_fake() {
    local name=$1 opts=()
    shift
    if [[ " $* " == *" -- "* ]]; then
        while [[ "$1" != -- ]]; do opts+=("$1"); shift; done
        shift
    fi
    id="$(cd "$src" && env "$@" SHARDNET_BIN="$tmp/fake-trainer" sbatch --parsable --ntasks=2 \
          --time=5 "${opts[@]}" --output="$tmp/job-$name-%j.out" "${script:-cluster/train.sbatch}" configs/none.ini)"
    out="$tmp/job-$name-$id.out"
}
# ranks_up ID OUT: waits (at most 30 s) for both ranks of the job's first run to have started
ranks_up() {
    job_running "$1" 30 || return 1
    for ((i = 0; i < 120; i++)); do
        [[ "$(grep -c 'restart 0' "$2" 2>/dev/null)" -ge 2 ]] && return 0
        sleep 0.25
    done
    return 1
}
# stop_fake_job NAME SCANCEL-ARGS... [-- VAR=VALUE...]: submits, runs `scancel ARGS ID` once
# both ranks run, and sets id, out, state, code and restarts when the job has ended (state is
# empty if it never started)
stop_fake_job() {
    local name=$1 sc=()
    shift
    while [[ $# -gt 0 && "$1" != -- ]]; do sc+=("$1"); shift; done
    [[ $# -eq 0 ]] || shift
    submit_fake "$name" "$@"
    state="" code="" restarts=""
    ranks_up "$id" "$out" || return 0
    sleep 0.5
    scancel "${sc[@]}" "$id"
    # A requeued job waits cred_expire (10 s) + 1 s before it starts again; moving its StartTime
    # to now races with the revoked credential ("Job credential revoked") and kills it.
    read -r state code restarts <<<"$(job_end "$id" 90)"
}
# requeued_once WHAT: the job was requeued once and its second run completed
requeued_once() {
    if [[ "$state" == COMPLETED && "$code" == 0:0 && "$restarts" == 1 ]] &&
        grep -q "requeueing job $id" "$out" && grep -q "fake rank 0 restart 1" "$out"; then
        pass "$1: job $id requeued once, and its second run COMPLETED"
    else
        fail "$1: job $id: JobState=$state ExitCode=$code Restarts=$restarts (want COMPLETED 0:0 1; see $out)"
    fi
}

# The time limit's jobs take about 90 s: they run beside the others. A 1-minute job: the
# script's SIGUSR1 60 s before the limit (--signal=B:USR1@60) comes 0-30 s after the start...
submit_fake limitwarn --time=1 --
limitwarn_id=$id limitwarn_out=$out
# ... and without that warning (the stand-in ignores SIGUSR1): the limit's SIGTERM stops it
submit_fake limit --time=1 -- FAKE_IGNORE_USR1=1
limit_id=$id limit_out=$out
# --signal=USR1@50 (no B:): SLURM signals the ranks alone, 10-40 s after the start. (Given to
# sbatch beside train.sbatch's own #SBATCH --signal=B:USR1@60, SLURM 22.05 keeps the B: and
# signals the batch shell: the script is used here without that line.)
grep -v '^#SBATCH --signal' "$src/cluster/train.sbatch" >"$tmp/train-nowarn.sbatch"
script="$tmp/train-nowarn.sbatch" submit_fake warnsteps --time=1 --signal=USR1@50 --
warnsteps_id=$id warnsteps_out=$out

# 3a. SIGUSR1 to the batch shell (scancel -b) reaches both ranks through shardnet-run and srun
stop_fake_job train --signal=USR1 --batch
if [[ -n "$state" ]]; then
    [[ "$(grep -c 'got USR1' "$out")" -eq 2 ]] && pass "SIGUSR1 to the batch shell reached both ranks" || fail "SIGUSR1 did not reach 2 ranks (see $out)"
    requeued_once "scancel -b --signal=USR1"
else
    fail "train.sbatch job $id never started"
fi
# 3b. A stand-in that exits 76 (peer lost) after SIGUSR1 is not requeued: only 75 is.
stop_fake_job lost --signal=USR1 --batch -- FAKE_STOP_STATUS=76
if [[ "$state" == FAILED && "$code" == 76:0 && "$restarts" == 0 ]]; then
    pass "train.sbatch job $id: peer lost (76) is not requeued"
else
    fail "train.sbatch job $id: JobState=$state ExitCode=$code Restarts=$restarts (want FAILED 76:0 0)"
fi
# 3c. SIGUSR1 to the steps alone (scancel --signal=USR1 without -b): the batch shell sees
#     nothing, the ranks stop with 75, and the job is requeued all the same
stop_fake_job steps --signal=USR1
grep -q "train.sbatch: SIG" "$out" && fail "scancel --signal=USR1 reached the batch shell (see $out)"
requeued_once "scancel --signal=USR1 (the steps)"
# 3d. SIGTERM to the steps
stop_fake_job stepsterm --signal=TERM
[[ "$(grep -c 'got TERM' "$out")" -eq 2 ]] || fail "scancel --signal=TERM: both ranks should say 'got TERM' (see $out)"
requeued_once "scancel --signal=TERM (the steps)"
# 3e. SIGTERM to the batch shell: passed on as SIGUSR1
stop_fake_job batchterm --signal=TERM --batch
grep -q "train.sbatch: SIGTERM" "$out" && [[ "$(grep -c 'got USR1' "$out")" -eq 2 ]] ||
    fail "scancel -b --signal=TERM: the batch shell should pass SIGUSR1 to both ranks (see $out)"
requeued_once "scancel -b --signal=TERM (the batch shell)"
# 3f. A cancelled job (scancel JOB) stops with its checkpoint but is not requeued
stop_fake_job cancel
if [[ "$state" == CANCELLED && "$restarts" == 0 ]] && grep -q "cancelled, not requeued" "$out" &&
    grep -q "step exited with code 75" "$out"; then
    pass "scancel JOB: the ranks stopped with 75, the job is CANCELLED, not requeued"
else
    fail "scancel JOB: JobState=$state ExitCode=$code Restarts=$restarts (want CANCELLED 0, 'cancelled, not requeued'; see $out)"
fi
# 3g. The time limit's jobs
for t in limitwarn limit warnsteps; do
    eval "id=\$${t}_id out=\$${t}_out"
    read -r state code restarts <<<"$(job_end "$id" 150)"
    case $t in
        limitwarn) requeued_once "--signal=B:USR1@60 before a 1-minute limit"
                   grep -q "train.sbatch: SIGUSR1" "$out" || fail "limitwarn: no SIGUSR1 in $out" ;;
        limit)     requeued_once "the time limit (its SIGTERM)"
                   grep -q "got TERM" "$out" && grep -q "(COMPLETING, TimeLimit)" "$out" ||
                       fail "time limit: the ranks should get SIGTERM and the job be requeued as ending for its limit (see $out)" ;;
        warnsteps) requeued_once "--signal=USR1@50 (the steps)"
                   grep -q "train.sbatch: SIG" "$out" && fail "--signal=USR1@50 reached the batch shell (see $out)" ;;
    esac
done

# 4. The real trainer through cluster/train.sbatch: 2 tasks, one epoch on a small Fashion-MNIST.
rm -rf "$tmp/fm" "$tmp/real-run"
if [[ -x "$bin" ]] && "$bin" dataset fashion-mnist "$tmp/fm" --limit 101 >/dev/null 2>&1; then
    id="$(cd "$src" && SHARDNET_BIN="$bin" sbatch --parsable --ntasks=2 --time=5 \
          --output="$tmp/job-real-%j.out" cluster/train.sbatch configs/mnist_convnet.cfg \
          --set data.dir="$tmp/fm" --set checkpoint.dir="$tmp/real-run" --set train.epochs=1)"
    read -r state code _ <<<"$(job_end "$id" 300)"
    if [[ "$state" == COMPLETED && "$code" == 0:0 ]] && grep -q "val_accuracy" "$tmp/job-real-$id.out" \
        && [[ -s "$tmp/real-run/mnist_convnet-best.ckpt" ]]; then
        pass "shardnet train on 2 SLURM tasks COMPLETED with a best checkpoint"
    else
        fail "trainer job $id: JobState=$state ExitCode=$code (see $tmp/job-real-$id.out)"
    fi
else
    fail "could not prepare the trainer job (shardnet dataset)"
fi

# 4b. The same job stopped as its ranks start (scancel --signal=USR1 to the steps as soon as the
#     step exists: the ranks catch it, or are ended by it while still being loaded): requeued, it
#     ends with the same parameters, state and optimizer moments as the job never interrupted.
rm -rf "$tmp/early-run"
if [[ -s "$tmp/real-run/mnist_convnet-last.ckpt" ]]; then
    id="$(cd "$src" && SHARDNET_BIN="$bin" sbatch --parsable --ntasks=2 --time=5 \
          --output="$tmp/job-early-%j.out" cluster/train.sbatch configs/mnist_convnet.cfg \
          --set data.dir="$tmp/fm" --set checkpoint.dir="$tmp/early-run" --set train.epochs=1)"
    for ((i = 0; i < 300; i++)); do
        scontrol -o show step "$id.0" 2>/dev/null | grep -q "StepId=$id.0" && break
        sleep 0.1
    done
    sleep 0.3
    scancel --signal=USR1 "$id"
    read -r state code restarts <<<"$(job_end "$id" 300)"
    out="$tmp/job-early-$id.out"
    if [[ "$state" == COMPLETED && "$code" == 0:0 && "$restarts" == 1 ]]; then
        pass "the real trainer stopped as it started: requeued once, COMPLETED"
    else
        fail "early stop of the real trainer: JobState=$state ExitCode=$code Restarts=$restarts (want COMPLETED 0:0 1; see $out)"
    fi
    grep -q -e "stopped by a signal at epoch 1, step 1;" -e "was ended by signal 10 while it was being loaded" "$out" &&
        pass "the early SIGUSR1: a stop after the first step (or before the ranks ran)" ||
        fail "the early SIGUSR1: no stop at step 1 in $out"
    hashes() { "$bin" inspect "$1" | grep -o 'parameter hash.*'; }
    a="$(hashes "$tmp/real-run/mnist_convnet-last.ckpt")" b="$(hashes "$tmp/early-run/mnist_convnet-last.ckpt")"
    [[ -n "$a" && "$a" == "$b" ]] && pass "requeued after the early stop = never interrupted ($a)" ||
        fail "requeued after the early stop: '$b', never interrupted: '$a'"
else
    fail "no uninterrupted real run to compare the early stop with"
fi

# 5. cluster/train-multinode.sbatch: 2 nodes x 2 ranks, shared data and checkpoint directories.
#    The two "nodes" share this host: Open MPI's shared-memory transport would meet itself twice,
#    so the job talks TCP (OMPI_MCA_btl=self,tcp; not needed on real nodes).
rm -rf "$tmp/mn-ckpt"
if [[ -d "$tmp/fm/train" ]]; then
    find "$tmp/fm" -type d -exec touch -d '1 hour ago' {} + # old enough for the file-list cache
    # the file list goes to rank 0's cache folder (one for both "nodes", as a shared home); the
    # files an earlier version's run of this test left beside the data go too
    rm -rf "$XDG_CACHE_HOME/shardnet/index" "$tmp/fm"/*/.shardnet-index
    id="$(cd "$src" && OMPI_MCA_btl=self,tcp SHARDNET_BIN="$bin" SN_DATA_DIR="$tmp/fm" \
          SN_CKPT_DIR="$tmp/mn-ckpt" sbatch --parsable --time=5 \
          --output="$tmp/job-mn-%j.out" cluster/train-multinode.sbatch configs/mnist_convnet.cfg \
          --set train.epochs=1)"
    read -r state code _ <<<"$(job_end "$id" 300)"
    out="$tmp/job-mn-$id.out"
    if [[ "$state" == COMPLETED && "$code" == 0:0 && -s "$tmp/mn-ckpt/mnist_convnet-best.ckpt" ]]; then
        pass "train-multinode.sbatch job $id COMPLETED with a best checkpoint in SN_CKPT_DIR"
    else
        fail "train-multinode.sbatch job $id: JobState=$state ExitCode=$code (see $out)"
    fi
    grep -q "2 nodes x 2 ranks, 2 CPUs each (1 compute + 1 data threads)" "$out" &&
        pass "2 nodes x 2 ranks, CPUs split between compute and data threads" || fail "no '2 nodes x 2 ranks' line in $out"
    grep -q "rank 3 of 4 on .*1 compute thread, 1 data thread" "$out" && pass "4 ranks, 1 compute + 1 data thread each" ||
        fail "no 'rank 3 of 4 ... 1 compute thread, 1 data thread' in $out"
    compgen -G "$XDG_CACHE_HOME/shardnet/index/fm-train-*" >/dev/null &&
        pass "rank 0 kept the file list in its cache folder" ||
        fail "no entry for fm/train in $XDG_CACHE_HOME/shardnet/index after the job"
    [[ -z "$(find "$tmp/fm" -name '.shardnet*')" ]] && pass "nothing written into the shared data folder" ||
        fail "files written into the shared data folder: $(find "$tmp/fm" -name '.shardnet*')"
    # a directory no node has is refused before training, naming it
    id="$(cd "$src" && SHARDNET_BIN="$bin" SN_DATA_DIR=/nonexistent-sn-data sbatch --parsable \
          --cpus-per-task=2 --time=2 --output="$tmp/job-mnbad-%j.out" \
          cluster/train-multinode.sbatch configs/mnist_convnet.cfg)"
    read -r state code _ <<<"$(job_end "$id" 60)"
    if [[ "$state" == FAILED && "$code" == 2:0 ]] && grep -q "SN_DATA_DIR=/nonexistent-sn-data is not a directory on every node" "$tmp/job-mnbad-$id.out"; then
        pass "train-multinode.sbatch refuses a data directory the nodes do not have"
    else
        fail "train-multinode.sbatch with a missing SN_DATA_DIR: JobState=$state ExitCode=$code (see $tmp/job-mnbad-$id.out)"
    fi
else
    fail "no data for the multi-node job"
fi

# 6. Two test clusters on this host at once (two more, fresh: their first job ids would be equal
#    if the clusters did not keep apart): a short job of one ends while a longer one of the other
#    runs; SLURM's cleanup of the first must not kill the second (each node's cgroups, and its
#    job ids, are its cluster's own).
two=()
for k in 1 2; do
    d="$(mktemp -d /tmp/sn-e2e-slurm2.XXXXXX)"
    two+=("$d")
    SN_CLUSTER_DIR="$d" SN_CLUSTER_PORT=$((SN_CLUSTER_PORT + 3 * k)) SN_CLUSTER_NODES=1 \
        "$lc" start >"$tmp/two-start-$k.log" 2>&1 || fail "cluster $k of two did not start (see $tmp/two-start-$k.log)"
done
conf1="${two[0]}/etc/slurm.conf" conf2="${two[1]}/etc/slurm.conf"
printf '#!/bin/bash\nsrun sleep %s\necho slept\n' 20 >"$tmp/job-long.sh"
printf '#!/bin/bash\nsrun sleep %s\necho slept\n' 2 >"$tmp/job-short.sh"
long="$(SLURM_CONF=$conf1 sbatch --parsable -n 1 --time=2 --output="$tmp/job-long-%j.out" "$tmp/job-long.sh")"
short="$(SLURM_CONF=$conf2 sbatch --parsable -n 1 --time=2 --output="$tmp/job-short-%j.out" "$tmp/job-short.sh")"
echo "two clusters: job $long (20 s) on one, job $short (2 s) on the other"
read -r s2 c2 _ <<<"$(SLURM_CONF=$conf2 job_end "$short" 60)"
read -r s1 c1 _ <<<"$(SLURM_CONF=$conf1 job_end "$long" 60)"
[[ "$s2" == COMPLETED && "$c2" == 0:0 ]] && pass "two clusters: the short job COMPLETED" ||
    fail "two clusters: the short job $short: $s2 $c2 (see $tmp/job-short-$short.out)"
[[ "$s1" == COMPLETED && "$c1" == 0:0 ]] && grep -q slept "$tmp/job-long-$long.out" &&
    pass "two clusters: the long job outlived the other cluster's job and COMPLETED" ||
    fail "two clusters: the long job $long: $s1 $c1, killed by the other cluster? (see $tmp/job-long-$long.out)"
for k in 1 2; do
    SN_CLUSTER_DIR="${two[$((k - 1))]}" SN_CLUSTER_PORT=$((SN_CLUSTER_PORT + 3 * k)) SN_CLUSTER_NODES=1 \
        "$lc" stop >/dev/null 2>&1
    rm -rf "${two[$((k - 1))]}"
done
two=()

scancel $(squeue -h -o %i) 2>/dev/null || true
if [[ $failures -gt 0 ]]; then
    echo "e2e_slurm: $failures check(s) failed; cluster logs in $tmp/cluster-log"
    exit 1
fi
echo "e2e_slurm: all checks passed"
