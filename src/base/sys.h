/* sys.h — the few operating-system services every module needs, written once: a monotonic
 * clock, FNV-1a hashing, `mkdir -p`, a writability probe, free space, opening a file for reading
 * only when it is a regular file, and atomic file replacement.
 *
 * Atomic writes follow redis's rdbSave: write PATH.tmp.<pid>, fflush, fsync, rename over PATH,
 * fsync the directory. Until commit, PATH is untouched; on abort (or any failure) the temporary
 * file is removed. A process killed mid-write leaves PATH.tmp.<pid> behind, which the next run's
 * sn_remove_stale() removes. */
#ifndef SN_SYS_H
#define SN_SYS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "err.h"

/* Seconds on a monotonic clock; callable from any thread, before and after MPI. */
double sn_now(void);

#define SN_HASH_INIT 0xcbf29ce484222325ull /* FNV-1a 64 offset basis: the first h */

/* FNV-1a 64 over bytes. h is the hash so far: SN_HASH_INIT to start, or a previous result to
 * chain. */
uint64_t sn_hash_bytes(const void *p, size_t n, uint64_t h);
/* FNV-1a 64 over a string and its terminating NUL, so ("ab","c") and ("a","bc") differ. */
uint64_t sn_hash_str(const char *s, uint64_t h);

/* mkdir -p dir. what names the directory's role in the message ("checkpoint directory"). */
int sn_mkdir_p(const char *dir, const char *what, struct sn_err *err);

/* Checks that files can be created in dir and that about `need` bytes fit: writes, syncs and
 * removes a probe file, then compares the free space with need. Finds a path that is a file,
 * a read-only or full file system before any work is done. */
int sn_probe_dir(const char *dir, const char *what, uint64_t need, struct sn_err *err);

/* Bytes free for an unprivileged writer on the file system that holds dir (statvfs f_bavail);
 * UINT64_MAX when it cannot be told. */
uint64_t sn_free_bytes(const char *dir);

/* Whether a file that is not a regular file is "a FIFO", "a directory", "a socket", "a character
 * device", "a block device" (mode as stat gives it), for messages. */
const char *sn_file_kind(unsigned mode);

/* Opens path for reading, only when it is a regular file (symbolic links followed). Every file
 * the program reads goes through here: a FIFO opened plainly blocks until a writer comes (an
 * image or a checkpoint named by mistake hangs the run), and a directory or a device reads as
 * nonsense. Race-free: the open is non-blocking (a FIFO without a writer opens at once), the
 * descriptor it gave is checked (fstat: the file checked is the file read, whatever the path
 * names by then), then made blocking again; no extra metadata call per file (a million images
 * on a parallel file system pay one open each, as before).
 * what names the file's role in messages ("checkpoint", "image", "config").
 * @return SN_OK with *fd open (close-on-exec, blocking); SN_EIO when open(2) failed ("PATH:
 * cannot open WHAT: REASON"; errno is open's, so that a caller may word it its own way); or
 * SN_EFORMAT when it is not a regular file ("PATH: the WHAT is a FIFO, not a regular file"). */
int sn_open_regular(const char *path, const char *what, int *fd, struct sn_err *err);
/* The same as a stdio stream, mode "rb" or "r". *f is NULL on failure. */
int sn_fopen_regular(const char *path, const char *mode, const char *what, FILE **f,
                     struct sn_err *err);

/* Removes the temporary files that killed writers of dir/prefix* left behind
 * (dir/prefix*.tmp.<pid>). */
void sn_remove_stale(const char *dir, const char *prefix);

struct sn_atomic_file {
    FILE *f;            /* write here between open and commit */
    char path[1024];
    char tmp[1100];
};

/* Creates PATH.tmp.<pid> for writing. */
int  sn_atomic_open(struct sn_atomic_file *af, const char *path, struct sn_err *err);
/* fflush, fsync, close, rename over PATH, fsync of the directory. On failure the temporary
 * file is removed and PATH is as it was (except when only the directory fsync failed, which the
 * message says). Either way af->f is closed. */
int  sn_atomic_commit(struct sn_atomic_file *af, struct sn_err *err);
/* Closes and removes the temporary file; PATH is untouched. Accepts an af never opened. */
void sn_atomic_abort(struct sn_atomic_file *af);

#endif
