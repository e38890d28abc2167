/* scan.c — a split's folder read by names and types only (readdir's d_type): its class
 * folders, the image files under each, and the state of every folder read (scan.h).
 * A file is stat'ed only when readdir cannot tell its type. */
#include "scan.h"

#include <ctype.h>    // defines: tolower
#include <dirent.h>   // defines: opendir, readdir, closedir, dirfd, DT_DIR, DT_REG
#include <errno.h>    // defines: errno, ENOENT, ENOTDIR
#include <stdio.h>    // defines: snprintf
#include <stdlib.h>   // defines: realloc, calloc, free, qsort
#include <string.h>   // defines: strcmp, strlen, strchr, strdup, memset, strerror
#include <sys/stat.h> // defines: stat, lstat, fstat, S_ISDIR, S_ISREG

#include "data_conf.h" // defines: SN_PATH_MAX

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Keras's image_dataset_from_directory keeps these extensions (case-insensitive). */
static int has_image_ext(const char *name)
{
    static const char *const exts[] = {".jpg", ".jpeg", ".png", ".bmp", ".gif"};
    size_t n = strlen(name);
    for (size_t i = 0; i < sizeof exts / sizeof exts[0]; i++) {
        size_t e = strlen(exts[i]);
        if (n <= e)
            continue;
        size_t k = 0;
        while (k < e && tolower((unsigned char)name[n - e + k]) == exts[i][k])
            k++;
        if (k == e)
            return 1;
    }
    return 0;
}

int sn_path_join(char *out, size_t cap, const char *a, const char *b, struct sn_err *err)
{
    int n = snprintf(out, cap, "%s/%s", a, b);
    SN_RETURN_IF(n < 0 || (size_t)n >= cap, err, SN_EINVAL, "path too long: %s/%s", a, b);
    return SN_OK;
}

int sn_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int sn_strlist_push(struct sn_strlist *l, const char *s, struct sn_err *err)
{
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        SN_RETURN_IF(v == NULL, err, SN_ENOMEM, "out of memory listing files");
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = strdup(s);
    SN_RETURN_IF(l->v[l->n] == NULL, err, SN_ENOMEM, "out of memory listing files");
    l->n++;
    return SN_OK;
}

