/* step.h — one training step, the same code for `train` and `bench`.
 *
 * On every rank:
 *   zero grads; if the rank has rows:
 *     logits = forward(x)                                  (n, K)
 *     dlogits = d(sum of losses)/dlogits / global_n        so the summed gradients are the mean
 *     backward(dlogits), each gradient bucket's allreduce started as its layers finish
 *   wait for every bucket (a rank without rows starts them all here, in the same order)
 *   sum (loss, correct, samples, stop flag) over ranks
 *   if the summed loss is finite: optimizer update        the same update on every rank
 * A rank whose slice of the global batch is empty still takes part in every collective, in the
 * same order as the others, with zero gradients. */
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
    float *dlogits;          /* owned, (max_rows, n_outputs) */
    int max_rows;
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

/* What every rank learns from the step (sums over ranks). */
struct sn_step_out {
    double loss;             /* sum of per-sample losses */
    double correct, samples; /* rows classified right, rows with a decoded image */
    int stop;                /* some rank was asked to stop: all stop after this step */
};

/* max_rows bounds n of every later call (the model's max_batch, at most). */
int  sn_step_init(struct sn_step *s, struct sn_dist *d, struct sn_model *m, struct sn_optim *opt,
                  int max_rows, struct sn_err *err);
void sn_step_free(struct sn_step *s); /* accepts a zeroed struct */

/* Runs one step. @return SN_OK; SN_ENUM on every rank alike when the summed loss is not finite
 * (no update is made; the message names the epoch and step); SN_EMPI when a collective fails. */
int  sn_step_run(struct sn_step *s, const struct sn_step_in *in, enum sn_step_sync mode,
                 struct sn_step_out *out, struct sn_err *err);

#endif
