/*
 * wire.h: the peer protocol (peer.proto) as C values: framing, a pure
 * decoder (feed bytes, pull frames), message encoding and validating
 * decoding, and packed entries.
 *
 * Theory of validation. Everything here may come from a hostile peer. A
 * frame longer than the decoder's maximum is refused before it is buffered;
 * a message is unpacked only from a complete frame, and every field is
 * checked before a caller sees it: known message type, names and nonces of
 * the right length, counts within the limits below, packed entries that each
 * decode to a canonical crdt entry and add up to the declared count. What
 * fails gives REVOKD_EMALFORMED (or REVOKD_ETOOBIG), never a crash.
 */
#ifndef WIRE_H
#define WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/revokd.h"
#include "crdt/crdt.h"

/* Version of the peer protocol sent in Hello. */
#define WIRE_PROTOCOL 1

/* Bytes of the frame header: a big-endian length. */
#define WIRE_HEADER_LEN 4

/* Default and smallest allowed maximum frame size (the length field). */
#define WIRE_MAX_FRAME_DEFAULT (1u << 20)
#define WIRE_MAX_FRAME_MIN (64u << 10)

/* Limits checked on every decoded message. */
#define WIRE_NONCE_LEN 32
#define WIRE_NAME_MAX 63        /* region and cluster names, bytes */
#define WIRE_CERT_MAX 16384     /* DER certificate */
#define WIRE_SIG_MAX 1024       /* signature */
#define WIRE_BATCH_MAX 1024     /* entries in one Batch or Recon */
#define WIRE_WATERMARKS_MAX 256 /* watermarks in one Heartbeat */
#define WIRE_NODES_MAX 65536    /* bytes of Recon.nodes */

/* Largest packed entry: a key and the largest canonical value. */
#define WIRE_ENTRY_MAX (CRDT_KEY_LEN + CRDT_VALUE_MAX)

/* ------------------------------------------------------------------------ */
/* Framing                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * A frame decoder: feed it bytes as they arrive, pull whole frames. Every
 * frame header is checked as soon as it is buffered. A caller that pulls
 * frames (wire_decoder_next until REVOKD_EAGAIN) after each feed keeps at
 * most one partial frame and one feed buffered.
 */
typedef struct wire_decoder {
	uint8_t *buf;
	size_t len; /* bytes buffered */
	size_t off; /* bytes already handed out by wire_decoder_next */
	size_t cap;
	size_t max_frame;
	bool failed; /* a frame was too long: the stream is unusable */
} wire_decoder;

/* Start a decoder refusing frames longer than max_frame bytes. */
void wire_decoder_init(wire_decoder *d, size_t max_frame);

/* Free the decoder's buffer. */
void wire_decoder_free(wire_decoder *d);

/*
 * Add len bytes from the stream. REVOKD_ETOOBIG once a buffered frame header
 * declares more than max_frame: the stream cannot be resynchronised, no
 * more bytes are taken, and the whole frames before that header can still
 * be pulled before closing. REVOKD_ENOMEM when the buffer cannot grow.
 */
revokd_err wire_decoder_feed(wire_decoder *d, const void *data, size_t len);

/*
 * The next whole frame's payload (without header) into *frame, *len: valid
 * until the next feed or free of d (pulling more frames keeps it valid). REVOKD_EAGAIN when no whole frame is buffered;
 * REVOKD_ETOOBIG when the next frame is the oversize one.
 */
revokd_err wire_decoder_next(wire_decoder *d, const uint8_t **frame,
    size_t *len);

/* ------------------------------------------------------------------------ */
/* Packed entries                                                           */
/* ------------------------------------------------------------------------ */

/* Append e (key, then canonical value) to buf; returns the bytes written. */
size_t wire_entry_encode(const crdt_entry *e, uint8_t *buf);

/*
 * Decode the entry at *p (not past end) into *out and advance *p.
 * REVOKD_EMALFORMED when it is truncated or not canonical.
 */
