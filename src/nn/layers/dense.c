/* dense.c — Keras Dense: out = act(in * kernel + bias) over the last axis.
 *
 * Config ([dense]): units (required), activation = linear, use_bias = true.
 * Params, Keras's order: kernel (IN,UNITS) then bias (UNITS).
 * Like Keras, an image input (H,W,C) is transformed along C at each pixel: the rows of the GEMM
 * are N*H*W. No scratch: the activation's gradient is taken in place, in dout. */
#include "layer.h"

static int dense_configure(struct sn_layer *l, const struct sn_config *cfg,
                           const struct sn_section *s, struct sn_shape in, int max_batch,
                           struct sn_err *err)
{
    struct sn_layer_conf *c = &l->conf;
    SN_FORWARD(sn_layer_require(cfg, s, "units", err));
    SN_FORWARD(sn_section_int(cfg, s, "units", 1, 1, 1 << 24, &c->filters, err));
    SN_FORWARD(sn_layer_parse_activation(cfg, s, "linear", &c->act, err));
    SN_FORWARD(sn_section_bool(cfg, s, "use_bias", 1, &c->use_bias, err));
    l->out = (struct sn_shape){in.h, in.w, c->filters, in.rank};
    l->n_params = (size_t)in.c * c->filters + (c->use_bias ? c->filters : 0);
    return SN_OK;
}

static void dense_init_params(struct sn_layer *l, struct sn_rng *rng)
{
    size_t nw = (size_t)l->in.c * l->conf.filters;
    sn_glorot_uniform(l->p, nw, l->in.c, l->conf.filters, rng);
    for (size_t i = nw; i < l->n_params; i++)
        l->p[i] = 0.0f;
}

/* in (R, IN) -> out (R, UNITS), R = N*H*W */
static void dense_forward(struct sn_layer *l, const float *in, float *out, int n,
                          const struct sn_step_ctx *ctx)
{
    const int rows = n * l->in.h * l->in.w, k = l->in.c, u = l->conf.filters;
    ctx->ops->gemm(0, 0, rows, u, k, 1.0f, in, l->p, 0.0f, out);
    if (l->conf.use_bias)
        ctx->ops->bias_forward(out, l->p + (size_t)k * u, (size_t)rows, (size_t)u);
    if (l->conf.act != SN_ACT_LINEAR && !l->logits_out)
        ctx->ops->act_forward(l->conf.act, out, out, (size_t)rows, (size_t)u);
}

/* dout (R, UNITS) -> din (R, IN) if din; kernel (IN,UNITS) and bias grads += */
static void dense_backward(struct sn_layer *l, const float *in, const float *out,
                           float *dout, float *din, int n, const struct sn_step_ctx *ctx)
{
    const int rows = n * l->in.h * l->in.w, k = l->in.c, u = l->conf.filters;
    const int grads = l->trainable && l->g != NULL;
    if (!grads && din == NULL)
        return;
    if (l->conf.act != SN_ACT_LINEAR && !l->logits_out) /* in place: dout becomes dz */
        ctx->ops->act_backward(l->conf.act, out, dout, dout, (size_t)rows, (size_t)u);
    const float *g = dout;
    if (grads) {
        /* dW (IN,UNITS) += in^T (IN,R) * g (R,UNITS) */
        ctx->ops->gemm(1, 0, k, u, rows, 1.0f, in, g, 1.0f, l->g);
        if (l->conf.use_bias)
            ctx->ops->bias_backward(g, l->g + (size_t)k * u, (size_t)rows, (size_t)u);
    }
    if (din) /* din (R,IN) = g (R,UNITS) * W^T (UNITS,IN) */
        ctx->ops->gemm(0, 1, rows, k, u, 1.0f, g, l->p, 0.0f, din);
}

const struct sn_layer_type sn_layer_dense = {
    .section = "dense",
    .keras_name = "Dense",
    .configure = dense_configure,
    .init_params = dense_init_params,
    .forward = dense_forward,
    .backward = dense_backward,
};
