/* bench.c — `shardnet bench` and `bench --allreduce` (bench.h).
 *
 * With --csv FILE rank 0 also writes the training figures as one CSV row under a header, for
 * scripts (cluster/scaling): the same numbers as the prose lines, none scraped from them.
 * `bench --allreduce` times the gradient exchange alone, per message size, for an alpha-beta
 * model of it (cluster/alphabeta fits one to its CSV). */
#include "bench.h"

#include <math.h>   // defines: fmax, fmin, isnan, NAN
#include <stdlib.h> // defines: malloc, calloc, free, qsort
#include <string.h> // defines: memset, strcmp

#include "console.h"
#include "cpu.h"
#include "dataset.h"
#include "loader.h"
#include "image.h"
#include "layout.h"
#include "model.h"
#include "optim.h"
#include "summary.h"
#include "rng.h"
#include "settings.h"
#include "step.h"
#include "sys.h"
#include "threads.h"
#include "trace.h"
#include "trace_gather.h"
#include "train.h"
#include "tune.h"

static int bench_data(struct sn_settings *st, struct sn_dist *d, const struct sn_bench_opts *bo,
                      FILE *out, FILE *errs, struct sn_err *err)
{
    struct sn_data_conf dc = st->dc;
    const struct sn_augment_conf ac = st->ac;
    const struct sn_train_conf tc = st->tc;
    struct sn_dataset *ds;
    /* rank 0 lists the folder and hands the list to the others, as training does */
    SN_FORWARD(sn_dataset_open_shared(&ds, d, &dc, SN_SPLIT_TRAIN, NULL, err));
    sn_console_dataset_note(errs, ds, NULL);
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
                                    .shuffle = 0, .seed = tc.seed,
                                    .report = sn_console_report_file, .report_user = errs};
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
        int oh, ow; /* what the loader delivers: after [augment] crop */
        sn_augment_out_size(ac.enabled ? &ac : NULL, dc.height, dc.width, &oh, &ow);
        if (rc == SN_OK && d->rank == 0)
            fprintf(out,
                    "data %d thread%s: %.0f images/s per rank (%lld images, %dx%dx%d%s), %.2fx "
                    "the plain decode rate per thread\n",
                    threads, threads > 1 ? "s" : "", rate, images, oh, ow, dc.channels,
                    ac.enabled ? ", augmented" : "", plain > 0 ? rate / threads / plain : 0);
        sn_loader_free(ld);
    }
    sn_dataset_free(ds);
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

/* The scaling pairs' ratios (N ranks over rank 0 alone): median and middle half. */
struct scaling_ratio {
    double median, lo, hi;
};

static int bench_scaling(struct sn_step *st, const struct sn_step_in *in, struct sn_dist *d,
                         int iters, FILE *out, struct scaling_ratio *sr, struct sn_err *err)
{
    int pairs = iters / SCALING_BLOCK_STEPS;
    pairs = pairs < 3 ? 3 : pairs > SCALING_MAX_PAIRS ? SCALING_MAX_PAIRS : pairs;
    double ratio[SCALING_MAX_PAIRS], t_alone = 0, t_all = 0;
    struct sn_step_out so;
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
                    rc = sn_step_run(st, in, SN_SYNC_OVERLAP, &so, err);
                else if (d->rank == 0)
                    rc = sn_step_run(st, in, SN_SYNC_NONE, &so, err);
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
            ratio[(3 * pairs) / 4], d->world * t_alone / t_all, steps * in->global_n / t_all,
            steps * in->n / t_alone, 100 * median / d->world);
    *sr = (struct scaling_ratio){median, ratio[pairs / 4], ratio[(3 * pairs) / 4]};
    return SN_OK;
}

/* What recording a trace costs, measured like the scaling: pairs of 8-step blocks, one with the
 * recording paused and one with it on, in alternating order, timed on every rank; the median
 * of the pairs' ratios (of the slower rank's time) is the figure, so that a shared machine's
 * drift over seconds cancels. */
