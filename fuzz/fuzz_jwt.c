/*
 * fuzz_jwt.c: librevoke's JWT parser and verifier (client/jwt.c, with the
 * key set of client/jwks.c and the direct reader of client/reader.c).
 *
 * Set up once: a JWKS file with the three fixed keys of fuzz_keys.h (ES256
 * "es-1", RS256 "rs-1", EdDSA "ed-1"), a store holding a revoked jti, a
 * revoked sid and a subject with a version and a not-before, and four
 * verifiers with different policies (issuer and audience or not, leeway,
 * max age, allowed algorithms, the direct reader or no revocation source).
 *
 * Input: byte 0 picks the verifier (bits 0-1) and the mode (bits 2-3),
 * byte 1 the clock (around 2023-11-14, in minutes), then:
 *   mode 0, 1: the rest is the token, verified as it is (seeds: valid
 *     tokens of each algorithm, so mutations start from the signature);
 *   mode 2: byte 2 picks the key, the rest is header JSON, a NUL, payload
 *     JSON (no NUL: a default header), signed by the harness;
 *   mode 3: byte 2 picks the key, the rest is the payload, signed under a
 *     valid header: every claim check is reached.
 * Signing is with ES256 or EdDSA (RS256 for 1 key byte in 16: an RSA
 * signature costs a millisecond; its verification path is reached through
 * mode 0 and the seeds).
 *
 * Checked on every input: the status is REVOKE_OK (no source fails here);
 * the reason is a known one; every claim string ends inside its field; and
 * when the verifier says OK, the token really is one: three parts, an
 * allowed alg, a signature that verifies with the named key (checked here
 * with OpenSSL, independently of jwt.c), an exp in the future (with the
 * leeway), and the issuer and audience the policy asks for.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

#include "crdt/crdt.h"
#include "fuzz_keys.h"
#include "fuzz_util.h"
#include "jwt_int.h"
#include "revoke.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NOW0 INT64_C(1700000000)
#define ISSUER "https://issuer.example"
#define AUDIENCE "fuzz-aud"
#define N_VERIFIERS 4

static struct {
	bool ready;
	EVP_PKEY *key[FZK_N];
	revoke_reader *reader;
	revoke_verifier *v[N_VERIFIERS];
	revoke_verifier_options opt[N_VERIFIERS];
	char token[REVOKE_TOKEN_MAX * 2];
} G;

/* ------------------------------------------------------------------------ */
/* Set up                                                                   */
/* ------------------------------------------------------------------------ */

static void
write_file(const char *path, const void *data, size_t len, mode_t mode)
{
	FILE *f = fopen(path, "w");

	FZ_CHECK(f != NULL && fwrite(data, 1, len, f) == len &&
	             fclose(f) == 0 && chmod(path, mode) == 0,
	    "writing %s", path);
}

static void
write_jwks(const char *path)
{
	char jwk[FZK_N][4096], doc[16384];

	for (int i = 0; i < FZK_N; i++)
		FZ_CHECK(fzk_jwk(G.key[i], i, jwk[i], sizeof(jwk[i])), "jwk %d",
		    i);
	snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s,%s]}", jwk[0], jwk[1],
	    jwk[2]);
	write_file(path, doc, strlen(doc), 0644);
}

/* A store holding what the reader is asked about. */
static void
write_store(const char *dir, const uint8_t *secret)
{
	crdt_store_options so = { .no_sync = true, .map_size = 16u << 20 };
	crdt_store *s;
	crdt_keyer *k;
	crdt_entry e[3];

	memset(e, 0, sizeof(e));
	FZ_CHECK(mkdir(dir, 0700) == 0 &&
	             crdt_keyer_new(secret, CRDT_SECRET_LEN, &k) == REVOKD_OK &&
	             crdt_store_open(dir, &so, &s) == REVOKD_OK &&
	             crdt_store_bind_secret(s, k) == REVOKD_OK,
	    "store");
	e[0].kind = CRDT_KIND_JTI;
	crdt_key_derive(k, CRDT_KIND_JTI, "revoked-jti", 11, &e[0].key);
	e[0].u.token.exp = NOW0 + 86400 * 365 * 20;
	e[0].u.token.revoked_at = CRDT_HLC_AT(NOW0 * 1000);
	e[1].kind = CRDT_KIND_SID;
	crdt_key_derive(k, CRDT_KIND_SID, "revoked-sid", 11, &e[1].key);
	e[1].u.token = e[0].u.token;
	e[2].kind = CRDT_KIND_SUB;
	crdt_key_derive(k, CRDT_KIND_SUB, "user-1", 6, &e[2].key);
	e[2].u.subject.not_before_ms = NOW0 * 1000 + 1500;
	(void)crdt_subject_bump(&e[2].u.subject, 1, 3);
	FZ_CHECK(crdt_store_apply(s, e, 3, NOW0, NULL, NULL) == REVOKD_OK,
	    "store apply");
	crdt_store_close(s);
	crdt_keyer_free(k);
}

