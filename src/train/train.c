/* train.c — the settings every command reads, the fit loop (data-parallel), evaluation and
 * prediction.
 *
 * fit runs, on every rank: set-up (settings, network, data, loaders, checkpoint directory) and
 * an agreement on its failures; the resume decision on rank 0 (is the checkpoint of this run?),
 * agreed and broadcast with the run state; then per epoch the training steps (step.c), the
 * end of the epoch (batch-norm statistics averaged, validation sharded and summed) and rank 0's
 * part (history, callbacks, checkpoints), whose outcome one broadcast carries to every rank.
 * Any collective is entered by every rank in the same order; rank-0-only work holds none. */
#define _GNU_SOURCE // sched_getaffinity
#include "train.h"

#include <errno.h>   // defines: errno
#include <math.h>    // defines: isfinite, INFINITY, NAN, fmax
#include <pthread.h> // defines: pthread_mutex_t
#include <sched.h>   // defines: sched_getaffinity, CPU_ISSET
#include <stdarg.h>  // defines: va_list
#include <stdlib.h>  // defines: calloc, realloc, free, getenv, strtod
#include <string.h>  // defines: strrchr, snprintf, strcmp, memset
#include <sys/stat.h> // defines: stat, S_ISDIR
#include <unistd.h>  // defines: isatty, fileno, access

#include "checkpoint.h"
#include "config_keys.h"
#include "cpu.h"
#include "featfile.h"
#include "hooks.h"
#include "tune.h"
#include "step.h"
#include "sys.h"
#include "trace.h"
#include "trace_gather.h"

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
    static const char *const precisions[] = {"fp32", "bf16", NULL};
    int precision;
    SN_FORWARD(sn_section_choice(cfg, t, "precision", "fp32", precisions, &precision, err));
    tc->bf16 = precision == 1;
    SN_FORWARD(sn_section_int(cfg, t, "steps_per_epoch", 0, 0, 1 << 30, &tc->steps_per_epoch, err));
    SN_FORWARD(sn_section_int(cfg, t, "validation_batch_size", 0, 0, 1 << 20,
                              &tc->validation_batch_size, err));
    if (tc->validation_batch_size == 0)
        tc->validation_batch_size = tc->batch_size;
    /* long enough for the slowest step of a real run and the end of an epoch, short enough
       that a hung job does not hold its allocation for long */
    SN_FORWARD(sn_section_float(cfg, t, "watchdog", 300, 0, 1e7, &tc->watchdog, err));

    const struct sn_section *c = sn_config_find(cfg, "checkpoint");
    SN_FORWARD(sn_section_string(cfg, c, "dir", ".", tc->ckpt_dir, sizeof tc->ckpt_dir, err));
    SN_FORWARD(sn_section_int(cfg, c, "save_every", 0, 0, 1 << 30, &tc->save_every, err));
    const char *base = strrchr(cfg->path, '/');
    base = base ? base + 1 : cfg->path;
    char def_name[512];
    snprintf(def_name, sizeof def_name, "%s", base);
    char *dot = strrchr(def_name, '.');
    if (dot && dot != def_name)
        *dot = '\0';
    SN_FORWARD(sn_section_string(cfg, c, "name", def_name, tc->run_name, sizeof tc->run_name, err));
    return sn_callbacks_conf_parse(&tc->cb, cfg, err);
}

/* The label format a loss reads, as Keras's label_mode names it. */
static const char *const loss_label_mode[] = {"int", "categorical", "binary"};
static const char *const loss_names[] = {"sparse_categorical_crossentropy",
                                         "categorical_crossentropy", "binary_crossentropy"};

/* Data, network and loss fit together: the image shape, and label_mode with the loss. */
static int check_fit(const struct sn_settings *st, const struct sn_config *cfg,
                     const struct sn_model *m, struct sn_err *err)
{
    const struct sn_data_conf *dc = &st->dc;
    if (dc->height == 0 && sn_config_find(cfg, "data") == NULL)
        return SN_OK; /* no [data]: a network without images (summary) */
    if (dc->features[0] && (dc->height != m->input.h || dc->width != m->input.w ||
                            dc->channels != m->input.c))
        return sn_err_set(err, SN_EINVAL,
                          "%s: the feature file %s ([data] features, %s) holds samples of "
                          "(%d, %d, %d), the model's input_shape is (%d, %d, %d): features of "
                          "another base?",
                          cfg->path, dc->features, dc->features_where, dc->height, dc->width,
                          dc->channels, m->input.h, m->input.w, m->input.c);
    if (dc->features[0] && st->ac.enabled)
        return sn_config_error(cfg, sn_config_find(cfg, "augment"), NULL, err, SN_EINVAL,
                               "[augment] with [data] features: features are computed once, "
                               "from unaugmented images; HINT: augment with a frozen base "
                               "instead (configs/vgg16_frozen.cfg)");
    if (dc->height != m->input.h || dc->width != m->input.w || dc->channels != m->input.c)
        return sn_err_set(err, SN_EINVAL,
                          "%s: [data] gives %dx%dx%d images, the model expects %dx%dx%d",
                          cfg->path, dc->height, dc->width, dc->channels, m->input.h, m->input.w,
                          m->input.c);
    if (dc->label_mode_set && (int)dc->label_mode != (int)m->loss)
        return sn_config_error(cfg, sn_config_find(cfg, "data"), "label_mode", err, SN_EINVAL,
                               "label_mode = %s gives labels for %s, but [train] loss = %s; "
                               "HINT: use label_mode = %s, or leave it out",
                               loss_label_mode[dc->label_mode], loss_names[dc->label_mode],
                               loss_names[m->loss], loss_label_mode[m->loss]);
    if (m->loss == SN_LOSS_BCE && dc->n_class_names && dc->n_class_names != 2)
        return sn_config_error(cfg, sn_config_find(cfg, "data"), "class_names", err, SN_EINVAL,
                               "%d classes listed, but binary_crossentropy needs exactly 2",
                               dc->n_class_names);
    return SN_OK;
}

int sn_settings_load(struct sn_settings *st, const struct sn_config *cfg, int max_batch,
                     struct sn_model **model, struct sn_err *err)
{
    memset(st, 0, sizeof *st);
    SN_FORWARD(sn_train_conf_parse(&st->tc, cfg, err));
    SN_FORWARD(sn_data_conf_parse(&st->dc, cfg, err));
    SN_FORWARD(sn_augment_conf_parse(&st->ac, cfg, err));
    SN_FORWARD(sn_optim_conf_parse(&st->oc, cfg, err));
    const struct sn_section *ms = sn_config_find(cfg, "model");
    static const char *const backends[] = {"auto", "blas", "onednn", "winograd", "ref", NULL};
    int b;
    SN_FORWARD(sn_section_choice(cfg, ms, "backend", "auto", backends, &b, err));
    st->auto_backend = b == 0;
    st->ops = b == 0 ? &sn_ops_blas : sn_ops_by_name(backends[b]);
    struct sn_model *m;
    SN_FORWARD(sn_model_build(&m, cfg, max_batch > 0 ? max_batch : 1, st->ops, err));
    int rc = check_fit(st, cfg, m, err);
    if (rc == SN_OK)
        rc = sn_config_check_unused(cfg, err);
    rc = rc == SN_OK ? sn_config_keys_check(cfg, err) : rc; /* every key read is documented */
    if (rc == SN_OK && model)
        *model = m;
    else
        sn_model_free(m);
    return rc;
}

