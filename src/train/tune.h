/* tune.h — [model] backend = auto: each layer on the backend that runs it fastest here.
 *
 * Which backend wins depends on the CPU, the layer and the direction: on an AVX-512 machine
 * oneDNN's forward convolution of the 180x180 network's first layer is twice as fast as
 * im2col + OpenBLAS while its weight gradient is slower, and its pooling is 2-4x faster. Like
 * cuDNN's benchmark mode, shardnet times each layer that has a choice (conv2d, maxpooling2d,
 * dense) on each backend at the run's per-rank batch and keeps the faster — for a convolution,
 * its forward, input gradient and weight gradient apart. Unlike cuDNN, the choice is deterministic: rank 0 decides for
 * every rank, and each decision is written to a cache file keyed by the CPU, the kernels, the
 * threads and the layer's shape, so the next run on this machine with this config reads it
 * instead of timing again (runs on the same machine compute the same bits, resumes included).
 * Delete the file to time again; `backend = blas|onednn|winograd|ref` forces one backend for all. */
#ifndef SN_TUNE_H
#define SN_TUNE_H

#include <stdio.h>

#include "dist.h"
#include "err.h"
#include "model.h"

struct sn_tune_conf {
    int auto_backend;     /* [model] backend = auto: time each layer's parts (else the model's
                             backend runs every layer) */
    int training;         /* time forward + backward (else forward only: evaluate, predict) */
    int n;                /* per-rank batch */
    int threads;          /* the threads each backend runs with (part of the cache key) */
    int bf16;             /* [train] precision = bf16: convolutions may run on sn_ops_bf16 —
                             with auto it is one more candidate timed, with a backend named
                             every convolution runs on it */
    int train_n[2];       /* other per-rank batches this rank trains on (its share of a full
                             batch, of an epoch's last partial one), 0: none */
    int eval_n[2];        /* and validates on: forward only. Their primitives are made too, so
                             that no step makes any */
    const char *cache;    /* cache file; NULL: $XDG_CACHE_HOME/shardnet/backends.tsv, else
                             $HOME/.cache/shardnet/backends.tsv; "" for none */
};

/* Makes m ready to run, on every rank of d (d may be NULL): with auto_backend, sets the backend
 * of each part of each layer that has a choice (rank 0 times them or reads its cache, the
 * others take its choice) and prints one line per such layer on out (rank 0; out may be NULL):
 * the backend, the times and whether they came from the cache; with precision = bf16 and a
 * backend named, puts every convolution on bf16. Then plans the layouts between layers
 * (sn_model_plan_layouts) and makes what the oneDNN backends keep for each layer's shapes at
 * batch tc->n and at the batches of train_n and eval_n (primitives, their buffers) by running
 * each part once, so that no step makes any; the layers' gradients are left zero.
 * A cache that cannot be read or written is not an error (the timing is then done each run,
 * and said once). */
int sn_tune_backends(struct sn_model *m, const struct sn_tune_conf *tc, struct sn_dist *d,
                     FILE *out, struct sn_err *err);

/* The cache file's path for tc (its cache, or the default), into buf. */
void sn_tune_cache_path(const struct sn_tune_conf *tc, char *buf, size_t n);

#endif
