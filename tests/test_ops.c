/* test_ops.c — the blas backend against the naive one, and both against small known outputs:
 * convolution (padding, strides, non-square kernels, batches, the chunked path), GEMM with every
 * transpose, max pooling (the lecture's 6x4 example), activations, Keras's output-size rule. */
#include <setjmp.h> // defines: jmp_buf (cmocka needs it)
#include <stdarg.h> // defines: va_list (cmocka needs it)
#include <stddef.h> // defines: size_t (cmocka needs it)
#include <stdint.h> // defines: int32_t
#include <stdio.h>  // defines: fprintf
#include <stdlib.h> // defines: malloc, free, calloc, setenv, unsetenv

#include <cmocka.h> // defines: cmocka_unit_test, assert_*

#include <math.h>   // defines: exp, roundf, NAN, INFINITY
#include <string.h> // defines: memcpy

#include "ops.h"
#include "testutil.h"

/* One convolution case: input (n,h,w,c), oc filters of kh x kw, strides, padding. */
struct conv_case {
    int n, h, w, c, oc, kh, kw, sh, sw, same;
};

static void make_desc(const struct conv_case *t, struct sn_conv_desc *d)
{
    *d = (struct sn_conv_desc){.n = t->n, .h = t->h, .w = t->w, .c = t->c, .oc = t->oc,
                               .kh = t->kh, .kw = t->kw, .sh = t->sh, .sw = t->sw};
    d->oh = sn_out_size(t->h, t->kh, t->sh, t->same, &d->pad_top);
    d->ow = sn_out_size(t->w, t->kw, t->sw, t->same, &d->pad_left);
}

/* x = round(x * 4) / 4: every product and every sum of them is then exact in float, so two
 * correct backends agree to the last bit however they order their sums. */
static void quantize(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = roundf(x[i] * 4.0f) / 4.0f;
}

/* The fast backends, each checked against sn_ops_ref. */
static const struct sn_ops *const fast[] = {&sn_ops_blas, &sn_ops_onednn};
#define N_FAST (sizeof fast / sizeof fast[0])

/* Runs forward and backward on a fast backend and the naive one and compares out, din, dw, db. dw and db start
 * from the same nonzero values, so "accumulate, not overwrite" is checked too. With `exact`, the
 * data are quantized and the results must agree to tol over sums of thousands of terms. */
static void check_conv_case(const struct sn_ops *ops, const struct conv_case *t, double tol,
                            int exact)
{
    struct sn_conv_desc d;
    make_desc(t, &d);
    size_t nin = (size_t)d.n * d.h * d.w * d.c, nout = (size_t)d.n * d.oh * d.ow * d.oc;
    size_t nw = (size_t)d.kh * d.kw * d.c * d.oc;
    float *in = malloc(nin * 4), *w = malloc(nw * 4), *b = malloc(d.oc * 4);
    float *out_b = malloc(nout * 4), *out_r = malloc(nout * 4), *dout = malloc(nout * 4);
    float *din_b = malloc(nin * 4), *din_r = malloc(nin * 4);
    float *dw_b = malloc(nw * 4), *dw_r = malloc(nw * 4), *db_b = malloc(d.oc * 4),
          *db_r = malloc(d.oc * 4);
    size_t sbytes = ops->conv2d_scratch(&d);
    void *scratch = malloc(sbytes ? sbytes : 1);
    assert_non_null(scratch);
    sn_test_fill(in, nin, -1, 1, 1);
    sn_test_fill(w, nw, -0.5f, 0.5f, 2);
    sn_test_fill(b, d.oc, -1, 1, 3);
    sn_test_fill(dout, nout, -1, 1, 4);
    sn_test_fill(dw_b, nw, -0.1f, 0.1f, 5);
    memcpy(dw_r, dw_b, nw * 4);
    sn_test_fill(db_b, d.oc, -0.1f, 0.1f, 6);
    memcpy(db_r, db_b, d.oc * 4);
    if (exact) {
        quantize(in, nin), quantize(w, nw), quantize(b, d.oc), quantize(dout, nout);
        quantize(dw_b, nw), quantize(dw_r, nw), quantize(db_b, d.oc), quantize(db_r, d.oc);
    }

    ops->conv2d_forward(&d, in, w, b, SN_ACT_LINEAR, out_b, scratch);
    sn_ops_ref.conv2d_forward(&d, in, w, b, SN_ACT_LINEAR, out_r, NULL);
    assert_true(sn_test_max_rel_diff(out_b, out_r, nout) < tol);

    ops->conv2d_backward(&d, in, w, dout, din_b, dw_b, db_b, scratch);
    sn_ops_ref.conv2d_backward(&d, in, w, dout, din_r, dw_r, db_r, NULL);
    assert_true(sn_test_max_rel_diff(din_b, din_r, nin) < tol);
    assert_true(sn_test_max_rel_diff(dw_b, dw_r, nw) < tol);
    assert_true(sn_test_max_rel_diff(db_b, db_r, d.oc) < tol);

    /* din == NULL (a first layer): same parameter gradients, accumulated a second time */
    ops->conv2d_backward(&d, in, w, dout, NULL, dw_b, db_b, scratch);
    sn_ops_ref.conv2d_backward(&d, in, w, dout, NULL, dw_r, db_r, NULL);
    assert_true(sn_test_max_rel_diff(dw_b, dw_r, nw) < tol);
    assert_true(sn_test_max_rel_diff(db_b, db_r, d.oc) < tol);

    /* the layers' layout: bias right after the kernel, [w; b] and [dw; db] contiguous, which
     * lets the backend fold the bias into its GEMMs */
    float *wb = malloc((nw + d.oc) * 4), *dwb = malloc((nw + d.oc) * 4);
    memcpy(wb, w, nw * 4);
    memcpy(wb + nw, b, d.oc * 4);
    memcpy(dwb, dw_r, nw * 4);
    memcpy(dwb + nw, db_r, d.oc * 4);
    ops->conv2d_forward(&d, in, wb, wb + nw, SN_ACT_LINEAR, out_b, scratch);
    assert_true(sn_test_max_rel_diff(out_b, out_r, nout) < tol);
    ops->conv2d_backward(&d, in, wb, dout, din_b, dwb, dwb + nw, scratch);
    sn_ops_ref.conv2d_backward(&d, in, w, dout, NULL, dw_r, db_r, NULL);
    assert_true(sn_test_max_rel_diff(din_b, din_r, nin) < tol);
    assert_true(sn_test_max_rel_diff(dwb, dw_r, nw) < tol);
    assert_true(sn_test_max_rel_diff(dwb + nw, db_r, d.oc) < tol);
    /* no bias at all */
    ops->conv2d_forward(&d, in, w, NULL, SN_ACT_LINEAR, out_b, scratch);
    sn_ops_ref.conv2d_forward(&d, in, w, NULL, SN_ACT_LINEAR, out_r, NULL);
    assert_true(sn_test_max_rel_diff(out_b, out_r, nout) < tol);
    free(wb), free(dwb);
    /* an activation fused into the convolution (oneDNN's post-op) equals one after it; ReLU
     * exactly as the sum, sigmoid and tanh as float against double */
    for (int act = SN_ACT_RELU; act <= SN_ACT_TANH; act++) {
        ops->conv2d_forward(&d, in, w, b, (enum sn_act)act, out_b, scratch);
        sn_ops_ref.conv2d_forward(&d, in, w, b, (enum sn_act)act, out_r, NULL);
        assert_true(sn_test_max_rel_diff(out_b, out_r, nout) < (act == SN_ACT_RELU ? tol : fmax(tol, 1e-5)));
    }

    free(in), free(w), free(b), free(out_b), free(out_r), free(dout), free(din_b), free(din_r);
    free(dw_b), free(dw_r), free(db_b), free(db_r), free(scratch);
}

