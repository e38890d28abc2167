/* bench_index.c — how long a split's file list takes to reach every rank, three ways:
 *
 *   every rank scans   (each rank walks the folders itself, no cache: the way before the index)
 *   rank 0 scans       (rank 0 walks, the others receive the list: index_cache = no)
 *   rank 0 cache       (rank 0 reads its entry in the file-list cache, the others receive the
 *                       list: index_cache = yes, the user's cache folder, XDG_CACHE_HOME)
 *
 * Usage: mpirun -np N bench_index ROOT [REPEATS]  (ROOT holds train/<class>/<file>; its folders
 * must be older than a second for the cache to be written). The three are run in turn, REPEATS
 * times; each time is the slowest rank's, and min and median are printed. File contents are
 * never read, so empty files measure the same as images. tests/bench_index.sh makes a tree. */
#include <stdio.h>  // defines: printf
#include <stdlib.h> // defines: strtol, qsort
#include <string.h> // defines: memset

#include "dataset.h"
#include "dist.h"
#include "sys.h"

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
    struct sn_dist d;
    struct sn_err err = {0};
    if (sn_dist_init(&d, &argc, &argv, &err) != SN_OK) {
        fprintf(stderr, "bench_index: %s\n", err.msg);
        return 1;
    }
    if (argc < 2) {
        fprintf(stderr, "usage: mpirun -np N bench_index ROOT [REPEATS]\n");
        sn_dist_finalize(&d);
        return 2;
    }
    int reps = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 5;
    if (reps < 1 || reps > 100)
        reps = 5;
    struct sn_data_conf dc;
    memset(&dc, 0, sizeof dc);
    snprintf(dc.dir, sizeof dc.dir, "%s", argv[1]);
    dc.height = dc.width = 8;
    dc.channels = 1;
    static const char *const names[3] = {"every rank scans", "rank 0 scans, broadcast",
                                         "rank 0 cache, broadcast"};
    double *t = calloc((size_t)reps * 3, sizeof *t);
    int n = 0, rc = t ? SN_OK : SN_ENOMEM;
    for (int r = 0; r < reps && rc == SN_OK; r++)
        for (int way = 0; way < 3 && rc == SN_OK; way++) {
            dc.index_cache = way == 2 ? SN_INDEX_CACHE_HOME : SN_INDEX_CACHE_NO;
            rc = sn_dist_barrier(&d, &err);
            double t0 = sn_now();
            struct sn_dataset *ds = NULL;
            if (rc == SN_OK)
                rc = way == 0 ? sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, NULL, &err)
                              : sn_dataset_open_shared(&ds, &d, &dc, SN_SPLIT_TRAIN, NULL, &err);
            if (rc == SN_OK) {
                n = ds->n;
                if (way == 2 && r > 0 && d.rank == 0 && ds->index_source != SN_INDEX_CACHED)
                    fprintf(stderr, "bench_index: the cache was not used (folders changed in "
                                    "the last second?)\n");
                rc = sn_dist_barrier(&d, &err); /* the slowest rank has its list */
            }
            t[way * reps + r] = sn_now() - t0;
            sn_dataset_free(ds);
        }
    if (rc == SN_OK && d.rank == 0) {
        printf("%d files, %d rank%s, %d repeats (min / median seconds until every rank holds "
               "the list)\n",
               n, d.world, d.world > 1 ? "s" : "", reps);
        for (int way = 0; way < 3; way++) {
            qsort(t + way * reps, (size_t)reps, sizeof *t, cmp_double);
            printf("  %-26s %8.3f / %8.3f\n", names[way], t[way * reps], t[way * reps + reps / 2]);
        }
    }
    if (rc != SN_OK)
        fprintf(stderr, "bench_index: rank %d: %s\n", d.rank, err.msg);
    free(t);
    sn_dist_finalize(&d);
    return rc == SN_OK ? 0 : 1;
}
