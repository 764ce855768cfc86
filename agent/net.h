/*
 * net.h: the peer transport: one mutually authenticated tls+tcp stream per
 * peer pair, over nng's stream API, driven from a libuv loop.
 *
 * Theory of threads. nng completes its I/O on its own threads. Each
 * completion callback only records what happened (an event) on a queue
 * under a mutex and wakes the loop with uv_async_send, the one libuv call
 * safe from another thread. Everything else, including every call into the
 * engine, happens on the loop thread. Events name their connection by id,
 * not by pointer, so a connection can be freed as soon as its aios are
 * stopped, whatever is still queued about it.
 *
 * Theory of connections. The region with the smaller id dials; the other
 * only accepts. A new connection is TLS-authenticated against the cluster
 * CA by nng (client certificate required), then runs the identity
 * handshake (handshake.h) within a deadline; only then is it the peer's
 * connection and the engine told peer_up. A second proven connection for a
 * peer replaces the first. A connection on which nothing arrived for
 * dead_ms (peers send a heartbeat every 50 ms) is closed. The dialer
 * redials with a jittered backoff from 100 ms to 5 s. Connections that have
 * not finished the handshake are limited in number, so a flood of them
 * cannot take every file descriptor.
 */
#ifndef AGENT_NET_H
#define AGENT_NET_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "agent/config.h"
#include "agent/tls.h"

/* The transport. */
typedef struct agent_net agent_net;

/* Configuration and the callbacks (all called on the loop thread). */
typedef struct agent_net_config {
	uv_loop_t *loop;
	const agent_tls *tls;
	const char *listen_url;
	const char *cluster;
	const char *region;
	uint16_t region_id;
	unsigned n_peers;
	const agent_peer_config *peers;
	size_t max_frame;      /* largest frame accepted from a peer */
	unsigned max_pending;  /* handshakes at once; default 64 */
	uint64_t handshake_ms; /* handshake deadline; default 10 s */
	uint64_t dead_ms;      /* silence that kills a link; default 3 s */
	void *arg;
	void (*peer_up)(void *arg, unsigned peer);
	void (*peer_down)(void *arg, unsigned peer);
	/*
	 * Frame payloads that arrived together from an authenticated peer,
	 * in order (valid during the call); an error closes the link.
	 */
	revokd_err (*frames)(void *arg, unsigned peer,
	    const engine_frame *frames, size_t n);
	/* The frame last given to agent_net_send for peer has been sent. */
	void (*send_done)(void *arg, unsigned peer);
	/*
	 * Around each burst of completions the loop handles in one wake-up
	 * (may be NULL): what arrives in one burst can be committed together.
	 */
	void (*burst_begin)(void *arg);
	void (*burst_end)(void *arg);
} agent_net_config;

/*
 * Listen and start dialing. The listen URL is bound before this returns:
 * REVOKD_EIO with err naming it when it cannot be.
 */
revokd_err agent_net_start(const agent_net_config *c, agent_net **out,
    char *err, size_t err_len);

/*
 * Send one frame (header included) to a peer that is up; takes ownership.
 * One frame per peer at a time: the next after send_done.
 */
void agent_net_send(agent_net *n, unsigned peer, uint8_t *frame, size_t len);

/*
 * Close every connection and stop (no callbacks after this). The nng side
 * stops before this returns; libuv handles close when the loop runs, and
 * the transport is freed then.
 */
void agent_net_stop(agent_net *n);

/* Counters since start. */
typedef struct agent_net_stats {
	uint64_t accepted;
	uint64_t refused; /* handshake failed or too many pending */
	uint64_t dials;
	uint64_t dial_failures;
	uint64_t timeouts; /* handshake deadline or silent link */
	unsigned pending;  /* handshakes in progress now */
} agent_net_stats;

/* The counters into *out. */
void agent_net_get_stats(const agent_net *n, agent_net_stats *out);

#endif /* AGENT_NET_H */
