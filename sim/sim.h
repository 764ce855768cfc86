/*
 * sim.h: revokd-sim, a deterministic discrete-event network that runs one
 * real replication engine (agent/engine.h) per region over a real LMDB
 * store, injects faults, and checks the invariants of DESIGN.md itself.
 *
 * Theory of determinism. Everything that can influence a run comes from
 * the configuration: randomness from revokd_rng streams seeded from the
 * run's seed (one stream per purpose, so adding draws to one leaves the
 * others alone), time from the event queue, which orders events by (time,
 * sequence number of insertion). Nothing reads a wall clock, compares
 * addresses, or iterates a hash table in an order that matters. So the same
 * arguments give the same report, byte for byte.
 *
 * Theory of time. Real (virtual) time is microseconds from 0, `now` of the
 * scheduler. Each node has its own clock:
 *   local = SIM_EPOCH_US + real + skew + real * drift_ppm / 1e6,
 * and every engine call gets the node's local time. Times the engine asks
 * for (its next tick) are mapped back to real time by inverting the clock.
 *
 * Theory of the transport. One connection per pair of nodes, made of two
 * links (one per direction). A link serializes frames at its bandwidth, then
 * they travel the one-way latency plus jitter; a lost frame is retransmitted
 * as TCP would (one RTT + 2 ms later, head-of-line blocking what follows).
 * A cut (partition) stalls a direction: what is queued waits, and if the
 * connection sees nothing for SIM_DEAD_US it dies, both ends are told, and
 * what was queued is gone. While down, a connection is redialled every
 * SIM_DIAL_US; it comes up after a handshake of three round trips.
 *
 * Theory of the oracle. Every local operation is logged with the state it
 * produced at its origin. A node "holds" an operation once the state it
 * stores for that key absorbs the logged state (merging it in changes
 * nothing); this is learned from the engine's CHANGED notices, from the
 * store when a node already had a winning state (a concurrent write with a
 * later HLC), and checked again from every store at the end. The oracle
 * merges with its own reference lattice, independent of crdt/, so a broken
 * merge in crdt/ cannot hide from it. A token operation is excused from
 * "must be held" once its exp + leeway passed on some running node's clock:
 * from then on the system may legitimately prune it or drop it on arrival.
 *
 * The checks: lag samples per ordered pair; convergence after the workload
 * (equal summaries, then equal contents); no operation lost; versions never
 * decrease; final values equal the join of the operations; every 100 ms,
 * no watermark claims a time past an operation its node still lacks; and
 * each local operation did locally what it says (a restore restores).
 */
#ifndef SIM_H
#define SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "agent/engine.h"
#include "common/revokd.h"
#include "crdt/crdt.h"
#include "wire/wire.h"

/* ------------------------------------------------------------------------ */
/* Constants                                                                */
/* ------------------------------------------------------------------------ */

/* Most nodes in one run (7 named regions + room for tests). */
#define SIM_MAX_NODES 8

/* Named regions, hence the most regions a run can have. */
#define SIM_REGIONS 7

/* Local clocks start here: 2023-11-14, in microseconds. */
#define SIM_EPOCH_US 1700000000000000ull

/* Microseconds per millisecond and per second. */
#define SIM_MS 1000ull
#define SIM_S 1000000ull

/* A connection that received nothing for this long is dead. */
#define SIM_DEAD_US (2 * SIM_S)

/* Redial interval of a dead connection, and its jitter. */
#define SIM_DIAL_US (500 * SIM_MS)
#define SIM_DIAL_JITTER_US (50 * SIM_MS)

/* Link bandwidth, bits per second. */
#define SIM_BANDWIDTH_BPS 1000000000ull

/* Per-frame latency jitter: uniform in [0, this]. */
#define SIM_JITTER_US 500

/* Extra delay of one TCP retransmission beyond the round trip. */
#define SIM_RETRANSMIT_US (2 * SIM_MS)

/* Smallest retry interval of a frame stalled by a cut. */
#define SIM_RTO_MIN_US (200 * SIM_MS)

