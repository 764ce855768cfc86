/*
 * fuzz_keys.h: the fixed key pairs of the JWT fuzz target and of the seeds
 * make_seeds.c writes for it, with what both need around them: loading,
 * the public half as a JWK, and signing a compact JWS.
 *
 * These private keys are test material, published here on purpose, and sign
 * nothing but fuzz inputs. They were made once with
 *   openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256
 *   openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048
 *   openssl genpkey -algorithm ED25519
 * and are fixed so that the token seeds in fuzz/corpus/jwt verify; new keys
 * mean running make_seeds again.
 */
#ifndef REVOKD_FUZZ_KEYS_H
#define REVOKD_FUZZ_KEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

/* The keys: index FZK_ES256, FZK_RS256, FZK_EDDSA. */
enum { FZK_ES256 = 0, FZK_RS256 = 1, FZK_EDDSA = 2, FZK_N = 3 };

static const char *const fzk_pem[FZK_N] = {
	/* ES256 (P-256) */
	"-----BEGIN PRIVATE KEY-----\n"
	"MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgV1/Wz3DRlU34goAj\n"
	"EvBT+UbCUQK5klMCm0IfSouav3ChRANCAARTas8mOFiI7EuxlU3NuNaOcbHh1FpJ\n"
	"yq4Z1khOjL9YmWlAF4DtJzIklYSuxao/RkYbj+SvV/bPBn0qxcGmlq1l\n"
	"-----END PRIVATE KEY-----\n",
	/* RS256 (RSA 2048) */
	"-----BEGIN PRIVATE KEY-----\n"
	"MIIEvgIBADANBgkqhkiG9w0BAQEFAASCBKgwggSkAgEAAoIBAQDDVdTHC22Lu/Lm\n"
	"9JWU9abySQQYoGEnPQllbCoZshT+LW+SgbFwETV5xG6D1NzKRENsllWLbdJ4OWqJ\n"
	"PviR6ZEcTSq3KEi2XGdih5VJkoJdiNnFj4VskrD8Zy2PXe8asF/NrtoHkXtn6Olt\n"
	"gQxag0RE8KtGjCeQi0Blh4uB80ff/63TBD8ifponKvs/qv629OxzfY8Bq+qqCRih\n"
	"EWlxERd5pJZIQOSV0f8j00js1U0tcpkrPQWMj7tbOJJBv1vPhTrAZiaCX8MgsIEP\n"
	"hTdXCB7Vf5Mq06NyoyKEQi95DBo1cPmVSEOOOeLzUkDGUfsGsnxMQ62k8tLX/Jva\n"
	"pNxe3DplAgMBAAECggEADI0QTfXTBR5/fg2LKvYZ0wmUBM0RUQcf+m9XySzjIm3i\n"
	"9GP29b91Uyym+TuNMEXwmyKRvpLA6k6uJMFyEVYTp+DhdMFW4rjPP8p8cizCyaXI\n"
	"cGRHa3GFg8JRcBvWCD36+elZQxE6/7M8hHe9RneWxGM+bhsFU8lOyvdJpIDwRlk3\n"
	"fLBFMroWEeGZ5LMNbSc7XW38O52XaYF3YD8A5rn9oZVwiqbcPVbsR9uJRvuCymoY\n"
	"e+Dvl7d+7KdfvukQlPxPi+g49QmuesX6u3cd/4M6Ic0nRYHDgZK7SwBw5a9ZMdub\n"
	"Cv0ToylUSD5mqjI+9HhSoyi8c7jqsSbNtvvgDWaDoQKBgQD3aKGv9wgvkHvAkfwO\n"
	"9/GjTtvOjizlYPg7VhiCpI/9ttzw60v/yK51zLKmnapmVc1jBSHEBY0RV10QLyB9\n"
	"aRZNYG6PJXGK4kJGGfJfGzTYGaPxnIonMohVeBrgeRCryBmBSgRKCKxdVUROHuU9\n"
	"Pi3vvXiQjECL6wg7pi996biqiQKBgQDKHkll1KH05SCu1f4U4NWoypNs0vO96Iii\n"
	"V0pLbY1MXdvh6FS121rCf88puZGIzMUx5RfSqWn5OC6mGxUU3iQ9q11eBOyL/Tt/\n"
	"gcWUKvjOqmSX+Jy13KHzyfdJw5mAOhrtCqKXcqXvDwcF452Mjt50owPL6OP7DTSk\n"
	"bYHj4b3p/QKBgE3WuoANPaMRVw4IIABpm7mgluFOs+ta7d5lQQLhWXgebzbRILER\n"
	"52mihFaNZk4aEqtjsvLkODTLgrkTyqoKRP0FKOOaiTWD6Av8H9gyTBbtQjpC4Ohi\n"
	"KqiRSAt1q3wQUY3uxpiwT+JxcDMP31m8VWGHAAaiSbB7urRhnbGEthfZAoGBALxz\n"
	"9Ne/pKqkoQ6jdF6fLFhPWZpULvPZRtynKxydLuwPb595ctKFjmBfrxcmcS3uT8cv\n"
	"5kCDuc2ntscl5Ugpv/zINSwexzfXi4xdwY1fa9G2Skjwg52F9HNM0weyGwPWKZjv\n"
	"G56+RT1a859oFVQjOgPiov2TTk6ch4Lwn/WMW/k5AoGBAJOoULeE1qGijkfBjkKy\n"
	"NTZWUHRxzwe7d6uxNoaAUfytZZJC3gc2COTnQKoNIfjaIocQBhIjyjrweBzOWpzf\n"
	"AdGMesdslyhIV0ufxVpEHVupCyPgJBUkv4GzgLsOEiczV2d/dFNSlWZLBwhwv2N4\n"
	"uh78uZdaSRpODn2PHaIpwtqo\n"
	"-----END PRIVATE KEY-----\n",
	/* EdDSA (Ed25519) */
	"-----BEGIN PRIVATE KEY-----\n"
	"MC4CAQAwBQYDK2VwBCIEIIpDMzt6afydYbZf2eqgDNlNRLpW+wz7X89OHlQxZ7Jd\n"
	"-----END PRIVATE KEY-----\n",
};

