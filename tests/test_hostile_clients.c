/*
 * test_hostile_clients.c: one real revokd agent (bench/cluster.h) and
 * hostile clients of its query socket, in numbers: 10,000 connections;
 * frames sent a byte at a time; headers declaring huge lengths, and
 * frames declared at the limit that never finish; clients that never
 * read; random bytes; and clients arriving while the agent is out of file
 * descriptors (its own RLIMIT_NOFILE lowered with prlimit), on the query
 * socket and on the peer port.
 *
 * What is asserted is behaviour, never speed: a well-behaved client on its
 * own connection is answered throughout and after; the attackers are
 * answered, refused or cut as docs/protocol.md says; the agent stays up,
 * does not spin, and its anonymous memory (RssAnon) stays under a
 * generous bound. The figures seen are printed; revokd-bench's `hostile`
 * suite measures latency and memory properly.
 *
 * The group teardown stops the agent with SIGTERM and fails when it did
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

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bench/cluster.h"
#include "hostile_util.h"

#define READY_MS 30000
#define ANSWER_MS 5000

#define VALID REVOKD__LOCAL__VERDICT__VALID
#define REVOKED REVOKD__LOCAL__VERDICT__REVOKED_TOKEN

/* A token revoked before the attacks. */
#define KNOWN "known-revoked"

/* The agent's limits (the defaults, but for room for 10,000 clients). */
#define MAX_MESSAGE 1048576
#define MAX_CONNECTIONS 12000

/* The attacks' sizes. */
#define MANY 10000   /* connections held at once */
#define SLOW 1000    /* clients sending a byte at a time */
#define HUGE 1000    /* headers declaring 4 GiB */
#define AT_LIMIT 300 /* frames declared at max_message */
#define NO_READ 200  /* clients that never read */
#define RANDOM 1000  /* clients sending random bytes */

/*
 * Anonymous memory the agent may use under any of these attacks. Without
 * a bound of its own, 300 frames of 1 MiB held half-sent take 300 MiB.
 * AddressSanitizer's shadow memory and quarantine count too: more room.
 */
#if defined(__SANITIZE_ADDRESS__)
#define RSS_BOUND_MIB 1024.0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RSS_BOUND_MIB 1024.0
#endif
#endif
#ifndef RSS_BOUND_MIB
#define RSS_BOUND_MIB 192.0
#endif

#define MAX_OF(a, b) ((a) > (b) ? (a) : (b))

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */
/* ------------------------------------------------------------------------ */

static int teardown_failures;

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
	char limits[128];
	cluster_options o = { .extra_limits = limits };
	cluster *c = calloc(1, sizeof(*c));

	*state = c;
	snprintf(limits, sizeof(limits),
	    "max_message = %u\nmax_connections = %u", MAX_MESSAGE,
	    MAX_CONNECTIONS);
	if (c == NULL || cluster_new(1, &o, c) != REVOKD_OK)
		return -1;
	if (!cluster_start(c, 0) || !cluster_wait_ready(c, 0, READY_MS) ||
	    cluster_revoke(c, 0, KNOWN, 0, NULL) == 0 ||
	    !cluster_wait_verdict(c, 0, KNOWN, REVOKED, READY_MS)) {
		cluster_print_log(c, 0);
		return -1;
	}
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Clients                                                                  */
/* ------------------------------------------------------------------------ */

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A Check request frame for jti into buf (room for 64 + jti): its size. */
static size_t
check_frame(uint8_t *buf, const char *jti)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Check q = REVOKD__LOCAL__CHECK__INIT;
	size_t n;

	q.jti.data = (uint8_t *)jti;
	q.jti.len = strlen(jti);
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_CHECK;
	req.check = &q;
	n = revokd__local__request__pack(&req, buf + 4);
	put_be32(buf, (uint32_t)n);
	return n + 4;
}

/* A Check of jti on fd: the verdict, or -1 when no answer came in time. */
static int
check_on(int fd, const char *jti)
{
	Revokd__Local__Response *resp = NULL;
	uint8_t frame[128];
	size_t len = check_frame(frame, jti);
	int verdict = -1;

	if (send(fd, frame, len, MSG_NOSIGNAL) != (ssize_t)len ||
	    cluster_recv(fd, ANSWER_MS, &resp) != REVOKD_OK)
		return -1;
	if (resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_CHECK)
		verdict = (int)resp->check->verdict;
	revokd__local__response__free_unpacked(resp, NULL);
	return verdict;
}

