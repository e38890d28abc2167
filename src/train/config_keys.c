/* config_keys.c — the config reference table (see config_keys.h), the load-time check that
 * every key read is in it, and its rendering as the key tables of docs/config.md.
 *
 * Defaults are written as the getters resolve them (config.c): integers in decimal, numbers with
 * "%.17g" (0.1 is "0.10000000000000001"), pairs as "3,3", booleans as "true"/"false", choices
 * in the case the getter lists them. The tests compare them with the resolved values byte for
 * byte; the renderer shows numbers in their shortest exact form (0.1). */
#include "config_keys.h"

#include <stdarg.h> // defines: va_list, va_start, va_end
#include <stdio.h>  // defines: snprintf, vsnprintf
#include <stdlib.h> // defines: strtod
#include <string.h> // defines: strcmp, strchr, strlen, strncmp, memcpy

/* Shorthands for the table: a section's opening row, a key with a default, and a key without
 * one (required, or absent means off, or derived). */
#define SECTION(sec, meaning) {sec, NULL, NULL, "", NULL, 0, meaning}
#define KEY(sec, key, def, ctx, meaning) {sec, key, def, ctx, NULL, 0, meaning}
#define NODEF(sec, key, ctx, example, meaning) {sec, key, NULL, ctx, example, 0, meaning}
#define REQUIRED(sec, key, ctx, example, meaning) {sec, key, NULL, ctx, example, 1, meaning}

#define ACTIVATIONS "`linear`, `relu`, `sigmoid`, `tanh` or `softmax` (over the channels)"

