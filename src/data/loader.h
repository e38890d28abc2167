/* loader.h — the epoch order, and the loader that streams each rank's shard of every global
 * batch through decoding and augmentation on worker threads (loader.c).
 *
 * Order and sharding: epoch e has one global order, a permutation that is a function of
 * (seed, e) only. Global batch b holds order[b*B .. b*B+B) (the last one may be shorter), cut
 * into micro-batches; rank r of N takes a contiguous run of whole micro-batches of it
 * (sn_shard_slice). So the samples of a global batch and of each micro-batch never depend on
 * N, every rank runs the same number of steps, and nothing is padded or duplicated. A rank's
 * slice may be empty (fewer micro-batches than ranks); it still takes part in the step.
 *
 * Pixels are delivered as float (N,H,W,C) in [0,255], like Keras; a Rescaling layer scales. */
#ifndef SN_LOADER_H
#define SN_LOADER_H

#include <stdint.h>

#include "augment.h"
#include "data_conf.h"
#include "dataset.h"
#include "err.h"

/* Position [first, first+count) of this rank's slice of a global batch of nb samples cut into
 * micro-batches of `micro` samples (the last may be shorter): rank r of N takes the contiguous
 * micro-batches [r*K/N, (r+1)*K/N) of the K = ceil(nb / micro), whole. micro = 1 cuts at any
 * sample. */
static inline void sn_shard_slice(int nb, int micro, int rank, int world, int *first, int *count)
{
    long long m = micro > 1 ? micro : 1, k = (nb + m - 1) / m;
    long long k0 = k * rank / world, k1 = k * (rank + 1) / world;
    long long lo = k0 * m, hi = k1 * m < nb ? k1 * m : nb;
    *first = (int)lo;
    *count = (int)(hi > lo ? hi - lo : 0);
}

/* The global order of epoch e: a permutation of 0..n-1, a function of (seed, epoch) only.
 * shuffle = 0 gives the identity. order must hold n entries. */
void sn_epoch_order(int n, uint64_t seed, int epoch, int shuffle, int32_t *order);

struct sn_batch {
    int n;                /* rows on this rank (may be 0) */
    int global_n;         /* rows of the global batch, all ranks together */
    int step;             /* index of the batch within the epoch */
    float *x;             /* (n,H,W,C) in [0,255], H x W after [augment] crop — owned by
                             the loader */
    int32_t *y;           /* (n) class index (label_mode int; losses expand it as needed) */
    int64_t *ids;         /* (n) index of each sample in the dataset */
    uint8_t *ok;          /* (n) 0 where the file could not be decoded (row is zeros) */
    int n_bad;            /* rows with ok == 0 */
};

struct sn_loader_conf {
    const struct sn_dataset *ds;
    const struct sn_data_conf *dc;
    const struct sn_augment_conf *aug; /* the [augment] settings (NULL: none). Rows are
                                          (crop's H, W when set, else image_size) */
    int inference;        /* 1: Keras's training=False (validation, evaluate, extract): the
                             random layers are off and RandomCrop takes the centred window of its
                             aspect, resized (sn_augment_sample); 0: training draws */
    int global_batch;
    int micro_batch;      /* batches are shared among ranks in micro-batches of this many
                             samples (sn_shard_slice); 0 or 1: any sample */
    int rank, world;
    int shuffle;
    uint64_t seed;
    int cache;            /* 1: keep each decoded image (before [augment]) for the loader's
                             life, so a later epoch only augments it; the same bits as
                             decoding again. Costs ds->n decoded images of floats, allocated
                             at create (sn_loader_cache_bytes). A feature dataset is never
                             cached (it is in memory already) */
    /* How a skipped file (on_bad_image = skip) reaches the user: called once per file per
       loader with "PATH: REASON", from a worker thread with the loader's lock held (keep it
       short). The loader itself never prints: with report NULL a bad file is counted
       (sn_loader_bad_count, batch n_bad and ok) and told to no one. */
    void (*report)(void *user, const char *msg);
    void *report_user;
};

struct sn_loader;

/* Creates the loader and its worker threads (dc->threads). Buffers are allocated here, once. */
int  sn_loader_create(struct sn_loader **out, const struct sn_loader_conf *c, struct sn_err *err);
void sn_loader_free(struct sn_loader *l); /* joins the workers; accepts NULL */

/* Global steps per epoch: ceil(n / global_batch). Same on every rank. */
int  sn_loader_steps(const struct sn_loader *l);

/* Bytes the decoded-image cache of a loader over ds with these settings takes (0 when
 * c->cache is off or ds holds features): what a caller weighs against the memory available
 * before creating it. */
size_t sn_loader_cache_bytes(const struct sn_loader_conf *c);
/* Images held in the loader's cache (decoded once, served from memory since). */
long long sn_loader_cached(const struct sn_loader *l);

/* Starts decoding epoch `epoch` (its order depends on seed and epoch only). */
int  sn_loader_start_epoch(struct sn_loader *l, int epoch, struct sn_err *err);
/* The same from batch first_batch on, without decoding the batches before it (a resumed run). */
int  sn_loader_start_epoch_at(struct sn_loader *l, int epoch, int first_batch,
                              struct sn_err *err);

/* Next batch of this rank, in order; *out = NULL after the last one. The batch stays valid until
 * sn_loader_release(). A file that does not decode is counted, its row zeroed and marked !ok,
 * and passed once to the conf's report (path and reason); with on_bad_image = fail this returns
 * an error naming it instead. */
int  sn_loader_next(struct sn_loader *l, struct sn_batch **out, struct sn_err *err);
void sn_loader_release(struct sn_loader *l, struct sn_batch *b);

/* Seconds sn_loader_next spent waiting for workers since the epoch started. */
double sn_loader_wait_seconds(const struct sn_loader *l);
/* Bad files met in this epoch on this rank. */
int  sn_loader_bad_count(const struct sn_loader *l);

/* Decodes one file with the data settings and passes it through [augment] at inference
 * (RandomCrop's centred window, resized; ac may be NULL): out (H,W,C) float [0,255], the
 * network's input (used by `predict`). */
int  sn_data_load_image(const struct sn_data_conf *dc, const struct sn_augment_conf *ac,
                        const char *path, float *out, struct sn_err *err);

#endif
