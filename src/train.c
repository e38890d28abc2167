/* train.c — the fit loop (data-parallel), evaluation and prediction.
 *
 * One training step on every rank:
 *   batch = next slice of the global batch (data.c)      x (n,H,W,C), y (n)
 *   logits = forward(x)                                 (n,K)
 *   dlogits = d(sum of losses)/dlogits / global_n        so summed gradients are the mean
 *   grads = backward(dlogits)
 *   allreduce(grads) over the trainable ranges           the same sum on every rank
 *   optimizer step                                       the same update on every rank
 * Gradients are scaled by 1/global_n before the sum, so a rank's contribution does not depend on
 * how many ranks share the batch: 1 rank and N ranks differ only by summation order. */
#define _GNU_SOURCE // sched_getaffinity
#include "train.h"

#include <errno.h>    // defines: errno
#include <sched.h>    // defines: sched_getaffinity, CPU_ISSET
#include <math.h>     // defines: isfinite, INFINITY, NAN
#include <signal.h>   // defines: sig_atomic_t
#include <stdlib.h>   // defines: calloc, free
#include <string.h>   // defines: strrchr, snprintf
#include <unistd.h>   // defines: isatty, fileno

#include "augment.h"
#include "checkpoint.h"
#include "data.h"
#include "gradsync.h"
#include "model.h"
#include "optim.h"
#include "sys.h"

/* ---------------------------------------------------------------- settings */

int sn_train_conf_parse(struct sn_train_conf *tc, const struct sn_config *cfg, struct sn_err *err)
{
    memset(tc, 0, sizeof *tc);
    const struct sn_section *t = sn_config_find(cfg, "train");
    int seed;
    SN_FORWARD(sn_section_int(cfg, t, "epochs", 10, 1, 1000000, &tc->epochs, err));
    SN_FORWARD(sn_section_int(cfg, t, "batch_size", 32, 1, 1 << 20, &tc->batch_size, err));
    SN_FORWARD(sn_section_int(cfg, t, "seed", 1337, 0, 2147483647, &seed, err));
    tc->seed = (uint64_t)seed;
    SN_FORWARD(sn_section_bool(cfg, t, "shuffle", 1, &tc->shuffle, err));
    SN_FORWARD(sn_section_int(cfg, t, "threads", 0, 0, 1024, &tc->threads, err));
    SN_FORWARD(sn_section_int(cfg, t, "steps_per_epoch", 0, 0, 1 << 30, &tc->steps_per_epoch, err));
    SN_FORWARD(sn_section_int(cfg, t, "validation_batch_size", 0, 0, 1 << 20,
                              &tc->validation_batch_size, err));
    if (tc->validation_batch_size == 0)
        tc->validation_batch_size = tc->batch_size;
    SN_FORWARD(sn_section_float(cfg, t, "watchdog", 600, 0, 1e7, &tc->watchdog, err));

    const struct sn_section *c = sn_config_find(cfg, "checkpoint");
    SN_FORWARD(sn_section_string(cfg, c, "dir", ".", tc->ckpt_dir, sizeof tc->ckpt_dir, err));
    SN_FORWARD(sn_section_int(cfg, c, "save_every", 0, 0, 1 << 30, &tc->save_every, err));
    SN_FORWARD(sn_section_bool(cfg, c, "save_best_only", 1, &tc->save_best_only, err));
    const char *base = strrchr(cfg->path, '/');
    base = base ? base + 1 : cfg->path;
    char def_name[512];
    snprintf(def_name, sizeof def_name, "%s", base);
    char *dot = strrchr(def_name, '.');
    if (dot && dot != def_name)
        *dot = '\0';
    SN_FORWARD(sn_section_string(cfg, c, "name", def_name, tc->run_name, sizeof tc->run_name, err));

    const struct sn_section *es = sn_config_find(cfg, "early_stopping");
    SN_FORWARD(sn_section_int(cfg, es, "patience", es ? 3 : 0, 0, 1 << 20, &tc->es_patience, err));
    SN_FORWARD(sn_section_float(cfg, es, "min_delta", 0, 0, 1e9, &tc->es_min_delta, err));
    SN_FORWARD(sn_section_bool(cfg, es, "restore_best_weights", 0, &tc->es_restore_best, err));
    if (es) {
        char monitor[32];
        SN_FORWARD(sn_section_string(cfg, es, "monitor", "val_loss", monitor, sizeof monitor, err));
        if (strcmp(monitor, "val_loss") != 0)
            return sn_config_error(cfg, es, "monitor", err, SN_EINVAL,
                                   "'%s': only val_loss is supported", monitor);
    }
    const struct sn_section *rl = sn_config_find(cfg, "reduce_lr_on_plateau");
    SN_FORWARD(sn_section_int(cfg, rl, "patience", rl ? 10 : 0, 0, 1 << 20, &tc->rlr_patience, err));
    SN_FORWARD(sn_section_float(cfg, rl, "factor", 0.1, 0, 0.999999, &tc->rlr_factor, err));
    SN_FORWARD(sn_section_float(cfg, rl, "min_delta", 1e-4, 0, 1e9, &tc->rlr_min_delta, err));
    SN_FORWARD(sn_section_float(cfg, rl, "min_lr", 0, 0, 1e3, &tc->rlr_min_lr, err));
    SN_FORWARD(sn_section_int(cfg, rl, "cooldown", 0, 0, 1 << 20, &tc->rlr_cooldown, err));
    if (rl) {
        char monitor[32];
        SN_FORWARD(sn_section_string(cfg, rl, "monitor", "val_loss", monitor, sizeof monitor, err));
        if (strcmp(monitor, "val_loss") != 0)
            return sn_config_error(cfg, rl, "monitor", err, SN_EINVAL,
                                   "'%s': only val_loss is supported", monitor);
    }
    return SN_OK;
}

