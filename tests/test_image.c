/* test_image.c — decoding (JPEG, PNG), Keras resizing semantics, DCT scaling and the errors of
 * broken files, on files written by sn_image_write_* into the test's directory. */
#include <math.h>     // defines: fabsf, sinf, cosf
#include <setjmp.h>   // defines: jmp_buf (cmocka)
#include <stdarg.h>   // defines: va_list (cmocka)
#include <stddef.h>   // defines: size_t (cmocka)
#include <stdio.h>    // defines: snprintf, fopen, fwrite
#include <stdlib.h>   // defines: malloc, free
#include <string.h>   // defines: strstr, memcpy
#include <zlib.h>     // defines: compress, crc32 (to build a 16-bit PNG by hand)
#include <cmocka.h>   // defines: cmocka_unit_test, assert_*

#include "image.h"
#include "rng.h"
#include "testutil.h"

struct fixture {
    char dir[1024];
    struct sn_image_ctx *ctx;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "%s", sn_test_dir("image"));
    struct sn_err err = {0};
    if (sn_image_ctx_create(&f->ctx, &err) != SN_OK)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    sn_image_ctx_free(f->ctx);
    sn_image_ctx_free(NULL);
    free(f);
    return 0;
}

static const char *fpath(const struct fixture *f, const char *name)
{
    static char p[1200];
    snprintf(p, sizeof p, "%s/%s", f->dir, name);
    return p;
}

/* A smooth pattern (JPEG-friendly): (h,w,c) uint8. */
static uint8_t *smooth(int h, int w, int c)
{
    uint8_t *p = malloc((size_t)h * w * c);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++)
                p[((size_t)y * w + x) * c + k] =
                    (uint8_t)(128 + 90 * sinf((x + 7 * k) * 6.0f / w) * cosf(y * 5.0f / h));
    return p;
}

static uint8_t *noise(int h, int w, int c, uint64_t seed)
{
    uint8_t *p = malloc((size_t)h * w * c);
    struct sn_rng r;
    sn_rng_seed(&r, seed);
    for (size_t i = 0; i < (size_t)h * w * c; i++)
        p[i] = (uint8_t)(sn_rng_next(&r) >> 56);
    return p;
}

static float max_abs_u8(const float *a, const uint8_t *b, size_t n)
{
    float m = 0;
    for (size_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

static struct sn_image_opts opts(int h, int w, int c, int interp)
{
    struct sn_image_opts o = {0};
    o.height = h, o.width = w, o.channels = c, o.interp = interp;
    return o;
}

static void test_jpeg_roundtrip(void **state)
{
    struct fixture *f = *state;
    struct sn_err err = {0};
    for (int c = 1; c <= 3; c += 2) {
        int h = 40, w = 48;
        uint8_t *px = smooth(h, w, c);
        const char *p = fpath(f, c == 1 ? "g.jpg" : "rgb.jpg");
        assert_int_equal(sn_image_write_jpeg(p, px, h, w, c, 95, &err), SN_OK);
        float *out = malloc(sizeof(float) * h * w * c);
        struct sn_image_opts o = opts(h, w, c, 0);
        assert_int_equal(sn_image_load(f->ctx, p, &o, out, &err), SN_OK);
        float m = max_abs_u8(out, px, (size_t)h * w * c);
        assert_true(m <= 10.0f);
        assert_int_equal(sn_image_ctx_info(f->ctx)->format, 1);
        for (int i = 0; i < h * w * c; i++)
            assert_true(out[i] == floorf(out[i])); /* same size: exact copy of decoded bytes */
        free(out);
        free(px);
    }
}

static void test_png_exact_and_channels(void **state)
{
    struct fixture *f = *state;
    struct sn_err err = {0};
    int h = 13, w = 17;
    uint8_t *rgb = noise(h, w, 3, 1), *g = noise(h, w, 1, 2);
    float *out = malloc(sizeof(float) * h * w * 3);
    assert_int_equal(sn_image_write_png(fpath(f, "rgb.png"), rgb, h, w, 3, &err), SN_OK);
    assert_int_equal(sn_image_write_png(fpath(f, "g.png"), g, h, w, 1, &err), SN_OK);
    for (int interp = 0; interp < 3; interp++) { /* equal sizes: identity for every method */
        struct sn_image_opts o = opts(h, w, 3, interp);
        assert_int_equal(sn_image_load(f->ctx, fpath(f, "rgb.png"), &o, out, &err), SN_OK);
        assert_true(max_abs_u8(out, rgb, (size_t)h * w * 3) == 0.0f);
        o.channels = 1;
        assert_int_equal(sn_image_load(f->ctx, fpath(f, "g.png"), &o, out, &err), SN_OK);
        assert_true(max_abs_u8(out, g, (size_t)h * w) == 0.0f);
    }
    /* gray file as rgb: replicated; rgb file as gray: 0.299 R + 0.587 G + 0.114 B */
    struct sn_image_opts o = opts(h, w, 3, 0);
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "g.png"), &o, out, &err), SN_OK);
    for (int i = 0; i < h * w; i++)
        for (int k = 0; k < 3; k++)
            assert_true(out[i * 3 + k] == g[i]);
    o.channels = 1;
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "rgb.png"), &o, out, &err), SN_OK);
    for (int i = 0; i < h * w; i++) {
        float y = 0.299f * rgb[3 * i] + 0.587f * rgb[3 * i + 1] + 0.114f * rgb[3 * i + 2];
        assert_true(fabsf(out[i] - y) <= 0.51f);
    }
    free(out);
    free(rgb);
    free(g);
}

