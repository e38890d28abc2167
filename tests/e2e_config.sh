#!/usr/bin/env bash
# Every command reads the whole config and rejects keys nobody reads, suggesting the closest
# known one; keys that used to be read and ignored either work (save_best_only) or are refused
# with the reason (restore_best_weights); an unknown command says so.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

"$bin" dataset fashion-mnist fm --limit 120 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cfg=$src/configs/mnist_convnet.cfg
sets=(--set data.dir=fm --set train.epochs=2 --set train.threads=1 --set checkpoint.dir=run)
"$bin" train "$cfg" "${sets[@]}" > train.out 2>&1 || { echo "training failed"; cat train.out; exit 1; }
ckpt=run/mnist_convnet-best.ckpt
img=$(find fm/test -name '*.jpg' | head -1)

# --- a misspelt key, through --set, in every command: exit 1, named, with the right key offered
expect_typo() { # NAME OUTFILE SUGGESTION COMMAND...
    local name=$1 out=$2 want=$3; shift 3
    "$@" > "$out" 2>&1
    local rc=$?
    check "$name: exit 1 (got $rc)" test $rc -eq 1
    check "$name: suggestion" contains "$out" "$want"
}
expect_typo "summary stride" summary.out "--set conv2d.stride: unknown key 'stride' in \[conv2d\] (section at line [0-9]*); did you mean 'strides'?" \
    "$bin" summary "$cfg" --set conv2d.stride=2
expect_typo "bench learning_rat" bench.out "unknown key 'learning_rat' in \[train\].*did you mean 'learning_rate'?" \
    "$bin" bench "$cfg" "${sets[@]}" --iters 1 --set train.learning_rat=0.1
expect_typo "evaluate colour_mode" evaluate.out "did you mean 'color_mode'?" \
    "$bin" evaluate "$cfg" "${sets[@]}" --checkpoint "$ckpt" --set data.colour_mode=rgb
expect_typo "predict pool_sise" predict.out "did you mean 'pool_size'?" \
    "$bin" predict "$cfg" "${sets[@]}" --checkpoint "$ckpt" --set maxpooling2d.pool_sise=3 "$img"
expect_typo "train paitence" train_typo.out "did you mean 'patience'?" \
    "$bin" train "$cfg" "${sets[@]}" --set early_stopping.paitence=2

# --- a misspelt required key in a file: named on its own line, not as a missing key elsewhere
printf '[data]\nimage_size = 28\ncolor_mode = grayscale\n[conv2d]\nfiltres = 8\nkernel_size = 3\n[flatten]\n[dense]\nunits = 10\n' > filtres.cfg
"$bin" summary filtres.cfg > filtres.out 2>&1
check "filtres: exit 1" test $? -eq 1
check "filtres: named at its line" contains filtres.out "filtres.cfg:5: unknown key 'filtres' in \[conv2d\] (section at line 4); did you mean 'filters'?"
# a key with no near neighbour lists what the section takes
"$bin" summary "$cfg" --set dense.colour=red > far.out 2>&1
check "far typo: lists the keys" contains far.out "HINT: \[dense\] takes name, trainable, units, activation, use_bias"

# --- a network that needs no data still has a summary
printf '[model]\ninput_shape = 28,28,1\n[conv2d]\nfilters = 8\nkernel_size = 3\n[flatten]\n[dense]\nunits = 10\n' > nodata.cfg
"$bin" summary nodata.cfg > nodata.out 2>&1
check "summary without [data] dir: exit 0" test $? -eq 0

