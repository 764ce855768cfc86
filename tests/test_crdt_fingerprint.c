/*
 * test_crdt_fingerprint.c: the store's fingerprints: delivery order and
 * duplicates do not matter, incremental bucket summaries always equal a full
 * recompute, range summaries equal scans, and scans visit exactly [lo, hi).
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
/* Order independence and fingerprints                                      */
/* ------------------------------------------------------------------------ */

/* The state of merging every entry of in, sorted by key, into out. */
static size_t
fold_reference(crdt_entry *in, size_t n, int64_t now, crdt_entry *out)
{
	size_t m = 0, kept = 0;

	qsort(in, n, sizeof(*in), entry_cmp_void);
	for (size_t i = 0; i < n; i++) {
		bool changed;

		if (crdt_kind_is_token(in[i].kind) &&
		    in[i].u.token.exp + LEEWAY < now)
			continue;
		if (m > 0 && crdt_key_cmp(&out[m - 1].key, &in[i].key) == 0) {
			assert_int_equal(
			    crdt_entry_merge(&out[m - 1], &in[i], &changed),
			    REVOKD_OK);
			continue;
		}
		out[m++] = in[i];
	}
	for (size_t i = 0; i < m; i++) /* bottoms are not stored */
		if (!is_bottom(&out[i]))
			out[kept++] = out[i];
	return kept;
}

/*
 * Deliver in[0..n) to s in a random order, with random duplicates and
 * random batch splits.
 */
static void
deliver_shuffled(crdt_store *s, uint64_t seed, const crdt_entry *in, size_t n,
    crdt_entry *scratch)
{
	revokd_rng rng;
	size_t m = 0;

	revokd_rng_seed(&rng, seed);
	for (size_t i = 0; i < n; i++) {
		scratch[m++] = in[i];
		if (revokd_rng_below(&rng, 5) == 0)
			scratch[m++] = in[i];
	}
	for (size_t i = m - 1; i > 0; i--) {
		size_t j = (size_t)revokd_rng_below(&rng, i + 1);
		crdt_entry t = scratch[i];

		scratch[i] = scratch[j];
		scratch[j] = t;
	}
	apply_in_batches(s, &rng, scratch, m, 150, NOW);
}

/*
 * Two stores receiving the same random deltas (keys colliding) in different
 * orders, duplicated and split differently, end identical: same entries as
 * the in-memory fold, same count, same recomputed and incremental sums.
 */
static void
test_order_independence(void **state)
{
	struct fx *f = *state;
	const size_t n = 2000;
	crdt_entry *in = fx_alloc(f, n * sizeof(*in));
	crdt_entry *sorted = fx_alloc(f, n * sizeof(*in));
	crdt_entry *ref = fx_alloc(f, n * sizeof(*in));
	crdt_entry *scratch = fx_alloc(f, 2 * n * sizeof(*in));
	struct entries a = { fx_alloc(f, n * sizeof(crdt_entry)), 0, n, false };
	struct entries b = { fx_alloc(f, n * sizeof(crdt_entry)), 0, n, false };
	const uint64_t seeds[3] = { 1, 42, 0xdecafbad };

	f->dir2 = tu_tmpdir();
	for (int si = 0; si < 3; si++) {
		crdt_summary ta, tb, sa, sb;
		revokd_rng rng;
		size_t n_ref;

		store_reset(&f->dir, &f->s, &f->r);
		store_reset(&f->dir2, &f->s2, &f->r2);
		revokd_rng_seed(&rng, seeds[si]);
		for (size_t i = 0; i < n; i++) /* some already expired */
			random_entry(&rng, 300,
			    NOW - (int64_t)revokd_rng_below(&rng, 700), &in[i]);
		memcpy(sorted, in, n * sizeof(*in));
		n_ref = fold_reference(sorted, n, NOW, ref);
		assert_true(n_ref > 200 && n_ref <= 300);

		deliver_shuffled(f->s, seeds[si] * 2 + 1, in, n, scratch);
		deliver_shuffled(f->s2, seeds[si] * 2 + 2, in, n, scratch);
		renew(f->r);
		renew(f->r2);
		scan_all(f->r, &a);
		scan_all(f->r2, &b);
		assert_int_equal(a.n, n_ref);
		assert_int_equal(b.n, n_ref);
		for (size_t i = 0; i < n_ref; i++) {
			assert_true(crdt_entry_equal(&a.v[i], &ref[i]));
			assert_true(crdt_entry_equal(&b.v[i], &ref[i]));
		}
		assert_int_equal(crdt_store_count(f->s), n_ref);
		assert_int_equal(crdt_store_count(f->s2), n_ref);
		assert_int_equal(crdt_reader_recompute(f->r, &ta, NULL),
		    REVOKD_OK);
		assert_int_equal(crdt_reader_recompute(f->r2, &tb, NULL),
		    REVOKD_OK);
		crdt_store_buckets_sum(f->s, 0, CRDT_BUCKETS, &sa);
		crdt_store_buckets_sum(f->s2, 0, CRDT_BUCKETS, &sb);
		assert_summary_eq(&ta, &tb);
		assert_summary_eq(&sa, &sb);
		assert_summary_eq(&ta, &sa);
		assert_int_equal(ta.count, n_ref);
	}
}

