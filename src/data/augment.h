/* augment.h — Keras's random augmentation layers on one image, with draws that are a pure
 * function of (seed, epoch, sample index), so that the augmented stream does not depend on
 * threads or ranks.
 *
 * RandomFlip, RandomRotation, RandomZoom and RandomTranslation combine into one affine map, applied
 * in one resampling pass (bilinear, Keras's fill modes); RandomContrast follows. */
#ifndef SN_AUGMENT_H
#define SN_AUGMENT_H

#include <stdint.h>

#include "config.h"
#include "err.h"

enum sn_flip { SN_FLIP_NONE = 0, SN_FLIP_HORIZONTAL, SN_FLIP_VERTICAL, SN_FLIP_BOTH };
enum sn_fill { SN_FILL_REFLECT = 0, SN_FILL_CONSTANT, SN_FILL_NEAREST, SN_FILL_WRAP };

/* The [augment] section, with Keras's names and factor forms:
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
 *   fill_mode = reflect | constant | nearest | wrap, fill_value = 0   (tf's fill modes) */
struct sn_augment_conf {
    int enabled;                     /* any augmentation configured */
    enum sn_flip flip;
    double rotation[2];              /* lower, upper as fractions of 2*pi */
    double zoom_h[2], zoom_w[2];     /* lower, upper; zoom_w = zoom_h when not given */
    int zoom_w_given;                /* 0: the width uses the height's draw */
    double translate_h[2], translate_w[2]; /* lower, upper as fractions of height, width */
    double contrast[2];              /* lower, upper: factor in [1-lower, 1+upper] */
    enum sn_fill fill_mode;
    float fill_value;                /* for fill_mode = constant */
};

/* Parses [augment]; a missing section (or one that configures nothing) leaves enabled = 0. Bad
 * values are errors naming file:line and key. @return SN_OK or an error code */
int sn_augment_conf_parse(struct sn_augment_conf *ac, const struct sn_config *cfg,
                          struct sn_err *err);

/* src (H,W,C) float -> dst (H,W,C) float, src != dst, values clipped to [0,255] only by contrast.
 * key = sn_hash3(seed, epoch, sample index): the draws are a pure function of it, so the result
 * is the same on any thread or rank. Allocates nothing. */
void sn_augment_apply(const struct sn_augment_conf *ac, uint64_t key, const float *src, float *dst,
                      int h, int w, int c);

#endif