# --- config syntax: a byte order mark, continuation lines, a repeated settings section
printf '\xef\xbb\xbf[model]\ninput_shape = 8,8,1\n[train]\nepochs = 1\n[flatten]\n[dense]\nunits = 3\n' > bom.cfg
"$bin" summary bom.cfg > bom.out 2>&1
check "a UTF-8 byte order mark before [model]: exit 0 (got $?)" test $? -eq 0
printf '[model]\ninput_shape = 8,8,1\n[data]\nimage_size = 8\ncolor_mode = grayscale\nclass_names = a, b,\n    c\n[flatten]\n[dense]\nunits = 3\n' > cont.cfg
"$bin" summary cont.cfg > cont.out 2>&1
check "continuation lines: exit 0 (got $?)" test $? -eq 0
printf '[model]\ninput_shape = 8,8,1\n[train]\nepochs = 1\n[flatten]\n[dense]\nunits = 3\n\n[train]\nbatch_size = 4\n' > twice.cfg
"$bin" summary twice.cfg > twice.out 2>&1
check "[train] twice: exit 1" test $? -eq 1
check "[train] twice: both lines" contains twice.out "twice.cfg:9: \[train\] at line 9 repeats \[train\] at line 3; a settings section may appear once"

# --- 1,000 classes: their names on one line of the config, in a --set, and in a file of names
mkdir -p k1000/train k1000/val/n000
cp "$img" k1000/val/n000/a.jpg
for i in $(seq -w 0 999); do mkdir -p "k1000/train/n$i" && cp "$img" "k1000/train/n$i/a.jpg"; done
seq -f 'n%03g' 0 999 > classes.txt
names=$(paste -sd, classes.txt)
k1000=(--set data.train=k1000/train --set data.val=k1000/val --set train.threads=1
       --set train.batch_size=250 --set train.steps_per_epoch=1 --set train.epochs=1)
net='[data]\nimage_size = 8\ncolor_mode = grayscale\n%s\n[train]\n[flatten]\n[dense]\nunits = 1000\nactivation = softmax\n'
printf "$net" "class_names = $names" > names_line.cfg
printf "$net" "class_names_file = classes.txt" > names_file.cfg
printf "$net" "" > names_set.cfg
check "a line of 1,000 names is longer than 4,000 characters" test "$(wc -L < names_line.cfg)" -gt 4000
"$bin" train names_line.cfg "${k1000[@]}" --set checkpoint.dir=k_line > k_line.out 2>&1
check "1,000 names on one line: trained (exit $?)" test -s k_line/names_line-best.ckpt
"$bin" train names_file.cfg "${k1000[@]}" --set checkpoint.dir=k_file > k_file.out 2>&1
check "1,000 names from a file: trained (exit $?)" test -s k_file/names_file-best.ckpt
"$bin" train names_set.cfg "${k1000[@]}" --set "data.class_names=$names" --set checkpoint.dir=k_set > k_set.out 2>&1
check "1,000 names in a --set: trained (exit $?)" test -s k_set/names_set-best.ckpt
"$bin" train names_line.cfg "${k1000[@]}" --set checkpoint.dir=k_line --resume auto > k_resume.out 2>&1
check "1,000 names: the run record compares them on resume (exit $?)" contains k_resume.out "nothing left to train"
"$bin" predict names_file.cfg --checkpoint k_file/names_file-best.ckpt --set data.train=k1000/train "$img" > k_pred.out 2>&1
check "1,000 names: predict names a class" grep -q "^$img n[0-9][0-9][0-9] 0\.[0-9]*$" k_pred.out
"$bin" inspect k_line/names_line-best.ckpt --record > k_rec.out 2>&1
check "1,000 names: the record holds the whole list" contains k_rec.out "config=data.class_names=n000,n001,.*,n998,n999$"

