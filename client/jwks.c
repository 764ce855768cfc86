/*
 * jwks.c: strict base64url, and the verifier's key sets: a JWKS file read
 * into immutable, reference-counted sets of OpenSSL public keys.
 *
 * What a JWKS may hold. Only keys that can verify one of the three
 * algorithms: kty "EC" with crv "P-256" (x, y of exactly 32 bytes, a point
 * on the curve), kty "RSA" (n, e, minimal big-endian; 2048 to 8192 bits;
 * smaller moduli are kept, unusable, so that their kid gives KEY_MISMATCH),
 * and kty "OKP" with crv "Ed25519" (x of 32 bytes). Symmetric keys ("oct")
 * are never loaded: nothing public may become an HMAC secret. A key's "use",
 * when present, must be "sig"; its "key_ops", when present, must hold
 * "verify"; its "alg", when present, must be its type's algorithm. Private
 * members ("d", ...) are ignored. Anything else leaves the key out with a
 * reason, and the file is refused only when no usable key remains.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/param_build.h>

#include "client_int.h"
#include "jwt_int.h"

/* ------------------------------------------------------------------------ */
/* base64url                                                                */
/* ------------------------------------------------------------------------ */

/* The 6-bit value of c in the base64url alphabet, or -1. */
static int
b64url_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '-')
		return 62;
	if (c == '_')
		return 63;
	return -1;
}

bool
revoke__b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap,
    size_t *out_len)
{
	size_t rem = len % 4, n = len / 4 * 3 + (rem ? rem - 1 : 0);
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	if (rem == 1 || n > cap)
		return false;
	for (size_t i = 0; i < len; i++) {
		int v = b64url_value((unsigned char)in[i]);

		if (v < 0)
			return false;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	/* The unused low bits of the last character must be zero. */
	if (acc != 0)
		return false;
	*out_len = o;
	return true;
}

/* ------------------------------------------------------------------------ */
/* Key sets                                                                 */
/* ------------------------------------------------------------------------ */

void
revoke__keyset_ref(revoke__keyset *ks)
{
	atomic_fetch_add_explicit(&ks->refs, 1, memory_order_relaxed);
}

static void
keyset_free(revoke__keyset *ks)
{
	for (size_t i = 0; i < ks->n; i++)
		EVP_PKEY_free(ks->keys[i].pkey);
	free(ks);
}

void
revoke__keyset_unref(revoke__keyset *ks)
{
	if (ks == NULL)
		return;
	if (atomic_fetch_sub_explicit(&ks->refs, 1, memory_order_acq_rel) == 1)
		keyset_free(ks);
}

const revoke__jwk *
revoke__keyset_find(const revoke__keyset *ks, const char *kid, size_t kid_len)
{
	if (kid_len == 0 || kid_len >= REVOKE_CLAIM_MAX)
		return NULL;
	for (size_t i = 0; i < ks->n; i++) {
		const char *k = ks->keys[i].kid;

		if (strlen(k) == kid_len && memcmp(k, kid, kid_len) == 0)
			return &ks->keys[i];
	}
	return NULL;
}

const revoke__jwk *
revoke__keyset_only(const revoke__keyset *ks, unsigned alg)
{
	const revoke__jwk *found = NULL;

	for (size_t i = 0; i < ks->n; i++) {
		if ((ks->keys[i].algs & alg) == 0)
			continue;
		if (found != NULL)
			return NULL; /* ambiguous */
		found = &ks->keys[i];
	}
	return found;
}

/* ------------------------------------------------------------------------ */
/* One JWK                                                                  */
/* ------------------------------------------------------------------------ */

/* The longest base64url member a JWK may have (an 8192-bit modulus). */
#define JWK_FIELD_MAX (REVOKE__RSA_MAX_BITS / 8)

unsigned
revoke__alg_bit(const char *name)
{
	if (strcmp(name, "ES256") == 0)
		return REVOKE_ALG_ES256;
	if (strcmp(name, "RS256") == 0)
		return REVOKE_ALG_RS256;
	if (strcmp(name, "EdDSA") == 0)
		return REVOKE_ALG_EDDSA;
	return 0;
}

/* The string member name of o, or NULL when absent or not a string. */
static const char *
jwk_string(json_t *o, const char *name)
{
	return json_string_value(json_object_get(o, name));
}

/*
 * The base64url member name of o decoded into out (capacity cap). NULL
 * when that works, or why not.
 */
static const char *
jwk_bytes(json_t *o, const char *name, uint8_t *out, size_t cap, size_t *len)
{
	json_t *m = json_object_get(o, name);

	if (m == NULL)
		return "a required member is missing";
	if (!json_is_string(m))
		return "a key member is not a string";
	if (!revoke__b64url_decode(json_string_value(m), json_string_length(m),
	        out, cap, len))
		return "a key member is not canonical base64url or too long";
	return NULL;
}

/* True when OpenSSL says pkey's public part is sound (EC: on the curve). */
static bool
public_check(EVP_PKEY *pkey)
{
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	bool ok = ctx != NULL && EVP_PKEY_public_check(ctx) == 1;

	EVP_PKEY_CTX_free(ctx);
	return ok;
}

/* A public key of type name ("EC", "RSA") from params, or NULL. */
static EVP_PKEY *
pkey_from_params(const char *name, OSSL_PARAM_BLD *bld)
{
	OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, name, NULL);
	EVP_PKEY *pkey = NULL;

	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
		pkey = NULL;
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	return pkey;
}

