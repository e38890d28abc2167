/* train.h — fit, evaluate, predict and bench: the workflows built on model, data, dist,
 * checkpoint, optim, step and callbacks.
 *
 * Training is data-parallel: `batch_size` is the global batch, each rank computes gradients on
 * its slice (data.h), gradients are summed over ranks (step.h) and the update is the same
 * everywhere. Validation is sharded the same way and summed. Rank 0 alone writes history and
 * checkpoints and runs the callbacks (callbacks.h); one broadcast per epoch carries its
 * decisions to the others. Rank-0-only code holds no collective.
 *
 * A checkpoint holds everything that decides the rest of its run (parameters, optimizer
 * moments, the callbacks' state, the learning-rate scale, the current epoch's running sums, the
 * history) and says which run it belongs to (the resolved config, the class names, the data's
 * fingerprints): a resume continues only the same run. */
#ifndef SN_TRAIN_H
#define SN_TRAIN_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>

#include "augment.h"
#include "callbacks.h"
#include "config.h"
#include "data.h"
#include "dist.h"
#include "err.h"
#include "model.h"
#include "optim.h"

/* The [train] and [checkpoint] settings, with the callbacks'. */
struct sn_train_conf {
    int epochs;
    int batch_size;            /* global batch */
    uint64_t seed;
    int shuffle;
    int threads;               /* compute threads per rank (0 = $SN_THREADS, else the node's
                                  cores shared among its ranks) */
    int bf16;                  /* precision = bf16: convolutions on bf16 inputs (sn_ops_bf16) */
    int steps_per_epoch;       /* 0 = the whole training split */
    int validation_batch_size; /* global, like batch_size */
    double watchdog;           /* seconds a collective may wait before the job is aborted */
    char ckpt_dir[1024];       /* [checkpoint] dir (default ".") */
    char run_name[512];        /* file-name prefix: config file name without extension */
    int save_every;            /* [checkpoint] save_every: steps between `last` saves (0 = per epoch) */
    struct sn_callbacks_conf cb;
};

int sn_train_conf_parse(struct sn_train_conf *tc, const struct sn_config *cfg, struct sn_err *err);

/* Every setting of a config: what each command reads before any work. */
struct sn_settings {
    struct sn_train_conf tc;
    struct sn_data_conf dc;
    struct sn_augment_conf ac;
    struct sn_optim_conf oc;
    const struct sn_ops *ops;  /* [model] backend; sn_ops_blas when it is auto */
    int auto_backend;          /* [model] backend = auto (the default): chosen per layer */
};

/* Parses every settings section, builds the network for batches of up to max_batch, checks
 * that data, network and loss fit together, and rejects any key nobody read (with the closest
 * known key as a suggestion) — the same checks for every command. *model (NULL: built, checked
 * and freed) receives the network. */
int sn_settings_load(struct sn_settings *st, const struct sn_config *cfg, int max_batch,
                     struct sn_model **model, struct sn_err *err);

/* What the settings ask of the CPU, checked before any work: precision = bf16 needs bf16
 * arithmetic (AVX-512 BF16 or AMX). An error naming the config and the key otherwise. */
int sn_settings_check_cpu(const struct sn_settings *st, const struct sn_config *cfg,
                          struct sn_err *err);

/* The run record of a checkpoint made without training (import-weights): the resolved config,
 * the classes when [data] class_names names them, and where the weights came from. */
int sn_record_imported(const struct sn_config *cfg, const struct sn_settings *st,
                       const char *from, struct sn_record *rec, struct sn_err *err);

