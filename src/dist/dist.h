/* dist.h — the process group: MPI behind a small interface. Only dist.c includes <mpi.h>.
 *
 * Works without mpirun (singleton init: one rank). Every collective here is either completed on
 * every rank or fails the whole job: a caller whose rank hits a fatal error says why, then calls
 * sn_dist_abort(), which brings every rank down (MPI_Abort), so no rank is left waiting. A
 * watchdog thread notices a rank that has not finished a collective after `watchdog_seconds`
 * and hands a message naming the rank, the collective and the step to the caller's handler,
 * which ends the job. Like the rest of the library, this module prints nothing. */
#ifndef SN_DIST_H
#define SN_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

struct sn_dist {
    int rank, world;
    int local_rank, local_size; /* ranks on this node */
    int launched;               /* started by a launcher (mpirun, srun), not a lone process */
    char host[64];
    void *impl;                 /* owned: communicator, watchdog state */
};

int  sn_dist_init(struct sn_dist *d, int *argc, char ***argv, struct sn_err *err);
void sn_dist_finalize(struct sn_dist *d);

/* Exit code of a job ended because a rank was lost: the watchdog found one stuck, or a
 * collective failed (mpirun and srun report it as the job's). Distinct from 75 (stopped on
 * request, resumable), so that a requeue loop never restarts into the same hang. */
#define SN_DIST_PEER_LOST_EXIT 76

/* Arms the watchdog: a collective that takes longer than seconds ends the job (0 = off).
 * The thread wakes every 0.5 s, so the end comes between `seconds` and `seconds` + 0.5 s: it
 * calls the handler (sn_dist_set_watchdog_handler) with "rank R (host) has waited N s in
 * MPI_Allreduce at step S — another rank is stuck or dead". Without a handler, or should the
 * handler return, it ends every rank with SN_DIST_PEER_LOST_EXIT and says nothing. */
void sn_dist_set_watchdog(struct sn_dist *d, double seconds);
/* What the watchdog does when it fires. Called on the watchdog thread, with nothing locked, at
 * most once per process; msg is the text above (no prefix, no newline). It must not return: it
 * says what it will about msg, then calls sn_dist_abort (the process's one way out that takes
 * the other ranks along). It must not call any other function of this module. */
typedef void (*sn_dist_watchdog_fn)(const char *msg, void *user);
/* Installs fn (NULL: none, the silent end above) with its argument user (not owned; it must
 * outlive the process group). Call after sn_dist_init; safe while the watchdog is armed. */
void sn_dist_set_watchdog_handler(struct sn_dist *d, sn_dist_watchdog_fn fn, void *user);
/* The step shown in watchdog messages. */
void sn_dist_set_step(struct sn_dist *d, int64_t step);

/* In-place sum over ranks. */
int  sn_dist_allreduce_sum(struct sn_dist *d, float *buf, size_t n, struct sn_err *err);
int  sn_dist_allreduce_sum_f64(struct sn_dist *d, double *buf, size_t n, struct sn_err *err);
/* Non-blocking in-place sum; returns a request handle index (>= 0). Poll with test, finish with wait.
 * At most 64 requests are in flight; each must be finished with sn_dist_wait, which frees it.
 * Open MPI makes no progress on it unless this rank calls sn_dist_test (or wait). */
int  sn_dist_iallreduce_sum(struct sn_dist *d, float *buf, size_t n, int *req, struct sn_err *err);
/* The same on int64 (sums of integers are exact: any order, any tree gives the same bits) and
 * a maximum of ints, for the exact gradient exchange (gradsync.h). */
int  sn_dist_iallreduce_sum_i64(struct sn_dist *d, int64_t *buf, size_t n, int *req,
                                struct sn_err *err);
int  sn_dist_iallreduce_max_int(struct sn_dist *d, int *buf, size_t n, int *req,
                                struct sn_err *err);
int  sn_dist_test(struct sn_dist *d, int req);  /* 1 when done (or failed: wait says); drives progress */
int  sn_dist_wait(struct sn_dist *d, int req, struct sn_err *err);
int  sn_dist_bcast(struct sn_dist *d, void *buf, size_t bytes, int root, struct sn_err *err);
int  sn_dist_barrier(struct sn_dist *d, struct sn_err *err);
/* A barrier whose waiting ranks sleep (0.1 ms between polls) instead of spinning, so that they
 * leave their cores and the memory system to the ranks still working. */
int  sn_dist_barrier_idle(struct sn_dist *d, struct sn_err *err);
/* Gathers `bytes` from each rank into out (world * bytes) on every rank. */
int  sn_dist_allgather(struct sn_dist *d, const void *in, void *out, size_t bytes,
                       struct sn_err *err);
/* Gathers `bytes` from each rank into out on rank 0, rank after rank; counts (on rank 0) holds
 * each rank's byte count (every rank passes its own bytes). out and counts are ignored elsewhere. */
int  sn_dist_gatherv(struct sn_dist *d, const void *in, size_t bytes, void *out,
                     const size_t *counts, struct sn_err *err);
/* Max over ranks of an int (used to agree on failure flags). */
int  sn_dist_allreduce_max_int(struct sn_dist *d, int *v, struct sn_err *err);

/* Ends every rank of the job with exit code `code` (0 is turned into 1): MPI_Abort, and should
 * that hang for 10 s, SIGALRM's default action (mpirun then ends the others). Flushes every
 * stdio stream first, and prints nothing: the caller says why before calling it. Callable from
 * any thread, before init and after a failed init (d may be NULL). Never returns. */
void sn_dist_abort(struct sn_dist *d, int code) __attribute__((noreturn));

#endif
