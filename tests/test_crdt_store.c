/*
 * test_crdt_store.c: the LMDB replica store and its readers: apply, prune,
 * verdicts, snapshots, reopen, metadata, the data dir lock and read-only
 * opens. Fingerprints and range summaries are in test_crdt_fingerprint.c.
 *
 * Every test runs in its own data dir (the fixture's), with no_sync for
 * speed. Tests that need a reader in another process fork a child that
 * opens the store itself (LMDB forbids using an env across fork, and
 * forbids opening one env twice in a process) and reports over a pipe.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "store_fixture.h"
#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* Apply                                                                    */
/* ------------------------------------------------------------------------ */

/* A new entry is added; applying the same entry again changes nothing. */
static void
test_apply_new_then_same(void **state)
{
	struct fx *f = *state;
	crdt_key j = key_of(f, CRDT_KIND_JTI, "tok-1");
	crdt_key u = key_of(f, CRDT_KIND_SUB, "alice");
	crdt_entry in[2], changed[2];
	crdt_apply_stats st;

	in[0] = token(&j, CRDT_KIND_JTI, NOW + 600, AT(5), 0);
	in[1] = subject(&u, CRDT_KIND_SUB, MS(NOW), 3, 2);
	assert_int_equal(crdt_store_count(f->s), 0);
	st = apply_ok(f->s, in, 2, NOW, changed);
	assert_stats(&st, 2, 2, 0, 0);
	assert_true(crdt_entry_equal(&changed[0], &in[0]));
	assert_true(crdt_entry_equal(&changed[1], &in[1]));
	assert_int_equal(crdt_store_count(f->s), 2);
	renew(f->r);
	expect_entry(f->r, &in[0]);
	expect_entry(f->r, &in[1]);

	memset(changed, 0xee, sizeof(changed));
	st = apply_ok(f->s, in, 2, NOW, changed);
	assert_stats(&st, 0, 0, 0, 2);
	assert_int_equal(changed[0].key.b[0], 0xee); /* nothing written */
	assert_int_equal(crdt_store_count(f->s), 2);
	renew(f->r);
	expect_entry(f->r, &in[0]);
	expect_entry(f->r, &in[1]);
}

/*
 * A later restore and a later revoke change the entry; changed[] holds the
 * merged state, not the incoming one; an older revoke changes nothing.
 */
static void
test_apply_revoke_restore(void **state)
{
	struct fx *f = *state;
	crdt_key j = key_of(f, CRDT_KIND_JTI, "tok-2");
	crdt_entry in, want, changed[1];
	crdt_apply_stats st;

	in = token(&j, CRDT_KIND_JTI, NOW + 600, AT(5), 0);
	in.u.token.origin = 2;
	in.u.token.reason = 1;
	apply_ok(f->s, &in, 1, NOW, NULL);

	/* Restore, carrying a lower exp: exp stays, revocation stays. */
	in = token(&j, CRDT_KIND_JTI, NOW + 60, 0, AT(6));
	want = token(&j, CRDT_KIND_JTI, NOW + 600, AT(5), AT(6));
	want.u.token.origin = 2;
	want.u.token.reason = 1;
	st = apply_ok(f->s, &in, 1, NOW, changed);
	assert_stats(&st, 1, 0, 0, 0);
	assert_true(crdt_entry_equal(&changed[0], &want));
	assert_false(crdt_entry_equal(&changed[0], &in));
	assert_false(crdt_token_revoked(&changed[0].u.token));
	renew(f->r);
	expect_entry(f->r, &want);

	/* Revoke again, later, from another origin. */
	in = token(&j, CRDT_KIND_JTI, NOW, AT(7), 0);
	in.u.token.origin = 1;
	in.u.token.reason = 2;
	want.u.token.revoked_at = AT(7);
	want.u.token.origin = 1;
	want.u.token.reason = 2;
	st = apply_ok(f->s, &in, 1, NOW, changed);
	assert_stats(&st, 1, 0, 0, 0);
	assert_true(crdt_entry_equal(&changed[0], &want));
	assert_true(crdt_token_revoked(&changed[0].u.token));

	/* An older revocation is already covered. */
	in = token(&j, CRDT_KIND_JTI, NOW + 600, AT(3), AT(1));
	st = apply_ok(f->s, &in, 1, NOW, changed);
	assert_stats(&st, 0, 0, 0, 1);
	renew(f->r);
	expect_entry(f->r, &want);
	assert_int_equal(crdt_store_count(f->s), 1);
}

/*
 * changed[] follows input order, holds the state after each entry's merge,
 * and duplicates of one key inside a batch count once as added.
 */
static void
test_apply_batch_order_and_duplicates(void **state)
{
	struct fx *f = *state;
	crdt_key a = key_of(f, CRDT_KIND_JTI, "a");
	crdt_key b = key_of(f, CRDT_KIND_SID, "b");
	crdt_key c = key_of(f, CRDT_KIND_CLIENT, "c");
	crdt_key d = key_of(f, CRDT_KIND_TENANT, "d");
	crdt_entry in[6], changed[6], a_merged, sentinel;
	crdt_apply_stats st;

	in[1] = token(&b, CRDT_KIND_SID, NOW + 100, AT(1), 0);
	apply_ok(f->s, &in[1], 1, NOW, NULL);

	in[0] = token(&a, CRDT_KIND_JTI, NOW + 100, 0, 0);
	in[2] = subject(&c, CRDT_KIND_CLIENT, 0, 7, 1);
	in[3] = token(&a, CRDT_KIND_JTI, NOW + 50, AT(9), 0);
	in[4] = subject(&d, CRDT_KIND_TENANT, MS(NOW), 1, 4);
	in[5] = in[4];
	a_merged = token(&a, CRDT_KIND_JTI, NOW + 100, AT(9), 0);
	memset(changed, 0xee, sizeof(changed));
	memset(&sentinel, 0xee, sizeof(sentinel));
	st = apply_ok(f->s, in, 6, NOW, changed);
	assert_stats(&st, 4, 3, 0, 2);
	assert_true(crdt_entry_equal(&changed[0], &in[0]));
	assert_true(crdt_entry_equal(&changed[1], &in[2]));
	assert_true(crdt_entry_equal(&changed[2], &a_merged));
	assert_true(crdt_entry_equal(&changed[3], &in[4]));
	assert_memory_equal(&changed[4], &sentinel, sizeof(sentinel));
	assert_int_equal(crdt_store_count(f->s), 4);
	renew(f->r);
	expect_entry(f->r, &a_merged);
	expect_entry(f->r, &in[1]);
	expect_entry(f->r, &in[2]);
	expect_entry(f->r, &in[4]);

	/* changed may be NULL; the stats stay the same. */
	in[0].u.token.restored_at = AT(10);
	st = apply_ok(f->s, in, 1, NOW, NULL);
	assert_stats(&st, 1, 0, 0, 0);
}

/*
 * A token entry already past exp + leeway is dropped and not stored, nor
 * merged into a stored entry; exactly at the boundary it is kept.
 */
static void
test_apply_drops_expired(void **state)
{
	struct fx *f = *state;
	crdt_key x = key_of(f, CRDT_KIND_JTI, "x");
	crdt_key y = key_of(f, CRDT_KIND_SID, "y");
	crdt_key z = key_of(f, CRDT_KIND_JTI, "z");
	crdt_store_options opt = fast_opts;
	crdt_entry in[3], changed[3];
	crdt_apply_stats st;

	in[0] = token(&x, CRDT_KIND_JTI, NOW - LEEWAY - 1, AT(1), 0);
	in[1] = token(&y, CRDT_KIND_SID, NOW - LEEWAY, AT(1), 0);
	in[2] = token(&z, CRDT_KIND_JTI, NOW + 1, 0, 0);
	st = apply_ok(f->s, in, 3, NOW, changed);
	assert_stats(&st, 2, 2, 1, 0);
	assert_true(crdt_entry_equal(&changed[0], &in[1]));
	assert_true(crdt_entry_equal(&changed[1], &in[2]));
	assert_int_equal(crdt_store_count(f->s), 2);
	renew(f->r);
	expect_absent(f->r, &x);
	expect_entry(f->r, &in[1]);

	/* An expired update of a stored key does not touch it. */
	in[0] = token(&z, CRDT_KIND_JTI, NOW - LEEWAY - 1, AT(2), 0);
	st = apply_ok(f->s, in, 1, NOW, changed);
	assert_stats(&st, 0, 0, 1, 0);
	renew(f->r);
	expect_entry(f->r, &in[2]);

	/* A store with its own leeway. */
	f->dir2 = tu_tmpdir();
	opt.prune_leeway = 5;
	f->s2 = open_store(f->dir2, &opt);
	in[0] = token(&x, CRDT_KIND_JTI, NOW - 6, 0, 0);
	in[1] = token(&y, CRDT_KIND_JTI, NOW - 5, 0, 0);
	st = apply_ok(f->s2, in, 2, NOW, NULL);
	assert_stats(&st, 1, 1, 1, 0);
	assert_int_equal(crdt_store_count(f->s2), 1);
}

