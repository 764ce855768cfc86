/*
 * test_jwt.c: librevoke's JWT verifier: tokens minted by tests/jwt_mint.c
 * for ES256, RS256 and EdDSA, good and bad (tampered, alg none, HS256
 * confusion, keys of the wrong type, unknown kids and JWKS reloads, every
 * time check with its leeway and log report, iss and aud, strict
 * base64url and JSON), the verifier's options, and the JWKS loader's
 * refusals. Revocation is in test_jwt_revocation.c; the fixture, a dir
 * with one key per algorithm and their JWKS, in jwt_fixture.c.
 *
 * The tests run at the fixed time NOW, but for the one checking that a now
 * of 0 means the clock. JWKS reloads are driven by a fake monotonic clock
 * (revoke__verifier_set_clock), so no test sleeps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "jwt_fixture.h"
#include "jwt_int.h"
#include "jwt_mint.h"

/* The claims tests' clock. */
#define NOW INT64_C(1700000000)

#define ISS "https://issuer.example"
#define AUD "api"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static void
write_file(const char *path, const char *text)
{
	char *tmp = fmt("%s.tmp", path);
	FILE *f = fopen(tmp, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(rename(tmp, path), 0);
	free(tmp);
}

/* The usual claims, iat and exp given, extra members appended. */
static char *
claims(long long iat, long long exp, const char *extra)
{
	return fmt("{\"iss\":\"" ISS "\",\"aud\":\"" AUD "\","
	           "\"sub\":\"alice\",\"jti\":\"tok-1\",\"sid\":\"sess-1\","
	           "\"iat\":%lld,\"exp\":%lld,\"ver\":1%s}",
	    iat, exp, extra ? extra : "");
}

/* Claims that pass at NOW. */
static char *
good_claims(void)
{
	return claims(NOW - 10, NOW + 600, NULL);
}

/* A token of k with header over payload (freed). */
static char *
token_hdr(const mint_key *k, const char *header, char *payload)
{
	char *t = mint_token(k, header, payload);

	free(payload);
	return t;
}

static revoke_verifier *
verifier_default(const struct jfx *f)
{
	return verifier(f, (revoke_verifier_options){ 0 });
}

/* The public JWK of a fresh 1024-bit RSA key (too weak to be used). */
static char *
weak_rsa_jwk(const char *kid)
{
	EVP_PKEY *pkey = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
	BIGNUM *n = NULL, *e = NULL;
	uint8_t nb[128], eb[8];
	char *n64, *e64, *jwk;
	int nl, el;

	assert_non_null(pkey);
	assert_int_equal(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, &n),
	    1);
	assert_int_equal(EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, &e),
	    1);
	nl = BN_bn2bin(n, nb);
	el = BN_bn2bin(e, eb);
	n64 = mint_b64url(nb, (size_t)nl);
	e64 = mint_b64url(eb, (size_t)el);
	jwk = fmt("{\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"}",
	    kid, n64, e64);
	free(n64);
	free(e64);
	BN_free(n);
	BN_free(e);
	EVP_PKEY_free(pkey);
	return jwk;
}

/* The JWKS text holding the given JWK texts (NULL-terminated). */
static char *
jwks_text(const char *first, ...)
{
	va_list ap;
	char *doc = fmt("{\"keys\":[%s", first), *next;
	const char *jwk;

	va_start(ap, first);
	while ((jwk = va_arg(ap, const char *)) != NULL) {
		next = fmt("%s,%s", doc, jwk);
		free(doc);
		doc = next;
	}
	va_end(ap);
	next = fmt("%s]}", doc);
	free(doc);
	return next;
}

/* A JWK of k with its text edited: from replaced by to (once). */
static char *
jwk_edit(const mint_key *k, const char *from, const char *to)
{
	char *jwk = mint_key_jwk(k), *at = strstr(jwk, from), *out;

	assert_non_null(at);
	*at = '\0';
	out = fmt("%s%s%s", jwk, to, at + strlen(from));
	free(jwk);
	return out;
}

/* ------------------------------------------------------------------------ */
/* Good tokens, and signatures                                              */
/* ------------------------------------------------------------------------ */

/* A fresh token of each algorithm passes, and its claims are read. */
static void
test_valid_each_alg(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v =
	    verifier(f, (revoke_verifier_options){ .issuer = ISS,
	                    .audience = AUD,
	                    .max_age_s = 3600 });
	const mint_key *keys[] = { f->es, f->rs, f->ed };
	const char *algs[] = { "ES256", "RS256", "EdDSA" };
	const char *kids[] = { "es-1", "rs-1", "ed-1" };

	for (int i = 0; i < 3; i++) {
		revoke_result r =
		    verify(v, token_of(keys[i], good_claims()), NOW);

		assert_int_equal(r.reason, REVOKE_TOKEN_OK);
		assert_string_equal(r.claims.alg, algs[i]);
		assert_string_equal(r.claims.kid, kids[i]);
		assert_string_equal(r.claims.iss, ISS);
		assert_string_equal(r.claims.sub, "alice");
		assert_string_equal(r.claims.jti, "tok-1");
		assert_string_equal(r.claims.sid, "sess-1");
		assert_true(r.claims.has_exp && r.claims.has_iat);
		assert_false(r.claims.has_nbf);
		assert_int_equal(r.claims.exp, NOW + 600);
		assert_int_equal(r.claims.iat, NOW - 10);
		assert_true(r.claims.has_ver);
		assert_int_equal(r.claims.ver, 1);
		assert_false(r.checked); /* no revocation source */
	}
	revoke_verifier_free(v);
}

/* len 0 means strlen; now 0 means the clock. */
static void
test_len_and_now_defaults(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v = verifier_default(f);
	int64_t now = (int64_t)time(NULL);
	char *t = token_of(f->es, claims(now - 5, now + 600, NULL));
	revoke_result r;

	assert_int_equal(revoke_jwt_verify(v, t, 0, 0, &r), REVOKE_OK);
	assert_int_equal(r.reason, REVOKE_TOKEN_OK);
	free(t);
	t = token_of(f->es, claims(NOW - 5, NOW + 600, NULL));
	assert_int_equal(revoke_jwt_verify(v, t, 0, 0, &r), REVOKE_OK);
	assert_int_equal(r.reason, REVOKE_TOKEN_EXPIRED); /* NOW is past */
	free(t);
	revoke_verifier_free(v);
}

/* A signature with one character changed, of each algorithm. */
static void
test_tampered_signature(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v = verifier_default(f);
	const mint_key *keys[] = { f->es, f->rs, f->ed };

	for (int i = 0; i < 3; i++) {
		char *t = token_of(keys[i], good_claims());
		char *sig = strrchr(t, '.') + 1;

		sig[10] = sig[10] == 'A' ? 'B' : 'A';
		expect_reason(v, t, NOW, REVOKE_TOKEN_SIGNATURE);
	}
	revoke_verifier_free(v);
}

