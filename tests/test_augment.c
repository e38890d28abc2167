/* test_augment.c — Keras augmentation semantics: exact flips, identities, rotation direction,
 * zoom and translation direction, contrast, determinism by key, RandomCrop (the window in
 * training, smart_resize at inference, its place first in the chain, the same window on any
 * thread), the views of test_time = flip, and the [augment] parser. */
#include <math.h>     // defines: fabsf, cos, sin, floor, M_PI
#include <pthread.h>  // defines: pthread_create, pthread_join
#include <setjmp.h>   // defines: jmp_buf (cmocka)
#include <stdarg.h>   // defines: va_list (cmocka)
#include <stddef.h>   // defines: size_t (cmocka)
#include <stdlib.h>   // defines: malloc, free
#include <string.h>   // defines: memcmp, strstr
#include <cmocka.h>   // defines: cmocka_unit_test, assert_*

#include "augment.h"
#include "rng.h"
#include "testutil.h"

static struct sn_augment_conf conf(void)
{
    struct sn_augment_conf ac;
    memset(&ac, 0, sizeof ac);
    ac.enabled = 1;
    ac.fill_mode = SN_FILL_REFLECT;
    return ac;
}

static float at(const float *img, int w, int c, int y, int x, int k)
{
    return img[((size_t)y * w + x) * c + k];
}

static void test_flip_exact(void **state)
{
    int h = 5, w = 7, c = 3;
    size_t n = (size_t)h * w * c;
    float *src = malloc(n * sizeof *src), *dst = malloc(n * sizeof *dst);
    sn_test_fill(src, n, 0, 255, 1);
    for (int mode = SN_FLIP_HORIZONTAL; mode <= SN_FLIP_VERTICAL; mode++) {
        struct sn_augment_conf ac = conf();
        ac.flip = (enum sn_flip)mode;
        int flipped = 0, kept = 0;
        for (uint64_t key = 0; key < 64; key++) {
            sn_augment_apply(&ac, key, src, dst, h, w, c);
            if (memcmp(src, dst, n * sizeof *src) == 0) {
                kept++;
                continue;
            }
            for (int y = 0; y < h; y++)
                for (int x = 0; x < w; x++)
                    for (int k = 0; k < c; k++) {
                        int sy = mode == SN_FLIP_VERTICAL ? h - 1 - y : y;
                        int sx = mode == SN_FLIP_HORIZONTAL ? w - 1 - x : x;
                        assert_true(at(dst, w, c, y, x, k) == at(src, w, c, sy, sx, k));
                    }
            flipped++;
        }
        /* RandomFlip flips with probability 1/2 */
        assert_true(flipped > 16 && kept > 16);
    }
    free(src);
    free(dst);
}

static void test_zero_factors_identity(void **state)
{
    int h = 9, w = 6, c = 3;
    size_t n = (size_t)h * w * c;
    float *src = malloc(n * sizeof *src), *dst = malloc(n * sizeof *dst);
    sn_test_fill(src, n, 0, 255, 2);
    struct sn_augment_conf ac = conf(); /* all ranges [0, 0] */
    sn_augment_apply(&ac, 42, src, dst, h, w, c);
    assert_memory_equal(src, dst, n * sizeof *src);
    /* a full turn goes through the resampling path and must still give the image back (not with
     * wrap: like tf, it sends a point a rounding error left of column 0 to the last column) */
    ac.rotation[0] = ac.rotation[1] = 1.0;
    for (int fill = SN_FILL_REFLECT; fill <= SN_FILL_NEAREST; fill++) {
        ac.fill_mode = (enum sn_fill)fill;
        sn_augment_apply(&ac, 7, src, dst, h, w, c);
        for (size_t i = 0; i < n; i++)
            assert_float_equal(dst[i], src[i], 1e-3);
    }
    free(src);
    free(dst);
}

static void test_rotate_90_is_transpose_flip(void **state)
{
    int s = 8, c = 3;
    size_t n = (size_t)s * s * c;
    float *src = malloc(n * sizeof *src), *dst = malloc(n * sizeof *dst);
    sn_test_fill(src, n, 0, 255, 3);
    struct sn_augment_conf ac = conf();
    ac.rotation[0] = ac.rotation[1] = 0.25; /* +90 degrees, counter-clockwise in Keras */
    sn_augment_apply(&ac, 1, src, dst, s, s, c);
    /* counter-clockwise: the top-right corner comes to the top-left: out(y,x) = in(x, s-1-y) */
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++)
            for (int k = 0; k < c; k++)
                assert_float_equal(at(dst, s, c, y, x, k), at(src, s, c, x, s - 1 - y, k), 1e-3);
    free(src);
    free(dst);
}

