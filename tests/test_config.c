/* test_config.c — the INI config: section order and lines, typed getters with their error
 * messages, --set overrides, the content hash, and unused-key detection. */
#include <setjmp.h> // defines: jmp_buf (needed by cmocka.h)
#include <stdarg.h> // defines: va_list (needed by cmocka.h)
#include <stddef.h> // defines: size_t (needed by cmocka.h)
#include <stdio.h>  // defines: snprintf
#include <stdlib.h> // defines: malloc, free
#include <string.h> // defines: strstr, strcmp, memset, memcpy, strlen

#include <cmocka.h> // defines: cmocka_unit_test, assert_*

#include "config.h"
#include "data_conf.h"
#include "testutil.h"

/* A small Listing 8.1-like network; line numbers matter to the tests below. */
static const char *const NET =
    "; a comment\n"                     /*  1 */
    "[model]\n"                         /*  2 */
    "input_shape = (28, 28, 1)\n"       /*  3 */
    "\n"                                /*  4 */
    "[Rescaling]\n"                     /*  5 */
    "scale = 1/255\n"                   /*  6 */
    "[conv2d]\n"                        /*  7 */
    "filters = 32\n"                    /*  8 */
    "kernel_size = 3\n"                 /*  9 */
    "activation = relu   ; inline\n"    /* 10 */
    "[maxpooling2d]\n"                  /* 11 */
    "pool_size = 2x2\n"                 /* 12 */
    "[conv2d]\n"                        /* 13 */
    "  Filters = 64   # indented\n"     /* 14 */
    "kernel_size = (3, 5)\n"            /* 15 */
    "[flatten]\n"                       /* 16 */
    "[dense]\n"                         /* 17 */
    "units = 10\n"                      /* 18 */
    "activation = softmax\n"            /* 19 */
    "[train]\n"                         /* 20 */
    "epochs = 5\n"                      /* 21 */
    "lr = 1e-3\n"                       /* 22 */
    "shuffle = yes\n"                   /* 23 */
    "optimizer = rmsprop\n"             /* 24 */
    "bad_int = abc\n"                   /* 25 */
    "bad_float = 0.5x\n"                /* 26 */
    "bad_bool = maybe\n"                /* 27 */
    "zero = 0\n"                        /* 28 */
    "name_str = hello world\n";         /* 29 */

static struct sn_config *load_net(void)
{
    struct sn_config *cfg = NULL;
    struct sn_err err = {0};
    int rc = sn_config_load_string(&cfg, NET, "net.cfg", &err);
    if (rc != SN_OK)
        fail_msg("load: %s", err.msg);
    assert_non_null(cfg);
    return cfg;
}

static const struct sn_section *nth(const struct sn_config *cfg, const char *type, int n)
{
    for (int i = 0; i < cfg->n_sections; i++)
        if (strcmp(cfg->sections[i].type, type) == 0 && n-- == 0)
            return &cfg->sections[i];
    return NULL;
}

#define assert_msg_has(err, s)                                                                     \
    do {                                                                                           \
        if (strstr((err).msg, (s)) == NULL)                                                        \
            fail_msg("message '%s' lacks '%s'", (err).msg, (s));                                   \
    } while (0)

static void test_sections_in_order(void **state)
{
    (void)state;
    struct sn_config *cfg = load_net();
    static const char *const types[] = {"model", "rescaling", "conv2d", "maxpooling2d",
                                        "conv2d", "flatten", "dense", "train"};
    static const int lines[] = {2, 5, 7, 11, 13, 16, 17, 20};
    assert_int_equal(cfg->n_sections, 8);
    for (int i = 0; i < 8; i++) {
        assert_string_equal(cfg->sections[i].type, types[i]);
        assert_int_equal(cfg->sections[i].line, lines[i]);
        assert_int_equal(cfg->sections[i].index, i);
    }
    const struct sn_section *c1 = nth(cfg, "conv2d", 1);
    assert_ptr_equal(c1, &cfg->sections[4]);
    const struct sn_key *k = sn_section_key(c1, "filters");
    assert_non_null(k);
    assert_string_equal(k->value, "64");
    assert_int_equal(k->line, 14);
    k = sn_section_key(&cfg->sections[2], "activation");
    assert_string_equal(k->value, "relu");
    assert_int_equal(k->line, 10);
    assert_int_equal(cfg->sections[5].n_keys, 0); /* [flatten] */
    assert_ptr_equal(sn_config_find(cfg, "conv2d"), &cfg->sections[2]);
    assert_null(sn_config_find(cfg, "augment"));
    sn_config_free(cfg);
    sn_config_free(NULL);
}

