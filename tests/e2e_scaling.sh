#!/usr/bin/env bash
# cluster/scaling on 1 and 2 ranks (a small batch, few steps): the CSV's columns and rows agree
# with themselves (speedup against the first row, efficiency = speedup / ranks, the fixed batch
# fixed), the Markdown table, the figure; `bench --csv`; and the usage errors.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"
command -v mpirun > /dev/null || { echo "SKIP: mpirun not found (openmpi-bin)"; exit 77; }
export SHARDNET_BIN=$bin
scaling=$src/cluster/scaling
cfg=$src/configs/mnist_convnet.cfg

# bench --csv alone: a header and one row; refused with --data-only
"$bin" bench "$cfg" --batch 8 --iters 2 --csv one.csv > bench.out 2>&1
check "bench --csv: exit 0" test $? -eq 0
check "bench --csv: header" contains one.csv "^ranks,threads,batch_per_rank,global_batch,backend,images_per_s,step_ms,"
check "bench --csv: one row, 1 rank, batch 8" grep -q "^1,[0-9]*,8,8," one.csv
check "bench --csv: two lines" test "$(wc -l < one.csv)" -eq 2
"$bin" bench "$cfg" --data-only --csv dataonly.csv > dataonly.out 2>&1
check "bench --csv --data-only: refused" contains dataonly.out "\-\-csv dataonly.csv: the CSV holds training figures"
check "bench --csv --data-only: no file" test ! -e dataonly.csv