/* The stored state, count and bucket sums, to compare before and after. */
struct state_copy {
	uint64_t count;
	crdt_summary all;
	crdt_summary total; /* recomputed */
};

static void
state_capture(struct fx *f, struct state_copy *c)
{
	c->count = crdt_store_count(f->s);
	crdt_store_buckets_sum(f->s, 0, CRDT_BUCKETS, &c->all);
	renew(f->r);
	assert_int_equal(crdt_reader_recompute(f->r, &c->total, NULL),
	    REVOKD_OK);
}

static void
expect_batch_refused(struct fx *f, const crdt_entry *in, size_t n,
    revokd_err want)
{
	struct state_copy before, after;
	crdt_apply_stats st, sentinel;
	crdt_entry changed[8];

	assert_true(n <= 8);
	state_capture(f, &before);
	memset(&st, 0x5a, sizeof(st));
	sentinel = st;
	assert_int_equal(crdt_store_apply(f->s, in, n, NOW, changed, &st),
	    want);
	assert_memory_equal(&st, &sentinel, sizeof(st));
	state_capture(f, &after);
	assert_int_equal(after.count, before.count);
	assert_summary_eq(&after.all, &before.all);
	assert_summary_eq(&after.total, &before.total);
}

/*
 * A batch holding an entry whose kind conflicts with the stored kind, or
 * whose kind is not a kind, commits nothing: not even the valid entries
 * before it. The store stays usable and its buckets exact afterwards.
 */
static void
test_apply_all_or_nothing(void **state)
{
	struct fx *f = *state;
	crdt_key u = key_of(f, CRDT_KIND_SUB, "alice");
	crdt_key t = key_of(f, CRDT_KIND_JTI, "t");
	crdt_key n = key_of(f, CRDT_KIND_JTI, "new");
	crdt_key s = key_of(f, CRDT_KIND_SID, "s");
	crdt_entry stored[3], in[3];
	const int bad_kinds[] = { 0, 6, 255, -1 };
	crdt_apply_stats st;

	stored[0] = subject(&u, CRDT_KIND_SUB, 0, 1, 1);
	stored[1] = token(&t, CRDT_KIND_JTI, NOW + 600, 0, 0);
	stored[2] = token(&s, CRDT_KIND_SID, NOW + 600, 0, 0);
	apply_ok(f->s, stored, 3, NOW, NULL);

	in[0] = token(&n, CRDT_KIND_JTI, NOW + 600, AT(1), 0);
	in[1] = token(&t, CRDT_KIND_JTI, NOW + 600, AT(1), 0);
	in[2] = token(&u, CRDT_KIND_JTI, NOW + 600, AT(1), 0);
	expect_batch_refused(f, in, 3, REVOKD_EKIND);
	in[2] = subject(&t, CRDT_KIND_SUB, 0, 1, 1); /* subject on a token */
	expect_batch_refused(f, in, 3, REVOKD_EKIND);
	in[2] = token(&s, CRDT_KIND_JTI, NOW + 600, 0, 0); /* jti on a sid */
	expect_batch_refused(f, in, 3, REVOKD_EKIND);
	in[2] = subject(&u, CRDT_KIND_TENANT, 0, 1, 1); /* tenant on a sub */
	expect_batch_refused(f, in, 3, REVOKD_EKIND);
	for (size_t i = 0; i < sizeof(bad_kinds) / sizeof(bad_kinds[0]); i++) {
		in[2] = token(&s, CRDT_KIND_JTI, NOW + 600, 0, 0);
		in[2].kind = (crdt_kind)bad_kinds[i];
		expect_batch_refused(f, in, 3, REVOKD_EINVAL);
	}
	renew(f->r);
	expect_absent(f->r, &n);
	expect_entry(f->r, &stored[0]);
	expect_entry(f->r, &stored[1]);
	expect_entry(f->r, &stored[2]);

	/* Without the bad entry the batch goes in, buckets exact. */
	st = apply_ok(f->s, in, 2, NOW, NULL);
	assert_stats(&st, 2, 1, 0, 0);
	assert_int_equal(crdt_store_count(f->s), 4);
	assert_buckets_match(f, f->s, f->r);
}

/* ------------------------------------------------------------------------ */
/* Verdicts                                                                 */
/* ------------------------------------------------------------------------ */

/* The iat of the tokens checked below. */
#define IAT (NOW - 100)

static void
expect_verdict(crdt_reader *r, const crdt_check *c, crdt_verdict v,
    uint64_t version)
{
	crdt_check_result res;

	memset(&res, 0xa5, sizeof(res));
	assert_int_equal(crdt_reader_check(r, c, &res), REVOKD_OK);
	assert_string_equal(crdt_verdict_name(res.verdict),
	    crdt_verdict_name(v));
	assert_int_equal(res.version, version);
}

/* Keys the store has never seen are VALID, with version 0. */
static void
test_check_unknown_is_valid(void **state)
{
	struct fx *f = *state;
	crdt_key j = key_of(f, CRDT_KIND_JTI, "j");
	crdt_key s = key_of(f, CRDT_KIND_SID, "s");
	crdt_key u = key_of(f, CRDT_KIND_SUB, "u");

	renew(f->r);
	expect_verdict(f->r, &(crdt_check){ 0 }, CRDT_VALID, 0);
	expect_verdict(f->r,
	    &(crdt_check){ .jti = &j,
	        .sid = &s,
	        .sub = &u,
	        .has_ver = true,
	        .ver = 0,
	        .has_iat = true,
	        .iat = 0 },
	    CRDT_VALID, 0);
}

/* A revoked jti is REVOKED_TOKEN; a revoked sid is REVOKED_SESSION. */
static void
test_check_revoked_token_and_session(void **state)
{
	struct fx *f = *state;
	crdt_key j = key_of(f, CRDT_KIND_JTI, "j");
	crdt_key j2 = key_of(f, CRDT_KIND_JTI, "j2");
	crdt_key s = key_of(f, CRDT_KIND_SID, "s");
	crdt_entry in[3];

	in[0] = token(&j, CRDT_KIND_JTI, NOW + 600, AT(1), 0);
	in[1] = token(&j2, CRDT_KIND_JTI, NOW + 600, 0, 0); /* never revoked */
	in[2] = token(&s, CRDT_KIND_SID, NOW + 600, AT(1), 0);
	apply_ok(f->s, in, 3, NOW, NULL);
	renew(f->r);
	expect_verdict(f->r, &(crdt_check){ .jti = &j }, CRDT_REVOKED_TOKEN, 0);
	expect_verdict(f->r, &(crdt_check){ .jti = &j2 }, CRDT_VALID, 0);
	expect_verdict(f->r, &(crdt_check){ .sid = &s }, CRDT_REVOKED_SESSION,
	    0);
	expect_verdict(f->r, &(crdt_check){ .jti = &j2, .sid = &s },
	    CRDT_REVOKED_SESSION, 0);
}

