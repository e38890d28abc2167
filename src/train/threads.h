/* threads.h — how many compute threads a rank runs, decided in one place for every command.
 *
 * [train] threads when it is set; else $SN_THREADS (what `shardnet-run --threads` exports; a
 * value that is not a whole number from 1 to 1024 is an error naming it); else the CPUs this
 * process may run on, shared among the ranks of its node: a rank bound to one core gets one
 * thread, unbound ranks split the node's cores. Both backends take the number (OpenBLAS's
 * threads and oneDNN's OpenMP threads). */
#ifndef SN_THREADS_H
#define SN_THREADS_H

#include <stddef.h>

#include "dist.h"
#include "err.h"

struct sn_threads {
    int threads;    /* compute threads of this rank */
    int ncpu;       /* CPUs this process may run on (0: unknown) */
    char cpus[96];  /* the same as a list, "0-3,8": for the start line ("" unknown) */
};

/* Decides this rank's threads (d NULL: a process alone on its node) and sets every backend's
 * to it. configured: [train] threads (0 = not set). */
int sn_threads_apply(int configured, const struct sn_dist *d, struct sn_threads *t,
                     struct sn_err *err);

#endif
