/* cpu.h — what the CPU can do, and which OpenBLAS kernels should run on it.
 *
 * OpenBLAS (built DYNAMIC_ARCH, as Debian ships it) picks its kernels once, when the library is
 * loaded, from its own table of CPU models or from OPENBLAS_CORETYPE. A CPU newer than that
 * table gets the SSE3 "Prescott" kernels (OpenBLAS 0.3.21 on a Xeon of family 6 model 207 with
 * AVX-512 and AMX: 922-1,178 images/s on Listing 8.1, against 3,049 with its Cooperlake
 * kernels). shardnet reads the CPU's features itself (cpuid) and, when OpenBLAS chose kernels
 * below what the CPU supports and the user set no OPENBLAS_CORETYPE, starts itself again with
 * the right one (cli/kernels.c: the only way to change the choice of a library already loaded). A
 * start-up check then compares the kernels' GEMM with a naive one (ops_blas.c) and steps down a level,
 * with a warning, when they disagree: older OpenBLAS builds compute wrong products on some CPUs.
 *
 * Everything here is pure except sn_cpu_detect (cpuid), so the decisions are unit-tested. */
#ifndef SN_CPU_H
#define SN_CPU_H

#include <stddef.h>

/* Vector levels, each including the ones below it. */
enum sn_isa {
    SN_ISA_SSE = 1,     /* SSE3: every x86-64 CPU OpenBLAS meets */
    SN_ISA_AVX,
    SN_ISA_AVX2,        /* AVX2 + FMA */
    SN_ISA_AVX512,      /* AVX-512 F, BW, VL, DQ, CD (Skylake-SP and later, Zen 4 and later) */
    SN_ISA_AVX512_BF16, /* ... and AVX512_BF16 (Cooper Lake, Sapphire Rapids, Zen 4 and later) */
};

struct sn_cpu {
    char model[64];  /* cpuid's brand string, trimmed: "AMD EPYC", "Intel(R) Xeon(R) ..." */
    int isa;         /* enum sn_isa */
    int amx;         /* AMX tiles (reported only; no kernel of ours uses them yet) */
};

void sn_cpu_detect(struct sn_cpu *c);

/* "SSE3", "AVX", "AVX2", "AVX-512", "AVX-512 BF16" */
const char *sn_isa_name(int isa);

/* The vector level an OpenBLAS core type's kernels need ("Haswell" -> SN_ISA_AVX2); SN_ISA_SSE
 * for the older ones and for names it does not know. Case-insensitive, as OpenBLAS reads it. */
int sn_blas_core_isa(const char *core);

/* The core type to run on a CPU of level isa when OpenBLAS chose `current`: NULL to keep it
 * (it is already as good as the CPU allows, or the CPU has nothing better than SSE3). */
const char *sn_blas_core_upgrade(int isa, const char *current);

/* The next core type to try after `failed` computed a wrong product: the best one of a lower
 * level ("Cooperlake" -> "SkylakeX" -> "Haswell" -> "Sandybridge" -> "Prescott"), NULL after
 * Prescott. */
const char *sn_blas_core_below(const char *failed);

/* One line on the kernels this process runs, for the start line, `bench` and `version`:
 * "OpenBLAS 0.3.21 Cooperlake kernels (chosen for AVX-512 BF16, AMD EPYC); oneDNN 2.6.3
 * avx512_core_bf16". Set once by the CLI at start, before any thread. */
void sn_cpu_set_kernels(const char *line);
const char *sn_cpu_kernels(void);

#endif
