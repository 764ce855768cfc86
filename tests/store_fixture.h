/*
 * store_fixture.h: the fixture and helpers of the store tests
 * (test_crdt_store.c, test_crdt_fingerprint.c): a fresh data dir per test,
 * entries, assertions on summaries, and pipes to forked children.
 */
#ifndef REVOKD_STORE_FIXTURE_H
#define REVOKD_STORE_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/revokd.h"
#include "crdt/crdt_int.h"

/* The tests' clock: every apply and check happens around this time. */
#define NOW INT64_C(1700000000)

/* The default prune_leeway of crdt_store_options (crdt.h). */
#define LEEWAY INT64_C(300)

/* An HLC timestamp ms milliseconds after NOW. */
#define AT(ms) CRDT_HLC_AT((uint64_t)NOW * 1000 + (ms))

/* Milliseconds of a unix time in seconds. */
#define MS(sec) ((uint64_t)(sec)*1000)

/* Store options of the tests: no fsync, for speed. */
extern const crdt_store_options fast_opts;

/* Allocations a test may leave for the teardown to free. */
#define FX_MEM 12

/* The fixture: a data dir with an open store and reader, and a keyer. */
struct fx {
	char *dir, *dir2;
	crdt_store *s, *s2;
	crdt_reader *r, *r2;
	crdt_keyer *keyer;
	crdt_summary *buckets; /* CRDT_BUCKETS, for recompute */
	void *mem[FX_MEM];     /* freed at teardown */
	pid_t child;           /* killed at teardown if still there */
	int to_child, from_child;
};

/* cmocka setup: a fresh dir, store, reader and keyer in *state. */
int setup(void **state);

/* cmocka teardown: stop any child, close and remove everything. */
int teardown(void **state);

/* Zeroed memory that the teardown frees, also when the test fails. */
void *fx_alloc(struct fx *f, size_t size);

/* Open the store in dir, asserting success. */
crdt_store *open_store(const char *dir, const crdt_store_options *opt);

/* Close *s (freeing *r first), remove *dir, open a new empty store there. */
void store_reset(char **dir, crdt_store **s, crdt_reader **r);

/* Close the fixture's store and open it again (same dir). */
void store_reopen(struct fx *f);

/* The key of (kind, id) under the fixture's secret. */
crdt_key key_of(struct fx *f, crdt_kind kind, const char *id);

/* A token entry. */
crdt_entry token(const crdt_key *key, crdt_kind kind, int64_t expiry,
    crdt_hlc revoked_at, crdt_hlc restored_at);

/* A subject entry with count at region (none when count is 0). */
crdt_entry subject(const crdt_key *key, crdt_kind kind, uint64_t not_before_ms,
    uint16_t region, uint64_t count);

/* crdt_store_apply, asserting success; its stats. */
crdt_apply_stats apply_ok(crdt_store *s, const crdt_entry *in, size_t n,
    int64_t now, crdt_entry *changed);

/* Assert each field of apply stats. */
void assert_stats(const crdt_apply_stats *st, size_t changed, size_t added,
    size_t expired, size_t same);

/* Apply in[0..n) at now in batches of random sizes in [1, max_batch]. */
void apply_in_batches(crdt_store *s, revokd_rng *rng, const crdt_entry *in,
    size_t n, size_t max_batch, int64_t now);

/* End and begin r: a fresh snapshot. */
void renew(crdt_reader *r);

/* Assert the snapshot holds exactly want. */
void expect_entry(crdt_reader *r, const crdt_entry *want);

/* Assert the snapshot holds nothing under key. */
void expect_absent(crdt_reader *r, const crdt_key *key);

/* Assert two summaries are equal, field by field. */
void assert_summary_eq(const crdt_summary *a, const crdt_summary *b);

/* Recompute s from its entries; compare with every incremental bucket. */
void assert_buckets_match(struct fx *f, crdt_store *s, crdt_reader *r);

/* Entries are sorted by key alone (crdt_entry starts with its key). */
int entry_cmp_void(const void *a, const void *b);

/* First index of keys[0..n) (sorted) not below k. */
size_t lower_bound(const crdt_key *keys, size_t n, const crdt_key *k);

/* A random key whose bucket is b. */
void key_in_bucket(revokd_rng *rng, uint32_t b, crdt_key *out);

/* A collection of entries filled by crdt_reader_scan. */
struct entries {
	crdt_entry *v;
	size_t n, cap;
	bool overflow;
};

/* crdt_entry_fn adding e to the struct entries at arg. */
bool entries_add(void *arg, const crdt_entry *e);

/* Every entry of r's snapshot into es (sorted by key, as scanned). */
void scan_all(crdt_reader *r, struct entries *es);

/* The entry of es under key (es sorted by key), or NULL. */
const crdt_entry *entries_find(const struct entries *es, const crdt_key *key);

/* crdt_entry_fn adding e's summary to the crdt_summary at arg. */
bool sum_add(void *arg, const crdt_entry *e);

/* The summary of [lo, hi) by scanning and summing crdt_entry_summary. */
void scan_summary(crdt_reader *r, const crdt_key *lo, const crdt_key *hi,
    crdt_summary *out);

/*
 * True when e is a lattice's bottom (a subject with no counts and no
 * not-before): merging it into nothing changes nothing, so it is never
 * stored. Tokens always carry an exp, so they are never bottom here.
 */
bool is_bottom(const crdt_entry *e);

/* A random entry as tu_random_entry, but never a bottom. */
void random_entry(revokd_rng *rng, uint32_t pool, int64_t now, crdt_entry *e);

/* Run prune steps until *more is false; the total pruned. */
size_t prune_sweep(crdt_store *s, int64_t now, size_t max);

#endif /* REVOKD_STORE_FIXTURE_H */
