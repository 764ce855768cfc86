/*
 * local.c: the framed Unix-socket server behind the query and admin sockets
 * (local.h), on libuv.
 *
 * Theory of lifetimes. A server lives from agent_local_start until the close
 * callbacks of its poll, retry and idle handles and of every connection
 * have run after agent_local_stop (s->handles counts the handles not yet
 * closed); the listening descriptor is closed once its poll handle is. A
 * connection lives from accept until its close callback; it stops counting
 * as open, and lets go of its slots, the moment local__close starts closing
 * it, so nothing after that point can reach it through a slot. A slot lives
 * from the read that brought its request until it is filled and its response
 * has moved into the connection's output, or, once its connection has let go
 * of it (slot->conn == NULL), until agent_local_fill frees it. So a slot may
 * outlive its connection and its server, but never points at either after
 * they are gone, and nothing owned by a closed connection waits for anyone.
 *
 * Theory of output. Responses leave in request order: the slot queue holds
 * the requests whose responses have not yet moved to c->out, oldest first.
 * Filling the head appends to c->out at once, followed by every filled slot
 * behind it; filling any other slot keeps a copy in the slot (c->held bytes)
 * until the head catches up. c->out is written with uv_try_write, and the
 * first LOCAL_WRITE_CHUNK of what the socket does not take is copied to
 * c->inflight for one uv_write (c->out_off bytes of c->out are gone); at
 * most one write is in flight, and c->out collects what comes meanwhile.
 * libuv holds a write's buffer until its callback, even after the
 * connection is closed, which is at the end of the loop's iteration: the
 * chunk keeps what a client cut with its output unread leaves behind small.
 *
 * Theory of limits. Two different troubles, two answers:
 *   - output the client does not read (c->out and the unwritten part of
 *     c->inflight) passing max_output cuts the client at once: its socket
 *     buffer (about 200 KiB on Linux) is already full, so it is far behind;
 *   - responses waiting for the handler (slots queued behind an unfilled
 *     one, counted as held bytes plus a nominal size per slot) passing half
 *     of max_output pause reading until they fall under a quarter. That
 *     backlog is not the client's fault, but it is memory, so the client is
 *     slowed instead of cut.
 * Unread output deliberately does not pause reading: a paused client that
 * never reads would sit below max_output for ever and never be cut.
 *
 * Theory of memory. Those limits are per connection, and there may be
 * max_connections of them: a thousand clients each holding a request
 * declared at max_frame and never finished, or answers they do not read,
 * would hold gigabytes. So the server also counts what its connections'
 * buffers hold (decoder, output, held responses: c->cost, summed in
 * s->mem until the memory is freed, closing connections included), and
 * when one connection's growth takes the sum past the budget
 * (LOCAL_MEM_BUDGET, or twice max_frame + max_output if larger) while that
 * connection holds more than LOCAL_CONN_SMALL, it is cut at once
 * ("cut_memory"). Buffers that empty give back what they took beyond
 * LOCAL_KEEP, so idle clients hold little and well-behaved small clients
 * stay under LOCAL_CONN_SMALL and are never cut; a large legitimate
 * request (an admin import) may be cut while the server is over budget.
 * The memory held by all connections stays under the budget plus
 * LOCAL_CONN_SMALL per connection plus what one read can add.
 *
 * Theory of turns. No connection may hold the loop for long, however much
 * it pipelines: it hands at most a quantum of requests to the handler at a
 * time, LOCAL_TURN_FRAMES shared among the connections that have more
 * waiting (at least LOCAL_MIN_QUANTUM each). A connection with whole
 * requests left in its decoder is "busy": it stops reading and joins the
 * back of a queue. An idle handle (which also keeps the loop from sleeping
 * while there is work) serves the queue from its head, a quantum each,
 * until LOCAL_TURN_FRAMES requests were handed over in the turn; a served
 * connection with more goes to the back again, one with none reads again.
 * So a turn hands over about LOCAL_TURN_FRAMES requests of busy
 * connections plus one quantum for each read that arrived, and a client
 * asking one thing at a time waits about one turn, however many others
 * pipeline without end.
 *
 * Theory of accepting. The listening socket is ours, watched with a
 * uv_poll_t, and accept4(2) is called here; each accepted descriptor is
 * handed to libuv with uv_pipe_open. uv_listen would not do: when accept
 * fails for want of descriptors, libuv's listener closes a spare
 * descriptor it set aside, then accepts and closes every waiting
 * connection (clients on the authentication path dropped unanswered), and
 * when it has no spare (none was free when its first stream was made, or
 * another thread took the one it let go) it calls back with the error and
 * retries at once, for ever, without returning to the loop. Here a failed
 * accept stops the poll and a timer starts it again LOCAL_ACCEPT_RETRY_MS
 * later: the loop sleeps while the connections wait in the kernel's
 * backlog, and they are served once descriptors are back. Memory for a new
 * connection failing counts as a failed accept (that one connection is
 * dropped). One "accept_failed" line is logged per run of failures (a run
 * ends with a connection taken, or refused). At most LOCAL_ACCEPTS_PER_TURN
 * connections are taken per wakeup, so a flood of connects takes turns with the
 * rest of the loop. A connection past max_connections is accepted and closed at
 * once ("refused"): else it would wait in the backlog.
 *
 * The process must ignore SIGPIPE: libuv writes with write(2), and a client
 * that went away would otherwise kill the agent.
 */
