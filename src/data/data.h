/* data.h — image directories read the way Keras's image_dataset_from_directory reads them, and
 * the loader that streams each rank's shard of every global batch through decoding and
 * augmentation on worker threads.
 *
 * Directory layout: ROOT/<class>/<image>, one subfolder per class, class names sorted (or listed
 * in the config), labels their index. Splits come from separate folders (train/, val/ or
 * validation/, test/, or the [data] train/val/test keys), or from validation_split + seed on one
 * folder.
 *
 * Order and sharding: epoch e has one global order, a permutation that is a function of
 * (seed, e) only. Global batch b holds order[b*B .. b*B+B) (the last one may be shorter); rank r
 * of N takes the contiguous slice [r*nb/N, (r+1)*nb/N) of it, nb the batch's size. So the samples
 * of a global batch never depend on N, every rank runs the same number of steps, and nothing is
 * padded or duplicated. A rank's slice may be empty (nb < N); it still takes part in the step.
 *
 * Pixels are delivered as float (N,H,W,C) in [0,255], like Keras; a Rescaling layer scales. */
#ifndef SN_DATA_H
#define SN_DATA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "augment.h"
#include "config.h"
#include "err.h"

enum sn_split { SN_SPLIT_TRAIN = 0, SN_SPLIT_VAL, SN_SPLIT_TEST };
enum sn_label_mode { SN_LABEL_INT = 0, SN_LABEL_CATEGORICAL, SN_LABEL_BINARY };
enum sn_interp { SN_INTERP_BILINEAR = 0, SN_INTERP_NEAREST, SN_INTERP_AREA };

#define SN_PATH_MAX 1024
#define SN_MAX_CLASSES 1024

/* The [data] section. */
struct sn_data_conf {
    char dir[SN_PATH_MAX];             /* root holding train/ val|validation/ test/ */
    char split_dir[3][SN_PATH_MAX];    /* explicit train/val/test paths ("" = derive from dir) */
    char dir_where[160];               /* where dir was set ("mnist.cfg:12", "--set data.dir") */
    char split_where[3][160];          /* same for train/val/test */
    int height, width;                 /* image_size = 28 or 180,180 */
    int channels;                      /* color_mode: grayscale 1, rgb 3 */
    enum sn_interp interp;             /* interpolation */
    int crop_to_aspect_ratio;
    enum sn_label_mode label_mode;
    int label_mode_set;                /* label_mode was given (it must then agree with the loss) */
    int n_class_names;                 /* class_names = a,b,c (0 = infer from folders) */
    char class_names[SN_MAX_CLASSES][64];
    double validation_split;           /* 0 = separate folders */
    int has_split_seed;
    uint64_t split_seed;               /* seed (of [data], else [train] seed) */
    int on_bad_image_fail;             /* on_bad_image = skip | fail */
    int threads;                       /* decode workers per rank (0 = auto) */
    int queue_depth;                   /* batches decoded ahead (0 = auto) */
    long long max_pixels;              /* refuse larger images before decoding */
    char features[SN_PATH_MAX];        /* features = FILE: samples are a base's outputs stored
                                          by `shardnet extract` (featfile.h), not images;
                                          height, width, channels are then theirs */
    char features_where[160];
    int index_cache;                   /* index_cache = yes | no: keep ROOT/.shardnet-index */
};

/* Parses [data] (missing keys take defaults; image_size is required). */
int sn_data_conf_parse(struct sn_data_conf *dc, const struct sn_config *cfg, struct sn_err *err);

/* Class names that fix the labels: the training split's, or a checkpoint's. */
struct sn_classes {
    int n;
    const char (*names)[64]; /* view, (n) */
};

/* Where a split's file list came from. */
enum sn_index_source { SN_INDEX_SCANNED = 0, SN_INDEX_CACHED, SN_INDEX_RECEIVED };

/* The index cache beside the data, in each scanned split folder (a hidden name: never listed). */
#define SN_INDEX_CACHE_NAME ".shardnet-index"

