/*
 * jwt_mint.c: keys, JWKS files and tokens for the tests, made with OpenSSL
 * and nothing of librevoke's, so that the verifier is checked against an
 * independent signer. Every failure aborts: a test cannot go on without
 * its fixtures.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "jwt_mint.h"

struct mint_key {
	unsigned alg;
	char *kid;
	EVP_PKEY *pkey;
};

static void
mint_die(const char *what)
{
	fprintf(stderr, "jwt_mint: %s failed\n", what);
	abort();
}

static void *
mint_check(void *p, const char *what)
{
	if (p == NULL)
		mint_die(what);
	return p;
}

char *
mint_b64url(const void *data, size_t len)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                          "abcdefghijklmnopqrstuvwxyz0123456789-_";
	const uint8_t *d = data;
	char *out = mint_check(malloc(len / 3 * 4 + 4), "malloc");
	size_t o = 0, i;

	for (i = 0; i + 3 <= len; i += 3) {
		uint32_t v =
		    (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];

		out[o++] = abc[v >> 18];
		out[o++] = abc[(v >> 12) & 63];
		out[o++] = abc[(v >> 6) & 63];
		out[o++] = abc[v & 63];
	}
	if (len - i == 1) {
		out[o++] = abc[d[i] >> 2];
		out[o++] = abc[(d[i] & 3) << 4];
	} else if (len - i == 2) {
		uint32_t v = (uint32_t)d[i] << 8 | d[i + 1];

		out[o++] = abc[v >> 10];
		out[o++] = abc[(v >> 4) & 63];
		out[o++] = abc[(v & 15) << 2];
	}
	out[o] = '\0';
	return out;
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                     */
/* ------------------------------------------------------------------------ */

mint_key *
mint_key_new(unsigned alg, const char *kid)
{
	mint_key *k = mint_check(calloc(1, sizeof(*k)), "calloc");

	k->alg = alg;
	k->kid = mint_check(strdup(kid), "strdup");
	switch (alg) {
	case REVOKE_ALG_ES256:
		k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
		break;
	case REVOKE_ALG_RS256:
		k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
		break;
	case REVOKE_ALG_EDDSA:
		k->pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
		break;
	default:
		mint_die("mint_key_new: unknown alg");
	}
	mint_check(k->pkey, "keygen");
	return k;
}

void
mint_key_free(mint_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k->kid);
	free(k);
}

/* The base64url of the big-endian BIGNUM parameter name of k. */
static char *
mint_bn_b64(const mint_key *k, const char *name)
{
	BIGNUM *bn = NULL;
	uint8_t buf[1024];
	int n;
	char *out;

	if (EVP_PKEY_get_bn_param(k->pkey, name, &bn) != 1)
		mint_die("EVP_PKEY_get_bn_param");
	n = BN_bn2bin(bn, buf);
	BN_free(bn);
	out = mint_b64url(buf, (size_t)n);
	return out;
}

/* The JWK members of k's public key into o. */
static void
mint_jwk_members(const mint_key *k, json_t *o)
{
	uint8_t buf[133];
	size_t len = 0;
	char *x, *y;

	switch (k->alg) {
	case REVOKE_ALG_ES256:
		if (EVP_PKEY_get_octet_string_param(k->pkey,
		        OSSL_PKEY_PARAM_PUB_KEY, buf, sizeof(buf), &len) != 1 ||
		    len != 65)
			mint_die("EC public point");
		x = mint_b64url(buf + 1, 32);
		y = mint_b64url(buf + 33, 32);
		json_object_set_new(o, "kty", json_string("EC"));
		json_object_set_new(o, "crv", json_string("P-256"));
		json_object_set_new(o, "x", json_string(x));
		json_object_set_new(o, "y", json_string(y));
		json_object_set_new(o, "alg", json_string("ES256"));
		break;
	case REVOKE_ALG_RS256:
		x = mint_bn_b64(k, OSSL_PKEY_PARAM_RSA_N);
		y = mint_bn_b64(k, OSSL_PKEY_PARAM_RSA_E);
		json_object_set_new(o, "kty", json_string("RSA"));
		json_object_set_new(o, "n", json_string(x));
		json_object_set_new(o, "e", json_string(y));
		json_object_set_new(o, "alg", json_string("RS256"));
		break;
	default:
		len = 32;
		if (EVP_PKEY_get_raw_public_key(k->pkey, buf, &len) != 1)
			mint_die("Ed25519 public key");
		x = mint_b64url(buf, len);
		y = NULL;
		json_object_set_new(o, "kty", json_string("OKP"));
		json_object_set_new(o, "crv", json_string("Ed25519"));
		json_object_set_new(o, "x", json_string(x));
		json_object_set_new(o, "alg", json_string("EdDSA"));
		break;
	}
	free(x);
	free(y);
}

/* k's public JWK as a JSON object. */
static json_t *
mint_jwk_object(const mint_key *k)
{
	json_t *o = mint_check(json_object(), "json_object");

	json_object_set_new(o, "kid", json_string(k->kid));
	json_object_set_new(o, "use", json_string("sig"));
	mint_jwk_members(k, o);
	return o;
}

char *
mint_key_jwk(const mint_key *k)
{
	json_t *o = mint_jwk_object(k);
	char *s = mint_check(json_dumps(o, JSON_COMPACT), "json_dumps");

	json_decref(o);
	return s;
}

