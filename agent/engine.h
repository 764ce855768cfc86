/*
 * engine.h: the replication engine of one region, with no I/O of its own.
 *
 * The engine owns the replica store's writes and the replication protocol
 * with every peer. It never reads a clock, touches a socket or draws from a
 * random source: time arrives as `now` on every call (microseconds since the
 * Unix epoch on this node's clock), randomness comes from a seed, frames
 * arrive through engine_receive and leave through the send callback. The
 * same engine runs in the agent (libuv + nng around it) and, many times over,
 * in the deterministic simulator.
 *
 * Theory of operation.
 *
 *   Push. Every change of local state (a local write, or entries from a peer
 *   that changed something) is queued for every connected peer but the one
 *   it came from. One frame per peer is with the host at a time, and at most
 *   `window` Batches are unacknowledged; what changes meanwhile is batched
 *   into the next frame, so batches grow to match the receiver's commits.
 *   The receiver commits a batch in one transaction, acknowledges it, and
 *   relays what changed its state, so a broken direct link still delivers
 *   through a third region.
 *
 *   Backlog. What waits for a peer is bounded. On overflow the queue is
 *   dropped and the peer is repaired by reconciliation instead.
 *
 *   Reconciliation. On connect, after an overflow, and on a jittered
 *   interval, the two sides compare fingerprints of key ranges and descend
 *   only into ranges that differ, then exchange the differing entries both
 *   ways (engine_recon.c). Traffic grows with the difference.
 *
 *   Freshness. Per origin region the engine keeps a watermark: a time on its
 *   own clock before which it holds every change that region made. Its own
 *   is `now`. A peer's heartbeat carries the peer's watermarks, which count
 *   only once reconciliation on that connection has finished and while no
 *   batch to us was dropped; they are converted to our clock with the
 *   ping/pong offset, conservatively (minus half the round trip and the
 *   drift allowance). staleness = now - the oldest watermark.
 *
 *   Confirmation. A local batch is confirmed by peer P once P acknowledged a
 *   frame carrying it, or once a reconciliation with P that began after the
 *   batch committed has finished.
 *
 *   Durability. Local writes are committed fully synced before anything is
 *   acknowledged. Entries from peers are committed with CRDT_REPLICA (data
 *   pages synced, meta page not): a process crash loses nothing, a power
 *   failure at most the last such transaction of the last second (synced
 *   at every prune interval), which the peers still hold and repair brings
 *   back.
 *
 * Threading: an engine is used by one thread at a time.
 */
#ifndef ENGINE_H
#define ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/revokd.h"
#include "crdt/crdt.h"
#include "wire/wire.h"

/* Peers an engine can have. */
#define ENGINE_MAX_PEERS 64

/* A peer as configured: index in engine_config.peers is its peer number. */
typedef struct engine_peer_config {
	uint16_t region_id;
	char name[WIRE_NAME_MAX + 1];
} engine_peer_config;

/* Configuration. Zero fields take the defaults given. */
typedef struct engine_config {
	uint16_t region_id; /* this region's id (its G-counter slot) */
	const char *region; /* this region's name */
	crdt_store *store;  /* written by the engine alone */
	unsigned n_peers;   /* at most ENGINE_MAX_PEERS */
	const engine_peer_config *peers;
	uint64_t seed;              /* of jitter and session ids */
	size_t max_frame;           /* largest frame sent; default 1 MiB */
	size_t max_batch;           /* entries per Batch; default 1024 */
	size_t backlog_max;         /* entries queued per peer; default 65536 */
	unsigned window;            /* unacknowledged Batches per peer; 4 */
	uint64_t heartbeat_us;      /* idle heartbeat; default 50 ms */
	uint64_t ping_us;           /* clock probe interval; default 1 s */
	uint64_t recon_interval_us; /* periodic anti-entropy; default 60 s */
	uint64_t recon_jitter_us;   /* +- around it; default 10 s */
	uint64_t recon_timeout_us;  /* a silent session is abandoned; 30 s */
	uint64_t max_ahead_us;      /* HLC receive limit; default 60 s */
	uint32_t drift_ppm;         /* clock drift allowance; default 200 */
	uint64_t prune_interval_us; /* prune step interval; default 1 s */
	size_t prune_step;         /* entries examined per step; default 4096 */
	uint64_t meta_interval_us; /* watermarks saved to the store; 50 ms */
} engine_config;

