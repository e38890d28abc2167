/* data_conf.c — the [data] section: where the images are (dir, or train/val/test, or a feature
 * file), how they are decoded (image_size, color_mode, interpolation, crop_to_aspect_ratio),
 * labelled (label_mode, class_names or class_names_file) and split (validation_split, seed), how
 * the loader runs (threads, queue_depth, on_bad_image, max_pixels), and where the file lists are
 * kept (index_cache). A [data] section must give image_size (unless it names a feature file);
 * every other key has a default. Each error names the config line. */
#include "data_conf.h"

#include <errno.h>    // defines: errno
#include <limits.h>   // defines: INT_MAX
#include <stdio.h>    // defines: snprintf, fgets, fclose, ferror
#include <string.h>   // defines: memset, memcpy, memchr, strcmp, strchr, strrchr, strerror
#include <strings.h>  // defines: strcasecmp
#include <sys/stat.h> // defines: stat, S_ISREG

#include "featfile.h"
#include "sys.h" // defines: sn_fopen_regular

/* Adds the class name p[len] (trimmed by the caller) to dc. at: where it was written, for the
 * errors ("c.cfg:5: [data] class_names", "classes.txt:17"). */
static int add_class(struct sn_data_conf *dc, const char *p, size_t len, const char *at,
                     struct sn_err *err)
{
    SN_RETURN_IF(len == 0, err, SN_EINVAL, "%s: empty class name", at);
    SN_RETURN_IF(len >= sizeof dc->class_names[0], err, SN_EINVAL,
                 "%s: class name '%.*s' longer than %zu characters", at, (int)len, p,
                 sizeof dc->class_names[0] - 1);
    SN_RETURN_IF(dc->n_class_names >= SN_MAX_CLASSES, err, SN_EINVAL, "%s: more than %d classes",
                 at, SN_MAX_CLASSES);
    char *name = dc->class_names[dc->n_class_names];
    memcpy(name, p, len);
    name[len] = '\0';
    for (int i = 0; i < dc->n_class_names; i++)
        SN_RETURN_IF(strcmp(dc->class_names[i], name) == 0, err, SN_EINVAL,
                     "%s: class '%s' listed twice", at, name);
    dc->n_class_names++;
    return SN_OK;
}

static int is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

/* class_names = a, b, c: separated by commas, over as many continuation lines as it takes (a
 * comma ending a line is optional, so one name per line works too); "(a, b)" and "[a, b]"
 * read as "a, b". */
static int parse_class_names(struct sn_data_conf *dc, const struct sn_config *cfg,
                             const struct sn_section *s, const char *list, struct sn_err *err)
{
    char at[200];
    sn_config_where(cfg, s, "class_names", at, sizeof at);
    snprintf(at + strlen(at), sizeof at - strlen(at), ": [data] class_names");
    dc->n_class_names = 0;
    for (const char *line = list; *line;) {
        const char *eol = strchr(line, '\n');
        if (eol == NULL)
            eol = line + strlen(line);
        const char *end = eol;
        while (end > line && is_blank(end[-1]))
            end--;
        if (end > line && end[-1] == ',' && *eol == '\n')
            end--; /* "a, b," then "c" on the next line */
        for (const char *p = line; p <= end;) {
            const char *e = memchr(p, ',', (size_t)(end - p));
            if (e == NULL)
                e = end;
            const char *b = p, *t = e;
            while (b < t && (is_blank(*b) || *b == '(' || *b == '['))
                b++;
            while (t > b && (is_blank(t[-1]) || t[-1] == ')' || t[-1] == ']'))
                t--;
            if (e == end && b == t && e > line && e[-1] == ',')
                break; /* "a, b," at the very end: the last comma ends nothing */
            SN_FORWARD(add_class(dc, b, (size_t)(t - b), at, err));
            p = e + 1;
        }
        line = *eol ? eol + 1 : eol;
    }
    return SN_OK;
}

