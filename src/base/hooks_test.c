/* hooks_test.c — the test executables' hooks (hooks.h): $SN_TEST_<name>. */
#include "hooks.h"

#include <stdio.h>  // defines: snprintf
#include <stdlib.h> // defines: getenv

const char *sn_test_hook(const char *name)
{
    char var[64];
    snprintf(var, sizeof var, "SN_TEST_%s", name);
    return getenv(var);
}