/* A restore after the revocation makes it VALID; a tie stays revoked. */
static void
test_check_restore_and_tie(void **state)
{
	struct fx *f = *state;
	crdt_key after = key_of(f, CRDT_KIND_JTI, "restored after");
	crdt_key tie = key_of(f, CRDT_KIND_JTI, "tie");
	crdt_key before = key_of(f, CRDT_KIND_JTI, "restored before");
	crdt_key s_after = key_of(f, CRDT_KIND_SID, "restored after");
	crdt_key s_tie = key_of(f, CRDT_KIND_SID, "tie");
	crdt_entry in[5];

	in[0] = token(&after, CRDT_KIND_JTI, NOW + 600, AT(5), AT(5) + 1);
	in[1] = token(&tie, CRDT_KIND_JTI, NOW + 600, AT(5), AT(5));
	in[2] = token(&before, CRDT_KIND_JTI, NOW + 600, AT(5), AT(4));
	in[3] = token(&s_after, CRDT_KIND_SID, NOW + 600, AT(5), AT(6));
	in[4] = token(&s_tie, CRDT_KIND_SID, NOW + 600, AT(6), AT(6));
	apply_ok(f->s, in, 5, NOW, NULL);
	renew(f->r);
	expect_verdict(f->r, &(crdt_check){ .jti = &after }, CRDT_VALID, 0);
	expect_verdict(f->r, &(crdt_check){ .jti = &tie }, CRDT_REVOKED_TOKEN,
	    0);
	expect_verdict(f->r, &(crdt_check){ .jti = &before },
	    CRDT_REVOKED_TOKEN, 0);
	expect_verdict(f->r, &(crdt_check){ .sid = &s_after }, CRDT_VALID, 0);
	expect_verdict(f->r, &(crdt_check){ .sid = &s_tie },
	    CRDT_REVOKED_SESSION, 0);

	/* A restore arriving later flips the tie. */
	in[0] = token(&tie, CRDT_KIND_JTI, NOW + 600, 0, AT(5) + 1);
	apply_ok(f->s, in, 1, NOW, NULL);
	renew(f->r);
	expect_verdict(f->r, &(crdt_check){ .jti = &tie }, CRDT_VALID, 0);
}

/* STALE_VERSION when ver < version; VALID when ver >= version. */
static void
test_check_version(void **state)
{
	struct fx *f = *state;
	crdt_key u = key_of(f, CRDT_KIND_SUB, "alice");
	crdt_key c = key_of(f, CRDT_KIND_CLIENT, "app");
	crdt_entry in[3];

	in[0] = subject(&u, CRDT_KIND_SUB, 0, 1, 2);
	in[1] = subject(&u, CRDT_KIND_SUB, 0, 3, 5); /* version 2 + 5 */
	in[2] = subject(&c, CRDT_KIND_CLIENT, 0, 0, 1);
	apply_ok(f->s, in, 3, NOW, NULL);
	renew(f->r);
	expect_verdict(f->r,
	    &(crdt_check){ .sub = &u, .has_ver = true, .ver = 6 },
	    CRDT_STALE_VERSION, 7);
	expect_verdict(f->r,
	    &(crdt_check){ .sub = &u, .has_ver = true, .ver = 0 },
	    CRDT_STALE_VERSION, 7);
	expect_verdict(f->r,
	    &(crdt_check){ .sub = &u, .has_ver = true, .ver = 7 }, CRDT_VALID,
	    7);
	expect_verdict(f->r,
	    &(crdt_check){ .sub = &u, .has_ver = true, .ver = 8 }, CRDT_VALID,
	    7);
	expect_verdict(f->r, &(crdt_check){ .sub = &u }, CRDT_VALID, 7);
	/* The sub slot takes any subject kind. */
	expect_verdict(f->r,
	    &(crdt_check){ .sub = &c, .has_ver = true, .ver = 0 },
	    CRDT_STALE_VERSION, 1);
}

/*
 * REVOKED_NOT_BEFORE when iat * 1000 < not_before_ms, at millisecond
 * resolution: iat * 1000 + 1 revokes, iat * 1000 does not.
 */
static void
test_check_not_before(void **state)
{
	struct fx *f = *state;
	crdt_key plus1 = key_of(f, CRDT_KIND_SUB, "plus1");
	crdt_key equal = key_of(f, CRDT_KIND_SUB, "equal");
	crdt_key plus999 = key_of(f, CRDT_KIND_SUB, "plus999");
	crdt_key unset = key_of(f, CRDT_KIND_SUB, "unset");
	crdt_entry in[4];

	in[0] = subject(&plus1, CRDT_KIND_SUB, MS(IAT) + 1, 1, 1);
	in[1] = subject(&equal, CRDT_KIND_SUB, MS(IAT), 1, 1);
	in[2] = subject(&plus999, CRDT_KIND_SUB, MS(IAT) + 999, 1, 1);
	in[3] = subject(&unset, CRDT_KIND_SUB, 0, 1, 1);
	apply_ok(f->s, in, 4, NOW, NULL);
	renew(f->r);
	expect_verdict(f->r,
	    &(crdt_check){ .sub = &plus1, .has_iat = true, .iat = IAT },
	    CRDT_REVOKED_NOT_BEFORE, 1);
	expect_verdict(f->r,
	    &(crdt_check){ .sub = &equal, .has_iat = true, .iat = IAT },
	    CRDT_VALID, 1);
	expect_verdict(f->r,
	    &(crdt_check){ .sub = &equal, .has_iat = true, .iat = IAT - 1 },
	    CRDT_REVOKED_NOT_BEFORE, 1);
	expect_verdict(f->r,
	    &(crdt_check){ .sub = &plus999, .has_iat = true, .iat = IAT },
	    CRDT_REVOKED_NOT_BEFORE, 1);
	expect_verdict(f->r,
	    &(crdt_check){ .sub = &plus999, .has_iat = true, .iat = IAT + 1 },
	    CRDT_VALID, 1);
	expect_verdict(f->r, &(crdt_check){ .sub = &plus1 }, CRDT_VALID, 1);
	expect_verdict(f->r,
	    &(crdt_check){ .sub = &unset, .has_iat = true, .iat = 0 },
	    CRDT_VALID, 1);
}

/*
 * Revoked token beats revoked session beats stale version beats not-before;
 * the version is reported whatever the verdict.
 */
static void
test_check_precedence(void **state)
{
	struct fx *f = *state;
	crdt_key j = key_of(f, CRDT_KIND_JTI, "j");
	crdt_key j_ok = key_of(f, CRDT_KIND_JTI, "j ok");
	crdt_key s = key_of(f, CRDT_KIND_SID, "s");
	crdt_key s_ok = key_of(f, CRDT_KIND_SID, "s ok");
	crdt_key u = key_of(f, CRDT_KIND_SUB, "u");
	crdt_entry in[4];

	in[0] = token(&j, CRDT_KIND_JTI, NOW + 600, AT(1), 0);
	in[1] = token(&j_ok, CRDT_KIND_JTI, NOW + 600, AT(1), AT(2));
	in[2] = token(&s, CRDT_KIND_SID, NOW + 600, AT(1), 0);
	in[3] = subject(&u, CRDT_KIND_SUB, MS(IAT) + 1, 4, 7);
	apply_ok(f->s, in, 4, NOW, NULL);
	renew(f->r);
	expect_verdict(f->r,
	    &(crdt_check){ .jti = &j,
	        .sid = &s,
	        .sub = &u,
	        .has_ver = true,
	        .ver = 6,
	        .has_iat = true,
	        .iat = IAT },
	    CRDT_REVOKED_TOKEN, 7);
	expect_verdict(f->r,
	    &(crdt_check){ .jti = &j_ok,
	        .sid = &s,
	        .sub = &u,
	        .has_ver = true,
	        .ver = 6,
	        .has_iat = true,
	        .iat = IAT },
	    CRDT_REVOKED_SESSION, 7);
	expect_verdict(f->r,
	    &(crdt_check){ .jti = &j_ok,
	        .sid = &s_ok,
	        .sub = &u,
	        .has_ver = true,
	        .ver = 6,
	        .has_iat = true,
	        .iat = IAT },
	    CRDT_STALE_VERSION, 7);
	expect_verdict(f->r,
	    &(crdt_check){ .jti = &j_ok,
	        .sid = &s_ok,
	        .sub = &u,
	        .has_ver = true,
	        .ver = 7,
	        .has_iat = true,
	        .iat = IAT },
	    CRDT_REVOKED_NOT_BEFORE, 7);
	expect_verdict(f->r,
	    &(crdt_check){ .jti = &j_ok,
	        .sid = &s_ok,
	        .sub = &u,
	        .has_ver = true,
	        .ver = 7,
	        .has_iat = true,
	        .iat = IAT + 1 },
	    CRDT_VALID, 7);
	expect_verdict(f->r, &(crdt_check){ .jti = &j, .sub = &u },
	    CRDT_REVOKED_TOKEN, 7);
	expect_verdict(f->r,
	    &(crdt_check){ .sid = &s, .sub = &u, .has_ver = true, .ver = 0 },
	    CRDT_REVOKED_SESSION, 7);
}

