/*
 * revokd_rng.c: xoshiro256** (Blackman and Vigna), seeded with splitmix64.
 */
#include "common/revokd.h"

#include <string.h>

static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void
revokd_rng_seed(revokd_rng *rng, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		rng->s[i] = splitmix64(&seed);
}

uint64_t
revokd_rng_next(revokd_rng *rng)
{
	uint64_t *s = rng->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

uint64_t
revokd_rng_below(revokd_rng *rng, uint64_t bound)
{
	/* Rejection sampling keeps the result uniform for any bound. */
	uint64_t limit = UINT64_MAX - UINT64_MAX % bound;
	uint64_t x;

	do
		x = revokd_rng_next(rng);
	while (x >= limit);
	return x % bound;
}

double
revokd_rng_unit(revokd_rng *rng)
{
	return (double)(revokd_rng_next(rng) >> 11) * 0x1.0p-53;
}

void
revokd_rng_bytes(revokd_rng *rng, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len > 0) {
		uint64_t x = revokd_rng_next(rng);
		size_t n = len < sizeof(x) ? len : sizeof(x);

		memcpy(p, &x, n);
		p += n;
		len -= n;
	}
}
