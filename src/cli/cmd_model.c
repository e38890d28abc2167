/* cmd_model.c — the commands on one network or one checkpoint, in one process: summary,
 * evaluate, predict, import-weights, export-weights and inspect. */
#include "cli_internal.h"

#include <errno.h>    // defines: errno
#include <math.h>     // defines: fabs, fmax, isnan, INFINITY, NAN
#include <stdio.h>    // defines: printf, stdout, stderr, fopen, fread
#include <stdlib.h>   // defines: calloc, malloc, free
#include <string.h>   // defines: strchr, strcmp, strerror, strlen, memcpy
#include <sys/stat.h> // defines: stat, S_ISREG

#include "checkpoint.h"
#include "model.h"
#include "ops.h"
#include "sys.h"
#include "inference.h"
#include "record.h"
#include "settings.h"
#include "summary.h"
#include "values.h"
#include "weights.h"

/* A command's config and its network (for batches of 1), for the commands that work on weights.
 * The caller frees all three, whatever the result (each may be NULL). */
static int load_network(struct cli_args *a, struct sn_config **cfg, struct sn_settings **st,
                        struct sn_model **m, struct sn_err *err)
{
    *cfg = NULL, *st = NULL, *m = NULL;
    SN_FORWARD(cli_load_config(a, cfg, err));
    *st = calloc(1, sizeof **st);
    SN_RETURN_IF(!*st, err, SN_ENOMEM, "out of memory");
    SN_FORWARD(sn_settings_load(*st, *cfg, err));
    return sn_settings_build(*st, *cfg, 1, m, err);
}

int cmd_summary(struct cli_args *a, int *argc, char ***argv)
{
    struct sn_err err = {0};
    struct sn_config *cfg;
    struct sn_settings *st;
    struct sn_model *m;
    int rc = load_network(a, &cfg, &st, &m, &err);
    if (rc == SN_OK)
        sn_model_summary(m, m->name, a->expand_nested, stdout);
    sn_model_free(m);
    free(st);
    sn_config_free(cfg);
    return rc == SN_OK ? 0 : cli_report(&err);
}

int cmd_evaluate(struct cli_args *a, int *argc, char ***argv)
{
    if (!a->checkpoint)
        return cli_usage_error("%s needs --checkpoint FILE", "evaluate");
    struct sn_err err = {0};
    struct sn_config *cfg;
    if (cli_load_config(a, &cfg, &err) != SN_OK)
        return cli_report(&err);
    struct sn_eval_result res;
    int rc = sn_evaluate(cfg, a->checkpoint, a->data, a->split, stdout, stderr, &res, &err);
    sn_config_free(cfg);
    if (rc != SN_OK)
        return cli_report(&err);
    static const char *const names[] = {"train", "val", "test"};
    printf("%s: %lld images - loss: %.4f - accuracy: %.4f\n", names[a->split], res.n, res.loss,
           res.accuracy);
    if (res.skipped)
        printf("%lld unreadable files skipped\n", res.skipped);
    return 0;
}

int cmd_predict(struct cli_args *a, int *argc, char ***argv)
{
    if (!a->checkpoint)
        return cli_usage_error("%s needs --checkpoint FILE", "predict");
    if (a->n_positional < 3)
        return cli_usage_error("%s needs at least one IMAGE", "predict");
    struct sn_err err = {0};
    struct sn_config *cfg;
    if (cli_load_config(a, &cfg, &err) != SN_OK)
        return cli_report(&err);
    int rc = sn_predict(cfg, a->checkpoint, a->positional + 2, a->n_positional - 2,
                        a->top ? a->top : 1, a->digits ? (a->digits > 9 ? 9 : a->digits) : 3,
                        stdout, stderr, &err);
    sn_config_free(cfg);
    return rc == SN_OK ? 0 : cli_report(&err);
}

