/*
 * hostile_peer.c: a peer region played by a test (hostile_peer.h).
 */
#include "hostile_peer.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent/handshake.h"
#include "agent/tls.h"

struct hp_peer {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
	agent_tls *tls;
	agent_hs *hs;
	engine_peer_config target; /* the one peer our handshake accepts */
	wire_decoder dec;
	hp_stats st;
	uint16_t local_port;
	uint64_t seq;          /* last batch seq sent */
	uint64_t last_send_ms; /* of our last frame */
	bool keepalive, reading;
	bool in_write;    /* inside hp__write: replies wait in `later` */
	revokd_buf later; /* frames to send once the write in progress ends */
	void (*on_msg)(void *, const wire_peer_msg *, const uint8_t *, size_t);
	void *on_msg_arg;
};

static uint64_t
hp__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

crdt_hlc
hp_hlc_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return CRDT_HLC_AT(
	    (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000);
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

static bool hp__write(hp_peer *p, const uint8_t *data, size_t len,
    uint64_t end);
static bool hp__send(hp_peer *p, const uint8_t *data, size_t len, uint64_t end);

/* One whole frame from the agent: the handshake's, or the engine's. */
static void
hp__frame(hp_peer *p, const uint8_t *frame, size_t len)
{
	wire_peer_msg m;

	p->st.frames_in++;
	if (p->hs != NULL && !agent_hs_done(p->hs)) {
		char why[256];
		uint8_t *reply = NULL;
		size_t reply_len = 0;

		if (agent_hs_receive(p->hs, frame, len, time(NULL), &reply,
		        &reply_len, why, sizeof(why)) != REVOKD_OK) {
			fprintf(stderr, "hostile peer: handshake: %s\n", why);
			p->st.closed = true;
		}
		if (reply != NULL && !p->st.closed)
			hp__send(p, reply, reply_len, hp__now_ms() + 5000);
		free(reply);
		p->st.up = !p->st.closed && agent_hs_done(p->hs);
		return;
	}
	if (wire_peer_decode(frame, len, &m) != REVOKD_OK) {
		fprintf(stderr, "hostile peer: the agent sent a frame that "
		                "does not decode\n");
		return;
	}
	p->st.by_type[m.type] += len + WIRE_HEADER_LEN;
	if (m.type == WIRE_ACK && m.u.ack.seq > p->st.acked)
		p->st.acked = m.u.ack.seq;
	if (m.type == WIRE_BATCH)
		p->st.entries_in += m.u.batch.count;
	if (p->on_msg != NULL)
		p->on_msg(p->on_msg_arg, &m, frame, len);
	wire_peer_msg_free(&m);
}

/* Read what is there now (non-blocking). False once closed. */
static bool
hp__read_now(hp_peer *p)
{
	uint8_t buf[16384];

	while (!p->st.closed) {
		int n = SSL_read(p->ssl, buf, sizeof(buf));
		const uint8_t *frame;
		size_t len;

		if (n <= 0) {
			int e = SSL_get_error(p->ssl, n);

			if (e == SSL_ERROR_WANT_READ ||
			    e == SSL_ERROR_WANT_WRITE)
				break;
			p->st.closed = true;
			ERR_clear_error();
			break;
		}
		p->st.bytes_in += (uint64_t)n;
		if (wire_decoder_feed(&p->dec, buf, (size_t)n) == REVOKD_ENOMEM)
			p->st.closed = true;
		while (!p->st.closed &&
		       wire_decoder_next(&p->dec, &frame, &len) == REVOKD_OK)
			hp__frame(p, frame, len);
	}
	return !p->st.closed;
}

/* A Heartbeat when we have been silent too long. */
static void
hp__keepalive(hp_peer *p)
{
	wire_peer_msg m;
	uint8_t *frame;
	size_t len;

	if (!p->keepalive || !p->st.up || p->st.closed ||
	    hp__now_ms() < p->last_send_ms + HP_KEEPALIVE_MS)
		return;
	memset(&m, 0, sizeof(m));
	m.type = WIRE_HEARTBEAT;
	m.u.heartbeat.hlc = hp_hlc_now();
	m.u.heartbeat.last_seq = p->seq;
	if (wire_peer_encode(&m, &frame, &len) != REVOKD_OK)
		return;
	hp__send(p, frame, len, hp__now_ms() + 5000);
	free(frame);
}

/* Wait for the socket (events) until `end`; read when readable. */
static void
hp__wait(hp_peer *p, short events, uint64_t end)
{
	uint64_t now = hp__now_ms();
	struct pollfd pfd = { p->fd, events, 0 };
	int ms = now < end ? (int)(end - now) : 0;

	if (p->reading && SSL_pending(p->ssl) > 0)
		ms = 0;
	if (ms > HP_KEEPALIVE_MS / 2)
		ms = HP_KEEPALIVE_MS / 2;
	if (p->reading)
		pfd.events |= POLLIN;
	if (poll(&pfd, 1, ms) < 0 && errno != EINTR)
		p->st.closed = true;
	if (p->reading)
		hp__read_now(p);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Write all of data by `end`, reading meanwhile. What is read may make a
 * callback send: that waits in p->later (OpenSSL must see a pending write
 * retried alone), sent right after.
 */
static bool
hp__write(hp_peer *p, const uint8_t *data, size_t len, uint64_t end)
{
	size_t done = 0;

	p->in_write = true;
	while (done < len && !p->st.closed) {
		size_t chunk = len - done > 16384 ? 16384 : len - done;
		int n = SSL_write(p->ssl, data + done, (int)chunk);

		if (n > 0) {
			done += (size_t)n;
			p->st.bytes_out += (uint64_t)n;
			continue;
		}
		switch (SSL_get_error(p->ssl, n)) {
		case SSL_ERROR_WANT_WRITE:
			if (hp__now_ms() >= end)
				return false;
			hp__wait(p, POLLOUT, end);
			break;
		case SSL_ERROR_WANT_READ:
			if (hp__now_ms() >= end)
				return false;
			hp__wait(p, POLLIN, end);
			break;
		default:
			p->st.closed = true;
			ERR_clear_error();
		}
	}
	p->in_write = false;
	p->last_send_ms = hp__now_ms();
	return done == len;
}

/* Write data, then whatever callbacks queued meanwhile. */
static bool
hp__send(hp_peer *p, const uint8_t *data, size_t len, uint64_t end)
{
	bool ok;

	if (p->in_write)
		return revokd_buf_append(&p->later, data, len) == REVOKD_OK;
	ok = hp__write(p, data, len, end);
	while (ok && p->later.len > 0) {
		revokd_buf now = p->later;

		memset(&p->later, 0, sizeof(p->later));
		ok = hp__write(p, now.data, now.len, end);
		revokd_buf_free(&now);
	}
	return ok;
}

bool
hp_send_raw(hp_peer *p, const void *data, size_t len, unsigned timeout_ms)
{
	return hp__send(p, data, len, hp__now_ms() + timeout_ms);
}

bool
hp_send_msg(hp_peer *p, const wire_peer_msg *m, unsigned timeout_ms)
{
	uint8_t *frame;
	size_t len;
	bool ok;

	if (wire_peer_encode(m, &frame, &len) != REVOKD_OK)
		return false;
	ok = hp_send_raw(p, frame, len, timeout_ms);
	free(frame);
	return ok;
}

uint64_t
hp_send_batch(hp_peer *p, uint64_t seq, const crdt_entry *e, size_t n,
    unsigned timeout_ms)
{
	uint8_t *packed = malloc(n * WIRE_ENTRY_MAX + 1);
	wire_peer_msg m;
	size_t len = 0;
	bool ok;

	if (packed == NULL)
		return 0;
	for (size_t i = 0; i < n; i++)
		len += wire_entry_encode(&e[i], packed + len);
	memset(&m, 0, sizeof(m));
	m.type = WIRE_BATCH;
	m.u.batch.seq = seq ? seq : p->seq + 1;
	m.u.batch.hlc = hp_hlc_now();
	m.u.batch.count = (uint32_t)n;
	m.u.batch.entries = packed;
	m.u.batch.entries_len = len;
	ok = hp_send_msg(p, &m, timeout_ms);
	free(packed);
	if (!ok)
		return 0;
	p->seq = m.u.batch.seq;
	return p->seq;
}

uint64_t
hp_last_seq(const hp_peer *p)
{
	return p->seq;
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                  */
/* ------------------------------------------------------------------------ */

bool
hp_pump(hp_peer *p, unsigned ms)
{
	uint64_t end = hp__now_ms() + ms;

	do {
		hp__keepalive(p);
		hp__wait(p, 0, end);
		if (p->later.len > 0)
			hp__send(p, NULL, 0, end);
	} while (!p->st.closed && hp__now_ms() < end);
	return !p->st.closed;
}

bool
hp_wait_ack(hp_peer *p, uint64_t seq, unsigned timeout_ms)
{
	uint64_t end = hp__now_ms() + timeout_ms;

	while (p->st.acked < seq && !p->st.closed && hp__now_ms() < end) {
		hp__keepalive(p);
		hp__wait(p, 0, end);
		if (p->later.len > 0)
			hp__send(p, NULL, 0, end);
	}
	return p->st.acked >= seq;
}

bool
hp_wait_closed(hp_peer *p, unsigned timeout_ms)
{
	uint64_t end = hp__now_ms() + timeout_ms;
	bool reading = p->reading;

	p->reading = true;
	while (!p->st.closed && hp__now_ms() < end)
		hp__wait(p, 0, end);
	p->reading = reading;
	return p->st.closed;
}

/* ------------------------------------------------------------------------ */
/* Connecting                                                               */
/* ------------------------------------------------------------------------ */

/* TCP to 127.0.0.1:port, non-blocking once connected. */
static int
hp__tcp(hp_peer *p, uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int one = 1;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(port);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		p->local_port = ntohs(sa.sin_port);
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* The TLS client: our certificate, the cluster CA, the agent's name. */
static revokd_err
hp__tls(hp_peer *p, const hp_config *c, uint64_t end, char *why, size_t why_len)
{
	char ca[512], cert[512], key[512];

	snprintf(ca, sizeof(ca), "%s/ca.pem", c->pki);
	snprintf(cert, sizeof(cert), "%s/%s.pem", c->pki, c->self);
	snprintf(key, sizeof(key), "%s/%s.key", c->pki, c->self);
	if ((p->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_use_certificate_file(p->ctx, cert, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_use_PrivateKey_file(p->ctx, key, SSL_FILETYPE_PEM) != 1 ||
	    SSL_CTX_load_verify_locations(p->ctx, ca, NULL) != 1 ||
	    (p->ssl = SSL_new(p->ctx)) == NULL) {
		snprintf(why, why_len, "TLS setup with %s failed", cert);
		return REVOKD_EAUTH;
	}
	SSL_set_verify(p->ssl, SSL_VERIFY_PEER, NULL);
	SSL_set1_host(p->ssl, c->target);
	SSL_set_mode(p->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE |
	                         SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	SSL_set_fd(p->ssl, p->fd);
	for (;;) {
		int n = SSL_connect(p->ssl), e;
		struct pollfd pfd = { p->fd, 0, 0 };
		uint64_t now = hp__now_ms();

		if (n == 1)
			return REVOKD_OK;
		e = SSL_get_error(p->ssl, n);
		if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
		    now >= end) {
			snprintf(why, why_len, "TLS handshake with %s: %s",
			    c->target,
			    now >= end ? "timed out"
			               : ERR_reason_error_string(
			                     ERR_peek_last_error()));
			ERR_clear_error();
			return now >= end ? REVOKD_ETIMEDOUT : REVOKD_EAUTH;
		}
		pfd.events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT;
		poll(&pfd, 1, (int)(end - now));
	}
}

/* Our Hello out, then frames in until the agent's Hello and Auth passed. */
static revokd_err
hp__handshake(hp_peer *p, const hp_config *c, uint64_t end, char *why,
    size_t why_len)
{
	agent_hs_config hc = { NULL, c->cluster, c->self, c->self_id, 1,
		&p->target };
	char ca[512], cert[512], key[512], err[512];
	uint8_t *hello;
	size_t hello_len;

	snprintf(ca, sizeof(ca), "%s/ca.pem", c->pki);
	snprintf(cert, sizeof(cert), "%s/%s.pem", c->pki, c->self);
	snprintf(key, sizeof(key), "%s/%s.key", c->pki, c->self);
	if (agent_tls_load(ca, cert, key, c->self, time(NULL), &p->tls, err,
	        sizeof(err)) != REVOKD_OK) {
		snprintf(why, why_len, "%s", err);
		return REVOKD_EAUTH;
	}
	hc.tls = p->tls;
	p->target.region_id = c->target_id;
	snprintf(p->target.name, sizeof(p->target.name), "%s", c->target);
	if (agent_hs_new(&hc, &p->hs, &hello, &hello_len) != REVOKD_OK) {
		snprintf(why, why_len, "cannot start the handshake");
		return REVOKD_EAUTH;
	}
	if (!hp__send(p, hello, hello_len, end)) {
		free(hello);
		snprintf(why, why_len, "the agent closed before our Hello");
		return REVOKD_EAUTH;
	}
	free(hello);
	if (c->hello_only) {
		/* Frames that come are read, but the handshake never goes on.
		 */
		agent_hs_free(p->hs);
		p->hs = NULL;
		return REVOKD_OK;
	}
	while (!p->st.up && !p->st.closed && hp__now_ms() < end)
		hp__wait(p, 0, end);
	if (p->st.up)
		return REVOKD_OK;
	snprintf(why, why_len, "handshake with %s: %s", c->target,
	    p->st.closed ? "refused or closed" : "timed out");
	return p->st.closed ? REVOKD_EAUTH : REVOKD_ETIMEDOUT;
}

revokd_err
hp_connect(const hp_config *c, unsigned timeout_ms, hp_peer **out, char *why,
    size_t why_len)
{
	hp_peer *p = calloc(1, sizeof(*p));
	uint64_t end = hp__now_ms() + timeout_ms;
	revokd_err err;

	if (p == NULL)
		return REVOKD_ENOMEM;
	p->keepalive = true;
	p->reading = true;
	wire_decoder_init(&p->dec, WIRE_MAX_FRAME_DEFAULT);
	if ((p->fd = hp__tcp(p, c->port)) < 0) {
		snprintf(why, why_len, "connect to port %u: %s", c->port,
		    strerror(errno));
		hp_free(p);
		return REVOKD_EIO;
	}
	if ((err = hp__tls(p, c, end, why, why_len)) != REVOKD_OK ||
	    (!c->no_handshake &&
	        (err = hp__handshake(p, c, end, why, why_len)) != REVOKD_OK)) {
		hp_free(p);
		return err;
	}
	p->last_send_ms = hp__now_ms();
	*out = p;
	return REVOKD_OK;
}

void
hp_free(hp_peer *p)
{
	if (p == NULL)
		return;
	if (p->ssl != NULL)
		SSL_free(p->ssl);
	if (p->ctx != NULL)
		SSL_CTX_free(p->ctx);
	if (p->fd >= 0)
		close(p->fd);
	agent_hs_free(p->hs);
	agent_tls_free(p->tls);
	wire_decoder_free(&p->dec);
	revokd_buf_free(&p->later);
	ERR_clear_error();
	free(p);
}

const hp_stats *
hp_stats_of(const hp_peer *p)
{
	return &p->st;
}

uint16_t
hp_local_port(const hp_peer *p)
{
	return p->local_port;
}

void
hp_on_message(hp_peer *p,
    void (*fn)(void *arg, const wire_peer_msg *m, const uint8_t *frame,
        size_t len),
    void *arg)
{
	p->on_msg = fn;
	p->on_msg_arg = arg;
}

void
hp_keepalive(hp_peer *p, bool on)
{
	p->keepalive = on;
}

void
hp_reading(hp_peer *p, bool on)
{
	p->reading = on;
}
