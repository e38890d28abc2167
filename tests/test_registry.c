/* test_registry.c — the backends' registry (src/ops/registry.c): every backend listed once,
 * found by its name, described by its caps rather than by its address. */
#include <setjmp.h> // defines: jmp_buf (cmocka needs it)
#include <stdarg.h> // defines: va_list (cmocka needs it)
#include <stddef.h> // defines: size_t (cmocka needs it)
#include <stdint.h> // defines: uint64_t

#include <cmocka.h> // defines: cmocka_unit_test, assert_*

#include <string.h> // defines: strcmp

#include "ops.h"

/* Every table is in sn_backends once, and sn_ops_by_name finds each by its name — bf16 too. */
static void test_every_backend_listed_once_and_found(void **state)
{
    const struct sn_ops *const tables[] = {&sn_ops_blas, &sn_ops_onednn, &sn_ops_winograd,
                                           &sn_ops_bf16, &sn_ops_ref};
    int n = 0;
    while (sn_backends[n])
        n++;
    assert_int_equal(n, 5);
    for (size_t t = 0; t < sizeof tables / sizeof tables[0]; t++) {
        int found = 0;
        for (int i = 0; i < n; i++)
            found += sn_backends[i] == tables[t];
        assert_int_equal(found, 1);
        assert_ptr_equal(sn_ops_by_name(tables[t]->name), tables[t]);
    }
    for (int i = 0; i < n; i++)
        for (int j = i + 1; j < n; j++)
            assert_true(strcmp(sn_backends[i]->name, sn_backends[j]->name) != 0);
    assert_null(sn_ops_by_name("cuda"));
    assert_null(sn_ops_by_name(""));
    assert_null(sn_ops_by_name(NULL));
}

/* What each backend can do, by its caps: the oneDNN tables keep primitives and take the
 * blocked layout; Winograd's and bf16's reorder; bf16 is chosen by precision, never named;
 * the naive loops are the oracle alone. */
static void test_caps(void **state)
{
    assert_int_equal(sn_ops_blas.caps, 0);
    assert_int_equal(sn_ops_ref.caps, SN_OPS_ORACLE);
    const struct sn_ops *dnnl[] = {&sn_ops_onednn, &sn_ops_winograd, &sn_ops_bf16};
    for (size_t i = 0; i < 3; i++) {
        assert_true(dnnl[i]->caps & SN_OPS_PRIMITIVES);
        assert_true(dnnl[i]->caps & SN_OPS_BLOCKED);
        assert_false(dnnl[i]->caps & SN_OPS_ORACLE);
    }
    assert_false(sn_ops_onednn.caps & SN_OPS_REORDERS);
    assert_true(sn_ops_winograd.caps & SN_OPS_REORDERS);
    assert_true(sn_ops_winograd.caps & SN_OPS_WINOGRAD);
    assert_true(sn_ops_bf16.caps & SN_OPS_REORDERS);
    assert_true(sn_ops_bf16.caps & SN_OPS_BF16);
    for (int i = 0; sn_backends[i]; i++)
        assert_int_equal(sn_ops_nameable(sn_backends[i]), sn_backends[i] != &sn_ops_bf16);
}

/* The scratch a layer reserves covers every backend's, and the threads reach OpenBLAS. */
static void test_scratch_max_and_threads(void **state)
{
    struct sn_conv_desc d = {.n = 4, .h = 13, .w = 13, .c = 32, .oh = 11, .ow = 11, .oc = 64,
                             .kh = 3, .kw = 3, .sh = 1, .sw = 1};
    size_t most = sn_ops_conv2d_scratch_max(&d);
    assert_true(most > 0);
    for (int i = 0; sn_backends[i]; i++)
        assert_true(sn_backends[i]->conv2d_scratch(&d) <= most);
    sn_ops_set_threads(1);
    assert_int_equal(sn_ops_get_threads(), 1);
    assert_int_equal(sn_ops_blas_get_threads(), 1);
    sn_ops_set_threads(2);
    assert_int_equal(sn_ops_get_threads(), 2);
    sn_ops_set_threads(1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_backend_listed_once_and_found),
        cmocka_unit_test(test_caps),
        cmocka_unit_test(test_scratch_max_and_threads),
    };
    return cmocka_run_group_tests_name("registry", tests, NULL, NULL);
}
