/*
 * test_librevoke_agent.c: librevoke against a real revokd (bench/cluster.h).
 * The socket client and the direct reader must give the same answers, the
 * ones a model of what was imported predicts, while the agent takes
 * writes: one check at a time (socket, reader, socket, the staleness in
 * that order), pipelined calls (one far larger than the client's send
 * window and the agent's output buffer), every subject's version, the
 * arguments both must refuse, every id the writer wrote; and from many
 * threads sharing one reader. Restarts, reader slots, map growth and the
 * staleness before any watermark are in test_librevoke_agent_life.c.
 *
 * The fixture (two regions, node 0 preloaded, node 1 stopped so that
 * staleness is a function of the clock alone), the model, the writer and
 * the checker threads are in librevoke_agent_fixture.c. The seed is
 * printed; REVOKD_TEST_SEED=n runs the same again.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "librevoke_agent_fixture.h"

/* Checks. */
#define N_CHECKS 5000 /* socket, reader, socket triples */
#define N_BIG 50000   /* queries in one very large pipelined call */
#define THREAD_CHECKS 3000
#define THREAD_MS 1000 /* and for this long, while the writer writes */

/* ------------------------------------------------------------------------ */
/* Socket against reader                                                    */
/* ------------------------------------------------------------------------ */

/*
 * N_BIG checks in one call, far more than the client's send window and
 * the agent's output buffer hold: every answer in order and right.
 */
static void
big_call_agrees(fixture *f)
{
	uint64_t t0 = cluster_now_ms();

	f->big_q = calloc(N_BIG, sizeof(*f->big_q));
	f->big_a = calloc(N_BIG, sizeof(*f->big_a));
	assert_true(f->big_q != NULL && f->big_a != NULL);
	for (size_t i = 0; i < N_MANY; i++)
		probe_make(&f->rng, &f->m, &f->probes[i]);
	for (size_t i = 0; i < N_BIG; i++)
		f->big_q[i] = f->probes[i * 7919 % N_MANY].q;
	assert_status(
	    revoke_client_check_many(f->client, f->big_q, N_BIG, f->big_a),
	    REVOKE_OK);
	for (size_t i = 0; i < N_BIG; i++)
		assert_answer("socket (large call)", &f->big_q[i], &f->big_a[i],
		    &f->probes[i * 7919 % N_MANY].want);
	print_message("%d checks in one call: %" PRIu64 " ms\n", N_BIG,
	    cluster_now_ms() - t0);
}

/* A query both the client and the reader must refuse, alike. */
static void
both_refuse(fixture *f, const revoke_query *q)
{
	revoke_answer a;

	assert_status(revoke_client_check(f->client, q, &a), REVOKE_E_INVALID);
	assert_status(revoke_reader_check(f->reader, q, &a), REVOKE_E_INVALID);
}

/*
 * Arguments: ids of 1024 bytes are taken, 1025 refused, a query without
 * an id refused, by both; the client's connection survives a refusal.
 */
static void
validation_agrees(fixture *f)
{
	static char long_id[ID_MAX + 2];
	revoke_query q = { 0 };
	revoke_answer a, r;
	uint64_t v;

	memset(long_id, 'z', ID_MAX + 1);
	both_refuse(f, &q);
	q.jti = "";
	q.sid = "";
	both_refuse(f, &q);
	q.sid = long_id;
	both_refuse(f, &q);
	q.sid = NULL;
	q.sub = long_id;
	q.sub_len = ID_MAX + 1;
	both_refuse(f, &q);
	assert_status(
	    revoke_client_version(f->client, long_id, 0, &v, NULL, NULL),
	    REVOKE_E_INVALID);
	assert_status(
	    revoke_reader_version(f->reader, long_id, 0, &v, NULL, NULL),
	    REVOKE_E_INVALID);
	q.sub_len = ID_MAX;
	assert_status(revoke_client_check(f->client, &q, &a), REVOKE_OK);
	assert_status(revoke_reader_check(f->reader, &q, &r), REVOKE_OK);
	assert_answer("reader", &q, &r, &a);
	assert_int_equal(a.verdict, REVOKE_VALID);
}

/*
 * Random checks, each asked of the socket, the reader and the socket
 * again while the writer writes: the model's verdict and version from all
 * three, and staleness s1 <= r <= s2 + 1. Then one pipelined call of
 * N_MANY, every subject's version, and every id the writer wrote.
 */
static void
test_reader_agrees_with_socket(void **state)
{
	fixture *f = *state;
	unsigned seen[REVOKE_REVOKED_NOT_BEFORE + 1] = { 0 }, done = 0;
	uint64_t end, t0;
	probe *p = &f->probes[0];

	fixture_up(f, 1);
	writer_start(&f->w, f->c.node[0].admin, 1);
	t0 = cluster_now_ms();
	end = t0 + PHASE_MS;
	for (; done < N_CHECKS && cluster_now_ms() < end; done++) {
		revoke_answer s1, r, s2;

		probe_make(&f->rng, &f->m, p);
		assert_status(revoke_client_check(f->client, &p->q, &s1),
		    REVOKE_OK);
		assert_status(revoke_reader_check(f->reader, &p->q, &r),
		    REVOKE_OK);
		assert_status(revoke_client_check(f->client, &p->q, &s2),
		    REVOKE_OK);
		assert_answer("socket", &p->q, &s1, &p->want);
		assert_answer("reader", &p->q, &r, &s1);
		assert_answer("socket again", &p->q, &s2, &s1);
		assert_staleness_order(s1.staleness_ms, r.staleness_ms,
		    s2.staleness_ms);
		seen[s1.verdict]++;
	}
	print_message("%u checks in %" PRIu64 " ms: VALID %u, REVOKED_TOKEN "
	              "%u, REVOKED_SESSION %u, STALE_VERSION %u, "
	              "REVOKED_NOT_BEFORE %u\n",
	    done, cluster_now_ms() - t0, seen[0], seen[1], seen[2], seen[3],
	    seen[4]);
	assert_true(done >= N_CHECKS / 5);
	for (unsigned v = 0; v <= REVOKE_REVOKED_NOT_BEFORE; v++)
		assert_true(seen[v] > 0);

	for (size_t i = 0; i < N_MANY; i++)
		probe_make(&f->rng, &f->m, &f->probes[i]);
	many_agree(f, N_MANY);

	for (unsigned i = 0; i < N_SUB; i++)
		versions_agree(f, f->m.sub[i].id.b, f->m.sub[i].id.len,
		    f->m.sub[i].version, f->m.sub[i].not_before_ms);
	versions_agree(f, "never-a-subject", 0, 0, 0);
	validation_agrees(f);
	big_call_agrees(f);

	writer_finish(f);
	writer_writes_agree(f);
}

/* ------------------------------------------------------------------------ */
/* Threads sharing a reader                                                 */
/* ------------------------------------------------------------------------ */

/*
 * N_THREADS threads share one reader while the writer writes: every
 * answer the model's, staleness never going back within a thread.
 */
static void
test_reader_shared_by_threads(void **state)
{
	fixture *f = *state;

	fixture_up(f, 2);
	writer_start(&f->w, f->c.node[0].admin, 2);
	run_checkers(f, N_THREADS, THREAD_CHECKS, THREAD_MS);
	writer_finish(f);
	writer_writes_agree(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reader_agrees_with_socket,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_shared_by_threads,
		    setup, teardown),
	};

	seed_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
