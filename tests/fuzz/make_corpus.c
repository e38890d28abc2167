/* make_corpus.c — writes the seed corpus of fuzz_checkpoint, fuzz_featfile and fuzz_image:
 *     make_corpus DIR   writes DIR/checkpoint/, DIR/featfile/ and DIR/image/
 * (`cmake --build build-fuzz --target fuzz_corpus` runs it on tests/fuzz/corpus).
 *
 * Checkpoints are written by sn_checkpoint_save itself, never assembled byte by byte here, so
 * that after a change of the checkpoint format one command brings the seeds up to date; feature
 * files likewise by sn_features_write, each seeded twice: as the file, and as the bytes inside its
 * zstd frame (fuzz_featfile compresses those itself). Images
 * are JPEGs and PNGs of a few hundred bytes, each preceded by the two option bytes fuzz_image
 * reads (image_opts.h): the plain ones come from the project's writers (sn_image_write_jpeg,
 * sn_image_write_png); the kinds those do not write are made here — progressive, 4:2:2, 4:4:0,
 * 4:1:1 and CMYK JPEGs through TurboJPEG's compressor, and palette (with and without tRNS),
 * 2-bit, 16-bit interlaced and filtered PNGs chunk by chunk with zlib (as test_image.c builds
 * its 16-bit PNG).
 * All content is computed from fixed patterns: the same build writes the same bytes. */
#include <errno.h>    // defines: errno, EEXIST
#include <math.h>     // defines: NAN, INFINITY
#include <stdint.h>   // defines: uint8_t, uint32_t, uint64_t
#include <stdio.h>    // defines: snprintf, fprintf, printf, fopen, fwrite, fclose, remove
#include <stdlib.h>   // defines: malloc, realloc, free
#include <string.h>   // defines: memcpy, strerror
#include <sys/stat.h> // defines: mkdir, stat

#include <turbojpeg.h> // defines: tjInitCompress, tjCompress2, TJFLAG_PROGRESSIVE, TJPF_CMYK
#include <zlib.h>      // defines: compress, compressBound, crc32
#include <zstd.h>      // defines: ZSTD_decompressStream

#include "checkpoint.h" // defines: sn_checkpoint_save, struct sn_ckpt_meta, sn_record_add
#include "err.h"        // defines: struct sn_err, sn_err_set, SN_FORWARD, SN_RETURN_IF
#include "featfile.h"   // defines: sn_features_write, struct sn_features
#include "image.h"      // defines: sn_image_write_jpeg, sn_image_write_png
#include "image_opts.h" // defines: fuzz_image_opts_encode, FUZZ_IMAGE_PREFIX

/* ---- files -------------------------------------------------------------------------------- */

static int make_dir(const char *path, struct sn_err *err)
{
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return sn_err_set(err, SN_EIO, "%s: cannot create directory: %s", path, strerror(errno));
    return SN_OK;
}

/* Writes prefix (may be NULL) then bytes to dir/name. */
static int write_seed(const char *dir, const char *name, const uint8_t *prefix, const void *bytes,
                      size_t n, struct sn_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    SN_RETURN_IF(f == NULL, err, SN_EIO, "%s: cannot create: %s", path, strerror(errno));
    int ok = (prefix == NULL || fwrite(prefix, 1, FUZZ_IMAGE_PREFIX, f) == FUZZ_IMAGE_PREFIX) &&
             fwrite(bytes, 1, n, f) == n;
    if (fclose(f) != 0 || !ok)
        return sn_err_set(err, SN_EIO, "%s: write failed: %s", path, strerror(errno));
    printf("  %s (%zu bytes)\n", path, n + (prefix ? FUZZ_IMAGE_PREFIX : 0));
    return SN_OK;
}

