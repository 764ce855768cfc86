/*
 * revokectl: the admin command line of revokd. It speaks local.proto on the
 * agent's admin socket: frames of a 4-byte big-endian length and a Request,
 * one Response each, in order. Output is in revokectl_print.c.
 *
 * Exit status: 0 done; 1 the agent refused or failed the request, could
 * not be reached, or a --wait was not met; 2 bad usage or a bad input line.
 * `check` exits 0 whatever the verdict: the verdict is the answer.
 *
 * Theory of import. Input may be far larger than memory, so it is read and
 * validated a chunk at a time (up to 10,000 items, and no more bytes than a
 * frame may hold), and each chunk is sent as one Import as soon as it is
 * whole, with up to CTL_IMPORT_WINDOW of them in flight on the connection.
 * Each Import is its own transaction on the agent, so when one fails the
 * others may still have been committed: every chunk is reported by its
 * line range, and the first failure or bad line stops reading, so that
 * everything from the first unreported line on is known not to be sent.
 */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "agent/config.h"
#include "agent/revokectl.h"
#include "common/revokd.h"
#include "wire/wire.h"

typedef Revokd__Local__Request Request;
typedef Revokd__Local__Response Response;
typedef Revokd__Local__ImportItem ImportItem;

/* --max-message: the agent's own range for max_message. */
#define CTL_MAX_MESSAGE_MAX (64u << 20)

/* Longest identifier the agent takes (jti, sid, sub), bytes. */
#define CTL_ID_MAX 1024

/* Items per Import, and Imports in flight at once. */
#define CTL_IMPORT_MAX 10000
#define CTL_IMPORT_WINDOW 4

/* Longest import line, bytes. */
#define CTL_LINE_MAX (64u << 10)

/*
 * Import items whose exp is further in the past than the agent's
 * prune_leeway are refused by the agent (the token is dead); they are
 * skipped instead. The leeway comes from --config, else the agent's
 * default; the margin keeps an item that expires while it is in flight
 * from sinking its whole chunk.
 */
#define CTL_PRUNE_LEEWAY_DEFAULT 300
#define CTL_EXPIRED_MARGIN_S 60

/* Entries asked for per Dump page. */
#define CTL_DUMP_PAGE 1000

/* The agent's wait when --wait comes without --timeout. */
#define CTL_WAIT_DEFAULT_MS 10000

/* Bytes read from the socket at once. */
#define CTL_READ_SIZE (64u << 10)

/* Exit statuses. */
enum { CTL_OK = 0, CTL_FAILED = 1, CTL_USAGE = 2 };

/* ------------------------------------------------------------------------ */
/* Commands and options                                                     */
/* ------------------------------------------------------------------------ */

#define CTL_BIT(cmd) (1u << (cmd))
#define CTL_ANY (~0u)
#define CTL_REVOKES (CTL_BIT(CTL_REVOKE_TOKEN) | CTL_BIT(CTL_REVOKE_SESSION))
#define CTL_TOKEN_WRITES                                                       \
	(CTL_REVOKES | CTL_BIT(CTL_RESTORE_TOKEN) |                            \
	    CTL_BIT(CTL_RESTORE_SESSION))
#define CTL_WRITES (CTL_TOKEN_WRITES | CTL_BIT(CTL_REVOKE_USER))

/* What the command line asked for. */
typedef struct ctl_opts {
	const char *socket; /* --socket */
	const char *config; /* --config */
	uint64_t max_message;
	bool has_max_message;
	bool json, help, version;

	ctl_cmd cmd;
	const char *operand; /* JTI, SID, SUB, FILE */

	int64_t exp;     /* s; 0 when not given */
	uint32_t reason; /* revocations */
	bool has_wait, wait_all;
	uint32_t wait_peers;
	uint32_t timeout_ms; /* 0: the agent's default */
	uint64_t not_before_ms;
	bool no_bump;

	const char *jti, *sid, *sub; /* check */
	bool has_ver, has_iat;
	uint64_t ver;
	int64_t iat;

	int64_t prune_leeway; /* s, import: from --config or the default */
} ctl_opts;

/* Problems with a value are said as what was expected instead. */
#define CTL_EXPECT_TIME                                                        \
	"expected unix seconds or an ISO-8601 UTC time like "                  \
	"2026-11-22T13:00:00Z"

/*
 * An option: a flag (set: NULL; flag: its field), or one with a value whose
 * setter returns NULL or what was wrong with the value.
 */
typedef struct ctl_option {
	const char *name;
	unsigned cmds; /* the commands that take it (CTL_ANY: global) */
	const char *(*set)(ctl_opts *o, const char *value);
	size_t flag; /* offsetof the bool a flag sets */
} ctl_option;

/* ------------------------------------------------------------------------ */
/* Values                                                                   */
/* ------------------------------------------------------------------------ */

/* An identifier the agent will take: 1 to CTL_ID_MAX bytes. */
static bool
ctl_valid_id(const char *id)
{
	size_t n = strlen(id);

	return n >= 1 && n <= CTL_ID_MAX;
}

static ProtobufCBinaryData
ctl_bytes(const char *s)
{
	ProtobufCBinaryData b = { s ? strlen(s) : 0, (uint8_t *)s };

	return b;
}

/* A time as revokd_parse_time_ms reads it, or (allow_now) "now". */
static bool
ctl_parse_time_ms(const char *s, bool allow_now, uint64_t *ms)
{
	if (allow_now && strcmp(s, "now") == 0) {
		*ms = revokd_clock_ms();
		return true;
	}
	return revokd_parse_time_ms(s, ms);
}

/* ------------------------------------------------------------------------ */
/* Option setters                                                           */
/* ------------------------------------------------------------------------ */

static const char *
ctl_set_socket(ctl_opts *o, const char *v)
{
	if (*v == '\0')
		return "expected a path";
	o->socket = v;
	return NULL;
}

static const char *
ctl_set_config(ctl_opts *o, const char *v)
{
	o->config = v;
	return NULL;
}

static const char *
ctl_set_max_message(ctl_opts *o, const char *v)
{
	if (!revokd_parse_u64(v, CTL_MAX_MESSAGE_MAX, &o->max_message) ||
	    o->max_message < WIRE_MAX_FRAME_MIN)
		return "expected bytes from 65536 to 67108864";
	o->has_max_message = true;
	return NULL;
}

static const char *
ctl_set_exp(ctl_opts *o, const char *v)
{
	uint64_t ms;

	if (!ctl_parse_time_ms(v, false, &ms) || ms == 0)
		return CTL_EXPECT_TIME;
	o->exp = (int64_t)((ms + 999) / 1000); /* a fraction keeps it longer */
	return NULL;
}

static const char *
ctl_set_reason(ctl_opts *o, const char *v)
{
	uint64_t r;

	if (!revokd_parse_u64(v, 255, &r))
		return "expected a reason code from 0 to 255";
	o->reason = (uint32_t)r;
	return NULL;
}

