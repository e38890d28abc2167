/* test_values.c — a network's weights array by array (Keras's names, shapes and offsets), and
 * the refusal of values it cannot run on: a NaN or an infinity among the parameters or the
 * statistics, a negative moving variance, a non-finite optimizer moment; named by layer, array
 * and element, through every load path (a checkpoint with or without its optimizer, a [base]
 * checkpoint). */
#include <setjmp.h> // defines: jmp_buf (cmocka needs it)
#include <stdarg.h> // defines: va_list (cmocka needs it)
#include <stddef.h> // defines: size_t (cmocka needs it)

#include <cmocka.h> // defines: cmocka_unit_test, assert_*

#include <math.h>   // defines: NAN, INFINITY
#include <stdio.h>  // defines: snprintf, printf
#include <stdlib.h> // defines: getenv, malloc, free
#include <string.h> // defines: strstr, strcmp, memcpy

#include "checkpoint.h"
#include "config.h"
#include "model.h"
#include "ops.h"
#include "optim.h"
#include "restore.h"
#include "testutil.h"
#include "values.h"

/* tests/keras/tiny.cfg: every kind of array (conv with and without bias, batch normalization,
   dense), named as Keras names the layers */
static struct sn_model *tiny(void)
{
    const char *src = getenv("SN_SOURCE_DIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/keras/tiny.cfg", src ? src : ".");
    struct sn_config *cfg;
    struct sn_err err = {0};
    assert_int_equal(sn_config_load(&cfg, path, &err), SN_OK);
    struct sn_model *m;
    assert_int_equal(sn_model_build(&m, cfg, 1, &sn_ops_ref, &err), SN_OK);
    sn_config_free(cfg);
    sn_model_init_params(m, 7);
    return m;
}

static const struct sn_layer *layer(const struct sn_model *m, const char *name)
{
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i].name, name) == 0)
            return &m->layers[i];
    fail_msg("no layer %s", name);
    return NULL;
}

static void assert_contains(const char *text, const char *part)
{
    if (!strstr(text, part))
        fail_msg("'%s' does not contain '%s'", text, part);
}

static void test_arrays(void **state)
{
    (void)state;
    struct sn_model *m = tiny();
    struct sn_array a[SN_MAX_ARRAYS];
    const struct sn_layer *c1 = layer(m, "block1_conv1");
    assert_int_equal(sn_layer_arrays(c1, a), 2);
    assert_string_equal(a[0].name, "kernel");
    assert_int_equal(a[0].ndims, 4);
    assert_int_equal(a[0].dims[0], 3);
    assert_int_equal(a[0].dims[2], 3);
    assert_int_equal(a[0].dims[3], 4);
    assert_int_equal(a[0].size, 108);
    assert_int_equal(a[0].off, c1->param_off);
    assert_string_equal(a[1].name, "bias");
    assert_int_equal(a[1].off, c1->param_off + 108);
    assert_int_equal(a[0].size + a[1].size, c1->n_params);
    assert_int_equal(sn_layer_arrays(layer(m, "block2_conv1"), a), 1); /* use_bias = false */
    const struct sn_layer *bn = layer(m, "block2_bn");
    assert_int_equal(sn_layer_arrays(bn, a), 4);
    static const char *const names[] = {"gamma", "beta", "moving_mean", "moving_variance"};
    for (int k = 0; k < 4; k++) {
        assert_string_equal(a[k].name, names[k]);
        assert_int_equal(a[k].in_state, k >= 2);
        assert_int_equal(a[k].size, 6);
    }
    assert_int_equal(a[1].off, bn->param_off + 6);
    assert_int_equal(a[3].off, bn->state_off + 6);
    assert_int_equal(sn_layer_arrays(layer(m, "predictions"), a), 2);
    assert_int_equal(a[0].dims[0], 96);
    assert_int_equal(a[0].dims[1], 3);
    assert_int_equal(sn_layer_arrays(layer(m, "block1_pool"), a), 0);

    char at[64];
    sn_layer_arrays(c1, a);
    sn_array_element(&a[0], ((1 * 3 + 2) * 3 + 0) * 4 + 3, at, sizeof at);
    assert_string_equal(at, "kernel[1,2,0,3]");
    sn_array_element(&a[1], 2, at, sizeof at);
    assert_string_equal(at, "bias[2]");
    sn_model_free(m);
}