static void test_layer_names(void **state)
{
    (void)state;
    struct sn_config *cfg = NULL;
    struct sn_err err = {0};
    assert_int_equal(sn_config_load_string(&cfg,
                                           "[dense]\n[dense]\nname = head\n[dense]\n[train]\n",
                                           "n.cfg", &err),
                     SN_OK);
    char name[SN_CFG_NAME_MAX];
    sn_config_layer_name(cfg, &cfg->sections[0], name, sizeof name);
    assert_string_equal(name, "dense");
    sn_config_layer_name(cfg, &cfg->sections[1], name, sizeof name);
    assert_string_equal(name, "head");
    sn_config_layer_name(cfg, &cfg->sections[2], name, sizeof name);
    assert_string_equal(name, "dense_2"); /* the named one keeps its number */
    sn_config_layer_name(cfg, &cfg->sections[3], name, sizeof name);
    assert_string_equal(name, "train");
    assert_true(sn_config_is_settings("train"));
    assert_true(sn_config_is_settings("early_stopping"));
    assert_false(sn_config_is_settings("dense"));
    sn_config_free(cfg);
}

static void test_int_getter(void **state)
{
    (void)state;
    struct sn_config *cfg = load_net();
    struct sn_err err = {0};
    const struct sn_section *t = sn_config_find(cfg, "train");
    int v = -1;
    assert_int_equal(sn_section_int(cfg, t, "epochs", 10, 1, 1000, &v, &err), SN_OK);
    assert_int_equal(v, 5);
    assert_int_equal(sn_section_int(cfg, t, "missing", 7, 1, 1000, &v, &err), SN_OK);
    assert_int_equal(v, 7);
    assert_int_equal(sn_section_int(cfg, NULL, "x", 3, 1, 10, &v, &err), SN_OK);
    assert_int_equal(v, 3);

    assert_int_equal(sn_section_int(cfg, t, "bad_int", 1, 0, 10, &v, &err), SN_EINVAL);
    assert_msg_has(err, "net.cfg:25: [train] bad_int = 'abc'");
    assert_msg_has(err, "not an integer");
    assert_int_equal(sn_section_int(cfg, t, "zero", 1, 1, 65536, &v, &err), SN_EINVAL);
    assert_msg_has(err, "net.cfg:28: [train] zero = '0': 0 is out of range [1, 65536]");
    assert_int_equal(sn_section_int(cfg, t, "lr", 1, 0, 10, &v, &err), SN_EINVAL);
    assert_msg_has(err, "net.cfg:22");
    sn_config_free(cfg);

    assert_int_equal(sn_config_load_string(&cfg, "[a]\nbig = 99999999999999999999\n", "b.cfg",
                                           &err),
                     SN_OK);
    assert_int_equal(sn_section_int(cfg, &cfg->sections[0], "big", 1, 0, 10, &v, &err),
                     SN_EINVAL);
    assert_msg_has(err, "b.cfg:2: [a] big");
    assert_msg_has(err, "out of range");
    sn_config_free(cfg);
}

static void test_float_getter(void **state)
{
    (void)state;
    struct sn_config *cfg = load_net();
    struct sn_err err = {0};
    const struct sn_section *t = sn_config_find(cfg, "train");
    double d = 0;
    assert_int_equal(sn_section_float(cfg, t, "lr", 0.1, 0, 1, &d, &err), SN_OK);
    assert_true(d == 1e-3);
    assert_int_equal(sn_section_float(cfg, &cfg->sections[1], "scale", 1, 0, 1, &d, &err),
                     SN_OK);
    assert_true(d == 1.0 / 255.0);
    assert_int_equal(sn_section_float(cfg, t, "nope", 0.25, 0, 1, &d, &err), SN_OK);
    assert_true(d == 0.25);
    assert_int_equal(sn_section_float(cfg, t, "bad_float", 0, 0, 1, &d, &err), SN_EINVAL);
    assert_msg_has(err, "net.cfg:26: [train] bad_float = '0.5x'");
    assert_msg_has(err, "not a number");
    assert_int_equal(sn_section_float(cfg, t, "epochs", 0, 0, 1, &d, &err), SN_EINVAL);
    assert_msg_has(err, "net.cfg:21: [train] epochs = '5': 5 is out of range [0, 1]");
    sn_config_free(cfg);

    assert_int_equal(
        sn_config_load_string(&cfg, "[a]\nz = 1/0\nn = nan\ni = inf\nh = /2\n", "f.cfg", &err),
        SN_OK);
    const char *bad[] = {"z", "n", "i", "h"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(sn_section_float(cfg, &cfg->sections[0], bad[i], 0, -1e9, 1e9, &d, &err),
                         SN_EINVAL);
        assert_msg_has(err, "f.cfg:");
        assert_msg_has(err, bad[i]);
    }
    sn_config_free(cfg);
}

