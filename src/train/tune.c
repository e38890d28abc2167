/* tune.c — the per-layer backend choice of [model] backend = auto, and its cache (tune.h). */
#include "tune.h"

#include <stdint.h> // defines: int32_t
#include <stdlib.h> // defines: getenv, calloc, free
#include <string.h> // defines: strstr, strlen, strcmp, strchr
#include <time.h>   // defines: nanosleep, struct timespec

#include "cpu.h"
#include "hooks.h" // defines: sn_test_hook
#include "layout.h" // defines: sn_model_plan_layouts
#include "sys.h" // defines: sn_mkdir_p

/* The candidates of backend = auto: every backend of the registry but the oracle, in its
 * order (the cache's columns). */
enum { MAX_OPS = 8 };
static int n_candidates(const struct sn_ops *cand[MAX_OPS])
{
    int n = 0;
    for (int i = 0; sn_backends[i] && n < MAX_OPS; i++)
        if (!(sn_backends[i]->caps & SN_OPS_ORACLE))
            cand[n++] = sn_backends[i];
    return n;
}

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
    FILE *f = NULL;
    struct sn_err ignored; /* no cache, or something else at its name: as if none */
    if (!path[0] || sn_fopen_regular(path, "rb", "backend cache", &f, &ignored) != SN_OK)
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

/* The cached line for key: backend index and the n candidates' times (ms); 0 if none. The last
 * line for a key wins; a line with another number of times (another build's) is not used. */
static int cache_lookup(const char *cache, const char *key, const struct sn_ops *const *cand,
                        int n, int *pick, double *t)
{
    int found = 0;
    size_t kl = strlen(key);
    for (const char *p = cache; p && (p = strstr(p, "\n")) != NULL; p++) {
        if (strncmp(p + 1, key, kl) != 0 || p[1 + kl] != '\t')
            continue;
        char name[32];
        double ms[MAX_OPS];
        int used = 0, k = 0;
        const char *q = p + 2 + kl;
        if (sscanf(q, "%31s%n", name, &used) != 1)
            continue;
        q += used;
        for (; k < n && sscanf(q, "%lf%n", &ms[k], &used) == 1; k++)
            q += used;
        if (k != n || (*q != '\n' && *q != '\0'))
            continue;
        for (int c = 0; c < n; c++)
            if (strcmp(name, cand[c]->name) == 0) {
                *pick = c;
                for (int j = 0; j < n; j++)
                    t[j] = ms[j] / 1e3;
                found = 1;
            }
    }
    return found;
}

/* Appends one decision; each line is a single write on an O_APPEND file, so jobs that tune at
 * once on a node do not mix their lines. */
static int cache_append(const char *path, const char *key, const struct sn_ops *const *cand,
                        int n, int pick, const double *t)
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
    fprintf(f, "%s\t%s", key, cand[pick]->name);
    for (int k = 0; k < n; k++)
        fprintf(f, "\t%.4f", 1e3 * t[k]);
    fputc('\n', f);
    return fclose(f) == 0 ? 0 : -1;
}

/* Which candidates can differ from the others on layer l (applies[k]): bf16 where the config
 * allows it, on convolutions; Winograd's table is oneDNN's but for the convolutions oneDNN has
 * a Winograd primitive for. A candidate not timed has time 0, in the cache too. */
