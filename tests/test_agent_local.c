/*
 * test_agent_local.c: the framed Unix-socket server (agent/local.h) on a
 * real libuv loop, with real client sockets. The clients are non-blocking
 * AF_UNIX sockets in this same thread: every wait runs the loop
 * (UV_RUN_NOWAIT) and polls in 1 ms steps until its condition or a time
 * limit, so a broken server fails a test instead of hanging it.
 *
 * The handler answers "re:" and the payload, except that a payload starting
 * with 'D' (or every payload, when the test says so) is kept to be answered
 * later, which is how ordering behind a late answer is checked.
 *
 * Out of descriptors, a server runs in a child with a lowered
 * RLIMIT_NOFILE and every descriptor taken, while this process connects a
 * client every 45 ms: the child's CPU time over that second, its log lines
 * and whether the waiting clients are answered once descriptors return are
 * checked, with descriptors to spare when the server started and with only
 * the one it needed (libuv's own listener had then no spare descriptor,
 * and retried a failed accept for ever without returning to the loop; with
 * one, it dropped the waiting clients unanswered).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <uv.h>

#include "agent/local.h"
#include "testutil.h"
#include "wire/wire.h"

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#define MAX_CLIENTS 1100
#define MAX_DEFERRED 8192
#define IDLE_CLIENTS 1000
#define WAIT_MS 2000

typedef struct fixture {
	uv_loop_t loop;
	char *dir;
	char path[100]; /* fits sun_path */
	agent_local_config cfg;
	agent_local *server;
	int fds[MAX_CLIENTS];
	size_t nfds;
	/* The handler's state. */
	bool defer_all;
	agent_local_slot *deferred[MAX_DEFERRED];
	size_t ndeferred;
	unsigned batches;
	size_t largest_batch;
	size_t handled;      /* requests handed to the handler */
	size_t before_probe; /* of those, before the one saying "probe" */
	unsigned cut_logs, refused_logs, truncated_logs;
	unsigned accept_failed_logs, error_logs;
	pid_t child; /* of an out-of-descriptors test, until reaped */
	uint8_t reply[1 << 16];
	uint8_t *scratch; /* a test's big buffer, freed in teardown */
} fixture;

/* ------------------------------------------------------------------------ */
/* The handler                                                              */
/* ------------------------------------------------------------------------ */

static void
answer(fixture *f, agent_local_slot *slot, const uint8_t *data, size_t len)
{
	assert_true(len + 3 <= sizeof(f->reply));
	memcpy(f->reply, "re:", 3);
	if (len > 0)
		memcpy(f->reply + 3, data, len);
	assert_int_equal(agent_local_fill(slot, f->reply, len + 3), REVOKD_OK);
}

static void
on_frames(void *arg, agent_local_conn *c, const agent_local_frame *frames,
    size_t n)
{
	fixture *f = arg;

	(void)c;
	f->batches++;
	if (n > f->largest_batch)
		f->largest_batch = n;
	for (size_t i = 0; i < n; i++) {
		const agent_local_frame *fr = &frames[i];

		if (fr->len == 5 && memcmp(fr->data, "probe", 5) == 0)
			f->before_probe = f->handled;
		f->handled++;
		if (f->defer_all || (fr->len > 0 && fr->data[0] == 'D')) {
			assert_true(f->ndeferred < MAX_DEFERRED);
			f->deferred[f->ndeferred++] = fr->slot;
		} else {
			answer(f, fr->slot, fr->data, fr->len);
		}
	}
}

static void
on_oversize(void *arg, agent_local_slot *slot, size_t declared)
{
	char msg[64];

	(void)arg;
	snprintf(msg, sizeof(msg), "big:%zu", declared);
	assert_int_equal(
	    agent_local_fill(slot, (const uint8_t *)msg, strlen(msg)),
	    REVOKD_OK);
}

static void
on_log(void *arg, const char *event, const char *detail)
{
	fixture *f = arg;

	(void)detail;
	if (strcmp(event, "cut_slow") == 0)
		f->cut_logs++;
	else if (strcmp(event, "refused") == 0)
		f->refused_logs++;
	else if (strcmp(event, "truncated") == 0)
		f->truncated_logs++;
	else if (strcmp(event, "accept_failed") == 0)
		f->accept_failed_logs++;
	else if (strcmp(event, "error") == 0)
		f->error_logs++;
}

/* Answer deferred request i late, with "late:" and text. */
static void
fill_deferred(fixture *f, size_t i, const char *text)
{
	char msg[64];

	assert_non_null(f->deferred[i]);
	snprintf(msg, sizeof(msg), "late:%s", text);
	assert_int_equal(
	    agent_local_fill(f->deferred[i], (const uint8_t *)msg, strlen(msg)),
	    REVOKD_OK);
	f->deferred[i] = NULL;
}

/* ------------------------------------------------------------------------ */
/* Loop and clients                                                         */
/* ------------------------------------------------------------------------ */

