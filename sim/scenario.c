/*
 * scenario.c: the named scenarios: a workload and a fault schedule over
 * the run's duration D. Faults sit in the middle third; the workload stops
 * at the last heal (or at D when nothing heals), and the run goes on until
 * every store is identical.
 */
#include "sim/sim.h"

#include <stdio.h>
#include <string.h>

const char *const sim_scenarios[] = {
	"steady",
	"partition-heal",
	"partial-partition",
	"asymmetric",
	"flapping",
	"loss",
	"skew",
	"drift",
	"crash-restart",
	"bootstrap",
	"burst",
	NULL,
};

/* Flapping period, and the crash-restart outage. */
#define SIM__FLAP_US (2 * SIM_S)
#define SIM__OUTAGE_US (5 * SIM_S)

/* Defaults of the bootstrap and burst scenarios. */
#define SIM__BOOTSTRAP_ENTRIES 100000
#define SIM__BURST_OPS 10000

void
sim_config_default(sim_config *c)
{
	memset(c, 0, sizeof(*c));
	snprintf(c->scenario, sizeof(c->scenario), "steady");
	c->regions = 3;
	c->seed = 1;
	c->duration_us = 30 * SIM_S;
	c->loss = -1;
	c->rate = 20;
	c->settle_us = SIM_SETTLE_US;
}

void
sim_fault_add(sim_config *c, uint64_t at_us, sim_fault_type type, unsigned a,
    unsigned b)
{
	sim_fault *f;

	if (c->n_faults == SIM_FAULTS_MAX)
		return;
	f = &c->faults[c->n_faults++];
	memset(f, 0, sizeof(*f));
	f->at_us = at_us;
	f->type = type;
	f->a = a;
	f->b = b;
}

/* Cut (or heal) both directions between a and b. */
static void
sim__cut_both(sim_config *c, uint64_t at, sim_fault_type type, unsigned a,
    unsigned b)
{
	sim_fault_add(c, at, type, a, b);
	sim_fault_add(c, at, type, b, a);
}

/* Reset everything a scenario sets. */
static void
sim__clear(sim_config *c)
{
	memset(c->skew_us, 0, sizeof(c->skew_us));
	memset(c->drift_ppm, 0, sizeof(c->drift_ppm));
	memset(c->joins_late, 0, sizeof(c->joins_late));
	memset(c->side, 0, sizeof(c->side));
	c->short_lifetimes = false;
	c->n_faults = 0;
	c->burst = c->diff_ops = c->measure = false;
	c->workload_start_us = SIM_WARMUP_US;
	c->workload_end_us = c->duration_us;
}

static void
sim__partition_heal(sim_config *c)
{
	uint64_t d = c->duration_us, from = d / 3, to = 2 * d / 3;
	unsigned n = c->regions, half = (n + 1) / 2;

	for (unsigned i = 0; i < n; i++)
		c->side[i] = i < half ? 0 : 1;
	for (unsigned i = 0; i < half; i++) {
		for (unsigned j = half; j < n; j++) {
			sim__cut_both(c, from, SIM_FAULT_CUT, i, j);
			sim__cut_both(c, to, SIM_FAULT_UNCUT, i, j);
		}
	}
	c->workload_end_us = to;
	c->measure = true;
	c->measure_at_us = to;
	c->measure_a = 0;
	c->measure_b = n - 1;
	if (c->diff > 0) {
		c->diff_ops = true;
		c->rate = 0;
		c->diff_start_us = from;
		c->diff_end_us = from + (to - from) * 4 / 5;
	}
}

static void
sim__flapping(sim_config *c)
{
	uint64_t d = c->duration_us, t = d / 3, to = 2 * d / 3;

	for (int k = 0; k < 1000 && t < to; k++) {
		uint64_t up = t + SIM__FLAP_US < to ? t + SIM__FLAP_US : to;

		sim__cut_both(c, t, SIM_FAULT_CUT, 0, 1);
		sim__cut_both(c, up, SIM_FAULT_UNCUT, 0, 1);
		t = up + SIM__FLAP_US;
	}
	c->workload_end_us = to;
}

/* Clocks skewed by up to +-5 s, drifting by up to +-100 ppm. */
static void
sim__clocks(sim_config *c, bool drift)
{
	revokd_rng r;

	revokd_rng_seed(&r, c->seed ^ 0x636c6f636bull);
	for (unsigned i = 0; i < c->regions; i++) {
		c->skew_us[i] = (int64_t)revokd_rng_below(&r, 10 * SIM_S + 1) -
		                (int64_t)(5 * SIM_S);
		if (drift)
			c->drift_ppm[i] =
			    (int32_t)revokd_rng_below(&r, 201) - 100;
	}
	c->short_lifetimes = true;
}

