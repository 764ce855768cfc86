/*
 * loadgen.h: the query suite's load generator, and the bare ping-pong
 * server it measures as the floor.
 *
 * Theory. One thread drives every connection through one epoll set, so the
 * generator takes one core and the server under test the other. Requests
 * are encoded before the run (a pool, cycled through) and answers are read
 * by a small parser per protocol, so the generator does no encoding and
 * allocates nothing while it runs. Each connection keeps up to `depth`
 * requests outstanding: whenever answers arrive, it tops up to depth in
 * one write (closed loop). Every answer is compared with what its request
 * expects; latency is the time from the write of a request to the read
 * that completed its answer.
 */
#ifndef BENCH_LOADGEN_H
#define BENCH_LOADGEN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/revokd.h"

/* Most requests a connection keeps outstanding. */
#define LG_DEPTH_MAX 64

/* Longest request frame a pool takes, in bytes. */
#define LG_REQUEST_MAX 256

/*
 * Reads one answer at buf, of which len bytes are buffered: the bytes the
 * answer takes, 0 when it is not whole yet, -1 when it is not an answer of
 * the protocol. *value is what it says (compared with what the request
 * expects). arg is the target's parse_arg.
 */
typedef ssize_t (
    *lg_parse_fn)(const uint8_t *buf, size_t len, const void *arg, int *value);

/*
 * Requests encoded back to back: request i is bytes [off[i], off[i + 1])
 * of bytes.data and should be answered with expect[i].
 */
typedef struct lg_pool {
	revokd_buf bytes;
	size_t *off; /* n + 1 */
	int *expect;
	size_t n, cap;
} lg_pool;

/* An empty pool with room for cap requests; REVOKD_ENOMEM. */
revokd_err lg_pool_init(lg_pool *p, size_t cap);

/*
 * Append one request frame (at most LG_REQUEST_MAX bytes) and the answer
 * value it expects. REVOKD_ETOOBIG when it is too long or the pool full.
 */
revokd_err lg_pool_add(lg_pool *p, const void *frame, size_t len, int expect);

/* Free the pool's memory. */
void lg_pool_free(lg_pool *p);

/* A server to drive: its socket, its requests and how to read answers. */
typedef struct lg_target {
	const char *name; /* for metrics and errors: "revokd", "redis" */
	const char *path; /* Unix socket */
	const lg_pool *pool;
	lg_parse_fn parse;
	const void *parse_arg;
	int check; /* compare answers with the pool's expect[] */
} lg_target;

/* How to drive it. */
typedef struct lg_pattern {
	unsigned conns;  /* connections, at most 1000 */
	unsigned depth;  /* outstanding requests each, 1..LG_DEPTH_MAX */
	double warmup_s; /* run, uncounted, before the window */
	double seconds;  /* the timed window */
	uint64_t seed;   /* where in the pool each connection starts */
} lg_pattern;

/* What a run measured. */
typedef struct lg_result {
	double per_s;  /* answers per second in the window */
	double p50_us; /* latency of the window's answers */
	double p99_us;
	uint64_t answers;    /* in the window */
	uint64_t mismatches; /* answers, in the whole run, not as expected */
} lg_result;

/*
 * Connect, warm up, measure, close. 0, or -1 after a line on stderr that
 * names the target and the problem (a connection refused or closed, an
 * answer the parser cannot read). Wrong answers are counted, not fatal.
 */
int lg_run(const lg_target *t, const lg_pattern *p, lg_result *out);

/*
 * In a child just forked, before it serves or execs: a process group of
 * its own (a terminal's ^C reaches only the parent, which stops it), the
 * default signal handlers, and SIGKILL when the parent dies, however it
 * dies. Children must leave with _exit: the atexit handlers are the
 * parent's.
 */
void lg_child_detach(void);

/*
 * Start the ping-pong server on a Unix socket at path, in a child process
 * of its own process group (killed when this process dies): for every
 * req_len bytes it reads, it writes reply_len bytes, parsing nothing. Its
 * pid once it listens, or -1 after a line on stderr. Stop it by killing
 * the process group.
 */
pid_t lg_pingpong_start(const char *path, size_t req_len, size_t reply_len);

/* The ping-pong server's answers: parse_arg points at the reply size. */
ssize_t lg_parse_fixed(const uint8_t *buf, size_t len, const void *arg,
    int *value);

#endif /* BENCH_LOADGEN_H */