revokd_err wire_entry_decode(const uint8_t **p, const uint8_t *end,
    crdt_entry *out);

/*
 * Check that buf holds exactly count well-formed packed entries, with count
 * at most WIRE_BATCH_MAX.
 */
revokd_err wire_entries_check(const uint8_t *buf, size_t len, uint32_t count);

/* ------------------------------------------------------------------------ */
/* Messages                                                                 */
/* ------------------------------------------------------------------------ */

/* The kinds of PeerMsg. Values are the oneof field numbers. */
typedef enum wire_peer_type {
	WIRE_HELLO = 1,
	WIRE_AUTH = 2,
	WIRE_BATCH = 3,
	WIRE_ACK = 4,
	WIRE_HEARTBEAT = 5,
	WIRE_PING = 6,
	WIRE_PONG = 7,
	WIRE_RECON = 8,
} wire_peer_type;

/* The name of a message type ("batch"), for logs. */
const char *wire_peer_type_name(wire_peer_type t);

typedef struct wire_hello {
	uint32_t protocol;
	char cluster[WIRE_NAME_MAX + 1];
	char region[WIRE_NAME_MAX + 1];
	uint16_t region_id;
	const uint8_t *cert; /* DER, cert_len bytes */
	size_t cert_len;
	uint8_t nonce[WIRE_NONCE_LEN];
} wire_hello;

typedef struct wire_auth {
	const uint8_t *sig;
	size_t sig_len;
} wire_auth;

typedef struct wire_batch {
	uint64_t seq;
	crdt_hlc hlc;
	uint32_t count;
	const uint8_t *entries; /* count packed entries, already checked */
	size_t entries_len;
} wire_batch;

typedef struct wire_ack {
	uint64_t seq;
} wire_ack;

typedef struct wire_watermark {
	uint16_t region_id;
	uint64_t complete_us;
} wire_watermark;

typedef struct wire_heartbeat {
	crdt_hlc hlc;
	uint64_t last_seq;
	uint32_t n_watermarks;
	wire_watermark watermarks[WIRE_WATERMARKS_MAX];
} wire_heartbeat;

typedef struct wire_ping {
	uint64_t t1_us;
} wire_ping;

typedef struct wire_pong {
	uint64_t t1_us, t2_us, t3_us;
} wire_pong;

typedef struct wire_recon {
	uint32_t session;
	uint32_t round;
	uint32_t kind;
	const uint8_t *nodes; /* at most WIRE_NODES_MAX bytes; engine-checked */
	size_t nodes_len;
	uint32_t item_count;
	const uint8_t *items; /* item_count packed entries, already checked */
	size_t items_len;
	uint32_t chunks;
} wire_recon;

/*
 * One peer message. Pointers inside borrow from the decoded frame's
 * protobuf, which the message owns: they live until wire_peer_msg_free.
 */
typedef struct wire_peer_msg {
	wire_peer_type type;
	union {
		wire_hello hello;
		wire_auth auth;
		wire_batch batch;
		wire_ack ack;
		wire_heartbeat heartbeat;
		wire_ping ping;
		wire_pong pong;
		wire_recon recon;
	} u;
	void *pb; /* the unpacked protobuf, owned */
} wire_peer_msg;

/*
 * Decode and validate one frame payload. On success *out must be released
 * with wire_peer_msg_free; on failure nothing is left to free.
 */
revokd_err wire_peer_decode(const uint8_t *frame, size_t len,
    wire_peer_msg *out);

/* Release what wire_peer_decode kept. */
void wire_peer_msg_free(wire_peer_msg *m);

/*
 * Encode m as one frame, header included, into a malloc'd buffer (*frame,
 * *len; the caller frees it). The fields are checked as on decode, so a
 * frame this builds always decodes.
 */
revokd_err wire_peer_encode(const wire_peer_msg *m, uint8_t **frame,
    size_t *len);

#endif /* WIRE_H */
