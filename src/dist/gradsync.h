/* gradsync.h — the gradient exchange of data-parallel training: the gradients of every
 * micro-batch of a step, summed exactly over ranks, in buckets started during backward.
 *
 * Exactly: a step's gradient is the sum of its micro-batches' gradients (step.h), and a sum of
 * floats depends on its order — over 2 ranks or 3, in a ring or a tree, the last bits differ,
 * and training amplifies them. So each bucket is summed in fixed point (fixed.h): every rank
 * finds the magnitude of its micro-batches' gradients in the bucket, the ranks agree on the
 * largest (a MAX allreduce of one int), every term is rounded once to the grid that magnitude
 * and the number of micro-batches fix, and the int64s are summed (MPI_SUM on integers: exact in
 * any order). The bits of the result are then those of the micro-batches alone, whichever rank
 * computed each and however many ranks there are. The price: 8 bytes a parameter on the wire
 * instead of 4, and one more small allreduce per bucket.
 *
 * Buckets are planned once from the model's layout: walking the layers from the last, trainable
 * parameters are grouped while they are contiguous and the bucket stays under bucket_bytes. A
 * rank keeps the gradients of its earlier micro-batches of the step (sn_gradsync_keep); during
 * the backward of its last one, bucket b is ready when the backward of its first (lowest) layer
 * is done. Collectives are started in one fixed order on every rank, whatever their timing: at
 * bucket b, the SUM of bucket b-1 (after its MAX is complete) and the MAX of bucket b; at the
 * end the SUM of the last. A rank without micro-batches starts the same sequence at the end,
 * with zeros. Frozen layers are never reduced, identically on every rank. */
#ifndef SN_GRADSYNC_H
#define SN_GRADSYNC_H

#include <stddef.h>
#include <stdint.h>

#include "dist.h"
#include "err.h"
#include "model.h"

#define SN_MAX_BUCKETS 64

struct sn_gradsync {
    struct sn_dist *d;            /* view */
    struct sn_model *m;           /* view */
    int n_buckets;
    struct {
        size_t off, len;          /* range of m->grads */
        size_t at;                /* offset of this bucket in kept's and acc's rows */
        int first_layer;          /* ready when this layer's backward is done */
        int req;                  /* in-flight request (the MAX, then the SUM), -1 if none */
        int phase;                /* 0 not started, 1 MAX in flight, 2 SUM in flight, 3 done */
        int e;                    /* the magnitude: this rank's, then everyone's (fixed.h) */
        double t_start;           /* when it started (tracing only) */
        int seen_done;            /* a poll saw its SUM complete (tracing only) */
    } buckets[SN_MAX_BUCKETS];
    size_t n_sync;                /* parameters exchanged: the buckets' lengths together */
    int max_kept;                 /* micro-batches whose gradients can be kept per step */
    float *kept;                  /* owned, (max_kept, n_sync): this step's earlier
                                     micro-batches' gradients, bucket after bucket */
    int64_t *acc;                 /* owned, (n_sync): the fixed-point sums */
    int terms;                    /* micro-batches of the step, all ranks together */
    int local;                    /* of them on this rank */
    int alone;                    /* this step sums this rank's terms alone (bench) */
    int n_kept;                   /* of this rank's, kept so far */
    int next;                     /* the next bucket to start: they start in order */
    int failed;                   /* a start failed: finish() reports it */
    struct sn_err err;
    double t_wait;                /* seconds spent in finish() (what backward did not hide) */
};

/* Plans the buckets for m and allocates room for the gradients of max_micro micro-batches of
 * this rank per step. bucket_bytes 0 means 256 KB: small enough that even a small network gets
 * several buckets to overlap, large enough that latency does not dominate. */
int  sn_gradsync_init(struct sn_gradsync *g, struct sn_dist *d, struct sn_model *m,
                      size_t bucket_bytes, int max_micro, struct sn_err *err);
void sn_gradsync_free(struct sn_gradsync *g); /* accepts a zeroed struct */

/* A step of `terms` micro-batches (all ranks together) begins, `local` of them on this rank (0
 * for a rank without work in this step). */
void sn_gradsync_begin(struct sn_gradsync *g, int terms, int local);
/* Keeps the trainable gradients of one of this rank's micro-batches that is not its last (the
 * caller then zeroes them for the next). */
void sn_gradsync_keep(struct sn_gradsync *g);
/* The sn_grads_ready_fn to pass to sn_model_backward of this rank's last micro-batch (user =
 * the sn_gradsync): starts the buckets as their layers finish, and drives MPI's progress. */
void sn_gradsync_ready(void *user, int layer);
/* Starts what is left, waits for every bucket, and writes the sums into the trainable grads.
 * @return SN_OK; SN_ENUM on every rank alike when a gradient is not finite (the grads are then
 * left as they are); SN_EMPI when a collective failed. */
int  sn_gradsync_finish(struct sn_gradsync *g, struct sn_err *err);
/* The same with every bucket's collectives blocking, after backward (bench: what overlap
 * saves), or with none at all when alone (bench's rank 0 alone): the same sums, computed
 * here. */
int  sn_gradsync_blocking(struct sn_gradsync *g, int alone, struct sn_err *err);

#endif
