/* runlock.c — one run per checkpoint directory (runlock.h). */
#include "runlock.h"

#include <errno.h>    // defines: errno, EEXIST, ENOENT, ESRCH, EPERM, ENAMETOOLONG
#include <fcntl.h>    // defines: open, O_RDWR, O_RDONLY, O_CREAT, O_EXCL, O_NONBLOCK, O_CLOEXEC
#include <limits.h>   // defines: INT_MAX
#include <pthread.h>  // defines: pthread_create, pthread_join, pthread_mutex_t, pthread_cond_t
#include <signal.h>   // defines: kill, sigset_t, sigfillset, pthread_sigmask
#include <stdlib.h>   // defines: calloc, free, getenv, strtoll
#include <string.h>   // defines: strcmp, strncmp, strlen, strerror, strchr, strrchr, memset
#include <sys/stat.h> // defines: fstat, stat, futimens, struct stat
#include <time.h>     // defines: time, localtime_r, strftime, clock_gettime, CLOCK_REALTIME
#include <unistd.h>   // defines: link, unlink, rename, getpid, gethostname, pwrite, read, fsync

#include "sys.h" // defines: sn_mkdir_p, sn_now

/* ---- the record -------------------------------------------------------------------------- */

/* The timestamp as the record shows it: seconds and local time, a fixed width, so that a
 * heartbeat rewrites the record in place at the same length. */
static void stamp(long long t, char *out, size_t cap)
{
    char when[64] = "?";
    time_t tt = (time_t)t;
    struct tm tm;
    if (localtime_r(&tt, &tm))
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %z", &tm);
    snprintf(out, cap, "%010lld (%s)", t, when);
}

/* One line's worth of s: no newline can end a field early. */
static void one_line(const char *s, char *out, size_t cap)
{
    snprintf(out, cap, "%s", s);
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = '?';
}

int sn_runlock_format(const struct sn_runlock_holder *h, char *text, size_t cap)
{
    char since[96], beat[96], config[sizeof h->config];
    stamp(h->since, since, sizeof since);
    stamp(h->beat, beat, sizeof beat);
    one_line(h->config, config, sizeof config);
    return snprintf(text, cap,
                    "# shardnet: this checkpoint directory is in use by the run below; it is\n"
                    "# removed when the run ends, and taken over once its heartbeat is %d s old\n"
                    "host = %s\n"
                    "machine = %s\n"
                    "pid = %ld\n"
                    "process_start = %llu\n"
                    "job = %s\n"
                    "restart = %d\n"
                    "config = %s\n"
                    "since = %s\n"
                    "heartbeat = %s\n",
                    SN_RUNLOCK_STALE, h->host, h->machine, h->pid, h->start, h->job, h->restart,
                    config, since, beat);
}

/* The value of "key = value" in text, copied to out; 0 when found. */
static int field(const char *text, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, key, klen) != 0 || strncmp(p + klen, " = ", 3) != 0)
            continue;
        const char *v = p + klen + 3, *end = strchr(v, '\n');
        size_t n = end ? (size_t)(end - v) : strlen(v);
        if (n >= cap)
            n = cap - 1;
        memcpy(out, v, n);
        out[n] = '\0';
        return 0;
    }
    return -1;
}

static int field_ll(const char *text, const char *key, long long *v)
{
    char s[64], *end;
    if (field(text, key, s, sizeof s) != 0)
        return -1;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return end == s || errno ? -1 : 0;
}

int sn_runlock_parse(const char *text, struct sn_runlock_holder *h)
{
    memset(h, 0, sizeof *h);
    long long pid, start, restart;
    if (field(text, "host", h->host, sizeof h->host) != 0 || !h->host[0] ||
        field_ll(text, "pid", &pid) != 0 || pid <= 0 ||
        field_ll(text, "process_start", &start) != 0 || start < 0 ||
        field(text, "job", h->job, sizeof h->job) != 0 ||
        field_ll(text, "restart", &restart) != 0 || restart < 0 || restart > INT_MAX ||
        field_ll(text, "since", &h->since) != 0 || field_ll(text, "heartbeat", &h->beat) != 0) {
        h->host[0] = '\0';
        return -1;
    }
    h->pid = (long)pid;
    h->start = (unsigned long long)start;
    h->restart = (int)restart;
    field(text, "machine", h->machine, sizeof h->machine);
    field(text, "config", h->config, sizeof h->config);
    return 0;
}

/* ---- this process ------------------------------------------------------------------------- */

