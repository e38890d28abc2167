#!/usr/bin/env bash
# `shardnet plot`: training curves of two runs (hand-written history CSVs and one written by a
# tiny training) to PNG and SVG, the scaling figure, and the bad inputs: each fails naming the
# file and what is wrong, and leaves no output file behind.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

mkdir -p runs/alpha
cat > runs/alpha/history.csv <<'EOF'
epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds
1,1.011382,0.646400,1.088120,0.580000,0.001,0.89
2,0.627858,0.769200,0.706389,0.749800,0.001,0.86
3,0.540796,0.799200,0.618872,0.756200,0.001,0.85
EOF
# another column order, an extra column, a CRLF line end and an epoch without validation
printf 'seconds,epoch,val_accuracy,val_loss,accuracy,loss,lr\r\n' > beta.csv
printf '1.0,1,0.55,1.47,0.66,0.92,0.003\r\n2.0,2,nan,nan,0.80,0.54,0.003\r\n' >> beta.csv
printf '3.0,3,0.80,0.53,0.85,0.42,0.003\r\n4.0,4,0.82,0.47,0.87,0.37,0.003\r\n' >> beta.csv

# PNG: the 8-byte signature, then IHDR's width and height (big-endian, bytes 16-23)
png_ok() {
    local sig w h
    sig=$(od -An -tx1 -N8 "$1" | tr -d ' \n')
    read -r w h < <(od -An -tu1 -j16 -N8 "$1" |
        awk '{ print ($1*16777216 + $2*65536 + $3*256 + $4), ($5*16777216 + $6*65536 + $7*256 + $8) }')
    [ "$sig" = 89504e470d0a1a0a ] && [ "${w:-0}" -ge 800 ] && [ "${h:-0}" -ge 400 ] || {
        echo "--- $1: signature $sig, ${w}x$h"; return 1; }
}
well_formed() {
    if command -v python3 >/dev/null; then
        python3 -c 'import sys, xml.etree.ElementTree as E; E.parse(sys.argv[1])' "$1"
    else
        skip "$1 parsed as XML" "no python3"; grep -q '</svg>' "$1"
    fi
}
no_output() { [ -z "$(find . -maxdepth 2 -name "$1*")" ] || { echo "--- left behind:"; find . -name "$1*"; return 1; }; }

"$bin" plot runs/alpha/history.csv beta.csv -o curves.png > png.out 2>&1
check "plot to PNG: exit 0" test $? -eq 0
check "plot to PNG: a PNG of the figure's size" png_ok curves.png
# a drawn figure, not a blank page: antialiased curves and text do not compress to nothing
check "plot to PNG: something drawn ($(wc -c < curves.png) bytes)" atleast "$(wc -c < curves.png)" 8000
check "plot to PNG: says what it wrote" contains png.out "curves.png: accuracy and loss curves of 2 runs"

"$bin" plot runs/alpha/history.csv beta.csv -o curves.svg > svg.out 2>&1
check "plot to SVG: exit 0" test $? -eq 0
check "plot to SVG: well-formed XML" well_formed curves.svg
check "plot to SVG: the run directory names its run" contains curves.svg "alpha: training"
check "plot to SVG: the file stem names its run" contains curves.svg "beta: validation"
check "plot to SVG: the panels' titles" contains curves.svg "Training and validation accuracy and loss"
"$bin" plot runs/alpha/history.csv -o One.PNG > /dev/null 2>&1
check "extension in capitals" png_ok One.PNG
"$bin" plot runs/alpha/history.csv runs/alpha/history.csv -o twice.svg > /dev/null 2>&1
check "the same run twice: told apart" contains twice.svg "alpha (2): validation"

# what `shardnet train` writes is what plot reads
"$bin" dataset fashion-mnist fm --limit 300 > dataset.out 2>&1
"$bin" train "$src/configs/mnist_convnet.cfg" --set data.dir=fm --set checkpoint.dir=runs/trained \
    --set train.epochs=2 --set train.threads=1 > train.out 2>&1
check "tiny training: exit 0" test $? -eq 0
"$bin" plot runs/trained/history.csv runs/alpha/history.csv -o trained.svg > trained.out 2>&1
check "a trained run's history.csv: plotted" contains trained.svg "trained: training"

