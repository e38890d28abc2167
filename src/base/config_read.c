/* config_read.c — the INI text of a config, read line by line into sections and keys, each with
 * its line for the messages.
 *
 * Syntax (docs/config.md says it for users):
 *   - "[type]" opens a section; a settings section (config.c's list) may appear once, layer
 *     sections repeat. Nothing but a comment may follow the ']'.
 *   - "key = value" or "key: value" (the first '=' or ':' splits). Keys are lower-cased; values
 *     trimmed and kept as written.
 *   - Comments: a line whose first non-blank character is ';' or '#', and the rest of a line
 *     from a ';' or '#' that follows a blank.
 *   - Continuation, as Python's configparser and libinih's INI_ALLOW_MULTILINE have it: an
 *     indented line after a key of the same section continues that key's value; the parts are
 *     joined with a newline. Blank and comment lines between them neither end nor join the
 *     value. An indented line right after a header is a key line.
 *   - A UTF-8 byte order mark before the first line is skipped; "\r\n" ends a line as "\n" does.
 *   - Lines and values are at most SN_CFG_LINE_MAX long.
 * We read the text ourselves rather than with libinih: the system library's line buffer is
 * fixed at 200 bytes, and its handler learns neither the line of a key nor that a section began
 * (a network repeats [conv2d], and [flatten] has no keys). */
#include "config_internal.h"

#include <ctype.h>  // defines: isspace, isalnum
#include <errno.h>  // defines: errno
#include <stdio.h>  // defines: FILE, fclose, getc, ferror
#include <stdlib.h> // defines: malloc, realloc, free
#include <string.h> // defines: strlen, strchr, strpbrk, memcpy, strerror

#include "sys.h" // defines: sn_fopen_regular

struct reader {
    struct sn_config *cfg;
    FILE *file;         /* the source is a file (not owned) ... */
    const char *text;   /* ... or a string, advanced as lines are read */
    int line;           /* number of the line in buf */
    char *buf;          /* owned: the line being read, without its '\n' */
    size_t cap;
    struct sn_section *section; /* the newest section (NULL before the first header) */
    int key;            /* index in section of the key a continuation line continues, or -1 */
    struct sn_err *err;
};

/* Reads the next line into r->buf; *got is 0 at the end of the input. @return SN_OK, or an
 * error code (err set): a read error, a line over SN_CFG_LINE_MAX, or out of memory. */
static int next_line(struct reader *r, int *got)
{
    *got = 0;
    size_t n = 0;
    int any = 0;
    for (;;) {
        int c = r->file ? getc(r->file) : *r->text ? (unsigned char)*r->text++ : EOF;
        if (c == EOF)
            break;
        any = 1;
        if (c == '\n')
            break;
        if (n + 1 >= r->cap) {
            if (r->cap >= SN_CFG_LINE_MAX)
                return sn_err_set(r->err, SN_EINVAL,
                                  "%s:%d: line longer than %d characters: is this a config file?",
                                  r->cfg->path, r->line + 1, SN_CFG_LINE_MAX);
            size_t cap = r->cap ? 2 * r->cap : 256;
            char *b = realloc(r->buf, cap);
            if (b == NULL)
                return sn_err_set(r->err, SN_ENOMEM, "%s:%d: out of memory", r->cfg->path,
                                  r->line + 1);
            r->buf = b;
            r->cap = cap;
        }
        r->buf[n++] = (char)c;
    }
    if (r->file && ferror(r->file))
        return sn_err_set(r->err, SN_EIO, "%s:%d: read error: %s", r->cfg->path, r->line + 1,
                          strerror(errno));
    if (!any)
        return SN_OK;
    if (r->buf == NULL && (r->buf = malloc(r->cap = 256)) == NULL)
        return sn_err_set(r->err, SN_ENOMEM, "%s: out of memory", r->cfg->path);
    r->buf[n] = '\0';
    r->line++;
    *got = 1;
    return SN_OK;
}

