/*
 * test_revoke_verify.c: the revoke-verify command, run as a subprocess:
 * bad usage (exit 2, one line on stderr, nothing on stdout), --help and
 * --version, verdicts for humans and in JSON, the token from stdin,
 * replaying with --now, the time report, sources that cannot be used
 * (exit 3), and a revoked jti read directly from a store made here with
 * the crdt writer, as an agent would have left it.
 *
 * Tokens are minted with tests/jwt_mint.h. $REVOKD_QUERY_SOCKET points
 * into the test's temporary directory, so a real agent on this host is
 * never reached.
 *
 * usage: test_revoke_verify PATH-TO-revoke-verify
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "crdt/crdt.h"
#include "jwt_mint.h"
#include "testutil.h"

static const char *verify_path;

/* What every test shares: a directory, a key, its JWKS. */
struct vt {
	char *dir;
	char jwks[4096];    /* holds k1 */
	char none[4096];    /* a socket path where nothing listens */
	mint_key *key;      /* ES256, kid k1 */
	mint_key *impostor; /* ES256, also kid k1, not in the JWKS */
	int64_t now;
};

static int
setup(void **state)
{
	struct vt *t = calloc(1, sizeof(*t));

	assert_non_null(t);
	t->dir = tu_tmpdir();
	t->now = (int64_t)time(NULL);
	t->key = mint_key_new(REVOKE_ALG_ES256, "k1");
	t->impostor = mint_key_new(REVOKE_ALG_ES256, "k1");
	snprintf(t->jwks, sizeof(t->jwks), "%s/jwks.json", t->dir);
	snprintf(t->none, sizeof(t->none), "%s/none.sock", t->dir);
	mint_jwks_write(t->jwks, &t->key, 1);
	assert_int_equal(setenv("REVOKD_QUERY_SOCKET", t->none, 1), 0);
	*state = t;
	return 0;
}

static int
teardown(void **state)
{
	struct vt *t = *state;

	mint_key_free(t->key);
	mint_key_free(t->impostor);
	tu_rmdir(t->dir);
	free(t);
	return 0;
}

/* ------------------------------------------------------------------------ */
/* Running the command                                                      */
/* ------------------------------------------------------------------------ */

/* Run revoke-verify with args (NULL-terminated), input on stdin (or none). */
static tu_result
run_in(const char *input, char *const args[])
{
	char *argv[32];
	size_t n = 0;

	argv[n++] = (char *)verify_path;
	for (; args[n - 1] != NULL; n++) {
		assert_true(n < 31);
		argv[n] = args[n - 1];
	}
	argv[n] = NULL;
	return tu_run(input, argv);
}

#define RUN(...) run_in(NULL, (char *[]){ __VA_ARGS__, NULL })
#define RUN_IN(input, ...) run_in(input, (char *[]){ __VA_ARGS__, NULL })

/* Show what a run printed when an expectation is about to fail. */
static void
show(const tu_result *r)
{
	print_message("exit %d\nstdout:\n%sstderr:\n%s", r->status, r->out,
	    r->err);
}

/* A failure: exit status want, one line on stderr naming it, no stdout. */
static void
expect_failure(tu_result r, int want, const char *mentions)
{
	if (r.status != want || tu_lines(r.err) != 1 ||
	    strstr(r.err, mentions) == NULL || *r.out != '\0')
		show(&r);
	assert_int_equal(r.status, want);
	assert_int_equal(tu_lines(r.err), 1);
	assert_non_null(strstr(r.err, "revoke-verify: "));
	assert_non_null(strstr(r.err, mentions));
	assert_string_equal(r.out, "");
	tu_result_free(&r);
}

/*
 * A verdict: exit status want, and stdout's first line first_line (or
 * starting with it, when it ends with "(": the reason's sentence follows).
 */
static void
expect_verdict(const tu_result *r, int want, const char *first_line)
{
	size_t n = strlen(first_line);

	if (r->status != want || strncmp(r->out, first_line, n) != 0)
		show(r);
	assert_int_equal(r->status, want);
	assert_memory_equal(r->out, first_line, n);
	if (first_line[n - 1] != '(')
		assert_int_equal(r->out[n], '\n');
}

