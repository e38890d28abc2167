/* test_config_keys.c — the config reference (src/train/config_keys.c) against the parser, both
 * ways: every row is accepted by sn_settings_load and resolves its default, a required key is
 * required and a key outside its context is refused; every config of configs/ reads only keys of
 * the reference (a getter reading an undocumented key fails there, and at every load); and
 * docs/config.md's key tables are the renderer's output, byte for byte.
 *
 * Each row is tried on a tiny network that holds one section of every layer type, written to a
 * file in this test's folder (the working directory during the tests), with a base config and a
 * feature file beside it for [base] and [data] features.
 *
 * `test_config_keys --write FILE` rewrites FILE's generated part (between the markers) instead
 * of testing: the config-doc target (`cmake --build build --target config-doc`). */
#include <setjmp.h> // defines: jmp_buf (needed by cmocka.h)
#include <stdarg.h> // defines: va_list (needed by cmocka.h)
#include <stddef.h> // defines: size_t (needed by cmocka.h)
#include <stdint.h> // defines: int32_t
#include <stdio.h>  // defines: snprintf, sscanf, fopen, fread, fwrite, fputs
#include <stdlib.h> // defines: calloc, malloc, realloc, free, getenv
#include <string.h> // defines: strcmp, strncmp, strstr, strchr, strcspn, strlen, memcmp
#include <unistd.h> // defines: chdir, getcwd

#include <cmocka.h> // defines: cmocka_unit_test, assert_*

#include "config.h"
#include "config_keys.h"
#include "featfile.h"
#include "layer.h"
#include "testutil.h"
#include "settings.h"

#define BEGIN_MARK "<!-- keys:begin -->\n"
#define END_MARK "<!-- keys:end -->"
#define REGENERATE "cmake --build build --target config-doc"

/* ---- a config as sections of key = value lines ---------------------------------------------- */

/* Sections in the order they are written: the settings, then the tiny network (8x8 RGB in,
 * 2 outputs), which has one section of each layer type. */
static const char *const order[] = {
    "model", "base", "data", "augment", "train", "checkpoint", "early_stopping",
    "reduce_lr_on_plateau",
    "preprocess", "rescaling", "conv2d", "batchnormalization", "activation", "maxpooling2d",
    "dropout", "globalaveragepooling2d", "flatten", "dense", NULL};
#define N_ORDER 18
#define FIRST_LAYER 8

struct line {
    int sec; /* index in order[] */
    char key[SN_CFG_NAME_MAX];
    char value[256];
};

struct spec {
    int present[N_ORDER]; /* the section is written, with or without keys */
    int n;
    struct line lines[64];
};

static int sec_index(const char *type)
{
    for (int i = 0; order[i]; i++)
        if (strcmp(order[i], type) == 0)
            return i;
    fail_msg("section [%s] has no place in the test's config", type);
    return -1;
}

static void spec_set(struct spec *sp, const char *type, const char *key, const char *value)
{
    int sec = sec_index(type);
    sp->present[sec] = 1;
    for (int i = 0; i < sp->n; i++)
        if (sp->lines[i].sec == sec && strcmp(sp->lines[i].key, key) == 0) {
            snprintf(sp->lines[i].value, sizeof sp->lines[i].value, "%s", value);
            return;
        }
    assert_true(sp->n < 64);
    struct line *l = &sp->lines[sp->n++];
    l->sec = sec;
    snprintf(l->key, sizeof l->key, "%s", key);
    snprintf(l->value, sizeof l->value, "%s", value);
}

/* Removes the key; the section stays written. */
static void spec_del(struct spec *sp, const char *type, const char *key)
{
    int sec = sec_index(type);
    sp->present[sec] = 1;
    for (int i = 0; i < sp->n; i++)
        if (sp->lines[i].sec == sec && strcmp(sp->lines[i].key, key) == 0) {
            sp->lines[i] = sp->lines[--sp->n];
            return;
        }
}

