/*
 * test_agent_config.c: the configuration file (agent/config.h): every field
 * read back, defaults, one file per class of error with the exact message
 * and line, the peer limit, long lines, private files and the secret.
 *
 * A config file that does not exist is REVOKD_ENOTFOUND (not ECONFIG), with
 * "PATH: No such file or directory": the caller can tell "no file" from
 * "bad file", and the message still names the path.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "agent/config.h"
#include "testutil.h"

/* The group's directory: every test's files go there. */
static char *test_dir;

/* Big: kept off the stack. */
static agent_config test_cfg, test_untouched;

/* dir/name into buf. */
static const char *
test_path(char *buf, const char *name)
{
	snprintf(buf, PATH_MAX, "%s/%s", test_dir, name);
	return buf;
}

/* Write len bytes of data to dir/name with exactly mode; its path in buf. */
static const char *
test_write(char *buf, const char *name, const void *data, size_t len,
    mode_t mode)
{
	int fd;

	test_path(buf, name);
	unlink(buf);
	fd = open(buf, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_true(tu_write_full(fd, data, len));
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
	return buf;
}

/* Load text as a config file into test_cfg; its path in buf. */
static revokd_err
test_load(char *buf, const char *text, char *err)
{
	revokd_err rc;

	test_write(buf, "revokd.conf", text, strlen(text), 0644);
	rc = agent_config_load(buf, &test_cfg, err, AGENT_ERR_LEN);
	unlink(buf);
	return rc;
}

/* err is path followed by want (a prefix of the rest). */
static void
test_err_is(const char *err, const char *path, const char *want)
{
	size_t n = strlen(path);

	if (strncmp(err, path, n) != 0 ||
	    strncmp(err + n, want, strlen(want)) != 0) {
		print_error("got:  %s\nwant: %s%s\n", err, path, want);
		fail();
	}
}

/* The valid file every error case starts from. */
static const char *const test_base[] = {
	"[agent]",                                  /* 1 */
	"region = eu-west-1",                       /* 2 */
	"region_id = 3",                            /* 3 */
	"cluster = prod",                           /* 4 */
	"data_dir = /var/lib/revokd",               /* 5 */
	"secret_file = /etc/revokd/cluster.secret", /* 6 */
	"query_socket = /run/revokd/query.sock",    /* 7 */
	"admin_socket = /run/revokd/admin.sock",    /* 8 */
	"[tls]",                                    /* 9 */
	"listen = tls+tcp://0.0.0.0:7400",          /* 10 */
	"ca = /etc/revokd/pki/ca.pem",              /* 11 */
	"cert = /etc/revokd/pki/eu-west-1.pem",     /* 12 */
	"key = /etc/revokd/pki/eu-west-1.key",      /* 13 */
	"[peer us-east-1]",                         /* 14 */
	"id = 1",                                   /* 15 */
	"url = tls+tcp://us-east-1.internal:7400",  /* 16 */
};

#define TEST_BASE_LINES (sizeof(test_base) / sizeof(test_base[0]))

/*
 * test_base with line `line` (1-based; 0: none) replaced by repl ("" drops
 * it) and append after it, using eol as line ending. Free it.
 */
static char *
test_text(int line, const char *repl, const char *append, const char *eol)
{
	revokd_buf b = { 0 };

	for (size_t i = 0; i < TEST_BASE_LINES; i++) {
		const char *l = (int)i + 1 == line ? repl : test_base[i];

		if (*l == '\0')
			continue;
		assert_int_equal(revokd_buf_append(&b, l, strlen(l)), 0);
		assert_int_equal(revokd_buf_append(&b, eol, strlen(eol)), 0);
	}
	if (append != NULL)
		assert_int_equal(revokd_buf_append(&b, append, strlen(append)),
		    0);
	assert_int_equal(revokd_buf_append(&b, "", 1), 0);
	return (char *)b.data;
}

/* ------------------------------------------------------------------------
 * Valid files
 * ------------------------------------------------------------------------ */

static const char test_full[] =
    "; revokd test configuration\n"
    "[agent]\n"
    "region = eu-west-1            ; this region's name\n"
    "region_id = 3\n"
    "cluster = prod\n"
    "data_dir = /var/lib/revokd\n"
    "secret_file = /etc/revokd/cluster.secret\n"
    "query_socket = /run/revokd/query.sock\n"
    "admin_socket = /run/revokd/admin.sock\n"
    "metrics = [::1]:9100\n"
    "max_token_lifetime = 31536000\n"
    "prune_leeway = 1\n"
    "max_staleness = 86400000\n"
    "log_format = json\n"
    "log_level = debug\n"
    "\n"
    "# indented lines are plain lines, not continuations\n"
    "[tls]\n"
    "\tlisten = tls+tcp://[::]:7401\n"
    "\tca = /etc/revokd/pki/ca.pem\n"
    "\tcert = /etc/revokd/pki/eu-west-1.pem\n"
    "\tkey = /etc/revokd/pki/eu-west-1.key\n"
    "\n"
    "[limits]\n"
    "max_message = 67108864\n"
    "backlog = 1\n"
    "max_connections = 1000000\n"
    "client_output = 67108868\n"
    "map_size = 1099511627776\n"
    "\n"
    "[peer us-east-1]\n"
    "id = 1\n"
    "url = tls+tcp://us-east-1.internal:7400\n"
    "\n"
    "[peer ap-south-1]   ; a comment after a header\n"
    "id = 65535\n"
    "url = tls+tcp://10.0.0.7:1\n";

static void
test_full_roundtrip(void **state)
{
	char path[PATH_MAX], err[AGENT_ERR_LEN] = "";
	const agent_config *c = &test_cfg;

	(void)state;
	assert_int_equal(test_load(path, test_full, err), REVOKD_OK);
	assert_string_equal(c->path, path);
	assert_string_equal(c->region, "eu-west-1");
	assert_int_equal(c->region_id, 3);
	assert_string_equal(c->cluster, "prod");
	assert_string_equal(c->data_dir, "/var/lib/revokd");
	assert_string_equal(c->secret_file, "/etc/revokd/cluster.secret");
	assert_string_equal(c->query_socket, "/run/revokd/query.sock");
	assert_string_equal(c->admin_socket, "/run/revokd/admin.sock");
	assert_string_equal(c->metrics, "[::1]:9100");
	assert_int_equal(c->max_token_lifetime, 31536000);
	assert_int_equal(c->prune_leeway, 1);
	assert_int_equal(c->max_staleness_ms, 86400000);
	assert_int_equal(c->log_format, AGENT_LOG_JSON);
	assert_int_equal(c->log_level, AGENT_LOG_DEBUG);
	assert_string_equal(c->listen, "tls+tcp://[::]:7401");
	assert_string_equal(c->ca, "/etc/revokd/pki/ca.pem");
	assert_string_equal(c->cert, "/etc/revokd/pki/eu-west-1.pem");
	assert_string_equal(c->key, "/etc/revokd/pki/eu-west-1.key");
	assert_int_equal(c->max_message, 67108864);
	assert_int_equal(c->backlog, 1);
	assert_int_equal(c->max_connections, 1000000);
	assert_int_equal(c->client_output, 67108868);
	assert_int_equal(c->map_size, UINT64_C(1099511627776));
	assert_int_equal(c->n_peers, 2);
	assert_string_equal(c->peers[0].name, "us-east-1");
	assert_int_equal(c->peers[0].id, 1);
	assert_string_equal(c->peers[0].url,
	    "tls+tcp://us-east-1.internal:7400");
	assert_int_equal(c->peers[0].line, 31);
	assert_string_equal(c->peers[1].name, "ap-south-1");
	assert_int_equal(c->peers[1].id, 65535);
	assert_string_equal(c->peers[1].url, "tls+tcp://10.0.0.7:1");
	assert_int_equal(c->peers[1].line, 35);
}

static void
test_defaults(void **state)
{
	char path[PATH_MAX], err[AGENT_ERR_LEN] = "";
	char *text = test_text(0, NULL, NULL, "\n");
	const agent_config *c = &test_cfg;

	(void)state;
	assert_int_equal(test_load(path, text, err), REVOKD_OK);
	free(text);
	assert_string_equal(c->metrics, "127.0.0.1:9464");
	assert_int_equal(c->max_token_lifetime, 3600);
	assert_int_equal(c->prune_leeway, 300);
	assert_int_equal(c->max_staleness_ms, 5000);
	assert_int_equal(c->log_format, AGENT_LOG_LOGFMT);
	assert_int_equal(c->log_level, AGENT_LOG_INFO);
	assert_int_equal(c->max_message, 1048576);
	assert_int_equal(c->backlog, 65536);
	assert_int_equal(c->max_connections, 4096);
	assert_int_equal(c->client_output, 4194304);
	assert_int_equal(c->map_size, UINT64_C(8589934592));
	assert_int_equal(c->n_peers, 1);
	assert_int_equal(c->peers[0].line, 14);
}

/* metrics = off leaves it empty; a listening port may be 0. */
static void
test_metrics_off(void **state)
{
	char path[PATH_MAX], err[AGENT_ERR_LEN] = "";
	char *text;

	(void)state;
	text = test_text(8,
	    "admin_socket = /run/revokd/admin.sock\nmetrics = off", NULL, "\n");
	assert_int_equal(test_load(path, text, err), REVOKD_OK);
	free(text);
	assert_string_equal(test_cfg.metrics, "");
	text = test_text(10, "listen = tls+tcp://127.0.0.1:0", NULL, "\n");
	assert_int_equal(test_load(path, text, err), REVOKD_OK);
	free(text);
	assert_string_equal(test_cfg.listen, "tls+tcp://127.0.0.1:0");
}

/* A BOM and CRLF line ends change neither values nor line numbers. */
static void
test_bom_crlf(void **state)
{
	char path[PATH_MAX], err[AGENT_ERR_LEN] = "";
	char *text = test_text(0, NULL, NULL, "\r\n");
	char *bom;

	(void)state;
	assert_true(asprintf(&bom, "\xef\xbb\xbf%s", text) > 0);
	free(text);
	assert_int_equal(test_load(path, bom, err), REVOKD_OK);
	free(bom);
	assert_string_equal(test_cfg.region, "eu-west-1");
	assert_string_equal(test_cfg.peers[0].url,
	    "tls+tcp://us-east-1.internal:7400");

	text = test_text(3, "region_id = x", NULL, "\r\n");
	assert_int_equal(test_load(path, text, err), REVOKD_ECONFIG);
	free(text);
	test_err_is(err, path,
	    ":3: [agent] region_id: want 1..65535, got \"x\"");
}

/* A "key = value" line longer than inih's buffer still works. */
static void
test_long_lines(void **state)
{
	char path[PATH_MAX], err[AGENT_ERR_LEN] = "", want[128];
	char *dir = malloc(PATH_MAX + 1), *line, *text;

	(void)state;
	memset(dir, 'd', PATH_MAX);
	dir[0] = '/';
	dir[300] = '\0';
	assert_true(asprintf(&line, "data_dir =   %s   ; comment", dir) > 0);
	text = test_text(5, line, NULL, "\n");
	assert_int_equal(test_load(path, text, err), REVOKD_OK);
	assert_string_equal(test_cfg.data_dir, dir);
	free(line);
	free(text);

	dir[300] = 'd';
	dir[PATH_MAX] = '\0';
	assert_true(asprintf(&line, "data_dir = %s", dir) > 0);
	text = test_text(5, line, NULL, "\n");
	assert_int_equal(test_load(path, text, err), REVOKD_ECONFIG);
	snprintf(want, sizeof(want),
	    ":5: [agent] data_dir: want a path of at most %d bytes, got %d "
	    "bytes",
	    PATH_MAX - 1, PATH_MAX);
	test_err_is(err, path, want);
	free(line);
	free(text);

	text = test_text(5, dir, NULL, "\n"); /* long, and no '=' */
	assert_int_equal(test_load(path, text, err), REVOKD_ECONFIG);
	test_err_is(err, path, ":5: [agent]: syntax error: want key = value");
	free(text);
	free(dir);
}

/* 64 peers load; a 65th is refused at its header. */
static void
test_peer_limit(void **state)
{
	char path[PATH_MAX], err[AGENT_ERR_LEN] = "", want[64];
	revokd_buf b = { 0 };
	char *text = test_text(14, "", NULL, "\n"); /* lines 1..13 */
	char peer[128];

	(void)state;
	/* Drop the base's peer: lines 15 and 16 would follow line 13. */
	*strstr(text, "id = 1\n") = '\0';
	assert_int_equal(revokd_buf_append(&b, text, strlen(text)), 0);
	free(text);
	for (int i = 0; i <= ENGINE_MAX_PEERS; i++) {
		snprintf(peer, sizeof(peer),
		    "[peer p%d]\nid = %d\nurl = tls+tcp://p%d:7400\n", i,
		    100 + i, i);
		if (i == ENGINE_MAX_PEERS) {
			assert_int_equal(revokd_buf_append(&b, "", 1), 0);
			assert_int_equal(test_load(path, (char *)b.data, err),
			    REVOKD_OK);
			assert_int_equal(test_cfg.n_peers, ENGINE_MAX_PEERS);
			assert_string_equal(test_cfg.peers[63].name, "p63");
			assert_int_equal(test_cfg.peers[63].id, 163);
			assert_int_equal(test_cfg.peers[63].line, 14 + 3 * 63);
			b.len--;
		}
		assert_int_equal(revokd_buf_append(&b, peer, strlen(peer)), 0);
	}
	assert_int_equal(revokd_buf_append(&b, "", 1), 0);
	assert_int_equal(test_load(path, (char *)b.data, err), REVOKD_ECONFIG);
	snprintf(want, sizeof(want),
	    ":%d: [peer p64]: too many peers (at most "
	    "64)",
	    14 + 3 * 64);
	test_err_is(err, path, want);
	revokd_buf_free(&b);
}

/* ------------------------------------------------------------------------
 * Errors: one file each, and the message it must give
 * ------------------------------------------------------------------------ */

typedef struct error_case {
	const char *name;
	int line;           /* of test_base to replace; 0: none */
	const char *repl;   /* its replacement; "" drops it */
	const char *append; /* after test_base */
	const char *text;   /* the whole file instead, when not NULL */
	const char *want;   /* what follows the path in the message */
} error_case;

#define NAME_WANT                                                              \
	"want 1..63 of a-z, 0-9 and '-', not starting or ending "              \
	"with '-', got "
#define AGENT8 "admin_socket = /run/revokd/admin.sock\n"

static error_case error_cases[] = {
	{ "unknown_key", 0, NULL, "[limits]\ncolour = blue\n", NULL,
	    ":18: [limits] colour: unknown key" },
	{ "unknown_key_agent", 4, "cluster = prod\nregoin = x", NULL, NULL,
	    ":5: [agent] regoin: unknown key" },
	{ "peer_key_in_agent", 3, "region_id = 3\nid = 4", NULL, NULL,
	    ":4: [agent] id: unknown key" },
	{ "unknown_section", 0, NULL, "[bogus]\n", NULL,
	    ":17: [bogus]: unknown section" },
	{ "unknown_section_spaces", 9, "[ tls ]", NULL, NULL,
	    ":9: [ tls ]: unknown section" },
	{ "bad_integer", 3, "region_id = abc", NULL, NULL,
	    ":3: [agent] region_id: want 1..65535, got \"abc\"" },
	{ "integer_trailing_junk", 3, "region_id = 3x", NULL, NULL,
	    ":3: [agent] region_id: want 1..65535, got \"3x\"" },
	{ "integer_plus", 3, "region_id = +3", NULL, NULL,
	    ":3: [agent] region_id: want 1..65535, got \"+3\"" },
	{ "integer_minus", 8, AGENT8 "prune_leeway = -1", NULL, NULL,
	    ":9: [agent] prune_leeway: want 1..31536000, got \"-1\"" },
	{ "prune_leeway_zero", 8, AGENT8 "prune_leeway = 0", NULL, NULL,
	    ":9: [agent] prune_leeway: want 1..31536000, got \"0\"" },
	{ "integer_empty", 3, "region_id =", NULL, NULL,
	    ":3: [agent] region_id: want 1..65535, got \"\"" },
	{ "integer_hex", 3, "region_id = 0x10", NULL, NULL,
	    ":3: [agent] region_id: want 1..65535, got \"0x10\"" },
	{ "integer_inner_space", 3, "region_id = 1 2", NULL, NULL,
	    ":3: [agent] region_id: want 1..65535, got \"1 2\"" },
	{ "range_high", 3, "region_id = 65536", NULL, NULL,
	    ":3: [agent] region_id: want 1..65535, got \"65536\"" },
	{ "range_zero", 3, "region_id = 0", NULL, NULL,
	    ":3: [agent] region_id: want 1..65535, got \"0\"" },
	{ "client_output_small", 0, NULL,
	    "[limits]\nmax_message = 1048576\nclient_output = 1048579\n", NULL,
	    ":19: [limits] client_output: must be at least max_message + 4" },
	{ "range_limits", 0, NULL, "[limits]\nmax_message = 65535\n", NULL,
	    ":18: [limits] max_message: want 65536..67108864, got \"65535\"" },
	{ "range_overflow", 0, NULL,
	    "[limits]\nmap_size = 18446744073709551616\n", NULL,
	    ":18: [limits] map_size: want 1048576..1099511627776, got "
	    "\"18446744073709551616\"" },
	{ "range_staleness", 8, AGENT8 "max_staleness = 86400001", NULL, NULL,
	    ":9: [agent] max_staleness: want 1..86400000, got \"86400001\"" },
	{ "range_peer_id", 15, "id = 65536", NULL, NULL,
	    ":15: [peer us-east-1] id: want 1..65535, got \"65536\"" },
	{ "bad_name_upper", 2, "region = EU-west-1", NULL, NULL,
	    ":2: [agent] region: " NAME_WANT "\"EU-west-1\"" },
	{ "bad_name_dash", 4, "cluster = prod-", NULL, NULL,
	    ":4: [agent] cluster: " NAME_WANT "\"prod-\"" },
	{ "bad_name_long", 4,
	    "cluster = "
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    NULL, NULL, ":4: [agent] cluster: " NAME_WANT "\"aaaa" },
	{ "bad_name_control", 2, "region = eu\x01west", NULL, NULL,
	    ":2: [agent] region: " NAME_WANT "\"eu\\x01west\"" },
	{ "bad_peer_name", 14, "[peer us_east_1]", NULL, NULL,
	    ":14: [peer us_east_1]: want [peer NAME], NAME 1..63 of a-z" },
	{ "peer_without_name", 14, "[peer]", NULL, NULL,
	    ":14: [peer]: want [peer NAME]" },
	{ "bad_url_scheme", 10, "listen = tcp://0.0.0.0:7400", NULL, NULL,
	    ":10: [tls] listen: want tls+tcp://HOST:PORT, PORT 0..65535, got "
	    "\"tcp://0.0.0.0:7400\"" },
	{ "bad_url_no_host", 10, "listen = tls+tcp://:7400", NULL, NULL,
	    ":10: [tls] listen: want tls+tcp://HOST:PORT" },
	{ "bad_url_port_high", 10, "listen = tls+tcp://0.0.0.0:65536", NULL,
	    NULL, ":10: [tls] listen: want tls+tcp://HOST:PORT" },
	{ "bad_url_no_port", 16, "url = tls+tcp://us-east-1.internal", NULL,
	    NULL,
	    ":16: [peer us-east-1] url: want tls+tcp://HOST:PORT, PORT "
	    "1..65535, got \"tls+tcp://us-east-1.internal\"" },
	{ "bad_url_peer_port_zero", 16, "url = tls+tcp://x:0", NULL, NULL,
	    ":16: [peer us-east-1] url: want tls+tcp://HOST:PORT, PORT "
	    "1..65535, got \"tls+tcp://x:0\"" },
	{ "bad_url_path", 16, "url = tls+tcp://x:7400/", NULL, NULL,
	    ":16: [peer us-east-1] url: want tls+tcp://HOST:PORT" },
	{ "bad_metrics", 8, AGENT8 "metrics = localhost", NULL, NULL,
	    ":9: [agent] metrics: want HOST:PORT, PORT 0..65535, or off, got "
	    "\"localhost\"" },
	{ "bad_log_format", 8, AGENT8 "log_format = text", NULL, NULL,
	    ":9: [agent] log_format: want logfmt or json, got \"text\"" },
	{ "bad_log_level", 8, AGENT8 "log_level = INFO", NULL, NULL,
	    ":9: [agent] log_level: want debug, info, warn or error, got "
	    "\"INFO\"" },
	{ "empty_path", 5, "data_dir =", NULL, NULL,
	    ":5: [agent] data_dir: want a path, got \"\"" },
	{ "socket_path_too_long", 7,
	    "query_socket = /run/revokd/"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	    "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx.sock",
	    NULL, NULL,
	    ":7: [agent] query_socket: want a path of at most 107 bytes, got "
	    "108 bytes" },
	{ "duplicate_key", 2, "region = eu-west-1\nregion = eu-west-2", NULL,
	    NULL, ":3: [agent] region: duplicate key (first at line 2)" },
	{ "duplicate_peer_key", 16,
	    "url = tls+tcp://us-east-1.internal:7400\nid = 2", NULL, NULL,
	    ":17: [peer us-east-1] id: duplicate key (first at line 15)" },
	{ "duplicate_section", 0, NULL, "[tls]\n", NULL,
	    ":17: [tls]: duplicate section (first at line 9)" },
	{ "duplicate_peer", 0, NULL,
	    "[peer us-east-1]\nid = 2\nurl = tls+tcp://x:1\n", NULL,
	    ":17: [peer us-east-1]: duplicate peer (first at line 14)" },
	{ "peer_own_name", 0, NULL,
	    "[peer eu-west-1]\nid = 2\nurl = tls+tcp://eu-west-1:7400\n", NULL,
	    ":17: [peer eu-west-1]: is this region (region = eu-west-1)" },
	{ "peer_own_id", 0, NULL,
	    "[peer ap-south-1]\nid = 3\nurl = tls+tcp://ap-south-1:7400\n",
	    NULL,
	    ":18: [peer ap-south-1] id: 3 is this region's own region_id" },
	{ "two_peers_one_id", 0, NULL,
	    "[peer ap-south-1]\nid = 1\nurl = tls+tcp://ap-south-1:7400\n",
	    NULL,
	    ":18: [peer ap-south-1] id: 1 is also the id of [peer us-east-1] "
	    "(line 15)" },
	{ "peer_missing_url", 16, "", NULL, NULL,
	    ":14: [peer us-east-1] url: missing" },
	{ "peer_missing_id", 15, "", NULL, NULL,
	    ":14: [peer us-east-1] id: missing" },
	{ "peer_empty", 0, NULL, "[peer ap-south-1]\n", NULL,
	    ":17: [peer ap-south-1] id: missing" },
	{ "missing_region", 2, "", NULL, NULL, ": [agent] region: missing" },
	{ "missing_tls_key", 13, "", NULL, NULL, ": [tls] key: missing" },
	{ "empty_file", 0, NULL, NULL, "", ": [agent] region: missing" },
	{ "comments_only", 0, NULL, NULL, "; nothing\n\n  # here\n",
	    ": [agent] region: missing" },
	{ "key_outside_section", 0, NULL, NULL, "\nregion = eu-west-1\n",
	    ":2: region: not in a section" },
	{ "syntax_no_equals", 0, NULL, "[limits]\nbacklog\n", NULL,
	    ":18: [limits]: syntax error: want key = value" },
	{ "syntax_no_bracket", 0, NULL, "[limits\n", NULL,
	    ":17: syntax error: '[' without ']'" },
	{ "syntax_text_after_header", 0, NULL, "[limits] x\n", NULL,
	    ":17: [limits]: syntax error: text after ']'" },
	{ "syntax_empty_key", 0, NULL, "[limits]\n= 5\n", NULL,
	    ":18: [limits]: syntax error: no key before '='" },
	{ "first_error_wins", 3, "region_id = abc", "[bogus]\n", NULL,
	    ":3: [agent] region_id: want 1..65535, got \"abc\"" },
	{ "comment_then_syntax_error", 0, NULL,
	    "; fine\n[limits]\n  nonsense ; no value\n", NULL,
	    ":19: [limits]: syntax error: want key = value" },
};

/* One case: ECONFIG, the message, and the out-parameter left alone. */
static void
test_error_case(void **state)
{
	const error_case *e = *state;
	char path[PATH_MAX], err[AGENT_ERR_LEN] = "";
	char *text = e->text ? strdup(e->text)
	                     : test_text(e->line, e->repl, e->append, "\n");

	memset(&test_cfg, 0x5a, sizeof(test_cfg));
	memcpy(&test_untouched, &test_cfg, sizeof(test_cfg));
	assert_int_equal(test_load(path, text, err), REVOKD_ECONFIG);
	free(text);
	test_err_is(err, path, e->want);
	assert_memory_equal(&test_cfg, &test_untouched, sizeof(test_cfg));
}

static void
test_not_found(void **state)
{
	char path[PATH_MAX], err[AGENT_ERR_LEN] = "";

	(void)state;
	test_path(path, "missing.conf");
	assert_int_equal(agent_config_load(path, &test_cfg, err, sizeof(err)),
	    REVOKD_ENOTFOUND);
	test_err_is(err, path, ": No such file or directory");
}

static void
test_config_is_directory(void **state)
{
	char err[AGENT_ERR_LEN] = "";

	(void)state;
	assert_int_equal(
	    agent_config_load(test_dir, &test_cfg, err, sizeof(err)),
	    REVOKD_EIO);
	test_err_is(err, test_dir, ": read: Is a directory");
}

/* ------------------------------------------------------------------------
 * Private files and the secret
 * ------------------------------------------------------------------------ */

static void
test_private_file(void **state)
{
	static const struct {
		mode_t mode;
		revokd_err rc;
		const char *want;
	} cases[] = {
		{ 0600, REVOKD_OK, NULL },
		{ 0400, REVOKD_OK, NULL },
		{ 0640, REVOKD_EPERM,
		    ": mode 0640: must not be readable by "
		    "group or others (chmod 600)" },
		{ 0604, REVOKD_EPERM,
		    ": mode 0604: must not be readable by "
		    "group or others (chmod 600)" },
		{ 0644, REVOKD_EPERM,
		    ": mode 0644: must not be readable by "
		    "group or others (chmod 600)" },
		{ 0620, REVOKD_EPERM,
		    ": mode 0620: must not be accessible by "
		    "group or others (chmod 600)" },
	};
	char path[PATH_MAX], err[AGENT_ERR_LEN];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		test_write(path, "private", "x", 1, cases[i].mode);
		err[0] = '\0';
		assert_int_equal(
		    revokd_private_file_check(path, err, sizeof(err)),
		    cases[i].rc);
		if (cases[i].want != NULL)
			test_err_is(err, path, cases[i].want);
		unlink(path);
	}
	assert_int_equal(revokd_private_file_check(test_dir, err, sizeof(err)),
	    REVOKD_EIO);
	test_err_is(err, test_dir, ": a directory: want a regular file");
	test_path(path, "missing");
	assert_int_equal(revokd_private_file_check(path, err, sizeof(err)),
	    REVOKD_ENOTFOUND);
	test_err_is(err, path, ": No such file or directory");
}

