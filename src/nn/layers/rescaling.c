/* rescaling.c — Keras Rescaling: out = in * scale + offset (e.g. scale = 1/255 for 8-bit pixels).
 *
 * Config ([rescaling]): scale (required; a number or a fraction "1/255"), offset = 0. */
#include "layer.h"

static int rescaling_configure(struct sn_layer *l, const struct sn_config *cfg,
                               const struct sn_section *s, struct sn_shape in, int max_batch,
                               struct sn_err *err)
{
    double scale, offset;
    SN_FORWARD(sn_layer_require(cfg, s, "scale", err));
    SN_FORWARD(sn_section_float(cfg, s, "scale", 0.0, -3.4e38, 3.4e38, &scale, err));
    SN_FORWARD(sn_section_float(cfg, s, "offset", 0.0, -1e30, 1e30, &offset, err));
    l->conf.scale = (float)scale;
    l->conf.offset = (float)offset;
    l->out = in;
    return SN_OK;
}

/* in (N, S) -> out (N, S); in and out may be the same buffer */
static void rescaling_forward(struct sn_layer *l, const float *in, float *out, int n,
                              const struct sn_step_ctx *ctx)
{
    const size_t total = (size_t)n * sn_shape_size(l->in);
    const float a = l->conf.scale, b = l->conf.offset;
    for (size_t i = 0; i < total; i++)
        out[i] = in[i] * a + b;
}

/* din = dout * scale: usually not asked for, as rescaling tends to be the first layer */
static void rescaling_backward(struct sn_layer *l, const float *in, const float *out,
                               float *dout, float *din, int n,
                               const struct sn_step_ctx *ctx)
{
    if (din == NULL)
        return;
    const size_t total = (size_t)n * sn_shape_size(l->in);
    const float a = l->conf.scale;
    for (size_t i = 0; i < total; i++)
        din[i] = dout[i] * a;
}

const struct sn_layer_type sn_layer_rescaling = {
    .section = "rescaling",
    .keras_name = "Rescaling",
    .configure = rescaling_configure,
    .forward = rescaling_forward,
    .backward = rescaling_backward,
};
