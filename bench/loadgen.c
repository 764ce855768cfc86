/*
 * loadgen.c: the query suite's load generator and ping-pong server (see
 * loadgen.h).
 */
#include "bench/loadgen.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench/cluster.h"

/* Bytes of answers a connection buffers; far above depth x an answer. */
#define LG_IN 4096

/* Bytes of requests a connection writes at once: depth x the longest. */
#define LG_OUT (LG_DEPTH_MAX * LG_REQUEST_MAX)

/* ------------------------------------------------------------------------ */
/* The request pool                                                         */
/* ------------------------------------------------------------------------ */

revokd_err
lg_pool_init(lg_pool *p, size_t cap)
{
	memset(p, 0, sizeof(*p));
	p->off = calloc(cap + 1, sizeof(*p->off));
	p->expect = calloc(cap, sizeof(*p->expect));
	p->cap = cap;
	if (p->off == NULL || p->expect == NULL) {
		lg_pool_free(p);
		return REVOKD_ENOMEM;
	}
	return REVOKD_OK;
}

revokd_err
lg_pool_add(lg_pool *p, const void *frame, size_t len, int expect)
{
	revokd_err err;

	if (len > LG_REQUEST_MAX || p->n == p->cap)
		return REVOKD_ETOOBIG;
	if ((err = revokd_buf_append(&p->bytes, frame, len)) != REVOKD_OK)
		return err;
	p->expect[p->n++] = expect;
	p->off[p->n] = p->bytes.len;
	return REVOKD_OK;
}

void
lg_pool_free(lg_pool *p)
{
	revokd_buf_free(&p->bytes);
	free(p->off);
	free(p->expect);
	memset(p, 0, sizeof(*p));
}

/* ------------------------------------------------------------------------ */
/* Latency histogram                                                        */
/* ------------------------------------------------------------------------ */

/*
 * Log-linear buckets of nanoseconds: exact below 64 ns, then 64 buckets per
 * power of two (within 1.6 %) up to 2^40 ns. Bounded memory whatever the
 * run's length, and cheap enough to add to on every answer.
 */
#define LG_SUB 64
#define LG_TOP_EXP 40
#define LG_BUCKETS ((LG_TOP_EXP - 5) * LG_SUB)

typedef struct lg_hist {
	uint64_t count[LG_BUCKETS];
	uint64_t n;
} lg_hist;

static unsigned
lg_hist_index(uint64_t ns)
{
	unsigned e;

	if (ns < LG_SUB)
		return (unsigned)ns;
	e = 63u - (unsigned)__builtin_clzll(ns);
	if (e >= LG_TOP_EXP)
		return LG_BUCKETS - 1;
	return (e - 5) * LG_SUB + (unsigned)((ns >> (e - 6)) & (LG_SUB - 1));
}

/* The middle of bucket i, in ns. */
static double
lg_hist_value(unsigned i)
{
	unsigned e = i / LG_SUB + 5;

	if (i < LG_SUB)
		return i;
	return (double)((uint64_t)(LG_SUB + i % LG_SUB) << (e - 6)) +
	       (double)(1ull << (e - 6)) / 2;
}

static void
lg_hist_add(lg_hist *h, uint64_t ns)
{
	h->count[lg_hist_index(ns)]++;
	h->n++;
}

