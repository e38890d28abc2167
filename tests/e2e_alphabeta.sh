#!/usr/bin/env bash
# The alpha-beta model of the gradient exchange: `shardnet bench --allreduce` on 2 ranks of one
# host writes a checked CSV (one row per size) and rejects bad sizes and an unwritable CSV
# without leaving a file; cluster/alphabeta fit recovers a known alpha and beta (within 1%) from
# a CSV made from them with +-0.5% noise, reads the benchmark's CSV, and names a bad file;
# cluster/alphabeta predict prints every row of its tables for 8..64 nodes. No timed assertion.
# Needs python3 (else exit 77). Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"
ab=$src/cluster/alphabeta
command -v python3 > /dev/null || { echo "skipped: no python3 for cluster/alphabeta"; exit 77; }

# --- the micro-benchmark, 2 ranks
"${mpirun[@]}" -np 2 "$bin" bench --allreduce --sizes 4K,64K,1000 --iters 20 --csv ar.csv > ar.out 2>&1
check "bench --allreduce on 2 ranks: exit 0" test $? -eq 0
check "bench --allreduce: says what it times" contains ar.out "^allreduce: 2 ranks on .*non-blocking sum of floats"
check "bench --allreduce: a line for 65536 bytes" contains ar.out " 65536 bytes: median .* us, min .* us (20 calls)"
check "the CSV: its header" test "$(head -1 ar.csv)" = "ranks,bytes,iters,median_us,min_us,algbw_gbs,busbw_gbs"
rows=$(awk -F, 'NR > 1 && $1 == 2 && $3 == 20 && $4 > 0 && $5 > 0 && $5 <= $4 && NF == 7 { print $2 }' ar.csv | tr '\n' ' ')
check "the CSV: a valid row per size, in order (got '$rows')" test "$rows" = "4096 65536 1000 "
check "the CSV: nothing else" test "$(wc -l < ar.csv)" -eq 4
check "the CSV: no temporary file left" test -z "$(ls ar.csv.tmp.* 2>/dev/null)"

"$bin" bench --allreduce --sizes 4K,6 > bad1.out 2>&1
check "--sizes 6 (not whole floats): usage error, exit 2" test $? -eq 2
check "--sizes 6: says why" contains bad1.out "whole number of 4-byte floats"
"$bin" bench --allreduce --sizes 4K, > bad2.out 2>&1
check "--sizes 4K, : exit 2" test $? -eq 2
"$bin" summary "$src/configs/mnist_convnet.cfg" --csv x.csv > bad3.out 2>&1
check "--csv with another command than bench: exit 2" test $? -eq 2
"$bin" summary "$src/configs/mnist_convnet.cfg" --sizes 4K > bad3.out 2>&1
check "--sizes without bench --allreduce: exit 2" test $? -eq 2
"${mpirun[@]}" -np 2 "$bin" bench --allreduce --sizes 4K --iters 2 --csv nodir/ar.csv > bad4.out 2>&1
check "--csv in a missing directory: exit 1" test $? -eq 1
check "--csv in a missing directory: names it" contains bad4.out "nodir/ar.csv: cannot create"
check "--csv in a missing directory: no file" test ! -e nodir

# --- the fit: a known alpha and beta, with deterministic +-0.5% noise
python3 - > synth.csv <<'PY'
import math
alpha, beta = 23.5e-6, 0.37e-9      # 23.5 us, 2.7 GB/s
print("ranks,bytes,iters,median_us,min_us,algbw_gbs,busbw_gbs")
k = 0
for p in (2, 3, 4):
    for n in (4096, 16384, 65536, 262144, 1 << 20, 4 << 20, 16 << 20):
        for r in range(3):  # three rounds: the fit takes their median
            k += 1
            t = (2 * (p - 1) * alpha + 2 * (p - 1) / p * n * beta) * (1 + 0.005 * math.sin(1.7 * k))
            print(f"{p},{n},10,{t * 1e6:.4f},{t * 1e6:.4f},0,0")
print("1,4096,10,0.2,0.2,0,0")  # one rank: no exchange, ignored
PY
"$ab" fit synth.csv > fit.out 2>&1
check "fit of the synthetic CSV: exit 0" test $? -eq 0
a=$(sed -n 's/^alpha = \([0-9.]*\) us$/\1/p' fit.out)
b=$(sed -n 's/^beta = \([0-9.]*\) ns\/byte$/\1/p' fit.out)
check "fit: alpha ${a:-?} us within 1% of 23.5" awk -v x="${a:-0}" 'BEGIN { exit !(x > 23.5 * 0.99 && x < 23.5 * 1.01) }'
check "fit: beta ${b:-?} ns/byte within 1% of 0.37" awk -v x="${b:-0}" 'BEGIN { exit !(x > 0.37 * 0.99 && x < 0.37 * 1.01) }'
check "fit: 21 points (the one-rank row ignored)" contains fit.out "to 21 points"
check "fit: R^2 near 1" contains fit.out "^R^2 = 0.99\|^R^2 = 1.0000"
"$ab" fit --weight absolute synth.csv > fit2.out 2>&1
b2=$(sed -n 's/^beta = \([0-9.]*\) ns\/byte$/\1/p' fit2.out)
check "fit --weight absolute: beta ${b2:-?} within 1%" awk -v x="${b2:-0}" 'BEGIN { exit !(x > 0.37 * 0.99 && x < 0.37 * 1.01) }'
# the binomial model (Open MPI 4.1's in-place non-blocking allreduce) from its own synthetic CSV
python3 - > synthb.csv <<'PY'
import math
alpha, beta = 11e-6, 1.6e-9
print("ranks,bytes,median_us")
for p in (2, 3, 4, 8):
    for n in (4096, 65536, 1 << 20, 16 << 20):
        r = math.ceil(math.log2(p))
        print(f"{p},{n},{2 * r * (alpha + n * beta) * 1e6:.4f}")
