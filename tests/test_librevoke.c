/*
 * test_librevoke.c: librevoke's socket client against a scripted server,
 * and its direct reader against stores written here. test_librevoke_agent.c
 * and test_librevoke_agent_life.c run both against real agents;
 * test_jwt.c and test_jwt_revocation.c cover the verifier.
 *
 * The scripted server is a thread with a listening Unix socket that treats
 * each connection as the test says (answer, stay silent, send junk, close),
 * one connection at a time, until the test stops it.
 *
 * Stores are written with the crdt API in this process and closed before
 * the reader opens them, or written by a forked child while the reader is
 * open: LMDB forbids opening one environment twice in a process.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client_int.h"
#include "crdt/crdt.h"
#include "local.pb-c.h"
#include "revoke.h"
#include "testutil.h"
#include "wire/wire.h"

typedef Revokd__Local__Request Request;
typedef Revokd__Local__Response Response;

/* ------------------------------------------------------------------------ */
/* The scripted server                                                      */
/* ------------------------------------------------------------------------ */

typedef enum srv_mode {
	SRV_ANSWER,      /* answer every request well */
	SRV_CLOSE,       /* close every connection at once */
	SRV_SILENT,      /* read requests, never answer */
	SRV_GARBAGE,     /* a frame that does not decode */
	SRV_OVERSIZE,    /* a header declaring 2 GiB */
	SRV_ERROR,       /* an Error response (MALFORMED) */
	SRV_WRONG_BODY,  /* a VersionResult to a Check */
	SRV_BAD_VERDICT, /* verdict 9 */
	SRV_ONE_PER_CONN /* answer one request, then close */
} srv_mode;

typedef struct srv {
	char *dir;
	char path[108];
	int lfd;
	pthread_t thread;
	volatile int stop;
	volatile srv_mode mode; /* set by the test between calls */
	int connections;        /* accepted so far */
	int requests;           /* decoded so far */
} srv;

/* The test's answer to a check: derived from the jti, so it can be told. */
static int
srv_verdict_of(const Revokd__Local__Check *c)
{
	return (int)(c->jti.len % 5);
}

static bool
srv_send(int fd, const Response *resp)
{
	size_t len = revokd__local__response__get_packed_size(resp);
	uint8_t *buf = malloc(WIRE_HEADER_LEN + len);
	bool ok;

	assert_non_null(buf);
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	revokd__local__response__pack(resp, buf + WIRE_HEADER_LEN);
	ok = tu_write_full(fd, buf, WIRE_HEADER_LEN + len);
	free(buf);
	return ok;
}

/* The response to req in mode m; false to close the connection. */
static bool
srv_answer(srv *s, int fd, const Request *req)
{
	static const uint8_t junk[] = { 0, 0, 0, 4, 0xff, 0xff, 0xff, 0xff };
	static const uint8_t huge[] = { 0x7f, 0xff, 0xff, 0xff };
	Response resp = REVOKD__LOCAL__RESPONSE__INIT;
	Revokd__Local__CheckResult cr = REVOKD__LOCAL__CHECK_RESULT__INIT;
	Revokd__Local__VersionResult vr = REVOKD__LOCAL__VERSION_RESULT__INIT;
	Revokd__Local__Error er = REVOKD__LOCAL__ERROR__INIT;
	srv_mode mode = s->mode; /* once: the test may change it meanwhile */

	switch (mode) {
	case SRV_GARBAGE:
		return tu_write_full(fd, junk, sizeof(junk));
	case SRV_OVERSIZE:
		return tu_write_full(fd, huge, sizeof(huge));
	case SRV_ERROR:
		er.code = REVOKD__LOCAL__ERROR_CODE__ERROR_MALFORMED;
		er.message = (char *)"no";
		resp.body_case = REVOKD__LOCAL__RESPONSE__BODY_ERROR;
		resp.error = &er;
		return srv_send(fd, &resp);
	default:
		break;
	}
	if (req->body_case == REVOKD__LOCAL__REQUEST__BODY_CHECK &&
	    mode != SRV_WRONG_BODY) {
		cr.verdict =
		    mode == SRV_BAD_VERDICT
		        ? 9
		        : (Revokd__Local__Verdict)srv_verdict_of(req->check);
		cr.version = req->check->sub.len;
		cr.staleness_ms = 3;
		resp.body_case = REVOKD__LOCAL__RESPONSE__BODY_CHECK;
		resp.check = &cr;
	} else {
		vr.version = 9;
		vr.not_before_ms = 11;
		vr.staleness_ms = 3;
		resp.body_case = REVOKD__LOCAL__RESPONSE__BODY_VERSION;
		resp.version = &vr;
	}
	return srv_send(fd, &resp) && mode != SRV_ONE_PER_CONN;
}

