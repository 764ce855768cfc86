/*
 * test_crash.c: crash safety of real agents (bench/cluster.h, through
 * crash_fixture.h).
 *
 * - SIGKILL during bulk ingest, `--kills N` times: after every kill the
 *   store opens (read-only, from the test, before the agent restarts),
 *   every Import batch that was acknowledged is there, every other batch
 *   of the round is there whole or not at all, and the agent starts again.
 * - SIGKILL during anti-entropy, N times: a region restarted while its
 *   peer holds thousands of entries it lacks is killed at a random moment
 *   of catching up; what its store held just before each kill and every
 *   write it acknowledged is still there after it; at the end both hold
 *   everything.
 * - A map-full store (map_size 1 MiB) and a full disk (a tmpfs of the
 *   test's own in a private mount namespace; skipped where the machine
 *   allows none): writes are refused with ERROR_STORE naming the problem,
 *   and the log says it; checks are still answered; a restart on the full
 *   store works; writes are taken again once there is room (the filler
 *   expired and pruned, or deleted). Also a store that outgrows its filter
 *   of present keys on a full disk.
 *
 * `--kills N` (default 10) sets the kills of the first two; ctest runs 10
 * in the default suite (label integration) and 100 in the soak suite.
 * `--only NAME` runs the tests whose names match NAME (cmocka's filter).
 * Every figure is printed on lines starting with "crash:". Every agent is
 * stopped by the teardown, also on failure; every loop is bounded in count
 * and every wait in time.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "crash_fixture.h"

#define VALID REVOKD__LOCAL__VERDICT__VALID
#define REVOKED REVOKD__LOCAL__VERDICT__REVOKED_TOKEN

/* Kills of the two kill tests (--kills); a line per kill (--verbose). */
static unsigned opt_kills = 10;
static bool opt_verbose;

/* Bulk ingest: items per Import, batches in flight, time before a kill. */
#define INGEST_BATCH_MAX 500
#define INGEST_WINDOW_MAX 8
#define INGEST_DELAY_MAX_MS 300
#define INGEST_ACKS_MAX 40
#define ROUND_MS 60000 /* one round at most, whatever happens */

/* Anti-entropy: what the lagging region lacks at first and per round. */
#define REPAIR_BASE 30000
#define REPAIR_ROUND_MIN 2000
#define REPAIR_ROUND_SPREAD 8000
#define REPAIR_CALIBRATE 6000
#define REPAIR_LACK_MAX 20000 /* no more is fed while it lacks this */
#define REPAIR_WINDOW_MIN_MS 10
#define REPAIR_WINDOW_MAX_MS 5000
#define CONVERGE_MS 120000

static void
sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* Seconds since start (a cluster_now_ms), for the figures. */
static double
since_s(uint64_t start)
{
	return (double)(cluster_now_ms() - start) / 1000.0;
}

/* ------------------------------------------------------------------------ */
/* Kills during bulk ingest                                                 */
/* ------------------------------------------------------------------------ */

/* Figures of the ingest test. */
typedef struct ingest_stats {
	unsigned kills;
	unsigned at[CRASH_AT_COUNT]; /* where the loop thread was */
	unsigned with_in_flight;     /* kills with batches unanswered */
	size_t drained;              /* answers read after a kill */
	size_t unacked_committed;    /* unanswered batches found whole */
	size_t unacked_absent;       /* unanswered batches not there */
	size_t checked;              /* acknowledged items looked up */
	uint64_t restart_ms_sum, restart_ms_max;
} ingest_stats;

/* How one round ends before its kill. */
enum ingest_mode {
	INGEST_AFTER_DELAY, /* a random time into the round */
	INGEST_AFTER_ACKS,  /* the moment the k-th answer is read */
	INGEST_IDLE,        /* everything answered, then a short pause */
};

static const char *const ingest_mode_name[] = { "after a delay", "at an answer",
	"idle" };

/* True when the round is over and the kill is due. */
static bool
ingest_due(const crash_writer *w, enum ingest_mode mode, uint64_t until,
    size_t acks)
{
	switch (mode) {
	case INGEST_AFTER_DELAY:
		return cluster_now_ms() >= until;
	case INGEST_AFTER_ACKS:
		return w->conn_acked >= acks;
	default:
		return w->conn_acked >= acks && crash_writer_in_flight(w) == 0;
	}
}

/*
 * Pipeline Imports on w until the round's moment comes. Every answer before
 * the kill must be a WriteResult.
 */