static const char *
ctl_set_wait(ctl_opts *o, const char *v)
{
	uint64_t n;

	o->has_wait = true;
	if (strcmp(v, "all") == 0) {
		o->wait_all = true;
		return NULL;
	}
	if (!revokd_parse_u64(v, UINT32_MAX, &n) || n == 0)
		return "expected \"all\" or a number of peers from 1";
	o->wait_peers = (uint32_t)n;
	return NULL;
}

static const char *
ctl_set_timeout(ctl_opts *o, const char *v)
{
	if (!revokd_parse_seconds_ms(v, &o->timeout_ms))
		return "expected seconds above 0, decimals allowed (like 2.5)";
	return NULL;
}

static const char *
ctl_set_not_before(ctl_opts *o, const char *v)
{
	if (!ctl_parse_time_ms(v, true, &o->not_before_ms) ||
	    o->not_before_ms == 0)
		return "expected \"now\", unix seconds or an ISO-8601 UTC time "
		       "like 2026-11-22T13:00:00.250Z";
	return NULL;
}

static const char *
ctl_set_claim(const char **field, const char *v)
{
	if (!ctl_valid_id(v))
		return "expected 1 to 1024 bytes";
	*field = v;
	return NULL;
}

static const char *
ctl_set_jti(ctl_opts *o, const char *v)
{
	return ctl_set_claim(&o->jti, v);
}

static const char *
ctl_set_sid(ctl_opts *o, const char *v)
{
	return ctl_set_claim(&o->sid, v);
}

static const char *
ctl_set_sub(ctl_opts *o, const char *v)
{
	return ctl_set_claim(&o->sub, v);
}

static const char *
ctl_set_ver(ctl_opts *o, const char *v)
{
	if (!revokd_parse_u64(v, UINT64_MAX, &o->ver))
		return "expected a version number";
	o->has_ver = true;
	return NULL;
}

static const char *
ctl_set_iat(ctl_opts *o, const char *v)
{
	uint64_t ms;

	if (!ctl_parse_time_ms(v, false, &ms))
		return CTL_EXPECT_TIME;
	o->iat = (int64_t)(ms / 1000);
	o->has_iat = true;
	return NULL;
}

#define CTL_FLAG(name_, cmds_, field)                                          \
	{                                                                      \
		.name = name_, .cmds = cmds_,                                  \
		.flag = offsetof(ctl_opts, field)                              \
	}

static const ctl_option ctl_options[] = {
	{ "socket", CTL_ANY, ctl_set_socket, 0 },
	{ "config", CTL_ANY, ctl_set_config, 0 },
	{ "max-message", CTL_ANY, ctl_set_max_message, 0 },
	CTL_FLAG("json", CTL_ANY, json),
	CTL_FLAG("help", CTL_ANY, help),
	CTL_FLAG("version", CTL_ANY, version),
	{ "exp", CTL_TOKEN_WRITES, ctl_set_exp, 0 },
	{ "reason", CTL_REVOKES, ctl_set_reason, 0 },
	{ "wait", CTL_WRITES, ctl_set_wait, 0 },
	{ "timeout", CTL_WRITES, ctl_set_timeout, 0 },
	{ "not-before", CTL_BIT(CTL_REVOKE_USER), ctl_set_not_before, 0 },
	CTL_FLAG("no-bump", CTL_BIT(CTL_REVOKE_USER), no_bump),
	{ "jti", CTL_BIT(CTL_CHECK), ctl_set_jti, 0 },
	{ "sid", CTL_BIT(CTL_CHECK), ctl_set_sid, 0 },
	{ "sub", CTL_BIT(CTL_CHECK), ctl_set_sub, 0 },
	{ "ver", CTL_BIT(CTL_CHECK), ctl_set_ver, 0 },
	{ "iat", CTL_BIT(CTL_CHECK), ctl_set_iat, 0 },
};

#define CTL_N_OPTIONS (sizeof(ctl_options) / sizeof(ctl_options[0]))

/* ------------------------------------------------------------------------ */
/* The connection                                                           */
/* ------------------------------------------------------------------------ */

typedef struct ctl_conn {
	int fd;
	const char *path;
	size_t max_message;
	wire_decoder decoder;
	uint8_t *readbuf;
	bool quiet; /* errors are expected and not worth a line */
} ctl_conn;