static void test_gray_from_rgb_jpeg(void **state)
{
    struct fixture *f = *state;
    struct sn_err err = {0};
    int h = 16, w = 16;
    uint8_t px[16 * 16 * 3];
    for (int i = 0; i < h * w; i++)
        px[3 * i] = 200, px[3 * i + 1] = 100, px[3 * i + 2] = 50;
    assert_int_equal(sn_image_write_jpeg(fpath(f, "solid.jpg"), px, h, w, 3, 95, &err), SN_OK);
    float out[16 * 16];
    struct sn_image_opts o = opts(h, w, 1, 0);
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "solid.jpg"), &o, out, &err), SN_OK);
    for (int i = 0; i < h * w; i++) /* Y = 124.2 */
        assert_true(fabsf(out[i] - 124.2f) <= 2.0f);
}

/* Loads a tiny gray PNG of known values at another size. */
static void load_tiny(struct fixture *f, const uint8_t *px, int h, int w, struct sn_image_opts *o,
                      float *out)
{
    struct sn_err err = {0};
    assert_int_equal(sn_image_write_png(fpath(f, "tiny.png"), px, h, w, 1, &err), SN_OK);
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "tiny.png"), o, out, &err), SN_OK);
}

static void test_bilinear_known(void **state)
{
    struct fixture *f = *state;
    /* 2x2 -> 4x4: tf.image.resize(bilinear) gives these (half-pixel centres, edges clamped) */
    const uint8_t a[4] = {0, 100, 200, 50};
    const float want[16] = {0,   25,     75,     100,  50,  59.375f, 78.125f, 87.5f,
                            150, 128.125f, 84.375f, 62.5f, 200, 162.5f, 87.5f, 50};
    float out[16];
    struct sn_image_opts o = opts(4, 4, 1, 0);
    load_tiny(f, a, 2, 2, &o, out);
    for (int i = 0; i < 16; i++)
        assert_float_equal(out[i], want[i], 1e-4);
    /* 4x4 -> 2x2: samples at (i + 0.5) * 2 - 0.5 = 0.5 and 2.5, the means of the 2x2 boxes at
     * rows/cols {0,1} and {2,3} */
    uint8_t b[16];
    for (int i = 0; i < 16; i++)
        b[i] = (uint8_t)(i * 10);
    float o2[4];
    o = opts(2, 2, 1, 0);
    load_tiny(f, b, 4, 4, &o, o2);
    assert_float_equal(o2[0], (0 + 10 + 40 + 50) / 4.0, 1e-4);
    assert_float_equal(o2[1], (20 + 30 + 60 + 70) / 4.0, 1e-4);
    assert_float_equal(o2[2], (80 + 90 + 120 + 130) / 4.0, 1e-4);
    assert_float_equal(o2[3], (100 + 110 + 140 + 150) / 4.0, 1e-4);
}

