/* image.c — JPEG/PNG decoding and Keras-compatible resizing of one image at a time.
 *
 * Pipeline of sn_image_decode: sniff the format from the magic bytes -> read the header and refuse
 * what we will not decode (CMYK, over max_pixels) -> decode to 8-bit gray or RGB into the context's
 * buffer (JPEG: with DCT scaling when the image is at least twice the target) -> optional centre
 * crop to the target aspect ratio (Keras smart_resize) -> resize to float (H,W,C) in [0,255] with
 * tf.image.resize semantics (half-pixel centres, no antialiasing; area as tf's resize_area).
 *
 * Every buffer lives in the context and only grows, so after the largest image has been seen a
 * decode allocates nothing of ours (libjpeg/libpng keep their own per-call state). This is the only
 * file that includes <turbojpeg.h> and <png.h>. */
#include "image.h"

#include <errno.h>      // defines: errno
#include <math.h>       // defines: floorf, ceilf
#include <png.h>        // defines: png_create_read_struct, png_read_image, png_image_write_to_memory
#include <setjmp.h>     // defines: setjmp (libpng's error return)
#include <stdio.h>      // defines: FILE, fopen, fwrite, fclose
#include <stdlib.h>     // defines: malloc, realloc, free
#include <string.h>     // defines: memcpy, memset, strerror, strstr
#include <sys/stat.h>   // defines: fstat, struct stat
#include <turbojpeg.h>  // defines: tjhandle, tjDecompress2, tjCompress2, tjGetScalingFactors
#include <unistd.h>     // defines: read, close

#ifdef __SSE2__
#include <emmintrin.h>  // defines: __m128, _mm_loadu_ps, _mm_cvtepi32_ps (baseline on x86-64)
#endif

#include "sys.h" // defines: sn_open_regular

enum { SN_IMG_JPEG = 1, SN_IMG_PNG = 2 };

/* Bilinear sampling table of one axis: output i reads source i0[i] and i1[i], weight w[i] on i1.
 * Valid for the (in, out, start) it was built for; rebuilt only when they change. */
struct sn_axis {
    int in, out, start; /* source length, output length, first source index (crop) */
    int cap;            /* entries allocated */
    int *i0, *i1;       /* (out) absolute source indices — owned */
    float *w;           /* (out) interpolation weight of i1 — owned */
};

struct sn_image_ctx {
    tjhandle tj;             /* decompressor — owned */
    uint8_t *file;           /* whole-file read buffer (file_cap) — owned */
    size_t file_cap;
    uint8_t *pix;            /* decoded 8-bit pixels (h,w,c) (pix_cap) — owned */
    size_t pix_cap;
    uint8_t *pix2;           /* PNG colour rows before conversion to gray (pix2_cap) — owned */
    size_t pix2_cap;
    uint8_t **rows;          /* PNG row pointers (rows_cap) — owned */
    size_t rows_cap;
    float *tmp;              /* resize scratch: 2 rows + 1 source row (bilinear) or (crop_h,W,C)
                              * (area), as floats — owned */
    size_t tmp_cap;          /* in floats */
    struct sn_axis ax, ay;   /* bilinear tables for the last geometry */
    int *near_x;             /* nearest: source offset of each output column (W) — owned */
    int near_x_cap;
    struct sn_image_info info;
};

/* ---------------------------------------------------------------------------------------------
 * Buffers */

static int grow(void **buf, size_t *cap, size_t need, size_t elem, struct sn_err *err)
{
    if (need <= *cap)
        return SN_OK;
    size_t n = need + need / 4;
    void *p = realloc(*buf, n * elem);
    SN_RETURN_IF(p == NULL, err, SN_ENOMEM, "image: out of memory growing a buffer to %zu bytes",
                 n * elem);
    *buf = p;
    *cap = n;
    return SN_OK;
}

int sn_image_ctx_create(struct sn_image_ctx **out, struct sn_err *err)
{
    *out = NULL;
    struct sn_image_ctx *ctx = calloc(1, sizeof *ctx);
    SN_RETURN_IF(ctx == NULL, err, SN_ENOMEM, "image: out of memory for a decoding context");
    ctx->tj = tjInitDecompress();
    if (ctx->tj == NULL) {
        free(ctx);
        return sn_err_set(err, SN_ENOMEM, "image: tjInitDecompress failed: %s",
                          tjGetErrorStr2(NULL));
    }
    *out = ctx;
    return SN_OK;
}

static void axis_free(struct sn_axis *a)
{
    free(a->i0);
    free(a->i1);
    free(a->w);
}