int sn_settings_check_cpu(const struct sn_settings *st, const struct sn_config *cfg,
                          struct sn_err *err)
{
    if (!st->tc.bf16 || sn_ops_bf16_native())
        return SN_OK;
    char isa[128];
    sn_ops_onednn_describe(isa, sizeof isa);
    return sn_config_error(cfg, sn_config_find(cfg, "train"), "precision", err, SN_EINVAL,
                           "bf16 needs a CPU with AVX-512 BF16 or AMX; this one "
                           "runs %s. HINT: precision = fp32",
                           isa);
}

/* The classes of a split against the network's outputs: one unit per class, or one sigmoid unit
 * for exactly two classes. */
static int check_classes(const struct sn_model *m, int n_classes, const char *where,
                         struct sn_err *err)
{
    if (m->loss == SN_LOSS_BCE && n_classes != 2)
        return sn_err_set(err, SN_EINVAL,
                          "%s has %d classes, but loss = binary_crossentropy needs exactly 2\n"
                          "---> HINT: use sparse_categorical_crossentropy with a last layer of "
                          "%d units",
                          where, n_classes, n_classes);
    if (m->loss != SN_LOSS_BCE && n_classes != m->n_outputs)
        return sn_err_set(err, SN_EINVAL,
                          "%s has %d classes but the last layer has %d units\n---> HINT: set the "
                          "last layer's units to %d",
                          where, n_classes, m->n_outputs, n_classes);
    return SN_OK;
}

/* ---------------------------------------------------------------- console */

/* Rank 0's progress and every rank's skipped-file reports. With a terminal (and no launcher
 * in between, whose pipes only look like one) a Keras bar is redrawn in place; otherwise —
 * a log file, mpirun, srun — every line is whole: one per epoch and a short one every minute. */
struct console {
    FILE *out;
    int quiet;          /* no progress from this rank */
    int bar;            /* redraw a bar with carriage returns */
    pthread_mutex_t mu; /* the loader's workers report from their threads */
    int open;           /* a bar is on screen without its newline */
    int steps, done;
    double t0, last;
};

#define PROGRESS_LINE_SECONDS 60.0

static void con_init(struct console *c, FILE *out, int quiet, int launched)
{
    memset(c, 0, sizeof *c);
    c->out = out;
    c->quiet = quiet;
    c->bar = !quiet && isatty(fileno(out)) && !launched;
    pthread_mutex_init(&c->mu, NULL);
}

/* Ends a bar's line (lock held). */
static void con_break(struct console *c)
{
    if (c->open) {
        fputc('\n', c->out);
        c->open = 0;
    }
}

/* A line of rank 0's output, on a line of its own. */
static void con_say(struct console *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void con_say(struct console *c, const char *fmt, ...)
{
    if (c->quiet)
        return;
    pthread_mutex_lock(&c->mu);
    con_break(c);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(c->out, fmt, ap);
    va_end(ap);
    fflush(c->out);
    pthread_mutex_unlock(&c->mu);
}

/* The loader's report of a skipped file (sn_loader_conf.report), from a worker thread. */
static void con_report(void *user, const char *msg)
{
    struct console *c = user;
    pthread_mutex_lock(&c->mu);
    con_break(c);
    fflush(c->out);
    fprintf(stderr, "shardnet: skipping %s\n", msg);
    fflush(stderr);
    pthread_mutex_unlock(&c->mu);
}

static void con_epoch(struct console *c, int steps, double seconds_before)
{
    c->steps = steps;
    c->t0 = sn_now() - seconds_before;
    c->last = sn_now();
}

/* Keras's " 469/782 [=====>......] - ETA: 5s - loss: 0.4521 - accuracy: 0.8345", or without a
 * terminal "  469/782 - 61s - loss: ..." once a minute. */
static void con_progress(struct console *c, int done, double loss, double acc)
{
    double t = sn_now();
    if (c->quiet || t - c->last < (c->bar ? 0.2 : PROGRESS_LINE_SECONDS))
        return;
    c->last = t;
    pthread_mutex_lock(&c->mu);
    double el = t - c->t0;
    if (c->bar) {
        char bar[40];
        int width = 30, fill = c->steps ? (int)((long long)done * width / c->steps) : width;
        for (int i = 0; i < width; i++)
            bar[i] = i < fill - 1 ? '=' : i == fill - 1 ? '>' : '.';
        bar[width] = '\0';
        fprintf(c->out, "\r%5d/%d [%s] - ETA: %.0fs - loss: %.4f - accuracy: %.4f", done,
                c->steps, bar, done ? el / done * (c->steps - done) : 0.0, loss, acc);
        c->open = 1;
    } else {
        fprintf(c->out, "%7d/%d - %.0fs - loss: %.4f - accuracy: %.4f\n", done, c->steps, el,
                loss, acc);
    }
    fflush(c->out);
    pthread_mutex_unlock(&c->mu);
}

/* The epoch's line: "782/782 [====] - 95s 121ms/step - loss: ... - val_accuracy: 0.9023": the
 * epoch's seconds with validation, the training steps' time per step. */
static void con_epoch_line(struct console *c, int done, double seconds, double train_seconds,
                           double loss, double acc, double val_loss, double val_acc)
{
    if (c->quiet)
        return;
    pthread_mutex_lock(&c->mu);
    if (c->bar)
        fprintf(c->out, "\r%5d/%d [==============================]", done, c->steps);
    else
        fprintf(c->out, "%7d/%d", done, c->steps);
    fprintf(c->out,
            " - %.0fs %.0fms/step - loss: %.4f - accuracy: %.4f - val_loss: %.4f - "
            "val_accuracy: %.4f\n",
            seconds, done ? 1e3 * train_seconds / done : 0.0, loss, acc, val_loss, val_acc);
    c->open = 0;
    fflush(c->out);
    pthread_mutex_unlock(&c->mu);
}

/* ---------------------------------------------------------------- the run and its record */

/* Everything that decides the rest of a run besides the parameters and optimizer moments:
 * saved whole in every checkpoint, broadcast from rank 0 after a resume and after each epoch. */
struct run_state {
    int32_t epoch;        /* epochs completed */
    int32_t finished;     /* early stopping ended the run */
    int64_t step;         /* optimizer updates made */
    int64_t pos;          /* samples of the current epoch trained on */
    double lr_scale;      /* ReduceLROnPlateau's changes, multiplied */
    double loss, correct, samples, bad; /* the current epoch so far, summed over ranks */
    double seconds, data_wait;          /* the current epoch so far (rank 0's data wait) */
    struct sn_callbacks_state cb;
};

#define HISTORY_COLS 7 /* epoch, loss, accuracy, val_loss, val_accuracy, lr, seconds */

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
    struct console con;
    struct run_state rs;
    int steps;                        /* per epoch */
    int env_threads;                  /* $SN_THREADS, 0 if unset */
    double (*history)[HISTORY_COLS];  /* owned (rank 0), n_hist rows */
    int n_hist;
    char last_path[1600], best_path[1600], history_path[1600];
};

/* Keys that say how a run computes or where its files are, not what it computes: they may
 * change between a checkpoint and the run that continues it. The data's identity is checked by
 * fingerprint instead of by path (a cluster job may find its data staged elsewhere). */
static const char *const free_keys[] = {
    "train.epochs",   "train.threads",    "train.watchdog", "data.threads",
    "data.queue_depth", "data.dir",       "data.train",     "data.val",
    "data.test",      "model.backend",    "checkpoint.dir", "checkpoint.name",
    "checkpoint.save_every", "data.index_cache", NULL};

static int is_free_key(const char *name)
{
    for (int i = 0; free_keys[i]; i++)
        if (strcmp(free_keys[i], name) == 0)
            return 1;
    return 0;
}

