/* fuzz_checkpoint.c — libFuzzer target: the checkpoint reader (sn_checkpoint_read_meta,
 * sn_checkpoint_read_record, sn_checkpoint_load) and the run record's lookups (sn_record_get,
 * sn_record_count, sn_record_double) in checkpoint.c.
 *
 * Input: the bytes of a checkpoint file. The reader takes a path, so each input is written to a
 * temporary file made with mkstemp in $TMPDIR (or /tmp) and unlinked at once; the reader opens
 * it again through /proc/self/fd/N. Nothing is left behind, even when a crash ends the process,
 * and the target keeps no state between inputs.
 *
 * Every input is read as it is. Checksums would stop almost every mutation at the first check,
 * so when they do not match, the input is read again with them recomputed, once per header
 * layout (version 1: 144 bytes; version 2: 160 bytes with the run record's size at 136 and its
 * FNV-1a 64 at 144; in both the last 8 header bytes are FNV-1a 64 of the bytes before them,
 * little-endian — checkpoint.c): mutations of the header fields and of the record then reach
 * the checks behind the checksums. The zstd payload keeps its own checksum, verified at its end.
 *
 * When the header is accepted: the record is read and every key in it looked up; if the header
 * declares at most 2^20 floats, the arrays are allocated at exactly that size (ASan sees any
 * write past them) and the file is loaded with the optimizer moments, without them (which must
 * give the same parameters), and for a model of another size (which must fail with SN_EINVAL).
 * A broken expectation aborts, which libFuzzer reports as a crash. */
#include <errno.h>  // defines: errno
#include <stdint.h> // defines: uint8_t, uint64_t
#include <stdio.h>  // defines: snprintf, fprintf, stderr
#include <stdlib.h> // defines: malloc, free, abort, getenv, mkstemp
#include <string.h> // defines: memcpy, memcmp, strerror, strlen, strchr, strcspn
#include <unistd.h> // defines: write, close, unlink

#include "checkpoint.h" // defines: sn_checkpoint_read_meta, sn_checkpoint_load, sn_record_get,
                        //          sn_record_count, sn_record_double
#include "err.h"        // defines: struct sn_err, SN_OK, SN_EINVAL
#include "sys.h"        // defines: sn_hash_bytes, SN_HASH_INIT

