/*
 * revokectl_print.c: revokectl's output: its help, and its answers. Every
 * answer is printed either as
 * short lines for humans or, with --json, as one JSON object on one line
 * whose fields are named as in local.proto (times stay numbers, in the
 * proto's units; a verdict is its name). A dump prints one line, or one
 * object, per entry, so a large dump streams.
 *
 * Strings that came from the agent (regions, kinds) and identifiers that
 * came from the user are printed with control bytes escaped: a terminal
 * shows what was stored, never what it would interpret.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent/revokectl.h"
#include "common/revokd.h"

typedef Revokd__Local__PeerStatus PeerStatus;

/* Set when a JSON value could not be built (no memory). */
static bool ctl_print_failed;

int
ctl_fail(int status, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout); /* what was printed before comes first */
	fputs(CTL_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

bool
ctl_output_ok(void)
{
	return fflush(stdout) == 0 && !ferror(stdout) && !ctl_print_failed;
}

/* ------------------------------------------------------------------------ */
/* Help                                                                     */
/* ------------------------------------------------------------------------ */

#define CTL_HELP_EXP                                                           \
	"  --exp T         when the token expires (its exp claim): the entry " \
	"is\n"                                                                 \
	"                  kept until then plus the agent's prune_leeway\n"    \
	"                  (default: now + the agent's max_token_lifetime)\n"

#define CTL_HELP_WAIT                                                          \
	"  --wait all|N    answer only once every peer, or N peers, hold "     \
	"the\n"                                                                \
	"                  write\n"                                            \
	"  --timeout S     stop waiting after S seconds, decimals allowed\n"   \
	"                  (default 10)\n"

#define CTL_HELP_WRITE_OUT                                                     \
	"\n"                                                                   \
	"Prints the local batch, when it was committed and, with --wait, "     \
	"which\n"                                                              \
	"peers confirmed and how fast.\n"                                      \
	"\n"                                                                   \
	"Exit status: 0 committed (and the wait met); 1 refused, agent not\n"  \
	"reachable, or the wait not met in time (what was confirmed is "       \
	"printed;\n"                                                           \
	"the write is committed here all the same and keeps spreading); 2 "    \
	"bad\n"                                                                \
	"usage.\n"

#define CTL_HELP_EXIT                                                          \
	"\n"                                                                   \
	"Exit status: 0 done; 1 refused or agent not reachable; 2 bad "        \
	"usage.\n"

/* A command's words for the help. */
typedef struct ctl_help {
	const char *name;
	const char *operand;  /* what it takes ("JTI"), or NULL */
	const char *synopsis; /* after the name, for its usage line */
	const char *summary;  /* one line for the global help */
	const char *text;     /* the rest of its --help */
} ctl_help;

static const ctl_help ctl_helps[CTL_NO_CMD] = {
	[CTL_REVOKE_TOKEN] = { "revoke-token", "JTI",
	    "JTI [--exp T] [--reason R] [--wait all|N [--timeout S]]",
	    "revoke one token, by its jti claim",
	    "Revokes the token whose jti claim is JTI: on this agent at once, "
	    "and in\n"
	    "every other region as fast as replication carries it.\n"
	    "\n"
	    "options:\n" CTL_HELP_EXP
	    "  --reason R      a reason code kept with the entry, 0 to 255 "
	    "(default 0)\n" CTL_HELP_WAIT CTL_HELP_WRITE_OUT },
	[CTL_RESTORE_TOKEN] = { "restore-token", "JTI",
	    "JTI [--exp T] [--wait all|N [--timeout S]]",
	    "undo the revocation of a token",
	    "Restores the token whose jti claim is JTI: it is valid again "
	    "everywhere\n"
	    "until it is revoked again. A revocation concurrent with the "
	    "restore wins.\n"
	    "\n"
	    "options:\n" CTL_HELP_EXP CTL_HELP_WAIT CTL_HELP_WRITE_OUT },
	[CTL_REVOKE_SESSION] = { "revoke-session", "SID",
	    "SID [--exp T] [--reason R] [--wait all|N [--timeout S]]",
	    "revoke every token of a session (sid claim)",
	    "Revokes every token whose sid claim is SID.\n"
	    "\n"
	    "options:\n" CTL_HELP_EXP
	    "  --reason R      a reason code kept with the entry, 0 to 255 "
	    "(default 0)\n" CTL_HELP_WAIT CTL_HELP_WRITE_OUT },
	[CTL_RESTORE_SESSION] = { "restore-session", "SID",
	    "SID [--exp T] [--wait all|N [--timeout S]]",
	    "undo the revocation of a session",
	    "Restores the session SID: its tokens are valid again until it is\n"
	    "revoked again. A revocation concurrent with the restore wins.\n"
	    "\n"
	    "options:\n" CTL_HELP_EXP CTL_HELP_WAIT CTL_HELP_WRITE_OUT },
	[CTL_REVOKE_USER] = { "revoke-user", "SUB",
	    "SUB [--not-before now|T] [--no-bump] [--wait all|N [--timeout "
	    "S]]",
	    "revoke every token of a user issued so far",
	    "Revokes every token of the user SUB issued so far: bumps the "
	    "user's\n"
	    "version, so that tokens whose ver claim is below the new version "
	    "are\n"
	    "refused (bumps made in two regions at once add up), and with\n"
	    "--not-before also refuses tokens whose iat is before that time, "
	    "for\n"
	    "issuers that cannot put ver into their tokens.\n"
	    "\n"
	    "options:\n"
	    "  --not-before now|T  refuse tokens issued before T (unix "
	    "seconds, or\n"
	    "                  ISO-8601 UTC to the millisecond) or before now\n"
	    "  --no-bump       only set --not-before; leave the version alone\n"
	    "" CTL_HELP_WAIT "\n"
	    "Prints the user's version after the write, the not-before set, "
	    "the\n"
	    "batch, its commit time and, with --wait, which peers confirmed.\n"
	    "\n"
	    "Exit status: 0 committed (and the wait met); 1 refused, agent "
	    "not\n"
	    "reachable, or the wait not met in time; 2 bad usage.\n" },
	[CTL_CHECK] = { "check", NULL,
	    "[--jti J] [--sid S] [--sub U [--ver V] [--iat T]]",
	    "what a verifier would be told about a token",
	    "Asks what a verifier would be told about a token carrying these\n"
	    "claims; claims not given are not checked, and at least one of "
	    "--jti,\n"
	    "--sid and --sub is needed. Prints the verdict: VALID, "
	    "REVOKED_TOKEN,\n"
	    "REVOKED_SESSION, STALE_VERSION (ver below the user's version) or\n"
	    "REVOKED_NOT_BEFORE (iat before the user's not-before); then, "
	    "with --sub,\n"
	    "the user's version; and the staleness: how old the agent's "
	    "knowledge\n"
	    "may be.\n"
	    "\n"
	    "options:\n"
	    "  --jti J         the token's jti claim\n"
	    "  --sid S         its sid claim\n"
	    "  --sub U         its sub claim\n"
	    "  --ver V         its ver claim (with --sub)\n"
	    "  --iat T         its iat claim, unix seconds or ISO-8601 UTC "
	    "(with --sub)\n"
	    "\n"
	    "Exit status: 0 whatever the verdict (the verdict is the answer, "
	    "on\n"
	    "stdout); 1 no verdict (refused, agent not reachable); 2 bad "
	    "usage.\n" },
	[CTL_USER_VERSION] = { "user-version", "SUB", "SUB",
	    "a user's version and not-before, for issuers",
	    "Prints the version of the user SUB (what an issuer puts into the "
	    "ver\n"
	    "claim of new tokens), its not-before time or none, and the "
	    "staleness of\n"
	    "the answer.\n" CTL_HELP_EXIT },
	[CTL_STATUS] = { "status", NULL, "",
	    "the agent, its peers, lag and clock offsets",
	    "Prints the agent's region, id, cluster and version, its clock, "
	    "uptime,\n"
	    "staleness and number of entries, then a line per peer: connected "
	    "and\n"
	    "synced (its freshness claims count), round-trip time and clock "
	    "offset\n"
	    "(peer minus us) in ms, the age of its last acknowledgement, the\n"
	    "entries waiting to be sent to it, and how stale our knowledge of "
	    "its\n"
	    "writes is.\n" CTL_HELP_EXIT },
	[CTL_IMPORT] = { "import", "FILE", "FILE|-",
	    "bulk revocations from JSON lines (- for stdin)",
	    "Reads JSON lines from FILE, or from stdin for -, one object a "
	    "line:\n"
	    "  {\"kind\": \"jti\"|\"sid\"|\"sub\", \"id\": \"...\", ...}\n"
	    "jti and sid items may have\n"
	    "  \"exp\"         unix seconds or ISO-8601 UTC (default: now +\n"
	    "                max_token_lifetime)\n"
	    "  \"reason\"      0 to 255\n"
	    "  \"restore\"     true to restore instead of revoke\n"
	    "sub items may have\n"
	    "  \"not_before\"  unix milliseconds, ISO-8601 UTC, or \"now\"\n"
	    "  \"bump\"        bump the user's version (default: true without\n"
	    "                not_before, false with it)\n"
	    "Blank lines are skipped, other keys are errors. Items whose exp "
	    "is more\n"
	    "than the agent's prune_leeway in the past (from --config, else "
	    "300 s)\n"
	    "are skipped and counted: those tokens are dead.\n"
	    "\n"
	    "Items are sent as they are read, in requests of up to 10,000 "
	    "items\n"
	    "(and --max-message bytes), several in flight; the agent commits "
	    "each\n"
	    "request in one transaction. Input is read and checked one "
	    "request\n"
	    "ahead, so a bad line stops the import having sent only the "
	    "requests\n"
	    "before it; the message says how far it got. A request the agent\n"
	    "refuses is named by its lines.\n"
	    "\n"
	    "Exit status: 0 all imported; 1 a request was refused, the agent "
	    "not\n"
	    "reachable, or the input not readable; 2 bad usage or a bad "
	    "line.\n" },
	[CTL_DUMP] = { "dump", NULL, "", "every entry, by pseudonymous key",
	    "Prints every entry the agent holds, in key order. Keys are "
	    "pseudonymous\n"
	    "(an HMAC of the identifier under the cluster secret): identifiers "
	    "are\n"
	    "never stored. Tokens and sessions: key, kind, expiry, revoked or\n"
	    "restored and when (HLC time), origin region id and reason. "
	    "Users: key,\n"
	    "kind, version and not-before. With --json, one object a line per "
	    "entry.\n" CTL_HELP_EXIT },
};

const char *
ctl_command_name(ctl_cmd cmd)
{
	return ctl_helps[cmd].name;
}

const char *
ctl_command_operand(ctl_cmd cmd)
{
	return ctl_helps[cmd].operand;
}

void
ctl_usage(FILE *f)
{
	fprintf(f,
	    "usage: revokectl [OPTIONS] COMMAND [ARGS]\n"
	    "\n"
	    "The admin tool of revokd: revokes and restores tokens, sessions "
	    "and\n"
	    "users, checks tokens and inspects the agent, over its admin "
	    "socket.\n"
	    "\n"
	    "commands:\n");
	for (size_t i = 0; i < CTL_NO_CMD; i++) {
		char head[40];

		snprintf(head, sizeof(head), "%s %s", ctl_helps[i].name,
		    ctl_helps[i].operand ? ctl_helps[i].operand : "");
		fprintf(f, "  %-22s %s\n", head, ctl_helps[i].summary);
	}
	fprintf(f,
	    "\n"
	    "options (before or after the command):\n"
	    "  --socket PATH      the admin socket (default: "
	    "$" CTL_SOCKET_ENV ",\n"
	    "                     else " CTL_SOCKET_DEFAULT ")\n"
	    "  --config FILE      take admin_socket, max_message and "
	    "prune_leeway\n"
	    "                     from the agent's configuration file\n"
	    "  --max-message N    largest frame sent or received, bytes "
	    "(default\n"
	    "                     1048576, or the configuration's)\n"
	    "  --json             JSON output: one object per answer, one per "
	    "line\n"
	    "                     per entry for dump\n"
	    "  --help             this text; revokectl COMMAND --help for a "
	    "command\n"
	    "  --version          the version\n"
	    "\n"
	    "Times T are unix seconds or ISO-8601 UTC (2026-11-22T13:00:00Z).\n"
	    "An identifier that starts with '-' goes after '--'.\n"
	    "\n"
	    "Exit status: 0 done; 1 the agent refused or failed the request, "
	    "could\n"
	    "not be reached, or a --wait was not met; 2 bad usage or bad "
	    "input.\n"
	    "check exits 0 whatever the verdict: the verdict is the answer.\n");
}

/*
 * "usage: revokectl NAME SYNOPSIS", wrapped before a top-level "[" when it
 * would pass 80 columns, continuation lines aligned under the synopsis.
 */
static void
ctl_usage_line(FILE *f, const ctl_help *cmd)
{
	const char *rest = cmd->synopsis;
	int indent =
	    fprintf(f, "usage: revokectl %s%s", cmd->name, *rest ? " " : "");

	while ((int)strlen(rest) > 80 - indent) {
		const char *cut = NULL;
		int depth = 0;

		for (const char *p = rest; p < rest + (80 - indent); p++) {
			if (*p == '[' && depth++ == 0 && p > rest)
				cut = p;
			else if (*p == ']')
				depth--;
		}
		if (cut == NULL)
			break;
		fprintf(f, "%.*s\n%*s", (int)(cut - rest - 1), rest, indent,
		    "");
		rest = cut;
	}
	fprintf(f, "%s\n", rest);
}

void
ctl_command_usage(FILE *f, ctl_cmd c)
{
	const ctl_help *cmd = &ctl_helps[c];

	ctl_usage_line(f, cmd);
	fprintf(f, "\n%s", cmd->text);
	fprintf(f, "\nGlobal options (--socket, --config, --max-message, "
	           "--json): revokectl --help.\n");
}

/* ------------------------------------------------------------------------ */
/* Writing values                                                           */
/* ------------------------------------------------------------------------ */

/* A staleness for humans: "12 ms", or "unknown, never synced". */
static const char *
ctl_format_staleness(uint64_t ms, char *buf, size_t len)
{
	if (revokd_age_unknown(ms, revokd_clock_ms()))
		snprintf(buf, len, "unknown, never synced");
	else
		snprintf(buf, len, "%" PRIu64 " ms", ms);
	return buf;
}

/* A duration for humans: "34 ms", "4.2 s", "3m 12s", "2h 5m", "3d 4h". */
static const char *
ctl_format_age(uint64_t ms, char *buf, size_t len)
{
	uint64_t s = ms / 1000;

	if (ms < 1000)
		snprintf(buf, len, "%" PRIu64 " ms", ms);
	else if (s < 60)
		snprintf(buf, len, "%.1f s", (double)ms / 1000.0);
	else if (s < 3600)
		snprintf(buf, len, "%" PRIu64 "m %" PRIu64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRIu64 "h %" PRIu64 "m", s / 3600,
		    s / 60 % 60);
	else
		snprintf(buf, len, "%" PRIu64 "d %" PRIu64 "h", s / 86400,
		    s / 3600 % 24);
	return buf;
}

static const char *
ctl_enum_name(const ProtobufCEnumDescriptor *d, const char *what, int v,
    char *buf, size_t len)
{
	const ProtobufCEnumValue *ev =
	    protobuf_c_enum_descriptor_get_value(d, v);

	if (ev != NULL)
		return ev->name;
	snprintf(buf, len, "%s_%d", what, v); /* from a newer agent */
	return buf;
}

const char *
ctl_verdict_name(int verdict, char *buf, size_t len)
{
	return ctl_enum_name(&revokd__local__verdict__descriptor, "VERDICT",
	    verdict, buf, len);
}

const char *
ctl_error_name(int code, char *buf, size_t len)
{
	return ctl_enum_name(&revokd__local__error_code__descriptor, "ERROR",
	    code, buf, len);
}

/* s with control bytes, backslashes and (when quoted) quotes escaped. */
static void
ctl_put_escaped(const char *s, bool quoted)
{
	if (quoted)
		putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			printf("\\x%02x", *p);
		else if (*p == '\\' || (quoted && *p == '"'))
			printf("\\%c", *p);
		else
			putchar(*p);
	}
	if (quoted)
		putchar('"');
}

