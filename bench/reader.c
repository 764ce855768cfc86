/*
 * reader.c: the "reader" suite: librevoke's direct reader, on one thread,
 * over a store of --entries revoked tokens.
 *
 *   reader_checks_per_s       revoke_reader_check of a jti (half of them
 *                             revoked, half unknown): key derivation,
 *                             snapshot, lookup, watermarks
 *   reader_hit_checks_per_s   the same, every jti revoked
 *   reader_miss_checks_per_s  the same, no jti revoked (most traffic)
 *   mdb_get_per_s             raw mdb_get of the same mix of keys, by the
 *                             writer before it closes: the B-tree's floor
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
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "bench/bench.h"
#include "jwt_mint.h"
#include "revoke.h"

/* Checks per round, and distinct query ids a round cycles through. */
#define CHECKS 1000000
#define IDS 262144

/* Which ids a round asks about. */
enum mix { MIX_HALF, MIX_HITS, MIX_MISSES };

/* Distinct tokens a verification round cycles through, and verifications. */
#define TOKENS 1000
#define VERIFIES 20000

/* Raw mdb_get of the half-populated mix in s: the median per second. */
static double
reader_raw(const bench_opts *o, crdt_store *s, crdt_keyer *k)
{
	double *raw = calloc(o->rounds, sizeof(double)), med = -1;
	crdt_key *keys;
	uint64_t hits;
	revokd_rng rng;

	revokd_rng_seed(&rng, o->seed + 1);
	if (raw == NULL ||
	    (keys = bench_lookup_keys(k, o->entries, &rng)) == NULL) {
		free(raw);
		return -1;
	}
	for (unsigned i = 0; i < o->rounds; i++)
		if ((raw[i] = bench_mdb_get_round(s, keys, o->entries, &hits)) <
		    0)
			goto out;
	med = bench_median(raw, o->rounds);
out:
	free(keys);
	free(raw);
	return med;
}

/*
 * Fill the store in dir with o->entries tokens and write its secret; *raw
 * is the raw mdb_get rate of the filled store.
 */
static int
reader_fill(const bench_opts *o, const char *dir, char *secret_path, size_t cap,
    double *raw)
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
	        o->batch) < 0 ||
	    (*raw = reader_raw(o, s, k)) < 0)
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

/* One query id of the mix: its token is revoked in the store or unknown. */
static char *
reader_id(const bench_opts *o, revokd_rng *rng, enum mix mix, uint64_t i)
{
	bool hit = mix == MIX_HITS || (mix == MIX_HALF && i % 2 == 0);
	uint64_t pick = revokd_rng_below(rng, o->entries);
	char id[48];

	bench_token_id(hit ? pick : o->entries + pick, id, sizeof(id));
	return strdup(id);
}

/* IDS query ids of the mix, made before the clock starts. */
static char **
reader_ids(const bench_opts *o, revokd_rng *rng, enum mix mix)
{
	char **ids = calloc(IDS, sizeof(*ids));

	for (uint64_t i = 0; ids != NULL && i < IDS; i++)
		if ((ids[i] = reader_id(o, rng, mix, i)) == NULL) {
			while (i > 0)
				free(ids[--i]);
			free(ids);
			return NULL;
		}
	return ids;
}

static void
reader_ids_free(char **ids)
{
	for (uint64_t i = 0; ids != NULL && i < IDS; i++)
		free(ids[i]);
	free(ids);
}

/*
 * The query of id (a bench_token_id); with sid and sub (room for cap
 * bytes each) it also asks for the token's session and its user at
 * version 0.
 */
static void
reader_query(const char *id, char *sid, char *sub, size_t cap, revoke_query *q)
{
	uint64_t n = strtoull(id + strlen("bench-token-"), NULL, 10);

	*q = (revoke_query){ .jti = id, .jti_len = strlen(id) };
	if (sid == NULL || sub == NULL)
		return;
	q->sid = sid;
	q->sid_len = (size_t)snprintf(sid, cap, "bench-session-%" PRIu64, n);
	q->sub = sub;
	q->sub_len =
	    (size_t)snprintf(sub, cap, "bench-user-%" PRIu64, n % 100000);
	q->has_ver = true;
	q->ver = 0;
}

/* The revoked answers a round of the mix must give, give or take 5%. */
static bool
reader_revoked_ok(enum mix mix, uint64_t revoked)
{
	uint64_t want = mix == MIX_HITS   ? CHECKS
	                : mix == MIX_HALF ? CHECKS / 2
	                                  : 0;

	return revoked + CHECKS / 20 >= want && revoked <= want + CHECKS / 20;
}

