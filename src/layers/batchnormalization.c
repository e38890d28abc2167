/* batchnormalization.c — Keras BatchNormalization over the last axis (C).
 *
 * Config ([batchnormalization]): momentum = 0.99, epsilon = 0.001, center = true, scale = true.
 * Params, Keras's order: gamma (C) if scale, beta (C) if center.
 * State (non-trainable, Keras counts it in "Non-trainable params"): moving_mean (C),
 * moving_variance (C).
 * Training (ctx->training and the layer trainable — a frozen BatchNormalization runs in
 * inference mode, as in Keras): statistics of the batch over N*H*W per channel, biased variance,
 * and moving = moving * momentum + batch * (1 - momentum). Inference: the moving statistics.
 * Aux: the mean and 1/sqrt(var + epsilon) the forward used, (2, C) floats — backward rebuilds the
 * normalised input from `in` rather than keeping a copy of it. Scratch: (2, C) doubles of sums.
 * Statistics are per rank (Keras's default without SyncBatchNormalization). */
#include "layer.h"

#include <math.h> // defines: sqrt

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
    l->scratch_bytes = sn_align64(2 * (size_t)in.c * sizeof(double));
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
    float *mean = l->aux, *inv_std = mean + C;
    float *mmean = l->state, *mvar = l->state + C;
    if (bn_batch_stats(l, ctx)) {
        double *sum = ctx->scratch, *sq = sum + C;
        for (size_t c = 0; c < C; c++)
            sum[c] = sq[c] = 0.0;
        for (size_t r = 0; r < R; r++)
            for (size_t c = 0; c < C; c++)
                sum[c] += in[r * C + c];
        for (size_t c = 0; c < C; c++)
            mean[c] = (float)(sum[c] / (double)R);
        /* two passes: E[(x-mean)^2] does not cancel the way E[x^2]-mean^2 does */
        for (size_t r = 0; r < R; r++)
            for (size_t c = 0; c < C; c++) {
                double dlt = (double)in[r * C + c] - mean[c];
                sq[c] += dlt * dlt;
            }
        const float m = l->conf.momentum;
        for (size_t c = 0; c < C; c++) {
            double var = sq[c] / (double)R;
            inv_std[c] = (float)(1.0 / sqrt(var + l->conf.epsilon));
            mmean[c] = mmean[c] * m + mean[c] * (1.0f - m);
            mvar[c] = mvar[c] * m + (float)var * (1.0f - m);
        }
    } else {
        for (size_t c = 0; c < C; c++) {
            mean[c] = mmean[c];
            inv_std[c] = (float)(1.0 / sqrt((double)mvar[c] + l->conf.epsilon));
        }
    }
    for (size_t r = 0; r < R; r++) {
        const float *x = in + r * C;
        float *y = out + r * C;
        for (size_t c = 0; c < C; c++) {
            float v = (x[c] - mean[c]) * inv_std[c];
            if (gamma)
                v *= gamma[c];
            if (beta)
                v += beta[c];
            y[c] = v;
        }
    }
}

/* dout (R, C) -> din (R, C) if din; gamma, beta grads += */
static void bn_backward(struct sn_layer *l, const float *in, const float *out, float *dout,
                        float *din, int n, const struct sn_step_ctx *ctx)
{
    const size_t C = (size_t)l->in.c, R = (size_t)n * l->in.h * l->in.w;
    const float *gamma = l->conf.bn_scale ? l->p : NULL;
    const float *mean = l->aux, *inv_std = mean + C;
    const int grads = l->trainable && l->g != NULL;
    double *sdy = ctx->scratch, *sdyx = sdy + C; /* sum dy, sum dy * xhat per channel */
    for (size_t c = 0; c < C; c++)
        sdy[c] = sdyx[c] = 0.0;
    for (size_t r = 0; r < R; r++)
        for (size_t c = 0; c < C; c++) {
            float dy = dout[r * C + c];
            float xhat = (in[r * C + c] - mean[c]) * inv_std[c];
            sdy[c] += dy;
            sdyx[c] += (double)dy * xhat;
        }
    if (grads) {
        float *g = l->g;
        if (l->conf.bn_scale)
            for (size_t c = 0; c < C; c++)
                *g++ += (float)sdyx[c];
        if (l->conf.bn_center)
            for (size_t c = 0; c < C; c++)
                *g++ += (float)sdy[c];
    }
    if (din == NULL)
        return;
    if (bn_batch_stats(l, ctx)) {
        /* din = gamma * inv_std / R * (R * dy - sum(dy) - xhat * sum(dy * xhat)) */
        for (size_t c = 0; c < C; c++) {
            sdy[c] /= (double)R;
            sdyx[c] /= (double)R;
        }
        for (size_t r = 0; r < R; r++)
            for (size_t c = 0; c < C; c++) {
                float k = (gamma ? gamma[c] : 1.0f) * inv_std[c];
                float xhat = (in[r * C + c] - mean[c]) * inv_std[c];
                din[r * C + c] =
                    k * (dout[r * C + c] - (float)sdy[c] - xhat * (float)sdyx[c]);
            }
    } else {
        /* the statistics are constants: an affine map per channel */
        for (size_t r = 0; r < R; r++)
            for (size_t c = 0; c < C; c++)
                din[r * C + c] = dout[r * C + c] * (gamma ? gamma[c] : 1.0f) * inv_std[c];
    }
}

const struct sn_layer_type sn_layer_batchnormalization = {
    .section = "batchnormalization",
    .keras_name = "BatchNormalization",
    .configure = bn_configure,
    .init_params = bn_init_params,
    .forward = bn_forward,
    .backward = bn_backward,
};
