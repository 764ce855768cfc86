/*
 * net.c: the peer transport (see net.h for the theory).
 */
#include "agent/net.h"

#include <arpa/inet.h>
#include <nng/nng.h>
#include <nng/supplemental/tls/tls.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/handshake.h"
#include "agent/log.h"

#define NET_RX_BUF 65536
#define NET_SWEEP_MS 250
#define NET_BACKOFF_MIN_MS 100
#define NET_BACKOFF_MAX_MS 5000

/*
 * After a failed accept (out of descriptors, mostly), wait this long before
 * the next: the connection stays in the kernel's backlog, so accepting
 * again at once fails again at once, a busy loop.
 */
#define NET_ACCEPT_RETRY_MS 100

/* What an nng completion reports to the loop. */
enum net_ev_type { EV_ACCEPT, EV_DIAL, EV_RX, EV_TX };

struct net_event {
	struct net_event *next;
	enum net_ev_type type;
	int result;
	size_t count;
	nng_stream *stream; /* ACCEPT, DIAL */
	uint64_t conn;      /* RX, TX: connection id */
	unsigned peer;      /* DIAL */
};

/* A frame waiting to be sent; `sent` bytes of it are gone already. */
struct net_frame {
	struct net_frame *next;
	uint8_t *data;
	size_t len, sent;
	bool engine; /* from the engine: report send_done */
};

struct net_conn {
	struct net_conn *next;
	agent_net *net;
	uint64_t id;
	nng_stream *stream;
	nng_aio *rx_aio, *tx_aio;
	uint8_t *rx_buf;
	wire_decoder dec;
	agent_hs *hs; /* until proven */
	int peer;     /* once proven, else -1 */
	int dialed;   /* the peer we dialed, or -1 when accepted */
	bool up;      /* the peer's connection, engine told */
	bool tx_busy;
	struct net_frame *tx_head, *tx_tail;
	uint64_t deadline_ms; /* of the handshake */
	uint64_t last_rx_ms;
	char addr[64];
};

struct net_peer {
	agent_net *net;
	unsigned index;
	nng_tls_config *tls;
	nng_stream_dialer *dialer;
	nng_aio *dial_aio;
	bool dialing;
	uv_timer_t redial;
	uint64_t backoff_ms;
	struct net_conn *conn; /* the proven one */
};

struct agent_net {
	agent_net_config cfg;
	engine_peer_config *hs_peers;
	struct net_peer *peers;
	nng_tls_config *server_tls;
	nng_stream_listener *listener;
	nng_aio *accept_aio;
	uv_async_t async;
	uv_timer_t sweep;
	uv_timer_t accept_retry;
	bool accept_failing; /* the last accept failed: do not log again */
	pthread_mutex_t mu;
	struct net_event *ev_head, *ev_tail;
	struct net_conn *conns;
	uint64_t next_id;
	agent_net_stats stats;
	bool stopping;
	unsigned open_handles; /* libuv handles not yet closed */
};

/* ------------------------------------------------------------------------ */
/* Events: from nng threads to the loop                                     */
/* ------------------------------------------------------------------------ */

static void
net_post(agent_net *n, struct net_event *ev)
{
	pthread_mutex_lock(&n->mu);
	if (n->ev_tail)
		n->ev_tail->next = ev;
	else
		n->ev_head = ev;
	n->ev_tail = ev;
	pthread_mutex_unlock(&n->mu);
	uv_async_send(&n->async);
}

/* Record aio's completion. Out of memory here can only be logged. */
static void
net_post_aio(agent_net *n, enum net_ev_type type, nng_aio *aio, uint64_t conn,
    unsigned peer)
{
	struct net_event *ev = calloc(1, sizeof(*ev));

	if (ev == NULL) {
		agent_log(AGENT_LOG_ERROR, "out_of_memory", "where",
		    "net event", NULL);
		return;
	}
	ev->type = type;
	ev->result = nng_aio_result(aio);
	ev->conn = conn;
	ev->peer = peer;
	if (ev->result == 0 && (type == EV_ACCEPT || type == EV_DIAL))
		ev->stream = nng_aio_get_output(aio, 0);
	else if (ev->result == 0)
		ev->count = nng_aio_count(aio);
	net_post(n, ev);
}

static void
net_accept_cb(void *arg)
{
	agent_net *n = arg;

	net_post_aio(n, EV_ACCEPT, n->accept_aio, 0, 0);
}

