#!/usr/bin/env bash
# OpenBLAS's kernels are chosen for the CPU whatever way shardnet starts: never below the CPU's
# level when nobody set OPENBLAS_CORETYPE, the user's value when set, a level lower (with a
# warning) when the start-up GEMM check fails, and the same on every rank under mpirun.
# Backends: oneDNN trains on N ranks as on 1; backend = auto times each layer once per machine
# and config, then reads its choice from the cache.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

flags=$(grep -m1 '^flags' /proc/cpuinfo)
has() { [[ " $flags " == *" $1 "* ]]; }
want=Prescott
has avx && want=Sandybridge
has avx2 && has fma && want=Haswell
has avx512f && has avx512bw && has avx512vl && has avx512dq && has avx512cd && want=SkylakeX
[[ $want == SkylakeX ]] && has avx512_bf16 && want=Cooperlake
level() { # an OpenBLAS core type's level, as cpu.c ranks them
    case ${1,,} in
    cooperlake|sapphirerapids) echo 5 ;; skylakex) echo 4 ;; haswell|zen|excavator) echo 3 ;;
    sandybridge|bulldozer|piledriver|steamroller) echo 2 ;; *) echo 1 ;;
    esac
}
core_of() { sed -n 's/^OpenBLAS [^ ]* \([A-Za-z0-9]*\) kernels.*/\1/p' "$1" | head -1; }

# --- nobody set OPENBLAS_CORETYPE: kernels of the CPU's level
env -u OPENBLAS_CORETYPE "$bin" version > auto.out 2> auto.err
check "version with no OPENBLAS_CORETYPE: exit 0" test $? -eq 0
got=$(core_of auto.out)
check "kernels named ($got)" test -n "$got"
check "kernels $got at the CPU's level ($want)" test "$(level "$got")" -ge "$(level "$want")"
check "no warning" test ! -s auto.err

# --- the user's value is respected, even below the CPU's level
OPENBLAS_CORETYPE=Haswell "$bin" version > user.out 2>&1
check "OPENBLAS_CORETYPE=Haswell respected" contains user.out "OpenBLAS [^ ]* Haswell kernels (set by OPENBLAS_CORETYPE"

# --- a failed check steps down one level at a time, with a warning naming what failed
if [[ $(level "$got") -gt 1 ]]; then
    env -u OPENBLAS_CORETYPE SN_TEST_BLAS_WRONG="$got" "$hooked" version > down.out 2> down.err
    check "check failed: exit 0" test $? -eq 0
    lower=$(core_of down.out)
    check "check failed: $got -> $lower, one level down" \
        test "$(level "$lower")" -eq $(( $(level "$got") - 1 ))
    check "check failed: warning names $got" contains down.err "OpenBLAS kernels $got computed a wrong product in the start-up check; running its $lower kernels instead"
    check "check failed: version line says so" contains down.out "failed the check: $got"
    # a user's value that fails the check is not kept either
    OPENBLAS_CORETYPE=Haswell SN_TEST_BLAS_WRONG=haswell "$hooked" version > userdown.out 2>&1
    check "OPENBLAS_CORETYPE=Haswell failing: Sandybridge" contains userdown.out "Sandybridge kernels"
else
    skip "a failed GEMM check steps down one level (5 checks)" "$got is OpenBLAS's lowest level"
fi

# --- under mpirun, every rank: the start line names the kernels on each rank, and bench too
"$bin" dataset fashion-mnist fm --limit 40 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
env -u OPENBLAS_CORETYPE "${mpirun[@]}" -np 2 "$bin" train "$src/configs/mnist_convnet.cfg" \
    --set data.dir=fm --set train.epochs=1 --set train.threads=1 --set checkpoint.dir=run \
    > mpi.out 2>&1
check "2 ranks: train exit 0" test $? -eq 0
check "2 ranks: rank 0's kernels" contains mpi.out "^rank 0 of 2 .*OpenBLAS [^ ]* $got kernels"
check "2 ranks: rank 1's kernels" contains mpi.out "^rank 1 of 2 .*OpenBLAS [^ ]* $got kernels"
env -u OPENBLAS_CORETYPE "$bin" bench "$src/configs/mnist_convnet.cfg" --set train.threads=1 \
    --batch 8 --iters 2 > bench.out 2>&1
check "bench names the kernels" contains bench.out "^kernels: OpenBLAS [^ ]* $got kernels"

