/* batchnormalization.c — Keras BatchNormalization over the last axis (C).
 *
 * Config ([batchnormalization]): momentum = 0.99, epsilon = 0.001, center = true, scale = true.
 * Params, Keras's order: gamma (C) if scale, beta (C) if center.
 * State (non-trainable, Keras counts it in "Non-trainable params"): moving_mean (C),
 * moving_variance (C).
 * Training (ctx->training and the layer trainable — a frozen BatchNormalization runs in
 * inference mode, as in Keras): statistics of the batch over N*H*W per channel, biased variance,
 * and moving = moving * momentum + batch * (1 - momentum). Inference: the moving statistics.
 * Aux: the mean and variance the forward used, (2, C) floats — backward rebuilds the normalised
 * input from `in` rather than keeping a copy of it. Scratch: the backend's, 2C doubles and 4C
 * floats. The arithmetic is the backend's (ctx->ops). The statistics are those of the batch the
 * layer sees: in training, one micro-batch (the step's unit of work, the same on any number of
 * ranks), and the moving statistics move once per micro-batch, in the micro-batches' order
 * (step.c), whichever rank computed them. */
#include "layer.h"

#include <string.h> // defines: memcpy

static int bn_configure(struct sn_layer *l, const struct sn_config *cfg,
                        const struct sn_section *s, struct sn_shape in, int max_batch,
                        struct sn_err *err)
{
    struct sn_layer_conf *c = &l->conf;
    double mom, eps;
    SN_FORWARD(sn_section_float(cfg, s, "momentum", 0.99, 0.0, 1.0, &mom, err));
    SN_FORWARD(sn_section_float(cfg, s, "epsilon", 0.001, 1e-12, 1e6, &eps, err));
    SN_FORWARD(sn_section_bool(cfg, s, "center", 1, &c->bn_center, err));
    SN_FORWARD(sn_section_bool(cfg, s, "scale", 1, &c->bn_scale, err));
    c->momentum = (float)mom;
    c->epsilon = (float)eps;
    l->out = in;
    l->n_params = (size_t)(c->bn_scale + c->bn_center) * in.c;
    l->n_state = 2 * (size_t)in.c;
    l->aux_per_sample = 2 * (size_t)in.c * sizeof(float); /* >= (2,C) floats for any batch */
    l->scratch_bytes =
        sn_align64(2 * (size_t)in.c * sizeof(double) + 4 * (size_t)in.c * sizeof(float));
    return SN_OK;
}

static void bn_init_params(struct sn_layer *l, struct sn_rng *rng)
{
    const size_t C = (size_t)l->in.c;
    float *p = l->p;
    if (l->conf.bn_scale)
        for (size_t i = 0; i < C; i++)
            *p++ = 1.0f; /* gamma */
    if (l->conf.bn_center)
        for (size_t i = 0; i < C; i++)
            *p++ = 0.0f; /* beta */
    for (size_t i = 0; i < C; i++) {
        l->state[i] = 0.0f;     /* moving_mean */
        l->state[C + i] = 1.0f; /* moving_variance */
    }
}

/* moving = moving * momentum + batch * (1 - momentum); batch: (mean (C), variance (C)) */
static void bn_move_state(struct sn_layer *l, const float *batch)
{
    const size_t C = (size_t)l->in.c;
    const float m = l->conf.momentum;
    float *mmean = l->state, *mvar = l->state + C;
    for (size_t c = 0; c < C; c++) {
        mmean[c] = mmean[c] * m + batch[c] * (1.0f - m);
        mvar[c] = mvar[c] * m + batch[C + c] * (1.0f - m);
    }
}

static int bn_batch_stats(const struct sn_layer *l, const struct sn_step_ctx *ctx)
{
    return ctx->training && l->trainable;
}

/* in (R, C) -> out (R, C), R = N*H*W */
static void bn_forward(struct sn_layer *l, const float *in, float *out, int n,
                       const struct sn_step_ctx *ctx)
{
    const size_t C = (size_t)l->in.c, R = (size_t)n * l->in.h * l->in.w;
    const float *gamma = l->conf.bn_scale ? l->p : NULL;
    const float *beta = l->conf.bn_center ? l->p + (l->conf.bn_scale ? C : 0) : NULL;
    float *mean = l->aux, *var = mean + C;
    float *mmean = l->state, *mvar = l->state + C;
    int batch = bn_batch_stats(l, ctx);
    if (!batch) {
        memcpy(mean, mmean, C * sizeof(float));
        memcpy(var, mvar, C * sizeof(float));
    }
    ctx->ops->batchnorm_forward(in, out, R, (int)C, l->conf.epsilon, batch, gamma, beta, mean,
                                var, ctx->scratch);
    if (batch && ctx->batch_state) {
        memcpy(ctx->batch_state + l->state_off, mean, C * sizeof(float));
        memcpy(ctx->batch_state + l->state_off + C, var, C * sizeof(float));
    } else if (batch) {
        bn_move_state(l, l->aux);
    }
}

/* dout (R, C) -> din (R, C) if din; gamma, beta grads += */
static void bn_backward(struct sn_layer *l, const float *in, const float *out, float *dout,
                        float *din, int n, const struct sn_step_ctx *ctx)
{
    const size_t C = (size_t)l->in.c, R = (size_t)n * l->in.h * l->in.w;
    const float *gamma = l->conf.bn_scale ? l->p : NULL;
    const float *mean = l->aux, *var = mean + C;
    const int grads = l->trainable && l->g != NULL;
    float *dgamma = grads && l->conf.bn_scale ? l->g : NULL;
    float *dbeta = grads && l->conf.bn_center ? l->g + (l->conf.bn_scale ? C : 0) : NULL;
    if (!din && !dgamma && !dbeta)
        return;
    ctx->ops->batchnorm_backward(in, dout, din, R, (int)C, l->conf.epsilon,
                                 bn_batch_stats(l, ctx), gamma, mean, var, dgamma, dbeta,
                                 ctx->scratch);
}

const struct sn_layer_type sn_layer_batchnormalization = {
    .section = "batchnormalization",
    .keras_name = "BatchNormalization",
    .configure = bn_configure,
    .init_params = bn_init_params,
    .forward = bn_forward,
    .backward = bn_backward,
    .move_state = bn_move_state,
};
