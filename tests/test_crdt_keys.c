/*
 * test_crdt_keys.c: the keyed HMAC against RFC 4231, key derivation against
 * an independent HMAC built by hand from SHA-256, the kind helpers, and the
 * hybrid logical clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "crdt/crdt_int.h"
#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* Decode the hex string hex into out (capacity cap); returns the length. */
static size_t
hex_decode(const char *hex, uint8_t *out, size_t cap)
{
	size_t n = strlen(hex) / 2;

	assert_int_equal(strlen(hex) % 2, 0);
	assert_true(n <= cap);
	for (size_t i = 0; i < n; i++) {
		unsigned int byte;

		assert_int_equal(sscanf(hex + 2 * i, "%2x", &byte), 1);
		out[i] = (uint8_t)byte;
	}
	return n;
}

/* SHA-256 of len bytes at p, through OpenSSL's one-shot EVP_Digest. */
static void
sha256(const uint8_t *p, size_t len, uint8_t out[32])
{
	unsigned int md_len = 0;

	assert_int_equal(EVP_Digest(p, len, out, &md_len, EVP_sha256(), NULL),
	    1);
	assert_int_equal(md_len, 32);
}

/* Largest message ref_hmac_sha256 takes. */
#define REF_MSG_MAX 512

/*
 * HMAC-SHA-256 per RFC 2104, written out by hand: a key longer than the
 * 64-byte block is hashed first, then padded with zeros to the block;
 * H((K ^ opad) || H((K ^ ipad) || msg)).
 */
static void
ref_hmac_sha256(const uint8_t *key, size_t key_len, const uint8_t *msg,
    size_t msg_len, uint8_t out[32])
{
	uint8_t block[64] = { 0 };
	uint8_t inner[64 + REF_MSG_MAX];
	uint8_t outer[64 + 32];

	assert_true(msg_len <= REF_MSG_MAX);
	if (key_len > sizeof(block))
		sha256(key, key_len, block);
	else
		memcpy(block, key, key_len);
	for (size_t i = 0; i < sizeof(block); i++) {
		inner[i] = block[i] ^ 0x36;
		outer[i] = block[i] ^ 0x5c;
	}
	memcpy(inner + 64, msg, msg_len);
	sha256(inner, 64 + msg_len, outer + 64);
	sha256(outer, sizeof(outer), out);
}

/* A keyer for a key of any length; fails the test when it cannot. */
static crdt_keyer *
keyer_any(const uint8_t *key, size_t len)
{
	crdt_keyer *k = NULL;

	assert_int_equal(crdt__keyer_new_any(key, len, &k), REVOKD_OK);
	assert_non_null(k);
	return k;
}

/* ------------------------------------------------------------------------ */
/* HMAC-SHA-256: RFC 4231                                                   */
/* ------------------------------------------------------------------------ */

/*
 * One RFC 4231 test case. A key or data given as hex is used as is;
 * otherwise it is fill repeated len times. mac_len is 16 for case 5 (the
 * RFC's truncated output) and 32 for the others.
 */
struct rfc4231_case {
	int number;
	const char *key_hex;
	uint8_t key_fill;
	size_t key_len;
	const char *data;
	uint8_t data_fill;
	size_t data_len;
	const char *mac_hex;
	size_t mac_len;
};

static const struct rfc4231_case rfc4231[] = {
	{ 1, NULL, 0x0b, 20, "Hi There", 0, 0,
	    "b0344c61d8db38535ca8afceaf0bf12b"
	    "881dc200c9833da726e9376c2e32cff7",
	    32 },
	{ 2, "4a656665", 0, 0, "what do ya want for nothing?", 0, 0,
	    "5bdcc146bf60754e6a042426089575c7"
	    "5a003f089d2739839dec58b964ec3843",
	    32 },
	{ 3, NULL, 0xaa, 20, NULL, 0xdd, 50,
	    "773ea91e36800e46854db8ebd09181a7"
	    "2959098b3ef8c122d9635514ced565fe",
	    32 },
	{ 4, "0102030405060708090a0b0c0d0e0f10111213141516171819", 0, 0, NULL,
	    0xcd, 50,
	    "82558a389a443c0ea4cc819899f2083a"
	    "85f0faa3e578f8077a2e3ff46729665b",
	    32 },
	{ 5, NULL, 0x0c, 20, "Test With Truncation", 0, 0,
	    "a3b6167473100ee06e0c796c2955552b", 16 },
	{ 6, NULL, 0xaa, 131,
	    "Test Using Larger Than Block-Size Key - Hash Key First", 0, 0,
	    "60e431591ee0b67f0d8a26aacbf5b77f"
	    "8e0bc6213728c5140546040f0ee37f54",
	    32 },
	{ 7, NULL, 0xaa, 131,
	    "This is a test using a larger than block-size key and a larger "
	    "than block-size data. The key needs to be hashed before being "
	    "used by the HMAC algorithm.",
	    0, 0,
	    "9b09ffa71b942fcb27635fbcd5b0e944"
	    "bfdc63644f0713938a7f51535c3a35e2",
	    32 },
};

