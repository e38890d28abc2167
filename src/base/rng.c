/* rng.c — see rng.h. */
#include "rng.h"

#include <math.h> // defines: sqrtf, logf, cosf, ceilf

uint64_t sn_hash64(uint64_t a, uint64_t b) { return sn_hash64_keyed(sn_mix64(a), b); }

uint32_t sn_hash_uniform_threshold(float p)
{
    if (!(p > 0.0f)) /* p <= 0, or NaN: sorted out below */
        return p != p ? 1u << 24 : 0;
    float t = ceilf(p * 16777216.0f); /* exact: p * 2^24 only moves the exponent */
    return t >= 16777216.0f ? 1u << 24 : (uint32_t)t;
}

uint64_t sn_hash3(uint64_t a, uint64_t b, uint64_t c) { return sn_hash64(sn_hash64(a, b), c); }

void sn_rng_seed(struct sn_rng *r, uint64_t seed)
{
    r->s[0] = sn_mix64(seed);
    r->s[1] = sn_mix64(r->s[0] ^ 0x5851F42D4C957F2Dull);
    if (r->s[0] == 0 && r->s[1] == 0)
        r->s[1] = 1;
}

/* xorshift128+ */
uint64_t sn_rng_next(struct sn_rng *r)
{
    uint64_t s1 = r->s[0];
    const uint64_t s0 = r->s[1];
    const uint64_t result = s0 + s1;
    r->s[0] = s0;
    s1 ^= s1 << 23;
    r->s[1] = s1 ^ s0 ^ (s1 >> 18) ^ (s0 >> 5);
    return result;
}

float sn_rng_uniform(struct sn_rng *r) { return (float)(sn_rng_next(r) >> 40) * (1.0f / 16777216.0f); }

float sn_rng_normal(struct sn_rng *r)
{
    float u1 = sn_rng_uniform(r), u2 = sn_rng_uniform(r);
    if (u1 < 1e-7f)
        u1 = 1e-7f;
    return sqrtf(-2.0f * logf(u1)) * cosf(6.28318530718f * u2);
}
