/* dist.c — the process group on MPI: init/finalize, the collectives training needs, a fatal abort
 * that takes every rank down, and a watchdog thread that turns a hang into a message with a name
 * (handed to the caller's handler) and an abort. It prints nothing.
 *
 * This is the only file that includes <mpi.h>. Threading contract: only the thread that called
 * sn_dist_init calls MPI (MPI_THREAD_FUNNELED). The one exception is the watchdog thread, which
 * calls MPI_Abort when a collective has hung; Open MPI 4.1 honours MPI_Abort from any thread
 * (it kills the job through the runtime, not through the communicator), and a SIGALRM backstop
 * ends this process should MPI_Abort itself ever hang.
 *
 * Every collective goes through our own duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN, so
 * a failure comes back as an sn_err ("MPI_Allreduce failed at step 42 on rank 1 (node7): ...")
 * instead of Open MPI's default abort. */
#include "dist.h"

#include <limits.h>  // defines: INT_MAX
#include <mpi.h>     // defines: MPI_Init_thread, MPI_Allreduce, MPI_Comm_split_type, MPI_Abort
#include <pthread.h> // defines: pthread_create, pthread_mutex_t, pthread_cond_timedwait
#include <stdio.h>   // defines: snprintf, fflush
#include <stdlib.h>  // defines: calloc, free, getenv
#include <string.h>  // defines: memset, snprintf
#include <time.h>    // defines: clock_gettime, nanosleep, CLOCK_MONOTONIC, CLOCK_REALTIME
#include <unistd.h>  // defines: alarm, _exit

#include "sys.h" // defines: sn_now

#define SN_DIST_MAX_REQ 64
/* Elements per MPI call: MPI counts are int, our sizes are size_t. */
#define SN_DIST_CHUNK ((size_t)1 << 30)

enum req_state { REQ_FREE = 0, REQ_PENDING, REQ_DONE, REQ_FAILED };

struct dist_impl {
    MPI_Comm comm;       /* owned: our duplicate of MPI_COMM_WORLD, errors return */
    int comm_valid;
    int we_initialized;  /* 1 if we called MPI_Init_thread, so finalize must call MPI_Finalize */
    int64_t step;        /* shown in error messages; main thread only */

    MPI_Request reqs[SN_DIST_MAX_REQ];
    int req_state[SN_DIST_MAX_REQ];
    int req_rc[SN_DIST_MAX_REQ]; /* MPI error code of a REQ_FAILED request */

    /* Watchdog: shared between the main thread and the watchdog thread, under mu. */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;            /* finalize asks the thread to exit */
    double limit;        /* seconds; 0 = off */
    const char *op;      /* collective in progress (static string) or NULL */
    double op_start;     /* sn_now() when op began */
    int64_t op_step;
    int rank;            /* copies, so the thread never reads struct sn_dist */
    char host[64];
    sn_dist_watchdog_fn on_hang; /* the caller's handler, or NULL */
    void *on_hang_user;
};

/* Ends every rank of the job from any thread. Never returns. */
static void abort_job(int code) __attribute__((noreturn));
static void abort_job(int code)
{
    fflush(NULL); /* MPI_Abort and _exit leave stdio buffers unwritten */
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (inited && !finalized) {
        /* Backstop: if MPI_Abort does not end us within 10 s, SIGALRM's default action does, and
         * mpirun then kills the other ranks because this one died on a signal. */
        alarm(10);
        MPI_Abort(MPI_COMM_WORLD, code);
    }
    _exit(code);
}

void sn_dist_abort(struct sn_dist *d, int code)
{
    (void)d; /* MPI_Abort ends MPI_COMM_WORLD, whichever group d is */
    if (code == 0)
        code = 1; /* an abort is a failure; the exit code must say so */
    abort_job(code);
}

/* ---- watchdog ------------------------------------------------------------------------------ */

static void *watchdog_main(void *arg)
{
    struct dist_impl *im = arg;
    pthread_mutex_lock(&im->mu);
    while (!im->stop) {
        /* Wake every 0.5 s: fine enough for limits of seconds, cheap enough to leave on. The
         * condition variable uses CLOCK_REALTIME; only the wake-up uses it, ages use MONOTONIC. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 500000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec += 1;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&im->cv, &im->mu, &ts);
        if (im->stop || im->op == NULL || im->limit <= 0)
            continue;
        double waited = sn_now() - im->op_start;
        if (waited > im->limit) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "rank %d (%s) has waited %.0f s in %s at step %lld — another rank is stuck "
                     "or dead",
                     im->rank, im->host, waited, im->op, (long long)im->op_step);
            sn_dist_watchdog_fn fn = im->on_hang;
            void *user = im->on_hang_user;
            /* unlocked: the handler may take its time to print while the main thread, still in
               its collective, leaves it alone */
            pthread_mutex_unlock(&im->mu);
            if (fn)
                fn(msg, user);
            abort_job(SN_DIST_PEER_LOST_EXIT); /* no handler, or one that returned */
        }
    }
    pthread_mutex_unlock(&im->mu);
    return NULL;
}