/* The text of --class-names: the argument itself, or the file of "@FILE" (*text then owned). */
static int class_names_text(const char *arg, char **text, char *sep, struct sn_err *err)
{
    *text = NULL;
    *sep = ',';
    if (arg[0] != '@')
        return SN_OK;
    const char *path = arg + 1;
    *sep = '\n';
    struct stat st;
    SN_RETURN_IF(stat(path, &st) != 0, err, SN_EIO, "--class-names %s: cannot read %s: %s", arg,
                 path, strerror(errno));
    SN_RETURN_IF(!S_ISREG(st.st_mode), err, SN_EIO,
                 "--class-names %s: %s is not a regular file", arg, path);
    SN_RETURN_IF(st.st_size > (off_t)SN_MAX_CLASSES * 80, err, SN_EINVAL,
                 "--class-names %s: %s is %lld bytes, more than %d names of a line each", arg,
                 path, (long long)st.st_size, SN_MAX_CLASSES);
    FILE *f = fopen(path, "rb");
    SN_RETURN_IF(!f, err, SN_EIO, "--class-names %s: cannot read %s: %s", arg, path,
                 strerror(errno));
    *text = calloc((size_t)st.st_size + 1, 1);
    size_t got = *text ? fread(*text, 1, (size_t)st.st_size, f) : 0;
    int bad = ferror(f);
    fclose(f);
    SN_RETURN_IF(!*text, err, SN_ENOMEM, "out of memory");
    SN_RETURN_IF(bad || got != (size_t)st.st_size, err, SN_EIO,
                 "--class-names %s: cannot read %s", arg, path);
    return SN_OK;
}

/* --class-names "A,B,..." or "@FILE" (one name a line; blank lines and surrounding blanks are
 * skipped) into dc's class names, checked as [data] class_names is (no name empty, longer than
 * 63 bytes or listed twice; at most SN_MAX_CLASSES) and against them when the config has them. */
static int take_class_names(const char *arg, struct sn_data_conf *dc, const char *config,
                            struct sn_err *err)
{
    char *file, sep;
    SN_FORWARD(class_names_text(arg, &file, &sep, err));
    const char *p = file ? file : arg;
    char(*names)[64] = calloc(SN_MAX_CLASSES, sizeof *names);
    int n = 0, rc = names ? SN_OK : sn_err_set(err, SN_ENOMEM, "out of memory");
    while (rc == SN_OK && *p) {
        const char *end = strchr(p, sep);
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *a = p, *b = p + len;
        while (a < b && (*a == ' ' || *a == '\t'))
            a++;
        while (b > a && (b[-1] == ' ' || b[-1] == '\t' || b[-1] == '\r'))
            b--;
        p = end ? end + 1 : p + len;
        if (a == b && sep == '\n')
            continue; /* a blank line */
        if (a == b)
            rc = sn_err_set(err, SN_EINVAL, "--class-names %s: name %d is empty", arg, n + 1);
        else if ((size_t)(b - a) >= sizeof names[0])
            rc = sn_err_set(err, SN_EINVAL, "--class-names %s: name %d (%.*s...) is longer than "
                                            "%zu bytes",
                            arg, n + 1, 20, a, sizeof names[0] - 1);
        else if (n == SN_MAX_CLASSES)
            rc = sn_err_set(err, SN_EINVAL, "--class-names %s: more than %d names", arg,
                            SN_MAX_CLASSES);
        if (rc != SN_OK)
            break;
        memcpy(names[n], a, (size_t)(b - a));
        for (int i = 0; i < n && rc == SN_OK; i++)
            if (strcmp(names[i], names[n]) == 0)
                rc = sn_err_set(err, SN_EINVAL, "--class-names %s: '%s' is listed twice", arg,
                                names[i]);
        n++;
    }
    if (rc == SN_OK && n == 0)
        rc = sn_err_set(err, SN_EINVAL, "--class-names %s: no name", arg);
    int same = n == dc->n_class_names;
    for (int i = 0; rc == SN_OK && same && i < n; i++)
        same = strcmp(names[i], dc->class_names[i]) == 0;
    if (rc == SN_OK && dc->n_class_names > 0 && !same)
        rc = sn_err_set(err, SN_EINVAL, "--class-names %s (%d names, %s first) and [data] "
                                        "class_names of %s (%d names, %s first) differ: give one",
                        arg, n, names[0], config, dc->n_class_names, dc->class_names[0]);
    if (rc == SN_OK) {
        memcpy(dc->class_names, names, (size_t)n * sizeof *names);
        dc->n_class_names = n;
    }
    free(names);
    free(file);
    return rc;
}

