/*
 * test_sim.c: the simulator's own parts, driven through the revokd_sim
 * library: the event queue's order, clock models and their inversion, the
 * latency matrix, the oracle's reference lattice (against crdt/'s), store
 * diffs, scenario setup, and whole runs: a clean one, and the same
 * arguments twice giving the same report byte for byte.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sim/sim.h"
#include "testutil.h"

/* ------------------------------------------------------------------------ */
/* Event queue                                                              */
/* ------------------------------------------------------------------------ */

/* Events come out by time, and in insertion order at equal times. */
static void
test_sched_order(void **state)
{
	sim_sched q;
	sim_event ev = { 0 }, out;
	revokd_rng rng;
	uint64_t last_time = 0, last_seq = 0;
	size_t n = 0;

	(void)state;
	sim_sched_init(&q);
	revokd_rng_seed(&rng, 42);
	for (unsigned i = 0; i < 5000; i++) {
		ev.time = revokd_rng_below(&rng, 100); /* many ties */
		ev.a = i;
		assert_int_equal(sim_sched_push(&q, &ev), REVOKD_OK);
	}
	while (sim_sched_pop(&q, &out)) {
		if (n > 0) {
			assert_true(out.time >= last_time);
			if (out.time == last_time)
				assert_true(out.seq > last_seq);
		}
		/* seq is the insertion index here, and a is too. */
		assert_int_equal(out.seq, out.a);
		last_time = out.time;
		last_seq = out.seq;
		n++;
	}
	assert_int_equal(n, 5000);
	sim_sched_free(&q);
}

/* Freeing a queue frees the data its events own. */
static void
test_sched_free_data(void **state)
{
	sim_sched q;
	sim_event ev = { 0 };

	(void)state;
	sim_sched_init(&q);
	for (int i = 0; i < 10; i++) {
		ev.time = (uint64_t)i;
		ev.data = malloc(16);
		assert_non_null(ev.data);
		assert_int_equal(sim_sched_push(&q, &ev), REVOKD_OK);
	}
	sim_sched_free(&q); /* ASan reports a leak if it did not */
}

/* ------------------------------------------------------------------------ */
/* Clocks                                                                   */
/* ------------------------------------------------------------------------ */

static void
check_clock(int64_t skew_us, int32_t drift_ppm)
{
	sim_node n;

	memset(&n, 0, sizeof(n));
	n.skew_us = skew_us;
	n.drift_ppm = drift_ppm;
	assert_int_equal(sim_node_local(&n, 0), SIM_EPOCH_US + skew_us);
	for (uint64_t real = 0; real < 400 * SIM_S; real += 999983) {
		uint64_t local = sim_node_local(&n, real);
		uint64_t back = sim_node_real(&n, local);

		/* The first real time reading at least local. */
		assert_true(sim_node_local(&n, back) >= local);
		assert_true(back == 0 || sim_node_local(&n, back - 1) < local);
		assert_true(back <= real);
		/* Monotonic. */
		assert_true(sim_node_local(&n, real + 1) >= local);
	}
}

static void
test_clock_inversion(void **state)
{
	(void)state;
	check_clock(0, 0);
	check_clock(5 * (int64_t)SIM_S, 0);
	check_clock(-5 * (int64_t)SIM_S, 0);
	check_clock(3 * (int64_t)SIM_S, 100);
	check_clock(-4 * (int64_t)SIM_S, -100);
	check_clock(1234567, -37);
}

/* Drift: after 100 s, +100 ppm is 10 ms ahead. */
static void
test_clock_drift(void **state)
{
	sim_node n;

	(void)state;
	memset(&n, 0, sizeof(n));
	n.drift_ppm = 100;
	assert_int_equal(sim_node_local(&n, 100 * SIM_S) - SIM_EPOCH_US,
	    100 * SIM_S + 10 * SIM_MS);
	n.drift_ppm = -100;
	assert_int_equal(sim_node_local(&n, 100 * SIM_S) - SIM_EPOCH_US,
	    100 * SIM_S - 10 * SIM_MS);
}