static int bench_trace_cost(struct sn_step *st, const struct sn_step_in *in, struct sn_dist *d,
                            int iters, FILE *out, struct sn_err *err)
{
    int pairs = iters / SCALING_BLOCK_STEPS;
    pairs = pairs < 5 ? 5 : pairs > SCALING_MAX_PAIRS ? SCALING_MAX_PAIRS : pairs;
    double ratio[SCALING_MAX_PAIRS], t_on = 0;
    double per_event = sn_trace_event_cost();
    size_t events = 0;
    struct sn_step_out so;
    int rc = SN_OK;
    for (int p = 0; p < pairs && rc == SN_OK; p++) {
        double t[2] = {0, 0}; /* off, on */
        size_t n0 = sn_trace_count();
        for (int k = 0; k < 2 && rc == SN_OK; k++) {
            int on = (p + k) % 2;
            sn_trace_pause(!on);
            double t0 = sn_now();
            for (int s = 0; s < SCALING_BLOCK_STEPS && rc == SN_OK; s++)
                rc = sn_step_run(st, in, SN_SYNC_OVERLAP, &so, err);
            t[on] = sn_now() - t0;
        }
        events += sn_trace_count() - n0;
        t_on += t[1];
        double all[2 * 64];
        if (rc == SN_OK && d->world > 1 && d->world <= 64) { /* the slower rank's is the job's */
            rc = sn_dist_allgather(d, t, all, sizeof t, err);
            for (int r = 0; rc == SN_OK && r < d->world; r++)
                t[0] = fmax(t[0], all[2 * r]), t[1] = fmax(t[1], all[2 * r + 1]);
        }
        ratio[p] = t[1] / t[0];
    }
    sn_trace_pause(0);
    if (rc != SN_OK || d->rank != 0)
        return rc;
    qsort(ratio, (size_t)pairs, sizeof ratio[0], cmp_double);
    double median = pairs % 2 ? ratio[pairs / 2] : (ratio[pairs / 2 - 1] + ratio[pairs / 2]) / 2;
    double steps = (double)pairs * SCALING_BLOCK_STEPS, per_step = events / steps;
    fprintf(out,
            "trace: an event costs %.0f ns, %.0f events a step: %.4f%% of a %.2f ms step; steps "
            "%.2f%% slower with recording on (median of %d pairs of alternating %d-step blocks "
            "with and without it, middle half %+.2f%% to %+.2f%%)\n",
            1e9 * per_event, per_step, 100 * per_event * per_step / (t_on / steps),
            1e3 * t_on / steps, 100 * (median - 1), pairs, SCALING_BLOCK_STEPS,
            100 * (ratio[pairs / 4] - 1), 100 * (ratio[(3 * pairs) / 4] - 1));
    return SN_OK;
}

/* The machine's own GEMM rate with the threads this rank runs: OpenBLAS sgemm on 1024x1024
 * matrices, the best of 5 after a warm-up. A network's GFLOP/s divided by it says how well the
 * network uses the machine, whatever the machine. */
static double gemm_peak(void)
{
    const int n = 1024;
    float *a = malloc(3 * (size_t)n * n * sizeof(float));
    if (!a)
        return 0;
    float *b = a + (size_t)n * n, *c = b + (size_t)n * n;
    for (size_t i = 0; i < 3 * (size_t)n * n; i++)
        a[i] = (float)(i % 7) * 0.25f - 0.75f;
    double best = 1e30;
    for (int it = 0; it < 6; it++) {
        double t0 = sn_now();
        sn_ops_blas.gemm(0, 0, n, n, n, 1.0f, a, b, 0.0f, c);
        double t = sn_now() - t0;
        if (it > 0 && t < best)
            best = t;
    }
    free(a);
    return 2.0 * n * n * n / best / 1e9;
}

/* The figures of one training benchmark, for --csv. */
struct bench_row {
    int ranks, threads, batch, global;
    const char *backend;
    double rate, step_ms, inference_rate, gflops, peak, allreduce_ms, wait_ms, left_ms;
    struct scaling_ratio sr; /* NaN on one rank */
};