/* Reads a whole file into *out (owned by the caller). */
static int read_all(const char *path, uint8_t **out, size_t *n, struct sn_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    SN_RETURN_IF(f == NULL, err, SN_EIO, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    uint8_t *p = NULL;
    int rc = SN_OK;
    if (fstat(fileno(f), &st) != 0 || (p = malloc((size_t)st.st_size + 1)) == NULL ||
        fread(p, 1, (size_t)st.st_size, f) != (size_t)st.st_size)
        rc = sn_err_set(err, SN_EIO, "%s: cannot read", path);
    fclose(f);
    if (rc != SN_OK) {
        free(p);
        return rc;
    }
    *out = p;
    *n = (size_t)st.st_size;
    return SN_OK;
}

/* ---- checkpoints -------------------------------------------------------------------------- */

/* A checkpoint of the given counts; values are smooth (mod 0) or from a small set (mod > 0,
 * which compresses to almost nothing even over several plane blocks). record may be NULL. */
static int checkpoint_seed(const char *dir, const char *name, uint64_t n_params, uint64_t n_state,
                           uint64_t n_opt, int mod, const char *record, struct sn_err *err)
{
    struct sn_ckpt_meta m = {
        .config_hash = 0x1234567890abcdefull, .model_hash = 0xfedcba0987654321ull,
        .epoch = n_params ? 3 : 0, .step = n_params ? 282 : 0, .world_size = 2,
        .n_params = n_params, .n_state = n_state, .n_opt = n_opt,
        .best_val_loss = n_params ? 0.31 : INFINITY, .val_loss = n_params ? 0.33 : NAN,
        .lr = 0.001f, .rng_state = {0x9e3779b97f4a7c15ull, 42}, .seed = 1337,
        .loader_pos = n_params ? 640 : 0, .record = record,
    };
    uint64_t total = n_params + n_state + n_opt;
    float *x = malloc((total ? total : 1) * sizeof *x);
    SN_RETURN_IF(x == NULL, err, SN_ENOMEM, "%s: out of memory", name);
    for (uint64_t i = 0; i < total; i++)
        x[i] = mod ? (float)(i % (uint64_t)mod) * 0.125f - 0.25f
                   : (float)((int)(i * 2654435761u % 2001u) - 1000) * 1e-4f;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int rc = sn_checkpoint_save(path, &m, n_params ? x : NULL, n_state ? x + n_params : NULL,
                                n_opt ? x + n_params + n_state : NULL, err);
    free(x);
    struct stat st;
    if (rc == SN_OK && stat(path, &st) == 0)
        printf("  %s (%lld bytes)\n", path, (long long)st.st_size);
    return rc;
}

static int checkpoints(const char *dir, struct sn_err *err)
{
    /* a run record of the kinds of lines the trainer writes, with escaped characters */
    struct sn_record rec = {0};
    sn_record_add(&rec, "class", "%s", "cats");
    sn_record_add(&rec, "class", "%s", "dogs\\and\nmore");
    sn_record_add(&rec, "config", "%s", "[train]\nepochs = 3\n[conv2d]\nfilters = 8");
    sn_record_add(&rec, "history", "%d,%.4f,%.4f", 1, 0.6931, 0.5);
    sn_record_add(&rec, "history", "%d,%.4f,%.4f", 2, 0.4812, 0.75);
    int rc = rec.failed ? sn_err_set(err, SN_ENOMEM, "out of memory for a run record") : SN_OK;
    if (rc == SN_OK)
        rc = checkpoint_seed(dir, "empty.ckpt", 0, 0, 0, 0, NULL, err);
    if (rc == SN_OK)
        rc = checkpoint_seed(dir, "params.ckpt", 64, 0, 0, 0, NULL, err);
    if (rc == SN_OK)
        rc = checkpoint_seed(dir, "record_state_opt.ckpt", 120, 6, 240, 0, rec.text, err);
    /* more than SN_CKPT_BLOCK floats: several plane blocks */
    if (rc == SN_OK)
        rc = checkpoint_seed(dir, "blocks.ckpt", SN_CKPT_BLOCK + 4464, 0, SN_CKPT_BLOCK, 7,
                             "class=a\nclass=b\n", err);
    sn_record_free(&rec);
    return rc;
}

/* ---- images ------------------------------------------------------------------------------- */

/* A smooth gradient with a bright square: (h,w,c) uint8, owned by the caller. */
static uint8_t *pattern(int h, int w, int c)
{
    uint8_t *p = malloc((size_t)h * w * c);
    if (p == NULL)
        return NULL;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < c; k++) {
                int v = x * 200 / w + y * 50 / h + k * 70;
                if (x > w / 4 && x < w / 2 && y > h / 3 && y < 2 * h / 3)
                    v = 250 - k * 90;
                p[((size_t)y * w + x) * c + k] = (uint8_t)(v & 255);
            }
    return p;
}

