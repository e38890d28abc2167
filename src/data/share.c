/* share.c — a split's file list as bytes, and that list read by rank 0 alone and broadcast, so
 * that a job of N ranks walks the data folders once, not N times. Rank 0 alone reads and writes
 * the file-list cache (index_cache.h); the other ranks touch neither it nor the folders.
 *
 *   "SNDS" u32 version | str root | u32 n | u32 n_found | u32 n_classes | u64 fingerprint |
 *   u32 index source | n_classes x { str class name, u32 count } | n x { u32 label, str path }
 *   (bytes.h's fields; each path relative to root) */
#include "dataset.h"

#include <errno.h>    // defines: errno, ENOTDIR
#include <stdio.h>    // defines: snprintf
#include <stdlib.h>   // defines: malloc, calloc, free
#include <string.h>   // defines: memset, memcpy, strlen, strncmp, strerror
#include <sys/stat.h> // defines: stat, S_ISDIR

#include "bytes.h"
#include "dist.h"
#include "scan.h"

#define PACK_MAGIC 0x53444e53u /* "SNDS" */
#define PACK_VERSION 1u

int sn_dataset_pack(const struct sn_dataset *ds, void **buf, size_t *len, struct sn_err *err)
{
    *buf = NULL;
    *len = 0;
    SN_RETURN_IF(ds->features != NULL || ds->paths == NULL, err, SN_EINVAL,
                 "%s: a feature-file split is not packed (every rank reads the file)", ds->root);
    size_t skip = strlen(ds->root) + 1;
    struct sn_wbuf b = {0};
    sn_wbuf_u32(&b, PACK_MAGIC);
    sn_wbuf_u32(&b, PACK_VERSION);
    sn_wbuf_str(&b, ds->root);
    sn_wbuf_u32(&b, (uint32_t)ds->n);
    sn_wbuf_u32(&b, (uint32_t)ds->n_found);
    sn_wbuf_u32(&b, (uint32_t)ds->n_classes);
    sn_wbuf_u64(&b, ds->fingerprint);
    sn_wbuf_u32(&b, (uint32_t)ds->index_source);
    for (int c = 0; c < ds->n_classes; c++) {
        sn_wbuf_str(&b, ds->class_names[c]);
        sn_wbuf_u32(&b, (uint32_t)ds->class_count[c]);
    }
    for (int i = 0; i < ds->n; i++) {
        /* paths are root/..., as sn_dataset_open made them */
        if (strncmp(ds->paths[i], ds->root, skip - 1) != 0 || ds->paths[i][skip - 1] != '/') {
            free(b.p);
            return sn_err_set(err, SN_EINVAL, "%s is not under %s", ds->paths[i], ds->root);
        }
        sn_wbuf_u32(&b, (uint32_t)ds->labels[i]);
        sn_wbuf_str(&b, ds->paths[i] + skip);
    }
    if (b.oom) {
        free(b.p);
        return sn_err_set(err, SN_ENOMEM, "out of memory packing the file list of %s", ds->root);
    }
    *buf = b.p;
    *len = b.n;
    return SN_OK;
}

int sn_dataset_unpack(struct sn_dataset **out, const void *buf, size_t len, struct sn_err *err)
{
    *out = NULL;
    struct sn_rbuf r = {.p = buf, .n = len};
    struct sn_dataset *ds = calloc(1, sizeof *ds);
    SN_RETURN_IF(ds == NULL, err, SN_ENOMEM, "out of memory");
    uint32_t magic = sn_rbuf_u32(&r), version = sn_rbuf_u32(&r);
    if (r.bad || magic != PACK_MAGIC || version != PACK_VERSION) {
        sn_dataset_free(ds);
        return sn_err_set(err, SN_EFORMAT, "a packed file list: bad magic or version %u", version);
    }
    sn_rbuf_str(&r, ds->root, sizeof ds->root, 0);
    ds->n = sn_rbuf_count(&r, 8);
    ds->n_found = (int)sn_rbuf_u32(&r);
    ds->n_classes = sn_rbuf_count(&r, 8);
    ds->fingerprint = sn_rbuf_u64(&r);
    uint32_t source = sn_rbuf_u32(&r);
    (void)source; /* rank 0's scan or cache: this rank received it */
    ds->index_source = SN_INDEX_RECEIVED;
    if (!r.bad && (ds->n_classes > SN_MAX_CLASSES || ds->n_found < ds->n))
        r.bad = 1;
    if (!r.bad) {
        ds->class_names = calloc((size_t)ds->n_classes + 1, sizeof *ds->class_names);
        ds->class_count = calloc((size_t)ds->n_classes + 1, sizeof *ds->class_count);
        ds->paths = calloc((size_t)ds->n + 1, sizeof *ds->paths);
        ds->labels = calloc((size_t)ds->n + 1, sizeof *ds->labels);
        if (!ds->class_names || !ds->class_count || !ds->paths || !ds->labels) {
            int n = ds->n;
            ds->n = 0;
            sn_dataset_free(ds);
            return sn_err_set(err, SN_ENOMEM, "out of memory receiving %d file names", n);
        }
    }
    for (int c = 0; c < ds->n_classes && !r.bad; c++) {
        sn_rbuf_str(&r, ds->class_names[c], sizeof ds->class_names[c], 0);
        ds->class_count[c] = (int)sn_rbuf_u32(&r);
    }
    int n = ds->n;
    ds->n = 0; /* counts the paths set so far */
    size_t skip = strlen(ds->root) + 1;
    /* the names take at most the bytes left plus a root and a NUL each */
    size_t bytes = r.bad ? 0 : (r.n - r.off) + (size_t)n * (skip + 1);
    if (!r.bad && (ds->path_arena = malloc(bytes + 1)) == NULL) {
        sn_dataset_free(ds);
        return sn_err_set(err, SN_ENOMEM, "out of memory receiving %d file names", n);
    }
    char *at = ds->path_arena;
    char rel[SN_PATH_MAX];
    for (int i = 0; i < n && !r.bad; i++) {
        uint32_t y = sn_rbuf_u32(&r);
        sn_rbuf_str(&r, rel, sizeof rel, 0);
        size_t rl = strlen(rel);
        if (r.bad || y >= (uint32_t)ds->n_classes || !sn_path_rel_safe(rel) ||
            skip + rl >= SN_PATH_MAX) {
            r.bad = 1;
            break;
        }
        ds->labels[i] = (int32_t)y;
        memcpy(at, ds->root, skip - 1);
        at[skip - 1] = '/';
        memcpy(at + skip, rel, rl + 1);
        ds->paths[i] = at;
        at += skip + rl + 1;
        ds->n++;
    }
    if (r.bad || r.off != r.n) {
        sn_dataset_free(ds);
        return sn_err_set(err, SN_EFORMAT, "a packed file list of %zu bytes is damaged at byte %zu",
                          len, r.off);
    }
    *out = ds;
    return SN_OK;
}