/* ------------------------------------------------------------------------ */
/* Tokens                                                                   */
/* ------------------------------------------------------------------------ */

/* A token of k for jti, issued at iat, expiring at exp (malloc'd). */
static char *
token_at(const mint_key *k, const char *jti, int64_t iat, int64_t exp)
{
	char payload[512];

	snprintf(payload, sizeof(payload),
	    "{\"iss\":\"https://issuer.example\",\"sub\":\"alice\","
	    "\"aud\":\"api\",\"jti\":\"%s\",\"sid\":\"s-1\",\"ver\":0,"
	    "\"iat\":%lld,\"exp\":%lld}",
	    jti, (long long)iat, (long long)exp);
	return mint_token(k, NULL, payload);
}

/* A token good for the next hour. */
static char *
good_token(const struct vt *t, const char *jti)
{
	return token_at(t->key, jti, t->now - 10, t->now + 3600);
}

static json_t *parse_json(const tu_result *r);

/* ------------------------------------------------------------------------ */
/* Usage                                                                    */
/* ------------------------------------------------------------------------ */

static void
test_help_version(void **state)
{
	tu_result r;

	(void)state;
	r = RUN("--help");
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "usage: revoke-verify --jwks FILE"));
	assert_non_null(strstr(r.out, "Exit status: 0 the token is good; 1"));
	assert_non_null(strstr(r.out, "--no-revocation"));
	assert_string_equal(r.err, "");
	tu_result_free(&r);
	r = RUN("--version");
	assert_int_equal(r.status, 0);
	assert_string_equal(r.out, "revoke-verify " REVOKE_VERSION "\n");
	tu_result_free(&r);
}

static void
test_bad_usage(void **state)
{
	struct vt *t = *state;
	char *tok = good_token(t, "j-usage"), *j = t->jwks, *big;

	expect_failure(RUN("--no-revocation", tok), 2,
	    "--jwks FILE is required");
	expect_failure(RUN("--jwks", j, "--bogus", tok), 2,
	    "unknown option --bogus");
	expect_failure(RUN("--jwks", j, "-x", tok), 2, "unknown option -x");
	/* Names in full only: getopt_long's abbreviations are refused. */
	expect_failure(RUN("--jw", j, tok), 2, "unknown option --jw");
	expect_failure(RUN("--jwks", j, "--jso=1", tok), 2,
	    "unknown option --jso");
	expect_failure(RUN("--jwks"), 2, "--jwks needs a value");
	expect_failure(RUN("--jwks", j, "--jwks", j, tok), 2,
	    "--jwks given twice");
	expect_failure(RUN("--jwks", j, "--json=yes", tok), 2,
	    "--json takes no value");
	expect_failure(RUN("--jwks", j, "--leeway", "121", tok), 2,
	    "--leeway \"121\"");
	expect_failure(RUN("--jwks", j, "--alg", "ES256,HS256", tok), 2,
	    "--alg \"ES256,HS256\"");
	expect_failure(RUN("--jwks", j, "--alg", "", tok), 2, "--alg");
	expect_failure(RUN("--jwks", j, "--now", "yesterday", tok), 2,
	    "--now \"yesterday\"");
	expect_failure(RUN("--jwks", j, "--timeout", "0", tok), 2,
	    "--timeout \"0\"");
	expect_failure(RUN("--jwks", j, "--max-age", "-5", tok), 2,
	    "--max-age \"-5\"");
	expect_failure(RUN("--jwks", j, "--socket", "/x", "--data-dir", "/d",
	                   "--secret", "/s", tok),
	    2, "give one");
	expect_failure(RUN("--jwks", j, "--data-dir", "/d", tok), 2,
	    "--data-dir and --secret go together");
	expect_failure(RUN("--jwks", j, "--data-dir", "/d", "--secret", "/s",
	                   "--timeout", "5", tok),
	    2, "--timeout is for the socket");
	expect_failure(
	    RUN("--jwks", j, "--no-revocation", "--socket", "/x", tok), 2,
	    "--no-revocation takes no --socket");
	expect_failure(RUN("--jwks", j, "--no-revocation", tok, "another"), 2,
	    "unexpected argument");
	/* An empty token, as an argument or on stdin. */
	expect_failure(RUN("--jwks", j, "--no-revocation", " \n"), 2,
	    "no token");
	expect_failure(RUN_IN("\n\n", "--jwks", j, "--no-revocation"), 2,
	    "no token on stdin");
	/* A token too long to be one: read no further, say so. */
	big = malloc(100000);
	assert_non_null(big);
	memset(big, 'a', 99999);
	big[99999] = '\0';
	expect_failure(RUN_IN(big, "--jwks", j, "--no-revocation"), 2,
	    "the token is over 65536 bytes");
	free(big);
	free(tok);
}

