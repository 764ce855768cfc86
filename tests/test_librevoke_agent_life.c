/*
 * test_librevoke_agent_life.c: librevoke against a real revokd
 * (bench/cluster.h) through the agent's life. The socket client and the
 * direct reader across restarts of the agent and a hang (SIGSTOP): the
 * client says it cannot reach it, the reader answers meanwhile, and both
 * give the answers of a model of what was imported once it is back. A
 * closed reader must leave no slot in LMDB's reader table; the reader must
 * follow the store when it grows past its map while threads check through
 * it; an agent that never had a watermark must not be reported fresher by
 * the reader than by the socket. The differential checks under writes and
 * threads are in test_librevoke_agent.c.
 *
 * The fixture, the model and the checker threads are in
 * librevoke_agent_fixture.c. The seed is printed; REVOKD_TEST_SEED=n runs
 * the same again.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <lmdb.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "librevoke_agent_fixture.h"

/* Checks. */
#define N_SAMPLE 500 /* checked around restarts */
#define QUICK_MS 300 /* the timeout of a client facing a hung agent */

/* ------------------------------------------------------------------------ */
/* Agent restarts                                                           */
/* ------------------------------------------------------------------------ */

static bool
is_unreachable(revoke_status st)
{
	return st == REVOKE_E_CONNECT || st == REVOKE_E_CLOSED;
}

/*
 * Node 0 stopped with SIGSTOP: a client with a short timeout says so in
 * about that time (the reader answers meanwhile); after SIGCONT its next
 * call works on a new connection.
 */
static void
hung_agent(fixture *f)
{
	revoke_client_options o = { .timeout_ms = QUICK_MS };
	uint64_t t0, took, staleness = 0;
	revoke_answer a;

	assert_status(revoke_client_open(f->c.node[0].query, &o, &f->quick),
	    REVOKE_OK);
	assert_status(revoke_client_check(f->quick, &f->probes[0].q, &a),
	    REVOKE_OK);
	assert_int_equal(kill(f->c.node[0].pid, SIGSTOP), 0);
	t0 = cluster_now_ms();
	assert_status(revoke_client_check(f->quick, &f->probes[0].q, &a),
	    REVOKE_E_TIMEOUT);
	took = cluster_now_ms() - t0;
	reader_agrees(f, N_SAMPLE, &staleness);
	assert_int_equal(kill(f->c.node[0].pid, SIGCONT), 0);
	print_message("hung agent: the client timed out after %" PRIu64 " ms\n",
	    took);
	assert_true(took + 5 >= QUICK_MS && took < 10 * QUICK_MS);
	assert_status(revoke_client_check(f->quick, &f->probes[0].q, &a),
	    REVOKE_OK);
	assert_answer("socket", &f->probes[0].q, &a, &f->probes[0].want);
	many_agree(f, N_SAMPLE);
}

/*
 * With the client and the reader open, node 0 is stopped and started
 * again, twice. While it is down the client says it cannot reach it and
 * the reader still answers; once it is back the client's next call works:
 * after a failed call (it reconnects), and after none (the first call
 * finds its connection dead and retries on a new one).
 */
static void
test_agent_restart(void **state)
{
	fixture *f = *state;
	uint64_t staleness = 0, v;
	revoke_answer a;

	fixture_up(f, 3);
	for (size_t i = 0; i < N_SAMPLE; i++)
		probe_make(&f->rng, &f->m, &f->probes[i]);
	many_agree(f, N_SAMPLE);
	reader_agrees(f, N_SAMPLE, &staleness);

	assert_clean_exit(cluster_stop(&f->c, 0));
	for (int k = 0; k < 3; k++) {
		revoke_status st =
		    revoke_client_check(f->client, &f->probes[k].q, &a);

		if (!is_unreachable(st))
			fail_msg("check with the agent down: %s",
			    revoke_strerror(st));
	}
	assert_true(is_unreachable(revoke_client_check_many(f->client,
	    f->queries, N_SAMPLE, f->answers)));
	assert_true(is_unreachable(
	    revoke_client_version(f->client, "x", 0, &v, NULL, NULL)));
	reader_agrees(f, N_SAMPLE, &staleness);

	start(&f->c, 0);
	wait_ready(&f->c, 0);
	reader_agrees(f, N_SAMPLE, &staleness);
	assert_status(revoke_client_check(f->client, &f->probes[0].q, &a),
	    REVOKE_OK);
	assert_answer("socket", &f->probes[0].q, &a, &f->probes[0].want);
	many_agree(f, N_SAMPLE);

	hung_agent(f);

	/* Again, with no call while it is down. */
	assert_clean_exit(cluster_stop(&f->c, 0));
	reader_agrees(f, N_SAMPLE, &staleness);
	start(&f->c, 0);
	wait_ready(&f->c, 0);
	many_agree(f, N_SAMPLE);
	reader_agrees(f, N_SAMPLE, &staleness);
}

/* ------------------------------------------------------------------------ */
/* Reader slots                                                             */
/* ------------------------------------------------------------------------ */