void sn_strlist_free(struct sn_strlist *l)
{
    for (int i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
    memset(l, 0, sizeof *l);
}

void sn_scan_index_free(struct sn_scan_index *x)
{
    sn_strlist_free(&x->folders);
    sn_strlist_free(&x->files);
    free(x->first);
    for (int i = 0; i < x->n_walked; i++)
        free(x->walked[i].rel);
    free(x->walked);
    memset(x, 0, sizeof *x);
}

int sn_scan_index_add_walked(struct sn_scan_index *x, const char *rel, int64_t sec, int64_t nsec,
                             uint64_t ino, struct sn_err *err)
{
    if (x->n_walked == x->cap_walked) {
        int cap = x->cap_walked ? 2 * x->cap_walked : 64;
        struct sn_walked *w = realloc(x->walked, (size_t)cap * sizeof *w);
        SN_RETURN_IF(w == NULL, err, SN_ENOMEM, "out of memory listing folders");
        x->walked = w;
        x->cap_walked = cap;
    }
    struct sn_walked *w = &x->walked[x->n_walked];
    w->rel = strdup(rel);
    SN_RETURN_IF(w->rel == NULL, err, SN_ENOMEM, "out of memory listing folders");
    w->sec = sec;
    w->nsec = nsec;
    w->ino = ino;
    x->n_walked++;
    return SN_OK;
}

/* Lists the non-hidden entries of dir that are directories (want_dirs) or files with an image
 * name (regular or not: the loader refuses the others by name), sorted.
 * Entries are names relative to dir. With `recurse`, image files in subfolders are listed too
 * (as Keras walks a class folder): this folder's files first, then each subfolder's, sorted.
 * File contents are never read; an entry is stat'ed only when readdir cannot tell its type (a
 * symbolic link, or a file system without d_type). With walk != NULL, every folder read is
 * recorded there as walk_rel/rel with its state taken before it was read. */
static int list_dir(const char *dir, const char *rel, int want_dirs, int recurse,
                    struct sn_strlist *out, struct sn_scan_index *walk, const char *walk_rel,
                    struct sn_err *err)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        int e = errno;
        if (e == ENOENT)
            return sn_err_set(err, SN_EDATA, "data directory %s does not exist", dir);
        if (e == ENOTDIR)
            return sn_err_set(err, SN_EDATA, "%s is not a directory", dir);
        return sn_err_set(err, SN_EIO, "cannot open directory %s: %s", dir, strerror(e));
    }
    char path[SN_PATH_MAX], name[SN_PATH_MAX], wrel[SN_PATH_MAX];
    struct sn_strlist subdirs = {0};
    int rc = SN_OK, first = out->n;
    if (walk) {
        struct stat dst;
        if (rel[0])
            rc = sn_path_join(wrel, sizeof wrel, walk_rel, rel, err);
        else
            snprintf(wrel, sizeof wrel, "%s", walk_rel);
        if (rc == SN_OK && fstat(dirfd(d), &dst) != 0)
            rc = sn_err_set(err, SN_EIO, "cannot stat directory %s: %s", dir, strerror(errno));
        if (rc == SN_OK)
            rc = sn_scan_index_add_walked(walk, wrel, (int64_t)dst.st_mtim.tv_sec,
                                          (int64_t)dst.st_mtim.tv_nsec, (uint64_t)dst.st_ino, err);
    }
    struct dirent *de;
    while (rc == SN_OK && (de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if ((rc = sn_path_join(path, sizeof path, dir, de->d_name, err)) != SN_OK)
            break;
        if (rel[0])
            rc = sn_path_join(name, sizeof name, rel, de->d_name, err);
        else
            snprintf(name, sizeof name, "%s", de->d_name);
        if (rc != SN_OK)
            break;
        int isdir, real_dir;
        if (de->d_type == DT_DIR || de->d_type == DT_REG) {
            isdir = real_dir = de->d_type == DT_DIR;
        } else {
            struct stat st, lst;
            if (stat(path, &st) != 0)
                continue; /* dangling link */
            isdir = S_ISDIR(st.st_mode);
            real_dir = isdir && lstat(path, &lst) == 0 && S_ISDIR(lst.st_mode);
        }
        /* an image name that is not a regular file (a FIFO, a device) is listed too: the
           loader refuses it by name, and it is skipped and counted like a corrupt image */
        int keep = want_dirs ? isdir : !isdir && has_image_ext(de->d_name);
        if (keep && (rc = sn_strlist_push(out, name, err)) != SN_OK)
            break;
        /* subfolders are walked, symlinked ones are not (Keras: follow_links=False) */
        if (!want_dirs && recurse && real_dir &&
            (rc = sn_strlist_push(&subdirs, de->d_name, err)) != SN_OK)
            break;
    }
    closedir(d);
    if (rc == SN_OK && out->n - first > 1)
        qsort(out->v + first, (size_t)(out->n - first), sizeof *out->v, cmp_str);
    if (rc == SN_OK && subdirs.n > 1)
        qsort(subdirs.v, (size_t)subdirs.n, sizeof *subdirs.v, cmp_str);
    for (int i = 0; rc == SN_OK && i < subdirs.n; i++) {
        char sub_rel[SN_PATH_MAX];
        if ((rc = sn_path_join(path, sizeof path, dir, subdirs.v[i], err)) != SN_OK)
            break;
        if (rel[0])
            rc = sn_path_join(sub_rel, sizeof sub_rel, rel, subdirs.v[i], err);
        else
            snprintf(sub_rel, sizeof sub_rel, "%s", subdirs.v[i]);
        if (rc == SN_OK)
            rc = list_dir(path, sub_rel, 0, 1, out, walk, walk_rel, err);
    }
    sn_strlist_free(&subdirs);
    return rc;
}

int sn_scan_class_folders(const char *root, struct sn_strlist *out, struct sn_err *err)
{
    return list_dir(root, "", 1, 0, out, NULL, "", err);
}

int sn_scan_index_build(const char *root, struct sn_scan_index *x, struct sn_err *err)
{
    memset(x, 0, sizeof *x);
    SN_FORWARD(list_dir(root, "", 1, 0, &x->folders, NULL, "", err));
    x->first = calloc((size_t)x->folders.n + 1, sizeof *x->first);
    SN_RETURN_IF(x->first == NULL, err, SN_ENOMEM, "out of memory listing %s", root);
    for (int i = 0; i < x->folders.n; i++) {
        char cdir[SN_PATH_MAX];
        x->first[i] = x->files.n;
        SN_FORWARD(sn_path_join(cdir, sizeof cdir, root, x->folders.v[i], err));
        SN_FORWARD(list_dir(cdir, "", 0, 1, &x->files, x, x->folders.v[i], err));
    }
    x->first[x->folders.n] = x->files.n;
    return SN_OK;
}

int sn_scan_index_find(const struct sn_scan_index *x, const char *name)
{
    int lo = 0, hi = x->folders.n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(x->folders.v[mid], name);
        if (c == 0)
            return mid;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return -1;
}

int sn_path_rel_safe(const char *p)
{
    if (p[0] == '/' || p[0] == '\0')
        return 0;
    for (const char *c = p; *c;) {
        const char *e = strchr(c, '/');
        size_t len = e ? (size_t)(e - c) : strlen(c);
        if (len == 0 || (len == 1 && c[0] == '.') || (len == 2 && c[0] == '.' && c[1] == '.'))
            return 0;
        c += len + (e != NULL);
    }
    return 1;
}
