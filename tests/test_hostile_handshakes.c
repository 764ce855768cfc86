/*
 * test_hostile_handshakes.c: connections to a real agent's peer port that
 * never prove who they are. docs/operations.md: connections that have not
 * finished TLS and the identity handshake are at most 64 at once (a new
 * one closes the oldest, "too many handshakes in progress") and each is
 * closed 10 s after it was accepted ("handshake not finished in time"). So
 * they cannot take the agent's file descriptors, whatever their number,
 * nor keep a real peer out by coming back before the deadline.
 *
 * The cluster: alpha (id 1) a real agent that dials beta, beta (2) the
 * agent attacked, and gamma (3), whose certificate the test uses to stall
 * at each step of the handshake and, in the end, to join as a real peer.
 *
 * What is checked: the agent's descriptors stay within its cap; beyond it
 * the oldest connections are closed at once; held ones are closed after
 * the deadline and not much before; the link to alpha, up before, never
 * drops; a real peer that dials while the cap is full gets in without
 * waiting for the deadline; and checks are answered throughout.
 *
 * The group teardown stops the agents with SIGTERM and fails when one did
 * not exit 0 or its log holds a sanitizer report.
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
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/cluster.h"
#include "hostile_peer.h"
#include "hostile_util.h"

#define READY_MS 30000

#define REVOKED REVOKD__LOCAL__VERDICT__REVOKED_TOKEN
#define KNOWN "known-revoked"

#define ALPHA 0
#define BETA 1  /* the target */
#define GAMMA 2 /* played by the test */

/* The agent's documented limits (agent/net.h defaults). */
#define MAX_PENDING 64
#define DEADLINE_MS 10000
#define SWEEP_MS 250

/* Silent connections opened at once. */
#define SILENT 1000

static int teardown_failures;

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */
/* ------------------------------------------------------------------------ */

static int
group_teardown(void **state)
{
	cluster *c = *state;
	char why[1024];
	bool ok = true;

	if (c == NULL)
		return 0;
	if (c->n > 0 && !(ok = cluster_shutdown(c, why, sizeof(why))))
		print_error("agent trouble: %s\n", why);
	cluster_free(c);
	free(c);
	teardown_failures += !ok;
	return ok ? 0 : -1;
}

