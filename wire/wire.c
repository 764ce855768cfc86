/*
 * wire.c: framing, packed entries, and PeerMsg encoding and decoding.
 */
#include "wire/wire.h"

#include <stdlib.h>
#include <string.h>

#include "peer.pb-c.h"

typedef Revokd__Peer__PeerMsg PeerMsg;

/* ------------------------------------------------------------------------ */
/* Framing                                                                  */
/* ------------------------------------------------------------------------ */

void
wire_decoder_init(wire_decoder *d, size_t max_frame)
{
	memset(d, 0, sizeof(*d));
	d->max_frame = max_frame;
}

void
wire_decoder_free(wire_decoder *d)
{
	free(d->buf);
	memset(d, 0, sizeof(*d));
}

static uint32_t
get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * Check every frame header now visible, from the read position on, so an
 * oversize one is refused however many frames come before it.
 */
static revokd_err
wire__check_header(wire_decoder *d)
{
	size_t pos = d->off;

	while (!d->failed && d->len - pos >= WIRE_HEADER_LEN) {
		uint32_t n = get_be32(d->buf + pos);

		if (n > d->max_frame)
			d->failed = true;
		else if (d->len - pos - WIRE_HEADER_LEN < n)
			break;
		else
			pos += WIRE_HEADER_LEN + n;
	}
	return d->failed ? REVOKD_ETOOBIG : REVOKD_OK;
}

revokd_err
wire_decoder_feed(wire_decoder *d, const void *data, size_t len)
{
	revokd_err err;

	if ((err = wire__check_header(d)) != REVOKD_OK || len == 0)
		return err;
	/* Drop what was handed out; keep the unread rest at the front. */
	if (d->off > 0) {
		memmove(d->buf, d->buf + d->off, d->len - d->off);
		d->len -= d->off;
		d->off = 0;
	}
	if (d->len + len > d->cap) {
		size_t cap = d->cap ? d->cap : 4096;
		uint8_t *buf;

		while (cap < d->len + len)
			cap *= 2;
		if ((buf = realloc(d->buf, cap)) == NULL)
			return REVOKD_ENOMEM;
		d->buf = buf;
		d->cap = cap;
	}
	memcpy(d->buf + d->len, data, len);
	d->len += len;
	return wire__check_header(d);
}

revokd_err
wire_decoder_next(wire_decoder *d, const uint8_t **frame, size_t *len)
{
	size_t avail = d->len - d->off;
	uint32_t n = avail >= WIRE_HEADER_LEN ? get_be32(d->buf + d->off) : 0;

	/* Whole frames before an oversize header still come out. */
	if (avail < WIRE_HEADER_LEN || n > d->max_frame ||
	    avail - WIRE_HEADER_LEN < n)
		return d->failed ? REVOKD_ETOOBIG : REVOKD_EAGAIN;
	*frame = d->buf + d->off + WIRE_HEADER_LEN;
	*len = n;
	d->off += WIRE_HEADER_LEN + n;
	return REVOKD_OK;
}

/* ------------------------------------------------------------------------ */
/* Packed entries                                                           */
/* ------------------------------------------------------------------------ */

size_t
wire_entry_encode(const crdt_entry *e, uint8_t *buf)
{
	memcpy(buf, e->key.b, CRDT_KEY_LEN);
	return CRDT_KEY_LEN + crdt_value_encode(e, buf + CRDT_KEY_LEN);
}

revokd_err
wire_entry_decode(const uint8_t **p, const uint8_t *end, crdt_entry *out)
{
	size_t avail = (size_t)(end - *p), vlen;
	crdt_entry e;

	if (avail < CRDT_KEY_LEN)
		return REVOKD_EMALFORMED;
	vlen = crdt_value_size(*p + CRDT_KEY_LEN, avail - CRDT_KEY_LEN);
	if (vlen == 0 || vlen > avail - CRDT_KEY_LEN ||
	    crdt_value_decode(*p + CRDT_KEY_LEN, vlen, &e) != REVOKD_OK)
		return REVOKD_EMALFORMED;
	memcpy(e.key.b, *p, CRDT_KEY_LEN);
	*p += CRDT_KEY_LEN + vlen;
	out->key = e.key;
	out->kind = e.kind;
	if (crdt_kind_is_token(e.kind))
		out->u.token = e.u.token;
	else
		out->u.subject = e.u.subject;
	return REVOKD_OK;
}

