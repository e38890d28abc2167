/* index_cache.c — ROOT/.shardnet-index read (checked whole, then against the folders' state)
 * and written (atomically, best effort). The format and the rules are in index_cache.h. */
#include "index_cache.h"

#include <stdint.h>   // defines: int64_t, uint64_t
#include <stdio.h>    // defines: fopen, fread, fwrite, snprintf
#include <stdlib.h>   // defines: malloc, calloc, free
#include <string.h>   // defines: memset, strcmp, strchr
#include <sys/stat.h> // defines: stat, fstat, S_ISDIR, S_ISREG
#include <time.h>     // defines: time
#include <unistd.h>   // defines: access, W_OK

#include "bytes.h"
#include "dataset.h" // defines: SN_PATH_MAX, SN_INDEX_CACHE_NAME
#include "sys.h"

#define INDEX_MAGIC 0x58494e53u /* "SNIX" */
#define INDEX_VERSION 1u
#define INDEX_HEADER 24

static void index_path(char *out, size_t cap, const char *root)
{
    snprintf(out, cap, "%s/%s", root, SN_INDEX_CACHE_NAME);
}

/* Serializes x into b (header included). */
static void index_serialize(const struct sn_scan_index *x, struct sn_wbuf *b)
{
    sn_wbuf_u32(b, INDEX_MAGIC);
    sn_wbuf_u32(b, INDEX_VERSION);
    sn_wbuf_u64(b, 0); /* payload bytes and checksum, filled below */
    sn_wbuf_u64(b, 0);
    sn_wbuf_u32(b, (uint32_t)x->n_walked);
    for (int i = 0; i < x->n_walked; i++) {
        sn_wbuf_str(b, x->walked[i].rel);
        sn_wbuf_u64(b, (uint64_t)x->walked[i].sec);
        sn_wbuf_u64(b, (uint64_t)x->walked[i].nsec);
        sn_wbuf_u64(b, x->walked[i].ino);
    }
    sn_wbuf_u32(b, (uint32_t)x->folders.n);
    for (int i = 0; i < x->folders.n; i++) {
        sn_wbuf_str(b, x->folders.v[i]);
        sn_wbuf_u32(b, (uint32_t)(x->first[i + 1] - x->first[i]));
        for (int k = x->first[i]; k < x->first[i + 1]; k++)
            sn_wbuf_str(b, x->files.v[k]);
    }
    if (b->oom)
        return;
    uint64_t len = b->n - INDEX_HEADER, sum = sn_hash_bytes(b->p + INDEX_HEADER, len,
                                                            SN_HASH_INIT);
    struct sn_wbuf h = {.p = b->p + 8, .cap = 16};
    sn_wbuf_u64(&h, len);
    sn_wbuf_u64(&h, sum);
}

/* Parses an index file's bytes. Returns 0 with x filled, or -1 with why set (x empty). */
static int index_parse(const unsigned char *p, size_t n, struct sn_scan_index *x, char *why,
                       size_t cap)
{
    memset(x, 0, sizeof *x);
    struct sn_rbuf r = {.p = p, .n = n};
    uint32_t magic = sn_rbuf_u32(&r), version = sn_rbuf_u32(&r);
    uint64_t len = sn_rbuf_u64(&r), sum = sn_rbuf_u64(&r);
    if (r.bad || magic != INDEX_MAGIC) {
        snprintf(why, cap, "not an index file (bad magic or shorter than its header)");
        return -1;
    }
    if (version != INDEX_VERSION) {
        snprintf(why, cap, "version %u, expected %u", version, INDEX_VERSION);
        return -1;
    }
    if (len != n - INDEX_HEADER) {
        snprintf(why, cap, "%zu bytes, its header says %llu", n,
                 (unsigned long long)len + INDEX_HEADER);
        return -1;
    }
    if (sn_hash_bytes(p + INDEX_HEADER, (size_t)len, SN_HASH_INIT) != sum) {
        snprintf(why, cap, "checksum mismatch");
        return -1;
    }
    char s[SN_PATH_MAX];
    struct sn_err err = {0};
    int nw = sn_rbuf_count(&r, 28);
    for (int i = 0; i < nw && !r.bad; i++) {
        sn_rbuf_str(&r, s, sizeof s, 0);
        int64_t sec = (int64_t)sn_rbuf_u64(&r);
        int64_t nsec = (int64_t)sn_rbuf_u64(&r);
        uint64_t ino = sn_rbuf_u64(&r);
        if (!r.bad && (!sn_path_rel_safe(s) ||
                       sn_scan_index_add_walked(x, s, sec, nsec, ino, &err) != SN_OK))
            r.bad = 1;
    }
    int nf = sn_rbuf_count(&r, 8);
    x->first = r.bad ? NULL : calloc((size_t)nf + 1, sizeof *x->first);
    if (x->first == NULL)
        r.bad = 1;
    for (int i = 0; i < nf && !r.bad; i++) {
        sn_rbuf_str(&r, s, sizeof s, 0);
        if (r.bad || strchr(s, '/') || !sn_path_rel_safe(s) ||
            (i > 0 && strcmp(x->folders.v[i - 1], s) >= 0) ||
            sn_strlist_push(&x->folders, s, &err) != SN_OK) {
            r.bad = 1;
            break;
        }
        x->first[i] = x->files.n;
        int k = sn_rbuf_count(&r, 4);
        for (int j = 0; j < k && !r.bad; j++) {
            sn_rbuf_str(&r, s, sizeof s, 0);
            if (r.bad || !sn_path_rel_safe(s) || sn_strlist_push(&x->files, s, &err) != SN_OK)
                r.bad = 1;
        }
    }
    if (!r.bad)
        x->first[x->folders.n] = x->files.n;
    if (r.bad || r.off != r.n) {
        snprintf(why, cap, "its contents do not parse at byte %zu", r.off);
        sn_scan_index_free(x);
        return -1;
    }
    return 0;
}

