/* threads.c — the thread policy of threads.h. */
#define _GNU_SOURCE // sched_getaffinity
#include "threads.h"

#include <sched.h>  // defines: sched_getaffinity, cpu_set_t, CPU_ISSET, CPU_SETSIZE
#include <stdio.h>  // defines: snprintf
#include <stdlib.h> // defines: getenv, strtol
#include <string.h> // defines: memset

#include "ops.h" // defines: sn_ops_set_threads

/* The CPUs this process may run on: their number, and as a list into t->cpus. */
static void affinity(struct sn_threads *t)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0)
        return;
    int first = -1, last = -2, len = 0;
    for (int c = 0; c <= CPU_SETSIZE; c++) {
        int in = c < CPU_SETSIZE && CPU_ISSET(c, &set);
        t->ncpu += in;
        if (in && c == last + 1) {
            last = c;
            continue;
        }
        if (first >= 0 && len < (int)sizeof t->cpus - 16)
            len += snprintf(t->cpus + len, sizeof t->cpus - len, "%s%d%s%.0d", len ? "," : "",
                            first, last > first ? "-" : "", last > first ? last : 0);
        if (in)
            first = last = c;
        else
            first = -1, last = -2;
    }
}

int sn_threads_apply(int configured, const struct sn_dist *d, struct sn_threads *t,
                     struct sn_err *err)
{
    memset(t, 0, sizeof *t);
    affinity(t);
    /* a value that does not parse is an error even where [train] threads wins: it is a
       mistake in the job's environment either way */
    int threads = configured;
    const char *env = getenv("SN_THREADS");
    if (env) {
        char *end;
        long v = strtol(env, &end, 10);
        SN_RETURN_IF(*env == '\0' || *end != '\0' || v < 1 || v > 1024, err, SN_EINVAL,
                     "SN_THREADS=%s: expected a number of threads from 1 to 1024", env);
        if (threads == 0)
            threads = (int)v;
    }
    if (threads == 0) {
        /* ranks bound to one core each get 1; unbound ranks share the node's cores */
        int local = d ? d->local_size : 1;
        int node_cpus = t->ncpu > 0 ? t->ncpu : 1;
        threads = t->ncpu < local * 2 && t->ncpu <= 1 ? 1 : node_cpus / local;
        if (threads < 1)
            threads = 1;
    }
    t->threads = threads;
    sn_ops_set_threads(threads);
    return SN_OK;
}
