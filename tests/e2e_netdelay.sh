#!/usr/bin/env bash
# The link-delay relay (shardnet-netdelay, cluster/netdelay.c) that cluster/netns-hosts uses for
# --delay on kernels without netem (forced here with --relay, so that kernels with netem test it
# too): a bad --delay is a usage error; 3 hosts at --delay 2ms are joined by the relay alone (no
# bridge); a round trip between two of them takes at least 2 x 2 ms and a 2-rank allreduce at
# least 2 ms on average over its ranks (bounds the relay must honour, never timed from above);
# 3 ranks on 3 hosts sum correctly through it; `down` stops it (its counters in the log) and
# leaves no namespace; without /dev/net/tun `up` exits 77 and leaves nothing.
# Needs root and iproute2 (else exit 77 with the reason). Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"
export SHARDNET_BIN=$bin
hosts=$src/cluster/netns-hosts
relay=$(dirname "$bin")/shardnet-netdelay

# --- usage errors, before anything is made (no root needed)
"$hosts" up 2 --name nd$$ --delay 2xs > bad1.out 2>&1
check "--delay 2xs: usage error, exit 2 (got $?)" test $? -eq 2
check "--delay 2xs: says what it wants" contains bad1.out "wants a number with us, ms or s"
"$hosts" up 2 --name nd$$ --delay ms > bad2.out 2>&1
check "--delay ms: exit 2" test $? -eq 2
"$hosts" up 2 --name nd$$ --relay > bad3.out 2>&1
check "--relay without --delay: exit 2" test $? -eq 2
"$relay" --delay 1m x=198.18.0.1 > bad4.out 2>&1
check "the relay, --delay 1m: exit 2" test $? -eq 2
"$relay" --delay 1ms x=198.18.0 > bad5.out 2>&1
check "the relay, a bad address: exit 2, names it" test $? -eq 2 -a -n "$(grep "'x=198.18.0': expected NS=ADDR" bad5.out)"

name=nd$$
sub=$(($$ % 512))
if [ "$sub" -lt 256 ]; then pre=198.18.$sub; else pre=198.19.$((sub - 256)); fi
netns_up "$name" "3 hosts up through the relay" 3 --subnet "$sub" --relay --delay 2ms
check "up: says the relay carries the links" contains up.out "links through the relay: pid [0-9]* in namespace $name-sw holds every packet 2ms"
pid=$(ip netns pids "$name-sw")
check "the relay runs in the switch namespace (pid ${pid:-none})" test -n "$pid" -a -n "$(tr '\0' ' ' < /proc/${pid:-0}/cmdline | grep shardnet-netdelay)"
check "no bridge: the switch namespace has no br0" test -z "$(ip -n "$name-sw" -o link show br0 2>/dev/null)"
check "host 1's sn0 is a TUN device" test "$(ip netns exec "$name-h1" cat /sys/class/net/sn0/type)" = 65534
"$hosts" status --name "$name" > status.out 2>&1
check "status: the relay and its counters" contains status.out "^$name-sw: relay pid $pid, --delay 2ms; relayed "

# a round trip without any server: a connection to a closed port of host 2 is refused by its
# RST, which comes back after 2 x 2 ms at least; min of 10 (microseconds)
rtt=$("$hosts" exec --name "$name" 1 bash -c 'for i in $(seq 1 10); do s=$EPOCHREALTIME
    { true < /dev/tcp/'"$pre"'.2/9; } 2> /dev/null; e=$EPOCHREALTIME; echo $(( ${e/./} - ${s/./} )); done' | sort -n | head -1)
check "a round trip host 1 -> 2 -> 1: ${rtt:-?} us >= 4000" atleast "${rtt:-0}" 4000
# the same to an address no host holds: the relay drops the SYN (counted), the connection
# times out rather than reaching anyone
"$hosts" exec --name "$name" 1 timeout 0.5 bash -c "true < /dev/tcp/$pre.99/9" > /dev/null 2>&1
check "a packet for no host: never answered" test $? -ne 0

export OMPI_MCA_plm_rsh_agent=$src/cluster/rsh-netns OMPI_MCA_plm_rsh_no_tree_spawn=1
export OMPI_MCA_btl=tcp,self OMPI_MCA_btl_tcp_if_include=sn0 OMPI_MCA_oob_tcp_if_include=sn0
export OMPI_MCA_mpi_yield_when_idle=1
printf '%s slots=1\n' "$name-h1" "$name-h2" > hosts2
printf '%s slots=1\n' "$name-h1" "$name-h2" "$name-h3" > hosts3
read -r tx0 rx0 < <("$hosts" bytes --name "$name" 1)
# bench checks each size's sum once before timing it: 3 ranks on 3 hosts sum right through the relay
for p in 2 3; do
    "$hosts" exec --name "$name" 1 "$src/launcher/shardnet-run" --hostfile hosts$p --no-bind -- \
        bench --allreduce --sizes 4,64K --iters 5 --csv ar$p.csv > ar$p.out 2>&1
    check "allreduce on $p hosts through the relay: exit 0" test $? -eq 0
    check "allreduce on $p hosts: ranks on $p hosts" contains ar$p.out "^allreduce: $p ranks on $name-h1"
done
read -r tx1 rx1 < <("$hosts" bytes --name "$name" 1)
check "host 1's sn0 carried the 64 KiB sums: received $((rx1 - rx0)) bytes > 2 x 5 x 65536" test $((rx1 - rx0)) -gt 655360
check "host 1's sn0 carried the 64 KiB sums: sent $((tx1 - tx0)) bytes > 2 x 5 x 65536" test $((tx1 - tx0)) -gt 655360
# 2 ranks: the later rank's call needs a round trip (its share there, the sum back), so the
# average of the two is a one-way delay at least
min4=$(awk -F, '$1 == 2 && $2 == 4 { print $5 }' ar2.csv)
check "allreduce of 4 bytes on 2 hosts: fastest ${min4:-?} us >= 2000" atleast "${min4:-0}" 2000

"$hosts" down --name "$name" > down.out 2>&1
check "down: exit 0" test $? -eq 0
check "down: the relay's counters" contains down.out "relay: shardnet-netdelay: relayed [1-9][0-9]* packets"
check "down: the packet for no host counted" contains down.out "dropped 0 (queue full), [1-9][0-9]* (no such host)"
# gone, or a zombie its new parent has yet to reap
state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | cut -c1)
check "down: the relay (pid $pid) is gone (state '${state:-none}')" test -z "$state" -o "$state" = Z -o "$state" = X
check "down: no namespace $name-* left" test -z "$(ip netns list | grep "^$name-")"
check "down: the relay's log removed" test ! -e "${TMPDIR:-/tmp}/netns-hosts-$name.relay.log"

# without /dev/net/tun (hidden under an empty file system in a mount namespace of its own): the
# relay cannot be made here, which is a skip (77), not a failure, and nothing is left
unshare -m sh -c 'mount -t tmpfs none /dev/net && exec "$@"' sh "$hosts" up 2 --name "$name" \
    --subnet "$sub" --relay --delay 1ms > notun.out 2>&1
rc=$?
check "no /dev/net/tun: exit 77 (got $rc)" test $rc -eq 77
check "no /dev/net/tun: says so" contains notun.out "/dev/net/tun: cannot open"
check "no /dev/net/tun: no namespace $name-* left" test -z "$(ip netns list | grep "^$name-")"
finish