/* The files of one split. */
struct sn_dataset {
    char root[SN_PATH_MAX];
    int n;                /* number of files */
    int n_found;          /* files in the folder before validation_split took its part */
    char **paths;         /* owned, (n); each string owned too, unless path_arena is set */
    char *path_arena;     /* owned: when set, every paths[i] points into it (one allocation
                             for a million names instead of a million) */
    int32_t *labels;      /* owned, (n) */
    int n_classes;
    char (*class_names)[64]; /* owned, (n_classes): label i is class_names[i] */
    int *class_count;     /* owned, (n_classes): files of each class (0: the split lacks it) */
    uint64_t fingerprint; /* hash of the class names and of every file's path under root and
                             label: the same files give the same value on any machine */
    float *features;      /* owned, (n, H, W, C) when the split comes from a feature file
                             (paths is then NULL): the loader copies rows instead of decoding */
    enum sn_index_source index_source;
};

/* Scans the split's folder and checks it up front: a missing directory, no class folders, a class
 * folder without images, a split that leaves a class empty are errors naming the path and the
 * config key that led there. Files are listed, not opened: bad files are found (and reported)
 * when decoded.
 * known (may be NULL) fixes the labels, as the model's classes do for validation and test: each
 * class folder must be one of known (an error names the folder otherwise), labels are indices
 * into known, and a known class without images is allowed (class_count says so). Without it the
 * classes are the folders (or [data] class_names), sorted, and every one must hold images.
 *
 * The index cache: with [data] index_cache = yes (the default) the listing of the split's folder
 * is kept in ROOT/.shardnet-index and reused while the root holds the same class folders and
 * every folder below it has the mtime and inode it had at the scan (adding, removing or renaming
 * a file changes its folder's mtime). A read-only folder is simply not cached; a damaged cache
 * is noted on stderr and rebuilt. ds->index_source says which happened.
 * Test hook FORBID_SCAN (hooks.h): when set this fails instead of reading any
 * folder (tests set it on ranks that must receive their index). */
int  sn_dataset_open(struct sn_dataset **out, const struct sn_data_conf *dc, enum sn_split split,
                     const struct sn_classes *known, struct sn_err *err);
void sn_dataset_free(struct sn_dataset *ds);

/* The same on every rank of d, with the folders read by rank 0 only: rank 0 opens the split as
 * above and broadcasts it (or its error) in the form of sn_dataset_pack; the other ranks never
 * touch the data folders. Every rank returns the same code; an error is marked collective.
 * Feature-file splits are read by every rank (one file, no directory walk). */
struct sn_dist;
int  sn_dataset_open_shared(struct sn_dataset **out, struct sn_dist *d,
                            const struct sn_data_conf *dc, enum sn_split split,
                            const struct sn_classes *known, struct sn_err *err);

/* A dataset of image files as bytes: "SNDS", version, the root, the class names and counts, the
 * fingerprint, then each file's label and path under the root. *buf is malloc'ed (the caller
 * frees it). Unpack checks every size and string against len and fails with SN_EFORMAT, never
 * reading past the end. Feature-file splits cannot be packed (SN_EINVAL). */
int  sn_dataset_pack(const struct sn_dataset *ds, void **buf, size_t *len, struct sn_err *err);
int  sn_dataset_unpack(struct sn_dataset **out, const void *buf, size_t len, struct sn_err *err);

/* Writes "Found 2000 files belonging to 2 classes." (Keras's line), then "Using 1600 files for
 * training." when validation_split took part of the folder, to f. */
void sn_dataset_describe(const struct sn_dataset *ds, const struct sn_data_conf *dc,
                         enum sn_split split, FILE *f);
/* Writes into buf the names of the classes of ds without a file ("3_Dress, 8_Bag"); returns
 * their number. */
int  sn_dataset_missing(const struct sn_dataset *ds, char *buf, size_t cap);

/* Position [first, first+count) of this rank's slice of a global batch of nb samples. */
static inline void sn_shard_slice(int nb, int rank, int world, int *first, int *count)
{
    int lo = (int)((long long)nb * rank / world), hi = (int)((long long)nb * (rank + 1) / world);
    *first = lo;
    *count = hi - lo;
}

