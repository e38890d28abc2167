#!/usr/bin/python3
"""Writes the Keras weight-file fixtures of e2e_keras.sh, for the network of tiny.cfg, with
Debian's python3-h5py and numpy (no Keras needed: the layouts are written as Keras writes them).

    /usr/bin/python3 tests/keras/make_fixtures.py tests/keras

Files (all with the same weights, drawn from a fixed seed):
  keras2_book.h5      save_weights of Keras 2 with the names of the VGG16 file the book downloads:
                      root attributes layer_names, per layer weight_names "block1_conv1_W_1:0",
                      arrays directly under the layer's group; layers without weights listed too
  keras2_model.h5     model.save of Keras 2: the same under model_weights/, weight_names
                      "block1_conv1/kernel:0" (arrays in a nested group)
  keras3.weights.h5   Keras 3: layers/NAME/vars/0, 1, ...
  wrong_shape.h5      keras2_book.h5 with block2_conv1's kernel for 5 input channels, not 4
  other_net.h5        keras2_book.h5 plus a layer "fc1" the config does not have
  nan_kernel.h5       keras2_book.h5 with block1_conv1's kernel[1,2,0,3] NaN
  inf_bias.h5         keras2_book.h5 with predictions' bias[2] -Inf
  negative_variance.h5  keras2_book.h5 with block2_bn's moving_variance[4] = -0.25
  overflow.h5         keras2_book.h5 with block1_conv1's kernel times 1e37: every value finite,
                      the activations overflow to infinities, then NaN
  image1.png, image2.png  12x12 RGB images (random pixels)
  predictions.txt     the network's class probabilities for each image, computed here with
                      numpy in float64 from the arrays (Keras's preprocess_input "caffe", same
                      and valid convolutions, max pooling, batch normalization with the moving
                      statistics, softmax): what `shardnet predict` must print to 1e-4
  expected.txt        per layer, FNV-1a 64 of its parameters as float32 in shardnet's order
                      (what `shardnet inspect CKPT --config tiny.cfg` prints), and of the
                      state (moving mean, moving variance), computed here from the arrays
"""
import struct
import sys
import zlib

import h5py
import numpy as np

rng = np.random.default_rng(20261127)


def f32(*shape):
    return rng.standard_normal(shape).astype(np.float32) * np.float32(0.2)


# Keras's arrays, in Keras's order, per layer (None: a layer without weights)
LAYERS = [
    ("preprocess", None),
    ("block1_conv1", [("kernel", f32(3, 3, 3, 4)), ("bias", f32(4))]),
    ("block1_pool", None),
    ("block2_conv1", [("kernel", f32(3, 3, 4, 6))]),
    ("block2_bn", [("gamma", f32(6) + 1), ("beta", f32(6)), ("moving_mean", f32(6)),
                   ("moving_variance", np.abs(f32(6)) + np.float32(0.5))]),
    ("flatten", None),
    ("predictions", [("kernel", f32(96, 3) * np.float32(0.002)), ("bias", f32(3))]),
]
BOOK_SUFFIX = {"kernel": "W", "bias": "b", "gamma": "gamma", "beta": "beta",
               "moving_mean": "running_mean", "moving_variance": "running_std"}


def names_attr(names):
    return np.array([n.encode() for n in names], dtype="S")


def write_keras2(g, style, layers):
    g.attrs["layer_names"] = names_attr([n for n, _ in layers])
    g.attrs["backend"] = b"tensorflow"
    g.attrs["keras_version"] = b"2.2.4"
    for name, arrays in layers:
        lg = g.create_group(name)
        wnames = []
        for wname, value in arrays or []:
            path = (f"{name}_{BOOK_SUFFIX[wname]}_1:0" if style == "book"
                    else f"{name}/{wname}:0")
            lg.create_dataset(path, data=value)
            wnames.append(path)
        lg.attrs["weight_names"] = names_attr(wnames)


def write_keras3(f, layers):
    top = f.create_group("layers")
    for name, arrays in layers:
        if not arrays:
            continue
        v = top.create_group(name).create_group("vars")
        for i, (_, value) in enumerate(arrays):
            v.create_dataset(str(i), data=value)


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def write_png(path, img):
    """img (H, W, 3) uint8 as an 8-bit RGB PNG, no filtering."""
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def conv(x, k, same):
    """x (H, W, C), k (KH, KW, C, OC), stride 1"""
    kh, kw = k.shape[:2]
    if same:
        x = np.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    oh, ow = x.shape[0] - kh + 1, x.shape[1] - kw + 1
    y = np.zeros((oh, ow, k.shape[3]))
    for i in range(oh):
        for j in range(ow):
            y[i, j] = np.tensordot(x[i:i + kh, j:j + kw], k, axes=3)
    return y