void sn_image_ctx_free(struct sn_image_ctx *ctx)
{
    if (ctx == NULL)
        return;
    tjDestroy(ctx->tj);
    free(ctx->file);
    free(ctx->pix);
    free(ctx->pix2);
    free(ctx->rows);
    free(ctx->tmp);
    axis_free(&ctx->ax);
    axis_free(&ctx->ay);
    free(ctx->near_x);
    free(ctx);
}

const struct sn_image_info *sn_image_ctx_info(const struct sn_image_ctx *ctx) { return &ctx->info; }

/* ---------------------------------------------------------------------------------------------
 * Geometry */

/* Keras smart_resize: the largest centred box of the target aspect ratio. */
static void crop_box(int h, int w, int th, int tw, int crop, int *y0, int *x0, int *ch, int *cw)
{
    *y0 = 0, *x0 = 0, *ch = h, *cw = w;
    if (!crop)
        return;
    int crop_h = (int)((double)w * th / tw);
    int crop_w = (int)((double)h * tw / th);
    *ch = crop_h < h ? crop_h : h;
    *cw = crop_w < w ? crop_w : w;
    if (*ch < 1)
        *ch = 1;
    if (*cw < 1)
        *cw = 1;
    *y0 = (int)((double)(h - *ch) / 2);
    *x0 = (int)((double)(w - *cw) / 2);
}

/* tf's resize_bilinear with half_pixel_centers: src = (i + 0.5) * in/out - 0.5, computed in float
 * as tf does, so that equal sizes give exact copies and results match tf to rounding. */
static int axis_build(struct sn_axis *a, int in, int out, int start, struct sn_err *err)
{
    if (a->in == in && a->out == out && a->start == start && a->i0 != NULL)
        return SN_OK;
    if (out > a->cap) {
        int *i0 = realloc(a->i0, (size_t)out * sizeof *i0);
        if (i0)
            a->i0 = i0;
        int *i1 = realloc(a->i1, (size_t)out * sizeof *i1);
        if (i1)
            a->i1 = i1;
        float *w = realloc(a->w, (size_t)out * sizeof *w);
        if (w)
            a->w = w;
        SN_RETURN_IF(!i0 || !i1 || !w, err, SN_ENOMEM, "image: out of memory for resize tables");
        a->cap = out;
    }
    float scale = (float)in / (float)out;
    for (int i = 0; i < out; i++) {
        float s = ((float)i + 0.5f) * scale - 0.5f;
        float f = floorf(s);
        int lo = (int)f < 0 ? 0 : (int)f;
        int hi = (int)ceilf(s) > in - 1 ? in - 1 : (int)ceilf(s);
        a->i0[i] = start + lo;
        a->i1[i] = start + hi;
        a->w[i] = s - f;
    }
    a->in = in, a->out = out, a->start = start;
    return SN_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Resizing. src (sh,sw,C) uint8 with the crop box (y0,x0,ch,cw) -> out (H,W,C) float. */

/* One source row resampled horizontally: row (sw,C) uint8 -> dst (W,C) float, as
 * a + (b - a) * wx. `fl` is scratch of sw*C + 4 floats. */
static void hpass(const uint8_t *row, int sw, const struct sn_axis *ax, float *fl, float *dst,
                  int W, int C)
{
    int n = sw * C, i = 0;
#ifdef __SSE2__
    /* uint8 -> float, 16 values at a time; then RGB pixels as one 4-lane register each (the
     * 4th lane reads/writes the next pixel's slot: fl and dst have 4 spare floats) */
    const __m128i z = _mm_setzero_si128();
    for (; i + 16 <= n; i += 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(row + i));
        __m128i lo = _mm_unpacklo_epi8(v, z), hi = _mm_unpackhi_epi8(v, z);
        _mm_storeu_ps(fl + i, _mm_cvtepi32_ps(_mm_unpacklo_epi16(lo, z)));
        _mm_storeu_ps(fl + i + 4, _mm_cvtepi32_ps(_mm_unpackhi_epi16(lo, z)));
        _mm_storeu_ps(fl + i + 8, _mm_cvtepi32_ps(_mm_unpacklo_epi16(hi, z)));
        _mm_storeu_ps(fl + i + 12, _mm_cvtepi32_ps(_mm_unpackhi_epi16(hi, z)));
    }
#endif
    for (; i < n; i++)
        fl[i] = row[i];
#ifdef __SSE2__
    if (C == 3) {
        for (int x = 0; x < W; x++) {
            __m128 a = _mm_loadu_ps(fl + (size_t)ax->i0[x] * 3);
            __m128 b = _mm_loadu_ps(fl + (size_t)ax->i1[x] * 3);
            _mm_storeu_ps(dst + (size_t)x * 3,
                          _mm_add_ps(a, _mm_mul_ps(_mm_sub_ps(b, a), _mm_set1_ps(ax->w[x]))));
        }
        return;
    }
#endif
    for (int x = 0; x < W; x++) {
        const float *p0 = fl + (size_t)ax->i0[x] * C, *p1 = fl + (size_t)ax->i1[x] * C;
        float wx = ax->w[x];
        for (int c = 0; c < C; c++)
            dst[x * C + c] = p0[c] + (p1[c] - p0[c]) * wx;
    }
}

