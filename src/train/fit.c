/* fit.c — `shardnet train`: the fit loop, data-parallel (train.h).
 *
 * On every rank: set-up (settings, network; the checkpoint directory's lock, taken by rank 0
 * before the data is listed or any file written, so that a second run in the same directory
 * is refused at once; room for every file the run will write; data, loaders) and an agreement
 * on its failures; the resume decision on rank 0 (is the checkpoint of this run?),
 * agreed and broadcast with the run state; then per epoch the training steps (step.c), the end
 * of the epoch (batch-norm statistics averaged, validation sharded and summed) and rank 0's part
 * (history, callbacks, checkpoints), whose outcome one broadcast carries to every rank. Any
 * collective is entered by every rank in the same order; rank-0-only work holds none. */
#include "train.h"

#include <math.h>     // defines: fmax, NAN
#include <stdio.h>    // defines: sscanf, snprintf
#include <stdlib.h>   // defines: calloc, realloc, free
#include <string.h>   // defines: strcmp, memcmp, strlen, strrchr
#include <sys/stat.h> // defines: stat, struct stat
#include <unistd.h>   // defines: access, F_OK

#include "agree.h"
#include "checkpoint.h"
#include "console.h"
#include "cpu.h"
#include "hooks.h"
#include "inference.h"
#include "layout.h"
#include "mem.h"
#include "record.h"
#include "restore.h"
#include "runlock.h"
#include "settings.h"
#include "step.h"
#include "sys.h"
#include "threads.h"
#include "trace.h"
#include "trace_gather.h"
#include "tune.h"

struct run {
    const struct sn_config *cfg;
    const struct sn_train_opts *opts;
    struct sn_settings st;
    struct sn_model *model;
    struct sn_optim *opt;
    struct sn_step step;
    struct sn_dataset *train_ds, *val_ds;
    struct sn_loader *train_ld, *val_ld;
    struct sn_dist *d;
    struct sn_console con;
    struct sn_run_state rs;
    struct sn_threads threads;
    int steps;                        /* per epoch */
    struct sn_run_history hist;       /* rank 0 */
    char last_path[1600], best_path[1600], history_path[1600];
    struct sn_runlock *lock;          /* rank 0: the checkpoint directory's, while the run lives */
    uint64_t ckpt_need;               /* rank 0: bytes the run's checkpoint files need at most */
};

/* NAME-epochNNN.ckpt: the checkpoint of an epoch with save_best_only = false */
static void epoch_path(const struct run *r, int epoch, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s-epoch%03d.ckpt", r->st.tc.ckpt_dir, r->st.tc.run_name, epoch);
}

/* Writes a checkpoint of the run as it is now (rank 0). */
static int save_ckpt(const struct run *r, const char *path, double val_loss, struct sn_err *err)
{
    /* a run whose lock was taken over (it was silent too long) writes nothing more */
    SN_FORWARD(sn_runlock_check(r->lock, err));
    struct sn_record rec = {0};
    int rc = sn_record_run(r->cfg, r->train_ds, r->val_ds, &r->rs, &r->hist, &rec, err);
    struct sn_ckpt_meta meta = {
        .config_hash = r->cfg->hash,
        .model_hash = r->model->structure_hash,
        .epoch = r->rs.epoch,
        .step = r->rs.step,
        .world_size = r->d->world,
        .n_params = r->model->n_params,
        .n_state = r->model->n_state,
        .n_opt = (uint64_t)r->opt->n_slots * r->opt->n_params,
        .best_val_loss = r->rs.cb.best,
        .val_loss = val_loss,
        .lr = (float)r->rs.lr_scale,
        .seed = r->st.tc.seed,
        .loader_pos = r->rs.pos,
        .record = rec.text,
    };
    double t0 = sn_trace_clock();
    if (rc == SN_OK)
        rc = sn_checkpoint_save(path, &meta, r->model->params, r->model->state, r->opt->moments,
                                err);
    if (sn_trace_on)
        sn_trace_record(SN_TRACE_CHECKPOINT, "checkpoint", path, r->rs.step, t0, sn_now());
    sn_record_free(&rec);
    return rc;
}

static int write_history(const char *path, const struct sn_run_history *h, struct sn_err *err)
{
    struct sn_atomic_file af;
    SN_FORWARD(sn_atomic_open(&af, path, err));
    fprintf(af.f, "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n");
    for (int i = 0; i < h->n; i++) {
        const double *row = h->rows[i];
        fprintf(af.f, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.2f\n", (int)row[0], row[1], row[2], row[3],
                row[4], row[5], row[6]);
    }
    return sn_atomic_commit(&af, err);
}

/* Rank 0 prints one line per rank: host, rank, threads, the CPUs it may run on, its kernels;
 * and the rank's note on its threads (threads.h) when it has one. */
static int say_threads(struct run *r, struct sn_err *err)
{
    struct sn_dist *d = r->d;
    int threads = r->threads.threads;
    char line[1024];
    int n = snprintf(line, sizeof line,
                     "rank %d of %d on %s: %d compute thread%s, %d data thread%s, CPUs %s, %s",
                     d->rank, d->world, d->host, threads, threads > 1 ? "s" : "",
                     r->st.dc.threads, r->st.dc.threads > 1 ? "s" : "",
                     r->threads.cpus[0] ? r->threads.cpus : "?", sn_cpu_kernels());
    if (r->threads.note[0] && n > 0 && (size_t)n < sizeof line)
        snprintf(line + n, sizeof line - (size_t)n, "\nrank %d: note: %s", d->rank,
                 r->threads.note);
    char *all = calloc((size_t)d->world, sizeof line);
    SN_RETURN_IF(!all, err, SN_ENOMEM, "out of memory");
    int rc = sn_dist_allgather(d, line, all, sizeof line, err);
    if (rc == SN_OK && d->rank == 0)
        for (int i = 0; i < d->world; i++)
            sn_console_say(&r->con, "%s\n", all + (size_t)i * sizeof line);
    free(all);
    return rc;
}

