/*
 * workload.c: what the regions do. Per region a Poisson stream of
 * operations: 80% token revocations, 8% session revocations, 5% user
 * revocations (version bumps, sometimes with not-before), 5% restores of a
 * token revoked earlier (by any region), 2% re-revocations of a restored
 * one. Plus a burst, and the revocations made on both sides of a partition
 * for --diff. Each operation goes through engine_local, and the oracle logs
 * the state it produced.
 */
#include "sim/sim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Operations per burst event (a burst arrives in groups). */
#define SIM__BURST_GROUP 10

/* A restore needs this much life left in the token (seconds). */
#define SIM__RESTORE_MARGIN_S 10

/* ------------------------------------------------------------------------ */
/* Pools                                                                    */
/* ------------------------------------------------------------------------ */

static void
sim__pool_remove(sim *s, uint32_t rec)
{
	sim_workload *w = &s->work;
	sim_keyrec *k = &s->oracle.keys[rec];
	unsigned p = k->pool - 1;
	uint32_t last;

	if (k->pool == 0)
		return;
	last = w->pool[p][--w->n_pool[p]];
	w->pool[p][k->pool_pos] = last;
	s->oracle.keys[last].pool_pos = k->pool_pos;
	k->pool = 0;
	k->pool_pos = -1;
}

static void
sim__pool_add(sim *s, uint32_t rec, unsigned p)
{
	sim_workload *w = &s->work;
	sim_keyrec *k = &s->oracle.keys[rec];

	sim__pool_remove(s, rec);
	if (w->n_pool[p] == w->cap_pool[p]) {
		size_t cap = w->cap_pool[p] ? w->cap_pool[p] * 2 : 256;
		uint32_t *v = realloc(w->pool[p], cap * sizeof(*v));

		if (v == NULL) {
			sim_fail(s, REVOKD_ENOMEM);
			return;
		}
		w->pool[p] = v;
		w->cap_pool[p] = cap;
	}
	k->pool = (uint8_t)(p + 1);
	k->pool_pos = (int32_t)w->n_pool[p];
	w->pool[p][w->n_pool[p]++] = rec;
}

/* A token from pool p with life left at n; -1 when there is none. */
static int64_t
sim__pool_pick(sim *s, sim_node *n, unsigned p)
{
	int64_t now_s = (int64_t)(sim_node_now(n) / SIM_S);

	for (int tries = 0; tries < 4 && s->work.n_pool[p] > 0; tries++) {
		size_t i = revokd_rng_below(&n->work_rng, s->work.n_pool[p]);
		uint32_t rec = s->work.pool[p][i];

		if (s->oracle.keys[rec].exp > now_s + SIM__RESTORE_MARGIN_S)
			return rec;
		sim__pool_remove(s, rec);
	}
	return -1;
}

void
sim_workload_free(sim_workload *w)
{
	free(w->pool[0]);
	free(w->pool[1]);
	memset(w, 0, sizeof(*w));
}

/* ------------------------------------------------------------------------ */
/* Issuing                                                                  */
/* ------------------------------------------------------------------------ */

/* Check that op i did at its origin what it says; a violation if not. */
static void
sim__check_effect(sim *s, sim_node *n, const engine_op *op,
    const crdt_entry *after, uint64_t pre_version)
{
	const char *what = NULL;
	char hex[9];

	if (crdt_key_cmp(&after->key, &op->key) != 0 || after->kind != op->kind)
		what = "wrong key or kind";
	else if (op->type == ENGINE_OP_REVOKE &&
	         !sim_ref_revoked(&after->u.token))
		what = "revoke left the token valid";
	else if (op->type == ENGINE_OP_RESTORE &&
	         sim_ref_revoked(&after->u.token))
		what = "restore left the token revoked";
	else if (op->type == ENGINE_OP_REVOKE_USER &&
	         (sim_ref_version(&after->u.subject) <= pre_version ||
	             after->u.subject.not_before_ms < op->not_before_ms))
		what = "user revocation did not raise the version";
	if (what == NULL)
		return;
	sim_key_hex(&op->key, hex);
	sim_violation(s, "local_effect node=%s key=%s t=%.3fs: %s", n->name,
	    hex, (double)s->now / 1e6, what);
}

