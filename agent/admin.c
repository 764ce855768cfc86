/*
 * admin.c: admin writes, group commit, waiting for confirmations, import,
 * and dump.
 */
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/log.h"

/* Operations committed in one transaction at most (bounds its memory). */
#define AGENT_GROUP_MAX 16384

/* Items in one Import request at most. */
#define AGENT_IMPORT_MAX 10000

/* Default wait, when a Wait gives no timeout. */
#define AGENT_WAIT_DEFAULT_MS 10000

/* Entries in one Dump answer: default and most. */
#define AGENT_DUMP_DEFAULT 1000
#define AGENT_DUMP_MAX 10000

typedef Revokd__Local__Response Response;

struct agent_write {
	struct agent_write *next;
	agent_local_slot *slot;
	engine_op *ops;
	size_t n_ops;
	bool user; /* a RevokeUser: report the version */
	bool import;
	bool wait_all;
	uint32_t wait_peers;
	uint64_t timeout_ms;
	uint64_t batch;
	uint64_t committed_ms;
	uint64_t deadline_ms;
	uint64_t version;
	unsigned n_confirmed;
	bool confirmed[ENGINE_MAX_PEERS];
	uint64_t after_ms[ENGINE_MAX_PEERS];
};

/* ------------------------------------------------------------------------ */
/* Answers                                                                  */
/* ------------------------------------------------------------------------ */

static void
admin_write_free(struct agent_write *w)
{
	free(w->ops);
	free(w);
}

/* Answer w with its result (timed_out when its wait was not met). */
static void
admin_answer(agent *a, struct agent_write *w, bool timed_out)
{
	Response resp = REVOKD__LOCAL__RESPONSE__INIT;
	Revokd__Local__WriteResult res = REVOKD__LOCAL__WRITE_RESULT__INIT;
	Revokd__Local__Confirmation conf[ENGINE_MAX_PEERS];
	Revokd__Local__Confirmation *confp[ENGINE_MAX_PEERS];

	res.batch = w->batch;
	res.committed_ms = w->committed_ms;
	res.version = w->version;
	res.timed_out = timed_out;
	res.items = w->import ? w->n_ops : 0;
	for (unsigned i = 0; i < a->cfg.n_peers; i++) {
		if (!w->confirmed[i])
			continue;
		revokd__local__confirmation__init(&conf[res.n_confirmations]);
		conf[res.n_confirmations].region = a->cfg.peers[i].name;
		conf[res.n_confirmations].after_ms = w->after_ms[i];
		confp[res.n_confirmations] = &conf[res.n_confirmations];
		res.n_confirmations++;
	}
	res.confirmations = confp;
	resp.body_case = REVOKD__LOCAL__RESPONSE__BODY_WRITE;
	resp.write = &res;
	agent_reply(w->slot, &resp);
}

static bool
admin_satisfied(const agent *a, const struct agent_write *w)
{
	return w->wait_all ? w->n_confirmed >= a->cfg.n_peers
	                   : w->n_confirmed >= w->wait_peers;
}

/* ------------------------------------------------------------------------ */
/* Building writes                                                          */
/* ------------------------------------------------------------------------ */

static revokd_err
admin_key(agent *a, crdt_kind kind, const ProtobufCBinaryData *id,
    crdt_key *out)
{
	if (id->len == 0 || id->len > 1024)
		return REVOKD_EINVAL;
	return crdt_key_derive(a->keyer, kind, id->data, id->len, out);
}

/* exp of a token write: given, or now + max_token_lifetime. */
static revokd_err
admin_exp(agent *a, int64_t exp, int64_t *out)
{
	int64_t now = (int64_t)(agent_now_us() / 1000000);

	if (exp == 0)
		exp = now + a->cfg.max_token_lifetime;
	if (exp < now - a->cfg.prune_leeway)
		return REVOKD_EINVAL; /* already past: it would be dropped */
	*out = exp;
	return REVOKD_OK;
}