# --- a classifier without [flatten]: the dense layer that gets an image is named, with its shape
printf '[data]\nimage_size = 28\ncolor_mode = grayscale\n[train]\nepochs = 1\n[conv2d]\nfilters = 8\nkernel_size = 3\n[maxpooling2d]\n[dense]\nunits = 10\nactivation = softmax\n' > noflat.cfg
"$bin" train noflat.cfg --set data.dir=fm --set train.threads=1 --set checkpoint.dir=noflat > noflat.out 2>&1
check "dense without flatten: exit 1" test $? -eq 1
check "dense without flatten: the 4-D input named" contains noflat.out "fm/train has 10 classes, but the network ends in (13, 13, 10) per image, not one vector of class scores: noflat.cfg:10: \[dense\] dense gets a (13, 13, 8) input, and Dense acts on its last axis (as in Keras)"
check "dense without flatten: the fix" contains noflat.out "HINT: put a \[flatten\] (or a \[globalaveragepooling2d\]) before it"
check "dense without flatten: no count of units" lacks noflat.out "units"
# a network ending in an image is what a base is (extract): summary shows it
"$bin" summary noflat.cfg > noflat_summary.out 2>&1
check "dense without flatten: summary shows it (exit $?)" contains noflat_summary.out "(None, 13, 13, 10)"

# --- a network larger than the memory: refused before anything is allocated, in well under a
# second and 100 MB, with the figures (ulimit -v: should the check fail, the allocations fail
# at once rather than take the machine's memory)
huge=(--set conv2d_2.filters=1048576 --set train.batch_size=4096 --set train.micro_batch=4096)
for cmd in train bench; do
    ( ulimit -v 4000000; timeout -s KILL 5 /usr/bin/time -o "mem_$cmd.time" -f "%M %e" \
        "$bin" $cmd "$cfg" "${sets[@]}" "${huge[@]}" > "mem_$cmd.out" 2>&1 )
    rc=$?
    check "$cmd of a network beyond the memory: exit 1 (got $rc)" test $rc -eq 1
    check "$cmd of a network beyond the memory: the figures" contains "mem_$cmd.out" "the network needs [0-9]* MB at micro-batch 4096 (parameters [0-9]* MB, gradients [0-9]* MB, optimizer moments [0-9]* MB, activations [0-9]* MB), but [0-9]* MB are available (MemAvailable in /proc/meminfo"
    # the last line holds the figures (time writes "Command exited with non-zero status 1"
    # before them); none when the command was killed
    read -r kb secs < <(tail -1 "mem_$cmd.time" 2>/dev/null)
    [[ "$kb" =~ ^[0-9]+$ ]] || kb=999999999 secs=99
    check "$cmd of a network beyond the memory: under 100 MB (${kb} KB)" below "$kb" 100000
    check "$cmd of a network beyond the memory: under 2 s (${secs} s)" below "$secs" 2
done
# two ranks on one node count twice: each fits alone, both do not
( ulimit -v 4000000; timeout -s KILL 60 "${mpirun[@]}" -np 2 "$bin" train "$cfg" "${sets[@]}" \
    --set conv2d_2.filters=1000000 --set train.batch_size=128 --set train.micro_batch=64 > mem_np2.out 2>&1 )
check "2 ranks beyond the node's memory: the count" contains mem_np2.out "the network needs [0-9]* MB at micro-batch 64, on each of the 2 ranks of this node: [0-9]* MB in all"

# cache = memory that cannot fit: refused with its figures before any image is decoded (240
# images at 10000x10000 are 96 GB of floats; the network itself, one image a step, fits)
printf '[data]\ndir = fm\nimage_size = 10000\ncolor_mode = grayscale\ncache = memory\n[train]\nepochs = 1\nbatch_size = 1\nmicro_batch = 1\nthreads = 1\n[checkpoint]\ndir = bigcache\n[rescaling]\nscale = 1/255\n[globalaveragepooling2d]\n[dense]\nunits = 10\nactivation = softmax\n' > bigcache.cfg
( ulimit -v 4000000; timeout -s KILL 30 "$bin" train bigcache.cfg > bigcache.out 2>&1 )
check "cache = memory beyond the memory: exit 1 (got $?)" test $? -eq 1
check "cache = memory beyond the memory: the figures" contains bigcache.out "\[data\] cache = memory needs [0-9]* MB on each rank for fm/train and fm/val, beside the network's [0-9]* MB, but [0-9]* MB are available (MemAvailable in /proc/meminfo"
check "cache = memory beyond the memory: the way out" contains bigcache.out "HINT: cache = no in \[data\]"
check "cache = memory beyond the memory: no checkpoint" test -z "$(ls bigcache/*.ckpt 2>/dev/null)"

