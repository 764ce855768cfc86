/*
 * query.c: the "query" suite: checks over revokd's query socket, side by
 * side with redis-server answering SISMEMBER on a set of the same ids, and
 * with a bare Unix-socket ping-pong: the floor, what any server pays for
 * the socket round trip. One load generator drives all three the same way
 * (loadgen.h).
 *
 * Setup: --entries tokens ("bench-token-<i>") revoked in the store of a
 * one-region agent, filled before the agent starts; the same ids in the
 * redis set "revoked". Requests pick ids at random (--seed), --hits percent
 * of them revoked (i < entries; default 50) and the rest unknown; every
 * answer is checked, and one wrong answer fails the suite.
 *
 * Each round runs every pattern (1, 8 and 50 connections; pipeline depth 1
 * and 16) against revokd, redis and ping-pong in turn, each for --seconds
 * (default 2) after a 0.25 s warm-up. Medians over --rounds are reported;
 * TARGET is revokd, redis or pingpong, C the connections, D the depth:
 *
 *   TARGET_cC_dD_per_s        answers per second
 *   TARGET_cC_dD_p50_us       latency: request written to answer read
 *   TARGET_cC_dD_p99_us
 *   revokd_vs_redis_cC_dD     revokd's answers/s over redis's
 *                             (goal >= 1.5 for every pattern)
 *   revokd_vs_pingpong_cC_dD  revokd's answers/s over ping-pong's
 *                             (goal >= 0.9 at c1_d1)
 *   pingpong_request_bytes    the ping-pong frames: the mean sizes of
 *   pingpong_reply_bytes      revokd's requests and of its answers
 *
 * Without redis-server in PATH the redis rows are skipped with a note.
 * Every process the suite starts is stopped at its end, on failure, at
 * exit, and on SIGINT, SIGTERM or SIGHUP (cluster_guard: each is in a
 * process group of its own, so a terminal's ^C reaches only us).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/cluster.h"
#include "bench/loadgen.h"
#include "testutil.h"

#define QUERY_TARGETS 3
#define QUERY_PATTERNS 6
#define QUERY_ROUNDS_MAX 100
#define QUERY_WARMUP_S 0.25
#define QUERY_SECONDS 2

/* Requests in each pool, cycled through; far more than are in flight. */
#define QUERY_POOL (1u << 17)

/* Members per SADD while loading redis, and SADDs written at once. */
#define QUERY_SADD_MEMBERS 1000
#define QUERY_SADD_PIPELINE 16

enum { QUERY_REVOKD, QUERY_REDIS, QUERY_PINGPONG };

static const char *const query_names[QUERY_TARGETS] = { "revokd", "redis",
	"pingpong" };

static const struct {
	unsigned conns, depth;
} query_patterns[QUERY_PATTERNS] = { { 1, 1 }, { 1, 16 }, { 8, 1 }, { 8, 16 },
	{ 50, 1 }, { 50, 16 } };

/* One target under one pattern, every round. */
typedef struct query_cell {
	double per_s[QUERY_ROUNDS_MAX];
	double p50_us[QUERY_ROUNDS_MAX];
	double p99_us[QUERY_ROUNDS_MAX];
} query_cell;

typedef struct query_env {
	const bench_opts *o;
	char *dir; /* scratch: redis's and ping-pong's sockets, redis's log */
	cluster c;
	char redis_bin[4096];
	char redis_sock[600], pp_sock[600];
	pid_t redis, pingpong;
	bool have_redis;
	size_t pp_request, pp_reply; /* ping-pong's sizes: revokd's frames */
	uint64_t *picks;             /* the id of every pool slot */
	lg_pool pool[QUERY_TARGETS];
	query_cell cell[QUERY_TARGETS][QUERY_PATTERNS];
} query_env;