static void watch_begin(struct dist_impl *im, const char *op)
{
    pthread_mutex_lock(&im->mu);
    im->op = op;
    im->op_start = sn_now();
    im->op_step = im->step;
    pthread_mutex_unlock(&im->mu);
}

static void watch_end(struct dist_impl *im)
{
    pthread_mutex_lock(&im->mu);
    im->op = NULL;
    pthread_mutex_unlock(&im->mu);
}

void sn_dist_set_watchdog(struct sn_dist *d, double seconds)
{
    struct dist_impl *im = d->impl;
    if (im == NULL)
        return;
    pthread_mutex_lock(&im->mu);
    im->limit = seconds > 0 ? seconds : 0;
    pthread_mutex_unlock(&im->mu);
}

void sn_dist_set_watchdog_handler(struct sn_dist *d, sn_dist_watchdog_fn fn, void *user)
{
    struct dist_impl *im = d->impl;
    if (im == NULL)
        return;
    pthread_mutex_lock(&im->mu);
    im->on_hang = fn;
    im->on_hang_user = user;
    pthread_mutex_unlock(&im->mu);
}

void sn_dist_set_step(struct sn_dist *d, int64_t step)
{
    struct dist_impl *im = d->impl;
    if (im != NULL)
        im->step = step;
}

/* ---- init / finalize ----------------------------------------------------------------------- */

/* Turns an MPI error code into an sn_err naming the call, step, rank and host. @return SN_EMPI */
static int mpi_fail(const struct sn_dist *d, struct sn_err *err, int rc, const char *op)
{
    char s[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, s, &len) != MPI_SUCCESS)
        snprintf(s, sizeof s, "MPI error code %d", rc);
    const struct dist_impl *im = d->impl;
    return sn_err_set(err, SN_EMPI, "%s failed at step %lld on rank %d (%s): %s", op,
                      im ? (long long)im->step : 0LL, d->rank, d->host, s);
}

int sn_dist_init(struct sn_dist *d, int *argc, char ***argv, struct sn_err *err)
{
    memset(d, 0, sizeof *d);
    d->world = 1;
    d->local_size = 1;

    struct dist_impl *im = calloc(1, sizeof *im);
    SN_RETURN_IF(im == NULL, err, SN_ENOMEM, "dist: out of memory for the process group");
    im->comm = MPI_COMM_NULL;
    pthread_mutex_init(&im->mu, NULL);
    pthread_cond_init(&im->cv, NULL);
    d->impl = im;

    /* read before MPI_Init: a singleton start sets the same variables for itself */
    d->launched = getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("SLURM_PROCID");
    int inited = 0, provided = MPI_THREAD_SINGLE, rc;
    MPI_Initialized(&inited);
    if (!inited) {
        /* Failure here is fatal in MPI itself (no error handler exists yet). */
        rc = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
        if (rc != MPI_SUCCESS) {
            sn_dist_finalize(d);
            return sn_err_set(err, SN_EMPI, "MPI_Init_thread failed (code %d)", rc);
        }
        im->we_initialized = 1;
    } else {
        MPI_Query_thread(&provided);
    }
    if (provided < MPI_THREAD_FUNNELED) {
        sn_dist_finalize(d);
        return sn_err_set(err, SN_EMPI,
                          "MPI provides thread level %d, shardnet needs MPI_THREAD_FUNNELED (%d): "
                          "the data loader runs threads. HINT: use an MPI built with threads",
                          provided, MPI_THREAD_FUNNELED);
    }

    rc = MPI_Comm_dup(MPI_COMM_WORLD, &im->comm);
    if (rc != MPI_SUCCESS) {
        sn_dist_finalize(d);
        return sn_err_set(err, SN_EMPI, "MPI_Comm_dup of MPI_COMM_WORLD failed (code %d)", rc);
    }
    im->comm_valid = 1;
    MPI_Comm_set_errhandler(im->comm, MPI_ERRORS_RETURN);
    MPI_Comm_rank(im->comm, &d->rank);
    MPI_Comm_size(im->comm, &d->world);

    char name[MPI_MAX_PROCESSOR_NAME];
    int nlen = 0;
    memset(name, 0, sizeof name);
    if (MPI_Get_processor_name(name, &nlen) != MPI_SUCCESS)
        snprintf(name, sizeof name, "unknown");
    name[sizeof d->host - 1] = '\0'; /* a longer host name is cut, not an error */
    memcpy(d->host, name, sizeof d->host);

    MPI_Comm shm = MPI_COMM_NULL;
    rc = MPI_Comm_split_type(im->comm, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &shm);
    if (rc != MPI_SUCCESS) {
        int r = mpi_fail(d, err, rc, "MPI_Comm_split_type");
        sn_dist_finalize(d);
        return r;
    }
    MPI_Comm_rank(shm, &d->local_rank);
    MPI_Comm_size(shm, &d->local_size);
    MPI_Comm_free(&shm);

    im->rank = d->rank;
    snprintf(im->host, sizeof im->host, "%s", d->host);
    /* The thread starts now (disarmed) so that arming it later cannot fail. */
    if (pthread_create(&im->thread, NULL, watchdog_main, im) != 0) {
        sn_dist_finalize(d);
        return sn_err_set(err, SN_EMPI, "dist: could not start the watchdog thread");
    }
    im->thread_started = 1;
    return SN_OK;
}

