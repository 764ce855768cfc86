/*
 * hostile.c: the "hostile" suite: what hostile clients of the query socket
 * cost a well-behaved one, and the agent's memory. One one-region agent
 * (bench/cluster.h; max_connections raised to hold 10,000 clients), then,
 * one after another, the attacks of issue 7:
 *
 *   idle10k   10,000 connections held open, idle
 *   slow      1,000 clients sending Checks a byte at a time, in turn,
 *             a byte each every 10 ms
 *   huge      clients connecting in a loop to send a 4 GiB header
 *   partial   frames declared at max_message (1 MiB), half sent, held
 *   noread1   one client pipelining Status and never reading (reconnects
 *             when cut)
 *   noread    200 of them
 *   random    clients connecting in a loop to send random bytes
 *
 * Around each, a well-behaved client (one blocking connection, one Check
 * at a time, as a verifier does) runs for --seconds (default 2) before the
 * attack, during it and after it. Figures, ATTACK the name above:
 *
 *   ATTACK_{before,during,after}_p50_us, _p99_us, _max_us   the good
 *                                    client's latency (write to answer
 *                                    read)
 *   ATTACK_{before,during,after}_checks_per_s       its answers per second
 *   ATTACK_{before,during,after}_rss_anon_mib       the agent's RssAnon at
 *                                    the end of the phase
 *   ATTACK_peak_rss_anon_mib         the highest RssAnon seen during it
 *   ATTACK_attacker_ops              what the attack did (connections,
 *                                    bytes sent, frames...), as it says
 *
 * The attack runs on a thread of its own; the good client on this one.
 * The goal of issue 7 is a p99 under 1 ms during every attack, with the
 * agent's memory bounded; on a machine shared with other work (the
 * scheduler's latency counts in p99) read the before figures as the floor.
 * The agent is stopped at the end, on failure, at exit and on SIGINT,
 * SIGTERM or SIGHUP.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/cluster.h"

#define HOSTILE_SECONDS 2
#define HOSTILE_MAX_MESSAGE 1048576
#define HOSTILE_IDLE 10000
#define HOSTILE_SLOW 1000
#define HOSTILE_PARTIAL 300
#define HOSTILE_NOREAD 200
#define HOSTILE_KNOWN "hostile-known"
#define HOSTILE_ANSWER_S 60

/* Latencies of one phase, in microseconds. */
typedef struct hostile_lat {
	double *us;
	size_t n, cap;
} hostile_lat;

/* The run: the agent, and the attack in progress. */
typedef struct hostile_env {
	const bench_opts *o;
	cluster c;
	pid_t pid;
	double seconds;
	atomic_bool stop;
	atomic_uint_fast64_t ops;  /* the attack's count of what it did */
	atomic_uint_fast64_t peak; /* RssAnon bytes, highest seen */
	uint8_t check[128];        /* the good client's Check frame */
	size_t check_len;
	unsigned clients; /* the attack's hostile_attack.clients */
} hostile_env;

/* One attack: its name, its thread's body, its number of clients. */
typedef struct hostile_attack {
	const char *name;
	void *(*run)(void *env);
	unsigned clients; /* where the attack takes a number (noread) */
} hostile_attack;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

static void
hostile_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* A frame of req into buf (room for cap): its length, 0 if too long. */
static size_t
hostile_frame(const Revokd__Local__Request *req, uint8_t *buf, size_t cap)
{
	size_t n = revokd__local__request__get_packed_size(req);

	if (n + 4 > cap)
		return 0;
	hostile_be32(buf, (uint32_t)n);
	return 4 + revokd__local__request__pack(req, buf + 4);
}

/* A Check of jti as a frame. */
static size_t
hostile_check_frame(const char *jti, uint8_t *buf, size_t cap)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Check q = REVOKD__LOCAL__CHECK__INIT;

	q.jti.data = (uint8_t *)jti;
	q.jti.len = strlen(jti);
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_CHECK;
	req.check = &q;
	return hostile_frame(&req, buf, cap);
}