#include "agent/local.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "wire/wire.h"

/* The one read buffer of a server: libuv reads one stream at a time. */
#define LOCAL_READ_SIZE (64u << 10)

/* What a queued slot is taken to cost when deciding to pause reading. */
#define LOCAL_SLOT_COST 64u

/* Bytes of all connections' buffers past which growing ones are cut. */
#define LOCAL_MEM_BUDGET ((size_t)64 << 20)

/* A connection holding no more than this is never cut for memory. */
#define LOCAL_CONN_SMALL ((size_t)16 << 10)

/* What an emptied buffer may keep (larger ones are freed). */
#define LOCAL_KEEP ((size_t)4 << 10)

/* Most bytes one uv_write covers. */
#define LOCAL_WRITE_CHUNK ((size_t)64 << 10)

/* Requests handed over per loop turn, shared among busy connections. */
#define LOCAL_TURN_FRAMES 128u

/* The fewest requests a busy connection hands over at a time. */
#define LOCAL_MIN_QUANTUM 1u

/* Connections taken per wakeup of the listening socket, at most. */
#define LOCAL_ACCEPTS_PER_TURN 64

/* After a failed accept, the listening socket is left alone this long. */
#define LOCAL_ACCEPT_RETRY_MS 100

struct agent_local_slot {
	agent_local_slot *next;
	agent_local_conn *conn; /* NULL once the connection let go */
	uint8_t *response;      /* header and payload, when filled early */
	size_t len;
	bool filled;
};

struct agent_local_conn {
	uv_pipe_t pipe;
	agent_local *server;
	agent_local_conn *prev, *next;
	agent_local_conn *busy_prev, *busy_next; /* in server->busy_* */
	wire_decoder decoder;
	agent_local_slot *head, *tail; /* responses not yet in out */
	size_t queued;                 /* slots in the queue */
	size_t held;                   /* bytes kept in filled slots */
	size_t cost;                   /* bytes counted in server->mem */
	revokd_buf out;                /* ready, not yet handed to libuv */
	size_t out_off;                /* bytes of out handed on already */
	revokd_buf inflight;           /* what the write in flight sends */
	size_t inflight_off;           /* bytes of inflight written */
	size_t inflight_chunk;         /* bytes the write in flight covers */
	uv_write_t write_req;
	bool reading;  /* uv_read_start is in effect */
	bool busy;     /* whole requests wait in the decoder */
	bool paused;   /* reading paused for the handler backlog */
	bool writing;  /* a uv_write is in flight */
	bool in_batch; /* inside on_frames or on_oversize: write after */
	bool draining; /* no more requests: close once all is written */
	bool closing;  /* uv_close called */
};

struct agent_local {
	uv_loop_t *loop;
	int fd;                 /* the listening socket */
	uv_poll_t poll;         /* readable: connections wait to be accepted */
	uv_timer_t retry;       /* polls again after a failed accept */
	agent_local_config cfg; /* name and path point at our copies */
	char *name, *path;
	dev_t sock_dev; /* the socket file we made, to remove only it */
	ino_t sock_ino;
	agent_local_conn *conns;                 /* open and closing */
	agent_local_conn *busy_head, *busy_tail; /* next quantum: head */
	unsigned busy;                           /* connections busy */
	uv_idle_t idle;                          /* runs while some are */
	unsigned open;                           /* connections not closing */
	unsigned handles;    /* server handles and connections not closed */
	size_t mem;          /* sum of c->cost, closing ones included */
	size_t mem_budget;   /* past it, growing connections are cut */
	bool accept_failing; /* logged already in this run of failures */
	bool stopping;
	uint8_t *readbuf;
	agent_local_frame *frames; /* one read's frames, reused */
	size_t frames_cap;
	agent_local_stats stats;
};

static void local__close(agent_local_conn *c);
static void local__flush(agent_local_conn *c);

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

static void local__log(agent_local *s, const char *event, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
local__log(agent_local *s, const char *event, const char *fmt, ...)
{
	char detail[256];
	va_list ap;

	if (s->cfg.log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	s->cfg.log(s->cfg.arg, event, detail);
}

/* Append one frame (header and payload) to b. */
static revokd_err
local__append_frame(revokd_buf *b, const uint8_t *payload, size_t len)
{
	revokd_err err = revokd_buf_reserve(b, WIRE_HEADER_LEN + len);
	uint8_t *p;

	if (err != REVOKD_OK)
		return err;
	p = b->data + b->len;
	p[0] = (uint8_t)(len >> 24);
	p[1] = (uint8_t)(len >> 16);
	p[2] = (uint8_t)(len >> 8);
	p[3] = (uint8_t)len;
	if (len > 0)
		memcpy(p + WIRE_HEADER_LEN, payload, len);
	b->len += WIRE_HEADER_LEN + len;
	return REVOKD_OK;
}

/*
 * Empty b, and give its memory back when a burst made it large: an idle
 * connection should not keep max_output bytes for ever.
 */
static void
local__buf_clear(revokd_buf *b)
{
	b->len = 0;
	if (b->cap > LOCAL_KEEP)
		revokd_buf_free(b);
}

/* libuv takes lengths as unsigned int and returns counts as int. */
static size_t
local__chunk(size_t n)
{
	return n > INT_MAX ? INT_MAX : n;
}

static void
local__sockaddr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path, path, strlen(path) + 1);
}

