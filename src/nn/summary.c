/* summary.c — what a model says of itself (summary.h): Keras's summary table, FLOPs. */
#include "summary.h"

#include <stdio.h> // defines: fprintf, snprintf

static void shape_str(char *buf, size_t cap, struct sn_shape s)
{
    if (s.rank == 1)
        snprintf(buf, cap, "(None, %d)", s.c);
    else
        snprintf(buf, cap, "(None, %d, %d, %d)", s.h, s.w, s.c);
}

static void commas(char *buf, size_t cap, size_t v)
{
    char tmp[32];
    int len = snprintf(tmp, sizeof tmp, "%zu", v), o = 0;
    for (int i = 0; i < len && (size_t)o + 2 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = tmp[i];
    }
    buf[o] = '\0';
}

void sn_model_summary(const struct sn_model *m, const char *title, int expand_nested,
                      void *file)
{
    FILE *f = file;
    const char *rule = "_________________________________________________________________";
    const char *dbl = "=================================================================";
    fprintf(f, "Model: \"%s\"\n%s\n", title, rule);
    fprintf(f, " %-28s %-25s %-10s\n", "Layer (type)", "Output Shape", "Param #");
    fprintf(f, "%s\n", dbl);
    char shp[64], name[96], num[32];
    snprintf(name, sizeof name, "%s (InputLayer)", "input_1");
    snprintf(shp, sizeof shp, "[(None, %d, %d, %d)]", m->input.h, m->input.w, m->input.c);
    fprintf(f, " %-28s %-25s %-10s\n\n", name, shp, "0");
    size_t frozen = 0, state = 0;
    int first = 0;
    if (m->n_base > 0 && !expand_nested) {
        size_t base = 0;
        for (int i = 0; i < m->n_base; i++)
            base += m->layers[i].n_params + m->layers[i].n_state;
        snprintf(name, sizeof name, "%s (Functional)", m->base_name);
        shape_str(shp, sizeof shp, m->layers[m->n_base - 1].out);
        commas(num, sizeof num, base);
        fprintf(f, " %-28s %-25s %-10s\n", name, shp, num);
        fprintf(f, "%s\n", m->n_base < m->n_layers ? "" : dbl);
        first = m->n_base;
    }
    for (int i = 0; i < m->n_layers; i++) {
        const struct sn_layer *l = &m->layers[i];
        if (!l->trainable)
            frozen += l->n_params;
        state += l->n_state;
        if (i < first)
            continue;
        snprintf(name, sizeof name, "%s (%s)", l->name, l->type->keras_name);
        shape_str(shp, sizeof shp, l->out);
        commas(num, sizeof num, l->n_params + l->n_state);
        fprintf(f, " %s%-*s %-25s %-10s\n", i < m->n_base ? "  " : "", i < m->n_base ? 26 : 28,
                name, shp, num);
        fprintf(f, "%s\n", i + 1 < m->n_layers ? "" : dbl);
    }
    commas(num, sizeof num, m->n_params + m->n_state);
    fprintf(f, "Total params: %s\n", num);
    commas(num, sizeof num, m->n_trainable);
    fprintf(f, "Trainable params: %s\n", num);
    commas(num, sizeof num, frozen + state);
    fprintf(f, "Non-trainable params: %s\n%s\n", num, rule);
}

static double layer_flops(const struct sn_layer *l)
{
    if (l->type == &sn_layer_conv2d)
        return 2.0 * l->out.h * l->out.w * l->out.c * (double)l->conf.kh * l->conf.kw * l->in.c;
    if (l->type == &sn_layer_dense)
        return 2.0 * (double)sn_shape_size(l->in) * l->out.c;
    return 0;
}

double sn_model_flops_per_sample(const struct sn_model *m)
{
    double flops = 0;
    for (int i = 0; i < m->n_layers; i++)
        flops += layer_flops(&m->layers[i]);
    return flops;
}

double sn_model_train_flops_per_sample(const struct sn_model *m)
{
    int first = sn_model_first_needed(m);
    double flops = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const struct sn_layer *l = &m->layers[i];
        double f = layer_flops(l);
        flops += f;                              /* forward */
        if (i > first)
            flops += f;                          /* input gradient */
        if (i >= first && l->trainable)
            flops += f;                          /* weight gradient */
    }
    return flops;
}