/* One round of CHECKS checks; checks/s, or -1 when answers are wrong. */
static double
reader_round(const bench_opts *o, revoke_reader *r, revokd_rng *rng,
    enum mix mix, bool full)
{
	char **ids = reader_ids(o, rng, mix);
	revoke_query *qs = calloc(IDS, sizeof(*qs));
	char(*names)[2][48] = full ? calloc(IDS, sizeof(*names)) : NULL;
	uint64_t revoked = 0, stale = 0;
	double t0, t = -1;

	if (ids == NULL || qs == NULL || (full && names == NULL))
		goto out;
	/* Queries are made before the clock starts: it times the reader. */
	for (uint64_t i = 0; i < IDS; i++)
		reader_query(ids[i], names ? names[i][0] : NULL,
		    names ? names[i][1] : NULL, sizeof(names[0][0]), &qs[i]);
	t0 = bench_now();
	for (uint64_t i = 0; i < CHECKS; i++) {
		revoke_answer a;

		if (revoke_reader_check(r, &qs[i % IDS], &a) != REVOKE_OK)
			goto out;
		revoked += a.verdict == REVOKE_REVOKED_TOKEN;
		stale += a.verdict == REVOKE_STALE_VERSION;
	}
	t = bench_now() - t0;
	if (!reader_revoked_ok(mix, revoked) || stale != 0) {
		fprintf(stderr,
		    "revokd-bench: reader: %" PRIu64 " of %d checks revoked, "
		    "not what the mix holds\n",
		    revoked, CHECKS);
		t = -1;
	}
out:
	reader_ids_free(ids);
	free(qs);
	free(names);
	return t < 0 ? -1 : CHECKS / t;
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

/* The figures of the check rounds, one array of o->rounds each. */
static const struct reader_kind {
	const char *metric;
	enum mix mix;
	bool full;
} reader_kinds[] = {
	{ "reader_checks_per_s", MIX_HALF, false },
	{ "reader_hit_checks_per_s", MIX_HITS, false },
	{ "reader_miss_checks_per_s", MIX_MISSES, false },
	{ "reader_full_checks_per_s", MIX_HALF, true },
};

#define N_KINDS (sizeof(reader_kinds) / sizeof(reader_kinds[0]))

static const struct {
	unsigned alg;
	const char *metric;
} reader_algs[] = { { REVOKE_ALG_ES256, "verify_es256_per_s" },
	{ REVOKE_ALG_RS256, "verify_rs256_per_s" },
	{ REVOKE_ALG_EDDSA, "verify_eddsa_per_s" } };

#define N_ALGS (sizeof(reader_algs) / sizeof(reader_algs[0]))

/* Every round of every figure into fig[figure][round]. */
static int
reader_rounds(const bench_opts *o, const char *dir, revoke_reader *r,
    double **fig)
{
	revokd_rng rng;

	revokd_rng_seed(&rng, o->seed);
	for (unsigned i = 0; i < o->rounds; i++) {
		for (size_t k = 0; k < N_KINDS; k++)
			if ((fig[k][i] = reader_round(o, r, &rng,
			         reader_kinds[k].mix, reader_kinds[k].full)) <
			    0)
				return -1;
		for (size_t a = 0; a < N_ALGS; a++)
			if ((fig[N_KINDS + a][i] = verify_round(o, dir, r,
			         reader_algs[a].alg)) < 0)
				return -1;
	}
	return 0;
}

int
bench_reader(const bench_opts *o)
{
	char *dir = bench_mkdtemp(o);
	char secret[4096];
	double *fig[N_KINDS + N_ALGS] = { 0 }, raw = -1;
	revoke_reader *r = NULL;
	revoke_status st;
	int rc = 1;

	for (size_t i = 0; i < N_KINDS + N_ALGS; i++)
		if ((fig[i] = calloc(o->rounds, sizeof(double))) == NULL)
			goto out;
	if (reader_fill(o, dir, secret, sizeof(secret), &raw) != 0)
		goto out;
	if ((st = revoke_reader_open(dir, secret, &r)) != REVOKE_OK) {
		fprintf(stderr, "revokd-bench: reader: %s\n",
		    revoke_strerror(st));
		goto out;
	}
	if (reader_rounds(o, dir, r, fig) != 0)
		goto out;
	bench_emit(o, "reader", "entries", (double)o->entries, "entries");
	for (size_t k = 0; k < N_KINDS; k++)
		bench_emit(o, "reader", reader_kinds[k].metric,
		    bench_median(fig[k], o->rounds), "1/s");
	bench_emit(o, "reader", "mdb_get_per_s", raw, "1/s");
	for (size_t a = 0; a < N_ALGS; a++)
		bench_emit(o, "reader", reader_algs[a].metric,
		    bench_median(fig[N_KINDS + a], o->rounds), "1/s");
	rc = 0;
out:
	revoke_reader_close(r);
	for (size_t i = 0; i < N_KINDS + N_ALGS; i++)
		free(fig[i]);
	bench_rmdir(dir);
	return rc;
}
