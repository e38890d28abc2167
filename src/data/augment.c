/* augment.c — Keras's RandomCrop, RandomFlip, RandomRotation, RandomZoom, RandomTranslation and
 * RandomContrast on one (H,W,C) float image, with draws that are a pure function of the sample's
 * key.
 *
 * RandomCrop comes first, as in the usual Keras recipes (RandomCrop then RandomFlip): the other
 * layers see the H x W window, so their fill modes act at the window's edges and translation
 * factors are fractions of the window. It is a copy of the window (no resampling) when the
 * image is at least H x W; otherwise, and at inference, Keras's smart_resize.
 *
 * Keras applies each layer in turn, resampling the image each time. We compose the geometric ones
 * (in the order flip -> rotation -> zoom -> translation, the order of the book's
 * data_augmentation block) into one inverse affine map about the image centre and resample once,
 * which is both faster and sharper; the maps themselves are Keras's (tf's ImageProjectiveTransform
 * conventions: output pixel (x,y) reads input point M (x,y) + b, bilinear, with its fill modes).
 * Only where a point falls outside the image can the single pass differ from the chain.
 *
 * Draw k of a sample is sn_hash_uniform(sn_hash64(key, k)) with a fixed k per quantity, so the
 * result does not depend on which thread or rank augments the sample, or on what else is enabled. */
#include "augment.h"

#include <math.h>   // defines: cos, sin, floorf, ceilf, M_PI
#include <string.h> // defines: memcpy, strpbrk

#include "rng.h"

#ifdef __SSE2__
#include <emmintrin.h> // defines: __m128, _mm_loadu_ps, _mm_mul_ps (baseline on x86-64)
#endif

/* Counter of each random quantity in the sample's stream. */
enum {
    K_FLIP_H = 0,
    K_FLIP_V,
    K_ROTATE,
    K_ZOOM_H,
    K_ZOOM_W,
    K_SHIFT_H,
    K_SHIFT_W,
    K_CONTRAST,
    K_CROP_H, /* added last: the draws above keep their counters */
    K_CROP_W
};

/* ---------------------------------------------------------------------------------------------
 * Config */

/* Whether a factor value holds a second number after its separator ("0.1, 0.2", "(0.1,0.2)"),
 * as opposed to one number ("0.1", "(0.1,)"). */
static int has_two_numbers(const char *v)
{
    const char *sep = strpbrk(v, ",x");
    return sep != NULL && strpbrk(sep + 1, "0123456789") != NULL;
}

/* A factor key in Keras's forms: one number f means [-f, f] (symmetric) or [f, f] (contrast);
 * "lower, upper" is taken as is. Values outside [lo, hi] or lower > upper are errors. */
static int parse_range(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                       int symmetric, double lo, double hi, double out[2], int *given,
                       struct sn_err *err)
{
    const struct sn_key *k = sn_section_key(s, key);
    *given = k != NULL;
    out[0] = out[1] = 0;
    if (k == NULL)
        return SN_OK;
    SN_FORWARD(sn_section_float2(cfg, s, key, 0, 0, lo, hi, out, err));
    if (!has_two_numbers(k->value)) {
        if (out[0] < 0)
            return sn_config_error(cfg, s, key, err, SN_EINVAL,
                                   "single factor %g must be >= 0 (write \"lower, upper\" for an "
                                   "asymmetric range)",
                                   out[0]);
        if (symmetric)
            out[0] = -out[1];
        if (out[0] < lo)
            return sn_config_error(cfg, s, key, err, SN_EINVAL,
                                   "factor %g gives the range [%g, %g], whose lower end is below "
                                   "%g",
                                   out[1], out[0], out[1], lo);
    }
    if (out[0] > out[1])
        return sn_config_error(cfg, s, key, err, SN_EINVAL, "lower %g > upper %g", out[0],
                               out[1]);
    return SN_OK;
}

/* Whether a layer after RandomCrop is configured (sn_augment_apply changes something). */
static int after_crop_on(const struct sn_augment_conf *ac)
{
    const double *r[] = {ac->rotation, ac->zoom_h, ac->zoom_w, ac->translate_h, ac->translate_w,
                         ac->contrast};
    int on = ac->flip != SN_FLIP_NONE;
    for (int i = 0; i < 6; i++)
        on |= r[i][0] != 0 || r[i][1] != 0;
    return on;
}

