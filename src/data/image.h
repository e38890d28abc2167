/* image.h — decoding and resizing single images. Only image.c includes <turbojpeg.h> and <png.h>.
 *
 * Formats are recognised by content (JPEG: FF D8 FF; PNG: 89 50 4E 47), not by file name.
 * JPEGs are decoded with libjpeg-turbo's DCT scaling when the source is at least twice the target
 * size (bilinear and area; nearest and no_dct_scaling decode at full size, the exact Keras path),
 * and straight to grayscale when one channel is wanted. Images over max_pixels are refused
 * from their header, before any decoding (decompression bombs). */
#ifndef SN_IMAGE_H
#define SN_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* Per-thread decoding state (TurboJPEG handles, reusable buffers). Not shared between threads. */
struct sn_image_ctx;

int  sn_image_ctx_create(struct sn_image_ctx **out, struct sn_err *err);
void sn_image_ctx_free(struct sn_image_ctx *ctx); /* accepts NULL */

struct sn_image_opts {
    int height, width;     /* target size */
    int channels;          /* 1 (grayscale) or 3 (rgb) */
    int interp;            /* enum sn_interp of data_conf.h: 0 bilinear, 1 nearest, 2 area */
    int crop_to_aspect_ratio;
    long long max_pixels;  /* 0 = no limit */
    int no_dct_scaling;    /* 1: always decode JPEGs at full size (the exact Keras path) */
};

/* What the last successful sn_image_decode on a context did (for tests and diagnostics). */
struct sn_image_info {
    int format;                /* 1 JPEG, 2 PNG */
    int src_height, src_width; /* size stored in the file */
    int dec_height, dec_width; /* size decoded (smaller than src when DCT scaling was used) */
};
/* View into ctx, valid until the next decode. */
const struct sn_image_info *sn_image_ctx_info(const struct sn_image_ctx *ctx);

/* Decodes `len` bytes (the content of `path`, which names the file in messages) and resizes to
 * opts: out (height,width,channels) float in [0,255]. Errors say what is wrong with the file:
 * "cats/12.jpg: truncated JPEG data", "not a JPEG or PNG file", "unsupported JPEG colour space CMYK",
 * "image of 40000x40000 pixels exceeds max_pixels". */
int sn_image_decode(struct sn_image_ctx *ctx, const char *path, const uint8_t *data, size_t len,
                    const struct sn_image_opts *opts, float *out, struct sn_err *err);

/* Reads the whole file into the context's reusable buffer, then decodes it. */
int sn_image_load(struct sn_image_ctx *ctx, const char *path, const struct sn_image_opts *opts,
                  float *out, struct sn_err *err);

/* Reads and decodes a file at its full size without resizing (libjpeg-turbo's or libpng's plain
 * decode: the baseline `bench --data-only` compares the pipeline with). Pixels stay in ctx. */
int sn_image_load_plain(struct sn_image_ctx *ctx, const char *path, int channels,
                        struct sn_err *err);

/* Encodes (h,w,c) uint8 pixels (c = 1 or 3) as a JPEG file (quality 1..100), atomically enough
 * for datasets (written whole, then closed). Colour images use 4:4:4 chroma at quality >= 90,
 * 4:2:0 below (as most cameras and PIL do). */
int sn_image_write_jpeg(const char *path, const uint8_t *pixels, int h, int w, int c, int quality,
                        struct sn_err *err);
/* Encodes (h,w,c) uint8 pixels as a PNG file: c = 1 gray, 2 gray+alpha, 3 RGB, 4 RGBA. */
int sn_image_write_png(const char *path, const uint8_t *pixels, int h, int w, int c,
                       struct sn_err *err);

#endif
