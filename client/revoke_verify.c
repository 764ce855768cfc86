/*
 * revoke-verify: verifies one JWT as a service linked with librevoke
 * would, and says why it is refused. Its signature is checked against a
 * JWKS file, its claims against the options, and its revocation by asking
 * the local agent over the query socket (or by reading the agent's data
 * dir directly). It verifies through librevoke's public API (revoke.h)
 * alone, so it is also an example of that API; of the rest of the project
 * it takes only what every command line shares: times and numbers read
 * and written as text (common/revokd.h).
 *
 * Exit status: 0 the token is good; 1 it is refused (every reason but
 * UNAVAILABLE); 2 bad usage or bad input; 3 verification could not run
 * (the JWKS file unusable, the agent unreachable or failing, the data dir
 * or the secret unreadable, stdout unwritable). A revocation source that
 * cannot be opened stops the run before the token is looked at: the
 * status then says nothing about the token.
 *
 * Output: the verdict, the claims and the revocation answer, on stdout,
 * as lines for humans or, with --json, as one JSON object on one line.
 * Errors go to stderr, one line each, prefixed "revoke-verify: ". A
 * time-related refusal (EXPIRED, NOT_YET_VALID, ISSUED_IN_FUTURE,
 * TOO_OLD) adds one stderr line with the times and the drift that the
 * verifier's log callback reported; with --json they go into the object's
 * "time" member instead.
 *
 * Claims come from the token, so from anyone: they are printed with
 * control bytes escaped, and a terminal never interprets them.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "common/revokd.h"
#include "revoke.h"

/* The name of this program, the prefix of every error line. */
#define VFY_NAME "revoke-verify"

/* Where the query socket is when nothing says otherwise. */
#define VFY_SOCKET_ENV "REVOKD_QUERY_SOCKET"
#define VFY_SOCKET_DEFAULT "/run/revokd/query.sock"

/* The longest token taken, bytes (after trimming). */
#define VFY_TOKEN_MAX (64u << 10)

/* The verifier's limits: its leeway tops out at 120 s. */
#define VFY_LEEWAY_MAX 120
#define VFY_LEEWAY_DEFAULT 30

/* Longest --timeout: an hour, in ms. */
#define VFY_TIMEOUT_MAX 3600000u

/* Exit statuses. */
enum { VFY_OK = 0, VFY_REFUSED = 1, VFY_USAGE = 2, VFY_UNAVAILABLE = 3 };

/* ------------------------------------------------------------------------ */
/* Options                                                                  */
/* ------------------------------------------------------------------------ */

/* What the command line asked for. */
typedef struct vfy_opts {
	const char *jwks;     /* --jwks */
	const char *socket;   /* --socket */
	const char *data_dir; /* --data-dir */
	const char *secret;   /* --secret */
	const char *issuer, *audience;
	unsigned algorithms;       /* REVOKE_ALG_*; 0: all */
	const char *alg_list;      /* --alg as given */
	int leeway_s;              /* 0: the default */
	int64_t max_age_s;         /* 0: none */
	uint64_t max_staleness_ms; /* 0: no policy */
	int64_t now;               /* 0: the clock */
	int timeout_ms;            /* 0: the library's default */
	bool no_revocation, json, help, version;
	const char *token; /* the argument; NULL or "-": stdin */
} vfy_opts;

/*
 * What an option does: a flag sets a bool of vfy_opts (set: NULL; flag:
 * its offset); any other takes a value, and its setter returns NULL or
 * what was wrong with the value.
 */
typedef struct vfy_option {
	const char *(*set)(vfy_opts *o, const char *value);
	size_t flag; /* offsetof the bool a flag sets */
} vfy_option;

static int vfy_fail(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Print "revoke-verify: MESSAGE" on stderr; returns status. */
static int
vfy_fail(int status, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout); /* what was printed before comes first */
	fputs(VFY_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return status;
}

static int vfy_bad_usage(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));

/* One line naming the problem; returns VFY_USAGE. */
static int
vfy_bad_usage(const char *fmt, ...)
{
	va_list ap;

	fputs(VFY_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see " VFY_NAME " --help)\n", stderr);
	return VFY_USAGE;
}

/* ------------------------------------------------------------------------ */
/* Times                                                                    */
/* ------------------------------------------------------------------------ */

/* 0000-01-01T00:00:00Z: the first time ISO-8601 writes in four digits. */
#define VFY_YEAR_0_S (-62167219200)

/* A unix time as ISO-8601 UTC, into buf; "out of range" past 0 to 9999. */
static const char *
vfy_format_s(int64_t s, char *buf, size_t len)
{
	if (s < VFY_YEAR_0_S || s > (int64_t)REVOKD_TIME_MAX_S)
		snprintf(buf, len, "out of range");
	else
		revokd_format_s(s, buf, len);
	return buf;
}

/* ------------------------------------------------------------------------ */
/* Option setters                                                           */
/* ------------------------------------------------------------------------ */

