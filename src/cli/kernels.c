/* kernels.c — which OpenBLAS kernels this process runs. OpenBLAS picks a core type when it is
 * loaded, sometimes below what the CPU can do (a CPU newer than the OpenBLAS build), and a core
 * type's GEMM can be wrong on a given CPU. This upgrades the choice, checks the product, and
 * steps down while it is wrong; each change starts the program again, since OpenBLAS reads
 * OPENBLAS_CORETYPE only when it is loaded. The resulting line is what `version`, `bench` and
 * the start of a run print (sn_cpu_kernels). */
#include "cli_internal.h"

#include <errno.h>   // defines: errno
#include <signal.h>  // defines: raise, SIGUSR1
#include <stdio.h>   // defines: fprintf, snprintf, fflush
#include <stdlib.h>  // defines: getenv, setenv
#include <string.h>  // defines: strcmp, strchr, strlen, strerror
#include <strings.h> // defines: strncasecmp
#include <unistd.h>  // defines: execv

#include "cpu.h"
#include "hooks.h"
#include "ops.h"

/* Is this the process the job prints warnings from (rank 0, or no launcher)? Read before MPI. */
static int first_rank(void)
{
    const char *vars[] = {"OMPI_COMM_WORLD_RANK", "PMIX_RANK", "SLURM_PROCID"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i]))
            return strcmp(getenv(vars[i]), "0") == 0;
    return 1;
}

/* Starts this program again with OPENBLAS_CORETYPE=core: OpenBLAS reads it only when it is
 * loaded. SN_BLAS_CORETYPE tells the new process that the choice was ours, SN_BLAS_FAILED which
 * core types failed the check. Returns only if the exec failed. */
static void restart_with(char **argv, const char *core, const char *failed)
{
    setenv("OPENBLAS_CORETYPE", core, 1);
    setenv("SN_BLAS_CORETYPE", core, 1);
    if (failed && *failed)
        setenv("SN_BLAS_FAILED", failed, 1);
    fflush(NULL);
    if (sn_test_hook("STOP_BEFORE_EXEC")) /* a stop that came just before: kept across the exec */
        raise(SIGUSR1);
    cli_hold_stop_signals(1); /* a stop arriving during the exec waits for the new handlers */
    execv("/proc/self/exe", argv);
    cli_hold_stop_signals(0);
    if (first_rank())
        fprintf(stderr, "shardnet: warning: cannot start again with OPENBLAS_CORETYPE=%s (%s); "
                        "continuing with the kernels OpenBLAS chose\n",
                core, strerror(errno));
}

/* Whether a core type is listed in the comma-separated list (test hook BLAS_WRONG:
 * the check treats these core types as computing wrong products). */
static int listed(const char *list, const char *core)
{
    size_t n = strlen(core);
    for (const char *p = list; p && *p;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == n && strncasecmp(p, core, n) == 0)
            return 1;
        p = end ? end + 1 : NULL;
    }
    return 0;
}

/* Runs the fastest correct OpenBLAS kernels for this CPU: upgrades OpenBLAS's own choice when
 * it is below the CPU's level and the user set no OPENBLAS_CORETYPE; checks the GEMM and steps
 * down a level while it is wrong. Records the line the start line, bench and version print. */
void cli_select_kernels(char **argv)
{
    struct sn_cpu cpu;
    sn_cpu_detect(&cpu);
    char version[32], core[32];
    sn_ops_blas_info(version, sizeof version, core, sizeof core);
    const char *set = getenv("OPENBLAS_CORETYPE");
    const char *ours = getenv("SN_BLAS_CORETYPE");
    const char *failed = getenv("SN_BLAS_FAILED");
    if (!set || !*set) {
        const char *up = sn_blas_core_upgrade(cpu.isa, core);
        if (up)
            restart_with(argv, up, failed);
    }
    if (sn_ops_blas_check() != 0 || listed(sn_test_hook("BLAS_WRONG"), core)) {
        char now_failed[256];
        snprintf(now_failed, sizeof now_failed, "%s%s%s", failed ? failed : "",
                 failed ? "," : "", core);
        const char *next = sn_blas_core_below(core);
        if (next)
            restart_with(argv, next, now_failed);
        else if (first_rank())
            fprintf(stderr, "shardnet: warning: OpenBLAS's %s kernels computed a wrong product in "
                            "the start-up check, and no kernels are left to try\n",
                    core);
    }
    if (failed && first_rank())
        fprintf(stderr, "shardnet: warning: OpenBLAS kernels %s computed a wrong product in the "
                        "start-up check; running its %s kernels instead\n",
                failed, core);
    char line[384], dnnl[64];
    sn_ops_onednn_describe(dnnl, sizeof dnnl);
    const char *how = set && ours && strcmp(set, ours) == 0 ? "chosen for"
                      : set && *set                          ? "set by OPENBLAS_CORETYPE; CPU"
                                                             : "OpenBLAS's choice; CPU";
    snprintf(line, sizeof line, "OpenBLAS %s %s kernels (%s %s%s, %s%s%s); %s", version, core,
             how, sn_isa_name(cpu.isa), cpu.amx ? " AMX" : "", cpu.model,
             failed ? "; failed the check: " : "", failed ? failed : "", dnnl);
    sn_cpu_set_kernels(line);
}
