/*
 * engine_int.h: what the engine's files share (engine.c: peers, push,
 * local writes, timers; engine_fresh.c: clocks, watermarks, confirmations;
 * engine_recon.c: reconciliation).
 */
#ifndef ENGINE_INT_H
#define ENGINE_INT_H

#include "agent/engine.h"

/* Defaults of engine_config. */
#define ENGINE__MAX_FRAME WIRE_MAX_FRAME_DEFAULT
#define ENGINE__MAX_BATCH WIRE_BATCH_MAX
#define ENGINE__BACKLOG 65536
#define ENGINE__WINDOW 4
#define ENGINE__HEARTBEAT_US 50000
#define ENGINE__PING_US 1000000
#define ENGINE__RECON_INTERVAL_US 60000000
#define ENGINE__RECON_JITTER_US 10000000
#define ENGINE__RECON_TIMEOUT_US 30000000

/*
 * Sessions a peer may lead with us as comparer: this many at once, then
 * this many per recon_interval (engine_recon.c, recon_admit).
 */
#define ENGINE__RECON_IN_BURST 8
#define ENGINE__MAX_AHEAD_US 60000000
#define ENGINE__DRIFT_PPM 200
#define ENGINE__PRUNE_INTERVAL_US 1000000
#define ENGINE__PRUNE_STEP 4096

/*
 * Keys a tick adds while the store's filter is being rebuilt (about a
 * millisecond of the loop), and the pause between such ticks.
 */
#define ENGINE__FILTER_STEP 8192
#define ENGINE__FILTER_PAUSE_US 1000
#define ENGINE__META_INTERVAL_US 50000

/* Bytes a frame's protobuf adds around its entries, at most. */
#define ENGINE__FRAME_OVERHEAD 64

/* Entries of consecutive Batches from one peer committed together. */
#define ENGINE__ACC_MAX 4096

/* Entries learned by one reconciliation frame that are still relayed. */
#define ENGINE__RELAY_RECON_MAX 256

/* Unconfirmed batch ranges kept per peer before falling back to repair. */
#define ENGINE__UNCONF_MAX 4096

/* Metadata name of the saved watermarks. */
#define ENGINE__META_WATERMARKS "revokd.watermarks"

/*
 * Local batches lo..hi that a peer does not hold yet, as far as we know.
 * seq is the Batch frame that carried the last of them; 0 when none did
 * (the peer was down, or the queue overflowed): then only a reconciliation
 * that begins after them can confirm them.
 */
struct engine__unconf {
	uint64_t lo, hi;
	uint64_t seq;
};

/* Where local batch `batch` ends in a peer's pending queue. */
struct engine__mark {
	size_t end;
	uint64_t batch;
};

/* A frame waiting for the peer's send slot. */
struct engine__frame {
	struct engine__frame *next;
	wire_peer_type type;
	uint8_t *data;
	size_t len;
};

/* A reconciliation session (engine_recon.c). */
struct engine__recon;

/* Everything the engine keeps about one peer. */
struct engine__peer {
	engine_peer_config cfg;
	unsigned index;
	bool up;
	bool sending; /* a frame is with the host */

	/* Outgoing: entries waiting to be batched, and control frames. */
	revokd_buf pending;
	uint32_t pending_count;
	struct engine__mark *marks;
	size_t n_marks, cap_marks;
	uint64_t last_seq;  /* of the last Batch sent on this connection */
	uint64_t acked_seq; /* of the last Batch it acknowledged */
	struct engine__frame *ctl_head, *ctl_tail;
	size_t n_ctl;
	bool ack_owed;
	bool pong_owed;
	uint64_t pong_t1, pong_t2;
	uint64_t ping_t1; /* of the ping awaiting its pong; 0 if none */
	uint64_t next_ping_us;
	uint64_t last_heartbeat_us;

	/*
	 * Our watermark claims may go to the peer once a reconciliation on
	 * this connection has finished and while nothing for it was dropped.
	 * gap_epoch counts drops, so a session can tell whether one happened
	 * while it ran.
	 */
	bool claims_ok;
	uint64_t gap_epoch;

	/* Incoming. recv_ok: no batch from the peer went missing since the
	 * last finished reconciliation, so its claims can be believed. */
	uint64_t recv_seq;   /* contiguous Batch seqs received */
	uint64_t commit_seq; /* of those, committed: what an Ack says */
	bool recv_ok;
	uint64_t recv_gap_epoch;

	/* The peer's clock: offset = peer clock - ours, measured at. */
	bool have_clock;
	int64_t offset_us;
	uint64_t rtt_us;
	uint64_t clock_at_us;
	uint64_t clock_ahead_us; /* last CLOCK_AHEAD notice (one a second) */

	/* Local batches it does not hold yet. */
	struct engine__unconf *unconf;
	size_t n_unconf, cap_unconf;

	/* Reconciliation: the session we lead, the one the peer leads. */
	struct engine__recon *out, *in;
	bool recon_wanted;
	uint64_t next_recon_us;
	uint64_t recon_in_tat; /* when the peer's next session is due */
	bool recon_limited;    /* its last session was refused as too soon */