# the cache and the network each fit alone, but not together: refused, with both figures. The
# node's memory is a folder's proc/meminfo (the test build's SN_TEST_MEM_ROOT): first 1 kB, which
# the network alone does not fit in and says how much it needs, then 2 MB more than that.
printf '[data]\ndir = fm\nimage_size = 100\ncolor_mode = grayscale\ncache = memory\n[train]\nepochs = 1\nbatch_size = 32\nmicro_batch = 32\nthreads = 1\n[checkpoint]\ndir = both\n[rescaling]\nscale = 1/255\n[conv2d]\nfilters = 32\nkernel_size = 3\n[globalaveragepooling2d]\n[dense]\nunits = 10\nactivation = softmax\n' > both.cfg
mkdir -p fakemem/proc
echo "MemAvailable: 1 kB" > fakemem/proc/meminfo
SN_TEST_MEM_ROOT=$PWD/fakemem timeout -s KILL 30 "$hooked" train both.cfg --set data.cache=no > both_net.out 2>&1
check "the network alone beyond a 1 kB node: exit 1 (got $?)" test $? -eq 1
net=$(sed -n 's/.*the network needs \([0-9]*\) MB.*/\1/p' both_net.out)
echo "MemAvailable: $(( (${net:-0} + 2) * 1000000 / 1024 )) kB" > fakemem/proc/meminfo
SN_TEST_MEM_ROOT=$PWD/fakemem timeout -s KILL 30 "$hooked" train both.cfg > both.out 2>&1
check "cache and network that fit only apart: exit 1 (got $?)" test $? -eq 1
check "cache and network that fit only apart: the cache's message" contains both.out "\[data\] cache = memory needs [0-9]* MB on each rank for fm/train and fm/val, beside the network's [0-9]* MB, but [0-9]* MB are available"
read -r c n a < <(sed -n 's/.*needs \([0-9]*\) MB on each rank.* network.s \([0-9]*\) MB, but \([0-9]*\) MB are.*/\1 \2 \3/p' both.out)
check "cache and network that fit only apart: each fits alone, not both (cache ${c:-?} MB, network ${n:-?} MB, ${a:-?} MB available)" \
    test "${c:-0}" -gt 0 -a "${n:-0}" -gt 0 -a "${c:-0}" -lt "${a:-0}" -a "${n:-0}" -lt "${a:-0}" -a $(( ${c:-0} + ${n:-0} )) -gt "${a:-0}"
check "cache and network that fit only apart: no checkpoint" test -z "$(ls both/*.ckpt 2>/dev/null)"

# --- read-and-ignored keys: save_best_only works as in Keras, restore_best_weights is refused
"$bin" train "$cfg" "${sets[@]}" --set checkpoint.save_best_only=false --set checkpoint.dir=every > every.out 2>&1
check "save_best_only = false: exit 0" test $? -eq 0
check "save_best_only = false: a checkpoint per epoch" test -s every/mnist_convnet-epoch001.ckpt -a -s every/mnist_convnet-epoch002.ckpt
check "save_best_only = false: no best checkpoint" test ! -e every/mnist_convnet-best.ckpt
"$bin" train "$cfg" "${sets[@]}" --set early_stopping.restore_best_weights=true > rbw.out 2>&1
check "restore_best_weights: exit 1" test $? -eq 1
check "restore_best_weights: the reason" contains rbw.out "restore_best_weights: not supported: NAME-best.ckpt already holds"
"$bin" summary "$cfg" --set train.optimizer=adam --set train.momentum=0.9 > momentum.out 2>&1
check "momentum with adam: exit 1" test $? -eq 1
check "momentum with adam: named" contains momentum.out "\[train\] momentum: optimizer = adam does not use it"
"$bin" summary "$cfg" --set train.lr_schedule=cosine --set train.decay_rate=0.5 > decay.out 2>&1
check "decay_rate with a cosine schedule: named" contains decay.out "\[train\] decay_rate: lr_schedule = cosine does not use it"
SN_THREADS=many "$bin" train "$cfg" "${sets[@]}" > env.out 2>&1
check "SN_THREADS that is not a number: exit 1" test $? -eq 1
check "SN_THREADS: named" contains env.out "SN_THREADS=many"
SN_THREADS=1 "$bin" train "$cfg" "${sets[@]}" --set train.epochs=1 --set checkpoint.dir=env1 > env1.out 2>&1
check "SN_THREADS=1 sets the threads" contains env1.out "1 compute thread,"
# the variables users set are honoured in their order, and one that is overridden is named
one=(--set train.epochs=1 --set train.steps_per_epoch=2)
env -u OPENBLAS_NUM_THREADS OMP_NUM_THREADS=1 "$bin" train "$cfg" "${sets[@]}" "${one[@]}" \
    --set train.threads=0 --set checkpoint.dir=omp1 > omp1.out 2>&1