static void test_conv_small_cases(void **state)
{
    static const struct conv_case cases[] = {
        /* n  h  w  c oc kh kw sh sw same */
        {2, 7, 7, 3, 4, 3, 3, 1, 1, 0},  /* valid */
        {2, 7, 8, 3, 5, 3, 3, 1, 1, 1},  /* same */
        {3, 9, 7, 2, 4, 3, 2, 2, 2, 1},  /* same, non-square kernel, stride 2 */
        {2, 10, 9, 3, 6, 2, 3, 2, 1, 0}, /* valid, non-square kernel and strides */
        {2, 6, 6, 1, 8, 3, 3, 1, 1, 0},  /* one input channel (the first layer) */
        {2, 6, 5, 1, 4, 3, 3, 1, 1, 1},  /* one channel, same: border and interior rows */
        {2, 7, 6, 1, 4, 3, 3, 2, 1, 0},  /* one channel, row stride 2 */
        {2, 8, 8, 4, 3, 1, 1, 1, 1, 0},  /* 1x1: no im2col */
        {1, 8, 8, 4, 3, 1, 1, 2, 2, 0},  /* 1x1 with stride: im2col */
        {2, 5, 5, 3, 2, 5, 5, 1, 1, 1},  /* kernel as large as the image, same */
        {1, 4, 4, 2, 2, 4, 4, 3, 3, 1},  /* same padding with stride 3 */
        {3, 11, 9, 17, 19, 3, 3, 1, 1, 1}, /* channels not a multiple of 8 or 16, same */
        {2, 13, 13, 32, 64, 3, 3, 1, 1, 0}, /* Listing 8.1's second layer, batch 2 */
        {2, 9, 10, 24, 40, 3, 3, 2, 2, 1}, /* stride 2, same, odd sizes */
        {2, 7, 7, 16, 33, 1, 1, 1, 1, 0},  /* 1x1 with many channels */
        {1, 12, 12, 3, 16, 5, 5, 1, 1, 1}, /* 5x5 on RGB */
    };
    for (size_t k = 0; k < N_FAST; k++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            check_conv_case(fast[k], &cases[i], 1e-5, 0);
}

/* A 1x1 convolution with stride on fewer input channels than oneDNN's 1x1 kernels take in a
 * block (8 on AVX2, 16 on AVX-512): oneDNN 2.6.3 computes its weight gradient out of a
 * workspace too small for it (ops_dnnl.c, conv_bwd_weights_overruns), a wrong dW where two
 * threads share it, a write past the scratchpad with one. The class around the case of
 * test_conv_small_cases: strides 2, 3, 4 and unequal ones, 1 to 15 channels, batches, and
 * images up to 64x64 (where the AVX-512 kernel's overrun leaves its allocation's slack);
 * forward and input gradient too, and 16 and 24 channels beside the class. On quarters, so that
 * sums over 4,096 pixels are exact and any wrong value shows. Each thread count starts from no
 * primitive, since oneDNN sizes a primitive's work for the threads at hand. */
static void test_conv_1x1_strided_few_channels(void **state)
{
    static const struct conv_case cases[] = {
        /* n  h  w  c oc kh kw sh sw same */
        {1, 8, 8, 4, 3, 1, 1, 2, 2, 0},    /* test_conv_small_cases's */
        {2, 16, 16, 3, 8, 1, 1, 2, 2, 0},  /* RGB */
        {3, 13, 13, 5, 16, 1, 1, 3, 3, 0}, /* stride 3 */
        {2, 17, 17, 1, 8, 1, 1, 4, 4, 0},  /* one channel, stride 4 */
        {1, 8, 8, 4, 3, 1, 1, 1, 2, 0},    /* stride along the width only */
        {2, 11, 11, 7, 9, 1, 1, 2, 1, 0},  /* along the height only */
        {2, 12, 10, 2, 5, 1, 1, 2, 3, 1},  /* unequal strides, same */
        {4, 64, 64, 8, 16, 1, 1, 2, 2, 0}, /* 8 channels: under AVX-512's block, AVX2's own */
        {3, 32, 32, 12, 16, 1, 1, 2, 2, 1}, /* 12 */
        {2, 28, 28, 15, 8, 1, 1, 2, 2, 0}, /* 15 */
        {2, 16, 16, 16, 8, 1, 1, 2, 2, 0}, /* 16: a whole block */
        {2, 16, 16, 24, 8, 1, 1, 2, 2, 0}, /* 24 */
    };
    int threads = sn_ops_get_threads();
    static const int nthr[] = {2, 1};
    for (size_t t = 0; t < sizeof nthr / sizeof nthr[0]; t++) {
        sn_ops_onednn_free();
        sn_ops_set_threads(nthr[t]);
        for (size_t k = 0; k < N_FAST; k++)
            for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
                check_conv_case(fast[k], &cases[i], 1e-5, 1);
    }
    sn_ops_onednn_free();
    sn_ops_set_threads(threads);
}

/* Winograd's F(4x4, 3x3) reorders the sums and goes through fractions (1/4, 1/6, ...) that
 * float cannot hold exactly: agreement to 5e-4 relative, not 1e-5 (a weight gradient summed
 * over 16,000 positions, twice, is the worst case here: 1.5e-4). On a CPU where oneDNN has no
 * Winograd primitive the table computes as sn_ops_onednn, which is checked the same way. */
static void test_conv_winograd(void **state)
{
    static const struct conv_case cases[] = {
        /* n  h  w  c oc kh kw sh sw same */
        {2, 13, 13, 32, 64, 3, 3, 1, 1, 0}, /* Listing 8.1's second layer, valid */
        {2, 12, 12, 16, 32, 3, 3, 1, 1, 1}, /* same */
        {3, 9, 11, 48, 16, 3, 3, 1, 1, 1},  /* odd sizes: partial 4x4 output tiles */
        {1, 6, 6, 64, 64, 3, 3, 1, 1, 1},   /* one image */
        {24, 5, 5, 64, 128, 3, 3, 1, 1, 0}, /* Listing 8.1's third layer: one 3x3 tile */
        {12, 13, 13, 32, 64, 3, 3, 1, 1, 0}, /* its second, at batch 12 */
        {24, 28, 28, 1, 32, 3, 3, 1, 1, 0}, /* its first: one input channel */
        {2, 7, 7, 3, 16, 3, 3, 1, 1, 1},    /* RGB: oneDNN pads the channels to 16 */
        {2, 9, 9, 16, 16, 3, 3, 2, 2, 1},   /* stride 2: never Winograd */
    };
    int has = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sn_conv_desc d;
        make_desc(&cases[i], &d);
        if (sn_ops_winograd_has(&d))
            has++;
        if (i == 8)
            assert_false(sn_ops_winograd_has(&d));
        check_conv_case(&sn_ops_winograd, &cases[i], 5e-4, 0);
    }
    if (!has)
        print_message("note: oneDNN has no Winograd convolution on this CPU; checked its "
                      "fallback only\n");
}

/* max |a - b| over max |b|: an error measured against the tensor's scale */
static double diff_to_max(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)b[i]));
    }
    return m > 0 ? d / m : d;
}

/* What sn_ops_bf16 computes on this CPU. Where it multiplies bf16 natively (AVX-512 BF16 or
 * AMX: sn_ops_bf16_native) oneDNN rounds the inputs to bf16. On other AVX-512 CPUs oneDNN 2.6.3
 * emulates those instructions: the same rounding, slower. Below AVX-512 it has no bf16
 * convolution at all: the bf16 primitives are refused and the table computes as sn_ops_onednn,
 * in fp32 ([train] precision = bf16 is refused on such a CPU before any work, settings.c's
 * sn_settings_check_cpu, so there only its correctness matters). */
enum bf16_kind { BF16_NATIVE, BF16_EMULATED, BF16_FP32 };