static void candidates_applying(const struct sn_layer *l, const struct sn_tune_conf *tc,
                                const struct sn_ops *const *cand, int n, int *applies)
{
    for (int k = 0; k < n; k++) {
        unsigned caps = cand[k]->caps;
        if (caps & SN_OPS_BF16) {
            applies[k] = tc->bf16 && l->type == &sn_layer_conv2d;
        } else if (caps & SN_OPS_WINOGRAD) {
            applies[k] = 0;
            if (l->type == &sn_layer_conv2d) {
                struct sn_conv_desc d;
                sn_conv2d_desc(l, 1, &d);
                applies[k] = sn_ops_winograd_has(&d);
            }
        } else {
            applies[k] = 1;
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

/* The part of a layer a timing part's backend goes to: forward + backward is the forward's. */
static enum sn_part layer_part(enum sn_time_part t)
{
    return t == SN_TIME_BWD_DATA ? SN_PART_BWD_DATA
           : t == SN_TIME_BWD_WEIGHTS ? SN_PART_BWD_WEIGHTS
                                      : SN_PART_FORWARD;
}

/* What rank 0 decided for one layer: per part, the candidate chosen (-1: the part does not
 * run) and every candidate's time (0: not timed). */
struct choice {
    int32_t pick[3];
    double t[3][MAX_OPS];
    int from_cache;
};

/* Rank 0: the choice for layer i, from the cache or timed (and then appended to the cache;
 * *cache_failed is set, and said on out, the first time that fails). */
static void choose_layer(struct sn_model *m, int i, const struct sn_tune_conf *tc,
                         const struct sn_ops *const *cand, int n_cand, const char *cache,
                         const char *path, int *cache_failed, FILE *out, struct choice *c)
{
    const struct sn_layer *l = &m->layers[i];
    enum sn_time_part parts[3];
    int np = layer_parts(l, tc->training, parts);
    int applies[MAX_OPS], known = 0; /* applies: found at the first part the cache lacks */
    char base[1024];
    layer_key(l, tc, sn_cpu_kernels(), base, sizeof base);
    c->from_cache = 1;
    for (int p = 0; p < np; p++) {
        char key[1100];
        snprintf(key, sizeof key, "%s; %s", base, part_names[parts[p]]);
        double *t = c->t[p];
        int b = 0;
        if (!cache_lookup(cache, key, cand, n_cand, &b, t)) {
            c->from_cache = 0;
            if (!known)
                candidates_applying(l, tc, cand, n_cand, applies), known = 1;
            for (int k = 0; k < n_cand; k++)
                t[k] = applies[k] ? sn_model_time_layer(m, i, tc->n, parts[p], cand[k]) : 0;
            for (int k = 1; k < n_cand; k++)
                if (applies[k] && t[k] < t[b])
                    b = k;
            if (!*cache_failed && cache_append(path, key, cand, n_cand, b, t) != 0) {
                *cache_failed = 1;
                if (out)
                    fprintf(out, "note: cannot write the backend cache %s: layers are timed "
                                 "again at each start\n",
                            path[0] ? path : "(no $HOME)");
            }
        }
        int runs = 0;
        for (int k = 0; k < n_cand; k++)
            runs |= t[k] != 0;
        c->pick[p] = runs ? b : -1;
    }
}

/* Sets layer l's backends from a choice, and writes the line that says so into line[cap]:
 * "backend for conv2d_1 at batch 64: forward onednn (blas 1.2 ms, onednn 0.8 ms), ...". */
static void apply_choice(struct sn_layer *l, const struct sn_tune_conf *tc,
                         const struct sn_ops *const *cand, int n_cand, const struct choice *c,
                         char *line, size_t cap)
{
    enum sn_time_part parts[3];
    int np = layer_parts(l, tc->training, parts);
    int len = snprintf(line, cap, "backend for %s at batch %d:", l->name, tc->n);
    for (int p = 0; p < np; p++) {
        int b = c->pick[p];
        l->ops[layer_part(parts[p])] = b < 0 ? NULL : cand[b]; /* NULL: as forward */
        if (b < 0)
            continue;
        if (len < (int)cap)
            len += snprintf(line + len, cap - len, "%s %s %s (", p ? "," : "",
                            part_names[parts[p]], cand[b]->name);
        for (int k = 0; k < n_cand && len < (int)cap; k++)
            if (c->t[p][k] > 0) /* timed, here or in the cache */
                len += snprintf(line + len, cap - len, "%s%s %.3f ms", k ? ", " : "",
                                cand[k]->name, 1e3 * c->t[p][k]);
        if (len < (int)cap)
            len += snprintf(line + len, cap - len, ")");
    }
    if (c->from_cache && len < (int)cap)
        snprintf(line + len, cap - len, ", timed before");
}

/* backend = auto: rank 0 times the layers and every rank takes its choice, layer by layer, so
 * that each of the others' waits lasts one layer's timing, well within the watchdog, however
 * long the whole takes (VGG16's thirteen convolutions, timed for the first time on a loaded
 * machine, take minutes). */
static int choose_backends(struct sn_model *m, const struct sn_tune_conf *tc, struct sn_dist *d,
                           FILE *out, struct sn_err *err)
{
    int rank0 = !d || d->rank == 0;
    const char *ts = sn_test_hook("TUNE_SLEEP");
    double test_sleep = ts ? atof(ts) : 0;
    const struct sn_ops *cand[MAX_OPS];
    int n_cand = n_candidates(cand);
    char path[1100];
    sn_tune_cache_path(tc, path, sizeof path);
    char *cache = rank0 ? read_cache(path) : NULL;
    int cache_failed = 0, rc = SN_OK;
    sn_model_plan_layouts(m, tc->training); /* none, until the backends are chosen */
    for (int i = 0; rc == SN_OK && i < m->n_layers; i++) {
        struct sn_layer *l = &m->layers[i];
        if (!sn_layer_has_backend_choice(l))
            continue;
        struct choice c;
        memset(&c, 0, sizeof c);
        if (rank0) {
            if (test_sleep > 0) /* tests: a layer that takes long to time */
                nanosleep(&(struct timespec){(time_t)test_sleep,
                                             (long)((test_sleep - (time_t)test_sleep) * 1e9)},
                          NULL);
            choose_layer(m, i, tc, cand, n_cand, cache, path, &cache_failed, out, &c);
        }
        if (d && d->world > 1)
            rc = sn_dist_bcast(d, c.pick, sizeof c.pick, 0, err);
        char line[1024];
        apply_choice(l, tc, cand, n_cand, &c, line, sizeof line);
        if (rc == SN_OK && out && rank0)
            fprintf(out, "%s\n", line);
    }
    free(cache);
    /* the primitives and buffers of the candidates not chosen go; the chosen ones are made
       again before the first step, with shared buffers sized for them alone */
    sn_ops_onednn_free();
    return rc;
}

/* Runs once each part of each layer that runs at batch n on a backend that keeps what it makes
 * per shape */
static void prepare_at(struct sn_model *m, int n, int training)
{
    for (int i = 0; i < m->n_layers; i++) {
        struct sn_layer *l = &m->layers[i];
        if (!sn_layer_has_backend_choice(l))
            continue;
        enum sn_time_part parts[3];
        int np = layer_parts(l, training, parts);
        for (int p = 0; p < np; p++) {
            const struct sn_ops *ops = sn_layer_ops(m, l, layer_part(parts[p]));
            if (ops->caps & SN_OPS_PRIMITIVES)
                sn_model_prepare_layer(m, i, n, parts[p], ops);
        }
    }
}

int sn_tune_backends(struct sn_model *m, const struct sn_tune_conf *tc, struct sn_dist *d,
                     FILE *out, struct sn_err *err)
{
    if (tc->auto_backend) {
        SN_FORWARD(choose_backends(m, tc, d, out, err));
    } else if (tc->bf16) {
        /* precision = bf16 with a backend named: every convolution on bf16, as timing may have
           chosen for some */
        for (int i = 0; i < m->n_layers; i++) {
            struct sn_layer *l = &m->layers[i];
            if (l->type == &sn_layer_conv2d)
                for (int p = 0; p < SN_N_PARTS; p++)
                    l->ops[p] = &sn_ops_bf16;
        }
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
    return SN_OK;
}