/*
 * Prune leeway of the stores: this much, plus the largest difference
 * between two nodes' clocks (a leeway shorter than the skew would let a
 * node whose clock runs ahead prune revocations of tokens still valid
 * elsewhere, which is a misconfiguration, not something to test).
 */
#define SIM_PRUNE_LEEWAY_S 5

/* The engines' prune interval. */
#define SIM_PRUNE_INTERVAL_US (500 * SIM_MS)

/* Staleness check interval, and convergence polling interval. */
#define SIM_STALE_CHECK_US (100 * SIM_MS)
#define SIM_CONV_CHECK_US (10 * SIM_MS)

/* The workload starts once the first connections are up. */
#define SIM_WARMUP_US SIM_S

/* Default settle limit after the workload stops. */
#define SIM_SETTLE_US (120 * SIM_S)

/* Bound on events processed in one run. */
#define SIM_MAX_EVENTS 50000000ull

/* Violations listed in the report (all are counted). */
#define SIM_VIOLATIONS_LISTED 64

/* Faults a schedule can hold. */
#define SIM_FAULTS_MAX 512

/* Users revoked by REVOKE_USER operations are drawn from this pool. */
#define SIM_USERS 1000

/* Entries per transaction when preloading stores. */
#define SIM_PRELOAD_BATCH 1000

/* ------------------------------------------------------------------------ */
/* Regions and latency (latency.c)                                          */
/* ------------------------------------------------------------------------ */

/* Name of named region i (0 <= i < SIM_REGIONS). */
const char *sim_region_name(unsigned i);

/* One-way latency between named regions a and b, microseconds. */
uint64_t sim_one_way_us(unsigned a, unsigned b);

/* ------------------------------------------------------------------------ */
/* Event queue (sched.c)                                                    */
/* ------------------------------------------------------------------------ */

/* What an event does; a, b and token mean what each handler says. */
typedef enum sim_event_type {
	SIM_EV_TICK = 1,    /* a: node; token: the node's tick token */
	SIM_EV_SEND_DONE,   /* a -> b: serialization over; token: conn gen */
	SIM_EV_DELIVER,     /* link a -> b: deliver its head; token: link's */
	SIM_EV_LATE,        /* a -> b: a reordered frame (data); conn gen */
	SIM_EV_DIAL,        /* conn a-b: try to connect; token: dial token */
	SIM_EV_HANDSHAKE,   /* conn a-b: handshake over; token: conn gen */
	SIM_EV_TIMEOUT,     /* conn a-b: dead-connection check; conn gen */
	SIM_EV_OP,          /* a: node's next Poisson operation */
	SIM_EV_BURST,       /* a: node; b: burst operations left */
	SIM_EV_DIFF_OP,     /* a: node; b: operations left on its side */
	SIM_EV_FAULT,       /* a: index into the fault schedule */
	SIM_EV_STALE_CHECK, /* periodic staleness check */
	SIM_EV_CONV_CHECK,  /* periodic convergence check */
	SIM_EV_MEASURE,     /* measure repair_diff_bytes before the heal */
} sim_event_type;

/* An event. data, when not NULL, is owned by the event (malloc'd). */
typedef struct sim_event {
	uint64_t time; /* real µs */
	uint64_t seq;  /* insertion order: ties in time go first-in first */
	sim_event_type type;
	unsigned a, b;
	uint64_t token;
	uint32_t inc; /* SIM_EV_SEND_DONE: the sender's incarnation */
	uint8_t *data;
	size_t len;
} sim_event;

/* A binary min-heap of events keyed by (time, seq). */
typedef struct sim_sched {
	sim_event *heap;
	size_t n, cap;
	uint64_t next_seq;
} sim_sched;

/* An empty queue. */
void sim_sched_init(sim_sched *q);

/* Free the queue and the data of the events left in it. */
void sim_sched_free(sim_sched *q);

/* Insert ev (its seq is assigned here); takes ev->data on success only. */
revokd_err sim_sched_push(sim_sched *q, const sim_event *ev);

/* Remove the earliest event into *out; false when the queue is empty. */
bool sim_sched_pop(sim_sched *q, sim_event *out);