/* cache = memory: each rank keeps both splits decoded. The network is built already, but much of
 * it may not be in memory yet (pages are taken when first written): what each rank will still
 * take is the cache plus the network less what this process holds now, weighed against the
 * memory this node has left for all its ranks, before anything is decoded. */
static int check_cache_room(struct run *r, const struct sn_loader_conf *lc,
                            const struct sn_loader_conf *vc, struct sn_err *err)
{
    double cache = (double)sn_loader_cache_bytes(lc) + (double)sn_loader_cache_bytes(vc);
    if (cache == 0)
        return SN_OK;
    double net = sn_settings_need(&r->st, r->model), held = (double)sn_mem_resident("");
    double more = cache + (net > held ? net - held : 0);
    int ranks;
    struct sn_mem_avail avail;
    if (sn_settings_node_fits(&r->st, more, &avail, &ranks)) {
        if (r->d->rank == 0 && !r->con.quiet)
            sn_console_say(&r->con, "cache = memory: %.1f MB of decoded images on each rank\n",
                           cache / 1e6);
        return SN_OK;
    }
    char all[96] = "";
    if (ranks > 1)
        snprintf(all, sizeof all, " (%.0f MB for the %d ranks of this node)", more * ranks / 1e6,
                 ranks);
    return sn_err_set(err, SN_ENOMEM,
                      "[data] cache = memory needs %.0f MB on each rank for %s and %s, beside the "
                      "network's %.0f MB%s, but %.0f MB are available (%s)\n---> HINT: cache = "
                      "no in [data] decodes every epoch instead",
                      cache / 1e6, r->train_ds->root, r->val_ds->root, net / 1e6, all,
                      (double)avail.bytes / 1e6, avail.source);
}

static int open_data(struct run *r, struct sn_err *err)
{
    const struct sn_settings *st = &r->st;
    const struct sn_train_conf *tc = &st->tc;
    struct sn_dist *d = r->d;
    SN_FORWARD(sn_dataset_open_shared(&r->train_ds, d, &st->dc, SN_SPLIT_TRAIN, NULL, err));
    sn_console_dataset_note(r->con.errs, r->train_ds, NULL);
    SN_FORWARD(sn_settings_check_classes(r->model, r->train_ds->n_classes, r->train_ds->root,
                                         err));
    /* the training split fixes the model's classes; validation is labelled by their names */
    struct sn_classes known = {r->train_ds->n_classes,
                               (const char(*)[64])r->train_ds->class_names};
    SN_FORWARD(sn_dataset_open_shared(&r->val_ds, d, &st->dc, SN_SPLIT_VAL, &known, err));
    sn_console_dataset_note(r->con.errs, r->val_ds, r->train_ds);
    if (d->rank == 0 && !r->con.quiet) {
        sn_dataset_describe(r->train_ds, &st->dc, SN_SPLIT_TRAIN, r->con.out);
        sn_dataset_describe(r->val_ds, &st->dc, SN_SPLIT_VAL, r->con.out);
        char missing[512];
        int n = sn_dataset_missing(r->val_ds, missing, sizeof missing);
        if (n > 0)
            sn_console_say(&r->con, "note: %s lacks %d of the %d classes: %s\n", r->val_ds->root, n,
                    r->val_ds->n_classes, missing);
    }
    struct sn_loader_conf lc = {.ds = r->train_ds, .dc = &st->dc,
                                .aug = st->ac.enabled ? &st->ac : NULL,
                                .global_batch = tc->batch_size, .micro_batch = tc->micro_batch,
                                .rank = d->rank,
                                .world = d->world, .shuffle = tc->shuffle, .seed = tc->seed,
                                .cache = st->dc.cache_memory,
                                .report = sn_console_report, .report_user = &r->con};
    struct sn_loader_conf vc = {.ds = r->val_ds, .dc = &st->dc, .aug = &st->ac, .inference = 1,
                                .global_batch = tc->validation_batch_size,
                                .micro_batch = tc->micro_batch, .rank = d->rank,
                                .world = d->world, .shuffle = 0, .seed = tc->seed,
                                .cache = st->dc.cache_memory,
                                .report = sn_console_report, .report_user = &r->con};
    /* the loaders allocate on each rank, and may fail on some ranks only: agreed */
    int rc = check_cache_room(r, &lc, &vc, err);
    if (rc == SN_OK)
        rc = sn_loader_create(&r->train_ld, &lc, err);
    if (rc == SN_OK)
        rc = sn_loader_create(&r->val_ld, &vc, err);
    SN_FORWARD(sn_dist_agree(d, rc, err));
    r->steps = sn_loader_steps(r->train_ld);
    if (tc->steps_per_epoch > 0 && tc->steps_per_epoch < r->steps)
        r->steps = tc->steps_per_epoch;
    return SN_OK;
}

/* The most rows a rank takes of a global batch of nb samples cut into micro-batches */
static int most_rows(int nb, int micro, int world)
{
    int most = 0;
    for (int q = 0; q < world; q++) {
        int first, count;
        sn_shard_slice(nb, micro, q, world, &first, &count);
        most = count > most ? count : most;
    }
    return most;
}

