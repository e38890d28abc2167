/* layer.h — one layer = one file in src/layers/ = one config section + its verbs.
 *
 * A network is a sequence of layers (Keras's Sequential / a chain of the functional API). Each
 * layer type provides a struct sn_layer_type (the verbs) and keeps its settings in the generic
 * struct sn_layer. The model (model.c) owns every buffer; a layer holds views:
 *
 *   params  — one contiguous float buffer for the whole model; a layer's weights are
 *             params[param_off .. param_off + n_params), in the order its type documents
 *             (conv2d: kernel (KH,KW,C,OC) then bias (OC); Keras's order, so Keras weights load).
 *   grads   — same layout as params.
 *   state   — non-trainable statistics (batchnormalization's moving mean/variance), a second
 *             contiguous buffer: never reduced as gradients, never touched by the optimizer.
 *   aux     — per-batch memory the layer keeps between forward and backward (maxpool argmax,
 *             dropout mask, batchnorm normalised input), aux_per_sample bytes per sample.
 *   scratch — working memory shared by all layers within a step, scratch_bytes at most.
 *
 * Shapes are per sample: (H,W,C) for images, (1,1,C) with rank 1 for vectors. */
#ifndef SN_LAYER_H
#define SN_LAYER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "ops.h"
#include "rng.h"

struct sn_shape {
    int h, w, c;
    int rank; /* 3 for (H,W,C), 1 for (C) */
};

static inline size_t sn_shape_size(struct sn_shape s) { return (size_t)s.h * s.w * s.c; }

/* The parts of a layer's arithmetic that may run on different backends: a convolution's
 * forward, input gradient and weight gradient are independent computations, each timed and
 * chosen apart by [model] backend = auto; every other layer runs its backward on its forward's
 * backend (a pooling's backward reads what its forward wrote). */
enum sn_part { SN_PART_FORWARD = 0, SN_PART_BWD_DATA, SN_PART_BWD_WEIGHTS, SN_N_PARTS };

/* What forward/backward need beyond their tensors. */
struct sn_step_ctx {
    const struct sn_ops *ops;   /* the backend of the layer's forward, and of every part of a
                                   layer that does not choose its parts apart */
    const struct sn_ops *ops_bwd_data, *ops_bwd_weights; /* a convolution's backward parts
                                   (NULL: ops); the model sets all three per layer (model.h:
                                   sn_layer_ops) */
    int nhwc;                   /* tensors are NHWC whatever the layer's blk_in and blk_out say
                                   (timing compares backends on the layout all of them take) */
    int no_weight_grads;        /* backward computes the input gradient only (timing it alone) */
    float *batch_state;         /* training: a layer with moving statistics (BatchNormalization)
                                   writes this batch's statistics here, at its state_off, in the
                                   layout of the model's state, instead of moving its own: the
                                   step moves them once every micro-batch's are known, in order
                                   (sn_model_move_state). NULL: it moves them at once. */
    void *scratch;              /* shared scratch, model->scratch_bytes */
    int training;               /* dropout active, batchnorm uses batch statistics */
    uint64_t seed;              /* run seed */
    uint64_t step;              /* global step (or epoch*K+step): dropout masks depend on it */
    const int64_t *sample_ids;  /* (N) global index of each row of the batch: dropout masks
                                   depend on it, so 1 rank and N ranks draw the same masks */
};

struct sn_layer;

struct sn_layer_type {
    const char *section;     /* config section name: "conv2d" */
    const char *keras_name;  /* for summary: "Conv2D" */
    /* Reads this layer's keys from its section, checks them against the input shape, and sets
     * out and those of n_params, n_state, aux_per_sample and scratch_bytes (for max_batch
     * samples) that are not zero: the layer arrives zeroed, with type, name and in set.
     * Errors name the config file and line (sn_config_error). */
    int (*configure)(struct sn_layer *l, const struct sn_config *cfg, const struct sn_section *s,
                     struct sn_shape in, int max_batch, struct sn_err *err);
    /* Initialises params (and state) with Keras's defaults, e.g. glorot_uniform + zeros;
     * NULL for a layer without either. */
    void (*init_params)(struct sn_layer *l, struct sn_rng *rng);
    /* in (N, in) -> out (N, out). */
    void (*forward)(struct sn_layer *l, const float *in, float *out, int n,
                    const struct sn_step_ctx *ctx);
    /* dout (N, out) -> din (N, in) if din != NULL; grads += . `in` and `out` are the forward's.
     * dout may be overwritten: nothing reads it after (a layer with an activation turns it into
     * the gradient before the activation in place, sparing a pass over fresh memory). */
    void (*backward)(struct sn_layer *l, const float *in, const float *out, float *dout,
                     float *din, int n, const struct sn_step_ctx *ctx);
    /* Moves the layer's statistics (state) towards those of one batch, batch (n_state), as
     * written through ctx->batch_state; NULL for a layer without moving statistics. */
    void (*move_state)(struct sn_layer *l, const float *batch);
};

