/*
 * test_crdt_lattice.c: property tests of the token and subject lattices,
 * their canonical encoding, the summaries and the buckets. Random cases come
 * from fixed seeds, and every result is compared with a small model of the
 * lattice written here from crdt.h's theory, not from lattice.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <string.h>

#include "crdt/crdt.h"
#include "testutil.h"

/* Random cases per property. */
#define CASES 20000

/* "Now" for random tokens, unix seconds. */
#define NOW 1700000000

/* A not_before_ms base: random values sit a few ms above it. */
#define NB0 1700000000000ull

/* ------------------------------------------------------------------------ */
/* Models and helpers                                                       */
/* ------------------------------------------------------------------------ */

/*
 * The writer regions random subjects use: few enough that two random
 * subjects share regions, spread over the whole uint16_t range so that the
 * order of regions is exercised too.
 */
static const uint16_t region_ids[] = { 0, 1, 2, 3, 7, 8, 100, 255, 256, 1000,
	4096, 30000, 32768, 40000, 65534, 65535 };

#define REGION_IDS (sizeof(region_ids) / sizeof(region_ids[0]))

/*
 * A subject in dense form: a count for every region of region_ids (0: not
 * in the counter). Its join is the pointwise max, plainly.
 */
struct dense {
	uint64_t count[REGION_IDS];
	uint64_t not_before_ms;
};

/* The canonical subject of d: regions increasing, zero counts left out. */
static void
dense_to_subject(const struct dense *d, crdt_subject *s)
{
	memset(s, 0, sizeof(*s));
	for (size_t r = 0; r < REGION_IDS; r++) {
		if (d->count[r] == 0)
			continue;
		s->region[s->n] = region_ids[r];
		s->count[s->n++] = d->count[r];
	}
	s->not_before_ms = d->not_before_ms;
}

/* The model join of a and b. */
static void
dense_join(const struct dense *a, const struct dense *b, struct dense *out)
{
	for (size_t r = 0; r < REGION_IDS; r++)
		out->count[r] =
		    a->count[r] > b->count[r] ? a->count[r] : b->count[r];
	out->not_before_ms = a->not_before_ms > b->not_before_ms
	                         ? a->not_before_ms
	                         : b->not_before_ms;
}

/* The model version: the sum of the counts. */
static uint64_t
dense_version(const struct dense *d)
{
	uint64_t v = 0;

	for (size_t r = 0; r < REGION_IDS; r++)
		v += d->count[r];
	return v;
}

/* A random dense subject; counts mostly small so that ties are common. */
static void
random_dense(revokd_rng *rng, struct dense *d)
{
	memset(d, 0, sizeof(*d));
	for (size_t r = 0; r < REGION_IDS; r++) {
		if (revokd_rng_below(rng, 3) != 0)
			continue;
		if (revokd_rng_below(rng, 8) == 0)
			d->count[r] = 1 + revokd_rng_below(rng, 1ull << 40);
		else
			d->count[r] = 1 + revokd_rng_below(rng, 4);
	}
	if (revokd_rng_below(rng, 2) == 0)
		d->not_before_ms = NB0 + revokd_rng_below(rng, 4);
}

/* Change d a little, up or down, so that related values are common. */
static void
mutate_dense(revokd_rng *rng, struct dense *d)
{
	size_t r = revokd_rng_below(rng, REGION_IDS);

	switch (revokd_rng_below(rng, 4)) {
	case 0:
		d->count[r] = revokd_rng_below(rng, 5);
		break;
	case 1:
		d->count[r]++;
		break;
	case 2:
		d->not_before_ms = NB0 + revokd_rng_below(rng, 4);
		break;
	default:
		break;
	}
}

/*
 * n random dense subjects, each either fresh, a copy of an earlier one, or
 * an earlier one changed a little.
 */
static void
random_dense_set(revokd_rng *rng, struct dense *d, size_t n)
{
	random_dense(rng, &d[0]);
	for (size_t i = 1; i < n; i++) {
		switch (revokd_rng_below(rng, 3)) {
		case 0:
			random_dense(rng, &d[i]);
			break;
		case 1:
			d[i] = d[revokd_rng_below(rng, i)];
			break;
		default:
			d[i] = d[revokd_rng_below(rng, i)];
			mutate_dense(rng, &d[i]);
			break;
		}
	}
}

/* A random token value, from testutil (small HLC range: many ties). */
static void
random_token(revokd_rng *rng, crdt_token *t)
{
	tu_random_token(rng, NOW, t);
	if (revokd_rng_below(rng, 4) == 0)
		t->exp = NOW + (int64_t)revokd_rng_below(rng, 3);
}

/* Change one field of t a little, up or down. */
static void
mutate_token(revokd_rng *rng, crdt_token *t)
{
	crdt_token other;

	random_token(rng, &other);
	switch (revokd_rng_below(rng, 5)) {
	case 0:
		t->exp = other.exp;
		break;
	case 1:
		t->revoked_at = other.revoked_at;
		break;
	case 2:
		t->restored_at = other.restored_at;
		break;
	case 3:
		t->origin = other.origin;
		break;
	default:
		t->reason = other.reason;
		break;
	}
}

/* n random tokens, each fresh, a copy of an earlier one, or one changed. */
static void
random_token_set(revokd_rng *rng, crdt_token *t, size_t n)
{
	random_token(rng, &t[0]);
	for (size_t i = 1; i < n; i++) {
		switch (revokd_rng_below(rng, 3)) {
		case 0:
			random_token(rng, &t[i]);
			break;
		case 1:
			t[i] = t[revokd_rng_below(rng, i)];
			break;
		default:
			t[i] = t[revokd_rng_below(rng, i)];
			mutate_token(rng, &t[i]);
			break;
		}
	}
}

/*
 * The model join of two tokens: exp and restored_at are maxima, and the
 * (revoked_at, origin, reason) triple is the lexicographic maximum.
 */
static void
model_token_join(const crdt_token *a, const crdt_token *b, crdt_token *out)
{
	const crdt_token *w;

	if (a->revoked_at != b->revoked_at)
		w = a->revoked_at > b->revoked_at ? a : b;
	else if (a->origin != b->origin)
		w = a->origin > b->origin ? a : b;
	else
		w = a->reason > b->reason ? a : b;
	memset(out, 0, sizeof(*out));
	out->exp = a->exp > b->exp ? a->exp : b->exp;
	out->restored_at =
	    a->restored_at > b->restored_at ? a->restored_at : b->restored_at;
	out->revoked_at = w->revoked_at;
	out->origin = w->origin;
	out->reason = w->reason;
}

/* The model verdict: revoked iff revoked_at != 0 and >= restored_at. */
static bool
model_revoked(const crdt_token *t)
{
	return t->revoked_at != 0 && t->revoked_at >= t->restored_at;
}

static void
assert_token_equal(const crdt_token *a, const crdt_token *b)
{
	assert_int_equal(a->exp, b->exp);
	assert_int_equal(a->revoked_at, b->revoked_at);
	assert_int_equal(a->restored_at, b->restored_at);
	assert_int_equal(a->origin, b->origin);
	assert_int_equal(a->reason, b->reason);
}

static bool
token_equal(const crdt_token *a, const crdt_token *b)
{
	return a->exp == b->exp && a->revoked_at == b->revoked_at &&
	       a->restored_at == b->restored_at && a->origin == b->origin &&
	       a->reason == b->reason;
}

static void
assert_subject_equal(const crdt_subject *a, const crdt_subject *b)
{
	assert_int_equal(a->not_before_ms, b->not_before_ms);
	assert_int_equal(a->n, b->n);
	for (uint32_t i = 0; i < a->n; i++) {
		assert_int_equal(a->region[i], b->region[i]);
		assert_int_equal(a->count[i], b->count[i]);
	}
}