static void test_zoom_and_translation_direction(void **state)
{
    int s = 16, c = 1;
    size_t n = (size_t)s * s;
    float *src = malloc(n * sizeof *src), *dst = malloc(n * sizeof *dst);
    for (size_t i = 0; i < n; i++)
        src[i] = 100;
    struct sn_augment_conf ac = conf();
    ac.fill_mode = SN_FILL_CONSTANT;
    ac.fill_value = 0;
    /* zoom factor +1: twice the field of view (zoom out), the border shows the fill */
    ac.zoom_h[0] = ac.zoom_h[1] = 1.0;
    sn_augment_apply(&ac, 3, src, dst, s, s, c);
    assert_float_equal(dst[0], 0, 1e-6);
    assert_float_equal(dst[(s / 2) * s + s / 2], 100, 1e-4);
    /* negative: zoom in, the image fills the output */
    ac.zoom_h[0] = ac.zoom_h[1] = -0.5;
    sn_augment_apply(&ac, 3, src, dst, s, s, c);
    for (size_t i = 0; i < n; i++)
        assert_float_equal(dst[i], 100, 1e-4);
    /* translation +0.125 of the height moves the content down 2 rows */
    ac.zoom_h[0] = ac.zoom_h[1] = 0;
    ac.translate_h[0] = ac.translate_h[1] = 0.125;
    for (int i = 0; i < (int)n; i++)
        src[i] = (float)(i / s); /* row index */
    sn_augment_apply(&ac, 3, src, dst, s, s, c);
    assert_float_equal(dst[0], 0, 1e-6);           /* filled */
    assert_float_equal(dst[5 * s + 3], 3, 1e-4);   /* row 5 shows row 3 */
    /* reflect fill mirrors about the edge: rows -1, -2 show rows 0, 1 */
    ac.fill_mode = SN_FILL_REFLECT;
    sn_augment_apply(&ac, 3, src, dst, s, s, c);
    assert_float_equal(dst[0 * s], 1, 1e-4);
    assert_float_equal(dst[1 * s], 0, 1e-4);
    free(src);
    free(dst);
}

/* The oracle: Keras's layer matrices (tf ImageProjectiveTransform convention, output point ->
 * input point) chained translation <- zoom <- rotation, and tf's general MapCoordinate and
 * bilinear read, pixel by pixel in double. */
static double ref_map(double v, int len, enum sn_fill mode)
{
    if (mode == SN_FILL_CONSTANT)
        return v;
    if (len <= 1)
        return 0;
    if (mode == SN_FILL_REFLECT) {
        double sz2 = 2.0 * len;
        if (v < 0) {
            v = sz2 * (int)(-v / sz2) + v;
            v = v < -len ? v + sz2 : -v - 1;
        } else if (v > len - 1) {
            v -= sz2 * (int)(v / sz2);
            if (v >= len)
                v = sz2 - v - 1;
        }
    } else if (mode == SN_FILL_WRAP) {
        double sz = len - 1;
        if (v < 0)
            v += len * ((int)(-v / sz) + 1);
        else if (v > len - 1)
            v -= len * (int)(v / sz);
    }
    return v < 0 ? 0 : v > len - 1 ? len - 1 : v;
}

static double ref_read(const float *src, int h, int w, int c, int y, int x, int k, float fill)
{
    return y >= 0 && y < h && x >= 0 && x < w ? src[((size_t)y * w + x) * c + k] : fill;
}