/* A key holding a subject, asked for as a token (or back), is EKIND. */
static void
test_check_kind_mismatch(void **state)
{
	struct fx *f = *state;
	crdt_key u = key_of(f, CRDT_KIND_SUB, "u");
	crdt_key j = key_of(f, CRDT_KIND_JTI, "j");
	crdt_check_result res;
	crdt_entry in[2];

	in[0] = subject(&u, CRDT_KIND_SUB, 0, 1, 1);
	in[1] = token(&j, CRDT_KIND_JTI, NOW + 600, 0, 0);
	apply_ok(f->s, in, 2, NOW, NULL);
	renew(f->r);
	assert_int_equal(
	    crdt_reader_check(f->r, &(crdt_check){ .jti = &u }, &res),
	    REVOKD_EKIND);
	assert_int_equal(
	    crdt_reader_check(f->r, &(crdt_check){ .sid = &u }, &res),
	    REVOKD_EKIND);
	assert_int_equal(
	    crdt_reader_check(f->r, &(crdt_check){ .sub = &j }, &res),
	    REVOKD_EKIND);
	expect_verdict(f->r, &(crdt_check){ .jti = &j, .sub = &u }, CRDT_VALID,
	    1);
}

/* ------------------------------------------------------------------------ */
/* Snapshots                                                                */
/* ------------------------------------------------------------------------ */

/* A reader begun before an apply does not see it until end + begin. */
static void
test_reader_snapshot_isolation(void **state)
{
	struct fx *f = *state;
	crdt_key j = key_of(f, CRDT_KIND_JTI, "j");
	crdt_entry e = token(&j, CRDT_KIND_JTI, NOW + 600, AT(1), 0);
	crdt_summary total;

	renew(f->r);
	apply_ok(f->s, &e, 1, NOW, NULL);
	expect_absent(f->r, &j);
	expect_verdict(f->r, &(crdt_check){ .jti = &j }, CRDT_VALID, 0);
	assert_int_equal(crdt_reader_recompute(f->r, &total, NULL), REVOKD_OK);
	assert_int_equal(total.count, 0);
	renew(f->r);
	expect_entry(f->r, &e);
	expect_verdict(f->r, &(crdt_check){ .jti = &j }, CRDT_REVOKED_TOKEN, 0);
	e.u.token.restored_at = AT(2);
	apply_ok(f->s, &e, 1, NOW, NULL);
	expect_verdict(f->r, &(crdt_check){ .jti = &j }, CRDT_REVOKED_TOKEN, 0);
	renew(f->r);
	expect_verdict(f->r, &(crdt_check){ .jti = &j }, CRDT_VALID, 0);
}

/* ------------------------------------------------------------------------ */
/* Prune                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Prune works in steps of max entries in key order: each step removes the
 * expired token entries among them, *more is true until the step reaching
 * the last key (also when the count is a multiple of max), unexpired
 * tokens, boundary tokens and subjects stay.
 */
static void
test_prune_in_steps(void **state)
{
	struct fx *f = *state;
	const int64_t at = NOW + 1000;
	const size_t max = 7, n = 35;
	crdt_entry *in = fx_alloc(f, n * sizeof(*in));
	bool *expired = fx_alloc(f, n * sizeof(*expired));
	size_t n_expired = 0, n_subjects = 0, pruned, alive = n;
	revokd_rng rng;
	bool more;

	revokd_rng_seed(&rng, 7);
	for (size_t i = 0; i < n; i++) {
		int64_t *e = &in[i].u.token.exp;

		random_entry(&rng, 0, NOW, &in[i]);
		if (!crdt_kind_is_token(in[i].kind))
			continue;
		switch (revokd_rng_below(&rng, 3)) {
		case 0:
			*e = at - LEEWAY - 1 -
			     (int64_t)revokd_rng_below(&rng, 500);
			break;
		case 1:
			*e = at - LEEWAY; /* exactly at the boundary: kept */
			break;
		default:
			*e = at + (int64_t)revokd_rng_below(&rng, 500);
		}
	}
	apply_ok(f->s, in, n, NOW, NULL);
	qsort(in, n, sizeof(*in), entry_cmp_void);
	for (size_t i = 0; i < n; i++) {
		expired[i] = crdt_kind_is_token(in[i].kind) &&
		             in[i].u.token.exp < at - LEEWAY;
		n_expired += expired[i];
		n_subjects += !crdt_kind_is_token(in[i].kind);
	}
	assert_true(n_expired >= 5 && n - n_expired > 8);

	/* 35 = 5 * 7: the fifth step reaches the last key. */
	for (size_t step = 0; step < n / max; step++) {
		size_t want = 0;

		for (size_t i = step * max; i < (step + 1) * max; i++)
			want += expired[i];
		assert_int_equal(
		    crdt_store_prune(f->s, at, max, &pruned, &more), REVOKD_OK);
		assert_int_equal(pruned, want);
		assert_int_equal(more, step + 1 < n / max);
		alive -= want;
		assert_int_equal(crdt_store_count(f->s), alive);
	}
	assert_int_equal(alive, n - n_expired);
	renew(f->r);
	for (size_t i = 0; i < n; i++) {
		if (expired[i])
			expect_absent(f->r, &in[i].key);
		else
			expect_entry(f->r, &in[i]);
	}
	/* A new sweep finds nothing more; a partial last step says false. */
	assert_int_equal(crdt_store_prune(f->s, at, 8, &pruned, &more),
	    REVOKD_OK);
	assert_int_equal(pruned, 0);
	assert_true(more);
	assert_int_equal(prune_sweep(f->s, at, 8), 0);
	assert_int_equal(crdt_store_prune(f->s, at, 1000, &pruned, &more),
	    REVOKD_OK);
	assert_int_equal(pruned, 0);
	assert_false(more);
	assert_buckets_match(f, f->s, f->r);

	/* Later every token goes, boundary ones too; subjects never. */
	assert_int_equal(prune_sweep(f->s, at + 1000, 1000),
	    alive - n_subjects);
	assert_int_equal(crdt_store_count(f->s), n_subjects);
	assert_buckets_match(f, f->s, f->r);
}

/* A stored key of kind into *out, or a fresh random key, or NULL. */
static const crdt_key *
random_check_key(revokd_rng *rng, const struct entries *stored, crdt_kind kind,
    crdt_key *out)
{
	const crdt_entry *e = NULL;

	switch (revokd_rng_below(rng, 4)) {
	case 0:
		return NULL;
	case 1:
		tu_random_key(rng, 0, out);
		return out;
	default:
		for (int tries = 0; tries < 1000; tries++) {
			e = &stored->v[revokd_rng_below(rng, stored->n)];
			if (e->kind == kind)
				break;
		}
		assert_int_equal(e->kind, kind);
		*out = e->key;
		return out;
	}
}