static int write_csv(const char *path, const struct bench_row *r, struct sn_err *err)
{
    struct sn_atomic_file af;
    SN_FORWARD(sn_atomic_open(&af, path, err));
    fprintf(af.f, "ranks,threads,batch_per_rank,global_batch,backend,images_per_s,step_ms,"
                  "inference_images_per_s,gflops_per_rank,gemm_peak_gflops,allreduce_ms,wait_ms,"
                  "left_after_backward_ms,in_job_speedup,in_job_speedup_lo,in_job_speedup_hi\n");
    fprintf(af.f, "%d,%d,%d,%d,%s,%.1f,%.4f,%.1f,%.2f,%.2f,%.4f,%.4f,%.4f,", r->ranks, r->threads,
            r->batch, r->global, r->backend, r->rate, r->step_ms, r->inference_rate, r->gflops,
            r->peak, r->allreduce_ms, r->wait_ms, r->left_ms);
    if (isnan(r->sr.median))
        fprintf(af.f, ",,\n");
    else
        fprintf(af.f, "%.4f,%.4f,%.4f\n", r->sr.median, r->sr.lo, r->sr.hi);
    return sn_atomic_commit(&af, err);
}

/* A training benchmark: its settings, network and synthetic batch, and what it measured. */
struct bench {
    const struct sn_config *cfg;
    struct sn_settings st;
    struct sn_dist *d;
    const struct sn_bench_opts *bo;
    FILE *out;
    struct sn_threads threads;
    int n, iters;              /* per-rank batch, timed steps */
    int micro;                 /* samples per micro-batch: [train] micro_batch */
    int global;                /* the global batch: n on every rank together */
    struct sn_model *m;
    struct sn_optim *opt;
    struct sn_step step;
    float *x;                  /* owned: the batch (n,H,W,C) */
    int32_t *y;                /* owned: its labels */
    int64_t *ids;              /* owned: its sample indices */
    double *t_fwd, *t_bwd;     /* owned: per layer, seconds summed over the timed steps */
    double *lap, *laps;        /* owned: per overlapped step, backward's end and what was left
                                  of the exchange after it; laps: every rank's */
    int tracing;
    size_t prims_before;       /* oneDNN primitives made before the steps */
    /* results: seconds of an inference pass and of a step (averaged over ranks: step,
       exchange waited for, transfer alone, waiting for the slower rank), and the exchange
       left after backward on each step's slower rank */
    double t_inf, avg[4], slow_left;
};

/* Settings, threads, the network (built once, at the per-rank batch), its optimizer and step,
 * the backend choice, and a batch of random pixels and labels. */