/* o = t + (b - t) * wy over n floats */
static void vpass(const float *t, const float *b, float wy, float *o, size_t n)
{
    size_t i = 0;
#ifdef __SSE2__
    __m128 w = _mm_set1_ps(wy);
    for (; i + 4 <= n; i += 4) {
        __m128 vt = _mm_loadu_ps(t + i), vb = _mm_loadu_ps(b + i);
        _mm_storeu_ps(o + i, _mm_add_ps(vt, _mm_mul_ps(_mm_sub_ps(vb, vt), w)));
    }
#endif
    for (; i < n; i++)
        o[i] = t[i] + (b[i] - t[i]) * wy;
}

static int resize_bilinear(struct sn_image_ctx *ctx, const uint8_t *src, int sw, int C, int y0,
                           int x0, int ch, int cw, int H, int W, float *out, struct sn_err *err)
{
    SN_FORWARD(axis_build(&ctx->ax, cw, W, x0, err));
    SN_FORWARD(axis_build(&ctx->ay, ch, H, y0, err));
    size_t rowf = (size_t)W * C, pad = 4;
    size_t need = 2 * (rowf + pad) + (size_t)sw * C + pad;
    SN_FORWARD(grow((void **)&ctx->tmp, &ctx->tmp_cap, need, sizeof(float), err));
    /* Two cached horizontal passes, keyed by source row: each source row is resampled at most
     * once while output rows walk down (downscaling reads each row about once). */
    float *cache[2] = {ctx->tmp, ctx->tmp + rowf + pad}, *fl = ctx->tmp + 2 * (rowf + pad);
    int cached[2] = {-1, -1};
    const struct sn_axis *ax = &ctx->ax, *ay = &ctx->ay;
    size_t stride = (size_t)sw * C;
    for (int y = 0; y < H; y++) {
        int rows[2] = {ay->i0[y], ay->i1[y]};
        int used[2] = {-1, -1}; /* slot holding rows[k] */
        for (int k = 0; k < 2; k++)
            for (int sl = 0; sl < 2; sl++)
                if (cached[sl] == rows[k])
                    used[k] = sl;
        for (int k = 0; k < 2; k++) {
            if (k == 1 && rows[1] == rows[0])
                used[1] = used[0];
            if (used[k] >= 0)
                continue;
            /* take the slot the other needed row does not occupy */
            int slot = used[1 - k] == 0 ? 1 : 0;
            hpass(src + (size_t)rows[k] * stride, sw, ax, fl, cache[slot], W, C);
            cached[slot] = rows[k];
            used[k] = slot;
        }
        vpass(cache[used[0]], cache[used[1]], ay->w[y], out + (size_t)y * rowf, rowf);
    }
    return SN_OK;
}

/* tf's resize_nearest_neighbor with half_pixel_centers: src = floor((i + 0.5) * in/out). */
static int nearest_index(int i, int in, int out)
{
    float scale = (float)in / (float)out;
    int s = (int)floorf(((float)i + 0.5f) * scale);
    return s > in - 1 ? in - 1 : s < 0 ? 0 : s;
}

static int resize_nearest(struct sn_image_ctx *ctx, const uint8_t *src, int sw, int C, int y0,
                          int x0, int ch, int cw, int H, int W, float *out, struct sn_err *err)
{
    if (W > ctx->near_x_cap) {
        int *p = realloc(ctx->near_x, (size_t)W * sizeof *p);
        SN_RETURN_IF(p == NULL, err, SN_ENOMEM, "image: out of memory for resize tables");
        ctx->near_x = p;
        ctx->near_x_cap = W;
    }
    int *xi = ctx->near_x;
    for (int x = 0; x < W; x++)
        xi[x] = (x0 + nearest_index(x, cw, W)) * C;
    for (int y = 0; y < H; y++) {
        const uint8_t *row = src + (size_t)(y0 + nearest_index(y, ch, H)) * sw * C;
        float *o = out + (size_t)y * W * C;
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++)
                o[x * C + c] = row[xi[x] + c];
    }
    return SN_OK;
}

