/* fuzz_featfile.c — libFuzzer target: the feature-file reader (sn_features_read in featfile.c),
 * which `shardnet train` runs on the file a config's [data] features names.
 *
 * Input: either a whole feature file (it starts with zstd's frame magic), read as it is, or the
 * bytes inside the frame, which the target compresses into a frame with its content checksum
 * first: the frame's checksum would stop almost every mutation of the fields behind it, so this
 * second kind reaches the checks of the counts, shapes, names and labels. Each file is written
 * to a temporary file made with mkstemp in $TMPDIR (or /tmp) and unlinked at once; the reader
 * opens it through /proc/self/fd/N, so nothing is left behind.
 *
 * When a file is accepted, what the reader promises is checked: at most three splits, shapes
 * that multiply to the arrays' sizes, every label naming one of the split's classes, names
 * NUL-terminated; reading it again keeping one split gives the same shapes, and that split's
 * arrays alone. A broken promise aborts, which libFuzzer reports as a crash. Memory: the reader
 * allocates as bytes arrive, so no size field of the input can ask for more than the data it
 * really holds (run.sh caps any allocation at 512 MB). */
#include <errno.h>  // defines: errno
#include <stdint.h> // defines: uint8_t, int32_t
#include <stdio.h>  // defines: snprintf, fprintf, stderr
#include <stdlib.h> // defines: malloc, free, abort, getenv, mkstemp
#include <string.h> // defines: memcmp, strerror, strlen, strnlen
#include <unistd.h> // defines: write, close, unlink

#include <zstd.h> // defines: ZSTD_createCCtx, ZSTD_compress2, ZSTD_c_checksumFlag

#include "err.h"      // defines: struct sn_err, SN_OK
#include "featfile.h" // defines: sn_features_read, sn_features_free, struct sn_features

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const struct sn_err *err)
{
    fprintf(stderr, "fuzz_featfile: %s%s%s\n", what, err ? ": " : "", err ? err->msg : "");
    abort();
}

static void check_error(int rc, const struct sn_err *err)
{
    if (rc != SN_OK && (err->code != rc || err->msg[0] == '\0'))
        fail("an error without its code or message", err);
}

static volatile float sink; /* what the reads below feed, so that they stay */

static void check_split(const struct sn_feature_split *sp, int kept)
{
    if (sp->n < 0 || sp->h < 0 || sp->w < 0 || sp->c < 0 || sp->n_classes < 0)
        fail("a negative count", NULL);
    if (strnlen(sp->name, sizeof sp->name) == sizeof sp->name)
        fail("a split name without its NUL", NULL);
    for (int k = 0; k < sp->n_classes; k++)
        if (strnlen(sp->class_names[k], 64) == 64)
            fail("a class name without its NUL", NULL);
    if (kept != (sp->labels != NULL) || kept != (sp->x != NULL))
        fail("a split's arrays kept or dropped against `only`", NULL);
    for (int i = 0; sp->labels && i < sp->n; i++)
        if (sp->labels[i] < 0 || sp->labels[i] >= sp->n_classes)
            fail("a label outside the split's classes", NULL);
    /* the whole array is there: ASan sees a read past it */
    size_t nx = (size_t)sp->n * sp->h * sp->w * sp->c;
    for (size_t i = 0; sp->x && i < nx; i += 997)
        sink += sp->x[i];
    if (nx && sp->x)
        sink += sp->x[nx - 1];
}

static void read_file(const char *path)
{
    struct sn_err err = {0};
    struct sn_features f;
    int rc = sn_features_read(path, NULL, &f, &err);
    check_error(rc, &err);
    if (rc != SN_OK)
        return;
    if (f.n_splits < 0 || f.n_splits > 3)
        fail("more splits than three", NULL);
    for (int s = 0; s < f.n_splits; s++)
        check_split(&f.split[s], 1);
    if (f.n_splits > 0) {
        const char *only = f.split[f.n_splits - 1].name;
        struct sn_features g;
        err = (struct sn_err){0};
        rc = sn_features_read(path, only, &g, &err);
        check_error(rc, &err);
        if (rc != SN_OK || g.n_splits != f.n_splits)
            fail("read whole but not with one split kept", &err);
        for (int s = 0; s < g.n_splits; s++) {
            const struct sn_feature_split *a = &f.split[s], *b = &g.split[s];
            if (a->n != b->n || a->h != b->h || a->w != b->w || a->c != b->c ||
                a->n_classes != b->n_classes || memcmp(a->name, b->name, sizeof a->name) != 0)
                fail("two reads of one file disagree on a split's shape", NULL);
            /* a split named like the kept one is kept too */
            check_split(b, strcmp(b->name, only) == 0);
        }
        sn_features_free(&g);
    }
    sn_features_free(&f);
}

/* Writes bytes to a fresh unlinked temporary file and reads it as a feature file. */
static void read_bytes(const void *bytes, size_t n)
{
    const char *dir = getenv("TMPDIR");
    char tmpl[4096], path[64];
    snprintf(tmpl, sizeof tmpl, "%s/fuzz_featfile.XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(tmpl);
    if (fd < 0) {
        fprintf(stderr, "fuzz_featfile: cannot create %s: %s\n", tmpl, strerror(errno));
        abort();
    }
    unlink(tmpl);
    for (size_t done = 0; done < n;) {
        ssize_t w = write(fd, (const char *)bytes + done, n - done);
        if (w <= 0) {
            fprintf(stderr, "fuzz_featfile: cannot write %s: %s\n", tmpl, strerror(errno));
            abort();
        }
        done += (size_t)w;
    }
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    read_file(path);
    close(fd);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const uint8_t frame_magic[4] = {0x28, 0xb5, 0x2f, 0xfd};
    if (size >= 4 && memcmp(data, frame_magic, 4) == 0) {
        read_bytes(data, size);
        return 0;
    }
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    size_t cap = ZSTD_compressBound(size);
    void *frame = malloc(cap);
    if (!cctx || !frame || ZSTD_isError(ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)))
        fail("out of memory", NULL);
    size_t n = ZSTD_compress2(cctx, frame, cap, data, size);
    if (ZSTD_isError(n))
        fail("zstd cannot compress the input", NULL);
    read_bytes(frame, n);
    free(frame);
    ZSTD_freeCCtx(cctx);
    return 0;
}
