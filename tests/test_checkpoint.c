/* test_checkpoint.c — the checkpoint format: bit-exact round trip, and a refusal with a message
 * naming the file for every kind of damage (truncation, magic, header and payload corruption,
 * counts); a failed save leaves no temporary file and the previous checkpoint intact. */
#include <setjmp.h> // defines: jmp_buf (needed by cmocka.h)
#include <stdarg.h> // defines: va_list (needed by cmocka.h)
#include <stddef.h> // defines: size_t (needed by cmocka.h)

#include <dirent.h>       // defines: opendir, readdir
#include <math.h>         // defines: NAN, INFINITY
#include <signal.h>       // defines: signal, SIGXFSZ, SIG_IGN
#include <stdio.h>        // defines: snprintf, fopen, fread, fwrite
#include <stdlib.h>       // defines: malloc, free
#include <string.h>       // defines: memcmp, memcpy, strstr
#include <sys/resource.h> // defines: setrlimit, RLIMIT_FSIZE
#include <sys/stat.h>     // defines: stat, chmod
#include <unistd.h>       // defines: truncate, getuid

#include <cmocka.h> // defines: cmocka_unit_test, assert_*

#include "checkpoint.h"
#include "testutil.h"

#define NP 200003 /* more than three plane blocks, and not a multiple of one */
#define NS 17
#define NO (2 * NP)

struct fixture {
    float *params, *state, *opt;
    float *p2, *s2, *o2;
    struct sn_ckpt_meta meta;
    char dir[1024];
    char path[1100];
};

static int file_bytes(const char *path, unsigned char **out, long *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -1;
    fseek(f, 0, SEEK_END);
    *n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc((size_t)*n + 1);
    size_t got = fread(*out, 1, (size_t)*n, f);
    fclose(f);
    return got == (size_t)*n ? 0 : -1;
}

static int write_bytes(const char *path, const unsigned char *b, long n)
{
    FILE *f = fopen(path, "wb");
    if (!f)
        return -1;
    size_t put = fwrite(b, 1, (size_t)n, f);
    return (fclose(f) == 0 && put == (size_t)n) ? 0 : -1;
}

/* Names in dir other than "." and ".." (to find leftover temporary files). */
static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void set_bits(float *x, uint32_t u)
{
    memcpy(x, &u, sizeof u);
}

static int setup(void **state)
{
    struct fixture *fx = calloc(1, sizeof *fx);
    fx->params = malloc(NP * sizeof(float));
    fx->state = malloc(NS * sizeof(float));
    fx->opt = malloc(NO * sizeof(float));
    fx->p2 = malloc(NP * sizeof(float));
    fx->s2 = malloc(NS * sizeof(float));
    fx->o2 = malloc(NO * sizeof(float));
    sn_test_fill(fx->params, NP, -0.1f, 0.1f, 1);
    sn_test_fill(fx->state, NS, 0.0f, 2.0f, 2);
    sn_test_fill(fx->opt, NO, 0.0f, 1e-3f, 3);
    /* values whose bits a careless format would change */
    set_bits(&fx->params[0], 0x7fc12345u);    /* quiet NaN with payload */
    set_bits(&fx->params[1], 0xffa00001u);    /* negative signalling-range NaN */
    set_bits(&fx->params[2], 0x80000000u);    /* -0.0 */
    set_bits(&fx->params[3], 0x00000001u);    /* smallest denormal */
    set_bits(&fx->params[4], 0x807fffffu);    /* largest negative denormal */
    fx->params[5] = INFINITY;
    fx->params[NP - 1] = -INFINITY;
    fx->meta = (struct sn_ckpt_meta){
        .config_hash = 0x0123456789abcdefull,
        .model_hash = 0xfedcba9876543210ull,
        .epoch = 7,
        .step = 123456789012ll,
        .world_size = 3,
        .n_params = NP,
        .n_state = NS,
        .n_opt = NO,
        .best_val_loss = 0.3125,
        .val_loss = NAN,
        .lr = 1e-3f,
        .rng_state = {0x1111222233334444ull, 0x5555666677778888ull},
        .seed = 42,
        .loader_pos = 640,
    };
    snprintf(fx->dir, sizeof fx->dir, "%s", sn_test_dir("checkpoint"));
    snprintf(fx->path, sizeof fx->path, "%s/model.ckpt", fx->dir);
    struct sn_err err = {0};
    if (sn_checkpoint_save(fx->path, &fx->meta, fx->params, fx->state, fx->opt, &err) != SN_OK) {
        fprintf(stderr, "setup save: %s\n", err.msg);
        return -1;
    }
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    free(fx->params);
    free(fx->state);
    free(fx->opt);
    free(fx->p2);
    free(fx->s2);
    free(fx->o2);
    free(fx);
    return 0;
}