static void test_check_values(void **state)
{
    (void)state;
    struct sn_model *m = tiny();
    struct sn_err err = {0};
    assert_int_equal(sn_model_check_values(m, m->n_layers, m->params, m->state, "x", &err), SN_OK);
    struct sn_array a[SN_MAX_ARRAYS];
    const struct sn_layer *c1 = layer(m, "block1_conv1"), *bn = layer(m, "block2_bn");
    const struct sn_layer *fc = layer(m, "predictions");

    sn_layer_arrays(c1, a);
    float *k = m->params + a[0].off + 63;
    float keep = *k;
    *k = NAN;
    assert_int_equal(sn_model_check_values(m, m->n_layers, m->params, m->state, "tiny.ckpt", &err),
                     SN_EFORMAT);
    assert_contains(err.msg, "tiny.ckpt: block1_conv1: kernel[1,2,0,3] is NaN (1 bad value");
    /* a layer past n_layers is not looked at: a [base] checkpoint holds the first layers only */
    assert_int_equal(sn_model_check_values(m, c1->index, m->params, m->state, "x", &err), SN_OK);
    *k = keep;

    sn_layer_arrays(fc, a);
    m->params[a[1].off + 2] = -INFINITY;
    m->params[a[0].off] = INFINITY;
    assert_int_equal(sn_model_check_values(m, m->n_layers, m->params, m->state, "f.h5", &err),
                     SN_EFORMAT);
    assert_contains(err.msg, "f.h5: predictions: kernel[0,0] is +Inf (2 bad values");
    m->params[a[1].off + 2] = m->params[a[0].off] = 0;

    sn_layer_arrays(bn, a);
    m->state[a[3].off + 4] = -0.25f;
    assert_int_equal(sn_model_check_values(m, m->n_layers, m->params, m->state, "f.h5", &err),
                     SN_EFORMAT);
    assert_contains(err.msg, "block2_bn: moving_variance[4] is -0.25: a variance cannot be "
                             "negative");
    m->state[a[3].off + 4] = NAN;
    assert_int_equal(sn_model_check_values(m, m->n_layers, m->params, m->state, "f.h5", &err),
                     SN_EFORMAT);
    assert_contains(err.msg, "block2_bn: moving_variance[4] is NaN");
    m->state[a[3].off + 4] = 1;
    m->state[a[2].off] = -3; /* a negative mean is an ordinary mean */
    m->params[a[1].off] = -3; /* beta too */
    assert_int_equal(sn_model_check_values(m, m->n_layers, m->params, m->state, "x", &err), SN_OK);

    float mom[4] = {0, 1, -2, 3};
    assert_int_equal(sn_check_moments(mom, 4, "r.ckpt", &err), SN_OK);
    mom[2] = NAN;
    assert_int_equal(sn_check_moments(mom, 4, "r.ckpt", &err), SN_EFORMAT);
    assert_contains(err.msg, "r.ckpt: optimizer moment 2 of 4 is NaN");
    sn_model_free(m);
}

static void save(const char *path, const struct sn_model *m, size_t n_params, size_t n_state,
                 const float *params, const float *st, const float *opt, size_t n_opt)
{
    struct sn_ckpt_meta meta = {.model_hash = m->structure_hash, .world_size = 1,
                                .n_params = n_params, .n_state = n_state, .n_opt = n_opt,
                                .best_val_loss = INFINITY, .val_loss = NAN, .lr = 1};
    struct sn_err err = {0};
    if (sn_checkpoint_save(path, &meta, params, st, opt, &err) != SN_OK)
        fail_msg("%s", err.msg);
}

/* Every load of a checkpoint (a resume with the optimizer, --init, evaluate, predict, extract
 * without) goes through sn_restore_checkpoint: each refuses the bad value, naming the file. */
