/*
 * handshake.c: the identity handshake of a peer connection (handshake.h).
 *
 * Theory of states. A handshake waits for the peer's Hello, then for its
 * Auth, then is done; any refusal moves it to failed for good:
 *
 *   WAIT_HELLO --Hello passes--> WAIT_AUTH --Auth verifies--> DONE
 *        \________________________\___ anything else ___> FAILED
 *
 * What a Hello must pass, in order: our protocol; our cluster; a region
 * that is not ours and does not send our own nonce back (a reflected Hello:
 * with our own name on both sides, the names in Auth would bind nothing);
 * a configured peer with the id we configured; a certificate that
 * agent_tls_check_peer accepts for that region. Only then do we sign its
 * nonce, so nothing is signed for a stranger. Auth proves the peer holds
 * the certificate's key now: it signs our fresh nonce, its name and ours,
 * so an old Auth, or one made for another region, does not verify.
 *
 * Reasons name the claimed region and quote peer-chosen names with
 * anything but printable ASCII replaced, since they end up in logs.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/handshake.h"

/* Bytes agent_auth_message writes at most (tls.h). */
#define AGENT__HS_MSG_MAX (WIRE_NONCE_LEN + 2 * (WIRE_NAME_MAX + 1) + 32)

/* Room for a name quoted in a reason. */
#define AGENT__HS_NAME_ROOM (WIRE_NAME_MAX + 1)

typedef enum agent__hs_state {
	AGENT__HS_WAIT_HELLO,
	AGENT__HS_WAIT_AUTH,
	AGENT__HS_DONE,
	AGENT__HS_FAILED,
} agent__hs_state;

struct agent_hs {
	/* A copy; the tls, names and peers it points to outlive hs. */
	agent_hs_config cfg;
	agent__hs_state state;
	uint8_t nonce[WIRE_NONCE_LEN]; /* ours: the peer must sign it */
	char claimed[WIRE_NAME_MAX + 1];
	unsigned peer;         /* index in cfg.peers; cfg.n_peers until known */
	agent_peer_cert *cert; /* the peer's, once its Hello passed */
};

/* s with anything but printable ASCII replaced by '?', into buf. */
static const char *
agent__hs_printable(const char *s, char *buf, size_t len)
{
	size_t at = 0;

	for (; *s != '\0' && at + 1 < len; s++) {
		unsigned char ch = (unsigned char)*s;

		buf[at++] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
	}
	buf[at] = '\0';
	return buf;
}

/* Copy a name that Hello can carry; false when it cannot. */
static bool
agent__hs_copy_name(char *dst, const char *src)
{
	size_t n;

	if (src == NULL)
		return false;
	n = strnlen(src, WIRE_NAME_MAX + 1);
	if (n == 0 || n > WIRE_NAME_MAX)
		return false;
	memcpy(dst, src, n + 1);
	return true;
}

/* The index of the configured peer called name, or n_peers. */
static unsigned
agent__hs_find(const agent_hs_config *c, const char *name)
{
	unsigned i;

	for (i = 0; i < c->n_peers; i++)
		if (strcmp(c->peers[i].name, name) == 0)
			break;
	return i;
}

revokd_err
agent_hs_new(const agent_hs_config *c, agent_hs **out, uint8_t **hello,
    size_t *hello_len)
{
	wire_peer_msg m;
	agent_hs *hs;
	uint8_t *frame;
	size_t frame_len;
	revokd_err rc;

	if (c == NULL || c->tls == NULL || (c->n_peers > 0 && c->peers == NULL))
		return REVOKD_EINVAL;
	if ((hs = calloc(1, sizeof(*hs))) == NULL)
		return REVOKD_ENOMEM;
	hs->cfg = *c;
	hs->state = AGENT__HS_WAIT_HELLO;
	hs->peer = c->n_peers;
	memset(&m, 0, sizeof(m));
	m.type = WIRE_HELLO;
	m.u.hello.protocol = WIRE_PROTOCOL;
	m.u.hello.region_id = c->region_id;
	m.u.hello.cert = agent_tls_cert_der(c->tls, &m.u.hello.cert_len);
	if (!agent__hs_copy_name(m.u.hello.cluster, c->cluster) ||
	    !agent__hs_copy_name(m.u.hello.region, c->region)) {
		rc = REVOKD_EINVAL;
		goto fail;
	}
	if ((rc = agent_random(hs->nonce, WIRE_NONCE_LEN)) != REVOKD_OK)
		goto fail;
	memcpy(m.u.hello.nonce, hs->nonce, WIRE_NONCE_LEN);
	if ((rc = wire_peer_encode(&m, &frame, &frame_len)) != REVOKD_OK)
		goto fail;
	*out = hs;
	*hello = frame;
	*hello_len = frame_len;
	return REVOKD_OK;
fail:
	agent_hs_free(hs);
	return rc;
}

