/*
 * httpd.h: a small, bounded HTTP/1.1 server on a libuv loop, behind the
 * agent's /metrics and /healthz. It has one job: accept TCP connections on
 * one address, read one request head, hand (method, path) to the handler,
 * write its answer with "Connection: close", and close.
 *
 * Theory of protection. The endpoint must not be a way to take the agent's
 * descriptors or its loop, whatever clients do:
 *   - at most max_connections are open at once; a new connection beyond
 *     them closes the one that has waited longest for its request (or, when
 *     all are being answered, is closed itself); either is counted as
 *     refused. The ones open are gone by their deadline at the latest, so
 *     idle connections cannot keep a client out, and a client refused
 *     while others hold the slots is served when it tries again after them;
 *   - every connection is closed request_timeout_ms after its accept at the
 *     latest, answered or not (counted as a timeout when the request had
 *     not arrived whole): the deadline covers reading and writing;
 *   - a request head (request line and headers) over max_head bytes is
 *     answered 431 and the connection closed; a request line that does not
 *     parse is answered 400;
 *   - a failing accept (out of descriptors, mostly) stops the watching of
 *     the listening socket, which stays readable while the connection waits
 *     in the kernel's backlog: accepting again is tried every
 *     accept_retry_ms, not in a busy loop, and the connection that waited
 *     is served once descriptors are back. One "accept_failed" log line per
 *     run of failures.
 * Headers and request bodies are not read: a client that sends a body may
 * see its connection reset after the answer. Only one request is served
 * per connection (no keep-alive, no pipelining).
 *
 * Everything runs on the loop's thread; the process must ignore SIGPIPE.
 */
#ifndef AGENT_HTTPD_H
#define AGENT_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "common/revokd.h"

/* The limits used when the configuration leaves them at 0. */
#define AGENT_HTTPD_MAX_CONNECTIONS 32u
#define AGENT_HTTPD_REQUEST_TIMEOUT_MS 5000u
#define AGENT_HTTPD_MAX_HEAD ((size_t)8 << 10)
#define AGENT_HTTPD_ACCEPT_RETRY_MS 100u

/* A server. */
typedef struct agent_httpd agent_httpd;

/* What the handler answers. The server owns body and frees it. */
typedef struct agent_httpd_reply {
	unsigned status;          /* 200, 404, 405, 503, ... */
	const char *content_type; /* must outlive the handler's call */
	revokd_buf body;          /* the handler appends; sent unless HEAD */
} agent_httpd_reply;

/*
 * Answer a request: method ("GET", "HEAD", any token) and path (the request
 * target without its query) are valid during the call only. The reply
 * comes zeroed but for status 500 and a text/plain content type. A 405
 * reply gets "Allow: GET, HEAD"; a HEAD request gets the head of the reply
 * only, with the body's Content-Length.
 */
typedef void (*agent_httpd_handler)(void *arg, const char *method,
    const char *path, agent_httpd_reply *reply);

/* What the server is told by its owner. Limits at 0 take the defaults. */
typedef struct agent_httpd_config {
	const char *addr; /* "HOST:PORT" or "[V6]:PORT"; PORT 0: any free */
	unsigned max_connections;
	unsigned request_timeout_ms; /* from accept to close, at most */
	size_t max_head;             /* bytes of request line and headers */
	unsigned accept_retry_ms;    /* after a failed accept */
	agent_httpd_handler handler;
	void *arg;
	/* Something worth a log line ("accept_failed", reason). May be NULL. */
	void (*log)(void *arg, const char *event, const char *detail);
} agent_httpd_config;

/*
 * Listen on c->addr (a host name takes the first of its addresses that
 * binds). On failure err holds "ADDR: reason" and no handle is left open.
 */
revokd_err agent_httpd_start(uv_loop_t *loop, const agent_httpd_config *c,
    agent_httpd **out, char *err, size_t err_len);

/*
 * Stop listening and close every connection; the handler is not called
 * again. The server is freed once libuv has closed its handles: run the
 * loop. NULL-safe.
 */
void agent_httpd_stop(agent_httpd *h);

/* The port listened on (the one picked, when c->addr asked for port 0). */
uint16_t agent_httpd_port(const agent_httpd *h);

/* Counters since start. */
typedef struct agent_httpd_stats {
	uint64_t accepted;     /* connections taken in, refused ones not */
	uint64_t refused;      /* closed at once at max_connections */
	uint64_t requests;     /* handed to the handler */
	uint64_t bad_requests; /* answered 400 */
	uint64_t oversize;     /* heads over max_head, answered 431 */
	uint64_t timeouts;     /* closed at the deadline, request not whole */
	uint64_t accept_failures;
	unsigned open; /* connections open now */
} agent_httpd_stats;

/* The counters into *out. */
void agent_httpd_get_stats(const agent_httpd *h, agent_httpd_stats *out);

#endif /* AGENT_HTTPD_H */