/* The payload replaced (sub: admin), the signature kept. */
static void
test_tampered_payload(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v = verifier_default(f);
	const mint_key *keys[] = { f->es, f->rs, f->ed };

	for (int i = 0; i < 3; i++) {
		char *good = token_of(keys[i], good_claims());
		char *evil = good_claims(), *p, *t;

		*strstr(evil, "alice") = 'A'; /* "Alice" */
		p = mint_b64url(evil, strlen(evil));
		*strchr(good, '.') = '\0';
		t = fmt("%s.%s%s", good, p,
		    strrchr(good + strlen(good) + 1, '.'));
		{
			revoke_result r = verify(v, t, NOW);

			assert_int_equal(r.reason, REVOKE_TOKEN_SIGNATURE);
			/* The claims read are still told. */
			assert_string_equal(r.claims.sub, "Alice");
		}
		free(good);
		free(evil);
		free(p);
	}
	revoke_verifier_free(v);
}

/* A token signed by a key that is not the kid's. */
static void
test_wrong_key_same_kid(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v = verifier_default(f);
	mint_key *other = mint_key_new(REVOKE_ALG_ES256, "es-1");

	expect_reason(v, token_of(other, good_claims()), NOW,
	    REVOKE_TOKEN_SIGNATURE);
	mint_key_free(other);
	revoke_verifier_free(v);
}

/* ES256 signatures of the wrong length, or r, s out of range. */
static void
test_es256_signature_shapes(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v = verifier_default(f);
	char *good = token_of(f->es, good_claims());
	char *input = strdup(good);
	uint8_t sig[65];
	char *s64;

	*strrchr(input, '.') = '\0';
	memset(sig, 0, sizeof(sig)); /* r = s = 0 */
	s64 = mint_b64url(sig, 64);
	expect_reason(v, fmt("%s.%s", input, s64), NOW, REVOKE_TOKEN_SIGNATURE);
	free(s64);
	memset(sig, 0xff, sizeof(sig)); /* r, s >= n */
	s64 = mint_b64url(sig, 64);
	expect_reason(v, fmt("%s.%s", input, s64), NOW, REVOKE_TOKEN_SIGNATURE);
	free(s64);
	s64 = mint_b64url(sig, 65);
	expect_reason(v, fmt("%s.%s", input, s64), NOW, REVOKE_TOKEN_SIGNATURE);
	free(s64);
	free(input);
	free(good);
	revoke_verifier_free(v);
}

/* ------------------------------------------------------------------------ */
/* Algorithms and keys                                                      */
/* ------------------------------------------------------------------------ */

/* alg none, with or without a kid, is never accepted. */
static void
test_alg_none(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v = verifier_default(f);
	char *p = good_claims();
	revoke_result r = verify(v, mint_token_none(p), NOW);

	free(p);
	assert_int_equal(r.reason, REVOKE_TOKEN_ALG);
	assert_string_equal(r.claims.alg, "none");
	expect_reason(v,
	    token_hdr(f->es, "{\"alg\":\"none\",\"kid\":\"es-1\"}",
	        good_claims()),
	    NOW, REVOKE_TOKEN_ALG);
	revoke_verifier_free(v);
}

/* HMAC keyed with the public PEM: refused for every key. */
static void
test_hs256_confusion(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v = verifier_default(f);
	const mint_key *keys[] = { f->es, f->rs, f->ed };

	for (int i = 0; i < 3; i++) {
		char *p = good_claims();

		expect_reason(v, mint_token_hs256_confusion(keys[i], p), NOW,
		    REVOKE_TOKEN_ALG);
		free(p);
	}
	revoke_verifier_free(v);
}

/* Algorithms we never accept, and ones the options leave out. */
static void
test_alg_not_allowed(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v = verifier(f,
	    (revoke_verifier_options){
	        .algorithms = REVOKE_ALG_ES256 | REVOKE_ALG_EDDSA });
	const char *others[] = { "RS384", "PS256", "ES384", "es256", "Ed25519",
		"" };

	expect_reason(v, token_of(f->rs, good_claims()), NOW, REVOKE_TOKEN_ALG);
	expect_reason(v, token_of(f->es, good_claims()), NOW, REVOKE_TOKEN_OK);
	expect_reason(v, token_of(f->ed, good_claims()), NOW, REVOKE_TOKEN_OK);
	for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
		char *h = fmt("{\"alg\":\"%s\",\"kid\":\"es-1\"}", others[i]);

		expect_reason(v, token_hdr(f->es, h, good_claims()), NOW,
		    REVOKE_TOKEN_ALG);
		free(h);
	}
	revoke_verifier_free(v);
}

/* A kid naming a key of another type, or too weak, is a mismatch. */
static void
test_key_mismatch(void **state)
{
	struct jfx *f = *state;
	char *path = fmt("%s/weak.json", f->dir);
	char *es = mint_key_jwk(f->es), *weak = weak_rsa_jwk("rs-weak");
	char *doc = jwks_text(es, weak, NULL);
	revoke_verifier *v = verifier_default(f), *w;

	expect_reason(v,
	    token_hdr(f->es, "{\"alg\":\"ES256\",\"kid\":\"rs-1\"}",
	        good_claims()),
	    NOW, REVOKE_TOKEN_KEY_MISMATCH);
	expect_reason(v,
	    token_hdr(f->ed, "{\"alg\":\"EdDSA\",\"kid\":\"es-1\"}",
	        good_claims()),
	    NOW, REVOKE_TOKEN_KEY_MISMATCH);
	expect_reason(v,
	    token_hdr(f->rs, "{\"alg\":\"RS256\",\"kid\":\"ed-1\"}",
	        good_claims()),
	    NOW, REVOKE_TOKEN_KEY_MISMATCH);
	revoke_verifier_free(v);

	/* A 1024-bit RSA key is known by kid but never used. */
	write_file(path, doc);
	w = verifier(f, (revoke_verifier_options){ .jwks_file = path });
	expect_reason(w,
	    token_hdr(f->rs, "{\"alg\":\"RS256\",\"kid\":\"rs-weak\"}",
	        good_claims()),
	    NOW, REVOKE_TOKEN_KEY_MISMATCH);
	revoke_verifier_free(w);
	free(doc);
	free(es);
	free(weak);
	free(path);
}

