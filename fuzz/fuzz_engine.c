/*
 * fuzz_engine.c: the replication engine fed arbitrary messages from two
 * authenticated peers, with its real store (agent/engine.h, crdt/).
 *
 * The input language is in fuzz_engine_ops.h: raw frames, and messages
 * built from the input that can follow the engine's conversation (batch
 * sequence numbers, acks of what it sent, reconciliation sessions whose
 * node queues the harness mirrors, with the true summaries of the engine's
 * store or perturbed ones) or break it anywhere; local writes, timer ticks,
 * connections going down and up, the send slot, hold and release, and a
 * clock that steps back.
 *
 * One engine, "alpha" (region 1), with peers "beta" (2) and "gamma" (3),
 * and its store live in the process's scratch directory (on /dev/shm) and
 * are reused from input to input: opening a store and an engine costs over
 * a millisecond, so each input starts from where the last one left the
 * store, with both connections fresh (the harness takes them down at the
 * end of every input and up at the start of the next). The store starts
 * again from its fixed first contents when it passes STORE_MAX entries, every
 * RESET_EVERY inputs, and before every input when REVOKD_FUZZ_FRESH is set
 * in the environment: to reproduce a crash, run its input with
 * REVOKD_FUZZ_FRESH=1 (a crash that needs an earlier input's state then
 * shows as not reproducing; libFuzzer's -runs over the corpus replays
 * the history).
 *
 * Checked on every input: the engine's host contract (one frame with the
 * host per peer, nothing sent to a peer that is down, no frame over
 * max_frame, every frame it sends decodes, engine_receive fails only with
 * EMALFORMED or EPROTO, engine_next_tick within a second, each local batch
 * confirmed at most once per peer and only batches that exist), its HLC
 * never dragged further ahead than max_ahead, and after every input the
 * store: a full recompute of the fingerprints equals the incremental bucket
 * sums, bucket by bucket, and the entry count.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent/engine_int.h"
#include "crdt/crdt_int.h"
#include "fuzz_engine_ops.h"
#include "fuzz_util.h"
#include "peer.pb-c.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef Revokd__Peer__PeerMsg PeerMsg;

/* The harness clock after a reset (2023-11-14, µs). */
#define EPOCH UINT64_C(1700000000000000)

#define N_PEERS 2
#define STORE_MAX 512
#define RESET_EVERY 4096

/* Limits of what one input can ask for. */
#define RAW_MAX 2048
#define BATCH_BUILT_MAX 32
#define BULK_MAX 1024
#define MULTI_MAX 4
#define SENDS_PER_DRAIN 64
#define MIRROR_MAX 65536 /* nodes a mirrored queue may hold */
#define ROUNDS_MAX 256   /* rounds awaiting a reply, mirrored */

/* Engine limits chosen small, so that inputs reach them. */
#define CFG_MAX_BATCH 64
#define CFG_BACKLOG 256
#define CFG_WINDOW 2
#define CFG_PRUNE_STEP 64
#define CFG_MAX_AHEAD_US UINT64_C(60000000)

/* Reconciliation constants of engine_recon.c that the mirror follows. */
#define RECON_PART_MAX 1024
#define RECON_SUM_LEN 7
#define RECON_FILTER_MAX 8
#define NODE_FIRST 1u
#define NODE_LAST 2u
#define NODE_HAS_PARENT 4u
enum { MODE_SUM = 0, MODE_ITEMS = 1, MODE_DERIVED = 2 };
enum { ST_SAME = 0, ST_SPLIT2 = 1, ST_SPLIT16 = 2, ST_C_ITEMS = 3 };

static const char *const peer_names[N_PEERS] = { "beta", "gamma" };

/* ------------------------------------------------------------------------ */
/* Mirrored reconciliation queues                                           */
/* ------------------------------------------------------------------------ */

struct fz_node {
	crdt_key lo;
	uint8_t depth;
	uint8_t flags;
	uint8_t mode; /* how it was sent in a ROUND */
};

struct fz_fifo {
	struct fz_node *v;
	size_t head, len, cap;
	bool broken; /* overflowed: the mirror no longer follows */
};

static void
fifo_free(struct fz_fifo *f)
{
	free(f->v);
	memset(f, 0, sizeof(*f));
}

FZ_NOCOV static void
fifo_push(struct fz_fifo *f, const struct fz_node *n)
{
	if (f->head > 0 && f->head + f->len == f->cap) {
		memmove(f->v, f->v + f->head, f->len * sizeof(*f->v));
		f->head = 0;
	}
	if (f->len == f->cap) {
		size_t cap = f->cap ? 2 * f->cap : 64;
		void *v;

		if (cap > MIRROR_MAX ||
		    (v = realloc(f->v, cap * sizeof(*f->v))) == NULL) {
			f->broken = true;
			return;
		}
		f->v = v;
		f->cap = cap;
	}
	f->v[f->head + f->len++] = *n;
}

static bool
fifo_pop(struct fz_fifo *f, struct fz_node *out)
{
	if (f->len == 0)
		return false;
	f->len--;
	*out = f->v[f->head++];
	return true;
}

/* The 2^bits children of n, as engine_recon.c queues them. */
FZ_NOCOV static void
push_children(struct fz_fifo *f, const struct fz_node *n, unsigned bits,
    bool has_parent)
{
	unsigned fan = 1u << bits;

	if (n->depth + bits > 128)
		return;
	for (unsigned i = 0; i < fan; i++) {
		struct fz_node c = { .lo = n->lo,
			.depth = (uint8_t)(n->depth + bits) };

		for (unsigned b = 0; b < bits; b++)
			if ((i >> (bits - 1 - b)) & 1)
				c.lo.b[(n->depth + b) / 8] |=
				    (uint8_t)(0x80 >> ((n->depth + b) % 8));
		if (has_parent)
			c.flags = (uint8_t)(NODE_HAS_PARENT |
			                    (i == 0 ? NODE_FIRST : 0) |
			                    (i == fan - 1 ? NODE_LAST : 0));
		fifo_push(f, &c);
	}
}

/* A session's first nodes: the 16 prefixes of 4 bits, no parent. */
static void
push_start(struct fz_fifo *f)
{
	struct fz_node root = { .depth = 0 };

	push_children(f, &root, 4, false);
}

/* The first key after node n; false when that is the end. */
FZ_NOCOV static bool
node_hi(const struct fz_node *n, crdt_key *hi)
{
	int bit = (int)n->depth - 1;

	if (n->depth == 0)
		return false;
	*hi = n->lo;
	for (int byte = bit / 8, add = 0x80 >> (bit % 8); byte >= 0; byte--) {
		unsigned v = hi->b[byte] + (unsigned)add;

		hi->b[byte] = (uint8_t)v;
		if (v < 256)
			return true;
		add = 1;
	}
	return false;
}

/* ------------------------------------------------------------------------ */
/* State                                                                    */
/* ------------------------------------------------------------------------ */

/* What the harness knows about one peer's connection. */
struct fz_peer {
	bool up;
	bool sending;   /* a frame is with "the socket" */
	uint8_t *frame; /* that frame (ours to free) */

