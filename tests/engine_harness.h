/*
 * engine_harness.h: engines driven by hand. Each node has a real store in
 * its own directory and an engine; frames wait in a per-link queue until a
 * test delivers them, so every interleaving is under the test's control.
 */
#ifndef REVOKD_ENGINE_HARNESS_H
#define REVOKD_ENGINE_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/engine.h"

/* Nodes a harness can hold. */
#define EH_NODES 4

/* A frame in flight on a link. */
struct eh_frame {
	struct eh_frame *next;
	wire_peer_type type;
	uint8_t *data;
	size_t len;
};

struct eh;

/* One node: its store, engine, clock skew and what it was told. */
struct eh_node {
	struct eh *h;
	unsigned index;
	char *dir;
	crdt_store *store;
	engine *engine;
	int64_t skew_us; /* this node's clock minus the harness clock */
	struct eh_frame *out[EH_NODES], *out_tail[EH_NODES]; /* by dest */
	bool busy[EH_NODES];          /* a frame handed to "the socket" */
	uint64_t confirmed[EH_NODES]; /* highest batch confirmed, by node */
	uint64_t changed;             /* entries notified as changed */
	uint64_t events[16]; /* peer events seen, by engine_peer_event */
};

/* A harness: nodes 0..n-1 in full mesh, all links down at first. */
struct eh {
	unsigned n;
	uint64_t now; /* harness clock, µs */
	struct eh_node node[EH_NODES];
	engine_config cfg; /* template (store, region, peers set per node) */
	uint64_t bytes_by_type[16];
};

/* Start n nodes with cfg as the template (zeroed: defaults). */
void eh_init(struct eh *h, unsigned n, const engine_config *tmpl);

/* Stop everything and remove the directories. */
void eh_free(struct eh *h);

/* Node i's clock now. */
uint64_t eh_clock(struct eh *h, unsigned i);

/* The peer index of node j in node i's engine. */
unsigned eh_peer(unsigned i, unsigned j);

/* Connect (both sides peer_up) or disconnect i and j (frames dropped). */
void eh_link_up(struct eh *h, unsigned i, unsigned j);
void eh_link_down(struct eh *h, unsigned i, unsigned j);

/*
 * Deliver the oldest frame from i to j and tell i its send is done.
 * Returns false when none is waiting.
 */
bool eh_deliver(struct eh *h, unsigned i, unsigned j);

/* Deliver everything on every up link until all are quiet (bounded). */
void eh_settle(struct eh *h);

/* Advance the harness clock by us and tick every engine. */
void eh_advance(struct eh *h, uint64_t us);

/* Revoke a random new jti at node i; its key into *key; the batch id. */
uint64_t eh_revoke(struct eh *h, unsigned i, crdt_key *key);

/* True when node i's store holds key revoked. */
bool eh_revoked(struct eh *h, unsigned i, const crdt_key *key);

/* Entries in node i's store. */
uint64_t eh_count(struct eh *h, unsigned i);

/* True when nodes i and j hold identical stores. */
bool eh_same(struct eh *h, unsigned i, unsigned j);

/* Bytes of frames of type t delivered so far. */
uint64_t eh_bytes(struct eh *h, wire_peer_type t);

#endif /* REVOKD_ENGINE_HARNESS_H */