/* The q-quantile (0 < q < 1) in microseconds; 0 when empty. */
static double
lg_hist_quantile_us(const lg_hist *h, double q)
{
	uint64_t rank = (uint64_t)(q * (double)h->n), seen = 0;

	for (unsigned i = 0; i < LG_BUCKETS; i++)
		if ((seen += h->count[i]) > rank)
			return lg_hist_value(i) / 1000;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

typedef struct lg_conn {
	int fd;
	size_t next;               /* pool index of the next request */
	uint64_t sent, done;       /* requests written, answers read */
	uint64_t at[LG_DEPTH_MAX]; /* write time of outstanding ones, ns */
	size_t req[LG_DEPTH_MAX];  /* and their pool index */
	uint8_t in[LG_IN];
	size_t in_len;
	uint8_t out[LG_OUT];
	size_t out_len, out_off;
	bool want_out; /* EPOLLOUT armed: the socket took only part */
} lg_conn;

/* One run's state. */
typedef struct lg_run_state {
	const lg_target *t;
	const lg_pattern *p;
	int ep;
	lg_conn *conns;
	uint64_t window_start, window_end; /* ns */
	lg_hist hist;
	uint64_t answers, mismatches;
} lg_run_state;

static uint64_t
lg_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int
lg_fail(const lg_run_state *r, const char *what)
{
	fprintf(stderr,
	    "revokd-bench: query: %s, %u connections, depth %u: %s\n",
	    r->t->name, r->p->conns, r->p->depth, what);
	return -1;
}

static int
lg_arm(lg_run_state *r, lg_conn *c, bool out)
{
	struct epoll_event ev = { .events = EPOLLIN | (out ? EPOLLOUT : 0),
		.data.ptr = c };

	c->want_out = out;
	return epoll_ctl(r->ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Write what is buffered; arm EPOLLOUT while the socket cannot take it. */
static int
lg_flush(lg_run_state *r, lg_conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off,
		    c->out_len - c->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return c->want_out ? 0 : lg_arm(r, c, true);
		if (n < 0)
			return lg_fail(r, strerror(errno));
		c->out_off += (size_t)n;
	}
	c->out_off = c->out_len = 0;
	return c->want_out ? lg_arm(r, c, false) : 0;
}

/* Top up to depth outstanding requests, in one write. */
static int
lg_top_up(lg_run_state *r, lg_conn *c, uint64_t now)
{
	const lg_pool *pool = r->t->pool;

	if (c->out_off < c->out_len)
		return 0; /* the last write is still going out */
	while (c->sent - c->done < r->p->depth) {
		size_t i = c->next, len = pool->off[i + 1] - pool->off[i];
		unsigned slot = (unsigned)(c->sent % LG_DEPTH_MAX);

		memcpy(c->out + c->out_len, pool->bytes.data + pool->off[i],
		    len);
		c->out_len += len;
		c->at[slot] = now;
		c->req[slot] = i;
		c->sent++;
		c->next = (i + 1) % pool->n;
	}
	return lg_flush(r, c);
}

/* The answer to c's oldest outstanding request, read at now. */
static int
lg_answer(lg_run_state *r, lg_conn *c, int value, uint64_t now)
{
	unsigned slot = (unsigned)(c->done % LG_DEPTH_MAX);

	if (c->done == c->sent)
		return lg_fail(r, "an answer to no request");
	if (r->t->check && value != r->t->pool->expect[c->req[slot]])
		r->mismatches++;
	if (now >= r->window_start && now < r->window_end) {
		lg_hist_add(&r->hist, now - c->at[slot]);
		r->answers++;
	}
	c->done++;
	return 0;
}

static int
lg_bad_answer(lg_run_state *r, const uint8_t *b, size_t len)
{
	char msg[128];
	int n = snprintf(msg, sizeof(msg), "an answer it cannot read:");

	for (size_t i = 0; i < len && i < 16 && n < (int)sizeof(msg) - 4; i++)
		n += snprintf(msg + n, sizeof(msg) - (size_t)n, " %02x", b[i]);
	return lg_fail(r, msg);
}

/* Read what came, take every whole answer, keep the rest. */
static int
lg_read(lg_run_state *r, lg_conn *c, uint64_t now)
{
	ssize_t n = recv(c->fd, c->in + c->in_len, LG_IN - c->in_len, 0);
	size_t pos = 0;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	if (n <= 0)
		return lg_fail(r, n == 0 ? "the server closed the connection"
		                         : strerror(errno));
	c->in_len += (size_t)n;
	for (;;) {
		int value = 0;
		ssize_t k = r->t->parse(c->in + pos, c->in_len - pos,
		    r->t->parse_arg, &value);

		if (k < 0 || (k == 0 && pos == 0 && c->in_len == LG_IN))
			return lg_bad_answer(r, c->in + pos, c->in_len - pos);
		if (k == 0)
			break;
		if (lg_answer(r, c, value, now) != 0)
			return -1;
		pos += (size_t)k;
	}
	memmove(c->in, c->in + pos, c->in_len - pos);
	c->in_len -= pos;
	return 0;
}

static int
lg_connect(lg_run_state *r, lg_conn *c, revokd_rng *rng)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = c };
	char msg[600];

	c->fd = cluster_open(r->t->path);
	if (c->fd < 0) {
		snprintf(msg, sizeof(msg), "cannot connect to %s: %s",
		    r->t->path, strerror(errno));
		return lg_fail(r, msg);
	}
	/* Each connection starts at its own place in the pool. */
	c->next = revokd_rng_below(rng, r->t->pool->n);
	if (fcntl(c->fd, F_SETFL, O_NONBLOCK) != 0 ||
	    epoll_ctl(r->ep, EPOLL_CTL_ADD, c->fd, &ev) != 0)
		return lg_fail(r, strerror(errno));
	return 0;
}

