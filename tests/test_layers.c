/* test_layers.c — every layer type: configuration (Keras's keys, defaults, param counts, errors)
 * and backward against central finite differences, ggml test-backend-ops style:
 *   loss = sum(out * r) for fixed random r (accumulated in double), so dloss/dout = r;
 *   numeric d loss / d v = (loss(v + eps) - loss(v - eps)) / (2 eps), for every input element and
 *   every parameter, compared with what backward gives, with a tolerance per layer. */
#include <setjmp.h> // defines: jmp_buf (cmocka needs it)
#include <stdarg.h> // defines: va_list (cmocka needs it)
#include <stddef.h> // defines: size_t (cmocka needs it)
#include <stdint.h> // defines: int64_t, uint8_t
#include <stdlib.h> // defines: malloc, calloc, free

#include <cmocka.h> // defines: cmocka_unit_test, assert_*

#include <math.h>   // defines: fabs, fabsf, fmax, fmaxf, sqrt, sqrtf
#include <stdio.h>  // defines: fprintf
#include <string.h> // defines: memcpy, strstr

#include "config.h"
#include "layer.h"
#include "ops.h"
#include "testutil.h"

/* A layer with all the memory a model would give it. */
struct tl {
    struct sn_config *cfg;
    struct sn_layer l;
    int max_batch;
    float *p, *g, *state; /* owned */
    void *aux, *scratch;  /* owned */
    const struct sn_ops *bwd_data, *bwd_weights; /* a convolution's backward parts (NULL: as
                                                    forward), as the model sets them */
};

/* Configures the first section of `text` as a layer on input `in`; @return SN_OK or the error */
static int tl_make(struct tl *t, const char *text, struct sn_shape in, int max_batch,
                   struct sn_err *err)
{
    memset(t, 0, sizeof *t);
    t->max_batch = max_batch;
    if (sn_config_load_string(&t->cfg, text, "test.cfg", err) != SN_OK)
        return err->code;
    const struct sn_section *s = &t->cfg->sections[0];
    t->l.type = sn_layer_type_find(s->type);
    assert_non_null(t->l.type);
    t->l.trainable = 1;
    t->l.index = 3;
    t->l.line = s->line;
    t->l.in = in; /* as the model does: the layer arrives zeroed, with its input shape */
    int rc = t->l.type->configure(&t->l, t->cfg, s, in, max_batch, err);
    if (rc != SN_OK)
        return rc;
    t->p = calloc(t->l.n_params + 1, sizeof(float));
    t->g = calloc(t->l.n_params + 1, sizeof(float));
    t->state = calloc(t->l.n_state + 1, sizeof(float));
    t->aux = calloc(t->l.aux_per_sample * max_batch + 1, 1);
    t->scratch = calloc(t->l.scratch_bytes + 1, 1);
    t->l.p = t->p;
    t->l.g = t->g;
    t->l.state = t->state;
    t->l.aux = t->aux;
    struct sn_rng rng;
    sn_rng_seed(&rng, 99);
    if (t->l.type->init_params)
        t->l.type->init_params(&t->l, &rng);
    return SN_OK;
}

static void tl_make_ok(struct tl *t, const char *text, struct sn_shape in, int max_batch)
{
    struct sn_err err = {0};
    int rc = tl_make(t, text, in, max_batch, &err);
    if (rc != SN_OK)
        fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, SN_OK);
    assert_int_equal(sn_config_check_unused(t->cfg, &err), SN_OK);
}

static void tl_free(struct tl *t)
{
    sn_config_free(t->cfg);
    free(t->p), free(t->g), free(t->state), free(t->aux), free(t->scratch);
}

static struct sn_step_ctx tl_ctx(struct tl *t, const struct sn_ops *ops, int training,
                                 const int64_t *ids)
{
    return (struct sn_step_ctx){.ops = ops, .ops_bwd_data = t->bwd_data,
                                .ops_bwd_weights = t->bwd_weights, .scratch = t->scratch,
                                .training = training, .seed = 1234, .step = 7, .sample_ids = ids};
}

/* sum(out * r) after a forward of x */
static double tl_loss(struct tl *t, const float *x, float *out, const float *r, int n,
                      const struct sn_step_ctx *ctx)
{
    t->l.type->forward(&t->l, x, out, n, ctx);
    double s = 0;
    for (size_t i = 0; i < (size_t)n * sn_shape_size(t->l.out); i++)
        s += (double)out[i] * r[i];
    return s;
}

static int grad_close(double num, double ana, double atol, double rtol)
{
    return fabs(num - ana) <= atol + rtol * fmax(fabs(num), fabs(ana));
}