/* Options of a seed: channels, interp, crop, no_dct, indices of height and width. */
struct seed_opts {
    int channels, interp, crop, no_dct, hi, wi;
};

static void encode(const struct seed_opts *s, uint8_t prefix[FUZZ_IMAGE_PREFIX])
{
    fuzz_image_opts_encode(prefix, s->channels, s->interp, s->crop, s->no_dct, 0, s->hi, s->wi);
}

/* An image written by the project's writer (PNG when jpeg_quality is 0), then prefixed. */
static int writer_seed(const char *dir, const char *name, int h, int w, int c, int jpeg_quality,
                       struct seed_opts s, struct sn_err *err)
{
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s/%s.tmp", dir, name);
    uint8_t *px = pattern(h, w, c), *file = NULL, prefix[FUZZ_IMAGE_PREFIX];
    SN_RETURN_IF(px == NULL, err, SN_ENOMEM, "%s: out of memory", name);
    size_t n = 0;
    int rc = jpeg_quality ? sn_image_write_jpeg(tmp, px, h, w, c, jpeg_quality, err)
                          : sn_image_write_png(tmp, px, h, w, c, err);
    if (rc == SN_OK)
        rc = read_all(tmp, &file, &n, err);
    remove(tmp);
    encode(&s, prefix);
    if (rc == SN_OK)
        rc = write_seed(dir, name, prefix, file, n, err);
    free(file);
    free(px);
    return rc;
}

/* A JPEG of the kinds sn_image_write_jpeg does not make (subsampling, progressive, CMYK). */
static int tj_seed(const char *dir, const char *name, int h, int w, int pf, int samp, int flags,
                   struct seed_opts s, struct sn_err *err)
{
    int c = pf == TJPF_CMYK ? 4 : 3;
    uint8_t *px = pattern(h, w, c), prefix[FUZZ_IMAGE_PREFIX];
    tjhandle tj = tjInitCompress();
    unsigned char *jpg = NULL;
    unsigned long n = 0;
    int rc = SN_OK;
    if (px == NULL || tj == NULL)
        rc = sn_err_set(err, SN_ENOMEM, "%s: out of memory", name);
    else if (tjCompress2(tj, px, w, 0, h, pf, &jpg, &n, samp, 80, flags) != 0)
        rc = sn_err_set(err, SN_EFORMAT, "%s: JPEG compression failed: %s", name,
                        tjGetErrorStr2(tj));
    encode(&s, prefix);
    if (rc == SN_OK)
        rc = write_seed(dir, name, prefix, jpg, n, err);
    tjFree(jpg);
    if (tj != NULL)
        tjDestroy(tj);
    free(px);
    return rc;
}

/* Growable byte buffer for PNGs made by hand. */
struct bytes {
    uint8_t *p; /* owned */
    size_t n, cap;
};

static int put(struct bytes *b, const void *d, size_t n, struct sn_err *err)
{
    if (b->n + n > b->cap) {
        size_t cap = 2 * (b->n + n) + 64;
        uint8_t *p = realloc(b->p, cap);
        SN_RETURN_IF(p == NULL, err, SN_ENOMEM, "out of memory for a PNG");
        b->p = p, b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->n, d, n);
    b->n += n;
    return SN_OK;
}

static void be32(uint8_t *o, uint32_t v)
{
    o[0] = (uint8_t)(v >> 24), o[1] = (uint8_t)(v >> 16), o[2] = (uint8_t)(v >> 8);
    o[3] = (uint8_t)v;
}

/* A chunk: length, type, data, CRC of type and data. */
static int chunk(struct bytes *b, const char *type, const uint8_t *d, uint32_t n,
                 struct sn_err *err)
{
    uint8_t len[4], crc[4];
    be32(len, n);
    uLong c = crc32(0L, (const Bytef *)type, 4);
    if (n > 0)
        c = crc32(c, d, n);
    be32(crc, (uint32_t)c);
    SN_FORWARD(put(b, len, 4, err));
    SN_FORWARD(put(b, type, 4, err));
    SN_FORWARD(put(b, d, n, err));
    return put(b, crc, 4, err);
}