static void ref_warp(const struct sn_augment_conf *ac, const float *src, float *dst, int h, int w,
                     int c)
{
    double a = ac->rotation[0] * 2 * M_PI, zy = 1 + ac->zoom_h[0];
    double zx = ac->zoom_w_given ? 1 + ac->zoom_w[0] : zy;
    double ty = ac->translate_h[0] * h, tx = ac->translate_w[0] * w;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double x1 = x - tx, y1 = y - ty; /* RandomTranslation: [1 0 -dx; 0 1 -dy] */
            double x2 = zx * x1 + (w - 1) / 2.0 * (1 - zx); /* RandomZoom */
            double y2 = zy * y1 + (h - 1) / 2.0 * (1 - zy);
            double xo = ((w - 1) - (cos(a) * (w - 1) - sin(a) * (h - 1))) / 2.0; /* RandomRotation */
            double yo = ((h - 1) - (sin(a) * (w - 1) + cos(a) * (h - 1))) / 2.0;
            double xi = ref_map(cos(a) * x2 - sin(a) * y2 + xo, w, ac->fill_mode);
            double yi = ref_map(sin(a) * x2 + cos(a) * y2 + yo, h, ac->fill_mode);
            double fx = floor(xi), fy = floor(yi);
            for (int k = 0; k < c; k++) {
                double t = (fx + 1 - xi) * ref_read(src, h, w, c, (int)fy, (int)fx, k, ac->fill_value) +
                           (xi - fx) * ref_read(src, h, w, c, (int)fy, (int)fx + 1, k, ac->fill_value);
                double b = (fx + 1 - xi) * ref_read(src, h, w, c, (int)fy + 1, (int)fx, k, ac->fill_value) +
                           (xi - fx) * ref_read(src, h, w, c, (int)fy + 1, (int)fx + 1, k, ac->fill_value);
                dst[((size_t)y * w + x) * c + k] = (float)((fy + 1 - yi) * t + (yi - fy) * b);
            }
        }
}

static void test_warp_vs_reference(void **state)
{
    const double params[][5] = {/* rotation, zoom h, zoom w, shift h, shift w */
                                {0.07, 0.3, -0.1, 0.1, -0.2},
                                {-0.4, -0.3, -0.3, 0, 0.05},
                                {0.3, 3.0, 2.0, 0.4, 0.3}}; /* points several periods out */
    for (int c = 1; c <= 3; c += 2)
        for (size_t p = 0; p < sizeof params / sizeof params[0]; p++)
            for (int fill = SN_FILL_REFLECT; fill <= SN_FILL_WRAP; fill++) {
                int h = 23, w = 31;
                size_t n = (size_t)h * w * c;
                float *src = malloc(n * sizeof *src), *got = malloc(n * sizeof *got),
                      *want = malloc(n * sizeof *want);
                sn_test_fill(src, n, 0, 255, 10 + p);
                struct sn_augment_conf ac = conf();
                ac.rotation[0] = ac.rotation[1] = params[p][0];
                ac.zoom_h[0] = ac.zoom_h[1] = params[p][1];
                ac.zoom_w[0] = ac.zoom_w[1] = params[p][2];
                ac.zoom_w_given = 1;
                ac.translate_h[0] = ac.translate_h[1] = params[p][3];
                ac.translate_w[0] = ac.translate_w[1] = params[p][4];
                ac.fill_mode = (enum sn_fill)fill;
                ac.fill_value = 17;
                sn_augment_apply(&ac, 5, src, got, h, w, c);
                ref_warp(&ac, src, want, h, w, c);
                size_t bad = 0;
                for (size_t i = 0; i < n; i++)
                    bad += fabsf(got[i] - want[i]) > 0.05f;
                /* a point within float rounding of a fold may land on the other side of it */
                if (bad > n / 200)
                    fail_msg("c=%d params %zu fill %d: %zu of %zu values differ", c, p, fill, bad, n);
                free(src);
                free(got);
                free(want);
            }
}

static void test_key_determinism(void **state)
{
    int h = 12, w = 10, c = 3;
    size_t n = (size_t)h * w * c;
    float *src = malloc(n * sizeof *src), *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    sn_test_fill(src, n, 0, 255, 4);
    struct sn_augment_conf ac = conf();
    ac.flip = SN_FLIP_HORIZONTAL;
    ac.rotation[0] = -0.1, ac.rotation[1] = 0.1;
    ac.zoom_h[0] = ac.zoom_w[0] = -0.2, ac.zoom_h[1] = ac.zoom_w[1] = 0.2;
    sn_augment_apply(&ac, 1234, src, a, h, w, c);
    sn_augment_apply(&ac, 1234, src, b, h, w, c);
    assert_memory_equal(a, b, n * sizeof *a);
    sn_augment_apply(&ac, 1235, src, b, h, w, c);
    assert_memory_not_equal(a, b, n * sizeof *a);
    free(src);
    free(a);
    free(b);
}

