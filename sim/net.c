/*
 * net.c: links. Frames are serialized at the link's bandwidth, travel the
 * one-way latency plus jitter, and are delivered in order; loss costs a
 * retransmission (head-of-line blocking), a cut stalls the link. The
 * hostile faults (duplicate, reorder, drop), used only by chaos runs, break
 * the stream on purpose.
 */
#include "sim/sim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
sim_net_init(sim *s)
{
	for (unsigned i = 0; i < s->n; i++) {
		for (unsigned j = 0; j < s->n; j++) {
			sim_link *l = &s->link[i][j];

			memset(l, 0, sizeof(*l));
			l->from = i;
			l->to = j;
			l->one_way_us = sim_one_way_us(i, j);
		}
	}
}

void
sim_net_flush(sim *s, unsigned from, unsigned to)
{
	sim_link *l = &s->link[from][to];

	while (l->head != NULL) {
		sim_frame *f = l->head;

		l->head = f->next;
		free(f->data);
		free(f);
		s->stats.frames_lost++;
	}
	l->tail = NULL;
	l->armed = false;
	l->token++;
	l->busy_until = s->now;
}

void
sim_net_free(sim *s)
{
	for (unsigned i = 0; i < s->n; i++)
		for (unsigned j = 0; j < s->n; j++)
			sim_net_flush(s, i, j);
}

/* Microseconds to put len bytes on the wire. */
static uint64_t
sim__serialize_us(size_t len)
{
	return ((uint64_t)len * 8 * SIM_S + SIM_BANDWIDTH_BPS - 1) /
	       SIM_BANDWIDTH_BPS;
}

/* TCP-style loss: each loss costs one RTT + 2 ms, and losses repeat. */
static uint64_t
sim__loss_delay(sim *s, const sim_link *l)
{
	uint64_t delay = 0;

	if (s->loss <= 0)
		return 0;
	for (int k = 0; k < 32 && revokd_rng_unit(&s->net_rng) < s->loss; k++) {
		delay += 2 * l->one_way_us + SIM_RETRANSMIT_US;
		s->stats.retransmits++;
	}
	return delay;
}

static void
sim__count(sim *s, wire_peer_type type, size_t len)
{
	s->stats.frames++;
	switch (type) {
	case WIRE_BATCH:
	case WIRE_ACK:
		s->stats.bytes.delta += len;
		break;
	case WIRE_RECON:
		s->stats.bytes.repair += len;
		break;
	default:
		s->stats.bytes.control += len;
		break;
	}
}

static void
sim__arm(sim *s, sim_link *l, uint64_t at)
{
	l->armed = true;
	sim_at(s, at < s->now ? s->now : at, SIM_EV_DELIVER, l->from, l->to,
	    ++l->token);
}

/* Queue frame on l, on the wire from `sent` (serialization over). */
static void
sim__enqueue(sim *s, sim_link *l, wire_peer_type type, uint8_t *frame,
    size_t len, uint64_t sent)
{
	sim_frame *f;

	if ((f = calloc(1, sizeof(*f))) == NULL) {
		free(frame);
		sim_fail(s, REVOKD_ENOMEM);
		return;
	}
	f->data = frame;
	f->len = len;
	f->type = type;
	f->arrival = sent + l->one_way_us +
	             revokd_rng_below(&s->net_rng, SIM_JITTER_US + 1) +
	             sim__loss_delay(s, l);
	if (l->tail != NULL)
		l->tail->next = f;
	else
		l->head = f;
	l->tail = f;
	if (!l->armed)
		sim__arm(s, l, f->arrival);
}

void
sim_net_send(sim *s, unsigned from, unsigned to, wire_peer_type type,
    uint8_t *frame, size_t len)
{
	sim_conn *c = sim_conn_of(s, from, to);
	sim_link *l = &s->link[from][to];
	uint64_t start = s->now > l->busy_until ? s->now : l->busy_until;
	sim_event ev = { 0 };

	sim__count(s, type, len);
	ev.time = start + sim__serialize_us(len);
	ev.type = SIM_EV_SEND_DONE;
	ev.a = from;
	ev.b = to;
	ev.token = c->gen;
	ev.inc = s->node[from].incarnation;
	if (sim_sched_push(&s->q, &ev) != REVOKD_OK) {
		free(frame);
		sim_fail(s, REVOKD_ENOMEM);
		return;
	}
	if (!c->up[sim_conn_end(c, from)] || len < WIRE_HEADER_LEN) {
		/* Told the peer is down, yet sending: the frame is lost. */
		s->stats.sends_while_down++;
		free(frame);
		return;
	}
	l->busy_until = ev.time;
	sim__enqueue(s, l, type, frame, len, ev.time);
}

void
sim_net_on_send_done(sim *s, const sim_event *ev)
{
	sim_conn *c = sim_conn_of(s, ev->a, ev->b);
	sim_node *n = &s->node[ev->a];

	if (ev->token != c->gen || !n->alive || ev->inc != n->incarnation)
		return;
	sim_node_send_done(n, ev->b);
}

