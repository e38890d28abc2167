/* index_cache.c — a split folder's entry in the file-list cache: where it is (the user's cache
 * folder, a folder the config names, or beside the data), read (checked whole, then against the
 * folders' state) and written (atomically, best effort). The format and the rules are in
 * index_cache.h. */
#include "index_cache.h"

#include <errno.h>    // defines: errno
#include <limits.h>   // defines: PATH_MAX
#include <stdint.h>   // defines: int64_t, uint64_t
#include <stdio.h>    // defines: fread, fwrite, snprintf
#include <stdlib.h>   // defines: malloc, calloc, free, getenv, realpath
#include <string.h>   // defines: memset, strcmp, strchr, strlen, strerror
#include <sys/stat.h> // defines: stat, fstat, S_ISDIR, S_ISREG
#include <time.h>     // defines: time
#include <unistd.h>   // defines: close

#include "bytes.h"
#include "dataset.h" // defines: SN_PATH_MAX, SN_INDEX_CACHE_NAME
#include "sys.h"

#define INDEX_MAGIC 0x58494e53u /* "SNIX" */
#define INDEX_VERSION 2u
#define INDEX_VERSION_BESIDE_ONLY 1u /* earlier versions' files beside the data: stale */
#define INDEX_HEADER 24

/* The words of a note on an entry that cannot be written; the same for every split folder. */
#define LISTED_AGAIN "the data folders are listed again at every start"
#define WRITE_HINT "HINT: set [data] index_cache to a writable folder, or to no"

/* What makes an entry root's: its real path and its inode. */
struct index_key {
    char real[PATH_MAX];
    uint64_t ino;
};

void sn_index_cache_home(char *out, size_t cap)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (xdg && xdg[0] == '/')
        snprintf(out, cap, "%s/shardnet/index", xdg);
    else if (home && home[0])
        snprintf(out, cap, "%s/.cache/shardnet/index", home);
    else if (cap > 0)
        out[0] = '\0';
}

/* One path component made a file-name part: at most 40 characters, each outside
 * [A-Za-z0-9._-] made '_', no leading dot (entries are not hidden). */
static size_t label_part(const char *c, size_t len, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n < 40; i++) {
        char ch = c[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || (ch == '.' && n > 0);
        out[n++] = ok ? ch : '_';
    }
    return n;
}

/* "fm-train" for /data/fm/train: the last two components of an absolute path, for the eye
 * (the hash that follows them in the name tells folders apart). out holds 82 bytes. */
static void entry_label(const char *real, char *out)
{
    const char *end = real + strlen(real), *last = end, *prev;
    while (last > real && last[-1] != '/')
        last--;
    prev = last > real ? last - 1 : real;
    while (prev > real && prev[-1] != '/')
        prev--;
    size_t n = 0;
    if (last - 1 > prev) {
        n = label_part(prev, (size_t)(last - 1 - prev), out);
        out[n++] = '-';
    }
    n += label_part(last, (size_t)(end - last), out + n);
    if (n == 0)
        n = (size_t)snprintf(out, 82, "root");
    out[n] = '\0';
}

/* root's real path and inode into k. @return 0, or -1 with why set */
static int index_key(const char *root, struct index_key *k, char *why, size_t cap)
{
    struct stat st;
    if (realpath(root, k->real) == NULL || stat(k->real, &st) != 0) {
        snprintf(why, cap, "no file-list cache for %s: its real path cannot be resolved (%s)",
                 root, strerror(errno));
        return -1;
    }
    k->ino = (uint64_t)st.st_ino;
    return 0;
}

/* The entry's path, and the folder to create (dir[0] = '\0' beside the data). */
static int entry_path(const char *root, const struct index_key *k, enum sn_index_cache mode,
                      const char *conf_dir, char *out, size_t cap, char *dir, size_t dir_cap,
                      char *why, size_t why_cap)
{
    dir[0] = '\0';
    if (mode == SN_INDEX_CACHE_NO) {
        snprintf(why, why_cap, "index_cache = no");
        return -1;
    }
    if (mode == SN_INDEX_CACHE_BESIDE) {
        int n = snprintf(out, cap, "%s/%s", root, SN_INDEX_CACHE_NAME);
        if (n < 0 || (size_t)n >= cap) {
            snprintf(why, why_cap, "%s/%s: path too long", root, SN_INDEX_CACHE_NAME);
            return -1;
        }
        return 0;
    }
    if (mode == SN_INDEX_CACHE_HOME)
        sn_index_cache_home(dir, dir_cap);
    else
        snprintf(dir, dir_cap, "%s", conf_dir);
    if (!dir[0]) {
        snprintf(why, why_cap, "no folder for the file-list cache: XDG_CACHE_HOME and HOME are "
                               "unset; " LISTED_AGAIN " (HINT: set [data] index_cache to a "
                               "folder, or to no)");
        return -1;
    }
    char label[82];
    entry_label(k->real, label);
    int n = snprintf(out, cap, "%s/%s-%016llx", dir, label,
                     (unsigned long long)sn_hash_str(k->real, SN_HASH_INIT));
    if (n < 0 || (size_t)n >= cap) {
        snprintf(why, why_cap, "cannot write the file-list cache in %.*s (path too long); "
                               LISTED_AGAIN "; " WRITE_HINT,
                 (int)(why_cap / 2), dir);
        return -1;
    }
    return 0;
}

