/* console.h — what a run shows while it trains: rank 0's progress and every rank's reports of
 * skipped files.
 *
 * With a terminal (and no launcher in between, whose pipes only look like one) a Keras bar is
 * redrawn in place; otherwise — a log file, mpirun, srun — every line is whole: one per epoch
 * and a short one every minute. The streams are the caller's (the CLI passes stdout and
 * stderr): the library names neither. */
#ifndef SN_CONSOLE_H
#define SN_CONSOLE_H

#include <pthread.h>
#include <stdio.h>

#include "dataset.h"

struct sn_console {
    FILE *out;          /* view: progress and notes (rank 0) */
    FILE *errs;         /* view: reports of skipped files (every rank) */
    int quiet;          /* no progress from this rank */
    int bar;            /* redraw a bar with carriage returns */
    pthread_mutex_t mu; /* the loader's workers report from their threads */
    int open;           /* a bar is on screen without its newline */
    int steps;
    double t0, last;
};

/* quiet: this rank shows no progress (ranks > 0, --quiet); launched: started by mpirun or
 * srun, whose pipes look like a terminal but show no carriage return. */
void sn_console_init(struct sn_console *c, FILE *out, FILE *errs, int quiet, int launched);
void sn_console_free(struct sn_console *c);

/* A line of rank 0's output, on a line of its own (nothing when quiet). */
void sn_console_say(struct sn_console *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The loader's report of a skipped file (struct sn_loader_conf report, user = the console):
 * "shardnet: skipping MSG" on errs, from a worker thread. */
void sn_console_report(void *user, const char *msg);

/* The same report where there is no console (evaluate, extract): user is the FILE * to write
 * the line on. */
void sn_console_report_file(void *user, const char *msg);

/* A listing's note (a damaged file-list cache rebuilt, a cache folder that cannot be written:
 * dataset.h), if it has one, as "shardnet: note: NOTE" on errs; said (may be NULL) is a split
 * whose note was shown before: the same note is not said twice (a cache folder at fault is
 * named in the same words for every split). */
void sn_console_dataset_note(FILE *errs, const struct sn_dataset *ds,
                             const struct sn_dataset *said);

/* An epoch of `steps` steps starts, seconds_before of it already done (a resumed epoch). */
void sn_console_epoch(struct sn_console *c, int steps, double seconds_before);

/* Keras's " 469/782 [=====>......] - ETA: 5s - loss: 0.4521 - accuracy: 0.8345", or without a
 * terminal "  469/782 - 61s - loss: ..." once a minute. */
void sn_console_progress(struct sn_console *c, int done, double loss, double acc);

/* The epoch's line: "782/782 [====] - 95s 121ms/step - loss: ... - val_accuracy: 0.9023": the
 * epoch's seconds with validation, the training steps' time per step. */
void sn_console_epoch_line(struct sn_console *c, int done, double seconds, double train_seconds,
                           double loss, double acc, double val_loss, double val_acc);

#endif
