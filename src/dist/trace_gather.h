/* trace_gather.h — a trace (trace.h) over the whole job: started on every rank with the clocks
 * aligned, and gathered at the end into one Chrome-trace file written by rank 0.
 *
 * The file holds every rank's events (ranks are processes, lanes are threads: trace.h) and an
 * "otherData" summary: the ranks, the events, those dropped when a buffer filled, and whether
 * the recording was cut short. It is written atomically: a failed write leaves no file. */
#ifndef SN_TRACE_GATHER_H
#define SN_TRACE_GATHER_H

#include <stddef.h>
#include <stdio.h>

#include "dist.h"
#include "err.h"
#include "trace.h"

/* Every rank: allocates and pages in room for `capacity` events (0: SN_TRACE_DEFAULT_EVENTS),
 * agrees on the outcome, then aligns the clocks: a barrier on d (may be NULL: one process),
 * after which every rank takes its time zero. An error is every rank's (err->collective). */
int  sn_trace_start(struct sn_dist *d, size_t capacity, struct sn_err *err);

/* Every rank: stops recording, gathers the events to rank 0, which writes path atomically.
 * note (rank 0, may be NULL) receives "trace: N events of R ranks written to PATH" and, when a
 * buffer filled, which rank's and when. Frees the buffer whatever the outcome; an error is
 * every rank's (err->collective). */
int  sn_trace_finish(struct sn_dist *d, const char *path, FILE *note, struct sn_err *err);

#endif
