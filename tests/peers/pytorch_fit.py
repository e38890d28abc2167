#!/usr/bin/python3
"""The peer of `shardnet train`: trains in PyTorch (Debian's python3-torch, 1.13) exactly what a
shardnet config trains, from the same image folders, and says when it reached a test accuracy.

    /usr/bin/python3 tests/peers/pytorch_fit.py configs/mnist_convnet.cfg --ranks 2
    /usr/bin/python3 tests/peers/pytorch_fit.py configs/fashion_fast.cfg --ranks 2 --target 0.93
    /usr/bin/python3 tests/peers/pytorch_fit.py C.cfg --set train.epochs=1 --set data.dir=DIR

It reads the config itself (shardnet's INI: repeated layer sections, ';'/'#' comments, indented
continuation lines, --set SECTION.KEY=VALUE with layers named as `shardnet summary` names them)
and builds the same network, Keras's semantics translated to PyTorch:
  - layers [rescaling] [preprocess] [conv2d] [maxpooling2d] [batchnormalization] [activation]
    [dropout] [flatten] [globalaveragepooling2d] [dense], with their keys and Keras's defaults;
    'same' padding as TensorFlow pads (the extra row and column after); a last softmax or
    sigmoid folded into the loss, as shardnet does;
  - glorot_uniform kernels, zero biases, BatchNormalization gamma 1, beta 0, and its statistics
    as shardnet takes them: those of each micro-batch ([train] micro_batch) in training, biased
    variance, moving = moving * momentum + batch * (1 - momentum) once per micro-batch in the
    global batch's order (Keras's momentum 0.99 and epsilon 1e-3, not PyTorch's 0.1 and 1e-5);
  - the loss with label_smoothing, summed over the global batch and divided by its size;
  - the optimizers with Keras's rules, written out here (not torch.optim): sgd
    (v = momentum v - lr g), rmsprop (epsilon outside the square root, as shardnet's optim.c),
    adam and adamw (epsilon 1e-7, bias correction in the rate), weight_decay decoupled and
    applied first (p -= lr weight_decay p) except to the variables weight_decay_exclude names
    ("conv2d/bias", "batchnormalization/gamma", ...);
  - the schedule per update: constant, step, exponential, cosine, linear; warmup_steps (from 0,
    or from learning_rate to warmup_target), decay_steps = auto; EarlyStopping and
    ReduceLROnPlateau on val_loss;
  - [augment] flip, rotation, zoom, translation (fill_mode, fill_value), contrast and crop
    (RandomCrop: a random window in training, the centred largest window resized in
    validation and test), per sample with torch ops: the same distributions as shardnet's, not
    the same draws; test_time = flip, the mean of the logits over the image and its mirrors in
    validation and test;
  - the data of [data]: its train/ val/ (or validation/) test/ folders of class folders, or
    validation_split with the same draw as shardnet's (so the very same images), resized to
    image_size as tf.image.resize does, in color_mode.
The images are decoded ONCE into memory before the clock starts, which favours PyTorch: shardnet
decodes within its time, every epoch or (with [data] cache = memory) in the first one; here
cache is read and has nothing to do.

--ranks N runs N processes under DistributedDataParallel (gloo, this host), one thread each
(torch.set_num_threads(1)); the global batch_size is cut into micro-batches shared among the
ranks as shardnet shares them. glibc is told to keep freed memory (no mmap, no trim) before torch
is loaded, as in pytorch_bench.py: without it PyTorch re-faults its activations every step.

Each epoch prints one line: the elapsed seconds of training and validation so far (the test
evaluation after each epoch is not counted), loss, accuracy, val_loss, val_accuracy and
test_accuracy. The last line sums up: the wall seconds of the whole run (start-up and decoding
included), the final test accuracy, the test accuracy of the epoch of lowest val_loss (the epoch
whose weights shardnet's NAME-best.ckpt holds), and with --target ACC the elapsed seconds at the
end of the first epoch whose test accuracy reached ACC, or "not reached".

A key this script does not know, or one it cannot honour ([base], [data] features,
precision = bf16), is refused (exit 2) naming the file, line and key: it never trains something
else than the config says. Keys that do not change what is trained (threads, checkpoint
settings, the kernels' backend, the data loader's queue) are accepted and have no effect.
"""
import argparse
import math
import os
import sys
import time

TUNED = {"MALLOC_MMAP_THRESHOLD_": "17179869184", "MALLOC_TRIM_THRESHOLD_": "17179869184",
         "MALLOC_TOP_PAD_": "1073741824"}
if any(os.environ.get(k) != v for k, v in TUNED.items()):
    os.environ.update(TUNED)
    os.execv(sys.executable, [sys.executable] + sys.argv)  # glibc reads these at start

T_START = time.perf_counter()


class ConfigError(Exception):
    """A config or data problem: printed as 'pytorch_fit: error: ...', exit 2."""


# ------------------------------------------------------------------------------------------------
# The config: shardnet's INI syntax (docs/config.md), read here line by line.

SETTINGS = ("model", "base", "data", "augment", "train", "checkpoint", "early_stopping",
            "reduce_lr_on_plateau")
SETTING_KEYS = {
    "model": {"name", "input_shape", "backend", "onednn_layout"},
    "base": {"config", "checkpoint", "trainable", "freeze_until"},
    "data": {"dir", "train", "val", "test", "features", "image_size", "color_mode",
             "interpolation", "crop_to_aspect_ratio", "label_mode", "class_names",
             "class_names_file", "validation_split", "seed", "on_bad_image", "threads",
             "queue_depth", "max_pixels", "index_cache", "cache"},
    "augment": {"flip", "test_time", "rotation", "zoom", "zoom_width", "translation",
                "translation_width",
                "contrast", "fill_mode", "fill_value", "crop"},
    "train": {"loss", "optimizer", "learning_rate", "momentum", "nesterov", "rho", "beta_1",
              "beta_2", "epsilon", "lr_schedule", "decay_steps", "decay_rate", "alpha",
              "warmup_steps", "warmup_target", "batch_size", "micro_batch", "epochs", "seed",
              "shuffle", "threads", "steps_per_epoch", "validation_batch_size", "watchdog",
              "precision", "label_smoothing", "weight_decay", "weight_decay_exclude"},
    "checkpoint": {"dir", "name", "save_every", "save_best_only"},
    "early_stopping": {"monitor", "patience", "min_delta"},
    "reduce_lr_on_plateau": {"monitor", "factor", "patience", "min_delta", "cooldown", "min_lr"},
}
LAYER_KEYS = {
    "rescaling": {"scale", "offset"},
    "preprocess": {"mode"},
    "conv2d": {"filters", "kernel_size", "strides", "padding", "activation", "use_bias"},
    "maxpooling2d": {"pool_size", "strides", "padding"},
    "batchnormalization": {"momentum", "epsilon", "center", "scale"},
    "activation": {"activation"},
    "dropout": {"rate"},
    "flatten": set(),
    "globalaveragepooling2d": set(),
    "dense": {"units", "activation", "use_bias"},
}
EVERY_LAYER = {"name", "trainable"}
ACTIVATIONS = ("linear", "relu", "sigmoid", "tanh", "softmax")


class Section:
    def __init__(self, typ, line, index):
        self.type, self.line, self.index = typ, line, index
        self.keys = {}  # key -> [value, line] (line 0: given by --set)


class Config:
    def __init__(self, path):
        self.path = path
        self.sections = []

    def find(self, typ):
        for s in self.sections:
            if s.type == typ:
                return s
        return None

    def layer_name(self, s):
        """The name `shardnet summary` gives the section: `name`, else type, type_1, ..."""
        if s.type in SETTINGS:
            return s.type
        if s.keys.get("name", [""])[0]:
            return s.keys["name"][0]
        count = sum(1 for o in self.sections[:s.index] if o.type == s.type)
        return s.type if count == 0 else f"{s.type}_{count}"

    def where(self, s, key=None):
        k = s.keys.get(key) if (s is not None and key) else None
        if k is not None and k[1] == 0:
            return f"--set {self.layer_name(s)}.{key}"
        if s is not None and (k is not None or s.line > 0):
            return f"{self.path}:{k[1] if k else s.line}"
        return self.path

    def error(self, s, key, msg):
        if s is None:
            return ConfigError(f"{self.path}: {msg}")
        if key:
            return ConfigError(f"{self.where(s, key)}: [{s.type}] {key}: {msg}")
        return ConfigError(f"{self.where(s)}: [{s.type}]: {msg}")


def strip_comment(text):
    """The text before a ';' or '#' that starts the line or follows a blank."""
    for i, ch in enumerate(text):
        if ch in ";#" and (i == 0 or text[i - 1] in " \t"):
            return text[:i]
    return text