#define RFC4231_CASES (sizeof(rfc4231) / sizeof(rfc4231[0]))

/* The key, data and expected MAC of one case, decoded. */
struct rfc4231_bytes {
	uint8_t key[256];
	size_t key_len;
	uint8_t data[256];
	size_t data_len;
	uint8_t mac[32];
	size_t mac_len;
};

static void
rfc4231_decode(const struct rfc4231_case *c, struct rfc4231_bytes *out)
{
	if (c->key_hex != NULL) {
		out->key_len =
		    hex_decode(c->key_hex, out->key, sizeof(out->key));
	} else {
		assert_true(c->key_len <= sizeof(out->key));
		memset(out->key, c->key_fill, c->key_len);
		out->key_len = c->key_len;
	}
	if (c->data != NULL) {
		out->data_len = strlen(c->data);
		assert_true(out->data_len <= sizeof(out->data));
		memcpy(out->data, c->data, out->data_len);
	} else {
		memset(out->data, c->data_fill, c->data_len);
		out->data_len = c->data_len;
	}
	out->mac_len = hex_decode(c->mac_hex, out->mac, sizeof(out->mac));
	assert_int_equal(out->mac_len, c->mac_len);
}

/*
 * crdt__keyer_mac is HMAC-SHA-256: RFC 4231 cases 1-7, with the data whole
 * in a, and split across a and b at every point (a || b is what is MACed).
 */
static void
test_hmac_rfc4231(void **state)
{
	(void)state;
	for (size_t i = 0; i < RFC4231_CASES; i++) {
		struct rfc4231_bytes v;
		uint8_t mac[CRDT__MAC_LEN];
		crdt_keyer *k;
		revokd_err err;

		rfc4231_decode(&rfc4231[i], &v);
		k = keyer_any(v.key, v.key_len);
		memset(mac, 0, sizeof(mac));
		err = crdt__keyer_mac(k, v.data, v.data_len, "", 0, mac);
		assert_int_equal(err, REVOKD_OK);
		assert_memory_equal(mac, v.mac, v.mac_len);
		for (size_t cut = 0; cut <= v.data_len; cut++) {
			memset(mac, 0, sizeof(mac));
			err = crdt__keyer_mac(k, v.data, cut, v.data + cut,
			    v.data_len - cut, mac);
			assert_int_equal(err, REVOKD_OK);
			assert_memory_equal(mac, v.mac, v.mac_len);
		}
		crdt_keyer_free(k);
	}
}

/* The hand-made reference HMAC agrees with RFC 4231 (it checks the rest). */
static void
test_reference_hmac_rfc4231(void **state)
{
	(void)state;
	for (size_t i = 0; i < RFC4231_CASES; i++) {
		struct rfc4231_bytes v;
		uint8_t mac[32];

		rfc4231_decode(&rfc4231[i], &v);
		ref_hmac_sha256(v.key, v.key_len, v.data, v.data_len, mac);
		assert_memory_equal(mac, v.mac, v.mac_len);
	}
}

/*
 * A keyer used for many MACs in a row gives, every time, what a fresh keyer
 * of the same key gives: each MAC re-initialises with the kept key and
 * carries nothing over from the one before.
 */