void sn_dist_finalize(struct sn_dist *d)
{
    if (d == NULL || d->impl == NULL)
        return;
    struct dist_impl *im = d->impl;
    if (im->thread_started) {
        pthread_mutex_lock(&im->mu);
        im->stop = 1;
        pthread_cond_signal(&im->cv);
        pthread_mutex_unlock(&im->mu);
        pthread_join(im->thread, NULL);
    }
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) {
        /* A request never waited for cannot be cancelled (collectives); wait it out so that
         * MPI_Finalize does not hang or complain. Every rank started the same collectives. */
        for (int i = 0; i < SN_DIST_MAX_REQ; i++)
            if (im->req_state[i] == REQ_PENDING)
                MPI_Wait(&im->reqs[i], MPI_STATUS_IGNORE);
        if (im->comm_valid)
            MPI_Comm_free(&im->comm);
        if (im->we_initialized)
            MPI_Finalize();
    }
    pthread_cond_destroy(&im->cv);
    pthread_mutex_destroy(&im->mu);
    free(im);
    d->impl = NULL;
}

/* ---- collectives --------------------------------------------------------------------------- */

static int allreduce_sum_typed(struct sn_dist *d, void *buf, size_t n, size_t elem,
                               MPI_Datatype type, struct sn_err *err)
{
    struct dist_impl *im = d->impl;
    SN_RETURN_IF(im == NULL, err, SN_EINVAL, "dist: allreduce before sn_dist_init");
    watch_begin(im, "MPI_Allreduce");
    for (size_t off = 0; off < n; off += SN_DIST_CHUNK) {
        size_t cnt = n - off < SN_DIST_CHUNK ? n - off : SN_DIST_CHUNK;
        int rc = MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * elem, (int)cnt, type, MPI_SUM,
                               im->comm);
        if (rc != MPI_SUCCESS) {
            watch_end(im);
            return mpi_fail(d, err, rc, "MPI_Allreduce");
        }
    }
    watch_end(im);
    return SN_OK;
}

int sn_dist_allreduce_sum(struct sn_dist *d, float *buf, size_t n, struct sn_err *err)
{
    return allreduce_sum_typed(d, buf, n, sizeof(float), MPI_FLOAT, err);
}

int sn_dist_allreduce_sum_f64(struct sn_dist *d, double *buf, size_t n, struct sn_err *err)
{
    return allreduce_sum_typed(d, buf, n, sizeof(double), MPI_DOUBLE, err);
}