/* A random check naming stored keys (of the right kind) or others. */
static void
random_check(revokd_rng *rng, const struct entries *stored, crdt_key *keys,
    crdt_check *c)
{
	memset(c, 0, sizeof(*c));
	c->jti = random_check_key(rng, stored, CRDT_KIND_JTI, &keys[0]);
	c->sid = random_check_key(rng, stored, CRDT_KIND_SID, &keys[1]);
	c->sub = random_check_key(rng, stored, CRDT_KIND_SUB, &keys[2]);
	c->has_ver = revokd_rng_below(rng, 2);
	c->ver = revokd_rng_below(rng, 20);
	c->has_iat = revokd_rng_below(rng, 2);
	c->iat = NOW - 1 + (int64_t)revokd_rng_below(rng, 8);
}

/* True when no token c names was stored expiring before at. */
static bool
check_is_live(const crdt_check *c, const struct entries *stored, int64_t at)
{
	const crdt_key *tokens[2] = { c->jti, c->sid };

	for (int k = 0; k < 2; k++) {
		const crdt_entry *e =
		    tokens[k] ? entries_find(stored, tokens[k]) : NULL;

		if (e != NULL && e->u.token.exp + LEEWAY < at)
			return false;
	}
	return true;
}

/*
 * Pruning never changes the verdict of a check naming only unexpired
 * entries (property, fixed seeds); expired tokens are gone afterwards and
 * unexpired entries untouched.
 */
static void
test_prune_keeps_unexpired_verdicts(void **state)
{
	struct fx *f = *state;
	const size_t n = 2500, n_checks = 1500;
	crdt_entry *in = fx_alloc(f, n * sizeof(*in));
	struct entries before = { fx_alloc(f, n * sizeof(crdt_entry)), 0, n,
		false };
	crdt_check_result *res = fx_alloc(f, n_checks * sizeof(*res));
	crdt_key *picks = fx_alloc(f, 3 * n_checks * sizeof(*picks));
	crdt_check *checks = fx_alloc(f, n_checks * sizeof(*checks));
	size_t compared = 0, pruned_total = 0;

	for (uint64_t seed = 1; seed <= 4; seed++) {
		revokd_rng rng;
		int64_t at;
		size_t alive = 0;

		store_reset(&f->dir, &f->s, &f->r);
		revokd_rng_seed(&rng, seed);
		for (size_t i = 0; i < n; i++)
			random_entry(&rng, 800, NOW, &in[i]);
		apply_in_batches(f->s, &rng, in, n, 200, NOW);
		renew(f->r);
		scan_all(f->r, &before);
		at = NOW + (int64_t)revokd_rng_below(&rng, 3600 + 2 * LEEWAY);

		for (size_t c = 0; c < n_checks; c++) {
			random_check(&rng, &before, &picks[3 * c], &checks[c]);
			memset(&res[c], 0, sizeof(res[c]));
			assert_int_equal(
			    crdt_reader_check(f->r, &checks[c], &res[c]),
			    REVOKD_OK);
		}

		pruned_total += prune_sweep(f->s, at,
		    1 + (size_t)revokd_rng_below(&rng, 300));
		renew(f->r);
		for (size_t c = 0; c < n_checks; c++) {
			crdt_check_result now_res;

			if (!check_is_live(&checks[c], &before, at))
				continue;
			assert_int_equal(
			    crdt_reader_check(f->r, &checks[c], &now_res),
			    REVOKD_OK);
			assert_int_equal(now_res.verdict, res[c].verdict);
			assert_int_equal(now_res.version, res[c].version);
			compared++;
		}
		for (size_t i = 0; i < before.n; i++) {
			const crdt_entry *e = &before.v[i];

			if (crdt_kind_is_token(e->kind) &&
			    e->u.token.exp + LEEWAY < at) {
				expect_absent(f->r, &e->key);
			} else {
				expect_entry(f->r, e);
				alive++;
			}
		}
		assert_int_equal(crdt_store_count(f->s), alive);
	}
	assert_true(compared > 2000);
	assert_true(pruned_total > 100);
}

/*
 * A token whose exp was raised by a merge is not pruned at its old exp; a
 * merge carrying a lower exp does not lower it.
 */
static void
test_prune_follows_merged_exp(void **state)
{
	struct fx *f = *state;
	crdt_key k = key_of(f, CRDT_KIND_JTI, "raised");
	crdt_key l = key_of(f, CRDT_KIND_JTI, "plain");
	crdt_key m = key_of(f, CRDT_KIND_SID, "lowered");
	crdt_entry in[3];
	crdt_summary zero = { 0 }, all;

	in[0] = token(&k, CRDT_KIND_JTI, NOW + 10, 0, 0);
	in[1] = token(&l, CRDT_KIND_JTI, NOW + 10, 0, 0);
	in[2] = token(&m, CRDT_KIND_SID, NOW + 1000, 0, 0);
	apply_ok(f->s, in, 3, NOW, NULL);
	in[0] = token(&k, CRDT_KIND_JTI, NOW + 1000, AT(1), 0);
	in[1] = token(&m, CRDT_KIND_SID, NOW + 10, AT(1), 0);
	apply_ok(f->s, in, 2, NOW, NULL);

	assert_int_equal(prune_sweep(f->s, NOW + 10 + LEEWAY + 1, 2), 1);
	renew(f->r);
	expect_absent(f->r, &l);
	expect_entry(f->r, &in[0]);
	assert_int_equal(prune_sweep(f->s, NOW + 1000 + LEEWAY, 2), 0);
	assert_int_equal(crdt_store_count(f->s), 2);
	assert_int_equal(prune_sweep(f->s, NOW + 1000 + LEEWAY + 1, 2), 2);
	assert_int_equal(crdt_store_count(f->s), 0);
	crdt_store_buckets_sum(f->s, 0, CRDT_BUCKETS, &all);
	assert_summary_eq(&all, &zero);
	assert_buckets_match(f, f->s, f->r);
}

/*
 * KNOWN BUG (crdt/store.c, crdt_store_prune): max * sizeof(crdt_key) is
 * not checked for overflow: max = SIZE_MAX / 16 + 2 allocates 16 bytes and
 * then writes one key per expired entry into them, a heap overflow; and
 * max = SIZE_MAX ("no limit") fails with ENOMEM. Run in a child so the
 * corruption cannot spread to the other tests.
 *
 * A prune step with any max must prune the expired entries it examines.
 */
static void
test_prune_huge_max(void **state)
{
	struct fx *f = *state;
	const size_t maxes[2] = { SIZE_MAX / sizeof(crdt_key) + 2, SIZE_MAX };
	crdt_entry in[6];
	struct {
		int err;
		size_t pruned;
		bool more;
	} got[2];
	int fds[2], status;
	revokd_rng rng;

	revokd_rng_seed(&rng, 11);
	for (int i = 0; i < 6; i++) {
		crdt_key k;

		tu_random_key(&rng, 0, &k);
		in[i] = token(&k, CRDT_KIND_JTI, NOW + 10, 0, 0);
	}
	apply_ok(f->s, in, 6, NOW, NULL);
	crdt_reader_free(f->r);
	f->r = NULL;
	crdt_store_close(f->s);
	f->s = NULL;
	assert_int_equal(pipe(fds), 0);
	f->from_child = fds[0];
	f->child = fork();
	assert_true(f->child >= 0);
	if (f->child == 0) {
		crdt_store *s;

		memset(got, 0, sizeof(got));
		if (crdt_store_open(f->dir, &fast_opts, &s) != REVOKD_OK)
			_exit(2);
		for (int i = 0; i < 2; i++) {
			got[i].err = crdt_store_prune(s, NOW + 10 + LEEWAY + 1,
			    maxes[i], &got[i].pruned, &got[i].more);
			/* Put them back for the next call. */
			if (crdt_store_apply(s, in, 6, NOW, NULL, NULL) !=
			    REVOKD_OK)
				_exit(3);
		}
		crdt_store_close(s);
		_exit(tu_write_full(fds[1], got, sizeof(got)) ? 0 : 4);
	}
	close(fds[1]);
	assert_int_equal(waitpid(f->child, &status, 0), f->child);
	f->child = 0;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		fail_msg("prune child died (wait status %#x): see the "
		         "allocator's or sanitizer's report above",
		    status);
	assert_true(tu_read_full(fds[0], got, sizeof(got), 1000));
	for (int i = 0; i < 2; i++) {
		assert_int_equal(got[i].err, REVOKD_OK);
		assert_int_equal(got[i].pruned, 6);
		assert_false(got[i].more);
	}
}

