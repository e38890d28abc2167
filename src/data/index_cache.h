/* index_cache.h — what a scan of a split folder ROOT found, kept between runs so that the next
 * run reads one file instead of walking every folder (used inside src/data only).
 *
 * Where ([data] index_cache, enum sn_index_cache): by default in the user's cache folder,
 * $XDG_CACHE_HOME/shardnet/index (an absolute XDG_CACHE_HOME only, as the XDG spec says), else
 * $HOME/.cache/shardnet/index; or in a folder the config names; in both, one file per split
 * folder, named after the last two components of ROOT's real path and a hash of all of it
 * ("fm-train-3f0c9a2e41b7d805"), so that two folders of the same name do not meet. Nothing is
 * then written into the data folders, nor read from them: a ROOT/.shardnet-index left there by
 * an earlier version is neither read nor deleted. With `beside` the file is ROOT/.shardnet-index
 * (the behaviour of earlier versions: one cache that every node of a cluster sees with the
 * data).
 *
 *   "SNIX" u32 version | u64 payload bytes | u64 FNV-1a 64 of the payload | payload
 *   payload: str ROOT's real path | u64 ROOT's inode
 *            u32 n_walked { str rel, u64 mtime s, u64 mtime ns, u64 inode }
 *            u32 n_folders { str name, u32 n_files { str path } }
 *   (bytes.h's fields: little-endian, strings length-prefixed)
 *
 * It is trusted only when it parses whole (magic, version, sizes within the file, checksum, every
 * count bounded by the bytes left, every path relative and below its folder); when it is ROOT's
 * (outside ROOT: the real path it records is ROOT's, so that a hash collision is a miss) and ROOT
 * is the folder it was (the same inode: a folder replaced at the same path is listed again);
 * when ROOT's class folders are the ones recorded (one readdir of ROOT); and when every folder
 * read by the scan still has its recorded mtime and inode. Anything else means a fresh scan; a
 * damaged file is also noted for the user (in words, never printed here); a file of version 1
 * (written by earlier versions, beside the data only) is stale, not damaged. ROOT's own mtime is
 * not recorded: writing the cache beside the data changes it.
 *
 * Across the nodes of a cluster: rank 0 alone reads and writes (share.c). A requeued job whose
 * rank 0 lands on another node sees the same entry if the homes are shared, none otherwise (and
 * lists the folder once, as the first run did). An entry written on another node is checked like
 * any other: NFS, Lustre and GPFS give every node the server's inode numbers and mtimes, so it
 * holds there; where a file system numbers inodes per client (some FUSE mounts) it never holds,
 * and the folder is listed each time: slower, never wrong. The device number is not part of a
 * folder's identity: a network file system's is assigned at mount time, and differs between
 * nodes and remounts. */
#ifndef SN_INDEX_CACHE_H
#define SN_INDEX_CACHE_H

#include <stddef.h>

#include "data_conf.h"
#include "err.h"
#include "scan.h"

/* The folder of the user's entries (index_cache = yes) into out[cap]; "" when neither
 * XDG_CACHE_HOME (absolute) nor HOME is set. */
void sn_index_cache_home(char *out, size_t cap);

/* The file that holds root's entry under mode into out[cap]: ROOT/.shardnet-index beside the
 * data, else FOLDER/NAME (dir is the FOLDER of SN_INDEX_CACHE_DIR, unused otherwise). Nothing is
 * created. @return 0, or -1 with why[why_cap] saying why there is none: the cache is off, no
 * cache folder, root's real path cannot be resolved, a path too long. */
int sn_index_cache_entry(const char *root, enum sn_index_cache mode, const char *dir, char *out,
                         size_t cap, char *why, size_t why_cap);

/* The scan of root into x: from root's entry when mode is not SN_INDEX_CACHE_NO and the entry is
 * fresh (*cached = 1), else by sn_scan_index_build (*cached = 0), and then written to the entry
 * (its folder created). Writing is atomic and best effort: a cache that cannot be written is not
 * an error, and a folder changed in the second before the scan began is not cached (a coarse
 * clock could hide a later change). note (note_cap bytes) gets "" or what the user should know:
 *   "PATH is damaged (REASON): ignored, ROOT is scanned again" for an entry there that could not
 *   be trusted as a file (a stale one is no news);
 *   "cannot write the file-list cache in FOLDER (REASON): ...; HINT: ..." (the same words for
 *   every split folder, so that a caller that shows each split's note can say it once), or
 *   "cannot write the file-list cache ROOT/.shardnet-index (REASON): ..." beside the data, or
 *   "no folder for the file-list cache: ...", when the entry cannot be written.
 * @return SN_OK, or the scan's error (x then empty) */
int sn_index_cache_scan(const char *root, enum sn_index_cache mode, const char *dir,
                        struct sn_scan_index *x, int *cached, char *note, size_t note_cap,
                        struct sn_err *err);

#endif