static void
test_hmac_keyer_reuse(void **state)
{
	struct rfc4231_bytes v;
	uint8_t key[CRDT_SECRET_LEN];
	uint8_t msg[300];
	uint8_t reused[CRDT__MAC_LEN], fresh[CRDT__MAC_LEN];
	crdt_keyer *k, *once;
	revokd_err err;
	revokd_rng rng;

	(void)state;
	revokd_rng_seed(&rng, 0x6b657965);
	revokd_rng_bytes(&rng, key, sizeof(key));
	k = keyer_any(key, sizeof(key));
	for (int i = 0; i < 500; i++) {
		size_t len = revokd_rng_below(&rng, sizeof(msg) + 1);
		size_t cut = revokd_rng_below(&rng, len + 1);

		revokd_rng_bytes(&rng, msg, len);
		err =
		    crdt__keyer_mac(k, msg, cut, msg + cut, len - cut, reused);
		assert_int_equal(err, REVOKD_OK);
		once = keyer_any(key, sizeof(key));
		err = crdt__keyer_mac(once, msg, len, "", 0, fresh);
		assert_int_equal(err, REVOKD_OK);
		crdt_keyer_free(once);
		assert_memory_equal(reused, fresh, sizeof(fresh));
		ref_hmac_sha256(key, sizeof(key), msg, len, fresh);
		assert_memory_equal(reused, fresh, sizeof(fresh));
	}
	crdt_keyer_free(k);

	/* After many uses, an RFC vector still comes out right. */
	rfc4231_decode(&rfc4231[1], &v);
	k = keyer_any(v.key, v.key_len);
	for (size_t i = 0; i < 100; i++) {
		err = crdt__keyer_mac(k, msg, i, "x", 1, reused);
		assert_int_equal(err, REVOKD_OK);
	}
	err = crdt__keyer_mac(k, v.data, v.data_len, "", 0, reused);
	assert_int_equal(err, REVOKD_OK);
	assert_memory_equal(reused, v.mac, v.mac_len);
	crdt_keyer_free(k);
}

/* ------------------------------------------------------------------------ */
/* Key derivation                                                           */
/* ------------------------------------------------------------------------ */

/*
 * crdt_key_derive(kind, id) is the first 16 bytes of HMAC-SHA-256(secret,
 * kind byte || id), checked against the hand-made HMAC for random secrets,
 * random ids of 0..300 bytes, and every kind.
 */
static void
test_key_derive_reference(void **state)
{
	uint8_t secret[CRDT_SECRET_LEN];
	uint8_t id[300], msg[1 + sizeof(id)];
	uint8_t mac[32];
	revokd_err err;
	revokd_rng rng;

	(void)state;
	revokd_rng_seed(&rng, 0x64657269);
	for (int i = 0; i < 400; i++) {
		size_t id_len = revokd_rng_below(&rng, sizeof(id) + 1);
		crdt_keyer *k = NULL;

		if (i < 2)
			id_len = i == 0 ? 0 : sizeof(id); /* the extremes */
		revokd_rng_bytes(&rng, secret, sizeof(secret));
		revokd_rng_bytes(&rng, id, id_len);
		err = crdt_keyer_new(secret, sizeof(secret), &k);
		assert_int_equal(err, REVOKD_OK);
		for (int kind = 1; kind <= 5; kind++) {
			crdt_key key;

			memset(&key, 0xee, sizeof(key));
			err = crdt_key_derive(k, (crdt_kind)kind, id, id_len,
			    &key);
			assert_int_equal(err, REVOKD_OK);
			msg[0] = (uint8_t)kind;
			memcpy(msg + 1, id, id_len);
			ref_hmac_sha256(secret, sizeof(secret), msg, 1 + id_len,
			    mac);
			assert_memory_equal(key.b, mac, CRDT_KEY_LEN);
		}
		crdt_keyer_free(k);
	}
}

/* crdt_keyer_new takes only 32-byte secrets, and leaves *out alone else. */
static void
test_keyer_new_secret_length(void **state)
{
	static const size_t bad[] = { 0, 1, 16, 31, 33, 64 };
	uint8_t secret[64];
	crdt_keyer *sentinel = (crdt_keyer *)&secret[0];
	crdt_keyer *k;
	revokd_err err;

	(void)state;
	memset(secret, 0x42, sizeof(secret));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		k = sentinel;
		err = crdt_keyer_new(secret, bad[i], &k);
		assert_int_equal(err, REVOKD_EINVAL);
		assert_ptr_equal(k, sentinel);
	}
	k = NULL;
	err = crdt_keyer_new(secret, CRDT_SECRET_LEN, &k);
	assert_int_equal(err, REVOKD_OK);
	assert_non_null(k);
	crdt_keyer_free(k);
	crdt_keyer_free(NULL);
}