/* ------------------------------------------------------------------------ */
/* Latency                                                                  */
/* ------------------------------------------------------------------------ */

static void
test_latency_matrix(void **state)
{
	(void)state;
	assert_string_equal(sim_region_name(0), "us-east-1");
	assert_string_equal(sim_region_name(6), "sa-east-1");
	for (unsigned a = 0; a < SIM_REGIONS; a++) {
		assert_int_equal(sim_one_way_us(a, a), 0);
		for (unsigned b = 0; b < SIM_REGIONS; b++) {
			uint64_t d = sim_one_way_us(a, b);

			assert_int_equal(d, sim_one_way_us(b, a));
			if (a != b) {
				/* 10 to 200 ms one way between regions. */
				assert_true(d >= 10 * SIM_MS);
				assert_true(d <= 200 * SIM_MS);
			}
		}
	}
	/* Spot checks against the published round trips. */
	assert_int_equal(sim_one_way_us(0, 1), 32500);  /* use1-usw2 65 */
	assert_int_equal(sim_one_way_us(2, 3), 12500);  /* euw1-euc1 25 */
	assert_int_equal(sim_one_way_us(4, 6), 165000); /* apse1-sae1 330 */
}

/* ------------------------------------------------------------------------ */
/* Reference lattice                                                        */
/* ------------------------------------------------------------------------ */

/* The oracle's join agrees with crdt_entry_merge on random entries. */
static void
test_ref_merge_agrees(void **state)
{
	revokd_rng rng;

	(void)state;
	revokd_rng_seed(&rng, 7);
	for (int i = 0; i < 20000; i++) {
		crdt_entry a, b, ref, lib;
		bool changed_lib, changed_ref;

		tu_random_entry(&rng, 8, 1700000000, &a);
		tu_random_entry(&rng, 8, 1700000000, &b);
		if (a.kind != b.kind)
			continue;
		b.key = a.key;
		ref = lib = a;
		assert_int_equal(crdt_entry_merge(&lib, &b, &changed_lib),
		    REVOKD_OK);
		changed_ref = sim_ref_merge(&ref, &b);
		assert_true(crdt_entry_equal(&ref, &lib));
		assert_int_equal(changed_ref, changed_lib);
		/* The join absorbs both sides; a side absorbs the join only
		 * when nothing changed. */
		assert_true(sim_ref_absorbs(&ref, &a));
		assert_true(sim_ref_absorbs(&ref, &b));
		assert_int_equal(sim_ref_absorbs(&a, &b), !changed_ref);
	}
}

static void
test_ref_token_semantics(void **state)
{
	crdt_token t = { 0 };

	(void)state;
	assert_false(sim_ref_revoked(&t));
	t.revoked_at = CRDT_HLC_AT(10);
	assert_true(sim_ref_revoked(&t));
	t.restored_at = CRDT_HLC_AT(10); /* a tie: revoke wins */
	assert_true(sim_ref_revoked(&t));
	t.restored_at = CRDT_HLC_AT(10) + 1;
	assert_false(sim_ref_revoked(&t));
}

static void
test_percentile(void **state)
{
	uint64_t v[100];

	(void)state;
	for (int i = 0; i < 100; i++)
		v[i] = (uint64_t)i + 1;
	assert_int_equal(sim_percentile(v, 100, 50), 50);
	assert_int_equal(sim_percentile(v, 100, 99), 99);
	assert_int_equal(sim_percentile(v, 100, 100), 100);
	assert_int_equal(sim_percentile(v, 1, 99), 1);
	assert_int_equal(sim_percentile(v, 0, 99), 0);
}

/* ------------------------------------------------------------------------ */
/* Stores                                                                   */
/* ------------------------------------------------------------------------ */