static int ctl_conn_fail(const ctl_conn *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Report a connection problem (unless quiet); returns CTL_FAILED. */
static int
ctl_conn_fail(const ctl_conn *c, const char *fmt, ...)
{
	va_list ap;

	if (c->quiet)
		return CTL_FAILED;
	fflush(stdout);
	fputs(CTL_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return CTL_FAILED;
}

static int
ctl_connect(ctl_conn *c, const char *path, size_t max_message)
{
	struct sockaddr_un sa;
	int e;

	memset(c, 0, sizeof(*c));
	c->path = path;
	c->max_message = max_message;
	memset(&sa, 0, sizeof(sa));
	sa.sun_family = AF_UNIX;
	memcpy(sa.sun_path, path, strlen(path) + 1); /* length checked */
	if ((c->readbuf = malloc(CTL_READ_SIZE)) == NULL)
		return ctl_fail(CTL_FAILED, "out of memory");
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 ||
	    connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		e = errno;
		if (c->fd >= 0)
			close(c->fd);
		free(c->readbuf);
		return ctl_fail(CTL_FAILED,
		    "cannot connect to the agent at %s: %s", path, strerror(e));
	}
	wire_decoder_init(&c->decoder, max_message);
	return CTL_OK;
}

static void
ctl_close(ctl_conn *c)
{
	close(c->fd);
	wire_decoder_free(&c->decoder);
	free(c->readbuf);
}

static int
ctl_write_all(const ctl_conn *c, const uint8_t *p, size_t len)
{
	while (len > 0) {
		ssize_t n = send(c->fd, p, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
			return ctl_conn_fail(c, "agent closed the connection");
		if (n < 0)
			return ctl_conn_fail(c, "cannot send to %s: %s",
			    c->path, strerror(errno));
		p += n;
		len -= (size_t)n;
	}
	return CTL_OK;
}

/* Send one request frame. */
static int
ctl_send(const ctl_conn *c, const Request *req)
{
	size_t len = revokd__local__request__get_packed_size(req);
	uint8_t *frame;
	int rc;

	if (len > c->max_message)
		return ctl_conn_fail(c,
		    "a request of %zu bytes is over the %zu-byte limit "
		    "(--max-message)",
		    len, c->max_message);
	if ((frame = malloc(WIRE_HEADER_LEN + len)) == NULL)
		return ctl_conn_fail(c, "out of memory");
	frame[0] = (uint8_t)(len >> 24);
	frame[1] = (uint8_t)(len >> 16);
	frame[2] = (uint8_t)(len >> 8);
	frame[3] = (uint8_t)len;
	revokd__local__request__pack(req, frame + WIRE_HEADER_LEN);
	rc = ctl_write_all(c, frame, WIRE_HEADER_LEN + len);
	free(frame);
	return rc;
}

/* Read more bytes into the decoder. */
static int
ctl_fill(ctl_conn *c)
{
	ssize_t n;

	do
		n = recv(c->fd, c->readbuf, CTL_READ_SIZE, 0);
	while (n < 0 && errno == EINTR);
	if (n == 0 || (n < 0 && errno == ECONNRESET))
		return ctl_conn_fail(c, "agent closed the connection%s",
		    c->decoder.len > c->decoder.off
		        ? " in the middle of an answer"
		        : "");
	if (n < 0)
		return ctl_conn_fail(c, "cannot read from %s: %s", c->path,
		    strerror(errno));
	if (wire_decoder_feed(&c->decoder, c->readbuf, (size_t)n) ==
	    REVOKD_ENOMEM)
		return ctl_conn_fail(c, "out of memory");
	return CTL_OK; /* an oversize header shows in wire_decoder_next */
}

/* The next response (free it with ..._free_unpacked). */
static int
ctl_recv(ctl_conn *c, Response **out)
{
	const uint8_t *frame;
	size_t len;
	revokd_err err;
	int rc;

	while ((err = wire_decoder_next(&c->decoder, &frame, &len)) ==
	       REVOKD_EAGAIN)
		if ((rc = ctl_fill(c)) != CTL_OK)
			return rc;
	if (err == REVOKD_ETOOBIG)
		return ctl_conn_fail(c,
		    "the agent sent an answer over the %zu-byte limit (raise "
		    "--max-message)",
		    c->max_message);
	if ((*out = revokd__local__response__unpack(NULL, len, frame)) == NULL)
		return ctl_conn_fail(c,
		    "the agent sent an answer that does not decode");
	return CTL_OK;
}

/* An Error answer, as one line; context (may be NULL) goes first. */
static int
ctl_agent_error(const ctl_conn *c, const char *context,
    const Revokd__Local__Error *e)
{
	char name[32];
	const char *hint = "";

	if (e->code == REVOKD__LOCAL__ERROR_CODE__ERROR_NOT_ALLOWED)
		hint = " (is this the query socket? revokectl needs the admin "
		       "socket)";
	else if (e->code == REVOKD__LOCAL__ERROR_CODE__ERROR_TOO_BIG)
		hint = " (the agent's max_message is lower: use --config or "
		       "--max-message)";
	return ctl_conn_fail(c, "%s%sthe agent answered %s: %s%s",
	    context ? context : "", context ? ": " : "",
	    ctl_error_name(e->code, name, sizeof(name)),
	    e->message && *e->message ? e->message : "(no message)", hint);
}

/* Check that resp is what was asked for; frees it when it is not. */
static int
ctl_expect(const ctl_conn *c, Response *resp,
    Revokd__Local__Response__BodyCase expect)
{
	int rc;

	if (resp->body_case == expect)
		return CTL_OK;
	if (resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_ERROR)
		rc = ctl_agent_error(c, NULL, resp->error);
	else
		rc = ctl_conn_fail(c,
		    "the agent gave an unexpected answer "
		    "(body %d)",
		    (int)resp->body_case);
	revokd__local__response__free_unpacked(resp, NULL);
	return rc;
}

/* One request, one answer of the expected kind. */
static int
ctl_call(ctl_conn *c, const Request *req,
    Revokd__Local__Response__BodyCase expect, Response **out)
{
	int rc;

	if ((rc = ctl_send(c, req)) != CTL_OK ||
	    (rc = ctl_recv(c, out)) != CTL_OK)
		return rc;
	return ctl_expect(c, *out, expect);
}

/* ------------------------------------------------------------------------ */
/* Writes                                                                   */
/* ------------------------------------------------------------------------ */

/* Room for the body of any one write request. */
typedef struct ctl_write_msgs {
	Revokd__Local__RevokeToken revoke_token;
	Revokd__Local__RestoreToken restore_token;
	Revokd__Local__RevokeSession revoke_session;
	Revokd__Local__RestoreSession restore_session;
	Revokd__Local__RevokeUser revoke_user;
	Revokd__Local__Wait wait;
} ctl_write_msgs;

static void
ctl_build_token_write(const ctl_opts *o, ctl_write_msgs *m, Request *req,
    Revokd__Local__Wait *wait)
{
	ProtobufCBinaryData id = ctl_bytes(o->operand);

	switch (o->cmd) {
	case CTL_REVOKE_TOKEN:
		revokd__local__revoke_token__init(&m->revoke_token);
		m->revoke_token.jti = id;
		m->revoke_token.exp = o->exp;
		m->revoke_token.reason = o->reason;
		m->revoke_token.wait = wait;
		req->body_case = REVOKD__LOCAL__REQUEST__BODY_REVOKE_TOKEN;
		req->revoke_token = &m->revoke_token;
		break;
	case CTL_RESTORE_TOKEN:
		revokd__local__restore_token__init(&m->restore_token);
		m->restore_token.jti = id;
		m->restore_token.exp = o->exp;
		m->restore_token.wait = wait;
		req->body_case = REVOKD__LOCAL__REQUEST__BODY_RESTORE_TOKEN;
		req->restore_token = &m->restore_token;
		break;
	case CTL_REVOKE_SESSION:
		revokd__local__revoke_session__init(&m->revoke_session);
		m->revoke_session.sid = id;
		m->revoke_session.exp = o->exp;
		m->revoke_session.reason = o->reason;
		m->revoke_session.wait = wait;
		req->body_case = REVOKD__LOCAL__REQUEST__BODY_REVOKE_SESSION;
		req->revoke_session = &m->revoke_session;
		break;
	default: /* CTL_RESTORE_SESSION */
		revokd__local__restore_session__init(&m->restore_session);
		m->restore_session.sid = id;
		m->restore_session.exp = o->exp;
		m->restore_session.wait = wait;
		req->body_case = REVOKD__LOCAL__REQUEST__BODY_RESTORE_SESSION;
		req->restore_session = &m->restore_session;
		break;
	}
}

/* The request of a write command, and what to say once it is done. */
static void
ctl_build_write(const ctl_opts *o, ctl_write_msgs *m, Request *req,
    ctl_write_what *what)
{
	Revokd__Local__Wait *wait = NULL;

	if (o->has_wait) {
		revokd__local__wait__init(&m->wait);
		m->wait.all = o->wait_all;
		m->wait.peers = o->wait_peers;
		m->wait.timeout_ms = o->timeout_ms;
		wait = &m->wait;
	}
	memset(what, 0, sizeof(*what));
	what->id = o->operand;
	what->verb =
	    o->cmd == CTL_RESTORE_TOKEN || o->cmd == CTL_RESTORE_SESSION
	        ? "restored"
	        : "revoked";
	what->kind = o->cmd == CTL_REVOKE_TOKEN || o->cmd == CTL_RESTORE_TOKEN
	                 ? "jti"
	                 : "sid";
	if (o->cmd != CTL_REVOKE_USER) {
		ctl_build_token_write(o, m, req, wait);
		return;
	}
	revokd__local__revoke_user__init(&m->revoke_user);
	m->revoke_user.sub = ctl_bytes(o->operand);
	m->revoke_user.no_bump = o->no_bump;
	m->revoke_user.not_before_ms = o->not_before_ms;
	m->revoke_user.wait = wait;
	req->body_case = REVOKD__LOCAL__REQUEST__BODY_REVOKE_USER;
	req->revoke_user = &m->revoke_user;
	what->kind = "user";
	what->user = true;
	what->bumped = !o->no_bump;
	what->not_before_ms = o->not_before_ms;
}

static bool
ctl_confirmed_by(const Revokd__Local__WriteResult *r, const char *region)
{
	for (size_t i = 0; i < r->n_confirmations; i++)
		if (r->confirmations[i]->region != NULL && region != NULL &&
		    strcmp(r->confirmations[i]->region, region) == 0)
			return true;
	return false;
}

/*
 * The peers that did not confirm, as " (none from a, b [disconnected])",
 * asked of the agent with a Status; *n_peers is how many it has. False
 * when the agent could not tell.
 */
static bool
ctl_missing_peers(ctl_conn *c, const Revokd__Local__WriteResult *r, char *buf,
    size_t len, size_t *n_peers)
{
	Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Status st = REVOKD__LOCAL__STATUS__INIT;
	Response *resp;
	size_t used = 0;

	req.body_case = REVOKD__LOCAL__REQUEST__BODY_STATUS;
	req.status = &st;
	c->quiet = true;
	if (ctl_call(c, &req, REVOKD__LOCAL__RESPONSE__BODY_STATUS, &resp) !=
	    CTL_OK) {
		c->quiet = false;
		return false;
	}
	*n_peers = resp->status->n_peers;
	buf[0] = '\0';
	for (size_t i = 0; i < resp->status->n_peers && used < len; i++) {
		const Revokd__Local__PeerStatus *p = resp->status->peers[i];

		if (ctl_confirmed_by(r, p->region))
			continue;
		used += (size_t)snprintf(buf + used, len - used, "%s%s%s",
		    used ? ", " : " (none from ", p->region ? p->region : "?",
		    p->connected ? "" : " [disconnected]");
	}
	if (used > 0 && used < len)
		snprintf(buf + used, len - used, ")");
	c->quiet = false;
	revokd__local__response__free_unpacked(resp, NULL);
	return true;
}

/* Say that the wait was not met, and who did not confirm. */
static int
ctl_wait_not_met(ctl_conn *c, const ctl_opts *o,
    const Revokd__Local__WriteResult *r)
{
	uint32_t ms = o->timeout_ms ? o->timeout_ms : CTL_WAIT_DEFAULT_MS;
	char within[32], missing[512] = "";
	size_t n_peers = 0;
	bool known =
	    ctl_missing_peers(c, r, missing, sizeof(missing), &n_peers);

	snprintf(within, sizeof(within), ms % 100 ? "%.3f s" : "%.1f s",
	    (double)ms / 1000.0);
	if (o->wait_all && !known)
		return ctl_fail(CTL_FAILED,
		    "wait not met: %zu peer%s confirmed within %s, not all",
		    r->n_confirmations, r->n_confirmations == 1 ? "" : "s",
		    within);
	return ctl_fail(CTL_FAILED,
	    "wait not met: %zu of %zu peers confirmed within %s%s",
	    r->n_confirmations, o->wait_all ? n_peers : (size_t)o->wait_peers,
	    within, missing);
}

static int
ctl_run_write(const ctl_opts *o, const char *path)
{
	Request req = REVOKD__LOCAL__REQUEST__INIT;
	ctl_write_msgs m;
	ctl_write_what what;
	Response *resp;
	ctl_conn c;
	int rc;

	ctl_build_write(o, &m, &req, &what);
	if ((rc = ctl_connect(&c, path, o->max_message)) != CTL_OK)
		return rc;
	if ((rc = ctl_call(&c, &req, REVOKD__LOCAL__RESPONSE__BODY_WRITE,
	         &resp)) == CTL_OK) {
		ctl_print_write(o->json, &what, resp->write);
		if (resp->write->timed_out)
			rc = ctl_wait_not_met(&c, o, resp->write);
		revokd__local__response__free_unpacked(resp, NULL);
	}
	ctl_close(&c);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                  */
/* ------------------------------------------------------------------------ */

/* Connect, ask one question, and print its answer with print. */
static int
ctl_ask(const ctl_opts *o, const char *path, const Request *req,
    Revokd__Local__Response__BodyCase expect,
    void (*print)(const ctl_opts *o, const Response *resp))
{
	Response *resp;
	ctl_conn c;
	int rc;

	if ((rc = ctl_connect(&c, path, o->max_message)) != CTL_OK)
		return rc;
	if ((rc = ctl_call(&c, req, expect, &resp)) == CTL_OK) {
		print(o, resp);
		revokd__local__response__free_unpacked(resp, NULL);
	}
	ctl_close(&c);
	return rc;
}

static void
ctl_show_check(const ctl_opts *o, const Response *resp)
{
	ctl_print_check(o->json, o->sub != NULL, resp->check);
}

static int
ctl_run_check(const ctl_opts *o, const char *path)
{
	Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Check q = REVOKD__LOCAL__CHECK__INIT;

	q.jti = ctl_bytes(o->jti);
	q.sid = ctl_bytes(o->sid);
	q.sub = ctl_bytes(o->sub);
	if (o->has_ver) {
		q.has_ver_case = REVOKD__LOCAL__CHECK__HAS_VER_VER;
		q.ver = o->ver;
	}
	if (o->has_iat) {
		q.has_iat_case = REVOKD__LOCAL__CHECK__HAS_IAT_IAT;
		q.iat = o->iat;
	}
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_CHECK;
	req.check = &q;
	return ctl_ask(o, path, &req, REVOKD__LOCAL__RESPONSE__BODY_CHECK,
	    ctl_show_check);
}

static void
ctl_show_version(const ctl_opts *o, const Response *resp)
{
	ctl_print_version(o->json, resp->version);
}

static int
ctl_run_user_version(const ctl_opts *o, const char *path)
{
	Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Version q = REVOKD__LOCAL__VERSION__INIT;

	q.sub = ctl_bytes(o->operand);
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_VERSION;
	req.version = &q;
	return ctl_ask(o, path, &req, REVOKD__LOCAL__RESPONSE__BODY_VERSION,
	    ctl_show_version);
}

static void
ctl_show_status(const ctl_opts *o, const Response *resp)
{
	ctl_print_status(o->json, resp->status);
}

static int
ctl_run_status(const ctl_opts *o, const char *path)
{
	Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Status q = REVOKD__LOCAL__STATUS__INIT;

	req.body_case = REVOKD__LOCAL__REQUEST__BODY_STATUS;
	req.status = &q;
	return ctl_ask(o, path, &req, REVOKD__LOCAL__RESPONSE__BODY_STATUS,
	    ctl_show_status);
}

/* ------------------------------------------------------------------------ */
/* Dump                                                                     */
/* ------------------------------------------------------------------------ */

/* One page after *after (*after_len bytes); the last key goes back there. */
static int
ctl_dump_page(ctl_conn *c, const ctl_opts *o, uint8_t *after, size_t *after_len,
    bool *more)
{
	Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Dump q = REVOKD__LOCAL__DUMP__INIT;
	Revokd__Local__DumpResult *d;
	Response *resp;
	int rc;

	q.after.data = after;
	q.after.len = *after_len;
	q.limit = CTL_DUMP_PAGE;
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_DUMP;
	req.dump = &q;
	if ((rc = ctl_call(c, &req, REVOKD__LOCAL__RESPONSE__BODY_DUMP,
	         &resp)) != CTL_OK)
		return rc;
	d = resp->dump;
	for (size_t i = 0; i < d->n_entries; i++)
		ctl_print_dump_entry(o->json, d->entries[i]);
	*more = d->more;
	if (d->n_entries > 0) {
		ProtobufCBinaryData *key = &d->entries[d->n_entries - 1]->key;

		if (key->len == 0 || key->len > CRDT_KEY_LEN)
			rc = ctl_fail(CTL_FAILED,
			    "the agent sent a dump key of %zu bytes", key->len);
		else
			memcpy(after, key->data, (*after_len = key->len));
	} else if (d->more) {
		rc = ctl_fail(CTL_FAILED,
		    "the agent said there are more entries but sent none");
	}
	revokd__local__response__free_unpacked(resp, NULL);
	return rc;
}

static int
ctl_run_dump(const ctl_opts *o, const char *path)
{
	uint8_t after[CRDT_KEY_LEN];
	size_t after_len = 0;
	bool more = true;
	ctl_conn c;
	int rc;

	if ((rc = ctl_connect(&c, path, o->max_message)) != CTL_OK)
		return rc;
	while (more && rc == CTL_OK)
		rc = ctl_dump_page(&c, o, after, &after_len, &more);
	ctl_close(&c);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Import: reading items                                                    */
/* ------------------------------------------------------------------------ */

/* One Import sent and not yet answered. */
typedef struct ctl_flight {
	uint64_t first_line, last_line;
	bool cut; /* the frame did not go out whole: nothing to commit */
} ctl_flight;

typedef struct ctl_import {
	const ctl_opts *o;
	ctl_conn conn;
	FILE *in;
	const char *name; /* of the input, for messages */
	char *line;       /* CTL_LINE_MAX bytes */
	uint64_t lineno;
	int64_t expired_before; /* unix s: an exp below it is skipped */

	ImportItem *items; /* the chunk being read: CTL_IMPORT_MAX */
	ImportItem **ptrs;
	size_t n;
	size_t bytes; /* of the chunk's items inside an Import */
	uint64_t first_line, last_line;

	ctl_flight flight[CTL_IMPORT_WINDOW];
	size_t flight_head, n_flight;
	uint64_t sent_through; /* last line of the last chunk sent */

	uint64_t imported, requests, skipped;
	bool failed;   /* an answer was an error, or input or socket failed */
	bool eof;      /* all the input was read */
	bool conn_bad; /* no more answers will come */
	char bad[512]; /* the bad line's problem, when one stopped reading */
} ctl_import;

/* Bytes of a protobuf varint holding v. */
static size_t
ctl_varint_len(uint64_t v)
{
	size_t n = 1;

	while (v >= 0x80) {
		v >>= 7;
		n++;
	}
	return n;
}

/*
 * The next line into imp->line: 1 and its length, 0 at the end, -1 when
 * the line is too long (imp->bad says so) or reading failed.
 */
static int
ctl_read_line(ctl_import *imp, size_t *len)
{
	size_t n = 0;
	int ch;

	while ((ch = getc_unlocked(imp->in)) != EOF && ch != '\n') {
		if (n == CTL_LINE_MAX) {
			imp->lineno++;
			snprintf(imp->bad, sizeof(imp->bad),
			    "line longer than %u bytes", CTL_LINE_MAX);
			return -1;
		}
		imp->line[n++] = (char)ch;
	}
	if (ch == EOF && ferror(imp->in)) {
		imp->failed = true;
		ctl_fail(CTL_FAILED, "cannot read %s: %s", imp->name,
		    strerror(errno));
		return -1;
	}
	if (ch == EOF && n == 0)
		return 0;
	imp->lineno++;
	*len = n;
	return 1;
}

static bool
ctl_blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
			return false;
	return true;
}

/*
 * A time field in ms: a number of unix seconds (in_ms: milliseconds), or a
 * string holding an ISO-8601 UTC time or (allow_now) "now".
 */
static bool
ctl_json_time_ms(const json_t *v, bool in_ms, bool allow_now, uint64_t *ms)
{
	json_int_t i;

	if (json_is_string(v) && allow_now &&
	    strcmp(json_string_value(v), "now") == 0) {
		*ms = revokd_clock_ms();
		return true;
	}
	if (json_is_string(v))
		return revokd_parse_iso_ms(json_string_value(v), ms) && *ms > 0;
	if (!json_is_integer(v) || (i = json_integer_value(v)) <= 0 ||
	    (uint64_t)i > REVOKD_TIME_MAX_S * 1000)
		return false;
	*ms = in_ms ? (uint64_t)i : (uint64_t)i * 1000;
	return in_ms || (uint64_t)i <= REVOKD_TIME_MAX_S;
}

/* The fields of a jti or sid item. */
static const char *
ctl_item_token(ctl_import *imp, const json_t *o, ImportItem *it, bool *skip)
{
	json_t *exp = json_object_get(o, "exp"), *v;
	uint64_t ms;

	if (json_object_get(o, "not_before") || json_object_get(o, "bump"))
		return "not_before and bump are for sub items";
	if (exp != NULL) {
		if (!ctl_json_time_ms(exp, false, false, &ms))
			return "exp: " CTL_EXPECT_TIME;
		it->exp = (int64_t)((ms + 999) / 1000);
		*skip = it->exp < imp->expired_before;
	}
	if ((v = json_object_get(o, "reason")) != NULL) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 255)
			return "reason: expected a number from 0 to 255";
		it->reason = (uint32_t)json_integer_value(v);
	}
	if ((v = json_object_get(o, "restore")) != NULL) {
		if (!json_is_boolean(v))
			return "restore: expected true or false";
		it->restore = json_is_true(v);
	}
	return NULL;
}

/* The fields of a sub item. */
static const char *
ctl_item_subject(const json_t *o, ImportItem *it)
{
	json_t *nb = json_object_get(o, "not_before");
	json_t *bump = json_object_get(o, "bump");

	if (json_object_get(o, "exp") || json_object_get(o, "reason") ||
	    json_object_get(o, "restore"))
		return "exp, reason and restore are for jti and sid items";
	if (nb != NULL && !ctl_json_time_ms(nb, true, true, &it->not_before_ms))
		return "not_before: expected unix milliseconds, an ISO-8601 "
		       "UTC time, or \"now\"";
	if (bump != NULL && !json_is_boolean(bump))
		return "bump: expected true or false";
	it->bump = bump != NULL ? json_is_true(bump) : nb == NULL;
	if (!it->bump && it->not_before_ms == 0)
		return "a sub item needs \"bump\": true or a not_before";
	return NULL;
}

static bool
ctl_known_key(const char *key)
{
	static const char *const keys[] = { "kind", "id", "exp", "reason",
		"restore", "not_before", "bump" };

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(key, keys[i]) == 0)
			return true;
	return false;
}