void
agent_hs_free(agent_hs *hs)
{
	if (hs == NULL)
		return;
	agent_peer_cert_free(hs->cert);
	free(hs);
}

/* Our Auth frame: our signature over the peer's nonce and both names. */
static revokd_err
agent__hs_auth_frame(const agent_hs *hs, const uint8_t *peer_nonce,
    uint8_t **frame, size_t *frame_len)
{
	uint8_t msg[AGENT__HS_MSG_MAX], sig[AGENT_SIG_MAX];
	size_t msg_len, sig_len;
	wire_peer_msg m;
	revokd_err rc;

	agent_auth_message(peer_nonce, hs->cfg.region, hs->claimed, msg,
	    &msg_len);
	rc = agent_tls_sign(hs->cfg.tls, msg, msg_len, sig, &sig_len);
	if (rc != REVOKD_OK)
		return rc;
	memset(&m, 0, sizeof(m));
	m.type = WIRE_AUTH;
	m.u.auth.sig = sig;
	m.u.auth.sig_len = sig_len;
	return wire_peer_encode(&m, frame, frame_len);
}

/*
 * The Hello's fields against our configuration: the region's index into
 * *peer, or a refusal.
 */
static revokd_err
agent__hs_check_hello(const agent_hs *hs, const wire_hello *h, unsigned *peer,
    char *why, size_t why_len)
{
	const agent_hs_config *c = &hs->cfg;
	char region[AGENT__HS_NAME_ROOM], cluster[AGENT__HS_NAME_ROOM];
	unsigned i;

	agent__hs_printable(h->region, region, sizeof(region));
	if (h->protocol != WIRE_PROTOCOL) {
		snprintf(why, why_len, "protocol %u, want %d (region %s)",
		    (unsigned)h->protocol, WIRE_PROTOCOL, region);
		return REVOKD_EPROTO;
	}
	if (strcmp(h->cluster, c->cluster) != 0) {
		snprintf(why, why_len, "cluster %s, want %s (region %s)",
		    agent__hs_printable(h->cluster, cluster, sizeof(cluster)),
		    c->cluster, region);
		return REVOKD_EAUTH;
	}
	if (strcmp(h->region, c->region) == 0) {
		snprintf(why, why_len, "region %s is this agent's own", region);
		return REVOKD_EAUTH;
	}
	if (memcmp(h->nonce, hs->nonce, WIRE_NONCE_LEN) == 0) {
		snprintf(why, why_len, "region %s sent our own nonce back",
		    region);
		return REVOKD_EAUTH;
	}
	if ((i = agent__hs_find(c, h->region)) == c->n_peers) {
		snprintf(why, why_len, "unknown region %s", region);
		return REVOKD_EAUTH;
	}
	if (c->peers[i].region_id != h->region_id) {
		snprintf(why, why_len, "region %s claims id %u, configured %u",
		    region, (unsigned)h->region_id,
		    (unsigned)c->peers[i].region_id);
		return REVOKD_EAUTH;
	}
	*peer = i;
	return REVOKD_OK;
}

