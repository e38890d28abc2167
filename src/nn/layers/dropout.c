/* dropout.c — Keras Dropout: inverted dropout, active in training only.
 *
 * Config ([dropout]): rate (required, in [0,1)).
 * Training: out = in * keep / (1 - rate), keep drawn per element from a counter-based hash of
 * (seed ^ layer index, step, global sample id) then the element index — a pure function of who
 * the sample is, not of which rank or batch slot holds it, so 1 rank and N ranks drop the same
 * units. Aux: the keep mask, one byte per element. Inference: the identity. */
#include "layer.h"

#include <stdint.h> // defines: uint8_t
#include <string.h> // defines: memcpy

static int dropout_configure(struct sn_layer *l, const struct sn_config *cfg,
                             const struct sn_section *s, struct sn_shape in, int max_batch,
                             struct sn_err *err)
{
    double rate;
    SN_FORWARD(sn_layer_require(cfg, s, "rate", err));
    SN_FORWARD(sn_section_float(cfg, s, "rate", 0.5, 0.0, 1.0, &rate, err));
    if (rate >= 1.0)
        return sn_config_error(cfg, s, "rate", err, SN_EINVAL,
                               "rate must be below 1 (it is the fraction dropped)");
    l->conf.rate = (float)rate;
    l->out = in;
    l->aux_per_sample = sn_shape_size(in); /* uint8 keep mask */
    return SN_OK;
}

/* in (N, S) -> out (N, S) */
static void dropout_forward(struct sn_layer *l, const float *in, float *out, int n,
                            const struct sn_step_ctx *ctx)
{
    const size_t S = sn_shape_size(l->in);
    const float rate = l->conf.rate;
    if (!ctx->training || rate <= 0.0f) {
        if (out != in)
            memcpy(out, in, (size_t)n * S * sizeof(float));
        return;
    }
    const float scale = 1.0f / (1.0f - rate);
    uint8_t *mask = l->aux;
    for (int r = 0; r < n; r++) {
        uint64_t id = ctx->sample_ids ? (uint64_t)ctx->sample_ids[r] : (uint64_t)r;
        /* element j keeps with sn_hash_uniform(sn_hash64(h, j)) >= rate; the key mixed once */
        uint64_t h = sn_mix64(sn_hash3(ctx->seed ^ (uint64_t)l->index, ctx->step, id));
        const float *x = in + (size_t)r * S;
        float *y = out + (size_t)r * S;
        uint8_t *m = mask + (size_t)r * S;
        for (size_t j = 0; j < S; j++)
            m[j] = sn_hash_uniform(sn_hash64_keyed(h, j)) >= rate;
        for (size_t j = 0; j < S; j++)
            y[j] = m[j] ? x[j] * scale : 0.0f;
    }
}

/* dout (N, S) -> din (N, S) through the forward's mask */
static void dropout_backward(struct sn_layer *l, const float *in, const float *out,
                             float *dout, float *din, int n, const struct sn_step_ctx *ctx)
{
    if (din == NULL)
        return;
    const size_t total = (size_t)n * sn_shape_size(l->in);
    const float rate = l->conf.rate;
    if (!ctx->training || rate <= 0.0f) {
        if (din != dout)
            memcpy(din, dout, total * sizeof(float));
        return;
    }
    const float scale = 1.0f / (1.0f - rate);
    const uint8_t *mask = l->aux;
    for (size_t i = 0; i < total; i++)
        din[i] = mask[i] ? dout[i] * scale : 0.0f;
}

const struct sn_layer_type sn_layer_dropout = {
    .section = "dropout",
    .keras_name = "Dropout",
    .configure = dropout_configure,
    .forward = dropout_forward,
    .backward = dropout_backward,
};
