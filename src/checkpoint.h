/* checkpoint.h — the checkpoint file format, written atomically.
 *
 * Layout (little-endian):
 *   header (fixed size, uncompressed): magic "SHRDNET\0", format version, config hash,
 *     epoch, step, world size, counts of params/state/optimizer floats, best val_loss, lr,
 *     RNG state, loader position, compressed payload size, and a CRC-free header checksum;
 *   payload: one zstd frame with ZSTD_c_checksumFlag, holding params, state (batchnorm
 *     statistics) and optimizer moments, each stored as four byte planes (the bytes of each
 *     float split apart compress better than the floats themselves).
 * Writing goes to PATH.tmp.<pid>, fflush, fsync, rename over PATH, fsync of the directory; on any
 * failure the temporary file is unlinked, and PATH is untouched.
 * Loading checks everything and names the file in every message: wrong magic, unknown version,
 * truncated file, checksum mismatch, counts that do not match the model. */
#ifndef SN_CHECKPOINT_H
#define SN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SN_CKPT_VERSION 1

struct sn_ckpt_meta {
    uint32_t version;
    uint64_t config_hash;  /* sn_config.hash of the network and settings it was trained with */
    uint64_t model_hash;   /* hash of the layer structure (types, shapes) alone */
    int32_t epoch;         /* epochs completed */
    int64_t step;          /* optimizer steps completed */
    int32_t world_size;
    uint64_t n_params, n_state, n_opt;
    double best_val_loss;  /* best so far (for save_best_only after a resume) */
    double val_loss;       /* of this checkpoint's epoch (NaN if none) */
    float lr;
    uint64_t rng_state[2];
    uint64_t seed;
};

/* Writes params (n_params), state (n_state) and opt (n_opt) with meta, atomically. */
int sn_checkpoint_save(const char *path, const struct sn_ckpt_meta *meta, const float *params,
                       const float *state, const float *opt, struct sn_err *err);

/* Reads the header only. */
int sn_checkpoint_read_meta(const char *path, struct sn_ckpt_meta *meta, struct sn_err *err);

/* Reads a whole checkpoint. The caller gives the counts it expects (n_params, n_state in *meta on
 * input... see below): params/state/opt must hold meta->n_params/n_state/n_opt floats as read
 * from the header; pass expect_* to have mismatches reported as errors (-1 = accept any).
 * opt may be NULL to skip the optimizer moments (evaluate, predict). */
int sn_checkpoint_load(const char *path, struct sn_ckpt_meta *meta, float *params,
                       int64_t expect_params, float *state, int64_t expect_state, float *opt,
                       int64_t expect_opt, struct sn_err *err);

/* FNV-1a 64 over bytes, for parameter hashes printed by `inspect`. */
uint64_t sn_hash_bytes(const void *p, size_t n, uint64_t h);

#endif
