/*
 * fuzz_local.c: the local sockets, end to end: the framed Unix-socket
 * server (agent/local.c) with the agent's request handlers behind it
 * (agent/query.c: Check, Version, Status; agent/admin.c: every write,
 * Import and Dump, and the group commit), on a real libuv loop and a real
 * socket, with a real store and engine.
 *
 * The agent is assembled by hand from its parts (agent_start would also
 * want TLS files, the peer transport and the metrics server, none of which
 * a request reaches): store, keyer, reader, engine with one configured
 * peer that is never connected (so a write waiting for a peer waits),
 * the tick timer and the group-commit check handle, and the query and
 * admin servers with the agent's own callbacks. They are made once per
 * process; the store starts again when it passes STORE_MAX entries.
 *
 * Input: a flags byte (bit 0: the admin socket, else the query socket;
 * bits 1-3: how the rest is cut into writes), then the bytes a client
 * sends. The harness connects, writes them (running the loop and reading
 * answers as it goes), half-closes, and reads until the server closes; a
 * write still waiting for its peer is answered by agent_admin_flush, as at
 * shutdown.
 *
 * Checked on every input, unless the server cut the client for memory or
 * unread output: every request frame gets exactly one response, in order
 * (each of the kind its request calls for, or an error), plus a TOO_BIG
 * error for an oversize frame; a client leaving mid-frame gets no more than
 * the frames before; every response decodes as a Response and fits
 * max_message; the server closes the connection.
 *
 * Not covered here: the agent's start and stop, metrics, and the peer
 * transport (nng); confirmations from a connected peer (agent_admin_
 * confirmed) are reached by the engine target's notices only.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/agent.h"
#include "agent/log.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef Revokd__Local__Request Request;
typedef Revokd__Local__Response Response;

#define MAX_MESSAGE (64u << 10)
#define CLIENT_OUTPUT (256u << 10)
#define STORE_MAX 4096
/* Loop turns without progress before waiting writes are forced out. */
#define IDLE_TURNS 64
/* Loop turns with no end before the server is taken to hang. */
#define MAX_TURNS 200000

static struct {
	bool ready;
	char dir[256], store_dir[300], query[300], admin[300];
	uv_loop_t loop;
	agent a;
	/* What the client got back. */
	uint8_t *resp;
	size_t resp_len, resp_cap;
} G;

/* ------------------------------------------------------------------------ */
/* The agent, assembled                                                     */
/* ------------------------------------------------------------------------ */

static void
open_store(void)
{
	agent *a = &G.a;
	crdt_store_options so = { .no_sync = true,
		.map_size = 64u << 20,
		.max_readers = 16,
		.prune_leeway = a->cfg.prune_leeway };
	engine_peer_config peer = { 2, "beta" };
	engine_config ec = { .region_id = 1,
		.region = "alpha",
		.n_peers = 1,
		.peers = &peer,
		.seed = 7,
		.max_frame = MAX_MESSAGE };
	engine_io io = { a, NULL, NULL };
	revokd_err err;

	fz_empty_dir(G.store_dir);
	err = crdt_store_open(G.store_dir, &so, &a->store);
	FZ_CHECK(err == REVOKD_OK, "store: %s", revokd_err_name(err));
	FZ_CHECK(crdt_store_bind_secret(a->store, a->keyer) == REVOKD_OK &&
	             crdt_reader_new(a->store, &a->reader) == REVOKD_OK,
	    "store setup");
	ec.store = a->store;
	err = engine_new(&ec, &io, agent_now_us(), &a->engine);
	FZ_CHECK(err == REVOKD_OK, "engine: %s", revokd_err_name(err));
}

static void
close_store(void)
{
	agent *a = &G.a;

	engine_free(a->engine);
	crdt_reader_free(a->reader);
	crdt_store_close(a->store);
	a->engine = NULL;
	a->reader = NULL;
	a->store = NULL;
}

static void
start_server(const char *name, const char *path, bool admin, agent_local **out)
{
	agent_local_config lc = { .name = name,
		.path = path,
		.mode = 0600,
		.max_frame = MAX_MESSAGE,
		.max_output = CLIENT_OUTPUT,
		.max_connections = 4,
		.arg = &G.a,
		.on_frames =
		    admin ? agent_on_admin_frames : agent_on_query_frames,
		.on_oversize = agent_on_oversize };
	char err[256];

	FZ_CHECK(agent_local_start(&G.loop, &lc, out, err, sizeof(err)) ==
	             REVOKD_OK,
	    "%s", err);
}

