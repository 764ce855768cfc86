/*
 * httpd.c: the bounded HTTP/1.1 server of httpd.h, on libuv. One request
 * per connection; limits: max_connections open, request_timeout_ms from
 * accept to close, max_head bytes of head, one accept attempt per
 * accept_retry_ms while accepting fails.
 *
 * Theory of accepting. The listening socket is ours, watched with a
 * uv_poll_t, and accept4(2) is called here rather than through uv_listen:
 * when accept fails for want of descriptors, a connection stays in the
 * backlog and the socket stays readable, and libuv's listener then calls
 * back in a loop unless the listener is closed (its spare-descriptor trick
 * drops the waiting connections when it can, and spins when it cannot).
 * Here a failed accept stops the poll, and a timer starts it again
 * accept_retry_ms later: the loop sleeps while the connection waits, and
 * is served once descriptors are back. At most HTTPD_ACCEPTS_PER_TURN
 * connections are taken per wakeup, so a flood of connects takes turns
 * with the rest of the loop.
 *
 * Theory of lifetimes. A connection lives from its accept until the close
 * callbacks of its socket and of its deadline timer have both run; it
 * stops counting as open the moment httpd__close starts closing it. The
 * server lives from agent_httpd_start until the close callbacks of its
 * poll, its retry timer and every connection have run after
 * agent_httpd_stop (h->handles counts them, a connection as one); the
 * listening descriptor is closed once its poll handle is.
 */
#include "agent/httpd.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Connections taken per wakeup of the listening socket, at most. */
#define HTTPD_ACCEPTS_PER_TURN 64

/* The content type of the server's own answers (400, 431). */
#define HTTPD_TEXT "text/plain; charset=utf-8"

typedef struct httpd_conn httpd_conn;

struct httpd_conn {
	uv_tcp_t tcp;
	uv_timer_t deadline; /* closes the connection, answered or not */
	uv_write_t write_req;
	agent_httpd *server;
	httpd_conn *prev, *next;
	revokd_buf out;   /* the answer, until the write is done */
	size_t len;       /* bytes of head read */
	unsigned handles; /* of tcp and deadline, not yet closed */
	bool answered;    /* the request was whole (or refused): no timeout */
	bool closing;     /* uv_close called */
	char head[];      /* max_head + 1 bytes: one more tells oversize */
};

struct agent_httpd {
	uv_loop_t *loop;
	agent_httpd_config cfg; /* limits filled in; addr not kept */
	int fd;                 /* listening socket */
	uint16_t port;
	uv_poll_t poll;      /* readable: connections wait to be accepted */
	uv_timer_t retry;    /* polls again after a failed accept */
	httpd_conn *conns;   /* open and closing */
	unsigned open;       /* connections not closing */
	unsigned handles;    /* poll, retry and connections not closed */
	bool accept_failing; /* logged already in this run of failures */
	bool stopping;
	agent_httpd_stats stats;
};

/* One of the server's handles is closed: free it after the last. */
static void
httpd__release(agent_httpd *h)
{
	if (--h->handles == 0)
		free(h);
}

/* ------------------------------------------------------------------------ */
/* Parsing (pure)                                                           */
/* ------------------------------------------------------------------------ */

/*
 * The length of the head in buf[0, len) (through its empty line, CRLF or
 * LF), or 0 while it is not whole. Bytes before from were searched already.
 */
static size_t
httpd__head_len(const char *buf, size_t from, size_t len)
{
	for (size_t i = from; i < len; i++) {
		if (buf[i] != '\n')
			continue;
		if (i + 1 < len && buf[i + 1] == '\n')
			return i + 2;
		if (i + 2 < len && buf[i + 1] == '\r' && buf[i + 2] == '\n')
			return i + 3;
	}
	return 0;
}

