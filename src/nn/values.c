/* values.c — a network's weights array by array, and the check of their values (values.h). */
#include "values.h"

#include <math.h>   // defines: isfinite, isnan
#include <stdio.h>  // defines: snprintf
#include <string.h> // defines: memset, strcmp

#include "hooks.h"

static void add(struct sn_array *a, int *n, const char *name, int in_state, size_t off, int nd,
                int d0, int d1, int d2, int d3)
{
    struct sn_array *x = &a[(*n)++];
    memset(x, 0, sizeof *x);
    x->name = name;
    x->in_state = in_state;
    x->off = off;
    x->ndims = nd;
    int d[4] = {d0, d1, d2, d3};
    x->size = 1;
    for (int k = 0; k < nd; k++) {
        x->dims[k] = d[k];
        x->size *= (size_t)d[k];
    }
}

int sn_layer_arrays(const struct sn_layer *l, struct sn_array a[SN_MAX_ARRAYS])
{
    int n = 0;
    const struct sn_layer_conf *c = &l->conf;
    size_t p = l->param_off, s = l->state_off;
    if (l->type == &sn_layer_conv2d) {
        add(a, &n, "kernel", 0, p, 4, c->kh, c->kw, l->in.c, c->filters);
        if (c->use_bias)
            add(a, &n, "bias", 0, p + a[0].size, 1, c->filters, 0, 0, 0);
    } else if (l->type == &sn_layer_dense) {
        add(a, &n, "kernel", 0, p, 2, l->in.c, c->filters, 0, 0);
        if (c->use_bias)
            add(a, &n, "bias", 0, p + a[0].size, 1, c->filters, 0, 0, 0);
    } else if (l->type == &sn_layer_batchnormalization) {
        size_t C = (size_t)l->in.c;
        if (c->bn_scale)
            add(a, &n, "gamma", 0, p, 1, (int)C, 0, 0, 0);
        if (c->bn_center)
            add(a, &n, "beta", 0, p + (c->bn_scale ? C : 0), 1, (int)C, 0, 0, 0);
        add(a, &n, "moving_mean", 1, s, 1, (int)C, 0, 0, 0);
        add(a, &n, "moving_variance", 1, s + C, 1, (int)C, 0, 0, 0);
    }
    return n;
}

void sn_array_element(const struct sn_array *a, size_t i, char *buf, size_t cap)
{
    size_t idx[4] = {0};
    for (int k = a->ndims - 1; k >= 0; k--) { /* row-major, the last index fastest */
        idx[k] = i % (size_t)a->dims[k];
        i /= (size_t)a->dims[k];
    }
    int len = snprintf(buf, cap, "%s[", a->name);
    for (int k = 0; k < a->ndims && len > 0 && (size_t)len < cap; k++)
        len += snprintf(buf + len, cap - (size_t)len, "%s%zu", k ? "," : "", idx[k]);
    if (len > 0 && (size_t)len < cap)
        snprintf(buf + len, cap - (size_t)len, "]");
}

/* What is wrong with v as an element of array a, or NULL: "NaN", "+Inf", "negative". */
static const char *bad_value(const struct sn_array *a, float v)
{
    if (isnan(v))
        return "NaN";
    if (!isfinite(v))
        return v > 0 ? "+Inf" : "-Inf";
    if (v < 0 && a->in_state && strcmp(a->name, "moving_variance") == 0)
        return "negative";
    return NULL;
}

int sn_model_check_values(const struct sn_model *m, int n_layers, const float *params,
                          const float *state, const char *source, struct sn_err *err)
{
    if (sn_test_hook("UNCHECKED_VALUES")) /* the tests' way to write such a file */
        return SN_OK;
    size_t bad = 0;
    char first[256] = "";
    for (int i = 0; i < n_layers && i < m->n_layers; i++) {
        const struct sn_layer *l = &m->layers[i];
        struct sn_array a[SN_MAX_ARRAYS];
        int n = sn_layer_arrays(l, a);
        for (int k = 0; k < n; k++) {
            const float *v = (a[k].in_state ? state : params) + a[k].off;
            for (size_t j = 0; j < a[k].size; j++) {
                const char *what = bad_value(&a[k], v[j]);
                if (!what)
                    continue;
                if (bad++ == 0) {
                    char at[96];
                    sn_array_element(&a[k], j, at, sizeof at);
                    if (what[0] == 'n') /* negative */
                        snprintf(first, sizeof first, "%s: %s is %g: a variance cannot be "
                                                      "negative",
                                 l->name, at, (double)v[j]);
                    else
                        snprintf(first, sizeof first, "%s: %s is %s", l->name, at, what);
                }
            }
        }
    }
    if (bad == 0)
        return SN_OK;
    return sn_err_set(err, SN_EFORMAT,
                      "%s: %s (%zu bad value%s in the file)\n---> HINT: a network with a NaN, an "
                      "infinity or a negative moving variance computes NaN; the file is damaged, "
                      "or the run that made it diverged",
                      source, first, bad, bad == 1 ? "" : "s");
}

int sn_check_moments(const float *moments, size_t n, const char *source, struct sn_err *err)
{
    for (size_t i = 0; i < n; i++)
        SN_RETURN_IF(!isfinite(moments[i]), err, SN_EFORMAT,
                     "%s: optimizer moment %zu of %zu is %s: the run that wrote it diverged\n"
                     "---> HINT: resume from an earlier checkpoint, or start the optimizer "
                     "afresh with train --init",
                     source, i, n, isnan(moments[i]) ? "NaN" : "infinite");
    return SN_OK;
}
