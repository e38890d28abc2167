/* listing.c — the files of one split, read the way Keras's image_dataset_from_directory reads
 * them: which folder a split comes from ([data] dir, train/val/test, validation_split), the
 * class list that fixes the labels, the files of each class in sorted order, Keras's
 * validation_split, the fingerprint; or the rows of a feature file's split. Also the lines that
 * describe a split. The folder is read by scan.c, through its cache (index_cache.c). */
#include "dataset.h"

#include <errno.h>    // defines: errno
#include <stdio.h>    // defines: snprintf, fprintf
#include <stdlib.h>   // defines: malloc, calloc, free
#include <string.h>   // defines: strcmp, strlen, memcpy, strerror
#include <sys/stat.h> // defines: stat, S_ISDIR

#include "featfile.h"
#include "hooks.h"
#include "index_cache.h"
#include "loader.h" // defines: sn_epoch_order (validation_split)
#include "scan.h"
#include "sys.h"

void sn_dataset_free(struct sn_dataset *ds)
{
    if (ds == NULL)
        return;
    if (ds->paths && !ds->path_arena)
        for (int i = 0; i < ds->n; i++)
            free(ds->paths[i]);
    free(ds->paths);
    free(ds->path_arena);
    free(ds->labels);
    free(ds->class_names);
    free(ds->class_count);
    free(ds->features);
    free(ds);
}

/* Index of name in the first n of names, or -1. */
static int find_name(const char (*names)[64], int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], name) == 0)
            return i;
    return -1;
}

/* The label list of a split: known classes, else [data] class_names (which must match the
 * folders exactly, as in Keras), else the folders themselves, sorted. */
static int class_list(struct sn_dataset *ds, const struct sn_data_conf *dc,
                      const struct sn_classes *known, const struct sn_strlist *folders,
                      struct sn_err *err)
{
    const char *root = ds->root;
    int n = known ? known->n : dc->n_class_names ? dc->n_class_names : folders->n;
    SN_RETURN_IF(n > SN_MAX_CLASSES, err, SN_EDATA, "%s has %d class folders, more than %d", root,
                 n, SN_MAX_CLASSES);
    ds->class_names = calloc((size_t)n + 1, sizeof *ds->class_names);
    ds->class_count = calloc((size_t)n + 1, sizeof *ds->class_count);
    SN_RETURN_IF(!ds->class_names || !ds->class_count, err, SN_ENOMEM, "out of memory");
    ds->n_classes = n;
    for (int c = 0; c < n; c++) {
        const char *name = known ? known->names[c]
                           : dc->n_class_names ? dc->class_names[c] : folders->v[c];
        SN_RETURN_IF(strlen(name) >= sizeof ds->class_names[c], err, SN_EDATA,
                     "%s/%s: class name longer than %zu characters", root, name,
                     sizeof ds->class_names[c] - 1);
        snprintf(ds->class_names[c], sizeof ds->class_names[c], "%s", name);
    }
    if (known == NULL && dc->n_class_names > 0)
        for (int c = 0; c < n; c++) {
            char p[SN_PATH_MAX];
            SN_FORWARD(sn_path_join(p, sizeof p, root, dc->class_names[c], err));
            int found = 0;
            for (int i = 0; i < folders->n && !found; i++)
                found = strcmp(folders->v[i], dc->class_names[c]) == 0;
            SN_RETURN_IF(!found, err, SN_EDATA,
                         "class folder %s is missing (listed in [data] class_names)", p);
        }
    for (int i = 0; i < folders->n; i++)
        if (find_name((const char (*)[64])ds->class_names, n, folders->v[i]) < 0) {
            if (known)
                return sn_err_set(err, SN_EDATA,
                                  "%s/%s: class '%s' is not one of the model's %d classes (%s%s%s)"
                                  "\n---> HINT: a split can lack classes but not add new ones; "
                                  "move the folder away",
                                  root, folders->v[i], folders->v[i], n, ds->class_names[0],
                                  n > 1 ? ", " : "", n > 1 ? ds->class_names[1] : "");
            return sn_err_set(err, SN_EDATA,
                              "%s/%s is a folder not listed in [data] class_names; HINT: list it "
                              "or move it away",
                              root, folders->v[i]);
        }
    return SN_OK;
}

