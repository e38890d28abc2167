/* test_runlock.c — the checkpoint directory's lock (runlock.h): the decision on a lock found
 * (held, own, dead, requeued, silent) with a fake clock (the age given), fake hosts and a fake
 * liveness test; the record's round trip; and on a real directory, with locks written by hand
 * as another host or a dead process would leave them: refused naming the holder, taken over
 * when stale or dead (a zombie too), lost when another run takes it, kept alive by the heartbeat, made again
 * when removed by hand, removed at release. */
#include <setjmp.h> // defines: jmp_buf (needed by cmocka.h)
#include <stdarg.h> // defines: va_list (needed by cmocka.h)
#include <stddef.h> // defines: size_t (needed by cmocka.h)
#include <stdint.h> // defines: uint64_t

#include <cmocka.h> // defines: cmocka_unit_test, assert_*

#include <stdio.h>     // defines: snprintf, fopen, fread, FILE
#include <stdlib.h>    // defines: free
#include <string.h>    // defines: strstr, strcmp
#include <sys/stat.h>  // defines: stat
#include <sys/time.h>  // defines: utimes, struct timeval
#include <sys/wait.h>  // defines: waitpid
#include <time.h>      // defines: time, nanosleep
#include <unistd.h>    // defines: fork, _exit, getpid, access, unlink, rename

#include "runlock.h"
#include "testutil.h"

/* ---- the decision, with a fake clock and fake processes ------------------------------------- */

/* pid 666 is dead; every other pid runs, as the process started at 1000 + pid */
static int fake_alive(long pid, unsigned long long start)
{
    return pid != 666 && (start == 0 || start == 1000 + (unsigned long long)pid);
}

static struct sn_runlock_holder who(const char *host, const char *machine, long pid,
                                    const char *job, int restart)
{
    struct sn_runlock_holder h = {0};
    snprintf(h.host, sizeof h.host, "%s", host);
    snprintf(h.machine, sizeof h.machine, "%s", machine);
    h.pid = pid;
    h.start = 1000 + (unsigned long long)pid;
    snprintf(h.job, sizeof h.job, "%s", job);
    h.restart = restart;
    h.since = h.beat = 1700000000;
    return h;
}

static void test_judge(void **state)
{
    (void)state;
    struct sn_runlock_holder me = who("node1", "boot-a pid:[1]", 100, "", 0);
    struct sn_runlock_holder other = who("node2", "boot-b pid:[1]", 200, "", 0);
    /* another host: only its heartbeat's age can tell */
    assert_int_equal(sn_runlock_judge(&other, 5, &me, 60, fake_alive), SN_RUNLOCK_HELD);
    assert_int_equal(sn_runlock_judge(&other, 59.9, &me, 60, fake_alive), SN_RUNLOCK_HELD);
    assert_int_equal(sn_runlock_judge(&other, 60.1, &me, 60, fake_alive), SN_RUNLOCK_SILENT);
    /* another host whose pid is "dead" here: not ours to check */
    struct sn_runlock_holder far_dead = who("node2", "boot-b pid:[1]", 666, "", 0);
    assert_int_equal(sn_runlock_judge(&far_dead, 1, &me, 60, fake_alive), SN_RUNLOCK_HELD);
    /* this host: a dead process at once, a live one while it beats */
    struct sn_runlock_holder dead = who("node1", "boot-a pid:[1]", 666, "", 0);
    assert_int_equal(sn_runlock_judge(&dead, 0, &me, 60, fake_alive), SN_RUNLOCK_DEAD);
    struct sn_runlock_holder live = who("node1", "boot-a pid:[1]", 300, "", 0);
    assert_int_equal(sn_runlock_judge(&live, 1, &me, 60, fake_alive), SN_RUNLOCK_HELD);
    assert_int_equal(sn_runlock_judge(&live, 61, &me, 60, fake_alive), SN_RUNLOCK_SILENT);
    /* the same host name on another boot or pid namespace is another machine */
    struct sn_runlock_holder rebooted = who("node1", "boot-z pid:[1]", 666, "", 0);
    assert_int_equal(sn_runlock_judge(&rebooted, 1, &me, 60, fake_alive), SN_RUNLOCK_HELD);
    /* a record without a machine id (written by hand): the host name decides */
    struct sn_runlock_holder plain = who("node1", "", 666, "", 0);
    assert_int_equal(sn_runlock_judge(&plain, 1, &me, 60, fake_alive), SN_RUNLOCK_DEAD);
    /* this very process */
    struct sn_runlock_holder own = me;
    assert_int_equal(sn_runlock_judge(&own, 1, &me, 60, fake_alive), SN_RUNLOCK_OWN);
    /* the same pid started at another time: a dead process whose pid came back */
    struct sn_runlock_holder reused = me;
    reused.start = 5;
    assert_int_equal(sn_runlock_judge(&reused, 1, &me, 60, fake_alive), SN_RUNLOCK_DEAD);
    /* SLURM: an earlier run of the same job (requeued) is over; another task, another job, or
       the same run of the job is not */
    struct sn_runlock_holder me_req = who("node1", "boot-a pid:[1]", 100, "4242", 1);
    struct sn_runlock_holder before = who("node9", "boot-c pid:[1]", 200, "4242", 0);
    assert_int_equal(sn_runlock_judge(&before, 1, &me_req, 60, fake_alive),
                     SN_RUNLOCK_REQUEUED);
    struct sn_runlock_holder same_run = who("node9", "boot-c pid:[1]", 200, "4242", 1);
    assert_int_equal(sn_runlock_judge(&same_run, 1, &me_req, 60, fake_alive), SN_RUNLOCK_HELD);
    struct sn_runlock_holder me_task = who("node1", "boot-a pid:[1]", 100, "4242_4", 0);
    struct sn_runlock_holder task3 = who("node9", "boot-c pid:[1]", 200, "4242_3", 0);
    assert_int_equal(sn_runlock_judge(&task3, 1, &me_task, 60, fake_alive), SN_RUNLOCK_HELD);
    /* a record that cannot be read: its age alone */
    struct sn_runlock_holder unreadable = {0};
    assert_int_equal(sn_runlock_judge(&unreadable, 1, &me, 60, fake_alive), SN_RUNLOCK_HELD);
    assert_int_equal(sn_runlock_judge(&unreadable, 61, &me, 60, fake_alive), SN_RUNLOCK_SILENT);
}