static const char *split_name(enum sn_split split)
{
    return split == SN_SPLIT_TRAIN ? "train" : split == SN_SPLIT_VAL ? "val" : "test";
}

/* The way out of sn_dataset_open_shared before the list arrived: frees the packed bytes and
 * rank 0's dataset, returns e. */
static int shared_fail(struct sn_dataset **out, const struct sn_dist *d, void *buf,
                       struct sn_err e, struct sn_err *err)
{
    free(buf);
    if (d->rank == 0) {
        sn_dataset_free(*out);
        *out = NULL;
    }
    *err = e;
    return err->code;
}

int sn_dataset_open_shared(struct sn_dataset **out, struct sn_dist *d,
                           const struct sn_data_conf *dc, enum sn_split split,
                           const struct sn_classes *known, struct sn_err *err)
{
    *out = NULL;
    if (d == NULL || d->world == 1 || dc->features[0])
        return sn_dataset_open(out, dc, split, known, err);
    /* rank 0's outcome first (code, message, size), then the bytes */
    struct {
        int64_t code;
        uint64_t len;
        char msg[sizeof err->msg];
    } head;
    memset(&head, 0, sizeof head);
    void *buf = NULL;
    size_t len = 0;
    int rc = SN_OK;
    if (d->rank == 0) {
        struct sn_dataset *ds = NULL;
        rc = sn_dataset_open(&ds, dc, split, known, err);
        if (rc == SN_OK)
            rc = sn_dataset_pack(ds, &buf, &len, err);
        head.code = rc;
        head.len = len;
        if (rc != SN_OK)
            snprintf(head.msg, sizeof head.msg, "%s", err->msg);
        *out = ds;
    }
    /* the others wait asleep while rank 0 reads: spinning in MPI_Bcast would take the cores
       that rank 0's scan runs on where ranks share them */
    struct sn_err berr = {0};
    if (sn_dist_barrier_idle(d, &berr) != SN_OK ||
        sn_dist_bcast(d, &head, sizeof head, 0, &berr) != SN_OK)
        return shared_fail(out, d, buf, berr, err);
    if (head.code != SN_OK) {
        head.msg[sizeof head.msg - 1] = '\0';
        sn_err_set(&berr, (int)head.code, "%s", head.msg);
        berr.collective = 1;
        return shared_fail(out, d, buf, berr, err);
    }
    /* Every rank makes room for the list, then all agree that every one could before any enters
     * the broadcast: a rank that could not would otherwise leave the others waiting in it. The
     * highest such rank is named (max over ranks of rank + 1). */
    int short_rank = 0;
    if (d->rank != 0 && (buf = malloc(head.len ? head.len : 1)) == NULL)
        short_rank = d->rank + 1;
    if (sn_dist_allreduce_max_int(d, &short_rank, &berr) != SN_OK)
        return shared_fail(out, d, buf, berr, err);
    if (short_rank > 0) {
        sn_err_set(&berr, SN_ENOMEM, "rank %d: out of memory for the file list of the %s split "
                                     "(%llu bytes)",
                   short_rank - 1, split_name(split), (unsigned long long)head.len);
        berr.collective = 1;
        return shared_fail(out, d, buf, berr, err);
    }
    if (sn_dist_bcast(d, buf, (size_t)head.len, 0, &berr) != SN_OK)
        return shared_fail(out, d, buf, berr, err);
    if (d->rank != 0 && rc == SN_OK)
        rc = sn_dataset_unpack(out, buf, (size_t)head.len, err);
    free(buf);
    /* one stat, not a walk: a node that lacks the folder rank 0 listed says so now rather than
       failing on every image */
    struct stat st;
    int missing = 0;
    if (d->rank != 0 && rc == SN_OK)
        missing = stat((*out)->root, &st) != 0 ? errno : S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
    if (missing) {
        rc = sn_err_set(err, SN_EDATA,
                        "rank %d (%s): %s, listed by rank 0, is not a folder here: %s\n---> "
                        "HINT: every rank reads its images: put them on a file system that every "
                        "node sees, at the same path",
                        d->rank, d->host, (*out)->root, strerror(missing));
        sn_dataset_free(*out);
        *out = NULL;
    }
    return rc;
}