/* A character of a token (RFC 9110: methods are tokens). */
static bool
httpd__tchar(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch >= '0' && ch <= '9') ||
	       (ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

/* Visible ASCII and single spaces only. */
static bool
httpd__line_chars_ok(const char *line, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((line[i] < '!' || line[i] > '~') &&
		    (line[i] != ' ' || (i > 0 && line[i - 1] == ' ')))
			return false;
	return true;
}

/*
 * Parse the request line of a whole head: "METHOD SP /TARGET SP HTTP/1.x".
 * The method and the path (the target before any '?') are NUL-ended in
 * place and pointed at. False when the line is malformed.
 */
static bool
httpd__parse_request_line(char *head, size_t len, char **method, char **path)
{
	char *eol = memchr(head, '\n', len), *sp1, *sp2, *query;
	size_t n;

	if (eol == NULL)
		return false;
	n = (size_t)(eol - head);
	if (n > 0 && head[n - 1] == '\r')
		n--;
	if (!httpd__line_chars_ok(head, n) ||
	    (sp1 = memchr(head, ' ', n)) == NULL || sp1 == head ||
	    (sp2 = memchr(sp1 + 1, ' ', n - (size_t)(sp1 + 1 - head))) ==
	        NULL ||
	    sp1[1] != '/' || head + n - (sp2 + 1) != 8 ||
	    memcmp(sp2 + 1, "HTTP/1.", 7) != 0 || sp2[8] < '0' || sp2[8] > '9')
		return false;
	for (char *p = head; p < sp1; p++)
		if (!httpd__tchar(*p))
			return false;
	*sp1 = '\0';
	*sp2 = '\0';
	if ((query = strchr(sp1 + 1, '?')) != NULL)
		*query = '\0';
	*method = head;
	*path = sp1 + 1;
	return true;
}

static const char *
httpd__reason(unsigned status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 500:
		return "Internal Server Error";
	case 503:
		return "Service Unavailable";
	default:
		return "";
	}
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

static void
httpd__conn_closed(uv_handle_t *handle)
{
	httpd_conn *c = handle->data;
	agent_httpd *h = c->server;

	if (--c->handles > 0)
		return;
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		h->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	revokd_buf_free(&c->out);
	free(c);
	httpd__release(h);
}

static void
httpd__close(httpd_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	c->server->open--;
	uv_close((uv_handle_t *)&c->tcp, httpd__conn_closed);
	uv_close((uv_handle_t *)&c->deadline, httpd__conn_closed);
}

static void
httpd__deadline(uv_timer_t *t)
{
	httpd_conn *c = t->data;

	if (!c->answered)
		c->server->stats.timeouts++;
	httpd__close(c);
}

static void
httpd__written(uv_write_t *req, int status)
{
	(void)status;
	httpd__close(req->data);
}

/* Write reply (only its head when head_only), then close. */
static void
httpd__send(httpd_conn *c, const agent_httpd_reply *r, bool head_only)
{
	char head[512];
	int n = snprintf(head, sizeof(head),
	    "HTTP/1.1 %u %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	    "%sConnection: close\r\n\r\n",
	    r->status, httpd__reason(r->status), r->content_type, r->body.len,
	    r->status == 405 ? "Allow: GET, HEAD\r\n" : "");
	uv_buf_t buf;

	c->answered = true;
	uv_read_stop((uv_stream_t *)&c->tcp);
	if (n < 0 || (size_t)n >= sizeof(head) ||
	    revokd_buf_append(&c->out, head, (size_t)n) != REVOKD_OK ||
	    (!head_only && r->body.len > 0 &&
	        revokd_buf_append(&c->out, r->body.data, r->body.len) !=
	            REVOKD_OK)) {
		httpd__close(c);
		return;
	}
	buf = uv_buf_init((char *)c->out.data, (unsigned)c->out.len);
	if (uv_write(&c->write_req, (uv_stream_t *)&c->tcp, &buf, 1,
	        httpd__written) != 0)
		httpd__close(c);
}

/* An answer of the server's own: status, and its reason as the body. */
static void
httpd__send_status(httpd_conn *c, unsigned status)
{
	agent_httpd_reply r = { .status = status, .content_type = HTTPD_TEXT };
	const char *reason = httpd__reason(status);

	(void)revokd_buf_append(&r.body, reason, strlen(reason));
	(void)revokd_buf_append(&r.body, "\n", 1);
	httpd__send(c, &r, false);
	revokd_buf_free(&r.body);
}

/* The head is whole: answer it. */
static void
httpd__request(httpd_conn *c, size_t head_len)
{
	agent_httpd *h = c->server;
	agent_httpd_reply r = { .status = 500, .content_type = HTTPD_TEXT };
	char *method, *path;

	if (!httpd__parse_request_line(c->head, head_len, &method, &path)) {
		h->stats.bad_requests++;
		httpd__send_status(c, 400);
		return;
	}
	h->stats.requests++;
	h->cfg.handler(h->cfg.arg, method, path, &r);
	if (!c->closing)
		httpd__send(c, &r, strcmp(method, "HEAD") == 0);
	revokd_buf_free(&r.body);
}

/* Reads land in the head buffer, and never past its one spare byte. */
static void
httpd__alloc(uv_handle_t *handle, size_t suggested, uv_buf_t *buf)
{
	httpd_conn *c = handle->data;

	(void)suggested;
	*buf = uv_buf_init(c->head + c->len,
	    (unsigned)(c->server->cfg.max_head + 1 - c->len));
}

static void
httpd__read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	httpd_conn *c = stream->data;
	size_t from = c->len >= 2 ? c->len - 2 : 0, head_len;

	(void)buf;
	if (nread < 0) {
		/* End of input or an error before the request was whole. */
		httpd__close(c);
		return;
	}
	c->len += (size_t)nread;
	head_len = httpd__head_len(c->head, from, c->len);
	if (head_len > c->server->cfg.max_head ||
	    (head_len == 0 && c->len > c->server->cfg.max_head)) {
		c->server->stats.oversize++;
		httpd__send_status(c, 431);
	} else if (head_len > 0) {
		httpd__request(c, head_len);
	}
}

