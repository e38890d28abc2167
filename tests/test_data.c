/* test_data.c — [data] parsing, directory scanning and its errors, validation_split, epoch order,
 * sharding over 1..4 ranks (arithmetic and the loader itself), thread-count independence, bad
 * files, and the Fashion-MNIST converter on a tiny hand-made IDX set. */
#include <setjmp.h> // defines: jmp_buf (cmocka)
#include <stdarg.h> // defines: va_list (cmocka)
#include <stddef.h> // defines: size_t (cmocka)
#include <stdint.h> // defines: uint8_t

#include <cmocka.h>   // defines: cmocka_unit_test, assert_*
#include <dirent.h>   // defines: opendir, readdir
#include <fcntl.h>    // defines: AT_FDCWD
#include <math.h>     // defines: fabs
#include <stdio.h>    // defines: snprintf, fopen
#include <stdlib.h>   // defines: calloc, free
#include <string.h>   // defines: strstr, memcmp, strdup
#include <sys/stat.h> // defines: mkdir, mkfifo, stat, utimensat
#include <unistd.h>   // defines: symlink, dup, dup2, close
#include <zlib.h>     // defines: gzopen, gzwrite

#include "config.h"
#include "dataset.h"
#include "datasets.h"
#include "loader.h"
#include "image.h"
#include "index_cache.h"
#include "rng.h"
#include "testutil.h"

/* ---------------------------------------------------------------------------------------- */
/* helpers                                                                                   */

static void mkdirs(const char *path)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", path);
    assert_int_equal(system(cmd), 0);
}

/* Copies a path into a SN_PATH_MAX field of the data settings. */
static void set_path(char *dst, const char *src)
{
    size_t n = strlen(src);
    assert_true(n < SN_PATH_MAX);
    memcpy(dst, src, n + 1);
}