/* ------------------------------------------------------------------------ */
/* Configuration and scenarios (scenario.c, chaos.c)                        */
/* ------------------------------------------------------------------------ */

/* Kinds of scheduled faults. */
typedef enum sim_fault_type {
	SIM_FAULT_CUT = 1,  /* cut direction a -> b (counted: cuts nest) */
	SIM_FAULT_UNCUT,    /* undo one cut of a -> b */
	SIM_FAULT_CRASH,    /* node a crashes (counted) */
	SIM_FAULT_RESTART,  /* undo one crash of a */
	SIM_FAULT_JOIN,     /* node a starts for the first time */
	SIM_FAULT_LOSS,     /* loss probability p on every link */
	SIM_FAULT_HOSTILE,  /* duplicate, reorder, drop probabilities */
	SIM_FAULT_HEAL_ALL, /* every cut, crash, loss, hostility undone */
} sim_fault_type;

/* One scheduled fault. */
typedef struct sim_fault {
	uint64_t at_us;
	sim_fault_type type;
	unsigned a, b;
	double p;                  /* LOSS */
	double dup, reorder, drop; /* HOSTILE */
} sim_fault;

/* Everything a run depends on. */
typedef struct sim_config {
	char scenario[32];
	unsigned regions; /* nodes, all of them */
	uint64_t seed;
	uint64_t duration_us; /* nominal run length: faults are placed in it */
	uint64_t entries;     /* preloaded entries */
	uint64_t diff;        /* partition-heal: revocations made apart */
	double loss;          /* initial loss probability on every link */
	double rate;          /* operations per second per region */
	const char *dir;      /* parent of the run's temp dir; NULL: default */
	uint64_t settle_us;   /* limit on convergence after the workload */
	bool trace;           /* faults and connection changes on stderr */
	/* If not NULL, holds the run from sim_new to sim_free, so that a
	 * signal handler can remove its stores (sim_rmdir_on_signal). */
	struct sim *volatile *signal_slot;

	/* Filled in by the scenario. */
	int64_t skew_us[SIM_MAX_NODES];
	int32_t drift_ppm[SIM_MAX_NODES];
	bool joins_late[SIM_MAX_NODES]; /* starts empty at a JOIN fault */
	bool short_lifetimes;           /* tokens live 5-20 s: pruning */
	uint64_t workload_start_us;     /* after the connections are up */
	uint64_t workload_end_us;       /* Poisson workload stops here */
	sim_fault faults[SIM_FAULTS_MAX];
	size_t n_faults;
	bool burst;
	unsigned burst_node;
	uint64_t burst_at_us;
	unsigned burst_ops;
	bool diff_ops; /* --diff: revocations on both sides of a partition */
	uint64_t diff_start_us, diff_end_us;
	uint8_t side[SIM_MAX_NODES]; /* partition side (0 or 1) */
	bool measure;                /* repair_diff_bytes at measure_at_us */
	uint64_t measure_at_us;
	unsigned measure_a, measure_b; /* a node of each side */
} sim_config;

/* The default configuration (steady, 3 regions, seed 1, 30 s, ...). */
void sim_config_default(sim_config *c);

/* Names of the scenarios, NULL-terminated. */
extern const char *const sim_scenarios[];

/*
 * Fill in c's schedule for scenario c->scenario from its regions, duration
 * and options. On bad usage writes a one-line reason to err and returns
 * REVOKD_EINVAL.
 */
revokd_err sim_scenario_setup(sim_config *c, char *err, size_t err_len);

/*
 * Fill in c with a random chaos schedule drawn from seed: 3-5 regions,
 * a duration in [max_us / 2, max_us], partitions, loss, skew, crashes and
 * hostile transport faults, all healed before the end.
 */
void sim_chaos_setup(sim_config *c, uint64_t seed, uint64_t max_us);

/* Append a fault to c's schedule (ignored past SIM_FAULTS_MAX). */
void sim_fault_add(sim_config *c, uint64_t at_us, sim_fault_type type,
    unsigned a, unsigned b);

/* ------------------------------------------------------------------------ */
/* The simulated world                                                      */
/* ------------------------------------------------------------------------ */