/* Rank 0: the checkpoint directory becomes this run's, or another run holds it (runlock.h). */
static int take_lock(struct run *r, const char *role, struct sn_err *err)
{
    struct sn_runlock_conf lc = {.dir = r->st.tc.ckpt_dir, .what = role,
                                 .config = r->cfg->path, .note = r->opts->out};
    const char *times = sn_test_hook("LOCK_TIMES"); /* tests: "BEAT,STALE" in seconds */
    if (times && sscanf(times, "%lf,%lf", &lc.beat, &lc.stale) != 2)
        lc.beat = lc.stale = 0;
    return sn_runlock_acquire(&r->lock, &lc, err);
}

static void add_line_bytes(void *user, const char *section, const char *key, const char *value)
{
    *(uint64_t *)user += strlen(section) + strlen(key) + strlen(value) + 16;
}

/* The run record's bytes at most (record.c): the resolved config, a line per class, a history
 * row per epoch, and the run state's few lines. */
static uint64_t record_bytes_max(const struct run *r)
{
    uint64_t n = 4096;
    sn_config_each_resolved(r->cfg, add_line_bytes, &n);
    uint64_t classes = r->model->n_outputs > 1 ? (uint64_t)r->model->n_outputs : 2;
    return n + classes * 80 + (uint64_t)r->st.tc.epochs * 200;
}

/* Bytes the run writes into its checkpoint directory, at most: every checkpoint file it will
 * create (`last`, and `best` or, with save_best_only = false, one per epoch), one more for the
 * temporary file a save writes beside the file it replaces, history.csv and its temporary
 * file, the lock. A file already there (a resume) is replaced at the same size. */
static uint64_t ckpt_dir_need(const struct run *r)
{
    const struct sn_train_conf *tc = &r->st.tc;
    uint64_t floats = r->model->n_params + r->model->n_state +
                      (uint64_t)r->opt->n_slots * r->opt->n_params;
    uint64_t file = sn_checkpoint_bytes_max(floats, record_bytes_max(r)) + 4096;
    uint64_t files = 1 + (access(r->last_path, F_OK) != 0);
    if (tc->cb.save_best_only) {
        files += access(r->best_path, F_OK) != 0;
    } else {
        char path[1700];
        for (int e = 1; e <= tc->epochs; e++) {
            epoch_path(r, e, path, sizeof path);
            files += access(path, F_OK) != 0;
        }
    }
    uint64_t history = 2 * ((uint64_t)tc->epochs * 100 + 4096);
    return files * file + history + 4096;
}

/* Rank 0, with --trace: room for the trace (rank 0 writes every rank's events), beside the
 * checkpoint files when both are on one file system. Each rank records at most its buffer's
 * events; a training step records at most one per layer each way and per gradient bucket, and a
 * few of its own; a validation step one; an epoch a few. An event takes about 110 bytes of JSON
 * (measured on Listing 8.1's trace); 128 are counted. */
static int check_trace_room(const struct run *r, struct sn_err *err)
{
    const char *path = r->opts->trace;
    uint64_t cap = r->opts->trace_events ? r->opts->trace_events : SN_TRACE_DEFAULT_EVENTS;
    uint64_t per_step = 8 + 3 * (uint64_t)r->model->n_layers;
    uint64_t epoch = (uint64_t)r->steps * per_step + (uint64_t)sn_loader_steps(r->val_ld) + 16;
    uint64_t events = (uint64_t)r->st.tc.epochs * epoch + 64;
    uint64_t bytes = (events < cap ? events : cap) * (uint64_t)r->d->world * 128 + 65536;
    char dir[1100];
    const char *slash = strrchr(path, '/');
    if (slash)
        snprintf(dir, sizeof dir, "%.*s", (int)(slash == path ? 1 : slash - path), path);
    else
        snprintf(dir, sizeof dir, ".");
    struct stat tst, cst;
    int shared = stat(dir, &tst) == 0 && stat(r->st.tc.ckpt_dir, &cst) == 0 &&
                 tst.st_dev == cst.st_dev;
    uint64_t need = bytes + (shared ? r->ckpt_need : 0), have = sn_free_bytes(dir);
    if (have >= need)
        return SN_OK;
    char beside[160] = "";
    if (shared)
        snprintf(beside, sizeof beside, ", and the checkpoint files beside it (on the same file "
                 "system) %.1f MB more", r->ckpt_need / 1e6);
    return sn_err_set(err, SN_EIO,
                      "--trace %s: %s has %.1f MB free; the trace needs about %.1f MB%s\n"
                      "---> HINT: write the trace elsewhere, or record fewer events "
                      "(--trace-events N)",
                      path, dir, have / 1e6, bytes / 1e6, beside);
}

/* decay_steps = auto: the decay ends with training's last update, epochs x updates per epoch,
 * counted from the config at hand (a resumed run whose epochs were raised decays over the new
 * length from where it is). Said on the console, so that the number can be written instead. */
static int resolve_decay(struct run *r, struct sn_err *err)
{
    struct sn_optim_conf *oc = &r->opt->conf;
    if (!oc->decay_auto)
        return SN_OK;
    const struct sn_train_conf *tc = &r->st.tc;
    int64_t updates = (int64_t)tc->epochs * r->steps;
    char how[160];
    snprintf(how, sizeof how, "%d epoch%s x %d update%s", tc->epochs, tc->epochs > 1 ? "s" : "",
             r->steps, r->steps > 1 ? "s" : "");
    SN_FORWARD(sn_optim_resolve_auto(oc, updates, how, r->cfg, err));
    r->st.oc.decay_steps = oc->decay_steps;
    if (oc->warmup_steps > 0)
        sn_console_say(&r->con, "decay_steps = auto: %d updates (%s, less %d of warmup)\n",
                       oc->decay_steps, how, oc->warmup_steps);
    else
        sn_console_say(&r->con, "decay_steps = auto: %d updates (%s)\n", oc->decay_steps, how);
    return SN_OK;
}