/*
 * After rounds of inserts, merges, refused batches and prunes, every
 * incremental bucket summary equals the one recomputed from the entries.
 */
static void
test_buckets_match_recompute(void **state)
{
	struct fx *f = *state;
	const size_t n = 1500;
	crdt_entry *in = fx_alloc(f, n * sizeof(*in));
	size_t pruned = 0;
	revokd_rng rng;

	revokd_rng_seed(&rng, 99);
	for (int round = 0; round < 6; round++) {
		int64_t now = NOW + round * 900;
		crdt_entry bad[3];

		for (size_t i = 0; i < n; i++)
			random_entry(&rng, 4000, now, &in[i]);
		apply_in_batches(f->s, &rng, in, n, 200, now);
		assert_buckets_match(f, f->s, f->r);

		/* A batch refused at its last entry changes nothing. */
		bad[0] = in[revokd_rng_below(&rng, n)];
		if (crdt_kind_is_token(bad[0].kind))
			bad[0].u.token.revoked_at += 1;
		else
			bad[0].u.subject.not_before_ms += 1;
		random_entry(&rng, 0, now, &bad[1]);
		bad[2] = in[revokd_rng_below(&rng, n)];
		memset(&bad[2].u, 0, sizeof(bad[2].u));
		bad[2].kind = bad[2].kind == CRDT_KIND_SUB ? CRDT_KIND_JTI
		                                           : CRDT_KIND_SUB;
		bad[2].u.token.exp = now + 100;
		assert_int_equal(
		    crdt_store_apply(f->s, bad, 3, now, NULL, NULL),
		    REVOKD_EKIND);
		assert_buckets_match(f, f->s, f->r);

		pruned += prune_sweep(f->s, now,
		    1 + (size_t)revokd_rng_below(&rng, 500));
		assert_buckets_match(f, f->s, f->r);
	}
	assert_true(pruned > 500);
}

/* ------------------------------------------------------------------------ */
/* Range summaries and scans                                                */
/* ------------------------------------------------------------------------ */

/* The sorted keys of a store, and prefix sums of their entry summaries. */
struct ref {
	crdt_key *keys;
	crdt_summary *prefix; /* prefix[i]: the summary of keys[0..i) */
	size_t n;
};

/* Fill ref from entries with distinct keys (sorts them). */
static void
ref_build(struct ref *rf, crdt_entry *v, size_t n)
{
	qsort(v, n, sizeof(*v), entry_cmp_void);
	memset(&rf->prefix[0], 0, sizeof(rf->prefix[0]));
	for (size_t i = 0; i < n; i++) {
		crdt_summary one;

		if (i > 0)
			assert_true(crdt_key_cmp(&v[i - 1].key, &v[i].key) < 0);
		rf->keys[i] = v[i].key;
		crdt_entry_summary(&v[i], &one);
		rf->prefix[i + 1] = rf->prefix[i];
		crdt_summary_add(&rf->prefix[i + 1], &one);
	}
	rf->n = n;
}