/* crdt_key_derive refuses kinds outside 1..5 and leaves *out alone. */
static void
test_key_derive_invalid_kind(void **state)
{
	static const int bad[] = { 0, 6, 7, 255, -1 };
	uint8_t secret[CRDT_SECRET_LEN] = { 1, 2, 3 };
	crdt_key key, untouched;
	crdt_keyer *k = NULL;
	revokd_err err;

	(void)state;
	err = crdt_keyer_new(secret, sizeof(secret), &k);
	assert_int_equal(err, REVOKD_OK);
	memset(&untouched, 0xa5, sizeof(untouched));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		key = untouched;
		err = crdt_key_derive(k, (crdt_kind)bad[i], "u1", 2, &key);
		assert_int_equal(err, REVOKD_EINVAL);
		assert_memory_equal(&key, &untouched, sizeof(key));
	}
	crdt_keyer_free(k);
}

/* The key of (kind, id) under k; fails the test on an error. */
static void
derive(crdt_keyer *k, int kind, const uint8_t *id, size_t len, crdt_key *out)
{
	revokd_err err = crdt_key_derive(k, (crdt_kind)kind, id, len, out);

	assert_int_equal(err, REVOKD_OK);
}

/*
 * Keys are deterministic, and separate what they should: the five kinds of
 * one id, the same id under two secrets, and ids that differ in one byte or
 * in length all give different keys.
 */
static void
test_key_derive_separation(void **state)
{
	uint8_t s1[CRDT_SECRET_LEN], s2[CRDT_SECRET_LEN];
	crdt_keyer *k1 = NULL, *k2 = NULL;
	revokd_rng rng;

	(void)state;
	revokd_rng_seed(&rng, 0x73657061);
	revokd_rng_bytes(&rng, s1, sizeof(s1));
	memcpy(s2, s1, sizeof(s2));
	s2[31] ^= 1;
	assert_int_equal(crdt_keyer_new(s1, sizeof(s1), &k1), REVOKD_OK);
	assert_int_equal(crdt_keyer_new(s2, sizeof(s2), &k2), REVOKD_OK);
	for (int i = 0; i < 200; i++) {
		uint8_t id[40];
		size_t len = 1 + revokd_rng_below(&rng, sizeof(id) - 1);
		crdt_key key[CRDT_KIND_TENANT + 1], again, other;

		revokd_rng_bytes(&rng, id, sizeof(id));
		for (int kind = 1; kind <= 5; kind++) {
			derive(k1, kind, id, len, &key[kind]);
			derive(k1, kind, id, len, &again);
			assert_int_equal(crdt_key_cmp(&key[kind], &again), 0);
			derive(k2, kind, id, len, &other);
			assert_int_not_equal(crdt_key_cmp(&key[kind], &other),
			    0);
			for (int j = 1; j < kind; j++) {
				int cmp = crdt_key_cmp(&key[j], &key[kind]);

				assert_int_not_equal(cmp, 0);
			}
		}
		derive(k1, CRDT_KIND_JTI, id, len - 1, &other);
		assert_int_not_equal(crdt_key_cmp(&key[CRDT_KIND_JTI], &other),
		    0);
		id[revokd_rng_below(&rng, len)] ^= 0x80;
		derive(k1, CRDT_KIND_JTI, id, len, &other);
		assert_int_not_equal(crdt_key_cmp(&key[CRDT_KIND_JTI], &other),
		    0);
	}
	crdt_keyer_free(k1);
	crdt_keyer_free(k2);
}

/* crdt_key_cmp is memcmp order: the first differing byte decides. */
static void
test_key_cmp(void **state)
{
	crdt_key a, b;

	(void)state;
	memset(&a, 0x10, sizeof(a));
	b = a;
	assert_int_equal(crdt_key_cmp(&a, &b), 0);
	b.b[15] = 0x11;
	assert_true(crdt_key_cmp(&a, &b) < 0);
	assert_true(crdt_key_cmp(&b, &a) > 0);
	a.b[0] = 0x11; /* an earlier byte outweighs a later one */
	assert_true(crdt_key_cmp(&a, &b) > 0);
	b.b[0] = 0xff; /* bytes compare unsigned */
	assert_true(crdt_key_cmp(&a, &b) < 0);
}