static uint64_t
now_ms(void)
{
	return uv_hrtime() / 1000000;
}

/* Run what is ready, then wait up to 1 ms for more. */
static void
step(fixture *f)
{
	struct pollfd pfd = { uv_backend_fd(&f->loop), POLLIN, 0 };

	uv_run(&f->loop, UV_RUN_NOWAIT);
	poll(&pfd, 1, 1);
	uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void
pump(fixture *f, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (now_ms() < end)
		step(f);
}

/* Run the loop until the server has n connections open. */
static bool
wait_connections(fixture *f, unsigned n)
{
	uint64_t end = now_ms() + WAIT_MS;

	while (agent_local_connections(f->server) != n && now_ms() < end)
		step(f);
	return agent_local_connections(f->server) == n;
}

static agent_local_stats
stats(fixture *f)
{
	agent_local_stats st;

	agent_local_get_stats(f->server, &st);
	return st;
}

static int
client_connect(fixture *f)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	uint64_t end = now_ms() + WAIT_MS;

	assert_true(fd >= 0);
	assert_true(f->nfds < MAX_CLIENTS);
	f->fds[f->nfds++] = fd;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	/* EAGAIN: the backlog is full until the server accepts. */
	while (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		assert_true(errno == EAGAIN && now_ms() < end);
		step(f);
	}
	return fd;
}

static void
client_close(fixture *f, int fd)
{
	for (size_t i = 0; i < f->nfds; i++)
		if (f->fds[i] == fd) {
			close(fd);
			f->fds[i] = f->fds[--f->nfds];
			return;
		}
	fail_msg("fd %d is not a client", fd);
}

/* Send all of buf, running the loop while the socket is full. */
static void
client_send(fixture *f, int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t end = now_ms() + WAIT_MS;

	while (len > 0) {
		ssize_t w = send(fd, p, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w > 0) {
			p += w;
			len -= (size_t)w;
			continue;
		}
		assert_true(w < 0 && errno == EAGAIN && now_ms() < end);
		step(f);
	}
}

/* Put one frame with payload (len bytes) into buf; returns its size. */
static size_t
frame(uint8_t *buf, const void *payload, size_t len)
{
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	memcpy(buf + WIRE_HEADER_LEN, payload, len);
	return WIRE_HEADER_LEN + len;
}

static void
send_frame(fixture *f, int fd, const char *payload)
{
	uint8_t buf[256];

	client_send(f, fd, buf, frame(buf, payload, strlen(payload)));
}

/* Read exactly len bytes by end (ms), running the loop; false if not. */
static bool
client_recv_by(fixture *f, int fd, void *buf, size_t len, uint64_t end)
{
	uint8_t *p = buf;

	while (len > 0 && now_ms() < end) {
		ssize_t r = recv(fd, p, len, MSG_DONTWAIT);

		if (r > 0) {
			p += r;
			len -= (size_t)r;
		} else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
			return false;
		} else {
			step(f);
		}
	}
	return len == 0;
}

/* Read exactly len bytes, running the loop; false on EOF, error, time. */
static bool
client_recv(fixture *f, int fd, void *buf, size_t len)
{
	return client_recv_by(f, fd, buf, len, now_ms() + WAIT_MS);
}

/* The next response on fd is exactly want. */
static void
expect_frame(fixture *f, int fd, const void *want, size_t want_len)
{
	uint8_t hdr[WIRE_HEADER_LEN], got[512];
	size_t len;

	assert_true(client_recv(f, fd, hdr, sizeof(hdr)));
	len = (size_t)hdr[0] << 24 | (size_t)hdr[1] << 16 |
	      (size_t)hdr[2] << 8 | hdr[3];
	assert_true(len <= sizeof(got));
	assert_true(client_recv(f, fd, got, len));
	assert_int_equal(len, want_len);
	assert_memory_equal(got, want, len);
}

static void
expect_text(fixture *f, int fd, const char *want)
{
	expect_frame(f, fd, want, strlen(want));
}

/* A request and its echo. */
static void
round_trip(fixture *f, int fd, const char *payload)
{
	char want[256];

	send_frame(f, fd, payload);
	snprintf(want, sizeof(want), "re:%s", payload);
	expect_text(f, fd, want);
}

/* Reading fd ends (EOF or reset) within the time limit; data is skipped. */
static bool
client_closed(fixture *f, int fd)
{
	uint8_t buf[4096];
	uint64_t end = now_ms() + WAIT_MS;

	while (now_ms() < end) {
		ssize_t r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);

		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return true;
		if (r < 0 && errno != EAGAIN && errno != EINTR)
			return false;
		if (r < 0)
			step(f);
	}
	return false;
}

/* Nothing arrives on fd while the loop runs for ms. */
static void
expect_silence(fixture *f, int fd, int ms)
{
	uint8_t b;

	pump(f, ms);
	assert_int_equal(recv(fd, &b, 1, MSG_DONTWAIT), -1);
	assert_int_equal(errno, EAGAIN);
}

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */
/* ------------------------------------------------------------------------ */