static int bench_setup(struct bench *b, struct sn_err *err)
{
    struct sn_settings *st = &b->st;
    struct sn_dist *d = b->d;
    const struct sn_bench_opts *bo = b->bo;
    if (bo->backend) {
        st->auto_backend = strcmp(bo->backend, "auto") == 0;
        st->ops = st->auto_backend ? &sn_ops_blas : sn_ops_by_name(bo->backend);
        SN_RETURN_IF(!st->ops || !sn_ops_nameable(st->ops), err, SN_EINVAL,
                     "--backend %s: use auto, blas, onednn, winograd or ref", bo->backend);
    }
    SN_FORWARD(sn_threads_apply(st->tc.threads, d, &b->threads, err));
    int global = bo->batch ? bo->batch * d->world : st->tc.batch_size, first;
    /* --batch B is per rank: every rank takes B, in micro-batches of at most B */
    b->micro = bo->batch && bo->batch < st->tc.micro_batch ? bo->batch : st->tc.micro_batch;
    sn_shard_slice(global, b->micro, d->rank, d->world, &first, &b->n);
    b->global = global;
    b->iters = bo->iters ? bo->iters : 20;
    st->training = 1;
    st->node_ranks = d->local_size;
    st->world = d->world;
    st->tc.batch_size = global; /* what the memory check weighs */
    st->tc.micro_batch = b->micro;
    SN_FORWARD(sn_settings_build(st, b->cfg, b->micro, &b->m, err));
    struct sn_model *m = b->m;
    size_t in_size = sn_shape_size(m->input) * (size_t)b->n;
    b->x = malloc(in_size * sizeof(float));
    b->y = malloc((size_t)b->n * sizeof *b->y);
    b->ids = malloc((size_t)b->n * sizeof *b->ids);
    b->t_fwd = calloc((size_t)m->n_layers, sizeof(double));
    b->t_bwd = calloc((size_t)m->n_layers, sizeof(double));
    b->lap = calloc(2 * (size_t)b->iters, sizeof(double));
    b->laps = calloc(2 * (size_t)b->iters * d->world, sizeof(double));
    SN_RETURN_IF(!b->x || !b->y || !b->ids || !b->t_fwd || !b->t_bwd || !b->lap || !b->laps, err,
                 SN_ENOMEM, "out of memory");
    SN_FORWARD(sn_optim_create(&b->opt, &st->oc, m, err));
    SN_FORWARD(sn_step_init(&b->step, d, m, b->opt, b->micro, b->n, err));
    struct sn_tune_conf tune = {.auto_backend = st->auto_backend, .training = 1, .n = b->micro,
                                .train_n = {b->n % b->micro},
                                .threads = b->threads.threads, .bf16 = st->tc.bf16};
    SN_FORWARD(sn_tune_backends(m, &tune, d, b->out, err));
    if (bo->trace) {
        SN_FORWARD(sn_trace_start(d, bo->trace_events, err));
        b->tracing = 1;
    }
    sn_model_init_params(m, st->tc.seed);
    struct sn_rng rng;
    sn_rng_seed(&rng, 7);
    for (size_t i = 0; i < in_size; i++)
        b->x[i] = 255.f * sn_rng_uniform(&rng);
    int classes = m->loss == SN_LOSS_BCE ? 2 : m->n_outputs;
    for (int i = 0; i < b->n; i++) {
        b->y[i] = (int32_t)(sn_rng_next(&rng) % (uint64_t)classes);
        b->ids[i] = (int64_t)d->rank * b->n + i;
    }
    return SN_OK;
}

static void bench_free(struct bench *b)
{
    sn_step_free(&b->step);
    sn_optim_free(b->opt);
    sn_model_free(b->m);
    free(b->x);
    free(b->y);
    free(b->ids);
    free(b->t_fwd);
    free(b->t_bwd);
    free(b->lap);
    free(b->laps);
}

/* Seconds of one inference pass over the batch, micro-batch after micro-batch, after a first
 * one. */
static double bench_inference(struct bench *b)
{
    struct sn_step_ctx ctx = {.ops = b->m->ops, .scratch = b->m->scratch,
                              .seed = b->st.tc.seed};
    const size_t sample = sn_shape_size(b->m->input);
    double t0 = 0;
    for (int it = -1; it < b->iters; it++) {
        if (it == 0)
            t0 = sn_now();
        for (int row = 0; row < b->n; row += b->micro) {
            ctx.sample_ids = b->ids + row;
            sn_model_forward(b->m, b->x + (size_t)row * sample,
                             b->n - row < b->micro ? b->n - row : b->micro, &ctx);
        }
    }
    return (sn_now() - t0) / b->iters;
}

/* Training steps (step.c, as in training): forward, loss, backward, allreduce, optimizer. Odd
 * passes exchange gradients blocking after backward, even passes overlap them with backward:
 * the difference is what the overlap hides. Fills b->avg and b->slow_left. */
