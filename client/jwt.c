/*
 * jwt.c: the verifier: a compact JWS read strictly, its signature checked
 * with a key of its JWKS, its claims against the verifier's policy, then its
 * revocation through a client or a reader.
 *
 * Order of checks, each refusal ending the verification:
 *   1. structure (MALFORMED): at most REVOKE_TOKEN_MAX bytes; exactly
 *      three parts; each canonical unpadded base64url; header and payload
 *      JSON objects without duplicate members; "alg" a string; no "crit"
 *      (no extension is understood); kid, iss, sub, jti, sid strings of at
 *      most REVOKE_CLAIM_MAX - 1 bytes (kid, sub, jti, sid not empty: an
 *      empty id cannot be revoked); exp, nbf, iat JSON integers in
 *      [0, 253402300799] (year 9999); ver an integer >= 0; aud a string or
 *      an array of strings. Reals are refused even when integral ("exp":
 *      1.0, 1e9): RFC 7519 allows fractions, but no issuer we serve sends
 *      them, and one integer type keeps the arithmetic exact.
 *   2. alg (ALG): "ES256", "RS256" or "EdDSA", and in opt->algorithms.
 *   3. key: by kid (UNKNOWN_KEY when the set has none, even after a reload
 *      the cooldown allows); a token without kid takes the set's only key
 *      that may verify its alg, and is refused (UNKNOWN_KEY) when there is
 *      no such key or more than one, never guessing. A key of another type,
 *      or an RSA key under 2048 bits, gives KEY_MISMATCH.
 *   4. signature (SIGNATURE).
 *   5. times: exp required (CLAIM_MISSING); EXPIRED, NOT_YET_VALID,
 *      ISSUED_IN_FUTURE, then TOO_OLD (iat required when max_age_s > 0).
 *   6. iss, then aud, when the options require them (CLAIM_MISSING when
 *      absent).
 *   7. revocation, when a client or a reader is set: a token with none
 *      of jti, sid and sub is then refused (CLAIM_MISSING), since nothing
 *      could ever revoke it.
 *
 * A time report's drift is the smallest clock change that would have let
 * the token pass that check: now - (exp + leeway) + 1 for EXPIRED (exp +
 * leeway is the first refused second), (nbf - leeway) - now for
 * NOT_YET_VALID, (iat - leeway) - now for ISSUED_IN_FUTURE, now - (iat +
 * max_age + leeway) + 1 for TOO_OLD. Always at least 1.
 *
 * JWKS reloads are spaced by a monotonic clock, not by the now of the
 * calls (which may be anything a caller likes); a test swaps that clock
 * through revoke__verifier_set_clock.
 *
 * Memory: a verification uses about 12 KiB of stack for the decoded parts;
 * the heap is used only by jansson (the two JSON objects) and OpenSSL (one
 * digest context).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/rsa.h>

#include "jwt_int.h"

/* The largest NumericDate accepted: 9999-12-31T23:59:59Z. */
#define JWT_TIME_MAX INT64_C(253402300799)

/* Defaults of revoke_verifier_options. */
#define JWT_DEFAULT_LEEWAY_S 30
#define JWT_MAX_LEEWAY_S 120
#define JWT_DEFAULT_COOLDOWN_S 30
#define JWT_ALL_ALGS (REVOKE_ALG_ES256 | REVOKE_ALG_RS256 | REVOKE_ALG_EDDSA)

/* ------------------------------------------------------------------------ */
/* Reasons                                                                  */
/* ------------------------------------------------------------------------ */

#define REVOKE__REASON_MAP(X)                                                  \
	X(OK, "token accepted")                                                \
	X(MALFORMED, "token is malformed")                                     \
	X(ALG, "algorithm not allowed")                                        \
	X(UNKNOWN_KEY, "no key for the token")                                 \
	X(KEY_MISMATCH, "key cannot be used with the token's algorithm")       \
	X(SIGNATURE, "signature does not verify")                              \
	X(EXPIRED, "token expired")                                            \
	X(NOT_YET_VALID, "token not yet valid")                                \
	X(ISSUED_IN_FUTURE, "token issued in the future")                      \
	X(TOO_OLD, "token too old")                                            \
	X(CLAIM_MISSING, "a required claim is missing")                        \
	X(ISSUER, "issuer not accepted")                                       \
	X(AUDIENCE, "audience not accepted")                                   \
	X(REVOKED, "token revoked")                                            \
	X(SESSION_REVOKED, "session revoked")                                  \
	X(STALE_VERSION, "token older than the user's version")                \
	X(REVOKED_NOT_BEFORE, "token issued before the user's not-before")     \
	X(STALE_STATE, "revocation state too stale")                           \
	X(UNAVAILABLE, "revocation check unavailable")