static enum bf16_kind bf16_kind(void)
{
    if (sn_ops_bf16_native())
        return BF16_NATIVE;
    char isa[96];
    sn_ops_onednn_describe(isa, sizeof isa); /* "oneDNN 2.6.3 avx2" */
    return strstr(isa, " avx512") ? BF16_EMULATED : BF16_FP32;
}

/* forward, input gradient and weight gradient of bf16 on random data, against the naive ones:
 * within bf16's rounding everywhere; and that rounding shows where bf16 runs (else the fp32
 * path ran), while where it does not they are fp32's results, to 1e-5 */
static void check_conv_bf16_random(const struct conv_case *t, enum bf16_kind kind)
{
    struct sn_conv_desc d;
    make_desc(t, &d);
    size_t nin = (size_t)d.n * d.h * d.w * d.c, nout = (size_t)d.n * d.oh * d.ow * d.oc;
    size_t nw = (size_t)d.kh * d.kw * d.c * d.oc;
    float *in = malloc(nin * 4), *w = malloc(nw * 4), *dout = malloc(nout * 4);
    float *y = malloc(nout * 4), *yr = malloc(nout * 4);
    float *dx = malloc(nin * 4), *dxr = malloc(nin * 4);
    float *dw = calloc(nw, 4), *dwr = calloc(nw, 4);
    void *scratch = malloc(sn_ops_bf16.conv2d_scratch(&d) + 1);
    sn_test_fill(in, nin, -1, 1, 31);
    sn_test_fill(w, nw, -0.5f, 0.5f, 32);
    sn_test_fill(dout, nout, -1, 1, 33);
    sn_ops_bf16.conv2d_forward(&d, in, w, NULL, SN_ACT_LINEAR, y, scratch);
    sn_ops_ref.conv2d_forward(&d, in, w, NULL, SN_ACT_LINEAR, yr, NULL);
    sn_ops_bf16.conv2d_backward(&d, in, w, dout, dx, dw, NULL, scratch);
    sn_ops_ref.conv2d_backward(&d, in, w, dout, dxr, dwr, NULL, NULL);
    assert_true(diff_to_max(y, yr, nout) < 1e-2);
    assert_true(diff_to_max(dx, dxr, nin) < 1e-2);
    assert_true(diff_to_max(dw, dwr, nw) < 1e-2);
    if (kind == BF16_FP32) {
        assert_true(diff_to_max(y, yr, nout) < 1e-5);
        assert_true(diff_to_max(dx, dxr, nin) < 1e-5);
        assert_true(diff_to_max(dw, dwr, nw) < 1e-5);
    } else {
        assert_true(diff_to_max(y, yr, nout) > 1e-5);
    }
    free(in), free(w), free(dout), free(y), free(yr), free(dx), free(dxr), free(dw), free(dwr);
    free(scratch);
}

/* bf16 convolutions ([train] precision = bf16) round each input to 8 bits of mantissa and sum
 * in fp32: on quarters (which bf16 holds exactly) they equal the naive sums to float rounding;
 * on random data they agree to 1e-2 of the tensor's largest value (2^-8 per factor, over sums of
 * up to 576 terms of random sign: about 2e-3 measured). Where the CPU has no bf16 at all (see
 * bf16_kind) the same checks hold of fp32's results, and the rounding check gives way to one
 * that they are fp32's. */
static void test_conv_bf16(void **state)
{
    static const struct conv_case cases[] = {
        /* n  h  w  c oc kh kw sh sw same */
        {2, 13, 13, 32, 64, 3, 3, 1, 1, 0}, /* Listing 8.1's second layer */
        {24, 28, 28, 1, 32, 3, 3, 1, 1, 0}, /* its first: one input channel */
        {2, 7, 7, 3, 16, 3, 3, 1, 1, 1},    /* RGB, same */
        {3, 11, 9, 17, 19, 3, 3, 1, 1, 1},  /* channels not in 16s */
        {2, 9, 10, 24, 40, 3, 3, 2, 2, 1},  /* stride 2, odd sizes */
        {2, 7, 7, 16, 33, 1, 1, 1, 1, 0},   /* 1x1 */
    };
    enum bf16_kind kind = bf16_kind();
    if (kind == BF16_EMULATED)
        print_message("note: no bf16 arithmetic on this CPU: oneDNN's emulation of it on "
                      "AVX-512 is checked, bf16 rounding included\n");
    if (kind == BF16_FP32)
        print_message("note: bf16 rounding check skipped: this CPU has no bf16 arithmetic and "
                      "oneDNN no bf16 convolution below AVX-512, so sn_ops_bf16 computes in "
                      "fp32, checked equal to fp32 within 1e-5\n");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        check_conv_case(&sn_ops_bf16, &cases[i], 1e-6, 1);
        check_conv_bf16_random(&cases[i], kind);
    }
}

/* NHWC x (n,h,w,c) -> y in oneDNN's nChw16c (c a multiple of 16), or back when `back`. */
static void to_blocked(const float *x, float *y, int n, int h, int w, int c, int back)
{
    for (int i = 0; i < n; i++)
        for (int r = 0; r < h; r++)
            for (int q = 0; q < w; q++)
                for (int k = 0; k < c; k++) {
                    size_t nhwc = (((size_t)i * h + r) * w + q) * c + k;
                    size_t blk = ((((size_t)i * (c / 16) + k / 16) * h + r) * w + q) * 16 + k % 16;
                    if (back)
                        y[nhwc] = x[blk];
                    else
                        y[blk] = x[nhwc];
                }
}

/* A tensor in the layout `blk` names: a blocked copy of NHWC x, or x itself. */
static float *laid(const float *x, int blk, int n, int h, int w, int c)
{
    size_t count = (size_t)n * h * w * c;
    float *y = malloc(count * 4);
    assert_non_null(y);
    if (blk)
        to_blocked(x, y, n, h, w, c, 0);
    else
        memcpy(y, x, count * 4);
    return y;
}

/* y, in the layout `blk` names, back to NHWC, in place. */
static void unlay(float *y, int blk, int n, int h, int w, int c)
{
    if (!blk)
        return;
    size_t count = (size_t)n * h * w * c;
    float *t = malloc(count * 4);
    assert_non_null(t);
    to_blocked(y, t, n, h, w, c, 1);
    memcpy(y, t, count * 4);
    free(t);
}

/* One convolution with its input or output (and their gradients) in oneDNN's blocked layout,
 * as the model keeps them between two oneDNN layers, against the naive NHWC results. */
static void check_conv_blocked(const struct sn_ops *ops, const struct conv_case *t, int bi, int bo)
{
    struct sn_conv_desc d;
    make_desc(t, &d);
    size_t nin = (size_t)d.n * d.h * d.w * d.c, nout = (size_t)d.n * d.oh * d.ow * d.oc;
    size_t nw = (size_t)d.kh * d.kw * d.c * d.oc;
    float *in = malloc(nin * 4), *w = malloc(nw * 4), *b = malloc(d.oc * 4);
    float *dout = malloc(nout * 4), *out_r = malloc(nout * 4), *din_r = malloc(nin * 4);
    float *dw_r = calloc(nw, 4), *db_r = calloc(d.oc, 4), *dw = calloc(nw, 4), *db = calloc(d.oc, 4);
    void *scratch = malloc(ops->conv2d_scratch(&d) + 1);
    sn_test_fill(in, nin, -1, 1, 11);
    sn_test_fill(w, nw, -0.5f, 0.5f, 12);
    sn_test_fill(b, d.oc, -1, 1, 13);
    sn_test_fill(dout, nout, -1, 1, 14);
    sn_ops_ref.conv2d_forward(&d, in, w, b, SN_ACT_RELU, out_r, NULL);
    sn_ops_ref.conv2d_backward(&d, in, w, dout, din_r, dw_r, db_r, NULL);

    d.blk_in = bi, d.blk_out = bo;
    float *x = laid(in, bi, d.n, d.h, d.w, d.c), *dy = laid(dout, bo, d.n, d.oh, d.ow, d.oc);
    float *y = malloc(nout * 4), *dx = malloc(nin * 4);
    ops->conv2d_forward(&d, x, w, b, SN_ACT_RELU, y, scratch);
    ops->conv2d_backward(&d, x, w, dy, dx, dw, db, scratch);
    unlay(y, bo, d.n, d.oh, d.ow, d.oc);
    unlay(dx, bi, d.n, d.h, d.w, d.c);
    double tol = ops == &sn_ops_winograd ? 5e-4 : 1e-5;
    assert_true(sn_test_max_rel_diff(y, out_r, nout) < tol);
    assert_true(sn_test_max_rel_diff(dx, din_r, nin) < tol);
    assert_true(sn_test_max_rel_diff(dw, dw_r, nw) < tol);
    assert_true(sn_test_max_rel_diff(db, db_r, d.oc) < tol);
    free(in), free(w), free(b), free(dout), free(out_r), free(din_r), free(dw_r), free(db_r);
    free(dw), free(db), free(scratch), free(x), free(dy), free(y), free(dx);
}

