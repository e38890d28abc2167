/* model.h — a network built from a config: its layers, one buffer of parameters, one of gradients,
 * and an arena for everything a training step touches, sized once for the largest batch.
 *
 * The model owns params, grads and state (contiguous, llm.c style) and the arena; layers hold
 * views. Frozen layers (`trainable = false`) keep their parameters in the same buffer: the model
 * lists the contiguous ranges that are trainable, and the gradient exchange and the optimizer walk
 * those ranges only. Nothing in forward/backward allocates. */
#ifndef SN_MODEL_H
#define SN_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "err.h"
#include "layer.h"
#include "loss.h"
#include "ops.h"

struct sn_range {
    size_t off, len;
};

#define SN_MAX_RANGES 64

struct sn_model {
    char name[SN_CFG_NAME_MAX];        /* [model] name, default "model" */
    char config_path[512];             /* the config it was built from (for messages) */
    const struct sn_ops *ops;          /* view: the backend */
    struct sn_shape input;             /* [model] input_shape, or from [data] image_size/color_mode */
    int n_layers;
    struct sn_layer *layers;           /* owned, (n_layers) */
    int max_batch;

    size_t n_params, n_state, n_trainable;
    float *params, *grads, *state;     /* owned, 64-byte aligned (grads: a view into
                                          grads_block, zeroed by the kernel, paged in as the
                                          trainable parts are written) */
    void *grads_block;                 /* owned */
    int n_ranges;
    struct sn_range ranges[SN_MAX_RANGES]; /* trainable parts of params, in order */

    enum sn_loss_kind loss;
    float label_smoothing;             /* [train] label_smoothing (loss.h), 0 without [train] */
    int n_outputs;                     /* units of the last layer */

    /* the arena: activations acts[i] = output of layer i-1 (acts[0] is the caller's input),
     * two ping-pong gradient buffers, layer aux memory and the shared scratch */
    char *arena;                       /* owned */
    size_t arena_bytes;
    float **acts;                      /* owned array of views, (n_layers + 1) */
    float *dbuf[2];                    /* views, each max activation size * max_batch */
    void *scratch;                     /* view */
    size_t scratch_bytes;

    uint64_t structure_hash;           /* layer types and shapes: what a checkpoint must match */

    /* [base] config = FILE: the first n_base layers are that config's (a pretrained
       convolutional base), the rest this config's top. Their params and state are the prefix
       of params and state: base_params, base_state floats. */
    int n_base;
    size_t base_params, base_state;
    uint64_t base_hash;                /* structure hash of the base's layers alone */
    char base_config[1024];            /* path as resolved from this config's directory */
    char base_checkpoint[1024];        /* [base] checkpoint: the base's weights ("" none) */
    char base_name[SN_CFG_NAME_MAX];   /* the base config's [model] name, default "base" */

    /* [model] onednn_layout = blocked (1, the default) or nhwc (0): whether runs of layers on
       oneDNN keep its blocked layout between them (sn_model_plan_layouts) */
    int keep_blocked;

    /* When not NULL (bench), forward and backward add each layer's seconds here, (n_layers). */
    double *t_fwd, *t_bwd;
};

/* Builds the network from the config's layer sections (in order), with input shape from [model]
 * input_shape (H,W,C) or [data] image_size + color_mode ([augment] crop's H, W instead of
 * image_size when set: the network sees RandomCrop's output), and the loss from [train] loss and
 * label_smoothing.
 * Unknown section types are errors naming the line. max_batch bounds every later call. */
int  sn_model_build(struct sn_model **out, const struct sn_config *cfg, int max_batch,
                    const struct sn_ops *ops, struct sn_err *err);

/* sn_model_build in two steps. sn_model_plan configures the network (every check, shape, count
 * and hash) and allocates nothing of its buffers, so that sn_model_memory can be weighed before
 * any of it is taken; sn_model_allocate then allocates and lays out the buffers (on failure the
 * model is still to be freed with sn_model_free). */
int  sn_model_plan(struct sn_model **out, const struct sn_config *cfg, int max_batch,
                   const struct sn_ops *ops, struct sn_err *err);
int  sn_model_allocate(struct sn_model *m, struct sn_err *err);

