/* threads.h — how many compute threads a rank runs, decided in one place for every command.
 *
 * The first that is set, in this order:
 *   1. [train] threads (the config: it travels with the run);
 *   2. $SN_THREADS (what `shardnet-run --threads` exports);
 *   3. $OMP_NUM_THREADS (what job scripts set, SLURM's cpus-per-task; "4,2" counts as 4);
 *   4. $OPENBLAS_NUM_THREADS;
 *   5. the CPUs this process may run on, shared among the ranks of its node: a rank bound to
 *      one core gets one thread, unbound ranks split the node's cores.
 * Each variable, when set, must be a whole number from 1 to 1024 (an error naming it
 * otherwise, even where something above it wins: it is a mistake in the job's environment
 * either way). Both backends take the number (OpenBLAS's threads and oneDNN's OpenMP threads),
 * so a variable below the one that wins is overridden: the note says so, and says when the
 * threads exceed the CPUs the rank is bound to (two threads on one core run at half speed),
 * with the fix. */
#ifndef SN_THREADS_H
#define SN_THREADS_H

#include <stddef.h>

#include "dist.h"
#include "err.h"

struct sn_threads {
    int threads;        /* compute threads of this rank */
    const char *source; /* what set them: "[train] threads", "SN_THREADS", "OMP_NUM_THREADS",
                           "OPENBLAS_NUM_THREADS" or "the CPUs" (static) */
    int ncpu;           /* CPUs this process may run on (0: unknown) */
    char cpus[96];      /* the same as a list, "0-3,8": for the start line ("" unknown) */
    char note[480];     /* "" or sentences for the start line: variables set but overridden,
                           more threads than CPUs and the fix */
};

/* Decides this rank's threads (d NULL: a process alone on its node) and sets every backend's
 * to it. configured: [train] threads (0 = not set). */
int sn_threads_apply(int configured, const struct sn_dist *d, struct sn_threads *t,
                     struct sn_err *err);

#endif