/* ---------------------------------------------------------------- progress line */

struct progress {
    FILE *out;
    int tty, steps;
    double t0, last_print;
};

static void progress_bar(char *buf, int width, int done, int total)
{
    int fill = total ? (int)((long long)done * width / total) : width;
    buf[0] = '[';
    for (int i = 0; i < width; i++)
        buf[1 + i] = i < fill - 1 ? '=' : i == fill - 1 ? (done == total ? '=' : '>') : '.';
    buf[width + 1] = ']';
    buf[width + 2] = '\0';
}

/* Keras's line: " 469/782 [=====>......] - ETA: 5s - loss: 0.4521 - accuracy: 0.8345" */
static void progress_update(struct progress *p, int done, double loss, double acc, int final)
{
    double t = sn_now();
    if (!final && (!p->tty || t - p->last_print < 0.2))
        return;
    p->last_print = t;
    char bar[64];
    progress_bar(bar, 30, done, p->steps);
    double el = t - p->t0;
    if (final)
        fprintf(p->out, "%s%5d/%d %s - %.0fs %.0fms/step - loss: %.4f - accuracy: %.4f",
                p->tty ? "\r" : "", done, p->steps, bar, el, done ? 1e3 * el / done : 0.0, loss,
                acc);
    else
        fprintf(p->out, "\r%5d/%d %s - ETA: %.0fs - loss: %.4f - accuracy: %.4f", done, p->steps,
                bar, done ? el / done * (p->steps - done) : 0.0, loss, acc);
    fflush(p->out);
}

/* ---------------------------------------------------------------- checkpoints */

struct run {
    const struct sn_config *cfg;
    struct sn_train_conf tc;
    struct sn_data_conf dc;
    struct sn_augment_conf ac;
    struct sn_optim_conf oc;
    struct sn_model *model;
    struct sn_optim *opt;
    struct sn_dataset *train_ds, *val_ds;
    struct sn_loader *train_ld, *val_ld;
    struct sn_dist *d;
    struct sn_gradsync sync;
    FILE *out;
    char last_path[1600], best_path[1600], history_path[1600];
};

static void fill_meta(const struct run *r, struct sn_ckpt_meta *meta, int epoch, int64_t step,
                      int64_t loader_pos, double best, double val_loss)
{
    memset(meta, 0, sizeof *meta);
    meta->version = SN_CKPT_VERSION;
    meta->config_hash = r->cfg->hash;
    meta->model_hash = r->model->structure_hash;
    meta->epoch = epoch;
    meta->step = step;
    meta->world_size = r->d ? r->d->world : 1;
    meta->n_params = r->model->n_params;
    meta->n_state = r->model->n_state;
    meta->n_opt = r->opt ? (uint64_t)r->opt->n_slots * r->opt->n_params : 0;
    meta->best_val_loss = best;
    meta->val_loss = val_loss;
    meta->lr = r->opt ? (float)r->opt->lr_scale : 1.0f;
    meta->seed = r->tc.seed;
    meta->loader_pos = loader_pos;
}

/* epoch: epochs completed; pos: samples of the next epoch already trained on */
static int save_ckpt(const struct run *r, const char *path, int epoch, int64_t step, int64_t pos,
                     double best, double val_loss, struct sn_err *err)
{
    struct sn_ckpt_meta meta;
    fill_meta(r, &meta, epoch, step, pos, best, val_loss);
    return sn_checkpoint_save(path, &meta, r->model->params, r->model->state,
                              r->opt ? r->opt->moments : NULL, err);
}