/* Checks din and the parameter gradients of t's layer at x (n samples) by central differences.
 * Returns the number of mismatches (printed). */
static int tl_gradcheck(struct tl *t, const struct sn_ops *ops, int training, int n, float eps,
                        double atol, double rtol)
{
    const size_t nin = (size_t)n * sn_shape_size(t->l.in);
    const size_t nout = (size_t)n * sn_shape_size(t->l.out);
    float *x = malloc(nin * 4), *out = malloc(nout * 4), *r = malloc(nout * 4);
    float *din = malloc(nin * 4);
    int64_t ids[16];
    for (int i = 0; i < 16; i++)
        ids[i] = 100 + 7 * i;
    struct sn_step_ctx ctx = tl_ctx(t, ops, training, ids);
    sn_test_fill(x, nin, -1, 1, 41);
    for (size_t i = 0; i < nin; i++) /* keep off relu's kink: x +- eps must not cross 0 */
        if (fabsf(x[i]) < 4 * eps)
            x[i] = x[i] < 0 ? -4 * eps : 4 * eps;
    sn_test_fill(r, nout, -1, 1, 42);
    memset(t->g, 0, t->l.n_params * sizeof(float));

    tl_loss(t, x, out, r, n, &ctx);
    float *dout = malloc(nout * 4); /* backward may overwrite it; r stays the loss's weights */
    memcpy(dout, r, nout * 4);
    t->l.type->backward(&t->l, x, out, dout, din, n, &ctx);
    free(dout);

    int bad = 0;
    for (size_t i = 0; i < nin; i++) {
        float v = x[i];
        x[i] = v + eps;
        double lp = tl_loss(t, x, out, r, n, &ctx);
        x[i] = v - eps;
        double lm = tl_loss(t, x, out, r, n, &ctx);
        x[i] = v;
        double num = (lp - lm) / (2.0 * eps);
        if (!grad_close(num, din[i], atol, rtol) && bad++ < 5)
            fprintf(stderr, "  [%s/%s] din[%zu]: numeric %.6f, backward %.6f\n",
                    t->l.type->section, ops->name, i, num, din[i]);
    }
    for (size_t i = 0; i < t->l.n_params; i++) {
        float v = t->p[i];
        t->p[i] = v + eps;
        double lp = tl_loss(t, x, out, r, n, &ctx);
        t->p[i] = v - eps;
        double lm = tl_loss(t, x, out, r, n, &ctx);
        t->p[i] = v;
        double num = (lp - lm) / (2.0 * eps);
        if (!grad_close(num, t->g[i], atol, rtol) && bad++ < 5)
            fprintf(stderr, "  [%s/%s] dparam[%zu]: numeric %.6f, backward %.6f\n",
                    t->l.type->section, ops->name, i, num, t->g[i]);
    }
    free(x), free(out), free(r), free(din);
    return bad;
}

static struct sn_shape img(int h, int w, int c) { return (struct sn_shape){h, w, c, 3}; }
static struct sn_shape vec(int c) { return (struct sn_shape){1, 1, c, 1}; }

static void test_conv2d_gradients(void **state)
{
    static const char *const cfgs[] = {
        "[conv2d]\nfilters = 4\nkernel_size = 3\nactivation = tanh\n",
        "[conv2d]\nfilters = 3\nkernel_size = 3, 2\nstrides = 2\npadding = same\n"
        "activation = sigmoid\n",
        "[conv2d]\nfilters = 5\nkernel_size = (1, 1)\nuse_bias = false\n",
        "[conv2d]\nfilters = 4\nkernel_size = 2\npadding = same\nactivation = softmax\n",
    };
    const struct sn_ops *backends[3] = {&sn_ops_blas, &sn_ops_onednn, &sn_ops_ref};
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++)
        for (int b = 0; b < 3; b++) {
            struct tl t;
            tl_make_ok(&t, cfgs[i], img(5, 6, 3), 2);
            sn_test_fill(t.p, t.l.n_params, -0.5f, 0.5f, 43); /* nonzero biases too */
            assert_int_equal(tl_gradcheck(&t, backends[b], 1, 2, 1e-2f, 2e-3, 1e-2), 0);
            tl_free(&t);
        }
}

/* [model] backend = auto may run a convolution's forward, input gradient and weight gradient
 * on three different backends: every mix gives the finite-difference gradients. */