static int
setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	assert_int_equal(uv_loop_init(&f->loop), 0);
	f->dir = tu_tmpdir();
	snprintf(f->path, sizeof(f->path), "%s/query.sock", f->dir);
	f->cfg = (agent_local_config){
		.name = "test",
		.path = f->path,
		.mode = 0660,
		.max_frame = 1024,
		.max_output = 1 << 20,
		.max_connections = 64,
		.arg = f,
		.on_frames = on_frames,
		.on_oversize = on_oversize,
		.log = on_log,
	};
	*state = f;
	return 0;
}

/* Stop the server and run the loop until every handle has closed. */
static bool
stop_server(fixture *f)
{
	uint64_t end = now_ms() + WAIT_MS;

	if (f->server != NULL)
		agent_local_stop(f->server);
	f->server = NULL;
	while (uv_loop_alive(&f->loop) && now_ms() < end)
		step(f);
	return !uv_loop_alive(&f->loop);
}

/* Also after a failed test: nothing may leak, whatever state it left. */
static int
teardown(void **state)
{
	fixture *f = *state;
	bool closed = stop_server(f);

	if (f->child > 0) {
		kill(f->child, SIGKILL);
		waitpid(f->child, NULL, 0);
	}
	for (size_t i = 0; i < f->nfds; i++)
		close(f->fds[i]);
	for (size_t i = 0; i < f->ndeferred; i++)
		if (f->deferred[i] != NULL)
			agent_local_fill(f->deferred[i], NULL, 0);
	if (!closed || uv_loop_close(&f->loop) != 0)
		fprintf(stderr, "teardown: the loop still has handles\n");
	tu_rmdir(f->dir);
	free(f->scratch);
	free(f);
	return closed ? 0 : -1;
}

static void
start(fixture *f)
{
	char err[256] = "";

	assert_int_equal(
	    agent_local_start(&f->loop, &f->cfg, &f->server, err, sizeof(err)),
	    REVOKD_OK);
}

/* ------------------------------------------------------------------------ */
/* The socket file                                                          */
/* ------------------------------------------------------------------------ */

/* The file has exactly the mode asked, whatever the umask says. */
static void
test_socket_mode(void **state)
{
	fixture *f = *state;
	const unsigned modes[] = { 0660, 0600 };
	const mode_t umasks[] = { 0, 0077, 0022 };

	for (size_t m = 0; m < 2; m++)
		for (size_t u = 0; u < 3; u++) {
			mode_t old = umask(umasks[u]);
			struct stat st;
			int fd;

			f->cfg.mode = modes[m];
			start(f);
			umask(old);
			assert_int_equal(lstat(f->path, &st), 0);
			assert_true(S_ISSOCK(st.st_mode));
			assert_int_equal(st.st_mode & 07777, modes[m]);
			fd = client_connect(f);
			round_trip(f, fd, "mode");
			client_close(f, fd);
			assert_true(stop_server(f));
			/* Stopping removes the file. */
			assert_int_equal(lstat(f->path, &st), -1);
		}
}

static void
test_live_path_is_refused(void **state)
{
	fixture *f = *state;
	agent_local *second = NULL;
	char err[256] = "";
	struct stat st;
	int fd;

	start(f);
	assert_int_equal(
	    agent_local_start(&f->loop, &f->cfg, &second, err, sizeof(err)),
	    REVOKD_EEXIST);
	assert_null(second);
	assert_non_null(strstr(err, f->path));
	/* The first one still has its file and answers. */
	assert_int_equal(lstat(f->path, &st), 0);
	fd = client_connect(f);
	round_trip(f, fd, "still here");
}

static void
test_stale_socket_is_replaced(void **state)
{
	fixture *f = *state;
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	int fd;

	/* A dead agent's socket: bound, then closed without unlinking. */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", f->path);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(s);
	assert_int_equal(lstat(f->path, &st), 0);
	start(f);
	fd = client_connect(f);
	round_trip(f, fd, "fresh");
}

static void
test_regular_file_is_kept(void **state)
{
	fixture *f = *state;
	agent_local *s = NULL;
	char err[256] = "", got[16] = "";
	FILE *fp = fopen(f->path, "w");
	revokd_err rc;

	assert_non_null(fp);
	fputs("keep me", fp);
	fclose(fp);
	rc = agent_local_start(&f->loop, &f->cfg, &s, err, sizeof(err));
	assert_int_not_equal(rc, REVOKD_OK);
	assert_int_not_equal(rc, REVOKD_EEXIST);
	assert_null(s);
	assert_non_null(strstr(err, f->path));
	fp = fopen(f->path, "r");
	assert_non_null(fp);
	assert_non_null(fgets(got, sizeof(got), fp));
	fclose(fp);
	assert_string_equal(got, "keep me");
}

/* ------------------------------------------------------------------------ */
/* Requests and responses                                                   */
/* ------------------------------------------------------------------------ */

