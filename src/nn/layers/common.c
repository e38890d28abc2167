/* common.c — what the layer files share: the table of layer types, the activation key, and
 * Keras's glorot_uniform initialiser. */
#include "layer.h"

#include <math.h>   // defines: sqrtf
#include <stdio.h>  // defines: snprintf
#include <string.h> // defines: strcmp

const struct sn_layer_type *const sn_layer_types[] = {
    &sn_layer_rescaling,
    &sn_layer_conv2d,
    &sn_layer_maxpooling2d,
    &sn_layer_flatten,
    &sn_layer_dense,
    &sn_layer_dropout,
    &sn_layer_activation,
    &sn_layer_globalaveragepooling2d,
    &sn_layer_batchnormalization,
    &sn_layer_preprocess,
    NULL,
};

const struct sn_layer_type *sn_layer_type_find(const char *section)
{
    for (int i = 0; sn_layer_types[i] != NULL; i++)
        if (strcmp(sn_layer_types[i]->section, section) == 0)
            return sn_layer_types[i];
    return NULL;
}

int sn_layer_parse_activation(const struct sn_config *cfg, const struct sn_section *s,
                              const char *def, enum sn_act *out, struct sn_err *err)
{
    /* in enum sn_act order */
    static const char *const names[] = {"linear", "relu", "sigmoid", "tanh", "softmax", NULL};
    int idx = 0;
    SN_FORWARD(sn_section_choice(cfg, s, "activation", def, names, &idx, err));
    *out = (enum sn_act)idx;
    return SN_OK;
}

void sn_glorot_uniform(float *w, size_t n, int fan_in, int fan_out, struct sn_rng *rng)
{
    /* Keras: uniform in [-limit, limit], limit = sqrt(6 / (fan_in + fan_out)) */
    float limit = sqrtf(6.0f / (float)(fan_in + fan_out));
    for (size_t i = 0; i < n; i++)
        w[i] = (2.0f * sn_rng_uniform(rng) - 1.0f) * limit;
}

int sn_layer_require(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                     struct sn_err *err)
{
    if (sn_section_key(s, key) != NULL)
        return SN_OK;
    char hint[160];
    snprintf(hint, sizeof hint, "missing required key; HINT: add `%s = ...` to the section", key);
    return sn_config_missing(cfg, s, key, hint, err);
}