/* Issue ops[0..k) (keys recs[]) at n in one engine_local call. */
static void
sim__issue(sim *s, sim_node *n, const engine_op *ops, const uint32_t *recs,
    size_t k)
{
	crdt_entry after[SIM__BURST_GROUP];
	uint64_t pre[SIM__BURST_GROUP];
	revokd_err err;

	for (size_t i = 0; i < k; i++)
		pre[i] = s->oracle.keys[recs[i]].version[n->idx];
	memset(after, 0, sizeof(after));
	err = sim_node_local_ops(n, ops, k, after);
	if (err != REVOKD_OK) {
		s->stats.local_errors++;
		sim_violation(s, "local_error node=%s t=%.3fs: %s", n->name,
		    (double)s->now / 1e6, revokd_err_name(err));
		return;
	}
	for (size_t i = 0; i < k; i++) {
		s->stats.ops++;
		sim__check_effect(s, n, &ops[i], &after[i], pre[i]);
		sim_oracle_op(s, n->idx, ops[i].type, recs[i], &after[i]);
		if (ops[i].type == ENGINE_OP_REVOKE)
			sim__pool_add(s, recs[i], 0);
		else if (ops[i].type == ENGINE_OP_RESTORE)
			sim__pool_add(s, recs[i], 1);
	}
}

/* A revocation of a fresh token (or session) key drawn from rng. */
static bool
sim__fresh_revoke(sim *s, sim_node *n, revokd_rng *rng, crdt_kind kind,
    bool long_lived, engine_op *op, uint32_t *rec)
{
	int64_t now_s = (int64_t)(sim_node_now(n) / SIM_S);
	int64_t rec_id;

	memset(op, 0, sizeof(*op));
	op->type = ENGINE_OP_REVOKE;
	op->kind = kind;
	revokd_rng_bytes(rng, op->key.b, CRDT_KEY_LEN);
	if (s->cfg.short_lifetimes && !long_lived)
		op->exp = now_s + 5 + (int64_t)revokd_rng_below(rng, 16);
	else
		op->exp = now_s + 60 + (int64_t)revokd_rng_below(rng, 3541);
	op->reason = (uint8_t)revokd_rng_below(rng, 4);
	if ((rec_id = sim_oracle_key(s, &op->key, kind, op->exp)) < 0)
		return false;
	*rec = (uint32_t)rec_id;
	return true;
}

/* Restore (pool 0) or re-revoke (pool 1) a known token. */
static bool
sim__again(sim *s, sim_node *n, unsigned pool, engine_op *op, uint32_t *rec)
{
	int64_t pick = sim__pool_pick(s, n, pool);
	const sim_keyrec *k;

	if (pick < 0)
		return false;
	k = &s->oracle.keys[pick];
	memset(op, 0, sizeof(*op));
	op->type = pool == 0 ? ENGINE_OP_RESTORE : ENGINE_OP_REVOKE;
	op->key = k->key;
	op->kind = k->kind;
	op->exp = k->exp;
	op->reason = (uint8_t)revokd_rng_below(&n->work_rng, 4);
	*rec = (uint32_t)pick;
	return true;
}

/* A user revocation: bump, and sometimes not-before = now. */
static bool
sim__revoke_user(sim *s, sim_node *n, engine_op *op, uint32_t *rec)
{
	size_t u = revokd_rng_below(&n->work_rng, SIM_USERS);
	int64_t rec_id;

	memset(op, 0, sizeof(*op));
	op->type = ENGINE_OP_REVOKE_USER;
	op->kind = CRDT_KIND_SUB;
	op->key = s->work.users[u];
	op->bump = true;
	if (revokd_rng_below(&n->work_rng, 10) < 3)
		op->not_before_ms = sim_node_now(n) / SIM_MS;
	if ((rec_id = sim_oracle_key(s, &op->key, CRDT_KIND_SUB, 0)) < 0)
		return false;
	*rec = (uint32_t)rec_id;
	return true;
}

/* One random operation at n. */
static void
sim__random_op(sim *s, sim_node *n)
{
	double u = revokd_rng_unit(&n->work_rng);
	engine_op op = { 0 };
	uint32_t rec;
	bool ok;

	if (u < 0.80)
		ok = sim__fresh_revoke(s, n, &n->work_rng, CRDT_KIND_JTI, false,
		    &op, &rec);
	else if (u < 0.88)
		ok = sim__fresh_revoke(s, n, &n->work_rng, CRDT_KIND_SID, false,
		    &op, &rec);
	else if (u < 0.93)
		ok = sim__revoke_user(s, n, &op, &rec);
	else
		ok = sim__again(s, n, u < 0.98 ? 0 : 1, &op, &rec) ||
		     sim__fresh_revoke(s, n, &n->work_rng, CRDT_KIND_JTI, false,
		         &op, &rec);
	if (ok)
		sim__issue(s, n, &op, &rec, 1);
}