/* Fields 3 and 22 of /proc/PID/stat: the process's state ('Z': a zombie, killed but not yet
 * reaped) and its start time in clock ticks after boot, which with the pid names one process
 * for the life of the machine. @return 0, or -1 when it cannot be read (*state '?', *start 0). */
static int proc_stat(long pid, char *state, unsigned long long *start)
{
    *state = '?';
    *start = 0;
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* the command name may hold spaces */
    if (!p || p[1] != ' ' || !p[2])
        return -1;
    *state = p[2];
    p++;
    for (int i = 3; i < 22 && p; i++) /* p: the space before field i + 1 */
        p = strchr(p + 1, ' ');
    *start = p ? strtoull(p + 1, NULL, 10) : 0;
    return 0;
}

/* The kernel boot and the pid namespace: a host name alone does not say that a pid can be
 * checked from here (a container with the host's name, a machine rebooted since). */
static void machine_id(char *out, size_t cap)
{
    char boot[64] = "", ns[64] = "";
    FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");
    if (f) {
        if (!fgets(boot, sizeof boot, f))
            boot[0] = '\0';
        fclose(f);
        boot[strcspn(boot, "\n")] = '\0';
    }
    ssize_t n = readlink("/proc/self/ns/pid", ns, sizeof ns - 1);
    ns[n > 0 ? n : 0] = '\0';
    snprintf(out, cap, "%s%s%s", boot, boot[0] && ns[0] ? " " : "", ns);
}

void sn_runlock_me(struct sn_runlock_holder *me, const char *config)
{
    memset(me, 0, sizeof *me);
    if (gethostname(me->host, sizeof me->host - 1) != 0 || !me->host[0])
        snprintf(me->host, sizeof me->host, "unknown-host");
    me->host[sizeof me->host - 1] = '\0';
    machine_id(me->machine, sizeof me->machine);
    me->pid = (long)getpid();
    char state;
    proc_stat(me->pid, &state, &me->start);
    const char *aj = getenv("SLURM_ARRAY_JOB_ID"), *at = getenv("SLURM_ARRAY_TASK_ID");
    const char *j = getenv("SLURM_JOB_ID"), *rs = getenv("SLURM_RESTART_COUNT");
    if (aj && *aj && at && *at)
        snprintf(me->job, sizeof me->job, "%s_%s", aj, at);
    else if (j && *j)
        snprintf(me->job, sizeof me->job, "%s", j);
    me->restart = rs ? atoi(rs) : 0;
    if (me->restart < 0)
        me->restart = 0;
    snprintf(me->config, sizeof me->config, "%s", config ? config : "");
    me->since = me->beat = (long long)time(NULL);
}

/* kill(pid, 0) tells whether the pid exists (EPERM: it does, as another user's); /proc whether
 * it is a zombie (killed, waiting for a parent that may never reap it: dead for us) and still
 * the same process (its start time). */
static int alive_here(long pid, unsigned long long start)
{
    if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno == ESRCH))
        return 0;
    char state;
    unsigned long long now;
    if (proc_stat(pid, &state, &now) != 0)
        return 1; /* exists, and no /proc to say more */
    if (state == 'Z' || state == 'X')
        return 0;
    return !(start && now && now != start);
}

/* ---- the decision -------------------------------------------------------------------------- */

static int same_machine(const struct sn_runlock_holder *a, const struct sn_runlock_holder *b)
{
    return strcmp(a->host, b->host) == 0 &&
           (!a->machine[0] || !b->machine[0] || strcmp(a->machine, b->machine) == 0);
}

enum sn_runlock_verdict sn_runlock_judge(const struct sn_runlock_holder *holder, double age,
                                         const struct sn_runlock_holder *me, double stale,
                                         sn_runlock_alive_fn alive)
{
    if (!holder->host[0]) /* a record that cannot be read: its age alone speaks */
        return age > stale ? SN_RUNLOCK_SILENT : SN_RUNLOCK_HELD;
    int here = same_machine(holder, me);
    if (here && holder->pid == me->pid && holder->start == me->start)
        return SN_RUNLOCK_OWN;
    if (here && !alive(holder->pid, holder->start))
        return SN_RUNLOCK_DEAD;
    if (holder->job[0] && strcmp(holder->job, me->job) == 0 && holder->restart < me->restart)
        return SN_RUNLOCK_REQUEUED;
    return age > stale ? SN_RUNLOCK_SILENT : SN_RUNLOCK_HELD;
}