/* A client of the query socket, non-blocking when asked; -1 on failure. */
static int
hostile_connect(const hostile_env *e, bool nonblocking)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = e->c.node[0].query;
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct timeval tv = { 5, 0 };

	if (fd < 0 || strlen(path) >= sizeof(sa.sun_path)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	if (nonblocking)
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
	return fd;
}

/* Note the agent's RssAnon; the value, in bytes. */
static uint64_t
hostile_sample(hostile_env *e)
{
	uint64_t rss = bench_proc_status(e->pid, "RssAnon");
	uint64_t peak = atomic_load(&e->peak);

	while (
	    rss > peak && !atomic_compare_exchange_weak(&e->peak, &peak, rss))
		;
	return rss;
}

/* Read and drop what fd has now (non-blocking): false when it closed. */
static bool
hostile_drain(int fd)
{
	char buf[4096];

	for (;;) {
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (r > 0)
			continue;
		return r < 0 && (errno == EAGAIN || errno == EINTR);
	}
}

/* ------------------------------------------------------------------------ */
/* The well-behaved client                                                  */
/* ------------------------------------------------------------------------ */

static bool
hostile_read_full(int fd, uint8_t *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = read(fd, buf + got, len - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return true;
}

/* One Check round trip on fd: its latency in µs, or -1. */
static double
hostile_round_trip(hostile_env *e, int fd)
{
	uint8_t head[4], body[256];
	double t0 = bench_now();
	uint32_t n;

	if (write(fd, e->check, e->check_len) != (ssize_t)e->check_len ||
	    !hostile_read_full(fd, head, 4))
		return -1;
	n = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 |
	    (uint32_t)head[2] << 8 | head[3];
	if (n > sizeof(body) || !hostile_read_full(fd, body, n))
		return -1;
	return (bench_now() - t0) * 1e6;
}

/*
 * Run the good client for e->seconds: its latencies into *lat. It waits up
 * to HOSTILE_ANSWER_S for an answer (a starved client is a figure, not a
 * failure, until then).
 */
static int
hostile_measure(hostile_env *e, hostile_lat *lat)
{
	int fd = hostile_connect(e, false);
	double end = bench_now() + e->seconds, next_sample = 0;
	struct timeval tv = { HOSTILE_ANSWER_S, 0 };

	lat->n = 0;
	if (fd < 0) {
		fprintf(stderr, "revokd-bench: hostile: the good client cannot "
		                "connect\n");
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	while (bench_now() < end) {
		double us = hostile_round_trip(e, fd);

		if (us < 0) {
			fprintf(stderr,
			    "revokd-bench: hostile: the good client "
			    "got no answer in %d s\n",
			    HOSTILE_ANSWER_S);
			close(fd);
			return -1;
		}
		if (lat->n == lat->cap) {
			size_t cap = lat->cap ? 2 * lat->cap : 65536;
			double *v = realloc(lat->us, cap * sizeof(*v));

			if (v == NULL) {
				close(fd);
				return -1;
			}
			lat->us = v;
			lat->cap = cap;
		}
		lat->us[lat->n++] = us;
		if (bench_now() >= next_sample) {
			hostile_sample(e);
			next_sample = bench_now() + 0.01;
		}
	}
	close(fd);
	return 0;
}

/* The q-quantile (0..1) of a phase's latencies (sorts them). */
static double
hostile_quantile(hostile_lat *lat, double q)
{
	size_t i;

	if (lat->n == 0)
		return 0;
	qsort(lat->us, lat->n, sizeof(double), bench_cmp_double);
	i = (size_t)(q * (double)(lat->n - 1) + 0.5);
	return lat->us[i];
}

/* ------------------------------------------------------------------------ */
/* The attacks (each on its own thread until e->stop)                       */
/* ------------------------------------------------------------------------ */

/* 10,000 connections opened and held. */
static void *
hostile_idle(void *arg)
{
	hostile_env *e = arg;
	int *fds = calloc(HOSTILE_IDLE, sizeof(int));
	unsigned n = 0;

	for (; fds && n < HOSTILE_IDLE && !atomic_load(&e->stop); n++) {
		if ((fds[n] = hostile_connect(e, false)) < 0)
			break;
		atomic_fetch_add(&e->ops, 1);
	}
	while (!atomic_load(&e->stop))
		usleep(10000);
	for (unsigned k = 0; fds && k < n; k++)
		if (fds[k] >= 0)
			close(fds[k]);
	free(fds);
	return NULL;
}

/* Checks sent a byte at a time by 1,000 clients in turn, answers drained. */
static void *
hostile_slow(void *arg)
{
	hostile_env *e = arg;
	int fds[HOSTILE_SLOW];
	unsigned n = 0;

	for (; n < HOSTILE_SLOW; n++)
		if ((fds[n] = hostile_connect(e, true)) < 0)
			break;
	for (size_t b = 0; !atomic_load(&e->stop); b = (b + 1) % e->check_len) {
		for (unsigned k = 0; k < n; k++) {
			if (fds[k] < 0)
				continue;
			if (send(fds[k], e->check + b, 1, MSG_NOSIGNAL) == 1)
				atomic_fetch_add(&e->ops, 1);
			if (b == 0 && !hostile_drain(fds[k])) {
				close(fds[k]);
				fds[k] = -1;
			}
		}
		usleep(10000);
	}
	for (unsigned k = 0; k < n; k++)
		if (fds[k] >= 0)
			close(fds[k]);
	return NULL;
}

/* Connect, send a header declaring 4 GiB, read the refusal, close; again. */
static void *
hostile_huge(void *arg)
{
	hostile_env *e = arg;
	uint8_t head[4 + 64];

	memset(head, 0xff, sizeof(head));
	while (!atomic_load(&e->stop)) {
		int fd = hostile_connect(e, false);
		char buf[256];

		if (fd < 0) {
			usleep(1000);
			continue;
		}
		if (send(fd, head, sizeof(head), MSG_NOSIGNAL) > 0 &&
		    read(fd, buf, sizeof(buf)) > 0)
			atomic_fetch_add(&e->ops, 1);
		close(fd);
	}
	return NULL;
}

/* Frames declared at max_message, all but the last byte sent, held. */
static void *
hostile_partial(void *arg)
{
	hostile_env *e = arg;
	static uint8_t junk[64 * 1024];
	int fds[HOSTILE_PARTIAL];
	unsigned n = 0;

	memset(junk, 0xff, sizeof(junk));
	for (; n < HOSTILE_PARTIAL && !atomic_load(&e->stop); n++) {
		uint8_t head[4];
		size_t left = HOSTILE_MAX_MESSAGE - 1;

		if ((fds[n] = hostile_connect(e, false)) < 0)
			break;
		hostile_be32(head, HOSTILE_MAX_MESSAGE);
		if (send(fds[n], head, 4, MSG_NOSIGNAL) != 4)
			continue;
		while (left > 0 && !atomic_load(&e->stop)) {
			ssize_t r = send(fds[n], junk,
			    left < sizeof(junk) ? left : sizeof(junk),
			    MSG_NOSIGNAL);

			if (r <= 0)
				break; /* cut */
			left -= (size_t)r;
			atomic_fetch_add(&e->ops, (uint64_t)r);
		}
		hostile_sample(e);
	}
	while (!atomic_load(&e->stop))
		usleep(10000);
	for (unsigned k = 0; k < n; k++)
		if (fds[k] >= 0)
			close(fds[k]);
	return NULL;
}

/* Status requests pipelined, answers never read; cut ones reconnect. */
static void *
hostile_noread(void *arg)
{
	hostile_env *e = arg;
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Status st = REVOKD__LOCAL__STATUS__INIT;
	static uint8_t buf[8192];
	int fds[HOSTILE_NOREAD];
	unsigned n = e->clients < HOSTILE_NOREAD ? e->clients : HOSTILE_NOREAD;
	size_t used = 0, one;

	req.body_case = REVOKD__LOCAL__REQUEST__BODY_STATUS;
	req.status = &st;
	while ((one = hostile_frame(&req, buf + used, sizeof(buf) - used)) > 0)
		used += one;
	for (unsigned k = 0; k < n; k++)
		fds[k] = hostile_connect(e, true);
	while (!atomic_load(&e->stop)) {
		for (unsigned k = 0; k < n; k++) {
			ssize_t r;

			if (fds[k] < 0 &&
			    (fds[k] = hostile_connect(e, true)) < 0)
				continue;
			r = send(fds[k], buf, used, MSG_NOSIGNAL);
			if (r > 0)
				atomic_fetch_add(&e->ops, (uint64_t)r);
			else if (r < 0 && errno != EAGAIN && errno != EINTR) {
				close(fds[k]); /* cut: come back */
				fds[k] = -1;
			}
		}
		usleep(1000);
	}
	for (unsigned k = 0; k < n; k++)
		if (fds[k] >= 0)
			close(fds[k]);
	return NULL;
}

/* Connect, send random bytes, half-close, read to the end; again. */
static void *
hostile_random(void *arg)
{
	hostile_env *e = arg;
	uint64_t x = e->o->seed * 0x9e3779b97f4a7c15u + 1;
	uint8_t bytes[8192];

	while (!atomic_load(&e->stop)) {
		size_t len;
		int fd;
		char buf[4096];

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		len = 16 + x % (sizeof(bytes) - 16);
		for (size_t i = 0; i < len; i++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			bytes[i] = (uint8_t)(x >> 24);
		}
		if ((fd = hostile_connect(e, false)) < 0) {
			usleep(1000);
			continue;
		}
		(void)send(fd, bytes, len, MSG_NOSIGNAL);
		shutdown(fd, SHUT_WR);
		while (read(fd, buf, sizeof(buf)) > 0)
			;
		close(fd);
		atomic_fetch_add(&e->ops, 1);
	}
	return NULL;
}

static const hostile_attack hostile_attacks[] = {
	{ "idle10k", hostile_idle, 0 },
	{ "slow", hostile_slow, 0 },
	{ "huge", hostile_huge, 0 },
	{ "partial", hostile_partial, 0 },
	{ "noread1", hostile_noread, 1 },
	{ "noread", hostile_noread, HOSTILE_NOREAD },
	{ "random", hostile_random, 0 },
};

/* ------------------------------------------------------------------------ */
/* The run                                                                  */
/* ------------------------------------------------------------------------ */

/* The agent's RssAnon every 10 ms while an attack runs (the peak). */
static void *
hostile_sampler(void *arg)
{
	hostile_env *e = arg;

	while (!atomic_load(&e->stop)) {
		hostile_sample(e);
		usleep(10000);
	}
	return NULL;
}

static void
hostile_emit_phase(hostile_env *e, const char *attack, const char *phase,
    hostile_lat *lat)
{
	char metric[96];
	double rss = (double)hostile_sample(e) / (1024.0 * 1024.0);

	snprintf(metric, sizeof(metric), "%s_%s_checks_per_s", attack, phase);
	bench_emit(e->o, "hostile", metric, (double)lat->n / e->seconds, "1/s");
	snprintf(metric, sizeof(metric), "%s_%s_p50_us", attack, phase);
	bench_emit(e->o, "hostile", metric, hostile_quantile(lat, 0.50), "us");
	snprintf(metric, sizeof(metric), "%s_%s_p99_us", attack, phase);
	bench_emit(e->o, "hostile", metric, hostile_quantile(lat, 0.99), "us");
	snprintf(metric, sizeof(metric), "%s_%s_max_us", attack, phase);
	bench_emit(e->o, "hostile", metric, hostile_quantile(lat, 1.0), "us");
	snprintf(metric, sizeof(metric), "%s_%s_rss_anon_mib", attack, phase);
	bench_emit(e->o, "hostile", metric, rss, "MiB");
}

/* Before, during and after one attack. */
static int
hostile_one(hostile_env *e, const hostile_attack *a, hostile_lat *lat)
{
	char metric[96];
	pthread_t t, sampler;

	if (hostile_measure(e, lat) != 0)
		return -1;
	hostile_emit_phase(e, a->name, "before", lat);
	atomic_store(&e->stop, false);
	e->clients = a->clients;
	atomic_store(&e->ops, 0);
	atomic_store(&e->peak, 0);
	if (pthread_create(&t, NULL, a->run, e) != 0)
		return -1;
	if (pthread_create(&sampler, NULL, hostile_sampler, e) != 0) {
		atomic_store(&e->stop, true);
		pthread_join(t, NULL);
		return -1;
	}
	usleep(500000); /* let it set up */
	if (hostile_measure(e, lat) != 0) {
		atomic_store(&e->stop, true);
		pthread_join(t, NULL);
		pthread_join(sampler, NULL);
		return -1;
	}
	hostile_emit_phase(e, a->name, "during", lat);
	atomic_store(&e->stop, true);
	pthread_join(t, NULL);
	pthread_join(sampler, NULL);
	snprintf(metric, sizeof(metric), "%s_peak_rss_anon_mib", a->name);
	bench_emit(e->o, "hostile", metric,
	    (double)atomic_load(&e->peak) / (1024.0 * 1024.0), "MiB");
	snprintf(metric, sizeof(metric), "%s_attacker_ops", a->name);
	bench_emit(e->o, "hostile", metric, (double)atomic_load(&e->ops),
	    "ops");
	usleep(200000);
	if (hostile_measure(e, lat) != 0)
		return -1;
	hostile_emit_phase(e, a->name, "after", lat);
	if (kill(e->pid, 0) != 0) {
		fprintf(stderr, "revokd-bench: hostile: the agent died\n");
		return -1;
	}
	return 0;
}

static int
hostile_start(hostile_env *e)
{
	static const char limits[] = "max_message = 1048576\n"
	                             "max_connections = 12000";
	cluster_options co = { .extra_limits = limits };
	struct rlimit rl;

	/* Room for 10,000 clients here and in the agent, which inherits it. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < HOSTILE_IDLE + 2000) {
		rl.rlim_cur = rl.rlim_max < HOSTILE_IDLE + 2000
		                  ? rl.rlim_max
		                  : HOSTILE_IDLE + 2000;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (cluster_new(1, &co, &e->c) != REVOKD_OK ||
	    !cluster_start(&e->c, 0) || !cluster_wait_ready(&e->c, 0, 10000) ||
	    cluster_revoke(&e->c, 0, HOSTILE_KNOWN, 0, NULL) == 0) {
		fprintf(stderr,
		    "revokd-bench: hostile: revokd did not start\n");
		cluster_print_log(&e->c, 0);
		return -1;
	}
	e->pid = e->c.node[0].pid;
	e->check_len =
	    hostile_check_frame(HOSTILE_KNOWN, e->check, sizeof(e->check));
	return 0;
}

int
bench_hostile(const bench_opts *o)
{
	hostile_env *e = calloc(1, sizeof(*e));
	hostile_lat lat = { 0 };
	char why[512];
	int rc = 0;

	if (e == NULL)
		return 1;
	e->o = o;
	e->seconds = o->seconds ? (double)o->seconds : HOSTILE_SECONDS;
	signal(SIGPIPE, SIG_IGN); /* the attackers' sends */
	if (hostile_start(e) != 0)
		rc = 1;
	for (size_t i = 0; rc == 0 && i < sizeof(hostile_attacks) /
	                                      sizeof(hostile_attacks[0]);
	     i++)
		if (hostile_one(e, &hostile_attacks[i], &lat) != 0)
			rc = 1;
	if (e->c.n > 0 && e->c.node[0].pid > 0 &&
	    !cluster_shutdown(&e->c, why, sizeof(why))) {
		fprintf(stderr, "revokd-bench: hostile: revokd: %s\n", why);
		rc = 1;
	}
	cluster_free(&e->c);
	free(lat.us);
	free(e);
	return rc;
}