/* ------------------------------------------------------------------------ */
/* Events                                                                   */
/* ------------------------------------------------------------------------ */

/* Exponential inter-arrival time at rate ops/s, µs (at least 1). */
static uint64_t
sim__interarrival(revokd_rng *rng, double rate)
{
	double u = revokd_rng_unit(rng);
	double us = -log(1.0 - u) / rate * 1e6;

	return us < 1 ? 1 : us > 1e12 ? (uint64_t)1e12 : (uint64_t)us;
}

void
sim_workload_init(sim *s)
{
	sim_workload *w = &s->work;

	memset(w, 0, sizeof(*w));
	revokd_rng_seed(&w->rng, s->cfg.seed ^ 0x776b6c64ull);
	for (size_t i = 0; i < SIM_USERS; i++)
		revokd_rng_bytes(&w->rng, w->users[i].b, CRDT_KEY_LEN);
	if (s->cfg.rate > 0)
		for (unsigned i = 0; i < s->n; i++)
			sim_at(s,
			    s->cfg.workload_start_us +
			        sim__interarrival(&s->node[i].work_rng,
			            s->cfg.rate),
			    SIM_EV_OP, i, 0, 0);
	if (s->cfg.burst && s->cfg.burst_ops > 0)
		sim_at(s, s->cfg.burst_at_us, SIM_EV_BURST, s->cfg.burst_node,
		    s->cfg.burst_ops, 0);
	if (s->cfg.diff_ops && s->cfg.diff > 0) {
		sim_at(s, s->cfg.diff_start_us, SIM_EV_DIFF_OP, 0,
		    (unsigned)(s->cfg.diff / 2), 0);
		sim_at(s, s->cfg.diff_start_us, SIM_EV_DIFF_OP, 1,
		    (unsigned)(s->cfg.diff - s->cfg.diff / 2), 0);
	}
}

void
sim_workload_on_op(sim *s, const sim_event *ev)
{
	sim_node *n = &s->node[ev->a];

	if (s->now >= s->cfg.workload_end_us)
		return;
	if (n->alive)
		sim__random_op(s, n);
	sim_at(s, s->now + sim__interarrival(&n->work_rng, s->cfg.rate),
	    SIM_EV_OP, ev->a, 0, 0);
}

void
sim_workload_on_burst(sim *s, const sim_event *ev)
{
	sim_node *n = &s->node[ev->a];
	unsigned k = ev->b < SIM__BURST_GROUP ? ev->b : SIM__BURST_GROUP;
	unsigned groups =
	    (s->cfg.burst_ops + SIM__BURST_GROUP - 1) / SIM__BURST_GROUP;
	engine_op ops[SIM__BURST_GROUP] = { 0 };
	uint32_t recs[SIM__BURST_GROUP];

	for (unsigned i = 0; i < k; i++)
		if (!sim__fresh_revoke(s, n, &s->work.rng, CRDT_KIND_JTI, true,
		        &ops[i], &recs[i]))
			return;
	if (n->alive)
		sim__issue(s, n, ops, recs, k);
	if (ev->b > k)
		sim_at(s, s->now + SIM_S / groups, SIM_EV_BURST, ev->a,
		    ev->b - k, 0);
}

void
sim_workload_on_diff(sim *s, const sim_event *ev)
{
	unsigned side = ev->a, members[SIM_MAX_NODES], m = 0;
	uint64_t total =
	    side == 0 ? s->cfg.diff / 2 : s->cfg.diff - s->cfg.diff / 2;
	engine_op op = { 0 };
	uint32_t rec;
	sim_node *n;

	for (unsigned i = 0; i < s->n; i++)
		if (s->cfg.side[i] == side)
			members[m++] = i;
	if (m == 0 || ev->b == 0)
		return;
	n = &s->node[members[ev->b % m]];
	if (n->alive && sim__fresh_revoke(s, n, &s->work.rng, CRDT_KIND_JTI,
	                    true, &op, &rec))
		sim__issue(s, n, &op, &rec, 1);
	if (ev->b > 1)
		sim_at(s,
		    s->now + (s->cfg.diff_end_us - s->cfg.diff_start_us) /
		                 (total ? total : 1),
		    SIM_EV_DIFF_OP, side, ev->b - 1, 0);
}