# --- the oneDNN backend: 2 ranks train the same model as 1 (same global batch)
cfg=$src/configs/mnist_convnet.cfg
common=(--set data.dir=fm --set train.optimizer=sgd --set train.learning_rate=0.05
        --set train.batch_size=8 --set train.epochs=1 --set model.backend=onednn)
for n in 1 2; do
    "${mpirun[@]}" -np $n "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=dnnl$n > dnnl$n.out 2>&1
    check "onednn on $n ranks: exit 0" test $? -eq 0
done
check "onednn: no per-layer choice printed" lacks dnnl1.out "backend for"
"$bin" inspect dnnl1/mnist_convnet-last.ckpt --compare dnnl2/mnist_convnet-last.ckpt > dnnlcmp.out 2>&1
rel=$(sed -n 's/.*max rel diff \([0-9.e+-]*\).*/\1/p' dnnlcmp.out)
check "onednn: 2 ranks vs 1, max rel diff ${rel:-?} < 1e-5" below "${rel:-1}" 1e-5
"$bin" evaluate "$cfg" "${common[@]}" --checkpoint dnnl2/mnist_convnet-best.ckpt > dnnleval.out 2>&1
check "onednn: evaluate exit 0" test $? -eq 0
# the same with Winograd's convolutions (Listing 8.1's second layer has them on AVX-512)
for n in 1 2; do
    "${mpirun[@]}" -np $n "$bin" train "$cfg" "${common[@]}" --set model.backend=winograd \
        --set checkpoint.dir=wino$n > wino$n.out 2>&1
    check "winograd on $n ranks: exit 0" test $? -eq 0
done
"$bin" inspect wino1/mnist_convnet-last.ckpt --compare wino2/mnist_convnet-last.ckpt > winocmp.out 2>&1
rel=$(sed -n 's/.*max rel diff \([0-9.e+-]*\).*/\1/p' winocmp.out)
check "winograd: 2 ranks vs 1, max rel diff ${rel:-?} < 1e-5" below "${rel:-1}" 1e-5
# oneDNN's blocked layout kept between those layers (AVX-512) changes no bit: the same run with
# every layer reading and writing NHWC ends with the same parameters
if grep -q avx512f /proc/cpuinfo; then
    check "winograd: blocked layout kept from the first to the last convolution" \
        contains wino1.out "^oneDNN's blocked layout kept between layers: conv2d to conv2d_2 (5 layers)"
else
    skip "winograd: blocked layout kept from the first to the last convolution" "no AVX-512: oneDNN's blocked layout is not native here"
    check "no AVX-512: no blocked layout kept" lacks wino1.out "blocked layout kept"
fi
"$bin" train "$cfg" "${common[@]}" --set model.backend=winograd --set model.onednn_layout=nhwc \
    --set checkpoint.dir=winonhwc > winonhwc.out 2>&1
check "winograd, onednn_layout = nhwc: exit 0" test $? -eq 0
check "onednn_layout = nhwc: no blocked layout" lacks winonhwc.out "blocked layout kept"
"$bin" inspect wino1/mnist_convnet-last.ckpt --compare winonhwc/mnist_convnet-last.ckpt > laycmp.out 2>&1
check "blocked layout vs NHWC: identical parameters" contains laycmp.out "(identical parameters)"
"$bin" train "$cfg" "${common[@]}" --set model.onednn_layout=nchw > badlayout.out 2>&1
check "onednn_layout = nchw: exit 1" test $? -eq 1
check "onednn_layout = nchw: the choices named" contains badlayout.out "onednn_layout.*blocked.*nhwc"

# --- auto: timed once, then read from the cache; the same choice both times (each part timed
# at the micro-batch, [train] micro_batch = 16, the unit of work on any number of ranks)
auto=(--set data.dir=fm --set train.epochs=1 --set train.threads=1 --set checkpoint.dir=auto)
export XDG_CACHE_HOME=$PWD/autocache # a cache of its own: the runs above timed at this batch too
cache=$XDG_CACHE_HOME/shardnet/backends.tsv
before=$(cat "$cache" 2>/dev/null | wc -l)
"$bin" train "$cfg" "${auto[@]}" > auto1.out 2>&1
check "auto: exit 0" test $? -eq 0
check "auto: one line per conv2d, pooling and dense layer" \
    test "$(grep -c '^backend for ' auto1.out)" -eq 6