/* `import-weights CONFIG --keras FILE -o CKPT`: the network of CONFIG with the file's weights,
 * written as a checkpoint (no optimizer state: a start, not a resume), with the class names of
 * --class-names or [data] class_names in its record. */
int cmd_import_weights(struct cli_args *a, int *argc, char ***argv)
{
    if (!a->keras || !a->output)
        return cli_usage_error("%s", "import-weights needs --keras FILE.h5 and -o CKPT");
    struct sn_err err = {0};
    struct sn_config *cfg;
    struct sn_settings *st;
    struct sn_model *m;
    int rc = load_network(a, &cfg, &st, &m, &err);
    if (rc == SN_OK && a->class_names)
        rc = take_class_names(a->class_names, &st->dc, cfg->path, &err);
    if (rc == SN_OK && st->dc.n_class_names > 0)
        rc = sn_settings_check_classes(m, st->dc.n_class_names,
                                       a->class_names ? "--class-names" : "[data] class_names",
                                       &err);
    if (rc == SN_OK) {
        sn_model_init_params(m, st->tc.seed); /* state (moving variance 1) for files without */
        rc = sn_weights_import_keras(m, a->keras, a->by_name, &err);
    }
    if (rc == SN_OK) {
        struct sn_record rec = {0};
        rc = sn_record_imported(cfg, st, a->keras, &rec, &err);
        struct sn_ckpt_meta meta = {.config_hash = cfg->hash,
                                    .model_hash = m->structure_hash,
                                    .world_size = 1,
                                    .n_params = m->n_params,
                                    .n_state = m->n_state,
                                    .best_val_loss = INFINITY,
                                    .val_loss = NAN,
                                    .lr = 1.0f,
                                    .seed = st->tc.seed,
                                    .record = rec.text};
        if (rc == SN_OK)
            rc = sn_checkpoint_save(a->output, &meta, m->params, m->state, NULL, &err);
        sn_record_free(&rec);
    }
    if (rc == SN_OK)
        printf("%s: %zu parameters of %s from %s\n", a->output, m->n_params, cfg->path, a->keras);
    sn_model_free(m);
    free(st);
    sn_config_free(cfg);
    return rc == SN_OK ? 0 : cli_report(&err);
}

/* `export-weights CONFIG --checkpoint CKPT -o FILE.h5` */
int cmd_export_weights(struct cli_args *a, int *argc, char ***argv)
{
    if (!a->checkpoint || !a->output)
        return cli_usage_error("%s", "export-weights needs --checkpoint CKPT and -o FILE.h5");
    struct sn_err err = {0};
    struct sn_config *cfg;
    struct sn_settings *st;
    struct sn_model *m;
    int rc = load_network(a, &cfg, &st, &m, &err);
    struct sn_ckpt_meta meta;
    if (rc == SN_OK)
        rc = sn_checkpoint_load(a->checkpoint, &meta, m->params, (int64_t)m->n_params, m->state,
                                (int64_t)m->n_state, NULL, -1, &err);
    if (rc == SN_OK && meta.model_hash != m->structure_hash)
        rc = sn_err_set(&err, SN_EINVAL, "%s holds another network than %s (model hash %016llx, "
                                         "the config's %016llx)",
                        a->checkpoint, cfg->path, (unsigned long long)meta.model_hash,
                        (unsigned long long)m->structure_hash);
    if (rc == SN_OK) /* a NaN exported would load anywhere else */
        rc = sn_model_check_values(m, m->n_layers, m->params, m->state, a->checkpoint, &err);
    if (rc == SN_OK)
        rc = sn_weights_export_keras(m, a->output, &err);
    if (rc == SN_OK)
        printf("%s: %zu parameters of %s, Keras 2 layout\n", a->output, m->n_params,
               a->checkpoint);
    sn_model_free(m);
    free(st);
    sn_config_free(cfg);
    return rc == SN_OK ? 0 : cli_report(&err);
}