static const char *
vfy_set_path(const char **field, const char *v)
{
	if (*v == '\0')
		return "expected a path";
	*field = v;
	return NULL;
}

static const char *
vfy_set_jwks(vfy_opts *o, const char *v)
{
	return vfy_set_path(&o->jwks, v);
}

static const char *
vfy_set_socket(vfy_opts *o, const char *v)
{
	struct sockaddr_un sa;

	if (strlen(v) >= sizeof(sa.sun_path))
		return "a socket path is at most 107 bytes";
	return vfy_set_path(&o->socket, v);
}

static const char *
vfy_set_data_dir(vfy_opts *o, const char *v)
{
	return vfy_set_path(&o->data_dir, v);
}

static const char *
vfy_set_secret(vfy_opts *o, const char *v)
{
	return vfy_set_path(&o->secret, v);
}

static const char *
vfy_set_issuer(vfy_opts *o, const char *v)
{
	if (*v == '\0')
		return "expected the issuer the iss claim must equal";
	o->issuer = v;
	return NULL;
}

static const char *
vfy_set_audience(vfy_opts *o, const char *v)
{
	if (*v == '\0')
		return "expected the audience the aud claim must hold";
	o->audience = v;
	return NULL;
}

/* One algorithm's bit from its name, s[0..len); 0 when unknown. */
static unsigned
vfy_alg_bit(const char *s, size_t len)
{
	static const struct {
		const char *name;
		unsigned bit;
	} algs[] = { { "ES256", REVOKE_ALG_ES256 },
		{ "RS256", REVOKE_ALG_RS256 }, { "EdDSA", REVOKE_ALG_EDDSA } };

	for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
		if (strlen(algs[i].name) == len &&
		    strncasecmp(algs[i].name, s, len) == 0)
			return algs[i].bit;
	return 0;
}

static const char *
vfy_set_alg(vfy_opts *o, const char *v)
{
	unsigned set = 0;

	for (const char *p = v;;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		unsigned bit = vfy_alg_bit(p, len);

		if (bit == 0)
			return "expected a comma-separated list of ES256, "
			       "RS256 and EdDSA";
		set |= bit;
		if (comma == NULL)
			break;
		p = comma + 1;
	}
	o->algorithms = set;
	o->alg_list = v;
	return NULL;
}

static const char *
vfy_set_leeway(vfy_opts *o, const char *v)
{
	uint64_t s;

	if (!revokd_parse_u64(v, VFY_LEEWAY_MAX, &s))
		return "expected seconds from 0 to 120";
	o->leeway_s = s == 0 ? REVOKE_LEEWAY_NONE : (int)s;
	return NULL;
}

static const char *
vfy_set_max_age(vfy_opts *o, const char *v)
{
	uint64_t s;

	if (!revokd_parse_u64(v, REVOKD_TIME_MAX_S, &s) || s == 0)
		return "expected seconds above 0";
	o->max_age_s = (int64_t)s;
	return NULL;
}

static const char *
vfy_set_max_staleness(vfy_opts *o, const char *v)
{
	if (!revokd_parse_u64(v, UINT64_MAX, &o->max_staleness_ms) ||
	    o->max_staleness_ms == 0)
		return "expected milliseconds above 0";
	return NULL;
}

static const char *
vfy_set_now(vfy_opts *o, const char *v)
{
	uint64_t s;

	if (revokd_parse_u64(v, REVOKD_TIME_MAX_S, &s) && s > 0) {
		o->now = (int64_t)s;
		return NULL;
	}
	if (revokd_parse_iso_s(v, &o->now) && o->now > 0)
		return NULL;
	return "expected unix seconds or an ISO-8601 UTC time like "
	       "2026-11-22T13:00:00Z";
}

static const char *
vfy_set_timeout(vfy_opts *o, const char *v)
{
	uint64_t ms;

	if (!revokd_parse_u64(v, VFY_TIMEOUT_MAX, &ms) || ms == 0)
		return "expected milliseconds from 1 to 3600000";
	o->timeout_ms = (int)ms;
	return NULL;
}

/*
 * The options, once: VALUE(ID, name, setter) or FLAG(ID, name, field).
 * VFY_OPT_ID indexes the tables made from this list; the order is that of
 * the checks that name the first one given.
 */
#define VFY_OPTIONS(VALUE, FLAG)                                               \
	VALUE(JWKS, "jwks", vfy_set_jwks)                                      \
	VALUE(SOCKET, "socket", vfy_set_socket)                                \
	VALUE(DATA_DIR, "data-dir", vfy_set_data_dir)                          \
	VALUE(SECRET, "secret", vfy_set_secret)                                \
	FLAG(NO_REVOCATION, "no-revocation", no_revocation)                    \
	VALUE(ISSUER, "issuer", vfy_set_issuer)                                \
	VALUE(AUDIENCE, "audience", vfy_set_audience)                          \
	VALUE(ALG, "alg", vfy_set_alg)                                         \
	VALUE(LEEWAY, "leeway", vfy_set_leeway)                                \
	VALUE(MAX_AGE, "max-age", vfy_set_max_age)                             \
	VALUE(MAX_STALENESS, "max-staleness", vfy_set_max_staleness)           \
	VALUE(NOW, "now", vfy_set_now)                                         \
	VALUE(TIMEOUT, "timeout", vfy_set_timeout)                             \
	FLAG(JSON, "json", json)                                               \
	FLAG(HELP, "help", help)                                               \
	FLAG(VERSION, "version", version)

