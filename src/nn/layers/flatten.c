/* flatten.c — Keras Flatten: (H,W,C) -> (H*W*C). NHWC memory is already in Keras's flatten
 * order, so this is a copy (or nothing, when the model hands the same buffer in and out). */
#include "layer.h"

#include <string.h> // defines: memcpy

static int flatten_configure(struct sn_layer *l, const struct sn_config *cfg,
                             const struct sn_section *s, struct sn_shape in, int max_batch,
                             struct sn_err *err)
{
    l->out = (struct sn_shape){1, 1, (int)sn_shape_size(in), 1};
    return SN_OK;
}

/* in (N,H,W,C) -> out (N,H*W*C) */
static void flatten_forward(struct sn_layer *l, const float *in, float *out, int n,
                            const struct sn_step_ctx *ctx)
{
    if (out != in)
        memcpy(out, in, (size_t)n * sn_shape_size(l->in) * sizeof(float));
}

static void flatten_backward(struct sn_layer *l, const float *in, const float *out,
                             float *dout, float *din, int n, const struct sn_step_ctx *ctx)
{
    if (din != NULL && din != dout)
        memcpy(din, dout, (size_t)n * sn_shape_size(l->in) * sizeof(float));
}

const struct sn_layer_type sn_layer_flatten = {
    .section = "flatten",
    .keras_name = "Flatten",
    .configure = flatten_configure,
    .forward = flatten_forward,
    .backward = flatten_backward,
};