/* Load a secret of len bytes (and mode); the secret stays as it was but on
 * success. */
static void
test_secret_len(size_t len, mode_t mode, revokd_err rc, const char *want)
{
	uint8_t data[1000], secret[CRDT_SECRET_LEN], before[CRDT_SECRET_LEN];
	char path[PATH_MAX], err[AGENT_ERR_LEN] = "";

	assert_true(len <= sizeof(data));
	for (size_t i = 0; i < len; i++)
		data[i] = (uint8_t)(i * 7 + 1);
	memset(secret, 0xaa, sizeof(secret));
	memcpy(before, secret, sizeof(secret));
	test_write(path, "cluster.secret", data, len, mode);
	assert_int_equal(
	    revokd_secret_load(path, secret, sizeof(secret), err, sizeof(err)),
	    rc);
	if (rc == REVOKD_OK)
		assert_memory_equal(secret, data, CRDT_SECRET_LEN);
	else
		assert_memory_equal(secret, before, CRDT_SECRET_LEN);
	if (want != NULL)
		test_err_is(err, path, want);
	unlink(path);
}

static void
test_secret_load(void **state)
{
	char path[PATH_MAX], err[AGENT_ERR_LEN] = "";
	uint8_t secret[CRDT_SECRET_LEN];

	(void)state;
	test_secret_len(31, 0600, REVOKD_ECONFIG, ": 31 bytes, want 32");
	test_secret_len(32, 0600, REVOKD_OK, NULL);
	test_secret_len(32, 0400, REVOKD_OK, NULL);
	test_secret_len(33, 0600, REVOKD_ECONFIG, ": 33 bytes, want 32");
	test_secret_len(0, 0600, REVOKD_ECONFIG, ": 0 bytes, want 32");
	test_secret_len(1000, 0600, REVOKD_ECONFIG, ": 1000 bytes, want 32");
	test_secret_len(32, 0640, REVOKD_EPERM, ": mode 0640: must not be");
	test_path(path, "missing");
	assert_int_equal(
	    revokd_secret_load(path, secret, sizeof(secret), err, sizeof(err)),
	    REVOKD_ENOTFOUND);
	test_err_is(err, path, ": No such file or directory");
	assert_int_equal(revokd_secret_load(test_dir, secret, sizeof(secret),
	                     err, sizeof(err)),
	    REVOKD_EIO);
	test_err_is(err, test_dir, ": a directory: want a regular file");
}

