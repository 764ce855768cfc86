/*
 * run.c: a run from start to end: setting up the world, the event loop
 * and its dispatch, the fault schedule, and tearing everything down.
 */
#include "sim/sim.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ------------------------------------------------------------------------ */
/* Small services                                                           */
/* ------------------------------------------------------------------------ */

void
sim_at(sim *s, uint64_t at, sim_event_type type, unsigned a, unsigned b,
    uint64_t token)
{
	sim_event ev = { 0 };

	ev.time = at < s->now ? s->now : at;
	ev.type = type;
	ev.a = a;
	ev.b = b;
	ev.token = token;
	if (sim_sched_push(&s->q, &ev) != REVOKD_OK)
		sim_fail(s, REVOKD_ENOMEM);
}

void
sim_trace(const sim *s, const char *fmt, ...)
{
	va_list ap;

	if (!s->cfg.trace)
		return;
	fprintf(stderr, "%10.6f ", (double)s->now / 1e6);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void
sim_fail(sim *s, revokd_err err)
{
	if (s->fatal == REVOKD_OK)
		s->fatal = err;
}

/* ------------------------------------------------------------------------ */
/* Faults                                                                   */
/* ------------------------------------------------------------------------ */

static void
sim__healed(sim *s)
{
	s->had_heal = true;
	s->last_heal_us = s->now;
}

static void
sim__restart(sim *s, sim_node *n)
{
	revokd_err err;

	if (n->alive || !n->started)
		return;
	if ((err = sim_node_start(n)) != REVOKD_OK)
		sim_fail(s, err);
}

static void
sim__heal_all(sim *s)
{
	for (unsigned i = 0; i < s->n; i++) {
		for (unsigned j = 0; j < s->n; j++)
			s->link[i][j].cut = 0;
		s->node[i].crashes = 0;
		sim__restart(s, &s->node[i]);
	}
	s->loss = s->dup = s->reorder = s->drop = 0;
	sim__healed(s);
}

static void
sim__join(sim *s, sim_node *n)
{
	revokd_err err;

	if (n->started)
		return;
	s->joiner = n->idx;
	s->join_at_us = s->now;
	if ((err = sim_node_start(n)) != REVOKD_OK)
		sim_fail(s, err);
}

static const char *const sim__fault_names[] = {
	[SIM_FAULT_CUT] = "cut",
	[SIM_FAULT_UNCUT] = "uncut",
	[SIM_FAULT_CRASH] = "crash",
	[SIM_FAULT_RESTART] = "restart",
	[SIM_FAULT_JOIN] = "join",
	[SIM_FAULT_LOSS] = "loss",
	[SIM_FAULT_HOSTILE] = "hostile",
	[SIM_FAULT_HEAL_ALL] = "heal-all",
};

static void
sim__fault(sim *s, const sim_fault *f)
{
	sim_node *n = &s->node[f->a];

	sim_trace(s, "fault %s %s %s p=%g dup=%g reorder=%g drop=%g",
	    sim__fault_names[f->type], n->name, s->node[f->b].name, f->p,
	    f->dup, f->reorder, f->drop);
	switch (f->type) {
	case SIM_FAULT_CUT:
		s->link[f->a][f->b].cut++;
		break;
	case SIM_FAULT_UNCUT:
		if (s->link[f->a][f->b].cut > 0)
			s->link[f->a][f->b].cut--;
		sim__healed(s);
		break;
	case SIM_FAULT_CRASH:
		if (n->crashes++ == 0)
			sim_node_crash(n);
		break;
	case SIM_FAULT_RESTART:
		if (n->crashes > 0 && --n->crashes == 0)
			sim__restart(s, n);
		sim__healed(s);
		break;
	case SIM_FAULT_JOIN:
		sim__join(s, n);
		break;
	case SIM_FAULT_LOSS:
		s->loss = f->p;
		if (f->p == 0)
			sim__healed(s);
		break;
	case SIM_FAULT_HOSTILE:
		s->dup = f->dup;
		s->reorder = f->reorder;
		s->drop = f->drop;
		break;
	case SIM_FAULT_HEAL_ALL:
		sim__heal_all(s);
		break;
	}
}

/* repair_diff_bytes: how the two sides differ when the partition heals. */
static void
sim__measure(sim *s)
{
	sim_node *a = &s->node[s->cfg.measure_a],
	         *b = &s->node[s->cfg.measure_b];
	uint64_t count, bytes;
	revokd_err err;

	if (!a->alive || !b->alive)
		return;
	if ((err = sim_store_diff(a->store, b->store, &count, &bytes)) !=
	    REVOKD_OK) {
		sim_fail(s, err);
		return;
	}
	s->repair_diff_bytes = bytes;
}

/* ------------------------------------------------------------------------ */
/* The loop                                                                 */
/* ------------------------------------------------------------------------ */

static void
sim__dispatch(sim *s, sim_event *ev)
{
	switch (ev->type) {
	case SIM_EV_TICK:
		sim_node_on_tick(&s->node[ev->a], ev->token);
		break;
	case SIM_EV_SEND_DONE:
		sim_net_on_send_done(s, ev);
		break;
	case SIM_EV_DELIVER:
		sim_net_on_deliver(s, ev);
		break;
	case SIM_EV_LATE:
		sim_net_on_late(s, ev);
		break;
	case SIM_EV_DIAL:
		sim_conn_on_dial(s, ev);
		break;
	case SIM_EV_HANDSHAKE:
		sim_conn_on_handshake(s, ev);
		break;
	case SIM_EV_TIMEOUT:
		sim_conn_on_timeout(s, ev);
		break;
	case SIM_EV_OP:
		sim_workload_on_op(s, ev);
		break;
	case SIM_EV_BURST:
		sim_workload_on_burst(s, ev);
		break;
	case SIM_EV_DIFF_OP:
		sim_workload_on_diff(s, ev);
		break;
	case SIM_EV_FAULT:
		sim__fault(s, &s->cfg.faults[ev->a]);
		break;
	case SIM_EV_STALE_CHECK:
		sim_check_staleness(s);
		sim_at(s, s->now + SIM_STALE_CHECK_US, SIM_EV_STALE_CHECK, 0, 0,
		    0);
		break;
	case SIM_EV_CONV_CHECK:
		sim_check_convergence(s);
		sim_at(s, s->now + SIM_CONV_CHECK_US, SIM_EV_CONV_CHECK, 0, 0,
		    0);
		break;
	case SIM_EV_MEASURE:
		sim__measure(s);
		break;
	}
}

/* The run ended without convergence: say how far apart the stores are. */
static void
sim__not_converged(sim *s)
{
	uint64_t count, bytes;

	for (unsigned i = 1; i < s->n; i++) {
		if (!s->node[0].alive || !s->node[i].alive) {
			sim_violation(s, "not_converged t=%.3fs: %s is down",
			    (double)s->now / 1e6,
			    s->node[s->node[0].alive ? i : 0].name);
			return;
		}
		if (sim_store_diff(s->node[0].store, s->node[i].store, &count,
		        &bytes) != REVOKD_OK ||
		    count == 0)
			continue;
		sim_violation(s,
		    "not_converged t=%.3fs: %s and %s differ in %llu "
		    "entries",
		    (double)s->now / 1e6, s->node[0].name, s->node[i].name,
		    (unsigned long long)count);
	}
}

/* Counters the engines keep, from the nodes still running. */
static void
sim__collect(sim *s)
{
	for (unsigned i = 0; i < s->n; i++) {
		engine_stats st;

		if (s->node[i].eng == NULL)
			continue;
		engine_get_stats(s->node[i].eng, &st);
		s->stats.pruned += st.pruned;
	}
}

revokd_err
sim_run(sim *s)
{
	sim_event ev;

	while (!s->done && s->fatal == REVOKD_OK && sim_sched_pop(&s->q, &ev)) {
		if (ev.time > s->end_limit_us) {
			free(ev.data);
			s->now = s->end_limit_us;
			break;
		}
		s->now = ev.time;
		if (++s->stats.events > SIM_MAX_EVENTS) {
			free(ev.data);
			sim_violation(s,
			    "event_limit t=%.3fs: more than %llu "
			    "events",
			    (double)s->now / 1e6,
			    (unsigned long long)SIM_MAX_EVENTS);
			break;
		}
		sim__dispatch(s, &ev);
		free(ev.data);
	}
	if (s->fatal != REVOKD_OK)
		return s->fatal;
	if (!s->converged && !s->done)
		sim__not_converged(s);
	sim_check_final(s);
	sim__collect(s);
	return s->fatal;
}

/* ------------------------------------------------------------------------ */
/* Setup and teardown                                                       */
/* ------------------------------------------------------------------------ */

static revokd_err
sim__dirs(sim *s)
{
	const char *base = s->cfg.dir ? s->cfg.dir : getenv("TMPDIR");

	if (asprintf(&s->dir, "%s/revokd-sim.XXXXXX", base ? base : "/tmp") <
	    0) {
		s->dir = NULL;
		return REVOKD_ENOMEM;
	}
	if (mkdtemp(s->dir) == NULL) {
		free(s->dir);
		s->dir = NULL;
		return revokd_err_from_errno(errno);
	}
	for (unsigned i = 0; i < s->n; i++) {
		if (asprintf(&s->node[i].dir, "%s/n%u", s->dir, i) < 0) {
			s->node[i].dir = NULL;
			return REVOKD_ENOMEM;
		}
		if (mkdir(s->node[i].dir, 0700) != 0)
			return revokd_err_from_errno(errno);
	}
	return REVOKD_OK;
}

/* Preload the first node that starts, copy to the others starting. */
static revokd_err
sim__preload(sim *s)
{
	const char *copies[SIM_MAX_NODES];
	size_t n = 0;
	int first = -1;

	for (unsigned i = 0; i < s->n; i++) {
		if (s->cfg.joins_late[i])
			continue;
		if (first < 0)
			first = (int)i;
		else
			copies[n++] = s->node[i].dir;
	}
	if (first < 0)
		return REVOKD_OK;
	s->preloaded = s->cfg.entries;
	return sim_store_preload(s->node[first].dir, copies, n, s->cfg.entries,
	    s->cfg.seed, s->n);
}

/* The first events: checks, the measurement, the faults. */
static void
sim__schedule(sim *s)
{
	sim_at(s, SIM_STALE_CHECK_US, SIM_EV_STALE_CHECK, 0, 0, 0);
	sim_at(s, s->cfg.workload_end_us, SIM_EV_CONV_CHECK, 0, 0, 0);
	/* Before the faults: the heal at the same instant comes after. */
	if (s->cfg.measure)
		sim_at(s, s->cfg.measure_at_us, SIM_EV_MEASURE, 0, 0, 0);
	for (size_t i = 0; i < s->cfg.n_faults; i++)
		sim_at(s, s->cfg.faults[i].at_us, SIM_EV_FAULT, (unsigned)i, 0,
		    0);
}

static revokd_err
sim__setup(sim *s)
{
	revokd_err err;

	for (unsigned i = 0; i < s->n; i++)
		sim_node_init(s, i);
	if ((err = sim__dirs(s)) != REVOKD_OK ||
	    (s->cfg.entries > 0 && (err = sim__preload(s)) != REVOKD_OK))
		return err;
	sim_net_init(s);
	if ((err = sim_conn_init(s)) != REVOKD_OK)
		return err;
	sim_workload_init(s);
	sim__schedule(s);
	for (unsigned i = 0; i < s->n; i++)
		if (!s->cfg.joins_late[i] &&
		    (err = sim_node_start(&s->node[i])) != REVOKD_OK)
			return err;
	return s->fatal;
}

/* The largest difference between two clocks during a run, seconds, up. */
static int64_t
sim__skew_spread_s(const sim_config *c)
{
	int64_t lo = 0, hi = 0, drift = 0;

	for (unsigned i = 0; i < c->regions; i++) {
		lo = c->skew_us[i] < lo ? c->skew_us[i] : lo;
		hi = c->skew_us[i] > hi ? c->skew_us[i] : hi;
		drift = llabs(c->drift_ppm[i]) > drift ? llabs(c->drift_ppm[i])
		                                       : drift;
	}
	/* Drift over the longest run: an hour plus the settle limit. */
	return (hi - lo + 2 * drift * 4000 + (int64_t)SIM_S - 1) /
	       (int64_t)SIM_S;
}

revokd_err
sim_new(const sim_config *c, sim **out)
{
	sim *s;
	revokd_err err;

	if (c->regions < 2 || c->regions > SIM_REGIONS ||
	    c->n_faults > SIM_FAULTS_MAX)
		return REVOKD_EINVAL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return REVOKD_ENOMEM;
	s->cfg = *c;
	s->n = c->regions;
	if (c->signal_slot != NULL)
		*c->signal_slot = s;
	s->loss = c->loss > 0 ? c->loss : 0;
	s->end_limit_us = c->workload_end_us + c->settle_us;
	s->leeway_s = SIM_PRUNE_LEEWAY_S + sim__skew_spread_s(c);
	sim_sched_init(&s->q);
	revokd_rng_seed(&s->net_rng, c->seed ^ 0x6e6574776f726bull);
	revokd_rng_seed(&s->conn_rng, c->seed ^ 0x636f6e6e656374ull);
	if ((err = sim__setup(s)) != REVOKD_OK) {
		sim_free(s);
		return err;
	}
	*out = s;
	return REVOKD_OK;
}

void
sim_free(sim *s)
{
	if (s == NULL)
		return;
	if (s->cfg.signal_slot != NULL)
		*s->cfg.signal_slot = NULL;
	for (unsigned i = 0; i < s->n; i++)
		sim_node_stop(&s->node[i]);
	sim_net_free(s);
	sim_sched_free(&s->q);
	sim_oracle_free(&s->oracle);
	sim_workload_free(&s->work);
	sim_rmdir(s->dir);
	for (unsigned i = 0; i < s->n; i++)
		free(s->node[i].dir);
	free(s->dir);
	free(s);
}
