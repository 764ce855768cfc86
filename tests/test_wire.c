/*
 * test_wire.c: the peer wire protocol (wire/wire.h). The frame decoder fed
 * whole, byte by byte and in random splits, and its size limit; a round trip
 * of every message type; malformed messages, crafted with the generated
 * protobuf-c structs (or by hand where those cannot express them), each
 * refused with REVOKD_EMALFORMED, and refused by the encoder with
 * REVOKD_EINVAL; random garbage; packed entries. Random cases come from fixed
 * seeds.
 *
 * What the decoder guarantees about an oversize header (pinned by
 * test_framing_oversize_after_good_frame): feed checks every header as soon
 * as it is buffered, returns REVOKD_ETOOBIG from the feed that brings it and
 * takes no more bytes after; the whole frames before it still come out of
 * next, in order, and then next gives REVOKD_ETOOBIG for good.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "peer.pb-c.h"
#include "testutil.h"
#include "wire/wire.h"

typedef Revokd__Peer__PeerMsg PeerMsg;

/* "Now" for random tokens, unix seconds. */
#define NOW 1700000000

/* The decoders under test refuse frames over this: the smallest allowed. */
#define MAX_FRAME ((size_t)WIRE_MAX_FRAME_MIN)

/* Random buffers given to wire_peer_decode, and mutations of valid ones. */
#define GARBAGE 20000
#define MUTATIONS 20000

/* Bytes of a packed token entry, and of a subject entry with n counters. */
#define TOKEN_ENTRY (CRDT_KEY_LEN + 28)
#define SUBJECT_ENTRY(n) (CRDT_KEY_LEN + 10 + 10 * (size_t)(n))

/* Names of 63 (the longest allowed) and 64 bytes. */
#define NAME16 "nnnnnnnnnnnnnnnn"
#define NAME63 NAME16 NAME16 NAME16 "nnnnnnnnnnnnnnn"
#define NAME64 NAME63 "n"

#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Equal byte strings; either pointer may be NULL when its length is 0. */
static void
assert_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	assert_int_equal(alen, blen);
	if (alen > 0)
		assert_memory_equal(a, b, alen);
}

/* Fail, naming the case, unless got is want. */
static void
expect_err(revokd_err got, revokd_err want, const char *what, int i)
{
	if (got != want)
		fail_msg("%s (case %d): got %s, want %s", what, i,
		    revokd_err_name(got), revokd_err_name(want));
}

static void
put_header(uint8_t *p, uint32_t n)
{
	p[0] = (uint8_t)(n >> 24);
	p[1] = (uint8_t)(n >> 16);
	p[2] = (uint8_t)(n >> 8);
	p[3] = (uint8_t)n;
}

static size_t
put_varint(uint8_t *p, uint64_t v)
{
	size_t n = 0;

	for (; v >= 0x80; v >>= 7)
		p[n++] = (uint8_t)(v | 0x80);
	p[n++] = (uint8_t)v;
	return n;
}

static void
put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* ------------------------------------------------------------------------ */
/* Framing                                                                  */
/* ------------------------------------------------------------------------ */

/* Feeding len bytes to d gives want. */
static void
feed_is(wire_decoder *d, const void *buf, size_t len, revokd_err want)
{
	assert_int_equal(wire_decoder_feed(d, buf, len), want);
}

/* The next frame of d gives want, and when OK the n bytes at payload. */
static void
next_is(wire_decoder *d, revokd_err want, const void *payload, size_t n)
{
	const uint8_t *frame = NULL;
	size_t len = SIZE_MAX;

	assert_int_equal(wire_decoder_next(d, &frame, &len), want);
	if (want == REVOKD_OK)
		assert_bytes(frame, len, payload, n);
}

#define STREAM_FRAMES 48

/* A byte stream of frames, and where each payload sits in it. */
struct stream {
	uint8_t *bytes;
	size_t len;
	size_t off[STREAM_FRAMES];
	size_t size[STREAM_FRAMES];
};

/* Frames with sizes at the edges (0, header-sized, max) and random ones. */
static void
stream_build(struct stream *s, uint64_t seed)
{
	static const size_t edges[] = { 0, 1, 3, 4, 5, 0, 0, MAX_FRAME, 4092,
		4096, MAX_FRAME - 1 };
	size_t total = 0;
	revokd_rng rng;

	revokd_rng_seed(&rng, seed);
	for (size_t i = 0; i < STREAM_FRAMES; i++) {
		/* Edges spread over the stream, random sizes between. */
		s->size[i] = i % 4 == 0 && i / 4 < COUNT_OF(edges)
		                 ? edges[i / 4]
		                 : revokd_rng_below(&rng, 3000);
		total += WIRE_HEADER_LEN + s->size[i];
	}
	s->bytes = malloc(total);
	assert_non_null(s->bytes);
	s->len = 0;
	for (size_t i = 0; i < STREAM_FRAMES; i++) {
		put_header(s->bytes + s->len, (uint32_t)s->size[i]);
		s->off[i] = s->len += WIRE_HEADER_LEN;
		revokd_rng_bytes(&rng, s->bytes + s->len, s->size[i]);
		s->len += s->size[i];
	}
}

/*
 * Feed s to a fresh decoder in chunks (max_chunk 0: whole; otherwise random
 * sizes in [1, max_chunk]), pulling every whole frame after each feed. Every
 * frame must come out once, in order, and the buffer must stay within twice
 * (it grows by doubling) the largest frame plus the largest feed.
 */
static void
feed_stream(const struct stream *s, size_t max_chunk, revokd_rng *rng)
{
	wire_decoder d;
	size_t pos = 0, next = 0, biggest = 0, len, bound;
	const uint8_t *frame;
	revokd_err err;

	wire_decoder_init(&d, MAX_FRAME);
	while (pos < s->len) {
		size_t chunk = max_chunk == 0
		                   ? s->len
		                   : 1 + revokd_rng_below(rng, max_chunk);

		chunk = chunk < s->len - pos ? chunk : s->len - pos;
		biggest = chunk > biggest ? chunk : biggest;
		feed_is(&d, s->bytes + pos, chunk, REVOKD_OK);
		pos += chunk;
		while (
		    (err = wire_decoder_next(&d, &frame, &len)) == REVOKD_OK) {
			assert_true(next < STREAM_FRAMES);
			assert_bytes(frame, len, s->bytes + s->off[next],
			    s->size[next]);
			next++;
		}
		assert_int_equal(err, REVOKD_EAGAIN);
		bound = 2 * (WIRE_HEADER_LEN + MAX_FRAME + biggest);
		assert_true(d.cap <= (bound > 4096 ? bound : 4096));
		assert_true(d.len - d.off < WIRE_HEADER_LEN + MAX_FRAME);
	}
	assert_int_equal(next, STREAM_FRAMES);
	assert_int_equal(d.len - d.off, 0);
	assert_false(d.failed);
	wire_decoder_free(&d);
}

