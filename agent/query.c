/*
 * query.c: answering requests on the query and admin sockets. Every batch
 * of requests that arrived together is answered from one read snapshot.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "agent/agent.h"
#include "agent/log.h"

/* Longest identifier accepted (jti, sid, sub). */
#define AGENT_ID_MAX 1024

typedef Revokd__Local__Request Request;
typedef Revokd__Local__Response Response;

/*
 * Requests are unpacked into an arena on the stack: protobuf-c would
 * otherwise malloc the message, its body and every bytes field and free
 * each again, which took about 5% of the agent's time answering checks
 * (perf, revokd-bench query). A check fits in a few hundred bytes; larger
 * requests (imports) take the rest from malloc.
 */
#define AGENT_ARENA_SIZE 4096

typedef struct agent_arena {
	size_t used;
	_Alignas(max_align_t) uint8_t buf[AGENT_ARENA_SIZE];
} agent_arena;

static void *
agent_arena_alloc(void *data, size_t size)
{
	agent_arena *ar = data;
	size_t align = _Alignof(max_align_t);
	size_t need = (size + align - 1) / align * align;

	if (need >= size && need <= AGENT_ARENA_SIZE - ar->used) {
		void *p = ar->buf + ar->used;

		ar->used += need;
		return p;
	}
	return malloc(size);
}

static void
agent_arena_free(void *data, void *p)
{
	agent_arena *ar = data;
	uintptr_t at = (uintptr_t)p, lo = (uintptr_t)ar->buf;

	if (at >= lo && at < lo + AGENT_ARENA_SIZE)
		return; /* goes with the arena */
	free(p);
}

/* ------------------------------------------------------------------------ */
/* Replies                                                                  */
/* ------------------------------------------------------------------------ */

void
agent_reply(agent_local_slot *slot, Response *resp)
{
	uint8_t stack[512], *buf = stack;
	size_t len = revokd__local__response__get_packed_size(resp);

	if (len > sizeof(stack) && (buf = malloc(len)) == NULL) {
		agent_reply_error(slot,
		    REVOKD__LOCAL__ERROR_CODE__ERROR_INTERNAL, "out of memory");
		return;
	}
	revokd__local__response__pack(resp, buf);
	(void)agent_local_fill(slot, buf, len);
	if (buf != stack)
		free(buf);
}

void
agent_reply_error(agent_local_slot *slot, Revokd__Local__ErrorCode code,
    const char *message)
{
	Response resp = REVOKD__LOCAL__RESPONSE__INIT;
	Revokd__Local__Error e = REVOKD__LOCAL__ERROR__INIT;
	uint8_t buf[512];
	size_t len;

	e.code = code;
	e.message = (char *)message;
	resp.body_case = REVOKD__LOCAL__RESPONSE__BODY_ERROR;
	resp.error = &e;
	len = revokd__local__response__get_packed_size(&resp);
	if (len <= sizeof(buf)) {
		revokd__local__response__pack(&resp, buf);
		(void)agent_local_fill(slot, buf, len);
	} else {
		(void)agent_local_fill(slot, NULL, 0);
	}
}

