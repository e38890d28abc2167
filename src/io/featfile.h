/* featfile.h — feature files (not features.h: that name is glibc's, and src/ is on the
 * include path): a convolutional base's outputs over each split of a data set,
 * computed once (`shardnet extract`) so that a densely connected top trains on them in memory
 * at thousands of samples per second (the book's "fast feature extraction without
 * augmentation", listings 8.20-8.22).
 *
 * Format: one zstd frame (with its content checksum) holding, little-endian:
 *   "SNFEAT01", the base's structure hash (u64), the number of splits (u32), then per split:
 *   its name (8 bytes, "train", "val", "test"), n, h, w, c, n_classes (u32 each), the class
 *   names (64 bytes each), the labels (n x i32) and the features (n x h x w x c x f32), in the
 *   order of the split's files. Written atomically (sys.h). */
#ifndef SN_FEATFILE_H
#define SN_FEATFILE_H

#include <stdint.h>

#include "err.h"

struct sn_feature_split {
    char name[8];
    int n, h, w, c;
    int n_classes;
    char (*class_names)[64]; /* owned, (n_classes) */
    int32_t *labels;         /* owned, (n) */
    float *x;                /* owned, (n, h, w, c) */
};

struct sn_features {
    uint64_t base_hash;
    int n_splits;
    struct sn_feature_split split[3];
};

int sn_features_write(const char *path, const struct sn_features *f, struct sn_err *err);

/* Reads the file; with `only` ("train", "val", "test"), keeps that split's arrays alone (the
 * others' shapes and names are still filled). Errors name the file: not a feature file, a
 * damaged or truncated one. */
int sn_features_read(const char *path, const char *only, struct sn_features *f,
                     struct sn_err *err);

/* The split named name, or NULL. */
const struct sn_feature_split *sn_features_find(const struct sn_features *f, const char *name);

void sn_features_free(struct sn_features *f); /* the arrays; accepts a zeroed struct */

#endif