static void
ingest_pump(crash_writer *w, revokd_rng *rng, enum ingest_mode mode)
{
	unsigned window =
	    1 + (unsigned)revokd_rng_below(rng, INGEST_WINDOW_MAX);
	uint64_t start = cluster_now_ms();
	uint64_t until = start + revokd_rng_below(rng, INGEST_DELAY_MAX_MS + 1);
	size_t acks = revokd_rng_below(rng, INGEST_ACKS_MAX + 1);
	size_t sent = 0;

	if (mode == INGEST_IDLE && acks == 0)
		acks = 1;
	while (!ingest_due(w, mode, until, acks)) {
		bool room = crash_writer_in_flight(w) < window &&
		            (mode != INGEST_IDLE || sent < acks);
		revokd_err err;

		if (cluster_now_ms() - start > ROUND_MS)
			fail_msg("ingest round did not end in %d ms", ROUND_MS);
		if (room) {
			assert_true(crash_writer_send(w,
			    1 + (uint32_t)revokd_rng_below(rng,
			            INGEST_BATCH_MAX)));
			sent++;
			continue;
		}
		err = crash_writer_recv(w,
		    mode == INGEST_AFTER_DELAY && until > cluster_now_ms()
		        ? (unsigned)(until - cluster_now_ms())
		        : CRASH_ANSWER_MS);
		if (err != REVOKD_OK && err != REVOKD_ETIMEDOUT)
			fail_msg("ingest: %s %s", revokd_strerror(err),
			    w->error);
	}
	if (mode == INGEST_IDLE)
		sleep_ms((unsigned)revokd_rng_below(rng, 20));
}

/* Open the killed agent's store: it must open. */
static void
open_after_kill(cluster *c, unsigned i, unsigned kill, crash_store *s)
{
	revokd_err err = crash_store_open(c, i, s);

	if (err != REVOKD_OK) {
		cluster_print_log(c, i);
		fail_msg("after kill %u, %s's store does not open: %s", kill,
		    c->node[i].name, revokd_strerror(err));
	}
}

/* Items [first, first + n) of w that the snapshot holds revoked. */
static size_t
count_present(crash_store *s, const crash_writer *w, uint32_t first, uint32_t n)
{
	size_t got = 0;

	for (uint32_t k = first; k < first + n; k++)
		got += crash_store_revoked(s, &w->keys[k]);
	return got;
}

/*
 * After kill `kill`: every acknowledged batch is in the store, whole; the
 * round's other batches (from round_first on) are whole or absent.
 */
static void
ingest_verify(cluster *c, const crash_writer *w, size_t round_first,
    unsigned kill, ingest_stats *st)
{
	crash_store s;

	open_after_kill(c, 0, kill, &s);
	for (size_t b = 0; b < w->n_batches; b++) {
		const crash_batch *bt = &w->batches[b];
		size_t got;

		if (!bt->acked && b < round_first)
			continue; /* decided at an earlier kill */
		got = count_present(&s, w, bt->first, bt->n);
		if (bt->acked) {
			st->checked += bt->n;
			if (got != bt->n)
				fail_msg("after kill %u: acknowledged batch "
				         "%zu (items %u..%u) has %zu of %u",
				    kill, b, bt->first, bt->first + bt->n - 1,
				    got, bt->n);
			continue;
		}
		if (got != 0 && got != bt->n)
			fail_msg("after kill %u: batch %zu is in part: %zu of "
			         "%u",
			    kill, b, got, bt->n);
		if (got)
			st->unacked_committed++;
		else
			st->unacked_absent++;
	}
	crash_store_close(&s);
}

/*
 * Restart node 0; time it until it answers REVOKED for the newest
 * acknowledged item through its query socket.
 */
static void
ingest_restart(cluster *c, const crash_writer *w, ingest_stats *st)
{
	uint64_t t0 = cluster_now_ms(), ms;
	char id[48];

	crash_start(c, 0);
	if (w->acked_items == 0)
		return;
	/* The newest acknowledged item, through the query socket. */
	for (size_t b = w->n_batches; b-- > 0;)
		if (w->batches[b].acked) {
			snprintf(id, sizeof(id), "%s-%u", w->tag,
			    w->batches[b].first + w->batches[b].n - 1);
			break;
		}
	if (!cluster_wait_verdict(c, 0, id, REVOKED, CRASH_START_MS)) {
		cluster_print_log(c, 0);
		fail_msg("after a restart %s is not revoked", id);
	}
	ms = cluster_now_ms() - t0;
	st->restart_ms_sum += ms;
	if (ms > st->restart_ms_max)
		st->restart_ms_max = ms;
}

static void
ingest_report(const ingest_stats *st, const crash_writer *w, uint64_t start)
{
	printf("crash: ingest kills=%u seconds=%.1f acked_batches=%zu "
	       "acked_items=%zu sent_batches=%zu lookups=%zu\n",
	    st->kills, since_s(start), w->acked_batches, w->acked_items,
	    w->n_batches, st->checked);
	printf("crash: ingest kills_with_batches_in_flight=%u "
	       "answers_read_after_kill=%zu unacked_batches_committed=%zu "
	       "unacked_batches_absent=%zu restart_ms_mean=%.1f "
	       "restart_ms_max=%llu\n",
	    st->with_in_flight, st->drained, st->unacked_committed,
	    st->unacked_absent,
	    st->kills ? (double)st->restart_ms_sum / st->kills : 0.0,
	    (unsigned long long)st->restart_ms_max);
	for (int k = 0; k < CRASH_AT_COUNT; k++)
		if (st->at[k])
			printf("crash: ingest killed_in %s: %u\n",
			    crash_where_name[k], st->at[k]);
	fflush(stdout);
}

/*
 * One agent alone takes pipelined Imports of random sizes and is killed
 * -9 at a random moment, --kills times; see the file's comment.
 */