/* ------------------------------------------------------------------------ */
/* Verdicts                                                                 */
/* ------------------------------------------------------------------------ */

static void
test_valid(void **state)
{
	struct vt *t = *state;
	char *tok = good_token(t, "j-valid");
	tu_result r = RUN("--jwks", t->jwks, "--no-revocation", "--issuer",
	    "https://issuer.example", "--audience", "api", "--alg", "ES256",
	    tok);

	expect_verdict(&r, 0, "VALID");
	assert_non_null(strstr(r.out, "\nalg         ES256\n"));
	assert_non_null(strstr(r.out, "\nkid         k1\n"));
	assert_non_null(strstr(r.out, "\nsub         alice\n"));
	assert_non_null(strstr(r.out, "\njti         j-valid\n"));
	assert_non_null(strstr(r.out, "\nnbf         (none)\n"));
	assert_non_null(strstr(r.out, "Z)\n")); /* times in ISO too */
	assert_non_null(
	    strstr(r.out, "\nrevocation  not checked (--no-revocation)\n"));
	assert_string_equal(r.err, "");
	tu_result_free(&r);
	free(tok);
}

/* Claims are anyone's: control characters reach no terminal. */
static void
test_escaped_claims(void **state)
{
	struct vt *t = *state;
	char payload[256], *tok;
	tu_result r;
	json_t *j;

	snprintf(payload, sizeof(payload),
	    "{\"sub\":\"ev\\u001b[2Jil\\u0085\\\\\",\"jti\":\"j-esc\","
	    "\"exp\":%lld}",
	    (long long)t->now + 60);
	tok = mint_token(t->key, NULL, payload);
	r = RUN("--jwks", t->jwks, "--no-revocation", tok);
	expect_verdict(&r, 0, "VALID");
	assert_non_null(
	    strstr(r.out, "\nsub         ev\\x1b[2Jil\\u0085\\\\\n"));
	assert_null(strchr(r.out, 0x1b));
	tu_result_free(&r);
	r = RUN("--jwks", t->jwks, "--no-revocation", "--json", tok);
	j = parse_json(&r);
	assert_string_equal(json_string_value(json_object_get(
	                        json_object_get(j, "claims"), "sub")),
	    "ev\x1b[2Jil\xc2\x85\\");
	json_decref(j);
	tu_result_free(&r);
	free(tok);
}

static void
test_refusals(void **state)
{
	struct vt *t = *state;
	char *tok = good_token(t, "j-refused");
	char *forged = token_at(t->impostor, "j-forged", t->now, t->now + 60);
	char *old = token_at(t->key, "j-old", t->now - 7200, t->now + 3600);
	char *none = mint_token_none("{\"jti\":\"j-none\",\"exp\":9999999999}");
	char *confused = mint_token_hs256_confusion(t->key,
	    "{\"jti\":\"j-hs\",\"exp\":9999999999}");
	tu_result r;

	r = RUN("--jwks", t->jwks, "--no-revocation", forged);
	expect_verdict(&r, 1, "REFUSED: SIGNATURE (");
	tu_result_free(&r);
	r = RUN("--jwks", t->jwks, "--no-revocation", "--issuer", "other", tok);
	expect_verdict(&r, 1, "REFUSED: ISSUER (");
	tu_result_free(&r);
	r = RUN("--jwks", t->jwks, "--no-revocation", none);
	expect_verdict(&r, 1, "REFUSED: ALG (");
	tu_result_free(&r);
	r = RUN("--jwks", t->jwks, "--no-revocation", confused);
	expect_verdict(&r, 1, "REFUSED: ALG (");
	tu_result_free(&r);
	r = RUN("--jwks", t->jwks, "--no-revocation", "not.a.token");
	expect_verdict(&r, 1, "REFUSED: MALFORMED (");
	tu_result_free(&r);
	r = RUN("--jwks", t->jwks, "--no-revocation", "--max-age", "3600", old);
	expect_verdict(&r, 1, "REFUSED: TOO_OLD (");
	assert_int_equal(tu_lines(r.err), 1);
	tu_result_free(&r);
	free(tok);
	free(forged);
	free(old);
	free(none);
	free(confused);
}

