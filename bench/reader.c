/*
 * reader.c: the "reader" suite: librevoke's direct reader, on one thread,
 * over a store of --entries revoked tokens.
 *
 *   reader_checks_per_s       revoke_reader_check of a jti (half of them
 *                             revoked, half unknown): key derivation,
 *                             snapshot, lookup, watermarks
 *   reader_full_checks_per_s  a jti, a sid and a sub with ver in one check
 *                             (three derivations, three lookups)
 *   verify_es256_per_s        revoke_jwt_verify of ES256 tokens (parse,
 *                             signature, claims) with the revocation check
 *                             through the reader; verify_rs256_per_s and
 *                             verify_eddsa_per_s likewise
 *
 * The store is filled in-process and closed; the reader then opens it as
 * a verifier would, read-only, with the secret from a file.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include "bench/bench.h"
#include "jwt_mint.h"
#include "revoke.h"

/* Checks per round. */
#define CHECKS 1000000

/* Distinct tokens a verification round cycles through, and verifications. */
#define TOKENS 1000
#define VERIFIES 20000

/* Fill the store in dir with o->entries tokens and write its secret. */
static int
reader_fill(const bench_opts *o, const char *dir, char *secret_path, size_t cap)
{
	crdt_store_options so = { .map_size = (size_t)64 << 30,
		.no_sync = true };
	crdt_entry *batch = calloc(o->batch, sizeof(*batch));
	crdt_store *s = NULL;
	crdt_keyer *k = NULL;
	FILE *f;
	int rc = -1;

	snprintf(secret_path, cap, "%s/secret", dir);
	if (batch == NULL ||
	    crdt_keyer_new(bench_secret, CRDT_SECRET_LEN, &k) != REVOKD_OK ||
	    crdt_store_open(dir, &so, &s) != REVOKD_OK ||
	    crdt_store_bind_secret(s, k) != REVOKD_OK ||
	    bench_populate(s, k, o->entries, (int64_t)time(NULL), batch,
	        o->batch) < 0)
		goto out;
	if ((f = fopen(secret_path, "wb")) == NULL)
		goto out;
	if (fchmod(fileno(f), 0600) == 0 &&
	    fwrite(bench_secret, 1, CRDT_SECRET_LEN, f) == CRDT_SECRET_LEN)
		rc = 0;
	if (fclose(f) != 0)
		rc = -1;
out:
	if (rc != 0)
		fprintf(stderr, "revokd-bench: reader: cannot fill %s\n", dir);
	crdt_store_close(s);
	crdt_keyer_free(k);
	free(batch);
	return rc;
}

/* One round of CHECKS checks; checks/s, or -1 when answers are wrong. */
static double
reader_round(const bench_opts *o, revoke_reader *r, revokd_rng *rng, bool full)
{
	uint64_t revoked = 0, stale = 0;
	double t0, t;

	t0 = bench_now();
	for (uint64_t i = 0; i < CHECKS; i++) {
		char jti[48], sid[48], sub[48];
		/* Half the ids were populated, half were not. */
		uint64_t pick = revokd_rng_below(rng, o->entries) +
		                (i % 2 ? o->entries : 0);
		revoke_query q = { .jti = jti,
			.jti_len =
			    (size_t)bench_token_id(pick, jti, sizeof(jti)) };
		revoke_answer a;

		if (full) {
			q.sid = sid;
			q.sid_len = (size_t)snprintf(sid, sizeof(sid),
			    "bench-session-%" PRIu64, pick);
			q.sub = sub;
			q.sub_len = (size_t)snprintf(sub, sizeof(sub),
			    "bench-user-%" PRIu64, pick % 100000);
			q.has_ver = true;
			q.ver = 0;
		}
		if (revoke_reader_check(r, &q, &a) != REVOKE_OK)
			return -1;
		revoked += a.verdict == REVOKE_REVOKED_TOKEN;
		stale += a.verdict == REVOKE_STALE_VERSION;
	}
	t = bench_now() - t0;
	if (revoked < CHECKS / 2 - CHECKS / 20 ||
	    revoked > CHECKS / 2 + CHECKS / 20 || stale != 0) {
		fprintf(stderr,
		    "revokd-bench: reader: %" PRIu64 " of %d checks revoked, "
		    "expected about half\n",
		    revoked, CHECKS);
		return -1;
	}
	return CHECKS / t;
}