/* The oracle: tf's resize_bilinear (half-pixel centres) pixel by pixel, as written in tf. */
static float ref_bilinear(const uint8_t *src, int h, int w, int c, int H, int W, int y, int x,
                          int k)
{
    float sy = (float)h / H, sx = (float)w / W;
    float iy = ((float)y + 0.5f) * sy - 0.5f, ix = ((float)x + 0.5f) * sx - 0.5f;
    int y0 = (int)floorf(iy) < 0 ? 0 : (int)floorf(iy), x0 = (int)floorf(ix) < 0 ? 0 : (int)floorf(ix);
    int y1 = (int)ceilf(iy) > h - 1 ? h - 1 : (int)ceilf(iy);
    int x1 = (int)ceilf(ix) > w - 1 ? w - 1 : (int)ceilf(ix);
    float ly = iy - floorf(iy), lx = ix - floorf(ix);
    float tl = src[(y0 * w + x0) * c + k], tr = src[(y0 * w + x1) * c + k];
    float bl = src[(y1 * w + x0) * c + k], br = src[(y1 * w + x1) * c + k];
    float top = tl + (tr - tl) * lx, bot = bl + (br - bl) * lx;
    return top + (bot - top) * ly;
}

static void test_bilinear_vs_reference(void **state)
{
    struct fixture *f = *state;
    struct sn_err err = {0};
    const int sizes[][4] = {{37, 53, 20, 31}, {11, 7, 30, 25}, {64, 48, 64, 17}, {9, 40, 9, 40}};
    for (int c = 1; c <= 3; c += 2)
        for (size_t t = 0; t < sizeof sizes / sizeof sizes[0]; t++) {
            int h = sizes[t][0], w = sizes[t][1], H = sizes[t][2], W = sizes[t][3];
            uint8_t *px = noise(h, w, c, 100 + t);
            assert_int_equal(sn_image_write_png(fpath(f, "ref.png"), px, h, w, c, &err), SN_OK);
            float *out = malloc(sizeof(float) * H * W * c);
            struct sn_image_opts o = opts(H, W, c, 0);
            assert_int_equal(sn_image_load(f->ctx, fpath(f, "ref.png"), &o, out, &err), SN_OK);
            for (int y = 0; y < H; y++)
                for (int x = 0; x < W; x++)
                    for (int k = 0; k < c; k++)
                        assert_float_equal(out[(y * W + x) * c + k],
                                           ref_bilinear(px, h, w, c, H, W, y, x, k), 1e-3);
            free(out);
            free(px);
        }
}

static void test_nearest_and_area_known(void **state)
{
    struct fixture *f = *state;
    uint8_t b[16];
    for (int i = 0; i < 16; i++)
        b[i] = (uint8_t)(i * 10);
    float o2[4];
    struct sn_image_opts o = opts(2, 2, 1, 1); /* nearest: floor((i + 0.5) * 2) = 1, 3 */
    load_tiny(f, b, 4, 4, &o, o2);
    assert_true(o2[0] == 50 && o2[1] == 70 && o2[2] == 130 && o2[3] == 150);
    o = opts(2, 2, 1, 2); /* area: means of the 2x2 blocks */
    load_tiny(f, b, 4, 4, &o, o2);
    assert_float_equal(o2[0], (0 + 10 + 40 + 50) / 4.0, 1e-4);
    assert_float_equal(o2[3], (100 + 110 + 140 + 150) / 4.0, 1e-4);
    /* area 3 -> 2: output 0 covers pixel 0 and half of pixel 1 */
    const uint8_t c3[3] = {30, 60, 90};
    float o3[2];
    o = opts(1, 2, 1, 2);
    load_tiny(f, c3, 1, 3, &o, o3);
    assert_float_equal(o3[0], (30 + 0.5 * 60) / 1.5, 1e-4);
    assert_float_equal(o3[1], (0.5 * 60 + 90) / 1.5, 1e-4);
    /* nearest 2x2 -> 4x4: source index floor((i + 0.5) / 2) = 0,0,1,1 */
    const uint8_t a[4] = {0, 100, 200, 50};
    float o4[16];
    o = opts(4, 4, 1, 1);
    load_tiny(f, a, 2, 2, &o, o4);
    assert_true(o4[0] == 0 && o4[1] == 0 && o4[2] == 100 && o4[3] == 100);
    assert_true(o4[12] == 200 && o4[15] == 50);
}