/* Serve the accepted socket fd; it is closed on failure. */
static void
httpd__conn_new(agent_httpd *h, int fd)
{
	httpd_conn *c = calloc(1, sizeof(*c) + h->cfg.max_head + 1);

	if (c == NULL) {
		close(fd);
		return;
	}
	uv_tcp_init(h->loop, &c->tcp);
	uv_timer_init(h->loop, &c->deadline);
	c->tcp.data = c->deadline.data = c->write_req.data = c;
	c->server = h;
	c->handles = 2;
	c->next = h->conns;
	if (h->conns != NULL)
		h->conns->prev = c;
	h->conns = c;
	h->handles++;
	h->open++;
	h->stats.accepted++;
	uv_timer_start(&c->deadline, httpd__deadline, h->cfg.request_timeout_ms,
	    0);
	if (uv_tcp_open(&c->tcp, fd) != 0) {
		close(fd);
		httpd__close(c);
	} else if (uv_read_start((uv_stream_t *)&c->tcp, httpd__alloc,
	               httpd__read) != 0) {
		httpd__close(c);
	}
}

/* ------------------------------------------------------------------------ */
/* Accepting                                                                */
/* ------------------------------------------------------------------------ */

static void httpd__on_readable(uv_poll_t *p, int status, int events);

static void
httpd__retry(uv_timer_t *t)
{
	agent_httpd *h = t->data;

	if (!h->stopping)
		uv_poll_start(&h->poll, UV_READABLE, httpd__on_readable);
}

/* Stop watching the listening socket, and watch it again later. */
static void
httpd__accept_failed(agent_httpd *h, const char *reason)
{
	h->stats.accept_failures++;
	/* One line per run of failures, not one per retry. */
	if (!h->accept_failing && h->cfg.log != NULL)
		h->cfg.log(h->cfg.arg, "accept_failed", reason);
	h->accept_failing = true;
	uv_poll_stop(&h->poll);
	uv_timer_start(&h->retry, httpd__retry, h->cfg.accept_retry_ms, 0);
}