/* 100 requests in one write: one handler call, answers in order. */
static void
test_pipelined_in_order(void **state)
{
	fixture *f = *state;
	uint8_t buf[100 * 16];
	size_t len = 0;
	char text[16];
	int fd;

	start(f);
	fd = client_connect(f);
	for (int i = 0; i < 100; i++) {
		snprintf(text, sizeof(text), "q%d", i);
		len += frame(buf + len, text, strlen(text));
	}
	client_send(f, fd, buf, len);
	for (int i = 0; i < 100; i++) {
		snprintf(text, sizeof(text), "re:q%d", i);
		expect_text(f, fd, text);
	}
	assert_int_equal(f->batches, 1);
	assert_int_equal(f->largest_batch, 100);
	assert_int_equal(stats(f).requests, 100);
}

/*
 * Two clients pipeline thousands of requests, then a third asks one thing:
 * it is answered after a few hundred of theirs, not after all of them, and
 * theirs still all come, in order.
 */
static void
test_pipeliners_take_turns(void **state)
{
	enum { HOGS = 2, EACH = 4000, FRAME = WIRE_HEADER_LEN + 8 };
	fixture *f = *state;
	uint8_t *burst = malloc(EACH * FRAME), got[16];
	int hog[HOGS], probe;
	char text[16];

	assert_non_null(burst);
	f->scratch = burst;
	f->cfg.max_output = 4 << 20;
	start(f);
	for (int h = 0; h < HOGS; h++)
		hog[h] = client_connect(f);
	probe = client_connect(f);
	assert_true(wait_connections(f, HOGS + 1));
	for (int i = 0; i < EACH; i++) {
		snprintf(text, sizeof(text), "h%07d", i);
		frame(burst + (size_t)i * FRAME, text, 8);
	}
	for (int h = 0; h < HOGS; h++)
		client_send(f, hog[h], burst, (size_t)EACH * FRAME);
	send_frame(f, probe, "probe");
	expect_text(f, probe, "re:probe");
	/* At most two turns' worth of requests went first. */
	assert_true(f->before_probe <= 2 * 128);
	assert_true(f->largest_batch <= 128);
	for (int h = 0; h < HOGS; h++)
		for (int i = 0; i < EACH; i++) {
			snprintf(text, sizeof(text), "re:h%07d", i);
			assert_true(client_recv(f, hog[h], got, FRAME + 3));
			assert_int_equal(got[3], 11);
			assert_memory_equal(got + WIRE_HEADER_LEN, text, 11);
		}
	assert_int_equal(stats(f).requests, HOGS * EACH + 1);
}

static void
test_byte_by_byte(void **state)
{
	fixture *f = *state;
	uint8_t buf[64];
	size_t len = 0;
	int fd;

	start(f);
	fd = client_connect(f);
	len += frame(buf + len, "one", 3);
	len += frame(buf + len, "", 0);
	len += frame(buf + len, "three", 5);
	for (size_t i = 0; i < len; i++) {
		client_send(f, fd, buf + i, 1);
		uv_run(&f->loop, UV_RUN_NOWAIT);
		uv_run(&f->loop, UV_RUN_NOWAIT);
	}
	expect_text(f, fd, "re:one");
	expect_text(f, fd, "re:");
	expect_text(f, fd, "re:three");
}

/* Nothing leaves before the first answer; then everything, in order. */
static void
test_deferred_keeps_order(void **state)
{
	fixture *f = *state;
	uint8_t buf[64];
	size_t len = 0;
	int fd;

	start(f);
	fd = client_connect(f);
	len += frame(buf + len, "D1", 2);
	len += frame(buf + len, "2", 1);
	len += frame(buf + len, "3", 1);
	client_send(f, fd, buf, len);
	expect_silence(f, fd, 50);
	assert_int_equal(f->ndeferred, 1);
	fill_deferred(f, 0, "D1");
	expect_text(f, fd, "late:D1");
	expect_text(f, fd, "re:2");
	expect_text(f, fd, "re:3");

	/* Two late ones answered in reverse: still in request order. */
	len = frame(buf, "D4", 2);
	len += frame(buf + len, "D5", 2);
	len += frame(buf + len, "6", 1);
	client_send(f, fd, buf, len);
	pump(f, 20);
	assert_int_equal(f->ndeferred, 3);
	fill_deferred(f, 2, "D5");
	expect_silence(f, fd, 30);
	fill_deferred(f, 1, "D4");
	expect_text(f, fd, "late:D4");
	expect_text(f, fd, "late:D5");
	expect_text(f, fd, "re:6");
}

/* A client that half-closes still gets every answer, then EOF. */
static void
test_half_close_is_answered(void **state)
{
	fixture *f = *state;
	uint8_t buf[64];
	size_t len = 0;
	int fd;

	start(f);
	fd = client_connect(f);
	len += frame(buf + len, "D1", 2);
	len += frame(buf + len, "2", 1);
	client_send(f, fd, buf, len);
	assert_int_equal(shutdown(fd, SHUT_WR), 0);
	expect_silence(f, fd, 30);
	fill_deferred(f, 0, "D1");
	expect_text(f, fd, "late:D1");
	expect_text(f, fd, "re:2");
	assert_true(client_closed(f, fd));
	assert_true(wait_connections(f, 0));
}

