#!/usr/bin/env bash
# Several hosts for real: two hosts made of network namespaces (cluster/netns-hosts), Open MPI's
# TCP transport alone between them (btl tcp,self: no shared memory), its daemons started in each
# namespace by cluster/rsh-netns, mpirun run by launcher/shardnet-run from host 1 with a hostfile.
# 2 hosts x 1 rank and 2 hosts x 2 ranks train to the same parameters as 2 and 4 ranks on one
# host (and as 1 rank, up to summation order); the gradients really crossed the link (its byte
# counters); a host lost mid-run (its Open MPI daemon killed) is restarted from the last
# checkpoint by --max-restarts and ends as a run never interrupted.
# Needs root, iproute2 and util-linux's unshare (else exit 77 with the reason).
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"
export SHARDNET_BIN=$bin
run=$src/launcher/shardnet-run
hosts=$src/cluster/netns-hosts

# namespaces of this run alone: the pid in the name, a subnet of 198.18.0.0/15 from the pid
name=sn$$
netns_up "$name" "2 hosts up" 2 --subnet $(($$ % 512)) --slots 2 --hostfile hosts2
printf '%s slots=1\n%s slots=1\n' "$name-h1" "$name-h2" > hosts1
# as host I: `on I CMD...`
on() { local i=$1; shift; "$hosts" exec --name "$name" "$i" "$@"; }

"$bin" dataset fashion-mnist fm --limit 101 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cfg=$src/configs/mnist_convnet.cfg
# one backend, timed nowhere: the runs' bits are compared
common=(--set data.dir=fm --set train.optimizer=sgd --set train.learning_rate=0.05
        --set train.momentum=0.9 --set train.batch_size=24 --set train.epochs=1 --set train.threads=1
        --set model.backend=blas)
# 101 images, global batch 24: 5 steps, each exchanging every parameter's gradient
steps=5
params=$("$bin" summary "$cfg" | sed -n 's/^Total params: //p' | tr -d ,)
check "the network's parameters counted ($params)" test -n "$params"

# the reference runs on one host, without namespaces (and before Open MPI's settings below)
for n in 1 2 4; do
    "${mpirun[@]}" -np $n -x SN_THREADS=1 "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=one$n > one$n.out 2>&1
    check "one host, $n ranks: exit 0" test $? -eq 0
done
# slow steps (the reference backend; 9 of them) and a checkpoint after every step, for the lost
# host below
slow=("${common[@]}" --set train.batch_size=12 --set model.backend=ref --set checkpoint.save_every=1)
"${mpirun[@]}" -np 2 -x SN_THREADS=1 "$bin" train "$cfg" "${slow[@]}" --set checkpoint.dir=slow1 > slow1.out 2>&1
check "one host, slow steps: exit 0" test $? -eq 0

# Open MPI's settings, read by mpirun from the environment (shardnet-run passes them on):
# daemons started through the namespace agent, TCP alone, on the hosts' link alone
export OMPI_MCA_plm_rsh_agent=$src/cluster/rsh-netns
export OMPI_MCA_plm_rsh_no_tree_spawn=1
export OMPI_MCA_btl=tcp,self
export OMPI_MCA_btl_tcp_if_include=sn0
export OMPI_MCA_oob_tcp_if_include=sn0

# --- what shardnet-run will run, and with what environment
on 1 "$run" --hostfile hosts2 --dry-run -- train "$cfg" > dry.out 2>&1
check "dry run: exit 0" test $? -eq 0
check "dry run: all 4 slots of the hostfile" contains dry.out "mpirun -np 4 .*--hostfile hosts2"
check "dry run: bound per node from its slots" contains dry.out "$name-h1: 2 ranks x 1 threads, $name-h2: 2 ranks x 1 threads"
check "dry run: bound to cores" contains dry.out "mpirun .* --bind-to core "
check "dry run: the threads exported" contains dry.out "^export SN_THREADS=1$"
check "dry run: Open MPI's settings passed on" contains dry.out "^export OMPI_MCA_btl=tcp,self$"