const struct sn_config_key sn_config_keys[] = {
    SECTION("model", "The network as a whole: its name, its input and the kernels it runs on."),
    KEY("model", "name", "model", "",
        "The network's name, the title of `summary`. In a config used as a `[base]`, the name "
        "the top's summary shows for the base (there the default is `base`)."),
    NODEF("model", "input_shape", "", "8,8,3",
          "The input as `H,W,C`, such as `28,28,1` or `(3, 3, 128)`; absent, `[data]` "
          "`image_size` and `color_mode` give it."),
    KEY("model", "backend", "auto", "",
        "The kernels of convolutions, pooling and dense layers: `auto` times each layer on "
        "every backend at start and runs the fastest (decisions cached per machine); `blas`, "
        "`onednn`, `winograd` or `ref` (the naive reference) runs every layer on that one."),
    KEY("model", "onednn_layout", "blocked", "",
        "`blocked` keeps oneDNN's blocked layout between consecutive layers that all run on "
        "oneDNN; `nhwc` reorders to NHWC after each. The results are the same bits."),

    SECTION("base",
            "Another config's layers under this one's, the book's `conv_base`: present = on. "
            "Paths are relative to this config's folder."),
    REQUIRED("base", "config", "", "base.cfg",
             "The config whose layers come first (its layer sections and `[model] name`; a "
             "base has no `[base]` of its own)."),
    KEY("base", "checkpoint", "", "",
        "A checkpoint (of the base's config) whose weights the base's layers start from when a "
        "run starts fresh."),
    KEY("base", "trainable", "true", "",
        "`false` freezes every layer of the base (Keras's `conv_base.trainable = False`)."),
    {"base", "freeze_until", "", "", "base_conv", 0,
     "A layer of the base: it and the layers before it are frozen (fine-tuning the last "
     "ones). Not with `trainable = false`."},

    SECTION("data",
            "The images, read as Keras's `image_dataset_from_directory` reads them: one folder "
            "per class, labels in sorted order. Paths are relative to the working directory "
            "(but `class_names_file`'s)."),
    KEY("data", "dir", "", "",
        "A folder holding `train/`, `val/` (or `validation/`) and `test/`, each with one "
        "folder of images per class."),
    KEY("data", "train", "", "",
        "The training split's folder of class folders, instead of `dir/train`."),
    KEY("data", "val", "", "",
        "The validation split's folder, instead of `dir/val` or `dir/validation`."),
    KEY("data", "test", "", "", "The test split's folder, instead of `dir/test`."),
    {"data", "features", "", "", "features.bin", 0,
     "A feature file written by `shardnet extract`: the samples are a base's outputs, trained "
     "on in memory, instead of images. The image keys below are then refused, and so is an "
     "enabled `[augment]`."},
    REQUIRED("data", "image_size", "", "8",
             "`28` or `height,width` such as `180,180`: every image is resized to it. Required "
             "unless `features` is given."),
    KEY("data", "color_mode", "rgb", "", "`rgb` (3 channels) or `grayscale` (1)."),
    KEY("data", "interpolation", "bilinear", "no features",
        "How images are resized: `bilinear`, `nearest` or `area`."),
    KEY("data", "crop_to_aspect_ratio", "false", "no features",
        "`true` crops the largest centred box of `image_size`'s aspect ratio before resizing; "
        "`false` stretches."),
    KEY("data", "label_mode", "int", "no features",
        "`int`, `categorical` or `binary`. Given, it must agree with `[train] loss` "
        "(sparse_categorical_crossentropy, categorical_crossentropy, binary_crossentropy); "
        "absent, the loss decides."),
    {"data", "class_names", "", "no features", "a,b", 0,
     "The classes in label order, separated by commas (over continuation lines if long): the "
     "training split's folders must be exactly these. Absent, its folders, sorted."},
    {"data", "class_names_file", "", "no features", NULL, 0,
     "Instead of `class_names`, a file of the class names in label order, one per line (a name "
     "may hold commas; blank lines are skipped), for models of many classes. Relative to the "
     "config's folder (given by `--set`, to the working directory)."},
    KEY("data", "validation_split", "0", "no features",
        "A fraction of the training images held out for validation, drawn with `seed` (Keras's "
        "`validation_split`). Not with `val`."),
    NODEF("data", "seed", "no features", "1",
          "The seed of `validation_split`'s draw; absent, `[train] seed` if written there "
          "(`validation_split` needs one of them)."),
    KEY("data", "on_bad_image", "skip", "no features",
        "An image that does not decode: `skip` (reported once, counted in the epoch's summary) "
        "or `fail` (the run stops, naming it)."),
    KEY("data", "threads", "0", "no features", "Decoding threads per rank (0: 2)."),
    KEY("data", "queue_depth", "0", "no features", "Batches decoded ahead, per rank (0: 4)."),
    KEY("data", "max_pixels", "89478485", "no features",
        "Images of more pixels are refused before decoding (0: no limit)."),
    KEY("data", "cache", "no", "no features",
        "`memory` keeps every decoded training and validation image in memory (as tf.data's "
        "`cache()`): the first epoch decodes, the later ones only augment. The images are kept "
        "before augmentation, so the results are the same bits as with `no`. Each rank keeps "
        "both splits whole, H x W x C floats an image; a start that would not fit in the memory "
        "available is refused with the figures."),
    KEY("data", "index_cache", "yes", "no features",
        "Where each split folder's file list is kept, which the next start reads instead of "
        "listing the folders again: `yes` (or `home`) in the user's cache folder, "
        "`$XDG_CACHE_HOME/shardnet/index` else `~/.cache/shardnet/index`; `beside` in the split "
        "folder, `<split>/.shardnet-index` (one cache for every node that sees the data); a "
        "folder (a path with a `/`) there; `no` nowhere. Only `beside` writes into the data "
        "folders or reads a `.shardnet-index` found there."),

    SECTION("augment",
            "Keras's random augmentation layers, on the training images: on when something is "
            "set. Each draw is a function of the seed, the epoch and the sample, whatever the "
            "threads and ranks. A factor is `f`, meaning `-f, f`, or `lower, upper`. The layers "
            "run in the order of this table (crop, flip, rotation, zoom, translation, contrast), "
            "as a Keras `Sequential` written in that order. At inference (validation, "
            "`evaluate`, `predict`, `extract`) they are off, but for `crop` and `test_time`."),
    NODEF("augment", "crop", "", "24,24",
          "RandomCrop(height, width), as `H, W`: in training a random H x W window, uniform "
          "over its positions; at inference, and in training for an image smaller than H x W, "
          "the largest centred window of aspect H:W resized to H x W (bilinear). The network's "
          "input is then H x W, not `image_size`. Both in [1, 65536]. Absent: none."),
    KEY("augment", "flip", "none", "",
        "RandomFlip: `none`, `horizontal`, `vertical` or `horizontal_and_vertical` (each axis "
        "flips with probability 1/2)."),
    NODEF("augment", "rotation", "", "0.1",
          "RandomRotation: a factor in fractions of a full turn, positive counter-clockwise. "
          "Absent: none."),
    NODEF("augment", "zoom", "", "0.2",
          "RandomZoom's height factor: positive zooms out, negative in; lower >= -1. "
          "Absent: none."),
    NODEF("augment", "zoom_width", "", "0.2",
          "RandomZoom's width factor; absent, the height's draw (the aspect is kept)."),
    NODEF("augment", "translation", "", "0.1",
          "RandomTranslation's height factor, in fractions of the height; positive moves the "
          "content down. Absent: none."),
    NODEF("augment", "translation_width", "", "0.1",
          "The same across the width; absent, `translation`'s factor."),
    NODEF("augment", "contrast", "", "0.2",
          "RandomContrast: the factor is uniform in [1 - lower, 1 + upper]; `f` means "
          "lower = upper = f; 0 <= lower <= 1. Absent: none."),
    KEY("augment", "fill_mode", "reflect", "",
        "Where a transform reads outside the image: `reflect`, `constant`, `nearest` or `wrap` "
        "(tf's fill modes)."),
    KEY("augment", "fill_value", "0", "",
        "The value outside the image with `fill_mode = constant`."),
    KEY("augment", "test_time", "none", "",
        "`flip`: validation, `evaluate` and `predict` score the mean of the network's logits "
        "over the image and each mirror `flip` draws (one more view, three for "
        "`horizontal_and_vertical`), which costs as many more forward passes: its softmax is "
        "the views' geometric mean probability, normalized; the loss reported is that "
        "prediction's. Needs a `flip`. `none`: the image alone, as Keras."),

    SECTION("train", "How the network is trained: the loss, the optimizer and its schedule, "
                     "batches, epochs and threads."),
    KEY("train", "loss", "sparse_categorical_crossentropy", "",
        "`sparse_categorical_crossentropy` (integer labels), `categorical_crossentropy` "
        "(one-hot) or `binary_crossentropy` (two classes, one output unit). A last softmax or "
        "sigmoid is folded into the loss."),
    KEY("train", "label_smoothing", "0", "",
        "Keras's `label_smoothing`, in [0, 1]: targets y·(1 - ls) + ls/K (K classes; binary: "
        "y·(1 - ls) + ls/2), for the sparse loss too (as its one-hot equivalent). The loss "
        "trained on and reported (loss, val_loss, evaluate) is the smoothed one; accuracy is "
        "not affected."),
    KEY("train", "optimizer", "rmsprop", "",
        "`sgd`, `rmsprop`, `adam` or `adamw` (Keras 3's AdamW: Adam with decoupled weight "
        "decay), with Keras's rules."),
    KEY("train", "learning_rate", "0.001", "",
        "Keras's default per optimizer: 0.01 with `sgd`, 0.001 with `rmsprop`, `adam` and "
        "`adamw`. With `warmup_target`, where the warmup starts."),
    KEY("train", "momentum", "0", "optimizer = sgd", "SGD's momentum."),
    KEY("train", "nesterov", "false", "optimizer = sgd", "Nesterov momentum."),
    KEY("train", "rho", "0.90000000000000002", "optimizer = rmsprop",
        "RMSprop's decay of the mean square."),
    KEY("train", "beta_1", "0.90000000000000002", "optimizer = adam or adamw",
        "Adam's decay of the first moment."),
    KEY("train", "beta_2", "0.999", "optimizer = adam or adamw",
        "Adam's decay of the second moment."),
    KEY("train", "epsilon", "9.9999999999999995e-08", "optimizer = rmsprop, adam or adamw",
        "Added to the denominator (RMSprop's outside the square root, as in tf.keras 2.0-2.10)."),
    KEY("train", "weight_decay", "0", "",
        "Keras 3's `weight_decay`, for every optimizer (0; 0.004 with `adamw`): decoupled, "
        "before each update p -= lr_t · weight_decay · p, lr_t the update's scheduled rate. "
        "Frozen layers are not decayed."),
    {"train", "weight_decay_exclude", NULL, "optimizer = adamw", "bias", 0,
     "Words separated by commas (Keras's `exclude_from_weight_decay(var_names=...)`): a "
     "variable whose name `LAYER/kernel`, `LAYER/bias`, `LAYER/gamma` or `LAYER/beta` (layers "
     "named as `summary` shows them) contains one is not decayed; a word in no name is refused. "
     "With `sgd`, `rmsprop` or `adam` too once `weight_decay` is set (refused while nothing "
     "is decayed)."},
    KEY("train", "lr_schedule", "constant", "",
        "`constant`, `step` (times decay_rate every decay_steps), `exponential` (times "
        "decay_rate^(t / decay_steps)), `cosine` (Keras's CosineDecay: down to alpha times the "
        "peak at decay_steps) or `linear` (straight down to alpha times the peak at "
        "decay_steps); t counts updates after the warmup."),
    KEY("train", "decay_steps", "1000", "lr_schedule = step, exponential, cosine or linear",
        "The schedule's period, in updates; `auto`: the decay ends with training's last update "
        "(epochs × updates per epoch - warmup_steps, counted at each start)."),
    KEY("train", "decay_rate", "0.5", "lr_schedule = step or exponential",
        "The factor per period."),
    KEY("train", "alpha", "0", "lr_schedule = cosine or linear",
        "The decay's floor, as a fraction of the peak (`learning_rate`, or `warmup_target`)."),
    KEY("train", "warmup_steps", "0", "",
        "Updates over which the rate rises linearly before the schedule: from 0 to "
        "`learning_rate` (Keras's lr · t / warmup_steps), or with `warmup_target` from "
        "`learning_rate` to it."),
    NODEF("train", "warmup_target", "lr_schedule = cosine or linear", "0.01",
          "Keras 3 CosineDecay's `warmup_target`: the peak the warmup rises to from "
          "`learning_rate`, and the decay starts from. Absent, the warmup rises from 0."),
    KEY("train", "batch_size", "32", "", "The global batch: each step, the ranks share it."),
    KEY("train", "micro_batch", "16", "",
        "The unit of work: each global batch is cut into micro-batches of this many samples, "
        "each computed whole by one rank, and their gradients summed exactly, so the result "
        "does not depend on the number of ranks. At most ceil(batch_size / micro_batch) ranks "
        "have work in a step."),
    KEY("train", "epochs", "10", "",
        "Epochs to train. Raised, a resumed run goes on (Keras's `initial_epoch`)."),
    KEY("train", "seed", "1337", "",
        "Seeds the initial weights, the shuffling, dropout and augmentation (and "
        "`validation_split`'s draw when written here)."),
    KEY("train", "shuffle", "true", "",
        "Shuffle the training samples each epoch: one global order, the same on any number of "
        "ranks."),
    KEY("train", "threads", "0", "",
        "Compute threads per rank, OpenBLAS's and oneDNN's (0: `SN_THREADS`, else "
        "`OMP_NUM_THREADS`, else `OPENBLAS_NUM_THREADS`, else the node's cores shared among its "
        "ranks)."),
    KEY("train", "steps_per_epoch", "0", "", "Steps per epoch (0: the whole training split)."),
    KEY("train", "validation_batch_size", "0", "",
        "The global batch of validation and evaluation (0: `batch_size`)."),
    KEY("train", "watchdog", "300", "",
        "Seconds a rank may wait in a collective before the job ends as a peer lost (exit 76; "
        "0: never)."),
    KEY("train", "precision", "fp32", "",
        "`fp32`, or `bf16`: convolutions on bfloat16 inputs with fp32 sums (CPUs with AVX-512 "
        "BF16 or AMX; refused elsewhere)."),

    SECTION("checkpoint",
            "Where training writes: `DIR/NAME-last.ckpt` (every epoch), `DIR/NAME-best.ckpt` and "
            "`DIR/history.csv`."),
    KEY("checkpoint", "dir", ".", "",
        "The folder of the checkpoints and `history.csv`, created and probed (written, its "
        "free space checked) before the first epoch."),
    NODEF("checkpoint", "name", "", "run",
          "The checkpoints' file-name prefix; absent, the config file's name without its "
          "extension."),
    KEY("checkpoint", "save_every", "0", "",
        "Steps between saves of `NAME-last.ckpt` within an epoch (0: at the end of each epoch "
        "only)."),
    KEY("checkpoint", "save_best_only", "true", "",
        "`true`: `NAME-best.ckpt` holds the epoch of lowest val_loss; `false`: "
        "`NAME-epochNNN.ckpt` after every epoch (Keras's ModelCheckpoint without "
        "save_best_only)."),

    SECTION("early_stopping",
            "Keras's EarlyStopping: present = on. `restore_best_weights` is refused: "
            "`NAME-best.ckpt` already holds the best epoch."),
    KEY("early_stopping", "monitor", "val_loss", "", "The value watched: `val_loss` only."),
    KEY("early_stopping", "patience", "0", "",
        "Epochs without improvement after which training stops."),
    KEY("early_stopping", "min_delta", "0", "",
        "The least decrease of val_loss that counts as an improvement."),

    SECTION("reduce_lr_on_plateau", "Keras's ReduceLROnPlateau: present = on."),
    KEY("reduce_lr_on_plateau", "monitor", "val_loss", "", "The value watched: `val_loss` only."),
    KEY("reduce_lr_on_plateau", "factor", "0.10000000000000001", "",
        "The learning rate is multiplied by it on a plateau."),
    KEY("reduce_lr_on_plateau", "patience", "10", "",
        "Epochs without improvement before the rate is reduced."),
    KEY("reduce_lr_on_plateau", "min_delta", "0.0001", "",
        "The least decrease of val_loss that counts as an improvement."),
    KEY("reduce_lr_on_plateau", "cooldown", "0", "",
        "Epochs after a reduction before the plateau is watched again."),
    KEY("reduce_lr_on_plateau", "min_lr", "0", "", "The rate is never reduced below it."),

    SECTION(SN_CONFIG_KEYS_ANY_LAYER,
            "The network is its layer sections, in file order: Keras's layers with Keras's "
            "names and defaults. Every layer section takes these two keys."),
    NODEF(SN_CONFIG_KEYS_ANY_LAYER, "name", "", "first",
          "The layer's name in `summary`, in weight files and for `--set NAME.key=value`; "
          "absent, its type numbered among its kind: `conv2d`, `conv2d_1`, ..."),
    KEY(SN_CONFIG_KEYS_ANY_LAYER, "trainable", "true", "",
        "`false` freezes it: no parameter gradients, no updates; a frozen batch normalization "
        "runs in inference mode."),

    SECTION("rescaling", "Keras's Rescaling: out = in · scale + offset."),
    REQUIRED("rescaling", "scale", "", "1/255", "A number, or a fraction such as `1/255`."),
    KEY("rescaling", "offset", "0", "", "Added after scaling."),

    SECTION("preprocess",
            "keras.applications' `preprocess_input` as a layer, to the bit, on RGB pixels of "
            "0-255."),
    KEY("preprocess", "mode", "caffe", "",
        "`caffe` (VGG16's: RGB to BGR, minus the ImageNet channel means), `tf` (x / 127.5 - 1) "
        "or `torch` (x / 255, minus the ImageNet means, over their deviations)."),

    SECTION("conv2d", "Keras's Conv2D: a 2-D convolution over NHWC images."),
    REQUIRED("conv2d", "filters", "", "2", "Output channels."),
    REQUIRED("conv2d", "kernel_size", "", "3",
             "`3` or `height,width` (also `(3, 5)` or `3x5`)."),
    KEY("conv2d", "strides", "1,1", "", "`1` or `height,width`."),
    KEY("conv2d", "padding", "valid", "",
        "`valid` (none) or `same` (the output is the input's size divided by the strides, "
        "rounded up)."),
    KEY("conv2d", "activation", "linear", "", ACTIVATIONS "."),
    KEY("conv2d", "use_bias", "true", "", "Add a bias per output channel."),

    SECTION("maxpooling2d", "Keras's MaxPooling2D."),
    KEY("maxpooling2d", "pool_size", "2,2", "", "`2` or `height,width`."),
    NODEF("maxpooling2d", "strides", "", "2", "`2` or `height,width`; absent, `pool_size`."),
    KEY("maxpooling2d", "padding", "valid", "", "`valid` or `same`."),

    SECTION("batchnormalization",
            "Keras's BatchNormalization over the channels: the batch's statistics in training "
            "(each rank its own), the moving ones in inference."),
    KEY("batchnormalization", "momentum", "0.98999999999999999", "",
        "Of the moving mean and variance."),
    KEY("batchnormalization", "epsilon", "0.001", "", "Added to the variance."),
    KEY("batchnormalization", "center", "true", "", "Learn an offset (beta)."),
    KEY("batchnormalization", "scale", "true", "", "Learn a scale (gamma)."),

    SECTION("activation", "Keras's Activation: an activation as a layer of its own."),
    REQUIRED("activation", "activation", "", "relu", ACTIVATIONS "."),

    SECTION("dropout",
            "Keras's Dropout: in training, each value is dropped with probability `rate` and "
            "the others scaled by 1 / (1 - rate); the same ones on any number of ranks."),
    REQUIRED("dropout", "rate", "", "0.5", "The fraction dropped, in [0, 1)."),

    SECTION("flatten", "Keras's Flatten: (H, W, C) to (H·W·C)."),

    SECTION("globalaveragepooling2d",
            "Keras's GlobalAveragePooling2D: (H, W, C) to (C), the mean of each channel."),

    SECTION("dense",
            "Keras's Dense: on a vector, or on each pixel of an image along its channels. A "
            "classifier ends in a vector: train, evaluate and predict refuse a network that "
            "ends in an image, naming the Dense that gets one (a `[flatten]` missing)."),
    REQUIRED("dense", "units", "", "2", "Outputs."),
    KEY("dense", "activation", "linear", "",
        ACTIVATIONS ". In the last layer, softmax or sigmoid is folded into the loss."),
    KEY("dense", "use_bias", "true", "", "Add a bias per output."),

    {NULL, NULL, NULL, NULL, NULL, 0, NULL},
};

