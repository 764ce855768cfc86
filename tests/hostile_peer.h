/*
 * hostile_peer.h: a peer region played by a test, to attack an agent from
 * inside the cluster. It connects to the agent's peer listener over real
 * mutual TLS (OpenSSL) with a region's certificate from the cluster's PKI
 * (bench/cluster.h makes it), runs the identity handshake with the agent's
 * own code (agent/handshake.h), and then sends whatever the test wants:
 * well-formed messages with chosen sequence numbers and entries, or raw
 * bytes. Everything the agent sends back is read, decoded and counted, so
 * a test can tell what its attack cost the agent and what it got back.
 *
 * The connection is a non-blocking socket driven by the caller: every call
 * that waits reads what arrives meanwhile, and (unless turned off) sends a
 * Heartbeat when nothing was sent for HP_KEEPALIVE_MS, so the agent does
 * not close the link as silent. Every wait is bounded by a timeout.
 *
 * Single-threaded; one hp_peer per connection.
 */
#ifndef REVOKD_HOSTILE_PEER_H
#define REVOKD_HOSTILE_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/revokd.h"
#include "crdt/crdt.h"
#include "wire/wire.h"

/* Longest silence of ours before a keepalive Heartbeat. */
#define HP_KEEPALIVE_MS 200

/* Who we are, and the agent we attack. */
typedef struct hp_config {
	const char *pki;     /* directory of ca.pem, NAME.pem, NAME.key */
	const char *cluster; /* the cluster's name */
	const char *self;    /* our region: its certificate and key */
	uint16_t self_id;    /* our region id, as the agent configured it */
	const char *target;  /* the agent's region (checked in TLS and Hello) */
	uint16_t target_id;
	uint16_t port;     /* the agent's peer listener on 127.0.0.1 */
	bool no_handshake; /* stop after TLS: send nothing */
	bool hello_only;   /* send our Hello, never our Auth */
} hp_config;

/* What went through the connection so far. */
typedef struct hp_stats {
	uint64_t bytes_out; /* application bytes we sent (frames, raw) */
	uint64_t bytes_in;  /* application bytes the agent sent */
	uint64_t frames_in; /* whole frames from the agent */
	uint64_t by_type[WIRE_RECON + 1]; /* bytes from the agent, by type */
	uint64_t acked;      /* the highest Ack seq from the agent */
	uint64_t entries_in; /* entries in the agent's Batches */
	bool up;             /* the handshake passed both ways */
	bool closed;         /* the agent closed (or the connection failed) */
} hp_stats;

/* A connection to the agent. */
typedef struct hp_peer hp_peer;

/*
 * Connect, run TLS and (unless no_handshake) the identity handshake, within
 * timeout_ms; with hello_only, return once our Hello is sent. REVOKD_EAUTH when
 * TLS or the handshake failed, REVOKD_EIO when the agent cannot be reached,
 * REVOKD_ETIMEDOUT; *why says what.
 */
revokd_err hp_connect(const hp_config *c, unsigned timeout_ms, hp_peer **out,
    char *why, size_t why_len);

/* Close and free. NULL is allowed. */
void hp_free(hp_peer *p);

/* The counters. */
const hp_stats *hp_stats_of(const hp_peer *p);

/* Our end's TCP port, as the agent's log names it ("addr=127.0.0.1:PORT"). */
uint16_t hp_local_port(const hp_peer *p);

/*
 * Called with every message the agent sends after the handshake (m is
 * valid during the call). NULL to stop.
 */
void hp_on_message(hp_peer *p,
    void (*fn)(void *arg, const wire_peer_msg *m, const uint8_t *frame,
        size_t len),
    void *arg);

/* Turn the keepalive Heartbeats off or back on. */
void hp_keepalive(hp_peer *p, bool on);

/*
 * Turn reading off (a peer that never reads: the agent's frames pile up in
 * the socket) or back on.
 */
void hp_reading(hp_peer *p, bool on);

/*
 * Send len raw bytes within timeout_ms: false when the agent closed first
 * or time ran out.
 */
bool hp_send_raw(hp_peer *p, const void *data, size_t len, unsigned timeout_ms);

/* Encode and send one message. */
bool hp_send_msg(hp_peer *p, const wire_peer_msg *m, unsigned timeout_ms);

/*
 * Send a Batch of n entries (at most WIRE_BATCH_MAX) with sequence number
 * seq (0: the next one of this connection, which then counts from it).
 * The seq used, or 0 when it could not be sent.
 */
uint64_t hp_send_batch(hp_peer *p, uint64_t seq, const crdt_entry *e, size_t n,
    unsigned timeout_ms);

/* The last batch seq this connection used (the next default is one more). */
uint64_t hp_last_seq(const hp_peer *p);

/* Read (and keep alive) for ms. False once the agent has closed. */
bool hp_pump(hp_peer *p, unsigned ms);

/* Wait until the agent acknowledged seq: false on close or timeout. */
bool hp_wait_ack(hp_peer *p, uint64_t seq, unsigned timeout_ms);

/* Wait until the agent closes the connection: false on timeout. */
bool hp_wait_closed(hp_peer *p, unsigned timeout_ms);

/* The HLC of now (wall clock), as a peer stamps its messages. */
crdt_hlc hp_hlc_now(void);

#endif /* REVOKD_HOSTILE_PEER_H */