/* ------------------------------------------------------------------------ */
/* Kinds                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * The kind helpers: exactly 1..5 are valid, jti and sid are the token kinds,
 * names are as documented and name <-> kind round-trips; anything else is
 * "?" or 0.
 */
static void
test_kind_helpers(void **state)
{
	static const char *const names[] = { NULL, "jti", "sid", "sub",
		"client", "tenant" };
	static const int invalid[] = { 0, 6, 7, 255, -1, INT_MAX, INT_MIN };
	static const char *const unknown[] = { "", "?", "jt", "jtix", "jti ",
		"subject", "tenants", "clients" };

	(void)state;
	for (int k = CRDT_KIND_JTI; k <= CRDT_KIND_TENANT; k++) {
		assert_true(crdt_kind_valid(k));
		assert_int_equal(crdt_kind_is_token((crdt_kind)k),
		    k == CRDT_KIND_JTI || k == CRDT_KIND_SID);
		assert_string_equal(crdt_kind_name((crdt_kind)k), names[k]);
		assert_int_equal(crdt_kind_from_name(names[k]), k);
		assert_int_equal(
		    crdt_kind_from_name(crdt_kind_name((crdt_kind)k)), k);
	}
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		assert_false(crdt_kind_valid(invalid[i]));
		assert_false(crdt_kind_is_token((crdt_kind)invalid[i]));
		assert_string_equal(crdt_kind_name((crdt_kind)invalid[i]), "?");
	}
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++)
		assert_int_equal(crdt_kind_from_name(unknown[i]), 0);
}

/* ------------------------------------------------------------------------ */
/* Hybrid logical clock                                                     */
/* ------------------------------------------------------------------------ */

/* A physical time in ms, late 2023. */
#define PHYS0 1700000000000ull

/*
 * The model of a fresh timestamp: the physical time when that is above
 * floor, else floor + 1 (the counter carrying into the milliseconds).
 */
static crdt_hlc
model_after(crdt_hlc floor, uint64_t phys_ms)
{
	return CRDT_HLC_AT(phys_ms) > floor ? CRDT_HLC_AT(phys_ms) : floor + 1;
}

/*
 * Ticks strictly increase over 100k ticks while the physical clock wanders,
 * often backwards: each tick is the physical time when that is ahead of the
 * last timestamp, else the last timestamp plus one.
 */
static void
test_hlc_tick_monotonic(void **state)
{
	crdt_clock c = { 0 };
	uint64_t phys = PHYS0;
	crdt_hlc prev = 0;
	int backwards = 0, physical = 0;
	revokd_rng rng;

	(void)state;
	revokd_rng_seed(&rng, 0x686c6331);
	for (int i = 0; i < 100000; i++) {
		uint64_t step = revokd_rng_below(&rng, 8);
		crdt_hlc t, want;

		if (revokd_rng_below(&rng, 3) == 0) {
			phys -= revokd_rng_below(&rng, 8);
			backwards++;
		} else if (revokd_rng_below(&rng, 10000) == 0) {
			phys -= 5000; /* a big step back (NTP) */
			backwards++;
		} else {
			phys += step;
		}
		want = model_after(prev, phys);
		t = crdt_clock_tick(&c, phys);
		assert_true(t > prev);
		assert_int_equal(t, want);
		assert_int_equal(c.last, t);
		physical += t == CRDT_HLC_AT(phys);
		prev = t;
	}
	/* Both branches were taken many times. */
	assert_true(backwards > 10000);
	assert_true(physical > 1000 && physical < 99000);
}

/*
 * A full logical counter carries into the milliseconds: from
 * AT(t) | 0xffff the next tick at t is AT(t + 1), and ticks go on counting
 * up one by one across several carries.
 */
