/*
 * test_agent_httpd.c: the bounded HTTP server (agent/httpd.h) on a private
 * libuv loop on 127.0.0.1, port 0, with real TCP clients in this same
 * thread. Every wait runs the loop (UV_RUN_NOWAIT) and polls in 1 ms steps
 * until its condition or a time limit, so a broken server fails a test
 * instead of hanging it; teardown stops every server a test started, and
 * kills the child of the out-of-descriptors test, also after a failure.
 *
 * The handler answers like metrics.c: GET or HEAD of /hello gives 200
 * "hello, world\n", another method 405, another path 404.
 *
 * Checked: answers and their "Connection: close"; 404, 405 and 400; 40
 * idle connections, of which 8 past the cap of 32 are closed at once and
 * the rest at their deadline, after which a GET is answered; a request
 * trickled slower than its deadline (200 ms here) is cut there; heads over
 * 8 KiB get 431; and, in a child with a lowered RLIMIT_NOFILE and every
 * descriptor taken, a server that cannot accept does not spin (its CPU
 * time over 1 s while a client keeps connecting) and serves the waiting
 * clients once descriptors return. Labelled "clocked": the deadlines and
 * the CPU share are judged on the clock (scripts/memcheck leaves it out).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>
#include <uv.h>

#include "agent/httpd.h"
#include "testutil.h"

#define MAX_CLIENTS 64
#define MAX_SERVERS 4
#define WAIT_MS 3000
#define HELLO "hello, world\n"

typedef struct fixture {
	uv_loop_t loop;
	agent_httpd_config cfg;
	agent_httpd *servers[MAX_SERVERS]; /* servers[0]: the one tested */
	uint16_t port;
	int fds[MAX_CLIENTS];
	size_t nfds;
	pid_t child; /* of the out-of-descriptors test, until reaped */
	/* The handler's and the log's notes. */
	unsigned handled;
	char last_path[256];
	unsigned accept_failed_logs;
} fixture;

/* ------------------------------------------------------------------------ */
/* Handler, loop, clients                                                   */
/* ------------------------------------------------------------------------ */

static void
on_request(void *arg, const char *method, const char *path,
    agent_httpd_reply *r)
{
	fixture *f = arg;
	const char *text = HELLO;

	f->handled++;
	snprintf(f->last_path, sizeof(f->last_path), "%s", path);
	r->content_type = "text/plain; charset=utf-8";
	if (strcmp(path, "/hello") != 0) {
		r->status = 404;
		text = "not found\n";
	} else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
		r->status = 405;
		text = "no\n";
	} else {
		r->status = 200;
	}
	(void)revokd_buf_append(&r->body, text, strlen(text));
}

static void
on_log(void *arg, const char *event, const char *detail)
{
	fixture *f = arg;

	(void)detail;
	if (strcmp(event, "accept_failed") == 0)
		f->accept_failed_logs++;
}

static uint64_t
now_ms(void)
{
	return uv_hrtime() / 1000000;
}

/* Run what is ready, then wait up to 1 ms for more. */
static void
step(fixture *f)
{
	struct pollfd pfd = { uv_backend_fd(&f->loop), POLLIN, 0 };

	uv_run(&f->loop, UV_RUN_NOWAIT);
	poll(&pfd, 1, 1);
	uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void
pump(fixture *f, unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (now_ms() < end)
		step(f);
}

static agent_httpd_stats
stats(fixture *f)
{
	agent_httpd_stats st;

	agent_httpd_get_stats(f->servers[0], &st);
	return st;
}

/* Run the loop until the server has n connections open. */
static bool
wait_open(fixture *f, unsigned n, unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (stats(f).open != n && now_ms() < end)
		step(f);
	return stats(f).open == n;
}

/* A connected TCP client of 127.0.0.1:port (non-blocking). */
static int
client_connect(fixture *f, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
		.sin_port = htons(port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	uint64_t end = now_ms() + WAIT_MS;
	int err = 0;
	socklen_t len = sizeof(err);

	assert_true(fd >= 0);
	assert_true(f->nfds < MAX_CLIENTS);
	f->fds[f->nfds++] = fd;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
		return fd;
	assert_int_equal(errno, EINPROGRESS);
	for (;;) {
		struct pollfd pfd = { fd, POLLOUT, 0 };

		if (poll(&pfd, 1, 0) == 1)
			break;
		assert_true(now_ms() < end);
		step(f);
	}
	assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len), 0);
	assert_int_equal(err, 0);
	return fd;
}

