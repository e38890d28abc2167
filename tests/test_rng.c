/* test_rng.c — the counter-based draws of rng.h: sn_hash_uniform_threshold, the integer form of
 * `sn_hash_uniform(h) >= p` that dropout's masks rely on to stay bit for bit what the float
 * compare gives, checked against that compare for every one of the 2^24 draws; and
 * sn_hash64_keyed_top24, the shortcut to those 24 bits, against the full hash. */
#include <setjmp.h> // defines: jmp_buf (cmocka needs it)
#include <stdarg.h> // defines: va_list (cmocka needs it)
#include <stddef.h> // defines: size_t (cmocka needs it)
#include <stdint.h> // defines: uint32_t, uint64_t

#include <cmocka.h> // defines: cmocka_unit_test, assert_*

#include <math.h> // defines: nextafterf, NAN, INFINITY

#include "rng.h"

/* For every k < 2^24, the draw of a hash whose top 24 bits are k (low bits set too, which
 * sn_hash_uniform must ignore) passes p exactly when k >= the threshold. */
static void check_threshold(float p)
{
    const uint32_t t = sn_hash_uniform_threshold(p);
    assert_true(t <= 1u << 24);
    uint32_t bad = 0;
    for (uint32_t k = 0; k < 1u << 24; k++) {
        uint64_t h = ((uint64_t)k << 40) | 0xFFFFFFFFFFull * (k & 1);
        bad += (sn_hash_uniform(h) >= p) != (k >= t);
    }
    assert_int_equal(bad, 0);
}

static void test_threshold_exhaustive(void **state)
{
    (void)state;
    const float on_grid = 1234567.0f / 16777216.0f; /* k * 2^-24 exactly: k itself passes */
    const float ps[] = {0.3f,
                        0.5f,
                        0.25f,
                        0.1f,
                        0.9f,
                        on_grid,
                        nextafterf(on_grid, 0.0f),
                        nextafterf(on_grid, 1.0f),
                        1e-7f,
                        1e-40f, /* subnormal */
                        1.0f / 16777216.0f,
                        1.0f - 1.0f / 16777216.0f,
                        nextafterf(1.0f, 0.0f),
                        0.0f,
                        -0.0f,
                        -0.5f,
                        1.0f,
                        2.0f,
                        INFINITY,
                        -INFINITY,
                        NAN};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++)
        check_threshold(ps[i]);
}

static void test_threshold_values(void **state)
{
    (void)state;
    assert_int_equal(sn_hash_uniform_threshold(0.0f), 0);
    assert_int_equal(sn_hash_uniform_threshold(-1.0f), 0);
    assert_int_equal(sn_hash_uniform_threshold(1e-40f), 1);
    assert_int_equal(sn_hash_uniform_threshold(0.5f), 1u << 23);
    assert_int_equal(sn_hash_uniform_threshold(1234567.0f / 16777216.0f), 1234567);
    assert_int_equal(sn_hash_uniform_threshold(nextafterf(1234567.0f / 16777216.0f, 1.0f)), 1234568);
    assert_int_equal(sn_hash_uniform_threshold(0.3f), 5033165); /* 0.3f is 5033165 * 2^-24 */
    assert_int_equal(sn_hash_uniform_threshold(0.1f), 1677722); /* 0.1f is 1677721.625 * 2^-24 */
    assert_int_equal(sn_hash_uniform_threshold(nextafterf(1.0f, 0.0f)), (1u << 24) - 1);
    assert_int_equal(sn_hash_uniform_threshold(1.0f), 1u << 24);
    assert_int_equal(sn_hash_uniform_threshold(NAN), 1u << 24);
}

/* The shortcut for the top 24 bits is the full hash's top 24 bits, keys and counters alike. */
static void test_top24(void **state)
{
    (void)state;
    struct sn_rng r;
    sn_rng_seed(&r, 7);
    for (int i = 0; i < 1000; i++) {
        uint64_t key = sn_mix64(sn_rng_next(&r));
        for (uint64_t j = 0; j < 1000; j++)
            if (sn_hash64_keyed_top24(key, j) != (uint32_t)(sn_hash64_keyed(key, j) >> 40))
                fail_msg("key %llx, counter %llu", (unsigned long long)key,
                         (unsigned long long)j);
        uint64_t j = sn_rng_next(&r);
        assert_int_equal(sn_hash64_keyed_top24(key, j), sn_hash64_keyed(key, j) >> 40);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_threshold_values),
        cmocka_unit_test(test_threshold_exhaustive),
        cmocka_unit_test(test_top24),
    };
    return cmocka_run_group_tests_name("rng", tests, NULL, NULL);
}