/* Expired: exit 1, EXPIRED, and one stderr line with the drift. */
static void
test_expired(void **state)
{
	struct vt *t = *state;
	char *tok = token_at(t->key, "j-expired", t->now - 7200, t->now - 3600);
	tu_result r =
	    RUN("--jwks", t->jwks, "--no-revocation", "--leeway", "60", tok);
	char at[32];

	expect_verdict(&r, 1, "REFUSED: EXPIRED (");
	assert_non_null(strstr(r.out, "\njti         j-expired\n"));
	if (tu_lines(r.err) != 1)
		show(&r);
	assert_int_equal(tu_lines(r.err), 1);
	assert_non_null(strstr(r.err, "revoke-verify: EXPIRED: "));
	/* drift: now - (exp + leeway) + 1, give or take the clock's tick. */
	assert_non_null(strstr(r.err, ": drift 354"));
	assert_non_null(
	    strstr(r.err, " s (leeway 60 s included); server time "));
	assert_non_null(strstr(r.err, ", exp "));
	tu_result_free(&r);
	free(tok);

	/* --leeway 0: no leeway at all; exp one second ahead still passes. */
	tok = token_at(t->key, "j-edge", t->now - 60, t->now + 10);
	snprintf(at, sizeof(at), "%lld", (long long)t->now + 9);
	r = RUN("--jwks", t->jwks, "--no-revocation", "--leeway", "0", "--now",
	    at, tok);
	expect_verdict(&r, 0, "VALID");
	tu_result_free(&r);
	snprintf(at, sizeof(at), "%lld", (long long)t->now + 10);
	r = RUN("--jwks", t->jwks, "--no-revocation", "--leeway", "0", "--now",
	    at, tok);
	expect_verdict(&r, 1, "REFUSED: EXPIRED (");
	assert_non_null(strstr(r.err, "(leeway 0 s included)"));
	tu_result_free(&r);
	free(tok);
}

/* Values after "=" or in the next word; options after the token; "--". */
static void
test_option_forms(void **state)
{
	struct vt *t = *state;
	char *tok = good_token(t, "j-forms"), jwks[4200];
	tu_result r;

	snprintf(jwks, sizeof(jwks), "--jwks=%s", t->jwks);
	r = RUN(jwks, "--no-revocation", "--issuer=https://issuer.example",
	    "--", tok);
	expect_verdict(&r, 0, "VALID");
	tu_result_free(&r);
	r = RUN(tok, "--no-revocation", "--jwks", t->jwks, "--audience", "api");
	expect_verdict(&r, 0, "VALID");
	tu_result_free(&r);
	expect_failure(RUN(jwks, "--no-revocation", "--", tok, "--json"), 2,
	    "unexpected argument \"--json\"");
	free(tok);
}