static void test_bool_string_choice(void **state)
{
    (void)state;
    struct sn_config *cfg = load_net();
    struct sn_err err = {0};
    const struct sn_section *t = sn_config_find(cfg, "train");
    int b = -1;
    assert_int_equal(sn_section_bool(cfg, t, "shuffle", 0, &b, &err), SN_OK);
    assert_int_equal(b, 1);
    assert_int_equal(sn_section_bool(cfg, t, "absent", 0, &b, &err), SN_OK);
    assert_int_equal(b, 0);
    assert_int_equal(sn_section_bool(cfg, t, "bad_bool", 0, &b, &err), SN_EINVAL);
    assert_msg_has(err, "net.cfg:27: [train] bad_bool = 'maybe'");

    char s[32];
    assert_int_equal(sn_section_string(cfg, t, "name_str", NULL, s, sizeof s, &err), SN_OK);
    assert_string_equal(s, "hello world");
    assert_int_equal(sn_section_string(cfg, t, "absent", NULL, s, sizeof s, &err), SN_OK);
    assert_string_equal(s, "");
    assert_int_equal(sn_section_string(cfg, t, "absent", "dflt", s, sizeof s, &err), SN_OK);
    assert_string_equal(s, "dflt");
    char tiny[4];
    assert_int_equal(sn_section_string(cfg, t, "name_str", NULL, tiny, sizeof tiny, &err),
                     SN_EINVAL);
    assert_msg_has(err, "net.cfg:29: [train] name_str");

    static const char *const opts[] = {"sgd", "rmsprop", "adam", NULL};
    int c = -1;
    assert_int_equal(sn_section_choice(cfg, t, "optimizer", "sgd", opts, &c, &err), SN_OK);
    assert_int_equal(c, 1);
    assert_int_equal(sn_section_choice(cfg, t, "absent", "adam", opts, &c, &err), SN_OK);
    assert_int_equal(c, 2);
    assert_int_equal(sn_section_choice(cfg, t, "absent", NULL, opts, &c, &err), SN_EINVAL);
    assert_msg_has(err, "[train] absent: required");
    assert_int_equal(sn_section_choice(cfg, t, "name_str", "sgd", opts, &c, &err), SN_EINVAL);
    assert_msg_has(err, "net.cfg:29: [train] name_str = 'hello world'");
    assert_msg_has(err, "sgd, rmsprop, adam");
    sn_config_free(cfg);
}

static void test_pairs(void **state)
{
    (void)state;
    struct sn_config *cfg = NULL;
    struct sn_err err = {0};
    assert_int_equal(sn_config_load_string(&cfg,
                                           "[p]\n"
                                           "a = 3\n"
                                           "b = 3,5\n"
                                           "c = (3, 5)\n"
                                           "d = 3x5\n"
                                           "e = [4, 6]\n"
                                           "f = (7,)\n"
                                           "g = 3,x\n"
                                           "h = 1,2,3\n"
                                           "i = 0.1, 0.2\n"
                                           "j = 0.5\n"
                                           "k = (0.1, 9)\n"
                                           "l = ,\n",
                                           "pairs.cfg", &err),
                     SN_OK);
    const struct sn_section *s = &cfg->sections[0];
    int v[2];
    struct {
        const char *key;
        int a, b;
    } ok[] = {{"a", 3, 3}, {"b", 3, 5}, {"c", 3, 5}, {"d", 3, 5}, {"e", 4, 6}, {"f", 7, 7}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        v[0] = v[1] = -1;
        if (sn_section_int2(cfg, s, ok[i].key, 0, 0, 1, 100, v, &err) != SN_OK)
            fail_msg("%s: %s", ok[i].key, err.msg);
        assert_int_equal(v[0], ok[i].a);
        assert_int_equal(v[1], ok[i].b);
    }
    assert_int_equal(sn_section_int2(cfg, s, "absent", 2, 4, 1, 100, v, &err), SN_OK);
    assert_int_equal(v[0], 2);
    assert_int_equal(v[1], 4);
    assert_int_equal(sn_section_int2(cfg, s, "g", 0, 0, 1, 100, v, &err), SN_EINVAL);
    assert_msg_has(err, "pairs.cfg:8: [p] g = '3,x'");
    assert_int_equal(sn_section_int2(cfg, s, "h", 0, 0, 1, 100, v, &err), SN_EINVAL);
    assert_msg_has(err, "pairs.cfg:9: [p] h");
    assert_int_equal(sn_section_int2(cfg, s, "b", 0, 0, 4, 100, v, &err), SN_EINVAL);
    assert_msg_has(err, "3 is out of range [4, 100]");
    assert_int_equal(sn_section_int2(cfg, s, "l", 0, 0, 1, 100, v, &err), SN_EINVAL);
    assert_msg_has(err, "pairs.cfg:13");

    /* a pair both of whose sides must be written ([augment] crop = H, W) */
    const char *pairs[] = {"b", "c", "d", "e"};
    for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
        if (sn_section_int_pair(cfg, s, pairs[i], 1, 100, v, &err) != SN_OK)
            fail_msg("%s: %s", pairs[i], err.msg);
    assert_true(v[0] == 4 && v[1] == 6);
    assert_int_equal(sn_section_int_pair(cfg, s, "a", 1, 100, v, &err), SN_EINVAL);
    assert_msg_has(err, "pairs.cfg:2: [p] a = '3': expected two integers");
    assert_int_equal(sn_section_int_pair(cfg, s, "f", 1, 100, v, &err), SN_EINVAL);
    assert_msg_has(err, "pairs.cfg:7: [p] f = '(7,)': expected two integers");
    assert_int_equal(sn_section_int_pair(cfg, s, "g", 1, 100, v, &err), SN_EINVAL);
    assert_int_equal(sn_section_int_pair(cfg, s, "b", 4, 100, v, &err), SN_EINVAL);
    assert_msg_has(err, "3 is out of range [4, 100]");
    v[0] = v[1] = -1;
    assert_int_equal(sn_section_int_pair(cfg, s, "absent", 1, 100, v, &err), SN_OK);
    assert_true(v[0] == 0 && v[1] == 0);

    double d[2];
    assert_int_equal(sn_section_float2(cfg, s, "i", 0, 0, 0, 1, d, &err), SN_OK);
    assert_true(d[0] == 0.1 && d[1] == 0.2);
    assert_int_equal(sn_section_float2(cfg, s, "j", 0, 0, 0, 1, d, &err), SN_OK);
    assert_true(d[0] == 0.5 && d[1] == 0.5);
    assert_int_equal(sn_section_float2(cfg, s, "k", 0, 0, 0, 1, d, &err), SN_EINVAL);
    assert_msg_has(err, "pairs.cfg:12: [p] k = '(0.1, 9)': 9 is out of range [0, 1]");
    sn_config_free(cfg);
}