static void test_contrast(void **state)
{
    int h = 6, w = 6, c = 3;
    size_t n = (size_t)h * w * c;
    float *src = malloc(n * sizeof *src), *dst = malloc(n * sizeof *dst);
    sn_test_fill(src, n, 100, 150, 5); /* far from the clip bounds for factors <= 1.5 */
    struct sn_augment_conf ac = conf();
    ac.contrast[0] = ac.contrast[1] = 0.5; /* factor in [0.5, 1.5] */
    sn_augment_apply(&ac, 9, src, dst, h, w, c);
    double f = -1;
    for (int k = 0; k < c; k++) {
        double ms = 0, md = 0;
        for (int i = 0; i < h * w; i++)
            ms += src[i * c + k] / (h * w), md += dst[i * c + k] / (h * w);
        assert_float_equal(md, ms, 1e-3); /* the mean stays */
        for (int i = 0; i < h * w; i++) {
            double g = (dst[i * c + k] - ms) / (src[i * c + k] - ms);
            if (fabs(src[i * c + k] - ms) < 1)
                continue;
            if (f < 0)
                f = g;
            assert_float_equal(g, f, 1e-3); /* one factor for the whole image */
        }
    }
    assert_true(f >= 0.5 && f <= 1.5 && fabs(f - 1) > 1e-3);
    /* a large factor clips to [0, 255] */
    sn_test_fill(src, n, 0, 255, 6);
    ac.contrast[0] = 0, ac.contrast[1] = 9;
    for (uint64_t key = 0; key < 8; key++) {
        sn_augment_apply(&ac, key, src, dst, h, w, c);
        for (size_t i = 0; i < n; i++)
            assert_true(dst[i] >= 0 && dst[i] <= 255);
    }
    free(src);
    free(dst);
}

/* ---------------------------------------------------------------------------------------- */
/* RandomCrop                                                                                */

/* An image whose every value says where it is: (y, x, k) holds 1000 y + 10 x + k. */
static float *position_image(int h, int w, int c)
{
    float *img = malloc((size_t)h * w * c * sizeof *img);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                img[((size_t)y * w + x) * c + k] = (float)(1000 * y + 10 * x + k);
    return img;
}

/* Training on an image at least H x W: a window inside the image, holding the image's pixels at
 * its offset, at the offset Keras draws (int(u * (h - H + 1)) per side, u from the sample's
 * stream at augment.c's counters 8 and 9: pinned, since a resumed run must draw what the first
 * run drew), and every offset reached. */
static void test_crop_window(void **state)
{
    (void)state;
    const int h = 7, w = 9, c = 3, H = 4, W = 5;
    float *src = position_image(h, w, c), *dst = malloc((size_t)H * W * c * sizeof *dst);
    struct sn_augment_conf ac = conf();
    ac.crop[0] = H, ac.crop[1] = W;
    int seen[4][5] = {{0}};
    for (uint64_t i = 0; i < 400; i++) {
        uint64_t key = sn_hash3(1337, 2, i);
        int y0 = -9, x0 = -9;
        sn_augment_crop(&ac, key, 1, src, h, w, c, dst, &y0, &x0);
        assert_true(y0 >= 0 && y0 <= h - H && x0 >= 0 && x0 <= w - W);
        assert_int_equal(y0, (int)((double)sn_hash_uniform(sn_hash64(key, 8)) * (h - H + 1)));
        assert_int_equal(x0, (int)((double)sn_hash_uniform(sn_hash64(key, 9)) * (w - W + 1)));
        seen[y0][x0]++;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++)
                for (int k = 0; k < c; k++)
                    assert_float_equal(at(dst, W, c, y, x, k),
                                       1000 * (y0 + y) + 10 * (x0 + x) + k, 0);
        /* the whole chain with crop alone is the window */
        float *chain = malloc((size_t)H * W * c * sizeof *chain);
        sn_augment_sample(&ac, key, 1, src, h, w, c, chain, NULL);
        assert_memory_equal(chain, dst, (size_t)H * W * c * sizeof *dst);
        free(chain);
    }
    for (int y = 0; y <= h - H; y++)
        for (int x = 0; x <= w - W; x++)
            assert_true(seen[y][x] > 0); /* 20 positions, 400 draws */
    /* an image of exactly H x W (or H rows and more columns) is still cropped at random */
    int cols[5] = {0};
    for (uint64_t i = 0; i < 100; i++) {
        int y0, x0;
        sn_augment_crop(&ac, sn_hash3(1, 0, i), 1, src, H, w, c, dst, &y0, &x0);
        assert_int_equal(y0, 0);
        cols[x0]++;
    }
    for (int x = 0; x <= w - W; x++)
        assert_true(cols[x] > 0);
    free(src);
    free(dst);
}

