/* test_model.c — which backend runs each part of a layer (sn_layer_ops), timing a layer without
 * changing it, and where the model keeps oneDNN's blocked layout between layers
 * (sn_model_plan_layouts): inside runs of convolutions and poolings that all run on oneDNN and
 * hold a Winograd convolution, ending on convolutions, never across a layer outside oneDNN,
 * channels not in 16s, or a backward part on another backend. */
#include <setjmp.h> // defines: jmp_buf (cmocka needs it)
#include <stdarg.h> // defines: va_list (cmocka needs it)
#include <stddef.h> // defines: size_t (cmocka needs it)
#include <stdint.h> // defines: uint64_t
#include <stdio.h>  // defines: snprintf

#include <cmocka.h> // defines: cmocka_unit_test, assert_*

#include <stdlib.h> // defines: malloc, free
#include <string.h> // defines: strcmp, memcpy

#include "config.h"
#include "layout.h"
#include "model.h"
#include "ops.h"

/* Listing 8.1 with a choice of backend, first filters, extra [model] key and a layer inserted
 * after the first pooling. */
static struct sn_model *build(const char *backend, int filters, const char *model_key,
                              const char *after_pool)
{
    char text[2048];
    snprintf(text, sizeof text,
             "[model]\ninput_shape = 28,28,1\nbackend = %s\n%s\n"
             "[train]\nloss = sparse_categorical_crossentropy\n"
             "[rescaling]\nscale = 1/255\n"
             "[conv2d]\nfilters = %d\nkernel_size = 3\nactivation = relu\n"
             "[maxpooling2d]\npool_size = 2\n%s\n"
             "[conv2d]\nfilters = 64\nkernel_size = 3\nactivation = relu\n"
             "[maxpooling2d]\npool_size = 2\n"
             "[conv2d]\nfilters = 128\nkernel_size = 3\nactivation = relu\n"
             "[flatten]\n[dense]\nunits = 10\nactivation = softmax\n",
             backend, model_key, filters, after_pool);
    struct sn_config *cfg = NULL;
    struct sn_err err = {0};
    assert_int_equal(sn_config_load_string(&cfg, text, "test.cfg", &err), SN_OK);
    const struct sn_ops *ops = sn_ops_by_name(backend);
    assert_non_null(ops);
    struct sn_model *m = NULL;
    assert_int_equal(sn_model_build(&m, cfg, 4, ops, &err), SN_OK);
    sn_config_free(cfg);
    return m;
}

/* the layers whose output is kept blocked, as a string of 0 and 1 */
static const char *outs(const struct sn_model *m)
{
    static char s[64];
    int i;
    for (i = 0; i < m->n_layers && i < 63; i++) {
        s[i] = (char)('0' + m->layers[i].blk_out);
        /* a boundary is blocked on both sides or neither */
        if (i + 1 < m->n_layers)
            assert_int_equal(m->layers[i].blk_out, m->layers[i + 1].blk_in);
    }
    s[i] = '\0';
    assert_int_equal(m->layers[0].blk_in, 0); /* the caller's batch is NHWC */
    return s;
}

static void test_plan_layouts(void **state)
{
    (void)state;
    int native = sn_ops_onednn_blocked_native();
    char desc[256];

    /* rescaling conv pool conv pool conv flatten dense: conv .. conv2d_2, ends reordered */
    struct sn_model *m = build("winograd", 32, "", "");
    int kept = sn_model_plan_layouts(m, 1);
    assert_int_equal(sn_model_layout_runs(m, desc, sizeof desc), kept);
    if (!native) {
        assert_int_equal(kept, 0);
        assert_string_equal(outs(m), "00000000");
        assert_string_equal(desc, "none");
        sn_model_free(m);
        print_message("note: no AVX-512 here: blocked layouts are never kept; checked that\n");
        return;
    }
    assert_int_equal(kept, 4);
    assert_string_equal(outs(m), "01111000");
    assert_string_equal(desc, "conv2d to conv2d_2 (5 layers)");
    /* inference only: the same */
    assert_int_equal(sn_model_plan_layouts(m, 0), 4);
    /* a weight gradient on OpenBLAS: that convolution reads NHWC, so it splits the run, and
       what is left holds a pooling at an end and one convolution: nothing kept */
    m->layers[3].ops[SN_PART_BWD_WEIGHTS] = &sn_ops_blas;
    assert_int_equal(sn_model_plan_layouts(m, 1), 0);
    assert_int_equal(sn_model_layout_runs(m, desc, sizeof desc), 0);
    assert_string_equal(outs(m), "00000000");
    assert_string_equal(desc, "none");
    /* ... unless only the forward runs */
    assert_int_equal(sn_model_plan_layouts(m, 0), 4);
    /* a forward pass on OpenBLAS: the same split, forward or not */
    m->layers[3].ops[SN_PART_BWD_WEIGHTS] = NULL;
    m->layers[3].ops[SN_PART_FORWARD] = &sn_ops_blas;
    assert_int_equal(sn_model_plan_layouts(m, 0), 0);
    sn_model_free(m);

    /* off by config */
    m = build("winograd", 32, "onednn_layout = nhwc", "");
    assert_int_equal(sn_model_plan_layouts(m, 1), 0);
    assert_string_equal(outs(m), "00000000");
    sn_model_free(m);

    /* no Winograd in the run: NHWC is as fast for direct convolutions, and nothing reorders */
    m = build("onednn", 32, "", "");
    assert_int_equal(sn_model_plan_layouts(m, 1), 0);
    sn_model_free(m);
    m = build("blas", 32, "", "");
    assert_int_equal(sn_model_plan_layouts(m, 1), 0);
    sn_model_free(m);
    /* bf16 convolutions (precision = bf16) convert their inputs: kept as with Winograd */
    m = build("onednn", 32, "", "");
    for (int i = 0; i < m->n_layers; i++)
        if (strcmp(m->layers[i].type->section, "conv2d") == 0)
            m->layers[i].ops[SN_PART_FORWARD] = &sn_ops_bf16;
    assert_int_equal(sn_model_plan_layouts(m, 1), 4);
    assert_string_equal(outs(m), "01111000");
    sn_model_free(m);

    /* 24 channels after the first convolution are not in 16s: the run starts after them */
    m = build("winograd", 24, "", "");
    assert_int_equal(sn_model_plan_layouts(m, 1), 2);
    assert_int_equal(sn_model_layout_runs(m, desc, sizeof desc), 2);
    assert_string_equal(outs(m), "00011000");
    assert_string_equal(desc, "conv2d_1 to conv2d_2 (3 layers)");
    sn_model_free(m);

    /* a dropout between: runs on either side, the first of one convolution only */
    m = build("winograd", 32, "", "[dropout]\nrate = 0.5\n");
    assert_int_equal(sn_model_plan_layouts(m, 1), 2);
    assert_string_equal(outs(m), "000011000");
    sn_model_free(m);
}

