/* tune.c — the per-layer backend choice of [model] backend = auto, and its cache (tune.h). */
#include "tune.h"

#include <stdint.h> // defines: int32_t
#include <stdlib.h> // defines: getenv, calloc, free
#include <string.h> // defines: strstr, strlen, strcmp, strchr
#include <time.h>   // defines: nanosleep, struct timespec

#include "cpu.h"
#include "hooks.h" // defines: sn_test_hook
#include "sys.h" // defines: sn_mkdir_p

enum { N_OPS = 4 };
static const struct sn_ops *const candidates[N_OPS] = {&sn_ops_blas, &sn_ops_onednn,
                                                       &sn_ops_winograd, &sn_ops_bf16};

void sn_tune_cache_path(const struct sn_tune_conf *tc, char *buf, size_t n)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    if (tc->cache)
        snprintf(buf, n, "%s", tc->cache);
    else if (xdg && *xdg)
        snprintf(buf, n, "%s/shardnet/backends.tsv", xdg);
    else if (home && *home)
        snprintf(buf, n, "%s/.cache/shardnet/backends.tsv", home);
    else
        snprintf(buf, n, "%s", "");
}

/* What decides a layer's times: the machine and kernels, the threads, the layer's arithmetic
 * and the batch. No tab or newline (the cache's separators). */
static void layer_key(const struct sn_layer *l, const struct sn_tune_conf *tc, const char *kernels,
                      char *key, size_t n)
{
    const struct sn_layer_conf *c = &l->conf;
    snprintf(key, n,
             "%s; %d thread%s; %s %dx%dx%d -> %dx%dx%d window %dx%d strides %dx%d %s act %d "
             "bias %d; batch %d; %s%s",
             kernels, tc->threads, tc->threads > 1 ? "s" : "", l->type->section, l->in.h, l->in.w,
             l->in.c, l->out.h, l->out.w, l->out.c, c->kh, c->kw, c->sh, c->sw,
             c->same ? "same" : "valid", (int)c->act, c->use_bias, tc->n,
             tc->training ? "train" : "infer",
             tc->bf16 && l->type == &sn_layer_conv2d ? "; bf16 allowed" : "");
    for (char *p = key; *p; p++)
        if (*p == '\t' || *p == '\n')
            *p = ' ';
}

/* The whole cache file, NUL-terminated, with a newline in front so that every line starts
 * after one; NULL when there is none. */
static char *read_cache(const char *path)
{
    FILE *f = path[0] ? fopen(path, "rb") : NULL;
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0, got;
    char chunk[65536];
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) {
        if (len + got + 2 > cap) {
            cap = 2 * (len + got + 2);
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        memcpy(buf + 1 + len, chunk, got);
        len += got;
    }
    fclose(f);
    if (!buf)
        return NULL;
    buf[0] = '\n';
    buf[len + 1] = '\0';
    return buf;
}

/* The cached line for key: backend index and the candidates' times (ms); 0 if none. The last
 * line for a key wins; a line with another number of times (an older build's) is not used. */
static int cache_lookup(const char *cache, const char *key, int *pick, double t[N_OPS])
{
    int found = 0;
    size_t kl = strlen(key);
    for (const char *p = cache; p && (p = strstr(p, "\n")) != NULL; p++) {
        if (strncmp(p + 1, key, kl) != 0 || p[1 + kl] != '\t')
            continue;
        char name[32];
        double ms[N_OPS];
        int used = 0;
        if (sscanf(p + 2 + kl, "%31s %lf %lf %lf %lf%n", name, &ms[0], &ms[1], &ms[2], &ms[3],
                   &used) != 5 ||
            (p[2 + kl + used] != '\n' && p[2 + kl + used] != '\0'))
            continue;
        for (int k = 0; k < N_OPS; k++)
            if (strcmp(name, candidates[k]->name) == 0) {
                *pick = k;
                for (int j = 0; j < N_OPS; j++)
                    t[j] = ms[j] / 1e3;
                found = 1;
            }
    }
    return found;
}