/* Indexes [*i, *j) of ref's keys in [lo, hi). */
static void
ref_span(const struct ref *rf, const crdt_key *lo, const crdt_key *hi,
    size_t *i, size_t *j)
{
	*i = lo ? lower_bound(rf->keys, rf->n, lo) : 0;
	*j = hi ? lower_bound(rf->keys, rf->n, hi) : rf->n;
	if (*j < *i)
		*j = *i;
}

static void
ref_summary(const struct ref *rf, const crdt_key *lo, const crdt_key *hi,
    crdt_summary *out)
{
	size_t i, j;

	ref_span(rf, lo, hi, &i, &j);
	*out = rf->prefix[j];
	crdt_summary_sub(out, &rf->prefix[i]);
}

/*
 * A random range bound: NULL, a random key, a bucket's first key, a stored
 * key, just past a stored key, a key in the bucket of other, or an edge of
 * the key space.
 */
static const crdt_key *
random_bound(revokd_rng *rng, const struct ref *rf, const crdt_key *other,
    crdt_key *buf)
{
	const crdt_key *stored = &rf->keys[revokd_rng_below(rng, rf->n)];

	switch (revokd_rng_below(rng, 8)) {
	case 0:
		return NULL;
	case 1:
		tu_random_key(rng, 0, buf);
		break;
	case 2:
		crdt_bucket_first_key(crdt_key_bucket(stored), buf);
		break;
	case 3:
		*buf = *stored;
		break;
	case 4:
		*buf = *stored;
		buf->b[CRDT_KEY_LEN - 1] |= 1; /* at or just past it */
		break;
	case 5:
	case 6:
		key_in_bucket(rng, crdt_key_bucket(other ? other : stored),
		    buf);
		break;
	default:
		switch (revokd_rng_below(rng, 4)) {
		case 0:
			memset(buf->b, 0, CRDT_KEY_LEN);
			break;
		case 1:
			memset(buf->b, 0xff, CRDT_KEY_LEN);
			break;
		case 2:
			crdt_bucket_first_key(CRDT_BUCKETS - 1, buf);
			break;
		default:
			key_in_bucket(rng, CRDT_BUCKETS - 1, buf);
		}
	}
	return buf;
}

/* How a range relates to the buckets, to count what was covered. */
enum range_shape {
	SHAPE_EMPTY,       /* lo >= hi */
	SHAPE_ONE_BUCKET,  /* lo and hi in one bucket */
	SHAPE_ALIGNED,     /* some end bucket-aligned or open */
	SHAPE_TWO_PARTIAL, /* both ends inside buckets, buckets apart */
	SHAPE_COUNT
};

static enum range_shape
range_shape(const crdt_key *lo, const crdt_key *hi)
{
	crdt_key first;

	if (lo && hi && crdt_key_cmp(lo, hi) >= 0)
		return SHAPE_EMPTY;
	if (lo && hi && crdt_key_bucket(lo) == crdt_key_bucket(hi))
		return SHAPE_ONE_BUCKET;
	if (lo == NULL || hi == NULL)
		return SHAPE_ALIGNED;
	crdt_bucket_first_key(crdt_key_bucket(lo), &first);
	if (crdt_key_cmp(lo, &first) == 0)
		return SHAPE_ALIGNED;
	crdt_bucket_first_key(crdt_key_bucket(hi), &first);
	if (crdt_key_cmp(hi, &first) == 0)
		return SHAPE_ALIGNED;
	return SHAPE_TWO_PARTIAL;
}

/*
 * Check crdt_reader_range_summary against the reference for n random
 * ranges, and against a literal scan for every scan_every-th of them.
 */
