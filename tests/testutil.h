/* testutil.h — small helpers shared by the test executables. */
#ifndef SN_TESTUTIL_H
#define SN_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* A fresh, empty directory for this test: $SN_TEST_TMP/<name> (or /tmp/shardnet-test/<name>).
 * The returned string is static storage; copy it if needed. */
const char *sn_test_dir(const char *name);
/* Fills x with uniform values in [lo, hi) from a fixed seed. */
void sn_test_fill(float *x, size_t n, float lo, float hi, uint64_t seed);
/* Largest |a-b| / max(1, |a|, |b|) over n values. */
double sn_test_max_rel_diff(const float *a, const float *b, size_t n);
/* Writes text to a file; returns 0 on success. */
int sn_test_write_file(const char *path, const char *text);
/* cmocka assertions: two listings of a split are the same (root, counts, fingerprint, classes,
 * every path and label, in order). */
struct sn_dataset;
void sn_test_assert_same_dataset(const struct sn_dataset *a, const struct sn_dataset *b);

#endif