/* Loads params and state (and optimizer moments when opt != NULL) after checking that the
 * checkpoint belongs to this network. */
static int load_ckpt(struct sn_model *m, struct sn_optim *opt, const char *path,
                     struct sn_ckpt_meta *meta, struct sn_err *err)
{
    SN_FORWARD(sn_checkpoint_read_meta(path, meta, err));
    if (meta->model_hash != m->structure_hash)
        return sn_err_set(err, SN_EFORMAT,
                          "%s: this checkpoint was made for another network (its layers or shapes "
                          "differ from the config's)\n---> HINT: pass the config it was trained "
                          "with",
                          path);
    int64_t n_opt = opt ? (int64_t)opt->n_slots * (int64_t)opt->n_params : -1;
    return sn_checkpoint_load(path, meta, m->params, (int64_t)m->n_params, m->state,
                              (int64_t)m->n_state, opt ? opt->moments : NULL, n_opt, err);
}

/* ---------------------------------------------------------------- evaluation */

/* Runs the model over a whole loader epoch (no augmentation, in order). */
static int evaluate_loader(struct sn_model *m, struct sn_loader *ld, struct sn_eval_result *res,
                           struct sn_err *err)
{
    memset(res, 0, sizeof *res);
    SN_FORWARD(sn_loader_start_epoch(ld, 0, err));
    struct sn_step_ctx ctx = {.ops = m->ops, .scratch = m->scratch, .training = 0};
    double loss = 0;
    long long correct = 0;
    for (;;) {
        struct sn_batch *b;
        SN_FORWARD(sn_loader_next(ld, &b, err));
        if (!b)
            break;
        if (b->n > 0) {
            ctx.sample_ids = b->ids;
            const float *logits = sn_model_forward(m, b->x, b->n, &ctx);
            loss += sn_loss(m->loss, logits, b->y, b->ok, b->n, m->n_outputs, 0, NULL, &correct);
            res->n += b->n - b->n_bad;
            res->skipped += b->n_bad;
        }
        sn_loader_release(ld, b);
    }
    res->loss = res->n ? loss / res->n : NAN;
    res->accuracy = res->n ? (double)correct / res->n : NAN;
    return SN_OK;
}

/* ---------------------------------------------------------------- the fit loop */

/* What rank 0 tells every rank after its end-of-epoch work. */
struct epoch_decision {
    int32_t stop;        /* early stopping fired */
    int32_t failed;      /* rank 0 failed (message already printed by it) */
    double lr_scale;
    double best;
};

static int check_same_model(struct run *r, struct sn_err *err)
{
    struct sn_dist *d = r->d;
    uint64_t mine[3] = {r->cfg->hash, r->model->structure_hash, r->model->n_params};
    uint64_t *all = calloc((size_t)d->world * 3, sizeof *all);
    SN_RETURN_IF(!all, err, SN_ENOMEM, "out of memory");
    int rc = sn_dist_allgather(d, mine, all, sizeof mine, err);
    for (int i = 0; rc == SN_OK && i < d->world; i++)
        if (memcmp(all + 3 * i, mine, sizeof mine) != 0)
            rc = sn_err_set(err, SN_EINVAL,
                            "rank %d's model differs from rank %d's (config hash %016llx vs "
                            "%016llx, %llu vs %llu parameters)\n---> HINT: every rank must read "
                            "the same config and --set options",
                            i, d->rank, (unsigned long long)all[3 * i],
                            (unsigned long long)mine[0], (unsigned long long)all[3 * i + 2],
                            (unsigned long long)mine[2]);
    free(all);
    return rc;
}

static int write_history(const char *path, const double *rows, int n, struct sn_err *err)
{
    struct sn_atomic_file af;
    SN_FORWARD(sn_atomic_open(&af, path, err));
    fprintf(af.f, "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n");
    for (int i = 0; i < n; i++) {
        const double *row = rows + 7 * i;
        fprintf(af.f, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.2f\n", (int)row[0], row[1], row[2], row[3],
                row[4], row[5], row[6]);
    }
    return sn_atomic_commit(&af, err);
}

/* The rows of an earlier run's history.csv up to epoch `upto`, for a resumed run. */
static int read_history(const char *path, double *rows, int upto)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[512];
    int n = 0;
    while (n < upto && fgets(line, sizeof line, f)) {
        double *row = rows + 7 * n;
        if (sscanf(line, "%lf,%lf,%lf,%lf,%lf,%lf,%lf", &row[0], &row[1], &row[2], &row[3],
                   &row[4], &row[5], &row[6]) == 7 && row[0] >= 1 && row[0] <= upto)
            n++;
    }
    fclose(f);
    return n;
}