static void test_record_round_trip(void **state)
{
    (void)state;
    struct sn_runlock_holder h = who("node7.cluster", "boot-a pid:[4026531836]", 12345, "77_3", 2);
    snprintf(h.config, sizeof h.config, "configs/a\nb.cfg"); /* a newline cannot end it early */
    h.beat = h.since + 20;
    char text[2048];
    int n = sn_runlock_format(&h, text, sizeof text);
    assert_true(n > 0 && (size_t)n < sizeof text);
    struct sn_runlock_holder back;
    assert_int_equal(sn_runlock_parse(text, &back), 0);
    assert_string_equal(back.host, "node7.cluster");
    assert_string_equal(back.machine, "boot-a pid:[4026531836]");
    assert_int_equal(back.pid, 12345);
    assert_int_equal(back.start, h.start);
    assert_string_equal(back.job, "77_3");
    assert_int_equal(back.restart, 2);
    assert_string_equal(back.config, "configs/a?b.cfg");
    assert_int_equal(back.since, h.since);
    assert_int_equal(back.beat, h.since + 20);
    /* a heartbeat rewrites the record at the same length */
    h.beat += 1000;
    char again[2048];
    assert_int_equal(sn_runlock_format(&h, again, sizeof again), n);
    /* not a record */
    assert_int_equal(sn_runlock_parse("hello\n", &back), -1);
    assert_string_equal(back.host, "");
    assert_int_equal(sn_runlock_parse("host = a\npid = x\n", &back), -1);
}

/* ---- a real directory --------------------------------------------------------------------- */

static char lock_path[1200];

static const char *fresh_dir(const char *name)
{
    const char *dir = sn_test_dir(name);
    sn_runlock_path(dir, lock_path, sizeof lock_path);
    return dir;
}

/* A lock as another run left it; age: seconds since its last heartbeat (its mtime). */
static void write_lock(const struct sn_runlock_holder *h, double age)
{
    char text[2048];
    sn_runlock_format(h, text, sizeof text);
    assert_int_equal(sn_test_write_file(lock_path, text), 0);
    struct timeval tv[2];
    tv[0].tv_sec = tv[1].tv_sec = time(NULL) - (time_t)age;
    tv[0].tv_usec = tv[1].tv_usec = 0;
    assert_int_equal(utimes(lock_path, tv), 0);
}