/* Scans root (or reads its entry in the file-list cache) into a new dataset holding every image
 * of every class. */
static int scan_root(struct sn_dataset **out, const struct sn_data_conf *dc, const char *root,
                     const struct sn_classes *known, struct sn_err *err)
{
    struct stat st;
    if (stat(root, &st) != 0)
        return sn_err_set(err, SN_EDATA, "%s does not exist%s: %s", root,
                          root[0] == '/' ? "" : " (relative to the current directory)",
                          strerror(errno));
    SN_RETURN_IF(!S_ISDIR(st.st_mode), err, SN_EDATA, "%s is not a directory", root);

    struct sn_scan_index x = {0};
    struct sn_dataset *ds = calloc(1, sizeof *ds);
    int rc = SN_OK, cached = 0;
    if (ds == NULL) {
        rc = sn_err_set(err, SN_ENOMEM, "out of memory");
        goto fail;
    }
    snprintf(ds->root, sizeof ds->root, "%s", root);
    if ((rc = sn_index_cache_scan(root, dc->index_cache, dc->index_dir, &x, &cached, ds->note,
                                  sizeof ds->note, err)) != SN_OK)
        goto fail;
    ds->index_source = cached ? SN_INDEX_CACHED : SN_INDEX_SCANNED;
    if (x.folders.n == 0) {
        rc = sn_err_set(err, SN_EDATA,
                        "%s has no class subfolders; HINT: expected %s/<class>/<image>", root,
                        root);
        goto fail;
    }
    if ((rc = class_list(ds, dc, known, &x.folders, err)) != SN_OK)
        goto fail;
    if (dc->label_mode == SN_LABEL_BINARY && ds->n_classes != 2) {
        rc = sn_err_set(err, SN_EDATA, "%s: label_mode = binary needs exactly 2 classes, found %d",
                        root, ds->n_classes);
        goto fail;
    }

    /* files in label order, each class's sorted: the order (and the fingerprint) depends only
       on the names */
    int total = 0;
    size_t bytes = 0, rlen = strlen(root);
    uint64_t h = SN_HASH_INIT;
    for (int c = 0; c < ds->n_classes; c++) {
        int k = sn_scan_index_find(&x, ds->class_names[c]);
        for (int i = k < 0 ? 0 : x.first[k]; k >= 0 && i < x.first[k + 1]; i++)
            bytes += rlen + strlen(ds->class_names[c]) + strlen(x.files.v[i]) + 3;
        total += k < 0 ? 0 : x.first[k + 1] - x.first[k];
    }
    ds->paths = calloc((size_t)total + 1, sizeof *ds->paths);
    ds->labels = calloc((size_t)total + 1, sizeof *ds->labels);
    ds->path_arena = malloc(bytes + 1);
    if (!ds->paths || !ds->labels || !ds->path_arena) {
        rc = sn_err_set(err, SN_ENOMEM, "out of memory listing %s", root);
        goto fail;
    }
    char *at = ds->path_arena;
    for (int c = 0; c < ds->n_classes; c++) {
        h = sn_hash_str(ds->class_names[c], h);
        char cdir[SN_PATH_MAX];
        if ((rc = sn_path_join(cdir, sizeof cdir, root, ds->class_names[c], err)) != SN_OK)
            goto fail;
        int k = sn_scan_index_find(&x, ds->class_names[c]);
        if (k < 0 && known)
            continue; /* a class this split lacks */
        int nk = k < 0 ? 0 : x.first[k + 1] - x.first[k];
        if (nk == 0 && !known) {
            rc = sn_err_set(err, SN_EDATA,
                            "class folder %s has no images (.jpg .jpeg .png .bmp .gif)", cdir);
            goto fail;
        }
        size_t clen = strlen(cdir);
        for (int i = 0; i < nk; i++) {
            const char *f = x.files.v[x.first[k] + i];
            size_t flen = strlen(f);
            if (clen + 1 + flen >= SN_PATH_MAX) {
                rc = sn_err_set(err, SN_EINVAL, "path too long: %s/%s", cdir, f);
                goto fail;
            }
            memcpy(at, cdir, clen);
            at[clen] = '/';
            memcpy(at + clen + 1, f, flen + 1);
            ds->paths[ds->n] = at;
            at += clen + flen + 2;
            ds->labels[ds->n] = c;
            ds->n++;
        }
        ds->class_count[c] = nk;
    }
    if (ds->n == 0) {
        rc = sn_err_set(err, SN_EDATA, "%s holds no images in any of its class folders", root);
        goto fail;
    }
    ds->n_found = ds->n;
    ds->fingerprint = h;
    sn_scan_index_free(&x);
    *out = ds;
    return SN_OK;
fail:
    sn_scan_index_free(&x);
    sn_dataset_free(ds);
    return rc;
}


