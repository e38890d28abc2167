/* config.c — the config in memory (config.h): sections in file order with the line of every
 * key, lookup, typed getters that check values and record what they took, --set overrides, and
 * the unknown-key check. Reading the text is config_read.c's. */
#include "config.h"
#include "config_internal.h"

#include <ctype.h>   // defines: tolower, isspace, isalnum
#include <errno.h>   // defines: errno, ERANGE
#include <math.h>    // defines: isfinite
#include <stdarg.h>  // defines: va_list, va_start, va_end
#include <stdio.h>   // defines: FILE, fopen, fclose, getc, snprintf, vsnprintf
#include <stdlib.h>  // defines: strtol, strtod, calloc, realloc, free
#include <string.h>  // defines: strlen, strcmp, strchr, memcpy, strerror
#include <strings.h> // defines: strcasecmp

#include "sys.h" // defines: sn_hash_str

static const char *const settings_types[] = {
    "model", "data", "augment", "train", "checkpoint", "early_stopping", "reduce_lr_on_plateau",
    "base", NULL};

int sn_config_is_settings(const char *type)
{
    for (int i = 0; settings_types[i]; i++)
        if (strcmp(type, settings_types[i]) == 0)
            return 1;
    return 0;
}

/* ---- building ----------------------------------------------------------------------------- */

struct sn_section *sn_config_add_section(struct sn_config *cfg, const char *type, int line)
{
    struct sn_section *ns = realloc(cfg->sections, (size_t)(cfg->n_sections + 1) * sizeof *ns);
    if (ns == NULL)
        return NULL;
    cfg->sections = ns;
    struct sn_section *s = &ns[cfg->n_sections];
    memset(s, 0, sizeof *s);
    snprintf(s->type, sizeof s->type, "%s", type);
    s->line = line;
    s->index = cfg->n_sections++;
    return s;
}

struct sn_key *sn_config_add_key(struct sn_section *s, const char *name, const char *value,
                                 int line)
{
    char *v = strdup(value);
    struct sn_key *nk = v ? realloc(s->keys, (size_t)(s->n_keys + 1) * sizeof *nk) : NULL;
    if (nk == NULL) {
        free(v);
        return NULL;
    }
    s->keys = nk;
    struct sn_key *k = &nk[s->n_keys++];
    memset(k, 0, sizeof *k);
    snprintf(k->name, sizeof k->name, "%s", name);
    k->value = v;
    k->line = k->last_line = line;
    return k;
}

int sn_config_set_value(struct sn_key *k, const char *value)
{
    char *v = strdup(value);
    if (v == NULL)
        return SN_ENOMEM;
    free(k->value);
    k->value = v;
    return SN_OK;
}

void sn_config_rehash(struct sn_config *cfg)
{
    uint64_t h = SN_HASH_INIT;
    for (int i = 0; i < cfg->n_sections; i++) {
        const struct sn_section *s = &cfg->sections[i];
        h = sn_hash_str("[", h);
        h = sn_hash_str(s->type, h);
        for (int j = 0; j < s->n_keys; j++) {
            h = sn_hash_str(s->keys[j].name, h);
            h = sn_hash_str(s->keys[j].value, h);
        }
    }
    cfg->hash = h;
}

void sn_config_free(struct sn_config *cfg)
{
    if (cfg == NULL)
        return;
    for (int i = 0; i < cfg->n_sections; i++) {
        for (int j = 0; j < cfg->sections[i].n_keys; j++)
            free(cfg->sections[i].keys[j].value);
        free(cfg->sections[i].keys);
        for (int j = 0; j < cfg->sections[i].n_resolved; j++)
            free(cfg->sections[i].resolved[j].value);
        free(cfg->sections[i].resolved);
    }
    free(cfg->sections);
    free(cfg);
}

void sn_config_lower(char *s)
{
    for (; *s; s++)
        *s = (char)tolower((unsigned char)*s);
}

static void rtrim(char *s)
{
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
}

/* ---- lookup ------------------------------------------------------------------------------- */

const struct sn_section *sn_config_find(const struct sn_config *cfg, const char *type)
{
    for (int i = 0; i < cfg->n_sections; i++)
        if (strcmp(cfg->sections[i].type, type) == 0)
            return &cfg->sections[i];
    return NULL;
}

