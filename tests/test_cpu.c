/* test_cpu.c — the choice of OpenBLAS's kernels (cpu.c) and the start-up check of the loaded
 * GEMM (ops_blas.c). The choice is a pure function of the CPU's level and OpenBLAS's own pick, so
 * every case, including CPUs this machine is not, is tested here; e2e_kernels.sh tests the
 * process around it (start again with OPENBLAS_CORETYPE, respect a user's value, step down when
 * the check fails). */
#include <setjmp.h> // defines: jmp_buf (cmocka needs it)
#include <stdarg.h> // defines: va_list (cmocka needs it)
#include <stddef.h> // defines: size_t (cmocka needs it)
#include <string.h> // defines: strlen

#include <cmocka.h>

#include "cpu.h"
#include "ops.h"

static void test_core_levels(void **state)
{
    (void)state;
    assert_int_equal(sn_blas_core_isa("Cooperlake"), SN_ISA_AVX512_BF16);
    assert_int_equal(sn_blas_core_isa("SkylakeX"), SN_ISA_AVX512);
    assert_int_equal(sn_blas_core_isa("skylakex"), SN_ISA_AVX512); /* OpenBLAS ignores case */
    assert_int_equal(sn_blas_core_isa("Haswell"), SN_ISA_AVX2);
    assert_int_equal(sn_blas_core_isa("Zen"), SN_ISA_AVX2);
    assert_int_equal(sn_blas_core_isa("Sandybridge"), SN_ISA_AVX);
    assert_int_equal(sn_blas_core_isa("Prescott"), SN_ISA_SSE);
    assert_int_equal(sn_blas_core_isa("Nehalem"), SN_ISA_SSE);
    assert_int_equal(sn_blas_core_isa("NoSuchCore"), SN_ISA_SSE);
    assert_int_equal(sn_blas_core_isa(NULL), SN_ISA_SSE);
}

/* The Xeon of issue 9: AVX-512 BF16, OpenBLAS 0.3.21 picks Prescott. */
static void test_upgrade_from_fallback(void **state)
{
    (void)state;
    assert_string_equal(sn_blas_core_upgrade(SN_ISA_AVX512_BF16, "Prescott"), "Cooperlake");
    assert_string_equal(sn_blas_core_upgrade(SN_ISA_AVX512, "Prescott"), "SkylakeX");
    assert_string_equal(sn_blas_core_upgrade(SN_ISA_AVX2, "Prescott"), "Haswell");
    assert_string_equal(sn_blas_core_upgrade(SN_ISA_AVX512, "Haswell"), "SkylakeX");
    assert_string_equal(sn_blas_core_upgrade(SN_ISA_AVX512_BF16, "Zen"), "Cooperlake");
    assert_string_equal(sn_blas_core_upgrade(SN_ISA_AVX, "Core2"), "Sandybridge");
}

/* A pick as good as the CPU is kept; so is one above it (OpenBLAS knows the CPU better than the
 * feature bits would say), and nothing is chosen for an SSE3-only CPU. */
static void test_keep_good_choice(void **state)
{
    (void)state;
    assert_null(sn_blas_core_upgrade(SN_ISA_AVX512_BF16, "Cooperlake"));
    assert_null(sn_blas_core_upgrade(SN_ISA_AVX512_BF16, "SapphireRapids"));
    assert_null(sn_blas_core_upgrade(SN_ISA_AVX512, "SkylakeX"));
    assert_null(sn_blas_core_upgrade(SN_ISA_AVX2, "Zen"));
    assert_null(sn_blas_core_upgrade(SN_ISA_AVX2, "SkylakeX"));
    assert_null(sn_blas_core_upgrade(SN_ISA_SSE, "Prescott"));
    assert_null(sn_blas_core_upgrade(SN_ISA_SSE, "Nehalem"));
}

/* After a failed check: one level down at a time, ending after Prescott. */
static void test_step_down(void **state)
{
    (void)state;
    assert_string_equal(sn_blas_core_below("Cooperlake"), "SkylakeX");
    assert_string_equal(sn_blas_core_below("SkylakeX"), "Haswell");
    assert_string_equal(sn_blas_core_below("Zen"), "Sandybridge");
    assert_string_equal(sn_blas_core_below("Haswell"), "Sandybridge");
    assert_string_equal(sn_blas_core_below("Sandybridge"), "Prescott");
    assert_null(sn_blas_core_below("Prescott"));
    assert_null(sn_blas_core_below("Nehalem"));
}

static void test_isa_names(void **state)
{
    (void)state;
    assert_string_equal(sn_isa_name(SN_ISA_SSE), "SSE3");
    assert_string_equal(sn_isa_name(SN_ISA_AVX2), "AVX2");
    assert_string_equal(sn_isa_name(SN_ISA_AVX512), "AVX-512");
    assert_string_equal(sn_isa_name(SN_ISA_AVX512_BF16), "AVX-512 BF16");
}

static void test_detect(void **state)
{
    (void)state;
    struct sn_cpu c;
    sn_cpu_detect(&c);
    assert_true(c.isa >= SN_ISA_SSE && c.isa <= SN_ISA_AVX512_BF16);
    assert_true(strlen(c.model) > 0);
    /* x86-64 requires SSE2, and every CPU that has AVX2 has it: the level agrees with the
       compiler's own view of the features */
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        assert_true(c.isa >= SN_ISA_AVX2);
    if (!__builtin_cpu_supports("avx512f"))
        assert_true(c.isa < SN_ISA_AVX512);
}

/* The loaded kernels pass the check (a machine whose kernels fail it would make every other
 * test here fail too), and the record of kernels is what was set. */
static void test_loaded_kernels_pass(void **state)
{
    (void)state;
    assert_int_equal(sn_ops_blas_check(), 0);
    char version[32], core[32];
    sn_ops_blas_info(version, sizeof version, core, sizeof core);
    assert_true(strlen(version) > 0 && version[0] != '?');
    assert_true(strlen(core) > 0);
    sn_cpu_set_kernels("OpenBLAS x y kernels");
    assert_string_equal(sn_cpu_kernels(), "OpenBLAS x y kernels");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_core_levels),       cmocka_unit_test(test_upgrade_from_fallback),
        cmocka_unit_test(test_keep_good_choice),  cmocka_unit_test(test_step_down),
        cmocka_unit_test(test_isa_names),         cmocka_unit_test(test_detect),
        cmocka_unit_test(test_loaded_kernels_pass),
    };
    return cmocka_run_group_tests_name("cpu", tests, NULL, NULL);
}