/*
 * One item object into *it (its id still borrowed from o). NULL, or what is
 * wrong with it (a constant, or imp->bad).
 */
static const char *
ctl_item_parse(ctl_import *imp, json_t *o, ImportItem *it, bool *skip)
{
	json_t *kind = json_object_get(o, "kind"),
	       *id = json_object_get(o, "id");
	const char *key, *k;
	json_t *v;

	json_object_foreach(o, key, v)
	{
		if (ctl_known_key(key))
			continue;
		snprintf(imp->bad, sizeof(imp->bad),
		    "unknown key \"%.64s\" (known: kind, id, exp, reason, "
		    "restore, not_before, bump)",
		    key);
		return imp->bad;
	}
	k = json_is_string(kind) ? json_string_value(kind) : "";
	if (strcmp(k, "jti") && strcmp(k, "sid") && strcmp(k, "sub"))
		return "kind: expected \"jti\", \"sid\" or \"sub\"";
	if (!json_is_string(id) || json_string_length(id) == 0 ||
	    json_string_length(id) > CTL_ID_MAX)
		return "id: expected a string of 1 to 1024 bytes";
	revokd__local__import_item__init(it);
	/* The protobuf wants a char *; it is only read. */
	it->kind = (char *)(strcmp(k, "jti") == 0   ? "jti"
	                    : strcmp(k, "sid") == 0 ? "sid"
	                                            : "sub");
	it->id.len = json_string_length(id);
	it->id.data = (uint8_t *)json_string_value(id);
	*skip = false;
	return strcmp(k, "sub") == 0 ? ctl_item_subject(o, it)
	                             : ctl_item_token(imp, o, it, skip);
}