ms="(blas [0-9.]* ms, onednn [0-9.]* ms\(, winograd [0-9.]* ms\)\{0,1\})"
check "auto: a convolution's parts chosen apart (no input gradient for the first)" contains auto1.out "^backend for conv2d at batch 16: forward [a-z]* $ms, weight gradient [a-z]* $ms$"
check "auto: all three parts of the second" contains auto1.out "^backend for conv2d_1 at batch 16: forward [a-z]* $ms, input gradient [a-z]* $ms, weight gradient [a-z]* $ms$"
check "auto: pooling's pair together" contains auto1.out "^backend for maxpooling2d at batch 16: forward + backward [a-z]* $ms$"
check "auto: cache written, a line per part (3 per conv2d, 1 per pooling or dense)" \
    test "$(wc -l < "$cache")" -eq $((before + 12))
"$bin" train "$cfg" "${auto[@]}" --set checkpoint.dir=auto2 > auto2.out 2>&1
check "auto: second run reads the cache" test "$(grep -c ', timed before$' auto2.out)" -eq 6
check "auto: same choices" test "$(grep '^backend for' auto1.out | sed 's/ ([^)]*)//g; s/, timed before//')" = \
    "$(grep '^backend for' auto2.out | sed 's/ ([^)]*)//g; s/, timed before//')"
"$bin" inspect auto/mnist_convnet-last.ckpt --compare auto2/mnist_convnet-last.ckpt > autocmp.out 2>&1
check "auto: the two runs give identical parameters" contains autocmp.out "identical parameters"
# a cache that cannot be written: said once, and the run goes on
XDG_CACHE_HOME=/proc/none "$bin" train "$cfg" "${auto[@]}" --set checkpoint.dir=auto3 > auto3.out 2>&1
check "auto, unwritable cache: exit 0" test $? -eq 0
check "auto, unwritable cache: said once" test "$(grep -c 'note: cannot write the backend cache /proc/none/shardnet/backends.tsv' auto3.out)" -eq 1
# timing longer than the watchdog on rank 0 (each layer held 1 s more, 6 layers, watchdog 4 s): the
# other rank waits one layer at a time, so the job is not taken for a dead one
XDG_CACHE_HOME=$PWD/slowtune SN_TEST_TUNE_SLEEP=1 "${mpirun[@]}" -np 2 "$hooked" train "$cfg" \
    "${auto[@]}" --set train.watchdog=4 --set checkpoint.dir=slowtune > slowtune.out 2>&1
rc=$?
check "auto on 2 ranks, timing over 6 s, watchdog 4 s: exit 0 (got $rc)" test $rc -eq 0
check "auto on 2 ranks, timing over 6 s: no watchdog abort" lacks slowtune.out "has waited"
# rank 0 stuck in the timing of one layer (held 60 s, watchdog 4 s): the other rank's watchdog
# ends the job with 76 (peer lost), well before the hold is over
start=$(date +%s)
XDG_CACHE_HOME=$PWD/heldtiming SN_TEST_TUNE_SLEEP=60 "${mpirun[@]}" -np 2 "$hooked" train "$cfg" \
    "${auto[@]}" --set train.watchdog=4 --set checkpoint.dir=heldtiming > heldtiming.out 2>&1
rc=$?
check "rank 0 stuck while timing: exit 76 (got $rc)" test $rc -eq 76
check "rank 0 stuck while timing: ended within 30 s" test $(( $(date +%s) - start )) -le 30
check "rank 0 stuck while timing: the watchdog names the wait" contains heldtiming.out "has waited"
# oneDNN's primitives are made before the first training step, never in one: in training too,
# for every batch a rank meets — 40 images at batch 7 on 2 ranks (shares of 3 and 4, an epoch's
# last batch of 5: 2 and 3) and validation at batch 6 (3 and 3, its last of 4: 2 and 2)
SN_TEST_PRIMITIVES=1 "${mpirun[@]}" -np 2 "$hooked" train "$cfg" "${common[@]}" --set model.backend=winograd \
    --set train.batch_size=7 --set train.validation_batch_size=6 --set checkpoint.dir=prims > primstrain.out 2>&1
check "odd batches on 2 ranks: exit 0" test $? -eq 0
for rk in 0 1; do
    check "odd batches: rank $rk made no primitive during the steps" \
        contains primstrain.out "^rank $rk: oneDNN primitives: [1-9][0-9]* made before the first step, 0 after$"
