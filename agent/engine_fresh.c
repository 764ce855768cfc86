/*
 * engine_fresh.c: how fresh the local state is, and what peers hold: clock
 * offsets from ping/pong, watermarks from heartbeats, staleness, and the
 * confirmation of local batches.
 */
#include "agent/engine_int.h"

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Clocks                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * Times (µs) a peer may put in a Pong or a watermark, about 73,000 years:
 * differences and sums of a few such times fit an int64_t. Later ones are
 * refused.
 */
#define ENGINE__TIME_MAX (UINT64_C(1) << 61)

/*
 * NTP's estimate: with t1 (ping left, our clock), t2 (arrived, theirs),
 * t3 (pong left, theirs) and t4 (pong arrived, ours), the offset is
 * ((t2 - t1) + (t3 - t4)) / 2 and the true offset lies within half the
 * round trip (t4 - t1) - (t3 - t2) of it, whatever the path asymmetry.
 */
void
engine__on_pong(engine *e, struct engine__peer *p, const wire_pong *m,
    uint64_t now)
{
	int64_t t1, t2, t3, t4, rtt;

	/*
	 * Only the pong of our outstanding ping counts; others are stale.
	 * Times past ENGINE__TIME_MAX are refused before any arithmetic:
	 * the sums below cannot overflow for times under it.
	 */
	if (p->ping_t1 == 0 || m->t1_us != p->ping_t1 ||
	    m->t2_us >= ENGINE__TIME_MAX || m->t3_us >= ENGINE__TIME_MAX ||
	    now >= ENGINE__TIME_MAX || m->t1_us >= ENGINE__TIME_MAX)
		return;
	t1 = (int64_t)m->t1_us, t2 = (int64_t)m->t2_us;
	t3 = (int64_t)m->t3_us, t4 = (int64_t)now;
	rtt = (t4 - t1) - (t3 - t2);
	if (t3 < t2 || t4 < t1)
		return;
	p->ping_t1 = 0;
	p->offset_us = ((t2 - t1) + (t3 - t4)) / 2;
	p->rtt_us = rtt > 0 ? (uint64_t)rtt : 0;
	p->clock_at_us = now;
	p->have_clock = true;
	engine__peer_event(e, p, ENGINE_PEER_CLOCK);
}

/*
 * A time on p's clock as a time on ours that is certainly no later: minus
 * the offset, minus half the round trip (the offset's uncertainty), minus
 * what the two clocks may have drifted apart since the measurement.
 */
static int64_t
engine__to_local(const engine *e, const struct engine__peer *p, uint64_t t,
    uint64_t now)
{
	uint64_t age = now > p->clock_at_us ? now - p->clock_at_us : 0;
	int64_t drift =
	    (int64_t)(age / 1000000 * 2 * e->cfg.drift_ppm +
	              age % 1000000 * 2 * e->cfg.drift_ppm / 1000000);

	return (int64_t)t - p->offset_us - (int64_t)(p->rtt_us / 2) - drift - 1;
}

/* ------------------------------------------------------------------------ */
/* Watermarks                                                               */
/* ------------------------------------------------------------------------ */

/* The peer index serving region_id, or -1. */
static int
engine__peer_of(const engine *e, uint16_t region_id)
{
	for (unsigned i = 0; i < e->cfg.n_peers; i++)
		if (e->peers[i].cfg.region_id == region_id)
			return (int)i;
	return -1;
}

void
engine__heartbeat(engine *e, struct engine__peer *p, uint64_t now,
    wire_heartbeat *m)
{
	memset(m, 0, sizeof(*m));
	m->hlc = crdt_clock_tick(&e->clock, now / 1000);
	m->last_seq = p->last_seq;
	/* Entries still waiting (behind the window) are not the peer's yet. */
	if (!p->claims_ok || p->pending_count > 0)
		return;
	/* Ours: everything we made before now is in the stream already. */
	m->watermarks[m->n_watermarks++] =
	    (wire_watermark){ e->cfg.region_id, now };
	for (unsigned i = 0; i < e->cfg.n_peers; i++)
		if (&e->peers[i] != p && e->wm[i] != 0)
			m->watermarks[m->n_watermarks++] =
			    (wire_watermark){ e->peers[i].cfg.region_id,
				    e->wm[i] };
}

void
engine__on_heartbeat(engine *e, struct engine__peer *p, const wire_heartbeat *h,
    uint64_t now)
{
	/*
	 * The claims hold for what p held when it sent them; we hold the
	 * same only if every batch p sent before arrived, and the stream has
	 * had no gap since a reconciliation made us a superset of p.
	 */
	if (!p->recv_ok || !p->have_clock || h->last_seq > p->recv_seq)
		return;
	for (uint32_t i = 0; i < h->n_watermarks; i++) {
		int k = engine__peer_of(e, h->watermarks[i].region_id);
		int64_t t;

		if (k < 0)
			continue; /* ours, or a region we do not know */
		if (h->watermarks[i].complete_us >= ENGINE__TIME_MAX)
			continue; /* no such time: the sum below would overflow
			           */
		t = engine__to_local(e, p, h->watermarks[i].complete_us, now);
		if (t > (int64_t)now)
			t = (int64_t)now;
		if (t > 0 && (uint64_t)t > e->wm[k]) {
			e->wm[k] = (uint64_t)t;
			e->wm_dirty = true;
		}
	}
}

uint64_t
engine_staleness_us(const engine *e, uint64_t now)
{
	uint64_t oldest = now;

	for (unsigned i = 0; i < e->cfg.n_peers; i++)
		if (e->wm[i] < oldest)
			oldest = e->wm[i];
	return now - oldest;
}