/* Appends one decision; each line is a single write on an O_APPEND file, so jobs that tune at
 * once on a node do not mix their lines. */
static int cache_append(const char *path, const char *key, int pick, const double t[N_OPS])
{
    if (!path[0])
        return -1;
    char dir[1100];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        struct sn_err ignored;
        if (sn_mkdir_p(dir, "backend cache directory", &ignored) != SN_OK)
            return -1;
    }
    FILE *f = fopen(path, "a");
    if (!f)
        return -1;
    setvbuf(f, NULL, _IOFBF, 4096);
    fprintf(f, "%s\t%s\t%.4f\t%.4f\t%.4f\t%.4f\n", key, candidates[pick]->name, 1e3 * t[0],
            1e3 * t[1], 1e3 * t[2], 1e3 * t[3]);
    return fclose(f) == 0 ? 0 : -1;
}

/* Which candidates can differ from the others on layer l (applies[k]): the Winograd table is
 * oneDNN's but for the convolutions oneDNN has a Winograd primitive for. A candidate not timed
 * has time 0, in the cache too. */
static void candidates_applying(const struct sn_layer *l, const struct sn_tune_conf *tc,
                                int applies[N_OPS])
{
    for (int k = 0; k < N_OPS; k++) {
        if (candidates[k] == &sn_ops_bf16) { /* a precision the config allows, or not */
            applies[k] = tc->bf16 && l->type == &sn_layer_conv2d;
            continue;
        }
        applies[k] = candidates[k] != &sn_ops_winograd;
        if (!applies[k] && l->type == &sn_layer_conv2d) {
            struct sn_conv_desc d;
            sn_conv2d_desc(l, 1, &d);
            applies[k] = sn_ops_winograd_has(&d);
        }
    }
}

/* The parts of a layer chosen apart (model.h): a convolution's three, pooling's pair. */
static int layer_parts(const struct sn_layer *l, int training, enum sn_time_part parts[3])
{
    if (!training) {
        parts[0] = SN_TIME_FORWARD;
        return 1;
    }
    if (l->type != &sn_layer_conv2d) {
        parts[0] = SN_TIME_FORWARD_BACKWARD;
        return 1;
    }
    parts[0] = SN_TIME_FORWARD;
    parts[1] = SN_TIME_BWD_DATA;
    parts[2] = SN_TIME_BWD_WEIGHTS;
    return 3;
}

static const char *const part_names[] = {
    [SN_TIME_FORWARD] = "forward",
    [SN_TIME_FORWARD_BACKWARD] = "forward + backward",
    [SN_TIME_BWD_DATA] = "input gradient",
    [SN_TIME_BWD_WEIGHTS] = "weight gradient",
};

static void prepare(struct sn_model *m, const struct sn_tune_conf *tc, int force_bf16);