revokd_err
wire_entries_check(const uint8_t *buf, size_t len, uint32_t count)
{
	const uint8_t *p = buf, *end;
	crdt_entry e;

	if (count > WIRE_BATCH_MAX)
		return REVOKD_EMALFORMED;
	if (len == 0) /* buf may be NULL: no arithmetic on it */
		return count == 0 ? REVOKD_OK : REVOKD_EMALFORMED;
	end = buf + len;
	for (uint32_t i = 0; i < count; i++)
		if (wire_entry_decode(&p, end, &e) != REVOKD_OK)
			return REVOKD_EMALFORMED;
	return p == end ? REVOKD_OK : REVOKD_EMALFORMED;
}

/* ------------------------------------------------------------------------ */
/* Decoding                                                                 */
/* ------------------------------------------------------------------------ */

static const char *const wire__type_names[] = {
	[WIRE_HELLO] = "hello",
	[WIRE_AUTH] = "auth",
	[WIRE_BATCH] = "batch",
	[WIRE_ACK] = "ack",
	[WIRE_HEARTBEAT] = "heartbeat",
	[WIRE_PING] = "ping",
	[WIRE_PONG] = "pong",
	[WIRE_RECON] = "recon",
};

const char *
wire_peer_type_name(wire_peer_type t)
{
	if (t < WIRE_HELLO || t > WIRE_RECON)
		return "unknown";
	return wire__type_names[t];
}

/*
 * The data of a bytes field. protobuf-c leaves an empty one NULL; callers
 * compute data + len, which is undefined for NULL, so they get a pointer.
 */
static const uint8_t *
wire__data(const ProtobufCBinaryData *b)
{
	static const uint8_t none[1];

	return b->data != NULL ? b->data : none;
}

/* Copy a name of 1..WIRE_NAME_MAX bytes, none of them NUL, into out. */
static revokd_err
wire__name(const ProtobufCBinaryData *b, char *out)
{
	if (b->len == 0 || b->len > WIRE_NAME_MAX ||
	    memchr(b->data, 0, b->len) != NULL)
		return REVOKD_EMALFORMED;
	memcpy(out, b->data, b->len);
	out[b->len] = '\0';
	return REVOKD_OK;
}

static revokd_err
wire__decode_hello(const Revokd__Peer__Hello *h, wire_hello *out)
{
	if (h == NULL || h->region_id > UINT16_MAX || h->cert.len == 0 ||
	    h->cert.len > WIRE_CERT_MAX || h->nonce.len != WIRE_NONCE_LEN ||
	    wire__name(&h->cluster, out->cluster) != REVOKD_OK ||
	    wire__name(&h->region, out->region) != REVOKD_OK)
		return REVOKD_EMALFORMED;
	out->protocol = h->protocol;
	out->region_id = (uint16_t)h->region_id;
	out->cert = h->cert.data;
	out->cert_len = h->cert.len;
	memcpy(out->nonce, h->nonce.data, WIRE_NONCE_LEN);
	return REVOKD_OK;
}

static revokd_err
wire__decode_auth(const Revokd__Peer__Auth *a, wire_auth *out)
{
	if (a == NULL || a->signature.len == 0 ||
	    a->signature.len > WIRE_SIG_MAX)
		return REVOKD_EMALFORMED;
	out->sig = a->signature.data;
	out->sig_len = a->signature.len;
	return REVOKD_OK;
}

static revokd_err
wire__decode_batch(const Revokd__Peer__Batch *b, wire_batch *out)
{
	if (b == NULL || b->seq == 0 ||
	    wire_entries_check(b->entries.data, b->entries.len, b->count))
		return REVOKD_EMALFORMED;
	out->seq = b->seq;
	out->hlc = b->hlc;
	out->count = b->count;
	out->entries = wire__data(&b->entries);
	out->entries_len = b->entries.len;
	return REVOKD_OK;
}