static void test_conv2d_mixed_backends(void **state)
{
    const struct sn_ops *ops[2] = {&sn_ops_blas, &sn_ops_onednn};
    for (int mix = 0; mix < 8; mix++) {
        struct tl t;
        tl_make_ok(&t, "[conv2d]\nfilters = 5\nkernel_size = 3\npadding = same\nactivation = tanh\n",
                   img(6, 5, 3), 2);
        sn_test_fill(t.p, t.l.n_params, -0.5f, 0.5f, 47);
        t.bwd_data = ops[(mix >> 1) & 1];
        t.bwd_weights = ops[(mix >> 2) & 1];
        assert_int_equal(tl_gradcheck(&t, ops[mix & 1], 1, 2, 1e-2f, 2e-3, 1e-2), 0);
        tl_free(&t);
    }
}

static void test_conv2d_config(void **state)
{
    struct tl t;
    /* Listing 8.1's first layer: 3*3*1*32 + 32 = 320 params */
    tl_make_ok(&t, "[conv2d]\nfilters = 32\nkernel_size = 3\nactivation = relu\n", img(28, 28, 1),
               64);
    assert_int_equal(t.l.n_params, 320);
    assert_int_equal(t.l.out.h, 26);
    assert_int_equal(t.l.out.w, 26);
    assert_int_equal(t.l.out.c, 32);
    assert_int_equal(t.l.conf.act, SN_ACT_RELU);
    assert_true(t.l.scratch_bytes > 0);
    /* glorot_uniform: |w| <= sqrt(6 / (9 + 9*32)), biases zero */
    float limit = sqrtf(6.0f / (9 + 288));
    float mx = 0;
    for (int i = 0; i < 288; i++)
        mx = fmaxf(mx, fabsf(t.p[i]));
    assert_true(mx <= limit && mx > 0.8f * limit);
    for (int i = 288; i < 320; i++)
        assert_float_equal(t.p[i], 0, 0);
    tl_free(&t);

    /* same padding, stride 2, no bias: ceil(28/2) = 14 */
    tl_make_ok(&t, "[conv2d]\nfilters = 8\nkernel_size = 3\nstrides = 2\npadding = same\n"
                   "use_bias = false\n",
               img(28, 28, 3), 4);
    assert_int_equal(t.l.out.h, 14);
    assert_int_equal(t.l.n_params, 3 * 3 * 3 * 8);
    tl_free(&t);

    struct sn_err err = {0};
    assert_int_equal(tl_make(&t, "[conv2d]\nkernel_size = 3\n", img(8, 8, 1), 1, &err), SN_EINVAL);
    assert_non_null(strstr(err.msg, "filters"));
    assert_non_null(strstr(err.msg, "test.cfg"));
    tl_free(&t);
    assert_int_equal(tl_make(&t, "[conv2d]\nfilters = 2\nkernel_size = 9\n", img(8, 8, 1), 1, &err),
                     SN_EINVAL);
    tl_free(&t);
    assert_int_equal(tl_make(&t, "[conv2d]\nfilters = 2\nkernel_size = 3\npadding = full\n",
                             img(8, 8, 1), 1, &err),
                     SN_EINVAL);
    tl_free(&t);
    assert_int_equal(tl_make(&t, "[conv2d]\nfilters = 2\nkernel_size = 3\n", vec(10), 1, &err),
                     SN_EINVAL);
    tl_free(&t);
}

static void test_conv2d_logits_out(void **state)
{
    /* logits_out: forward stops before the activation, backward takes dlogits as they are */
    struct tl t;
    tl_make_ok(&t, "[conv2d]\nfilters = 3\nkernel_size = 1\nactivation = softmax\n", img(2, 2, 2),
               1);
    float x[8], a[12], b[12];
    sn_test_fill(x, 8, -1, 1, 44);
    struct sn_step_ctx ctx = tl_ctx(&t, &sn_ops_blas, 1, NULL);
    t.l.type->forward(&t.l, x, a, 1, &ctx);
    t.l.logits_out = 1;
    t.l.type->forward(&t.l, x, b, 1, &ctx);
    sn_ops_ref.act_forward(SN_ACT_SOFTMAX, b, b, 4, 3);
    assert_true(sn_test_max_rel_diff(a, b, 12) < 1e-6);
    assert_int_equal(tl_gradcheck(&t, &sn_ops_blas, 1, 1, 1e-2f, 1e-3, 1e-2), 0);
    tl_free(&t);
}