/* Hand one frame to the engine of `to`; a protocol error closes. */
static void
sim__deliver(sim *s, unsigned from, unsigned to, const uint8_t *data,
    size_t len)
{
	sim_conn *c = sim_conn_of(s, from, to);
	char why[96];
	revokd_err err;

	sim_conn_received(s, from, to);
	err = sim_node_receive(&s->node[to], from, data + WIRE_HEADER_LEN,
	    len - WIRE_HEADER_LEN);
	if (err == REVOKD_OK)
		return;
	if (s->stats.first_error[0] == '\0')
		snprintf(s->stats.first_error, sizeof(s->stats.first_error),
		    "%s at %s from %s, t=%.3fs", revokd_err_name(err),
		    s->node[to].name, s->node[from].name, (double)s->now / 1e6);
	s->stats.closed_error++;
	snprintf(why, sizeof(why), "%s refused a frame from %s: %s",
	    s->node[to].name, s->node[from].name, revokd_err_name(err));
	sim_conn_close(s, c, why);
}

/* True when `to` can take frames on its connection with `from`. */
static bool
sim__receivable(sim *s, unsigned from, unsigned to, uint64_t gen)
{
	sim_conn *c = sim_conn_of(s, from, to);

	return c->gen == gen && c->state == SIM_CONN_UP &&
	       c->up[sim_conn_end(c, to)] && s->node[to].alive;
}

/* Apply the hostile faults to frame f; true when it was consumed. */
static bool
sim__hostile(sim *s, sim_link *l, sim_frame *f, uint64_t gen)
{
	double u;
	sim_event ev = { 0 };

	if (s->drop <= 0 && s->reorder <= 0)
		return false;
	u = revokd_rng_unit(&s->net_rng);
	if (u < s->drop) {
		sim_trace(s, "hostile: %s frame %s -> %s dropped",
		    wire_peer_type_name(f->type), s->node[l->from].name,
		    s->node[l->to].name);
		s->stats.dropped++;
		free(f->data);
		return true;
	}
	if (u >= s->drop + s->reorder)
		return false;
	ev.time = s->now + SIM_MS + revokd_rng_below(&s->net_rng, 50 * SIM_MS);
	ev.type = SIM_EV_LATE;
	ev.a = l->from;
	ev.b = l->to;
	ev.token = gen;
	ev.data = f->data;
	ev.len = f->len;
	if (sim_sched_push(&s->q, &ev) != REVOKD_OK) {
		free(f->data);
		sim_fail(s, REVOKD_ENOMEM);
		return true;
	}
	s->stats.reordered++;
	sim_trace(s, "hostile: %s frame %s -> %s delayed",
	    wire_peer_type_name(f->type), s->node[l->from].name,
	    s->node[l->to].name);
	return true;
}

/* Deliver f (popped from l) to its receiver, maybe twice. */
static void
sim__deliver_head(sim *s, sim_link *l, sim_frame *f)
{
	sim_conn *c = sim_conn_of(s, l->from, l->to);
	uint64_t gen = c->gen;

	if (!sim__receivable(s, l->from, l->to, gen)) {
		s->stats.frames_lost++;
		free(f->data);
		return;
	}
	if (sim__hostile(s, l, f, gen))
		return;
	sim__deliver(s, l->from, l->to, f->data, f->len);
	if (s->dup > 0 && revokd_rng_unit(&s->net_rng) < s->dup &&
	    sim__receivable(s, l->from, l->to, gen)) {
		s->stats.dup++;
		sim_trace(s, "hostile: %s frame %s -> %s duplicated",
		    wire_peer_type_name(f->type), s->node[l->from].name,
		    s->node[l->to].name);
		sim__deliver(s, l->from, l->to, f->data, f->len);
	}
	free(f->data);
}

void
sim_net_on_deliver(sim *s, const sim_event *ev)
{
	sim_link *l = &s->link[ev->a][ev->b];
	sim_frame *f = l->head;

	if (ev->token != l->token || !l->armed)
		return;
	l->armed = false;
	if (f == NULL)
		return;
	if (l->cut > 0) {
		/* Stalled: TCP keeps retransmitting until the link heals or
		 * the connection is declared dead. */
		uint64_t rto = 2 * l->one_way_us + SIM_RETRANSMIT_US;

		sim__arm(s, l,
		    s->now + (rto > SIM_RTO_MIN_US ? rto : SIM_RTO_MIN_US));
		return;
	}
	l->head = f->next;
	if (l->head == NULL)
		l->tail = NULL;
	sim__deliver_head(s, l, f);
	free(f);
	if (l->head != NULL && !l->armed)
		sim__arm(s, l, l->head->arrival);
}

void
sim_net_on_late(sim *s, sim_event *ev)
{
	if (sim__receivable(s, ev->a, ev->b, ev->token))
		sim__deliver(s, ev->a, ev->b, ev->data, ev->len);
	else
		s->stats.frames_lost++;
	free(ev->data);
	ev->data = NULL;
}
