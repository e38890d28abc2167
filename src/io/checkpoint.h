/* checkpoint.h — the checkpoint file format, written atomically.
 *
 * Layout (little-endian):
 *   header (fixed size, uncompressed): magic "SHRDNET\0", format version, config hash,
 *     epoch, step, world size, counts of params/state/optimizer floats, best val_loss, lr,
 *     RNG state, loader position, compressed payload size, the run record's size and checksum,
 *     and a header checksum (FNV-1a 64 of the header bytes before it);
 *   run record (version 2): text lines "key=value" that the trainer writes and reads back —
 *     class names, the resolved config, the data's fingerprint, callback state, history — so
 *     that a checkpoint says which run it belongs to and resumes it whole (sn_record_*);
 *   payload: one zstd frame with ZSTD_c_checksumFlag, holding params, state (batchnorm
 *     statistics) and optimizer moments, each stored as four byte planes (the bytes of each
 *     float split apart compress better than the floats themselves). Planes are formed per
 *     block of SN_CKPT_BLOCK floats (the block size is recorded in the header), so that
 *     neither side needs a transient buffer the size of the model.
 * Writing goes to PATH.tmp.<pid>, fflush, fsync, rename over PATH, fsync of the directory; on any
 * failure the temporary file is unlinked, and PATH is untouched.
 * Loading checks everything and names the file in every message: wrong magic, unknown version,
 * truncated file, checksum mismatch, counts that do not match the model. */
#ifndef SN_CHECKPOINT_H
#define SN_CHECKPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "sys.h"

#define SN_CKPT_VERSION 2
#define SN_CKPT_HEADER_SIZE 160    /* bytes, version 2 */
#define SN_CKPT_V1_HEADER_SIZE 144 /* version 1 (no run record) is still read */
#define SN_CKPT_BLOCK 65536        /* floats per byte-plane block when writing */
#define SN_CKPT_RECORD_MAX (64u << 20) /* a larger record is a corrupt header */

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
    int64_t loader_pos;    /* samples consumed in the current epoch (0 at an epoch boundary) */
    const char *record;    /* save: the run record (NUL-terminated text, may be NULL); load
                              functions set it to NULL — sn_checkpoint_read_record reads it */
    uint64_t record_bytes; /* load: size of the stored record (0 for version 1) */
};

/* The most bytes a checkpoint of n_floats values (parameters, state and moments) and a run
 * record of record_bytes can take: what a free-space check counts for each file. */
uint64_t sn_checkpoint_bytes_max(uint64_t n_floats, uint64_t record_bytes);

/* Writes params (n_params), state (n_state) and opt (n_opt) with meta, atomically (meta->version
 * is ignored: the file gets SN_CKPT_VERSION). A pointer may be NULL only if its count is 0.
 * @return SN_OK, or SN_EIO naming the path and the system error (PATH is then untouched, except
 * when only the final directory fsync failed, which the message says). */
int sn_checkpoint_save(const char *path, const struct sn_ckpt_meta *meta, const float *params,
                       const float *state, const float *opt, struct sn_err *err);

/* Reads the header only (and checks it, including that the file is as long as it says). */
int sn_checkpoint_read_meta(const char *path, struct sn_ckpt_meta *meta, struct sn_err *err);

/* Reads and checks the run record: *text is a malloc'ed NUL-terminated copy (free it), "" for a
 * version 1 file. */
int sn_checkpoint_read_record(const char *path, char **text, struct sn_err *err);

/* Reads a whole checkpoint into meta and the three arrays. params/state/opt must hold the
 * n_params/n_state/n_opt floats the header gives (sn_checkpoint_read_meta tells them); pass
 * expect_* to have a mismatch reported before anything is read (-1 = accept any). opt may be
 * NULL to skip the optimizer moments (evaluate, predict); the whole frame is still decoded, so
 * its checksum is always verified. On error the arrays' contents are unspecified.
 * @return SN_OK, SN_EIO (cannot open/read), SN_EFORMAT (not a checkpoint, other version,
 * corrupt or truncated) or SN_EINVAL (counts differ from expect_*). */
int sn_checkpoint_load(const char *path, struct sn_ckpt_meta *meta, float *params,
                       int64_t expect_params, float *state, int64_t expect_state, float *opt,
                       int64_t expect_opt, struct sn_err *err);

/* The run record: lines "key=value", a key may repeat (one line per class, per history row).
 * Values are escaped on the way in (backslash, newline) and unescaped on the way out, so any
 * folder name round-trips. */
struct sn_record {
    char *text;      /* owned, NUL-terminated */
    size_t len, cap;
    int failed;      /* an allocation failed: the record is incomplete */
};
/* Appends key=value (printf-style value). */
void sn_record_add(struct sn_record *r, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void sn_record_free(struct sn_record *r);
/* The nth (from 0) value of key in text, unescaped into out[cap]. @return 1 if found, else 0. */
int  sn_record_get(const char *text, const char *key, int nth, char *out, size_t cap);
/* Number of lines with key. */
int  sn_record_count(const char *text, const char *key);
/* The nth value of key as a whole number (a double: "%a" or decimal). @return 0, or -1 when
 * absent or not a number. */
int  sn_record_double(const char *text, const char *key, int nth, double *out);

#endif