static void record_config_line(void *user, const char *section, const char *key,
                               const char *value)
{
    sn_record_add(user, "config", "%s.%s=%s", section, key, value);
}

static void record_classes(struct sn_record *rec, const struct sn_dataset *ds)
{
    for (int c = 0; c < ds->n_classes; c++)
        sn_record_add(rec, "class", "%s", ds->class_names[c]);
}

int sn_record_imported(const struct sn_config *cfg, const struct sn_settings *st,
                       const char *from, struct sn_record *rec, struct sn_err *err)
{
    sn_config_each_resolved(cfg, record_config_line, rec);
    for (int c = 0; c < st->dc.n_class_names; c++)
        sn_record_add(rec, "class", "%s", st->dc.class_names[c]);
    sn_record_add(rec, "imported_from", "%s", from);
    sn_record_add(rec, "finished", "%d", 0);
    SN_RETURN_IF(rec->failed, err, SN_ENOMEM, "out of memory for the run record");
    return SN_OK;
}

/* The run record of a checkpoint written now. */
static int record_run(const struct run *r, struct sn_record *rec, struct sn_err *err)
{
    const struct run_state *rs = &r->rs;
    sn_config_each_resolved(r->cfg, record_config_line, rec);
    record_classes(rec, r->train_ds);
    sn_record_add(rec, "train_files", "%d", r->train_ds->n);
    sn_record_add(rec, "train_fingerprint", "%016llx", (unsigned long long)r->train_ds->fingerprint);
    sn_record_add(rec, "val_files", "%d", r->val_ds->n);
    sn_record_add(rec, "val_fingerprint", "%016llx", (unsigned long long)r->val_ds->fingerprint);
    sn_record_add(rec, "finished", "%d", rs->finished);
    sn_record_add(rec, "lr_scale", "%a", rs->lr_scale);
    sn_record_add(rec, "epoch.loss", "%a", rs->loss);
    sn_record_add(rec, "epoch.correct", "%a", rs->correct);
    sn_record_add(rec, "epoch.samples", "%a", rs->samples);
    sn_record_add(rec, "epoch.bad", "%a", rs->bad);
    sn_record_add(rec, "epoch.seconds", "%a", rs->seconds);
    sn_record_add(rec, "epoch.data_wait", "%a", rs->data_wait);
    sn_callbacks_save(&rs->cb, rec);
    for (int i = 0; i < r->n_hist; i++) {
        const double *h = r->history[i];
        sn_record_add(rec, "history", "%a,%a,%a,%a,%a,%a,%a", h[0], h[1], h[2], h[3], h[4], h[5],
                      h[6]);
    }
    SN_RETURN_IF(rec->failed, err, SN_ENOMEM, "out of memory for the run record");
    return SN_OK;
}

/* Reads the run state and history of a record (rank 0). */
static int read_run(struct run *r, const char *rec, const char *path, struct sn_err *err)
{
    struct run_state *rs = &r->rs;
    double finished;
    if (sn_record_double(rec, "finished", 0, &finished) ||
        sn_record_double(rec, "lr_scale", 0, &rs->lr_scale) ||
        sn_record_double(rec, "epoch.loss", 0, &rs->loss) ||
        sn_record_double(rec, "epoch.correct", 0, &rs->correct) ||
        sn_record_double(rec, "epoch.samples", 0, &rs->samples) ||
        sn_record_double(rec, "epoch.bad", 0, &rs->bad) ||
        sn_record_double(rec, "epoch.seconds", 0, &rs->seconds) ||
        sn_record_double(rec, "epoch.data_wait", 0, &rs->data_wait))
        return sn_err_set(err, SN_EFORMAT, "%s: the run record lacks the run's state", path);
    rs->finished = finished != 0;
    SN_FORWARD(sn_callbacks_load(&rs->cb, rec, path, err));
    int n = sn_record_count(rec, "history");
    r->history = calloc((size_t)n + 1, sizeof *r->history);
    SN_RETURN_IF(!r->history, err, SN_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        char v[1024];
        double *h = r->history[i];
        sn_record_get(rec, "history", i, v, sizeof v);
        char *p = v, *end;
        for (int k = 0; k < HISTORY_COLS; k++) {
            h[k] = strtod(p, &end);
            SN_RETURN_IF(end == p || (*end != ',' && k < HISTORY_COLS - 1), err, SN_EFORMAT,
                         "%s: history row %d of the run record is malformed", path, i + 1);
            p = end + 1;
        }
    }
    r->n_hist = n;
    return SN_OK;
}

/* The class names of a record: *names (malloc'ed, n rows), or *n = 0 for a record without. */
static int record_class_names(const char *rec, char (**names)[64], int *n, struct sn_err *err)
{
    *n = sn_record_count(rec, "class");
    *names = calloc((size_t)*n + 1, sizeof **names);
    SN_RETURN_IF(!*names, err, SN_ENOMEM, "out of memory");
    for (int i = 0; i < *n; i++)
        sn_record_get(rec, "class", i, (*names)[i], sizeof (*names)[i]);
    return SN_OK;
}

/* The current config's resolved keys, as "section.key=value" lines. */
struct resolved_list {
    int n, cap;
    char **v;
};

static void collect_resolved(void *user, const char *section, const char *key, const char *value)
{
    struct resolved_list *l = user;
    if (l->n == l->cap) {
        int cap = l->cap ? 2 * l->cap : 64;
        char **v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v)
            return;
        l->v = v;
        l->cap = cap;
    }
    char buf[SN_CFG_VALUE_MAX + 2 * SN_CFG_NAME_MAX];
    snprintf(buf, sizeof buf, "%s.%s=%s", section, key, value);
    if ((l->v[l->n] = strdup(buf)) != NULL)
        l->n++;
}

/* Appends "  [section] key: A in the checkpoint, B now" for one differing key. */
static void describe_change(char *msg, size_t cap, const char *name, const char *then,
                            const char *now)
{
    size_t len = strlen(msg);
    const char *dot = strchr(name, '.');
    int sec = dot ? (int)(dot - name) : 0;
    if (len + 8 < cap)
        snprintf(msg + len, cap - len, "\n    [%.*s] %s: %s in the checkpoint, %s now", sec, name,
                 dot ? dot + 1 : name, then ? then : "absent", now ? now : "absent");
}

/* The keys whose values differ between the checkpoint's config (its record) and cfg, free keys
 * aside, appended to msg. @return their number. */
static int config_changes(const struct sn_config *cfg, const char *rec, char *msg, size_t cap)
{
    struct resolved_list now = {0};
    sn_config_each_resolved(cfg, collect_resolved, &now);
    int changes = 0, n_then = sn_record_count(rec, "config");
    char then[SN_CFG_VALUE_MAX + 2 * SN_CFG_NAME_MAX];
    for (int i = 0; i < now.n; i++) {
        char *eq = strchr(now.v[i], '=');
        *eq = '\0';
        const char *found = NULL;
        for (int j = 0; j < n_then && !found; j++) {
            sn_record_get(rec, "config", j, then, sizeof then);
            char *e = strchr(then, '=');
            if (e && (*e = '\0', strcmp(then, now.v[i]) == 0))
                found = e + 1;
        }
        if (!is_free_key(now.v[i]) && (!found || strcmp(found, eq + 1) != 0)) {
            describe_change(msg, cap, now.v[i], found, eq + 1);
            changes++;
        }
        *eq = '=';
    }
    for (int j = 0; j < n_then; j++) {
        sn_record_get(rec, "config", j, then, sizeof then);
        char *e = strchr(then, '=');
        if (!e)
            continue;
        *e = '\0';
        int present = 0;
        size_t len = strlen(then);
        for (int i = 0; i < now.n && !present; i++)
            present = strncmp(now.v[i], then, len) == 0 && now.v[i][len] == '=';
        if (!present && !is_free_key(then)) {
            describe_change(msg, cap, then, e + 1, NULL);
            changes++;
        }
    }
    for (int i = 0; i < now.n; i++)
        free(now.v[i]);
    free(now.v);
    return changes;
}

