#!/usr/bin/env bash
# e2e_slurm.sh — shardnet's SLURM path on a private one-node cluster (cluster/local-cluster).
#
# usage: e2e_slurm.sh SHARDNET_BINARY SOURCE_DIR TMP_DIR
# Checks: a 2-task srun --mpi=pmix job completes (mpi_dist, if built, sees one 2-rank world;
# the shardnet binary, if built, runs `version` on both tasks);
# a failing job is reported FAILED (so the checks can fail); cluster/train.sbatch passes SIGUSR1
# on to the ranks and requeues the job, which then completes. Exit 77 = skipped (no SLURM).
# The cluster is always stopped at the end, and every wait is bounded.
set -uo pipefail

bin="$1" src="$2" tmp="$3"
mkdir -p "$tmp"
tmp="$(cd "$tmp" && pwd)"
# Job ids restart at 1 on each fresh cluster and train.sbatch appends: clear the last run's output.
rm -f "$tmp"/job-*.out
lc="$src/cluster/local-cluster"
mpi_dist="$(cd "$tmp/.." && pwd)/../mpi_dist"

# A private cluster: own directory (short: the munge socket path must fit in 108 bytes) and
# own ports, so that it neither meets a developer's cluster nor a second run of this test.
export SN_CLUSTER_DIR
SN_CLUSTER_DIR="$(mktemp -d /tmp/sn-e2e-slurm.XXXXXX)"
export SN_CLUSTER_PORT=$((20000 + ($$ % 10000) * 2))

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

scancel $(squeue -h -o %i) 2>/dev/null || true
if [[ $failures -gt 0 ]]; then
    echo "e2e_slurm: $failures check(s) failed; cluster logs in $tmp/cluster-log"
    exit 1
fi
echo "e2e_slurm: all checks passed"
