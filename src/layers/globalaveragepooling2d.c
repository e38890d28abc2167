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
    const size_t hw = (size_t)l->in.h * l->in.w, C = (size_t)l->in.c;
    const float inv = 1.0f / (float)hw;
    for (int i = 0; i < n; i++) {
        float *y = out + (size_t)i * C;
        const float *x = in + (size_t)i * hw * C;
        for (size_t c = 0; c < C; c++)
            y[c] = 0.0f;
        for (size_t p = 0; p < hw; p++, x += C)
            for (size_t c = 0; c < C; c++)
                y[c] += x[c];
        for (size_t c = 0; c < C; c++)
            y[c] *= inv;
    }
}

/* dout (N,C) -> din (N,H,W,C) = dout / (H*W) at every pixel */
static void gap_backward(struct sn_layer *l, const float *in, const float *out,
                         float *dout, float *din, int n, const struct sn_step_ctx *ctx)
{
    if (din == NULL)
        return;
    const size_t hw = (size_t)l->in.h * l->in.w, C = (size_t)l->in.c;
    const float inv = 1.0f / (float)hw;
    for (int i = 0; i < n; i++) {
        const float *g = dout + (size_t)i * C;
        float *x = din + (size_t)i * hw * C;
        for (size_t p = 0; p < hw; p++, x += C)
            for (size_t c = 0; c < C; c++)
                x[c] = g[c] * inv;
    }
}

const struct sn_layer_type sn_layer_globalaveragepooling2d = {
    .section = "globalaveragepooling2d",
    .keras_name = "GlobalAveragePooling2D",
    .configure = gap_configure,
    .forward = gap_forward,
    .backward = gap_backward,
};