def forward(img):
    a = dict((n, dict(arrays or [])) for n, arrays in LAYERS)
    x = img.astype(np.float64)[..., ::-1] - np.array([103.939, 116.779, 123.68])
    x = np.maximum(conv(x, a["block1_conv1"]["kernel"].astype(np.float64), True)
                   + a["block1_conv1"]["bias"], 0)
    x = x.reshape(6, 2, 6, 2, 4).max(axis=(1, 3))
    x = conv(x, a["block2_conv1"]["kernel"].astype(np.float64), False)
    bn = a["block2_bn"]
    x = (x - bn["moving_mean"]) / np.sqrt(bn["moving_variance"].astype(np.float64) + 1e-3) \
        * bn["gamma"] + bn["beta"]
    z = x.reshape(-1) @ a["predictions"]["kernel"].astype(np.float64) + a["predictions"]["bias"]
    e = np.exp(z - z.max())
    return e / e.sum()


def main(out):
    with h5py.File(f"{out}/keras2_book.h5", "w") as f:
        write_keras2(f, "book", LAYERS)
    with h5py.File(f"{out}/keras2_model.h5", "w") as f:
        f.attrs["model_config"] = b"{}"
        write_keras2(f.create_group("model_weights"), "keras", LAYERS)
    with h5py.File(f"{out}/keras3.weights.h5", "w") as f:
        write_keras3(f, LAYERS)
    wrong = [(n, a) for n, a in LAYERS]
    wrong[3] = ("block2_conv1", [("kernel", f32(3, 3, 5, 6))])
    with h5py.File(f"{out}/wrong_shape.h5", "w") as f:
        write_keras2(f, "book", wrong)
    with h5py.File(f"{out}/other_net.h5", "w") as f:
        write_keras2(f, "book", LAYERS + [("fc1", [("kernel", f32(3, 2)), ("bias", f32(2))])])
    # damaged copies (after every draw above, so that the files above stay as they were)
    for fname, layer, array, index, value in (
            ("nan_kernel.h5", 1, 0, (1, 2, 0, 3), np.nan),
            ("inf_bias.h5", 6, 1, (2,), -np.inf),
            ("negative_variance.h5", 4, 3, (4,), -0.25)):
        bad = [(n, [(w, a.copy()) for w, a in arrays] if arrays else arrays) for n, arrays in LAYERS]
        bad[layer][1][array][1][index] = value
        with h5py.File(f"{out}/{fname}", "w") as f:
            write_keras2(f, "book", bad)
    huge = [(n, [(w, a * np.float32(1e37) if n == "block1_conv1" and w == "kernel" else a)
                 for w, a in arrays] if arrays else arrays) for n, arrays in LAYERS]
    with h5py.File(f"{out}/overflow.h5", "w") as f:
        write_keras2(f, "book", huge)
    pixels = np.random.default_rng(7)
    with open(f"{out}/predictions.txt", "w") as p:
        for name in ("image1.png", "image2.png"):
            img = pixels.integers(0, 256, (12, 12, 3), dtype=np.uint8)
            write_png(f"{out}/{name}", img)
            probs = forward(img)
            p.write(name + "".join(f" {c} {v:.9f}" for c, v in zip(("cat", "dog", "fox"), probs))
                    + "\n")
    with open(f"{out}/expected.txt", "w") as e:
        for name, arrays in LAYERS:
            # trainable parameters in shardnet's order (batch normalization's moving
            # statistics are its state, not parameters)
            params = [a for w, a in arrays or [] if not w.startswith("moving_")]
            if params:
                data = b"".join(a.astype("<f4").tobytes() for a in params)
                e.write(f"layer {name} {len(data) // 4} {fnv1a64(data):016x}\n")
        # the state: batch normalization's moving mean and variance, after each other
        state = b"".join(a.astype("<f4").tobytes() for _, arrays in LAYERS
                         for w, a in arrays or [] if w.startswith("moving_"))
        e.write(f"state {len(state) // 4} {fnv1a64(state):016x}\n")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else ".")