/* An unknown kid, and a JWKS with only weak keys cannot be used at all. */
static void
test_unknown_kid(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v = verifier_default(f);
	mint_key *k = mint_key_new(REVOKE_ALG_ES256, "es-nobody");
	revoke_result r;

	r = verify(v, token_of(k, good_claims()), NOW);
	assert_int_equal(r.reason, REVOKE_TOKEN_UNKNOWN_KEY);
	assert_string_equal(r.claims.kid, "es-nobody");
	/* Within the cooldown after the first load: no reload. */
	assert_int_equal(revoke__verifier_loads(v), 1);
	mint_key_free(k);
	revoke_verifier_free(v);
}

/* Tokens without kid: the one fitting key, else refused. */
static void
test_no_kid(void **state)
{
	struct jfx *f = *state;
	char *path = fmt("%s/two-ec.json", f->dir);
	mint_key *es2 = mint_key_new(REVOKE_ALG_ES256, "es-2");
	mint_key *keys[] = { f->es, es2, f->ed };
	revoke_verifier *v = verifier_default(f), *w;

	expect_reason(v, token_hdr(f->es, "{\"alg\":\"ES256\"}", good_claims()),
	    NOW, REVOKE_TOKEN_OK);
	expect_reason(v, token_hdr(f->rs, "{\"alg\":\"RS256\"}", good_claims()),
	    NOW, REVOKE_TOKEN_OK);
	revoke_verifier_free(v);

	mint_jwks_write(path, keys, 3);
	w = verifier(f, (revoke_verifier_options){ .jwks_file = path });
	/* Two EC keys: ambiguous. One Ed25519 key: fine. No RSA: none. */
	expect_reason(w, token_hdr(f->es, "{\"alg\":\"ES256\"}", good_claims()),
	    NOW, REVOKE_TOKEN_UNKNOWN_KEY);
	expect_reason(w, token_hdr(f->ed, "{\"alg\":\"EdDSA\"}", good_claims()),
	    NOW, REVOKE_TOKEN_OK);
	expect_reason(w, token_hdr(f->rs, "{\"alg\":\"RS256\"}", good_claims()),
	    NOW, REVOKE_TOKEN_UNKNOWN_KEY);
	assert_int_equal(revoke__verifier_loads(w), 1); /* never reloads */
	revoke_verifier_free(w);
	mint_key_free(es2);
	free(path);
}

/* ------------------------------------------------------------------------ */
/* Reloads                                                                  */
/* ------------------------------------------------------------------------ */

/* A fake monotonic clock, in ms. */
static int64_t
fake_clock(void *arg)
{
	return *(int64_t *)arg;
}

/*
 * An unknown kid reloads the file once the cooldown has passed since the
 * last load, and only then; a failed reload keeps the old keys.
 */
static void
test_reload(void **state)
{
	struct jfx *f = *state;
	char *path = fmt("%s/reload.json", f->dir);
	mint_key *k1 = mint_key_new(REVOKE_ALG_ES256, "k1");
	mint_key *k2 = mint_key_new(REVOKE_ALG_EDDSA, "k2");
	mint_key *k3 = mint_key_new(REVOKE_ALG_RS256, "k3");
	mint_key *set1[] = { k1 }, *set2[] = { k1, k2 }, *set3[] = { k2, k3 };
	int64_t mono = 1000000;
	revoke_verifier *v;

	mint_jwks_write(path, set1, 1);
	v = verifier(f, (revoke_verifier_options){ .jwks_file = path,
	                    .reload_cooldown_s = 10 });
	revoke__verifier_set_clock(v, fake_clock, &mono);

	/* k2 appears in the file, but the cooldown has not passed. */
	mint_jwks_write(path, set2, 2);
	mono += 9999;
	expect_reason(v, token_of(k2, good_claims()), NOW,
	    REVOKE_TOKEN_UNKNOWN_KEY);
	assert_int_equal(revoke__verifier_loads(v), 1);

	/* Now it has: the file is read again and k2 is known. */
	mono += 1;
	expect_reason(v, token_of(k2, good_claims()), NOW, REVOKE_TOKEN_OK);
	assert_int_equal(revoke__verifier_loads(v), 2);

	/* A second unknown kid right after: no reload. */
	mint_jwks_write(path, set3, 2);
	mono += 5000;
	expect_reason(v, token_of(k3, good_claims()), NOW,
	    REVOKE_TOKEN_UNKNOWN_KEY);
	assert_int_equal(revoke__verifier_loads(v), 2);
	/* Known kids never reload, whatever the time. */
	mono += 60000;
	expect_reason(v, token_of(k1, good_claims()), NOW, REVOKE_TOKEN_OK);
	assert_int_equal(revoke__verifier_loads(v), 2);
	/* After the cooldown: k3 is found; k1, gone from the file, is
	 * then unknown. */
	expect_reason(v, token_of(k3, good_claims()), NOW, REVOKE_TOKEN_OK);
	assert_int_equal(revoke__verifier_loads(v), 3);
	mono += 10000;
	expect_reason(v, token_of(k1, good_claims()), NOW,
	    REVOKE_TOKEN_UNKNOWN_KEY);
	assert_int_equal(revoke__verifier_loads(v), 4);

	/* A broken file: the reload fails and the old keys stay. */
	write_file(path, "{\"keys\": [");
	mono += 10000;
	expect_reason(v, token_of(k1, good_claims()), NOW,
	    REVOKE_TOKEN_UNKNOWN_KEY);
	assert_int_equal(revoke__verifier_loads(v), 5);
	expect_reason(v, token_of(k2, good_claims()), NOW, REVOKE_TOKEN_OK);
	expect_reason(v, token_of(k3, good_claims()), NOW, REVOKE_TOKEN_OK);
	/* And a file with no usable key fails the same way. */
	write_file(path, "{\"keys\": [{\"kty\":\"oct\",\"k\":\"AAAA\"}]}");
	mono += 10000;
	expect_reason(v, token_of(k1, good_claims()), NOW,
	    REVOKE_TOKEN_UNKNOWN_KEY);
	assert_int_equal(revoke__verifier_loads(v), 6);
	expect_reason(v, token_of(k2, good_claims()), NOW, REVOKE_TOKEN_OK);

	revoke_verifier_free(v);
	mint_key_free(k1);
	mint_key_free(k2);
	mint_key_free(k3);
	free(path);
}

/* Many threads verifying while the key set is swapped under them. */
struct race {
	revoke_verifier *v;
	char *known, *unknown;
	atomic_int bad;
};

/* A clock that moves a cooldown forward at every reading (under the
 * verifier's lock), so that every unknown kid reloads. */
static int64_t
racing_clock(void *arg)
{
	int64_t *t = arg;

	*t += 1000;
	return *t;
}