const struct sn_key *sn_section_key(const struct sn_section *s, const char *key)
{
    if (s == NULL)
        return NULL;
    for (int i = 0; i < s->n_keys; i++)
        if (strcmp(s->keys[i].name, key) == 0)
            return &s->keys[i];
    return NULL;
}

void sn_config_layer_name(const struct sn_config *cfg, const struct sn_section *s, char *out,
                          int cap)
{
    if (sn_config_is_settings(s->type)) {
        snprintf(out, (size_t)cap, "%s", s->type);
        return;
    }
    const struct sn_key *nk = sn_section_key(s, "name");
    if (nk != NULL && nk->value[0]) {
        snprintf(out, (size_t)cap, "%s", nk->value);
        return;
    }
    /* The n-th section of a type (from 0) is type_n, named or not, so that a `name =` added to
     * one layer does not rename the others (model.c numbers layers the same way). */
    int count = 0;
    for (int i = 0; i < s->index && i < cfg->n_sections; i++)
        if (strcmp(cfg->sections[i].type, s->type) == 0)
            count++;
    if (count == 0)
        snprintf(out, (size_t)cap, "%s", s->type);
    else
        snprintf(out, (size_t)cap, "%s_%d", s->type, count);
}

/* "file:line" of a key (or of the section when k is NULL), or "--set layer.key" for overrides. */
static void where(const struct sn_config *cfg, const struct sn_section *s, const struct sn_key *k,
                  char *buf, size_t cap)
{
    if (k != NULL && k->line == 0) {
        char name[SN_CFG_NAME_MAX];
        sn_config_layer_name(cfg, s, name, sizeof name);
        snprintf(buf, cap, "--set %s.%s", name, k->name);
    } else if (s != NULL && (k != NULL || s->line > 0)) {
        snprintf(buf, cap, "%s:%d", cfg->path, k ? k->line : s->line);
    } else {
        snprintf(buf, cap, "%s", cfg->path);
    }
}

void sn_config_where(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                     char *buf, size_t cap)
{
    where(cfg, s, key ? sn_section_key(s, key) : NULL, buf, cap);
}