/* BLAS threads per rank: [train] threads, else the node's cores shared among its ranks. Rank 0
 * prints one line per rank (host, rank, threads, CPUs it may run on). */
static int set_threads(struct run *r, struct sn_err *err)
{
    struct sn_dist *d = r->d;
    cpu_set_t set;
    int ncpu = 0;
    char cpus[96] = "";
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int first = -1, last = -2, len = 0;
        for (int c = 0; c <= CPU_SETSIZE; c++) {
            int in = c < CPU_SETSIZE && CPU_ISSET(c, &set);
            ncpu += in;
            if (in && c == last + 1) {
                last = c;
                continue;
            }
            if (first >= 0 && len < (int)sizeof cpus - 16)
                len += snprintf(cpus + len, sizeof cpus - len, "%s%d%s%.0d", len ? "," : "", first,
                                last > first ? "-" : "", last > first ? last : 0);
            if (in)
                first = last = c;
            else
                first = -1, last = -2;
        }
    }
    int threads = r->tc.threads;
    if (threads == 0) {
        /* ranks bound to one core each get 1; unbound ranks share the node's cores */
        int node_cpus = ncpu > 0 ? ncpu : 1;
        threads = ncpu < d->local_size * 2 && ncpu <= 1 ? 1 : node_cpus / d->local_size;
        if (threads < 1)
            threads = 1;
    }
    sn_ops_set_threads(threads);
    char line[256];
    snprintf(line, sizeof line, "rank %d of %d on %s: %d BLAS thread%s, %d data thread%s, CPUs %s",
             d->rank, d->world, d->host, threads, threads > 1 ? "s" : "", r->dc.threads,
             r->dc.threads > 1 ? "s" : "", cpus[0] ? cpus : "?");
    char *all = calloc((size_t)d->world, sizeof line);
    SN_RETURN_IF(!all, err, SN_ENOMEM, "out of memory");
    int rc = sn_dist_allgather(d, line, all, sizeof line, err);
    if (rc == SN_OK && d->rank == 0)
        for (int i = 0; i < d->world; i++)
            fprintf(r->out, "%s\n", all + (size_t)i * sizeof line);
    free(all);
    return rc;
}

static int setup(struct run *r, struct sn_err *err)
{
    const struct sn_config *cfg = r->cfg;
    SN_FORWARD(sn_train_conf_parse(&r->tc, cfg, err));
    SN_FORWARD(sn_data_conf_parse(&r->dc, cfg, err));
    SN_FORWARD(sn_augment_conf_parse(&r->ac, cfg, err));
    SN_FORWARD(sn_optim_conf_parse(&r->oc, cfg, err));
    int world = r->d->world, local_max = (r->tc.batch_size + world - 1) / world;
    int max_batch = local_max;
    if (r->d->rank == 0 && r->tc.validation_batch_size > max_batch)
        max_batch = r->tc.validation_batch_size;
    const struct sn_section *ms = sn_config_find(cfg, "model");
    char backend[16];
    SN_FORWARD(sn_section_string(cfg, ms, "backend", "blas", backend, sizeof backend, err));
    const struct sn_ops *ops = sn_ops_by_name(backend);
    if (!ops)
        return sn_config_error(cfg, ms, "backend", err, SN_EINVAL, "'%s': use blas or ref",
                               backend);
    SN_FORWARD(sn_model_build(&r->model, cfg, max_batch, ops, err));
    SN_FORWARD(sn_config_check_unused(cfg, err));
    if (r->dc.height != r->model->input.h || r->dc.width != r->model->input.w ||
        r->dc.channels != r->model->input.c)
        return sn_err_set(err, SN_EINVAL,
                          "%s: [data] gives %dx%dx%d images, the model expects %dx%dx%d",
                          cfg->path, r->dc.height, r->dc.width, r->dc.channels,
                          r->model->input.h, r->model->input.w, r->model->input.c);
    SN_FORWARD(sn_optim_create(&r->opt, &r->oc, r->model->n_params, err));
    SN_FORWARD(sn_gradsync_init(&r->sync, r->d, r->model, 0, err));

    SN_FORWARD(sn_dataset_open(&r->train_ds, &r->dc, SN_SPLIT_TRAIN, err));
    if (r->model->loss != SN_LOSS_BCE && r->train_ds->n_classes != r->model->n_outputs)
        return sn_err_set(err, SN_EINVAL,
                          "%s: the training data has %d classes but the last layer has %d units",
                          cfg->path, r->train_ds->n_classes, r->model->n_outputs);
    struct sn_loader_conf lc = {.ds = r->train_ds, .dc = &r->dc, .aug = r->ac.enabled ? &r->ac : NULL,
                                .global_batch = r->tc.batch_size, .rank = r->d->rank,
                                .world = world, .shuffle = r->tc.shuffle, .seed = r->tc.seed};
    SN_FORWARD(sn_loader_create(&r->train_ld, &lc, err));
    if (r->d->rank == 0) {
        SN_FORWARD(sn_dataset_open(&r->val_ds, &r->dc, SN_SPLIT_VAL, err));
        struct sn_loader_conf vc = {.ds = r->val_ds, .dc = &r->dc, .aug = NULL,
                                    .global_batch = r->tc.validation_batch_size, .rank = 0,
                                    .world = 1, .shuffle = 0, .seed = r->tc.seed};
        SN_FORWARD(sn_loader_create(&r->val_ld, &vc, err));
        SN_FORWARD(sn_mkdir_p(r->tc.ckpt_dir, "checkpoint directory", err));
        sn_remove_stale(r->tc.ckpt_dir, r->tc.run_name);
        sn_remove_stale(r->tc.ckpt_dir, "history.csv");
    }
    snprintf(r->last_path, sizeof r->last_path, "%s/%s-last.ckpt", r->tc.ckpt_dir, r->tc.run_name);
    snprintf(r->best_path, sizeof r->best_path, "%s/%s-best.ckpt", r->tc.ckpt_dir, r->tc.run_name);
    snprintf(r->history_path, sizeof r->history_path, "%s/history.csv", r->tc.ckpt_dir);
    return SN_OK;
}

