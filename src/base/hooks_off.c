/* hooks_off.c — the release build's test hooks (hooks.h): never set, no variable read. */
#include "hooks.h"

#include <stddef.h> // defines: NULL

const char *sn_test_hook(const char *name)
{
    (void)name;
    return NULL;
}