int sn_config_error(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                    struct sn_err *err, int code, const char *fmt, ...)
{
    char msg[1024], at[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (s == NULL)
        return sn_err_set(err, code, "%s: %s", cfg->path, msg);
    where(cfg, s, key ? sn_section_key(s, key) : NULL, at, sizeof at);
    if (key != NULL)
        return sn_err_set(err, code, "%s: [%s] %s: %s", at, s->type, key, msg);
    return sn_err_set(err, code, "%s: [%s]: %s", at, s->type, msg);
}

/* ---- getters ------------------------------------------------------------------------------ */

/* The key, marked used, or NULL if absent. (Keys are owned by the config, not by the const
 * section view the caller holds; marking use is bookkeeping, not a change of content.) */
static struct sn_key *take(const struct sn_section *s, const char *key)
{
    struct sn_key *k = (struct sn_key *)sn_section_key(s, key);
    if (k != NULL)
        k->used = 1;
    return k;
}

/* Records that key of s was asked for and took `value` (printf-style). Out of memory only loses
 * the record (a suggestion, a line of the resolved config), never a value. */
static void resolve(const struct sn_section *cs, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void resolve(const struct sn_section *cs, const char *key, const char *fmt, ...)
{
    if (cs == NULL || strlen(key) >= SN_CFG_NAME_MAX)
        return;
    struct sn_section *s = (struct sn_section *)cs; /* bookkeeping, as in take() */
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *value = n >= 0 ? malloc((size_t)n + 1) : NULL;
    if (value == NULL)
        return;
    va_start(ap, fmt);
    vsnprintf(value, (size_t)n + 1, fmt, ap);
    va_end(ap);
    struct sn_resolved *r = NULL;
    for (int i = 0; i < s->n_resolved && !r; i++)
        if (strcmp(s->resolved[i].name, key) == 0)
            r = &s->resolved[i];
    if (r == NULL) {
        struct sn_resolved *nr = realloc(s->resolved, (size_t)(s->n_resolved + 1) * sizeof *nr);
        if (nr == NULL) {
            free(value);
            return;
        }
        s->resolved = nr;
        r = &nr[s->n_resolved++];
        snprintf(r->name, sizeof r->name, "%s", key);
        r->value = NULL;
    }
    free(r->value);
    r->value = value;
}

/* An error about the value of k: "where: [type] key = 'value': message". */
static int value_error(const struct sn_config *cfg, const struct sn_section *s,
                       const struct sn_key *k, struct sn_err *err, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int value_error(const struct sn_config *cfg, const struct sn_section *s,
                       const struct sn_key *k, struct sn_err *err, const char *fmt, ...)
{
    char msg[512], at[600], more[200] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    where(cfg, s, k, at, sizeof at);
    if (k->last_line > k->line)
        snprintf(more, sizeof more,
                 "\n---> HINT: lines %d to %d are indented, so they continue the value of '%s'; "
                 "unindent a line that is a key of its own",
                 k->line + 1, k->last_line, k->name);
    /* a long value (a list of class names) is shown by its start */
    return sn_err_set(err, SN_EINVAL, "%s: [%s] %s = '%.200s%s': %s%s", at, s->type, k->name,
                      k->value, strlen(k->value) > 200 ? "..." : "", msg, more);
}

/* Parses a whole decimal integer. @return 0, 1 if not an integer, 2 if beyond long. */
static int parse_long(const char *v, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (end == v || *end != '\0' || isspace((unsigned char)*v))
        return 1;
    if (errno == ERANGE)
        return 2;
    *out = x;
    return 0;
}

/* Parses a finite number or a fraction "a/b" (blanks around the slash allowed: "1.0 / 127.5").
 * @return 0 or 1 if not a number. */
static int parse_double(const char *v, double *out)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || isspace((unsigned char)*v))
        return 1;
    const char *p = end;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '/') {
        const char *d = p + 1;
        double y = strtod(d, &end);
        if (end == d || y == 0)
            return 1;
        x /= y;
    }
    if (*end != '\0' || !isfinite(x))
        return 1;
    *out = x;
    return 0;
}

static int int_value(const struct sn_config *cfg, const struct sn_section *s,
                     const struct sn_key *k, const char *text, int lo, int hi, int *out,
                     struct sn_err *err)
{
    long x;
    int rc = parse_long(text, &x);
    if (rc == 1)
        return value_error(cfg, s, k, err, "'%s' is not an integer", text);
    if (rc == 2 || x < lo || x > hi)
        return value_error(cfg, s, k, err, "%s is out of range [%d, %d]", text, lo, hi);
    *out = (int)x;
    return SN_OK;
}

static int float_value(const struct sn_config *cfg, const struct sn_section *s,
                       const struct sn_key *k, const char *text, double lo, double hi,
                       double *out, struct sn_err *err)
{
    double x;
    if (parse_double(text, &x) != 0)
        return value_error(cfg, s, k, err, "'%s' is not a number (forms: 0.5, 1e-3, 1/255)",
                           text);
    if (x < lo || x > hi)
        return value_error(cfg, s, k, err, "%g is out of range [%g, %g]", x, lo, hi);
    *out = x;
    return SN_OK;
}

int sn_section_int(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                   int def, int lo, int hi, int *out, struct sn_err *err)
{
    const struct sn_key *k = take(s, key);
    if (k == NULL)
        *out = def;
    else
        SN_FORWARD(int_value(cfg, s, k, k->value, lo, hi, out, err));
    resolve(s, key, "%d", *out);
    return SN_OK;
}

int sn_section_float(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                     double def, double lo, double hi, double *out, struct sn_err *err)
{
    const struct sn_key *k = take(s, key);
    if (k == NULL)
        *out = def;
    else
        SN_FORWARD(float_value(cfg, s, k, k->value, lo, hi, out, err));
    resolve(s, key, "%.17g", *out);
    return SN_OK;
}

int sn_section_bool(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                    int def, int *out, struct sn_err *err)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    const struct sn_key *k = take(s, key);
    int v = k == NULL ? def != 0 : -1;
    for (int i = 0; i < 4 && v < 0; i++)
        if (strcasecmp(k->value, yes[i]) == 0)
            v = 1;
        else if (strcasecmp(k->value, no[i]) == 0)
            v = 0;
    if (v < 0)
        return value_error(cfg, s, k, err, "not a boolean (true/false, yes/no, on/off, 1/0)");
    *out = v;
    resolve(s, key, "%s", v ? "true" : "false");
    return SN_OK;
}