static int
group_setup(void **state)
{
	cluster *c = calloc(1, sizeof(*c));

	*state = c;
	if (c == NULL || cluster_new(3, NULL, c) != REVOKD_OK)
		return -1;
	for (unsigned i = ALPHA; i <= BETA; i++)
		if (!cluster_start(c, i)) {
			cluster_print_log(c, i);
			return -1;
		}
	if (!cluster_wait_ready(c, BETA, READY_MS) ||
	    cluster_revoke(c, BETA, KNOWN, 1, NULL) == 0)
		return -1;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* A connection of ours and what became of it. */
struct conn {
	int fd;
	uint64_t opened_ms;
	uint64_t closed_ms; /* 0 while open */
	hp_peer *peer;      /* for the TLS ones */
	bool held;          /* silent ones: not refused at once */
};

/* A plain TCP connection to beta's peer port (blocking connect). */
static int
tcp_to(cluster *c, unsigned i)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(c->node[i].port);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Note the connections the agent has closed (EOF or reset) by now. */
static unsigned
poll_closed(struct conn *v, unsigned n)
{
	unsigned closed = 0;

	for (unsigned k = 0; k < n; k++) {
		struct pollfd pfd = { v[k].fd, POLLIN, 0 };
		char buf[4096];

		if (v[k].closed_ms == 0 && v[k].fd >= 0 &&
		    poll(&pfd, 1, 0) == 1) {
			ssize_t r =
			    recv(v[k].fd, buf, sizeof(buf), MSG_DONTWAIT);

			/* TLS records (the agent's Hello) are not a close. */
			if (r == 0 || (r < 0 && errno != EAGAIN))
				v[k].closed_ms = cluster_now_ms();
		}
		closed += v[k].closed_ms != 0;
	}
	return closed;
}

/* Connect as gamma through TLS (and as far into the handshake as asked). */
static hp_peer *
as_gamma(cluster *c, bool no_handshake, bool hello_only, revokd_err *err)
{
	hp_config hc = { .cluster = "test",
		.self = c->node[GAMMA].name,
		.self_id = c->node[GAMMA].id,
		.target = c->node[BETA].name,
		.target_id = c->node[BETA].id,
		.port = c->node[BETA].port,
		.no_handshake = no_handshake,
		.hello_only = hello_only };
	char pki[300], why[512];
	hp_peer *p = NULL;

	snprintf(pki, sizeof(pki), "%s/pki", c->dir);
	hc.pki = pki;
	*err = hp_connect(&hc, 5000, &p, why, sizeof(why));
	if (*err != REVOKD_OK)
		print_message("as gamma: %s\n", why);
	return p;
}

/* ------------------------------------------------------------------------ */
/* Tests                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * A thousand TCP connections that never say a word, then alpha restarts
 * and dials into them: at most 64 are held at a time, each new one taking
 * the place of the oldest; the agent's descriptors stay within the cap;
 * alpha gets in while the cap is still full of silent ones, without
 * waiting for their deadline; they are closed at the deadline.
 */
static void
test_silent_connections(void **state)
{
	cluster *c = *state;
	pid_t pid = c->node[BETA].pid;
	struct conn *v = calloc(SILENT, sizeof(*v));
	int fds0 = hu_fds(pid), fds_peak = 0;
	uint64_t start, taken, first_close = UINT64_MAX, last_close = 0;
	uint64_t alpha_ms;
	unsigned held, still,
	    replaced0 = cluster_log_count(c, BETA, "too many");

	assert_non_null(v);
	/* Alpha stops, so that it must dial again into the flood. */
	assert_int_equal(cluster_stop(c, ALPHA), 0);
	usleep(200000);
	fds0 = hu_fds(pid);
	start = cluster_now_ms();
	for (unsigned k = 0; k < SILENT; k++) {
		v[k].fd = tcp_to(c, BETA);
		v[k].opened_ms = cluster_now_ms();
	}
	/* Wait until beta has taken them all: all but 64 replaced. */
	while (cluster_log_count(c, BETA, "too many") - replaced0 <
	           SILENT - MAX_PENDING &&
	       cluster_now_ms() < start + 30000)
		usleep(50000);
	taken = cluster_now_ms();
	held = SILENT - poll_closed(v, SILENT);
	fds_peak = hu_fds(pid);
	print_message("%u silent connections taken in %.1f s, %u held; "
	              "beta's descriptors %d -> %d\n",
	    SILENT, (taken - start) / 1000.0, held, fds0, fds_peak);
	assert_true(held <= MAX_PENDING);
	assert_true(fds_peak <= fds0 + MAX_PENDING + 8);
	assert_int_equal(cluster_check_jti(c, BETA, KNOWN), REVOKED);

	/* Alpha takes the place of the oldest: the others are still held. */
	assert_true(cluster_start(c, ALPHA));
	assert_true(cluster_wait_ready(c, BETA, READY_MS));
	alpha_ms = cluster_now_ms() - taken;
	still = SILENT - poll_closed(v, SILENT);
	print_message("alpha, restarted into the full cap, linked again in "
	              "%.2f s, with %u silent connections still held\n",
	    alpha_ms / 1000.0, still);
	assert_true(still >= MAX_PENDING - 4);
	for (unsigned k = 0; k < SILENT; k++)
		v[k].held = v[k].closed_ms == 0;

	/* The deadline closes the held ones. */
	while (poll_closed(v, SILENT) < SILENT &&
	       cluster_now_ms() < taken + DEADLINE_MS + 5000)
		usleep(20000);
	for (unsigned k = 0; k < SILENT; k++) {
		uint64_t life = v[k].closed_ms - v[k].opened_ms;

		if (v[k].closed_ms == 0 || !v[k].held)
			continue; /* still open (asserted below), or replaced */
		first_close = life < first_close ? life : first_close;
		last_close =
		    v[k].closed_ms > last_close ? v[k].closed_ms : last_close;
	}
	assert_int_equal(poll_closed(v, SILENT), SILENT);
	print_message("held ones closed from %.2f s after they opened to "
	              "%.2f s after beta had taken the last\n",
	    first_close / 1000.0, (last_close - taken) / 1000.0);
	assert_true(first_close >= DEADLINE_MS - 500);
	assert_true(last_close <= taken + DEADLINE_MS + 2 * SWEEP_MS + 1500);
	assert_true(
	    cluster_log_has(c, BETA, "handshake not finished in time", 0));
	assert_true(cluster_wait_ready(c, BETA, READY_MS));
	assert_true(hu_fds(pid) <= fds0 + 4);
	for (unsigned k = 0; k < SILENT; k++)
		close(v[k].fd);
	free(v);
	assert_int_equal(cluster_check_jti(c, BETA, KNOWN), REVOKED);
}

/*
 * Connections stalled at each step, under the cap: a TLS record header and
 * nothing more; TLS done with a cluster certificate and nothing sent; our
 * Hello and never our Auth; Hello, then half a frame. Each is closed at
 * the deadline, none before; meanwhile a real peer joins (the cap is not
 * full) and alpha stays linked.
 */
static void
test_stalled_handshakes(void **state)
{
	cluster *c = *state;
	struct conn v[40];
	unsigned n = 0, alpha_down = cluster_log_count(c, BETA, "peer=alpha");
	uint64_t start = cluster_now_ms(), first = UINT64_MAX, last = 0;
	revokd_err err;
	hp_peer *real;

	memset(v, 0, sizeof(v));
	for (unsigned k = 0; k < 10; k++, n++) {
		static const uint8_t record[] = { 0x16, 0x03, 0x01, 0x02,
			0x00 };

		v[n].fd = tcp_to(c, BETA);
		v[n].opened_ms = cluster_now_ms();
		assert_int_equal(write(v[n].fd, record, sizeof(record)),
		    (ssize_t)sizeof(record));
	}
	for (unsigned k = 0; k < 30; k++, n++) {
		static const uint8_t half[] = { 0, 0, 1, 0, 0x1a, 0x02 };

		v[n].opened_ms = cluster_now_ms();
		v[n].peer = as_gamma(c, k < 10, k >= 10, &err);
		assert_int_equal(err, REVOKD_OK);
		v[n].fd = -1;
		if (k >= 20)
			assert_true(
			    hp_send_raw(v[n].peer, half, sizeof(half), 2000));
	}
	/* A real peer gets in meanwhile, and is kept. */
	real = as_gamma(c, false, false, &err);
	assert_int_equal(err, REVOKD_OK);
	assert_true(hp_pump(real, 500));

	while (cluster_now_ms() < start + DEADLINE_MS + 5000) {
		bool all = true;

		poll_closed(v, 10);
		for (unsigned k = 10; k < n; k++) {
			if (v[k].closed_ms == 0 &&
			    !hp_stats_of(v[k].peer)->closed)
				hp_pump(v[k].peer, 0);
			if (v[k].closed_ms == 0 &&
			    hp_stats_of(v[k].peer)->closed)
				v[k].closed_ms = cluster_now_ms();
		}
		for (unsigned k = 0; k < n; k++)
			all = all && v[k].closed_ms != 0;
		hp_pump(real, 20);
		if (all)
			break;
	}
	for (unsigned k = 0; k < n; k++) {
		uint64_t life = v[k].closed_ms - v[k].opened_ms;

		assert_true(v[k].closed_ms != 0);
		first = life < first ? life : first;
		last = life > last ? life : last;
	}
	print_message("%u stalled handshakes closed %.2f to %.2f s after they "
	              "opened; the real peer stayed: %s\n",
	    n, first / 1000.0, last / 1000.0,
	    hp_stats_of(real)->closed ? "no" : "yes");
	assert_true(first >= DEADLINE_MS - 500);
	assert_true(last <= DEADLINE_MS + 2 * SWEEP_MS + 1500);
	assert_false(hp_stats_of(real)->closed);
	for (unsigned k = 0; k < n; k++) {
		if (v[k].fd >= 0)
			close(v[k].fd);
		hp_free(v[k].peer);
	}
	hp_free(real);
	assert_int_equal(cluster_check_jti(c, BETA, KNOWN), REVOKED);
	/* Alpha's link saw nothing: no line about it at all. */
	assert_int_equal(cluster_log_count(c, BETA, "peer=alpha"), alpha_down);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_silent_connections),
		cmocka_unit_test(test_stalled_handshakes),
	};

	hu_raise_nofile(SILENT + 1000);
	return cmocka_run_group_tests_name("handshakes", tests, group_setup,
	           group_teardown) +
	       teardown_failures;
}
