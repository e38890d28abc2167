/* maxpooling2d.c — Keras MaxPooling2D over NHWC images.
 *
 * Config ([maxpooling2d]): pool_size = 2, strides = pool_size, padding = valid|same.
 * No params. Aux: the argmax of every output, (OH,OW,C) int32 per sample, an index into the
 * batch's input, so backward is a scatter. */
#include "layer.h"

static const char *const sn_padding_names[] = {"valid", "same", NULL};

static void maxpool_desc(const struct sn_layer *l, int n, const struct sn_step_ctx *ctx,
                         struct sn_pool_desc *d)
{
    d->n = n;
    d->h = l->in.h;
    d->w = l->in.w;
    d->c = l->in.c;
    d->ph = l->conf.kh;
    d->pw = l->conf.kw;
    d->sh = l->conf.sh;
    d->sw = l->conf.sw;
    d->oh = sn_out_size(d->h, d->ph, d->sh, l->conf.same, &d->pad_top);
    d->ow = sn_out_size(d->w, d->pw, d->sw, l->conf.same, &d->pad_left);
    d->blk_in = l->blk_in && !ctx->nhwc;
    d->blk_out = l->blk_out && !ctx->nhwc;
}

static int maxpool_configure(struct sn_layer *l, const struct sn_config *cfg,
                             const struct sn_section *s, struct sn_shape in, int max_batch,
                             struct sn_err *err)
{
    struct sn_layer_conf *c = &l->conf;
    int ps[2], st[2];
    SN_FORWARD(sn_section_int2(cfg, s, "pool_size", 2, 2, 1, 1 << 16, ps, err));
    SN_FORWARD(sn_section_int2(cfg, s, "strides", ps[0], ps[1], 1, 1 << 16, st, err));
    SN_FORWARD(sn_section_choice(cfg, s, "padding", "valid", sn_padding_names, &c->same, err));
    c->kh = ps[0];
    c->kw = ps[1];
    c->sh = st[0];
    c->sw = st[1];
    if (in.rank != 3)
        return sn_config_error(cfg, s, NULL, err, SN_EINVAL,
                               "maxpooling2d needs an image input (H,W,C), got a vector of %d",
                               in.c);
    int oh = sn_out_size(in.h, c->kh, c->sh, c->same, NULL);
    int ow = sn_out_size(in.w, c->kw, c->sw, c->same, NULL);
    if (oh < 1 || ow < 1)
        return sn_config_error(cfg, s, "pool_size", err, SN_EINVAL,
                               "pool %dx%d does not fit the %dx%d input; HINT: remove a pooling "
                               "layer or use padding = same",
                               c->kh, c->kw, in.h, in.w);
    if ((size_t)max_batch * sn_shape_size(in) > (size_t)INT32_MAX)
        return sn_config_error(cfg, s, NULL, err, SN_EINVAL,
                               "batch of %d too large for 32-bit argmax indices", max_batch);
    l->out = (struct sn_shape){oh, ow, in.c, 3};
    l->aux_per_sample = sn_shape_size(l->out) * sizeof(int32_t);
    return SN_OK;
}

/* in (N,H,W,C) -> out (N,OH,OW,C); argmax into aux */
static void maxpool_forward(struct sn_layer *l, const float *in, float *out, int n,
                            const struct sn_step_ctx *ctx)
{
    struct sn_pool_desc d;
    maxpool_desc(l, n, ctx, &d);
    ctx->ops->maxpool_forward(&d, in, out, l->aux);
}

/* dout (N,OH,OW,C) -> din (N,H,W,C) */
static void maxpool_backward(struct sn_layer *l, const float *in, const float *out,
                             float *dout, float *din, int n, const struct sn_step_ctx *ctx)
{
    if (din == NULL)
        return;
    struct sn_pool_desc d;
    maxpool_desc(l, n, ctx, &d);
    ctx->ops->maxpool_backward(&d, dout, l->aux, din);
}

const struct sn_layer_type sn_layer_maxpooling2d = {
    .section = "maxpooling2d",
    .keras_name = "MaxPooling2D",
    .configure = maxpool_configure,
    .forward = maxpool_forward,
    .backward = maxpool_backward,
};