static void
client_close(fixture *f, int fd)
{
	for (size_t i = 0; i < f->nfds; i++)
		if (f->fds[i] == fd) {
			close(fd);
			f->fds[i] = f->fds[--f->nfds];
			return;
		}
	fail_msg("fd %d is not a client", fd);
}

/* Send buf, running the loop while the socket is full; false on error. */
static bool
client_send(fixture *f, int fd, const void *buf, size_t len)
{
	const char *p = buf;
	uint64_t end = now_ms() + WAIT_MS;

	while (len > 0 && now_ms() < end) {
		ssize_t w = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w > 0) {
			p += w;
			len -= (size_t)w;
		} else if (w < 0 && errno != EAGAIN && errno != EINTR) {
			return false;
		} else {
			step(f);
		}
	}
	return len == 0;
}

/*
 * Read into buf (NUL-ended) until the connection ends, running the loop;
 * the bytes read. *how: 0 at end of input, else the error (ETIMEDOUT when
 * it did not end within ms).
 */
static size_t
client_read_all(fixture *f, int fd, char *buf, size_t cap, unsigned ms,
    int *how)
{
	uint64_t end = now_ms() + ms;
	size_t got = 0;

	*how = ETIMEDOUT;
	while (now_ms() < end) {
		ssize_t r = recv(fd, buf + got, cap - 1 - got, MSG_DONTWAIT);

		if (r > 0 && (got += (size_t)r) < cap - 1)
			continue;
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR)) {
			*how = r == 0 ? 0 : errno;
			break;
		}
		step(f);
	}
	buf[got] = '\0';
	return got;
}

/* Nothing to read and not closed: the connection is open and waiting. */
static bool
client_open(int fd)
{
	char b;

	return recv(fd, &b, 1, MSG_DONTWAIT) < 0 && errno == EAGAIN;
}

/* Send request on a new connection; the whole answer, ended by EOF. */
static void
exchange(fixture *f, const char *request, char *resp, size_t cap)
{
	int fd = client_connect(f, f->port), how;

	assert_true(client_send(f, fd, request, strlen(request)));
	client_read_all(f, fd, resp, cap, WAIT_MS, &how);
	assert_int_equal(how, 0);
	client_close(f, fd);
}

static int
status_of(const char *resp)
{
	int status = 0;

	return sscanf(resp, "HTTP/1.1 %d ", &status) == 1 ? status : 0;
}

/* The answer's status, checking its "Connection: close". */
static int
request_status(fixture *f, const char *request)
{
	char resp[4096];

	exchange(f, request, resp, sizeof(resp));
	assert_non_null(strstr(resp, "\r\nConnection: close\r\n"));
	return status_of(resp);
}

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */
/* ------------------------------------------------------------------------ */

static int
setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	f->cfg = (agent_httpd_config){ .addr = "127.0.0.1:0",
		.handler = on_request,
		.arg = f,
		.log = on_log };
	*state = f;
	return 0;
}

/* Stop every server and run the loop until every handle has closed. */
static bool
stop_servers(fixture *f)
{
	uint64_t end = now_ms() + WAIT_MS;

	for (size_t i = 0; i < MAX_SERVERS; i++) {
		agent_httpd_stop(f->servers[i]);
		f->servers[i] = NULL;
	}
	while (uv_loop_alive(&f->loop) && now_ms() < end)
		step(f);
	return !uv_loop_alive(&f->loop);
}

/* Also after a failed test: nothing may leak, whatever state it left. */
static int
teardown(void **state)
{
	fixture *f = *state;
	bool closed = stop_servers(f);

	if (f->child > 0) {
		kill(f->child, SIGKILL);
		waitpid(f->child, NULL, 0);
	}
	for (size_t i = 0; i < f->nfds; i++)
		close(f->fds[i]);
	if (!closed || uv_loop_close(&f->loop) != 0)
		fprintf(stderr, "teardown: the loop still has handles\n");
	free(f);
	return closed ? 0 : -1;
}

/* Start servers[i] with f->cfg; the first one's port is f->port. */
static void
start(fixture *f)
{
	char err[256] = "";

	assert_int_equal(agent_httpd_start(&f->loop, &f->cfg, &f->servers[0],
	                     err, sizeof(err)),
	    REVOKD_OK);
	f->port = agent_httpd_port(f->servers[0]);
	assert_int_not_equal(f->port, 0);
}