/* A zeroed entry of kind with a fixed key. */
static void
entry_init(crdt_entry *e, crdt_kind kind)
{
	memset(e, 0, sizeof(*e));
	memset(e->key.b, 0x4b, CRDT_KEY_LEN);
	e->kind = kind;
}

/* The canonical encoding of a subject (as a sub entry) into buf. */
static size_t
subject_encode(const crdt_subject *s, uint8_t buf[CRDT_VALUE_MAX])
{
	crdt_entry e;

	entry_init(&e, CRDT_KIND_SUB);
	e.u.subject = *s;
	return crdt_value_encode(&e, buf);
}

/* True when a and b encode to the same bytes. */
static bool
subject_same(const crdt_subject *a, const crdt_subject *b)
{
	uint8_t ea[CRDT_VALUE_MAX], eb[CRDT_VALUE_MAX];
	size_t la = subject_encode(a, ea), lb = subject_encode(b, eb);

	return la == lb && memcmp(ea, eb, la) == 0;
}

/* into ⊔= from for subjects, which must succeed; returns changed. */
static bool
subject_join(crdt_subject *into, const crdt_subject *from)
{
	bool changed = true; /* a merge that never writes it is caught */
	revokd_err err = crdt_subject_merge(into, from, &changed);

	assert_int_equal(err, REVOKD_OK);
	return changed;
}

/* into ⊔= from for entries, which must succeed; returns changed. */
static bool
entry_join(crdt_entry *into, const crdt_entry *from)
{
	bool changed = true;
	revokd_err err = crdt_entry_merge(into, from, &changed);

	assert_int_equal(err, REVOKD_OK);
	return changed;
}

/* Add delta to region's count in s, which must succeed. */
static void
bump(crdt_subject *s, uint16_t region, uint64_t delta)
{
	assert_int_equal(crdt_subject_bump(s, region, delta), REVOKD_OK);
}

/* A subject holding n regions 0, 2, 4, ... (each count 1). */
static void
subject_even_regions(crdt_subject *s, uint32_t n)
{
	memset(s, 0, sizeof(*s));
	for (uint32_t i = 0; i < n; i++) {
		s->region[i] = (uint16_t)(2 * i);
		s->count[i] = 1;
	}
	s->n = n;
}

/* ------------------------------------------------------------------------ */
/* Join laws                                                                */
/* ------------------------------------------------------------------------ */

/*
 * crdt_token_merge is a join: it equals the model join, is commutative,
 * associative and idempotent, reports a change exactly when the value
 * changed, and merging either input again changes nothing. The verdict of
 * the join is the model's.
 */
static void
test_token_join_laws(void **state)
{
	revokd_rng rng;
	int changes = 0, revoked = 0;

	(void)state;
	revokd_rng_seed(&rng, 0x746f6b31);
	for (int i = 0; i < CASES; i++) {
		crdt_token t[3], ab, ba, ab_c, bc, a_bc, aa, want;
		bool changed;

		random_token_set(&rng, t, 3);
		model_token_join(&t[0], &t[1], &want);

		ab = t[0];
		changed = crdt_token_merge(&ab, &t[1]);
		assert_token_equal(&ab, &want);
		assert_int_equal(changed, !token_equal(&ab, &t[0]));
		changes += changed;
		ba = t[1];
		changed = crdt_token_merge(&ba, &t[0]);
		assert_token_equal(&ba, &ab);
		assert_int_equal(changed, !token_equal(&ba, &t[1]));
		assert_int_equal(crdt_token_revoked(&t[0]),
		    model_revoked(&t[0]));
		assert_int_equal(crdt_token_revoked(&ab), model_revoked(&want));
		revoked += model_revoked(&want);

		ab_c = ab;
		crdt_token_merge(&ab_c, &t[2]);
		bc = t[1];
		crdt_token_merge(&bc, &t[2]);
		a_bc = t[0];
		crdt_token_merge(&a_bc, &bc);
		assert_token_equal(&ab_c, &a_bc);

		aa = t[0];
		assert_false(crdt_token_merge(&aa, &t[0]));
		assert_token_equal(&aa, &t[0]);

		assert_false(crdt_token_merge(&ab, &t[1]));
		assert_false(crdt_token_merge(&ab, &t[0]));
		assert_false(crdt_token_merge(&ab, &ba));
		assert_token_equal(&ab, &want);
	}
	/* Both outcomes were exercised often. */
	assert_true(changes > CASES / 5 && changes < CASES * 4 / 5);
	assert_true(revoked > CASES / 5 && revoked < CASES * 4 / 5);
}

/*
 * crdt_subject_merge is a join: it equals the model (pointwise max of the
 * counts, max of not_before_ms), is commutative, associative and idempotent,
 * reports a change exactly when the canonical encoding changed, and merging
 * either input again changes nothing. The result is canonical.
 */
static void
test_subject_join_laws(void **state)
{
	revokd_rng rng;
	int changes = 0;

	(void)state;
	revokd_rng_seed(&rng, 0x7375626a);
	for (int i = 0; i < CASES; i++) {
		struct dense d[3], dw;
		crdt_subject s[3], want, ab, ba, ab_c, bc, a_bc, aa;
		bool changed;

		random_dense_set(&rng, d, 3);
		for (int j = 0; j < 3; j++)
			dense_to_subject(&d[j], &s[j]);
		dense_join(&d[0], &d[1], &dw);
		dense_to_subject(&dw, &want);

		ab = s[0];
		changed = subject_join(&ab, &s[1]);
		assert_subject_equal(&ab, &want);
		assert_int_equal(changed, !subject_same(&ab, &s[0]));
		changes += changed;
		ba = s[1];
		changed = subject_join(&ba, &s[0]);
		assert_subject_equal(&ba, &want);
		assert_int_equal(changed, !subject_same(&ba, &s[1]));

		ab_c = ab;
		subject_join(&ab_c, &s[2]);
		bc = s[1];
		subject_join(&bc, &s[2]);
		a_bc = s[0];
		subject_join(&a_bc, &bc);
		assert_true(subject_same(&ab_c, &a_bc));
		assert_subject_equal(&ab_c, &a_bc);

		aa = s[0];
		assert_false(subject_join(&aa, &s[0]));
		assert_subject_equal(&aa, &s[0]);

		assert_false(subject_join(&ab, &s[1]));
		assert_false(subject_join(&ab, &s[0]));
		assert_false(subject_join(&ab, &ba));
		assert_subject_equal(&ab, &want);
	}
	assert_true(changes > CASES / 5 && changes < CASES * 4 / 5);
}

/* n related random entries of one random kind, under one fixed key. */
static void
random_entry_set(revokd_rng *rng, crdt_entry *e, size_t n)
{
	crdt_kind kind = (crdt_kind)(1 + revokd_rng_below(rng, 5));
	crdt_token t[3];
	struct dense d[3];

	assert_true(n <= 3);
	random_token_set(rng, t, n);
	random_dense_set(rng, d, n);
	for (size_t i = 0; i < n; i++) {
		entry_init(&e[i], kind);
		if (crdt_kind_is_token(kind))
			e[i].u.token = t[i];
		else
			dense_to_subject(&d[i], &e[i].u.subject);
	}
}

/*
 * The same laws through crdt_entry_merge, for all five kinds, judged by
 * crdt_entry_equal (key, kind and canonical encoding): commutative,
 * associative, idempotent, changed iff not equal, and monotone.
 */
