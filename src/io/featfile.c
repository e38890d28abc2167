/* featfile.c — feature files (featfile.h): written and read as one zstd stream. */
#include "featfile.h"

#include <stdio.h>  // defines: FILE, fopen, fread, fwrite
#include <stdlib.h> // defines: malloc, calloc, free
#include <string.h> // defines: memcpy, memcmp, strcmp

#include <zstd.h> // defines: ZSTD_compressStream2, ZSTD_decompressStream

#include "sys.h" // defines: sn_atomic_open, sn_atomic_commit

static const char magic[8] = {'S', 'N', 'F', 'E', 'A', 'T', '0', '1'};

/* ---- writing: the fields go through one compressor into the atomic file ---------------------- */

struct zw {
    ZSTD_CCtx *cctx;
    FILE *f;
    char *out;
    size_t cap;
    int failed;
};

static void zw_put(struct zw *w, const void *src, size_t n, int end)
{
    ZSTD_inBuffer in = {src, n, 0};
    for (int more = 1; more && !w->failed;) {
        ZSTD_outBuffer out = {w->out, w->cap, 0};
        size_t rem = ZSTD_compressStream2(w->cctx, &out, &in, end ? ZSTD_e_end : ZSTD_e_continue);
        if (ZSTD_isError(rem) || fwrite(w->out, 1, out.pos, w->f) != out.pos)
            w->failed = 1;
        more = end ? rem != 0 : in.pos < in.size;
    }
}

static void zw_u32(struct zw *w, uint32_t v)
{
    unsigned char b[4] = {v & 255, (v >> 8) & 255, (v >> 16) & 255, v >> 24};
    zw_put(w, b, 4, 0);
}

int sn_features_write(const char *path, const struct sn_features *f, struct sn_err *err)
{
    struct sn_atomic_file af;
    SN_FORWARD(sn_atomic_open(&af, path, err));
    struct zw w = {ZSTD_createCCtx(), af.f, malloc(ZSTD_CStreamOutSize()), ZSTD_CStreamOutSize(),
                   0};
    if (!w.cctx || !w.out ||
        ZSTD_isError(ZSTD_CCtx_setParameter(w.cctx, ZSTD_c_checksumFlag, 1)))
        w.failed = 1;
    zw_put(&w, magic, sizeof magic, 0);
    unsigned char h[8];
    for (int i = 0; i < 8; i++)
        h[i] = (unsigned char)(f->base_hash >> (8 * i));
    zw_put(&w, h, 8, 0);
    zw_u32(&w, (uint32_t)f->n_splits);
    for (int s = 0; s < f->n_splits; s++) {
        const struct sn_feature_split *sp = &f->split[s];
        zw_put(&w, sp->name, sizeof sp->name, 0);
        int v[5] = {sp->n, sp->h, sp->w, sp->c, sp->n_classes};
        for (int i = 0; i < 5; i++)
            zw_u32(&w, (uint32_t)v[i]);
        zw_put(&w, sp->class_names, (size_t)sp->n_classes * 64, 0);
        zw_put(&w, sp->labels, (size_t)sp->n * sizeof(int32_t), 0);
        zw_put(&w, sp->x, (size_t)sp->n * sp->h * sp->w * sp->c * sizeof(float), 0);
    }
    zw_put(&w, "", 0, 1);
    ZSTD_freeCCtx(w.cctx);
    free(w.out);
    if (w.failed) {
        sn_atomic_abort(&af);
        return sn_err_set(err, SN_EIO, "%s: cannot write the feature file", path);
    }
    return sn_atomic_commit(&af, err);
}

/* ---- reading: fields pulled from the decompressor as they are needed ------------------------- */

struct zr {
    ZSTD_DCtx *dctx;
    FILE *f;
    char *in;
    size_t cap;
    ZSTD_inBuffer ib;
    int eof, failed;
    int ended; /* the decompressor said the frame ended, its checksum verified */
};

/* n bytes into dst (NULL: skip them); 0 when they are all there */
static int zr_get(struct zr *r, void *dst, size_t n)
{
    char sink[65536];
    size_t got = 0;
    while (got < n && !r->failed) {
        size_t want = n - got;
        char *to = dst ? (char *)dst + got : sink;
        if (!dst && want > sizeof sink)
            want = sizeof sink;
        ZSTD_outBuffer ob = {to, want, 0};
        if (r->ib.pos == r->ib.size && !r->eof) {
            r->ib.size = fread(r->in, 1, r->cap, r->f);
            r->ib.pos = 0;
            r->eof = r->ib.size == 0;
        }
        size_t rc = ZSTD_decompressStream(r->dctx, &ob, &r->ib);
        if (ZSTD_isError(rc) || (ob.pos == 0 && r->eof) || (r->ended && ob.pos > 0))
            r->failed = 1;
        r->ended = rc == 0;
        got += ob.pos;
    }
    return r->failed ? -1 : 0;
}

/* n bytes into a buffer allocated as they arrive (*out, the caller's to free; NULL: skipped),
 * so that a damaged size field costs no more memory than the bytes the file really holds, twice
 * at most, instead of whatever the field claims. *nomem tells an allocation that failed. */
static int zr_get_new(struct zr *r, void **out, size_t n, int *nomem)
{
    if (!out)
        return zr_get(r, NULL, n);
    char *buf = NULL;
    size_t have = 0;
    do {
        size_t cap = have ? 2 * have : (size_t)1 << 20;
        cap = cap < n ? cap : n;
        char *nb = realloc(buf, cap ? cap : 1);
        if (!nb) {
            *nomem = 1;
            break;
        }
        buf = nb;
        if (zr_get(r, buf + have, cap - have) != 0)
            break;
        have = cap;
    } while (have < n);
    if (have < n || !buf) {
        free(buf);
        return -1;
    }
    *out = buf;
    return 0;
}

