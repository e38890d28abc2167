/* extract.c — `shardnet extract` (inference.h): a convolutional base run once over every split,
 * each rank over its shard, the outputs gathered on rank 0 into one feature file. */
#include "inference.h"

#include <stdlib.h> // defines: malloc, calloc, realloc, free
#include <string.h> // defines: memcpy, snprintf

#include "agree.h"
#include "console.h"
#include "featfile.h"
#include "restore.h"
#include "settings.h"
#include "sys.h"
#include "threads.h"
#include "tune.h"

/* This rank's outputs of the network over its shard of ds: rows (n_rows x out floats) and the
 * dataset index of each (files that did not decode are left out). */
static int extract_split(struct sn_model *m, const struct sn_settings *st, struct sn_dataset *ds,
                         struct sn_dist *d, FILE *errs, float **rows, int64_t **ids,
                         size_t *n_rows, struct sn_err *err)
{
    size_t out = sn_shape_size(m->layers[m->n_layers - 1].out), cap = 0;
    *rows = NULL, *ids = NULL, *n_rows = 0;
    struct sn_loader *ld = NULL;
    int micro = st->tc.micro_batch;
    struct sn_loader_conf lc = {.ds = ds, .dc = &st->dc, .aug = &st->ac, .inference = 1,
                                .global_batch = st->tc.validation_batch_size,
                                .micro_batch = micro, .rank = d->rank, .world = d->world,
                                .shuffle = 0, .seed = st->tc.seed,
                                .report = sn_console_report_file, .report_user = errs};
    int rc = sn_loader_create(&ld, &lc, err);
    if (rc == SN_OK)
        rc = sn_loader_start_epoch(ld, 0, err);
    struct sn_step_ctx ctx = {.ops = m->ops, .scratch = m->scratch, .training = 0};
    const size_t sample = sn_shape_size(m->input);
    while (rc == SN_OK) {
        struct sn_batch *b;
        rc = sn_loader_next(ld, &b, err);
        if (rc != SN_OK || !b)
            break;
        if (b->n > 0 && *n_rows + (size_t)b->n > cap) {
            cap = 2 * (*n_rows + (size_t)b->n);
            float *nr = realloc(*rows, cap * out * sizeof(float));
            int64_t *ni = realloc(*ids, cap * sizeof(int64_t));
            if (nr)
                *rows = nr;
            if (ni)
                *ids = ni;
            if (!nr || !ni)
                rc = sn_err_set(err, SN_ENOMEM, "out of memory for the features");
        }
        /* micro-batch after micro-batch, as training: the same bits on any number of ranks */
        for (int row = 0; rc == SN_OK && row < b->n; row += micro) {
            int count = b->n - row < micro ? b->n - row : micro;
            ctx.sample_ids = b->ids + row;
            const float *y = sn_model_forward(m, b->x + (size_t)row * sample, count, &ctx);
            for (int i = 0; i < count; i++) {
                if (!b->ok[row + i])
                    continue;
                memcpy(*rows + *n_rows * out, y + (size_t)i * out, out * sizeof(float));
                (*ids)[(*n_rows)++] = b->ids[row + i];
            }
        }
        sn_loader_release(ld, b);
    }
    sn_loader_free(ld);
    return rc;
}