static void
test_entry_join_laws(void **state)
{
	revokd_rng rng;
	int seen[CRDT_KIND_TENANT + 1] = { 0 };

	(void)state;
	revokd_rng_seed(&rng, 0x656e7472);
	for (int i = 0; i < CASES; i++) {
		crdt_entry e[3], ab, ba, ab_c, bc, a_bc, aa;
		bool changed;

		random_entry_set(&rng, e, 3);
		seen[e[0].kind]++;

		ab = e[0];
		changed = entry_join(&ab, &e[1]);
		assert_int_equal(changed, !crdt_entry_equal(&ab, &e[0]));
		assert_int_equal(crdt_key_cmp(&ab.key, &e[0].key), 0);
		assert_int_equal(ab.kind, e[0].kind);
		ba = e[1];
		changed = entry_join(&ba, &e[0]);
		assert_int_equal(changed, !crdt_entry_equal(&ba, &e[1]));
		assert_true(crdt_entry_equal(&ab, &ba));

		ab_c = ab;
		entry_join(&ab_c, &e[2]);
		bc = e[1];
		entry_join(&bc, &e[2]);
		a_bc = e[0];
		entry_join(&a_bc, &bc);
		assert_true(crdt_entry_equal(&ab_c, &a_bc));

		aa = e[0];
		assert_false(entry_join(&aa, &e[0]));
		assert_true(crdt_entry_equal(&aa, &e[0]));

		assert_false(entry_join(&ab, &e[1]));
		assert_false(entry_join(&ab, &e[0]));
		assert_true(crdt_entry_equal(&ab, &ba));
	}
	for (int k = CRDT_KIND_JTI; k <= CRDT_KIND_TENANT; k++)
		assert_true(seen[k] > CASES / 10);
}

/* ------------------------------------------------------------------------ */
/* Token entries                                                            */
/* ------------------------------------------------------------------------ */

/*
 * The verdict: revoke wins a tie, a strictly later restore un-revokes, a
 * strictly later revoke re-revokes, and revoked_at 0 never means revoked.
 */
static void
test_token_revoke_wins_tie(void **state)
{
	const crdt_hlc h = CRDT_HLC_AT(NB0) + 5;
	crdt_token t;

	(void)state;
	memset(&t, 0, sizeof(t));
	assert_false(crdt_token_revoked(&t));
	t.revoked_at = h;
	assert_true(crdt_token_revoked(&t));
	t.restored_at = h;
	assert_true(crdt_token_revoked(&t));
	t.restored_at = h + 1;
	assert_false(crdt_token_revoked(&t));
	t.revoked_at = h + 2;
	assert_true(crdt_token_revoked(&t));
	t.restored_at = UINT64_MAX;
	assert_false(crdt_token_revoked(&t));
	t.revoked_at = UINT64_MAX;
	assert_true(crdt_token_revoked(&t));

	/* revoked_at 0: never, whatever else is set. */
	t.revoked_at = 0;
	t.origin = 7;
	t.reason = 3;
	t.exp = NOW;
	for (crdt_hlc r = 0; r < 3; r++) {
		t.restored_at = r;
		assert_false(crdt_token_revoked(&t));
	}
}

/*
 * Two replicas start from one state; one revokes at ha while the other
 * restores at hb (both later than the start). Merged in either order they
 * agree, and the verdict is revoked exactly when ha >= hb.
 */
static void
test_token_concurrent_revoke_restore(void **state)
{
	revokd_rng rng;
	int ties = 0;

	(void)state;
	revokd_rng_seed(&rng, 0x72657673);
	for (int i = 0; i < CASES; i++) {
		crdt_token start, a, b, ab, ba;
		crdt_hlc top, ha, hb;

		random_token(&rng, &start);
		top = start.revoked_at > start.restored_at ? start.revoked_at
		                                           : start.restored_at;
		if (top == 0)
			top = CRDT_HLC_AT(NB0);
		ha = top + 1 + revokd_rng_below(&rng, 3);
		hb = top + 1 + revokd_rng_below(&rng, 3);
		ties += ha == hb;

		a = start;
		a.revoked_at = ha;
		a.origin = (uint16_t)revokd_rng_below(&rng, 4);
		a.reason = (uint8_t)revokd_rng_below(&rng, 4);
		b = start;
		b.restored_at = hb;

		ab = a;
		assert_int_equal(crdt_token_merge(&ab, &b), true);
		ba = b;
		assert_int_equal(crdt_token_merge(&ba, &a), true);
		assert_token_equal(&ab, &ba);
		assert_int_equal(crdt_token_revoked(&ab), ha >= hb);
		assert_int_equal(crdt_token_revoked(&ba), ha >= hb);
		assert_int_equal(ab.revoked_at, ha);
		assert_int_equal(ab.restored_at, hb);
		assert_int_equal(ab.origin, a.origin);
		assert_int_equal(ab.reason, a.reason);
	}
	assert_true(ties > CASES / 5);
}

/*
 * Fixed merges. (origin, reason) ride with revoked_at: the larger
 * revoked_at brings its own, even when its origin and reason are smaller;
 * on equal revoked_at the larger origin wins, then the larger reason. exp
 * is a plain max. In either merge order; merging an input again is no
 * change.
 */
static void
test_token_revocation_metadata(void **state)
{
	static const struct {
		crdt_token a, b, want;
	} cases[] = {
		/* later revocation, smaller origin and reason */
		{ { 0, 100, 0, 9, 9 }, { 0, 200, 0, 1, 1 },
		    { 0, 200, 0, 1, 1 } },
		/* equal revoked_at: larger origin, smaller reason */
		{ { 0, 100, 0, 2, 0 }, { 0, 100, 0, 1, 7 },
		    { 0, 100, 0, 2, 0 } },
		/* equal revoked_at and origin: larger reason */
		{ { 0, 100, 0, 1, 3 }, { 0, 100, 0, 1, 5 },
		    { 0, 100, 0, 1, 5 } },
		/* restored_at and exp do not carry metadata */
		{ { 50, 100, 900, 1, 1 }, { 10, 101, 0, 0, 0 },
		    { 50, 101, 900, 0, 0 } },
		/* never revoked: a revocation wins over any metadata */
		{ { 0, 0, 0, 65535, 255 }, { 0, 1, 0, 0, 0 },
		    { 0, 1, 0, 0, 0 } },
		/* extremes of the ranges */
		{ { 0, 100, 0, 65535, 0 }, { 0, 100, 0, 65534, 255 },
		    { 0, 100, 0, 65535, 0 } },
		/* exp is a plain max, negative (pre-1970) values too */
		{ { -5, 0, 0, 0, 0 }, { -7, 0, 0, 0, 0 }, { -5, 0, 0, 0, 0 } },
		{ { -5, 0, 0, 0, 0 }, { INT64_MAX, 0, 0, 0, 0 },
		    { INT64_MAX, 0, 0, 0, 0 } },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		crdt_token ab = cases[i].a, ba = cases[i].b;

		crdt_token_merge(&ab, &cases[i].b);
		crdt_token_merge(&ba, &cases[i].a);
		assert_token_equal(&ab, &cases[i].want);
		assert_token_equal(&ba, &cases[i].want);
		assert_false(crdt_token_merge(&ab, &cases[i].a));
		assert_false(crdt_token_merge(&ab, &cases[i].b));
	}
}

/* ------------------------------------------------------------------------ */
/* Subject entries: the G-counter                                           */
/* ------------------------------------------------------------------------ */

/*
 * Two regions bump concurrently from one starting state: merged either way
 * the replicas agree, and the version is start + both deltas.
 */