/* ------------------------------------------------------------------------ */
/* Answers                                                                  */
/* ------------------------------------------------------------------------ */

/* The handler's body, its length and type, then the connection closes. */
static void
test_get_answered(void **state)
{
	fixture *f = *state;
	char resp[4096];
	const char *body;

	start(f);
	exchange(f, "GET /hello?x=1 HTTP/1.1\r\nHost: t\r\n\r\n", resp,
	    sizeof(resp));
	assert_int_equal(status_of(resp), 200);
	assert_non_null(strstr(resp, "\r\nConnection: close\r\n"));
	assert_non_null(
	    strstr(resp, "\r\nContent-Type: text/plain; charset=utf-8\r\n"));
	assert_non_null(strstr(resp, "\r\nContent-Length: 13\r\n"));
	assert_non_null(body = strstr(resp, "\r\n\r\n"));
	assert_string_equal(body + 4, HELLO);
	assert_string_equal(f->last_path, "/hello");
	/* HEAD: the same head, no body. */
	exchange(f, "HEAD /hello HTTP/1.1\r\n\r\n", resp, sizeof(resp));
	assert_int_equal(status_of(resp), 200);
	assert_non_null(strstr(resp, "\r\nContent-Length: 13\r\n"));
	assert_non_null(body = strstr(resp, "\r\n\r\n"));
	assert_string_equal(body + 4, "");
	/* HTTP/1.0 and bare LF line ends are fine too. */
	assert_int_equal(request_status(f, "GET /hello HTTP/1.0\n\n"), 200);
	assert_int_equal(stats(f).requests, 3);
	assert_int_equal(stats(f).accepted, 3);
	assert_true(wait_open(f, 0, WAIT_MS));
}

static void
test_not_found_not_allowed_bad_request(void **state)
{
	fixture *f = *state;
	static const char *const bad[] = {
		"GARBAGE\r\n\r\n",
		"GET /hello\r\n\r\n",
		"GET hello HTTP/1.1\r\n\r\n",
		"GET /a b HTTP/1.1\r\n\r\n",
		"GET  /hello HTTP/1.1\r\n\r\n",
		"GET /hello HTTP/2.0\r\n\r\n",
		"GET /hello HTTP/1.1x\r\n\r\n",
		"G(T /hello HTTP/1.1\r\n\r\n",
		"GET /he\x01llo HTTP/1.1\r\n\r\n",
		"\r\n\r\n",
	};
	char resp[4096];

	start(f);
	assert_int_equal(request_status(f, "GET /nothing HTTP/1.1\r\n\r\n"),
	    404);
	assert_int_equal(request_status(f, "POST /nothing HTTP/1.1\r\n\r\n"),
	    404);
	exchange(f, "POST /hello HTTP/1.1\r\nContent-Length: 0\r\n\r\n", resp,
	    sizeof(resp));
	assert_int_equal(status_of(resp), 405);
	assert_non_null(strstr(resp, "\r\nAllow: GET, HEAD\r\n"));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		exchange(f, bad[i], resp, sizeof(resp));
		assert_int_equal(status_of(resp), 400);
		assert_non_null(strstr(resp, "\r\nConnection: close\r\n"));
	}
	assert_int_equal(stats(f).bad_requests, sizeof(bad) / sizeof(bad[0]));
	assert_int_equal(f->handled, 3);
}

/* ------------------------------------------------------------------------ */
/* Limits                                                                   */
/* ------------------------------------------------------------------------ */

/*
 * 40 idle connections: 32 held, each one past the cap closing the oldest
 * (the first 8 closed at once); a good client that comes while the cap is
 * full takes the oldest's place and is answered at once; at their deadline
 * the rest are closed.
 */