static void test_dense_gradients(void **state)
{
    static const char *const cfgs[] = {
        "[dense]\nunits = 5\nactivation = sigmoid\n",
        "[dense]\nunits = 4\nactivation = softmax\n",
        "[dense]\nunits = 3\nuse_bias = false\nactivation = tanh\n",
    };
    const struct sn_ops *backends[3] = {&sn_ops_blas, &sn_ops_onednn, &sn_ops_ref};
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++)
        for (int b = 0; b < 3; b++) {
            struct tl t;
            tl_make_ok(&t, cfgs[i], vec(7), 3);
            sn_test_fill(t.p, t.l.n_params, -0.5f, 0.5f, 45);
            assert_int_equal(tl_gradcheck(&t, backends[b], 1, 3, 1e-2f, 2e-3, 1e-2), 0);
            tl_free(&t);
        }
    /* Keras applies Dense on the last axis of an image input */
    struct tl t;
    tl_make_ok(&t, "[dense]\nunits = 2\nactivation = tanh\n", img(2, 3, 4), 2);
    assert_int_equal(t.l.out.h, 2);
    assert_int_equal(t.l.out.c, 2);
    assert_int_equal(t.l.n_params, 4 * 2 + 2);
    assert_int_equal(tl_gradcheck(&t, &sn_ops_blas, 1, 2, 1e-2f, 2e-3, 1e-2), 0);
    tl_free(&t);
}

static void test_dense_config(void **state)
{
    struct tl t;
    tl_make_ok(&t, "[dense]\nunits = 10\nactivation = softmax\n", vec(128), 64);
    assert_int_equal(t.l.n_params, 1290); /* (128 + 1) * 10, as in Keras's summary */
    assert_int_equal(t.l.out.c, 10);
    assert_int_equal(t.l.out.rank, 1);
    tl_free(&t);
    struct sn_err err = {0};
    assert_int_equal(tl_make(&t, "[dense]\nactivation = relu\n", vec(4), 1, &err), SN_EINVAL);
    assert_non_null(strstr(err.msg, "units"));
    tl_free(&t);
    assert_int_equal(tl_make(&t, "[dense]\nunits = 3\nactivation = swish\n", vec(4), 1, &err),
                     SN_EINVAL);
    tl_free(&t);
}

static void test_maxpool(void **state)
{
    struct tl t;
    tl_make_ok(&t, "[maxpooling2d]\n", img(6, 4, 1), 2);
    assert_int_equal(t.l.out.h, 3);
    assert_int_equal(t.l.out.w, 2);
    assert_int_equal(t.l.n_params, 0);
    assert_int_equal(t.l.aux_per_sample, 6 * sizeof(int32_t));
    assert_int_equal(tl_gradcheck(&t, &sn_ops_blas, 1, 2, 1e-3f, 1e-3, 1e-2), 0);
    assert_int_equal(tl_gradcheck(&t, &sn_ops_onednn, 1, 2, 1e-3f, 1e-3, 1e-2), 0);
    tl_free(&t);
    tl_make_ok(&t, "[maxpooling2d]\npool_size = 3\nstrides = 2\npadding = same\n", img(5, 7, 2), 2);
    assert_int_equal(t.l.out.h, 3);
    assert_int_equal(t.l.out.w, 4);
    assert_int_equal(tl_gradcheck(&t, &sn_ops_blas, 1, 2, 1e-3f, 1e-3, 1e-2), 0);
    assert_int_equal(tl_gradcheck(&t, &sn_ops_onednn, 1, 2, 1e-3f, 1e-3, 1e-2), 0);
    tl_free(&t);
}

/* keras.applications' preprocess_input, to the bit: caffe (VGG16), tf and torch */
static void test_preprocess(void **state)
{
    struct tl t;
    const float x[6] = {0, 128, 255, 12.5f, 200, 77};
    float y[6], d[6], dx[6];
    tl_make_ok(&t, "[preprocess]\n", img(1, 2, 3), 1); /* mode = caffe by default */
    struct sn_step_ctx ctx = tl_ctx(&t, &sn_ops_blas, 0, NULL);
    t.l.type->forward(&t.l, x, y, 1, &ctx);
    /* x[..., ::-1] - [103.939, 116.779, 123.68], in float as Keras computes it */
    assert_true(y[0] == 255.0f - 103.939f && y[1] == 128.0f - 116.779f && y[2] == 0.0f - 123.68f);
    assert_true(y[3] == 77.0f - 103.939f && y[4] == 200.0f - 116.779f && y[5] == 12.5f - 123.68f);
    assert_int_equal(tl_gradcheck(&t, &sn_ops_blas, 1, 1, 1e-2f, 1e-3, 1e-3), 0);
    tl_free(&t);
    tl_make_ok(&t, "[preprocess]\nmode = tf\n", img(1, 2, 3), 1);
    t.l.type->forward(&t.l, x, y, 1, &ctx);
    for (int i = 0; i < 6; i++)
        assert_true(y[i] == x[i] / 127.5f - 1.0f);
    assert_int_equal(tl_gradcheck(&t, &sn_ops_blas, 1, 1, 1e-2f, 1e-3, 1e-3), 0);
    tl_free(&t);
    tl_make_ok(&t, "[preprocess]\nmode = torch\n", img(1, 2, 3), 1);
    t.l.type->forward(&t.l, x, y, 1, &ctx);
    const float mean[3] = {0.485f, 0.456f, 0.406f}, sd[3] = {0.229f, 0.224f, 0.225f};
    for (int i = 0; i < 6; i++)
        assert_true(y[i] == (x[i] / 255.0f - mean[i % 3]) / sd[i % 3]);
    for (int i = 0; i < 6; i++)
        d[i] = (float)(i + 1);
    t.l.type->backward(&t.l, x, y, d, dx, 1, &ctx);
    assert_float_equal(dx[2], 3.0 / 255 / 0.225, 1e-6);
    assert_int_equal(tl_gradcheck(&t, &sn_ops_blas, 1, 1, 1e-2f, 1e-3, 1e-3), 0);
    tl_free(&t);
    /* grayscale input, an unknown mode: errors naming what to change */
    struct sn_err err = {0};
    assert_int_equal(tl_make(&t, "[preprocess]\n", img(4, 4, 1), 1, &err), SN_EINVAL);
    assert_non_null(strstr(err.msg, "color_mode = rgb"));
    tl_free(&t);
    assert_int_equal(tl_make(&t, "[preprocess]\nmode = imagenet\n", img(4, 4, 3), 1, &err),
                     SN_EINVAL);
    assert_non_null(strstr(err.msg, "caffe"));
    tl_free(&t);
}