static void
test_gcounter_concurrent_bumps(void **state)
{
	revokd_rng rng;

	(void)state;
	revokd_rng_seed(&rng, 0x67636e31);
	for (int i = 0; i < CASES; i++) {
		struct dense d;
		crdt_subject start, a, b, ab, ba;
		size_t ra = revokd_rng_below(&rng, REGION_IDS);
		size_t rb = (ra + 1 + revokd_rng_below(&rng, REGION_IDS - 1)) %
		            REGION_IDS;
		uint64_t da = 1 + revokd_rng_below(&rng, 1000);
		uint64_t db = 1 + revokd_rng_below(&rng, 1000);
		uint64_t v0;

		random_dense(&rng, &d);
		dense_to_subject(&d, &start);
		v0 = crdt_subject_version(&start);
		assert_int_equal(v0, dense_version(&d));

		a = start;
		bump(&a, region_ids[ra], da);
		assert_int_equal(crdt_subject_version(&a), v0 + da);
		b = start;
		bump(&b, region_ids[rb], db);
		assert_int_equal(crdt_subject_version(&b), v0 + db);

		ab = a;
		assert_true(subject_join(&ab, &b));
		ba = b;
		assert_true(subject_join(&ba, &a));
		assert_subject_equal(&ab, &ba);
		assert_int_equal(crdt_subject_version(&ab), v0 + da + db);

		d.count[ra] += da;
		d.count[rb] += db;
		dense_to_subject(&d, &start);
		assert_subject_equal(&ab, &start);
	}
}

/*
 * Bumping the same region in two replicas is not how regions are meant to
 * be used, but the join still holds: the count is the larger one, not the
 * sum, in either order.
 */
static void
test_gcounter_same_region_max(void **state)
{
	revokd_rng rng;

	(void)state;
	revokd_rng_seed(&rng, 0x67636e32);
	for (int i = 0; i < CASES; i++) {
		struct dense d;
		crdt_subject start, a, b, ab, ba;
		size_t r = revokd_rng_below(&rng, REGION_IDS);
		uint64_t da = 1 + revokd_rng_below(&rng, 5);
		uint64_t db = 1 + revokd_rng_below(&rng, 5);
		uint64_t big = da > db ? da : db;

		random_dense(&rng, &d);
		dense_to_subject(&d, &start);
		a = start;
		bump(&a, region_ids[r], da);
		b = start;
		bump(&b, region_ids[r], db);
		ab = a;
		assert_int_equal(subject_join(&ab, &b), db > da);
		ba = b;
		assert_int_equal(subject_join(&ba, &a), da > db);
		assert_subject_equal(&ab, &ba);
		assert_int_equal(crdt_subject_version(&ab),
		    crdt_subject_version(&start) + big);
		d.count[r] += big;
		dense_to_subject(&d, &start);
		assert_subject_equal(&ab, &start);
	}
}

/*
 * Regression: counts from two regions whose sum passes 2^64 saturate at
 * UINT64_MAX instead of wrapping, so the version cannot go down by a merge.
 */
static void
test_gcounter_version_saturates(void **state)
{
	crdt_subject a = { 0 }, b = { 0 };
	bool changed = false;

	(void)state;
	assert_int_equal(crdt_subject_bump(&a, 1, 1ull << 63), REVOKD_OK);
	assert_int_equal(crdt_subject_bump(&b, 2, 1ull << 63), REVOKD_OK);
	assert_true(crdt_subject_version(&a) == 1ull << 63);
	assert_int_equal(crdt_subject_merge(&a, &b, &changed), REVOKD_OK);
	assert_true(changed);
	assert_true(crdt_subject_version(&a) == UINT64_MAX);
}

/*
 * The version never decreases under a merge: version(a ⊔ b) is at least
 * either version, and exactly the model's sum of pointwise maxima.
 */
static void
test_gcounter_version_monotone(void **state)
{
	revokd_rng rng;

	(void)state;
	revokd_rng_seed(&rng, 0x67636e33);
	for (int i = 0; i < CASES; i++) {
		struct dense d[2], dw;
		crdt_subject a, b, ab;
		uint64_t va, vb;

		random_dense_set(&rng, d, 2);
		dense_to_subject(&d[0], &a);
		dense_to_subject(&d[1], &b);
		dense_join(&d[0], &d[1], &dw);
		va = crdt_subject_version(&a);
		vb = crdt_subject_version(&b);
		assert_int_equal(va, dense_version(&d[0]));
		ab = a;
		subject_join(&ab, &b);
		assert_true(crdt_subject_version(&ab) >= va);
		assert_true(crdt_subject_version(&ab) >= vb);
		assert_int_equal(crdt_subject_version(&ab), dense_version(&dw));
	}
}

/*
 * crdt_subject_bump adds to an existing region's count, or inserts a new
 * region in sorted position; a zero delta changes nothing (a zero count
 * would not be canonical).
 */
static void
test_subject_bump_sorted(void **state)
{
	static const struct {
		uint16_t region;
		uint64_t delta;
	} steps[] = {
		{ 500, 1 },
		{ 7, 2 },
		{ 65535, 3 },
		{ 0, 4 },
		{ 7, 10 },
		{ 300, 1 },
		{ 1000, 0 },
		{ 65535, 1 },
		{ 8, 5 },
	};
	static const uint16_t want_region[] = { 0, 7, 8, 300, 500, 65535 };
	static const uint64_t want_count[] = { 4, 12, 5, 1, 1, 4 };
	crdt_subject s;
	uint64_t v = 0;
	revokd_rng rng;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		bump(&s, steps[i].region, steps[i].delta);
		v += steps[i].delta;
		assert_int_equal(crdt_subject_version(&s), v);
	}
	assert_int_equal(s.n, 6);
	for (uint32_t i = 0; i < s.n; i++) {
		assert_int_equal(s.region[i], want_region[i]);
		assert_int_equal(s.count[i], want_count[i]);
	}

	/* Random bumps against the dense model. */
	revokd_rng_seed(&rng, 0x62756d70);
	for (int i = 0; i < CASES / 10; i++) {
		struct dense d;
		crdt_subject want;

		random_dense(&rng, &d);
		dense_to_subject(&d, &s);
		for (int j = 0; j < 10; j++) {
			size_t r = revokd_rng_below(&rng, REGION_IDS);
			uint64_t delta = revokd_rng_below(&rng, 4);

			bump(&s, region_ids[r], delta);
			d.count[r] += delta;
			dense_to_subject(&d, &want);
			assert_subject_equal(&s, &want);
		}
	}
}

/*
 * A counter holds at most 64 regions: a 65th new region is REVOKD_ELIMIT
 * and leaves the subject untouched, wherever it would sort; bumping one of
 * the 64 is still fine.
 */
static void
test_subject_bump_limit(void **state)
{
	static const uint16_t extra[] = { 1, 63, 127, 200, 65535 };
	crdt_subject s, before;

	(void)state;
	memset(&s, 0, sizeof(s));
	for (uint16_t r = 0; r < CRDT_MAX_WRITERS; r++)
		bump(&s, (uint16_t)(2 * r), 1);
	assert_int_equal(s.n, CRDT_MAX_WRITERS);
	for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
		memcpy(&before, &s, sizeof(s));
		assert_int_equal(crdt_subject_bump(&s, extra[i], 1),
		    REVOKD_ELIMIT);
		assert_memory_equal(&s, &before, sizeof(s));
	}
	bump(&s, 126, 5);
	assert_int_equal(s.count[63], 6);
	assert_int_equal(crdt_subject_version(&s), CRDT_MAX_WRITERS + 5);
}

/*
 * A merge whose union would hold 65 regions is REVOKD_ELIMIT, in either
 * direction and through crdt_entry_merge, and leaves into untouched; a
 * union of exactly 64 is fine.
 */