static void
check_ranges(crdt_reader *r, const struct ref *rf, revokd_rng *rng, size_t n,
    size_t scan_every, size_t *shapes)
{
	for (size_t i = 0; i < n; i++) {
		crdt_key lo_buf, hi_buf;
		const crdt_key *lo = random_bound(rng, rf, NULL, &lo_buf);
		const crdt_key *hi = random_bound(rng, rf, lo, &hi_buf);
		crdt_summary got, want, scanned;

		if (i % 50 == 0 && lo != NULL) /* lo == hi */
			hi = lo;
		ref_summary(rf, lo, hi, &want);
		memset(&got, 0xa5, sizeof(got));
		assert_int_equal(crdt_reader_range_summary(r, lo, hi, &got),
		    REVOKD_OK);
		assert_summary_eq(&got, &want);
		if (i % scan_every == 0) {
			scan_summary(r, lo, hi, &scanned);
			assert_summary_eq(&scanned, &want);
		}
		shapes[range_shape(lo, hi)]++;
	}
}

/* Random entries: half uniform, half crowded into a few hot buckets. */
static void
random_crowded(revokd_rng *rng, crdt_entry *v, size_t n, int64_t now)
{
	for (size_t i = 0; i < n; i++) {
		random_entry(rng, 0, now, &v[i]);
		if (i % 2 == 1)
			key_in_bucket(rng,
			    (uint32_t)(revokd_rng_below(rng, 300) * 13) %
			        CRDT_BUCKETS,
			    &v[i].key);
	}
}

/*
 * crdt_reader_range_summary equals the sum of crdt_entry_summary over the
 * entries in [lo, hi), for random ranges of every shape, on a store where
 * many buckets hold several entries; also for a reader whose snapshot is
 * older than the last commit.
 */
static void
test_range_summary(void **state)
{
	struct fx *f = *state;
	const size_t n = 20000, n_new = 2000, n_upd = 1000;
	crdt_entry *v = fx_alloc(f, (n + n_new) * sizeof(*v));
	crdt_entry *batch = fx_alloc(f, (n_new + n_upd) * sizeof(*v));
	struct ref old = { fx_alloc(f, n * sizeof(crdt_key)),
		fx_alloc(f, (n + 1) * sizeof(crdt_summary)), 0 };
	struct ref cur = { fx_alloc(f, (n + n_new) * sizeof(crdt_key)),
		fx_alloc(f, (n + n_new + 1) * sizeof(crdt_summary)), 0 };
	size_t shapes[SHAPE_COUNT] = { 0 }, crowded = 0;
	revokd_rng rng;

	revokd_rng_seed(&rng, 2024);
	random_crowded(&rng, v, n, NOW);
	apply_in_batches(f->s, &rng, v, n, 1000, NOW);
	assert_int_equal(crdt_store_count(f->s), n);
	ref_build(&old, v, n);
	for (uint32_t b = 0; b < CRDT_BUCKETS; b++) {
		crdt_summary one;

		crdt_store_buckets_sum(f->s, b, b + 1, &one);
		crowded += one.count >= 3;
	}
	assert_true(crowded >= 250);

	renew(f->r);
	check_ranges(f->r, &old, &rng, 3000, 20, shapes);
	for (int sh = 0; sh < SHAPE_COUNT; sh++)
		assert_true(shapes[sh] >= 100);

	/* New keys and updates; the old snapshot keeps the old answers. */
	assert_int_equal(crdt_reader_new(f->s, &f->r2), REVOKD_OK);
	renew(f->r2);
	random_crowded(&rng, v + n, n_new, NOW);
	memcpy(batch, v + n, n_new * sizeof(*v));
	for (size_t i = 0; i < n_upd; i++) {
		crdt_entry *e = &v[revokd_rng_below(&rng, n)];

		if (crdt_kind_is_token(e->kind))
			e->u.token.exp++;
		else
			e->u.subject.not_before_ms++;
		batch[n_new + i] = *e;
	}
	apply_in_batches(f->s, &rng, batch, n_new + n_upd, 500, NOW);
	ref_build(&cur, v, n + n_new);
	renew(f->r);
	memset(shapes, 0, sizeof(shapes));
	check_ranges(f->r2, &old, &rng, 500, 10, shapes);
	check_ranges(f->r, &cur, &rng, 500, 10, shapes);
	assert_buckets_match(f, f->s, f->r);
}

