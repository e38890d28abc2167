/* augment.c — Keras's RandomFlip, RandomRotation, RandomZoom, RandomTranslation and RandomContrast
 * on one (H,W,C) float image, with draws that are a pure function of the sample's key.
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

#include <math.h>   // defines: cos, sin, floorf, M_PI
#include <string.h> // defines: memcpy, strpbrk

#include "rng.h"

/* Counter of each random quantity in the sample's stream. */
enum { K_FLIP_H = 0, K_FLIP_V, K_ROTATE, K_ZOOM_H, K_ZOOM_W, K_SHIFT_H, K_SHIFT_W, K_CONTRAST };

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
    const double *r[] = {ac->rotation, ac->zoom_h, ac->zoom_w, ac->translate_h, ac->translate_w,
                         ac->contrast};
    ac->enabled = ac->flip != SN_FLIP_NONE;
    for (int i = 0; i < 6; i++)
        ac->enabled |= r[i][0] != 0 || r[i][1] != 0;
    return SN_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Resampling */

/* tf's MapCoordinate for one axis of length len (fill modes other than constant): the result is
 * inside [0, len-1]. reflect mirrors about the outer edge of the border pixel (d c b a | a b c d),
 * wrap tiles, nearest clamps. */
static float map_coord(float v, int len, enum sn_fill mode)
{
    float last = (float)(len - 1);
    if (len <= 1)
        return 0;
    if (mode == SN_FILL_REFLECT) {
        float sz2 = 2.0f * (float)len;
        if (v < 0) {
            if (v < -sz2)
                v = sz2 * (float)(int)(-v / sz2) + v;
            v = v < -(float)len ? v + sz2 : -v - 1;
        } else if (v > last) {
            v -= sz2 * (float)(int)(v / sz2);
            if (v >= (float)len)
                v = sz2 - v - 1;
        }
    } else if (mode == SN_FILL_WRAP) {
        float sz = last;
        if (v < 0)
            v += (float)len * ((float)(int)(-v / sz) + 1);
        else if (v > last)
            v -= (float)len * (float)(int)(v / sz);
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

/* dst(y,x) = bilinear src at (m[0] x + m[1] y + m[2], m[3] x + m[4] y + m[5]). C is a literal in
 * the callers so the channel loop unrolls. */
static inline void warp(const struct sn_augment_conf *ac, const float m[6], const float *src,
                        float *dst, int h, int w, int C)
{
    float wl = (float)(w - 1), hl = (float)(h - 1);
    for (int y = 0; y < h; y++) {
        float bx = m[1] * (float)y + m[2], by = m[4] * (float)y + m[5];
        float *o = dst + (size_t)y * w * C;
        for (int x = 0; x < w; x++, o += C) {
            float xf = m[0] * (float)x + bx, yf = m[3] * (float)x + by;
            if (!(xf >= 0 && yf >= 0 && xf < wl && yf < hl)) {
                sample_border(src, h, w, C, xf, yf, ac, o);
                continue;
            }
            int x0 = (int)xf, y0 = (int)yf;
            float wx1 = xf - (float)x0, wx0 = 1.0f - wx1, wy1 = yf - (float)y0, wy0 = 1.0f - wy1;
            const float *p = src + ((size_t)y0 * w + x0) * C, *q = p + (size_t)w * C;
            for (int c = 0; c < C; c++) {
                float top = wx0 * p[c] + wx1 * p[C + c];
                float bot = wx0 * q[c] + wx1 * q[C + c];
                o[c] = wy0 * top + wy1 * bot;
            }
        }
    }
}

static void flip_copy(const float *src, float *dst, int h, int w, int c, int fh, int fv)
{
    size_t row = (size_t)w * c;
    for (int y = 0; y < h; y++) {
        const float *s = src + (size_t)(fv ? h - 1 - y : y) * row;
        float *d = dst + (size_t)y * row;
        if (!fh) {
            memcpy(d, s, row * sizeof *d);
            continue;
        }
        for (int x = 0; x < w; x++)
            memcpy(d + (size_t)x * c, s + (size_t)(w - 1 - x) * c, (size_t)c * sizeof *d);
    }
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
