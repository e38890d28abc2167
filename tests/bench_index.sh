#!/bin/bash
# tests/bench_index.sh BUILD_DIR [FILES] [RANKS...] — the file list at scale: makes a tree of
# FILES empty files (default 200,000) in 100 class folders under $TMPDIR, dates its folders an
# hour back (a folder changed in the last second is not cached), and runs bench_index on 1 and
# on each of RANKS ranks (default 4 16 64, oversubscribed), with the file-list cache in a folder of
# its own beside the tree (XDG_CACHE_HOME). Prints the CPU model with the figures.
set -euo pipefail
build=${1:?usage: tests/bench_index.sh BUILD_DIR [FILES] [RANKS...]}
files=${2:-200000}
shift
[ $# -gt 0 ] && shift
ranks=("$@")
[ ${#ranks[@]} -eq 0 ] && ranks=(4 16 64)
root=${TMPDIR:-/tmp}/shardnet-bench-index-$files
if [ ! -d "$root/train" ]; then
    mkdir -p "$root/train"
    python3 - "$root/train" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for c in range(100):
    d = os.path.join(root, "class%03d" % c)
    os.makedirs(d, exist_ok=True)
    for i in range(c, n, 100):
        open(os.path.join(d, "%07d.jpg" % i), "w").close()
PY
    find "$root" -type d -exec touch -d '1 hour ago' {} +
fi
export XDG_CACHE_HOME=$root-cache
rm -rf "$XDG_CACHE_HOME"
lscpu | grep 'Model name'
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpirun=(mpirun --oversubscribe --bind-to none --mca btl_vader_single_copy_mechanism none
        -x XDG_CACHE_HOME)
"${mpirun[@]}" -np 1 "$build/tests/bench_index" "$root" 5
for n in "${ranks[@]}"; do
    "${mpirun[@]}" -np "$n" "$build/tests/bench_index" "$root" 3
done
echo "cache entry: $(stat -c %s "$XDG_CACHE_HOME"/shardnet/index/*-train-*) bytes"
