/* threads.c — the thread policy of threads.h. */
#define _GNU_SOURCE // sched_getaffinity
#include "threads.h"

#include <sched.h>  // defines: sched_getaffinity, cpu_set_t, CPU_ISSET, CPU_SETSIZE
#include <stdio.h>  // defines: snprintf
#include <stdlib.h> // defines: getenv, strtol
#include <string.h> // defines: memset, strlen, strcmp

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

/* The variables that may set the threads, in their order (after [train] threads). */
static const char *const vars[] = {"SN_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"};
#define N_VARS 3

/* The number $name holds (OMP_NUM_THREADS may list one per nesting level: its first), or 0
 * when unset. @return SN_OK, or an error naming the variable */
static int env_threads(const char *name, int *out, struct sn_err *err)
{
    const char *env = getenv(name);
    *out = 0;
    if (env == NULL)
        return SN_OK;
    char *end;
    long v = strtol(env, &end, 10);
    int list = strcmp(name, "OMP_NUM_THREADS") == 0 && *end == ',' && end > env;
    SN_RETURN_IF(*env == '\0' || (*end != '\0' && !list) || v < 1 || v > 1024, err, SN_EINVAL,
                 "%s=%s: expected a number of threads from 1 to 1024", name, env);
    *out = (int)v;
    return SN_OK;
}

static void add_note(struct sn_threads *t, const char *text)
{
    size_t len = strlen(t->note);
    snprintf(t->note + len, sizeof t->note - len, "%s%s", len ? "; " : "", text);
}

int sn_threads_apply(int configured, const struct sn_dist *d, struct sn_threads *t,
                     struct sn_err *err)
{
    memset(t, 0, sizeof *t);
    affinity(t);
    int value[N_VARS];
    for (int i = 0; i < N_VARS; i++)
        SN_FORWARD(env_threads(vars[i], &value[i], err));
    int threads = configured;
    t->source = "[train] threads";
    for (int i = 0; i < N_VARS && threads == 0; i++)
        if (value[i] > 0) {
            threads = value[i];
            t->source = vars[i];
        }
    if (threads == 0) {
        /* ranks bound to one core each get 1; unbound ranks share the node's cores */
        int local = d ? d->local_size : 1;
        int node_cpus = t->ncpu > 0 ? t->ncpu : 1;
        threads = t->ncpu < local * 2 && t->ncpu <= 1 ? 1 : node_cpus / local;
        if (threads < 1)
            threads = 1;
        t->source = "the CPUs";
    }
    /* a variable the user set that does not count: say so, and why */
    char line[320];
    for (int i = 0; i < N_VARS; i++)
        if (value[i] > 0 && value[i] != threads) {
            snprintf(line, sizeof line, "%s=%d not used: %s comes first", vars[i], value[i],
                     t->source);
            add_note(t, line);
        }
    /* more threads than CPUs: mpirun binds each rank to one core by default (2 ranks or
       fewer), so SN_THREADS=2 ran two threads on one core */
    if (t->ncpu > 0 && threads > t->ncpu) {
        snprintf(line, sizeof line,
                 "%d compute threads on %d CPU%s (%s): they take turns; HINT: mpirun --bind-to "
                 "none or --map-by slot:PE=%d, or shardnet-run --threads %d",
                 threads, t->ncpu, t->ncpu > 1 ? "s" : "", t->cpus, threads, threads);
        add_note(t, line);
    }
    t->threads = threads;
    sn_ops_set_threads(threads);
    return SN_OK;
}