/* Frames fed whole, byte by byte and in random splits come out identical. */
static void
test_framing_splits(void **state)
{
	static const size_t chunks[] = { 2, 7, 100, 5000, 70000, 300000 };
	struct stream s;
	revokd_rng rng;

	(void)state;
	revokd_rng_seed(&rng, 0x66726d31);
	stream_build(&s, 0x66726d32);
	feed_stream(&s, 0, &rng);
	feed_stream(&s, 1, &rng);
	for (size_t i = 0; i < COUNT_OF(chunks); i++)
		for (int run = 0; run < 3; run++)
			feed_stream(&s, chunks[i], &rng);
	free(s.bytes);
}

/*
 * Several frames in one feed, zero-length ones among them, come out one per
 * next, then EAGAIN; a zero-length frame needs its whole header.
 */
static void
test_framing_several_in_one_feed(void **state)
{
	uint8_t buf[5 * WIRE_HEADER_LEN + 10 + 300];
	wire_decoder d;

	(void)state;
	memset(buf, 0xa5, sizeof(buf));
	put_header(buf, 10);
	put_header(buf + 14, 300);
	put_header(buf + 318, 0);
	put_header(buf + 322, 0);
	put_header(buf + 326, 0);
	buf[4] = 1;
	buf[18] = 2;
	wire_decoder_init(&d, MAX_FRAME);
	feed_is(&d, buf, sizeof(buf) - 1, REVOKD_OK);
	next_is(&d, REVOKD_OK, buf + 4, 10);
	next_is(&d, REVOKD_OK, buf + 18, 300);
	next_is(&d, REVOKD_OK, NULL, 0);
	next_is(&d, REVOKD_OK, NULL, 0);
	next_is(&d, REVOKD_EAGAIN, NULL, 0); /* 3 bytes of the last header */
	feed_is(&d, buf + sizeof(buf) - 1, 1, REVOKD_OK);
	next_is(&d, REVOKD_OK, NULL, 0);
	next_is(&d, REVOKD_EAGAIN, NULL, 0);
	next_is(&d, REVOKD_EAGAIN, NULL, 0);
	assert_int_equal(d.len - d.off, 0);
	wire_decoder_free(&d);
}

/* EAGAIN while the header or the body is partial; then the frame. */
static void
test_framing_partial(void **state)
{
	uint8_t buf[WIRE_HEADER_LEN + 50];
	wire_decoder d;

	(void)state;
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)i;
	put_header(buf, 50);
	wire_decoder_init(&d, MAX_FRAME);
	for (size_t i = 0; i < sizeof(buf); i++) {
		next_is(&d, REVOKD_EAGAIN, NULL, 0);
		feed_is(&d, buf + i, 1, REVOKD_OK);
	}
	next_is(&d, REVOKD_OK, buf + WIRE_HEADER_LEN, 50);
	next_is(&d, REVOKD_EAGAIN, NULL, 0);
	wire_decoder_free(&d);
}

/* A frame of exactly max_frame is accepted; max_frame + 1 kills the stream. */
static void
test_framing_max_frame(void **state)
{
	static uint8_t body[MAX_FRAME + WIRE_HEADER_LEN];
	uint8_t hdr[WIRE_HEADER_LEN];
	wire_decoder d;

	(void)state;
	memset(body, 0x5a, sizeof(body));
	put_header(hdr, (uint32_t)MAX_FRAME);
	wire_decoder_init(&d, MAX_FRAME);
	feed_is(&d, hdr, sizeof(hdr), REVOKD_OK);
	next_is(&d, REVOKD_EAGAIN, NULL, 0);
	feed_is(&d, body, MAX_FRAME - 1, REVOKD_OK);
	next_is(&d, REVOKD_EAGAIN, NULL, 0);
	feed_is(&d, body, 1, REVOKD_OK);
	next_is(&d, REVOKD_OK, body, MAX_FRAME);
	assert_false(d.failed);

	/* One byte more: refused by feed, then by everything. */
	put_header(hdr, (uint32_t)MAX_FRAME + 1);
	feed_is(&d, hdr, sizeof(hdr), REVOKD_ETOOBIG);
	assert_true(d.failed);
	next_is(&d, REVOKD_ETOOBIG, NULL, 0);
	put_header(body, 1);
	feed_is(&d, body, 5, REVOKD_ETOOBIG);
	next_is(&d, REVOKD_ETOOBIG, NULL, 0);
	wire_decoder_free(&d);

	/* The largest header there is, on a fresh decoder. */
	memset(hdr, 0xff, sizeof(hdr));
	wire_decoder_init(&d, MAX_FRAME);
	feed_is(&d, hdr, sizeof(hdr), REVOKD_ETOOBIG);
	next_is(&d, REVOKD_ETOOBIG, NULL, 0);
	wire_decoder_free(&d);
}

/* An oversize header split across feeds is refused when its last byte lands. */
static void
test_framing_oversize_split(void **state)
{
	uint8_t buf[WIRE_HEADER_LEN + 8 + WIRE_HEADER_LEN];
	wire_decoder d;

	(void)state;
	put_header(buf + 12, (uint32_t)MAX_FRAME + 1);
	wire_decoder_init(&d, MAX_FRAME);
	for (int i = 0; i < WIRE_HEADER_LEN - 1; i++) {
		feed_is(&d, buf + 12 + i, 1, REVOKD_OK);
		next_is(&d, REVOKD_EAGAIN, NULL, 0);
	}
	feed_is(&d, buf + 15, 1, REVOKD_ETOOBIG);
	next_is(&d, REVOKD_ETOOBIG, NULL, 0);
	wire_decoder_free(&d);

	/* A good frame with the first half of the bad header behind it. */
	put_header(buf, 8);
	memset(buf + 4, 7, 8);
	wire_decoder_init(&d, MAX_FRAME);
	feed_is(&d, buf, 14, REVOKD_OK);
	next_is(&d, REVOKD_OK, buf + 4, 8);
	next_is(&d, REVOKD_EAGAIN, NULL, 0);
	feed_is(&d, buf + 14, 2, REVOKD_ETOOBIG);
	next_is(&d, REVOKD_ETOOBIG, NULL, 0);
	wire_decoder_free(&d);
}

/*
 * A good frame and an oversize header in one feed: the feed is refused, the
 * good frame still comes out intact, then ETOOBIG for good.
 */
static void
test_framing_oversize_after_good_frame(void **state)
{
	uint8_t buf[WIRE_HEADER_LEN + 20 + WIRE_HEADER_LEN + 100];
	wire_decoder d;

	(void)state;
	memset(buf, 0x33, sizeof(buf));
	put_header(buf, 20);
	put_header(buf + 24, (uint32_t)MAX_FRAME + 1);
	wire_decoder_init(&d, MAX_FRAME);
	feed_is(&d, buf, sizeof(buf), REVOKD_ETOOBIG);
	next_is(&d, REVOKD_OK, buf + 4, 20);
	next_is(&d, REVOKD_ETOOBIG, NULL, 0);
	next_is(&d, REVOKD_ETOOBIG, NULL, 0);
	feed_is(&d, buf, 24, REVOKD_ETOOBIG);
	assert_true(d.failed);
	wire_decoder_free(&d);
}