/* Keras's smart_resize by hand: the box of aspect H:W centred as Keras's integer arithmetic puts
 * it, then tf's bilinear taps (half-pixel centres, clamped at the edges). On an image linear in
 * y and x, bilinear interpolation is exact, so each output is the image's value at the
 * (clamped) source point: 1000 sy + 10 (x0 + sx) + k. */
static double src_point(int i, int in, int out)
{
    double s = (i + 0.5) * in / out - 0.5;
    return s < 0 ? 0 : s > in - 1 ? in - 1 : s;
}

static void check_smart_resize(int h, int w, int H, int W, int y0, int x0, int ch, int cw,
                               int training)
{
    const int c = 2;
    float *src = position_image(h, w, c), *dst = malloc((size_t)H * W * c * sizeof *dst);
    struct sn_augment_conf ac = conf();
    ac.crop[0] = H, ac.crop[1] = W;
    ac.flip = SN_FLIP_HORIZONTAL; /* off at inference */
    int oy = 0, ox = 0;
    sn_augment_crop(&ac, 77, training, src, h, w, c, dst, &oy, &ox);
    assert_true(oy == -1 && ox == -1);
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            for (int k = 0; k < c; k++) {
                double want = 1000 * (y0 + src_point(y, ch, H)) +
                              10 * (x0 + src_point(x, cw, W)) + k;
                if (fabs(at(dst, W, c, y, x, k) - want) > 1e-3 * (1 + fabs(want)))
                    fail_msg("%dx%d -> %dx%d at (%d, %d, %d): %g, expected %g", h, w, H, W, y, x,
                             k, at(dst, W, c, y, x, k), want);
            }
    if (!training) { /* the chain at inference is the crop alone, whatever else is set */
        float *chain = malloc((size_t)H * W * c * sizeof *chain);
        sn_augment_sample(&ac, 77, 0, src, h, w, c, chain, NULL);
        assert_memory_equal(chain, dst, (size_t)H * W * c * sizeof *dst);
        free(chain);
    }
    free(src);
    free(dst);
}

static void test_crop_inference(void **state)
{
    (void)state;
    /* 6x10 to 4x4: the centred 6x6 box at column int(4/2) = 2, shrunk by 1.5 */
    check_smart_resize(6, 10, 4, 4, 0, 2, 6, 6, 0);
    /* 9x6 to 3x6 (aspect 1:2): box of int(6*3/6) = 3 rows at int((9-3)/2) = 3, all 6 columns,
     * then a plain copy (3 -> 3, 6 -> 6) */
    check_smart_resize(9, 6, 3, 6, 3, 0, 3, 6, 0);
    /* 7x7 to 2x3: box int(7*2/3) = 4 rows at int(3/2) = 1, 7 columns */
    check_smart_resize(7, 7, 2, 3, 1, 0, 4, 7, 0);
    /* an image larger than the crop is resized at inference, not cut: 8x8 to 4x4 shrinks by 2 */
    check_smart_resize(8, 8, 4, 4, 0, 0, 8, 8, 0);
    /* training on an image smaller than H x W on one side: the same centred resize (upscaled,
     * the first and last taps clamped) */
    check_smart_resize(4, 4, 8, 8, 0, 0, 4, 4, 1);
    check_smart_resize(3, 12, 6, 6, 0, 4, 3, 3, 1);

    /* on a known image, against the value tf's bilinear gives: 2x4 to 1x1 takes the centred 2x2
     * box at column int((4 - 2) / 2) = 1 and samples its centre (0.5, 0.5): the mean of its four
     * pixels */
    float img[8] = {0, 10, 20, 0, 0, 30, 60, 0}, out[2];
    struct sn_augment_conf ac = conf();
    ac.crop[0] = 1, ac.crop[1] = 1;
    sn_augment_sample(&ac, 0, 0, img, 2, 4, 1, out, NULL);
    assert_float_equal(out[0], (10 + 20 + 30 + 60) / 4.0, 1e-5);
}

/* Crop comes first: crop then flip, rotation, zoom, translation and contrast on the window,
 * with their own draws for the same key (the fill modes act at the window's edges). */