static revokd_err
admin_token_op(agent *a, engine_op_type type, crdt_kind kind,
    const ProtobufCBinaryData *id, int64_t exp, uint32_t reason, engine_op *op)
{
	memset(op, 0, sizeof(*op));
	op->type = type;
	op->kind = kind;
	op->reason = (uint8_t)reason;
	if (reason > 255 || admin_key(a, kind, id, &op->key) != REVOKD_OK)
		return REVOKD_EINVAL;
	return admin_exp(a, exp, &op->exp);
}

static revokd_err
admin_user_op(agent *a, const ProtobufCBinaryData *sub, bool bump,
    uint64_t not_before_ms, engine_op *op)
{
	memset(op, 0, sizeof(*op));
	op->type = ENGINE_OP_REVOKE_USER;
	op->kind = CRDT_KIND_SUB;
	op->bump = bump;
	op->not_before_ms = not_before_ms;
	if (!bump && not_before_ms == 0)
		return REVOKD_EINVAL;
	return admin_key(a, CRDT_KIND_SUB, sub, &op->key);
}

static revokd_err
admin_import_op(agent *a, const Revokd__Local__ImportItem *it, engine_op *op)
{
	crdt_kind kind = crdt_kind_from_name(it->kind ? it->kind : "");

	if (kind == CRDT_KIND_SUB)
		return admin_user_op(a, &it->id, it->bump, it->not_before_ms,
		    op);
	if (kind != CRDT_KIND_JTI && kind != CRDT_KIND_SID)
		return REVOKD_EINVAL;
	return admin_token_op(a,
	    it->restore ? ENGINE_OP_RESTORE : ENGINE_OP_REVOKE, kind, &it->id,
	    it->exp, it->reason, op);
}

/* The ops of one write request into w; a message for the client if bad. */
/* admin_build's answer when memory ran out: not the client's fault. */
static const char admin_oom[] = "out of memory";

static const char *
admin_build(agent *a, const Revokd__Local__Request *req, struct agent_write *w,
    const Revokd__Local__Wait **wait)
{
	ProtobufCBinaryData id;

	*wait = NULL;
	w->n_ops = 1;
	if (req->body_case == REVOKD__LOCAL__REQUEST__BODY_IMPORT)
		w->n_ops = req->import->n_items;
	if (w->n_ops == 0 || w->n_ops > AGENT_IMPORT_MAX)
		return "an import holds 1 to 10000 items";
	if ((w->ops = calloc(w->n_ops, sizeof(*w->ops))) == NULL)
		return admin_oom;
	switch (req->body_case) {
	case REVOKD__LOCAL__REQUEST__BODY_REVOKE_TOKEN:
		*wait = req->revoke_token->wait;
		id = req->revoke_token->jti;
		return admin_token_op(a, ENGINE_OP_REVOKE, CRDT_KIND_JTI, &id,
		           req->revoke_token->exp, req->revoke_token->reason,
		           w->ops)
		           ? "needs a jti (1 to 1024 bytes), an exp not past, "
		             "a reason 0-255"
		           : NULL;
	case REVOKD__LOCAL__REQUEST__BODY_RESTORE_TOKEN:
		*wait = req->restore_token->wait;
		id = req->restore_token->jti;
		return admin_token_op(a, ENGINE_OP_RESTORE, CRDT_KIND_JTI, &id,
		           req->restore_token->exp, 0, w->ops)
		           ? "needs a jti (1 to 1024 bytes), an exp not past"
		           : NULL;
	case REVOKD__LOCAL__REQUEST__BODY_REVOKE_SESSION:
		*wait = req->revoke_session->wait;
		id = req->revoke_session->sid;
		return admin_token_op(a, ENGINE_OP_REVOKE, CRDT_KIND_SID, &id,
		           req->revoke_session->exp,
		           req->revoke_session->reason, w->ops)
		           ? "needs a sid (1 to 1024 bytes), an exp not past, "
		             "a reason 0-255"
		           : NULL;
	case REVOKD__LOCAL__REQUEST__BODY_RESTORE_SESSION:
		*wait = req->restore_session->wait;
		id = req->restore_session->sid;
		return admin_token_op(a, ENGINE_OP_RESTORE, CRDT_KIND_SID, &id,
		           req->restore_session->exp, 0, w->ops)
		           ? "needs a sid (1 to 1024 bytes), an exp not past"
		           : NULL;
	case REVOKD__LOCAL__REQUEST__BODY_REVOKE_USER:
		*wait = req->revoke_user->wait;
		w->user = true;
		return admin_user_op(a, &req->revoke_user->sub,
		           !req->revoke_user->no_bump,
		           req->revoke_user->not_before_ms, w->ops)
		           ? "needs a sub (1 to 1024 bytes) and a bump or a "
		             "not-before"
		           : NULL;
	case REVOKD__LOCAL__REQUEST__BODY_IMPORT:
		w->import = true;
		for (size_t i = 0; i < w->n_ops; i++)
			if (admin_import_op(a, req->import->items[i],
			        &w->ops[i]) != REVOKD_OK)
				return "an import item is invalid (kind jti, "
				       "sid or sub; id 1 to 1024 bytes; exp "
				       "not "
				       "past)";
		return NULL;
	default:
		return "not an admin request";
	}
}