static int blank(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'; }

/* Cuts s at a comment: ';' or '#' at its start or after a blank. */
static void strip_comment(char *s)
{
    for (char *p = s; *p; p++)
        if ((*p == ';' || *p == '#') && (p == s || blank(p[-1]))) {
            *p = '\0';
            return;
        }
}

static char *trim(char *s)
{
    while (blank(*s))
        s++;
    size_t n = strlen(s);
    while (n > 0 && blank(s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* "[type]" (trimmed, comment cut): opens a section, refusing a settings section seen before. */
static int header(struct reader *r, const char *line)
{
    struct sn_config *cfg = r->cfg;
    const char *close = strchr(line, ']');
    if (close == NULL)
        return sn_err_set(r->err, SN_EINVAL, "%s:%d: section header '%s' lacks its ']'",
                          cfg->path, r->line, line);
    if (close[1] != '\0')
        return sn_err_set(r->err, SN_EINVAL, "%s:%d: text after the section header: '%s'",
                          cfg->path, r->line, line);
    const char *b = line + 1, *e = close;
    while (b < e && blank(*b))
        b++;
    while (e > b && blank(e[-1]))
        e--;
    char type[SN_CFG_NAME_MAX];
    size_t n = (size_t)(e - b);
    int ok = n > 0 && n < sizeof type;
    for (const char *p = b; ok && p < e; p++)
        ok = isalnum((unsigned char)*p) || *p == '_';
    if (!ok)
        return sn_err_set(r->err, SN_EINVAL,
                          "%s:%d: bad section header '%s': expected [type] with letters, digits "
                          "or '_'",
                          cfg->path, r->line, line);
    memcpy(type, b, n);
    type[n] = '\0';
    sn_config_lower(type);
    const struct sn_section *first = sn_config_find(cfg, type);
    if (first != NULL && sn_config_is_settings(type))
        return sn_err_set(r->err, SN_EINVAL,
                          "%s:%d: [%s] at line %d repeats [%s] at line %d; a settings section "
                          "may appear once\n---> HINT: move its keys into the first one",
                          cfg->path, r->line, type, r->line, type, first->line);
    r->section = sn_config_add_section(cfg, type, r->line);
    r->key = -1;
    if (r->section == NULL)
        return sn_err_set(r->err, SN_ENOMEM, "%s:%d: out of memory", cfg->path, r->line);
    return SN_OK;
}

/* An indented line after a key: "\n" and the line join the key's value. */
static int continuation(struct reader *r, const char *text)
{
    struct sn_key *k = &r->section->keys[r->key];
    size_t have = strlen(k->value), add = strlen(text);
    if (have + 1 + add >= SN_CFG_LINE_MAX)
        return sn_err_set(r->err, SN_EINVAL,
                          "%s:%d: [%s] %s: value (line %d on) longer than %d characters",
                          r->cfg->path, r->line, r->section->type, k->name, k->line,
                          SN_CFG_LINE_MAX - 1);
    char *v = realloc(k->value, have + add + 2);
    if (v == NULL)
        return sn_err_set(r->err, SN_ENOMEM, "%s:%d: out of memory", r->cfg->path, r->line);
    if (have > 0)
        v[have++] = '\n';
    memcpy(v + have, text, add + 1);
    k->value = v;
    k->last_line = r->line;
    return SN_OK;
}

/* "key = value" or "key: value" (comment cut, trimmed). */
static int key_line(struct reader *r, char *line)
{
    struct sn_config *cfg = r->cfg;
    char *sep = strpbrk(line, "=:");
    if (sep == NULL || sep == line)
        return sn_err_set(r->err, SN_EINVAL,
                          "%s:%d: syntax error: '%s' (expected '[type]', 'key = value' or a "
                          "comment)",
                          cfg->path, r->line, line);
    *sep = '\0';
    char *name = trim(line), *value = trim(sep + 1);
    if (r->section == NULL)
        return sn_err_set(r->err, SN_EINVAL,
                          "%s:%d: key '%s' before any [section]; HINT: put it under [train], "
                          "[model], ... or a layer section",
                          cfg->path, r->line, name);
    struct sn_section *s = r->section;
    if (strlen(name) >= SN_CFG_NAME_MAX)
        return sn_err_set(r->err, SN_EINVAL, "%s:%d: [%s] key name '%s' is too long", cfg->path,
                          r->line, s->type, name);
    char key[SN_CFG_NAME_MAX];
    memcpy(key, name, strlen(name) + 1);
    sn_config_lower(key);
    const struct sn_key *prev = sn_section_key(s, key);
    if (prev != NULL)
        return sn_err_set(r->err, SN_EINVAL,
                          "%s:%d: [%s] duplicate key '%s' (already set at line %d; section at "
                          "line %d)",
                          cfg->path, r->line, s->type, key, prev->line, s->line);
    if (sn_config_add_key(s, key, value, r->line) == NULL)
        return sn_err_set(r->err, SN_ENOMEM, "%s:%d: out of memory", cfg->path, r->line);
    r->key = s->n_keys - 1;
    return SN_OK;
}

static int read_all(struct reader *r)
{
    int rc, got;
    while ((rc = next_line(r, &got)) == SN_OK && got) {
        char *raw = r->buf;
        if (r->line == 1 && (unsigned char)raw[0] == 0xEF && (unsigned char)raw[1] == 0xBB &&
            (unsigned char)raw[2] == 0xBF)
            raw += 3; /* a UTF-8 byte order mark */
        int indented = blank(*raw);
        char *line = raw;
        while (blank(*line))
            line++;
        strip_comment(line);
        line = trim(line);
        if (*line == '\0')
            continue; /* blank or comment: neither ends nor joins a value */
        if (indented && r->key >= 0)
            rc = continuation(r, line);
        else if (*line == '[')
            rc = header(r, line);
        else
            rc = key_line(r, line);
        if (rc != SN_OK)
            return rc;
    }
    return rc;
}

static int parse(struct sn_config **out, struct reader *r, const char *name, struct sn_err *err)
{
    *out = NULL;
    struct sn_config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL)
        return sn_err_set(err, SN_ENOMEM, "%s: out of memory", name);
    snprintf(cfg->path, sizeof cfg->path, "%s", name);
    r->cfg = cfg;
    r->err = err;
    r->key = -1;
    int rc = read_all(r);
    free(r->buf);
    if (rc != SN_OK) {
        sn_config_free(cfg);
        return rc;
    }
    sn_config_rehash(cfg);
    *out = cfg;
    return SN_OK;
}

int sn_config_load(struct sn_config **out, const char *path, struct sn_err *err)
{
    *out = NULL;
    FILE *f;
    SN_FORWARD(sn_fopen_regular(path, "r", "config", &f, err));
    struct reader r = {.file = f};
    int rc = parse(out, &r, path, err);
    fclose(f);
    return rc;
}

int sn_config_load_string(struct sn_config **out, const char *text, const char *name,
                          struct sn_err *err)
{
    struct reader r = {.text = text};
    return parse(out, &r, name, err);
}
