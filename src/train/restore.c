/* restore.c — a model's weights from checkpoints (restore.h). */
#include "restore.h"

#include <stdlib.h> // defines: malloc, free
#include <string.h> // defines: memcpy

#include "values.h"

int sn_restore_checkpoint(struct sn_model *m, struct sn_optim *opt, const char *path,
                          struct sn_ckpt_meta *meta, struct sn_err *err)
{
    SN_FORWARD(sn_checkpoint_read_meta(path, meta, err));
    if (meta->model_hash != m->structure_hash)
        return sn_err_set(err, SN_EFORMAT,
                          "%s: this checkpoint was made for another network (its layers or shapes "
                          "differ from the config's)\n---> HINT: pass the config it was trained "
                          "with",
                          path);
    int64_t n_opt = opt ? (int64_t)opt->n_slots * (int64_t)opt->n_params : -1;
    SN_FORWARD(sn_checkpoint_load(path, meta, m->params, (int64_t)m->n_params, m->state,
                                  (int64_t)m->n_state, opt ? opt->moments : NULL, n_opt, err));
    SN_FORWARD(sn_model_check_values(m, m->n_layers, m->params, m->state, path, err));
    return opt ? sn_check_moments(opt->moments, (size_t)n_opt, path, err) : SN_OK;
}

int sn_restore_base(struct sn_model *m, struct sn_err *err)
{
    if (m->n_base == 0 || !m->base_checkpoint[0])
        return SN_OK;
    const char *path = m->base_checkpoint;
    struct sn_ckpt_meta meta;
    SN_FORWARD(sn_checkpoint_read_meta(path, &meta, err));
    SN_RETURN_IF(meta.n_params != m->base_params || meta.n_state != m->base_state, err, SN_EINVAL,
                 "[base] checkpoint %s holds %llu parameters and %llu statistics; the base %s "
                 "has %zu and %zu: a checkpoint of another network?",
                 path, (unsigned long long)meta.n_params, (unsigned long long)meta.n_state,
                 m->base_config, m->base_params, m->base_state);
    float *p = malloc((m->base_params + 1) * sizeof(float));
    float *s = malloc((m->base_state + 1) * sizeof(float));
    int rc = p && s ? sn_checkpoint_load(path, &meta, p, (int64_t)m->base_params, s,
                                         (int64_t)m->base_state, NULL, -1, err)
                    : sn_err_set(err, SN_ENOMEM, "out of memory");
    if (rc == SN_OK) /* the base's layers are the model's first n_base, at the same offsets */
        rc = sn_model_check_values(m, m->n_base, p, s, path, err);
    if (rc == SN_OK) {
        memcpy(m->params, p, m->base_params * sizeof(float));
        memcpy(m->state, s, m->base_state * sizeof(float));
    }
    free(p);
    free(s);
    return rc;
}
