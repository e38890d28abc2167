/* testutil.c — see testutil.h. */
#include "testutil.h"

#include <math.h>   // defines: fabs
#include <stdio.h>  // defines: snprintf, fopen
#include <stdlib.h> // defines: getenv, system

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
