/* test_callbacks.c — ModelCheckpoint(save_best_only), EarlyStopping and ReduceLROnPlateau fed
 * val_loss sequences, against Keras's counting worked out by hand: patience, min_delta (an
 * amount to beat), the first epoch never stopping, cooldown, min_lr, separate references for
 * each callback, NaN, and the state's exact round trip through a run record. */
#include <setjmp.h> // defines: jmp_buf (needed by cmocka.h)
#include <stdarg.h> // defines: va_list (needed by cmocka.h)
#include <stddef.h> // defines: size_t (needed by cmocka.h)
#include <stdint.h> // defines: uint64_t

#include <cmocka.h> // defines: cmocka_unit_test, assert_*

#include <math.h>   // defines: NAN, INFINITY, isinf
#include <string.h> // defines: strstr

#include "callbacks.h"
#include "config.h"

/* Runs n epochs of val_loss at lr 1 (ReduceLROnPlateau's changes applied as fit.c applies
 * them); stop_at gets the epoch that stopped (-1 none), lrs the lr after each epoch, saved the
 * epochs whose checkpoint is the best so far. */
static void feed(const struct sn_callbacks_conf *c, struct sn_callbacks_state *st,
                 const double *val, int n, int *stop_at, double *lrs, int *saved)
{
    double lr = 1.0;
    *stop_at = -1;
    for (int e = 0; e < n; e++) {
        struct sn_callbacks_result res;
        sn_callbacks_epoch_end(c, st, e, val[e], lr, &res);
        lr = res.lr;
        if (lrs)
            lrs[e] = lr;
        if (saved)
            saved[e] = res.improved;
        if (res.stop) {
            *stop_at = e;
            return;
        }
    }
}

static void test_checkpoint_best(void **state)
{
    (void)state;
    struct sn_callbacks_conf c = {.save_best_only = 1};
    struct sn_callbacks_state st;
    sn_callbacks_init(&st);
    const double val[] = {1.0, 0.9, 0.95, 0.9, NAN, 0.8};
    int stop, saved[6];
    feed(&c, &st, val, 6, &stop, NULL, saved);
    /* improvement is strictly lower, no min_delta; NaN never improves */
    const int want[] = {1, 1, 0, 0, 0, 1};
    assert_memory_equal(saved, want, sizeof want);
    assert_int_equal(stop, -1);
    assert_true(st.best == 0.8);
}

static void test_early_stopping_patience(void **state)
{
    (void)state;
    struct sn_callbacks_conf c = {.es_on = 1, .es_patience = 2};
    struct sn_callbacks_state st;
    sn_callbacks_init(&st);
    /* best 0.5 at epoch 1; epochs 2 and 3 do not beat it: wait reaches 2 at epoch 3 */
    const double val[] = {1.0, 0.5, 0.6, 0.5, 0.1};
    int stop;
    feed(&c, &st, val, 5, &stop, NULL, NULL);
    assert_int_equal(stop, 3);
    assert_int_equal(st.es_wait, 2);
    assert_true(st.es_best == 0.5);
}

static void test_early_stopping_min_delta(void **state)
{
    (void)state;
    struct sn_callbacks_conf c = {.es_on = 1, .es_patience = 2, .es_min_delta = 0.1};
    struct sn_callbacks_state st;
    sn_callbacks_init(&st);
    /* 0.95 beats 1.0 by less than 0.1: no improvement; 0.85 beats 1.0 by 0.15: one */
    const double val[] = {1.0, 0.95, 0.85, 0.80, 0.76};
    int stop;
    feed(&c, &st, val, 5, &stop, NULL, NULL);
    /* epoch 1: wait 1; epoch 2: improvement (best 0.85, wait 0); epoch 3: 0.80 + 0.1 >= 0.85,
       wait 1; epoch 4: 0.76 + 0.1 >= 0.85, wait 2: stop */
    assert_int_equal(stop, 4);
    assert_true(st.es_best == 0.85);
}

static void test_early_stopping_first_epoch(void **state)
{
    (void)state;
    /* patience 0 (Keras's default): the first epoch never stops, nor does an improving one */
    struct sn_callbacks_conf c = {.es_on = 1, .es_patience = 0};
    struct sn_callbacks_state st;
    sn_callbacks_init(&st);
    const double val[] = {1.0, 0.9, 0.8, 0.85};
    int stop;
    feed(&c, &st, val, 4, &stop, NULL, NULL);
    assert_int_equal(stop, 3);
    /* a NaN first epoch is no improvement, but the first epoch still does not stop */
    sn_callbacks_init(&st);
    const double nan_first[] = {NAN, 0.9, 0.95};
    feed(&c, &st, nan_first, 3, &stop, NULL, NULL);
    assert_int_equal(stop, 2);
}