done
# oneDNN's primitives are made before the first training step, never in one
for be in auto winograd; do
    "$bin" bench "$cfg" --set train.threads=1 --batch 8 --iters 2 --backend $be > prims_$be.out 2>&1
    check "bench, backend $be: no primitive made during the steps" \
        contains prims_$be.out "^oneDNN primitives: [1-9][0-9]* made before the training steps, 0 during them$"
done
# --- precision = bf16, where the CPU has bf16 arithmetic: with auto, oneDNN's bf16 kernels are
# one more candidate of each convolution part; with a backend named, every convolution runs them
if grep -qw 'avx512_bf16\|amx_bf16' /proc/cpuinfo; then
    "$bin" train "$cfg" "${auto[@]}" --set train.precision=bf16 --set checkpoint.dir=bf16 > bf16.out 2>&1
    check "precision = bf16: exit 0" test $? -eq 0
    check "precision = bf16, auto: each convolution also timed on bf16" \
        test "$(grep -c '^backend for conv2d[_0-9]* at batch [0-9]*: forward .*, bf16 [0-9.]* ms)' bf16.out)" -eq 3
    check "precision = bf16, auto: pooling not timed on bf16" lacks bf16.out "^backend for maxpooling2d.*bf16"
    check "precision = bf16: a finite loss" contains bf16.out " - loss: [0-9]"
    "$bin" train "$cfg" "${common[@]}" --set train.precision=bf16 --set checkpoint.dir=bf16dnnl > bf16dnnl.out 2>&1
    check "precision = bf16, backend = onednn: exit 0" test $? -eq 0
    check "precision = bf16, backend = onednn: bf16 convolutions keep the blocked layout" \
        contains bf16dnnl.out "^oneDNN's blocked layout kept between layers: conv2d to conv2d_2 (5 layers)"
    "$bin" evaluate "$cfg" "${auto[@]}" --set train.precision=bf16 --checkpoint bf16/mnist_convnet-best.ckpt > bf16eval.out 2>&1
    check "precision = bf16: evaluate exit 0" test $? -eq 0
    "$bin" bench "$cfg" --set train.threads=1 --set train.precision=bf16 --batch 8 --iters 2 --backend winograd > bf16bench.out 2>&1
    check "precision = bf16, backend winograd: bench exit 0" test $? -eq 0
    check "precision = bf16: no primitive made during the steps" \
        contains bf16bench.out "^oneDNN primitives: [1-9][0-9]* made before the training steps, 0 during them$"
else
    skip "precision = bf16 trains, evaluates and benches on bf16 kernels (10 checks)" "no AVX-512 BF16 or AMX on this CPU"
fi
# a CPU without bf16 arithmetic (oneDNN limited to AVX2 here): refused before any work, naming the
# config and the key; summary, which computes nothing, still works
sed 's/^\[train\]$/[train]\nprecision = bf16/' "$cfg" > bf16.cfg
DNNL_MAX_CPU_ISA=AVX2 "$bin" train bf16.cfg "${auto[@]}" --set checkpoint.dir=nobf16 > nobf16.out 2>&1
check "precision = bf16 without bf16 arithmetic: exit 1" test $? -eq 1
check "precision = bf16 without bf16 arithmetic: says why" contains nobf16.out "\[train\] precision: bf16 needs a CPU with AVX-512 BF16 or AMX; this one runs oneDNN [0-9.]* avx2"
check "precision = bf16 without bf16 arithmetic: names the file and line" contains nobf16.out "bf16.cfg:[0-9]*"
check "precision = bf16 without bf16 arithmetic: no checkpoint directory" test ! -e nobf16
DNNL_MAX_CPU_ISA=AVX2 "$bin" summary "$cfg" --set train.precision=bf16 > nobf16sum.out 2>&1
check "precision = bf16 without bf16 arithmetic: summary exit 0" test $? -eq 0
"$bin" summary "$cfg" --set train.precision=fp16 > fp16.out 2>&1
check "precision = fp16: exit 1, the choices named" contains fp16.out "precision.*fp32, bf16"
# an unknown backend names the choices
"$bin" summary "$cfg" --set model.backend=cuda > badbackend.out 2>&1
check "backend = cuda: exit 1" test $? -eq 1
check "backend = cuda: choices named" contains badbackend.out "auto.*blas.*onednn.*winograd.*ref"
finish
