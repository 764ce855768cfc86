/*
 * engine_recon.c: range-based set reconciliation between two peers.
 *
 * Theory. The key space is a tree: a node is a key prefix (lo, depth bits),
 * its range every key starting with it. Summaries of nodes at or above the
 * store's bucket level cost nothing (sums of bucket summaries kept in
 * memory); deeper ones come from a scan inside one bucket. One side leads a
 * session (L), the other compares (C). Both walk the same tree breadth-first,
 * keeping the same queue of nodes in the same order, so a node is never named
 * on the wire: it is "the next one".
 *
 *   ROUND (L -> C): for each of the next nodes, L's summary of it (count
 *   mod 256 and the low 48 bits of the fingerprint: SUM), or L's entries in
 *   it when it has at most RECON_LEADER_SMALL of them (ITEMS), or nothing
 *   at all for the last child of a node (DERIVED: C computes it as the
 *   parent's summary minus the siblings').
 *
 *   REPLY (C -> L), one per ROUND, after C has streamed its items: per
 *   node, SAME (equal; for an ITEMS node: C merged L's entries and has
 *   streamed every entry of its own there that L lacks), SPLIT2 or SPLIT16
 *   (differs: L sends its 2 or 16 children next; C picks 16 when the counts
 *   differ by 8 or more, so that many differences are certain and a wide
 *   split costs less than four binary ones), or C_ITEMS (differs, and C has
 *   at most RECON_SMALL entries there: here they are).
 *
 *   ITEMS (either way): streamed entries, merged on arrival, no answer.
 *   DONE (L -> C): the queue is empty and every reply is in; L has
 *   streamed what C lacked. FIN (C -> L): C has everything of L's.
 *
 *   BUSY (C -> L), instead of a REPLY to a first ROUND: C is in another
 *   session, or L started too many; L tries again 100 to 300 ms later. A
 *   region takes part in one session at a time, in either role, so that one
 *   that joins empty, or comes back from a long partition, is not sent the
 *   same entries by every peer at once (nor asks for them twice while still
 *   filling up). A peer that says it holds nothing is streamed the whole
 *   store for a few bytes of ROUND: that is how a region joins, but it must
 *   not be had on demand, so a peer may lead ENGINE__RECON_IN_BURST
 *   sessions with us at once and then as many per recon_interval.
 *
 *   REPLY and DONE carry how many ITEMS frames their sender sent in the
 *   session before them. The receiver counts what arrived: a lost frame
 *   (which TLS over TCP never allows, but a broken transport might) aborts
 *   the session instead of letting it vouch for what is missing.
 *
 * After DONE both sides hold the union of what they held in every range
 * when it was compared; what changed since reached the other side by eager
 * push. Traffic: a SUM is 7 bytes, a DERIVED none, and only differing nodes
 * are split, so the bytes grow with the difference times the depth of the
 * tree below the first common ancestor, not with the size of the state.
 * Fingerprints are truncated to 48 bits: a false "equal" needs a 2^-48
 * coincidence in one node, and the next session (the sums change as soon as
 * either side writes there) catches it.
 */
#include "agent/engine_int.h"

#include <stdlib.h>
#include <string.h>

/* Message kinds (wire_recon.kind). */
enum {
	RECON_ROUND = 1,
	RECON_REPLY = 2,
	RECON_ITEMS = 3,
	RECON_DONE = 4,
	RECON_FIN = 5,
	RECON_ABORT = 6,
	RECON_BUSY = 7,
};

/* Node record modes (ROUND) and statuses (REPLY), two bits each. */
enum { MODE_SUM = 0, MODE_ITEMS = 1, MODE_DERIVED = 2 };
enum { ST_SAME = 0, ST_SPLIT2 = 1, ST_SPLIT16 = 2, ST_C_ITEMS = 3 };

/*
 * The comparer answers with its entries when it has at most RECON_SMALL in a
 * differing node; the leader sends entries instead of a summary only for an
 * empty node. Measured with revokd-sim (1M entries, 1,000 differing): a
 * leader sending its single entry costs 44 bytes wherever the difference is
 * the comparer's, and made repairs 27% larger; a comparer that never sends
 * entries makes a same-key change (a restore) split down to the full key.
 */
#define RECON_SMALL 1
#define RECON_LEADER_SMALL 0

/* A count difference at least this large earns a 16-way split. */
#define RECON_WIDE_DELTA 8

/* Nodes in one ROUND, and in one session's queue. */
#define RECON_PART_MAX 1024
#define RECON_QUEUE_MAX (1u << 22)

/* Entries of the other side's a stream leaves out (beyond: sent anyway). */
#define RECON_FILTER_MAX 8

/*
 * A summary on the wire: the count modulo 2^RECON_COUNT_BITS and the low 48
 * bits of the fingerprint. The count is only ever compared and subtracted,
 * so its low bits serve; the fingerprint carries the weight.
 */
#define RECON_COUNT_BITS 8
#define COUNT_MASK ((1u << RECON_COUNT_BITS) - 1)
#define RECON_SUM_LEN (RECON_COUNT_BITS / 8 + 6)
#define FP48 ((UINT64_C(1) << 48) - 1)

/* Node flags. */
#define NODE_FIRST 1u /* first child of its parent */
#define NODE_LAST 2u  /* last child of its parent */
#define NODE_HAS_PARENT 4u

/* A node in a session's queue. */
struct recon_node {
	crdt_key lo;
	uint8_t depth;
	uint8_t flags;
	uint8_t mode;    /* leader: how it was sent */
	uint16_t pcount; /* comparer: leader's summary of the parent */
	uint64_t pfp;
};

/* A queue of nodes (array with a moving head). */
struct recon_fifo {
	struct recon_node *v;
	size_t head, len, cap;
};

/*
 * Something to send, in order: a message (encoded when its turn comes, so
 * it can count the ITEMS frames before it), or a stream of our entries.
 */
