/* mpi_index.c — the file list read by rank 0 alone and broadcast (sn_dataset_open_shared), at
 * every rank count ctest runs (1..4).
 *
 * Ranks other than 0 run with the SN_TEST_FORBID_SCAN hook set, so that a rank that reads a data
 * folder itself fails instead of passing by accident; afterwards, with the hook cleared, each
 * rank scans for itself and must find exactly what it received. An error met by rank 0 reaches
 * every rank; a rank without the folder rank 0 listed says so; a rank without memory for the
 * list makes every rank return the same error instead of leaving them in the broadcast. The file
 * list rank 0 keeps (in XDG_CACHE_HOME, which every rank here shares, as the nodes of a cluster
 * share a home) is read by a requeued job's rank 0 wherever it runs, and nothing is written into
 * the data folders unless index_cache = beside.
 *
 * This executable is linked with --wrap=malloc (tests/CMakeLists.txt): every call of malloc in
 * the shardnet code linked into it goes through __wrap_malloc below, which can fail one of them
 * on request. MPI's and libc's own calls are not wrapped. */
#include <setjmp.h> // defines: jmp_buf (cmocka needs it)
#include <stdarg.h> // defines: va_list (cmocka needs it)
#include <stddef.h> // defines: size_t (cmocka needs it)
#include <stdint.h> // defines: uintmax_t (cmocka needs it)
#include <cmocka.h> // defines: cmocka_unit_test, assert_int_equal, cmocka_run_group_tests

#include <stdio.h>    // defines: snprintf, fopen
#include <stdlib.h>   // defines: malloc, free, setenv, getenv, system
#include <string.h>   // defines: strstr, strcmp
#include <sys/stat.h> // defines: mkdir
#include <unistd.h>   // defines: chdir, getcwd

#include "dataset.h"
#include "dist.h"
#include "testutil.h"

#define WATCHDOG_SECONDS 20.0

/* The watchdog's message, then the end of the job: a hang shows which collective it was. */
static void on_hang(const char *msg, void *user)
{
    fprintf(stderr, "mpi_index: %s\n", msg);
    sn_dist_abort(user, SN_DIST_PEER_LOST_EXIT);
}

/* The next malloc of exactly fail_size bytes returns NULL, once, while fail_armed is set;
 * fail_hits counts those failures. */
void *__real_malloc(size_t n);
void *__wrap_malloc(size_t n);
static size_t fail_size;
static int fail_armed, fail_hits;

void *__wrap_malloc(size_t n)
{
    if (fail_armed && n == fail_size) {
        fail_armed = 0;
        fail_hits++;
        return NULL;
    }
    return __real_malloc(n);
}

static int group_setup(void **state)
{
    struct sn_dist *d = malloc(sizeof *d);
    struct sn_err err = {0};
    if (d == NULL || sn_dist_init(d, NULL, NULL, &err) != SN_OK) {
        fprintf(stderr, "mpi_index: sn_dist_init failed: %s\n", err.msg);
        free(d);
        return -1;
    }
    /* the user's cache folder of every rank: one folder, as a home shared by every node */
    const char *base = getenv("SN_TEST_TMP");
    char xdg[1024];
    snprintf(xdg, sizeof xdg, "%s/mpi_index_xdg_%d", base ? base : "/tmp/shardnet-test", d->world);
    setenv("XDG_CACHE_HOME", xdg, 1);
    sn_dist_set_watchdog_handler(d, on_hang, d);
    sn_dist_set_watchdog(d, WATCHDOG_SECONDS);
    *state = d;
    return 0;
}

static int group_teardown(void **state)
{
    sn_dist_finalize(*state);
    free(*state);
    return 0;
}

/* DIR/{train,val}/<class>/<file> made by rank 0; every rank gets the path. */
static void make_tree(struct sn_dist *d, char *root, size_t cap)
{
    const char *base = getenv("SN_TEST_TMP");
    snprintf(root, cap, "%s/mpi_index_%d", base ? base : "/tmp/shardnet-test", d->world);
    struct sn_err err = {0};
    if (d->rank == 0) {
        char name[64];
        snprintf(name, sizeof name, "mpi_index_%d", d->world);
        sn_test_dir(name); /* empty: a cache left by an earlier run would be used */
        static const char *const files[] = {
            "train/cat/1.jpg", "train/cat/2.jpg", "train/cat/deep/3.jpg", "train/dog/a.png",
            "train/dog/b.png", "train/emu/x.jpeg", "val/cat/v1.jpg",      "val/emu/v2.jpg"};
        char p[1400];
        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
            snprintf(p, sizeof p, "%s/%s", root, files[i]);
            for (char *s = p + 1; *s; s++)
                if (*s == '/') {
                    *s = '\0';
                    mkdir(p, 0755);
                    *s = '/';
                }
            FILE *f = fopen(p, "w");
            assert_non_null(f);
            fputs("x", f);
            fclose(f);
        }
    }
    assert_int_equal(sn_dist_barrier(d, &err), SN_OK);
}