/* Serve one connection until it closes, the mode closes it, or stop. */
static void
srv_serve(srv *s, int fd)
{
	wire_decoder d;
	uint8_t buf[4096];
	bool open = s->mode != SRV_CLOSE;

	wire_decoder_init(&d, WIRE_MAX_FRAME_DEFAULT);
	while (open && !s->stop) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		const uint8_t *frame;
		size_t len;
		ssize_t n;

		if (poll(&p, 1, 20) <= 0)
			continue;
		if ((n = recv(fd, buf, sizeof(buf), 0)) <= 0)
			break;
		assert_int_equal(wire_decoder_feed(&d, buf, (size_t)n),
		    REVOKD_OK);
		while (
		    open && wire_decoder_next(&d, &frame, &len) == REVOKD_OK) {
			Request *req =
			    revokd__local__request__unpack(NULL, len, frame);

			assert_non_null(req);
			__atomic_add_fetch(&s->requests, 1, __ATOMIC_SEQ_CST);
			if (s->mode != SRV_SILENT)
				open = srv_answer(s, fd, req);
			revokd__local__request__free_unpacked(req, NULL);
		}
	}
	wire_decoder_free(&d);
	close(fd);
}

static void *
srv_main(void *arg)
{
	srv *s = arg;

	while (!s->stop) {
		struct pollfd p = { .fd = s->lfd, .events = POLLIN };
		int fd;

		if (poll(&p, 1, 20) <= 0)
			continue;
		if ((fd = accept(s->lfd, NULL, NULL)) < 0)
			continue;
		__atomic_add_fetch(&s->connections, 1, __ATOMIC_SEQ_CST);
		srv_serve(s, fd);
	}
	return NULL;
}