static void
test_subject_merge_limit(void **state)
{
	crdt_subject full, one, before, into;
	crdt_entry ef, eo, ebefore;
	bool changed;

	(void)state;
	subject_even_regions(&full, CRDT_MAX_WRITERS);
	memset(&one, 0, sizeof(one));
	bump(&one, 1, 3);

	memcpy(&before, &full, sizeof(full));
	assert_int_equal(crdt_subject_merge(&full, &one, &changed),
	    REVOKD_ELIMIT);
	assert_memory_equal(&full, &before, sizeof(full));

	memcpy(&before, &one, sizeof(one));
	assert_int_equal(crdt_subject_merge(&one, &full, &changed),
	    REVOKD_ELIMIT);
	assert_memory_equal(&one, &before, sizeof(one));

	entry_init(&ef, CRDT_KIND_TENANT);
	ef.u.subject = full;
	entry_init(&eo, CRDT_KIND_TENANT);
	eo.u.subject = one;
	memcpy(&ebefore, &ef, sizeof(ef));
	assert_int_equal(crdt_entry_merge(&ef, &eo, &changed), REVOKD_ELIMIT);
	assert_memory_equal(&ef, &ebefore, sizeof(ef));

	/* 63 + a new one = 64: fine, and the new region sorts in. */
	subject_even_regions(&into, CRDT_MAX_WRITERS - 1);
	changed = false;
	assert_int_equal(crdt_subject_merge(&into, &one, &changed), REVOKD_OK);
	assert_true(changed);
	assert_int_equal(into.n, CRDT_MAX_WRITERS);
	assert_int_equal(into.region[1], 1);
	assert_int_equal(into.count[1], 3);
	assert_int_equal(into.region[2], 2);
	assert_int_equal(crdt_subject_version(&into), CRDT_MAX_WRITERS - 1 + 3);

	/* Two full counters over the same regions: fine. */
	subject_even_regions(&into, CRDT_MAX_WRITERS);
	full.count[10] = 9;
	assert_int_equal(crdt_subject_merge(&into, &full, &changed), REVOKD_OK);
	assert_true(changed);
	assert_int_equal(into.count[10], 9);
}

/*
 * Non-canonical subjects (regions out of order or repeated, a zero count,
 * n > 64) are REVOKD_EMALFORMED for bump and for merge, on either side, and
 * nothing is changed.
 */
static void
test_subject_noncanonical(void **state)
{
	crdt_subject bad[4], good, before;
	crdt_entry eb, eg, ebefore;
	bool changed;

	(void)state;
	subject_even_regions(&good, 3);
	for (int i = 0; i < 4; i++)
		subject_even_regions(&bad[i], 3);
	bad[0].region[1] = 5; /* 0, 5, 4: unsorted */
	bad[1].region[2] = 2; /* 0, 2, 2: repeated */
	bad[2].count[1] = 0;  /* a zero count */
	bad[3].n = CRDT_MAX_WRITERS + 1;

	for (int i = 0; i < 4; i++) {
		memcpy(&before, &bad[i], sizeof(before));
		assert_int_equal(crdt_subject_bump(&bad[i], 9, 1),
		    REVOKD_EMALFORMED);
		assert_memory_equal(&bad[i], &before, sizeof(before));
		assert_int_equal(crdt_subject_merge(&bad[i], &good, &changed),
		    REVOKD_EMALFORMED);
		assert_memory_equal(&bad[i], &before, sizeof(before));

		memcpy(&before, &good, sizeof(before));
		assert_int_equal(crdt_subject_merge(&good, &bad[i], &changed),
		    REVOKD_EMALFORMED);
		assert_memory_equal(&good, &before, sizeof(before));

		entry_init(&eb, CRDT_KIND_SUB);
		eb.u.subject = bad[i];
		entry_init(&eg, CRDT_KIND_SUB);
		eg.u.subject = good;
		memcpy(&ebefore, &eg, sizeof(eg));
		assert_int_equal(crdt_entry_merge(&eg, &eb, &changed),
		    REVOKD_EMALFORMED);
		assert_memory_equal(&eg, &ebefore, sizeof(eg));
	}
}

/*
 * not_before_ms is kept to the millisecond: merging values 1 ms apart takes
 * the later exactly, in either order, with changed set only when it moved.
 */
static void
test_not_before_ms(void **state)
{
	crdt_subject a, b;
	revokd_rng rng;

	(void)state;
	revokd_rng_seed(&rng, 0x6e626d73);
	for (int i = 0; i < CASES; i++) {
		uint64_t t = NB0 + revokd_rng_below(&rng, 1ull << 40);

		memset(&a, 0, sizeof(a));
		memset(&b, 0, sizeof(b));
		a.not_before_ms = t + 1;
		b.not_before_ms = t;
		assert_false(subject_join(&a, &b));
		assert_int_equal(a.not_before_ms, t + 1);
		assert_true(subject_join(&b, &a));
		assert_int_equal(b.not_before_ms, t + 1);
		assert_int_equal(b.n, 0);
	}
	memset(&a, 0, sizeof(a));
	b = a;
	b.not_before_ms = UINT64_MAX;
	assert_true(subject_join(&a, &b));
	assert_int_equal(a.not_before_ms, UINT64_MAX);
}

/* ------------------------------------------------------------------------ */
/* Entries                                                                  */
/* ------------------------------------------------------------------------ */

/* Merging entries of different kinds is REVOKD_EKIND and changes nothing. */
static void
test_entry_merge_kind_mismatch(void **state)
{
	(void)state;
	for (int a = CRDT_KIND_JTI; a <= CRDT_KIND_TENANT; a++) {
		for (int b = CRDT_KIND_JTI; b <= CRDT_KIND_TENANT; b++) {
			crdt_entry into, from, before;
			bool changed = false;

			entry_init(&into, (crdt_kind)a);
			entry_init(&from, (crdt_kind)b);
			if (crdt_kind_is_token(into.kind))
				into.u.token.exp = NOW;
			else
				into.u.subject.not_before_ms = NB0;
			if (crdt_kind_is_token(from.kind))
				from.u.token.revoked_at = CRDT_HLC_AT(NB0);
			else
				bump(&from.u.subject, 3, 1);
			memcpy(&before, &into, sizeof(into));
			assert_int_equal(
			    crdt_entry_merge(&into, &from, &changed),
			    a == b ? REVOKD_OK : REVOKD_EKIND);
			if (a != b)
				assert_memory_equal(&into, &before,
				    sizeof(into));
			else
				assert_true(changed);
		}
	}
}

/*
 * crdt_entry_equal compares key, kind and value: changing any one of them,
 * even between the two token kinds or the three subject kinds, makes the
 * entries unequal.
 */
static void
test_entry_equal(void **state)
{
	crdt_entry a, b;

	(void)state;
	entry_init(&a, CRDT_KIND_JTI);
	a.u.token.exp = NOW;
	a.u.token.revoked_at = CRDT_HLC_AT(NB0);
	b = a;
	assert_true(crdt_entry_equal(&a, &b));
	b.key.b[0] ^= 1;
	assert_false(crdt_entry_equal(&a, &b));
	b = a;
	b.key.b[CRDT_KEY_LEN - 1] ^= 0x80;
	assert_false(crdt_entry_equal(&a, &b));
	b = a;
	b.kind = CRDT_KIND_SID;
	assert_false(crdt_entry_equal(&a, &b));
	b = a;
	b.u.token.reason = 1;
	assert_false(crdt_entry_equal(&a, &b));

	entry_init(&a, CRDT_KIND_SUB);
	bump(&a.u.subject, 9, 2);
	b = a;
	assert_true(crdt_entry_equal(&a, &b));
	b.kind = CRDT_KIND_TENANT;
	assert_false(crdt_entry_equal(&a, &b));
	b = a;
	b.key.b[7] ^= 4;
	assert_false(crdt_entry_equal(&a, &b));
	b = a;
	bump(&b.u.subject, 9, 1);
	assert_false(crdt_entry_equal(&a, &b));
	b = a;
	bump(&b.u.subject, 10, 1);
	assert_false(crdt_entry_equal(&a, &b));
}

/* ------------------------------------------------------------------------ */
/* Canonical encoding                                                       */
/* ------------------------------------------------------------------------ */

