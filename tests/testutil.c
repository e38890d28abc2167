/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <math.h>   // defines: fabs
#include <stdio.h>  // defines: snprintf, fopen
#include <stdlib.h> // defines: getenv, system

#include <setjmp.h> // cmocka needs these three before it
#include <stdarg.h>
#include <stddef.h>

#include <cmocka.h> // defines: assert_string_equal, assert_int_equal, assert_true

#include "dataset.h" // defines: struct sn_dataset
#include "rng.h"

const char *sn_test_dir(const char *name)
{
    static char path[1024];
    const char *base = getenv("SN_TEST_TMP");
    snprintf(path, sizeof path, "%s/%s", base ? base : "/tmp/shardnet-test", name);
    char cmd[2200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", path, path);
    if (system(cmd) != 0)
        fprintf(stderr, "testutil: could not create %s\n", path);
    return path;
}

void sn_test_fill(float *x, size_t n, float lo, float hi, uint64_t seed)
{
    struct sn_rng r;
    sn_rng_seed(&r, seed);
    for (size_t i = 0; i < n; i++)
        x[i] = lo + (hi - lo) * sn_rng_uniform(&r);
}

double sn_test_max_rel_diff(const float *a, const float *b, size_t n)
{
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]);
        double s = fmax(1.0, fmax(fabs(a[i]), fabs(b[i])));
        if (d / s > worst || isnan(d))
            worst = isnan(d) ? INFINITY : d / s;
    }
    return worst;
}

int sn_test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

void sn_test_assert_same_dataset(const struct sn_dataset *a, const struct sn_dataset *b)
{
    assert_string_equal(a->root, b->root);
    assert_int_equal(a->n, b->n);
    assert_int_equal(a->n_found, b->n_found);
    assert_int_equal(a->n_classes, b->n_classes);
    assert_true(a->fingerprint == b->fingerprint);
    for (int c = 0; c < a->n_classes; c++) {
        assert_string_equal(a->class_names[c], b->class_names[c]);
        assert_int_equal(a->class_count[c], b->class_count[c]);
    }
    for (int i = 0; i < a->n; i++) {
        assert_string_equal(a->paths[i], b->paths[i]);
        assert_int_equal(a->labels[i], b->labels[i]);
    }
}