static const char *
admin_wait(agent *a, const Revokd__Local__Wait *wait, struct agent_write *w)
{
	if (wait == NULL)
		return NULL;
	w->wait_all = wait->all;
	w->wait_peers = wait->peers;
	w->timeout_ms =
	    wait->timeout_ms ? wait->timeout_ms : AGENT_WAIT_DEFAULT_MS;
	if (!w->wait_all && w->wait_peers > a->cfg.n_peers)
		return "waits for more peers than are configured";
	return NULL;
}

/* ------------------------------------------------------------------------ */
/* Dump                                                                     */
/* ------------------------------------------------------------------------ */

struct admin_dump {
	Revokd__Local__DumpEntry *v, **p;
	size_t n, max;
	size_t bytes, max_bytes; /* of the packed DumpResult */
	bool more;
	crdt_key skip; /* `after` itself is not part of the answer */
	bool has_skip;
};

static bool
admin_dump_one(void *arg, const crdt_entry *e)
{
	struct admin_dump *d = arg;
	Revokd__Local__DumpEntry *o;
	size_t size;

	if (d->has_skip && crdt_key_cmp(&e->key, &d->skip) == 0)
		return true;
	if (d->n == d->max) {
		d->more = true;
		return false;
	}
	o = &d->v[d->n];
	revokd__local__dump_entry__init(o);
	o->key.data = malloc(CRDT_KEY_LEN);
	if (o->key.data == NULL)
		return false;
	memcpy(o->key.data, e->key.b, CRDT_KEY_LEN);
	o->key.len = CRDT_KEY_LEN;
	o->kind = (char *)crdt_kind_name(e->kind);
	if (crdt_kind_is_token(e->kind)) {
		o->exp = e->u.token.exp;
		o->revoked = crdt_token_revoked(&e->u.token);
		o->revoked_at_ms = CRDT_HLC_MS(e->u.token.revoked_at);
		o->restored_at_ms = CRDT_HLC_MS(e->u.token.restored_at);
		o->origin = e->u.token.origin;
		o->reason = e->u.token.reason;
	} else {
		o->version = crdt_subject_version(&e->u.subject);
		o->not_before_ms = e->u.subject.not_before_ms;
	}
	/* Field 1, length-delimited: a tag byte and the length's varint. */
	size = revokd__local__dump_entry__get_packed_size(o);
	size += 1 + (size < 128 ? 1 : 2);
	if (d->bytes + size > d->max_bytes) {
		free(o->key.data);
		d->more = true;
		return false;
	}
	d->bytes += size;
	d->p[d->n++] = o;
	return true;
}