static void
setup(void)
{
	const char *dir = fz_tmpdir("jwt");
	char jwks[300], data[300], secret_file[300];
	uint8_t secret[CRDT_SECRET_LEN];
	revoke_status st;

	for (int i = 0; i < FZK_N; i++)
		FZ_CHECK((G.key[i] = fzk_load(i)) != NULL, "key %d", i);
	snprintf(jwks, sizeof(jwks), "%s/jwks.json", dir);
	snprintf(data, sizeof(data), "%s/data", dir);
	snprintf(secret_file, sizeof(secret_file), "%s/secret", dir);
	write_jwks(jwks);
	for (size_t i = 0; i < sizeof(secret); i++)
		secret[i] = (uint8_t)(0x33 + 7 * i);
	write_file(secret_file, secret, sizeof(secret), 0600);
	write_store(data, secret);
	st = revoke_reader_open(data, secret_file, &G.reader);
	FZ_CHECK(st == REVOKE_OK, "reader: %s", revoke_last_error());
	G.opt[0] = (revoke_verifier_options){ .jwks_file = jwks,
		.issuer = ISSUER,
		.audience = AUDIENCE };
	G.opt[1] = (revoke_verifier_options){ .jwks_file = jwks,
		.leeway_s = REVOKE_LEEWAY_NONE,
		.max_age_s = 3600,
		.reader = G.reader };
	G.opt[2] = (revoke_verifier_options){ .jwks_file = jwks,
		.issuer = ISSUER,
		.algorithms = REVOKE_ALG_ES256 | REVOKE_ALG_EDDSA,
		.leeway_s = 120,
		.max_staleness_ms = 1,
		.reader = G.reader };
	G.opt[3] = (revoke_verifier_options){ .jwks_file = jwks,
		.audience = AUDIENCE,
		.algorithms = REVOKE_ALG_RS256,
		.reload_cooldown_s = 1 };
	for (int i = 0; i < N_VERIFIERS; i++) {
		st = revoke_verifier_new(&G.opt[i], &G.v[i]);
		FZ_CHECK(st == REVOKE_OK, "verifier %d: %s", i,
		    revoke_last_error());
	}
	G.ready = true;
}

/* ------------------------------------------------------------------------ */
/* The independent check of an accepted token                               */
/* ------------------------------------------------------------------------ */

/* Plain base64url (no strictness of its own); false on a bad character. */
static bool
b64url_loose(const char *in, size_t len, uint8_t *out, size_t *out_len)
{
	uint32_t acc = 0;
	unsigned bits = 0;
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = in[i];
		int v = c >= 'A' && c <= 'Z'   ? c - 'A'
		        : c >= 'a' && c <= 'z' ? c - 'a' + 26
		        : c >= '0' && c <= '9' ? c - '0' + 52
		        : c == '-'             ? 62
		        : c == '_'             ? 63
		                               : -1;

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
	*out_len = o;
	return true;
}

static int
key_of_alg(const char *alg)
{
	for (int i = 0; i < FZK_N; i++)
		if (strcmp(alg, fzk_alg[i]) == 0)
			return i;
	return -1;
}

