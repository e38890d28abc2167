/* fuzz_image.c — libFuzzer target: JPEG and PNG decoding and resizing (sn_image_decode, image.c).
 *
 * Input: two option bytes (image_opts.h: channels, interpolation, crop, DCT scaling, target
 * size) followed by the file's bytes. Unless the options say otherwise, the CRC of every PNG
 * chunk is recomputed first: libpng rejects a chunk whose CRC does not match, so without this
 * almost every mutation of a PNG would stop at the CRC check.
 *
 * Besides crashes, leaks and undefined behaviour, a successful decode must
 *   - write every output value (the output starts as NaN) and keep it in [0, 255];
 *   - decode again on the same context with the other channel count (buffers and resize tables
 *     are reused between calls, as in the loader threads);
 *   - for PNG, which has no DCT scaling and whose gray is computed from the same RGB pixels,
 *     give a gray image equal to 0.299 R + 0.587 G + 0.114 B of the RGB one, within the
 *     rounding of the 8-bit gray (0.5) — a check that catches pixels read at the wrong stride.
 * A violation aborts, which libFuzzer reports as a crash. */
#include <math.h>   // defines: isnan, fabsf, NAN
#include <stdint.h> // defines: uint8_t, uint32_t
#include <stdio.h>  // defines: fprintf, stderr
#include <stdlib.h> // defines: malloc, free, abort
#include <string.h> // defines: memcpy, memcmp

#include <zlib.h> // defines: crc32

#include "err.h"        // defines: struct sn_err, SN_OK
#include "image.h"      // defines: sn_image_decode, sn_image_ctx_create, sn_image_ctx_info
#include "image_opts.h" // defines: fuzz_image_opts_decode, FUZZ_IMAGE_PREFIX, FUZZ_IMAGE_KEEP_CRC

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stops the run with the reason; libFuzzer saves the input that led here. */
static void fail(const char *what, const struct sn_image_opts *o, const struct sn_err *err)
{
    fprintf(stderr,
            "fuzz_image: %s (target %dx%d, %d channels, interp %d, crop %d, no_dct %d)%s%s\n", what,
            o->height, o->width, o->channels, o->interp, o->crop_to_aspect_ratio, o->no_dct_scaling,
            err ? ": " : "", err ? err->msg : "");
    abort();
}

/* Rewrites the CRC of each whole chunk after the PNG signature (length, type, data, CRC). */
static void fix_png_crcs(uint8_t *p, size_t n)
{
    size_t pos = 8;
    while (n - pos >= 12) {
        uint32_t len = (uint32_t)p[pos] << 24 | (uint32_t)p[pos + 1] << 16 |
                       (uint32_t)p[pos + 2] << 8 | p[pos + 3];
        if (len > n - pos - 12)
            return;
        uLong crc = crc32(0L, p + pos + 4, (uInt)(4 + len));
        uint8_t *c = p + pos + 8 + len;
        c[0] = (uint8_t)(crc >> 24), c[1] = (uint8_t)(crc >> 16), c[2] = (uint8_t)(crc >> 8);
        c[3] = (uint8_t)crc;
        pos += 12 + (size_t)len;
    }
}

/* Decodes into *out, allocated at exactly (h,w,c) floats (ASan sees any write past it) and
 * set to NaN first; checks the error message or the values. */
static int decode(struct sn_image_ctx *ctx, const uint8_t *img, size_t n,
                  const struct sn_image_opts *o, float **out)
{
    size_t count = (size_t)o->height * o->width * o->channels;
    float *x = *out = malloc(count * sizeof *x);
    if (x == NULL)
        fail("out of memory", o, NULL);
    for (size_t i = 0; i < count; i++)
        x[i] = NAN;
    struct sn_err err = {0};
    int rc = sn_image_decode(ctx, "fuzz", img, n, o, x, &err);
    if (rc != SN_OK) {
        if (err.code != rc || err.msg[0] == '\0')
            fail("an error without its code or message", o, &err);
        return rc;
    }
    for (size_t i = 0; i < count; i++) {
        if (isnan(x[i]))
            fail("an output value was never written", o, NULL);
        if (x[i] < -0.01f || x[i] > 255.01f)
            fail("an output value is outside [0, 255]", o, NULL);
    }
    const struct sn_image_info *info = sn_image_ctx_info(ctx);
    if (info->dec_height < 1 || info->dec_width < 1 || info->dec_height > info->src_height ||
        info->dec_width > info->src_width)
        fail("decoded size is not within the stored size", o, NULL);
    return SN_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < FUZZ_IMAGE_PREFIX)
        return 0;
    struct sn_image_opts o;
    fuzz_image_opts_decode(data, &o);
    size_t n = size - FUZZ_IMAGE_PREFIX;
    /* a copy of exactly n bytes: ASan sees any read past the end of the file */
    uint8_t *img = malloc(n ? n : 1);
    struct sn_image_ctx *ctx = NULL;
    struct sn_err err = {0};
    if (img == NULL || sn_image_ctx_create(&ctx, &err) != SN_OK)
        fail("out of memory", &o, NULL);
    if (n > 0)
        memcpy(img, data + FUZZ_IMAGE_PREFIX, n);
    int png = n >= 8 && memcmp(img, "\x89PNG\r\n\x1a\n", 8) == 0;
    if (png && !(data[0] & FUZZ_IMAGE_KEEP_CRC))
        fix_png_crcs(img, n);

    float *out = NULL, *out2 = NULL;
    if (decode(ctx, img, n, &o, &out) == SN_OK) {
        struct sn_image_opts o2 = o;
        o2.channels = 4 - o.channels;
        int rc2 = decode(ctx, img, n, &o2, &out2);
        if (png && rc2 != SN_OK)
            fail("a PNG that decodes with one channel count fails with the other", &o2, NULL);
        if (png) {
            const float *gray = o.channels == 1 ? out : out2, *rgb = o.channels == 1 ? out2 : out;
            for (size_t i = 0; i < (size_t)o.height * o.width; i++) {
                float y = 0.299f * rgb[3 * i] + 0.587f * rgb[3 * i + 1] + 0.114f * rgb[3 * i + 2];
                if (fabsf(gray[i] - y) > 0.75f)
                    fail("PNG decoded as gray differs from the gray of its RGB decode", &o, NULL);
            }
        }
    }
    sn_image_ctx_free(ctx);
    free(out2);
    free(out);
    free(img);
    return 0;
}