const char *
revoke_reason_string(revoke_reason r)
{
	switch (r) {
#define REVOKE__REASON_STRING(name, msg)                                       \
	case REVOKE_TOKEN_##name:                                              \
		return msg;
		REVOKE__REASON_MAP(REVOKE__REASON_STRING)
#undef REVOKE__REASON_STRING
	}
	return "unknown reason";
}

const char *
revoke_reason_name(revoke_reason r)
{
	switch (r) {
#define REVOKE__REASON_NAME(name, msg)                                         \
	case REVOKE_TOKEN_##name:                                              \
		return #name;
		REVOKE__REASON_MAP(REVOKE__REASON_NAME)
#undef REVOKE__REASON_NAME
	}
	return "UNKNOWN";
}

/* ------------------------------------------------------------------------ */
/* The verifier                                                             */
/* ------------------------------------------------------------------------ */

/*
 * Locking: lock guards keys, last_load_ms, reloading, loads and the clock.
 * A reload runs with lock released (reloading set, so only one runs), and
 * threads that meet an unknown kid meanwhile wait on reloaded for its
 * result instead of refusing a key that is about to appear. client_lock
 * serialises the client, which is one thread's at a time. Everything else
 * is written once, in revoke_verifier_new.
 */
struct revoke_verifier {
	char *jwks_file;
	char *issuer;   /* NULL: not checked */
	char *audience; /* NULL: not checked */
	char *region;   /* "" when not given */
	unsigned algorithms;
	int64_t leeway_s;
	int64_t max_age_s;
	int64_t cooldown_ms;
	uint64_t max_staleness_ms;
	revoke_client *client;
	revoke_reader *reader;
	void (*log)(void *arg, const revoke_time_report *r);
	void *log_arg;
	EVP_MD *sha256;

	pthread_mutex_t lock;
	pthread_cond_t reloaded;
	revoke__keyset *keys; /* never NULL */
	int64_t last_load_ms;
	bool reloading;
	uint64_t loads;
	revoke__clock_fn clock;
	void *clock_arg;

	pthread_mutex_t client_lock;
};

