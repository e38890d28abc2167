/* gradsync.h — the gradient exchange of data-parallel training: trainable gradients summed over
 * ranks in buckets, each started (non-blocking) as soon as backward has finished its layers.
 *
 * Buckets are planned once from the model's layout: walking the layers from the last, trainable
 * parameters are grouped while they are contiguous and the bucket stays under bucket_bytes. A
 * bucket starts when the backward of its first (lowest) layer is done; while later layers'
 * backward runs, the in-flight requests are polled so that MPI makes progress (Open MPI does not
 * progress a non-blocking collective on its own). Frozen layers are never reduced, identically
 * on every rank. */
#ifndef SN_GRADSYNC_H
#define SN_GRADSYNC_H

#include <stddef.h>

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
        int first_layer;          /* starts when this layer's backward is done */
        int req;                  /* in-flight request, -1 if none */
        double t_start;           /* when it started (tracing only) */
        int seen_done;            /* a poll saw it complete (tracing only) */
    } buckets[SN_MAX_BUCKETS];
    int failed;                   /* a start failed: finish() reports it */
    struct sn_err err;
    double t_wait;                /* seconds spent in finish() (what backward did not hide) */
};

/* Plans the buckets for m. bucket_bytes 0 means 256 KB: small enough that even a small network
 * gets several buckets to overlap, large enough that latency does not dominate. */
int  sn_gradsync_init(struct sn_gradsync *g, struct sn_dist *d, struct sn_model *m,
                      size_t bucket_bytes, struct sn_err *err);
/* The sn_grads_ready_fn to pass to sn_model_backward (user = the sn_gradsync). */
void sn_gradsync_ready(void *user, int layer);
/* Waits for every bucket; afterwards the trainable grads hold the sum over ranks. */
int  sn_gradsync_finish(struct sn_gradsync *g, struct sn_err *err);
/* Blocking exchange of every bucket (for measuring what overlap saves). */
int  sn_gradsync_blocking(struct sn_gradsync *g, struct sn_err *err);

#endif
