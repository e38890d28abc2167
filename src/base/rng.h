/* rng.h — random numbers that do not depend on who draws them.
 *
 * Two kinds:
 *  - sn_rng: a small sequential generator (xoshiro128+ style) for weight initialisation, carried in a
 *    struct and seeded explicitly; its state goes into checkpoints.
 *  - sn_hash_*: counter-based draws, a pure function of (key, counter). Augmentation and dropout
 *    use them with key = (seed, epoch, global sample index), so results do not depend on the
 *    number of ranks, threads or the order samples are processed in. */
#ifndef SN_RNG_H
#define SN_RNG_H

#include <stdint.h>

struct sn_rng {
    uint64_t s[2];
};

void     sn_rng_seed(struct sn_rng *r, uint64_t seed);
uint64_t sn_rng_next(struct sn_rng *r);
/* uniform in [0, 1) with 24 random bits */
float    sn_rng_uniform(struct sn_rng *r);
/* standard normal (Box-Muller) */
float    sn_rng_normal(struct sn_rng *r);

/* splitmix64's finaliser: a bijective, well-distributed mixing of 64 bits */
static inline uint64_t sn_mix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* splitmix64-based mixing: a well-distributed 64-bit function of its inputs.
 * sn_hash64(a, b) = sn_hash64_keyed(sn_mix64(a), b): a loop over b mixes its key once. */
static inline uint64_t sn_hash64_keyed(uint64_t mixed_a, uint64_t b)
{
    return sn_mix64(mixed_a ^ (b * 0xD6E8FEB86659FD93ull));
}
/* sn_hash64_keyed(mixed_a, b) >> 40, the 24 bits sn_hash_uniform reads, with one step less:
 * splitmix's last x ^= x >> 31 leaves the top 31 bits as they are. */
static inline uint32_t sn_hash64_keyed_top24(uint64_t mixed_a, uint64_t b)
{
    uint64_t x = (mixed_a ^ (b * 0xD6E8FEB86659FD93ull)) + 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return (uint32_t)(x >> 40);
}
uint64_t sn_hash64(uint64_t a, uint64_t b);
uint64_t sn_hash3(uint64_t a, uint64_t b, uint64_t c);
/* uniform in [0, 1) from a hash value */
static inline float sn_hash_uniform(uint64_t h) { return (float)(h >> 40) * (1.0f / 16777216.0f); }
/* The integer form of `sn_hash_uniform(h) >= p`, for loops that draw many times against one p:
 * @return T in [0, 2^24] such that, for every h, sn_hash_uniform(h) >= p  <=>  (h >> 40) >= T.
 * sn_hash_uniform(h) is k * 2^-24 with k = h >> 40 < 2^24, computed exactly in float, so T is
 * the smallest such k: ceil(p * 2^24), itself exact (a scaling by a power of two). p <= 0 gives
 * 0 (every draw passes); p > 1 - 2^-24 and a NaN p give 2^24 (none does). */
uint32_t sn_hash_uniform_threshold(float p);

#endif