/* ------------------------------------------------------------------------ */
/* Slots                                                                    */
/* ------------------------------------------------------------------------ */

/* A new unfilled slot at the tail of c's queue; NULL without memory. */
static agent_local_slot *
local__slot_append(agent_local_conn *c)
{
	agent_local_slot *slot = calloc(1, sizeof(*slot));

	if (slot == NULL)
		return NULL;
	slot->conn = c;
	if (c->tail != NULL)
		c->tail->next = slot;
	else
		c->head = slot;
	c->tail = slot;
	c->queued++;
	return slot;
}

/* Remove the head of c's queue and free it. */
static void
local__slot_pop(agent_local_conn *c)
{
	agent_local_slot *slot = c->head;

	c->head = slot->next;
	if (c->head == NULL)
		c->tail = NULL;
	c->queued--;
	free(slot->response);
	free(slot);
}

/*
 * Let go of every slot: filled ones are freed (their output is dropped),
 * unfilled ones stay with whoever must fill them, and free themselves then.
 */
static void
local__slots_release(agent_local_conn *c)
{
	agent_local_slot *slot = c->head, *next;

	for (; slot != NULL; slot = next) {
		next = slot->next;
		if (slot->filled) {
			free(slot->response);
			free(slot);
		} else {
			slot->conn = NULL;
			slot->next = NULL;
		}
	}
	c->head = c->tail = NULL;
	c->queued = c->held = 0;
}

/* Move the filled slots at the head of the queue into c->out. */
static revokd_err
local__slots_advance(agent_local_conn *c)
{
	while (c->head != NULL && c->head->filled) {
		agent_local_slot *slot = c->head;

		if (revokd_buf_append(&c->out, slot->response, slot->len) !=
		    REVOKD_OK)
			return REVOKD_ENOMEM;
		c->held -= slot->len;
		local__slot_pop(c);
	}
	return REVOKD_OK;
}

/* Keep a response for a slot that must wait for those before it. */
static revokd_err
local__slot_hold(agent_local_conn *c, agent_local_slot *slot,
    const uint8_t *payload, size_t len)
{
	revokd_buf b = { 0 };

	if (local__append_frame(&b, payload, len) != REVOKD_OK)
		return REVOKD_ENOMEM;
	slot->response = b.data;
	slot->len = b.len;
	slot->filled = true;
	c->held += b.len;
	return REVOKD_OK;
}

revokd_err
agent_local_fill(agent_local_slot *slot, const uint8_t *payload, size_t len)
{
	agent_local_conn *c = slot->conn;
	revokd_err err;

	assert(!slot->filled);
	if (c == NULL) {
		free(slot);
		return REVOKD_OK;
	}
	if (len > UINT32_MAX)
		err = REVOKD_ETOOBIG;
	else if (slot != c->head)
		err = local__slot_hold(c, slot, payload, len);
	else if ((err = local__append_frame(&c->out, payload, len)) ==
	         REVOKD_OK) {
		/* The head answered: it and the filled ones behind it go. */
		local__slot_pop(c);
		slot = NULL;
		err = local__slots_advance(c);
	}
	if (err == REVOKD_OK) {
		local__flush(c);
		return REVOKD_OK;
	}
	/* A hole in the response stream cannot be mended: give up on c. */
	local__log(c->server, "error", "%s: cannot answer a request: %s",
	    c->server->name, revokd_strerror(err));
	local__close(c);
	free(slot); /* let go of by local__close, or already gone */
	return err;
}

/* ------------------------------------------------------------------------ */
/* Busy connections                                                         */
/* ------------------------------------------------------------------------ */

static void
local__busy_leave(agent_local_conn *c)
{
	agent_local *s = c->server;

	if (!c->busy)
		return;
	if (c->busy_prev != NULL)
		c->busy_prev->busy_next = c->busy_next;
	else
		s->busy_head = c->busy_next;
	if (c->busy_next != NULL)
		c->busy_next->busy_prev = c->busy_prev;
	else
		s->busy_tail = c->busy_prev;
	c->busy_prev = c->busy_next = NULL;
	c->busy = false;
	if (--s->busy == 0)
		uv_idle_stop(&s->idle);
}

static void local__on_idle(uv_idle_t *h);

