/* runlock.h — one run per checkpoint directory: a lock file that works across the nodes of a
 * shared file system (NFS, Lustre), where flock and fcntl locks are not to be trusted.
 *
 * Two runs that share a checkpoint directory overwrite each other's `last` and `best` and
 * history.csv, and both end "successfully". A run therefore holds its directory while it lives:
 *
 *   DIR/.shardnet-lock      host, pid (and the process's start time, to tell a reused pid),
 *                           SLURM job (JOBID, or ARRAYJOB_TASK) and restart count, config,
 *                           since when, last heartbeat. A text file a person can read.
 *
 * Taking it is atomic on every file system, NFS included: the record is written whole to a
 * file of this process's own (DIR/.shardnet-lock.HOST.PID), then link(2)ed to the lock's name,
 * which fails when the name exists (the classic NFS-safe way; O_EXCL was not atomic on NFSv2).
 * Nothing ever sees a half-written lock.
 *
 * While the run lives, a thread rewrites the record's heartbeat every `beat` seconds (a step
 * longer than that does not matter: the thread is not the training loop's) and checks that the
 * lock is still this run's (the same file: device and inode). Age is measured on the file
 * system's own clock: the lock's mtime against the mtime of a file written just now in the
 * same directory, so that clocks that differ between nodes do not matter.
 *
 * A lock that exists is judged (sn_runlock_judge):
 *   - held: a live run: the second run is refused before any work, naming the holder;
 *   - its process is gone (same host, no such pid, or the pid is another process now): taken
 *     over at once (a resume after kill -9);
 *   - an earlier run of this same SLURM job (a requeue: SLURM_RESTART_COUNT is higher now, and
 *     SLURM ends a job's run before it starts the next): taken over at once;
 *   - silent for more than `stale` seconds (a node that crashed, a process killed on another
 *     host, whose pid cannot be checked from here): taken over.
 * Taking over renames the stale file away (atomic) and checks that what was renamed is the
 * file judged (else it is put back and the run refused), then takes the lock as above.
 *
 * A holder that was silent past `stale` (stopped with SIGSTOP, suspended) may find its lock
 * taken over when it wakes: sn_runlock_check then fails, and the run stops without writing
 * over the other run's files.
 *
 * The lock is removed when the run ends: normally, after an error and after a stop (a signal
 * the program catches). A kill -9, a crash or a lost node leaves it behind, to be taken over
 * as above. */
#ifndef SN_RUNLOCK_H
#define SN_RUNLOCK_H

#include <stdio.h>

#include "err.h"

#define SN_RUNLOCK_NAME ".shardnet-lock"
#define SN_RUNLOCK_BEAT 10    /* seconds between heartbeats */
#define SN_RUNLOCK_STALE 60   /* seconds without a heartbeat after which a lock is stale */

/* Who holds a lock (or asks for it), as its record says. */
struct sn_runlock_holder {
    char host[256];
    char machine[128];        /* boot id and pid namespace: where host and pid mean the same */
    long pid;
    unsigned long long start; /* process start, clock ticks after boot (/proc); 0: unknown */
    char job[96];             /* SLURM: "JOBID" or "ARRAYJOBID_TASKID"; "" outside SLURM */
    int restart;              /* SLURM_RESTART_COUNT: 0 for a job's first run */
    char config[512];         /* the run's config file, for people */
    long long since;          /* when it took the lock (seconds since the epoch, its clock) */
    long long beat;           /* its last heartbeat (idem) */
};

enum sn_runlock_verdict {
    SN_RUNLOCK_HELD = 0, /* a live run holds it */
    SN_RUNLOCK_OWN,      /* it names this very process (a lock this process left) */
    SN_RUNLOCK_DEAD,     /* same host, and its process is gone */
    SN_RUNLOCK_REQUEUED, /* an earlier run of this SLURM job */
    SN_RUNLOCK_SILENT,   /* no heartbeat for longer than the staleness period */
};

/* Whether process pid, started at `start` (0: unknown), still runs on this host. */
typedef int (*sn_runlock_alive_fn)(long pid, unsigned long long start);

/* The decision, with no file and no clock of its own (the unit tests give both): holder is the
 * lock's record (host[0] == '\0' when it could not be read), age the seconds since its last
 * heartbeat on the file system's clock, me the process that asks, stale the staleness period,
 * alive the liveness test of a pid on this host. */
enum sn_runlock_verdict sn_runlock_judge(const struct sn_runlock_holder *holder, double age,
                                         const struct sn_runlock_holder *me, double stale,
                                         sn_runlock_alive_fn alive);

/* The record as the lock file holds it, and back. parse returns 0, or -1 when text is not a
 * lock record (then h is as far as it got). */
int sn_runlock_format(const struct sn_runlock_holder *h, char *text, size_t cap);
int sn_runlock_parse(const char *text, struct sn_runlock_holder *h);

/* This process: host name, pid, start time, SLURM job and restart count, config, now. */
void sn_runlock_me(struct sn_runlock_holder *me, const char *config);

struct sn_runlock;

struct sn_runlock_conf {
    const char *dir;    /* the checkpoint directory (made if missing) */
    const char *what;   /* its role in messages ("checkpoint directory ([checkpoint] dir, ...)") */
    const char *config; /* the run's config file, recorded for people */
    double beat, stale; /* seconds; 0: SN_RUNLOCK_BEAT, SN_RUNLOCK_STALE */
    FILE *note;         /* where a take-over is said (NULL: not said) */
};

/* Takes dir's lock, or refuses: @return SN_OK with *lk held and its heartbeat running; or
 * SN_EIO naming the holder (host, pid, job, config, since when, last heartbeat), when it will
 * be stale, and what to do. A stale lock is taken over, said on c->note. */
int sn_runlock_acquire(struct sn_runlock **lk, const struct sn_runlock_conf *c,
                       struct sn_err *err);

/* Whether the lock is still this run's (it can be lost only after a silence longer than the
 * staleness period). Cheap: one open and fstat. @return SN_OK, or SN_EIO naming the run that
 * took it over. */
int sn_runlock_check(struct sn_runlock *lk, struct sn_err *err);

/* Stops the heartbeat and removes the lock (if it is still this run's). NULL: nothing. */
void sn_runlock_release(struct sn_runlock *lk);

/* The lock file of dir. */
void sn_runlock_path(const char *dir, char *path, size_t cap);

#endif