static void *
race_thread(void *arg)
{
	struct race *rc = arg;

	for (int i = 0; i < 200; i++) {
		revoke_result r;
		const char *t = i % 2 ? rc->known : rc->unknown;
		revoke_reason want =
		    i % 2 ? REVOKE_TOKEN_OK : REVOKE_TOKEN_UNKNOWN_KEY;

		if (revoke_jwt_verify(rc->v, t, 0, NOW, &r) != REVOKE_OK ||
		    r.reason != want)
			atomic_fetch_add(&rc->bad, 1);
	}
	return NULL;
}

static void
test_reload_threads(void **state)
{
	struct jfx *f = *state;
	mint_key *nobody = mint_key_new(REVOKE_ALG_ES256, "nobody");
	int64_t mono = 0;
	struct race rc = { 0 };
	pthread_t th[4];

	atomic_init(&rc.bad, 0);
	rc.v = verifier(f, (revoke_verifier_options){ .reload_cooldown_s = 1 });
	revoke__verifier_set_clock(rc.v, racing_clock, &mono);
	rc.known = token_of(f->ed, good_claims());
	rc.unknown = token_of(nobody, good_claims());
	for (int i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&th[i], NULL, race_thread, &rc),
		    0);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(atomic_load(&rc.bad), 0);
	assert_true(revoke__verifier_loads(rc.v) > 10);
	revoke_verifier_free(rc.v);
	free(rc.known);
	free(rc.unknown);
	mint_key_free(nobody);
}

/* ------------------------------------------------------------------------ */
/* Times                                                                    */
/* ------------------------------------------------------------------------ */

/* What the log callback was told. */
struct log_seen {
	int calls;
	revoke_time_report last;
	char region[64];
};

static void
log_time(void *arg, const revoke_time_report *rep)
{
	struct log_seen *s = arg;

	s->calls++;
	s->last = *rep;
	snprintf(s->region, sizeof(s->region), "%s", rep->region);
}

/* exp: within the leeway, at its edge, beyond it; and missing. */
static void
test_expired(void **state)
{
	struct jfx *f = *state;
	struct log_seen seen = { 0 };
	revoke_verifier *v =
	    verifier(f, (revoke_verifier_options){ .log = log_time,
	                    .log_arg = &seen,
	                    .region = "eu-west" });
	revoke_result r;

	expect_reason(v, token_of(f->es, claims(NOW - 100, NOW - 29, NULL)),
	    NOW, REVOKE_TOKEN_OK);
	assert_int_equal(seen.calls, 0);
	/* exp + leeway == now: the first refused second, 1 s outside. */
	r = verify(v, token_of(f->es, claims(NOW - 100, NOW - 30, NULL)), NOW);
	assert_int_equal(r.reason, REVOKE_TOKEN_EXPIRED);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.last.drift_s, 1);
	r = verify(v, token_of(f->es, claims(NOW - 100, NOW - 90, NULL)), NOW);
	assert_int_equal(r.reason, REVOKE_TOKEN_EXPIRED);
	assert_int_equal(seen.calls, 2);
	assert_int_equal(seen.last.reason, REVOKE_TOKEN_EXPIRED);
	assert_string_equal(seen.region, "eu-west");
	assert_int_equal(seen.last.server_time, NOW);
	assert_int_equal(seen.last.iat, NOW - 100);
	assert_int_equal(seen.last.exp, NOW - 90);
	assert_int_equal(seen.last.nbf, 0);
	assert_int_equal(seen.last.drift_s, 61);
	/* The claims are told with a refusal. */
	assert_string_equal(r.claims.jti, "tok-1");
	assert_int_equal(r.claims.exp, NOW - 90);
	revoke_verifier_free(v);

	/* With no leeway, exp == now is the first refused second. */
	v = verifier(f,
	    (revoke_verifier_options){ .leeway_s = REVOKE_LEEWAY_NONE });
	expect_reason(v, token_of(f->es, claims(NOW - 100, NOW + 1, NULL)), NOW,
	    REVOKE_TOKEN_OK);
	expect_reason(v, token_of(f->es, claims(NOW - 100, NOW, NULL)), NOW,
	    REVOKE_TOKEN_EXPIRED);
	revoke_verifier_free(v);
	v = verifier(f,
	    (revoke_verifier_options){ .log = log_time, .log_arg = &seen });

	expect_reason(v,
	    token_of(f->es,
	        fmt("{\"sub\":\"alice\",\"iat\":%lld}", (long long)NOW)),
	    NOW, REVOKE_TOKEN_CLAIM_MISSING);
	assert_int_equal(seen.calls, 2); /* not a time refusal */
	revoke_verifier_free(v);
}

/* nbf: within the leeway, beyond it. */
static void
test_not_yet_valid(void **state)
{
	struct jfx *f = *state;
	struct log_seen seen = { 0 };
	revoke_verifier *v =
	    verifier(f, (revoke_verifier_options){ .leeway_s = 10,
	                    .log = log_time,
	                    .log_arg = &seen });

	expect_reason(v,
	    token_of(f->es, claims(NOW, NOW + 600, ",\"nbf\":1700000010")), NOW,
	    REVOKE_TOKEN_OK);
	expect_reason(v,
	    token_of(f->es, claims(NOW, NOW + 600, ",\"nbf\":1700000011")), NOW,
	    REVOKE_TOKEN_NOT_YET_VALID);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.last.drift_s, 1);
	expect_reason(v,
	    token_of(f->es, claims(NOW, NOW + 600, ",\"nbf\":1700000500")), NOW,
	    REVOKE_TOKEN_NOT_YET_VALID);
	assert_int_equal(seen.last.reason, REVOKE_TOKEN_NOT_YET_VALID);
	assert_int_equal(seen.last.nbf, NOW + 500);
	assert_int_equal(seen.last.drift_s, 490);
	assert_string_equal(seen.region, ""); /* no region given */
	revoke_verifier_free(v);
}

/* iat in the future, beyond the leeway. */
static void
test_issued_in_future(void **state)
{
	struct jfx *f = *state;
	struct log_seen seen = { 0 };
	revoke_verifier *v = verifier(f,
	    (revoke_verifier_options){ .log = log_time, .log_arg = &seen });

	expect_reason(v, token_of(f->es, claims(NOW + 30, NOW + 600, NULL)),
	    NOW, REVOKE_TOKEN_OK);
	expect_reason(v, token_of(f->es, claims(NOW + 100, NOW + 600, NULL)),
	    NOW, REVOKE_TOKEN_ISSUED_IN_FUTURE);
	assert_int_equal(seen.calls, 1);
	assert_int_equal(seen.last.reason, REVOKE_TOKEN_ISSUED_IN_FUTURE);
	assert_int_equal(seen.last.iat, NOW + 100);
	assert_int_equal(seen.last.drift_s, 70);
	revoke_verifier_free(v);
}