/* Gathers every rank's rows on rank 0 into sp, in the dataset's order. */
static int gather_split(struct sn_dist *d, const struct sn_dataset *ds, size_t out,
                        const float *rows, const int64_t *ids, size_t n_rows,
                        struct sn_feature_split *sp, struct sn_err *err)
{
    uint64_t mine = n_rows, *all = calloc((size_t)d->world, sizeof *all);
    size_t *cnt_i = calloc((size_t)d->world, sizeof *cnt_i), *cnt_x = calloc((size_t)d->world,
                                                                                sizeof *cnt_x);
    int rc = all && cnt_i && cnt_x ? SN_OK : sn_err_set(err, SN_ENOMEM, "out of memory");
    if (rc == SN_OK)
        rc = sn_dist_allgather(d, &mine, all, sizeof mine, err);
    size_t total = 0;
    for (int r = 0; rc == SN_OK && r < d->world; r++) {
        cnt_i[r] = all[r] * sizeof(int64_t);
        cnt_x[r] = all[r] * out * sizeof(float);
        total += all[r];
    }
    int64_t *gid = NULL;
    float *gx = NULL;
    if (rc == SN_OK && d->rank == 0) {
        gid = malloc((total + 1) * sizeof *gid);
        gx = malloc((total * out + 1) * sizeof *gx);
        if (!gid || !gx)
            rc = sn_err_set(err, SN_ENOMEM, "out of memory for %zu feature rows", total);
    }
    rc = sn_dist_agree(d, rc, err);
    if (rc == SN_OK)
        rc = sn_dist_gatherv(d, ids, n_rows * sizeof *ids, gid, cnt_i, err);
    if (rc == SN_OK)
        rc = sn_dist_gatherv(d, rows, n_rows * out * sizeof(float), gx, cnt_x, err);
    if (rc == SN_OK && d->rank == 0) {
        /* rows in the dataset's order: a slot per file, the files that did not decode dropped */
        int64_t *at = malloc(((size_t)ds->n + 1) * sizeof *at);
        sp->x = malloc((total * out + 1) * sizeof(float));
        sp->labels = malloc((total + 1) * sizeof(int32_t));
        sp->class_names = calloc((size_t)ds->n_classes + 1, 64);
        if (!at || !sp->x || !sp->labels || !sp->class_names)
            rc = sn_err_set(err, SN_ENOMEM, "out of memory");
        for (int i = 0; rc == SN_OK && i < ds->n; i++)
            at[i] = -1;
        for (size_t k = 0; rc == SN_OK && k < total; k++)
            at[gid[k]] = (int64_t)k;
        int n = 0;
        for (int i = 0; rc == SN_OK && i < ds->n; i++) {
            if (at[i] < 0)
                continue;
            memcpy(sp->x + (size_t)n * out, gx + (size_t)at[i] * out, out * sizeof(float));
            sp->labels[n++] = ds->labels[i];
        }
        sp->n = n;
        sp->n_classes = ds->n_classes;
        for (int c = 0; rc == SN_OK && c < ds->n_classes; c++)
            memcpy(sp->class_names[c], ds->class_names[c], 64);
        free(at);
    }
    free(gid);
    free(gx);
    free(all);
    free(cnt_i);
    free(cnt_x);
    return rc;
}