static void test_crop_first_in_chain(void **state)
{
    (void)state;
    const int h = 10, w = 11, c = 3, H = 6, W = 7;
    size_t n = (size_t)H * W * c;
    float *src = malloc((size_t)h * w * c * sizeof *src), *win = malloc(n * sizeof *win);
    float *want = malloc(n * sizeof *want), *got = malloc(n * sizeof *got);
    float *scratch = malloc(n * sizeof *scratch);
    sn_test_fill(src, (size_t)h * w * c, 0, 255, 11);
    struct sn_augment_conf ac = conf();
    ac.crop[0] = H, ac.crop[1] = W;
    ac.flip = SN_FLIP_HORIZONTAL;
    ac.rotation[0] = -0.1, ac.rotation[1] = 0.1;
    ac.translate_h[0] = ac.translate_w[0] = -0.2, ac.translate_h[1] = ac.translate_w[1] = 0.2;
    ac.contrast[0] = ac.contrast[1] = 0.3;
    ac.fill_mode = SN_FILL_CONSTANT;
    ac.fill_value = -1; /* below any pixel: where it shows, the read fell outside the window */
    assert_int_equal(sn_augment_scratch(&ac, 1, h, w, c), n);
    assert_int_equal(sn_augment_scratch(&ac, 0, h, w, c), 0);
    for (uint64_t key = 0; key < 20; key++) {
        sn_augment_crop(&ac, key, 1, src, h, w, c, win, NULL, NULL);
        sn_augment_apply(&ac, key, win, want, H, W, c);
        sn_augment_sample(&ac, key, 1, src, h, w, c, got, scratch);
        assert_memory_equal(got, want, n * sizeof *got);
    }
    /* without contrast's clip the fill shows: reads past the window's edge are filled, not
     * taken from the image around the window */
    ac.contrast[0] = ac.contrast[1] = 0;
    int filled = 0;
    for (uint64_t key = 0; key < 20; key++) {
        sn_augment_sample(&ac, key, 1, src, h, w, c, got, scratch);
        for (size_t i = 0; i < n; i++)
            filled += got[i] == -1;
    }
    assert_true(filled > 0);
    free(src);
    free(win);
    free(want);
    free(got);
    free(scratch);
}

/* The same sample and epoch give the same bits on any thread: four threads augment the samples
 * in different orders and each result matches one thread's. */
#define T_SAMPLES 64
struct crop_job {
    const struct sn_augment_conf *ac;
    const float *src;
    float *out; /* (T_SAMPLES, H, W, c) */
    int first, step;
};
enum { TH = 16, TW = 15, TC = 3, CH = 12, CW = 9 };

static void *crop_worker(void *arg)
{
    struct crop_job *j = arg;
    float *scratch = malloc((size_t)CH * CW * TC * sizeof *scratch);
    for (int k = 0; k < T_SAMPLES; k++) {
        int i = (j->first + k * j->step) % T_SAMPLES;
        sn_augment_sample(j->ac, sn_hash3(7, 3, (uint64_t)i), 1, j->src, TH, TW, TC,
                          j->out + (size_t)i * CH * CW * TC, scratch);
    }
    free(scratch);
    return NULL;
}

static void test_crop_threads(void **state)
{
    (void)state;
    size_t one = (size_t)CH * CW * TC;
    float *src = malloc((size_t)TH * TW * TC * sizeof *src);
    float *serial = malloc(T_SAMPLES * one * sizeof *serial);
    float *par = malloc(T_SAMPLES * one * sizeof *par);
    sn_test_fill(src, (size_t)TH * TW * TC, 0, 255, 12);
    struct sn_augment_conf ac = conf();
    ac.crop[0] = CH, ac.crop[1] = CW;
    ac.flip = SN_FLIP_HORIZONTAL;
    ac.zoom_h[0] = ac.zoom_w[0] = -0.1, ac.zoom_h[1] = ac.zoom_w[1] = 0.1;
    struct crop_job serial_job = {&ac, src, serial, 0, 1};
    crop_worker(&serial_job);
    struct crop_job jobs[4];
    pthread_t th[4];
    for (int t = 0; t < 4; t++) { /* thread t starts at 16 t, and walks by 5 (or 11) */
        jobs[t] = (struct crop_job){&ac, src, par, 16 * t, t % 2 ? 5 : 11};
        assert_int_equal(pthread_create(&th[t], NULL, crop_worker, &jobs[t]), 0);
    }
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], NULL);
    assert_memory_equal(par, serial, T_SAMPLES * one * sizeof *par);
    /* and the windows do differ between samples and between epochs */
    float *other = malloc(one * sizeof *other), *scratch = malloc(one * sizeof *scratch);
    sn_augment_sample(&ac, sn_hash3(7, 4, 0), 1, src, TH, TW, TC, other, scratch);
    assert_memory_not_equal(other, serial, one * sizeof *other);
    assert_memory_not_equal(serial + one, serial, one * sizeof *other);
    free(other);
    free(scratch);
    free(src);
    free(serial);
    free(par);
}