static void teardown(struct run *r)
{
    sn_loader_free(r->train_ld);
    sn_loader_free(r->val_ld);
    sn_dataset_free(r->train_ds);
    sn_dataset_free(r->val_ds);
    sn_optim_free(r->opt);
    sn_model_free(r->model);
}

static int fit(struct run *r, const struct sn_train_opts *opts, struct sn_err *err)
{
    struct sn_model *m = r->model;
    struct sn_dist *d = r->d;
    const struct sn_train_conf *tc = &r->tc;
    int rank0 = d->rank == 0;
    FILE *out = r->out;

    int start_epoch = 0, skip_steps = 0;
    int64_t step = 0;
    double best = INFINITY;
    sn_model_init_params(m, tc->seed);
    const char *resume = opts->resume;
    if (resume && strcmp(resume, "auto") == 0)
        resume = access(r->last_path, F_OK) == 0 ? r->last_path : NULL;
    if (resume) {
        struct sn_ckpt_meta meta;
        SN_FORWARD(load_ckpt(m, r->opt, resume, &meta, err));
        start_epoch = meta.epoch;
        skip_steps = (int)(meta.loader_pos / tc->batch_size);
        step = meta.step;
        best = meta.best_val_loss;
        r->opt->t = meta.step;
        r->opt->lr_scale = meta.lr;
        if (rank0 && !opts->quiet)
            fprintf(out, "Resuming from %s: epoch %d, step %lld\n", resume, meta.epoch + 1,
                    (long long)meta.step);
    }
    /* Rank 0's model (and optimizer state after a resume) is everyone's. */
    SN_FORWARD(check_same_model(r, err));
    SN_FORWARD(sn_dist_bcast(d, m->params, m->n_params * sizeof(float), 0, err));
    SN_FORWARD(sn_dist_bcast(d, m->state, m->n_state * sizeof(float), 0, err));
    size_t n_opt = (size_t)r->opt->n_slots * r->opt->n_params;
    SN_FORWARD(sn_dist_bcast(d, r->opt->moments, n_opt * sizeof(float), 0, err));

    int steps = sn_loader_steps(r->train_ld);
    if (tc->steps_per_epoch > 0 && tc->steps_per_epoch < steps)
        steps = tc->steps_per_epoch;
    int dlog_rows = (tc->batch_size + d->world - 1) / d->world;
    float *dlogits = calloc((size_t)dlog_rows * m->n_outputs + 1, sizeof(float));
    double *history = calloc((size_t)(tc->epochs + 1) * 7, sizeof(double));
    SN_RETURN_IF(!dlogits || !history, err, SN_ENOMEM, "out of memory");
    int n_hist = 0, es_wait = 0, rlr_wait = 0, rlr_cool = 0;
    if (rank0 && resume)
        n_hist = read_history(r->history_path, history, start_epoch);
    int rc = SN_OK;

    for (int epoch = start_epoch; epoch < tc->epochs && rc == SN_OK; epoch++) {
        double t_epoch = sn_now();
        struct progress pg = {out, isatty(fileno(out)), steps, t_epoch, 0};
        if (rank0 && !opts->quiet)
            fprintf(out, "Epoch %d/%d\n", epoch + 1, tc->epochs);
        rc = sn_loader_start_epoch(r->train_ld, epoch, err);
        double sums[3] = {0, 0, 0}; /* loss sum, correct, samples — global */
        for (int s = 0; s < steps && rc == SN_OK; s++) {
            struct sn_batch *b;
            rc = sn_loader_next(r->train_ld, &b, err);
            if (rc != SN_OK || !b)
                break;
            if (epoch == start_epoch && s < skip_steps) {
                /* resuming mid-epoch: these batches were trained on before the stop */
                sn_loader_release(r->train_ld, b);
                continue;
            }
            sn_dist_set_step(d, step);
            struct sn_step_ctx ctx = {.ops = m->ops, .scratch = m->scratch, .training = 1,
                                      .seed = tc->seed, .step = (uint64_t)step,
                                      .sample_ids = b->ids};
            sn_model_zero_grads(m);
            long long correct = 0;
            double loss = 0;
            if (b->n > 0) {
                const float *logits = sn_model_forward(m, b->x, b->n, &ctx);
                /* the bad rows of other ranks are not known here: scale by the global batch,
                   which keeps 1 rank and N ranks identical when no file is bad */
                loss = sn_loss(m->loss, logits, b->y, b->ok, b->n, m->n_outputs,
                               1.0f / (float)b->global_n, dlogits, &correct);
                sn_model_backward(m, b->x, dlogits, b->n, &ctx, sn_gradsync_ready, &r->sync);
            }
            double local[4] = {loss, (double)correct, (double)(b->n - b->n_bad),
                               opts->stop && *opts->stop ? 1.0 : 0.0};
            sn_loader_release(r->train_ld, b);
            rc = sn_gradsync_finish(&r->sync, err);
            if (rc == SN_OK && d->world > 1)
                rc = sn_dist_allreduce_sum_f64(d, local, 4, err);
            int stop = local[3] > 0; /* any rank signalled: all stop after this step */
            if (rc != SN_OK)
                break;
            if (!isfinite(local[0])) {
                rc = sn_err_set(err, SN_ENUM,
                                "the loss became %s at epoch %d, step %lld\n---> HINT: lower "
                                "learning_rate, check the data (a Rescaling layer?)",
                                isnan(local[0]) ? "NaN" : "infinite", epoch + 1, (long long)step);
                if (!rank0)
                    err->msg[0] = '\0';
                err->collective = 1; /* every rank saw the same global loss */
                break;
            }
            sn_optim_step(r->opt, m);
            step++;
            for (int k = 0; k < 3; k++)
                sums[k] += local[k];
            if (rank0 && !opts->quiet)
                progress_update(&pg, s + 1, sums[0] / fmax(1, sums[2]), sums[1] / fmax(1, sums[2]),
                                0);
            int64_t pos = (int64_t)(s + 1) * tc->batch_size;
            if (rank0 && (stop || (tc->save_every > 0 && step % tc->save_every == 0)))
                rc = save_ckpt(r, r->last_path, epoch, step, pos, best, NAN, err);
            if (stop) {
                if (rc == SN_OK) {
                    rc = sn_err_set(err, SN_ESTOP,
                                    "stopped by a signal at epoch %d, step %lld; %s holds the "
                                    "run\n---> HINT: continue with --resume %s",
                                    epoch + 1, (long long)step, r->last_path, r->last_path);
                    if (!rank0)
                        err->msg[0] = '\0';
                }
                err->collective = 1;
                break;
            }
        }
        if (rc != SN_OK)
            break;
        double data_wait = sn_loader_wait_seconds(r->train_ld); /* since start_epoch */
        int bad = sn_loader_bad_count(r->train_ld);
        /* Batch-norm statistics drift apart on each rank's slices: average them. */
        if (d->world > 1 && m->n_state > 0) {
            rc = sn_dist_allreduce_sum(d, m->state, m->n_state, err);
            for (size_t i = 0; rc == SN_OK && i < m->n_state; i++)
                m->state[i] /= (float)d->world;
        }
        double badsum = bad;
        if (rc == SN_OK && d->world > 1)
            rc = sn_dist_allreduce_sum_f64(d, &badsum, 1, err);
        if (rc != SN_OK)
            break;

        /* Rank 0's end of epoch: validation, history, checkpoints, decisions. No collective. */
        struct epoch_decision dec = {0, 0, r->opt->lr_scale, best};
        if (rank0) {
            double train_loss = sums[0] / fmax(1, sums[2]), train_acc = sums[1] / fmax(1, sums[2]);
            if (!opts->quiet)
                progress_update(&pg, steps, train_loss, train_acc, 1);
            struct sn_eval_result vr;
            int lrc = evaluate_loader(m, r->val_ld, &vr, err);
            double secs = sn_now() - t_epoch;
            if (lrc == SN_OK) {
                if (!opts->quiet) {
                    fprintf(out, " - val_loss: %.4f - val_accuracy: %.4f\n", vr.loss, vr.accuracy);
                    fprintf(out, "    data wait %.2fs (%.1f%% of the epoch), validated %lld images",
                            data_wait, 100 * data_wait / fmax(1e-9, secs), vr.n);
                    if (badsum > 0)
                        fprintf(out, ", %.0f unreadable files skipped", badsum);
                    fprintf(out, "\n");
                    fflush(out);
                }
                double *row = history + 7 * n_hist++;
                row[0] = epoch + 1, row[1] = train_loss, row[2] = train_acc, row[3] = vr.loss;
                row[4] = vr.accuracy, row[5] = sn_optim_lr(r->opt, r->opt->t), row[6] = secs;
                lrc = write_history(r->history_path, history, n_hist, err);
            }
            int improved = lrc == SN_OK && vr.loss < best - tc->es_min_delta;
            int improved_rlr = lrc == SN_OK && vr.loss < best - tc->rlr_min_delta;
            if (lrc == SN_OK && vr.loss < best) {
                best = vr.loss;
                lrc = save_ckpt(r, r->best_path, epoch + 1, step, 0, best, vr.loss, err);
                if (lrc == SN_OK && !opts->quiet)
                    fprintf(out, "    val_loss improved, saved %s\n", r->best_path);
            }
            if (lrc == SN_OK)
                lrc = save_ckpt(r, r->last_path, epoch + 1, step, 0, best, vr.loss, err);
            /* EarlyStopping / ReduceLROnPlateau, Keras's counting */
            es_wait = improved ? 0 : es_wait + 1;
            if (tc->es_patience > 0 && es_wait >= tc->es_patience) {
                dec.stop = 1;
                if (!opts->quiet)
                    fprintf(out, "Early stopping: val_loss has not improved for %d epochs\n",
                            es_wait);
            }
            if (rlr_cool > 0)
                rlr_cool--, rlr_wait = 0;
            else if (tc->rlr_patience > 0) {
                rlr_wait = improved_rlr ? 0 : rlr_wait + 1;
                if (rlr_wait >= tc->rlr_patience) {
                    double lr = sn_optim_lr(r->opt, r->opt->t);
                    double new_lr = fmax(lr * tc->rlr_factor, tc->rlr_min_lr);
                    if (new_lr < lr) {
                        dec.lr_scale = r->opt->lr_scale * new_lr / lr;
                        if (!opts->quiet)
                            fprintf(out, "ReduceLROnPlateau: learning rate %.3g -> %.3g\n", lr,
                                    new_lr);
                    }
                    rlr_wait = 0;
                    rlr_cool = tc->rlr_cooldown;
                }
            }
            dec.best = best;
            if (lrc != SN_OK) {
                dec.failed = 1;
                rc = lrc;
            }
        }
        int brc = sn_dist_bcast(d, &dec, sizeof dec, 0, rank0 ? NULL : err);
        if (rc == SN_OK && brc != SN_OK)
            rc = brc;
        if (dec.failed) {
            if (!rank0)
                rc = sn_err_set(err, SN_EMPI, "%s", ""); /* rank 0 reports */
            err->collective = 1;
        }
        r->opt->lr_scale = dec.lr_scale;
        best = dec.best;
        if (rc == SN_OK && dec.stop)
            break;
    }
    if (rc == SN_OK && rank0 && tc->es_restore_best && isfinite(best)) {
        struct sn_ckpt_meta meta;
        rc = load_ckpt(m, NULL, r->best_path, &meta, err);
    }
    free(dlogits);
    free(history);
    return rc;
}

