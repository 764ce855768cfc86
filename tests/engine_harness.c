/*
 * engine_harness.c: engines driven by hand (see engine_harness.h).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine_harness.h"
#include "testutil.h"

/* The harness clock starts here (2023-11-14, µs). */
#define EH_EPOCH UINT64_C(1700000000000000)

static const char *const eh_names[EH_NODES] = { "alpha", "beta", "gamma",
	"delta" };

uint64_t
eh_clock(struct eh *h, unsigned i)
{
	return (uint64_t)((int64_t)h->now + h->node[i].skew_us);
}

unsigned
eh_peer(unsigned i, unsigned j)
{
	return j < i ? j : j - 1;
}

/* The node behind peer index k of node i. */
static unsigned
eh_node_of(unsigned i, unsigned k)
{
	return k < i ? k : k + 1;
}

static void
eh_send(void *arg, unsigned peer, wire_peer_type type, uint8_t *frame,
    size_t len)
{
	struct eh_node *nd = arg;
	unsigned j = eh_node_of(nd->index, peer);
	struct eh_frame *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_false(nd->busy[j]); /* one frame in flight per peer */
	nd->busy[j] = true;
	f->type = type;
	f->data = frame;
	f->len = len;
	if (nd->out_tail[j])
		nd->out_tail[j]->next = f;
	else
		nd->out[j] = f;
	nd->out_tail[j] = f;
}

static void
eh_notice(void *arg, const engine_notice *n)
{
	struct eh_node *nd = arg;

	switch (n->type) {
	case ENGINE_NOTICE_CONFIRMED: {
		unsigned j = eh_node_of(nd->index, n->peer);

		if (n->batch > nd->confirmed[j])
			nd->confirmed[j] = n->batch;
		break;
	}
	case ENGINE_NOTICE_CHANGED:
		nd->changed += n->n_entries;
		break;
	case ENGINE_NOTICE_PEER:
		if (n->event < 16)
			nd->events[n->event]++;
		break;
	default:
		break;
	}
}

void
eh_init(struct eh *h, unsigned n, const engine_config *tmpl)
{
	assert_true(n <= EH_NODES);
	memset(h, 0, sizeof(*h));
	h->n = n;
	h->now = EH_EPOCH;
	h->cfg = *tmpl;
	for (unsigned i = 0; i < n; i++) {
		struct eh_node *nd = &h->node[i];
		engine_peer_config peers[EH_NODES];
		crdt_store_options so = { .no_sync = true };
		engine_config c = *tmpl;
		engine_io io = { nd, eh_send, eh_notice };

		nd->h = h;
		nd->index = i;
		nd->dir = tu_tmpdir();
		assert_int_equal(crdt_store_open(nd->dir, &so, &nd->store),
		    REVOKD_OK);
		for (unsigned j = 0, k = 0; j < n; j++) {
			if (j == i)
				continue;
			memset(&peers[k], 0, sizeof(peers[k]));
			peers[k].region_id = (uint16_t)(j + 1);
			strcpy(peers[k].name, eh_names[j]);
			k++;
		}
		c.region_id = (uint16_t)(i + 1);
		c.region = eh_names[i];
		c.store = nd->store;
		c.n_peers = n - 1;
		c.peers = peers;
		c.seed = 1000 + i;
		assert_int_equal(
		    engine_new(&c, &io, eh_clock(h, i), &nd->engine),
		    REVOKD_OK);
	}
}

static void
eh_drop_frames(struct eh_node *nd, unsigned j)
{
	while (nd->out[j] != NULL) {
		struct eh_frame *f = nd->out[j];

		nd->out[j] = f->next;
		free(f->data);
		free(f);
	}
	nd->out_tail[j] = NULL;
	nd->busy[j] = false;
}

void
eh_free(struct eh *h)
{
	for (unsigned i = 0; i < h->n; i++) {
		struct eh_node *nd = &h->node[i];

		for (unsigned j = 0; j < h->n; j++)
			eh_drop_frames(nd, j);
		engine_free(nd->engine);
		crdt_store_close(nd->store);
		tu_rmdir(nd->dir);
	}
	memset(h, 0, sizeof(*h));
}

