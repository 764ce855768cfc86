/*
 * keys.c: kinds and pseudonymous keys.
 *
 * HMAC-SHA-256 (RFC 2104) is computed from SHA-256 states that already
 * absorbed the padded key, copied per derivation: a key derivation is then
 * two SHA-256 block compressions. OpenSSL's EVP_MAC does the same work
 * behind provider dispatch and context duplication that allocates, which
 * cost 2.2x as much per derivation here (225 vs 103 ns measured), and every
 * check derives one to three keys. The low-level SHA-256 calls are
 * deprecated in OpenSSL 3.0 but remain its fastest path to the SHA-NI code;
 * RFC 4231's vectors pin the result (tests/test_crdt_keys.c).
 */
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init and friends, see above */

#include "crdt/crdt_int.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdlib.h>
#include <string.h>

/* SHA-256's block length: HMAC pads its key to this. */
#define CRDT__BLOCK_LEN 64

struct crdt_keyer {
	SHA256_CTX inner; /* after (key ^ ipad) */
	SHA256_CTX outer; /* after (key ^ opad) */
};

static const char *const crdt__kind_names[] = {
	[CRDT_KIND_JTI] = "jti",
	[CRDT_KIND_SID] = "sid",
	[CRDT_KIND_SUB] = "sub",
	[CRDT_KIND_CLIENT] = "client",
	[CRDT_KIND_TENANT] = "tenant",
};

bool
crdt_kind_valid(int kind)
{
	return kind >= CRDT_KIND_JTI && kind <= CRDT_KIND_TENANT;
}

bool
crdt_kind_is_token(crdt_kind kind)
{
	return kind == CRDT_KIND_JTI || kind == CRDT_KIND_SID;
}

const char *
crdt_kind_name(crdt_kind kind)
{
	return crdt_kind_valid(kind) ? crdt__kind_names[kind] : "?";
}

crdt_kind
crdt_kind_from_name(const char *name)
{
	for (int k = CRDT_KIND_JTI; k <= CRDT_KIND_TENANT; k++)
		if (strcmp(name, crdt__kind_names[k]) == 0)
			return (crdt_kind)k;
	return 0;
}

int
crdt_key_cmp(const crdt_key *a, const crdt_key *b)
{
	return memcmp(a->b, b->b, CRDT_KEY_LEN);
}

revokd_err
crdt_keyer_new(const uint8_t *secret, size_t len, crdt_keyer **out)
{
	if (len != CRDT_SECRET_LEN)
		return REVOKD_EINVAL;
	return crdt__keyer_new_any(secret, len, out);
}

/* ctx after absorbing the padded key xor'd with pad. */
static bool
crdt__keyer_pad(SHA256_CTX *ctx, const uint8_t *key, size_t len, uint8_t pad)
{
	uint8_t block[CRDT__BLOCK_LEN];
	bool ok;

	memset(block, pad, sizeof(block));
	for (size_t i = 0; i < len; i++)
		block[i] ^= key[i];
	ok = SHA256_Init(ctx) && SHA256_Update(ctx, block, sizeof(block));
	OPENSSL_cleanse(block, sizeof(block));
	return ok;
}

revokd_err
crdt__keyer_new_any(const uint8_t *secret, size_t len, crdt_keyer **out)
{
	uint8_t hashed[SHA256_DIGEST_LENGTH];
	crdt_keyer *k;
	bool ok;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return REVOKD_ENOMEM;
	/* A key longer than a block is replaced by its hash (RFC 2104). */
	if (len > CRDT__BLOCK_LEN) {
		SHA256(secret, len, hashed);
		secret = hashed;
		len = sizeof(hashed);
	}
	ok = crdt__keyer_pad(&k->inner, secret, len, 0x36) &&
	     crdt__keyer_pad(&k->outer, secret, len, 0x5c);
	OPENSSL_cleanse(hashed, sizeof(hashed));
	if (!ok) {
		crdt_keyer_free(k);
		return REVOKD_ECRYPTO;
	}
	*out = k;
	return REVOKD_OK;
}

void
crdt_keyer_free(crdt_keyer *k)
{
	if (k == NULL)
		return;
	OPENSSL_cleanse(k, sizeof(*k)); /* the padded key's states */
	free(k);
}

revokd_err
crdt__keyer_mac(crdt_keyer *k, const void *a, size_t a_len, const void *b,
    size_t b_len, uint8_t out[CRDT__MAC_LEN])
{
	uint8_t inner[SHA256_DIGEST_LENGTH];
	SHA256_CTX ctx = k->inner;
	bool ok;

	ok = SHA256_Update(&ctx, a, a_len) && SHA256_Update(&ctx, b, b_len) &&
	     SHA256_Final(inner, &ctx);
	ctx = k->outer;
	ok = ok && SHA256_Update(&ctx, inner, sizeof(inner)) &&
	     SHA256_Final(out, &ctx);
	OPENSSL_cleanse(&ctx, sizeof(ctx));
	OPENSSL_cleanse(inner, sizeof(inner));
	return ok ? REVOKD_OK : REVOKD_ECRYPTO;
}

revokd_err
crdt_key_derive(crdt_keyer *k, crdt_kind kind, const void *id, size_t id_len,
    crdt_key *out)
{
	uint8_t kind_byte = (uint8_t)kind;
	uint8_t mac[CRDT__MAC_LEN];
	revokd_err err;

	if (!crdt_kind_valid(kind))
		return REVOKD_EINVAL;
	err = crdt__keyer_mac(k, &kind_byte, 1, id, id_len, mac);
	if (err == REVOKD_OK)
		memcpy(out->b, mac, CRDT_KEY_LEN);
	OPENSSL_cleanse(mac, sizeof(mac));
	return err;
}

revokd_err
crdt__secret_fingerprint(crdt_keyer *k, uint8_t out[CRDT__SECRET_FP_LEN])
{
	/* Key derivations start with a kind byte (1 to 5): never this. */
	static const char text[] = "revokd cluster secret fingerprint";
	uint8_t mac[CRDT__MAC_LEN];
	revokd_err err;

	if ((err = crdt__keyer_mac(k, text, sizeof(text) - 1, "", 0, mac)) ==
	    REVOKD_OK)
		memcpy(out, mac, CRDT__SECRET_FP_LEN);
	return err;
}
