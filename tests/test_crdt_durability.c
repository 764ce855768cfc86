/*
 * test_crdt_durability.c: the store across kill -9. Every batch whose apply
 * returned OK is there after reopen, no batch is there in part, the bucket
 * summaries match the entries, and the reader slot of a killed reader is
 * given back at open. The stores here sync at commit (no no_sync).
 *
 * Children open the store themselves after fork (an LMDB env must not cross
 * a fork) and talk to the parent over pipes; they never call cmocka.
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "crdt/crdt_int.h"
#include "testutil.h"

/* The tests' clock. Batches never expire at it. */
#define NOW INT64_C(1700000000)

/* The default prune_leeway of crdt_store_options (crdt.h). */
#define LEEWAY INT64_C(300)

/* Entries per batch, and the pool of keys they are drawn from. */
#define BATCH 64
#define POOL 3000

/* Kill/reopen cycles, and per cycle the most batches and time to wait. */
#define CYCLES 5
#define CYCLE_MAX_BATCHES 45
#define CYCLE_MAX_MS 2000

/* Slots of the in-memory reference state: a power of two above POOL. */
#define REF_SLOTS 8192

/* ------------------------------------------------------------------------ */
/* Fixture and helpers                                                      */
/* ------------------------------------------------------------------------ */

/* The state the store should hold: the join of every batch applied. */
struct ref_state {
	crdt_entry e[REF_SLOTS];
	bool used[REF_SLOTS];
};

struct fx {
	char *dir;
	crdt_store *s;
	crdt_reader *r;
	crdt_summary *buckets; /* CRDT_BUCKETS, for recompute */
	struct ref_state *ref, *ref_next;
	pid_t kids[2]; /* killed at teardown if still there */
	int fds[2];    /* closed at teardown if open */
};

static int
setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	*state = f;
	f->fds[0] = f->fds[1] = -1;
	f->dir = tu_tmpdir();
	f->buckets = calloc(CRDT_BUCKETS, sizeof(*f->buckets));
	f->ref = calloc(1, sizeof(*f->ref));
	f->ref_next = calloc(1, sizeof(*f->ref_next));
	return f->buckets && f->ref && f->ref_next ? 0 : -1;
}

static int
teardown(void **state)
{
	struct fx *f = *state;

	for (int i = 0; i < 2; i++) {
		if (f->kids[i] > 0) {
			kill(f->kids[i], SIGKILL);
			waitpid(f->kids[i], NULL, 0);
		}
		if (f->fds[i] >= 0)
			close(f->fds[i]);
	}
	crdt_reader_free(f->r);
	crdt_store_close(f->s);
	tu_rmdir(f->dir);
	free(f->buckets);
	free(f->ref);
	free(f->ref_next);
	free(f);
	return 0;
}

/* Open the fixture's store with the default options (syncing). */
static void
store_open(struct fx *f)
{
	assert_null(f->s);
	assert_int_equal(crdt_store_open(f->dir, NULL, &f->s), REVOKD_OK);
	assert_int_equal(crdt_reader_new(f->s, &f->r), REVOKD_OK);
}

static void
store_close(struct fx *f)
{
	crdt_reader_free(f->r);
	f->r = NULL;
	crdt_store_close(f->s);
	f->s = NULL;
}

static void
renew(crdt_reader *r)
{
	crdt_reader_end(r);
	assert_int_equal(crdt_reader_begin(r), REVOKD_OK);
}

static void
assert_summary_eq(const crdt_summary *a, const crdt_summary *b)
{
	assert_int_equal(a->count, b->count);
	assert_int_equal(a->fp_lo, b->fp_lo);
	assert_int_equal(a->fp_hi, b->fp_hi);
}

/*
 * Recompute the store from its entries, compare with every incremental
 * bucket summary, and return the total.
 */
static crdt_summary
assert_buckets_match(struct fx *f)
{
	crdt_summary total, one, all;

	renew(f->r);
	assert_int_equal(crdt_reader_recompute(f->r, &total, f->buckets),
	    REVOKD_OK);
	for (uint32_t b = 0; b < CRDT_BUCKETS; b++) {
		crdt_store_buckets_sum(f->s, b, b + 1, &one);
		if (!crdt_summary_equal(&one, &f->buckets[b]))
			fail_msg("bucket %u: incremental and recomputed "
			         "summaries differ",
			    b);
	}
	crdt_store_buckets_sum(f->s, 0, CRDT_BUCKETS, &all);
	assert_summary_eq(&total, &all);
	assert_int_equal(total.count, crdt_store_count(f->s));
	return total;
}

/*
 * Batch i: BATCH random entries from seed i alone, so a child and the
 * parent build the same. Subjects are never the lattice's bottom (which
 * would not be stored) and tokens never expire at NOW.
 */
