/*
 * fuzz_wire.c: the peer frame decoder and the validating codec (wire/).
 *
 * Input: one byte choosing the decoder's maximum frame and how the rest is
 * cut into feeds, then the byte stream a peer would send.
 *
 * Checked on every input:
 *   - framing: the frames pulled after each feed are exactly those of a
 *     reference split of the whole stream, however it is cut; an oversize
 *     header gives REVOKD_ETOOBIG from the feed that brings it and from
 *     next once the frames before it are out, and never otherwise;
 *   - every frame goes through wire_peer_decode; a message it accepts has
 *     every documented limit, its packed entries re-encode to the very same
 *     bytes (canonical), and encoding it succeeds and decodes back to an
 *     equal message whose encoding is byte-identical;
 *   - each frame is also read as a run of packed entries, and every entry
 *     that decodes re-encodes to the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "wire/wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const size_t wire_fz_max_frames[4] = { 16, 300, WIRE_MAX_FRAME_MIN,
	WIRE_MAX_FRAME_DEFAULT };

/* ------------------------------------------------------------------------ */
/* The reference split                                                      */
/* ------------------------------------------------------------------------ */

typedef struct ref_frame {
	size_t off, len; /* payload in the stream */
} ref_frame;

/* Whole frames of s in order; *oversize when a header passes max. */
static size_t
ref_split(const uint8_t *s, size_t n, size_t max, ref_frame *out, size_t cap,
    bool *oversize)
{
	size_t pos = 0, k = 0;

	*oversize = false;
	while (n - pos >= WIRE_HEADER_LEN && k < cap) {
		uint32_t len = (uint32_t)s[pos] << 24 |
		               (uint32_t)s[pos + 1] << 16 |
		               (uint32_t)s[pos + 2] << 8 | s[pos + 3];

		if (len > max) {
			*oversize = true;
			break;
		}
		if (n - pos - WIRE_HEADER_LEN < len)
			break;
		out[k++] = (ref_frame){ pos + WIRE_HEADER_LEN, len };
		pos += WIRE_HEADER_LEN + len;
	}
	return k;
}

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */
/* ------------------------------------------------------------------------ */

/* Every entry of a packed run that decodes re-encodes to its own bytes. */
static void
check_entries_canonical(const uint8_t *buf, size_t len, uint32_t count,
    bool must_decode)
{
	const uint8_t *p = buf, *end = buf + len;
	uint8_t out[WIRE_ENTRY_MAX];

	for (uint32_t i = 0; i < count && p < end; i++) {
		const uint8_t *at = p;
		crdt_entry e;
		size_t n;

		if (wire_entry_decode(&p, end, &e) != REVOKD_OK) {
			FZ_CHECK(!must_decode, "entry %u of %u refused", i,
			    count);
			FZ_CHECK(p == at, "a refused entry moved the cursor");
			return;
		}
		FZ_CHECK(p > at && (size_t)(p - at) <= WIRE_ENTRY_MAX,
		    "entry of %zu bytes", (size_t)(p - at));
		n = wire_entry_encode(&e, out);
		FZ_CHECK(n == (size_t)(p - at) && memcmp(out, at, n) == 0,
		    "entry %u decodes to a value encoding differently", i);
	}
	if (must_decode)
		FZ_CHECK(p == end, "bytes left after %u entries", count);
}

static bool
bytes_eq(const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
	return al == bl && (al == 0 || memcmp(a, b, al) == 0);
}