/* The minimal valid config: [data] image_size, [train] epochs, and the network. */
static void spec_base(struct spec *sp)
{
    memset(sp, 0, sizeof *sp);
    for (int i = FIRST_LAYER; order[i]; i++)
        sp->present[i] = 1;
    spec_set(sp, "data", "image_size", "8");
    spec_set(sp, "train", "epochs", "1");
    spec_set(sp, "rescaling", "scale", "1/255");
    spec_set(sp, "conv2d", "filters", "2");
    spec_set(sp, "conv2d", "kernel_size", "3");
    spec_set(sp, "activation", "activation", "relu");
    spec_set(sp, "dropout", "rate", "0.5");
    spec_set(sp, "dense", "units", "2");
}

static void spec_text(const struct spec *sp, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int s = 0; order[s]; s++) {
        if (!sp->present[s])
            continue;
        len += (size_t)snprintf(buf + len, cap - len, "[%s]\n", order[s]);
        for (int i = 0; i < sp->n; i++)
            if (sp->lines[i].sec == s)
                len += (size_t)snprintf(buf + len, cap - len, "%s = %s\n", sp->lines[i].key,
                                        sp->lines[i].value);
        assert_true(len < cap);
    }
}

/* A "KEY = V1, V2 or V3" context: KEY into key[], the values into values[]. @return their
 * number (0 for another form). */
static int context_values(const char *context, char key[SN_CFG_NAME_MAX], char values[8][64])
{
    char list[256];
    if (sscanf(context, "%63s = %255[^\n]", key, list) != 2)
        return 0;
    int n = 0;
    for (char *p = list; *p && n < 8;) {
        size_t len = strcspn(p, ",");
        const char *last = strstr(p, " or ");
        if (last && (size_t)(last - p) < len)
            len = (size_t)(last - p);
        snprintf(values[n++], 64, "%.*s", (int)len, p);
        p += len;
        p += strncmp(p, " or ", 4) == 0 ? 4 : *p == ',' ? 1 : 0;
        while (*p == ' ')
            p++;
    }
    return n;
}

/* The row's context made true: "KEY = V1, V2 or V3" writes KEY = V1; "no KEY" removes KEY. */
static void apply_context(struct spec *sp, const char *type, const char *context)
{
    char key[SN_CFG_NAME_MAX], values[8][64];
    if (context[0] == '\0')
        return;
    if (strncmp(context, "no ", 3) == 0)
        spec_del(sp, type, context + 3);
    else if (context_values(context, key, values) > 0)
        spec_set(sp, type, key, values[0]);
    else
        fail_msg("context '%s' is neither 'KEY = V1, V2 or V3' nor 'no KEY'", context);
}

/* The section's other required keys, with their examples (the base network has the layers'). */
static void add_required(struct spec *sp, const struct sn_config_key *row, const char *type)
{
    for (const struct sn_config_key *k = sn_config_keys; k->section; k++)
        if (k->key && k->required && k != row && strcmp(k->section, row->section) == 0) {
            int have = 0, sec = sec_index(type);
            for (int i = 0; i < sp->n; i++)
                have |= sp->lines[i].sec == sec && strcmp(sp->lines[i].key, k->key) == 0;
            if (!have)
                spec_set(sp, type, k->key, k->example);
        }
}

/* The sections a row is tried in: its own, or every layer type for the keys of every layer. */
static int row_types(const struct sn_config_key *row, const char *types[N_ORDER])
{
    if (strcmp(row->section, SN_CONFIG_KEYS_ANY_LAYER) != 0) {
        types[0] = row->section;
        return 1;
    }
    int n = 0;
    for (int i = FIRST_LAYER; order[i]; i++)
        types[n++] = order[i];
    return n;
}

/* ---- loading --------------------------------------------------------------------------------- */

static char last_text[8192];

/* Writes the spec to keys.cfg and loads it as every command does. @return the code; *cfg is
 * the loaded config (NULL if it did not parse). */