static void
test_hlc_logical_overflow(void **state)
{
	const uint64_t t = PHYS0;
	crdt_clock c = { .last = CRDT_HLC_AT(t) | 0xffff };
	crdt_hlc h, start = c.last;

	(void)state;
	h = crdt_clock_tick(&c, t);
	assert_int_equal(h, CRDT_HLC_AT(t + 1));
	assert_int_equal(CRDT_HLC_MS(h), t + 1);
	assert_int_equal(CRDT_HLC_LOGICAL(h), 0);
	h = crdt_clock_tick(&c, t - 5);
	assert_int_equal(h, CRDT_HLC_AT(t + 1) + 1);
	for (uint64_t i = 3; i <= 3 * 65536; i++) {
		crdt_hlc next = crdt_clock_tick(&c, t);

		assert_true(next > h);
		assert_int_equal(next, start + i);
		h = next;
	}
	assert_int_equal(CRDT_HLC_MS(h), t + 3);
	assert_int_equal(CRDT_HLC_LOGICAL(h), 0xffff);
	/* Physical time catching up takes over again. */
	assert_int_equal(crdt_clock_tick(&c, t + 4), CRDT_HLC_AT(t + 4));
}

/*
 * A remote timestamp ahead of us, but within max_ahead, is absorbed: recv
 * returns remote + 1 (with carry), and later ticks stay above it. Exactly
 * max_ahead ahead is still within. A remote behind us only ticks the clock.
 */
static void
test_hlc_recv_ahead(void **state)
{
	const uint64_t t = PHYS0;
	crdt_clock c = { 0 };
	crdt_hlc remote, out = 0, prev;
	revokd_err err;

	(void)state;
	prev = crdt_clock_tick(&c, t);
	remote = CRDT_HLC_AT(t + 500) + 7;
	err = crdt_clock_recv(&c, t, remote, 1000, &out);
	assert_int_equal(err, REVOKD_OK);
	assert_true(out > remote && out > prev);
	assert_int_equal(out, remote + 1);
	assert_int_equal(c.last, out);
	assert_int_equal(crdt_clock_tick(&c, t), remote + 2);
	assert_int_equal(crdt_clock_tick(&c, t + 500), remote + 3);

	/* At exactly max_ahead, with a full counter: absorbed, carried. */
	remote = CRDT_HLC_AT(t + 1000) | 0xffff;
	err = crdt_clock_recv(&c, t, remote, 1000, &out);
	assert_int_equal(err, REVOKD_OK);
	assert_int_equal(out, CRDT_HLC_AT(t + 1001));
	assert_true(crdt_clock_tick(&c, t) > remote);

	/* A remote behind us changes nothing but the tick. */
	prev = c.last;
	err = crdt_clock_recv(&c, t, CRDT_HLC_AT(t - 10), 1000, &out);
	assert_int_equal(err, REVOKD_OK);
	assert_int_equal(out, prev + 1);

	/* A remote behind the physical clock: the physical clock wins. */
	c.last = CRDT_HLC_AT(t - 100);
	err = crdt_clock_recv(&c, t, CRDT_HLC_AT(t - 50) + 3, 1000, &out);
	assert_int_equal(err, REVOKD_OK);
	assert_int_equal(out, CRDT_HLC_AT(t));
}

/*
 * A remote more than max_ahead ahead is refused with REVOKD_ECLOCK and not
 * absorbed (the result stays below it), but the clock still ticks and *out
 * is still written.
 */
static void
test_hlc_recv_too_far_ahead(void **state)
{
	const uint64_t t = PHYS0;
	crdt_clock c = { 0 };
	crdt_hlc remote, out = 0, prev;
	revokd_err err;

	(void)state;
	prev = crdt_clock_tick(&c, t);
	remote = CRDT_HLC_AT(t + 1001);
	err = crdt_clock_recv(&c, t, remote, 1000, &out);
	assert_int_equal(err, REVOKD_ECLOCK);
	assert_true(out < remote);
	assert_true(out > prev);
	assert_int_equal(out, prev + 1);
	assert_int_equal(c.last, out);
	assert_true(crdt_clock_tick(&c, t) < remote);

	/* max_ahead 0: any later millisecond is too far, the same is not. */
	prev = c.last;
	err = crdt_clock_recv(&c, t, CRDT_HLC_AT(t + 1), 0, &out);
	assert_int_equal(err, REVOKD_ECLOCK);
	assert_int_equal(out, prev + 1);
	remote = CRDT_HLC_AT(t) + 0x8000;
	err = crdt_clock_recv(&c, t, remote, 0, &out);
	assert_int_equal(err, REVOKD_OK);
	assert_int_equal(out, remote + 1);
}