static void
ctl_put_plain(const char *s)
{
	ctl_put_escaped(s != NULL ? s : "", false);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                     */
/* ------------------------------------------------------------------------ */

/* JSON has no unsigned 64-bit integers; nothing real comes near 2^63. */
static json_t *
ctl_json_u64(uint64_t v)
{
	return json_integer(
	    v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* A string from the agent; one that is not UTF-8 is replaced, not lost. */
static json_t *
ctl_json_str(const char *s)
{
	json_t *v = json_string(s != NULL ? s : "");

	return v != NULL ? v : json_string("(not UTF-8)");
}

static void
ctl_json_set(json_t *o, const char *key, json_t *v)
{
	if (o == NULL || v == NULL || json_object_set_new(o, key, v) != 0)
		ctl_print_failed = true;
}

/* Print o on one line and release it. */
static void
ctl_json_emit(json_t *o)
{
	if (o == NULL || ctl_print_failed ||
	    json_dumpf(o, stdout, JSON_COMPACT) != 0)
		ctl_print_failed = true;
	else
		putchar('\n');
	json_decref(o);
}

/* ------------------------------------------------------------------------ */
/* Writes                                                                   */
/* ------------------------------------------------------------------------ */

static void
ctl_write_json(const Revokd__Local__WriteResult *r)
{
	json_t *o = json_object(), *confs = json_array();

	ctl_json_set(o, "batch", ctl_json_u64(r->batch));
	ctl_json_set(o, "committed_ms", ctl_json_u64(r->committed_ms));
	ctl_json_set(o, "version", ctl_json_u64(r->version));
	for (size_t i = 0; i < r->n_confirmations && confs != NULL; i++) {
		json_t *c = json_object();

		ctl_json_set(c, "region",
		    ctl_json_str(r->confirmations[i]->region));
		ctl_json_set(c, "after_ms",
		    ctl_json_u64(r->confirmations[i]->after_ms));
		if (c == NULL || json_array_append_new(confs, c) != 0)
			ctl_print_failed = true;
	}
	ctl_json_set(o, "confirmations", confs);
	ctl_json_set(o, "timed_out", json_boolean(r->timed_out));
	ctl_json_set(o, "items", ctl_json_u64(r->items));
	ctl_json_emit(o);
}

static void
ctl_put_confirmations(const Revokd__Local__WriteResult *r)
{
	if (r->n_confirmations == 0)
		return;
	printf("; confirmed by ");
	for (size_t i = 0; i < r->n_confirmations; i++) {
		printf("%s", i ? ", " : "");
		ctl_put_plain(r->confirmations[i]->region);
		printf(" in %" PRIu64 " ms", r->confirmations[i]->after_ms);
	}
}

void
ctl_print_write(bool json, const ctl_write_what *w,
    const Revokd__Local__WriteResult *r)
{
	char t[REVOKD_TIME_LEN];

	if (json) {
		ctl_write_json(r);
		return;
	}
	printf("%s %s ", w->verb, w->kind);
	ctl_put_escaped(w->id, true);
	if (w->user) {
		printf(": version %" PRIu64 "%s", r->version,
		    w->bumped ? "" : " (not bumped)");
		if (w->not_before_ms)
			printf(", not-before %s",
			    revokd_format_ms(w->not_before_ms, t, sizeof(t)));
	}
	printf(" (batch %" PRIu64 ", committed %s)", r->batch,
	    revokd_format_ms(r->committed_ms, t, sizeof(t)));
	ctl_put_confirmations(r);
	putchar('\n');
}

void
ctl_print_import(bool json, uint64_t items, uint64_t requests, uint64_t skipped)
{
	json_t *o;

	if (!json) {
		printf("imported %" PRIu64 " item%s in %" PRIu64 " request%s",
		    items, items == 1 ? "" : "s", requests,
		    requests == 1 ? "" : "s");
		if (skipped)
			printf("; skipped %" PRIu64 " already expired",
			    skipped);
		putchar('\n');
		return;
	}
	o = json_object();
	ctl_json_set(o, "items", ctl_json_u64(items));
	ctl_json_set(o, "requests", ctl_json_u64(requests));
	ctl_json_set(o, "skipped_expired", ctl_json_u64(skipped));
	ctl_json_emit(o);
}

/* ------------------------------------------------------------------------ */
/* Queries                                                                  */
/* ------------------------------------------------------------------------ */

void
ctl_print_check(bool json, bool with_version,
    const Revokd__Local__CheckResult *r)
{
	char name[32], st[32];
	const char *verdict = ctl_verdict_name(r->verdict, name, sizeof(name));
	json_t *o;

	if (!json) {
		printf("%s (", verdict);
		if (with_version)
			printf("version %" PRIu64 ", ", r->version);
		printf("staleness %s)\n",
		    ctl_format_staleness(r->staleness_ms, st, sizeof(st)));
		return;
	}
	o = json_object();
	ctl_json_set(o, "verdict", json_string(verdict));
	ctl_json_set(o, "version", ctl_json_u64(r->version));
	ctl_json_set(o, "staleness_ms", ctl_json_u64(r->staleness_ms));
	ctl_json_emit(o);
}

void
ctl_print_version(bool json, const Revokd__Local__VersionResult *r)
{
	char t[REVOKD_TIME_LEN], st[32];
	json_t *o;

	if (!json) {
		printf("version %" PRIu64 ", not-before %s, staleness %s\n",
		    r->version,
		    r->not_before_ms
		        ? revokd_format_ms(r->not_before_ms, t, sizeof(t))
		        : "none",
		    ctl_format_staleness(r->staleness_ms, st, sizeof(st)));
		return;
	}
	o = json_object();
	ctl_json_set(o, "version", ctl_json_u64(r->version));
	ctl_json_set(o, "not_before_ms", ctl_json_u64(r->not_before_ms));
	ctl_json_set(o, "staleness_ms", ctl_json_u64(r->staleness_ms));
	ctl_json_emit(o);
}

/* ------------------------------------------------------------------------ */
/* Status                                                                   */
/* ------------------------------------------------------------------------ */

static json_t *
ctl_peer_json(const PeerStatus *p)
{
	json_t *o = json_object();

	ctl_json_set(o, "region", ctl_json_str(p->region));
	ctl_json_set(o, "connected", json_boolean(p->connected));
	ctl_json_set(o, "synced", json_boolean(p->synced));
	ctl_json_set(o, "has_clock", json_boolean(p->has_clock));
	ctl_json_set(o, "offset_us", json_integer(p->offset_us));
	ctl_json_set(o, "rtt_us", ctl_json_u64(p->rtt_us));
	ctl_json_set(o, "last_ack_age_ms", ctl_json_u64(p->last_ack_age_ms));
	ctl_json_set(o, "backlog", ctl_json_u64(p->backlog));
	ctl_json_set(o, "watermark_age_ms", ctl_json_u64(p->watermark_age_ms));
	ctl_json_set(o, "bytes_sent", ctl_json_u64(p->bytes_sent));
	ctl_json_set(o, "bytes_received", ctl_json_u64(p->bytes_received));
	return o;
}

static void
ctl_status_json(const Revokd__Local__StatusResult *r)
{
	json_t *o = json_object(), *peers = json_array();

	ctl_json_set(o, "region", ctl_json_str(r->region));
	ctl_json_set(o, "region_id", json_integer(r->region_id));
	ctl_json_set(o, "cluster", ctl_json_str(r->cluster));
	ctl_json_set(o, "version", ctl_json_str(r->version));
	ctl_json_set(o, "server_time_ms", ctl_json_u64(r->server_time_ms));
	ctl_json_set(o, "uptime_s", ctl_json_u64(r->uptime_s));
	ctl_json_set(o, "staleness_ms", ctl_json_u64(r->staleness_ms));
	ctl_json_set(o, "entries", ctl_json_u64(r->entries));
	for (size_t i = 0; i < r->n_peers && peers != NULL; i++) {
		json_t *p = ctl_peer_json(r->peers[i]);

		if (p == NULL || json_array_append_new(peers, p) != 0)
			ctl_print_failed = true;
	}
	ctl_json_set(o, "peers", peers);
	ctl_json_emit(o);
}

/* Widest region name among the peers, for the table's first column. */
static int
ctl_region_width(const Revokd__Local__StatusResult *r)
{
	size_t w = strlen("peer");

	for (size_t i = 0; i < r->n_peers; i++) {
		size_t n =
		    r->peers[i]->region ? strlen(r->peers[i]->region) : 0;

		w = n > w ? n : w;
	}
	return w > 64 ? 64 : (int)w;
}

static void
ctl_peer_row(const PeerStatus *p, int width)
{
	char rtt[24] = "-", off[24] = "-", ack[24] = "never", wm[24];
	const char *state = !p->connected ? "disconnected"
	                    : p->synced   ? "connected, synced"
	                                  : "connected, syncing";
	int pad = width - (int)strlen(p->region ? p->region : "");

	if (p->has_clock) {
		snprintf(rtt, sizeof(rtt), "%.1f", (double)p->rtt_us / 1000.0);
		/* Under 0.05 ms either way is "0.0", never "-0.0". */
		snprintf(off, sizeof(off), "%+.1f",
		    p->offset_us > -50 && p->offset_us < 50
		        ? 0.0
		        : (double)p->offset_us / 1000.0);
	}
	if (p->last_ack_age_ms)
		ctl_format_age(p->last_ack_age_ms, ack, sizeof(ack));
	if (revokd_age_unknown(p->watermark_age_ms, revokd_clock_ms()))
		snprintf(wm, sizeof(wm), "never");
	else
		ctl_format_age(p->watermark_age_ms, wm, sizeof(wm));
	ctl_put_plain(p->region);
	printf("%*s  %-18s  %6s  %9s  %8s  %7" PRIu64 "  %13s\n",
	    pad > 0 ? pad : 0, "", state, rtt, off, ack, p->backlog, wm);
}

void
ctl_print_status(bool json, const Revokd__Local__StatusResult *r)
{
	char t[REVOKD_TIME_LEN], up[32];
	int width;

	if (json) {
		ctl_status_json(r);
		return;
	}
	printf("region       ");
	ctl_put_plain(r->region);
	printf(" (id %" PRIu32 ")\ncluster      ", r->region_id);
	ctl_put_plain(r->cluster);
	printf("\nversion      ");
	ctl_put_plain(r->version);
	printf("\nserver time  %s\n",
	    revokd_format_ms(r->server_time_ms, t, sizeof(t)));
	printf("uptime       %s\n",
	    ctl_format_age(r->uptime_s * 1000, up, sizeof(up)));
	printf("staleness    %s\n",
	    ctl_format_staleness(r->staleness_ms, up, sizeof(up)));
	printf("entries      %" PRIu64 "\n", r->entries);
	if (r->n_peers == 0) {
		printf("\nno peers configured\n");
		return;
	}
	width = ctl_region_width(r);
	printf("\n%-*s  %-18s  %6s  %9s  %8s  %7s  %13s\n", width, "peer",
	    "state", "rtt ms", "offset ms", "last ack", "backlog",
	    "watermark age");
	for (size_t i = 0; i < r->n_peers; i++)
		ctl_peer_row(r->peers[i], width);
}

/* ------------------------------------------------------------------------ */
/* Dump                                                                     */
/* ------------------------------------------------------------------------ */

static void
ctl_hex(const ProtobufCBinaryData *b, char *out, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	size_t n = 0;

	for (size_t i = 0; i < b->len && n + 2 < len; i++) {
		out[n++] = digits[b->data[i] >> 4];
		out[n++] = digits[b->data[i] & 15];
	}
	out[n] = '\0';
}

static bool
ctl_is_token_kind(const char *kind)
{
	return kind != NULL &&
	       (strcmp(kind, "jti") == 0 || strcmp(kind, "sid") == 0);
}

static void
ctl_dump_json(const Revokd__Local__DumpEntry *e, const char *key)
{
	json_t *o = json_object();

	ctl_json_set(o, "key", json_string(key));
	ctl_json_set(o, "kind", ctl_json_str(e->kind));
	ctl_json_set(o, "exp", json_integer(e->exp));
	ctl_json_set(o, "revoked", json_boolean(e->revoked));
	ctl_json_set(o, "revoked_at_ms", ctl_json_u64(e->revoked_at_ms));
	ctl_json_set(o, "restored_at_ms", ctl_json_u64(e->restored_at_ms));
	ctl_json_set(o, "origin", json_integer(e->origin));
	ctl_json_set(o, "reason", json_integer(e->reason));
	ctl_json_set(o, "version", ctl_json_u64(e->version));
	ctl_json_set(o, "not_before_ms", ctl_json_u64(e->not_before_ms));
	ctl_json_emit(o);
}

static void
ctl_dump_token(const Revokd__Local__DumpEntry *e)
{
	char t[REVOKD_TIME_LEN];

	printf("  exp %s", revokd_format_s(e->exp, t, sizeof(t)));
	if (e->revoked) {
		printf("  revoked %s",
		    revokd_format_ms(e->revoked_at_ms, t, sizeof(t)));
	} else {
		printf("  restored %s",
		    revokd_format_ms(e->restored_at_ms, t, sizeof(t)));
		if (e->revoked_at_ms)
			printf(" (revoked %s)",
			    revokd_format_ms(e->revoked_at_ms, t, sizeof(t)));
	}
	printf("  origin %" PRIu32 "  reason %" PRIu32 "\n", e->origin,
	    e->reason);
}

void
ctl_print_dump_entry(bool json, const Revokd__Local__DumpEntry *e)
{
	char key[2 * 64 + 1], t[REVOKD_TIME_LEN];

	ctl_hex(&e->key, key, sizeof(key));
	if (json) {
		ctl_dump_json(e, key);
		return;
	}
	printf("%s  ", key);
	ctl_put_plain(e->kind);
	if (ctl_is_token_kind(e->kind)) {
		ctl_dump_token(e);
		return;
	}
	printf("  version %" PRIu64 "  not-before %s\n", e->version,
	    e->not_before_ms ? revokd_format_ms(e->not_before_ms, t, sizeof(t))
	                     : "none");
}
