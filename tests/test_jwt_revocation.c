/*
 * test_jwt_revocation.c: revocation in librevoke's JWT verifier: tokens
 * minted by tests/jwt_mint.c, checked through a direct reader of a store
 * written here with the crdt writer, as an agent would have left it (each
 * verdict as the token's reason, the staleness policy), and through a
 * socket client whose agent went away (UNAVAILABLE). The fixture's keys
 * and JWKS come from jwt_fixture.c, as in test_jwt.c.
 *
 * The tests run at the real time, since the reader's staleness is measured
 * on the real clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "jwt_fixture.h"
#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* Revocation through a direct reader                                       */
/* ------------------------------------------------------------------------ */

/* Two data dirs: one without watermarks, one saying a peer is 10 s old. */
struct rfx {
	struct jfx *jf;
	char *dir, *fresh, *stale, *secret;
	revoke_reader *reader, *stale_reader;
	int64_t now;
};

/* The cluster secret, in a private file. */
static char *
secret_write(const char *dir, uint8_t secret[CRDT_SECRET_LEN])
{
	char *path = fmt("%s/secret", dir);
	int fd;

	for (int i = 0; i < CRDT_SECRET_LEN; i++)
		secret[i] = (uint8_t)(i * 7 + 1);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, secret, CRDT_SECRET_LEN), CRDT_SECRET_LEN);
	close(fd);
	return path;
}

/* A token entry of id, revoked a second ago. */
static crdt_entry
revoked(crdt_keyer *k, crdt_kind kind, const char *id, int64_t now)
{
	crdt_entry e;

	memset(&e, 0, sizeof(e));
	e.kind = kind;
	assert_int_equal(crdt_key_derive(k, kind, id, strlen(id), &e.key),
	    REVOKD_OK);
	e.u.token.exp = now + 3600;
	e.u.token.revoked_at = CRDT_HLC_AT((uint64_t)(now - 1) * 1000);
	e.u.token.origin = 1;
	return e;
}

/* A subject entry of sub: version, not-before. */
static crdt_entry
subject(crdt_keyer *k, const char *sub, uint64_t version, uint64_t nb_ms)
{
	crdt_entry e;

	memset(&e, 0, sizeof(e));
	e.kind = CRDT_KIND_SUB;
	assert_int_equal(
	    crdt_key_derive(k, CRDT_KIND_SUB, sub, strlen(sub), &e.key),
	    REVOKD_OK);
	e.u.subject.not_before_ms = nb_ms;
	if (version > 0) {
		e.u.subject.n = 1;
		e.u.subject.region[0] = 1;
		e.u.subject.count[0] = version;
	}
	return e;
}

/* Write the agent's watermarks: ours now, a peer's age_ms ago. */
static void
watermarks_put(crdt_store *s, uint64_t age_ms)
{
	struct timespec ts;
	uint64_t now_us, t[2];
	uint16_t id[2] = { 1, 2 };
	uint8_t buf[20];

	clock_gettime(CLOCK_REALTIME, &ts);
	now_us = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	t[0] = now_us;
	t[1] = now_us - age_ms * 1000;
	for (int i = 0; i < 2; i++) {
		for (int b = 0; b < 2; b++)
			buf[i * 10 + b] = (uint8_t)(id[i] >> (8 * b));
		for (int b = 0; b < 8; b++)
			buf[i * 10 + 2 + b] = (uint8_t)(t[i] >> (8 * b));
	}
	assert_int_equal(crdt_store_meta_put(s, "revokd.watermarks", buf, 20),
	    REVOKD_OK);
}

/* A store in dir with the entries the revocation tests expect. */
static void
store_write(const char *dir, const uint8_t *secret, int64_t now, bool stale)
{
	crdt_store_options so = { .no_sync = true };
	crdt_store *s = NULL;
	crdt_keyer *k = NULL;
	crdt_entry in[4];
	crdt_apply_stats st;

	assert_int_equal(crdt_store_open(dir, &so, &s), REVOKD_OK);
	assert_int_equal(crdt_keyer_new(secret, CRDT_SECRET_LEN, &k),
	    REVOKD_OK);
	assert_int_equal(crdt_store_bind_secret(s, k), REVOKD_OK);
	in[0] = revoked(k, CRDT_KIND_JTI, "tok-revoked", now);
	in[1] = revoked(k, CRDT_KIND_SID, "sess-revoked", now);
	in[2] = subject(k, "carol", 3, 0);
	in[3] = subject(k, "dave", 0, (uint64_t)(now - 100) * 1000);
	assert_int_equal(crdt_store_apply(s, in, 4, now, NULL, &st), REVOKD_OK);
	assert_int_equal(st.changed, 4);
	/* The agent's peer heard from 10 s ago, or just now. */
	watermarks_put(s, stale ? 10000 : 0);
	crdt_keyer_free(k);
	/* Closed before the reader opens: one env per process (LMDB). */
	crdt_store_close(s);
}

