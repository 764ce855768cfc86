/*
 * test_engine.c: the replication engine driven by hand: push, acks and
 * confirmation, relay around a broken link, backlog overflow falling back to
 * reconciliation, reconciliation of a known difference, clock offsets and
 * watermarks.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine_harness.h"
#include "testutil.h"

/* engine_config's default recon_interval_us (engine.h). */
#define ENGINE_TEST_RECON_INTERVAL_US 60000000

static int
setup3(void **state)
{
	static struct eh h;
	engine_config c = { 0 };

	eh_init(&h, 3, &c);
	*state = &h;
	return 0;
}

static int
teardown(void **state)
{
	eh_free(*state);
	return 0;
}

/* A revocation is pushed at once, acknowledged, and confirmed. */
static void
test_push_ack_confirm(void **state)
{
	struct eh *h = *state;
	crdt_key k;
	uint64_t batch;

	eh_link_up(h, 0, 1);
	eh_settle(h);
	batch = eh_revoke(h, 0, &k);
	assert_true(batch > 0);
	assert_false(eh_revoked(h, 1, &k));
	/* The first frame to node 1 after the write carries it. */
	assert_true(eh_deliver(h, 0, 1));
	assert_true(eh_revoked(h, 1, &k));
	assert_int_equal(h->node[0].confirmed[1], 0);
	eh_settle(h);
	assert_int_equal(h->node[0].confirmed[1], batch);
	assert_false(eh_revoked(h, 2, &k));
}

/* With the 0-2 link down, 1 relays 0's revocation to 2. */
static void
test_relay(void **state)
{
	struct eh *h = *state;
	crdt_key k;

	eh_link_up(h, 0, 1);
	eh_link_up(h, 1, 2);
	eh_settle(h);
	eh_revoke(h, 0, &k);
	eh_settle(h);
	assert_true(eh_revoked(h, 1, &k));
	assert_true(eh_revoked(h, 2, &k));
	eh_revoke(h, 2, &k);
	eh_settle(h);
	assert_true(eh_revoked(h, 0, &k));
}

/* What a node wrote while a peer was away reaches it by reconciliation. */
static void
test_reconcile_after_absence(void **state)
{
	struct eh *h = *state;
	crdt_key keys[300];

	for (int i = 0; i < 200; i++)
		eh_revoke(h, 0, &keys[i]);
	for (int i = 200; i < 300; i++)
		eh_revoke(h, 1, &keys[i]);
	eh_link_up(h, 0, 1);
	for (int round = 0; round < 50 && !eh_same(h, 0, 1); round++) {
		eh_advance(h, 1000);
		eh_settle(h);
	}
	assert_true(eh_same(h, 0, 1));
	assert_int_equal(eh_count(h, 0), 300);
	for (int i = 0; i < 300; i++) {
		assert_true(eh_revoked(h, 0, &keys[i]));
		assert_true(eh_revoked(h, 1, &keys[i]));
	}
	assert_true(h->node[0].events[ENGINE_PEER_RECON_DONE] +
	                h->node[1].events[ENGINE_PEER_RECON_DONE] >=
	            2);
}

/* Give node i n revoked tokens directly in its store (no engine). */
static void
preload(struct eh *h, unsigned i, uint64_t seed, size_t n)
{
	crdt_entry *v = calloc(n, sizeof(*v));
	revokd_rng rng;

	assert_non_null(v);
	revokd_rng_seed(&rng, seed);
	for (size_t k = 0; k < n; k++) {
		v[k].kind = CRDT_KIND_JTI;
		revokd_rng_bytes(&rng, v[k].key.b, CRDT_KEY_LEN);
		v[k].u.token.exp = (int64_t)(h->now / 1000000) + 86400;
		v[k].u.token.revoked_at = CRDT_HLC_AT(h->now / 1000) + k;
	}
	assert_int_equal(crdt_store_apply(h->node[i].store, v, n,
	                     (int64_t)(h->now / 1000000), NULL, NULL),
	    REVOKD_OK);
	free(v);
}

/* Run ticks and deliveries until nodes i and j hold the same (bounded). */
static void
converge(struct eh *h, unsigned i, unsigned j)
{
	for (int round = 0; round < 200 && !eh_same(h, i, j); round++) {
		eh_advance(h, 1000);
		eh_settle(h);
	}
	assert_true(eh_same(h, i, j));
}

/*
 * Reconciliation traffic grows with the difference, not the state: 20,000
 * shared entries and 20 on one side only cost a few kilobytes, against
 * 880 KB to send the state.
 */
static void
test_reconcile_bytes_follow_difference(void **state)
{
	struct eh *h = *state;
	uint64_t repair;

	preload(h, 0, 42, 20000);
	preload(h, 1, 42, 20000);
	preload(h, 0, 43, 20); /* 20 more on node 0 only */
	eh_link_up(h, 0, 1);
	converge(h, 0, 1);
	assert_int_equal(eh_count(h, 1), 20020);
	repair = eh_bytes(h, WIRE_RECON);
	/* 20 entries are 880 raw bytes; the walk to them is logarithmic. */
	assert_true(repair > 880);
	assert_true(repair < 16 * 1024);
}

