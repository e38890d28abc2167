/* inference.c — evaluate and predict: a trained network (the config's settings, a checkpoint's
 * weights and class names) run forward over a split or over images (inference.h). */
#include "inference.h"

#include <math.h>     // defines: NAN, isfinite, isnan
#include <stdlib.h>   // defines: malloc, calloc, free
#include <string.h>   // defines: memset, memcpy, snprintf
#include <sys/stat.h> // defines: stat, S_ISDIR

#include "console.h"
#include "record.h"
#include "restore.h"
#include "settings.h"
#include "threads.h"
#include "trace.h"
#include "tune.h"

void sn_eval_list_free(struct sn_eval_list *l)
{
    free(l->v);
    memset(l, 0, sizeof *l);
}

static struct sn_eval_sums *eval_list_add(struct sn_eval_list *l)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        struct sn_eval_sums *v = realloc(l->v, cap * sizeof *v);
        if (!v)
            return NULL;
        l->v = v;
        l->cap = cap;
    }
    struct sn_eval_sums *e = &l->v[l->n++];
    memset(e, 0, sizeof *e);
    return e;
}

/* [augment] test_time: the network run on each view of the rows, and the mean of the views'
 * logits. Its softmax is the geometric mean of the views' probabilities, normalized (for one
 * sigmoid unit, the logit of the views' geometric mean odds): on the validation split of 74
 * checkpoints of the fast recipe and its variants, that prediction had a lower loss than the
 * arithmetic mean of the probabilities on every one. Working memory for up to `rows` rows,
 * taken once. */
struct views {
    const struct sn_augment_conf *ac;
    int n;         /* 1: the images alone, and nothing below is allocated */
    float *x;      /* (rows, input): a view of the images */
    float *logits; /* (rows, outputs): the sum of the views' logits, then their mean */
};

static void views_free(struct views *v)
{
    free(v->x);
    free(v->logits);
    memset(v, 0, sizeof *v);
}

static int views_init(struct views *v, const struct sn_augment_conf *ac, const struct sn_model *m,
                      int rows, struct sn_err *err)
{
    memset(v, 0, sizeof *v);
    v->ac = ac;
    v->n = sn_augment_views(ac);
    if (v->n == 1)
        return SN_OK;
    v->x = malloc((size_t)rows * sn_shape_size(m->input) * sizeof *v->x);
    v->logits = malloc((size_t)rows * m->n_outputs * sizeof *v->logits);
    if (!v->x || !v->logits) {
        views_free(v);
        return sn_err_set(err, SN_ENOMEM, "out of memory for test_time's views");
    }
    return SN_OK;
}

/* The network's logits for x (rows, input); with test_time, the mean of the views' logits,
 * summed in the views' order (two views give the same bits in either order). */
static const float *forward_views(struct sn_model *m, const struct views *v, const float *x,
                                  int rows, const struct sn_step_ctx *ctx)
{
    const float *z = sn_model_forward(m, x, rows, ctx);
    if (v->n == 1)
        return z;
    const size_t size = (size_t)rows * m->n_outputs;
    float *sum = v->logits;
    memcpy(sum, z, size * sizeof *z);
    for (int i = 1; i < v->n; i++) {
        sn_augment_view(v->ac, i, x, rows, m->input.h, m->input.w, m->input.c, v->x);
        z = sn_model_forward(m, v->x, rows, ctx);
        for (size_t k = 0; k < size; k++)
            sum[k] += z[k];
    }
    const float scale = 1.0f / (float)v->n;
    for (size_t k = 0; k < size; k++)
        sum[k] *= scale;
    return sum;
}

int sn_evaluate_loader(struct sn_model *m, struct sn_loader *ld,
                       const struct sn_augment_conf *ac, int micro, struct sn_eval_list *list,
                       struct sn_err *err)
{
    SN_FORWARD(sn_loader_start_epoch(ld, 0, err));
    struct sn_step_ctx ctx = {.ops = m->ops, .scratch = m->scratch, .training = 0};
    const size_t sample = sn_shape_size(m->input);
    micro = micro > 0 && micro <= m->max_batch ? micro : m->max_batch;
    struct views views;
    SN_FORWARD(views_init(&views, ac, m, micro, err));
    int rc;
    for (;;) {
        struct sn_batch *b;
        double t0 = sn_trace_clock();
        rc = sn_loader_next(ld, &b, err);
        sn_trace_end(SN_TRACE_DATA, "validation data", -1, t0);
        if (rc != SN_OK || !b)
            break;
        for (int row = 0; row < b->n && rc == SN_OK; row += micro) {
            int rows = b->n - row < micro ? b->n - row : micro;
            struct sn_eval_sums *e = eval_list_add(list);
            if (!e) {
                rc = sn_err_set(err, SN_ENOMEM, "out of memory for the evaluation's sums");
                break;
            }
            ctx.sample_ids = b->ids + row;
            const uint8_t *ok = b->ok + row;
            const float *logits =
                forward_views(m, &views, b->x + (size_t)row * sample, rows, &ctx);
            long long correct = 0;
            e->loss = sn_loss(m->loss, m->label_smoothing, logits, b->y + row, ok, rows,
                              m->n_outputs, 0, NULL, &correct);
            e->correct = (double)correct;
            for (int i = 0; i < rows; i++) {
                e->samples += ok[i] != 0;
                e->skipped += ok[i] == 0;
            }
        }
        sn_loader_release(ld, b);
        if (rc != SN_OK)
            break;
    }
    views_free(&views);
    return rc;
}