static void test_reduce_lr(void **state)
{
    (void)state;
    struct sn_callbacks_conf c = {.rlr_on = 1, .rlr_patience = 2, .rlr_factor = 0.5,
                                  .rlr_min_delta = 0.01, .rlr_cooldown = 1, .rlr_min_lr = 0.2};
    struct sn_callbacks_state st;
    sn_callbacks_init(&st);
    /* a plateau from epoch 1 on (0.995 is not below 1.0 - 0.01) */
    const double val[] = {1.0, 0.995, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0};
    double lrs[9];
    int stop;
    feed(&c, &st, val, 9, &stop, lrs, NULL);
    /* epoch 1: wait 1; 2: wait 2 -> halve (cooldown 1, wait 0); 3: the cooldown ends (wait 0),
       then, no longer in cooldown, wait 1; 4: wait 2 -> 0.25; 5: wait 1; 6: wait 2 -> 0.2
       (min_lr, not 0.125); 7, 8: at min_lr, nothing changes */
    const double want[] = {1, 1, 0.5, 0.5, 0.25, 0.25, 0.2, 0.2, 0.2};
    for (int e = 0; e < 9; e++)
        assert_true(lrs[e] == want[e]);
    assert_int_equal(stop, -1);
    /* at min_lr, the rate stays and wait is not reset (Keras) */
    double lr = 0.2;
    struct sn_callbacks_result res;
    sn_callbacks_epoch_end(&c, &st, 9, 1.0, lr, &res);
    sn_callbacks_epoch_end(&c, &st, 10, 1.0, lr, &res);
    sn_callbacks_epoch_end(&c, &st, 11, 1.0, lr, &res);
    assert_true(res.lr == 0.2);
    assert_true(st.rlr_wait >= 2);
}

/* EarlyStopping and ReduceLROnPlateau keep separate references: with different min_delta
 * they disagree on what improved, as they do in Keras. */
static void test_separate_references(void **state)
{
    (void)state;
    struct sn_callbacks_conf c = {.save_best_only = 1, .es_on = 1, .es_patience = 5,
                                  .es_min_delta = 0.0, .rlr_on = 1, .rlr_patience = 5,
                                  .rlr_factor = 0.5, .rlr_min_delta = 0.5};
    struct sn_callbacks_state st;
    sn_callbacks_init(&st);
    const double val[] = {1.0, 0.9, 0.8};
    int stop;
    feed(&c, &st, val, 3, &stop, NULL, NULL);
    assert_true(st.best == 0.8);     /* the checkpoint's */
    assert_true(st.es_best == 0.8);  /* any decrease counts */
    assert_int_equal(st.es_wait, 0);
    assert_true(st.rlr_best == 1.0); /* only a decrease of more than 0.5 counts */
    assert_int_equal(st.rlr_wait, 2);
}

static void test_state_round_trip(void **state)
{
    (void)state;
    struct sn_callbacks_state st = {.best = 0.1 + 0.2, .es_best = INFINITY, .es_wait = 3,
                                    .rlr_best = 1.0 / 3.0, .rlr_wait = 1, .rlr_cooldown = 2};
    struct sn_record rec = {0};
    sn_callbacks_save(&st, &rec);
    struct sn_callbacks_state back;
    struct sn_err err = {0};
    assert_int_equal(sn_callbacks_load(&back, rec.text, "x.ckpt", &err), SN_OK);
    assert_true(back.best == st.best && back.rlr_best == st.rlr_best); /* exact, as %a */
    assert_true(isinf(back.es_best));
    assert_int_equal(back.es_wait, 3);
    assert_int_equal(back.rlr_wait, 1);
    assert_int_equal(back.rlr_cooldown, 2);
    assert_int_equal(sn_callbacks_load(&back, "cb.best=0x1p+0\n", "x.ckpt", &err), SN_EFORMAT);
    assert_non_null(strstr(err.msg, "x.ckpt"));
    sn_record_free(&rec);
}

static void test_conf(void **state)
{
    (void)state;
    struct sn_config *cfg;
    struct sn_err err = {0};
    struct sn_callbacks_conf c;
    assert_int_equal(sn_config_load_string(&cfg, "[early_stopping]\n[reduce_lr_on_plateau]\n",
                                           "cb.cfg", &err),
                     SN_OK);
    assert_int_equal(sn_callbacks_conf_parse(&c, cfg, &err), SN_OK);
    /* Keras's defaults */
    assert_true(c.es_on && c.es_patience == 0 && c.es_min_delta == 0);
    assert_true(c.rlr_on && c.rlr_patience == 10 && c.rlr_factor == 0.1 &&
                c.rlr_min_delta == 1e-4 && c.rlr_cooldown == 0 && c.rlr_min_lr == 0);
    assert_true(c.save_best_only);
    sn_config_free(cfg);
    assert_int_equal(sn_config_load_string(&cfg, "[early_stopping]\nrestore_best_weights = true\n",
                                           "cb.cfg", &err),
                     SN_OK);
    assert_int_equal(sn_callbacks_conf_parse(&c, cfg, &err), SN_EINVAL);
    assert_non_null(strstr(err.msg, "cb.cfg:2"));
    assert_non_null(strstr(err.msg, "not supported"));
    sn_config_free(cfg);
    assert_int_equal(sn_config_load_string(&cfg, "[early_stopping]\nmonitor = val_accuracy\n",
                                           "cb.cfg", &err),
                     SN_OK);
    assert_int_equal(sn_callbacks_conf_parse(&c, cfg, &err), SN_EINVAL);
    assert_non_null(strstr(err.msg, "val_loss"));
    sn_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkpoint_best),
        cmocka_unit_test(test_early_stopping_patience),
        cmocka_unit_test(test_early_stopping_min_delta),
        cmocka_unit_test(test_early_stopping_first_epoch),
        cmocka_unit_test(test_reduce_lr),
        cmocka_unit_test(test_separate_references),
        cmocka_unit_test(test_state_round_trip),
        cmocka_unit_test(test_conf),
    };
    return cmocka_run_group_tests_name("callbacks", tests, NULL, NULL);
}