int sn_tune_backends(struct sn_model *m, const struct sn_tune_conf *tc, struct sn_dist *d,
                     FILE *out, struct sn_err *err)
{
    int rank0 = !d || d->rank == 0;
    const char *ts = sn_test_hook("TUNE_SLEEP");
    double test_sleep = ts ? atof(ts) : 0;
    size_t slots = (size_t)m->n_layers * 3;
    int32_t *pick = calloc(slots, sizeof *pick); /* per layer and part: candidate, -1 none */
    double *times = calloc(slots * N_OPS, sizeof *times);
    char *from_cache = calloc((size_t)m->n_layers, 1);
    int rc = pick && times && from_cache ? SN_OK : sn_err_set(err, SN_ENOMEM, "out of memory");
    char path[1100];
    const char *kernels = sn_cpu_kernels();
    sn_tune_cache_path(tc, path, sizeof path);
    char *cache = rc == SN_OK && rank0 ? read_cache(path) : NULL;
    int cache_failed = 0;
    for (size_t k = 0; rc == SN_OK && k < slots; k++)
        pick[k] = -1;
    sn_model_plan_layouts(m, tc->training); /* none, until the backends are chosen */
    if (d && d->world > 1) {
        int failed = rc != SN_OK;
        struct sn_err agree_err = {0};
        if (sn_dist_allreduce_max_int(d, &failed, &agree_err) != SN_OK)
            rc = rc != SN_OK ? rc : (*err = agree_err, err->code);
        else if (failed && rc == SN_OK)
            rc = sn_err_set(err, SN_ENOMEM, "out of memory on another rank while choosing "
                                            "backends");
    }
    /* Rank 0 times the layers; the others take its choice layer by layer, so that each of
       their waits lasts one layer's timing, well within the watchdog, however long the whole
       takes (VGG16's thirteen convolutions, timed for the first time on a loaded machine, take
       minutes). */
    for (int i = 0; rc == SN_OK && i < m->n_layers; i++) {
        struct sn_layer *l = &m->layers[i];
        if (!sn_layer_has_backend_choice(l))
            continue;
        if (!rank0) {
            rc = sn_dist_bcast(d, pick + (size_t)i * 3, 3 * sizeof *pick, 0, err);
            continue;
        }
        if (test_sleep > 0) /* tests: a layer that takes long to time */
            nanosleep(&(struct timespec){(time_t)test_sleep,
                                         (long)((test_sleep - (time_t)test_sleep) * 1e9)},
                      NULL);
        enum sn_time_part parts[3];
        int np = layer_parts(l, tc->training, parts);
        from_cache[i] = 1;
        int applies[N_OPS], known = 0; /* applies: found at the first part the cache lacks */
        char base[1024];
        layer_key(l, tc, kernels, base, sizeof base);
        for (int p = 0; p < np; p++) {
            char key[1100];
            snprintf(key, sizeof key, "%s; %s", base, part_names[parts[p]]);
            double *t = times + ((size_t)i * 3 + p) * N_OPS;
            int b = 0;
            if (!cache_lookup(cache, key, &b, t)) {
                from_cache[i] = 0;
                if (!known)
                    candidates_applying(l, tc, applies), known = 1;
                for (int k = 0; k < N_OPS; k++)
                    t[k] = applies[k] ? sn_model_time_layer(m, i, tc->n, parts[p], candidates[k])
                                      : 0;
                for (int k = 1; k < N_OPS; k++)
                    if (applies[k] && t[k] < t[b])
                        b = k;
                if (!cache_failed && cache_append(path, key, b, t) != 0) {
                    cache_failed = 1;
                    if (out)
                        fprintf(out, "note: cannot write the backend cache %s: layers are timed "
                                     "again at each start\n",
                                path[0] ? path : "(no $HOME)");
                }
            }
            int runs = 0;
            for (int k = 0; k < N_OPS; k++)
                runs |= t[k] != 0;
            pick[(size_t)i * 3 + p] = runs ? b : -1; /* -1: does not run */
        }
        if (d && d->world > 1)
            rc = sn_dist_bcast(d, pick + (size_t)i * 3, 3 * sizeof *pick, 0, err);
    }
    free(cache);
    /* the primitives and buffers of the candidates not chosen go; the chosen ones are made
       again below, before the first step, with shared buffers sized for them alone */
    sn_ops_onednn_free();
    for (int i = 0; rc == SN_OK && i < m->n_layers; i++) {
        struct sn_layer *l = &m->layers[i];
        if (!sn_layer_has_backend_choice(l))
            continue;
        enum sn_time_part parts[3];
        int np = layer_parts(l, tc->training, parts);
        char line[1024];
        int len = snprintf(line, sizeof line, "backend for %s at batch %d:", l->name, tc->n);
        for (int p = 0; p < np; p++) {
            int b = pick[(size_t)i * 3 + p];
            const struct sn_ops *ops = b < 0 ? NULL : candidates[b]; /* NULL: as forward */
            if (parts[p] == SN_TIME_FORWARD || parts[p] == SN_TIME_FORWARD_BACKWARD)
                l->ops = ops;
            else if (parts[p] == SN_TIME_BWD_DATA)
                l->ops_bwd_data = ops;
            else
                l->ops_bwd_weights = ops;
            const double *t = times + ((size_t)i * 3 + p) * N_OPS;
            if (b >= 0 && len < (int)sizeof line)
                len += snprintf(line + len, sizeof line - len, "%s %s %s (", p ? "," : "",
                                part_names[parts[p]], ops->name);
            for (int k = 0; b >= 0 && k < N_OPS && len < (int)sizeof line; k++)
                if (t[k] > 0) /* timed, here or in the cache */
                    len += snprintf(line + len, sizeof line - len, "%s%s %.3f ms", k ? ", " : "",
                                    candidates[k]->name, 1e3 * t[k]);
            if (b >= 0 && len < (int)sizeof line)
                len += snprintf(line + len, sizeof line - len, ")");
        }
        if (out && rank0)
            fprintf(out, "%s%s\n", line, from_cache[i] ? ", timed before" : "");
    }
    free(pick);
    free(times);
    free(from_cache);
    if (rc == SN_OK)
        prepare(m, tc, 0); /* on every rank */
    return rc;
}

