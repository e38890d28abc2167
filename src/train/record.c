/* record.c — the run record of a checkpoint (record.h). */
#include "record.h"

#include <stdio.h>  // defines: snprintf
#include <stdlib.h> // defines: calloc, realloc, free, strtod
#include <string.h> // defines: strchr, strcmp, strncmp, strdup, strlen

/* Keys that say how a run computes or where its files are, not what it computes: they may
 * change between a checkpoint and the run that continues it. The data's identity is checked by
 * fingerprint instead of by path (a cluster job may find its data staged elsewhere). */
static const char *const free_keys[] = {
    "train.epochs",   "train.threads",    "train.watchdog", "data.threads",
    "data.queue_depth", "data.dir",       "data.train",     "data.val",
    "data.test",      "model.backend",    "checkpoint.dir", "checkpoint.name",
    "checkpoint.save_every", "data.index_cache", "data.cache", "data.class_names_file", NULL};

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

int sn_record_run(const struct sn_config *cfg, const struct sn_dataset *train,
                  const struct sn_dataset *val, const struct sn_run_state *rs,
                  const struct sn_run_history *h, struct sn_record *rec, struct sn_err *err)
{
    sn_config_each_resolved(cfg, record_config_line, rec);
    record_classes(rec, train);
    sn_record_add(rec, "train_files", "%d", train->n);
    sn_record_add(rec, "train_fingerprint", "%016llx", (unsigned long long)train->fingerprint);
    sn_record_add(rec, "val_files", "%d", val->n);
    sn_record_add(rec, "val_fingerprint", "%016llx", (unsigned long long)val->fingerprint);
    sn_record_add(rec, "finished", "%d", rs->finished);
    sn_record_add(rec, "lr_scale", "%a", rs->lr_scale);
    sn_record_add(rec, "epoch.loss", "%a", rs->loss);
    sn_record_add(rec, "epoch.correct", "%a", rs->correct);
    sn_record_add(rec, "epoch.samples", "%a", rs->samples);
    sn_record_add(rec, "epoch.bad", "%a", rs->bad);
    sn_record_add(rec, "epoch.seconds", "%a", rs->seconds);
    sn_record_add(rec, "epoch.data_wait", "%a", rs->data_wait);
    sn_record_add(rec, "threads", "%d", rs->threads);
    sn_callbacks_save(&rs->cb, rec);
    for (int i = 0; i < h->n; i++) {
        const double *row = h->rows[i];
        sn_record_add(rec, "history", "%a,%a,%a,%a,%a,%a,%a", row[0], row[1], row[2], row[3],
                      row[4], row[5], row[6]);
    }
    SN_RETURN_IF(rec->failed, err, SN_ENOMEM, "out of memory for the run record");
    return SN_OK;
}

int sn_record_read_run(const char *rec, const char *path, struct sn_run_state *rs,
                       struct sn_run_history *h, struct sn_err *err)
{
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
    double threads = 0; /* absent from the records of older builds */
    if (sn_record_double(rec, "threads", 0, &threads) == 0)
        rs->threads = (int32_t)threads;
    SN_FORWARD(sn_callbacks_load(&rs->cb, rec, path, err));
    int n = sn_record_count(rec, "history");
    free(h->rows);
    h->n = 0;
    h->rows = calloc((size_t)n + 1, sizeof *h->rows);
    SN_RETURN_IF(!h->rows, err, SN_ENOMEM, "out of memory");
    for (int i = 0; i < n; i++) {
        char v[1024];
        double *row = h->rows[i];
        sn_record_get(rec, "history", i, v, sizeof v);
        char *p = v, *end;
        for (int k = 0; k < SN_HISTORY_COLS; k++) {
            row[k] = strtod(p, &end);
            SN_RETURN_IF(end == p || (*end != ',' && k < SN_HISTORY_COLS - 1), err, SN_EFORMAT,
                         "%s: history row %d of the run record is malformed", path, i + 1);
            p = end + 1;
        }
    }
    h->n = n;
    return SN_OK;
}

int sn_record_class_names(const char *rec, char (**names)[64], int *n, struct sn_err *err)
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
    size_t n = strlen(section) + strlen(key) + strlen(value) + 3;
    char *line = malloc(n); /* a value may be long: a list of 1,000 class names */
    if (line == NULL)
        return;
    snprintf(line, n, "%s.%s=%s", section, key, value);
    l->v[l->n++] = line;
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

int sn_record_config_changes(const struct sn_config *cfg, const char *rec, char *msg, size_t cap)
{
    struct resolved_list now = {0};
    sn_config_each_resolved(cfg, collect_resolved, &now);
    int changes = 0, n_then = sn_record_count(rec, "config");
    /* a checkpoint without class names (imported without them) has none that [data]
       class_names could contradict: the config is where they come from then */
    int no_classes = sn_record_count(rec, "class") == 0;
    /* no value of the record is longer than the record */
    size_t then_cap = (rec ? strlen(rec) : 0) + 1;
    char *then = malloc(then_cap);
    if (then == NULL) {
        snprintf(msg + strlen(msg), cap - strlen(msg), "\n    (out of memory comparing them)");
        return 1;
    }
    for (int i = 0; i < now.n; i++) {
        char *eq = strchr(now.v[i], '=');
        *eq = '\0';
        const char *found = NULL;
        for (int j = 0; j < n_then && !found; j++) {
            sn_record_get(rec, "config", j, then, then_cap);
            char *e = strchr(then, '=');
            if (e && (*e = '\0', strcmp(then, now.v[i]) == 0))
                found = e + 1;
        }
        int skip = is_free_key(now.v[i]) ||
                   (no_classes && strcmp(now.v[i], "data.class_names") == 0);
        if (!skip && (!found || strcmp(found, eq + 1) != 0)) {
            describe_change(msg, cap, now.v[i], found, eq + 1);
            changes++;
        }
        *eq = '=';
    }
    for (int j = 0; j < n_then; j++) {
        sn_record_get(rec, "config", j, then, then_cap);
        char *e = strchr(then, '=');
        if (!e)
            continue;
        *e = '\0';
        int present = 0;
        size_t len = strlen(then);
        for (int i = 0; i < now.n && !present; i++)
            present = strncmp(now.v[i], then, len) == 0 && now.v[i][len] == '=';
        if (!present && !is_free_key(then) &&
            !(no_classes && strcmp(then, "data.class_names") == 0)) {
            describe_change(msg, cap, then, e + 1, NULL);
            changes++;
        }
    }
    for (int i = 0; i < now.n; i++)
        free(now.v[i]);
    free(now.v);
    free(then);
    return changes;
}

int sn_record_data_changes(const char *rec, const struct sn_dataset *train,
                           const struct sn_dataset *val, char *msg, size_t cap)
{
    int n_names;
    char (*names)[64];
    struct sn_err ignored;
    if (sn_record_class_names(rec, &names, &n_names, &ignored) != SN_OK)
        return 2;
    int other = n_names != train->n_classes;
    for (int i = 0; i < n_names && !other; i++)
        other = strcmp(names[i], train->class_names[i]) != 0;
    size_t len = strlen(msg);
    if (other && len + 8 < cap)
        len += (size_t)snprintf(msg + len, cap - len,
                                "\n    classes: %d in the checkpoint (%s%s), %d now (%s%s)",
                                n_names, n_names ? names[0] : "", n_names > 1 ? ", ..." : "",
                                train->n_classes, train->class_names[0],
                                train->n_classes > 1 ? ", ..." : "");
    free(names);
    if (other)
        return 2;
    int changed = 0;
    const struct sn_dataset *sets[2] = {train, val};
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
