#!/usr/bin/env bash
# A host that never answers does not hang the launcher: on two hosts made of network namespaces
# (cluster/netns-hosts), host 2's link is set down; mpirun then starts its daemon there, which
# cannot call back, and waits for ever. launcher/shardnet-run gives up after --start-timeout,
# tries each host alone, and exits 76 naming host 2 alone, leaving nothing running; with the
# link up again the same command trains. A host mpirun cannot reach at all (an unknown name:
# mpirun's exit 255) is 76 too, named. Needs root, iproute2 and util-linux's unshare (else
# exit 77 with the reason).
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"
export SHARDNET_BIN=$bin
run=$src/launcher/shardnet-run
hosts=$src/cluster/netns-hosts

name=sd$$
netns_up "$name" "2 hosts up" 2 --subnet $((($$ + 256) % 512)) --slots 1 --hostfile hosts2
on() { local i=$1; shift; "$hosts" exec --name "$name" "$i" "$@"; }

"$bin" dataset fashion-mnist fm --limit 101 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cfg=$src/configs/mnist_convnet.cfg
common=(--set data.dir=fm --set train.batch_size=24 --set train.epochs=1 --set train.threads=1)

export OMPI_MCA_plm_rsh_agent=$src/cluster/rsh-netns
export OMPI_MCA_plm_rsh_no_tree_spawn=1
export OMPI_MCA_btl=tcp,self
export OMPI_MCA_btl_tcp_if_include=sn0
export OMPI_MCA_oob_tcp_if_include=sn0

# --- host 2's link down: no start within 5 s, host 2 named, 76
ip -n "$name-h2" link set sn0 down
start=$(date +%s)
on 1 "$run" --hostfile hosts2 --no-bind --start-timeout 5 -- train "$cfg" "${common[@]}" \
    --set checkpoint.dir=down > down.out 2>&1
rc=$?
took=$(( $(date +%s) - start ))
check "a host's link down: exit 76 (got $rc)" test $rc -eq 76
check "a host's link down: given up within 30 s (took $took s)" test $took -le 30
check "a host's link down: the timeout said" contains down.out "no rank started within 5 s (--start-timeout)"
check "a host's link down: host 2 named" contains down.out "hosts that never answered: $name-h2$"
check "a host's link down: nothing of the job left on host 1" \
    test -z "$(ip netns pids "$name-h1" | xargs -r ps -o comm= -p | grep -E 'mpirun|shardnet')"
check "a host's link down: no bash notice of a killed mpirun" lacks down.out "Killed"

# --- the link up again: the same command trains, and says nothing of a start line
ip -n "$name-h2" link set sn0 up
sleep 1
on 1 "$run" --hostfile hosts2 --no-bind --start-timeout 30 -- train "$cfg" "${common[@]}" \
    --set checkpoint.dir=up > up.out 2>&1
check "the link up again: exit 0" test $? -eq 0
check "the link up again: a rank on host 2" contains up.out "^rank 1 of 2 on $name-h2:"
check "the start line is taken out of the output" lacks up.out "SN_RUN_STARTED"

# --- a host mpirun cannot reach (its exit 255): 76, the host named
printf '%s slots=1\nno-such-host-%s slots=1\n' "$name-h1" "$$" > hostsbad
on 1 "$run" --hostfile hostsbad --no-bind --start-timeout 10 -- train "$cfg" "${common[@]}" \
    --set checkpoint.dir=bad > bad.out 2>&1
rc=$?
check "an unknown host (mpirun's 255): exit 76 (got $rc)" test $rc -eq 76
check "an unknown host: said" contains bad.out "mpirun could not start the job (its exit 255"
check "an unknown host: named" contains bad.out "hosts that never answered: no-such-host-$$$"

finish
