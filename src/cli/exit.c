/* exit.c — what an error means for the process: its message on stderr and the exit status, the
 * end of an MPI job (cleanly on every rank, or by aborting it when one rank alone failed), the
 * watchdog's message, and the stop signals. The library returns errors; this file decides. */
#include "cli_internal.h"

#include <signal.h> // defines: sigaction, sigprocmask, sigtimedwait, raise, sig_atomic_t
#include <stdio.h>  // defines: fprintf, printf
#include <stdlib.h> // defines: getenv
#include <string.h> // defines: memset, strlen
#include <time.h>   // defines: struct timespec
#include <unistd.h> // defines: write

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

/* The launcher (launcher/shardnet-run) bounds the start of a job: it sets SN_RUN_STARTED to a
 * token of its own and waits for this line, which rank 0 prints once every rank has joined
 * (sn_dist_init ends with a collective), and which the launcher takes out of the output. */
void cli_watch_dist(struct sn_dist *d)
{
    sn_dist_set_watchdog_handler(d, on_hang, d);
    const char *token = getenv("SN_RUN_STARTED");
    if (token && *token && d->rank == 0) {
        printf("SN_RUN_STARTED %s %d\n", token, d->world);
        fflush(stdout);
    }
}

/* The one piece of process-wide state: a signal handler can reach nothing else.
 * SIGUSR1 (SLURM's warning before a time limit, `scancel --signal=USR1`), SIGTERM (a time limit,
 * preemption, scancel) and SIGINT (Ctrl-C) ask training to stop at the next step with a
 * resumable checkpoint. A second SIGTERM or a second SIGINT ends the process at once, killed by
 * that signal as if it had no handler (a shell says 143 or 130); the checkpoint written last,
 * if any, still holds the run (checkpoints are replaced atomically). SIGUSR1 never ends it: SLURM
 * and the launcher may pass one stop on by several paths. */
static volatile sig_atomic_t stop_requested; /* training reads it at each step */
static volatile sig_atomic_t stops_seen;     /* a bit per signal: STOP_BIT(sig) */
static volatile sig_atomic_t stops_caught;   /* the handlers are installed */

#define STOP_BIT(sig) ((sig) == SIGINT ? 1 : (sig) == SIGTERM ? 2 : 4)

/* Only async-signal-safe calls here: write, sigaction, raise. */
static void say(const char *msg) { (void)!write(STDERR_FILENO, msg, strlen(msg)); }

static void on_stop_signal(int sig)
{
    if (sig != SIGUSR1 && (stops_seen & STOP_BIT(sig))) {
        say(sig == SIGINT ? "shardnet: second SIGINT: ending at once (exit 130); the last "
                            "checkpoint written, if any, holds the run\n"
                          : "shardnet: second SIGTERM: ending at once (exit 143); the last "
                            "checkpoint written, if any, holds the run\n");
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(sig, &dfl, NULL);
        raise(sig); /* pending until this handler returns, then the default action */
        return;
    }
    if (sig == SIGINT && !(stops_seen & STOP_BIT(sig)))
        say("\nshardnet: SIGINT: stopping at the end of this step with a checkpoint "
            "(again to end at once)\n");
    stops_seen |= STOP_BIT(sig);
    stop_requested = 1;
}

static const int stop_signals[] = {SIGUSR1, SIGTERM, SIGINT};
#define N_STOP_SIGNALS (int)(sizeof stop_signals / sizeof stop_signals[0])

void sn_cli_catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    for (int i = 0; i < N_STOP_SIGNALS; i++)
        sigaddset(&sa.sa_mask, stop_signals[i]); /* one handler at a time */
    for (int i = 0; i < N_STOP_SIGNALS; i++)
        sigaction(stop_signals[i], &sa, NULL);
    stops_caught = 1;
    /* a stop that came while the signals were held (cli_hold_stop_signals before an exec)
     * is delivered now, to the handler */
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < N_STOP_SIGNALS; i++)
        sigaddset(&set, stop_signals[i]);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
}

volatile sig_atomic_t *cli_catch_stop_signals(void)
{
    sn_cli_catch_stop_signals();
    return &stop_requested;
}

void cli_hold_stop_signals(int hold)
{
    if (!stops_caught)
        return;
    sigset_t set;
    sigemptyset(&set);
    for (int i = 0; i < N_STOP_SIGNALS; i++)
        sigaddset(&set, stop_signals[i]);
    if (!hold) {
        /* the exec failed: this program goes on; the signals raised for the new one are
         * dropped (the stop is already recorded here), then the handlers take signals again */
        struct timespec now = {0, 0};
        while (sigtimedwait(&set, NULL, &now) > 0)
            ;
        sigprocmask(SIG_UNBLOCK, &set, NULL);
        return;
    }
    sigprocmask(SIG_BLOCK, &set, NULL);
    /* a stop already asked for goes to the new program as a pending signal (kept by exec) */
    for (int i = 0; i < N_STOP_SIGNALS; i++)
        if (stops_seen & STOP_BIT(stop_signals[i]))
            raise(stop_signals[i]);
}
