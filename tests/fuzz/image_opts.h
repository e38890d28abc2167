/* image_opts.h — how fuzz_image reads decoding options from the first two bytes of its input,
 * shared with make_corpus, which writes those two bytes in front of every seed image.
 *
 * Byte 0: bit 0 channels (0: 1 gray, 1: 3 rgb); bits 1-2 interpolation (0 bilinear, 1 nearest,
 *         2 area, 3 bilinear again); bit 3 crop_to_aspect_ratio; bit 4 no_dct_scaling;
 *         bit 5 keep the PNG chunk CRCs as they are (by default fuzz_image recomputes them, so
 *         that mutations reach the chunk contents instead of stopping at libpng's CRC check).
 * Byte 1: high nibble the target height, low nibble the target width, as indices into
 *         FUZZ_IMAGE_SIZES (at most 255x255x3 floats of output).
 * The image (JPEG or PNG bytes) follows. */
#ifndef SN_FUZZ_IMAGE_OPTS_H
#define SN_FUZZ_IMAGE_OPTS_H

#include <stdint.h> // defines: uint8_t

#include "image.h" // defines: struct sn_image_opts

#define FUZZ_IMAGE_PREFIX 2
#define FUZZ_IMAGE_MAX_SIDE 255
#define FUZZ_IMAGE_KEEP_CRC 0x20
/* images over 4 million pixels are refused from their header, so no input allocates much */
#define FUZZ_IMAGE_MAX_PIXELS 4000000

static const int FUZZ_IMAGE_SIZES[16] = {1,  2,  3,  4,  5,  7,   8,   12,
                                         16, 28, 31, 32, 64, 100, 180, 255};

/* p[FUZZ_IMAGE_PREFIX] -> o */
static inline void fuzz_image_opts_decode(const uint8_t *p, struct sn_image_opts *o)
{
    *o = (struct sn_image_opts){
        .channels = (p[0] & 1) ? 3 : 1,
        .interp = ((p[0] >> 1) & 3) == 3 ? 0 : (p[0] >> 1) & 3,
        .crop_to_aspect_ratio = (p[0] >> 3) & 1,
        .no_dct_scaling = (p[0] >> 4) & 1,
        .height = FUZZ_IMAGE_SIZES[p[1] >> 4],
        .width = FUZZ_IMAGE_SIZES[p[1] & 15],
        .max_pixels = FUZZ_IMAGE_MAX_PIXELS,
    };
}

/* The inverse for make_corpus: the size indices are those of FUZZ_IMAGE_SIZES. */
static inline void fuzz_image_opts_encode(uint8_t *p, int channels, int interp, int crop,
                                          int no_dct, int keep_crc, int height_index,
                                          int width_index)
{
    p[0] = (uint8_t)((channels == 3) | (interp & 3) << 1 | (crop != 0) << 3 | (no_dct != 0) << 4 |
                     (keep_crc ? FUZZ_IMAGE_KEEP_CRC : 0));
    p[1] = (uint8_t)((height_index & 15) << 4 | (width_index & 15));
}

#endif