/* index_cache: a word (yes or home, beside, no; true/false, on/off, 1/0 as for any boolean),
 * or a folder, told apart by its '/'. The words resolve as written (lower case), a folder as
 * written. */
static int parse_index_cache(struct sn_data_conf *dc, const struct sn_config *cfg,
                             const struct sn_section *s, struct sn_err *err)
{
    static const char *const words[] = {"yes", "home", "true", "on", "1", "beside",
                                        "no", "false", "off", "0", NULL};
    static const enum sn_index_cache modes[] = {
        SN_INDEX_CACHE_HOME,   SN_INDEX_CACHE_HOME, SN_INDEX_CACHE_HOME, SN_INDEX_CACHE_HOME,
        SN_INDEX_CACHE_HOME,   SN_INDEX_CACHE_BESIDE, SN_INDEX_CACHE_NO, SN_INDEX_CACHE_NO,
        SN_INDEX_CACHE_NO,     SN_INDEX_CACHE_NO};
    const struct sn_key *k = sn_section_key(s, "index_cache");
    if (k != NULL && strchr(k->value, '/') != NULL) {
        if (k->value[0] == '~')
            return sn_config_error(cfg, s, "index_cache", err, SN_EINVAL,
                                   "'%s': '~' is not expanded; HINT: write the folder's full "
                                   "path",
                                   k->value);
        SN_FORWARD(sn_section_string(cfg, s, "index_cache", NULL, dc->index_dir,
                                     sizeof dc->index_dir, err));
        dc->index_cache = SN_INDEX_CACHE_DIR;
        return SN_OK;
    }
    int w = 0;
    while (k != NULL && words[w] != NULL && strcasecmp(k->value, words[w]) != 0)
        w++;
    if (k != NULL && words[w] == NULL)
        return sn_config_error(cfg, s, "index_cache", err, SN_EINVAL,
                               "'%s' is none of yes, home, beside, no, or a folder (a path "
                               "with a '/', such as ./cache)",
                               k->value);
    SN_FORWARD(sn_section_choice(cfg, s, "index_cache", "yes", words, &w, err));
    dc->index_cache = modes[w];
    return SN_OK;
}

/* class_names_file = PATH: one class name per line (trimmed; blank lines skipped; a name may
 * hold commas). A path in the config file is relative to its folder, one given by --set to the
 * working directory. */
static int read_class_names_file(struct sn_data_conf *dc, const struct sn_config *cfg,
                                 const struct sn_section *s, const char *path,
                                 struct sn_err *err)
{
    char where[200], full[SN_PATH_MAX + 2];
    sn_config_where(cfg, s, "class_names_file", where, sizeof where);
    const struct sn_key *k = sn_section_key(s, "class_names_file");
    const char *slash = strrchr(cfg->path, '/');
    if (k != NULL && k->line > 0 && path[0] != '/' && slash != NULL)
        snprintf(full, sizeof full, "%.*s/%s", (int)(slash - cfg->path), cfg->path, path);
    else
        snprintf(full, sizeof full, "%s", path);
    SN_RETURN_IF(strlen(full) >= SN_PATH_MAX, err, SN_EINVAL,
                 "%s: [data] class_names_file: path too long", where);
    struct stat st;
    SN_RETURN_IF(stat(full, &st) != 0, err, SN_EIO, "%s ([data] class_names_file, %s): %s", full,
                 where, strerror(errno));
    SN_RETURN_IF(!S_ISREG(st.st_mode), err, SN_EIO,
                 "%s ([data] class_names_file, %s): not a regular file", full, where);
    FILE *f;
    SN_FORWARD(sn_fopen_regular(full, "r", "class names file", &f, err));
    dc->n_class_names = 0;
    char line[256], at[SN_PATH_MAX + 32];
    int rc = SN_OK;
    for (int n = 1; rc == SN_OK && fgets(line, sizeof line, f); n++) {
        snprintf(at, sizeof at, "%s:%d", full, n);
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            rc = sn_err_set(err, SN_EINVAL, "%s: class name longer than %zu characters", at,
                            sizeof dc->class_names[0] - 1);
            break;
        }
        char *p = line;
        if (n == 1 && (unsigned char)p[0] == 0xEF && (unsigned char)p[1] == 0xBB &&
            (unsigned char)p[2] == 0xBF)
            p += 3;
        while (is_blank(*p))
            p++;
        char *t = p + strlen(p);
        while (t > p && (is_blank(t[-1]) || t[-1] == '\n'))
            t--;
        if (t > p)
            rc = add_class(dc, p, (size_t)(t - p), at, err);
    }
    if (rc == SN_OK && ferror(f))
        rc = sn_err_set(err, SN_EIO, "%s: read error", full);
    fclose(f);
    SN_FORWARD(rc);
    SN_RETURN_IF(dc->n_class_names == 0, err, SN_EINVAL,
                 "%s ([data] class_names_file, %s) names no class", full, where);
    return SN_OK;
}