/* Whether the data of a record is the data of this run: class names (always), the training
 * and validation files. Differences are appended to msg; @return 2 for other classes, 1 for
 * other files, 0 for the same data. */
static int data_changes(const struct run *r, const char *rec, char *msg, size_t cap)
{
    int n_names;
    char (*names)[64];
    struct sn_err ignored;
    if (record_class_names(rec, &names, &n_names, &ignored) != SN_OK)
        return 2;
    int other = n_names != r->train_ds->n_classes;
    for (int i = 0; i < n_names && !other; i++)
        other = strcmp(names[i], r->train_ds->class_names[i]) != 0;
    size_t len = strlen(msg);
    if (other && len + 8 < cap)
        len += (size_t)snprintf(msg + len, cap - len,
                                "\n    classes: %d in the checkpoint (%s%s), %d now (%s%s)",
                                n_names, n_names ? names[0] : "", n_names > 1 ? ", ..." : "",
                                r->train_ds->n_classes, r->train_ds->class_names[0],
                                r->train_ds->n_classes > 1 ? ", ..." : "");
    free(names);
    if (other)
        return 2;
    int changed = 0;
    const struct sn_dataset *sets[2] = {r->train_ds, r->val_ds};
    static const char *const what[2] = {"train", "val"};
    for (int k = 0; k < 2; k++) {
        char key[32], v[64];
        double files = -1;
        snprintf(key, sizeof key, "%s_files", what[k]);
        sn_record_double(rec, key, 0, &files);
        snprintf(key, sizeof key, "%s_fingerprint", what[k]);
        char now[32];
        snprintf(now, sizeof now, "%016llx", (unsigned long long)sets[k]->fingerprint);
        if (!sn_record_get(rec, key, 0, v, sizeof v) || strcmp(v, now) != 0) {
            changed = 1;
            len = strlen(msg);
            if (len + 8 < cap)
                snprintf(msg + len, cap - len,
                         "\n    %s split: %.0f files in the checkpoint, %d now in %s (%s)", what[k],
                         files, sets[k]->n, sets[k]->root,
                         (long long)files == sets[k]->n ? "other files" : "other count");
        }
    }
    return changed;
}

/* The model's parameters and state (and the optimizer's moments when opt != NULL) from a
 * checkpoint of this network. */
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

/* Writes a checkpoint of the run as it is now (rank 0). */
/* [base] checkpoint: the base's weights into the prefix of params and state, for a run that
 * starts fresh (a resume has them in its own checkpoint). The file must hold the base alone:
 * as many parameters and statistics as the base's layers. */
static int load_base(struct sn_model *m, struct sn_err *err)
{
    if (m->n_base == 0 || !m->base_checkpoint[0])
        return SN_OK;
    const char *path = m->base_checkpoint;
    struct sn_ckpt_meta meta;
    SN_FORWARD(sn_checkpoint_read_meta(path, &meta, err));
    SN_RETURN_IF(meta.n_params != m->base_params || meta.n_state != m->base_state, err, SN_EINVAL,
                 "[base] checkpoint %s holds %llu parameters and %llu statistics; the base %s "
                 "has %zu and %zu: a checkpoint of another network?",
                 path, (unsigned long long)meta.n_params, (unsigned long long)meta.n_state,
                 m->base_config, m->base_params, m->base_state);
    float *p = malloc((m->base_params + 1) * sizeof(float));
    float *s = malloc((m->base_state + 1) * sizeof(float));
    int rc = p && s ? sn_checkpoint_load(path, &meta, p, (int64_t)m->base_params, s,
                                         (int64_t)m->base_state, NULL, -1, err)
                    : sn_err_set(err, SN_ENOMEM, "out of memory");
    if (rc == SN_OK) {
        memcpy(m->params, p, m->base_params * sizeof(float));
        memcpy(m->state, s, m->base_state * sizeof(float));
    }
    free(p);
    free(s);
    return rc;
}

static int save_ckpt(const struct run *r, const char *path, double val_loss, struct sn_err *err)
{
    struct sn_record rec = {0};
    int rc = record_run(r, &rec, err);
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

static int write_history(const char *path, const double (*rows)[HISTORY_COLS], int n,
                         struct sn_err *err)
{
    struct sn_atomic_file af;
    SN_FORWARD(sn_atomic_open(&af, path, err));
    fprintf(af.f, "epoch,loss,accuracy,val_loss,val_accuracy,lr,seconds\n");
    for (int i = 0; i < n; i++) {
        const double *row = rows[i];
        fprintf(af.f, "%d,%.6f,%.6f,%.6f,%.6f,%.6g,%.2f\n", (int)row[0], row[1], row[2], row[3],
                row[4], row[5], row[6]);
    }
    return sn_atomic_commit(&af, err);
}

/* ---------------------------------------------------------------- agreement */

/* Makes a failure of some ranks every rank's, before any rank waits in a later collective: the
 * lowest failing rank keeps its message, the others return SN_EMPI with none; all mark the
 * error collective, so that every rank ends normally. @return the outcome on this rank. */
static int agree(struct sn_dist *d, int rc, struct sn_err *err)
{
    int flag = rc != SN_OK ? d->world - d->rank : 0;
    struct sn_err agree_err = {0};
    if (sn_dist_allreduce_max_int(d, &flag, &agree_err) != SN_OK) {
        *err = agree_err;
        return err->code;
    }
    if (flag == 0)
        return SN_OK;
    if (d->rank != d->world - flag) {
        sn_err_set(err, SN_EMPI, "%s", "");
        rc = SN_EMPI;
    }
    err->collective = 1;
    return rc;
}

/* An error every rank met at the same point: rank 0 reports it. */
static int collective_error(const struct sn_dist *d, int rc, struct sn_err *err)
{
    if (d->rank != 0)
        err->msg[0] = '\0';
    err->collective = 1;
    return rc;
}

/* Compute threads per rank: [train] threads, else $SN_THREADS (what `shardnet-run --threads`
 * exports), else the node's cores shared among its ranks. Rank 0 prints one line per rank
 * (host, rank, threads, CPUs it may run on). */
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
    int threads = r->st.tc.threads;
    if (threads == 0)
        threads = r->env_threads;
    if (threads == 0) {
        /* ranks bound to one core each get 1; unbound ranks share the node's cores */
        int node_cpus = ncpu > 0 ? ncpu : 1;
        threads = ncpu < d->local_size * 2 && ncpu <= 1 ? 1 : node_cpus / d->local_size;
        if (threads < 1)
            threads = 1;
    }
    sn_ops_set_threads(threads);
    char line[512];
    snprintf(line, sizeof line,
             "rank %d of %d on %s: %d compute thread%s, %d data thread%s, CPUs %s, %s", d->rank,
             d->world, d->host, threads, threads > 1 ? "s" : "", r->st.dc.threads,
             r->st.dc.threads > 1 ? "s" : "", cpus[0] ? cpus : "?", sn_cpu_kernels());
    char *all = calloc((size_t)d->world, sizeof line);
    SN_RETURN_IF(!all, err, SN_ENOMEM, "out of memory");
    int rc = sn_dist_allgather(d, line, all, sizeof line, err);
    if (rc == SN_OK && d->rank == 0)
        for (int i = 0; i < d->world; i++)
            con_say(&r->con, "%s\n", all + (size_t)i * sizeof line);
    free(all);
    return rc;
}