/* max_age: at the edge, beyond; iat then required. */
static void
test_too_old(void **state)
{
	struct jfx *f = *state;
	struct log_seen seen = { 0 };
	revoke_verifier *v =
	    verifier(f, (revoke_verifier_options){ .max_age_s = 3600,
	                    .log = log_time,
	                    .log_arg = &seen });

	expect_reason(v,
	    token_of(f->es, claims(NOW - 3600 - 29, NOW + 600, NULL)), NOW,
	    REVOKE_TOKEN_OK);
	expect_reason(v,
	    token_of(f->es, claims(NOW - 3600 - 30, NOW + 600, NULL)), NOW,
	    REVOKE_TOKEN_TOO_OLD);
	assert_int_equal(seen.last.drift_s, 1);
	expect_reason(v, token_of(f->es, claims(NOW - 7200, NOW + 600, NULL)),
	    NOW, REVOKE_TOKEN_TOO_OLD);
	assert_int_equal(seen.calls, 2);
	assert_int_equal(seen.last.reason, REVOKE_TOKEN_TOO_OLD);
	assert_int_equal(seen.last.drift_s, 3600 - 30 + 1);
	expect_reason(v,
	    token_of(f->es,
	        fmt("{\"sub\":\"alice\",\"exp\":%lld}", (long long)NOW + 60)),
	    NOW, REVOKE_TOKEN_CLAIM_MISSING);
	revoke_verifier_free(v);

	/* Without max_age, iat may be absent. */
	v = verifier_default(f);
	expect_reason(v,
	    token_of(f->es,
	        fmt("{\"sub\":\"alice\",\"exp\":%lld}", (long long)NOW + 60)),
	    NOW, REVOKE_TOKEN_OK);
	revoke_verifier_free(v);
}

/* ------------------------------------------------------------------------ */
/* Issuer and audience                                                      */
/* ------------------------------------------------------------------------ */

static void
test_issuer(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v =
	    verifier(f, (revoke_verifier_options){ .issuer = ISS });

	expect_reason(v, token_of(f->es, good_claims()), NOW, REVOKE_TOKEN_OK);
	expect_reason(v,
	    token_of(f->es,
	        fmt("{\"iss\":\"https://evil.example\",\"exp\":%lld}",
	            (long long)NOW + 60)),
	    NOW, REVOKE_TOKEN_ISSUER);
	expect_reason(v,
	    token_of(f->es, fmt("{\"iss\":\"" ISS "/\",\"exp\":%lld}",
	                        (long long)NOW + 60)),
	    NOW, REVOKE_TOKEN_ISSUER);
	expect_reason(v,
	    token_of(f->es, fmt("{\"exp\":%lld}", (long long)NOW + 60)), NOW,
	    REVOKE_TOKEN_CLAIM_MISSING);
	revoke_verifier_free(v);
}

static void
test_audience(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v =
	    verifier(f, (revoke_verifier_options){ .audience = AUD });
	const char *aud_ok[] = { "\"api\"", "[\"api\"]",
		"[\"other\",\"api\"]" };
	const char *aud_bad[] = { "\"apis\"", "\"API\"", "[]",
		"[\"other\",\"web\"]" };

	for (size_t i = 0; i < 3; i++)
		expect_reason(v,
		    token_of(f->es, fmt("{\"aud\":%s,\"exp\":%lld}", aud_ok[i],
		                        (long long)NOW + 60)),
		    NOW, REVOKE_TOKEN_OK);
	for (size_t i = 0; i < 4; i++)
		expect_reason(v,
		    token_of(f->es, fmt("{\"aud\":%s,\"exp\":%lld}", aud_bad[i],
		                        (long long)NOW + 60)),
		    NOW, REVOKE_TOKEN_AUDIENCE);
	expect_reason(v,
	    token_of(f->es, fmt("{\"exp\":%lld}", (long long)NOW + 60)), NOW,
	    REVOKE_TOKEN_CLAIM_MISSING);
	revoke_verifier_free(v);
}

/* ------------------------------------------------------------------------ */
/* Structure                                                                */
/* ------------------------------------------------------------------------ */

/* A good ES256 token with its part `part` (0, 1, 2) replaced by text. */
static char *
with_part(const struct jfx *f, int part, const char *text)
{
	char *t = token_of(f->es, good_claims());
	char *d1 = strchr(t, '.'), *d2 = strchr(d1 + 1, '.'), *out;

	*d1 = *d2 = '\0';
	out = fmt("%s.%s.%s", part == 0 ? text : t, part == 1 ? text : d1 + 1,
	    part == 2 ? text : d2 + 1);
	free(t);
	return out;
}

/* Padding, '+', '/', whitespace, junk and non-canonical bits. */
static void
test_bad_base64url(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v = verifier_default(f);
	char *t = token_of(f->es, good_claims());
	char *sig = strrchr(t, '.') + 1, *bad;
	size_t n = strlen(sig);

	/* 64 bytes are 86 characters: the last has 4 unused bits. */
	assert_int_equal(n, 86);
	bad = fmt("%s==", t);
	expect_reason(v, bad, NOW, REVOKE_TOKEN_MALFORMED);
	for (const char *c = "+/=! \n\t"; *c; c++) {
		bad = strdup(t);
		bad[strlen(bad) - n + 20] = *c;
		expect_reason(v, bad, NOW, REVOKE_TOKEN_MALFORMED);
		bad = strdup(t);
		bad[3] = *c; /* in the header */
		expect_reason(v, bad, NOW, REVOKE_TOKEN_MALFORMED);
	}
	/* The same bits with a non-zero unused one. */
	bad = strdup(t);
	{
		char *last = bad + strlen(bad) - 1;
		const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnop"
		                  "qrstuvwxyz0123456789-_";

		*last = abc[(strchr(abc, *last) - abc) | 1];
	}
	expect_reason(v, bad, NOW, REVOKE_TOKEN_MALFORMED);
	/* A header encoded with padding. */
	{
		const char *h = "{\"alg\":\"ES256\",\"kid\":\"es-1\"}";
		char *h64 = mint_b64url(h, strlen(h)), *padded;

		padded = fmt("%s%s", h64,
		    strlen(h64) % 4 == 2 ? "=="
		    : strlen(h64) % 4    ? "="
		                         : "");
		expect_reason(v, with_part(f, 0, padded), NOW,
		    REVOKE_TOKEN_MALFORMED);
		free(h64);
		free(padded);
	}
	free(t);
	revoke_verifier_free(v);
}