static int bench_steps(struct bench *b, struct sn_step_in *in, struct sn_err *err)
{
    struct sn_dist *d = b->d;
    struct sn_model *m = b->m;
    int iters = b->iters;
    struct sn_step_out so;
    double t_block = 0, t_skew = 0, t_step = 0;
    int rc = SN_OK;
    b->prims_before = sn_ops_onednn_primitives();
    for (int it = -2; it < 2 * iters && rc == SN_OK; it++) {
        int overlap = it % 2 == 0;
        if (it == 0) {
            m->t_fwd = b->t_fwd;
            m->t_bwd = b->t_bwd;
            b->step.sync.t_wait = 0;
        }
        double s0 = sn_now();
        in->step = (uint64_t)(it + 2);
        rc = sn_step_run(&b->step, in, overlap ? SN_SYNC_OVERLAP : SN_SYNC_BLOCKING, &so, err);
        if (it >= 0 && overlap) {
            t_step += sn_now() - s0;
            b->lap[it] = b->step.t_backward - s0; /* overlapped step it / 2 */
            b->lap[it + 1] = b->step.t_exchanged - b->step.t_backward;
        }
        if (it >= 0 && !overlap) {
            t_block += b->step.t_exchanged - b->step.t_arrived;
            t_skew += b->step.t_arrived - b->step.t_backward;
        }
    }
    for (int i = 0; i < m->n_layers; i++)
        b->t_fwd[i] /= 2, b->t_bwd[i] /= 2;
    m->t_fwd = m->t_bwd = NULL;
    SN_FORWARD(rc);
    /* averaged over ranks */
    double *avg = b->avg;
    avg[0] = t_step / iters, avg[1] = b->step.sync.t_wait / iters;
    avg[2] = t_block / iters, avg[3] = t_skew / iters;
    if (d->world > 1) {
        SN_FORWARD(sn_dist_allreduce_sum_f64(d, avg, 4, err));
        for (int k = 0; k < 4; k++)
            avg[k] /= d->world;
    }
    /* the exchange left after backward on each step's slower rank: what overlap failed to hide
       (the faster ranks' waits are the imbalance) */
    b->slow_left = 0;
    if (d->world == 1)
        return SN_OK;
    SN_FORWARD(sn_dist_allgather(d, b->lap, b->laps, 2 * (size_t)iters * sizeof(double), err));
    const double *laps = b->laps;
    for (int k = 0; k < iters; k++) {
        int slow = 0;
        for (int r = 1; r < d->world; r++)
            if (laps[(size_t)r * 2 * iters + 2 * k] > laps[(size_t)slow * 2 * iters + 2 * k])
                slow = r;
        b->slow_left += laps[(size_t)slow * 2 * iters + 2 * k + 1] / iters;
    }
    return SN_OK;
}

/* Rank 0's lines: the run, the kernels, the rates against the GEMM peak, oneDNN's primitives,
 * the layouts, the exchange, and each layer's times and backends. Fills the CSV row's figures. */