check "OMP_NUM_THREADS=1 sets the threads" contains omp1.out "^rank 0 of 1 on .*: 1 compute thread,"
check "OMP_NUM_THREADS=1: nothing to note" lacks omp1.out "note:"
OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=1 "$bin" train "$cfg" "${sets[@]}" "${one[@]}" \
    --set train.threads=0 --set checkpoint.dir=omp2 > omp2.out 2>&1
check "OMP_NUM_THREADS before OPENBLAS_NUM_THREADS" contains omp2.out "^rank 0 of 1 on .*: 2 compute threads,"
check "OPENBLAS_NUM_THREADS overridden: said" contains omp2.out "^rank 0: note: OPENBLAS_NUM_THREADS=1 not used: OMP_NUM_THREADS comes first"
OMP_NUM_THREADS=2 "$bin" train "$cfg" "${sets[@]}" "${one[@]}" --set checkpoint.dir=omp3 > omp3.out 2>&1
check "[train] threads before OMP_NUM_THREADS: said" contains omp3.out "note: OMP_NUM_THREADS=2 not used: \[train\] threads comes first"
OMP_NUM_THREADS=two "$bin" train "$cfg" "${sets[@]}" "${one[@]}" --set checkpoint.dir=omp4 > omp4.out 2>&1
check "OMP_NUM_THREADS that is not a number: exit 1" test $? -eq 1
check "OMP_NUM_THREADS that is not a number: named" contains omp4.out "OMP_NUM_THREADS=two: expected a number of threads from 1 to 1024"
# more threads than the CPUs a rank is bound to: mpirun binds 2 ranks to a core each
if [ "$(nproc)" -ge 2 ]; then
    # (without lib.sh's OPENBLAS_NUM_THREADS=1, which SN_THREADS overrides with a note)
    mpi_bound=(env -u OPENBLAS_NUM_THREADS mpirun --bind-to core
               --mca btl_vader_single_copy_mechanism none)
    "${mpi_bound[@]}" -np 2 -x SN_THREADS=2 "$bin" train "$cfg" "${sets[@]}" "${one[@]}" \
        --set train.threads=0 --set checkpoint.dir=bound > bound.out 2>&1
    check "bound ranks: 2 threads each" contains bound.out "^rank 1 of 2 on .*: 2 compute threads, .*CPUs [0-9]*,"
    check "bound ranks: more threads than CPUs, said per rank with the fix" \
        contains bound.out "^rank 1: note: 2 compute threads on 1 CPU ([0-9]*): they take turns; HINT: mpirun --bind-to none or --map-by slot:PE=2, or shardnet-run --threads 2"
    env -u OPENBLAS_NUM_THREADS mpirun --bind-to none --mca btl_vader_single_copy_mechanism none \
        -np 2 -x SN_THREADS=2 "$bin" train "$cfg" "${sets[@]}" "${one[@]}" \
        --set train.threads=0 --set checkpoint.dir=unbound > unbound.out 2>&1
    check "unbound ranks: nothing to note" lacks unbound.out "note:"