uint64_t
engine_watermark(const engine *e, uint16_t region_id)
{
	int k = engine__peer_of(e, region_id);

	return k < 0 ? 0 : e->wm[k];
}

/*
 * Saved as "revokd.watermarks": per configured region (ours first), its id
 * (u16 LE) and watermark (u64 LE, our clock; ours is the save time). The
 * direct reader computes staleness from it: now - the smallest watermark
 * among the peers.
 */
void
engine__wm_save(engine *e, uint64_t now)
{
	uint8_t buf[10 * (ENGINE_MAX_PEERS + 1)];
	size_t len = 0;

	if (!e->wm_dirty)
		return;
	for (unsigned i = 0; i <= e->cfg.n_peers; i++) {
		uint16_t id =
		    i == 0 ? e->cfg.region_id : e->peers[i - 1].cfg.region_id;
		uint64_t t = i == 0 ? now : e->wm[i - 1];

		for (int b = 0; b < 2; b++)
			buf[len++] = (uint8_t)(id >> (8 * b));
		for (int b = 0; b < 8; b++)
			buf[len++] = (uint8_t)(t >> (8 * b));
	}
	if (crdt_store_meta_put(e->store, ENGINE__META_WATERMARKS, buf, len) ==
	    REVOKD_OK)
		e->wm_dirty = false;
}

void
engine__wm_load(engine *e)
{
	uint8_t buf[10 * (ENGINE_MAX_PEERS + 1)];
	size_t len = 0;

	if (crdt_reader_begin(e->reader) != REVOKD_OK)
		return;
	if (crdt_reader_meta_get(e->reader, ENGINE__META_WATERMARKS, buf,
	        sizeof(buf), &len) != REVOKD_OK)
		len = 0;
	crdt_reader_end(e->reader);
	for (size_t off = 0; off + 10 <= len; off += 10) {
		uint16_t id = (uint16_t)(buf[off] | buf[off + 1] << 8);
		uint64_t t = 0;
		int k = engine__peer_of(e, id);

		for (int b = 7; b >= 0; b--)
			t = t << 8 | buf[off + 2 + b];
		if (k >= 0)
			e->wm[k] = t;
	}
}

/* ------------------------------------------------------------------------ */
/* Confirmations                                                            */
/* ------------------------------------------------------------------------ */

static void
engine__confirm(engine *e, struct engine__peer *p, uint64_t lo, uint64_t hi)
{
	engine_notice n = { .type = ENGINE_NOTICE_CONFIRMED, .peer = p->index };

	for (uint64_t b = lo; b <= hi; b++) {
		n.batch = b;
		engine__notice(e, &n);
	}
}

static void
engine__unconf_remove(struct engine__peer *p, size_t i)
{
	memmove(&p->unconf[i], &p->unconf[i + 1],
	    (p->n_unconf - i - 1) * sizeof(*p->unconf));
	p->n_unconf--;
}

void
engine__unconf_add(engine *e, struct engine__peer *p, uint64_t batch,
    uint64_t seq)
{
	struct engine__unconf *last =
	    p->n_unconf ? &p->unconf[p->n_unconf - 1] : NULL;

	(void)e;
	if (last && last->seq == seq && last->hi + 1 == batch) {
		last->hi = batch;
		return;
	}
	if (p->n_unconf == ENGINE__UNCONF_MAX) {
		/* Too much to track one by one: repair confirms it all. */
		engine__unconf_lost(p);
		p->unconf[p->n_unconf - 1].hi = batch;
		p->recon_wanted = true;
		return;
	}
	if (p->n_unconf == p->cap_unconf) {
		size_t cap = p->cap_unconf ? 2 * p->cap_unconf : 16;
		void *v = realloc(p->unconf, cap * sizeof(*p->unconf));

		if (v == NULL) {
			/* Keep the last range growing instead: still sound. */
			if (last)
				last->hi = batch, last->seq = 0;
			return;
		}
		p->unconf = v;
		p->cap_unconf = cap;
	}
	p->unconf[p->n_unconf++] = (struct engine__unconf){ batch, batch, seq };
}

void
engine__unconf_ack(engine *e, struct engine__peer *p, uint64_t seq)
{
	for (size_t i = 0; i < p->n_unconf;) {
		struct engine__unconf u = p->unconf[i];

		if (u.seq != 0 && u.seq <= seq) {
			engine__unconf_remove(p, i);
			engine__confirm(e, p, u.lo, u.hi);
		} else {
			i++;
		}
	}
}

void
engine__unconf_lost(struct engine__peer *p)
{
	size_t n = 0;

	/* Everything becomes "needs repair"; merge ranges that now touch. */
	for (size_t i = 0; i < p->n_unconf; i++) {
		struct engine__unconf u = p->unconf[i];

		u.seq = 0;
		if (n > 0 && p->unconf[n - 1].hi + 1 >= u.lo) {
			if (u.hi > p->unconf[n - 1].hi)
				p->unconf[n - 1].hi = u.hi;
		} else {
			p->unconf[n++] = u;
		}
	}
	p->n_unconf = n;
}

void
engine__unconf_repaired(engine *e, struct engine__peer *p, uint64_t upto)
{
	for (size_t i = 0; i < p->n_unconf;) {
		struct engine__unconf *u = &p->unconf[i];
		uint64_t lo = u->lo, hi = u->hi < upto ? u->hi : upto;

		if (u->seq != 0 || lo > upto) {
			i++;
			continue;
		}
		if (u->hi <= upto)
			engine__unconf_remove(p, i);
		else
			u->lo = upto + 1, i++;
		engine__confirm(e, p, lo, hi);
	}
}