/* SIGTERM pid, give it 5 s, then SIGKILL its group; reap it. */
static void
query_stop(pid_t *pid)
{
	if (*pid <= 0)
		return;
	kill(*pid, SIGTERM);
	for (int k = 0; k < 500 && waitpid(*pid, NULL, WNOHANG) == 0; k++)
		usleep(10000);
	kill(-*pid, SIGKILL);
	waitpid(*pid, NULL, 0);
	cluster_guard(*pid, false);
	*pid = 0;
}

/* ------------------------------------------------------------------------ */
/* revokd                                                                   */
/* ------------------------------------------------------------------------ */

static void
query_check_request(const char *id, size_t len, Revokd__Local__Request *req,
    Revokd__Local__Check *q)
{
	revokd__local__request__init(req);
	revokd__local__check__init(q);
	q->jti.data = (uint8_t *)id;
	q->jti.len = len;
	req->body_case = REVOKD__LOCAL__REQUEST__BODY_CHECK;
	req->check = q;
}

/* The frame of Check{jti: id} into buf (LG_REQUEST_MAX): its length. */
static size_t
query_check_frame(const char *id, size_t len, uint8_t *buf)
{
	Revokd__Local__Request req;
	Revokd__Local__Check q;
	size_t n;

	query_check_request(id, len, &req, &q);
	if ((n = revokd__local__request__get_packed_size(&req)) + 4 >
	    LG_REQUEST_MAX)
		return 0;
	buf[0] = (uint8_t)(n >> 24);
	buf[1] = (uint8_t)(n >> 16);
	buf[2] = (uint8_t)(n >> 8);
	buf[3] = (uint8_t)n;
	return 4 + revokd__local__request__pack(&req, buf + 4);
}

/* A varint at *p (before end) into *v; false when it runs over. */
static bool
query_varint(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	*v = 0;
	for (unsigned shift = 0; *p < end && shift < 64; shift += 7) {
		uint8_t b = *(*p)++;

		*v |= (uint64_t)(b & 0x7f) << shift;
		if (b < 0x80)
			return true;
	}
	return false;
}

/*
 * The verdict in a Response payload that must be a CheckResult: walk its
 * fields rather than decode the message, so the generator stays cheap.
 * -1 for anything else (an Error, say).
 */
static int
query_verdict(const uint8_t *b, size_t n)
{
	const uint8_t *p = b + 2, *end = b + n;
	uint64_t verdict = 0, v;

	if (n < 2 || b[0] != 0x0a || b[1] != n - 2)
		return -1;
	while (p < end) {
		uint8_t tag = *p++;

		if ((tag & 7) == 2 && query_varint(&p, end, &v) &&
		    v <= (uint64_t)(end - p))
			p += v;
		else if ((tag & 7) != 0 || !query_varint(&p, end, &v))
			return -1;
		else if (tag == 0x08)
			verdict = v;
	}
	return verdict > 100 ? -1 : (int)verdict;
}

static ssize_t
query_parse_revokd(const uint8_t *buf, size_t len, const void *arg, int *value)
{
	uint32_t n;

	(void)arg;
	if (len < 4)
		return 0;
	n = (uint32_t)buf[0] << 24 | (uint32_t)buf[1] << 16 |
	    (uint32_t)buf[2] << 8 | buf[3];
	/* A check answer is at most 30 bytes (docs/protocol.md). */
	if (n > 64)
		return -1;
	if (len < 4 + n)
		return 0;
	*value = query_verdict(buf + 4, n);
	return *value < 0 ? -1 : (ssize_t)(4 + n);
}

