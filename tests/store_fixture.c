/*
 * store_fixture.c: the fixture and helpers of the store tests.
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
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store_fixture.h"
#include "testutil.h"

const crdt_store_options fast_opts = { .no_sync = true };
int
setup(void **state)
{
	uint8_t secret[CRDT_SECRET_LEN];
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	*state = f;
	f->to_child = f->from_child = -1;
	for (size_t i = 0; i < sizeof(secret); i++)
		secret[i] = (uint8_t)(0xa5 ^ (i * 7));
	f->dir = tu_tmpdir();
	f->buckets = calloc(CRDT_BUCKETS, sizeof(*f->buckets));
	if (f->buckets == NULL ||
	    crdt_keyer_new(secret, sizeof(secret), &f->keyer) != REVOKD_OK ||
	    crdt_store_open(f->dir, &fast_opts, &f->s) != REVOKD_OK ||
	    crdt_reader_new(f->s, &f->r) != REVOKD_OK)
		return -1;
	return 0;
}

int
teardown(void **state)
{
	struct fx *f = *state;

	if (f == NULL)
		return 0;
	if (f->child > 0) {
		kill(f->child, SIGKILL);
		waitpid(f->child, NULL, 0);
	}
	if (f->to_child >= 0)
		close(f->to_child);
	if (f->from_child >= 0)
		close(f->from_child);
	crdt_reader_free(f->r);
	crdt_reader_free(f->r2);
	crdt_store_close(f->s);
	crdt_store_close(f->s2);
	crdt_keyer_free(f->keyer);
	tu_rmdir(f->dir);
	tu_rmdir(f->dir2);
	for (int i = 0; i < FX_MEM; i++)
		free(f->mem[i]);
	free(f->buckets);
	free(f);
	return 0;
}

/* Zeroed memory that the teardown frees, also when the test fails. */
void *
fx_alloc(struct fx *f, size_t size)
{
	for (int i = 0; i < FX_MEM; i++) {
		if (f->mem[i] == NULL) {
			f->mem[i] = calloc(1, size);
			assert_non_null(f->mem[i]);
			return f->mem[i];
		}
	}
	fail_msg("fx_alloc: no free slot");
	return NULL;
}

crdt_store *
open_store(const char *dir, const crdt_store_options *opt)
{
	crdt_store *s = NULL;

	assert_int_equal(crdt_store_open(dir, opt, &s), REVOKD_OK);
	assert_non_null(s);
	return s;
}

/* Close *s (freeing *r first), remove *dir, open a new empty store there. */
void
store_reset(char **dir, crdt_store **s, crdt_reader **r)
{
	crdt_reader_free(*r);
	*r = NULL;
	crdt_store_close(*s);
	*s = NULL;
	tu_rmdir(*dir);
	*dir = tu_tmpdir();
	*s = open_store(*dir, &fast_opts);
	assert_int_equal(crdt_reader_new(*s, r), REVOKD_OK);
}

/* Close the fixture's store and open it again (same dir). */
void
store_reopen(struct fx *f)
{
	crdt_reader_free(f->r);
	f->r = NULL;
	crdt_store_close(f->s);
	f->s = NULL;
	f->s = open_store(f->dir, &fast_opts);
	assert_int_equal(crdt_reader_new(f->s, &f->r), REVOKD_OK);
}

/* ------------------------------------------------------------------------ */
crdt_key
key_of(struct fx *f, crdt_kind kind, const char *id)
{
	crdt_key k;

	assert_int_equal(crdt_key_derive(f->keyer, kind, id, strlen(id), &k),
	    REVOKD_OK);
	return k;
}

crdt_entry
token(const crdt_key *key, crdt_kind kind, int64_t expiry, crdt_hlc revoked_at,
    crdt_hlc restored_at)
{
	crdt_entry e;

	memset(&e, 0, sizeof(e));
	e.key = *key;
	e.kind = kind;
	e.u.token.exp = expiry;
	e.u.token.revoked_at = revoked_at;
	e.u.token.restored_at = restored_at;
	return e;
}

/* A subject entry with count at region (none when count is 0). */
crdt_entry
subject(const crdt_key *key, crdt_kind kind, uint64_t not_before_ms,
    uint16_t region, uint64_t count)
{
	crdt_entry e;

	memset(&e, 0, sizeof(e));
	e.key = *key;
	e.kind = kind;
	e.u.subject.not_before_ms = not_before_ms;
	assert_int_equal(crdt_subject_bump(&e.u.subject, region, count),
	    REVOKD_OK);
	return e;
}

crdt_apply_stats
apply_ok(crdt_store *s, const crdt_entry *in, size_t n, int64_t now,
    crdt_entry *changed)
{
	crdt_apply_stats st;

	memset(&st, 0xa5, sizeof(st));
	assert_int_equal(crdt_store_apply(s, in, n, now, changed, &st),
	    REVOKD_OK);
	return st;
}

void
assert_stats(const crdt_apply_stats *st, size_t changed, size_t added,
    size_t expired, size_t same)
{
	assert_int_equal(st->changed, changed);
	assert_int_equal(st->added, added);
	assert_int_equal(st->expired, expired);
	assert_int_equal(st->same, same);
}

/* Apply in[0..n) at now in batches of random sizes in [1, max_batch]. */
void
apply_in_batches(crdt_store *s, revokd_rng *rng, const crdt_entry *in, size_t n,
    size_t max_batch, int64_t now)
{
	for (size_t i = 0; i < n;) {
		size_t len = 1 + (size_t)revokd_rng_below(rng, max_batch);

		if (len > n - i)
			len = n - i;
		apply_ok(s, in + i, len, now, NULL);
		i += len;
	}
}