static void test_syntax_errors(void **state)
{
    (void)state;
    struct sn_config *cfg = (struct sn_config *)1;
    struct sn_err err = {0};

    assert_int_equal(sn_config_load_string(&cfg, "x = 1\n[a]\n", "pre.cfg", &err), SN_EINVAL);
    assert_null(cfg);
    assert_msg_has(err, "pre.cfg:1:");
    assert_msg_has(err, "before any [section]");

    assert_int_equal(sn_config_load_string(&cfg, "[a]\nk = 1\n\n[b]\nk = 2\nK = 3\n", "dup.cfg",
                                           &err),
                     SN_EINVAL);
    assert_msg_has(err, "dup.cfg:6: [b] duplicate key 'k'");
    assert_msg_has(err, "line 5");

    assert_int_equal(sn_config_load_string(&cfg, "[a]\nk = 1\nnot a pair\n", "syn.cfg", &err),
                     SN_EINVAL);
    assert_msg_has(err, "syn.cfg:3: syntax error");

    assert_int_equal(sn_config_load_string(&cfg, "[a]\n[b\n", "br.cfg", &err), SN_EINVAL);
    assert_msg_has(err, "br.cfg:2:");

    assert_int_equal(sn_config_load_string(&cfg, "[a b]\n", "sp.cfg", &err), SN_EINVAL);
    assert_msg_has(err, "sp.cfg:1:");

    /* a line of the size of a file that is not a config is refused, naming its line */
    size_t huge = (size_t)SN_CFG_LINE_MAX + 16;
    char *longline = malloc(huge + 1);
    assert_non_null(longline);
    memset(longline, 'v', huge);
    memcpy(longline, "[a]\nk = ", 8);
    longline[huge] = '\0';
    assert_int_equal(sn_config_load_string(&cfg, longline, "long.cfg", &err), SN_EINVAL);
    assert_msg_has(err, "long.cfg:2: line longer than 1048576 characters");
    free(longline);

    assert_int_equal(sn_config_load(&cfg, "/nonexistent/dir/x.cfg", &err), SN_EIO);
    assert_msg_has(err, "/nonexistent/dir/x.cfg");
}

static void test_load_file(void **state)
{
    (void)state;
    char path[1100];
    snprintf(path, sizeof path, "%s/net.cfg", sn_test_dir("config_load_file"));
    assert_int_equal(sn_test_write_file(path, NET), 0);
    struct sn_config *cfg = NULL, *ref = load_net();
    struct sn_err err = {0};
    assert_int_equal(sn_config_load(&cfg, path, &err), SN_OK);
    assert_string_equal(cfg->path, path);
    assert_int_equal(cfg->n_sections, ref->n_sections);
    assert_true(cfg->hash == ref->hash); /* the hash is of content, not of the file name */
    int v;
    assert_int_equal(sn_section_int(cfg, sn_config_find(cfg, "train"), "bad_int", 0, 0, 1, &v,
                                    &err),
                     SN_EINVAL);
    char want[1200];
    snprintf(want, sizeof want, "%s:25: [train] bad_int", path);
    assert_msg_has(err, want);
    sn_config_free(cfg);
    sn_config_free(ref);
}

