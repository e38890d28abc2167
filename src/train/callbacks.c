/* callbacks.c — see callbacks.h. The counting follows Keras's callbacks:
 *
 *   EarlyStopping:      wait += 1; if val_loss + min_delta < best: best = val_loss, wait = 0;
 *                       elif wait >= patience and epoch > 0: stop.
 *                       (Keras 3's order: tf.keras 2.x also stopped on an improving epoch when
 *                       patience = 0, since it tested wait >= patience after the reset.)
 *   ReduceLROnPlateau:  if cooldown: cooldown -= 1, wait = 0;
 *                       if val_loss < best - min_delta: best = val_loss, wait = 0;
 *                       elif not cooldown: wait += 1; if wait >= patience and lr > min_lr:
 *                           lr = max(lr * factor, min_lr), cooldown = cooldown_epochs, wait = 0.
 *   ModelCheckpoint:    save when val_loss < best (no min_delta). */
#include "callbacks.h"

#include <math.h>   // defines: INFINITY, isnan, fmax
#include <stdio.h>  // defines: snprintf

int sn_callbacks_conf_parse(struct sn_callbacks_conf *c, const struct sn_config *cfg,
                            struct sn_err *err)
{
    const struct sn_section *ck = sn_config_find(cfg, "checkpoint");
    SN_FORWARD(sn_section_bool(cfg, ck, "save_best_only", 1, &c->save_best_only, err));

    const struct sn_section *es = sn_config_find(cfg, "early_stopping");
    c->es_on = es != NULL;
    SN_FORWARD(sn_section_int(cfg, es, "patience", 0, 0, 1 << 20, &c->es_patience, err));
    SN_FORWARD(sn_section_float(cfg, es, "min_delta", 0, 0, 1e9, &c->es_min_delta, err));
    if (sn_section_key(es, "restore_best_weights") != NULL)
        return sn_config_error(cfg, es, "restore_best_weights", err, SN_EINVAL,
                               "not supported: NAME-best.ckpt already holds the weights of the "
                               "best epoch (lowest val_loss); HINT: evaluate or resume from it, "
                               "and remove this key");

    const struct sn_section *rl = sn_config_find(cfg, "reduce_lr_on_plateau");
    c->rlr_on = rl != NULL;
    SN_FORWARD(sn_section_int(cfg, rl, "patience", 10, 0, 1 << 20, &c->rlr_patience, err));
    SN_FORWARD(sn_section_float(cfg, rl, "factor", 0.1, 0, 0.999999, &c->rlr_factor, err));
    SN_FORWARD(sn_section_float(cfg, rl, "min_delta", 1e-4, 0, 1e9, &c->rlr_min_delta, err));
    SN_FORWARD(sn_section_float(cfg, rl, "min_lr", 0, 0, 1e3, &c->rlr_min_lr, err));
    SN_FORWARD(sn_section_int(cfg, rl, "cooldown", 0, 0, 1 << 20, &c->rlr_cooldown, err));

    const struct sn_section *both[2] = {es, rl};
    for (int i = 0; i < 2; i++)
        if (both[i] != NULL) {
            static const char *const monitors[] = {"val_loss", NULL};
            int m;
            SN_FORWARD(sn_section_choice(cfg, both[i], "monitor", "val_loss", monitors, &m, err));
        }
    return SN_OK;
}

void sn_callbacks_init(struct sn_callbacks_state *st)
{
    *st = (struct sn_callbacks_state){.best = INFINITY, .es_best = INFINITY,
                                      .rlr_best = INFINITY};
}

void sn_callbacks_epoch_end(const struct sn_callbacks_conf *c, struct sn_callbacks_state *st,
                            int epoch, double val_loss, double lr,
                            struct sn_callbacks_result *res)
{
    *res = (struct sn_callbacks_result){.lr = lr};
    /* NaN compares false everywhere below: it counts as no improvement */
    if (val_loss < st->best) {
        st->best = val_loss;
        res->improved = 1;
    }
    if (c->es_on) {
        st->es_wait++;
        if (val_loss + c->es_min_delta < st->es_best) {
            st->es_best = val_loss;
            st->es_wait = 0;
        } else if (st->es_wait >= c->es_patience && epoch > 0) {
            res->stop = 1;
        }
    }
    if (c->rlr_on) {
        if (st->rlr_cooldown > 0) {
            st->rlr_cooldown--;
            st->rlr_wait = 0;
        }
        if (val_loss < st->rlr_best - c->rlr_min_delta) {
            st->rlr_best = val_loss;
            st->rlr_wait = 0;
        } else if (st->rlr_cooldown == 0) {
            st->rlr_wait++;
            if (st->rlr_wait >= c->rlr_patience && lr > (double)(float)c->rlr_min_lr) {
                res->lr = fmax(lr * c->rlr_factor, c->rlr_min_lr);
                st->rlr_cooldown = c->rlr_cooldown;
                st->rlr_wait = 0;
            }
        }
    }
}

void sn_callbacks_save(const struct sn_callbacks_state *st, struct sn_record *rec)
{
    sn_record_add(rec, "cb.best", "%a", st->best);
    sn_record_add(rec, "cb.es_best", "%a", st->es_best);
    sn_record_add(rec, "cb.es_wait", "%d", st->es_wait);
    sn_record_add(rec, "cb.rlr_best", "%a", st->rlr_best);
    sn_record_add(rec, "cb.rlr_wait", "%d", st->rlr_wait);
    sn_record_add(rec, "cb.rlr_cooldown", "%d", st->rlr_cooldown);
}

/* A counter of the record: a whole number in [0, 2^30). */
static int get_count(const char *record, const char *key, int *out)
{
    double v;
    if (sn_record_double(record, key, 0, &v) != 0 || v < 0 || v >= (1 << 30) || v != (int)v)
        return -1;
    *out = (int)v;
    return 0;
}

int sn_callbacks_load(struct sn_callbacks_state *st, const char *record, const char *path,
                      struct sn_err *err)
{
    if (sn_record_double(record, "cb.best", 0, &st->best) ||
        sn_record_double(record, "cb.es_best", 0, &st->es_best) ||
        get_count(record, "cb.es_wait", &st->es_wait) ||
        sn_record_double(record, "cb.rlr_best", 0, &st->rlr_best) ||
        get_count(record, "cb.rlr_wait", &st->rlr_wait) ||
        get_count(record, "cb.rlr_cooldown", &st->rlr_cooldown))
        return sn_err_set(err, SN_EFORMAT, "%s: the run record lacks the callbacks' state (cb.*)",
                          path);
    return SN_OK;
}
