/* record.h — the run record a checkpoint carries (checkpoint.h: struct sn_record): which run it
 * belongs to and everything that decides the rest of that run besides the parameters and the
 * optimizer's moments.
 *
 * Written: the resolved config ("config" lines), the class names, the training and validation
 * files (counts and fingerprints), the run state (struct sn_run_state: epoch sums, the
 * callbacks, the learning-rate scale) and the history. Read back: by a resume (the state and
 * history, after checking that the config and data are this run's) and by evaluate and predict
 * (the class names, and a note when the config changed since). */
#ifndef SN_RECORD_H
#define SN_RECORD_H

#include <stddef.h>
#include <stdint.h>

#include "callbacks.h"
#include "checkpoint.h"
#include "config.h"
#include "dataset.h"
#include "err.h"
#include "settings.h"

/* Everything that decides the rest of a run besides the parameters and optimizer moments:
 * saved whole in every checkpoint, broadcast from rank 0 after a resume and after each epoch. */
struct sn_run_state {
    int32_t epoch;        /* epochs completed */
    int32_t finished;     /* early stopping ended the run */
    int64_t step;         /* optimizer updates made */
    int64_t pos;          /* samples of the current epoch trained on */
    double lr_scale;      /* ReduceLROnPlateau's changes, multiplied */
    double loss, correct, samples, bad; /* the current epoch so far, summed over ranks */
    double seconds, data_wait;          /* the current epoch so far (rank 0's data wait) */
    int32_t threads;      /* compute threads per rank the run computes with: kept by a resume
                             unless set otherwise (their number changes the bits: threads.h) */
    struct sn_callbacks_state cb;
};

#define SN_HISTORY_COLS 7 /* epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds */

/* A run as its record holds it: the state, and the history (rows, owned). */
struct sn_run_history {
    double (*rows)[SN_HISTORY_COLS]; /* owned, n rows */
    int n;
};

/* The record of a checkpoint written now: cfg's resolved keys, the training split's classes,
 * both splits' files, the state and the history. */
int sn_record_run(const struct sn_config *cfg, const struct sn_dataset *train,
                  const struct sn_dataset *val, const struct sn_run_state *rs,
                  const struct sn_run_history *h, struct sn_record *rec, struct sn_err *err);

/* The state (all but epoch, step and pos, which the header holds) and history of a record;
 * path names the checkpoint in errors. h->rows is replaced (the caller frees it). */
int sn_record_read_run(const char *rec, const char *path, struct sn_run_state *rs,
                       struct sn_run_history *h, struct sn_err *err);

/* The run record of a checkpoint made without training (import-weights): the resolved config,
 * the classes when [data] class_names names them, and where the weights came from. */
int sn_record_imported(const struct sn_config *cfg, const struct sn_settings *st,
                       const char *from, struct sn_record *rec, struct sn_err *err);

/* The class names of a record: *names (malloc'ed, *n rows), *n = 0 for a record without. */
int sn_record_class_names(const char *rec, char (**names)[64], int *n, struct sn_err *err);

/* The keys whose values differ between the record's config and cfg — except the keys that say
 * how or where a run computes (threads, paths, the backend, checkpoint settings: they may
 * change between a checkpoint and the run that continues it), and [data] class_names when the
 * record holds no class names (the config then gives them) — each appended to msg as
 * "\n    [section] key: A in the checkpoint, B now". @return their number. */
int sn_record_config_changes(const struct sn_config *cfg, const char *rec, char *msg, size_t cap);

/* Whether the record's data is train and val: the class names (always), the files of each
 * split (by fingerprint, not by path: a cluster job may find its data staged elsewhere).
 * Differences are appended to msg. @return 2 for other classes, 1 for other files, 0 for the
 * same data. */
int sn_record_data_changes(const char *rec, const struct sn_dataset *train,
                           const struct sn_dataset *val, char *msg, size_t cap);

#endif