/* A max frame trickled in keeps the buffer bounded; a dead stream stops it. */
static void
test_framing_memory_bound(void **state)
{
	static uint8_t junk[64 << 10];
	uint8_t hdr[WIRE_HEADER_LEN];
	size_t got = 0, cap, used;
	wire_decoder d;

	(void)state;
	memset(junk, 0x11, sizeof(junk));
	put_header(hdr, (uint32_t)MAX_FRAME);
	wire_decoder_init(&d, MAX_FRAME);
	feed_is(&d, hdr, sizeof(hdr), REVOKD_OK);
	while (got < MAX_FRAME) {
		size_t n = MAX_FRAME - got < 1000 ? MAX_FRAME - got : 1000;

		feed_is(&d, junk, n, REVOKD_OK);
		got += n;
		next_is(&d, got == MAX_FRAME ? REVOKD_OK : REVOKD_EAGAIN, junk,
		    MAX_FRAME);
		assert_true(d.cap <= 2 * (WIRE_HEADER_LEN + MAX_FRAME + 1000));
	}

	/* Oversize: what follows is not buffered at all. */
	put_header(hdr, UINT32_MAX);
	feed_is(&d, hdr, sizeof(hdr), REVOKD_ETOOBIG);
	cap = d.cap;
	used = d.len;
	for (int i = 0; i < 64; i++)
		feed_is(&d, junk, sizeof(junk), REVOKD_ETOOBIG);
	assert_int_equal(d.cap, cap);
	assert_int_equal(d.len, used);
	wire_decoder_free(&d);
}

/*
 * Feeding zero bytes is a no-op, even before the decoder has a buffer. (Last
 * in main: under UBSan a failure here aborts the program.)
 */
static void
test_framing_feed_nothing(void **state)
{
	uint8_t byte = 0;
	wire_decoder d;

	(void)state;
	wire_decoder_init(&d, MAX_FRAME);
	feed_is(&d, &byte, 0, REVOKD_OK);
	next_is(&d, REVOKD_EAGAIN, NULL, 0);
	assert_int_equal(d.len, 0);
	wire_decoder_free(&d);
}

/* ------------------------------------------------------------------------ */
/* Sample messages and their round trip                                     */
/* ------------------------------------------------------------------------ */

/* Valid messages of every type, in this order. */
enum {
	S_HELLO,
	S_AUTH,
	S_BATCH,
	S_ACK,
	S_HEARTBEAT_0,
	S_HEARTBEAT_1,
	S_HEARTBEAT_256,
	S_PING,
	S_PONG,
	S_RECON,
	S_BATCH_EMPTY,
	SAMPLES
};

#define SAMPLE_ENTRIES 20

static wire_peer_msg samples[SAMPLES];
static crdt_entry sample_entries[SAMPLE_ENTRIES];
static uint8_t sample_batch[SAMPLE_ENTRIES * WIRE_ENTRY_MAX];
static uint8_t sample_items[SAMPLE_ENTRIES * WIRE_ENTRY_MAX];
static uint8_t sample_cert[700], sample_sig[256], sample_nodes[300];

/* A random entry of the given kind; subjects get n counters (0..64). */
static void
random_entry(revokd_rng *rng, crdt_kind kind, uint32_t n, crdt_entry *e)
{
	uint32_t region = 0;

	memset(e, 0, sizeof(*e));
	tu_random_key(rng, 0, &e->key);
	e->kind = kind;
	if (crdt_kind_is_token(kind)) {
		tu_random_token(rng, NOW, &e->u.token);
		return;
	}
	e->u.subject.not_before_ms = revokd_rng_next(rng);
	for (uint32_t i = 0; i < n; i++) {
		/* Increasing regions spread over all of uint16_t. */
		region += 1 + (uint32_t)revokd_rng_below(rng, 1000);
		if (i == n - 1 && n == CRDT_MAX_WRITERS)
			region = UINT16_MAX;
		e->u.subject.region[i] = (uint16_t)region;
		e->u.subject.count[i] =
		    i % 7 == 3 ? UINT64_MAX : 1 + revokd_rng_below(rng, 1000);
	}
	e->u.subject.n = n;
}

/* Pack n entries of every kind in turn into buf; returns the bytes. */
static size_t
pack_entries(revokd_rng *rng, uint32_t n, uint8_t *buf, crdt_entry *keep)
{
	size_t len = 0;

	for (uint32_t i = 0; i < n; i++) {
		crdt_entry e;

		random_entry(rng, (crdt_kind)(CRDT_KIND_JTI + i % 5),
		    (uint32_t)revokd_rng_below(rng, 9), &e);
		len += wire_entry_encode(&e, buf + len);
		if (keep != NULL)
			keep[i] = e;
	}
	return len;
}

static void
samples_build(void)
{
	static const uint32_t wms[] = { 0, 1, WIRE_WATERMARKS_MAX };
	wire_hello *h = &samples[S_HELLO].u.hello;
	wire_batch *b = &samples[S_BATCH].u.batch;
	wire_recon *r = &samples[S_RECON].u.recon;
	revokd_rng rng;

	revokd_rng_seed(&rng, 0x73616d70);
	memset(samples, 0, sizeof(samples));
	revokd_rng_bytes(&rng, sample_cert, sizeof(sample_cert));
	revokd_rng_bytes(&rng, sample_sig, sizeof(sample_sig));
	revokd_rng_bytes(&rng, sample_nodes, sizeof(sample_nodes));
	samples[S_HELLO].type = WIRE_HELLO;
	*h = (wire_hello){ .protocol = WIRE_PROTOCOL,
		.cluster = "prod-eu",
		.region = NAME63,
		.region_id = 65535,
		.cert = sample_cert,
		.cert_len = sizeof(sample_cert) };
	revokd_rng_bytes(&rng, h->nonce, WIRE_NONCE_LEN);
	samples[S_AUTH].type = WIRE_AUTH;
	samples[S_AUTH].u.auth = (wire_auth){ sample_sig, sizeof(sample_sig) };
	samples[S_BATCH].type = WIRE_BATCH;
	*b = (wire_batch){ .seq = 1ull << 40,
		.hlc = CRDT_HLC_AT(1700000000123ull) + 7,
		.count = SAMPLE_ENTRIES,
		.entries = sample_batch };
	b->entries_len =
	    pack_entries(&rng, SAMPLE_ENTRIES, sample_batch, sample_entries);
	samples[S_ACK].type = WIRE_ACK;
	samples[S_ACK].u.ack.seq = UINT64_MAX;
	for (int i = 0; i < 3; i++) {
		wire_heartbeat *hb = &samples[S_HEARTBEAT_0 + i].u.heartbeat;

		samples[S_HEARTBEAT_0 + i].type = WIRE_HEARTBEAT;
		hb->hlc = CRDT_HLC_AT(1700000000000ull + (uint64_t)i);
		hb->last_seq = 41 + (uint64_t)i;
		hb->n_watermarks = wms[i];
		for (uint32_t w = 0; w < wms[i]; w++)
			hb->watermarks[w] =
			    (wire_watermark){ (uint16_t)(w * 257),
				    revokd_rng_next(&rng) };
	}
	samples[S_PING].type = WIRE_PING;
	samples[S_PING].u.ping.t1_us = 1700000000000001ull;
	samples[S_PONG].type = WIRE_PONG;
	samples[S_PONG].u.pong = (wire_pong){ 1, UINT64_MAX, 1ull << 63 };
	samples[S_RECON].type = WIRE_RECON;
	*r = (wire_recon){ .session = 0xdeadbeef,
		.round = 3,
		.kind = 2,
		.nodes = sample_nodes,
		.nodes_len = sizeof(sample_nodes),
		.item_count = SAMPLE_ENTRIES,
		.items = sample_items };
	r->items_len = pack_entries(&rng, SAMPLE_ENTRIES, sample_items, NULL);
	samples[S_BATCH_EMPTY].type = WIRE_BATCH;
	samples[S_BATCH_EMPTY].u.batch.seq = 1;
}