/* One max pooling on blocked input and output, against the naive NHWC results. */
static void check_pool_blocked(const struct sn_ops *ops, int n, int h, int w, int c, int p,
                               int same)
{
    struct sn_pool_desc d = {.n = n, .h = h, .w = w, .c = c, .ph = p, .pw = p, .sh = p, .sw = p};
    d.oh = sn_out_size(h, p, p, same, &d.pad_top);
    d.ow = sn_out_size(w, p, p, same, &d.pad_left);
    size_t ni = (size_t)n * h * w * c, no = (size_t)n * d.oh * d.ow * c;
    float *in = malloc(ni * 4), *dout = malloc(no * 4), *out_r = malloc(no * 4);
    float *din_r = malloc(ni * 4), *y = malloc(no * 4), *dx = malloc(ni * 4);
    int32_t *ar = malloc(no * 4), *a = malloc(no * 4);
    sn_test_fill(in, ni, -1, 1, 21);
    sn_test_fill(dout, no, -1, 1, 22);
    sn_ops_ref.maxpool_forward(&d, in, out_r, ar);
    sn_ops_ref.maxpool_backward(&d, dout, ar, din_r);
    d.blk_in = d.blk_out = 1;
    float *x = laid(in, 1, n, h, w, c), *dy = laid(dout, 1, n, d.oh, d.ow, c);
    ops->maxpool_forward(&d, x, y, a);
    ops->maxpool_backward(&d, dy, a, dx);
    unlay(y, 1, n, d.oh, d.ow, c);
    unlay(dx, 1, n, h, w, c);
    assert_true(sn_test_max_rel_diff(y, out_r, no) == 0);
    assert_true(sn_test_max_rel_diff(dx, din_r, ni) < 1e-6);
    free(in), free(dout), free(out_r), free(din_r), free(y), free(dx), free(ar), free(a);
    free(x), free(dy);
}

static void check_blocked_all(void)
{
    static const struct conv_case cases[] = {
        /* n  h  w  c oc kh kw sh sw same */
        {2, 13, 13, 32, 64, 3, 3, 1, 1, 0}, /* Listing 8.1's second layer: Winograd */
        {3, 9, 11, 48, 16, 3, 3, 1, 1, 1},  /* odd sizes, same */
        {2, 9, 9, 16, 32, 3, 3, 2, 2, 1},   /* stride 2: direct */
        {2, 7, 7, 16, 32, 1, 1, 1, 1, 0},   /* 1x1: direct */
    };
    const struct sn_ops *const ops[] = {&sn_ops_onednn, &sn_ops_winograd};
    for (size_t k = 0; k < 2; k++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            for (int m = 1; m < 4; m++) /* in blocked, out blocked, both */
                check_conv_blocked(ops[k], &cases[i], m & 1, m >> 1);
        check_pool_blocked(ops[k], 2, 26, 26, 32, 2, 0);
        check_pool_blocked(ops[k], 3, 7, 9, 16, 2, 1);
    }
}

/* Tensors kept in oneDNN's blocked layout between layers: each oneDNN convolution and pooling
 * reads and writes them so, and where oneDNN refuses a shape (forced here by the test hook),
 * sn_ops_blas computes it on NHWC copies and the results still come back blocked. */
static void test_blocked_layouts(void **state)
{
    check_blocked_all();
    sn_ops_onednn_free();
    setenv("SN_TEST_ONEDNN_REFUSE", "1", 1);
    check_blocked_all();
    unsetenv("SN_TEST_ONEDNN_REFUSE");
    sn_ops_onednn_free();
}

static void test_conv_chunked(void **state)
{
    /* K = 3*3*16 = 144, M = 8*64*64 = 32768: col would be 18.9 MB, over the 1 MB bound, so the
     * rows are split in chunks of 1,808 — and chunk boundaries fall inside images. */
    const struct conv_case t = {8, 64, 64, 16, 8, 3, 3, 1, 1, 1};
    struct sn_conv_desc d;
    make_desc(&t, &d);
    size_t full = (size_t)d.n * d.oh * d.ow * d.kh * d.kw * d.c * sizeof(float);
    size_t sbytes = sn_ops_blas.conv2d_scratch(&d);
    assert_true(sbytes < full);
    assert_true(sbytes <= ((size_t)1 << 20));
    for (size_t k = 0; k < N_FAST; k++)
        check_conv_case(fast[k], &t, 1e-9, 1);
}

static void test_conv_scratch_bound(void **state)
{
    /* the cats-vs-dogs first layer at batch 32 must not need its 100+ MB col matrix */
    const struct conv_case t = {32, 180, 180, 3, 32, 3, 3, 1, 1, 0};
    struct sn_conv_desc d;
    make_desc(&t, &d);
    assert_int_equal(d.oh, 178);
    assert_true(sn_ops_blas.conv2d_scratch(&d) <= ((size_t)1 << 20));
    assert_true(sn_ops_blas.conv2d_scratch(&d) > 0);
    assert_int_equal(sn_ops_conv2d_scratch_max(&d), sn_ops_blas.conv2d_scratch(&d));
    assert_int_equal(sn_ops_ref.conv2d_scratch(&d), 0);
    /* the 1x1 unpadded kernel needs none */
    const struct conv_case p = {32, 10, 10, 64, 32, 1, 1, 1, 1, 0};
    make_desc(&p, &d);
    assert_int_equal(sn_ops_blas.conv2d_scratch(&d), 0);
}