static int load_spec(const struct spec *sp, struct sn_config **cfg, struct sn_err *err)
{
    spec_text(sp, last_text, sizeof last_text);
    assert_int_equal(sn_test_write_file("keys.cfg", last_text), 0);
    *cfg = NULL;
    int rc = sn_config_load(cfg, "keys.cfg", err);
    if (rc != SN_OK)
        return rc;
    struct sn_settings *st = calloc(1, sizeof *st);
    assert_non_null(st);
    rc = sn_settings_load(st, *cfg, err);
    if (rc == SN_OK)
        rc = sn_settings_build(st, *cfg, 4, NULL, err);
    free(st);
    return rc;
}

/* The value the first section of that type resolved for key, or NULL. */
static const char *resolved(const struct sn_config *cfg, const char *type, const char *key)
{
    const struct sn_section *s = sn_config_find(cfg, type);
    for (int j = 0; s && j < s->n_resolved; j++)
        if (strcmp(s->resolved[j].name, key) == 0)
            return s->resolved[j].value;
    return NULL;
}

/* The files rows name: base.cfg for [base] config, features.bin (8x8x3 samples, as the tiny
 * network's input) for [data] features. */
static int setup_files(void **state)
{
    (void)state;
    const char *dir = sn_test_dir("config_keys");
    assert_int_equal(chdir(dir), 0);
    assert_int_equal(sn_test_write_file("base.cfg", "[conv2d]\nname = base_conv\nfilters = 3\n"
                                                    "kernel_size = 1\n"),
                     0);
    static char names[2][64] = {"a", "b"};
    static int32_t labels[2] = {0, 1};
    static float x[2 * 8 * 8 * 3];
    struct sn_features f = {.base_hash = 1, .n_splits = 1};
    f.split[0] = (struct sn_feature_split){.name = "train", .n = 2, .h = 8, .w = 8, .c = 3,
                                           .n_classes = 2, .class_names = names,
                                           .labels = labels, .x = x};
    struct sn_err err = {0};
    if (sn_features_write("features.bin", &f, &err) != SN_OK)
        fail_msg("%s", err.msg);
    return 0;
}

/* ---- the table itself ------------------------------------------------------------------------ */

static const char *const settings[] = {"model", "base", "data", "augment", "train",
                                       "checkpoint", "early_stopping", "reduce_lr_on_plateau",
                                       NULL};

static const struct sn_config_key *section_row(const char *section)
{
    for (const struct sn_config_key *k = sn_config_keys; k->section; k++)
        if (k->key == NULL && strcmp(k->section, section) == 0)
            return k;
    return NULL;
}

/* Every section type has its opening row, every row is of a real type and follows its opening
 * row, no key is listed twice, and what the tests and the renderer need is there. */
static void test_table_shape(void **state)
{
    (void)state;
    for (int i = 0; settings[i]; i++) {
        assert_true(sn_config_is_settings(settings[i]));
        if (section_row(settings[i]) == NULL)
            fail_msg("[%s] has no section row in the reference", settings[i]);
    }
    for (int i = 0; sn_layer_types[i]; i++)
        if (section_row(sn_layer_types[i]->section) == NULL)
            fail_msg("layer [%s] has no section row in the reference", sn_layer_types[i]->section);
    const char *current = NULL;
    for (const struct sn_config_key *k = sn_config_keys; k->section; k++) {
        assert_non_null(k->meaning);
        assert_non_null(k->context);
        if (strchr(k->meaning, '|'))
            fail_msg("[%s] %s: '|' in the meaning breaks its Markdown table", k->section,
                     k->key ? k->key : "");
        if (k->key == NULL) {
            int real = sn_config_is_settings(k->section) ||
                       sn_layer_type_find(k->section) != NULL ||
                       strcmp(k->section, SN_CONFIG_KEYS_ANY_LAYER) == 0;
            if (!real)
                fail_msg("[%s]: a section no module reads", k->section);
            if (section_row(k->section) != k)
                fail_msg("[%s] opens twice", k->section);
            current = k->section;
            continue;
        }
        if (current == NULL || strcmp(current, k->section) != 0)
            fail_msg("[%s] %s is not under its section's row", k->section, k->key);
        for (const struct sn_config_key *o = sn_config_keys; o < k; o++)
            if (o->key && strcmp(o->section, k->section) == 0 && strcmp(o->key, k->key) == 0)
                fail_msg("[%s] %s is listed twice", k->section, k->key);
        if (k->def == NULL && k->example == NULL)
            fail_msg("[%s] %s has neither a default nor an example", k->section, k->key);
        if (k->required && (k->def != NULL || k->example == NULL))
            fail_msg("[%s] %s: a required key has an example and no default", k->section, k->key);
    }
}