static void
test_kill_during_ingest(void **state)
{
	static const char *const tags[CRASH_WRITERS] = { "ingest" };
	crash_state *t = *state;
	cluster *c = &t->c;
	revokd_rng rng;
	crash_writer *w;
	ingest_stats st = { 0 };
	uint64_t start = cluster_now_ms();

	revokd_rng_seed(&rng, crash_seed ^ 0x696e67);
	crash_cluster(t, 1, NULL, tags);
	w = t->w[0];
	crash_start(c, 0);
	for (unsigned kill = 1; kill <= opt_kills; kill++) {
		unsigned pick = (unsigned)revokd_rng_below(&rng, 10);
		enum ingest_mode mode = pick < 5   ? INGEST_AFTER_DELAY
		                        : pick < 9 ? INGEST_AFTER_ACKS
		                                   : INGEST_IDLE;
		size_t round_first = w->n_batches, in_flight, drained;
		crash_where at;

		crash_writer_connect(w, c, 0);
		ingest_pump(w, &rng, mode);
		in_flight = crash_writer_in_flight(w);
		st.with_in_flight += in_flight > 0;
		at = crash_kill(c, 0);
		st.at[at]++;
		st.kills++;
		drained = crash_writer_drain(w);
		st.drained += drained;
		ingest_verify(c, w, round_first, kill, &st);
		if (opt_verbose)
			printf("crash: ingest kill %u (%s) in %s: %zu "
			       "batches unanswered, %zu answers read after, "
			       "%zu items acknowledged in all\n",
			    kill, ingest_mode_name[mode], crash_where_name[at],
			    in_flight, drained, w->acked_items);
		ingest_restart(c, w, &st);
	}
	/* The agent that runs now answers for a sample, socket side. */
	for (unsigned k = 0; k < 200 && w->n_batches > 0; k++) {
		const crash_batch *b =
		    &w->batches[revokd_rng_below(&rng, w->n_batches)];
		char id[48];

		snprintf(id, sizeof(id), "%s-%u", w->tag,
		    b->first + (uint32_t)revokd_rng_below(&rng, b->n));
		if (b->acked)
			assert_int_equal(cluster_check_jti(c, 0, id), REVOKED);
	}
	ingest_report(&st, w, start);
}

/* ------------------------------------------------------------------------ */
/* Kills during anti-entropy                                                */
/* ------------------------------------------------------------------------ */

/* Figures of the anti-entropy test. */
typedef struct repair_stats {
	unsigned kills;
	unsigned at[CRASH_AT_COUNT];
	unsigned before_any, mid_repair, caught_up; /* state at the kill */
	size_t checked;     /* items looked up after kills */
	size_t own_acked;   /* the lagging region's own writes */
	size_t lacking_sum; /* items it lacked at its restarts */
	uint64_t window_ms; /* kills come up to this long after a start */
	uint64_t delay_sum;
	uint64_t calibrate_ms; /* one whole catch-up, unkilled */
	uint64_t converge_ms;
} repair_stats;

/* The regions: the lagging one dials (smaller id), so it reconnects at once. */
enum { LAG = 0, FULL = 1 };

/* Mark the full region's items the lagging one's store holds now. */
static size_t
repair_mark(cluster *c, const crash_writer *full, bool *seen)
{
	crash_store s;
	size_t marked = 0;

	assert_int_equal(crash_store_open(c, LAG, &s), REVOKD_OK);
	for (size_t k = 0; k < full->n_items; k++) {
		if (!seen[k] && crash_store_revoked(&s, &full->keys[k]))
			seen[k] = true;
		marked += seen[k];
	}
	crash_store_close(&s);
	return marked;
}

/* After kill `kill`: what was seen before it and every own write is there. */
static void
repair_verify(cluster *c, const crash_writer *full, const bool *seen,
    const crash_writer *own, unsigned kill, repair_stats *st)
{
	crash_store s;

	open_after_kill(c, LAG, kill, &s);
	for (size_t k = 0; k < full->n_items; k++) {
		if (!seen[k])
			continue;
		st->checked++;
		if (!crash_store_revoked(&s, &full->keys[k]))
			fail_msg("after kill %u: %s-%zu was in %s's store "
			         "before the kill and is not after it",
			    kill, full->tag, k, c->node[LAG].name);
	}
	for (size_t b = 0; b < own->n_batches; b++) {
		const crash_batch *bt = &own->batches[b];

		if (bt->acked &&
		    count_present(&s, own, bt->first, bt->n) != bt->n)
			fail_msg("after kill %u: acknowledged own batch %zu "
			         "lost",
			    kill, b);
		st->checked += bt->acked ? bt->n : 0;
	}
	crash_store_close(&s);
}

/* Import n items into the full region (the lagging one is down). */
static void
repair_feed(crash_writer *full, uint32_t n)
{
	while (n > 0) {
		uint32_t part = n < CRASH_IMPORT_MAX ? n : CRASH_IMPORT_MAX;

		crash_writer_import(full, part);
		n -= part;
	}
}

/*
 * Poll (within timeout_ms) until the lagging region holds every item of
 * full; the time it took, or fail.
 */
