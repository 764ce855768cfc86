/*
 * client.c: the socket client of librevoke.
 *
 * One Unix stream connection to the agent's query socket, speaking the
 * local protocol (docs/protocol.md): frames of a 4-byte big-endian length
 * and a protobuf Request; one Response per Request, in order.
 *
 * Theory of a call. A call has n requests and wants n answers. It encodes
 * requests into the output buffer a window at a time, and writes and reads
 * without blocking, in one loop, until every answer is in: the agent stops
 * reading from a client whose answers it cannot write, so a client that
 * wrote all its requests before reading any would stall itself. poll()
 * waits only when neither direction can move, for at most the time left to
 * the call.
 *
 * Any failure of the stream (closed, reset, timed out, an answer that does
 * not decode) closes the connection: answers still in flight would be
 * taken for the next call's. The next call connects again. A call on a
 * connection that had already served a call, which fails because the
 * connection broke (the agent restarted, say), is retried once on a new
 * connection: checks have no effect, so asking twice is harmless.
 */
#include "client_int.h"

#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "local.pb-c.h"
#include "wire/wire.h"

#define REVOKE__TIMEOUT_DEFAULT 1000
#define REVOKE__MAX_MESSAGE_DEFAULT (1u << 20)

/* Bytes read at once. */
#define REVOKE__READ_SIZE 65536

/* Encoded requests kept ahead of the socket. */
#define REVOKE__SEND_WINDOW 65536

typedef Revokd__Local__Request Request;
typedef Revokd__Local__Response Response;

struct revoke_client {
	struct sockaddr_un addr;
	int fd;    /* -1 while not connected */
	bool used; /* this connection completed a call */
	int timeout_ms;
	size_t max_message;
	wire_decoder dec;
	uint8_t *in; /* REVOKE__READ_SIZE */
	uint8_t *out;
	size_t out_off, out_len, out_cap;
};

/*
 * One call: n requests; fill(arg, i, req) builds the i-th, answer(arg, i,
 * resp) takes its response and returns REVOKE_OK, REVOKE_E_AGENT (an Error
 * answer: the call goes on, and fails at the end) or REVOKE_E_PROTOCOL.
 */
typedef struct revoke__call {
	size_t n;
	void (*fill)(void *arg, size_t i, Request *req, void *scratch);
	revoke_status (*answer)(void *arg, size_t i, const Response *resp);
	void *arg;
} revoke__call;

/* Room for the body of one request built by a fill function. */
typedef union revoke__scratch {
	Revokd__Local__Check check;
	Revokd__Local__Version version;
} revoke__scratch;

/* ------------------------------------------------------------------------ */
/* The connection                                                           */
/* ------------------------------------------------------------------------ */

static void
revoke__disconnect(revoke_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->used = false;
	c->out_off = c->out_len = 0;
	wire_decoder_free(&c->dec);
	wire_decoder_init(&c->dec, c->max_message);
}

static revoke_status
revoke__connect(revoke_client *c)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return errno == ENOMEM || errno == ENOBUFS ? REVOKE_E_NOMEM
		                                           : REVOKE_E_CONNECT;
	while (connect(fd, (const struct sockaddr *)&c->addr,
	           sizeof(c->addr)) != 0) {
		if (errno == EINTR)
			continue;
		revoke__errorf("%s: %s", c->addr.sun_path, strerror(errno));
		close(fd);
		return REVOKE_E_CONNECT;
	}
	c->fd = fd;
	c->used = false;
	return REVOKE_OK;
}