/* ---- lookup and the load-time check -------------------------------------------------------- */

const struct sn_config_key *sn_config_keys_find(const char *type, const char *key)
{
    int layer = !sn_config_is_settings(type);
    for (const struct sn_config_key *k = sn_config_keys; k->section; k++)
        if (k->key && strcmp(k->key, key) == 0 &&
            (strcmp(k->section, type) == 0 ||
             (layer && strcmp(k->section, SN_CONFIG_KEYS_ANY_LAYER) == 0)))
            return k;
    return NULL;
}

int sn_config_keys_check(const struct sn_config *cfg, struct sn_err *err)
{
    for (int i = 0; i < cfg->n_sections; i++) {
        const struct sn_section *s = &cfg->sections[i];
        for (int j = 0; j < s->n_resolved; j++)
            if (sn_config_keys_find(s->type, s->resolved[j].name) == NULL)
                return sn_config_error(cfg, s, NULL, err, SN_EINVAL,
                                       "key '%s' was read but is not in the config reference "
                                       "(src/train/config_keys.c): a program error; HINT: add "
                                       "its row, and docs/config.md with it",
                                       s->resolved[j].name);
    }
    return SN_OK;
}

/* ---- Markdown ------------------------------------------------------------------------------ */

/* Text appended to buf[cap], counting beyond cap as snprintf does. */
struct out {
    char *buf;
    size_t cap, len;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = o->len < o->cap ? o->cap - o->len : 0;
    int w = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
    va_end(ap);
    if (w > 0)
        o->len += (size_t)w;
}

