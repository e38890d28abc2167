/* hooks.h — test hooks: behaviours the tests switch on through SN_TEST_<NAME> variables (a
 * folder a rank must not read, a oneDNN that refuses every primitive, ...).
 *
 * The library asks sn_test_hook("NAME"). Which answer it gets is chosen when an executable is
 * linked, not when the library is compiled: the release `shardnet` links hooks_off.c, whose
 * hooks are never set, so it reads no SN_TEST_* variable; the test executables link
 * hooks_test.c, which reads the environment. */
#ifndef SN_HOOKS_H
#define SN_HOOKS_H

/* The value of $SN_TEST_<name> in a test build; NULL when it is unset, and always in a release
 * build. */
const char *sn_test_hook(const char *name);

#endif