	uint64_t seq;            /* last Batch seq we sent */
	uint64_t engine_seq;     /* last Batch seq the engine sent */
	uint64_t engine_ping_t1; /* of its last Ping */

	/* The session the engine leads (it sends ROUNDs, we reply). */
	uint32_t out_session;
	bool out_done;           /* it sent DONE: we owe FIN */
	uint32_t out_items;      /* ITEMS frames we sent in it */
	struct fz_fifo out_q;    /* its queue, mirrored */
	struct fz_fifo out_sent; /* nodes of ROUNDs awaiting our reply */
	uint32_t out_rounds[ROUNDS_MAX], out_rounds_n, out_round_no[ROUNDS_MAX];

	/* The session we lead (we send ROUNDs, it replies). */
	uint32_t in_session;
	uint32_t in_round;      /* next ROUND number */
	uint32_t in_items;      /* ITEMS frames we sent in it */
	struct fz_fifo in_q;    /* our queue: what it expects next */
	struct fz_fifo in_sent; /* nodes of our ROUNDs awaiting its REPLY */
	uint32_t in_rounds[ROUNDS_MAX], in_rounds_n;
};

static struct {
	bool ready;
	char dir[512];
	crdt_store *store;
	crdt_reader *reader; /* the harness's own: checks and summaries */
	engine *e;
	crdt_summary *buckets; /* CRDT_BUCKETS, for recompute */
	uint64_t now, max_now;
	unsigned inputs;      /* since the last reset */
	uint32_t session_ctr; /* for sessions we lead */
	struct fz_peer peer[N_PEERS];
	uint8_t *confirmed[N_PEERS]; /* batch -> confirmed (bit 0) */
	size_t confirmed_cap;
} G;

/* ------------------------------------------------------------------------ */
/* The engine's outputs                                                     */
/* ------------------------------------------------------------------------ */

static uint64_t
get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static unsigned
code_get(const uint8_t *codes, size_t i)
{
	return (codes[i / 4] >> (2 * (i % 4))) & 3;
}

/* The engine sent a ROUND of the session it leads: mirror its queue. */
static void
saw_round(struct fz_peer *t, const wire_recon *r)
{
	uint32_t n;

	if (r->session != t->out_session) {
		fifo_free(&t->out_q);
		fifo_free(&t->out_sent);
		t->out_session = r->session;
		t->out_done = false;
		t->out_items = 0;
		t->out_rounds_n = 0;
		push_start(&t->out_q);
	}
	FZ_CHECK(r->nodes_len >= 4, "a ROUND without nodes");
	n = (uint32_t)get_le(r->nodes, 4);
	FZ_CHECK(n >= 1 && n <= RECON_PART_MAX &&
	             r->nodes_len >= 4 + (n + 3) / 4,
	    "a ROUND of %u nodes in %zu bytes", n, r->nodes_len);
	for (uint32_t i = 0; i < n; i++) {
		struct fz_node node;

		if (!fifo_pop(&t->out_q, &node)) {
			t->out_q.broken = true;
			break;
		}
		node.mode = (uint8_t)code_get(r->nodes + 4, i);
		fifo_push(&t->out_sent, &node);
	}
	if (t->out_rounds_n < ROUNDS_MAX) {
		t->out_round_no[t->out_rounds_n] = r->round;
		t->out_rounds[t->out_rounds_n++] = n;
	}
}

/* The engine replied to a ROUND of ours: mirror what it will expect. */
static void
saw_reply(struct fz_peer *t, const wire_recon *r)
{
	uint32_t n;

	if (r->session != t->in_session || r->nodes_len < 4)
		return;
	n = (uint32_t)get_le(r->nodes, 4);
	if (t->in_rounds_n == 0 || t->in_rounds[0] != n ||
	    r->nodes_len < 4 + (n + 3) / 4) {
		t->in_q.broken = true;
		return;
	}
	memmove(t->in_rounds, t->in_rounds + 1,
	    --t->in_rounds_n * sizeof(*t->in_rounds));
	for (uint32_t i = 0; i < n; i++) {
		struct fz_node node;
		unsigned st = code_get(r->nodes + 4, i);

		if (!fifo_pop(&t->in_sent, &node))
			break;
		if (st == ST_SPLIT2)
			push_children(&t->in_q, &node, 1, true);
		else if (st == ST_SPLIT16)
			push_children(&t->in_q, &node, 4, true);
	}
}

static void
saw_recon(struct fz_peer *t, const wire_recon *r)
{
	switch (r->kind) {
	case FZE_RECON_ROUND:
		saw_round(t, r);
		break;
	case FZE_RECON_REPLY:
		saw_reply(t, r);
		break;
	case FZE_RECON_DONE:
		if (r->session == t->out_session)
			t->out_done = true;
		break;
	case FZE_RECON_FIN:
	case FZE_RECON_ABORT:
	case FZE_RECON_BUSY:
		if (r->session == t->in_session)
			t->in_session = 0;
		if (r->session == t->out_session)
			t->out_session = 0;
		break;
	default:
		break;
	}
}

static void
fz_send(void *arg, unsigned peer, wire_peer_type type, uint8_t *frame,
    size_t len)
{
	struct fz_peer *t;
	wire_peer_msg m;
	revokd_err err;

	(void)arg;
	FZ_CHECK(peer < N_PEERS, "send to peer %u", peer);
	t = &G.peer[peer];
	FZ_CHECK(t->up, "a frame for %s, which is down", peer_names[peer]);
	FZ_CHECK(!t->sending, "a second frame for %s before send_done",
	    peer_names[peer]);
	FZ_CHECK(len >= WIRE_HEADER_LEN &&
	             len - WIRE_HEADER_LEN <= WIRE_MAX_FRAME_MIN,
	    "a frame of %zu bytes (max_frame %u)", len, WIRE_MAX_FRAME_MIN);
	FZ_CHECK(((size_t)frame[0] << 24 | (size_t)frame[1] << 16 |
	             (size_t)frame[2] << 8 | frame[3]) == len - WIRE_HEADER_LEN,
	    "a frame header that does not give its length");
	err = wire_peer_decode(frame + WIRE_HEADER_LEN, len - WIRE_HEADER_LEN,
	    &m);
	FZ_CHECK(err == REVOKD_OK,
	    "the engine sent a %s that does not decode: "
	    "%s",
	    wire_peer_type_name(type), revokd_err_name(err));
	FZ_CHECK(m.type == type, "sent as %s, decodes as %s",
	    wire_peer_type_name(type), wire_peer_type_name(m.type));
	switch (m.type) {
	case WIRE_BATCH:
		t->engine_seq = m.u.batch.seq;
		break;
	case WIRE_PING:
		t->engine_ping_t1 = m.u.ping.t1_us;
		break;
	case WIRE_RECON:
		saw_recon(t, &m.u.recon);
		break;
	default:
		break;
	}
	if (fz_verbose() && m.type == WIRE_RECON)
		fprintf(stderr,
		    "engine -> %s: recon kind %u session %#x round "
		    "%u nodes %zu items %u chunks %u\n",
		    peer_names[peer], m.u.recon.kind, m.u.recon.session,
		    m.u.recon.round, m.u.recon.nodes_len, m.u.recon.item_count,
		    m.u.recon.chunks);
	else if (fz_verbose())
		fprintf(stderr, "engine -> %s: %s\n", peer_names[peer],
		    wire_peer_type_name(m.type));
	wire_peer_msg_free(&m);
	t->sending = true;
	t->frame = frame;
}