int sn_augment_conf_parse(struct sn_augment_conf *ac, const struct sn_config *cfg,
                          struct sn_err *err)
{
    memset(ac, 0, sizeof *ac);
    const struct sn_section *s = sn_config_find(cfg, "augment");
    if (s == NULL)
        return SN_OK;
    static const char *const flips[] = {"none", "horizontal", "vertical",
                                        "horizontal_and_vertical", NULL};
    static const char *const fills[] = {"reflect", "constant", "nearest", "wrap", NULL};
    int flip, fill, given;
    if (sn_section_key(s, "crop")) /* absent: no crop, and no value recorded for it */
        SN_FORWARD(sn_section_int_pair(cfg, s, "crop", 1, SN_CROP_MAX, ac->crop, err));
    SN_FORWARD(sn_section_choice(cfg, s, "flip", "none", flips, &flip, err));
    ac->flip = (enum sn_flip)flip;
    SN_FORWARD(parse_range(cfg, s, "rotation", 1, -1, 1, ac->rotation, &given, err));
    /* Keras refuses a zoom below -1 (a zero or negative scale) */
    SN_FORWARD(parse_range(cfg, s, "zoom", 1, -1, 10, ac->zoom_h, &given, err));
    SN_FORWARD(parse_range(cfg, s, "zoom_width", 1, -1, 10, ac->zoom_w, &ac->zoom_w_given, err));
    if (!ac->zoom_w_given)
        memcpy(ac->zoom_w, ac->zoom_h, sizeof ac->zoom_w);
    SN_FORWARD(parse_range(cfg, s, "translation", 1, -1, 1, ac->translate_h, &given, err));
    SN_FORWARD(parse_range(cfg, s, "translation_width", 1, -1, 1, ac->translate_w, &given, err));
    if (!given)
        memcpy(ac->translate_w, ac->translate_h, sizeof ac->translate_w);
    SN_FORWARD(parse_range(cfg, s, "contrast", 0, 0, 10, ac->contrast, &given, err));
    if (ac->contrast[0] > 1)
        return sn_config_error(cfg, s, "contrast", err, SN_EINVAL,
                               "lower %g > 1 would allow a negative contrast factor",
                               ac->contrast[0]);
    SN_FORWARD(sn_section_choice(cfg, s, "fill_mode", "reflect", fills, &fill, err));
    ac->fill_mode = (enum sn_fill)fill;
    double fv;
    SN_FORWARD(sn_section_float(cfg, s, "fill_value", 0, -1e30, 1e30, &fv, err));
    ac->fill_value = (float)fv;
    static const char *const test_times[] = {"none", "flip", NULL};
    int test_time;
    SN_FORWARD(sn_section_choice(cfg, s, "test_time", "none", test_times, &test_time, err));
    if (test_time == 1 && ac->flip == SN_FLIP_NONE)
        return sn_config_error(cfg, s, "test_time", err, SN_EINVAL,
                               "flip averages over the mirrors RandomFlip draws, and flip is "
                               "none: set flip = horizontal, vertical or "
                               "horizontal_and_vertical");
    ac->test_time_flip = test_time == 1;
    ac->enabled = ac->crop[0] > 0 || after_crop_on(ac);
    return SN_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Resampling */

/* tf's MapCoordinate for one axis of length len (fill modes other than constant): the result is
 * inside [0, len-1]. reflect mirrors about the outer edge of the border pixel (d c b a | a b c d),
 * wrap tiles, nearest clamps. */
static inline float map_coord(float v, int len, enum sn_fill mode)
{
    float last = (float)(len - 1);
    if (len <= 1)
        return 0;
    /* the first branch of each case is the one-period shortcut of the general formula after it
     * (no division for the points of a typical augmentation) */
    if (mode == SN_FILL_REFLECT) {
        float sz2 = 2.0f * (float)len;
        if (v < 0) {
            if (v >= -(float)len) {
                v = -v - 1;
            } else {
                v = sz2 * (float)(int)(-v / sz2) + v;
                v = v < -(float)len ? v + sz2 : -v - 1;
            }
        } else if (v > last) {
            if (v >= sz2)
                v -= sz2 * (float)(int)(v / sz2);
            if (v >= (float)len)
                v = sz2 - v - 1;
        }
    } else if (mode == SN_FILL_WRAP) {
        float sz = last;
        if (v < 0)
            v += v > -sz ? (float)len : (float)len * ((float)(int)(-v / sz) + 1);
        else if (v > last)
            v -= v < 2 * sz ? (float)len : (float)len * (float)(int)(v / sz);
    }
    return v < 0 ? 0 : v > last ? last : v;
}

/* Bilinear at (xf, yf) near or outside the border: tf's interpolation with the fill mode. */
static void sample_border(const float *src, int h, int w, int C, float xf, float yf,
                          const struct sn_augment_conf *ac, float *o)
{
    int constant = ac->fill_mode == SN_FILL_CONSTANT;
    if (!constant) {
        xf = map_coord(xf, w, ac->fill_mode);
        yf = map_coord(yf, h, ac->fill_mode);
    }
    float fx = floorf(xf), fy = floorf(yf);
    if (constant && (fx < -1 || fy < -1 || fx > (float)w || fy > (float)h)) {
        for (int c = 0; c < C; c++)
            o[c] = ac->fill_value;
        return;
    }
    int x0 = (int)fx, y0 = (int)fy, x1 = x0 + 1, y1 = y0 + 1;
    float wx1 = xf - fx, wx0 = 1.0f - wx1, wy1 = yf - fy, wy0 = 1.0f - wy1;
    /* the +1 neighbour of a point mapped onto the last pixel has weight 0: clamp its index */
    int xs[2] = {x0, x1}, ys[2] = {y0, y1};
    int okx[2], oky[2];
    for (int k = 0; k < 2; k++) {
        okx[k] = xs[k] >= 0 && xs[k] < w;
        oky[k] = ys[k] >= 0 && ys[k] < h;
        if (!constant) {
            xs[k] = xs[k] < w ? xs[k] : w - 1;
            ys[k] = ys[k] < h ? ys[k] : h - 1;
            okx[k] = oky[k] = 1;
        }
    }
    for (int c = 0; c < C; c++) {
        float v[2][2];
        for (int a = 0; a < 2; a++)
            for (int b = 0; b < 2; b++)
                v[a][b] = oky[a] && okx[b] ? src[((size_t)ys[a] * w + xs[b]) * C + c]
                                           : ac->fill_value;
        float top = wx0 * v[0][0] + wx1 * v[0][1];
        float bot = wx0 * v[1][0] + wx1 * v[1][1];
        o[c] = wy0 * top + wy1 * bot;
    }
}

/* One output pixel o (C) from source point (xf, yf), any point. Points outside the image are
 * first mapped inside by the fill mode (tf's MapCoordinate) and then interpolated with the +1
 * neighbour clamped (its weight is 0 there); constant fill takes sample_border. tf's order of
 * operations: ((1-wx) a + wx b) rows, then (1-wy) top + wy bottom. */
static inline __attribute__((always_inline)) void
warp_pixel(const struct sn_augment_conf *ac, const float *restrict src, float *restrict o, int h,
           int w, const int C, float xf, float yf)
{
    if (!(xf >= 0 && yf >= 0 && xf <= (float)(w - 1) && yf <= (float)(h - 1))) {
        if (ac->fill_mode == SN_FILL_CONSTANT) {
            sample_border(src, h, w, C, xf, yf, ac, o);
            return;
        }
        xf = map_coord(xf, w, ac->fill_mode);
        yf = map_coord(yf, h, ac->fill_mode);
    }
    size_t rs = (size_t)w * C;
    int x0 = (int)xf, y0 = (int)yf;
    size_t dx = x0 < w - 1 ? (size_t)C : 0, dy = y0 < h - 1 ? rs : 0;
    float wx1 = xf - (float)x0, wx0 = 1.0f - wx1, wy1 = yf - (float)y0, wy0 = 1.0f - wy1;
    const float *p = src + (size_t)y0 * rs + (size_t)x0 * C, *q = p + dy;
#pragma GCC unroll 4
    for (int c = 0; c < C; c++) {
        float top = wx0 * p[c] + wx1 * p[dx + c];
        float bot = wx0 * q[c] + wx1 * q[dx + c];
        o[c] = wy0 * top + wy1 * bot;
    }
}

/* dst(y,x) = bilinear src at (m[0] x + m[1] y + m[2], m[3] x + m[4] y + m[5]). Always inlined
 * with a literal C. With SSE2 and C = 3, four output pixels at a time get their coordinates and
 * weights in vector registers, and each pixel's three channels are interpolated in one register;
 * the arithmetic per value is the scalar path's, so results are the same bit for bit. Blocks with
 * a point outside the image (or too close to its end for 4-lane loads) go pixel by pixel. */
static inline __attribute__((always_inline)) void warp(const struct sn_augment_conf *ac,
                                                       const float m[6],
                                                       const float *restrict src,
                                                       float *restrict dst, int h, int w,
                                                       const int C)
{
    size_t rs = (size_t)w * C;
    for (int y = 0; y < h; y++) {
        float bx = m[1] * (float)y + m[2], by = m[4] * (float)y + m[5];
        float *orow = dst + (size_t)y * rs;
        int x = 0;
#ifdef __SSE2__
        if (C == 3) {
            const __m128 lane = _mm_setr_ps(0, 1, 2, 3), one = _mm_set1_ps(1.0f);
            const __m128 vm0 = _mm_set1_ps(m[0]), vm3 = _mm_set1_ps(m[3]);
            const __m128 vbx = _mm_set1_ps(bx), vby = _mm_set1_ps(by), zero = _mm_setzero_ps();
            /* x0 + 1 <= w - 1 and y0 + 1 <= h - 2: all four taps and their 4th lanes in range */
            const __m128 xmax = _mm_set1_ps((float)(w - 1)), ymax = _mm_set1_ps((float)(h - 2));
            for (; x + 4 <= w; x += 4) {
                __m128 vx = _mm_add_ps(_mm_set1_ps((float)x), lane);
                __m128 xf = _mm_add_ps(_mm_mul_ps(vm0, vx), vbx);
                __m128 yf = _mm_add_ps(_mm_mul_ps(vm3, vx), vby);
                __m128 in = _mm_and_ps(_mm_and_ps(_mm_cmpge_ps(xf, zero), _mm_cmpge_ps(yf, zero)),
                                       _mm_and_ps(_mm_cmplt_ps(xf, xmax), _mm_cmplt_ps(yf, ymax)));
                int mask = _mm_movemask_ps(in);
                if (mask != 0xF) {
                    /* map the outside points in by the fill mode (idempotent on inside ones);
                     * if all four then qualify, the vector kernel still applies */
                    float xs[4], ys[4];
                    _mm_storeu_ps(xs, xf);
                    _mm_storeu_ps(ys, yf);
                    if (ac->fill_mode != SN_FILL_CONSTANT) {
                        for (int k = 0; k < 4; k++)
                            if (!(mask >> k & 1)) {
                                xs[k] = map_coord(xs[k], w, ac->fill_mode);
                                ys[k] = map_coord(ys[k], h, ac->fill_mode);
                            }
                        xf = _mm_loadu_ps(xs);
                        yf = _mm_loadu_ps(ys);
                        in = _mm_and_ps(_mm_and_ps(_mm_cmpge_ps(xf, zero), _mm_cmpge_ps(yf, zero)),
                                        _mm_and_ps(_mm_cmplt_ps(xf, xmax), _mm_cmplt_ps(yf, ymax)));
                        mask = _mm_movemask_ps(in);
                    }
                    if (mask != 0xF) {
                        for (int k = 0; k < 4; k++)
                            warp_pixel(ac, src, orow + (size_t)(x + k) * 3, h, w, 3, xs[k],
                                       ys[k]);
                        continue;
                    }
                }
                __m128i xi = _mm_cvttps_epi32(xf), yi = _mm_cvttps_epi32(yf);
                __m128 wx1 = _mm_sub_ps(xf, _mm_cvtepi32_ps(xi)), wy1 = _mm_sub_ps(yf, _mm_cvtepi32_ps(yi));
                __m128 wx0 = _mm_sub_ps(one, wx1), wy0 = _mm_sub_ps(one, wy1);
                int xa[4], ya[4];
                float a0[4], a1[4], b0[4], b1[4];
                _mm_storeu_si128((__m128i *)xa, xi);
                _mm_storeu_si128((__m128i *)ya, yi);
                _mm_storeu_ps(a0, wx0);
                _mm_storeu_ps(a1, wx1);
                _mm_storeu_ps(b0, wy0);
                _mm_storeu_ps(b1, wy1);
                for (int k = 0; k < 4; k++) {
                    const float *p = src + (size_t)ya[k] * rs + (size_t)xa[k] * 3, *q = p + rs;
                    __m128 vx0 = _mm_set1_ps(a0[k]), vx1 = _mm_set1_ps(a1[k]);
                    __m128 top = _mm_add_ps(_mm_mul_ps(vx0, _mm_loadu_ps(p)),
                                            _mm_mul_ps(vx1, _mm_loadu_ps(p + 3)));
                    __m128 bot = _mm_add_ps(_mm_mul_ps(vx0, _mm_loadu_ps(q)),
                                            _mm_mul_ps(vx1, _mm_loadu_ps(q + 3)));
                    __m128 v = _mm_add_ps(_mm_mul_ps(_mm_set1_ps(b0[k]), top),
                                          _mm_mul_ps(_mm_set1_ps(b1[k]), bot));
                    float *o = orow + (size_t)(x + k) * 3;
                    if (x + k < w - 1) {
                        _mm_storeu_ps(o, v); /* 4th lane lands on the next pixel, written later */
                    } else {
                        float t[4];
                        _mm_storeu_ps(t, v);
                        o[0] = t[0], o[1] = t[1], o[2] = t[2];
                    }
                }
            }
        }
#endif
        for (; x < w; x++)
            warp_pixel(ac, src, orow + (size_t)x * C, h, w, C, m[0] * (float)x + bx,
                       m[3] * (float)x + by);
    }
}

static inline __attribute__((always_inline)) void flip_copy(const float *src, float *dst, int h,
                                                            int w, const int C, int fh, int fv)
{
    size_t row = (size_t)w * C;
    for (int y = 0; y < h; y++) {
        const float *s = src + (size_t)(fv ? h - 1 - y : y) * row;
        float *d = dst + (size_t)y * row;
        if (!fh) {
            memcpy(d, s, row * sizeof *d);
            continue;
        }
        const float *e = s + row - C;
        for (int x = 0; x < w; x++, d += C, e -= C)
            for (int c = 0; c < C; c++)
                d[c] = e[c];
    }
}

int sn_augment_views(const struct sn_augment_conf *ac)
{
    if (ac == NULL || !ac->test_time_flip)
        return 1;
    return ac->flip == SN_FLIP_BOTH ? 4 : 2;
}

void sn_augment_view(const struct sn_augment_conf *ac, int view, const float *src, int n, int h,
                     int w, int c, float *dst)
{
    /* both: views 1, 2, 3 are the horizontal, the vertical and the two mirrors */
    int fh = ac->flip == SN_FLIP_HORIZONTAL || (ac->flip == SN_FLIP_BOTH && (view & 1));
    int fv = ac->flip == SN_FLIP_VERTICAL || (ac->flip == SN_FLIP_BOTH && (view & 2));
    size_t size = (size_t)h * w * c;
    for (int i = 0; i < n; i++)
        flip_copy(src + i * size, dst + i * size, h, w, c, fh, fv);
}

/* tf.image.adjust_contrast per channel, then clipped to [0,255] as Keras's RandomContrast does. */
static void contrast(float *img, int h, int w, int C, float f)
{
    size_t n = (size_t)h * w;
    for (int c = 0; c < C; c++) {
        double sum = 0;
        for (size_t i = 0; i < n; i++)
            sum += img[i * C + c];
        float mean = (float)(sum / (double)n);
        for (size_t i = 0; i < n; i++) {
            float v = (img[i * C + c] - mean) * f + mean;
            img[i * C + c] = v < 0 ? 0 : v > 255 ? 255 : v;
        }
    }
}

/* ---------------------------------------------------------------------------------------------
 * RandomCrop */

/* tf's resize_bilinear taps on one axis (half-pixel centres, scale in/out in float, as tf and
 * image.c compute it): output i of `out` reads source start+lo and start+hi of a box of `in`,
 * with weight f on hi. Equal sizes give lo = hi = i, f = 0: a copy. */
static inline void resize_taps(int i, int in, int out, int start, int *lo, int *hi, float *f)
{
    float scale = (float)in / (float)out;
    float s = ((float)i + 0.5f) * scale - 0.5f;
    float fl = floorf(s);
    int a = (int)fl < 0 ? 0 : (int)fl;
    int b = (int)ceilf(s) > in - 1 ? in - 1 : (int)ceilf(s);
    *lo = start + a;
    *hi = start + b;
    *f = s - fl;
}

/* Keras's smart_resize: src (h,w,C) -> dst (H,W,C). The largest centred box of aspect H:W
 * (Keras's integer arithmetic: sides int(w*H/W) and int(h*W/H), each at most the image's and at
 * least 1, started at int((h - side)/2)), then tf.image.resize bilinear without antialiasing:
 * top + (bottom - top) * wy of rows a + (b - a) * wx. */
static void smart_resize(const float *src, int h, int w, int C, float *dst, int H, int W)
{
    int ch = (int)((double)w * H / W), cw = (int)((double)h * W / H);
    ch = ch < h ? ch : h;
    cw = cw < w ? cw : w;
    ch = ch > 1 ? ch : 1;
    cw = cw > 1 ? cw : 1;
    int y0 = (int)((double)(h - ch) / 2), x0 = (int)((double)(w - cw) / 2);
    for (int y = 0; y < H; y++) {
        int r0, r1;
        float wy;
        resize_taps(y, ch, H, y0, &r0, &r1, &wy);
        const float *t = src + (size_t)r0 * w * C, *b = src + (size_t)r1 * w * C;
        float *o = dst + (size_t)y * W * C;
        for (int x = 0; x < W; x++) {
            int c0, c1;
            float wx;
            resize_taps(x, cw, W, x0, &c0, &c1, &wx);
            for (int c = 0; c < C; c++) {
                float tl = t[(size_t)c0 * C + c], tr = t[(size_t)c1 * C + c];
                float bl = b[(size_t)c0 * C + c], br = b[(size_t)c1 * C + c];
                float top = tl + (tr - tl) * wx, bot = bl + (br - bl) * wx;
                o[(size_t)x * C + c] = top + (bot - top) * wy;
            }
        }
    }
}

void sn_augment_out_size(const struct sn_augment_conf *ac, int h, int w, int *oh, int *ow)
{
    int crop = ac != NULL && ac->crop[0] > 0;
    *oh = crop ? ac->crop[0] : h;
    *ow = crop ? ac->crop[1] : w;
}

size_t sn_augment_scratch(const struct sn_augment_conf *ac, int training, int h, int w, int c)
{
    (void)h, (void)w;
    if (ac == NULL || ac->crop[0] == 0 || !training || !after_crop_on(ac))
        return 0;
    return (size_t)ac->crop[0] * ac->crop[1] * c;
}

/* The documented RandomCrop, as tf.keras 2 implements it: random when the image is at least
 * H x W, smart_resize otherwise and at inference. Keras 3's code departs from its documentation
 * in two ways we do not copy: it crops at random only when the image is larger on both sides,
 * and at inference it returns the image unchanged (keras-team/keras#21868), which a network
 * trained on H x W windows cannot take. */
void sn_augment_crop(const struct sn_augment_conf *ac, uint64_t key, int training,
                     const float *src, int h, int w, int c, float *dst, int *y0, int *x0)
{
    int H = ac->crop[0], W = ac->crop[1];
    if (!training || h < H || w < W) {
        smart_resize(src, h, w, c, dst, H, W);
        if (y0)
            *y0 = *x0 = -1;
        return;
    }
    /* Keras: int(uniform(0, h - H + 1)), each side its own draw; in double the product stays
     * below h - H + 1 for any float draw below 1 */
    int oy = (int)((double)sn_hash_uniform(sn_hash64(key, K_CROP_H)) * (h - H + 1));
    int ox = (int)((double)sn_hash_uniform(sn_hash64(key, K_CROP_W)) * (w - W + 1));
    oy = oy < h - H ? oy : h - H;
    ox = ox < w - W ? ox : w - W;
    size_t row = (size_t)W * c;
    for (int y = 0; y < H; y++)
        memcpy(dst + (size_t)y * row, src + ((size_t)(oy + y) * w + ox) * c, row * sizeof *dst);
    if (y0)
        *y0 = oy, *x0 = ox;
}

void sn_augment_sample(const struct sn_augment_conf *ac, uint64_t key, int training,
                       const float *src, int h, int w, int c, float *dst, float *scratch)
{
    int crop = ac != NULL && ac->crop[0] > 0;
    int after = ac != NULL && training && after_crop_on(ac);
    if (crop && after) {
        sn_augment_crop(ac, key, training, src, h, w, c, scratch, NULL, NULL);
        sn_augment_apply(ac, key, scratch, dst, ac->crop[0], ac->crop[1], c);
    } else if (crop) {
        sn_augment_crop(ac, key, training, src, h, w, c, dst, NULL, NULL);
    } else if (after) {
        sn_augment_apply(ac, key, src, dst, h, w, c);
    } else {
        memcpy(dst, src, (size_t)h * w * c * sizeof *dst);
    }
}

/* ---------------------------------------------------------------------------------------------
 * The layers after RandomCrop */

static double draw(uint64_t key, int k, const double range[2])
{
    return range[0] + (range[1] - range[0]) * (double)sn_hash_uniform(sn_hash64(key, (uint64_t)k));
}

void sn_augment_apply(const struct sn_augment_conf *ac, uint64_t key, const float *src, float *dst,
                      int h, int w, int c)
{
    int fh = (ac->flip == SN_FLIP_HORIZONTAL || ac->flip == SN_FLIP_BOTH) &&
             sn_hash_uniform(sn_hash64(key, K_FLIP_H)) < 0.5f;
    int fv = (ac->flip == SN_FLIP_VERTICAL || ac->flip == SN_FLIP_BOTH) &&
             sn_hash_uniform(sn_hash64(key, K_FLIP_V)) < 0.5f;
    double angle = draw(key, K_ROTATE, ac->rotation) * 2.0 * M_PI;
    double zy = 1.0 + draw(key, K_ZOOM_H, ac->zoom_h);
    double zx = ac->zoom_w_given ? 1.0 + draw(key, K_ZOOM_W, ac->zoom_w) : zy;
    double ty = draw(key, K_SHIFT_H, ac->translate_h) * h;
    double tx = draw(key, K_SHIFT_W, ac->translate_w) * w;

    if (angle == 0 && zx == 1 && zy == 1 && tx == 0 && ty == 0) {
        if (c == 3)
            flip_copy(src, dst, h, w, 3, fh, fv);
        else if (c == 1)
            flip_copy(src, dst, h, w, 1, fh, fv);
        else
            flip_copy(src, dst, h, w, c, fh, fv);
    } else {
        /* Centred coordinates q = p - centre. Output q reads input F R Z (q - t):
         * t translation, Z = diag(zx, zy) (zoom > 1 shows more of the image), R rotation by
         * angle (Keras's matrix [cos -sin; sin cos]), F the flips. */
        double cs = cos(angle), sn = sin(angle);
        double M[4] = {cs * zx, -sn * zy, sn * zx, cs * zy};
        if (fh)
            M[0] = -M[0], M[1] = -M[1];
        if (fv)
            M[2] = -M[2], M[3] = -M[3];
        double cx = (w - 1) / 2.0, cy = (h - 1) / 2.0;
        /* p_in = centre + M (p - centre - t) */
        double ox = cx + tx, oy = cy + ty;
        float m[6] = {(float)M[0], (float)M[1], (float)(cx - M[0] * ox - M[1] * oy),
                      (float)M[2], (float)M[3], (float)(cy - M[2] * ox - M[3] * oy)};
        if (c == 3)
            warp(ac, m, src, dst, h, w, 3);
        else if (c == 1)
            warp(ac, m, src, dst, h, w, 1);
        else
            warp(ac, m, src, dst, h, w, c);
    }
    if (ac->contrast[0] != 0 || ac->contrast[1] != 0) {
        double range[2] = {1.0 - ac->contrast[0], 1.0 + ac->contrast[1]};
        contrast(dst, h, w, c, (float)draw(key, K_CONTRAST, range));
    }
}