static void
test_connection_cap(void **state)
{
	fixture *f = *state;
	uint64_t t0 = now_ms();
	char resp[256];
	int fds[40], how, late;

	f->cfg.request_timeout_ms = 1500;
	start(f);
	for (int i = 0; i < 40; i++) {
		fds[i] = client_connect(f, f->port);
		/* Accepted in order, so that "oldest" is fds[0], fds[1]... */
		for (uint64_t end = now_ms() + WAIT_MS;
		     stats(f).accepted < (uint64_t)i + 1 && now_ms() < end;)
			step(f);
	}
	assert_true(wait_open(f, 32, WAIT_MS));
	assert_int_equal(stats(f).refused, 8);
	assert_int_equal(stats(f).accepted, 40);
	for (int i = 0; i < 8; i++) {
		assert_int_equal(
		    client_read_all(f, fds[i], resp, sizeof(resp), 500, &how),
		    0);
		assert_true(how == 0 || how == ECONNRESET);
	}
	/* Closed at once: long before the held ones' deadline. */
	assert_true(now_ms() - t0 < 1000);
	for (int i = 8; i < 40; i++)
		assert_true(client_open(fds[i]));
	late = client_connect(f, f->port);
	assert_true(client_send(f, late, "GET /hello HTTP/1.1\r\n\r\n", 23));
	client_read_all(f, late, resp, sizeof(resp), 500, &how);
	assert_int_equal(how, 0);
	assert_int_equal(status_of(resp), 200);
	assert_true(now_ms() - t0 < 1500);
	assert_int_equal(stats(f).refused, 9);
	assert_false(client_open(fds[8]));
	/* The deadline closes the rest. */
	assert_true(wait_open(f, 0, WAIT_MS));
	assert_int_equal(stats(f).timeouts, 31);
	for (int i = 9; i < 40; i++) {
		client_read_all(f, fds[i], resp, sizeof(resp), 500, &how);
		assert_int_equal(how, 0);
	}
	assert_int_equal(request_status(f, "GET /hello HTTP/1.1\r\n\r\n"), 200);
}

/* A request trickled slower than the deadline is cut there, unanswered. */
static void
test_slow_request_cut_at_deadline(void **state)
{
	fixture *f = *state;
	const char *line = "GET /hello HTTP/1.1\r\n";
	char resp[256];
	uint64_t t0, cut = 0;
	int fd, how;

	f->cfg.request_timeout_ms = 200;
	start(f);
	t0 = now_ms();
	fd = client_connect(f, f->port);
	assert_true(client_send(f, fd, line, strlen(line)));
	/* One header byte every 20 ms, for at most 2 s. */
	while (now_ms() - t0 < 2000 && cut == 0) {
		ssize_t r;

		pump(f, 20);
		r = recv(fd, resp, sizeof(resp), MSG_DONTWAIT);
		assert_true(r <= 0);
		if (r == 0 || (r < 0 && errno != EAGAIN) ||
		    send(fd, "X", 1, MSG_DONTWAIT | MSG_NOSIGNAL) != 1)
			cut = now_ms();
	}
	assert_int_not_equal(cut, 0);
	assert_in_range(cut - t0, 180, 1000);
	assert_int_equal(stats(f).timeouts, 1);
	assert_int_equal(stats(f).requests, 0);
	client_read_all(f, fd, resp, sizeof(resp), 500, &how);
	assert_int_equal(status_of(resp), 0);
	/* A request that comes whole is answered, deadline or not. */
	assert_int_equal(request_status(f, "GET /hello HTTP/1.1\r\n\r\n"), 200);
	assert_int_equal(stats(f).timeouts, 1);
}

/* "GET /hello HTTP/1.1\r\nX-Pad: aaa...": len bytes, ended by end. */
static char *
padded_head(size_t len, const char *end)
{
	const char *start = "GET /hello HTTP/1.1\r\nX-Pad: ";
	char *h = malloc(len + 1);

	assert_non_null(h);
	assert_true(len > strlen(start) + strlen(end));
	memset(h, 'a', len);
	memcpy(h, start, strlen(start));
	memcpy(h + len - strlen(end), end, strlen(end));
	h[len] = '\0';
	return h;
}

/* A head of 8 KiB is answered; one byte more gets 431; a flood is cut. */
static void
test_oversize_head_refused(void **state)
{
	fixture *f = *state;
	char *ok = padded_head(AGENT_HTTPD_MAX_HEAD, "\r\n\r\n");
	char *over = padded_head(AGENT_HTTPD_MAX_HEAD + 1, "a");
	char *flood = padded_head(64 << 10, "a");
	char resp[4096];
	int fd, how, status;

	start(f);
	status = request_status(f, ok);
	free(ok);
	assert_int_equal(status, 200);
	exchange(f, over, resp, sizeof(resp));
	free(over);
	assert_int_equal(status_of(resp), 431);
	assert_non_null(strstr(resp, "\r\nConnection: close\r\n"));
	/* More than the server reads: 431 or a reset, at once either way. */
	fd = client_connect(f, f->port);
	(void)client_send(f, fd, flood, strlen(flood));
	free(flood);
	client_read_all(f, fd, resp, sizeof(resp), 1000, &how);
	assert_true(how == 0 || how == ECONNRESET || how == EPIPE);
	assert_true(status_of(resp) == 431 || status_of(resp) == 0);
	assert_int_equal(stats(f).oversize, 2);
	assert_int_equal(stats(f).requests, 1);
}