static void test_conv_known_values(void **state)
{
    /* 3x3 input of 1..9, one 2x2 kernel of ones, bias 0.5, valid: sums of each 2x2 window */
    float in[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, w[4] = {1, 1, 1, 1}, b[1] = {0.5f}, out[4];
    struct sn_conv_desc d = {.n = 1, .h = 3, .w = 3, .c = 1, .oh = 2, .ow = 2, .oc = 1,
                             .kh = 2, .kw = 2, .sh = 1, .sw = 1};
    float scratch[64];
    sn_ops_blas.conv2d_forward(&d, in, w, b, SN_ACT_LINEAR, out, scratch);
    const float want[4] = {12.5f, 16.5f, 24.5f, 28.5f};
    for (int i = 0; i < 4; i++)
        assert_float_equal(out[i], want[i], 1e-5);
}

static void test_gemm_transposes(void **state)
{
    const int m = 37, n = 23, k = 19;
    float a[37 * 19], b[19 * 23], c0[37 * 23], cb[37 * 23], cr[37 * 23];
    sn_test_fill(a, sizeof a / 4, -1, 1, 11);
    sn_test_fill(b, sizeof b / 4, -1, 1, 12);
    sn_test_fill(c0, sizeof c0 / 4, -1, 1, 13);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++) {
            memcpy(cb, c0, sizeof c0);
            memcpy(cr, c0, sizeof c0);
            sn_ops_blas.gemm(ta, tb, m, n, k, 0.75f, a, b, 0.5f, cb);
            sn_ops_ref.gemm(ta, tb, m, n, k, 0.75f, a, b, 0.5f, cr);
            assert_true(sn_test_max_rel_diff(cb, cr, (size_t)m * n) < 1e-5);
            /* beta = 0 overwrites, whatever C held */
            sn_ops_blas.gemm(ta, tb, m, n, k, 1.0f, a, b, 0.0f, cb);
            sn_ops_ref.gemm(ta, tb, m, n, k, 1.0f, a, b, 0.0f, cr);
            assert_true(sn_test_max_rel_diff(cb, cr, (size_t)m * n) < 1e-5);
        }
    /* a known product: [[1,2],[3,4]] x [[5,6],[7,8]] = [[19,22],[43,50]] */
    float x[4] = {1, 2, 3, 4}, y[4] = {5, 6, 7, 8}, z[4];
    sn_ops_blas.gemm(0, 0, 2, 2, 2, 1.0f, x, y, 0.0f, z);
    assert_float_equal(z[0], 19, 1e-6);
    assert_float_equal(z[1], 22, 1e-6);
    assert_float_equal(z[2], 43, 1e-6);
    assert_float_equal(z[3], 50, 1e-6);
    /* x^T y = [[26,30],[38,44]] */
    sn_ops_blas.gemm(1, 0, 2, 2, 2, 1.0f, x, y, 0.0f, z);
    assert_float_equal(z[0], 26, 1e-6);
    assert_float_equal(z[3], 44, 1e-6);
}

static void test_maxpool_lecture_example(void **state)
{
    const float in[24] = {0, 0,   0,   0,   0, 219, 253, 247, 0,   0,   190, 0,
                          0, 0,   0,   93,  0, 0,   221, 253, 136, 212, 0,   0};
    struct sn_pool_desc d = {.n = 1, .h = 6, .w = 4, .c = 1, .ph = 2, .pw = 2, .sh = 2, .sw = 2};
    d.oh = sn_out_size(6, 2, 2, 0, &d.pad_top);
    d.ow = sn_out_size(4, 2, 2, 0, &d.pad_left);
    assert_int_equal(d.oh, 3);
    assert_int_equal(d.ow, 2);
    const float want[6] = {219, 253, 0, 190, 212, 253};
    const struct sn_ops *backends[2] = {&sn_ops_blas, &sn_ops_ref};
    for (int k = 0; k < 2; k++) {
        float out[6], din[24], dout[6] = {1, 2, 3, 4, 5, 6};
        int32_t am[6];
        backends[k]->maxpool_forward(&d, in, out, am);
        for (int i = 0; i < 6; i++)
            assert_float_equal(out[i], want[i], 0);
        assert_int_equal(am[0], 5);  /* 219 at (1,1) */
        assert_int_equal(am[1], 6);  /* 253 at (1,2) */
        assert_int_equal(am[5], 19); /* 253 at (4,3) */
        backends[k]->maxpool_backward(&d, dout, am, din);
        assert_float_equal(din[5], 1, 0);
        assert_float_equal(din[6], 2, 0);
        assert_float_equal(din[9], 0, 0);
        assert_float_equal(din[21], 5, 0);
        assert_float_equal(din[19], 6, 0);
        double s = 0;
        for (int i = 0; i < 24; i++)
            s += din[i];
        assert_float_equal(s, 21, 1e-9);
    }
}

static void test_maxpool_same_padding_never_wins(void **state)
{
    /* all inputs negative: a zero padding cell would win if it were counted */
    enum { N = 2, H = 5, W = 7, C = 3 };
    float in[N * H * W * C];
    sn_test_fill(in, sizeof in / 4, -2, -1, 21);
    struct sn_pool_desc d = {.n = N, .h = H, .w = W, .c = C, .ph = 3, .pw = 3, .sh = 2, .sw = 2};
    d.oh = sn_out_size(H, 3, 2, 1, &d.pad_top);
    d.ow = sn_out_size(W, 3, 2, 1, &d.pad_left);
    size_t no = (size_t)N * d.oh * d.ow * C;
    float ob[64 * 3], orf[64 * 3], dinb[N * H * W * C], dinr[N * H * W * C];
    int32_t ab[64 * 3], ar[64 * 3];
    assert_true(no <= 64 * 3);
    sn_ops_blas.maxpool_forward(&d, in, ob, ab);
    sn_ops_ref.maxpool_forward(&d, in, orf, ar);
    for (size_t i = 0; i < no; i++) {
        assert_true(ob[i] < -0.9f);
        assert_float_equal(ob[i], orf[i], 0);
        assert_int_equal(ab[i], ar[i]);
    }
    /* stride 1 with 3x3 windows overlap: the scatter must add */
    d.sh = d.sw = 1;
    d.oh = sn_out_size(H, 3, 1, 1, &d.pad_top);
    d.ow = sn_out_size(W, 3, 1, 1, &d.pad_left);
    no = (size_t)N * d.oh * d.ow * C;
    float ob2[N * H * W * C], or2[N * H * W * C], do2[N * H * W * C];
    int32_t ab2[N * H * W * C], ar2[N * H * W * C];
    sn_test_fill(do2, no, -1, 1, 22);
    sn_ops_blas.maxpool_forward(&d, in, ob2, ab2);
    sn_ops_ref.maxpool_forward(&d, in, or2, ar2);
    sn_ops_blas.maxpool_backward(&d, do2, ab2, dinb);
    sn_ops_ref.maxpool_backward(&d, do2, ar2, dinr);
    assert_true(sn_test_max_rel_diff(ob2, or2, no) == 0);
    assert_true(sn_test_max_rel_diff(dinb, dinr, (size_t)N * H * W * C) < 1e-6);
}

static void test_maxpool_tiling_backward(void **state)
{
    /* stride == pool: the one-pass backward. Odd sizes leave cells outside every "valid"
     * window, which must come out 0 whatever din held before. */
    enum { N = 2, H = 5, W = 7, C = 6 };
    float in[N * H * W * C], dinb[N * H * W * C], dinr[N * H * W * C], out[N * H * W * C],
        dout[N * H * W * C];
    int32_t am[N * H * W * C];
    sn_test_fill(in, sizeof in / 4, -1, 1, 71);
    for (int same = 0; same < 2; same++)
        for (int p = 2; p <= 3; p++) {
            struct sn_pool_desc d = {.n = N, .h = H, .w = W, .c = C, .ph = p, .pw = p, .sh = p,
                                     .sw = p};
            d.oh = sn_out_size(H, p, p, same, &d.pad_top);
            d.ow = sn_out_size(W, p, p, same, &d.pad_left);
            size_t no = (size_t)N * d.oh * d.ow * C;
            sn_test_fill(dout, no, -1, 1, 72);
            sn_ops_blas.maxpool_forward(&d, in, out, am);
            for (size_t i = 0; i < sizeof dinb / 4; i++)
                dinb[i] = 1e30f;
            sn_ops_blas.maxpool_backward(&d, dout, am, dinb);
            sn_ops_ref.maxpool_backward(&d, dout, am, dinr);
            assert_true(sn_test_max_rel_diff(dinb, dinr, (size_t)N * H * W * C) == 0);
            double sb = 0, sd = 0;
            for (size_t i = 0; i < (size_t)N * H * W * C; i++)
                sb += dinb[i];
            for (size_t i = 0; i < no; i++)
                sd += dout[i];
            assert_float_equal(sb, sd, 1e-4);
        }
}

/* Each fast backend's pooling against the naive one: the same maxima, and the gradient sent to
 * the same cells, for "valid" and "same", overlapping and tiling windows, odd channel counts.
 * The argmax buffer is each backend's own business (oneDNN keeps its workspace there). */