static int load(struct fixture *fx, const char *path, struct sn_err *err)
{
    struct sn_ckpt_meta m;
    return sn_checkpoint_load(path, &m, fx->p2, NP, fx->s2, NS, fx->o2, NO, err);
}

#define assert_msg_has(err, s)                                                                     \
    do {                                                                                           \
        if (strstr((err).msg, (s)) == NULL)                                                        \
            fail_msg("message '%s' lacks '%s'", (err).msg, (s));                                   \
    } while (0)

static void test_round_trip(void **state)
{
    struct fixture *fx = *state;
    struct sn_err err = {0};
    struct sn_ckpt_meta m;
    memset(fx->p2, 0xAB, NP * sizeof(float));
    if (sn_checkpoint_load(fx->path, &m, fx->p2, NP, fx->s2, NS, fx->o2, NO, &err) != SN_OK)
        fail_msg("%s", err.msg);
    assert_memory_equal(fx->p2, fx->params, NP * sizeof(float));
    assert_memory_equal(fx->s2, fx->state, NS * sizeof(float));
    assert_memory_equal(fx->o2, fx->opt, NO * sizeof(float));
    assert_int_equal(m.version, SN_CKPT_VERSION);
    assert_true(m.config_hash == fx->meta.config_hash);
    assert_true(m.model_hash == fx->meta.model_hash);
    assert_int_equal(m.epoch, 7);
    assert_true(m.step == 123456789012ll);
    assert_int_equal(m.world_size, 3);
    assert_true(m.n_params == NP && m.n_state == NS && m.n_opt == NO);
    assert_true(m.best_val_loss == 0.3125);
    assert_true(isnan(m.val_loss));
    assert_true(m.lr == 1e-3f);
    assert_true(m.rng_state[0] == fx->meta.rng_state[0]);
    assert_true(m.rng_state[1] == fx->meta.rng_state[1]);
    assert_true(m.seed == 42);
    assert_true(m.loader_pos == 640);

    /* opt NULL skips the moments; -1 accepts any count */
    memset(fx->p2, 0, NP * sizeof(float));
    assert_int_equal(sn_checkpoint_load(fx->path, &m, fx->p2, -1, fx->s2, -1, NULL, -1, &err),
                     SN_OK);
    assert_memory_equal(fx->p2, fx->params, NP * sizeof(float));

    /* a save over an existing file replaces it and leaves nothing else behind */
    fx->meta.epoch = 8;
    fx->params[10] = 5.0f;
    assert_int_equal(
        sn_checkpoint_save(fx->path, &fx->meta, fx->params, fx->state, fx->opt, &err), SN_OK);
    assert_int_equal(load(fx, fx->path, &err), SN_OK);
    assert_true(fx->p2[10] == 5.0f);
    assert_int_equal(count_entries(fx->dir), 1);
    assert_int_equal(sn_checkpoint_read_meta(fx->path, &m, &err), SN_OK);
    assert_int_equal(m.epoch, 8);
}

