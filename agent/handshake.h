/*
 * handshake.h: the identity handshake at the start of every peer connection,
 * as a pure state machine: frames in, frames out, a verdict.
 *
 *   both sides:  send Hello {protocol, cluster, region, region_id, cert,
 *                nonce}
 *   on Hello:    check protocol and cluster; the region must be one of our
 *                configured peers with that id; its certificate must pass
 *                agent_tls_check_peer; then send Auth {signature over our
 *                name and the peer's, and the peer's nonce}
 *   on Auth:     verify the signature over our nonce with the peer's key
 *   done:        both Hello and Auth arrived and passed: the peer is known
 *
 * Anything else (a second Hello, Auth before Hello, another message type, a
 * bad frame, a Hello claiming our own region or returning our own nonce)
 * fails the handshake for good, with a reason for the log. Frames after done
 * are refused too: they belong to the engine.
 *
 * The handshake borrows what its config points to (tls, strings, peers):
 * they must outlive it.
 */
#ifndef AGENT_HANDSHAKE_H
#define AGENT_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "agent/engine.h"
#include "agent/tls.h"

/* Who we are and whom we accept. */
typedef struct agent_hs_config {
	const agent_tls *tls;
	const char *cluster;
	const char *region;
	uint16_t region_id;
	unsigned n_peers;
	const engine_peer_config *peers; /* name and id of each peer */
} agent_hs_config;

/* One handshake in progress. */
typedef struct agent_hs agent_hs;

/*
 * Start a handshake: a fresh nonce, and our Hello frame (header included)
 * into *hello (malloc'd; the caller sends and frees it).
 */
revokd_err agent_hs_new(const agent_hs_config *c, agent_hs **out,
    uint8_t **hello, size_t *hello_len);

/* Free. NULL is allowed. */
void agent_hs_free(agent_hs *hs);

/*
 * A frame payload (header stripped) from the other side, at time now. It
 * may produce a frame to send (*reply, malloc'd, or NULL). Any error (EAUTH,
 * EPROTO, ENOMEM, ECRYPTO) ends the handshake: why says what went wrong,
 * naming the claimed region when there was one.
 */
revokd_err agent_hs_receive(agent_hs *hs, const uint8_t *frame, size_t len,
    time_t now, uint8_t **reply, size_t *reply_len, char *why, size_t why_len);

/* True once both Hello and Auth have been received and verified. */
bool agent_hs_done(const agent_hs *hs);

/* The peer's index in agent_hs_config.peers; n_peers before it is known. */
unsigned agent_hs_peer(const agent_hs *hs);

/* The region the other side claimed ("" before its Hello). */
const char *agent_hs_claimed(const agent_hs *hs);

#endif /* AGENT_HANDSHAKE_H */