/* --now replays: the expired token was good before it expired. */
static void
test_now(void **state)
{
	struct vt *t = *state;
	char *tok = token_at(t->key, "j-replay", 1700000000, 1700003600);
	tu_result r;

	r = RUN("--jwks", t->jwks, "--no-revocation", "--now", "1700001000",
	    tok);
	expect_verdict(&r, 0, "VALID");
	assert_non_null(strstr(r.out, "1700003600 (2023-11-14T23:13:20Z)"));
	tu_result_free(&r);
	r = RUN("--jwks", t->jwks, "--no-revocation", "--now",
	    "2023-11-14T22:30:00Z", tok);
	expect_verdict(&r, 0, "VALID");
	tu_result_free(&r);
	r = RUN("--jwks", t->jwks, "--no-revocation", "--now", "1699990000",
	    tok);
	expect_verdict(&r, 1, "REFUSED: ISSUED_IN_FUTURE (");
	tu_result_free(&r);
	free(tok);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                     */
/* ------------------------------------------------------------------------ */

/* The one JSON object a --json run printed, parsed. */
static json_t *
parse_json(const tu_result *r)
{
	json_error_t jerr;
	json_t *j;

	assert_int_equal(tu_lines(r->out), 1);
	j = json_loads(r->out, 0, &jerr);
	if (j == NULL)
		show(r);
	assert_non_null(j);
	assert_true(json_is_object(j));
	return j;
}

static const char *
str_at(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);

	assert_true(json_is_string(v));
	return json_string_value(v);
}

static void
test_json_valid(void **state)
{
	struct vt *t = *state;
	char *tok = good_token(t, "j-json");
	tu_result r = RUN("--jwks", t->jwks, "--no-revocation", "--json", tok);
	json_t *j = parse_json(&r), *c, *rev;

	assert_int_equal(r.status, 0);
	assert_true(json_is_true(json_object_get(j, "valid")));
	assert_string_equal(str_at(j, "reason"), "OK");
	assert_true(json_is_string(json_object_get(j, "message")));
	c = json_object_get(j, "claims");
	assert_string_equal(str_at(c, "alg"), "ES256");
	assert_string_equal(str_at(c, "kid"), "k1");
	assert_string_equal(str_at(c, "iss"), "https://issuer.example");
	assert_string_equal(str_at(c, "sub"), "alice");
	assert_string_equal(str_at(c, "jti"), "j-json");
	assert_string_equal(str_at(c, "sid"), "s-1");
	assert_int_equal(json_integer_value(json_object_get(c, "exp")),
	    t->now + 3600);
	assert_int_equal(json_integer_value(json_object_get(c, "iat")),
	    t->now - 10);
	assert_true(json_is_null(json_object_get(c, "nbf")));
	assert_int_equal(json_integer_value(json_object_get(c, "ver")), 0);
	rev = json_object_get(j, "revocation");
	assert_true(json_is_false(json_object_get(rev, "checked")));
	assert_true(json_is_null(json_object_get(rev, "verdict")));
	assert_null(json_object_get(j, "time"));
	assert_null(json_object_get(j, "error"));
	assert_string_equal(r.err, "");
	json_decref(j);
	tu_result_free(&r);
	free(tok);
}

/* A time refusal in JSON: the drift goes into "time", not stderr. */
static void
test_json_expired(void **state)
{
	struct vt *t = *state;
	char *tok = token_at(t->key, "j-json-exp", 1700000000, 1700003600);
	tu_result r = RUN("--jwks", t->jwks, "--no-revocation", "--json",
	    "--now", "1700007200", tok);
	json_t *j = parse_json(&r), *time;

	assert_int_equal(r.status, 1);
	assert_true(json_is_false(json_object_get(j, "valid")));
	assert_string_equal(str_at(j, "reason"), "EXPIRED");
	time = json_object_get(j, "time");
	assert_true(json_is_object(time));
	assert_int_equal(
	    json_integer_value(json_object_get(time, "server_time")),
	    1700007200);
	assert_int_equal(json_integer_value(json_object_get(time, "exp")),
	    1700003600);
	assert_true(json_integer_value(json_object_get(time, "drift_s")) > 0);
	assert_string_equal(r.err, "");
	json_decref(j);
	tu_result_free(&r);
	free(tok);
}

/* ------------------------------------------------------------------------ */
/* stdin                                                                    */
/* ------------------------------------------------------------------------ */