/* Runs once each part of each layer that runs at batch n on a oneDNN backend */
static void prepare_at(struct sn_model *m, int n, int training)
{
    for (int i = 0; i < m->n_layers; i++) {
        struct sn_layer *l = &m->layers[i];
        if (!sn_layer_has_backend_choice(l))
            continue;
        enum sn_time_part parts[3];
        int np = layer_parts(l, training, parts);
        const struct sn_ops *fwd = l->ops ? l->ops : m->ops;
        for (int p = 0; p < np; p++) {
            const struct sn_ops *ops = parts[p] == SN_TIME_BWD_DATA && l->ops_bwd_data
                                           ? l->ops_bwd_data
                                       : parts[p] == SN_TIME_BWD_WEIGHTS && l->ops_bwd_weights
                                           ? l->ops_bwd_weights
                                           : fwd;
            if (ops == &sn_ops_onednn || ops == &sn_ops_winograd || ops == &sn_ops_bf16)
                sn_model_prepare_layer(m, i, n, parts[p], ops);
        }
    }
}

void sn_tune_prepare(struct sn_model *m, const struct sn_tune_conf *tc) { prepare(m, tc, 1); }

/* sn_tune_prepare; with force_bf16 (a backend set by name) precision = bf16 puts every
   convolution on sn_ops_bf16, as timing may have for some */
static void prepare(struct sn_model *m, const struct sn_tune_conf *tc, int force_bf16)
{
    for (int i = 0; force_bf16 && tc->bf16 && i < m->n_layers; i++) {
        struct sn_layer *l = &m->layers[i];
        if (l->type == &sn_layer_conv2d)
            l->ops = l->ops_bwd_data = l->ops_bwd_weights = &sn_ops_bf16;
    }
    sn_model_plan_layouts(m, tc->training);
    /* each batch size once: as training meets it (forward and backward), else forward only
       (a forward primitive serves both) */
    int sizes[5] = {tc->n, tc->train_n[0], tc->train_n[1], tc->eval_n[0], tc->eval_n[1]};
    int training[5] = {tc->training, 1, 1, 0, 0};
    for (int k = 0; k < 5; k++) {
        int seen = sizes[k] < 1;
        for (int j = 0; j < k && !seen; j++)
            seen = sizes[j] == sizes[k] && (training[j] || !training[k]);
        if (!seen)
            prepare_at(m, sizes[k], training[k]);
    }
}