static void conf(struct sn_data_conf *dc, const char *root)
{
    memset(dc, 0, sizeof *dc);
    snprintf(dc->dir, sizeof dc->dir, "%s", root);
    dc->height = dc->width = 8;
    dc->channels = 1;
    dc->index_cache = SN_INDEX_CACHE_HOME;
}

/* 1 when a name under root begins with ".shardnet" (a cache beside the data). */
static int shardnet_files_in(const char *root)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "test -z \"$(find '%s' -name '.shardnet*')\"", root);
    return system(cmd) != 0;
}

/* Runs a shell command; it must succeed. */
static void run(const char *cmd)
{
    if (system(cmd) != 0)
        fail_msg("failed: %s", cmd);
}

static void test_ranks_receive_rank0_index(void **state)
{
    struct sn_dist *d = *state;
    char root[1024];
    make_tree(d, root, sizeof root);
    struct sn_data_conf dc;
    conf(&dc, root);
    struct sn_err err = {0};
    if (d->rank > 0)
        setenv("SN_TEST_FORBID_SCAN", "1", 1);
    struct sn_dataset *train = NULL, *val = NULL;
    int rc = sn_dataset_open_shared(&train, d, &dc, SN_SPLIT_TRAIN, NULL, &err);
    if (rc != SN_OK)
        fail_msg("rank %d: %s", d->rank, err.msg);
    struct sn_classes known = {train->n_classes, (const char(*)[64])train->class_names};
    rc = sn_dataset_open_shared(&val, d, &dc, SN_SPLIT_VAL, &known, &err);
    if (rc != SN_OK)
        fail_msg("rank %d: %s", d->rank, err.msg);
    unsetenv("SN_TEST_FORBID_SCAN");
    assert_int_equal(train->index_source,
                     d->rank == 0 || d->world == 1 ? SN_INDEX_SCANNED : SN_INDEX_RECEIVED);
    assert_int_equal(train->n, 6);
    assert_int_equal(val->n, 2);
    assert_int_equal(val->class_count[1], 0); /* dog: the split lacks it */
    if (d->rank == 0)
        assert_false(shardnet_files_in(root)); /* the data folders are left alone */

    /* what each rank finds by itself, once allowed to look */
    dc.index_cache = 0;
    struct sn_dataset *own = NULL;
    assert_int_equal(sn_dataset_open(&own, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    sn_test_assert_same_dataset(train, own);
    sn_dataset_free(own);
    assert_int_equal(sn_dataset_open(&own, &dc, SN_SPLIT_VAL, &known, &err), SN_OK);
    sn_test_assert_same_dataset(val, own);
    sn_dataset_free(own);
    sn_dataset_free(train);
    sn_dataset_free(val);
    assert_int_equal(sn_dist_barrier(d, &err), SN_OK);
}

static void test_rank0_error_reaches_every_rank(void **state)
{
    struct sn_dist *d = *state;
    struct sn_data_conf dc;
    conf(&dc, "/nonexistent-shardnet-data");
    struct sn_err err = {0};
    if (d->rank > 0)
        setenv("SN_TEST_FORBID_SCAN", "1", 1);
    struct sn_dataset *ds = NULL;
    int rc = sn_dataset_open_shared(&ds, d, &dc, SN_SPLIT_TRAIN, NULL, &err);
    unsetenv("SN_TEST_FORBID_SCAN");
    assert_int_equal(rc, SN_EDATA);
    assert_null(ds);
    if (strstr(err.msg, "/nonexistent-shardnet-data") == NULL)
        fail_msg("rank %d: '%s' does not name the folder", d->rank, err.msg);
    assert_int_equal(sn_dist_barrier(d, &err), SN_OK);
}

/* Rank 0 lists a folder that another rank does not have (a relative path, from another working
 * directory): that rank says so, naming the folder, instead of failing on every image. */
static void test_folder_missing_on_a_rank(void **state)
{
    struct sn_dist *d = *state;
    char root[1024], base[1024], cwd[4096];
    make_tree(d, root, sizeof root);
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(base, sizeof base, "%s", root);
    char *slash = strrchr(base, '/');
    assert_non_null(slash);
    *slash = '\0';
    assert_int_equal(chdir(d->rank == 0 ? base : "/"), 0);
    struct sn_data_conf dc;
    conf(&dc, slash + 1);
    struct sn_err err = {0};
    struct sn_dataset *ds = NULL;
    int rc = sn_dataset_open_shared(&ds, d, &dc, SN_SPLIT_TRAIN, NULL, &err);
    assert_int_equal(chdir(cwd), 0);
    if (d->rank == 0) {
        assert_int_equal(rc, SN_OK);
        sn_dataset_free(ds);
    } else {
        assert_int_equal(rc, SN_EDATA);
        assert_null(ds);
        if (strstr(err.msg, "listed by rank 0, is not a folder here") == NULL ||
            strstr(err.msg, slash + 1) == NULL)
            fail_msg("rank %d: '%s'", d->rank, err.msg);
    }
    assert_int_equal(sn_dist_barrier(d, &err), SN_OK);
}

/* The last rank cannot allocate the bytes of rank 0's list: every rank returns the same error,
 * marked collective and naming that rank, and the group goes on (no rank is left waiting in the
 * broadcast). One rank has no one to receive from: the check is skipped there. */
static void test_rank_short_of_memory(void **state)
{
    struct sn_dist *d = *state;
    if (d->world == 1)
        skip();
    char root[1024];
    make_tree(d, root, sizeof root);
    struct sn_data_conf dc;
    conf(&dc, root);
    dc.index_cache = 0;
    struct sn_err err = {0};
    /* the size of what rank 0 will send: every rank lists the same folder at the same path */
    struct sn_dataset *own = NULL;
    void *bytes = NULL;
    size_t len = 0;
    assert_int_equal(sn_dataset_open(&own, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    assert_int_equal(sn_dataset_pack(own, &bytes, &len, &err), SN_OK);
    free(bytes);
    sn_dataset_free(own);
    assert_true(len > 0);

    int victim = d->world - 1;
    fail_hits = 0;
    if (d->rank == victim) {
        fail_size = len;
        fail_armed = 1;
    }
    if (d->rank > 0)
        setenv("SN_TEST_FORBID_SCAN", "1", 1);
    struct sn_dataset *ds = NULL;
    int rc = sn_dataset_open_shared(&ds, d, &dc, SN_SPLIT_TRAIN, NULL, &err);
    fail_armed = 0;
    assert_int_equal(fail_hits, d->rank == victim); /* the failure did happen, there */
    assert_int_equal(rc, SN_ENOMEM);
    assert_null(ds);
    assert_true(err.collective);
    char want[256];
    snprintf(want, sizeof want,
             "rank %d: out of memory for the file list of the train split (%zu bytes)", victim,
             len);
    if (strcmp(err.msg, want) != 0)
        fail_msg("rank %d: '%s', expected '%s'", d->rank, err.msg, want);

    /* every rank left the call in step: the next one works */
    err = (struct sn_err){0};
    rc = sn_dataset_open_shared(&ds, d, &dc, SN_SPLIT_TRAIN, NULL, &err);
    unsetenv("SN_TEST_FORBID_SCAN");
    if (rc != SN_OK)
        fail_msg("rank %d: %s", d->rank, err.msg);
    assert_int_equal(ds->n, 6);
    sn_dataset_free(ds);
    assert_int_equal(sn_dist_barrier(d, &err), SN_OK);
}

/* Opens the train split on every rank (rank 0 reads, the others receive) and checks where rank
 * 0's list came from. */
static struct sn_dataset *open_shared(struct sn_dist *d, const struct sn_data_conf *dc,
                                      enum sn_index_source rank0, int line)
{
    struct sn_err err = {0};
    struct sn_dataset *ds = NULL;
    if (d->rank > 0)
        setenv("SN_TEST_FORBID_SCAN", "1", 1);
    int rc = sn_dataset_open_shared(&ds, d, dc, SN_SPLIT_TRAIN, NULL, &err);
    unsetenv("SN_TEST_FORBID_SCAN");
    if (rc != SN_OK)
        fail_msg("line %d: rank %d: %s", line, d->rank, err.msg);
    enum sn_index_source want = d->rank == 0 || d->world == 1 ? rank0 : SN_INDEX_RECEIVED;
    if (ds->index_source != want)
        fail_msg("line %d: rank %d: index source %d, expected %d", line, d->rank,
                 ds->index_source, want);
    return ds;
}

/* Opens the train split on this rank alone. */
static struct sn_dataset *open_alone(const struct sn_data_conf *dc, enum sn_index_source want,
                                     int line)
{
    struct sn_err err = {0};
    struct sn_dataset *ds = NULL;
    if (sn_dataset_open(&ds, dc, SN_SPLIT_TRAIN, NULL, &err) != SN_OK)
        fail_msg("line %d: %s", line, err.msg);
    if (ds->index_source != want)
        fail_msg("line %d: index source %d, expected %d", line, ds->index_source, want);
    return ds;
}

/* A job requeued with its rank 0 on another node: played by the last rank, which opens the
 * split by itself. With the homes shared (the same XDG_CACHE_HOME) it reads the entry the first
 * job's rank 0 wrote, which holds there (same path, same inodes and mtimes); with a home of its
 * own it lists the folder, as the first job did, and finds the same. Beside the data, the entry
 * is with the data, where every node sees it. */
static void test_requeued_rank0_reads_the_cache(void **state)
{
    struct sn_dist *d = *state;
    char root[1024], xdg[1100], own[1200];
    make_tree(d, root, sizeof root);
    snprintf(xdg, sizeof xdg, "%s", getenv("XDG_CACHE_HOME"));
    snprintf(own, sizeof own, "%s_rank%d", xdg, d->rank);
    struct sn_err err = {0};
    char cmd[3000];
    /* folders older than a second, or the entry is not written */
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && find '%s' -type d -exec touch -d '1 hour ago' {} +",
             xdg, root);
    if (d->rank == 0)
        run(cmd);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", own);
    run(cmd);
    assert_int_equal(sn_dist_barrier(d, &err), SN_OK);
    struct sn_data_conf dc;
    conf(&dc, root);
    struct sn_data_conf no = dc;
    no.index_cache = SN_INDEX_CACHE_NO;

    /* the first job: rank 0 lists and writes its entry; the second reads it */
    struct sn_dataset *first = open_shared(d, &dc, SN_INDEX_SCANNED, __LINE__);
    assert_int_equal(sn_dist_barrier(d, &err), SN_OK);
    struct sn_dataset *ds = open_shared(d, &dc, SN_INDEX_CACHED, __LINE__);
    sn_test_assert_same_dataset(first, ds);
    sn_dataset_free(ds);
    if (d->rank == 0)
        assert_false(shardnet_files_in(root));
    assert_int_equal(sn_dist_barrier(d, &err), SN_OK);

    struct sn_dataset *mine = open_alone(&no, SN_INDEX_SCANNED, __LINE__);
    sn_test_assert_same_dataset(first, mine);
    if (d->rank == d->world - 1) {
        ds = open_alone(&dc, SN_INDEX_CACHED, __LINE__); /* shared home */
        sn_test_assert_same_dataset(mine, ds);
        sn_dataset_free(ds);
        setenv("XDG_CACHE_HOME", own, 1); /* a home of its own */
        ds = open_alone(&dc, SN_INDEX_SCANNED, __LINE__);
        sn_test_assert_same_dataset(mine, ds);
        sn_dataset_free(ds);
        setenv("XDG_CACHE_HOME", xdg, 1);
    }
    assert_int_equal(sn_dist_barrier(d, &err), SN_OK);

    /* beside: rank 0 writes ROOT/train/.shardnet-index, which the requeued rank 0 reads */
    dc.index_cache = SN_INDEX_CACHE_BESIDE;
    ds = open_shared(d, &dc, SN_INDEX_SCANNED, __LINE__);
    sn_dataset_free(ds);
    assert_int_equal(sn_dist_barrier(d, &err), SN_OK);
    if (d->rank == d->world - 1) {
        assert_true(shardnet_files_in(root));
        ds = open_alone(&dc, SN_INDEX_CACHED, __LINE__);
        sn_test_assert_same_dataset(mine, ds);
        sn_dataset_free(ds);
    }
    sn_dataset_free(mine);
    sn_dataset_free(first);
    assert_int_equal(sn_dist_barrier(d, &err), SN_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ranks_receive_rank0_index),
        cmocka_unit_test(test_rank0_error_reaches_every_rank),
        cmocka_unit_test(test_folder_missing_on_a_rank),
        cmocka_unit_test(test_rank_short_of_memory),
        cmocka_unit_test(test_requeued_rank0_reads_the_cache),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