/* The fingerprint over the files kept: each path relative to root and its label. */
static void fingerprint(struct sn_dataset *ds)
{
    size_t skip = strlen(ds->root) + 1;
    uint64_t h = ds->fingerprint;
    for (int i = 0; i < ds->n; i++) {
        h = sn_hash_str(ds->paths[i] + skip, h);
        h = sn_hash_bytes(&ds->labels[i], sizeof ds->labels[i], h);
    }
    ds->fingerprint = h;
}

/* Keeps the samples of ds whose keep[i] is set, in their original (sorted) order. */
static void dataset_filter(struct sn_dataset *ds, const uint8_t *keep)
{
    int m = 0;
    for (int i = 0; i < ds->n; i++) {
        if (keep[i]) {
            ds->paths[m] = ds->paths[i];
            ds->labels[m] = ds->labels[i];
            m++;
        } else if (!ds->path_arena) {
            free(ds->paths[i]);
        }
    }
    ds->n = m;
}

/* Keras: shuffle all files with the seed, the last floor(split*n) are validation, the rest
 * training. Both halves are kept in sorted order afterwards; the loader reshuffles per epoch. */
static int apply_validation_split(struct sn_dataset *ds, const struct sn_data_conf *dc,
                                  enum sn_split split, struct sn_err *err)
{
    int n = ds->n, n_val = (int)(dc->validation_split * n);
    SN_RETURN_IF(n_val < 1 || n_val >= n, err, SN_EDATA,
                 "%s: validation_split = %g of %d images leaves %s empty", ds->root,
                 dc->validation_split, n, n_val < 1 ? "validation" : "training");
    int32_t *order = malloc((size_t)n * sizeof *order);
    uint8_t *keep = calloc((size_t)n, 1);
    int *count = calloc((size_t)ds->n_classes, sizeof *count);
    int rc = SN_OK;
    if (!order || !keep || !count) {
        rc = sn_err_set(err, SN_ENOMEM, "out of memory");
        goto done;
    }
    sn_epoch_order(n, dc->split_seed, -1, 1, order);
    int lo = split == SN_SPLIT_VAL ? n - n_val : 0, hi = split == SN_SPLIT_VAL ? n : n - n_val;
    for (int i = lo; i < hi; i++) {
        keep[order[i]] = 1;
        count[ds->labels[order[i]]]++;
    }
    for (int c = 0; c < ds->n_classes; c++)
        if (count[c] == 0 && split == SN_SPLIT_TRAIN) {
            rc = sn_err_set(err, SN_EDATA,
                            "%s: validation_split = %g leaves class '%s' without images in %s; "
                            "HINT: add images or change validation_split or seed",
                            ds->root, dc->validation_split, ds->class_names[c], "training");
            goto done;
        }
    memcpy(ds->class_count, count, (size_t)ds->n_classes * sizeof *count);
    dataset_filter(ds, keep);
done:
    free(order);
    free(keep);
    free(count);
    return rc;
}

/* "[data] dir = fm (mnist.cfg:12)": where the folder of a split came from, for messages. */
static void origin(const struct sn_data_conf *dc, enum sn_split split, char *buf, size_t cap)
{
    static const char *const keys[3] = {"train", "val", "test"};
    if (dc->split_dir[split][0] && !(dc->validation_split > 0 && split == SN_SPLIT_VAL))
        snprintf(buf, cap, "[data] %s = %s (%s)", keys[split], dc->split_dir[split],
                 dc->split_where[split]);
    else if (dc->validation_split > 0 && split != SN_SPLIT_TEST && dc->split_dir[SN_SPLIT_TRAIN][0])
        snprintf(buf, cap, "[data] train = %s (%s)", dc->split_dir[SN_SPLIT_TRAIN],
                 dc->split_where[SN_SPLIT_TRAIN]);
    else
        snprintf(buf, cap, "[data] dir = %s (%s)", dc->dir, dc->dir_where);
}