/* ------------------------------------------------------------------------ */
/* Reopen, metadata                                                         */
/* ------------------------------------------------------------------------ */

/* Close and reopen keeps every entry, the count and the bucket summaries. */
static void
test_reopen_keeps_state(void **state)
{
	struct fx *f = *state;
	const size_t n = 5000;
	crdt_entry *in = fx_alloc(f, n * sizeof(*in));
	struct entries before = { fx_alloc(f, n * sizeof(crdt_entry)), 0, n,
		false };
	struct entries after = { fx_alloc(f, n * sizeof(crdt_entry)), 0, n,
		false };
	crdt_summary *sums = fx_alloc(f, CRDT_BUCKETS * sizeof(*sums));
	uint64_t count;
	revokd_rng rng;

	revokd_rng_seed(&rng, 5);
	for (size_t i = 0; i < n; i++)
		random_entry(&rng, 3000, NOW, &in[i]);
	apply_in_batches(f->s, &rng, in, n, 300, NOW);
	prune_sweep(f->s, NOW + 1800 + LEEWAY, 100);
	assert_int_equal(crdt_store_meta_put(f->s, "agent.mark", "abc", 3),
	    REVOKD_OK);
	count = crdt_store_count(f->s);
	assert_true(count > 500);
	for (uint32_t b = 0; b < CRDT_BUCKETS; b++)
		crdt_store_buckets_sum(f->s, b, b + 1, &sums[b]);
	renew(f->r);
	scan_all(f->r, &before);

	store_reopen(f);
	assert_int_equal(crdt_store_count(f->s), count);
	for (uint32_t b = 0; b < CRDT_BUCKETS; b++) {
		crdt_summary one;

		crdt_store_buckets_sum(f->s, b, b + 1, &one);
		assert_summary_eq(&one, &sums[b]);
	}
	renew(f->r);
	scan_all(f->r, &after);
	assert_int_equal(after.n, before.n);
	assert_int_equal(after.n, count);
	for (size_t i = 0; i < after.n; i++)
		assert_true(crdt_entry_equal(&after.v[i], &before.v[i]));
	assert_buckets_match(f, f->s, f->r);
	{
		char buf[8];
		size_t len = 0;

		assert_int_equal(crdt_reader_meta_get(f->r, "agent.mark", buf,
		                     sizeof(buf), &len),
		    REVOKD_OK);
		assert_int_equal(len, 3);
		assert_memory_equal(buf, "abc", 3);
	}
}

/* Metadata reads back; unknown names are ENOTFOUND; short buffers TOOBIG. */
static void
test_meta(void **state)
{
	struct fx *f = *state;
	uint8_t big[CRDT_META_MAX + 1], buf[CRDT_META_MAX];
	const uint64_t mark = 0x0102030405060708ull;
	size_t len;

	assert_int_equal(
	    crdt_store_meta_put(f->s, "agent.mark", &mark, sizeof(mark)),
	    REVOKD_OK);
	renew(f->r);
	len = 0;
	assert_int_equal(
	    crdt_reader_meta_get(f->r, "agent.mark", buf, sizeof(buf), &len),
	    REVOKD_OK);
	assert_int_equal(len, sizeof(mark));
	assert_memory_equal(buf, &mark, sizeof(mark));
	len = 0;
	assert_int_equal(crdt_reader_meta_get(f->r, "agent.mark", buf, 8, &len),
	    REVOKD_OK);
	assert_int_equal(len, 8);
	assert_int_equal(crdt_reader_meta_get(f->r, "agent.mark", buf, 7, &len),
	    REVOKD_ETOOBIG);
	assert_int_equal(
	    crdt_reader_meta_get(f->r, "agent.other", buf, sizeof(buf), &len),
	    REVOKD_ENOTFOUND);
	assert_int_equal(
	    crdt_reader_meta_get(f->r, "agent.mar", buf, sizeof(buf), &len),
	    REVOKD_ENOTFOUND);

	/* Overwrite; largest value; empty value. */
	memset(big, 0x3c, sizeof(big));
	assert_int_equal(
	    crdt_store_meta_put(f->s, "agent.mark", big, CRDT_META_MAX),
	    REVOKD_OK);
	assert_int_not_equal(
	    crdt_store_meta_put(f->s, "agent.mark", big, CRDT_META_MAX + 1),
	    REVOKD_OK);
	assert_int_equal(crdt_store_meta_put(f->s, "agent.empty", "", 0),
	    REVOKD_OK);
	renew(f->r);
	assert_int_equal(
	    crdt_reader_meta_get(f->r, "agent.mark", buf, sizeof(buf), &len),
	    REVOKD_OK);
	assert_int_equal(len, CRDT_META_MAX);
	assert_memory_equal(buf, big, CRDT_META_MAX);
	len = 99;
	assert_int_equal(
	    crdt_reader_meta_get(f->r, "agent.empty", buf, sizeof(buf), &len),
	    REVOKD_OK);
	assert_int_equal(len, 0);
	/* Metadata is not an entry. */
	assert_int_equal(crdt_store_count(f->s), 0);
}

/*
 * KNOWN BUG (crdt/store.c, crdt__commit and crdt__open_dbis): last_txnid
 * is set to the id of the write transaction even when LMDB commits nothing
 * (an apply that changed nothing, a prune step that pruned nothing, the
 * open of an existing store). LMDB then does not advance the snapshot id,
 * so no reader's snapshot matches last_txnid until the next real write and
 * crdt_reader_range_summary scans the whole range instead of using the
 * bucket summaries, against crdt.h's promise that only partial buckets are
 * scanned. Results stay correct; the cost is O(entries) per summary.
 *
 * A fresh snapshot must be the last committed one, whatever came before.
 */
static void
test_last_txnid_after_noop_writes(void **state)
{
	static const char *const what[3] = { "no-op apply", "no-op prune",
		"reopen" };
	struct fx *f = *state;
	crdt_key j = key_of(f, CRDT_KIND_JTI, "j");
	crdt_entry e = token(&j, CRDT_KIND_JTI, NOW + 600, AT(1), 0);
	char stale[64] = "";
	size_t pruned;
	bool more;
	MDB_txn *txn;

	apply_ok(f->s, &e, 1, NOW, NULL);
	for (int step = 0; step < 3; step++) {
		if (step == 0) {
			apply_ok(f->s, &e, 1, NOW, NULL); /* changes nothing */
		} else if (step == 1) {
			assert_int_equal(
			    crdt_store_prune(f->s, NOW, 10, &pruned, &more),
			    REVOKD_OK);
			assert_int_equal(pruned, 0);
		} else {
			store_reopen(f);
		}
		assert_int_equal(
		    mdb_txn_begin(f->s->env, NULL, MDB_RDONLY, &txn), 0);
		if (mdb_txn_id(txn) != f->s->last_txnid) {
			strcat(stale, " ");
			strcat(stale, what[step]);
		}
		mdb_txn_abort(txn);
		e.u.token.exp++; /* a real commit puts it right again */
		apply_ok(f->s, &e, 1, NOW, NULL);
	}
	if (stale[0] != '\0')
		fail_msg("last_txnid is not the last snapshot after:%s", stale);
}

/* ------------------------------------------------------------------------ */
/* Locking and read-only opens                                              */
/* ------------------------------------------------------------------------ */

/*
 * A second writer on the same dir gets ELOCKED (and no store) while the
 * first is open; after the first closes it opens.
 */
