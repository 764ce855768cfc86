/*
 * repair.c: the "repair" suite: repair after a partition, in the
 * simulator (sim/sim.h), against the goal of DESIGN.md: bytes <= 3x the
 * raw size of the differing entries + 64 KiB, at n = 1M, d = 1,000.
 *
 * The run is figure 3 of docs/BENCHMARKS.md, linked in rather than run as
 * revokd-sim: partition-heal, 2 regions, 30 s of virtual time, --entries
 * preloaded everywhere, 1,000 revocations made apart, seed --seed. It is
 * deterministic, so one run is enough: --rounds does not apply.
 *
 *   repair_bytes          bytes of reconciliation (Recon) frames
 *   raw_diff_bytes        key + value of every entry the two sides held
 *                         differently when the partition healed
 *   repair_vs_raw         the ratio of the two
 *   goal_bytes, goal_met  3x raw + 64 KiB, and whether repair stayed in it
 *   convergence_ms        virtual time from the heal to identical stores
 *                         (includes redial and the 3-RTT handshake)
 *   setup_wall_s          wall time to make the stores (the preload)
 *   run_wall_s            wall time of the simulated run itself
 */
#include <stdio.h>

#include "bench/bench.h"
#include "sim/sim.h"

/* The partition-heal run of docs/BENCHMARKS.md (figure 3). */
#define REPAIR_REGIONS 2
#define REPAIR_DURATION_US (30 * SIM_S)
#define REPAIR_DIFF 1000

/* The goal's slack: 64 KiB on top of 3x the raw difference. */
#define REPAIR_SLACK_BYTES 65536

static const char *const B = "repair";

/* The scenario's configuration from the options; false on bad usage. */
static bool
repair_config(const bench_opts *o, sim_config *c)
{
	char err[128];

	sim_config_default(c);
	snprintf(c->scenario, sizeof(c->scenario), "partition-heal");
	c->regions = REPAIR_REGIONS;
	c->duration_us = REPAIR_DURATION_US;
	c->entries = o->entries;
	c->diff = REPAIR_DIFF;
	c->seed = o->seed;
	c->dir = o->dir;
	if (sim_scenario_setup(c, err, sizeof(err)) != REVOKD_OK) {
		fprintf(stderr, "revokd-bench: repair: %s\n", err);
		return false;
	}
	return true;
}

/* A run that failed to converge, or broke an invariant, measures nothing. */
static bool
repair_valid(const sim *s)
{
	if (s->oracle.violations > 0)
		fprintf(stderr,
		    "revokd-bench: repair: %llu invariant violations, "
		    "first: %s\n",
		    (unsigned long long)s->oracle.violations,
		    s->oracle.n_list > 0 ? s->oracle.list[0] : "?");
	else if (!s->converged || !s->had_heal ||
	         s->converged_at_us < s->last_heal_us)
		fprintf(stderr, "revokd-bench: repair: the run did not "
		                "converge after the heal\n");
	else if (s->repair_diff_bytes == 0)
		fprintf(stderr, "revokd-bench: repair: the sides did not "
		                "differ at the heal\n");
	else
		return true;
	return false;
}

static void
repair_report(const bench_opts *o, const sim *s, double setup_s, double run_s)
{
	double raw = (double)s->repair_diff_bytes;
	double repair = (double)s->stats.bytes.repair;
	double goal = 3 * raw + REPAIR_SLACK_BYTES;

	bench_emit(o, B, "entries", (double)o->entries, "entries");
	bench_emit(o, B, "diff", REPAIR_DIFF, "entries");
	bench_emit(o, B, "repair_bytes", repair, "B");
	bench_emit(o, B, "raw_diff_bytes", raw, "B");
	bench_emit(o, B, "repair_vs_raw", repair / raw, "ratio");
	bench_emit(o, B, "goal_bytes", goal, "B");
	bench_emit(o, B, "goal_met", repair <= goal, "bool");
	bench_emit(o, B, "convergence_ms",
	    (double)(s->converged_at_us - s->last_heal_us) / 1000, "ms");
	bench_emit(o, B, "setup_wall_s", setup_s, "s");
	bench_emit(o, B, "run_wall_s", run_s, "s");
}

int
bench_repair(const bench_opts *o)
{
	sim_config c;
	sim *s = NULL;
	revokd_err err;
	double t0, t1;
	int rc = 1;

	if (!repair_config(o, &c))
		return 2;
	t0 = bench_now();
	if ((err = sim_new(&c, &s)) != REVOKD_OK) {
		fprintf(stderr, "revokd-bench: repair: setting up: %s\n",
		    revokd_strerror(err));
		return 1;
	}
	t1 = bench_now();
	if ((err = sim_run(s)) != REVOKD_OK)
		fprintf(stderr,
		    "revokd-bench: repair: the simulation failed: "
		    "%s\n",
		    revokd_strerror(err));
	else if (repair_valid(s)) {
		repair_report(o, s, t1 - t0, bench_now() - t1);
		rc = 0;
	}
	sim_free(s);
	return rc;
}
