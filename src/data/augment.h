/* augment.h — Keras's random augmentation layers on one image, with draws that are a pure
 * function of (seed, epoch, sample index), so that the augmented stream does not depend on
 * threads or ranks.
 *
 * [augment] runs as a Keras Sequential of its layers in this order: RandomCrop, RandomFlip,
 * RandomRotation, RandomZoom, RandomTranslation, RandomContrast. RandomCrop changes the size:
 * the network's input is then crop's H x W, not [data] image_size. RandomFlip to
 * RandomTranslation combine into one affine map, applied in one resampling pass (bilinear,
 * Keras's fill modes) on the cropped image; RandomContrast follows.
 *
 * At inference (Keras's training=False: validation, evaluate, predict, extract) every layer is
 * the identity but RandomCrop, which takes the largest centred window of its aspect ratio and
 * resizes it to H x W (sn_augment_sample with training = 0). test_time = flip then asks
 * validation, evaluate and predict for the mean of the network's logits over the image and its
 * mirrors (sn_augment_views, sn_augment_view). */
#ifndef SN_AUGMENT_H
#define SN_AUGMENT_H

#include <stddef.h> // defines: size_t
#include <stdint.h>

#include "config.h"
#include "err.h"

enum sn_flip { SN_FLIP_NONE = 0, SN_FLIP_HORIZONTAL, SN_FLIP_VERTICAL, SN_FLIP_BOTH };
enum sn_fill { SN_FILL_REFLECT = 0, SN_FILL_CONSTANT, SN_FILL_NEAREST, SN_FILL_WRAP };

/* The [augment] section, with Keras's names and factor forms:
 *   crop = H, W    RandomCrop(height, width): in training a random H x W window of the image,
 *          uniform over the positions (an image smaller than H x W on either side is instead
 *          centre-cropped to the aspect ratio H:W and resized, as at inference)
 *   flip = none | horizontal | vertical | horizontal_and_vertical   (RandomFlip mode; each axis
 *          flips with probability 1/2)
 *   rotation = f | lower, upper    angle uniform in [lower, upper] * 2*pi, one number f meaning
 *          [-f, f]; positive turns counter-clockwise (RandomRotation)
 *   zoom = f | lower, upper        RandomZoom height_factor: z uniform in [lower, upper] and the
 *          output shows (1 + z) times the field of view, so positive zooms out, negative in;
 *          lower >= -1
 *   zoom_width = ...               width_factor; absent: the height's draw (aspect kept)
 *   translation = f | lower, upper RandomTranslation height_factor, fractions of the height,
 *          positive moves the content down; translation_width likewise (absent: same as height)
 *   contrast = f | lower, upper    RandomContrast: factor uniform in [1 - lower, 1 + upper], one
 *          number f meaning lower = upper = f; 0 <= lower <= 1
 *   fill_mode = reflect | constant | nearest | wrap, fill_value = 0   (tf's fill modes)
 *   test_time = none | flip        flip: at validation, evaluate and predict, the mean of the
 *          logits over the image and each mirror RandomFlip draws (needs a flip) */
struct sn_augment_conf {
    int enabled;                     /* any augmentation configured */
    int crop[2];                     /* RandomCrop's height, width; 0, 0: no crop */
    enum sn_flip flip;
    double rotation[2];              /* lower, upper as fractions of 2*pi */
    double zoom_h[2], zoom_w[2];     /* lower, upper; zoom_w = zoom_h when not given */
    int zoom_w_given;                /* 0: the width uses the height's draw */
    double translate_h[2], translate_w[2]; /* lower, upper as fractions of height, width */
    double contrast[2];              /* lower, upper: factor in [1-lower, 1+upper] */
    enum sn_fill fill_mode;
    float fill_value;                /* for fill_mode = constant */
    int test_time_flip;              /* test_time = flip */
};

/* Parses [augment]; a missing section (or one that configures nothing) leaves enabled = 0. Bad
 * values are errors naming file:line and key. @return SN_OK or an error code */
int sn_augment_conf_parse(struct sn_augment_conf *ac, const struct sn_config *cfg,
                          struct sn_err *err);

/* The largest crop side (as [data] image_size's). */
#define SN_CROP_MAX 65536

/* The size an (h, w) image has after [augment], in training and at inference alike: crop's
 * (H, W) when set, else (h, w). ac may be NULL (no [augment]). */
void sn_augment_out_size(const struct sn_augment_conf *ac, int h, int w, int *oh, int *ow);

/* Floats of scratch sn_augment_sample needs for an (h,w,c) image (0 when none). */
size_t sn_augment_scratch(const struct sn_augment_conf *ac, int training, int h, int w, int c);

/* The whole [augment] chain on one decoded image, as the loader runs it: src (h,w,c) float ->
 * dst (oh,ow,c) of sn_augment_out_size, src != dst. training = 1: Keras's training=True, with
 * draws that are a pure function of key = sn_hash3(seed, epoch, sample index), so the result is
 * the same on any thread or rank; training = 0: inference (only crop acts, deterministically; key
 * unused). scratch holds sn_augment_scratch floats (NULL when that is 0). Allocates nothing. */
void sn_augment_sample(const struct sn_augment_conf *ac, uint64_t key, int training,
                       const float *src, int h, int w, int c, float *dst, float *scratch);

/* RandomCrop alone: src (h,w,c) -> dst (crop[0],crop[1],c), src != dst. training with
 * h >= H and w >= W: the window at (y0, x0), each uniform over its 1 + h - H (1 + w - W)
 * positions, drawn from key (*y0, *x0 receive them; may be NULL); otherwise Keras's
 * smart_resize: the largest centred box of aspect H:W, resized by tf's bilinear (half-pixel
 * centres, no antialiasing), *y0 = *x0 = -1. */
void sn_augment_crop(const struct sn_augment_conf *ac, uint64_t key, int training,
                     const float *src, int h, int w, int c, float *dst, int *y0, int *x0);

/* The layers after RandomCrop (flip, rotation, zoom, translation, contrast) on an (h,w,c)
 * image: src -> dst (h,w,c), src != dst, values clipped to [0,255] only by contrast. key as in
 * sn_augment_sample. Allocates nothing. */
void sn_augment_apply(const struct sn_augment_conf *ac, uint64_t key, const float *src, float *dst,
                      int h, int w, int c);

/* The views test_time asks for: 1 (the image alone), 2 (the image and its horizontal or
 * vertical mirror) or 4 (and both mirrors, for horizontal_and_vertical). ac may be NULL. */
int sn_augment_views(const struct sn_augment_conf *ac);

/* View number view (1 .. sn_augment_views - 1; 0 is the image) of n (h,w,c) images: src -> dst,
 * mirrored horizontally, vertically or both, src != dst. Allocates nothing. */
void sn_augment_view(const struct sn_augment_conf *ac, int view, const float *src, int n, int h,
                     int w, int c, float *dst);

#endif