PY
"$ab" fit --model binomial synthb.csv > fitb.out 2>&1
a=$(sed -n 's/^alpha = \([0-9.]*\) us$/\1/p' fitb.out)
b=$(sed -n 's/^beta = \([0-9.]*\) ns\/byte$/\1/p' fitb.out)
check "fit --model binomial: alpha ${a:-?} us within 1% of 11" awk -v x="${a:-0}" 'BEGIN { exit !(x > 11 * 0.99 && x < 11 * 1.01) }'
check "fit --model binomial: beta ${b:-?} ns/byte within 1% of 1.6" awk -v x="${b:-0}" 'BEGIN { exit !(x > 1.6 * 0.99 && x < 1.6 * 1.01) }'
r2=$(sed -n 's/^the ring model on the same points: .*R^2 = \([0-9.]*\)$/\1/p' fitb.out)
check "fit --model binomial: the ring model fits these points worse (R^2 ${r2:-?} < 0.99)" below "${r2:-1}" 0.99
"$ab" fit ar.csv > fitar.out 2>&1
check "fit of the benchmark's own CSV: exit 0" test $? -eq 0
check "fit of the benchmark's CSV: alpha and 1/beta printed" contains fitar.out "^1/beta = "
printf 'ranks,bytes,median_us\n2,4096,abc\n' > bad.csv
"$ab" fit bad.csv > fitbad.out 2>&1
check "fit of a bad CSV: exit 1" test $? -eq 1
check "fit of a bad CSV: names the file and line" contains fitbad.out "bad.csv:2: "
printf 'ranks,size,median_us\n' > bad2.csv
"$ab" fit bad2.csv > fitbad2.out 2>&1
check "fit of a CSV without bytes: exit 1, says so" contains fitbad2.out "bad2.csv:1: no column 'bytes'"

# --- the prediction: every row of every table
"$ab" predict --alpha 20 --net mnist:104202:30:20:2 --net big:991041:900:600:10 > pred.out 2>&1
check "predict: exit 0" test $? -eq 0
for net in mnist big; do
    for g in 10 100; do
        check "predict: a table for $net at $g Gbit/s" contains pred.out "^$net: .* $g Gbit/s"
    done
done
n=$(grep -cE '^ +(8|16|32|64) +[0-9.]+ \| ' pred.out)
check "predict: rows 8, 16, 32, 64 in each of the 4 tables (got $n)" test "$n" -eq 16
n=$(grep -cE '^  +(8|16|32|64) +[0-9.]+[* ] +[0-9.]+[* ] ' pred.out)
check "predict: remedies for 8..64 in each of the 4 tables (got $n)" test "$n" -eq 16
"$ab" predict --markdown --model binomial --model ring --alpha 10 --alpha 25 --net mnist:104202:30:20:2 > md.out 2>&1
check "predict --markdown: exit 0" test $? -eq 0
n=$(grep -cE '^\| mnist \| (10|100) Gbit/s \| (binomial|ring) \| (10|25) us \|( [0-9]+%, [*0-9.x]+ \([*0-9.x]+\) \|){4}$' md.out)
check "predict --markdown: 8 rows of 4 node counts (got $n)" test "$n" -eq 8
# --exact: shardnet's exact sums, twice the bytes and a 4-byte MAX per bucket. Binomial at 8
# nodes (6 rounds), 2 buckets, alpha 20 us, 10 Gbit/s (0.8 ns a byte), 416,808 bytes of floats:
#   float: 2 * 6 * 20 us + 6 * 416808 * 0.8 ns                         = 2.2407 ms
#   exact: 2 * 6 * 20 us + 6 * 833616 * 0.8 ns + 2 * 6 * (20 us + 4 * 0.8 ns) = 4.4814 ms
"$ab" predict --model binomial --alpha 20 --gbit 10 --nodes 8 --net mnist:104202:30:20:2 > float.out 2>&1
"$ab" predict --model binomial --alpha 20 --gbit 10 --nodes 8 --net mnist:104202:30:20:2 --exact > exact.out 2>&1
check "predict --exact: exit 0" test $? -eq 0
ms() { awk '$1 == 8 && $3 == "|" { print $2 }' "$1"; }
check "predict: the float exchange at 8 nodes, 2.241 ms (got $(ms float.out))" test "$(ms float.out)" = 2.241
check "predict --exact: twice the bytes and a MAX per bucket, 4.481 ms (got $(ms exact.out))" \
    test "$(ms exact.out)" = 4.481
"$ab" predict --alpha 20 --net mnist:0:30:20:2 > predbad.out 2>&1
check "predict with 0 params: usage error" test $? -eq 2

finish