/* Settings of every layer type; each type uses its own member. */
struct sn_layer_conf {
    /* conv2d, dense */
    int filters;          /* conv2d filters / dense units */
    int kh, kw, sh, sw;   /* kernel_size, strides; also pool_size/strides for pooling */
    int same;             /* padding = same */
    int use_bias;
    enum sn_act act;      /* activation (conv2d, dense, activation) */
    /* rescaling */
    float scale, offset;
    /* dropout */
    float rate;
    /* batchnormalization */
    float momentum, epsilon;
    int bn_center, bn_scale;
    /* preprocess: caffe, tf or torch (preprocess.c) */
    int mode;
};

struct sn_layer {
    const struct sn_layer_type *type;
    char name[SN_CFG_NAME_MAX];   /* Keras-style: conv2d, conv2d_1, ... (or `name =` key) */
    int index;                    /* position in the model */
    int line;                     /* config line of its section, for messages */
    struct sn_layer_conf conf;
    int trainable;                /* `trainable = false` freezes it: no grads, no update */
    const struct sn_ops *ops[SN_N_PARTS]; /* views: the backend chosen for each part ([model]
                                     backend = auto); NULL: the model's for the forward, the
                                     forward's for a backward part. Read it through
                                     sn_layer_ops (model.h), never directly */
    int blk_in, blk_out;          /* in, out (and their gradients) are in oneDNN's blocked
                                     layout, not NHWC: set by sn_model_plan_layouts */

    struct sn_shape in, out;
    size_t n_params, param_off;   /* trainable-or-frozen weights: count, offset in params */
    size_t n_state, state_off;    /* non-trainable statistics */
    size_t aux_per_sample;        /* bytes of aux per sample */
    size_t scratch_bytes;         /* bytes of shared scratch needed at max batch */

    float *p, *g;                 /* views: params + param_off, grads + param_off */
    float *state;                 /* view: model state + state_off */
    void *aux;                    /* view into the model arena: aux_per_sample * max_batch */

    /* Set on the last layer by the model when the loss takes logits: forward stops before the
     * activation (softmax/sigmoid are folded into the loss, for numerical stability). */
    int logits_out;
};

/* All layer types, NULL-terminated. */
extern const struct sn_layer_type *const sn_layer_types[];
const struct sn_layer_type *sn_layer_type_find(const char *section);

/* Shared by the layer files: parse "activation" (linear|relu|sigmoid|tanh|softmax). */
int sn_layer_parse_activation(const struct sn_config *cfg, const struct sn_section *s,
                              const char *def, enum sn_act *out, struct sn_err *err);
/* glorot_uniform for a kernel with fan_in/fan_out. */
void sn_glorot_uniform(float *w, size_t n, int fan_in, int fan_out, struct sn_rng *rng);
/* An error naming file:line unless the section has `key` (Keras's required arguments:
 * conv2d filters/kernel_size, dense units, ...). */
int sn_layer_require(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                     struct sn_err *err);
/* The arithmetic of conv2d layer l at batch n, as the backends take it. */
void sn_conv2d_desc(const struct sn_layer *l, int n, struct sn_conv_desc *d);
/* Byte counts of scratch partitions are rounded up to 64 so that every part stays aligned. */
static inline size_t sn_align64(size_t bytes) { return (bytes + 63) & ~(size_t)63; }

extern const struct sn_layer_type sn_layer_rescaling, sn_layer_conv2d, sn_layer_maxpooling2d,
    sn_layer_flatten, sn_layer_dense, sn_layer_dropout, sn_layer_activation,
    sn_layer_globalaveragepooling2d, sn_layer_batchnormalization, sn_layer_preprocess;

#endif