static void write_bytes(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    if (len)
        assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Sends this process's stderr to path until stderr_end; returns the saved descriptor. */
static int stderr_begin(const char *path)
{
    fflush(stderr);
    int saved = dup(2);
    assert_true(saved >= 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(dup2(fileno(f), 2), 2);
    fclose(f);
    return saved;
}

/* Gives stderr back; returns the bytes written to it since stderr_begin. */
static long stderr_end(int saved, const char *path)
{
    fflush(stderr);
    assert_int_equal(dup2(saved, 2), 2);
    close(saved);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    return (long)st.st_size;
}

/* A 28x28 grayscale JPEG of constant value v. */
static void write_gray_jpeg(const char *path, int v, int size)
{
    uint8_t px[64 * 64];
    assert_true(size <= 64);
    for (int i = 0; i < size * size; i++)
        px[i] = (uint8_t)(v + (i % 7)); /* a little texture so augmentation changes something */
    struct sn_err err = {0};
    int rc = sn_image_write_jpeg(path, px, size, size, 1, 95, &err);
    if (rc != SN_OK)
        fail_msg("%s", err.msg);
}

/* root/<class>/<i>.jpg with counts[c] images of value 40*c+20. */
static void make_image_tree(const char *root, int n_classes, const int *counts, int size)
{
    char p[2048];
    for (int c = 0; c < n_classes; c++) {
        snprintf(p, sizeof p, "%s/class%d", root, c);
        mkdirs(p);
        for (int i = 0; i < counts[c]; i++) {
            snprintf(p, sizeof p, "%s/class%d/%03d.jpg", root, c, i);
            write_gray_jpeg(p, 40 * c + 20, size);
        }
    }
}

static void conf_for(struct sn_data_conf *dc, const char *train_dir, int size)
{
    memset(dc, 0, sizeof *dc);
    set_path(dc->split_dir[SN_SPLIT_TRAIN], train_dir);
    dc->height = dc->width = size;
    dc->channels = 1;
    dc->threads = 2;
    dc->queue_depth = 3;
    dc->max_pixels = 89478485;
}

static int parse_text(struct sn_data_conf *dc, const char *text, struct sn_err *err)
{
    struct sn_config *cfg = NULL;
    int rc = sn_config_load_string(&cfg, text, "test.ini", err);
    if (rc == SN_OK)
        rc = sn_data_conf_parse(dc, cfg, err);
    sn_config_free(cfg);
    return rc;
}

static void expect_open_error(const struct sn_data_conf *dc, enum sn_split split,
                              const char *needle)
{
    struct sn_dataset *ds = NULL;
    struct sn_err err = {0};
    int rc = sn_dataset_open(&ds, dc, split, NULL, &err);
    assert_int_not_equal(rc, SN_OK);
    assert_null(ds);
    if (strstr(err.msg, needle) == NULL)
        fail_msg("error '%s' does not name '%s'", err.msg, needle);
}

/* ---------------------------------------------------------------------------------------- */
/* [data]                                                                                    */

static void test_conf_parse(void **state)
{
    (void)state;
    struct sn_data_conf dc;
    struct sn_err err = {0};
    assert_int_equal(parse_text(&dc, "[data]\ndir = d\nimage_size = 28\ncolor_mode = grayscale\n",
                                &err),
                     SN_OK);
    assert_int_equal(dc.height, 28);
    assert_int_equal(dc.width, 28);
    assert_int_equal(dc.channels, 1);
    assert_int_equal(dc.label_mode, SN_LABEL_INT);
    assert_true(dc.threads >= 1);
    assert_int_equal(dc.queue_depth, 4);
    assert_int_equal(dc.max_pixels, 89478485);
    assert_int_equal(dc.on_bad_image_fail, 0);

    assert_int_equal(parse_text(&dc, "[data]\ndir = d\nimage_size = 180,160\nlabel_mode = binary\n"
                                     "class_names = cats, dogs\ninterpolation = area\n"
                                     "on_bad_image = fail\nthreads = 3\n",
                                &err),
                     SN_OK);
    assert_int_equal(dc.height, 180);
    assert_int_equal(dc.width, 160);
    assert_int_equal(dc.channels, 3);
    assert_int_equal(dc.interp, SN_INTERP_AREA);
    assert_int_equal(dc.n_class_names, 2);
    assert_string_equal(dc.class_names[1], "dogs");
    assert_int_equal(dc.on_bad_image_fail, 1);
    assert_int_equal(dc.threads, 3);

    /* image_size is required */
    assert_int_not_equal(parse_text(&dc, "[data]\ndir = d\n", &err), SN_OK);
    assert_non_null(strstr(err.msg, "image_size"));
    /* validation_split needs a seed; [train] seed counts */
    assert_int_not_equal(
        parse_text(&dc, "[data]\ndir = d\nimage_size = 28\nvalidation_split = 0.2\n", &err),
        SN_OK);
    assert_non_null(strstr(err.msg, "validation_split needs a seed, as in Keras"));
    assert_int_equal(parse_text(&dc,
                                "[data]\ndir = d\nimage_size = 28\nvalidation_split = 0.2\n"
                                "[train]\nseed = 1337\n",
                                &err),
                     SN_OK);
    assert_int_equal(dc.has_split_seed, 1);
    assert_int_equal(dc.split_seed, 1337);
    assert_int_not_equal(
        parse_text(&dc, "[data]\ndir = d\nimage_size = 28\nvalidation_split = 1\nseed=1\n", &err),
        SN_OK);
    assert_int_not_equal(parse_text(&dc, "[data]\ndir = d\nimage_size = 28\ncolor_mode = cmyk\n",
                                    &err),
                         SN_OK);
}

/* index_cache: a word, or a folder (a value with a '/'); anything else names the line. */
static void test_conf_index_cache(void **state)
{
    (void)state;
    static const struct {
        const char *value;
        enum sn_index_cache mode;
    } ok[] = {{"yes", SN_INDEX_CACHE_HOME},       {"home", SN_INDEX_CACHE_HOME},
              {"True", SN_INDEX_CACHE_HOME},      {"on", SN_INDEX_CACHE_HOME},
              {"1", SN_INDEX_CACHE_HOME},         {"beside", SN_INDEX_CACHE_BESIDE},
              {"Beside", SN_INDEX_CACHE_BESIDE},  {"no", SN_INDEX_CACHE_NO},
              {"false", SN_INDEX_CACHE_NO},       {"off", SN_INDEX_CACHE_NO},
              {"0", SN_INDEX_CACHE_NO},           {"./cache", SN_INDEX_CACHE_DIR},
              {"/scratch/me/cache", SN_INDEX_CACHE_DIR}};
    struct sn_data_conf dc;
    struct sn_err err = {0};
    char text[256];
    assert_int_equal(parse_text(&dc, "[data]\nimage_size = 28\n", &err), SN_OK);
    assert_int_equal(dc.index_cache, SN_INDEX_CACHE_HOME);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        snprintf(text, sizeof text, "[data]\nimage_size = 28\nindex_cache = %s\n", ok[i].value);
        if (parse_text(&dc, text, &err) != SN_OK)
            fail_msg("index_cache = %s: %s", ok[i].value, err.msg);
        assert_int_equal(dc.index_cache, ok[i].mode);
        if (ok[i].mode == SN_INDEX_CACHE_DIR)
            assert_string_equal(dc.index_dir, ok[i].value);
    }
    static const char *const bad[][2] = {
        {"maybe", "none of yes, home, beside, no, or a folder"},
        {"cache", "none of yes, home, beside, no, or a folder"},
        {"~/cache", "'~' is not expanded"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(text, sizeof text, "[data]\nimage_size = 28\nindex_cache = %s\n", bad[i][0]);
        assert_int_equal(parse_text(&dc, text, &err), SN_EINVAL);
        if (strstr(err.msg, "test.ini:3") == NULL || strstr(err.msg, "index_cache") == NULL ||
            strstr(err.msg, bad[i][1]) == NULL)
            fail_msg("index_cache = %s: '%s'", bad[i][0], err.msg);
    }
}

/* ---------------------------------------------------------------------------------------- */
/* scanning                                                                                  */

static void test_scan_sorted(void **state)
{
    (void)state;
    char root[1024], p[1200];
    snprintf(root, sizeof root, "%s", sn_test_dir("data_scan"));
    const char *classes[] = {"zebra", "apple", "Mango"};
    for (int c = 0; c < 3; c++) {
        snprintf(p, sizeof p, "%s/train/%s", root, classes[c]);
        mkdirs(p);
    }
    /* content is not looked at while scanning */
    const char *files[] = {"zebra/10.jpg", "zebra/2.JPG",  "zebra/.hidden.jpg", "zebra/notes.txt",
                           "apple/b.png",  "apple/a.jpeg", "apple/c.gif",       "Mango/x.BMP"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/train/%s", root, files[i]);
        write_bytes(p, "x", 1);
    }
    snprintf(p, sizeof p, "%s/train/zebra/sub.jpg", root);
    mkdirs(p); /* a folder named like an image is not a file, but its images are listed */
    snprintf(p, sizeof p, "%s/train/zebra/sub.jpg/inner.png", root);
    write_bytes(p, "x", 1);
    snprintf(p, sizeof p, "%s/train/apple", root);
    char link[2048];
    snprintf(link, sizeof link, "%s/train/zebra/loop", root);
    assert_int_equal(symlink(p, link), 0); /* symlinked folders are not walked */

    struct sn_data_conf dc;
    conf_for(&dc, "", 28);
    set_path(dc.dir, root);
    struct sn_dataset *ds = NULL;
    struct sn_err err = {0};
    assert_int_equal(sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    assert_int_equal(ds->n_classes, 3);
    assert_string_equal(ds->class_names[0], "Mango"); /* strcmp order */
    assert_string_equal(ds->class_names[1], "apple");
    assert_string_equal(ds->class_names[2], "zebra");
    assert_int_equal(ds->n, 7);
    const char *want[] = {"Mango/x.BMP", "apple/a.jpeg", "apple/b.png", "apple/c.gif",
                          "zebra/10.jpg", "zebra/2.JPG", "zebra/sub.jpg/inner.png"};
    const int labels[] = {0, 1, 1, 1, 2, 2, 2};
    for (int i = 0; i < 7; i++) {
        snprintf(p, sizeof p, "%s/train/%s", root, want[i]);
        assert_string_equal(ds->paths[i], p);
        assert_int_equal(ds->labels[i], labels[i]);
    }
    sn_dataset_free(ds);

    /* class_names fixes the label order */
    dc.n_class_names = 3;
    strcpy(dc.class_names[0], "zebra");
    strcpy(dc.class_names[1], "apple");
    strcpy(dc.class_names[2], "Mango");
    assert_int_equal(sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    assert_string_equal(ds->class_names[0], "zebra");
    assert_int_equal(ds->labels[0], 0);
    assert_int_equal(ds->labels[ds->n - 1], 2);
    sn_dataset_free(ds);
    sn_dataset_free(NULL);

    /* "validation" is accepted for the val folder */
    snprintf(p, sizeof p, "%s/validation/only", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/validation/only/1.jpg", root);
    write_bytes(p, "x", 1);
    dc.n_class_names = 0;
    assert_int_equal(sn_dataset_open(&ds, &dc, SN_SPLIT_VAL, NULL, &err), SN_OK);
    assert_int_equal(ds->n, 1);
    sn_dataset_free(ds);
}

static void test_scan_errors(void **state)
{
    (void)state;
    char root[1024], p[1200];
    snprintf(root, sizeof root, "%s", sn_test_dir("data_scan_err"));
    struct sn_data_conf dc;

    snprintf(p, sizeof p, "%s/missing", root);
    conf_for(&dc, p, 28);
    expect_open_error(&dc, SN_SPLIT_TRAIN, p);

    snprintf(p, sizeof p, "%s/afile", root);
    write_bytes(p, "x", 1);
    conf_for(&dc, p, 28);
    expect_open_error(&dc, SN_SPLIT_TRAIN, "afile is not a directory");

    snprintf(p, sizeof p, "%s/noclasses", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/noclasses/loose.jpg", root);
    write_bytes(p, "x", 1);
    snprintf(p, sizeof p, "%s/noclasses", root);
    conf_for(&dc, p, 28);
    expect_open_error(&dc, SN_SPLIT_TRAIN, "noclasses has no class subfolders");

    snprintf(p, sizeof p, "%s/emptyclass/full", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/emptyclass/full/1.jpg", root);
    write_bytes(p, "x", 1);
    snprintf(p, sizeof p, "%s/emptyclass/hollow", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/emptyclass/hollow/readme.txt", root);
    write_bytes(p, "x", 1);
    snprintf(p, sizeof p, "%s/emptyclass", root);
    conf_for(&dc, p, 28);
    expect_open_error(&dc, SN_SPLIT_TRAIN, "emptyclass/hollow has no images");

    snprintf(p, sizeof p, "%s/emptyclass", root);
    conf_for(&dc, p, 28);
    dc.n_class_names = 2;
    strcpy(dc.class_names[0], "full");
    strcpy(dc.class_names[1], "absent");
    expect_open_error(&dc, SN_SPLIT_TRAIN, "emptyclass/absent is missing");

    snprintf(p, sizeof p, "%s/three", root);
    const int counts[3] = {1, 1, 1};
    for (int c = 0; c < 3; c++) {
        char q[2048];
        snprintf(q, sizeof q, "%s/class%d", p, c);
        mkdirs(q);
        snprintf(q, sizeof q, "%s/class%d/a.jpg", p, c);
        write_bytes(q, "x", 1);
    }
    (void)counts;
    conf_for(&dc, p, 28);
    dc.label_mode = SN_LABEL_BINARY;
    expect_open_error(&dc, SN_SPLIT_TRAIN, "three: label_mode = binary needs exactly 2 classes");

    /* no dir at all for test */
    conf_for(&dc, p, 28);
    expect_open_error(&dc, SN_SPLIT_TEST, "test");
}

static void test_validation_split(void **state)
{
    (void)state;
    char root[1024], p[1200];
    snprintf(root, sizeof root, "%s", sn_test_dir("data_vsplit"));
    for (int c = 0; c < 2; c++)
        for (int i = 0; i < 50; i++) {
            snprintf(p, sizeof p, "%s/c%d", root, c);
            if (i == 0)
                mkdirs(p);
            snprintf(p, sizeof p, "%s/c%d/%02d.jpg", root, c, i);
            write_bytes(p, "x", 1);
        }
    struct sn_data_conf dc;
    conf_for(&dc, "", 28);
    set_path(dc.dir, root); /* no dir/train: the root itself */
    dc.validation_split = 0.2;
    dc.has_split_seed = 1;
    dc.split_seed = 7;
    struct sn_dataset *tr, *va, *tr2, *va2, *tr3;
    struct sn_err err = {0};
    assert_int_equal(sn_dataset_open(&tr, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    assert_int_equal(sn_dataset_open(&va, &dc, SN_SPLIT_VAL, NULL, &err), SN_OK);
    assert_int_equal(tr->n, 80);
    assert_int_equal(va->n, 20);
    /* disjoint and covering */
    int seen[100] = {0};
    for (int i = 0; i < tr->n; i++) {
        int c = 0, k = 0;
        assert_int_equal(sscanf(strrchr(tr->paths[i], '/') - 2, "c%d/%d", &c, &k), 2);
        assert_int_equal(c, tr->labels[i]);
        seen[c * 50 + k]++;
    }
    for (int i = 0; i < va->n; i++) {
        int c = 0, k = 0;
        assert_int_equal(sscanf(strrchr(va->paths[i], '/') - 2, "c%d/%d", &c, &k), 2);
        seen[c * 50 + k]++;
    }
    for (int i = 0; i < 100; i++)
        assert_int_equal(seen[i], 1);
    /* deterministic by seed */
    assert_int_equal(sn_dataset_open(&va2, &dc, SN_SPLIT_VAL, NULL, &err), SN_OK);
    assert_int_equal(va2->n, va->n);
    for (int i = 0; i < va->n; i++)
        assert_string_equal(va->paths[i], va2->paths[i]);
    dc.split_seed = 8;
    assert_int_equal(sn_dataset_open(&tr2, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    int differ = 0;
    for (int i = 0; i < tr->n; i++)
        differ += strcmp(tr->paths[i], tr2->paths[i]) != 0;
    assert_true(differ > 0);
    /* dir/train is preferred when it exists */
    snprintf(p, sizeof p, "%s/train/k0", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/train/k1", root);
    mkdirs(p);
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/train/k%d/%d.png", root, i % 2, i);
        write_bytes(p, "x", 1);
    }
    dc.validation_split = 0.5;
    memset(&err, 0, sizeof err);
    if (sn_dataset_open(&tr3, &dc, SN_SPLIT_TRAIN, NULL, &err) == SN_OK) {
        assert_int_equal(tr3->n, 2);
        assert_non_null(strstr(tr3->paths[0], "/train/k"));
        sn_dataset_free(tr3);
    } else {
        assert_non_null(strstr(err.msg, "/train"));
    }
    sn_dataset_free(tr);
    sn_dataset_free(va);
    sn_dataset_free(va2);
    sn_dataset_free(tr2);

    /* a class too small for the split */
    snprintf(root, sizeof root, "%s", sn_test_dir("data_vsplit_small"));
    snprintf(p, sizeof p, "%s/big", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/tiny", root);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/tiny/only.jpg", root);
    write_bytes(p, "x", 1);
    for (int i = 0; i < 9; i++) {
        snprintf(p, sizeof p, "%s/big/%d.jpg", root, i);
        write_bytes(p, "x", 1);
    }
    set_path(dc.dir, root);
    dc.validation_split = 0.3;
    struct sn_dataset *a = NULL, *b = NULL;
    int ra = sn_dataset_open(&a, &dc, SN_SPLIT_TRAIN, NULL, &err);
    struct sn_err err2 = {0};
    int rb = sn_dataset_open(&b, &dc, SN_SPLIT_VAL, NULL, &err2);
    /* the single 'tiny' image is in exactly one half. The training half must hold every class
       (the error names it); a validation half may lack one, and says so in class_count */
    if (ra == SN_OK) {
        assert_int_equal(rb, SN_OK);
        int tiny = -1;
        for (int c = 0; c < b->n_classes; c++)
            if (strcmp(b->class_names[c], "tiny") == 0)
                tiny = c;
        assert_true(tiny >= 0);
        assert_int_equal(b->class_count[tiny], 0);
        char missing[64];
        assert_int_equal(sn_dataset_missing(b, missing, sizeof missing), 1);
        assert_string_equal(missing, "tiny");
    } else {
        assert_non_null(strstr(err.msg, "class 'tiny'"));
        assert_non_null(strstr(err.msg, root));
    }
    sn_dataset_free(a);
    sn_dataset_free(b);
}

/* ---------------------------------------------------------------------------------------- */
/* order and shards                                                                          */

/* ---------------------------------------------------------------------------------------- */
/* The index: packed form, and the file-list cache (beside the data, or elsewhere)             */

/* root/train/{a,b,c}/ with a subfolder in b; every folder dated 2020 so that a scan may be
 * cached (folders changed in the last second are not). */
static void make_index_tree(const char *root)
{
    char p[1200];
    const char *files[] = {"a/1.jpg", "a/2.jpg", "a/3.png", "b/x.jpg", "b/sub/y.jpg",
                           "b/sub/z.jpg", "c/only.jpeg"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        snprintf(p, sizeof p, "%s/train/%s", root, files[i]);
        char *slash = strrchr(p, '/');
        *slash = '\0';
        mkdirs(p);
        *slash = '/';
        write_bytes(p, "x", 1);
    }
}

static void backdate(const char *root)
{
    static int day; /* a new date each time: setting back the date a cache recorded would hide
                       the change (as it would from make) */
    char cmd[1400];
    day++;
    snprintf(cmd, sizeof cmd, "find '%s' -type d -exec touch -d '2020-01-01 + %d days' {} +", root,
             day);
    assert_int_equal(system(cmd), 0);
}

static void test_pack_round_trip(void **state)
{
    (void)state;
    char root[1024];
    snprintf(root, sizeof root, "%s", sn_test_dir("data_pack"));
    make_index_tree(root);
    struct sn_data_conf dc;
    conf_for(&dc, "", 28);
    set_path(dc.dir, root);
    dc.validation_split = 0.3; /* n_found != n survives the trip */
    dc.has_split_seed = 1;
    dc.split_seed = 7;
    struct sn_dataset *ds = NULL, *back = NULL;
    struct sn_err err = {0};
    assert_int_equal(sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    assert_true(ds->n < ds->n_found);
    void *buf = NULL;
    size_t len = 0;
    assert_int_equal(sn_dataset_pack(ds, &buf, &len, &err), SN_OK);
    assert_int_equal(sn_dataset_unpack(&back, buf, len, &err), SN_OK);
    sn_test_assert_same_dataset(ds, back);
    assert_int_equal(back->index_source, SN_INDEX_RECEIVED);
    sn_dataset_free(back);

    /* every truncation and a flipped byte in every position: an error or a list, never a
       read past the end (ASan would say) nor a path out of the root */
    unsigned char *copy = malloc(len);
    assert_non_null(copy);
    for (size_t cut = 0; cut < len; cut++) {
        back = NULL;
        memcpy(copy, buf, cut);
        assert_int_equal(sn_dataset_unpack(&back, copy, cut, &err), SN_EFORMAT);
        assert_null(back);
    }
    for (size_t i = 0; i < len; i++) {
        memcpy(copy, buf, len);
        copy[i] ^= 0x40;
        back = NULL;
        if (sn_dataset_unpack(&back, copy, len, &err) == SN_OK) {
            for (int k = 0; k < back->n; k++) {
                assert_non_null(strstr(back->paths[k], "/"));
                assert_null(strstr(back->paths[k] + strlen(back->root), "/../"));
                assert_true(back->labels[k] >= 0 && back->labels[k] < back->n_classes);
            }
            sn_dataset_free(back);
        } else {
            assert_null(back);
        }
    }
    free(copy);
    free(buf);
    sn_dataset_free(ds);
}

/* Where open_cached keeps the file list (the folder of SN_INDEX_CACHE_DIR in cache_dir). */
static enum sn_index_cache cache_mode = SN_INDEX_CACHE_BESIDE;
static char cache_dir[1024];

/* Opens root's train split with the cache on; returns it, checks where it came from. */
static struct sn_dataset *open_cached_at(const char *root, enum sn_index_source want, int line)
{
    struct sn_data_conf dc;
    conf_for(&dc, "", 28);
    set_path(dc.dir, root);
    dc.index_cache = cache_mode;
    set_path(dc.index_dir, cache_dir);
    struct sn_dataset *ds = NULL;
    struct sn_err err = {0};
    if (sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, NULL, &err) != SN_OK)
        fail_msg("%s", err.msg);
    if (ds->index_source != want)
        fail_msg("line %d: index source %d, expected %d", line, ds->index_source, want);
    return ds;
}
#define open_cached(root, want) open_cached_at(root, want, __LINE__)

/* The file of root/train's entry under cache_mode. */
static void entry_of(const char *root, char *out, size_t cap)
{
    char train[1200], why[2200];
    snprintf(train, sizeof train, "%s/train", root);
    if (sn_index_cache_entry(train, cache_mode, cache_dir, out, cap, why, sizeof why) != 0)
        fail_msg("no entry for %s: %s", train, why);
}

/* Names under root that begin with ".shardnet" (what a cache beside the data would leave). */
static int shardnet_files_in(const char *root)
{
    char cmd[1400];
    snprintf(cmd, sizeof cmd, "test -z \"$(find '%s' -name '.shardnet*')\"", root);
    return system(cmd) != 0;
}

/* setenv, or unsetenv for NULL. */
static void env_set(const char *name, const char *value)
{
    if (value)
        assert_int_equal(setenv(name, value, 1), 0);
    else
        assert_int_equal(unsetenv(name), 0);
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

/* ds->note is "<cache> is damaged (<why>): ignored, <root>/train is scanned again". */
static void expect_cache_note(const struct sn_dataset *ds, const char *start, const char *root)
{
    char end[1200];
    snprintf(end, sizeof end, "): ignored, %s/train is scanned again", root);
    size_t n = strlen(ds->note), e = strlen(end);
    if (strncmp(ds->note, start, strlen(start)) != 0 || n < e ||
        strcmp(ds->note + n - e, end) != 0)
        fail_msg("note '%s', expected '%s...%s'", ds->note, start, end);
}

/* What every place of the cache must hold to: cached only when the folders are older than a
 * second, every change seen, any damage noted and rebuilt, an entry of an earlier version
 * rebuilt without a word, an entry that cannot be written no error. Under cache_mode. */
static void index_cache_battery(const char *name)
{
    char root[1024], cache[1200];
    snprintf(root, sizeof root, "%s", sn_test_dir(name));
    make_index_tree(root);
    entry_of(root, cache, sizeof cache);

    /* folders changed just now: scanned, not cached (a change in the same clock tick could
       hide) */
    struct sn_dataset *ref = open_cached(root, SN_INDEX_SCANNED);
    assert_int_equal(file_size(cache), -1);
    backdate(root);
    sn_dataset_free(open_cached(root, SN_INDEX_SCANNED));
    assert_true(file_size(cache) > 0);
    struct sn_dataset *ds = open_cached(root, SN_INDEX_CACHED);
    sn_test_assert_same_dataset(ref, ds);
    sn_dataset_free(ds);

    /* without the cache setting nothing is read or written */
    struct sn_data_conf dc;
    conf_for(&dc, "", 28);
    set_path(dc.dir, root);
    struct sn_err err = {0};
    assert_int_equal(sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    assert_int_equal(ds->index_source, SN_INDEX_SCANNED);
    sn_dataset_free(ds);

    /* a file added to a class folder, to a subfolder, a file removed, a new class folder:
       each is seen */
    const char *changes[] = {"touch '%s/train/a/4.jpg'", "touch '%s/train/b/sub/w.jpg'",
                             "rm '%s/train/a/1.jpg'", "mkdir '%s/train/d' && touch '%s/train/d/1.jpg'"};
    const int delta[] = {1, 1, -1, 1};
    int n = ref->n;
    for (int k = 0; k < 4; k++) {
        char cmd[3000];
        snprintf(cmd, sizeof cmd, changes[k], root, root);
        assert_int_equal(system(cmd), 0);
        ds = open_cached(root, SN_INDEX_SCANNED);
        n += delta[k];
        assert_int_equal(ds->n, n);
        assert_true(ds->fingerprint != ref->fingerprint);
        sn_dataset_free(ds);
        backdate(root);
        sn_dataset_free(open_cached(root, SN_INDEX_SCANNED)); /* rewrites the cache */
        ds = open_cached(root, SN_INDEX_CACHED);
        assert_int_equal(ds->n, n);
        sn_dataset_free(ds);
    }
    assert_int_equal(n, ref->n + 2);

    /* a damaged cache: truncated, or one byte flipped anywhere, is never trusted; the scan's
       result is the same as a fresh one and the cache is rebuilt */
    struct sn_dataset *fresh = open_cached(root, SN_INDEX_CACHED);
    long size = file_size(cache);
    FILE *f = fopen(cache, "rb");
    assert_non_null(f);
    unsigned char *good = malloc((size_t)size);
    assert_non_null(good);
    assert_int_equal(fread(good, 1, (size_t)size, f), (size_t)size);
    fclose(f);
    /* each damage is told in ds->note, in the words users see after "shardnet: note: ", and
       nothing is printed: the caller prints the note */
    assert_string_equal(fresh->note, "");
    char note_want[3000], log[2100];
    snprintf(note_want, sizeof note_want, "%s is damaged (", cache);
    snprintf(log, sizeof log, "%s-stderr.txt", root);
    int saved = stderr_begin(log);
    const long cuts[] = {0, 3, 23, 24, size / 2, size - 1};
    for (int k = 0; k < 6; k++) {
        write_bytes(cache, good, (size_t)cuts[k]);
        ds = open_cached(root, SN_INDEX_SCANNED);
        sn_test_assert_same_dataset(fresh, ds);
        expect_cache_note(ds, note_want, root);
        sn_dataset_free(ds);
        assert_int_equal(file_size(cache), size); /* rebuilt */
    }
    for (long i = 0; i < size; i += (i < 64 ? 1 : 7)) {
        good[i] ^= 0x01;
        write_bytes(cache, good, (size_t)size);
        good[i] ^= 0x01;
        ds = open_cached(root, SN_INDEX_SCANNED);
        sn_test_assert_same_dataset(fresh, ds);
        expect_cache_note(ds, note_want, root);
        sn_dataset_free(ds);
    }
    /* version 1, the format earlier versions wrote beside the data: stale, not damaged (no
       note), and rewritten in this version's format */
    unsigned char v1[32];
    memcpy(v1, good, sizeof v1);
    v1[4] = 1;
    write_bytes(cache, v1, sizeof v1);
    ds = open_cached(root, SN_INDEX_SCANNED);
    assert_string_equal(ds->note, "");
    sn_dataset_free(ds);
    assert_int_equal(file_size(cache), size);
    assert_int_equal(stderr_end(saved, log), 0);
    ds = open_cached(root, SN_INDEX_CACHED);
    assert_string_equal(ds->note, "");
    sn_dataset_free(ds);
    free(good);
    sn_dataset_free(fresh);
    sn_dataset_free(ref);

    /* an entry that cannot be written (its name taken by a folder, as a read-only folder would
       refuse it) is no error: the folder is scanned each time, and the note says why */
    assert_int_equal(unlink(cache), 0);
    assert_int_equal(mkdir(cache, 0755), 0);
    backdate(root);
    for (int k = 0; k < 2; k++) {
        ds = open_cached(root, SN_INDEX_SCANNED);
        assert_int_equal(ds->n, n);
        if (strstr(ds->note, "cannot write the file-list cache") == NULL)
            fail_msg("note '%s'", ds->note);
        sn_dataset_free(ds);
    }
    assert_int_equal(rmdir(cache), 0);

    /* a FIFO at the entry's name: damaged, not a hang; replaced by the entry */
    assert_int_equal(mkfifo(cache, 0644), 0);
    ds = open_cached(root, SN_INDEX_SCANNED);
    if (strstr(ds->note, "is damaged (not a regular file") == NULL)
        fail_msg("note '%s'", ds->note);
    sn_dataset_free(ds);
    sn_dataset_free(open_cached(root, SN_INDEX_CACHED));

    /* the test hook that MPI tests set on ranks that must not scan */
    setenv("SN_TEST_FORBID_SCAN", "1", 1);
    expect_open_error(&dc, SN_SPLIT_TRAIN, "test hook FORBID_SCAN");
    unsetenv("SN_TEST_FORBID_SCAN");
}

/* index_cache = beside: ROOT/.shardnet-index, the behaviour of earlier versions. */
static void test_index_cache_beside(void **state)
{
    (void)state;
    cache_mode = SN_INDEX_CACHE_BESIDE;
    index_cache_battery("data_cache");
    char root[1024], cache[1200];
    snprintf(root, sizeof root, "%s", sn_test_dir("data_cache_beside"));
    make_index_tree(root);
    entry_of(root, cache, sizeof cache);
    snprintf(root + strlen(root), sizeof root - strlen(root), "/train/%s", SN_INDEX_CACHE_NAME);
    assert_string_equal(cache, root);
}

/* index_cache = yes (home) and a folder: the same rules, with the data folders left alone. */
static void test_index_cache_elsewhere(void **state)
{
    (void)state;
    char xdg[1024], root[1024];
    snprintf(xdg, sizeof xdg, "%s", sn_test_dir("data_cache_xdg"));
    env_set("XDG_CACHE_HOME", xdg);
    cache_mode = SN_INDEX_CACHE_HOME;
    index_cache_battery("data_cache_home");
    snprintf(root, sizeof root, "%s", sn_test_dir("data_cache_home"));
    assert_false(shardnet_files_in(root));

    snprintf(cache_dir, sizeof cache_dir, "%s/named", sn_test_dir("data_cache_folder"));
    cache_mode = SN_INDEX_CACHE_DIR;
    index_cache_battery("data_cache_dir");
    snprintf(root, sizeof root, "%s", sn_test_dir("data_cache_dir"));
    assert_false(shardnet_files_in(root));
    cache_dir[0] = '\0';
    cache_mode = SN_INDEX_CACHE_BESIDE;
}

/* The default, as a config without index_cache gives it: the first run writes nothing into the
 * data folders, and the second reads its entry from the user's cache folder; a .shardnet-index
 * an earlier version left there is neither read nor removed. */
static void test_index_cache_default(void **state)
{
    (void)state;
    char xdg[1024], root[1024], entry[2200], why[2200], train[1200], old[1300];
    snprintf(xdg, sizeof xdg, "%s", sn_test_dir("data_default_xdg"));
    env_set("XDG_CACHE_HOME", xdg);
    snprintf(root, sizeof root, "%s", sn_test_dir("data_default"));
    make_index_tree(root);
    backdate(root);
    struct sn_data_conf dc;
    struct sn_err err = {0};
    assert_int_equal(parse_text(&dc, "[data]\nimage_size = 28\ncolor_mode = grayscale\n", &err),
                     SN_OK);
    assert_int_equal(dc.index_cache, SN_INDEX_CACHE_HOME);
    set_path(dc.dir, root);
    struct sn_dataset *a = NULL, *b = NULL;
    assert_int_equal(sn_dataset_open(&a, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    assert_int_equal(a->index_source, SN_INDEX_SCANNED);
    assert_false(shardnet_files_in(root));
    /* the entry: XDG_CACHE_HOME/shardnet/index/<parent>-<folder>-<hash>, not hidden */
    snprintf(train, sizeof train, "%s/train", root);
    assert_int_equal(sn_index_cache_entry(train, SN_INDEX_CACHE_HOME, "", entry, sizeof entry,
                                          why, sizeof why),
                     0);
    char want[1200];
    snprintf(want, sizeof want, "%s/shardnet/index/data_default-train-", xdg);
    if (strncmp(entry, want, strlen(want)) != 0 || strlen(entry) != strlen(want) + 16)
        fail_msg("entry %s, expected %s<16 hex digits>", entry, want);
    assert_true(file_size(entry) > 0);
    assert_int_equal(sn_dataset_open(&b, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    assert_int_equal(b->index_source, SN_INDEX_CACHED);
    sn_test_assert_same_dataset(a, b);
    sn_dataset_free(b);

    /* an old file beside the data: not read (no note), not removed, not changed */
    snprintf(old, sizeof old, "%s/%s", train, SN_INDEX_CACHE_NAME);
    write_bytes(old, "an old cache", 12);
    assert_int_equal(sn_dataset_open(&b, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    assert_int_equal(b->index_source, SN_INDEX_CACHED);
    assert_string_equal(b->note, "");
    sn_dataset_free(b);
    assert_int_equal(file_size(old), 12);
    assert_int_equal(unlink(old), 0);

    /* index_cache = no: nothing written anywhere */
    char xdg_no[1024];
    snprintf(xdg_no, sizeof xdg_no, "%s", sn_test_dir("data_default_xdg_no"));
    env_set("XDG_CACHE_HOME", xdg_no);
    assert_int_equal(parse_text(&dc, "[data]\nimage_size = 28\ncolor_mode = grayscale\n"
                                     "index_cache = no\n",
                                &err),
                     SN_OK);
    assert_int_equal(dc.index_cache, SN_INDEX_CACHE_NO);
    set_path(dc.dir, root);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(sn_dataset_open(&b, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
        assert_int_equal(b->index_source, SN_INDEX_SCANNED);
        sn_test_assert_same_dataset(a, b);
        sn_dataset_free(b);
    }
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s')\"", xdg_no);
    assert_int_equal(system(cmd), 0);
    assert_false(shardnet_files_in(root));
    sn_dataset_free(a);
}

/* Two folders of the same name (and the same parent's name) have entries of their own; a
 * folder replaced at the same path, even with the same mtimes (cp -a) or with the same class
 * folders (moved into a new one), is listed again; a folder moved to another path too. */
static void test_index_cache_identity(void **state)
{
    (void)state;
    char xdg[1024], base[1024], r1[1100], r2[1100], e1[2200], e2[2200];
    snprintf(xdg, sizeof xdg, "%s", sn_test_dir("data_ident_xdg"));
    env_set("XDG_CACHE_HOME", xdg);
    cache_mode = SN_INDEX_CACHE_HOME;
    snprintf(base, sizeof base, "%s", sn_test_dir("data_ident"));
    snprintf(r1, sizeof r1, "%s/one/x", base);
    snprintf(r2, sizeof r2, "%s/two/x", base);
    make_index_tree(r1);
    make_index_tree(r2);
    char cmd[5000];
    snprintf(cmd, sizeof cmd, "touch '%s/train/a/extra.jpg'", r2);
    assert_int_equal(system(cmd), 0);
    backdate(base);
    struct sn_dataset *d1 = open_cached(r1, SN_INDEX_SCANNED);
    struct sn_dataset *d2 = open_cached(r2, SN_INDEX_SCANNED);
    assert_int_equal(d2->n, d1->n + 1);
    entry_of(r1, e1, sizeof e1);
    entry_of(r2, e2, sizeof e2);
    assert_string_not_equal(e1, e2);
    assert_true(file_size(e1) > 0 && file_size(e2) > 0);
    struct sn_dataset *c1 = open_cached(r1, SN_INDEX_CACHED);
    struct sn_dataset *c2 = open_cached(r2, SN_INDEX_CACHED);
    sn_test_assert_same_dataset(d1, c1);
    sn_test_assert_same_dataset(d2, c2);
    sn_dataset_free(c1);
    sn_dataset_free(c2);

    /* replaced by a copy that keeps every mtime: new inodes */
    snprintf(cmd, sizeof cmd, "mv '%s/train' '%s/old' && cp -a '%s/old' '%s/train'", r1, r1, r1,
             r1);
    assert_int_equal(system(cmd), 0);
    c1 = open_cached(r1, SN_INDEX_SCANNED);
    sn_test_assert_same_dataset(d1, c1);
    sn_dataset_free(c1);
    sn_dataset_free(open_cached(r1, SN_INDEX_CACHED));

    /* only the split folder replaced: its class folders moved into a new one, their mtimes and
       inodes as they were; the split folder's inode tells */
    static const char *const sub[] = {"a", "b", "b/sub", "c"};
    struct stat st[4];
    char p[1400];
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/train/%s", r1, sub[i]);
        assert_int_equal(stat(p, &st[i]), 0);
    }
    snprintf(cmd, sizeof cmd, "cd '%s' && mkdir new && mv train/a train/b train/c new/ && "
                              "rmdir train && mv new train",
             r1);
    assert_int_equal(system(cmd), 0);
    for (int i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/train/%s", r1, sub[i]);
        struct timespec t[2] = {st[i].st_atim, st[i].st_mtim};
        assert_int_equal(utimensat(AT_FDCWD, p, t, 0), 0);
    }
    c1 = open_cached(r1, SN_INDEX_SCANNED);
    sn_test_assert_same_dataset(d1, c1);
    sn_dataset_free(c1);

    /* moved to another path: listed there (no entry of its own yet) */
    char r3[1100];
    snprintf(r3, sizeof r3, "%s/three/x", base);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && mv '%s/train' '%s/train'", r3, r2, r3);
    assert_int_equal(system(cmd), 0);
    c2 = open_cached(r3, SN_INDEX_SCANNED);
    assert_int_equal(c2->n, d2->n);
    sn_dataset_free(c2);
    sn_dataset_free(d1);
    sn_dataset_free(d2);
    cache_mode = SN_INDEX_CACHE_BESIDE;
}

/* Where no cache folder can be written, the listing goes on and the note says so, in the same
 * words for every split (the caller says it once); XDG_CACHE_HOME must be absolute (the XDG
 * spec), else HOME's .cache is used; without either, there is no cache, and that is said. */
static void test_index_cache_unwritable(void **state)
{
    (void)state;
    char root[1024], blocker[1200], home[1024];
    snprintf(root, sizeof root, "%s", sn_test_dir("data_unwritable"));
    make_index_tree(root);
    char p[1200];
    snprintf(p, sizeof p, "%s/val/a/v.jpg", root);
    mkdirs(strcat(strcpy(blocker, root), "/val/a"));
    write_bytes(p, "x", 1);
    backdate(root);
    snprintf(blocker, sizeof blocker, "%s-file", root);
    write_bytes(blocker, "x", 1); /* XDG_CACHE_HOME a file: no folder can be made under it */
    char *saved_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    env_set("XDG_CACHE_HOME", blocker);
    struct sn_data_conf dc;
    conf_for(&dc, "", 28);
    set_path(dc.dir, root);
    dc.index_cache = SN_INDEX_CACHE_HOME;
    struct sn_err err = {0};
    struct sn_dataset *train = NULL, *val = NULL;
    assert_int_equal(sn_dataset_open(&train, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    struct sn_classes known = {train->n_classes, (const char(*)[64])train->class_names};
    assert_int_equal(sn_dataset_open(&val, &dc, SN_SPLIT_VAL, &known, &err), SN_OK);
    char want[1400];
    snprintf(want, sizeof want, "cannot write the file-list cache in %s/shardnet/index (", blocker);
    if (strncmp(train->note, want, strlen(want)) != 0)
        fail_msg("note '%s', expected '%s...'", train->note, want);
    assert_string_equal(train->note, val->note);
    assert_int_equal(train->index_source, SN_INDEX_SCANNED);
    assert_int_equal(val->n, 1);
    sn_dataset_free(train);
    sn_dataset_free(val);

    /* a relative XDG_CACHE_HOME is ignored: HOME's .cache */
    snprintf(home, sizeof home, "%s", sn_test_dir("data_unwritable_home"));
    env_set("XDG_CACHE_HOME", "relative/cache");
    env_set("HOME", home);
    char entry[2200], why[2200], train_dir[1200];
    snprintf(train_dir, sizeof train_dir, "%s/train", root);
    assert_int_equal(sn_index_cache_entry(train_dir, SN_INDEX_CACHE_HOME, "", entry,
                                          sizeof entry, why, sizeof why),
                     0);
    snprintf(want, sizeof want, "%s/.cache/shardnet/index/", home);
    assert_int_equal(strncmp(entry, want, strlen(want)), 0);
    assert_int_equal(sn_dataset_open(&train, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    assert_string_equal(train->note, "");
    sn_dataset_free(train);
    assert_true(file_size(entry) > 0);

    /* neither: no cache, said */
    env_set("XDG_CACHE_HOME", NULL);
    env_set("HOME", NULL);
    assert_int_equal(sn_dataset_open(&train, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    assert_int_equal(train->index_source, SN_INDEX_SCANNED);
    if (strstr(train->note, "no folder for the file-list cache: XDG_CACHE_HOME and HOME are "
                            "unset") == NULL)
        fail_msg("note '%s'", train->note);
    sn_dataset_free(train);
    env_set("HOME", saved_home);
    free(saved_home);
}

static void test_epoch_order(void **state)
{
    (void)state;
    enum { N = 1000 };
    int32_t a[N], b[N], c[N];
    sn_epoch_order(N, 42, 3, 1, a);
    sn_epoch_order(N, 42, 3, 1, b);
    sn_epoch_order(N, 42, 4, 1, c);
    assert_memory_equal(a, b, sizeof a);
    assert_memory_not_equal(a, c, sizeof a);
    uint8_t seen[N] = {0};
    int moved = 0;
    for (int i = 0; i < N; i++) {
        assert_true(a[i] >= 0 && a[i] < N);
        seen[a[i]]++;
        moved += a[i] != i;
    }
    for (int i = 0; i < N; i++)
        assert_int_equal(seen[i], 1);
    assert_true(moved > N / 2);
    sn_epoch_order(N, 43, 3, 1, b);
    assert_memory_not_equal(a, b, sizeof a);
    sn_epoch_order(N, 42, 3, 0, a);
    for (int i = 0; i < N; i++)
        assert_int_equal(a[i], i);
}

/* Every sample of every batch is taken by exactly one rank, in contiguous runs in rank order;
 * with micro-batches, each rank's run starts and ends on a micro-batch's edge (the batch's end
 * aside), and the micro-batches are shared as evenly as they go. micro = 1 is any sample. */
static void test_shard_arithmetic(void **state)
{
    (void)state;
    const int ns[] = {1, 7, 64, 101};
    const int bs[] = {1, 3, 8, 32};
    const int micros[] = {1, 2, 5, 16};
    for (int in = 0; in < 4; in++)
        for (int ib = 0; ib < 4; ib++)
            for (int im = 0; im < 4; im++) {
                int n = ns[in], B = bs[ib], m = micros[im];
                int32_t order[101];
                sn_epoch_order(n, 5, 1, 1, order);
                for (int world = 1; world <= 4; world++) {
                    int cover[101] = {0};
                    for (int b = 0; b * B < n; b++) {
                        int nb = n - b * B < B ? n - b * B : B, next = 0;
                        int k = (nb + m - 1) / m; /* micro-batches in the batch */
                        for (int r = 0; r < world; r++) {
                            int first, count;
                            sn_shard_slice(nb, m, r, world, &first, &count);
                            assert_int_equal(first, next); /* contiguous, disjoint */
                            assert_int_equal(first % m, 0);
                            assert_true(count >= 0);
                            assert_true(count % m == 0 || first + count == nb);
                            int mine = (count + m - 1) / m; /* even: k/world rounded */
                            assert_true(mine >= k / world && mine <= (k + world - 1) / world);
                            next = first + count;
                            for (int i = 0; i < count; i++)
                                cover[order[b * B + first + i]]++;
                        }
                        assert_int_equal(next, nb); /* covers the batch */
                    }
                    for (int i = 0; i < n; i++)
                        assert_int_equal(cover[i], 1);
                }
            }
}

/* ---------------------------------------------------------------------------------------- */
/* loader                                                                                    */

/* Runs one epoch of a loader and copies every row into xs/ids by global position
 * (batch*B + first + row). Returns the number of bad rows. */
static int run_epoch(const struct sn_dataset *ds, const struct sn_data_conf *dc,
                     const struct sn_augment_conf *aug, int B, int rank, int world, int epoch,
                     float *xs, int64_t *ids, uint8_t *oks)
{
    struct sn_loader_conf lc = {.ds = ds, .dc = dc, .aug = aug, .global_batch = B,
                                .rank = rank, .world = world, .shuffle = 1, .seed = 99};
    struct sn_loader *l = NULL;
    struct sn_err err = {0};
    if (sn_loader_create(&l, &lc, &err) != SN_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(sn_loader_steps(l), (ds->n + B - 1) / B);
    assert_int_equal(sn_loader_start_epoch(l, epoch, &err), SN_OK);
    size_t sample = (size_t)dc->height * dc->width * dc->channels;
    int steps = 0;
    for (;;) {
        struct sn_batch *b;
        if (sn_loader_next(l, &b, &err) != SN_OK)
            fail_msg("%s", err.msg);
        if (b == NULL)
            break;
        assert_int_equal(b->step, steps);
        int first, count;
        sn_shard_slice(b->global_n, 1, rank, world, &first, &count);
        assert_int_equal(b->n, count);
        for (int i = 0; i < b->n; i++) {
            size_t g = (size_t)b->step * B + first + i;
            memcpy(xs + g * sample, b->x + (size_t)i * sample, sample * sizeof(float));
            ids[g] = b->ids[i];
            oks[g] = b->ok[i];
            assert_int_equal(b->y[i], ds->labels[b->ids[i]]);
        }
        sn_loader_release(l, b);
        steps++;
    }
    assert_int_equal(steps, sn_loader_steps(l));
    int bad = sn_loader_bad_count(l);
    assert_true(sn_loader_wait_seconds(l) >= 0);
    sn_loader_free(l);
    return bad;
}

static void test_loader_ranks(void **state)
{
    (void)state;
    char root[1024];
    snprintf(root, sizeof root, "%s", sn_test_dir("data_loader_ranks"));
    const int counts[3] = {9, 7, 7};
    make_image_tree(root, 3, counts, 12);
    struct sn_data_conf dc;
    conf_for(&dc, root, 12);
    struct sn_dataset *ds;
    struct sn_err err = {0};
    assert_int_equal(sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    int n = ds->n, B = 5;
    size_t sample = 12 * 12;
    float *ref = calloc((size_t)n * sample, sizeof(float));
    float *got = calloc((size_t)n * sample, sizeof(float));
    int64_t ref_ids[23], got_ids[23];
    uint8_t oks[23];
    assert_int_equal(run_epoch(ds, &dc, NULL, B, 0, 1, 2, ref, ref_ids, oks), 0);
    int seen[23] = {0};
    for (int i = 0; i < n; i++) {
        seen[ref_ids[i]]++;
        assert_int_equal(oks[i], 1);
        /* row holds its file: value 40*label+20 (+texture 0..6) */
        float v = ref[i * sample];
        assert_true(fabs(v - (40 * ds->labels[ref_ids[i]] + 20)) < 4.0);
    }
    for (int i = 0; i < n; i++)
        assert_int_equal(seen[i], 1);
    for (int world = 2; world <= 4; world++) {
        memset(got_ids, 0xff, sizeof got_ids);
        dc.queue_depth = world - 1; /* a ring of 1, 2 and 3 slots */
        dc.threads = world;
        for (int r = 0; r < world; r++)
            assert_int_equal(run_epoch(ds, &dc, NULL, B, r, world, 2, got, got_ids, oks), 0);
        /* the union of the ranks' rows is the 1-rank epoch, position by position */
        assert_memory_equal(got_ids, ref_ids, sizeof ref_ids);
        assert_memory_equal(got, ref, (size_t)n * sample * sizeof(float));
    }
    free(ref);
    free(got);
    sn_dataset_free(ds);
}

static void test_loader_threads_identical(void **state)
{
    (void)state;
    char root[1024];
    snprintf(root, sizeof root, "%s", sn_test_dir("data_loader_threads"));
    const int counts[2] = {20, 17};
    make_image_tree(root, 2, counts, 28);
    struct sn_data_conf dc;
    conf_for(&dc, root, 24); /* resized 28 -> 24 */
    struct sn_dataset *ds;
    struct sn_err err = {0};
    assert_int_equal(sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    struct sn_augment_conf aug = {0};
    aug.enabled = 1;
    aug.flip = SN_FLIP_HORIZONTAL;
    aug.rotation[0] = -0.1;
    aug.rotation[1] = 0.1;
    aug.zoom_h[0] = aug.zoom_w[0] = -0.2;
    aug.zoom_h[1] = aug.zoom_w[1] = 0.2;
    aug.fill_mode = SN_FILL_REFLECT;
    size_t sample = 24 * 24, total = (size_t)ds->n * sample;
    float *a = calloc(total, sizeof(float)), *b = calloc(total, sizeof(float));
    float *plain = calloc(total, sizeof(float));
    int64_t ia[37], ib[37];
    uint8_t oks[37];
    dc.threads = 1;
    run_epoch(ds, &dc, &aug, 8, 0, 1, 5, a, ia, oks);
    dc.threads = 4;
    dc.queue_depth = 2;
    run_epoch(ds, &dc, &aug, 8, 0, 1, 5, b, ib, oks);
    assert_memory_equal(ia, ib, sizeof ia);
    assert_memory_equal(a, b, total * sizeof(float));
    /* augmentation did something */
    run_epoch(ds, &dc, NULL, 8, 0, 1, 5, plain, ib, oks);
    assert_memory_not_equal(a, plain, total * sizeof(float));
    free(a);
    free(b);
    free(plain);
    sn_dataset_free(ds);
}

/* One epoch of a loader with [augment] crop: rows by global position, as run_epoch, of
 * (crop H, crop W) — training draws, or inference (centred window, resized). */
static void crop_epoch(const struct sn_dataset *ds, const struct sn_data_conf *dc,
                       const struct sn_augment_conf *aug, int inference, int B, int rank,
                       int world, int epoch, float *xs, int64_t *ids)
{
    struct sn_loader_conf lc = {.ds = ds, .dc = dc, .aug = aug, .inference = inference,
                                .global_batch = B, .micro_batch = 2, .rank = rank,
                                .world = world, .shuffle = 1, .seed = 99};
    struct sn_loader *l = NULL;
    struct sn_err err = {0};
    if (sn_loader_create(&l, &lc, &err) != SN_OK)
        fail_msg("%s", err.msg);
    assert_int_equal(sn_loader_start_epoch(l, epoch, &err), SN_OK);
    size_t sample = (size_t)aug->crop[0] * aug->crop[1] * dc->channels;
    for (;;) {
        struct sn_batch *b;
        if (sn_loader_next(l, &b, &err) != SN_OK)
            fail_msg("%s", err.msg);
        if (b == NULL)
            break;
        int first, count;
        sn_shard_slice(b->global_n, 2, rank, world, &first, &count);
        for (int i = 0; i < b->n; i++) {
            assert_int_equal(b->ok[i], 1);
            size_t g = (size_t)b->step * B + first + i;
            memcpy(xs + g * sample, b->x + (size_t)i * sample, sample * sizeof(float));
            ids[g] = b->ids[i];
        }
        sn_loader_release(l, b);
    }
    sn_loader_free(l);
}

/* [augment] crop: the loader's rows are crop's size; in training each is the sample's window
 * drawn from (seed, epoch, index) whatever the threads and ranks; at inference each is the
 * centred resize, the same as `predict` reads the file (sn_data_load_image). */
static void test_loader_crop(void **state)
{
    (void)state;
    char root[1024];
    snprintf(root, sizeof root, "%s", sn_test_dir("data_loader_crop"));
    const int counts[2] = {9, 8};
    make_image_tree(root, 2, counts, 20);
    struct sn_data_conf dc;
    conf_for(&dc, root, 20);
    struct sn_dataset *ds;
    struct sn_err err = {0};
    assert_int_equal(sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    struct sn_augment_conf aug = {0};
    aug.enabled = 1;
    aug.crop[0] = 14, aug.crop[1] = 11;
    aug.flip = SN_FLIP_HORIZONTAL;
    aug.fill_mode = SN_FILL_REFLECT;
    int n = ds->n, B = 6;
    size_t sample = 14 * 11, total = (size_t)n * sample;
    float *ref = calloc(total, sizeof(float)), *got = calloc(total, sizeof(float));
    float *decoded = malloc(20 * 20 * sizeof(float)), *want = malloc(sample * sizeof(float));
    float *scratch = malloc(sample * sizeof(float));
    int64_t ref_ids[17], got_ids[17];
    dc.threads = 1;
    crop_epoch(ds, &dc, &aug, 0, B, 0, 1, 3, ref, ref_ids);
    for (int i = 0; i < n; i++) { /* row i: its file through the chain with its own key */
        assert_int_equal(sn_data_load_image(&dc, NULL, ds->paths[ref_ids[i]], decoded, &err),
                         SN_OK);
        sn_augment_sample(&aug, sn_hash3(99, 3, (uint64_t)ref_ids[i]), 1, decoded, 20, 20, 1,
                          want, scratch);
        assert_memory_equal(ref + i * sample, want, sample * sizeof(float));
    }
    dc.threads = 3;
    for (int r = 0; r < 3; r++)
        crop_epoch(ds, &dc, &aug, 0, B, r, 3, 3, got, got_ids);
    assert_memory_equal(got_ids, ref_ids, sizeof ref_ids);
    assert_memory_equal(got, ref, total * sizeof(float));
    /* another epoch draws other windows */
    crop_epoch(ds, &dc, &aug, 0, B, 0, 1, 4, got, got_ids);
    int differ = 0;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++)
            if (got_ids[j] == ref_ids[i])
                differ += memcmp(got + j * sample, ref + i * sample, sample * sizeof(float)) != 0;
    assert_true(differ > 0);
    /* inference: the centred resize, no flip, the bits predict reads */
    crop_epoch(ds, &dc, &aug, 1, B, 0, 1, 3, got, got_ids);
    for (int i = 0; i < n; i++) {
        const char *path = ds->paths[got_ids[i]];
        assert_int_equal(sn_data_load_image(&dc, &aug, path, want, &err), SN_OK);
        assert_memory_equal(got + i * sample, want, sample * sizeof(float));
        assert_int_equal(sn_data_load_image(&dc, NULL, path, decoded, &err), SN_OK);
        sn_augment_sample(&aug, 0, 0, decoded, 20, 20, 1, want, NULL);
        assert_memory_equal(got + i * sample, want, sample * sizeof(float));
    }
    free(ref);
    free(got);
    free(decoded);
    free(want);
    free(scratch);
    sn_dataset_free(ds);
}

static void test_loader_restart_and_free_midway(void **state)
{
    (void)state;
    char root[1024];
    snprintf(root, sizeof root, "%s", sn_test_dir("data_loader_restart"));
    const int counts[2] = {15, 15};
    make_image_tree(root, 2, counts, 16);
    struct sn_data_conf dc;
    conf_for(&dc, root, 16);
    dc.queue_depth = 2;
    struct sn_dataset *ds;
    struct sn_err err = {0};
    assert_int_equal(sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    struct sn_loader_conf lc = {.ds = ds, .dc = &dc, .global_batch = 4, .rank = 0, .world = 1,
                                .shuffle = 1, .seed = 3};
    struct sn_loader *l;
    assert_int_equal(sn_loader_create(&l, &lc, &err), SN_OK);
    struct sn_batch *b;
    /* next before any epoch is an error, not a hang */
    assert_int_not_equal(sn_loader_next(l, &b, &err), SN_OK);
    for (int round = 0; round < 3; round++) {
        assert_int_equal(sn_loader_start_epoch(l, round, &err), SN_OK);
        assert_int_equal(sn_loader_next(l, &b, &err), SN_OK);
        assert_non_null(b);
        assert_int_equal(b->step, 0);
        if (round == 1)
            sn_loader_release(l, b); /* round 0 and 2 keep it held across the restart */
    }
    /* a full epoch after the restarts is complete and in order */
    int32_t order[30];
    sn_epoch_order(30, 3, 7, 1, order);
    assert_int_equal(sn_loader_start_epoch(l, 7, &err), SN_OK);
    int k = 0;
    while (sn_loader_next(l, &b, &err) == SN_OK && b != NULL) {
        for (int i = 0; i < b->n; i++)
            assert_int_equal(b->ids[i], order[k++]);
        sn_loader_release(l, b);
    }
    assert_int_equal(k, 30);
    /* free in the middle of an epoch joins cleanly */
    assert_int_equal(sn_loader_start_epoch(l, 8, &err), SN_OK);
    assert_int_equal(sn_loader_next(l, &b, &err), SN_OK);
    sn_loader_free(l);
    sn_loader_free(NULL);
    sn_dataset_free(ds);
}

/* What a loader's report received. */
struct reports {
    int n;
    char msg[8][512];
};

static void collect_report(void *user, const char *msg)
{
    struct reports *r = user;
    if (r->n < 8)
        snprintf(r->msg[r->n], sizeof r->msg[0], "%s", msg);
    r->n++;
}

/* One epoch of an existing 1-rank loader: rows by global position into xs and their ok flags
 * into oks (both NULL: rows only taken and released). Returns the bad rows. */
static int loader_epoch(struct sn_loader *l, const struct sn_dataset *ds, int B, size_t sample,
                        int epoch, float *xs, uint8_t *oks)
{
    struct sn_err err = {0};
    assert_int_equal(sn_loader_start_epoch(l, epoch, &err), SN_OK);
    struct sn_batch *b;
    while (sn_loader_next(l, &b, &err) == SN_OK && b != NULL) {
        for (int i = 0; i < b->n && xs != NULL; i++) {
            size_t g = (size_t)b->step * B + i;
            memcpy(xs + g * sample, b->x + (size_t)i * sample, sample * sizeof(float));
            oks[g] = b->ok[i];
            assert_int_equal(b->y[i], ds->labels[b->ids[i]]);
        }
        sn_loader_release(l, b);
    }
    assert_int_equal(err.code, SN_OK);
    return sn_loader_bad_count(l);
}

/* Runs two epochs of a loader made from lc; each meets n_bad bad files. */
static void run_two_epochs(const struct sn_loader_conf *lc, int n_bad)
{
    struct sn_err err = {0};
    struct sn_loader *l;
    assert_int_equal(sn_loader_create(&l, lc, &err), SN_OK);
    for (int epoch = 0; epoch < 2; epoch++)
        assert_int_equal(loader_epoch(l, lc->ds, lc->global_batch, 0, epoch, NULL, NULL), n_bad);
    sn_loader_free(l);
}

static void test_loader_bad_files(void **state)
{
    (void)state;
    char root[1024], p[1200];
    snprintf(root, sizeof root, "%s", sn_test_dir("data_loader_bad"));
    const int counts[2] = {5, 5};
    make_image_tree(root, 2, counts, 16);
    /* a truncated JPEG, a zero-byte file and text under a .jpg name */
    snprintf(p, sizeof p, "%s/class0/000.jpg", root);
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    uint8_t buf[4096];
    size_t len = fread(buf, 1, sizeof buf, f);
    fclose(f);
    snprintf(p, sizeof p, "%s/class0/truncated.jpg", root);
    write_bytes(p, buf, len / 3);
    snprintf(p, sizeof p, "%s/class1/empty.jpg", root);
    write_bytes(p, "", 0);
    snprintf(p, sizeof p, "%s/class1/text.jpg", root);
    write_bytes(p, "hello, not an image\n", 20);

    struct sn_data_conf dc;
    conf_for(&dc, root, 16);
    struct sn_dataset *ds;
    struct sn_err err = {0};
    assert_int_equal(sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    assert_int_equal(ds->n, 13);
    size_t sample = 16 * 16;
    float *xs = calloc((size_t)ds->n * sample, sizeof(float));
    int64_t ids[13];
    uint8_t oks[13];
    for (int epoch = 0; epoch < 2; epoch++) {
        assert_int_equal(run_epoch(ds, &dc, NULL, 4, 0, 1, epoch, xs, ids, oks), 3);
        for (int i = 0; i < ds->n; i++) {
            const char *path = ds->paths[ids[i]];
            int bad = strstr(path, "truncated") || strstr(path, "empty") || strstr(path, "text");
            assert_int_equal(oks[i], !bad);
            float mx = 0;
            for (size_t k = 0; k < sample; k++)
                mx = fmaxf(mx, xs[i * sample + k]);
            if (bad)
                assert_true(mx == 0.0f); /* zeroed row */
            else
                assert_true(mx > 0.0f);
        }
    }
    /* one loader, two epochs: each bad file is passed to report once, counted every epoch */
    struct reports got = {0};
    struct sn_loader_conf lc1 = {.ds = ds, .dc = &dc, .global_batch = 4, .rank = 0, .world = 1,
                                 .shuffle = 1, .seed = 1, .report = collect_report,
                                 .report_user = &got};
    run_two_epochs(&lc1, 3);
    assert_int_equal(got.n, 3);
    for (int i = 0; i < got.n; i++) {
        assert_true(strstr(got.msg[i], "truncated.jpg") || strstr(got.msg[i], "empty.jpg") ||
                    strstr(got.msg[i], "text.jpg"));
        for (int j = 0; j < i; j++)
            assert_string_not_equal(got.msg[i], got.msg[j]);
    }
    /* without report the loader counts the same files and prints nothing */
    char log[2048];
    snprintf(log, sizeof log, "%s/stderr.txt", root);
    int saved = stderr_begin(log);
    struct sn_loader_conf lc2 = lc1;
    lc2.report = NULL;
    lc2.report_user = NULL;
    run_two_epochs(&lc2, 3);
    assert_int_equal(stderr_end(saved, log), 0);

    /* strict mode: the error names the file */
    dc.on_bad_image_fail = 1;
    struct sn_loader_conf lc = {.ds = ds, .dc = &dc, .global_batch = 13, .rank = 0, .world = 1,
                                .shuffle = 0, .seed = 1};
    struct sn_loader *l;
    assert_int_equal(sn_loader_create(&l, &lc, &err), SN_OK);
    assert_int_equal(sn_loader_start_epoch(l, 0, &err), SN_OK);
    struct sn_batch *b = NULL;
    assert_int_not_equal(sn_loader_next(l, &b, &err), SN_OK);
    assert_null(b);
    assert_true(strstr(err.msg, "truncated.jpg") || strstr(err.msg, "empty.jpg") ||
                strstr(err.msg, "text.jpg"));
    sn_loader_free(l);
    free(xs);
    sn_dataset_free(ds);
}

/* cache = memory: a loader that keeps the decoded images gives the same bits, epoch after
 * epoch, as one that decodes again (resized, augmented or not, on 3 threads); after the first
 * epoch it no longer reads the files (they are rewritten, and it still gives the first
 * images); a file that does not decode is never kept, and fails again every epoch. */
static void test_loader_cache(void **state)
{
    (void)state;
    char root[1024], p[1200];
    snprintf(root, sizeof root, "%s", sn_test_dir("data_loader_cache"));
    const int counts[2] = {11, 9};
    make_image_tree(root, 2, counts, 28);
    snprintf(p, sizeof p, "%s/class1/zz-truncated.jpg", root);
    write_bytes(p, "\xff\xd8\xff\xe0", 4);
    struct sn_data_conf dc;
    conf_for(&dc, root, 24); /* resized 28 -> 24 */
    dc.threads = 3;
    dc.queue_depth = 2;
    struct sn_dataset *ds;
    struct sn_err err = {0};
    assert_int_equal(sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    assert_int_equal(ds->n, 21);
    struct sn_augment_conf aug = {0};
    aug.enabled = 1;
    aug.flip = SN_FLIP_HORIZONTAL;
    aug.rotation[0] = -0.1;
    aug.rotation[1] = 0.1;
    aug.fill_mode = SN_FILL_REFLECT;
    const int B = 6, epochs = 3;
    size_t sample = 24 * 24, total = (size_t)ds->n * sample;
    float *ref = calloc(total * epochs, sizeof(float)), *got = calloc(total, sizeof(float));
    uint8_t oks[21];
    for (int with_aug = 0; with_aug < 2; with_aug++) {
        struct sn_loader_conf lc = {.ds = ds, .dc = &dc, .aug = with_aug ? &aug : NULL,
                                    .global_batch = B, .rank = 0, .world = 1, .shuffle = 1,
                                    .seed = 5};
        assert_int_equal(sn_loader_cache_bytes(&lc), 0);
        struct sn_loader *plain, *cached;
        assert_int_equal(sn_loader_create(&plain, &lc, &err), SN_OK);
        for (int e = 0; e < epochs; e++)
            assert_int_equal(loader_epoch(plain, ds, B, sample, e, ref + e * total, oks), 1);
        lc.cache = 1;
        assert_int_equal(sn_loader_cache_bytes(&lc), total * sizeof(float));
        assert_int_equal(sn_loader_create(&cached, &lc, &err), SN_OK);
        assert_int_equal(sn_loader_cached(cached), 0);
        assert_int_equal(loader_epoch(cached, ds, B, sample, 0, got, oks), 1);
        assert_memory_equal(got, ref, total * sizeof(float));
        assert_int_equal(sn_loader_cached(cached), 20); /* all but the truncated file */
        /* every good file now holds another image: the cache still gives the first ones */
        make_image_tree(root, 2, counts, 20);
        for (int e = 1; e < epochs; e++) {
            assert_int_equal(loader_epoch(cached, ds, B, sample, e, got, oks), 1);
            assert_memory_equal(got, ref + e * total, total * sizeof(float));
        }
        assert_int_equal(sn_loader_cached(cached), 20);
        /* and a loader without the cache sees the new files (the check above could fail) */
        assert_int_equal(loader_epoch(plain, ds, B, sample, 1, got, oks), 1);
        assert_memory_not_equal(got, ref + total, total * sizeof(float));
        sn_loader_free(plain);
        sn_loader_free(cached);
        make_image_tree(root, 2, counts, 28);
    }
    free(ref);
    free(got);
    sn_dataset_free(ds);
}

static void test_load_image(void **state)
{
    (void)state;
    char p[2048];
    snprintf(p, sizeof p, "%s/one.jpg", sn_test_dir("data_load_image"));
    write_gray_jpeg(p, 100, 28);
    struct sn_data_conf dc;
    conf_for(&dc, "", 28);
    float out[28 * 28];
    struct sn_err err = {0};
    assert_int_equal(sn_data_load_image(&dc, NULL, p, out, &err), SN_OK);
    assert_true(fabs(out[0] - 100) < 3);
    snprintf(p, sizeof p, "%s/none.jpg", sn_test_dir("data_load_image"));
    assert_int_not_equal(sn_data_load_image(&dc, NULL, p, out, &err), SN_OK);
    assert_non_null(strstr(err.msg, "none.jpg"));
}

/* ---------------------------------------------------------------------------------------- */
/* Fashion-MNIST converter                                                                   */

static void be32w(uint8_t *b, uint32_t v)
{
    b[0] = (uint8_t)(v >> 24);
    b[1] = (uint8_t)(v >> 16);
    b[2] = (uint8_t)(v >> 8);
    b[3] = (uint8_t)v;
}

/* n images (value 10*i) or labels (i % 10); `cut` drops that many bytes of data at the end. */
static void write_idx(const char *dir, const char *name, int images, int n, int cut)
{
    char path[2048];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    uint8_t h[16];
    be32w(h, images ? 2051 : 2049);
    be32w(h + 4, (uint32_t)n);
    be32w(h + 8, 28);
    be32w(h + 12, 28);
    assert_true(gzwrite(f, h, images ? 16 : 8) > 0);
    size_t per = images ? 784 : 1, len = (size_t)n * per - (size_t)cut;
    uint8_t *d = malloc((size_t)n * per);
    for (int i = 0; i < n; i++)
        memset(d + i * per, images ? (10 * i) & 0xff : i % 10, per);
    assert_true(gzwrite(f, d, (unsigned)len) == (int)len);
    free(d);
    assert_int_equal(gzclose(f), Z_OK);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        n += de->d_name[0] != '.';
    closedir(d);
    return n;
}

static void test_fashion_converter(void **state)
{
    (void)state;
    char idx[1024], out[1100], p[2048];
    snprintf(idx, sizeof idx, "%s", sn_test_dir("data_fashion"));
    write_idx(idx, "train-images-idx3-ubyte.gz", 1, 24, 0);
    write_idx(idx, "train-labels-idx1-ubyte.gz", 0, 24, 0);
    write_idx(idx, "t10k-images-idx3-ubyte.gz", 1, 12, 0);
    write_idx(idx, "t10k-labels-idx1-ubyte.gz", 0, 12, 0);
    snprintf(out, sizeof out, "%s/out", idx);
    struct sn_err err = {0};
    int already = -1;
    int rc = sn_dataset_fashion_mnist(idx, out, 3, &already, &err);
    assert_int_equal(already, -1); /* written: not already there */
    if (rc != SN_OK)
        fail_msg("%s", err.msg);
    /* 24 training images: 20 train + 4 val; limit 3 each. Labels i % 10. */
    snprintf(p, sizeof p, "%s/train/0_T-shirt_top/00000.jpg", out);
    assert_int_equal(count_files(p), -1); /* a file, not a dir */
    FILE *f = fopen(p, "rb");
    assert_non_null(f);
    fclose(f);
    snprintf(p, sizeof p, "%s/train/2_Pullover/00002.jpg", out);
    f = fopen(p, "rb");
    assert_non_null(f);
    fclose(f);
    snprintf(p, sizeof p, "%s/train/3_Dress", out);
    assert_int_equal(count_files(p), 0);
    snprintf(p, sizeof p, "%s/val/0_T-shirt_top/00020.jpg", out); /* label 20 % 10 */
    f = fopen(p, "rb");
    assert_non_null(f);
    fclose(f);
    snprintf(p, sizeof p, "%s/test/9_Ankle_boot", out);
    assert_int_equal(count_files(p), 0);
    snprintf(p, sizeof p, "%s/test/1_Trouser/00001.jpg", out);
    struct sn_data_conf dc;
    conf_for(&dc, "", 28);
    float px[784];
    assert_int_equal(sn_data_load_image(&dc, NULL, p, px, &err), SN_OK);
    assert_true(fabs(px[300] - 10) < 3);
    /* the scanner reads it: 10 classes, 3 images, marker file hidden */
    set_path(dc.dir, out);
    dc.split_dir[SN_SPLIT_TRAIN][0] = '\0';
    struct sn_dataset *ds;
    assert_int_not_equal(sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    assert_non_null(strstr(err.msg, "3_Dress has no images")); /* limit leaves classes empty */

    /* a second run finds the marker, does nothing and says so */
    already = 0;
    assert_int_equal(sn_dataset_fashion_mnist(idx, out, 3, &already, &err), SN_OK);
    assert_int_equal(already, 1);
    /* a different limit on a finished folder is refused */
    assert_int_not_equal(sn_dataset_fashion_mnist(idx, out, 0, NULL, &err), SN_OK);
    assert_non_null(strstr(err.msg, out));
    /* a non-empty folder without marker is refused */
    snprintf(p, sizeof p, "%s/junk", idx);
    mkdirs(p);
    snprintf(p, sizeof p, "%s/junk/file", idx);
    write_bytes(p, "x", 1);
    snprintf(p, sizeof p, "%s/junk", idx);
    assert_int_not_equal(sn_dataset_fashion_mnist(idx, p, 3, NULL, &err), SN_OK);
    assert_non_null(strstr(err.msg, "not empty"));
    /* full conversion (no limit) of the tiny set: 20 + 4 + 12 files */
    snprintf(p, sizeof p, "%s/full", idx);
    assert_int_equal(sn_dataset_fashion_mnist(idx, p, 0, NULL, &err), SN_OK);
    set_path(dc.dir, p);
    assert_int_equal(sn_dataset_open(&ds, &dc, SN_SPLIT_TRAIN, NULL, &err), SN_OK);
    assert_int_equal(ds->n, 20);
    assert_int_equal(ds->n_classes, 10);
    assert_string_equal(ds->class_names[9], "9_Ankle_boot");
    sn_dataset_free(ds);
    ds = NULL;
    assert_int_not_equal(sn_dataset_open(&ds, &dc, SN_SPLIT_VAL, NULL, &err), SN_OK); /* 4 images */
    assert_non_null(strstr(err.msg, "has no images"));
    assert_int_equal(sn_dataset_open(&ds, &dc, SN_SPLIT_TEST, NULL, &err), SN_OK);
    assert_int_equal(ds->n, 12);
    sn_dataset_free(ds);

    /* truncated IDX files are refused, naming the file; nothing is left behind */
    write_idx(idx, "t10k-images-idx3-ubyte.gz", 1, 12, 100);
    snprintf(p, sizeof p, "%s/trunc", idx);
    assert_int_not_equal(sn_dataset_fashion_mnist(idx, p, 0, NULL, &err), SN_OK);
    assert_non_null(strstr(err.msg, "t10k-images-idx3-ubyte.gz"));
    assert_non_null(strstr(err.msg, "truncated"));
    assert_int_equal(count_files(p), -1);
    /* wrong magic */
    write_idx(idx, "t10k-images-idx3-ubyte.gz", 0, 12, 0);
    assert_int_not_equal(sn_dataset_fashion_mnist(idx, p, 0, NULL, &err), SN_OK);
    assert_non_null(strstr(err.msg, "magic"));
    /* label count mismatch */
    write_idx(idx, "t10k-images-idx3-ubyte.gz", 1, 12, 0);
    write_idx(idx, "t10k-labels-idx1-ubyte.gz", 0, 11, 0);
    assert_int_not_equal(sn_dataset_fashion_mnist(idx, p, 0, NULL, &err), SN_OK);
    assert_non_null(strstr(err.msg, "labels"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_conf_parse),
        cmocka_unit_test(test_scan_sorted),
        cmocka_unit_test(test_scan_errors),
        cmocka_unit_test(test_validation_split),
        cmocka_unit_test(test_pack_round_trip),
        cmocka_unit_test(test_conf_index_cache),
        cmocka_unit_test(test_index_cache_beside),
        cmocka_unit_test(test_index_cache_elsewhere),
        cmocka_unit_test(test_index_cache_default),
        cmocka_unit_test(test_index_cache_identity),
        cmocka_unit_test(test_index_cache_unwritable),
        cmocka_unit_test(test_epoch_order),
        cmocka_unit_test(test_shard_arithmetic),
        cmocka_unit_test(test_loader_ranks),
        cmocka_unit_test(test_loader_threads_identical),
        cmocka_unit_test(test_loader_crop),
        cmocka_unit_test(test_loader_restart_and_free_midway),
        cmocka_unit_test(test_loader_bad_files),
        cmocka_unit_test(test_loader_cache),
        cmocka_unit_test(test_load_image),
        cmocka_unit_test(test_fashion_converter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
