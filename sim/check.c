/*
 * check.c: the invariant checks that look at the whole system: staleness
 * claims (periodic), convergence after the workload (periodic), and the
 * final audit of every store against the operation log.
 */
#include "sim/sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Staleness never under-states                                             */
/* ------------------------------------------------------------------------ */

/*
 * The oldest op of origin that node lacks, skipping those held, expired,
 * or held in its store without a notice (a node that was down when the op
 * was made and already had a state that wins gets none).
 */
static const sim_op *
sim__oldest_missing(sim *s, unsigned node, unsigned origin)
{
	sim_pending *p = &s->oracle.pending[node][origin];

	while (p->head < p->n) {
		sim_op *op = &s->oracle.ops[p->ops[p->head]];

		if (!(op->held & (1u << node)) &&
		    !sim_oracle_expired(s, &op->state) &&
		    !sim_oracle_store_holds(s, node, op))
			return op;
		p->head++;
	}
	return NULL;
}

/* For tokens: how long until (or since) exp at node, into buf. */
static const char *
sim__expiry_note(const sim *s, unsigned node, const crdt_entry *e, char *buf,
    size_t cap)
{
	int64_t now_s;

	if (!crdt_kind_is_token(e->kind))
		return "";
	now_s = (int64_t)(sim_node_local(&s->node[node], s->now) / SIM_S);
	snprintf(buf, cap, " exp=now%+llds",
	    (long long)(e->u.token.exp - now_s));
	return buf;
}

static void
sim__check_watermark(sim *s, unsigned x, unsigned r)
{
	sim_node *n = &s->node[x];
	sim_pending *p = &s->oracle.pending[x][r];
	const sim_op *op = sim__oldest_missing(s, x, r);
	uint64_t w, id;
	char hex[9], note[48];

	if (op == NULL)
		return;
	w = engine_watermark(n->eng, s->node[r].region_id);
	/* The claim: everything r did before w (x's clock) is here. */
	if (w == 0 || sim_node_local(n, op->t_us) >= w)
		return;
	id = (uint64_t)(op - s->oracle.ops) + 1;
	if (p->reported == id)
		return;
	p->reported = id;
	sim_key_hex(&op->state.key, hex);
	sim_violation(s,
	    "stale_watermark node=%s origin=%s key=%s op=%.3fs "
	    "watermark=%.3fs t=%.3fs%s",
	    n->name, s->node[r].name, hex, (double)op->t_us / 1e6,
	    (double)sim_node_real(n, w) / 1e6, (double)s->now / 1e6,
	    sim__expiry_note(s, x, &op->state, note, sizeof(note)));
}

void
sim_check_staleness(sim *s)
{
	for (unsigned x = 0; x < s->n; x++) {
		if (!s->node[x].alive)
			continue;
		for (unsigned r = 0; r < s->n; r++)
			if (r != x)
				sim__check_watermark(s, x, r);
	}
}

/* ------------------------------------------------------------------------ */
/* Convergence                                                              */
/* ------------------------------------------------------------------------ */

/* Every entry of a store, packed (key + value), in key order. */
static bool
sim__pack_entry(void *arg, const crdt_entry *e)
{
	revokd_buf *b = arg;
	uint8_t buf[WIRE_ENTRY_MAX];

	return revokd_buf_append(b, buf, wire_entry_encode(e, buf)) ==
	       REVOKD_OK;
}

/* Walks a packed reference alongside another store's scan. */
struct sim__cmp {
	const uint8_t *p, *end;
	uint64_t mismatches;
};

static bool
sim__cmp_entry(void *arg, const crdt_entry *e)
{
	struct sim__cmp *c = arg;
	crdt_entry ref;

	if (c->p >= c->end ||
	    wire_entry_decode(&c->p, c->end, &ref) != REVOKD_OK ||
	    !crdt_entry_equal(&ref, e)) {
		c->mismatches++;
		return false;
	}
	return true;
}

/* Full contents of every node equal node 0's, entry by entry. */
static revokd_err
sim__contents_equal(sim *s, bool *equal, unsigned *which)
{
	revokd_buf ref = { 0 };
	revokd_err err;

	*equal = true;
	if ((err = sim_store_scan(s->node[0].store, sim__pack_entry, &ref)) !=
	    REVOKD_OK)
		goto done;
	for (unsigned i = 1; i < s->n && *equal; i++) {
		struct sim__cmp c = { ref.data, ref.data + ref.len, 0 };

		if ((err = sim_store_scan(s->node[i].store, sim__cmp_entry,
		         &c)) != REVOKD_OK)
			goto done;
		if (c.mismatches > 0 || c.p != c.end) {
			*equal = false;
			*which = i;
		}
	}
done:
	revokd_buf_free(&ref);
	return err;
}