/* TOKENS tokens of key k: every tenth one's jti revoked in the store. */
static char **
verify_tokens(const bench_opts *o, mint_key *k)
{
	char **tok = calloc(TOKENS, sizeof(*tok));
	int64_t now = (int64_t)time(NULL);

	if (tok == NULL)
		return NULL;
	for (uint64_t i = 0; i < TOKENS; i++) {
		char jti[48], payload[256];

		/* Populated ids are revoked; ids past o->entries are not. */
		bench_token_id(i % 10 ? o->entries + i : i, jti, sizeof(jti));
		snprintf(payload, sizeof(payload),
		    "{\"iss\":\"https://issuer.example\",\"sub\":"
		    "\"bench-user-%" PRIu64 "\",\"jti\":\"%s\",\"iat\":%lld,"
		    "\"exp\":%lld,\"ver\":0}",
		    i, jti, (long long)now - 60, (long long)now + 3600);
		tok[i] = mint_token(k, NULL, payload);
	}
	return tok;
}

/* Verifications per second of tokens signed with alg, checked by r. */
static double
verify_round(const bench_opts *o, const char *dir, revoke_reader *r,
    unsigned alg)
{
	char jwks[4096];
	mint_key *k = mint_key_new(alg, "bench-key");
	char **tok = verify_tokens(o, k);
	revoke_verifier_options vo = { .jwks_file = jwks,
		.issuer = "https://issuer.example",
		.reader = r };
	revoke_verifier *v = NULL;
	uint64_t revoked = 0, bad = 0;
	double t0, t = -1;

	snprintf(jwks, sizeof(jwks), "%s/jwks.json", dir);
	mint_jwks_write(jwks, &k, 1);
	if (tok == NULL || revoke_verifier_new(&vo, &v) != REVOKE_OK)
		goto out;
	t0 = bench_now();
	for (int i = 0; i < VERIFIES; i++) {
		revoke_result res;

		if (revoke_jwt_verify(v, tok[i % TOKENS], 0, 0, &res) !=
		    REVOKE_OK)
			goto out;
		revoked += res.reason == REVOKE_TOKEN_REVOKED;
		bad += res.reason != REVOKE_TOKEN_REVOKED &&
		       res.reason != REVOKE_TOKEN_OK;
	}
	t = bench_now() - t0;
	if (bad != 0 || revoked != VERIFIES / 10) {
		fprintf(stderr,
		    "revokd-bench: reader: %" PRIu64 " tokens refused, %" PRIu64
		    " revoked of %d\n",
		    bad, revoked, VERIFIES);
		t = -1;
	}
out:
	revoke_verifier_free(v);
	for (int i = 0; tok != NULL && i < TOKENS; i++)
		free(tok[i]);
	free(tok);
	mint_key_free(k);
	return t < 0 ? -1 : VERIFIES / t;
}

int
bench_reader(const bench_opts *o)
{
	char *dir = bench_mkdtemp(o);
	char secret[4096];
	double *jti = calloc(o->rounds, sizeof(double));
	double *full = calloc(o->rounds, sizeof(double));
	static const struct {
		unsigned alg;
		const char *metric;
	} algs[] = { { REVOKE_ALG_ES256, "verify_es256_per_s" },
		{ REVOKE_ALG_RS256, "verify_rs256_per_s" },
		{ REVOKE_ALG_EDDSA, "verify_eddsa_per_s" } };
	double *ver[3] = { calloc(o->rounds, sizeof(double)),
		calloc(o->rounds, sizeof(double)),
		calloc(o->rounds, sizeof(double)) };
	revoke_reader *r = NULL;
	revoke_status st;
	revokd_rng rng;
	int rc = 1;

	revokd_rng_seed(&rng, o->seed);
	if (jti == NULL || full == NULL || !ver[0] || !ver[1] || !ver[2] ||
	    reader_fill(o, dir, secret, sizeof(secret)) != 0)
		goto out;
	if ((st = revoke_reader_open(dir, secret, &r)) != REVOKE_OK) {
		fprintf(stderr, "revokd-bench: reader: %s\n",
		    revoke_strerror(st));
		goto out;
	}
	for (unsigned i = 0; i < o->rounds; i++) {
		if ((jti[i] = reader_round(o, r, &rng, false)) < 0 ||
		    (full[i] = reader_round(o, r, &rng, true)) < 0)
			goto out;
		for (size_t a = 0; a < 3; a++)
			if ((ver[a][i] = verify_round(o, dir, r, algs[a].alg)) <
			    0)
				goto out;
	}
	bench_emit(o, "reader", "entries", (double)o->entries, "entries");
	bench_emit(o, "reader", "reader_checks_per_s",
	    bench_median(jti, o->rounds), "1/s");
	bench_emit(o, "reader", "reader_full_checks_per_s",
	    bench_median(full, o->rounds), "1/s");
	for (size_t a = 0; a < 3; a++)
		bench_emit(o, "reader", algs[a].metric,
		    bench_median(ver[a], o->rounds), "1/s");
	rc = 0;
out:
	revoke_reader_close(r);
	free(jti);
	free(full);
	for (size_t a = 0; a < 3; a++)
		free(ver[a]);
	bench_rmdir(dir);
	return rc;
}