def read_config(path):
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(f"{path}: cannot read the config: {e.strerror}")
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text: is this a config file?")
    cfg = Config(path)
    section, key = None, None  # key: the key a continuation line continues
    for lineno, line in enumerate(text.split("\n"), 1):
        line = line.rstrip("\r")
        stripped = line.strip()
        if not stripped or stripped[0] in ";#":
            continue  # blank and comment lines neither end nor join a value
        if line[0] in " \t" and key is not None:
            part = strip_comment(stripped).strip()
            if part:
                section.keys[key][0] += "\n" + part
            continue
        body = strip_comment(stripped).strip()
        if body.startswith("["):
            end = body.find("]")
            name = body[1:end].strip().lower() if end > 0 else ""
            if end < 0 or body[end + 1:].strip() or not name or \
                    not all(c.isalnum() or c == "_" for c in name):
                raise ConfigError(f"{path}:{lineno}: bad section header '{stripped}' "
                                  "(expected [type], letters, digits and _)")
            if name in SETTINGS:
                old = cfg.find(name)
                if old is not None:
                    raise ConfigError(f"{path}:{lineno}: [{name}] at line {lineno} repeats "
                                      f"[{name}] at line {old.line}; a settings section may "
                                      "appear once")
            section = Section(name, lineno, len(cfg.sections))
            cfg.sections.append(section)
            key = None
            continue
        cut = [i for i in (body.find("="), body.find(":")) if i >= 0]
        if not cut:
            raise ConfigError(f"{path}:{lineno}: '{stripped}' is neither [section] nor "
                              "key = value")
        if section is None:
            raise ConfigError(f"{path}:{lineno}: key before any [section]")
        k, v = body[:min(cut)].strip().lower(), body[min(cut) + 1:].strip()
        if not k:
            raise ConfigError(f"{path}:{lineno}: a line without a key")
        if k in section.keys:
            raise ConfigError(f"{path}:{lineno}: [{section.type}] {k} given twice (line "
                              f"{section.keys[k][1]} and {lineno})")
        section.keys[k] = [v, lineno]
        key = k
    return cfg


def apply_set(cfg, assignment):
    """--set SECTION.KEY=VALUE: a settings section by type (created when absent), a layer by
    its name, or by its type when the network has one layer of it."""
    target, eq, value = assignment.partition("=")
    name, dot, key = target.strip().rpartition(".")
    if not eq or not dot or not name or not key:
        raise ConfigError(f"--set {assignment}: expected SECTION.KEY=VALUE")
    lname, key = name.lower(), key.strip().lower()
    if lname in SETTINGS:
        s = cfg.find(lname)
        if s is None:
            s = Section(lname, 0, len(cfg.sections))
            cfg.sections.append(s)
    else:
        named = [s for s in cfg.sections if cfg.layer_name(s).lower() == lname]
        typed = [s for s in cfg.sections if s.type == lname]
        if len(named) > 1:
            raise ConfigError(f"--set {assignment}: {len(named)} layers are named '{name}'")
        if named:
            s = named[0]
        elif len(typed) == 1:
            s = typed[0]
        elif typed:
            raise ConfigError(f"--set {assignment}: '{name}' is ambiguous ({len(typed)} "
                              f"[{lname}] sections); name one of: "
                              + ", ".join(cfg.layer_name(t) for t in typed))
        else:
            raise ConfigError(f"--set {assignment}: no section or layer named '{name}'")
    s.keys[key] = [value.strip(), 0]


def check_keys(cfg):
    """Every key must be one this script knows; the ones it cannot honour are refused."""
    if not any(s.type not in SETTINGS for s in cfg.sections):
        raise ConfigError(f"{cfg.path}: no layer sections: the network is its [conv2d], "
                          "[dense], ... sections")
    for s in cfg.sections:
        if s.type in SETTINGS:
            known = SETTING_KEYS[s.type]
        elif s.type in LAYER_KEYS:
            known = LAYER_KEYS[s.type] | EVERY_LAYER
        else:
            raise cfg.error(s, None, "unknown section type; this script builds "
                            + ", ".join(f"[{t}]" for t in LAYER_KEYS))
        for k in s.keys:
            if k not in known:
                raise cfg.error(s, k, f"unknown key (the keys of [{s.type}] this script "
                                "understands: " + ", ".join(sorted(known)) + ")")
    if cfg.find("base") is not None:
        raise cfg.error(cfg.find("base"), None, "not supported here: a network on another "
                        "config's layers (pytorch_fit.py builds one config's layers)")
    data = cfg.find("data")
    if data is not None and "features" in data.keys:
        raise cfg.error(data, "features", "not supported here: pytorch_fit.py trains on "
                        "image folders")


# ---- values, as config.c reads them ----

def get(cfg, s, key):
    return None if s is None or key not in s.keys else s.keys[key][0]


def parse_number(text):
    t = text.strip()
    if "/" in t:
        a, b = t.split("/", 1)
        return float(a) / float(b)
    return float(t)


def get_float(cfg, s, key, default, lo, hi):
    v = get(cfg, s, key)
    if v is None:
        return default
    try:
        x = parse_number(v)
    except (ValueError, ZeroDivisionError):
        raise cfg.error(s, key, f"'{v}' is not a number")
    if not (lo <= x <= hi) or math.isnan(x):
        raise cfg.error(s, key, f"{x:g} is out of range [{lo:g}, {hi:g}]")
    return x


def get_int(cfg, s, key, default, lo, hi):
    v = get(cfg, s, key)
    if v is None:
        return default
    try:
        x = int(v.strip(), 10)
    except ValueError:
        raise cfg.error(s, key, f"'{v}' is not an integer")
    if not (lo <= x <= hi):
        raise cfg.error(s, key, f"{x} is out of range [{lo}, {hi}]")
    return x


def get_bool(cfg, s, key, default):
    v = get(cfg, s, key)
    if v is None:
        return default
    t = v.strip().lower()
    if t in ("true", "yes", "on", "1"):
        return True
    if t in ("false", "no", "off", "0"):
        return False
    raise cfg.error(s, key, f"'{v}' is not a boolean (true/false, yes/no, on/off, 1/0)")


def get_choice(cfg, s, key, default, choices):
    v = get(cfg, s, key)
    if v is None:
        return default
    t = v.strip().lower()
    if t not in choices:
        raise cfg.error(s, key, f"'{v}' is not one of: " + ", ".join(choices))
    return t


def split_pair(text):
    t = text.strip()
    if t[:1] in "([" and t[-1:] in ")]":
        t = t[1:-1]
    parts = [p.strip() for p in t.replace("x", ",").split(",")]
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def get_pair(cfg, s, key, default, lo, hi, number=int):
    """'3', '3,5', '(3, 5)', '[3, 5]' or '3x5'; one number means the same twice."""
    v = get(cfg, s, key)
    if v is None:
        return default
    parts = split_pair(v)
    try:
        vals = [number(p) if number is int else parse_number(p) for p in parts]
    except (ValueError, ZeroDivisionError):
        vals = []
    if len(vals) not in (1, 2):
        raise cfg.error(s, key, f"'{v}' is not one number or two")
    if len(vals) == 1:
        vals = vals * 2
    for x in vals:
        if not (lo <= x <= hi):
            raise cfg.error(s, key, f"{x} is out of range [{lo}, {hi}]")
    return tuple(vals)


def get_factor(cfg, s, key, symmetric, lo, hi):
    """[augment]'s factors: f means [-f, f] (or [f, f] without symmetric), else lower, upper."""
    v = get(cfg, s, key)
    if v is None:
        return None
    parts = split_pair(v)
    try:
        vals = [parse_number(p) for p in parts]
    except (ValueError, ZeroDivisionError):
        vals = []
    if len(vals) not in (1, 2):
        raise cfg.error(s, key, f"'{v}' is not a factor f or lower, upper")
    if len(vals) == 1:
        if vals[0] < 0:
            raise cfg.error(s, key, f"single factor {vals[0]:g} must be >= 0")
        vals = [-vals[0] if symmetric else vals[0], vals[0]]
    if vals[0] > vals[1] or vals[0] < lo or vals[1] > hi:
        raise cfg.error(s, key, f"range [{vals[0]:g}, {vals[1]:g}] is not within "
                        f"[{lo:g}, {hi:g}] with lower <= upper")
    return tuple(vals)


# ---- the settings this script trains by ----

class Settings:
    pass


