/* dataset.h — the files of one split, listed the way Keras's image_dataset_from_directory lists
 * them (listing.c), and that list read by rank 0 alone and shared with the other ranks
 * (share.c).
 *
 * Listing at cluster scale: a scan reads names and types only (readdir's d_type, scan.c), keeps
 * what it found in the file-list cache (by default in the user's cache folder, never in the data
 * folders unless [data] index_cache = beside; checked whole, trusted while every folder keeps its
 * mtime and inode: index_cache.h), and under MPI runs on rank 0 alone, which broadcasts the
 * result packed as bytes. No file is opened here: images are decoded by the loader (loader.h). */
#ifndef SN_DATASET_H
#define SN_DATASET_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "data_conf.h"
#include "err.h"

/* Class names that fix the labels: the training split's, or a checkpoint's. */
struct sn_classes {
    int n;
    const char (*names)[64]; /* view, (n) */
};

/* Where a split's file list came from. */
enum sn_index_source { SN_INDEX_SCANNED = 0, SN_INDEX_CACHED, SN_INDEX_RECEIVED };

/* The file-list cache's file in each split folder with [data] index_cache = beside (a hidden
 * name: never listed). Written by earlier versions by default: left alone otherwise. */
#define SN_INDEX_CACHE_NAME ".shardnet-index"

/* Room for a note: a path, the cache's path and a reason. */
#define SN_DATASET_NOTE_MAX (2 * SN_PATH_MAX + 320)

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
    char note[SN_DATASET_NOTE_MAX]; /* "" or a note for the user that did not stop the listing
                                       (sn_dataset_open says which); the caller prints it */
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
 * The file-list cache ([data] index_cache, index_cache.h): the listing of the split's folder is
 * kept in an entry of the user's cache folder (yes, the default), of a folder the config names,
 * or in ROOT/.shardnet-index (beside), and reused while ROOT is the same folder (real path and
 * inode), holds the same class folders, and every folder below it has the mtime and inode it had
 * at the scan (adding, removing or renaming a file changes its folder's mtime). A damaged entry
 * is rebuilt, and ds->note then says so: "PATH is damaged (REASON): ignored, ROOT is scanned
 * again"; an entry that cannot be written is no error, and ds->note says so too, in words that
 * are the same for every split when the cache folder is at fault (sn_index_cache_scan), so that
 * the caller can say it once. This code prints nothing: the caller shows a non-empty note as
 * "shardnet: note: <note>" on stderr. ds->index_source says where the listing came from.
 * Test hook FORBID_SCAN (hooks.h): when set this fails instead of reading any
 * folder (tests set it on ranks that must receive their index). */
int  sn_dataset_open(struct sn_dataset **out, const struct sn_data_conf *dc, enum sn_split split,
                     const struct sn_classes *known, struct sn_err *err);
void sn_dataset_free(struct sn_dataset *ds);

/* The same on every rank of d, with the folders read by rank 0 only: rank 0 opens the split as
 * above and broadcasts it (or its error) in the form of sn_dataset_pack; the other ranks never
 * touch the data folders. Every rank returns the same code; an error is marked collective. That
 * includes a rank without memory for the list: every rank then returns SN_ENOMEM naming it,
 * and none is left in a broadcast. After the list arrived, a rank that cannot unpack it or does
 * not see its folder (an error naming the folder and the rank) fails alone: that error is not
 * collective. Rank 0's dataset holds rank 0's note (the other ranks' notes are empty).
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

#endif