/*
 * A client of the query socket with send and receive timeouts (10 s): a
 * write the agent never drains fails instead of hanging the test.
 */
static int
attacker_open(cluster *c)
{
	struct timeval tv = { 10, 0 };
	int fd = cluster_open(c->node[0].query);

	if (fd >= 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

/* The well-behaved client is answered, on its connection and a new one. */
static void
assert_served(cluster *c, int good)
{
	assert_int_equal(check_on(good, KNOWN), REVOKED);
	assert_int_equal(cluster_check_jti(c, 0, KNOWN), REVOKED);
	assert_int_equal(cluster_check_jti(c, 0, "never-revoked"), VALID);
}

/* The next response on fd is an error with code. */
static void
expect_error(int fd, Revokd__Local__ErrorCode code)
{
	Revokd__Local__Response *resp = NULL;

	assert_int_equal(cluster_recv(fd, ANSWER_MS, &resp), REVOKD_OK);
	assert_int_equal(resp->body_case, REVOKD__LOCAL__RESPONSE__BODY_ERROR);
	assert_int_equal(resp->error->code, code);
	revokd__local__response__free_unpacked(resp, NULL);
}

/* The agent's RssAnon in MiB, checked against the bound. */
static double
assert_rss_bounded(cluster *c, const char *when)
{
	double rss = hu_rss_anon_mib(c->node[0].pid);

	if (rss > RSS_BOUND_MIB)
		print_error("RssAnon %.1f MiB %s: over %.0f MiB\n", rss, when,
		    RSS_BOUND_MIB);
	assert_true(rss > 0 && rss <= RSS_BOUND_MIB);
	return rss;
}

/* Query connections the agent reports (its metrics, refreshed often). */
static double
query_connections(cluster *c)
{
	char series[128];

	snprintf(series, sizeof(series),
	    "revokd_socket_connections{region=\"%s\",socket=\"query\"}",
	    c->node[0].name);
	return hu_metric(c->node[0].metrics_port, series);
}

/* Wait (up to 5 s) until the agent reports `want` query connections. */
static void
wait_connections(cluster *c, double want)
{
	double have = -1;

	for (int k = 0; k < 100 && (have = query_connections(c)) != want; k++)
		usleep(50000);
	if (have != want)
		print_error("%.0f query connections, not %.0f\n", have, want);
	assert_true(have == want);
}

/* ------------------------------------------------------------------------ */
/* Many connections                                                         */
/* ------------------------------------------------------------------------ */

/*
 * 10,000 connections held at once: the agent accepts them all (under its
 * max_connections), answers the well-behaved client all along, then
 * answers each of the 10,000, and lets go of them when they close.
 */
static void
test_ten_thousand_connections(void **state)
{
	cluster *c = *state;
	pid_t pid = c->node[0].pid;
	double before = hu_rss_anon_mib(pid), held;
	int good, *fds = calloc(MANY, sizeof(int));
	uint8_t frame[128];
	size_t len = check_frame(frame, KNOWN);

	assert_non_null(fds);
	assert_true((good = cluster_open(c->node[0].query)) >= 0);
	for (unsigned k = 0; k < MANY; k++) {
		fds[k] = cluster_open(c->node[0].query);
		assert_true(fds[k] >= 0);
		if (k % 1000 == 999)
			assert_int_equal(check_on(good, KNOWN), REVOKED);
	}
	wait_connections(c, MANY + 1);
	held = assert_rss_bounded(c, "holding 10,000 connections");
	print_message("%u connections: agent RssAnon %.1f MiB before, %.1f "
	              "MiB holding them; %d descriptors\n",
	    MANY, before, held, hu_fds(pid));
	/* Each is a working connection: a Check on every one, then reads. */
	for (unsigned k = 0; k < MANY; k++)
		assert_int_equal(send(fds[k], frame, len, MSG_NOSIGNAL),
		    (ssize_t)len);
	for (unsigned k = 0; k < MANY; k++) {
		Revokd__Local__Response *resp = NULL;

		assert_int_equal(cluster_recv(fds[k], ANSWER_MS, &resp),
		    REVOKD_OK);
		assert_int_equal(resp->body_case,
		    REVOKD__LOCAL__RESPONSE__BODY_CHECK);
		assert_int_equal(resp->check->verdict, REVOKED);
		revokd__local__response__free_unpacked(resp, NULL);
	}
	assert_rss_bounded(c, "after 10,000 Checks");
	for (unsigned k = 0; k < MANY; k++)
		close(fds[k]);
	free(fds);
	wait_connections(c, 1);
	assert_served(c, good);
	close(good);
}

/* ------------------------------------------------------------------------ */
/* Slow partial frames                                                      */
/* ------------------------------------------------------------------------ */

/*
 * A thousand clients each send one Check a byte at a time, in turn: the
 * well-behaved client is answered after every round, and each slow one
 * gets its answer once its last byte is in.
 */
static void
test_slow_partial_frames(void **state)
{
	cluster *c = *state;
	int good, *fds = calloc(SLOW, sizeof(int));
	uint8_t frame[128];
	size_t len = check_frame(frame, KNOWN);

	assert_non_null(fds);
	assert_true((good = cluster_open(c->node[0].query)) >= 0);
	for (unsigned k = 0; k < SLOW; k++)
		assert_true((fds[k] = attacker_open(c)) >= 0);
	for (size_t b = 0; b < len; b++) {
		for (unsigned k = 0; k < SLOW; k++)
			assert_int_equal(
			    send(fds[k], frame + b, 1, MSG_NOSIGNAL), 1);
		assert_int_equal(check_on(good, KNOWN), REVOKED);
	}
	for (unsigned k = 0; k < SLOW; k++) {
		Revokd__Local__Response *resp = NULL;

		assert_int_equal(cluster_recv(fds[k], ANSWER_MS, &resp),
		    REVOKD_OK);
		assert_int_equal(resp->body_case,
		    REVOKD__LOCAL__RESPONSE__BODY_CHECK);
		assert_int_equal(resp->check->verdict, REVOKED);
		revokd__local__response__free_unpacked(resp, NULL);
		close(fds[k]);
	}
	free(fds);
	assert_rss_bounded(c, "after the slow clients");
	assert_served(c, good);
	close(good);
}

/* ------------------------------------------------------------------------ */
/* Huge declared lengths                                                    */
/* ------------------------------------------------------------------------ */

/* Headers declaring 4 GiB: ERROR_TOO_BIG, then the agent closes. */
static void
test_huge_declared_lengths(void **state)
{
	cluster *c = *state;
	int good, *fds = calloc(HUGE, sizeof(int));
	uint8_t header[4 + 16] = { 0xff, 0xff, 0xff, 0xff };

	assert_non_null(fds);
	assert_true((good = cluster_open(c->node[0].query)) >= 0);
	for (unsigned k = 0; k < HUGE; k++) {
		assert_true((fds[k] = attacker_open(c)) >= 0);
		/* Some declare just over the limit, with bytes after. */
		if (k % 2)
			put_be32(header, MAX_MESSAGE + 1 + k);
		else
			put_be32(header, 0xffffffffu - k);
		assert_int_equal(
		    send(fds[k], header, sizeof(header), MSG_NOSIGNAL),
		    (ssize_t)sizeof(header));
	}
	assert_int_equal(check_on(good, KNOWN), REVOKED);
	for (unsigned k = 0; k < HUGE; k++) {
		Revokd__Local__Response *resp = NULL;

		expect_error(fds[k], REVOKD__LOCAL__ERROR_CODE__ERROR_TOO_BIG);
		assert_int_equal(cluster_recv(fds[k], ANSWER_MS, &resp),
		    REVOKD_ECLOSED);
		close(fds[k]);
	}
	free(fds);
	assert_served(c, good);
	close(good);
}

/*
 * Send len bytes of junk on fd (blocking, bounded by its send timeout):
 * false when the agent cut the connection (or stopped reading).
 */
static bool
send_junk(int fd, size_t len)
{
	static uint8_t junk[64 * 1024];
	size_t sent = 0;

	memset(junk, 0xff, sizeof(junk));
	while (sent < len) {
		size_t n =
		    len - sent < sizeof(junk) ? len - sent : sizeof(junk);
		ssize_t r = send(fd, junk, n, MSG_NOSIGNAL);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		sent += (size_t)r;
	}
	return true;
}

/*
 * Frames declared at exactly max_message (legal) whose payload never
 * finishes: each would hold a megabyte of the agent's memory for as long
 * as it pleases. Together they must not take the agent past its bound;
 * the well-behaved client is answered while they hold.
 */
static void
test_frames_at_limit_never_finished(void **state)
{
	cluster *c = *state;
	int good, *fds = calloc(AT_LIMIT, sizeof(int));
	unsigned cut = 0;
	double peak = 0;

	assert_non_null(fds);
	assert_true((good = cluster_open(c->node[0].query)) >= 0);
	for (unsigned k = 0; k < AT_LIMIT; k++) {
		uint8_t header[4];
		double rss;

		assert_true((fds[k] = attacker_open(c)) >= 0);
		put_be32(header, MAX_MESSAGE);
		if (send(fds[k], header, 4, MSG_NOSIGNAL) != 4 ||
		    !send_junk(fds[k], MAX_MESSAGE - 1))
			cut++;
		if (k % 50 == 49) {
			assert_int_equal(check_on(good, KNOWN), REVOKED);
			rss = assert_rss_bounded(c, "under half-sent frames");
			peak = rss > peak ? rss : peak;
		}
	}
	usleep(200000);
	peak = MAX_OF(peak, assert_rss_bounded(c, "holding half-sent frames"));
	assert_served(c, good);
	print_message("%u frames of %u bytes half-sent: agent RssAnon peak "
	              "%.1f MiB; %u clients cut while sending\n",
	    AT_LIMIT, MAX_MESSAGE, peak, cut);
	for (unsigned k = 0; k < AT_LIMIT; k++)
		close(fds[k]);
	free(fds);
	close(good);
}

/*
 * Whole frames of max_message bytes of junk: each is answered with
 * ERROR_MALFORMED and its connection stays open, idle. Idle connections
 * must not keep what their last frame took.
 */
static void
test_frames_at_limit_then_idle(void **state)
{
	cluster *c = *state;
	int good, *fds = calloc(AT_LIMIT, sizeof(int));
	unsigned answered = 0;
	double peak = 0;

	assert_non_null(fds);
	assert_true((good = cluster_open(c->node[0].query)) >= 0);
	for (unsigned k = 0; k < AT_LIMIT; k++) {
		uint8_t header[4];
		Revokd__Local__Response *resp = NULL;

		assert_true((fds[k] = attacker_open(c)) >= 0);
		put_be32(header, MAX_MESSAGE);
		if (send(fds[k], header, 4, MSG_NOSIGNAL) != 4 ||
		    !send_junk(fds[k], MAX_MESSAGE))
			continue;
		/* Cut for memory, or answered: never silence. */
		if (cluster_recv(fds[k], ANSWER_MS, &resp) == REVOKD_OK) {
			assert_int_equal(resp->body_case,
			    REVOKD__LOCAL__RESPONSE__BODY_ERROR);
			assert_int_equal(resp->error->code,
			    REVOKD__LOCAL__ERROR_CODE__ERROR_MALFORMED);
			revokd__local__response__free_unpacked(resp, NULL);
			answered++;
		}
		if (k % 50 == 49) {
			double rss = assert_rss_bounded(c, "under junk frames");

			peak = rss > peak ? rss : peak;
			assert_int_equal(check_on(good, KNOWN), REVOKED);
		}
	}
	peak = MAX_OF(peak, assert_rss_bounded(c, "with idle junk senders"));
	print_message("%u junk frames of %u bytes, connections left idle: "
	              "%u answered, agent RssAnon peak %.1f MiB\n",
	    AT_LIMIT, MAX_MESSAGE, answered, peak);
	/* Sent in turn, each alone: every one is answered. */
	assert_int_equal(answered, AT_LIMIT);
	assert_served(c, good);
	for (unsigned k = 0; k < AT_LIMIT; k++)
		close(fds[k]);
	free(fds);
	close(good);
}

/* ------------------------------------------------------------------------ */
/* Clients that never read                                                  */
/* ------------------------------------------------------------------------ */

/*
 * Clients that pipeline Status requests and never read the answers: each
 * is cut (our writes fail) before its unread answers take the agent past
 * its bound, and the well-behaved client is answered all along.
 */
static void
test_never_read(void **state)
{
	cluster *c = *state;
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Status st = REVOKD__LOCAL__STATUS__INIT;
	static uint8_t buf[8 * 1024];
	size_t one, used = 0;
	int good, fds[NO_READ];
	bool cut[NO_READ] = { false };
	unsigned n_cut = 0, round;
	uint64_t end = cluster_now_ms() + 30000;
	double peak = 0;

	req.body_case = REVOKD__LOCAL__REQUEST__BODY_STATUS;
	req.status = &st;
	one = revokd__local__request__get_packed_size(&req);
	while (used + 4 + one <= sizeof(buf)) {
		put_be32(buf + used, (uint32_t)one);
		revokd__local__request__pack(&req, buf + used + 4);
		used += 4 + one;
	}
	assert_true((good = cluster_open(c->node[0].query)) >= 0);
	for (unsigned k = 0; k < NO_READ; k++) {
		assert_true((fds[k] = attacker_open(c)) >= 0);
		fcntl(fds[k], F_SETFL, O_NONBLOCK);
	}
	for (round = 0; n_cut < NO_READ && cluster_now_ms() < end; round++) {
		double rss;

		for (unsigned k = 0; k < NO_READ; k++) {
			ssize_t r;

			if (cut[k])
				continue;
			r = send(fds[k], buf, used, MSG_NOSIGNAL);
			if (r < 0 && errno != EAGAIN && errno != EINTR) {
				cut[k] = true;
				n_cut++;
			}
		}
		rss = assert_rss_bounded(c, "under clients that never read");
		peak = rss > peak ? rss : peak;
		assert_int_equal(check_on(good, KNOWN), REVOKED);
		usleep(2000);
	}
	print_message("%u clients that never read: %u cut in %u rounds; agent "
	              "RssAnon peak %.1f MiB\n",
	    NO_READ, n_cut, round, peak);
	assert_int_equal(n_cut, NO_READ);
	for (unsigned k = 0; k < NO_READ; k++)
		close(fds[k]);
	assert_served(c, good);
	close(good);
}

/* ------------------------------------------------------------------------ */
/* Random bytes                                                             */
/* ------------------------------------------------------------------------ */

/*
 * A thousand clients send 16 to 8,192 random bytes each and half-close:
 * whatever the bytes were, the agent answers what it can and closes every
 * one of them (too big, truncated, or drained), soon.
 */
static void
test_random_bytes(void **state)
{
	cluster *c = *state;
	int good, *fds = calloc(RANDOM, sizeof(int));
	bool *done = calloc(RANDOM, sizeof(bool));
	unsigned n_done = 0;
	uint64_t rng = 0x9e3779b97f4a7c15u, end;

	assert_non_null(fds);
	assert_non_null(done);
	assert_true((good = cluster_open(c->node[0].query)) >= 0);
	for (unsigned k = 0; k < RANDOM; k++) {
		uint8_t bytes[8192];
		size_t len;

		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		len = 16 + rng % (sizeof(bytes) - 16);
		for (size_t i = 0; i < len; i++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			bytes[i] = (uint8_t)(rng >> 24);
		}
		assert_true((fds[k] = attacker_open(c)) >= 0);
		/* The agent may close before taking it all. */
		(void)send(fds[k], bytes, len, MSG_NOSIGNAL);
		shutdown(fds[k], SHUT_WR);
	}
	assert_int_equal(check_on(good, KNOWN), REVOKED);
	end = cluster_now_ms() + 10000;
	while (n_done < RANDOM && cluster_now_ms() < end) {
		for (unsigned k = 0; k < RANDOM; k++) {
			struct pollfd pfd = { fds[k], POLLIN, 0 };
			char sink[4096];
			ssize_t r;

			if (done[k] || poll(&pfd, 1, 0) != 1)
				continue;
			r = recv(fds[k], sink, sizeof(sink), MSG_DONTWAIT);
			if (r == 0 || (r < 0 && errno != EAGAIN)) {
				done[k] = true;
				n_done++;
			}
		}
		usleep(1000);
	}
	print_message("%u clients of random bytes: %u closed by the agent\n",
	    RANDOM, n_done);
	assert_int_equal(n_done, RANDOM);
	for (unsigned k = 0; k < RANDOM; k++)
		close(fds[k]);
	free(fds);
	free(done);
	assert_rss_bounded(c, "after random bytes");
	assert_served(c, good);
	close(good);
}

/* ------------------------------------------------------------------------ */
/* Out of file descriptors                                                  */
/* ------------------------------------------------------------------------ */

/* A non-blocking connect to a Unix or TCP address: the fd, or -1. */
static int
connect_nb(const struct sockaddr *sa, socklen_t len)
{
	int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -1;
	if (connect(fd, sa, len) != 0 && errno != EINPROGRESS &&
	    errno != EAGAIN) {
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * The agent's own descriptor limit lowered (prlimit) to just above what it
 * uses: clients of the query socket and of the peer port arrive and cannot
 * be accepted. The agent must neither die nor spin (CPU time stays low),
 * nor fill its log; the client it had already is answered; and once the
 * descriptors are back, new clients are too.
 */
static void
test_out_of_descriptors(void **state)
{
	cluster *c = *state;
	pid_t pid = c->node[0].pid;
	struct sockaddr_un su = { .sun_family = AF_UNIX };
	struct sockaddr_in si = { .sin_family = AF_INET };
	struct rlimit low, old;
	int good, fds[150], n_fds = 0, in_use;
	unsigned failed_before = cluster_log_count(c, 0, "accept_failed"),
	         failed;
	uint64_t cpu0, cpu1;
	int answered;

	assert_true(strlen(c->node[0].query) < sizeof(su.sun_path));
	memcpy(su.sun_path, c->node[0].query, strlen(c->node[0].query) + 1);
	si.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	si.sin_port = htons(c->node[0].port);
	assert_true((good = cluster_open(c->node[0].query)) >= 0);
	assert_int_equal(check_on(good, KNOWN), REVOKED);
	in_use = hu_fds(pid);
	assert_true(in_use > 0);
	assert_int_equal(prlimit(pid, RLIMIT_NOFILE, NULL, &old), 0);
	low = old;
	low.rlim_cur = (rlim_t)in_use + 8;
	assert_int_equal(prlimit(pid, RLIMIT_NOFILE, &low, NULL), 0);

	for (int k = 0; k < 100; k++)
		if ((fds[n_fds] = connect_nb((struct sockaddr *)&su,
		         sizeof(su))) >= 0)
			n_fds++;
	for (int k = 0; k < 50; k++)
		if ((fds[n_fds] = connect_nb((struct sockaddr *)&si,
		         sizeof(si))) >= 0)
			n_fds++;
	usleep(500000);
	cpu0 = hu_cpu_ms(pid);
	usleep(2000000);
	cpu1 = hu_cpu_ms(pid);
	answered = check_on(good, KNOWN);
	failed = cluster_log_count(c, 0, "accept_failed") - failed_before;
	print_message("out of descriptors (limit %d): %d attackers, agent CPU "
	              "%llu ms in 2 s, %u accept_failed lines, %d fds\n",
	    in_use + 8, n_fds, (unsigned long long)(cpu1 - cpu0), failed,
	    hu_fds(pid));
	/* The limit back before any assertion: an agent left without
	 * descriptors may not even stop cleanly. */
	for (int k = 0; k < n_fds; k++)
		close(fds[k]);
	assert_int_equal(prlimit(pid, RLIMIT_NOFILE, &old, NULL), 0);
	assert_true(kill(pid, 0) == 0);
	assert_true(cpu1 - cpu0 < 1000);
	assert_true(failed < 100);
	assert_int_equal(answered, REVOKED);
	/* Back to normal: new clients are answered. */
	for (int k = 0; k < 40 && cluster_check_jti(c, 0, KNOWN) != REVOKED;
	     k++)
		usleep(50000);
	assert_served(c, good);
	close(good);
}

/* After it all: still up, within its bound. */
static void
test_still_fine(void **state)
{
	cluster *c = *state;
	double rss = assert_rss_bounded(c, "at the end");
	int good = cluster_open(c->node[0].query);

	print_message("agent RssAnon at the end: %.1f MiB\n", rss);
	assert_true(good >= 0);
	assert_served(c, good);
	close(good);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ten_thousand_connections),
		cmocka_unit_test(test_slow_partial_frames),
		cmocka_unit_test(test_huge_declared_lengths),
		cmocka_unit_test(test_frames_at_limit_never_finished),
		cmocka_unit_test(test_frames_at_limit_then_idle),
		cmocka_unit_test(test_never_read),
		cmocka_unit_test(test_random_bytes),
		cmocka_unit_test(test_out_of_descriptors),
		cmocka_unit_test(test_still_fine),
	};
	rlim_t have = hu_raise_nofile(MANY + 2000);

	if (have < MANY + 200) {
		/* Not this machine's fault of the agent: say so and pass. */
		print_message("RLIMIT_NOFILE hard limit %llu: cannot hold %d "
		              "connections; skipped\n",
		    (unsigned long long)have, MANY);
		return 0;
	}
	return cmocka_run_group_tests_name("clients", tests, group_setup,
	           group_teardown) +
	       teardown_failures;
}
