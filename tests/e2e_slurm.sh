#!/usr/bin/env bash
# e2e_slurm.sh — shardnet's SLURM path on a private one-node cluster (cluster/local-cluster).
#
# usage: e2e_slurm.sh SHARDNET_BINARY SOURCE_DIR TMP_DIR
# Checks: the process-tracking plugins chosen from a tree's cgroup mounts (fake trees, and
# `start` says its choice); a 2-task srun --mpi=pmix job completes (mpi_dist, if built, sees one 2-rank world;
# the shardnet binary, if built, runs `version` on both tasks);
# a failing job is reported FAILED (so the checks can fail); cluster/train.sbatch passes SIGUSR1
# on to the ranks and requeues the job, which then completes; cluster/train-multinode.sbatch
# trains on 2 nodes x 2 ranks (two slurmd on this host) with shared data and checkpoint folders. Exit 77 = skipped (no SLURM).
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

cleanup() {
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
    [[ "$(grep -c '^shardnet ' "$out")" -eq 2 ]] && pass "shardnet version ran on 2 tasks" || fail "expected 2 'shardnet VERSION' lines in $out"
fi

# 2. A failing step must make the job FAILED with its exit code: the checks above can fail.
printf '#!/bin/bash\nsrun --mpi=pmix bash -c "exit 3"\n' >"$tmp/job-false.sh"
id="$(sbatch --parsable --ntasks=2 --time=2 --output="$tmp/job-false-%j.out" "$tmp/job-false.sh")"
read -r state code _ <<<"$(job_end "$id" 60)"
if [[ "$state" == FAILED && "$code" == 3:0 ]]; then pass "failing job $id reported FAILED 3:0"; else fail "failing job $id: JobState=$state ExitCode=$code (want FAILED 3:0)"; fi

# 3. cluster/train.sbatch with a stand-in trainer: SIGUSR1 to the batch shell reaches both ranks,
#    they exit 75 ("checkpointed, resumable"), the job requeues itself and the second run
#    completes. (A stand-in exiting with any other status is not requeued: see 3b.)
cat >"$tmp/fake-trainer" <<'EOF'
#!/bin/bash
echo "fake rank $SLURM_PROCID restart ${SLURM_RESTART_COUNT:-0}: $*"
if [[ "${SLURM_RESTART_COUNT:-0}" -gt 0 ]]; then exit 0; fi
trap 'echo "fake rank $SLURM_PROCID got USR1"; exit ${FAKE_STOP_STATUS:-75}' USR1
for i in $(seq 120); do sleep 0.25; done
exit 9
EOF
chmod +x "$tmp/fake-trainer"
# stop_fake_job NAME [VAR=VALUE...]: submits train.sbatch with the stand-in (output
# job-NAME-ID.out), signals SIGUSR1 once both ranks run, and sets id, out, state, code and
# restarts when the job has ended (state is empty if it never started)
stop_fake_job() {
    local name=$1; shift
    id="$(cd "$src" && env "$@" SHARDNET_BIN="$tmp/fake-trainer" sbatch --parsable --ntasks=2 \
          --time=5 --output="$tmp/job-$name-%j.out" cluster/train.sbatch configs/none.ini)"
    out="$tmp/job-$name-$id.out" state="" code="" restarts=""
    job_running "$id" 30 || return 0
    # Signal once both ranks run (their trap is set right after the line they print).
    for ((i = 0; i < 40; i++)); do
        [[ "$(grep -c 'restart 0' "$out" 2>/dev/null)" -ge 2 ]] && break
        sleep 0.25
    done
    sleep 0.5
    scancel --signal=USR1 --batch "$id"
    # A requeued job waits cred_expire (10 s) + 1 s before it starts again; moving its StartTime
    # to now races with the revoked credential ("Job credential revoked") and kills it.
    read -r state code restarts <<<"$(job_end "$id" 60)"
}
stop_fake_job train
if [[ -n "$state" ]]; then
    [[ "$(grep -c 'got USR1' "$out")" -eq 2 ]] && pass "SIGUSR1 reached both ranks" || fail "SIGUSR1 did not reach 2 ranks (see $out)"
    if [[ "$state" == COMPLETED && "$code" == 0:0 && "$restarts" == 1 ]]; then
        pass "train.sbatch job $id requeued once and COMPLETED"
    else
        fail "train.sbatch job $id: JobState=$state ExitCode=$code Restarts=$restarts (want COMPLETED 0:0 1)"
    fi
else
    fail "train.sbatch job $id never started"
fi

# 3b. A stand-in that exits 76 (peer lost) after SIGUSR1 is not requeued: only 75 is.
stop_fake_job lost FAKE_STOP_STATUS=76
if [[ "$state" == FAILED && "$code" == 76:0 && "$restarts" == 0 ]]; then
    pass "train.sbatch job $id: peer lost (76) is not requeued"
else
    fail "train.sbatch job $id: JobState=$state ExitCode=$code Restarts=$restarts (want FAILED 76:0 0)"
fi

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
          SN_CKPT_DIR="$tmp/mn-ckpt" sbatch --parsable --cpus-per-task=2 --time=5 \
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

scancel $(squeue -h -o %i) 2>/dev/null || true
if [[ $failures -gt 0 ]]; then
    echo "e2e_slurm: $failures check(s) failed; cluster logs in $tmp/cluster-log"
    exit 1
fi
echo "e2e_slurm: all checks passed"