/* 1 when the folders under root are as x recorded them. */
static int index_fresh(const char *root, const struct sn_scan_index *x)
{
    struct sn_strlist now = {0};
    struct sn_err err;
    int fresh = sn_scan_class_folders(root, &now, &err) == SN_OK &&
                now.n == x->folders.n;
    for (int i = 0; fresh && i < now.n; i++)
        fresh = strcmp(now.v[i], x->folders.v[i]) == 0;
    sn_strlist_free(&now);
    for (int i = 0; fresh && i < x->n_walked; i++) {
        char p[SN_PATH_MAX];
        struct stat st;
        fresh = sn_path_join(p, sizeof p, root, x->walked[i].rel, &err) == SN_OK &&
                stat(p, &st) == 0 && S_ISDIR(st.st_mode) &&
                (int64_t)st.st_mtim.tv_sec == x->walked[i].sec &&
                (int64_t)st.st_mtim.tv_nsec == x->walked[i].nsec &&
                (uint64_t)st.st_ino == x->walked[i].ino;
    }
    return fresh;
}

/* Reads root's cache. Returns 1 when x holds a fresh index, 0 otherwise (no file, stale, or
 * damaged: then note says so). */
static int index_read(const char *root, struct sn_scan_index *x, char *note, size_t note_cap)
{
    char path[SN_PATH_MAX + 32];
    index_path(path, sizeof path, root);
    FILE *f;
    struct sn_err oerr; /* a FIFO at its name is refused (f NULL), not waited for */
    if (sn_fopen_regular(path, "rb", "index cache", &f, &oerr) == SN_EIO)
        return 0;
    struct stat st;
    unsigned char *p = NULL;
    char why[200] = "";
    /* 16 GiB bounds a file that claims to list more than any folder holds */
    if (!f || fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (1ll << 34))
        snprintf(why, sizeof why, "not a regular file of a plausible size");
    else if ((p = malloc((size_t)st.st_size + 1)) == NULL)
        snprintf(why, sizeof why, "out of memory reading it");
    else if (fread(p, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        snprintf(why, sizeof why, "cannot be read whole");
    if (f)
        fclose(f);
    int ok = !why[0] && index_parse(p, (size_t)st.st_size, x, why, sizeof why) == 0;
    free(p);
    if (!ok) {
        snprintf(note, note_cap, "%s is damaged (%s): ignored, %s is scanned again", path, why,
                 root);
        return 0;
    }
    if (!index_fresh(root, x)) {
        sn_scan_index_free(x);
        return 0;
    }
    return 1;
}

/* Writes root's cache atomically, if it can: a read-only or full data folder is not an error,
 * the next run scans again. Not written when a folder changed in the second before the scan
 * began: a file added in the same tick of a coarse clock would leave the mtime unchanged. */
static void index_write(const char *root, const struct sn_scan_index *x, time_t scan_began)
{
    for (int i = 0; i < x->n_walked; i++)
        if (x->walked[i].sec >= (int64_t)scan_began - 1)
            return;
    struct sn_wbuf b = {0};
    index_serialize(x, &b);
    char path[SN_PATH_MAX + 32];
    index_path(path, sizeof path, root);
    struct sn_atomic_file af;
    struct sn_err err;
    if (!b.oom && access(root, W_OK) == 0 && sn_atomic_open(&af, path, &err) == SN_OK) {
        if (fwrite(b.p, 1, b.n, af.f) == b.n)
            (void)sn_atomic_commit(&af, &err);
        else
            sn_atomic_abort(&af);
    }
    free(b.p);
}

int sn_index_cache_scan(const char *root, int use_cache, struct sn_scan_index *x, int *cached,
                        char *note, size_t note_cap, struct sn_err *err)
{
    *cached = 0;
    if (note_cap > 0)
        note[0] = '\0';
    if (use_cache && index_read(root, x, note, note_cap)) {
        *cached = 1;
        return SN_OK;
    }
    time_t began = time(NULL);
    int rc = sn_scan_index_build(root, x, err);
    if (rc != SN_OK) {
        sn_scan_index_free(x);
        return rc;
    }
    if (use_cache)
        index_write(root, x, began);
    return SN_OK;
}

