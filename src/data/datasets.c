/* datasets.c — the image directories `shardnet dataset` writes, in the layout the loader reads:
 *
 *  fashion-mnist: Debian's gzipped IDX files as OUTDIR/{train,val,test}/<class>/<index>.jpg,
 *    grayscale JPEG quality 95. train = the first 50,000 training images, val = the last 10,000,
 *    test = the 10,000 t10k images. Class folders are "<label>_<name>", so that their sorted order
 *    is the label order.
 *  shapes: a synthetic stand-in for the book's cats_vs_dogs_small (2,000 / 1,000 / 1,000 RGB
 *    JPEGs of about 500x375 in train/, validation/, test/, classes circle/ and square/), for
 *    measuring and testing the RGB pipeline where the real photos are not at hand.
 *
 * Every tree is built in OUTDIR.tmp.<pid>, a marker file naming what was built is written last,
 * and the folder is renamed to OUTDIR: a reader never sees a half-written dataset, and a rerun
 * finds the marker and stops. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "datasets.h"

#include <errno.h>    // defines: errno, ENOENT
#include <dirent.h>   // defines: opendir, readdir
#include <ftw.h>      // defines: nftw, FTW_DEPTH, FTW_PHYS
#include <pthread.h>  // defines: pthread_create, pthread_join
#include <stdio.h>    // defines: snprintf, fopen, rename, remove
#include <stdlib.h>   // defines: malloc, free
#include <string.h>   // defines: strerror, strcmp
#include <sys/stat.h> // defines: mkdir, stat
#include <unistd.h>   // defines: getpid, rmdir
#include <zlib.h>     // defines: gzopen, gzread, gzclose

#include "data_conf.h" // defines: SN_PATH_MAX
#include "image.h"
#include "rng.h"
#include "sys.h"

#define DATASET_MARKER ".complete"
#define FASHION_SIDE 28

static const char *const fashion_classes[10] = {
    "0_T-shirt_top", "1_Trouser", "2_Pullover", "3_Dress", "4_Coat",
    "5_Sandal",      "6_Shirt",   "7_Sneaker",  "8_Bag",   "9_Ankle_boot"};

/* One IDX file read whole: magic 2051 (images, n x 28 x 28) or 2049 (labels, n). */
struct idx {
    int n;
    uint8_t *data; /* owned: (n, 28, 28) or (n) */
};

static int gz_read_all(gzFile f, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        int r = gzread(f, p, chunk);
        if (r <= 0)
            return -1;
        p += r;
        len -= (size_t)r;
    }
    return 0;
}