static void
test_oversize_answered_then_closed(void **state)
{
	fixture *f = *state;
	uint8_t buf[64];
	size_t len = 0;
	int bad, good;

	start(f);
	bad = client_connect(f);
	good = client_connect(f);
	len += frame(buf + len, "ok", 2);
	/* A header declaring 1,000,000 bytes, with no body. */
	memcpy(buf + len, "\x00\x0f\x42\x40", 4);
	len += 4;
	client_send(f, bad, buf, len);
	expect_text(f, bad, "re:ok");
	expect_text(f, bad, "big:1000000");
	assert_true(client_closed(f, bad));
	assert_int_equal(stats(f).oversize, 1);
	round_trip(f, good, "unaffected");
	assert_true(wait_connections(f, 1));
}

/* Bytes that happen to parse as a small frame are a frame. */
static void
test_garbage_small_frame(void **state)
{
	fixture *f = *state;
	const uint8_t garbage[] = { 0, 0, 0, 5, 0xff, 0x00, 0x13, 0x37, 0x80, 0,
		0, 0, 0 };
	const uint8_t want[] = { 'r', 'e', ':', 0xff, 0x00, 0x13, 0x37, 0x80 };
	int fd;

	start(f);
	fd = client_connect(f);
	client_send(f, fd, garbage, sizeof(garbage));
	expect_frame(f, fd, want, sizeof(want));
	expect_text(f, fd, "re:");
}

static void
test_truncated_frame_then_eof(void **state)
{
	fixture *f = *state;
	const uint8_t partial[] = { 0, 0, 0, 10, 'a', 'b', 'c' };
	int cut, other;

	start(f);
	cut = client_connect(f);
	other = client_connect(f);
	round_trip(f, other, "before");
	assert_true(wait_connections(f, 2));
	client_send(f, cut, partial, sizeof(partial));
	assert_int_equal(shutdown(cut, SHUT_WR), 0);
	assert_true(client_closed(f, cut));
	assert_true(wait_connections(f, 1));
	assert_int_equal(f->truncated_logs, 1);
	round_trip(f, other, "after");
}

/* ------------------------------------------------------------------------ */
/* Protection                                                               */
/* ------------------------------------------------------------------------ */

/* Room for the idle clients, both ends, in this process. */
static bool
raise_fd_limit(void)
{
	struct rlimit rl;
	rlim_t need = 2 * IDLE_CLIENTS + 100;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return false;
	if (rl.rlim_cur >= need)
		return true;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < need)
		return false;
	rl.rlim_cur = need;
	return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

static void
test_many_idle_connections(void **state)
{
	fixture *f = *state;
	int idle[IDLE_CLIENTS], active;

	if (!raise_fd_limit()) {
		print_message("skipped: RLIMIT_NOFILE cannot reach %d\n",
		    2 * IDLE_CLIENTS + 100);
		skip();
	}
	f->cfg.max_connections = IDLE_CLIENTS + 1;
	start(f);
	for (int i = 0; i < IDLE_CLIENTS; i++)
		idle[i] = client_connect(f);
	active = client_connect(f);
	assert_true(wait_connections(f, IDLE_CLIENTS + 1));
	for (int i = 0; i < 50; i++)
		round_trip(f, active, "busy");
	assert_int_equal(stats(f).refused, 0);
	/* The idle ones leave; the active one stays. */
	for (int i = 0; i < IDLE_CLIENTS; i++)
		client_close(f, idle[i]);
	assert_true(wait_connections(f, 1));
	round_trip(f, active, "alone");
}

/* A client that never reads is cut; another is answered all along. */
static void
test_slow_reader_is_cut(void **state)
{
	fixture *f = *state;
	uint8_t burst[16384];
	size_t len = 0;
	uint64_t end;
	int slow, fast;

	f->cfg.max_output = 4096;
	start(f);
	slow = client_connect(f);
	fast = client_connect(f);
	while (len + 12 <= sizeof(burst))
		len += frame(burst + len, "slowslow", 8);
	end = now_ms() + WAIT_MS;
	for (int i = 0; stats(f).cut_slow == 0 && now_ms() < end; i++) {
		ssize_t w = send(slow, burst, len, MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w < 0 && errno != EAGAIN)
			break; /* the server is gone: cut */
		step(f);
		if (i % 16 == 0)
			round_trip(f, fast, "fast");
	}
	assert_int_equal(stats(f).cut_slow, 1);
	assert_int_equal(f->cut_logs, 1);
	assert_true(client_closed(f, slow));
	assert_true(wait_connections(f, 1));
	round_trip(f, fast, "still fast");
}