# --- 2 hosts x 1 rank, 2 hosts x 2 ranks
# The namespaces share this machine's cores: bound, the two hosts' single ranks would both sit
# on core 0, so 1 rank per host runs unbound; 2 per host are bound per node from the slots
# (core 0 and core 1 on each host) when there are 2 cores.
for per in 1 2; do
    n=$((2 * per))
    bind=()
    [ $per -eq 2 ] && [ "$(nproc)" -ge 2 ] || bind=(--no-bind)
    read -r tx0 rx0 < <("$hosts" bytes --name "$name" 1)
    on 1 "$run" --hostfile hosts$per "${bind[@]}" -- train "$cfg" "${common[@]}" \
        --set checkpoint.dir=hosts2x$per > hosts2x$per.out 2>&1
    rc=$?
    read -r tx1 rx1 < <("$hosts" bytes --name "$name" 1)
    check "2 hosts x $per: exit 0 (got $rc)" test $rc -eq 0
    check "2 hosts x $per: a rank on host 1" contains hosts2x$per.out "^rank 0 of $n on $name-h1:"
    check "2 hosts x $per: a rank on host 2" contains hosts2x$per.out "^rank $((n - 1)) of $n on $name-h2:"
    check "2 hosts x $per: validated each image once" contains hosts2x$per.out "validated 101 images"
    # host 1 must receive host 2's share of every step's sum: at least one gradient per step
    need=$((steps * 4 * params))
    check "2 hosts x $per: host 1's link received $((rx1 - rx0)) bytes >= $need (one gradient a step)" \
        test $((rx1 - rx0)) -ge $need
    check "2 hosts x $per: host 1's link sent $((tx1 - tx0)) bytes >= $need" test $((tx1 - tx0)) -ge $need
    "$bin" inspect one$n/mnist_convnet-last.ckpt --compare hosts2x$per/mnist_convnet-last.ckpt > cmp$n.out 2>&1
    check "2 hosts x $per = $n ranks on one host: identical parameters" contains cmp$n.out "identical parameters"
    "$bin" inspect one1/mnist_convnet-last.ckpt --compare hosts2x$per/mnist_convnet-last.ckpt > cmp1x$n.out 2>&1
    check "2 hosts x $per = 1 rank: identical parameters" contains cmp1x$n.out "identical parameters"
done

# --- a host lost mid-run: every process on host 2 (its Open MPI daemon and its rank) killed
# after the first checkpoint; the job is started again from the last checkpoint and ends as a
# run never interrupted
on 1 "$run" --hostfile hosts1 --no-bind --max-restarts 2 --restart-delay 1 -- train "$cfg" "${slow[@]}" \
    --set checkpoint.dir=lost > lost.out 2>&1 &
job=$!
wait_for_file lost/mnist_convnet-last.ckpt
on2=$(ip netns pids "$name-h2")
check "host 2's Open MPI daemon found" test -n "$(for p in $on2; do cat /proc/$p/comm; done | grep -x orted)"
# shellcheck disable=SC2086
[ -z "$on2" ] || kill -KILL $on2
wait $job
rc=$?
check "host lost: the run ends with exit 0 (got $rc)" test $rc -eq 0
check "host lost: said, and restarted from the checkpoint" \
    contains lost.out "shardnet-run: \(host\|rank\) lost (exit 76), restart 1 of 2 in 1 s from the last checkpoint"
check "host lost: resumed" contains lost.out "^Resuming from lost/mnist_convnet-last.ckpt"
"$bin" inspect slow1/mnist_convnet-last.ckpt --compare lost/mnist_convnet-last.ckpt > cmplost.out 2>&1
check "host lost and restarted = never interrupted: identical parameters" contains cmplost.out "identical parameters"

finish
