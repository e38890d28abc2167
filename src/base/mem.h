/* mem.h — how much memory this process may still take: what a network's size is checked against
 * before anything is allocated (settings.c), so that a model that cannot fit is refused in
 * milliseconds with its figures, not after gigabytes and seconds of allocation.
 *
 * The least of the machine's MemAvailable (/proc/meminfo: free memory plus what the kernel can
 * reclaim) and the room left under the memory limit of this process's cgroup, at every level of
 * its hierarchy (v2: memory.max; v1: memory.limit_in_bytes; less what the group uses beyond
 * its reclaimable file cache): a SLURM job, a container or a systemd slice is held to its
 * limit, not to the machine's memory. Address-space limits (ulimit -v) are not counted: an
 * allocation beyond them fails at once, without touching memory. */
#ifndef SN_MEM_H
#define SN_MEM_H

#include <stdint.h>

struct sn_mem_avail {
    uint64_t bytes;    /* what may still be taken; 0 when nothing says (no /proc) */
    char source[160];  /* what set it: "MemAvailable in /proc/meminfo", "the cgroup limit of
                          /sys/fs/cgroup/slurm/job_12/memory.max (4096 MB)" */
};

/* Fills *out. root prefixes every path read ("" for the real system; a test's folder that
 * holds proc/ and sys/fs/cgroup/ files for the tests). In a test build, $SN_TEST_MEM_ROOT stands
 * for "" when set (base/hooks.h), here and in sn_mem_resident: the end-to-end tests' way to give
 * the node the memory they need. */
void sn_mem_available(const char *root, struct sn_mem_avail *out);

/* Bytes of this process in memory now (VmRSS of root/proc/self/status), 0 when nothing says:
 * what of an allocation already made is no longer in the available figure above. */
uint64_t sn_mem_resident(const char *root);

#endif