struct png_spec {
    int w, h, depth, ctype, interlace;
    int channels;       /* samples per pixel of ctype */
    int filters;        /* 1: filter type (row % 5) on each row; 0: none */
    int n_plte;         /* palette entries (ctype 3), also the bound of every index */
    int n_trns;         /* palette entries with an alpha in a tRNS chunk (at most n_plte) */
};

/* The IDAT stream before compression: per pass (Adam7) or once, filtered rows of pattern bytes. */
static int raw_rows(const struct png_spec *s, struct bytes *raw, struct sn_err *err)
{
    static const int x0[7] = {0, 4, 0, 2, 0, 1, 0}, y0[7] = {0, 0, 4, 0, 2, 0, 1};
    static const int dx[7] = {8, 8, 4, 4, 2, 2, 1}, dy[7] = {8, 8, 8, 4, 4, 2, 2};
    int passes = s->interlace ? 7 : 1, bits = s->depth * s->channels;
    uint32_t k = 0;
    for (int p = 0; p < passes; p++) {
        int px0 = s->interlace ? x0[p] : 0, py0 = s->interlace ? y0[p] : 0;
        int pdx = s->interlace ? dx[p] : 1, pdy = s->interlace ? dy[p] : 1;
        int pw = s->w > px0 ? (s->w - px0 + pdx - 1) / pdx : 0;
        int ph = s->h > py0 ? (s->h - py0 + pdy - 1) / pdy : 0;
        if (pw == 0 || ph == 0)
            continue; /* an empty pass has no rows at all */
        size_t rowbytes = ((size_t)pw * bits + 7) / 8;
        for (int y = 0; y < ph; y++) {
            uint8_t f = (uint8_t)(s->filters ? y % 5 : 0);
            SN_FORWARD(put(raw, &f, 1, err));
            for (size_t i = 0; i < rowbytes; i++, k++) {
                uint8_t v = (uint8_t)(k * 37u + (k >> 3) * 11u + 5u);
                if (s->n_plte)
                    v = (uint8_t)(v % s->n_plte);
                SN_FORWARD(put(raw, &v, 1, err));
            }
        }
    }
    return SN_OK;
}

static int png_seed(const char *dir, const char *name, const struct png_spec *s,
                    struct seed_opts o, struct sn_err *err)
{
    struct bytes raw = {0}, file = {0};
    uint8_t *z = NULL, ihdr[13], prefix[FUZZ_IMAGE_PREFIX];
    int rc = raw_rows(s, &raw, err);
    uLongf zn = raw.n ? compressBound((uLong)raw.n) : 0;
    if (rc == SN_OK && (z = malloc(zn)) == NULL)
        rc = sn_err_set(err, SN_ENOMEM, "%s: out of memory", name);
    if (rc == SN_OK && compress(z, &zn, raw.p, (uLong)raw.n) != Z_OK)
        rc = sn_err_set(err, SN_EFORMAT, "%s: zlib compress failed", name);
    be32(ihdr, (uint32_t)s->w);
    be32(ihdr + 4, (uint32_t)s->h);
    ihdr[8] = (uint8_t)s->depth, ihdr[9] = (uint8_t)s->ctype, ihdr[10] = 0, ihdr[11] = 0;
    ihdr[12] = (uint8_t)s->interlace;
    if (rc == SN_OK)
        rc = put(&file, "\x89PNG\r\n\x1a\n", 8, err);
    if (rc == SN_OK)
        rc = chunk(&file, "IHDR", ihdr, 13, err);
    if (rc == SN_OK && s->n_plte) {
        uint8_t plte[3 * 256];
        for (int i = 0; i < 3 * s->n_plte; i++)
            plte[i] = (uint8_t)(i * 53 + 17);
        rc = chunk(&file, "PLTE", plte, (uint32_t)(3 * s->n_plte), err);
    }
    if (rc == SN_OK && s->n_trns) {
        uint8_t trns[256];
        for (int i = 0; i < s->n_trns; i++)
            trns[i] = (uint8_t)(i * 97);
        rc = chunk(&file, "tRNS", trns, (uint32_t)s->n_trns, err);
    }
    if (rc == SN_OK)
        rc = chunk(&file, "IDAT", z, (uint32_t)zn, err);
    if (rc == SN_OK)
        rc = chunk(&file, "IEND", NULL, 0, err);
    encode(&o, prefix);
    if (rc == SN_OK)
        rc = write_seed(dir, name, prefix, file.p, file.n, err);
    free(file.p);
    free(z);
    free(raw.p);
    return rc;
}