/* An EC P-256 key from its JWK into k; NULL, or why not. */
static const char *
jwk_ec(json_t *o, revoke__jwk *k)
{
	uint8_t point[65], buf[JWK_FIELD_MAX];
	size_t xl, yl;
	const char *crv = jwk_string(o, "crv"), *why;
	OSSL_PARAM_BLD *bld;

	if (crv == NULL || strcmp(crv, "P-256") != 0)
		return "EC crv is not P-256";
	if ((why = jwk_bytes(o, "x", buf, sizeof(buf), &xl)) != NULL)
		return why;
	if (xl != 32)
		return "EC x and y must be 32 bytes each";
	memcpy(point + 1, buf, 32);
	if ((why = jwk_bytes(o, "y", buf, sizeof(buf), &yl)) != NULL)
		return why;
	if (yl != 32)
		return "EC x and y must be 32 bytes each";
	memcpy(point + 33, buf, 32);
	point[0] = 0x04; /* uncompressed */
	if ((bld = OSSL_PARAM_BLD_new()) == NULL)
		return "out of memory";
	if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
	        "prime256v1", 0) == 1 &&
	    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
	        point, sizeof(point)) == 1)
		k->pkey = pkey_from_params("EC", bld);
	OSSL_PARAM_BLD_free(bld);
	if (k->pkey == NULL || !public_check(k->pkey))
		return "EC point is not on P-256";
	k->type_alg = k->algs = REVOKE_ALG_ES256;
	return NULL;
}

/* A big-endian unsigned integer member as a BIGNUM; NULL, or why not. */
static const char *
jwk_bn(json_t *o, const char *name, size_t max, BIGNUM **out)
{
	uint8_t buf[JWK_FIELD_MAX];
	size_t len;
	const char *why = jwk_bytes(o, name, buf, sizeof(buf), &len);

	if (why != NULL)
		return why;
	if (len == 0 || buf[0] == 0)
		return "RSA n or e is empty or not minimal";
	if (len > max)
		return "RSA n or e is too long";
	if ((*out = BN_bin2bn(buf, (int)len, NULL)) == NULL)
		return "out of memory";
	return NULL;
}

/* An RSA key from its JWK into k; NULL, or why not. */
static const char *
jwk_rsa(json_t *o, revoke__jwk *k)
{
	BIGNUM *n = NULL, *e = NULL;
	OSSL_PARAM_BLD *bld = NULL;
	const char *why;
	int bits;

	if ((why = jwk_bn(o, "n", JWK_FIELD_MAX, &n)) != NULL ||
	    (why = jwk_bn(o, "e", 8, &e)) != NULL)
		goto out;
	why = "out of memory";
	if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
	    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1)
		goto out;
	why = "RSA key is not valid";
	if ((k->pkey = pkey_from_params("RSA", bld)) == NULL)
		goto out;
	bits = EVP_PKEY_get_bits(k->pkey);
	k->type_alg = REVOKE_ALG_RS256;
	if (bits < REVOKE__RSA_MIN_BITS) {
		why = NULL; /* kept, unusable: its kid gives KEY_MISMATCH */
		goto out;
	}
	if (!BN_is_odd(n) || !BN_is_odd(e) || BN_is_one(e) ||
	    !public_check(k->pkey))
		goto out;
	k->algs = REVOKE_ALG_RS256;
	why = NULL;
