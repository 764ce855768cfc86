/*
 * fuzz_jwks.c: librevoke's JWKS parser (client/jwks.c: revoke__jwks_parse)
 * and the key set it builds, with strict base64url on the side.
 *
 * Input: byte 0 picks the allowed algorithms (its low 3 bits, REVOKE_ALG_*;
 * 0 means all three), the rest is the JWKS text.
 *
 * Checked on every input: the parser returns REVOKE_OK or REVOKE_E_KEYS;
 * every skipped key is reported with a reason and an index inside the
 * array; an accepted set holds 1 to 256 keys, at least one of which may
 * verify an allowed algorithm, each with a public key, algorithms within
 * its type's, and unique non-empty kids that revoke__keyset_find finds;
 * revoke__keyset_only gives a key only when exactly one may verify the
 * algorithm. Base64url: whatever revoke__b64url_decode accepts re-encodes
 * to the very same text (one encoding per byte string).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_keys.h"
#include "fuzz_util.h"
#include "jwt_int.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define ALL_ALGS (REVOKE_ALG_ES256 | REVOKE_ALG_RS256 | REVOKE_ALG_EDDSA)

static void
on_skip(void *arg, size_t index, const char *kid, const char *why)
{
	size_t *skipped = arg;

	FZ_CHECK(kid != NULL && why != NULL && why[0] != '\0',
	    "a key left out without a reason");
	FZ_CHECK(index < REVOKE__JWKS_KEYS_MAX, "skipped key %zu", index);
	FZ_CHECK(strlen(kid) < REVOKE_CLAIM_MAX, "kid of %zu bytes",
	    strlen(kid));
	(*skipped)++;
}

static void
check_keyset(const revoke__keyset *ks, unsigned allowed)
{
	static const unsigned algs[3] = { REVOKE_ALG_ES256, REVOKE_ALG_RS256,
		REVOKE_ALG_EDDSA };
	bool usable = false;

	FZ_CHECK(ks->n >= 1 && ks->n <= REVOKE__JWKS_KEYS_MAX, "%zu keys",
	    ks->n);
	for (size_t i = 0; i < ks->n; i++) {
		const revoke__jwk *k = &ks->keys[i];
		size_t kl = strnlen(k->kid, sizeof(k->kid));

		FZ_CHECK(kl < sizeof(k->kid), "kid not terminated");
		FZ_CHECK(k->pkey != NULL, "key %zu without a public key", i);
		FZ_CHECK((k->algs & ~k->type_alg) == 0,
		    "key %zu may verify %#x, its type %#x", i, k->algs,
		    k->type_alg);
		FZ_CHECK(k->type_alg == REVOKE_ALG_ES256 ||
		             k->type_alg == REVOKE_ALG_RS256 ||
		             k->type_alg == REVOKE_ALG_EDDSA,
		    "key %zu of type %#x", i, k->type_alg);
		usable |= (k->algs & allowed) != 0;
		if (kl > 0)
			FZ_CHECK(revoke__keyset_find(ks, k->kid, kl) == k,
			    "kid %s not found as itself (duplicate?)", k->kid);
	}
	FZ_CHECK(usable, "a key set with no key for %#x", allowed);
	for (int a = 0; a < 3; a++) {
		const revoke__jwk *only = revoke__keyset_only(ks, algs[a]);
		size_t n = 0;

		for (size_t i = 0; i < ks->n; i++)
			n += (ks->keys[i].algs & algs[a]) != 0;
		FZ_CHECK((only != NULL) == (n == 1),
		    "keyset_only for %#x with %zu keys", algs[a], n);
		FZ_CHECK(only == NULL || (only->algs & algs[a]) != 0,
		    "keyset_only gave a key that cannot verify %#x", algs[a]);
	}
}

/* What the strict decoder accepts has exactly one encoding: this one. */
static void
check_b64url(const uint8_t *in, size_t len)
{
	static uint8_t out[4096];
	static char again[4096 * 4 / 3 + 8];
	size_t n;

	if (len > 4096 ||
	    !revoke__b64url_decode((const char *)in, len, out, sizeof(out), &n))
		return;
	FZ_CHECK(n == len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0),
	    "%zu characters decoded to %zu bytes", len, n);
	FZ_CHECK(fzk_b64url(out, n, again) == len &&
	             memcmp(again, in, len) == 0,
	    "base64url of %zu characters accepted, not canonical", len);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in in = { data, size };
	unsigned allowed = fz_u8(&in) & ALL_ALGS;
	revoke__keyset *ks = NULL;
	size_t skipped = 0;
	revoke_status st;

	if (allowed == 0)
		allowed = ALL_ALGS;
	check_b64url(in.p, in.n);
	st = revoke__jwks_parse((const char *)in.p, in.n, allowed, on_skip,
	    &skipped, &ks);
	FZ_CHECK(st == REVOKE_OK || st == REVOKE_E_KEYS,
	    "revoke__jwks_parse gave %d", (int)st);
	if (st != REVOKE_OK) {
		FZ_CHECK(ks == NULL, "a key set on failure");
		return 0;
	}
	check_keyset(ks, allowed);
	revoke__keyset_ref(ks);
	revoke__keyset_unref(ks);
	revoke__keyset_unref(ks);
	return 0;
}