static void test_maxpool_backends_match_ref(void **state)
{
    static const int shapes[][7] = {
        /* n  h  w  c  pool stride same */
        {2, 26, 26, 32, 2, 2, 0}, {3, 7, 9, 17, 2, 2, 1}, {2, 9, 8, 3, 3, 2, 1},
        {2, 6, 7, 1, 3, 1, 0},    {1, 11, 5, 19, 3, 3, 1}, {2, 5, 5, 16, 2, 1, 1},
    };
    for (size_t k = 0; k < N_FAST; k++) {
        for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
            const int *t = shapes[i];
            struct sn_pool_desc d = {.n = t[0], .h = t[1], .w = t[2], .c = t[3], .ph = t[4],
                                     .pw = t[4], .sh = t[5], .sw = t[5]};
            d.oh = sn_out_size(d.h, d.ph, d.sh, t[6], &d.pad_top);
            d.ow = sn_out_size(d.w, d.pw, d.sw, t[6], &d.pad_left);
            size_t ni = (size_t)d.n * d.h * d.w * d.c, no = (size_t)d.n * d.oh * d.ow * d.c;
            float *in = malloc(ni * 4), *of = malloc(no * 4), *orf = malloc(no * 4);
            float *dout = malloc(no * 4), *dinf = malloc(ni * 4), *dinr = malloc(ni * 4);
            int32_t *af = malloc(no * 4), *ar = malloc(no * 4);
            sn_test_fill(in, ni, -1, 1, 80 + (int)i);
            sn_test_fill(dout, no, -1, 1, 90 + (int)i);
            for (size_t j = 0; j < ni; j++)
                dinf[j] = 1e30f; /* backward overwrites din */
            fast[k]->maxpool_forward(&d, in, of, af);
            sn_ops_ref.maxpool_forward(&d, in, orf, ar);
            assert_true(sn_test_max_rel_diff(of, orf, no) == 0);
            fast[k]->maxpool_backward(&d, dout, af, dinf);
            sn_ops_ref.maxpool_backward(&d, dout, ar, dinr);
            assert_true(sn_test_max_rel_diff(dinf, dinr, ni) < 1e-6);
            free(in), free(of), free(orf), free(dout), free(dinf), free(dinr), free(af), free(ar);
        }
    }
}

/* Values that make max pooling's rules matter, from a seed: few distinct values, so windows tie
 * (+0.0 with -0.0 too); NaNs, each with its own payload and sign, so that which NaN won shows
 * in the bits; and infinities. */
static void fill_pool_values(float *x, size_t n, uint64_t seed)
{
    static const float levels[] = {-2, -1, -0.0f, 0, 1, 2, 0.5f, INFINITY, -INFINITY};
    sn_test_fill(x, n, 0, 1, seed);
    for (size_t i = 0; i < n; i++) {
        float u = x[i];
        if (u < 0.06f) {
            uint32_t b = (u < 0.03f ? 0xFFC00000u : 0x7FC00000u) | (uint32_t)(i & 0x3FFFFF);
            memcpy(&x[i], &b, sizeof b);
        } else {
            x[i] = levels[(size_t)(u * 1000) % (sizeof levels / sizeof levels[0])];
        }
    }
}

/* The blas backend's common pool (2x2, strides 2, every window whole) has its own loops; they
 * give its general loops' bits: the same maxima (which of tied cells, which NaN), the same
 * argmax, the same input gradient (-0.0 and NaN gradients passed as they are, cells outside
 * every window zeroed whatever din held), on even and odd sizes, one channel and many. */