/*
 * Answers piling up behind a late one pause reading; the late answer
 * resumes it, and every answer still comes, in order.
 */
static void
test_handler_backlog_pauses_reading(void **state)
{
	enum { TOTAL = 20000 };
	fixture *f = *state;
	uint8_t *reqs = malloc(TOTAL * 12), hdr[4], got[16];
	size_t len = 0, sent = 0;
	uint64_t requests;
	int fd;

	assert_non_null(reqs);
	f->scratch = reqs;
	f->cfg.max_output = 256 << 10;
	start(f);
	fd = client_connect(f);
	len += frame(reqs, "DDDDDDDD", 8);
	for (int i = 1; i < TOTAL; i++) {
		char text[9];

		snprintf(text, sizeof(text), "%08d", i);
		len += frame(reqs + len, text, 8);
	}
	/* Send until stuck: the server stopped reading. */
	for (uint64_t end = now_ms() + 300; now_ms() < end && sent < len;) {
		ssize_t w = send(fd, reqs + sent, len - sent,
		    MSG_DONTWAIT | MSG_NOSIGNAL);

		if (w > 0)
			sent += (size_t)w;
		step(f);
	}
	pump(f, 50);
	requests = stats(f).requests;
	assert_true(requests > 1 && requests < TOTAL);
	expect_silence(f, fd, 10);
	fill_deferred(f, 0, "DDD");
	expect_text(f, fd, "late:DDD");
	/* Now the rest goes, sent and answered side by side. */
	for (int i = 1; i < TOTAL; i++) {
		char want[16];

		while (sent < len) {
			ssize_t w = send(fd, reqs + sent, len - sent,
			    MSG_DONTWAIT | MSG_NOSIGNAL);

			if (w <= 0)
				break;
			sent += (size_t)w;
		}
		assert_true(client_recv(f, fd, hdr, 4));
		assert_int_equal(hdr[3], 11);
		assert_true(client_recv(f, fd, got, 11));
		snprintf(want, sizeof(want), "re:%08d", i);
		assert_memory_equal(got, want, 11);
	}
	assert_int_equal(stats(f).requests, TOTAL);
	assert_int_equal(stats(f).cut_slow, 0);
}

static void
test_max_connections(void **state)
{
	fixture *f = *state;
	int a, b, c, d;

	f->cfg.max_connections = 2;
	start(f);
	a = client_connect(f);
	b = client_connect(f);
	round_trip(f, a, "a");
	round_trip(f, b, "b");
	c = client_connect(f);
	assert_true(client_closed(f, c));
	assert_int_equal(stats(f).refused, 1);
	assert_int_equal(f->refused_logs, 1);
	assert_int_equal(agent_local_connections(f->server), 2);
	round_trip(f, a, "a again");
	/* A place frees up: the next one is served. */
	client_close(f, a);
	assert_true(wait_connections(f, 1));
	d = client_connect(f);
	round_trip(f, d, "d");
	assert_int_equal(stats(f).accepted, 3);
}

/*
 * Stop with connections open and answers outstanding: answers filled
 * before, between and after stop and the close callbacks all free
 * themselves (ASan and LeakSanitizer watch).
 */
static void
test_stop_leaks_nothing(void **state)
{
	fixture *f = *state;
	struct stat st;
	int fd[3];

	f->defer_all = true;
	start(f);
	for (int i = 0; i < 3; i++) {
		fd[i] = client_connect(f);
		for (int j = 0; j < 4; j++)
			send_frame(f, fd[i], "x");
	}
	for (uint64_t end = now_ms() + WAIT_MS;
	     f->ndeferred < 12 && now_ms() < end;)
		step(f);
	assert_int_equal(f->ndeferred, 12);
	/* Filled but stuck behind an unfilled one, on a live connection. */
	fill_deferred(f, 1, "held");
	fill_deferred(f, 6, "held");
	agent_local_stop(f->server);
	f->server = NULL;
	assert_int_equal(lstat(f->path, &st), -1);
	/* Filled after stop, before the close callbacks ran. */
	fill_deferred(f, 0, "after stop");
	fill_deferred(f, 5, "after stop");
	assert_true(stop_server(f));
	for (int i = 0; i < 3; i++)
		assert_true(client_closed(f, fd[i]));
	/* Filled once the server is gone. */
	for (size_t i = 0; i < f->ndeferred; i++)
		if (f->deferred[i] != NULL)
			fill_deferred(f, i, "after free");
}

/* ------------------------------------------------------------------------ */
/* Out of descriptors (in a child)                                          */
/* ------------------------------------------------------------------------ */

/* The child's descriptor limit, its second of exhaustion, its clients. */
#define CHILD_NOFILE 128
#define EXHAUST_MS 1000
#define WAITING_CLIENTS 20

/* What the child reports after its second of exhaustion. */
typedef struct exhaustion_report {
	uint64_t cpu_us, wall_us;
	unsigned accept_failed_logs, error_logs;
	unsigned fillers; /* descriptors it had taken */
	bool stuck;       /* sent by the watchdog: the loop never came back */
} exhaustion_report;