/* Put c at the back of the busy queue (moving it there if it is in). */
static void
local__busy_enter(agent_local_conn *c)
{
	agent_local *s = c->server;

	local__busy_leave(c);
	c->busy = true;
	c->busy_prev = s->busy_tail;
	if (s->busy_tail != NULL)
		s->busy_tail->busy_next = c;
	else
		s->busy_head = c;
	s->busy_tail = c;
	if (s->busy++ == 0)
		uv_idle_start(&s->idle, local__on_idle);
}

/* How many requests c may hand over now: its share of a turn. */
static size_t
local__quantum(const agent_local_conn *c)
{
	const agent_local *s = c->server;
	unsigned q = LOCAL_TURN_FRAMES / (s->busy + (c->busy ? 0 : 1));

	return q > LOCAL_MIN_QUANTUM ? q : LOCAL_MIN_QUANTUM;
}

/* ------------------------------------------------------------------------ */
/* Closing                                                                  */
/* ------------------------------------------------------------------------ */

static void
local__server_free(agent_local *s)
{
	free(s->readbuf);
	free(s->frames);
	free(s->name);
	free(s->path);
	free(s);
}

/* One of s's handles has closed; the last one after stop frees s. */
static void
local__handle_closed(agent_local *s)
{
	assert(s->handles > 0);
	if (--s->handles == 0 && s->stopping)
		local__server_free(s);
}

static void
local__on_server_handle_closed(uv_handle_t *h)
{
	local__handle_closed(h->data);
}

static void
local__on_poll_closed(uv_handle_t *h)
{
	agent_local *s = h->data;

	close(s->fd);
	local__handle_closed(s);
}

static void
local__on_conn_closed(uv_handle_t *h)
{
	agent_local_conn *c = h->data;
	agent_local *s = c->server;

	s->mem -= c->cost;
	wire_decoder_free(&c->decoder);
	revokd_buf_free(&c->out);
	revokd_buf_free(&c->inflight);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		s->conns = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	free(c);
	local__handle_closed(s);
}

/*
 * Close c now, dropping its output. Its memory stays until the close
 * callback (libuv cancels the write in flight first, and a caller up the
 * stack may still hold c), but its slots are let go at once.
 */
static void
local__close(agent_local_conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	local__busy_leave(c);
	local__slots_release(c);
	c->server->open--;
	/*
	 * Free now what nobody else holds: the close callbacks run only at
	 * the end of the loop's iteration, and many connections cut in one
	 * iteration must not hold their buffers until then. The decoder may
	 * be in use up the stack inside on_frames; a write in flight holds
	 * inflight, which stays counted in s->mem until the close callback.
	 */
	revokd_buf_free(&c->out);
	c->out_off = 0;
	if (!c->writing)
		revokd_buf_free(&c->inflight);
	if (!c->in_batch)
		wire_decoder_free(&c->decoder);
	c->server->mem -= c->cost;
	c->cost = c->inflight.cap + c->decoder.cap;
	c->server->mem += c->cost;
	uv_close((uv_handle_t *)&c->pipe, local__on_conn_closed);
}

/* An I/O error ends c; a client that just went away is not worth a log. */
static void
local__io_error(agent_local_conn *c, const char *what, int r)
{
	if (r != UV_EPIPE && r != UV_ECONNRESET)
		local__log(c->server, "error", "%s: %s: %s", c->server->name,
		    what, uv_strerror(r));
	local__close(c);
}