/* One part of a default as shown: a number with a fraction or an exponent in the shortest form
 * that reads back the same ("0.10000000000000001" -> "0.1", "9.9999999999999995e-08" ->
 * "1e-07"), other text (integers included) as is. */
static void put_part(struct out *o, const char *part, size_t n)
{
    char text[128], *end;
    if (n > 0 && n < sizeof text && memchr(part, '.', n) != NULL) {
        memcpy(text, part, n);
        text[n] = '\0';
        double v = strtod(text, &end);
        if (*end == '\0' && end != text)
            for (int p = 1; p <= 17; p++) {
                char shortest[64];
                snprintf(shortest, sizeof shortest, "%.*g", p, v);
                if (strtod(shortest, NULL) == v) {
                    put(o, "%s", shortest);
                    return;
                }
            }
    }
    put(o, "%.*s", (int)n, part);
}

static void put_default(struct out *o, const struct sn_config_key *k)
{
    if (k->required) {
        put(o, "required");
        return;
    }
    if (k->def == NULL || k->def[0] == '\0') {
        put(o, "—");
        return;
    }
    put(o, "`");
    for (const char *p = k->def;;) {
        const char *comma = strchr(p, ',');
        size_t n = comma ? (size_t)(comma - p) : strlen(p);
        put_part(o, p, n);
        if (!comma)
            break;
        put(o, ",");
        p = comma + 1;
    }
    put(o, "`");
}