# column NAME of scaling.csv's row ROW (1 = first data row)
col() { awk -F, -v c="$1" -v r="$2" 'NR == 1 { for (i = 1; i <= NF; i++) if ($i == c) k = i; next }
                                     NR == r + 1 { print k ? $k : "NO-COLUMN" }' "$3"; }

"$scaling" "$cfg" --ranks 1,2 --batch 16 --iters 4 --repeat 2 -o strong > strong.out 2>&1
check "strong: exit 0" test $? -eq 0
csv=strong/scaling.csv
check "strong: columns" contains "$csv" "^mode,ranks,threads,batch_per_rank,global_batch,images_per_s,images_per_s_min,images_per_s_max,speedup,efficiency,step_ms,allreduce_ms,allreduce_share,wait_ms,wait_share,in_job_speedup,oversubscribed,runs$"
check "strong: a row per rank count" test "$(wc -l < "$csv")" -eq 3
check "strong: ranks 1 then 2" test "$(col ranks 1 "$csv") $(col ranks 2 "$csv")" = "1 2"
check "strong: global batch fixed at 16" test "$(col global_batch 1 "$csv") $(col global_batch 2 "$csv")" = "16 16"
check "strong: per-rank batch 16 then 8" test "$(col batch_per_rank 1 "$csv") $(col batch_per_rank 2 "$csv")" = "16 8"
check "strong: two runs each" test "$(col runs 1 "$csv") $(col runs 2 "$csv")" = "2 2"
check "strong: the baseline's speedup is 1" test "$(col speedup 1 "$csv")" = "1.0000"
check "strong: speedup = rate / the baseline's" awk -v a="$(col images_per_s 2 "$csv")" \
    -v b="$(col images_per_s 1 "$csv")" -v s="$(col speedup 2 "$csv")" 'BEGIN { exit !(a > 0 && b > 0 && (a / b - s)^2 < 1e-6) }'
check "strong: efficiency = speedup / 2" awk -v s="$(col speedup 2 "$csv")" \
    -v e="$(col efficiency 2 "$csv")" 'BEGIN { exit !((s / 2 - e)^2 < 1e-6) }'
check "strong: median within min-max" awk -v m="$(col images_per_s 2 "$csv")" \
    -v lo="$(col images_per_s_min 2 "$csv")" -v hi="$(col images_per_s_max 2 "$csv")" 'BEGIN { exit !(lo <= m && m <= hi) }'
check "strong: 2 ranks have an allreduce time" awk -v a="$(col allreduce_ms 2 "$csv")" 'BEGIN { exit !(a > 0) }'
check "strong: bench's in-job speedup on 2 ranks" awk -v a="$(col in_job_speedup 2 "$csv")" 'BEGIN { exit !(a > 0) }'
check "strong: no in-job speedup on 1 rank" test -z "$(col in_job_speedup 1 "$csv")"
md=strong/scaling.md
check "strong: table header" contains "$md" "^| ranks | images/s (min-max) | speedup | efficiency | allreduce share | wait for the slowest rank | in-job speedup |$"
check "strong: table rows" test "$(grep -c '^| [12] |' "$md")" -eq 2
check "strong: baseline row" contains "$md" "^| 1 | [0-9,]* ([0-9,]*-[0-9,]*) | 1.00x | 100% | - | - | - |$"
check "strong: the CPU named" contains "$md" "$(lscpu | sed -n 's/^Model name: *//p' | head -1)"
check "strong: the command" contains "$md" "Command: \`cluster/scaling .*mnist_convnet.cfg --ranks 1,2"
check "strong: figure" test "$(od -An -tx1 -N8 strong/scaling.png | tr -d ' \n')" = 89504e470d0a1a0a
check "strong: the bench runs kept" test "$(ls strong/raw/*.csv | wc -l)" -eq 4
check "strong: no temporary files" test -z "$(find strong -name '*.tmp*')"

"$scaling" "$cfg" --ranks 1,2 --weak --batch 8 --iters 4 --repeat 1 -o weak > weak.out 2>&1
check "weak: exit 0" test $? -eq 0
check "weak: per-rank batch fixed at 8" test "$(col batch_per_rank 1 weak/scaling.csv) $(col batch_per_rank 2 weak/scaling.csv)" = "8 8"
check "weak: global batch grows" test "$(col global_batch 1 weak/scaling.csv) $(col global_batch 2 weak/scaling.csv)" = "8 16"
check "weak: mode" test "$(col mode 2 weak/scaling.csv)" = weak
# without --batch, weak scaling keeps the baseline's per-rank batch (the config's 64)
"$scaling" "$cfg" --ranks 1,2 --weak --iters 2 --repeat 1 -o weak64 > weak64.out 2>&1
check "weak, the baseline's batch: per rank 64 on 2 ranks" test "$(col batch_per_rank 2 weak64/scaling.csv)" = 64

# usage errors: exit 2 with the reason, nothing run
usage_err() { # NAME PATTERN ARGS...
    local name=$1 pattern=$2; shift 2
    "$scaling" "$@" > err.out 2>&1
    local rc=$?
    check "$name: exit 2 (got $rc)" test "$rc" -eq 2
    check "$name: message" contains err.out "$pattern"
}
usage_err "--ranks 1,x" "'x' is not a positive integer" "$cfg" --ranks 1,x -o bad
usage_err "--ranks 0,2" "'0' is not a positive integer" "$cfg" --ranks 0,2 -o bad
usage_err "--ranks 2,1" "rank counts must increase" "$cfg" --ranks 2,1 -o bad
usage_err "--ranks 1,2," "expected positive integers separated by commas" "$cfg" --ranks 1,2, -o bad
usage_err "no --ranks" "--ranks is required" "$cfg" -o bad
usage_err "a global batch that does not split" "--batch 5: a fixed global batch must split evenly" "$cfg" --ranks 1,2 --batch 5 -o bad
usage_err "unknown option" "unknown option '--rank'" "$cfg" --rank 2 -o bad
check "usage errors ran nothing" test ! -e bad
"$scaling" missing.cfg --ranks 1 -o bad > err.out 2>&1
check "missing config: exit 1" test $? -eq 1
check "missing config: message" contains err.out "missing.cfg: no such config file"
# a bench that fails (a bad key) stops the script with its log
"$scaling" "$cfg" --ranks 1 --iters 2 --repeat 1 --set train.bogus=1 -o failing > failing.out 2>&1
check "failing bench: exit 1" test $? -eq 1
check "failing bench: says which run" contains failing.out "bench on 1 ranks failed (log: failing/raw/r1-k1.log)"
check "failing bench: shows the error" contains failing.out "bogus"
check "failing bench: no table" test ! -e failing/scaling.md

finish