static int
rev_setup(void **state)
{
	struct rfx *r = calloc(1, sizeof(*r));
	uint8_t secret[CRDT_SECRET_LEN];

	assert_non_null(r);
	group_setup((void **)&r->jf);
	r->dir = tu_tmpdir();
	r->now = (int64_t)time(NULL);
	r->secret = secret_write(r->dir, secret);
	r->fresh = fmt("%s/fresh", r->dir);
	r->stale = fmt("%s/stale", r->dir);
	assert_int_equal(mkdir(r->fresh, 0700), 0);
	assert_int_equal(mkdir(r->stale, 0700), 0);
	store_write(r->fresh, secret, r->now, false);
	store_write(r->stale, secret, r->now, true);
	assert_int_equal(revoke_reader_open(r->fresh, r->secret, &r->reader),
	    REVOKE_OK);
	assert_int_equal(
	    revoke_reader_open(r->stale, r->secret, &r->stale_reader),
	    REVOKE_OK);
	*state = r;
	return 0;
}

static int
rev_teardown(void **state)
{
	struct rfx *r = *state;

	revoke_reader_close(r->reader);
	revoke_reader_close(r->stale_reader);
	group_teardown((void **)&r->jf);
	free(r->fresh);
	free(r->stale);
	free(r->secret);
	tu_rmdir(r->dir);
	free(r);
	return 0;
}

/* A token of the fixture's ES256 key with these ids (JSON members). */
static char *
rev_token(const struct rfx *r, const char *ids)
{
	return token_of(r->jf->es,
	    fmt("{%s,\"iat\":%lld,\"exp\":%lld}", ids, (long long)r->now - 10,
	        (long long)r->now + 600));
}

static revoke_verifier *
rev_verifier(const struct rfx *r, revoke_reader *reader, uint64_t max_ms)
{
	return verifier(r->jf, (revoke_verifier_options){ .reader = reader,
	                           .max_staleness_ms = max_ms });
}

/* Each verdict of the reader, as the token's reason. */
static void
test_revocation_verdicts(void **state)
{
	struct rfx *r = *state;
	revoke_verifier *v = rev_verifier(r, r->reader, 0);
	revoke_result res;

	res = verify(v, rev_token(r, "\"jti\":\"tok-fine\",\"sub\":\"eve\""),
	    r->now);
	assert_int_equal(res.reason, REVOKE_TOKEN_OK);
	assert_true(res.checked);
	assert_int_equal(res.answer.verdict, REVOKE_VALID);
	assert_true(res.answer.staleness_ms < 10000); /* heard just now */

	res = verify(v, rev_token(r, "\"jti\":\"tok-revoked\""), r->now);
	assert_int_equal(res.reason, REVOKE_TOKEN_REVOKED);
	assert_true(res.checked);
	assert_int_equal(res.answer.verdict, REVOKE_REVOKED_TOKEN);

	res = verify(v,
	    rev_token(r, "\"jti\":\"tok-2\",\"sid\":\"sess-revoked\""), r->now);
	assert_int_equal(res.reason, REVOKE_TOKEN_SESSION_REVOKED);
	assert_int_equal(res.answer.verdict, REVOKE_REVOKED_SESSION);

	/* carol's version is 3: ver 2 is stale, 3 is fine. */
	res = verify(v, rev_token(r, "\"sub\":\"carol\",\"ver\":2"), r->now);
	assert_int_equal(res.reason, REVOKE_TOKEN_STALE_VERSION);
	assert_int_equal(res.answer.version, 3);
	expect_reason(v, rev_token(r, "\"sub\":\"carol\",\"ver\":3"), r->now,
	    REVOKE_TOKEN_OK);

	/* dave's not-before is 100 s ago. */
	res = verify(v,
	    token_of(r->jf->es,
	        fmt("{\"sub\":\"dave\",\"iat\":%lld,\"exp\":%lld}",
	            (long long)r->now - 200, (long long)r->now + 600)),
	    r->now);
	assert_int_equal(res.reason, REVOKE_TOKEN_REVOKED_NOT_BEFORE);
	assert_int_equal(res.answer.verdict, REVOKE_REVOKED_NOT_BEFORE);
	expect_reason(v, rev_token(r, "\"sub\":\"dave\""), r->now,
	    REVOKE_TOKEN_OK);

	/* A token with no id could never be revoked. */
	res = verify(v,
	    token_of(r->jf->es, fmt("{\"exp\":%lld}", (long long)r->now + 60)),
	    r->now);
	assert_int_equal(res.reason, REVOKE_TOKEN_CLAIM_MISSING);
	assert_false(res.checked);

	/* A token refused before revocation is not checked. */
	res = verify(v, rev_token(r, "\"jti\":\"tok-revoked\""), r->now + 3600);
	assert_int_equal(res.reason, REVOKE_TOKEN_EXPIRED);
	assert_false(res.checked);
	revoke_verifier_free(v);
}

