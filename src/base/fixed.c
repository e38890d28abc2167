/* fixed.c — order-free sums in fixed point (fixed.h). */
#include "fixed.h"

#include <math.h> // defines: frexpf, ldexp, llrint, isfinite

int sn_fixed_magnitude(const float *x, size_t n)
{
    float most = 0.0f;
    int finite = 1;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(x[i]);
        finite &= isfinite(a) != 0;
        most = a > most ? a : most;
    }
    if (!finite)
        return SN_FIXED_NONFINITE;
    if (most == 0.0f)
        return SN_FIXED_ZERO;
    int e;
    frexpf(most, &e); /* most = f * 2^e, f in [0.5, 1): most < 2^e */
    return e;
}

int sn_fixed_scale(int e, int terms)
{
    if (e == SN_FIXED_ZERO)
        return 0;
    int bits = 0; /* ceil(log2(terms)) */
    while ((1LL << bits) < (long long)(terms > 1 ? terms : 1))
        bits++;
    return 62 - e - bits;
}

void sn_fixed_add(int64_t *restrict acc, const float *restrict x, size_t n, int s)
{
    /* x * 2^s is exact in double (a float's 24 bits, a power of two); llrint rounds it to the
       nearest integer, ties to even, in the default rounding mode that nothing here changes */
    const double scale = ldexp(1.0, s);
    for (size_t i = 0; i < n; i++)
        acc[i] += (int64_t)llrint((double)x[i] * scale);
}

void sn_fixed_to_float(const int64_t *restrict acc, float *restrict out, size_t n, int s)
{
    const double scale = ldexp(1.0, -s);
    for (size_t i = 0; i < n; i++)
        out[i] = (float)((double)acc[i] * scale);
}