/*
 * The next item into *it, with its own copy of the id: 1, or 0 at the end
 * of the input, or -1 when a bad line or a read error stops the import.
 * Skipped items are counted and not returned.
 */
static int
ctl_import_next(ctl_import *imp, ImportItem *it)
{
	json_error_t je;
	const char *bad;
	size_t len;
	bool skip;
	int r;

	while ((r = ctl_read_line(imp, &len)) == 1) {
		json_t *o;
		uint8_t *id;

		if (ctl_blank(imp->line, len))
			continue;
		o = json_loadb(imp->line, len, JSON_REJECT_DUPLICATES, &je);
		if (o == NULL) {
			snprintf(imp->bad, sizeof(imp->bad), "not JSON: %s",
			    je.text);
			return -1;
		}
		bad = json_is_object(o) ? ctl_item_parse(imp, o, it, &skip)
		                        : "not a JSON object";
		id = bad == NULL && !skip ? malloc(it->id.len) : NULL;
		if (id != NULL) {
			memcpy(id, it->id.data, it->id.len);
			it->id.data = id;
		}
		json_decref(o);
		if (bad != NULL) {
			if (bad != imp->bad)
				snprintf(imp->bad, sizeof(imp->bad), "%s", bad);
			return -1;
		}
		if (skip) {
			imp->skipped++;
			continue;
		}
		if (id == NULL) {
			imp->failed = true;
			ctl_fail(CTL_FAILED, "out of memory");
			return -1;
		}
		return 1;
	}
	return r;
}