static srv *
srv_start(srv_mode mode)
{
	srv *s = calloc(1, sizeof(*s));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	assert_non_null(s);
	s->dir = tu_tmpdir();
	s->mode = mode;
	snprintf(s->path, sizeof(s->path), "%s/q.sock", s->dir);
	memcpy(sa.sun_path, s->path, sizeof(s->path));
	s->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(s->lfd >= 0);
	assert_int_equal(bind(s->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(s->lfd, 16), 0);
	assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
	return s;
}

static void
srv_free(srv *s)
{
	if (s == NULL)
		return;
	s->stop = 1;
	pthread_join(s->thread, NULL);
	close(s->lfd);
	tu_rmdir(s->dir);
	free(s);
}

/* cmocka: each client test gets a server in *state (mode set by the test). */
static int
srv_setup(void **state)
{
	*state = srv_start(SRV_ANSWER);
	return 0;
}

static int
srv_teardown(void **state)
{
	srv_free(*state);
	return 0;
}

static revoke_client *
open_client(srv *s, srv_mode mode, int timeout_ms)
{
	revoke_client_options o = { .timeout_ms = timeout_ms };
	revoke_client *c = NULL;

	s->mode = mode;
	assert_int_equal(revoke_client_open(s->path, &o, &c), REVOKE_OK);
	return c;
}

static revoke_query
jti_query(const char *jti)
{
	return (revoke_query){ .jti = jti };
}

/* ------------------------------------------------------------------------ */
/* Client tests                                                             */
/* ------------------------------------------------------------------------ */

/* A check and a version answered; the request carried what was asked. */
static void
test_client_check_and_version(void **state)
{
	srv *s = *state;
	revoke_client *c = open_client(s, SRV_ANSWER, 1000);
	revoke_query q = { .jti = "abc",
		.sub = "alice",
		.has_ver = true,
		.ver = 2 };
	revoke_answer a;
	uint64_t v = 0, nb = 0, st = 0;

	assert_int_equal(revoke_client_check(c, &q, &a), REVOKE_OK);
	assert_int_equal(a.verdict, 3); /* "abc" */
	assert_int_equal(a.version, 5); /* strlen("alice") */
	assert_int_equal(a.staleness_ms, 3);
	assert_int_equal(revoke_client_version(c, "bob", 0, &v, &nb, &st),
	    REVOKE_OK);
	assert_int_equal(v, 9);
	assert_int_equal(nb, 11);
	assert_int_equal(st, 3);
	assert_int_equal(s->connections, 1);
	revoke_client_close(c);
}

/*
 * 100,000 checks in one call: more answers than socket buffers hold, from
 * a server that blocks writing them; the client must read while it writes.
 */
static void
test_client_many_pipelined(void **state)
{
	enum { N = 100000 };
	static const char *const ids[] = { "a", "bb", "ccc", "dddd", "eeeee" };
	srv *s = *state;
	revoke_client *c = open_client(s, SRV_ANSWER, 10000);
	revoke_query *q = calloc(N, sizeof(*q));
	revoke_answer *a = calloc(N, sizeof(*a));

	assert_non_null(q);
	assert_non_null(a);
	for (size_t i = 0; i < N; i++)
		q[i] = jti_query(ids[(i * 7) % 5]);
	assert_int_equal(revoke_client_check_many(c, q, N, a), REVOKE_OK);
	for (size_t i = 0; i < N; i++)
		assert_int_equal(a[i].verdict, strlen(q[i].jti) % 5);
	assert_int_equal(s->requests, N);
	assert_int_equal(revoke_client_check_many(c, q, 0, a), REVOKE_OK);
	revoke_client_close(c);
	free(q);
	free(a);
}

/* Bad queries are refused before anything is sent. */
static void
test_client_invalid(void **state)
{
	srv *s = *state;
	revoke_client *c = open_client(s, SRV_ANSWER, 1000);
	char long_id[REVOKE__ID_MAX + 2];
	revoke_query none = { 0 }, empty = { .jti = "", .sid = "" };
	revoke_query q;
	revoke_answer a;

	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_int_equal(revoke_client_check(c, &none, &a), REVOKE_E_INVALID);
	assert_int_equal(revoke_client_check(c, &empty, &a), REVOKE_E_INVALID);
	q = jti_query(long_id);
	assert_int_equal(revoke_client_check(c, &q, &a), REVOKE_E_INVALID);
	q.jti_len = REVOKE__ID_MAX; /* exactly the limit: fine */
	assert_int_equal(revoke_client_check(c, &q, &a), REVOKE_OK);
	assert_int_equal(revoke_client_check(NULL, &q, &a), REVOKE_E_INVALID);
	assert_int_equal(revoke_client_version(c, "", 0, NULL, NULL, NULL),
	    REVOKE_E_INVALID);
	assert_int_equal(s->requests, 1);
	revoke_client_close(c);
}

/* No socket, or a path that cannot be one. */
static void
test_client_open_errors(void **state)
{
	srv *s = *state;
	char path[200], longpath[300];
	revoke_client *c = NULL;
	revoke_client_options bad = { .timeout_ms = -1 };

	snprintf(path, sizeof(path), "%s/nothing.sock", s->dir);
	assert_int_equal(revoke_client_open(path, NULL, &c), REVOKE_E_CONNECT);
	assert_null(c);
	assert_non_null(strstr(revoke_last_error(), path));
	assert_non_null(strstr(revoke_last_error(), "No such file"));
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(revoke_client_open(longpath, NULL, &c),
	    REVOKE_E_INVALID);
	assert_int_equal(revoke_client_open(s->path, &bad, &c),
	    REVOKE_E_INVALID);
	assert_int_equal(revoke_client_open("", NULL, &c), REVOKE_E_INVALID);
	revoke_client_close(NULL);
}

/* A server that never answers: the call times out, and says so. */
static void
test_client_timeout(void **state)
{
	srv *s = *state;
	revoke_client *c = open_client(s, SRV_SILENT, 100);
	revoke_query q = jti_query("abc");
	revoke_answer a;
	struct timespec t0, t1;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(revoke_client_check(c, &q, &a), REVOKE_E_TIMEOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 +
	     (t1.tv_nsec - t0.tv_nsec) / 1000000;
	assert_true(ms >= 90);
	/* The connection was dropped: the next call connects again. */
	s->mode = SRV_ANSWER;
	assert_int_equal(revoke_client_check(c, &q, &a), REVOKE_OK);
	assert_int_equal(s->connections, 2);
	revoke_client_close(c);
}

/* Answers that break the protocol. */
static void
test_client_protocol_errors(void **state)
{
	static const srv_mode modes[] = { SRV_GARBAGE, SRV_OVERSIZE,
		SRV_WRONG_BODY, SRV_BAD_VERDICT };
	srv *s = *state;
	revoke_query q = jti_query("abc");
	revoke_answer a;

	for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
		revoke_client *c = open_client(s, modes[i], 1000);

		assert_int_equal(revoke_client_check(c, &q, &a),
		    REVOKE_E_PROTOCOL);
		s->mode = SRV_ANSWER; /* and the client recovers */
		assert_int_equal(revoke_client_check(c, &q, &a), REVOKE_OK);
		assert_int_equal(a.verdict, 3);
		revoke_client_close(c);
	}
}

/* An Error answer: REVOKE_E_AGENT, and the connection stays usable. */
static void
test_client_agent_error(void **state)
{
	srv *s = *state;
	revoke_client *c = open_client(s, SRV_ERROR, 1000);
	revoke_query q[3] = { jti_query("a"), jti_query("bb"),
		jti_query("ccc") };
	revoke_answer a[3];

	assert_int_equal(revoke_client_check(c, q, a), REVOKE_E_AGENT);
	assert_int_equal(revoke_client_check_many(c, q, 3, a), REVOKE_E_AGENT);
	s->mode = SRV_ANSWER;
	assert_int_equal(revoke_client_check_many(c, q, 3, a), REVOKE_OK);
	assert_int_equal(a[2].verdict, 3);
	assert_int_equal(s->connections, 1);
	revoke_client_close(c);
}

/*
 * A connection closed under a client (an agent that restarted): calls on
 * a connection that already served one are retried on a new connection;
 * a fresh connection that closes is an error.
 */
static void
test_client_reconnects(void **state)
{
	srv *s = *state;
	revoke_client *c = open_client(s, SRV_ONE_PER_CONN, 1000);
	revoke_query q = jti_query("abcd");
	revoke_answer a;

	for (int i = 0; i < 5; i++) {
		assert_int_equal(revoke_client_check(c, &q, &a), REVOKE_OK);
		assert_int_equal(a.verdict, 4);
	}
	assert_true(s->connections >= 5);
	s->mode = SRV_CLOSE;
	assert_int_equal(revoke_client_check(c, &q, &a), REVOKE_E_CLOSED);
	s->mode = SRV_ANSWER;
	assert_int_equal(revoke_client_check(c, &q, &a), REVOKE_OK);
	revoke_client_close(c);
}

/* The server gone: connecting again fails with CONNECT. */
static void
test_client_server_gone(void **state)
{
	srv *s = *state;
	revoke_client *c = open_client(s, SRV_ANSWER, 1000);
	revoke_query q = jti_query("abc");
	revoke_answer a;

	assert_int_equal(revoke_client_check(c, &q, &a), REVOKE_OK);
	s->stop = 1;
	pthread_join(s->thread, NULL);
	close(s->lfd);
	unlink(s->path);
	s->lfd = -1;
	s->stop = 0;
	assert_int_equal(revoke_client_check(c, &q, &a), REVOKE_E_CONNECT);
	assert_int_equal(revoke_client_check(c, &q, &a), REVOKE_E_CONNECT);
	revoke_client_close(c);
	/* srv_teardown joins a thread: give it one that ends at once. */
	s->stop = 1;
	assert_int_equal(pthread_create(&s->thread, NULL, srv_main, s), 0);
}

/* ------------------------------------------------------------------------ */
/* The direct reader                                                        */
/* ------------------------------------------------------------------------ */

typedef struct rfx {
	char *dir;
	char secret_path[300];
	uint8_t secret[CRDT_SECRET_LEN];
	crdt_keyer *keyer;
	int64_t now;
	revoke_reader *r;
} rfx;

static int
rfx_setup(void **state)
{
	rfx *f = calloc(1, sizeof(*f));
	FILE *fp;

	assert_non_null(f);
	f->dir = tu_tmpdir();
	f->now = time(NULL);
	for (size_t i = 0; i < sizeof(f->secret); i++)
		f->secret[i] = (uint8_t)(i * 37 + 11);
	snprintf(f->secret_path, sizeof(f->secret_path), "%s/secret", f->dir);
	fp = fopen(f->secret_path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(f->secret, 1, sizeof(f->secret), fp),
	    sizeof(f->secret));
	fclose(fp);
	assert_int_equal(chmod(f->secret_path, 0600), 0);
	assert_int_equal(
	    crdt_keyer_new(f->secret, sizeof(f->secret), &f->keyer), REVOKD_OK);
	*state = f;
	return 0;
}

static int
rfx_teardown(void **state)
{
	rfx *f = *state;

	revoke_reader_close(f->r);
	crdt_keyer_free(f->keyer);
	tu_rmdir(f->dir);
	free(f);
	return 0;
}

static crdt_key
rkey(rfx *f, crdt_kind kind, const char *id)
{
	crdt_key k;

	assert_int_equal(crdt_key_derive(f->keyer, kind, id, strlen(id), &k),
	    REVOKD_OK);
	return k;
}

/* A token entry, revoked (or restored after) a minute ago. */
static crdt_entry
rtoken(rfx *f, crdt_kind kind, const char *id, bool restored)
{
	crdt_entry e = { .key = rkey(f, kind, id), .kind = kind };
	uint64_t ms = (uint64_t)(f->now - 60) * 1000;

	e.u.token.exp = f->now + 3600;
	e.u.token.revoked_at = CRDT_HLC_AT(ms);
	e.u.token.restored_at = restored ? CRDT_HLC_AT(ms + 1) : 0;
	e.u.token.origin = 1;
	return e;
}

/* A subject at version count (one region), with a not-before. */
static crdt_entry
rsubject(rfx *f, const char *id, uint64_t count, uint64_t not_before_ms)
{
	crdt_entry e = { .key = rkey(f, CRDT_KIND_SUB, id),
		.kind = CRDT_KIND_SUB };

	e.u.subject.not_before_ms = not_before_ms;
	if (count) {
		e.u.subject.n = 1;
		e.u.subject.region[0] = 1;
		e.u.subject.count[0] = count;
	}
	return e;
}

/* Watermarks as the agent saves them: (id, µs) pairs, ours first. */
static size_t
rwatermarks(uint8_t *buf, const uint16_t *ids, const uint64_t *us, size_t n)
{
	size_t len = 0;

	for (size_t i = 0; i < n; i++) {
		for (int b = 0; b < 2; b++)
			buf[len++] = (uint8_t)(ids[i] >> (8 * b));
		for (int b = 0; b < 8; b++)
			buf[len++] = (uint8_t)(us[i] >> (8 * b));
	}
	return len;
}

/* Write entries (and watermarks, when wm_len) to the store in f->dir. */
static void
rwrite(rfx *f, const crdt_entry *in, size_t n, size_t map_size,
    const uint8_t *wm, size_t wm_len)
{
	crdt_store_options o = { .no_sync = true, .map_size = map_size };
	crdt_store *s;

	assert_int_equal(crdt_store_open(f->dir, &o, &s), REVOKD_OK);
	assert_int_equal(crdt_store_bind_secret(s, f->keyer), REVOKD_OK);
	for (size_t i = 0; i < n; i += 1000)
		assert_int_equal(crdt_store_apply(s, in + i,
		                     n - i < 1000 ? n - i : 1000, f->now, NULL,
		                     NULL),
		    REVOKD_OK);
	if (wm_len)
		assert_int_equal(
		    crdt_store_meta_put(s, "revokd.watermarks", wm, wm_len),
		    REVOKD_OK);
	crdt_store_close(s);
}

/* rwrite in a child process (the reader is open in this one). */
static void
rwrite_child(rfx *f, const crdt_entry *in, size_t n, size_t map_size)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		crdt_store_options o = { .no_sync = true,
			.map_size = map_size };
		crdt_store *s;

		if (crdt_store_open(f->dir, &o, &s) != REVOKD_OK ||
		    crdt_store_bind_secret(s, f->keyer) != REVOKD_OK)
			_exit(1);
		for (size_t i = 0; i < n; i += 1000)
			if (crdt_store_apply(s, in + i,
			        n - i < 1000 ? n - i : 1000, f->now, NULL,
			        NULL) != REVOKD_OK)
				_exit(2);
		crdt_store_close(s);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
ropen(rfx *f)
{
	assert_int_equal(revoke_reader_open(f->dir, f->secret_path, &f->r),
	    REVOKE_OK);
}

static revoke_answer
rcheck(rfx *f, revoke_query q)
{
	revoke_answer a;

	assert_int_equal(revoke_reader_check(f->r, &q, &a), REVOKE_OK);
	return a;
}

/* Every verdict, and their order when several apply. */
static void
test_reader_verdicts(void **state)
{
	rfx *f = *state;
	uint64_t nb = (uint64_t)(f->now - 100) * 1000;
	crdt_entry in[] = {
		rtoken(f, CRDT_KIND_JTI, "tok-revoked", false),
		rtoken(f, CRDT_KIND_JTI, "tok-restored", true),
		rtoken(f, CRDT_KIND_SID, "sess-revoked", false),
		rsubject(f, "alice", 3, 0),
		rsubject(f, "bob", 0, nb),
	};
	revoke_answer a;

	rwrite(f, in, sizeof(in) / sizeof(in[0]), 0, NULL, 0);
	ropen(f);

	a = rcheck(f, (revoke_query){ .jti = "tok-other" });
	assert_int_equal(a.verdict, REVOKE_VALID);
	assert_int_equal(a.version, 0);
	/* No watermarks saved: the peers were never heard, as the agent
	 * says of a peer it never heard from: since the epoch. */
	assert_true(a.staleness_ms > (uint64_t)(f->now - 10) * 1000);
	a = rcheck(f, (revoke_query){ .jti = "tok-revoked" });
	assert_int_equal(a.verdict, REVOKE_REVOKED_TOKEN);
	a = rcheck(f, (revoke_query){ .jti = "tok-restored" });
	assert_int_equal(a.verdict, REVOKE_VALID);
	/* ids with an explicit length need no NUL */
	a = rcheck(f, (revoke_query){ .jti = "tok-revokedXYZ", .jti_len = 11 });
	assert_int_equal(a.verdict, REVOKE_REVOKED_TOKEN);
	a = rcheck(f, (revoke_query){ .sid = "sess-revoked" });
	assert_int_equal(a.verdict, REVOKE_REVOKED_SESSION);
	/* a jti is not a sid: the kind is part of the key */
	a = rcheck(f, (revoke_query){ .sid = "tok-revoked" });
	assert_int_equal(a.verdict, REVOKE_VALID);

	a = rcheck(f,
	    (revoke_query){ .sub = "alice", .has_ver = true, .ver = 2 });
	assert_int_equal(a.verdict, REVOKE_STALE_VERSION);
	assert_int_equal(a.version, 3);
	a = rcheck(f,
	    (revoke_query){ .sub = "alice", .has_ver = true, .ver = 3 });
	assert_int_equal(a.verdict, REVOKE_VALID);
	a = rcheck(f, (revoke_query){ .sub = "alice" });
	assert_int_equal(a.verdict, REVOKE_VALID);
	assert_int_equal(a.version, 3);

	a = rcheck(f, (revoke_query){ .sub = "bob",
	                  .has_iat = true,
	                  .iat = f->now - 101 });
	assert_int_equal(a.verdict, REVOKE_REVOKED_NOT_BEFORE);
	a = rcheck(f, (revoke_query){ .sub = "bob",
	                  .has_iat = true,
	                  .iat = f->now - 100 });
	assert_int_equal(a.verdict, REVOKE_VALID);

	/* A revoked token wins over a revoked session over a stale version. */
	a = rcheck(f, (revoke_query){ .jti = "tok-revoked",
	                  .sid = "sess-revoked",
	                  .sub = "alice",
	                  .has_ver = true,
	                  .ver = 0 });
	assert_int_equal(a.verdict, REVOKE_REVOKED_TOKEN);
	a = rcheck(f, (revoke_query){ .jti = "tok-other",
	                  .sid = "sess-revoked",
	                  .sub = "alice",
	                  .has_ver = true,
	                  .ver = 0 });
	assert_int_equal(a.verdict, REVOKE_REVOKED_SESSION);
	a = rcheck(f, (revoke_query){ .sid = "sess-other",
	                  .sub = "alice",
	                  .has_ver = true,
	                  .ver = 0 });
	assert_int_equal(a.verdict, REVOKE_STALE_VERSION);
}

/* A subject's version and not-before, and none for an unknown one. */
static void
test_reader_version(void **state)
{
	rfx *f = *state;
	crdt_entry in[] = { rsubject(f, "carol", 7, 123456) };
	uint64_t v = 1, nb = 1, st = 1;

	rwrite(f, in, 1, 0, NULL, 0);
	ropen(f);
	assert_int_equal(revoke_reader_version(f->r, "carol", 0, &v, &nb, &st),
	    REVOKE_OK);
	assert_int_equal(v, 7);
	assert_int_equal(nb, 123456);
	assert_true(st > (uint64_t)(f->now - 10) * 1000); /* no watermarks */
	assert_int_equal(revoke_reader_version(f->r, "dave", 4, &v, &nb, NULL),
	    REVOKE_OK);
	assert_int_equal(v, 0);
	assert_int_equal(nb, 0);
	assert_int_equal(revoke_reader_version(f->r, NULL, 0, &v, &nb, NULL),
	    REVOKE_E_INVALID);
}

/* Queries that ask nothing, or too much. */
static void
test_reader_invalid(void **state)
{
	rfx *f = *state;
	char long_id[REVOKE__ID_MAX + 2];
	revoke_query q = { 0 };
	revoke_answer a;

	rwrite(f, NULL, 0, 0, NULL, 0);
	ropen(f);
	memset(long_id, 'x', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_int_equal(revoke_reader_check(f->r, &q, &a), REVOKE_E_INVALID);
	q.jti = "";
	q.sub = "";
	assert_int_equal(revoke_reader_check(f->r, &q, &a), REVOKE_E_INVALID);
	q = (revoke_query){ .sub = long_id };
	assert_int_equal(revoke_reader_check(f->r, &q, &a), REVOKE_E_INVALID);
	q.sub_len = REVOKE__ID_MAX;
	assert_int_equal(revoke_reader_check(f->r, &q, &a), REVOKE_OK);
	assert_int_equal(revoke_reader_check(NULL, &q, &a), REVOKE_E_INVALID);
}

/* A data dir without a store, and secrets that must not be used. */
static void
test_reader_open_errors(void **state)
{
	rfx *f = *state;
	char path[400], empty[400];
	revoke_reader *r = NULL;
	FILE *fp;

	/* No store yet. */
	assert_int_equal(revoke_reader_open(f->dir, f->secret_path, &r),
	    REVOKE_E_STORE);
	snprintf(empty, sizeof(empty), "%s/none", f->dir);
	assert_int_equal(revoke_reader_open(empty, f->secret_path, &r),
	    REVOKE_E_STORE);
	assert_non_null(strstr(revoke_last_error(), empty));
	rwrite(f, NULL, 0, 0, NULL, 0);

	assert_int_equal(revoke_reader_open(f->dir, empty, &r),
	    REVOKE_E_SECRET);
	assert_int_equal(chmod(f->secret_path, 0640), 0);
	assert_int_equal(revoke_reader_open(f->dir, f->secret_path, &r),
	    REVOKE_E_SECRET);
	assert_non_null(strstr(revoke_last_error(), "mode 0640"));
	assert_int_equal(chmod(f->secret_path, 0600), 0);
	snprintf(path, sizeof(path), "%s/short", f->dir);
	fp = fopen(path, "wb");
	assert_non_null(fp);
	fputs("too short", fp);
	fclose(fp);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(revoke_reader_open(f->dir, path, &r), REVOKE_E_SECRET);
	assert_int_equal(revoke_reader_open(NULL, path, &r), REVOKE_E_INVALID);
	assert_null(r);

	/*
	 * A reader with another secret is refused: under it, every id would
	 * miss its key, and every token would look valid.
	 */
	{
		crdt_entry in[] = { rtoken(f, CRDT_KIND_JTI, "t", false) };
		uint8_t other[CRDT_SECRET_LEN] = { 1 };

		rwrite(f, in, 1, 0, NULL, 0);
		fp = fopen(path, "wb");
		assert_non_null(fp);
		fwrite(other, 1, sizeof(other), fp);
		fclose(fp);
		assert_int_equal(revoke_reader_open(f->dir, path, &r),
		    REVOKE_E_SECRET);
		assert_non_null(strstr(revoke_last_error(),
		    "is not the cluster secret the store"));
		assert_null(r);
		ropen(f);
		assert_int_equal(
		    rcheck(f, (revoke_query){ .jti = "t" }).verdict,
		    REVOKE_REVOKED_TOKEN);
	}
}

/* A store no agent has bound to its secret is not read. */
static void
test_reader_unbound_store(void **state)
{
	rfx *f = *state;
	crdt_store_options o = { .no_sync = true };
	revoke_reader *r = NULL;
	crdt_store *s;

	assert_int_equal(crdt_store_open(f->dir, &o, &s), REVOKD_OK);
	crdt_store_close(s);
	assert_int_equal(revoke_reader_open(f->dir, f->secret_path, &r),
	    REVOKE_E_SECRET);
	assert_non_null(strstr(revoke_last_error(), "(start revokd on it"));
	assert_null(r);
}

static uint64_t
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Staleness: now minus the oldest peer watermark; the agent's own is not. */
static void
test_reader_staleness(void **state)
{
	rfx *f = *state;
	uint64_t t = now_us();
	uint16_t ids[] = { 1, 2, 3 };
	uint64_t us[] = { t - 900000000, t - 5000000, t - 2000000 };
	uint8_t wm[64];
	size_t len = rwatermarks(wm, ids, us, 3);
	revoke_answer a;
	uint64_t st = 0, late_ms;

	rwrite(f, NULL, 0, 0, wm, len);
	ropen(f);
	a = rcheck(f, (revoke_query){ .jti = "x" });
	assert_int_equal(revoke_reader_version(f->r, "x", 0, NULL, NULL, &st),
	    REVOKE_OK);
	/* The peer 2 was heard 5 s before t, and time has passed since. */
	late_ms = (now_us() - t) / 1000 + 1;
	assert_in_range(a.staleness_ms, 5000, 5000 + late_ms);
	assert_in_range(st, 5000, 5000 + late_ms);
	revoke_reader_close(f->r);
	f->r = NULL;

	/* Only the agent's own: no peers, never stale. */
	len = rwatermarks(wm, ids, us, 1);
	rwrite(f, NULL, 0, 0, wm, len);
	ropen(f);
	assert_int_equal(rcheck(f, (revoke_query){ .jti = "x" }).staleness_ms,
	    0);
}

/*
 * The agent restarts with a bigger map and fills it past the size this
 * process mapped: the reader adopts the new size and finds what was
 * written there.
 */
static void
test_reader_map_resized(void **state)
{
	enum { N = 20000 };
	rfx *f = *state;
	crdt_entry *in = calloc(N, sizeof(*in));
	char id[32];

	assert_non_null(in);
	in[0] = rtoken(f, CRDT_KIND_JTI, "first", false);
	rwrite(f, in, 1, 1u << 20, NULL, 0);
	ropen(f);
	assert_int_equal(rcheck(f, (revoke_query){ .jti = "first" }).verdict,
	    REVOKE_REVOKED_TOKEN);
	for (int i = 0; i < N; i++) {
		snprintf(id, sizeof(id), "late-%d", i);
		in[i] = rtoken(f, CRDT_KIND_JTI, id, false);
	}
	rwrite_child(f, in, N, 64u << 20);
	for (int i = 0; i < N; i += 997) {
		snprintf(id, sizeof(id), "late-%d", i);
		assert_int_equal(rcheck(f, (revoke_query){ .jti = id }).verdict,
		    REVOKE_REVOKED_TOKEN);
	}
	assert_int_equal(rcheck(f, (revoke_query){ .jti = "first" }).verdict,
	    REVOKE_REVOKED_TOKEN);
	free(in);
}

/* Many threads share one reader. */
typedef struct rthread {
	rfx *f;
	int seed;
	int wrong;
} rthread;

static void *
rthread_main(void *arg)
{
	rthread *t = arg;
	char id[32];

	for (int i = 0; i < 20000; i++) {
		int k = (t->seed * 7919 + i * 31) % 2000;
		revoke_query q = { .jti = id };
		revoke_answer a;

		snprintf(id, sizeof(id), "tok-%d", k);
		if (revoke_reader_check(t->f->r, &q, &a) != REVOKE_OK ||
		    a.verdict != (k % 2 ? REVOKE_REVOKED_TOKEN : REVOKE_VALID))
			t->wrong++;
	}
	return NULL;
}

static void
test_reader_threads(void **state)
{
	enum { THREADS = 8 };
	rfx *f = *state;
	crdt_entry in[1000];
	pthread_t th[THREADS];
	rthread t[THREADS];
	char id[32];

	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof(id), "tok-%d",
		    2 * i + 1); /* odd: revoked */
		in[i] = rtoken(f, CRDT_KIND_JTI, id, false);
	}
	rwrite(f, in, 1000, 0, NULL, 0);
	ropen(f);
	for (int i = 0; i < THREADS; i++) {
		t[i] = (rthread){ f, i, 0 };
		assert_int_equal(
		    pthread_create(&th[i], NULL, rthread_main, &t[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(t[i].wrong, 0);
	}
}

/* Names are total: every value has one. */
static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(revoke_verdict_name(REVOKE_STALE_VERSION),
	    "STALE_VERSION");
	assert_string_equal(revoke_verdict_name((revoke_verdict)77), "UNKNOWN");
	for (int s = REVOKE_OK; s <= REVOKE_E_KEYS; s++)
		assert_true(strlen(revoke_strerror((revoke_status)s)) > 0);
	assert_string_equal(revoke_strerror((revoke_status)99),
	    "unknown status");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_client_check_and_version,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_client_many_pipelined,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_client_invalid, srv_setup,
		    srv_teardown),
		cmocka_unit_test_setup_teardown(test_client_open_errors,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_client_timeout, srv_setup,
		    srv_teardown),
		cmocka_unit_test_setup_teardown(test_client_protocol_errors,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_client_agent_error,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_client_reconnects,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_client_server_gone,
		    srv_setup, srv_teardown),
		cmocka_unit_test_setup_teardown(test_reader_verdicts, rfx_setup,
		    rfx_teardown),
		cmocka_unit_test_setup_teardown(test_reader_version, rfx_setup,
		    rfx_teardown),
		cmocka_unit_test_setup_teardown(test_reader_invalid, rfx_setup,
		    rfx_teardown),
		cmocka_unit_test_setup_teardown(test_reader_open_errors,
		    rfx_setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_reader_unbound_store,
		    rfx_setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_reader_staleness,
		    rfx_setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_reader_map_resized,
		    rfx_setup, rfx_teardown),
		cmocka_unit_test_setup_teardown(test_reader_threads, rfx_setup,
		    rfx_teardown),
		cmocka_unit_test(test_names),
	};

	signal(SIGPIPE, SIG_IGN); /* the server writes to clients gone */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