/* ---- the lock ------------------------------------------------------------------------------ */

struct sn_runlock {
    char dir[1024], path[1100], what[1400];
    struct sn_runlock_holder me;
    double beat, stale;
    int fd;                 /* the lock file: this run's inode */
    pthread_mutex_t mu;     /* fd, me.beat, lost, lost_msg */
    pthread_cond_t cv;
    pthread_t thread;
    int thread_on, stopping;
    double last_ok;         /* sn_now() of the last heartbeat written (or of the taking) */
    int lost;               /* the lock is another run's now */
    char lost_msg[sizeof((struct sn_err *)0)->msg];
};

void sn_runlock_path(const char *dir, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, SN_RUNLOCK_NAME);
}

/* Reads the lock at path: its record (h->host empty when unreadable) and its file's state.
 * @return 0, or -1 with errno (ENOENT: there is none). */
static int read_lock(const char *path, struct sn_runlock_holder *h, struct stat *st, char *text,
                     size_t cap)
{
    /* non-blocking: whatever sits at this name (a FIFO put there) cannot hang the run */
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t n = 0;
    if (fstat(fd, st) == 0 && S_ISREG(st->st_mode)) {
        ssize_t r;
        while (n + 1 < cap && (r = read(fd, text + n, cap - 1 - n)) > 0)
            n += (size_t)r;
    }
    close(fd);
    text[n] = '\0';
    if (sn_runlock_parse(text, h) != 0)
        h->host[0] = '\0';
    return 0;
}

/* "host node7, pid 123 (running), SLURM job 42_3, config a.cfg, since 2024-05-01 12:00:03" */
static void describe(const struct sn_runlock_holder *h, const struct sn_runlock_holder *me,
                     char *out, size_t cap)
{
    if (!h->host[0]) {
        snprintf(out, cap, "a run whose lock file cannot be read");
        return;
    }
    char since[64] = "?";
    time_t t = (time_t)h->since;
    struct tm tm;
    if (localtime_r(&t, &tm))
        strftime(since, sizeof since, "%Y-%m-%d %H:%M:%S", &tm);
    int here = same_machine(h, me);
    size_t n = 0;
    n += (size_t)snprintf(out, cap, "host %s%s, pid %ld%s", h->host, here ? " (this host)" : "",
                          h->pid, here && alive_here(h->pid, h->start) ? " (running)" : "");
    if (h->job[0] && n < cap)
        n += (size_t)snprintf(out + n, cap - n, ", SLURM job %s", h->job);
    if (h->job[0] && h->restart && n < cap)
        n += (size_t)snprintf(out + n, cap - n, " (restart %d)", h->restart);
    if (n < cap)
        snprintf(out + n, cap - n, ", config %s, since %s", h->config[0] ? h->config : "?",
                 since);
}

/* The file system's clock now: the mtime of our own file, touched just now. */
static double fs_now(int fd)
{
    struct stat st;
    if (futimens(fd, NULL) != 0 || fstat(fd, &st) != 0)
        return (double)time(NULL);
    return (double)st.st_mtim.tv_sec + 1e-9 * (double)st.st_mtim.tv_nsec;
}

static double mtime_of(const struct stat *st)
{
    return (double)st->st_mtim.tv_sec + 1e-9 * (double)st->st_mtim.tv_nsec;
}

/* Writes the record whole at offset 0 of fd and syncs it (on NFS the heartbeat reaches the
 * server, and its clock, only then). */
static int write_record(int fd, const struct sn_runlock_holder *h)
{
    char text[2048];
    int n = sn_runlock_format(h, text, sizeof text);
    if (n < 0 || (size_t)n >= sizeof text)
        n = (int)strlen(text);
    if (pwrite(fd, text, (size_t)n, 0) != n || ftruncate(fd, n) != 0 || fsync(fd) != 0)
        return -1;
    return 0;
}