static void test_flatten_gap_rescaling(void **state)
{
    struct tl t;
    tl_make_ok(&t, "[flatten]\n", img(3, 3, 128), 1);
    assert_int_equal(t.l.out.c, 1152);
    assert_int_equal(t.l.out.rank, 1);
    assert_int_equal(tl_gradcheck(&t, &sn_ops_blas, 1, 1, 1e-2f, 1e-3, 1e-3), 0);
    tl_free(&t);

    tl_make_ok(&t, "[globalaveragepooling2d]\n", img(3, 4, 5), 2);
    assert_int_equal(t.l.out.c, 5);
    assert_int_equal(t.l.out.rank, 1);
    float x[60], y[5];
    for (int i = 0; i < 60; i++)
        x[i] = (float)(i % 5) + (float)(i / 5); /* channel c at pixel p: c + p */
    struct sn_step_ctx ctx = tl_ctx(&t, &sn_ops_blas, 0, NULL);
    t.l.type->forward(&t.l, x, y, 1, &ctx);
    assert_float_equal(y[0], 5.5, 1e-5); /* mean of 0..11 */
    assert_float_equal(y[4], 9.5, 1e-5);
    assert_int_equal(tl_gradcheck(&t, &sn_ops_blas, 1, 2, 1e-2f, 1e-3, 1e-3), 0);
    ctx = tl_ctx(&t, &sn_ops_onednn, 0, NULL);
    t.l.type->forward(&t.l, x, y, 1, &ctx);
    assert_float_equal(y[0], 5.5, 1e-5);
    assert_float_equal(y[4], 9.5, 1e-5);
    assert_int_equal(tl_gradcheck(&t, &sn_ops_onednn, 1, 2, 1e-2f, 1e-3, 1e-3), 0);
    assert_int_equal(tl_gradcheck(&t, &sn_ops_ref, 1, 2, 1e-2f, 1e-3, 1e-3), 0);
    tl_free(&t);

    tl_make_ok(&t, "[rescaling]\nscale = 1/255\n", img(2, 2, 3), 1);
    assert_float_equal(t.l.conf.scale, 1.0 / 255, 1e-9);
    assert_float_equal(t.l.conf.offset, 0, 0);
    tl_free(&t);
    tl_make_ok(&t, "[rescaling]\nscale = 0.0078431\noffset = -1\n", img(2, 2, 3), 2);
    assert_float_equal(t.l.conf.scale, 0.0078431, 1e-9);
    assert_float_equal(t.l.conf.offset, -1, 0);
    tl_free(&t);
    float p[2] = {0, 255}, q[2];
    tl_make_ok(&t, "[rescaling]\nscale = 1.0 / 127.5\noffset = -1\n", vec(2), 1);
    ctx = tl_ctx(&t, &sn_ops_blas, 0, NULL);
    t.l.type->forward(&t.l, p, q, 1, &ctx);
    assert_float_equal(q[0], -1, 1e-6);
    assert_float_equal(q[1], 1, 1e-6);
    assert_int_equal(tl_gradcheck(&t, &sn_ops_blas, 1, 1, 1e-2f, 1e-3, 1e-3), 0);
    tl_free(&t);
    struct sn_err err = {0};
    assert_int_equal(tl_make(&t, "[rescaling]\nscale = 1/0\n", vec(2), 1, &err), SN_EINVAL);
    tl_free(&t);
    assert_int_equal(tl_make(&t, "[rescaling]\nscale = one\n", vec(2), 1, &err), SN_EINVAL);
    tl_free(&t);
    assert_int_equal(tl_make(&t, "[rescaling]\noffset = 1\n", vec(2), 1, &err), SN_EINVAL);
    tl_free(&t);
}