/* A frame travelling on a link. */
typedef struct sim_frame {
	struct sim_frame *next;
	uint8_t *data; /* whole frame, header included */
	size_t len;
	wire_peer_type type;
	uint64_t arrival; /* earliest delivery, real µs */
} sim_frame;

/* One direction between two nodes: a FIFO of frames. */
typedef struct sim_link {
	unsigned from, to;
	uint64_t one_way_us;
	unsigned cut;        /* active cuts; > 0: nothing passes */
	uint64_t busy_until; /* serialization of earlier frames */
	sim_frame *head, *tail;
	uint64_t token; /* validates the armed SIM_EV_DELIVER */
	bool armed;     /* a SIM_EV_DELIVER for the head is queued */
} sim_link;

/* States of a connection. */
typedef enum sim_conn_state {
	SIM_CONN_DOWN = 0,
	SIM_CONN_HANDSHAKE,
	SIM_CONN_UP, /* one end may be gone (crashed): half-open */
} sim_conn_state;

/* The connection between nodes a < b. End 0 is a, end 1 is b. */
typedef struct sim_conn {
	unsigned a, b;
	sim_conn_state state;
	uint64_t gen;        /* bumped when it goes down or starts again */
	bool up[2];          /* that end's engine was told peer_up */
	uint64_t last_rx[2]; /* real µs of the last frame that end got */
	uint64_t dial_token;
	uint64_t handshake_bytes; /* Hello + Auth, both ways */
} sim_conn;

/* A region: engine + store + clock. */
typedef struct sim_node {
	struct sim *sim;
	unsigned idx;
	uint16_t region_id; /* idx + 1 */
	const char *name;
	char *dir;
	crdt_store *store;
	crdt_reader *reader; /* the oracle's, while the store is open */
	engine *eng;
	bool alive;       /* running now */
	bool started;     /* has run (a late joiner starts at JOIN) */
	unsigned crashes; /* nested crash faults */
	uint32_t incarnation;
	int64_t skew_us;
	int32_t drift_ppm;
	uint64_t tick_at; /* real µs of the valid tick, UINT64_MAX: none */
	uint64_t tick_token;
	unsigned n_peers;
	engine_peer_config peers[SIM_MAX_NODES];
	unsigned peer_node[SIM_MAX_NODES]; /* peer index -> node */
	unsigned node_peer[SIM_MAX_NODES]; /* node -> peer index */
	revokd_rng work_rng;               /* its Poisson workload */
} sim_node;

/* An operation logged by the oracle. */
typedef struct sim_op {
	unsigned origin;
	engine_op_type type;
	uint64_t t_us;    /* real time it was issued */
	uint32_t keyrec;  /* its key's record */
	uint32_t held;    /* nodes known to hold it, a bit each */
	crdt_entry state; /* the state it produced at its origin */
} sim_op;

/* A key touched by operations. */
typedef struct sim_keyrec {
	crdt_key key;
	crdt_kind kind;
	int64_t exp;   /* tokens: the expiry every op on it uses */
	uint32_t *ops; /* its operations, in issue order */
	size_t n_ops, cap_ops;
	uint64_t version[SIM_MAX_NODES]; /* subjects: highest seen per node */
	int32_t pool_pos; /* position in a workload pool, -1 if none */
	uint8_t pool;     /* 0 none, 1 revoked pool, 2 restored pool */
} sim_keyrec;

/* Operations of one origin not yet held by one node, in issue order. */
typedef struct sim_pending {
	uint32_t *ops;
	size_t n, cap, head;
	uint64_t reported; /* 1 + the last op reported stale here; 0: none */
} sim_pending;

/* Lag samples of one ordered pair, µs. */
typedef struct sim_lag {
	uint64_t *v;
	size_t n, cap;
} sim_lag;

