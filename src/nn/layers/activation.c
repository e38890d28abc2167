/* activation.c — Keras Activation: a standalone activation, out = act(in), same shape.
 *
 * Config ([activation]): activation (required). Softmax works over the last axis (C).
 * When it is the model's last layer and the loss takes logits, it is the identity. */
#include "layer.h"

#include <string.h> // defines: memcpy

static int activation_configure(struct sn_layer *l, const struct sn_config *cfg,
                                const struct sn_section *s, struct sn_shape in, int max_batch,
                                struct sn_err *err)
{
    SN_FORWARD(sn_layer_require(cfg, s, "activation", err));
    SN_FORWARD(sn_layer_parse_activation(cfg, s, "linear", &l->conf.act, err));
    l->out = in;
    return SN_OK;
}

/* in (N,H,W,C) -> out (N,H,W,C) */
static void activation_forward(struct sn_layer *l, const float *in, float *out, int n,
                               const struct sn_step_ctx *ctx)
{
    size_t rows = (size_t)n * l->in.h * l->in.w, cols = (size_t)l->in.c;
    enum sn_act act = l->logits_out ? SN_ACT_LINEAR : l->conf.act;
    ctx->ops->act_forward(act, in, out, rows, cols);
}

/* dout -> din, from the forward's output */
static void activation_backward(struct sn_layer *l, const float *in, const float *out,
                                float *dout, float *din, int n,
                                const struct sn_step_ctx *ctx)
{
    if (din == NULL)
        return;
    size_t rows = (size_t)n * l->in.h * l->in.w, cols = (size_t)l->in.c;
    enum sn_act act = l->logits_out ? SN_ACT_LINEAR : l->conf.act;
    ctx->ops->act_backward(act, out, dout, din, rows, cols);
}

const struct sn_layer_type sn_layer_activation = {
    .section = "activation",
    .keras_name = "Activation",
    .configure = activation_configure,
    .forward = activation_forward,
    .backward = activation_backward,
};
