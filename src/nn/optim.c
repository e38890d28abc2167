/* optim.c — see optim.h. The update rules are Keras's (tf.keras.optimizers, 2.x; Keras 3 has
 * the same ones):
 *   sgd:      v = momentum*v - lr*g;  p += v            (nesterov: p += momentum*v - lr*g)
 *   rmsprop:  a = rho*a + (1-rho)*g^2;  p -= lr*g / (sqrt(a) + eps)
 *   adam:     m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
 *             p -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)   (t from 1)
 *   adamw:    Keras 3's AdamW: adam, with weight_decay 0.004 by default
 * and before any of them, Keras 3's decoupled weight decay (Optimizer._apply_weight_decay):
 *   p -= p * weight_decay * lr     on the decayed variables, lr the update's scheduled rate.
 * RMSprop's epsilon sits outside the square root as in tf.keras 2.0-2.10 (the book's version;
 * the optimizer that became the default in 2.11 uses sqrt(a + eps)). */
#include "optim.h"

#include <math.h>    // defines: sqrtf, pow, cos, floor
#include <stdio.h>   // defines: snprintf
#include <stdlib.h>  // defines: calloc, free, strtol
#include <string.h>  // defines: strstr, strlen, memcpy
#include <strings.h> // defines: strcasecmp

#include "values.h" // defines: sn_layer_arrays

static const char *const kinds[] = {"sgd", "rmsprop", "adam", "adamw", NULL};
static const char *const scheds[] = {"constant", "step", "exponential", "cosine", "linear", NULL};

/* The next word of a comma-separated list at *p into word[cap], blanks (and the line breaks of
 * continuation lines) trimmed. @return 0 at the end of the list, 1 for a word (possibly "",
 * for an empty item), -1 for a word longer than cap - 1. */