/* The oracle: what was done, who holds it, what went wrong. */
typedef struct sim_oracle {
	sim_op *ops;
	size_t n_ops, cap_ops;
	sim_keyrec *keys;
	size_t n_keys, cap_keys;
	uint32_t *table; /* open addressing: keyrec index + 1, 0 empty */
	size_t table_cap;
	sim_pending pending[SIM_MAX_NODES][SIM_MAX_NODES]; /* [node][origin] */
	sim_lag lag[SIM_MAX_NODES][SIM_MAX_NODES];         /* [origin][node] */
	uint64_t violations;
	char *list[SIM_VIOLATIONS_LISTED];
	size_t n_list;
	bool oom; /* memory ran out: the run is void */
} sim_oracle;

/* The workload's pools of keys to restore and re-revoke. */
typedef struct sim_workload {
	revokd_rng rng; /* picks from pools, keys, burst and diff keys */
	crdt_key users[SIM_USERS];
	uint32_t *pool[2]; /* [0] revoked tokens, [1] restored tokens */
	size_t n_pool[2], cap_pool[2];
} sim_workload;

/* Bytes on the wire by purpose. */
typedef struct sim_bytes {
	uint64_t delta;     /* Batch, Ack */
	uint64_t repair;    /* Recon */
	uint64_t control;   /* Heartbeat, Ping, Pong */
	uint64_t handshake; /* Hello, Auth of every established connection */
} sim_bytes;

/* Counters reported besides the invariants. */
typedef struct sim_stats {
	sim_bytes bytes;
	uint64_t frames;
	uint64_t ops;
	uint64_t local_errors;
	uint64_t connects;
	uint64_t closed_timeout;
	uint64_t closed_error;
	uint64_t closed_restart;
	uint64_t frames_lost; /* went down with a connection or a crash */
	uint64_t retransmits; /* TCP-style loss events */
	uint64_t dup, reordered, dropped; /* hostile faults applied */
	uint64_t sends_while_down; /* engine sent to a peer it was told down */
	uint64_t recon_done, recon_aborted, recon_limited, overflows;
	uint64_t pruned;
	uint64_t crashes;
	uint64_t events;
	char first_error[96]; /* first engine_receive error, for the report */
} sim_stats;

/* A run. */
typedef struct sim {
	sim_config cfg;
	unsigned n;   /* nodes */
	uint64_t now; /* real µs */
	uint64_t end_limit_us;
	sim_sched q;
	char *dir;
	sim_node node[SIM_MAX_NODES];
	sim_link link[SIM_MAX_NODES][SIM_MAX_NODES]; /* [from][to] */
	sim_conn conn[SIM_MAX_NODES][SIM_MAX_NODES]; /* [a][b], a < b */
	double loss, dup, reorder, drop;
	revokd_rng net_rng;  /* jitter, loss, hostile faults */
	revokd_rng conn_rng; /* dial jitter */
	sim_workload work;
	sim_oracle oracle;
	sim_stats stats;
	uint64_t preloaded; /* entries preloaded per node */
	int64_t leeway_s;   /* prune leeway of every store */
	bool had_heal;
	uint64_t last_heal_us;
	bool converged, done;
	uint64_t converged_at_us;
	uint64_t repair_diff_bytes;
	bool bootstrapped;
	uint64_t bootstrap_us; /* join to joiner holding the preload */
	unsigned joiner;
	uint64_t join_at_us;
	revokd_err fatal; /* a setup or host failure (not an invariant) */
} sim;

/* ------------------------------------------------------------------------ */
/* Runs (run.c)                                                             */
/* ------------------------------------------------------------------------ */

/*
 * A new run of c (whose schedule is set up): temp dir, stores (preloaded
 * when asked), events. On failure nothing is left behind.
 */
revokd_err sim_new(const sim_config *c, sim **out);

/* Run to the end: convergence after the workload, or the settle limit. */
revokd_err sim_run(sim *s);

/* Free the run: engines, stores, the temp dir. NULL is allowed. */
void sim_free(sim *s);

/* Schedule an event at real time `at` (>= now). */
void sim_at(sim *s, uint64_t at, sim_event_type type, unsigned a, unsigned b,
    uint64_t token);