# the scaling figure
mkdir -p strong weak
printf 'mode,ranks,threads,images_per_s,speedup,efficiency\nstrong,1,1,6000,1,1\nstrong,2,1,11000,1.83,0.917\nstrong,4,1,12000,2,0.5\n' > strong/scaling.csv
printf 'ranks,images_per_s,efficiency\n1,6000,1\n2,11800,0.983\n' > weak/scaling.csv
"$bin" plot --scaling strong/scaling.csv weak/scaling.csv -o scaling.svg > scaling.out 2>&1
check "plot --scaling: exit 0" test $? -eq 0
check "plot --scaling: well-formed XML" well_formed scaling.svg
check "plot --scaling: names the runs" contains scaling.svg "strong: measured; strong: ideal (linear); weak: measured"
"$bin" plot --scaling strong/scaling.csv -o scaling.png > /dev/null 2>&1
check "plot --scaling: PNG" png_ok scaling.png

# bad inputs: status 1, a message naming the file and what is wrong, no output file
bad() { # NAME STATUS PATTERN PLOT-ARGS...
    local name=$1 want=$2 pattern=$3; shift 3
    "$bin" plot "$@" -o bad.png > bad.out 2>&1
    local rc=$?
    check "$name: exit $want (got $rc)" test "$rc" -eq "$want"
    check "$name: message" contains bad.out "$pattern"
    check "$name: no output file" no_output bad.png
}
: > empty.csv
printf '\n\n' > blank.csv
printf 'epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n' > header.csv
printf 'epoch,loss,accuracy,lr\n1,0.5,0.8,0.001\n' > nocol.csv
printf 'epoch,loss,accuracy,val_loss,val_accuracy\n1,0.5,0.8,0.6,0.7\n2,abc,0.8,0.6,0.7\n' > word.csv
printf 'epoch,loss,accuracy,val_loss,val_accuracy\n1,0.5,0.8\n' > short.csv
bad "missing file" 1 "missing.csv: cannot open: No such file" runs/alpha/history.csv missing.csv
bad "empty CSV" 1 "empty.csv: empty file; expected a history.csv" empty.csv
bad "blank CSV" 1 "blank.csv: empty file" blank.csv
bad "header only" 1 "header.csv: a header but no rows" header.csv
bad "a column missing" 1 "nocol.csv:1: no column 'val_loss'" nocol.csv
bad "not a number" 1 "word.csv:3: column 'loss': 'abc' is not a number" word.csv
bad "a short row" 1 "short.csv:2: 3 cells, but column 'val_loss' is cell 4" short.csv
bad "a directory" 1 "runs: the CSV file is a directory, not a regular file" runs
bad "history given to --scaling" 1 "history.csv:1: no column 'ranks'" --scaling runs/alpha/history.csv
bad "no CSV" 2 "plot needs at least one CSV file"
"$bin" plot runs/alpha/history.csv -o curves.jpg > ext.out 2>&1
check "unknown extension: exit 1" test $? -eq 1
check "unknown extension: message" contains ext.out "curves.jpg: unknown image type '.jpg'; the output's extension chooses it: .png or .svg"
check "unknown extension: no output file" no_output curves.jpg
"$bin" plot runs/alpha/history.csv -o curves > ext.out 2>&1
check "no extension: message" contains ext.out "curves: unknown image type (no extension)"
"$bin" plot runs/alpha/history.csv > noout.out 2>&1
check "no -o: usage error" test $? -eq 2
check "no -o: message" contains noout.out "plot needs -o FIGURE.png or -o FIGURE.svg"
"$bin" plot runs/alpha/history.csv -o nodir/c.png > nodir.out 2>&1
check "output directory missing: exit 1" test $? -eq 1
check "output directory missing: message" contains nodir.out "nodir/c.png: cannot create the temporary file"
# an existing figure survives a failed plot over it
cp curves.png keep.png
"$bin" plot word.csv -o keep.png > /dev/null 2>&1
check "a failed plot leaves the old figure" cmp -s curves.png keep.png
check "no temporary files anywhere" test -z "$(find . -name '*.tmp.*')"

finish