static const char *const fzk_alg[FZK_N] = { "ES256", "RS256", "EdDSA" };
static const char *const fzk_kid[FZK_N] = { "es-1", "rs-1", "ed-1" };

/* The private key i, parsed; NULL on failure. The caller frees it. */
static inline EVP_PKEY *
fzk_load(int i)
{
	BIO *bio = BIO_new_mem_buf(fzk_pem[i], -1);
	EVP_PKEY *k =
	    bio ? PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL) : NULL;

	BIO_free(bio);
	return k;
}

/* base64url without padding of len bytes into out (4 * len / 3 + 4). */
static inline size_t
fzk_b64url(const uint8_t *d, size_t len, char *out)
{
	static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                          "abcdefghijklmnopqrstuvwxyz0123456789-_";
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
	return o;
}

/* A big-number parameter of k as base64url into out (1400 bytes). */
static inline bool
fzk_bn_b64(EVP_PKEY *k, const char *name, char *out)
{
	BIGNUM *bn = NULL;
	uint8_t buf[1024];
	int n;

	if (EVP_PKEY_get_bn_param(k, name, &bn) != 1)
		return false;
	n = BN_num_bytes(bn) <= (int)sizeof(buf) ? BN_bn2bin(bn, buf) : -1;
	BN_free(bn);
	if (n < 0)
		return false;
	fzk_b64url(buf, (size_t)n, out);
	return true;
}

/*
 * The public JWK of key i (a JSON object, no trailing newline) into out
 * (capacity cap): kty and its members, kid, alg and use. False on failure.
 */
static inline bool
fzk_jwk(EVP_PKEY *k, int i, char *out, size_t cap)
{
	uint8_t buf[133];
	char x[1400], y[1400];
	size_t len = 0;
	int n = -1;

	switch (i) {
	case FZK_ES256:
		if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY,
		        buf, sizeof(buf), &len) != 1 ||
		    len != 65)
			return false;
		fzk_b64url(buf + 1, 32, x);
		fzk_b64url(buf + 33, 32, y);
		n = snprintf(out, cap,
		    "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":"
		    "\"%s\",\"kid\":\"%s\",\"alg\":\"ES256\",\"use\":\"sig\"}",
		    x, y, fzk_kid[i]);
		break;
	case FZK_RS256:
		if (!fzk_bn_b64(k, OSSL_PKEY_PARAM_RSA_N, x) ||
		    !fzk_bn_b64(k, OSSL_PKEY_PARAM_RSA_E, y))
			return false;
		n = snprintf(out, cap,
		    "{\"kty\":\"RSA\",\"n\":\"%s\",\"e\":\"%s\",\"kid\":\"%s\","
		    "\"alg\":\"RS256\",\"use\":\"sig\"}",
		    x, y, fzk_kid[i]);
		break;
	default:
		len = 32;
		if (EVP_PKEY_get_raw_public_key(k, buf, &len) != 1)
			return false;
		fzk_b64url(buf, len, x);
		n = snprintf(out, cap,
		    "{\"kty\":\"OKP\",\"crv\":\"Ed25519\",\"x\":\"%s\","
		    "\"kid\":\"%s\",\"alg\":\"EdDSA\",\"use\":\"sig\"}",
		    x, fzk_kid[i]);
		break;
	}
	return n > 0 && (size_t)n < cap;
}

/*
 * A compact JWS of header and payload (raw bytes, any content) signed with
 * key i for its algorithm (ES256 as raw r || s), into out (capacity cap,
 * NUL-terminated). Its length, or 0 on failure.
 */
static inline size_t
fzk_sign(EVP_PKEY *k, int i, const uint8_t *header, size_t hlen,
    const uint8_t *payload, size_t plen, char *out, size_t cap)
{
	EVP_MD_CTX *ctx;
	uint8_t sig[512], raw[64];
	size_t sig_len = sizeof(sig), n;
	const uint8_t *s = sig;
	bool ok;

	if ((hlen + plen) / 3 * 4 + 8 + 4 * sizeof(sig) / 3 > cap)
		return 0;
	n = fzk_b64url(header, hlen, out);
	out[n++] = '.';
	n += fzk_b64url(payload, plen, out + n);
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return 0;
	ok = EVP_DigestSignInit(ctx, NULL, i == FZK_EDDSA ? NULL : EVP_sha256(),
	         NULL, k) == 1 &&
	     EVP_DigestSign(ctx, sig, &sig_len, (const uint8_t *)out, n) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok)
		return 0;
	if (i == FZK_ES256) {
		const unsigned char *p = sig;
		ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sig_len);
		const BIGNUM *r, *sv;

		if (es == NULL)
			return 0;
		ECDSA_SIG_get0(es, &r, &sv);
		ok = BN_bn2binpad(r, raw, 32) == 32 &&
		     BN_bn2binpad(sv, raw + 32, 32) == 32;
		ECDSA_SIG_free(es);
		if (!ok)
			return 0;
		s = raw;
		sig_len = 64;
	}
	out[n++] = '.';
	n += fzk_b64url(s, sig_len, out + n);
	return n;
}

#endif /* REVOKD_FUZZ_KEYS_H */