/* test_time = flip: one view more for a flip on one axis, three for both; each view is the
 * mirror RandomFlip draws, pixel for pixel, on every image of a batch. */
static void test_views(void **state)
{
    struct sn_augment_conf ac = conf();
    assert_int_equal(sn_augment_views(NULL), 1);
    ac.flip = SN_FLIP_HORIZONTAL;
    assert_int_equal(sn_augment_views(&ac), 1); /* test_time not asked */
    ac.test_time_flip = 1;
    assert_int_equal(sn_augment_views(&ac), 2);
    ac.flip = SN_FLIP_VERTICAL;
    assert_int_equal(sn_augment_views(&ac), 2);
    ac.flip = SN_FLIP_BOTH;
    assert_int_equal(sn_augment_views(&ac), 4);
    enum { N = 3, H = 4, W = 5, C = 2 };
    const size_t size = (size_t)H * W * C;
    float src[N * H * W * C], dst[N * H * W * C];
    sn_test_fill(src, sizeof src / sizeof src[0], 0, 255, 7);
    const enum sn_flip modes[] = {SN_FLIP_HORIZONTAL, SN_FLIP_VERTICAL, SN_FLIP_BOTH,
                                  SN_FLIP_BOTH, SN_FLIP_BOTH};
    const int views[] = {1, 1, 1, 2, 3};
    const int want_h[] = {1, 0, 1, 0, 1}, want_v[] = {0, 1, 0, 1, 1};
    for (int t = 0; t < 5; t++) {
        ac.flip = modes[t];
        sn_augment_view(&ac, views[t], src, N, H, W, C, dst);
        for (int i = 0; i < N; i++)
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    for (int k = 0; k < C; k++) {
                        int sy = want_v[t] ? H - 1 - y : y, sx = want_h[t] ? W - 1 - x : x;
                        assert_float_equal(at(dst + i * size, W, C, y, x, k),
                                           at(src + i * size, W, C, sy, sx, k), 0);
                    }
    }
}

static int parse(const char *text, struct sn_augment_conf *ac, struct sn_err *err)
{
    struct sn_config *cfg = NULL;
    int rc = sn_config_load_string(&cfg, text, "aug.cfg", err);
    if (rc == SN_OK)
        rc = sn_augment_conf_parse(ac, cfg, err);
    if (rc == SN_OK)
        rc = sn_config_check_unused(cfg, err);
    sn_config_free(cfg);
    return rc;
}