/* A Hello: check it and its certificate, then sign its nonce. */
static revokd_err
agent__hs_hello(agent_hs *hs, const wire_hello *h, time_t now, uint8_t **reply,
    size_t *reply_len, char *why, size_t why_len)
{
	char region[AGENT__HS_NAME_ROOM], reason[256];
	unsigned peer;
	revokd_err rc;

	agent__hs_printable(h->region, region, sizeof(region));
	if (hs->state != AGENT__HS_WAIT_HELLO) {
		snprintf(why, why_len, "second hello (region %s)", region);
		return REVOKD_EPROTO;
	}
	memcpy(hs->claimed, h->region, sizeof(hs->claimed));
	rc = agent__hs_check_hello(hs, h, &peer, why, why_len);
	if (rc != REVOKD_OK)
		return rc;
	rc = agent_tls_check_peer(hs->cfg.tls, h->cert, h->cert_len, h->region,
	    now, &hs->cert, reason, sizeof(reason));
	if (rc != REVOKD_OK) {
		snprintf(why, why_len, "region %s: %s", region, reason);
		return rc;
	}
	rc = agent__hs_auth_frame(hs, h->nonce, reply, reply_len);
	if (rc != REVOKD_OK) {
		snprintf(why, why_len, "region %s: cannot sign our auth: %s",
		    region, revokd_strerror(rc));
		return rc;
	}
	hs->peer = peer;
	hs->state = AGENT__HS_WAIT_AUTH;
	return REVOKD_OK;
}

/* An Auth: the peer's signature over our nonce and both names. */
static revokd_err
agent__hs_auth(agent_hs *hs, const wire_auth *a, char *why, size_t why_len)
{
	char region[AGENT__HS_NAME_ROOM];
	uint8_t msg[AGENT__HS_MSG_MAX];
	size_t msg_len;
	revokd_err rc;

	if (hs->state != AGENT__HS_WAIT_AUTH) {
		snprintf(why, why_len, "auth before hello");
		return REVOKD_EPROTO;
	}
	agent__hs_printable(hs->claimed, region, sizeof(region));
	agent_auth_message(hs->nonce, hs->claimed, hs->cfg.region, msg,
	    &msg_len);
	rc = agent_peer_verify(hs->cert, msg, msg_len, a->sig, a->sig_len);
	if (rc == REVOKD_EAUTH)
		snprintf(why, why_len,
		    "region %s: auth signature does not verify with its "
		    "certificate",
		    region);
	else if (rc != REVOKD_OK)
		snprintf(why, why_len, "region %s: cannot verify auth: %s",
		    region, revokd_strerror(rc));
	if (rc != REVOKD_OK)
		return rc;
	hs->state = AGENT__HS_DONE;
	return REVOKD_OK;
}

revokd_err
agent_hs_receive(agent_hs *hs, const uint8_t *frame, size_t len, time_t now,
    uint8_t **reply, size_t *reply_len, char *why, size_t why_len)
{
	uint8_t *out = NULL;
	size_t out_len = 0;
	wire_peer_msg m;
	revokd_err rc;

	if (hs->state == AGENT__HS_DONE || hs->state == AGENT__HS_FAILED) {
		snprintf(why, why_len, "handshake already %s",
		    hs->state == AGENT__HS_DONE ? "complete" : "failed");
		return REVOKD_EPROTO;
	}
	if ((rc = wire_peer_decode(frame, len, &m)) != REVOKD_OK) {
		snprintf(why, why_len, "undecodable frame: %s",
		    revokd_strerror(rc));
		hs->state = AGENT__HS_FAILED;
		return REVOKD_EPROTO;
	}
	switch (m.type) {
	case WIRE_HELLO:
		rc = agent__hs_hello(hs, &m.u.hello, now, &out, &out_len, why,
		    why_len);
		break;
	case WIRE_AUTH:
		rc = agent__hs_auth(hs, &m.u.auth, why, why_len);
		break;
	default:
		snprintf(why, why_len, "%s message during the handshake",
		    wire_peer_type_name(m.type));
		rc = REVOKD_EPROTO;
	}
	wire_peer_msg_free(&m);
	if (rc != REVOKD_OK) {
		hs->state = AGENT__HS_FAILED;
		return rc;
	}
	*reply = out;
	*reply_len = out_len;
	return REVOKD_OK;
}

bool
agent_hs_done(const agent_hs *hs)
{
	return hs->state == AGENT__HS_DONE;
}

unsigned
agent_hs_peer(const agent_hs *hs)
{
	return hs->peer;
}

const char *
agent_hs_claimed(const agent_hs *hs)
{
	return hs->claimed;
}