struct collect_keys {
	crdt_key *keys;
	size_t n, cap, stop; /* stop after stop keys (0: never) */
};

static bool
collect_key(void *arg, const crdt_entry *e)
{
	struct collect_keys *ck = arg;

	if (ck->n == ck->cap)
		return false;
	ck->keys[ck->n++] = e->key;
	return ck->stop == 0 || ck->n < ck->stop;
}

/*
 * crdt_reader_scan visits exactly the keys in [lo, hi), in increasing
 * order, and stops as soon as the callback returns false.
 */
static void
test_scan_range_and_stop(void **state)
{
	struct fx *f = *state;
	const size_t n = 3000;
	crdt_entry *v = fx_alloc(f, n * sizeof(*v));
	struct ref rf = { fx_alloc(f, n * sizeof(crdt_key)),
		fx_alloc(f, (n + 1) * sizeof(crdt_summary)), 0 };
	struct collect_keys ck = { fx_alloc(f, (n + 1) * sizeof(crdt_key)), 0,
		n + 1, 0 };
	const size_t stops[] = { 1, 2, 17, n, n + 1 };
	revokd_rng rng;

	renew(f->r);
	assert_int_equal(crdt_reader_scan(f->r, NULL, NULL, collect_key, &ck),
	    REVOKD_OK);
	assert_int_equal(ck.n, 0);

	revokd_rng_seed(&rng, 3);
	random_crowded(&rng, v, n, NOW);
	apply_in_batches(f->s, &rng, v, n, 400, NOW);
	ref_build(&rf, v, n);
	renew(f->r);
	for (int i = 0; i < 400; i++) {
		crdt_key lo_buf, hi_buf;
		const crdt_key *lo = random_bound(&rng, &rf, NULL, &lo_buf);
		const crdt_key *hi = random_bound(&rng, &rf, lo, &hi_buf);
		size_t a, b;

		ck.n = 0;
		ck.stop = 0;
		assert_int_equal(
		    crdt_reader_scan(f->r, lo, hi, collect_key, &ck),
		    REVOKD_OK);
		ref_span(&rf, lo, hi, &a, &b);
		assert_int_equal(ck.n, b - a);
		for (size_t k = 0; k < ck.n; k++)
			assert_int_equal(
			    crdt_key_cmp(&ck.keys[k], &rf.keys[a + k]), 0);
	}
	for (size_t i = 0; i < sizeof(stops) / sizeof(stops[0]); i++) {
		ck.n = 0;
		ck.stop = stops[i];
		assert_int_equal(
		    crdt_reader_scan(f->r, NULL, NULL, collect_key, &ck),
		    REVOKD_OK);
		assert_int_equal(ck.n, stops[i] < n ? stops[i] : n);
		for (size_t k = 0; k < ck.n; k++)
			assert_int_equal(crdt_key_cmp(&ck.keys[k], &rf.keys[k]),
			    0);
	}
	/* Stop early in the middle of a range. */
	ck.n = 0;
	ck.stop = 5;
	assert_int_equal(
	    crdt_reader_scan(f->r, &rf.keys[100], NULL, collect_key, &ck),
	    REVOKD_OK);
	assert_int_equal(ck.n, 5);
	assert_int_equal(crdt_key_cmp(&ck.keys[4], &rf.keys[104]), 0);
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_order_independence),
		T(test_buckets_match_recompute),
		T(test_range_summary),
		T(test_scan_range_and_stop),
	};
#undef T

	return cmocka_run_group_tests(tests, NULL, NULL);
}