static revokd_err
wire__decode_heartbeat(const Revokd__Peer__Heartbeat *h, wire_heartbeat *out)
{
	if (h == NULL || h->n_watermarks > WIRE_WATERMARKS_MAX)
		return REVOKD_EMALFORMED;
	out->hlc = h->hlc;
	out->last_seq = h->last_seq;
	out->n_watermarks = (uint32_t)h->n_watermarks;
	for (size_t i = 0; i < h->n_watermarks; i++) {
		const Revokd__Peer__Watermark *w = h->watermarks[i];

		if (w->region_id > UINT16_MAX)
			return REVOKD_EMALFORMED;
		out->watermarks[i].region_id = (uint16_t)w->region_id;
		out->watermarks[i].complete_us = w->complete_us;
	}
	return REVOKD_OK;
}

static revokd_err
wire__decode_recon(const Revokd__Peer__Recon *r, wire_recon *out)
{
	if (r == NULL || r->nodes.len > WIRE_NODES_MAX ||
	    wire_entries_check(r->items.data, r->items.len, r->item_count))
		return REVOKD_EMALFORMED;
	out->session = r->session;
	out->round = r->round;
	out->kind = r->kind;
	out->nodes = wire__data(&r->nodes);
	out->nodes_len = r->nodes.len;
	out->item_count = r->item_count;
	out->items = wire__data(&r->items);
	out->items_len = r->items.len;
	out->chunks = r->chunks;
	return REVOKD_OK;
}

static revokd_err
wire__decode_body(const PeerMsg *pb, wire_peer_msg *out)
{
	out->type = (wire_peer_type)pb->body_case;
	switch (pb->body_case) {
	case REVOKD__PEER__PEER_MSG__BODY_HELLO:
		return wire__decode_hello(pb->hello, &out->u.hello);
	case REVOKD__PEER__PEER_MSG__BODY_AUTH:
		return wire__decode_auth(pb->auth, &out->u.auth);
	case REVOKD__PEER__PEER_MSG__BODY_BATCH:
		return wire__decode_batch(pb->batch, &out->u.batch);
	case REVOKD__PEER__PEER_MSG__BODY_ACK:
		if (pb->ack == NULL)
			return REVOKD_EMALFORMED;
		out->u.ack.seq = pb->ack->seq;
		return REVOKD_OK;
	case REVOKD__PEER__PEER_MSG__BODY_HEARTBEAT:
		return wire__decode_heartbeat(pb->heartbeat, &out->u.heartbeat);
	case REVOKD__PEER__PEER_MSG__BODY_PING:
		if (pb->ping == NULL)
			return REVOKD_EMALFORMED;
		out->u.ping.t1_us = pb->ping->t1_us;
		return REVOKD_OK;
	case REVOKD__PEER__PEER_MSG__BODY_PONG:
		if (pb->pong == NULL)
			return REVOKD_EMALFORMED;
		out->u.pong.t1_us = pb->pong->t1_us;
		out->u.pong.t2_us = pb->pong->t2_us;
		out->u.pong.t3_us = pb->pong->t3_us;
		return REVOKD_OK;
	case REVOKD__PEER__PEER_MSG__BODY_RECON:
		return wire__decode_recon(pb->recon, &out->u.recon);
	default:
		return REVOKD_EMALFORMED;
	}
}

revokd_err
wire_peer_decode(const uint8_t *frame, size_t len, wire_peer_msg *out)
{
	PeerMsg *pb = revokd__peer__peer_msg__unpack(NULL, len, frame);
	wire_peer_msg *m;
	revokd_err err;

	if (pb == NULL)
		return REVOKD_EMALFORMED;
	/* Decode aside, so that *out is only written on success. */
	if ((m = malloc(sizeof(*m))) == NULL) {
		revokd__peer__peer_msg__free_unpacked(pb, NULL);
		return REVOKD_ENOMEM;
	}
	if ((err = wire__decode_body(pb, m)) != REVOKD_OK) {
		revokd__peer__peer_msg__free_unpacked(pb, NULL);
		free(m);
		return err;
	}
	m->pb = pb;
	*out = *m;
	free(m);
	return REVOKD_OK;
}