static int setup(struct run *r, struct sn_err *err)
{
    struct sn_dist *d = r->d;
    SN_FORWARD(sn_settings_load(&r->st, r->cfg, err));
    r->st.training = 1;
    r->st.node_ranks = d->local_size;
    r->st.world = d->world;
    const struct sn_train_conf *tc = &r->st.tc;
    char what[1200];
    sn_config_where(r->cfg, sn_config_find(r->cfg, "checkpoint"), "dir", what, sizeof what);
    char role[1300];
    snprintf(role, sizeof role, "checkpoint directory ([checkpoint] dir, %s)", what);
    /* the network holds a micro-batch, the unit of work of training and validation alike */
    SN_FORWARD(sn_settings_build(&r->st, r->cfg, tc->micro_batch, &r->model, err));
    SN_FORWARD(sn_settings_check_cpu(&r->st, r->cfg, err));
    SN_FORWARD(sn_threads_apply(tc->threads, d, &r->threads, err));
    SN_FORWARD(sn_optim_create(&r->opt, &r->st.oc, r->model, err));
    SN_FORWARD(sn_step_init(&r->step, d, r->model, r->opt, tc->micro_batch,
                            most_rows(tc->batch_size, tc->micro_batch, d->world), err));
    snprintf(r->last_path, sizeof r->last_path, "%s/%s-last.ckpt", tc->ckpt_dir, tc->run_name);
    snprintf(r->best_path, sizeof r->best_path, "%s/%s-best.ckpt", tc->ckpt_dir, tc->run_name);
    snprintf(r->history_path, sizeof r->history_path, "%s/history.csv", tc->ckpt_dir);
    int rc = SN_OK;
    if (d->rank == 0) {
        /* the first thing done in the directory (a config or a CPU refused above leaves none):
           a second run in it stops here, before its data is listed or anything written */
        rc = take_lock(r, role, err);
        /* a directory that is a file, read-only or full is found now, not after an epoch:
           room for every file the run will write there */
        if (rc == SN_OK) {
            r->ckpt_need = ckpt_dir_need(r);
            rc = sn_probe_dir(tc->ckpt_dir, role, r->ckpt_need, err);
        }
        if (rc == SN_OK && r->opts->trace)
            rc = sn_trace_probe(r->opts->trace, err);
        if (rc == SN_OK) {
            sn_remove_stale(tc->ckpt_dir, tc->run_name);
            sn_remove_stale(tc->ckpt_dir, "history.csv");
        }
    }
    /* rank 0's checks are everyone's before the data is opened, which is collective: a rank 0
       that stopped here alone would leave the others waiting for its listing */
    SN_FORWARD(sn_dist_agree(d, rc, err));
    SN_FORWARD(open_data(r, err));
    /* the updates of the run are known now: decay_steps = auto ends the decay with the last */
    rc = resolve_decay(r, err);
    /* the trace's size depends on the steps, known now */
    if (rc == SN_OK && d->rank == 0 && r->opts->trace)
        rc = check_trace_room(r, err);
    return sn_dist_agree(d, rc, err);
}

static void teardown(struct run *r)
{
    sn_loader_free(r->train_ld);
    sn_loader_free(r->val_ld);
    sn_dataset_free(r->train_ds);
    sn_dataset_free(r->val_ds);
    sn_step_free(&r->step);
    sn_optim_free(r->opt);
    sn_model_free(r->model);
    free(r->hist.rows);
    sn_console_free(&r->con);
    sn_runlock_release(r->lock); /* after every file of the run is written */
}

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

/* The checkpoint a resume would continue: --resume's, or with "auto" the run's `last`, if any. */
static const char *resume_path(const struct run *r)
{
    const char *path = r->opts->resume;
    if (path && strcmp(path, "auto") == 0)
        path = access(r->last_path, F_OK) == 0 ? r->last_path : NULL;
    return path;
}

/* A resumed run computes with the threads per rank it started with (their number changes the
 * bits: threads.h), unless [train] threads or SN_THREADS set them, which is said when it differs.
 * Rank 0 reads them from the record (a record it cannot read is resume_rank0's to report). */
static int keep_threads(struct run *r, struct sn_err *err)
{
    struct sn_dist *d = r->d;
    int32_t kept = 0;
    const char *path = d->rank == 0 ? resume_path(r) : NULL;
    char *rec = NULL;
    struct sn_err ignored;
    if (path && sn_checkpoint_read_record(path, &rec, &ignored) == SN_OK) {
        double v = 0;
        if (sn_record_double(rec, "threads", 0, &v) == 0)
            kept = (int32_t)v;
    }
    free(rec);
    SN_FORWARD(sn_dist_bcast(d, &kept, sizeof kept, 0, err));
    r->rs.threads = r->threads.threads;
    if (kept <= 0 || kept == r->threads.threads)
        return SN_OK;
    if (r->st.tc.threads > 0 || getenv("SN_THREADS")) {
        sn_console_say(&r->con, "note: the run computed with %d compute thread%s per rank; it goes "
                                "on with %d ([train] threads or SN_THREADS): from here its bits "
                                "differ from a run that kept %d\n",
                       kept, kept > 1 ? "s" : "", r->threads.threads, kept);
        return SN_OK;
    }
    SN_FORWARD(sn_threads_apply(kept, d, &r->threads, err));
    r->rs.threads = kept;
    return SN_OK;
}