/* Does sig verify over msg with key i, for its algorithm? */
static bool
sig_verifies(int i, const uint8_t *sig, size_t sig_len, const char *msg,
    size_t msg_len)
{
	uint8_t der[80];
	unsigned char *p = der;
	EVP_MD_CTX *ctx;
	bool ok;

	if (i == FZK_ES256) {
		ECDSA_SIG *es = ECDSA_SIG_new();
		BIGNUM *r, *s;
		int n;

		if (sig_len != 64 || es == NULL)
			return ECDSA_SIG_free(es), false;
		r = BN_bin2bn(sig, 32, NULL);
		s = BN_bin2bn(sig + 32, 32, NULL);
		ECDSA_SIG_set0(es, r, s);
		n = i2d_ECDSA_SIG(es, &p);
		ECDSA_SIG_free(es);
		if (n <= 0)
			return false;
		sig = der;
		sig_len = (size_t)n;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return false;
	ok = EVP_DigestVerifyInit(ctx, NULL,
	         i == FZK_EDDSA ? NULL : EVP_sha256(), NULL, G.key[i]) == 1 &&
	     EVP_DigestVerify(ctx, sig, sig_len, (const uint8_t *)msg,
	         msg_len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* The payload (base64url) has an aud that is want or holds want. */
static bool
payload_has_aud(const char *b64, size_t len, const char *want)
{
	static uint8_t buf[REVOKE_TOKEN_MAX];
	size_t n;
	json_t *o, *aud, *m;
	size_t i;
	bool found = false;

	if (!b64url_loose(b64, len, buf, &n) ||
	    (o = json_loadb((const char *)buf, n, 0, NULL)) == NULL)
		return false;
	aud = json_object_get(o, "aud");
	if (json_is_string(aud))
		found = strcmp(json_string_value(aud), want) == 0;
	json_array_foreach(aud, i, m)
	{
		if (json_is_string(m) &&
		    strcmp(json_string_value(m), want) == 0)
			found = true;
	}
	json_decref(o);
	return found;
}

/* A token the verifier accepted: check what acceptance promises. */
static void
check_accepted(int vi, const char *tok, size_t len, int64_t now,
    const revoke_result *r)
{
	const revoke_verifier_options *o = &G.opt[vi];
	const char *d1 = memchr(tok, '.', len), *d2;
	static uint8_t sig[REVOKE_TOKEN_MAX];
	size_t sig_len;
	int64_t leeway = o->leeway_s == REVOKE_LEEWAY_NONE ? 0
	                 : o->leeway_s                     ? o->leeway_s
	                                                   : 30;
	int k = key_of_alg(r->claims.alg);

	FZ_CHECK(len <= REVOKE_TOKEN_MAX, "accepted a token of %zu bytes", len);
	FZ_CHECK(d1 != NULL, "accepted a token without a dot");
	d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok));
	FZ_CHECK(d2 != NULL &&
	             memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)) == NULL,
	    "accepted a token without three parts");
	FZ_CHECK(k >= 0, "accepted alg \"%s\"", r->claims.alg);
	FZ_CHECK((o->algorithms == 0 ||
	             (o->algorithms & revoke__alg_bit(r->claims.alg)) != 0),
	    "accepted alg %s, not allowed", r->claims.alg);
	FZ_CHECK(r->claims.kid[0] == '\0' ||
	             strcmp(r->claims.kid, fzk_kid[k]) == 0,
	    "accepted kid %s for alg %s", r->claims.kid, r->claims.alg);
	FZ_CHECK(
	    b64url_loose(d2 + 1, len - (size_t)(d2 + 1 - tok), sig, &sig_len) &&
	        sig_verifies(k, sig, sig_len, tok, (size_t)(d2 - tok)),
	    "accepted a %s token whose signature does not verify",
	    r->claims.alg);
	FZ_CHECK(r->claims.has_exp && r->claims.exp + leeway > now,
	    "accepted a token with exp %lld at %lld", (long long)r->claims.exp,
	    (long long)now);
	FZ_CHECK(!r->claims.has_nbf || r->claims.nbf - leeway <= now,
	    "accepted a token not yet valid");
	FZ_CHECK(o->issuer == NULL || strcmp(r->claims.iss, o->issuer) == 0,
	    "accepted issuer \"%s\"", r->claims.iss);
	FZ_CHECK(o->max_age_s == 0 ||
	             (r->claims.has_iat &&
	                 r->claims.iat + leeway > now - o->max_age_s),
	    "accepted a token older than max_age");
	if (o->audience != NULL)
		FZ_CHECK(
		    payload_has_aud(d1 + 1, (size_t)(d2 - d1 - 1), o->audience),
		    "accepted a token without audience %s", o->audience);
	if (o->reader == NULL)
		return;
	FZ_CHECK(r->checked, "accepted without the revocation check");
	FZ_CHECK(strcmp(r->claims.jti, "revoked-jti") != 0 &&
	             strcmp(r->claims.sid, "revoked-sid") != 0,
	    "accepted a revoked token (jti %s, sid %s)", r->claims.jti,
	    r->claims.sid);
	FZ_CHECK(strcmp(r->claims.sub, "user-1") != 0 ||
	             ((!r->claims.has_ver || r->claims.ver >= 3) &&
	                 (!r->claims.has_iat ||
	                     r->claims.iat * 1000 >= NOW0 * 1000 + 1500)),
	    "accepted a token of user-1 with ver %llu, iat %lld",
	    (unsigned long long)r->claims.ver, (long long)r->claims.iat);
}