static void test_crop_to_aspect_ratio(void **state)
{
    struct fixture *f = *state;
    uint8_t px[4 * 8];
    for (int i = 0; i < 32; i++)
        px[i] = (uint8_t)(i * 7);
    float out[4];
    /* 4x8 -> 2x2 with crop: box of 4x4 starting at column 2, then nearest picks rows 1,3 and
     * columns 2+1, 2+3 */
    struct sn_image_opts o = opts(2, 2, 1, 1);
    o.crop_to_aspect_ratio = 1;
    load_tiny(f, px, 4, 8, &o, out);
    assert_true(out[0] == px[1 * 8 + 3] && out[1] == px[1 * 8 + 5]);
    assert_true(out[2] == px[3 * 8 + 3] && out[3] == px[3 * 8 + 5]);
    /* without crop the columns are floor((i + 0.5) * 4) = 2, 6 */
    o.crop_to_aspect_ratio = 0;
    load_tiny(f, px, 4, 8, &o, out);
    assert_true(out[0] == px[1 * 8 + 2] && out[1] == px[1 * 8 + 6]);
}

static void test_dct_scaled_decode(void **state)
{
    struct fixture *f = *state;
    struct sn_err err = {0};
    int H = 64, W = 64, h = 256, w = 256;
    uint8_t *px = smooth(h, w, 3);
    assert_int_equal(sn_image_write_jpeg(fpath(f, "big.jpg"), px, h, w, 3, 90, &err), SN_OK);
    float *fast = malloc(sizeof(float) * H * W * 3), *full = malloc(sizeof(float) * H * W * 3);
    struct sn_image_opts o = opts(H, W, 3, 0);
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "big.jpg"), &o, fast, &err), SN_OK);
    const struct sn_image_info *in = sn_image_ctx_info(f->ctx);
    assert_int_equal(in->src_width, 256);
    assert_int_equal(in->dec_width, 64); /* 1/4 scaling keeps exactly the target */
    assert_int_equal(in->dec_height, 64);
    o.no_dct_scaling = 1;
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "big.jpg"), &o, full, &err), SN_OK);
    assert_int_equal(sn_image_ctx_info(f->ctx)->dec_width, 256);
    double mean = 0, worst = 0;
    for (int i = 0; i < H * W * 3; i++) {
        double d = fabs((double)fast[i] - full[i]);
        mean += d / (H * W * 3);
        worst = fmax(worst, d);
    }
    assert_true(mean < 2.0);
    assert_true(worst < 16.0);
    float *big = malloc(sizeof(float) * 160 * 160 * 3);
    /* 2.56x the target: 1/2 (128) is the last factor that stays >= 100 (3/8 gives 96) */
    o = opts(100, 100, 3, 0);
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "big.jpg"), &o, big, &err), SN_OK);
    assert_int_equal(sn_image_ctx_info(f->ctx)->dec_width, 128);
    /* nearest promises source pixels: never DCT-scaled */
    o = opts(64, 64, 3, 1);
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "big.jpg"), &o, big, &err), SN_OK);
    assert_int_equal(sn_image_ctx_info(f->ctx)->dec_width, 256);
    /* under 2x: full decode */
    o = opts(160, 160, 3, 0);
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "big.jpg"), &o, big, &err), SN_OK);
    assert_int_equal(sn_image_ctx_info(f->ctx)->dec_width, 256);
    /* with crop_to_aspect_ratio the centred square decides: 512x256 -> 64x64 crops 256x256, so
     * 1/4 scaling (128x64) still leaves a 64x64 crop */
    uint8_t *wide = smooth(256, 512, 3);
    assert_int_equal(sn_image_write_jpeg(fpath(f, "wide.jpg"), wide, 256, 512, 3, 90, &err), SN_OK);
    o = opts(H, W, 3, 0);
    o.crop_to_aspect_ratio = 1;
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "wide.jpg"), &o, fast, &err), SN_OK);
    assert_int_equal(sn_image_ctx_info(f->ctx)->dec_width, 128);
    o.no_dct_scaling = 1;
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "wide.jpg"), &o, full, &err), SN_OK);
    mean = 0;
    for (int i = 0; i < H * W * 3; i++)
        mean += fabs((double)fast[i] - full[i]) / (H * W * 3);
    assert_true(mean < 2.0);
    free(wide);
    free(big);
    free(fast);
    free(full);
    free(px);
}