static uint64_t
repair_wait_all(cluster *c, const crash_writer *full, bool *seen,
    unsigned timeout_ms)
{
	uint64_t t0 = cluster_now_ms(), end = t0 + timeout_ms;

	while (repair_mark(c, full, seen) < full->n_items) {
		if (cluster_now_ms() >= end) {
			cluster_print_log(c, LAG);
			fail_msg("%s holds %zu of %zu after %u ms",
			    c->node[LAG].name, repair_mark(c, full, seen),
			    full->n_items, timeout_ms);
		}
		sleep_ms(5);
	}
	return cluster_now_ms() - t0;
}

/* The lagging region's own writes, acknowledged, during a catch-up. */
static void
repair_own_writes(cluster *c, crash_writer *own, revokd_rng *rng,
    repair_stats *st)
{
	unsigned n = 1 + (unsigned)revokd_rng_below(rng, 3);

	crash_writer_connect(own, c, LAG);
	for (unsigned k = 0; k < n; k++) {
		uint32_t items = 1 + (uint32_t)revokd_rng_below(rng, 50);

		crash_writer_import(own, items);
		st->own_acked += items;
	}
}

/*
 * The window the kill falls in: starts at 1.5 times the calibrated
 * catch-up, shrinks after a kill that came when everything had arrived,
 * grows after one that came before anything did, so kills keep landing
 * while entries arrive, whatever a session costs as the stores grow.
 */
static void
repair_adapt(repair_stats *st, size_t before, size_t after, size_t total)
{
	if (after == total && st->window_ms > REPAIR_WINDOW_MIN_MS)
		st->window_ms = st->window_ms * 3 / 4;
	else if (after == before)
		st->window_ms = st->window_ms * 3 / 2 < REPAIR_WINDOW_MAX_MS
		                    ? st->window_ms * 3 / 2
		                    : REPAIR_WINDOW_MAX_MS;
}

/*
 * One round: feed (unless the lagging region already lacks a lot), restart
 * it, kill it at a random time.
 */
static void
repair_round(cluster *c, crash_writer *full, crash_writer *own, bool **seen,
    revokd_rng *rng, unsigned kill, repair_stats *st)
{
	uint32_t n = REPAIR_ROUND_MIN +
	             (uint32_t)revokd_rng_below(rng, REPAIR_ROUND_SPREAD);
	size_t before = repair_mark(c, full, *seen), after, total;
	uint64_t t0, delay;

	if (full->n_items - before < REPAIR_LACK_MAX) {
		repair_feed(full, n);
		*seen = realloc(*seen, full->n_items);
		assert_non_null(*seen);
		memset(*seen + full->n_items - n, 0, n);
	}
	delay = revokd_rng_below(rng, st->window_ms + 1);
	crash_start(c, LAG);
	t0 = cluster_now_ms();
	if (revokd_rng_below(rng, 2))
		repair_own_writes(c, own, rng, st);
	while (cluster_now_ms() < t0 + delay)
		sleep_ms(1);
	after = repair_mark(c, full, *seen);
	st->at[crash_kill(c, LAG)]++;
	st->kills++;
	if (own->fd >= 0)
		crash_writer_drain(own);
	total = full->n_items;
	if (after == total)
		st->caught_up++;
	else if (after == before)
		st->before_any++;
	else
		st->mid_repair++;
	st->lacking_sum += total - before;
	st->delay_sum += delay;
	repair_adapt(st, before, after, total);
	if (opt_verbose)
		printf("crash: repair kill %u lacked %zu, killed %llu ms after "
		       "its start, %zu had arrived\n",
		    kill, total - before, (unsigned long long)delay,
		    after - before);
	repair_verify(c, full, *seen, own, kill, st);
}

static void
repair_report(const repair_stats *st, const crash_writer *full, uint64_t start)
{
	printf("crash: repair kills=%u seconds=%.1f full_items=%zu "
	       "own_items=%zu lookups=%zu calibrate_ms=%llu converge_ms=%llu\n",
	    st->kills, since_s(start), full->n_items, st->own_acked,
	    st->checked, (unsigned long long)st->calibrate_ms,
	    (unsigned long long)st->converge_ms);
	printf("crash: repair killed_before_any_entry=%u mid_repair=%u "
	       "after_catching_up=%u lacking_at_restart_mean=%.0f "
	       "delay_ms_mean=%.0f\n",
	    st->before_any, st->mid_repair, st->caught_up,
	    st->kills ? (double)st->lacking_sum / st->kills : 0.0,
	    st->kills ? (double)st->delay_sum / st->kills : 0.0);
	for (int k = 0; k < CRASH_AT_COUNT; k++)
		if (st->at[k])
			printf("crash: repair killed_in %s: %u\n",
			    crash_where_name[k], st->at[k]);
	fflush(stdout);
}

/*
 * Two regions. The lagging one (alpha) is stopped, the other (beta) takes
 * REPAIR_BASE Imports; then, each round, beta takes a few thousand more,
 * alpha is started, perhaps takes writes of its own, and is killed -9 at a
 * random moment up to 1.5 times one whole catch-up (measured first). At the
 * end alpha is started for good and both hold everything.
 */