#define CHECK_CLAIM(f)                                                         \
	FZ_CHECK(strnlen(r.claims.f, sizeof(r.claims.f)) < sizeof(r.claims.f), \
	    "claim " #f " not terminated")

/* ------------------------------------------------------------------------ */
/* The target                                                               */
/* ------------------------------------------------------------------------ */

/* The token of a signing mode into G.token; its length (0: none). */
static size_t
signed_token(fz_in *in, bool payload_only)
{
	uint8_t kb = fz_u8(in);
	int k = (kb & 15) == 15 ? FZK_RS256 : (kb & 1) ? FZK_EDDSA : FZK_ES256;
	char header[128];
	const uint8_t *h = (const uint8_t *)header, *p = in->p;
	size_t hlen, plen = in->n;
	const uint8_t *nul = payload_only ? NULL : memchr(in->p, 0, in->n);

	hlen = (size_t)snprintf(header, sizeof(header),
	    "{\"alg\":\"%s\",\"kid\":\"%s\",\"typ\":\"JWT\"}", fzk_alg[k],
	    fzk_kid[k]);
	if (nul != NULL) {
		h = in->p;
		hlen = (size_t)(nul - in->p);
		p = nul + 1;
		plen = in->n - hlen - 1;
	}
	if (hlen + plen > REVOKE_TOKEN_MAX)
		return 0;
	return fzk_sign(G.key[k], k, h, hlen, p, plen, G.token,
	    sizeof(G.token));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in in = { data, size };
	uint8_t b0 = fz_u8(&in);
	int vi = b0 & 3, mode = (b0 >> 2) & 3;
	int64_t now = NOW0 + (int8_t)fz_u8(&in) * INT64_C(60);
	revoke_result r;
	revoke_status st;
	const char *tok;
	size_t len;

	if (!G.ready)
		setup();
	if (mode < 2) {
		tok = (const char *)in.p;
		len = in.n;
		if (len == 0)
			return 0; /* 0 means "strlen" to the API */
	} else {
		len = signed_token(&in, mode == 3);
		tok = G.token;
		if (len == 0)
			return 0;
	}
	st = revoke_jwt_verify(G.v[vi], tok, len, now, &r);
	FZ_CHECK(st == REVOKE_OK, "status %d (%s)", (int)st,
	    revoke_last_error());
	FZ_CHECK(strcmp(revoke_reason_name(r.reason), "UNKNOWN") != 0,
	    "reason %d", (int)r.reason);
	CHECK_CLAIM(alg);
	CHECK_CLAIM(kid);
	CHECK_CLAIM(iss);
	CHECK_CLAIM(sub);
	CHECK_CLAIM(jti);
	CHECK_CLAIM(sid);
	if (fz_verbose())
		fprintf(stderr, "jwt: verifier %d, mode %d, alg %s: %s\n", vi,
		    mode, r.claims.alg, revoke_reason_name(r.reason));
	if (r.reason == REVOKE_TOKEN_OK)
		check_accepted(vi, tok, len, now, &r);
	return 0;
}