/* ------------------------------------------------------------------------ */
/* Starting                                                                 */
/* ------------------------------------------------------------------------ */

/* Whether this host can listen on [::1] at all. */
static bool
ipv6_loopback(void)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6,
		.sin6_addr = IN6ADDR_LOOPBACK_INIT };
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;

	if (fd >= 0)
		close(fd);
	return ok;
}

static void
test_addresses_and_start_errors(void **state)
{
	fixture *f = *state;
	agent_httpd *none = NULL;
	char addr[64], err[256] = "", want[128];

	start(f);
	/* The port taken: "ADDR: reason". */
	snprintf(addr, sizeof(addr), "127.0.0.1:%u", f->port);
	f->cfg.addr = addr;
	assert_int_not_equal(
	    agent_httpd_start(&f->loop, &f->cfg, &none, err, sizeof(err)),
	    REVOKD_OK);
	assert_null(none);
	snprintf(want, sizeof(want), "%s: %s", addr, strerror(EADDRINUSE));
	assert_string_equal(err, want);
	f->cfg.addr = "127.0.0.1";
	assert_int_equal(
	    agent_httpd_start(&f->loop, &f->cfg, &none, err, sizeof(err)),
	    REVOKD_EINVAL);
	assert_string_equal(err, "127.0.0.1: want HOST:PORT or [V6]:PORT");
	/* A host name, and a bracketed IPv6 address. */
	f->cfg.addr = "localhost:0";
	assert_int_equal(agent_httpd_start(&f->loop, &f->cfg, &f->servers[1],
	                     err, sizeof(err)),
	    REVOKD_OK);
	if (ipv6_loopback()) {
		f->cfg.addr = "[::1]:0";
		assert_int_equal(agent_httpd_start(&f->loop, &f->cfg,
		                     &f->servers[2], err, sizeof(err)),
		    REVOKD_OK);
		assert_int_not_equal(agent_httpd_port(f->servers[2]), 0);
	}
	/* The first still answers. */
	assert_int_equal(request_status(f, "GET /hello HTTP/1.1\r\n\r\n"), 200);
}

/* ------------------------------------------------------------------------ */
/* Out of descriptors (in a child)                                          */
/* ------------------------------------------------------------------------ */

/* What the child reports after its second of exhaustion. */
typedef struct exhaustion_report {
	uint64_t cpu_us, wall_us;
	uint64_t accept_failures;
	unsigned logs;
	unsigned fillers; /* descriptors it had taken */
} exhaustion_report;

static void
child_stop_loop(uv_timer_t *t)
{
	uv_stop(t->loop);
}

static void
child_control_readable(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	uv_stop(p->loop);
}

static void
child_handle_closed(uv_handle_t *h)
{
	(void)h;
}

