/* bench.c — `shardnet bench`: throughput figures, one per line, measured on synthetic batches
 * (so that the figures are the engine's, not the disk's) or, with --data-only, on the data
 * pipeline alone.
 *
 * Under mpirun every rank runs the same steps, gradients are allreduced as in training, and
 * rank 0 prints aggregate images/s, the exchange split into transfer and waiting for the slower
 * rank, and the scaling against rank 0 training alone, measured in the same job. */
#include "train.h"

#include <math.h>   // defines: fmax
#include <stdlib.h> // defines: calloc, free, qsort
#include <string.h> // defines: memset

#include "data.h"
#include "gradsync.h"
#include "image.h"
#include "model.h"
#include "optim.h"
#include "rng.h"
#include "sys.h"

static int bench_data(const struct sn_config *cfg, struct sn_dist *d, const struct sn_bench_opts *bo,
                      FILE *out, struct sn_err *err)
{
    struct sn_data_conf dc;
    struct sn_augment_conf ac;
    struct sn_train_conf tc;
    SN_FORWARD(sn_data_conf_parse(&dc, cfg, err));
    SN_FORWARD(sn_augment_conf_parse(&ac, cfg, err));
    SN_FORWARD(sn_train_conf_parse(&tc, cfg, err));
    struct sn_dataset *ds;
    SN_FORWARD(sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, err));
    int batch = bo->batch ? bo->batch : tc.batch_size;
    int steps = (ds->n + batch - 1) / batch;
    if (bo->iters > 0 && bo->iters < steps)
        steps = bo->iters;
    int n_files = steps * batch < ds->n ? steps * batch : ds->n;
    /* The baseline: the same files read and decoded at full size by libjpeg-turbo (libpng), one
       thread, after one pass that brings them into the page cache like the loader's. */
    double plain = 0;
    struct sn_image_ctx *ictx = NULL;
    int rc = sn_image_ctx_create(&ictx, err);
    for (int pass = 0; pass < 2 && rc == SN_OK && d->rank == 0; pass++) {
        double t0 = sn_now();
        int ok = 0;
        for (int i = 0; i < n_files; i++) {
            struct sn_err ignored;
            ok += sn_image_load_plain(ictx, ds->paths[i], dc.channels, &ignored) == SN_OK;
        }
        plain = ok / fmax(sn_now() - t0, 1e-9);
    }
    sn_image_ctx_free(ictx);
    if (rc == SN_OK && d->rank == 0)
        fprintf(out, "plain decode 1 thread: %.0f images/s (%d files, full size, no resize)\n",
                plain, n_files);
    for (int threads = 1; threads <= 2 && rc == SN_OK; threads++) {
        dc.threads = threads;
        struct sn_loader *ld;
        struct sn_loader_conf lc = {.ds = ds, .dc = &dc, .aug = ac.enabled ? &ac : NULL,
                                    .global_batch = batch, .rank = d->rank, .world = d->world,
                                    .shuffle = 0, .seed = tc.seed};
        rc = sn_loader_create(&ld, &lc, err);
        if (rc != SN_OK)
            break;
        rc = sn_loader_start_epoch(ld, 0, err);
        double t0 = sn_now();
        long long images = 0;
        for (int s = 0; s < steps && rc == SN_OK; s++) {
            struct sn_batch *b;
            rc = sn_loader_next(ld, &b, err);
            if (rc != SN_OK || !b)
                break;
            images += b->n;
            sn_loader_release(ld, b);
        }
        double secs = sn_now() - t0;
        double rate = images / fmax(secs, 1e-9);
        if (rc == SN_OK && d->rank == 0)
            fprintf(out,
                    "data %d thread%s: %.0f images/s per rank (%lld images, %dx%dx%d%s), %.2fx "
                    "the plain decode rate per thread\n",
                    threads, threads > 1 ? "s" : "", rate, images, dc.height, dc.width, dc.channels,
                    ac.enabled ? ", augmented" : "", plain > 0 ? rate / threads / plain : 0);
        sn_loader_free(ld);
    }
    sn_dataset_free(ds);
    return rc;
}

/* One synthetic training step, shared by the throughput and scaling passes. */
struct bench_step {
    struct sn_model *m;
    struct sn_optim *opt;
    struct sn_gradsync *sync;
    struct sn_step_ctx *ctx;
    const float *x;
    const int32_t *y;
    float *dlogits;
    int n, global;
};