/* The staleness policy: over it, STALE_STATE; a revocation still wins. */
static void
test_revocation_staleness(void **state)
{
	struct rfx *r = *state;
	revoke_verifier *v = rev_verifier(r, r->stale_reader, 5000);
	revoke_verifier *lax = rev_verifier(r, r->stale_reader, 60000);
	revoke_verifier *none = rev_verifier(r, r->stale_reader, 0);
	revoke_result res;

	res = verify(v, rev_token(r, "\"jti\":\"tok-fine\""), r->now);
	assert_int_equal(res.reason, REVOKE_TOKEN_STALE_STATE);
	assert_true(res.checked);
	assert_int_equal(res.answer.verdict, REVOKE_VALID);
	assert_true(res.answer.staleness_ms >= 10000);
	assert_true(res.answer.staleness_ms < 60000);

	expect_reason(v, rev_token(r, "\"jti\":\"tok-revoked\""), r->now,
	    REVOKE_TOKEN_REVOKED);
	expect_reason(lax, rev_token(r, "\"jti\":\"tok-fine\""), r->now,
	    REVOKE_TOKEN_OK);
	expect_reason(none, rev_token(r, "\"jti\":\"tok-fine\""), r->now,
	    REVOKE_TOKEN_OK);

	/* The peer was heard just now: a policy of 10 s passes. */
	revoke_verifier_free(v);
	v = rev_verifier(r, r->reader, 10000);
	expect_reason(v, rev_token(r, "\"jti\":\"tok-fine\""), r->now,
	    REVOKE_TOKEN_OK);
	revoke_verifier_free(v);
	revoke_verifier_free(lax);
	revoke_verifier_free(none);
}

/* A source that fails: UNAVAILABLE, and the source's status returned. */
static void
test_revocation_unavailable(void **state)
{
	struct rfx *r = *state;
	char *path = fmt("%s/agent.sock", r->dir);
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	revoke_client_options co = { .timeout_ms = 500 };
	revoke_client *c = NULL;
	revoke_verifier *v;
	revoke_result res;
	char *t;
	int ls = socket(AF_UNIX, SOCK_STREAM, 0);

	/* An agent that takes the connection, then goes away. */
	assert_true(ls >= 0);
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
	assert_int_equal(bind(ls, (struct sockaddr *)&addr, sizeof(addr)), 0);
	assert_int_equal(listen(ls, 4), 0);
	assert_int_equal(revoke_client_open(path, &co, &c), REVOKE_OK);
	close(ls);
	unlink(path);

	v = verifier(r->jf, (revoke_verifier_options){ .client = c });
	t = rev_token(r, "\"jti\":\"tok-fine\"");
	assert_int_not_equal(revoke_jwt_verify(v, t, 0, r->now, &res),
	    REVOKE_OK);
	assert_int_equal(res.reason, REVOKE_TOKEN_UNAVAILABLE);
	assert_false(res.checked);
	assert_string_equal(res.claims.jti, "tok-fine");
	free(t);
	revoke_verifier_free(v);
	revoke_client_close(c);
	free(path);
}

int
main(void)
{
	const struct CMUnitTest revocation_tests[] = {
		cmocka_unit_test(test_revocation_verdicts),
		cmocka_unit_test(test_revocation_staleness),
		cmocka_unit_test(test_revocation_unavailable),
	};

	return cmocka_run_group_tests_name("revocation", revocation_tests,
	    rev_setup, rev_teardown);
}