/* tf's resize_area: output i averages the source box [i*s, (i+1)*s), s = in/out, weighting the
 * partly covered pixels by their coverage. Separable, one output row at a time: the source rows
 * of its box are summed with their weights into a scratch row (cw,C), which is then averaged
 * horizontally. Work is about one pass over the pixels plus H*cw, and scratch is one source row,
 * whatever the image's shape (a 1 x 1,000,000 image would otherwise need a scratch row per source
 * row); an output row whose box is the previous one's (upscaling) is copied. */
static void area_taps(int i, int in, int out, int *first, int *last, float *scale)
{
    *scale = (float)in / (float)out;
    float a = (float)i * *scale, b = (float)(i + 1) * *scale;
    *first = (int)floorf(a);
    *last = (int)ceilf(b); /* exclusive */
}

static float area_weight(int j, int i, float scale)
{
    float a = (float)i * scale, b = (float)(i + 1) * scale;
    float lo = (float)j > a ? (float)j : a, hi = (float)(j + 1) < b ? (float)(j + 1) : b;
    return (hi - lo) / scale;
}

static int resize_area(struct sn_image_ctx *ctx, const uint8_t *src, int sw, int C, int y0, int x0,
                       int ch, int cw, int H, int W, float *out, struct sn_err *err)
{
    size_t rowc = (size_t)cw * C, rowf = (size_t)W * C;
    SN_FORWARD(grow((void **)&ctx->tmp, &ctx->tmp_cap, rowc, sizeof(float), err));
    float *acc = ctx->tmp;
    int prev_f = -1, prev_l = -1;
    float prev_w = 0;
    for (int y = 0; y < H; y++) {
        int f, l;
        float s;
        area_taps(y, ch, H, &f, &l, &s);
        float *o = out + (size_t)y * rowf;
        if (l - f == 1 && f == prev_f && l == prev_l && area_weight(f, y, s) == prev_w) {
            memcpy(o, o - rowf, rowf * sizeof *o);
            continue;
        }
        prev_f = f, prev_l = l, prev_w = area_weight(f, y, s);
        for (size_t i = 0; i < rowc; i++)
            acc[i] = 0;
        for (int j = f; j < l; j++) {
            float wgt = area_weight(j, y, s);
            const uint8_t *row = src + ((size_t)(y0 + (j < ch ? j : ch - 1)) * sw + x0) * C;
            for (size_t i = 0; i < rowc; i++)
                acc[i] += wgt * row[i];
        }
        for (int x = 0; x < W; x++) {
            int fx, lx;
            float sx;
            area_taps(x, cw, W, &fx, &lx, &sx);
            for (int c = 0; c < C; c++) {
                float v = 0;
                for (int j = fx; j < lx; j++)
                    v += area_weight(j, x, sx) * acc[(j < cw ? j : cw - 1) * C + c];
                o[x * C + c] = v;
            }
        }
    }
    return SN_OK;
}

static int resize(struct sn_image_ctx *ctx, const uint8_t *src, int sh, int sw, int C,
                  const struct sn_image_opts *o, float *out, struct sn_err *err)
{
    int y0, x0, ch, cw;
    crop_box(sh, sw, o->height, o->width, o->crop_to_aspect_ratio, &y0, &x0, &ch, &cw);
    if (ch == o->height && cw == o->width) {
        /* equal sizes: every method is a copy (tf gives the same) */
        for (int y = 0; y < ch; y++) {
            const uint8_t *row = src + ((size_t)(y0 + y) * sw + x0) * C;
            float *dst = out + (size_t)y * cw * C;
            for (int i = 0; i < cw * C; i++)
                dst[i] = row[i];
        }
        return SN_OK;
    }
    switch (o->interp) {
    case 1:
        return resize_nearest(ctx, src, sw, C, y0, x0, ch, cw, o->height, o->width, out, err);
    case 2:
        return resize_area(ctx, src, sw, C, y0, x0, ch, cw, o->height, o->width, out, err);
    default:
        return resize_bilinear(ctx, src, sw, C, y0, x0, ch, cw, o->height, o->width, out, err);
    }
}

/* ---------------------------------------------------------------------------------------------
 * Decoders */