static int
test_group_setup(void **state)
{
	(void)state;
	test_dir = tu_tmpdir();
	return 0;
}

static int
test_group_teardown(void **state)
{
	(void)state;
	tu_rmdir(test_dir);
	return 0;
}

int
main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_full_roundtrip),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_metrics_off),
		cmocka_unit_test(test_bom_crlf),
		cmocka_unit_test(test_long_lines),
		cmocka_unit_test(test_peer_limit),
		cmocka_unit_test(test_not_found),
		cmocka_unit_test(test_config_is_directory),
		cmocka_unit_test(test_private_file),
		cmocka_unit_test(test_secret_load),
	};
	size_t n_fixed = sizeof(fixed) / sizeof(fixed[0]);
	size_t n_cases = sizeof(error_cases) / sizeof(error_cases[0]);
	struct CMUnitTest *tests = calloc(n_fixed + n_cases, sizeof(*tests));
	int failed;

	if (tests == NULL)
		return 1;
	memcpy(tests, fixed, sizeof(fixed));
	for (size_t i = 0; i < n_cases; i++) {
		tests[n_fixed + i].name = error_cases[i].name;
		tests[n_fixed + i].test_func = test_error_case;
		tests[n_fixed + i].initial_state = &error_cases[i];
	}
	failed = _cmocka_run_group_tests("agent_config", tests,
	    n_fixed + n_cases, test_group_setup, test_group_teardown);
	free(tests);
	return failed;
}