/* Both sides differ: each gets what only the other had. */
static void
test_reconcile_both_ways(void **state)
{
	struct eh *h = *state;

	preload(h, 0, 42, 5000);
	preload(h, 1, 42, 5000);
	preload(h, 0, 44, 37);
	preload(h, 1, 45, 55);
	eh_link_up(h, 1, 0); /* node 0 still leads (lower region id) */
	converge(h, 0, 1);
	assert_int_equal(eh_count(h, 0), 5092);
	assert_int_equal(eh_count(h, 1), 5092);
}

/*
 * Same keys, different values: restores on one side, re-revocations with a
 * later clock on the other. Reconciliation makes both hold the join.
 */
static void
test_reconcile_value_changes(void **state)
{
	struct eh *h = *state;
	crdt_entry *v = calloc(2000, sizeof(*v));
	revokd_rng rng;

	assert_non_null(v);
	preload(h, 0, 47, 2000);
	preload(h, 1, 47, 2000);
	revokd_rng_seed(&rng, 47);
	for (size_t k = 0; k < 2000; k++) {
		v[k].kind = CRDT_KIND_JTI;
		revokd_rng_bytes(&rng, v[k].key.b, CRDT_KEY_LEN);
		v[k].u.token.exp = (int64_t)(h->now / 1000000) + 86400;
	}
	/* Node 0 restores 30 of them; node 1 revokes 30 others again. */
	for (size_t k = 0; k < 60; k++) {
		crdt_entry *e = &v[k * 31];

		if (k < 30)
			e->u.token.restored_at =
			    CRDT_HLC_AT(h->now / 1000) + 1000000;
		else
			e->u.token.revoked_at =
			    CRDT_HLC_AT(h->now / 1000) + 2000000;
		assert_int_equal(crdt_store_apply(h->node[k < 30 ? 0 : 1].store,
		                     e, 1, (int64_t)(h->now / 1000000), NULL,
		                     NULL),
		    REVOKD_OK);
	}
	assert_false(eh_same(h, 0, 1));
	eh_link_up(h, 0, 1);
	converge(h, 0, 1);
	assert_int_equal(eh_count(h, 0), 2000);
	for (size_t k = 0; k < 60; k++)
		assert_true(eh_revoked(h, 0, &v[k * 31].key) == (k >= 30));
	free(v);
}

/* An empty region joining gets everything, streamed in bounded frames. */
static void
test_bootstrap_empty(void **state)
{
	struct eh *h = *state;

	preload(h, 1, 46, 30000);
	eh_link_up(h, 0, 1);
	converge(h, 0, 1);
	assert_int_equal(eh_count(h, 0), 30000);
}

/* Run ticks and deliveries until neither of i, j is in a session. */
static void
sessions_over(struct eh *h, unsigned i, unsigned j)
{
	engine_peer_status a, b;

	for (int round = 0; round < 200; round++) {
		eh_advance(h, 1000);
		eh_settle(h);
		engine_get_peer_status(h->node[i].engine, eh_peer(i, j), &a);
		engine_get_peer_status(h->node[j].engine, eh_peer(j, i), &b);
		if (!a.recon_active && !b.recon_active)
			return;
	}
	fail_msg("a session between %u and %u never ended", i, j);
}

/*
 * A peer may not have the whole store streamed to it on demand: of
 * sessions it leads back to back, the comparer takes eight, refuses the
 * rest as busy (one notice for the run), and takes one more per eighth of
 * the reconciliation interval.
 */
static void
test_sessions_led_by_a_peer_are_limited(void **state)
{
	struct eh *h = *state;
	engine *cmp = h->node[1].engine;
	engine_stats st;
	uint64_t led;

	preload(h, 1, 47, 500);
	/* Node 0 (the lower region id) leads a session at every link up. */
	for (int i = 0; i < 12; i++) {
		eh_link_up(h, 0, 1);
		sessions_over(h, 0, 1);
		eh_link_down(h, 0, 1);
	}
	led = h->node[0].events[ENGINE_PEER_RECON_DONE];
	engine_get_stats(cmp, &st);
	assert_int_equal(led, 8);
	assert_true(st.recon_limited >= 4);
	assert_int_equal(h->node[1].events[ENGINE_PEER_RECON_LIMITED], 1);
	assert_int_equal(eh_count(h, 0), 500);

	/* An eighth of the interval later, one more; then busy again. */
	eh_advance(h, ENGINE_TEST_RECON_INTERVAL_US / 8);
	eh_link_up(h, 0, 1);
	sessions_over(h, 0, 1);
	eh_link_down(h, 0, 1);
	eh_link_up(h, 0, 1);
	sessions_over(h, 0, 1);
	assert_int_equal(h->node[0].events[ENGINE_PEER_RECON_DONE], led + 1);
	assert_int_equal(h->node[1].events[ENGINE_PEER_RECON_LIMITED], 2);
}

