/* train.h — fit, evaluate, predict and bench: the workflows built on model, data, dist,
 * checkpoint and optim.
 *
 * Training is data-parallel: `batch_size` is the global batch, each rank computes gradients on
 * its slice (data.h), gradients are summed over ranks in one allreduce per trainable range and
 * the step is the same everywhere. Rank 0 alone validates, writes history and checkpoints and
 * decides best model, early stopping and learning-rate changes; one broadcast per epoch carries
 * its decisions to the others. Rank-0-only code holds no collective. */
#ifndef SN_TRAIN_H
#define SN_TRAIN_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "dist.h"
#include "err.h"

/* The [train], [checkpoint], [early_stopping] and [reduce_lr_on_plateau] settings. */
struct sn_train_conf {
    int epochs;
    int batch_size;            /* global batch */
    uint64_t seed;
    int shuffle;
    int threads;               /* BLAS threads per rank (0 = fit ranks x threads to the node) */
    int steps_per_epoch;       /* 0 = the whole training split */
    int validation_batch_size;
    double watchdog;           /* seconds a collective may take before the job is aborted */
    char ckpt_dir[1024];       /* [checkpoint] dir (default ".") */
    char run_name[512];        /* file-name prefix: config file name without extension */
    int save_every;            /* [checkpoint] save_every: steps between `last` saves (0 = per epoch) */
    int save_best_only;        /* keep `best` by monitor (val_loss) */
    /* EarlyStopping (patience 0 = off) */
    int es_patience;
    double es_min_delta;
    int es_restore_best;
    /* ReduceLROnPlateau (patience 0 = off) */
    int rlr_patience;
    double rlr_factor, rlr_min_delta, rlr_min_lr;
    int rlr_cooldown;
};

int sn_train_conf_parse(struct sn_train_conf *tc, const struct sn_config *cfg, struct sn_err *err);

struct sn_train_opts {
    const char *resume;        /* checkpoint to resume from, "auto" (the run's `last` checkpoint
                                  if there is one), or NULL */
    FILE *out;                 /* progress (rank 0), usually stdout */
    int quiet;
    /* Set asynchronously (a signal: SLURM's warning before a time limit, preemption). At the
       next step every rank agrees, rank 0 saves `last` with the loader position, and sn_train
       returns SN_ESTOP on every rank; --resume continues exactly there. May be NULL. */
    volatile sig_atomic_t *stop;
};

/* `shardnet train`: runs on every rank of d. Returns SN_OK on every rank, or an error on the rank
 * where it happened (the caller aborts the job). */
int sn_train(const struct sn_config *cfg, struct sn_dist *d, const struct sn_train_opts *opts,
             struct sn_err *err);

struct sn_eval_result {
    long long n;          /* samples evaluated */
    long long skipped;    /* files that did not decode */
    double loss, accuracy;
};

/* `shardnet evaluate`: loss and accuracy of a checkpoint on a split (default test) in one process.
 * data_dir (may be NULL) overrides [data] dir. */
int sn_evaluate(const struct sn_config *cfg, const char *ckpt, const char *data_dir, int split,
                struct sn_eval_result *res, struct sn_err *err);

/* `shardnet predict`: class probabilities for each image, one line each, on out. */
int sn_predict(const struct sn_config *cfg, const char *ckpt, char **images, int n_images,
               FILE *out, struct sn_err *err);

struct sn_bench_opts {
    int batch;            /* 0 = [train] batch_size */
    int iters;            /* timed steps */
    int data_only;        /* benchmark the data pipeline instead */
    const char *backend;  /* "blas" (default) or "ref" */
};

/* `shardnet bench`: prints one figure per line on out (rank 0). */
int sn_bench(const struct sn_config *cfg, struct sn_dist *d, const struct sn_bench_opts *bo,
             FILE *out, struct sn_err *err);

#endif