static uint32_t be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static int idx_read(struct idx *out, const char *dir, const char *name, int images,
                    struct sn_err *err)
{
    char path[SN_PATH_MAX];
    out->n = 0;
    out->data = NULL;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd;
    int orc = sn_open_regular(path, "IDX file", &fd, err);
    SN_RETURN_IF(orc == SN_EIO, err, SN_EIO,
                 "cannot open %s: %s; HINT: install the Fashion-MNIST IDX files (Debian: "
                 "dataset-fashion-mnist) or pass their folder",
                 path, strerror(errno ? errno : ENOENT));
    SN_FORWARD(orc);
    gzFile f = gzdopen(fd, "rb");
    if (f == NULL)
        close(fd);
    SN_RETURN_IF(f == NULL, err, SN_ENOMEM, "%s: out of memory to read it", path);
    uint8_t h[16];
    int hlen = images ? 16 : 8, rc = SN_OK;
    if (gz_read_all(f, h, (size_t)hlen) != 0) {
        rc = sn_err_set(err, SN_EFORMAT, "%s: truncated IDX header", path);
        goto done;
    }
    uint32_t magic = be32(h), want = images ? 2051 : 2049, n = be32(h + 4);
    if (magic != want) {
        rc = sn_err_set(err, SN_EFORMAT, "%s: IDX magic %u, expected %u (%s file)", path, magic,
                        want, images ? "image" : "label");
        goto done;
    }
    if (n == 0 || n > 10000000) {
        rc = sn_err_set(err, SN_EFORMAT, "%s: implausible count %u", path, n);
        goto done;
    }
    if (images && (be32(h + 8) != FASHION_SIDE || be32(h + 12) != FASHION_SIDE)) {
        rc = sn_err_set(err, SN_EFORMAT, "%s: images of %ux%u, expected 28x28", path, be32(h + 8),
                        be32(h + 12));
        goto done;
    }
    size_t len = (size_t)n * (images ? FASHION_SIDE * FASHION_SIDE : 1);
    out->data = malloc(len);
    if (out->data == NULL) {
        rc = sn_err_set(err, SN_ENOMEM, "%s: out of memory for %zu bytes", path, len);
        goto done;
    }
    if (gz_read_all(f, out->data, len) != 0) {
        rc = sn_err_set(err, SN_EFORMAT, "%s: truncated: header says %u %s", path, n,
                        images ? "images" : "labels");
        goto done;
    }
    out->n = (int)n;
done:
    gzclose(f);
    if (rc != SN_OK) {
        free(out->data);
        out->data = NULL;
    }
    return rc;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_tree(const char *path) { nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

static int make_dir(const char *path, struct sn_err *err)
{
    SN_RETURN_IF(mkdir(path, 0755) != 0 && errno != EEXIST, err, SN_EIO, "cannot create %s: %s",
                 path, strerror(errno));
    return SN_OK;
}

/* 1 if dir exists and holds anything, 0 if empty, -1 if missing. */
static int dir_state(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return -1;
    struct dirent *de;
    int any = 0;
    while (!any && (de = readdir(d)) != NULL)
        any = strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0;
    closedir(d);
    return any;
}

/* One writer thread's share of a split: images lo + k*stride for k = 0, 1, ... below hi. */
struct writer {
    pthread_t th;
    const char *tmp, *split;
    const struct idx *im, *lab;
    int lo, hi, stride;
    int rc;
    struct sn_err err;
};

static void *writer_main(void *arg)
{
    struct writer *w = arg;
    char path[SN_PATH_MAX];
    w->rc = SN_OK;
    for (int i = w->lo; i < w->hi && w->rc == SN_OK; i += w->stride) {
        int y = w->lab->data[i];
        if (y > 9) {
            w->rc = sn_err_set(&w->err, SN_EFORMAT, "label %d of image %d is not in 0..9", y, i);
            break;
        }
        int n = snprintf(path, sizeof path, "%s/%s/%s/%05d.jpg", w->tmp, w->split,
                         fashion_classes[y], i);
        if (n < 0 || n >= (int)sizeof path) {
            w->rc = sn_err_set(&w->err, SN_EINVAL, "path too long under %s", w->tmp);
            break;
        }
        w->rc = sn_image_write_jpeg(path, w->im->data + (size_t)i * FASHION_SIDE * FASHION_SIDE,
                                    FASHION_SIDE, FASHION_SIDE, 1, 95, &w->err);
    }
    return NULL;
}

/* Writes images [lo, hi) of im/lab as tmp/split/<class>/<index>.jpg. Creating small files costs
 * the kernel more than encoding them (~140 us vs ~10 us here), so two threads share the work. */
static int write_split(const char *tmp, const char *split, const struct idx *im,
                       const struct idx *lab, int lo, int hi, struct sn_err *err)
{
    char path[SN_PATH_MAX];
    snprintf(path, sizeof path, "%s/%s", tmp, split);
    SN_FORWARD(make_dir(path, err));
    for (int c = 0; c < 10; c++) {
        snprintf(path, sizeof path, "%s/%s/%s", tmp, split, fashion_classes[c]);
        SN_FORWARD(make_dir(path, err));
    }
    enum { N_WRITERS = 2 };
    struct writer w[N_WRITERS];
    int started = 0;
    for (int t = 0; t < N_WRITERS; t++) {
        w[t] = (struct writer){.tmp = tmp, .split = split, .im = im, .lab = lab,
                               .lo = lo + t, .hi = hi, .stride = N_WRITERS};
        if (t > 0 && pthread_create(&w[t].th, NULL, writer_main, &w[t]) == 0)
            started |= 1 << t;
    }
    /* this thread writes share 0, and any share whose thread did not start */
    for (int t = 0; t < N_WRITERS; t++)
        if (!(started & (1 << t)))
            writer_main(&w[t]);
    for (int t = 1; t < N_WRITERS; t++)
        if (started & (1 << t))
            pthread_join(w[t].th, NULL);
    for (int t = 0; t < N_WRITERS; t++)
        if (w[t].rc != SN_OK) {
            if (err)
                *err = w[t].err;
            return w[t].rc;
        }
    return SN_OK;
}

/* mkdir -p of path's parent folder */
static int make_parents(const char *path, struct sn_err *err)
{
    char buf[SN_PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    char *slash = strrchr(buf, '/');
    if (slash == NULL || slash == buf)
        return SN_OK;
    *slash = '\0';
    return sn_mkdir_p(buf, "output folder", err);
}

/* Writes one dataset's tree under tmp. */
typedef int (*tree_writer)(const char *tmp, const void *user, struct sn_err *err);

/* The part every dataset shares: refuse a foreign non-empty outdir, accept a finished one with the
 * same marker, build in a temporary folder, write the marker last, rename into place. */
static int build_tree(const char *outdir, const char *want, int *already, tree_writer write,
                      const void *user, struct sn_err *err)
{
    char marker[SN_PATH_MAX], tmp[SN_PATH_MAX];
    snprintf(marker, sizeof marker, "%s/%s", outdir, DATASET_MARKER);
    int st = dir_state(outdir);
    if (st == 1) {
        FILE *f;
        int orc = sn_fopen_regular(marker, "r", "marker of a finished conversion", &f, err);
        if (orc == SN_EFORMAT)
            return orc;
        SN_RETURN_IF(f == NULL, err, SN_EIO,
                     "%s exists and is not empty (no %s marker of a finished conversion); "
                     "HINT: remove it or choose another folder",
                     outdir, DATASET_MARKER);
        char have[64] = {0};
        size_t got = fread(have, 1, sizeof have - 1, f);
        fclose(f);
        have[got] = '\0';
        int same = strcmp(have, want) == 0;
        have[strcspn(have, "\n")] = '\0'; /* for the message */
        SN_RETURN_IF(!same, err, SN_EINVAL,
                     "%s holds a finished conversion with different settings (%.40s); HINT: "
                     "remove it to convert again",
                     outdir, have);
        if (already)
            *already = 1;
        return SN_OK;
    }
    SN_RETURN_IF(snprintf(tmp, sizeof tmp, "%s.tmp.%ld", outdir, (long)getpid()) >=
                     (int)sizeof tmp - 64,
                 err, SN_EINVAL, "output path too long: %s", outdir);
    SN_FORWARD(make_parents(tmp, err));
    rm_tree(tmp);
    SN_FORWARD(make_dir(tmp, err));
    int rc = write(tmp, user, err);
    if (rc == SN_OK) {
        char tmarker[SN_PATH_MAX + 32];
        snprintf(tmarker, sizeof tmarker, "%s/%s", tmp, DATASET_MARKER);
        FILE *f = fopen(tmarker, "w");
        int wrote = f != NULL && fputs(want, f) >= 0;
        if (f != NULL && fclose(f) != 0)
            wrote = 0;
        if (!wrote)
            rc = sn_err_set(err, SN_EIO, "cannot write %s: %s", tmarker, strerror(errno));
    }
    if (rc == SN_OK) {
        if (st == 0)
            rmdir(outdir); /* an empty folder given as target: replace it */
        if (rename(tmp, outdir) != 0)
            rc = sn_err_set(err, SN_EIO, "cannot rename %s to %s: %s", tmp, outdir,
                            strerror(errno));
    }
    if (rc != SN_OK)
        rm_tree(tmp);
    return rc;
}

struct fashion_job {
    const char *idx_dir;
    int limit;
};

static int write_fashion(const char *tmp, const void *user, struct sn_err *err)
{
    const struct fashion_job *job = user;
    const char *idx_dir = job->idx_dir;
    struct idx tri = {0}, trl = {0}, tei = {0}, tel = {0};
    int rc;
    if ((rc = idx_read(&tri, idx_dir, "train-images-idx3-ubyte.gz", 1, err)) != SN_OK ||
        (rc = idx_read(&trl, idx_dir, "train-labels-idx1-ubyte.gz", 0, err)) != SN_OK ||
        (rc = idx_read(&tei, idx_dir, "t10k-images-idx3-ubyte.gz", 1, err)) != SN_OK ||
        (rc = idx_read(&tel, idx_dir, "t10k-labels-idx1-ubyte.gz", 0, err)) != SN_OK)
        goto done;
    if (tri.n != trl.n || tei.n != tel.n) {
        rc = sn_err_set(err, SN_EFORMAT, "%s: %d training images but %d labels, %d test images "
                                         "but %d labels",
                        idx_dir, tri.n, trl.n, tei.n, tel.n);
        goto done;
    }
    /* Training set: the last sixth is validation (50,000 / 10,000 for the real files). */
    int n_val = tri.n / 6, n_train = tri.n - n_val;
    if (n_val < 1) {
        rc = sn_err_set(err, SN_EFORMAT, "%s: only %d training images", idx_dir, tri.n);
        goto done;
    }
    int limit = job->limit;
    int k_train = limit > 0 && limit < n_train ? limit : n_train;
    int k_val = limit > 0 && limit < n_val ? limit : n_val;
    int k_test = limit > 0 && limit < tei.n ? limit : tei.n;
    if ((rc = write_split(tmp, "train", &tri, &trl, 0, k_train, err)) == SN_OK &&
        (rc = write_split(tmp, "val", &tri, &trl, n_train, n_train + k_val, err)) == SN_OK)
        rc = write_split(tmp, "test", &tei, &tel, 0, k_test, err);
done:
    free(tri.data);
    free(trl.data);
    free(tei.data);
    free(tel.data);
    return rc;
}

int sn_dataset_fashion_mnist(const char *idx_dir, const char *outdir, int limit, int *already,
                             struct sn_err *err)
{
    char want[64];
    snprintf(want, sizeof want, "fashion-mnist limit=%d\n", limit > 0 ? limit : 0);
    struct fashion_job job = {idx_dir, limit};
    return build_tree(outdir, want, already, write_fashion, &job, err);
}

/* ---------------------------------------------------------------------------------------------
 * shapes: two classes of RGB images, a filled circle or a filled square of random colour, size
 * and place on a noisy two-colour gradient, each image between 400x300 and 500x375 pixels. */

struct shapes_job {
    int limit;
    uint64_t seed;
};

/* (h,w,3) pixels of image `index` of class `label`, a pure function of (seed, index). */
static void draw_shape(uint8_t *px, int h, int w, int label, uint64_t key)
{
    struct sn_rng r;
    sn_rng_seed(&r, key);
    float c0[3], c1[3], fg[3];
    for (int k = 0; k < 3; k++) {
        c0[k] = 255.f * sn_rng_uniform(&r);
        c1[k] = 255.f * sn_rng_uniform(&r);
        fg[k] = 255.f * sn_rng_uniform(&r);
    }
    int side = h < w ? h : w;
    float size = side * (0.2f + 0.25f * sn_rng_uniform(&r)); /* radius or half side */
    float cy = size + (h - 2 * size) * sn_rng_uniform(&r);
    float cx = size + (w - 2 * size) * sn_rng_uniform(&r);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float t = (float)(x + y) / (float)(h + w), dy = y - cy, dx = x - cx;
            int inside = label == 0 ? dy * dy + dx * dx <= size * size
                                    : dy >= -size && dy <= size && dx >= -size && dx <= size;
            float noise = 14.f * (sn_rng_uniform(&r) - 0.5f);
            for (int k = 0; k < 3; k++) {
                float v = inside ? fg[k] : c0[k] + (c1[k] - c0[k]) * t;
                v += noise;
                px[((size_t)y * w + x) * 3 + k] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
            }
        }
}

static int write_shapes(const char *tmp, const void *user, struct sn_err *err)
{
    static const char *const splits[3] = {"train", "validation", "test"};
    static const char *const classes[2] = {"circle", "square"};
    static const int counts[3] = {2000, 1000, 1000};
    const struct shapes_job *job = user;
    uint8_t *px = malloc((size_t)500 * 375 * 3);
    SN_RETURN_IF(px == NULL, err, SN_ENOMEM, "out of memory");
    char path[SN_PATH_MAX];
    int rc = SN_OK, index = 0;
    for (int s = 0; s < 3 && rc == SN_OK; s++) {
        snprintf(path, sizeof path, "%s/%s", tmp, splits[s]);
        rc = make_dir(path, err);
        for (int c = 0; c < 2 && rc == SN_OK; c++) {
            snprintf(path, sizeof path, "%s/%s/%s", tmp, splits[s], classes[c]);
            rc = make_dir(path, err);
        }
        int n = job->limit > 0 && job->limit < counts[s] ? job->limit : counts[s];
        for (int i = 0; i < n && rc == SN_OK; i++, index++) {
            uint64_t key = sn_hash64(job->seed, (uint64_t)index);
            int label = (int)(key & 1);
            int w = 400 + (int)((key >> 8) % 101), h = 300 + (int)((key >> 16) % 76);
            draw_shape(px, h, w, label, key);
            snprintf(path, sizeof path, "%s/%s/%s/%05d.jpg", tmp, splits[s], classes[label], i);
            rc = sn_image_write_jpeg(path, px, h, w, 3, 85, err);
        }
    }
    free(px);
    return rc;
}

int sn_dataset_shapes(const char *outdir, int limit, int *already, struct sn_err *err)
{
    char want[64];
    snprintf(want, sizeof want, "shapes limit=%d\n", limit > 0 ? limit : 0);
    struct shapes_job job = {limit, 8};
    return build_tree(outdir, want, already, write_shapes, &job, err);
}