static int too_big(const char *path, const char *fmt, int w, int h, long long max_pixels,
                   struct sn_err *err)
{
    SN_RETURN_IF(w < 1 || h < 1, err, SN_EFORMAT,
                 "%s: truncated or corrupt %s header (image of %dx%d pixels)", path, fmt, w, h);
    SN_RETURN_IF(max_pixels > 0 && (long long)w * h > max_pixels, err, SN_EFORMAT,
                 "%s: image of %dx%d pixels exceeds max_pixels = %lld (HINT: raise [data] "
                 "max_pixels if the file is genuine)",
                 path, w, h, max_pixels);
    return SN_OK;
}

/* Largest DCT downscaling that keeps the (cropped) decoded image at least the target size;
 * only taken when the source is at least twice the target, where the saving is worth the small
 * difference from a full-size decode. Not for nearest: DCT scaling averages pixels, and nearest
 * promises source pixels. */
static tjscalingfactor pick_scale(int w, int h, const struct sn_image_opts *o)
{
    tjscalingfactor best = {1, 1};
    int y0, x0, ch, cw;
    crop_box(h, w, o->height, o->width, o->crop_to_aspect_ratio, &y0, &x0, &ch, &cw);
    if (o->no_dct_scaling || o->interp == 1 || ch < 2 * o->height || cw < 2 * o->width)
        return best;
    int n = 0;
    tjscalingfactor *sf = tjGetScalingFactors(&n);
    long long best_area = (long long)w * h;
    for (int i = 0; sf != NULL && i < n; i++) {
        if (sf[i].num >= sf[i].denom)
            continue;
        int sw = TJSCALED(w, sf[i]), sh = TJSCALED(h, sf[i]);
        crop_box(sh, sw, o->height, o->width, o->crop_to_aspect_ratio, &y0, &x0, &ch, &cw);
        if (ch >= o->height && cw >= o->width && (long long)sw * sh < best_area) {
            best = sf[i];
            best_area = (long long)sw * sh;
        }
    }
    return best;
}

/* A TurboJPEG handle that failed on a corrupt header (a bogus Huffman table, say) fails every
 * later file too, so a failed decode replaces it: only bad files pay for the new handle. */
static void tj_reset(struct sn_image_ctx *ctx)
{
    tjDestroy(ctx->tj);
    ctx->tj = tjInitDecompress(); /* NULL is retried by the next decode */
}

static int decode_jpeg_tj(struct sn_image_ctx *ctx, const char *path, const uint8_t *data,
                          size_t len, const struct sn_image_opts *o, int *oh, int *ow,
                          struct sn_err *err);

static int decode_jpeg(struct sn_image_ctx *ctx, const char *path, const uint8_t *data, size_t len,
                       const struct sn_image_opts *o, int *oh, int *ow, struct sn_err *err)
{
    if (ctx->tj == NULL && (ctx->tj = tjInitDecompress()) == NULL)
        return sn_err_set(err, SN_ENOMEM, "%s: tjInitDecompress failed: %s", path,
                          tjGetErrorStr2(NULL));
    int rc = decode_jpeg_tj(ctx, path, data, len, o, oh, ow, err);
    if (rc != SN_OK)
        tj_reset(ctx);
    return rc;
}

static int decode_jpeg_tj(struct sn_image_ctx *ctx, const char *path, const uint8_t *data,
                          size_t len, const struct sn_image_opts *o, int *oh, int *ow,
                          struct sn_err *err)
{
    int w = 0, h = 0, subsamp = -1, cs = -1; /* a header cut short may leave them unset */
    if (tjDecompressHeader3(ctx->tj, data, (unsigned long)len, &w, &h, &subsamp, &cs) != 0)
        return sn_err_set(err, SN_EFORMAT, "%s: truncated or corrupt JPEG header: %s", path,
                          tjGetErrorStr2(ctx->tj));
    SN_RETURN_IF(cs == TJCS_CMYK || cs == TJCS_YCCK, err, SN_EFORMAT,
                 "%s: unsupported JPEG colour space %s (HINT: convert the file to RGB)", path,
                 cs == TJCS_CMYK ? "CMYK" : "YCCK");
    SN_FORWARD(too_big(path, "JPEG", w, h, o->max_pixels, err));
    tjscalingfactor sf = pick_scale(w, h, o);
    int sw = TJSCALED(w, sf), sh = TJSCALED(h, sf);
    SN_FORWARD(grow((void **)&ctx->pix, &ctx->pix_cap, (size_t)sw * sh * o->channels, 1, err));
    int pf = o->channels == 1 ? TJPF_GRAY : TJPF_RGB;
    if (tjDecompress2(ctx->tj, data, (unsigned long)len, ctx->pix, sw, 0, sh, pf, 0) != 0) {
        const char *msg = tjGetErrorStr2(ctx->tj);
        /* libjpeg reports running out of data as a warning and pads the image with grey: that
         * is a broken file for us. Other warnings (extraneous bytes before a marker) are common
         * in real photo sets and decode fine, as in Keras. */
        int fatal = tjGetErrorCode(ctx->tj) != TJERR_WARNING || strstr(msg, "remature end") ||
                    strstr(msg, "must resync") || strstr(msg, "bad Huffman");
        if (fatal)
            return sn_err_set(err, SN_EFORMAT, "%s: truncated or corrupt JPEG: %s", path, msg);
    }
    ctx->info = (struct sn_image_info){SN_IMG_JPEG, h, w, sh, sw};
    *oh = sh, *ow = sw;
    return SN_OK;
}