/* a and b are the same message, field by field. */
static void
assert_msg_equal(const wire_peer_msg *a, const wire_peer_msg *b)
{
#define EQ(f) assert_int_equal(a->u.f, b->u.f)
#define BYTES(p, n) assert_bytes(a->u.p, a->u.n, b->u.p, b->u.n)
	assert_int_equal(a->type, b->type);
	switch (a->type) {
	case WIRE_HELLO:
		EQ(hello.protocol);
		assert_string_equal(a->u.hello.cluster, b->u.hello.cluster);
		assert_string_equal(a->u.hello.region, b->u.hello.region);
		EQ(hello.region_id);
		BYTES(hello.cert, hello.cert_len);
		assert_memory_equal(a->u.hello.nonce, b->u.hello.nonce,
		    WIRE_NONCE_LEN);
		break;
	case WIRE_AUTH:
		BYTES(auth.sig, auth.sig_len);
		break;
	case WIRE_BATCH:
		EQ(batch.seq);
		EQ(batch.hlc);
		EQ(batch.count);
		BYTES(batch.entries, batch.entries_len);
		break;
	case WIRE_ACK:
		EQ(ack.seq);
		break;
	case WIRE_HEARTBEAT:
		EQ(heartbeat.hlc);
		EQ(heartbeat.last_seq);
		EQ(heartbeat.n_watermarks);
		for (uint32_t i = 0; i < a->u.heartbeat.n_watermarks; i++) {
			EQ(heartbeat.watermarks[i].region_id);
			EQ(heartbeat.watermarks[i].complete_us);
		}
		break;
	case WIRE_PING:
		EQ(ping.t1_us);
		break;
	case WIRE_PONG:
		EQ(pong.t1_us);
		EQ(pong.t2_us);
		EQ(pong.t3_us);
		break;
	case WIRE_RECON:
		EQ(recon.session);
		EQ(recon.round);
		EQ(recon.kind);
		BYTES(recon.nodes, recon.nodes_len);
		EQ(recon.item_count);
		BYTES(recon.items, recon.items_len);
		break;
	default:
		fail_msg("unknown type %d", (int)a->type);
	}
#undef EQ
#undef BYTES
}

/* m encoded into a malloc'd payload (no header); its header is checked. */
static uint8_t *
encode_payload(const wire_peer_msg *m, size_t *len)
{
	uint8_t *frame = NULL;
	size_t flen = 0;

	assert_int_equal(wire_peer_encode(m, &frame, &flen), REVOKD_OK);
	assert_true(flen >= WIRE_HEADER_LEN);
	assert_int_equal((uint32_t)frame[0] << 24 | (uint32_t)frame[1] << 16 |
	                     (uint32_t)frame[2] << 8 | frame[3],
	    flen - WIRE_HEADER_LEN);
	*len = flen - WIRE_HEADER_LEN;
	memmove(frame, frame + WIRE_HEADER_LEN, *len);
	return frame;
}

/* The entries of b are the sample entries. */
static void
check_batch_entries(const wire_batch *b)
{
	const uint8_t *p = b->entries, *end = p + b->entries_len;
	crdt_entry e;

	for (int i = 0; i < SAMPLE_ENTRIES; i++) {
		assert_int_equal(wire_entry_decode(&p, end, &e), REVOKD_OK);
		assert_true(crdt_entry_equal(&e, &sample_entries[i]));
		assert_int_equal(e.kind, sample_entries[i].kind);
	}
	assert_ptr_equal(p, end);
}

/*
 * Every message type, encoded, framed, decoded: the same fields; the batch's
 * packed entries decode back to the entries packed.
 */
static void
test_round_trip(void **state)
{
	(void)state;
	samples_build();
	for (int i = 0; i < SAMPLES; i++) {
		wire_decoder d;
		wire_peer_msg out;
		uint8_t *frame = NULL;
		const uint8_t *payload;
		size_t flen, plen;

		assert_int_equal(wire_peer_encode(&samples[i], &frame, &flen),
		    REVOKD_OK);
		wire_decoder_init(&d, WIRE_MAX_FRAME_DEFAULT);
		feed_is(&d, frame, flen, REVOKD_OK);
		assert_int_equal(wire_decoder_next(&d, &payload, &plen),
		    REVOKD_OK);
		assert_int_equal(plen + WIRE_HEADER_LEN, flen);
		memset(&out, 0xee, sizeof(out));
		assert_int_equal(wire_peer_decode(payload, plen, &out),
		    REVOKD_OK);
		wire_decoder_free(&d);
		free(frame); /* the message owns its own copy */
		assert_msg_equal(&samples[i], &out);
		if (i == S_BATCH)
			check_batch_entries(&out.u.batch);
		assert_non_null(out.pb);
		wire_peer_msg_free(&out);
		assert_null(out.pb);
		wire_peer_msg_free(&out); /* twice is harmless */
	}
	assert_string_equal(wire_peer_type_name(WIRE_HELLO), "hello");
	assert_string_equal(wire_peer_type_name(WIRE_RECON), "recon");
	assert_string_equal(wire_peer_type_name((wire_peer_type)9), "unknown");
}

/* ------------------------------------------------------------------------ */
/* Crafted protobufs                                                        */
/* ------------------------------------------------------------------------ */

/* Every protobuf struct one crafted message needs. */
struct pb {
	PeerMsg msg;
	Revokd__Peer__Hello hello;
	Revokd__Peer__Auth auth;
	Revokd__Peer__Batch batch;
	Revokd__Peer__Heartbeat heartbeat;
	Revokd__Peer__Watermark wm[WIRE_WATERMARKS_MAX + 1];
	Revokd__Peer__Watermark *wm_ptr[WIRE_WATERMARKS_MAX + 1];
	Revokd__Peer__Recon recon;
};

static uint8_t big[WIRE_NODES_MAX + 1]; /* certs, signatures, nodes */

static void
pb_init(struct pb *p, Revokd__Peer__PeerMsg__BodyCase body)
{
	memset(p, 0, sizeof(*p));
	revokd__peer__peer_msg__init(&p->msg);
	p->msg.body_case = body;
}