/* One line per layer: name, parameter count, hash of its parameters. */
static int print_layer_hashes(const char *config, const struct cli_args *a,
                              const struct sn_ckpt_meta *meta, const float *params,
                              struct sn_err *err)
{
    struct sn_config *cfg;
    struct sn_model *m;
    struct cli_args with_config = *a; /* --config's file, with the line's --set options */
    with_config.config = config;
    SN_FORWARD(cli_load_config(&with_config, &cfg, err));
    int rc;
    rc = sn_model_build(&m, cfg, 1, &sn_ops_blas, err);
    sn_config_free(cfg);
    SN_FORWARD(rc);
    if (m->n_params != meta->n_params)
        rc = sn_err_set(err, SN_EFORMAT, "%s: the checkpoint has %llu parameters, %s's network %zu",
                        a->config, (unsigned long long)meta->n_params, config, m->n_params);
    for (int i = 0; rc == SN_OK && i < m->n_layers; i++) {
        const struct sn_layer *l = &m->layers[i];
        if (l->n_params == 0)
            continue;
        printf("  layer %-20s %9zu parameters, hash %016llx%s\n", l->name, l->n_params,
               (unsigned long long)sn_hash_bytes(params + l->param_off,
                                                 l->n_params * sizeof(float), SN_HASH_INIT),
               l->trainable ? "" : " (frozen)");
    }
    sn_model_free(m);
    return rc;
}

/* The largest difference between a and b (n values each): absolute, and relative to the largest
 * magnitude of either (elementwise ratios are meaningless for values that sit near zero, a bias
 * after one step). NaN when either holds a NaN where the other does not hold the same. */
struct diff {
    double max_abs, max_mag;
};

static struct diff diff_arrays(const float *a, const float *b, uint64_t n)
{
    struct diff d = {0, 0};
    for (uint64_t i = 0; i < n; i++) {
        double x = a[i], y = b[i], dif = fabs(x - y);
        if (dif > d.max_abs || isnan(dif))
            d.max_abs = dif;
        d.max_mag = fmax(d.max_mag, fmax(fabs(x), fabs(y)));
    }
    return d;
}

/* inspect --compare: the parameters (the first line, whose form scripts read: "compare: max
 * abs diff A, max rel diff R (...) (identical parameters)"), then the state and the optimizer
 * moments, one line each, then the verdict: "identical checkpoints" when all three are, else
 * the parts that differ. Checkpoints whose parameter or state counts differ are an error naming
 * them. */
static int compare_checkpoints(const char *const paths[2], const struct sn_ckpt_meta meta[2],
                               float *const buf[2][3], struct sn_err *err)
{
    static const char *const part[3] = {"parameters", "state", "optimizer moments"};
    uint64_t n[2][3] = {{meta[0].n_params, meta[0].n_state, meta[0].n_opt},
                        {meta[1].n_params, meta[1].n_state, meta[1].n_opt}};
    if (n[0][0] != n[1][0] || n[0][1] != n[1][1]) {
        char what[256] = "";
        int len = 0;
        for (int j = 0; j < 2; j++)
            if (n[0][j] != n[1][j] && len < (int)sizeof what)
                len += snprintf(what + len, sizeof what - (size_t)len, "%s%llu %s and %llu",
                                len ? ", " : "", (unsigned long long)n[0][j], part[j],
                                (unsigned long long)n[1][j]);
        return sn_err_set(err, SN_EFORMAT,
                          "%s and %s hold other networks (%s; model hash %016llx and %016llx): "
                          "not comparable",
                          paths[0], paths[1], what, (unsigned long long)meta[0].model_hash,
                          (unsigned long long)meta[1].model_hash);
    }
    if (meta[0].model_hash != meta[1].model_hash)
        printf("note: the model hashes differ (%016llx and %016llx): the same counts, other "
               "layers or shapes\n",
               (unsigned long long)meta[0].model_hash, (unsigned long long)meta[1].model_hash);
    struct diff d = diff_arrays(buf[0][0], buf[1][0], n[0][0]);
    printf("compare: max abs diff %.3e, max rel diff %.3e (to the largest |parameter|, "
           "%.3e)%s\n",
           d.max_abs, d.max_mag > 0 ? d.max_abs / d.max_mag : d.max_abs, d.max_mag,
           d.max_abs == 0 ? " (identical parameters)" : "");
    int same[3] = {d.max_abs == 0, 1, 1};
    for (int j = 1; j < 3; j++) {
        if (n[0][j] != n[1][j]) { /* moments: one checkpoint has none (imported) or another
                                     optimizer */
            same[j] = 0;
            printf("compare %s: %llu values and %llu: other optimizers (or none: an imported "
                   "checkpoint)\n",
                   part[j], (unsigned long long)n[0][j], (unsigned long long)n[1][j]);
            continue;
        }
        d = diff_arrays(buf[0][j], buf[1][j], n[0][j]);
        same[j] = d.max_abs == 0;
        if (same[j])
            printf("compare %s: identical %s (%llu values)\n", part[j], part[j],
                   (unsigned long long)n[0][j]);
        else
            printf("compare %s: differ by %.3e at most, %.3e relative to the largest |value|, "
                   "%.3e (%llu values)\n",
                   part[j], d.max_abs, d.max_mag > 0 ? d.max_abs / d.max_mag : d.max_abs,
                   d.max_mag, (unsigned long long)n[0][j]);
    }
    if (same[0] && same[1] && same[2]) {
        printf("identical checkpoints: parameters, state and optimizer moments\n");
    } else {
        printf("the checkpoints differ in:");
        for (int j = 0, first = 1; j < 3; j++)
            if (!same[j]) {
                printf("%s %s", first ? "" : ",", part[j]);
                first = 0;
            }
        printf("\n");
    }
    return SN_OK;
}