void
agent_on_oversize(void *arg, agent_local_slot *slot, size_t declared)
{
	char msg[96];

	(void)arg;
	snprintf(msg, sizeof(msg), "frame of %zu bytes is over the limit",
	    declared);
	agent_reply_error(slot, REVOKD__LOCAL__ERROR_CODE__ERROR_TOO_BIG, msg);
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                  */
/* ------------------------------------------------------------------------ */

uint64_t
agent_staleness_ms(agent *a)
{
	return engine_staleness_us(a->engine, agent_now_us()) / 1000;
}

/* The key of an identifier; false when the id is too long. */
static bool
agent_key(agent *a, crdt_kind kind, const ProtobufCBinaryData *id,
    crdt_key *out)
{
	return id->len <= AGENT_ID_MAX &&
	       crdt_key_derive(a->keyer, kind, id->data, id->len, out) ==
	           REVOKD_OK;
}

static void
agent_check(agent *a, const Revokd__Local__Check *q, uint64_t staleness_ms,
    agent_local_slot *slot)
{
	Response resp = REVOKD__LOCAL__RESPONSE__INIT;
	Revokd__Local__CheckResult res = REVOKD__LOCAL__CHECK_RESULT__INIT;
	crdt_key jti, sid, sub;
	crdt_check c = { 0 };
	crdt_check_result r;

	if ((q->jti.len && !agent_key(a, CRDT_KIND_JTI, &q->jti, &jti)) ||
	    (q->sid.len && !agent_key(a, CRDT_KIND_SID, &q->sid, &sid)) ||
	    (q->sub.len && !agent_key(a, CRDT_KIND_SUB, &q->sub, &sub)) ||
	    (!q->jti.len && !q->sid.len && !q->sub.len)) {
		agent_reply_error(slot,
		    REVOKD__LOCAL__ERROR_CODE__ERROR_MALFORMED,
		    "check needs a jti, sid or sub of at most 1024 bytes");
		return;
	}
	c.jti = q->jti.len ? &jti : NULL;
	c.sid = q->sid.len ? &sid : NULL;
	c.sub = q->sub.len ? &sub : NULL;
	c.has_ver = q->has_ver_case == REVOKD__LOCAL__CHECK__HAS_VER_VER;
	c.ver = q->ver;
	c.has_iat = q->has_iat_case == REVOKD__LOCAL__CHECK__HAS_IAT_IAT;
	c.iat = q->iat;
	if (crdt_reader_check(a->reader, &c, &r) != REVOKD_OK) {
		agent_reply_error(slot, REVOKD__LOCAL__ERROR_CODE__ERROR_STORE,
		    "store read failed");
		return;
	}
	a->checks++;
	a->check_revoked += r.verdict != CRDT_VALID;
	res.verdict = (Revokd__Local__Verdict)r.verdict;
	res.version = r.version;
	res.staleness_ms = staleness_ms;
	resp.body_case = REVOKD__LOCAL__RESPONSE__BODY_CHECK;
	resp.check = &res;
	agent_reply(slot, &resp);
}

static void
agent_version(agent *a, const Revokd__Local__Version *q, uint64_t staleness_ms,
    agent_local_slot *slot)
{
	Response resp = REVOKD__LOCAL__RESPONSE__INIT;
	Revokd__Local__VersionResult res = REVOKD__LOCAL__VERSION_RESULT__INIT;
	crdt_entry e;
	crdt_key sub;
	revokd_err err;

	if (!q->sub.len || !agent_key(a, CRDT_KIND_SUB, &q->sub, &sub)) {
		agent_reply_error(slot,
		    REVOKD__LOCAL__ERROR_CODE__ERROR_MALFORMED,
		    "version needs a sub of at most 1024 bytes");
		return;
	}
	err = crdt_reader_get(a->reader, &sub, &e);
	if (err != REVOKD_OK && err != REVOKD_ENOTFOUND) {
		agent_reply_error(slot, REVOKD__LOCAL__ERROR_CODE__ERROR_STORE,
		    "store read failed");
		return;
	}
	if (err == REVOKD_OK && e.kind == CRDT_KIND_SUB) {
		res.version = crdt_subject_version(&e.u.subject);
		res.not_before_ms = e.u.subject.not_before_ms;
	}
	a->versions++;
	res.staleness_ms = staleness_ms;
	resp.body_case = REVOKD__LOCAL__RESPONSE__BODY_VERSION;
	resp.version = &res;
	agent_reply(slot, &resp);
}

static void
agent_reply_status(agent *a, agent_local_slot *slot)
{
	Response resp = REVOKD__LOCAL__RESPONSE__INIT;
	Revokd__Local__StatusResult st;

	agent_status(a, &st);
	resp.body_case = REVOKD__LOCAL__RESPONSE__BODY_STATUS;
	resp.status = &st;
	agent_reply(slot, &resp);
	agent_status_free(&st);
}

/* One request: a query answered now, or an admin request passed on. */
static void
agent_request(agent *a, const agent_local_frame *f, bool admin,
    uint64_t staleness_ms)
{
	agent_arena arena;
	ProtobufCAllocator alloc = { agent_arena_alloc, agent_arena_free,
		&arena };
	Request *req;

	arena.used = 0;
	req = revokd__local__request__unpack(&alloc, f->len, f->data);

	if (req == NULL) {
		agent_reply_error(f->slot,
		    REVOKD__LOCAL__ERROR_CODE__ERROR_MALFORMED,
		    "not a Request message");
		return;
	}
	switch (req->body_case) {
	case REVOKD__LOCAL__REQUEST__BODY_CHECK:
		agent_check(a, req->check, staleness_ms, f->slot);
		break;
	case REVOKD__LOCAL__REQUEST__BODY_VERSION:
		agent_version(a, req->version, staleness_ms, f->slot);
		break;
	case REVOKD__LOCAL__REQUEST__BODY_STATUS:
		agent_reply_status(a, f->slot);
		break;
	case REVOKD__LOCAL__REQUEST__BODY__NOT_SET:
		agent_reply_error(f->slot,
		    REVOKD__LOCAL__ERROR_CODE__ERROR_MALFORMED,
		    "empty request");
		break;
	default:
		if (admin)
			agent_admin_request(a, req, f->slot);
		else
			agent_reply_error(f->slot,
			    REVOKD__LOCAL__ERROR_CODE__ERROR_NOT_ALLOWED,
			    "admin requests go to the admin socket");
		break;
	}
	revokd__local__request__free_unpacked(req, &alloc);
}

static void
agent_frames(agent *a, const agent_local_frame *frames, size_t n, bool admin)
{
	uint64_t staleness_ms = agent_staleness_ms(a);

	if (a->stopping) {
		for (size_t i = 0; i < n; i++)
			agent_reply_error(frames[i].slot,
			    REVOKD__LOCAL__ERROR_CODE__ERROR_BUSY,
			    "shutting down");
		return;
	}
	if (crdt_reader_begin(a->reader) != REVOKD_OK) {
		for (size_t i = 0; i < n; i++)
			agent_reply_error(frames[i].slot,
			    REVOKD__LOCAL__ERROR_CODE__ERROR_STORE,
			    "store read failed");
		return;
	}
	for (size_t i = 0; i < n; i++)
		agent_request(a, &frames[i], admin, staleness_ms);
	crdt_reader_end(a->reader);
}

void
agent_on_query_frames(void *arg, agent_local_conn *c,
    const agent_local_frame *frames, size_t n)
{
	(void)c;
	agent_frames(arg, frames, n, false);
}

void
agent_on_admin_frames(void *arg, agent_local_conn *c,
    const agent_local_frame *frames, size_t n)
{
	(void)c;
	agent_frames(arg, frames, n, true);
}

/* ------------------------------------------------------------------------ */
/* Status                                                                   */
/* ------------------------------------------------------------------------ */

static Revokd__Local__PeerStatus *
agent_peer_status(agent *a, unsigned i, uint64_t now_us)
{
	Revokd__Local__PeerStatus *ps = malloc(sizeof(*ps));
	engine_peer_status st;
	uint64_t wm;

	if (ps == NULL)
		return NULL;
	revokd__local__peer_status__init(ps);
	engine_get_peer_status(a->engine, i, &st);
	wm = engine_watermark(a->engine, a->cfg.peers[i].id);
	ps->region = a->cfg.peers[i].name;
	ps->region_id = a->cfg.peers[i].id;
	ps->connected = st.up;
	ps->synced = st.synced;
	ps->has_clock = st.have_clock;
	ps->offset_us = st.offset_us;
	ps->rtt_us = st.rtt_us;
	ps->last_ack_age_ms = st.last_ack_us && now_us > st.last_ack_us
	                          ? (now_us - st.last_ack_us) / 1000
	                          : 0;
	ps->backlog = st.backlog;
	ps->watermark_age_ms = now_us > wm ? (now_us - wm) / 1000 : 0;
	ps->bytes_sent = st.sent.delta + st.sent.repair + st.sent.control;
	ps->bytes_received = st.bytes_received;
	return ps;
}

void
agent_status(agent *a, Revokd__Local__StatusResult *out)
{
	uint64_t now_us = agent_now_us();

	revokd__local__status_result__init(out);
	out->region = a->cfg.region;
	out->region_id = a->cfg.region_id;
	out->cluster = a->cfg.cluster;
	out->version = (char *)REVOKD_VERSION;
	out->server_time_ms = now_us / 1000;
	out->uptime_s = (uv_now(a->loop) - a->started_ms) / 1000;
	out->staleness_ms = agent_staleness_ms(a);
	out->entries = crdt_store_count(a->store);
	out->max_message = a->cfg.max_message;
	out->max_token_lifetime = a->cfg.max_token_lifetime;
	out->prune_leeway = a->cfg.prune_leeway;
	out->peers = calloc(a->cfg.n_peers + 1, sizeof(*out->peers));
	if (out->peers == NULL)
		return;
	for (unsigned i = 0; i < a->cfg.n_peers; i++)
		if ((out->peers[out->n_peers] =
		            agent_peer_status(a, i, now_us)) != NULL)
			out->n_peers++;
}

void
agent_status_free(Revokd__Local__StatusResult *s)
{
	for (size_t i = 0; i < s->n_peers; i++)
		free(s->peers[i]);
	free(s->peers);
	s->peers = NULL;
	s->n_peers = 0;
}