revoke_status
revoke_client_open(const char *path, const revoke_client_options *opt,
    revoke_client **out)
{
	revoke_client *c;
	revoke_status st;

	if (path == NULL || out == NULL || *path == '\0')
		return REVOKE_E_INVALID;
	if (strlen(path) >= sizeof(c->addr.sun_path)) {
		revoke__errorf("%s: longer than a socket path can be", path);
		return REVOKE_E_INVALID;
	}
	if (opt != NULL &&
	    (opt->timeout_ms < 0 || (opt->max_message != 0 &&
	                                opt->max_message < WIRE_MAX_FRAME_MIN)))
		return REVOKE_E_INVALID;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return REVOKE_E_NOMEM;
	c->addr.sun_family = AF_UNIX;
	memcpy(c->addr.sun_path, path, strlen(path) + 1);
	c->fd = -1;
	c->timeout_ms =
	    opt && opt->timeout_ms ? opt->timeout_ms : REVOKE__TIMEOUT_DEFAULT;
	c->max_message = opt && opt->max_message ? opt->max_message
	                                         : REVOKE__MAX_MESSAGE_DEFAULT;
	wire_decoder_init(&c->dec, c->max_message);
	if ((c->in = malloc(REVOKE__READ_SIZE)) == NULL) {
		revoke_client_close(c);
		return REVOKE_E_NOMEM;
	}
	if ((st = revoke__connect(c)) != REVOKE_OK) {
		revoke_client_close(c);
		return st;
	}
	*out = c;
	return REVOKE_OK;
}

void
revoke_client_close(revoke_client *c)
{
	if (c == NULL)
		return;
	if (c->fd >= 0)
		close(c->fd);
	wire_decoder_free(&c->dec);
	free(c->in);
	free(c->out);
	free(c);
}

/* ------------------------------------------------------------------------ */
/* Calls                                                                    */
/* ------------------------------------------------------------------------ */

static int64_t
revoke__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Append request i of call to the output buffer as one frame. */
static revoke_status
revoke__encode(revoke_client *c, const revoke__call *call, size_t i)
{
	Request req = REVOKD__LOCAL__REQUEST__INIT;
	revoke__scratch scratch;
	size_t len, need;
	uint8_t *p;

	call->fill(call->arg, i, &req, &scratch);
	len = revokd__local__request__get_packed_size(&req);
	if (len > c->max_message)
		return REVOKE_E_INVALID;
	/* What was sent makes room: the buffer stays near the window. */
	if (c->out_off == c->out_len) {
		c->out_off = c->out_len = 0;
	} else if (c->out_off >= REVOKE__SEND_WINDOW) {
		memmove(c->out, c->out + c->out_off, c->out_len - c->out_off);
		c->out_len -= c->out_off;
		c->out_off = 0;
	}
	need = c->out_len + WIRE_HEADER_LEN + len;
	if (need > c->out_cap) {
		size_t cap = c->out_cap ? c->out_cap : 4096;

		while (cap < need)
			cap *= 2;
		if ((p = realloc(c->out, cap)) == NULL)
			return REVOKE_E_NOMEM;
		c->out = p;
		c->out_cap = cap;
	}
	p = c->out + c->out_len;
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	revokd__local__request__pack(&req, p + WIRE_HEADER_LEN);
	c->out_len = need;
	return REVOKE_OK;
}

/* Write what the socket takes now. *moved: some bytes went. */
static revoke_status
revoke__send(revoke_client *c, bool *moved)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off,
		    c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return REVOKE_OK;
		if (n < 0)
			return REVOKE_E_CLOSED;
		c->out_off += (size_t)n;
		*moved = true;
	}
	return REVOKE_OK;
}

/* Take the whole frames buffered, answering requests *got onwards. */
static revoke_status
revoke__take(revoke_client *c, const revoke__call *call, size_t *got,
    revoke_status *agent)
{
	const uint8_t *frame;
	size_t len;
	revokd_err err = REVOKD_EAGAIN;

	while (*got < call->n &&
	       (err = wire_decoder_next(&c->dec, &frame, &len)) == REVOKD_OK) {
		Response *resp =
		    revokd__local__response__unpack(NULL, len, frame);
		revoke_status st;

		if (resp == NULL)
			return REVOKE_E_PROTOCOL;
		st = call->answer(call->arg, (*got)++, resp);
		revokd__local__response__free_unpacked(resp, NULL);
		if (st == REVOKE_E_AGENT && *agent == REVOKE_OK)
			*agent = st;
		else if (st != REVOKE_OK && st != REVOKE_E_AGENT)
			return st;
	}
	if (*got < call->n && err == REVOKD_ETOOBIG)
		return REVOKE_E_PROTOCOL;
	return REVOKE_OK;
}

