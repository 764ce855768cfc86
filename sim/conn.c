/*
 * conn.c: connections between nodes. One per pair; it goes down when a
 * side hears nothing for SIM_DEAD_US (as a TCP user timeout would notice)
 * or the peer broke the protocol, and is redialled every SIM_DIAL_US; a
 * dial succeeds when both nodes run and neither direction is cut, and the
 * connection is up after a handshake of three round trips.
 */
#include "sim/sim.h"

#include <stdlib.h>
#include <string.h>

sim_conn *
sim_conn_of(sim *s, unsigned i, unsigned j)
{
	return i < j ? &s->conn[i][j] : &s->conn[j][i];
}

unsigned
sim_conn_end(const sim_conn *c, unsigned i)
{
	return i == c->a ? 0 : 1;
}

/* Bytes of one side's Hello and Auth, as wire would encode them. */
static uint64_t
sim__hello_auth_bytes(const char *region, uint16_t region_id)
{
	static const uint8_t cert[600], sig[72];
	wire_peer_msg m;
	uint8_t *frame;
	size_t len;
	uint64_t total = 0;

	memset(&m, 0, sizeof(m));
	m.type = WIRE_HELLO;
	m.u.hello.protocol = WIRE_PROTOCOL;
	strcpy(m.u.hello.cluster, "revokd-sim");
	strncpy(m.u.hello.region, region, WIRE_NAME_MAX);
	m.u.hello.region_id = region_id;
	m.u.hello.cert = cert;
	m.u.hello.cert_len = sizeof(cert);
	if (wire_peer_encode(&m, &frame, &len) == REVOKD_OK) {
		total += len;
		free(frame);
	}
	memset(&m, 0, sizeof(m));
	m.type = WIRE_AUTH;
	m.u.auth.sig = sig;
	m.u.auth.sig_len = sizeof(sig);
	if (wire_peer_encode(&m, &frame, &len) == REVOKD_OK) {
		total += len;
		free(frame);
	}
	return total;
}

/* Try to connect after delay (plus jitter); earlier dials are void. */
static void
sim__dial_later(sim *s, sim_conn *c, uint64_t delay)
{
	uint64_t jitter = revokd_rng_below(&s->conn_rng, SIM_DIAL_JITTER_US);

	sim_at(s, s->now + delay + jitter, SIM_EV_DIAL, c->a, c->b,
	    ++c->dial_token);
}

revokd_err
sim_conn_init(sim *s)
{
	for (unsigned a = 0; a < s->n; a++) {
		for (unsigned b = a + 1; b < s->n; b++) {
			sim_conn *c = &s->conn[a][b];

			memset(c, 0, sizeof(*c));
			c->a = a;
			c->b = b;
			c->handshake_bytes =
			    sim__hello_auth_bytes(s->node[a].name,
			        s->node[a].region_id) +
			    sim__hello_auth_bytes(s->node[b].name,
			        s->node[b].region_id);
			if (c->handshake_bytes == 0)
				return REVOKD_EINTERNAL;
		}
	}
	return REVOKD_OK;
}

/* Both nodes run and both directions pass. */
static bool
sim__can_connect(sim *s, const sim_conn *c)
{
	return s->node[c->a].alive && s->node[c->b].alive &&
	       s->link[c->a][c->b].cut == 0 && s->link[c->b][c->a].cut == 0;
}

void
sim_conn_close(sim *s, sim_conn *c, const char *why)
{
	bool was_up[2] = { c->up[0], c->up[1] };

	sim_trace(s, "conn %s-%s down: %s", s->node[c->a].name,
	    s->node[c->b].name, why);
	c->up[0] = c->up[1] = false;
	c->state = SIM_CONN_DOWN;
	c->gen++;
	sim_net_flush(s, c->a, c->b);
	sim_net_flush(s, c->b, c->a);
	if (was_up[0])
		sim_node_peer_down(&s->node[c->a], c->b);
	if (was_up[1])
		sim_node_peer_down(&s->node[c->b], c->a);
	sim__dial_later(s, c, SIM_DIAL_US);
}