static void test_empty_and_small(void **state)
{
    struct fixture *fx = *state;
    struct sn_err err = {0};
    char path[1200];
    snprintf(path, sizeof path, "%s/empty.ckpt", fx->dir);
    struct sn_ckpt_meta m = {.epoch = 1}, r;
    assert_int_equal(sn_checkpoint_save(path, &m, NULL, NULL, NULL, &err), SN_OK);
    assert_int_equal(sn_checkpoint_load(path, &r, NULL, 0, NULL, 0, NULL, 0, &err), SN_OK);
    assert_int_equal(r.epoch, 1);
    float one = -0.0f, back = 1.0f;
    m.n_params = 1;
    assert_int_equal(sn_checkpoint_save(path, &m, &one, NULL, NULL, &err), SN_OK);
    assert_int_equal(sn_checkpoint_load(path, &r, &back, 1, NULL, 0, NULL, 0, &err), SN_OK);
    assert_memory_equal(&back, &one, sizeof one);
    m.n_state = 4;
    assert_int_equal(sn_checkpoint_save(path, &m, &one, NULL, NULL, &err), SN_EINVAL);
}

static void test_read_meta(void **state)
{
    struct fixture *fx = *state;
    struct sn_err err = {0};
    struct sn_ckpt_meta m, full;
    assert_int_equal(sn_checkpoint_read_meta(fx->path, &m, &err), SN_OK);
    assert_int_equal(load(fx, fx->path, &err), SN_OK);
    assert_int_equal(sn_checkpoint_load(fx->path, &full, fx->p2, -1, fx->s2, -1, fx->o2, -1, &err),
                     SN_OK);
    assert_true(m.n_params == NP && m.n_state == NS && m.n_opt == NO);
    assert_true(m.config_hash == full.config_hash && m.step == full.step &&
                m.epoch == full.epoch && m.seed == full.seed && m.lr == full.lr &&
                m.loader_pos == full.loader_pos);
    assert_int_equal(sn_checkpoint_read_meta("/nonexistent/x.ckpt", &m, &err), SN_EIO);
    assert_msg_has(err, "/nonexistent/x.ckpt");
}

static void test_truncated(void **state)
{
    struct fixture *fx = *state;
    unsigned char *b;
    long n;
    assert_int_equal(file_bytes(fx->path, &b, &n), 0);
    char cut[1200];
    snprintf(cut, sizeof cut, "%s/cut.ckpt", fx->dir);
    long at[] = {0, 4, 8, 11, 100, SN_CKPT_HEADER_SIZE - 1, SN_CKPT_HEADER_SIZE,
                 SN_CKPT_HEADER_SIZE + 10, n / 2, n - 5, n - 1};
    for (size_t i = 0; i < sizeof at / sizeof at[0]; i++) {
        struct sn_err err = {0};
        assert_int_equal(write_bytes(cut, b, at[i]), 0);
        int rc = load(fx, cut, &err);
        if (rc == SN_OK)
            fail_msg("a file cut at %ld of %ld bytes was accepted", at[i], n);
        assert_int_equal(rc, SN_EFORMAT);
        assert_msg_has(err, cut);
        if (at[i] >= 8)
            assert_msg_has(err, "truncated");
        struct sn_ckpt_meta m;
        assert_int_not_equal(sn_checkpoint_read_meta(cut, &m, &err), SN_OK);
    }
    /* too long is refused as well */
    unsigned char *longer = malloc((size_t)n + 3);
    memcpy(longer, b, (size_t)n);
    memset(longer + n, 0, 3);
    assert_int_equal(write_bytes(cut, longer, n + 3), 0);
    struct sn_err err = {0};
    assert_int_equal(load(fx, cut, &err), SN_EFORMAT);
    assert_msg_has(err, cut);
    free(longer);
    free(b);
}

