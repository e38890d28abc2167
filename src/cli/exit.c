/* exit.c — what an error means for the process: its message on stderr and the exit status, the
 * end of an MPI job (cleanly on every rank, or by aborting it when one rank alone failed), the
 * watchdog's message, and the stop signals. The library returns errors; this file decides. */
#include "cli_internal.h"

#include <signal.h> // defines: sigaction, sig_atomic_t
#include <stdio.h>  // defines: fprintf
#include <string.h> // defines: memset

int cli_report(const struct sn_err *err)
{
    fprintf(stderr, "shardnet: error: %s\n", err->msg);
    return SN_EXIT_ERROR;
}

int cli_finish_dist(struct sn_dist *d, int rc, const struct sn_err *err)
{
    if (rc == SN_OK) {
        sn_dist_finalize(d);
        return SN_EXIT_DONE;
    }
    if (err->collective || d->world == 1) {
        if (err->msg[0] && d->world > 1)
            fprintf(stderr, "shardnet: %s (rank %d): %s\n", rc == SN_ESTOP ? "stopped" : "error",
                    d->rank, err->msg);
        else if (err->msg[0])
            fprintf(stderr, "shardnet: %s: %s\n", rc == SN_ESTOP ? "stopped" : "error", err->msg);
        sn_dist_finalize(d);
        return rc == SN_ESTOP ? SN_EXIT_RESUMABLE : SN_EXIT_ERROR;
    }
    /* one rank's failure: the others may be waiting for it in a collective */
    fprintf(stderr, "shardnet: rank %d (%s): %s\n", d->rank, d->host, err->msg);
    sn_dist_abort(d, rc == SN_EMPI ? SN_DIST_PEER_LOST_EXIT : SN_EXIT_ERROR);
}

/* Runs on the watchdog thread: stderr is unbuffered, so the line is out before the abort. */
static void on_hang(const char *msg, void *user)
{
    fprintf(stderr, "shardnet: %s\n", msg);
    sn_dist_abort(user, SN_DIST_PEER_LOST_EXIT);
}

void cli_watch_dist(struct sn_dist *d) { sn_dist_set_watchdog_handler(d, on_hang, d); }

/* The one piece of process-wide state: a signal handler can reach nothing else. SIGUSR1 (SLURM's
 * warning before the time limit) and SIGTERM (preemption, scancel) ask training to stop at the
 * next step with a resumable checkpoint; a second SIGTERM kills as usual. */
static volatile sig_atomic_t stop_requested;

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

volatile sig_atomic_t *cli_catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    sa.sa_flags = SA_RESETHAND;
    sigaction(SIGTERM, &sa, NULL);
    return &stop_requested;
}