def resolve(cfg, world):
    """Reads [data], [augment], [train] and the callbacks into one Settings."""
    S = Settings()
    d, a, t = cfg.find("data"), cfg.find("augment"), cfg.find("train")
    m = cfg.find("model")
    # [data]
    S.dir = get(cfg, d, "dir") or ""
    S.split_dir = {k: get(cfg, d, k) for k in ("train", "val", "test")}
    if get(cfg, d, "image_size") is None:
        raise cfg.error(d, None, "image_size is required") if d else \
            ConfigError(f"{cfg.path}: no [data] section: image_size is required")
    S.image_size = get_pair(cfg, d, "image_size", None, 1, 1 << 15)
    S.color_mode = get_choice(cfg, d, "color_mode", "rgb", ("rgb", "grayscale"))
    S.channels = 3 if S.color_mode == "rgb" else 1
    S.interpolation = get_choice(cfg, d, "interpolation", "bilinear",
                                 ("bilinear", "nearest", "area"))
    S.crop_to_aspect = get_bool(cfg, d, "crop_to_aspect_ratio", False)
    S.label_mode = get_choice(cfg, d, "label_mode", None, ("int", "categorical", "binary"))
    S.class_names = None
    if get(cfg, d, "class_names") is not None:
        S.class_names = [n.strip() for n in get(cfg, d, "class_names").replace("\n", ",")
                         .split(",") if n.strip()]
    if get(cfg, d, "class_names_file") is not None:
        if S.class_names is not None:
            raise cfg.error(d, "class_names_file", "give class_names or class_names_file, "
                            "not both")
        f = get(cfg, d, "class_names_file")
        if d.keys["class_names_file"][1] > 0 and not os.path.isabs(f):
            f = os.path.join(os.path.dirname(cfg.path) or ".", f)
        try:
            with open(f, encoding="utf-8") as fh:
                S.class_names = [ln.strip() for ln in fh if ln.strip()]
        except OSError as e:
            raise cfg.error(d, "class_names_file", f"{f}: {e.strerror}")
    S.validation_split = get_float(cfg, d, "validation_split", 0.0, 0.0, 1.0)
    if S.validation_split >= 1:
        raise cfg.error(d, "validation_split", "must be below 1")
    S.split_seed = None
    if get(cfg, d, "seed") is not None:
        S.split_seed = get_int(cfg, d, "seed", 0, 0, (1 << 63) - 1)
    elif get(cfg, t, "seed") is not None:
        S.split_seed = get_int(cfg, t, "seed", 0, 0, (1 << 63) - 1)
    if S.validation_split > 0:
        if S.split_seed is None:
            raise cfg.error(d, "validation_split", "validation_split needs a seed, as in "
                            "Keras; HINT: add seed = 1337 to [data]")
        if S.split_dir["val"]:
            raise cfg.error(d, "validation_split", "validation_split and val both give a "
                            "validation set")
    S.on_bad_image = get_choice(cfg, d, "on_bad_image", "skip", ("skip", "fail"))
    get_int(cfg, d, "threads", 0, 0, 1 << 16)
    get_int(cfg, d, "queue_depth", 0, 0, 1 << 16)
    S.max_pixels = get_int(cfg, d, "max_pixels", 89478485, 0, 1 << 62)
    # [augment]
    S.flip = get_choice(cfg, a, "flip", "none",
                        ("none", "horizontal", "vertical", "horizontal_and_vertical"))
    S.rotation = get_factor(cfg, a, "rotation", True, -1, 1)
    S.zoom_h = get_factor(cfg, a, "zoom", True, -1, 10)
    S.zoom_w = get_factor(cfg, a, "zoom_width", True, -1, 10)
    S.translate_h = get_factor(cfg, a, "translation", True, -1, 1)
    S.translate_w = get_factor(cfg, a, "translation_width", True, -1, 1)
    if S.translate_w is None:
        S.translate_w = S.translate_h
    S.contrast = get_factor(cfg, a, "contrast", False, 0, 10)
    if S.contrast is not None and S.contrast[0] > 1:
        raise cfg.error(a, "contrast", f"lower {S.contrast[0]:g} > 1 would allow a negative "
                        "contrast factor")
    S.fill_mode = get_choice(cfg, a, "fill_mode", "reflect",
                             ("reflect", "constant", "nearest", "wrap"))
    S.fill_value = get_float(cfg, a, "fill_value", 0.0, -1e30, 1e30)
    S.crop = get_pair(cfg, a, "crop", None, 1, 1 << 15)
    S.test_time = get_choice(cfg, a, "test_time", "none", ("none", "flip"))
    if S.test_time == "flip" and S.flip == "none":
        raise cfg.error(a, "test_time", "flip averages over the mirrors RandomFlip draws, and "
                        "flip is none")
    nz = lambda r: r is not None and (r[0] != 0 or r[1] != 0)  # noqa: E731
    S.augment = S.flip != "none" or any(nz(r) for r in (S.rotation, S.zoom_h, S.zoom_w,
                                                        S.translate_h, S.translate_w,
                                                        S.contrast)) or S.crop is not None
    # the network's input: image_size, or the crop's window
    S.input_hw = S.crop if S.crop is not None else S.image_size
    if get(cfg, m, "input_shape") is not None:
        shape = split_pair(get(cfg, m, "input_shape"))
        want = [str(x) for x in (*S.input_hw, S.channels)]
        if shape != want:
            raise cfg.error(m, "input_shape", f"{get(cfg, m, 'input_shape')} differs from the "
                            f"images' {','.join(want)} ([data] image_size, color_mode, "
                            "[augment] crop)")
    get_choice(cfg, m, "backend", "auto", ("auto", "blas", "onednn", "winograd", "ref"))
    get_choice(cfg, m, "onednn_layout", "blocked", ("blocked", "nhwc"))
    # [train]
    S.loss = get_choice(cfg, t, "loss", "sparse_categorical_crossentropy",
                        ("sparse_categorical_crossentropy", "categorical_crossentropy",
                         "binary_crossentropy"))
    want_mode = {"sparse_categorical_crossentropy": "int", "categorical_crossentropy":
                 "categorical", "binary_crossentropy": "binary"}[S.loss]
    if S.label_mode is not None and S.label_mode != want_mode:
        raise cfg.error(d, "label_mode", f"label_mode = {S.label_mode} does not agree with "
                        f"[train] loss = {S.loss} (which takes {want_mode})")
    S.label_smoothing = get_float(cfg, t, "label_smoothing", 0.0, 0.0, 1.0)
    opts = ("sgd", "rmsprop", "adam", "adamw")
    S.optimizer = get_choice(cfg, t, "optimizer", "rmsprop", opts)
    S.lr = get_float(cfg, t, "learning_rate", 0.01 if S.optimizer == "sgd" else 0.001, 0, 1e3)
    S.momentum = get_float(cfg, t, "momentum", 0.0, 0, 1)
    S.nesterov = get_bool(cfg, t, "nesterov", False)
    S.rho = get_float(cfg, t, "rho", 0.9, 0, 1)
    S.beta_1 = get_float(cfg, t, "beta_1", 0.9, 0, 1)
    S.beta_2 = get_float(cfg, t, "beta_2", 0.999, 0, 1)
    S.epsilon = get_float(cfg, t, "epsilon", 1e-7, 0, 1)
    S.weight_decay = get_float(cfg, t, "weight_decay",
                               0.004 if S.optimizer == "adamw" else 0.0, 0, 1e3)
    excl = get(cfg, t, "weight_decay_exclude") or ""
    S.wd_exclude = [w.strip() for w in excl.replace("\n", ",").split(",") if w.strip()]
    scheds = ("constant", "step", "exponential", "cosine", "linear")
    S.schedule = get_choice(cfg, t, "lr_schedule", "constant", scheds)
    ds = get(cfg, t, "decay_steps")
    S.decay_auto = ds is not None and ds.strip().lower() == "auto"
    S.decay_steps = 1000 if S.decay_auto else get_int(cfg, t, "decay_steps", 1000, 1, 1 << 30)
    S.decay_rate = get_float(cfg, t, "decay_rate", 0.5, 0, 1e3)
    S.alpha = get_float(cfg, t, "alpha", 0.0, 0, 1)
    S.warmup_steps = get_int(cfg, t, "warmup_steps", 0, 0, 1 << 30)
    S.warmup_target = None
    if get(cfg, t, "warmup_target") is not None:
        S.warmup_target = get_float(cfg, t, "warmup_target", 0.0, 0, 1e3)
    S.batch_size = get_int(cfg, t, "batch_size", 32, 1, 1 << 24)
    S.micro_batch = get_int(cfg, t, "micro_batch", 16, 1, 1 << 24)
    S.epochs = get_int(cfg, t, "epochs", 10, 1, 1 << 20)
    S.seed = get_int(cfg, t, "seed", 1337, 0, (1 << 63) - 1)
    S.shuffle = get_bool(cfg, t, "shuffle", True)
    S.steps_per_epoch = get_int(cfg, t, "steps_per_epoch", 0, 0, 1 << 30)
    S.val_batch = get_int(cfg, t, "validation_batch_size", 0, 0, 1 << 24) or S.batch_size
    get_int(cfg, t, "threads", 0, 0, 1 << 16)
    get_float(cfg, t, "watchdog", 300, 0, 1e9)
    if get_choice(cfg, t, "precision", "fp32", ("fp32", "bf16")) != "fp32":
        raise cfg.error(t, "precision", "bf16 is not done here: pytorch_fit.py trains in fp32")
    # a key the chosen optimizer or schedule does not read is a mistake, as in shardnet
    uses = {"momentum": ({"sgd"}, None), "nesterov": ({"sgd"}, None),
            "rho": ({"rmsprop"}, None), "beta_1": ({"adam", "adamw"}, None),
            "beta_2": ({"adam", "adamw"}, None),
            "epsilon": ({"rmsprop", "adam", "adamw"}, None),
            "decay_steps": (None, {"step", "exponential", "cosine", "linear"}),
            "decay_rate": (None, {"step", "exponential"}),
            "alpha": (None, {"cosine", "linear"})}
    for key, (optims, schedules) in uses.items():
        if get(cfg, t, key) is None:
            continue
        if optims is not None and S.optimizer not in optims:
            raise cfg.error(t, key, f"optimizer = {S.optimizer} does not use it")
        if schedules is not None and S.schedule not in schedules:
            raise cfg.error(t, key, f"lr_schedule = {S.schedule} does not use it")
    # callbacks
    es, rl = cfg.find("early_stopping"), cfg.find("reduce_lr_on_plateau")
    S.es = es is not None
    S.es_patience = get_int(cfg, es, "patience", 0, 0, 1 << 20)
    S.es_min_delta = get_float(cfg, es, "min_delta", 0, 0, 1e9)
    S.rlr = rl is not None
    S.rlr_patience = get_int(cfg, rl, "patience", 10, 0, 1 << 20)
    S.rlr_factor = get_float(cfg, rl, "factor", 0.1, 0, 0.999999)
    S.rlr_min_delta = get_float(cfg, rl, "min_delta", 1e-4, 0, 1e9)
    S.rlr_min_lr = get_float(cfg, rl, "min_lr", 0, 0, 1e3)
    S.rlr_cooldown = get_int(cfg, rl, "cooldown", 0, 0, 1 << 20)
    for sec in (es, rl):
        get_choice(cfg, sec, "monitor", "val_loss", ("val_loss",))
    ck = cfg.find("checkpoint")
    get_int(cfg, ck, "save_every", 0, 0, 1 << 30)
    get_bool(cfg, ck, "save_best_only", True)
    return S


