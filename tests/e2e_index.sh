#!/usr/bin/env bash
# End to end: the file-list cache ([data] index_cache) leaves the user's data alone. By default
# it lives in the user's cache folder ($XDG_CACHE_HOME/shardnet/index), one entry per split
# folder, and nothing is written into the data folders, so another tool that lists them (a
# PyTorch script taking os.listdir(train) as its classes) still works; `beside` keeps it in the
# split folder (<split>/.shardnet-index), `no` nowhere, a path in that folder. An entry that
# cannot be written is said once and the run goes on; old files beside the data are left alone.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

"$bin" dataset fashion-mnist fm --limit 40 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
# a folder changed in the last second is not cached (a change in the same tick could hide)
find fm -type d -exec touch -d '1 hour ago' {} +
cfg=$src/configs/mnist_convnet.cfg
common=(--set data.dir=fm --set train.epochs=1 --set train.batch_size=16 --set model.backend=blas)
index=$XDG_CACHE_HOME/shardnet/index
entries() { find "$1" -type f 2>/dev/null | wc -l; }
# the files shardnet would have written beside the data, from any version
beside() { find fm -name '.shardnet*'; }
# what a PyTorch ImageFolder-like script does: every entry of train/ is a class folder to list
listdir_ok() {
    python3 -c 'import os, sys
root = sys.argv[1]
for c in os.listdir(root):
    os.listdir(os.path.join(root, c))' fm/train
}

# --- the default: nothing in the data folders, one entry per split folder in the cache folder
"$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=run1 > run1.out 2>&1
check "default: exit 0" test $? -eq 0
check "default: nothing written into the data folders ($(beside | head -3 | tr '\n' ' '))" \
    test -z "$(beside)"
if command -v python3 > /dev/null; then
    check "default: a script taking every entry of train/ as a class folder works" listdir_ok
else
    skip "default: a script listing train/" "no python3"
fi
check "default: one cache entry for train/ and one for val/ in $index" test "$(entries "$index")" -eq 2
check "default: no note" lacks run1.out "note: .*cache"

# --- the second run reads the entries (it does not rewrite them: same inode, same bytes)
ids() { find "$index" -type f -exec stat -c '%n %i %s %Y' {} + | sort; }
before=$(ids)
"$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=run2 > run2.out 2>&1
check "second run: exit 0" test $? -eq 0
check "second run: the entries read, not rewritten" test "$(ids)" = "$before"
check "second run: still nothing in the data folders" test -z "$(beside)"
# an entry it reads: damaged, it is said, ignored and rewritten
train_entry=$(grep -l 'fm/train' "$index"/* | head -1)
check "an entry names its folder" test -n "$train_entry"
if [ -n "$train_entry" ]; then
    printf 'garbage' > "$train_entry"
    "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=run3 > run3.out 2>&1
    check "damaged entry: exit 0" test $? -eq 0
    check "damaged entry: said, naming it" contains run3.out "note: $train_entry is damaged"
    check "damaged entry: rewritten" test "$(stat -c %s "$train_entry")" -gt 7
fi

# --- old files beside the data (an earlier version's) are left alone: neither read nor deleted
printf 'an old cache' > fm/train/.shardnet-index
"$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=run4 > run4.out 2>&1
check "old file beside the data: exit 0" test $? -eq 0
check "old file beside the data: not read (no note about it)" lacks run4.out "shardnet-index"
check "old file beside the data: left as it was" test "$(cat fm/train/.shardnet-index)" = "an old cache"
rm fm/train/.shardnet-index

# --- beside: the old behaviour, asked for: written in each split folder, then read there
"$bin" train "$cfg" "${common[@]}" --set data.index_cache=beside --set checkpoint.dir=run5 \
    > run5.out 2>&1
check "beside: exit 0" test $? -eq 0
check "beside: fm/train/.shardnet-index and fm/val/.shardnet-index written" \
    test -s fm/train/.shardnet-index -a -s fm/val/.shardnet-index
ino=$(stat -c %i fm/train/.shardnet-index)
"$bin" train "$cfg" "${common[@]}" --set data.index_cache=beside --set checkpoint.dir=run6 \
    > run6.out 2>&1
check "beside: second run exit 0" test $? -eq 0
check "beside: read, not rewritten" test "$(stat -c %i fm/train/.shardnet-index)" = "$ino"
printf 'garbage' > fm/train/.shardnet-index
"$bin" train "$cfg" "${common[@]}" --set data.index_cache=beside --set checkpoint.dir=run7 \
    > run7.out 2>&1
check "beside: a damaged one is read and said" contains run7.out "note: fm/train/.shardnet-index is damaged"
rm -f fm/train/.shardnet-index fm/val/.shardnet-index
find fm -type d -exec touch -d '1 hour ago' {} +

# --- no: nothing anywhere
XDG_CACHE_HOME=$PWD/nocache "$bin" train "$cfg" "${common[@]}" --set data.index_cache=no \
    --set checkpoint.dir=run8 > run8.out 2>&1
check "no: exit 0" test $? -eq 0
check "no: nothing in the data folders" test -z "$(beside)"
check "no: nothing in the cache folder" test ! -e nocache/shardnet/index

# --- a folder: the entries there
"$bin" train "$cfg" "${common[@]}" --set data.index_cache="$PWD/mycache" \
    --set checkpoint.dir=run9 > run9.out 2>&1
check "a folder: exit 0" test $? -eq 0
check "a folder: its two entries" test "$(entries mycache)" -eq 2
check "a folder: nothing in the data folders" test -z "$(beside)"

# --- a cache folder that cannot be written: said once, the run goes on, nothing beside the data
XDG_CACHE_HOME=/proc/none "$bin" train "$cfg" "${common[@]}" --set checkpoint.dir=run10 \
    > run10.out 2>&1
check "unwritable cache folder: exit 0" test $? -eq 0
check "unwritable cache folder: said once" \
    test "$(grep -c 'note: cannot write the file-list cache in /proc/none/shardnet/index' run10.out)" -eq 1
check "unwritable cache folder: nothing in the data folders" test -z "$(beside)"

# --- 2 ranks: rank 0 lists and keeps the entries, the other rank receives; nothing in the data
XDG_CACHE_HOME=$PWD/mpicache "${mpirun[@]}" -np 2 -x XDG_CACHE_HOME "$bin" train "$cfg" \
    "${common[@]}" --set checkpoint.dir=run11 > run11.out 2>&1
check "2 ranks: exit 0" test $? -eq 0
check "2 ranks: two entries" test "$(entries mpicache/shardnet/index)" -eq 2
check "2 ranks: nothing in the data folders" test -z "$(beside)"

finish