typedef struct slot_count {
	pid_t pid;
	int n;      /* slots of pid */
	int pinned; /* of them, holding a snapshot (txnid not "-") */
} slot_count;

/* One line of mdb_reader_list: "pid thread txnid", or a header. */
static int
slot_line(const char *msg, void *ctx)
{
	slot_count *sc = ctx;
	char txnid[32];
	int pid;

	if (sscanf(msg, "%d %*x %31s", &pid, txnid) != 2 || pid != (int)sc->pid)
		return 0;
	sc->n++;
	sc->pinned += strcmp(txnid, "-") != 0;
	return 0;
}

/*
 * The slots of LMDB's reader table at dir that pid holds, counted by a
 * child process (a process may not open an environment twice): -1 when
 * the child could not tell. *pinned: how many hold a snapshot.
 */
static int
count_reader_slots(const char *dir, pid_t pid, int *pinned)
{
	pid_t child = fork();
	int status;

	if (child < 0)
		return -1;
	if (child == 0) {
		slot_count sc = { pid, 0, 0 };
		MDB_env *env;
		int rc = mdb_env_create(&env);

		if (rc == 0)
			rc = mdb_env_open(env, dir, MDB_RDONLY | MDB_NOTLS,
			    0600);
		if (rc == 0)
			rc = mdb_reader_list(env, slot_line, &sc);
		if (rc != 0)
			_exit(255);
		_exit((sc.n > 100 ? 100 : sc.n) | (sc.pinned ? 128 : 0));
	}
	if (waitpid(child, &status, 0) != child || !WIFEXITED(status) ||
	    WEXITSTATUS(status) == 255)
		return -1;
	*pinned = WEXITSTATUS(status) >= 128;
	return WEXITSTATUS(status) & 127;
}

/* Slots of this process at f's data dir; none may pin a snapshot. */
static int
own_slots(fixture *f)
{
	int pinned = 0, n = count_reader_slots(f->data_dir, getpid(), &pinned);

	assert_true(n >= 0);
	if (pinned)
		fail_msg("an idle reader holds a snapshot in a slot");
	return n;
}

/*
 * Slots of this process in the reader table: some while a reader is open
 * and has been used from several threads, none once it is closed; again
 * after a second open and close. An idle reader's slots hold no
 * snapshot (one would keep the agent from reusing pages).
 */
static void
test_reader_close_frees_slots(void **state)
{
	fixture *f = *state;
	uint64_t staleness = 0;
	int open_slots, n;

	fixture_up(f, 4);
	print_message("reader opened, unused: %d slots of this process\n",
	    own_slots(f));
	run_checkers(f, 4, 500, 0);
	open_slots = own_slots(f);
	print_message("reader open: %d slots of this process\n", open_slots);
	assert_true(open_slots >= 1);

	revoke_reader_close(f->reader);
	f->reader = NULL;
	assert_int_equal(own_slots(f), 0);

	assert_status(revoke_reader_open(f->data_dir, f->secret, &f->reader),
	    REVOKE_OK);
	for (size_t i = 0; i < N_SAMPLE; i++)
		probe_make(&f->rng, &f->m, &f->probes[i]);
	reader_agrees(f, N_SAMPLE, &staleness);
	n = own_slots(f);
	print_message("reader open again: %d slots of this process\n", n);
	assert_true(n >= 1);
	revoke_reader_close(f->reader);
	f->reader = NULL;
	assert_int_equal(own_slots(f), 0);
}

/* ------------------------------------------------------------------------ */
/* Map growth                                                               */
/* ------------------------------------------------------------------------ */

#define SMALL_MAP 4194304   /* the agent's map at first */
#define LARGE_MAP 268435456 /* once restarted */
#define GROWTH_IMPORTS 8    /* Imports of 10,000 jtis, past the small map */
#define GROWTH_ITEMS 10000

/* Node i's config with its map_size `from` changed to `to`. */
static void
set_map_size(cluster *c, unsigned i, unsigned long from, unsigned long to)
{
	char text[16384], old[64], *at;
	FILE *fp = fopen(c->node[i].conf, "r");
	size_t n;

	assert_non_null(fp);
	n = fread(text, 1, sizeof(text) - 1, fp);
	fclose(fp);
	text[n] = '\0';
	snprintf(old, sizeof(old), "map_size = %lu\n", from);
	assert_non_null(at = strstr(text, old));
	fp = fopen(c->node[i].conf, "w");
	assert_non_null(fp);
	fprintf(fp, "%.*smap_size = %lu\n%s", (int)(at - text), text, to,
	    at + strlen(old));
	assert_int_equal(fclose(fp), 0);
}