int sn_section_string(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                      const char *def, char *out, int cap, struct sn_err *err)
{
    const struct sn_key *k = take(s, key);
    const char *v = k ? k->value : (def ? def : "");
    if (strlen(v) >= (size_t)cap) {
        if (k == NULL)
            return sn_err_set(err, SN_EINVAL, "%s: default of '%s' is too long", cfg->path, key);
        return value_error(cfg, s, k, err, "longer than %d characters", cap - 1);
    }
    memcpy(out, v, strlen(v) + 1);
    resolve(s, key, "%s", v);
    return SN_OK;
}

int sn_section_text(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                    const char *def, const char **out, struct sn_err *err)
{
    (void)cfg, (void)err; /* any text is a text */
    const struct sn_key *k = take(s, key);
    *out = k ? k->value : (def ? def : "");
    resolve(s, key, "%s", *out);
    return SN_OK;
}

int sn_section_choice(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                      const char *def, const char *const *choices, int *out, struct sn_err *err)
{
    const struct sn_key *k = take(s, key);
    const char *v = k ? k->value : def;
    char list[512] = "";
    size_t len = 0;
    for (int i = 0; choices[i]; i++) {
        if (v != NULL && strcasecmp(v, choices[i]) == 0) {
            *out = i;
            resolve(s, key, "%s", choices[i]);
            return SN_OK;
        }
        int w = snprintf(list + len, sizeof list - len, "%s%s", i ? ", " : "", choices[i]);
        if (w > 0 && (size_t)w < sizeof list - len)
            len += (size_t)w;
    }
    if (k != NULL)
        return value_error(cfg, s, k, err, "expected one of: %s", list);
    if (v == NULL) {
        char hint[600];
        snprintf(hint, sizeof hint, "required; one of: %s", list);
        return sn_config_missing(cfg, s, key, hint, err);
    }
    return sn_err_set(err, SN_EINVAL, "%s: [%s] %s: default '%s' is not one of: %s", cfg->path,
                      s ? s->type : "?", key, v, list);
}

/* Splits "a", "a,b", "(a, b)", "[a,b]", "(a,)" or "axb" into trimmed parts.
 * @return the number of parts (1 or 2), or 0 if malformed. */
static int split2(const char *v, char *a, char *b, size_t cap)
{
    char buf[256];
    if (strlen(v) >= sizeof buf)
        return 0;
    memcpy(buf, v, strlen(v) + 1);
    char *p = buf;
    while (isspace((unsigned char)*p))
        p++;
    rtrim(p);
    size_t n = strlen(p);
    if (n >= 2 && ((p[0] == '(' && p[n - 1] == ')') || (p[0] == '[' && p[n - 1] == ']'))) {
        p[n - 1] = '\0';
        p++;
    }
    char *sep = strchr(p, ',');
    if (sep == NULL)
        sep = strpbrk(p, "xX");
    char *second = NULL, sep_ch = sep ? *sep : '\0';
    if (sep != NULL) {
        *sep = '\0';
        second = sep + 1;
    }
    char *parts[2] = {p, second};
    char *outs[2] = {a, b};
    int count = 0;
    for (int i = 0; i < 2 && parts[i]; i++) {
        char *q = parts[i];
        while (isspace((unsigned char)*q))
            q++;
        rtrim(q);
        if (*q == '\0') {
            if (i == 1 && sep_ch == ',')
                break; /* "(3,)": a Python 1-tuple */
            return 0;
        }
        if (strlen(q) >= cap)
            return 0;
        memcpy(outs[i], q, strlen(q) + 1);
        count++;
    }
    return count;
}