static void bench_report(struct bench *b, struct bench_row *row)
{
    struct sn_dist *d = b->d;
    struct sn_model *m = b->m;
    FILE *out = b->out;
    int n = b->n, threads = sn_ops_get_threads();
    const double *avg = b->avg;
    fprintf(out, "config: %s, %d rank%s x %d thread%s, batch %d per rank (%d global) in "
                 "micro-batches of %d, backend %s\n",
            b->cfg->path, d->world, d->world > 1 ? "s" : "", threads, threads > 1 ? "s" : "", n,
            b->global, b->micro, b->st.auto_backend ? "auto (per layer below)" : m->ops->name);
    if (b->threads.note[0])
        fprintf(out, "threads: note (rank 0): %s\n", b->threads.note);
    fprintf(out, "kernels: %s\n", sn_cpu_kernels());
    double peak = gemm_peak();
    fprintf(out, "GEMM peak: %.1f GFLOP/s per rank (sgemm 1024x1024x1024)\n", peak);
    double g_inf = n * sn_model_flops_per_sample(m) / b->t_inf / 1e9,
           g_train = n * sn_model_train_flops_per_sample(m) / avg[0] / 1e9;
    /* a rate under 100 images/s (VGG16 at 180x180) keeps a decimal */
    double r_inf = n / b->t_inf, r_train = b->global / avg[0];
    fprintf(out, "inference: %.*f images/s, %.1f GFLOP/s, %.0f%% of GEMM peak\n",
            r_inf < 100 ? 1 : 0, r_inf, g_inf, peak > 0 ? 100 * g_inf / peak : 0);
    fprintf(out, "train: %.*f images/s, %.1f GFLOP/s per rank, %.0f%% of GEMM peak\n",
            r_train < 100 ? 1 : 0, r_train, g_train, peak > 0 ? 100 * g_train / peak : 0);
    int wino = 0;
    for (int i = 0; i < m->n_layers; i++)
        for (int p = 0; p < SN_N_PARTS; p++)
            wino |= (sn_layer_ops(m, &m->layers[i], (enum sn_part)p)->caps & SN_OPS_WINOGRAD) != 0;
    if (wino)
        fprintf(out, "note: GFLOP/s count a direct convolution's multiply-adds; Winograd's "
                     "layers do fewer, so the share of GEMM peak can pass 100%%\n");
    size_t prims = sn_ops_onednn_primitives();
    if (prims > 0)
        fprintf(out, "oneDNN primitives: %zu made before the training steps, %zu during them\n",
                b->prims_before, prims - b->prims_before);
    char runs[512];
    if (sn_model_layout_runs(m, runs, sizeof runs) > 0)
        fprintf(out, "oneDNN's blocked layout kept between layers: %s\n", runs);
    row->rate = r_train, row->step_ms = 1e3 * avg[0], row->inference_rate = r_inf;
    row->gflops = g_train, row->peak = peak;
    if (d->world > 1) {
        row->allreduce_ms = 1e3 * avg[2], row->wait_ms = 1e3 * avg[3];
        row->left_ms = 1e3 * b->slow_left;
        /* what backward hides: the transfer still to do when the slower rank ends backward
           (imbalance between ranks cannot be hidden by overlap) */
        fprintf(out,
                "allreduce: %.3f ms per step of transfer, %.3f ms waiting for the slower rank; "
                "started during backward, %.3f ms left after it on the slower rank (%.0f%% of "
                "the transfer hidden), %.3f on average over ranks, %d bucket%s\n",
                1e3 * avg[2], 1e3 * avg[3], 1e3 * b->slow_left,
                avg[2] > 0 ? 100 * fmin(1, fmax(0, 1 - b->slow_left / avg[2])) : 0, 1e3 * avg[1],
                b->step.sync.n_buckets, b->step.sync.n_buckets > 1 ? "s" : "");
    }
    fprintf(out, "per layer (ms per step, batch %d):\n", n);
    for (int i = 0; i < m->n_layers; i++) {
        const struct sn_layer *l = &m->layers[i];
        const struct sn_ops *f = sn_layer_ops(m, l, SN_PART_FORWARD);
        const struct sn_ops *bd = sn_layer_ops(m, l, SN_PART_BWD_DATA);
        const struct sn_ops *bw = sn_layer_ops(m, l, SN_PART_BWD_WEIGHTS);
        char on[96];
        if (bd == f && bw == f)
            snprintf(on, sizeof on, "%s", f->name);
        else
            snprintf(on, sizeof on, "%s, input gradient %s, weight gradient %s", f->name,
                     bd->name, bw->name);
        fprintf(out, "  %-24s forward %8.3f  backward %8.3f  %s\n", l->name,
                1e3 * b->t_fwd[i] / b->iters, 1e3 * b->t_bwd[i] / b->iters, on);
    }
    fflush(out);
}

/* Training throughput on synthetic batches: inference, steps with the exchange overlapped and
 * blocking, per-layer times, and under mpirun the scaling pairs. */
static int bench_train(struct bench *b, FILE *errs, struct sn_err *err)
{
    struct sn_dist *d = b->d;
    int rc = bench_setup(b, err);
    struct bench_row row = {.ranks = d->world, .sr = {NAN, NAN, NAN}};
    struct sn_step_in in = {.x = b->x, .y = b->y, .ids = b->ids, .n = b->n,
                            .global_n = b->global, .seed = b->st.tc.seed};
    if (rc == SN_OK) {
        b->t_inf = bench_inference(b);
        rc = bench_steps(b, &in, err);
    }
    if (rc == SN_OK) {
        row.threads = sn_ops_get_threads(), row.batch = b->n, row.global = b->global;
        row.backend = b->st.auto_backend ? "auto" : b->m->ops->name;
        if (d->rank == 0)
            bench_report(b, &row);
    }
    if (rc == SN_OK && b->tracing)
        rc = bench_trace_cost(&b->step, &in, d, b->iters, b->out, err);
    if (rc == SN_OK && d->world > 1) {
        in.step = 0;
        rc = bench_scaling(&b->step, &in, d, b->iters, b->out, &row.sr, err);
    }
    if (rc == SN_OK && d->rank == 0 && b->bo->csv)
        rc = write_csv(b->bo->csv, &row, err);
    if (b->tracing)
        rc = sn_train_finish_trace(d, b->bo->trace, rc, d->rank == 0 ? b->out : NULL, errs, err);
    return rc;
}