static void
test_kill_during_repair(void **state)
{
	static const char *const tags[CRASH_WRITERS] = { "full", "own" };
	crash_state *t = *state;
	cluster *c = &t->c;
	revokd_rng rng;
	crash_writer *full, *own;
	repair_stats st = { 0 };
	uint64_t start = cluster_now_ms();

	revokd_rng_seed(&rng, crash_seed ^ 0x726570);
	crash_cluster(t, 2, NULL, tags);
	full = t->w[0];
	own = t->w[1];
	crash_start(c, LAG);
	crash_start(c, FULL);
	crash_wait_ready(c, LAG);
	crash_wait_ready(c, FULL);
	assert_int_equal(cluster_stop(c, LAG), 0);
	crash_writer_connect(full, c, FULL);

	/* Calibration: one whole catch-up of a round's size, not killed. */
	repair_feed(full, REPAIR_CALIBRATE);
	assert_non_null(t->seen = calloc(full->n_items, 1));
	crash_start(c, LAG);
	st.calibrate_ms = repair_wait_all(c, full, t->seen, CONVERGE_MS);
	st.window_ms = st.calibrate_ms * 3 / 2 + REPAIR_WINDOW_MIN_MS;
	assert_int_equal(cluster_stop(c, LAG), 0);
	/* The first round lacks this much more. */
	repair_feed(full, REPAIR_BASE);
	assert_non_null(t->seen = realloc(t->seen, full->n_items));
	memset(t->seen + REPAIR_CALIBRATE, 0, REPAIR_BASE);

	for (unsigned kill = 1; kill <= opt_kills; kill++)
		repair_round(c, full, own, &t->seen, &rng, kill, &st);

	/* For good: alpha catches up, beta has alpha's own writes. */
	crash_start(c, LAG);
	crash_wait_ready(c, LAG);
	st.converge_ms = repair_wait_all(c, full, t->seen, CONVERGE_MS);
	for (size_t b = 0; b < own->n_batches; b++) {
		char id[48];

		if (!own->batches[b].acked)
			continue;
		snprintf(id, sizeof(id), "%s-%u", own->tag,
		    own->batches[b].first);
		assert_true(
		    cluster_wait_verdict(c, FULL, id, REVOKED, CONVERGE_MS));
	}
	repair_report(&st, full, start);
}

/* ------------------------------------------------------------------------ */
/* Full store, full disk                                                    */
/* ------------------------------------------------------------------------ */

/* Items a full store keeps, and what fills it. */
#define KEEP_ITEMS 100
#define FILL_BATCH 1000
#define FILL_BATCHES_MAX 5000
#define RECOVER_MS 30000

/* The jti `<tag>-<k>` of writer w is answered REVOKED by node i. */
static void
assert_item_revoked(cluster *c, unsigned i, const crash_writer *w, size_t k)
{
	char id[48];
	int verdict;

	snprintf(id, sizeof(id), "%s-%zu", w->tag, k);
	if ((verdict = cluster_check_jti(c, i, id)) != REVOKED)
		fail_msg("%s: verdict %d, not REVOKED", id, verdict);
}

/*
 * The first and last items of every acknowledged batch of w (at most
 * `most` batches, spread over them) are answered REVOKED by node i.
 */
static void
assert_acked_revoked(cluster *c, unsigned i, const crash_writer *w, size_t most)
{
	size_t stride = w->n_batches / most + 1;

	for (size_t b = 0; b < w->n_batches; b += stride) {
		const crash_batch *bt = &w->batches[b];

		if (!bt->acked)
			continue;
		assert_item_revoked(c, i, w, bt->first);
		assert_item_revoked(c, i, w, bt->first + bt->n - 1);
	}
}

/* Node i answers Status over the admin socket: its entry count. */
static uint64_t
status_entries(cluster *c, unsigned i)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Status q = REVOKD__LOCAL__STATUS__INIT;
	Revokd__Local__Response *resp = NULL;
	uint64_t n;

	req.body_case = REVOKD__LOCAL__REQUEST__BODY_STATUS;
	req.status = &q;
	assert_int_equal(cluster_call(c->node[i].admin, &req, &resp),
	    REVOKD_OK);
	assert_int_equal(resp->body_case, REVOKD__LOCAL__RESPONSE__BODY_STATUS);
	n = resp->status->entries;
	revokd__local__response__free_unpacked(resp, NULL);
	return n;
}

/*
 * Import batches on w until even a batch of one item is refused: batches
 * of FILL_BATCH items until one is refused, then of a tenth of that, and
 * so on (at most FILL_BATCHES_MAX in all). The first refusal's text
 * (ERROR_CODE: message) into why.
 */
static void
fill_until_refused(crash_writer *w, char *why, size_t len)
{
	uint32_t batch = FILL_BATCH;

	why[0] = '\0';
	for (unsigned k = 0; k < FILL_BATCHES_MAX; k++) {
		revokd_err err;

		assert_true(crash_writer_send(w, batch));
		err = crash_writer_recv(w, CRASH_ANSWER_MS);
		if (err == REVOKD_OK)
			continue;
		if (err != REVOKD_EIO)
			fail_msg("filling: %s", revokd_strerror(err));
		if (why[0] == '\0')
			snprintf(why, len, "%s", w->error);
		if (opt_verbose)
			printf("crash: fill: batch of %u refused after %zu "
			       "items taken\n",
			    batch, w->acked_items);
		if (batch == 1)
			return;
		batch /= 10;
	}
	fail_msg("%u batches and no refusal of one item", FILL_BATCHES_MAX);
}