/* A non-blocking in-place allreduce of n elements of type t with op. */
static int iallreduce_typed(struct sn_dist *d, void *buf, size_t n, MPI_Datatype t, MPI_Op op,
                            const char *what, int *req, struct sn_err *err)
{
    struct dist_impl *im = d->impl;
    *req = -1;
    SN_RETURN_IF(im == NULL, err, SN_EINVAL, "dist: iallreduce before sn_dist_init");
    SN_RETURN_IF(n > (size_t)INT_MAX, err, SN_EINVAL,
                 "dist: iallreduce of %zu %s exceeds one MPI call; HINT: split the bucket", n,
                 what);
    int slot = -1;
    for (int i = 0; i < SN_DIST_MAX_REQ && slot < 0; i++)
        if (im->req_state[i] == REQ_FREE)
            slot = i;
    SN_RETURN_IF(slot < 0, err, SN_EINVAL,
                 "dist: %d non-blocking allreduces already in flight; HINT: sn_dist_wait each "
                 "request before starting more",
                 SN_DIST_MAX_REQ);
    int rc = MPI_Iallreduce(MPI_IN_PLACE, buf, (int)n, t, op, im->comm, &im->reqs[slot]);
    if (rc != MPI_SUCCESS)
        return mpi_fail(d, err, rc, "MPI_Iallreduce");
    im->req_state[slot] = REQ_PENDING;
    *req = slot;
    return SN_OK;
}

int sn_dist_iallreduce_sum(struct sn_dist *d, float *buf, size_t n, int *req, struct sn_err *err)
{
    return iallreduce_typed(d, buf, n, MPI_FLOAT, MPI_SUM, "floats", req, err);
}

int sn_dist_iallreduce_sum_i64(struct sn_dist *d, int64_t *buf, size_t n, int *req,
                               struct sn_err *err)
{
    return iallreduce_typed(d, buf, n, MPI_INT64_T, MPI_SUM, "integers", req, err);
}

int sn_dist_iallreduce_max_int(struct sn_dist *d, int *buf, size_t n, int *req,
                               struct sn_err *err)
{
    return iallreduce_typed(d, buf, n, MPI_INT, MPI_MAX, "integers", req, err);
}

int sn_dist_test(struct sn_dist *d, int req)
{
    struct dist_impl *im = d->impl;
    if (im == NULL || req < 0 || req >= SN_DIST_MAX_REQ || im->req_state[req] == REQ_FREE)
        return 1; /* nothing to wait for; sn_dist_wait reports the misuse */
    if (im->req_state[req] != REQ_PENDING)
        return 1;
    int flag = 0;
    int rc = MPI_Test(&im->reqs[req], &flag, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) {
        im->req_state[req] = REQ_FAILED;
        im->req_rc[req] = rc;
        return 1;
    }
    if (flag)
        im->req_state[req] = REQ_DONE;
    return flag;
}

int sn_dist_wait(struct sn_dist *d, int req, struct sn_err *err)
{
    struct dist_impl *im = d->impl;
    SN_RETURN_IF(im == NULL, err, SN_EINVAL, "dist: wait before sn_dist_init");
    SN_RETURN_IF(req < 0 || req >= SN_DIST_MAX_REQ || im->req_state[req] == REQ_FREE, err,
                 SN_EINVAL, "dist: wait on request %d, which is not in flight", req);
    int rc = MPI_SUCCESS;
    if (im->req_state[req] == REQ_PENDING) {
        watch_begin(im, "MPI_Wait (Iallreduce)");
        rc = MPI_Wait(&im->reqs[req], MPI_STATUS_IGNORE);
        watch_end(im);
    } else if (im->req_state[req] == REQ_FAILED) {
        rc = im->req_rc[req];
    }
    im->req_state[req] = REQ_FREE;
    if (rc != MPI_SUCCESS)
        return mpi_fail(d, err, rc, "MPI_Iallreduce");
    return SN_OK;
}

int sn_dist_bcast(struct sn_dist *d, void *buf, size_t bytes, int root, struct sn_err *err)
{
    struct dist_impl *im = d->impl;
    SN_RETURN_IF(im == NULL, err, SN_EINVAL, "dist: bcast before sn_dist_init");
    SN_RETURN_IF(root < 0 || root >= d->world, err, SN_EINVAL,
                 "dist: bcast root %d outside 0..%d", root, d->world - 1);
    watch_begin(im, "MPI_Bcast");
    for (size_t off = 0; off < bytes; off += SN_DIST_CHUNK) {
        size_t cnt = bytes - off < SN_DIST_CHUNK ? bytes - off : SN_DIST_CHUNK;
        int rc = MPI_Bcast((char *)buf + off, (int)cnt, MPI_BYTE, root, im->comm);
        if (rc != MPI_SUCCESS) {
            watch_end(im);
            return mpi_fail(d, err, rc, "MPI_Bcast");
        }
    }
    watch_end(im);
    return SN_OK;
}