/* The child's state, kept where its watchdog (a signal handler) sees it. */
static struct {
	fixture *f;
	int status_fd;
	uint64_t t0_ns, cpu0_us;
	unsigned fillers;
} child;

/* Write the report of the time since child.t0_ns to the parent. */
static void
child_report(bool stuck)
{
	exhaustion_report rep;

	memset(&rep, 0, sizeof(rep)); /* padding too: it is written out */
	rep.cpu_us = tu_cpu_us_self() - child.cpu0_us;
	rep.wall_us = (uv_hrtime() - child.t0_ns) / 1000;
	rep.accept_failed_logs = child.f->accept_failed_logs;
	rep.error_logs = child.f->error_logs;
	rep.fillers = child.fillers;
	rep.stuck = stuck;
	if (write(child.status_fd, &rep, sizeof(rep)) != sizeof(rep))
		_exit(4);
}

/*
 * A loop that never comes back from a callback (libuv's listener retrying
 * a failed accept for ever) still reports what it spent, then the child
 * ends: the test fails on numbers rather than on a silent timeout.
 */
static void
child_watchdog(int sig)
{
	(void)sig;
	child_report(true);
	_exit(6);
}

static void
child_stop_loop(uv_timer_t *t)
{
	uv_stop(t->loop);
}

static void
child_control_readable(uv_poll_t *p, int status, int events)
{
	(void)status;
	(void)events;
	uv_stop(p->loop);
}

static void
child_handle_closed(uv_handle_t *h)
{
	(void)h;
}

/* Open /dev/null until the limit, then close spare of them again. */
static void
child_take(int *fillers, unsigned spare)
{
	int fd;

	while (child.fillers < CHILD_NOFILE &&
	       (fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) >= 0)
		fillers[child.fillers++] = fd;
	if (errno != EMFILE || child.fillers < spare)
		_exit(12);
	while (spare-- > 0)
		close(fillers[--child.fillers]);
}

/*
 * The child: a server with every descriptor taken, 1 s of it (reported on
 * status_fd), then descriptors back until control_fd is closed. Without
 * spare, only one descriptor is free when the server starts (libuv sets
 * one aside for its own listeners when it can). Exits through _exit only,
 * never back into cmocka.
 */