/* Parts missing, extra, empty, cut short; too long a token. */
static void
test_truncated(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v = verifier_default(f);
	char *t = token_of(f->es, good_claims()), *cut;
	const char *junk[] = { "", ".", "..", "...", "a.b", "a.b.c.d" };
	revoke_result r;
	char *big;

	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++)
		expect_reason(v, strdup(junk[i]), NOW, REVOKE_TOKEN_MALFORMED);
	cut = strdup(t);
	*strrchr(cut, '.') = '\0'; /* two parts */
	expect_reason(v, cut, NOW, REVOKE_TOKEN_MALFORMED);
	cut = strdup(t);
	strrchr(cut, '.')[1] = '\0'; /* an empty signature */
	expect_reason(v, cut, NOW, REVOKE_TOKEN_SIGNATURE);
	cut = strdup(t);
	cut[strlen(cut) - 1] = '\0'; /* 85 characters: not base64url */
	expect_reason(v, cut, NOW, REVOKE_TOKEN_MALFORMED);
	cut = strdup(t);
	cut[strlen(cut) - 6] = '\0'; /* 80: decodes, too short */
	expect_reason(v, cut, NOW, REVOKE_TOKEN_SIGNATURE);
	cut = fmt("%s.", t); /* four parts */
	expect_reason(v, cut, NOW, REVOKE_TOKEN_MALFORMED);
	/* Only the given length counts. */
	assert_int_equal(revoke_jwt_verify(v, t, strlen(t) - 1, NOW, &r),
	    REVOKE_OK);
	assert_int_equal(r.reason, REVOKE_TOKEN_MALFORMED);

	/* Over 16 KiB, even if well formed. */
	big = calloc(1, 12400);
	memcpy(big, ",\"x\":\"", 6);
	memset(big + 6, 'A', 12300);
	strcat(big, "\"");
	expect_reason(v, token_of(f->es, claims(NOW, NOW + 60, big)), NOW,
	    REVOKE_TOKEN_MALFORMED);
	free(big);
	free(t);
	revoke_verifier_free(v);
}

/* JSON: duplicates, wrong types, too long, reals, crit, not objects. */
static void
test_bad_json(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v = verifier_default(f);
	const char *payloads[] = {
		"{\"exp\":1700000600,\"exp\":1700000700}",
		"{\"exp\":1700000600,\"sub\":\"a\",\"sub\":\"a\"}",
		"{\"exp\":1700000600.0}",
		"{\"exp\":1.7000006e9}",
		"{\"exp\":\"1700000600\"}",
		"{\"exp\":null}",
		"{\"exp\":-1}",
		"{\"exp\":99999999999999}",
		"{\"exp\":1700000600,\"nbf\":true}",
		"{\"exp\":1700000600,\"iat\":1.5}",
		"{\"exp\":1700000600,\"ver\":-1}",
		"{\"exp\":1700000600,\"ver\":1.0}",
		"{\"exp\":1700000600,\"sub\":7}",
		"{\"exp\":1700000600,\"sub\":\"\"}",
		"{\"exp\":1700000600,\"jti\":\"\"}",
		"{\"exp\":1700000600,\"sid\":[\"a\"]}",
		"{\"exp\":1700000600,\"iss\":null}",
		"{\"exp\":1700000600,\"aud\":7}",
		"{\"exp\":1700000600,\"aud\":[\"api\",7]}",
		"{\"exp\":1700000600,\"aud\":{}}",
		"{\"exp\":1700000600,\"sub\":\"a\\u0000b\"}",
		"{\"exp\":1700000600",
		"[{\"exp\":1700000600}]",
		"\"exp\"",
		"{\"exp\":1700000600} x",
		"",
	};
	const char *headers[] = {
		"{\"alg\":\"ES256\",\"alg\":\"ES256\",\"kid\":\"es-1\"}",
		"{\"alg\":\"ES256\",\"kid\":\"es-1\",\"crit\":[\"exp\"]}",
		"{\"alg\":\"ES256\",\"kid\":\"\"}",
		"{\"alg\":\"ES256\",\"kid\":5}",
		"{\"alg\":256,\"kid\":\"es-1\"}",
		"{\"kid\":\"es-1\"}",
		"[\"ES256\"]",
	};

	for (size_t i = 0; i < sizeof(payloads) / sizeof(payloads[0]); i++)
		expect_reason(v, token_of(f->es, strdup(payloads[i])), NOW,
		    REVOKE_TOKEN_MALFORMED);
	for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++)
		expect_reason(v, token_hdr(f->es, headers[i], good_claims()),
		    NOW, REVOKE_TOKEN_MALFORMED);
	revoke_verifier_free(v);
}

/* Claims up to REVOKE_CLAIM_MAX - 1 bytes; one more is refused. */
static void
test_claim_lengths(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v = verifier_default(f);
	char s[REVOKE_CLAIM_MAX + 1];
	const char *names[] = { "iss", "sub", "jti", "sid", "aud" };
	revoke_result r;

	memset(s, 'x', sizeof(s));
	for (size_t i = 0; i < 5; i++) {
		s[REVOKE_CLAIM_MAX - 1] = '\0';
		r = verify(v,
		    token_of(f->es, fmt("{\"%s\":\"%s\",\"exp\":%lld}",
		                        names[i], s, (long long)NOW + 60)),
		    NOW);
		assert_int_equal(r.reason, REVOKE_TOKEN_OK);
		s[REVOKE_CLAIM_MAX - 1] = 'x';
		s[REVOKE_CLAIM_MAX] = '\0';
		expect_reason(v,
		    token_of(f->es, fmt("{\"%s\":\"%s\",\"exp\":%lld}",
		                        names[i], s, (long long)NOW + 60)),
		    NOW, REVOKE_TOKEN_MALFORMED);
	}
	/* A kid one byte too long. */
	{
		char *h = fmt("{\"alg\":\"ES256\",\"kid\":\"%s\"}", s);

		expect_reason(v, token_hdr(f->es, h, good_claims()), NOW,
		    REVOKE_TOKEN_MALFORMED);
		free(h);
	}
	revoke_verifier_free(v);
}

/* NULL arguments; out is cleared. */
static void
test_invalid_arguments(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v = verifier_default(f);
	revoke_result r;

	memset(&r, 0x55, sizeof(r));
	assert_int_equal(revoke_jwt_verify(NULL, "a.b.c", 5, NOW, &r),
	    REVOKE_E_INVALID);
	assert_int_equal(r.reason, REVOKE_TOKEN_OK);
	assert_int_equal(revoke_jwt_verify(v, NULL, 5, NOW, &r),
	    REVOKE_E_INVALID);
	assert_int_equal(revoke_jwt_verify(v, "a.b.c", 5, NOW, NULL),
	    REVOKE_E_INVALID);
	assert_int_equal(revoke_jwt_verify(v, "a.b.c", 5, -1, &r),
	    REVOKE_E_INVALID);
	revoke_verifier_free(v);
	revoke_verifier_free(NULL);
}

