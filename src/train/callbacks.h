/* callbacks.h — Keras's epoch-end callbacks as state machines fed val_loss once per epoch:
 * ModelCheckpoint(monitor="val_loss", save_best_only), EarlyStopping and ReduceLROnPlateau.
 *
 * Each keeps its own reference, as in Keras: the checkpoint's best val_loss (no min_delta),
 * EarlyStopping's best (improvement means below best - min_delta) and ReduceLROnPlateau's
 * (below best - its own min_delta). Their whole state is one struct of plain values that a
 * checkpoint saves and a resume restores, so a resumed run decides exactly as an uninterrupted
 * one. Rank 0 runs them; the result is broadcast. */
#ifndef SN_CALLBACKS_H
#define SN_CALLBACKS_H

#include "checkpoint.h"
#include "config.h"
#include "err.h"

struct sn_callbacks_conf {
    int save_best_only;          /* [checkpoint] save_best_only (true): keep NAME-best.ckpt;
                                    false: NAME-epochNNN.ckpt after every epoch */
    int es_on;                   /* an [early_stopping] section is present */
    int es_patience;             /* Keras's default 0: stop at the first epoch without progress */
    double es_min_delta;
    int rlr_on;                  /* a [reduce_lr_on_plateau] section is present */
    int rlr_patience;            /* 10 */
    double rlr_factor;           /* 0.1 */
    double rlr_min_delta;        /* 1e-4 */
    int rlr_cooldown;            /* 0 */
    double rlr_min_lr;           /* 0 */
};

/* Reads [checkpoint] save_best_only, [early_stopping] and [reduce_lr_on_plateau]. */
int sn_callbacks_conf_parse(struct sn_callbacks_conf *c, const struct sn_config *cfg,
                            struct sn_err *err);

struct sn_callbacks_state {
    double best;          /* ModelCheckpoint: lowest val_loss so far (+inf at start) */
    double es_best;       /* EarlyStopping */
    int es_wait;
    double rlr_best;      /* ReduceLROnPlateau */
    int rlr_wait;
    int rlr_cooldown;     /* epochs of cooldown left */
};

void sn_callbacks_init(struct sn_callbacks_state *st);

struct sn_callbacks_result {
    int improved;         /* val_loss is the best so far: save NAME-best.ckpt */
    int stop;             /* EarlyStopping: end training after this epoch */
    double lr;            /* the learning rate from now on (== the lr given when unchanged) */
};

/* One epoch's end, epoch counted from 0, lr the current learning rate (ReduceLROnPlateau's
 * changes multiply it). A NaN val_loss never improves anything. */
void sn_callbacks_epoch_end(const struct sn_callbacks_conf *c, struct sn_callbacks_state *st,
                            int epoch, double val_loss, double lr,
                            struct sn_callbacks_result *res);

/* The state as record lines "cb.*", and back (exactly: doubles as %a). */
void sn_callbacks_save(const struct sn_callbacks_state *st, struct sn_record *rec);
/* @return SN_OK, or SN_EFORMAT naming path when a line is missing or malformed. */
int  sn_callbacks_load(struct sn_callbacks_state *st, const char *record, const char *path,
                       struct sn_err *err);

#endif
