/* settings.h — every setting of a config, read once, before any work: [train] and [checkpoint]
 * (with the callbacks'), [data], [augment], the optimizer's keys and [model] backend.
 *
 * A command reads the settings first (sn_settings_load), works out from them the batch its
 * network must hold (the per-rank share of batch_size or validation_batch_size), then builds the
 * network once at that batch (sn_settings_build). Building is also where the config is checked
 * whole: data, network and loss must fit together, the optimizer's settings with the network
 * (weight_decay_exclude names its variables), and any key nobody read is refused, with the
 * closest known key as a suggestion — the same checks for every command. */
#ifndef SN_SETTINGS_H
#define SN_SETTINGS_H

#include <stdint.h>

#include "augment.h"
#include "callbacks.h"
#include "config.h"
#include "data_conf.h"
#include "err.h"
#include "mem.h"
#include "model.h"
#include "optim.h"

/* The [train] and [checkpoint] settings, with the callbacks'. */
struct sn_train_conf {
    int epochs;
    int batch_size;            /* global batch */
    int micro_batch;           /* the unit of work: a global batch is cut into micro-batches of
                                  this many samples, each computed whole by one rank (step.h) */
    uint64_t seed;
    int shuffle;
    int threads;               /* compute threads per rank (0: threads.h decides) */
    int bf16;                  /* precision = bf16: convolutions on bf16 inputs (sn_ops_bf16) */
    int steps_per_epoch;       /* 0 = the whole training split */
    int validation_batch_size; /* global, like batch_size */
    double watchdog;           /* seconds a collective may wait before the job is aborted */
    char ckpt_dir[1024];       /* [checkpoint] dir (default ".") */
    char run_name[512];        /* file-name prefix: config file name without extension */
    int save_every;            /* [checkpoint] save_every: steps between `last` saves (0 = per epoch) */
    struct sn_callbacks_conf cb;
};

/* Every setting of a config: what each command reads before any work. */
struct sn_settings {
    struct sn_train_conf tc;
    struct sn_data_conf dc;
    struct sn_augment_conf ac;
    struct sn_optim_conf oc;
    const struct sn_ops *ops;  /* [model] backend; sn_ops_blas when it is auto */
    int auto_backend;          /* [model] backend = auto (the default): chosen per layer */

    /* Not from the config: what the command says, after sn_settings_load and before
       sn_settings_build, for the memory check (both 0 by default: a network for inference in
       a process alone on its node). */
    int training;              /* it trains: gradients and optimizer moments count too */
    int node_ranks;            /* ranks of the job on this node, each with a network (0: 1) */
    int world;                 /* ranks of the job (0: 1): how many micro-batches each keeps */
};

/* Parses every settings section of cfg into st. Errors name the file, line and key. */
int sn_settings_load(struct sn_settings *st, const struct sn_config *cfg, struct sn_err *err);

/* Builds the network of cfg for batches of up to max_batch (at least 1) on the settings'
 * backend, checks that data, network and loss fit together, and rejects any key of cfg that no
 * reader took. Before any of its buffers is allocated, the memory it will take (parameters,
 * state and activations at max_batch; with st->training gradients and optimizer moments; times
 * st->node_ranks) is weighed against the memory available (mem.h): a network that does not fit
 * is refused in milliseconds with the figures. *model (NULL: built, checked and freed) receives
 * the network. */
int sn_settings_build(const struct sn_settings *st, const struct sn_config *cfg, int max_batch,
                      struct sn_model **model, struct sn_err *err);

/* Bytes the network m takes on one rank, as sn_settings_build weighs it (parameters, state,
 * activations; training: gradients and optimizer moments): what other memory of the run (the
 * data cache) is weighed with. */
double sn_settings_need(const struct sn_settings *st, const struct sn_model *m);

/* Whether `per_rank` more bytes on each of this node's ranks (node_ranks) fit in the memory the
 * node has left. Fills *avail (what is available, and what says so) and *ranks (the node's
 * ranks, at least 1) for the caller's message. Nothing saying what is available: it fits. */
int sn_settings_node_fits(const struct sn_settings *st, double per_rank,
                          struct sn_mem_avail *avail, int *ranks);

/* What the settings ask of the CPU, checked before any work: precision = bf16 needs bf16
 * arithmetic (AVX-512 BF16 or AMX). An error naming the config and the key otherwise. */
int sn_settings_check_cpu(const struct sn_settings *st, const struct sn_config *cfg,
                          struct sn_err *err);

/* The classes of a split against the network's outputs: one vector per image (a network that
 * ends in an image, a Dense without [flatten] before it, is named as such), one unit per class,
 * or one sigmoid unit for exactly two classes; `where` names the split (or checkpoint) in the
 * error. */
int sn_settings_check_classes(const struct sn_model *m, int n_classes, const char *where,
                              struct sn_err *err);

#endif