char *
mint_key_pem(const mint_key *k)
{
	BIO *bio = mint_check(BIO_new(BIO_s_mem()), "BIO_new");
	char *data, *out;
	long len;

	if (PEM_write_bio_PUBKEY(bio, k->pkey) != 1)
		mint_die("PEM_write_bio_PUBKEY");
	len = BIO_get_mem_data(bio, &data);
	out = mint_check(malloc((size_t)len + 1), "malloc");
	memcpy(out, data, (size_t)len);
	out[len] = '\0';
	BIO_free(bio);
	return out;
}

void
mint_jwks_write(const char *path, mint_key *const *keys, size_t n)
{
	json_t *doc = json_object(), *arr = json_array();
	char *tmp;

	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, mint_jwk_object(keys[i]));
	json_object_set_new(doc, "keys", arr);
	/* Written aside and renamed: a reader never sees half a file. */
	if (asprintf(&tmp, "%s.tmp", path) < 0)
		mint_die("asprintf");
	if (json_dump_file(doc, tmp, JSON_INDENT(2)) != 0 ||
	    rename(tmp, path) != 0)
		mint_die("mint_jwks_write");
	free(tmp);
	json_decref(doc);
}

/* ------------------------------------------------------------------------ */
/* Tokens                                                                   */
/* ------------------------------------------------------------------------ */

/* b64(header) "." b64(payload), malloc'd. */
static char *
mint_signing_input(const char *header_json, const char *payload_json)
{
	char *h = mint_b64url(header_json, strlen(header_json));
	char *p = mint_b64url(payload_json, strlen(payload_json));
	char *out;

	if (asprintf(&out, "%s.%s", h, p) < 0)
		mint_die("asprintf");
	free(h);
	free(p);
	return out;
}

/* input "." b64(sig), malloc'd; input is freed. */
static char *
mint_join(char *input, const uint8_t *sig, size_t sig_len)
{
	char *s = mint_b64url(sig, sig_len);
	char *out;

	if (asprintf(&out, "%s.%s", input, s) < 0)
		mint_die("asprintf");
	free(s);
	free(input);
	return out;
}

/* A DER ECDSA signature as JWS r || s (64 bytes) into out. */
static void
mint_der_to_raw(const uint8_t *der, size_t len, uint8_t out[64])
{
	const unsigned char *p = der;
	ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)len);
	const BIGNUM *r, *s;

	if (es == NULL)
		mint_die("d2i_ECDSA_SIG");
	ECDSA_SIG_get0(es, &r, &s);
	if (BN_bn2binpad(r, out, 32) != 32 ||
	    BN_bn2binpad(s, out + 32, 32) != 32)
		mint_die("BN_bn2binpad");
	ECDSA_SIG_free(es);
}

/* k's signature of msg, JWS form, into sig (capacity 1024). */
static size_t
mint_sign(const mint_key *k, const char *msg, uint8_t *sig)
{
	EVP_MD_CTX *ctx = mint_check(EVP_MD_CTX_new(), "EVP_MD_CTX_new");
	const EVP_MD *md = k->alg == REVOKE_ALG_EDDSA ? NULL : EVP_sha256();
	uint8_t der[1024];
	size_t len = sizeof(der);

	if (EVP_DigestSignInit(ctx, NULL, md, NULL, k->pkey) != 1 ||
	    EVP_DigestSign(ctx, der, &len, (const uint8_t *)msg, strlen(msg)) !=
	        1)
		mint_die("EVP_DigestSign");
	EVP_MD_CTX_free(ctx);
	if (k->alg == REVOKE_ALG_ES256) {
		mint_der_to_raw(der, len, sig);
		return 64;
	}
	memcpy(sig, der, len);
	return len;
}

static const char *
mint_alg_name(unsigned alg)
{
	return alg == REVOKE_ALG_ES256   ? "ES256"
	       : alg == REVOKE_ALG_RS256 ? "RS256"
	                                 : "EdDSA";
}

char *
mint_token(const mint_key *k, const char *header_json, const char *payload_json)
{
	char *header = NULL, *input;
	uint8_t sig[1024];
	size_t len;

	if (header_json == NULL) {
		if (asprintf(&header,
		        "{\"alg\":\"%s\",\"kid\":\"%s\","
		        "\"typ\":\"JWT\"}",
		        mint_alg_name(k->alg), k->kid) < 0)
			mint_die("asprintf");
		header_json = header;
	}
	input = mint_signing_input(header_json, payload_json);
	free(header);
	len = mint_sign(k, input, sig);
	return mint_join(input, sig, len);
}

char *
mint_token_none(const char *payload_json)
{
	char *input = mint_signing_input("{\"alg\":\"none\"}", payload_json);

	return mint_join(input, NULL, 0);
}

char *
mint_token_hs256_confusion(const mint_key *k, const char *payload_json)
{
	char *pem = mint_key_pem(k), *header, *input;
	uint8_t mac[32];
	size_t len = 0;

	if (asprintf(&header,
	        "{\"alg\":\"HS256\",\"kid\":\"%s\",\"typ\":\"JWT\"}",
	        k->kid) < 0)
		mint_die("asprintf");
	input = mint_signing_input(header, payload_json);
	if (EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, pem, strlen(pem),
	        (const uint8_t *)input, strlen(input), mac, sizeof(mac),
	        &len) == NULL)
		mint_die("EVP_Q_mac");
	free(pem);
	free(header);
	return mint_join(input, mac, len);
}