static void test_unused_keys(void **state)
{
    (void)state;
    struct sn_config *cfg = NULL;
    struct sn_err err = {0};
    assert_int_equal(sn_config_load_string(&cfg, "[train]\nepochs = 3\n\n[conv2d]\nfilters = 8\n"
                                                 "filter = 3\n",
                                           "u.cfg", &err),
                     SN_OK);
    int v;
    assert_int_equal(sn_section_int(cfg, &cfg->sections[0], "epochs", 1, 1, 10, &v, &err), SN_OK);
    assert_int_equal(sn_section_int(cfg, &cfg->sections[1], "filters", 1, 1, 10, &v, &err),
                     SN_OK);
    assert_int_equal(sn_config_check_unused(cfg, &err), SN_EINVAL);
    assert_msg_has(err, "u.cfg:6: unknown key 'filter' in [conv2d] (section at line 4)");
    assert_int_equal(sn_section_int(cfg, &cfg->sections[1], "filter", 1, 1, 10, &v, &err), SN_OK);
    assert_int_equal(sn_config_check_unused(cfg, &err), SN_OK);

    assert_int_equal(sn_config_override(cfg, "conv2d.kernel_sise=3", &err), SN_OK);
    assert_int_equal(sn_config_check_unused(cfg, &err), SN_EINVAL);
    assert_msg_has(err, "--set conv2d.kernel_sise");
    assert_msg_has(err, "unknown key 'kernel_sise' in [conv2d]");
    sn_config_free(cfg);
}

static void test_overrides(void **state)
{
    (void)state;
    struct sn_config *cfg = load_net();
    struct sn_err err = {0};
    uint64_t h0 = cfg->hash;
    int v;

    /* a settings key that exists */
    assert_int_equal(sn_config_override(cfg, "train.epochs=3", &err), SN_OK);
    assert_true(cfg->hash != h0);
    const struct sn_section *t = sn_config_find(cfg, "train");
    assert_int_equal(sn_section_int(cfg, t, "epochs", 1, 1, 100, &v, &err), SN_OK);
    assert_int_equal(v, 3);
    assert_int_equal(sn_section_key(t, "epochs")->line, 0);

    /* a bad value from --set is reported as such */
    assert_int_equal(sn_config_override(cfg, " train . epochs = many ", &err), SN_OK);
    assert_int_equal(sn_section_int(cfg, t, "epochs", 1, 1, 100, &v, &err), SN_EINVAL);
    assert_msg_has(err, "--set train.epochs: [train] epochs = 'many'");

    /* a missing settings section is created at the end */
    int n = cfg->n_sections;
    assert_int_equal(sn_config_override(cfg, "checkpoint.every=2", &err), SN_OK);
    assert_int_equal(cfg->n_sections, n + 1);
    assert_string_equal(cfg->sections[n].type, "checkpoint");
    assert_int_equal(sn_section_int(cfg, sn_config_find(cfg, "checkpoint"), "every", 1, 1, 9, &v,
                                    &err),
                     SN_OK);
    assert_int_equal(v, 2);
    assert_int_equal(sn_config_override(cfg, "early_stopping.patience=4", &err), SN_OK);
    assert_string_equal(cfg->sections[n + 1].type, "early_stopping");

    /* the second conv2d by its Keras name */
    uint64_t h1 = cfg->hash;
    assert_int_equal(sn_config_override(cfg, "conv2d_1.filters=128", &err), SN_OK);
    assert_true(cfg->hash != h1);
    assert_string_equal(sn_section_key(nth(cfg, "conv2d", 1), "filters")->value, "128");
    assert_string_equal(sn_section_key(nth(cfg, "conv2d", 0), "filters")->value, "32");
    /* a type that occurs once; the section type is case-insensitive */
    assert_int_equal(sn_config_override(cfg, "Dense.units=7", &err), SN_OK);
    assert_string_equal(sn_section_key(sn_config_find(cfg, "dense"), "units")->value, "7");

    /* unknown: candidates are listed */
    assert_int_equal(sn_config_override(cfg, "conv2d_5.filters=1", &err), SN_EINVAL);
    assert_msg_has(err, "conv2d_5");
    assert_msg_has(err, "conv2d_1");
    assert_msg_has(err, "maxpooling2d");
    /* malformed */
    assert_int_equal(sn_config_override(cfg, "epochs=3", &err), SN_EINVAL);
    assert_msg_has(err, "section.key=value");
    assert_int_equal(sn_config_override(cfg, "train.epochs", &err), SN_EINVAL);
    sn_config_free(cfg);

    /* ambiguous: two conv2d, both named, so "conv2d" names neither */
    assert_int_equal(sn_config_load_string(&cfg,
                                           "[conv2d]\nname = a\n[conv2d]\nname = b\n",
                                           "amb.cfg", &err),
                     SN_OK);
    assert_int_equal(sn_config_override(cfg, "conv2d.filters=1", &err), SN_EINVAL);
    assert_msg_has(err, "ambiguous");
    assert_msg_has(err, "a, b");
    assert_int_equal(sn_config_override(cfg, "b.filters=1", &err), SN_OK);
    assert_string_equal(sn_section_key(&cfg->sections[1], "filters")->value, "1");
    sn_config_free(cfg);
}