/* Errors of accept(2) that concern the one connection, not the server. */
static bool
httpd__accept_error_passes(int e)
{
	return e == EINTR || e == ECONNABORTED || e == EPROTO ||
	       e == ENETDOWN || e == ENOPROTOOPT || e == EHOSTDOWN ||
	       e == ENONET || e == EHOSTUNREACH || e == EOPNOTSUPP ||
	       e == ENETUNREACH;
}

/* The connection that has waited longest for its request, or NULL. */
static httpd_conn *
httpd__oldest_waiting(agent_httpd *h)
{
	httpd_conn *oldest = NULL;

	/* h->conns is newest first: the last one found is the oldest. */
	for (httpd_conn *c = h->conns; c != NULL; c = c->next)
		if (!c->closing && !c->answered)
			oldest = c;
	return oldest;
}

/*
 * At the cap, a new connection takes the place of the one that has waited
 * longest for its request: idle connections can keep a scraper out only by
 * outpacing its request, not by merely coming back before the deadline.
 * When every connection is being answered, the new one is closed instead.
 */
static void
httpd__take(agent_httpd *h, int fd)
{
	httpd_conn *oldest;

	h->accept_failing = false;
	if (h->open >= h->cfg.max_connections) {
		h->stats.refused++;
		if ((oldest = httpd__oldest_waiting(h)) == NULL) {
			close(fd);
			return;
		}
		httpd__close(oldest);
	}
	httpd__conn_new(h, fd);
}