/* GROWTH_ITEMS new jtis "g<n>" revoked at node 0 in one Import. */
static void
import_growth(fixture *f, unsigned first)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Import imp = REVOKD__LOCAL__IMPORT__INIT;
	Revokd__Local__ImportItem *v = calloc(GROWTH_ITEMS, sizeof(*v));
	Revokd__Local__ImportItem **p = calloc(GROWTH_ITEMS, sizeof(*p));
	char(*id)[16] = calloc(GROWTH_ITEMS, sizeof(*id));
	Revokd__Local__Response *resp = NULL;
	revokd_err err;

	assert_true(v != NULL && p != NULL && id != NULL);
	for (unsigned k = 0; k < GROWTH_ITEMS; k++) {
		revokd__local__import_item__init(&v[k]);
		snprintf(id[k], sizeof(id[k]), "g%u", first + k);
		v[k].kind = "jti";
		v[k].id.data = (uint8_t *)id[k];
		v[k].id.len = strlen(id[k]);
		p[k] = &v[k];
	}
	imp.items = p;
	imp.n_items = GROWTH_ITEMS;
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_IMPORT;
	req.import = &imp;
	err = cluster_call(f->c.node[0].admin, &req, &resp);
	free(v);
	free(p);
	free(id);
	assert_int_equal(err, REVOKD_OK);
	if (resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_ERROR)
		print_error("import refused: %s\n", resp->error->message);
	assert_int_equal(resp->body_case, REVOKD__LOCAL__RESPONSE__BODY_WRITE);
	revokd__local__response__free_unpacked(resp, NULL);
}

/*
 * The reader maps the store at the size the agent had when it opened it.
 * The agent is restarted with a larger map and the data grows past the
 * reader's map while N_THREADS threads check through it: a snapshot then
 * cannot begin until the reader adopts the new size, which it must do
 * without a wrong answer or a failure in any thread; then what was
 * written past the old map is found.
 */
static void
test_reader_follows_map_growth(void **state)
{
	fixture *f = *state;
	cluster_options o = { .extra_limits = "map_size = 4194304" };
	char path[600];
	struct stat st;
	uint64_t t0;
	size_t n = 0;

	revokd_rng_seed(&f->rng, test_seed + 6);
	assert_int_equal(cluster_new(1, &o, &f->c), REVOKD_OK);
	start(&f->c, 0);
	wait_ready(&f->c, 0);
	preload(f);
	open_librevoke(f);
	for (size_t i = 0; i < N_SAMPLE; i++)
		probe_make(&f->rng, &f->m, &f->probes[i]);
	many_agree(f, N_SAMPLE);

	assert_clean_exit(cluster_stop(&f->c, 0));
	set_map_size(&f->c, 0, SMALL_MAP, LARGE_MAP);
	start(&f->c, 0);
	wait_ready(&f->c, 0);

	t0 = cluster_now_ms();
	atomic_store(&f->hold, true);
	checkers_start(f, N_THREADS, 2000, 0);
	for (unsigned i = 0; i < GROWTH_IMPORTS; i++)
		import_growth(f, i * GROWTH_ITEMS);
	snprintf(path, sizeof(path), "%s/data.mdb", f->data_dir);
	assert_int_equal(stat(path, &st), 0);
	print_message("store: %lld bytes, the reader opened it at a map of "
	              "%d\n",
	    (long long)st.st_size, SMALL_MAP);
	assert_true(st.st_size > SMALL_MAP);
	for (unsigned i = 0; i < GROWTH_IMPORTS * GROWTH_ITEMS; i += 41) {
		char id[16];

		snprintf(id, sizeof(id), "g%u", i);
		probe_written(&f->probes[n++], 'j', id);
		if (n == N_MANY) {
			many_agree(f, n);
			n = 0;
		}
	}
	if (n > 0)
		many_agree(f, n);
	checkers_finish(f, N_THREADS, t0);
}

/* ------------------------------------------------------------------------ */
/* Staleness before any watermark                                           */
/* ------------------------------------------------------------------------ */

/*
 * An agent that has never had a watermark from its peer (never connected
 * to it) reports the staleness of knowing nothing: the time since the
 * epoch. The reader must not report fresher than that.
 */
static void
test_reader_staleness_without_watermarks(void **state)
{
	fixture *f = *state;
	revoke_query q = { .jti = "any" };
	revoke_answer s1, r, s2;

	assert_int_equal(cluster_new(2, NULL, &f->c), REVOKD_OK);
	start(&f->c, 0);
	wait_ready(&f->c, 0);
	usleep(FREEZE_MS * 1000); /* several of its save intervals */
	open_librevoke(f);
	assert_status(revoke_client_check(f->client, &q, &s1), REVOKE_OK);
	assert_status(revoke_reader_check(f->reader, &q, &r), REVOKE_OK);
	assert_status(revoke_client_check(f->client, &q, &s2), REVOKE_OK);
	print_message("no watermark yet: socket %" PRIu64 " ms, reader %" PRIu64
	              " ms, socket %" PRIu64 " ms\n",
	    s1.staleness_ms, r.staleness_ms, s2.staleness_ms);
	assert_staleness_order(s1.staleness_ms, r.staleness_ms,
	    s2.staleness_ms);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_agent_restart, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reader_close_frees_slots,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_reader_follows_map_growth,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_reader_staleness_without_watermarks, setup, teardown),
	};

	seed_init();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
