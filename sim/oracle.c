/*
 * oracle.c: the operation log, who holds what, lag samples, violations,
 * and the reference lattice the oracle judges with (independent of crdt/,
 * so that a broken merge there shows up here).
 */
#include "sim/sim.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Reference lattice                                                        */
/* ------------------------------------------------------------------------ */

bool
sim_ref_revoked(const crdt_token *t)
{
	return t->revoked_at != 0 && t->revoked_at >= t->restored_at;
}

uint64_t
sim_ref_version(const crdt_subject *s)
{
	uint64_t v = 0;

	for (uint32_t i = 0; i < s->n && i < CRDT_MAX_WRITERS; i++)
		v = s->count[i] > UINT64_MAX - v ? UINT64_MAX : v + s->count[i];
	return v;
}

/* (revoked_at, origin, reason) of a against b. */
static int
sim__revocation_cmp(const crdt_token *a, const crdt_token *b)
{
	if (a->revoked_at != b->revoked_at)
		return a->revoked_at < b->revoked_at ? -1 : 1;
	if (a->origin != b->origin)
		return a->origin < b->origin ? -1 : 1;
	if (a->reason != b->reason)
		return a->reason < b->reason ? -1 : 1;
	return 0;
}

static bool
sim__token_merge(crdt_token *into, const crdt_token *from)
{
	bool changed = false;

	if (from->exp > into->exp) {
		into->exp = from->exp;
		changed = true;
	}
	if (from->restored_at > into->restored_at) {
		into->restored_at = from->restored_at;
		changed = true;
	}
	if (sim__revocation_cmp(from, into) > 0) {
		into->revoked_at = from->revoked_at;
		into->origin = from->origin;
		into->reason = from->reason;
		changed = true;
	}
	return changed;
}

static bool
sim__subject_merge(crdt_subject *into, const crdt_subject *from)
{
	crdt_subject out;
	uint32_t i = 0, j = 0;
	bool changed = false;

	memset(&out, 0, sizeof(out));
	out.not_before_ms = into->not_before_ms;
	if (from->not_before_ms > out.not_before_ms) {
		out.not_before_ms = from->not_before_ms;
		changed = true;
	}
	while ((i < into->n || j < from->n) && out.n < CRDT_MAX_WRITERS) {
		bool take_a =
		    j >= from->n ||
		    (i < into->n && into->region[i] <= from->region[j]);
		bool both = i < into->n && j < from->n &&
		            into->region[i] == from->region[j];

		if (both) {
			out.region[out.n] = into->region[i];
			out.count[out.n] = into->count[i];
			if (from->count[j] > into->count[i]) {
				out.count[out.n] = from->count[j];
				changed = true;
			}
			i++, j++;
		} else if (take_a) {
			out.region[out.n] = into->region[i];
			out.count[out.n] = into->count[i++];
		} else {
			out.region[out.n] = from->region[j];
			out.count[out.n] = from->count[j++];
			changed = true;
		}
		out.n++;
	}
	*into = out;
	return changed;
}

bool
sim_ref_merge(crdt_entry *into, const crdt_entry *from)
{
	if (into->kind != from->kind)
		return true; /* not a state `into` can absorb */
	if (crdt_kind_is_token(into->kind))
		return sim__token_merge(&into->u.token, &from->u.token);
	return sim__subject_merge(&into->u.subject, &from->u.subject);
}

bool
sim_ref_absorbs(const crdt_entry *have, const crdt_entry *s)
{
	crdt_entry copy = *have;

	return crdt_key_cmp(&have->key, &s->key) == 0 &&
	       !sim_ref_merge(&copy, s);
}

void
sim_key_hex(const crdt_key *k, char *buf)
{
	snprintf(buf, 9, "%02x%02x%02x%02x", k->b[0], k->b[1], k->b[2],
	    k->b[3]);
}

/* ------------------------------------------------------------------------ */
/* Violations                                                               */
/* ------------------------------------------------------------------------ */

void
sim_violation(sim *s, const char *fmt, ...)
{
	sim_oracle *o = &s->oracle;
	va_list ap;
	char *msg;

	o->violations++;
	va_start(ap, fmt);
	if (vasprintf(&msg, fmt, ap) < 0)
		msg = NULL;
	va_end(ap);
	if (msg == NULL)
		return;
	sim_trace(s, "VIOLATION %s", msg);
	if (o->n_list < SIM_VIOLATIONS_LISTED)
		o->list[o->n_list++] = msg;
	else
		free(msg);
}