static void test_wrong_magic_and_version(void **state)
{
    struct fixture *fx = *state;
    unsigned char *b;
    long n;
    struct sn_err err = {0};
    assert_int_equal(file_bytes(fx->path, &b, &n), 0);
    char bad[1200];
    snprintf(bad, sizeof bad, "%s/bad.ckpt", fx->dir);

    b[0] = 'X';
    assert_int_equal(write_bytes(bad, b, n), 0);
    assert_int_equal(load(fx, bad, &err), SN_EFORMAT);
    assert_msg_has(err, bad);
    assert_msg_has(err, "not a shardnet checkpoint");
    b[0] = 'S';

    assert_int_equal(sn_test_write_file(bad, "[train]\nepochs = 3\n"), 0);
    assert_int_equal(load(fx, bad, &err), SN_EFORMAT);
    assert_msg_has(err, "not a shardnet checkpoint");

    b[8] = 9; /* version 9 */
    assert_int_equal(write_bytes(bad, b, n), 0);
    assert_int_equal(load(fx, bad, &err), SN_EFORMAT);
    assert_msg_has(err, bad);
    assert_msg_has(err, "version 9");
    b[8] = SN_CKPT_VERSION;

    b[40] ^= 1; /* epoch: caught by the header checksum */
    assert_int_equal(write_bytes(bad, b, n), 0);
    assert_int_equal(load(fx, bad, &err), SN_EFORMAT);
    assert_msg_has(err, bad);
    assert_msg_has(err, "header checksum");
    free(b);
}

static void test_corrupt_payload(void **state)
{
    struct fixture *fx = *state;
    unsigned char *b;
    long n;
    assert_int_equal(file_bytes(fx->path, &b, &n), 0);
    char bad[1200];
    snprintf(bad, sizeof bad, "%s/flip.ckpt", fx->dir);
    long where[] = {SN_CKPT_HEADER_SIZE + 20, SN_CKPT_HEADER_SIZE + (n - SN_CKPT_HEADER_SIZE) / 3,
                    (n + SN_CKPT_HEADER_SIZE) / 2, n - 2};
    for (size_t i = 0; i < sizeof where / sizeof where[0]; i++) {
        struct sn_err err = {0};
        b[where[i]] ^= 0x10;
        assert_int_equal(write_bytes(bad, b, n), 0);
        b[where[i]] ^= 0x10;
        int rc = load(fx, bad, &err);
        if (rc == SN_OK)
            fail_msg("a flipped bit at byte %ld of %ld was accepted", where[i], n);
        assert_int_equal(rc, SN_EFORMAT);
        assert_msg_has(err, bad);
        /* also caught when the moments are skipped */
        struct sn_ckpt_meta m;
        assert_int_equal(sn_checkpoint_load(bad, &m, fx->p2, NP, fx->s2, NS, NULL, -1, &err),
                         SN_EFORMAT);
    }

    /* bytes after the zstd frame, with a header that counts them (and a valid checksum) */
    unsigned char *ext = malloc((size_t)n + 4);
    memcpy(ext, b, (size_t)n);
    memset(ext + n, 0, 4);
    uint64_t payload = 0;
    for (int i = 0; i < 8; i++)
        payload |= (uint64_t)ext[128 + i] << (8 * i);
    payload += 4;
    uint64_t sum;
    for (int i = 0; i < 8; i++)
        ext[128 + i] = (unsigned char)(payload >> (8 * i));
    sum = sn_hash_bytes(ext, 152, SN_HASH_INIT);
    for (int i = 0; i < 8; i++)
        ext[152 + i] = (unsigned char)(sum >> (8 * i));
    assert_int_equal(write_bytes(bad, ext, n + 4), 0);
    struct sn_err err = {0};
    assert_int_equal(load(fx, bad, &err), SN_EFORMAT);
    assert_msg_has(err, bad);
    assert_msg_has(err, "after its zstd frame");
    free(ext);
    free(b);
}

static void test_count_mismatch(void **state)
{
    struct fixture *fx = *state;
    struct sn_err err = {0};
    struct sn_ckpt_meta m;
    assert_int_equal(
        sn_checkpoint_load(fx->path, &m, fx->p2, NP + 1, fx->s2, NS, fx->o2, NO, &err),
        SN_EINVAL);
    assert_msg_has(err, fx->path);
    assert_msg_has(err, "has 200003 parameters, the model has 200004");
    assert_msg_has(err, "another config");
    assert_int_equal(sn_checkpoint_load(fx->path, &m, fx->p2, NP, fx->s2, 0, fx->o2, NO, &err),
                     SN_EINVAL);
    assert_msg_has(err, "has 17 state values");
    assert_int_equal(sn_checkpoint_load(fx->path, &m, fx->p2, NP, fx->s2, NS, fx->o2, NP, &err),
                     SN_EINVAL);
    assert_msg_has(err, "optimizer moments");
    assert_int_equal(sn_checkpoint_load("/nonexistent/y.ckpt", &m, fx->p2, NP, fx->s2, NS,
                                        fx->o2, NO, &err),
                     SN_EIO);
    assert_msg_has(err, "/nonexistent/y.ckpt");
}