/* ------------------------------------------------------------------------ */
/* Options and JWKS files                                                   */
/* ------------------------------------------------------------------------ */

static void
test_options(void **state)
{
	struct jfx *f = *state;
	revoke_verifier *v = NULL;
	revoke_verifier_options o = { .jwks_file = f->jwks };
	char *missing = fmt("%s/missing.json", f->dir);

	o.leeway_s = 121;
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_E_INVALID);
	o.leeway_s = -2;
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_E_INVALID);
	o.leeway_s = 120;
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_OK);
	revoke_verifier_free(v);
	v = NULL;
	o.leeway_s = 0;
	o.algorithms = 8;
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_E_INVALID);
	o.algorithms = 0;
	o.max_age_s = -1;
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_E_INVALID);
	o.max_age_s = 0;
	o.reload_cooldown_s = -1;
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_E_INVALID);
	o.reload_cooldown_s = 0;
	o.client = (revoke_client *)&o; /* never used: refused first */
	o.reader = (revoke_reader *)&o;
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_E_INVALID);
	o.client = NULL;
	o.reader = NULL;
	o.jwks_file = NULL;
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_E_INVALID);
	assert_int_equal(revoke_verifier_new(NULL, &v), REVOKE_E_INVALID);
	/* Each failure says which file, and why. */
	o.jwks_file = missing;
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_E_KEYS);
	assert_non_null(strstr(revoke_last_error(), missing));
	assert_non_null(strstr(revoke_last_error(), "No such file"));
	o.jwks_file = f->dir; /* not a regular file */
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_E_KEYS);
	assert_non_null(strstr(revoke_last_error(), "not a regular file"));
	assert_null(v);
	/* Only RSA allowed, and a JWKS with no RSA key: nothing usable. */
	mint_jwks_write(missing, &f->es, 1);
	o.jwks_file = missing;
	o.algorithms = REVOKE_ALG_RS256;
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_E_KEYS);
	assert_non_null(strstr(revoke_last_error(),
	    "no key usable with the allowed algorithms"));
	o.algorithms = REVOKE_ALG_ES256;
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_OK);
	revoke_verifier_free(v);
	free(missing);
}

/* What a JWKS load left out. */
struct skipped {
	int n;
	char why[32][96];
	char kid[32][64];
};

static void
skip_seen(void *arg, size_t index, const char *kid, const char *why)
{
	struct skipped *s = arg;

	(void)index;
	if (s->n < 32) {
		snprintf(s->why[s->n], sizeof(s->why[0]), "%s", why);
		snprintf(s->kid[s->n], sizeof(s->kid[0]), "%s", kid);
	}
	s->n++;
}

/* Bad keys are left out, each with a reason; good ones stay. */
static void
test_jwks_bad_keys_skipped(void **state)
{
	struct jfx *f = *state;
	char *good = mint_key_jwk(f->es), *ed = mint_key_jwk(f->ed);
	char *bad[] = {
		jwk_edit(f->es, "\"crv\":\"P-256\"", "\"crv\":\"P-384\""),
		jwk_edit(f->es, "\"kid\":\"es-1\"", "\"kid\":\"es-y\""),
		jwk_edit(f->es, "\"use\":\"sig\"", "\"use\":\"enc\""),
		jwk_edit(f->es, "\"alg\":\"ES256\"", "\"alg\":\"RS256\""),
		jwk_edit(f->es, "\"alg\":\"ES256\"", "\"alg\":\"ES384\""),
		jwk_edit(f->es, "\"use\":\"sig\"", "\"key_ops\":[\"encrypt\"]"),
		jwk_edit(f->rs, "\"kid\":\"rs-1\"", "\"kid\":\"rs-x\""),
		jwk_edit(f->ed, "\"crv\":\"Ed25519\"", "\"crv\":\"X25519\""),
		jwk_edit(f->ed, "\"kid\":\"ed-1\"", "\"kid\":\"es-1\""),
		strdup("{\"kty\":\"oct\",\"kid\":\"hmac\",\"k\":\"c2VjcmV0\"}"),
		strdup(
		    "{\"kty\":\"EC\",\"kid\":\"off\",\"crv\":\"P-256\","
		    "\"x\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\","
		    "\"y\":\"AQAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"}"),
		strdup("{\"kty\":\"OKP\",\"kid\":\"short\",\"crv\":\"Ed25519\","
		       "\"x\":\"AQAA\"}"),
		strdup("{\"kid\":\"nokty\"}"),
		strdup("[]"),
	};
	const size_t nbad = sizeof(bad) / sizeof(bad[0]);
	struct skipped s = { 0 };
	revoke__keyset *ks = NULL;
	char *doc, *path = fmt("%s/mixed.json", f->dir), *tmp;
	revoke_verifier *v;

	/* es-y: y replaced by x, off the curve. rs-x: e removed. */
	tmp = bad[1];
	{
		char *y = strstr(tmp, "\"y\":\"") + 5;
		char *x = strstr(tmp, "\"x\":\"") + 5;

		memcpy(y, x, 43);
	}
	tmp = bad[6];
	*strstr(tmp, "\"e\":\"") = '\0';
	bad[6] = fmt("%s\"q\":\"AQAB\",\"alg\":\"RS256\"}", tmp);
	free(tmp);

	doc = fmt("{\"keys\":[%s", good);
	for (size_t i = 0; i < nbad; i++) {
		tmp = fmt("%s,%s", doc, bad[i]);
		free(doc);
		doc = tmp;
	}
	tmp = fmt("%s,%s]}", doc, ed);
	free(doc);
	doc = tmp;

	assert_int_equal(
	    revoke__jwks_parse(doc, strlen(doc),
	        REVOKE_ALG_ES256 | REVOKE_ALG_RS256 | REVOKE_ALG_EDDSA,
	        skip_seen, &s, &ks),
	    REVOKE_OK);
	assert_int_equal(s.n, (int)nbad);
	for (int i = 0; i < s.n && i < 32; i++)
		assert_true(strlen(s.why[i]) > 0);
	assert_string_equal(s.kid[8], "es-1");
	assert_string_equal(s.why[8], "duplicate kid");
	assert_int_equal(ks->n, 2);
	assert_non_null(revoke__keyset_find(ks, "es-1", 4));
	assert_non_null(revoke__keyset_find(ks, "ed-1", 4));
	assert_null(revoke__keyset_find(ks, "hmac", 4));
	revoke__keyset_unref(ks);

	/* The verifier loads the same file and uses the good keys. */
	write_file(path, doc);
	v = verifier(f, (revoke_verifier_options){ .jwks_file = path });
	expect_reason(v, token_of(f->es, good_claims()), NOW, REVOKE_TOKEN_OK);
	expect_reason(v, token_of(f->ed, good_claims()), NOW, REVOKE_TOKEN_OK);
	expect_reason(v, token_of(f->rs, good_claims()), NOW,
	    REVOKE_TOKEN_UNKNOWN_KEY);
	revoke_verifier_free(v);

	for (size_t i = 0; i < nbad; i++)
		free(bad[i]);
	free(doc);
	free(path);
	free(good);
	free(ed);
}