static void
make_batch(uint32_t i, crdt_entry *out)
{
	revokd_rng rng;

	revokd_rng_seed(&rng, UINT64_C(0x6261746368000000) + i);
	for (int j = 0; j < BATCH; j++) {
		crdt_entry *e = &out[j];

		tu_random_entry(&rng, POOL, NOW, e);
		if (!crdt_kind_is_token(e->kind) && e->u.subject.n == 0 &&
		    e->u.subject.not_before_ms == 0)
			e->u.subject.not_before_ms = 1;
	}
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Fork; in the child run fn(dir, arg, write end), which never returns. */
static pid_t
spawn(struct fx *f, int slot, void (*fn)(const char *, uint32_t, int),
    uint32_t arg)
{
	int fds[2];
	pid_t pid;

	assert_int_equal(pipe(fds), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		close(fds[0]);
		fn(f->dir, arg, fds[1]);
		_exit(99);
	}
	close(fds[1]);
	f->kids[slot] = pid;
	f->fds[slot] = fds[0];
	return pid;
}

/* SIGKILL the child in slot (if alive) and reap it; its wait status. */
static int
kill_kid(struct fx *f, int slot)
{
	int status = 0;

	kill(f->kids[slot], SIGKILL);
	assert_int_equal(waitpid(f->kids[slot], &status, 0), f->kids[slot]);
	f->kids[slot] = 0;
	return status;
}

/* ------------------------------------------------------------------------ */
/* The reference state                                                      */
/* ------------------------------------------------------------------------ */

static void
ref_merge(struct ref_state *rs, const crdt_entry *in)
{
	uint32_t h;
	bool changed;

	memcpy(&h, in->key.b, sizeof(h));
	for (uint32_t probe = 0; probe < REF_SLOTS; probe++) {
		uint32_t i = (h + probe) & (REF_SLOTS - 1);

		if (!rs->used[i]) {
			rs->used[i] = true;
			rs->e[i] = *in;
			return;
		}
		if (crdt_key_cmp(&rs->e[i].key, &in->key) == 0) {
			assert_int_equal(
			    crdt_entry_merge(&rs->e[i], in, &changed),
			    REVOKD_OK);
			return;
		}
	}
	fail_msg("reference state full");
}

static void
ref_apply_batch(struct ref_state *rs, uint32_t i)
{
	crdt_entry batch[BATCH];

	make_batch(i, batch);
	for (int j = 0; j < BATCH; j++)
		ref_merge(rs, &batch[j]);
}

static crdt_summary
ref_summary(const struct ref_state *rs)
{
	crdt_summary sum = { 0 }, one;

	for (uint32_t i = 0; i < REF_SLOTS; i++) {
		if (rs->used[i]) {
			crdt_entry_summary(&rs->e[i], &one);
			crdt_summary_add(&sum, &one);
		}
	}
	return sum;
}

/* ------------------------------------------------------------------------ */
/* kill -9 while committing                                                 */
/* ------------------------------------------------------------------------ */

/*
 * The writer child: open the store (syncing) and commit batch first,
 * first + 1, ..., writing each batch number to out_fd once its apply has
 * returned OK. Odd batches are committed CRDT_REPLICA (meta page not
 * synced), even ones CRDT_DURABLE: a process crash must lose neither. Runs
 * until killed (bounded, should the parent vanish).
 */
static void
writer_child(const char *dir, uint32_t first, int out_fd)
{
	crdt_entry batch[BATCH];
	uint64_t start = now_ms();
	crdt_store *s;

	if (crdt_store_open(dir, NULL, &s) != REVOKD_OK)
		_exit(2);
	for (uint32_t i = first; i < first + 100000; i++) {
		if (now_ms() - start > 30000)
			_exit(5);
		make_batch(i, batch);
		if (crdt_store_apply_as(s, i & 1 ? CRDT_REPLICA : CRDT_DURABLE,
		        batch, BATCH, NOW, NULL, NULL) != REVOKD_OK)
			_exit(3);
		if (!tu_write_full(out_fd, &i, sizeof(i)))
			_exit(4);
	}
	_exit(6);
}

/*
 * Run the writer from batch first, read want reports (or for
 * CYCLE_MAX_MS), wait delay_us, kill it mid-stream and read what it
 * reported before dying. Returns the number of
 * batches reported (each checked to be the next in sequence).
 */
static uint32_t
run_and_kill_writer(struct fx *f, uint32_t first, uint32_t want,
    unsigned delay_us)
{
	uint64_t deadline = now_ms() + CYCLE_MAX_MS;
	uint32_t seen = 0, got;
	int status;

	spawn(f, 0, writer_child, first);
	while (seen < want && now_ms() < deadline) {
		if (!tu_read_full(f->fds[0], &got, sizeof(got),
		        (int)(deadline - now_ms()) + 1))
			break;
		assert_int_equal(got, first + seen);
		seen++;
	}
	usleep(delay_us); /* somewhere inside the next commit, or not */
	status = kill_kid(f, 0);
	if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
		fail_msg("writer child ended by itself, status %#x", status);
	/* The pipe holds what it wrote before dying; then EOF. */
	while (
	    seen < 100000 && tu_read_full(f->fds[0], &got, sizeof(got), 1000)) {
		assert_int_equal(got, first + seen);
		seen++;
	}
	close(f->fds[0]);
	f->fds[0] = -1;
	return seen;
}

/*
 * Check the reopened store against batches [0, reported): each entry's
 * stored state is at least what was applied, and the whole state is the
 * join of those batches, or of those and the next one (committed by the
 * child but not reported before the kill): never part of a batch.
 */
static bool
verify_after_kill(struct fx *f, uint32_t reported)
{
	crdt_entry batch[BATCH], got;
	crdt_summary total, want, want_next;
	bool changed;

	store_open(f);
	total = assert_buckets_match(f);
	for (uint32_t i = 0; i < reported; i++) {
		make_batch(i, batch);
		for (int j = 0; j < BATCH; j++) {
			assert_int_equal(
			    crdt_reader_get(f->r, &batch[j].key, &got),
			    REVOKD_OK);
			assert_int_equal(
			    crdt_entry_merge(&got, &batch[j], &changed),
			    REVOKD_OK);
			if (changed)
				fail_msg("batch %u entry %d: stored state is "
				         "below the applied one",
				    i, j);
		}
	}
	want = ref_summary(f->ref);
	memcpy(f->ref_next, f->ref, sizeof(*f->ref));
	ref_apply_batch(f->ref_next, reported);
	want_next = ref_summary(f->ref_next);
	store_close(f);
	if (crdt_summary_equal(&total, &want))
		return false;
	if (crdt_summary_equal(&total, &want_next))
		return true;
	fail_msg("after the kill the store holds neither batches [0, %u) "
	         "nor [0, %u]: %llu entries, want %llu or %llu",
	    reported, reported, (unsigned long long)total.count,
	    (unsigned long long)want.count,
	    (unsigned long long)want_next.count);
	return false;
}

/*
 * A writer committing batches is killed with SIGKILL at a random point,
 * five times on the same store: after each reopen every reported batch is
 * fully there, the state is exactly a prefix of whole batches, and the
 * bucket summaries equal a full recompute.
 */
static void
test_kill_during_commits(void **state)
{
	struct fx *f = *state;
	uint32_t next = 0, unreported_found = 0;
	revokd_rng rng;

	revokd_rng_seed(&rng, 0x6b696c6c);
	for (int cycle = 0; cycle < CYCLES; cycle++) {
		uint32_t want = 10 + (uint32_t)revokd_rng_below(&rng,
		                         CYCLE_MAX_BATCHES - 10);
		uint32_t seen = run_and_kill_writer(f, next, want,
		    (unsigned)revokd_rng_below(&rng, 3000));

		assert_true(seen >= 1);
		for (uint32_t i = next; i < next + seen; i++)
			ref_apply_batch(f->ref, i);
		next += seen;
		unreported_found += verify_after_kill(f, next);
	}
	print_message("      %u batches in %d kills; the unreported batch "
	              "was committed %u times\n",
	    next, CYCLES, unreported_found);
}

/* ------------------------------------------------------------------------ */
/* A reader killed while holding a snapshot                                 */
/* ------------------------------------------------------------------------ */

/*
 * A read-only child: open the store, and with with_reader begin a reader
 * and read one entry (taking a reader slot). Then say 'r' and wait to be
 * killed (bounded).
 */
static void
reader_child(const char *dir, uint32_t with_reader, int out_fd)
{
	crdt_store_options opt = { .read_only = true };
	crdt_entry batch[BATCH], got;
	crdt_reader *r;
	crdt_store *s;

	if (crdt_store_open(dir, &opt, &s) != REVOKD_OK)
		_exit(2);
	if (with_reader) {
		make_batch(0, batch);
		if (crdt_reader_new(s, &r) != REVOKD_OK ||
		    crdt_reader_begin(r) != REVOKD_OK ||
		    crdt_reader_get(r, &batch[0].key, &got) != REVOKD_OK)
			_exit(3);
	}
	if (!tu_write_full(out_fd, "r", 1))
		_exit(4);
	for (int i = 0; i < 300; i++)
		usleep(100000);
	_exit(5);
}

struct slot_count {
	pid_t pid;
	int slots;
};

/* mdb_reader_list callback: count the lines of reader slots of one pid. */
static int
count_slots(const char *msg, void *arg)
{
	struct slot_count *sc = arg;
	int pid;

	if (sscanf(msg, "%d", &pid) == 1 && pid == sc->pid)
		sc->slots++;
	return 0;
}

static int
reader_slots(crdt_store *s, pid_t pid)
{
	struct slot_count sc = { pid, 0 };

	assert_true(mdb_reader_list(s->env, count_slots, &sc) >= 0);
	return sc.slots;
}

/* Scan callback: count token entries gone by NOW + 1 + LEEWAY + 1. */
static bool
count_expiring(void *arg, const crdt_entry *e)
{
	size_t *n = arg;

	if (crdt_kind_is_token(e->kind) && e->u.token.exp <= NOW + 1)
		(*n)++;
	return true;
}

/*
 * A read-only process killed while holding a snapshot leaves a reader slot
 * behind; crdt_store_reader_check, which the agent runs periodically, gives
 * it back, as does the next open of the store (while another process keeps
 * the environment's lock file in use, so it is not simply reinitialised);
 * the writer then applies and prunes normally.
 */
static void
test_killed_reader_slot_reclaimed(void **state)
{
	struct fx *f = *state;
	crdt_entry batch[BATCH], tokens[BATCH];
	crdt_apply_stats st;
	size_t pruned, n_tokens = 0, total_pruned = 0, n_expiring = 0;
	revokd_rng rng;
	pid_t holder, reader;
	bool more = true;
	char ready;
	int dead = -1, status;

	store_open(f);
	for (uint32_t i = 0; i < 4; i++) {
		make_batch(i, batch);
		assert_int_equal(
		    crdt_store_apply(f->s, batch, BATCH, NOW, NULL, NULL),
		    REVOKD_OK);
	}
	store_close(f);

	holder = spawn(f, 1, reader_child, 0);
	reader = spawn(f, 0, reader_child, 1);
	assert_true(tu_read_full(f->fds[1], &ready, 1, 10000));
	assert_true(tu_read_full(f->fds[0], &ready, 1, 10000));

	store_open(f);
	assert_int_equal(reader_slots(f->s, reader), 1);
	assert_int_equal(reader_slots(f->s, holder), 0);
	status = kill_kid(f, 0);
	assert_true(WIFSIGNALED(status));
	/* Nothing reclaims the slot by itself while this env stays open... */
	assert_int_equal(reader_slots(f->s, reader), 1);
	/* ...but the writer's periodic check does. */
	dead = -1;
	assert_int_equal(crdt_store_reader_check(f->s, &dead), REVOKD_OK);
	assert_int_equal(dead, 1);
	assert_int_equal(reader_slots(f->s, reader), 0);
	store_close(f);

	assert_int_equal(kill(holder, 0), 0); /* still keeps the env in use */
	store_open(f);
	assert_int_equal(reader_slots(f->s, reader), 0);
	assert_int_equal(mdb_reader_check(f->s->env, &dead), 0);
	assert_int_equal(dead, 0);

	/* The writer works as usual: apply, then prune what expires. */
	revokd_rng_seed(&rng, 77);
	make_batch(100, batch);
	for (int j = 0; j < BATCH; j++) {
		if (!crdt_kind_is_token(batch[j].kind))
			continue;
		tokens[n_tokens] = batch[j];
		tu_random_key(&rng, 0, &tokens[n_tokens].key); /* new keys */
		tokens[n_tokens++].u.token.exp = NOW + 1;
	}
	assert_true(n_tokens > 10);
	assert_int_equal(
	    crdt_store_apply(f->s, tokens, n_tokens, NOW, NULL, &st),
	    REVOKD_OK);
	assert_int_equal(st.added, n_tokens);
	assert_buckets_match(f);
	renew(f->r);
	assert_int_equal(
	    crdt_reader_scan(f->r, NULL, NULL, count_expiring, &n_expiring),
	    REVOKD_OK);
	assert_true(n_expiring >= n_tokens);
	while (more) {
		assert_int_equal(crdt_store_prune(f->s, NOW + 1 + LEEWAY + 1,
		                     50, &pruned, &more),
		    REVOKD_OK);
		total_pruned += pruned;
	}
	assert_int_equal(total_pruned, n_expiring);
	renew(f->r);
	for (size_t i = 0; i < n_tokens; i++) {
		crdt_entry got;

		assert_int_equal(crdt_reader_get(f->r, &tokens[i].key, &got),
		    REVOKD_ENOTFOUND);
	}
	assert_buckets_match(f);
	store_close(f);
	status = kill_kid(f, 1);
	assert_true(WIFSIGNALED(status));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kill_during_commits, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_killed_reader_slot_reclaimed, setup, teardown),
	};

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