void
wire_peer_msg_free(wire_peer_msg *m)
{
	if (m != NULL && m->pb != NULL)
		revokd__peer__peer_msg__free_unpacked(m->pb, NULL);
	if (m != NULL)
		m->pb = NULL;
}

/* ------------------------------------------------------------------------ */
/* Encoding                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * Everything the protobuf of one message points to lives here while it is
 * packed, so encoding needs no allocation but the frame.
 */
struct wire__enc {
	PeerMsg msg;
	union {
		Revokd__Peer__Hello hello;
		Revokd__Peer__Auth auth;
		Revokd__Peer__Batch batch;
		Revokd__Peer__Ack ack;
		Revokd__Peer__Heartbeat heartbeat;
		Revokd__Peer__Ping ping;
		Revokd__Peer__Pong pong;
		Revokd__Peer__Recon recon;
	} b;
	Revokd__Peer__Watermark wm[WIRE_WATERMARKS_MAX];
	Revokd__Peer__Watermark *wm_ptr[WIRE_WATERMARKS_MAX];
};

static ProtobufCBinaryData
wire__bin(const uint8_t *data, size_t len)
{
	ProtobufCBinaryData b = { len, (uint8_t *)data };

	return b;
}

static void
wire__enc_hello(struct wire__enc *x, const wire_hello *h)
{
	revokd__peer__hello__init(&x->b.hello);
	x->b.hello.protocol = h->protocol;
	x->b.hello.cluster =
	    wire__bin((const uint8_t *)h->cluster, strlen(h->cluster));
	x->b.hello.region =
	    wire__bin((const uint8_t *)h->region, strlen(h->region));
	x->b.hello.region_id = h->region_id;
	x->b.hello.cert = wire__bin(h->cert, h->cert_len);
	x->b.hello.nonce = wire__bin(h->nonce, WIRE_NONCE_LEN);
	x->msg.hello = &x->b.hello;
}

static void
wire__enc_heartbeat(struct wire__enc *x, const wire_heartbeat *h)
{
	revokd__peer__heartbeat__init(&x->b.heartbeat);
	x->b.heartbeat.hlc = h->hlc;
	x->b.heartbeat.last_seq = h->last_seq;
	for (uint32_t i = 0; i < h->n_watermarks; i++) {
		revokd__peer__watermark__init(&x->wm[i]);
		x->wm[i].region_id = h->watermarks[i].region_id;
		x->wm[i].complete_us = h->watermarks[i].complete_us;
		x->wm_ptr[i] = &x->wm[i];
	}
	x->b.heartbeat.n_watermarks = h->n_watermarks;
	x->b.heartbeat.watermarks = x->wm_ptr;
	x->msg.heartbeat = &x->b.heartbeat;
}

static void
wire__enc_body(struct wire__enc *x, const wire_peer_msg *m)
{
	revokd__peer__peer_msg__init(&x->msg);
	x->msg.body_case = (Revokd__Peer__PeerMsg__BodyCase)m->type;
	switch (m->type) {
	case WIRE_HELLO:
		wire__enc_hello(x, &m->u.hello);
		break;
	case WIRE_AUTH:
		revokd__peer__auth__init(&x->b.auth);
		x->b.auth.signature =
		    wire__bin(m->u.auth.sig, m->u.auth.sig_len);
		x->msg.auth = &x->b.auth;
		break;
	case WIRE_BATCH:
		revokd__peer__batch__init(&x->b.batch);
		x->b.batch.seq = m->u.batch.seq;
		x->b.batch.hlc = m->u.batch.hlc;
		x->b.batch.count = m->u.batch.count;
		x->b.batch.entries =
		    wire__bin(m->u.batch.entries, m->u.batch.entries_len);
		x->msg.batch = &x->b.batch;
		break;
	case WIRE_ACK:
		revokd__peer__ack__init(&x->b.ack);
		x->b.ack.seq = m->u.ack.seq;
		x->msg.ack = &x->b.ack;
		break;
	case WIRE_HEARTBEAT:
		wire__enc_heartbeat(x, &m->u.heartbeat);
		break;
	case WIRE_PING:
		revokd__peer__ping__init(&x->b.ping);
		x->b.ping.t1_us = m->u.ping.t1_us;
		x->msg.ping = &x->b.ping;
		break;
	case WIRE_PONG:
		revokd__peer__pong__init(&x->b.pong);
		x->b.pong.t1_us = m->u.pong.t1_us;
		x->b.pong.t2_us = m->u.pong.t2_us;
		x->b.pong.t3_us = m->u.pong.t3_us;
		x->msg.pong = &x->b.pong;
		break;
	case WIRE_RECON:
		revokd__peer__recon__init(&x->b.recon);
		x->b.recon.session = m->u.recon.session;
		x->b.recon.round = m->u.recon.round;
		x->b.recon.kind = m->u.recon.kind;
		x->b.recon.nodes =
		    wire__bin(m->u.recon.nodes, m->u.recon.nodes_len);
		x->b.recon.item_count = m->u.recon.item_count;
		x->b.recon.items =
		    wire__bin(m->u.recon.items, m->u.recon.items_len);
		x->b.recon.chunks = m->u.recon.chunks;
		x->msg.recon = &x->b.recon;
		break;
	}
}