/* Whole files that are refused. */
static void
test_jwks_refused(void **state)
{
	struct jfx *f = *state;
	char *path = fmt("%s/refused.json", f->dir);
	char *es = mint_key_jwk(f->es);
	char *dup = fmt("{\"keys\":[%s],\"keys\":[]}", es);
	char *many, *tmp, *big;
	const char *docs[] = { "", "[]", "{}", "{\"keys\":{}}", "{\"keys\":[]}",
		"{\"keys\":[{\"kty\":\"oct\",\"k\":\"AA\"}]}", "{\"keys\":[",
		dup };
	revoke_verifier *v = NULL;
	revoke_verifier_options o = { .jwks_file = path };
	revoke__keyset *ks;

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		write_file(path, docs[i]);
		assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_E_KEYS);
		assert_non_null(strstr(revoke_last_error(), path));
	}
	/* The first left-out key is named. */
	write_file(path, docs[5]);
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_E_KEYS);
	assert_non_null(strstr(revoke_last_error(),
	    "(key 0: symmetric keys are never used)"));
	/* 257 keys. */
	many = fmt("{\"keys\":[%s", es);
	for (int i = 1; i <= REVOKE__JWKS_KEYS_MAX; i++) {
		tmp = fmt("%s,{}", many);
		free(many);
		many = tmp;
	}
	tmp = fmt("%s]}", many);
	free(many);
	many = tmp;
	assert_int_equal(
	    revoke__jwks_parse(many, strlen(many), 7, NULL, NULL, &ks),
	    REVOKE_E_KEYS);
	/* Over 1 MiB, even if valid. */
	big = calloc(1, REVOKE__JWKS_FILE_MAX + 64);
	snprintf(big, REVOKE__JWKS_FILE_MAX + 64, "{\"keys\":[%s]}", es);
	memset(big + strlen(big), ' ', REVOKE__JWKS_FILE_MAX - strlen(big) + 1);
	write_file(path, big);
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_E_KEYS);
	big[REVOKE__JWKS_FILE_MAX] = '\0';
	write_file(path, big);
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_OK);
	revoke_verifier_free(v);
	free(big);
	free(many);
	free(dup);
	free(es);
	free(path);
}

/* Strict base64url, directly. */
static void
test_b64url_decode(void **state)
{
	uint8_t out[16];
	size_t n = 0;

	(void)state;
	assert_true(revoke__b64url_decode("", 0, out, sizeof(out), &n));
	assert_int_equal(n, 0);
	assert_true(revoke__b64url_decode("AQID", 4, out, sizeof(out), &n));
	assert_int_equal(n, 3);
	assert_memory_equal(out, "\x01\x02\x03", 3);
	assert_true(revoke__b64url_decode("-_8", 3, out, sizeof(out), &n));
	assert_int_equal(n, 2);
	assert_memory_equal(out, "\xfb\xff", 2);
	assert_false(revoke__b64url_decode("-_9", 3, out, sizeof(out), &n));
	assert_true(revoke__b64url_decode("AQ", 2, out, sizeof(out), &n));
	assert_false(revoke__b64url_decode("AR", 2, out, sizeof(out), &n));
	assert_false(revoke__b64url_decode("A", 1, out, sizeof(out), &n));
	assert_false(revoke__b64url_decode("AQ==", 4, out, sizeof(out), &n));
	assert_false(revoke__b64url_decode("+/8A", 4, out, sizeof(out), &n));
	assert_false(revoke__b64url_decode("AQ\0D", 4, out, sizeof(out), &n));
	assert_false(revoke__b64url_decode("AQIDBA", 6, out, 3, &n));
}

/* Every reason has a name and a sentence; unknown ones too. */
static void
test_reason_names(void **state)
{
	(void)state;
	for (int r = REVOKE_TOKEN_OK; r <= REVOKE_TOKEN_UNAVAILABLE; r++) {
		assert_string_not_equal(revoke_reason_name((revoke_reason)r),
		    "UNKNOWN");
		assert_true(strlen(revoke_reason_string((revoke_reason)r)) > 0);
		for (int o = 0; o < r; o++)
			assert_string_not_equal(
			    revoke_reason_name((revoke_reason)r),
			    revoke_reason_name((revoke_reason)o));
	}
	assert_string_equal(revoke_reason_name(REVOKE_TOKEN_EXPIRED),
	    "EXPIRED");
	assert_string_equal(revoke_reason_string(REVOKE_TOKEN_EXPIRED),
	    "token expired");
	assert_string_equal(revoke_reason_name((revoke_reason)99), "UNKNOWN");
	assert_non_null(revoke_reason_string((revoke_reason)-1));
}

int
main(void)
{
	const struct CMUnitTest claims_tests[] = {
		cmocka_unit_test(test_valid_each_alg),
		cmocka_unit_test(test_len_and_now_defaults),
		cmocka_unit_test(test_tampered_signature),
		cmocka_unit_test(test_tampered_payload),
		cmocka_unit_test(test_wrong_key_same_kid),
		cmocka_unit_test(test_es256_signature_shapes),
		cmocka_unit_test(test_alg_none),
		cmocka_unit_test(test_hs256_confusion),
		cmocka_unit_test(test_alg_not_allowed),
		cmocka_unit_test(test_key_mismatch),
		cmocka_unit_test(test_unknown_kid),
		cmocka_unit_test(test_no_kid),
		cmocka_unit_test(test_reload),
		cmocka_unit_test(test_reload_threads),
		cmocka_unit_test(test_expired),
		cmocka_unit_test(test_not_yet_valid),
		cmocka_unit_test(test_issued_in_future),
		cmocka_unit_test(test_too_old),
		cmocka_unit_test(test_issuer),
		cmocka_unit_test(test_audience),
		cmocka_unit_test(test_bad_base64url),
		cmocka_unit_test(test_truncated),
		cmocka_unit_test(test_bad_json),
		cmocka_unit_test(test_claim_lengths),
		cmocka_unit_test(test_invalid_arguments),
		cmocka_unit_test(test_options),
		cmocka_unit_test(test_jwks_bad_keys_skipped),
		cmocka_unit_test(test_jwks_refused),
		cmocka_unit_test(test_b64url_decode),
		cmocka_unit_test(test_reason_names),
	};

	return cmocka_run_group_tests_name("claims", claims_tests, group_setup,
	    group_teardown);
}