static bool
msg_equal(const wire_peer_msg *a, const wire_peer_msg *b)
{
	const wire_hello *ha = &a->u.hello, *hb = &b->u.hello;
	const wire_recon *ra = &a->u.recon, *rb = &b->u.recon;

	if (a->type != b->type)
		return false;
	switch (a->type) {
	case WIRE_HELLO:
		return ha->protocol == hb->protocol &&
		       strcmp(ha->cluster, hb->cluster) == 0 &&
		       strcmp(ha->region, hb->region) == 0 &&
		       ha->region_id == hb->region_id &&
		       bytes_eq(ha->cert, ha->cert_len, hb->cert,
		           hb->cert_len) &&
		       memcmp(ha->nonce, hb->nonce, WIRE_NONCE_LEN) == 0;
	case WIRE_AUTH:
		return bytes_eq(a->u.auth.sig, a->u.auth.sig_len, b->u.auth.sig,
		    b->u.auth.sig_len);
	case WIRE_BATCH:
		return a->u.batch.seq == b->u.batch.seq &&
		       a->u.batch.hlc == b->u.batch.hlc &&
		       a->u.batch.count == b->u.batch.count &&
		       bytes_eq(a->u.batch.entries, a->u.batch.entries_len,
		           b->u.batch.entries, b->u.batch.entries_len);
	case WIRE_ACK:
		return a->u.ack.seq == b->u.ack.seq;
	case WIRE_HEARTBEAT:
		if (a->u.heartbeat.hlc != b->u.heartbeat.hlc ||
		    a->u.heartbeat.last_seq != b->u.heartbeat.last_seq ||
		    a->u.heartbeat.n_watermarks != b->u.heartbeat.n_watermarks)
			return false;
		for (uint32_t i = 0; i < a->u.heartbeat.n_watermarks; i++)
			if (a->u.heartbeat.watermarks[i].region_id !=
			        b->u.heartbeat.watermarks[i].region_id ||
			    a->u.heartbeat.watermarks[i].complete_us !=
			        b->u.heartbeat.watermarks[i].complete_us)
				return false;
		return true;
	case WIRE_PING:
		return a->u.ping.t1_us == b->u.ping.t1_us;
	case WIRE_PONG:
		return a->u.pong.t1_us == b->u.pong.t1_us &&
		       a->u.pong.t2_us == b->u.pong.t2_us &&
		       a->u.pong.t3_us == b->u.pong.t3_us;
	case WIRE_RECON:
		return ra->session == rb->session && ra->round == rb->round &&
		       ra->kind == rb->kind && ra->chunks == rb->chunks &&
		       ra->item_count == rb->item_count &&
		       bytes_eq(ra->nodes, ra->nodes_len, rb->nodes,
		           rb->nodes_len) &&
		       bytes_eq(ra->items, ra->items_len, rb->items,
		           rb->items_len);
	}
	return false;
}

/* The limits wire.h promises for an accepted message. */
static void
check_limits(const wire_peer_msg *m)
{
	const wire_hello *h = &m->u.hello;

	FZ_CHECK(m->type >= WIRE_HELLO && m->type <= WIRE_RECON, "type %d",
	    (int)m->type);
	FZ_CHECK(strcmp(wire_peer_type_name(m->type), "unknown") != 0,
	    "no name for type %d", (int)m->type);
	switch (m->type) {
	case WIRE_HELLO:
		FZ_CHECK(strlen(h->cluster) >= 1 &&
		             strlen(h->cluster) <= WIRE_NAME_MAX &&
		             strlen(h->region) >= 1 &&
		             strlen(h->region) <= WIRE_NAME_MAX,
		    "hello names of %zu and %zu bytes", strlen(h->cluster),
		    strlen(h->region));
		FZ_CHECK(h->cert_len >= 1 && h->cert_len <= WIRE_CERT_MAX,
		    "cert of %zu bytes", h->cert_len);
		break;
	case WIRE_AUTH:
		FZ_CHECK(m->u.auth.sig_len >= 1 &&
		             m->u.auth.sig_len <= WIRE_SIG_MAX,
		    "signature of %zu bytes", m->u.auth.sig_len);
		break;
	case WIRE_BATCH:
		FZ_CHECK(m->u.batch.seq > 0, "batch seq 0");
		FZ_CHECK(m->u.batch.count <= WIRE_BATCH_MAX, "count %u",
		    m->u.batch.count);
		check_entries_canonical(m->u.batch.entries,
		    m->u.batch.entries_len, m->u.batch.count, true);
		break;
	case WIRE_HEARTBEAT:
		FZ_CHECK(m->u.heartbeat.n_watermarks <= WIRE_WATERMARKS_MAX,
		    "%u watermarks", m->u.heartbeat.n_watermarks);
		break;
	case WIRE_RECON:
		FZ_CHECK(m->u.recon.nodes_len <= WIRE_NODES_MAX,
		    "nodes of %zu bytes", m->u.recon.nodes_len);
		FZ_CHECK(m->u.recon.item_count <= WIRE_BATCH_MAX, "%u items",
		    m->u.recon.item_count);
		check_entries_canonical(m->u.recon.items, m->u.recon.items_len,
		    m->u.recon.item_count, true);
		break;
	default:
		break;
	}
}