static void
test_stdin(void **state)
{
	struct vt *t = *state;
	char *tok = good_token(t, "j-stdin"), input[4096];
	tu_result r;

	snprintf(input, sizeof(input), "  %s\r\n\n", tok);
	r = RUN_IN(input, "--jwks", t->jwks, "--no-revocation");
	expect_verdict(&r, 0, "VALID");
	assert_non_null(strstr(r.out, "\njti         j-stdin\n"));
	tu_result_free(&r);
	r = RUN_IN(input, "--jwks", t->jwks, "--no-revocation", "-");
	expect_verdict(&r, 0, "VALID");
	tu_result_free(&r);
	/* Surrounding whitespace only: a newline inside is the token's. */
	snprintf(input, sizeof(input), "%.20s\n%s\n", tok, tok + 20);
	r = RUN_IN(input, "--jwks", t->jwks, "--no-revocation");
	expect_verdict(&r, 1, "REFUSED: MALFORMED (");
	tu_result_free(&r);
	free(tok);
}

/* ------------------------------------------------------------------------ */
/* Sources that cannot be used                                              */
/* ------------------------------------------------------------------------ */

static void
test_unavailable(void **state)
{
	struct vt *t = *state;
	char *tok = good_token(t, "j-unavailable"), missing[4096];

	/* No agent at $REVOKD_QUERY_SOCKET, or at --socket. */
	expect_failure(RUN("--jwks", t->jwks, tok), 3, t->none);
	expect_failure(RUN("--jwks", t->jwks, "--json", tok), 3,
	    "cannot reach the agent at");
	expect_failure(
	    RUN("--jwks", t->jwks, "--socket", "/nonexistent.sock", tok), 3,
	    "/nonexistent.sock: no such file");
	expect_failure(RUN("--jwks", t->jwks, "--socket", t->jwks, tok), 3,
	    "not a socket");
	/* A JWKS file that is missing or not a JWKS. */
	snprintf(missing, sizeof(missing), "%s/missing.json", t->dir);
	expect_failure(RUN("--jwks", missing, "--no-revocation", tok), 3,
	    "cannot use the JWKS file");
	expect_failure(RUN("--jwks", "/dev/null", "--no-revocation", tok), 3,
	    "/dev/null");
	/* A JWKS with no key for the algorithms allowed. */
	expect_failure(RUN("--jwks", t->jwks, "--no-revocation", "--alg",
	                   "RS256,EdDSA", tok),
	    3, "no key usable with the allowed algorithms");
	free(tok);
}

/*
 * An agent that accepts the connection and never answers: the check times
 * out during the verification, which prints its verdict (UNAVAILABLE,
 * claims included) and exits 3 with one line saying why.
 */
static void
test_agent_silent(void **state)
{
	struct vt *t = *state;
	char *tok = good_token(t, "j-silent"), path[4096];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	tu_result r;
	json_t *j;

	snprintf(path, sizeof(path), "%s/silent.sock", t->dir);
	assert_true(strlen(path) < sizeof(sa.sun_path));
	strcpy(sa.sun_path, path);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(fd, 4), 0);

	r = RUN("--jwks", t->jwks, "--socket", path, "--timeout", "200", tok);
	expect_verdict(&r, 3, "REFUSED: UNAVAILABLE (");
	assert_non_null(strstr(r.out, "\njti         j-silent\n"));
	assert_int_equal(tu_lines(r.err), 1);
	assert_non_null(strstr(r.err, "revocation check failed"));
	assert_non_null(strstr(r.err, path));
	tu_result_free(&r);

	r = RUN("--jwks", t->jwks, "--socket", path, "--timeout", "200",
	    "--json", tok);
	j = parse_json(&r);
	assert_int_equal(r.status, 3);
	assert_string_equal(str_at(j, "reason"), "UNAVAILABLE");
	assert_non_null(strstr(str_at(j, "error"), path));
	assert_int_equal(tu_lines(r.err), 1);
	json_decref(j);
	tu_result_free(&r);
	close(fd);
	free(tok);
}

/* ------------------------------------------------------------------------ */
/* The direct reader                                                        */
/* ------------------------------------------------------------------------ */