void
agent_local_stop(agent_local *s)
{
	struct stat st;

	if (s == NULL || s->stopping)
		return;
	s->stopping = true;
	/*
	 * Remove the file before closing the socket, and only if it is still
	 * ours: afterwards another agent may already have bound the path.
	 */
	if (lstat(s->path, &st) == 0 && st.st_dev == s->sock_dev &&
	    st.st_ino == s->sock_ino)
		unlink(s->path);
	uv_close((uv_handle_t *)&s->poll, local__on_poll_closed);
	uv_close((uv_handle_t *)&s->retry, local__on_server_handle_closed);
	uv_close((uv_handle_t *)&s->idle, local__on_server_handle_closed);
	for (agent_local_conn *c = s->conns; c != NULL; c = c->next)
		local__close(c);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */
/* ------------------------------------------------------------------------ */

static void local__on_write(uv_write_t *req, int status);

/* Hand the unwritten part of c->inflight to libuv. */
static int
local__write_inflight(agent_local_conn *c)
{
	size_t n = local__chunk(c->inflight.len - c->inflight_off);
	uv_buf_t b = uv_buf_init((char *)c->inflight.data + c->inflight_off,
	    (unsigned)n);
	int r = uv_write(&c->write_req, (uv_stream_t *)&c->pipe, &b, 1,
	    local__on_write);

	if (r == 0) {
		c->writing = true;
		c->inflight_chunk = n;
	}
	return r;
}

/*
 * Write c->out: what the socket takes now directly, then a chunk of the
 * rest through one uv_write. Only when no write is in flight.
 */
static int
local__write(agent_local_conn *c)
{
	uv_buf_t b;
	size_t chunk;
	int n;

	/* Drop what is gone once it is half the buffer: amortized O(1). */
	if (c->out_off > 0 && c->out_off >= c->out.len / 2) {
		revokd_buf_consume(&c->out, c->out_off);
		c->out_off = 0;
	}
	b = uv_buf_init((char *)c->out.data + c->out_off,
	    (unsigned)local__chunk(c->out.len - c->out_off));
	if ((n = uv_try_write((uv_stream_t *)&c->pipe, &b, 1)) == UV_EAGAIN)
		n = 0;
	if (n < 0)
		return n;
	c->out_off += (size_t)n;
	chunk = c->out.len - c->out_off;
	if (chunk > LOCAL_WRITE_CHUNK)
		chunk = LOCAL_WRITE_CHUNK;
	if (chunk > 0) {
		c->inflight.len = 0;
		c->inflight_off = 0;
		if (revokd_buf_append(&c->inflight, c->out.data + c->out_off,
		        chunk) != REVOKD_OK)
			return UV_ENOMEM;
		c->out_off += chunk;
	}
	if (c->out_off == c->out.len) {
		c->out_off = 0;
		local__buf_clear(&c->out);
	}
	return chunk > 0 ? local__write_inflight(c) : 0;
}

static void
local__on_write(uv_write_t *req, int status)
{
	agent_local_conn *c = req->data;
	int r;

	c->writing = false;
	if (c->closing)
		return;
	if (status < 0) {
		local__io_error(c, "write", status);
		return;
	}
	c->inflight_off += c->inflight_chunk;
	if (c->inflight_off < c->inflight.len) {
		if ((r = local__write_inflight(c)) != 0)
			local__io_error(c, "write", r);
		return;
	}
	c->inflight_off = 0;
	local__buf_clear(&c->inflight);
	local__flush(c);
}

/* Output the client has not read yet. */
static size_t
local__unwritten(const agent_local_conn *c)
{
	return c->out.len - c->out_off + (c->inflight.len - c->inflight_off);
}

/*
 * Count what c's buffers hold now into s->mem: true when c must be cut,
 * having grown past LOCAL_CONN_SMALL while all hold more than the budget.
 */
static bool
local__account(agent_local_conn *c)
{
	agent_local *s = c->server;
	size_t cost = c->decoder.cap + c->out.cap + c->inflight.cap + c->held;

	s->mem = s->mem - c->cost + cost;
	c->cost = cost;
	return s->mem > s->mem_budget && cost > LOCAL_CONN_SMALL;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

static void local__on_read(uv_stream_t *stream, ssize_t nread,
    const uv_buf_t *buf);

static void
local__on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	agent_local_conn *c = h->data;

	(void)suggested;
	*buf = uv_buf_init((char *)c->server->readbuf, LOCAL_READ_SIZE);
}

/* Whether the handler backlog says to pause, with hysteresis. */
static bool
local__backlogged(agent_local_conn *c)
{
	size_t high = c->server->cfg.max_output / 2;
	size_t backlog = c->held + c->queued * LOCAL_SLOT_COST;

	c->paused = c->paused ? backlog > high / 2 : backlog > high;
	return c->paused;
}

/* Start or stop reading as the state of c says. */
static void
local__update_reading(agent_local_conn *c)
{
	bool want =
	    !c->closing && !c->draining && !c->busy && !local__backlogged(c);
	int r;

	if (want == c->reading)
		return;
	if (!want) {
		uv_read_stop((uv_stream_t *)&c->pipe);
		c->reading = false;
		return;
	}
	if ((r = uv_read_start((uv_stream_t *)&c->pipe, local__on_alloc,
	         local__on_read)) != 0) {
		local__io_error(c, "read", r);
		return;
	}
	c->reading = true;
}

/*
 * After a batch or a fill: write what is ready, cut a client that does not
 * read, close a drained one, and pause or resume reading.
 */
static void
local__flush(agent_local_conn *c)
{
	agent_local *s = c->server;
	int r;

	if (c->closing || c->in_batch)
		return;
	if (!c->writing && c->out.len > c->out_off &&
	    (r = local__write(c)) != 0) {
		local__io_error(c, "write", r);
		return;
	}
	if (local__unwritten(c) > s->cfg.max_output) {
		s->stats.cut_slow++;
		local__log(s, "cut_slow", "%s: %zu bytes unread by a client",
		    s->name, local__unwritten(c));
		local__close(c);
		return;
	}
	if (local__account(c)) {
		s->stats.cut_memory++;
		local__log(s, "cut_memory",
		    "%s: a client holding %zu bytes while all hold %zu "
		    "(budget %zu)",
		    s->name, c->cost, s->mem, s->mem_budget);
		local__close(c);
		return;
	}
	if (c->draining && c->head == NULL && c->out.len == 0 && !c->writing) {
		local__close(c);
		return;
	}
	local__update_reading(c);
}

static revokd_err
local__frames_grow(agent_local *s)
{
	size_t cap = s->frames_cap ? s->frames_cap * 2 : 64;
	agent_local_frame *f = realloc(s->frames, cap * sizeof(*f));

	if (f == NULL)
		return REVOKD_ENOMEM;
	s->frames = f;
	s->frames_cap = cap;
	return REVOKD_OK;
}

/* Undo local__pull's slots after mark: they were never handed out. */
static void
local__unpull(agent_local_conn *c, agent_local_slot *mark, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(c->server->frames[i].slot);
	c->tail = mark;
	if (mark != NULL)
		mark->next = NULL;
	else
		c->head = NULL;
	c->queued -= n;
}

/*
 * Up to limit whole frames the decoder holds into s->frames, each with a
 * new slot. The frames stay valid together until the next feed:
 * wire_decoder_next only moves a read offset forward.
 */
static revokd_err
local__pull(agent_local_conn *c, size_t limit, size_t *out)
{
	agent_local *s = c->server;
	agent_local_slot *mark = c->tail, *slot;
	const uint8_t *data;
	size_t len, n = 0;

	while (n < limit &&
	       wire_decoder_next(&c->decoder, &data, &len) == REVOKD_OK) {
		if ((n == s->frames_cap &&
		        local__frames_grow(s) != REVOKD_OK) ||
		    (slot = local__slot_append(c)) == NULL) {
			local__unpull(c, mark, n);
			return REVOKD_ENOMEM;
		}
		s->frames[n++] = (agent_local_frame){ data, len, slot };
	}
	*out = n;
	return REVOKD_OK;
}

/* Give the oversize frame its slot and answer; no more requests after. */
static void
local__oversize(agent_local_conn *c)
{
	agent_local *s = c->server;
	/* The decoder stopped at the oversize header: it is next. */
	const uint8_t *p = c->decoder.buf + c->decoder.off;
	size_t declared =
	    (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
	agent_local_slot *slot = local__slot_append(c);

	if (slot == NULL) {
		local__close(c);
		return;
	}
	s->stats.oversize++;
	local__log(s, "oversize", "%s: a request of %zu bytes (limit %zu)",
	    s->name, declared, s->cfg.max_frame);
	c->draining = true;
	c->in_batch = true;
	s->cfg.on_oversize(s->cfg.arg, slot, declared);
	c->in_batch = false;
}

/*
 * Hand a quantum of c's requests to the handler, then write; returns how
 * many. While more may wait, c is busy (at the back of the queue); once
 * none do, the decoder shrinks and an oversize request that followed them
 * is answered.
 */
static size_t
local__serve(agent_local_conn *c)
{
	agent_local *s = c->server;
	size_t quantum = local__quantum(c), n;

	if (local__pull(c, quantum, &n) != REVOKD_OK) {
		local__log(s, "error", "%s: out of memory reading a request",
		    s->name);
		local__close(c);
		return 0;
	}
	if (n > 0) {
		s->stats.requests += n;
		c->in_batch = true;
		s->cfg.on_frames(s->cfg.arg, c, s->frames, n);
		c->in_batch = false;
	}
	/* The handler may have stopped the server or cut c meanwhile. */
	if (c->closing)
		return n;
	if (n == quantum) {
		local__busy_enter(c);
	} else {
		local__busy_leave(c);
		/* All taken (frames live during on_frames only): shrink. */
		if (c->decoder.off == c->decoder.len &&
		    c->decoder.cap > LOCAL_KEEP) {
			wire_decoder_free(&c->decoder);
			wire_decoder_init(&c->decoder, s->cfg.max_frame);
		}
		if (c->decoder.failed && !c->draining)
			local__oversize(c);
	}
	local__flush(c);
	return n;
}

/* Serve the busy queue from its head: a turn's worth, each at most once. */
static void
local__on_idle(uv_idle_t *h)
{
	agent_local *s = h->data;
	size_t served = 0;

	for (unsigned n = s->busy;
	     n > 0 && s->busy_head != NULL && served < LOCAL_TURN_FRAMES; n--)
		served += local__serve(s->busy_head);
}

/* Bytes arrived in the read buffer: decode and serve them. */
static void
local__take(agent_local_conn *c, size_t nread)
{
	if (wire_decoder_feed(&c->decoder, c->server->readbuf, nread) ==
	    REVOKD_ENOMEM) {
		local__log(c->server, "error",
		    "%s: out of memory reading a request", c->server->name);
		local__close(c);
		return;
	}
	(void)local__serve(c);
}

/* The client will send no more: answer what it asked, unless cut short. */
static void
local__eof(agent_local_conn *c)
{
	c->reading = false; /* libuv stops reading at EOF */
	if (c->decoder.len > c->decoder.off) {
		local__log(c->server, "truncated",
		    "%s: a client left in the middle of a request",
		    c->server->name);
		local__close(c);
		return;
	}
	c->draining = true;
	local__flush(c);
}

static void
local__on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
	agent_local_conn *c = stream->data;

	(void)buf;
	if (nread > 0) {
		local__take(c, (size_t)nread);
	} else if (nread == UV_EOF) {
		local__eof(c);
	} else if (nread < 0) {
		local__io_error(c, "read", (int)nread);
	}
}

/* ------------------------------------------------------------------------ */
/* Accepting                                                                */
/* ------------------------------------------------------------------------ */

/* Serve the accepted socket fd; false, fd untouched, without memory. */
static bool
local__conn_new(agent_local *s, int fd)
{
	agent_local_conn *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return false;
	uv_pipe_init(s->loop, &c->pipe, 0);
	c->pipe.data = c;
	c->write_req.data = c;
	c->server = s;
	wire_decoder_init(&c->decoder, s->cfg.max_frame);
	c->next = s->conns;
	if (s->conns != NULL)
		s->conns->prev = c;
	s->conns = c;
	s->handles++;
	s->open++;
	if (uv_pipe_open(&c->pipe, fd) != 0) {
		close(fd);
		local__close(c);
	} else {
		s->stats.accepted++;
		local__update_reading(c);
	}
	return true;
}

/*
 * A connection was accepted: serve it, or refuse it past the cap. False
 * when there is no memory for it (it is closed).
 */
static bool
local__take_conn(agent_local *s, int fd)
{
	if (s->open >= s->cfg.max_connections) {
		/* Accepted only to be closed: else it waits in the backlog. */
		s->stats.refused++;
		local__log(s, "refused", "%s: %u connections open already",
		    s->name, s->cfg.max_connections);
		close(fd);
	} else if (!local__conn_new(s, fd)) {
		close(fd);
		return false;
	}
	s->accept_failing = false;
	return true;
}

static void local__on_readable(uv_poll_t *p, int status, int events);

static void
local__on_retry(uv_timer_t *t)
{
	agent_local *s = t->data;

	if (!s->stopping)
		uv_poll_start(&s->poll, UV_READABLE, local__on_readable);
}

/* Stop watching the listening socket, and watch it again later. */
static void
local__accept_failed(agent_local *s, const char *reason)
{
	/* One line per run of failures, not one per retry. */
	if (!s->accept_failing)
		local__log(s, "accept_failed", "%s: accept: %s", s->name,
		    reason);
	s->accept_failing = true;
	uv_poll_stop(&s->poll);
	uv_timer_start(&s->retry, local__on_retry, LOCAL_ACCEPT_RETRY_MS, 0);
}

static void
local__on_readable(uv_poll_t *p, int status, int events)
{
	agent_local *s = p->data;

	(void)events;
	if (status < 0) {
		local__accept_failed(s, uv_strerror(status));
		return;
	}
	for (int i = 0; i < LOCAL_ACCEPTS_PER_TURN && !s->stopping; i++) {
		int fd =
		    accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

		if (fd >= 0) {
			if (!local__take_conn(s, fd)) {
				local__accept_failed(s, "out of memory");
				return;
			}
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			return;
		} else if (errno != EINTR && errno != ECONNABORTED) {
			/* Out of descriptors or memory, mostly. */
			local__accept_failed(s, strerror(errno));
			return;
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Starting                                                                 */
/* ------------------------------------------------------------------------ */

static revokd_err
local__check_config(const agent_local_config *c, char *err, size_t err_len)
{
	struct sockaddr_un sa;

	if (c->path == NULL || c->path[0] == '\0')
		return revokd_failf(err, err_len, REVOKD_EINVAL,
		    "local socket: no path");
	if (strlen(c->path) >= sizeof(sa.sun_path))
		return revokd_failf(err, err_len, REVOKD_EINVAL,
		    "%s: socket path longer than %zu bytes", c->path,
		    sizeof(sa.sun_path) - 1);
	if ((c->mode & ~0777u) != 0)
		return revokd_failf(err, err_len, REVOKD_EINVAL,
		    "%s: socket mode %o has bits beyond 0777", c->path,
		    c->mode);
	if (c->max_frame == 0 || c->max_frame > UINT32_MAX ||
	    c->max_output == 0 || c->max_connections == 0 ||
	    c->on_frames == NULL || c->on_oversize == NULL)
		return revokd_failf(err, err_len, REVOKD_EINVAL,
		    "%s: invalid server limits or handlers", c->path);
	return REVOKD_OK;
}

/*
 * Whether something accepts connections at path. A non-blocking connect
 * cannot hang on a live server whose backlog is full: that is EAGAIN.
 */
static revokd_err
local__probe(const char *path, char *err, size_t err_len)
{
	struct sockaddr_un sa;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int rc, e;

	if (fd < 0)
		return revokd_failf(err, err_len, revokd_err_from_errno(errno),
		    "%s: socket: %s", path, strerror(errno));
	local__sockaddr(&sa, path);
	rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
	e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS)
		return revokd_failf(err, err_len, REVOKD_EEXIST,
		    "%s: another process is serving this socket", path);
	if (e == ECONNREFUSED || e == ENOENT)
		return REVOKD_OK;
	return revokd_failf(err, err_len, revokd_err_from_errno(e),
	    "%s: cannot tell whether the socket is in use: %s", path,
	    strerror(e));
}

/* Make path free for bind: nothing there, or a stale socket removed. */
static revokd_err
local__clear_path(const agent_local_config *c, char *err, size_t err_len)
{
	struct stat st;
	revokd_err rc;

	if (lstat(c->path, &st) != 0) {
		if (errno == ENOENT)
			return REVOKD_OK;
		return revokd_failf(err, err_len, revokd_err_from_errno(errno),
		    "%s: %s", c->path, strerror(errno));
	}
	if (!S_ISSOCK(st.st_mode))
		return revokd_failf(err, err_len, REVOKD_EINVAL,
		    "%s: exists and is not a socket; leaving it alone",
		    c->path);
	if ((rc = local__probe(c->path, err, err_len)) != REVOKD_OK)
		return rc;
	if (unlink(c->path) != 0 && errno != ENOENT)
		return revokd_failf(err, err_len, revokd_err_from_errno(errno),
		    "%s: cannot remove the stale socket: %s", c->path,
		    strerror(errno));
	return REVOKD_OK;
}

/*
 * A socket bound to path, with exactly mode. bind() creates the file with
 * 0777 & ~umask, so the umask is ~mode around that one call: the file is
 * never more permissive than asked, not for an instant. (The umask is
 * per process: start servers before other threads create files.) The chmod
 * after is for a directory whose default ACL overrides the umask; it comes
 * before listen, while a connect would be refused anyway.
 */
static revokd_err
local__bind(agent_local *s, int *out, char *err, size_t err_len)
{
	struct sockaddr_un sa;
	struct stat st;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	const char *what;
	mode_t old;
	int rc, e;

	if (fd < 0)
		return revokd_failf(err, err_len, revokd_err_from_errno(errno),
		    "%s: socket: %s", s->path, strerror(errno));
	local__sockaddr(&sa, s->path);
	old = umask((mode_t)(~s->cfg.mode & 0777));
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	e = errno;
	umask(old);
	if (rc != 0) {
		what = "bind";
		goto fail;
	}
	if (chmod(s->path, s->cfg.mode) != 0 || lstat(s->path, &st) != 0) {
		e = errno;
		what = "chmod";
		unlink(s->path);
		goto fail;
	}
	s->sock_dev = st.st_dev;
	s->sock_ino = st.st_ino;
	*out = fd;
	return REVOKD_OK;
fail:
	close(fd);
	return revokd_failf(err, err_len, revokd_err_from_errno(e),
	    "%s: %s: %s", s->path, what, strerror(e));
}

static agent_local *
local__server_new(uv_loop_t *loop, const agent_local_config *c)
{
	agent_local *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->loop = loop;
	s->cfg = *c;
	s->name = strdup(c->name != NULL ? c->name : "local");
	s->path = strdup(c->path);
	s->readbuf = malloc(LOCAL_READ_SIZE);
	if (s->name == NULL || s->path == NULL || s->readbuf == NULL) {
		local__server_free(s);
		return NULL;
	}
	s->cfg.name = s->name;
	s->cfg.path = s->path;
	s->mem_budget = 2 * (c->max_frame + c->max_output);
	if (s->mem_budget < LOCAL_MEM_BUDGET)
		s->mem_budget = LOCAL_MEM_BUDGET;
	return s;
}

/*
 * Listen on the bound socket fd and watch it. On failure fd is closed and
 * the socket file removed, and s is left to the caller to free.
 */
static revokd_err
local__listen(agent_local *s, int fd, char *err, size_t err_len)
{
	const char *why;
	int r;

	if (listen(fd, SOMAXCONN) != 0) {
		why = strerror(errno);
	} else if ((r = uv_poll_init(s->loop, &s->poll, fd)) != 0) {
		why = uv_strerror(r);
	} else {
		s->fd = fd;
		s->poll.data = s;
		uv_timer_init(s->loop, &s->retry);
		s->retry.data = s;
		uv_idle_init(s->loop, &s->idle);
		s->idle.data = s;
		s->handles = 3;
		uv_poll_start(&s->poll, UV_READABLE, local__on_readable);
		return REVOKD_OK;
	}
	close(fd);
	unlink(s->path);
	return revokd_failf(err, err_len, REVOKD_EIO, "%s: listen: %s", s->path,
	    why);
}

revokd_err
agent_local_start(uv_loop_t *loop, const agent_local_config *c,
    agent_local **out, char *err, size_t err_len)
{
	agent_local *s;
	revokd_err rc;
	int fd = -1;

	if ((rc = local__check_config(c, err, err_len)) != REVOKD_OK ||
	    (rc = local__clear_path(c, err, err_len)) != REVOKD_OK)
		return rc;
	if ((s = local__server_new(loop, c)) == NULL)
		return revokd_failf(err, err_len, REVOKD_ENOMEM,
		    "%s: out of memory", c->path);
	if ((rc = local__bind(s, &fd, err, err_len)) != REVOKD_OK) {
		local__server_free(s);
		return rc;
	}
	if ((rc = local__listen(s, fd, err, err_len)) != REVOKD_OK) {
		local__server_free(s);
		return rc;
	}
	*out = s;
	return REVOKD_OK;
}

unsigned
agent_local_connections(const agent_local *s)
{
	return s->open;
}

void
agent_local_get_stats(const agent_local *s, agent_local_stats *out)
{
	*out = s->stats;
}