static void test_hash(void **state)
{
    (void)state;
    struct sn_config *a = NULL, *b = NULL;
    struct sn_err err = {0};
    assert_int_equal(sn_config_load_string(&a, "[a]\nx = 1\n[b]\n", "1.cfg", &err), SN_OK);
    assert_int_equal(sn_config_load_string(&b, "; c\n[A]\n  x=1 \n\n[b]\n", "2.cfg", &err), SN_OK);
    assert_true(a->hash == b->hash); /* comments, blanks, case of types: not content */
    sn_config_free(b);
    assert_int_equal(sn_config_load_string(&b, "[a]\n[b]\nx = 1\n", "3.cfg", &err), SN_OK);
    assert_true(a->hash != b->hash); /* the same key in another section */
    sn_config_free(b);
    assert_int_equal(sn_config_load_string(&b, "[a]\nx = 1\n[b]\n[c]\n", "4.cfg", &err), SN_OK);
    assert_true(a->hash != b->hash); /* an extra empty section */
    sn_config_free(b);
    assert_int_equal(sn_config_load_string(&b, "[a]\nx = 2\n[b]\n", "5.cfg", &err), SN_OK);
    assert_true(a->hash != b->hash);
    assert_int_equal(sn_config_override(b, "a.x=1", &err), SN_OK);
    assert_true(a->hash == b->hash); /* override back to the same content */
    sn_config_free(b);
    sn_config_free(a);
}

static void test_config_error(void **state)
{
    (void)state;
    struct sn_config *cfg = load_net();
    struct sn_err err = {0};
    const struct sn_section *c = nth(cfg, "conv2d", 1);
    assert_int_equal(sn_config_error(cfg, c, "filters", &err, SN_EINVAL, "%d > %d", 64, 32),
                     SN_EINVAL);
    assert_string_equal(err.msg, "net.cfg:14: [conv2d] filters: 64 > 32");
    assert_int_equal(sn_config_error(cfg, c, NULL, &err, SN_EINVAL, "bad"), SN_EINVAL);
    assert_string_equal(err.msg, "net.cfg:13: [conv2d]: bad");
    /* a key the section lacks: the section's line */
    assert_int_equal(sn_config_error(cfg, c, "strides", &err, SN_EINVAL, "x"), SN_EINVAL);
    assert_string_equal(err.msg, "net.cfg:13: [conv2d] strides: x");
    sn_config_free(cfg);
}

/* A UTF-8 byte order mark (what Windows editors write) before the first line is skipped,
 * whatever that line is: a header, a comment or a key. */
static void test_byte_order_mark(void **state)
{
    (void)state;
    struct sn_config *cfg = NULL;
    struct sn_err err = {0};
    assert_int_equal(sn_config_load_string(&cfg, "\xEF\xBB\xBF[data]\ndir = d\n", "bom.cfg", &err),
                     SN_OK);
    assert_int_equal(cfg->n_sections, 1);
    assert_string_equal(cfg->sections[0].type, "data");
    assert_string_equal(sn_section_key(&cfg->sections[0], "dir")->value, "d");
    assert_int_equal(sn_section_key(&cfg->sections[0], "dir")->line, 2);
    sn_config_free(cfg);
    assert_int_equal(sn_config_load_string(&cfg, "\xEF\xBB\xBF; c\n[data]\ndir = d\n", "b2.cfg",
                                           &err),
                     SN_OK);
    assert_int_equal(cfg->sections[0].line, 2);
    sn_config_free(cfg);
    /* before a key, the key is still before any section, and named without the mark */
    assert_int_equal(sn_config_load_string(&cfg, "\xEF\xBB\xBF" "dir = d\n[data]\n", "b3.cfg", &err),
                     SN_EINVAL);
    assert_msg_has(err, "b3.cfg:1: key 'dir' before any [section]");
    /* only at the start of the file */
    assert_int_equal(sn_config_load_string(&cfg, "[data]\n\xEF\xBB\xBF" "dir = d\n", "b4.cfg", &err),
                     SN_OK);
    assert_null(sn_section_key(&cfg->sections[0], "dir"));
    sn_config_free(cfg);
}

/* An indented line after a key continues its value (configparser, libinih's multi-line): the
 * parts joined by a newline, blank and comment lines between them skipped. */
