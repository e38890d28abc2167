/* cpu.c — the CPU's vector level (cpuid) and the OpenBLAS core type that matches it.
 * See cpu.h for why shardnet chooses OpenBLAS's kernels itself. */
#include "cpu.h"

#include <cpuid.h>   // defines: __get_cpuid, __get_cpuid_count
#include <stdio.h>   // defines: snprintf
#include <string.h>  // defines: memcpy, strlen
#include <strings.h> // defines: strcasecmp

void sn_cpu_detect(struct sn_cpu *c)
{
    memset(c, 0, sizeof *c);
    __builtin_cpu_init();
    /* __builtin_cpu_supports also checks that the OS saves the wider registers (XGETBV) */
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512cd"))
        c->isa = __builtin_cpu_supports("avx512bf16") ? SN_ISA_AVX512_BF16 : SN_ISA_AVX512;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        c->isa = SN_ISA_AVX2;
    else if (__builtin_cpu_supports("avx"))
        c->isa = SN_ISA_AVX;
    else
        c->isa = SN_ISA_SSE;
    /* AMX tiles: cpuid leaf 7, EDX bit 24 (not every compiler's __builtin_cpu_supports knows
       it); reported only */
    unsigned int a7, b7, c7, d7;
    if (__get_cpuid_count(7, 0, &a7, &b7, &c7, &d7))
        c->amx = (d7 >> 24) & 1;

    /* brand string: leaves 0x80000002..4, 16 bytes each */
    unsigned int r[12] = {0}, top = 0, b, cx, d;
    if (__get_cpuid(0x80000000u, &top, &b, &cx, &d) && top >= 0x80000004u) {
        for (unsigned int i = 0; i < 3; i++)
            __get_cpuid(0x80000002u + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        char brand[49];
        memcpy(brand, r, 48);
        brand[48] = '\0';
        const char *s = brand;
        while (*s == ' ')
            s++;
        snprintf(c->model, sizeof c->model, "%s", s);
        for (size_t n = strlen(c->model); n > 0 && c->model[n - 1] == ' '; n--)
            c->model[n - 1] = '\0';
    }
    if (!c->model[0])
        snprintf(c->model, sizeof c->model, "unknown x86-64");
}

const char *sn_isa_name(int isa)
{
    switch (isa) {
    case SN_ISA_AVX: return "AVX";
    case SN_ISA_AVX2: return "AVX2";
    case SN_ISA_AVX512: return "AVX-512";
    case SN_ISA_AVX512_BF16: return "AVX-512 BF16";
    default: return "SSE3";
    }
}

/* OpenBLAS 0.3.21's x86-64 core types above SSE3, with the level their kernels need. The best
 * one of each level comes first. */
static const struct {
    const char *name;
    int isa;
} blas_cores[] = {
    {"Cooperlake", SN_ISA_AVX512_BF16}, {"SapphireRapids", SN_ISA_AVX512_BF16},
    {"SkylakeX", SN_ISA_AVX512},
    {"Haswell", SN_ISA_AVX2},           {"Zen", SN_ISA_AVX2},
    {"Excavator", SN_ISA_AVX2},
    {"Sandybridge", SN_ISA_AVX},        {"Bulldozer", SN_ISA_AVX},
    {"Piledriver", SN_ISA_AVX},         {"Steamroller", SN_ISA_AVX},
    {"Prescott", SN_ISA_SSE},
};
#define N_BLAS_CORES (sizeof blas_cores / sizeof blas_cores[0])

int sn_blas_core_isa(const char *core)
{
    for (size_t i = 0; core && i < N_BLAS_CORES; i++)
        if (strcasecmp(core, blas_cores[i].name) == 0)
            return blas_cores[i].isa;
    return SN_ISA_SSE;
}

/* the first (best) core type of a level; the SSE3 level's is Prescott */
static const char *best_core(int isa)
{
    for (size_t i = 0; i < N_BLAS_CORES; i++)
        if (blas_cores[i].isa == isa)
            return blas_cores[i].name;
    return NULL;
}

const char *sn_blas_core_upgrade(int isa, const char *current)
{
    if (isa <= SN_ISA_SSE || sn_blas_core_isa(current) >= isa)
        return NULL;
    return best_core(isa);
}

const char *sn_blas_core_below(const char *failed)
{
    int isa = sn_blas_core_isa(failed);
    if (isa <= SN_ISA_SSE)
        return NULL;
    return best_core(isa - 1);
}

static char kernels_line[384] = "OpenBLAS kernels not checked";

void sn_cpu_set_kernels(const char *line)
{
    snprintf(kernels_line, sizeof kernels_line, "%s", line);
}

const char *sn_cpu_kernels(void) { return kernels_line; }