static void
setup(void)
{
	agent *a = &G.a;
	uint8_t secret[CRDT_SECRET_LEN];
	FILE *devnull = fopen("/dev/null", "w");

	signal(SIGPIPE, SIG_IGN);
	agent_log_setup(devnull ? devnull : stderr, AGENT_LOG_LOGFMT,
	    AGENT_LOG_ERROR, "alpha");
	snprintf(G.dir, sizeof(G.dir), "%s", fz_tmpdir("local"));
	snprintf(G.store_dir, sizeof(G.store_dir), "%s/data", G.dir);
	snprintf(G.query, sizeof(G.query), "%s/q.sock", G.dir);
	snprintf(G.admin, sizeof(G.admin), "%s/a.sock", G.dir);
	FZ_CHECK(mkdir(G.store_dir, 0700) == 0, "mkdir %s", G.store_dir);
	memset(a, 0, sizeof(*a));
	snprintf(a->cfg.region, sizeof(a->cfg.region), "alpha");
	snprintf(a->cfg.cluster, sizeof(a->cfg.cluster), "fuzz");
	a->cfg.region_id = 1;
	a->cfg.max_token_lifetime = 3600;
	a->cfg.prune_leeway = 300;
	a->cfg.max_staleness_ms = 5000;
	a->cfg.max_message = MAX_MESSAGE;
	a->cfg.client_output = CLIENT_OUTPUT;
	a->cfg.max_connections = 4;
	a->cfg.n_peers = 1;
	snprintf(a->cfg.peers[0].name, sizeof(a->cfg.peers[0].name), "beta");
	a->cfg.peers[0].id = 2;
	for (size_t i = 0; i < sizeof(secret); i++)
		secret[i] = (uint8_t)(0x5a ^ i);
	FZ_CHECK(crdt_keyer_new(secret, sizeof(secret), &a->keyer) == REVOKD_OK,
	    "keyer");
	open_store();
	FZ_CHECK(uv_loop_init(&G.loop) == 0, "uv_loop_init");
	a->loop = &G.loop;
	a->started_ms = uv_now(&G.loop);
	uv_timer_init(&G.loop, &a->tick);
	a->tick.data = a;
	uv_check_init(&G.loop, &a->commit);
	a->commit.data = a;
	uv_check_start(&a->commit, agent_admin_commit);
	start_server("query", G.query, false, &a->query);
	start_server("admin", G.admin, true, &a->admin);
	G.ready = true;
}

/* ------------------------------------------------------------------------ */
/* The client                                                               */
/* ------------------------------------------------------------------------ */

static int
client_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	FZ_CHECK(fd >= 0, "socket: %s", strerror(errno));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	FZ_CHECK(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0,
	    "connect %s: %s", path, strerror(errno));
	return fd;
}

/* Read what is there; false once the server has closed. */
static bool
client_read(int fd, bool *progress)
{
	for (;;) {
		ssize_t n;

		if (G.resp_cap - G.resp_len < 65536) {
			size_t cap = G.resp_cap ? 2 * G.resp_cap : 1u << 20;
			uint8_t *p = realloc(G.resp, cap);

			FZ_CHECK(p != NULL, "out of memory");
			G.resp = p;
			G.resp_cap = cap;
		}
		n = recv(fd, G.resp + G.resp_len, G.resp_cap - G.resp_len, 0);
		if (n > 0) {
			G.resp_len += (size_t)n;
			*progress = true;
			continue;
		}
		if (n == 0)
			return false;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			return true;
		FZ_CHECK(errno == ECONNRESET, "recv: %s", strerror(errno));
		return false; /* cut by the server */
	}
}

/* One loop turn and a read; false once the server has closed. */
static bool
turn(int fd, bool *progress)
{
	uv_run(&G.loop, UV_RUN_NOWAIT);
	return client_read(fd, progress);
}