struct recon_job {
	struct recon_job *next;
	bool is_msg;
	uint32_t kind, round; /* message */
	revokd_buf nodes, items;
	uint32_t n_items;
	crdt_key lo, hi; /* stream */
	bool to_end;     /* hi is the end of the key space */
	size_t n_filter;
	crdt_key filter_key[RECON_FILTER_MAX];
	crdt_summary filter_sum[RECON_FILTER_MAX];
};

struct engine__recon {
	bool leader;
	bool done_sent; /* leader: DONE is out, waiting for FIN */
	uint32_t session;
	uint32_t round; /* leader: ROUNDs sent; comparer: received */
	uint64_t last_heard_us;
	uint64_t upto; /* last local batch when the session began */
	uint64_t gap_epoch, recv_gap_epoch;
	struct recon_fifo queue; /* leader: to send; comparer: expected */
	struct recon_fifo sent;  /* leader: sent, awaiting their status */
	uint32_t *parts;         /* leader: node counts of ROUNDs awaiting */
	size_t n_parts, cap_parts;
	uint16_t acc_count; /* comparer: leader's siblings so far */
	uint64_t acc_fp;
	uint32_t chunks_sent; /* ITEMS frames sent and received */
	uint32_t chunks_recv;
	struct recon_job *jobs, *jobs_tail;
};

/* ------------------------------------------------------------------------ */
/* Keys and nodes                                                           */
/* ------------------------------------------------------------------------ */

static void
recon_child(const crdt_key *lo, unsigned depth, unsigned bits, unsigned i,
    crdt_key *out)
{
	*out = *lo;
	for (unsigned b = 0; b < bits; b++)
		if ((i >> (bits - 1 - b)) & 1)
			out->b[(depth + b) / 8] |= 0x80 >> ((depth + b) % 8);
}

/* The first key after node (lo, depth); false when that is the end. */
static bool
recon_hi(const crdt_key *lo, unsigned depth, crdt_key *hi)
{
	int bit = (int)depth - 1;

	if (depth == 0)
		return false;
	*hi = *lo;
	for (int byte = bit / 8, add = 0x80 >> (bit % 8); byte >= 0; byte--) {
		unsigned v = hi->b[byte] + (unsigned)add;

		hi->b[byte] = (uint8_t)v;
		if (v < 256)
			return true;
		add = 1;
	}
	return false;
}

static bool
recon_in_node(const crdt_key *k, const crdt_key *lo, unsigned depth)
{
	crdt_key hi;

	if (crdt_key_cmp(k, lo) < 0)
		return false;
	return !recon_hi(lo, depth, &hi) || crdt_key_cmp(k, &hi) < 0;
}

/* Our summary of a node, truncated as on the wire. */
static revokd_err
recon_summary(engine *e, const struct recon_node *n, uint16_t *count,
    uint64_t *fp)
{
	crdt_summary s;
	crdt_key hi;
	revokd_err err = REVOKD_OK;

	if (n->depth <= CRDT_BUCKET_BITS) {
		uint32_t b = crdt_key_bucket(&n->lo);

		crdt_store_buckets_sum(e->store, b,
		    b + (1u << (CRDT_BUCKET_BITS - n->depth)), &s);
	} else {
		err = crdt_reader_range_summary(e->reader, &n->lo,
		    recon_hi(&n->lo, n->depth, &hi) ? &hi : NULL, &s);
	}
	*count = (uint16_t)(s.count & COUNT_MASK);
	*fp = s.fp_lo & FP48;
	return err;
}

/* ------------------------------------------------------------------------ */
/* Queues                                                                   */
/* ------------------------------------------------------------------------ */

static revokd_err
fifo_push(struct recon_fifo *f, const struct recon_node *n)
{
	if (f->head > 0 && f->head + f->len == f->cap) {
		memmove(f->v, f->v + f->head, f->len * sizeof(*f->v));
		f->head = 0;
	}
	if (f->len == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 64;
		void *v;

		if (f->len >= RECON_QUEUE_MAX ||
		    (v = realloc(f->v, cap * sizeof(*f->v))) == NULL)
			return REVOKD_ENOMEM;
		f->v = v;
		f->cap = cap;
	}
	f->v[f->head + f->len++] = *n;
	return REVOKD_OK;
}

/* Take the front node (a copy: pushing may move the array). */
static struct recon_node
fifo_pop(struct recon_fifo *f)
{
	f->len--;
	return f->v[f->head++];
}

/*
 * Queue the 2^bits children of a node; the comparer records the parent's
 * summary with them.
 */
static revokd_err
recon_push_children(struct recon_fifo *f, const struct recon_node *parent,
    unsigned bits, uint16_t pcount, uint64_t pfp)
{
	unsigned fan = 1u << bits;
	revokd_err err = REVOKD_OK;

	for (unsigned i = 0; i < fan && err == REVOKD_OK; i++) {
		struct recon_node c = { .depth =
			                    (uint8_t)(parent->depth + bits),
			.flags = NODE_HAS_PARENT | (i == 0 ? NODE_FIRST : 0) |
			         (i == fan - 1 ? NODE_LAST : 0),
			.pcount = pcount,
			.pfp = pfp };

		recon_child(&parent->lo, parent->depth, bits, i, &c.lo);
		err = fifo_push(f, &c);
	}
	return err;
}

/* The first round's nodes: the 16 prefixes of 4 bits, no parent. */
static revokd_err
recon_push_start(struct recon_fifo *f)
{
	struct recon_node root = { .depth = 0 };
	revokd_err err = recon_push_children(f, &root, 4, 0, 0);

	for (size_t i = 0; i < f->len; i++)
		f->v[f->head + i].flags = 0;
	return err;
}

static void
recon_job_add(struct engine__recon *r, struct recon_job *j)
{
	if (r->jobs_tail)
		r->jobs_tail->next = j;
	else
		r->jobs = j;
	r->jobs_tail = j;
}

/* Queue a message for after what is queued already (takes the buffers). */
static revokd_err
recon_job_msg(struct engine__recon *r, uint32_t kind, uint32_t round,
    revokd_buf *nodes, revokd_buf *items, uint32_t n_items)
{
	struct recon_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return REVOKD_ENOMEM;
	j->is_msg = true;
	j->kind = kind;
	j->round = round;
	j->nodes = *nodes;
	j->items = *items;
	j->n_items = n_items;
	memset(nodes, 0, sizeof(*nodes));
	memset(items, 0, sizeof(*items));
	recon_job_add(r, j);
	return REVOKD_OK;
}

