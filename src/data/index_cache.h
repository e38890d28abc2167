/* index_cache.h — ROOT/.shardnet-index, what a scan of ROOT found, kept beside the data so that
 * the next run reads one file instead of walking every folder (used inside src/data only).
 *
 *   "SNIX" u32 version | u64 payload bytes | u64 FNV-1a 64 of the payload | payload
 *   payload: u32 n_walked { str rel, u64 mtime s, u64 mtime ns, u64 inode }
 *            u32 n_folders { str name, u32 n_files { str path } }
 *   (bytes.h's fields: little-endian, strings length-prefixed)
 *
 * It is trusted only when it parses whole (magic, version, sizes within the file, checksum, every
 * count bounded by the bytes left, every path relative and below its folder), when the root's
 * class folders are the ones recorded (one readdir of the root), and when every folder read by
 * the scan still has its recorded mtime and inode. Anything else means a fresh scan; a damaged
 * file is also noted for the user (in words, never printed here). The root's own mtime is not
 * recorded: writing the cache changes it. */
#ifndef SN_INDEX_CACHE_H
#define SN_INDEX_CACHE_H

#include <stddef.h>

#include "err.h"
#include "scan.h"

/* The scan of root into x: from root's cache when use_cache and the cache is fresh (*cached =
 * 1), else by sn_scan_index_build (*cached = 0), and then written to the cache when use_cache.
 * Writing is atomic and best effort: a read-only or full data folder is not an error, and a
 * folder changed in the second before the scan began is not cached (a coarse clock could hide
 * a later change). note (cap bytes) gets "PATH is damaged (REASON): ignored, ROOT is scanned
 * again" when a cache file was there but could not be trusted as a file, "" otherwise (a stale
 * cache is no news). @return SN_OK, or the scan's error (x then empty) */
int sn_index_cache_scan(const char *root, int use_cache, struct sn_scan_index *x, int *cached,
                        char *note, size_t note_cap, struct sn_err *err);

#endif