void
sim_conn_on_dial(sim *s, const sim_event *ev)
{
	sim_conn *c = &s->conn[ev->a][ev->b];

	if (ev->token != c->dial_token || c->state == SIM_CONN_HANDSHAKE)
		return;
	if (c->state == SIM_CONN_UP) {
		unsigned gone = c->up[0] ? 1 : 0;

		if (c->up[0] && c->up[1])
			return;
		/* Half-open: the crashed side is back and dials anew; the
		 * side that still held the old connection drops it. */
		if (!s->node[gone == 0 ? c->a : c->b].alive)
			return;
		s->stats.closed_restart++;
		sim_conn_close(s, c, "redialled after a restart");
	}
	if (!sim__can_connect(s, c)) {
		sim__dial_later(s, c, SIM_DIAL_US);
		return;
	}
	c->state = SIM_CONN_HANDSHAKE;
	c->gen++;
	sim_at(s, s->now + 3 * 2 * s->link[c->a][c->b].one_way_us,
	    SIM_EV_HANDSHAKE, c->a, c->b, c->gen);
}

void
sim_conn_on_handshake(sim *s, const sim_event *ev)
{
	sim_conn *c = &s->conn[ev->a][ev->b];
	uint64_t gen;

	if (ev->token != c->gen || c->state != SIM_CONN_HANDSHAKE)
		return;
	if (!sim__can_connect(s, c)) {
		c->state = SIM_CONN_DOWN;
		c->gen++;
		sim__dial_later(s, c, SIM_DIAL_US);
		return;
	}
	sim_trace(s, "conn %s-%s up", s->node[c->a].name, s->node[c->b].name);
	c->state = SIM_CONN_UP;
	c->up[0] = c->up[1] = true;
	c->last_rx[0] = c->last_rx[1] = s->now;
	s->stats.connects++;
	s->stats.bytes.handshake += c->handshake_bytes;
	sim_net_flush(s, c->a, c->b);
	sim_net_flush(s, c->b, c->a);
	gen = c->gen;
	sim_at(s, s->now + SIM_DEAD_US, SIM_EV_TIMEOUT, c->a, c->b, gen);
	sim_node_peer_up(&s->node[c->a], c->b);
	if (c->gen == gen && c->up[1])
		sim_node_peer_up(&s->node[c->b], c->a);
}

void
sim_conn_on_timeout(sim *s, const sim_event *ev)
{
	sim_conn *c = &s->conn[ev->a][ev->b];
	uint64_t next = UINT64_MAX;

	if (ev->token != c->gen || c->state != SIM_CONN_UP)
		return;
	for (unsigned e = 0; e < 2; e++) {
		if (!c->up[e])
			continue;
		if (s->now - c->last_rx[e] >= SIM_DEAD_US) {
			s->stats.closed_timeout++;
			sim_conn_close(s, c, "nothing received for 2 s");
			return;
		}
		if (c->last_rx[e] + SIM_DEAD_US < next)
			next = c->last_rx[e] + SIM_DEAD_US;
	}
	if (next == UINT64_MAX) {
		sim_conn_close(s, c, "both ends gone");
		return;
	}
	sim_at(s, next, SIM_EV_TIMEOUT, c->a, c->b, c->gen);
}

void
sim_conn_received(sim *s, unsigned from, unsigned to)
{
	sim_conn *c = sim_conn_of(s, from, to);

	c->last_rx[sim_conn_end(c, to)] = s->now;
}

void
sim_conn_node_crashed(sim *s, unsigned i)
{
	for (unsigned j = 0; j < s->n; j++) {
		sim_conn *c;

		if (j == i)
			continue;
		c = sim_conn_of(s, i, j);
		if (c->state == SIM_CONN_HANDSHAKE) {
			c->state = SIM_CONN_DOWN;
			c->gen++;
			sim__dial_later(s, c, SIM_DIAL_US);
		} else if (c->state == SIM_CONN_UP) {
			/* The peer notices only by its timeout. */
			c->up[sim_conn_end(c, i)] = false;
			sim_net_flush(s, i, j);
			if (!c->up[0] && !c->up[1])
				sim_conn_close(s, c, "both ends crashed");
		}
	}
}

void
sim_conn_node_started(sim *s, unsigned i)
{
	for (unsigned j = 0; j < s->n; j++) {
		sim_conn *c;

		if (j == i)
			continue;
		c = sim_conn_of(s, i, j);
		if (c->state != SIM_CONN_HANDSHAKE)
			sim__dial_later(s, c, 0);
	}
}