/* What a local operation does. */
typedef enum engine_op_type {
	ENGINE_OP_REVOKE = 1,  /* revoke a token or session (jti, sid) */
	ENGINE_OP_RESTORE,     /* restore one */
	ENGINE_OP_REVOKE_USER, /* bump a subject's version, set not-before */
	ENGINE_OP_MERGE,       /* merge a whole entry (import) */
} engine_op_type;

/* One local operation. */
typedef struct engine_op {
	engine_op_type type;
	crdt_key key;
	crdt_kind kind;
	int64_t exp;            /* REVOKE, RESTORE: token expiry, unix s */
	uint8_t reason;         /* REVOKE: reason code */
	bool bump;              /* REVOKE_USER: add 1 to the version */
	uint64_t not_before_ms; /* REVOKE_USER: 0 for none */
	crdt_entry entry;       /* MERGE: the entry */
} engine_op;

/* Kinds of notices. */
typedef enum engine_notice_type {
	ENGINE_NOTICE_COMMITTED = 1, /* a local batch is on disk */
	ENGINE_NOTICE_CONFIRMED,     /* peer holds local batch `batch` */
	ENGINE_NOTICE_CHANGED,       /* entries changed local state */
	ENGINE_NOTICE_PEER,          /* something happened on a peer link */
} engine_notice_type;

/* Events on a peer link, for logs and metrics (ENGINE_NOTICE_PEER). */
typedef enum engine_peer_event {
	ENGINE_PEER_OVERFLOW = 1, /* backlog dropped; repairing */
	ENGINE_PEER_RECON_START,
	ENGINE_PEER_RECON_DONE,
	ENGINE_PEER_RECON_ABORT,   /* session abandoned (timeout or error) */
	ENGINE_PEER_CLOCK,         /* new offset and RTT measured */
	ENGINE_PEER_CLOCK_AHEAD,   /* peer's HLC was beyond max_ahead_us */
	ENGINE_PEER_RECON_LIMITED, /* its sessions refused: too many, too soon
	                            */
} engine_peer_event;

/* A notice. Pointers are valid during the callback only. */
typedef struct engine_notice {
	engine_notice_type type;
	unsigned peer;             /* CONFIRMED, PEER */
	uint64_t batch;            /* COMMITTED, CONFIRMED */
	engine_peer_event event;   /* PEER */
	const crdt_entry *entries; /* CHANGED */
	size_t n_entries;          /* CHANGED */
	bool from_peer;            /* CHANGED: from peer (else local) */
	bool from_recon;           /* CHANGED: learned by reconciliation */
} engine_notice;

/* The engine's outputs. */
typedef struct engine_io {
	void *arg;
	/*
	 * Send one frame (header included) to peer. The callee owns frame
	 * (free() it). The next send to the same peer comes only after the
	 * host calls engine_send_done for this one.
	 */
	void (*send)(void *arg, unsigned peer, wire_peer_type type,
	    uint8_t *frame, size_t len);
	/* Something happened (may be NULL). */
	void (*notice)(void *arg, const engine_notice *n);
} engine_io;

/* An engine. */
typedef struct engine engine;

/*
 * A new engine over c->store (which must stay open while it lives), with
 * every peer down. Watermarks saved by an earlier engine are restored.
 */
revokd_err engine_new(const engine_config *c, const engine_io *io, uint64_t now,
    engine **out);

/* Free the engine (the store stays open). NULL is allowed. */
void engine_free(engine *e);

/*
 * Peer's connection is up and authenticated (the host did the handshake):
 * the engine starts pushing to it and reconciles with it.
 */
void engine_peer_up(engine *e, unsigned peer, uint64_t now);

/* Peer's connection is gone; anything in flight to it may be lost. */
void engine_peer_down(engine *e, unsigned peer, uint64_t now);

/*
 * A frame payload (header stripped) from peer. An error means the peer
 * broke the protocol: the host must close the connection (and then call
 * engine_peer_down). Entries are committed before this returns.
 */