static void
fz_notice(void *arg, const engine_notice *n)
{
	(void)arg;
	switch (n->type) {
	case ENGINE_NOTICE_CONFIRMED:
		FZ_CHECK(n->peer < N_PEERS, "confirmed by peer %u", n->peer);
		FZ_CHECK(n->batch >= 1 && n->batch <= engine_last_batch(G.e),
		    "batch %llu confirmed, last is %llu",
		    (unsigned long long)n->batch,
		    (unsigned long long)engine_last_batch(G.e));
		if (n->batch < G.confirmed_cap) {
			FZ_CHECK(!G.confirmed[n->peer][n->batch],
			    "batch %llu confirmed twice by %s",
			    (unsigned long long)n->batch, peer_names[n->peer]);
			G.confirmed[n->peer][n->batch] = 1;
		}
		break;
	case ENGINE_NOTICE_CHANGED:
		FZ_CHECK(n->n_entries > 0 && n->entries != NULL,
		    "a change of nothing");
		for (size_t i = 0; i < n->n_entries; i++)
			FZ_CHECK(crdt_kind_valid(n->entries[i].kind),
			    "changed entry of kind %d",
			    (int)n->entries[i].kind);
		break;
	case ENGINE_NOTICE_PEER:
		FZ_CHECK(n->peer < N_PEERS, "event of peer %u", n->peer);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------------ */
/* Setting up and resetting                                                 */
/* ------------------------------------------------------------------------ */

static uint64_t
now_ms(void)
{
	return G.now / 1000;
}

static int64_t
now_s(void)
{
	return (int64_t)(G.now / 1000000);
}

/* The store's first contents: tokens and subjects over the key pool. */
FZ_NOCOV static void
prepopulate(void)
{
	crdt_entry v[24];

	memset(v, 0, sizeof(v));
	for (unsigned i = 0; i < 24; i++) {
		fze_pool_key(i, &v[i].key);
		if (i % 3 != 2) {
			v[i].kind = i % 3 ? CRDT_KIND_SID : CRDT_KIND_JTI;
			v[i].u.token.exp = now_s() + 600 + 60 * i;
			v[i].u.token.revoked_at =
			    CRDT_HLC_AT(now_ms() - 1000 * i);
			v[i].u.token.origin = (uint16_t)(1 + i % 3);
			v[i].u.token.reason = (uint8_t)i;
			if (i % 4 == 0)
				v[i].u.token.restored_at =
				    CRDT_HLC_AT(now_ms() - 500 * i + 1);
		} else {
			v[i].kind = CRDT_KIND_SUB;
			v[i].u.subject.not_before_ms = now_ms() - 10 * i;
			(void)crdt_subject_bump(&v[i].u.subject, 2, i);
			(void)crdt_subject_bump(&v[i].u.subject, 3, 1);
		}
	}
	FZ_CHECK(crdt_store_apply(G.store, v, 24, now_s(), NULL, NULL) ==
	             REVOKD_OK,
	    "prepopulate");
}

static void
teardown(void)
{
	engine_free(G.e);
	crdt_reader_free(G.reader);
	crdt_store_close(G.store);
	G.e = NULL;
	G.reader = NULL;
	G.store = NULL;
}

FZ_NOCOV static void
full_reset(void)
{
	crdt_store_options so = { .no_sync = true,
		.map_size = 64u << 20,
		.max_readers = 16 };
	engine_peer_config peers[N_PEERS] = { { 2, "beta" }, { 3, "gamma" } };
	engine_config c = { .region_id = 1,
		.region = "alpha",
		.n_peers = N_PEERS,
		.peers = peers,
		.seed = 42,
		.max_frame = WIRE_MAX_FRAME_MIN,
		.max_batch = CFG_MAX_BATCH,
		.backlog_max = CFG_BACKLOG,
		.window = CFG_WINDOW,
		.prune_step = CFG_PRUNE_STEP,
		.max_ahead_us = CFG_MAX_AHEAD_US };
	engine_io io = { NULL, fz_send, fz_notice };
	revokd_err err;

	teardown();
	if (!G.ready) {
		snprintf(G.dir, sizeof(G.dir), "%s", fz_tmpdir("engine"));
		G.buckets = calloc(CRDT_BUCKETS, sizeof(*G.buckets));
		G.confirmed_cap = 1u << 16;
		for (unsigned i = 0; i < N_PEERS; i++)
			G.confirmed[i] = calloc(G.confirmed_cap, 1);
		G.ready = true;
	}
	fz_empty_dir(G.dir);
	for (unsigned i = 0; i < N_PEERS; i++)
		memset(G.confirmed[i], 0, G.confirmed_cap);
	G.now = G.max_now = EPOCH;
	G.inputs = 0;
	err = crdt_store_open(G.dir, &so, &G.store);
	FZ_CHECK(err == REVOKD_OK, "store open: %s", revokd_err_name(err));
	prepopulate();
	FZ_CHECK(crdt_reader_new(G.store, &G.reader) == REVOKD_OK, "reader");
	c.store = G.store;
	err = engine_new(&c, &io, G.now, &G.e);
	FZ_CHECK(err == REVOKD_OK, "engine_new: %s", revokd_err_name(err));
}

/* ------------------------------------------------------------------------ */
/* Peers                                                                    */
/* ------------------------------------------------------------------------ */

static void
track_reset(struct fz_peer *t)
{
	free(t->frame);
	fifo_free(&t->out_q);
	fifo_free(&t->out_sent);
	fifo_free(&t->in_q);
	fifo_free(&t->in_sent);
	memset(t, 0, sizeof(*t));
}

static void
link_up(unsigned i)
{
	if (G.peer[i].up)
		return;
	track_reset(&G.peer[i]);
	G.peer[i].up = true;
	engine_peer_up(G.e, i, G.now);
}

static void
link_down(unsigned i)
{
	if (!G.peer[i].up)
		return;
	engine_peer_down(G.e, i, G.now);
	track_reset(&G.peer[i]);
}

/* The frame with the host for peer i has left; the engine may send more. */
static void
send_done(unsigned i)
{
	struct fz_peer *t = &G.peer[i];

	if (!t->sending)
		return;
	free(t->frame);
	t->frame = NULL;
	t->sending = false;
	engine_send_done(G.e, i, G.now);
}

static void
drain(void)
{
	for (unsigned i = 0; i < N_PEERS; i++)
		for (int k = 0; k < SENDS_PER_DRAIN && G.peer[i].sending; k++)
			send_done(i);
}

/* ------------------------------------------------------------------------ */
/* Building entries                                                         */
/* ------------------------------------------------------------------------ */

static const uint16_t regions[8] = { 1, 2, 3, 4, 7, 1000, 65534, 65535 };

static crdt_hlc
build_hlc(fz_in *in)
{
	uint8_t b = fz_u8(in);
	uint64_t d = b >> 2;

	switch (b & 3) {
	case 0:
		return 0;
	case 1:
		return CRDT_HLC_AT(now_ms() - d * 1000) + (d & 7);
	case 2:
		return CRDT_HLC_AT(now_ms() + d * d * 100);
	default:
		return fz_u64(in);
	}
}

static int64_t
build_exp(fz_in *in)
{
	static const int64_t delta[8] = { -100000, -301, -299, 0, 60, 3600,
		86400 * 400, 1 };
	uint8_t b = fz_u8(in);

	if ((b & 7) == 7)
		return (b & 8) ? INT64_MAX : INT64_MIN;
	return now_s() + delta[b & 7] + (b >> 4);
}

/* A key inside node n, the bits past its depth from the input. */
FZ_NOCOV static void
key_in_node(fz_in *in, const struct fz_node *n, crdt_key *k)
{
	*k = n->lo;
	for (unsigned byte = n->depth / 8; byte < CRDT_KEY_LEN; byte++) {
		unsigned fixed = n->depth > byte * 8 ? n->depth - byte * 8 : 0;
		uint8_t keep = (uint8_t)(0xff00u >> fixed);

		k->b[byte] =
		    (uint8_t)((k->b[byte] & keep) | (fz_u8(in) & ~keep));
	}
}

static void
build_subject(fz_in *in, crdt_subject *s)
{
	uint8_t b = fz_u8(in), nb = fz_u8(in);
	unsigned n;

	s->not_before_ms = nb == 0    ? 0
	                   : nb < 128 ? now_ms() - (uint64_t)nb * 1000
	                   : nb < 255 ? now_ms() + (uint64_t)(nb - 127) * 1000
	                              : fz_u64(in);
	if ((b & 0xc0) == 0xc0) {
		/*
		 * As many writers as a counter holds; two such sets that
		 * differ (b & 2) cannot be merged.
		 */
		n = CRDT_MAX_WRITERS;
		s->n = n;
		for (unsigned i = 0; i < n; i++) {
			s->region[i] = (uint16_t)(i + 1 + (b & 2) * 100);
			s->count[i] = 1 + i;
		}
		return;
	}
	n = b % 5;
	s->n = 0;
	for (unsigned i = 0, r = 0; i < n; i++) {
		uint8_t x = fz_u8(in);

		r += 1 + x % 3;
		if (b & 0x20) /* any order, repeats */
			s->region[s->n] = regions[x & 7];
		else
			s->region[s->n] = (uint16_t)r;
		s->count[s->n++] = (b & 0x10) && i == 0 ? 0 : 1 + (x >> 4);
	}
}

/*
 * One entry from the input: kind, key (from the pool, raw, or inside
 * within when given), value.
 */
static void
build_entry(fz_in *in, crdt_entry *e, const struct fz_node *within)
{
	static const int kinds[8] = { CRDT_KIND_JTI, CRDT_KIND_JTI,
		CRDT_KIND_SID, CRDT_KIND_SUB, CRDT_KIND_CLIENT,
		CRDT_KIND_TENANT, 0, 9 };
	uint8_t b = fz_u8(in), k;

	memset(e, 0, sizeof(*e));
	e->kind = (crdt_kind)kinds[b & 7];
	if (within != NULL) {
		key_in_node(in, within, &e->key);
	} else if ((k = fz_u8(in)) >= FZE_KEY_RAW) {
		size_t got;
		const uint8_t *p = fz_bytes(in, CRDT_KEY_LEN, &got);

		memcpy(e->key.b, p, got);
	} else {
		fze_pool_key(k, &e->key);
	}
	if (crdt_kind_is_token(e->kind) || !crdt_kind_valid(e->kind)) {
		e->u.token.exp = build_exp(in);
		e->u.token.revoked_at = build_hlc(in);
		e->u.token.restored_at = build_hlc(in);
		e->u.token.origin = regions[(b >> 3) & 7];
		e->u.token.reason = (uint8_t)(b >> 6);
	} else {
		build_subject(in, &e->u.subject);
	}
}

/* Append e packed to buf (key, canonical value). */
static void
pack_entry(revokd_buf *buf, const crdt_entry *e)
{
	uint8_t tmp[CRDT_KEY_LEN + CRDT_VALUE_MAX + 10];
	size_t n;

	memcpy(tmp, e->key.b, CRDT_KEY_LEN);
	if (!crdt_kind_valid(e->kind)) {
		/* crdt_value_encode wants a kind it knows. */
		crdt_entry t = *e;

		t.kind = CRDT_KIND_JTI;
		n = crdt_value_encode(&t, tmp + CRDT_KEY_LEN);
		tmp[CRDT_KEY_LEN] = (uint8_t)e->kind;
	} else {
		n = crdt_value_encode(e, tmp + CRDT_KEY_LEN);
	}
	(void)revokd_buf_append(buf, tmp, CRDT_KEY_LEN + n);
}

/* ------------------------------------------------------------------------ */
/* Building messages                                                        */
/* ------------------------------------------------------------------------ */

/* A packed PeerMsg (no frame header) into *out, malloc'd. */
static void
pack_msg(const PeerMsg *m, revokd_buf *out)
{
	size_t n = revokd__peer__peer_msg__get_packed_size(m);

	memset(out, 0, sizeof(*out));
	if (revokd_buf_reserve(out, n + 1) != REVOKD_OK)
		return;
	revokd__peer__peer_msg__pack(m, out->data);
	out->len = n;
}

static ProtobufCBinaryData
bin(const revokd_buf *b)
{
	ProtobufCBinaryData d = { b->len, b->data };

	return d;
}

static void
build_batch(fz_in *in, struct fz_peer *t, unsigned variant, revokd_buf *out)
{
	PeerMsg m = REVOKD__PEER__PEER_MSG__INIT;
	Revokd__Peer__Batch b = REVOKD__PEER__BATCH__INIT;
	revokd_buf entries = { 0 };
	uint8_t sm = fz_u8(in), cnt = fz_u8(in);
	unsigned n = 0;
	crdt_entry e;

	switch (sm & 3) {
	case 0:
		b.seq = t->seq + 1;
		break;
	case 1:
		b.seq = t->seq; /* a duplicate (or 0 at first) */
		break;
	case 2:
		b.seq = t->seq + 2 + (sm >> 2);
		break;
	default:
		b.seq = fz_u64(in);
		break;
	}
	if (b.seq > t->seq)
		t->seq = b.seq;
	b.hlc = build_hlc(in);
	if (variant == 3) {
		/* Bulk: many entries from a seed, to reach the limits. */
		uint32_t x = fz_u32(in) | 1;

		n = (cnt + 1u) * 4 > BULK_MAX ? BULK_MAX : (cnt + 1u) * 4;
		for (unsigned i = 0; i < n; i++) {
			memset(&e, 0, sizeof(e));
			for (unsigned k = 0; k < CRDT_KEY_LEN; k++) {
				x ^= x << 13, x ^= x >> 17, x ^= x << 5;
				e.key.b[k] = (uint8_t)x;
			}
			e.kind = (x & 3) ? CRDT_KIND_JTI : CRDT_KIND_SUB;
			if (e.kind == CRDT_KIND_JTI) {
				e.u.token.exp = now_s() + 600;
				e.u.token.revoked_at = CRDT_HLC_AT(now_ms());
				e.u.token.origin = 2;
			} else {
				(void)crdt_subject_bump(&e.u.subject, 2, 1);
			}
			pack_entry(&entries, &e);
		}
	} else {
		n = cnt % (BATCH_BUILT_MAX + 1);
		for (unsigned i = 0; i < n; i++) {
			build_entry(in, &e, NULL);
			pack_entry(&entries, &e);
		}
	}
	b.count = variant == 1 ? n + 1 : variant == 2 ? fz_u16(in) : n;
	b.entries = bin(&entries);
	m.body_case = REVOKD__PEER__PEER_MSG__BODY_BATCH;
	m.batch = &b;
	pack_msg(&m, out);
	revokd_buf_free(&entries);
}

static void
build_ack(fz_in *in, struct fz_peer *t, unsigned variant, revokd_buf *out)
{
	PeerMsg m = REVOKD__PEER__PEER_MSG__INIT;
	Revokd__Peer__Ack a = REVOKD__PEER__ACK__INIT;

	a.seq = variant == 0   ? t->engine_seq
	        : variant == 1 ? t->engine_seq + 1
	        : variant == 2 ? fz_u8(in)
	                       : fz_u64(in);
	m.body_case = REVOKD__PEER__PEER_MSG__BODY_ACK;
	m.ack = &a;
	pack_msg(&m, out);
}

static void
build_heartbeat(fz_in *in, struct fz_peer *t, unsigned variant, revokd_buf *out)
{
	PeerMsg m = REVOKD__PEER__PEER_MSG__INIT;
	Revokd__Peer__Heartbeat h = REVOKD__PEER__HEARTBEAT__INIT;
	Revokd__Peer__Watermark *wp[WIRE_WATERMARKS_MAX + 1],
	    *w = calloc(WIRE_WATERMARKS_MAX + 1, sizeof(*w));
	uint8_t nb = fz_u8(in);
	size_t n = (variant & 4) ? WIRE_WATERMARKS_MAX + (nb & 1) : nb % 6;

	if (w == NULL)
		return;
	h.hlc = build_hlc(in);
	h.last_seq = (variant & 3) == 0   ? t->seq
	             : (variant & 3) == 1 ? t->seq + 1
	                                  : fz_u64(in);
	for (size_t i = 0; i < n; i++) {
		uint8_t r = fz_u8(in), d = fz_u8(in);
		static const uint32_t ids[8] = { 1, 2, 3, 4, 5, 65535, 65536,
			70000 };

		revokd__peer__watermark__init(&w[i]);
		w[i].region_id = ids[r & 7];
		w[i].complete_us = (r & 8)    ? fz_u64(in)
		                   : (r & 16) ? G.now + (uint64_t)d * 1000000
		                              : G.now - (uint64_t)d * 100000;
		wp[i] = &w[i];
	}
	h.n_watermarks = n;
	h.watermarks = wp;
	m.body_case = REVOKD__PEER__PEER_MSG__BODY_HEARTBEAT;
	m.heartbeat = &h;
	pack_msg(&m, out);
	free(w);
}

static void
build_ping_pong(fz_in *in, struct fz_peer *t, bool pong, unsigned variant,
    revokd_buf *out)
{
	PeerMsg m = REVOKD__PEER__PEER_MSG__INIT;
	Revokd__Peer__Ping pi = REVOKD__PEER__PING__INIT;
	Revokd__Peer__Pong po = REVOKD__PEER__PONG__INIT;

	if (!pong) {
		pi.t1_us = variant ? fz_u64(in) : G.now;
		m.body_case = REVOKD__PEER__PEER_MSG__BODY_PING;
		m.ping = &pi;
	} else {
		int64_t offset = (int8_t)fz_u8(in) * INT64_C(100000);
		uint64_t d = fz_u8(in) * UINT64_C(1000);

		po.t1_us = (variant & 1) ? fz_u64(in) : t->engine_ping_t1;
		if (variant & 2) {
			po.t2_us = fz_u64(in);
			po.t3_us = fz_u64(in);
		} else {
			po.t2_us = po.t1_us + (uint64_t)offset + d; /* wraps */
			po.t3_us = po.t2_us + d / 2;
		}
		m.body_case = REVOKD__PEER__PEER_MSG__BODY_PONG;
		m.pong = &po;
	}
	pack_msg(&m, out);
}

static void
build_handshake(fz_in *in, unsigned variant, revokd_buf *out)
{
	PeerMsg m = REVOKD__PEER__PEER_MSG__INIT;
	Revokd__Peer__Hello h = REVOKD__PEER__HELLO__INIT;
	Revokd__Peer__Auth a = REVOKD__PEER__AUTH__INIT;
	static uint8_t blob[64];
	size_t len;
	const uint8_t *p = fz_bytes(in, fz_u8(in) % 64, &len);

	memcpy(blob, p, len);
	switch (variant % 3) {
	case 0:
		h.protocol = 1;
		h.cluster = (ProtobufCBinaryData){ 4, (uint8_t *)"fuzz" };
		h.region = (ProtobufCBinaryData){ 4, (uint8_t *)"beta" };
		h.region_id = 2;
		h.cert = (ProtobufCBinaryData){ len ? len : 1, blob };
		h.nonce = (ProtobufCBinaryData){ 32, blob };
		m.body_case = REVOKD__PEER__PEER_MSG__BODY_HELLO;
		m.hello = &h;
		break;
	case 1:
		a.signature = (ProtobufCBinaryData){ len ? len : 1, blob };
		m.body_case = REVOKD__PEER__PEER_MSG__BODY_AUTH;
		m.auth = &a;
		break;
	default:
		break; /* no body at all */
	}
	pack_msg(&m, out);
}

/* ------------------------------------------------------------------------ */
/* Reconciliation messages                                                  */
/* ------------------------------------------------------------------------ */

static void
put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The engine's own summary of node n, truncated as on the wire. */
static void
true_sum(const struct fz_node *n, uint8_t rec[RECON_SUM_LEN])
{
	crdt_summary s = { 0 };
	crdt_key hi;

	if (crdt_reader_begin(G.reader) == REVOKD_OK) {
		(void)crdt_reader_range_summary(G.reader, &n->lo,
		    node_hi(n, &hi) ? &hi : NULL, &s);
		crdt_reader_end(G.reader);
	}
	put_le(rec, s.count & 0xff, 1);
	put_le(rec + 1, s.fp_lo & ((UINT64_C(1) << 48) - 1), 6);
}

/* A node blob being built: n, the codes, the payload; and the items. */
struct blob {
	revokd_buf nodes, payload, items;
	uint8_t *codes;
	uint32_t n, n_items;
};

static void
blob_start(struct blob *b, uint32_t n)
{
	memset(b, 0, sizeof(*b));
	b->n = n;
	b->codes = calloc((n + 3) / 4 + 1, 1);
}

static void
blob_code(struct blob *b, uint32_t i, unsigned code)
{
	if (b->codes)
		b->codes[i / 4] |= (uint8_t)((code & 3) << (2 * (i % 4)));
}

/* k entries inside node n (or anywhere when n is NULL) as items. */
static void
blob_items(fz_in *in, struct blob *b, const struct fz_node *n, unsigned k)
{
	uint8_t rec[2];
	crdt_entry e;

	put_le(rec, k, 2);
	(void)revokd_buf_append(&b->payload, rec, 2);
	for (unsigned i = 0; i < k; i++) {
		build_entry(in, &e, n);
		pack_entry(&b->items, &e);
		b->n_items++;
	}
}

static void
blob_finish(struct blob *b)
{
	uint8_t head[4];

	put_le(head, b->n, 4);
	(void)revokd_buf_append(&b->nodes, head, 4);
	(void)revokd_buf_append(&b->nodes, b->codes, (b->n + 3) / 4);
	(void)revokd_buf_append(&b->nodes, b->payload.data, b->payload.len);
	free(b->codes);
	b->codes = NULL;
	revokd_buf_free(&b->payload);
}

static void
blob_free(struct blob *b)
{
	free(b->codes);
	revokd_buf_free(&b->nodes);
	revokd_buf_free(&b->payload);
	revokd_buf_free(&b->items);
}

/*
 * A node record byte of a ROUND or a REPLY: bits 4-5 the mode or status,
 * bits 6-7 the entries of an ITEMS record (mod 3) or which summary (true,
 * true, perturbed in byte 1 + bits 0-2 mod 6, zero); low bits 0x08 mean
 * "insist" (send what the other side must refuse). 0x0f is a true SUM, a
 * SAME, and as an operation a NOP: seeds pad with it where the node count
 * is not known.
 */
#define REC_MODE(c) (((c) >> 4) & 3)
#define REC_ITEMS(c) (((c) >> 6) % 3)
#define REC_INSIST(c) (((c)&0x0f) == 0x08)

/*
 * A ROUND of the session we lead: n nodes off our mirrored queue, each as
 * a summary (the store's true one, perturbed, raw or zero), items inside
 * it, or derived from its parent.
 */
static void
build_round(fz_in *in, struct fz_peer *t, struct blob *b)
{
	uint8_t nb = fz_u8(in);
	uint32_t n = (uint32_t)t->in_q.len;

	if (nb != 0 && nb < n)
		n = nb;
	if (n > RECON_PART_MAX)
		n = RECON_PART_MAX;
	if (n == 0)
		n = 1 + nb % 16; /* more than it expects: a protocol error */
	if (fz_verbose())
		fprintf(stderr, "  ROUND %u of %u nodes, %zu expected\n",
		    t->in_round, n, t->in_q.len);
	blob_start(b, n);
	for (uint32_t i = 0; i < n; i++) {
		struct fz_node node = { .depth = 4 };
		uint8_t c = fz_u8(in), rec[RECON_SUM_LEN];
		bool have = fifo_pop(&t->in_q, &node);

		if (REC_MODE(c) == MODE_ITEMS) {
			blob_code(b, i, MODE_ITEMS);
			blob_items(in, b, have ? &node : NULL, REC_ITEMS(c));
			node.mode = MODE_ITEMS;
		} else if (REC_MODE(c) == MODE_DERIVED &&
		           ((node.flags & (NODE_LAST | NODE_HAS_PARENT)) ==
		                   (NODE_LAST | NODE_HAS_PARENT) ||
		               REC_INSIST(c))) {
			blob_code(b, i, MODE_DERIVED);
			node.mode = MODE_DERIVED;
		} else if (REC_MODE(c) == 3 && REC_INSIST(c)) {
			blob_code(b, i, 3); /* no such mode */
		} else {
			blob_code(b, i, MODE_SUM);
			switch (c >> 6) {
			case 0:
			case 1:
				true_sum(&node, rec);
				break;
			case 2:
				true_sum(&node, rec);
				rec[1 + (c & 7) % 6] ^= 1;
				break;
			default:
				memset(rec, 0, sizeof(rec));
				break;
			}
			(void)revokd_buf_append(&b->payload, rec, sizeof(rec));
			node.mode = MODE_SUM;
		}
		if (have)
			fifo_push(&t->in_sent, &node);
	}
	if (t->in_rounds_n < ROUNDS_MAX)
		t->in_rounds[t->in_rounds_n++] = n;
	blob_finish(b);
}

/*
 * A REPLY to the oldest ROUND of the session the engine leads: a status
 * per node (SAME for an ITEMS node unless the input insists).
 */
static void
build_reply(fz_in *in, struct fz_peer *t, struct blob *b, uint32_t *round)
{
	uint32_t n = t->out_rounds_n ? t->out_rounds[0] : 1 + fz_u8(in) % 16;

	*round = t->out_rounds_n ? t->out_round_no[0] : 0;
	if (t->out_rounds_n) {
		memmove(t->out_rounds, t->out_rounds + 1,
		    (t->out_rounds_n - 1) * sizeof(*t->out_rounds));
		memmove(t->out_round_no, t->out_round_no + 1,
		    (t->out_rounds_n - 1) * sizeof(*t->out_round_no));
		t->out_rounds_n--;
	}
	blob_start(b, n);
	for (uint32_t i = 0; i < n; i++) {
		struct fz_node node = { .depth = 4 };
		uint8_t c = fz_u8(in);
		unsigned st = REC_MODE(c);
		bool have = fifo_pop(&t->out_sent, &node);

		/* Unless the input insists, statuses the leader takes. */
		if (have && node.mode == MODE_ITEMS && !REC_INSIST(c))
			st = ST_SAME;
		if (have && !REC_INSIST(c) &&
		    ((st == ST_SPLIT2 && node.depth + 1 > 128) ||
		        (st == ST_SPLIT16 && node.depth + 4 > 128)))
			st = ST_C_ITEMS;
		blob_code(b, i, st);
		if (st == ST_C_ITEMS)
			blob_items(in, b, have ? &node : NULL, REC_ITEMS(c));
		else if (have && st == ST_SPLIT2)
			push_children(&t->out_q, &node, 1, true);
		else if (have && st == ST_SPLIT16)
			push_children(&t->out_q, &node, 4, true);
	}
	blob_finish(b);
}

static void
build_recon(fz_in *in, struct fz_peer *t, unsigned variant, revokd_buf *out)
{
	PeerMsg m = REVOKD__PEER__PEER_MSG__INIT;
	Revokd__Peer__Recon r = REVOKD__PEER__RECON__INIT;
	uint8_t kb = fz_u8(in), sm = fz_u8(in);
	struct blob b;
	bool ours; /* about the session we lead */

	memset(&b, 0, sizeof(b));
	r.kind = kb >= 0xf8 ? fz_u32(in) : kb % 8;
	ours = r.kind == FZE_RECON_ROUND || r.kind == FZE_RECON_DONE ||
	       ((r.kind == FZE_RECON_ITEMS || r.kind == FZE_RECON_ABORT) &&
	           (variant & 1));
	if (ours && r.kind == FZE_RECON_ROUND && t->in_session == 0) {
		/* A new session of ours. */
		t->in_session = 0x5eed0000u | (++G.session_ctr & 0xffff);
		t->in_round = 0;
		t->in_items = 0;
		t->in_rounds_n = 0;
		fifo_free(&t->in_q);
		fifo_free(&t->in_sent);
		push_start(&t->in_q);
	}
	switch (sm & 3) {
	case 0:
		r.session = ours ? t->in_session : t->out_session;
		break;
	case 1:
		r.session = ours ? t->out_session : t->in_session;
		break;
	case 2:
		r.session = fz_u32(in);
		break;
	default:
		r.session = 0;
		break;
	}
	if ((variant & 6) == 2) {
		/* Nodes and items straight from the input. */
		size_t len;
		const uint8_t *p = fz_bytes(in, fz_u16(in) % 4096, &len);

		r.nodes = (ProtobufCBinaryData){ len, (uint8_t *)p };
		r.round = fz_u32(in);
	} else if (r.kind == FZE_RECON_ROUND) {
		build_round(in, t, &b);
		r.round = t->in_round++;
	} else if (r.kind == FZE_RECON_REPLY) {
		build_reply(in, t, &b, &r.round);
	} else if (r.kind == FZE_RECON_ITEMS) {
		unsigned k = fz_u8(in) % (RECON_FILTER_MAX + 1);
		crdt_entry e;

		for (unsigned i = 0; i < k; i++) {
			build_entry(in, &e, NULL);
			pack_entry(&b.items, &e);
			b.n_items++;
		}
		if (ours)
			t->in_items++;
		else
			t->out_items++;
	}
	if (b.nodes.len)
		r.nodes = bin(&b.nodes);
	r.items = bin(&b.items);
	r.item_count = (variant & 6) == 4 ? fz_u16(in) : b.n_items;
	r.chunks = (variant & 6) == 6 ? fz_u32(in)
	           : ours             ? t->in_items
	                              : t->out_items;
	if (r.kind == FZE_RECON_ITEMS)
		r.chunks = 0;
	m.body_case = REVOKD__PEER__PEER_MSG__BODY_RECON;
	m.recon = &r;
	pack_msg(&m, out);
	blob_free(&b);
	if (ours && r.kind == FZE_RECON_DONE && (sm & 3) == 0)
		t->in_session = 0;
	if (!ours && r.kind == FZE_RECON_FIN && (sm & 3) == 0)
		t->out_session = 0;
}

/* The message of a message operation (types 0 to 7) into out. */
static void
build_msg(fz_in *in, unsigned type, unsigned peer, unsigned variant,
    revokd_buf *out)
{
	struct fz_peer *t = &G.peer[peer];

	memset(out, 0, sizeof(*out));
	switch (type) {
	case FZE_OP_RAW: {
		size_t len;
		const uint8_t *p = fz_bytes(in, fz_u16(in) % RAW_MAX, &len);

		(void)revokd_buf_append(out, p, len);
		break;
	}
	case FZE_OP_BATCH:
		build_batch(in, t, variant & 3, out);
		break;
	case FZE_OP_ACK:
		build_ack(in, t, variant & 3, out);
		break;
	case FZE_OP_HEARTBEAT:
		build_heartbeat(in, t, variant, out);
		break;
	case FZE_OP_PING:
		build_ping_pong(in, t, false, variant & 1, out);
		break;
	case FZE_OP_PONG:
		build_ping_pong(in, t, true, variant & 3, out);
		break;
	case FZE_OP_RECON:
		build_recon(in, t, variant, out);
		break;
	default:
		build_handshake(in, variant, out);
		break;
	}
}

/* ------------------------------------------------------------------------ */
/* Operations                                                               */
/* ------------------------------------------------------------------------ */

/* After engine_receive*: a refusal closes the connection, as the host. */
static void
received(unsigned peer, revokd_err err)
{
	if (fz_verbose())
		fprintf(stderr, "engine <- %s: %s\n", peer_names[peer],
		    revokd_err_name(err));
	FZ_CHECK(err == REVOKD_OK || err == REVOKD_EMALFORMED ||
	             err == REVOKD_EPROTO,
	    "engine_receive gave %s", revokd_err_name(err));
	if (err != REVOKD_OK)
		link_down(peer);
}

static void
op_message(fz_in *in, unsigned type, unsigned peer, unsigned variant)
{
	revokd_buf msg;

	build_msg(in, type, peer, variant, &msg);
	if (fz_verbose()) {
		fprintf(stderr, "  %zu bytes:", msg.len);
		for (size_t i = 0; i < msg.len && i < 48; i++)
			fprintf(stderr, " %02x", msg.data[i]);
		fputc('\n', stderr);
	}
	if (G.peer[peer].up)
		received(peer,
		    engine_receive(G.e, peer,
		        msg.data ? msg.data : (uint8_t *)"", msg.len, G.now));
	revokd_buf_free(&msg);
}

static void
op_multi(fz_in *in, unsigned peer)
{
	revokd_buf msg[MULTI_MAX];
	engine_frame f[MULTI_MAX];
	unsigned k = 2 + fz_u8(in) % (MULTI_MAX - 1);

	for (unsigned i = 0; i < k; i++) {
		uint8_t op = fz_u8(in);

		build_msg(in, op & 7, peer, op >> 5, &msg[i]);
		f[i].data = msg[i].data ? msg[i].data : (uint8_t *)"";
		f[i].len = msg[i].len;
	}
	if (G.peer[peer].up)
		received(peer, engine_receive_frames(G.e, peer, f, k, G.now));
	for (unsigned i = 0; i < k; i++)
		revokd_buf_free(&msg[i]);
}

static void
op_local(fz_in *in, unsigned variant)
{
	engine_op ops[4];
	crdt_entry after[4];
	unsigned n = 1 + fz_u8(in) % 4;
	uint64_t batch = 0;
	revokd_err err;

	memset(ops, 0, sizeof(ops));
	for (unsigned i = 0; i < n; i++) {
		engine_op *op = &ops[i];
		uint8_t b = fz_u8(in);

		op->type = (engine_op_type)(1 + b % 4);
		op->kind = (b & 0x40) ? (crdt_kind)(1 + (b >> 2) % 6)
		           : op->type == ENGINE_OP_REVOKE_USER ? CRDT_KIND_SUB
		           : (b & 0x10)                        ? CRDT_KIND_SID
		                                               : CRDT_KIND_JTI;
		fze_pool_key(fz_u8(in), &op->key);
		op->exp = build_exp(in);
		op->reason = fz_u8(in);
		op->bump = (b & 0x80) != 0;
		op->not_before_ms = (b & 0x20) ? now_ms() : 0;
		if (op->type == ENGINE_OP_MERGE)
			build_entry(in, &op->entry, NULL);
	}
	err = engine_local(G.e, ops, n, G.now, &batch,
	    (variant & 1) ? after : NULL);
	if (fz_verbose())
		fprintf(stderr, "engine_local: %s\n", revokd_err_name(err));
	if (err == REVOKD_OK)
		FZ_CHECK(batch == engine_last_batch(G.e),
		    "batch %llu, last %llu", (unsigned long long)batch,
		    (unsigned long long)engine_last_batch(G.e));
	else
		FZ_CHECK(err == REVOKD_EINVAL || err == REVOKD_EKIND ||
		             err == REVOKD_ELIMIT || err == REVOKD_EMALFORMED,
		    "engine_local gave %s", revokd_err_name(err));
}

static void
advance(uint64_t us)
{
	G.now += us;
	if (G.now > G.max_now)
		G.max_now = G.now;
}

static void
check_next_tick(void)
{
	uint64_t next = engine_next_tick(G.e, G.now);

	FZ_CHECK(next >= G.now && next <= G.now + 1000000,
	    "engine_next_tick %llu us away",
	    (unsigned long long)(next - G.now));
}

static void
op_tick(fz_in *in)
{
	static const uint64_t unit[4] = { 1000, 100000, 1000000, 60000000 };
	uint8_t b = fz_u8(in);

	advance(unit[b >> 6] * (b & 63));
	engine_tick(G.e, G.now);
	check_next_tick();
}

static void
run_op(fz_in *in, uint8_t flags)
{
	uint8_t op = fz_u8(in);
	unsigned type = op & 15, peer = (op >> 4) & 1, variant = op >> 5;

	if (fz_verbose())
		fprintf(stderr, "op %u peer %u variant %u\n", type, peer,
		    variant);

	switch (type) {
	case FZE_OP_LOCAL:
		op_local(in, variant);
		break;
	case FZE_OP_TICK:
		op_tick(in);
		break;
	case FZE_OP_SEND_DONE:
		send_done(peer);
		break;
	case FZE_OP_LINK:
		if (G.peer[peer].up)
			link_down(peer);
		else
			link_up(peer);
		break;
	case FZE_OP_HOLD:
		if (variant & 1)
			engine_release(G.e, G.now);
		else
			engine_hold(G.e);
		break;
	case FZE_OP_MULTI:
		op_multi(in, peer);
		break;
	case FZE_OP_CLOCK_BACK:
		G.now -= (fz_u8(in) + UINT64_C(1)) * 10000;
		engine_tick(G.e, G.now);
		break;
	case FZE_OP_NOP:
		break;
	default:
		op_message(in, type, peer, variant);
		break;
	}
	if (flags & FZE_FLAG_AUTO_DRAIN)
		drain();
}

/* ------------------------------------------------------------------------ */
/* Invariants                                                               */
/* ------------------------------------------------------------------------ */

/*
 * A full recompute of the fingerprints equals the incremental bucket sums
 * (as tests/test_crdt_fingerprint.c compares them). The buckets are read
 * from the store's array (crdt_int.h), which is all crdt_store_buckets_sum
 * adds up, so that 4,096 calls do not flood the coverage feedback.
 */
FZ_NOCOV static void
check_store(void)
{
	crdt_summary total, all;
	revokd_err err;

	FZ_CHECK(crdt_reader_begin(G.reader) == REVOKD_OK, "reader begin");
	err = crdt_reader_recompute(G.reader, &total, G.buckets);
	crdt_reader_end(G.reader);
	FZ_CHECK(err == REVOKD_OK, "recompute: %s", revokd_err_name(err));
	for (uint32_t b = 0; b < CRDT_BUCKETS; b++) {
		const crdt_summary *one = &G.store->bucket[b];

		FZ_CHECK(one->count == G.buckets[b].count &&
		             one->fp_lo == G.buckets[b].fp_lo &&
		             one->fp_hi == G.buckets[b].fp_hi,
		    "bucket %u: incremental count %llu, recomputed %llu (or "
		    "their fingerprints differ)",
		    b, (unsigned long long)one->count,
		    (unsigned long long)G.buckets[b].count);
	}
	memset(&all, 0, sizeof(all));
	for (uint32_t b = 0; b < CRDT_BUCKETS; b++) {
		const crdt_summary *one = &G.store->bucket[b];
		uint64_t lo = all.fp_lo + one->fp_lo;

		all.fp_hi += one->fp_hi + (lo < all.fp_lo);
		all.fp_lo = lo;
		all.count += one->count;
	}
	FZ_CHECK(total.count == all.count && total.fp_lo == all.fp_lo &&
	             total.fp_hi == all.fp_hi,
	    "total fingerprint");
	FZ_CHECK(total.count == crdt_store_count(G.store),
	    "store count %llu, recomputed %llu",
	    (unsigned long long)crdt_store_count(G.store),
	    (unsigned long long)total.count);
}

static void
check_engine(void)
{
	engine_stats st;
	engine_peer_status ps;
	uint64_t limit_ms = G.max_now / 1000 + CFG_MAX_AHEAD_US / 1000 + 1000;

	FZ_CHECK(CRDT_HLC_MS(G.e->clock.last) <= limit_ms,
	    "the HLC is %llu ms ahead of the latest now",
	    (unsigned long long)(CRDT_HLC_MS(G.e->clock.last) -
	                         G.max_now / 1000));
	engine_get_stats(G.e, &st);
	for (unsigned i = 0; i < N_PEERS; i++) {
		engine_get_peer_status(G.e, i, &ps);
		FZ_CHECK(ps.up == G.peer[i].up, "%s up: engine %d, host %d",
		    peer_names[i], ps.up, G.peer[i].up);
		FZ_CHECK(ps.backlog <= CFG_BACKLOG, "backlog of %zu for %s",
		    ps.backlog, peer_names[i]);
		(void)engine_watermark(G.e, (uint16_t)(2 + i));
	}
	(void)engine_staleness_us(G.e, G.now);
	check_next_tick();
}

/* ------------------------------------------------------------------------ */
/* The target                                                               */
/* ------------------------------------------------------------------------ */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in in = { data, size };
	uint8_t flags = fz_u8(&in);
	static int fresh = -1;

	if (fresh < 0)
		fresh = getenv("REVOKD_FUZZ_FRESH") != NULL;
	if (!G.ready || fresh || ++G.inputs >= RESET_EVERY ||
	    crdt_store_count(G.store) > STORE_MAX)
		full_reset();
	advance(1000000);
	link_up(0);
	if (!(flags & FZE_FLAG_ONLY_ONE))
		link_up(1);
	if (flags & FZE_FLAG_HOLD)
		engine_hold(G.e);
	while (!fz_empty(&in))
		run_op(&in, flags);
	/* The host's side of the contract: what is held is released. */
	engine_release(G.e, G.now);
	drain();
	check_engine();
	check_store();
	for (unsigned i = 0; i < N_PEERS; i++)
		link_down(i);
	return 0;
}