static int
lg_event(lg_run_state *r, const struct epoll_event *ev, uint64_t now)
{
	lg_conn *c = ev->data.ptr;

	if ((ev->events & (EPOLLIN | EPOLLERR | EPOLLHUP)) &&
	    lg_read(r, c, now) != 0)
		return -1;
	if ((ev->events & EPOLLOUT) && lg_flush(r, c) != 0)
		return -1;
	return now < r->window_end ? lg_top_up(r, c, now) : 0;
}

static int
lg_loop(lg_run_state *r)
{
	struct epoll_event evs[64];
	uint64_t now = lg_now_ns();

	for (unsigned i = 0; i < r->p->conns; i++)
		if (lg_top_up(r, &r->conns[i], now) != 0)
			return -1;
	while ((now = lg_now_ns()) < r->window_end) {
		int ms = (int)((r->window_end - now) / 1000000) + 1;
		int n = epoll_wait(r->ep, evs, 64, ms);

		if (n < 0 && errno != EINTR)
			return lg_fail(r, strerror(errno));
		/* A clock read per event: answers behind others wait too. */
		for (int k = 0; k < n; k++)
			if (lg_event(r, &evs[k], lg_now_ns()) != 0)
				return -1;
	}
	return 0;
}

static void
lg_result_of(const lg_run_state *r, lg_result *out)
{
	out->answers = r->answers;
	out->mismatches = r->mismatches;
	out->per_s = (double)r->answers * 1e9 /
	             (double)(r->window_end - r->window_start);
	out->p50_us = lg_hist_quantile_us(&r->hist, 0.50);
	out->p99_us = lg_hist_quantile_us(&r->hist, 0.99);
}

/* Connect every connection, then drive them through the window. */
static int
lg_run_conns(lg_run_state *r)
{
	revokd_rng rng;

	revokd_rng_seed(&rng, r->p->seed);
	for (unsigned i = 0; i < r->p->conns; i++)
		r->conns[i].fd = -1;
	for (unsigned i = 0; i < r->p->conns; i++)
		if (lg_connect(r, &r->conns[i], &rng) != 0)
			return -1;
	r->window_start = lg_now_ns() + (uint64_t)(r->p->warmup_s * 1e9);
	r->window_end = r->window_start + (uint64_t)(r->p->seconds * 1e9);
	return lg_loop(r);
}