/* ---- both ways ------------------------------------------------------------------------------- */

/* Every row, in its context, with its example (or its default), loads without error, and the
 * key is among the resolved keys — with the default's text when the default was written. */
static void test_every_row_accepted(void **state)
{
    (void)state;
    int tried = 0;
    for (const struct sn_config_key *k = sn_config_keys; k->section; k++) {
        if (k->key == NULL)
            continue;
        const char *types[N_ORDER];
        int n = row_types(k, types);
        for (int t = 0; t < n; t++) {
            struct spec sp;
            spec_base(&sp);
            apply_context(&sp, types[t], k->context);
            add_required(&sp, k, types[t]);
            const char *value = k->example ? k->example : k->def;
            spec_set(&sp, types[t], k->key, value);
            struct sn_config *cfg;
            struct sn_err err = {0};
            if (load_spec(&sp, &cfg, &err) != SN_OK)
                fail_msg("[%s] %s = %s is refused: %s\n--- config:\n%s", types[t], k->key, value,
                         err.msg, last_text);
            const char *got = resolved(cfg, types[t], k->key);
            if (got == NULL)
                fail_msg("[%s] %s = %s: accepted but not among the resolved keys", types[t],
                         k->key, value);
            if (k->example == NULL && strcmp(got, k->def) != 0)
                fail_msg("[%s] %s = %s resolves to '%s'", types[t], k->key, value, got);
            sn_config_free(cfg);
            tried++;
        }
    }
    assert_true(tried > 100);
}

/* Without the key, the getter resolves the table's default, byte for byte. */
static void test_defaults_resolved(void **state)
{
    (void)state;
    for (const struct sn_config_key *k = sn_config_keys; k->section; k++) {
        if (k->key == NULL || k->def == NULL)
            continue;
        const char *types[N_ORDER];
        int n = row_types(k, types);
        for (int t = 0; t < n; t++) {
            struct spec sp;
            spec_base(&sp);
            apply_context(&sp, types[t], k->context);
            add_required(&sp, k, types[t]);
            spec_del(&sp, types[t], k->key);
            struct sn_config *cfg;
            struct sn_err err = {0};
            if (load_spec(&sp, &cfg, &err) != SN_OK)
                fail_msg("[%s] without %s: %s\n--- config:\n%s", types[t], k->key, err.msg,
                         last_text);
            const char *got = resolved(cfg, types[t], k->key);
            if (got == NULL || strcmp(got, k->def) != 0)
                fail_msg("[%s] %s: the reference says the default is '%s', the getter resolves "
                         "'%s'",
                         types[t], k->key, k->def, got ? got : "(nothing)");
            sn_config_free(cfg);
        }
    }
}