enum {
#define VFY__OPT_ENUM(id, name, x) VFY_OPT_##id,
	VFY_OPTIONS(VFY__OPT_ENUM, VFY__OPT_ENUM)
#undef VFY__OPT_ENUM
	    VFY_N_OPTIONS
};

#define VFY_SEEN(opt) (1u << (opt))

/* What getopt_long returns for option opt: above any character it does. */
#define VFY_OPT_VAL(opt) (0x100 + (opt))

/* The names, for getopt_long. */
static const struct option vfy_getopt[VFY_N_OPTIONS + 1] = {
#define VFY__GETOPT_VALUE(id, name, x)                                         \
	[VFY_OPT_##id] = { name, required_argument, NULL,                      \
		VFY_OPT_VAL(VFY_OPT_##id) },
#define VFY__GETOPT_FLAG(id, name, x)                                          \
	[VFY_OPT_##id] = { name, no_argument, NULL, VFY_OPT_VAL(VFY_OPT_##id) },
	VFY_OPTIONS(VFY__GETOPT_VALUE, VFY__GETOPT_FLAG)
#undef VFY__GETOPT_VALUE
#undef VFY__GETOPT_FLAG
	    [VFY_N_OPTIONS] = { NULL, 0, NULL, 0 },
};

/* What each option does. */
static const vfy_option vfy_options[VFY_N_OPTIONS] = {
#define VFY__SET_VALUE(id, name, set) [VFY_OPT_##id] = { set, 0 },
#define VFY__SET_FLAG(id, name, field)                                         \
	[VFY_OPT_##id] = { NULL, offsetof(vfy_opts, field) },
	VFY_OPTIONS(VFY__SET_VALUE, VFY__SET_FLAG)
#undef VFY__SET_VALUE
#undef VFY__SET_FLAG
};

/* ------------------------------------------------------------------------ */
/* The command line                                                         */
/* ------------------------------------------------------------------------ */

/* --help. */
static const char vfy_help[] =
    "usage: revoke-verify --jwks FILE [OPTIONS] [TOKEN|-]\n"
    "\n"
    "Verifies one JWT (a compact JWS) as a service linked with librevoke\n"
    "would: its signature against a JWKS file, its claims, then whether it\n"
    "was revoked, by asking the local revokd over its query socket or by\n"
    "reading the agent's data dir directly. Prints the verdict and the\n"
    "claims. The token is TOKEN, or is read from stdin when TOKEN is absent\n"
    "or \"-\"; whitespace around it is ignored.\n"
    "\n"
    "options:\n"
    "  --jwks FILE         the verification keys, a JWKS file (required)\n"
    "  --socket PATH       the agent's query socket (default:\n"
    "                      $" VFY_SOCKET_ENV ", else " VFY_SOCKET_DEFAULT ")\n"
    "  --data-dir DIR      read the agent's store in DIR directly instead\n"
    "  --secret FILE       the cluster secret, with --data-dir (32 bytes,\n"
    "                      not readable by group or others)\n"
    "  --no-revocation     check the signature and the claims only\n"
    "  --timeout MS        wait for the agent at most MS ms per call\n"
    "                      (default 1000)\n"
    "  --max-staleness MS  refuse (STALE_STATE) when the agent's knowledge\n"
    "                      may be older than MS ms\n"
    "  --issuer S          the iss claim must be S\n"
    "  --audience S        the aud claim must hold S\n"
    "  --alg LIST          the algorithms accepted, comma-separated from\n"
    "                      ES256, RS256 and EdDSA (default: all three)\n"
    "  --leeway S          clock skew allowed on exp, nbf and iat, 0 to 120\n"
    "                      seconds (default 30)\n"
    "  --max-age S         refuse tokens issued (iat) more than S seconds ago\n"
    "  --now T             verify the claims at T (unix seconds, or ISO-8601\n"
    "                      UTC like 2026-11-22T13:00:00Z) instead of the\n"
    "                      clock; revocation is still checked as of now\n"
    "  --json              one JSON object on one line\n"
    "  --help              this text\n"
    "  --version           the version\n"
    "\n"
    "Output: \"VALID\" or \"REFUSED: REASON (why)\"; the claims, absent ones "
    "as\n"
    "\"(none)\", times as unix seconds and ISO-8601 UTC; then the revocation\n"
    "answer: the verdict, the user's version, and the staleness (how old the\n"
    "agent's knowledge may be). A refusal for time (EXPIRED, NOT_YET_VALID,\n"
    "ISSUED_IN_FUTURE, TOO_OLD) adds one line on stderr with the times and\n"
    "the drift: how far the clock would have to move for the token to pass,\n"
    "leeway included.\n"
    "\n"
    "With --json, one object: {\"valid\", \"reason\", \"message\", \"claims\": "
    "{alg,\n"
    "kid, iss, sub, jti, sid, iat, nbf, exp, ver: null when absent},\n"
    "\"revocation\": {checked, verdict, version, staleness_ms}}; a refusal "
    "for\n"
    "time adds \"time\": {server_time, iat, nbf, exp, drift_s} instead of the\n"
    "stderr line, and a revocation check that fails adds \"error\".\n"
    "\n"
    "Exit status: 0 the token is good; 1 the token is refused (any reason but\n"
    "UNAVAILABLE); 2 bad usage or bad input; 3 the verification could not\n"
    "run: the JWKS file cannot be used, or the agent cannot be reached, or\n"
    "the data dir or the secret cannot be read (these print nothing on\n"
    "stdout), or the revocation check failed on the way (the verdict is\n"
    "printed, reason UNAVAILABLE), or the output could not be written.\n";

static void
vfy_usage(FILE *f)
{
	fputs(vfy_help, f);
}

/* Option opt, with value (NULL when it was given none), taken. */
static int
vfy_take_option(vfy_opts *o, int opt, const char *value, unsigned *seen)
{
	const vfy_option *def = &vfy_options[opt];
	const char *name = vfy_getopt[opt].name, *bad;

	if (def->set == NULL) {
		*seen |= VFY_SEEN(opt);
		*(bool *)((char *)o + def->flag) = true;
		return VFY_OK;
	}
	if (*seen & VFY_SEEN(opt))
		return vfy_bad_usage("--%s given twice", name);
	*seen |= VFY_SEEN(opt);
	if (value == NULL)
		return vfy_bad_usage("--%s needs a value", name);
	if ((bad = def->set(o, value)) != NULL)
		return vfy_bad_usage("--%s \"%s\": %s", name, value, bad);
	return VFY_OK;
}

/* The first option of mask that was seen, as an index; -1 when none. */
static int
vfy_first_seen(unsigned seen, unsigned mask)
{
	for (int i = 0; i < VFY_N_OPTIONS; i++)
		if (seen & mask & VFY_SEEN(i))
			return i;
	return -1;
}

/* What only the whole command line can tell. */
static int
vfy_check_opts(const vfy_opts *o, unsigned seen)
{
	unsigned source = VFY_SEEN(VFY_OPT_SOCKET) |
	                  VFY_SEEN(VFY_OPT_DATA_DIR) |
	                  VFY_SEEN(VFY_OPT_SECRET) | VFY_SEEN(VFY_OPT_TIMEOUT) |
	                  VFY_SEEN(VFY_OPT_MAX_STALENESS);
	int extra;

	if (o->jwks == NULL)
		return vfy_bad_usage("--jwks FILE is required");
	if (o->no_revocation && (extra = vfy_first_seen(seen, source)) >= 0)
		return vfy_bad_usage("--no-revocation takes no --%s",
		    vfy_getopt[extra].name);
	if (o->socket && (o->data_dir || o->secret))
		return vfy_bad_usage("--socket and --data-dir name two "
		                     "sources: give one");
	if ((o->data_dir != NULL) != (o->secret != NULL))
		return vfy_bad_usage("--data-dir and --secret go together");
	if (o->data_dir && o->timeout_ms)
		return vfy_bad_usage("--timeout is for the socket, not "
		                     "--data-dir");
	return VFY_OK;
}

/* A word that is not an option: the token, once. */
static int
vfy_take_token(vfy_opts *o, const char *word)
{
	if (o->token != NULL)
		return vfy_bad_usage("unexpected argument \"%.32s%s\": one "
		                     "token at a time",
		    word, strlen(word) > 32 ? "..." : "");
	o->token = word;
	return VFY_OK;
}

/*
 * Whether arg, "--name" or "--name=value", spells option opt out in full:
 * getopt_long also takes a name cut short, which this command never did.
 */
static bool
vfy_spelled_out(const char *arg, int opt)
{
	const char *name = vfy_getopt[opt].name;
	size_t len = strcspn(arg + 2, "=");

	return strlen(name) == len && strncmp(arg + 2, name, len) == 0;
}

/* arg, an option that is not one of ours (or cut short). */
static int
vfy_unknown_option(const char *arg)
{
	if (strncmp(arg, "--", 2) == 0)
		return vfy_bad_usage("unknown option --%.*s",
		    (int)strcspn(arg + 2, "="), arg + 2);
	return vfy_bad_usage("unknown option %s", arg);
}

/*
 * What getopt_long returned, c, having read arg: a word (1), an option
 * (VFY_OPT_VAL), an option without its value (':'), or a mistake ('?':
 * an unknown option, or a value given to a flag).
 */
static int
vfy_take(vfy_opts *o, int c, const char *arg, unsigned *seen)
{
	int opt = (c == '?' || c == ':' ? optopt : c) - VFY_OPT_VAL(0);

	if (c == 1)
		return vfy_take_token(o, optarg);
	if (opt < 0 || opt >= VFY_N_OPTIONS || !vfy_spelled_out(arg, opt))
		return vfy_unknown_option(arg);
	if (c == '?')
		return vfy_bad_usage("--%s takes no value",
		    vfy_getopt[opt].name);
	return vfy_take_option(o, opt, c == ':' ? NULL : optarg, seen);
}

/*
 * The command line, read by getopt_long in order ("-": words come back
 * as 1, where they stand) and quietly (":", opterr 0: mistakes are said
 * here, in one line). In order, argv[at] is the element each call reads:
 * there is no short option, so a "-xy" is a mistake at its first letter
 * and the parse ends there. The words after "--" are left for the end,
 * where they can only be the token.
 */
static int
vfy_parse_args(vfy_opts *o, int argc, char **argv)
{
	unsigned seen = 0;
	int rc = VFY_OK, c;

	opterr = 0;
	for (int at = optind; rc == VFY_OK; at = optind) {
		if ((c = getopt_long(argc, argv, "-:", vfy_getopt, NULL)) == -1)
			break;
		rc = vfy_take(o, c, argv[at], &seen);
	}
	for (int i = optind; rc == VFY_OK && i < argc; i++)
		rc = vfy_take_token(o, argv[i]);
	if (rc != VFY_OK || o->help || o->version)
		return rc;
	return vfy_check_opts(o, seen);
}

/* ------------------------------------------------------------------------ */
/* The token                                                                */
/* ------------------------------------------------------------------------ */

static bool
vfy_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
	       c == '\f';
}

/* s[0..*len) without the whitespace around it; returns its start. */
static const char *
vfy_trim(const char *s, size_t *len)
{
	while (*len > 0 && vfy_is_space(s[0])) {
		s++;
		(*len)--;
	}
	while (*len > 0 && vfy_is_space(s[*len - 1]))
		(*len)--;
	return s;
}

/*
 * Read stdin into *buf (malloc'd): at most VFY_TOKEN_MAX bytes once
 * trimmed, so a little more is read to tell. Returns VFY_OK or the exit
 * status, having said why.
 */
static int
vfy_read_stdin(char **buf, size_t *len)
{
	size_t cap = VFY_TOKEN_MAX + 4096, n = 0;
	char *p = malloc(cap);

	if (p == NULL)
		return vfy_fail(VFY_UNAVAILABLE, "out of memory");
	while (n < cap) {
		size_t got = fread(p + n, 1, cap - n, stdin);

		n += got;
		if (got == 0)
			break;
	}
	if (ferror(stdin)) {
		free(p);
		return vfy_fail(VFY_USAGE,
		    "cannot read the token from stdin: %s", strerror(errno));
	}
	*buf = p;
	*len = n;
	return VFY_OK;
}

/*
 * The token to verify, trimmed, into *token and *len; *owned is what to
 * free. Returns VFY_OK or the exit status, having said why.
 */
static int
vfy_get_token(const vfy_opts *o, const char **token, size_t *len, char **owned)
{
	bool from_stdin = o->token == NULL || strcmp(o->token, "-") == 0;
	const char *t = o->token;
	size_t n = t ? strlen(t) : 0;
	int rc;

	*owned = NULL;
	if (from_stdin && (rc = vfy_read_stdin(owned, &n)) != VFY_OK)
		return rc;
	if (from_stdin)
		t = *owned;
	t = vfy_trim(t, &n);
	if (n == 0 || n > VFY_TOKEN_MAX) {
		free(*owned);
		*owned = NULL;
		if (n == 0)
			return vfy_bad_usage("no token%s",
			    from_stdin ? " on stdin" : "");
		return vfy_bad_usage("the token is over %u bytes",
		    VFY_TOKEN_MAX);
	}
	*token = t;
	*len = n;
	return VFY_OK;
}

/* ------------------------------------------------------------------------ */
/* Output for humans                                                        */
/* ------------------------------------------------------------------------ */

/*
 * s on stdout with control characters escaped: C0 and DEL as \xNN, C1
 * (U+0080 to U+009F, which some terminals obey) as \u00NN, and
 * backslashes doubled so that what is shown reads back unambiguously.
 */
static void
vfy_put_escaped(const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			printf("\\x%02x", *p);
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			printf("\\u00%02x", *++p);
		else if (*p == '\\')
			fputs("\\\\", stdout);
		else
			putchar(*p);
	}
}

static void
vfy_put_claim(const char *name, const char *value)
{
	printf("%-11s ", name);
	if (*value == '\0')
		fputs("(none)", stdout);
	else
		vfy_put_escaped(value);
	putchar('\n');
}

static void
vfy_put_time(const char *name, bool has, int64_t t)
{
	char iso[REVOKD_TIME_LEN];

	if (!has)
		printf("%-11s (none)\n", name);
	else
		printf("%-11s %" PRId64 " (%s)\n", name, t,
		    vfy_format_s(t, iso, sizeof(iso)));
}

static void
vfy_put_revocation(const vfy_opts *o, const revoke_result *r)
{
	const char *why = o->no_revocation ? " (--no-revocation)"
	                  : r->reason == REVOKE_TOKEN_OK
	                      ? ""
	                      : " (refused before it)";

	if (!r->checked) {
		printf("%-11s not checked%s\n", "revocation", why);
		return;
	}
	printf("%-11s %s, version %" PRIu64 ", staleness ", "revocation",
	    revoke_verdict_name(r->answer.verdict), r->answer.version);
	if (revokd_age_unknown(r->answer.staleness_ms, revokd_clock_ms()))
		printf("unknown, never synced\n");
	else
		printf("%" PRIu64 " ms\n", r->answer.staleness_ms);
}

static void
vfy_print_human(const vfy_opts *o, const revoke_result *r)
{
	const revoke_claims *c = &r->claims;

	if (r->reason == REVOKE_TOKEN_OK)
		printf("VALID\n");
	else
		printf("REFUSED: %s (%s)\n", revoke_reason_name(r->reason),
		    revoke_reason_string(r->reason));
	vfy_put_claim("alg", c->alg);
	vfy_put_claim("kid", c->kid);
	vfy_put_claim("iss", c->iss);
	vfy_put_claim("sub", c->sub);
	vfy_put_claim("jti", c->jti);
	vfy_put_claim("sid", c->sid);
	vfy_put_time("iat", c->has_iat, c->iat);
	vfy_put_time("nbf", c->has_nbf, c->nbf);
	vfy_put_time("exp", c->has_exp, c->exp);
	if (c->has_ver)
		printf("%-11s %" PRIu64 "\n", "ver", c->ver);
	else
		printf("%-11s (none)\n", "ver");
	vfy_put_revocation(o, r);
}

/* One stderr line for a time-related refusal. */
static void
vfy_print_time_report(const vfy_opts *o, const revoke_time_report *t)
{
	char now[REVOKD_TIME_LEN], iat[REVOKD_TIME_LEN], nbf[REVOKD_TIME_LEN],
	    exp[REVOKD_TIME_LEN];
	int leeway = o->leeway_s == REVOKE_LEEWAY_NONE ? 0
	             : o->leeway_s                     ? o->leeway_s
	                                               : VFY_LEEWAY_DEFAULT;

	vfy_format_s(t->server_time, now, sizeof(now));
	fflush(stdout);
	fprintf(stderr,
	    VFY_NAME ": %s: drift %" PRId64 " s (leeway %d s included); "
	             "server time %s",
	    revoke_reason_name(t->reason), t->drift_s, leeway, now);
	if (t->iat)
		fprintf(stderr, ", iat %s",
		    vfy_format_s(t->iat, iat, sizeof(iat)));
	if (t->nbf)
		fprintf(stderr, ", nbf %s",
		    vfy_format_s(t->nbf, nbf, sizeof(nbf)));
	if (t->exp)
		fprintf(stderr, ", exp %s",
		    vfy_format_s(t->exp, exp, sizeof(exp)));
	fputc('\n', stderr);
}

/* ------------------------------------------------------------------------ */
/* Output in JSON                                                           */
/* ------------------------------------------------------------------------ */

/* Set when a JSON value could not be built (no memory). */
static bool vfy_json_failed;

static void
vfy_json_set(json_t *o, const char *key, json_t *v)
{
	if (o == NULL || v == NULL || json_object_set_new(o, key, v) != 0)
		vfy_json_failed = true;
}

/* JSON has no unsigned 64-bit integers; nothing real comes near 2^63. */
static json_t *
vfy_json_u64(uint64_t v)
{
	return json_integer(
	    v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

/* A string: null when "" (an absent claim); not UTF-8, it is replaced. */
static json_t *
vfy_json_claim(const char *s)
{
	json_t *v;

	if (*s == '\0')
		return json_null();
	v = json_string(s);
	return v != NULL ? v : json_string("(not UTF-8)");
}

static json_t *
vfy_json_time(bool has, int64_t t)
{
	return has ? json_integer(t) : json_null();
}

static json_t *
vfy_json_claims(const revoke_claims *c)
{
	json_t *o = json_object();

	vfy_json_set(o, "alg", vfy_json_claim(c->alg));
	vfy_json_set(o, "kid", vfy_json_claim(c->kid));
	vfy_json_set(o, "iss", vfy_json_claim(c->iss));
	vfy_json_set(o, "sub", vfy_json_claim(c->sub));
	vfy_json_set(o, "jti", vfy_json_claim(c->jti));
	vfy_json_set(o, "sid", vfy_json_claim(c->sid));
	vfy_json_set(o, "iat", vfy_json_time(c->has_iat, c->iat));
	vfy_json_set(o, "nbf", vfy_json_time(c->has_nbf, c->nbf));
	vfy_json_set(o, "exp", vfy_json_time(c->has_exp, c->exp));
	vfy_json_set(o, "ver", c->has_ver ? vfy_json_u64(c->ver) : json_null());
	return o;
}

static json_t *
vfy_json_revocation(const revoke_result *r)
{
	json_t *o = json_object();

	vfy_json_set(o, "checked", json_boolean(r->checked));
	if (!r->checked) {
		vfy_json_set(o, "verdict", json_null());
		vfy_json_set(o, "version", json_null());
		vfy_json_set(o, "staleness_ms", json_null());
		return o;
	}
	vfy_json_set(o, "verdict",
	    json_string(revoke_verdict_name(r->answer.verdict)));
	vfy_json_set(o, "version", vfy_json_u64(r->answer.version));
	vfy_json_set(o, "staleness_ms", vfy_json_u64(r->answer.staleness_ms));
	return o;
}

static json_t *
vfy_json_time_report(const revoke_time_report *t)
{
	json_t *o = json_object();

	vfy_json_set(o, "server_time", json_integer(t->server_time));
	vfy_json_set(o, "iat", t->iat ? json_integer(t->iat) : json_null());
	vfy_json_set(o, "nbf", t->nbf ? json_integer(t->nbf) : json_null());
	vfy_json_set(o, "exp", t->exp ? json_integer(t->exp) : json_null());
	vfy_json_set(o, "drift_s", json_integer(t->drift_s));
	return o;
}

/* The whole answer as one object on one line; error NULL unless exit 3. */
static void
vfy_print_json(const revoke_result *r, const revoke_time_report *t,
    const char *error)
{
	json_t *o = json_object();

	vfy_json_set(o, "valid", json_boolean(r->reason == REVOKE_TOKEN_OK));
	vfy_json_set(o, "reason", json_string(revoke_reason_name(r->reason)));
	vfy_json_set(o, "message",
	    json_string(revoke_reason_string(r->reason)));
	vfy_json_set(o, "claims", vfy_json_claims(&r->claims));
	vfy_json_set(o, "revocation", vfy_json_revocation(r));
	if (t != NULL)
		vfy_json_set(o, "time", vfy_json_time_report(t));
	if (error != NULL)
		vfy_json_set(o, "error", vfy_json_claim(error));
	if (o == NULL || vfy_json_failed ||
	    json_dumpf(o, stdout, JSON_COMPACT) != 0)
		vfy_json_failed = true;
	else
		putchar('\n');
	json_decref(o);
}

/* Whether everything printed reached stdout (flushed now). */
static bool
vfy_output_ok(void)
{
	return fflush(stdout) == 0 && !ferror(stdout) && !vfy_json_failed;
}

/* ------------------------------------------------------------------------ */
/* Verification                                                             */
/* ------------------------------------------------------------------------ */

/* Where the revocation answers come from, and where the keys are. */
typedef struct vfy_source {
	const char *socket_path; /* the socket's, when that is the source */
	revoke_client *client;
	revoke_reader *reader;
	revoke_verifier *verifier;
	bool has_time;           /* the log callback was called */
	revoke_time_report time; /* what it was told (region not kept) */
} vfy_source;

/* The verifier's log callback: keep the report for the output. */
static void
vfy_log(void *arg, const revoke_time_report *r)
{
	vfy_source *s = arg;

	s->time = *r;
	s->time.region = NULL; /* borrowed for the call only; no region set */
	s->has_time = true;
}

/* Where the query socket is: --socket, $REVOKD_QUERY_SOCKET, default. */
static const char *
vfy_socket_path(const vfy_opts *o)
{
	const char *env = getenv(VFY_SOCKET_ENV);

	if (o->socket)
		return o->socket;
	return env && *env ? env : VFY_SOCKET_DEFAULT;
}

/* Why a socket path cannot be connected to, as far as stat can tell. */
static const char *
vfy_socket_hint(const char *path)
{
	struct stat st;

	if (stat(path, &st) != 0)
		return errno == ENOENT ? "no such file (is revokd running?)"
		                       : strerror(errno);
	if (!S_ISSOCK(st.st_mode))
		return "not a socket";
	return "the agent does not accept connections (is it running, and "
	       "may this user use its socket?)";
}

/* Open the revocation source the options name; VFY_OK or exit status. */
static int
vfy_open_source(const vfy_opts *o, vfy_source *s)
{
	revoke_client_options copt = { .timeout_ms = o->timeout_ms };
	struct sockaddr_un sa;
	revoke_status st;

	if (o->no_revocation)
		return VFY_OK;
	if (o->data_dir) {
		if ((st = revoke_reader_open(o->data_dir, o->secret,
		         &s->reader)) == REVOKE_OK)
			return VFY_OK;
		return vfy_fail(VFY_UNAVAILABLE, "%s: %s", revoke_strerror(st),
		    revoke_last_error());
	}
	s->socket_path = vfy_socket_path(o);
	if (strlen(s->socket_path) >= sizeof(sa.sun_path))
		return vfy_bad_usage("$" VFY_SOCKET_ENV " is over %zu bytes",
		    sizeof(sa.sun_path) - 1);
	st = revoke_client_open(s->socket_path, &copt, &s->client);
	if (st == REVOKE_OK)
		return VFY_OK;
	if (st == REVOKE_E_CONNECT)
		return vfy_fail(VFY_UNAVAILABLE,
		    "cannot reach the agent at %s: %s", s->socket_path,
		    vfy_socket_hint(s->socket_path));
	return vfy_fail(st == REVOKE_E_INVALID ? VFY_USAGE : VFY_UNAVAILABLE,
	    "cannot use the agent's socket %s: %s", s->socket_path,
	    revoke_strerror(st));
}

static int
vfy_new_verifier(const vfy_opts *o, vfy_source *s)
{
	revoke_verifier_options vopt = {
		.jwks_file = o->jwks,
		.issuer = o->issuer,
		.audience = o->audience,
		.algorithms = o->algorithms,
		.leeway_s = o->leeway_s,
		.max_age_s = o->max_age_s,
		.max_staleness_ms = o->max_staleness_ms,
		.client = s->client,
		.reader = s->reader,
		.log = vfy_log,
		.log_arg = s,
	};
	revoke_status st = revoke_verifier_new(&vopt, &s->verifier);

	if (st == REVOKE_OK)
		return VFY_OK;
	if (st == REVOKE_E_KEYS)
		return vfy_fail(VFY_UNAVAILABLE,
		    "cannot use the JWKS file: %s%s%s", revoke_last_error(),
		    o->alg_list ? "; --alg " : "",
		    o->alg_list ? o->alg_list : "");
	return vfy_fail(VFY_UNAVAILABLE, "cannot make a verifier: %s",
	    revoke_strerror(st));
}

/* Why the verification could not run (st, maybe REVOKE_OK), into buf. */
static const char *
vfy_unavailable_why(const vfy_opts *o, const vfy_source *s, revoke_status st,
    char *buf, size_t len)
{
	const char *what =
	    st != REVOKE_OK ? revoke_strerror(st) : "no cause given";

	if (st == REVOKE_E_KEYS)
		snprintf(buf, len, "cannot use the JWKS file %s: %s", o->jwks,
		    what);
	else if (s->client != NULL)
		snprintf(buf, len,
		    "the revocation check failed: %s (agent at %s)", what,
		    s->socket_path);
	else if (s->reader != NULL)
		snprintf(buf, len,
		    "the revocation check failed: %s (data dir %s)", what,
		    o->data_dir);
	else
		snprintf(buf, len, "the verification could not run: %s", what);
	return buf;
}

/* Verify, print, and say how to exit. */
static int
vfy_run(const vfy_opts *o, vfy_source *s, const char *token, size_t len)
{
	revoke_result r;
	revoke_status st;
	char why[512];
	const char *error = NULL;
	int rc;

	memset(&r, 0, sizeof(r));
	st = revoke_jwt_verify(s->verifier, token, len, o->now, &r);
	if (st != REVOKE_OK || r.reason == REVOKE_TOKEN_UNAVAILABLE) {
		error = vfy_unavailable_why(o, s, st, why, sizeof(why));
		r.reason = REVOKE_TOKEN_UNAVAILABLE;
	}
	if (o->json) {
		vfy_print_json(&r, s->has_time ? &s->time : NULL, error);
	} else {
		vfy_print_human(o, &r);
		if (s->has_time)
			vfy_print_time_report(o, &s->time);
	}
	rc = error                         ? VFY_UNAVAILABLE
	     : r.reason == REVOKE_TOKEN_OK ? VFY_OK
	                                   : VFY_REFUSED;
	if (!vfy_output_ok())
		return vfy_fail(VFY_UNAVAILABLE, "cannot write the output: %s",
		    ferror(stdout) ? strerror(errno) : "out of memory");
	if (error != NULL)
		return vfy_fail(rc, "%s", error);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* Main                                                                     */
/* ------------------------------------------------------------------------ */

int
main(int argc, char **argv)
{
	vfy_opts o = { 0 };
	vfy_source s = { 0 };
	const char *token = NULL;
	char *owned = NULL;
	size_t len = 0;
	int rc;

	if ((rc = vfy_parse_args(&o, argc, argv)) != VFY_OK)
		return rc;
	if (o.help || o.version) {
		if (o.help)
			vfy_usage(stdout);
		else
			printf(VFY_NAME " %s\n", REVOKE_VERSION);
		return vfy_output_ok() ? VFY_OK : VFY_UNAVAILABLE;
	}
	if ((rc = vfy_get_token(&o, &token, &len, &owned)) != VFY_OK)
		return rc;
	if ((rc = vfy_open_source(&o, &s)) == VFY_OK &&
	    (rc = vfy_new_verifier(&o, &s)) == VFY_OK)
		rc = vfy_run(&o, &s, token, len);
	revoke_verifier_free(s.verifier);
	revoke_client_close(s.client);
	revoke_reader_close(s.reader);
	free(owned);
	return rc;
}