static void test_failed_save(void **state)
{
    struct fixture *fx = *state;
    struct sn_err err = {0};
    unsigned char *before, *after;
    long nb, na;
    assert_int_equal(file_bytes(fx->path, &before, &nb), 0);

    /* a directory that does not exist */
    char missing[1200];
    snprintf(missing, sizeof missing, "%s/no/such/dir/m.ckpt", fx->dir);
    assert_int_equal(sn_checkpoint_save(missing, &fx->meta, fx->params, fx->state, fx->opt, &err),
                     SN_EIO);
    assert_msg_has(err, "no/such/dir/m.ckpt");

    /* PATH is a directory: rename fails after the whole file was written */
    char dirpath[1200];
    snprintf(dirpath, sizeof dirpath, "%s/sub", fx->dir);
    assert_int_equal(mkdir(dirpath, 0755), 0);
    assert_int_equal(sn_checkpoint_save(dirpath, &fx->meta, fx->params, fx->state, fx->opt, &err),
                     SN_EIO);
    assert_msg_has(err, dirpath);
    assert_int_equal(count_entries(fx->dir), 2); /* model.ckpt and sub: no tmp file */
    assert_int_equal(rmdir(dirpath), 0);

    /* the file system refuses the data (file size limit): existing PATH untouched */
    fx->params[0] = 1.0f;
    fx->meta.epoch = 99;
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 4096;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = sn_checkpoint_save(fx->path, &fx->meta, fx->params, fx->state, fx->opt, &err);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    assert_int_equal(rc, SN_EIO);
    assert_msg_has(err, fx->path);
    assert_int_equal(count_entries(fx->dir), 1);
    assert_int_equal(file_bytes(fx->path, &after, &na), 0);
    assert_int_equal(na, nb);
    assert_memory_equal(after, before, (size_t)nb);
    free(after);

    /* a read-only directory (only meaningful when not root: root writes anyway) */
    if (getuid() != 0) {
        assert_int_equal(chmod(fx->dir, 0555), 0);
        rc = sn_checkpoint_save(fx->path, &fx->meta, fx->params, fx->state, fx->opt, &err);
        assert_int_equal(chmod(fx->dir, 0755), 0);
        assert_int_equal(rc, SN_EIO);
        assert_msg_has(err, fx->path);
        assert_int_equal(count_entries(fx->dir), 1);
        assert_int_equal(file_bytes(fx->path, &after, &na), 0);
        assert_int_equal(na, nb);
        assert_memory_equal(after, before, (size_t)nb);
        free(after);
    }
    free(before);
    /* the untouched checkpoint still loads */
    assert_int_equal(load(fx, fx->path, &err), SN_OK);
}

/* The run record round-trips any text (escapes, a class named with a newline), is covered by
 * its own checksum, and an older version 1 file (no record) still loads. */
