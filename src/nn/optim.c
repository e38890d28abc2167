/* optim.c — see optim.h. The update rules are Keras's (tf.keras.optimizers, 2.x):
 *   sgd:      v = momentum*v - lr*g;  p += v            (nesterov: p += momentum*v - lr*g)
 *   rmsprop:  a = rho*a + (1-rho)*g^2;  p -= lr*g / (sqrt(a) + eps)
 *   adam:     m = b1*m + (1-b1)*g;  v = b2*v + (1-b2)*g^2;
 *             p -= lr*sqrt(1-b2^t)/(1-b1^t) * m / (sqrt(v) + eps)   (t from 1)
 * RMSprop's epsilon sits outside the square root as in tf.keras 2.0-2.10 (the book's version;
 * the optimizer that became the default in 2.11 uses sqrt(a + eps)). */
#include "optim.h"

#include <math.h>   // defines: sqrtf, pow, cos
#include <stdlib.h> // defines: calloc, free

int sn_optim_conf_parse(struct sn_optim_conf *oc, const struct sn_config *cfg, struct sn_err *err)
{
    static const char *const kinds[] = {"sgd", "rmsprop", "adam", NULL};
    static const char *const scheds[] = {"constant", "step", "exponential", "cosine", NULL};
    static const double default_lr[] = {0.01, 0.001, 0.001};
    const struct sn_section *s = sn_config_find(cfg, "train");
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
    SN_FORWARD(sn_section_int(cfg, s, "decay_steps", 1000, 1, 1 << 30, &oc->decay_steps, err));
    SN_FORWARD(sn_section_float(cfg, s, "decay_rate", 0.5, 0, 1e3, &oc->decay_rate, err));
    SN_FORWARD(sn_section_float(cfg, s, "alpha", 0.0, 0, 1, &oc->alpha, err));
    SN_FORWARD(sn_section_int(cfg, s, "warmup_steps", 0, 0, 1 << 30, &oc->warmup_steps, err));
    /* a key the chosen optimizer or schedule does not read is a mistake, not a no-op */
    static const struct {
        const char *key;
        unsigned optimizers; /* bit k: used by kinds[k] */
        unsigned schedules;  /* bit k: used by scheds[k] */
    } uses[] = {
        {"momentum", 1u << SN_OPT_SGD, ~0u},      {"nesterov", 1u << SN_OPT_SGD, ~0u},
        {"rho", 1u << SN_OPT_RMSPROP, ~0u},       {"beta_1", 1u << SN_OPT_ADAM, ~0u},
        {"beta_2", 1u << SN_OPT_ADAM, ~0u},       {"epsilon", ~(1u << SN_OPT_SGD), ~0u},
        {"decay_steps", ~0u, ~(1u << SN_SCHED_CONSTANT)},
        {"decay_rate", ~0u, (1u << SN_SCHED_STEP) | (1u << SN_SCHED_EXPONENTIAL)},
        {"alpha", ~0u, 1u << SN_SCHED_COSINE},
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
    return SN_OK;
}

int sn_optim_slots(const struct sn_optim_conf *oc)
{
    return oc->kind == SN_OPT_ADAM ? 2 : oc->kind == SN_OPT_RMSPROP ? 1 : oc->momentum > 0;
}

int sn_optim_create(struct sn_optim **out, const struct sn_optim_conf *oc, size_t n_params,
                    struct sn_err *err)
{
    struct sn_optim *o = calloc(1, sizeof *o);
    SN_RETURN_IF(!o, err, SN_ENOMEM, "out of memory");
    o->conf = *oc;
    o->n_params = n_params;
    o->n_slots = sn_optim_slots(oc);
    o->lr_scale = 1.0;
    o->moments = calloc((size_t)o->n_slots * n_params + 1, sizeof(float));
    if (!o->moments) {
        free(o);
        return sn_err_set(err, SN_ENOMEM, "out of memory for optimizer state");
    }
    *out = o;
    return SN_OK;
}

void sn_optim_free(struct sn_optim *o)
{
    if (!o) /* accept NULL pointer */
        return;
    free(o->moments);
    free(o);
}

double sn_optim_lr(const struct sn_optim *o, int64_t t)
{
    const struct sn_optim_conf *c = &o->conf;
    /* Keras's warmup (CosineDecay's warmup_target): lr * t / warmup_steps for the first
       warmup_steps updates, then the schedule counted from the end of the warmup. */
    if (c->warmup_steps > 0 && t < c->warmup_steps)
        return c->lr * (double)t / c->warmup_steps * o->lr_scale;
    double lr = c->lr, x = (double)(t - c->warmup_steps) / c->decay_steps;
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
    }
    return lr * o->lr_scale;
}

void sn_optim_step(struct sn_optim *o, struct sn_model *m)
{
    const struct sn_optim_conf *c = &o->conf;
    const float lr = (float)sn_optim_lr(o, o->t);
    o->t++;
    float *m1 = o->moments, *m2 = o->moments + o->n_params;
    const float eps = (float)c->epsilon;
    for (int r = 0; r < m->n_ranges; r++) {
        size_t lo = m->ranges[r].off, hi = lo + m->ranges[r].len;
        float *p = m->params, *g = m->grads;
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
        case SN_OPT_ADAM: {
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