/* ---------------------------------------------------------------- set-up */

static int open_data(struct run *r, struct sn_err *err)
{
    const struct sn_settings *st = &r->st;
    const struct sn_train_conf *tc = &st->tc;
    struct sn_dist *d = r->d;
    SN_FORWARD(sn_dataset_open_shared(&r->train_ds, d, &st->dc, SN_SPLIT_TRAIN, NULL, err));
    SN_FORWARD(check_classes(r->model, r->train_ds->n_classes, r->train_ds->root, err));
    /* the training split fixes the model's classes; validation is labelled by their names */
    struct sn_classes known = {r->train_ds->n_classes,
                               (const char(*)[64])r->train_ds->class_names};
    SN_FORWARD(sn_dataset_open_shared(&r->val_ds, d, &st->dc, SN_SPLIT_VAL, &known, err));
    if (d->rank == 0 && !r->con.quiet) {
        sn_dataset_describe(r->train_ds, &st->dc, SN_SPLIT_TRAIN, r->con.out);
        sn_dataset_describe(r->val_ds, &st->dc, SN_SPLIT_VAL, r->con.out);
        char missing[512];
        int n = sn_dataset_missing(r->val_ds, missing, sizeof missing);
        if (n > 0)
            con_say(&r->con, "note: %s lacks %d of the %d classes: %s\n", r->val_ds->root, n,
                    r->val_ds->n_classes, missing);
    }
    struct sn_loader_conf lc = {.ds = r->train_ds, .dc = &st->dc,
                                .aug = st->ac.enabled ? &st->ac : NULL,
                                .global_batch = tc->batch_size, .rank = d->rank,
                                .world = d->world, .shuffle = tc->shuffle, .seed = tc->seed,
                                .report = con_report, .report_user = &r->con};
    SN_FORWARD(sn_loader_create(&r->train_ld, &lc, err));
    struct sn_loader_conf vc = {.ds = r->val_ds, .dc = &st->dc,
                                .global_batch = tc->validation_batch_size, .rank = d->rank,
                                .world = d->world, .shuffle = 0, .seed = tc->seed,
                                .report = con_report, .report_user = &r->con};
    SN_FORWARD(sn_loader_create(&r->val_ld, &vc, err));
    r->steps = sn_loader_steps(r->train_ld);
    if (tc->steps_per_epoch > 0 && tc->steps_per_epoch < r->steps)
        r->steps = tc->steps_per_epoch;
    return SN_OK;
}

