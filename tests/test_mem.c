/* test_mem.c — the memory a process may take (base/mem.c) from a made-up /proc and cgroup tree,
 * and the memory a network will take (sn_model_memory) against what sn_model_allocate takes. */
#include <setjmp.h> // defines: jmp_buf (needed by cmocka.h)
#include <stdarg.h> // defines: va_list (needed by cmocka.h)
#include <stddef.h> // defines: size_t (needed by cmocka.h)
#include <stdio.h>  // defines: snprintf
#include <string.h> // defines: strstr
#include <sys/stat.h> // defines: mkdir

#include <cmocka.h> // defines: cmocka_unit_test, assert_*

#include "config.h"
#include "mem.h"
#include "model.h"
#include "ops.h"
#include "testutil.h"

/* Writes text into root/rel, making the folders on the way. */
static void put(const char *root, const char *rel, const char *text)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    for (char *p = path + strlen(root) + 1; *p; p++)
        if (*p == '/') {
            *p = '\0';
            mkdir(path, 0755);
            *p = '/';
        }
    assert_int_equal(sn_test_write_file(path, text), 0);
}

#define MEMINFO "MemTotal:       24000000 kB\nMemFree:   100 kB\nMemAvailable:   20000000 kB\n"

static void test_meminfo_alone(void **state)
{
    (void)state;
    const char *root = sn_test_dir("mem_meminfo");
    put(root, "proc/meminfo", MEMINFO);
    struct sn_mem_avail a;
    sn_mem_available(root, &a);
    assert_true(a.bytes == 20000000ull * 1024);
    assert_string_equal(a.source, "MemAvailable in /proc/meminfo");
    /* nothing to read: nothing said, and nothing refused */
    sn_mem_available("/nonexistent-root", &a);
    assert_true(a.bytes == 0);
}

/* VmRSS in kB, as the kernel writes it; nothing without the file or the line */
static void test_resident(void **state)
{
    (void)state;
    const char *root = sn_test_dir("mem_resident");
    put(root, "proc/self/status", "Name:\tshardnet\nVmPeak:\t  900 kB\nVmRSS:\t    5120 kB\n");
    assert_int_equal(sn_mem_resident(root), 5120ull * 1024);
    put(root, "proc/self/status", "Name:\tshardnet\n");
    assert_int_equal(sn_mem_resident(root), 0);
    assert_int_equal(sn_mem_resident("/nonexistent-root"), 0);
    assert_true(sn_mem_resident("") > 0); /* this process, on Linux */
}

/* A SLURM job's cgroup v2 limit of 4 GiB, of which 1 GiB is used beyond reclaimable cache; its
 * parent's is larger; the machine has more. */
static void test_cgroup_v2(void **state)
{
    (void)state;
    const char *root = sn_test_dir("mem_cgroup_v2");
    put(root, "proc/meminfo", MEMINFO);
    put(root, "proc/self/cgroup", "0::/slurm/job_12\n");
    put(root, "sys/fs/cgroup/cgroup.controllers", "cpu memory\n");
    put(root, "sys/fs/cgroup/slurm/memory.max", "17179869184\n");
    put(root, "sys/fs/cgroup/slurm/memory.current", "0\n");
    put(root, "sys/fs/cgroup/slurm/job_12/memory.max", "4294967296\n");
    put(root, "sys/fs/cgroup/slurm/job_12/memory.current", "1610612736\n");
    put(root, "sys/fs/cgroup/slurm/job_12/memory.stat", "anon 1\ninactive_file 536870912\n");
    struct sn_mem_avail a;
    sn_mem_available(root, &a);
    assert_true(a.bytes == 3ull << 30);
    assert_non_null(strstr(a.source, "the cgroup limit 4096 MB of "));
    assert_non_null(strstr(a.source, "/sys/fs/cgroup/slurm/job_12/memory.max"));
    /* "max" is no limit */
    put(root, "sys/fs/cgroup/slurm/job_12/memory.max", "max\n");
    sn_mem_available(root, &a);
    assert_true(a.bytes == 16ull << 30);
    assert_non_null(strstr(a.source, "/sys/fs/cgroup/slurm/memory.max"));
}