/* Fill the agent's data dir with the revoked tokens, under its secret. */
static int
query_fill(const bench_opts *o, cluster *c)
{
	crdt_store_options so = { .no_sync = true };
	crdt_entry *batch = calloc(o->batch, sizeof(*batch));
	uint8_t secret[CRDT_SECRET_LEN];
	char path[600], why[1024] = "out of memory";
	crdt_keyer *k = NULL;
	crdt_store *s = NULL;
	revokd_err err;
	int rc = -1;

	snprintf(path, sizeof(path), "%s/pki/cluster.secret", c->dir);
	if (batch == NULL || revokd_secret_load(path, secret, sizeof(secret),
	                         why, sizeof(why)) != REVOKD_OK)
		goto out;
	snprintf(path, sizeof(path), "%s/data", c->node[0].dir);
	if (mkdir(path, 0750) != 0) {
		snprintf(why, sizeof(why), "%s: %s", path, strerror(errno));
		goto out;
	}
	/* Bound to the cluster's secret: the agent refuses any other. */
	if ((err = crdt_keyer_new(secret, sizeof(secret), &k)) != REVOKD_OK ||
	    (err = crdt_store_open(path, &so, &s)) != REVOKD_OK ||
	    (err = crdt_store_bind_secret(s, k)) != REVOKD_OK) {
		snprintf(why, sizeof(why), "%s: %s", path,
		    revokd_strerror(err));
		goto out;
	}
	if (bench_populate(s, k, o->entries, (int64_t)time(NULL), batch,
	        o->batch) >= 0)
		rc = 0;
	else
		snprintf(why, sizeof(why), "%s: cannot fill the store", path);
out:
	if (rc != 0)
		fprintf(stderr, "revokd-bench: query: revokd: %s\n", why);
	crdt_store_close(s);
	crdt_keyer_free(k);
	free(batch);
	return rc;
}

/* The answer frame's size for token i, checking its verdict. */
static size_t
query_sample(cluster *c, uint64_t i, int verdict)
{
	Revokd__Local__Request req;
	Revokd__Local__Check q;
	Revokd__Local__Response *resp;
	char id[48];
	size_t size = 0;

	query_check_request(id, (size_t)bench_token_id(i, id, sizeof(id)), &req,
	    &q);
	if (cluster_call(c->node[0].query, &req, &resp) != REVOKD_OK) {
		fprintf(stderr,
		    "revokd-bench: query: revokd: no answer on %s\n",
		    c->node[0].query);
		return 0;
	}
	if (resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_CHECK &&
	    (int)resp->check->verdict == verdict)
		size = 4 + revokd__local__response__get_packed_size(resp);
	revokd__local__response__free_unpacked(resp, NULL);
	if (size == 0)
		fprintf(stderr, "revokd-bench: query: revokd: %s is not %s\n",
		    id, verdict ? "revoked" : "valid");
	return size;
}

/* A one-region agent serving o->entries revoked tokens. */
static int
query_revokd_start(query_env *e)
{
	size_t hit, miss;

	if (cluster_new(1, NULL, &e->c) != REVOKD_OK) {
		fprintf(stderr, "revokd-bench: query: revokd: cannot make the "
		                "cluster directory, certificates and config\n");
		return -1;
	}
	if (query_fill(e->o, &e->c) != 0)
		return -1;
	if (!cluster_start(&e->c, 0) || !cluster_wait_ready(&e->c, 0, 10000)) {
		fprintf(stderr, "revokd-bench: query: revokd did not start\n");
		cluster_print_log(&e->c, 0);
		return -1;
	}
	hit = query_sample(&e->c, 0, REVOKD__LOCAL__VERDICT__REVOKED_TOKEN);
	miss = query_sample(&e->c, e->o->entries, 0);
	/* Ping-pong answers with the mean size of revokd's answers. */
	e->pp_reply = (hit * e->o->hits + miss * (100 - e->o->hits) + 50) / 100;
	return hit && miss ? 0 : -1;
}

static void
query_revokd_stop(query_env *e)
{
	char why[512];

	if (e->c.node[0].pid > 0 &&
	    !cluster_shutdown(&e->c, why, sizeof(why))) {
		fprintf(stderr, "revokd-bench: query: revokd: %s\n", why);
		cluster_print_log(&e->c, 0);
	}
	cluster_free(&e->c);
}

/* ------------------------------------------------------------------------ */
/* redis                                                                    */
/* ------------------------------------------------------------------------ */