int sn_section_int2(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                    int def0, int def1, int lo, int hi, int out[2], struct sn_err *err)
{
    const struct sn_key *k = take(s, key);
    if (k == NULL) {
        out[0] = def0;
        out[1] = def1;
        resolve(s, key, "%d,%d", out[0], out[1]);
        return SN_OK;
    }
    char a[64], b[64];
    int n = split2(k->value, a, b, sizeof a);
    if (n == 0)
        return value_error(cfg, s, k, err, "expected one or two integers: 3, 3,5 or (3, 5)");
    int v[2];
    SN_FORWARD(int_value(cfg, s, k, a, lo, hi, &v[0], err));
    v[1] = v[0];
    if (n == 2)
        SN_FORWARD(int_value(cfg, s, k, b, lo, hi, &v[1], err));
    out[0] = v[0];
    out[1] = v[1];
    resolve(s, key, "%d,%d", out[0], out[1]);
    return SN_OK;
}

int sn_section_int_pair(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                        int lo, int hi, int out[2], struct sn_err *err)
{
    SN_FORWARD(sn_section_int2(cfg, s, key, 0, 0, lo, hi, out, err));
    const struct sn_key *k = sn_section_key(s, key);
    char a[64], b[64];
    if (k != NULL && split2(k->value, a, b, sizeof a) != 2)
        return value_error(cfg, s, k, err, "expected two integers, both written: H, W or (H, W)");
    return SN_OK;
}

int sn_section_float2(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                      double def0, double def1, double lo, double hi, double out[2],
                      struct sn_err *err)
{
    const struct sn_key *k = take(s, key);
    if (k == NULL) {
        out[0] = def0;
        out[1] = def1;
        resolve(s, key, "%.17g,%.17g", out[0], out[1]);
        return SN_OK;
    }
    char a[128], b[128];
    int n = split2(k->value, a, b, sizeof a);
    if (n == 0)
        return value_error(cfg, s, k, err, "expected one or two numbers: 0.1, 0.1,0.2 or (0.1, 0.2)");
    double v[2];
    SN_FORWARD(float_value(cfg, s, k, a, lo, hi, &v[0], err));
    v[1] = v[0];
    if (n == 2)
        SN_FORWARD(float_value(cfg, s, k, b, lo, hi, &v[1], err));
    out[0] = v[0];
    out[1] = v[1];
    resolve(s, key, "%.17g,%.17g", out[0], out[1]);
    return SN_OK;
}

/* ---- overrides and unused keys ------------------------------------------------------------ */

/* Writes "name, name, ..." of the sections of that type (of all sections if type is NULL). */
static void list_names(const struct sn_config *cfg, const char *type, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < cfg->n_sections; i++) {
        const struct sn_section *s = &cfg->sections[i];
        if (type != NULL && strcmp(s->type, type) != 0)
            continue;
        char name[SN_CFG_NAME_MAX];
        sn_config_layer_name(cfg, s, name, sizeof name);
        int w = snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", name);
        if (w < 0 || (size_t)w >= cap - len) {
            if (cap > 4)
                snprintf(buf + (cap - 4 < len ? cap - 4 : len), 4, "...");
            return;
        }
        len += (size_t)w;
    }
}

/* The section an override names; creates a missing settings section. */
static int resolve_section(struct sn_config *cfg, const char *name, const char *assignment,
                           struct sn_section **out, struct sn_err *err)
{
    char lname[SN_CFG_NAME_MAX];
    snprintf(lname, sizeof lname, "%.*s", SN_CFG_NAME_MAX - 1, name);
    sn_config_lower(lname);
    if (sn_config_is_settings(lname)) {
        struct sn_section *s = (struct sn_section *)sn_config_find(cfg, lname);
        if (s == NULL && (s = sn_config_add_section(cfg, lname, 0)) == NULL)
            return sn_err_set(err, SN_ENOMEM, "--set %s: out of memory", assignment);
        *out = s;
        return SN_OK;
    }
    struct sn_section *found = NULL;
    int n_named = 0, n_typed = 0;
    for (int i = 0; i < cfg->n_sections; i++) {
        char lay[SN_CFG_NAME_MAX];
        sn_config_layer_name(cfg, &cfg->sections[i], lay, sizeof lay);
        if (strcasecmp(lay, name) == 0) {
            found = &cfg->sections[i];
            n_named++;
        }
    }
    char names[700];
    if (n_named > 1)
        return sn_err_set(err, SN_EINVAL,
                          "--set %s: %d layers are named '%s'; HINT: give them distinct `name =` "
                          "keys",
                          assignment, n_named, name);
    if (n_named == 0) {
        for (int i = 0; i < cfg->n_sections; i++)
            if (strcmp(cfg->sections[i].type, lname) == 0) {
                found = &cfg->sections[i];
                n_typed++;
            }
        if (n_typed > 1) {
            list_names(cfg, lname, names, sizeof names);
            return sn_err_set(err, SN_EINVAL,
                              "--set %s: '%s' is ambiguous (%d [%s] sections); name one of: %s",
                              assignment, name, n_typed, lname, names);
        }
        if (n_typed == 0) {
            list_names(cfg, NULL, names, sizeof names);
            return sn_err_set(err, SN_EINVAL,
                              "--set %s: no section or layer named '%s'; candidates: %s%s"
                              "model, data, augment, train, checkpoint, early_stopping, "
                              "reduce_lr_on_plateau",
                              assignment, name, names, names[0] ? ", " : "");
        }
    }
    *out = found;
    return SN_OK;
}