/* Take every descriptor under a lowered limit; how many were taken. */
static unsigned
child_exhaust(int *fillers, unsigned cap)
{
	struct rlimit rl;
	unsigned n = 0;
	int fd;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		_exit(10);
	rl.rlim_cur = 128;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		_exit(11);
	while (n < cap && (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		fillers[n++] = fd;
	if (errno != EMFILE)
		_exit(12);
	return n;
}

/*
 * The child: a server, then 1 s with every descriptor taken (reported on
 * status_fd), then descriptors back until control_fd is closed. Exits
 * through _exit only, never back into cmocka.
 */
static void
child_main(fixture *f, int status_fd, int control_fd)
{
	uv_loop_t loop;
	uv_timer_t timer;
	uv_poll_t control;
	agent_httpd *h = NULL;
	agent_httpd_stats st;
	exhaustion_report rep = { 0 };
	int fillers[128];
	uint64_t t0;

	f->accept_failed_logs = 0;
	if (uv_loop_init(&loop) != 0 ||
	    agent_httpd_start(&loop, &f->cfg, &h, NULL, 0) != REVOKD_OK)
		_exit(2);
	f->port = agent_httpd_port(h);
	uv_timer_init(&loop, &timer);
	uv_poll_init(&loop, &control, control_fd);
	rep.fillers = child_exhaust(fillers, 128);
	if (write(status_fd, &f->port, sizeof(f->port)) != sizeof(f->port))
		_exit(3);
	t0 = uv_hrtime();
	rep.cpu_us = tu_cpu_us_self();
	uv_update_time(&loop);
	uv_timer_start(&timer, child_stop_loop, 1000, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	rep.cpu_us = tu_cpu_us_self() - rep.cpu_us;
	rep.wall_us = (uv_hrtime() - t0) / 1000;
	agent_httpd_get_stats(h, &st);
	rep.accept_failures = st.accept_failures;
	rep.logs = f->accept_failed_logs;
	for (unsigned i = 0; i < rep.fillers; i++)
		close(fillers[i]);
	if (write(status_fd, &rep, sizeof(rep)) != sizeof(rep))
		_exit(4);
	/* Serve until the parent closes control_fd, 10 s at most. */
	uv_poll_start(&control, UV_READABLE | UV_DISCONNECT,
	    child_control_readable);
	uv_update_time(&loop);
	uv_timer_start(&timer, child_stop_loop, 10000, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	agent_httpd_stop(h);
	uv_close((uv_handle_t *)&timer, child_handle_closed);
	uv_close((uv_handle_t *)&control, child_handle_closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	_exit(uv_loop_close(&loop) == 0 ? 0 : 5);
}

static void
test_out_of_descriptors_does_not_spin(void **state)
{
	fixture *f = *state;
	const char *get = "GET /hello HTTP/1.1\r\n\r\n";
	exhaustion_report rep;
	int status_pipe[2], control_pipe[2], waiting[20], how, exit_status;
	unsigned nwaiting = 0;
	char resp[1024];
	uint64_t t0;

	assert_int_equal(pipe2(status_pipe, O_CLOEXEC), 0);
	assert_int_equal(pipe2(control_pipe, O_CLOEXEC), 0);
	fflush(NULL);
	assert_true((f->child = fork()) >= 0);
	if (f->child == 0) {
		close(status_pipe[0]);
		close(control_pipe[1]);
		child_main(f, status_pipe[1], control_pipe[0]);
	}
	close(status_pipe[1]);
	close(control_pipe[0]);
	f->fds[f->nfds++] = status_pipe[0];
	f->fds[f->nfds++] = control_pipe[1];
	assert_true(
	    tu_read_full(status_pipe[0], &f->port, sizeof(f->port), WAIT_MS));
	/* A client connects every 45 ms while the child has no descriptor. */
	t0 = now_ms();
	while (now_ms() - t0 < 900 && nwaiting < 20) {
		waiting[nwaiting] = client_connect(f, f->port);
		assert_true(
		    client_send(f, waiting[nwaiting], get, strlen(get)));
		nwaiting++;
		pump(f, 45);
	}
	assert_true(tu_read_full(status_pipe[0], &rep, sizeof(rep), WAIT_MS));
	print_message("out of descriptors (%u taken): %llu us CPU in %llu "
	              "us, %llu failed accepts, %u logged\n",
	    rep.fillers, (unsigned long long)rep.cpu_us,
	    (unsigned long long)rep.wall_us,
	    (unsigned long long)rep.accept_failures, rep.logs);
	assert_true(rep.wall_us >= 900000);
	assert_true(rep.cpu_us * 5 < rep.wall_us); /* under 20% */
	assert_true(rep.accept_failures >= 2);
	assert_int_equal(rep.logs, 1);
	/* Descriptors are back: every waiting client is served. */
	for (unsigned i = 0; i < nwaiting; i++) {
		client_read_all(f, waiting[i], resp, sizeof(resp), WAIT_MS,
		    &how);
		assert_int_equal(how, 0);
		assert_int_equal(status_of(resp), 200);
	}
	assert_int_equal(request_status(f, get), 200);
	/* Closing control_fd stops the child, which stops its server. */
	client_close(f, control_pipe[1]);
	exit_status = tu_reap_within(&f->child, WAIT_MS);
	assert_true(WIFEXITED(exit_status));
	assert_int_equal(WEXITSTATUS(exit_status), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_get_answered, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_not_found_not_allowed_bad_request, setup, teardown),
		cmocka_unit_test_setup_teardown(test_connection_cap, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_slow_request_cut_at_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_oversize_head_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_addresses_and_start_errors,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_out_of_descriptors_does_not_spin, setup, teardown),
	};

	/* A client that went away must not kill the server's process. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
