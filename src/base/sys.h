/* sys.h — the few operating-system services every module needs, written once: a monotonic
 * clock, FNV-1a hashing, `mkdir -p`, a writability probe and atomic file replacement.
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