static void
admin_dump(agent *a, const Revokd__Local__Dump *q, agent_local_slot *slot)
{
	Response resp = REVOKD__LOCAL__RESPONSE__INIT;
	Revokd__Local__DumpResult res = REVOKD__LOCAL__DUMP_RESULT__INIT;
	struct admin_dump d = { 0 };

	d.max = q->limit ? q->limit : AGENT_DUMP_DEFAULT;
	/* A page is also cut to fit max_message, with room for `more`. */
	d.max_bytes = a->cfg.max_message - 16;
	if (d.max > AGENT_DUMP_MAX ||
	    (q->after.len != 0 && q->after.len != CRDT_KEY_LEN)) {
		agent_reply_error(slot,
		    REVOKD__LOCAL__ERROR_CODE__ERROR_MALFORMED,
		    "dump: limit 1 to 10000, after a 16-byte key");
		return;
	}
	d.v = calloc(d.max, sizeof(*d.v));
	d.p = calloc(d.max, sizeof(*d.p));
	if (q->after.len) {
		memcpy(d.skip.b, q->after.data, CRDT_KEY_LEN);
		d.has_skip = true;
	}
	if (d.v == NULL || d.p == NULL ||
	    crdt_reader_scan(a->reader, d.has_skip ? &d.skip : NULL, NULL,
	        admin_dump_one, &d) != REVOKD_OK) {
		agent_reply_error(slot, REVOKD__LOCAL__ERROR_CODE__ERROR_STORE,
		    "dump failed");
	} else {
		res.entries = d.p;
		res.n_entries = d.n;
		res.more = d.more;
		resp.body_case = REVOKD__LOCAL__RESPONSE__BODY_DUMP;
		resp.dump = &res;
		agent_reply(slot, &resp);
	}
	for (size_t i = 0; i < d.n; i++)
		free(d.v[i].key.data);
	free(d.v);
	free(d.p);
}

/* ------------------------------------------------------------------------ */
/* Requests and the group commit                                            */
/* ------------------------------------------------------------------------ */

void
agent_admin_request(agent *a, const Revokd__Local__Request *req,
    agent_local_slot *slot)
{
	struct agent_write *w;
	const Revokd__Local__Wait *wait;
	const char *bad;

	if (req->body_case == REVOKD__LOCAL__REQUEST__BODY_DUMP) {
		admin_dump(a, req->dump, slot);
		return;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		agent_reply_error(slot,
		    REVOKD__LOCAL__ERROR_CODE__ERROR_INTERNAL, "out of memory");
		return;
	}
	w->slot = slot;
	if ((bad = admin_build(a, req, w, &wait)) != NULL ||
	    (bad = admin_wait(a, wait, w)) != NULL) {
		agent_reply_error(slot,
		    bad == admin_oom
		        ? REVOKD__LOCAL__ERROR_CODE__ERROR_INTERNAL
		        : REVOKD__LOCAL__ERROR_CODE__ERROR_MALFORMED,
		    bad);
		admin_write_free(w);
		return;
	}
	if (a->queued_tail)
		a->queued_tail->next = w;
	else
		a->queued = w;
	a->queued_tail = w;
	a->queued_ops += w->n_ops;
}

/* Take writes off the queue, up to AGENT_GROUP_MAX ops (at least one). */
static struct agent_write *
admin_take_group(agent *a, size_t *n_ops)
{
	struct agent_write *head = a->queued, *w = head, *last = NULL;

	*n_ops = 0;
	while (w != NULL &&
	       (last == NULL || *n_ops + w->n_ops <= AGENT_GROUP_MAX)) {
		*n_ops += w->n_ops;
		last = w;
		w = w->next;
	}
	a->queued = w;
	if (w == NULL)
		a->queued_tail = NULL;
	if (last != NULL)
		last->next = NULL;
	a->queued_ops -= *n_ops;
	return head;
}

/* After a commit: answer w now, or keep it waiting for peers. */
static void
admin_committed(agent *a, struct agent_write *w, uint64_t now_ms)
{
	w->committed_ms = now_ms;
	w->deadline_ms = now_ms + w->timeout_ms;
	if ((w->timeout_ms == 0) || admin_satisfied(a, w)) {
		admin_answer(a, w, false);
		admin_write_free(w);
		return;
	}
	w->next = a->waiting;
	a->waiting = w;
}