static void
test_writer_lock(void **state)
{
	struct fx *f = *state;
	crdt_key j = key_of(f, CRDT_KIND_JTI, "j");
	crdt_entry e = token(&j, CRDT_KIND_JTI, NOW + 600, AT(1), 0);
	crdt_store *other = NULL;

	apply_ok(f->s, &e, 1, NOW, NULL);
	assert_int_equal(crdt_store_open(f->dir, &fast_opts, &other),
	    REVOKD_ELOCKED);
	assert_null(other);
	assert_int_equal(crdt_store_open(f->dir, &fast_opts, &other),
	    REVOKD_ELOCKED);
	assert_null(other);
	crdt_reader_free(f->r);
	f->r = NULL;
	crdt_store_close(f->s);
	f->s = NULL;
	f->s = open_store(f->dir, &fast_opts);
	assert_int_equal(crdt_reader_new(f->s, &f->r), REVOKD_OK);
	assert_int_equal(crdt_store_count(f->s), 1);
	renew(f->r);
	expect_entry(f->r, &e);
}

/* What a read-only child saw, sent back over a pipe. */
struct ro_report {
	int open_err;
	int begin_err;
	int get_err;     /* of the entry the parent expects */
	int equal;       /* 1 when it equals the expected entry */
	int old_get_err; /* the same key through an older snapshot */
	int apply_err, prune_err, meta_err;
	uint64_t count;
	crdt_summary whole;      /* crdt_reader_range_summary(NULL, NULL) */
	crdt_summary part;       /* ... of [bucket 1, key 0x80...) */
	crdt_summary recomputed; /* crdt_reader_recompute */
};

/* The second range summarised by a read-only child. */
static void
ro_part_range(crdt_key *lo, crdt_key *hi)
{
	crdt_bucket_first_key(1, lo);
	memset(hi->b, 0, CRDT_KEY_LEN);
	hi->b[0] = 0x80;
	hi->b[7] = 0x33;
}

/* Fill rep from reader r, which must see want. */
static void
ro_look(crdt_store *s, crdt_reader *r, const crdt_entry *want,
    struct ro_report *rep)
{
	crdt_key lo, hi;
	crdt_entry got;
	size_t pruned;
	bool more;

	if ((rep->get_err = crdt_reader_get(r, &want->key, &got)) == REVOKD_OK)
		rep->equal = crdt_entry_equal(&got, want);
	rep->apply_err = crdt_store_apply(s, want, 1, NOW, NULL, NULL);
	rep->prune_err = crdt_store_prune(s, NOW, 10, &pruned, &more);
	rep->meta_err = crdt_store_meta_put(s, "agent.x", "x", 1);
	rep->count = crdt_store_count(s);
	ro_part_range(&lo, &hi);
	crdt_reader_range_summary(r, NULL, NULL, &rep->whole);
	crdt_reader_range_summary(r, &lo, &hi, &rep->part);
	crdt_reader_recompute(r, &rep->recomputed, NULL);
}

/*
 * The read-only child: open, report what it sees of first; wait for the
 * parent; renew and report what it sees of second, and of second through
 * the snapshot it took first. Never returns.
 */
static _Noreturn void
ro_child(const char *dir, const crdt_entry *first, const crdt_entry *second,
    int in_fd, int out_fd)
{
	crdt_store_options opt = { .read_only = true };
	struct ro_report rep;
	crdt_reader *r = NULL, *old = NULL;
	crdt_store *s = NULL;
	crdt_entry got;
	char go;

	memset(&rep, 0, sizeof(rep));
	rep.open_err = crdt_store_open(dir, &opt, &s);
	if (rep.open_err != REVOKD_OK) {
		tu_write_full(out_fd, &rep, sizeof(rep));
		_exit(0);
	}
	if (crdt_reader_new(s, &r) != REVOKD_OK ||
	    crdt_reader_new(s, &old) != REVOKD_OK)
		_exit(2);
	rep.begin_err = crdt_reader_begin(r);
	crdt_reader_begin(old);
	ro_look(s, r, first, &rep);
	if (!tu_write_full(out_fd, &rep, sizeof(rep)) ||
	    !tu_read_full(in_fd, &go, 1, 20000))
		_exit(3);
	memset(&rep, 0, sizeof(rep));
	rep.old_get_err = crdt_reader_get(old, &second->key, &got);
	crdt_reader_end(old);
	crdt_reader_end(r);
	/* The writer may have grown the map: adopt it, every snapshot ended. */
	if ((rep.begin_err = crdt_reader_begin(r)) == REVOKD_EMAPRESIZED &&
	    crdt_store_remap(s) == REVOKD_OK)
		rep.begin_err = crdt_reader_begin(r);
	ro_look(s, r, second, &rep);
	if (!tu_write_full(out_fd, &rep, sizeof(rep)))
		_exit(4);
	crdt_reader_free(old);
	crdt_reader_free(r);
	crdt_store_close(s);
	_exit(0);
}

/* Start ro_child on dir with pipes both ways. */
static void
start_ro_child(struct fx *f, const char *dir, const crdt_entry *first,
    const crdt_entry *second)
{
	int down[2], up[2];

	assert_int_equal(pipe(down), 0);
	assert_int_equal(pipe(up), 0);
	f->child = fork();
	assert_true(f->child >= 0);
	if (f->child == 0) {
		/*
		 * The writer's flock belongs to its open file description,
		 * which fork shares: let the parent alone own it.
		 */
		if (f->s != NULL)
			close(f->s->lock_fd);
		close(down[1]);
		close(up[0]);
		ro_child(dir, first, second, down[0], up[1]);
	}
	close(down[0]);
	close(up[1]);
	f->to_child = down[1];
	f->from_child = up[0];
}

static void
read_report(struct fx *f, struct ro_report *rep)
{
	memset(rep, 0, sizeof(*rep));
	if (!tu_read_full(f->from_child, rep, sizeof(*rep), 20000))
		fail_msg("no report from the read-only child");
}