/* cgroup v1 (this machine's kind): memory.limit_in_bytes, its "no limit", a hybrid mount. */
static void test_cgroup_v1(void **state)
{
    (void)state;
    const char *root = sn_test_dir("mem_cgroup_v1");
    put(root, "proc/meminfo", MEMINFO);
    put(root, "proc/self/cgroup", "4:memory:/job\n1:cpu,cpuacct:/\n0::/\n");
    put(root, "sys/fs/cgroup/memory/memory.limit_in_bytes", "9223372036854771712\n");
    put(root, "sys/fs/cgroup/memory/job/memory.limit_in_bytes", "2147483648\n");
    put(root, "sys/fs/cgroup/memory/job/memory.usage_in_bytes", "1073741824\n");
    put(root, "sys/fs/cgroup/memory/job/memory.stat", "cache 5\ntotal_inactive_file 0\n");
    struct sn_mem_avail a;
    sn_mem_available(root, &a);
    assert_true(a.bytes == 1ull << 30);
    assert_non_null(strstr(a.source, "/sys/fs/cgroup/memory/job/memory.limit_in_bytes"));
    put(root, "sys/fs/cgroup/memory/job/memory.limit_in_bytes", "9223372036854771712\n");
    sn_mem_available(root, &a);
    assert_true(a.bytes == 20000000ull * 1024);
}

/* The estimate is what allocation takes: parameters, state and the arena to the byte. */
static void test_model_memory(void **state)
{
    (void)state;
    struct sn_config *cfg = NULL;
    struct sn_err err = {0};
    assert_int_equal(sn_config_load_string(&cfg,
                                           "[model]\ninput_shape = 12,12,3\n[conv2d]\nfilters = 8\n"
                                           "kernel_size = 3\nactivation = relu\n"
                                           "[batchnormalization]\n[maxpooling2d]\n[flatten]\n"
                                           "[dense]\nunits = 4\ntrainable = false\n",
                                           "m.cfg", &err),
                     SN_OK);
    struct sn_model *m = NULL;
    assert_int_equal(sn_model_plan(&m, cfg, 5, &sn_ops_ref, &err), SN_OK);
    assert_null(m->params);
    assert_null(m->arena);
    struct sn_model_memory mm;
    sn_model_memory(m, &mm);
    assert_int_equal(sn_model_allocate(m, &err), SN_OK);
    assert_true(mm.arena == m->arena_bytes);
    assert_true(mm.params >= m->n_params * sizeof(float) && mm.params < m->n_params * 4 + 64);
    assert_true(mm.state >= m->n_state * sizeof(float));
    assert_true(mm.grads == m->n_trainable * sizeof(float)); /* the frozen dense has none */
    assert_true(m->n_trainable < m->n_params);
    sn_model_free(m);
    sn_config_free(cfg);
    /* sizes past size_t saturate rather than wrap: 2^20 filters on a 16384^2 image at a large
       batch is refused by the check, never allocated small */
    assert_int_equal(sn_config_load_string(&cfg,
                                           "[model]\ninput_shape = 16384,16384,3\n[conv2d]\n"
                                           "filters = 1048576\nkernel_size = 1\n",
                                           "huge.cfg", &err),
                     SN_OK);
    assert_int_equal(sn_model_plan(&m, cfg, 1 << 20, &sn_ops_ref, &err), SN_OK);
    sn_model_memory(m, &mm);
    assert_true(mm.arena == SIZE_MAX);
    assert_int_equal(sn_model_allocate(m, &err), SN_ENOMEM);
    sn_model_free(m);
    sn_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_meminfo_alone),
        cmocka_unit_test(test_resident),
        cmocka_unit_test(test_cgroup_v2),
        cmocka_unit_test(test_cgroup_v1),
        cmocka_unit_test(test_model_memory),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
