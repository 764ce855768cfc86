/*
 * chaos.c: random fault schedules. Each is drawn from its seed alone:
 * 3-5 regions, a duration, a mix of partitions (full, partial, asymmetric,
 * flapping), crashes, loss, clock skew and drift, and with small
 * probability the hostile transport faults. Every fault is healed at 80%
 * of the duration; the workload stops there and the run must converge.
 */
#include "sim/sim.h"

#include <stdio.h>
#include <string.h>

/* A fault window: [start, end) inside [lo, hi), 1-10 s long. */
static void
sim__window(revokd_rng *r, uint64_t lo, uint64_t hi, uint64_t *start,
    uint64_t *end)
{
	uint64_t len = SIM_S + revokd_rng_below(r, 9 * SIM_S);

	*start = lo + revokd_rng_below(r, hi - lo);
	*end = *start + len < hi ? *start + len : hi;
}

/* Two different nodes. */
static void
sim__pair(revokd_rng *r, unsigned n, unsigned *a, unsigned *b)
{
	*a = (unsigned)revokd_rng_below(r, n);
	*b = (*a + 1 + (unsigned)revokd_rng_below(r, n - 1)) % n;
}

static void
sim__cut(sim_config *c, uint64_t from, uint64_t to, unsigned a, unsigned b)
{
	sim_fault_add(c, from, SIM_FAULT_CUT, a, b);
	sim_fault_add(c, to, SIM_FAULT_UNCUT, a, b);
}

static void
sim__full_partition(sim_config *c, revokd_rng *r, uint64_t from, uint64_t to)
{
	unsigned n = c->regions;
	unsigned mask = 1 + (unsigned)revokd_rng_below(r, (1u << n) - 2);

	for (unsigned i = 0; i < n; i++) {
		for (unsigned j = 0; j < n; j++) {
			if (i == j || !(mask >> i & 1) || (mask >> j & 1))
				continue;
			sim__cut(c, from, to, i, j);
			sim__cut(c, from, to, j, i);
		}
	}
}

static void
sim__flap(sim_config *c, revokd_rng *r, uint64_t from, uint64_t to)
{
	uint64_t period = SIM_S + revokd_rng_below(r, 2 * SIM_S);
	unsigned a, b;

	sim__pair(r, c->regions, &a, &b);
	for (uint64_t t = from; t < to; t += 2 * period) {
		uint64_t up = t + period < to ? t + period : to;

		sim__cut(c, t, up, a, b);
		sim__cut(c, t, up, b, a);
	}
}

/* One random fault in [lo, hi). */
static void
sim__random_fault(sim_config *c, revokd_rng *r, uint64_t lo, uint64_t hi)
{
	uint64_t from, to;
	unsigned a, b;

	sim__window(r, lo, hi, &from, &to);
	sim__pair(r, c->regions, &a, &b);
	switch (revokd_rng_below(r, 5)) {
	case 0:
		sim__full_partition(c, r, from, to);
		break;
	case 1:
		sim__cut(c, from, to, a, b);
		sim__cut(c, from, to, b, a);
		break;
	case 2:
		sim__cut(c, from, to, a, b);
		break;
	case 3:
		sim__flap(c, r, from, to);
		break;
	default:
		sim_fault_add(c, from, SIM_FAULT_CRASH, a, 0);
		sim_fault_add(c, to, SIM_FAULT_RESTART, a, 0);
		break;
	}
}

/* Loss, clocks and hostility for the whole fault window. */
static void
sim__ambient(sim_config *c, revokd_rng *r)
{
	if (revokd_rng_below(r, 2) == 0)
		c->loss = revokd_rng_unit(r) * 0.20;
	for (unsigned i = 0; i < c->regions; i++) {
		if (revokd_rng_below(r, 2) == 0)
			c->skew_us[i] =
			    (int64_t)revokd_rng_below(r, 10 * SIM_S + 1) -
			    (int64_t)(5 * SIM_S);
		if (revokd_rng_below(r, 3) == 0)
			c->drift_ppm[i] =
			    (int32_t)revokd_rng_below(r, 201) - 100;
	}
	c->short_lifetimes = revokd_rng_below(r, 2) == 0;
	if (revokd_rng_below(r, 3) == 0) {
		sim_fault *f;

		sim_fault_add(c, 0, SIM_FAULT_HOSTILE, 0, 0);
		f = &c->faults[c->n_faults - 1];
		f->dup = revokd_rng_unit(r) * 0.01;
		f->reorder = revokd_rng_unit(r) * 0.01;
		f->drop = revokd_rng_unit(r) * 0.01;
	}
}

void
sim_chaos_setup(sim_config *c, uint64_t seed, uint64_t max_us)
{
	revokd_rng r;
	uint64_t d, lo, hi;
	unsigned k;

	revokd_rng_seed(&r, seed ^ 0x6368616f73ull);
	snprintf(c->scenario, sizeof(c->scenario), "chaos");
	c->seed = seed;
	c->regions = 3 + (unsigned)revokd_rng_below(&r, 3);
	d = max_us / 2 + revokd_rng_below(&r, max_us / 2 + 1);
	c->duration_us = d;
	c->n_faults = 0;
	c->loss = 0;
	c->entries = c->diff = 0;
	memset(c->skew_us, 0, sizeof(c->skew_us));
	memset(c->drift_ppm, 0, sizeof(c->drift_ppm));
	memset(c->joins_late, 0, sizeof(c->joins_late));
	c->burst = c->diff_ops = c->measure = false;
	c->workload_start_us = SIM_WARMUP_US;
	sim__ambient(c, &r);
	lo = d / 10;
	hi = d * 8 / 10;
	k = 2 + (unsigned)revokd_rng_below(&r, 5);
	for (unsigned i = 0; i < k; i++)
		sim__random_fault(c, &r, lo, hi);
	sim_fault_add(c, hi, SIM_FAULT_HEAL_ALL, 0, 0);
	c->workload_end_us = hi;
}