static void write_bytes(const char *path, const void *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(p, 1, n, fp), n);
    assert_int_equal(fclose(fp), 0);
}

static uint8_t *read_bytes(const char *path, size_t *n)
{
    FILE *fp = fopen(path, "rb");
    assert_non_null(fp);
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *p = malloc(*n);
    assert_int_equal(fread(p, 1, *n, fp), *n);
    fclose(fp);
    return p;
}

/* Loading `name` fails with `code` and a message naming the file and containing `what`. */
static void expect_error(struct fixture *f, const char *name, const struct sn_image_opts *o,
                         int code, const char *what)
{
    struct sn_err err = {0};
    char p[1200];
    snprintf(p, sizeof p, "%s", fpath(f, name));
    float *out = malloc(sizeof(float) * o->height * o->width * o->channels);
    int rc = sn_image_load(f->ctx, p, o, out, &err);
    free(out);
    if (rc != code || strstr(err.msg, p) == NULL || strstr(err.msg, what) == NULL)
        fail_msg("%s: rc %d (want %d), message '%s' should name the file and say '%s'", name, rc,
                 code, err.msg, what);
}

/* An 8x8 CMYK JPEG (Adobe APP14, YCCK transform), as TurboJPEG writes from CMYK pixels. */
static const uint8_t cmyk_jpeg[] = {
    0xff,0xd8,0xff,0xee,0x00,0x0e,0x41,0x64,0x6f,0x62,0x65,0x00,0x64,0x00,0x00,0x00,
    0x00,0x02,0xff,0xdb,0x00,0x43,0x00,0x10,0x0b,0x0c,0x0e,0x0c,0x0a,0x10,0x0e,0x0d,
    0x0e,0x12,0x11,0x10,0x13,0x18,0x28,0x1a,0x18,0x16,0x16,0x18,0x31,0x23,0x25,0x1d,
    0x28,0x3a,0x33,0x3d,0x3c,0x39,0x33,0x38,0x37,0x40,0x48,0x5c,0x4e,0x40,0x44,0x57,
    0x45,0x37,0x38,0x50,0x6d,0x51,0x57,0x5f,0x62,0x67,0x68,0x67,0x3e,0x4d,0x71,0x79,
    0x70,0x64,0x78,0x5c,0x65,0x67,0x63,0xff,0xdb,0x00,0x43,0x01,0x11,0x12,0x12,0x18,
    0x15,0x18,0x2f,0x1a,0x1a,0x2f,0x63,0x42,0x38,0x42,0x63,0x63,0x63,0x63,0x63,0x63,
    0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,
    0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,
    0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0x63,0xff,0xc0,0x00,0x14,
    0x08,0x00,0x08,0x00,0x08,0x04,0x01,0x11,0x00,0x02,0x11,0x01,0x03,0x11,0x01,0x04,
    0x11,0x00,0xff,0xc4,0x00,0x1f,0x00,0x00,0x01,0x05,0x01,0x01,0x01,0x01,0x01,0x01,
    0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x00,0x01,0x02,0x03,0x04,0x05,0x06,0x07,0x08,
    0x09,0x0a,0x0b,0xff,0xc4,0x00,0xb5,0x10,0x00,0x02,0x01,0x03,0x03,0x02,0x04,0x03,
    0x05,0x05,0x04,0x04,0x00,0x00,0x01,0x7d,0x01,0x02,0x03,0x00,0x04,0x11,0x05,0x12,
    0x21,0x31,0x41,0x06,0x13,0x51,0x61,0x07,0x22,0x71,0x14,0x32,0x81,0x91,0xa1,0x08,
    0x23,0x42,0xb1,0xc1,0x15,0x52,0xd1,0xf0,0x24,0x33,0x62,0x72,0x82,0x09,0x0a,0x16,
    0x17,0x18,0x19,0x1a,0x25,0x26,0x27,0x28,0x29,0x2a,0x34,0x35,0x36,0x37,0x38,0x39,
    0x3a,0x43,0x44,0x45,0x46,0x47,0x48,0x49,0x4a,0x53,0x54,0x55,0x56,0x57,0x58,0x59,
    0x5a,0x63,0x64,0x65,0x66,0x67,0x68,0x69,0x6a,0x73,0x74,0x75,0x76,0x77,0x78,0x79,
    0x7a,0x83,0x84,0x85,0x86,0x87,0x88,0x89,0x8a,0x92,0x93,0x94,0x95,0x96,0x97,0x98,
    0x99,0x9a,0xa2,0xa3,0xa4,0xa5,0xa6,0xa7,0xa8,0xa9,0xaa,0xb2,0xb3,0xb4,0xb5,0xb6,
    0xb7,0xb8,0xb9,0xba,0xc2,0xc3,0xc4,0xc5,0xc6,0xc7,0xc8,0xc9,0xca,0xd2,0xd3,0xd4,
    0xd5,0xd6,0xd7,0xd8,0xd9,0xda,0xe1,0xe2,0xe3,0xe4,0xe5,0xe6,0xe7,0xe8,0xe9,0xea,
    0xf1,0xf2,0xf3,0xf4,0xf5,0xf6,0xf7,0xf8,0xf9,0xfa,0xff,0xc4,0x00,0x1f,0x01,0x00,
    0x03,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x01,0x00,0x00,0x00,0x00,0x00,0x00,
    0x01,0x02,0x03,0x04,0x05,0x06,0x07,0x08,0x09,0x0a,0x0b,0xff,0xc4,0x00,0xb5,0x11,
    0x00,0x02,0x01,0x02,0x04,0x04,0x03,0x04,0x07,0x05,0x04,0x04,0x00,0x01,0x02,0x77,
    0x00,0x01,0x02,0x03,0x11,0x04,0x05,0x21,0x31,0x06,0x12,0x41,0x51,0x07,0x61,0x71,
    0x13,0x22,0x32,0x81,0x08,0x14,0x42,0x91,0xa1,0xb1,0xc1,0x09,0x23,0x33,0x52,0xf0,
    0x15,0x62,0x72,0xd1,0x0a,0x16,0x24,0x34,0xe1,0x25,0xf1,0x17,0x18,0x19,0x1a,0x26,
    0x27,0x28,0x29,0x2a,0x35,0x36,0x37,0x38,0x39,0x3a,0x43,0x44,0x45,0x46,0x47,0x48,
    0x49,0x4a,0x53,0x54,0x55,0x56,0x57,0x58,0x59,0x5a,0x63,0x64,0x65,0x66,0x67,0x68,
    0x69,0x6a,0x73,0x74,0x75,0x76,0x77,0x78,0x79,0x7a,0x82,0x83,0x84,0x85,0x86,0x87,
    0x88,0x89,0x8a,0x92,0x93,0x94,0x95,0x96,0x97,0x98,0x99,0x9a,0xa2,0xa3,0xa4,0xa5,
    0xa6,0xa7,0xa8,0xa9,0xaa,0xb2,0xb3,0xb4,0xb5,0xb6,0xb7,0xb8,0xb9,0xba,0xc2,0xc3,
    0xc4,0xc5,0xc6,0xc7,0xc8,0xc9,0xca,0xd2,0xd3,0xd4,0xd5,0xd6,0xd7,0xd8,0xd9,0xda,
    0xe2,0xe3,0xe4,0xe5,0xe6,0xe7,0xe8,0xe9,0xea,0xf2,0xf3,0xf4,0xf5,0xf6,0xf7,0xf8,
    0xf9,0xfa,0xff,0xda,0x00,0x0e,0x04,0x01,0x00,0x02,0x11,0x03,0x11,0x04,0x00,0x00,
    0x3f,0x00,0x4f,0x39,0xd2,0x53,0x63,0xad,0x31,0x68,0xdb,0x88,0xee,0x5f,0xaa,0x1f,
    0x47,0x3d,0xc7,0xfb,0x5d,0xbb,0xf1,0xc8,0x1b,0x4d,0x2d,0x35,0xfe,0xbf,0xaf,0xeb,
    0x56,0x95,0x84,0x10,0x48,0xb3,0x0b,0xdd,0x11,0x77,0x46,0xd9,0x69,0x2d,0x94,0x8c,
    0xa1,0xeb,0x94,0x1d,0xc7,0xfb,0x23,0x9c,0xf4,0xe3,0x81,0xff,0xd9
};