static void test_continuation_lines(void **state)
{
    (void)state;
    struct sn_config *cfg = NULL;
    struct sn_err err = {0};
    const char *text = "[data]\n"                  /* 1 */
                       "class_names = cat, dog,\n" /* 2 */
                       "    bird,  ; a comment\n"  /* 3 */
                       "\n"                        /* 4 */
                       "    fish\n"                /* 5 */
                       "image_size = 28\n"         /* 6 */
                       "[conv2d]\n"                /* 7 */
                       "  filters = 8\n"           /* 8: after a header, a key */
                       "kernel_size = 3\n"         /* 9 */
                       "\tpadding_typo = same\n";  /* 10: continues kernel_size */
    assert_int_equal(sn_config_load_string(&cfg, text, "cont.cfg", &err), SN_OK);
    const struct sn_key *k = sn_section_key(&cfg->sections[0], "class_names");
    assert_string_equal(k->value, "cat, dog,\nbird,\nfish");
    assert_int_equal(k->line, 2);
    assert_int_equal(k->last_line, 5);
    assert_int_equal(sn_section_key(&cfg->sections[0], "image_size")->line, 6);
    const struct sn_section *conv = &cfg->sections[1];
    assert_int_equal(conv->n_keys, 2);
    assert_string_equal(sn_section_key(conv, "filters")->value, "8");
    assert_string_equal(sn_section_key(conv, "kernel_size")->value, "3\npadding_typo = same");
    /* a value that no longer parses says which lines continued it */
    int ks[2];
    assert_int_equal(sn_section_int2(cfg, conv, "kernel_size", 1, 1, 1, 99, ks, &err), SN_EINVAL);
    assert_msg_has(err, "cont.cfg:9: [conv2d] kernel_size");
    assert_msg_has(err, "lines 10 to 10 are indented, so they continue the value of 'kernel_size'");

    /* commas and line ends both separate class names */
    struct sn_data_conf dc;
    assert_int_equal(sn_data_conf_parse(&dc, cfg, &err), SN_OK);
    assert_int_equal(dc.n_class_names, 4);
    assert_string_equal(dc.class_names[0], "cat");
    assert_string_equal(dc.class_names[2], "bird");
    assert_string_equal(dc.class_names[3], "fish");
    sn_config_free(cfg);
    assert_int_equal(sn_config_load_string(&cfg, "[data]\nimage_size = 8\nclass_names =\n  a\n  b\n",
                                           "one.cfg", &err),
                     SN_OK);
    assert_int_equal(sn_data_conf_parse(&dc, cfg, &err), SN_OK);
    assert_int_equal(dc.n_class_names, 2);
    assert_string_equal(dc.class_names[1], "b");
    sn_config_free(cfg);
    /* an empty name is still an error, with the line of the key */
    assert_int_equal(sn_config_load_string(&cfg, "[data]\nimage_size = 8\nclass_names = a,,b\n",
                                           "empty.cfg", &err),
                     SN_OK);
    assert_int_equal(sn_data_conf_parse(&dc, cfg, &err), SN_EINVAL);
    assert_msg_has(err, "empty.cfg:3: [data] class_names: empty class name");
    sn_config_free(cfg);
}

/* "c0,c1,...,c999": 1,000 ImageNet-sized class names, about 6 KB here. */
static char *thousand_names(const char *sep)
{
    char *list = malloc(1000 * 16);
    assert_non_null(list);
    size_t len = 0;
    for (int i = 0; i < 1000; i++)
        len += (size_t)sprintf(list + len, "%sn%08d", i ? sep : "", i);
    return list;
}

/* No line limit short of SN_CFG_LINE_MAX: a class_names line of 1,000 names, a comment as long,
 * and a --set of 1,000 names. */
static void test_long_values(void **state)
{
    (void)state;
    char *names = thousand_names(", ");
    size_t n = strlen(names);
    char *text = malloc(2 * n + 200);
    assert_non_null(text);
    snprintf(text, 2 * n + 200, "[data]\nimage_size = 8\n; %s\nclass_names = %s\n", names, names);
    struct sn_config *cfg = NULL;
    struct sn_err err = {0};
    assert_int_equal(sn_config_load_string(&cfg, text, "long.cfg", &err), SN_OK);
    assert_string_equal(sn_section_key(&cfg->sections[0], "class_names")->value, names);
    struct sn_data_conf *dc = malloc(sizeof *dc);
    assert_non_null(dc);
    assert_int_equal(sn_data_conf_parse(dc, cfg, &err), SN_OK);
    assert_int_equal(dc->n_class_names, 1000);
    assert_string_equal(dc->class_names[999], "n00000999");
    sn_config_free(cfg);

    char *set = malloc(n + 32);
    assert_non_null(set);
    snprintf(set, n + 32, "data.class_names=%s", names);
    assert_int_equal(sn_config_load_string(&cfg, "[data]\nimage_size = 8\n", "s.cfg", &err), SN_OK);
    assert_int_equal(sn_config_override(cfg, set, &err), SN_OK);
    assert_int_equal(sn_data_conf_parse(dc, cfg, &err), SN_OK);
    assert_int_equal(dc->n_class_names, 1000);
    /* the resolved value is whole (a checkpoint's record compares it on resume) */
    const struct sn_section *d = sn_config_find(cfg, "data");
    int whole = 0;
    for (int i = 0; i < d->n_resolved; i++)
        if (strcmp(d->resolved[i].name, "class_names") == 0)
            whole = strcmp(d->resolved[i].value, names) == 0;
    assert_true(whole);
    sn_config_free(cfg);
    free(set);
    free(dc);
    free(text);
    free(names);
}