/* The bytes a network takes once allocated, at its max_batch. Sums saturate at SIZE_MAX. */
struct sn_model_memory {
    size_t params, state;
    size_t grads; /* of the trainable parameters: a frozen layer's are never written, and the
                     kernel gives zeroed pages only when written */
    size_t arena; /* activations, their gradients, aux and scratch */
};
void sn_model_memory(const struct sn_model *m, struct sn_model_memory *mem);
void sn_model_free(struct sn_model *m); /* accepts NULL */

/* Initialises all params and state from seed (same seed -> same model, on every rank). */
void sn_model_init_params(struct sn_model *m, uint64_t seed);

/* x (n,H,W,C) -> a view of the last layer's output (n, n_outputs). These are always logits: the
 * final softmax/sigmoid is folded into the loss; sn_model_probabilities() applies it. */
const float *sn_model_forward(struct sn_model *m, const float *x, int n,
                              const struct sn_step_ctx *ctx);

/* A classifier ends in one vector per image: a network whose last output is an image (not 1x1)
 * gets an error that starts with `what` ("fm/train has 10 classes") and names the Dense that
 * gets an image (Dense acts on the last axis, as in Keras: a [flatten] is missing) or else the
 * last layer, with the config and line. @return SN_OK or SN_EINVAL */
int sn_model_check_vector(const struct sn_model *m, const char *what, struct sn_err *err);

/* The first layer that needs an input gradient: layers before the first one with trainable
 * parameters need none, so backward stops there (the first conv computes no din). */
int sn_model_first_needed(const struct sn_model *m);

/* Called after layer `layer`'s backward, when its gradients are final (gradient exchange starts
 * there, overlapping the backward of the layers below). */
typedef void (*sn_grads_ready_fn)(void *user, int layer);

/* dlogits (n, n_outputs) -> grads += (trainable layers only); runs after sn_model_forward with
 * the same x and n. dlogits is overwritten. ready (may be NULL) is called after each layer, from the last to the first. */
void sn_model_backward(struct sn_model *m, const float *x, float *dlogits, int n,
                       const struct sn_step_ctx *ctx, sn_grads_ready_fn ready, void *user);

/* The backend that runs `part` of layer l: the one chosen for it, else (for a backward part)
 * the one of the layer's forward, else the model's. The one answer to "which table runs this",
 * for the step, the layout plan, the preparation and the reports. */
const struct sn_ops *sn_layer_ops(const struct sn_model *m, const struct sn_layer *l,
                                  enum sn_part part);

/* Whether a layer's arithmetic differs between backends (conv2d, maxpooling2d, dense,
 * globalaveragepooling2d); the other layers run the same loops on all of them. */
int sn_layer_has_backend_choice(const struct sn_layer *l);

/* What sn_model_time_layer times. A convolution's forward and its two backward parts are
 * independent and may run on different backends; pooling's backward reads what its forward
 * wrote (the argmax), so the pair is timed, and chosen, together (dense's too: it is small). */
enum sn_time_part {
    SN_TIME_FORWARD,
    SN_TIME_FORWARD_BACKWARD,
    SN_TIME_BWD_DATA,    /* the input gradient only */
    SN_TIME_BWD_WEIGHTS, /* the parameter gradients only */
};

/* Seconds of `part` of layer i at batch n on ops: the best of several runs on random data, in
 * the model's own buffers (0 when the part does not run in training: no input gradient below
 * the first trainable layer, no weight gradient for a frozen one). Parameters and the other
 * layers' gradients are untouched; activations, the gradient buffers and this layer's
 * gradients are overwritten (its gradients are left zero). */
double sn_model_time_layer(struct sn_model *m, int i, int n, enum sn_time_part part,
                           const struct sn_ops *ops);

/* Runs `part` of layer i once at batch n on ops, as sn_model_time_layer does, untimed: the
 * backend makes what it keeps for the shape (oneDNN's primitives, their buffers) before the
 * first step rather than in it. */
void sn_model_prepare_layer(struct sn_model *m, int i, int n, enum sn_time_part part,
                            const struct sn_ops *ops);

/* Moves the statistics of every trainable layer that has them (BatchNormalization) towards
 * those of one batch, as its forward wrote them through ctx->batch_state (n_state floats, the
 * layout of m->state). */
void sn_model_move_state(struct sn_model *m, const float *batch_state);

/* Zeroes the trainable gradient ranges. */
void sn_model_zero_grads(struct sn_model *m);

/* logits (n, k) -> probs (n, k) with the model's final activation (softmax or sigmoid). */
void sn_model_probabilities(const struct sn_model *m, const float *logits, float *probs, int n);

#endif