/* A required key left out is an error naming it. */
static void test_required_refused(void **state)
{
    (void)state;
    int tried = 0;
    for (const struct sn_config_key *k = sn_config_keys; k->section; k++) {
        if (k->key == NULL || !k->required)
            continue;
        struct spec sp;
        spec_base(&sp);
        apply_context(&sp, k->section, k->context);
        add_required(&sp, k, k->section);
        spec_del(&sp, k->section, k->key);
        struct sn_config *cfg;
        struct sn_err err = {0};
        if (load_spec(&sp, &cfg, &err) == SN_OK)
            fail_msg("[%s] without %s is accepted, the reference says it is required", k->section,
                     k->key);
        if (strstr(err.msg, k->key) == NULL)
            fail_msg("[%s] without %s: the error does not name it: %s", k->section, k->key,
                     err.msg);
        sn_config_free(cfg);
        tried++;
    }
    assert_true(tried >= 8);
}

/* A key written outside its context is refused: "no K" with K given; "K = V, ..." with K at
 * its default, when the default is none of the values. */
static void test_context_refused(void **state)
{
    (void)state;
    int tried = 0;
    for (const struct sn_config_key *k = sn_config_keys; k->section; k++) {
        if (k->key == NULL || k->context[0] == '\0')
            continue;
        struct spec sp;
        spec_base(&sp);
        add_required(&sp, k, k->section);
        char ckey[SN_CFG_NAME_MAX], values[8][64];
        if (strncmp(k->context, "no ", 3) == 0) {
            const struct sn_config_key *c = sn_config_keys_find(k->section, k->context + 3);
            assert_non_null(c);
            spec_set(&sp, k->section, c->key, c->example ? c->example : c->def);
        } else {
            int n = context_values(k->context, ckey, values);
            assert_true(n > 0);
            const struct sn_config_key *c = sn_config_keys_find(k->section, ckey);
            assert_non_null(c);
            assert_non_null(c->def);
            int in_context = 0;
            for (int i = 0; i < n; i++)
                in_context |= strcmp(values[i], c->def) == 0;
            if (in_context)
                continue; /* the default is in the context: nothing to refuse */
            spec_del(&sp, k->section, ckey);
        }
        spec_set(&sp, k->section, k->key, k->example ? k->example : k->def);
        struct sn_config *cfg;
        struct sn_err err = {0};
        if (load_spec(&sp, &cfg, &err) == SN_OK)
            fail_msg("[%s] %s is accepted outside its context (%s)\n--- config:\n%s", k->section,
                     k->key, k->context, last_text);
        if (strstr(err.msg, k->key) == NULL)
            fail_msg("[%s] %s outside its context: the error does not name it: %s", k->section,
                     k->key, err.msg);
        sn_config_free(cfg);
        tried++;
    }
    assert_true(tried >= 15);
}

/* The load-time check: a key some getter read that the reference lacks is an error naming the
 * section and the key; the keys of every layer do not cover settings sections. */
static void test_check_catches_undocumented(void **state)
{
    (void)state;
    struct sn_config *cfg;
    struct sn_err err = {0};
    assert_int_equal(sn_config_load_string(&cfg, "[train]\nepochs = 2\n[conv2d]\nname = c\n",
                                           "check.cfg", &err),
                     SN_OK);
    const struct sn_section *t = sn_config_find(cfg, "train");
    const struct sn_section *c = sn_config_find(cfg, "conv2d");
    int v;
    char name[64];
    assert_int_equal(sn_section_int(cfg, t, "epochs", 10, 1, 100, &v, &err), SN_OK);
    assert_int_equal(sn_section_string(cfg, c, "name", "x", name, sizeof name, &err), SN_OK);
    assert_int_equal(sn_section_bool(cfg, c, "trainable", 1, &v, &err), SN_OK);
    assert_int_equal(sn_config_keys_check(cfg, &err), SN_OK);

    assert_int_equal(sn_section_int(cfg, t, "bogus_key", 1, 0, 9, &v, &err), SN_OK);
    assert_int_equal(sn_config_keys_check(cfg, &err), SN_EINVAL);
    assert_non_null(strstr(err.msg, "[train]"));
    assert_non_null(strstr(err.msg, "'bogus_key'"));
    assert_non_null(strstr(err.msg, "not in the config reference"));
    sn_config_free(cfg);

    assert_int_equal(sn_config_load_string(&cfg, "[train]\n", "check.cfg", &err), SN_OK);
    assert_int_equal(sn_section_bool(cfg, sn_config_find(cfg, "train"), "trainable", 1, &v, &err),
                     SN_OK);
    assert_int_equal(sn_config_keys_check(cfg, &err), SN_EINVAL);
    assert_non_null(strstr(err.msg, "'trainable'"));
    sn_config_free(cfg);
}

