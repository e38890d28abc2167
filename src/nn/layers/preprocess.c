/* preprocess.c — keras.applications' preprocess_input as a layer: what a pretrained base
 * expects of its input pixels (0-255 RGB), computed in Keras's order of float operations so
 * that the result is the same to the bit.
 *
 * Config ([preprocess]): mode = caffe|tf|torch (caffe, Keras's default and VGG16's):
 *   caffe  RGB to BGR, then minus the ImageNet channel means (103.939, 116.779, 123.68), no
 *          scaling (keras.applications.vgg16 and resnet50);
 *   tf     x / 127.5 - 1 (mobilenet, inception);
 *   torch  x / 255, minus the means (0.485, 0.456, 0.406), over the deviations (0.229, 0.224,
 *          0.225), RGB (densenet).
 * Needs 3 channels. No params; backward is the transpose of the linear map. */
#include "layer.h"

enum { MODE_CAFFE, MODE_TF, MODE_TORCH };
static const char *const mode_names[] = {"caffe", "tf", "torch", NULL};

static const float caffe_mean[3] = {103.939f, 116.779f, 123.68f}; /* B, G, R */
static const float torch_mean[3] = {0.485f, 0.456f, 0.406f};      /* R, G, B */
static const float torch_std[3] = {0.229f, 0.224f, 0.225f};

static int preprocess_configure(struct sn_layer *l, const struct sn_config *cfg,
                                const struct sn_section *s, struct sn_shape in, int max_batch,
                                struct sn_err *err)
{
    int mode;
    SN_FORWARD(sn_section_choice(cfg, s, "mode", "caffe", mode_names, &mode, err));
    if (in.rank != 3 || in.c != 3)
        return sn_config_error(cfg, s, NULL, err, SN_EINVAL,
                               "preprocess (mode = %s) needs RGB images (H,W,3), got %d "
                               "channel%s; HINT: [data] color_mode = rgb",
                               mode_names[mode], in.c, in.c == 1 ? "" : "s");
    l->conf.mode = mode;
    l->out = in;
    return SN_OK;
}

/* in (N,H,W,3) -> out (N,H,W,3); in and out may be the same buffer */
static void preprocess_forward(struct sn_layer *l, const float *in, float *out, int n,
                               const struct sn_step_ctx *ctx)
{
    const size_t pixels = (size_t)n * l->in.h * l->in.w;
    for (size_t p = 0; p < pixels; p++, in += 3, out += 3) {
        float r = in[0], g = in[1], b = in[2];
        switch (l->conf.mode) {
        case MODE_CAFFE: /* x = x[..., ::-1]; x -= mean */
            out[0] = b - caffe_mean[0];
            out[1] = g - caffe_mean[1];
            out[2] = r - caffe_mean[2];
            break;
        case MODE_TF: /* x /= 127.5; x -= 1. */
            out[0] = r / 127.5f - 1.0f;
            out[1] = g / 127.5f - 1.0f;
            out[2] = b / 127.5f - 1.0f;
            break;
        default: /* x /= 255.; x = (x - mean) / std */
            out[0] = (r / 255.0f - torch_mean[0]) / torch_std[0];
            out[1] = (g / 255.0f - torch_mean[1]) / torch_std[1];
            out[2] = (b / 255.0f - torch_mean[2]) / torch_std[2];
            break;
        }
    }
}

/* dout -> din, the transpose: channels swapped back (caffe) or scaled (tf, torch) */
static void preprocess_backward(struct sn_layer *l, const float *in, const float *out,
                                float *dout, float *din, int n, const struct sn_step_ctx *ctx)
{
    if (din == NULL)
        return;
    const size_t pixels = (size_t)n * l->in.h * l->in.w;
    for (size_t p = 0; p < pixels; p++, dout += 3, din += 3) {
        float d0 = dout[0], d1 = dout[1], d2 = dout[2];
        switch (l->conf.mode) {
        case MODE_CAFFE:
            din[0] = d2, din[1] = d1, din[2] = d0;
            break;
        case MODE_TF:
            din[0] = d0 / 127.5f, din[1] = d1 / 127.5f, din[2] = d2 / 127.5f;
            break;
        default:
            din[0] = d0 / 255.0f / torch_std[0];
            din[1] = d1 / 255.0f / torch_std[1];
            din[2] = d2 / 255.0f / torch_std[2];
            break;
        }
    }
}

const struct sn_layer_type sn_layer_preprocess = {
    .section = "preprocess",
    .keras_name = "Preprocess",
    .configure = preprocess_configure,
    .forward = preprocess_forward,
    .backward = preprocess_backward,
};