enum start { START_FRESH = 0, START_RESUMED, START_NOTHING_LEFT };

/* Rank 0: the checkpoint that continues this run, checked to belong to it, loaded. */
static int resume_rank0(struct run *r, int *start, struct sn_err *err)
{
    const struct sn_train_conf *tc = &r->st.tc;
    const char *path = resume_path(r);
    *start = START_FRESH;
    if (path == NULL)
        return SN_OK;
    struct sn_ckpt_meta meta;
    SN_FORWARD(sn_checkpoint_read_meta(path, &meta, err));
    if (meta.model_hash != r->model->structure_hash)
        return sn_err_set(err, SN_EINVAL,
                          "%s belongs to another run: it was made for another network (its layers "
                          "or shapes differ from %s's)\n---> HINT: resume with the config it was "
                          "trained with, or give this run its own [checkpoint] dir",
                          path, r->cfg->path);
    char *rec;
    SN_FORWARD(sn_checkpoint_read_record(path, &rec, err));
    int rc = SN_OK;
    char changes[3000] = "";
    int data = rec[0] ? sn_record_data_changes(rec, r->train_ds, r->val_ds, changes, sizeof changes)
                      : 0;
    int conf = rec[0] ? sn_record_config_changes(r->cfg, rec, changes, sizeof changes) : 0;
    if (!rec[0])
        rc = sn_err_set(err, SN_EFORMAT,
                        "%s: written by a shardnet before checkpoint format 2, it holds no record "
                        "of its run and cannot be resumed\n---> HINT: evaluate and predict still "
                        "read it; train a new run in another [checkpoint] dir",
                        path);
    else if (data == 2 || ((data || conf) && !r->opts->allow_config_change))
        rc = sn_err_set(err, SN_EINVAL,
                        "%s belongs to another run; what differs:%s\n---> HINT: resume with the "
                        "config and data it was trained with%s, or give this run its own "
                        "[checkpoint] dir",
                        path, changes,
                        data == 2 ? "" : ", pass --allow-config-change to continue it anyway");
    else if (data || conf)
        sn_console_say(&r->con, "note: continuing %s with --allow-config-change; what differs:%s\n", path,
                changes);
    if (rc == SN_OK)
        rc = sn_record_read_run(rec, path, &r->rs, &r->hist, err);
    free(rec);
    SN_FORWARD(rc);
    char where[600];
    sn_config_where(r->cfg, sn_config_find(r->cfg, "train"), "epochs", where, sizeof where);
    if (r->rs.finished || (meta.epoch == tc->epochs && meta.loader_pos == 0)) {
        sn_console_say(&r->con, "%s: %s after epoch %d of %d; nothing left to train\n", path,
                r->rs.finished ? "early stopping ended the run" : "the run is complete",
                meta.epoch, tc->epochs);
        *start = START_NOTHING_LEFT;
        return SN_OK;
    }
    if (meta.epoch >= tc->epochs)
        return sn_err_set(err, SN_EINVAL,
                          "[train] epochs = %d (%s), but %s has already trained %d epochs%s\n"
                          "---> HINT: raise epochs to train on, or give a new run its own "
                          "[checkpoint] dir",
                          tc->epochs, where, path, meta.epoch,
                          meta.loader_pos ? " and part of the next" : "");
    SN_FORWARD(sn_restore_checkpoint(r->model, r->opt, path, &meta, err));
    r->rs.epoch = meta.epoch;
    r->rs.step = meta.step;
    r->rs.pos = meta.loader_pos;
    sn_console_say(&r->con, "Resuming from %s: epoch %d, step %lld\n", path, meta.epoch + 1,
            (long long)meta.step);
    *start = START_RESUMED;
    return SN_OK;
}

/* Every rank: rank 0 writes `last`, its outcome is everyone's (the statistics, moved by every
 * micro-batch in order on every rank, are the same everywhere). */
static int save_last(struct run *r, struct sn_err *err)
{
    int rc = r->d->rank == 0 ? save_ckpt(r, r->last_path, NAN, err) : SN_OK;
    return sn_dist_agree(r->d, rc, err);
}