static void
child_main(fixture *f, bool spare, int status_fd, int control_fd)
{
	struct rlimit rl;
	uv_loop_t loop;
	uv_timer_t timer;
	uv_poll_t control;
	int fillers[CHILD_NOFILE];
	char err[256];

	child.f = f;
	child.status_fd = status_fd;
	f->accept_failed_logs = f->error_logs = 0;
	if (uv_loop_init(&loop) != 0)
		_exit(2);
	uv_timer_init(&loop, &timer);
	uv_poll_init(&loop, &control, control_fd);
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		_exit(10);
	rl.rlim_cur = CHILD_NOFILE;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		_exit(11);
	if (!spare)
		child_take(fillers, 1);
	if (agent_local_start(&loop, &f->cfg, &f->server, err, sizeof(err)) !=
	    REVOKD_OK)
		_exit(3);
	child_take(fillers, 0);
	if (write(status_fd, &child.fillers, sizeof(child.fillers)) !=
	    sizeof(child.fillers))
		_exit(4);
	signal(SIGALRM, child_watchdog);
	alarm(2 * EXHAUST_MS / 1000);
	child.t0_ns = uv_hrtime();
	child.cpu0_us = tu_cpu_us_self();
	uv_update_time(&loop);
	uv_timer_start(&timer, child_stop_loop, EXHAUST_MS, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	alarm(0);
	child_report(false);
	while (child.fillers > 0)
		close(fillers[--child.fillers]);
	/* Serve until the parent closes control_fd, 10 s at most. */
	uv_poll_start(&control, UV_READABLE | UV_DISCONNECT,
	    child_control_readable);
	uv_update_time(&loop);
	uv_timer_start(&timer, child_stop_loop, 10000, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	agent_local_stop(f->server);
	uv_close((uv_handle_t *)&timer, child_handle_closed);
	uv_close((uv_handle_t *)&control, child_handle_closed);
	uv_run(&loop, UV_RUN_DEFAULT);
	_exit(uv_loop_close(&loop) == 0 ? 0 : 5);
}

/*
 * Connect a client and send its request "w<i>" while nobody may accept:
 * the connection waits in the backlog (or was dropped, and the send
 * fails, which the answer will tell).
 */
static int
waiting_client(fixture *f, unsigned i)
{
	uint8_t buf[32];
	char text[16];
	int fd = client_connect(f);

	snprintf(text, sizeof(text), "w%u", i);
	(void)send(fd, buf, frame(buf, text, strlen(text)),
	    MSG_DONTWAIT | MSG_NOSIGNAL);
	return fd;
}

/* Whether fd's next response, by end (ms), is "re:w<i>". */
static bool
answered_by(fixture *f, int fd, unsigned i, uint64_t end)
{
	uint8_t got[WIRE_HEADER_LEN + 16];
	char want[16];
	size_t len;

	snprintf(want, sizeof(want), "re:w%u", i);
	len = strlen(want);
	return client_recv_by(f, fd, got, WIRE_HEADER_LEN + len, end) &&
	       got[0] == 0 && got[1] == 0 && got[2] == 0 && got[3] == len &&
	       memcmp(got + WIRE_HEADER_LEN, want, len) == 0;
}

/*
 * The child out of descriptors for 1 s while a client connects every
 * 45 ms: it must not spin (CPU under a fifth of the time), must log one
 * accept_failed line for the run of failures and no error line, and must
 * answer every waiting client once descriptors are back.
 */
static void
exhaust_and_serve(fixture *f, bool spare)
{
	exhaustion_report rep;
	int status_pipe[2], control_pipe[2], waiting[WAITING_CLIENTS];
	int exit_status, fd;
	unsigned nwaiting = 0, answered = 0, fillers;
	uint64_t t0, end;

	/*
	 * valgrind keeps the kernel's limit and makes EMFILE itself, closing
	 * the descriptor the kernel gave: under it, a failed accept drops the
	 * connection it took, and no server can keep a waiting client.
	 */
	if (RUNNING_ON_VALGRIND) {
		print_message("skipped: valgrind's EMFILE drops connections\n");
		skip();
	}
	assert_int_equal(pipe2(status_pipe, O_CLOEXEC), 0);
	assert_int_equal(pipe2(control_pipe, O_CLOEXEC), 0);
	fflush(NULL);
	assert_true((f->child = fork()) >= 0);
	if (f->child == 0) {
		close(status_pipe[0]);
		close(control_pipe[1]);
		child_main(f, spare, status_pipe[1], control_pipe[0]);
	}
	close(status_pipe[1]);
	close(control_pipe[0]);
	f->fds[f->nfds++] = status_pipe[0];
	f->fds[f->nfds++] = control_pipe[1];
	assert_true(
	    tu_read_full(status_pipe[0], &fillers, sizeof(fillers), WAIT_MS));
	t0 = now_ms();
	while (now_ms() - t0 < 900 && nwaiting < WAITING_CLIENTS) {
		waiting[nwaiting] = waiting_client(f, nwaiting);
		nwaiting++;
		pump(f, 45);
	}
	assert_true(tu_read_full(status_pipe[0], &rep, sizeof(rep), WAIT_MS));
	/* Descriptors are back: the waiting clients are answered. */
	end = now_ms() + WAIT_MS;
	for (unsigned i = 0; i < nwaiting; i++)
		answered += answered_by(f, waiting[i], i, end);
	print_message("out of descriptors (%u taken, %s at start): %llu us "
	              "CPU in %llu us%s, %u accept_failed and %u error lines, "
	              "%u of %u waiting clients answered\n",
	    rep.fillers, spare ? "descriptors to spare" : "one free",
	    (unsigned long long)rep.cpu_us, (unsigned long long)rep.wall_us,
	    rep.stuck ? " (loop stuck)" : "", rep.accept_failed_logs,
	    rep.error_logs, answered, nwaiting);
	assert_false(rep.stuck);
	assert_true(rep.wall_us >= 900000);
	assert_true(rep.cpu_us * 5 < rep.wall_us); /* under 20% */
	assert_int_equal(answered, nwaiting);
	assert_int_equal(rep.accept_failed_logs, 1);
	assert_int_equal(rep.error_logs, 0);
	fd = client_connect(f);
	round_trip(f, fd, "after");
	/* Closing control_fd stops the child, which stops its server. */
	client_close(f, control_pipe[1]);
	exit_status = tu_reap_within(&f->child, WAIT_MS);
	assert_true(WIFEXITED(exit_status));
	assert_int_equal(WEXITSTATUS(exit_status), 0);
}

/* Descriptors to spare when the server started. */
static void
test_out_of_descriptors_keeps_clients(void **state)
{
	exhaust_and_serve(*state, true);
}

/* Only the descriptor it needed was free when the server started. */
static void
test_out_of_descriptors_does_not_spin(void **state)
{
	exhaust_and_serve(*state, false);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_socket_mode, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_live_path_is_refused,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_stale_socket_is_replaced,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_regular_file_is_kept,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_pipelined_in_order, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_pipeliners_take_turns,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_byte_by_byte, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_deferred_keeps_order,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_half_close_is_answered,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_oversize_answered_then_closed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_garbage_small_frame, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_truncated_frame_then_eof,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_idle_connections,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_slow_reader_is_cut, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_handler_backlog_pauses_reading, setup, teardown),
		cmocka_unit_test_setup_teardown(test_max_connections, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stop_leaks_nothing, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_out_of_descriptors_keeps_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_out_of_descriptors_does_not_spin, setup, teardown),
	};

	/* A client that went away must not kill the server's process. */
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