/* Indices into FUZZ_IMAGE_SIZES: 1 2 3 4 5 7 8 12 16 28 31 32 64 100 180 255 */
enum { S1, S2, S3, S4, S5, S7, S8, S12, S16, S28, S31, S32 };

static int images(const char *dir, struct sn_err *err)
{
    /* the project's writers: gray, 4:2:0 (quality < 90) and 4:4:4 (quality >= 90) JPEGs; PNGs
     * of 1 to 4 channels (quality 0) */
    static const struct {
        const char *name;
        int h, w, c, quality;
        struct seed_opts o; /* channels, interp, crop, no_dct, height, width */
    } written[] = {
        {"jpeg_gray", 16, 24, 1, 75, {1, 0, 0, 0, S28, S28}},
        {"jpeg_rgb420_dct_scaled", 40, 48, 3, 75, {3, 0, 0, 0, S5, S7}},
        {"jpeg_rgb444_nearest_crop", 13, 17, 3, 95, {3, 1, 1, 0, S16, S8}},
        {"png_gray_area", 12, 20, 1, 0, {1, 2, 0, 0, S5, S7}},
        {"png_rgb_upscaled", 16, 16, 3, 0, {3, 0, 0, 0, S31, S32}},
        {"png_gray_alpha", 6, 9, 2, 0, {3, 1, 0, 0, S12, S12}},
        {"png_rgba_crop", 10, 10, 4, 0, {1, 0, 1, 0, S4, S16}},
    };
    /* TurboJPEG: the other subsamplings, progressive, CMYK (which the decoder refuses) */
    static const struct {
        const char *name;
        int h, w, pf, samp, flags;
        struct seed_opts o;
    } compressed[] = {
        {"jpeg_progressive", 24, 32, TJPF_RGB, TJSAMP_420, TJFLAG_PROGRESSIVE,
         {3, 2, 0, 0, S8, S8}},
        {"jpeg_rgb422_gray", 12, 20, TJPF_RGB, TJSAMP_422, 0, {1, 2, 1, 0, S12, S4}},
        {"jpeg_rgb440_no_dct", 16, 16, TJPF_RGB, TJSAMP_440, 0, {3, 0, 0, 1, S5, S7}},
        {"jpeg_rgb411", 8, 32, TJPF_RGB, TJSAMP_411, 0, {1, 1, 0, 0, S3, S31}},
        {"jpeg_cmyk", 8, 8, TJPF_CMYK, TJSAMP_420, 0, {3, 0, 0, 0, S8, S8}},
    };
    /* by hand: palette (with and without transparency), 2-bit gray, 16-bit gray interlaced,
     * every row filter */
    static const struct {
        const char *name;
        struct png_spec s; /* w, h, depth, ctype, interlace, channels, filters, n_plte, n_trns */
        struct seed_opts o;
    } built[] = {
        {"png_palette", {12, 10, 8, 3, 0, 1, 0, 16, 0}, {3, 0, 0, 0, S12, S12}},
        {"png_palette_trns", {12, 10, 8, 3, 0, 1, 0, 16, 3}, {1, 2, 0, 0, S7, S12}},
        {"png_gray2bit", {10, 6, 2, 0, 0, 1, 0, 0, 0}, {1, 1, 0, 0, S3, S5}},
        {"png_gray16_adam7", {9, 7, 16, 0, 1, 1, 0, 0, 0}, {3, 2, 0, 0, S4, S4}},
        {"png_rgb_filters", {11, 9, 8, 2, 0, 3, 1, 0, 0}, {1, 0, 0, 0, S16, S16}},
    };
    for (size_t i = 0; i < sizeof written / sizeof written[0]; i++)
        SN_FORWARD(writer_seed(dir, written[i].name, written[i].h, written[i].w, written[i].c,
                               written[i].quality, written[i].o, err));
    for (size_t i = 0; i < sizeof compressed / sizeof compressed[0]; i++)
        SN_FORWARD(tj_seed(dir, compressed[i].name, compressed[i].h, compressed[i].w,
                           compressed[i].pf, compressed[i].samp, compressed[i].flags,
                           compressed[i].o, err));
    for (size_t i = 0; i < sizeof built / sizeof built[0]; i++)
        SN_FORWARD(png_seed(dir, built[i].name, &built[i].s, built[i].o, err));
    return SN_OK;
}

