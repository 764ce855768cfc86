/*
 * node.c: a simulated region: its clock, its store and engine, and the
 * wrappers through which every call into the engine goes (each one
 * reschedules the engine's next tick afterwards).
 */
#include "sim/sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Clock                                                                    */
/* ------------------------------------------------------------------------ */

uint64_t
sim_node_local(const sim_node *n, uint64_t real_us)
{
	int64_t r = (int64_t)real_us;

	return (uint64_t)((int64_t)SIM_EPOCH_US + r + n->skew_us +
	                  r * n->drift_ppm / 1000000);
}

uint64_t
sim_node_real(const sim_node *n, uint64_t local_us)
{
	int64_t x, r;

	if (local_us <= sim_node_local(n, 0))
		return 0;
	x = (int64_t)(local_us - SIM_EPOCH_US) - n->skew_us;
	r = x * 1000000 / (1000000 + n->drift_ppm);
	/* Integer rounding leaves r within a step or two of the answer. */
	for (int i = 0; i < 8 && sim_node_local(n, (uint64_t)r) < local_us; i++)
		r++;
	for (int i = 0;
	     i < 8 && r > 0 && sim_node_local(n, (uint64_t)r - 1) >= local_us;
	     i++)
		r--;
	return (uint64_t)r;
}

uint64_t
sim_node_now(const sim_node *n)
{
	return sim_node_local(n, n->sim->now);
}

/* ------------------------------------------------------------------------ */
/* Engine callbacks                                                         */
/* ------------------------------------------------------------------------ */

static void
sim__send(void *arg, unsigned peer, wire_peer_type type, uint8_t *frame,
    size_t len)
{
	sim_node *n = arg;

	if (peer >= n->n_peers) {
		free(frame);
		return;
	}
	sim_net_send(n->sim, n->idx, n->peer_node[peer], type, frame, len);
}

static void
sim__peer_event(sim *s, engine_peer_event ev)
{
	switch (ev) {
	case ENGINE_PEER_RECON_DONE:
		s->stats.recon_done++;
		break;
	case ENGINE_PEER_RECON_ABORT:
		s->stats.recon_aborted++;
		break;
	case ENGINE_PEER_RECON_LIMITED:
		s->stats.recon_limited++;
		break;
	case ENGINE_PEER_OVERFLOW:
		s->stats.overflows++;
		break;
	default:
		break;
	}
}