struct sn_train_opts {
    const char *resume;        /* checkpoint to resume from, "auto" (the run's `last` checkpoint
                                  if there is one), or NULL */
    int allow_config_change;   /* resume even when the config or data changed (named anyway) */
    const char *init;          /* a fresh run starts from this checkpoint's parameters and
                                  statistics (same network), with a new optimizer: fine-tuning
                                  after a frozen-base run; NULL: from [base] or initialisers */
    FILE *out;                 /* progress (rank 0), usually stdout */
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
 * one rank's own failure, which leaves no collective to trust. note: rank 0's progress stream.
 * @return rc, or the trace's failure after a success. */
int sn_train_finish_trace(struct sn_dist *d, const char *path, int rc, FILE *note,
                          struct sn_err *err);

/* `shardnet train`: runs on every rank of d. Returns SN_OK on every rank (also when a resumed
 * run had nothing left to train), or an error on the rank where it happened (err->collective
 * when every rank has it). */
int sn_train(const struct sn_config *cfg, struct sn_dist *d, const struct sn_train_opts *opts,
             struct sn_err *err);

struct sn_eval_result {
    long long n;          /* samples evaluated */
    long long skipped;    /* files that did not decode */
    double loss, accuracy;
};

/* `shardnet evaluate`: loss and accuracy of a checkpoint on a split (default test) in one process,
 * labels by the checkpoint's class names. data_dir (may be NULL) replaces [data]: a data root
 * holding the split's folder, or the split's folder itself (class folders inside). Notes (a
 * changed config, classes the split lacks) go to notes. */
int sn_evaluate(const struct sn_config *cfg, const char *ckpt, const char *data_dir, int split,
                FILE *notes, struct sn_eval_result *res, struct sn_err *err);

/* `shardnet predict`: for each image, its `top` most probable classes by the checkpoint's
 * class names ("IMAGE 7_Sneaker 0.960"), one line each, on out. */
int sn_predict(const struct sn_config *cfg, const char *ckpt, char **images, int n_images, int top,
               int digits,
               FILE *out, FILE *notes, struct sn_err *err);

/* `shardnet extract`: the network of cfg (a convolutional base) with the weights of ckpt, run
 * in inference mode over the train, val and test splits of [data] (or data_dir, a root with
 * those folders); each rank takes its shard, rank 0 writes one feature file (featfile.h) with
 * the labels and class names. A missing val or test folder is left out with a note. */
int sn_extract(const struct sn_config *cfg, const char *ckpt, const char *data_dir,
               const char *out_path, struct sn_dist *d, FILE *out, struct sn_err *err);

struct sn_bench_opts {
    int batch;            /* 0 = [train] batch_size */
    int iters;            /* timed steps */
    int data_only;        /* benchmark the data pipeline instead */
    const char *backend;  /* "blas" (default) or "ref" */
    const char *csv;      /* rank 0 writes the training figures here (header + one row) */
    const char *trace;    /* --trace FILE, as for train (NULL: none) */
    size_t trace_events;
};

/* `shardnet bench`: prints one figure per line on out (rank 0). */
int sn_bench(const struct sn_config *cfg, struct sn_dist *d, const struct sn_bench_opts *bo,
             FILE *out, struct sn_err *err);

#define SN_ALLREDUCE_MAX_SIZES 32
struct sn_allreduce_opts {
    size_t sizes[SN_ALLREDUCE_MAX_SIZES]; /* message sizes in bytes, multiples of 4 */
    int n_sizes;                          /* 0 = 4 KB, 64 KB, 1 MB, 16 MB */
    int iters;                            /* timed calls per size; 0 = by size (see bench.c) */
    const char *csv;                      /* rank 0 also writes the rows here; NULL = none */
};

/* `shardnet bench --allreduce`: the gradient exchange alone (sn_dist_allreduce_sum on floats,
 * in place, the call that sums the gradients) at each message size. Per size: one call whose
 * result is checked (rank r sends r+1; every element must come back as the sum), warm-up calls,
 * then `iters` calls, each started after a barrier and timed on every rank. Rank 0 prints one
 * line per size: the median over calls of the time averaged over ranks, the minimum, and the
 * bandwidths; with csv it writes the same figures, one row per size, atomically. */
int sn_bench_allreduce(struct sn_dist *d, const struct sn_allreduce_opts *o, FILE *out,
                       struct sn_err *err);

#endif