/* The diff counts both sides' differing entries and their raw sizes. */
static void
test_store_diff(void **state)
{
	char *dir = tu_tmpdir(), a_dir[4096], b_dir[4096];
	crdt_store *a, *b;
	crdt_entry e[3];
	crdt_apply_stats st;
	uint64_t count, bytes, raw;
	uint8_t buf[CRDT_VALUE_MAX];
	const char *copies[1];
	revokd_rng rng;

	(void)state;
	snprintf(a_dir, sizeof(a_dir), "%s/a", dir);
	snprintf(b_dir, sizeof(b_dir), "%s/b", dir);
	assert_int_equal(mkdir(a_dir, 0700), 0);
	assert_int_equal(mkdir(b_dir, 0700), 0);
	copies[0] = b_dir;
	assert_int_equal(sim_store_preload(a_dir, copies, 1, 2500, 9, 3),
	    REVOKD_OK);
	assert_int_equal(sim_store_open(a_dir, 5, &a), REVOKD_OK);
	assert_int_equal(sim_store_open(b_dir, 5, &b), REVOKD_OK);
	assert_int_equal(crdt_store_count(a), 2500);
	assert_int_equal(crdt_store_count(b), 2500);
	assert_int_equal(sim_store_diff(a, b, &count, &bytes), REVOKD_OK);
	assert_int_equal(count, 0);
	assert_int_equal(bytes, 0);

	/* One entry only in a, one only in b. */
	revokd_rng_seed(&rng, 3);
	for (int i = 0; i < 3; i++) {
		memset(&e[i], 0, sizeof(e[i]));
		revokd_rng_bytes(&rng, e[i].key.b, CRDT_KEY_LEN);
		e[i].kind = CRDT_KIND_JTI;
		e[i].u.token.exp = 1800000000;
		e[i].u.token.revoked_at = CRDT_HLC_AT(1700000000000ull);
	}
	assert_int_equal(crdt_store_apply(a, &e[0], 1, 1700000000, NULL, &st),
	    REVOKD_OK);
	assert_int_equal(crdt_store_apply(b, &e[1], 1, 1700000000, NULL, &st),
	    REVOKD_OK);
	/* And one held differently. */
	assert_int_equal(crdt_store_apply(a, &e[2], 1, 1700000000, NULL, &st),
	    REVOKD_OK);
	raw = 4 * CRDT_KEY_LEN + crdt_value_encode(&e[0], buf) +
	      crdt_value_encode(&e[1], buf) + crdt_value_encode(&e[2], buf);
	e[2].u.token.restored_at = CRDT_HLC_AT(1700000000001ull);
	raw += crdt_value_encode(&e[2], buf);
	assert_int_equal(crdt_store_apply(b, &e[2], 1, 1700000000, NULL, &st),
	    REVOKD_OK);
	assert_int_equal(sim_store_diff(a, b, &count, &bytes), REVOKD_OK);
	assert_int_equal(count, 4);
	assert_int_equal(bytes, raw);
	crdt_store_close(a);
	crdt_store_close(b);
	tu_rmdir(dir);
}

/* ------------------------------------------------------------------------ */
/* Scenarios                                                                */
/* ------------------------------------------------------------------------ */

static revokd_err
setup(sim_config *c, const char *name, unsigned regions)
{
	char err[128];

	sim_config_default(c);
	snprintf(c->scenario, sizeof(c->scenario), "%s", name);
	c->regions = regions;
	return sim_scenario_setup(c, err, sizeof(err));
}

static void
test_scenario_setup(void **state)
{
	sim_config c;

	(void)state;
	for (size_t i = 0; sim_scenarios[i] != NULL; i++)
		assert_int_equal(setup(&c, sim_scenarios[i], 3), REVOKD_OK);
	assert_int_equal(setup(&c, "nonsense", 3), REVOKD_EINVAL);
	assert_int_equal(setup(&c, "partial-partition", 2), REVOKD_EINVAL);
	assert_int_equal(setup(&c, "bootstrap", 2), REVOKD_EINVAL);
	assert_int_equal(setup(&c, "steady", 8), REVOKD_EINVAL);

	/* partition-heal: the halves are cut in the middle third. */
	assert_int_equal(setup(&c, "partition-heal", 3), REVOKD_OK);
	assert_int_equal(c.n_faults, 8); /* {0,1} x {2}, both ways, cut+heal */
	assert_int_equal(c.workload_end_us, 20 * SIM_S);
	assert_true(c.measure);

	/* loss defaults to 2%, and only for the loss scenario. */
	assert_int_equal(setup(&c, "loss", 3), REVOKD_OK);
	assert_true(c.loss > 0.0199 && c.loss < 0.0201);
	assert_int_equal(setup(&c, "steady", 3), REVOKD_OK);
	assert_true(c.loss == 0);
}