/* Every config shipped loads and reads only keys of the reference: together with the check at
 * every load, a getter reading an undocumented key fails here. */
static void test_shipped_configs(void **state)
{
    (void)state;
    const char *src = getenv("SN_SOURCE_DIR");
    if (src == NULL)
        fail_msg("SN_SOURCE_DIR is not set (ctest sets it to the source tree)");
    static const char *const configs[] = {
        "configs/mnist_convnet.cfg",   "configs/catsdogs_convnet.cfg",
        "configs/catsdogs_augmented.cfg", "configs/vgg16_base.cfg",
        "configs/vgg16_frozen.cfg",    "configs/transfer/base.cfg",
        "configs/transfer/pretrain.cfg", "configs/transfer/small.cfg",
        "configs/transfer/features_top.cfg", NULL};
    /* the feature file of features_top.cfg, of its input_shape 3,3,128 */
    static char names[2][64] = {"coat", "pullover"};
    static int32_t labels[1] = {0};
    static float x[3 * 3 * 128];
    struct sn_features f = {.base_hash = 1, .n_splits = 1};
    f.split[0] = (struct sn_feature_split){.name = "train", .n = 1, .h = 3, .w = 3, .c = 128,
                                           .n_classes = 2, .class_names = names,
                                           .labels = labels, .x = x};
    struct sn_err err = {0};
    if (sn_features_write("features_3x3x128.bin", &f, &err) != SN_OK)
        fail_msg("%s", err.msg);
    char cwd[1024], set[1200];
    assert_non_null(getcwd(cwd, sizeof cwd));
    snprintf(set, sizeof set, "data.features=%s/features_3x3x128.bin", cwd);
    for (int i = 0; configs[i]; i++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", src, configs[i]);
        struct sn_config *cfg;
        if (sn_config_load(&cfg, path, &err) != SN_OK)
            fail_msg("%s", err.msg);
        if (strstr(configs[i], "features_top") && sn_config_override(cfg, set, &err) != SN_OK)
            fail_msg("%s", err.msg);
        struct sn_settings *st = calloc(1, sizeof *st);
        assert_non_null(st);
        if (sn_settings_load(st, cfg, &err) != SN_OK ||
            sn_settings_build(st, cfg, 1, NULL, &err) != SN_OK)
            fail_msg("%s: %s", configs[i], err.msg);
        if (sn_config_keys_check(cfg, &err) != SN_OK)
            fail_msg("%s: %s", configs[i], err.msg);
        free(st);
        sn_config_free(cfg);
    }
}

/* ---- docs/config.md -------------------------------------------------------------------------- */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, len = 0;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + len, 1, cap - len - 1, f)) > 0;) {
        len += got;
        if (len + 1 == cap) {
            char *grown = realloc(buf, cap *= 2);
            if (!grown)
                free(buf);
            buf = grown;
        }
    }
    fclose(f);
    if (buf)
        buf[len] = '\0';
    return buf;
}

static char *render(void)
{
    size_t n = sn_config_keys_markdown(NULL, 0);
    char *text = malloc(n + 1);
    assert_non_null(text);
    assert_int_equal(sn_config_keys_markdown(text, n + 1), n);
    return text;
}

/* The generated part of doc: from after the begin marker to the end marker. */
static int generated_part(const char *doc, const char **begin, const char **end)
{
    const char *b = strstr(doc, BEGIN_MARK);
    const char *e = b ? strstr(b, END_MARK) : NULL;
    if (!e)
        return -1;
    *begin = b + strlen(BEGIN_MARK);
    *end = e;
    return 0;
}