int sn_extract(const struct sn_config *cfg, const char *ckpt, const char *data_dir,
               const char *out_path, struct sn_dist *d, FILE *out, FILE *errs, struct sn_err *err)
{
    struct sn_settings *st = calloc(1, sizeof *st);
    SN_RETURN_IF(!st, err, SN_ENOMEM, "out of memory");
    struct sn_model *m = NULL;
    int rc = sn_settings_load(st, cfg, err);
    const struct sn_train_conf *tc = &st->tc;
    int local = rc == SN_OK ? tc->micro_batch : 1; /* the network holds a micro-batch */
    st->node_ranks = d->local_size;
    if (rc == SN_OK)
        rc = sn_settings_build(st, cfg, local, &m, err);
    if (rc == SN_OK)
        rc = sn_settings_check_cpu(st, cfg, err);
    if (rc == SN_OK && data_dir) {
        snprintf(st->dc.dir, sizeof st->dc.dir, "%s", data_dir);
        snprintf(st->dc.dir_where, sizeof st->dc.dir_where, "--data");
        for (int s = 0; s < 3; s++)
            st->dc.split_dir[s][0] = '\0';
    }
    struct sn_ckpt_meta meta;
    if (rc == SN_OK)
        rc = sn_restore_checkpoint(m, NULL, ckpt, &meta, err);
    struct sn_threads threads = {0};
    if (rc == SN_OK)
        rc = sn_threads_apply(tc->threads, d, &threads, err);
    /* a rank that hangs ends the job here as in training (dist.h); every rank's set-up is
       everyone's before the backends are chosen together */
    if (rc == SN_OK)
        sn_dist_set_watchdog(d, tc->watchdog);
    rc = sn_dist_agree(d, rc, err);
    if (rc == SN_OK) {
        struct sn_tune_conf tune = {.auto_backend = st->auto_backend, .n = local,
                                    .threads = threads.threads, .bf16 = tc->bf16};
        rc = sn_dist_agree(d, sn_tune_backends(m, &tune, d, NULL, err), err);
    }
    struct sn_features f = {.base_hash = rc == SN_OK ? m->structure_hash : 0};
    struct sn_dataset *train = NULL;
    static const char *const names[3] = {"train", "val", "test"};
    double secs[3] = {0}; /* per split written: decoding, the base, the gather */
    for (int s = 0; rc == SN_OK && s < 3; s++) {
        struct sn_dataset *ds = NULL;
        double t0 = sn_now();
        struct sn_classes known = {train ? train->n_classes : 0,
                                   train ? (const char(*)[64])train->class_names : NULL};
        struct sn_err e2 = {0};
        /* a cold listing of a large split on a shared file system may take rank 0 minutes while
           the others wait for it, as in training, where the watchdog starts after the listing */
        sn_dist_set_watchdog(d, 0);
        int orc = sn_dataset_open_shared(&ds, d, &st->dc, (enum sn_split)s, train ? &known : NULL,
                                         &e2);
        sn_dist_set_watchdog(d, tc->watchdog);
        if (orc != SN_OK && s > 0) { /* a split without a folder is left out, and said */
            if (d->rank == 0)
                fprintf(out, "note: no %s split: %s\n", names[s], e2.msg);
            continue;
        }
        if (orc != SN_OK) {
            *err = e2;
            rc = orc;
            break;
        }
        sn_console_dataset_note(errs, ds, train);
        if (d->rank == 0)
            sn_dataset_describe(ds, &st->dc, (enum sn_split)s, out);
        float *rows = NULL;
        int64_t *ids = NULL;
        size_t n_rows = 0;
        rc = sn_dist_agree(d, extract_split(m, st, ds, d, errs, &rows, &ids, &n_rows, err), err);
        struct sn_feature_split *sp = &f.split[f.n_splits];
        struct sn_shape o = m->layers[m->n_layers - 1].out;
        if (rc == SN_OK)
            rc = gather_split(d, ds, sn_shape_size(o), rows, ids, n_rows, sp, err);
        if (rc == SN_OK) {
            snprintf(sp->name, sizeof sp->name, "%s", names[s]);
            sp->h = o.h, sp->w = o.w, sp->c = o.c;
            secs[f.n_splits++] = sn_now() - t0;
        }
        free(rows);
        free(ids);
        if (s == 0)
            train = ds;
        else
            sn_dataset_free(ds);
    }
    if (rc == SN_OK && d->rank == 0) {
        rc = sn_features_write(out_path, &f, err);
        for (int s = 0; rc == SN_OK && s < f.n_splits; s++)
            fprintf(out, "%s: %s %d x (%d, %d, %d), %.1f images/s on %d rank%s\n", out_path,
                    f.split[s].name, f.split[s].n, f.split[s].h, f.split[s].w, f.split[s].c,
                    secs[s] > 0 ? f.split[s].n / secs[s] : 0, d->world, d->world > 1 ? "s" : "");
    }
    rc = sn_dist_agree(d, rc, err);
    sn_features_free(&f);
    sn_dataset_free(train);
    sn_model_free(m);
    free(st);
    return rc;
}