# ------------------------------------------------------------------------------------------------
# The data: listed as shardnet lists it (scan.c, listing.c), decoded once.

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
MASK = (1 << 64) - 1


def splitmix64(x):
    x = (x + 0x9E3779B97F4A7C15) & MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK
    return x ^ (x >> 31)


def hash64(a, b):
    return splitmix64(splitmix64(a & MASK) ^ ((b * 0xD6E8FEB86659FD93) & MASK))


def epoch_order(n, seed, epoch):
    """shardnet's sn_epoch_order (loader.c): Fisher-Yates on xorshift128+ seeded by
    hash64(seed, epoch); epoch -1 is validation_split's draw."""
    s0 = splitmix64(hash64(seed, epoch & MASK))
    s1 = splitmix64(s0 ^ 0x5851F42D4C957F2D)
    if s0 == 0 and s1 == 0:
        s1 = 1
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        a, b = s0, s1  # xorshift128+: s[0], s[1]
        r = (a + b) & MASK
        s0 = b
        a ^= (a << 23) & MASK
        s1 = a ^ b ^ (a >> 18) ^ (b >> 5)
        j = ((r >> 32) * (i + 1)) >> 32
        order[i], order[j] = order[j], order[i]
    return order


def list_images(folder):
    """Image files under folder: its own first, then each subfolder's (not symlinked ones),
    each list sorted by name, hidden entries skipped (as Keras walks a class folder)."""
    files, subdirs = [], []
    with os.scandir(folder) as it:
        for e in it:
            if e.name.startswith("."):
                continue
            if e.is_dir():
                if not e.is_symlink():
                    subdirs.append(e.name)
            elif e.name.lower().endswith(IMAGE_EXTS) and e.name.lower() not in IMAGE_EXTS:
                files.append(e.name)
    out = [os.path.join(folder, f) for f in sorted(files, key=os.fsencode)]
    for sd in sorted(subdirs, key=os.fsencode):
        out += list_images(os.path.join(folder, sd))
    return out


def split_root(S, split):
    """The folder of class folders of a split, as listing.c chooses it."""
    names = {"train": "train", "val": "val", "test": "test"}
    from_split = S.validation_split > 0 and split != "test"
    if from_split:
        if S.split_dir["train"]:
            return S.split_dir["train"]
        if not S.dir:
            raise ConfigError("[data] validation_split needs dir or train")
        root = os.path.join(S.dir, "train")
        return root if os.path.isdir(root) else S.dir
    if S.split_dir[split]:
        return S.split_dir[split]
    if not S.dir:
        raise ConfigError(f"[data] names no images for the {split} split: set dir = <folder "
                          f"with train/ val/ test/>, or {split} = <folder of class folders>")
    root = os.path.join(S.dir, names[split])
    if split == "val" and not os.path.isdir(root):
        alt = os.path.join(S.dir, "validation")
        if not os.path.isdir(alt):
            raise ConfigError(f"{S.dir}: no validation split: neither {S.dir}/val nor "
                              f"{S.dir}/validation exists")
        root = alt
    return root


def list_split(S, split, classes):
    """[(path, label)] of a split; classes None: the training split, which fixes them."""
    root = split_root(S, split)
    if not os.path.isdir(root):
        raise ConfigError(f"data directory {root} does not exist ({split} split)")
    with os.scandir(root) as it:
        folders = sorted((e.name for e in it if not e.name.startswith(".") and e.is_dir()),
                         key=os.fsencode)
    if classes is None:
        if S.class_names is not None:
            if sorted(S.class_names) != sorted(folders):
                raise ConfigError(f"{root}: its class folders ({', '.join(folders)}) are not "
                                  f"[data] class_names ({', '.join(S.class_names)})")
            classes = list(S.class_names)
        else:
            classes = folders
        if not classes:
            raise ConfigError(f"{root} holds no class folders")
    else:
        extra = [f for f in folders if f not in classes]
        if extra:
            raise ConfigError(f"{root}: class folders the training split lacks: "
                              + ", ".join(extra))
    items = []
    for label, name in enumerate(classes):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            continue
        found = list_images(folder)
        if not found and split == "train" and S.validation_split == 0:
            raise ConfigError(f"class folder {folder} has no images (.jpg .jpeg .png .bmp "
                              ".gif)")
        items += [(p, label) for p in found]
    if not items:
        raise ConfigError(f"{root} holds no images in any of its class folders")
    if S.validation_split > 0 and split != "test":
        n = len(items)
        n_val = int(S.validation_split * n)
        if n_val < 1 or n_val >= n:
            raise ConfigError(f"{root}: validation_split = {S.validation_split:g} of {n} "
                              f"images leaves {'validation' if n_val < 1 else 'training'} "
                              "empty")
        order = epoch_order(n, S.split_seed, -1)
        keep = sorted(order[n - n_val:] if split == "val" else order[:n - n_val])
        items = [items[i] for i in keep]
    return items, classes


def smart_box(h, w, th, tw):
    """Keras smart_resize's crop: the largest centred box of the target's aspect ratio."""
    ch = min(h, int(float(w * th) / tw))
    cw = min(w, int(float(h * tw) / th))
    return (h - ch) // 2, (w - cw) // 2, ch, cw


