/* globalaveragepooling2d.c — Keras GlobalAveragePooling2D: (H,W,C) -> (C), the mean of each
 * channel over the image. No config keys, no params. */
#include "layer.h"

static int gap_configure(struct sn_layer *l, const struct sn_config *cfg,
                         const struct sn_section *s, struct sn_shape in, int max_batch,
                         struct sn_err *err)
{
    if (in.rank != 3)
        return sn_config_error(cfg, s, NULL, err, SN_EINVAL,
                               "globalaveragepooling2d needs an image input (H,W,C), got a "
                               "vector of %d",
                               in.c);
    l->out = (struct sn_shape){1, 1, in.c, 1};
    return SN_OK;
}

/* in (N,H,W,C) -> out (N,C) */
static void gap_forward(struct sn_layer *l, const float *in, float *out, int n,
                        const struct sn_step_ctx *ctx)
{
    ctx->ops->avgpool_global_forward(in, out, n, l->in.h * l->in.w, l->in.c);
}

/* dout (N,C) -> din (N,H,W,C) = dout / (H*W) at every pixel */
static void gap_backward(struct sn_layer *l, const float *in, const float *out,
                         float *dout, float *din, int n, const struct sn_step_ctx *ctx)
{
    if (din != NULL)
        ctx->ops->avgpool_global_backward(dout, din, n, l->in.h * l->in.w, l->in.c);
}

const struct sn_layer_type sn_layer_globalaveragepooling2d = {
    .section = "globalaveragepooling2d",
    .keras_name = "GlobalAveragePooling2D",
    .configure = gap_configure,
    .forward = gap_forward,
    .backward = gap_backward,
};
