#!/usr/bin/env bash
# The documentation says what is there: in README.md, docs/*.md, cluster/README.md and
# tests/fuzz/README.md,
#  - every relative link and image resolves to a file or folder of the tree, and an anchor
#    (#heading) to a heading of the page it names (GitHub's heading ids);
#  - every `shardnet COMMAND ... --option` shown in a code span or a shell code block (the binary
#    written shardnet, build/shardnet or ./build/shardnet, after mpirun or anything else, lines
#    continued with \) names a command of `shardnet --help`, whose `shardnet COMMAND --help`
#    exits 0 and lists each --option as a whole word; `bench --allreduce` is bench's;
#  - every option of launcher/shardnet-run shown is in `shardnet-run --help`, and the shardnet
#    command after its `--` is checked as above;
#  - README.md is an entry page: at most 250 lines, the two commands in its first code block,
#    no measured figure (those are in docs/benchmarks.md), a link to every docs page.
# What is not checked: options of other programs (mpirun's before `shardnet`, cluster/ scripts'),
# placeholders in capitals (`shardnet COMMAND`), code blocks that are not shell (```text).
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"
export LC_ALL=C

pages=()
for f in "$src"/README.md "$src"/docs/*.md "$src"/cluster/README.md "$src"/tests/fuzz/README.md; do
    [ -f "$f" ] && pages+=("${f#"$src"/}")
done
check "the pages exist (README.md and docs/*.md: ${#pages[@]})" test ${#pages[@]} -ge 5

# One pass over a Markdown page, printing one tab-separated record per thing found:
#   H  SLUG                   a heading's id, as GitHub makes it (duplicates get -1, -2, ...)
#   L  LINE TARGET            a link or image target outside code
#   T  LINE TEXT              a command-like text: a code span, or a logical line of a shell
#                             code block (continuation lines joined)
# Paragraphs are joined before code spans are taken, so a span may cross a line end.
read -r -d '' scan_md <<'AWK'
function slug(t,    s, i, c, out) {
    s = tolower(t); out = ""
    for (i = 1; i <= length(s); i++) {
        c = substr(s, i, 1)
        if (c ~ /[a-z0-9_ -]/ || c > "~") out = out c
    }
    gsub(/ /, "-", out)
    return out
}
function heading(t,    s) {
    sub(/^[ ]*#+[ ]*/, "", t); sub(/[ ]+#+[ ]*$/, "", t); sub(/[ ]+$/, "", t)
    s = slug(t)
    if (s in seen) { seen[s]++; s = s "-" seen[s] } else seen[s] = 0
    print "H\t" s
}
# links of a text with its code spans removed
function links(t, line,    rest, tgt) {
    rest = t
    while (match(rest, /\]\([^)]*\)/)) {
        tgt = substr(rest, RSTART + 2, RLENGTH - 3)
        sub(/^[ ]*</, "", tgt); sub(/>.*$/, "", tgt)
        sub(/^[ ]+/, "", tgt); sub(/[ ].*$/, "", tgt)
        if (tgt != "") print "L\t" line "\t" tgt
        rest = substr(rest, RSTART + RLENGTH)
    }
    rest = t
    while (match(rest, /src="[^"]*"/)) {
        print "L\t" line "\t" substr(rest, RSTART + 5, RLENGTH - 6)
        rest = substr(rest, RSTART + RLENGTH)
    }
}
# a paragraph: code spans out (printed as T records), links of the rest
function paragraph(    t, out, n, tick, i, j, k) {
    if (para == "") return
    t = para; out = ""
    while ((i = index(t, "`")) > 0) {
        for (n = 0; substr(t, i + n, 1) == "`"; n++) ;
        tick = substr(t, i, n)
        out = out substr(t, 1, i - 1)
        t = substr(t, i + n)
        # the closing run: the same number of backticks, not part of a longer run
        k = 0
        for (j = 1; j <= length(t); j++) {
            if (substr(t, j, n) == tick && substr(t, j + n, 1) != "`" && (j == 1 || substr(t, j - 1, 1) != "`")) { k = j; break }
        }
        if (k == 0) { out = out tick; continue }
        print "T\t" pline "\t" substr(t, 1, k - 1)
        t = substr(t, k + n)
    }
    links(out t, pline)
    para = ""
}
BEGIN { fence = ""; para = "" }
{
    sub(/\r$/, "")
    if (fence != "") {
        if ($0 ~ "^[ \t]*" fence) {
            if (joined != "") print "T\t" jline "\t" joined
            fence = ""; joined = ""
            next
        }
        if (!shell) next
        if (joined == "") jline = NR
        line = $0
        if (line ~ /\\$/) { sub(/\\$/, "", line); joined = joined line " "; next }
        print "T\t" jline "\t" joined line
        joined = ""
        next
    }
    if (match($0, /^[ \t]*(```+|~~~+)/)) {
        paragraph()
        f = substr($0, RSTART, RLENGTH); sub(/^[ \t]*/, "", f)
        fence = f
        info = substr($0, RSTART + RLENGTH); sub(/^[ ]*/, "", info); sub(/[ ].*$/, "", info)
        shell = (info == "" || info ~ /^(sh|bash|shell|console|zsh)$/)
        joined = ""
        next
    }
    if ($0 ~ /^[ ]?[ ]?[ ]?#+ /) { paragraph(); heading($0); next }
    if ($0 ~ /^[ \t]*$/) { paragraph(); next }
    if (match($0, /^[ ]*\[[^]]+\]:[ ]+[^ ]+/)) {
        t = $0; sub(/^[ ]*\[[^]]+\]:[ ]+/, "", t); sub(/[ ].*$/, "", t)
        print "L\t" NR "\t" t
        next
    }
    if (para == "") { para = $0; pline = NR } else para = para " " $0
}
END { paragraph() }
AWK

# From T records (FILE LINE TEXT), the claims the text makes about commands:
#   S  FILE LINE COMMAND [OPTION]   `shardnet COMMAND`, and each --option given to it
#   R  FILE LINE OPTION             an option given to launcher/shardnet-run
# A command ends at a shell separator (; && || | &), a redirection or a comment.
read -r -d '' scan_cmds <<'AWK'
function clean(w) {
    sub(/^[\[(<"']+/, "", w); sub(/[\])>"',.:;]+$/, "", w)
    return w
}
function option(w) {
    w = clean(w); sub(/=.*$/, "", w)
    return (w ~ /^--[A-Za-z][A-Za-z0-9-]*$/) ? w : ""
}
BEGIN { FS = "\t" }
{
    file = $1; line = $2
    n = split($3, w, /[ \t]+/)
    state = ""    # "" outside, "sn" after shardnet COMMAND, "run" in shardnet-run's options, "run--" after its --
    for (i = 1; i <= n; i++) {
        t = w[i]
        if (t == "") continue
        if (t ~ /^#/) break
        if (t == ";" || t == "&&" || t == "||" || t == "|" || t == "&" || t ~ /^[0-9]*[<>]/) {
            state = ""
            if (t ~ /^[0-9]*[<>]+&?$/) i++    # the redirection's file
            continue
        }
        sep = (t ~ /;$/)
        if (state == "sn") {
            o = option(t)
            if (o != "") print "S\t" file "\t" line "\t" cmd "\t" o
        } else if (state == "run") {
            if (t == "--") state = "run--"
            else { o = option(t); if (o != "") print "R\t" file "\t" line "\t" o }
        } else if (clean(t) ~ /^(\.\/)?(build\/)?shardnet$/ || state == "run--") {
            # the command word: after the binary, or first after shardnet-run's --
            if (state != "run--") { i++; if (i > n) break }
            c = clean(w[i]); state = ""
            if (c ~ /^--?[a-z]/) { print "S\t" file "\t" line "\t-\t" option(c); continue }
            if (c !~ /^[a-z][a-z0-9-]*$/) continue     # a placeholder (COMMAND) or prose
            cmd = c; state = "sn"
            print "S\t" file "\t" line "\t" cmd
        } else if (clean(t) ~ /(^|\/)shardnet-run$/) {
            state = "run"
        }
        if (sep) state = ""
    }
}
AWK

mkdir -p scan help
for f in "${pages[@]}"; do
    out="scan/$(echo "$f" | tr / _)"
    awk "$scan_md" "$src/$f" > "$out"
    awk -F'\t' -v f="$f" '$1 == "T" { print f "\t" $2 "\t" $3 }' "$out" >> texts.tsv
done
awk "$scan_cmds" texts.tsv > claims.tsv

# 1. links and images
# slugs PAGE: the heading ids of a page of the tree (scanned now if it is not one of the pages)
slugs() {
    local scanned
    scanned="scan/$(echo "$1" | tr / _)"
    [ -f "$scanned" ] || awk "$scan_md" "$src/$1" > "$scanned"
    awk -F'\t' '$1 == "H" { print $2 }' "$scanned"
}
link_ok() {   # PAGE TARGET
    local page=$1 target=$2 path anchor dir resolved
    path=${target%%#*} anchor=""
    [[ $target == *"#"* ]] && anchor=${target#*#}
    dir=$(dirname "$page")
    if [ -z "$path" ]; then resolved=$page
    elif [[ $path == /* ]]; then resolved=${path#/}
    else resolved=$dir/$path; fi
    resolved=$(realpath -m --relative-to="$src" "$src/$resolved")
    if [[ $resolved == ../* || ! -e "$src/$resolved" ]]; then
        echo "--- $page: link to $target: no $resolved in the tree"; return 1
    fi
    if [ -n "$anchor" ] && [[ $resolved == *.md ]]; then
        slugs "$resolved" | grep -qxF -- "$anchor" ||
            { echo "--- $page: link to $target: $resolved has no heading #$anchor"; return 1; }
    fi
}
nlinks=0
for f in "${pages[@]}"; do
    while IFS=$'\t' read -r kind line target; do
        [ "$kind" = L ] || continue
        case $target in
            *://*|mailto:*) continue ;;
        esac
        nlinks=$((nlinks + 1))
        check "$f:$line: link $target resolves" link_ok "$f" "$target"
    done < "scan/$(echo "$f" | tr / _)"
done
check "links were found ($nlinks)" test "$nlinks" -ge 10

# 2. shardnet's commands and options
"$bin" --help > help/top.out 2>&1
check "shardnet --help exits 0" test $? -eq 0
awk '/^  [a-z][a-z-]*( |$)/ { print $1 }' help/top.out | sort -u > help/commands
check "shardnet --help lists commands" test "$(wc -l < help/commands)" -ge 10
# word OPTION FILE: OPTION appears in FILE as a whole word (not a prefix of a longer option)
word() { grep -qE -- "(^|[^A-Za-z0-9_-])$1([^A-Za-z0-9_-]|\$)" "$2"; }
shown_at() {  # KIND COMMAND OPTION: where the docs show it, first 3
    awk -F'\t' -v k="$1" -v c="$2" -v o="$3" '$1 == k && $4 == c && $5 == o { print $2 ":" $3 }' claims.tsv |
        head -3 | tr '\n' ' '
}
help_ok() {   # COMMAND: its --help exits 0
    local rc
    "$bin" "$1" --help > "help/$1.out" 2>&1
    rc=$?
    [ $rc -eq 0 ] || { echo "--- shardnet $1 --help exits $rc:"; head -3 "help/$1.out"; return 1; }
}
option_ok() {  # COMMAND OPTION
    if ! word "$2" "help/$1.out"; then
        echo "--- '$2' is not in 'shardnet $1 --help'; shown at $(shown_at S "$1" "$2")"
        return 1
    fi
}
ncmds=0
for cmd in $(awk -F'\t' '$1 == "S" && $4 != "-" { print $4 }' claims.tsv | sort -u); do
    ncmds=$((ncmds + 1))
    if ! grep -qxF "$cmd" help/commands; then
        check "'shardnet $cmd' is a command (shown at $(awk -F'\t' -v c="$cmd" '$1 == "S" && $4 == c { print $2 ":" $3 }' claims.tsv | head -3 | tr '\n' ' '))" false
        continue
    fi
    help_ok "$cmd"
    helped=$?
    check "shardnet $cmd --help exits 0" test $helped -eq 0
    for opt in $(awk -F'\t' -v c="$cmd" '$1 == "S" && $4 == c && $5 != "" { print $5 }' claims.tsv | sort -u); do
        # an error's usage text is no command's help: without one, the option cannot be judged
        if [ $helped -ne 0 ]; then skip "shardnet $cmd $opt" "no 'shardnet $cmd --help'"; continue; fi
        check "shardnet $cmd $opt" option_ok "$cmd" "$opt"
    done
done
check "commands were found in the docs ($ncmds)" test "$ncmds" -ge 8
# an option before any command (--help, --version) is run: it must exit 0
for opt in $(awk -F'\t' '$1 == "S" && $4 == "-" && $5 != "" { print $5 }' claims.tsv | sort -u); do
    check "shardnet $opt exits 0" bash -c '"$1" "$2" > /dev/null 2>&1' _ "$bin" "$opt"
done

# 3. launcher/shardnet-run's options
"$src/launcher/shardnet-run" --help > help/shardnet-run.out 2>&1
check "shardnet-run --help exits 0" test $? -eq 0
for opt in $(awk -F'\t' '$1 == "R" { print $4 }' claims.tsv | sort -u); do
    check "shardnet-run $opt (shown at $(awk -F'\t' -v o="$opt" '$1 == "R" && $4 == o { print $2 ":" $3 }' claims.tsv | head -3 | tr '\n' ' '))" \
        word "$opt" help/shardnet-run.out
done
check "shardnet-run options were found in the docs" \
    test "$(awk -F'\t' '$1 == "R"' claims.tsv | wc -l)" -ge 3

# 4. README.md is an entry page
readme=$src/README.md
lines=$(wc -l < "$readme")
check "README.md has at most 250 lines (it has $lines)" test "$lines" -le 250
awk '/^```/ { if (in_block) exit; in_block = 1; next } in_block' "$readme" > first-block
check "README.md's first code block runs ./launcher/demo" grep -q '^\./launcher/demo' first-block
check "README.md's first code block runs ./launcher/test" grep -q '^\./launcher/test' first-block
grep -nE '[0-9] ?(images/s|GFLOP/s|%)' "$readme" > readme-figures
check "README.md quotes no measured figure (docs/benchmarks.md holds them)" \
    bash -c '[ ! -s readme-figures ] || { cat readme-figures; false; }'
for page in "$src"/docs/*.md; do
    name=docs/$(basename "$page")
    case $name in *-draft.md) continue ;; esac    # a draft waiting to be merged is not a page
    check "README.md links $name" grep -qF "]($name" "$readme"
done

finish