/* Splits buf ("section.key=value", modified) into its trimmed parts. @return 0, or -1 when it
 * is not of that form. */
static int split_assignment(char *buf, char **sec, char **key, char **value)
{
    char *eq = strchr(buf, '=');
    char *dot = eq ? memchr(buf, '.', (size_t)(eq - buf)) : NULL;
    if (eq == NULL || dot == NULL)
        return -1;
    *eq = '\0';
    *dot = '\0';
    char *parts[3] = {buf, dot + 1, eq + 1};
    for (int i = 0; i < 3; i++) {
        while (isspace((unsigned char)*parts[i]))
            parts[i]++;
        rtrim(parts[i]);
    }
    *sec = parts[0], *key = parts[1], *value = parts[2];
    sn_config_lower(*key);
    return **sec == '\0' || **key == '\0' || strlen(*sec) >= SN_CFG_NAME_MAX ||
                   strlen(*key) >= SN_CFG_NAME_MAX
               ? -1
               : 0;
}

int sn_config_override(struct sn_config *cfg, const char *assignment, struct sn_err *err)
{
    /* messages show the assignment by its start: a value may be a list of 1,000 names */
    int shown = 120;
    const char *more = strlen(assignment) > (size_t)shown ? "..." : "";
    if (strlen(assignment) >= SN_CFG_LINE_MAX)
        return sn_err_set(err, SN_EINVAL, "--set %.*s%s: longer than %d characters", shown,
                          assignment, more, SN_CFG_LINE_MAX - 1);
    char *buf = strdup(assignment);
    if (buf == NULL)
        return sn_err_set(err, SN_ENOMEM, "--set: out of memory");
    char *sec = NULL, *key = NULL, *value = NULL;
    int rc = SN_OK;
    struct sn_section *s = NULL;
    if (split_assignment(buf, &sec, &key, &value) != 0)
        rc = sn_err_set(err, SN_EINVAL,
                        "--set %.*s%s: expected section.key=value, e.g. train.epochs=3 or "
                        "conv2d_1.filters=64",
                        shown, assignment, more);
    else
        rc = resolve_section(cfg, sec, assignment, &s, err);
    struct sn_key *k = rc == SN_OK ? (struct sn_key *)sn_section_key(s, key) : NULL;
    if (rc != SN_OK)
        ;
    else if (k != NULL ? sn_config_set_value(k, value) != SN_OK
                       : sn_config_add_key(s, key, value, 0) == NULL)
        rc = sn_err_set(err, SN_ENOMEM, "--set %.*s%s: out of memory", shown, assignment, more);
    else if (k != NULL)
        k->line = k->last_line = 0;
    free(buf);
    if (rc == SN_OK)
        sn_config_rehash(cfg);
    return rc;
}

/* Optimal string alignment distance (Levenshtein plus adjacent transpositions), for keys of
 * at most SN_CFG_NAME_MAX characters: "stride"/"strides" 1, "filtres"/"filters" 1. */