/* Hellos: the first HELLO_VALID are valid, each later one breaks a rule. */
static const struct hello_case {
	const char *what;
	size_t nonce, cert;
	const char *cluster, *region;
	uint32_t region_id;
} hello_cases[] = {
	{ "valid", 32, 300, "prod", "eu-west", 7 },
	{ "longest of all", 32, WIRE_CERT_MAX, NAME63, NAME63, 65535 },
	{ "nonce of 31 bytes", 31, 300, "prod", "eu-west", 7 },
	{ "nonce of 33 bytes", 33, 300, "prod", "eu-west", 7 },
	{ "no nonce", 0, 300, "prod", "eu-west", 7 },
	{ "empty region", 32, 300, "prod", "", 7 },
	{ "region of 64 bytes", 32, 300, "prod", NAME64, 7 },
	{ "empty cluster", 32, 300, "", "eu-west", 7 },
	{ "cluster of 64 bytes", 32, 300, NAME64, "eu-west", 7 },
	{ "empty cert", 32, 0, "prod", "eu-west", 7 },
	{ "cert over WIRE_CERT_MAX", 32, WIRE_CERT_MAX + 1, "prod", "eu-west",
	    7 },
	{ "region_id 65536", 32, 300, "prod", "eu-west", 65536 },
	{ "region_id UINT32_MAX", 32, 300, "prod", "eu-west", UINT32_MAX },
};

#define HELLO_VALID 2

/* Hello case i as a protobuf. */
static void
pb_hello(struct pb *p, int i)
{
	const struct hello_case *c = &hello_cases[i];

	pb_init(p, REVOKD__PEER__PEER_MSG__BODY_HELLO);
	revokd__peer__hello__init(&p->hello);
	p->hello.protocol = WIRE_PROTOCOL;
	p->hello.cluster =
	    (ProtobufCBinaryData){ strlen(c->cluster), (uint8_t *)c->cluster };
	p->hello.region =
	    (ProtobufCBinaryData){ strlen(c->region), (uint8_t *)c->region };
	p->hello.region_id = c->region_id;
	p->hello.cert = (ProtobufCBinaryData){ c->cert, big };
	p->hello.nonce = (ProtobufCBinaryData){ c->nonce, big };
	p->msg.hello = &p->hello;
}

/* A batch holding count entries packed in buf. */
static void
pb_batch(struct pb *p, uint8_t *buf, size_t len, uint32_t count)
{
	pb_init(p, REVOKD__PEER__PEER_MSG__BODY_BATCH);
	revokd__peer__batch__init(&p->batch);
	p->batch.seq = 1;
	p->batch.hlc = 12345;
	p->batch.count = count;
	p->batch.entries = (ProtobufCBinaryData){ len, buf };
	p->msg.batch = &p->batch;
}

/* A heartbeat with n watermarks. */
static void
pb_heartbeat(struct pb *p, size_t n)
{
	pb_init(p, REVOKD__PEER__PEER_MSG__BODY_HEARTBEAT);
	revokd__peer__heartbeat__init(&p->heartbeat);
	for (size_t i = 0; i < n; i++) {
		revokd__peer__watermark__init(&p->wm[i]);
		p->wm[i].region_id = (uint32_t)i;
		p->wm[i].complete_us = 1000 + i;
		p->wm_ptr[i] = &p->wm[i];
	}
	p->heartbeat.n_watermarks = n;
	p->heartbeat.watermarks = p->wm_ptr;
	p->msg.heartbeat = &p->heartbeat;
}

/* A recon with nodes_len bytes of nodes and count items packed in buf. */
static void
pb_recon(struct pb *p, size_t nodes_len, uint8_t *buf, size_t len,
    uint32_t count)
{
	pb_init(p, REVOKD__PEER__PEER_MSG__BODY_RECON);
	revokd__peer__recon__init(&p->recon);
	p->recon.session = 9;
	p->recon.nodes = (ProtobufCBinaryData){ nodes_len, big };
	p->recon.item_count = count;
	p->recon.items = (ProtobufCBinaryData){ len, buf };
	p->msg.recon = &p->recon;
}

/* wire_peer_decode of len bytes; what it accepts is freed. */
static revokd_err
decode_bytes(const uint8_t *buf, size_t len)
{
	wire_peer_msg m;
	revokd_err err = wire_peer_decode(buf, len, &m);

	if (err == REVOKD_OK)
		wire_peer_msg_free(&m);
	return err;
}

/* Pack msg and decode it. */
static revokd_err
decode_pb(const PeerMsg *msg)
{
	size_t n = revokd__peer__peer_msg__get_packed_size(msg);
	uint8_t *buf = malloc(n + 1);
	revokd_err err;

	assert_non_null(buf);
	assert_int_equal(revokd__peer__peer_msg__pack(msg, buf), n);
	err = decode_bytes(buf, n);
	free(buf);
	return err;
}

/* A token entry with every key byte tag. */
static size_t
put_token(uint8_t *buf, uint8_t tag)
{
	crdt_entry e;

	memset(&e, 0, sizeof(e));
	memset(e.key.b, tag, CRDT_KEY_LEN);
	e.kind = CRDT_KIND_JTI;
	e.u.token.exp = NOW;
	e.u.token.revoked_at = CRDT_HLC_AT(1700000000000ull);
	e.u.token.origin = 3;
	return wire_entry_encode(&e, buf);
}

/* A subject entry with n counters, regions 1, 11, 21, ... */
static size_t
put_subject(uint8_t *buf, uint32_t n)
{
	crdt_entry e;

	memset(&e, 0, sizeof(e));
	memset(e.key.b, 0x5b, CRDT_KEY_LEN);
	e.kind = CRDT_KIND_SUB;
	e.u.subject.not_before_ms = 1700000000000ull;
	e.u.subject.n = n;
	for (uint32_t i = 0; i < n; i++) {
		e.u.subject.region[i] = (uint16_t)(1 + 10 * i);
		e.u.subject.count[i] = 1 + i;
	}
	return wire_entry_encode(&e, buf);
}

/* Packed entries in ebuf and the count declared for them. */
struct entries_case {
	const char *what;
	size_t len;
	uint32_t count;
};

static uint8_t ebuf[(WIRE_BATCH_MAX + 1) * TOKEN_ENTRY + 64];

/*
 * Case i of packed entries into ebuf: case 0 is valid (token, subject with 3
 * counters, token); every later one breaks one rule. False past the last.
 */
static bool
entries_case(int i, struct entries_case *c)
{
	static const char *const what[] = { "valid",
		"count larger than the entries",
		"count smaller than the entries",
		"count over WIRE_BATCH_MAX, all entries present",
		"unknown kind byte 0", "unknown kind byte 6",
		"unknown kind byte 255", "token value cut short",
		"subject n says more counters than present",
		"subject regions unsorted", "subject region repeated",
		"subject zero count", "subject with 65 counters",
		"trailing garbage after the last entry",
		"key shorter than 16 bytes", "key with no value",
		"subject cut inside its header",
		"count 0 with entries present" };
	static const uint8_t bad_kind[] = { 0, 6, 255 };
	/* Where the subject's counters start, in the valid three. */
	const size_t ctr = TOKEN_ENTRY + CRDT_KEY_LEN + 10;

	if (i >= (int)COUNT_OF(what))
		return false;
	c->what = what[i];
	c->len = put_token(ebuf, 1);
	c->len += put_subject(ebuf + c->len, 3);
	c->len += put_token(ebuf + c->len, 2);
	c->count = i == 1 ? 4 : i == 2 ? 2 : i == 17 ? 0 : 3;
	switch (i) {
	case 3:
		c->len = 0;
		for (int k = 0; k <= WIRE_BATCH_MAX; k++)
			c->len += put_token(ebuf + c->len, (uint8_t)k);
		c->count = WIRE_BATCH_MAX + 1;
		break;
	case 4:
	case 5:
	case 6:
		ebuf[TOKEN_ENTRY + CRDT_KEY_LEN] = bad_kind[i - 4];
		break;
	case 7:
		c->len = TOKEN_ENTRY - 1;
		c->count = 1;
		break;
	case 8: /* the token, then the subject less its last counter */
		c->len = TOKEN_ENTRY + SUBJECT_ENTRY(3) - 10;
		c->count = 2;
		break;
	case 9:
		put_le(ebuf + ctr, 15, 2); /* regions 15, 11, 21 */
		break;
	case 10:
		put_le(ebuf + ctr + 10, 1, 2); /* regions 1, 1, 21 */
		break;
	case 11:
		put_le(ebuf + ctr + 10 + 2, 0, 8);
		break;
	case 12:
		c->len = put_subject(ebuf, CRDT_MAX_WRITERS);
		ebuf[CRDT_KEY_LEN + 1] = CRDT_MAX_WRITERS + 1;
		put_le(ebuf + c->len, 65500, 2);
		put_le(ebuf + c->len + 2, 1, 8);
		c->len += 10;
		c->count = 1;
		break;
	case 13:
		ebuf[c->len++] = 0;
		break;
	case 14:
	case 15:
		c->len = i == 14 ? 10 : CRDT_KEY_LEN;
		c->count = 1;
		break;
	case 16: /* the token, then a key and a subject's kind byte */
		c->len = TOKEN_ENTRY + CRDT_KEY_LEN + 1;
		c->count = 2;
		break;
	}
	return true;
}

