/* timeline.h — `shardnet timeline`: one training step of a --trace file (trace.h) drawn as a PNG,
 * for a README or a report where no Perfetto is at hand.
 *
 * Every rank is a band; inside it, lanes: compute (the step, then forward / backward / gradient
 * sync / optimizer, then each layer, as nested rows), one thin row per allreduce bucket (from its
 * start during backward to its completion) and data (the wait for the batch). The time axis is
 * in milliseconds from the first rank's start of the step; a label is written where it fits.
 * Reads any Trace Event JSON whose steps are complete events of cat "step" with args.step, as
 * shardnet writes them. */
#ifndef SN_TIMELINE_H
#define SN_TIMELINE_H

#include "err.h"

struct sn_timeline_info {
    long long step;  /* the step drawn */
    int ranks;       /* processes drawn */
    double ms;       /* the span drawn */
};

/* Draws step `step` (< 0: the middle one of the steps every rank recorded) of the trace at
 * trace_path into png_path (written atomically). Errors name the file and what is wrong: not
 * JSON (with line and column), no traceEvents, no steps, no such step (with the range). */
int sn_timeline_render(const char *trace_path, const char *png_path, long long step,
                       struct sn_timeline_info *info, struct sn_err *err);

#endif