int sn_dist_barrier(struct sn_dist *d, struct sn_err *err)
{
    struct dist_impl *im = d->impl;
    SN_RETURN_IF(im == NULL, err, SN_EINVAL, "dist: barrier before sn_dist_init");
    watch_begin(im, "MPI_Barrier");
    int rc = MPI_Barrier(im->comm);
    watch_end(im);
    if (rc != MPI_SUCCESS)
        return mpi_fail(d, err, rc, "MPI_Barrier");
    return SN_OK;
}

int sn_dist_barrier_idle(struct sn_dist *d, struct sn_err *err)
{
    struct dist_impl *im = d->impl;
    SN_RETURN_IF(im == NULL, err, SN_EINVAL, "dist: barrier before sn_dist_init");
    watch_begin(im, "MPI_Ibarrier");
    MPI_Request req;
    int rc = MPI_Ibarrier(im->comm, &req), done = 0;
    while (rc == MPI_SUCCESS && !done) {
        rc = MPI_Test(&req, &done, MPI_STATUS_IGNORE);
        if (rc == MPI_SUCCESS && !done)
            nanosleep(&(struct timespec){.tv_nsec = 100000}, NULL);
    }
    watch_end(im);
    if (rc != MPI_SUCCESS)
        return mpi_fail(d, err, rc, "MPI_Ibarrier");
    return SN_OK;
}

int sn_dist_gatherv(struct sn_dist *d, const void *in, size_t bytes, void *out,
                    const size_t *counts, struct sn_err *err)
{
    struct dist_impl *im = d->impl;
    SN_RETURN_IF(im == NULL, err, SN_EINVAL, "dist: gatherv before sn_dist_init");
    int *rc_counts = NULL, *displs = NULL;
    if (d->rank == 0) {
        rc_counts = calloc((size_t)d->world, sizeof *rc_counts);
        displs = calloc((size_t)d->world, sizeof *displs);
        size_t off = 0;
        for (int r = 0; rc_counts && displs && r < d->world; r++) {
            if (counts[r] > (size_t)INT_MAX || off > (size_t)INT_MAX) {
                free(rc_counts);
                free(displs);
                return sn_err_set(err, SN_EINVAL, "dist: gatherv of more than 2 GB");
            }
            rc_counts[r] = (int)counts[r];
            displs[r] = (int)off;
            off += counts[r];
        }
        if (!rc_counts || !displs) {
            free(rc_counts);
            free(displs);
            return sn_err_set(err, SN_ENOMEM, "out of memory");
        }
    }
    SN_RETURN_IF(bytes > (size_t)INT_MAX, err, SN_EINVAL, "dist: gatherv of more than 2 GB");
    watch_begin(im, "MPI_Gatherv");
    int rc = MPI_Gatherv(in, (int)bytes, MPI_BYTE, out, rc_counts, displs, MPI_BYTE, 0, im->comm);
    watch_end(im);
    free(rc_counts);
    free(displs);
    if (rc != MPI_SUCCESS)
        return mpi_fail(d, err, rc, "MPI_Gatherv");
    return SN_OK;
}

int sn_dist_allgather(struct sn_dist *d, const void *in, void *out, size_t bytes,
                      struct sn_err *err)
{
    struct dist_impl *im = d->impl;
    SN_RETURN_IF(im == NULL, err, SN_EINVAL, "dist: allgather before sn_dist_init");
    SN_RETURN_IF(bytes > (size_t)INT_MAX, err, SN_EINVAL,
                 "dist: allgather of %zu bytes per rank exceeds one MPI call", bytes);
    watch_begin(im, "MPI_Allgather");
    int rc = MPI_Allgather(in, (int)bytes, MPI_BYTE, out, (int)bytes, MPI_BYTE, im->comm);
    watch_end(im);
    if (rc != MPI_SUCCESS)
        return mpi_fail(d, err, rc, "MPI_Allgather");
    return SN_OK;
}

int sn_dist_allreduce_max_int(struct sn_dist *d, int *v, struct sn_err *err)
{
    struct dist_impl *im = d->impl;
    SN_RETURN_IF(im == NULL, err, SN_EINVAL, "dist: allreduce before sn_dist_init");
    watch_begin(im, "MPI_Allreduce (max)");
    int rc = MPI_Allreduce(MPI_IN_PLACE, v, 1, MPI_INT, MPI_MAX, im->comm);
    watch_end(im);
    if (rc != MPI_SUCCESS)
        return mpi_fail(d, err, rc, "MPI_Allreduce (max)");
    return SN_OK;
}