int sn_train(const struct sn_config *cfg, struct sn_dist *d, const struct sn_train_opts *opts,
             struct sn_err *err)
{
    struct run r = {.cfg = cfg, .d = d, .out = opts->out ? opts->out : stdout};
    int rc = setup(&r, err);
    /* Agree on set-up failures before any rank waits in a collective: the lowest failing rank
       reports, every rank ends normally. */
    int flag = rc != SN_OK ? d->world - d->rank : 0;
    struct sn_err agree_err;
    if (sn_dist_allreduce_max_int(d, &flag, &agree_err) != SN_OK && rc == SN_OK) {
        *err = agree_err;
        rc = err->code;
    }
    if (flag > 0) {
        int reporter = d->world - flag;
        if (d->rank != reporter) {
            rc = sn_err_set(err, SN_EMPI, "%s", "");
        }
        err->collective = 1;
    }
    if (rc == SN_OK) {
        sn_dist_set_watchdog(d, r.tc.watchdog);
        rc = set_threads(&r, err);
        if (rc == SN_OK)
            rc = fit(&r, opts, err);
    }
    teardown(&r);
    return rc;
}

/* ---------------------------------------------------------------- evaluate, predict */

/* Builds the model for inference at batch `batch` and loads a checkpoint into it. */
static int inference_model(const struct sn_config *cfg, const char *ckpt, int batch,
                           struct sn_model **out, struct sn_err *err)
{
    struct sn_model *m;
    SN_FORWARD(sn_model_build(&m, cfg, batch, &sn_ops_blas, err));
    struct sn_ckpt_meta meta;
    int rc = load_ckpt(m, NULL, ckpt, &meta, err);
    if (rc != SN_OK) {
        sn_model_free(m);
        return rc;
    }
    *out = m;
    return SN_OK;
}