static void test_cmyk_and_alpha(void **state)
{
    struct fixture *f = *state;
    struct sn_err err = {0};
    write_bytes(fpath(f, "cmyk.jpg"), cmyk_jpeg, sizeof cmyk_jpeg);
    struct sn_image_opts o = opts(8, 8, 3, 0);
    expect_error(f, "cmyk.jpg", &o, SN_EFORMAT, "unsupported JPEG colour space");
    /* alpha is dropped, as tf's decode_png(channels=3/1) does: colours kept as stored */
    uint8_t rgba[6 * 5 * 4], ga[6 * 5 * 2];
    for (int i = 0; i < 30; i++) {
        rgba[4 * i] = (uint8_t)(i * 8), rgba[4 * i + 1] = (uint8_t)(255 - i), rgba[4 * i + 2] = 9;
        rgba[4 * i + 3] = (uint8_t)(i * 3); /* mostly transparent */
        ga[2 * i] = (uint8_t)(i * 5), ga[2 * i + 1] = 0;
    }
    assert_int_equal(sn_image_write_png(fpath(f, "rgba.png"), rgba, 5, 6, 4, &err), SN_OK);
    assert_int_equal(sn_image_write_png(fpath(f, "ga.png"), ga, 5, 6, 2, &err), SN_OK);
    float out[5 * 6 * 3];
    o = opts(5, 6, 3, 0);
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "rgba.png"), &o, out, &err), SN_OK);
    for (int i = 0; i < 30; i++)
        for (int k = 0; k < 3; k++)
            assert_true(out[3 * i + k] == rgba[4 * i + k]);
    o.channels = 1;
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "ga.png"), &o, out, &err), SN_OK);
    for (int i = 0; i < 30; i++)
        assert_true(out[i] == ga[2 * i]);
}