void
eh_link_up(struct eh *h, unsigned i, unsigned j)
{
	engine_peer_up(h->node[i].engine, eh_peer(i, j), eh_clock(h, i));
	engine_peer_up(h->node[j].engine, eh_peer(j, i), eh_clock(h, j));
}

void
eh_link_down(struct eh *h, unsigned i, unsigned j)
{
	eh_drop_frames(&h->node[i], j);
	eh_drop_frames(&h->node[j], i);
	engine_peer_down(h->node[i].engine, eh_peer(i, j), eh_clock(h, i));
	engine_peer_down(h->node[j].engine, eh_peer(j, i), eh_clock(h, j));
}

bool
eh_deliver(struct eh *h, unsigned i, unsigned j)
{
	struct eh_node *from = &h->node[i], *to = &h->node[j];
	struct eh_frame *f = from->out[j];
	revokd_err err;

	if (f == NULL)
		return false;
	from->out[j] = f->next;
	if (from->out[j] == NULL)
		from->out_tail[j] = NULL;
	from->busy[j] = false;
	if (f->type < 16)
		h->bytes_by_type[f->type] += f->len;
	err =
	    engine_receive(to->engine, eh_peer(j, i), f->data + WIRE_HEADER_LEN,
	        f->len - WIRE_HEADER_LEN, eh_clock(h, j));
	free(f->data);
	free(f);
	assert_int_equal(err, REVOKD_OK);
	engine_send_done(from->engine, eh_peer(i, j), eh_clock(h, i));
	return true;
}

void
eh_settle(struct eh *h)
{
	for (int round = 0; round < 100000; round++) {
		bool any = false;

		for (unsigned i = 0; i < h->n; i++)
			for (unsigned j = 0; j < h->n; j++)
				if (i != j)
					any |= eh_deliver(h, i, j);
		if (!any)
			return;
	}
	fail_msg("eh_settle: the network never went quiet");
}

void
eh_advance(struct eh *h, uint64_t us)
{
	h->now += us;
	for (unsigned i = 0; i < h->n; i++)
		engine_tick(h->node[i].engine, eh_clock(h, i));
}

uint64_t
eh_revoke(struct eh *h, unsigned i, crdt_key *key)
{
	static uint64_t counter;
	revokd_rng rng;
	engine_op op = { .type = ENGINE_OP_REVOKE, .kind = CRDT_KIND_JTI };
	uint64_t batch = 0;

	revokd_rng_seed(&rng, ++counter * 7919);
	revokd_rng_bytes(&rng, op.key.b, CRDT_KEY_LEN);
	op.exp = (int64_t)(eh_clock(h, i) / 1000000) + 3600;
	assert_int_equal(engine_local(h->node[i].engine, &op, 1, eh_clock(h, i),
	                     &batch, NULL),
	    REVOKD_OK);
	*key = op.key;
	return batch;
}

bool
eh_revoked(struct eh *h, unsigned i, const crdt_key *key)
{
	crdt_reader *r;
	crdt_entry e;
	bool revoked;

	assert_int_equal(crdt_reader_new(h->node[i].store, &r), REVOKD_OK);
	assert_int_equal(crdt_reader_begin(r), REVOKD_OK);
	revoked = crdt_reader_get(r, key, &e) == REVOKD_OK &&
	          crdt_token_revoked(&e.u.token);
	crdt_reader_free(r);
	return revoked;
}

uint64_t
eh_count(struct eh *h, unsigned i)
{
	return crdt_store_count(h->node[i].store);
}

bool
eh_same(struct eh *h, unsigned i, unsigned j)
{
	crdt_summary a, b;

	crdt_store_buckets_sum(h->node[i].store, 0, CRDT_BUCKETS, &a);
	crdt_store_buckets_sum(h->node[j].store, 0, CRDT_BUCKETS, &b);
	return crdt_summary_equal(&a, &b);
}

uint64_t
eh_bytes(struct eh *h, wire_peer_type t)
{
	return t < 16 ? h->bytes_by_type[t] : 0;
}