/* Read what the socket has now into the decoder. */
static revoke_status
revoke__recv(revoke_client *c, bool *moved)
{
	for (;;) {
		ssize_t n = recv(c->fd, c->in, REVOKE__READ_SIZE, MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return REVOKE_OK;
		if (n <= 0)
			return REVOKE_E_CLOSED;
		*moved = true;
		switch (wire_decoder_feed(&c->dec, c->in, (size_t)n)) {
		case REVOKD_OK:
		case REVOKD_ETOOBIG: /* seen when the frame is pulled */
			return REVOKE_OK;
		default:
			return REVOKE_E_NOMEM;
		}
	}
}

/* Run call on the current connection. */
static revoke_status
revoke__exchange(revoke_client *c, const revoke__call *call)
{
	int64_t deadline = revoke__now_ms() + c->timeout_ms;
	revoke_status st, agent = REVOKE_OK;
	size_t sent = 0, got = 0;

	while (got < call->n) {
		bool moved = false;
		struct pollfd pfd = { .fd = c->fd, .events = POLLIN };
		int64_t left;
		int rc;

		while (sent < call->n &&
		       c->out_len - c->out_off < REVOKE__SEND_WINDOW)
			if ((st = revoke__encode(c, call, sent++)) != REVOKE_OK)
				return st;
		if ((st = revoke__send(c, &moved)) != REVOKE_OK ||
		    (st = revoke__recv(c, &moved)) != REVOKE_OK ||
		    (st = revoke__take(c, call, &got, &agent)) != REVOKE_OK)
			return st;
		if (moved || got == call->n)
			continue;
		if ((left = deadline - revoke__now_ms()) <= 0)
			return REVOKE_E_TIMEOUT;
		if (c->out_off < c->out_len)
			pfd.events |= POLLOUT;
		rc =
		    poll(&pfd, 1, (int)(left > 0x7fffffff ? 0x7fffffff : left));
		if (rc < 0 && errno != EINTR)
			return REVOKE_E_CLOSED;
		if (rc == 0)
			return REVOKE_E_TIMEOUT;
	}
	return agent;
}

/* Run call, connecting first if needed; retried once as the top says. */
static revoke_status
revoke__run(revoke_client *c, const revoke__call *call)
{
	revoke_status st;

	for (int attempt = 0;; attempt++) {
		bool reused;

		if (c->fd < 0 && (st = revoke__connect(c)) != REVOKE_OK)
			return st;
		reused = c->used;
		st = revoke__exchange(c, call);
		if (st == REVOKE_OK || st == REVOKE_E_AGENT) {
			c->used = true;
			return st;
		}
		revoke__disconnect(c);
		if (st == REVOKE_E_INVALID || st == REVOKE_E_NOMEM)
			return st;
		if (st != REVOKE_E_CLOSED || !reused || attempt > 0)
			return st;
	}
}

/* ------------------------------------------------------------------------ */
/* Check and Version                                                        */
/* ------------------------------------------------------------------------ */

typedef struct revoke__checks {
	const revoke_query *q;
	revoke_answer *out;
} revoke__checks;

static ProtobufCBinaryData
revoke__bytes(const char *s, size_t len)
{
	return (ProtobufCBinaryData){ revoke__id_len(s, len),
		(uint8_t *)(uintptr_t)s };
}

static void
revoke__fill_check(void *arg, size_t i, Request *req, void *scratch)
{
	const revoke_query *q = &((revoke__checks *)arg)->q[i];
	Revokd__Local__Check *m = scratch;

	revokd__local__check__init(m);
	m->jti = revoke__bytes(q->jti, q->jti_len);
	m->sid = revoke__bytes(q->sid, q->sid_len);
	m->sub = revoke__bytes(q->sub, q->sub_len);
	if (q->has_ver) {
		m->has_ver_case = REVOKD__LOCAL__CHECK__HAS_VER_VER;
		m->ver = q->ver;
	}
	if (q->has_iat) {
		m->has_iat_case = REVOKD__LOCAL__CHECK__HAS_IAT_IAT;
		m->iat = q->iat;
	}
	req->body_case = REVOKD__LOCAL__REQUEST__BODY_CHECK;
	req->check = m;
}

/* What a response other than the one expected means. */
static revoke_status
revoke__unexpected(const Response *resp)
{
	return resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_ERROR
	           ? REVOKE_E_AGENT
	           : REVOKE_E_PROTOCOL;
}

static revoke_status
revoke__answer_check(void *arg, size_t i, const Response *resp)
{
	revoke_answer *a = &((revoke__checks *)arg)->out[i];
	const Revokd__Local__CheckResult *r = resp->check;

	if (resp->body_case != REVOKD__LOCAL__RESPONSE__BODY_CHECK)
		return revoke__unexpected(resp);
	if ((unsigned)r->verdict > REVOKE_REVOKED_NOT_BEFORE)
		return REVOKE_E_PROTOCOL;
	a->verdict = (revoke_verdict)r->verdict;
	a->version = r->version;
	a->staleness_ms = r->staleness_ms;
	return REVOKE_OK;
}

revoke_status
revoke_client_check_many(revoke_client *c, const revoke_query *q, size_t n,
    revoke_answer *out)
{
	revoke__checks arg = { q, out };
	revoke__call call = { n, revoke__fill_check, revoke__answer_check,
		&arg };
	revoke_status st;

	if (c == NULL || (n > 0 && (q == NULL || out == NULL)))
		return REVOKE_E_INVALID;
	for (size_t i = 0; i < n; i++)
		if ((st = revoke__query_valid(&q[i])) != REVOKE_OK)
			return st;
	if (n == 0)
		return REVOKE_OK;
	return revoke__run(c, &call);
}

revoke_status
revoke_client_check(revoke_client *c, const revoke_query *q, revoke_answer *out)
{
	return revoke_client_check_many(c, q, 1, out);
}

typedef struct revoke__version {
	ProtobufCBinaryData sub;
	uint64_t version, not_before_ms, staleness_ms;
} revoke__version;

static void
revoke__fill_version(void *arg, size_t i, Request *req, void *scratch)
{
	Revokd__Local__Version *m = scratch;

	(void)i;
	revokd__local__version__init(m);
	m->sub = ((revoke__version *)arg)->sub;
	req->body_case = REVOKD__LOCAL__REQUEST__BODY_VERSION;
	req->version = m;
}

static revoke_status
revoke__answer_version(void *arg, size_t i, const Response *resp)
{
	revoke__version *v = arg;

	(void)i;
	if (resp->body_case != REVOKD__LOCAL__RESPONSE__BODY_VERSION)
		return revoke__unexpected(resp);
	v->version = resp->version->version;
	v->not_before_ms = resp->version->not_before_ms;
	v->staleness_ms = resp->version->staleness_ms;
	return REVOKE_OK;
}

revoke_status
revoke_client_version(revoke_client *c, const char *sub, size_t sub_len,
    uint64_t *version, uint64_t *not_before_ms, uint64_t *staleness_ms)
{
	revoke__version v = { revoke__bytes(sub, sub_len), 0, 0, 0 };
	revoke__call call = { 1, revoke__fill_version, revoke__answer_version,
		&v };
	revoke_status st;

	if (c == NULL || v.sub.len == 0 || v.sub.len > REVOKE__ID_MAX)
		return REVOKE_E_INVALID;
	if ((st = revoke__run(c, &call)) != REVOKE_OK)
		return st;
	if (version)
		*version = v.version;
	if (not_before_ms)
		*not_before_ms = v.not_before_ms;
	if (staleness_ms)
		*staleness_ms = v.staleness_ms;
	return REVOKE_OK;
}
