/* scan.h — reading a split's folder, by names and types alone (used inside src/data only).
 *
 * A scan lists ROOT's class folders and the image files under each (Keras's extensions, hidden
 * names skipped, subfolders walked, symlinked subfolders not), and records every folder it read
 * with its mtime and inode: adding, removing or renaming an entry changes its folder's mtime,
 * so equal states mean equal listings. That record is what the index cache keeps
 * (index_cache.h) and what listing.c turns into a dataset. File contents are never read. */
#ifndef SN_SCAN_H
#define SN_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

/* A growing list of strings (owned). Zero-initialised is empty. */
struct sn_strlist {
    int n, cap;
    char **v; /* owned, (n); each string owned */
};

/* Appends a copy of s. @return SN_OK or SN_ENOMEM */
int  sn_strlist_push(struct sn_strlist *l, const char *s, struct sn_err *err);
void sn_strlist_free(struct sn_strlist *l); /* leaves l empty */

/* A folder read during a scan: its path under the scanned root and its state then. */
struct sn_walked {
    char *rel;          /* owned: "cat", "cat/sub" */
    int64_t sec, nsec;  /* st_mtim */
    uint64_t ino;
};

/* What a scan of a split's folder found, before any config is applied: the class folders, the
 * image files of each (relative to it), and every folder read below the root. */
struct sn_scan_index {
    struct sn_strlist folders; /* class folder names, sorted */
    int *first;                /* owned, (folders.n + 1): folder i's files are
                                  files.v[first[i] .. first[i+1]) */
    struct sn_strlist files;   /* paths relative to their class folder: each folder's own files
                                  sorted, then each subfolder's, subfolders sorted */
    int n_walked, cap_walked;
    struct sn_walked *walked;  /* owned, (n_walked) */
};

/* Reads root's class folders and every image file under them into x (which it first empties).
 * On error x may hold part of the scan: free it. */
int  sn_scan_index_build(const char *root, struct sn_scan_index *x, struct sn_err *err);
/* Index of class folder `name` in x, or -1 (folders are sorted: a binary search). */
int  sn_scan_index_find(const struct sn_scan_index *x, const char *name);
/* Records a folder and its state in x->walked. @return SN_OK or SN_ENOMEM */
int  sn_scan_index_add_walked(struct sn_scan_index *x, const char *rel, int64_t sec,
                              int64_t nsec, uint64_t ino, struct sn_err *err);
void sn_scan_index_free(struct sn_scan_index *x); /* leaves x empty */

/* The class folders of root alone (one readdir), sorted, appended to out. */
int  sn_scan_class_folders(const char *root, struct sn_strlist *out, struct sn_err *err);

/* out = a/b. @return SN_OK, or SN_EINVAL naming the path when it does not fit in cap bytes */
int  sn_path_join(char *out, size_t cap, const char *a, const char *b, struct sn_err *err);
/* 1 when path is a directory (symbolic links followed). */
int  sn_is_dir(const char *path);
/* 1 when p is a relative path that stays below its folder: not empty, not absolute, no empty,
 * "." or ".." component. Names read from a file are checked with it before they are joined. */
int  sn_path_rel_safe(const char *p);

#endif
