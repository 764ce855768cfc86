/*
 * jwt_int.h: the internals of librevoke's JWT verifier shared by jwt.c,
 * jwks.c and the tests: strict base64url, the key set read from a JWKS file,
 * and a hook to drive the verifier's reload clock from a test.
 *
 * Theory of the key set. A key set is immutable once built: the keys, their
 * kids and what each may verify never change, and an EVP_PKEY is safe for
 * many threads to verify with at once (OpenSSL 3). The verifier holds one
 * reference to its current set; a verification takes a reference under the
 * verifier's mutex, uses the set with no lock held, and drops it. A reload
 * builds a whole new set outside the lock and swaps the pointer under it;
 * the old set goes when its last user drops it. So a reader never sees a
 * half-built set, and a reload never waits for a signature check.
 */
#ifndef REVOKE_JWT_INT_H
#define REVOKE_JWT_INT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "revoke.h"

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */
/* ------------------------------------------------------------------------ */

/* Largest JWKS file, in bytes. */
#define REVOKE__JWKS_FILE_MAX (1024 * 1024)

/* Most entries in a JWKS file's "keys" array. */
#define REVOKE__JWKS_KEYS_MAX 256

/* Smallest RSA modulus that may verify RS256, in bits. */
#define REVOKE__RSA_MIN_BITS 2048

/* Largest RSA modulus a JWKS may hold (bounds a verification's cost). */
#define REVOKE__RSA_MAX_BITS 8192

/* ------------------------------------------------------------------------ */
/* base64url                                                                */
/* ------------------------------------------------------------------------ */

/*
 * Decode len characters of base64url without padding into out (capacity
 * cap), the decoded length in *out_len. Strict: only [A-Za-z0-9_-]; no '=',
 * '+', '/' or whitespace; a length of 1 mod 4 is refused, and so are unused
 * trailing bits that are not zero (every byte string has exactly one
 * accepted encoding). False on any of these or when cap is too small; out
 * may then hold garbage.
 */
bool revoke__b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
    size_t *out_len);

/* ------------------------------------------------------------------------ */
/* Algorithms                                                               */
/* ------------------------------------------------------------------------ */

/* The REVOKE_ALG_* bit of a JWS alg name ("ES256", "RS256", "EdDSA"), or 0. */
unsigned revoke__alg_bit(const char *name);

/* ------------------------------------------------------------------------ */
/* Key sets                                                                 */
/* ------------------------------------------------------------------------ */

/* One public key of a JWKS. */
typedef struct revoke__jwk {
	char kid[REVOKE_CLAIM_MAX]; /* "" when the JWK has none */
	/*
	 * The algorithms (REVOKE_ALG_*) this key may verify: its type's
	 * algorithm, narrowed by the JWK's "alg" when present. Zero for a
	 * key kept only so that its kid is known (an RSA key under 2048
	 * bits): a token naming it gets KEY_MISMATCH, not UNKNOWN_KEY.
	 */
	unsigned algs;
	/* The algorithm its type would serve (what KEY_MISMATCH compares). */
	unsigned type_alg;
	EVP_PKEY *pkey; /* owned */
} revoke__jwk;

/* An immutable set of keys, shared by reference count. */
typedef struct revoke__keyset {
	atomic_uint refs;
	size_t n;
	revoke__jwk keys[]; /* n of them; kids are unique when not "" */
} revoke__keyset;

/*
 * Told, while a JWKS loads, about every key left out: its index in "keys",
 * its kid ("" when none or unreadable) and why. The strings live until the
 * call returns.
 */
typedef void (*revoke__jwks_skip_fn)(void *arg, size_t index, const char *kid,
    const char *why);

/*
 * Build a key set from the text of a JWKS ({"keys": [...]}). Keys that
 * cannot be used (unknown kty or crv, bad or missing fields, a point off
 * the curve, "use" other than "sig", "key_ops" without "verify", an "alg"
 * that is not the key type's, a duplicate kid) are left out and reported
 * to skip (NULL: not reported). REVOKE_E_KEYS when the text is not such a
 * document, holds more than REVOKE__JWKS_KEYS_MAX keys, or keeps no key
 * that may verify one of allowed (REVOKE_ALG_* bits); REVOKE_E_NOMEM. On
 * success *out holds one reference.
 */
revoke_status revoke__jwks_parse(const char *text, size_t len, unsigned allowed,
    revoke__jwks_skip_fn skip, void *arg, revoke__keyset **out);

/*
 * revoke__jwks_parse of the file at path, which must be a regular file of
 * at most REVOKE__JWKS_FILE_MAX bytes (REVOKE_E_KEYS otherwise, or when it
 * cannot be read).
 */
revoke_status revoke__jwks_load(const char *path, unsigned allowed,
    revoke__jwks_skip_fn skip, void *arg, revoke__keyset **out);

/* Take one more reference to ks. */
void revoke__keyset_ref(revoke__keyset *ks);

/* Drop one reference; the last frees the set. NULL is allowed. */
void revoke__keyset_unref(revoke__keyset *ks);

/* The key named kid (kid_len bytes), or NULL. */
const revoke__jwk *revoke__keyset_find(const revoke__keyset *ks,
    const char *kid, size_t kid_len);

/*
 * For a token without kid: the one key of ks that may verify alg, or NULL
 * when there is none or more than one (an ambiguous choice is refused).
 */
const revoke__jwk *revoke__keyset_only(const revoke__keyset *ks, unsigned alg);

/* ------------------------------------------------------------------------ */
/* Test hooks                                                               */
/* ------------------------------------------------------------------------ */

/* A monotonic clock in milliseconds. */
typedef int64_t (*revoke__clock_fn)(void *arg);

/*
 * Replace the clock that spaces JWKS reloads (default CLOCK_MONOTONIC), so
 * that a test can step over the cooldown without sleeping. Call before the
 * verifier is shared; the last load is taken to have happened at the new
 * clock's current time.
 */
void revoke__verifier_set_clock(revoke_verifier *v, revoke__clock_fn fn,
    void *arg);

/* How many times the verifier read its JWKS file (the first load counts). */
uint64_t revoke__verifier_loads(revoke_verifier *v);

#endif /* REVOKE_JWT_INT_H */