static int train_epoch(struct run *r, int epoch, struct sn_err *err)
{
    struct sn_run_state *rs = &r->rs;
    const struct sn_train_conf *tc = &r->st.tc;
    struct sn_dist *d = r->d;
    int first = (int)(rs->pos / tc->batch_size);
    sn_console_say(&r->con, "Epoch %d/%d\n", epoch + 1, tc->epochs);
    sn_console_epoch(&r->con, r->steps, rs->seconds);
    double t0 = sn_now() - rs->seconds, wait0 = rs->data_wait;
    SN_FORWARD(sn_loader_start_epoch_at(r->train_ld, epoch, first, err));
    for (int s = first; s < r->steps; s++) {
        struct sn_batch *b;
        double t_data = sn_trace_clock();
        SN_FORWARD(sn_loader_next(r->train_ld, &b, err));
        sn_trace_end(SN_TRACE_DATA, "data wait", rs->step, t_data);
        sn_dist_set_step(d, rs->step);
        struct sn_step_in in = {.x = b->x, .y = b->y, .ok = b->ok, .ids = b->ids, .n = b->n,
                                .global_n = b->global_n, .seed = tc->seed,
                                .step = (uint64_t)rs->step, .epoch = epoch,
                                .stop = r->opts->stop && *r->opts->stop};
        struct sn_step_out out;
        int rc = sn_step_run(&r->step, &in, SN_SYNC_OVERLAP, &out, err);
        sn_loader_release(r->train_ld, b);
        if (rc == SN_ENUM)
            return sn_dist_collective(d, rc, err);
        SN_FORWARD(rc);
        rs->step++;
        rs->pos = (int64_t)(s + 1) * tc->batch_size;
        rs->loss += out.loss;
        rs->correct += out.correct;
        rs->samples += out.samples;
        rs->bad += in.global_n - out.samples;
        sn_console_progress(&r->con, s + 1, rs->loss / fmax(1, rs->samples),
                     rs->correct / fmax(1, rs->samples));
        if (out.stop || (tc->save_every > 0 && rs->step % tc->save_every == 0)) {
            rs->seconds = sn_now() - t0;
            rs->data_wait = wait0 + sn_loader_wait_seconds(r->train_ld);
            SN_FORWARD(save_last(r, err));
        }
        if (out.stop) {
            sn_err_set(err, SN_ESTOP,
                       "stopped by a signal at epoch %d, step %lld; %s holds the run\n---> HINT: "
                       "continue with --resume %s (or --resume auto)",
                       epoch + 1, (long long)rs->step, r->last_path, r->last_path);
            return sn_dist_collective(d, SN_ESTOP, err);
        }
    }
    rs->seconds = sn_now() - t0;
    rs->data_wait = wait0 + sn_loader_wait_seconds(r->train_ld);
    return SN_OK;
}

/* Rank 0's end of an epoch: history, callbacks, checkpoints. No collective. */
static int end_epoch_rank0(struct run *r, int epoch, const struct sn_eval_result *vr,
                           double val_seconds, struct sn_err *err)
{
    struct sn_run_state *rs = &r->rs;
    const struct sn_train_conf *tc = &r->st.tc;
    double loss = rs->loss / fmax(1, rs->samples), acc = rs->correct / fmax(1, rs->samples);
    double secs = rs->seconds + val_seconds;
    sn_console_epoch_line(&r->con, r->steps, secs, rs->seconds, loss, acc, vr->loss, vr->accuracy);
    char skipped[128] = "";
    if (rs->bad > 0)
        snprintf(skipped, sizeof skipped, ", %.0f unreadable files skipped", rs->bad);
    if (vr->skipped > 0)
        snprintf(skipped + strlen(skipped), sizeof skipped - strlen(skipped),
                 ", %lld unreadable validation files skipped", vr->skipped);
    sn_console_say(&r->con, "    data wait %.2fs (%.1f%% of the epoch), validated %lld images%s\n",
            rs->data_wait, 100 * rs->data_wait / fmax(1e-9, secs), vr->n, skipped);
    double(*h)[SN_HISTORY_COLS] = realloc(r->hist.rows, (size_t)(r->hist.n + 1) * sizeof *h);
    SN_RETURN_IF(!h, err, SN_ENOMEM, "out of memory");
    r->hist.rows = h;
    double *row = h[r->hist.n++];
    double lr = sn_optim_lr(r->opt, r->opt->t);
    row[0] = epoch + 1, row[1] = loss, row[2] = acc, row[3] = vr->loss, row[4] = vr->accuracy;
    row[5] = lr, row[6] = secs;

    double best_before = rs->cb.best;
    struct sn_callbacks_result res;
    sn_callbacks_epoch_end(&tc->cb, &rs->cb, epoch, vr->loss, lr, &res);
    if (res.lr != lr && lr > 0)
        rs->lr_scale *= res.lr / lr;
    /* the state of the next epoch's start: what the checkpoints record */
    double val_loss = vr->loss;
    rs->epoch = epoch + 1;
    rs->pos = 0;
    rs->loss = rs->correct = rs->samples = rs->bad = rs->seconds = rs->data_wait = 0;
    rs->finished = res.stop;
    SN_FORWARD(sn_runlock_check(r->lock, err));
    SN_FORWARD(write_history(r->history_path, &r->hist, err));
    if (tc->cb.save_best_only && res.improved) {
        SN_FORWARD(save_ckpt(r, r->best_path, val_loss, err));
        sn_console_say(&r->con, "    val_loss improved from %.5f to %.5f, saved %s\n", best_before,
                val_loss, r->best_path);
    } else if (!tc->cb.save_best_only) {
        char path[1700];
        epoch_path(r, epoch + 1, path, sizeof path);
        SN_FORWARD(save_ckpt(r, path, val_loss, err));
        sn_console_say(&r->con, "    saved %s\n", path);
    }
    SN_FORWARD(save_ckpt(r, r->last_path, val_loss, err));
    if (res.lr != lr && lr > 0)
        sn_console_say(&r->con, "ReduceLROnPlateau: learning rate %.3g -> %.3g\n", lr, res.lr);
    if (res.stop)
        sn_console_say(&r->con, "Epoch %d: early stopping (val_loss has not improved by more than %g "
                         "for %d epochs)\n",
                epoch + 1, tc->cb.es_min_delta, tc->cb.es_patience);
    return SN_OK;
}

/* The micro-batches rank r holds of the validation batch of step `step` (of steps batches). */
static int val_micro(const struct run *r, int step, int rank)
{
    const struct sn_train_conf *tc = &r->st.tc;
    int nv = r->val_ds->n, vb = tc->validation_batch_size;
    int nb = nv - step * vb < vb ? nv - step * vb : vb, first, rows;
    sn_shard_slice(nb, tc->micro_batch, rank, r->d->world, &first, &rows);
    return (rows + tc->micro_batch - 1) / tc->micro_batch;
}