/* Decode one frame; what is accepted must survive a round trip. */
static void
check_frame(const uint8_t *frame, size_t len)
{
	wire_peer_msg m, m2;
	uint8_t *enc, *enc2;
	size_t enc_len, enc2_len;
	revokd_err err;

	check_entries_canonical(frame, len, WIRE_BATCH_MAX, false);
	err = wire_peer_decode(frame, len, &m);
	if (err != REVOKD_OK) {
		FZ_CHECK(err == REVOKD_EMALFORMED, "decode gave %s",
		    revokd_err_name(err));
		return;
	}
	check_limits(&m);
	err = wire_peer_encode(&m, &enc, &enc_len);
	FZ_CHECK(err == REVOKD_OK, "an accepted %s does not encode: %s",
	    wire_peer_type_name(m.type), revokd_err_name(err));
	FZ_CHECK(enc_len >= WIRE_HEADER_LEN, "frame of %zu bytes", enc_len);
	err = wire_peer_decode(enc + WIRE_HEADER_LEN, enc_len - WIRE_HEADER_LEN,
	    &m2);
	FZ_CHECK(err == REVOKD_OK, "a re-encoded %s does not decode: %s",
	    wire_peer_type_name(m.type), revokd_err_name(err));
	FZ_CHECK(msg_equal(&m, &m2), "a %s changed in a round trip",
	    wire_peer_type_name(m.type));
	err = wire_peer_encode(&m2, &enc2, &enc2_len);
	FZ_CHECK(err == REVOKD_OK && bytes_eq(enc, enc_len, enc2, enc2_len),
	    "a %s does not re-encode to the same bytes",
	    wire_peer_type_name(m.type));
	free(enc);
	free(enc2);
	wire_peer_msg_free(&m2);
	wire_peer_msg_free(&m);
	FZ_CHECK(m.pb == NULL, "msg_free left its protobuf");
}

/* ------------------------------------------------------------------------ */
/* The target                                                               */
/* ------------------------------------------------------------------------ */

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in in = { data, size };
	/* A frame takes at least its header: size / 4 + 1 always suffice. */
	ref_frame *ref = malloc((size / WIRE_HEADER_LEN + 1) * sizeof(*ref));
	uint8_t mode = fz_u8(&in);
	size_t max = wire_fz_max_frames[mode & 3], n_ref, pulled = 0, pos = 0;
	unsigned cut = mode >> 2;
	uint32_t rng = 0x9e3779b9u ^ mode;
	bool oversize, feed_toobig = false;
	const uint8_t *s = in.p;
	wire_decoder d;

	FZ_CHECK(ref != NULL, "out of memory");
	n_ref =
	    ref_split(s, in.n, max, ref, size / WIRE_HEADER_LEN + 1, &oversize);
	wire_decoder_init(&d, max);
	while (pos < in.n && !feed_toobig) {
		size_t chunk = in.n - pos, flen;
		const uint8_t *frame;
		revokd_err err;

		if (cut == 1) {
			chunk = 1;
		} else if (cut > 1) {
			rng ^= rng << 13, rng ^= rng >> 17, rng ^= rng << 5;
			chunk = 1 + rng % (cut * 4);
		}
		if (chunk > in.n - pos)
			chunk = in.n - pos;
		err = wire_decoder_feed(&d, s + pos, chunk);
		FZ_CHECK(err == REVOKD_OK || err == REVOKD_ETOOBIG,
		    "feed gave %s", revokd_err_name(err));
		feed_toobig = err == REVOKD_ETOOBIG;
		pos += chunk;
		while (
		    (err = wire_decoder_next(&d, &frame, &flen)) == REVOKD_OK) {
			FZ_CHECK(pulled < n_ref,
			    "frame %zu: the reference "
			    "split has only %zu",
			    pulled, n_ref);
			FZ_CHECK(flen == ref[pulled].len &&
			             memcmp(frame, s + ref[pulled].off, flen) ==
			                 0,
			    "frame %zu differs from the reference", pulled);
			check_frame(frame, flen);
			pulled++;
		}
		FZ_CHECK(err == (feed_toobig ? REVOKD_ETOOBIG : REVOKD_EAGAIN),
		    "next gave %s after %zu frames", revokd_err_name(err),
		    pulled);
	}
	FZ_CHECK(pulled == n_ref, "%zu frames pulled, reference %zu", pulled,
	    n_ref);
	FZ_CHECK(feed_toobig == oversize,
	    "feed said too big: %d, reference "
	    "oversize: %d",
	    feed_toobig, oversize);
	wire_decoder_free(&d);
	free(ref);
	return 0;
}