static void test_activation_layer(void **state)
{
    static const char *const cfgs[] = {
        "[activation]\nactivation = relu\n",    "[activation]\nactivation = sigmoid\n",
        "[activation]\nactivation = tanh\n",    "[activation]\nactivation = softmax\n",
        "[activation]\nactivation = linear\n",
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        struct tl t;
        tl_make_ok(&t, cfgs[i], img(2, 2, 5), 2);
        assert_int_equal(t.l.conf.act, i == 4 ? SN_ACT_LINEAR : (enum sn_act)(i + 1));
        assert_int_equal(tl_gradcheck(&t, &sn_ops_blas, 1, 2, 1e-3f, 1e-3, 1e-2), 0);
        tl_free(&t);
    }
    struct tl t;
    struct sn_err err = {0};
    assert_int_equal(tl_make(&t, "[activation]\n", vec(3), 1, &err), SN_EINVAL);
    tl_free(&t);
}

static void test_dropout(void **state)
{
    enum { S = 2000 };
    struct tl t;
    tl_make_ok(&t, "[dropout]\nrate = 0.25\n", vec(S), 3);
    static float x[3 * S], y[3 * S], y2[S], dy[3 * S], dx[3 * S];
    sn_test_fill(x, 3 * S, 0.5f, 1.5f, 51); /* never zero, so a zero output means dropped */
    int64_t ids[3] = {5, 9, 12}, ids2[1] = {9};
    struct sn_step_ctx ctx = tl_ctx(&t, &sn_ops_blas, 1, ids);
    t.l.type->forward(&t.l, x, y, 3, &ctx);
    int dropped = 0;
    for (int i = 0; i < 3 * S; i++) {
        if (y[i] == 0.0f)
            dropped++;
        else
            assert_float_equal(y[i], x[i] / 0.75f, 1e-6);
    }
    assert_true(dropped > 0.2 * 3 * S && dropped < 0.3 * 3 * S);
    /* the fixed mask: backward passes exactly what forward kept, scaled the same */
    sn_test_fill(dy, 3 * S, -1, 1, 52);
    t.l.type->backward(&t.l, x, y, dy, dx, 3, &ctx);
    for (int i = 0; i < 3 * S; i++)
        assert_float_equal(dx[i], y[i] == 0.0f ? 0.0f : dy[i] / 0.75f, 1e-6);
    assert_int_equal(tl_gradcheck(&t, &sn_ops_blas, 1, 3, 1e-2f, 1e-3, 1e-3), 0);
    /* sample 9 alone in another batch (another rank) draws the same mask */
    struct sn_step_ctx ctx2 = tl_ctx(&t, &sn_ops_blas, 1, ids2);
    t.l.type->forward(&t.l, x + S, y2, 1, &ctx2);
    t.l.type->forward(&t.l, x, y, 3, &ctx);
    assert_memory_equal(y2, y + S, S * sizeof(float));
    /* different rows, different masks; a different step, a different mask */
    assert_true(memcmp(y, y + S, S * sizeof(float)) != 0);
    ctx2.step = 8;
    t.l.type->forward(&t.l, x + S, y2, 1, &ctx2);
    assert_true(memcmp(y2, y + S, S * sizeof(float)) != 0);
    /* inference: identity */
    ctx.training = 0;
    t.l.type->forward(&t.l, x, y, 3, &ctx);
    assert_memory_equal(x, y, sizeof x);
    tl_free(&t);
    struct sn_err err = {0};
    assert_int_equal(tl_make(&t, "[dropout]\nrate = 1\n", vec(4), 1, &err), SN_EINVAL);
    tl_free(&t);
    assert_int_equal(tl_make(&t, "[dropout]\n", vec(4), 1, &err), SN_EINVAL);
    tl_free(&t);
}

/* Dropout's mask and products as they were first written — a float compare per element and a
 * branch per element — the oracle its fast loops must match bit for bit: x (n, S) -> y, m. */