int sn_bench(const struct sn_config *cfg, struct sn_dist *d, const struct sn_bench_opts *bo,
             FILE *out, FILE *errs, struct sn_err *err)
{
    struct bench *b = calloc(1, sizeof *b);
    SN_RETURN_IF(!b, err, SN_ENOMEM, "out of memory");
    *b = (struct bench){.cfg = cfg, .d = d, .bo = bo, .out = out};
    int rc = sn_settings_load(&b->st, cfg, err);
    if (rc == SN_OK && !bo->data_only)
        rc = sn_settings_check_cpu(&b->st, cfg, err);
    if (rc == SN_OK && bo->data_only && bo->csv)
        rc = sn_err_set(err, SN_EINVAL, "--csv %s: the CSV holds training figures; "
                                        "--data-only prints the pipeline's alone", bo->csv);
    if (rc == SN_OK && bo->trace) {
        /* rank 0 writes the file: it checks the path, and its outcome is everyone's */
        int bad = d->rank == 0 && sn_trace_probe(bo->trace, err) != SN_OK;
        struct sn_err ignored;
        if (d->world > 1 && sn_dist_allreduce_max_int(d, &bad, &ignored) != SN_OK)
            bad = 1;
        if (bad) {
            if (d->rank != 0)
                err->msg[0] = '\0';
            err->code = rc = SN_EIO;
            err->collective = 1;
        }
    }
    if (rc == SN_OK && bo->data_only)
        rc = bench_data(&b->st, d, bo, out, errs, err);
    else if (rc == SN_OK)
        rc = bench_train(b, errs, err);
    bench_free(b);
    free(b);
    return rc;
}

/* Timed calls per message size when --iters is not given: about 64 MB through the exchange per
 * size, between 10 and 200 calls (16 MB: 10 calls, 4 KB: 200). */
static int allreduce_iters(size_t bytes)
{
    size_t it = ((size_t)64 << 20) / bytes;
    return it < 10 ? 10 : it > 200 ? 200 : (int)it;
}

/* One message size: checked once, warmed up, timed `iters` times. t (iters) receives each call's
 * time averaged over ranks, on every rank. The calls are the gradients' own: a non-blocking sum
 * of floats in place (sn_dist_iallreduce_sum) finished by sn_dist_wait, as gradsync.c does. */
static int allreduce_size(struct sn_dist *d, float *buf, size_t n, int iters, double *t,
                          struct sn_err *err)
{
    for (size_t i = 0; i < n; i++)
        buf[i] = (float)(d->rank + 1);
    int req;
    SN_FORWARD(sn_dist_iallreduce_sum(d, buf, n, &req, err));
    SN_FORWARD(sn_dist_wait(d, req, err));
    /* small integers: the sum is exact whatever the order */
    const float want = (float)d->world * (float)(d->world + 1) / 2;
    for (size_t i = 0; i < n; i++)
        SN_RETURN_IF(buf[i] != want, err, SN_EINVAL,
                     "allreduce of %zu bytes: element %zu is %g on rank %d, expected %g (the sum "
                     "of 1..%d); HINT: the MPI library or the network corrupts messages",
                     4 * n, i, (double)buf[i], d->rank, (double)want, d->world);
    /* zeros from here on: the sums stay finite whatever the number of calls */
    memset(buf, 0, n * sizeof *buf);
    for (int it = -3; it < iters; it++) {
        SN_FORWARD(sn_dist_barrier(d, err));
        double t0 = sn_now();
        SN_FORWARD(sn_dist_iallreduce_sum(d, buf, n, &req, err));
        SN_FORWARD(sn_dist_wait(d, req, err));
        if (it >= 0)
            t[it] = sn_now() - t0;
    }
    SN_FORWARD(sn_dist_allreduce_sum_f64(d, t, (size_t)iters, err));
    for (int it = 0; it < iters; it++)
        t[it] /= d->world;
    return SN_OK;
}