/* class_names_file: one name per line, relative to the config's folder; errors name its line. */
static void test_class_names_file(void **state)
{
    (void)state;
    const char *dir = sn_test_dir("config_class_names_file");
    char path[1200], list[1200];
    char *names = thousand_names("\n");
    snprintf(list, sizeof list, "%s/classes.txt", dir);
    assert_int_equal(sn_test_write_file(list, names), 0);
    snprintf(path, sizeof path, "%s/c.cfg", dir);
    assert_int_equal(sn_test_write_file(path, "[data]\nimage_size = 8\n"
                                              "class_names_file = classes.txt\n"),
                     0);
    struct sn_config *cfg = NULL;
    struct sn_err err = {0};
    struct sn_data_conf *dc = malloc(sizeof *dc);
    assert_non_null(dc);
    assert_int_equal(sn_config_load(&cfg, path, &err), SN_OK);
    assert_int_equal(sn_data_conf_parse(dc, cfg, &err), SN_OK);
    assert_int_equal(dc->n_class_names, 1000);
    assert_string_equal(dc->class_names[0], "n00000000");
    assert_string_equal(dc->class_names[999], "n00000999");
    sn_config_free(cfg);

    /* a name may hold commas and blanks; blank lines are skipped */
    assert_int_equal(sn_test_write_file(list, "tench, Tinca tinca\n\n  goldfish \n"), 0);
    assert_int_equal(sn_config_load(&cfg, path, &err), SN_OK);
    assert_int_equal(sn_data_conf_parse(dc, cfg, &err), SN_OK);
    assert_int_equal(dc->n_class_names, 2);
    assert_string_equal(dc->class_names[0], "tench, Tinca tinca");
    assert_string_equal(dc->class_names[1], "goldfish");
    sn_config_free(cfg);

    /* a name twice: the file and line */
    assert_int_equal(sn_test_write_file(list, "a\nb\na\n"), 0);
    assert_int_equal(sn_config_load(&cfg, path, &err), SN_OK);
    assert_int_equal(sn_data_conf_parse(dc, cfg, &err), SN_EINVAL);
    char want[1300];
    snprintf(want, sizeof want, "%s:3: class 'a' listed twice", list);
    assert_msg_has(err, want);
    sn_config_free(cfg);

    /* both forms, or a missing file: refused, naming the key */
    assert_int_equal(sn_config_load(&cfg, path, &err), SN_OK);
    assert_int_equal(sn_config_override(cfg, "data.class_names=a,b", &err), SN_OK);
    assert_int_equal(sn_data_conf_parse(dc, cfg, &err), SN_EINVAL);
    assert_msg_has(err, "class_names and class_names_file both list the classes");
    sn_config_free(cfg);
    assert_int_equal(sn_config_load(&cfg, path, &err), SN_OK);
    assert_int_equal(sn_config_override(cfg, "data.class_names_file=nowhere.txt", &err), SN_OK);
    assert_int_equal(sn_data_conf_parse(dc, cfg, &err), SN_EIO);
    assert_msg_has(err, "nowhere.txt ([data] class_names_file, --set data.class_names_file)");
    sn_config_free(cfg);
    /* a folder is not a file of names */
    assert_int_equal(sn_config_load(&cfg, path, &err), SN_OK);
    assert_int_equal(sn_config_override(cfg, "data.class_names_file=/", &err), SN_OK);
    assert_int_equal(sn_data_conf_parse(dc, cfg, &err), SN_EIO);
    assert_msg_has(err, "not a regular file");
    sn_config_free(cfg);
    free(dc);
    free(names);
}

/* A settings section given twice is refused naming both lines; layer sections repeat. */
static void test_duplicate_sections(void **state)
{
    (void)state;
    struct sn_config *cfg = NULL;
    struct sn_err err = {0};
    assert_int_equal(sn_config_load_string(&cfg, "[train]\nepochs = 1\n[data]\nimage_size = 8\n"
                                                 "\n[train]\nbatch_size = 3\n",
                                           "dup.cfg", &err),
                     SN_EINVAL);
    assert_null(cfg);
    assert_msg_has(err, "dup.cfg:6: [train] at line 6 repeats [train] at line 1; a settings "
                        "section may appear once");
    assert_int_equal(sn_config_load_string(&cfg, "[Data]\nimage_size = 8\n[data]\ndir = d\n",
                                           "dup2.cfg", &err),
                     SN_EINVAL);
    assert_msg_has(err, "dup2.cfg:3: [data] at line 3 repeats [data] at line 1");
    assert_int_equal(sn_config_load_string(&cfg, "[conv2d]\nfilters = 1\n[conv2d]\nfilters = 2\n",
                                           "layers.cfg", &err),
                     SN_OK);
    assert_int_equal(cfg->n_sections, 2);
    sn_config_free(cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sections_in_order),
        cmocka_unit_test(test_layer_names),
        cmocka_unit_test(test_int_getter),
        cmocka_unit_test(test_float_getter),
        cmocka_unit_test(test_bool_string_choice),
        cmocka_unit_test(test_pairs),
        cmocka_unit_test(test_syntax_errors),
        cmocka_unit_test(test_load_file),
        cmocka_unit_test(test_unused_keys),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_hash),
        cmocka_unit_test(test_config_error),
        cmocka_unit_test(test_byte_order_mark),
        cmocka_unit_test(test_continuation_lines),
        cmocka_unit_test(test_long_values),
        cmocka_unit_test(test_class_names_file),
        cmocka_unit_test(test_duplicate_sections),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