int cmd_inspect(struct cli_args *a, int *argc, char ***argv)
{
    struct sn_err err = {0};
    const char *paths[2] = {a->config, a->compare};
    struct sn_ckpt_meta meta[2];
    float *buf[2][3] = {{NULL}};
    int rc = SN_OK;
    for (int k = 0; k < 2 && paths[k] && rc == SN_OK; k++) {
        rc = sn_checkpoint_read_meta(paths[k], &meta[k], &err);
        if (rc != SN_OK)
            break;
        buf[k][0] = malloc((meta[k].n_params + 1) * sizeof(float));
        buf[k][1] = malloc((meta[k].n_state + 1) * sizeof(float));
        buf[k][2] = malloc((meta[k].n_opt + 1) * sizeof(float));
        if (!buf[k][0] || !buf[k][1] || !buf[k][2])
            rc = sn_err_set(&err, SN_ENOMEM, "out of memory");
        else
            rc = sn_checkpoint_load(paths[k], &meta[k], buf[k][0], -1, buf[k][1], -1, buf[k][2],
                                    -1, &err);
        if (rc != SN_OK)
            break;
        const struct sn_ckpt_meta *mt = &meta[k];
        printf("%s\n  format version %u, config hash %016llx, model hash %016llx\n"
               "  epoch %d, step %lld, world size %d, seed %llu\n"
               "  %llu parameters, %llu state values, %llu optimizer values\n"
               "  best val_loss %.6f, val_loss %.6f, lr scale %g\n"
               "  parameter hash %016llx, state hash %016llx, optimizer hash %016llx\n",
               paths[k], mt->version, (unsigned long long)mt->config_hash,
               (unsigned long long)mt->model_hash, mt->epoch, (long long)mt->step, mt->world_size,
               (unsigned long long)mt->seed, (unsigned long long)mt->n_params,
               (unsigned long long)mt->n_state, (unsigned long long)mt->n_opt, mt->best_val_loss,
               mt->val_loss, mt->lr,
               (unsigned long long)sn_hash_bytes(buf[k][0], mt->n_params * sizeof(float),
                                                 SN_HASH_INIT),
               (unsigned long long)sn_hash_bytes(buf[k][1], mt->n_state * sizeof(float),
                                                 SN_HASH_INIT),
               (unsigned long long)sn_hash_bytes(buf[k][2], mt->n_opt * sizeof(float),
                                                 SN_HASH_INIT));
        if (a->record) {
            char *text;
            rc = sn_checkpoint_read_record(paths[k], &text, &err);
            if (rc == SN_OK)
                printf("  run record:\n%s", text);
            free(text);
        }
    }
    if (rc == SN_OK && a->layers_config)
        rc = print_layer_hashes(a->layers_config, a, &meta[0], buf[0][0], &err);
    if (rc == SN_OK && a->compare)
        rc = compare_checkpoints(paths, meta, buf, &err);
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 3; j++)
            free(buf[k][j]);
    return rc == SN_OK ? 0 : cli_report(&err);
}