int sn_bench_allreduce(struct sn_dist *d, const struct sn_allreduce_opts *o, FILE *out,
                       struct sn_err *err)
{
    static const size_t defaults[] = {4 << 10, 64 << 10, 1 << 20, 16 << 20};
    const size_t *sizes = o->n_sizes ? o->sizes : defaults;
    int n_sizes = o->n_sizes ? o->n_sizes : 4;
    size_t max_bytes = 0;
    int max_iters = 0;
    for (int s = 0; s < n_sizes; s++) {
        SN_RETURN_IF(sizes[s] < 4 || sizes[s] % 4 || sizes[s] > ((size_t)1 << 30), err,
                     SN_EINVAL, "--sizes: %zu bytes is not a whole number of floats between 4 "
                     "bytes and 1G", sizes[s]);
        int it = o->iters ? o->iters : allreduce_iters(sizes[s]);
        max_bytes = sizes[s] > max_bytes ? sizes[s] : max_bytes;
        max_iters = it > max_iters ? it : max_iters;
    }
    float *buf = malloc(max_bytes);
    double *t = malloc((size_t)max_iters * sizeof *t);
    struct sn_atomic_file af = {0};
    int rc = buf && t ? SN_OK : sn_err_set(err, SN_ENOMEM, "out of memory");
    /* the file is opened before the first call so that a wrong path fails at once, on rank 0;
       the other ranks learn it from the flag */
    int bad = 0;
    if (rc == SN_OK && d->rank == 0 && o->csv) {
        rc = sn_atomic_open(&af, o->csv, err);
        bad = rc != SN_OK;
    }
    if (d->world > 1) {
        struct sn_err ignored = {0};
        if (sn_dist_allreduce_max_int(d, &bad, &ignored) != SN_OK)
            bad = 1;
        if (bad && rc == SN_OK)
            rc = sn_err_set(err, SN_EIO, "rank 0 could not create %s", o->csv);
    }
    if (bad) {
        /* every rank stops here together: rank 0 alone reports why */
        err->collective = 1;
        if (d->rank != 0)
            err->msg[0] = '\0';
    }
    if (rc == SN_OK && d->rank == 0) {
        fprintf(out, "allreduce: %d rank%s on %s, non-blocking sum of floats in place (as the "
                     "gradients), each call after a barrier; time averaged over ranks\n",
                d->world, d->world > 1 ? "s" : "", d->host);
        if (af.f)
            fprintf(af.f, "ranks,bytes,iters,median_us,min_us,algbw_gbs,busbw_gbs\n");
    }
    for (int s = 0; s < n_sizes && rc == SN_OK; s++) {
        int iters = o->iters ? o->iters : allreduce_iters(sizes[s]);
        rc = allreduce_size(d, buf, sizes[s] / 4, iters, t, err);
        if (rc != SN_OK || d->rank != 0)
            continue;
        qsort(t, (size_t)iters, sizeof *t, cmp_double);
        double med = iters % 2 ? t[iters / 2] : (t[iters / 2 - 1] + t[iters / 2]) / 2;
        /* algorithm bandwidth: bytes / time; bus bandwidth: what each link carried, a ring's
           2 (p-1)/p of the message (nccl-tests' convention), comparable across rank counts */
        double alg = (double)sizes[s] / fmax(med, 1e-12) / 1e9;
        double bus = alg * 2.0 * (d->world - 1) / d->world;
        fprintf(out, "  %10zu bytes: median %10.1f us, min %10.1f us (%d calls), %.3f GB/s "
                     "algorithm, %.3f GB/s bus\n",
                sizes[s], 1e6 * med, 1e6 * t[0], iters, alg, bus);
        if (af.f)
            fprintf(af.f, "%d,%zu,%d,%.3f,%.3f,%.6f,%.6f\n", d->world, sizes[s], iters, 1e6 * med,
                    1e6 * t[0], alg, bus);
    }
    if (af.f) {
        if (rc == SN_OK)
            rc = sn_atomic_commit(&af, err);
        else
            sn_atomic_abort(&af);
    }
    free(buf);
    free(t);
    return rc;
}