static void test_restore_refuses(void **state)
{
    (void)state;
    const char *dir = sn_test_dir("values_restore");
    char path[1200];
    snprintf(path, sizeof path, "%s/nan.ckpt", dir);
    struct sn_model *m = tiny();
    struct sn_err err = {0};
    struct sn_optim_conf oc = {.kind = SN_OPT_ADAM, .lr = 0.001, .beta_1 = 0.9, .beta_2 = 0.999,
                               .epsilon = 1e-7};
    struct sn_optim *opt;
    assert_int_equal(sn_optim_create(&opt, &oc, m, &err), SN_OK);
    size_t n_opt = (size_t)opt->n_slots * m->n_params;
    float *p = malloc(m->n_params * sizeof *p), *o = calloc(n_opt, sizeof *o);
    memcpy(p, m->params, m->n_params * sizeof *p);
    struct sn_ckpt_meta meta;

    p[layer(m, "block2_conv1")->param_off + 5] = NAN;
    save(path, m, m->n_params, m->n_state, p, m->state, o, n_opt);
    assert_int_equal(sn_restore_checkpoint(m, NULL, path, &meta, &err), SN_EFORMAT);
    assert_contains(err.msg, "nan.ckpt: block2_conv1: kernel[0,0,0,5] is NaN");
    assert_int_equal(sn_restore_checkpoint(m, opt, path, &meta, &err), SN_EFORMAT);
    assert_contains(err.msg, "block2_conv1: kernel[0,0,0,5] is NaN");

    p[layer(m, "block2_conv1")->param_off + 5] = 0.5f;
    o[n_opt - 1] = INFINITY; /* the second moment of the last parameter */
    save(path, m, m->n_params, m->n_state, p, m->state, o, n_opt);
    assert_int_equal(sn_restore_checkpoint(m, opt, path, &meta, &err), SN_EFORMAT);
    assert_contains(err.msg, "nan.ckpt: optimizer moment");
    assert_contains(err.msg, "is infinite");
    /* evaluate and predict read no moments: the weights are good */
    assert_int_equal(sn_restore_checkpoint(m, NULL, path, &meta, &err), SN_OK);
    free(p);
    free(o);
    sn_optim_free(opt);
    sn_model_free(m);
}

/* A [base] checkpoint with a NaN: refused, and the model keeps the weights it had. */
static void test_restore_base_refuses(void **state)
{
    (void)state;
    const char *d = sn_test_dir("values_base");
    char dir[1024], path[1200], text[3000];
    snprintf(dir, sizeof dir, "%s", d);
    snprintf(path, sizeof path, "%s/base.cfg", dir);
    assert_int_equal(sn_test_write_file(path, "[data]\nimage_size = 8\ncolor_mode = grayscale\n"
                                              "[conv2d]\nname = base_conv\nfilters = 4\n"
                                              "kernel_size = 3\n[batchnormalization]\n"
                                              "name = base_bn\n"),
                     0);
    snprintf(text, sizeof text,
             "[data]\nimage_size = 8\ncolor_mode = grayscale\n[base]\nconfig = %s/base.cfg\n"
             "checkpoint = %s/base.ckpt\n[flatten]\n[dense]\nunits = 2\n",
             dir, dir);
    struct sn_config *cfg;
    struct sn_err err = {0};
    assert_int_equal(sn_config_load_string(&cfg, text, "top.cfg", &err), SN_OK);
    struct sn_model *m;
    assert_int_equal(sn_model_build(&m, cfg, 1, &sn_ops_ref, &err), SN_OK);
    sn_config_free(cfg);
    sn_model_init_params(m, 3);
    assert_int_equal(m->n_base, 2);
    float *p = malloc(m->base_params * sizeof *p), *s = malloc(m->base_state * sizeof *s);
    memcpy(p, m->params, m->base_params * sizeof *p);
    for (size_t i = 0; i < m->base_state; i++)
        s[i] = 1;
    s[m->base_state - 1] = -1; /* base_bn's last moving variance */
    snprintf(path, sizeof path, "%s/base.ckpt", dir);
    save(path, m, m->base_params, m->base_state, p, s, NULL, 0);
    float before = m->state[m->base_state - 1];
    assert_int_equal(sn_restore_base(m, &err), SN_EFORMAT);
    assert_contains(err.msg, "base.ckpt: base_bn: moving_variance[3] is -1");
    assert_true(m->state[m->base_state - 1] == before);
    s[m->base_state - 1] = 2;
    save(path, m, m->base_params, m->base_state, p, s, NULL, 0);
    assert_int_equal(sn_restore_base(m, &err), SN_OK);
    assert_true(m->state[m->base_state - 1] == 2);
    free(p);
    free(s);
    sn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_check_values),
        cmocka_unit_test(test_restore_refuses),
        cmocka_unit_test(test_restore_base_refuses),
    };
    return cmocka_run_group_tests_name("values", tests, NULL, NULL);
}
