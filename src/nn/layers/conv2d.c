/* conv2d.c — Keras Conv2D: a 2-D convolution over NHWC images with an optional fused activation.
 *
 * Config ([conv2d]): filters (required), kernel_size (required), strides = 1,
 * padding = valid|same, activation = linear, use_bias = true.
 * Params, Keras's order: kernel (KH,KW,C,OC) then bias (OC).
 * Scratch: the backend's conv scratch (the activation's gradient is taken in place, in dout).
 * The arithmetic is the backend's (ctx->ops); this file only wires shapes. */
#include "layer.h"

static const char *const sn_padding_names[] = {"valid", "same", NULL};

void sn_conv2d_desc(const struct sn_layer *l, int n, struct sn_conv_desc *d)
{
    d->n = n;
    d->h = l->in.h;
    d->w = l->in.w;
    d->c = l->in.c;
    d->oc = l->out.c;
    d->kh = l->conf.kh;
    d->kw = l->conf.kw;
    d->sh = l->conf.sh;
    d->sw = l->conf.sw;
    d->oh = sn_out_size(d->h, d->kh, d->sh, l->conf.same, &d->pad_top);
    d->ow = sn_out_size(d->w, d->kw, d->sw, l->conf.same, &d->pad_left);
    d->blk_in = l->blk_in;
    d->blk_out = l->blk_out;
}

static int conv2d_configure(struct sn_layer *l, const struct sn_config *cfg,
                            const struct sn_section *s, struct sn_shape in, int max_batch,
                            struct sn_err *err)
{
    struct sn_layer_conf *c = &l->conf;
    int k[2], st[2];
    SN_FORWARD(sn_layer_require(cfg, s, "filters", err));
    SN_FORWARD(sn_layer_require(cfg, s, "kernel_size", err));
    SN_FORWARD(sn_section_int(cfg, s, "filters", 1, 1, 1 << 20, &c->filters, err));
    SN_FORWARD(sn_section_int2(cfg, s, "kernel_size", 3, 3, 1, 1 << 16, k, err));
    SN_FORWARD(sn_section_int2(cfg, s, "strides", 1, 1, 1, 1 << 16, st, err));
    SN_FORWARD(sn_section_choice(cfg, s, "padding", "valid", sn_padding_names, &c->same, err));
    SN_FORWARD(sn_layer_parse_activation(cfg, s, "linear", &c->act, err));
    SN_FORWARD(sn_section_bool(cfg, s, "use_bias", 1, &c->use_bias, err));
    c->kh = k[0];
    c->kw = k[1];
    c->sh = st[0];
    c->sw = st[1];
    if (in.rank != 3)
        return sn_config_error(cfg, s, NULL, err, SN_EINVAL,
                               "conv2d needs an image input (H,W,C), got a vector of %d; HINT: "
                               "remove the [flatten] or [dense] before it",
                               in.c);
    int oh = sn_out_size(in.h, c->kh, c->sh, c->same, NULL);
    int ow = sn_out_size(in.w, c->kw, c->sw, c->same, NULL);
    if (oh < 1 || ow < 1)
        return sn_config_error(cfg, s, "kernel_size", err, SN_EINVAL,
                               "kernel %dx%d does not fit the %dx%d input; HINT: use a smaller "
                               "kernel or padding = same",
                               c->kh, c->kw, in.h, in.w);
    l->out = (struct sn_shape){oh, ow, c->filters, 3};
    l->n_params = (size_t)c->kh * c->kw * in.c * c->filters + (c->use_bias ? c->filters : 0);
    struct sn_conv_desc d;
    sn_conv2d_desc(l, max_batch, &d);
    l->scratch_bytes = sn_ops_conv2d_scratch_max(&d);
    return SN_OK;
}

static void conv2d_init_params(struct sn_layer *l, struct sn_rng *rng)
{
    const struct sn_layer_conf *c = &l->conf;
    size_t nw = (size_t)c->kh * c->kw * l->in.c * c->filters;
    sn_glorot_uniform(l->p, nw, c->kh * c->kw * l->in.c, c->kh * c->kw * c->filters, rng);
    for (size_t i = nw; i < l->n_params; i++)
        l->p[i] = 0.0f;
}

/* The descriptor of a step: the layer's layouts, unless the context says NHWC (timing). */
static void step_desc(const struct sn_layer *l, int n, const struct sn_step_ctx *ctx,
                      struct sn_conv_desc *d)
{
    sn_conv2d_desc(l, n, d);
    if (ctx->nhwc)
        d->blk_in = d->blk_out = 0;
}

/* in (N,H,W,C) -> out (N,OH,OW,OC) */
static void conv2d_forward(struct sn_layer *l, const float *in, float *out, int n,
                           const struct sn_step_ctx *ctx)
{
    struct sn_conv_desc d;
    step_desc(l, n, ctx, &d);
    size_t nw = (size_t)d.kh * d.kw * d.c * d.oc;
    const float *b = l->conf.use_bias ? l->p + nw : NULL;
    char *scratch = ctx->scratch;
    ctx->ops->conv2d_forward(&d, in, l->p, b, l->logits_out ? SN_ACT_LINEAR : l->conf.act, out,
                             scratch);
}

/* dout (N,OH,OW,OC) -> din (N,H,W,C) if din; kernel and bias grads += */
static void conv2d_backward(struct sn_layer *l, const float *in, const float *out,
                            float *dout, float *din, int n, const struct sn_step_ctx *ctx)
{
    struct sn_conv_desc d;
    step_desc(l, n, ctx, &d);
    size_t nw = (size_t)d.kh * d.kw * d.c * d.oc;
    const int grads = l->trainable && l->g != NULL && !ctx->no_weight_grads;
    if (!grads && din == NULL)
        return;
    /* dout becomes the gradient before the activation, in place */
    if (l->conf.act != SN_ACT_LINEAR && !l->logits_out)
        ctx->ops->act_backward(l->conf.act, out, dout, dout, (size_t)n * d.oh * d.ow,
                               (size_t)d.oc);
    const float *g = dout;
    char *scratch = ctx->scratch;
    float *dw = grads ? l->g : NULL;
    float *db = grads && l->conf.use_bias ? l->g + nw : NULL;
    /* the input gradient and the weight gradient are independent computations: each may run
       on the backend that does it faster (tune.c) */
    const struct sn_ops *bd = ctx->ops_bwd_data ? ctx->ops_bwd_data : ctx->ops;
    const struct sn_ops *bw = ctx->ops_bwd_weights ? ctx->ops_bwd_weights : ctx->ops;
    if (bd == bw || !din || !grads) {
        (din ? bd : bw)->conv2d_backward(&d, in, l->p, g, din, dw, db, scratch);
    } else {
        bw->conv2d_backward(&d, in, l->p, g, NULL, dw, db, scratch);
        bd->conv2d_backward(&d, in, l->p, g, din, NULL, NULL, scratch);
    }
}

const struct sn_layer_type sn_layer_conv2d = {
    .section = "conv2d",
    .keras_name = "Conv2D",
    .configure = conv2d_configure,
    .init_params = conv2d_init_params,
    .forward = conv2d_forward,
    .backward = conv2d_backward,
};