/* Write all of data (running the loop meanwhile); false if cut. */
static bool
client_write(int fd, const uint8_t *data, size_t len)
{
	size_t off = 0;
	unsigned idle = 0;

	while (off < len) {
		bool progress = false;
		ssize_t n = send(fd, data + off, len - off, MSG_NOSIGNAL);

		if (n > 0) {
			off += (size_t)n;
			progress = true;
		} else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
			return false; /* the server closed on us */
		}
		if (!turn(fd, &progress))
			return false;
		if (progress)
			idle = 0;
		else if (++idle % IDLE_TURNS == 0)
			agent_admin_flush(&G.a);
		FZ_CHECK(idle < MAX_TURNS, "the server stopped reading");
	}
	return true;
}

/* ------------------------------------------------------------------------ */
/* Checking the answers                                                     */
/* ------------------------------------------------------------------------ */

static uint32_t
be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

/* The response kinds request frame f may get (besides an error). */
static int
expected_body(const uint8_t *f, size_t len, bool admin, int *code)
{
	Request *req = revokd__local__request__unpack(NULL, len, f);
	int want = -1;

	*code = -1;
	if (req == NULL) {
		*code = REVOKD__LOCAL__ERROR_CODE__ERROR_MALFORMED;
		return -1;
	}
	switch (req->body_case) {
	case REVOKD__LOCAL__REQUEST__BODY_CHECK:
		want = REVOKD__LOCAL__RESPONSE__BODY_CHECK;
		break;
	case REVOKD__LOCAL__REQUEST__BODY_VERSION:
		want = REVOKD__LOCAL__RESPONSE__BODY_VERSION;
		break;
	case REVOKD__LOCAL__REQUEST__BODY_STATUS:
		want = REVOKD__LOCAL__RESPONSE__BODY_STATUS;
		break;
	case REVOKD__LOCAL__REQUEST__BODY__NOT_SET:
		*code = REVOKD__LOCAL__ERROR_CODE__ERROR_MALFORMED;
		break;
	case REVOKD__LOCAL__REQUEST__BODY_DUMP:
		want = REVOKD__LOCAL__RESPONSE__BODY_DUMP;
		break;
	default:
		want = REVOKD__LOCAL__RESPONSE__BODY_WRITE;
		break;
	}
	if (!admin && want != -1 &&
	    req->body_case != REVOKD__LOCAL__REQUEST__BODY_CHECK &&
	    req->body_case != REVOKD__LOCAL__REQUEST__BODY_VERSION &&
	    req->body_case != REVOKD__LOCAL__REQUEST__BODY_STATUS) {
		want = -1;
		*code = REVOKD__LOCAL__ERROR_CODE__ERROR_NOT_ALLOWED;
	}
	revokd__local__request__free_unpacked(req, NULL);
	return want;
}

/* Response i (payload r) against request i (payload q). */
static void
check_answer(size_t i, const uint8_t *q, size_t qlen, bool admin,
    const Response *resp)
{
	int code, want = expected_body(q, qlen, admin, &code);

	if (resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_ERROR) {
		FZ_CHECK(resp->error != NULL, "error without body");
		FZ_CHECK(code == -1 || (int)resp->error->code == code ||
		             resp->error->code ==
		                 REVOKD__LOCAL__ERROR_CODE__ERROR_STORE,
		    "request %zu: error %d, expected %d (%s)", i,
		    (int)resp->error->code, code,
		    resp->error->message ? resp->error->message : "");
		return;
	}
	FZ_CHECK(code == -1,
	    "request %zu should be refused with %d, got "
	    "body %d",
	    i, code, (int)resp->body_case);
	FZ_CHECK((int)resp->body_case == want,
	    "request %zu: response body %d, expected %d (out of order?)", i,
	    (int)resp->body_case, want);
}