static void test_maxpool_fast_matches_general(void **state)
{
    static const int shapes[][5] = {
        /* n  h  w  c same */
        {2, 26, 26, 32, 0}, {3, 13, 13, 64, 0}, {2, 7, 9, 17, 0}, {2, 5, 4, 1, 0},
        {1, 2, 2, 5, 0},    {2, 8, 6, 3, 1},    {1, 3, 3, 4, 0},  {2, 7, 6, 8, 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        const int *t = shapes[i];
        struct sn_pool_desc d = {.n = t[0], .h = t[1], .w = t[2], .c = t[3], .ph = 2, .pw = 2,
                                 .sh = 2, .sw = 2};
        d.oh = sn_out_size(d.h, 2, 2, t[4], &d.pad_top);
        d.ow = sn_out_size(d.w, 2, 2, t[4], &d.pad_left);
        size_t ni = (size_t)d.n * d.h * d.w * d.c, no = (size_t)d.n * d.oh * d.ow * d.c;
        float *in = malloc(ni * 4), *of = malloc(no * 4), *og = malloc(no * 4);
        float *dout = malloc(no * 4), *dinf = malloc(ni * 4), *ding = malloc(ni * 4);
        int32_t *af = malloc(no * 4), *ag = malloc(no * 4);
        fill_pool_values(in, ni, 100 + i);
        fill_pool_values(dout, no, 200 + i);
        for (size_t j = 0; j < ni; j++) {
            dinf[j] = j % 2 ? NAN : 1e30f; /* backward overwrites din */
            ding[j] = -dinf[j];
        }
        sn_ops_blas.maxpool_forward(&d, in, of, af);
        sn_ops_blas_maxpool_forward_general(&d, in, og, ag);
        assert_memory_equal(of, og, no * 4);
        assert_memory_equal(af, ag, no * 4);
        sn_ops_blas.maxpool_backward(&d, dout, af, dinf);
        sn_ops_blas_maxpool_backward_general(&d, dout, ag, ding);
        assert_memory_equal(dinf, ding, ni * 4);
        /* and the rules themselves, on the naive backend: the same maxima and argmax */
        sn_ops_ref.maxpool_forward(&d, in, og, ag);
        assert_memory_equal(of, og, no * 4);
        assert_memory_equal(af, ag, no * 4);
        free(in), free(of), free(og), free(dout), free(dinf), free(ding), free(af), free(ag);
    }
}

/* Bias, global average pooling and batch normalization of each fast backend against the naive
 * one; batch normalization with and without gamma and beta, with the batch's statistics and
 * with given ones, and its gradients accumulated (dgamma, dbeta start nonzero). */
static void test_bias_gap_batchnorm_match_ref(void **state)
{
    enum { R = 37, C = 19, N = 3, HW = 12 }; /* N * HW <= R: x holds (N, HW, C) */
    float x[R * C], dy[R * C], yf[R * C], yr[R * C], dxf[R * C], dxr[R * C];
    float b[C], mf[C], vf[C], mr[C], vr[C], gam[C], bet[C];
    float dgf[C], dbf[C], dgr[C], dbr[C];
    double scratch[4 * C]; /* 2C doubles and 4C floats, as ops.h asks */
    sn_test_fill(x, R * C, -2, 3, 101);
    sn_test_fill(dy, R * C, -1, 1, 102);
    sn_test_fill(b, C, -1, 1, 103);
    sn_test_fill(gam, C, 0.5f, 1.5f, 104);
    sn_test_fill(bet, C, -0.5f, 0.5f, 105);
    for (size_t k = 0; k < N_FAST; k++) {
        const struct sn_ops *f = fast[k];
        memcpy(yf, x, sizeof x), memcpy(yr, x, sizeof x);
        f->bias_forward(yf, b, R, C);
        sn_ops_ref.bias_forward(yr, b, R, C);
        assert_true(sn_test_max_rel_diff(yf, yr, R * C) < 1e-6);
        memcpy(dgf, b, sizeof b), memcpy(dgr, b, sizeof b);
        f->bias_backward(dy, dgf, R, C);
        sn_ops_ref.bias_backward(dy, dgr, R, C);
        assert_true(sn_test_max_rel_diff(dgf, dgr, C) < 1e-5);

        /* x as (N, HW, C) */
        f->avgpool_global_forward(x, yf, N, HW, C);
        sn_ops_ref.avgpool_global_forward(x, yr, N, HW, C);
        assert_true(sn_test_max_rel_diff(yf, yr, N * C) < 1e-5);
        f->avgpool_global_backward(dy, dxf, N, HW, C);
        sn_ops_ref.avgpool_global_backward(dy, dxr, N, HW, C);
        assert_true(sn_test_max_rel_diff(dxf, dxr, N * HW * C) < 1e-6);

        for (int mode = 0; mode < 8; mode++) {
            int batch = mode & 1;
            const float *g = mode & 2 ? gam : NULL, *be = mode & 4 ? bet : NULL;
            if (!batch) {
                sn_test_fill(mr, C, -0.5f, 0.5f, 106);
                sn_test_fill(vr, C, 0.5f, 2.0f, 107);
                memcpy(mf, mr, sizeof mr), memcpy(vf, vr, sizeof vr);
            }
            f->batchnorm_forward(x, yf, R, C, 1e-3f, batch, g, be, mf, vf, scratch);
            sn_ops_ref.batchnorm_forward(x, yr, R, C, 1e-3f, batch, g, be, mr, vr, scratch);
            assert_true(sn_test_max_rel_diff(mf, mr, C) < 1e-5);
            assert_true(sn_test_max_rel_diff(vf, vr, C) < 1e-5);
            assert_true(sn_test_max_rel_diff(yf, yr, R * C) < 1e-4);
            /* with gradients of what exists, and without (a frozen layer) */
            for (int grads = 0; grads < 2; grads++) {
                sn_test_fill(dgf, C, -0.1f, 0.1f, 108), memcpy(dgr, dgf, sizeof dgf);
                sn_test_fill(dbf, C, -0.1f, 0.1f, 109), memcpy(dbr, dbf, sizeof dbf);
                float *wg = grads && g ? dgf : NULL, *wb = grads && be ? dbf : NULL;
                f->batchnorm_backward(x, dy, dxf, R, C, 1e-3f, batch, g, mf, vf, wg, wb, scratch);
                sn_ops_ref.batchnorm_backward(x, dy, dxr, R, C, 1e-3f, batch, g, mr, vr,
                                              grads && g ? dgr : NULL, grads && be ? dbr : NULL,
                                              scratch);
                if (sn_test_max_rel_diff(dxf, dxr, R * C) >= 1e-4 ||
                    sn_test_max_rel_diff(dgf, dgr, C) >= 1e-4 ||
                    sn_test_max_rel_diff(dbf, dbr, C) >= 1e-4)
                    fprintf(stderr, "  %s: batchnorm mode %d grads %d: dx, dgamma, dbeta differ "
                                    "by %g, %g, %g\n",
                            f->name, mode, grads, sn_test_max_rel_diff(dxf, dxr, R * C),
                            sn_test_max_rel_diff(dgf, dgr, C), sn_test_max_rel_diff(dbf, dbr, C));
                assert_true(sn_test_max_rel_diff(dxf, dxr, R * C) < 1e-4);
                assert_true(sn_test_max_rel_diff(dgf, dgr, C) < 1e-4);
                assert_true(sn_test_max_rel_diff(dbf, dbr, C) < 1e-4);
            }
        }
    }
}

static void test_activations(void **state)
{
    enum { R = 7, C = 11 };
    float x[R * C], yb[R * C], yr[R * C], dy[R * C], dxb[R * C], dxr[R * C];
    sn_test_fill(x, R * C, -4, 4, 31);
    sn_test_fill(dy, R * C, -1, 1, 32);
    for (int a = SN_ACT_LINEAR; a <= SN_ACT_SOFTMAX; a++) {
        sn_ops_blas.act_forward((enum sn_act)a, x, yb, R, C);
        sn_ops_ref.act_forward((enum sn_act)a, x, yr, R, C);
        assert_true(sn_test_max_rel_diff(yb, yr, R * C) < 1e-5);
        sn_ops_blas.act_backward((enum sn_act)a, yb, dy, dxb, R, C);
        sn_ops_ref.act_backward((enum sn_act)a, yr, dy, dxr, R, C);
        assert_true(sn_test_max_rel_diff(dxb, dxr, R * C) < 1e-5);
        /* in place: dx may be dy, y may be x */
        memcpy(dxr, dy, sizeof dy);
        sn_ops_blas.act_backward((enum sn_act)a, yb, dxr, dxr, R, C);
        assert_true(sn_test_max_rel_diff(dxb, dxr, R * C) == 0);
        memcpy(yr, x, sizeof x);
        sn_ops_blas.act_forward((enum sn_act)a, yr, yr, R, C);
        assert_true(sn_test_max_rel_diff(yb, yr, R * C) == 0);
    }
    /* known values */
    float v[4] = {-1, 0, 2, 1000}, o[4];
    sn_ops_blas.act_forward(SN_ACT_RELU, v, o, 1, 4);
    assert_float_equal(o[0], 0, 0);
    assert_float_equal(o[2], 2, 0);
    sn_ops_blas.act_forward(SN_ACT_SIGMOID, v, o, 1, 4);
    assert_float_equal(o[1], 0.5, 1e-7);
    assert_float_equal(o[3], 1.0, 1e-7);
    /* softmax: rows sum to 1, stable for large logits, ordered like the input */
    sn_ops_blas.act_forward(SN_ACT_SOFTMAX, x, yb, R, C);
    for (int r = 0; r < R; r++) {
        double s = 0;
        for (int j = 0; j < C; j++)
            s += yb[r * C + j];
        assert_float_equal(s, 1.0, 1e-5);
    }
    sn_ops_blas.act_forward(SN_ACT_SOFTMAX, v, o, 1, 4);
    assert_float_equal(o[3], 1.0, 1e-6);
    float u[3] = {-1, 0, 2};
    sn_ops_blas.act_forward(SN_ACT_SOFTMAX, u, o, 1, 3);
    assert_true(o[2] > o[1] && o[1] > o[0]);
    assert_float_equal(o[0] / o[1], exp(-1.0), 1e-6);
}

/* NaN propagates as in Keras (TensorFlow's relu is max(x, 0), which keeps NaN; its ReluGrad is
 * dy * (y > 0)) on every backend: a ReLU alone and after a convolution (oneDNN's fused ReLU
 * post-op gave 0), and max pooling, where the window's first NaN wins (oneDNN's primitive
 * skipped it), in NHWC and in oneDNN's blocked layout; backward sends the gradient to it. */
static void test_nan_propagates(void **state)
{
    (void)state;
    for (int b = 0; sn_backends[b]; b++) {
        const struct sn_ops *ops = sn_backends[b];
        float x[6] = {NAN, -1, INFINITY, -INFINITY, 2, -0.0f}, y[6];
        ops->act_forward(SN_ACT_RELU, x, y, 2, 3);
        assert_true(isnan(y[0]));
        assert_true(y[1] == 0 && y[2] == INFINITY && y[3] == 0 && y[4] == 2 && y[5] == 0);
        float yo[4] = {NAN, 0, 3, 3}, dy[4] = {1, NAN, NAN, 2}, dx[4];
        ops->act_backward(SN_ACT_RELU, yo, dy, dx, 1, 4);
        assert_true(dx[0] == 0 && isnan(dx[1]) && isnan(dx[2]) && dx[3] == 2);

        /* a 3x3 "same" convolution whose centre tap is the identity, with a ReLU: a NaN at
           pixel (1,1) makes that pixel's outputs NaN (and its neighbours', 0 * NaN), a pixel
           two away from it is the ReLU of its input */
        enum { H = 6, C = 16 };
        struct sn_conv_desc cd = {.n = 1, .h = H, .w = H, .c = C, .oh = H, .ow = H, .oc = C,
                                  .kh = 3, .kw = 3, .sh = 1, .sw = 1, .pad_top = 1,
                                  .pad_left = 1};
        float in[H * H * C], w[9 * C * C] = {0}, bias[C] = {0}, out[H * H * C];
        sn_test_fill(in, H * H * C, -1, 1, 41);
        for (int c = 0; c < C; c++)
            w[(4 * C + c) * C + c] = 1;
        in[(1 * H + 1) * C + 5] = NAN;
        size_t sb = ops->conv2d_scratch(&cd);
        void *scratch = malloc(sb ? sb : 1);
        ops->conv2d_forward(&cd, in, w, bias, SN_ACT_RELU, out, scratch);
        free(scratch);
        for (int c = 0; c < C; c++) {
            if (!isnan(out[(1 * H + 1) * C + c]))
                fail_msg("%s: conv + relu: channel %d of the NaN pixel is %g", ops->name, c,
                         out[(1 * H + 1) * C + c]);
            float v = in[(4 * H + 4) * C + c];
            /* bf16 rounds the inputs (8 bits of mantissa) */
            assert_float_equal(out[(4 * H + 4) * C + c], v < 0 ? 0 : v, 1e-2 * (v < 0 ? 1 : v));
        }

        /* values whose sums overflow (1e20 * 1e20, of both signs), and a NaN: where the sum before
           the activation is NaN (+Inf + -Inf; with FMA a kernel may reach only one infinity)
           the ReLU keeps it, and an infinity goes as ReLU takes it. oneDNN fuses its ReLU,
           which would give 0 for NaN, only where no sum can overflow: 1 channel in, 16 out,
           so that the fused path is the one it considers */
        struct sn_conv_desc od = {.n = 1, .h = 6, .w = 6, .c = 1, .oh = 4, .ow = 4, .oc = C,
                                  .kh = 3, .kw = 3, .sh = 1, .sw = 1};
        float oin[36], ow[9 * C], olin[16 * C], orelu[16 * C];
        for (int i = 0; i < 36; i++)
            oin[i] = 1e20f;
        oin[33] = NAN; /* and a NaN in the input, which the last row's outputs see */
        for (int i = 0; i < 9 * C; i++)
            ow[i] = (i / C + i % C) % 2 ? 1e20f : -1e20f;
        sb = ops->conv2d_scratch(&od);
        scratch = malloc(sb ? sb : 1);
        ops->conv2d_forward(&od, oin, ow, NULL, SN_ACT_LINEAR, olin, scratch);
        ops->conv2d_forward(&od, oin, ow, NULL, SN_ACT_RELU, orelu, scratch);
        free(scratch);
        int nans = 0;
        for (int i = 0; i < 16 * C; i++) {
            float v = olin[i], want = v < 0 ? 0 : v;
            nans += isnan(v);
            if (isnan(v) ? !isnan(orelu[i]) : orelu[i] != want)
                fail_msg("%s: conv + relu of %g (before the ReLU) is %g", ops->name, v, orelu[i]);
        }
        assert_true(nans >= 3 * C); /* at least the NaN's: 3 pixels of the last row */

        /* 2x2 max pooling of 4x4, channel c with its NaN in cell c % 4 of the first window */
        for (int blk = 0; blk <= ((ops->caps & SN_OPS_BLOCKED) != 0); blk++) {
            struct sn_pool_desc pd = {.n = 1, .h = 4, .w = 4, .c = C, .oh = 2, .ow = 2, .ph = 2,
                                      .pw = 2, .sh = 2, .sw = 2, .blk_in = blk, .blk_out = blk};
            float pin[16 * C], pout[4 * C], pdout[4 * C], pdin[16 * C];
            int32_t am[4 * C];
            sn_test_fill(pin, 16 * C, -1, 1, 42);
            sn_test_fill(pdout, 4 * C, 1, 2, 43);
            static const int cell[4] = {0, 1, 4, 5}; /* (0,0) (0,1) (1,0) (1,1) */
            for (int c = 0; c < C; c++)
                pin[cell[c % 4] * C + c] = NAN;
            pin[cell[3] * C + 3] = NAN; /* channel 3: a second NaN after the first */
            pin[cell[0] * C + 3] = NAN;
            float *px = laid(pin, blk, 1, 4, 4, C), *pdy = laid(pdout, blk, 1, 2, 2, C);
            float *py = malloc(sizeof pout), *pdx = malloc(sizeof pdin);
            ops->maxpool_forward(&pd, px, py, am);
            ops->maxpool_backward(&pd, pdy, am, pdx);
            unlay(py, blk, 1, 2, 2, C);
            unlay(pdx, blk, 1, 4, 4, C);
            memcpy(pout, py, sizeof pout);
            memcpy(pdin, pdx, sizeof pdin);
            free(px), free(pdy), free(py), free(pdx);
            for (int c = 0; c < C; c++) {
                if (!isnan(pout[c]))
                    fail_msg("%s%s: max pooling: channel %d of a window holding NaN is %g",
                             ops->name, blk ? " (blocked)" : "", c, pout[c]);
                int won = c == 3 ? cell[0] : cell[c % 4]; /* the first NaN */
                assert_true(pdin[won * C + c] == pdout[c]);
                float m = -INFINITY; /* the next window, (0,1): an ordinary max */
                for (int k = 0; k < 4; k++)
                    m = fmaxf(m, pin[(cell[k] + 2) * C + c]);
                assert_true(pout[C + c] == m);
            }
        }
    }
}

static void test_out_size(void **state)
{
    int pad = -1;
    assert_int_equal(sn_out_size(28, 3, 1, 0, &pad), 26);
    assert_int_equal(pad, 0);
    assert_int_equal(sn_out_size(26, 2, 2, 0, NULL), 13);
    assert_int_equal(sn_out_size(13, 2, 2, 0, NULL), 6);
    assert_int_equal(sn_out_size(2, 3, 1, 0, NULL), 0);
    assert_int_equal(sn_out_size(7, 3, 1, 1, &pad), 7);
    assert_int_equal(pad, 1);
    assert_int_equal(sn_out_size(28, 3, 2, 1, &pad), 14);
    assert_int_equal(pad, 0); /* total pad 1: Keras puts it after */
    assert_int_equal(sn_out_size(8, 4, 1, 1, &pad), 8);
    assert_int_equal(pad, 1); /* total 3: 1 before, 2 after */
}

static void test_by_name_and_threads(void **state)
{
    assert_ptr_equal(sn_ops_by_name("blas"), &sn_ops_blas);
    assert_ptr_equal(sn_ops_by_name("ref"), &sn_ops_ref);
    assert_null(sn_ops_by_name("cuda"));
    assert_null(sn_ops_by_name(NULL));
    sn_ops_set_threads(1);
    assert_int_equal(sn_ops_get_threads(), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conv_small_cases),
        cmocka_unit_test(test_conv_1x1_strided_few_channels),
        cmocka_unit_test(test_conv_winograd),
        cmocka_unit_test(test_conv_chunked),
        cmocka_unit_test(test_blocked_layouts),
        cmocka_unit_test(test_conv_bf16),
        cmocka_unit_test(test_conv_scratch_bound),
        cmocka_unit_test(test_conv_known_values),
        cmocka_unit_test(test_gemm_transposes),
        cmocka_unit_test(test_maxpool_lecture_example),
        cmocka_unit_test(test_maxpool_same_padding_never_wins),
        cmocka_unit_test(test_maxpool_tiling_backward),
        cmocka_unit_test(test_maxpool_backends_match_ref),
        cmocka_unit_test(test_maxpool_fast_matches_general),
        cmocka_unit_test(test_bias_gap_batchnorm_match_ref),
        cmocka_unit_test(test_activations),
        cmocka_unit_test(test_nan_propagates),
        cmocka_unit_test(test_out_size),
        cmocka_unit_test(test_by_name_and_threads),
    };
    return cmocka_run_group_tests_name("ops", tests, NULL, NULL);
}