/* The one answer to "which table runs this part": the part's own choice, else (a backward
 * part) the forward's, else the model's. */
static void test_layer_ops(void **state)
{
    struct sn_model *m = build("blas", 32, "", "");
    struct sn_layer *conv = &m->layers[3]; /* conv2d_1 */
    for (int p = 0; p < SN_N_PARTS; p++)
        assert_ptr_equal(sn_layer_ops(m, conv, (enum sn_part)p), &sn_ops_blas);
    conv->ops[SN_PART_FORWARD] = &sn_ops_onednn;
    for (int p = 0; p < SN_N_PARTS; p++)
        assert_ptr_equal(sn_layer_ops(m, conv, (enum sn_part)p), &sn_ops_onednn);
    conv->ops[SN_PART_BWD_WEIGHTS] = &sn_ops_ref;
    assert_ptr_equal(sn_layer_ops(m, conv, SN_PART_FORWARD), &sn_ops_onednn);
    assert_ptr_equal(sn_layer_ops(m, conv, SN_PART_BWD_DATA), &sn_ops_onednn);
    assert_ptr_equal(sn_layer_ops(m, conv, SN_PART_BWD_WEIGHTS), &sn_ops_ref);
    conv->ops[SN_PART_FORWARD] = NULL;
    assert_ptr_equal(sn_layer_ops(m, conv, SN_PART_BWD_DATA), &sn_ops_blas);
    assert_ptr_equal(sn_layer_ops(m, conv, SN_PART_BWD_WEIGHTS), &sn_ops_ref);
    sn_model_free(m);
}

/* Timing a part of a layer on a backend leaves the layer as it was: its backends, layouts,
 * trainability, parameters and the other layers' gradients; its own gradients are zero. */
static void test_time_layer_changes_nothing(void **state)
{
    struct sn_model *m = build("blas", 32, "", "");
    struct sn_layer *conv = &m->layers[3];
    conv->ops[SN_PART_BWD_DATA] = &sn_ops_ref;
    conv->blk_in = conv->blk_out = 1; /* as a plan may leave them; the timing runs NHWC */
    float *params = malloc(m->n_params * sizeof(float));
    assert_non_null(params);
    memcpy(params, m->params, m->n_params * sizeof(float));
    enum sn_time_part parts[] = {SN_TIME_FORWARD, SN_TIME_BWD_DATA, SN_TIME_BWD_WEIGHTS,
                                 SN_TIME_FORWARD_BACKWARD};
    for (size_t k = 0; k < sizeof parts / sizeof parts[0]; k++) {
        assert_true(sn_model_time_layer(m, 3, 4, parts[k], &sn_ops_onednn) > 0);
        assert_null(conv->ops[SN_PART_FORWARD]);
        assert_ptr_equal(conv->ops[SN_PART_BWD_DATA], &sn_ops_ref);
        assert_null(conv->ops[SN_PART_BWD_WEIGHTS]);
        assert_int_equal(conv->blk_in, 1);
        assert_int_equal(conv->blk_out, 1);
        assert_int_equal(conv->trainable, 1);
        assert_memory_equal(params, m->params, m->n_params * sizeof(float));
        for (size_t i = 0; i < conv->n_params; i++)
            assert_true(conv->g[i] == 0.0f);
    }
    free(params);
    sn_model_free(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layer_ops),
        cmocka_unit_test(test_time_layer_changes_nothing),
        cmocka_unit_test(test_plan_layouts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
