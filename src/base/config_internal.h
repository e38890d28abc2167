/* config_internal.h — what config.c (the config in memory: lookup, getters, overrides) and
 * config_read.c (the INI text, line by line) share; nothing outside them includes it. */
#ifndef SN_CONFIG_INTERNAL_H
#define SN_CONFIG_INTERNAL_H

#include "config.h"

/* Appends an empty section of type at line (0: made by --set). @return it, or NULL when out of
 * memory. Pointers to sections taken earlier are invalidated (the array moves). */
struct sn_section *sn_config_add_section(struct sn_config *cfg, const char *type, int line);

/* Appends key = value (copied) at line. @return it, or NULL when out of memory. Pointers to
 * keys of s taken earlier are invalidated. */
struct sn_key *sn_config_add_key(struct sn_section *s, const char *name, const char *value,
                                 int line);

/* Replaces k's value by a copy of value. @return SN_OK, or SN_ENOMEM (k unchanged). */
int sn_config_set_value(struct sn_key *k, const char *value);

/* Recomputes cfg->hash over the content. */
void sn_config_rehash(struct sn_config *cfg);

/* Lower-cases s in place. */
void sn_config_lower(char *s);

#endif