/*
 * Queue a stream of our entries in node n, leaving out those equal to the
 * other side's (given as `theirs`, which it holds already).
 */
static revokd_err
recon_job_stream(struct engine__recon *r, const struct recon_node *n,
    const crdt_entry *theirs, size_t n_theirs)
{
	struct recon_job *j = calloc(1, sizeof(*j));

	if (j == NULL)
		return REVOKD_ENOMEM;
	j->lo = n->lo;
	j->to_end = !recon_hi(&n->lo, n->depth, &j->hi);
	for (size_t i = 0; i < n_theirs && i < RECON_FILTER_MAX; i++) {
		j->filter_key[i] = theirs[i].key;
		crdt_entry_summary(&theirs[i], &j->filter_sum[i]);
	}
	j->n_filter = n_theirs < RECON_FILTER_MAX ? n_theirs : RECON_FILTER_MAX;
	recon_job_add(r, j);
	return REVOKD_OK;
}

static void
recon_free(struct engine__recon *r)
{
	if (r == NULL)
		return;
	while (r->jobs != NULL) {
		struct recon_job *j = r->jobs;

		r->jobs = j->next;
		revokd_buf_free(&j->nodes);
		revokd_buf_free(&j->items);
		free(j);
	}
	free(r->queue.v);
	free(r->sent.v);
	free(r->parts);
	free(r);
}

void
engine__recon_free(struct engine__peer *p)
{
	recon_free(p->out);
	recon_free(p->in);
	p->out = p->in = NULL;
}

static struct engine__recon *
recon_new(engine *e, struct engine__peer *p, bool leader, uint32_t session,
    uint64_t now)
{
	struct engine__recon *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->leader = leader;
	r->session = session;
	r->last_heard_us = now;
	r->upto = e->last_batch;
	r->gap_epoch = p->gap_epoch;
	r->recv_gap_epoch = p->recv_gap_epoch;
	if (recon_push_start(&r->queue) != REVOKD_OK) {
		recon_free(r);
		return NULL;
	}
	return r;
}

/* ------------------------------------------------------------------------ */
/* Small encodings                                                          */
/* ------------------------------------------------------------------------ */

static void
put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* The 2-bit code of record i in a codes array. */
static unsigned
code_get(const uint8_t *codes, size_t i)
{
	return (codes[i / 4] >> (2 * (i % 4))) & 3;
}

static void
code_set(uint8_t *codes, size_t i, unsigned v)
{
	codes[i / 4] |= (uint8_t)(v << (2 * (i % 4)));
}

/*
 * A parsed node blob: n, the codes, and the payload after them (read with
 * *pos, which callers advance and check against payload_len).
 */
struct recon_blob {
	uint32_t n;
	const uint8_t *codes;
	const uint8_t *payload;
	size_t payload_len, pos;
};

static revokd_err
blob_parse(const uint8_t *buf, size_t len, struct recon_blob *b)
{
	size_t codes;

	if (len < 4)
		return REVOKD_EPROTO;
	b->n = (uint32_t)get_le(buf, 4);
	codes = (b->n + 3) / 4;
	if (b->n == 0 || b->n > RECON_PART_MAX || len - 4 < codes)
		return REVOKD_EPROTO;
	b->codes = buf + 4;
	b->payload = buf + 4 + codes;
	b->payload_len = len - 4 - codes;
	b->pos = 0;
	return REVOKD_OK;
}

static bool
blob_take(struct recon_blob *b, size_t len, const uint8_t **out)
{
	if (b->payload_len - b->pos < len)
		return false;
	*out = b->payload + b->pos;
	b->pos += len;
	return true;
}

/* ------------------------------------------------------------------------ */
/* Entries of a node                                                        */
/* ------------------------------------------------------------------------ */

struct recon_collect {
	crdt_entry *v;
	size_t n, max;
	bool more; /* there were more than max */
};

static bool
recon_collect_one(void *arg, const crdt_entry *ent)
{
	struct recon_collect *c = arg;

	if (c->n == c->max) {
		c->more = true;
		return false;
	}
	c->v[c->n++] = *ent;
	return true;
}

/* Our entries in node n, if there are at most max of them (else -1). */
static long
recon_node_entries(engine *e, const struct recon_node *n, crdt_entry *v,
    size_t max)
{
	struct recon_collect c = { v, 0, max, false };
	crdt_key hi;

	if (crdt_reader_scan(e->reader, &n->lo,
	        recon_hi(&n->lo, n->depth, &hi) ? &hi : NULL, recon_collect_one,
	        &c) != REVOKD_OK ||
	    c.more)
		return -1;
	return (long)c.n;
}

/* Append n entries to a packed buffer. */
static revokd_err
recon_pack(revokd_buf *items, const crdt_entry *v, size_t n)
{
	uint8_t buf[WIRE_ENTRY_MAX];
	revokd_err err = REVOKD_OK;

	for (size_t i = 0; i < n && err == REVOKD_OK; i++)
		err = revokd_buf_append(items, buf,
		    wire_entry_encode(&v[i], buf));
	return err;
}