out:
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return why;
}

/* An OKP Ed25519 key from its JWK into k; NULL, or why not. */
static const char *
jwk_okp(json_t *o, revoke__jwk *k)
{
	uint8_t x[JWK_FIELD_MAX];
	size_t len;
	const char *crv = jwk_string(o, "crv"), *why;

	if (crv == NULL || strcmp(crv, "Ed25519") != 0)
		return "OKP crv is not Ed25519";
	if ((why = jwk_bytes(o, "x", x, sizeof(x), &len)) != NULL)
		return why;
	if (len != 32)
		return "Ed25519 x must be 32 bytes";
	k->pkey = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, x, len);
	if (k->pkey == NULL || !public_check(k->pkey))
		return "Ed25519 key is not valid";
	k->type_alg = k->algs = REVOKE_ALG_EDDSA;
	return NULL;
}

/* NULL when "use" and "key_ops" allow verifying signatures, or why not. */
static const char *
jwk_purpose(json_t *o)
{
	json_t *use = json_object_get(o, "use"), *ops, *op;
	size_t i;

	if (use != NULL && (!json_is_string(use) ||
	                       strcmp(json_string_value(use), "sig") != 0))
		return "use is not \"sig\"";
	if ((ops = json_object_get(o, "key_ops")) == NULL)
		return NULL;
	if (!json_is_array(ops))
		return "key_ops is not an array";
	json_array_foreach(ops, i, op)
	{
		if (json_is_string(op) &&
		    strcmp(json_string_value(op), "verify") == 0)
			return NULL;
	}
	return "key_ops does not hold \"verify\"";
}

/* The kid of o into k (may be absent); NULL, or why not. */
static const char *
jwk_kid(json_t *o, revoke__jwk *k)
{
	json_t *kid = json_object_get(o, "kid");

	if (kid == NULL)
		return NULL;
	if (!json_is_string(kid))
		return "kid is not a string";
	if (json_string_length(kid) >= sizeof(k->kid))
		return "kid is too long";
	if (json_string_length(kid) == 0)
		return "kid is empty";
	memcpy(k->kid, json_string_value(kid), json_string_length(kid) + 1);
	return NULL;
}

/* The type and key of o into k; NULL, or why not. */
static const char *
jwk_key(json_t *o, revoke__jwk *k)
{
	const char *kty = jwk_string(o, "kty");

	if (kty == NULL)
		return "kty is missing";
	if (strcmp(kty, "EC") == 0)
		return jwk_ec(o, k);
	if (strcmp(kty, "RSA") == 0)
		return jwk_rsa(o, k);
	if (strcmp(kty, "OKP") == 0)
		return jwk_okp(o, k);
	if (strcmp(kty, "oct") == 0)
		return "symmetric keys are never used";
	return "kty is not supported";
}