/* Every rank evaluates its micro-batches of the validation split; rank 0 gathers their sums
 * and takes them in the order of the micro-batches, the order one rank alone would take them
 * in, so val_loss is the same bits on any number of ranks. vr: rank 0's result. */
static int validate(struct run *r, struct sn_eval_result *vr, struct sn_err *err)
{
    struct sn_dist *d = r->d;
    struct sn_eval_list mine = {0};
    int rc = sn_evaluate_loader(r->model, r->val_ld, &r->st.ac, r->st.tc.micro_batch,
                                &mine, err);
    rc = sn_dist_agree(d, rc, err);
    if (rc != SN_OK || d->world == 1) {
        if (rc == SN_OK)
            sn_eval_result(mine.v, mine.n, vr);
        sn_eval_list_free(&mine);
        return rc;
    }
    int steps = sn_loader_steps(r->val_ld), world = d->world;
    size_t *bytes = calloc((size_t)world, sizeof *bytes), total = 0;
    struct sn_eval_sums *all = NULL, *ordered = NULL;
    if (bytes && d->rank == 0) {
        for (int q = 0; q < world; q++) {
            for (int s = 0; s < steps; s++)
                bytes[q] += (size_t)val_micro(r, s, q) * sizeof(struct sn_eval_sums);
            total += bytes[q];
        }
        all = malloc(total + 1);
        ordered = malloc(total + 1);
    }
    rc = bytes && (d->rank != 0 || (all && ordered))
             ? SN_OK
             : sn_err_set(err, SN_ENOMEM, "out of memory for the validation's sums");
    rc = sn_dist_agree(d, rc, err);
    if (rc == SN_OK)
        rc = sn_dist_gatherv(d, mine.v, mine.n * sizeof *mine.v, all, bytes, err);
    if (rc == SN_OK && d->rank == 0) {
        /* rank q's records, step after step; in a step the ranks' runs follow rank order */
        size_t *at = calloc((size_t)world, sizeof *at), n = 0;
        for (int q = 1; at && q < world; q++)
            at[q] = at[q - 1] + bytes[q - 1] / sizeof *all;
        for (int s = 0; at && s < steps; s++)
            for (int q = 0; q < world; q++)
                for (int k = val_micro(r, s, q); k > 0; k--)
                    ordered[n++] = all[at[q]++];
        if (at)
            sn_eval_result(ordered, n, vr);
        else
            rc = sn_err_set(err, SN_ENOMEM, "out of memory");
        free(at);
    }
    free(bytes);
    free(all);
    free(ordered);
    sn_eval_list_free(&mine);
    return sn_dist_agree(d, rc, err);
}

/* Every rank: validation sharded and its sums taken in order, rank 0's part, and its outcome
 * broadcast. *stop is set when early stopping ended the run. */
static int end_epoch(struct run *r, int epoch, int *stop, struct sn_err *err)
{
    struct sn_dist *d = r->d;
    double t0 = sn_now(), t_val = sn_trace_clock();
    struct sn_eval_result vr;
    SN_FORWARD(validate(r, &vr, err));
    sn_trace_end(SN_TRACE_VALIDATION, "validation", epoch + 1, t_val);
    int rc = d->rank == 0 ? end_epoch_rank0(r, epoch, &vr, sn_now() - t0, err) : SN_OK;
    /* rank 0's run state is everyone's; its failure too */
    struct {
        int32_t failed;
        struct sn_run_state rs;
    } msg = {rc != SN_OK, r->rs};
    double t_bc = sn_trace_clock();
    int brc = sn_dist_bcast(d, &msg, sizeof msg, 0, d->rank == 0 ? NULL : err);
    sn_trace_end(SN_TRACE_SYNC, "rank 0's end of epoch", -1, t_bc);
    if (rc == SN_OK && brc != SN_OK)
        return brc;
    if (msg.failed) {
        if (d->rank != 0)
            rc = sn_err_set(err, SN_EMPI, "%s", ""); /* rank 0 reports */
        err->collective = 1;
        return rc;
    }
    r->rs = msg.rs;
    r->opt->lr_scale = r->rs.lr_scale;
    *stop = r->rs.finished;
    return SN_OK;
}