static void
sim__notice(void *arg, const engine_notice *notice)
{
	sim_node *n = arg;

	switch (notice->type) {
	case ENGINE_NOTICE_CHANGED:
		sim_oracle_changed(n->sim, n->idx, notice->entries,
		    notice->n_entries);
		break;
	case ENGINE_NOTICE_PEER:
		sim__peer_event(n->sim, notice->event);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------------ */
/* Ticks                                                                    */
/* ------------------------------------------------------------------------ */

/* Schedule the engine's next tick where it wants it (at most 1 s away). */
static void
sim__retick(sim_node *n)
{
	sim *s = n->sim;
	uint64_t local, want, at;

	if (!n->alive)
		return;
	local = sim_node_now(n);
	want = engine_next_tick(n->eng, local);
	if (want > local + SIM_S)
		want = local + SIM_S;
	at = want <= local ? s->now + 1 : sim_node_real(n, want);
	/* Never at the same instant: an engine asking "now" again and again
	 * must not stall virtual time. */
	if (at <= s->now)
		at = s->now + 1;
	if (at == n->tick_at)
		return;
	n->tick_at = at;
	sim_at(s, at, SIM_EV_TICK, n->idx, 0, ++n->tick_token);
}

void
sim_node_on_tick(sim_node *n, uint64_t token)
{
	if (!n->alive || token != n->tick_token)
		return;
	n->tick_at = UINT64_MAX;
	engine_tick(n->eng, sim_node_now(n));
	sim__retick(n);
}

/* ------------------------------------------------------------------------ */
/* Lifecycle                                                                */
/* ------------------------------------------------------------------------ */

void
sim_node_init(sim *s, unsigned idx)
{
	sim_node *n = &s->node[idx];

	memset(n, 0, sizeof(*n));
	n->sim = s;
	n->idx = idx;
	n->region_id = (uint16_t)(idx + 1);
	n->name = sim_region_name(idx);
	n->skew_us = s->cfg.skew_us[idx];
	n->drift_ppm = s->cfg.drift_ppm[idx];
	n->tick_at = UINT64_MAX;
	for (unsigned j = 0; j < s->n; j++) {
		engine_peer_config *p = &n->peers[n->n_peers];

		if (j == idx)
			continue;
		p->region_id = (uint16_t)(j + 1);
		snprintf(p->name, sizeof(p->name), "%s", sim_region_name(j));
		n->peer_node[n->n_peers] = j;
		n->node_peer[j] = n->n_peers++;
	}
	revokd_rng_seed(&n->work_rng, s->cfg.seed ^ (0x776f726b0000ull + idx));
}

/* The engine seed of node idx in its incarnation-th life. */
static uint64_t
sim__engine_seed(const sim *s, unsigned idx, uint32_t incarnation)
{
	revokd_rng r;

	revokd_rng_seed(&r, s->cfg.seed ^ 0x656e67696e65ull ^
	                        (uint64_t)idx << 40 ^
	                        (uint64_t)incarnation << 20);
	return revokd_rng_next(&r);
}

revokd_err
sim_node_start(sim_node *n)
{
	sim *s = n->sim;
	engine_config c = { 0 };
	engine_io io = { n, sim__send, sim__notice };
	revokd_err err;

	if ((err = sim_store_open(n->dir, s->leeway_s, &n->store)) != REVOKD_OK)
		return err;
	if ((err = crdt_reader_new(n->store, &n->reader)) != REVOKD_OK) {
		crdt_store_close(n->store);
		n->store = NULL;
		return err;
	}
	c.region_id = n->region_id;
	c.region = n->name;
	c.store = n->store;
	c.n_peers = n->n_peers;
	c.peers = n->peers;
	c.seed = sim__engine_seed(s, n->idx, n->incarnation);
	c.prune_interval_us = SIM_PRUNE_INTERVAL_US;
	if ((err = engine_new(&c, &io, sim_node_now(n), &n->eng)) !=
	    REVOKD_OK) {
		crdt_reader_free(n->reader);
		n->reader = NULL;
		crdt_store_close(n->store);
		n->store = NULL;
		return err;
	}
	sim_trace(s, "node %s starts (clock %+.3fs, %+d ppm)", n->name,
	    (double)n->skew_us / 1e6, n->drift_ppm);
	n->alive = true;
	n->started = true;
	n->incarnation++;
	n->tick_at = UINT64_MAX;
	sim__retick(n);
	sim_conn_node_started(s, n->idx);
	return REVOKD_OK;
}

void
sim_node_stop(sim_node *n)
{
	engine_free(n->eng);
	n->eng = NULL;
	crdt_reader_free(n->reader);
	n->reader = NULL;
	crdt_store_close(n->store);
	n->store = NULL;
	n->alive = false;
	n->tick_token++;
	n->tick_at = UINT64_MAX;
}

void
sim_node_crash(sim_node *n)
{
	engine_stats st;

	if (!n->alive)
		return;
	engine_get_stats(n->eng, &st);
	n->sim->stats.pruned += st.pruned;
	n->sim->stats.crashes++;
	sim_trace(n->sim, "node %s crashes", n->name);
	sim_node_stop(n);
	sim_conn_node_crashed(n->sim, n->idx);
}

/* ------------------------------------------------------------------------ */
/* Engine calls                                                             */
/* ------------------------------------------------------------------------ */

void
sim_node_peer_up(sim_node *n, unsigned other)
{
	if (!n->alive)
		return;
	engine_peer_up(n->eng, n->node_peer[other], sim_node_now(n));
	sim__retick(n);
}

void
sim_node_peer_down(sim_node *n, unsigned other)
{
	if (!n->alive)
		return;
	engine_peer_down(n->eng, n->node_peer[other], sim_node_now(n));
	sim__retick(n);
}

void
sim_node_send_done(sim_node *n, unsigned other)
{
	if (!n->alive)
		return;
	engine_send_done(n->eng, n->node_peer[other], sim_node_now(n));
	sim__retick(n);
}

revokd_err
sim_node_receive(sim_node *n, unsigned other, const uint8_t *frame, size_t len)
{
	revokd_err err;

	if (!n->alive)
		return REVOKD_OK;
	err = engine_receive(n->eng, n->node_peer[other], frame, len,
	    sim_node_now(n));
	sim__retick(n);
	return err;
}

revokd_err
sim_node_local_ops(sim_node *n, const engine_op *ops, size_t k,
    crdt_entry *after)
{
	revokd_err err;

	err = engine_local(n->eng, ops, k, sim_node_now(n), NULL, after);
	sim__retick(n);
	return err;
}