/* Lines of RESP from a blocking socket (cluster_open: 10 s timeout). */
typedef struct query_resp {
	int fd;
	char buf[512];
	size_t len;
} query_resp;

/* The next line, without its CRLF, into line; false on EOF or error. */
static bool
query_resp_line(query_resp *r, char *line, size_t cap)
{
	for (;;) {
		char *crlf = memmem(r->buf, r->len, "\r\n", 2);
		ssize_t n;

		if (crlf != NULL) {
			size_t len = (size_t)(crlf - r->buf);

			snprintf(line, cap, "%.*s", (int)len, r->buf);
			r->len -= len + 2;
			memmove(r->buf, crlf + 2, r->len);
			return true;
		}
		if (r->len == sizeof(r->buf))
			return false;
		n = read(r->fd, r->buf + r->len, sizeof(r->buf) - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		r->len += (size_t)n;
	}
}

/* Send cmd and read its one-line answer. */
static bool
query_resp_call(query_resp *r, const char *cmd, char *line, size_t cap)
{
	return tu_write_full(r->fd, cmd, strlen(cmd)) &&
	       query_resp_line(r, line, cap);
}

/* The path of name in $PATH into buf; false when it is not there. */
static bool
query_which(const char *name, char *buf, size_t cap)
{
	const char *path = getenv("PATH");

	for (const char *p = path; p != NULL && *p != '\0';) {
		const char *colon = strchr(p, ':');
		int len = colon ? (int)(colon - p) : (int)strlen(p);

		snprintf(buf, cap, "%.*s/%s", len, p, name);
		if (len > 0 && access(buf, X_OK) == 0)
			return true;
		p = colon ? colon + 1 : NULL;
	}
	return false;
}

static pid_t
query_redis_spawn(query_env *e)
{
	char log[600];
	pid_t pid = fork();
	int fd;

	if (pid != 0) {
		if (pid > 0)
			setpgid(pid, pid);
		return pid;
	}
	lg_child_detach();
	snprintf(log, sizeof(log), "%s/redis.log", e->dir);
	if ((fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600)) >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	execl(e->redis_bin, e->redis_bin, "--port", "0", "--unixsocket",
	    e->redis_sock, "--unixsocketperm", "700", "--save", "",
	    "--appendonly", "no", "--daemonize", "no", "--dir", e->dir,
	    (char *)NULL);
	_exit(127);
}

/* Until redis answers PING (5 s): false when it exited or did not. */
static bool
query_redis_wait(query_env *e)
{
	char line[64];

	for (int k = 0; k < 100; k++) {
		query_resp r = { .fd = cluster_open(e->redis_sock) };
		bool pong = r.fd >= 0 &&
		            query_resp_call(&r, "*1\r\n$4\r\nPING\r\n", line,
		                sizeof(line)) &&
		            strcmp(line, "+PONG") == 0;

		if (r.fd >= 0)
			close(r.fd);
		if (pong)
			return true;
		if (waitpid(e->redis, NULL, WNOHANG) == e->redis) {
			cluster_guard(e->redis, false);
			e->redis = 0;
			break;
		}
		usleep(50000);
	}
	fprintf(stderr,
	    "revokd-bench: query: redis-server did not answer "
	    "PING on %s (its log: %s/redis.log)\n",
	    e->redis_sock, e->dir);
	return false;
}

/* Append one SADD of the next ids (from *next, below entries) to b. */
static revokd_err
query_sadd(revokd_buf *b, uint64_t *next, uint64_t entries)
{
	uint64_t n = entries - *next < QUERY_SADD_MEMBERS ? entries - *next
	                                                  : QUERY_SADD_MEMBERS;
	char part[96];
	int len = snprintf(part, sizeof(part),
	    "*%" PRIu64 "\r\n$4\r\nSADD\r\n$7\r\nrevoked\r\n", n + 2);
	revokd_err err = revokd_buf_append(b, part, (size_t)len);

	for (uint64_t i = 0; i < n && err == REVOKD_OK; i++, (*next)++) {
		char id[48];
		int idlen = bench_token_id(*next, id, sizeof(id));

		len = snprintf(part, sizeof(part), "$%d\r\n%s\r\n", idlen, id);
		err = revokd_buf_append(b, part, (size_t)len);
	}
	return err;
}

/* The ids into the set "revoked", pipelined; checked with SCARD. */
static bool
query_redis_load(query_resp *r, uint64_t entries)
{
	revokd_buf b = { 0 };
	uint64_t next = 0, added = 0;
	char line[64];
	bool ok = true;

	while (ok && next < entries) {
		unsigned cmds = 0;

		revokd_buf_consume(&b, b.len);
		for (; cmds < QUERY_SADD_PIPELINE && next < entries; cmds++)
			ok = ok && query_sadd(&b, &next, entries) == REVOKD_OK;
		ok = ok && tu_write_full(r->fd, b.data, b.len);
		for (unsigned k = 0; ok && k < cmds; k++) {
			ok = query_resp_line(r, line, sizeof(line)) &&
			     line[0] == ':';
			added += ok ? strtoull(line + 1, NULL, 10) : 0;
		}
	}
	revokd_buf_free(&b);
	ok = ok && query_resp_call(r, "*2\r\n$5\r\nSCARD\r\n$7\r\nrevoked\r\n",
	               line, sizeof(line));
	if (ok && added == entries && line[0] == ':' &&
	    strtoull(line + 1, NULL, 10) == entries)
		return true;
	fprintf(stderr,
	    "revokd-bench: query: redis: loading %" PRIu64
	    " ids failed (%" PRIu64 " added, SCARD: %s)\n",
	    entries, added, ok ? line : "no answer");
	return false;
}

/* redis-server on a Unix socket holding the same ids as revokd. */
static int
query_redis_start(query_env *e)
{
	query_resp r = { .fd = -1 };
	int rc = -1;

	snprintf(e->redis_sock, sizeof(e->redis_sock), "%s/redis.sock", e->dir);
	if ((e->redis = query_redis_spawn(e)) < 0) {
		fprintf(stderr, "revokd-bench: query: redis: fork: %s\n",
		    strerror(errno));
		e->redis = 0;
		return -1;
	}
	cluster_guard(e->redis, true);
	if (query_redis_wait(e) && (r.fd = cluster_open(e->redis_sock)) >= 0 &&
	    query_redis_load(&r, e->o->entries))
		rc = 0;
	if (r.fd >= 0)
		close(r.fd);
	return rc;
}

static ssize_t
query_parse_redis(const uint8_t *buf, size_t len, const void *arg, int *value)
{
	(void)arg;
	if (len < 4)
		return 0;
	/* SISMEMBER answers :0 or :1; anything else is an error. */
	if (buf[0] != ':' || (buf[1] != '0' && buf[1] != '1') ||
	    buf[2] != '\r' || buf[3] != '\n')
		return -1;
	*value = buf[1] - '0';
	return 4;
}

/* ------------------------------------------------------------------------ */
/* The request pools                                                        */
/* ------------------------------------------------------------------------ */

/* The same random ids for every target: --hits percent revoked. */
static int
query_picks(query_env *e)
{
	uint64_t n = e->o->entries;
	revokd_rng rng;

	if ((e->picks = calloc(QUERY_POOL, sizeof(*e->picks))) == NULL) {
		fprintf(stderr, "revokd-bench: query: out of memory\n");
		return -1;
	}
	revokd_rng_seed(&rng, e->o->seed);
	for (size_t i = 0; i < QUERY_POOL; i++)
		e->picks[i] =
		    revokd_rng_below(&rng, n) +
		    (revokd_rng_below(&rng, 100) < e->o->hits ? 0 : n);
	return 0;
}

/* Pre-encode every target's requests, so the generator only copies. */
static int
query_pools(query_env *e)
{
	uint8_t frame[LG_REQUEST_MAX] = { 0 };
	revokd_err err = REVOKD_OK;

	for (int t = 0; t < QUERY_TARGETS && err == REVOKD_OK; t++)
		err = lg_pool_init(&e->pool[t], QUERY_POOL);
	for (size_t i = 0; i < QUERY_POOL && err == REVOKD_OK; i++) {
		char id[48], cmd[LG_REQUEST_MAX];
		int len = bench_token_id(e->picks[i], id, sizeof(id));
		int hit = e->picks[i] < e->o->entries;
		int n = snprintf(cmd, sizeof(cmd),
		    "*3\r\n$9\r\nSISMEMBER\r\n$7\r\nrevoked\r\n$%d\r\n%s\r\n",
		    len, id);
		size_t flen = query_check_frame(id, (size_t)len, frame);

		err =
		    flen ? lg_pool_add(&e->pool[QUERY_REVOKD], frame, flen, hit)
		         : REVOKD_ETOOBIG;
		if (err == REVOKD_OK)
			err = lg_pool_add(&e->pool[QUERY_REDIS], cmd, (size_t)n,
			    hit);
	}
	/* Ping-pong: one request of revokd's mean size, its content unread. */
	e->pp_request = e->pool[QUERY_REVOKD].bytes.len / QUERY_POOL;
	memset(frame, 0, sizeof(frame));
	if (err == REVOKD_OK)
		err = lg_pool_add(&e->pool[QUERY_PINGPONG], frame,
		    e->pp_request, 0);
	if (err != REVOKD_OK)
		fprintf(stderr,
		    "revokd-bench: query: encoding the requests: %s\n",
		    revokd_strerror(err));
	return err == REVOKD_OK ? 0 : -1;
}

/* ------------------------------------------------------------------------ */
/* The suite                                                                */
/* ------------------------------------------------------------------------ */

static int
query_setup(query_env *e)
{
	if (query_revokd_start(e) != 0 || query_picks(e) != 0 ||
	    query_pools(e) != 0)
		return -1;
	e->have_redis =
	    query_which("redis-server", e->redis_bin, sizeof(e->redis_bin));
	if (!e->have_redis)
		fprintf(stderr, "revokd-bench: query: redis-server is not "
		                "installed (Debian package redis-server): "
		                "skipping the redis rows\n");
	else if (query_redis_start(e) != 0)
		return -1;
	snprintf(e->pp_sock, sizeof(e->pp_sock), "%s/pingpong.sock", e->dir);
	if ((e->pingpong = lg_pingpong_start(e->pp_sock, e->pp_request,
	         e->pp_reply)) < 0) {
		e->pingpong = 0;
		return -1;
	}
	cluster_guard(e->pingpong, true);
	return 0;
}

static void
query_teardown(query_env *e)
{
	query_stop(&e->pingpong);
	query_stop(&e->redis);
	query_revokd_stop(e);
	for (int t = 0; t < QUERY_TARGETS; t++)
		lg_pool_free(&e->pool[t]);
	free(e->picks);
}

/* One run of target t under pattern p, in round r. */
static int
query_run(query_env *e, int t, int p, unsigned r)
{
	const char *path[QUERY_TARGETS] = { e->c.node[0].query, e->redis_sock,
		e->pp_sock };
	lg_parse_fn parse[QUERY_TARGETS] = { query_parse_revokd,
		query_parse_redis, lg_parse_fixed };
	lg_target target = { query_names[t], path[t], &e->pool[t], parse[t],
		&e->pp_reply, t != QUERY_PINGPONG };
	lg_pattern pat = { query_patterns[p].conns, query_patterns[p].depth,
		QUERY_WARMUP_S,
		(double)(e->o->seconds ? e->o->seconds : QUERY_SECONDS),
		e->o->seed + r * QUERY_PATTERNS + (unsigned)p };
	lg_result res;

	if (lg_run(&target, &pat, &res) != 0)
		return -1;
	if (res.mismatches > 0 || res.answers == 0) {
		fprintf(stderr,
		    "revokd-bench: query: %s, %u connections, depth %u: "
		    "%" PRIu64 " wrong answers (a revoked id not found "
		    "revoked, or an unknown one not valid), %" PRIu64
		    " answers in the window\n",
		    target.name, pat.conns, pat.depth, res.mismatches,
		    res.answers);
		return -1;
	}
	e->cell[t][p].per_s[r] = res.per_s;
	e->cell[t][p].p50_us[r] = res.p50_us;
	e->cell[t][p].p99_us[r] = res.p99_us;
	return 0;
}

/* Rounds of every pattern, the targets one after the other. */
static int
query_rounds(query_env *e)
{
	for (unsigned r = 0; r < e->o->rounds; r++) {
		fprintf(stderr, "revokd-bench: query: round %u of %u\n", r + 1,
		    e->o->rounds);
		for (int p = 0; p < QUERY_PATTERNS; p++)
			for (int t = 0; t < QUERY_TARGETS; t++)
				if ((t != QUERY_REDIS || e->have_redis) &&
				    query_run(e, t, p, r) != 0)
					return -1;
	}
	return 0;
}

static void
query_emit(const query_env *e, const char *target, int p, const char *what,
    double value, const char *unit)
{
	char metric[96];

	snprintf(metric, sizeof(metric), "%s_c%u_d%u%s%s", target,
	    query_patterns[p].conns, query_patterns[p].depth,
	    what[0] ? "_" : "", what);
	bench_emit(e->o, "query", metric, value, unit);
}

static void
query_report(query_env *e)
{
	unsigned n = e->o->rounds;

	bench_emit(e->o, "query", "entries", (double)e->o->entries, "entries");
	bench_emit(e->o, "query", "hits", (double)e->o->hits, "percent");
	bench_emit(e->o, "query", "pingpong_request_bytes",
	    (double)e->pp_request, "B");
	bench_emit(e->o, "query", "pingpong_reply_bytes", (double)e->pp_reply,
	    "B");
	for (int p = 0; p < QUERY_PATTERNS; p++) {
		double per_s[QUERY_TARGETS];

		for (int t = 0; t < QUERY_TARGETS; t++) {
			query_cell *c = &e->cell[t][p];

			if (t == QUERY_REDIS && !e->have_redis)
				continue;
			per_s[t] = bench_median(c->per_s, n);
			query_emit(e, query_names[t], p, "per_s", per_s[t],
			    "1/s");
			query_emit(e, query_names[t], p, "p50_us",
			    bench_median(c->p50_us, n), "us");
			query_emit(e, query_names[t], p, "p99_us",
			    bench_median(c->p99_us, n), "us");
		}
		if (e->have_redis)
			query_emit(e, "revokd_vs_redis", p, "",
			    per_s[QUERY_REVOKD] / per_s[QUERY_REDIS], "ratio");
		query_emit(e, "revokd_vs_pingpong", p, "",
		    per_s[QUERY_REVOKD] / per_s[QUERY_PINGPONG], "ratio");
	}
}

int
bench_query(const bench_opts *o)
{
	query_env *e = calloc(1, sizeof(*e));
	int rc = 1;

	if (e == NULL || o->rounds > QUERY_ROUNDS_MAX) {
		fprintf(stderr, "revokd-bench: query: %s\n",
		    e ? "at most 100 rounds" : "out of memory");
		free(e);
		return 1;
	}
	e->o = o;
	e->dir = bench_mkdtemp(o);
	/* A peer that went away is an error to report, not a death. */
	signal(SIGPIPE, SIG_IGN);
	if (query_setup(e) == 0 && query_rounds(e) == 0) {
		query_report(e);
		rc = 0;
	}
	query_teardown(e);
	bench_rmdir(e->dir);
	free(e);
	return rc;
}