void
renew(crdt_reader *r)
{
	crdt_reader_end(r);
	assert_int_equal(crdt_reader_begin(r), REVOKD_OK);
}

void
expect_entry(crdt_reader *r, const crdt_entry *want)
{
	crdt_entry got;

	assert_int_equal(crdt_reader_get(r, &want->key, &got), REVOKD_OK);
	assert_true(crdt_entry_equal(&got, want));
}

void
expect_absent(crdt_reader *r, const crdt_key *key)
{
	crdt_entry got;

	assert_int_equal(crdt_reader_get(r, key, &got), REVOKD_ENOTFOUND);
}

void
assert_summary_eq(const crdt_summary *a, const crdt_summary *b)
{
	assert_int_equal(a->count, b->count);
	assert_int_equal(a->fp_lo, b->fp_lo);
	assert_int_equal(a->fp_hi, b->fp_hi);
}

/* Recompute s from its entries; compare with every incremental bucket. */
void
assert_buckets_match(struct fx *f, crdt_store *s, crdt_reader *r)
{
	crdt_summary total, one, all;

	renew(r);
	assert_int_equal(crdt_reader_recompute(r, &total, f->buckets),
	    REVOKD_OK);
	for (uint32_t b = 0; b < CRDT_BUCKETS; b++) {
		crdt_store_buckets_sum(s, b, b + 1, &one);
		if (!crdt_summary_equal(&one, &f->buckets[b]))
			fail_msg("bucket %u: incremental count %llu, "
			         "recomputed %llu (or fingerprints differ)",
			    b, (unsigned long long)one.count,
			    (unsigned long long)f->buckets[b].count);
	}
	crdt_store_buckets_sum(s, 0, CRDT_BUCKETS, &all);
	assert_summary_eq(&total, &all);
	assert_int_equal(total.count, crdt_store_count(s));
}

/* Entries are sorted by key alone (crdt_entry starts with its key). */
int
entry_cmp_void(const void *a, const void *b)
{
	const crdt_entry *x = a, *y = b;

	return crdt_key_cmp(&x->key, &y->key);
}

/* First index of keys[0..n) (sorted) not below k. */
size_t
lower_bound(const crdt_key *keys, size_t n, const crdt_key *k)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (crdt_key_cmp(&keys[mid], k) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* A random key whose bucket is b. */
void
key_in_bucket(revokd_rng *rng, uint32_t b, crdt_key *out)
{
	uint32_t low_mask = (1u << (16 - CRDT_BUCKET_BITS)) - 1;
	uint32_t prefix = b << (16 - CRDT_BUCKET_BITS);

	revokd_rng_bytes(rng, out->b, CRDT_KEY_LEN);
	prefix |= (uint32_t)revokd_rng_next(rng) & low_mask;
	out->b[0] = (uint8_t)(prefix >> 8);
	out->b[1] = (uint8_t)prefix;
}

bool
entries_add(void *arg, const crdt_entry *e)
{
	struct entries *es = arg;

	if (es->n == es->cap) {
		es->overflow = true;
		return false;
	}
	es->v[es->n++] = *e;
	return true;
}

/* Every entry of r's snapshot into es (sorted by key, as scanned). */
void
scan_all(crdt_reader *r, struct entries *es)
{
	es->n = 0;
	es->overflow = false;
	assert_int_equal(crdt_reader_scan(r, NULL, NULL, entries_add, es),
	    REVOKD_OK);
	assert_false(es->overflow);
}

const crdt_entry *
entries_find(const struct entries *es, const crdt_key *key)
{
	crdt_entry probe;

	probe.key = *key;
	return bsearch(&probe, es->v, es->n, sizeof(*es->v), entry_cmp_void);
}

bool
sum_add(void *arg, const crdt_entry *e)
{
	crdt_summary one;

	crdt_entry_summary(e, &one);
	crdt_summary_add(arg, &one);
	return true;
}

/* The summary of [lo, hi) by scanning and summing crdt_entry_summary. */
void
scan_summary(crdt_reader *r, const crdt_key *lo, const crdt_key *hi,
    crdt_summary *out)
{
	memset(out, 0, sizeof(*out));
	assert_int_equal(crdt_reader_scan(r, lo, hi, sum_add, out), REVOKD_OK);
}

/*
 * True when e is a lattice's bottom (a subject with no counts and no
 * not-before): merging it into nothing changes nothing, so it is never
 * stored. Tokens always carry an exp, so they are never bottom here.
 */
bool
is_bottom(const crdt_entry *e)
{
	return !crdt_kind_is_token(e->kind) && e->u.subject.n == 0 &&
	       e->u.subject.not_before_ms == 0;
}

/* A random entry as tu_random_entry, but never a bottom. */
void
random_entry(revokd_rng *rng, uint32_t pool, int64_t now, crdt_entry *e)
{
	tu_random_entry(rng, pool, now, e);
	if (is_bottom(e))
		e->u.subject.not_before_ms = MS(now);
}

/* Run prune steps until *more is false; the total pruned. */
size_t
prune_sweep(crdt_store *s, int64_t now, size_t max)
{
	size_t total = 0, pruned, steps = 0;
	bool more = true;

	while (more) {
		assert_true(++steps < 1000000);
		assert_int_equal(crdt_store_prune(s, now, max, &pruned, &more),
		    REVOKD_OK);
		total += pruned;
	}
	return total;
}