void sn_eval_result(const struct sn_eval_sums *v, size_t n, struct sn_eval_result *res)
{
    struct sn_eval_sums t = {0};
    for (size_t k = 0; k < n; k++) {
        t.loss += v[k].loss;
        t.correct += v[k].correct;
        t.samples += v[k].samples;
        t.skipped += v[k].skipped;
    }
    res->n = (long long)t.samples;
    res->skipped = (long long)t.skipped;
    res->loss = res->n ? t.loss / res->n : NAN;
    res->accuracy = res->n ? t.correct / res->n : NAN;
}

/* A trained network: the config's settings, the checkpoint's parameters and class names. */
struct trained {
    struct sn_settings st;
    struct sn_model *model;
    char (*classes)[64]; /* owned, (n_classes) */
    int n_classes;
    int batch;           /* the network's largest batch: a micro-batch (evaluate), or 1 */
};

static void trained_free(struct trained *t)
{
    sn_model_free(t->model);
    free(t->classes);
}

/* The class names of a checkpoint that holds none (one imported without them, or of format 1):
 * [data] class_names; else the training folder's, when it can be listed; else none for evaluate
 * (the split's own folders name them, as Keras's image_dataset_from_directory does) and "class
 * K" for predict. Each choice is said on notes. */
static int classes_elsewhere(struct trained *t, const char *ckpt, uint32_t version,
                             int for_validation, FILE *notes, struct sn_err *err)
{
    const struct sn_data_conf *dc = &t->st.dc;
    const char *why = version < 2 ? "an older checkpoint" : "imported without --class-names";
    int n = 0;
    const char (*names)[64] = NULL;
    struct sn_dataset *ds = NULL;
    struct sn_err ignored = {0};
    if (dc->n_class_names > 0) {
        n = dc->n_class_names;
        names = (const char(*)[64])dc->class_names;
        fprintf(notes, "note: %s holds no class names (%s): taking those of [data] "
                       "class_names\n",
                ckpt, why);
    } else if (sn_dataset_open(&ds, dc, SN_SPLIT_TRAIN, NULL, &ignored) == SN_OK) {
        n = ds->n_classes;
        names = (const char(*)[64])ds->class_names;
        fprintf(notes, "note: %s holds no class names (%s): taking them from %s\n", ckpt, why,
                ds->root);
    } else if (for_validation) {
        fprintf(notes, "note: %s holds no class names (%s), nor does [data] class_names: the "
                       "split's folders name the classes\n",
                ckpt, why);
        return SN_OK;
    } else {
        n = t->model->loss == SN_LOSS_BCE ? 2 : t->model->n_outputs;
        fprintf(notes, "note: %s holds no class names (%s), nor does [data] class_names: "
                       "classes are named by their index\n"
                       "---> HINT: give them in [data] class_names, or to import-weights "
                       "--class-names\n",
                ckpt, why);
    }
    free(t->classes);
    t->classes = calloc((size_t)n + 1, sizeof *t->classes);
    t->n_classes = t->classes ? n : 0;
    for (int c = 0; t->classes && c < n; c++) {
        if (names)
            memcpy(t->classes[c], names[c], sizeof t->classes[c]);
        else
            snprintf(t->classes[c], sizeof t->classes[c], "class_%d", c);
    }
    sn_dataset_free(ds);
    SN_RETURN_IF(!t->classes, err, SN_ENOMEM, "out of memory");
    return SN_OK;
}

/* Reads the settings, builds the network for batches of micro_batch (for_validation) or 1,
 * loads the checkpoint into it and takes its class names (classes_elsewhere when it has
 * none: t->n_classes may then stay 0 for evaluate); a config that changed since the checkpoint
 * is named key by key on notes. */