/* ------------------------------------------------------------------------ */
/* Malformed messages                                                       */
/* ------------------------------------------------------------------------ */

/* No oneof set: empty buffer, unknown fields only; an empty hello. */
static void
test_malformed_empty(void **state)
{
	static const uint8_t unknown[] = { 0x48, 0x01, 0x7a, 0x02, 0xab, 0xcd };
	static const uint8_t hello_empty[] = { 0x0a, 0x00 };
	static const uint8_t ack_empty[] = { 0x22, 0x00 };
	uint8_t byte = 0;

	(void)state;
	assert_int_equal(decode_bytes(&byte, 0), REVOKD_EMALFORMED);
	assert_int_equal(decode_bytes(NULL, 0), REVOKD_EMALFORMED);
	assert_int_equal(decode_bytes(unknown, sizeof(unknown)),
	    REVOKD_EMALFORMED);
	assert_int_equal(decode_bytes(hello_empty, sizeof(hello_empty)),
	    REVOKD_EMALFORMED);
	/* An empty ack is a valid ack of seq 0: the control. */
	assert_int_equal(decode_bytes(ack_empty, sizeof(ack_empty)), REVOKD_OK);
}

/* One mutation of buf: flip a bit, overwrite, truncate or insert a byte. */
static size_t
mutate(revokd_rng *rng, uint8_t *buf, size_t len, size_t cap)
{
	size_t at = len ? revokd_rng_below(rng, len) : 0;
	uint64_t how = revokd_rng_below(rng, 4);

	if (how == 2 || len == 0)
		return at;
	if (how == 0)
		buf[at] ^= (uint8_t)(1u << revokd_rng_below(rng, 8));
	if (how == 1)
		buf[at] = (uint8_t)revokd_rng_next(rng);
	if (how != 3 || len == cap)
		return len;
	memmove(buf + at + 1, buf + at, len - at);
	buf[at] = (uint8_t)revokd_rng_next(rng);
	return len + 1;
}

/*
 * Decode a copy of buf of exactly len bytes (so ASan sees overreads):
 * EMALFORMED, or OK and then it re-encodes (the encoder's checks are the
 * decoder's) and decodes again to the same message. True when OK.
 */
static bool
decode_checked(const uint8_t *buf, size_t len)
{
	wire_peer_msg m, again;
	uint8_t *payload, *copy = malloc(len + !len);
	size_t plen;
	revokd_err err;

	assert_non_null(copy);
	memcpy(copy, buf, len);
	err = wire_peer_decode(copy, len, &m);
	free(copy);
	if (err == REVOKD_EMALFORMED)
		return false;
	assert_int_equal(err, REVOKD_OK);
	assert_true(m.type >= WIRE_HELLO && m.type <= WIRE_RECON);
	payload = encode_payload(&m, &plen);
	assert_int_equal(wire_peer_decode(payload, plen, &again), REVOKD_OK);
	assert_msg_equal(&m, &again);
	wire_peer_msg_free(&again);
	wire_peer_msg_free(&m);
	free(payload);
	return true;
}

/* Random buffers and mutated valid ones: OK or EMALFORMED, never a crash. */
static void
test_malformed_garbage(void **state)
{
	static uint8_t buf[8192];
	uint8_t *valid[SAMPLES];
	size_t valid_len[SAMPLES];
	revokd_rng rng;
	int accepted = 0;

	(void)state;
	samples_build();
	for (int i = 0; i < SAMPLES; i++)
		valid[i] = encode_payload(&samples[i], &valid_len[i]);
	revokd_rng_seed(&rng, 0x67617262);
	for (int i = 0; i < GARBAGE; i++) {
		size_t len = revokd_rng_below(&rng, 300);

		revokd_rng_bytes(&rng, buf, len);
		/* Half of them are one PeerMsg body field, to go deeper. */
		if (i % 2 && len > 4) {
			buf[0] =
			    (uint8_t)((1 + revokd_rng_below(&rng, 8)) << 3 | 2);
			len = 1 + put_varint(buf + 1, len - 3) + len - 3;
		}
		accepted += decode_checked(buf, len);
	}
	for (int i = 0; i < MUTATIONS; i++) {
		int s = (int)revokd_rng_below(&rng, SAMPLES);
		size_t len = valid_len[s];

		if (len > sizeof(buf) / 2)
			continue;
		memcpy(buf, valid[s], len);
		for (int r = 1 + (int)revokd_rng_below(&rng, 4); r > 0; r--)
			len = mutate(&rng, buf, len, sizeof(buf));
		accepted += decode_checked(buf, len);
	}
	/* The property must have been exercised on both sides. */
	assert_true(accepted > 1000);
	assert_true(accepted < GARBAGE + MUTATIONS - 1000);
	for (int i = 0; i < SAMPLES; i++)
		free(valid[i]);
}

/* Every strict prefix of a valid encoding of each type is refused. */
static void
test_malformed_prefixes(void **state)
{
	(void)state;
	samples_build();
	for (int i = 0; i < SAMPLES; i++) {
		size_t len;
		uint8_t *payload = encode_payload(&samples[i], &len);

		assert_int_equal(decode_bytes(payload, len), REVOKD_OK);
		for (size_t k = 0; k < len; k++) {
			/* A copy of exactly k bytes, so ASan sees overreads. */
			uint8_t *cut = malloc(k + 1);

			assert_non_null(cut);
			memcpy(cut, payload, k);
			expect_err(decode_bytes(cut, k), REVOKD_EMALFORMED,
			    wire_peer_type_name(samples[i].type), (int)k);
			free(cut);
		}
		free(payload);
	}
}