static void
net_dial_cb(void *arg)
{
	struct net_peer *p = arg;

	net_post_aio(p->net, EV_DIAL, p->dial_aio, 0, p->index);
}

static void
net_rx_cb(void *arg)
{
	struct net_conn *c = arg;

	net_post_aio(c->net, EV_RX, c->rx_aio, c->id, 0);
}

static void
net_tx_cb(void *arg)
{
	struct net_conn *c = arg;

	net_post_aio(c->net, EV_TX, c->tx_aio, c->id, 0);
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static uint64_t
net_now_ms(const agent_net *n)
{
	return uv_now(n->cfg.loop);
}

static void
net_addr(nng_stream *s, char *buf, size_t len)
{
	nng_sockaddr sa;
	char ip[INET6_ADDRSTRLEN] = "?";

	snprintf(buf, len, "?");
	if (nng_stream_get_addr(s, NNG_OPT_REMADDR, &sa) != 0)
		return;
	if (sa.s_family == NNG_AF_INET) {
		inet_ntop(AF_INET, &sa.s_in.sa_addr, ip, sizeof(ip));
		snprintf(buf, len, "%s:%u", ip, ntohs(sa.s_in.sa_port));
	} else if (sa.s_family == NNG_AF_INET6) {
		inet_ntop(AF_INET6, sa.s_in6.sa_addr, ip, sizeof(ip));
		snprintf(buf, len, "[%s]:%u", ip, ntohs(sa.s_in6.sa_port));
	}
}

static struct net_conn *
net_conn_find(agent_net *n, uint64_t id)
{
	for (struct net_conn *c = n->conns; c != NULL; c = c->next)
		if (c->id == id)
			return c;
	return NULL;
}

static const char *
net_peer_name(const agent_net *n, int peer)
{
	return peer >= 0 ? n->cfg.peers[peer].name : "?";
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                  */
/* ------------------------------------------------------------------------ */

static void
net_tx_start(struct net_conn *c)
{
	struct net_frame *f = c->tx_head;
	nng_iov iov;

	if (c->tx_busy || f == NULL)
		return;
	iov.iov_buf = f->data + f->sent;
	iov.iov_len = f->len - f->sent;
	nng_aio_set_iov(c->tx_aio, 1, &iov);
	c->tx_busy = true;
	nng_stream_send(c->stream, c->tx_aio);
}

static void
net_tx_queue(struct net_conn *c, uint8_t *data, size_t len, bool from_engine)
{
	struct net_frame *f = calloc(1, sizeof(*f));

	if (f == NULL) {
		free(data);
		return;
	}
	f->data = data;
	f->len = len;
	f->engine = from_engine;
	if (c->tx_tail)
		c->tx_tail->next = f;
	else
		c->tx_head = f;
	c->tx_tail = f;
	net_tx_start(c);
}

void
agent_net_send(agent_net *n, unsigned peer, uint8_t *frame, size_t len)
{
	struct net_conn *c = peer < n->cfg.n_peers ? n->peers[peer].conn : NULL;

	/* The engine only sends to peers it was told are up. */
	if (c == NULL || n->stopping) {
		free(frame);
		return;
	}
	net_tx_queue(c, frame, len, true);
}

/* ------------------------------------------------------------------------ */
/* Connections                                                              */
/* ------------------------------------------------------------------------ */

static void net_schedule_dial(struct net_peer *p);

static void
net_conn_free(struct net_conn *c)
{
	while (c->tx_head != NULL) {
		struct net_frame *f = c->tx_head;

		c->tx_head = f->next;
		free(f->data);
		free(f);
	}
	nng_aio_free(c->rx_aio);
	nng_aio_free(c->tx_aio);
	nng_stream_free(c->stream);
	agent_hs_free(c->hs);
	wire_decoder_free(&c->dec);
	free(c->rx_buf);
	free(c);
}

/* Close c for `reason`, tell whoever must know, and free it. */
static void
net_conn_close(struct net_conn *c, agent_log_level level, const char *event,
    const char *reason)
{
	agent_net *n = c->net;
	struct net_conn **pp;

	for (pp = &n->conns; *pp != NULL && *pp != c; pp = &(*pp)->next)
		;
	if (*pp == NULL)
		return;
	*pp = c->next;
	if (c->hs != NULL && n->stats.pending > 0)
		n->stats.pending--;
	agent_log(level, event, "peer", net_peer_name(n, c->peer), "addr",
	    c->addr, "reason", reason, NULL);
	nng_stream_close(c->stream);
	/* Wait out the callbacks: afterwards no event can name c. */
	nng_aio_stop(c->rx_aio);
	nng_aio_stop(c->tx_aio);
	if (c->up && n->peers[c->peer].conn == c) {
		n->peers[c->peer].conn = NULL;
		if (!n->stopping)
			n->cfg.peer_down(n->cfg.arg, (unsigned)c->peer);
	}
	if (c->dialed >= 0 && !n->stopping && n->peers[c->dialed].conn == NULL)
		net_schedule_dial(&n->peers[c->dialed]);
	net_conn_free(c);
}

static void
net_rx_start(struct net_conn *c)
{
	nng_iov iov = { c->rx_buf, NET_RX_BUF };

	nng_aio_set_iov(c->rx_aio, 1, &iov);
	nng_stream_recv(c->stream, c->rx_aio);
}

/* A new stream (accepted, or dialed to peer `dialed`): start the handshake. */
static void
net_conn_new(agent_net *n, nng_stream *s, int dialed)
{
	agent_hs_config hc = { n->cfg.tls, n->cfg.cluster, n->cfg.region,
		n->cfg.region_id, n->cfg.n_peers, n->hs_peers };
	struct net_conn *c = calloc(1, sizeof(*c));
	uint8_t *hello;
	size_t hello_len;

	if (c == NULL || (c->rx_buf = malloc(NET_RX_BUF)) == NULL ||
	    nng_aio_alloc(&c->rx_aio, net_rx_cb, c) != 0 ||
	    nng_aio_alloc(&c->tx_aio, net_tx_cb, c) != 0 ||
	    agent_hs_new(&hc, &c->hs, &hello, &hello_len) != REVOKD_OK) {
		agent_log(AGENT_LOG_ERROR, "out_of_memory", "where",
		    "new connection", NULL);
		if (c != NULL) {
			c->stream = s;
			net_conn_free(c);
		} else {
			nng_stream_free(s);
		}
		return;
	}
	c->net = n;
	c->id = ++n->next_id;
	c->stream = s;
	c->peer = -1;
	c->dialed = dialed;
	c->deadline_ms = net_now_ms(n) + n->cfg.handshake_ms;
	c->last_rx_ms = net_now_ms(n);
	net_addr(s, c->addr, sizeof(c->addr));
	wire_decoder_init(&c->dec, n->cfg.max_frame);
	c->next = n->conns;
	n->conns = c;
	n->stats.pending++;
	net_tx_queue(c, hello, hello_len, false);
	net_rx_start(c);
}

/* c proved to be its peer: make it the peer's connection. */
static void
net_conn_proven(agent_net *n, struct net_conn *c)
{
	unsigned peer = agent_hs_peer(c->hs);
	struct net_peer *p = &n->peers[peer];

	agent_hs_free(c->hs);
	c->hs = NULL;
	n->stats.pending--;
	c->peer = (int)peer;
	if (c->dialed >= 0 && (unsigned)c->dialed != peer) {
		net_conn_close(c, AGENT_LOG_WARN, "peer_refused",
		    "dialed another region");
		return;
	}
	if (p->conn != NULL)
		net_conn_close(p->conn, AGENT_LOG_INFO, "peer_replaced",
		    "a newer connection proved the same region");
	p->conn = c;
	p->backoff_ms = 0;
	c->up = true;
	agent_log(AGENT_LOG_INFO, "peer_up", "peer",
	    p->net->cfg.peers[peer].name, "addr", c->addr, "direction",
	    c->dialed >= 0 ? "out" : "in", NULL);
	n->cfg.peer_up(n->cfg.arg, peer);
}

/* A handshake frame from c. False when c was closed. */
static bool
net_conn_handshake(agent_net *n, struct net_conn *c, const uint8_t *frame,
    size_t len)
{
	char why[256] = "";
	uint8_t *reply = NULL;
	size_t reply_len = 0;
	revokd_err err;

	err = agent_hs_receive(c->hs, frame, len, time(NULL), &reply,
	    &reply_len, why, sizeof(why));
	if (reply != NULL)
		net_tx_queue(c, reply, reply_len, false);
	if (err != REVOKD_OK) {
		n->stats.refused++;
		net_conn_close(c, AGENT_LOG_WARN, "peer_refused", why);
		return false;
	}
	if (agent_hs_done(c->hs)) {
		uint64_t id = c->id;

		net_conn_proven(n, c); /* may close c */
		return net_conn_find(n, id) != NULL;
	}
	return true;
}

/* Frames of a proven link, all that this read brought, to the engine. */
static bool
net_conn_frames(agent_net *n, struct net_conn *c, revokd_err *next_err)
{
	engine_frame frames[64];
	size_t k = 0;
	const uint8_t *frame;
	size_t len;
	revokd_err err;

	do {
		while (k < 64 && (*next_err = wire_decoder_next(&c->dec, &frame,
		                      &len)) == REVOKD_OK)
			frames[k++] = (engine_frame){ frame, len };
		if (k == 0)
			return true;
		err = n->cfg.frames(n->cfg.arg, (unsigned)c->peer, frames, k);
		if (err != REVOKD_OK) {
			net_conn_close(c, AGENT_LOG_WARN, "peer_protocol_error",
			    revokd_strerror(err));
			return false;
		}
		k = 0;
	} while (*next_err == REVOKD_OK);
	return true;
}

static void
net_on_rx(agent_net *n, struct net_conn *c, const struct net_event *ev)
{
	const uint8_t *frame;
	size_t len;
	revokd_err err;

	if (ev->result != 0 || ev->count == 0) {
		if (!c->up)
			n->stats.refused++;
		net_conn_close(c, AGENT_LOG_WARN,
		    c->up ? "peer_down" : "peer_refused",
		    ev->result ? nng_strerror(ev->result) : "closed");
		return;
	}
	c->last_rx_ms = net_now_ms(n);
	/* A refused feed still leaves the whole frames before it to pull. */
	(void)wire_decoder_feed(&c->dec, c->rx_buf, ev->count);
	/* The handshake's frames one by one; the engine's all at once. */
	while (c->hs != NULL &&
	       (err = wire_decoder_next(&c->dec, &frame, &len)) == REVOKD_OK)
		if (!net_conn_handshake(n, c, frame, len))
			return;
	if (c->hs == NULL && !net_conn_frames(n, c, &err))
		return;
	if (err != REVOKD_EAGAIN) {
		net_conn_close(c, AGENT_LOG_WARN, "peer_protocol_error",
		    "frame over max_message");
		return;
	}
	net_rx_start(c);
}

static void
net_on_tx(agent_net *n, struct net_conn *c, const struct net_event *ev)
{
	struct net_frame *f = c->tx_head;
	bool from_engine;

	c->tx_busy = false;
	if (ev->result != 0) {
		if (!c->up)
			n->stats.refused++;
		net_conn_close(c, AGENT_LOG_WARN,
		    c->up ? "peer_down" : "peer_refused",
		    nng_strerror(ev->result));
		return;
	}
	f->sent += ev->count;
	if (f->sent < f->len) {
		net_tx_start(c); /* a partial send: the rest */
		return;
	}
	c->tx_head = f->next;
	if (c->tx_head == NULL)
		c->tx_tail = NULL;
	from_engine = f->engine;
	free(f->data);
	free(f);
	net_tx_start(c);
	if (from_engine && c->up)
		n->cfg.send_done(n->cfg.arg, (unsigned)c->peer);
}

/* ------------------------------------------------------------------------ */
/* Listening and dialing                                                    */
/* ------------------------------------------------------------------------ */

static void
net_accept_retry_cb(uv_timer_t *t)
{
	agent_net *n = t->data;

	if (!n->stopping)
		nng_stream_listener_accept(n->listener, n->accept_aio);
}

/*
 * The accepted connection that has been proving itself longest, or NULL.
 * A real peer proves itself in a few round trips; one that has not after
 * more connections came than the cap holds is the likeliest to be idle.
 */
static struct net_conn *
net_oldest_unproven(agent_net *n)
{
	struct net_conn *oldest = NULL;

	for (struct net_conn *c = n->conns; c != NULL; c = c->next)
		if (c->hs != NULL && c->dialed < 0 &&
		    (oldest == NULL || c->id < oldest->id))
			oldest = c;
	return oldest;
}

/*
 * At the cap of handshakes in progress, a new connection takes the place
 * of the oldest accepted one: connections that never prove themselves can
 * hold the cap only by outpacing a real peer's handshake, not by merely
 * coming back before the deadline.
 */
static void
net_on_accept(agent_net *n, const struct net_event *ev)
{
	struct net_conn *oldest;

	if (ev->result == 0) {
		n->accept_failing = false;
		n->stats.accepted++;
		if (n->stopping) {
			nng_stream_free(ev->stream);
		} else if (n->stats.pending >= n->cfg.max_pending &&
		           (oldest = net_oldest_unproven(n)) == NULL) {
			char addr[64];

			net_addr(ev->stream, addr, sizeof(addr));
			n->stats.refused++;
			agent_log(AGENT_LOG_WARN, "peer_refused", "addr", addr,
			    "reason", "too many handshakes in progress", NULL);
			nng_stream_free(ev->stream);
		} else {
			if (n->stats.pending >= n->cfg.max_pending) {
				n->stats.refused++;
				net_conn_close(oldest, AGENT_LOG_WARN,
				    "peer_refused",
				    "too many handshakes in progress");
			}
			net_conn_new(n, ev->stream, -1);
		}
	} else if (ev->result != NNG_ECLOSED) {
		/* One line per run of failures, not one per retry. */
		agent_log(n->accept_failing ? AGENT_LOG_DEBUG : AGENT_LOG_WARN,
		    "accept_failed", "reason", nng_strerror(ev->result), NULL);
		n->accept_failing = true;
		if (!n->stopping)
			uv_timer_start(&n->accept_retry, net_accept_retry_cb,
			    NET_ACCEPT_RETRY_MS, 0);
		return;
	}
	if (!n->stopping)
		nng_stream_listener_accept(n->listener, n->accept_aio);
}

static void
net_redial_cb(uv_timer_t *t)
{
	struct net_peer *p =
	    (struct net_peer *)((char *)t - offsetof(struct net_peer, redial));

	if (p->net->stopping || p->dialing || p->conn != NULL)
		return;
	p->dialing = true;
	p->net->stats.dials++;
	nng_stream_dialer_dial(p->dialer, p->dial_aio);
}

static void
net_schedule_dial(struct net_peer *p)
{
	uint64_t delay = p->backoff_ms;

	p->backoff_ms = p->backoff_ms ? p->backoff_ms * 2 : NET_BACKOFF_MIN_MS;
	if (p->backoff_ms > NET_BACKOFF_MAX_MS)
		p->backoff_ms = NET_BACKOFF_MAX_MS;
	/* +-20% so that restarted regions do not redial in lock step. */
	delay += delay / 5 - (uint64_t)(rand() % (int)(2 * delay / 5 + 1));
	uv_timer_start(&p->redial, net_redial_cb, delay, 0);
}

static void
net_on_dial(agent_net *n, const struct net_event *ev)
{
	struct net_peer *p = &n->peers[ev->peer];

	p->dialing = false;
	if (ev->result != 0) {
		n->stats.dial_failures++;
		/* Every retry of a peer that is down is not worth a warning. */
		agent_log(p->backoff_ms >= NET_BACKOFF_MAX_MS ? AGENT_LOG_DEBUG
		                                              : AGENT_LOG_INFO,
		    "dial_failed", "peer", p->net->cfg.peers[p->index].name,
		    "url", p->net->cfg.peers[p->index].url, "reason",
		    nng_strerror(ev->result), NULL);
		if (!n->stopping)
			net_schedule_dial(p);
		return;
	}
	if (n->stopping) {
		nng_stream_free(ev->stream);
		return;
	}
	net_conn_new(n, ev->stream, (int)ev->peer);
}

/* ------------------------------------------------------------------------ */
/* The loop side                                                            */
/* ------------------------------------------------------------------------ */

static void
net_dispatch(agent_net *n, const struct net_event *ev)
{
	struct net_conn *c;

	switch (ev->type) {
	case EV_ACCEPT:
		net_on_accept(n, ev);
		return;
	case EV_DIAL:
		net_on_dial(n, ev);
		return;
	case EV_RX:
	case EV_TX:
		/* A connection closed since its aio completed is gone. */
		if ((c = net_conn_find(n, ev->conn)) == NULL)
			return;
		if (ev->type == EV_RX)
			net_on_rx(n, c, ev);
		else
			net_on_tx(n, c, ev);
		return;
	}
}

static void
net_async_cb(uv_async_t *a)
{
	agent_net *n = a->data;
	struct net_event *ev;

	pthread_mutex_lock(&n->mu);
	ev = n->ev_head;
	n->ev_head = n->ev_tail = NULL;
	pthread_mutex_unlock(&n->mu);
	if (ev != NULL && !n->stopping && n->cfg.burst_begin)
		n->cfg.burst_begin(n->cfg.arg);
	while (ev != NULL) {
		struct net_event *next = ev->next;

		if (n->stopping && ev->stream != NULL)
			nng_stream_free(ev->stream);
		else if (!n->stopping)
			net_dispatch(n, ev);
		free(ev);
		ev = next;
	}
	if (!n->stopping && n->cfg.burst_end)
		n->cfg.burst_end(n->cfg.arg);
}

/* Handshakes past their deadline, and proven links gone silent. */
static void
net_sweep_cb(uv_timer_t *t)
{
	agent_net *n = t->data;
	uint64_t now = net_now_ms(n);
	struct net_conn *c = n->conns, *next;

	for (; c != NULL; c = next) {
		next = c->next;
		if (c->hs != NULL && now >= c->deadline_ms) {
			n->stats.timeouts++;
			net_conn_close(c, AGENT_LOG_WARN, "peer_refused",
			    "handshake not finished in time");
		} else if (c->up && now >= c->last_rx_ms + n->cfg.dead_ms) {
			n->stats.timeouts++;
			net_conn_close(c, AGENT_LOG_WARN, "peer_down",
			    "nothing received for too long");
		}
	}
}

/* ------------------------------------------------------------------------ */
/* Start and stop                                                           */
/* ------------------------------------------------------------------------ */

static int
net_tls_config(const agent_tls *t, nng_tls_mode mode, const char *server,
    nng_tls_config **out)
{
	nng_tls_config *cfg;
	int rv;

	if ((rv = nng_tls_config_alloc(&cfg, mode)) != 0)
		return rv;
	if ((rv = nng_tls_config_own_cert(cfg, agent_tls_cert_pem(t),
	         agent_tls_key_pem(t), NULL)) != 0 ||
	    (rv = nng_tls_config_ca_chain(cfg, agent_tls_ca_pem(t), NULL)) !=
	        0 ||
	    (rv = nng_tls_config_auth_mode(cfg, NNG_TLS_AUTH_MODE_REQUIRED)) !=
	        0 ||
	    (server != NULL &&
	        (rv = nng_tls_config_server_name(cfg, server)) != 0)) {
		nng_tls_config_free(cfg);
		return rv;
	}
	*out = cfg;
	return 0;
}

/* The region with the smaller id dials. */
static int
net_peer_setup(agent_net *n, unsigned i)
{
	struct net_peer *p = &n->peers[i];
	const agent_peer_config *pc = &n->cfg.peers[i];
	int rv;

	if (n->cfg.region_id > pc->id)
		return 0;
	if ((rv = net_tls_config(n->cfg.tls, NNG_TLS_MODE_CLIENT, pc->name,
	         &p->tls)) != 0 ||
	    (rv = nng_stream_dialer_alloc(&p->dialer, pc->url)) != 0 ||
	    (rv = nng_stream_dialer_set_ptr(p->dialer, NNG_OPT_TLS_CONFIG,
	         p->tls)) != 0 ||
	    (rv = nng_stream_dialer_set_bool(p->dialer, NNG_OPT_TCP_NODELAY,
	         true)) != 0 ||
	    (rv = nng_aio_alloc(&p->dial_aio, net_dial_cb, p)) != 0)
		return rv;
	net_redial_cb(&p->redial);
	return 0;
}

static int
net_listen(agent_net *n)
{
	int rv;

	if ((rv = net_tls_config(n->cfg.tls, NNG_TLS_MODE_SERVER, NULL,
	         &n->server_tls)) != 0 ||
	    (rv = nng_stream_listener_alloc(&n->listener, n->cfg.listen_url)) !=
	        0 ||
	    (rv = nng_stream_listener_set_ptr(n->listener, NNG_OPT_TLS_CONFIG,
	         n->server_tls)) != 0 ||
	    (rv = nng_stream_listener_set_bool(n->listener, NNG_OPT_TCP_NODELAY,
	         true)) != 0 ||
	    (rv = nng_aio_alloc(&n->accept_aio, net_accept_cb, n)) != 0 ||
	    (rv = nng_stream_listener_listen(n->listener)) != 0)
		return rv;
	nng_stream_listener_accept(n->listener, n->accept_aio);
	return 0;
}

static void
net_handle_closed(uv_handle_t *h)
{
	agent_net *n = h->data;

	if (--n->open_handles > 0)
		return;
	pthread_mutex_destroy(&n->mu);
	free(n->peers);
	free(n->hs_peers);
	free(n);
}

static void
net_teardown(agent_net *n)
{
	n->stopping = true;
	if (n->listener)
		nng_stream_listener_close(n->listener);
	if (n->accept_aio)
		nng_aio_stop(n->accept_aio);
	for (unsigned i = 0; i < n->cfg.n_peers; i++) {
		struct net_peer *p = &n->peers[i];

		if (p->dialer)
			nng_stream_dialer_close(p->dialer);
		if (p->dial_aio)
			nng_aio_stop(p->dial_aio);
	}
	while (n->conns != NULL)
		net_conn_close(n->conns, AGENT_LOG_INFO, "peer_closed",
		    "shutting down");
	net_async_cb(&n->async); /* free streams still queued */
	for (unsigned i = 0; i < n->cfg.n_peers; i++) {
		struct net_peer *p = &n->peers[i];

		nng_aio_free(p->dial_aio);
		nng_stream_dialer_free(p->dialer);
		if (p->tls)
			nng_tls_config_free(p->tls);
	}
	nng_aio_free(n->accept_aio);
	nng_stream_listener_free(n->listener);
	if (n->server_tls)
		nng_tls_config_free(n->server_tls);
	for (unsigned i = 0; i < n->cfg.n_peers; i++)
		uv_close((uv_handle_t *)&n->peers[i].redial, net_handle_closed);
	uv_close((uv_handle_t *)&n->sweep, net_handle_closed);
	uv_close((uv_handle_t *)&n->accept_retry, net_handle_closed);
	uv_close((uv_handle_t *)&n->async, net_handle_closed);
}

revokd_err
agent_net_start(const agent_net_config *c, agent_net **out, char *err,
    size_t err_len)
{
	agent_net *n = calloc(1, sizeof(*n));
	int rv = 0;

	if (n == NULL)
		return REVOKD_ENOMEM;
	n->cfg = *c;
	if (!n->cfg.max_pending)
		n->cfg.max_pending = 64;
	if (!n->cfg.handshake_ms)
		n->cfg.handshake_ms = 10000;
	if (!n->cfg.dead_ms)
		n->cfg.dead_ms = 3000;
	n->peers = calloc(c->n_peers + 1, sizeof(*n->peers));
	n->hs_peers = calloc(c->n_peers + 1, sizeof(*n->hs_peers));
	if (n->peers == NULL || n->hs_peers == NULL) {
		free(n->peers);
		free(n->hs_peers);
		free(n);
		return REVOKD_ENOMEM;
	}
	for (unsigned i = 0; i < c->n_peers; i++) {
		n->hs_peers[i].region_id = c->peers[i].id;
		snprintf(n->hs_peers[i].name, sizeof(n->hs_peers[i].name), "%s",
		    c->peers[i].name);
	}
	pthread_mutex_init(&n->mu, NULL);
	uv_async_init(c->loop, &n->async, net_async_cb);
	n->async.data = n;
	uv_timer_init(c->loop, &n->sweep);
	n->sweep.data = n;
	uv_timer_init(c->loop, &n->accept_retry);
	n->accept_retry.data = n;
	n->open_handles = 3 + c->n_peers;
	for (unsigned i = 0; i < c->n_peers; i++) {
		n->peers[i].net = n;
		n->peers[i].index = i;
		uv_timer_init(c->loop, &n->peers[i].redial);
		n->peers[i].redial.data = n;
	}
	uv_timer_start(&n->sweep, net_sweep_cb, NET_SWEEP_MS, NET_SWEEP_MS);
	if ((rv = net_listen(n)) != 0)
		snprintf(err, err_len, "listen %s: %s", c->listen_url,
		    nng_strerror(rv));
	for (unsigned i = 0; rv == 0 && i < c->n_peers; i++)
		if ((rv = net_peer_setup(n, i)) != 0)
			snprintf(err, err_len, "peer %s (%s): %s",
			    c->peers[i].name, c->peers[i].url,
			    nng_strerror(rv));
	if (rv != 0) {
		net_teardown(n);
		return REVOKD_EIO;
	}
	*out = n;
	return REVOKD_OK;
}

void
agent_net_stop(agent_net *n)
{
	if (n != NULL)
		net_teardown(n);
}

void
agent_net_get_stats(const agent_net *n, agent_net_stats *out)
{
	*out = n->stats;
}