/* libpng reads from memory through this cursor; errors land in msg and longjmp back. */
struct png_src {
    const uint8_t *data;
    size_t len, pos;
    char msg[256];
};

static void png_read_mem(png_structp png, png_bytep out, png_size_t n)
{
    struct png_src *s = png_get_io_ptr(png);
    if (n > s->len - s->pos)
        png_error(png, "read beyond end of data");
    memcpy(out, s->data + s->pos, n);
    s->pos += n;
}

static void png_on_error(png_structp png, png_const_charp msg)
{
    struct png_src *s = png_get_error_ptr(png);
    snprintf(s->msg, sizeof s->msg, "%s", msg);
    png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg) { (void)png, (void)msg; }

/* PNG with the transformations tf's decode_png applies for 8-bit output: 16-bit samples keep
 * their high byte, palettes and low bit depths expand, alpha is dropped, gray is replicated to
 * RGB; no gamma conversion. Colour to gray is 0.299 R + 0.587 G + 0.114 B, done here. */
static int decode_png(struct sn_image_ctx *ctx, const char *path, const uint8_t *data, size_t len,
                      const struct sn_image_opts *o, int *oh, int *ow, struct sn_err *err)
{
    struct png_src src = {data, len, 0, ""};
    png_structp png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &src, png_on_error,
                                             png_on_warning);
    png_infop info = png ? png_create_info_struct(png) : NULL;
    if (info == NULL) {
        png_destroy_read_struct(&png, NULL, NULL);
        return sn_err_set(err, SN_ENOMEM, "%s: out of memory for a PNG decoder", path);
    }
    int rc = SN_OK;
    if (setjmp(png_jmpbuf(png))) {
        png_destroy_read_struct(&png, &info, NULL);
        return sn_err_set(err, SN_EFORMAT, "%s: truncated or corrupt PNG: %s", path, src.msg);
    }
    png_set_read_fn(png, &src, png_read_mem);
    /* Chunks the decoder has no use for are skipped unread: libpng would otherwise allocate
       (and zero) the length a text or profile chunk declares, up to 2 GB, before finding the
       file ends after a few bytes. tRNS stays: it is part of the pixels. */
    static const png_byte skipped[] = "tEXt\0zTXt\0iTXt\0iCCP\0sPLT\0eXIf\0pCAL\0sCAL\0";
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, NULL, 0);
    png_set_keep_unknown_chunks(png, PNG_HANDLE_CHUNK_NEVER, skipped, 8);
    png_read_info(png, info);
    png_uint_32 pw = 0, ph = 0;
    int depth = 0, ctype = 0;
    png_get_IHDR(png, info, &pw, &ph, &depth, &ctype, NULL, NULL, NULL);
    int w = pw > (png_uint_32)INT32_MAX ? 0 : (int)pw, h = ph > (png_uint_32)INT32_MAX ? 0 : (int)ph;
    rc = too_big(path, "PNG", w, h, o->max_pixels, err);
    if (rc == SN_OK) {
        int color = (ctype & PNG_COLOR_MASK_COLOR) != 0 || ctype == PNG_COLOR_TYPE_PALETTE;
        if (depth == 16)
            png_set_strip_16(png);
        if (ctype == PNG_COLOR_TYPE_PALETTE)
            png_set_palette_to_rgb(png);
        if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
            png_set_expand_gray_1_2_4_to_8(png);
        /* alpha is dropped, as tf's decode_png with 1 or 3 channels drops it: the colour type's
           own, and the one the palette expansion makes of a tRNS chunk */
        if ((ctype & PNG_COLOR_MASK_ALPHA) || png_get_valid(png, info, PNG_INFO_tRNS))
            png_set_strip_alpha(png);
        if (!color && o->channels == 3)
            png_set_gray_to_rgb(png);
        png_set_interlace_handling(png);
        png_read_update_info(png, info);
        int sc = png_get_channels(png, info); /* 1 or 3 now */
        size_t n = (size_t)w * h, rowb = (size_t)w * sc;
        int direct = sc == o->channels;
        rc = grow((void **)&ctx->pix, &ctx->pix_cap, n * o->channels, 1, err);
        if (rc == SN_OK && !direct)
            rc = grow((void **)&ctx->pix2, &ctx->pix2_cap, n * sc, 1, err);
        if (rc == SN_OK)
            rc = grow((void **)&ctx->rows, &ctx->rows_cap, (size_t)h, sizeof(uint8_t *), err);
        if (rc == SN_OK && png_get_rowbytes(png, info) != rowb)
            rc = sn_err_set(err, SN_EFORMAT, "%s: unexpected PNG row size %zu (expected %zu)", path,
                            (size_t)png_get_rowbytes(png, info), rowb);
        if (rc == SN_OK) {
            uint8_t *buf = direct ? ctx->pix : ctx->pix2;
            for (int y = 0; y < h; y++)
                ctx->rows[y] = buf + (size_t)y * rowb;
            png_read_image(png, ctx->rows);
            if (!direct) { /* colour file, gray wanted */
                for (size_t i = 0; i < n; i++) {
                    const uint8_t *p = buf + 3 * i;
                    ctx->pix[i] = (uint8_t)(0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2] + 0.5f);
                }
            }
        }
    }
    png_destroy_read_struct(&png, &info, NULL);
    SN_FORWARD(rc);
    ctx->info = (struct sn_image_info){SN_IMG_PNG, h, w, h, w};
    *oh = h, *ow = w;
    return SN_OK;
}