static int next_word(const char **p, char *word, size_t cap)
{
    const char *s = *p;
    if (*s == '\0')
        return 0;
    const char *end = s;
    while (*end && *end != ',')
        end++;
    *p = *end ? end + 1 : end;
    while (s < end && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
        s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\n' || end[-1] == '\r'))
        end--;
    size_t n = (size_t)(end - s);
    if (n >= cap)
        return -1;
    memcpy(word, s, n);
    word[n] = '\0';
    return 1;
}

#define WORD_MAX 128

/* weight_decay_exclude: a list of non-empty words */
static int read_exclude(struct sn_optim_conf *oc, const struct sn_config *cfg,
                        const struct sn_section *s, struct sn_err *err)
{
    SN_FORWARD(sn_section_string(cfg, s, "weight_decay_exclude", "", oc->decay_exclude,
                                 sizeof oc->decay_exclude, err));
    const char *p = oc->decay_exclude;
    char word[WORD_MAX];
    int rc, n = 0;
    while ((rc = next_word(&p, word, sizeof word)) != 0) {
        if (rc < 0)
            return sn_config_error(cfg, s, "weight_decay_exclude", err, SN_EINVAL,
                                   "a word longer than %d characters", WORD_MAX - 1);
        if (word[0] == '\0')
            return sn_config_error(cfg, s, "weight_decay_exclude", err, SN_EINVAL,
                                   "an empty word in the list; HINT: words of variable names "
                                   "separated by commas, such as 'bias, gamma, beta'");
        n++;
    }
    if (n == 0)
        return sn_config_error(cfg, s, "weight_decay_exclude", err, SN_EINVAL,
                               "no word given; HINT: words of variable names separated by "
                               "commas, such as 'bias, gamma, beta', or leave the key out");
    return SN_OK;
}

/* decay_steps: a number of updates, or auto */
static int read_decay_steps(struct sn_optim_conf *oc, const struct sn_config *cfg,
                            const struct sn_section *s, struct sn_err *err)
{
    const struct sn_key *k = s ? sn_section_key(s, "decay_steps") : NULL;
    oc->decay_auto = 0;
    if (k && strcasecmp(k->value, "auto") == 0) {
        const char *text;
        SN_FORWARD(sn_section_text(cfg, s, "decay_steps", NULL, &text, err));
        oc->decay_auto = 1;
        oc->decay_steps = 0;
        return SN_OK;
    }
    if (k) {
        char *end;
        (void)strtol(k->value, &end, 10);
        if (end == k->value || *end != '\0')
            return sn_config_error(cfg, s, "decay_steps", err, SN_EINVAL,
                                   "'%s' is neither a number of updates nor auto", k->value);
    }
    return sn_section_int(cfg, s, "decay_steps", 1000, 1, 1 << 30, &oc->decay_steps, err);
}

int sn_optim_conf_parse(struct sn_optim_conf *oc, const struct sn_config *cfg, struct sn_err *err)
{
    static const double default_lr[] = {0.01, 0.001, 0.001, 0.001};
    static const double default_wd[] = {0.0, 0.0, 0.0, 0.004};
    const struct sn_section *s = sn_config_find(cfg, "train");
    memset(oc, 0, sizeof *oc);
    int k = 1, sk = 0;
    if (s) {
        SN_FORWARD(sn_section_choice(cfg, s, "optimizer", "rmsprop", kinds, &k, err));
        SN_FORWARD(sn_section_choice(cfg, s, "lr_schedule", "constant", scheds, &sk, err));
    }
    oc->kind = (enum sn_opt_kind)k;
    oc->sched = (enum sn_sched_kind)sk;
    SN_FORWARD(sn_section_float(cfg, s, "learning_rate", default_lr[k], 0, 1e3, &oc->lr, err));
    SN_FORWARD(sn_section_float(cfg, s, "momentum", 0.0, 0, 1, &oc->momentum, err));
    SN_FORWARD(sn_section_bool(cfg, s, "nesterov", 0, &oc->nesterov, err));
    SN_FORWARD(sn_section_float(cfg, s, "rho", 0.9, 0, 1, &oc->rho, err));
    SN_FORWARD(sn_section_float(cfg, s, "beta_1", 0.9, 0, 1, &oc->beta_1, err));
    SN_FORWARD(sn_section_float(cfg, s, "beta_2", 0.999, 0, 1, &oc->beta_2, err));
    SN_FORWARD(sn_section_float(cfg, s, "epsilon", 1e-7, 0, 1, &oc->epsilon, err));
    SN_FORWARD(sn_section_float(cfg, s, "weight_decay", default_wd[k], 0, 1, &oc->weight_decay,
                                err));
    if (sn_section_key(s, "weight_decay_exclude"))
        SN_FORWARD(read_exclude(oc, cfg, s, err));
    SN_FORWARD(read_decay_steps(oc, cfg, s, err));
    SN_FORWARD(sn_section_float(cfg, s, "decay_rate", 0.5, 0, 1e3, &oc->decay_rate, err));
    SN_FORWARD(sn_section_float(cfg, s, "alpha", 0.0, 0, 1, &oc->alpha, err));
    SN_FORWARD(sn_section_int(cfg, s, "warmup_steps", 0, 0, 1 << 30, &oc->warmup_steps, err));
    if (sn_section_key(s, "warmup_target")) {
        oc->has_warmup_target = 1;
        SN_FORWARD(sn_section_float(cfg, s, "warmup_target", 0, 0, 1e3, &oc->warmup_target,
                                    err));
    }
    /* a key the chosen optimizer or schedule does not read is a mistake, not a no-op */
    static const struct {
        const char *key;
        unsigned optimizers; /* bit k: used by kinds[k] */
        unsigned schedules;  /* bit k: used by scheds[k] */
    } uses[] = {
        {"momentum", 1u << SN_OPT_SGD, ~0u},
        {"nesterov", 1u << SN_OPT_SGD, ~0u},
        {"rho", 1u << SN_OPT_RMSPROP, ~0u},
        {"beta_1", (1u << SN_OPT_ADAM) | (1u << SN_OPT_ADAMW), ~0u},
        {"beta_2", (1u << SN_OPT_ADAM) | (1u << SN_OPT_ADAMW), ~0u},
        {"epsilon", ~(1u << SN_OPT_SGD), ~0u},
        {"decay_steps", ~0u, ~(1u << SN_SCHED_CONSTANT)},
        {"decay_rate", ~0u, (1u << SN_SCHED_STEP) | (1u << SN_SCHED_EXPONENTIAL)},
        {"alpha", ~0u, (1u << SN_SCHED_COSINE) | (1u << SN_SCHED_LINEAR)},
        {"warmup_target", ~0u, (1u << SN_SCHED_COSINE) | (1u << SN_SCHED_LINEAR)},
    };
    for (size_t i = 0; i < sizeof uses / sizeof uses[0]; i++) {
        if (sn_section_key(s, uses[i].key) == NULL)
            continue;
        if (!(uses[i].optimizers & (1u << k)))
            return sn_config_error(cfg, s, uses[i].key, err, SN_EINVAL,
                                   "optimizer = %s does not use it; HINT: remove it, or choose "
                                   "the optimizer it belongs to",
                                   kinds[k]);
        if (!(uses[i].schedules & (1u << sk)))
            return sn_config_error(cfg, s, uses[i].key, err, SN_EINVAL,
                                   "lr_schedule = %s does not use it; HINT: remove it, or choose "
                                   "the schedule it belongs to",
                                   scheds[sk]);
    }
    if (oc->decay_exclude[0] && oc->weight_decay == 0)
        return sn_config_error(cfg, s, "weight_decay_exclude", err, SN_EINVAL,
                               "weight_decay is 0 (optimizer = %s): nothing is decayed to "
                               "exclude from; HINT: set weight_decay, or remove the key",
                               kinds[k]);
    if (oc->has_warmup_target && oc->warmup_steps == 0 && sn_section_key(s, "learning_rate"))
        return sn_config_error(cfg, s, "learning_rate", err, SN_EINVAL,
                               "unused: without warmup_steps the rate starts at warmup_target; "
                               "HINT: set warmup_steps (the warmup rises from learning_rate to "
                               "warmup_target), or remove learning_rate");
    return SN_OK;
}

/* Whether the variable "<layer>/<array>" contains a word of list (comma-separated). */
static int name_has_word(const char *name, const char *list)
{
    char word[WORD_MAX];
    int rc;
    while ((rc = next_word(&list, word, sizeof word)) != 0)
        if (rc > 0 && word[0] && strstr(name, word))
            return 1;
    return 0;
}

int sn_optim_check_model(const struct sn_optim_conf *oc, const struct sn_model *m,
                         const struct sn_config *cfg, struct sn_err *err)
{
    const char *p = oc->decay_exclude;
    char word[WORD_MAX];
    int rc;
    while ((rc = next_word(&p, word, sizeof word)) != 0) {
        if (rc < 0 || word[0] == '\0')
            continue; /* refused when parsed */
        char names[480] = "", name[2 * SN_CFG_NAME_MAX + 32];
        size_t len = 0;
        int found = 0;
        for (int i = 0; i < m->n_layers && !found; i++) {
            struct sn_array a[SN_MAX_ARRAYS];
            int n = sn_layer_arrays(&m->layers[i], a);
            for (int j = 0; j < n && !found; j++) {
                if (a[j].in_state)
                    continue;
                snprintf(name, sizeof name, "%s/%s", m->layers[i].name, a[j].name);
                found = strstr(name, word) != NULL;
                if (len < sizeof names) {
                    int w = snprintf(names + len, sizeof names - len, "%s%s", len ? ", " : "",
                                     name);
                    len += w > 0 ? (size_t)w : 0;
                }
            }
        }
        if (found)
            continue;
        if (len >= sizeof names)
            snprintf(names + sizeof names - 5, 5, "...");
        return sn_config_error(cfg, sn_config_find(cfg, "train"), "weight_decay_exclude", err,
                               SN_EINVAL,
                               "'%s' is in the name of no variable of the network, so it "
                               "excludes nothing; the variables are: %s\n---> HINT: words of "
                               "Keras's variable names, <layer>/kernel, <layer>/bias, "
                               "<layer>/gamma, <layer>/beta, with the layer names `shardnet "
                               "summary` prints",
                               word, names[0] ? names : "(none)");
    }
    return SN_OK;
}

int sn_optim_resolve_auto(struct sn_optim_conf *oc, int64_t updates, const char *how,
                          const struct sn_config *cfg, struct sn_err *err)
{
    if (!oc->decay_auto)
        return SN_OK;
    int64_t d = updates - oc->warmup_steps;
    const struct sn_section *s = sn_config_find(cfg, "train");
    if (d < 1)
        return sn_config_error(cfg, s, "decay_steps", err, SN_EINVAL,
                               "auto ends the decay with training's last update, but training "
                               "makes %lld updates (%s) and warmup_steps = %d leaves none to "
                               "decay over; HINT: fewer warmup_steps, more epochs, or a number "
                               "of decay_steps",
                               (long long)updates, how, oc->warmup_steps);
    if (d > (1 << 30))
        return sn_config_error(cfg, s, "decay_steps", err, SN_EINVAL,
                               "auto gives %lld updates (%s), more than the %d decay_steps "
                               "takes; HINT: fewer epochs or steps_per_epoch",
                               (long long)d, how, 1 << 30);
    oc->decay_steps = (int)d;
    return SN_OK;
}

int sn_optim_slots(const struct sn_optim_conf *oc)
{
    switch (oc->kind) {
    case SN_OPT_ADAM:
    case SN_OPT_ADAMW:
        return 2;
    case SN_OPT_RMSPROP:
        return 1;
    case SN_OPT_SGD:
        break;
    }
    return oc->momentum > 0;
}

/* The decayed ranges of m: its trainable variables whose names contain no excluded word, in
 * params order, adjacent ones merged; none when weight_decay is 0. */
static int plan_decay(struct sn_optim *o, const struct sn_model *m, struct sn_err *err)
{
    o->decay = NULL;
    o->n_decay = 0;
    if (o->conf.weight_decay == 0)
        return SN_OK;
    size_t cap = 0;
    for (int i = 0; i < m->n_layers; i++)
        cap += SN_MAX_ARRAYS;
    o->decay = calloc(cap + 1, sizeof *o->decay);
    SN_RETURN_IF(!o->decay, err, SN_ENOMEM, "out of memory for the weight decay's ranges");
    char name[2 * SN_CFG_NAME_MAX + 32];
    for (int i = 0; i < m->n_layers; i++) {
        const struct sn_layer *l = &m->layers[i];
        if (!l->trainable)
            continue; /* frozen: not trained, so not decayed */
        struct sn_array a[SN_MAX_ARRAYS];
        int n = sn_layer_arrays(l, a);
        for (int j = 0; j < n; j++) {
            snprintf(name, sizeof name, "%s/%s", l->name, a[j].name);
            if (a[j].in_state || a[j].size == 0 || name_has_word(name, o->conf.decay_exclude))
                continue;
            struct sn_range *last = o->n_decay ? &o->decay[o->n_decay - 1] : NULL;
            if (last && last->off + last->len == a[j].off)
                last->len += a[j].size;
            else
                o->decay[o->n_decay++] = (struct sn_range){a[j].off, a[j].size};
        }
    }
    return SN_OK;
}

int sn_optim_create(struct sn_optim **out, const struct sn_optim_conf *oc,
                    const struct sn_model *m, struct sn_err *err)
{
    struct sn_optim *o = calloc(1, sizeof *o);
    SN_RETURN_IF(!o, err, SN_ENOMEM, "out of memory");
    o->conf = *oc;
    o->n_params = m->n_params;
    o->n_slots = sn_optim_slots(oc);
    o->lr_scale = 1.0;
    o->moments = calloc((size_t)o->n_slots * o->n_params + 1, sizeof(float));
    int rc = o->moments ? SN_OK : sn_err_set(err, SN_ENOMEM, "out of memory for optimizer state");
    if (rc == SN_OK)
        rc = plan_decay(o, m, err);
    if (rc != SN_OK) {
        sn_optim_free(o);
        return rc;
    }
    *out = o;
    return SN_OK;
}

void sn_optim_free(struct sn_optim *o)
{
    if (!o) /* accept NULL pointer */
        return;
    free(o->moments);
    free(o->decay);
    free(o);
}

double sn_optim_lr(const struct sn_optim *o, int64_t t)
{
    const struct sn_optim_conf *c = &o->conf;
    /* Keras 3's CosineDecay warmup: from `start` to the peak linearly over warmup_steps
       updates, start + (peak - start) * t / warmup_steps, then the schedule counted from the
       end of the warmup, from the peak. Without warmup_target, start 0 and peak lr. */
    const double peak = c->has_warmup_target ? c->warmup_target : c->lr;
    if (c->warmup_steps > 0 && t < c->warmup_steps) {
        const double start = c->has_warmup_target ? c->lr : 0.0;
        return (start + (peak - start) * (double)t / c->warmup_steps) * o->lr_scale;
    }
    double lr = peak;
    double x = c->decay_steps > 0 ? (double)(t - c->warmup_steps) / c->decay_steps : 0.0;
    switch (c->sched) {
    case SN_SCHED_CONSTANT:
        break;
    case SN_SCHED_STEP:
        lr *= pow(c->decay_rate, floor(x));
        break;
    case SN_SCHED_EXPONENTIAL:
        lr *= pow(c->decay_rate, x);
        break;
    case SN_SCHED_COSINE: {
        double p = x < 1 ? x : 1;
        lr *= (1 - c->alpha) * 0.5 * (1 + cos(M_PI * p)) + c->alpha;
        break;
    }
    case SN_SCHED_LINEAR: { /* Keras's PolynomialDecay(power=1) down to alpha * peak */
        double p = x < 1 ? x : 1;
        lr *= (1 - c->alpha) * (1 - p) + c->alpha;
        break;
    }
    }
    return lr * o->lr_scale;
}

void sn_optim_step(struct sn_optim *o, struct sn_model *m)
{
    const struct sn_optim_conf *c = &o->conf;
    const float lr = (float)sn_optim_lr(o, o->t);
    o->t++;
    float *m1 = o->moments, *m2 = o->moments + o->n_params;
    float *p = m->params, *g = m->grads;
    const float eps = (float)c->epsilon;
    /* decoupled weight decay first, with this update's rate (Keras 3 applies it before the
       update step); a rate of 0 (the first update of a warmup from 0) decays nothing */
    const float wd = (float)((double)lr * c->weight_decay);
    for (int r = 0; wd != 0.f && r < o->n_decay; r++) {
        size_t lo = o->decay[r].off, hi = lo + o->decay[r].len;
        for (size_t i = lo; i < hi; i++)
            p[i] -= p[i] * wd;
    }
    for (int r = 0; r < m->n_ranges; r++) {
        size_t lo = m->ranges[r].off, hi = lo + m->ranges[r].len;
        switch (c->kind) {
        case SN_OPT_SGD: {
            const float mu = (float)c->momentum;
            if (o->n_slots == 0) {
                for (size_t i = lo; i < hi; i++)
                    p[i] -= lr * g[i];
            } else if (c->nesterov) {
                for (size_t i = lo; i < hi; i++) {
                    m1[i] = mu * m1[i] - lr * g[i];
                    p[i] += mu * m1[i] - lr * g[i];
                }
            } else {
                for (size_t i = lo; i < hi; i++) {
                    m1[i] = mu * m1[i] - lr * g[i];
                    p[i] += m1[i];
                }
            }
            break;
        }
        case SN_OPT_RMSPROP: {
            const float rho = (float)c->rho;
            for (size_t i = lo; i < hi; i++) {
                m1[i] = rho * m1[i] + (1.f - rho) * g[i] * g[i];
                p[i] -= lr * g[i] / (sqrtf(m1[i]) + eps);
            }
            break;
        }
        case SN_OPT_ADAM:
        case SN_OPT_ADAMW: {
            const float b1 = (float)c->beta_1, b2 = (float)c->beta_2;
            const double t = (double)o->t;
            const float lr_t = (float)(lr * sqrt(1 - pow(c->beta_2, t)) / (1 - pow(c->beta_1, t)));
            for (size_t i = lo; i < hi; i++) {
                m1[i] = b1 * m1[i] + (1.f - b1) * g[i];
                m2[i] = b2 * m2[i] + (1.f - b2) * g[i] * g[i];
                p[i] -= lr_t * m1[i] / (sqrtf(m2[i]) + eps);
            }
            break;
        }
        }
    }
}