static void dropout_naive(const struct tl *t, const struct sn_step_ctx *ctx, const float *x,
                          float *y, uint8_t *m, int n)
{
    const size_t S = sn_shape_size(t->l.in);
    const float rate = t->l.conf.rate, scale = 1.0f / (1.0f - rate);
    for (int r = 0; r < n; r++) {
        uint64_t h = sn_mix64(sn_hash3(ctx->seed ^ (uint64_t)t->l.index, ctx->step,
                                       (uint64_t)ctx->sample_ids[r]));
        for (size_t j = 0; j < S; j++) {
            size_t i = (size_t)r * S + j;
            m[i] = sn_hash_uniform(sn_hash64_keyed(h, j)) >= rate;
            y[i] = m[i] ? x[i] * scale : 0.0f;
        }
    }
}

/* The fast forward and backward give the naive loops' bits: at rates on and off the 2^-24 grid
 * the masks compare in integers, and for the inputs a multiply by 0 would get wrong (NaN,
 * infinities, -0.0: a dropped one is +0.0), out of place and in place. */
static void test_dropout_bits(void **state)
{
    enum { S = 1157, N = 3 }; /* odd, so the vector loops have a tail */
    const float rates[] = {0.3f, 0.5f, 0.25f, 1234567.0f / 16777216.0f,
                           nextafterf(1234567.0f / 16777216.0f, 0.0f),
                           nextafterf(1234567.0f / 16777216.0f, 1.0f), 1e-7f, 0.97f};
    static float x[N * S], y[N * S], yn[N * S], dy[N * S], dx[N * S], dxn[N * S];
    static uint8_t mn[N * S];
    int64_t ids[N] = {4, 17, 1000003};
    sn_test_fill(x, N * S, -2, 2, 61);
    sn_test_fill(dy, N * S, -2, 2, 62);
    const float special[] = {NAN, -NAN, INFINITY, -INFINITY, -0.0f, 0.0f, 1e-42f, -1e-42f, 3e38f};
    for (size_t i = 0; i < N * S; i += 7) {
        x[i] = special[(i / 7) % 9];
        dy[(i * 3) % (N * S)] = special[(i / 7 + 4) % 9];
    }
    for (size_t k = 0; k < sizeof rates / sizeof rates[0]; k++) {
        struct tl t;
        tl_make_ok(&t, "[dropout]\nrate = 0.5\n", vec(S), N);
        t.l.conf.rate = rates[k]; /* exactly this float, not a decimal's nearest */
        struct sn_step_ctx ctx = tl_ctx(&t, &sn_ops_blas, 1, ids);
        dropout_naive(&t, &ctx, x, yn, mn, N);
        t.l.type->forward(&t.l, x, y, N, &ctx);
        assert_memory_equal(y, yn, sizeof y);
        assert_memory_equal(t.aux, mn, sizeof mn);
        const float scale = 1.0f / (1.0f - rates[k]);
        for (size_t i = 0; i < N * S; i++)
            dxn[i] = mn[i] ? dy[i] * scale : 0.0f;
        t.l.type->backward(&t.l, x, y, dy, dx, N, &ctx);
        assert_memory_equal(dx, dxn, sizeof dx);
        /* in place: out = in, din = dout */
        memcpy(y, x, sizeof y);
        t.l.type->forward(&t.l, y, y, N, &ctx);
        assert_memory_equal(y, yn, sizeof y);
        memcpy(dx, dy, sizeof dx);
        t.l.type->backward(&t.l, x, y, dx, dx, N, &ctx);
        assert_memory_equal(dx, dxn, sizeof dx);
        tl_free(&t);
    }
}