enum step_sync {
    STEP_ALONE,    /* no exchange: what one rank does on its own */
    STEP_BLOCKING, /* barrier, then every bucket exchanged after backward */
    STEP_OVERLAP,  /* buckets started during backward, waited for before the optimizer */
};

/* Runs forward, loss, backward, gradient exchange and optimizer. With STEP_BLOCKING, *b0 is
   when backward ended, *r0 when the slower rank arrived and *r1 when the exchange ended, so
   that imbalance and transfer are measured apart. */
static int bench_step_run(struct bench_step *st, enum step_sync mode, double *b0, double *r0,
                          double *r1, struct sn_err *err)
{
    struct sn_model *m = st->m;
    sn_model_zero_grads(m);
    long long correct = 0;
    const float *logits = sn_model_forward(m, st->x, st->n, st->ctx);
    sn_loss(m->loss, logits, st->y, NULL, st->n, m->n_outputs, 1.0f / (float)st->global,
            st->dlogits, &correct);
    sn_model_backward(m, st->x, st->dlogits, st->n, st->ctx,
                      mode == STEP_OVERLAP ? sn_gradsync_ready : NULL, st->sync);
    int rc = SN_OK;
    *b0 = sn_now();
    if (mode == STEP_BLOCKING && st->sync->d->world > 1)
        rc = sn_dist_barrier(st->sync->d, err);
    *r0 = sn_now();
    if (rc == SN_OK && mode == STEP_BLOCKING)
        rc = sn_gradsync_blocking(st->sync, err);
    else if (rc == SN_OK && mode == STEP_OVERLAP)
        rc = sn_gradsync_finish(st->sync, err);
    *r1 = sn_now();
    sn_optim_step(st->opt, m);
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Scaling measured inside one job: blocks in which rank 0 trains alone (the other ranks asleep
   in a barrier, their cores idle) alternate with blocks in which every rank trains and
   exchanges gradients. A shared machine's speed drifts over seconds; the two blocks of a pair
   are a fraction of a second apart, so the drift cancels in each pair's ratio, which two
   separate runs (one rank, then N) cannot offer. Rank 0 times both blocks. */
#define SCALING_BLOCK_STEPS 8
#define SCALING_MAX_PAIRS 64

static int bench_scaling(struct bench_step *st, struct sn_dist *d, int iters, FILE *out,
                         struct sn_err *err)
{
    int pairs = iters / SCALING_BLOCK_STEPS;
    pairs = pairs < 3 ? 3 : pairs > SCALING_MAX_PAIRS ? SCALING_MAX_PAIRS : pairs;
    double ratio[SCALING_MAX_PAIRS], t_alone = 0, t_all = 0, b0, r0, r1;
    int rc = SN_OK;
    for (int p = 0; p < pairs && rc == SN_OK; p++) {
        double t[2] = {0, 0};
        for (int together = 0; together < 2 && rc == SN_OK; together++) {
            rc = sn_dist_barrier_idle(d, err);
            /* the first step of a block is not timed: the ranks that slept are waking up */
            double t0 = 0;
            for (int s = -1; s < SCALING_BLOCK_STEPS && rc == SN_OK; s++) {
                if (s == 0)
                    t0 = sn_now();
                if (together)
                    rc = bench_step_run(st, STEP_OVERLAP, &b0, &r0, &r1, err);
                else if (d->rank == 0)
                    rc = bench_step_run(st, STEP_ALONE, &b0, &r0, &r1, err);
            }
            t[together] = sn_now() - t0;
        }
        ratio[p] = d->world * t[0] / t[1];
        t_alone += t[0];
        t_all += t[1];
    }
    if (rc == SN_OK)
        rc = sn_dist_barrier_idle(d, err);
    if (rc != SN_OK || d->rank != 0)
        return rc;
    double steps = (double)pairs * SCALING_BLOCK_STEPS;
    qsort(ratio, (size_t)pairs, sizeof ratio[0], cmp_double);
    double median = pairs % 2 ? ratio[pairs / 2] : (ratio[pairs / 2 - 1] + ratio[pairs / 2]) / 2;
    fprintf(out,
            "scaling: %d ranks %.2fx one rank alone (median of %d pairs of alternating %d-step "
            "blocks, middle half %.2f-%.2fx; over all pairs %.2fx: %.0f against %.0f "
            "images/s), %.0f%% efficiency\n",
            d->world, median, pairs, SCALING_BLOCK_STEPS, ratio[pairs / 4],
            ratio[(3 * pairs) / 4], d->world * t_alone / t_all, steps * st->global / t_all,
            steps * st->n / t_alone, 100 * median / d->world);
    return SN_OK;
}

int sn_bench(const struct sn_config *cfg, struct sn_dist *d, const struct sn_bench_opts *bo,
             FILE *out, struct sn_err *err)
{
    if (bo->data_only)
        return bench_data(cfg, d, bo, out, err);
    struct sn_train_conf tc;
    struct sn_optim_conf oc;
    SN_FORWARD(sn_train_conf_parse(&tc, cfg, err));
    SN_FORWARD(sn_optim_conf_parse(&oc, cfg, err));
    const struct sn_ops *ops = sn_ops_by_name(bo->backend ? bo->backend : "blas");
    SN_RETURN_IF(!ops, err, SN_EINVAL, "--backend %s: use blas or ref", bo->backend);
    if (tc.threads > 0)
        sn_ops_set_threads(tc.threads);
    int global = bo->batch ? bo->batch * d->world : tc.batch_size;
    int n = (global + d->world - 1) / d->world;
    int iters = bo->iters ? bo->iters : 20;

    struct sn_model *m = NULL;
    struct sn_optim *opt = NULL;
    SN_FORWARD(sn_model_build(&m, cfg, n, ops, err));
    size_t in_size = sn_shape_size(m->input) * (size_t)n;
    float *x = malloc(in_size * sizeof(float));
    float *dlogits = malloc((size_t)n * m->n_outputs * sizeof(float));
    int32_t *y = malloc((size_t)n * sizeof *y);
    int64_t *ids = malloc((size_t)n * sizeof *ids);
    double *t_fwd = calloc((size_t)m->n_layers, sizeof(double));
    double *t_bwd = calloc((size_t)m->n_layers, sizeof(double));
    /* per overlapped step: backward's end and what was left of the exchange after it, on every
       rank (laps), so that the exchange left on each step's slower rank can be found */
    double *lap = calloc(2 * (size_t)iters, sizeof(double));
    double *laps = calloc(2 * (size_t)iters * d->world, sizeof(double));
    int rc = x && dlogits && y && ids && t_fwd && t_bwd && lap && laps
                 ? SN_OK
                 : sn_err_set(err, SN_ENOMEM, "out of memory");
    struct sn_gradsync sync;
    if (rc == SN_OK)
        rc = sn_optim_create(&opt, &oc, m->n_params, err);
    if (rc == SN_OK)
        rc = sn_gradsync_init(&sync, d, m, 0, err);
    if (rc != SN_OK)
        goto done;
    sn_model_init_params(m, tc.seed);
    struct sn_rng rng;
    sn_rng_seed(&rng, 7);
    for (size_t i = 0; i < in_size; i++)
        x[i] = 255.f * sn_rng_uniform(&rng);
    int classes = m->loss == SN_LOSS_BCE ? 2 : m->n_outputs;
    for (int i = 0; i < n; i++) {
        y[i] = (int32_t)(sn_rng_next(&rng) % (uint64_t)classes);
        ids[i] = (int64_t)d->rank * n + i;
    }
    struct sn_step_ctx ctx = {.ops = m->ops, .scratch = m->scratch, .seed = tc.seed,
                              .sample_ids = ids};
    double flops = sn_model_flops_per_sample(m);

    /* inference */
    ctx.training = 0;
    sn_model_forward(m, x, n, &ctx);
    double t0 = sn_now();
    for (int it = 0; it < iters; it++)
        sn_model_forward(m, x, n, &ctx);
    double t_inf = (sn_now() - t0) / iters;

    /* training steps: forward, loss, backward, allreduce, optimizer. Odd passes exchange
       gradients blocking after backward, even passes overlap them with backward: the
       difference is what the overlap hides. */
    struct bench_step st = {.m = m, .opt = opt, .sync = &sync, .ctx = &ctx, .x = x, .y = y,
                            .dlogits = dlogits, .n = n, .global = global};
    double t_block = 0, t_skew = 0, t_step = 0;
    for (int it = -2; it < 2 * iters && rc == SN_OK; it++) {
        int overlap = it % 2 == 0;
        if (it == 0) {
            m->t_fwd = t_fwd;
            m->t_bwd = t_bwd;
            sync.t_wait = 0;
        }
        double s0 = sn_now();
        double b0 = 0, r0 = 0, r1 = 0;
        ctx.step = (uint64_t)(it + 2);
        rc = bench_step_run(&st, overlap ? STEP_OVERLAP : STEP_BLOCKING, &b0, &r0, &r1, err);
        if (it >= 0 && overlap) {
            t_step += sn_now() - s0;
            lap[it] = b0 - s0; /* overlapped step it / 2 */
            lap[it + 1] = r1 - b0;
        }
        if (it >= 0 && !overlap) {
            t_block += r1 - r0;
            t_skew += r0 - b0;
        }
    }
    double t_reduce = sync.t_wait / iters;
    t_block /= iters;
    t_skew /= iters;
    for (int i = 0; i < m->n_layers; i++)
        t_fwd[i] /= 2, t_bwd[i] /= 2;
    m->t_fwd = m->t_bwd = NULL;
    if (rc != SN_OK)
        goto done;
    t_step /= iters;
    /* averaged over ranks */
    double avg[4] = {t_step, t_reduce, t_block, t_skew};
    if (d->world > 1) {
        rc = sn_dist_allreduce_sum_f64(d, avg, 4, err);
        for (int k = 0; k < 4; k++)
            avg[k] /= d->world;
    }
    /* the exchange left after backward on each step's slower rank: what overlap failed to hide
       (the faster ranks' waits are the imbalance) */
    double slow_left = 0;
    if (rc == SN_OK && d->world > 1)
        rc = sn_dist_allgather(d, lap, laps, 2 * (size_t)iters * sizeof(double), err);
    for (int k = 0; rc == SN_OK && d->world > 1 && k < iters; k++) {
        int slow = 0;
        for (int r = 1; r < d->world; r++)
            if (laps[(size_t)r * 2 * iters + 2 * k] > laps[(size_t)slow * 2 * iters + 2 * k])
                slow = r;
        slow_left += laps[(size_t)slow * 2 * iters + 2 * k + 1] / iters;
    }
    if (rc == SN_OK && d->rank == 0) {
        fprintf(out, "config: %s, %d rank%s x %d BLAS thread%s, batch %d per rank (%d global), "
                     "backend %s\n",
                cfg->path, d->world, d->world > 1 ? "s" : "", sn_ops_get_threads(),
                sn_ops_get_threads() > 1 ? "s" : "", n, n * d->world, m->ops->name);
        fprintf(out, "inference: %.0f images/s, %.1f GFLOP/s\n", n / t_inf, n * flops / t_inf / 1e9);
        fprintf(out, "train: %.0f images/s, %.1f GFLOP/s\n", n * d->world / avg[0],
                3 * n * flops / avg[0] / 1e9);
        /* what backward hides: the transfer still to do when the slower rank ends backward
           (imbalance between ranks cannot be hidden by overlap) */
        if (d->world > 1)
            fprintf(out,
                    "allreduce: %.3f ms per step of transfer, %.3f ms waiting for the slower rank; "
                    "started during backward, %.3f ms left after it on the slower rank (%.0f%% of "
                    "the transfer hidden), %.3f on average over ranks, %d bucket%s\n",
                    1e3 * avg[2], 1e3 * avg[3], 1e3 * slow_left,
                    avg[2] > 0 ? 100 * fmin(1, fmax(0, 1 - slow_left / avg[2])) : 0,
                    1e3 * avg[1], sync.n_buckets, sync.n_buckets > 1 ? "s" : "");
        fprintf(out, "per layer (ms per step, batch %d):\n", n);
        for (int i = 0; i < m->n_layers; i++)
            fprintf(out, "  %-24s forward %8.3f  backward %8.3f\n", m->layers[i].name,
                    1e3 * t_fwd[i] / iters, 1e3 * t_bwd[i] / iters);
        fflush(out);
    }
    if (rc == SN_OK && d->world > 1) {
        ctx.step = 0;
        rc = bench_scaling(&st, d, iters, out, err);
    }
done:
    sn_optim_free(opt);
    sn_model_free(m);
    free(x);
    free(dlogits);
    free(y);
    free(ids);
    free(t_fwd);
    free(t_bwd);
    free(lap);
    free(laps);
    return rc;
}
