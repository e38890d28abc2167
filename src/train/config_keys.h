/* config_keys.h — the config reference: every key of every section, in one table.
 *
 * The table is the source of docs/config.md (sn_config_keys_markdown renders its key tables)
 * and is checked at every load (sn_config_keys_check): a key some getter read that the table
 * does not list is an error. The suite checks the other direction: every row is accepted by
 * sn_settings_load, and a row's default is what the getter resolves (tests/test_config_keys.c).
 * So a key added to a module without a row, or a row left behind by a removed key, fails.
 *
 * The table lives in the train layer because it documents the keys of every section's owner
 * (model, data, augment, optim, layers, train, callbacks); it needs only config.h itself. */
#ifndef SN_CONFIG_KEYS_H
#define SN_CONFIG_KEYS_H

#include <stddef.h>

#include "config.h"
#include "err.h"

/* The section name of the rows every layer section takes (name, trainable). */
#define SN_CONFIG_KEYS_ANY_LAYER "layer"

struct sn_config_key {
    const char *section;  /* a settings type ("train"), a layer type ("conv2d") or
                             SN_CONFIG_KEYS_ANY_LAYER */
    const char *key;      /* NULL: the row opens its section, and `meaning` describes it */
    const char *def;      /* the value the getter resolves when the key is absent, as
                             sn_config_each_resolved reports it ("0.10000000000000001" for 0.1,
                             "3,3", "true", "" for an empty text); NULL when there is no fixed
                             default: required, absent means off, or derived (meaning says) */
    const char *context;  /* when the key is read: "" whenever its section is read;
                             "KEY = V" or "KEY = V1, V2 or V3": only when KEY of the same
                             section is one of those; "no KEY": only when the section has no KEY.
                             A key given outside its context is refused. */
    const char *example;  /* a value the tests write (NULL: they write def) */
    int required;         /* the section is refused without it (in its context) */
    const char *meaning;  /* one line of Markdown, without '|' */
};

/* The rows in the order a reader wants them: settings sections in the order of a config file,
 * then the keys every layer takes, then each layer type; each section's opening row first.
 * Ended by a row whose section is NULL. */
extern const struct sn_config_key sn_config_keys[];

/* The row of key in a section of type `type` (a layer type also matches the
 * SN_CONFIG_KEYS_ANY_LAYER rows), or NULL. */
const struct sn_config_key *sn_config_keys_find(const char *type, const char *key);

/* Every key a getter resolved in cfg is in the table. The error names the file, the section
 * and the key: "not in the config reference". It is a programming error (a getter reads a key
 * the reference does not document), never a user's. @return SN_OK or SN_EINVAL */
int sn_config_keys_check(const struct sn_config *cfg, struct sn_err *err);

/* The key tables of docs/config.md as Markdown: per section a heading, its description and a
 * table of key, default and meaning (the context shown before the meaning). Written into
 * buf[cap] as snprintf does (buf may be NULL when cap is 0). @return the length of the whole
 * text, which was cut when it is >= cap */
size_t sn_config_keys_markdown(char *buf, size_t cap);

#endif