int sn_index_cache_entry(const char *root, enum sn_index_cache mode, const char *dir, char *out,
                         size_t cap, char *why, size_t why_cap)
{
    struct index_key k;
    char folder[SN_PATH_MAX];
    if (mode == SN_INDEX_CACHE_BESIDE || mode == SN_INDEX_CACHE_NO)
        k.real[0] = '\0', k.ino = 0;
    else if (index_key(root, &k, why, why_cap) != 0)
        return -1;
    return entry_path(root, &k, mode, dir, out, cap, folder, sizeof folder, why, why_cap);
}

/* Serializes x, recorded for k, into b (header included). */
static void index_serialize(const struct index_key *k, const struct sn_scan_index *x,
                            struct sn_wbuf *b)
{
    sn_wbuf_u32(b, INDEX_MAGIC);
    sn_wbuf_u32(b, INDEX_VERSION);
    sn_wbuf_u64(b, 0); /* payload bytes and checksum, filled below */
    sn_wbuf_u64(b, 0);
    sn_wbuf_str(b, k->real);
    sn_wbuf_u64(b, k->ino);
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
        for (int k2 = x->first[i]; k2 < x->first[i + 1]; k2++)
            sn_wbuf_str(b, x->files.v[k2]);
    }
    if (b->oom)
        return;
    uint64_t len = b->n - INDEX_HEADER, sum = sn_hash_bytes(b->p + INDEX_HEADER, len,
                                                            SN_HASH_INIT);
    struct sn_wbuf h = {.p = b->p + 8, .cap = 16};
    sn_wbuf_u64(&h, len);
    sn_wbuf_u64(&h, sum);
}

/* Parses an index file's bytes. Returns 0 with x and k filled, 1 for a file of an earlier
 * version (stale, not damaged), or -1 with why set (x empty). */