/* Largest total of floats a header may declare for the target to load it (4 MB of floats). */
#define MAX_FLOATS (1u << 20)
/* Version 2 header: u64 size of the run record at this offset, then u64 FNV-1a 64 of it. */
#define V2_RECORD_AT 136

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const struct sn_err *err)
{
    fprintf(stderr, "fuzz_checkpoint: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
    abort();
}

static void check_error(int rc, const struct sn_err *err)
{
    if (rc != SN_OK && (err->code != rc || err->msg[0] == '\0'))
        fail("an error without its code or message", err);
}

/* Reads the run record and looks up each of its keys (the text before '=' on each line). */
static void read_record(const char *path, const struct sn_ckpt_meta *meta)
{
    struct sn_err err = {0};
    char *text = NULL;
    int rc = sn_checkpoint_read_record(path, &text, &err);
    check_error(rc, &err);
    if (rc != SN_OK)
        return;
    if (text == NULL || strlen(text) != meta->record_bytes)
        fail("the run record is not the size its header gives", NULL);
    char key[64], value[4096], small[4];
    for (const char *line = text; *line;) {
        size_t k = strcspn(line, "=\n");
        if (line[k] == '=' && k < sizeof key) {
            memcpy(key, line, k);
            key[k] = '\0';
            int count = sn_record_count(text, key);
            if (count < 1 || !sn_record_get(text, key, 0, value, sizeof value) ||
                !sn_record_get(text, key, count - 1, small, sizeof small) ||
                sn_record_get(text, key, count, value, sizeof value))
                fail("a key of the run record is not found as many times as it occurs", NULL);
            double d;
            (void)sn_record_double(text, key, count - 1, &d);
        }
        const char *nl = strchr(line, '\n');
        line = nl ? nl + 1 : line + strlen(line);
    }
    free(text);
}

/* Loads path whose header gave meta; the arrays are exactly the declared sizes. */
static void load(const char *path, const struct sn_ckpt_meta *meta)
{
    uint64_t np = meta->n_params, ns = meta->n_state, no = meta->n_opt;
    if (np > MAX_FLOATS || ns > MAX_FLOATS || no > MAX_FLOATS || np + ns + no > MAX_FLOATS)
        return;
    float *params = np ? malloc(np * sizeof(float)) : NULL;
    float *params2 = np ? malloc(np * sizeof(float)) : NULL;
    float *state = ns ? malloc(ns * sizeof(float)) : NULL;
    float *opt = no ? malloc(no * sizeof(float)) : NULL;
    if ((np && (!params || !params2)) || (ns && !state) || (no && !opt))
        fail("out of memory", NULL);

    struct sn_err err = {0};
    struct sn_ckpt_meta m;
    int rc = sn_checkpoint_load(path, &m, params, -1, state, -1, opt, -1, &err);
    check_error(rc, &err);
    if (rc == SN_OK) {
        if (m.n_params != np || m.n_state != ns || m.n_opt != no || m.step != meta->step ||
            m.epoch != meta->epoch)
            fail("sn_checkpoint_load's header differs from sn_checkpoint_read_meta's", NULL);
        /* without the optimizer moments: the same parameters */
        err = (struct sn_err){0};
        rc = sn_checkpoint_load(path, &m, params2, (int64_t)np, state, (int64_t)ns, NULL, -1,
                                &err);
        check_error(rc, &err);
        if (rc != SN_OK)
            fail("loads with the optimizer moments but not without them", &err);
        if (np && memcmp(params, params2, np * sizeof(float)) != 0)
            fail("parameters differ between two loads of the same file", NULL);
    }
    /* a model of another size: refused before anything is read */
    err = (struct sn_err){0};
    rc = sn_checkpoint_load(path, &m, params, (int64_t)np + 1, state, -1, opt, -1, &err);
    check_error(rc, &err);
    if (rc != SN_EINVAL)
        fail("a parameter count that differs from the model's is not SN_EINVAL", &err);
    free(opt);
    free(state);
    free(params2);
    free(params);
}

/* Writes bytes to a fresh unlinked temporary file and reads it as a checkpoint. */
static void read_bytes(const uint8_t *bytes, size_t n)
{
    const char *dir = getenv("TMPDIR");
    char tmpl[4096], path[64];
    snprintf(tmpl, sizeof tmpl, "%s/fuzz_checkpoint.XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(tmpl);
    if (fd < 0) {
        fprintf(stderr, "fuzz_checkpoint: cannot create %s: %s\n", tmpl, strerror(errno));
        abort();
    }
    unlink(tmpl);
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, bytes + done, n - done);
        if (w <= 0) {
            fprintf(stderr, "fuzz_checkpoint: cannot write %s: %s\n", tmpl, strerror(errno));
            abort();
        }
        done += (size_t)w;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);

    struct sn_err err = {0};
    struct sn_ckpt_meta meta;
    int rc = sn_checkpoint_read_meta(path, &meta, &err);
    check_error(rc, &err);
    if (rc == SN_OK) {
        read_record(path, &meta);
        load(path, &meta);
    }
    close(fd);
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Reads data again with the checksums of one header layout recomputed, if they differ.
 * record_at: offset of the record's size (its FNV-1a follows), 0 for a layout without record. */
static void read_resealed(const uint8_t *data, size_t size, size_t header, size_t record_at)
{
    if (size < header)
        return;
    uint8_t *copy = malloc(size);
    if (copy == NULL)
        fail("out of memory", NULL);
    memcpy(copy, data, size);
    if (record_at) {
        uint64_t n = get64(copy + record_at);
        if (n <= size - header)
            put64(copy + record_at + 8, sn_hash_bytes(copy + header, (size_t)n, SN_HASH_INIT));
    }
    put64(copy + header - 8, sn_hash_bytes(copy, header - 8, SN_HASH_INIT));
    if (memcmp(copy, data, header) != 0)
        read_bytes(copy, size);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    read_bytes(data, size);
    read_resealed(data, size, SN_CKPT_V1_HEADER_SIZE, 0);
    read_resealed(data, size, SN_CKPT_HEADER_SIZE, V2_RECORD_AT);

    /* the record lookups on arbitrary text as well */
    char *text = malloc(size + 1), value[64];
    if (text == NULL)
        fail("out of memory", NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    double d;
    for (int nth = 0; nth < 3; nth++) {
        (void)sn_record_get(text, "class", nth, value, sizeof value);
        (void)sn_record_double(text, "history", nth, &d);
    }
    (void)sn_record_count(text, "");
    (void)sn_record_count(text, "class");
    free(text);
    return 0;
}