static bool
wire__name_ok(const char *name)
{
	size_t n = strnlen(name, WIRE_NAME_MAX + 1);

	return n > 0 && n <= WIRE_NAME_MAX;
}

/* The checks of decoding, on what we are about to send. */
static revokd_err
wire__check_outgoing(const wire_peer_msg *m)
{
	const wire_hello *h = &m->u.hello;

	switch (m->type) {
	case WIRE_HELLO:
		return h->cert_len > 0 && h->cert_len <= WIRE_CERT_MAX &&
		               wire__name_ok(h->cluster) &&
		               wire__name_ok(h->region)
		           ? REVOKD_OK
		           : REVOKD_EINVAL;
	case WIRE_AUTH:
		return m->u.auth.sig_len > 0 &&
		               m->u.auth.sig_len <= WIRE_SIG_MAX
		           ? REVOKD_OK
		           : REVOKD_EINVAL;
	case WIRE_BATCH:
		return m->u.batch.seq > 0 &&
		               wire_entries_check(m->u.batch.entries,
		                   m->u.batch.entries_len,
		                   m->u.batch.count) == REVOKD_OK
		           ? REVOKD_OK
		           : REVOKD_EINVAL;
	case WIRE_HEARTBEAT:
		return m->u.heartbeat.n_watermarks <= WIRE_WATERMARKS_MAX
		           ? REVOKD_OK
		           : REVOKD_EINVAL;
	case WIRE_RECON:
		return m->u.recon.nodes_len <= WIRE_NODES_MAX &&
		               wire_entries_check(m->u.recon.items,
		                   m->u.recon.items_len,
		                   m->u.recon.item_count) == REVOKD_OK
		           ? REVOKD_OK
		           : REVOKD_EINVAL;
	case WIRE_ACK:
	case WIRE_PING:
	case WIRE_PONG:
		return REVOKD_OK;
	}
	return REVOKD_EINVAL;
}

revokd_err
wire_peer_encode(const wire_peer_msg *m, uint8_t **frame, size_t *len)
{
	struct wire__enc *x;
	uint8_t *buf;
	size_t n;
	revokd_err err;

	if ((err = wire__check_outgoing(m)) != REVOKD_OK)
		return err;
	if ((x = malloc(sizeof(*x))) == NULL)
		return REVOKD_ENOMEM;
	wire__enc_body(x, m);
	n = revokd__peer__peer_msg__get_packed_size(&x->msg);
	if (n > UINT32_MAX || (buf = malloc(WIRE_HEADER_LEN + n)) == NULL) {
		free(x);
		return REVOKD_ENOMEM;
	}
	put_be32(buf, (uint32_t)n);
	revokd__peer__peer_msg__pack(&x->msg, buf + WIRE_HEADER_LEN);
	free(x);
	*frame = buf;
	*len = WIRE_HEADER_LEN + n;
	return REVOKD_OK;
}
