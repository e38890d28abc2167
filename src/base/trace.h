/* trace.h — the recorder of a Chrome-trace timeline (`--trace FILE`): what this rank did when, as
 * complete events in the Trace Event JSON format that Perfetto and chrome://tracing open.
 *
 * Each rank records into one buffer of events allocated and paged in before the first step
 * (sn_trace_alloc): a step neither allocates nor writes a file, and a full buffer stops the
 * recording (the file and the log say when) instead of growing. At the end the events are
 * formatted as this rank's part of the JSON text (sn_trace_format): ranks are processes
 * ("rank N"), lanes are threads — compute (epochs, steps, forward and backward per layer named
 * by the layer, the wait for the gradient exchange, the optimizer, validation, checkpoints), one
 * lane per allreduce bucket (from its start during backward to the moment this rank saw it
 * complete), and data (waits for the next batch). Starting a trace on every rank (a barrier
 * aligns the clocks) and gathering the parts into one file are the process group's:
 * trace_gather.h.
 *
 * The trace is process-wide, like a profiler: layers, buckets and the fit loop record into it
 * without a handle threaded through every struct. What the hot path reads is one global flag,
 * so that a run without --trace pays a predictable branch per event and nothing else.
 * Recording is for the thread that runs the steps (the one that calls MPI); it takes no lock. */
#ifndef SN_TRACE_H
#define SN_TRACE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"
#include "sys.h"

/* What an event is: its "cat", and the lane it is drawn in. */
enum sn_trace_cat {
    SN_TRACE_EPOCH = 0,  /* compute lane: a whole epoch, validation included */
    SN_TRACE_STEP,       /* compute: one training step (arg: the global step) */
    SN_TRACE_FORWARD,    /* compute: the forward pass, and each layer's (name: the layer's) */
    SN_TRACE_BACKWARD,   /* compute: the backward pass, and each layer's */
    SN_TRACE_SYNC,       /* compute: waiting for the gradient exchange and the step's sums */
    SN_TRACE_OPTIMIZER,  /* compute: the update */
    SN_TRACE_VALIDATION, /* compute: validation at the end of an epoch */
    SN_TRACE_CHECKPOINT, /* compute: a checkpoint written (detail: its path) */
    SN_TRACE_ALLREDUCE,  /* lane of bucket arg: its allreduce, started to seen complete */
    SN_TRACE_DATA,       /* data lane: waiting for the next batch */
    SN_TRACE_N_CATS
};

/* The one global the hot path reads: non-zero between sn_trace_start and sn_trace_finish. */
extern int sn_trace_on;

/* Allocates and pages in room for `capacity` events (0: SN_TRACE_DEFAULT_EVENTS); recording
 * starts with sn_trace_begin. Frees an earlier buffer first. */
#define SN_TRACE_DEFAULT_EVENTS (1 << 19)
int  sn_trace_alloc(size_t capacity, struct sn_err *err);
/* Takes now as this rank's time zero and turns recording on (needs a buffer). */
void sn_trace_begin(void);

/* Records an event [t0, t1] (sn_now() seconds). name must stay valid until sn_trace_finish:
 * a string literal, or a layer's name (the model outlives the trace). detail (may be NULL) is
 * copied while a small pool has room (a checkpoint's path), else left out. */
void sn_trace_record(enum sn_trace_cat cat, const char *name, const char *detail, int64_t arg,
                     double t0, double t1);

/* The start time of an event: sn_now() when tracing, else 0 (no clock read). */
static inline double sn_trace_clock(void)
{
    return __builtin_expect(sn_trace_on, 0) ? sn_now() : 0;
}

/* Records an event from t0 (sn_trace_clock()) to now; nothing when tracing is off. */
static inline void sn_trace_end(enum sn_trace_cat cat, const char *name, int64_t arg, double t0)
{
    if (__builtin_expect(sn_trace_on, 0))
        sn_trace_record(cat, name, NULL, arg, t0, sn_now());
}

/* Pauses (1) or resumes (0) the recording of a started trace, between steps (bench measures
 * what recording costs by alternating blocks of steps with and without it). */
void sn_trace_pause(int paused);

/* Events recorded so far on this rank. */
size_t sn_trace_count(void);

/* Seconds one event costs the thread that records it (its two clock reads and the store): the
 * best of several timed loops, which leave the buffer as it was. Needs a started trace with
 * room for 1024 events; 0 otherwise. */
double sn_trace_event_cost(void);

/* Checks, before any work, that path can be written (its directory exists and is writable):
 * creates and removes its temporary file. */
int  sn_trace_probe(const char *path, struct sn_err *err);

/* What this rank recorded, for the file's summary. */
struct sn_trace_stats {
    uint64_t recorded, dropped;
    double full_at; /* seconds after time zero when the buffer filled (0: it did not) */
};

/* Stops recording and formats this rank's events and lane names as JSON elements, each preceded
 * by ",\n", into *text (malloc'ed, *len bytes, not NUL-terminated; the caller frees it); rank and
 * host name the process. @return SN_OK or SN_ENOMEM (*text NULL). */
int  sn_trace_format(int rank, const char *host, char **text, size_t *len,
                     struct sn_trace_stats *stats, struct sn_err *err);

/* Frees the buffer without writing (a run that cannot gather: another rank failed). */
void sn_trace_free(void);

/* The name of a category ("forward", "allreduce", ...). */
const char *sn_trace_cat_name(enum sn_trace_cat cat);

#endif