int sn_evaluate(const struct sn_config *cfg, const char *ckpt, const char *data_dir, int split,
                struct sn_eval_result *res, struct sn_err *err)
{
    struct sn_data_conf dc;
    struct sn_train_conf tc;
    SN_FORWARD(sn_data_conf_parse(&dc, cfg, err));
    SN_FORWARD(sn_train_conf_parse(&tc, cfg, err));
    if (data_dir) {
        snprintf(dc.dir, sizeof dc.dir, "%s", data_dir);
        dc.split_dir[split][0] = '\0';
    }
    struct sn_model *m = NULL;
    struct sn_dataset *ds = NULL;
    struct sn_loader *ld = NULL;
    int rc = inference_model(cfg, ckpt, tc.validation_batch_size, &m, err);
    if (rc == SN_OK)
        rc = sn_dataset_open(&ds, &dc, (enum sn_split)split, err);
    if (rc == SN_OK) {
        struct sn_loader_conf lc = {.ds = ds, .dc = &dc, .global_batch = tc.validation_batch_size,
                                    .rank = 0, .world = 1, .shuffle = 0, .seed = tc.seed};
        rc = sn_loader_create(&ld, &lc, err);
    }
    if (rc == SN_OK)
        rc = evaluate_loader(m, ld, res, err);
    sn_loader_free(ld);
    sn_dataset_free(ds);
    sn_model_free(m);
    return rc;
}