static int fit(struct run *r, struct sn_err *err)
{
    struct sn_dist *d = r->d;
    struct sn_model *m = r->model;
    sn_model_init_params(m, r->st.tc.seed);
    sn_callbacks_init(&r->rs.cb);
    r->rs.lr_scale = 1.0;
    int start = START_FRESH;
    int rc = d->rank == 0 ? resume_rank0(r, &start, err) : SN_OK;
    if (rc == SN_OK && d->rank == 0 && start == START_FRESH && r->opts->init) {
        struct sn_ckpt_meta meta;
        rc = sn_restore_checkpoint(m, NULL, r->opts->init, &meta, err);
        if (rc == SN_OK && !r->opts->quiet)
            sn_console_say(&r->con, "initial weights from %s (epoch %d of the run that wrote it), a new "
                             "optimizer; %zu of %zu parameters frozen\n",
                    r->opts->init, meta.epoch, m->n_params - m->n_trainable, m->n_params);
    } else if (rc == SN_OK && d->rank == 0 && start == START_FRESH && m->base_checkpoint[0]) {
        rc = sn_restore_base(m, err);
        if (rc == SN_OK && !r->opts->quiet)
            sn_console_say(&r->con, "base: %d layers of %s, weights from %s, %zu of %zu parameters "
                             "frozen\n",
                    m->n_base, m->base_config, m->base_checkpoint, m->n_params - m->n_trainable,
                    m->n_params);
    }
    SN_FORWARD(sn_dist_agree(d, rc, err));
    SN_FORWARD(check_same_model(r, err));
    /* rank 0's decision, run state and model (after a resume: and optimizer) are everyone's */
    struct {
        int32_t start;
        struct sn_run_state rs;
    } msg = {start, r->rs};
    SN_FORWARD(sn_dist_bcast(d, &msg, sizeof msg, 0, err));
    if (msg.start == START_NOTHING_LEFT)
        return SN_OK;
    r->rs = msg.rs;
    r->rs.threads = r->threads.threads; /* what the run computes with from here */
    SN_FORWARD(sn_dist_bcast(d, m->params, m->n_params * sizeof(float), 0, err));
    SN_FORWARD(sn_dist_bcast(d, m->state, m->n_state * sizeof(float), 0, err));
    size_t n_opt = (size_t)r->opt->n_slots * r->opt->n_params;
    SN_FORWARD(sn_dist_bcast(d, r->opt->moments, n_opt * sizeof(float), 0, err));
    r->opt->t = r->rs.step;
    r->opt->lr_scale = r->rs.lr_scale;
    for (int epoch = r->rs.epoch; epoch < r->st.tc.epochs; epoch++) {
        int stop = 0;
        double t0 = sn_trace_clock();
        SN_FORWARD(train_epoch(r, epoch, err));
        SN_FORWARD(end_epoch(r, epoch, &stop, err));
        sn_trace_end(SN_TRACE_EPOCH, "epoch", epoch + 1, t0);
        if (stop)
            break;
    }
    return SN_OK;
}

/* After one rank's own failure the others may sit in a collective: no gather is safe. */
int sn_train_finish_trace(struct sn_dist *d, const char *path, int rc, FILE *note, FILE *errs,
                          struct sn_err *err)
{
    if (rc != SN_OK && !err->collective) {
        sn_trace_free();
        return rc;
    }
    struct sn_err terr = {0};
    int trc = sn_trace_finish(d, path, note, rc == SN_OK ? err : &terr);
    if (rc == SN_OK)
        return trc;
    if (trc != SN_OK && terr.msg[0])
        fprintf(errs, "shardnet: the trace was not written: %s\n", terr.msg);
    return rc;
}

/* The micro-batch sizes a rank meets besides a full one: the last, shorter micro-batch of a
 * full batch and of the epoch's last, partial batch, and the same for validation, so that
 * sn_tune_backends makes their primitives before the first step. */
static void batch_shares(const struct run *r, struct sn_tune_conf *tc)
{
    const struct sn_train_conf *t = &r->st.tc;
    int m = t->micro_batch, n = r->train_ds->n, b = t->batch_size;
    tc->train_n[0] = (n < b ? n : b) % m;
    if (n > b && n % b && r->steps == sn_loader_steps(r->train_ld))
        tc->train_n[1] = (n % b) % m;
    int nv = r->val_ds->n, vb = t->validation_batch_size;
    tc->eval_n[0] = (nv < vb ? nv : vb) % m;
    if (nv > vb && nv % vb)
        tc->eval_n[1] = (nv % vb) % m;
}

int sn_train(const struct sn_config *cfg, struct sn_dist *d, const struct sn_train_opts *opts,
             struct sn_err *err)
{
    struct run *r = calloc(1, sizeof *r);
    SN_RETURN_IF(!r, err, SN_ENOMEM, "out of memory");
    r->cfg = cfg;
    r->d = d;
    r->opts = opts;
    sn_console_init(&r->con, opts->out, opts->errs, d->rank != 0 || opts->quiet, d->launched);
    int rc = sn_dist_agree(d, setup(r, err), err);
    if (rc == SN_OK) {
        sn_dist_set_watchdog(d, r->st.tc.watchdog);
        rc = keep_threads(r, err);
    }
    if (rc == SN_OK) {
        rc = say_threads(r, err);
    }
    size_t prims = 0;
    if (rc == SN_OK) {
        struct sn_tune_conf tc = {.auto_backend = r->st.auto_backend, .training = 1,
                                  .n = r->st.tc.micro_batch,
                                  .threads = r->threads.threads, .bf16 = r->st.tc.bf16};
        batch_shares(r, &tc);
        rc = sn_tune_backends(r->model, &tc, d, d->rank == 0 && !opts->quiet ? r->con.out : NULL,
                              err);
        char runs[512];
        if (rc == SN_OK && sn_model_layout_runs(r->model, runs, sizeof runs) > 0)
            sn_console_say(&r->con, "oneDNN's blocked layout kept between layers: %s\n", runs);
        prims = sn_ops_onednn_primitives();
    }
    int tracing = 0;
    if (rc == SN_OK && opts->trace) {
        rc = sn_trace_start(d, opts->trace_events, err);
        tracing = rc == SN_OK;
    }
    if (rc == SN_OK)
        rc = fit(r, err);
    /* tests: what the steps made (bench prints the same for its steps) */
    if (sn_test_hook("PRIMITIVES") && rc == SN_OK)
        fprintf(opts->errs, "rank %d: oneDNN primitives: %zu made before the first step, %zu "
                            "after\n",
                d->rank, prims, sn_ops_onednn_primitives() - prims);
    if (tracing)
        rc = sn_train_finish_trace(d, opts->trace, rc, d->rank == 0 ? r->con.out : NULL,
                                   opts->errs, err);
    teardown(r);
    free(r);
    return rc;
}