/* A random entry over the whole range of every field, any kind. */
static void
random_wide_entry(revokd_rng *rng, crdt_entry *e)
{
	memset(e, 0, sizeof(*e));
	tu_random_key(rng, 0, &e->key);
	e->kind = (crdt_kind)(1 + revokd_rng_below(rng, 5));
	if (crdt_kind_is_token(e->kind)) {
		e->u.token.exp = (int64_t)revokd_rng_next(rng);
		e->u.token.revoked_at = revokd_rng_next(rng);
		e->u.token.restored_at = revokd_rng_next(rng);
		e->u.token.origin = (uint16_t)revokd_rng_next(rng);
		e->u.token.reason = (uint8_t)revokd_rng_next(rng);
	} else {
		crdt_subject *s = &e->u.subject;
		uint32_t n =
		    (uint32_t)revokd_rng_below(rng, CRDT_MAX_WRITERS + 1);
		uint32_t region = (uint32_t)revokd_rng_below(rng, 100);

		for (uint32_t i = 0; i < n; i++) {
			s->region[i] = (uint16_t)region;
			s->count[i] = 1 + revokd_rng_below(rng, UINT64_MAX);
			region += 1 + (uint32_t)revokd_rng_below(rng, 1000);
		}
		s->n = n;
		s->not_before_ms = revokd_rng_next(rng);
	}
}

/*
 * crdt_value_encode / crdt_value_decode round-trip every random entry: a
 * token is 28 bytes, a subject 10 + 10n, the kind byte first; decoding into
 * an entry keeps its key.
 */
static void
test_value_round_trip(void **state)
{
	revokd_rng rng;

	(void)state;
	revokd_rng_seed(&rng, 0x656e636f);
	for (int i = 0; i < CASES; i++) {
		uint8_t buf[CRDT_VALUE_MAX + 1];
		crdt_entry e, back;
		size_t len;

		random_wide_entry(&rng, &e);
		memset(buf, 0xcc, sizeof(buf));
		len = crdt_value_encode(&e, buf);
		if (crdt_kind_is_token(e.kind))
			assert_int_equal(len, 28);
		else
			assert_int_equal(len, 10 + 10 * e.u.subject.n);
		assert_true(len <= CRDT_VALUE_MAX);
		assert_int_equal(buf[0], e.kind);
		assert_int_equal(buf[len], 0xcc); /* nothing written past */

		memset(&back, 0x5a, sizeof(back));
		back.key = e.key;
		assert_int_equal(crdt_value_decode(buf, len, &back), REVOKD_OK);
		assert_int_equal(back.kind, e.kind);
		assert_true(crdt_entry_equal(&back, &e));
		if (crdt_kind_is_token(e.kind))
			assert_token_equal(&back.u.token, &e.u.token);
		else
			assert_subject_equal(&back.u.subject, &e.u.subject);
	}
}

/* The byte layout, pinned: little-endian integers in the documented order. */
static void
test_value_golden(void **state)
{
	static const uint8_t token_bytes[28] = {
		0x01, 0x07, 0x34, 0x12,                         /* kind ... */
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* exp */
		0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11, /* revoked */
		0x28, 0x27, 0x26, 0x25, 0x24, 0x23, 0x22, 0x21, /* restored */
	};
	static const uint8_t subject_bytes[30] = {
		0x04, 0x02,                                     /* kind, n */
		0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01, /* nb */
		0x05, 0x00,                                     /* region */
		0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* count */
		0x34, 0x12,                                     /* region */
		0xa8, 0xa7, 0xa6, 0xa5, 0xa4, 0xa3, 0xa2, 0xa1, /* count */
	};
	uint8_t buf[CRDT_VALUE_MAX];
	crdt_entry e, back;

	(void)state;
	entry_init(&e, CRDT_KIND_JTI);
	e.u.token.reason = 0x07;
	e.u.token.origin = 0x1234;
	e.u.token.exp = 0x0102030405060708;
	e.u.token.revoked_at = 0x1112131415161718;
	e.u.token.restored_at = 0x2122232425262728;
	assert_int_equal(crdt_value_encode(&e, buf), sizeof(token_bytes));
	assert_memory_equal(buf, token_bytes, sizeof(token_bytes));

	entry_init(&e, CRDT_KIND_CLIENT);
	e.u.subject.not_before_ms = 0x0102030405060708;
	bump(&e.u.subject, 0x1234, 0xa1a2a3a4a5a6a7a8);
	bump(&e.u.subject, 5, 0x10);
	assert_int_equal(crdt_value_encode(&e, buf), sizeof(subject_bytes));
	assert_memory_equal(buf, subject_bytes, sizeof(subject_bytes));

	/* A negative exp survives the unsigned wire form. */
	entry_init(&e, CRDT_KIND_SID);
	e.u.token.exp = -2;
	assert_int_equal(crdt_value_encode(&e, buf), 28);
	assert_int_equal(buf[4], 0xfe);
	assert_int_equal(buf[11], 0xff);
	entry_init(&back, CRDT_KIND_JTI);
	assert_int_equal(crdt_value_decode(buf, 28, &back), REVOKD_OK);
	assert_int_equal(back.kind, CRDT_KIND_SID);
	assert_int_equal(back.u.token.exp, -2);
}

/* Decode buf[0..len) into a scratch entry; the error it gives. */
static revokd_err
decode(const uint8_t *buf, size_t len)
{
	crdt_entry e;

	memset(&e, 0, sizeof(e));
	return crdt_value_decode(buf, len, &e);
}

/* A canonical subject encoding of kind with n regions 0, 2, 4, ... */
static size_t
subject_bytes(crdt_kind kind, uint32_t n, uint8_t buf[CRDT_VALUE_MAX])
{
	crdt_entry e;

	entry_init(&e, kind);
	subject_even_regions(&e.u.subject, n);
	e.u.subject.not_before_ms = NB0;
	return crdt_value_encode(&e, buf);
}

/*
 * crdt_value_decode refuses, with REVOKD_ECORRUPT, everything that is not a
 * canonical encoding: an empty buffer, an unknown kind byte, a token of the
 * wrong length, a subject whose length does not match n, n > 64, regions
 * not strictly increasing, a zero count.
 */