int sn_image_decode(struct sn_image_ctx *ctx, const char *path, const uint8_t *data, size_t len,
                    const struct sn_image_opts *opts, float *out, struct sn_err *err)
{
    SN_RETURN_IF(opts->channels != 1 && opts->channels != 3, err, SN_EINVAL,
                 "%s: channels = %d, expected 1 (grayscale) or 3 (rgb)", path, opts->channels);
    SN_RETURN_IF(opts->height < 1 || opts->width < 1, err, SN_EINVAL,
                 "%s: target size %dx%d, expected >= 1x1", path, opts->height, opts->width);
    SN_RETURN_IF(len == 0, err, SN_EFORMAT, "%s: empty file (0 bytes)", path);
    int h = 0, w = 0;
    if (len >= 3 && data[0] == 0xFF && data[1] == 0xD8 && data[2] == 0xFF)
        SN_FORWARD(decode_jpeg(ctx, path, data, len, opts, &h, &w, err));
    else if (len >= 8 && memcmp(data, "\x89PNG\r\n\x1a\n", 8) == 0)
        SN_FORWARD(decode_png(ctx, path, data, len, opts, &h, &w, err));
    else
        return sn_err_set(err, SN_EFORMAT,
                          "%s: not a JPEG or PNG file (%zu bytes starting %02x %02x %02x)", path,
                          len, data[0], len > 1 ? data[1] : 0, len > 2 ? data[2] : 0);
    SN_FORWARD(resize(ctx, ctx->pix, h, w, opts->channels, opts, out, err));
    return SN_OK;
}

/* Reads the whole file into ctx->file; *size gets its length. */
static int read_file(struct sn_image_ctx *ctx, const char *path, size_t *size, struct sn_err *err)
{
    int fd;
    SN_FORWARD(sn_open_regular(path, "image", &fd, err)); /* a FIFO would block the loader */
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return sn_err_set(err, SN_EIO, "%s: cannot stat: %s", path, strerror(e));
    }
    *size = (size_t)st.st_size;
    int rc = grow((void **)&ctx->file, &ctx->file_cap, *size ? *size : 1, 1, err);
    size_t got = 0;
    while (rc == SN_OK && got < *size) {
        ssize_t r = read(fd, ctx->file + got, *size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            rc = sn_err_set(err, SN_EIO, "%s: read failed: %s", path, strerror(errno));
        else if (r == 0)
            rc = sn_err_set(err, SN_EIO, "%s: file shrank while reading (%zu of %zu bytes)",
                            path, got, *size);
        else
            got += (size_t)r;
    }
    close(fd);
    return rc;
}

int sn_image_load(struct sn_image_ctx *ctx, const char *path, const struct sn_image_opts *opts,
                  float *out, struct sn_err *err)
{
    size_t size;
    SN_FORWARD(read_file(ctx, path, &size, err));
    return sn_image_decode(ctx, path, ctx->file, size, opts, out, err);
}

