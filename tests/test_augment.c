/* test_augment.c — Keras augmentation semantics: exact flips, identities, rotation direction,
 * zoom and translation direction, contrast, determinism by key, and the [augment] parser. */
#include <math.h>     // defines: fabsf, cos, sin, floor, M_PI
#include <setjmp.h>   // defines: jmp_buf (cmocka)
#include <stdarg.h>   // defines: va_list (cmocka)
#include <stddef.h>   // defines: size_t (cmocka)
#include <stdlib.h>   // defines: malloc, free
#include <string.h>   // defines: memcmp, strstr
#include <cmocka.h>   // defines: cmocka_unit_test, assert_*

#include "augment.h"
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

    /* bad values name the file and line */
    const char *bad[][2] = {
        {"[augment]\n\nflip = sideways\n", "aug.cfg:3"},
        {"[augment]\nzoom = 2\n", "aug.cfg:2"},
        {"[augment]\nrotation = 0.3, 0.1\n", "aug.cfg:2"},
        {"[augment]\nrotation = -0.1\n", "aug.cfg:2"},
        {"[augment]\nfill_mode = mirror\n", "aug.cfg:2"},
        {"[augment]\ncontrast = 1.5, 0\n", "aug.cfg:2"},
        {"[augment]\ntranslation = abc\n", "aug.cfg:2"},
        {"[augment]\nrotaton = 0.1\n", "aug.cfg:2"}, /* unknown key, reported by the config */
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
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests_name("augment", tests, NULL, NULL);
}
