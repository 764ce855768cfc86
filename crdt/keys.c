/*
 * keys.c: kinds and pseudonymous keys.
 */
#include "crdt/crdt_int.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

struct crdt_keyer {
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx; /* keyed once; re-initialised per derivation */
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

revokd_err
crdt__keyer_new_any(const uint8_t *secret, size_t len, crdt_keyer **out)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
		    (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	crdt_keyer *k;

	if ((k = calloc(1, sizeof(*k))) == NULL)
		return REVOKD_ENOMEM;
	if ((k->mac = EVP_MAC_fetch(NULL, "HMAC", NULL)) == NULL ||
	    (k->ctx = EVP_MAC_CTX_new(k->mac)) == NULL ||
	    !EVP_MAC_init(k->ctx, secret, len, params)) {
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
	EVP_MAC_CTX_free(k->ctx); /* cleanses the key schedule */
	EVP_MAC_free(k->mac);
	free(k);
}

revokd_err
crdt__keyer_mac(crdt_keyer *k, const void *a, size_t a_len, const void *b,
    size_t b_len, uint8_t out[CRDT__MAC_LEN])
{
	size_t mac_len;

	/* A NULL key re-initialises with the key already set (no rekeying). */
	if (!EVP_MAC_init(k->ctx, NULL, 0, NULL) ||
	    !EVP_MAC_update(k->ctx, a, a_len) ||
	    !EVP_MAC_update(k->ctx, b, b_len) ||
	    !EVP_MAC_final(k->ctx, out, &mac_len, CRDT__MAC_LEN))
		return REVOKD_ECRYPTO;
	return REVOKD_OK;
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
