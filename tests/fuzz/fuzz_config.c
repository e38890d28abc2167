/* fuzz_config.c — libFuzzer target: the INI config parser, `--set` overrides and the typed
 * getters (config.c).
 *
 * Input: INI text, optionally followed by a line "%%" and then one `--set` assignment per line
 * ("section.key=value"), each applied with sn_config_override in order. Every key of the result
 * is then read through all the typed getters (int, float, bool, string, text, choice, pairs), except
 * every third key, which is left for sn_config_check_unused (and its "did you mean") to report;
 * layer names, lookups, locations, located errors and the "required key" error are formed for
 * every section, and the resolved values are listed. Errors are expected: the target looks for
 * crashes, leaks and undefined behaviour, and aborts when an error comes without its message,
 * when a getter leaves its key unmarked, or when a resolved key has no value. */
#include <stdint.h> // defines: uint8_t
#include <stdio.h>  // defines: fprintf, snprintf, stderr
#include <stdlib.h> // defines: malloc, free, abort
#include <string.h> // defines: memcpy, strncmp, strchr, strlen

#include "config.h" // defines: sn_config_load_string, sn_config_override, sn_section_*,
                    //          sn_config_where, sn_config_missing, sn_config_each_resolved
#include "err.h"    // defines: struct sn_err, SN_OK, SN_EINVAL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* An error must carry its code and a message; err is then cleared for the next call. */
static void check(int rc, struct sn_err *err, const char *call)
{
    if (rc != SN_OK && (err->code != rc || err->msg[0] == '\0')) {
        fprintf(stderr, "fuzz_config: %s returned %d without its code or message ('%s')\n", call,
                rc, err->msg);
        abort();
    }
    *err = (struct sn_err){0};
}

/* Reads key through every getter; all of them mark it used. */
static void read_key(const struct sn_config *cfg, const struct sn_section *s, const char *key,
                     struct sn_err *err)
{
    static const char *const choices[] = {"constant", "step", "exponential", "cosine", NULL};
    int i, i2[2], b, c;
    double f, f2[2];
    char str[1024], small[8];
    const char *text;
    check(sn_section_int(cfg, s, key, 0, -1000000, 1000000, &i, err), err, "sn_section_int");
    check(sn_section_float(cfg, s, key, 0, -1e30, 1e30, &f, err), err, "sn_section_float");
    check(sn_section_bool(cfg, s, key, 0, &b, err), err, "sn_section_bool");
    check(sn_section_string(cfg, s, key, NULL, str, sizeof str, err), err, "sn_section_string");
    check(sn_section_string(cfg, s, key, "", small, sizeof small, err), err, "sn_section_string");
    check(sn_section_text(cfg, s, key, NULL, &text, err), err, "sn_section_text");
    if (strlen(text) != strlen(sn_section_key(s, key)->value)) {
        fprintf(stderr, "fuzz_config: sn_section_text gave another value of '%s'\n", key);
        abort();
    }
    check(sn_section_choice(cfg, s, key, "step", choices, &c, err), err, "sn_section_choice");
    check(sn_section_int2(cfg, s, key, 1, 1, 1, 4096, i2, err), err, "sn_section_int2");
    check(sn_section_float2(cfg, s, key, 0, 0, -1, 1, f2, err), err, "sn_section_float2");
    const struct sn_key *k = sn_section_key(s, key);
    if (k == NULL || !k->used) {
        fprintf(stderr, "fuzz_config: key '%s' not found or not marked used\n", key);
        abort();
    }
}

/* sn_config_each_resolved's callback: every resolved key has a value. */
static void on_resolved(void *user, const char *section, const char *key, const char *value)
{
    size_t *count = user;
    if (section == NULL || key == NULL || value == NULL) {
        fprintf(stderr, "fuzz_config: a resolved key without its section, name or value\n");
        abort();
    }
    *count += strlen(section) + strlen(key) + strlen(value);
}

static void walk(const struct sn_config *cfg, struct sn_err *err)
{
    static const char *const choices[] = {"a", "b", NULL};
    char name[SN_CFG_NAME_MAX], tiny[4], key[SN_CFG_NAME_MAX], at[700];
    for (int i = 0; i < cfg->n_sections; i++) {
        const struct sn_section *s = &cfg->sections[i];
        sn_config_layer_name(cfg, s, name, sizeof name);
        sn_config_layer_name(cfg, s, tiny, sizeof tiny);
        sn_config_where(cfg, s, NULL, at, sizeof at);
        sn_config_where(cfg, s, "fuzz absent", tiny, sizeof tiny);
        if (sn_config_find(cfg, s->type) == NULL) {
            fprintf(stderr, "fuzz_config: section [%s] not found by its own type\n", s->type);
            abort();
        }
        (void)sn_config_is_settings(s->type);
        check(sn_config_error(cfg, s, NULL, err, SN_EINVAL, "section %s", name), err,
              "sn_config_error");
        int c;
        /* an absent key: the default, or the "required" error when there is none */
        check(sn_section_choice(cfg, s, "fuzz absent", NULL, choices, &c, err), err,
              "sn_section_choice");
        for (int j = 0; j < s->n_keys; j++) {
            memcpy(key, s->keys[j].name, sizeof key);
            key[sizeof key - 1] = '\0';
            check(sn_config_error(cfg, s, key, err, SN_EINVAL, "key %s", key), err,
                  "sn_config_error");
            sn_config_where(cfg, s, key, at, sizeof at);
            /* as if a reader required a key spelt like this one plus a letter */
            char longer[SN_CFG_NAME_MAX + 1];
            snprintf(longer, sizeof longer, "%ss", key);
            check(sn_config_missing(cfg, s, longer, "required", err), err, "sn_config_missing");
            if (j % 3 != 2)
                read_key(cfg, s, key, err);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL)
        abort();
    memcpy(text, data, size);
    text[size] = '\0';
    /* split at the first line that is exactly "%%" */
    char *sets = NULL;
    for (char *line = text; line != NULL && *line; ) {
        char *nl = strchr(line, '\n');
        if (strncmp(line, "%%", 2) == 0 && (line[2] == '\n' || line[2] == '\0')) {
            *line = '\0';
            sets = nl ? nl + 1 : NULL;
            break;
        }
        line = nl ? nl + 1 : NULL;
    }

    struct sn_err err = {0};
    struct sn_config *cfg = NULL;
    int rc = sn_config_load_string(&cfg, text, "fuzz.cfg", &err);
    check(rc, &err, "sn_config_load_string");
    if (rc == SN_OK) {
        for (char *line = sets; line != NULL && *line; ) {
            char *nl = strchr(line, '\n');
            if (nl != NULL)
                *nl = '\0';
            check(sn_config_override(cfg, line, &err), &err, "sn_config_override");
            line = nl ? nl + 1 : NULL;
        }
        walk(cfg, &err);
        check(sn_config_check_unused(cfg, &err), &err, "sn_config_check_unused");
        size_t total = 0;
        sn_config_each_resolved(cfg, on_resolved, &total);
    }
    sn_config_free(cfg);
    free(text);
    return 0;
}