/* The global order of epoch e: a permutation of 0..n-1, a function of (seed, epoch) only.
 * shuffle = 0 gives the identity. order must hold n entries. */
void sn_epoch_order(int n, uint64_t seed, int epoch, int shuffle, int32_t *order);

struct sn_batch {
    int n;                /* rows on this rank (may be 0) */
    int global_n;         /* rows of the global batch, all ranks together */
    int step;             /* index of the batch within the epoch */
    float *x;             /* (n,H,W,C) in [0,255] — owned by the loader */
    int32_t *y;           /* (n) class index (label_mode int; losses expand it as needed) */
    int64_t *ids;         /* (n) index of each sample in the dataset */
    uint8_t *ok;          /* (n) 0 where the file could not be decoded (row is zeros) */
    int n_bad;            /* rows with ok == 0 */
};

struct sn_loader_conf {
    const struct sn_dataset *ds;
    const struct sn_data_conf *dc;
    const struct sn_augment_conf *aug; /* NULL: no augmentation */
    int global_batch;
    int rank, world;
    int shuffle;
    uint64_t seed;
    /* Where a skipped file is reported, once per file per loader, from a worker thread (with
       the loader's lock held: keep it short). NULL: a line on stderr. */
    void (*report)(void *user, const char *msg);
    void *report_user;
};

struct sn_loader;

/* Creates the loader and its worker threads (dc->threads). Buffers are allocated here, once. */
int  sn_loader_create(struct sn_loader **out, const struct sn_loader_conf *c, struct sn_err *err);
void sn_loader_free(struct sn_loader *l); /* joins the workers; accepts NULL */

/* Global steps per epoch: ceil(n / global_batch). Same on every rank. */
int  sn_loader_steps(const struct sn_loader *l);

/* Starts decoding epoch `epoch` (its order depends on seed and epoch only). */
int  sn_loader_start_epoch(struct sn_loader *l, int epoch, struct sn_err *err);
/* The same from batch first_batch on, without decoding the batches before it (a resumed run). */
int  sn_loader_start_epoch_at(struct sn_loader *l, int epoch, int first_batch,
                              struct sn_err *err);

/* Next batch of this rank, in order; *out = NULL after the last one. The batch stays valid until
 * sn_loader_release(). A file that does not decode is reported on stderr once (path and reason),
 * counted, and its row marked !ok; with on_bad_image = fail this returns an error naming it. */
int  sn_loader_next(struct sn_loader *l, struct sn_batch **out, struct sn_err *err);
void sn_loader_release(struct sn_loader *l, struct sn_batch *b);

/* Seconds sn_loader_next spent waiting for workers since the epoch started. */
double sn_loader_wait_seconds(const struct sn_loader *l);
/* Bad files met in this epoch on this rank. */
int  sn_loader_bad_count(const struct sn_loader *l);

/* Decodes one file to (H,W,C) float [0,255] with the data settings (used by `predict`). */
int  sn_data_load_image(const struct sn_data_conf *dc, const char *path, float *out,
                        struct sn_err *err);

/* `shardnet dataset fashion-mnist OUTDIR`: turns the IDX files in idx_dir into OUTDIR/train
 * (first 50,000), OUTDIR/val (last 10,000 of the training set), OUTDIR/test (10,000), one JPEG per
 * image in folders named after the 10 classes. limit > 0 keeps only the first `limit` images of
 * each split (for tests). Writes into a temporary folder and renames it at the end. */
int  sn_dataset_fashion_mnist(const char *idx_dir, const char *outdir, int limit,
                              struct sn_err *err);

/* `shardnet dataset shapes OUTDIR`: a synthetic two-class RGB set shaped like the book's
 * cats_vs_dogs_small — OUTDIR/{train,validation,test}/{circle,square}/NNNNN.jpg, 2,000 / 1,000 / 1,000
 * images of 400x300 to 500x375 pixels, the same files on every run. limit > 0 keeps the first
 * `limit` of each split. Built atomically like the Fashion-MNIST converter. */
int  sn_dataset_shapes(const char *outdir, int limit, struct sn_err *err);

#endif