static int zr_u32(struct zr *r, int *v)
{
    unsigned char b[4];
    if (zr_get(r, b, 4) != 0)
        return -1;
    uint32_t u = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
    *v = u > 0x7fffffffu ? -1 : (int)u;
    return *v < 0 ? -1 : 0;
}

int sn_features_read(const char *path, const char *only, struct sn_features *f,
                     struct sn_err *err)
{
    memset(f, 0, sizeof *f);
    FILE *fp;
    SN_FORWARD(sn_fopen_regular(path, "rb", "feature file", &fp, err));
    struct zr r = {ZSTD_createDCtx(), fp, malloc(ZSTD_DStreamInSize()), ZSTD_DStreamInSize(),
                   {NULL, 0, 0}, 0, 0, 0};
    r.ib.src = r.in;
    char m[8];
    unsigned char h[8];
    /* a zstd frame (a feature file, maybe cut short) or something else altogether */
    unsigned char z[4] = {0};
    int zstd = fread(z, 1, 4, fp) == 4 && z[0] == 0x28 && z[1] == 0xb5 && z[2] == 0x2f &&
               z[3] == 0xfd;
    rewind(fp);
    int named = 0; /* the message is set already */
    int rc = r.dctx && r.in && zr_get(&r, m, 8) == 0 && memcmp(m, magic, 8) == 0 ? SN_OK
                                                                                 : SN_EFORMAT;
    if (rc != SN_OK && !(zstd && r.failed)) {
        sn_err_set(err, SN_EFORMAT, "%s is not a feature file (written by shardnet extract)",
                   path);
        named = 1;
    }
    if (rc == SN_OK && (zr_get(&r, h, 8) != 0 || zr_u32(&r, &f->n_splits) != 0 ||
                        f->n_splits > 3))
        rc = SN_EFORMAT;
    for (int i = 0; rc == SN_OK && i < 8; i++)
        f->base_hash |= (uint64_t)h[i] << (8 * i);
    for (int s = 0; rc == SN_OK && s < f->n_splits; s++) {
        struct sn_feature_split *sp = &f->split[s];
        int v[5];
        if (zr_get(&r, sp->name, sizeof sp->name) != 0) {
            rc = SN_EFORMAT;
            break;
        }
        sp->name[sizeof sp->name - 1] = '\0';
        for (int i = 0; rc == SN_OK && i < 5; i++)
            if (zr_u32(&r, &v[i]) != 0)
                rc = SN_EFORMAT;
        if (rc != SN_OK || v[4] > 1 << 20 || (uint64_t)v[0] * v[1] * v[2] * v[3] > (1ull << 36)) {
            rc = SN_EFORMAT;
            break;
        }
        sp->n = v[0], sp->h = v[1], sp->w = v[2], sp->c = v[3], sp->n_classes = v[4];
        size_t nx = (size_t)sp->n * sp->h * sp->w * sp->c;
        int keep = !only || strcmp(only, sp->name) == 0, nomem = 0;
        if (zr_get_new(&r, (void **)&sp->class_names, (size_t)sp->n_classes * 64, &nomem) != 0 ||
            zr_get_new(&r, keep ? (void **)&sp->labels : NULL, (size_t)sp->n * sizeof(int32_t),
                       &nomem) != 0 ||
            zr_get_new(&r, keep ? (void **)&sp->x : NULL, nx * sizeof(float), &nomem) != 0)
            rc = nomem ? sn_err_set(err, SN_ENOMEM, "out of memory for the feature file %s", path)
                       : SN_EFORMAT;
        if (rc == SN_ENOMEM) {
            named = 1;
            break;
        }
        for (int k = 0; rc == SN_OK && k < sp->n_classes; k++)
            sp->class_names[k][63] = '\0';
        for (int k = 0; rc == SN_OK && keep && k < sp->n; k++)
            if (sp->labels[k] < 0 || sp->labels[k] >= sp->n_classes)
                rc = SN_EFORMAT;
    }
    /* the frame must end here, with its checksum verified */
    if (rc == SN_OK && !r.ended) {
        char extra;
        ZSTD_outBuffer ob = {&extra, 1, 0};
        size_t left;
        do {
            if (r.ib.pos == r.ib.size && !r.eof) {
                r.ib.size = fread(r.in, 1, r.cap, fp);
                r.ib.pos = 0;
                r.eof = r.ib.size == 0;
            }
            left = ZSTD_decompressStream(r.dctx, &ob, &r.ib);
        } while (!ZSTD_isError(left) && left != 0 && ob.pos == 0 && !r.eof);
        if (ZSTD_isError(left) || left != 0 || ob.pos != 0)
            rc = SN_EFORMAT;
    }
    if (rc == SN_EFORMAT && !named)
        sn_err_set(err, SN_EFORMAT, "%s: damaged or truncated feature file", path);
    ZSTD_freeDCtx(r.dctx);
    free(r.in);
    fclose(fp);
    if (rc != SN_OK)
        sn_features_free(f);
    return rc;
}

const struct sn_feature_split *sn_features_find(const struct sn_features *f, const char *name)
{
    for (int s = 0; s < f->n_splits; s++)
        if (strcmp(f->split[s].name, name) == 0)
            return &f->split[s];
    return NULL;
}

void sn_features_free(struct sn_features *f)
{
    for (int s = 0; s < 3; s++) {
        free(f->split[s].class_names);
        free(f->split[s].labels);
        free(f->split[s].x);
        f->split[s].class_names = NULL;
        f->split[s].labels = NULL;
        f->split[s].x = NULL;
    }
}