/* The renderer keeps snprintf's contract: a short buffer is cut and terminated, and the
 * length of the whole text is returned. */
static void test_markdown_render(void **state)
{
    (void)state;
    char *text = render();
    char small[64];
    assert_int_equal(sn_config_keys_markdown(small, sizeof small), strlen(text));
    assert_int_equal(strlen(small), sizeof small - 1);
    assert_int_equal(strncmp(small, text, sizeof small - 1), 0);
    assert_non_null(strstr(text, "### `[train]`"));
    assert_non_null(strstr(text, "| `factor` | `0.1` |"));
    assert_non_null(strstr(text, "| `epsilon` | `1e-07` | *Only with `optimizer = rmsprop, "
                                 "adam or adamw`.*"));
    assert_non_null(strstr(text, "| `units` | required |"));
    assert_non_null(strstr(text, "| `image_size` | required |"));
    free(text);
}

static void test_doc_is_generated(void **state)
{
    (void)state;
    const char *src = getenv("SN_SOURCE_DIR");
    if (src == NULL)
        fail_msg("SN_SOURCE_DIR is not set (ctest sets it to the source tree)");
    char path[1200];
    snprintf(path, sizeof path, "%s/docs/config.md", src);
    char *doc = read_all(path);
    if (doc == NULL)
        fail_msg("%s cannot be read", path);
    const char *b = NULL, *e = NULL;
    if (generated_part(doc, &b, &e) != 0)
        fail_msg("docs/config.md lacks the markers '%.*s' and '%s' around its key tables",
                 (int)strlen(BEGIN_MARK) - 1, BEGIN_MARK, END_MARK);
    char *text = render();
    size_t n = strlen(text);
    if ((size_t)(e - b) != n || memcmp(b, text, n) != 0) {
        size_t i = 0;
        while (i < n && b + i < e && b[i] == text[i])
            i++;
        fail_msg("docs/config.md's key tables are not src/train/config_keys.c's (first "
                 "difference at byte %zu of the generated part: '%.40s')\n---> HINT: "
                 "regenerate them: " REGENERATE,
                 i, b + i);
    }
    free(text);
    free(doc);
}

/* --write FILE: FILE with its generated part replaced by the renderer's output. */
static int write_doc(const char *path)
{
    char *doc = read_all(path);
    const char *b, *e;
    if (doc == NULL || generated_part(doc, &b, &e) != 0) {
        fprintf(stderr, "%s: cannot read it, or it lacks the markers %.*s and %s\n", path,
                (int)strlen(BEGIN_MARK) - 1, BEGIN_MARK, END_MARK);
        free(doc);
        return 1;
    }
    size_t n = sn_config_keys_markdown(NULL, 0);
    char *text = malloc(n + 1);
    FILE *f = text ? fopen(path, "wb") : NULL;
    int ok = f != NULL;
    if (ok) {
        sn_config_keys_markdown(text, n + 1);
        ok = fwrite(doc, 1, (size_t)(b - doc), f) == (size_t)(b - doc) &&
             fwrite(text, 1, n, f) == n && fputs(e, f) >= 0;
        ok = fclose(f) == 0 && ok;
    }
    if (!ok)
        fprintf(stderr, "%s: could not write it\n", path);
    else
        printf("%s: key tables written (%zu bytes)\n", path, n);
    free(text);
    free(doc);
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--write") == 0)
        return write_doc(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_shape),
        cmocka_unit_test(test_every_row_accepted),
        cmocka_unit_test(test_defaults_resolved),
        cmocka_unit_test(test_required_refused),
        cmocka_unit_test(test_context_refused),
        cmocka_unit_test(test_check_catches_undocumented),
        cmocka_unit_test(test_shipped_configs),
        cmocka_unit_test(test_markdown_render),
        cmocka_unit_test(test_doc_is_generated),
    };
    return cmocka_run_group_tests(tests, setup_files, NULL);
}