/* Chaos schedules are drawn from the seed alone, and always heal. */
static void
test_chaos_setup(void **state)
{
	(void)state;
	for (uint64_t seed = 0; seed < 200; seed++) {
		sim_config a, b;

		sim_config_default(&a);
		sim_config_default(&b);
		sim_chaos_setup(&a, seed, 40 * SIM_S);
		sim_chaos_setup(&b, seed, 40 * SIM_S);
		assert_memory_equal(&a, &b, sizeof(a));
		assert_true(a.regions >= 3 && a.regions <= 5);
		assert_true(
		    a.duration_us >= 20 * SIM_S && a.duration_us <= 40 * SIM_S);
		assert_true(a.n_faults > 0);
		assert_int_equal(a.faults[a.n_faults - 1].type,
		    SIM_FAULT_HEAL_ALL);
		assert_int_equal(a.faults[a.n_faults - 1].at_us,
		    a.workload_end_us);
		for (size_t i = 0; i < a.n_faults; i++)
			assert_true(a.faults[i].at_us <= a.workload_end_us);
	}
}

/* ------------------------------------------------------------------------ */
/* Whole runs                                                               */
/* ------------------------------------------------------------------------ */

/* Run scenario name and return its JSON report (caller frees). */
static char *
run(const char *name, unsigned regions, uint64_t seed, uint64_t seconds,
    uint64_t *violations, bool *converged)
{
	sim_config c;
	char err[128];
	sim *s;
	char *json;

	sim_config_default(&c);
	snprintf(c.scenario, sizeof(c.scenario), "%s", name);
	c.regions = regions;
	c.seed = seed;
	c.duration_us = seconds * SIM_S;
	assert_int_equal(sim_scenario_setup(&c, err, sizeof(err)), REVOKD_OK);
	assert_int_equal(sim_new(&c, &s), REVOKD_OK);
	assert_int_equal(sim_run(s), REVOKD_OK);
	json = sim_report_json(s);
	assert_non_null(json);
	*violations = s->oracle.violations;
	*converged = s->converged;
	sim_free(s);
	return json;
}

static void
test_run_clean(void **state)
{
	uint64_t violations;
	bool converged;
	char *json;

	(void)state;
	json = run("partition-heal", 3, 11, 9, &violations, &converged);
	assert_int_equal(violations, 0);
	assert_true(converged);
	assert_non_null(strstr(json, "\"scenario\": \"partition-heal\""));
	free(json);
}

/* The same arguments give the same report, byte for byte. */
static void
test_run_deterministic(void **state)
{
	uint64_t v1, v2, v3;
	bool c1, c2, c3;
	char *a, *b, *c;

	(void)state;
	a = run("drift", 3, 5, 8, &v1, &c1);
	b = run("drift", 3, 5, 8, &v2, &c2);
	c = run("drift", 3, 6, 8, &v3, &c3);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	free(a);
	free(b);
	free(c);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sched_order),
		cmocka_unit_test(test_sched_free_data),
		cmocka_unit_test(test_clock_inversion),
		cmocka_unit_test(test_clock_drift),
		cmocka_unit_test(test_latency_matrix),
		cmocka_unit_test(test_ref_merge_agrees),
		cmocka_unit_test(test_ref_token_semantics),
		cmocka_unit_test(test_percentile),
		cmocka_unit_test(test_store_diff),
		cmocka_unit_test(test_scenario_setup),
		cmocka_unit_test(test_chaos_setup),
		cmocka_unit_test(test_run_clean),
		cmocka_unit_test(test_run_deterministic),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