/*
 * Import batches of FILL_BATCH items on w until one is refused (at most
 * FILL_BATCHES_MAX): its text (ERROR_CODE: message) into why.
 */
static void
refused_once(crash_writer *w, char *why, size_t len)
{
	for (unsigned k = 0; k < FILL_BATCHES_MAX; k++) {
		revokd_err err;

		assert_true(crash_writer_send(w, FILL_BATCH));
		if ((err = crash_writer_recv(w, CRASH_ANSWER_MS)) == REVOKD_OK)
			continue;
		if (err != REVOKD_EIO)
			fail_msg("filling: %s", revokd_strerror(err));
		snprintf(why, len, "%s", w->error);
		return;
	}
	fail_msg("%u batches of %u items and no refusal", FILL_BATCHES_MAX,
	    FILL_BATCH);
}

/*
 * While writes are refused: checks are answered (the kept items and some
 * acknowledged filler revoked, an unknown id valid) and so is Status.
 */
static void
assert_still_answers(cluster *c, const crash_writer *keep,
    const crash_writer *fill)
{
	assert_acked_revoked(c, 0, keep, 20);
	if (fill != NULL)
		assert_acked_revoked(c, 0, fill, 20);
	assert_int_equal(cluster_check_jti(c, 0, "never-revoked"), VALID);
	assert_true(status_entries(c, 0) >= keep->acked_items);
}

/*
 * Retry one Import of `batch` new items every 200 ms until it is taken
 * (within timeout_ms): the milliseconds it took, or UINT64_MAX.
 */
static uint64_t
write_within(cluster *c, crash_writer *w, uint32_t batch, unsigned timeout_ms)
{
	uint64_t t0 = cluster_now_ms();

	for (;;) {
		crash_writer_connect(w, c, 0);
		assert_true(crash_writer_send(w, batch));
		if (crash_writer_recv(w, CRASH_ANSWER_MS) == REVOKD_OK)
			return cluster_now_ms() - t0;
		if (cluster_now_ms() - t0 > timeout_ms)
			return UINT64_MAX;
		sleep_ms(200);
	}
}

/* write_within, RECOVER_MS, or fail saying why not. */
static uint64_t
write_until_taken(cluster *c, crash_writer *w, uint32_t batch)
{
	uint64_t ms = write_within(c, w, batch, RECOVER_MS);

	if (ms == UINT64_MAX) {
		cluster_print_log(c, 0);
		fail_msg("writes still refused after %u ms: %s", RECOVER_MS,
		    w->error);
	}
	return ms;
}

/* The one line of node 0's log that says a write failed, naming what. */
static void
assert_logged(cluster *c, const char *what)
{
	if (!cluster_log_line(c, 0, 5000, "write_failed", what, NULL)) {
		cluster_print_log(c, 0);
		fail_msg("no write_failed line naming \"%s\"", what);
	}
}

/*
 * Seconds the filler of the map-full test lives (then it may be pruned),
 * and how long room is waited for in place once it expired.
 */
#define MAP_FILL_LIFE_S 8
#define MAP_IN_PLACE_MS 10000

/* Wait (bounded) until node 0 holds at most n entries; false on timeout. */
static bool
wait_entries_at_most(cluster *c, uint64_t n, unsigned timeout_ms)
{
	uint64_t end = cluster_now_ms() + timeout_ms;

	while (status_entries(c, 0) > n) {
		if (cluster_now_ms() >= end)
			return false;
		sleep_ms(100);
	}
	return true;
}

/*
 * A 1 MiB map (the smallest map_size) and prune_leeway 1. Items that
 * expire in MAP_FILL_LIFE_S fill it until even one-item Imports are
 * refused: ERROR_STORE, "store is full: map size reached", a write_failed
 * line. Checks are still answered, also after a restart on the full map.
 * Once the filler expired, pruning gives room back in place (new entries
 * leave a reserve of the map for the deletes); the operator's way, a
 * larger map_size and a restart, works too: writes are taken and the
 * expired filler is pruned.
 */
