#!/usr/bin/env bash
# launcher/shardnet-run --max-restarts: a run that loses a rank (SIGKILL, twice) or has a rank
# stopped by a signal that was not the user's (SIGTERM to one rank: exit 75) starts again from
# its last checkpoint and ends with the same checkpoint as a run never interrupted; a
# configuration error is not retried (one attempt, exit 1); the user's SIGTERM to the launcher
# is not retried (exit 75). And the launcher's hosts options, read with --dry-run.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"
export OMPI_MCA_rmaps_base_oversubscribe=1
export SHARDNET_BIN=$bin
run=$src/launcher/shardnet-run

"$bin" dataset fashion-mnist fm --limit 101 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cfg=$src/configs/mnist_convnet.cfg
# slow steps (the reference backend) leave time to act in the middle of a run; a checkpoint
# after every step, so each restart starts further on; 2 epochs of 5 steps
slow=(--set data.dir=fm --set train.batch_size=24 --set model.backend=ref --set train.epochs=2
      --set train.threads=1 --set checkpoint.save_every=1)

# one rank's pid of the run writing checkpoint dir $1 (a process named shardnet)
rank_of() {
    pgrep -f "checkpoint.dir=$1" | while read -r p; do
        [ "$(cat /proc/$p/comm 2>/dev/null)" = shardnet ] && echo "$p"; done | tail -1
}
# waits (at most 40 s) until dir $1 holds a `last` checkpoint newer than file $2
wait_ckpt() {
    for _ in $(seq 1 400); do
        [ "$1/mnist_convnet-last.ckpt" -nt "$2" ] && return 0
        sleep 0.1
    done
    return 1
}
# waits (at most 40 s) until log $1 has $2 lines matching $3
wait_lines() {
    for _ in $(seq 1 400); do
        [ "$(grep -c -- "$3" "$1")" -ge "$2" ] && return 0
        sleep 0.1
    done
    return 1
}

# --- the uninterrupted run
"$run" -n 2 -- train "$cfg" "${slow[@]}" --set checkpoint.dir=ref > ref.out 2>&1
check "uninterrupted run: exit 0" test $? -eq 0

# --- the same run, a rank killed twice and a rank stopped once: 3 restarts, the same end
: > t0
"$run" -n 2 --max-restarts 3 --restart-delay 1 -- train "$cfg" "${slow[@]}" \
    --set checkpoint.dir=again > again.out 2>&1 &
job=$!
for k in 1 2 3; do
    check "attempt $k: a new checkpoint" wait_ckpt again t$((k - 1))
    victim=$(rank_of again)
    check "attempt $k: found a rank" test -n "$victim"
    if [ $k -lt 3 ]; then kill -KILL "$victim"; else kill -TERM "$victim"; fi
    check "attempt $k: restarted" wait_lines again.out 1 "restart $k of 3"
    : > t$k
done
wait $job
rc=$?
check "interrupted run: exit 0 (got $rc)" test $rc -eq 0
check "rank lost: said why, restart 1 in 1 s" \
    contains again.out "shardnet-run: rank lost (exit 76), restart 1 of 3 in 1 s from the last checkpoint"
check "rank lost again: restart 2 after twice the wait" contains again.out "restart 2 of 3 in 2 s"
check "rank stopped by a signal not the user's: restart 3" \
    contains again.out "stopped by a signal that was not yours (exit 75), restart 3 of 3 in 4 s"
check "each restart resumed from a checkpoint" test "$(grep -c '^Resuming from again/mnist_convnet-last.ckpt' again.out)" -eq 3
"$bin" inspect ref/mnist_convnet-last.ckpt --compare again/mnist_convnet-last.ckpt > cmp.out 2>&1
check "interrupted 3 times = never interrupted: identical parameters" contains cmp.out "identical parameters"
check "the same parameter hash" test "$(grep -c "parameter hash $(sed -n 's/.*parameter hash \([0-9a-f]*\).*/\1/p' cmp.out | head -1)" cmp.out)" -eq 2
# optimizer moments and the run record too (the files differ only in wall-clock times and in
# the checkpoint directory, part of the config's hash)
for d in ref again; do
    "$bin" inspect $d/mnist_convnet-last.ckpt --record | grep -v -e '^history=' -e 'seconds' \
        -e 'data_wait' -e "^$d/" -e 'config hash' -e 'checkpoint.dir=' > $d.rec