static void test_batchnorm(void **state)
{
    struct tl t;
    tl_make_ok(&t, "[batchnormalization]\n", img(3, 3, 4), 4);
    assert_int_equal(t.l.n_params, 8);  /* gamma, beta */
    assert_int_equal(t.l.n_state, 8);   /* moving mean, variance */
    assert_float_equal(t.p[0], 1, 0);   /* gamma = 1 */
    assert_float_equal(t.p[4], 0, 0);   /* beta = 0 */
    assert_float_equal(t.state[4], 1, 0); /* moving variance = 1 */
    sn_test_fill(t.p, 8, 0.5f, 1.5f, 61);

    /* training: output normalised per channel with the batch statistics */
    enum { N = 4, R = N * 9, C = 4 };
    float x[R * C], y[R * C];
    sn_test_fill(x, R * C, -2, 4, 62);
    struct sn_step_ctx ctx = tl_ctx(&t, &sn_ops_blas, 1, NULL);
    t.l.type->forward(&t.l, x, y, N, &ctx);
    for (int c = 0; c < C; c++) {
        double m = 0, v = 0, xm = 0, xv = 0;
        for (int r = 0; r < R; r++)
            xm += x[r * C + c] / (double)R;
        for (int r = 0; r < R; r++)
            xv += (x[r * C + c] - xm) * (x[r * C + c] - xm) / R;
        for (int r = 0; r < R; r++)
            m += (y[r * C + c] - t.p[4 + c]) / t.p[c] / R;
        for (int r = 0; r < R; r++) {
            double z = (y[r * C + c] - t.p[4 + c]) / t.p[c];
            v += z * z / R;
        }
        assert_float_equal(m, 0, 1e-5);
        assert_float_equal(v, xv / (xv + 0.001), 1e-4);
        /* Keras momentum rule from mean 0, variance 1 */
        assert_float_equal(t.state[c], 0.01 * xm, 1e-5);
        assert_float_equal(t.state[C + c], 0.99 + 0.01 * xv, 1e-5);
    }
    /* inference: the moving statistics */
    ctx.training = 0;
    t.l.type->forward(&t.l, x, y, N, &ctx);
    for (int c = 0; c < C; c++) {
        double want = (x[c] - t.state[c]) / sqrt(t.state[C + c] + 0.001) * t.p[c] + t.p[4 + c];
        assert_float_equal(y[c], want, 1e-5);
    }

    /* gradients, training mode (through the batch statistics) and inference mode, on every
       backend */
    const struct sn_ops *backends[3] = {&sn_ops_blas, &sn_ops_onednn, &sn_ops_ref};
    for (int b = 0; b < 3; b++) {
        assert_int_equal(tl_gradcheck(&t, backends[b], 1, N, 1e-2f, 2e-3, 2e-2), 0);
        assert_int_equal(tl_gradcheck(&t, backends[b], 0, N, 1e-2f, 1e-3, 1e-2), 0);
    }
    tl_free(&t);
    /* scale only, center only */
    tl_make_ok(&t, "[batchnormalization]\ncenter = false\n", img(2, 3, 5), 3);
    sn_test_fill(t.p, t.l.n_params, 0.5f, 1.5f, 63);
    for (int b = 0; b < 3; b++)
        assert_int_equal(tl_gradcheck(&t, backends[b], 1, 3, 1e-2f, 2e-3, 2e-2), 0);
    tl_free(&t);
    tl_make_ok(&t, "[batchnormalization]\nscale = false\n", img(2, 3, 5), 3);
    sn_test_fill(t.p, t.l.n_params, -0.5f, 0.5f, 64);
    for (int b = 0; b < 3; b++)
        assert_int_equal(tl_gradcheck(&t, backends[b], 1, 3, 1e-2f, 2e-3, 2e-2), 0);
    tl_free(&t);

    /* center = false, scale = false: no params, still normalises */
    tl_make_ok(&t, "[batchnormalization]\ncenter = false\nscale = false\nmomentum = 0.9\n", vec(6),
               8);
    assert_int_equal(t.l.n_params, 0);
    assert_int_equal(t.l.n_state, 12);
    assert_float_equal(t.l.conf.momentum, 0.9, 1e-7);
    for (int b = 0; b < 3; b++)
        assert_int_equal(tl_gradcheck(&t, backends[b], 1, 8, 1e-2f, 2e-3, 2e-2), 0);
    tl_free(&t);
}

static void test_type_table(void **state)
{
    static const char *const names[] = {"rescaling", "conv2d",  "maxpooling2d",
                                        "flatten",   "dense",   "dropout",
                                        "activation", "globalaveragepooling2d",
                                        "batchnormalization", "preprocess"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const struct sn_layer_type *ty = sn_layer_type_find(names[i]);
        assert_non_null(ty);
        assert_string_equal(ty->section, names[i]);
        assert_non_null(ty->keras_name);
    }
    assert_null(sn_layer_type_find("conv3d"));
    int n = 0;
    while (sn_layer_types[n] != NULL)
        n++;
    assert_int_equal(n, 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_table),
        cmocka_unit_test(test_conv2d_mixed_backends),
        cmocka_unit_test(test_conv2d_config),
        cmocka_unit_test(test_conv2d_gradients),
        cmocka_unit_test(test_conv2d_logits_out),
        cmocka_unit_test(test_dense_config),
        cmocka_unit_test(test_dense_gradients),
        cmocka_unit_test(test_maxpool),
        cmocka_unit_test(test_preprocess),
        cmocka_unit_test(test_flatten_gap_rescaling),
        cmocka_unit_test(test_activation_layer),
        cmocka_unit_test(test_dropout),
        cmocka_unit_test(test_dropout_bits),
        cmocka_unit_test(test_batchnorm),
    };
    return cmocka_run_group_tests_name("layers", tests, NULL, NULL);
}