/* Hello breaking one rule at a time (and the valid ones accepted). */
static void
test_malformed_hello(void **state)
{
	struct pb p;

	(void)state;
	for (int i = 0; i < (int)COUNT_OF(hello_cases); i++) {
		pb_hello(&p, i);
		expect_err(decode_pb(&p.msg),
		    i < HELLO_VALID ? REVOKD_OK : REVOKD_EMALFORMED,
		    hello_cases[i].what, i);
	}
}

/*
 * A hello whose region field holds len raw bytes, packed by hand (kept so
 * the test does not depend on how the field is declared).
 */
static revokd_err
decode_raw_region(const char *region, size_t len)
{
	static uint8_t body[1024], msg[1100];
	struct pb p;
	size_t n, k;

	pb_hello(&p, 0);
	p.hello.region = (ProtobufCBinaryData){ 0, NULL }; /* not sent */
	n = revokd__peer__hello__pack(&p.hello, body);
	body[n++] = 3 << 3 | 2;
	n += put_varint(body + n, len);
	memcpy(body + n, region, len);
	n += len;
	msg[0] = 1 << 3 | 2;
	k = 1 + put_varint(msg + 1, n);
	memcpy(msg + k, body, n);
	return decode_bytes(msg, k + n);
}

/*
 * A name is its bytes on the wire: a NUL inside a region (which must be the
 * certificate's CN) is refused, not silently cut at the NUL.
 */
static void
test_malformed_hello_name_nul(void **state)
{
	char wire64[WIRE_NAME_MAX + 1];

	(void)state;
	assert_int_equal(decode_raw_region("eu-west", 7), REVOKD_OK);
	memset(wire64, 'x', sizeof(wire64));
	memcpy(wire64, "eu-west", 8); /* the NUL included */
	expect_err(decode_raw_region("eu-west\0evil", 12), REVOKD_EMALFORMED,
	    "region \"eu-west\\0evil\"", 0);
	expect_err(decode_raw_region(wire64, sizeof(wire64)), REVOKD_EMALFORMED,
	    "region of 64 bytes with a NUL at 7", 1);
}

/* Auth with an empty or oversize signature. */
static void
test_malformed_auth(void **state)
{
	static const size_t lens[] = { 1, WIRE_SIG_MAX, 0, WIRE_SIG_MAX + 1,
		WIRE_NODES_MAX };
	struct pb p;

	(void)state;
	for (int i = 0; i < (int)COUNT_OF(lens); i++) {
		pb_init(&p, REVOKD__PEER__PEER_MSG__BODY_AUTH);
		revokd__peer__auth__init(&p.auth);
		p.auth.signature = (ProtobufCBinaryData){ lens[i], big };
		p.msg.auth = &p.auth;
		expect_err(decode_pb(&p.msg),
		    i < 2 ? REVOKD_OK : REVOKD_EMALFORMED, "auth signature", i);
	}
}

/* Batch with seq 0; batch and recon with each bad entries case. */
static void
test_malformed_batch(void **state)
{
	static struct pb p;
	struct entries_case c;

	(void)state;
	entries_case(0, &c);
	pb_batch(&p, ebuf, c.len, c.count);
	p.batch.seq = 0;
	assert_int_equal(decode_pb(&p.msg), REVOKD_EMALFORMED);
	for (int i = 0; entries_case(i, &c); i++) {
		revokd_err want = i == 0 ? REVOKD_OK : REVOKD_EMALFORMED;

		pb_batch(&p, ebuf, c.len, c.count);
		expect_err(decode_pb(&p.msg), want, c.what, i);
		pb_recon(&p, 10, ebuf, c.len, c.count);
		expect_err(decode_pb(&p.msg), want, c.what, i);
	}
}

/* Heartbeat with 257 watermarks, or a region_id over 65535. */
static void
test_malformed_heartbeat(void **state)
{
	static struct pb p;

	(void)state;
	pb_heartbeat(&p, WIRE_WATERMARKS_MAX);
	p.wm[WIRE_WATERMARKS_MAX - 1].region_id = UINT16_MAX;
	assert_int_equal(decode_pb(&p.msg), REVOKD_OK);
	pb_heartbeat(&p, WIRE_WATERMARKS_MAX + 1);
	assert_int_equal(decode_pb(&p.msg), REVOKD_EMALFORMED);
	for (int i = 0; i < 4; i++) {
		pb_heartbeat(&p, WIRE_WATERMARKS_MAX);
		p.wm[i % 2 ? WIRE_WATERMARKS_MAX - 1 : 0].region_id =
		    i < 2 ? 65536 : UINT32_MAX;
		expect_err(decode_pb(&p.msg), REVOKD_EMALFORMED,
		    "watermark region_id", i);
	}
}

/* Recon with nodes over WIRE_NODES_MAX. */
static void
test_malformed_recon(void **state)
{
	static struct pb p;

	(void)state;
	pb_recon(&p, WIRE_NODES_MAX, NULL, 0, 0);
	assert_int_equal(decode_pb(&p.msg), REVOKD_OK);
	pb_recon(&p, WIRE_NODES_MAX + 1, NULL, 0, 0);
	assert_int_equal(decode_pb(&p.msg), REVOKD_EMALFORMED);
}

/* wire_peer_encode of m gives want, and writes *frame only on success. */
static void
encode_is(const wire_peer_msg *m, revokd_err want, const char *what, int i)
{
	uint8_t *frame = NULL;
	size_t len = 0;

	expect_err(wire_peer_encode(m, &frame, &len), want, what, i);
	if (want != REVOKD_OK)
		assert_null(frame);
	free(frame);
}

/* Copy a name into a wire_hello array, without a NUL when it fills it. */
static void
set_name(char *dst, const char *src)
{
	memset(dst, 0, WIRE_NAME_MAX + 1);
	memcpy(dst, src, strnlen(src, WIRE_NAME_MAX + 1));
}

/* The encoder refuses to build what the decoder would refuse. */
static void
test_encode_refuses(void **state)
{
	static wire_peer_msg m;
	struct entries_case c;

	(void)state;
	samples_build();
	for (int i = 0; i < (int)COUNT_OF(hello_cases); i++) {
		const struct hello_case *h = &hello_cases[i];

		/* A wire_hello cannot say these. */
		if (h->nonce != WIRE_NONCE_LEN || h->region_id > UINT16_MAX)
			continue;
		m = samples[S_HELLO];
		set_name(m.u.hello.cluster, h->cluster);
		set_name(m.u.hello.region, h->region);
		m.u.hello.cert = big;
		m.u.hello.cert_len = h->cert;
		encode_is(&m, i < HELLO_VALID ? REVOKD_OK : REVOKD_EINVAL,
		    h->what, i);
	}
	for (int i = 0; i < 2; i++) {
		m = samples[S_AUTH];
		m.u.auth.sig = big;
		m.u.auth.sig_len = i == 0 ? 0 : WIRE_SIG_MAX + 1;
		encode_is(&m, REVOKD_EINVAL, "auth", i);
	}
	m = samples[S_BATCH];
	m.u.batch.seq = 0;
	encode_is(&m, REVOKD_EINVAL, "batch seq 0", 0);
	for (int i = 0; entries_case(i, &c); i++) {
		m = samples[S_BATCH];
		m.u.batch.entries = ebuf;
		m.u.batch.entries_len = c.len;
		m.u.batch.count = c.count;
		encode_is(&m, i == 0 ? REVOKD_OK : REVOKD_EINVAL, c.what, i);
		m = samples[S_RECON];
		m.u.recon.items = ebuf;
		m.u.recon.items_len = c.len;
		m.u.recon.item_count = c.count;
		encode_is(&m, i == 0 ? REVOKD_OK : REVOKD_EINVAL, c.what, i);
	}
	m = samples[S_HEARTBEAT_256];
	m.u.heartbeat.n_watermarks = WIRE_WATERMARKS_MAX + 1;
	encode_is(&m, REVOKD_EINVAL, "257 watermarks", 0);
	m = samples[S_RECON];
	m.u.recon.nodes = big;
	m.u.recon.nodes_len = WIRE_NODES_MAX + 1;
	encode_is(&m, REVOKD_EINVAL, "recon nodes over WIRE_NODES_MAX", 0);
	m.u.recon.nodes_len = WIRE_NODES_MAX;
	encode_is(&m, REVOKD_OK, "recon nodes of WIRE_NODES_MAX", 0);
	m = samples[S_ACK];
	m.type = (wire_peer_type)0;
	encode_is(&m, REVOKD_EINVAL, "type 0", 0);
	m.type = (wire_peer_type)9;
	encode_is(&m, REVOKD_EINVAL, "type 9", 0);
}