done
check "interrupted = never interrupted: same optimizer state and run record" cmp -s ref.rec again.rec

# --- a configuration error is not retried: one attempt, exit 1
"$run" -n 2 --max-restarts 3 --restart-delay 1 -- train "$cfg" "${slow[@]}" \
    --set train.optimizer=nosuch --set checkpoint.dir=bad > bad.out 2>&1
rc=$?
check "config error: exit 1 (got $rc)" test $rc -eq 1
check "config error: named" contains bad.out "nosuch"
check "config error: not retried" lacks bad.out "restart"
check "config error: one attempt" test "$(grep -c '^shardnet: error (rank 0)' bad.out)" -eq 1

# --- the user's SIGTERM to the launcher: stopped with a checkpoint (75), not restarted
"$run" -n 2 --max-restarts 3 --restart-delay 1 -- train "$cfg" "${slow[@]}" \
    --set checkpoint.dir=term > term.out 2>&1 &
job=$!
check "user stop: a first checkpoint" wait_ckpt term t0
kill -TERM $job
wait $job
rc=$?
check "user stop: exit 75 (got $rc)" test $rc -eq 75
check "user stop: not restarted" lacks term.out "restart"
check "user stop: a checkpoint holds the run" contains term.out "stopped by a signal at epoch"

# --- hosts read without running (--dry-run): binding from each node's slots, bad hostfiles
printf '# two nodes\nnodeA slots=2\nnodeB  slots = 2  max_slots=4   # spaces\n\n' > hosts.txt
"$run" --hostfile hosts.txt --threads 2 --dry-run -- train "$cfg" > dry.out 2>&1
check "hostfile: dry run exit 0" test $? -eq 0
check "hostfile: one rank per slot, bound to 2 cores each" \
    contains dry.out "^mpirun -np 4 .*--hostfile hosts.txt --map-by slot:PE=2 --bind-to core -x SN_THREADS"
check "hostfile: placement per node" contains dry.out "nodeA: 2 ranks x 2 threads, nodeB: 2 ranks x 2 threads"
check "hostfile: the environment printed" contains dry.out "^export OPENBLAS_NUM_THREADS=2$"
"$run" --hosts nodeA:2,nodeB:1 -n 5 --dry-run -- train "$cfg" > over.out 2>&1
check "more ranks than slots: oversubscribed, unbound" contains over.out "--host nodeA:2,nodeB:1 --oversubscribe --bind-to none"
printf 'nodeA slots=2\nnodeB slots=two\n' > bad1.txt
"$run" --hostfile bad1.txt --dry-run -- train "$cfg" > bad1.out 2>&1
check "hostfile: a bad slot count is a usage error naming file and line" \
    test $? -eq 2 -a -n "$(grep 'bad1.txt:2: slots=two: expected a positive integer' bad1.out)"
printf 'nodeA ports=22\n' > bad2.txt
"$run" --hostfile bad2.txt --dry-run -- train "$cfg" > bad2.out 2>&1
check "hostfile: an unknown keyword is named" contains bad2.out "bad2.txt:1: unknown keyword 'ports'"
"$run" --hostfile hosts.txt --hosts a:1 --dry-run -- train "$cfg" > both.out 2>&1
check "--hosts and --hostfile together: usage error" test $? -eq 2

# --- a usage error of the launcher: --max-restarts for a command with no checkpoint
"$run" --max-restarts 2 -- bench "$cfg" > usage.out 2>&1
check "--max-restarts with bench: usage error 2" test $? -eq 2
check "--max-restarts with bench: said" contains usage.out "restarts 'train'"

finish