/* All nodes run and their whole-store summaries are equal. */
static bool
sim__summaries_equal(sim *s)
{
	crdt_summary first, sum;

	for (unsigned i = 0; i < s->n; i++)
		if (!s->node[i].alive)
			return false;
	crdt_store_buckets_sum(s->node[0].store, 0, CRDT_BUCKETS, &first);
	for (unsigned i = 1; i < s->n; i++) {
		crdt_store_buckets_sum(s->node[i].store, 0, CRDT_BUCKETS, &sum);
		if (!crdt_summary_equal(&first, &sum))
			return false;
	}
	return true;
}

void
sim_check_convergence(sim *s)
{
	bool equal;
	unsigned which = 0;
	revokd_err err;

	if (s->converged || s->now < s->cfg.workload_end_us ||
	    !sim__summaries_equal(s))
		return;
	if ((err = sim__contents_equal(s, &equal, &which)) != REVOKD_OK) {
		sim_fail(s, err);
		return;
	}
	s->done = true;
	if (!equal) {
		sim_violation(s,
		    "content_mismatch node=%s t=%.3fs: summaries equal "
		    "node %s's but entries differ",
		    s->node[which].name, (double)s->now / 1e6, s->node[0].name);
		return;
	}
	s->converged = true;
	s->converged_at_us = s->now;
}

/* ------------------------------------------------------------------------ */
/* Final audit                                                              */
/* ------------------------------------------------------------------------ */

/* The join of every op's state on key record k, into *out. */
static void
sim__expected(const sim *s, const sim_keyrec *k, crdt_entry *out)
{
	*out = s->oracle.ops[k->ops[0]].state;
	for (size_t j = 1; j < k->n_ops; j++)
		(void)sim_ref_merge(out, &s->oracle.ops[k->ops[j]].state);
}

/* Check key record k at node x, whose stored state is *have (or NULL). */
static void
sim__audit_key(sim *s, unsigned x, const sim_keyrec *k, const crdt_entry *have,
    const crdt_entry *want)
{
	const char *name = s->node[x].name;
	bool lost = false;
	char hex[9];

	sim_key_hex(&k->key, hex);
	for (size_t j = 0; j < k->n_ops; j++) {
		const sim_op *op = &s->oracle.ops[k->ops[j]];

		if (sim_oracle_expired(s, &op->state) ||
		    (have != NULL && sim_ref_absorbs(have, &op->state)))
			continue;
		lost = true;
		sim_violation(s, "lost node=%s key=%s op=%s@%.3fs%s", name, hex,
		    s->node[op->origin].name, (double)op->t_us / 1e6,
		    op->type == ENGINE_OP_RESTORE ? " (restore)" : "");
	}
	if (lost || have == NULL)
		return;
	if (!crdt_entry_equal(have, want))
		sim_violation(s,
		    "final_value node=%s key=%s: stored state is "
		    "not the join of the operations",
		    name, hex);
	if (!crdt_kind_is_token(k->kind) &&
	    sim_ref_version(&have->u.subject) < k->version[x])
		sim_violation(s, "version_decrease node=%s key=%s at the end",
		    name, hex);
}

static revokd_err
sim__audit_node(sim *s, unsigned x)
{
	crdt_reader *r;
	revokd_err err;

	if ((err = crdt_reader_new(s->node[x].store, &r)) != REVOKD_OK)
		return err;
	if ((err = crdt_reader_begin(r)) != REVOKD_OK)
		goto done;
	for (size_t i = 0; i < s->oracle.n_keys; i++) {
		const sim_keyrec *k = &s->oracle.keys[i];
		crdt_entry want, have;

		if (k->n_ops == 0)
			continue;
		sim__expected(s, k, &want);
		if (sim_oracle_expired(s, &want))
			continue;
		err = crdt_reader_get(r, &k->key, &have);
		if (err != REVOKD_OK && err != REVOKD_ENOTFOUND)
			goto done;
		sim__audit_key(s, x, k, err == REVOKD_OK ? &have : NULL, &want);
		err = REVOKD_OK;
	}
done:
	crdt_reader_free(r);
	return err;
}

void
sim_check_final(sim *s)
{
	for (unsigned x = 0; x < s->n; x++) {
		revokd_err err;

		if (!s->node[x].alive)
			continue;
		if ((err = sim__audit_node(s, x)) != REVOKD_OK) {
			sim_fail(s, err);
			return;
		}
	}
}
