/* train.h — `shardnet train`: fit, data-parallel, on every rank of an MPI job.
 *
 * Training is data-parallel: `batch_size` is the global batch, each rank computes gradients on
 * its slice (loader.h), gradients are summed over ranks (step.h) and the update is the same
 * everywhere. Validation is sharded the same way and summed. Rank 0 alone writes history and
 * checkpoints and runs the callbacks (callbacks.h); one broadcast per epoch carries its
 * decisions to the others. Rank-0-only code holds no collective.
 *
 * A checkpoint holds everything that decides the rest of its run (parameters, optimizer
 * moments, and the run record: record.h) and says which run it belongs to (the resolved config,
 * the class names, the data's fingerprints): a resume continues only the same run. */
#ifndef SN_TRAIN_H
#define SN_TRAIN_H

#include <signal.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "dist.h"
#include "err.h"

struct sn_train_opts {
    const char *resume;        /* checkpoint to resume from, "auto" (the run's `last` checkpoint
                                  if there is one), or NULL */
    int allow_config_change;   /* resume even when the config or data changed (named anyway) */
    const char *init;          /* a fresh run starts from this checkpoint's parameters and
                                  statistics (same network), with a new optimizer: fine-tuning
                                  after a frozen-base run; NULL: from [base] or initialisers */
    FILE *out;                 /* progress (rank 0) and notes: the CLI passes stdout */
    FILE *errs;                /* reports of skipped files (every rank): the CLI passes stderr */
    int quiet;
    /* Set asynchronously (a signal: SLURM's warning before a time limit, preemption). At the
       next step every rank agrees, rank 0 saves `last` with the loader position, and sn_train
       returns SN_ESTOP on every rank; --resume continues exactly there. May be NULL. */
    volatile sig_atomic_t *stop;
    const char *trace;         /* --trace FILE: a Chrome-trace timeline of every rank (trace.h),
                                  written by rank 0 at the end (also after a stop); NULL: none */
    size_t trace_events;       /* events each rank has room for (0: the default) */
};

/* The end of a traced run (train, bench), on every rank: the trace written when every rank
 * got here with rc (a success, or an error all ranks met: a stop, a NaN loss), dropped after
 * one rank's own failure, which leaves no collective to trust. note: rank 0's progress stream;
 * errs: where a trace that could not be written after a failure is said.
 * @return rc, or the trace's failure after a success. */
int sn_train_finish_trace(struct sn_dist *d, const char *path, int rc, FILE *note, FILE *errs,
                          struct sn_err *err);

/* `shardnet train`: runs on every rank of d. Returns SN_OK on every rank (also when a resumed
 * run had nothing left to train), or an error on the rank where it happened (err->collective
 * when every rank has it). */
int sn_train(const struct sn_config *cfg, struct sn_dist *d, const struct sn_train_opts *opts,
             struct sn_err *err);

#endif