static revokd_err
sim__bad(char *err, size_t err_len, const char *msg)
{
	snprintf(err, err_len, "%s", msg);
	return REVOKD_EINVAL;
}

/* Scenarios with a fault window in the middle third. */
static revokd_err
sim__middle(sim_config *c, char *err, size_t err_len)
{
	uint64_t d = c->duration_us, from = d / 3, to = 2 * d / 3;
	const char *name = c->scenario;

	if (strcmp(name, "partition-heal") == 0) {
		sim__partition_heal(c);
	} else if (strcmp(name, "partial-partition") == 0) {
		if (c->regions < 3)
			return sim__bad(err, err_len,
			    "partial-partition needs --regions 3 or more");
		sim__cut_both(c, from, SIM_FAULT_CUT, 0, 2);
		sim__cut_both(c, to, SIM_FAULT_UNCUT, 0, 2);
		c->workload_end_us = to;
	} else if (strcmp(name, "asymmetric") == 0) {
		sim_fault_add(c, from, SIM_FAULT_CUT, 0, 1);
		sim_fault_add(c, to, SIM_FAULT_UNCUT, 0, 1);
		c->workload_end_us = to;
	} else {
		sim__flapping(c);
	}
	return REVOKD_OK;
}

static revokd_err
sim__crash_restart(sim_config *c, char *err, size_t err_len)
{
	uint64_t mid = c->duration_us / 2;

	if (mid < SIM__OUTAGE_US / 2 + SIM_S)
		return sim__bad(err, err_len,
		    "crash-restart needs --duration 7 or more");
	sim_fault_add(c, mid - SIM__OUTAGE_US / 2, SIM_FAULT_CRASH, 1, 0);
	sim_fault_add(c, mid + SIM__OUTAGE_US / 2, SIM_FAULT_RESTART, 1, 0);
	c->workload_end_us = mid + SIM__OUTAGE_US / 2;
	return REVOKD_OK;
}

static revokd_err
sim__bootstrap(sim_config *c, char *err, size_t err_len)
{
	if (c->regions < 3)
		return sim__bad(err, err_len,
		    "bootstrap needs --regions 3 or more");
	if (c->entries == 0)
		c->entries = SIM__BOOTSTRAP_ENTRIES;
	c->joins_late[c->regions - 1] = true;
	sim_fault_add(c, c->duration_us / 3, SIM_FAULT_JOIN, c->regions - 1, 0);
	return REVOKD_OK;
}

revokd_err
sim_scenario_setup(sim_config *c, char *err, size_t err_len)
{
	const char *name = c->scenario;

	if (c->regions < 2 || c->regions > SIM_REGIONS)
		return sim__bad(err, err_len, "--regions must be 2 to 7");
	if (c->diff > 0 && strcmp(name, "partition-heal") != 0)
		return sim__bad(err, err_len,
		    "--diff needs --scenario partition-heal");
	sim__clear(c);
	if (c->loss < 0)
		c->loss = strcmp(name, "loss") == 0 ? 0.02 : 0;
	if (strcmp(name, "steady") == 0 || strcmp(name, "loss") == 0)
		return REVOKD_OK;
	if (strcmp(name, "partition-heal") == 0 ||
	    strcmp(name, "partial-partition") == 0 ||
	    strcmp(name, "asymmetric") == 0 || strcmp(name, "flapping") == 0)
		return sim__middle(c, err, err_len);
	if (strcmp(name, "skew") == 0 || strcmp(name, "drift") == 0) {
		sim__clocks(c, strcmp(name, "drift") == 0);
		return REVOKD_OK;
	}
	if (strcmp(name, "crash-restart") == 0)
		return sim__crash_restart(c, err, err_len);
	if (strcmp(name, "bootstrap") == 0)
		return sim__bootstrap(c, err, err_len);
	if (strcmp(name, "burst") == 0) {
		c->burst = true;
		c->burst_node = 0;
		c->burst_at_us = c->duration_us / 2;
		c->burst_ops = SIM__BURST_OPS;
		return REVOKD_OK;
	}
	snprintf(err, err_len, "unknown scenario '%s'", name);
	return REVOKD_EINVAL;
}