/* A PNG chunk: length, type, data, CRC. */
static size_t png_chunk(uint8_t *o, const char *type, const uint8_t *d, uint32_t n)
{
    const uint8_t be[4] = {(uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n};
    memcpy(o, be, 4);
    memcpy(o + 4, type, 4);
    memcpy(o + 8, d, n);
    uint32_t crc = (uint32_t)crc32(0, o + 4, n + 4);
    const uint8_t bc[4] = {(uint8_t)(crc >> 24), (uint8_t)(crc >> 16), (uint8_t)(crc >> 8),
                           (uint8_t)crc};
    memcpy(o + 8 + n, bc, 4);
    return 12 + n;
}

static void test_png_16bit(void **state)
{
    /* 16-bit gray without gAMA: 8-bit output keeps the high byte (tf's decode_png), no gamma */
    struct fixture *f = *state;
    struct sn_err err = {0};
    const int w = 3, h = 2;
    const uint16_t v[6] = {0x8080, 0x0000, 0xFFFF, 0x12F0, 0x7F01, 0xC0C0};
    uint8_t raw[2 * (1 + 3 * 2)], z[256], png[512];
    for (int y = 0; y < h; y++) {
        raw[y * 7] = 0; /* filter: none */
        for (int x = 0; x < w; x++) { /* big-endian samples */
            raw[y * 7 + 1 + 2 * x] = (uint8_t)(v[y * w + x] >> 8);
            raw[y * 7 + 2 + 2 * x] = (uint8_t)v[y * w + x];
        }
    }
    uLongf zn = sizeof z;
    assert_int_equal(compress(z, &zn, raw, sizeof raw), Z_OK);
    const uint8_t ihdr[13] = {0, 0, 0, 3, 0, 0, 0, 2, 16, 0, 0, 0, 0};
    size_t n = 8;
    memcpy(png, "\x89PNG\r\n\x1a\n", 8);
    n += png_chunk(png + n, "IHDR", ihdr, 13);
    n += png_chunk(png + n, "IDAT", z, (uint32_t)zn);
    n += png_chunk(png + n, "IEND", NULL, 0);
    write_bytes(fpath(f, "g16.png"), png, n);
    float out[6 * 3];
    struct sn_image_opts o = opts(h, w, 1, 0);
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "g16.png"), &o, out, &err), SN_OK);
    for (int i = 0; i < 6; i++)
        assert_true(out[i] == (float)(v[i] >> 8));
    o.channels = 3;
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "g16.png"), &o, out, &err), SN_OK);
    for (int i = 0; i < 6; i++)
        assert_true(out[3 * i + 2] == (float)(v[i] >> 8));
}

