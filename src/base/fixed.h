/* fixed.h — sums of floats that do not depend on their order: each term rounded once to a
 * fixed-point grid, kept as an int64, and summed as integers, which is exact and associative.
 *
 * A sum of floats in float (or double) rounds after every addition, so its bits depend on the
 * order of the terms: summed over 2 ranks or 3, in a ring or a tree, the same gradients give
 * different last bits, and training amplifies them. Here every term x is rounded to the grid
 * 2^-s (round to nearest, ties to even) — the same rounding whoever adds it — and the integers
 * are summed exactly, by MPI_SUM over any ranks in any order. The grid is chosen from the largest
 * term of the whole sum and the number of terms, so that the sum cannot overflow 2^62: every
 * term keeps 62 - ceil(log2 terms) bits below the largest term's leading bit (float has 24). */
#ifndef SN_FIXED_H
#define SN_FIXED_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

/* The exponent that says how large the terms are (x < 2^e for every |x|), as sn_fixed_scale
 * takes it: SN_FIXED_ZERO when every x is 0 (or n is 0), SN_FIXED_NONFINITE when one is NaN or
 * infinite. A maximum over many sets of terms is the maximum of their exponents. */
#define SN_FIXED_ZERO INT_MIN
#define SN_FIXED_NONFINITE INT_MAX
int sn_fixed_magnitude(const float *x, size_t n);

/* The grid's exponent s for `terms` terms of magnitude e (from sn_fixed_magnitude, at most
 * terms of them summed per element): terms * 2^e * 2^s <= 2^62. Any s works for
 * SN_FIXED_ZERO (returns 0). Not for SN_FIXED_NONFINITE. */
int sn_fixed_scale(int e, int terms);

/* acc[i] += x[i] * 2^s rounded to the nearest integer (ties to even). */
void sn_fixed_add(int64_t *acc, const float *x, size_t n, int s);

/* out[i] = acc[i] * 2^-s, rounded to float. */
void sn_fixed_to_float(const int64_t *acc, float *out, size_t n, int s);

#endif
