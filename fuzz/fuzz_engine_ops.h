/*
 * fuzz_engine_ops.h: the input language of fuzz_engine.c, shared with
 * make_seeds.c, which writes seeds in it.
 *
 * An input is a flags byte, then operations until the input ends. An
 * operation starts with one byte: the low 4 bits are its type (FZE_OP_*),
 * bit 4 the peer it concerns (0: "beta", 1: "gamma"), bits 5-7 a variant.
 * What follows depends on the type (fuzz_engine.c reads it); running out of
 * input reads zeros, so every byte string is an input.
 *
 * Messages are built with the protobuf-c structs directly, not with
 * wire_peer_encode, so they can break every rule the engine's decoder
 * checks. Where a message must match the engine's state to get anywhere (the
 * sequence number of a Batch, an Ack of what the engine sent, the session
 * and node count of a reconciliation reply), the "auto" variants fill in
 * what the harness saw the engine send, so the fuzzer can hold a coherent
 * conversation without seeing the engine's output.
 */
#ifndef REVOKD_FUZZ_ENGINE_OPS_H
#define REVOKD_FUZZ_ENGINE_OPS_H

#include <stdint.h>
#include <string.h>

#include "crdt/crdt.h"

/* Flags byte. */
#define FZE_FLAG_AUTO_DRAIN 0x01 /* send_done after every operation */
#define FZE_FLAG_HOLD 0x02       /* engine_hold before the first one */
#define FZE_FLAG_ONLY_ONE 0x04   /* only peer 0 comes up at first */

/* Operation types. */
enum {
	FZE_OP_RAW = 0,        /* u16 len (mod 2048), bytes: a raw frame */
	FZE_OP_BATCH = 1,      /* a Batch of built entries */
	FZE_OP_ACK = 2,        /* an Ack */
	FZE_OP_HEARTBEAT = 3,  /* a Heartbeat with watermarks */
	FZE_OP_PING = 4,       /* a Ping */
	FZE_OP_PONG = 5,       /* a Pong (auto: answers the engine's ping) */
	FZE_OP_RECON = 6,      /* one reconciliation message */
	FZE_OP_HANDSHAKE = 7,  /* Hello, Auth or an empty PeerMsg */
	FZE_OP_LOCAL = 8,      /* engine_local with up to 4 ops */
	FZE_OP_TICK = 9,       /* advance the clock and engine_tick */
	FZE_OP_SEND_DONE = 10, /* the frame with the host has left */
	FZE_OP_LINK = 11,      /* the peer's connection goes down or up */
	FZE_OP_HOLD = 12,      /* engine_hold (variant 0) or engine_release */
	FZE_OP_MULTI = 13, /* 2 to 4 message operations, received together */
	FZE_OP_CLOCK_BACK = 14, /* the clock steps back 10 ms to 2.56 s */
	FZE_OP_NOP = 15,
};

/* Reconciliation message kinds (engine_recon.c). */
enum {
	FZE_RECON_ROUND = 1,
	FZE_RECON_REPLY = 2,
	FZE_RECON_ITEMS = 3,
	FZE_RECON_DONE = 4,
	FZE_RECON_FIN = 5,
	FZE_RECON_ABORT = 6,
	FZE_RECON_BUSY = 7,
};

/* A node record of a ROUND or REPLY: mode or status, entries (0-2). */
#define FZE_REC(mode, items) ((uint8_t)(0x0f | (mode) << 4 | (items) << 6))

/* A record that pads: a true SUM, a SAME, and as an operation a NOP. */
#define FZE_PAD 0x0f

/* The op byte. */
#define FZE_OP(type, peer, variant)                                            \
	((uint8_t)((type) | ((peer) << 4) | ((variant) << 5)))

/* Keys an entry byte below FZE_KEY_RAW picks from (modulo). */
#define FZE_KEYS 32
#define FZE_KEY_RAW 0xf0 /* and above: 16 raw key bytes follow */

/*
 * Key i of the pool: 0-7 spread over the key space, 8-15 in one bucket,
 * 16-23 in pairs differing only in the last bit (reconciliation goes down
 * to depth 128 for them), 24-31 at the edges of the key space.
 */
static inline void
fze_pool_key(unsigned i, crdt_key *k)
{
	static const uint8_t edge[8] = { 0x00, 0xff, 0x80, 0x7f, 0x00, 0xff,
		0x01, 0xfe };
	uint32_t x;

	i %= FZE_KEYS;
	/* A pair shares its seed, so only the last bit tells them apart. */
	x = 0x2545f491u * ((i >= 16 && i < 24 ? 100 + i / 2 : i) + 1);
	for (unsigned b = 0; b < CRDT_KEY_LEN; b++) {
		x ^= x << 13, x ^= x >> 17, x ^= x << 5;
		k->b[b] = (uint8_t)x;
	}
	if (i >= 8 && i < 16) {
		k->b[0] = 0x5a;
		k->b[1] = 0x3c;
	} else if (i >= 16 && i < 24) {
		k->b[CRDT_KEY_LEN - 1] =
		    (uint8_t)((k->b[CRDT_KEY_LEN - 1] & 0xfe) | (i & 1));
	} else if (i >= 24) {
		memset(k->b, (i & 1) ? 0xff : 0x00, CRDT_KEY_LEN);
		k->b[0] = edge[i - 24];
		if (i >= 28)
			k->b[CRDT_KEY_LEN - 1] ^= 1;
	}
}

#endif /* REVOKD_FUZZ_ENGINE_OPS_H */
