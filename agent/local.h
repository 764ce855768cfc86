/*
 * local.h: a framed request/response server on a Unix socket, on a libuv
 * loop. The query socket and the admin socket are two of these.
 *
 * Frames are a 4-byte big-endian length and a payload (wire/wire.h
 * framing). Every request frame gets exactly one response frame, in the
 * order the requests arrived, even when some answers come later than others
 * (an admin write waiting for peers): each request gets a slot, and output
 * leaves a connection only up to its first unfilled slot.
 *
 * Theory of batching. All whole frames that one read brought are handed to
 * the handler at once, so it can answer them from one store snapshot; the
 * responses it fills during that call leave in one write.
 *
 * Reading from a connection pauses while the answers waiting behind an
 * unfilled slot pass half of max_output, and resumes below a quarter.
 * Unwritten output does not pause reading (a client that never reads must
 * reach the cut), so max_output must be well above what one 64 KiB read of
 * requests can produce as answers. End of input at a frame boundary (a
 * client that half-closes) is answered before the connection closes.
 *
 * Theory of protection. One connection's trouble stays with it:
 *   - a frame whose header declares more than max_frame gets a TOO_BIG
 *     response from the handler (on_oversize) and the connection is closed
 *     once it is written;
 *   - a connection whose unwritten output passes max_output (a client that
 *     never reads) is closed at once, its output dropped;
 *   - past max_connections, new connections are accepted and closed;
 *   - when what all connections' buffers hold passes a budget (64 MiB, or
 *     twice max_frame + max_output if larger), a connection that grows
 *     past 16 KiB is closed at once (local.c, theory of memory);
 *   - a connection that closes mid-frame is just closed.
 * The socket file is created with the given mode (the umask is set around
 * bind, so servers start before other threads create files); a stale
 * socket file from a dead agent is replaced, a live one is not. Log events:
 * "refused", "cut_slow", "cut_memory", "oversize", "truncated",
 * "accept_failed", "error".
 * The process must ignore SIGPIPE.
 */
#ifndef AGENT_LOCAL_H
#define AGENT_LOCAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/revokd.h"

/* A server. */
typedef struct agent_local agent_local;

/* One client connection (owned by the server). */
typedef struct agent_local_conn agent_local_conn;

/* One request's place in its connection's response order. */
typedef struct agent_local_slot agent_local_slot;

/* A request frame, valid during the on_frames call only. */
typedef struct agent_local_frame {
	const uint8_t *data; /* payload, header stripped */
	size_t len;
	agent_local_slot *slot; /* where its response goes */
} agent_local_frame;

/* What the server tells its owner. */
typedef struct agent_local_config {
	const char *name;  /* "query", "admin": for logs */
	const char *path;  /* socket file */
	unsigned mode;     /* of the socket file, e.g. 0660 */
	size_t max_frame;  /* largest request payload */
	size_t max_output; /* unwritten bytes before a client is cut */
	unsigned max_connections;
	void *arg;
	/*
	 * n whole request frames from c: fill every frame's slot, now or
	 * later (agent_local_fill).
	 */
	void (*on_frames)(void *arg, agent_local_conn *c,
	    const agent_local_frame *frames, size_t n);
	/*
	 * A frame over max_frame arrived: fill slot with an error response;
	 * the connection closes after writing it.
	 */
	void (*on_oversize)(void *arg, agent_local_slot *slot, size_t declared);
	/* Something worth a log line ("event", and a detail). May be NULL. */
	void (*log)(void *arg, const char *event, const char *detail);
} agent_local_config;

/*
 * Listen on c->path. REVOKD_EEXIST when another process is serving it,
 * other errors with err naming the path and the reason. After a failure
 * the caller runs the loop once more (libuv may still be closing handles).
 */
revokd_err agent_local_start(uv_loop_t *loop, const agent_local_config *c,
    agent_local **out, char *err, size_t err_len);

/*
 * Stop listening, close every connection, remove the socket file. Slots
 * not yet filled stay valid until filled (their output is dropped). The
 * server is freed once libuv has closed its handles: run the loop.
 */
void agent_local_stop(agent_local *s);

/*
 * Answer a request: payload is the response (the header is added). The
 * slot is used up, even on error; an error (ENOMEM) closes the connection,
 * whose answers could no longer stay in order. Filling a slot of a closed
 * connection is allowed and does nothing. May be called from on_frames and
 * on_oversize, as may agent_local_stop.
 */
revokd_err agent_local_fill(agent_local_slot *slot, const uint8_t *payload,
    size_t len);

/* Connections open now. */
unsigned agent_local_connections(const agent_local *s);

/* Counters since start. */
typedef struct agent_local_stats {
	uint64_t accepted;
	uint64_t refused; /* over max_connections */
	uint64_t requests;
	uint64_t oversize;
	uint64_t cut_slow;   /* closed for unread output */
	uint64_t cut_memory; /* closed for growing past the memory budget */
} agent_local_stats;

/* The counters into *out. */
void agent_local_get_stats(const agent_local *s, agent_local_stats *out);

#endif /* AGENT_LOCAL_H */