/*
 * Regression: max_ahead_ms = UINT64_MAX ("no limit") must not overflow into
 * refusing every remote at or after the local time; and a clock at the end
 * of time holds instead of wrapping to 0.
 */
static void
test_hlc_recv_no_limit(void **state)
{
	const uint64_t t = PHYS0;
	crdt_clock c = { 0 };
	crdt_hlc out = 0;

	(void)state;
	assert_int_equal(
	    crdt_clock_recv(&c, t, CRDT_HLC_AT(t), UINT64_MAX, &out),
	    REVOKD_OK);
	assert_int_equal(out, CRDT_HLC_AT(t) + 1);
	assert_int_equal(
	    crdt_clock_recv(&c, t, CRDT_HLC_AT(t + 5000), UINT64_MAX, &out),
	    REVOKD_OK);
	assert_int_equal(out, CRDT_HLC_AT(t + 5000) + 1);

	c.last = UINT64_MAX - 1;
	assert_int_equal(crdt_clock_tick(&c, t), UINT64_MAX);
	assert_int_equal(crdt_clock_tick(&c, t), UINT64_MAX);
}

/*
 * Random ticks and receives: every timestamp issued is above every one
 * issued before and above every remote absorbed. ECLOCK comes exactly when
 * the remote's milliseconds exceed phys + max_ahead, and then the result is
 * what a plain tick would have given.
 */
static void
test_hlc_random_tick_recv(void **state)
{
	const uint64_t max_ahead = 1000;
	crdt_clock c = { .last = CRDT_HLC_AT(PHYS0) };
	uint64_t phys = PHYS0;
	crdt_hlc prev = c.last;
	int refused = 0, absorbed = 0;
	revokd_rng rng;

	(void)state;
	revokd_rng_seed(&rng, 0x686c6332);
	for (int i = 0; i < 50000; i++) {
		crdt_hlc out, remote, floor = prev;
		uint64_t ms;
		revokd_err err;
		bool far;

		phys = phys + revokd_rng_below(&rng, 5) - 1;
		if (revokd_rng_below(&rng, 2) == 0) {
			out = crdt_clock_tick(&c, phys);
		} else {
			/* A remote near our last timestamp or near the limit */
			if (revokd_rng_below(&rng, 8) == 0)
				ms = phys + max_ahead - 2 +
				     revokd_rng_below(&rng, 5);
			else
				ms = CRDT_HLC_MS(prev) - 2 +
				     revokd_rng_below(&rng, 5);
			remote =
			    CRDT_HLC_AT(ms) + revokd_rng_below(&rng, 0x10000);
			err =
			    crdt_clock_recv(&c, phys, remote, max_ahead, &out);
			far = ms > phys + max_ahead;
			assert_int_equal(err, far ? REVOKD_ECLOCK : REVOKD_OK);
			refused += far;
			if (!far && remote > floor) {
				floor = remote;
				absorbed++;
			}
		}
		assert_true(out > prev);
		assert_int_equal(out, model_after(floor, phys));
		assert_int_equal(c.last, out);
		prev = out;
	}
	assert_true(refused > 1000);
	assert_true(absorbed > 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hmac_rfc4231),
		cmocka_unit_test(test_reference_hmac_rfc4231),
		cmocka_unit_test(test_hmac_keyer_reuse),
		cmocka_unit_test(test_key_derive_reference),
		cmocka_unit_test(test_keyer_new_secret_length),
		cmocka_unit_test(test_key_derive_invalid_kind),
		cmocka_unit_test(test_key_derive_separation),
		cmocka_unit_test(test_key_cmp),
		cmocka_unit_test(test_kind_helpers),
		cmocka_unit_test(test_hlc_tick_monotonic),
		cmocka_unit_test(test_hlc_logical_overflow),
		cmocka_unit_test(test_hlc_recv_ahead),
		cmocka_unit_test(test_hlc_recv_too_far_ahead),
		cmocka_unit_test(test_hlc_recv_no_limit),
		cmocka_unit_test(test_hlc_random_tick_recv),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