static void
test_map_full(void **state)
{
	static const char *const tags[CRASH_WRITERS] = { "keep", "fill",
		"after" };
	crash_state *t = *state;
	cluster *c = &t->c;
	cluster_options o = { .extra_agent = "prune_leeway = 1",
		.extra_limits = "map_size = 1048576" };
	crash_writer *keep, *fill, *after;
	char why[256];
	uint64_t in_place, recovered_ms, entries;

	crash_cluster(t, 1, &o, tags);
	keep = t->w[0];
	fill = t->w[1];
	after = t->w[2];
	crash_start(c, 0);
	crash_writer_connect(keep, c, 0);
	crash_writer_import(keep, KEEP_ITEMS);

	fill->exp = (int64_t)time(NULL) + MAP_FILL_LIFE_S;
	crash_writer_connect(fill, c, 0);
	fill_until_refused(fill, why, sizeof(why));
	entries = status_entries(c, 0);
	printf("crash: map-full: %llu entries; first refusal: \"%s\"; then "
	       "refused batches of 100, 10 and 1 items\n",
	    (unsigned long long)entries, why);
	assert_non_null(strstr(why, "ERROR_STORE"));
	assert_non_null(strstr(why, "map size"));
	assert_logged(c, "map size");
	/* The filler, which expires soon, only while it surely has not. */
	assert_still_answers(c, keep, time(NULL) + 2 < fill->exp ? fill : NULL);

	/* A restart on the full map: a clean stop, the store opens again. */
	assert_int_equal(cluster_stop(c, 0), 0);
	crash_start(c, 0);
	assert_still_answers(c, keep, NULL);

	/* Room in place, by pruning the expired filler? */
	while (time(NULL) <= fill->exp + 1)
		sleep_ms(100);
	in_place = write_within(c, after, FILL_BATCH, MAP_IN_PLACE_MS);
	if (in_place == UINT64_MAX)
		fail_msg("in place, Imports still refused %u ms after the "
		         "filler expired (%llu entries)",
		    MAP_IN_PLACE_MS, (unsigned long long)status_entries(c, 0));
	printf("crash: map-full: in place, an Import of %u items taken %llu "
	       "ms after the filler expired\n",
	    FILL_BATCH, (unsigned long long)in_place);

	/* The operator's way: a larger map and a restart. */
	assert_int_equal(cluster_stop(c, 0), 0);
	crash_conf_replace(c, 0, "map_size = 1048576", "map_size = 4194304");
	crash_start(c, 0);
	recovered_ms = write_until_taken(c, after, FILL_BATCH);
	assert_true(wait_entries_at_most(c,
	    keep->acked_items + after->acked_items, MAP_IN_PLACE_MS));
	printf("crash: map-full: with map_size 4 MiB after a restart, an "
	       "Import taken in %llu ms; the expired filler pruned\n",
	    (unsigned long long)recovered_ms);
	assert_still_answers(c, keep, after);
	fflush(stdout);
}

/* The size of the test's own filesystem, and the room left on it. */
#define DISK_BYTES (4u << 20)
#define DISK_SLACK (16u << 10)

/*
 * The data dir on a 4 MiB tmpfs, filled by a file of the test's but for
 * a few pages, so that a large commit's write is cut short (LMDB says EIO
 * for that): Imports are refused with ERROR_STORE, "no space left on
 * device", and a write_failed line saying so; checks are still answered;
 * once the file is deleted writes are taken again, and a restart finds
 * everything acknowledged.
 * Skipped where no private mount namespace can be made.
 */
static void
test_disk_full(void **state)
{
	static const char *const tags[CRASH_WRITERS] = { "keep", "fill",
		"after" };
	crash_state *t = *state;
	cluster *c = &t->c;
	crash_writer *keep, *fill, *after;
	char why[256], filler[700];
	uint64_t recovered_ms;
	size_t filled;

	crash_cluster(t, 1, NULL, tags);
	keep = t->w[0];
	fill = t->w[1];
	after = t->w[2];
	if (!crash_small_fs(t, DISK_BYTES, why, sizeof(why))) {
		print_message("skipped: no small filesystem here: %s\n", why);
		skip();
	}
	crash_start(c, 0);
	crash_writer_connect(keep, c, 0);
	crash_writer_import(keep, KEEP_ITEMS);

	snprintf(filler, sizeof(filler), "%s/filler", t->small_fs);
	filled = crash_fill(filler);
	/* Room for a few pages: a large commit's write is cut short. */
	assert_int_equal(truncate(filler, (off_t)(filled - DISK_SLACK)), 0);
	crash_writer_connect(fill, c, 0);
	fill_until_refused(fill, why, sizeof(why));
	printf("crash: disk-full: filler %zu bytes, %u left; refused after "
	       "%zu more items: \"%s\"\n",
	    filled - DISK_SLACK, DISK_SLACK, fill->acked_items, why);
	assert_non_null(strstr(why, "ERROR_STORE"));
	assert_non_null(strstr(why, "no space"));
	assert_logged(c, "no space");
	assert_still_answers(c, keep, fill);

	assert_int_equal(unlink(filler), 0);
	recovered_ms = write_until_taken(c, after, FILL_BATCH);
	printf("crash: disk-full: writes taken again %llu ms after the "
	       "filler was deleted\n",
	    (unsigned long long)recovered_ms);
	assert_acked_revoked(c, 0, after, 20);

	assert_int_equal(cluster_stop(c, 0), 0);
	crash_start(c, 0);
	assert_still_answers(c, keep, fill);
	assert_acked_revoked(c, 0, after, 20);
	fflush(stdout);
}

/*
 * The store's filter of present keys (keys.filter) is made for 65,536
 * keys and grows (to 512 KiB and more) once the store holds more. The
 * filesystem of the test that makes it outgrow that on a full disk, and
 * the room left for LMDB's commits but not for the filter.
 */
#define FILTER_FIRST 65536
#define FILTER_DISK (24u << 20)
#define FILTER_ROOM (192u << 10)
#define FILTER_PAST 2000

/* The size of node 0's keys.filter. */
static size_t
filter_size(cluster *c)
{
	char path[700];

	snprintf(path, sizeof(path), "%s/data/keys.filter", c->node[0].dir);
	return crash_file_size(path);
}