	/* Counters. */
	engine_bytes sent;
	uint64_t bytes_received;
	uint64_t recon_sessions;
	uint64_t overflows;
	uint64_t last_ack_us;
};

struct engine {
	engine_config cfg; /* defaults filled in */
	engine_io io;
	crdt_store *store;
	crdt_reader *reader;
	crdt_clock clock;
	revokd_rng rng;
	struct engine__peer *peers;
	uint64_t last_batch;

	/* Watermark of each peer's region (our clock); ours is `now`. */
	uint64_t *wm;
	bool wm_dirty;
	uint64_t next_meta_us;
	uint64_t next_prune_us;
	/* Entries a prune examines: smaller while the store is full; 0: cfg. */
	size_t prune_step_now;
	bool filter_more; /* the store's filter is being rebuilt */

	/*
	 * Decoded entries (ENGINE__ACC_MAX) and what they changed. Batches
	 * arriving together from one peer accumulate in `in` (acc_n entries
	 * from acc_peer, up to seq acc_seq) and are committed in one
	 * transaction before anything else is handled.
	 */
	crdt_entry *in;
	crdt_entry *changed;
	struct engine__peer *acc_peer;
	size_t acc_n;
	uint64_t acc_seq;
	bool holding; /* engine_hold: no commit at the end of a receive */

	engine_stats stats;
};

/* ------------------------------------------------------------------------ */
/* engine.c                                                                 */
/* ------------------------------------------------------------------------ */

/* Hand frame to the host for p (p must not be sending). */
void engine__send(engine *e, struct engine__peer *p, wire_peer_type type,
    uint8_t *frame, size_t len);

/* Encode m and queue it as a control frame for p. */
revokd_err engine__queue_msg(engine *e, struct engine__peer *p,
    const wire_peer_msg *m);

/* Send p its next frame if its slot is free and something is due. */
void engine__flush(engine *e, struct engine__peer *p, uint64_t now);

/*
 * Merge entries that came from peer `from` (NULL: local) in one
 * transaction; notify, and queue what changed for every other peer.
 */
revokd_err engine__apply(engine *e, struct engine__peer *from,
    const crdt_entry *in, size_t n, uint64_t now, bool recon);

/* Decode n packed entries (already checked by wire) into e->in + at. */
void engine__unpack(engine *e, const uint8_t *buf, size_t len, uint32_t n,
    size_t at);

/* Post a notice, if the host wants them. */
void engine__notice(engine *e, const engine_notice *n);

/* Post a peer event notice. */
void engine__peer_event(engine *e, struct engine__peer *p,
    engine_peer_event ev);

/* Store time (unix seconds) of a `now`. */
int64_t engine__now_s(uint64_t now);

/* ------------------------------------------------------------------------ */
/* engine_fresh.c: clocks, watermarks, confirmations                         */
/* ------------------------------------------------------------------------ */

/* Restore watermarks saved by an earlier engine. */
void engine__wm_load(engine *e);

/* Save watermarks if they changed (tick). */
void engine__wm_save(engine *e, uint64_t now);

/* Build a Heartbeat for p at now into *m (claims only if allowed). */
void engine__heartbeat(engine *e, struct engine__peer *p, uint64_t now,
    wire_heartbeat *m);

/* A Heartbeat from p: absorb its claims if they can be believed. */
void engine__on_heartbeat(engine *e, struct engine__peer *p,
    const wire_heartbeat *h, uint64_t now);

/* A Pong from p: measure its clock. */
void engine__on_pong(engine *e, struct engine__peer *p, const wire_pong *m,
    uint64_t now);

/* Record local batch `batch` for p: sent in frame seq (0: not sent). */
void engine__unconf_add(engine *e, struct engine__peer *p, uint64_t batch,
    uint64_t seq);

/* p acknowledged every Batch up to seq. */
void engine__unconf_ack(engine *e, struct engine__peer *p, uint64_t seq);

/* p's connection broke: what was in flight can only be confirmed by repair. */
void engine__unconf_lost(struct engine__peer *p);

/*
 * A reconciliation with p finished that began when batch `upto` was the
 * last committed: p holds every batch up to it.
 */
void engine__unconf_repaired(engine *e, struct engine__peer *p, uint64_t upto);

/* ------------------------------------------------------------------------ */
/* engine_recon.c                                                           */
/* ------------------------------------------------------------------------ */

/* Start a session led by us with p (p up, none of ours running). */
revokd_err engine__recon_start(engine *e, struct engine__peer *p, uint64_t now);

/* A Recon message from p. An error means p broke the protocol. */
revokd_err engine__recon_receive(engine *e, struct engine__peer *p,
    const wire_recon *r, uint64_t now);

/* The next reconciliation frame for p, if any is ready: true and *frame. */
bool engine__recon_next(engine *e, struct engine__peer *p, uint64_t now,
    uint8_t **frame, size_t *len);

/* Abandon sessions that went silent; true if anything is running. */
void engine__recon_tick(engine *e, struct engine__peer *p, uint64_t now);

/* When the sessions with p next need a tick (UINT64_MAX: never). */
uint64_t engine__recon_deadline(const struct engine__peer *p);

/* Drop p's sessions (connection down or engine freed). */
void engine__recon_free(struct engine__peer *p);

#endif /* ENGINE_INT_H */