static int index_parse(const unsigned char *p, size_t n, struct index_key *k,
                       struct sn_scan_index *x, char *why, size_t cap)
{
    memset(x, 0, sizeof *x);
    struct sn_rbuf r = {.p = p, .n = n};
    uint32_t magic = sn_rbuf_u32(&r), version = sn_rbuf_u32(&r);
    uint64_t len = sn_rbuf_u64(&r), sum = sn_rbuf_u64(&r);
    if (r.bad || magic != INDEX_MAGIC) {
        snprintf(why, cap, "not an index file (bad magic or shorter than its header)");
        return -1;
    }
    if (version == INDEX_VERSION_BESIDE_ONLY)
        return 1;
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
    sn_rbuf_str(&r, k->real, sizeof k->real, 1);
    k->ino = sn_rbuf_u64(&r);
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
        int nk = sn_rbuf_count(&r, 4);
        for (int j = 0; j < nk && !r.bad; j++) {
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

/* 1 when root is the folder the entry was written for (beside the data: its inode; elsewhere
 * its real path too) and the folders under it are as x recorded them. */
static int index_fresh(const char *root, enum sn_index_cache mode, const struct index_key *now,
                       const struct index_key *was, const struct sn_scan_index *x)
{
    if (now->ino != was->ino ||
        (mode != SN_INDEX_CACHE_BESIDE && strcmp(now->real, was->real) != 0))
        return 0;
    struct sn_strlist classes = {0};
    struct sn_err err;
    int fresh = sn_scan_class_folders(root, &classes, &err) == SN_OK &&
                classes.n == x->folders.n;
    for (int i = 0; fresh && i < classes.n; i++)
        fresh = strcmp(classes.v[i], x->folders.v[i]) == 0;
    sn_strlist_free(&classes);
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

/* Reads root's entry at path. Returns 1 when x holds a fresh index, 0 otherwise (no file,
 * stale, or damaged: then note says so). */
static int index_read(const char *root, const char *path, enum sn_index_cache mode,
                      const struct index_key *k, struct sn_scan_index *x, char *note,
                      size_t note_cap)
{
    FILE *f;
    struct sn_err oerr; /* a FIFO at its name is refused (f NULL, said below), not waited for */
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
    struct index_key *was = malloc(sizeof *was);
    if (!why[0] && was == NULL)
        snprintf(why, sizeof why, "out of memory reading it");
    int parsed = why[0] ? -1 : index_parse(p, (size_t)st.st_size, was, x, why, sizeof why);
    free(p);
    if (parsed < 0)
        snprintf(note, note_cap, "%s is damaged (%s): ignored, %s is scanned again", path, why,
                 root);
    int fresh = parsed == 0 && index_fresh(root, mode, k, was, x);
    free(was);
    if (!fresh)
        sn_scan_index_free(x);
    return fresh;
}

/* Appends a note to what note holds ("; " between two). */
static void note_add(char *note, size_t cap, const char *what)
{
    size_t n = strlen(note);
    if (n + 3 < cap)
        snprintf(note + n, cap - n, "%s%s", n ? "; " : "", what);
}

/* Writes root's entry atomically, if it can (dir: the folder to create first, "" beside the
 * data); when it cannot, says so in note. Not written when a folder changed in the second before
 * the scan began: a file added in the same tick of a coarse clock would leave the mtime
 * unchanged. */
static void index_write(const char *root, const char *path, const char *dir,
                        const struct index_key *k, const struct sn_scan_index *x,
                        time_t scan_began, char *note, size_t note_cap)
{
    struct sn_err err = {0};
    char why[sizeof err.msg] = "";
    if (dir[0] && sn_mkdir_p(dir, "file-list cache folder", &err) != SN_OK)
        snprintf(why, sizeof why, "%s", err.msg);
    for (int i = 0; !why[0] && i < x->n_walked; i++)
        if (x->walked[i].sec >= (int64_t)scan_began - 1)
            return;
    struct sn_wbuf b = {0};
    if (!why[0])
        index_serialize(k, x, &b);
    if (!why[0] && b.oom)
        snprintf(why, sizeof why, "out of memory");
    struct sn_atomic_file af;
    int opened = !why[0] && sn_atomic_open(&af, path, &err) == SN_OK, e = errno;
    if (opened) {
        if (fwrite(b.p, 1, b.n, af.f) != b.n) {
            snprintf(why, sizeof why, "%s: %s", af.tmp, strerror(errno));
            sn_atomic_abort(&af);
        } else if (sn_atomic_commit(&af, &err) != SN_OK) {
            snprintf(why, sizeof why, "%s", err.msg);
        }
    } else if (!why[0]) {
        snprintf(why, sizeof why, "%s", strerror(e));
    }
    free(b.p);
    if (!why[0])
        return;
    char msg[2 * SN_PATH_MAX + 320];
    if (dir[0])
        snprintf(msg, sizeof msg,
                 "cannot write the file-list cache in %.*s (%.*s): " LISTED_AGAIN "; " WRITE_HINT,
                 SN_PATH_MAX / 2, dir, SN_PATH_MAX / 2, why);
    else
        snprintf(msg, sizeof msg,
                 "cannot write the file-list cache %.*s (%.*s): %.*s is listed again at every "
                 "start; HINT: set [data] index_cache = yes (the user's cache folder) or no",
                 SN_PATH_MAX / 2, path, SN_PATH_MAX / 4, why, SN_PATH_MAX / 4, root);
    note_add(note, note_cap, msg);
}

int sn_index_cache_scan(const char *root, enum sn_index_cache mode, const char *dir,
                        struct sn_scan_index *x, int *cached, char *note, size_t note_cap,
                        struct sn_err *err)
{
    *cached = 0;
    if (note_cap > 0)
        note[0] = '\0';
    char path[SN_PATH_MAX + 64], folder[SN_PATH_MAX], why[2 * SN_PATH_MAX + 320] = "";
    struct index_key *k = mode == SN_INDEX_CACHE_NO ? NULL : calloc(1, sizeof *k);
    int use = k != NULL && index_key(root, k, why, sizeof why) == 0 &&
              entry_path(root, k, mode, dir, path, sizeof path, folder, sizeof folder, why,
                         sizeof why) == 0;
    if (k != NULL && !use) /* on, but nowhere to keep it: said, and the folder is listed */
        note_add(note, note_cap, why);
    if (use && index_read(root, path, mode, k, x, note, note_cap)) {
        *cached = 1;
        free(k);
        return SN_OK;
    }
    time_t began = time(NULL);
    int rc = sn_scan_index_build(root, x, err);
    if (rc != SN_OK)
        sn_scan_index_free(x);
    else if (use)
        index_write(root, path, folder, k, x, began, note, note_cap);
    free(k);
    return rc;
}
