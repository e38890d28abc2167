/* config.h — the INI config file: ordered sections of key = value, with the line of every key.
 *
 * A config holds the network as ordered layer sections ([conv2d], [maxpooling2d], [dense], ...)
 * and the settings sections [model], [data], [augment], [train], [checkpoint], each of which may
 * appear once. This module only reads text (config_read.c has the syntax) and hands out typed
 * values; what the keys mean belongs to the modules that take them. Every key taken is marked used, and sn_config_check_unused() turns any
 * key nobody took into an error naming the file, line and key — a typo never passes silently.
 *
 * Typical use:
 *     struct sn_config *cfg;
 *     SN_FORWARD(sn_config_load(&cfg, path, err));
 *     SN_FORWARD(sn_config_override(cfg, "train.epochs=3", err));     // --set
 *     const struct sn_section *t = sn_config_find(cfg, "train");
 *     int epochs;
 *     SN_FORWARD(sn_section_int(cfg, t, "epochs", 10, 1, 100000, &epochs, err));
 *     ...
 *     SN_FORWARD(sn_config_check_unused(cfg, err));
 */
#ifndef SN_CONFIG_H
#define SN_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define SN_CFG_NAME_MAX 64
/* The longest line of a config file, and the longest value (a file's, with its continuation
 * lines, or a --set's): 1 MiB, far beyond any config (1,000 class names take about 20 KB), short
 * of reading a file that is not a config whole. */
#define SN_CFG_LINE_MAX (1 << 20)

struct sn_key {
    char name[SN_CFG_NAME_MAX];
    char *value;  /* owned: trimmed, as written; continuation lines joined by '\n' */
    int line;     /* line of the key in the file, or 0 for a --set override */
    int last_line; /* last line of its value (> line when continuation lines follow) */
    int used;     /* set when a getter took it */
};

/* A key some module asked for, with the value it took (the file's, or the default), written
 * canonically: "0.0039215686274509803" for scale = 1/255, "relu", "3,3", "true". */
struct sn_resolved {
    char name[SN_CFG_NAME_MAX];
    char *value;                /* owned */
};

struct sn_section {
    char type[SN_CFG_NAME_MAX]; /* the name in brackets, lower case: "conv2d", "train" */
    int line;                   /* line of the [header] */
    int index;                  /* position among all sections, from 0 */
    int n_keys;
    struct sn_key *keys;        /* owned */
    int n_resolved;
    struct sn_resolved *resolved; /* owned: every key a getter asked for, in asking order */
};

struct sn_config {
    char path[512];
    int n_sections;
    struct sn_section *sections; /* owned, in file order */
    uint64_t hash;               /* FNV-1a of the effective content (after overrides) */
};

/* Reads and parses path. Syntax errors name the file and line; a settings section that appears
 * twice is an error naming both lines. @return SN_OK or an error code */
int  sn_config_load(struct sn_config **out, const char *path, struct sn_err *err);
/* Same from a string; `name` stands for the file name in messages. */
int  sn_config_load_string(struct sn_config **out, const char *text, const char *name,
                           struct sn_err *err);
void sn_config_free(struct sn_config *cfg); /* accepts NULL */

/* Applies "section.key=value" (the --set option; the value may be up to SN_CFG_LINE_MAX long).
 * The section is a settings section name ("train"), or a layer's name as shown by `summary`
 * ("conv2d_1"), or a type that occurs once. Creates the key if absent, creates a missing
 * settings section. Recomputes the hash. */
int  sn_config_override(struct sn_config *cfg, const char *assignment, struct sn_err *err);

/* First section of that type, or NULL. */
const struct sn_section *sn_config_find(const struct sn_config *cfg, const char *type);

/* Getters. A missing key gives the default (and is not an error); a present key that does not
 * parse or is out of range is an error naming file:line, section and key. All mark the key used
 * and record the key with the value it took (sn_config_each_resolved), which also makes it a
 * candidate for "did you mean" in the unknown-key error. */
int sn_section_int(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                   int def, int lo, int hi, int *out, struct sn_err *err);
int sn_section_float(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                     double def, double lo, double hi, double *out, struct sn_err *err);
/* true/false, yes/no, 1/0, on/off */
int sn_section_bool(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                    int def, int *out, struct sn_err *err);
/* Copies the value (or def, which may be NULL for "") into out[cap]; a longer value is an error
 * naming the key. */
int sn_section_string(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                      const char *def, char *out, int cap, struct sn_err *err);
/* Value must be one of the NULL-terminated choices (compared ignoring case); *out gets its
 * index. def NULL makes the key required. */
int sn_section_choice(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                      const char *def, const char *const *choices, int *out, struct sn_err *err);
/* The value (or def, which may be NULL for "") as a view into cfg, of any length: valid while
 * cfg lives and the key is not overridden. */
int sn_section_text(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                    const char *def, const char **out, struct sn_err *err);
/* One or two ints: "3" gives {3,3}, "3,5" or "(3, 5)" gives {3,5}. */
int sn_section_int2(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                    int def0, int def1, int lo, int hi, int out[2], struct sn_err *err);
/* Exactly two ints, "3,5", "3x5" or "(3, 5)": a shape both of whose sides must be written, so
 * one number ("3", "(3,)") is an error. Absent gives {0, 0} (sn_section_key tells). */
int sn_section_int_pair(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                        int lo, int hi, int out[2], struct sn_err *err);
/* One or two floats, same forms. */
int sn_section_float2(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                      double def0, double def1, double lo, double hi, double out[2],
                      struct sn_err *err);

/* Keras-style layer name of a section: its `name` key if present (not marked used), else the
 * type with a counter over the sections of that type before it: "conv2d", "conv2d_1", ...
 * (named sections count too, as in model.c). A settings section is named by its type. */
void sn_config_layer_name(const struct sn_config *cfg, const struct sn_section *s, char *out,
                          int cap);
/* 1 for the settings section types (model, data, augment, train, checkpoint, early_stopping,
 * reduce_lr_on_plateau), 0 for anything else (layers). */
int  sn_config_is_settings(const char *type);

/* The key, or NULL (does not mark it used). */
const struct sn_key *sn_section_key(const struct sn_section *s, const char *key);

/* "file:line" of the key (of the section when key is NULL or absent), or "--set name.key" for
 * an override, into buf[cap]: for messages that name where a value came from. */
void sn_config_where(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                     char *buf, size_t cap);

/* An error naming "file:line: [type] key: " followed by the message, for checks made by callers
 * (a value that parses but does not fit, say). key may be NULL for the section itself. */
int sn_config_error(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                    struct sn_err *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

/* Any key no getter took is an error: "file:line: unknown key 'stride' in [conv2d]; did you
 * mean 'strides'?", the suggestion being the closest key the section's readers asked for. */
int sn_config_check_unused(const struct sn_config *cfg, struct sn_err *err);

/* The error for a required key that is absent. When the section holds an unknown key spelt
 * almost like it ("filtres" for "filters"), the error names that key and its line instead. */
int sn_config_missing(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                      const char *hint, struct sn_err *err);

/* Calls fn for every resolved key: section is the layer's name (sn_config_layer_name) or the
 * settings section's type. Sections absent from the file have none. */
void sn_config_each_resolved(const struct sn_config *cfg,
                             void (*fn)(void *user, const char *section, const char *key,
                                        const char *value),
                             void *user);

#endif