/* "only with `optimizer = sgd`", "only without `features`". */
static void put_context(struct out *o, const char *context)
{
    if (strncmp(context, "no ", 3) == 0)
        put(o, "*Only without `%s`.* ", context + 3);
    else if (context[0])
        put(o, "*Only with `%s`.* ", context);
}

size_t sn_config_keys_markdown(char *buf, size_t cap)
{
    struct out o = {buf, cap, 0};
    if (cap > 0)
        buf[0] = '\0';
    for (const struct sn_config_key *k = sn_config_keys; k->section; k++) {
        if (k->key == NULL) {
            if (k != sn_config_keys)
                put(&o, "\n");
            if (strcmp(k->section, SN_CONFIG_KEYS_ANY_LAYER) == 0)
                put(&o, "### Every layer\n\n%s\n", k->meaning);
            else
                put(&o, "### `[%s]`\n\n%s\n", k->section, k->meaning);
            if (k[1].section && k[1].key)
                put(&o, "\n| key | default | meaning |\n|---|---|---|\n");
            else
                put(&o, "\nNo keys but those of every layer.\n");
            continue;
        }
        put(&o, "| `%s` | ", k->key);
        put_default(&o, k);
        put(&o, " | ");
        put_context(&o, k->context);
        put(&o, "%s |\n", k->meaning);
    }
    return o.len;
}