static int edit_distance(const char *a, const char *b)
{
    int n = (int)strlen(a), m = (int)strlen(b);
    if (n >= SN_CFG_NAME_MAX || m >= SN_CFG_NAME_MAX)
        return SN_CFG_NAME_MAX;
    int d[SN_CFG_NAME_MAX + 1][SN_CFG_NAME_MAX + 1];
    for (int i = 0; i <= n; i++)
        d[i][0] = i;
    for (int j = 0; j <= m; j++)
        d[0][j] = j;
    for (int i = 1; i <= n; i++)
        for (int j = 1; j <= m; j++) {
            int cost = a[i - 1] != b[j - 1];
            int v = d[i - 1][j - 1] + cost;
            if (d[i - 1][j] + 1 < v)
                v = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < v)
                v = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < v)
                v = d[i - 2][j - 2] + 1;
            d[i][j] = v;
        }
    return d[n][m];
}

/* Close enough to be a misspelling: at most 2 edits, and fewer than half the word. */
static int near(const char *a, const char *b)
{
    int d = edit_distance(a, b);
    return d <= 2 && 2 * d < (int)strlen(b);
}

/* The resolved key of s closest to word, or NULL if none is near. */
static const char *closest_known(const struct sn_section *s, const char *word)
{
    const char *best = NULL;
    int best_d = SN_CFG_NAME_MAX;
    for (int i = 0; i < s->n_resolved; i++) {
        const char *name = s->resolved[i].name;
        int d = edit_distance(word, name);
        if (near(word, name) && d < best_d) {
            best = name;
            best_d = d;
        }
    }
    return best;
}

/* "file:line: unknown key 'k' in [type] (...); did you mean 'x'?" or a list of the known keys. */
static int unknown_key(const struct sn_config *cfg, const struct sn_section *s,
                       const struct sn_key *k, const char *suggestion, struct sn_err *err)
{
    char at[600], sect[64], hint[700];
    where(cfg, s, k, at, sizeof at);
    if (s->line > 0)
        snprintf(sect, sizeof sect, "section at line %d", s->line);
    else
        snprintf(sect, sizeof sect, "section added by --set");
    if (suggestion != NULL) {
        snprintf(hint, sizeof hint, "did you mean '%s'?", suggestion);
    } else {
        size_t len = (size_t)snprintf(hint, sizeof hint, "HINT: [%s] takes", s->type);
        for (int i = 0; i < s->n_resolved && len < sizeof hint - 8; i++)
            len += (size_t)snprintf(hint + len, sizeof hint - len, "%s %s", i ? "," : "",
                                    s->resolved[i].name);
        if (s->n_resolved == 0)
            snprintf(hint, sizeof hint, "HINT: [%s] takes no keys", s->type);
    }
    return sn_err_set(err, SN_EINVAL, "%s: unknown key '%s' in [%s] (%s); %s", at, k->name,
                      s->type, sect, hint);
}

int sn_config_check_unused(const struct sn_config *cfg, struct sn_err *err)
{
    for (int i = 0; i < cfg->n_sections; i++) {
        const struct sn_section *s = &cfg->sections[i];
        for (int j = 0; j < s->n_keys; j++) {
            const struct sn_key *k = &s->keys[j];
            if (!k->used)
                return unknown_key(cfg, s, k, closest_known(s, k->name), err);
        }
    }
    return SN_OK;
}

int sn_config_missing(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                      const char *hint, struct sn_err *err)
{
    resolve(s, key, "%s", ""); /* asked for: a candidate for suggestions */
    for (int j = 0; s != NULL && j < s->n_keys; j++)
        if (!s->keys[j].used && near(s->keys[j].name, key))
            return unknown_key(cfg, s, &s->keys[j], key, err);
    return sn_config_error(cfg, s, key, err, SN_EINVAL, "%s", hint);
}

void sn_config_each_resolved(const struct sn_config *cfg,
                             void (*fn)(void *user, const char *section, const char *key,
                                        const char *value),
                             void *user)
{
    for (int i = 0; i < cfg->n_sections; i++) {
        const struct sn_section *s = &cfg->sections[i];
        char name[SN_CFG_NAME_MAX];
        sn_config_layer_name(cfg, s, name, sizeof name);
        for (int j = 0; j < s->n_resolved; j++)
            if (s->resolved[j].value != NULL)
                fn(user, name, s->resolved[j].name, s->resolved[j].value);
    }
}