/* ---- feature files ------------------------------------------------------------------------ */

/* The bytes inside the zstd frame of the file at path (malloc'd, *n of them), or NULL. */
static uint8_t *frame_content(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    uint8_t in[65536], *out = NULL;
    size_t cap = 0, have = 0, got;
    ZSTD_DCtx *d = ZSTD_createDCtx();
    while (f && d && (got = fread(in, 1, sizeof in, f)) > 0) {
        ZSTD_inBuffer ib = {in, got, 0};
        while (ib.pos < ib.size) {
            if (cap - have < 65536) {
                uint8_t *nb = realloc(out, cap = 2 * cap + 65536);
                if (!nb)
                    goto fail;
                out = nb;
            }
            ZSTD_outBuffer ob = {out + have, cap - have, 0};
            if (ZSTD_isError(ZSTD_decompressStream(d, &ob, &ib)))
                goto fail;
            have += ob.pos;
        }
    }
    if (!f || !d)
        goto fail;
    fclose(f);
    ZSTD_freeDCtx(d);
    *n = have;
    return out;
fail:
    if (f)
        fclose(f);
    ZSTD_freeDCtx(d);
    free(out);
    return NULL;
}

/* A feature file of splits with n images of (h,w,c) each, k classes; and its frame's content. */
static int featfile_seed(const char *dir, const char *name, int splits, int n, int h, int w, int c,
                         int k, struct sn_err *err)
{
    static const char *const names[] = {"train", "val", "test"};
    struct sn_features f = {.base_hash = 0x5eed0000u + (uint64_t)n, .n_splits = splits};
    float x[64];
    int32_t labels[8];
    char classes[4][64] = {"cat", "dog", "0_T-shirt_top", "b"};
    for (int i = 0; i < 64; i++)
        x[i] = (float)(i % 7) - 2.5f;
    for (int i = 0; i < 8; i++)
        labels[i] = i % k;
    for (int s = 0; s < splits; s++) {
        struct sn_feature_split *sp = &f.split[s];
        snprintf(sp->name, sizeof sp->name, "%s", names[s]);
        sp->n = n, sp->h = h, sp->w = w, sp->c = c, sp->n_classes = k;
        sp->class_names = classes;
        sp->labels = labels;
        sp->x = x;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.feat", dir, name);
    SN_FORWARD(sn_features_write(path, &f, err));
    size_t bytes = 0;
    uint8_t *content = frame_content(path, &bytes);
    SN_RETURN_IF(!content, err, SN_EIO, "%s: cannot read back the frame", path);
    char inner[256];
    snprintf(inner, sizeof inner, "%s.inner", name);
    int rc = write_seed(dir, inner, NULL, content, bytes, err);
    free(content);
    return rc;
}

static int featfiles(const char *dir, struct sn_err *err)
{
    SN_FORWARD(featfile_seed(dir, "three_splits", 3, 4, 1, 2, 2, 2, err));
    SN_FORWARD(featfile_seed(dir, "one_split", 1, 8, 2, 2, 2, 4, err));
    SN_FORWARD(featfile_seed(dir, "empty_split", 2, 0, 1, 1, 8, 3, err));
    return SN_OK;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make_corpus DIR   (writes DIR/checkpoint/, DIR/featfile/ and "
                        "DIR/image/)\n");
        return 2;
    }
    struct sn_err err = {0};
    char ckpt[4096], feat[4096], img[4096];
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint", argv[1]);
    snprintf(feat, sizeof feat, "%s/featfile", argv[1]);
    snprintf(img, sizeof img, "%s/image", argv[1]);
    if (make_dir(argv[1], &err) != SN_OK || make_dir(ckpt, &err) != SN_OK ||
        make_dir(feat, &err) != SN_OK || make_dir(img, &err) != SN_OK ||
        checkpoints(ckpt, &err) != SN_OK || featfiles(feat, &err) != SN_OK ||
        images(img, &err) != SN_OK) {
        fprintf(stderr, "make_corpus: %s\n", err.msg);
        return 1;
    }
    return 0;
}