else
    skip "threads beyond the bound CPUs" "one CPU: mpirun cannot bind 2 ranks a core each"
fi

# --- a config that changed since the checkpoint: evaluate and predict name each changed key
"$bin" evaluate "$cfg" "${sets[@]}" --checkpoint "$ckpt" --set rescaling.scale=1 \
    --set train.optimizer=adam > changed.out 2>&1
check "evaluate with a changed config: exit 0" test $? -eq 0
check "evaluate names the changed scale" contains changed.out "\[rescaling\] scale: 0.0039215686274509803 in the checkpoint, 1 now"
check "evaluate names the changed optimizer" contains changed.out "\[train\] optimizer: rmsprop in the checkpoint, adam now"
"$bin" predict "$cfg" "${sets[@]}" --checkpoint "$ckpt" --set data.interpolation=nearest "$img" > changed_p.out 2>&1
check "predict names the changed interpolation" contains changed_p.out "\[data\] interpolation: bilinear in the checkpoint, nearest now"

# --- commands and options
"$bin" trian "$cfg" > cmd.out 2>&1
check "unknown command: exit 2" test $? -eq 2
check "unknown command: named" contains cmd.out "unknown command 'trian'"
"$bin" --help > help.out 2>&1
check "help lists the exit statuses" contains help.out "76  peer lost"
# every command's --help: its usage on stdout, exit 0, whatever else is on the line
for c in summary train evaluate predict bench timeline import-weights export-weights extract \
         inspect dataset plot version; do
    "$bin" $c --help > "help_$c.out" 2> "help_$c.err"
    rc=$?
    check "$c --help: exit 0 (got $rc)" test $rc -eq 0
    check "$c --help: its usage, on stdout" contains "help_$c.out" "^usage: shardnet $c"
    check "$c --help: nothing on stderr" test ! -s "help_$c.err"
done
"$bin" bench --allreduce --sizes 4K -h > help_ar.out 2>&1
check "bench --allreduce -h: its own usage" \
    contains help_ar.out "^usage: shardnet bench --allreduce \[--sizes LIST\]"
"$bin" train "$cfg" --no-such-option --help > help_line.out 2>&1
check "--help with a bad option on the line: exit 0" test $? -eq 0
check "--help: the options with their help" \
    contains help_line.out "^  --resume CKPT|auto  *continue the run"
check "--help: the exit statuses the command can end with" \
    contains help_line.out "^  75  stopped on request"
"$bin" help evaluate > help_cmd.out 2>&1
check "help COMMAND: the command's usage" \
    contains help_cmd.out "^usage: shardnet evaluate CONFIG --checkpoint CKPT"
# an option the command does not take: a usage error naming both
"$bin" summary "$cfg" --iters 3 > notake.out 2>&1
check "summary --iters: exit 2" test $? -eq 2
check "summary --iters: named" \
    contains notake.out "^shardnet: summary does not take --iters (see shardnet summary --help)$"
"$bin" bench --allreduce --batch 4 > notake2.out 2>&1
check "bench --allreduce --batch: exit 2" test $? -eq 2
check "bench --allreduce --batch: named" contains notake2.out "bench --allreduce does not take --batch"
"$bin" summary "$cfg" --frobnicate > unknown.out 2>&1
check "an option no command takes: exit 2" test $? -eq 2
check "an option no command takes: unknown" contains unknown.out "unknown option --frobnicate"

# --- numeric options: 0 is refused where it is not a value, and the error names the option
expect_usage() { # NAME WANT COMMAND...: exit 2, WANT on stderr, nothing on stdout
    local name=$1 want=$2; shift 2
    "$@" > usage.out 2> usage.err
    local rc=$?
    check "$name: exit 2 (got $rc)" test $rc -eq 2
    check "$name: named" contains usage.err "$want"
    check "$name: nothing done" test ! -s usage.out
}
expect_usage "predict --top 0" "^shardnet: --top 0: expected a whole number of 1 or more (see shardnet predict --help)$" \
    "$bin" predict "$cfg" "${sets[@]}" --checkpoint "$ckpt" --top 0 "$img"