static void test_record(void **state)
{
    struct fixture *fx = *state;
    struct sn_record rec = {0};
    sn_record_add(&rec, "class", "%s", "0_T-shirt");
    sn_record_add(&rec, "class", "%s", "odd\\name\nwith=newline");
    sn_record_add(&rec, "epochs", "%d", 12);
    assert_false(rec.failed);
    char v[128];
    assert_int_equal(sn_record_count(rec.text, "class"), 2);
    assert_int_equal(sn_record_count(rec.text, "clas"), 0);
    assert_true(sn_record_get(rec.text, "class", 1, v, sizeof v));
    assert_string_equal(v, "odd\\name\nwith=newline");
    assert_true(sn_record_get(rec.text, "epochs", 0, v, sizeof v));
    assert_string_equal(v, "12");
    assert_false(sn_record_get(rec.text, "class", 2, v, sizeof v));

    char path[1200];
    snprintf(path, sizeof path, "%s/record.ckpt", fx->dir);
    struct sn_ckpt_meta m = fx->meta;
    m.record = rec.text;
    struct sn_err err = {0};
    assert_int_equal(sn_checkpoint_save(path, &m, fx->params, fx->state, fx->opt, &err), SN_OK);
    char *text = NULL;
    assert_int_equal(sn_checkpoint_read_record(path, &text, &err), SN_OK);
    assert_string_equal(text, rec.text);
    free(text);
    struct sn_ckpt_meta r;
    assert_int_equal(sn_checkpoint_load(path, &r, fx->p2, NP, fx->s2, NS, fx->o2, NO, &err), SN_OK);
    assert_int_equal(r.record_bytes, rec.len);
    assert_memory_equal(fx->p2, fx->params, NP * sizeof(float));

    /* one flipped byte inside the record */
    unsigned char *b;
    long n;
    assert_int_equal(file_bytes(path, &b, &n), 0);
    b[SN_CKPT_HEADER_SIZE + 3] ^= 0x01;
    assert_int_equal(write_bytes(path, b, n), 0);
    assert_int_equal(sn_checkpoint_load(path, &r, fx->p2, NP, fx->s2, NS, fx->o2, NO, &err),
                     SN_EFORMAT);
    assert_msg_has(err, "run record checksum");
    assert_int_equal(sn_checkpoint_read_record(path, &text, &err), SN_EFORMAT);
    free(b);
    sn_record_free(&rec);

    /* version 1: the same fields up to the payload size, the checksum at 136, no record */
    assert_int_equal(file_bytes(fx->path, &b, &n), 0);
    long n1 = n - (SN_CKPT_HEADER_SIZE - SN_CKPT_V1_HEADER_SIZE);
    unsigned char *v1 = malloc((size_t)n1);
    memcpy(v1, b, 136);
    memcpy(v1 + SN_CKPT_V1_HEADER_SIZE, b + SN_CKPT_HEADER_SIZE, (size_t)(n - SN_CKPT_HEADER_SIZE));
    v1[8] = 1;
    v1[12] = SN_CKPT_V1_HEADER_SIZE;
    uint64_t sum = sn_hash_bytes(v1, 136, SN_HASH_INIT);
    for (int i = 0; i < 8; i++)
        v1[136 + i] = (unsigned char)(sum >> (8 * i));
    snprintf(path, sizeof path, "%s/v1.ckpt", fx->dir);
    assert_int_equal(write_bytes(path, v1, n1), 0);
    assert_int_equal(sn_checkpoint_load(path, &r, fx->p2, NP, fx->s2, NS, fx->o2, NO, &err), SN_OK);
    assert_int_equal(r.version, 1);
    assert_int_equal(r.record_bytes, 0);
    assert_memory_equal(fx->p2, fx->params, NP * sizeof(float));
    assert_int_equal(sn_checkpoint_read_record(path, &text, &err), SN_OK);
    assert_string_equal(text, "");
    free(text);
    free(v1);
    free(b);
}

static void test_hash_bytes(void **state)
{
    (void)state;
    /* FNV-1a 64 reference values */
    assert_true(sn_hash_bytes("", 0, SN_HASH_INIT) == 0xcbf29ce484222325ull);
    assert_true(sn_hash_bytes("a", 1, SN_HASH_INIT) == 0xaf63dc4c8601ec8cull);
    assert_true(sn_hash_bytes("foobar", 6, SN_HASH_INIT) == 0x85944171f73967e8ull);
    /* chaining equals hashing the concatenation */
    assert_true(sn_hash_bytes("bar", 3, sn_hash_bytes("foo", 3, SN_HASH_INIT)) ==
                sn_hash_bytes("foobar", 6, SN_HASH_INIT));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_and_small, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_meta, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_magic_and_version, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corrupt_payload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_count_mismatch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_save, setup, teardown),
        cmocka_unit_test_setup_teardown(test_record, setup, teardown),
        cmocka_unit_test(test_hash_bytes),
    };
    return cmocka_run_group_tests_name("checkpoint", tests, NULL, NULL);
}