/* A split of a feature file: its rows in memory, labelled by class name like image folders. */
static int open_features(struct sn_dataset **out, const struct sn_data_conf *dc,
                         const char *name, const struct sn_classes *known, struct sn_err *err)
{
    struct sn_features f;
    SN_FORWARD(sn_features_read(dc->features, name, &f, err));
    struct sn_feature_split *sp = NULL;
    for (int s = 0; s < f.n_splits; s++)
        if (strcmp(f.split[s].name, name) == 0)
            sp = &f.split[s];
    struct sn_dataset *ds = calloc(1, sizeof *ds);
    int rc = !sp ? sn_err_set(err, SN_EDATA, "%s ([data] features, %s) holds no %s split; "
                                             "HINT: extract with a %s folder",
                              dc->features, dc->features_where, name, name)
             : !ds ? sn_err_set(err, SN_ENOMEM, "out of memory")
             : sp->n == 0 ? sn_err_set(err, SN_EDATA, "%s: the %s split is empty", dc->features, name)
                          : SN_OK;
    if (rc == SN_OK) {
        snprintf(ds->root, sizeof ds->root, "%.1000s#%s", dc->features, name);
        ds->n = ds->n_found = sp->n;
        ds->n_classes = sp->n_classes;
        ds->class_names = sp->class_names, sp->class_names = NULL;
        ds->labels = sp->labels, sp->labels = NULL;
        ds->features = sp->x, sp->x = NULL;
        ds->class_count = calloc((size_t)ds->n_classes + 1, sizeof *ds->class_count);
        rc = ds->class_count ? SN_OK : sn_err_set(err, SN_ENOMEM, "out of memory");
    }
    for (int i = 0; rc == SN_OK && i < ds->n; i++)
        ds->class_count[ds->labels[i]]++;
    /* labels by class name: the training split's names, as for folders */
    for (int c = 0; rc == SN_OK && known && c < ds->n_classes; c++)
        if (find_name(known->names, known->n, ds->class_names[c]) < 0)
            rc = sn_err_set(err, SN_EDATA, "%s: its %s split has class '%s', which the training "
                                           "split does not",
                            dc->features, name, ds->class_names[c]);
    if (rc == SN_OK && known) {
        for (int i = 0; i < ds->n; i++)
            ds->labels[i] = find_name(known->names, known->n, ds->class_names[ds->labels[i]]);
        char(*names)[64] = calloc((size_t)known->n + 1, 64);
        int *count = calloc((size_t)known->n + 1, sizeof *count);
        rc = names && count ? SN_OK : sn_err_set(err, SN_ENOMEM, "out of memory");
        for (int c = 0; rc == SN_OK && c < known->n; c++)
            memcpy(names[c], known->names[c], 64);
        for (int i = 0; rc == SN_OK && i < ds->n; i++)
            count[ds->labels[i]]++;
        if (rc == SN_OK) {
            free(ds->class_names), free(ds->class_count);
            ds->class_names = names, ds->class_count = count;
            ds->n_classes = known->n;
        } else {
            free(names), free(count);
        }
    }
    if (rc == SN_OK) {
        uint64_t h = SN_HASH_INIT;
        for (int c = 0; c < ds->n_classes; c++)
            h = sn_hash_str(ds->class_names[c], h);
        h = sn_hash_bytes(ds->labels, (size_t)ds->n * sizeof *ds->labels, h);
        h = sn_hash_bytes(ds->features, (size_t)ds->n * dc->height * dc->width * dc->channels *
                                            sizeof(float),
                          h);
        ds->fingerprint = h;
        *out = ds;
    } else {
        sn_dataset_free(ds);
    }
    sn_features_free(&f);
    return rc;
}

