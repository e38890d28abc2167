/* bench.h — `shardnet bench`: throughput figures, one per line, measured on synthetic batches
 * (so that the figures are the engine's, not the disk's) or, with --data-only, on the data
 * pipeline alone; and `bench --allreduce`, the gradient exchange alone.
 *
 * Under mpirun every rank runs the same steps, gradients are summed as in training, and rank 0
 * prints aggregate images/s, the exchange split into transfer and waiting for the slower rank,
 * and the scaling against rank 0 training alone, measured in the same job. */
#ifndef SN_BENCH_H
#define SN_BENCH_H

#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "dist.h"
#include "err.h"

struct sn_bench_opts {
    int batch;            /* per rank, in micro-batches of at most this many samples; 0 = [train]
                             batch_size shared among the ranks, in [train] micro_batch */
    int iters;            /* timed steps (0: 20) */
    int data_only;        /* benchmark the data pipeline instead */
    const char *backend;  /* a backend for every layer, or "auto"; NULL: the config's */
    const char *csv;      /* rank 0 writes the training figures here (header + one row) */
    const char *trace;    /* --trace FILE, as for train (NULL: none) */
    size_t trace_events;
};

/* `shardnet bench`: prints one figure per line on out (rank 0); errs receives what a failed
 * trace could not write. */
int sn_bench(const struct sn_config *cfg, struct sn_dist *d, const struct sn_bench_opts *bo,
             FILE *out, FILE *errs, struct sn_err *err);

#define SN_ALLREDUCE_MAX_SIZES 32
struct sn_allreduce_opts {
    size_t sizes[SN_ALLREDUCE_MAX_SIZES]; /* message sizes in bytes, multiples of 4 */
    int n_sizes;                          /* 0 = 4 KB, 64 KB, 1 MB, 16 MB */
    int iters;                            /* timed calls per size; 0 = by size (see bench.c) */
    const char *csv;                      /* rank 0 also writes the rows here; NULL = none */
};

/* `shardnet bench --allreduce`: the gradient exchange alone (sn_dist_iallreduce_sum on floats,
 * in place, the call that sums the gradients) at each message size. Per size: one call whose
 * result is checked (rank r sends r+1; every element must come back as the sum), warm-up calls,
 * then `iters` calls, each started after a barrier and timed on every rank. Rank 0 prints one
 * line per size: the median over calls of the time averaged over ranks, the minimum, and the
 * bandwidths; with csv it writes the same figures, one row per size, atomically. */
int sn_bench_allreduce(struct sn_dist *d, const struct sn_allreduce_opts *o, FILE *out,
                       struct sn_err *err);

#endif
