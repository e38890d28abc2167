/* mem.c — the memory this process may still take (mem.h). */
#include "mem.h"

#include <stdio.h>  // defines: FILE, fopen, fgets, fclose, snprintf, sscanf
#include <stdlib.h> // defines: strtoull
#include <string.h> // defines: strncmp, strcmp, strchr, strrchr, strstr, strlen, strcspn

#include "hooks.h" // defines: sn_test_hook

#define MB (1024.0 * 1024.0)
/* cgroup v1 writes "no limit" as a huge number (PAGE_COUNTER_MAX pages) */
#define NO_LIMIT (1ull << 60)

/* The number in the first line of file (after `key` and blanks when key is not NULL: the line
 * of memory.stat or meminfo that starts with it). @return 1 if found, else 0 */
static int read_number(const char *file, const char *key, unsigned long long *out)
{
    FILE *f = fopen(file, "r");
    if (f == NULL)
        return 0;
    char line[256];
    int found = 0;
    size_t klen = key ? strlen(key) : 0;
    while (fgets(line, sizeof line, f))
        if (key == NULL || (strncmp(line, key, klen) == 0 &&
                            (line[klen] == ' ' || line[klen] == ':'))) {
            char *end, *p = line + klen + (key != NULL && line[klen] == ':');
            *out = strtoull(p, &end, 10);
            found = end != p;
            break;
        }
    fclose(f);
    return found;
}

/* Lowers out to the room left in the cgroup folder dir and the folders above it up to mount:
 * limit - (usage - reclaimable file cache), at the level where it is least. */
static void cgroup_room(const char *dir, size_t mount_len, const char *limit_file,
                        const char *usage_file, const char *cache_key, struct sn_mem_avail *out)
{
    char path[1024], at[900];
    snprintf(at, sizeof at, "%s", dir);
    for (;;) {
        unsigned long long limit, usage = 0, cache = 0;
        snprintf(path, sizeof path, "%s/%s", at, limit_file);
        if (read_number(path, NULL, &limit) && limit < NO_LIMIT) {
            snprintf(path, sizeof path, "%s/%s", at, usage_file);
            read_number(path, NULL, &usage);
            snprintf(path, sizeof path, "%s/memory.stat", at);
            read_number(path, cache_key, &cache);
            unsigned long long used = usage > cache ? usage - cache : 0;
            unsigned long long room = limit > used ? limit - used : 0;
            if (out->bytes == 0 || room < out->bytes) {
                out->bytes = room;
                snprintf(out->source, sizeof out->source, "the cgroup limit %.0f MB of %.100s/%s",
                         limit / MB, at, limit_file);
            }
        }
        char *slash = strrchr(at, '/');
        if (strlen(at) <= mount_len || slash == NULL || (size_t)(slash - at) < mount_len)
            return;
        *slash = '\0';
    }
}

/* The real system's root "": in a test build $SN_TEST_MEM_ROOT may stand for it, a folder
 * whose proc/ and sys/ files say what the end-to-end tests need the node to have. */
static const char *system_root(const char *root)
{
    const char *fake = root[0] ? NULL : sn_test_hook("MEM_ROOT");
    return fake ? fake : root;
}

void sn_mem_available(const char *root, struct sn_mem_avail *out)
{
    root = system_root(root);
    out->bytes = 0;
    out->source[0] = '\0';
    char path[1024];
    unsigned long long kb;
    snprintf(path, sizeof path, "%s/proc/meminfo", root);
    if (read_number(path, "MemAvailable", &kb)) {
        out->bytes = kb * 1024;
        snprintf(out->source, sizeof out->source, "MemAvailable in /proc/meminfo");
    }
    /* /proc/self/cgroup: "0::/PATH" (v2) and "N:CONTROLLERS:/PATH" lines (v1) */
    snprintf(path, sizeof path, "%s/proc/self/cgroup", root);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = '\0';
        char *c1 = strchr(line, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (c2 == NULL)
            continue;
        *c2 = '\0';
        const char *controllers = c1 + 1, *group = c2 + 1;
        char mount[600], dir[900];
        if (*controllers == '\0') { /* v2 */
            snprintf(mount, sizeof mount, "%s/sys/fs/cgroup", root);
            snprintf(path, sizeof path, "%s/cgroup.controllers", mount);
            FILE *probe = fopen(path, "r");
            if (probe == NULL) /* a hybrid system mounts v2 apart */
                snprintf(mount, sizeof mount, "%s/sys/fs/cgroup/unified", root);
            else
                fclose(probe);
            snprintf(dir, sizeof dir, "%s%s", mount, strcmp(group, "/") == 0 ? "" : group);
            cgroup_room(dir, strlen(mount), "memory.max", "memory.current", "inactive_file", out);
        } else if (strstr(controllers, "memory") != NULL) { /* v1 */
            snprintf(mount, sizeof mount, "%s/sys/fs/cgroup/memory", root);
            snprintf(dir, sizeof dir, "%s%s", mount, strcmp(group, "/") == 0 ? "" : group);
            cgroup_room(dir, strlen(mount), "memory.limit_in_bytes", "memory.usage_in_bytes",
                        "total_inactive_file", out);
        }
    }
    fclose(f);
}

uint64_t sn_mem_resident(const char *root)
{
    root = system_root(root);
    char path[1024];
    snprintf(path, sizeof path, "%s/proc/self/status", root);
    unsigned long long kb;
    return read_number(path, "VmRSS", &kb) ? (uint64_t)kb * 1024 : 0;
}
