#!/usr/bin/env bash
# The rules of the house, checked over the source tree and the release binary (the layers_*
# checks of tests/CMakeLists.txt add one more: an upward #include does not compile):
# - outside src/cli, no code names stdout or stderr, and none calls exit, _exit, abort, printf,
#   puts, perror or sn_dist_abort: the library returns errors, the command line decides (writing
#   to a FILE * the caller passed in is fine). The one exception is sn_dist_abort itself, in
#   src/dist/dist.c, which ends the job for the command line;
# - each external library's header is included by the one module that owns it (the table below);
# - the release binary reads no SN_TEST_* variable: no such string is in it, and a hook that the
#   test build obeys changes nothing in the release build.
# Each offending line is printed.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

# --- the library neither prints nor exits
# strip.awk prints FILE:LINE: TEXT for each line whose code, with comments and the insides of
# string and character literals blanked, matches the regular expression re
cat > strip.awk <<'EOF'
{
    line = $0; out = ""; n = length(line); i = 1
    while (i <= n) {
        c = substr(line, i, 1); d = substr(line, i, 2)
        if (incom) { if (d == "*/") { incom = 0; i += 2 } else i++; out = out " "; continue }
        if (d == "/*") { incom = 1; i += 2; out = out " "; continue }
        if (d == "//") break
        if (c == "\"" || c == "'") {
            q = c; out = out q; i++
            while (i <= n) {
                c = substr(line, i, 1)
                if (c == "\\") { i += 2; continue }
                i++
                if (c == q) break
            }
            out = out q; continue
        }
        out = out c; i++
    }
    if (out ~ re) print FILENAME ":" FNR ":" line
}
EOF
names_stream='(^|[^A-Za-z0-9_])(stdout|stderr)([^A-Za-z0-9_]|$)'
# a call, not a member (ops->abort) nor a longer name (fprintf, atexit, sn_atomic_abort)
calls_exit='(^|[^A-Za-z0-9_.>])(exit|_exit|abort|printf|puts|perror|sn_dist_abort)[[:space:]]*\('
# sn_dist_abort's own declaration and definition, and its _exit
allowed='^src/dist/dist\.[ch]:[0-9]+:(void sn_dist_abort\(struct sn_dist|[[:space:]]+_exit\(code\);)'
scan() { # RE LAYER: the lines of src/LAYER that match RE
    (cd "$src" && find "src/$2" -name '*.[ch]' | sort |
        xargs awk -v re="$1" -f "$tmp/strip.awk" /dev/null)
}
for layer in base ops nn dist io data train; do
    scan "$names_stream" $layer > "streams_$layer.txt"
    scan "$calls_exit" $layer | grep -Ev "$allowed" > "exits_$layer.txt"
    check "src/$layer names neither stdout nor stderr" test ! -s "streams_$layer.txt"
    check "src/$layer calls no exit, abort, printf, puts, perror, sn_dist_abort" \
        test ! -s "exits_$layer.txt"
    cat "streams_$layer.txt" "exits_$layer.txt"
done
# the checks above can fail: a line that breaks each rule is found
printf 'void f(void)\n{\n    fputs("x", stderr); /* stdout */\n    exit(1);\n}\n' > bad.c
found=$(awk -v re="$names_stream" -f strip.awk bad.c)
check "the check finds stderr in code, not in a comment" \
    test "$found" = "bad.c:3:    fputs(\"x\", stderr); /* stdout */"
found=$(awk -v re="$calls_exit" -f strip.awk bad.c | cut -d: -f2)
check "the check finds a call of exit" test "$found" = 4

# --- each library's header, included by the module that owns it
# HEADER FILE...: the files allowed to include <HEADER>; at least one of them does
owners=(
    "mpi.h src/dist/dist.c"
    "dnnl.h src/ops/ops_dnnl.c"
    "turbojpeg.h src/data/image.c"
    "png.h src/data/image.c"
    "zlib.h src/data/datasets.c"
    "zstd.h src/io/checkpoint.c src/io/featfile.c"
    "hdf5.h src/io/weights.c"
    "cairo.h src/cli/plot.c src/cli/timeline.c"
    "cairo-svg.h src/cli/plot.c"
    "fontconfig/fontconfig.h src/cli/plot.c"
    "jansson.h src/cli/timeline.c"
)
includers() { # HEADER: the files of src/ that include <HEADER>, one a line
    (cd "$src" && grep -rlE "^[[:space:]]*#[[:space:]]*include[[:space:]]*<$1>" src | sort)
}
for row in "${owners[@]}"; do
    read -r header allowed_files <<< "$row"
    found=$(includers "$header")
    strays=$(for f in $found; do [[ " $allowed_files " == *" $f "* ]] || echo "$f"; done)
    check "<$header> is included only by $allowed_files${strays:+ (also by: $(echo $strays))}" \
        test -z "$strays"
    check "<$header> is included by $allowed_files (the table is up to date)" \
        test -n "$found"
done
# OpenBLAS: its backend is one file of src/ops (registry.c, or ops_blas.c once it has its own)
found=$(includers cblas.h)
check "<cblas.h> is included by one file of src/ops (got: $(echo $found))" \
    test "$(echo "$found" | grep -c .)" -eq 1 \
    -a -n "$(echo "$found" | grep -E '^src/ops/(registry|ops_blas)\.c$')"

# --- the release binary reads no SN_TEST_* variable
if command -v strings > /dev/null; then
    strings "$bin" | grep SN_TEST_ > strings.txt
    check "no SN_TEST_ string in the release binary" test ! -s strings.txt
    cat strings.txt
    strings "$hooked" | grep SN_TEST_ > hooked_strings.txt
    check "the hooked binary has them (the check above can fail)" test -s hooked_strings.txt
else
    skip "no SN_TEST_ string in the release binary" "no strings command (binutils)"
fi
# a hook the test build obeys: FORBID_SCAN fails a process that lists a data folder
"$bin" dataset shapes shapes --limit 8 > dataset.out 2>&1 || { cat dataset.out; exit 1; }
cfg=$src/configs/catsdogs_augmented.cfg
sets=(--set data.dir=shapes --set data.image_size=96,96 --set train.batch_size=4)
SN_TEST_FORBID_SCAN=1 "$bin" bench "$cfg" "${sets[@]}" --data-only --iters 1 > release.out 2>&1
rc=$?
check "release binary with SN_TEST_FORBID_SCAN=1: bench --data-only runs (exit $rc)" \
    test $rc -eq 0
[ $rc -eq 0 ] || cat release.out
SN_TEST_FORBID_SCAN=1 "$hooked" bench "$cfg" "${sets[@]}" --data-only --iters 1 > hooked.out 2>&1
rc=$?
check "hooked binary with SN_TEST_FORBID_SCAN=1: exit 1 (got $rc)" test $rc -eq 1
check "hooked binary: the hook's message" contains hooked.out "test hook FORBID_SCAN"

finish