/* One JWK into k (zeroed by the caller); NULL, or why it is left out. */
static const char *
jwk_read(json_t *o, revoke__jwk *k)
{
	json_t *alg;
	const char *why;

	if (!json_is_object(o))
		return "not a JSON object";
	if ((why = jwk_kid(o, k)) != NULL || (why = jwk_purpose(o)) != NULL)
		return why;
	if ((why = jwk_key(o, k)) != NULL)
		return why;
	if ((alg = json_object_get(o, "alg")) == NULL)
		return NULL;
	if (!json_is_string(alg) ||
	    revoke__alg_bit(json_string_value(alg)) != k->type_alg)
		return "alg is not the key type's algorithm";
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* A whole JWKS                                                             */
/* ------------------------------------------------------------------------ */

/* Report a left-out key, and free what it had built. */
static void
jwk_skip(revoke__jwk *k, size_t i, const char *why, char (*first)[300],
    revoke__jwks_skip_fn skip, void *arg)
{
	if ((*first)[0] == '\0')
		snprintf(*first, sizeof(*first), " (key %zu%s%s%s: %s)", i,
		    k->kid[0] ? ", kid \"" : "", k->kid, k->kid[0] ? "\"" : "",
		    why);
	if (skip != NULL)
		skip(arg, i, k->kid, why);
	EVP_PKEY_free(k->pkey);
	memset(k, 0, sizeof(*k));
}

/* Fill ks from the keys array; how many keys may verify one of allowed. */
static size_t
jwks_fill(revoke__keyset *ks, json_t *keys, unsigned allowed,
    char (*first)[300], revoke__jwks_skip_fn skip, void *arg)
{
	size_t i, usable = 0;
	json_t *o;

	json_array_foreach(keys, i, o)
	{
		revoke__jwk *k = &ks->keys[ks->n];
		const char *why = jwk_read(o, k);

		if (why == NULL &&
		    revoke__keyset_find(ks, k->kid, strlen(k->kid)) != NULL)
			why = "duplicate kid";
		if (why != NULL) {
			jwk_skip(k, i, why, first, skip, arg);
			continue;
		}
		if (k->algs & allowed)
			usable++;
		ks->n++;
	}
	return usable;
}

revoke_status
revoke__jwks_parse(const char *text, size_t len, unsigned allowed,
    revoke__jwks_skip_fn skip, void *arg, revoke__keyset **out)
{
	json_t *doc, *keys;
	revoke__keyset *ks = NULL;
	revoke_status st = REVOKE_E_KEYS;
	char first[300] = ""; /* why the first left-out key was */
	size_t usable;

	doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
	keys = json_object_get(doc, "keys");
	if (!json_is_object(doc) || !json_is_array(keys)) {
		revoke__errorf("not a JWKS (a JSON object with a \"keys\" "
		               "array)");
		goto out;
	}
	if (json_array_size(keys) > REVOKE__JWKS_KEYS_MAX) {
		revoke__errorf("more than %d keys", REVOKE__JWKS_KEYS_MAX);
		goto out;
	}
	ks = calloc(1,
	    sizeof(*ks) + json_array_size(keys) * sizeof(ks->keys[0]));
	if (ks == NULL) {
		st = REVOKE_E_NOMEM;
		goto out;
	}
	atomic_init(&ks->refs, 1);
	ERR_set_mark();
	usable = jwks_fill(ks, keys, allowed, &first, skip, arg);
	ERR_pop_to_mark();
	if (usable == 0) {
		revoke__errorf("no key usable with the allowed algorithms%s",
		    first);
		keyset_free(ks);
		goto out;
	}
	*out = ks;
	st = REVOKE_OK;
out:
	json_decref(doc);
	return st;
}

/* Read the whole regular file at path (at most max bytes) into *buf. */
static revoke_status
read_small_file(const char *path, size_t max, char **buf, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	char *b = NULL;
	size_t got = 0;

	if (fd < 0) {
		revoke__errorf("%s: %s", path, strerror(errno));
		return REVOKE_E_KEYS;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		revoke__errorf("%s: not a regular file", path);
		goto fail;
	}
	if ((uint64_t)st.st_size > max) {
		revoke__errorf("%s: over %zu bytes", path, max);
		goto fail;
	}
	/* One byte more than the size: a file growing meanwhile is seen. */
	if ((b = malloc((size_t)st.st_size + 1)) == NULL) {
		close(fd);
		return REVOKE_E_NOMEM;
	}
	while (got <= (size_t)st.st_size) {
		ssize_t r = read(fd, b + got, (size_t)st.st_size + 1 - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			revoke__errorf("%s: %s", path, strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	if (got > (size_t)st.st_size) { /* try at the next reload */
		revoke__errorf("%s: grew while it was read", path);
		goto fail;
	}
	close(fd);
	*buf = b;
	*len = got;
	return REVOKE_OK;
fail:
	free(b);
	close(fd);
	return REVOKE_E_KEYS;
}

revoke_status
revoke__jwks_load(const char *path, unsigned allowed, revoke__jwks_skip_fn skip,
    void *arg, revoke__keyset **out)
{
	char *text;
	size_t len;
	revoke_status st;

	char why[512];

	if ((st = read_small_file(path, REVOKE__JWKS_FILE_MAX, &text, &len)) !=
	    REVOKE_OK)
		return st;
	st = revoke__jwks_parse(text, len, allowed, skip, arg, out);
	free(text);
	if (st == REVOKE_E_KEYS) {
		snprintf(why, sizeof(why), "%s", revoke_last_error());
		revoke__errorf("%s: %s", path, why);
	}
	return st;
}