static int read_holder(struct sn_runlock_holder *h)
{
    char text[4096] = "";
    FILE *f = fopen(lock_path, "r");
    if (!f)
        return -1;
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = '\0';
    return sn_runlock_parse(text, h);
}

static void sleep_s(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static char note_text[4096];

static int acquire(const char *dir, double beat, double stale, struct sn_runlock **lk,
                   struct sn_err *err)
{
    FILE *note = fmemopen(note_text, sizeof note_text, "w");
    struct sn_runlock_conf c = {.dir = dir, .what = "checkpoint directory",
                                .config = "test.cfg", .beat = beat, .stale = stale,
                                .note = note};
    int rc = sn_runlock_acquire(lk, &c, err);
    fclose(note);
    return rc;
}

static void test_take_check_release(void **state)
{
    (void)state;
    const char *dir = fresh_dir("runlock_take");
    struct sn_runlock *lk;
    struct sn_err err = {0};
    assert_int_equal(acquire(dir, 0, 0, &lk, &err), SN_OK);
    struct sn_runlock_holder h;
    assert_int_equal(read_holder(&h), 0);
    assert_int_equal(h.pid, (long)getpid());
    assert_string_equal(h.config, "test.cfg");
    assert_int_equal(sn_runlock_check(lk, &err), SN_OK);
    sn_runlock_release(lk);
    assert_int_equal(access(lock_path, F_OK), -1);
    /* nothing else left in the directory: the candidate file went with the link */
    char mine[1600];
    snprintf(mine, sizeof mine, "%s.%s.%ld", lock_path, h.host, (long)getpid());
    assert_int_equal(access(mine, F_OK), -1);
    sn_runlock_release(NULL);
}

static void test_refused_by_live_other_host(void **state)
{
    (void)state;
    const char *dir = fresh_dir("runlock_other");
    struct sn_runlock_holder other = who("elsewhere", "boot-x pid:[9]", 4242, "77_3", 0);
    snprintf(other.config, sizeof other.config, "configs/lr0.003.cfg");
    write_lock(&other, 5);
    struct sn_runlock *lk = NULL;
    struct sn_err err = {0};
    assert_int_equal(acquire(dir, 0, 60, &lk, &err), SN_EIO);
    assert_null(lk);
    assert_non_null(strstr(err.msg, "is in use by another run"));
    assert_non_null(strstr(err.msg, "host elsewhere, pid 4242, SLURM job 77_3"));
    assert_non_null(strstr(err.msg, "config configs/lr0.003.cfg"));
    assert_non_null(strstr(err.msg, "another [checkpoint] dir"));
    assert_non_null(strstr(err.msg, "remove"));
    const char *in = strstr(err.msg, "taken over once its heartbeat is 60 s old (in about ");
    assert_non_null(in);
    int left = -1;
    assert_int_equal(sscanf(in + strlen("taken over once its heartbeat is 60 s old (in about "),
                            "%d", &left), 1);
    assert_true(left >= 50 && left <= 55);
    struct sn_runlock_holder h;
    assert_int_equal(read_holder(&h), 0); /* untouched */
    assert_int_equal(h.pid, 4242);
    assert_string_equal(h.host, "elsewhere");
}

static void test_stale_other_host_taken_over(void **state)
{
    (void)state;
    const char *dir = fresh_dir("runlock_stale");
    struct sn_runlock_holder other = who("elsewhere", "boot-x pid:[9]", 4242, "", 0);
    write_lock(&other, 600);
    struct sn_runlock *lk = NULL;
    struct sn_err err = {0};
    assert_int_equal(acquire(dir, 0, 60, &lk, &err), SN_OK);
    assert_non_null(strstr(note_text, "took over the stale lock"));
    assert_non_null(strstr(note_text, "host elsewhere, pid 4242"));
    assert_non_null(strstr(note_text, "no heartbeat for 60"));
    struct sn_runlock_holder h;
    assert_int_equal(read_holder(&h), 0);
    assert_int_equal(h.pid, (long)getpid());
    sn_runlock_release(lk);
}

static void test_dead_process_here_taken_over_at_once(void **state)
{
    (void)state;
    const char *dir = fresh_dir("runlock_dead");
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    waitpid(child, NULL, 0); /* its pid names no process now */
    struct sn_runlock_holder me;
    sn_runlock_me(&me, "x.cfg");
    struct sn_runlock_holder dead = who(me.host, me.machine, (long)child, "", 0);
    dead.start = 0;
    write_lock(&dead, 0); /* a heartbeat just now: only the pid can tell */
    struct sn_runlock *lk = NULL;
    struct sn_err err = {0};
    assert_int_equal(acquire(dir, 0, 60, &lk, &err), SN_OK);
    assert_non_null(strstr(note_text, "its process is gone"));
    sn_runlock_release(lk);
    /* a zombie (killed, its parent has not reaped it, as when a launcher died too) is dead */
    pid_t zombie = fork();
    if (zombie == 0)
        _exit(0);
    sleep_s(0.3);
    dead.pid = (long)zombie;
    write_lock(&dead, 0);
    assert_int_equal(acquire(dir, 0, 60, &lk, &err), SN_OK);
    assert_non_null(strstr(note_text, "its process is gone"));
    sn_runlock_release(lk);
    waitpid(zombie, NULL, 0);
    /* a live process of this host (this one's parent) is refused, named as running */
    struct sn_runlock_holder live = who(me.host, me.machine, (long)getppid(), "", 0);
    live.start = 0;
    write_lock(&live, 0);
    assert_int_equal(acquire(dir, 0, 60, &lk, &err), SN_EIO);
    assert_non_null(strstr(err.msg, "(this host)"));
    assert_non_null(strstr(err.msg, "(running)"));
    assert_non_null(strstr(err.msg, "taken over at once when its process is gone"));
    unlink(lock_path);
}

static void test_lost_to_another_run(void **state)
{
    (void)state;
    const char *dir = fresh_dir("runlock_lost");
    struct sn_runlock *lk;
    struct sn_err err = {0};
    assert_int_equal(acquire(dir, 0, 60, &lk, &err), SN_OK);
    /* another run took it over (as it would after this one's long silence) */
    char theirs[1300];
    snprintf(theirs, sizeof theirs, "%s.theirs", lock_path);
    struct sn_runlock_holder other = who("elsewhere", "", 99, "", 0);
    char text[2048];
    sn_runlock_format(&other, text, sizeof text);
    assert_int_equal(sn_test_write_file(theirs, text), 0);
    assert_int_equal(rename(theirs, lock_path), 0);
    assert_int_equal(sn_runlock_check(lk, &err), SN_EIO);
    assert_non_null(strstr(err.msg, "was taken over by host elsewhere, pid 99"));
    assert_non_null(strstr(err.msg, "without writing"));
    sn_runlock_release(lk); /* leaves the other run's lock alone */
    struct sn_runlock_holder h;
    assert_int_equal(read_holder(&h), 0);
    assert_int_equal(h.pid, 99);
}

static void test_heartbeat_and_removed_by_hand(void **state)
{
    (void)state;
    const char *dir = fresh_dir("runlock_beat");
    struct sn_runlock *lk;
    struct sn_err err = {0};
    assert_int_equal(acquire(dir, 0.1, 60, &lk, &err), SN_OK);
    /* make the lock look old: the heartbeat makes it young again */
    struct timeval tv[2] = {{time(NULL) - 1000, 0}, {time(NULL) - 1000, 0}};
    assert_int_equal(utimes(lock_path, tv), 0);
    sleep_s(1.2);
    struct stat st;
    assert_int_equal(stat(lock_path, &st), 0);
    assert_true(st.st_mtime > time(NULL) - 10);
    struct sn_runlock_holder h;
    assert_int_equal(read_holder(&h), 0);
    assert_true(h.beat > h.since);
    /* removed by hand while the run lives: made again, still this run's */
    assert_int_equal(unlink(lock_path), 0);
    assert_int_equal(sn_runlock_check(lk, &err), SN_OK);
    assert_int_equal(read_holder(&h), 0);
    assert_int_equal(h.pid, (long)getpid());
    sn_runlock_release(lk);
    assert_int_equal(access(lock_path, F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_judge),
        cmocka_unit_test(test_record_round_trip),
        cmocka_unit_test(test_take_check_release),
        cmocka_unit_test(test_refused_by_live_other_host),
        cmocka_unit_test(test_stale_other_host_taken_over),
        cmocka_unit_test(test_dead_process_here_taken_over_at_once),
        cmocka_unit_test(test_lost_to_another_run),
        cmocka_unit_test(test_heartbeat_and_removed_by_hand),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