static int load_trained(struct trained *t, const struct sn_config *cfg, const char *ckpt,
                        int for_validation, FILE *notes, struct sn_err *err)
{
    memset(t, 0, sizeof *t);
    SN_FORWARD(sn_settings_load(&t->st, cfg, err));
    t->batch = for_validation ? t->st.tc.micro_batch : 1;
    SN_FORWARD(sn_settings_build(&t->st, cfg, t->batch, &t->model, err));
    SN_FORWARD(sn_settings_check_cpu(&t->st, cfg, err));
    struct sn_threads threads;
    SN_FORWARD(sn_threads_apply(t->st.tc.threads, NULL, &threads, err));
    /* forward only, quietly: evaluate's and predict's output is data */
    struct sn_tune_conf tc = {.auto_backend = t->st.auto_backend, .n = t->batch,
                              .threads = threads.threads, .bf16 = t->st.tc.bf16};
    SN_FORWARD(sn_tune_backends(t->model, &tc, NULL, NULL, err));
    struct sn_ckpt_meta meta;
    SN_FORWARD(sn_restore_checkpoint(t->model, NULL, ckpt, &meta, err));
    char *rec;
    SN_FORWARD(sn_checkpoint_read_record(ckpt, &rec, err));
    char changes[3000] = "";
    if (rec[0] && sn_record_config_changes(cfg, rec, changes, sizeof changes) > 0)
        fprintf(notes, "note: %s was trained with another config; what differs:%s\n", ckpt,
                changes);
    int rc = sn_record_class_names(rec, &t->classes, &t->n_classes, err);
    free(rec);
    SN_FORWARD(rc);
    if (t->n_classes == 0)
        SN_FORWARD(classes_elsewhere(t, ckpt, meta.version, for_validation, notes, err));
    if (t->n_classes == 0)
        return SN_OK; /* evaluate: the split's folders will tell */
    return sn_settings_check_classes(t->model, t->n_classes, ckpt, err);
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
                FILE *notes, FILE *errs, struct sn_eval_result *res, struct sn_err *err)
{
    struct trained t;
    int rc = load_trained(&t, cfg, ckpt, 1, notes, err);
    const struct sn_train_conf *tc = &t.st.tc;
    struct sn_data_conf *dc = &t.st.dc;
    struct sn_dataset *ds = NULL;
    struct sn_loader *ld = NULL;
    if (rc == SN_OK && data_dir)
        use_data_dir(dc, data_dir, split);
    struct sn_classes known = {t.n_classes, (const char(*)[64])t.classes};
    if (rc == SN_OK)
        rc = sn_dataset_open(&ds, dc, (enum sn_split)split, t.n_classes ? &known : NULL, err);
    if (rc == SN_OK && t.n_classes == 0) /* the split's folders named the classes */
        rc = sn_settings_check_classes(t.model, ds->n_classes, ds->root, err);
    if (rc == SN_OK)
        sn_console_dataset_note(errs, ds, NULL);
    if (rc == SN_OK) {
        sn_dataset_describe(ds, dc, (enum sn_split)split, notes);
        char missing[512];
        int n = sn_dataset_missing(ds, missing, sizeof missing);
        if (n > 0)
            fprintf(notes, "note: %s lacks %d of the model's %d classes: %s\n", ds->root, n,
                    ds->n_classes, missing);
        struct sn_loader_conf lc = {.ds = ds, .dc = dc, .aug = &t.st.ac, .inference = 1,
                                    .global_batch = tc->validation_batch_size,
                                    .micro_batch = tc->micro_batch, .rank = 0, .world = 1,
                                    .shuffle = 0, .seed = tc->seed,
                                    .report = sn_console_report_file, .report_user = errs};
        rc = sn_loader_create(&ld, &lc, err);
    }
    struct sn_eval_list list = {0};
    if (rc == SN_OK)
        rc = sn_evaluate_loader(t.model, ld, &t.st.ac, tc->micro_batch, &list, err);
    if (rc == SN_OK)
        sn_eval_result(list.v, list.n, res);
    sn_eval_list_free(&list);
    static const char *const split_names[3] = {"train", "val", "test"};
    /* a loss that is not a number is no result: the same failure as in training */
    if (rc == SN_OK && res->n > 0 && !isfinite(res->loss))
        rc = sn_err_set(err, SN_ENUM,
                        "%s: the loss on the %s split (%s, %lld images) is %s: the network "
                        "computes NaN or infinities on these images\n---> HINT: weights that "
                        "overflow float (a run that diverged?), or images scaled otherwise than "
                        "in training",
                        ckpt, split_names[split], ds->root, res->n,
                        isnan(res->loss) ? "NaN" : "infinite");
    if (rc == SN_OK && res->n == 0)
        rc = sn_err_set(err, SN_EDATA, "%s: none of the %lld files of the %s split could be read",
                        ds->root, res->skipped, split_names[split]);
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
    int rc = load_trained(&t, cfg, ckpt, 0, notes, err);
    struct sn_model *m = t.model;
    float *x = NULL, *probs = NULL;
    int *order = NULL;
    struct views views = {0};
    if (rc == SN_OK)
        rc = views_init(&views, &t.st.ac, m, 1, err);
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
        rc = sn_data_load_image(&t.st.dc, &t.st.ac, images[i], x, err);
        if (rc != SN_OK)
            break;
        int64_t id = 0;
        ctx.sample_ids = &id;
        const float *logits = forward_views(m, &views, x, 1, &ctx);
        sn_model_probabilities(m, logits, probs, 1);
        int finite = 1;
        for (int k = 0; k < m->n_outputs; k++)
            finite = finite && isfinite(probs[k]);
        if (!finite) {
            rc = sn_err_set(err, SN_ENUM,
                            "%s: the network of %s computes NaN or infinities on this image\n"
                            "---> HINT: weights that overflow float (a run that diverged?)",
                            images[i], ckpt);
            break;
        }
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
    views_free(&views);
    trained_free(&t);
    return rc;
}