static void
test_value_decode_refuses(void **state)
{
	static const uint8_t bad_kinds[] = { 0, 6, 7, 255 };
	uint8_t buf[CRDT_VALUE_MAX + 64];
	crdt_entry e;
	size_t len;

	(void)state;
	memset(buf, 0, sizeof(buf));
	assert_int_equal(decode(buf, 0), REVOKD_ECORRUPT);

	for (size_t i = 0; i < sizeof(bad_kinds); i++) {
		memset(buf, 0, sizeof(buf));
		buf[0] = bad_kinds[i];
		assert_int_equal(decode(buf, 1), REVOKD_ECORRUPT);
		assert_int_equal(decode(buf, 10), REVOKD_ECORRUPT);
		assert_int_equal(decode(buf, 28), REVOKD_ECORRUPT);
	}

	for (int kind = CRDT_KIND_JTI; kind <= CRDT_KIND_SID; kind++) {
		entry_init(&e, (crdt_kind)kind);
		e.u.token.exp = NOW;
		memset(buf, 0, sizeof(buf));
		assert_int_equal(crdt_value_encode(&e, buf), 28);
		assert_int_equal(decode(buf, 28), REVOKD_OK);
		assert_int_equal(decode(buf, 1), REVOKD_ECORRUPT);
		assert_int_equal(decode(buf, 10), REVOKD_ECORRUPT);
		assert_int_equal(decode(buf, 27), REVOKD_ECORRUPT);
		assert_int_equal(decode(buf, 29), REVOKD_ECORRUPT);
		assert_int_equal(decode(buf, 30), REVOKD_ECORRUPT);
	}

	for (int kind = CRDT_KIND_SUB; kind <= CRDT_KIND_TENANT; kind++) {
		/* The empty counter: exactly 10 bytes. */
		len = subject_bytes((crdt_kind)kind, 0, buf);
		assert_int_equal(len, 10);
		assert_int_equal(decode(buf, 10), REVOKD_OK);
		assert_int_equal(decode(buf, 1), REVOKD_ECORRUPT);
		assert_int_equal(decode(buf, 9), REVOKD_ECORRUPT);
		assert_int_equal(decode(buf, 11), REVOKD_ECORRUPT);
		assert_int_equal(decode(buf, 20), REVOKD_ECORRUPT);

		/* n = 2: 30 bytes and no other length. */
		len = subject_bytes((crdt_kind)kind, 2, buf);
		assert_int_equal(len, 30);
		assert_int_equal(decode(buf, 30), REVOKD_OK);
		assert_int_equal(decode(buf, 9), REVOKD_ECORRUPT);
		assert_int_equal(decode(buf, 20), REVOKD_ECORRUPT);
		assert_int_equal(decode(buf, 29), REVOKD_ECORRUPT);
		assert_int_equal(decode(buf, 31), REVOKD_ECORRUPT);
		assert_int_equal(decode(buf, 40), REVOKD_ECORRUPT);

		/* Regions equal, then decreasing. */
		buf[20] = 0; /* second region 2 -> 0 */
		assert_int_equal(decode(buf, 30), REVOKD_ECORRUPT);
		buf[10] = 3; /* first region 0 -> 3, second 0 */
		assert_int_equal(decode(buf, 30), REVOKD_ECORRUPT);
		buf[20] = 4;
		assert_int_equal(decode(buf, 30), REVOKD_OK);

		/* A zero count, first or last. */
		len = subject_bytes((crdt_kind)kind, 2, buf);
		buf[12] = 0;
		assert_int_equal(decode(buf, len), REVOKD_ECORRUPT);
		len = subject_bytes((crdt_kind)kind, 2, buf);
		buf[22] = 0;
		assert_int_equal(decode(buf, len), REVOKD_ECORRUPT);

		/* n = 64 is the most; 65 is refused at its own length. */
		len = subject_bytes((crdt_kind)kind, CRDT_MAX_WRITERS, buf);
		assert_int_equal(len, CRDT_VALUE_MAX);
		assert_int_equal(decode(buf, len), REVOKD_OK);
		buf[1] = CRDT_MAX_WRITERS + 1;
		memset(buf + len, 0, 10);
		buf[len] = 200; /* region 200 > 126, count 1 */
		buf[len + 2] = 1;
		assert_int_equal(decode(buf, len + 10), REVOKD_ECORRUPT);
		buf[1] = 255;
		assert_int_equal(decode(buf, len + 10), REVOKD_ECORRUPT);
	}
}

/* Copy src's key, kind and value field by field into dst, nothing else. */
static void
copy_value(crdt_entry *dst, const crdt_entry *src)
{
	const crdt_token *t = &src->u.token;
	const crdt_subject *s = &src->u.subject;

	dst->key = src->key;
	dst->kind = src->kind;
	if (crdt_kind_is_token(src->kind)) {
		dst->u.token.exp = t->exp;
		dst->u.token.revoked_at = t->revoked_at;
		dst->u.token.restored_at = t->restored_at;
		dst->u.token.origin = t->origin;
		dst->u.token.reason = t->reason;
		return;
	}
	dst->u.subject.not_before_ms = s->not_before_ms;
	dst->u.subject.n = s->n;
	memcpy(dst->u.subject.region, s->region, s->n * sizeof(s->region[0]));
	memcpy(dst->u.subject.count, s->count, s->n * sizeof(s->count[0]));
}

/* The encodings of a and b are the same bytes. */
static void
assert_same_encoding(const crdt_entry *a, const crdt_entry *b)
{
	uint8_t ea[CRDT_VALUE_MAX], eb[CRDT_VALUE_MAX];
	size_t la = crdt_value_encode(a, ea), lb = crdt_value_encode(b, eb);

	assert_int_equal(la, lb);
	assert_memory_equal(ea, eb, la);
}

/*
 * Equal entries encode equally, whatever lies outside the value (bytes of
 * the counter past n, struct padding) and whatever order merges came in.
 */
static void
test_value_equal_entries_encode_equally(void **state)
{
	revokd_rng rng;

	(void)state;
	revokd_rng_seed(&rng, 0x65717565);
	for (int i = 0; i < CASES / 4; i++) {
		crdt_entry e[3], a, b, x, y;

		random_entry_set(&rng, e, 3);

		memset(&a, 0x00, sizeof(a));
		memset(&b, 0xff, sizeof(b));
		copy_value(&a, &e[0]);
		copy_value(&b, &e[0]);
		assert_same_encoding(&a, &b);
		assert_true(crdt_entry_equal(&a, &b));
		assert_true(crdt_entry_equal(&a, &e[0]));

		/* (e0 ⊔ e1) ⊔ e2 and e2 ⊔ (e1 ⊔ e0). */
		x = e[0];
		entry_join(&x, &e[1]);
		entry_join(&x, &e[2]);
		y = e[1];
		entry_join(&y, &e[0]);
		a = e[2];
		entry_join(&a, &y);
		assert_same_encoding(&x, &a);
	}
}

/* ------------------------------------------------------------------------ */
/* Summaries and buckets                                                    */
/* ------------------------------------------------------------------------ */

typedef unsigned __int128 u128;

static u128
summary_fp(const crdt_summary *s)
{
	return (u128)s->fp_hi << 64 | s->fp_lo;
}

/* A random 64-bit value, often near 0 or UINT64_MAX (where carries are). */
static uint64_t
random_edge64(revokd_rng *rng)
{
	switch (revokd_rng_below(rng, 4)) {
	case 0:
		return UINT64_MAX - revokd_rng_below(rng, 4);
	case 1:
		return revokd_rng_below(rng, 4);
	default:
		return revokd_rng_next(rng);
	}
}

static void
random_summary(revokd_rng *rng, crdt_summary *s)
{
	s->count = random_edge64(rng);
	s->fp_lo = random_edge64(rng);
	s->fp_hi = random_edge64(rng);
}

/*
 * crdt_summary_add and _sub are 128-bit addition and subtraction of the
 * fingerprints modulo 2^128 (and 64-bit of the counts): fixed carry and
 * borrow cases, then random values against unsigned __int128. Sub undoes
 * add, and add is commutative and associative.
 */
static void
test_summary_add_sub(void **state)
{
	crdt_summary a = { 1, UINT64_MAX, 5 }, b = { 1, 1, 0 }, z = { 0, 0, 0 };
	revokd_rng rng;

	(void)state;
	crdt_summary_add(&a, &b); /* carry out of fp_lo */
	assert_int_equal(a.count, 2);
	assert_int_equal(a.fp_lo, 0);
	assert_int_equal(a.fp_hi, 6);
	crdt_summary_sub(&a, &b); /* borrow back */
	assert_int_equal(a.count, 1);
	assert_int_equal(a.fp_lo, UINT64_MAX);
	assert_int_equal(a.fp_hi, 5);
	crdt_summary_sub(&z, &b); /* 0 - 1 wraps the whole 128 bits */
	assert_int_equal(z.fp_lo, UINT64_MAX);
	assert_int_equal(z.fp_hi, UINT64_MAX);
	assert_int_equal(z.count, UINT64_MAX);
	crdt_summary_add(&z, &b);
	assert_int_equal(z.fp_lo, 0);
	assert_int_equal(z.fp_hi, 0);
	assert_int_equal(z.count, 0);

	revokd_rng_seed(&rng, 0x73756d6d);
	for (int i = 0; i < CASES; i++) {
		crdt_summary x, y, w, xy, yx, xy_w, yw, x_yw;
		u128 want;

		random_summary(&rng, &x);
		random_summary(&rng, &y);
		random_summary(&rng, &w);

		xy = x;
		crdt_summary_add(&xy, &y);
		want = summary_fp(&x) + summary_fp(&y);
		assert_true(summary_fp(&xy) == want);
		assert_int_equal(xy.count, x.count + y.count);
		yx = y;
		crdt_summary_add(&yx, &x);
		assert_true(crdt_summary_equal(&xy, &yx));

		xy_w = xy;
		crdt_summary_add(&xy_w, &w);
		yw = y;
		crdt_summary_add(&yw, &w);
		x_yw = x;
		crdt_summary_add(&x_yw, &yw);
		assert_true(crdt_summary_equal(&xy_w, &x_yw));

		crdt_summary_sub(&xy, &y);
		assert_true(crdt_summary_equal(&xy, &x));
		assert_int_equal(xy.fp_lo, x.fp_lo);
		assert_int_equal(xy.fp_hi, x.fp_hi);

		yw = y;
		crdt_summary_sub(&yw, &w);
		assert_true(summary_fp(&yw) == summary_fp(&y) - summary_fp(&w));
		crdt_summary_add(&yw, &w);
		assert_true(crdt_summary_equal(&yw, &y));
	}
}