/* CLOCK_MONOTONIC in milliseconds. */
static int64_t
monotonic_ms(void *arg)
{
	struct timespec ts;

	(void)arg;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A copy of s, or NULL for NULL; false when out of memory. */
static bool
copy_opt_string(const char *s, char **out)
{
	*out = NULL;
	return s == NULL || (*out = strdup(s)) != NULL;
}

/* REVOKE_OK when opt is a valid set of options. */
static revoke_status
options_check(const revoke_verifier_options *opt)
{
	if (opt->jwks_file == NULL || (opt->algorithms & ~JWT_ALL_ALGS) ||
	    (opt->leeway_s < 0 && opt->leeway_s != REVOKE_LEEWAY_NONE) ||
	    opt->leeway_s > JWT_MAX_LEEWAY_S || opt->max_age_s < 0 ||
	    opt->reload_cooldown_s < 0 ||
	    (opt->client != NULL && opt->reader != NULL))
		return REVOKE_E_INVALID;
	return REVOKE_OK;
}

/* The policy of opt, defaults applied, into v. */
static void
options_apply(revoke_verifier *v, const revoke_verifier_options *opt)
{
	v->algorithms = opt->algorithms ? opt->algorithms : JWT_ALL_ALGS;
	v->leeway_s = opt->leeway_s == REVOKE_LEEWAY_NONE ? 0
	              : opt->leeway_s                     ? opt->leeway_s
	                              : JWT_DEFAULT_LEEWAY_S;
	v->max_age_s = opt->max_age_s;
	v->cooldown_ms =
	    (int64_t)(opt->reload_cooldown_s ? opt->reload_cooldown_s
	                                     : JWT_DEFAULT_COOLDOWN_S) *
	    1000;
	v->max_staleness_ms = opt->max_staleness_ms;
	v->client = opt->client;
	v->reader = opt->reader;
	v->log = opt->log;
	v->log_arg = opt->log_arg;
	v->clock = monotonic_ms;
}

/* Free what revoke_verifier_new may have built (locks not yet made). */
static void
verifier_release(revoke_verifier *v)
{
	revoke__keyset_unref(v->keys);
	EVP_MD_free(v->sha256);
	free(v->jwks_file);
	free(v->issuer);
	free(v->audience);
	free(v->region);
	free(v);
}

revoke_status
revoke_verifier_new(const revoke_verifier_options *opt, revoke_verifier **out)
{
	revoke_verifier *v;
	revoke_status st;

	if (opt == NULL || out == NULL)
		return REVOKE_E_INVALID;
	if ((st = options_check(opt)) != REVOKE_OK)
		return st;
	if ((v = calloc(1, sizeof(*v))) == NULL)
		return REVOKE_E_NOMEM;
	options_apply(v, opt);
	st = REVOKE_E_NOMEM;
	if (!copy_opt_string(opt->jwks_file, &v->jwks_file) ||
	    !copy_opt_string(opt->issuer, &v->issuer) ||
	    !copy_opt_string(opt->audience, &v->audience) ||
	    !copy_opt_string(opt->region ? opt->region : "", &v->region))
		goto fail;
	if ((v->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		goto fail;
	st = revoke__jwks_load(v->jwks_file, v->algorithms, NULL, NULL,
	    &v->keys);
	if (st != REVOKE_OK)
		goto fail;
	v->loads = 1;
	v->last_load_ms = v->clock(v->clock_arg);
	st = REVOKE_E_NOMEM;
	if (pthread_mutex_init(&v->lock, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&v->reloaded, NULL) != 0)
		goto fail_lock;
	if (pthread_mutex_init(&v->client_lock, NULL) != 0)
		goto fail_cond;
	*out = v;
	return REVOKE_OK;
fail_cond:
	pthread_cond_destroy(&v->reloaded);
fail_lock:
	pthread_mutex_destroy(&v->lock);
fail:
	verifier_release(v);
	return st;
}

void
revoke_verifier_free(revoke_verifier *v)
{
	if (v == NULL)
		return;
	pthread_mutex_destroy(&v->client_lock);
	pthread_cond_destroy(&v->reloaded);
	pthread_mutex_destroy(&v->lock);
	verifier_release(v);
}

void
revoke__verifier_set_clock(revoke_verifier *v, revoke__clock_fn fn, void *arg)
{
	pthread_mutex_lock(&v->lock);
	v->clock = fn;
	v->clock_arg = arg;
	v->last_load_ms = fn(arg);
	pthread_mutex_unlock(&v->lock);
}

uint64_t
revoke__verifier_loads(revoke_verifier *v)
{
	uint64_t n;

	pthread_mutex_lock(&v->lock);
	n = v->loads;
	pthread_mutex_unlock(&v->lock);
	return n;
}

/* ------------------------------------------------------------------------ */
/* The key set: taking it, and reloading it                                 */
/* ------------------------------------------------------------------------ */

/* A reference to the current key set. */
static revoke__keyset *
keys_acquire(revoke_verifier *v)
{
	revoke__keyset *ks;

	pthread_mutex_lock(&v->lock);
	ks = v->keys;
	revoke__keyset_ref(ks);
	pthread_mutex_unlock(&v->lock);
	return ks;
}

/* Read the file again (lock held on entry and exit, released meanwhile). */
static void
keys_reload_locked(revoke_verifier *v)
{
	revoke__keyset *fresh = NULL, *old = NULL;
	revoke_status st;

	v->reloading = true;
	v->last_load_ms = v->clock(v->clock_arg);
	pthread_mutex_unlock(&v->lock);
	st = revoke__jwks_load(v->jwks_file, v->algorithms, NULL, NULL, &fresh);
	pthread_mutex_lock(&v->lock);
	v->loads++;
	if (st == REVOKE_OK) {
		old = v->keys; /* we hold the verifier's reference */
		v->keys = fresh;
	}
	v->reloading = false;
	pthread_cond_broadcast(&v->reloaded);
	if (old != NULL) {
		/* Our caller still holds a reference: this never frees. */
		revoke__keyset_unref(old);
	}
}

/*
 * After seen (a set the caller holds) did not know a kid: a newer set, or
 * NULL when there is none to be had (the cooldown has not passed, or the
 * reload failed: the old keys stay). The result holds a reference.
 */
static revoke__keyset *
keys_newer(revoke_verifier *v, revoke__keyset *seen)
{
	revoke__keyset *ks = NULL;

	pthread_mutex_lock(&v->lock);
	while (v->reloading)
		pthread_cond_wait(&v->reloaded, &v->lock);
	if (v->keys == seen &&
	    v->clock(v->clock_arg) - v->last_load_ms >= v->cooldown_ms)
		keys_reload_locked(v);
	if (v->keys != seen) {
		ks = v->keys;
		revoke__keyset_ref(ks);
	}
	pthread_mutex_unlock(&v->lock);
	return ks;
}

/*
 * The key for a token of alg, and kid when has_kid; *ks holds the set it
 * lives in (the caller drops it). The reason when there is no usable key.
 */
static revoke_reason
key_choose(revoke_verifier *v, unsigned alg, const char *kid, bool has_kid,
    revoke__keyset **ks, const revoke__jwk **key)
{
	const revoke__jwk *k;
	revoke__keyset *newer;

	*ks = keys_acquire(v);
	if (!has_kid) {
		k = revoke__keyset_only(*ks, alg);
		if (k == NULL)
			return REVOKE_TOKEN_UNKNOWN_KEY;
	} else if ((k = revoke__keyset_find(*ks, kid, strlen(kid))) == NULL) {
		if ((newer = keys_newer(v, *ks)) == NULL)
			return REVOKE_TOKEN_UNKNOWN_KEY;
		revoke__keyset_unref(*ks);
		*ks = newer;
		k = revoke__keyset_find(*ks, kid, strlen(kid));
		if (k == NULL)
			return REVOKE_TOKEN_UNKNOWN_KEY;
	}
	if ((k->algs & alg) == 0)
		return REVOKE_TOKEN_KEY_MISMATCH;
	*key = k;
	return REVOKE_TOKEN_OK;
}

/* ------------------------------------------------------------------------ */
/* Parsing                                                                  */
/* ------------------------------------------------------------------------ */

/* Room for the decoded parts of the longest token. */
#define JWT_DECODED_MAX (REVOKE_TOKEN_MAX / 4 * 3 + 6)

/* A token taken apart. JSON and aud are owned until jwt_parsed_free. */
typedef struct jwt_parsed {
	json_t *header;
	json_t *payload;
	unsigned alg; /* REVOKE_ALG_* bit; 0 when not one of ours */
	bool has_kid;
	bool has_iss;
	json_t *aud;       /* borrowed from payload; NULL when absent */
	size_t signed_len; /* of header "." payload */
	const uint8_t *sig;
	size_t sig_len;
	uint8_t buf[JWT_DECODED_MAX];
} jwt_parsed;

static void
jwt_parsed_free(jwt_parsed *p)
{
	json_decref(p->header);
	json_decref(p->payload);
}

/* The three parts of token: starts and lengths. False unless three. */
static bool
jwt_split(const char *token, size_t len, const char *part[3], size_t plen[3])
{
	const char *dot1 = memchr(token, '.', len), *dot2;

	if (dot1 == NULL)
		return false;
	dot2 = memchr(dot1 + 1, '.', len - (size_t)(dot1 + 1 - token));
	if (dot2 == NULL ||
	    memchr(dot2 + 1, '.', len - (size_t)(dot2 + 1 - token)) != NULL)
		return false;
	part[0] = token;
	plen[0] = (size_t)(dot1 - token);
	part[1] = dot1 + 1;
	plen[1] = (size_t)(dot2 - part[1]);
	part[2] = dot2 + 1;
	plen[2] = len - (size_t)(part[2] - token);
	return true;
}

/* Decode one part as a JSON object into *out, using buf from *used. */
static bool
jwt_decode_object(jwt_parsed *p, size_t *used, const char *b64, size_t len,
    json_t **out)
{
	size_t n;

	if (len == 0 || !revoke__b64url_decode(b64, len, p->buf + *used,
	                    sizeof(p->buf) - *used, &n))
		return false;
	*out = json_loadb((const char *)p->buf + *used, n,
	    JSON_REJECT_DUPLICATES, NULL);
	*used += n;
	return json_is_object(*out);
}

/*
 * Member name of o, a string, copied into dst (capacity cap) when present.
 * False when it is not a string, does not fit, or is empty and must not be.
 */
static bool
claim_string(json_t *o, const char *name, char *dst, size_t cap, bool nonempty,
    bool *present)
{
	json_t *m = json_object_get(o, name);
	size_t len;

	if (present != NULL)
		*present = m != NULL;
	if (m == NULL)
		return true;
	if (!json_is_string(m))
		return false;
	len = json_string_length(m);
	if (len >= cap || (nonempty && len == 0))
		return false;
	memcpy(dst, json_string_value(m), len + 1);
	return true;
}

/* Member name of o, a NumericDate, into *val when present. */
static bool
claim_time(json_t *o, const char *name, bool *has, int64_t *val)
{
	json_t *m = json_object_get(o, name);

	*has = m != NULL;
	if (m == NULL)
		return true;
	if (!json_is_integer(m) || json_integer_value(m) < 0 ||
	    json_integer_value(m) > JWT_TIME_MAX)
		return false;
	*val = (int64_t)json_integer_value(m);
	return true;
}

/* The header's alg, kid and crit into p and c. */
static bool
jwt_read_header(jwt_parsed *p, revoke_claims *c)
{
	json_t *alg = json_object_get(p->header, "alg");

	if (!json_is_string(alg) || json_object_get(p->header, "crit") != NULL)
		return false;
	if (json_string_length(alg) < sizeof(c->alg))
		memcpy(c->alg, json_string_value(alg),
		    json_string_length(alg) + 1);
	p->alg = revoke__alg_bit(json_string_value(alg));
	return claim_string(p->header, "kid", c->kid, sizeof(c->kid), true,
	    &p->has_kid);
}

/* aud: a string, or an array of strings, each at most a claim's length. */
static bool
aud_valid(json_t *aud)
{
	json_t *m;
	size_t i;

	if (json_is_string(aud))
		return json_string_length(aud) < REVOKE_CLAIM_MAX;
	if (!json_is_array(aud))
		return false;
	json_array_foreach(aud, i, m)
	{
		if (!json_is_string(m) ||
		    json_string_length(m) >= REVOKE_CLAIM_MAX)
			return false;
	}
	return true;
}

/* The payload's claims into p and c. */
static bool
jwt_read_payload(jwt_parsed *p, revoke_claims *c)
{
	json_t *o = p->payload, *ver;

	if (!claim_string(o, "iss", c->iss, sizeof(c->iss), false,
	        &p->has_iss) ||
	    !claim_string(o, "sub", c->sub, sizeof(c->sub), true, NULL) ||
	    !claim_string(o, "jti", c->jti, sizeof(c->jti), true, NULL) ||
	    !claim_string(o, "sid", c->sid, sizeof(c->sid), true, NULL) ||
	    !claim_time(o, "exp", &c->has_exp, &c->exp) ||
	    !claim_time(o, "nbf", &c->has_nbf, &c->nbf) ||
	    !claim_time(o, "iat", &c->has_iat, &c->iat))
		return false;
	if ((ver = json_object_get(o, "ver")) != NULL) {
		if (!json_is_integer(ver) || json_integer_value(ver) < 0)
			return false;
		c->has_ver = true;
		c->ver = (uint64_t)json_integer_value(ver);
	}
	p->aud = json_object_get(o, "aud");
	return p->aud == NULL || aud_valid(p->aud);
}

/* Take token apart into p, and what it claims into c. */
static revoke_reason
jwt_parse(const char *token, size_t len, jwt_parsed *p, revoke_claims *c)
{
	const char *part[3];
	size_t plen[3], used = 0;

	if (len > REVOKE_TOKEN_MAX || !jwt_split(token, len, part, plen))
		return REVOKE_TOKEN_MALFORMED;
	if (!jwt_decode_object(p, &used, part[0], plen[0], &p->header) ||
	    !jwt_read_header(p, c))
		return REVOKE_TOKEN_MALFORMED;
	if (!jwt_decode_object(p, &used, part[1], plen[1], &p->payload) ||
	    !jwt_read_payload(p, c))
		return REVOKE_TOKEN_MALFORMED;
	p->sig = p->buf + used;
	if (!revoke__b64url_decode(part[2], plen[2], p->buf + used,
	        sizeof(p->buf) - used, &p->sig_len))
		return REVOKE_TOKEN_MALFORMED;
	p->signed_len = plen[0] + 1 + plen[1];
	return REVOKE_TOKEN_OK;
}

/* ------------------------------------------------------------------------ */
/* Signatures                                                               */
/* ------------------------------------------------------------------------ */

/* A JWS ES256 signature (r || s, 32 bytes each) as DER into der. */
static bool
es256_to_der(const uint8_t *sig, size_t sig_len, uint8_t *der, size_t cap,
    size_t *der_len)
{
	ECDSA_SIG *es;
	BIGNUM *r, *s;
	unsigned char *p = der;
	int n;
	bool ok = false;

	if (sig_len != 64)
		return false;
	es = ECDSA_SIG_new();
	r = BN_bin2bn(sig, 32, NULL);
	s = BN_bin2bn(sig + 32, 32, NULL);
	if (es == NULL || r == NULL || s == NULL ||
	    ECDSA_SIG_set0(es, r, s) != 1)
		goto out;
	r = s = NULL; /* es owns them */
	n = i2d_ECDSA_SIG(es, NULL);
	if (n <= 0 || (size_t)n > cap || i2d_ECDSA_SIG(es, &p) != n)
		goto out;
	*der_len = (size_t)n;
	ok = true;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(es);
	return ok;
}

/* One-shot verification of sig over msg with pkey (md NULL: EdDSA). */
static bool
evp_verify(EVP_PKEY *pkey, const EVP_MD *md, bool pkcs1, const uint8_t *sig,
    size_t sig_len, const uint8_t *msg, size_t msg_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	bool ok;

	ok = ctx != NULL &&
	     EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pkey) == 1 &&
	     (!pkcs1 ||
	         EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1) &&
	     EVP_DigestVerify(ctx, sig, sig_len, msg, msg_len) == 1;
	EVP_MD_CTX_free(ctx);
	return ok;
}

/* True when p's signature verifies with key for p's alg. */
static bool
jwt_signature_ok(const revoke_verifier *v, const jwt_parsed *p,
    const revoke__jwk *key, const char *token)
{
	const uint8_t *msg = (const uint8_t *)token, *sig = p->sig;
	size_t sig_len = p->sig_len;
	uint8_t der[80];
	bool ok = false;

	/* OpenSSL's errors stay ours: the caller's queue is left as it was. */
	ERR_set_mark();
	switch (p->alg) {
	case REVOKE_ALG_ES256:
		ok = es256_to_der(sig, sig_len, der, sizeof(der), &sig_len) &&
		     evp_verify(key->pkey, v->sha256, false, der, sig_len, msg,
		         p->signed_len);
		break;
	case REVOKE_ALG_RS256:
		ok = sig_len == (size_t)EVP_PKEY_get_size(key->pkey) &&
		     evp_verify(key->pkey, v->sha256, true, sig, sig_len, msg,
		         p->signed_len);
		break;
	case REVOKE_ALG_EDDSA:
		ok = sig_len == 64 && evp_verify(key->pkey, NULL, false, sig,
		                          sig_len, msg, p->signed_len);
		break;
	}
	ERR_pop_to_mark();
	return ok;
}

/* ------------------------------------------------------------------------ */
/* Claims                                                                   */
/* ------------------------------------------------------------------------ */

/* The time checks; *drift how far outside the window on a refusal. */
static revoke_reason
claims_times(const revoke_verifier *v, const revoke_claims *c, int64_t now,
    int64_t *drift)
{
	int64_t lw = v->leeway_s;

	if (!c->has_exp)
		return REVOKE_TOKEN_CLAIM_MISSING;
	if (c->exp + lw <= now) {
		*drift = now - (c->exp + lw) + 1;
		return REVOKE_TOKEN_EXPIRED;
	}
	if (c->has_nbf && c->nbf - lw > now) {
		*drift = c->nbf - lw - now;
		return REVOKE_TOKEN_NOT_YET_VALID;
	}
	if (c->has_iat && c->iat - lw > now) {
		*drift = c->iat - lw - now;
		return REVOKE_TOKEN_ISSUED_IN_FUTURE;
	}
	if (v->max_age_s == 0)
		return REVOKE_TOKEN_OK;
	if (!c->has_iat)
		return REVOKE_TOKEN_CLAIM_MISSING;
	/* iat + max_age + leeway <= now, without overflow (max_age >= 0). */
	if (c->iat + lw <= now - v->max_age_s) {
		*drift = (now - v->max_age_s) - (c->iat + lw) + 1;
		return REVOKE_TOKEN_TOO_OLD;
	}
	return REVOKE_TOKEN_OK;
}

/* Tell the log callback about a time refusal. */
static void
claims_report(const revoke_verifier *v, revoke_reason r, const revoke_claims *c,
    int64_t now, int64_t drift)
{
	revoke_time_report rep = {
		.reason = r,
		.region = v->region,
		.server_time = now,
		.iat = c->has_iat ? c->iat : 0,
		.exp = c->has_exp ? c->exp : 0,
		.nbf = c->has_nbf ? c->nbf : 0,
		.drift_s = drift,
	};

	if (v->log != NULL)
		v->log(v->log_arg, &rep);
}

/* True when aud (a string or an array of strings) holds want. */
static bool
aud_holds(json_t *aud, const char *want)
{
	json_t *m;
	size_t i;

	if (json_is_string(aud))
		return strcmp(json_string_value(aud), want) == 0;
	json_array_foreach(aud, i, m)
	{
		if (strcmp(json_string_value(m), want) == 0)
			return true;
	}
	return false;
}

/* The times, iss and aud against the verifier's policy. */
static revoke_reason
claims_check(const revoke_verifier *v, const jwt_parsed *p,
    const revoke_claims *c, int64_t now)
{
	int64_t drift = 0;
	revoke_reason r = claims_times(v, c, now, &drift);

	if (r != REVOKE_TOKEN_OK) {
		if (r != REVOKE_TOKEN_CLAIM_MISSING)
			claims_report(v, r, c, now, drift);
		return r;
	}
	if (v->issuer != NULL) {
		if (!p->has_iss)
			return REVOKE_TOKEN_CLAIM_MISSING;
		if (strcmp(c->iss, v->issuer) != 0)
			return REVOKE_TOKEN_ISSUER;
	}
	if (v->audience != NULL) {
		if (p->aud == NULL)
			return REVOKE_TOKEN_CLAIM_MISSING;
		if (!aud_holds(p->aud, v->audience))
			return REVOKE_TOKEN_AUDIENCE;
	}
	return REVOKE_TOKEN_OK;
}

/* ------------------------------------------------------------------------ */
/* Revocation                                                               */
/* ------------------------------------------------------------------------ */

/* The reason a verdict gives, or UNAVAILABLE for one we do not know. */
static revoke_reason
verdict_reason(revoke_verdict verdict)
{
	switch (verdict) {
	case REVOKE_VALID:
		return REVOKE_TOKEN_OK;
	case REVOKE_REVOKED_TOKEN:
		return REVOKE_TOKEN_REVOKED;
	case REVOKE_REVOKED_SESSION:
		return REVOKE_TOKEN_SESSION_REVOKED;
	case REVOKE_STALE_VERSION:
		return REVOKE_TOKEN_STALE_VERSION;
	case REVOKE_REVOKED_NOT_BEFORE:
		return REVOKE_TOKEN_REVOKED_NOT_BEFORE;
	}
	return REVOKE_TOKEN_UNAVAILABLE;
}

/* Ask the client or the reader about c; out's reason, checked, answer. */
static revoke_status
revocation_check(revoke_verifier *v, const revoke_claims *c, revoke_result *out)
{
	revoke_query q = {
		.jti = c->jti[0] ? c->jti : NULL,
		.jti_len = strlen(c->jti),
		.sid = c->sid[0] ? c->sid : NULL,
		.sid_len = strlen(c->sid),
		.sub = c->sub[0] ? c->sub : NULL,
		.sub_len = strlen(c->sub),
		.has_ver = c->has_ver,
		.ver = c->ver,
		.has_iat = c->has_iat,
		.iat = c->iat,
	};
	revoke_answer a;
	revoke_status st;

	memset(&a, 0, sizeof(a));
	if (v->reader != NULL) {
		st = revoke_reader_check(v->reader, &q, &a);
	} else {
		pthread_mutex_lock(&v->client_lock);
		st = revoke_client_check(v->client, &q, &a);
		pthread_mutex_unlock(&v->client_lock);
	}
	if (st != REVOKE_OK) {
		out->reason = REVOKE_TOKEN_UNAVAILABLE;
		return st;
	}
	out->checked = true;
	out->answer = a;
	out->reason = verdict_reason(a.verdict);
	if (out->reason == REVOKE_TOKEN_UNAVAILABLE)
		return REVOKE_E_PROTOCOL;
	if (out->reason == REVOKE_TOKEN_OK && v->max_staleness_ms > 0 &&
	    a.staleness_ms > v->max_staleness_ms)
		out->reason = REVOKE_TOKEN_STALE_STATE;
	return REVOKE_OK;
}

/* ------------------------------------------------------------------------ */
/* Verification                                                             */
/* ------------------------------------------------------------------------ */

/* Steps 1 to 6 of the theory: the token itself, without revocation. */
static revoke_reason
jwt_check(revoke_verifier *v, const char *token, size_t len, int64_t now,
    jwt_parsed *p, revoke_claims *c)
{
	revoke__keyset *ks = NULL;
	const revoke__jwk *key = NULL;
	revoke_reason r = jwt_parse(token, len, p, c);

	if (r != REVOKE_TOKEN_OK)
		return r;
	if (p->alg == 0 || (p->alg & v->algorithms) == 0)
		return REVOKE_TOKEN_ALG;
	r = key_choose(v, p->alg, c->kid, p->has_kid, &ks, &key);
	if (r == REVOKE_TOKEN_OK && !jwt_signature_ok(v, p, key, token))
		r = REVOKE_TOKEN_SIGNATURE;
	revoke__keyset_unref(ks);
	if (r != REVOKE_TOKEN_OK)
		return r;
	return claims_check(v, p, c, now);
}

revoke_status
revoke_jwt_verify(revoke_verifier *v, const char *token, size_t len,
    int64_t now, revoke_result *out)
{
	jwt_parsed p;
	revoke_status st = REVOKE_OK;

	if (out != NULL)
		memset(out, 0, sizeof(*out));
	if (v == NULL || token == NULL || out == NULL || now < 0)
		return REVOKE_E_INVALID;
	if (now == 0)
		now = (int64_t)time(NULL);
	if (len == 0)
		len = strnlen(token, REVOKE_TOKEN_MAX + 1);
	p.header = p.payload = p.aud = NULL;
	p.has_kid = p.has_iss = false;
	p.alg = 0;
	out->reason = jwt_check(v, token, len, now, &p, &out->claims);
	jwt_parsed_free(&p);
	if (out->reason != REVOKE_TOKEN_OK ||
	    (v->client == NULL && v->reader == NULL))
		return REVOKE_OK;
	/* A token with no id could never be revoked: not accepted. */
	if (!out->claims.jti[0] && !out->claims.sid[0] && !out->claims.sub[0])
		out->reason = REVOKE_TOKEN_CLAIM_MISSING;
	else
		st = revocation_check(v, &out->claims, out);
	return st;
}