def decode_split(S, items, what, out_hw, rank, world, dist, centre_crop=False):
    """Decodes every image of a split into one tensor (N, C, H, W): uint8 when no image needed
    resizing, else float32 in [0, 255]. Each rank decodes its share of the files, and the ranks
    exchange them (dist: torch.distributed when world > 1). Returns (x, y, skipped)."""
    import numpy as np
    import torch
    import torch.nn.functional as F
    from PIL import Image, UnidentifiedImageError
    H, W = S.image_size
    C = S.channels
    mode = "RGB" if C == 3 else "L"
    n = len(items)
    lo, hi = n * rank // world, n * (rank + 1) // world
    arrays, ok = [], []
    resized = False
    for path, _ in items[lo:hi]:
        try:
            with Image.open(path) as im:
                if S.max_pixels and im.width * im.height > S.max_pixels:
                    raise ValueError(f"{im.width}x{im.height} is over [data] max_pixels")
                if im.format == "JPEG" and im.width >= 2 * W and im.height >= 2 * H:
                    im.draft(mode, (W, H))  # DCT scaling, as shardnet's decoder does
                arr = np.asarray(im if im.mode == mode else im.convert(mode), dtype=np.uint8)
        except (OSError, ValueError, UnidentifiedImageError) as e:
            if S.on_bad_image == "fail":
                raise ConfigError(f"{path}: cannot decode: {e}")
            arrays.append(None)
            ok.append(0)
            continue
        if arr.ndim == 2:
            arr = arr[:, :, None]
        h, w = arr.shape[:2]
        if S.crop_to_aspect:
            y0, x0, ch, cw = smart_box(h, w, H, W)
            arr = arr[y0:y0 + ch, x0:x0 + cw]
        if arr.shape[:2] != (H, W):
            arrays.append(resize(torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1)
                                 .float()[None], (H, W), S.interpolation, F)[0])
            resized = True
        else:
            arrays.append(torch.from_numpy(np.array(arr)).permute(2, 0, 1))
        ok.append(1)
    if world > 1:  # one dtype for all: float32 if any rank resized an image
        flag = torch.tensor([int(resized)])
        dist.all_reduce(flag)
        resized = bool(flag.item())
    dtype = torch.float32 if resized else torch.uint8
    part = -(-n // world)  # rows of the largest share
    mine = torch.zeros(part, C, H, W, dtype=dtype)
    for i, a in enumerate(arrays):
        if a is not None:
            mine[i] = a.to(dtype)
    okt = torch.zeros(part, dtype=torch.uint8)
    okt[:len(ok)] = torch.tensor(ok, dtype=torch.uint8)
    if world > 1:
        xs = [torch.empty_like(mine) for _ in range(world)]
        oks = [torch.empty_like(okt) for _ in range(world)]
        dist.all_gather(xs, mine)
        dist.all_gather(oks, okt)
        sizes = [n * (r + 1) // world - n * r // world for r in range(world)]
        x = torch.cat([t[:k] for t, k in zip(xs, sizes)])
        okt = torch.cat([t[:k] for t, k in zip(oks, sizes)])
    else:
        x, okt = mine[:n], okt[:n]
    keep = okt.bool()
    if not keep.any():
        raise ConfigError(f"no image of the {what} split could be decoded")
    y = torch.tensor([label for _, label in items], dtype=torch.long)
    skipped = int((~keep).sum())
    if skipped:
        x, y = x[keep], y[keep]
    if centre_crop and tuple(x.shape[2:]) != tuple(out_hw):
        x = smart_resize(x.float(), out_hw, F)
    return x.contiguous(), y, skipped


def resize(x, hw, interpolation, F):
    """tf.image.resize on (N, C, h, w) float: half-pixel centres, no antialiasing."""
    if interpolation == "bilinear":
        return F.interpolate(x, size=hw, mode="bilinear", align_corners=False)
    if interpolation == "nearest":
        return F.interpolate(x, size=hw, mode="nearest-exact")
    return F.interpolate(x, size=hw, mode="area")


def smart_resize(x, hw, F):
    """Keras smart_resize (RandomCrop outside training): the largest centred window of hw's
    aspect ratio, resized bilinearly to hw."""
    h, w = x.shape[2:]
    y0, x0, ch, cw = smart_box(h, w, hw[0], hw[1])
    x = x[:, :, y0:y0 + ch, x0:x0 + cw]
    if (ch, cw) != tuple(hw):
        x = F.interpolate(x, size=tuple(hw), mode="bilinear", align_corners=False)
    return x


# ------------------------------------------------------------------------------------------------
# Everything below needs torch.

def build(cfg, S, n_classes, torch, nn, F):
    """The network of cfg's layer sections: (model, names of its variables by parameter,
    the batch-norm layers in order)."""

    def act_fn(name):
        return {"linear": None, "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
                "softmax": lambda z: torch.softmax(z, dim=1)}[name]

    def glorot(t, fan_in, fan_out):
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        with torch.no_grad():
            t.uniform_(-limit, limit)

    def same_pad(n, k, s):
        out = -(-n // s)
        total = max((out - 1) * s + k - n, 0)
        return total // 2, total - total // 2

    class Rescaling(nn.Module):
        def __init__(self, scale, offset):
            super().__init__()
            self.scale, self.offset = scale, offset

        def forward(self, x):
            return x * self.scale + self.offset if self.offset else x * self.scale

    class Preprocess(nn.Module):
        def __init__(self, mode):
            super().__init__()
            self.mode = mode
            if mode == "caffe":
                self.register_buffer("mean", torch.tensor([103.939, 116.779, 123.68])
                                     .view(1, 3, 1, 1))
            elif mode == "torch":
                self.register_buffer("mean", torch.tensor([0.485, 0.456, 0.406])
                                     .view(1, 3, 1, 1))
                self.register_buffer("std", torch.tensor([0.229, 0.224, 0.225])
                                     .view(1, 3, 1, 1))

        def forward(self, x):
            if self.mode == "caffe":
                return x.flip(1) - self.mean
            if self.mode == "tf":
                return x / 127.5 - 1.0
            return (x / 255.0 - self.mean) / self.std

    class Conv(nn.Module):
        """Keras Conv2D; Dense on an image is a 1x1 one."""
        def __init__(self, cin, filters, k, s, pads, act, bias):
            super().__init__()
            sym = pads[0][0] == pads[0][1] and pads[1][0] == pads[1][1]
            self.pad = None if sym else (pads[1][0], pads[1][1], pads[0][0], pads[0][1])
            self.conv = nn.Conv2d(cin, filters, k, s, padding=(pads[0][0], pads[1][0])
                                  if sym else 0, bias=bias)
            glorot(self.conv.weight, k[0] * k[1] * cin, k[0] * k[1] * filters)
            if bias:
                nn.init.zeros_(self.conv.bias)
            self.act = act_fn(act)

        def forward(self, x):
            if self.pad is not None:
                x = F.pad(x, self.pad)
            x = self.conv(x)
            return self.act(x) if self.act else x

    class Dense(nn.Module):
        def __init__(self, fin, units, act, bias):
            super().__init__()
            self.lin = nn.Linear(fin, units, bias=bias)
            glorot(self.lin.weight, fin, units)
            if bias:
                nn.init.zeros_(self.lin.bias)
            self.act = act_fn(act)

        def forward(self, x):
            x = self.lin(x)
            return self.act(x) if self.act else x

    class MaxPool(nn.Module):
        def __init__(self, k, s, pads):
            super().__init__()
            self.pad = None if not any(p for pp in pads for p in pp) else \
                (pads[1][0], pads[1][1], pads[0][0], pads[0][1])
            self.pool = nn.MaxPool2d(k, s)

        def forward(self, x):
            if self.pad is not None:
                x = F.pad(x, self.pad, value=-math.inf)
            return self.pool(x)

    class BatchNorm(nn.Module):
        """Keras BatchNormalization with shardnet's statistics: in training those of each
        micro-batch of `micro` samples; the batch statistics (biased variance) of the step are
        kept in `taken` for the moving averages, which move after the step in the global
        micro-batches' order (Trainer.move_statistics)."""
        def __init__(self, c, momentum, eps, center, scale, micro, trainable):
            super().__init__()
            self.momentum, self.eps, self.micro, self.frozen = momentum, eps, micro, not trainable
            self.gamma = nn.Parameter(torch.ones(c)) if scale else None
            self.beta = nn.Parameter(torch.zeros(c)) if center else None
            self.register_buffer("moving_mean", torch.zeros(c))
            self.register_buffer("moving_variance", torch.ones(c))
            self.taken = []

        def affine(self, y, shape):
            if self.gamma is not None:
                y = y * self.gamma.view(shape)
            if self.beta is not None:
                y = y + self.beta.view(shape)
            return y

        def forward(self, x):
            four = x.dim() == 4
            shape = (1, -1, 1, 1) if four else (1, -1)
            if not self.training or self.frozen:
                inv = torch.rsqrt(self.moving_variance + self.eps)
                return self.affine((x - self.moving_mean.view(shape)) * inv.view(shape), shape)
            if x.shape[0] == 0:  # a rank without rows this step: gamma and beta still
                return self.affine(x, shape)  # take part in the gradients' exchange
            outs = []
            for part in torch.split(x, self.micro):
                dims = (0, 2, 3) if four else (0,)
                var, mean = torch.var_mean(part, dim=dims, unbiased=False, keepdim=True)
                self.taken.append(torch.stack([mean.detach().flatten(),
                                               var.detach().flatten()]))
                outs.append((part - mean) * torch.rsqrt(var + self.eps))
            y = outs[0] if len(outs) == 1 else torch.cat(outs)
            return self.affine(y, shape)

        def move(self, stats):
            """stats (k, 2, C): k micro-batches' (mean, variance), in order."""
            m = self.momentum
            for st in stats:
                self.moving_mean.mul_(m).add_(st[0], alpha=1 - m)
                self.moving_variance.mul_(m).add_(st[1], alpha=1 - m)

    class Lambda(nn.Module):
        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, x):
            return self.fn(x)

    class Dropout(nn.Module):
        def __init__(self, rate):
            super().__init__()
            self.rate = rate

        def forward(self, x):
            return F.dropout(x, self.rate, self.training) if self.rate > 0 else x

    layers = [s for s in cfg.sections if s.type not in SETTINGS]
    # the last activation folded into the loss (shardnet's model.c)
    last = layers[-1]
    last_act = get_choice(cfg, last, "activation", "linear", ACTIVATIONS) \
        if last.type in ("dense", "conv2d", "activation") else "linear"
    want = "sigmoid" if S.loss == "binary_crossentropy" else "softmax"
    if last_act not in ("linear", want):
        raise cfg.error(last, "activation", "the last layer ends in an activation that does not "
                        "match the loss; HINT: use softmax with (sparse_)categorical_"
                        "crossentropy, sigmoid with binary_crossentropy, or linear (logits)")
    shape = (S.channels, *S.input_hw)  # (C, H, W) or (F,)
    mods, names, bns = [], {}, []
    for s in layers:
        lname = cfg.layer_name(s)
        trainable = get_bool(cfg, s, "trainable", True)
        image = len(shape) == 3
        act = get_choice(cfg, s, "activation", "linear", ACTIVATIONS)
        if s is last:
            act = "linear"
        if s.type == "rescaling":
            if get(cfg, s, "scale") is None:
                raise cfg.error(s, None, "scale is required")
            mod = Rescaling(get_float(cfg, s, "scale", 1, -1e30, 1e30),
                            get_float(cfg, s, "offset", 0, -1e30, 1e30))
        elif s.type == "preprocess":
            mode = get_choice(cfg, s, "mode", "caffe", ("caffe", "tf", "torch"))
            if mode != "tf" and (not image or shape[0] != 3):
                raise cfg.error(s, "mode", f"{mode} takes RGB images (3 channels)")
            mod = Preprocess(mode)
        elif s.type in ("conv2d", "maxpooling2d"):
            if not image:
                raise cfg.error(s, None, f"takes an image, gets a vector of {shape[0]}")
            c, h, w = shape
            if s.type == "conv2d":
                for req in ("filters", "kernel_size"):
                    if get(cfg, s, req) is None:
                        raise cfg.error(s, None, f"{req} is required")
                filters = get_int(cfg, s, "filters", 0, 1, 1 << 20)
                k = get_pair(cfg, s, "kernel_size", None, 1, 1 << 12)
                st = get_pair(cfg, s, "strides", (1, 1), 1, 1 << 12)
            else:
                k = get_pair(cfg, s, "pool_size", (2, 2), 1, 1 << 12)
                st = get_pair(cfg, s, "strides", k, 1, 1 << 12)
            padding = get_choice(cfg, s, "padding", "valid", ("valid", "same"))
            if padding == "same":
                pads = (same_pad(h, k[0], st[0]), same_pad(w, k[1], st[1]))
                oh, ow = -(-h // st[0]), -(-w // st[1])
            else:
                pads = ((0, 0), (0, 0))
                oh, ow = (h - k[0]) // st[0] + 1, (w - k[1]) // st[1] + 1
            if oh < 1 or ow < 1:
                raise cfg.error(s, None, f"a {k[0]}x{k[1]} window does not fit the {h}x{w} "
                                "input")
            if s.type == "conv2d":
                bias = get_bool(cfg, s, "use_bias", True)
                mod = Conv(c, filters, k, st, pads, act, bias)
                names[mod.conv.weight] = f"{lname}/kernel"
                if bias:
                    names[mod.conv.bias] = f"{lname}/bias"
                shape = (filters, oh, ow)
            else:
                mod = MaxPool(k, st, pads)
                shape = (c, oh, ow)
        elif s.type == "batchnormalization":
            mod = BatchNorm(shape[0], get_float(cfg, s, "momentum", 0.99, 0, 1),
                            get_float(cfg, s, "epsilon", 0.001, 1e-12, 1e6),
                            get_bool(cfg, s, "center", True), get_bool(cfg, s, "scale", True),
                            S.micro_batch, trainable)
            if mod.gamma is not None:
                names[mod.gamma] = f"{lname}/gamma"
            if mod.beta is not None:
                names[mod.beta] = f"{lname}/beta"
            bns.append(mod)
        elif s.type == "activation":
            if get(cfg, s, "activation") is None:
                raise cfg.error(s, None, "activation is required")
            fn = act_fn(act)
            mod = Lambda(fn if fn else (lambda z: z))
        elif s.type == "dropout":
            if get(cfg, s, "rate") is None:
                raise cfg.error(s, None, "rate is required")
            rate = get_float(cfg, s, "rate", 0, 0, 1)
            if rate >= 1:
                raise cfg.error(s, "rate", "must be below 1")
            mod = Dropout(rate)
        elif s.type == "flatten":
            # Keras flattens (H, W, C): channels last, then flat
            mod = Lambda(lambda z: z.permute(0, 2, 3, 1).flatten(1) if z.dim() == 4 else z)
            shape = (math.prod(shape),)
        elif s.type == "globalaveragepooling2d":
            if not image:
                raise cfg.error(s, None, "takes an image, gets a vector")
            mod = Lambda(lambda z: z.mean((2, 3)))
            shape = (shape[0],)
        elif s.type == "dense":
            if get(cfg, s, "units") is None:
                raise cfg.error(s, None, "units is required")
            units = get_int(cfg, s, "units", 0, 1, 1 << 24)
            bias = get_bool(cfg, s, "use_bias", True)
            if image:  # on each pixel along its channels
                mod = Conv(shape[0], units, (1, 1), (1, 1), ((0, 0), (0, 0)), act, bias)
                names[mod.conv.weight] = f"{lname}/kernel"
                if bias:
                    names[mod.conv.bias] = f"{lname}/bias"
                shape = (units, shape[1], shape[2])
            else:
                mod = Dense(shape[0], units, act, bias)
                names[mod.lin.weight] = f"{lname}/kernel"
                if bias:
                    names[mod.lin.bias] = f"{lname}/bias"
                shape = (units,)
        if not trainable:
            for p in mod.parameters():
                p.requires_grad_(False)
        mods.append(mod)
    if len(shape) != 1:
        raise cfg.error(last, None, "the network ends in an image, not a vector of class "
                        "scores; HINT: add a [flatten] or [globalaveragepooling2d] before the "
                        "last [dense]")
    outputs = shape[0]
    if S.loss == "binary_crossentropy":
        if outputs != 1:
            raise cfg.error(last, None, f"binary_crossentropy needs one output unit, the last "
                            f"layer has {outputs}")
        if n_classes != 2:
            raise ConfigError(f"binary_crossentropy needs exactly two classes, the training "
                              f"split has {n_classes}")
    elif outputs != n_classes:
        raise cfg.error(last, None, f"{outputs} outputs for {n_classes} classes")
    return nn.Sequential(*mods), names, bns


def shard_slice(nb, micro, rank, world):
    """The rows [first, first + count) of a global batch of nb that rank computes: whole
    micro-batches, contiguous runs in rank order (shardnet's sn_shard_slice)."""
    m = max(micro, 1)
    k = (nb + m - 1) // m
    k0, k1 = k * rank // world, k * (rank + 1) // world
    lo, hi = k0 * m, min(k1 * m, nb)
    return lo, max(hi - lo, 0)


def lr_at(S, t, decay_steps, scale):
    """The rate of update t (from 0), Keras's schedules as shardnet's optim.c computes them."""
    if S.warmup_steps > 0 and t < S.warmup_steps:
        if S.warmup_target is None:
            return S.lr * t / S.warmup_steps * scale
        return (S.lr + (S.warmup_target - S.lr) * t / S.warmup_steps) * scale
    peak = S.warmup_target if S.warmup_target is not None else S.lr
    x = (t - S.warmup_steps) / decay_steps
    p = min(x, 1.0)
    if S.schedule == "step":
        peak *= S.decay_rate ** math.floor(x)
    elif S.schedule == "exponential":
        peak *= S.decay_rate ** x
    elif S.schedule == "cosine":
        peak *= (1 - S.alpha) * 0.5 * (1 + math.cos(math.pi * p)) + S.alpha
    elif S.schedule == "linear":
        peak *= 1 - (1 - S.alpha) * p
    return peak * scale


class KerasOptimizer:
    """sgd, rmsprop, adam, adamw with Keras's update rules; decoupled weight decay first."""

    def __init__(self, S, params, names, torch):
        self.S, self.torch, self.t = S, torch, 0
        self.items = []
        for p in params:
            name = names.get(p, "")
            decay = S.weight_decay > 0 and not any(w in name for w in S.wd_exclude)
            slots = {"sgd": 1 if S.momentum > 0 else 0, "rmsprop": 1}.get(S.optimizer, 2)
            self.items.append((p, decay, [torch.zeros_like(p) for _ in range(slots)]))

    def step(self, lr):
        S, torch = self.S, self.torch
        self.t += 1
        with torch.no_grad():
            if S.optimizer in ("adam", "adamw"):
                b1, b2 = S.beta_1, S.beta_2
                lr_t = lr * math.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
            for p, decay, st in self.items:
                g = p.grad
                if g is None:
                    continue
                if decay:
                    p.mul_(1 - lr * S.weight_decay)  # p -= lr * wd * p
                if S.optimizer == "sgd":
                    if not st:
                        p.add_(g, alpha=-lr)
                    else:
                        v = st[0]
                        v.mul_(S.momentum).add_(g, alpha=-lr)
                        if S.nesterov:
                            p.add_(v, alpha=S.momentum).add_(g, alpha=-lr)
                        else:
                            p.add_(v)
                elif S.optimizer == "rmsprop":
                    a = st[0]
                    a.mul_(S.rho).addcmul_(g, g, value=1 - S.rho)
                    p.addcdiv_(g, a.sqrt().add_(S.epsilon), value=-lr)
                else:
                    m, v = st
                    m.mul_(b1).add_(g, alpha=1 - b1)
                    v.mul_(b2).addcmul_(g, g, value=1 - b2)
                    p.addcdiv_(m, v.sqrt().add_(S.epsilon), value=-lr_t)


def augmenter(S, torch, F, gen):
    """Keras's random layers on a batch (N, C, H, W) float in [0, 255], per sample: RandomCrop,
    then flip, rotation, zoom and translation as one affine map resampled bilinearly with the
    fill mode (shardnet's order and conventions, augment.c), then RandomContrast."""
    def uniform(n, r):
        if r is None or (r[0] == 0 and r[1] == 0):
            return None
        return r[0] + (r[1] - r[0]) * torch.rand(n, generator=gen)

    def map_coord(v, n):
        """tf's fill modes for points outside [0, n-1], then clamped inside."""
        last = float(n - 1)
        if n <= 1:
            return torch.zeros_like(v)
        if S.fill_mode == "reflect":
            sz2 = 2.0 * n
            neg = v < 0
            vn = torch.where(v >= -n, -v - 1, sz2 * torch.trunc(-v / sz2) + v)
            vn = torch.where((v < -n) & (vn < -n), vn + sz2, torch.where(v < -n, -vn - 1, vn))
            vp = torch.where(v >= sz2, v - sz2 * torch.trunc(v / sz2), v)
            vp = torch.where(vp >= n, sz2 - vp - 1, vp)
            v = torch.where(neg, vn, torch.where(v > last, vp, v))
        elif S.fill_mode == "wrap":
            sz = last
            vn = v + torch.where(v > -sz, torch.full_like(v, float(n)),
                                 n * (torch.trunc(-v / sz) + 1))
            vp = v - torch.where(v < 2 * sz, torch.full_like(v, float(n)),
                                 n * torch.trunc(v / sz))
            v = torch.where(v < 0, vn, torch.where(v > last, vp, v))
        return v.clamp(0, last)

    def apply(x):
        n = x.shape[0]
        if n == 0:
            return x
        if S.crop is not None:
            ch, cw = S.crop
            h, w = x.shape[2:]
            if h >= ch and w >= cw:
                oy = torch.randint(0, h - ch + 1, (n,), generator=gen)
                ox = torch.randint(0, w - cw + 1, (n,), generator=gen)
                rows = (oy[:, None] + torch.arange(ch))[:, None, :, None]
                cols = (ox[:, None] + torch.arange(cw))[:, None, None, :]
                x = x[torch.arange(n)[:, None, None, None],
                      torch.arange(x.shape[1])[None, :, None, None], rows, cols]
            else:
                x = smart_resize(x, S.crop, F)
        h, w = x.shape[2:]
        fh = fv = None
        if S.flip in ("horizontal", "horizontal_and_vertical"):
            fh = torch.rand(n, generator=gen) < 0.5
        if S.flip in ("vertical", "horizontal_and_vertical"):
            fv = torch.rand(n, generator=gen) < 0.5
        ang = uniform(n, S.rotation)
        zy = uniform(n, S.zoom_h)
        zx = uniform(n, S.zoom_w) if S.zoom_w is not None else zy
        ty = uniform(n, S.translate_h)
        tx = uniform(n, S.translate_w)
        if ang is None and zy is None and zx is None and ty is None and tx is None:
            if fh is not None:
                x = torch.where(fh[:, None, None, None], x.flip(3), x)
            if fv is not None:
                x = torch.where(fv[:, None, None, None], x.flip(2), x)
        else:
            zeros, ones = torch.zeros(n), torch.ones(n)
            ang = ang * 2 * math.pi if ang is not None else zeros
            zy = 1 + zy if zy is not None else ones
            zx = 1 + zx if zx is not None else zy
            ty = ty * h if ty is not None else zeros
            tx = tx * w if tx is not None else zeros
            cs, sn = torch.cos(ang), torch.sin(ang)
            m0, m1, m2, m3 = cs * zx, -sn * zy, sn * zx, cs * zy
            if fh is not None:
                sgn = torch.where(fh, -1.0, 1.0)
                m0, m1 = m0 * sgn, m1 * sgn
            if fv is not None:
                sgn = torch.where(fv, -1.0, 1.0)
                m2, m3 = m2 * sgn, m3 * sgn
            cx, cy = (w - 1) / 2.0, (h - 1) / 2.0
            # input point = centre + M (p - centre - t)
            px = torch.arange(w, dtype=torch.float32)[None, None, :] - cx - tx[:, None, None]
            py = torch.arange(h, dtype=torch.float32)[None, :, None] - cy - ty[:, None, None]
            xs = cx + m0[:, None, None] * px + m1[:, None, None] * py
            ys = cy + m2[:, None, None] * px + m3[:, None, None] * py
            if S.fill_mode != "constant":
                xs, ys = map_coord(xs, w), map_coord(ys, h)
            grid = torch.stack([xs * (2.0 / max(w - 1, 1)) - 1, ys * (2.0 / max(h - 1, 1)) - 1],
                               dim=-1)
            fill = S.fill_value if S.fill_mode == "constant" else 0.0
            src = x - fill if fill else x
            x = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros",
                              align_corners=True)
            if fill:
                x = x + fill
        c = uniform(n, (1 - S.contrast[0], 1 + S.contrast[1])) if S.contrast else None
        if c is not None:
            mean = x.mean((2, 3), keepdim=True)
            x = ((x - mean) * c[:, None, None, None] + mean).clamp(0, 255)
        return x

    return apply


def run(rank, args, S, cfg, result_q):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
    torch.set_num_threads(1)
    world = args.ranks
    dist = None
    if world > 1:
        import torch.distributed as dist
        os.environ["MASTER_ADDR"] = "127.0.0.1"
        os.environ["MASTER_PORT"] = str(args.port)
        dist.init_process_group("gloo", rank=rank, world_size=world)

    def say(*a):
        if rank == 0:
            print(*a, flush=True)

    # ---- the data, decoded once (before the clock) ----
    t0 = time.perf_counter()
    train_items, classes = list_split(S, "train", None)
    val_items, _ = list_split(S, "val", classes)
    test_items, _ = list_split(S, "test", classes)
    xtr, ytr, bad_tr = decode_split(S, train_items, "training", S.input_hw, rank, world, dist)
    xva, yva, bad_va = decode_split(S, val_items, "validation", S.input_hw, rank, world, dist,
                                    centre_crop=True)
    xte, yte, bad_te = decode_split(S, test_items, "test", S.input_hw, rank, world, dist,
                                    centre_crop=True)
    if S.crop is None:
        for x, what in ((xva, "validation"), (xte, "test")):
            assert tuple(x.shape[1:]) == (S.channels, *S.input_hw), what
    say(f"data: {len(ytr)} training, {len(yva)} validation, {len(yte)} test images of "
        f"{len(classes)} classes, {S.channels}x{S.image_size[0]}x{S.image_size[1]}, decoded "
        f"into memory in {time.perf_counter() - t0:.1f} s before the clock starts"
        + (f" ({bad_tr + bad_va + bad_te} undecodable files skipped)"
           if bad_tr + bad_va + bad_te else ""))

    # ---- the network ----
    torch.manual_seed(S.seed)
    model, names, bns = build(cfg, S, len(classes), torch, nn, F)
    fmt = torch.channels_last if args.channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    net = model
    if world > 1:
        net = nn.parallel.DistributedDataParallel(model, broadcast_buffers=False)
    torch.manual_seed(hash64(S.seed, 1 + rank) & ((1 << 63) - 1))  # dropout, per rank
    aug_gen = torch.Generator().manual_seed(hash64(S.seed, 1000 + rank) & ((1 << 63) - 1))
    augment = augmenter(S, torch, F, aug_gen) if S.augment else None
    params = [p for p in model.parameters() if p.requires_grad]
    opt = KerasOptimizer(S, params, names, torch)
    n_train = len(ytr)
    steps = -(-n_train // S.batch_size)
    if 0 < S.steps_per_epoch < steps:
        steps = S.steps_per_epoch
    decay_steps = S.decay_steps
    if S.decay_auto:
        decay_steps = max(S.epochs * steps - S.warmup_steps, 1)
    ls, K = S.label_smoothing, len(classes)

    def loss_sum(logits, y):
        """the loss summed over the rows, and the rows right"""
        if S.loss == "binary_crossentropy":
            z = logits[:, 0]
            target = y.float() * (1 - ls) + 0.5 * ls
            loss = F.binary_cross_entropy_with_logits(z, target, reduction="sum")
            return loss, ((z > 0).long() == y).sum()
        loss = F.cross_entropy(logits, y, reduction="sum", label_smoothing=ls)
        return loss, (logits.argmax(1) == y).sum()

    def move_statistics():
        """Every micro-batch's batch-norm statistics of the step, in the global order, move
        the moving averages the same way on every rank (shardnet's step.c)."""
        if not bns:
            return
        mine = [torch.stack(b.taken) if b.taken else None for b in bns]
        for b in bns:
            b.taken = []
        if world == 1:
            for b, st in zip(bns, mine):
                if st is not None:
                    b.move(st)
            return
        # ranks hold contiguous runs of micro-batches: rank 0's, then rank 1's, ...
        counts = [shard_slice(gn_now[0], S.micro_batch, r, world)[1] for r in range(world)]
        k = [-(-c // S.micro_batch) for c in counts]
        kmax = max(k)
        sizes = [b.moving_mean.numel() for b in bns]
        flat = torch.zeros(kmax, 2 * sum(sizes))
        if k[rank]:
            off = 0
            for st, c in zip(mine, sizes):
                if st is not None:
                    flat[:k[rank], off:off + 2 * c] = st.reshape(st.shape[0], 2 * c)
                off += 2 * c
        got = [torch.empty_like(flat) for _ in range(world)]
        dist.all_gather(got, flat)
        for r in range(world):
            off = 0
            for b, c in zip(bns, sizes):
                if b.frozen:
                    off += 2 * c
                    continue
                b.move(got[r][:k[r], off:off + 2 * c].reshape(k[r], 2, c))
                off += 2 * c

    gn_now = [0]

    # test_time = flip: the image and each mirror flip draws (dims of NCHW)
    views = [()]
    if S.test_time == "flip":
        views += {"horizontal": [(3,)], "vertical": [(2,)],
                  "horizontal_and_vertical": [(3,), (2,), (2, 3)]}[S.flip]

    def predict(xb):
        """the mean of the views' logits"""
        if len(views) == 1:
            return model(xb)
        return torch.stack([model(xb.flip(d) if d else xb) for d in views]).mean(0)

    def evaluate(x, y):
        """loss and accuracy over a split, each rank a contiguous part, summed"""
        model.eval()
        n = len(y)
        lo, hi = n * rank // world, n * (rank + 1) // world
        tot = torch.zeros(3, dtype=torch.float64)
        chunk = max(S.val_batch, 1)
        with torch.no_grad():
            for i in range(lo, hi, chunk):
                xb = x[i:min(i + chunk, hi)].float().contiguous(memory_format=fmt)
                loss, right = loss_sum(predict(xb), y[i:min(i + chunk, hi)])
                tot += torch.tensor([float(loss), float(right), xb.shape[0]],
                                    dtype=torch.float64)
        if world > 1:
            dist.all_reduce(tot)
        model.train()
        return tot[0].item() / max(tot[2].item(), 1), tot[1].item() / max(tot[2].item(), 1)

    say(f"pytorch {torch.__version__}: {world} process{'es' if world > 1 else ''} x 1 thread, "
        f"global batch {S.batch_size} in micro-batches of {S.micro_batch}, {steps} steps per "
        f"epoch, {'NHWC' if args.channels_last else 'NCHW'}, {S.optimizer}, "
        f"{S.schedule} schedule")
    elapsed, history = 0.0, []
    scale, best_val, es_best, es_wait = 1.0, math.inf, math.inf, 0
    rlr_best, rlr_wait, rlr_cool = math.inf, 0, 0
    reached = None
    model.train()
    for epoch in range(S.epochs):
        if world > 1:
            dist.barrier()
        t_epoch = time.perf_counter()
        if S.shuffle:
            g = torch.Generator().manual_seed(hash64(S.seed, epoch) & ((1 << 63) - 1))
            order = torch.randperm(n_train, generator=g)
        else:
            order = torch.arange(n_train)
        sums = torch.zeros(3, dtype=torch.float64)
        for s in range(steps):
            idx = order[s * S.batch_size:(s + 1) * S.batch_size]
            gn = len(idx)
            gn_now[0] = gn
            first, count = shard_slice(gn, S.micro_batch, rank, world)
            mine = idx[first:first + count]
            xb = xtr[mine].float()
            if augment is not None:
                xb = augment(xb)
            xb = xb.contiguous(memory_format=fmt)
            yb = ytr[mine]
            for p in params:
                p.grad = None
            logits = net(xb)
            loss, right = loss_sum(logits, yb)
            # DDP averages the ranks' gradients: world / gn makes it the global batch's mean
            (loss * (world / gn)).backward()
            move_statistics()
            opt.step(lr_at(S, opt.t, decay_steps, scale))
            sums += torch.tensor([loss.item(), float(right), count], dtype=torch.float64)
        if world > 1:
            dist.all_reduce(sums)
        t_train = time.perf_counter() - t_epoch
        val_loss, val_acc = evaluate(xva, yva)
        t_val = time.perf_counter() - t_epoch - t_train
        elapsed += t_train + t_val
        test_loss, test_acc = evaluate(xte, yte)  # not counted
        loss, acc = sums[0].item() / max(sums[2].item(), 1), sums[1].item() / max(sums[2].item(), 1)
        history.append((epoch + 1, elapsed, val_loss, test_acc))
        if reached is None and args.target is not None and test_acc >= args.target:
            reached = (elapsed, epoch + 1)
        say(f"epoch {epoch + 1}/{S.epochs}: elapsed {elapsed:.1f} s (train {t_train:.1f} s, "
            f"val {t_val:.1f} s) - loss {loss:.4f} - accuracy {acc:.4f} - val_loss "
            f"{val_loss:.4f} - val_accuracy {val_acc:.4f} - test_accuracy {test_acc:.4f}")
        # callbacks on val_loss (shardnet's callbacks.c)
        lr_now = lr_at(S, opt.t, decay_steps, scale)
        stop = False
        best_val = min(best_val, val_loss)
        if S.es:
            es_wait += 1
            if val_loss + S.es_min_delta < es_best:
                es_best, es_wait = val_loss, 0
            elif es_wait >= S.es_patience and epoch > 0:
                stop = True
        if S.rlr:
            if rlr_cool > 0:
                rlr_cool, rlr_wait = rlr_cool - 1, 0
            if val_loss < rlr_best - S.rlr_min_delta:
                rlr_best, rlr_wait = val_loss, 0
            elif rlr_cool == 0:
                rlr_wait += 1
                if rlr_wait >= S.rlr_patience and lr_now > S.rlr_min_lr and lr_now > 0:
                    scale *= max(lr_now * S.rlr_factor, S.rlr_min_lr) / lr_now
                    rlr_cool, rlr_wait = S.rlr_cooldown, 0
        if stop:
            say(f"epoch {epoch + 1}: early stopping (val_loss has not improved by more than "
                f"{S.es_min_delta:g} for {S.es_patience} epochs)")
            break
    if rank == 0:
        best = min(history, key=lambda h: h[2])
        result_q.put((history, best, reached))
    if world > 1:
        dist.barrier()
        del net
        dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="Prints one line per epoch, then one summary line "
                                "starting 'pytorch_fit:'. Exit 2 on a config it does not "
                                "understand, 1 on a failure.")
    p.add_argument("config", help="a shardnet config file")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config key, as shardnet's --set (repeatable)")
    p.add_argument("--ranks", type=int, default=1, help="processes (DDP over gloo), 1 thread "
                   "each (default 1)")
    p.add_argument("--target", type=float, default=None, metavar="ACC",
                   help="report the elapsed seconds at which test accuracy first reached ACC")
    p.add_argument("--channels-last", action="store_true",
                   help="NHWC tensors (torch.channels_last) instead of PyTorch's default NCHW")
    p.add_argument("--port", type=int, default=0, help="the gloo rendezvous port on "
                   "127.0.0.1 (default: a free one)")
    args = p.parse_args()
    if args.ranks < 1:
        p.error("--ranks wants a positive integer")
    if args.target is not None and not 0 <= args.target <= 1:
        p.error("--target is an accuracy in [0, 1]")
    try:
        cfg = read_config(args.config)
        for a in args.set:
            apply_set(cfg, a)
        check_keys(cfg)
        S = resolve(cfg, args.ranks)
        for split in ("train", "val", "test"):
            split_root(S, split)
    except ConfigError as e:
        print(f"pytorch_fit: error: {e}", file=sys.stderr)
        sys.exit(2)
    try:
        import torch
        import torch.nn as nn
        import torch.nn.functional as F
        import PIL  # noqa: F401
    except ImportError:
        print("pytorch_fit: error: PyTorch is not installed; HINT: apt-get install python3-torch "
              "python3-pil (Debian 12's PyTorch 1.13)", file=sys.stderr)
        sys.exit(1)
    try:  # the network and the classes checked now, not after the images are decoded
        _, classes = list_split(S, "train", None)
        build(cfg, S, len(classes), torch, nn, F)
    except ConfigError as e:
        print(f"pytorch_fit: error: {e}", file=sys.stderr)
        sys.exit(2)
    if args.port == 0 and args.ranks > 1:
        import socket
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            args.port = sock.getsockname()[1]
    import torch.multiprocessing as mp
    ctx = mp.get_context("spawn")
    q = ctx.SimpleQueue()
    try:
        if args.ranks > 1:
            mp.spawn(run, args=(args, S, cfg, q), nprocs=args.ranks)
        else:
            run(0, args, S, cfg, q)
    except ConfigError as e:
        print(f"pytorch_fit: error: {e}", file=sys.stderr)
        sys.exit(2)
    except mp.ProcessRaisedException as e:
        msg = str(e).strip().splitlines()
        last = msg[-1] if msg else "a rank failed"
        if "ConfigError" in last:
            print(f"pytorch_fit: error: {last.split('ConfigError: ', 1)[-1]}", file=sys.stderr)
            sys.exit(2)
        print(str(e), file=sys.stderr)
        sys.exit(1)
    history, best, reached = q.get()
    wall = time.perf_counter() - T_START
    final = history[-1]
    line = (f"pytorch_fit: wall {wall:.1f} s, {len(history)} epochs in {final[1]:.1f} s of "
            f"training and validation, final test_accuracy {final[3]:.4f}, at lowest val_loss "
            f"(epoch {best[0]}) test_accuracy {best[3]:.4f}")
    if args.target is not None:
        line += (f", target {args.target:.4f} reached at {reached[0]:.1f} s (epoch {reached[1]})"
                 if reached else f", target {args.target:.4f} not reached")
    print(line, flush=True)


if __name__ == "__main__":
    main()