static void
httpd__on_readable(uv_poll_t *p, int status, int events)
{
	agent_httpd *h = p->data;

	(void)events;
	if (status < 0) {
		httpd__accept_failed(h, uv_strerror(status));
		return;
	}
	for (int i = 0; i < HTTPD_ACCEPTS_PER_TURN && !h->stopping; i++) {
		int fd =
		    accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0)
			httpd__take(h, fd);
		else if (errno == EAGAIN || errno == EWOULDBLOCK)
			return;
		else if (!httpd__accept_error_passes(errno)) {
			httpd__accept_failed(h, strerror(errno));
			return;
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Starting and stopping                                                    */
/* ------------------------------------------------------------------------ */

/* "HOST:PORT" or "[V6]:PORT" into host and port (NUL-ended). */
static bool
httpd__split_addr(const char *addr, char *host, size_t host_size, char *port,
    size_t port_size)
{
	const char *h = addr, *h_end, *p;
	unsigned long v;

	if (addr[0] == '[') {
		h = addr + 1;
		if ((h_end = strchr(h, ']')) == NULL || h_end[1] != ':')
			return false;
	} else if ((h_end = strrchr(addr, ':')) == NULL) {
		return false;
	}
	p = h_end + (*h_end == ']' ? 2 : 1);
	if (h_end == h || (size_t)(h_end - h) >= host_size || *p == '\0' ||
	    strlen(p) >= port_size || strspn(p, "0123456789") != strlen(p) ||
	    (v = strtoul(p, NULL, 10)) > 65535)
		return false;
	memcpy(host, h, (size_t)(h_end - h));
	host[h_end - h] = '\0';
	snprintf(port, port_size, "%lu", v);
	return true;
}

/* A non-blocking socket listening on ai into *out: 0, or an errno. */
static int
httpd__listen_on(const struct addrinfo *ai, int *out)
{
	int one = 1, e;
	int fd = socket(ai->ai_family,
	    ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);

	if (fd < 0)
		return errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 ||
	    listen(fd, SOMAXCONN) != 0) {
		e = errno;
		close(fd);
		return e;
	}
	*out = fd;
	return 0;
}

/* The port fd is bound to. */
static uint16_t
httpd__bound_port(int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return 0;
	if (ss.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Listen on addr: h->fd and h->port. */
static revokd_err
httpd__bind(agent_httpd *h, const char *addr, char *err, size_t err_len)
{
	struct addrinfo hints = { .ai_flags = AI_PASSIVE | AI_NUMERICSERV,
		.ai_family = AF_UNSPEC,
		.ai_socktype = SOCK_STREAM };
	struct addrinfo *res, *ai;
	char host[256], port[8];
	int rc, e = EADDRNOTAVAIL;

	if (!httpd__split_addr(addr, host, sizeof(host), port, sizeof(port)))
		return revokd_failf(err, err_len, REVOKD_EINVAL,
		    "%s: want HOST:PORT or [V6]:PORT", addr);
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0)
		return revokd_failf(err, err_len, REVOKD_EINVAL, "%s: %s", addr,
		    rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
	for (ai = res; ai != NULL; ai = ai->ai_next)
		if ((e = httpd__listen_on(ai, &h->fd)) == 0)
			break;
	freeaddrinfo(res);
	if (e != 0)
		return revokd_failf(err, err_len, revokd_err_from_errno(e),
		    "%s: %s", addr, strerror(e));
	h->port = httpd__bound_port(h->fd);
	return REVOKD_OK;
}

/* c with its zero limits replaced by the defaults. */
static agent_httpd_config
httpd__config(const agent_httpd_config *c)
{
	agent_httpd_config cfg = *c;

	cfg.addr = NULL;
	if (cfg.max_connections == 0)
		cfg.max_connections = AGENT_HTTPD_MAX_CONNECTIONS;
	if (cfg.request_timeout_ms == 0)
		cfg.request_timeout_ms = AGENT_HTTPD_REQUEST_TIMEOUT_MS;
	if (cfg.max_head == 0)
		cfg.max_head = AGENT_HTTPD_MAX_HEAD;
	if (cfg.accept_retry_ms == 0)
		cfg.accept_retry_ms = AGENT_HTTPD_ACCEPT_RETRY_MS;
	return cfg;
}

revokd_err
agent_httpd_start(uv_loop_t *loop, const agent_httpd_config *c,
    agent_httpd **out, char *err, size_t err_len)
{
	agent_httpd *h;
	revokd_err rc;
	int r;

	if (c->addr == NULL || c->handler == NULL)
		return revokd_failf(err, err_len, REVOKD_EINVAL,
		    "HTTP server: no address or no handler");
	if ((h = calloc(1, sizeof(*h))) == NULL)
		return revokd_failf(err, err_len, REVOKD_ENOMEM,
		    "%s: out of memory", c->addr);
	h->loop = loop;
	h->cfg = httpd__config(c);
	if ((rc = httpd__bind(h, c->addr, err, err_len)) != REVOKD_OK) {
		free(h);
		return rc;
	}
	if ((r = uv_poll_init(loop, &h->poll, h->fd)) != 0) {
		close(h->fd);
		free(h);
		return revokd_failf(err, err_len, REVOKD_EIO, "%s: %s", c->addr,
		    uv_strerror(r));
	}
	uv_timer_init(loop, &h->retry);
	h->poll.data = h->retry.data = h;
	h->handles = 2;
	uv_poll_start(&h->poll, UV_READABLE, httpd__on_readable);
	*out = h;
	return REVOKD_OK;
}

static void
httpd__poll_closed(uv_handle_t *handle)
{
	agent_httpd *h = handle->data;

	close(h->fd);
	httpd__release(h);
}

static void
httpd__retry_closed(uv_handle_t *handle)
{
	httpd__release(handle->data);
}

void
agent_httpd_stop(agent_httpd *h)
{
	if (h == NULL || h->stopping)
		return;
	h->stopping = true;
	uv_close((uv_handle_t *)&h->poll, httpd__poll_closed);
	uv_close((uv_handle_t *)&h->retry, httpd__retry_closed);
	for (httpd_conn *c = h->conns; c != NULL; c = c->next)
		httpd__close(c);
}

uint16_t
agent_httpd_port(const agent_httpd *h)
{
	return h->port;
}

void
agent_httpd_get_stats(const agent_httpd *h, agent_httpd_stats *out)
{
	*out = h->stats;
	out->open = h->open;
}