/* ------------------------------------------------------------------------ */
/* Import: sending chunks, collecting answers                               */
/* ------------------------------------------------------------------------ */

static void
ctl_import_clear(ctl_import *imp)
{
	for (size_t i = 0; i < imp->n; i++)
		free(imp->items[i].id.data);
	imp->n = 0;
	imp->bytes = 0;
}

/* An answer other than a WriteResult, for the lines of an Import. */
static void
ctl_import_refused(ctl_import *imp, const char *lines, const Response *resp)
{
	imp->failed = true;
	if (resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_ERROR)
		ctl_agent_error(&imp->conn, lines, resp->error);
	else
		ctl_fail(CTL_FAILED, "%s: unexpected answer (body %d)", lines,
		    (int)resp->body_case);
}

/* The answer to the oldest Import in flight. */
static void
ctl_import_collect(ctl_import *imp)
{
	ctl_flight f = imp->flight[imp->flight_head];
	char lines[64];
	Response *resp;

	imp->flight_head = (imp->flight_head + 1) % CTL_IMPORT_WINDOW;
	imp->n_flight--;
	snprintf(lines, sizeof(lines), "lines %llu-%llu",
	    (unsigned long long)f.first_line, (unsigned long long)f.last_line);
	/* Answers sent before the agent closed can still be read. */
	imp->conn.quiet = true;
	if (imp->conn_bad || ctl_recv(&imp->conn, &resp) != CTL_OK) {
		imp->conn_bad = imp->failed = true;
		ctl_fail(CTL_FAILED, "%s: %s", lines,
		    f.cut ? "not imported: the connection broke while "
		            "sending them"
		          : "no answer before the connection closed; they may "
		            "or may not have been imported");
		return;
	}
	imp->conn.quiet = false;
	if (resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_WRITE) {
		imp->imported += resp->write->items;
		imp->requests++;
	} else {
		ctl_import_refused(imp, lines, resp);
	}
	revokd__local__response__free_unpacked(resp, NULL);
}

/*
 * Send the chunk read so far as one Import, after making room. A send that
 * fails is still collected: the agent may have answered it (a frame over
 * its limit gets ERROR_TOO_BIG before the agent closes).
 */