/* A store in dir holding a revocation of jti, and the secret's file. */
static void
make_store(const struct vt *t, const char *dir, const char *secret_path,
    const char *jti)
{
	static const crdt_store_options opts = { .no_sync = true };
	uint8_t secret[CRDT_SECRET_LEN];
	crdt_store *s;
	crdt_keyer *k;
	crdt_entry e;
	crdt_apply_stats st;
	int fd;

	for (size_t i = 0; i < sizeof(secret); i++)
		secret[i] = (uint8_t)(0xa5 ^ i);
	fd = open(secret_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_true(tu_write_full(fd, secret, sizeof(secret)));
	close(fd);

	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(crdt_store_open(dir, &opts, &s), REVOKD_OK);
	assert_int_equal(crdt_keyer_new(secret, sizeof(secret), &k), REVOKD_OK);
	assert_int_equal(crdt_store_bind_secret(s, k), REVOKD_OK);
	memset(&e, 0, sizeof(e));
	e.kind = CRDT_KIND_JTI;
	assert_int_equal(
	    crdt_key_derive(k, CRDT_KIND_JTI, jti, strlen(jti), &e.key),
	    REVOKD_OK);
	e.u.token.exp = t->now + 3600;
	e.u.token.revoked_at = CRDT_HLC_AT((uint64_t)t->now * 1000);
	e.u.token.origin = 1;
	assert_int_equal(crdt_store_apply(s, &e, 1, t->now, NULL, &st),
	    REVOKD_OK);
	assert_int_equal(st.changed, 1);
	crdt_keyer_free(k);
	crdt_store_close(s);
}

static void
test_reader_revoked(void **state)
{
	struct vt *t = *state;
	char dir[4096], secret[4096];
	char *revoked = good_token(t, "j-revoked");
	char *fine = good_token(t, "j-fine");
	tu_result r;
	json_t *j, *rev;

	snprintf(dir, sizeof(dir), "%s/data", t->dir);
	snprintf(secret, sizeof(secret), "%s/secret", t->dir);
	make_store(t, dir, secret, "j-revoked");

	r = RUN("--jwks", t->jwks, "--data-dir", dir, "--secret", secret,
	    revoked);
	expect_verdict(&r, 1, "REFUSED: REVOKED (");
	assert_non_null(strstr(r.out, "\nrevocation  REVOKED_TOKEN, version "));
	assert_string_equal(r.err, "");
	tu_result_free(&r);

	r = RUN("--jwks", t->jwks, "--data-dir", dir, "--secret", secret,
	    "--json", revoked);
	j = parse_json(&r);
	assert_int_equal(r.status, 1);
	assert_string_equal(str_at(j, "reason"), "REVOKED");
	rev = json_object_get(j, "revocation");
	assert_true(json_is_true(json_object_get(rev, "checked")));
	assert_string_equal(str_at(rev, "verdict"), "REVOKED_TOKEN");
	assert_true(json_is_integer(json_object_get(rev, "version")));
	assert_true(json_is_integer(json_object_get(rev, "staleness_ms")));
	json_decref(j);
	tu_result_free(&r);

	r = RUN("--jwks", t->jwks, "--data-dir", dir, "--secret", secret, fine);
	expect_verdict(&r, 0, "VALID");
	assert_non_null(strstr(r.out, "\nrevocation  VALID, version 0, "));
	tu_result_free(&r);

	/* A secret others may read is refused: verification cannot run. */
	assert_int_equal(chmod(secret, 0644), 0);
	expect_failure(
	    RUN("--jwks", t->jwks, "--data-dir", dir, "--secret", secret, fine),
	    3, secret);
	free(revoked);
	free(fine);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_help_version, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_bad_usage, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_option_forms, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_valid, setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaped_claims, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
		cmocka_unit_test_setup_teardown(test_now, setup, teardown),
		cmocka_unit_test_setup_teardown(test_json_valid, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_json_expired, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_stdin, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unavailable, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_agent_silent, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_reader_revoked, setup,
		    teardown),
	};

	if (argc != 2) {
		fprintf(stderr, "usage: test_revoke_verify REVOKE-VERIFY\n");
		return 2;
	}
	verify_path = argv[1];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