int sn_image_load_plain(struct sn_image_ctx *ctx, const char *path, int channels,
                        struct sn_err *err)
{
    size_t size;
    SN_FORWARD(read_file(ctx, path, &size, err));
    /* full size: no DCT scaling, no resize */
    struct sn_image_opts o = {.height = 1, .width = 1, .channels = channels, .no_dct_scaling = 1};
    const uint8_t *d = ctx->file;
    int h, w;
    if (size >= 3 && d[0] == 0xFF && d[1] == 0xD8 && d[2] == 0xFF)
        return decode_jpeg(ctx, path, d, size, &o, &h, &w, err);
    if (size >= 8 && memcmp(d, "\x89PNG\r\n\x1a\n", 8) == 0)
        return decode_png(ctx, path, d, size, &o, &h, &w, err);
    return sn_err_set(err, SN_EFORMAT, "%s: not a JPEG or PNG file", path);
}

/* ---------------------------------------------------------------------------------------------
 * Encoders (datasets and tests) */

static int write_all(const char *path, const void *buf, size_t len, struct sn_err *err)
{
    FILE *f = fopen(path, "wb");
    SN_RETURN_IF(f == NULL, err, SN_EIO, "%s: cannot create: %s", path, strerror(errno));
    size_t wr = fwrite(buf, 1, len, f);
    int e = errno;
    if (fclose(f) != 0 || wr != len)
        return sn_err_set(err, SN_EIO, "%s: write failed: %s", path, strerror(wr != len ? e : errno));
    return SN_OK;
}

int sn_image_write_jpeg(const char *path, const uint8_t *pixels, int h, int w, int c, int quality,
                        struct sn_err *err)
{
    SN_RETURN_IF(c != 1 && c != 3, err, SN_EINVAL, "%s: cannot write %d channels as JPEG", path, c);
    SN_RETURN_IF(quality < 1 || quality > 100, err, SN_EINVAL,
                 "%s: JPEG quality %d, expected 1..100", path, quality);
    SN_RETURN_IF(h < 1 || w < 1, err, SN_EINVAL, "%s: cannot write a %dx%d image", path, h, w);
    tjhandle tj = tjInitCompress();
    SN_RETURN_IF(tj == NULL, err, SN_ENOMEM, "%s: tjInitCompress failed: %s", path,
                 tjGetErrorStr2(NULL));
    unsigned char *buf = NULL;
    unsigned long len = 0;
    int samp = c == 1 ? TJSAMP_GRAY : quality >= 90 ? TJSAMP_444 : TJSAMP_420;
    int rc = SN_OK;
    if (tjCompress2(tj, pixels, w, 0, h, c == 1 ? TJPF_GRAY : TJPF_RGB, &buf, &len, samp, quality,
                    0) != 0)
        rc = sn_err_set(err, SN_EFORMAT, "%s: JPEG compression failed: %s", path,
                        tjGetErrorStr2(tj));
    else
        rc = write_all(path, buf, len, err);
    tjFree(buf);
    tjDestroy(tj);
    return rc;
}

int sn_image_write_png(const char *path, const uint8_t *pixels, int h, int w, int c,
                       struct sn_err *err)
{
    SN_RETURN_IF(c < 1 || c > 4, err, SN_EINVAL, "%s: cannot write %d channels as PNG", path, c);
    SN_RETURN_IF(h < 1 || w < 1, err, SN_EINVAL, "%s: cannot write a %dx%d image", path, h, w);
    static const png_uint_32 formats[] = {PNG_FORMAT_GRAY, PNG_FORMAT_GA, PNG_FORMAT_RGB,
                                          PNG_FORMAT_RGBA};
    png_image img;
    memset(&img, 0, sizeof img);
    img.version = PNG_IMAGE_VERSION;
    img.width = (png_uint_32)w;
    img.height = (png_uint_32)h;
    img.format = formats[c - 1];
    png_alloc_size_t len = 0;
    if (!png_image_write_to_memory(&img, NULL, &len, 0, pixels, 0, NULL))
        return sn_err_set(err, SN_EFORMAT, "%s: PNG encoding failed: %s", path, img.message);
    void *buf = malloc(len);
    SN_RETURN_IF(buf == NULL, err, SN_ENOMEM, "%s: out of memory for %zu bytes of PNG", path,
                 (size_t)len);
    int rc = SN_OK;
    if (!png_image_write_to_memory(&img, buf, &len, 0, pixels, 0, NULL))
        rc = sn_err_set(err, SN_EFORMAT, "%s: PNG encoding failed: %s", path, img.message);
    else
        rc = write_all(path, buf, len, err);
    free(buf);
    return rc;
}