static void
ctl_import_send(ctl_import *imp)
{
	Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Import body = REVOKD__LOCAL__IMPORT__INIT;
	ctl_flight *f;

	if (imp->n == 0)
		return;
	if (imp->n_flight == CTL_IMPORT_WINDOW)
		ctl_import_collect(imp);
	if (imp->failed)
		return; /* stop at the first failure */
	body.items = imp->ptrs;
	body.n_items = imp->n;
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_IMPORT;
	req.import = &body;
	f = &imp->flight[(imp->flight_head + imp->n_flight++) %
	                 CTL_IMPORT_WINDOW];
	f->first_line = imp->first_line;
	f->last_line = imp->last_line;
	imp->conn.quiet = true;
	f->cut = ctl_send(&imp->conn, &req) != CTL_OK;
	imp->conn.quiet = false;
	imp->failed = f->cut;
	imp->sent_through = imp->last_line;
	ctl_import_clear(imp);
}

/* Add an item to the chunk, sending the chunk first when it is full. */
static void
ctl_import_add(ctl_import *imp, ImportItem *it)
{
	size_t size = revokd__local__import_item__get_packed_size(it);
	size_t entry = 1 + ctl_varint_len(size) + size;
	size_t total = imp->bytes + entry;

	/* The Request: a tag and a length around the Import's items. */
	if (imp->n == CTL_IMPORT_MAX ||
	    1 + ctl_varint_len(total) + total > imp->conn.max_message)
		ctl_import_send(imp);
	if (imp->failed) {
		free(it->id.data);
		return;
	}
	if (imp->n == 0)
		imp->first_line = imp->lineno;
	imp->items[imp->n] = *it;
	imp->ptrs[imp->n] = &imp->items[imp->n];
	imp->n++;
	imp->bytes += entry;
	imp->last_line = imp->lineno;
}

/* Read, send and collect until the input ends or something fails. */
static void
ctl_import_loop(ctl_import *imp)
{
	ImportItem it;
	int r;

	while (!imp->failed && (r = ctl_import_next(imp, &it)) == 1)
		ctl_import_add(imp, &it);
	imp->eof = !imp->failed && r == 0;
	if (imp->eof)
		ctl_import_send(imp); /* the last chunk */
	ctl_import_clear(imp);
	while (imp->n_flight > 0)
		ctl_import_collect(imp);
}

static int
ctl_import_report(ctl_import *imp)
{
	unsigned long long resume = imp->sent_through + 1;

	ctl_print_import(imp->o->json, imp->imported, imp->requests,
	    imp->skipped);
	if (imp->bad[0] != '\0')
		ctl_fail(CTL_USAGE,
		    "%s:%llu: %s; %llu items imported before it, nothing "
		    "from line %llu on was sent",
		    imp->name, (unsigned long long)imp->lineno, imp->bad,
		    (unsigned long long)imp->imported, resume);
	else if (imp->failed && !imp->eof)
		ctl_fail(CTL_FAILED,
		    "stopped: nothing from line %llu on was "
		    "sent",
		    resume);
	if (imp->failed)
		return CTL_FAILED;
	return imp->bad[0] != '\0' ? CTL_USAGE : CTL_OK;
}

static int
ctl_run_import(const ctl_opts *o, const char *path)
{
	ctl_import imp = { .o = o };
	bool from_stdin = strcmp(o->operand, "-") == 0;
	int rc;

	imp.name = from_stdin ? "stdin" : o->operand;
	imp.in = from_stdin ? stdin : fopen(o->operand, "r");
	if (imp.in == NULL)
		return ctl_fail(CTL_FAILED, "cannot open %s: %s", o->operand,
		    strerror(errno));
	imp.expired_before = (int64_t)(revokd_clock_ms() / 1000) -
	                     o->prune_leeway + CTL_EXPIRED_MARGIN_S;
	imp.line = malloc(CTL_LINE_MAX);
	imp.items = calloc(CTL_IMPORT_MAX, sizeof(*imp.items));
	imp.ptrs = calloc(CTL_IMPORT_MAX, sizeof(*imp.ptrs));
	if (imp.line == NULL || imp.items == NULL || imp.ptrs == NULL)
		rc = ctl_fail(CTL_FAILED, "out of memory");
	else if ((rc = ctl_connect(&imp.conn, path, o->max_message)) ==
	         CTL_OK) {
		ctl_import_loop(&imp);
		ctl_close(&imp.conn);
		rc = ctl_import_report(&imp);
	}
	if (!from_stdin)
		fclose(imp.in);
	free(imp.line);
	free(imp.items);
	free(imp.ptrs);
	return rc;
}

/* What runs each command, given the admin socket's path. */
static int (*const ctl_runs[CTL_NO_CMD])(const ctl_opts *o,
    const char *path) = {
	[CTL_REVOKE_TOKEN] = ctl_run_write,
	[CTL_RESTORE_TOKEN] = ctl_run_write,
	[CTL_REVOKE_SESSION] = ctl_run_write,
	[CTL_RESTORE_SESSION] = ctl_run_write,
	[CTL_REVOKE_USER] = ctl_run_write,
	[CTL_CHECK] = ctl_run_check,
	[CTL_USER_VERSION] = ctl_run_user_version,
	[CTL_STATUS] = ctl_run_status,
	[CTL_IMPORT] = ctl_run_import,
	[CTL_DUMP] = ctl_run_dump,
};

/* ------------------------------------------------------------------------ */
/* The command line                                                         */
/* ------------------------------------------------------------------------ */