int sn_predict(const struct sn_config *cfg, const char *ckpt, char **images, int n_images,
               FILE *out, struct sn_err *err)
{
    struct sn_data_conf dc;
    SN_FORWARD(sn_data_conf_parse(&dc, cfg, err));
    struct sn_model *m;
    SN_FORWARD(inference_model(cfg, ckpt, 1, &m, err));
    size_t in_size = sn_shape_size(m->input);
    float *x = malloc(in_size * sizeof(float)), *probs = malloc((size_t)m->n_outputs * sizeof(float));
    int rc = x && probs ? SN_OK : sn_err_set(err, SN_ENOMEM, "out of memory");
    /* class names come from the training folders when they can be read */
    struct sn_dataset *ds = NULL;
    struct sn_err ignored;
    if (sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, &ignored) != SN_OK)
        ds = NULL;
    struct sn_step_ctx ctx = {.ops = m->ops, .scratch = m->scratch, .training = 0};
    for (int i = 0; rc == SN_OK && i < n_images; i++) {
        rc = sn_data_load_image(&dc, images[i], x, err);
        if (rc != SN_OK)
            break;
        int64_t id = 0;
        ctx.sample_ids = &id;
        const float *logits = sn_model_forward(m, x, 1, &ctx);
        sn_model_probabilities(m, logits, probs, 1);
        fprintf(out, "%s", images[i]);
        /* binary models output P(class 1); name both classes when the folders are known */
        if (m->loss == SN_LOSS_BCE && ds && ds->n_classes == 2)
            fprintf(out, " %s=%.4f %s=%.4f", ds->class_names[0], 1 - probs[0],
                    ds->class_names[1], probs[0]);
        else
            for (int k = 0; k < m->n_outputs; k++) {
                if (ds && m->n_outputs == ds->n_classes)
                    fprintf(out, " %s=%.4f", ds->class_names[k], probs[k]);
                else
                    fprintf(out, " %d=%.4f", k, probs[k]);
            }
        fprintf(out, "\n");
    }
    sn_dataset_free(ds);
    free(x);
    free(probs);
    sn_model_free(m);
    return rc;
}