/*
 * Import batches of 100 items on w until the store holds `until` items or
 * a batch is refused: every answer is a WriteResult or ERROR_STORE, never
 * a closed connection (the agent dying).
 */
static void
grow_until(cluster *c, crash_writer *w, size_t until)
{
	for (unsigned k = 0; k < 1000 && w->acked_items < until; k++) {
		revokd_err err;

		assert_true(crash_writer_send(w, 100));
		err = crash_writer_recv(w, CRASH_ANSWER_MS);
		if (err == REVOKD_EIO && strstr(w->error, "ERROR_STORE"))
			return;
		if (err != REVOKD_OK) {
			cluster_print_log(c, 0);
			fail_msg(
			    "growing past the filter on a full disk: %s %s",
			    revokd_strerror(err), w->error);
		}
	}
}

/*
 * A store outgrows its filter of present keys on a disk with room for
 * LMDB's commits but not for the filter: the agent goes on (it used to
 * die of SIGBUS writing the grown filter through its mapping), takes
 * writes until LMDB itself finds no room, answers checks, starts again on
 * the full disk (it used to refuse: "no space left on device"), and once
 * room returns takes writes, with everything acknowledged there.
 */
static void
test_disk_full_filter_grows(void **state)
{
	static const char *const tags[CRASH_WRITERS] = { "keep", "more" };
	crash_state *t = *state;
	cluster *c = &t->c;
	crash_writer *keep, *more;
	char why[256], filler[700], filler2[700];
	size_t small, full;

	crash_cluster(t, 1, NULL, tags);
	keep = t->w[0];
	more = t->w[1];
	if (!crash_small_fs(t, FILTER_DISK, why, sizeof(why))) {
		print_message("skipped: no small filesystem here: %s\n", why);
		skip();
	}
	crash_start(c, 0);
	crash_writer_connect(keep, c, 0);
	while (keep->acked_items < FILTER_FIRST - 500) {
		size_t left = FILTER_FIRST - 500 - keep->acked_items;

		crash_writer_import(keep, left < CRASH_IMPORT_MAX
		                              ? (uint32_t)left
		                              : CRASH_IMPORT_MAX);
	}
	small = filter_size(c);

	snprintf(filler, sizeof(filler), "%s/filler", t->small_fs);
	full = crash_fill(filler);
	assert_int_equal(truncate(filler, (off_t)(full - FILTER_ROOM)), 0);
	crash_writer_connect(more, c, 0);
	grow_until(c, more, FILTER_PAST);
	printf("crash: filter-full-disk: keys.filter %zu bytes, %zu after "
	       "%zu more items past its %d keys\n",
	    small, filter_size(c), more->acked_items, FILTER_FIRST);
	/* The case this test is for: the filter could not grow. */
	assert_int_equal(filter_size(c), small);
	assert_true(keep->acked_items + more->acked_items > FILTER_FIRST);

	/* The rest of the room too: now LMDB cannot grow either. */
	snprintf(filler2, sizeof(filler2), "%s/filler2", t->small_fs);
	crash_fill(filler2);
	refused_once(more, why, sizeof(why));
	if (strstr(why, "no space") == NULL) {
		cluster_print_log(c, 0);
		fail_msg("refused, but not for want of space: %s", why);
	}
	printf("crash: filter-full-disk: then refused: \"%s\"\n", why);
	assert_still_answers(c, keep, more);
	assert_int_equal(cluster_stop(c, 0), 0);
	crash_start(c, 0);
	assert_still_answers(c, keep, more);

	assert_int_equal(unlink(filler), 0);
	assert_int_equal(unlink(filler2), 0);
	write_until_taken(c, more, FILL_BATCH);
	assert_int_equal(cluster_stop(c, 0), 0);
	crash_start(c, 0);
	assert_still_answers(c, keep, more);
	printf("crash: filter-full-disk: after room returned and a restart "
	       "keys.filter is %zu bytes\n",
	    filter_size(c));
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_kill_during_ingest,
		    crash_setup, crash_teardown),
		cmocka_unit_test_setup_teardown(test_kill_during_repair,
		    crash_setup, crash_teardown),
		cmocka_unit_test_setup_teardown(test_map_full, crash_setup,
		    crash_teardown),
		/* Last: it leaves this process in a mount namespace of its own.
		 */
		cmocka_unit_test_setup_teardown(test_disk_full, crash_setup,
		    crash_teardown),
		cmocka_unit_test_setup_teardown(test_disk_full_filter_grows,
		    crash_setup, crash_teardown),
	};

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--kills") == 0 && i + 1 < argc)
			opt_kills = (unsigned)strtoul(argv[++i], NULL, 10);
		else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
			cmocka_set_test_filter(argv[++i]);
		else if (strcmp(argv[i], "--verbose") == 0)
			opt_verbose = true;
		else {
			fprintf(stderr,
			    "usage: %s [--kills N] [--only PATTERN] "
			    "[--verbose]\n",
			    argv[0]);
			return 2;
		}
	}
	if (opt_kills == 0 || opt_kills > 10000) {
		fprintf(stderr, "%s: --kills takes 1 to 10000\n", argv[0]);
		return 2;
	}
	crash_seed_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
