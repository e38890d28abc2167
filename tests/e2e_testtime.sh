#!/usr/bin/env bash
# [augment] test_time = flip, end to end: validation, evaluate and predict score the mean of the
# network's logits over an image and its mirror, so that
#  - evaluate gives the same bits on a folder and on the folder of its mirrored images, which a
#    plain evaluate does not;
#  - predict's probabilities are the normalized geometric mean of the plain probabilities of the
#    image and its mirror (the softmax of the mean logits);
#  - the validation of training is the same (evaluate on val gives the best epoch's val_loss),
#    and the same on 1 and 2 ranks, where the last validation step leaves rank 1 no image;
#  - a rank killed while the ranks validate with the mirrors ends the job (76), no hang;
#  - test_time = flip without a flip is refused before any work, naming the line.
# Args: SHARDNET SOURCE_DIR TMP_DIR
source "$(dirname "$0")/lib.sh" "$@"

# 170 images a split in batches of 32, micro-batches of 16: the last step's 10 images are all
# rank 0's, rank 1 has none
"$bin" dataset fashion-mnist fm --limit 170 > /dev/null 2>&1 || { echo "dataset failed"; exit 1; }
cat > tta.cfg <<'EOF'
[model]
name = tta

[data]
dir = fm
image_size = 28
color_mode = grayscale

[augment]
flip = horizontal
test_time = flip

[train]
optimizer = adam
learning_rate = 0.003
batch_size = 32
epochs = 2

[rescaling]
scale = 1/255

[conv2d]
filters = 8
kernel_size = 3
activation = relu

[maxpooling2d]
pool_size = 2

[flatten]

[dense]
units = 10
activation = softmax
EOF

# --- training validates with the mean prediction, the same on 1 and 2 ranks
"$bin" train tta.cfg --set checkpoint.dir=one > one.out 2>&1
check "train, 1 rank: exit 0" test $? -eq 0
"${mpirun[@]}" -np 2 "$bin" train tta.cfg --set checkpoint.dir=two > two.out 2>&1
check "train, 2 ranks: exit 0" test $? -eq 0
# the same losses and accuracies (the last column is the epoch's seconds)
check "1 and 2 ranks: the same history" \
    cmp -s <(cut -d, -f1-6 one/history.csv) <(cut -d, -f1-6 two/history.csv)
"$bin" evaluate tta.cfg --split val --checkpoint two/tta-best.ckpt > evalval.out 2>&1
check "evaluate on val: exit 0" test $? -eq 0
check "evaluate on val gives the best epoch's val_loss and val_accuracy" \
    best_epoch_matches two/history.csv evalval.out
"$bin" evaluate tta.cfg --split val --checkpoint two/tta-best.ckpt \
    --set augment.test_time=none > evalval_plain.out 2>&1
check "a plain evaluate on val differs (the mean prediction is another one)" \
    test "$(tail -1 evalval.out)" != "$(tail -1 evalval_plain.out)"

# --- a folder and its mirror image: lossless PNGs of asymmetric shapes, two classes
python3 - <<'PY'
import os, random, struct, zlib

def png(path, rows):
    h, w = len(rows), len(rows[0])
    raw = b"".join(b"\0" + bytes(r) for r in rows)
    def chunk(kind, data):
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff))
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

rng = random.Random(5)
for cls in ("0_T-shirt_top", "1_Trouser"):
    for folder in ("pics", "mirror"):
        os.makedirs(f"{folder}/{cls}", exist_ok=True)
    for i in range(12):
        img = [[rng.randrange(40) for _ in range(28)] for _ in range(28)]
        y0, x0 = rng.randrange(0, 14), rng.randrange(0, 10)
        for y in range(y0, y0 + 12):
            for x in range(x0, x0 + (6 if cls[0] == "1" else 16)):
                img[y][x] = 200 + rng.randrange(55)
        png(f"pics/{cls}/{i:02d}.png", img)
        png(f"mirror/{cls}/{i:02d}.png", [row[::-1] for row in img])
PY
check "the PNG folders written" test -s mirror/1_Trouser/11.png
ev() { "$bin" evaluate tta.cfg --checkpoint two/tta-best.ckpt --data "$@" 2>&1 | tail -1; }
a=$(ev pics) b=$(ev mirror)
check "evaluate, test_time = flip: a folder and its mirror give the same loss ($a | $b)" \
    test -n "$a" -a "$a" = "$b"
a=$(ev pics --set augment.test_time=none) b=$(ev mirror --set augment.test_time=none)
check "a plain evaluate tells the two apart ($a | $b)" test -n "$a" -a "$a" != "$b"

# --- predict: softmax of the mean logits = sqrt(p(image) p(mirror)), normalized over the classes
pr() { "$bin" predict tta.cfg --checkpoint two/tta-best.ckpt --top 10 --digits 9 "$@" 2>/dev/null; }
for img in 0_T-shirt_top/03.png 1_Trouser/07.png; do
    pr pics/$img > p_tta.out
    pr pics/$img --set augment.test_time=none > p_x.out
    pr mirror/$img --set augment.test_time=none > p_m.out
    check "predict $img: the normalized geometric mean of the image's and its mirror's" \
        awk 'function read(f, p,   n, i, line, w) { getline line < f; n = split(line, w, " ");
                 for (i = 2; i < n; i += 2) p[w[i]] = w[i + 1]; return n }
             BEGIN { read("p_tta.out", t); read("p_x.out", x); n = read("p_m.out", m);
                 if (n < 21) exit 1;
                 for (c in x) { g[c] = sqrt(x[c] * m[c]); sum += g[c] }
                 for (c in t) { d = t[c] - g[c] / sum; if (d * d > 1e-8) exit 1 }
                 exit 0 }'
done

# --- a rank killed while the ranks validate with the mirrors: each epoch is one step of 2 images,
# then 170 images twice through a second convolution on the slow reference backend, so nearly
# all of it is validation; shardnet-run ends the job with 76
sed 's/^\[maxpooling2d\]/[conv2d]\nfilters = 16\nkernel_size = 3\nactivation = relu\n\n&/' \
    tta.cfg > heavy.cfg
SHARDNET_BIN=$bin OMPI_MCA_rmaps_base_oversubscribe=1 "$src/launcher/shardnet-run" -n 2 -- \
    train heavy.cfg --set model.backend=ref --set train.batch_size=2 \
    --set train.steps_per_epoch=1 --set train.epochs=50 --set train.watchdog=3 \
    --set checkpoint.dir=dead > dead.out 2>&1 &
job=$!
for _ in $(seq 1 300); do grep -q "Epoch 2" dead.out && break; sleep 0.1; done
check "dead rank: validation under way" contains dead.out "Epoch 2"
start=$(date +%s)
pkill -9 -n -f "checkpoint.dir=dead"
wait $job
rc=$?
check "dead rank: exit 76 (got $rc)" test $rc -eq 76
check "dead rank: within 30 s" test $(( $(date +%s) - start )) -le 30
pkill -9 -f "checkpoint.dir=dead" 2>/dev/null

# --- test_time = flip with no flip: refused before any work
"$bin" train tta.cfg --set augment.flip=none --set checkpoint.dir=bad > bad.out 2>&1
check "no flip: exit 1" test $? -eq 1
check "no flip: the message names the line and the key" \
    contains bad.out "tta.cfg:11: \[augment\] test_time: flip averages over the mirrors"
check "no flip: no checkpoint written" test ! -e bad/tta-best.ckpt

finish
