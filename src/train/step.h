/* step.h — one training step, the same code for `train` and `bench`.
 *
 * The unit of work is the micro-batch: the global batch of a step is cut into micro-batches of
 * [train] micro_batch samples (the last may be shorter), and each rank holds a contiguous run of
 * whole micro-batches (loader.h: sn_shard_slice). On every rank:
 *   for each of its micro-batches, in order:
 *     zero grads
 *     logits = forward(x of the micro-batch)              (m, K)
 *     dlogits = d(sum of losses)/dlogits / global_n        so the summed gradients are the mean
 *     backward(dlogits)                                    its gradients kept (gradsync.h)
 *   the last one's backward starts each bucket's exchange as its layers finish
 *   wait for every bucket: the exact sum of every micro-batch's gradients (gradsync.h)
 *   every micro-batch's sums (loss, correct, samples) and batch-norm statistics, gathered and
 *   taken in micro-batch order; the moving statistics move once per micro-batch, in order
 *   if the summed loss is finite: optimizer update        the same update on every rank
 * So a micro-batch's forward, backward and statistics are the same bits whichever rank computes
 * it, the sums do not depend on their order, and the step's result does not depend on the
 * number of ranks. A rank without micro-batches still takes part in every collective, in the
 * same order as the others, with zeros. */
#ifndef SN_STEP_H
#define SN_STEP_H

#include <stdint.h>

#include "dist.h"
#include "err.h"
#include "gradsync.h"
#include "model.h"
#include "optim.h"

/* How gradients cross ranks. Training always overlaps; bench measures the others. */
enum sn_step_sync {
    SN_SYNC_OVERLAP = 0, /* buckets started during backward, waited for before the update */
    SN_SYNC_BLOCKING,    /* barrier after backward, then every bucket exchanged (bench) */
    SN_SYNC_NONE,        /* no collective at all: what one rank does alone (bench) */
};

struct sn_step {
    struct sn_dist *d;       /* view */
    struct sn_model *m;      /* view */
    struct sn_optim *opt;    /* view */
    struct sn_gradsync sync; /* owned plan of the buckets */
    int micro;               /* samples per micro-batch */
    int max_local;           /* micro-batches a rank holds at most */
    float *dlogits;          /* owned, (micro, n_outputs) */
    double *mine;            /* owned, (max_local * 3 + 1): this rank's per micro-batch loss,
                                correct and samples, and its stop flag */
    double *sums;            /* owned, (world, max_local * 3 + 1): every rank's, gathered */
    float *bmine;            /* owned, (max_local, n_state): this rank's per micro-batch
                                batch-norm statistics (NULL without state) */
    float *bstate;           /* owned, (world, max_local, n_state): every rank's, gathered */
    int *counts;             /* owned, (world): micro-batches each rank holds in the step */
    /* laps of the last step, for bench: backward ended, every rank arrived (blocking), the
       exchange ended */
    double t_backward, t_arrived, t_exchanged;
};

/* A rank's part of one step. */
struct sn_step_in {
    const float *x;          /* (n,H,W,C) */
    const int32_t *y;        /* (n) */
    const uint8_t *ok;       /* (n) 0 for rows whose file did not decode; NULL: all good */
    const int64_t *ids;      /* (n) sample index of each row (dropout masks depend on it) */
    int n, global_n;         /* rows here, rows of the global batch */
    uint64_t seed, step;     /* run seed and global step number */
    int epoch;               /* for messages */
    int stop;                /* this rank was asked to stop (a signal) */
};

/* What every rank learns from the step (sums over every micro-batch, in their order). */
struct sn_step_out {
    double loss;             /* sum of per-sample losses */
    double correct, samples; /* rows classified right, rows with a decoded image */
    int stop;                /* some rank was asked to stop: all stop after this step */
};

/* micro: samples per micro-batch ([train] micro_batch; the model holds a micro-batch);
 * max_rows bounds n of every later call (a rank's share of a full batch). */
int  sn_step_init(struct sn_step *s, struct sn_dist *d, struct sn_model *m, struct sn_optim *opt,
                  int micro, int max_rows, struct sn_err *err);
void sn_step_free(struct sn_step *s); /* accepts a zeroed struct */

/* Runs one step. @return SN_OK; SN_ENUM on every rank alike when the summed loss is not finite
 * (no update is made; the message names the epoch and step); SN_EMPI when a collective fails. */
int  sn_step_run(struct sn_step *s, const struct sn_step_in *in, enum sn_step_sync mode,
                 struct sn_step_out *out, struct sn_err *err);

#endif