expect_usage "predict --digits 0" "^shardnet: --digits 0: expected a whole number from 1 to 9" \
    "$bin" predict "$cfg" "${sets[@]}" --checkpoint "$ckpt" --digits 0 "$img"
expect_usage "predict --digits 10" "^shardnet: --digits 10: expected a whole number from 1 to 9" \
    "$bin" predict "$cfg" "${sets[@]}" --checkpoint "$ckpt" --digits 10 "$img"
expect_usage "bench --batch 0" "^shardnet: --batch 0: expected a whole number of 1 or more" \
    "$bin" bench "$cfg" "${sets[@]}" --batch 0
expect_usage "bench --iters 0" "^shardnet: --iters 0: expected a whole number of 1 or more" \
    "$bin" bench "$cfg" "${sets[@]}" --iters 0
expect_usage "bench --allreduce --iters 0" "^shardnet: --iters 0: expected a whole number of 1 or more" \
    "$bin" bench --allreduce --iters 0
expect_usage "--trace-events 0" "^shardnet: --trace-events 0: expected a whole number of 1 or more" \
    "$bin" train "$cfg" "${sets[@]}" --trace t.json --trace-events 0
expect_usage "a value that is not a number" "^shardnet: --top three: expected a whole number" \
    "$bin" predict "$cfg" "${sets[@]}" --checkpoint "$ckpt" --top three "$img"
expect_usage "an option without its value" "^shardnet: --digits needs a value: --digits D" \
    "$bin" predict "$cfg" "${sets[@]}" --checkpoint "$ckpt" "$img" --digits
expect_usage "--split" "^shardnet: --split tset: use train, val or test" \
    "$bin" evaluate "$cfg" "${sets[@]}" --checkpoint "$ckpt" --split tset
expect_usage "an argument too many" "^shardnet: summary takes CONFIG; 'other.cfg' is extra" \
    "$bin" summary "$cfg" other.cfg
# where 0 is a value, it is taken: --limit 0 is every image
"$bin" dataset shapes shapes0 --limit 0 > limit0.out 2>&1
check "dataset --limit 0: all of them" test "$(find shapes0/train -type f | wc -l)" -ge 2000
"$bin" predict "$cfg" "${sets[@]}" --checkpoint "$ckpt" --top 2 --digits 1 "$img" > top2.out 2>&1
check "--top 2 --digits 1: two classes, one decimal" grep -qE "^$img [^ ]+ [01]\.[0-9] [^ ]+ [01]\.[0-9]$" top2.out

# --- a command of one process started on several ranks runs once, on rank 0
"${mpirun[@]}" -np 3 "$bin" predict "$cfg" "${sets[@]}" --checkpoint "$ckpt" "$img" > mpi_predict.out 2> mpi_predict.err
check "predict under mpirun -np 3: exit 0 (got $?)" test $? -eq 0
check "predict under mpirun -np 3: each image once" test "$(grep -c "^$img " mpi_predict.out)" -eq 1
check "predict under mpirun -np 3: said once" test "$(grep -c "predict runs in one process: rank 0 of the 3" mpi_predict.err)" -eq 1
"${mpirun[@]}" -np 2 "$bin" evaluate "$cfg" "${sets[@]}" --checkpoint "$ckpt" > mpi_eval.out 2>&1
check "evaluate under mpirun -np 2: one result" test "$(grep -c "accuracy" mpi_eval.out)" -eq 1
"${mpirun[@]}" -np 2 "$bin" predict "$cfg" "${sets[@]}" --checkpoint "$ckpt" --top 0 "$img" > mpi_usage.out 2>&1
check "a usage error under mpirun -np 2: said once" test "$(grep -c -- "--top 0: expected" mpi_usage.out)" -eq 1

finish