int sn_dataset_open(struct sn_dataset **out, const struct sn_data_conf *dc, enum sn_split split,
                    const struct sn_classes *known, struct sn_err *err)
{
    *out = NULL;
    static const char *const names[3] = {"train", "val", "test"};
    SN_RETURN_IF(split < SN_SPLIT_TRAIN || split > SN_SPLIT_TEST, err, SN_EINVAL,
                 "unknown split %d", (int)split);
    if (dc->features[0])
        return open_features(out, dc, names[split], known, err);
    SN_RETURN_IF(sn_test_hook("FORBID_SCAN") != NULL, err, SN_EINVAL,
                 "the %s split's folders were about to be read with test hook FORBID_SCAN set "
                 "(a test hook: this process should have received its index)",
                 names[split]);
    char root[SN_PATH_MAX], from[SN_PATH_MAX + 400];
    origin(dc, split, from, sizeof from);
    int from_split = dc->validation_split > 0 && split != SN_SPLIT_TEST;
    if (from_split && dc->split_dir[SN_SPLIT_TRAIN][0]) {
        snprintf(root, sizeof root, "%s", dc->split_dir[SN_SPLIT_TRAIN]);
    } else if (from_split) {
        SN_RETURN_IF(!dc->dir[0], err, SN_EINVAL, "[data] validation_split needs dir or train");
        SN_FORWARD(sn_path_join(root, sizeof root, dc->dir, "train", err));
        if (!sn_is_dir(root))
            snprintf(root, sizeof root, "%s", dc->dir);
    } else if (dc->split_dir[split][0]) {
        snprintf(root, sizeof root, "%s", dc->split_dir[split]);
    } else {
        SN_RETURN_IF(!dc->dir[0], err, SN_EINVAL,
                     "[data] (%s) names no images for the %s split: set dir = <folder with "
                     "train/ val/ test/>, or %s = <folder of class folders>",
                     dc->dir_where, names[split], names[split]);
        SN_FORWARD(sn_path_join(root, sizeof root, dc->dir, names[split], err));
        if (split == SN_SPLIT_VAL && !sn_is_dir(root)) {
            char alt[SN_PATH_MAX];
            SN_FORWARD(sn_path_join(alt, sizeof alt, dc->dir, "validation", err));
            if (!sn_is_dir(alt))
                return sn_err_set(err, SN_EDATA,
                                  "%s: no validation split: neither %s/val nor %s/validation "
                                  "exists\n---> HINT: create %s/validation/<class>/<image>, or set "
                                  "validation_split = 0.2 and seed = 1337 in [data] to hold out "
                                  "part of the training images",
                                  from, dc->dir, dc->dir, dc->dir);
            snprintf(root, sizeof root, "%s", alt);
        }
    }
    struct sn_dataset *ds = NULL;
    int rc = scan_root(&ds, dc, root, known, err);
    if (rc == SN_OK && from_split)
        rc = apply_validation_split(ds, dc, split, err);
    if (rc != SN_OK) {
        sn_dataset_free(ds);
        return sn_err_wrap(err, "%s", from);
    }
    fingerprint(ds);
    *out = ds;
    return SN_OK;
}

void sn_dataset_describe(const struct sn_dataset *ds, const struct sn_data_conf *dc,
                         enum sn_split split, FILE *f)
{
    if (ds->features) {
        fprintf(f, "Found %d samples in %s belonging to %d classes.\n", ds->n, ds->root,
                ds->n_classes);
        return;
    }
    fprintf(f, "Found %d files belonging to %d classes.\n", ds->n_found, ds->n_classes);
    if (dc->validation_split > 0 && split != SN_SPLIT_TEST)
        fprintf(f, "Using %d files for %s.\n", ds->n,
                split == SN_SPLIT_TRAIN ? "training" : "validation");
}

int sn_dataset_missing(const struct sn_dataset *ds, char *buf, size_t cap)
{
    int n = 0;
    size_t len = 0;
    buf[0] = '\0';
    for (int c = 0; c < ds->n_classes; c++)
        if (ds->class_count[c] == 0) {
            if (len + 8 < cap) {
                int w = snprintf(buf + len, cap - len, "%s%s", n ? ", " : "", ds->class_names[c]);
                len += w > 0 ? (size_t)w : 0;
                if (len >= cap)
                    snprintf(buf + cap - 4, 4, "...");
            }
            n++;
        }
    return n;
}