static int setup(struct run *r, struct sn_err *err)
{
    struct sn_dist *d = r->d;
    /* sized from [train] before the settings are read: a first pass for the batch sizes */
    struct sn_train_conf tc0;
    SN_FORWARD(sn_train_conf_parse(&tc0, r->cfg, err));
    int local = (tc0.batch_size + d->world - 1) / d->world;
    int vlocal = (tc0.validation_batch_size + d->world - 1) / d->world;
    SN_FORWARD(sn_settings_load(&r->st, r->cfg, local > vlocal ? local : vlocal, &r->model, err));
    SN_FORWARD(sn_settings_check_cpu(&r->st, r->cfg, err));
    const struct sn_train_conf *tc = &r->st.tc;
    const char *env = getenv("SN_THREADS");
    if (env) {
        char *end;
        long v = strtol(env, &end, 10);
        SN_RETURN_IF(*end != '\0' || v < 1 || v > 1024, err, SN_EINVAL,
                     "SN_THREADS=%s: expected a number of threads from 1 to 1024", env);
        r->env_threads = (int)v;
    }
    SN_FORWARD(sn_optim_create(&r->opt, &r->st.oc, r->model->n_params, err));
    SN_FORWARD(sn_step_init(&r->step, d, r->model, r->opt, local, err));
    snprintf(r->last_path, sizeof r->last_path, "%s/%s-last.ckpt", tc->ckpt_dir, tc->run_name);
    snprintf(r->best_path, sizeof r->best_path, "%s/%s-best.ckpt", tc->ckpt_dir, tc->run_name);
    snprintf(r->history_path, sizeof r->history_path, "%s/history.csv", tc->ckpt_dir);
    int rc = SN_OK;
    if (d->rank == 0) {
        /* a directory that is a file, read-only or full is found now, not after an epoch:
           room for `last`, `best` and one temporary file */
        uint64_t floats = r->model->n_params + r->model->n_state +
                          (uint64_t)r->opt->n_slots * r->opt->n_params;
        char what[1200];
        sn_config_where(r->cfg, sn_config_find(r->cfg, "checkpoint"), "dir", what, sizeof what);
        char role[1300];
        snprintf(role, sizeof role, "checkpoint directory ([checkpoint] dir, %s)", what);
        rc = sn_probe_dir(tc->ckpt_dir, role, 3 * 4 * floats + (1 << 20), err);
        if (rc == SN_OK && r->opts->trace)
            rc = sn_trace_probe(r->opts->trace, err);
        if (rc == SN_OK) {
            sn_remove_stale(tc->ckpt_dir, tc->run_name);
            sn_remove_stale(tc->ckpt_dir, "history.csv");
        }
    }
    /* rank 0's checks are everyone's before the data is opened, which is collective: a rank 0
       that stopped here alone would leave the others waiting for its listing */
    SN_FORWARD(agree(d, rc, err));
    return open_data(r, err);
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
    free(r->history);
    pthread_mutex_destroy(&r->con.mu);
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

/* ---------------------------------------------------------------- resume */

enum start { START_FRESH = 0, START_RESUMED, START_NOTHING_LEFT };

/* Rank 0: the checkpoint that continues this run, checked to belong to it, loaded. */
static int resume_rank0(struct run *r, int *start, struct sn_err *err)
{
    const struct sn_train_conf *tc = &r->st.tc;
    const char *path = r->opts->resume;
    *start = START_FRESH;
    if (path && strcmp(path, "auto") == 0)
        path = access(r->last_path, F_OK) == 0 ? r->last_path : NULL;
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
    int data = rec[0] ? data_changes(r, rec, changes, sizeof changes) : 0;
    int conf = rec[0] ? config_changes(r->cfg, rec, changes, sizeof changes) : 0;
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
        con_say(&r->con, "note: continuing %s with --allow-config-change; what differs:%s\n", path,
                changes);
    if (rc == SN_OK)
        rc = read_run(r, rec, path, err);
    free(rec);
    SN_FORWARD(rc);
    char where[600];
    sn_config_where(r->cfg, sn_config_find(r->cfg, "train"), "epochs", where, sizeof where);
    if (r->rs.finished || (meta.epoch == tc->epochs && meta.loader_pos == 0)) {
        con_say(&r->con, "%s: %s after epoch %d of %d; nothing left to train\n", path,
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
    SN_FORWARD(load_ckpt(r->model, r->opt, path, &meta, err));
    r->rs.epoch = meta.epoch;
    r->rs.step = meta.step;
    r->rs.pos = meta.loader_pos;
    con_say(&r->con, "Resuming from %s: epoch %d, step %lld\n", path, meta.epoch + 1,
            (long long)meta.step);
    *start = START_RESUMED;
    return SN_OK;
}

/* ---------------------------------------------------------------- the fit loop */

/* Batch-norm statistics drift apart on each rank's slices: every rank takes their average. */
static int average_state(struct run *r, struct sn_err *err)
{
    struct sn_model *m = r->model;
    if (r->d->world == 1 || m->n_state == 0)
        return SN_OK;
    SN_FORWARD(sn_dist_allreduce_sum(r->d, m->state, m->n_state, err));
    for (size_t i = 0; i < m->n_state; i++)
        m->state[i] /= (float)r->d->world;
    return SN_OK;
}

/* Every rank: statistics averaged, rank 0 writes `last`, its outcome is everyone's. */
static int save_last(struct run *r, struct sn_err *err)
{
    SN_FORWARD(average_state(r, err));
    int rc = r->d->rank == 0 ? save_ckpt(r, r->last_path, NAN, err) : SN_OK;
    return agree(r->d, rc, err);
}

/* Runs the model over a whole loader epoch (no augmentation, in order). sums: this rank's loss
 * sum, correct rows, rows evaluated and files skipped. */
static int evaluate_loader(struct sn_model *m, struct sn_loader *ld, double sums[4],
                           struct sn_err *err)
{
    memset(sums, 0, 4 * sizeof *sums);
    SN_FORWARD(sn_loader_start_epoch(ld, 0, err));
    struct sn_step_ctx ctx = {.ops = m->ops, .scratch = m->scratch, .training = 0};
    long long correct = 0;
    for (;;) {
        struct sn_batch *b;
        double t0 = sn_trace_clock();
        SN_FORWARD(sn_loader_next(ld, &b, err));
        sn_trace_end(SN_TRACE_DATA, "validation data", -1, t0);
        if (!b)
            break;
        if (b->n > 0) {
            ctx.sample_ids = b->ids;
            const float *logits = sn_model_forward(m, b->x, b->n, &ctx);
            sums[0] += sn_loss(m->loss, logits, b->y, b->ok, b->n, m->n_outputs, 0, NULL, &correct);
            sums[2] += b->n - b->n_bad;
            sums[3] += b->n_bad;
        }
        sn_loader_release(ld, b);
    }
    sums[1] = (double)correct;
    return SN_OK;
}

static void eval_result(const double sums[4], struct sn_eval_result *res)
{
    res->n = (long long)sums[2];
    res->skipped = (long long)sums[3];
    res->loss = res->n ? sums[0] / res->n : NAN;
    res->accuracy = res->n ? sums[1] / res->n : NAN;
}

static int train_epoch(struct run *r, int epoch, struct sn_err *err)
{
    struct run_state *rs = &r->rs;
    const struct sn_train_conf *tc = &r->st.tc;
    struct sn_dist *d = r->d;
    int first = (int)(rs->pos / tc->batch_size);
    con_say(&r->con, "Epoch %d/%d\n", epoch + 1, tc->epochs);
    con_epoch(&r->con, r->steps, rs->seconds);
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
            return collective_error(d, rc, err);
        SN_FORWARD(rc);
        rs->step++;
        rs->pos = (int64_t)(s + 1) * tc->batch_size;
        rs->loss += out.loss;
        rs->correct += out.correct;
        rs->samples += out.samples;
        rs->bad += in.global_n - out.samples;
        con_progress(&r->con, s + 1, rs->loss / fmax(1, rs->samples),
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
            return collective_error(d, SN_ESTOP, err);
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
    struct run_state *rs = &r->rs;
    const struct sn_train_conf *tc = &r->st.tc;
    double loss = rs->loss / fmax(1, rs->samples), acc = rs->correct / fmax(1, rs->samples);
    double secs = rs->seconds + val_seconds;
    con_epoch_line(&r->con, r->steps, secs, rs->seconds, loss, acc, vr->loss, vr->accuracy);
    char skipped[128] = "";
    if (rs->bad > 0)
        snprintf(skipped, sizeof skipped, ", %.0f unreadable files skipped", rs->bad);
    if (vr->skipped > 0)
        snprintf(skipped + strlen(skipped), sizeof skipped - strlen(skipped),
                 ", %lld unreadable validation files skipped", vr->skipped);
    con_say(&r->con, "    data wait %.2fs (%.1f%% of the epoch), validated %lld images%s\n",
            rs->data_wait, 100 * rs->data_wait / fmax(1e-9, secs), vr->n, skipped);
    double *row = NULL;
    double (*h)[HISTORY_COLS] = realloc(r->history, (size_t)(r->n_hist + 1) * sizeof *h);
    SN_RETURN_IF(!h, err, SN_ENOMEM, "out of memory");
    r->history = h;
    row = h[r->n_hist++];
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
    SN_FORWARD(write_history(r->history_path, (const double(*)[HISTORY_COLS])r->history,
                             r->n_hist, err));
    if (tc->cb.save_best_only && res.improved) {
        SN_FORWARD(save_ckpt(r, r->best_path, val_loss, err));
        con_say(&r->con, "    val_loss improved from %.5f to %.5f, saved %s\n", best_before,
                val_loss, r->best_path);
    } else if (!tc->cb.save_best_only) {
        char path[1700];
        snprintf(path, sizeof path, "%s/%s-epoch%03d.ckpt", tc->ckpt_dir, tc->run_name, epoch + 1);
        SN_FORWARD(save_ckpt(r, path, val_loss, err));
        con_say(&r->con, "    saved %s\n", path);
    }
    SN_FORWARD(save_ckpt(r, r->last_path, val_loss, err));
    if (res.lr != lr && lr > 0)
        con_say(&r->con, "ReduceLROnPlateau: learning rate %.3g -> %.3g\n", lr, res.lr);
    if (res.stop)
        con_say(&r->con, "Epoch %d: early stopping (val_loss has not improved by more than %g "
                         "for %d epochs)\n",
                epoch + 1, tc->cb.es_min_delta, tc->cb.es_patience);
    return SN_OK;
}

/* Every rank: statistics averaged, validation sharded and summed, rank 0's part, and its
 * outcome broadcast. *stop is set when early stopping ended the run. */
static int end_epoch(struct run *r, int epoch, int *stop, struct sn_err *err)
{
    struct sn_dist *d = r->d;
    double t0 = sn_now(), t_val = sn_trace_clock();
    SN_FORWARD(average_state(r, err));
    double sums[4];
    SN_FORWARD(evaluate_loader(r->model, r->val_ld, sums, err));
    if (d->world > 1)
        SN_FORWARD(sn_dist_allreduce_sum_f64(d, sums, 4, err));
    sn_trace_end(SN_TRACE_VALIDATION, "validation", epoch + 1, t_val);
    struct sn_eval_result vr;
    eval_result(sums, &vr);
    int rc = d->rank == 0 ? end_epoch_rank0(r, epoch, &vr, sn_now() - t0, err) : SN_OK;
    /* rank 0's run state is everyone's; its failure too */
    struct {
        int32_t failed;
        struct run_state rs;
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
        rc = load_ckpt(m, NULL, r->opts->init, &meta, err);
        if (rc == SN_OK && !r->opts->quiet)
            con_say(&r->con, "initial weights from %s (epoch %d of the run that wrote it), a new "
                             "optimizer; %zu of %zu parameters frozen\n",
                    r->opts->init, meta.epoch, m->n_params - m->n_trainable, m->n_params);
    } else if (rc == SN_OK && d->rank == 0 && start == START_FRESH && m->base_checkpoint[0]) {
        rc = load_base(m, err);
        if (rc == SN_OK && !r->opts->quiet)
            con_say(&r->con, "base: %d layers of %s, weights from %s, %zu of %zu parameters "
                             "frozen\n",
                    m->n_base, m->base_config, m->base_checkpoint, m->n_params - m->n_trainable,
                    m->n_params);
    }
    SN_FORWARD(agree(d, rc, err));
    SN_FORWARD(check_same_model(r, err));
    /* rank 0's decision, run state and model (after a resume: and optimizer) are everyone's */
    struct {
        int32_t start;
        struct run_state rs;
    } msg = {start, r->rs};
    SN_FORWARD(sn_dist_bcast(d, &msg, sizeof msg, 0, err));
    if (msg.start == START_NOTHING_LEFT)
        return SN_OK;
    r->rs = msg.rs;
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
int sn_train_finish_trace(struct sn_dist *d, const char *path, int rc, FILE *note,
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
        fprintf(stderr, "shardnet: the trace was not written: %s\n", terr.msg);
    return rc;
}

/* This rank's share of a global batch of nb samples */
static int share(int nb, const struct sn_dist *d)
{
    int first, count;
    sn_shard_slice(nb, d->rank, d->world, &first, &count);
    return count;
}

/* The batches this rank meets besides tc->n: its share of a full training batch and of the
 * epoch's last, partial one, and the same for validation, so that sn_tune_prepare makes their
 * primitives before the first step. */
static void batch_shares(const struct run *r, struct sn_tune_conf *tc)
{
    const struct sn_train_conf *t = &r->st.tc;
    int n = r->train_ds->n, b = t->batch_size;
    tc->train_n[0] = share(n < b ? n : b, r->d);
    if (n > b && n % b && r->steps == sn_loader_steps(r->train_ld))
        tc->train_n[1] = share(n % b, r->d);
    int nv = r->val_ds->n, vb = t->validation_batch_size;
    tc->eval_n[0] = share(nv < vb ? nv : vb, r->d);
    if (nv > vb && nv % vb)
        tc->eval_n[1] = share(nv % vb, r->d);
}

int sn_train(const struct sn_config *cfg, struct sn_dist *d, const struct sn_train_opts *opts,
             struct sn_err *err)
{
    struct run *r = calloc(1, sizeof *r);
    SN_RETURN_IF(!r, err, SN_ENOMEM, "out of memory");
    r->cfg = cfg;
    r->d = d;
    r->opts = opts;
    con_init(&r->con, opts->out ? opts->out : stdout, d->rank != 0 || opts->quiet, d->launched);
    int rc = agree(d, setup(r, err), err);
    if (rc == SN_OK) {
        sn_dist_set_watchdog(d, r->st.tc.watchdog);
        rc = set_threads(r, err);
    }
    size_t prims = 0;
    if (rc == SN_OK) {
        int local = (r->st.tc.batch_size + d->world - 1) / d->world;
        struct sn_tune_conf tc = {.training = 1, .n = local, .threads = sn_ops_get_threads(),
                                  .bf16 = r->st.tc.bf16};
        batch_shares(r, &tc);
        if (r->st.auto_backend)
            rc = sn_tune_backends(r->model, &tc, d, d->rank == 0 && !opts->quiet ? r->con.out : NULL,
                                  err);
        else
            sn_tune_prepare(r->model, &tc);
        char runs[512];
        if (rc == SN_OK && sn_model_layout_runs(r->model, runs, sizeof runs) > 0)
            con_say(&r->con, "oneDNN's blocked layout kept between layers: %s\n", runs);
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
        fprintf(stderr, "rank %d: oneDNN primitives: %zu made before the first step, %zu after\n",
                d->rank, prims, sn_ops_onednn_primitives() - prims);
    if (tracing)
        rc = sn_train_finish_trace(d, opts->trace, rc, d->rank == 0 ? r->con.out : NULL, err);
    teardown(r);
    free(r);
    return rc;
}

/* ---------------------------------------------------------------- evaluate, predict */

/* A trained network: the config's settings, the checkpoint's parameters and class names. */
struct trained {
    struct sn_settings st;
    struct sn_model *model;
    char (*classes)[64]; /* owned, (n_classes) */
    int n_classes;
};

static void trained_free(struct trained *t)
{
    sn_model_free(t->model);
    free(t->classes);
}

/* Builds the network for batches of max_batch, loads the checkpoint into it and takes its class
 * names; a config that changed since the checkpoint is named key by key on notes. */
static int load_trained(struct trained *t, const struct sn_config *cfg, const char *ckpt,
                        int max_batch, FILE *notes, struct sn_err *err)
{
    memset(t, 0, sizeof *t);
    SN_FORWARD(sn_settings_load(&t->st, cfg, max_batch, &t->model, err));
    SN_FORWARD(sn_settings_check_cpu(&t->st, cfg, err));
    /* forward only, quietly: evaluate's and predict's output is data */
    struct sn_tune_conf tc = {.n = max_batch, .threads = sn_ops_get_threads(),
                              .bf16 = t->st.tc.bf16};
    if (t->st.auto_backend)
        SN_FORWARD(sn_tune_backends(t->model, &tc, NULL, NULL, err));
    else
        sn_tune_prepare(t->model, &tc);
    struct sn_ckpt_meta meta;
    SN_FORWARD(load_ckpt(t->model, NULL, ckpt, &meta, err));
    char *rec;
    SN_FORWARD(sn_checkpoint_read_record(ckpt, &rec, err));
    char changes[3000] = "";
    if (rec[0] && config_changes(cfg, rec, changes, sizeof changes) > 0)
        fprintf(notes, "note: %s was trained with another config; what differs:%s\n", ckpt,
                changes);
    int rc = record_class_names(rec, &t->classes, &t->n_classes, err);
    free(rec);
    SN_FORWARD(rc);
    if (t->n_classes == 0) {
        /* a version 1 checkpoint: the training folder's names, if it can be read */
        struct sn_dataset *ds;
        SN_RETURN_IF(sn_dataset_open(&ds, &t->st.dc, SN_SPLIT_TRAIN, NULL, err) != SN_OK, err,
                     SN_EFORMAT,
                     "%s holds no class names (written before checkpoint format 2) and the "
                     "training folder cannot tell them: %s",
                     ckpt, err->msg);
        free(t->classes);
        t->classes = calloc((size_t)ds->n_classes, sizeof *t->classes);
        t->n_classes = ds->n_classes;
        if (t->classes)
            memcpy(t->classes, ds->class_names, (size_t)ds->n_classes * sizeof *t->classes);
        fprintf(notes, "note: %s holds no class names (an older checkpoint): taking them from %s\n",
                ckpt, ds->root);
        sn_dataset_free(ds);
        SN_RETURN_IF(!t->classes, err, SN_ENOMEM, "out of memory");
    }
    return check_classes(t->model, t->n_classes, ckpt, err);
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* --data DIR: a data root holding the split's folder, or that folder itself. */
static void use_data_dir(struct sn_data_conf *dc, const char *dir, int split)
{
    static const char *const names[3][2] = {{"train", NULL}, {"val", "validation"}, {"test", NULL}};
    int root = 0;
    for (int k = 0; k < 2 && names[split][k] && !root; k++) {
        char p[SN_PATH_MAX + 16];
        snprintf(p, sizeof p, "%s/%s", dir, names[split][k]);
        root = is_dir(p);
    }
    if (root) {
        snprintf(dc->dir, sizeof dc->dir, "%s", dir);
        snprintf(dc->dir_where, sizeof dc->dir_where, "--data");
        dc->split_dir[split][0] = '\0';
    } else {
        snprintf(dc->split_dir[split], sizeof dc->split_dir[split], "%s", dir);
        snprintf(dc->split_where[split], sizeof dc->split_where[split], "--data");
        dc->validation_split = 0; /* the folder is the split, whole */
    }
}

int sn_evaluate(const struct sn_config *cfg, const char *ckpt, const char *data_dir, int split,
                FILE *notes, struct sn_eval_result *res, struct sn_err *err)
{
    struct sn_train_conf tc;
    SN_FORWARD(sn_train_conf_parse(&tc, cfg, err));
    struct trained t;
    int rc = load_trained(&t, cfg, ckpt, tc.validation_batch_size, notes, err);
    struct sn_data_conf *dc = &t.st.dc;
    struct sn_dataset *ds = NULL;
    struct sn_loader *ld = NULL;
    if (rc == SN_OK && data_dir)
        use_data_dir(dc, data_dir, split);
    struct sn_classes known = {t.n_classes, (const char(*)[64])t.classes};
    if (rc == SN_OK)
        rc = sn_dataset_open(&ds, dc, (enum sn_split)split, &known, err);
    if (rc == SN_OK) {
        sn_dataset_describe(ds, dc, (enum sn_split)split, notes);
        char missing[512];
        int n = sn_dataset_missing(ds, missing, sizeof missing);
        if (n > 0)
            fprintf(notes, "note: %s lacks %d of the model's %d classes: %s\n", ds->root, n,
                    ds->n_classes, missing);
        struct sn_loader_conf lc = {.ds = ds, .dc = dc, .global_batch = tc.validation_batch_size,
                                    .rank = 0, .world = 1, .shuffle = 0, .seed = tc.seed};
        rc = sn_loader_create(&ld, &lc, err);
    }
    double sums[4];
    if (rc == SN_OK)
        rc = evaluate_loader(t.model, ld, sums, err);
    if (rc == SN_OK)
        eval_result(sums, res);
    sn_loader_free(ld);
    sn_dataset_free(ds);
    trained_free(&t);
    return rc;
}

int sn_predict(const struct sn_config *cfg, const char *ckpt, char **images, int n_images, int top,
               int digits,
               FILE *out, FILE *notes, struct sn_err *err)
{
    struct trained t;
    int rc = load_trained(&t, cfg, ckpt, 1, notes, err);
    struct sn_model *m = t.model;
    float *x = NULL, *probs = NULL;
    int *order = NULL;
    if (rc == SN_OK) {
        x = malloc(sn_shape_size(m->input) * sizeof(float));
        probs = malloc((size_t)(t.n_classes + 1) * sizeof(float));
        order = malloc((size_t)(t.n_classes + 1) * sizeof(int));
        if (!x || !probs || !order)
            rc = sn_err_set(err, SN_ENOMEM, "out of memory");
    }
    if (top < 1 || top > t.n_classes)
        top = top < 1 ? 1 : t.n_classes;
    struct sn_step_ctx ctx = {.ops = m ? m->ops : NULL, .scratch = m ? m->scratch : NULL};
    for (int i = 0; rc == SN_OK && i < n_images; i++) {
        rc = sn_data_load_image(&t.st.dc, images[i], x, err);
        if (rc != SN_OK)
            break;
        int64_t id = 0;
        ctx.sample_ids = &id;
        const float *logits = sn_model_forward(m, x, 1, &ctx);
        sn_model_probabilities(m, logits, probs, 1);
        if (m->loss == SN_LOSS_BCE) { /* one unit: P(class 1) */
            probs[1] = probs[0];
            probs[0] = 1 - probs[1];
        }
        for (int k = 0; k < t.n_classes; k++)
            order[k] = k;
        for (int a = 0; a < top; a++) /* the top classes, most probable first */
            for (int b = a + 1; b < t.n_classes; b++)
                if (probs[order[b]] > probs[order[a]]) {
                    int tmp = order[a];
                    order[a] = order[b];
                    order[b] = tmp;
                }
        fprintf(out, "%s", images[i]);
        for (int a = 0; a < top; a++)
            fprintf(out, " %s %.*f", t.classes[order[a]], digits, probs[order[a]]);
        fprintf(out, "\n");
    }
    free(x);
    free(probs);
    free(order);
    trained_free(&t);
    return rc;
}

/* ---------------------------------------------------------------- extract */

/* This rank's outputs of the network over its shard of ds: rows (n_rows x out floats) and the
 * dataset index of each (files that did not decode are left out). */
static int extract_split(struct sn_model *m, const struct sn_settings *st, struct sn_dataset *ds,
                         struct sn_dist *d, int global_batch, float **rows, int64_t **ids,
                         size_t *n_rows, struct sn_err *err)
{
    size_t out = sn_shape_size(m->layers[m->n_layers - 1].out), cap = 0;
    *rows = NULL, *ids = NULL, *n_rows = 0;
    struct sn_loader *ld = NULL;
    struct sn_loader_conf lc = {.ds = ds, .dc = &st->dc, .global_batch = global_batch,
                                .rank = d->rank, .world = d->world, .shuffle = 0,
                                .seed = st->tc.seed};
    int rc = sn_loader_create(&ld, &lc, err);
    if (rc == SN_OK)
        rc = sn_loader_start_epoch(ld, 0, err);
    struct sn_step_ctx ctx = {.ops = m->ops, .scratch = m->scratch, .training = 0};
    while (rc == SN_OK) {
        struct sn_batch *b;
        rc = sn_loader_next(ld, &b, err);
        if (rc != SN_OK || !b)
            break;
        if (b->n > 0) {
            ctx.sample_ids = b->ids;
            const float *y = sn_model_forward(m, b->x, b->n, &ctx);
            if (*n_rows + (size_t)b->n > cap) {
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
            for (int i = 0; rc == SN_OK && i < b->n; i++) {
                if (!b->ok[i])
                    continue;
                memcpy(*rows + *n_rows * out, y + (size_t)i * out, out * sizeof(float));
                (*ids)[(*n_rows)++] = b->ids[i];
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
    rc = agree(d, rc, err);
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
               const char *out_path, struct sn_dist *d, FILE *out, struct sn_err *err)
{
    struct sn_train_conf tc;
    SN_FORWARD(sn_train_conf_parse(&tc, cfg, err));
    int local = (tc.validation_batch_size + d->world - 1) / d->world;
    struct sn_settings *st = calloc(1, sizeof *st);
    struct sn_model *m = NULL;
    int rc = st ? sn_settings_load(st, cfg, local, &m, err)
                : sn_err_set(err, SN_ENOMEM, "out of memory");
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
        rc = load_ckpt(m, NULL, ckpt, &meta, err);
    if (rc == SN_OK && tc.threads > 0)
        sn_ops_set_threads(tc.threads);
    /* a rank that hangs ends the job here as in training (dist.h) */
    sn_dist_set_watchdog(d, tc.watchdog);
    if (rc == SN_OK) {
        struct sn_tune_conf tune = {.n = local, .threads = sn_ops_get_threads(),
                                    .bf16 = st->tc.bf16};
        if (st->auto_backend)
            rc = sn_tune_backends(m, &tune, d, NULL, err);
        else
            sn_tune_prepare(m, &tune);
    }
    rc = agree(d, rc, err);
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
        sn_dist_set_watchdog(d, tc.watchdog);
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
        if (d->rank == 0)
            sn_dataset_describe(ds, &st->dc, (enum sn_split)s, out);
        float *rows = NULL;
        int64_t *ids = NULL;
        size_t n_rows = 0;
        rc = agree(d, extract_split(m, st, ds, d, tc.validation_batch_size, &rows, &ids, &n_rows,
                                    err),
                   err);
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
    rc = agree(d, rc, err);
    sn_features_free(&f);
    sn_dataset_free(train);
    sn_model_free(m);
    free(st);
    return rc;
}