int sn_data_conf_parse(struct sn_data_conf *dc, const struct sn_config *cfg, struct sn_err *err)
{
    memset(dc, 0, sizeof *dc);
    /* without a [data] section (a network described for `summary`) every key takes its
       default and there is no image size: commands that read images say so */
    const struct sn_section *s = sn_config_find(cfg, "data");

    SN_FORWARD(sn_section_string(cfg, s, "dir", NULL, dc->dir, sizeof dc->dir, err));
    sn_config_where(cfg, s, "dir", dc->dir_where, sizeof dc->dir_where);
    static const char *const split_keys[3] = {"train", "val", "test"};
    for (int i = 0; i < 3; i++) {
        SN_FORWARD(sn_section_string(cfg, s, split_keys[i], NULL, dc->split_dir[i],
                                     sizeof dc->split_dir[i], err));
        sn_config_where(cfg, s, split_keys[i], dc->split_where[i], sizeof dc->split_where[i]);
    }

    SN_FORWARD(sn_section_string(cfg, s, "features", NULL, dc->features, sizeof dc->features,
                                 err));
    sn_config_where(cfg, s, "features", dc->features_where, sizeof dc->features_where);
    if (dc->features[0]) {
        /* the samples' shape is the feature file's (the shapes are read, not the arrays) */
        struct sn_features f;
        if (sn_features_read(dc->features, "", &f, err) != SN_OK) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            return sn_err_set(err, err->code, "[data] features (%s): %s", dc->features_where, why);
        }
        const struct sn_feature_split *t = sn_features_find(&f, "train");
        int ok = t != NULL;
        if (ok) {
            dc->height = t->h, dc->width = t->w, dc->channels = t->c;
        }
        sn_features_free(&f);
        SN_RETURN_IF(!ok, err, SN_EDATA, "%s ([data] features, %s) holds no train split",
                     dc->features, dc->features_where);
        return SN_OK;
    }
    if (s != NULL && sn_section_key(s, "image_size") == NULL)
        return sn_config_missing(cfg, s, "image_size",
                                 "required: 28 or height,width such as 180,180", err);
    int hw[2];
    SN_FORWARD(sn_section_int2(cfg, s, "image_size", 0, 0, 1, 16384, hw, err));
    dc->height = hw[0];
    dc->width = hw[1];

    static const char *const color_modes[] = {"grayscale", "rgb", NULL};
    int cm;
    SN_FORWARD(sn_section_choice(cfg, s, "color_mode", "rgb", color_modes, &cm, err));
    dc->channels = cm == 0 ? 1 : 3;

    static const char *const interps[] = {"bilinear", "nearest", "area", NULL};
    int in;
    SN_FORWARD(sn_section_choice(cfg, s, "interpolation", "bilinear", interps, &in, err));
    dc->interp = (enum sn_interp)in;
    SN_FORWARD(sn_section_bool(cfg, s, "crop_to_aspect_ratio", 0, &dc->crop_to_aspect_ratio, err));

    static const char *const label_modes[] = {"int", "categorical", "binary", NULL};
    int lm;
    dc->label_mode_set = sn_section_key(s, "label_mode") != NULL;
    SN_FORWARD(sn_section_choice(cfg, s, "label_mode", "int", label_modes, &lm, err));
    dc->label_mode = (enum sn_label_mode)lm;

    const char *list, *file;
    SN_FORWARD(sn_section_text(cfg, s, "class_names", NULL, &list, err));
    SN_FORWARD(sn_section_text(cfg, s, "class_names_file", NULL, &file, err));
    if (list[0] && file[0])
        return sn_config_error(cfg, s, "class_names_file", err, SN_EINVAL,
                               "class_names and class_names_file both list the classes; keep "
                               "one");
    if (list[0])
        SN_FORWARD(parse_class_names(dc, cfg, s, list, err));
    if (file[0])
        SN_FORWARD(read_class_names_file(dc, cfg, s, file, err));
    if (dc->label_mode == SN_LABEL_BINARY && dc->n_class_names && dc->n_class_names != 2)
        return sn_config_error(cfg, s, "class_names", err, SN_EINVAL,
                               "label_mode = binary needs exactly 2 classes, %d listed",
                               dc->n_class_names);

    SN_FORWARD(sn_section_float(cfg, s, "validation_split", 0.0, 0.0, 1.0, &dc->validation_split,
                                err));
    if (dc->validation_split >= 1.0)
        return sn_config_error(cfg, s, "validation_split", err, SN_EINVAL,
                               "must be below 1 (a fraction such as 0.2)");

    int seed;
    const struct sn_section *train = sn_config_find(cfg, "train");
    if (sn_section_key(s, "seed") != NULL) {
        SN_FORWARD(sn_section_int(cfg, s, "seed", 0, 0, INT_MAX, &seed, err));
        dc->has_split_seed = 1;
        dc->split_seed = (uint64_t)seed;
    } else if (train != NULL && sn_section_key(train, "seed") != NULL) {
        SN_FORWARD(sn_section_int(cfg, train, "seed", 0, 0, INT_MAX, &seed, err));
        dc->has_split_seed = 1;
        dc->split_seed = (uint64_t)seed;
    }
    if (dc->validation_split > 0) {
        if (!dc->has_split_seed)
            return sn_config_error(cfg, s, "validation_split", err, SN_EINVAL,
                                   "validation_split needs a seed, as in Keras; HINT: add seed = "
                                   "<int> to [data] or [train]");
        if (dc->split_dir[SN_SPLIT_VAL][0])
            return sn_config_error(cfg, s, "validation_split", err, SN_EINVAL,
                                   "validation_split and val = %s both give a validation set; "
                                   "keep one", dc->split_dir[SN_SPLIT_VAL]);
    }

    static const char *const bad_modes[] = {"skip", "fail", NULL};
    SN_FORWARD(sn_section_choice(cfg, s, "on_bad_image", "skip", bad_modes,
                                 &dc->on_bad_image_fail, err));
    SN_FORWARD(sn_section_int(cfg, s, "threads", 0, 0, 256, &dc->threads, err));
    if (dc->threads == 0)
        dc->threads = 2;
    SN_FORWARD(sn_section_int(cfg, s, "queue_depth", 0, 0, 64, &dc->queue_depth, err));
    if (dc->queue_depth == 0)
        dc->queue_depth = 4;
    double mp;
    SN_FORWARD(sn_section_float(cfg, s, "max_pixels", 89478485.0, 0.0, 1e15, &mp, err));
    dc->max_pixels = (long long)mp;
    static const char *const cache_modes[] = {"no", "memory", NULL};
    SN_FORWARD(sn_section_choice(cfg, s, "cache", "no", cache_modes, &dc->cache_memory, err));
    return parse_index_cache(dc, cfg, s, err);
}