static void
admin_fail(struct agent_write *group, revokd_err err)
{
	char msg[128];

	snprintf(msg, sizeof(msg), "not committed: %s", revokd_strerror(err));
	while (group != NULL) {
		struct agent_write *next = group->next;

		agent_reply_error(group->slot,
		    REVOKD__LOCAL__ERROR_CODE__ERROR_STORE, msg);
		admin_write_free(group);
		group = next;
	}
}

/* Commit one group in one engine_local call. */
static void
admin_commit_group(agent *a)
{
	size_t n_ops, k = 0;
	struct agent_write *group = admin_take_group(a, &n_ops), *w;
	engine_op *ops = calloc(n_ops, sizeof(*ops));
	crdt_entry *after = NULL;
	bool users = false;
	uint64_t batch = 0, now_us = agent_now_us();
	revokd_err err = ops ? REVOKD_OK : REVOKD_ENOMEM;

	for (w = group; w != NULL && ops; w = w->next) {
		memcpy(ops + k, w->ops, w->n_ops * sizeof(*ops));
		k += w->n_ops;
		users |= w->user;
	}
	/* Only a RevokeUser answer needs the state after (its version). */
	if (err == REVOKD_OK && users &&
	    (after = calloc(n_ops, sizeof(*after))) == NULL)
		err = REVOKD_ENOMEM;
	if (err == REVOKD_OK)
		err =
		    engine_local(a->engine, ops, n_ops, now_us, &batch, after);
	if (err != REVOKD_OK) {
		a->write_errors += n_ops;
		agent_log(AGENT_LOG_ERROR, "write_failed", "reason",
		    revokd_strerror(err), NULL);
		admin_fail(group, err);
	} else {
		a->writes += n_ops;
		for (k = 0, w = group; w != NULL; w = group) {
			group = w->next;
			w->batch = batch;
			if (w->user && after)
				w->version =
				    crdt_subject_version(&after[k].u.subject);
			k += w->n_ops;
			admin_committed(a, w, now_us / 1000);
		}
	}
	free(ops);
	free(after);
}

void
agent_admin_commit(uv_check_t *h)
{
	agent *a = h->data;

	if (a->queued == NULL)
		return;
	while (a->queued != NULL)
		admin_commit_group(a);
	agent_schedule(a);
}

/* ------------------------------------------------------------------------ */
/* Confirmations and deadlines                                              */
/* ------------------------------------------------------------------------ */

void
agent_admin_confirmed(agent *a, unsigned peer, uint64_t batch)
{
	struct agent_write **pp = &a->waiting, *w;
	uint64_t now_ms = agent_now_us() / 1000;

	if (peer >= a->cfg.n_peers)
		return;
	while ((w = *pp) != NULL) {
		if (w->batch != batch || w->confirmed[peer]) {
			pp = &w->next;
			continue;
		}
		w->confirmed[peer] = true;
		w->after_ms[peer] = now_ms - w->committed_ms;
		w->n_confirmed++;
		a->confirm_lag_ms_sum += w->after_ms[peer];
		a->confirm_lag_n++;
		if (!admin_satisfied(a, w)) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		admin_answer(a, w, false);
		admin_write_free(w);
	}
}

uint64_t
agent_admin_expire(agent *a, uint64_t now_ms)
{
	struct agent_write **pp = &a->waiting, *w;
	uint64_t next = 0;

	while ((w = *pp) != NULL) {
		if (now_ms < w->deadline_ms) {
			if (next == 0 || w->deadline_ms < next)
				next = w->deadline_ms;
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		admin_answer(a, w, true);
		admin_write_free(w);
	}
	return next;
}

void
agent_admin_flush(agent *a)
{
	if (a->queued != NULL)
		agent_admin_commit(&a->commit);
	while (a->waiting != NULL) {
		struct agent_write *w = a->waiting;

		a->waiting = w->next;
		admin_answer(a, w, true);
		admin_write_free(w);
	}
}
