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

/* The [augment] section. Factors follow Keras: rotation factor f draws an angle uniformly in
 * [-f, f] * 2*pi; zoom factors in [-f, f] (negative zooms in... as Keras: height_factor=0.2 gives
 * a zoom of 1 +/- 0.2 of the image); translation as fractions of height/width. */
struct sn_augment_conf {
    int enabled;                     /* any augmentation configured */
    enum sn_flip flip;
    double rotation[2];              /* lower, upper as fractions of 2*pi */
    double zoom_h[2], zoom_w[2];     /* lower, upper; zoom_w = zoom_h when not given */
    int zoom_w_given;
    double translate_h[2], translate_w[2];
    double contrast[2];              /* lower, upper: factor in [1-lower, 1+upper] */
    enum sn_fill fill_mode;
    float fill_value;
};

/* Parses [augment]; a missing section leaves enabled = 0. */
int sn_augment_conf_parse(struct sn_augment_conf *ac, const struct sn_config *cfg,
                          struct sn_err *err);

/* src (H,W,C) float -> dst (H,W,C) float, src != dst. key = sn_hash3(seed, epoch, sample index). */
void sn_augment_apply(const struct sn_augment_conf *ac, uint64_t key, const float *src, float *dst,
                      int h, int w, int c);

#endif