/* With cfg.trace, one line on stderr prefixed with the time. */
void sim_trace(const sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Note a failure of the host (memory, disk): the run stops and is void. */
void sim_fail(sim *s, revokd_err err);

/* ------------------------------------------------------------------------ */
/* Nodes (node.c)                                                           */
/* ------------------------------------------------------------------------ */

/* Node n's clock at real time real_us. */
uint64_t sim_node_local(const sim_node *n, uint64_t real_us);

/* The first real time at which n's clock reads at least local_us. */
uint64_t sim_node_real(const sim_node *n, uint64_t local_us);

/* Node n's clock now. */
uint64_t sim_node_now(const sim_node *n);

/* Set up node idx of s (names, peers, clock); no store or engine yet. */
void sim_node_init(sim *s, unsigned idx);

/* Open n's store and start its engine. */
revokd_err sim_node_start(sim_node *n);

/* Crash n: engine memory lost, store closed, connections broken. */
void sim_node_crash(sim_node *n);

/* Free n's engine and close its store (end of run). */
void sim_node_stop(sim_node *n);

/* A tick event for n. */
void sim_node_on_tick(sim_node *n, uint64_t token);

/* Engine wrappers: each reschedules the engine's tick afterwards. */
void sim_node_peer_up(sim_node *n, unsigned other);
void sim_node_peer_down(sim_node *n, unsigned other);
void sim_node_send_done(sim_node *n, unsigned other);
revokd_err sim_node_receive(sim_node *n, unsigned other, const uint8_t *frame,
    size_t len);
revokd_err sim_node_local_ops(sim_node *n, const engine_op *ops, size_t k,
    crdt_entry *after);

/* ------------------------------------------------------------------------ */
/* Transport (net.c) and connections (conn.c)                              */
/* ------------------------------------------------------------------------ */

/* Set up the links of s from the latency matrix. */
void sim_net_init(sim *s);

/* Free every frame still on a link. */
void sim_net_free(sim *s);

/* Engine `from` hands a frame for node `to` to the transport (takes it). */
void sim_net_send(sim *s, unsigned from, unsigned to, wire_peer_type type,
    uint8_t *frame, size_t len);

/* Drop every frame on link from -> to (the connection died). */
void sim_net_flush(sim *s, unsigned from, unsigned to);

/* SIM_EV_DELIVER, SIM_EV_LATE, SIM_EV_SEND_DONE handlers. */
void sim_net_on_deliver(sim *s, const sim_event *ev);
void sim_net_on_late(sim *s, sim_event *ev);
void sim_net_on_send_done(sim *s, const sim_event *ev);

/* The connection between nodes i and j (either order). */
sim_conn *sim_conn_of(sim *s, unsigned i, unsigned j);

/* Which end of c node i is (0 or 1). */
unsigned sim_conn_end(const sim_conn *c, unsigned i);

/* Set up every connection (down) and schedule the first dials. */
revokd_err sim_conn_init(sim *s);

/* Close c now: both live ends are told peer_down; queues are dropped. */
void sim_conn_close(sim *s, sim_conn *c, const char *why);

/* Node i's end of every connection goes away (crash). */
void sim_conn_node_crashed(sim *s, unsigned i);

/* Node i (re)started: redial its connections soon. */
void sim_conn_node_started(sim *s, unsigned i);

/* Node `to` got a frame on its connection with `from`. */
void sim_conn_received(sim *s, unsigned from, unsigned to);

/* SIM_EV_DIAL, SIM_EV_HANDSHAKE, SIM_EV_TIMEOUT handlers. */
void sim_conn_on_dial(sim *s, const sim_event *ev);
void sim_conn_on_handshake(sim *s, const sim_event *ev);
void sim_conn_on_timeout(sim *s, const sim_event *ev);

/* ------------------------------------------------------------------------ */
/* Workload (workload.c)                                                    */
/* ------------------------------------------------------------------------ */

/* Seed the workload of s and schedule its first events. */
void sim_workload_init(sim *s);

/* Free the pools. */
void sim_workload_free(sim_workload *w);

/* SIM_EV_OP, SIM_EV_BURST, SIM_EV_DIFF_OP handlers. */
void sim_workload_on_op(sim *s, const sim_event *ev);
void sim_workload_on_burst(sim *s, const sim_event *ev);
void sim_workload_on_diff(sim *s, const sim_event *ev);

/* ------------------------------------------------------------------------ */
/* Oracle (oracle.c, check.c)                                               */
/* ------------------------------------------------------------------------ */

/* Free everything the oracle holds. */
void sim_oracle_free(sim_oracle *o);

/* Count a violation and list it (printf-style short description). */
void sim_violation(sim *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The record of key, created (with kind and exp) when new; -1 on ENOMEM. */
int64_t sim_oracle_key(sim *s, const crdt_key *key, crdt_kind kind,
    int64_t exp);

/* Log an operation issued at node origin now, whose result was *state. */
void sim_oracle_op(sim *s, unsigned origin, engine_op_type type,
    uint32_t keyrec, const crdt_entry *state);

/*
 * True when node's store (open) holds a state absorbing op's; then the op
 * is marked held there. For ops whose effect a node already had: it gets
 * no CHANGED notice for them (a concurrent write with a later HLC won).
 */
bool sim_oracle_store_holds(sim *s, unsigned node, sim_op *op);

/* Node's engine reports entries that changed its state. */
void sim_oracle_changed(sim *s, unsigned node, const crdt_entry *e, size_t n);

/*
 * True when token state e may be gone from the system: its exp + leeway
 * passed on some running node's clock (which may then prune it, or drop it
 * on arrival, and so keep it from nodes whose clocks run behind).
 */
bool sim_oracle_expired(const sim *s, const crdt_entry *e);

/* Reference join of from into into (same key): true when into changed. */
bool sim_ref_merge(crdt_entry *into, const crdt_entry *from);

/* True when have absorbs s: merging s into have changes nothing. */
bool sim_ref_absorbs(const crdt_entry *have, const crdt_entry *s);

/* True when a token state reads as revoked (revoke wins a tie). */
bool sim_ref_revoked(const crdt_token *t);

/* The subject's version (sum of counts, saturating). */
uint64_t sim_ref_version(const crdt_subject *s);

/* The key's first 4 bytes in hex into buf (9 bytes). */
void sim_key_hex(const crdt_key *k, char *buf);

/* Periodic staleness check (invariant 6). */
void sim_check_staleness(sim *s);

/* Periodic convergence check; sets s->converged and s->done. */
void sim_check_convergence(sim *s);

/* Final checks at the end: ops held, final values, versions. */
void sim_check_final(sim *s);

/* ------------------------------------------------------------------------ */
/* Stores (store.c)                                                         */
/* ------------------------------------------------------------------------ */

/* Open (creating) the store in dir with the simulator's options. */
revokd_err sim_store_open(const char *dir, int64_t leeway_s, crdt_store **out);

/*
 * Preload count revoked-token entries into dir's store and copy its
 * data.mdb into each of the other dirs (closed stores).
 */
revokd_err sim_store_preload(const char *dir, const char *const *copies,
    size_t n_copies, uint64_t count, uint64_t seed, unsigned regions);

/*
 * How a and b differ: entries one holds that the other lacks or holds
 * differently, counted on both sides, and their raw size (key + value).
 */
revokd_err sim_store_diff(crdt_store *a, crdt_store *b, uint64_t *count,
    uint64_t *bytes);

/* Call fn for every entry of st, in key order, in one snapshot. */
revokd_err sim_store_scan(crdt_store *st, crdt_entry_fn fn, void *arg);

/* Remove dir and everything below it. */
void sim_rmdir(const char *dir);

/*
 * Remove the run's directory with async-signal-safe calls only (it knows
 * what the stores leave in it), for a signal handler.
 */
void sim_rmdir_on_signal(const sim *s);

/* ------------------------------------------------------------------------ */
/* Reports (report.c)                                                       */
/* ------------------------------------------------------------------------ */

/* The run's report as one JSON object (malloc'd string, no newline). */
char *sim_report_json(const sim *s);

/* A short human summary on f. */
void sim_report_human(const sim *s, FILE *f);

/* Lag percentile p (0..100, nearest rank) of sorted samples, µs. */
uint64_t sim_percentile(const uint64_t *v, size_t n, double p);

#endif /* SIM_H */