/* Sum of entry summaries, truncated as on the wire. */
static void
recon_sum_entries(const crdt_entry *v, size_t n, uint16_t *count, uint64_t *fp)
{
	crdt_summary s = { 0 }, one;

	for (size_t i = 0; i < n; i++) {
		crdt_entry_summary(&v[i], &one);
		crdt_summary_add(&s, &one);
	}
	*count = (uint16_t)(s.count & COUNT_MASK);
	*fp = s.fp_lo & FP48;
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                  */
/* ------------------------------------------------------------------------ */

static revokd_err
recon_frame(struct engine__recon *r, uint32_t kind, uint32_t round,
    const revokd_buf *nodes, const revokd_buf *items, uint32_t n_items,
    uint8_t **frame, size_t *len)
{
	wire_peer_msg m = { .type = WIRE_RECON };
	revokd_err err;

	m.u.recon.session = r->session;
	m.u.recon.round = round;
	m.u.recon.kind = kind;
	m.u.recon.chunks = r->chunks_sent;
	if (nodes) {
		m.u.recon.nodes = nodes->data;
		m.u.recon.nodes_len = nodes->len;
	}
	if (items) {
		m.u.recon.items = items->data;
		m.u.recon.items_len = items->len;
		m.u.recon.item_count = n_items;
	}
	if ((err = wire_peer_encode(&m, frame, len)) == REVOKD_OK &&
	    kind == RECON_ITEMS)
		r->chunks_sent++;
	return err;
}

/* An ITEMS frame being filled from one or more streams. */
struct recon_stream_fill {
	struct recon_job *job; /* the stream being read */
	revokd_buf *items;
	uint32_t n, max;
	size_t max_bytes;
	crdt_key last; /* last key of job consumed */
	bool got_last; /* job consumed anything this time */
	bool full;
};

static bool
recon_filtered(const struct recon_job *j, const crdt_entry *ent)
{
	crdt_summary s;

	for (size_t i = 0; i < j->n_filter; i++) {
		if (crdt_key_cmp(&j->filter_key[i], &ent->key) != 0)
			continue;
		crdt_entry_summary(ent, &s);
		return crdt_summary_equal(&s, &j->filter_sum[i]);
	}
	return false;
}

static bool
recon_stream_one(void *arg, const crdt_entry *ent)
{
	struct recon_stream_fill *f = arg;
	uint8_t buf[WIRE_ENTRY_MAX];
	size_t len;

	if (f->n == f->max || f->items->len + WIRE_ENTRY_MAX > f->max_bytes) {
		f->full = true;
		return false;
	}
	f->last = ent->key;
	f->got_last = true;
	if (recon_filtered(f->job, ent))
		return true;
	len = wire_entry_encode(ent, buf);
	if (revokd_buf_append(f->items, buf, len) != REVOKD_OK) {
		f->full = true;
		return false;
	}
	f->n++;
	return true;
}

/* The first key after k; false when k is the last key. */
static bool
recon_key_next(crdt_key *k)
{
	for (int i = CRDT_KEY_LEN - 1; i >= 0; i--)
		if (++k->b[i] != 0)
			return true;
	return false;
}

/* True when stream job j has nothing left. */
static bool
recon_stream_empty(const struct recon_job *j)
{
	return !j->to_end && crdt_key_cmp(&j->lo, &j->hi) >= 0;
}

/*
 * Add stream j's next entries to the frame being filled, advancing j; j is
 * exhausted when this leaves f->full false.
 */
static revokd_err
recon_stream_fill(engine *e, struct recon_job *j, struct recon_stream_fill *f)
{
	revokd_err err;

	f->job = j;
	f->got_last = false;
	err = crdt_reader_scan(e->reader, &j->lo, j->to_end ? NULL : &j->hi,
	    recon_stream_one, f);
	if (err != REVOKD_OK)
		return err;
	if (f->full && f->got_last) {
		/* Resume after the last key looked at. */
		j->lo = f->last;
		if (!recon_key_next(&j->lo))
			j->to_end = false, j->hi = j->lo;
	} else if (!f->full) {
		j->to_end = false; /* exhausted: make the range empty */
		j->hi = j->lo;
	}
	return REVOKD_OK;
}

static void
recon_job_pop(struct engine__recon *r)
{
	struct recon_job *j = r->jobs;

	r->jobs = j->next;
	if (r->jobs == NULL)
		r->jobs_tail = NULL;
	revokd_buf_free(&j->nodes);
	revokd_buf_free(&j->items);
	free(j);
}

/*
 * The next frame from r's jobs into *frame (NULL when none is left):
 * consecutive streams share ITEMS frames. An error means a stream could not
 * be read: the session must be abandoned, or the peer would be told it has
 * everything when it does not.
 */
static revokd_err
recon_next_job(engine *e, struct engine__recon *r, uint8_t **frame, size_t *len)
{
	revokd_buf items = { 0 };
	struct recon_stream_fill f = { .items = &items,
		.max = (uint32_t)e->cfg.max_batch,
		.max_bytes = e->cfg.max_frame - ENGINE__FRAME_OVERHEAD };
	revokd_err err = REVOKD_OK;

	*frame = NULL;
	while (r->jobs != NULL && err == REVOKD_OK && !f.full) {
		struct recon_job *j = r->jobs;

		if (j->is_msg) {
			if (f.n > 0)
				break; /* the streamed entries go first */
			err = recon_frame(r, j->kind, j->round, &j->nodes,
			    &j->items, j->n_items, frame, len);
			recon_job_pop(r);
			return err;
		}
		if (!recon_stream_empty(j))
			err = recon_stream_fill(e, j, &f);
		if (err == REVOKD_OK && !f.full)
			recon_job_pop(r);
	}
	if (err == REVOKD_OK && f.n > 0)
		err = recon_frame(r, RECON_ITEMS, 0, NULL, &items, f.n, frame,
		    len);
	revokd_buf_free(&items);
	return err;
}

/* Encode one node of a ROUND: its mode, payload and items. */
static revokd_err
recon_round_node(engine *e, struct recon_node *n, uint8_t *codes, size_t i,
    revokd_buf *payload, revokd_buf *items, uint32_t *n_items)
{
	crdt_entry *v = e->changed; /* scratch, RECON_SMALL fit */
	uint8_t rec[8];
	uint16_t count;
	uint64_t fp;
	long k;
	revokd_err err;

	if ((err = recon_summary(e, n, &count, &fp)) != REVOKD_OK)
		return err;
	if (count <= RECON_LEADER_SMALL &&
	    (k = recon_node_entries(e, n, v, RECON_SMALL)) >= 0) {
		n->mode = MODE_ITEMS;
		code_set(codes, i, MODE_ITEMS);
		put_le(rec, (uint64_t)k, 2);
		*n_items += (uint32_t)k;
		if ((err = recon_pack(items, v, (size_t)k)) != REVOKD_OK)
			return err;
		return revokd_buf_append(payload, rec, 2);
	}
	if ((n->flags & (NODE_LAST | NODE_HAS_PARENT)) ==
	    (NODE_LAST | NODE_HAS_PARENT)) {
		n->mode = MODE_DERIVED;
		code_set(codes, i, MODE_DERIVED);
		return REVOKD_OK;
	}
	n->mode = MODE_SUM;
	put_le(rec, count, RECON_COUNT_BITS / 8);
	put_le(rec + RECON_COUNT_BITS / 8, fp, 6);
	return revokd_buf_append(payload, rec, RECON_SUM_LEN);
}

/* Build the next ROUND from the front of the leader's queue. */
static revokd_err
recon_build_round(engine *e, struct engine__recon *r, uint8_t **frame,
    size_t *len)
{
	size_t n =
	    r->queue.len < RECON_PART_MAX ? r->queue.len : RECON_PART_MAX;
	revokd_buf nodes = { 0 }, payload = { 0 }, items = { 0 };
	uint8_t head[4];
	uint8_t *codes = calloc((n + 3) / 4, 1);
	uint32_t n_items = 0;
	revokd_err err = codes ? REVOKD_OK : REVOKD_ENOMEM;

	for (size_t i = 0; i < n && err == REVOKD_OK; i++) {
		struct recon_node node = fifo_pop(&r->queue);

		err = recon_round_node(e, &node, codes, i, &payload, &items,
		    &n_items);
		if (err == REVOKD_OK)
			err = fifo_push(&r->sent, &node);
	}
	put_le(head, n, 4);
	if (err == REVOKD_OK &&
	    (err = revokd_buf_append(&nodes, head, 4)) == REVOKD_OK &&
	    (err = revokd_buf_append(&nodes, codes, (n + 3) / 4)) ==
	        REVOKD_OK &&
	    (err = revokd_buf_append(&nodes, payload.data, payload.len)) ==
	        REVOKD_OK)
		err = recon_frame(r, RECON_ROUND, r->round, &nodes, &items,
		    n_items, frame, len);
	if (err == REVOKD_OK && r->n_parts == r->cap_parts) {
		size_t cap = r->cap_parts ? 2 * r->cap_parts : 16;
		void *v = realloc(r->parts, cap * sizeof(*r->parts));

		if (v == NULL) {
			free(*frame);
			err = REVOKD_ENOMEM;
		} else {
			r->parts = v;
			r->cap_parts = cap;
		}
	}
	if (err == REVOKD_OK) {
		r->parts[r->n_parts++] = (uint32_t)n;
		r->round++;
	}
	free(codes);
	revokd_buf_free(&nodes);
	revokd_buf_free(&payload);
	revokd_buf_free(&items);
	return err;
}

static void
recon_finish(engine *e, struct engine__peer *p, struct engine__recon *r)
{
	if (r->gap_epoch == p->gap_epoch)
		p->claims_ok = true;
	if (r->recv_gap_epoch == p->recv_gap_epoch)
		p->recv_ok = true;
	p->recon_sessions++;
	e->stats.recon_done++;
	engine__peer_event(e, p, ENGINE_PEER_RECON_DONE);
}

/* The leader's next frame: jobs first, then ROUNDs, then DONE. */
static revokd_err
recon_next_leader(engine *e, struct engine__peer *p, struct engine__recon *r,
    uint8_t **frame, size_t *len)
{
	revokd_err err;

	if ((err = recon_next_job(e, r, frame, len)) || *frame != NULL)
		return err;
	if (r->done_sent)
		return REVOKD_OK;
	if (r->queue.len > 0)
		return recon_build_round(e, r, frame, len);
	if (r->n_parts > 0)
		return REVOKD_OK; /* replies still to come */
	if ((err = recon_frame(r, RECON_DONE, r->round, NULL, NULL, 0, frame,
	         len)))
		return err;
	r->done_sent = true;
	recon_finish(e, p, r);
	return REVOKD_OK;
}

static void recon_abort(engine *e, struct engine__peer *p,
    struct engine__recon **rp);

bool
engine__recon_next(engine *e, struct engine__peer *p, uint64_t now,
    uint8_t **frame, size_t *len)
{
	revokd_err err = REVOKD_OK;

	(void)now;
	*frame = NULL;
	if (p->out == NULL && p->in == NULL)
		return false;
	if (crdt_reader_begin(e->reader) != REVOKD_OK)
		return false;
	if (p->out != NULL &&
	    (err = recon_next_leader(e, p, p->out, frame, len)) != REVOKD_OK)
		recon_abort(e, p, &p->out);
	if (*frame == NULL && p->in != NULL &&
	    (err = recon_next_job(e, p->in, frame, len)) != REVOKD_OK)
		recon_abort(e, p, &p->in);
	crdt_reader_end(e->reader);
	return *frame != NULL;
}

/* ------------------------------------------------------------------------ */
/* Starting, stopping                                                       */
/* ------------------------------------------------------------------------ */

static bool recon_busy_elsewhere(const engine *e, const struct engine__peer *p);

revokd_err
engine__recon_start(engine *e, struct engine__peer *p, uint64_t now)
{
	uint32_t session = (uint32_t)revokd_rng_next(&e->rng) | 1;

	if (!p->up || p->out != NULL || p->in != NULL)
		return REVOKD_EINVAL;
	if (recon_busy_elsewhere(e, p))
		return REVOKD_EAGAIN;
	if ((p->out = recon_new(e, p, true, session, now)) == NULL)
		return REVOKD_ENOMEM;
	engine__peer_event(e, p, ENGINE_PEER_RECON_START);
	engine__flush(e, p, now);
	return REVOKD_OK;
}

/* Send a message of kind (FIN, ABORT, BUSY) about session. */
static revokd_err
recon_send_kind(engine *e, struct engine__peer *p, uint32_t session,
    uint32_t kind)
{
	wire_peer_msg m = { .type = WIRE_RECON };

	m.u.recon.session = session;
	m.u.recon.kind = kind;
	return engine__queue_msg(e, p, &m);
}

/* Tell the peer a session is over, and forget it. */
static void
recon_abort(engine *e, struct engine__peer *p, struct engine__recon **rp)
{
	(void)recon_send_kind(e, p, (*rp)->session, RECON_ABORT);
	recon_free(*rp);
	*rp = NULL;
	e->stats.recon_aborted++;
	p->recon_wanted = true; /* try again at the next tick */
	engine__peer_event(e, p, ENGINE_PEER_RECON_ABORT);
}

/*
 * A frame of the session went missing: some of the peer's entries may not
 * have arrived, so neither the session nor the peer's claims can vouch for
 * anything until a later session finishes.
 */
static void
recon_lost(engine *e, struct engine__peer *p, struct engine__recon **rp)
{
	p->recv_ok = false;
	p->recv_gap_epoch++;
	recon_abort(e, p, rp);
}

void
engine__recon_tick(engine *e, struct engine__peer *p, uint64_t now)
{
	if (p->out && now >= p->out->last_heard_us + e->cfg.recon_timeout_us)
		recon_abort(e, p, &p->out);
	if (p->in && now >= p->in->last_heard_us + e->cfg.recon_timeout_us)
		recon_abort(e, p, &p->in);
}

uint64_t
engine__recon_deadline(const struct engine__peer *p)
{
	(void)p;
	return UINT64_MAX; /* the 1 s ceiling of engine_next_tick suffices */
}

/* ------------------------------------------------------------------------ */
/* The comparer                                                             */
/* ------------------------------------------------------------------------ */

/* The leader's summary of node n from its record, for comparing. */
static revokd_err
recon_theirs(struct engine__recon *r, const struct recon_node *n, unsigned mode,
    struct recon_blob *b, const crdt_entry *items, size_t n_items,
    uint16_t *count, uint64_t *fp)
{
	const uint8_t *rec;

	switch (mode) {
	case MODE_SUM:
		if (!blob_take(b, RECON_SUM_LEN, &rec))
			return REVOKD_EPROTO;
		*count = (uint16_t)get_le(rec, RECON_COUNT_BITS / 8);
		*fp = get_le(rec + RECON_COUNT_BITS / 8, 6);
		return REVOKD_OK;
	case MODE_ITEMS:
		recon_sum_entries(items, n_items, count, fp);
		return REVOKD_OK;
	case MODE_DERIVED:
		if ((n->flags & (NODE_LAST | NODE_HAS_PARENT)) !=
		    (NODE_LAST | NODE_HAS_PARENT))
			return REVOKD_EPROTO;
		*count = (uint16_t)((n->pcount - r->acc_count) & COUNT_MASK);
		*fp = (n->pfp - r->acc_fp) & FP48;
		return REVOKD_OK;
	default:
		return REVOKD_EPROTO;
	}
}

/* The leader's entries for an ITEMS record: all inside the node. */
static revokd_err
recon_take_items(const struct recon_node *n, struct recon_blob *b,
    const uint8_t **ip, const uint8_t *iend, crdt_entry *out, size_t *n_out)
{
	const uint8_t *rec;
	size_t k;

	if (!blob_take(b, 2, &rec) || (k = get_le(rec, 2)) > RECON_FILTER_MAX)
		return REVOKD_EPROTO;
	for (size_t i = 0; i < k; i++)
		if (wire_entry_decode(ip, iend, &out[i]) != REVOKD_OK ||
		    !recon_in_node(&out[i].key, &n->lo, n->depth))
			return REVOKD_EPROTO;
	*n_out = k;
	return REVOKD_OK;
}

/* Per part: the reply being built. */
struct recon_reply {
	uint8_t *codes;
	revokd_buf payload, items;
	uint32_t n_items;
	crdt_entry *merge; /* the leader's ITEMS entries, merged at the end */
	size_t n_merge;
};

/* Compare one node; set its status, queue streams and children. */
static revokd_err
recon_compare_node(engine *e, struct engine__recon *r, struct recon_node *n,
    unsigned mode, struct recon_blob *b, const uint8_t **ip,
    const uint8_t *iend, size_t i, struct recon_reply *rep)
{
	crdt_entry *theirs = rep->merge + rep->n_merge, *mine = e->changed;
	size_t n_theirs = 0;
	uint16_t tc, mc;
	uint64_t tf, mf;
	uint8_t rec[2];
	int16_t delta;
	long k;
	revokd_err err;

	if (mode == MODE_ITEMS &&
	    (err = recon_take_items(n, b, ip, iend, theirs, &n_theirs)))
		return err;
	if ((err = recon_theirs(r, n, mode, b, theirs, n_theirs, &tc, &tf)))
		return err;
	if (n->flags & NODE_FIRST)
		r->acc_count = 0, r->acc_fp = 0;
	r->acc_count = (uint16_t)((r->acc_count + tc) & COUNT_MASK);
	r->acc_fp = (r->acc_fp + tf) & FP48;
	if (mode == MODE_ITEMS) {
		rep->n_merge += n_theirs; /* status SAME: taken */
		return recon_job_stream(r, n, theirs, n_theirs);
	}
	if ((err = recon_summary(e, n, &mc, &mf)) != REVOKD_OK)
		return err;
	if (mc == tc && mf == tf)
		return REVOKD_OK; /* ST_SAME is 0 */
	if ((mc <= RECON_SMALL || n->depth == 128) &&
	    (k = recon_node_entries(e, n, mine, RECON_SMALL)) >= 0) {
		code_set(rep->codes, i, ST_C_ITEMS);
		put_le(rec, (uint64_t)k, 2);
		rep->n_items += (uint32_t)k;
		if ((err = recon_pack(&rep->items, mine, (size_t)k)))
			return err;
		return revokd_buf_append(&rep->payload, rec, 2);
	}
	delta = (int16_t)((tc - mc) & COUNT_MASK);
	if (delta > (int16_t)(COUNT_MASK / 2))
		delta = (int16_t)(delta - (int16_t)COUNT_MASK - 1);
	if ((delta >= RECON_WIDE_DELTA || delta <= -RECON_WIDE_DELTA) &&
	    n->depth + 4 <= 128) {
		code_set(rep->codes, i, ST_SPLIT16);
		return recon_push_children(&r->queue, n, 4, tc, tf);
	}
	code_set(rep->codes, i, ST_SPLIT2);
	return recon_push_children(&r->queue, n, 1, tc, tf);
}

static revokd_err
recon_compare_part(engine *e, struct engine__peer *p, struct engine__recon *r,
    const wire_recon *m, struct recon_blob *b, struct recon_reply *rep,
    uint64_t now)
{
	const uint8_t *ip = m->items, *iend = m->items + m->items_len;
	revokd_err err = REVOKD_OK;

	if (b->n > r->queue.len)
		return REVOKD_EPROTO;
	for (uint32_t i = 0; i < b->n && err == REVOKD_OK; i++) {
		struct recon_node n = fifo_pop(&r->queue);

		err = recon_compare_node(e, r, &n, code_get(b->codes, i), b,
		    &ip, iend, i, rep);
	}
	if (err == REVOKD_OK && (b->pos != b->payload_len || ip != iend))
		err = REVOKD_EPROTO;
	/* Merge the leader's entries first: the streams read after it. */
	if (err == REVOKD_OK && rep->n_merge > 0)
		err = engine__apply(e, p, rep->merge, rep->n_merge, now, true);
	return err;
}

static revokd_err
recon_queue_reply(struct engine__recon *r, uint32_t n, struct recon_reply *rep)
{
	revokd_buf nodes = { 0 };
	uint8_t head[4];
	revokd_err err;

	put_le(head, n, 4);
	if ((err = revokd_buf_append(&nodes, head, 4)) == REVOKD_OK &&
	    (err = revokd_buf_append(&nodes, rep->codes, (n + 3) / 4)) ==
	        REVOKD_OK &&
	    (err = revokd_buf_append(&nodes, rep->payload.data,
	         rep->payload.len)) == REVOKD_OK)
		err = recon_job_msg(r, RECON_REPLY, r->round - 1, &nodes,
		    &rep->items, rep->n_items);
	revokd_buf_free(&nodes);
	return err;
}

/* True when we are in a session (either role) with a peer other than p. */
static bool
recon_busy_elsewhere(const engine *e, const struct engine__peer *p)
{
	for (unsigned i = 0; i < e->cfg.n_peers; i++)
		if (&e->peers[i] != p &&
		    (e->peers[i].in != NULL || e->peers[i].out != NULL))
			return true;
	return false;
}

/*
 * Whether p may lead one more session with us now: a generic cell rate
 * algorithm, one session per recon_interval / ENGINE__RECON_IN_BURST with
 * ENGINE__RECON_IN_BURST at once. The first refusal of a run is a notice.
 */
static bool
recon_admit(engine *e, struct engine__peer *p, uint64_t now)
{
	uint64_t t = e->cfg.recon_interval_us / ENGINE__RECON_IN_BURST;
	uint64_t tat = p->recon_in_tat > now ? p->recon_in_tat : now;

	if (tat - now > (ENGINE__RECON_IN_BURST - 1) * t) {
		e->stats.recon_limited++;
		if (!p->recon_limited)
			engine__peer_event(e, p, ENGINE_PEER_RECON_LIMITED);
		p->recon_limited = true;
		return false;
	}
	p->recon_in_tat = tat + t;
	p->recon_limited = false;
	return true;
}

/* A ROUND for the session p leads with us. */
static revokd_err
recon_on_round(engine *e, struct engine__peer *p, const wire_recon *m,
    uint64_t now)
{
	struct recon_reply rep = { 0 };
	struct recon_blob b;
	revokd_err err;

	if (m->round == 0 && (p->in == NULL || p->in->session != m->session)) {
		if (recon_busy_elsewhere(e, p) || p->out != NULL ||
		    !recon_admit(e, p, now))
			return recon_send_kind(e, p, m->session, RECON_BUSY);
		/* A new session replaces any older one the peer gave up. */
		recon_free(p->in);
		if ((p->in = recon_new(e, p, false, m->session, now)) == NULL)
			return REVOKD_ENOMEM;
	}
	if (p->in == NULL || p->in->session != m->session)
		return REVOKD_OK; /* of a session we refused or abandoned */
	if (p->in->round != m->round)
		return REVOKD_EPROTO;
	if ((err = blob_parse(m->nodes, m->nodes_len, &b)) != REVOKD_OK)
		return err;
	p->in->last_heard_us = now;
	p->in->round++;
	rep.codes = calloc((b.n + 3) / 4, 1);
	/* The items field holds every ITEMS record's entries (wire-checked). */
	rep.merge = calloc(m->item_count + 1, sizeof(*rep.merge));
	if (rep.codes == NULL || rep.merge == NULL)
		err = REVOKD_ENOMEM;
	else if ((err = crdt_reader_begin(e->reader)) == REVOKD_OK) {
		err = recon_compare_part(e, p, p->in, m, &b, &rep, now);
		crdt_reader_end(e->reader);
	}
	if (err == REVOKD_OK)
		err = recon_queue_reply(p->in, b.n, &rep);
	free(rep.codes);
	free(rep.merge);
	revokd_buf_free(&rep.payload);
	revokd_buf_free(&rep.items);
	return err;
}

/* DONE: the leader has everything of ours, and we of its. */
static revokd_err
recon_on_done(engine *e, struct engine__peer *p, const wire_recon *m)
{
	if (p->in == NULL || p->in->session != m->session)
		return REVOKD_OK; /* of a session we abandoned */
	if (p->in->queue.len != 0)
		return REVOKD_EPROTO;
	if (m->chunks != p->in->chunks_recv) {
		recon_lost(e, p, &p->in);
		return REVOKD_OK;
	}
	recon_finish(e, p, p->in);
	engine__unconf_repaired(e, p, p->in->upto);
	recon_free(p->in);
	p->in = NULL;
	return recon_send_kind(e, p, m->session, RECON_FIN);
}

/* ------------------------------------------------------------------------ */
/* The leader                                                               */
/* ------------------------------------------------------------------------ */

/* Act on the status of one node we sent. */
static revokd_err
recon_on_status(engine *e, struct engine__peer *p, struct engine__recon *r,
    const struct recon_node *n, unsigned st, struct recon_blob *b,
    const uint8_t **ip, const uint8_t *iend, uint64_t now)
{
	crdt_entry theirs[RECON_FILTER_MAX];
	size_t k = 0;
	revokd_err err;

	switch (st) {
	case ST_SAME:
		return REVOKD_OK;
	case ST_SPLIT2:
	case ST_SPLIT16:
		if (n->mode == MODE_ITEMS ||
		    n->depth + (st == ST_SPLIT16 ? 4 : 1) > 128)
			return REVOKD_EPROTO;
		return recon_push_children(&r->queue, n,
		    st == ST_SPLIT16 ? 4 : 1, 0, 0);
	case ST_C_ITEMS:
		if (n->mode == MODE_ITEMS)
			return REVOKD_EPROTO;
		if ((err = recon_take_items(n, b, ip, iend, theirs, &k)))
			return err;
		if (k > 0 && (err = engine__apply(e, p, theirs, k, now,
		                  true)) != REVOKD_OK)
			return err;
		return recon_job_stream(r, n, theirs, k);
	}
	return REVOKD_EPROTO;
}

static revokd_err
recon_on_reply(engine *e, struct engine__peer *p, const wire_recon *m,
    uint64_t now)
{
	struct engine__recon *r = p->out;
	const uint8_t *ip = m->items, *iend = m->items + m->items_len;
	struct recon_blob b;
	revokd_err err;

	if (r == NULL || r->session != m->session)
		return REVOKD_OK; /* of a session we abandoned */
	if (r->n_parts == 0 || r->done_sent)
		return REVOKD_EPROTO;
	if ((err = blob_parse(m->nodes, m->nodes_len, &b)) != REVOKD_OK)
		return err;
	if (b.n != r->parts[0] || b.n > r->sent.len)
		return REVOKD_EPROTO;
	if (m->chunks != r->chunks_recv) {
		recon_lost(e, p, &p->out);
		return REVOKD_OK;
	}
	r->last_heard_us = now;
	memmove(r->parts, r->parts + 1, --r->n_parts * sizeof(*r->parts));
	for (uint32_t i = 0; i < b.n && err == REVOKD_OK; i++) {
		struct recon_node n = fifo_pop(&r->sent);

		err = recon_on_status(e, p, r, &n, code_get(b.codes, i), &b,
		    &ip, iend, now);
	}
	if (err == REVOKD_OK && (b.pos != b.payload_len || ip != iend))
		err = REVOKD_EPROTO;
	return err;
}

/* FIN: the comparer holds everything we held when the session began. */
static revokd_err
recon_on_fin(engine *e, struct engine__peer *p, const wire_recon *m)
{
	if (p->out == NULL || p->out->session != m->session)
		return REVOKD_OK; /* of a session we abandoned */
	if (!p->out->done_sent)
		return REVOKD_EPROTO;
	engine__unconf_repaired(e, p, p->out->upto);
	recon_free(p->out);
	p->out = NULL;
	return REVOKD_OK;
}

/* ------------------------------------------------------------------------ */
/* Receiving                                                                */
/* ------------------------------------------------------------------------ */

/* Streamed entries of either session: merge them. */
static revokd_err
recon_on_items(engine *e, struct engine__peer *p, const wire_recon *m,
    uint64_t now)
{
	struct engine__recon *r =
	    p->out && p->out->session == m->session ? p->out
	    : p->in && p->in->session == m->session ? p->in
	                                            : NULL;

	if (r == NULL)
		return REVOKD_OK; /* of a session already over */
	r->last_heard_us = now;
	r->chunks_recv++;
	engine__unpack(e, m->items, m->items_len, m->item_count, 0);
	return engine__apply(e, p, e->in, m->item_count, now, true);
}

/*
 * ABORT, or BUSY (the peer is in another session): drop the session. A
 * session of ours is tried again: at once after an abort, 100 to 300 ms
 * later when the peer is busy.
 */
static void
recon_on_abort(engine *e, struct engine__peer *p, const wire_recon *m,
    uint64_t now)
{
	if (p->out && p->out->session == m->session) {
		recon_free(p->out);
		p->out = NULL;
		if (m->kind == RECON_BUSY) {
			p->recon_wanted = false;
			p->next_recon_us =
			    now + 100000 + revokd_rng_below(&e->rng, 200000);
		} else {
			p->recon_wanted = true;
		}
	}
	if (p->in && p->in->session == m->session) {
		recon_free(p->in);
		p->in = NULL;
	}
}

revokd_err
engine__recon_receive(engine *e, struct engine__peer *p, const wire_recon *r,
    uint64_t now)
{
	revokd_err err;

	switch (r->kind) {
	case RECON_ROUND:
		err = recon_on_round(e, p, r, now);
		break;
	case RECON_REPLY:
		err = recon_on_reply(e, p, r, now);
		break;
	case RECON_ITEMS:
		err = recon_on_items(e, p, r, now);
		break;
	case RECON_DONE:
		err = recon_on_done(e, p, r);
		break;
	case RECON_FIN:
		err = recon_on_fin(e, p, r);
		break;
	case RECON_ABORT:
	case RECON_BUSY:
		recon_on_abort(e, p, r, now);
		return REVOKD_OK;
	default:
		return REVOKD_EPROTO;
	}
	/*
	 * A store failure (full disk) is ours, not the peer's: abandon the
	 * session and try later rather than close the connection.
	 */
	if (err != REVOKD_OK && err != REVOKD_EPROTO) {
		if (p->out && p->out->session == r->session)
			recon_abort(e, p, &p->out);
		if (p->in && p->in->session == r->session)
			recon_abort(e, p, &p->in);
		err = REVOKD_OK;
	}
	return err;
}