/*
 * A peer that stops reading overflows its backlog: the queue is dropped
 * (memory stays bounded) and reconciliation delivers what it lacked.
 */
static void
test_overflow_falls_back_to_repair(void **state)
{
	struct eh *h = *state;
	engine_config c = { .backlog_max = 50 };
	crdt_key k[200];

	eh_free(h);
	eh_init(h, 2, &c);
	eh_link_up(h, 0, 1);
	eh_settle(h);
	/* Node 1's first frame stays undelivered: node 0's slot stays busy. */
	for (int i = 0; i < 200; i++)
		eh_revoke(h, 0, &k[i]);
	assert_int_equal(h->node[0].events[ENGINE_PEER_OVERFLOW] > 0, 1);
	converge(h, 0, 1);
	for (int i = 0; i < 200; i++)
		assert_true(eh_revoked(h, 1, &k[i]));
	/* Batches dropped with the backlog are confirmed by the repair. */
	assert_int_equal(h->node[0].confirmed[1], 200);
}

/* A batch written while the peer was away is confirmed after repair. */
static void
test_confirm_through_repair(void **state)
{
	struct eh *h = *state;
	crdt_key k;
	uint64_t batch = eh_revoke(h, 0, &k);

	assert_int_equal(h->node[0].confirmed[1], 0);
	eh_link_up(h, 0, 1);
	converge(h, 0, 1);
	eh_settle(h);
	assert_int_equal(h->node[0].confirmed[1], batch);
	assert_int_equal(h->node[0].confirmed[2], 0);
}

/* Ping/pong measures a peer 5 s ahead as +5 s, within the round trip. */
static void
test_clock_offset(void **state)
{
	struct eh *h = *state;
	engine_peer_status st;

	h->node[1].skew_us = 5000000;
	eh_link_up(h, 0, 1);
	eh_settle(h);
	engine_get_peer_status(h->node[0].engine, eh_peer(0, 1), &st);
	assert_true(st.have_clock);
	assert_true(st.offset_us == 5000000);
	engine_get_peer_status(h->node[1].engine, eh_peer(1, 0), &st);
	assert_true(st.offset_us == -5000000);
}

/*
 * Watermarks: after reconciliation, heartbeats make staleness small; while
 * a region is cut off, staleness grows with the time since it was heard.
 */
static void
test_watermarks_and_staleness(void **state)
{
	struct eh *h = *state;
	uint64_t s;

	eh_link_up(h, 0, 1);
	eh_link_up(h, 0, 2);
	eh_link_up(h, 1, 2);
	/* Sessions run one at a time per region: give them a second. */
	for (int i = 0; i < 40; i++) {
		eh_advance(h, 25000);
		eh_settle(h);
	}
	s = engine_staleness_us(h->node[0].engine, eh_clock(h, 0));
	assert_true(s < 100000); /* a heartbeat interval or two */
	eh_link_down(h, 0, 2);
	eh_link_down(h, 1, 2);
	for (int i = 0; i < 40; i++) {
		eh_advance(h, 25000);
		eh_settle(h);
	}
	s = engine_staleness_us(h->node[0].engine, eh_clock(h, 0));
	assert_true(s >= 1000000);
	assert_true(s < 1200000);
	/* Region 1 still vouches for itself. */
	assert_true(
	    eh_clock(h, 0) - engine_watermark(h->node[0].engine, 2) < 100000);
}

/* Claims relayed through a third region keep a cut-off pair fresh. */
static void
test_watermarks_through_relay(void **state)
{
	struct eh *h = *state;
	uint64_t s;

	eh_link_up(h, 0, 1);
	eh_link_up(h, 1, 2);
	for (int i = 0; i < 40; i++) {
		eh_advance(h, 25000);
		eh_settle(h);
	}
	s = engine_staleness_us(h->node[0].engine, eh_clock(h, 0));
	assert_true(s < 150000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_push_ack_confirm, setup3,
		    teardown),
		cmocka_unit_test_setup_teardown(test_relay, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_reconcile_after_absence,
		    setup3, teardown),
		cmocka_unit_test_setup_teardown(
		    test_reconcile_bytes_follow_difference, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_reconcile_both_ways,
		    setup3, teardown),
		cmocka_unit_test_setup_teardown(test_reconcile_value_changes,
		    setup3, teardown),
		cmocka_unit_test_setup_teardown(
		    test_sessions_led_by_a_peer_are_limited, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_bootstrap_empty, setup3,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_overflow_falls_back_to_repair, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_confirm_through_repair,
		    setup3, teardown),
		cmocka_unit_test_setup_teardown(test_clock_offset, setup3,
		    teardown),
		cmocka_unit_test_setup_teardown(test_watermarks_and_staleness,
		    setup3, teardown),
		cmocka_unit_test_setup_teardown(test_watermarks_through_relay,
		    setup3, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
