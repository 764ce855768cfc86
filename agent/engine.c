/*
 * engine.c: the engine's core: configuration, peers, eager push with
 * batching, receiving, local writes, and timers.
 */
#include "agent/engine_int.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

int64_t
engine__now_s(uint64_t now)
{
	return (int64_t)(now / 1000000);
}

void
engine__notice(engine *e, const engine_notice *n)
{
	if (e->io.notice != NULL)
		e->io.notice(e->io.arg, n);
}

void
engine__peer_event(engine *e, struct engine__peer *p, engine_peer_event ev)
{
	engine_notice n = { .type = ENGINE_NOTICE_PEER,
		.peer = p->index,
		.event = ev };

	engine__notice(e, &n);
}

void
engine__unpack(engine *e, const uint8_t *buf, size_t len, uint32_t n, size_t at)
{
	const uint8_t *p = buf, *end = buf + len;

	/* wire checked every entry already; decoding cannot fail here. */
	for (uint32_t i = 0; i < n; i++)
		(void)wire_entry_decode(&p, end, &e->in[at + i]);
}

/* A uniform jitter in [-j, +j] added to base, never below 0. */
static uint64_t
engine__jitter(engine *e, uint64_t base, uint64_t j)
{
	uint64_t r = j ? revokd_rng_below(&e->rng, 2 * j + 1) : j;

	return base + r >= j ? base + r - j : 0;
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

#define ENGINE__DEFAULT(field, value)                                          \
	do {                                                                   \
		if (c->field == 0)                                             \
			c->field = (value);                                    \
	} while (0)

static void
engine__defaults(engine_config *c)
{
	ENGINE__DEFAULT(max_frame, ENGINE__MAX_FRAME);
	ENGINE__DEFAULT(max_batch, ENGINE__MAX_BATCH);
	ENGINE__DEFAULT(backlog_max, ENGINE__BACKLOG);
	ENGINE__DEFAULT(window, ENGINE__WINDOW);
	ENGINE__DEFAULT(heartbeat_us, ENGINE__HEARTBEAT_US);
	ENGINE__DEFAULT(ping_us, ENGINE__PING_US);
	ENGINE__DEFAULT(recon_interval_us, ENGINE__RECON_INTERVAL_US);
	ENGINE__DEFAULT(recon_jitter_us, ENGINE__RECON_JITTER_US);
	ENGINE__DEFAULT(recon_timeout_us, ENGINE__RECON_TIMEOUT_US);
	ENGINE__DEFAULT(max_ahead_us, ENGINE__MAX_AHEAD_US);
	ENGINE__DEFAULT(drift_ppm, ENGINE__DRIFT_PPM);
	ENGINE__DEFAULT(prune_interval_us, ENGINE__PRUNE_INTERVAL_US);
	ENGINE__DEFAULT(prune_step, ENGINE__PRUNE_STEP);
	ENGINE__DEFAULT(meta_interval_us, ENGINE__META_INTERVAL_US);
}

static revokd_err
engine__check_config(const engine_config *c)
{
	if (c->store == NULL || c->n_peers > ENGINE_MAX_PEERS ||
	    (c->n_peers > 0 && c->peers == NULL) ||
	    c->max_batch > WIRE_BATCH_MAX ||
	    c->max_frame < WIRE_MAX_FRAME_MIN ||
	    c->recon_jitter_us >= c->recon_interval_us)
		return REVOKD_EINVAL;
	for (unsigned i = 0; i < c->n_peers; i++) {
		if (c->peers[i].region_id == c->region_id)
			return REVOKD_EINVAL;
		for (unsigned j = 0; j < i; j++)
			if (c->peers[j].region_id == c->peers[i].region_id)
				return REVOKD_EINVAL;
	}
	return REVOKD_OK;
}

revokd_err
engine_new(const engine_config *c, const engine_io *io, uint64_t now,
    engine **out)
{
	engine *e;
	revokd_err err;

	if ((e = calloc(1, sizeof(*e))) == NULL)
		return REVOKD_ENOMEM;
	e->cfg = *c;
	engine__defaults(&e->cfg);
	if ((err = engine__check_config(&e->cfg)) != REVOKD_OK) {
		free(e);
		return err;
	}
	e->io = *io;
	e->store = c->store;
	revokd_rng_seed(&e->rng, c->seed);
	e->peers = calloc(c->n_peers ? c->n_peers : 1, sizeof(*e->peers));
	e->wm = calloc(c->n_peers ? c->n_peers : 1, sizeof(*e->wm));
	e->in = calloc(ENGINE__ACC_MAX, sizeof(*e->in));
	e->changed = calloc(ENGINE__ACC_MAX, sizeof(*e->changed));
	if (!e->peers || !e->wm || !e->in || !e->changed ||
	    (err = crdt_reader_new(e->store, &e->reader)) != REVOKD_OK) {
		engine_free(e);
		return err ? err : REVOKD_ENOMEM;
	}
	e->cfg.peers = NULL; /* the caller's array need not outlive us */
	for (unsigned i = 0; i < c->n_peers; i++) {
		e->peers[i].cfg = c->peers[i];
		e->peers[i].index = i;
	}
	engine__wm_load(e);
	/* Saved at once, so direct readers learn the peers (and that none
	 * was heard yet) before any heartbeat, as the engine reports them. */
	e->wm_dirty = true;
	engine__wm_save(e, now);
	e->next_prune_us = now + e->cfg.prune_interval_us;
	e->next_meta_us = now + e->cfg.meta_interval_us;
	*out = e;
	return REVOKD_OK;
}

static void
engine__drop_queues(struct engine__peer *p)
{
	while (p->ctl_head != NULL) {
		struct engine__frame *f = p->ctl_head;

		p->ctl_head = f->next;
		free(f->data);
		free(f);
	}
	p->ctl_tail = NULL;
	p->n_ctl = 0;
	revokd_buf_free(&p->pending);
	p->pending_count = 0;
	p->n_marks = 0;
}

void
engine_free(engine *e)
{
	if (e == NULL)
		return;
	for (unsigned i = 0; e->peers && i < e->cfg.n_peers; i++) {
		struct engine__peer *p = &e->peers[i];

		engine__recon_free(p);
		engine__drop_queues(p);
		free(p->marks);
		free(p->unconf);
	}
	crdt_reader_free(e->reader);
	free(e->peers);
	free(e->wm);
	free(e->in);
	free(e->changed);
	free(e);
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                  */
/* ------------------------------------------------------------------------ */

void
engine__send(engine *e, struct engine__peer *p, wire_peer_type type,
    uint8_t *frame, size_t len)
{
	uint64_t *counter;

	switch (type) {
	case WIRE_BATCH:
	case WIRE_ACK:
		counter = &p->sent.delta;
		break;
	case WIRE_RECON:
		counter = &p->sent.repair;
		break;
	default:
		counter = &p->sent.control;
		break;
	}
	*counter += len;
	p->sending = true;
	e->io.send(e->io.arg, p->index, type, frame, len);
}

revokd_err
engine__queue_msg(engine *e, struct engine__peer *p, const wire_peer_msg *m)
{
	struct engine__frame *f = calloc(1, sizeof(*f));
	revokd_err err;

	(void)e;
	if (f == NULL)
		return REVOKD_ENOMEM;
	if ((err = wire_peer_encode(m, &f->data, &f->len)) != REVOKD_OK) {
		free(f);
		return err;
	}
	f->type = m->type;
	if (p->ctl_tail)
		p->ctl_tail->next = f;
	else
		p->ctl_head = f;
	p->ctl_tail = f;
	p->n_ctl++;
	return REVOKD_OK;
}

/* Encode and send m now. */
static void
engine__send_msg(engine *e, struct engine__peer *p, const wire_peer_msg *m)
{
	uint8_t *frame;
	size_t len;

	/* Our own messages always encode; a failure is out of memory. */
	if (wire_peer_encode(m, &frame, &len) == REVOKD_OK)
		engine__send(e, p, m->type, frame, len);
}

/* How many pending entries, and bytes, fit in one Batch. */
static size_t
engine__batch_cut(engine *e, struct engine__peer *p, uint32_t *count)
{
	size_t off = 0, limit = e->cfg.max_frame - ENGINE__FRAME_OVERHEAD;
	uint32_t n = 0;

	while (n < p->pending_count && n < e->cfg.max_batch) {
		size_t len =
		    CRDT_KEY_LEN +
		    crdt_value_size(p->pending.data + off + CRDT_KEY_LEN,
		        p->pending.len - off - CRDT_KEY_LEN);

		if (off + len > limit)
			break;
		off += len;
		n++;
	}
	*count = n;
	return off;
}

/* Send the next Batch from p's pending entries. */
static void
engine__send_batch(engine *e, struct engine__peer *p, uint64_t now)
{
	wire_peer_msg m = { .type = WIRE_BATCH };
	uint32_t count;
	size_t bytes = engine__batch_cut(e, p, &count), kept = 0;

	m.u.batch.seq = ++p->last_seq;
	m.u.batch.hlc = crdt_clock_tick(&e->clock, now / 1000);
	m.u.batch.count = count;
	m.u.batch.entries = p->pending.data;
	m.u.batch.entries_len = bytes;
	engine__send_msg(e, p, &m);
	/* Local batches ending in this frame are confirmed by its ack. */
	for (size_t i = 0; i < p->n_marks; i++) {
		if (p->marks[i].end <= bytes)
			engine__unconf_add(e, p, p->marks[i].batch,
			    p->last_seq);
		else
			p->marks[kept++] =
			    (struct engine__mark){ p->marks[i].end - bytes,
				    p->marks[i].batch };
	}
	p->n_marks = kept;
	revokd_buf_consume(&p->pending, bytes);
	p->pending_count -= count;
}

static void
engine__send_ctl(engine *e, struct engine__peer *p)
{
	struct engine__frame *f = p->ctl_head;

	p->ctl_head = f->next;
	if (p->ctl_head == NULL)
		p->ctl_tail = NULL;
	p->n_ctl--;
	engine__send(e, p, f->type, f->data, f->len);
	free(f);
}

static void
engine__send_heartbeat(engine *e, struct engine__peer *p, uint64_t now)
{
	wire_peer_msg *m = malloc(sizeof(*m));

	if (m == NULL)
		return;
	m->type = WIRE_HEARTBEAT;
	engine__heartbeat(e, p, now, &m->u.heartbeat);
	p->last_heartbeat_us = now;
	engine__send_msg(e, p, m);
	free(m);
}

/* Send p the most urgent frame due; false when nothing is. */
static bool
engine__send_next(engine *e, struct engine__peer *p, uint64_t now)
{
	wire_peer_msg m = { 0 };
	uint8_t *frame;
	size_t len;

	if (p->pong_owed) {
		m.type = WIRE_PONG;
		m.u.pong = (wire_pong){ p->pong_t1, p->pong_t2, now };
		p->pong_owed = false;
		engine__send_msg(e, p, &m);
	} else if (p->ack_owed) {
		m.type = WIRE_ACK;
		m.u.ack.seq = p->commit_seq;
		p->ack_owed = false;
		engine__send_msg(e, p, &m);
	} else if (p->pending_count > 0 &&
	           p->last_seq - p->acked_seq < e->cfg.window) {
		engine__send_batch(e, p, now);
	} else if (now >= p->last_heartbeat_us + e->cfg.heartbeat_us) {
		/* Due even on a busy link, so freshness keeps moving. */
		engine__send_heartbeat(e, p, now);
	} else if (p->ctl_head != NULL) {
		engine__send_ctl(e, p);
	} else if (engine__recon_next(e, p, now, &frame, &len)) {
		engine__send(e, p, WIRE_RECON, frame, len);
	} else if (now >= p->next_ping_us && p->ping_t1 == 0) {
		m.type = WIRE_PING;
		m.u.ping.t1_us = now;
		p->ping_t1 = now;
		p->next_ping_us = now + e->cfg.ping_us;
		engine__send_msg(e, p, &m);
	} else {
		return false;
	}
	return true;
}

/*
 * One frame at a time is with the host: what changes while it is there
 * joins the next batch, which keeps frames few and batches full.
 */
void
engine__flush(engine *e, struct engine__peer *p, uint64_t now)
{
	if (p->up && !p->sending)
		(void)engine__send_next(e, p, now);
}

/* ------------------------------------------------------------------------ */
/* Queueing changes for peers                                               */
/* ------------------------------------------------------------------------ */

/*
 * Something that changed our state will not be pushed to p: our claims to
 * it stop until a reconciliation that starts after now has finished.
 */
static void
engine__gap(struct engine__peer *p)
{
	p->claims_ok = false;
	p->gap_epoch++;
	p->recon_wanted = true;
}

/* The backlog for p overflowed: drop it and repair by reconciliation. */
static void
engine__overflow(engine *e, struct engine__peer *p)
{
	for (size_t i = 0; i < p->n_marks; i++)
		engine__unconf_add(e, p, p->marks[i].batch, 0);
	revokd_buf_free(&p->pending);
	p->pending_count = 0;
	p->n_marks = 0;
	engine__gap(p);
	p->overflows++;
	engine__peer_event(e, p, ENGINE_PEER_OVERFLOW);
}

/*
 * Queue n entries for p, as local batch `batch` (0: relayed). A peer that
 * is down or behind a gap gets them by reconciliation later.
 */
static void
engine__queue(engine *e, struct engine__peer *p, const crdt_entry *v, size_t n,
    uint64_t batch, uint64_t now)
{
	uint8_t buf[WIRE_ENTRY_MAX];

	if (!p->up) {
		if (batch)
			engine__unconf_add(e, p, batch, 0);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		size_t len = wire_entry_encode(&v[i], buf);

		if (revokd_buf_append(&p->pending, buf, len) != REVOKD_OK) {
			engine__overflow(e, p);
			return;
		}
		p->pending_count++;
	}
	if (batch) {
		struct engine__mark mk = { p->pending.len, batch };

		if (p->n_marks == p->cap_marks) {
			size_t cap = p->cap_marks ? 2 * p->cap_marks : 16;
			void *m = realloc(p->marks, cap * sizeof(*p->marks));

			if (m == NULL) {
				engine__overflow(e, p);
				return;
			}
			p->marks = m;
			p->cap_marks = cap;
		}
		p->marks[p->n_marks++] = mk;
	}
	if (p->pending_count > e->cfg.backlog_max)
		engine__overflow(e, p);
	engine__flush(e, p, now);
}

revokd_err
engine__apply(engine *e, struct engine__peer *from, const crdt_entry *in,
    size_t n, uint64_t now, bool recon)
{
	crdt_apply_stats st;
	revokd_err err;
	engine_notice note = { .type = ENGINE_NOTICE_CHANGED,
		.from_peer = from != NULL,
		.from_recon = recon };

	/* Peers hold these too: a power failure's loss is repaired. */
	err = crdt_store_apply_as(e->store, CRDT_REPLICA, in, n,
	    engine__now_s(now), e->changed, &st);
	if (err != REVOKD_OK)
		return err;
	e->stats.entries_changed += st.changed;
	if (st.changed == 0)
		return REVOKD_OK;
	note.peer = from ? from->index : 0;
	note.entries = e->changed;
	note.n_entries = st.changed;
	engine__notice(e, &note);
	for (unsigned i = 0; i < e->cfg.n_peers; i++) {
		struct engine__peer *p = &e->peers[i];

		if (p == from || !p->up)
			continue;
		/*
		 * Much learned by reconciliation (a region catching up) is
		 * most likely old news to the others: have them reconcile,
		 * which costs little when nothing differs, instead of
		 * relaying it all.
		 */
		if (recon && st.changed > ENGINE__RELAY_RECON_MAX)
			engine__gap(p);
		else
			engine__queue(e, p, e->changed, st.changed, 0, now);
	}
	return REVOKD_OK;
}

/* ------------------------------------------------------------------------ */
/* Peers coming and going                                                   */
/* ------------------------------------------------------------------------ */

void
engine_peer_up(engine *e, unsigned peer, uint64_t now)
{
	struct engine__peer *p;

	if (peer >= e->cfg.n_peers || e->peers[peer].up)
		return;
	p = &e->peers[peer];
	p->up = true;
	p->sending = false;
	p->last_seq = 0;
	p->acked_seq = 0;
	p->recv_seq = 0;
	p->commit_seq = 0;
	p->recv_ok = false;
	p->claims_ok = false;
	p->ack_owed = p->pong_owed = false;
	p->ping_t1 = 0;
	p->next_ping_us = now;
	p->last_heartbeat_us = now;
	/* One side leads the first session; both keep the interval. */
	p->recon_wanted = e->cfg.region_id < p->cfg.region_id;
	p->next_recon_us = engine__jitter(e, now + e->cfg.recon_interval_us,
	    e->cfg.recon_jitter_us);
	engine__flush(e, p, now);
}

void
engine_peer_down(engine *e, unsigned peer, uint64_t now)
{
	struct engine__peer *p;

	(void)now;
	if (peer >= e->cfg.n_peers || !e->peers[peer].up)
		return;
	p = &e->peers[peer];
	for (size_t i = 0; i < p->n_marks; i++)
		engine__unconf_add(e, p, p->marks[i].batch, 0);
	engine__drop_queues(p);
	engine__unconf_lost(p);
	engine__recon_free(p);
	p->up = false;
	p->sending = false;
	p->claims_ok = false;
	p->recv_ok = false;
	p->have_clock = false;
}

void
engine_send_done(engine *e, unsigned peer, uint64_t now)
{
	if (peer >= e->cfg.n_peers)
		return;
	e->peers[peer].sending = false;
	engine__flush(e, &e->peers[peer], now);
}

/* ------------------------------------------------------------------------ */
/* Receiving                                                                */
/* ------------------------------------------------------------------------ */

static void
engine__observe_hlc(engine *e, struct engine__peer *p, crdt_hlc hlc,
    uint64_t now)
{
	crdt_hlc out;

	if (crdt_clock_recv(&e->clock, now / 1000, hlc,
	        e->cfg.max_ahead_us / 1000, &out) == REVOKD_ECLOCK) {
		e->stats.clock_ahead++;
		/*
		 * Every message of a peer whose clock is ahead would be a
		 * notice, and the agent logs each: one a second is enough.
		 */
		if (p->clock_ahead_us == 0 ||
		    now >= p->clock_ahead_us + 1000000) {
			p->clock_ahead_us = now;
			engine__peer_event(e, p, ENGINE_PEER_CLOCK_AHEAD);
		}
	}
}

/*
 * Commit the batches accumulated from one peer, in one transaction, and owe
 * it an acknowledgement up to the last of them.
 */
static void
engine__acc_flush(engine *e, uint64_t now)
{
	struct engine__peer *p = e->acc_peer;
	revokd_err err;

	if (p == NULL)
		return;
	err = engine__apply(e, p, e->in, e->acc_n, now, false);
	e->acc_peer = NULL;
	e->acc_n = 0;
	if (err != REVOKD_OK) {
		/* Not committed: do not acknowledge; repair later. */
		p->recv_ok = false;
		p->recv_gap_epoch++;
		p->recon_wanted = true;
		return;
	}
	p->commit_seq = e->acc_seq;
	p->ack_owed = true;
}

static void
engine__on_batch(engine *e, struct engine__peer *p, const wire_batch *b,
    uint64_t now)
{
	if (b->seq != p->recv_seq + 1) {
		/* A frame went missing or came twice: repair, stop believing
		 * the peer's claims until then. */
		p->recv_ok = false;
		p->recv_gap_epoch++;
		p->recon_wanted = true;
	}
	if (b->seq > p->recv_seq)
		p->recv_seq = b->seq;
	engine__observe_hlc(e, p, b->hlc, now);
	if (e->acc_peer != NULL &&
	    (e->acc_peer != p || e->acc_n + b->count > ENGINE__ACC_MAX))
		engine__acc_flush(e, now);
	engine__unpack(e, b->entries, b->entries_len, b->count, e->acc_n);
	e->acc_peer = p;
	e->acc_n += b->count;
	e->acc_seq = p->recv_seq;
	e->stats.batches_received++;
	e->stats.entries_received += b->count;
}

static revokd_err
engine__dispatch(engine *e, struct engine__peer *p, const wire_peer_msg *m,
    uint64_t now)
{
	if (m->type != WIRE_BATCH)
		engine__acc_flush(e, now); /* before anything that follows */
	switch (m->type) {
	case WIRE_BATCH:
		engine__on_batch(e, p, &m->u.batch, now);
		return REVOKD_OK;
	case WIRE_ACK:
		if (m->u.ack.seq > p->last_seq)
			return REVOKD_EPROTO;
		p->last_ack_us = now;
		if (m->u.ack.seq > p->acked_seq)
			p->acked_seq = m->u.ack.seq;
		engine__unconf_ack(e, p, m->u.ack.seq);
		return REVOKD_OK;
	case WIRE_HEARTBEAT:
		engine__observe_hlc(e, p, m->u.heartbeat.hlc, now);
		engine__on_heartbeat(e, p, &m->u.heartbeat, now);
		return REVOKD_OK;
	case WIRE_PING:
		p->pong_owed = true;
		p->pong_t1 = m->u.ping.t1_us;
		p->pong_t2 = now;
		return REVOKD_OK;
	case WIRE_PONG:
		engine__on_pong(e, p, &m->u.pong, now);
		return REVOKD_OK;
	case WIRE_RECON:
		return engine__recon_receive(e, p, &m->u.recon, now);
	default:
		/* Hello and Auth belong to the host's handshake. */
		return REVOKD_EPROTO;
	}
}

revokd_err
engine_receive_frames(engine *e, unsigned peer, const engine_frame *frames,
    size_t n, uint64_t now)
{
	struct engine__peer *p;
	revokd_err err = REVOKD_OK;

	if (peer >= e->cfg.n_peers || !e->peers[peer].up)
		return REVOKD_OK; /* frames from a connection now gone */
	p = &e->peers[peer];
	for (size_t i = 0; i < n && err == REVOKD_OK; i++) {
		wire_peer_msg m;

		p->bytes_received += frames[i].len + WIRE_HEADER_LEN;
		if ((err = wire_peer_decode(frames[i].data, frames[i].len,
		         &m)) != REVOKD_OK)
			break;
		err = engine__dispatch(e, p, &m, now);
		wire_peer_msg_free(&m);
	}
	/* What was received before an error is committed all the same. */
	if (!e->holding || err != REVOKD_OK)
		engine__acc_flush(e, now);
	if (err == REVOKD_OK && p->up)
		engine__flush(e, p, now);
	return err;
}

void
engine_hold(engine *e)
{
	e->holding = true;
}

void
engine_release(engine *e, uint64_t now)
{
	struct engine__peer *p = e->acc_peer;

	e->holding = false;
	engine__acc_flush(e, now);
	if (p != NULL && p->up)
		engine__flush(e, p, now);
}

revokd_err
engine_receive(engine *e, unsigned peer, const uint8_t *frame, size_t len,
    uint64_t now)
{
	engine_frame f = { frame, len };

	return engine_receive_frames(e, peer, &f, 1, now);
}

/* ------------------------------------------------------------------------ */
/* Local writes                                                             */
/* ------------------------------------------------------------------------ */

/* The stored entry under key, or a zeroed one of kind; false if none. */
static bool
engine__current(engine *e, const crdt_key *key, crdt_kind kind, crdt_entry *out)
{
	revokd_err err = crdt_reader_get(e->reader, key, out);

	if (err == REVOKD_OK && out->kind == kind)
		return true;
	memset(out, 0, sizeof(*out));
	out->key = *key;
	out->kind = kind;
	return false;
}

/* How many bumps of key come before op i in this batch. */
static uint64_t
engine__earlier_bumps(const engine_op *ops, size_t i)
{
	uint64_t n = 0;

	for (size_t j = 0; j < i; j++)
		n += ops[j].type == ENGINE_OP_REVOKE_USER && ops[j].bump &&
		     crdt_key_cmp(&ops[j].key, &ops[i].key) == 0;
	return n;
}

/*
 * The entry op i writes. A revocation is stamped no earlier than the
 * restore it overrides, and a restore after the revocation it undoes, so a
 * local clock that stepped back cannot make an admin's write a no-op.
 */
static revokd_err
engine__op_entry(engine *e, const engine_op *ops, size_t i, uint64_t now,
    crdt_entry *out)
{
	const engine_op *op = &ops[i];
	crdt_hlc t = crdt_clock_tick(&e->clock, now / 1000);
	crdt_entry cur;
	uint64_t mine = 0;

	if (op->type == ENGINE_OP_MERGE) {
		*out = op->entry;
		return crdt_kind_valid(out->kind) ? REVOKD_OK : REVOKD_EINVAL;
	}
	if (!crdt_kind_valid(op->kind) ||
	    crdt_kind_is_token(op->kind) != (op->type != ENGINE_OP_REVOKE_USER))
		return REVOKD_EINVAL;
	engine__current(e, &op->key, op->kind, &cur);
	memset(out, 0, sizeof(*out));
	out->key = op->key;
	out->kind = op->kind;
	switch (op->type) {
	case ENGINE_OP_REVOKE:
		out->u.token.exp = op->exp;
		out->u.token.revoked_at =
		    t > cur.u.token.restored_at ? t : cur.u.token.restored_at;
		out->u.token.origin = e->cfg.region_id;
		out->u.token.reason = op->reason;
		return REVOKD_OK;
	case ENGINE_OP_RESTORE:
		out->u.token.exp = op->exp;
		out->u.token.restored_at =
		    t > cur.u.token.revoked_at ? t : cur.u.token.revoked_at + 1;
		return REVOKD_OK;
	case ENGINE_OP_REVOKE_USER:
		for (uint32_t k = 0; k < cur.u.subject.n; k++)
			if (cur.u.subject.region[k] == e->cfg.region_id)
				mine = cur.u.subject.count[k];
		out->u.subject.not_before_ms = op->not_before_ms;
		if (!op->bump)
			return REVOKD_OK;
		return crdt_subject_bump(&out->u.subject, e->cfg.region_id,
		    mine + 1 + engine__earlier_bumps(ops, i));
	default:
		return REVOKD_EINVAL;
	}
}

/* Fill after[] with the state of each op's key. */
static void
engine__read_after(engine *e, const engine_op *ops, size_t n, crdt_entry *after)
{
	if (crdt_reader_begin(e->reader) != REVOKD_OK)
		return;
	for (size_t i = 0; i < n; i++) {
		const crdt_key *k = ops[i].type == ENGINE_OP_MERGE
		                        ? &ops[i].entry.key
		                        : &ops[i].key;

		if (crdt_reader_get(e->reader, k, &after[i]) != REVOKD_OK) {
			memset(&after[i], 0, sizeof(after[i]));
			after[i].key = *k;
		}
	}
	crdt_reader_end(e->reader);
}

/* Build the batch's entries into v (n of them). */
static revokd_err
engine__build_ops(engine *e, const engine_op *ops, size_t n, uint64_t now,
    crdt_entry *v)
{
	revokd_err err;

	if ((err = crdt_reader_begin(e->reader)) != REVOKD_OK)
		return err;
	for (size_t i = 0; i < n && err == REVOKD_OK; i++)
		err = engine__op_entry(e, ops, i, now, &v[i]);
	crdt_reader_end(e->reader);
	return err;
}

revokd_err
engine_local(engine *e, const engine_op *ops, size_t n, uint64_t now,
    uint64_t *batch, crdt_entry *after)
{
	crdt_entry *v = calloc(n ? 2 * n : 1, sizeof(*v)), *changed = v + n;
	engine_notice note = { 0 };
	revokd_err err;
	crdt_apply_stats st;

	if (v == NULL)
		return REVOKD_ENOMEM;
	if ((err = engine__build_ops(e, ops, n, now, v)) != REVOKD_OK)
		goto out;
	err =
	    crdt_store_apply(e->store, v, n, engine__now_s(now), changed, &st);
	if (err != REVOKD_OK)
		goto out;
	e->last_batch++;
	e->stats.local_batches++;
	note.type = ENGINE_NOTICE_COMMITTED;
	note.batch = e->last_batch;
	engine__notice(e, &note);
	if (st.changed > 0) {
		note = (engine_notice){ .type = ENGINE_NOTICE_CHANGED,
			.entries = changed,
			.n_entries = st.changed };
		engine__notice(e, &note);
	}
	/* Every op goes out, changed or not, so that its confirmation means
	 * the peer really holds it. */
	for (unsigned i = 0; i < e->cfg.n_peers; i++)
		engine__queue(e, &e->peers[i], v, n, e->last_batch, now);
	if (after != NULL)
		engine__read_after(e, ops, n, after);
	if (batch != NULL)
		*batch = e->last_batch;
out:
	free(v);
	return err;
}

/* ------------------------------------------------------------------------ */
/* Timers                                                                   */
/* ------------------------------------------------------------------------ */

static void
engine__prune(engine *e, uint64_t now)
{
	size_t pruned = 0, step = e->prune_step_now;
	bool more = false;
	revokd_err err;
	int dead;

	(void)crdt_store_sync(e->store); /* bound the replica window */
	/* Direct readers that died must not pin old pages. */
	(void)crdt_store_reader_check(e->store, &dead);
	if (step == 0 || step > e->cfg.prune_step)
		step = e->cfg.prune_step;
	err = crdt_store_prune(e->store, engine__now_s(now), step, &pruned,
	    &more);
	if (err == REVOKD_OK) {
		e->stats.pruned += pruned;
		e->prune_step_now =
		    step < e->cfg.prune_step / 2 ? 2 * step : e->cfg.prune_step;
	} else if (err == REVOKD_EMAPFULL || err == REVOKD_ENOSPACE) {
		/*
		 * A full store gets room back only by pruning, and deleting
		 * takes pages too (copy on write): a whole step may not fit
		 * where a smaller one does. Halve it and retry soon; it
		 * grows back as steps succeed.
		 */
		e->prune_step_now = step > 1 ? step / 2 : 1;
		more = true;
	}
	/* Keep sweeping at once while a sweep is under way. */
	e->next_prune_us = now + (more ? e->cfg.prune_interval_us / 10
	                               : e->cfg.prune_interval_us);
}

static void
engine__peer_tick(engine *e, struct engine__peer *p, uint64_t now)
{
	if (!p->up)
		return;
	engine__recon_tick(e, p, now);
	if (p->out == NULL && p->in == NULL &&
	    (p->recon_wanted || now >= p->next_recon_us)) {
		/* Refused (EAGAIN) while in a session with another peer. */
		if (engine__recon_start(e, p, now) == REVOKD_OK) {
			p->recon_wanted = false;
			p->next_recon_us =
			    engine__jitter(e, now + e->cfg.recon_interval_us,
			        e->cfg.recon_jitter_us);
		}
	}
	engine__flush(e, p, now);
}

/* Carry a rebuild of the store's filter of present keys forward. */
static void
engine__filter(engine *e)
{
	bool more = false;

	if (crdt_store_filter_step(e->store, ENGINE__FILTER_STEP, &more) !=
	    REVOKD_OK)
		more = false; /* lookups stay right without it; retried */
	e->filter_more = more;
}

void
engine_tick(engine *e, uint64_t now)
{
	for (unsigned i = 0; i < e->cfg.n_peers; i++)
		engine__peer_tick(e, &e->peers[i], now);
	if (now >= e->next_prune_us)
		engine__prune(e, now);
	engine__filter(e);
	if (now >= e->next_meta_us) {
		/* Direct readers compute staleness from these. */
		engine__wm_save(e, now);
		e->next_meta_us = now + e->cfg.meta_interval_us;
	}
}

void
engine_save(engine *e, uint64_t now)
{
	e->wm_dirty = true;
	engine__wm_save(e, now);
}

static uint64_t
engine__min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

uint64_t
engine_next_tick(const engine *e, uint64_t now)
{
	uint64_t t = engine__min(now + 1000000, e->next_prune_us);
	bool busy = false;

	if (e->filter_more)
		t = engine__min(t, now + ENGINE__FILTER_PAUSE_US);
	/* A session anywhere holds every other back (engine_recon.c). */
	for (unsigned i = 0; i < e->cfg.n_peers; i++)
		busy |= e->peers[i].in != NULL || e->peers[i].out != NULL;
	t = engine__min(t, e->next_meta_us);
	for (unsigned i = 0; i < e->cfg.n_peers; i++) {
		const struct engine__peer *p = &e->peers[i];

		if (!p->up)
			continue;
		t = engine__min(t, engine__recon_deadline(p));
		if (!busy)
			t = engine__min(t,
			    p->recon_wanted ? now : p->next_recon_us);
		if (!p->sending) {
			t = engine__min(t,
			    p->last_heartbeat_us + e->cfg.heartbeat_us);
			if (p->ping_t1 == 0)
				t = engine__min(t, p->next_ping_us);
		}
	}
	return t > now ? t : now;
}

/* ------------------------------------------------------------------------ */
/* State                                                                    */
/* ------------------------------------------------------------------------ */

void
engine_get_peer_status(const engine *e, unsigned peer, engine_peer_status *out)
{
	const struct engine__peer *p;

	memset(out, 0, sizeof(*out));
	if (peer >= e->cfg.n_peers)
		return;
	p = &e->peers[peer];
	out->up = p->up;
	out->synced = p->up && p->claims_ok && p->recv_ok;
	out->recon_active = p->out != NULL || p->in != NULL;
	out->have_clock = p->have_clock;
	out->offset_us = p->offset_us;
	out->rtt_us = p->rtt_us;
	out->last_ack_us = p->last_ack_us;
	out->backlog = p->pending_count;
	out->confirmed = p->n_unconf ? p->unconf[0].lo - 1 : e->last_batch;
	for (size_t i = 1; i < p->n_unconf; i++)
		if (p->unconf[i].lo - 1 < out->confirmed)
			out->confirmed = p->unconf[i].lo - 1;
	out->sent = p->sent;
	out->bytes_received = p->bytes_received;
	out->recon_sessions = p->recon_sessions;
	out->overflows = p->overflows;
}

void
engine_get_stats(const engine *e, engine_stats *out)
{
	*out = e->stats;
	memset(&out->sent, 0, sizeof(out->sent));
	for (unsigned i = 0; i < e->cfg.n_peers; i++) {
		out->sent.delta += e->peers[i].sent.delta;
		out->sent.repair += e->peers[i].sent.repair;
		out->sent.control += e->peers[i].sent.control;
	}
}

uint64_t
engine_last_batch(const engine *e)
{
	return e->last_batch;
}