static void test_parse(void **state)
{
    struct sn_augment_conf ac;
    struct sn_err err = {0};
    assert_int_equal(parse("[model]\n", &ac, &err), SN_OK);
    assert_int_equal(ac.enabled, 0);

    assert_int_equal(parse("[augment]\nflip = horizontal\nrotation = 0.1\nzoom = 0.2\n", &ac, &err),
                     SN_OK);
    assert_int_equal(ac.enabled, 1);
    assert_int_equal(ac.flip, SN_FLIP_HORIZONTAL);
    assert_float_equal(ac.rotation[0], -0.1, 1e-12);
    assert_float_equal(ac.rotation[1], 0.1, 1e-12);
    assert_float_equal(ac.zoom_w[0], -0.2, 1e-12); /* width follows height */
    assert_int_equal(ac.zoom_w_given, 0);
    assert_int_equal(ac.fill_mode, SN_FILL_REFLECT);

    assert_int_equal(parse("[augment]\nflip = horizontal_and_vertical\nrotation = -0.1, 0.2\n"
                           "zoom = (-0.3, 0.1)\nzoom_width = 0.4\ntranslation = 0.1\n"
                           "translation_width = 0.2, 0.3\ncontrast = 0.5\n"
                           "fill_mode = constant\nfill_value = 7\n",
                           &ac, &err),
                     SN_OK);
    assert_int_equal(ac.flip, SN_FLIP_BOTH);
    assert_float_equal(ac.rotation[0], -0.1, 1e-12);
    assert_float_equal(ac.rotation[1], 0.2, 1e-12);
    assert_float_equal(ac.zoom_h[0], -0.3, 1e-12);
    assert_float_equal(ac.zoom_w[0], -0.4, 1e-12);
    assert_int_equal(ac.zoom_w_given, 1);
    assert_float_equal(ac.translate_h[0], -0.1, 1e-12);
    assert_float_equal(ac.translate_w[0], 0.2, 1e-12);
    assert_float_equal(ac.contrast[0], 0.5, 1e-12); /* one number: lower = upper */
    assert_float_equal(ac.contrast[1], 0.5, 1e-12);
    assert_int_equal(ac.fill_mode, SN_FILL_CONSTANT);
    assert_float_equal(ac.fill_value, 7, 1e-12);

    /* crop alone is an augmentation; the network then sees H x W */
    assert_int_equal(parse("[augment]\ncrop = 24, 20\n", &ac, &err), SN_OK);
    assert_int_equal(ac.enabled, 1);
    assert_true(ac.crop[0] == 24 && ac.crop[1] == 20);
    int oh, ow;
    sn_augment_out_size(&ac, 28, 28, &oh, &ow);
    assert_true(oh == 24 && ow == 20);
    sn_augment_out_size(NULL, 28, 30, &oh, &ow);
    assert_true(oh == 28 && ow == 30);
    assert_int_equal(parse("[augment]\ncrop = (64, 64)\nflip = horizontal\n", &ac, &err), SN_OK);
    assert_true(ac.crop[0] == 64 && ac.crop[1] == 64);
    assert_int_equal(parse("[augment]\nflip = horizontal\n", &ac, &err), SN_OK);
    assert_true(ac.crop[0] == 0 && ac.crop[1] == 0);
    assert_int_equal(ac.test_time_flip, 0);
    assert_int_equal(parse("[augment]\nflip = vertical\ntest_time = flip\n", &ac, &err), SN_OK);
    assert_int_equal(ac.test_time_flip, 1);
    assert_int_equal(parse("[augment]\ntest_time = none\n", &ac, &err), SN_OK);
    assert_int_equal(ac.enabled, 0);

    /* bad values name the file and line */
    const char *bad[][2] = {
        {"[augment]\nflip = none\ncrop = 24\n", "aug.cfg:3: [augment] crop = '24': expected two integers"},
        {"[augment]\ncrop = (24,)\n", "aug.cfg:2: [augment] crop"},
        {"[augment]\ncrop = 0, 24\n", "aug.cfg:2: [augment] crop = '0, 24': 0 is out of range [1, 65536]"},
        {"[augment]\ncrop = 24, -3\n", "aug.cfg:2"},
        {"[augment]\ncrop = 65537, 24\n", "65537 is out of range [1, 65536]"},
        {"[augment]\ncrop = 24, 2.5\n", "aug.cfg:2"},
        {"[augment]\ncrop = 24, 24, 3\n", "aug.cfg:2"},
        {"[augment]\ncrop = big\n", "aug.cfg:2"},
        {"[augment]\n\nflip = sideways\n", "aug.cfg:3"},
        {"[augment]\nzoom = 2\n", "aug.cfg:2"},
        {"[augment]\nrotation = 0.3, 0.1\n", "aug.cfg:2"},
        {"[augment]\nrotation = -0.1\n", "aug.cfg:2"},
        {"[augment]\nfill_mode = mirror\n", "aug.cfg:2"},
        {"[augment]\ncontrast = 1.5, 0\n", "aug.cfg:2"},
        {"[augment]\ntranslation = abc\n", "aug.cfg:2"},
        {"[augment]\nrotaton = 0.1\n", "aug.cfg:2"}, /* unknown key, reported by the config */
        {"[augment]\ntest_time = flip\n", "aug.cfg:2: [augment] test_time: flip averages over "
                                          "the mirrors RandomFlip draws, and flip is none"},
        {"[augment]\nflip = horizontal\ntest_time = crop\n", "aug.cfg:3: [augment] test_time"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        int rc = parse(bad[i][0], &ac, &err);
        if (rc != SN_EINVAL || strstr(err.msg, bad[i][1]) == NULL)
            fail_msg("config %zu: rc %d, message '%s' should name %s", i, rc, err.msg, bad[i][1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flip_exact),
        cmocka_unit_test(test_zero_factors_identity),
        cmocka_unit_test(test_rotate_90_is_transpose_flip),
        cmocka_unit_test(test_zoom_and_translation_direction),
        cmocka_unit_test(test_warp_vs_reference),
        cmocka_unit_test(test_key_determinism),
        cmocka_unit_test(test_contrast),
        cmocka_unit_test(test_crop_window),
        cmocka_unit_test(test_crop_inference),
        cmocka_unit_test(test_crop_first_in_chain),
        cmocka_unit_test(test_crop_threads),
        cmocka_unit_test(test_views),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests_name("augment", tests, NULL, NULL);
}
