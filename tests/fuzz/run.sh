#!/usr/bin/env bash
# tests/fuzz/run.sh BUILD_DIR SECONDS [EXTRA LIBFUZZER FLAGS...] — for each fuzz target of
# BUILD_DIR (a -DSHARDNET_FUZZ=ON clang build), one after the other: replays the inputs of the
# bugs it found (tests/fuzz/crashes/<target>_*), then fuzzes for SECONDS on a copy of its
# committed corpus (tests/fuzz/corpus/<target>/ is never modified), with its dictionary.
# Prints one line per target; fails on the first crash, leak, timeout (10 s) or memory blow-up,
# printing the end of libFuzzer's log and the path of the saved input (BUILD_DIR/fuzz-run/).
# Memory: the targets bound what an input may ask for (4 million pixels, 2^20 floats, a 64 MB
# run record), which needs well under 512 MB; a single allocation over 512 MB, or a process over
# 2 GB, means a size taken from the input escaped its bound.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
build=$(cd "$1" && pwd)
secs=$2
shift 2

flags=(-rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 -print_final_stats=1)
for target in config checkpoint featfile image; do
    bin="$build/tests/fuzz/fuzz_$target"
    work="$build/fuzz-run/$target"
    rm -rf "$work"
    mkdir -p "$work/corpus"
    cp "$here/corpus/$target/"* "$work/corpus/"
    dict=()
    [ -f "$here/$target.dict" ] && dict=(-dict="$here/$target.dict")
    found=("$here/crashes/${target}_"*)
    if [ -e "${found[0]}" ] && ! "$bin" "${flags[@]}" "${found[@]}" >"$work/replay.log" 2>&1; then
        tail -n 60 "$work/replay.log"
        echo "fuzz: fuzz_$target FAILED on an input of a bug it found before (tests/fuzz/crashes/)"
        exit 1
    fi
    if ! "$bin" -max_total_time="$secs" "${flags[@]}" -artifact_prefix="$work/" "${dict[@]}" "$@" \
            "$work/corpus" >"$work/log" 2>&1; then
        tail -n 60 "$work/log"
        saved=$(cd "$work" && ls -d crash-* leak-* timeout-* oom-* 2>/dev/null || true)
        echo "fuzz: fuzz_$target FAILED; input saved in $work:" $saved
        exit 1
    fi
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/log")
    echo "fuzz: fuzz_$target clean for $secs s, $runs runs, $(ls "$work/corpus" | wc -l) inputs"
done