/* A file of this process's own in dir, holding the record: the lock once linked. */
static int make_candidate(struct sn_runlock *lk, char *mine, size_t cap, struct sn_err *err)
{
    snprintf(mine, cap, "%s.%s.%ld", lk->path, lk->me.host, lk->me.pid);
    int fd = open(mine, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return sn_err_set(err, SN_EIO, "%s: cannot create files in the %s: %s", lk->dir,
                          lk->what, strerror(errno));
    if (write_record(fd, &lk->me) != 0) {
        int e = errno;
        close(fd);
        unlink(mine);
        return sn_err_set(err, SN_EIO, "%s: cannot write the lock of the %s: %s", mine,
                          lk->what, strerror(e));
    }
    lk->fd = fd;
    return SN_OK;
}

/* link(2) mine to the lock's name. @return 1 taken, 0 the name exists, -1 another failure
 * (errno). NFS: a link whose reply was lost is seen in the link count. */
static int try_link(struct sn_runlock *lk, const char *mine)
{
    if (link(mine, lk->path) == 0)
        return 1;
    int e = errno;
    struct stat st;
    if (fstat(lk->fd, &st) == 0 && st.st_nlink == 2)
        return 1;
    errno = e;
    if (e == EEXIST)
        return 0;
    /* a file system without hard links: O_EXCL, atomic everywhere but NFSv2 */
    if (e == EPERM || e == ENOTSUP || e == EOPNOTSUPP || e == ENOSYS) {
        int fd = open(lk->path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            return errno == EEXIST ? 0 : -1;
        if (write_record(fd, &lk->me) != 0) {
            e = errno;
            close(fd);
            unlink(lk->path);
            errno = e;
            return -1;
        }
        close(lk->fd);
        lk->fd = fd;
        return 1;
    }
    return -1;
}

static const char *verdict_words(enum sn_runlock_verdict v)
{
    switch (v) {
    case SN_RUNLOCK_OWN: return "left by this same process";
    case SN_RUNLOCK_DEAD: return "its process is gone";
    case SN_RUNLOCK_REQUEUED: return "an earlier run of this SLURM job, ended by SLURM";
    case SN_RUNLOCK_SILENT: return "no heartbeat";
    default: return "held";
    }
}

/* The refusal: who holds dir, and what to do. */
static int refuse(struct sn_runlock *lk, const struct sn_runlock_holder *h, double age,
                  struct sn_err *err)
{
    char who[1200];
    describe(h, &lk->me, who, sizeof who);
    char when[256];
    int here = h->host[0] && same_machine(h, &lk->me);
    double left = lk->stale - age;
    if (here)
        snprintf(when, sizeof when,
                 "it is taken over at once when its process is gone, or %.0f s after its last "
                 "heartbeat",
                 lk->stale);
    else
        snprintf(when, sizeof when,
                 "from another host it cannot be told whether the run is alive: the lock is "
                 "taken over once its heartbeat is %.0f s old (in about %.0f s)",
                 lk->stale, left > 0 ? left : 0);
    char task[300] = "";
    if (h->job[0] && lk->me.job[0] && strchr(lk->me.job, '_') && strcmp(h->job, lk->me.job))
        snprintf(task, sizeof task,
                 "; each task of a job array needs a [checkpoint] dir of its own (e.g. "
                 "--set checkpoint.dir=runs/NAME/task$SLURM_ARRAY_TASK_ID)");
    return sn_err_set(err, SN_EIO,
                      "%s: the %s is in use by another run: %s; last heartbeat %.0f s ago (lock "
                      "file %s)\n---> HINT: give this run another [checkpoint] dir (--set "
                      "checkpoint.dir=...), or wait for that run to end; if you know it is dead, "
                      "remove %s (%s)%s",
                      lk->dir, lk->what, who, age > 0 ? age : 0, lk->path, lk->path, when, task);
}

/* Moves the stale lock judged (device and inode in judged, record in h) out of the way.
 * @return 1 moved, 0 it was no longer there or no longer the file judged (put back: judge
 * again), -1 the rename failed (errno). */
static int take_over(struct sn_runlock *lk, const struct stat *judged,
                     const struct sn_runlock_holder *h)
{
    char aside[1300];
    int n = snprintf(aside, sizeof aside, "%s.stale.%s.%ld", lk->path, lk->me.host, lk->me.pid);
    if (n < 0 || (size_t)n >= sizeof aside) {
        errno = ENAMETOOLONG; /* never rename to a cut name */
        return -1;
    }
    if (rename(lk->path, aside) != 0)
        return errno == ENOENT ? 0 : -1; /* gone meanwhile: try to take it */
    struct stat st;
    struct sn_runlock_holder moved;
    char text[4096];
    int same = read_lock(aside, &moved, &st, text, sizeof text) == 0 &&
               st.st_dev == judged->st_dev && st.st_ino == judged->st_ino &&
               strcmp(moved.host, h->host) == 0 && moved.pid == h->pid &&
               moved.since == h->since;
    if (!same) {
        /* another run took the stale lock between our judging and our rename: its lock
           goes back (unless a third has taken the name meanwhile) */
        if (link(aside, lk->path) != 0 && errno != EEXIST)
            rename(aside, lk->path);
        unlink(aside);
        return 0;
    }
    unlink(aside);
    return 1;
}

static void *heartbeat(void *arg);

/* Whether the lock at path is still lk's file; on a loss, lost_msg says who has it. A lock
 * removed by hand while the run lives is made again when retake is set. Called with lk->mu
 * held (or with the heartbeat ended). @return 0 ours, -1 lost. */
static int verify_locked(struct sn_runlock *lk, int retake)
{
    if (lk->lost)
        return -1;
    struct stat mine, now;
    struct sn_runlock_holder h;
    char text[4096];
    if (fstat(lk->fd, &mine) != 0)
        return 0; /* cannot tell: keep going */
    int rc = read_lock(lk->path, &h, &now, text, sizeof text);
    if (rc == 0 && now.st_dev == mine.st_dev && now.st_ino == mine.st_ino)
        return 0;
    if (rc != 0 && errno != ENOENT)
        return 0; /* cannot tell (a passing NFS hiccup): keep going */
    if (rc != 0 && !retake)
        return -1;
    double silent = sn_now() - lk->last_ok;
    if (rc != 0 && silent > lk->stale) {
        /* gone while this run could not beat: another run may have taken the directory and
           ended meanwhile; its files are not this run's to overwrite */
        lk->lost = 1;
        snprintf(lk->lost_msg, sizeof lk->lost_msg,
                 "%.400s: the lock of the %.300s is gone, and this run went %.0f s without a "
                 "heartbeat (was the process stopped or suspended?), more than the %.0f s after "
                 "which another run may take it over; this run ends here without writing, so as "
                 "not to overwrite another run's files",
                 lk->path, lk->what, silent, lk->stale);
        return -1;
    }
    if (rc != 0) {
        /* removed by hand while this run lives: this run takes it again, if no other has */
        char again[1400];
        snprintf(again, sizeof again, "%s.%s.%ld", lk->path, lk->me.host, lk->me.pid);
        int fd = open(again, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        int e = errno;
        if (fd >= 0 && write_record(fd, &lk->me) == 0 && link(again, lk->path) == 0) {
            unlink(again);
            close(lk->fd);
            lk->fd = fd;
            return 0;
        }
        e = fd >= 0 ? errno : e;
        if (fd >= 0) {
            close(fd);
            unlink(again);
        }
        rc = read_lock(lk->path, &h, &now, text, sizeof text);
        if (rc != 0) {
            lk->lost = 1;
            snprintf(lk->lost_msg, sizeof lk->lost_msg,
                     "%.400s: the lock of the %.400s was removed while this run held it, and cannot "
                     "be made again: %s; this run ends here", lk->path, lk->what, strerror(e));
            return -1;
        }
    }
    char who[1200];
    describe(&h, &lk->me, who, sizeof who);
    lk->lost = 1;
    snprintf(lk->lost_msg, sizeof lk->lost_msg,
             "%.400s: this run's lock of the %.300s was taken over by %.500s: this run went without a "
             "heartbeat for more than %.0f s (was the process stopped or suspended?), or the "
             "lock was removed by hand; this run ends here without writing, so as not to "
             "overwrite the other run's files",
             lk->path, lk->what, who, lk->stale);
    return -1;
}

int sn_runlock_acquire(struct sn_runlock **out, const struct sn_runlock_conf *c,
                       struct sn_err *err)
{
    *out = NULL;
    SN_FORWARD(sn_mkdir_p(c->dir, c->what, err));
    struct sn_runlock *lk = calloc(1, sizeof *lk);
    SN_RETURN_IF(!lk, err, SN_ENOMEM, "out of memory");
    snprintf(lk->dir, sizeof lk->dir, "%s", c->dir);
    snprintf(lk->what, sizeof lk->what, "%s", c->what);
    sn_runlock_path(c->dir, lk->path, sizeof lk->path);
    lk->beat = c->beat > 0 ? c->beat : SN_RUNLOCK_BEAT;
    lk->stale = c->stale > 0 ? c->stale : SN_RUNLOCK_STALE;
    lk->fd = -1;
    sn_runlock_me(&lk->me, c->config);
    char mine[1300];
    int rc = make_candidate(lk, mine, sizeof mine, err);
    int got = 0;
    /* a few rounds: a lock released, or taken over by a third run, between two looks */
    for (int round = 0; rc == SN_OK && !got && round < 5; round++) {
        int t = try_link(lk, mine);
        if (t == 1) {
            got = 1;
            break;
        }
        if (t < 0) {
            rc = sn_err_set(err, SN_EIO, "%s: cannot create the lock of the %s: %s", lk->path,
                            lk->what, strerror(errno));
            break;
        }
        struct sn_runlock_holder h;
        struct stat st;
        char text[4096];
        if (read_lock(lk->path, &h, &st, text, sizeof text) != 0)
            continue; /* released just now */
        double age = fs_now(lk->fd) - mtime_of(&st);
        enum sn_runlock_verdict v = sn_runlock_judge(&h, age, &lk->me, lk->stale, alive_here);
        if (v == SN_RUNLOCK_HELD) {
            rc = refuse(lk, &h, age, err);
            break;
        }
        int moved = take_over(lk, &st, &h);
        if (moved < 0) {
            rc = sn_err_set(err, SN_EIO, "%s: cannot take over the stale lock of the %s (%s): %s",
                            lk->path, lk->what, verdict_words(v), strerror(errno));
            break;
        }
        if (!moved)
            continue;
        if (c->note) {
            char who[1200];
            describe(&h, &lk->me, who, sizeof who);
            char why[160];
            if (v == SN_RUNLOCK_SILENT)
                snprintf(why, sizeof why, "no heartbeat for %.0f s, more than the %.0f s after "
                         "which a lock is stale", age, lk->stale);
            else
                snprintf(why, sizeof why, "%s", verdict_words(v));
            fprintf(c->note, "note: took over the stale lock %s of %s: %s\n", lk->path, who,
                    why);
        }
    }
    if (rc == SN_OK && !got)
        rc = sn_err_set(err, SN_EIO,
                        "%s: could not take the lock of the %s: other runs keep taking it\n"
                        "---> HINT: give each run its own [checkpoint] dir",
                        lk->path, lk->what);
    if (lk->fd >= 0)
        unlink(mine); /* taken: the lock's name holds the file; refused: ours goes */
    if (rc != SN_OK) {
        if (lk->fd >= 0)
            close(lk->fd);
        free(lk);
        return rc;
    }
    lk->last_ok = sn_now();
    pthread_mutex_init(&lk->mu, NULL);
    pthread_cond_init(&lk->cv, NULL);
    /* the heartbeat thread takes no signal: those are the training loop's to handle */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    lk->thread_on = pthread_create(&lk->thread, NULL, heartbeat, lk) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    *out = lk;
    return SN_OK;
}

static void *heartbeat(void *arg)
{
    struct sn_runlock *lk = arg;
    pthread_mutex_lock(&lk->mu);
    while (!lk->stopping) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        long long ns = (long long)(lk->beat * 1e9) + until.tv_nsec;
        until.tv_sec += (time_t)(ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        while (!lk->stopping && pthread_cond_timedwait(&lk->cv, &lk->mu, &until) != ETIMEDOUT)
            ;
        if (lk->stopping)
            break;
        if (verify_locked(lk, 1) != 0)
            break; /* lost: the training loop learns it at its next check */
        lk->me.beat = (long long)time(NULL);
        if (write_record(lk->fd, &lk->me) == 0) /* a failed beat is retried at the next one */
            lk->last_ok = sn_now();
    }
    pthread_mutex_unlock(&lk->mu);
    return NULL;
}

int sn_runlock_check(struct sn_runlock *lk, struct sn_err *err)
{
    if (lk == NULL)
        return SN_OK;
    pthread_mutex_lock(&lk->mu);
    int lost = verify_locked(lk, 1) != 0;
    if (lost)
        sn_err_set(err, SN_EIO, "%s", lk->lost_msg);
    pthread_mutex_unlock(&lk->mu);
    return lost ? SN_EIO : SN_OK;
}

void sn_runlock_release(struct sn_runlock *lk)
{
    if (lk == NULL)
        return;
    pthread_mutex_lock(&lk->mu);
    lk->stopping = 1;
    pthread_cond_broadcast(&lk->cv);
    pthread_mutex_unlock(&lk->mu);
    if (lk->thread_on)
        pthread_join(lk->thread, NULL);
    if (verify_locked(lk, 0) == 0)
        unlink(lk->path);
    close(lk->fd);
    pthread_mutex_destroy(&lk->mu);
    pthread_cond_destroy(&lk->cv);
    free(lk);
}