revokd_err engine_receive(engine *e, unsigned peer, const uint8_t *frame,
    size_t len, uint64_t now);

/* A frame payload (header stripped), for engine_receive_frames. */
typedef struct engine_frame {
	const uint8_t *data;
	size_t len;
} engine_frame;

/*
 * Frames that arrived together from peer, in order, as engine_receive
 * would take them one by one; consecutive Batches are committed in one
 * transaction (up to 4,096 entries), which is what keeps a receiver up with
 * a sender in a hurry.
 */
revokd_err engine_receive_frames(engine *e, unsigned peer,
    const engine_frame *frames, size_t n, uint64_t now);

/*
 * Hold commits of received batches: until engine_release, batches received
 * (through any number of engine_receive_frames calls) are committed only
 * when the accumulator is full or before another kind of message is
 * handled. A host that wakes up with many reads ready brackets them with
 * hold and release, so they share one transaction.
 */
void engine_hold(engine *e);

/* Commit what was held, and send the acknowledgements. */
void engine_release(engine *e, uint64_t now);

/* The frame last handed to send for peer has left (or was dropped). */
void engine_send_done(engine *e, unsigned peer, uint64_t now);

/*
 * Apply n local operations in one transaction and push the result. *batch
 * (if not NULL) is the batch's id, increasing from 1, for confirmations;
 * after[i] (if not NULL) is the state of op i's entry after the batch.
 * Nothing is applied on error.
 */
revokd_err engine_local(engine *e, const engine_op *ops, size_t n, uint64_t now,
    uint64_t *batch, crdt_entry *after);

/* Run timers due at now: heartbeats, pings, reconciliation, pruning. */
void engine_tick(engine *e, uint64_t now);

/* Save the watermarks to the store now (before a clean shutdown). */
void engine_save(engine *e, uint64_t now);

/* When the engine next wants engine_tick (never later than 1 s away). */
uint64_t engine_next_tick(const engine *e, uint64_t now);

/* ------------------------------------------------------------------------ */
/* State, for status, metrics and the simulator's checks                    */
/* ------------------------------------------------------------------------ */

/* now - the oldest watermark of all configured regions; 0 with no peers. */
uint64_t engine_staleness_us(const engine *e, uint64_t now);

/* The watermark of region_id (our clock); 0 if unknown or not configured. */
uint64_t engine_watermark(const engine *e, uint16_t region_id);

/* Bytes sent, by what they were for. */
typedef struct engine_bytes {
	uint64_t delta;   /* Batch, Ack */
	uint64_t repair;  /* Recon */
	uint64_t control; /* Heartbeat, Ping, Pong */
} engine_bytes;

/* A peer link's state. */
typedef struct engine_peer_status {
	bool up;
	bool synced; /* its watermarks count (reconciled, no gap) */
	bool recon_active;
	bool have_clock;   /* offset and RTT measured */
	int64_t offset_us; /* peer clock - our clock */
	uint64_t rtt_us;
	uint64_t last_ack_us; /* our clock; 0 if never */
	size_t backlog;       /* entries waiting */
	uint64_t confirmed;   /* local batches <= this are held by the peer */
	engine_bytes sent;
	uint64_t bytes_received;
	uint64_t recon_sessions; /* completed */
	uint64_t overflows;
} engine_peer_status;

/* Peer's link state into *out. */
void engine_get_peer_status(const engine *e, unsigned peer,
    engine_peer_status *out);

/* Totals since the engine started. */
typedef struct engine_stats {
	engine_bytes sent;
	uint64_t batches_received;
	uint64_t entries_received;
	uint64_t entries_changed; /* by peers' batches and reconciliation */
	uint64_t local_batches;
	uint64_t recon_done;
	uint64_t recon_aborted;
	uint64_t recon_limited; /* sessions a peer led, refused as too many */
	uint64_t pruned;
	uint64_t clock_ahead; /* peer HLCs refused as too far ahead */
} engine_stats;

/* Totals into *out. */
void engine_get_stats(const engine *e, engine_stats *out);

/* The last local batch id committed (0 before the first). */
uint64_t engine_last_batch(const engine *e);

#endif /* ENGINE_H */