/* ------------------------------------------------------------------------ */
/* Keys                                                                     */
/* ------------------------------------------------------------------------ */

static size_t
sim__key_hash(const crdt_key *k)
{
	uint64_t h;

	memcpy(&h, k->b, sizeof(h));
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdull;
	h ^= h >> 33;
	return (size_t)h;
}

/* The slot of key: where it is, or the empty slot where it would go. */
static size_t
sim__slot(const sim_oracle *o, const crdt_key *key)
{
	size_t mask = o->table_cap - 1, i = sim__key_hash(key) & mask;

	while (o->table[i] != 0 &&
	       crdt_key_cmp(&o->keys[o->table[i] - 1].key, key) != 0)
		i = (i + 1) & mask;
	return i;
}

static int64_t
sim__lookup(const sim_oracle *o, const crdt_key *key)
{
	size_t i;

	if (o->table_cap == 0)
		return -1;
	i = sim__slot(o, key);
	return o->table[i] ? (int64_t)o->table[i] - 1 : -1;
}

static revokd_err
sim__table_grow(sim_oracle *o)
{
	size_t cap = o->table_cap ? o->table_cap * 2 : 1024;
	uint32_t *old = o->table;
	size_t old_cap = o->table_cap;

	if ((o->table = calloc(cap, sizeof(*o->table))) == NULL) {
		o->table = old;
		return REVOKD_ENOMEM;
	}
	o->table_cap = cap;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i] != 0)
			o->table[sim__slot(o, &o->keys[old[i] - 1].key)] =
			    old[i];
	free(old);
	return REVOKD_OK;
}

static revokd_err
sim__grow(void **v, size_t *cap, size_t n, size_t size)
{
	size_t c;
	void *p;

	if (n < *cap)
		return REVOKD_OK;
	c = *cap ? *cap * 2 : 64;
	if ((p = realloc(*v, c * size)) == NULL)
		return REVOKD_ENOMEM;
	*v = p;
	*cap = c;
	return REVOKD_OK;
}

int64_t
sim_oracle_key(sim *s, const crdt_key *key, crdt_kind kind, int64_t exp)
{
	sim_oracle *o = &s->oracle;
	int64_t found = sim__lookup(o, key);
	sim_keyrec *k;

	if (found >= 0)
		return found;
	if (((o->n_keys + 1) * 2 > o->table_cap &&
	        sim__table_grow(o) != REVOKD_OK) ||
	    sim__grow((void **)&o->keys, &o->cap_keys, o->n_keys,
	        sizeof(*o->keys)) != REVOKD_OK) {
		sim_fail(s, REVOKD_ENOMEM);
		return -1;
	}
	k = &o->keys[o->n_keys];
	memset(k, 0, sizeof(*k));
	k->key = *key;
	k->kind = kind;
	k->exp = exp;
	k->pool_pos = -1;
	o->table[sim__slot(o, key)] = (uint32_t)++o->n_keys;
	return (int64_t)o->n_keys - 1;
}

/* ------------------------------------------------------------------------ */
/* Operations                                                               */
/* ------------------------------------------------------------------------ */

static revokd_err
sim__push_u32(uint32_t **v, size_t *n, size_t *cap, uint32_t x)
{
	if (sim__grow((void **)v, cap, *n, sizeof(**v)) != REVOKD_OK)
		return REVOKD_ENOMEM;
	(*v)[(*n)++] = x;
	return REVOKD_OK;
}

static void
sim__lag_add(sim *s, unsigned origin, unsigned node, uint64_t us)
{
	sim_lag *l = &s->oracle.lag[origin][node];

	if (sim__grow((void **)&l->v, &l->cap, l->n, sizeof(*l->v)) !=
	    REVOKD_OK) {
		sim_fail(s, REVOKD_ENOMEM);
		return;
	}
	l->v[l->n++] = us;
}

bool
sim_oracle_store_holds(sim *s, unsigned node, sim_op *op)
{
	sim_node *n = &s->node[node];
	crdt_entry have;
	revokd_err err;

	if (!n->alive || n->reader == NULL)
		return false;
	if ((err = crdt_reader_begin(n->reader)) != REVOKD_OK) {
		sim_fail(s, err);
		return false;
	}
	err = crdt_reader_get(n->reader, &op->state.key, &have);
	crdt_reader_end(n->reader);
	if (err != REVOKD_OK && err != REVOKD_ENOTFOUND)
		sim_fail(s, err);
	if (err != REVOKD_OK || !sim_ref_absorbs(&have, &op->state))
		return false;
	op->held |= 1u << node;
	return true;
}