int
lg_run(const lg_target *t, const lg_pattern *p, lg_result *out)
{
	lg_run_state *r;
	int rc = -1;

	if (p->conns == 0 || p->conns > 1000 || p->depth == 0 ||
	    p->depth > LG_DEPTH_MAX || t->pool->n == 0) {
		fprintf(stderr, "revokd-bench: query: %s: bad pattern\n",
		    t->name);
		return -1;
	}
	/* The state is large (the histogram, the buffers): on the heap. */
	if ((r = calloc(1, sizeof(*r))) == NULL ||
	    (r->conns = calloc(p->conns, sizeof(*r->conns))) == NULL ||
	    (r->ep = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		fprintf(stderr, "revokd-bench: query: %s: %s\n", t->name,
		    strerror(errno));
		goto out;
	}
	r->t = t;
	r->p = p;
	if ((rc = lg_run_conns(r)) == 0)
		lg_result_of(r, out);
	for (unsigned i = 0; i < p->conns; i++)
		if (r->conns[i].fd >= 0)
			close(r->conns[i].fd);
	close(r->ep);
out:
	if (r != NULL)
		free(r->conns);
	free(r);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Child processes                                                          */
/* ------------------------------------------------------------------------ */

void
lg_child_detach(void)
{
	/* The parent's guards would kill its other children: not ours. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* ------------------------------------------------------------------------ */
/* The ping-pong server                                                     */
/* ------------------------------------------------------------------------ */

ssize_t
lg_parse_fixed(const uint8_t *buf, size_t len, const void *arg, int *value)
{
	size_t size = *(const size_t *)arg;

	(void)buf;
	*value = 0;
	return len >= size ? (ssize_t)size : 0;
}

/* What the server owes one connection. */
typedef struct lg_pp_conn {
	size_t partial; /* bytes of a request not yet whole */
	uint64_t owed;  /* reply bytes not yet written */
	bool want_out;
} lg_pp_conn;

typedef struct lg_pp {
	int ep;
	size_t req_len, reply_len;
	lg_pp_conn *conn; /* by descriptor */
	int max_fd;
} lg_pp;

/* Replies are zeros: their content is never looked at. */
static const uint8_t lg_pp_zeros[16384];

static void
lg_pp_close(lg_pp *s, int fd)
{
	epoll_ctl(s->ep, EPOLL_CTL_DEL, fd, NULL);
	close(fd);
}

static void
lg_pp_flush(lg_pp *s, int fd)
{
	lg_pp_conn *c = &s->conn[fd];
	struct epoll_event ev = { .data.fd = fd };

	while (c->owed > 0) {
		size_t chunk = c->owed < sizeof(lg_pp_zeros)
		                   ? (size_t)c->owed
		                   : sizeof(lg_pp_zeros);
		ssize_t n = send(fd, lg_pp_zeros, chunk, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno != EAGAIN) {
			lg_pp_close(s, fd);
			return;
		}
		if (n < 0)
			break;
		c->owed -= (uint64_t)n;
	}
	if ((c->owed > 0) != c->want_out) {
		c->want_out = c->owed > 0;
		ev.events = EPOLLIN | (c->want_out ? EPOLLOUT : 0);
		epoll_ctl(s->ep, EPOLL_CTL_MOD, fd, &ev);
	}
}

static void
lg_pp_read(lg_pp *s, int fd)
{
	static uint8_t buf[65536];
	lg_pp_conn *c = &s->conn[fd];
	ssize_t n = recv(fd, buf, sizeof(buf), 0);

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		lg_pp_close(s, fd);
		return;
	}
	c->partial += (size_t)n;
	c->owed += (uint64_t)(c->partial / s->req_len) * s->reply_len;
	c->partial %= s->req_len;
	lg_pp_flush(s, fd);
}

static void
lg_pp_accept(lg_pp *s, int lfd)
{
	int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	if (fd < 0)
		return;
	if (fd >= s->max_fd) {
		close(fd); /* more than the generator ever opens */
		return;
	}
	memset(&s->conn[fd], 0, sizeof(s->conn[fd]));
	epoll_ctl(s->ep, EPOLL_CTL_ADD, fd, &ev);
}

/* The child's loop; it ends when the process is killed. */
static void
lg_pp_serve(int lfd, size_t req_len, size_t reply_len)
{
	lg_pp s = { .req_len = req_len,
		.reply_len = reply_len,
		.max_fd = 4096 };
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = lfd }, evs[64];

	s.conn = calloc((size_t)s.max_fd, sizeof(*s.conn));
	s.ep = epoll_create1(EPOLL_CLOEXEC);
	if (s.conn == NULL || s.ep < 0 ||
	    epoll_ctl(s.ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
		return;
	for (;;) {
		int n = epoll_wait(s.ep, evs, 64, -1);

		for (int k = 0; k < n; k++) {
			int fd = evs[k].data.fd;

			if (fd == lfd)
				lg_pp_accept(&s, lfd);
			else if (evs[k].events & EPOLLOUT)
				lg_pp_flush(&s, fd);
			else
				lg_pp_read(&s, fd);
		}
	}
}

/* A listening Unix socket at path, or -1. */
static int
lg_listen(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sa.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    listen(fd, SOMAXCONN) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

pid_t
lg_pingpong_start(const char *path, size_t req_len, size_t reply_len)
{
	/* Listening before the fork: the socket answers once we return. */
	int lfd = lg_listen(path);
	pid_t pid;

	if (lfd < 0 || req_len == 0 || (pid = fork()) < 0) {
		fprintf(stderr,
		    "revokd-bench: query: ping-pong server at %s: "
		    "%s\n",
		    path, strerror(errno));
		if (lfd >= 0)
			close(lfd);
		return -1;
	}
	if (pid == 0) {
		lg_child_detach();
		lg_pp_serve(lfd, req_len, reply_len);
		_exit(1);
	}
	setpgid(pid, pid);
	close(lfd);
	return pid;
}
