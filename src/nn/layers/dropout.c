/* dropout.c — Keras Dropout: inverted dropout, active in training only.
 *
 * Config ([dropout]): rate (required, in [0,1)).
 * Training: out = in * keep / (1 - rate), keep drawn per element from a counter-based hash of
 * (seed ^ layer index, step, global sample id) then the element index — a pure function of who
 * the sample is, not of which rank or batch slot holds it, so 1 rank and N ranks drop the same
 * units. Aux: the keep mask, one byte per element. Inference: the identity.
 *
 * Speed: the keep test is done in integers (sn_hash_uniform_threshold: the same masks as the
 * float compare, bit for bit), the hash loop has no branch, and the masking loops select bits
 * rather than branch on a random mask (a third of them mispredicted at rate 0.3). */
#include "layer.h"

/* -O2's "very cheap" vectorizer leaves apply_mask scalar (its trip count is no multiple of the
 * vector width); the dynamic cost model vectorizes it. Element-wise IEEE products and bit
 * selects give the same bits either way. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("vect-cost-model=dynamic")
#endif

#include <stdint.h> // defines: uint8_t, uint32_t
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

/* y (n) = m ? x * scale : +0.0f, as the branch `m[j] ? x[j] * scale : 0.0f` gives it, bit for
 * bit, without a branch: the product is taken everywhere and its bits kept (m = 1) or cleared
 * (m = 0), so a dropped NaN, infinity or -0.0 still gives +0.0 (a multiply by 0 would not).
 * m holds 0 or 1. y may be x. */
static void apply_mask(const float *x, const uint8_t *m, float scale, float *y, size_t n)
{
    for (size_t j = 0; j < n; j++) {
        float v = x[j] * scale;
        uint32_t bits;
        memcpy(&bits, &v, sizeof bits);
        bits &= 0u - (uint32_t)m[j];
        memcpy(&y[j], &bits, sizeof bits);
    }
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
    const uint32_t keep_from = sn_hash_uniform_threshold(rate);
    uint8_t *mask = l->aux;
    for (int r = 0; r < n; r++) {
        uint64_t id = ctx->sample_ids ? (uint64_t)ctx->sample_ids[r] : (uint64_t)r;
        /* element j keeps with sn_hash_uniform(sn_hash64(h, j)) >= rate, that is with
         * (sn_hash64(h, j) >> 40) >= keep_from; the key mixed once */
        uint64_t h = sn_mix64(sn_hash3(ctx->seed ^ (uint64_t)l->index, ctx->step, id));
        uint8_t *m = mask + (size_t)r * S;
        for (size_t j = 0; j < S; j++)
            m[j] = sn_hash64_keyed_top24(h, j) >= keep_from;
        apply_mask(in + (size_t)r * S, m, scale, out + (size_t)r * S, S);
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
    apply_mask(dout, l->aux, scale, din, total);
}

const struct sn_layer_type sn_layer_dropout = {
    .section = "dropout",
    .keras_name = "Dropout",
    .configure = dropout_configure,
    .forward = dropout_forward,
    .backward = dropout_backward,
};