static void
check_answers(const uint8_t *req, size_t req_len, bool admin, bool cut)
{
	size_t rpos = 0, qpos = 0, n_resp = 0, n_req = 0;
	bool oversize = false, partial = false;

	/* The request frames, as the server's decoder splits them. */
	while (req_len - qpos >= 4) {
		uint32_t len = be32(req + qpos);

		if (len > MAX_MESSAGE) {
			oversize = true;
			break;
		}
		if (req_len - qpos - 4 < len)
			break;
		qpos += 4 + len;
		n_req++;
	}
	partial = !oversize && qpos < req_len;
	qpos = 0;
	while (G.resp_len - rpos >= 4) {
		uint32_t len = be32(G.resp + rpos);
		Response *resp;

		FZ_CHECK(len <= MAX_MESSAGE, "a response of %u bytes", len);
		/*
		 * A client cut for not reading fast enough loses the rest;
		 * so does one that half-closes in the middle of a frame
		 * (closed at once, docs/protocol.md).
		 */
		if (G.resp_len - rpos - 4 < len) {
			FZ_CHECK(cut || partial, "a truncated response");
			break;
		}
		resp = revokd__local__response__unpack(NULL, len,
		    G.resp + rpos + 4);
		FZ_CHECK(resp != NULL, "response %zu does not decode", n_resp);
		FZ_CHECK(resp->body_case !=
		             REVOKD__LOCAL__RESPONSE__BODY__NOT_SET,
		    "response %zu is empty", n_resp);
		if (n_resp < n_req) {
			uint32_t qlen = be32(req + qpos);

			check_answer(n_resp, req + qpos + 4, qlen, admin, resp);
			qpos += 4 + qlen;
		} else {
			FZ_CHECK(oversize && n_resp == n_req,
			    "response %zu to no request", n_resp);
			FZ_CHECK(
			    resp->body_case ==
			            REVOKD__LOCAL__RESPONSE__BODY_ERROR &&
			        resp->error->code ==
			            REVOKD__LOCAL__ERROR_CODE__ERROR_TOO_BIG,
			    "an oversize frame not answered TOO_BIG");
		}
		revokd__local__response__free_unpacked(resp, NULL);
		rpos += 4 + len;
		n_resp++;
	}
	FZ_CHECK(cut || partial || rpos == G.resp_len,
	    "%zu bytes of a partial response", G.resp_len - rpos);
	if (fz_verbose())
		fprintf(stderr, "local: %zu requests%s%s, %zu responses%s\n",
		    n_req, oversize ? ", oversize" : "",
		    partial ? ", partial" : "", n_resp, cut ? ", cut" : "");
	if (cut || partial)
		return;
	FZ_CHECK(n_resp == n_req + (oversize ? 1 : 0),
	    "%zu requests%s, %zu responses", n_req,
	    oversize ? " and an oversize frame" : "", n_resp);
}

/* ------------------------------------------------------------------------ */
/* The target                                                               */
/* ------------------------------------------------------------------------ */

static uint64_t
cuts(agent_local *s)
{
	agent_local_stats st;

	agent_local_get_stats(s, &st);
	return st.cut_slow + st.cut_memory;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fz_in in = { data, size };
	uint8_t flags = fz_u8(&in);
	bool admin = flags & 1, open = true, progress;
	unsigned cut = (flags >> 1) & 7, idle = 0;
	agent_local *server;
	uint64_t cuts_before;
	size_t off = 0;
	int fd;

	if (!G.ready)
		setup();
	if (crdt_store_count(G.a.store) > STORE_MAX) {
		close_store();
		open_store();
	}
	server = admin ? G.a.admin : G.a.query;
	cuts_before = cuts(server);
	G.resp_len = 0;
	fd = client_connect(admin ? G.admin : G.query);
	/* Cut 0: one write; else pieces of 1, 3, 9, ... 2187 bytes. */
	while (open && off < in.n) {
		size_t chunk = in.n - off, piece = 1;

		for (unsigned k = 1; k < cut; k++)
			piece *= 3;
		if (cut != 0 && piece < chunk)
			chunk = piece;
		open = client_write(fd, in.p + off, chunk);
		off += chunk;
	}
	/*
	 * Half-close; or the server stopped taking requests (after an
	 * oversize frame) and closed its side: read what it said before.
	 */
	shutdown(fd, SHUT_WR);
	open = true;
	while (open) {
		progress = false;
		open = turn(fd, &progress);
		if (progress)
			idle = 0;
		else if (++idle % IDLE_TURNS == 0)
			agent_admin_flush(&G.a);
		FZ_CHECK(idle < MAX_TURNS, "the server never closed the "
		                           "connection");
	}
	close(fd);
	/* Let the server finish closing its side. */
	for (int i = 0; i < 1000 && agent_local_connections(server) > 0; i++)
		uv_run(&G.loop, UV_RUN_NOWAIT);
	FZ_CHECK(agent_local_connections(server) == 0,
	    "a connection left open");
	agent_admin_flush(&G.a);
	check_answers(in.p, in.n, admin, cuts(server) != cuts_before);
	return 0;
}