static void
finish_child(struct fx *f)
{
	int status;

	assert_int_equal(waitpid(f->child, &status, 0), f->child);
	f->child = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* The parent's summaries matching a child's report. */
static void
expect_report_sums(struct fx *f, const struct ro_report *rep)
{
	crdt_summary whole, part;
	crdt_key lo, hi;

	renew(f->r);
	ro_part_range(&lo, &hi);
	assert_int_equal(crdt_reader_range_summary(f->r, NULL, NULL, &whole),
	    REVOKD_OK);
	assert_int_equal(crdt_reader_range_summary(f->r, &lo, &hi, &part),
	    REVOKD_OK);
	assert_summary_eq(&rep->whole, &whole);
	assert_summary_eq(&rep->recomputed, &whole);
	assert_summary_eq(&rep->part, &part);
	assert_true(part.count > 0 && part.count < whole.count);
}

/*
 * A read-only open in another process succeeds while the writer is open,
 * sees committed data (and new commits after renewing, not before), gets
 * the same summaries by scanning, reports count 0, and refuses apply,
 * prune and meta_put with EPERM.
 */
static void
test_read_only_alongside_writer(void **state)
{
	struct fx *f = *state;
	const size_t n = 3000;
	crdt_entry *in = fx_alloc(f, n * sizeof(*in));
	crdt_key k2 = key_of(f, CRDT_KIND_SID, "later");
	crdt_entry second = token(&k2, CRDT_KIND_SID, NOW + 600, AT(3), 0);
	struct ro_report rep;
	revokd_rng rng;

	revokd_rng_seed(&rng, 8);
	for (size_t i = 0; i < n; i++)
		random_entry(&rng, 0, NOW, &in[i]);
	apply_in_batches(f->s, &rng, in, n, 500, NOW);
	start_ro_child(f, f->dir, &in[n / 2], &second);

	read_report(f, &rep);
	assert_int_equal(rep.open_err, REVOKD_OK);
	assert_int_equal(rep.begin_err, REVOKD_OK);
	assert_int_equal(rep.get_err, REVOKD_OK);
	assert_int_equal(rep.equal, 1);
	assert_int_equal(rep.apply_err, REVOKD_EPERM);
	assert_int_equal(rep.prune_err, REVOKD_EPERM);
	assert_int_equal(rep.meta_err, REVOKD_EPERM);
	assert_int_equal(rep.count, 0);
	expect_report_sums(f, &rep);

	apply_ok(f->s, &second, 1, NOW, NULL);
	assert_true(tu_write_full(f->to_child, "g", 1));
	read_report(f, &rep);
	assert_int_equal(rep.old_get_err, REVOKD_ENOTFOUND);
	assert_int_equal(rep.begin_err, REVOKD_OK);
	assert_int_equal(rep.get_err, REVOKD_OK);
	assert_int_equal(rep.equal, 1);
	assert_int_equal(rep.apply_err, REVOKD_EPERM);
	expect_report_sums(f, &rep);
	finish_child(f);
}

/*
 * A read-only reader adopts a map the writer grew past the reader's
 * mapping (reopened with a larger map_size and filled past the old one).
 */
static void
test_read_only_adopts_grown_map(void **state)
{
	struct fx *f = *state;
	const size_t n = 20000;
	crdt_entry *in = fx_alloc(f, n * sizeof(*in));
	crdt_store_options small = fast_opts, large = fast_opts;
	char path[4096];
	struct ro_report rep;
	struct stat st;
	revokd_rng rng;

	small.map_size = (size_t)1 << 20;
	large.map_size = (size_t)64 << 20;
	revokd_rng_seed(&rng, 9);
	for (size_t i = 0; i < n; i++)
		random_entry(&rng, 0, NOW, &in[i]);
	/* A new store, created small (LMDB never records a smaller map). */
	crdt_reader_free(f->r);
	f->r = NULL;
	crdt_store_close(f->s);
	f->s = NULL;
	tu_rmdir(f->dir);
	f->dir = tu_tmpdir();
	f->s = open_store(f->dir, &small);
	assert_int_equal(crdt_reader_new(f->s, &f->r), REVOKD_OK);
	apply_ok(f->s, in, 10, NOW, NULL);
	start_ro_child(f, f->dir, &in[3], &in[n - 1]);
	read_report(f, &rep);
	assert_int_equal(rep.open_err, REVOKD_OK);
	assert_int_equal(rep.get_err, REVOKD_OK);
	assert_int_equal(rep.equal, 1);
	assert_int_equal(rep.recomputed.count, 10);

	crdt_reader_free(f->r);
	f->r = NULL;
	crdt_store_close(f->s);
	f->s = NULL;
	f->s = open_store(f->dir, &large);
	assert_int_equal(crdt_reader_new(f->s, &f->r), REVOKD_OK);
	apply_in_batches(f->s, &rng, in, n, 2000, NOW);
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_size > (off_t)small.map_size);

	assert_true(tu_write_full(f->to_child, "g", 1));
	read_report(f, &rep);
	assert_int_equal(rep.begin_err, REVOKD_OK);
	assert_int_equal(rep.get_err, REVOKD_OK);
	assert_int_equal(rep.equal, 1);
	assert_int_equal(rep.recomputed.count, n);
	expect_report_sums(f, &rep);
	finish_child(f);
}

/*
 * A 1 MiB map filled until even one-entry batches are refused
 * (REVOKD_EMAPFULL) can still prune: new entries leave a reserve of pages
 * for deletes. Once the filler expired, pruning steps (halved on
 * EMAPFULL, as the engine does) empty the store and writes are taken again.
 */
static void
test_full_map_prunes_back(void **state)
{
	struct fx *f = *state;
	crdt_store_options small = fast_opts;
	crdt_entry batch[100];
	size_t entries = 0, calls = 0, step = 4096, pruned, total = 0;
	bool more = true, refused = false;
	int64_t later = NOW + 10 + LEEWAY + 1;
	revokd_rng rng;
	revokd_err err;

	small.map_size = (size_t)1 << 20;
	crdt_reader_free(f->r);
	f->r = NULL;
	crdt_store_close(f->s);
	tu_rmdir(f->dir);
	f->dir = tu_tmpdir();
	f->s = open_store(f->dir, &small);
	revokd_rng_seed(&rng, 12);
	/* Batches of 100, then of 1, until the store refuses both. */
	for (size_t size = 100; size > 0; size = size == 100 ? 1 : 0) {
		do {
			for (size_t i = 0; i < size; i++) {
				crdt_key k;

				revokd_rng_bytes(&rng, k.b, CRDT_KEY_LEN);
				batch[i] = token(&k, CRDT_KIND_JTI, NOW + 10,
				    AT(1), 0);
			}
			err = crdt_store_apply(f->s, batch, size, NOW, NULL,
			    NULL);
			entries += err == REVOKD_OK ? size : 0;
		} while (err == REVOKD_OK && entries < 1000000);
		assert_int_equal(err, REVOKD_EMAPFULL);
	}
	assert_true(entries > 1000);

	/* The filler expires: prune it all, halving steps that do not fit. */
	while ((more || refused) && calls++ < 100000) {
		err = crdt_store_prune(f->s, later, step, &pruned, &more);
		refused = err == REVOKD_EMAPFULL;
		if (refused) {
			assert_true(step > 1);
			step /= 2;
			continue;
		}
		assert_int_equal(err, REVOKD_OK);
		total += pruned;
	}
	print_message("%zu entries filled the 1 MiB map; pruned in %zu "
	              "calls, the smallest step %zu\n",
	    entries, calls, step);
	assert_int_equal(total, entries);
	for (size_t i = 0; i < 100; i++) {
		crdt_key k;

		revokd_rng_bytes(&rng, k.b, CRDT_KEY_LEN);
		batch[i] = token(&k, CRDT_KIND_JTI, later + 3600, AT(2), 0);
	}
	assert_int_equal(apply_ok(f->s, batch, 100, later, NULL).added, 100);
	assert_int_equal(crdt_reader_new(f->s, &f->r), REVOKD_OK);
}

/* A read-only open of a dir without a store fails, and creates none. */
static void
test_read_only_needs_a_store(void **state)
{
	struct fx *f = *state;
	crdt_store_options opt = { .read_only = true };
	crdt_store *s = NULL;
	char path[4096];

	f->dir2 = tu_tmpdir();
	assert_int_equal(crdt_store_open(f->dir2, &opt, &s), REVOKD_ENOTFOUND);
	assert_null(s);
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir2);
	assert_int_not_equal(access(path, F_OK), 0);
	snprintf(path, sizeof(path), "%s/missing", f->dir2);
	assert_int_not_equal(crdt_store_open(path, &opt, &s), REVOKD_OK);
	assert_null(s);
	assert_int_not_equal(crdt_store_open(path, &fast_opts, &s), REVOKD_OK);
	assert_null(s);
}

/*
 * The writer gives data.mdb 0640 and lock.mdb 0660 whatever its umask, so
 * that direct readers in the data dir's group can read and take reader
 * slots.
 */
static void
test_file_modes(void **state)
{
	struct fx *f = *state;
	crdt_store *s = NULL;
	char path[4096];
	struct stat st;
	mode_t old = umask(077);

	f->dir2 = tu_tmpdir();
	assert_int_equal(crdt_store_open(f->dir2, &fast_opts, &s), REVOKD_OK);
	umask(old);
	snprintf(path, sizeof(path), "%s/data.mdb", f->dir2);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0640);
	snprintf(path, sizeof(path), "%s/lock.mdb", f->dir2);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0660);
	crdt_store_close(s);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_apply_new_then_same),
		T(test_apply_revoke_restore),
		T(test_apply_batch_order_and_duplicates),
		T(test_apply_drops_expired),
		T(test_apply_all_or_nothing),
		T(test_check_unknown_is_valid),
		T(test_check_revoked_token_and_session),
		T(test_check_restore_and_tie),
		T(test_check_version),
		T(test_check_not_before),
		T(test_check_precedence),
		T(test_check_kind_mismatch),
		T(test_reader_snapshot_isolation),
		T(test_prune_in_steps),
		T(test_prune_keeps_unexpired_verdicts),
		T(test_prune_follows_merged_exp),
		T(test_prune_huge_max),
		T(test_reopen_keeps_state),
		T(test_meta),
		T(test_last_txnid_after_noop_writes),
		T(test_writer_lock),
		T(test_read_only_alongside_writer),
		T(test_read_only_adopts_grown_map),
		T(test_full_map_prunes_back),
		T(test_read_only_needs_a_store),
		T(test_file_modes),
	};
#undef T

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