/* ------------------------------------------------------------------------ */
/* Packed entries                                                           */
/* ------------------------------------------------------------------------ */

/*
 * One entry encodes to exactly its size and decodes back; every shorter end
 * is refused, leaving *p and *out alone.
 */
static void
check_entry(const crdt_entry *e)
{
	uint8_t buf[WIRE_ENTRY_MAX + 8];
	size_t len, want;
	const uint8_t *p = buf;
	crdt_entry out, blank;

	want = crdt_kind_is_token(e->kind) ? TOKEN_ENTRY
	                                   : SUBJECT_ENTRY(e->u.subject.n);
	memset(buf, 0xcc, sizeof(buf));
	len = wire_entry_encode(e, buf);
	assert_int_equal(len, want);
	assert_true(len <= WIRE_ENTRY_MAX);
	for (size_t i = len; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0xcc);
	assert_memory_equal(buf, e->key.b, CRDT_KEY_LEN);
	/* The bytes after the entry do not matter. */
	assert_int_equal(wire_entry_decode(&p, buf + sizeof(buf), &out),
	    REVOKD_OK);
	assert_ptr_equal(p, buf + len);
	assert_int_equal(out.kind, e->kind);
	assert_true(crdt_entry_equal(&out, e));
	for (size_t k = 0; k < len; k++) {
		memset(&out, 0x77, sizeof(out));
		memset(&blank, 0x77, sizeof(blank));
		p = buf;
		expect_err(wire_entry_decode(&p, buf + k, &out),
		    REVOKD_EMALFORMED, "entry cut short", (int)k);
		assert_ptr_equal(p, buf);
		assert_memory_equal(&out, &blank, sizeof(out));
	}
}

/* Tokens of both kinds, and subjects of three kinds with 0..64 counters. */
static void
test_entry_round_trip(void **state)
{
	revokd_rng rng;
	crdt_entry e;

	(void)state;
	revokd_rng_seed(&rng, 0x656e7472);
	for (int i = 0; i < 200; i++) {
		random_entry(&rng, i % 2 ? CRDT_KIND_SID : CRDT_KIND_JTI, 0,
		    &e);
		if (i == 0) /* the extremes of every field */
			e.u.token = (crdt_token){ INT64_MIN, UINT64_MAX,
				UINT64_MAX, UINT16_MAX, UINT8_MAX };
		check_entry(&e);
	}
	for (uint32_t n = 0; n <= CRDT_MAX_WRITERS; n++)
		for (int k = CRDT_KIND_SUB; k <= CRDT_KIND_TENANT; k++) {
			random_entry(&rng, (crdt_kind)k, n, &e);
			check_entry(&e);
		}
}

/* wire_entries_check accepts exactly count entries and nothing else. */
static void
test_entries_check(void **state)
{
	static const uint32_t counts[] = { 0, 1, 2, 17, 500, WIRE_BATCH_MAX };
	static uint8_t buf[WIRE_BATCH_MAX * WIRE_ENTRY_MAX / 4];
	static size_t end[WIRE_BATCH_MAX + 1]; /* end of the first i entries */
	struct entries_case c;
	revokd_rng rng;

	(void)state;
	revokd_rng_seed(&rng, 0x63686b21);
	for (uint32_t i = 0; i < WIRE_BATCH_MAX; i++) {
		crdt_entry e;

		random_entry(&rng, (crdt_kind)(1 + i % 5),
		    (uint32_t)revokd_rng_below(&rng, 20), &e);
		assert_true(end[i] + WIRE_ENTRY_MAX <= sizeof(buf));
		end[i + 1] = end[i] + wire_entry_encode(&e, buf + end[i]);
	}
	assert_int_equal(wire_entries_check(NULL, 0, 0), REVOKD_OK);
	for (size_t i = 0; i < COUNT_OF(counts); i++) {
		uint32_t n = counts[i];

		expect_err(wire_entries_check(buf, end[n], n), REVOKD_OK,
		    "exactly count", (int)n);
		expect_err(wire_entries_check(buf, end[n], n + 1),
		    REVOKD_EMALFORMED, "count + 1", (int)n);
		expect_err(wire_entries_check(buf, end[n] + 1, n),
		    REVOKD_EMALFORMED, "one byte over", (int)n);
		if (n == 0)
			continue;
		expect_err(wire_entries_check(buf, end[n], n - 1),
		    REVOKD_EMALFORMED, "count - 1", (int)n);
		expect_err(wire_entries_check(buf, end[n] - 1, n),
		    REVOKD_EMALFORMED, "one byte short", (int)n);
	}
	assert_int_equal(wire_entries_check(buf, end[1], UINT32_MAX),
	    REVOKD_EMALFORMED);
	for (int i = 0; entries_case(i, &c); i++)
		expect_err(wire_entries_check(ebuf, c.len, c.count),
		    i == 0 ? REVOKD_OK : REVOKD_EMALFORMED, c.what, i);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_framing_splits),
		cmocka_unit_test(test_framing_several_in_one_feed),
		cmocka_unit_test(test_framing_partial),
		cmocka_unit_test(test_framing_max_frame),
		cmocka_unit_test(test_framing_oversize_split),
		cmocka_unit_test(test_framing_oversize_after_good_frame),
		cmocka_unit_test(test_framing_memory_bound),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_malformed_empty),
		cmocka_unit_test(test_malformed_garbage),
		cmocka_unit_test(test_malformed_prefixes),
		cmocka_unit_test(test_malformed_hello),
		cmocka_unit_test(test_malformed_hello_name_nul),
		cmocka_unit_test(test_malformed_auth),
		cmocka_unit_test(test_malformed_batch),
		cmocka_unit_test(test_malformed_heartbeat),
		cmocka_unit_test(test_malformed_recon),
		cmocka_unit_test(test_encode_refuses),
		cmocka_unit_test(test_entry_round_trip),
		cmocka_unit_test(test_entries_check),
		cmocka_unit_test(test_framing_feed_nothing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