void
sim_oracle_op(sim *s, unsigned origin, engine_op_type type, uint32_t keyrec,
    const crdt_entry *state)
{
	sim_oracle *o = &s->oracle;
	sim_keyrec *k = &o->keys[keyrec];
	uint32_t id = (uint32_t)o->n_ops;
	sim_op *op;

	if (sim__grow((void **)&o->ops, &o->cap_ops, o->n_ops,
	        sizeof(*o->ops)) != REVOKD_OK ||
	    sim__push_u32(&k->ops, &k->n_ops, &k->cap_ops, id) != REVOKD_OK) {
		sim_fail(s, REVOKD_ENOMEM);
		return;
	}
	op = &o->ops[o->n_ops++];
	op->origin = origin;
	op->type = type;
	op->t_us = s->now;
	op->keyrec = keyrec;
	op->held = 1u << origin;
	op->state = *state;
	if (!crdt_kind_is_token(state->kind) &&
	    sim_ref_version(&state->u.subject) > k->version[origin])
		k->version[origin] = sim_ref_version(&state->u.subject);
	for (unsigned x = 0; x < s->n; x++) {
		sim_pending *p = &o->pending[x][origin];

		/* A node may hold a state that wins already: no lag then. */
		if (x == origin || sim_oracle_store_holds(s, x, op))
			continue;
		if (sim__push_u32(&p->ops, &p->n, &p->cap, id) != REVOKD_OK)
			sim_fail(s, REVOKD_ENOMEM);
	}
}

bool
sim_oracle_expired(const sim *s, const crdt_entry *e)
{
	int64_t latest = 0;

	if (!crdt_kind_is_token(e->kind))
		return false;
	for (unsigned i = 0; i < s->n; i++) {
		int64_t now_s =
		    (int64_t)(sim_node_local(&s->node[i], s->now) / SIM_S);

		if (s->node[i].started && now_s > latest)
			latest = now_s;
	}
	return e->u.token.exp < latest - s->leeway_s;
}

/* Versions of a subject at node never go down. */
static void
sim__check_version(sim *s, unsigned node, sim_keyrec *k, const crdt_entry *e)
{
	uint64_t v = sim_ref_version(&e->u.subject);
	char hex[9];

	if (v < k->version[node]) {
		sim_key_hex(&k->key, hex);
		sim_violation(s,
		    "version_decrease node=%s key=%s t=%.3fs: %llu -> %llu",
		    s->node[node].name, hex, (double)s->now / 1e6,
		    (unsigned long long)k->version[node],
		    (unsigned long long)v);
		return;
	}
	k->version[node] = v;
}

/* The joiner holds the preloaded state: bootstrap time. */
static void
sim__check_bootstrap(sim *s, unsigned node)
{
	if (s->bootstrapped || !s->cfg.joins_late[node] || s->preloaded == 0 ||
	    s->node[node].store == NULL)
		return;
	if (crdt_store_count(s->node[node].store) >= s->preloaded) {
		s->bootstrapped = true;
		s->bootstrap_us = s->now - s->join_at_us;
	}
}

void
sim_oracle_changed(sim *s, unsigned node, const crdt_entry *e, size_t n)
{
	sim_oracle *o = &s->oracle;

	for (size_t i = 0; i < n; i++) {
		int64_t rec = sim__lookup(o, &e[i].key);
		sim_keyrec *k;

		if (rec < 0)
			continue;
		k = &o->keys[rec];
		if (!crdt_kind_is_token(e[i].kind) && e[i].kind == k->kind)
			sim__check_version(s, node, k, &e[i]);
		for (size_t j = 0; j < k->n_ops; j++) {
			sim_op *op = &o->ops[k->ops[j]];

			if (op->held & (1u << node) ||
			    !sim_ref_absorbs(&e[i], &op->state))
				continue;
			op->held |= 1u << node;
			sim__lag_add(s, op->origin, node, s->now - op->t_us);
		}
	}
	sim__check_bootstrap(s, node);
}

void
sim_oracle_free(sim_oracle *o)
{
	for (size_t i = 0; i < o->n_keys; i++)
		free(o->keys[i].ops);
	for (unsigned x = 0; x < SIM_MAX_NODES; x++) {
		for (unsigned r = 0; r < SIM_MAX_NODES; r++) {
			free(o->pending[x][r].ops);
			free(o->lag[x][r].v);
		}
	}
	for (size_t i = 0; i < o->n_list; i++)
		free(o->list[i]);
	free(o->ops);
	free(o->keys);
	free(o->table);
	memset(o, 0, sizeof(*o));
}