/* crdt_summary_equal looks at all three fields. */
static void
test_summary_equal(void **state)
{
	const crdt_summary a = { 3, 4, 5 };
	crdt_summary b = a;

	(void)state;
	assert_true(crdt_summary_equal(&a, &b));
	b.count++;
	assert_false(crdt_summary_equal(&a, &b));
	b = a;
	b.fp_lo++;
	assert_false(crdt_summary_equal(&a, &b));
	b = a;
	b.fp_hi++;
	assert_false(crdt_summary_equal(&a, &b));
}

/*
 * An entry's summary is count 1 and the first 128 bits of SHA-256(key ||
 * encoded value), read little-endian (fp_lo from bytes 0..7); so equal
 * entries have equal summaries, and a change of value or key changes it.
 */
static void
test_entry_summary(void **state)
{
	revokd_rng rng;

	(void)state;
	revokd_rng_seed(&rng, 0x66707273);
	for (int i = 0; i < CASES / 4; i++) {
		uint8_t buf[CRDT_KEY_LEN + CRDT_VALUE_MAX], md[32];
		crdt_entry e, copy, other;
		crdt_summary s, s2;
		uint64_t lo = 0, hi = 0;
		size_t len;
		revokd_err err;
		int ok;

		random_wide_entry(&rng, &e);
		memcpy(buf, e.key.b, CRDT_KEY_LEN);
		len = crdt_value_encode(&e, buf + CRDT_KEY_LEN);
		ok = EVP_Digest(buf, CRDT_KEY_LEN + len, md, NULL, EVP_sha256(),
		    NULL);
		assert_int_equal(ok, 1);
		for (int j = 7; j >= 0; j--) {
			lo = lo << 8 | md[j];
			hi = hi << 8 | md[8 + j];
		}
		memset(&s, 0xee, sizeof(s));
		crdt_entry_summary(&e, &s);
		assert_int_equal(s.count, 1);
		assert_int_equal(s.fp_lo, lo);
		assert_int_equal(s.fp_hi, hi);

		memset(&copy, 0xff, sizeof(copy));
		err = crdt_value_decode(buf + CRDT_KEY_LEN, len, &copy);
		assert_int_equal(err, REVOKD_OK);
		copy.key = e.key;
		crdt_entry_summary(&copy, &s2);
		assert_true(crdt_summary_equal(&s, &s2));

		other = e;
		if (crdt_kind_is_token(e.kind))
			other.u.token.restored_at ^= 1;
		else
			other.u.subject.not_before_ms ^= 1;
		crdt_entry_summary(&other, &s2);
		assert_int_equal(s2.count, 1);
		assert_false(crdt_summary_equal(&s, &s2));

		other = e;
		other.key.b[CRDT_KEY_LEN - 1] ^= 1;
		crdt_entry_summary(&other, &s2);
		assert_false(crdt_summary_equal(&s, &s2));
	}
}

/* Decrement a key as a 128-bit big-endian number (the key just before). */
static void
key_pred(crdt_key *k)
{
	for (int i = CRDT_KEY_LEN - 1; i >= 0; i--)
		if (k->b[i]-- != 0)
			break;
}

/*
 * crdt_key_bucket is the first CRDT_BUCKET_BITS bits of the key, and
 * crdt_bucket_first_key(b) is the smallest key of bucket b: it lies in b,
 * the key just before it lies in b - 1, and bucket(first_key(b + 1)) is
 * b + 1. Every random key lies between its bucket's first key and the next.
 */
static void
test_buckets(void **state)
{
	crdt_key k, next;
	revokd_rng rng;

	(void)state;
	for (uint32_t b = 0; b < CRDT_BUCKETS; b++) {
		crdt_bucket_first_key(b, &k);
		assert_int_equal(crdt_key_bucket(&k), b);
		for (int i = 2; i < CRDT_KEY_LEN; i++)
			assert_int_equal(k.b[i], 0);
		if (b + 1 < CRDT_BUCKETS) {
			crdt_bucket_first_key(b + 1, &next);
			assert_int_equal(crdt_key_bucket(&next), b + 1);
			assert_true(crdt_key_cmp(&k, &next) < 0);
		}
		if (b > 0) {
			key_pred(&k);
			assert_int_equal(crdt_key_bucket(&k), b - 1);
		}
	}
	crdt_bucket_first_key(0, &k);
	memset(next.b, 0, CRDT_KEY_LEN);
	assert_int_equal(crdt_key_cmp(&k, &next), 0);
	memset(k.b, 0xff, CRDT_KEY_LEN);
	assert_int_equal(crdt_key_bucket(&k), CRDT_BUCKETS - 1);

	revokd_rng_seed(&rng, 0x62756b74);
	for (int i = 0; i < CASES; i++) {
		crdt_key first;
		uint32_t b;

		tu_random_key(&rng, 0, &k);
		b = crdt_key_bucket(&k);
		assert_int_equal(b, ((uint32_t)k.b[0] << 8 | k.b[1]) >>
		                        (16 - CRDT_BUCKET_BITS));
		crdt_bucket_first_key(b, &first);
		assert_true(crdt_key_cmp(&first, &k) <= 0);
		if (b + 1 < CRDT_BUCKETS) {
			crdt_bucket_first_key(b + 1, &next);
			assert_true(crdt_key_cmp(&k, &next) < 0);
		}
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_token_join_laws),
		cmocka_unit_test(test_subject_join_laws),
		cmocka_unit_test(test_entry_join_laws),
		cmocka_unit_test(test_token_revoke_wins_tie),
		cmocka_unit_test(test_token_concurrent_revoke_restore),
		cmocka_unit_test(test_token_revocation_metadata),
		cmocka_unit_test(test_gcounter_concurrent_bumps),
		cmocka_unit_test(test_gcounter_same_region_max),
		cmocka_unit_test(test_gcounter_version_monotone),
		cmocka_unit_test(test_gcounter_version_saturates),
		cmocka_unit_test(test_subject_bump_sorted),
		cmocka_unit_test(test_subject_bump_limit),
		cmocka_unit_test(test_subject_merge_limit),
		cmocka_unit_test(test_subject_noncanonical),
		cmocka_unit_test(test_not_before_ms),
		cmocka_unit_test(test_entry_merge_kind_mismatch),
		cmocka_unit_test(test_entry_equal),
		cmocka_unit_test(test_value_round_trip),
		cmocka_unit_test(test_value_golden),
		cmocka_unit_test(test_value_decode_refuses),
		cmocka_unit_test(test_value_equal_entries_encode_equally),
		cmocka_unit_test(test_summary_add_sub),
		cmocka_unit_test(test_summary_equal),
		cmocka_unit_test(test_entry_summary),
		cmocka_unit_test(test_buckets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