static int ctl_bad_usage(const ctl_opts *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* One line naming the problem; returns CTL_USAGE. */
static int
ctl_bad_usage(const ctl_opts *o, const char *fmt, ...)
{
	va_list ap;

	fputs(CTL_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (o->cmd != CTL_NO_CMD)
		fprintf(stderr, " (see revokectl %s --help)\n",
		    ctl_command_name(o->cmd));
	else
		fprintf(stderr, " (see revokectl --help)\n");
	return CTL_USAGE;
}

static const ctl_option *
ctl_find_option(const char *name, size_t len)
{
	for (size_t i = 0; i < CTL_N_OPTIONS; i++)
		if (strlen(ctl_options[i].name) == len &&
		    strncmp(ctl_options[i].name, name, len) == 0)
			return &ctl_options[i];
	return NULL;
}

/* argv[*i], an option: set it, taking its value from argv[*i + 1]. */
static int
ctl_take_option(ctl_opts *o, int argc, char **argv, int *i, unsigned *seen)
{
	const char *arg = argv[*i] + 2, *eq = strchr(arg, '='), *value = NULL;
	size_t len = eq ? (size_t)(eq - arg) : strlen(arg);
	const ctl_option *opt = ctl_find_option(arg, len);
	const char *bad;
	unsigned bit;

	if (opt == NULL)
		return ctl_bad_usage(o, "unknown option --%.*s", (int)len, arg);
	bit = 1u << (opt - ctl_options);
	if (opt->set == NULL && eq)
		return ctl_bad_usage(o, "--%s takes no value", opt->name);
	if (opt->set == NULL) {
		*seen |= bit;
		*(bool *)((char *)o + opt->flag) = true;
		return CTL_OK;
	}
	if (*seen & bit)
		return ctl_bad_usage(o, "--%s given twice", opt->name);
	*seen |= bit;
	if (eq)
		value = eq + 1;
	else if (*i + 1 < argc)
		value = argv[++*i];
	else
		return ctl_bad_usage(o, "--%s needs a value", opt->name);
	if ((bad = opt->set(o, value)) != NULL)
		return ctl_bad_usage(o, "--%s \"%s\": %s", opt->name, value,
		    bad);
	return CTL_OK;
}

/* A word that is not an option: the command, then its operand. */
static int
ctl_take_word(ctl_opts *o, const char *word)
{
	if (o->cmd == CTL_NO_CMD) {
		for (size_t i = 0; i < CTL_NO_CMD; i++)
			if (strcmp(word, ctl_command_name((ctl_cmd)i)) == 0) {
				o->cmd = (ctl_cmd)i;
				return CTL_OK;
			}
		return ctl_bad_usage(o, "unknown command \"%s\"", word);
	}
	if (ctl_command_operand(o->cmd) == NULL || o->operand != NULL)
		return ctl_bad_usage(o, "unexpected argument \"%s\"", word);
	o->operand = word;
	return CTL_OK;
}

/* Options given that the command does not take. */
static int
ctl_check_scope(const ctl_opts *o, unsigned seen)
{
	for (size_t i = 0; i < CTL_N_OPTIONS; i++)
		if ((seen & (1u << i)) &&
		    !(ctl_options[i].cmds & CTL_BIT(o->cmd)))
			return ctl_bad_usage(o, "%s takes no --%s",
			    ctl_command_name(o->cmd), ctl_options[i].name);
	return CTL_OK;
}

/* What only the whole command line can tell. */
static int
ctl_check_opts(const ctl_opts *o)
{
	const char *operand = ctl_command_operand(o->cmd);

	if (operand != NULL && o->operand == NULL)
		return ctl_bad_usage(o, "%s needs a %s",
		    ctl_command_name(o->cmd), operand);
	if (operand != NULL && o->cmd != CTL_IMPORT &&
	    !ctl_valid_id(o->operand))
		return ctl_bad_usage(o, "%s must be 1 to 1024 bytes", operand);
	if (o->timeout_ms && !o->has_wait)
		return ctl_bad_usage(o, "--timeout needs --wait");
	if (o->no_bump && o->not_before_ms == 0)
		return ctl_bad_usage(o, "--no-bump needs --not-before, or "
		                        "nothing would change");
	if (o->cmd == CTL_CHECK && !o->jti && !o->sid && !o->sub)
		return ctl_bad_usage(o, "check needs --jti, --sid or --sub");
	if ((o->has_ver || o->has_iat) && !o->sub)
		return ctl_bad_usage(o, "--ver and --iat need --sub");
	if (o->socket && o->config)
		return ctl_bad_usage(o, "--socket and --config both name the "
		                        "socket: give one");
	return CTL_OK;
}

static int
ctl_parse_args(ctl_opts *o, int argc, char **argv)
{
	unsigned seen = 0;
	bool words_only = false;
	int rc;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!words_only && strcmp(a, "--") == 0) {
			words_only = true;
			continue;
		}
		if (!words_only && strncmp(a, "--", 2) == 0)
			rc = ctl_take_option(o, argc, argv, &i, &seen);
		else if (!words_only && a[0] == '-' && a[1] != '\0')
			rc = ctl_bad_usage(o, "unknown option %s", a);
		else
			rc = ctl_take_word(o, a);
		if (rc != CTL_OK)
			return rc;
	}
	if (o->help || o->version)
		return CTL_OK;
	if (o->cmd == CTL_NO_CMD)
		return ctl_bad_usage(o, "no command given");
	if ((rc = ctl_check_scope(o, seen)) != CTL_OK)
		return rc;
	return ctl_check_opts(o);
}

/* ------------------------------------------------------------------------ */
/* Main                                                                     */
/* ------------------------------------------------------------------------ */

/* Socket path, frame limit and leeway from the agent's configuration. */
static int
ctl_load_config(ctl_opts *o, char *path, size_t path_len)
{
	agent_config *cfg = calloc(1, sizeof(*cfg));
	char err[AGENT_ERR_LEN];

	if (cfg == NULL)
		return ctl_fail(CTL_FAILED, "out of memory");
	if (agent_config_load(o->config, cfg, err, sizeof(err)) != REVOKD_OK) {
		free(cfg);
		return ctl_fail(CTL_USAGE, "--config: %s", err);
	}
	snprintf(path, path_len, "%s", cfg->admin_socket);
	if (!o->has_max_message)
		o->max_message = cfg->max_message;
	o->prune_leeway = cfg->prune_leeway;
	free(cfg);
	return CTL_OK;
}

/* Where the admin socket is: --socket, --config, $REVOKD_ADMIN_SOCKET. */
static int
ctl_socket_path(ctl_opts *o, char *path, size_t path_len)
{
	struct sockaddr_un sa;
	const char *env = getenv(CTL_SOCKET_ENV);
	int rc;

	if (o->config) {
		if ((rc = ctl_load_config(o, path, path_len)) != CTL_OK)
			return rc;
	} else {
		snprintf(path, path_len, "%s",
		    o->socket     ? o->socket
		    : env && *env ? env
		                  : CTL_SOCKET_DEFAULT);
	}
	if (strlen(path) >= sizeof(sa.sun_path))
		return ctl_bad_usage(o,
		    "socket path %s is longer than %zu "
		    "bytes",
		    path, sizeof(sa.sun_path) - 1);
	return CTL_OK;
}

int
main(int argc, char **argv)
{
	ctl_opts o = { .cmd = CTL_NO_CMD,
		.max_message = WIRE_MAX_FRAME_DEFAULT,
		.prune_leeway = CTL_PRUNE_LEEWAY_DEFAULT };
	char path[PATH_MAX];
	int rc;

	if ((rc = ctl_parse_args(&o, argc, argv)) != CTL_OK)
		return rc;
	if (o.help) {
		if (o.cmd != CTL_NO_CMD)
			ctl_command_usage(stdout, o.cmd);
		else
			ctl_usage(stdout);
		return ctl_output_ok() ? CTL_OK : CTL_FAILED;
	}
	if (o.version) {
		printf("revokectl %s\n", REVOKD_VERSION);
		return ctl_output_ok() ? CTL_OK : CTL_FAILED;
	}
	if ((rc = ctl_socket_path(&o, path, sizeof(path))) != CTL_OK)
		return rc;
	rc = ctl_runs[o.cmd](&o, path);
	if (!ctl_output_ok())
		rc = ctl_fail(CTL_FAILED, "cannot write the output: %s",
		    ferror(stdout) ? strerror(errno) : "out of memory");
	return rc;
}