static void test_errors(void **state)
{
    struct fixture *f = *state;
    struct sn_err err = {0};
    struct sn_image_opts o = opts(32, 32, 3, 0);
    write_bytes(fpath(f, "empty.jpg"), "", 0);
    expect_error(f, "empty.jpg", &o, SN_EFORMAT, "empty file");
    expect_error(f, "missing.jpg", &o, SN_EIO, "No such file");

    uint8_t *px = smooth(64, 64, 3);
    assert_int_equal(sn_image_write_jpeg(fpath(f, "ok.jpg"), px, 64, 64, 3, 90, &err), SN_OK);
    assert_int_equal(sn_image_write_png(fpath(f, "ok.png"), px, 64, 64, 3, &err), SN_OK);
    size_t n;
    uint8_t *j = read_bytes(fpath(f, "ok.jpg"), &n);
    write_bytes(fpath(f, "half.jpg"), j, n / 2);
    expect_error(f, "half.jpg", &o, SN_EFORMAT, "truncated or corrupt JPEG");
    write_bytes(fpath(f, "head.jpg"), j, 40);
    expect_error(f, "head.jpg", &o, SN_EFORMAT, "JPEG");
    /* a bogus Huffman table once left the TurboJPEG handle failing on every later file */
    float *good = malloc(sizeof(float) * 32 * 32 * 3), *again = malloc(sizeof(float) * 32 * 32 * 3);
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "ok.jpg"), &o, good, &err), SN_OK);
    size_t dht = 2;
    while (dht + 22 < n && !(j[dht] == 0xFF && j[dht + 1] == 0xC4))
        dht++;
    assert_true(dht + 22 < n);
    memset(j + dht + 5, 0xFF, 16); /* code counts summing far over 256 */
    write_bytes(fpath(f, "dht.jpg"), j, n);
    expect_error(f, "dht.jpg", &o, SN_EFORMAT, "Huffman");
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "ok.jpg"), &o, again, &err), SN_OK);
    assert_memory_equal(good, again, sizeof(float) * 32 * 32 * 3);
    free(good);
    free(again);
    free(j);
    uint8_t *pn = read_bytes(fpath(f, "ok.png"), &n);
    write_bytes(fpath(f, "half.png"), pn, n / 2);
    expect_error(f, "half.png", &o, SN_EFORMAT, "PNG");
    write_bytes(fpath(f, "head.png"), pn, 20);
    expect_error(f, "head.png", &o, SN_EFORMAT, "PNG");
    free(pn);

    uint8_t *junk = noise(1, 1000, 1, 9);
    junk[0] = 'G'; /* never a JPEG or PNG magic */
    write_bytes(fpath(f, "junk.jpg"), junk, 1000);
    expect_error(f, "junk.jpg", &o, SN_EFORMAT, "not a JPEG or PNG");
    free(junk);

    o.max_pixels = 64 * 64 - 1;
    expect_error(f, "ok.jpg", &o, SN_EFORMAT, "exceeds max_pixels");
    expect_error(f, "ok.png", &o, SN_EFORMAT, "exceeds max_pixels");
    o.max_pixels = 64 * 64;
    float *out = malloc(sizeof(float) * 32 * 32 * 3);
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "ok.jpg"), &o, out, &err), SN_OK);
    /* the context still works after errors */
    assert_int_equal(sn_image_load(f->ctx, fpath(f, "ok.png"), &o, out, &err), SN_OK);
    o.channels = 2;
    expect_error(f, "ok.png", &o, SN_EINVAL, "channels");
    free(out);
    free(px);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_jpeg_roundtrip),     cmocka_unit_test(test_png_exact_and_channels),
        cmocka_unit_test(test_gray_from_rgb_jpeg), cmocka_unit_test(test_bilinear_known),
        cmocka_unit_test(test_bilinear_vs_reference),
        cmocka_unit_test(test_nearest_and_area_known), cmocka_unit_test(test_crop_to_aspect_ratio),
        cmocka_unit_test(test_dct_scaled_decode),
        cmocka_unit_test(test_cmyk_and_alpha),     cmocka_unit_test(test_png_16bit),  cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests_name("image", tests, setup, teardown);
}
