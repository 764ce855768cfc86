/*
 * config.c: revokd's configuration file, read with inih, and the private
 * files it names (the cluster secret, TLS keys).
 *
 * Theory of the reader. Debian's libinih is built without
 * INI_HANDLER_LINENO, so its handler is never told the line it is handling.
 * We feed inih through our own reader (ini_parse_stream), one physical line
 * per call, and count: while the handler runs, its line is the one the
 * reader handed over last. Being in the middle of every line, the reader
 * also covers what inih does not do for us:
 *   - Sections are ours. inih keeps a section name in 50 bytes, too few for
 *     "peer " and a 63-byte region name, and says nothing about a section
 *     without keys; so headers are parsed here and reach inih as blank lines.
 *   - Leading whitespace is stripped, so an indented line is never taken
 *     for the continuation of the previous value (inih's multi-line values).
 *   - inih's line buffer is small (INI_MAX_LINE, 200 bytes in Debian's
 *     build) and it splits longer lines. For a longer "key = value" line,
 *     inih is handed the key alone and the handler takes the value from the
 *     reader, so paths up to PATH_MAX still work.
 *   - inih calls no handler for a line it cannot parse and goes on; the
 *     reader notices and stops there, so the first problem is the one told.
 * Comments and blank lines reach inih as blank lines too: what it sees is
 * only ever "key = value" lines, which it splits and passes on.
 */
#include "agent/config.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <ini.h>
#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "crdt/crdt.h"

/* ------------------------------------------------------------------------
 * The keys
 * ------------------------------------------------------------------------ */

/* The sections a key can live in. */
typedef enum config__section {
	CONFIG__NONE = 0, /* before the first header */
	CONFIG__AGENT,
	CONFIG__TLS,
	CONFIG__LIMITS,
	CONFIG__PEER,
	CONFIG__NSECTIONS,
} config__section;

static const char *const config__section_names[CONFIG__NSECTIONS] = {
	[CONFIG__AGENT] = "agent",
	[CONFIG__TLS] = "tls",
	[CONFIG__LIMITS] = "limits",
	[CONFIG__PEER] = "peer",
};

/* What a value must look like. */
typedef enum config__type {
	CONFIG__NAME,       /* a region or cluster name (config__name_ok) */
	CONFIG__UINT,       /* decimal digits only, within [min, max] */
	CONFIG__PATH,       /* non-empty, at most max bytes */
	CONFIG__URL,        /* tls+tcp://HOST:PORT, port within [min, max] */
	CONFIG__ADDR,       /* HOST:PORT, port within [min, max]; or "off" */
	CONFIG__LOG_FORMAT, /* config__log_formats */
	CONFIG__LOG_LEVEL,  /* config__log_levels */
} config__type;

/* One key: where it lives, what it takes, where it goes. */
typedef struct config__key {
	config__section section;
	const char *name;
	config__type type;
	bool required;
	size_t offset; /* in agent_config, or agent_peer_config for peers */
	size_t size;   /* of that field */
	uint64_t min;
	uint64_t max;
} config__key;

/* A Unix socket path must fit sun_path with its NUL. */
#define CONFIG__SOCKET_MAX (sizeof(((struct sockaddr_un *)0)->sun_path) - 1)

#define CONFIG__KEY(sec, type_, st, key, field, req, lo, hi)                   \
	{                                                                      \
		.section = sec, .name = key, .type = type_, .required = req,   \
		.offset = offsetof(st, field),                                 \
		.size = sizeof(((st *)0)->field), .min = lo, .max = hi         \
	}
#define CONFIG__A(sec, type, key, field, req, lo, hi)                          \
	CONFIG__KEY(CONFIG__##sec, CONFIG__##type, agent_config, key, field,   \
	    req, lo, hi)
#define CONFIG__P(type, key, field, req, lo, hi)                               \
	CONFIG__KEY(CONFIG__PEER, CONFIG__##type, agent_peer_config, key,      \
	    field, req, lo, hi)

/*
 * Every key, in the order missing ones are reported. Ports of listening
 * addresses may be 0 (any free port); a peer must be dialed on a real one.
 */
static const config__key config__keys[] = {
	CONFIG__A(AGENT, NAME, "region", region, true, 0, 0),
	CONFIG__A(AGENT, UINT, "region_id", region_id, true, 1, 65535),
	CONFIG__A(AGENT, NAME, "cluster", cluster, true, 0, 0),
	CONFIG__A(AGENT, PATH, "data_dir", data_dir, true, 1, PATH_MAX - 1),
	CONFIG__A(AGENT, PATH, "secret_file", secret_file, true, 1,
	    PATH_MAX - 1),
	CONFIG__A(AGENT, PATH, "query_socket", query_socket, true, 1,
	    CONFIG__SOCKET_MAX),
	CONFIG__A(AGENT, PATH, "admin_socket", admin_socket, true, 1,
	    CONFIG__SOCKET_MAX),
	CONFIG__A(AGENT, ADDR, "metrics", metrics, false, 0, 65535),
	CONFIG__A(AGENT, UINT, "max_token_lifetime", max_token_lifetime, false,
	    1, 31536000),
	/* 0 would prune at exp, whatever the clocks of other regions say. */
	CONFIG__A(AGENT, UINT, "prune_leeway", prune_leeway, false, 1,
	    31536000),
	CONFIG__A(AGENT, UINT, "max_staleness", max_staleness_ms, false, 1,
	    86400000),
	CONFIG__A(AGENT, LOG_FORMAT, "log_format", log_format, false, 0, 0),
	CONFIG__A(AGENT, LOG_LEVEL, "log_level", log_level, false, 0, 0),
	CONFIG__A(TLS, URL, "listen", listen, true, 0, 65535),
	CONFIG__A(TLS, PATH, "ca", ca, true, 1, PATH_MAX - 1),
	CONFIG__A(TLS, PATH, "cert", cert, true, 1, PATH_MAX - 1),
	CONFIG__A(TLS, PATH, "key", key, true, 1, PATH_MAX - 1),
	CONFIG__A(LIMITS, UINT, "max_message", max_message, false, 65536,
	    67108864),
	CONFIG__A(LIMITS, UINT, "backlog", backlog, false, 1, 16777216),
	CONFIG__A(LIMITS, UINT, "max_connections", max_connections, false, 1,
	    1000000),
	CONFIG__A(LIMITS, UINT, "client_output", client_output, false, 65536,
	    1073741824),
	CONFIG__A(LIMITS, UINT, "map_size", map_size, false, 1048576,
	    UINT64_C(1099511627776)),
	CONFIG__P(UINT, "id", id, true, 1, 65535),
	CONFIG__P(URL, "url", url, true, 1, 65535),
};

#define CONFIG__NKEYS (sizeof(config__keys) / sizeof(config__keys[0]))

/* Names of the log formats and levels, indexed by their enum values. */
static const char *const config__log_formats[] = { "logfmt", "json" };
static const char *const config__log_levels[] = { "debug", "info", "warn",
	"error" };

/* Defaults of the optional keys. */
static void
config__defaults(agent_config *c)
{
	snprintf(c->metrics, sizeof(c->metrics), "127.0.0.1:9464");
	c->max_token_lifetime = 3600;
	c->prune_leeway = 300;
	c->max_staleness_ms = 5000;
	c->log_format = AGENT_LOG_LOGFMT;
	c->log_level = AGENT_LOG_INFO;
	c->max_message = (size_t)1 << 20;
	c->backlog = 65536;
	c->max_connections = 4096;
	c->client_output = (size_t)4 << 20;
	c->map_size = SIZE_MAX > (UINT64_C(8) << 30)
	                  ? (size_t)(UINT64_C(8) << 30)
	                  : SIZE_MAX;
}

/* The key called name in section s, or NULL. */
static const config__key *
config__key_find(config__section s, const char *name)
{
	for (size_t i = 0; i < CONFIG__NKEYS; i++)
		if (config__keys[i].section == s &&
		    strcmp(config__keys[i].name, name) == 0)
			return &config__keys[i];
	return NULL;
}

/* ------------------------------------------------------------------------
 * The parser's state and its messages
 * ------------------------------------------------------------------------ */

/* Room for a value or a section header quoted in a message. */
#define CONFIG__QUOTE_LEN 160

typedef struct config__parser {
	agent_config cfg; /* what we build; copied out on success only */
	const char *path;
	FILE *file;
	char *raw; /* the current line (getline's buffer) */
	size_t raw_cap;
	int lineno; /* of the current line */

	config__section section; /* we are in */
	unsigned peer;           /* cfg.peers index, in a peer section */
	char section_text[CONFIG__QUOTE_LEN]; /* header as written, printable */
	int section_line[CONFIG__NSECTIONS];  /* of the [agent], [tls]... */
	int key_line[CONFIG__NKEYS];          /* where each key was set */
	int peer_key_line[ENGINE_MAX_PEERS][CONFIG__NKEYS];

	bool key_pending;       /* the last line handed to inih is a key's... */
	bool handled;           /* ...and inih passed it to the handler */
	const char *long_value; /* of a line too long for inih's buffer */

	revokd_err rc; /* of the first failure; REVOKD_OK until then */
	char msg[AGENT_ERR_LEN];
} config__parser;

/*
 * s made printable for a message into buf (at most CONFIG__QUOTE_LEN):
 * quotes, backslashes and control bytes escaped, long strings cut with
 * "...". Within quotes when quoted.
 */
static const char *
config__printable(char *buf, const char *s, bool quoted)
{
	size_t n = 0, limit = CONFIG__QUOTE_LEN - 8; /* room for "...\"\0 */

	if (quoted)
		buf[n++] = '"';
	for (; *s != '\0' && n < limit; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			n += (size_t)snprintf(buf + n, 3, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			n += (size_t)snprintf(buf + n, 5, "\\x%02x", c);
		else
			buf[n++] = (char)c;
	}
	if (*s != '\0')
		n += (size_t)snprintf(buf + n, 4, "...");
	if (quoted)
		buf[n++] = '"';
	buf[n] = '\0';
	return buf;
}

/*
 * Record the first failure as "PATH:LINE: [section] key: what", leaving out
 * LINE when line is 0 and the section or key when NULL. Returns false, for
 * "return config__fail(...)".
 */
static bool __attribute__((format(printf, 5, 6)))
config__fail(config__parser *p, int line, const char *section, const char *key,
    const char *fmt, ...)
{
	char at[16] = "", what[AGENT_ERR_LEN];
	va_list ap;

	if (p->rc != REVOKD_OK)
		return false;
	p->rc = REVOKD_ECONFIG;
	if (line > 0)
		snprintf(at, sizeof(at), ":%d", line);
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(p->msg, sizeof(p->msg), "%s%s: %s%s%s%s%s%s", p->path, at,
	    section ? "[" : "", section ? section : "", section ? "]" : "",
	    section && key ? " " : "", key ? key : "",
	    section || key ? ": " : "");
	snprintf(p->msg + strlen(p->msg), sizeof(p->msg) - strlen(p->msg), "%s",
	    what);
	return false;
}

/* The current section as written, for messages; NULL before the first. */
static const char *
config__where(const config__parser *p)
{
	return p->section == CONFIG__NONE ? NULL : p->section_text;
}

/* A bad value for key k on the current line: "want ..., got VALUE". */
static bool
config__bad_value(config__parser *p, const config__key *k, const char *want,
    const char *value)
{
	char quoted[CONFIG__QUOTE_LEN];

	return config__fail(p, p->lineno, p->section_text, k->name,
	    "want %s, got %s", want, config__printable(quoted, value, true));
}

/* ------------------------------------------------------------------------
 * Values
 * ------------------------------------------------------------------------ */

/*
 * A region or cluster name: 1..WIRE_NAME_MAX bytes of a-z, 0-9 and '-', not
 * starting or ending with '-' (the rule of scripts/gen-certs: names become
 * certificate CNs, DNS names and file names).
 */
static bool
config__name_ok(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > WIRE_NAME_MAX || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (; *s != '\0'; s++)
		if (!(*s >= 'a' && *s <= 'z') && !(*s >= '0' && *s <= '9') &&
		    *s != '-')
			return false;
	return true;
}

#define CONFIG__NAME_WANT                                                      \
	"1..63 of a-z, 0-9 and '-', not starting or ending with '-'"

/* s as a decimal number: digits only, no sign, no space, no overflow. */
static bool
config__parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return false;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9')
			return false;
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return true;
}

/* A host name, an IPv4 address or a bracketed IPv6 one: its end, or NULL. */
static const char *
config__host_end(const char *s)
{
	const char *q = s;

	if (*s == '[') {
		for (q = s + 1;
		     (*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') ||
		     (*q >= 'A' && *q <= 'Z') || *q == ':' || *q == '.' ||
		     *q == '%';
		     q++)
			;
		return *q == ']' && q > s + 1 ? q + 1 : NULL;
	}
	while ((*q >= '0' && *q <= '9') || (*q >= 'a' && *q <= 'z') ||
	       (*q >= 'A' && *q <= 'Z') || *q == '.' || *q == '-' || *q == '_')
		q++;
	return q > s ? q : NULL;
}

/* HOST:PORT with the port within [min_port, max_port]. */
static bool
config__hostport_ok(const char *s, uint64_t min_port, uint64_t max_port)
{
	const char *end = config__host_end(s);
	uint64_t port;

	return end != NULL && *end == ':' &&
	       config__parse_u64(end + 1, &port) && port >= min_port &&
	       port <= max_port;
}

/* Store v (already checked to fit) in an unsigned field of size bytes. */
static void
config__store_uint(void *field, size_t size, uint64_t v)
{
	uint16_t v16 = (uint16_t)v;
	uint32_t v32 = (uint32_t)v;

	if (size == sizeof(v16))
		memcpy(field, &v16, size);
	else if (size == sizeof(v32))
		memcpy(field, &v32, size);
	else
		memcpy(field, &v, sizeof(v));
}

static bool
config__set_uint(config__parser *p, const config__key *k, void *field,
    const char *value)
{
	uint64_t v, max = k->max;
	char want[64];

	assert(k->size == 2 || k->size == 4 || k->size == 8);
	if (k->size < sizeof(uint64_t) && max >> (8 * k->size) != 0)
		max = (UINT64_C(1) << (8 * k->size)) - 1; /* 32-bit size_t */
	if (!config__parse_u64(value, &v) || v < k->min || v > max) {
		snprintf(want, sizeof(want), "%" PRIu64 "..%" PRIu64, k->min,
		    max);
		return config__bad_value(p, k, want, value);
	}
	config__store_uint(field, k->size, v);
	return true;
}

/* value into a char field of k->size bytes, when it fits. */
static bool
config__set_string(config__parser *p, const config__key *k, char *field,
    const char *value, const char *want)
{
	if (strlen(value) >= k->size)
		return config__fail(p, p->lineno, p->section_text, k->name,
		    "want %s of at most %zu bytes, got %zu bytes", want,
		    k->size - 1, strlen(value));
	memcpy(field, value, strlen(value) + 1);
	return true;
}

static bool
config__set_path(config__parser *p, const config__key *k, char *field,
    const char *value)
{
	size_t n = strlen(value);

	if (n == 0)
		return config__bad_value(p, k, "a path", value);
	if (n > k->max || n >= k->size)
		return config__fail(p, p->lineno, p->section_text, k->name,
		    "want a path of at most %" PRIu64 " bytes, got %zu bytes",
		    k->max, n);
	memcpy(field, value, n + 1);
	return true;
}

/* The scheme every URL of ours has. */
#define CONFIG__SCHEME "tls+tcp://"

static bool
config__set_url(config__parser *p, const config__key *k, char *field,
    const char *value)
{
	char want[64];

	snprintf(want, sizeof(want),
	    CONFIG__SCHEME "HOST:PORT, PORT %" PRIu64 "..%" PRIu64, k->min,
	    k->max);
	if (strncmp(value, CONFIG__SCHEME, strlen(CONFIG__SCHEME)) != 0 ||
	    !config__hostport_ok(value + strlen(CONFIG__SCHEME), k->min,
	        k->max))
		return config__bad_value(p, k, want, value);
	return config__set_string(p, k, field, value, "a URL");
}

static bool
config__set_addr(config__parser *p, const config__key *k, char *field,
    const char *value)
{
	char want[64];

	if (strcmp(value, "off") == 0) {
		field[0] = '\0';
		return true;
	}
	snprintf(want, sizeof(want),
	    "HOST:PORT, PORT %" PRIu64 "..%" PRIu64 ", or off", k->min, k->max);
	if (!config__hostport_ok(value, k->min, k->max))
		return config__bad_value(p, k, want, value);
	return config__set_string(p, k, field, value, "an address");
}

/* value's index in names (n of them, listed by want), or -1 after failing. */
static int
config__choice(config__parser *p, const config__key *k,
    const char *const *names, int n, const char *want, const char *value)
{
	for (int i = 0; i < n; i++)
		if (strcmp(value, names[i]) == 0)
			return i;
	config__bad_value(p, k, want, value);
	return -1;
}

static bool
config__set_log_format(config__parser *p, const config__key *k,
    agent_log_format *field, const char *value)
{
	int i = config__choice(p, k, config__log_formats, 2, "logfmt or json",
	    value);

	if (i >= 0)
		*field = (agent_log_format)i;
	return i >= 0;
}

static bool
config__set_log_level(config__parser *p, const config__key *k,
    agent_log_level *field, const char *value)
{
	int i = config__choice(p, k, config__log_levels, 4,
	    "debug, info, warn or error", value);

	if (i >= 0)
		*field = (agent_log_level)i;
	return i >= 0;
}

/* Check value and store it where key k goes, in the current section. */
static bool
config__set(config__parser *p, const config__key *k, const char *value)
{
	void *base = k->section == CONFIG__PEER ? (void *)&p->cfg.peers[p->peer]
	                                        : (void *)&p->cfg;
	void *field = (char *)base + k->offset;

	switch (k->type) {
	case CONFIG__NAME:
		if (!config__name_ok(value))
			return config__bad_value(p, k, CONFIG__NAME_WANT,
			    value);
		return config__set_string(p, k, field, value, "a name");
	case CONFIG__UINT:
		return config__set_uint(p, k, field, value);
	case CONFIG__PATH:
		return config__set_path(p, k, field, value);
	case CONFIG__URL:
		return config__set_url(p, k, field, value);
	case CONFIG__ADDR:
		return config__set_addr(p, k, field, value);
	case CONFIG__LOG_FORMAT:
		return config__set_log_format(p, k, field, value);
	case CONFIG__LOG_LEVEL:
		return config__set_log_level(p, k, field, value);
	}
	assert(!"unknown key type");
	return false;
}

/* ------------------------------------------------------------------------
 * Sections
 * ------------------------------------------------------------------------ */

/* Where key k was set in the current section (0: not yet). */
static int *
config__key_line(config__parser *p, const config__key *k)
{
	size_t i = (size_t)(k - config__keys);

	if (k->section == CONFIG__PEER)
		return &p->peer_key_line[p->peer][i];
	return &p->key_line[i];
}

/* Enter [peer NAME], its header on the current line. */
static bool
config__peer_begin(config__parser *p, const char *name)
{
	agent_config *c = &p->cfg;

	if (!config__name_ok(name))
		return config__fail(p, p->lineno, p->section_text, NULL,
		    "want [peer NAME], NAME " CONFIG__NAME_WANT);
	for (unsigned i = 0; i < c->n_peers; i++)
		if (strcmp(c->peers[i].name, name) == 0)
			return config__fail(p, p->lineno, p->section_text, NULL,
			    "duplicate peer (first at line %d)",
			    c->peers[i].line);
	if (c->n_peers == ENGINE_MAX_PEERS)
		return config__fail(p, p->lineno, p->section_text, NULL,
		    "too many peers (at most %d)", ENGINE_MAX_PEERS);
	p->peer = c->n_peers++;
	snprintf(c->peers[p->peer].name, sizeof(c->peers[p->peer].name), "%s",
	    name);
	c->peers[p->peer].line = p->lineno;
	p->section = CONFIG__PEER;
	return true;
}

/* Enter the section named name, its header on the current line. */
static bool
config__section_enter(config__parser *p, const char *name)
{
	if (strncmp(name, "peer", 4) == 0 &&
	    (name[4] == '\0' || name[4] == ' ' || name[4] == '\t')) {
		name += 4;
		name += strspn(name, " \t");
		return config__peer_begin(p, name);
	}
	for (int s = CONFIG__AGENT; s < CONFIG__PEER; s++) {
		if (strcmp(name, config__section_names[s]) != 0)
			continue;
		if (p->section_line[s] != 0)
			return config__fail(p, p->lineno, p->section_text, NULL,
			    "duplicate section (first at line %d)",
			    p->section_line[s]);
		p->section_line[s] = p->lineno;
		p->section = (config__section)s;
		return true;
	}
	return config__fail(p, p->lineno, p->section_text, NULL,
	    "unknown section");
}

/*
 * Where the first of chars, or an inline comment (';' after whitespace),
 * starts in s; its end when neither does. inih's own rule, which headers
 * and long lines, parsed here, must follow too.
 */
static char *
config__find_chars_or_comment(char *s, const char *chars)
{
	bool was_space = false;

	while (*s != '\0' && (chars == NULL || strchr(chars, *s) == NULL) &&
	       !(was_space && *s == ';')) {
		was_space = *s == ' ' || (*s >= '\t' && *s <= '\r');
		s++;
	}
	return s;
}

/* A "[section]" line: enter it. Only a comment may follow the ']'. */
static bool
config__header(config__parser *p, char *line)
{
	char *end = config__find_chars_or_comment(line + 1, "]");
	const char *rest;

	if (*end != ']')
		return config__fail(p, p->lineno, NULL, NULL,
		    "syntax error: '[' without ']'");
	*end = '\0';
	config__printable(p->section_text, line + 1, false);
	rest = end + 1 + strspn(end + 1, " \t");
	if (*rest != '\0' && *rest != ';' && *rest != '#')
		return config__fail(p, p->lineno, p->section_text, NULL,
		    "syntax error: text after ']'");
	return config__section_enter(p, line + 1);
}

/* ------------------------------------------------------------------------
 * Lines: the reader inih pulls them from, and the handler it calls
 * ------------------------------------------------------------------------ */

/* line without whitespace at either end (and without a UTF-8 BOM). */
static char *
config__trim(char *line, size_t len, bool first)
{
	if (first && len >= 3 && memcmp(line, "\xef\xbb\xbf", 3) == 0) {
		line += 3;
		len -= 3;
	}
	while (len > 0 && (line[len - 1] == ' ' ||
	                      (line[len - 1] >= '\t' && line[len - 1] <= '\r')))
		line[--len] = '\0';
	while (*line == ' ' || (*line >= '\t' && *line <= '\r'))
		line++;
	return line;
}

/* The next line, trimmed; NULL at the end of the file or on failure. */
static char *
config__next_line(config__parser *p)
{
	ssize_t n;

	errno = 0;
	n = getline(&p->raw, &p->raw_cap, p->file);
	if (n < 0) {
		int errnum = errno;

		if (ferror(p->file) || errnum == ENOMEM) {
			config__fail(p, 0, NULL, NULL, "read: %s",
			    strerror(errnum));
			p->rc = errnum == ENOMEM ? REVOKD_ENOMEM : REVOKD_EIO;
		}
		return NULL;
	}
	if (p->lineno == INT_MAX) {
		config__fail(p, p->lineno, NULL, NULL, "too many lines");
		return NULL;
	}
	p->lineno++;
	if (strlen(p->raw) != (size_t)n) {
		config__fail(p, p->lineno, NULL, NULL, "NUL byte in line");
		return NULL;
	}
	return config__trim(p->raw, (size_t)n, p->lineno == 1);
}

/*
 * A key line too long for inih's buffer of num bytes: split it as inih
 * would, keep the value in p->long_value and put "key=" in buf.
 */
static bool
config__long_line(config__parser *p, char *line, char *buf, int num)
{
	char *sep = config__find_chars_or_comment(line, "=:");
	char *value = sep + 1;
	size_t name_len = (size_t)(sep - line);

	if (*sep != '=' && *sep != ':')
		return config__fail(p, p->lineno, config__where(p), NULL,
		    "syntax error: want key = value");
	if (name_len + 3 > (size_t)num)
		return config__fail(p, p->lineno, config__where(p), NULL,
		    "key longer than %d bytes", num - 3);
	*config__find_chars_or_comment(value, NULL) = '\0';
	value = config__trim(value, strlen(value), false);
	p->long_value = value;
	memcpy(buf, line, name_len);
	memcpy(buf + name_len, "=\n", 3);
	return true;
}

/*
 * inih's reader: the next line for its buffer buf of num bytes, or NULL to
 * stop (end of file, or a failure). See the theory at the top.
 */
static char *
config__reader(char *buf, int num, void *stream)
{
	config__parser *p = stream;
	char *line;

	if (p->rc == REVOKD_OK && p->key_pending && !p->handled)
		config__fail(p, p->lineno, config__where(p), NULL,
		    "syntax error: want key = value");
	p->key_pending = p->handled = false;
	p->long_value = NULL;
	if (p->rc != REVOKD_OK || num < 3 ||
	    (line = config__next_line(p)) == NULL)
		return NULL;
	if (*line == '[' && !config__header(p, line))
		return NULL;
	if (*line == '\0' || *line == '[' || *line == ';' || *line == '#') {
		snprintf(buf, (size_t)num, "\n");
		return buf;
	}
	p->key_pending = true;
	if (strlen(line) + 2 > (size_t)num)
		return config__long_line(p, line, buf, num) ? buf : NULL;
	snprintf(buf, (size_t)num, "%s\n", line);
	return buf;
}

/*
 * inih's handler, for one "key = value" line: the current one. inih's own
 * section is unused (see the theory at the top).
 */
static int
config__handler(void *user, const char *section, const char *name,
    const char *value)
{
	config__parser *p = user;
	char printable[CONFIG__QUOTE_LEN];
	const config__key *k;
	int *line;

	(void)section;
	p->handled = true;
	if (p->long_value != NULL)
		value = p->long_value;
	config__printable(printable, name, false);
	if (p->section == CONFIG__NONE)
		return config__fail(p, p->lineno, NULL, printable,
		    "not in a section");
	if (*name == '\0')
		return config__fail(p, p->lineno, p->section_text, NULL,
		    "syntax error: no key before '='");
	if ((k = config__key_find(p->section, name)) == NULL)
		return config__fail(p, p->lineno, p->section_text, printable,
		    "unknown key");
	line = config__key_line(p, k);
	if (*line != 0)
		return config__fail(p, p->lineno, p->section_text, k->name,
		    "duplicate key (first at line %d)", *line);
	*line = p->lineno;
	return config__set(p, k, value);
}

/* ------------------------------------------------------------------------
 * Checks of the whole, and loading
 * ------------------------------------------------------------------------ */

/* Peer i has id and url, and is neither us nor a region listed before. */
static bool
config__peer_check(config__parser *p, unsigned i)
{
	const agent_config *c = &p->cfg;
	const agent_peer_config *peer = &c->peers[i];
	size_t id =
	    (size_t)(config__key_find(CONFIG__PEER, "id") - config__keys);
	char section[WIRE_NAME_MAX + 8];

	snprintf(section, sizeof(section), "peer %s", peer->name);
	for (size_t k = 0; k < CONFIG__NKEYS; k++)
		if (config__keys[k].section == CONFIG__PEER &&
		    config__keys[k].required && p->peer_key_line[i][k] == 0)
			return config__fail(p, peer->line, section,
			    config__keys[k].name, "missing");
	if (strcmp(peer->name, c->region) == 0)
		return config__fail(p, peer->line, section, NULL,
		    "is this region (region = %s): list the other regions",
		    c->region);
	if (peer->id == c->region_id)
		return config__fail(p, p->peer_key_line[i][id], section, "id",
		    "%u is this region's own region_id", (unsigned)peer->id);
	for (unsigned j = 0; j < i; j++)
		if (c->peers[j].id == peer->id)
			return config__fail(p, p->peer_key_line[i][id], section,
			    "id", "%u is also the id of [peer %s] (line %d)",
			    (unsigned)peer->id, c->peers[j].name,
			    p->peer_key_line[j][id]);
	return true;
}

/* After the last line: required keys are there, and peers make sense. */
static bool
config__finish(config__parser *p)
{
	for (size_t k = 0; k < CONFIG__NKEYS; k++)
		if (config__keys[k].section != CONFIG__PEER &&
		    config__keys[k].required && p->key_line[k] == 0)
			return config__fail(p, 0,
			    config__section_names[config__keys[k].section],
			    config__keys[k].name, "missing");
	for (unsigned i = 0; i < p->cfg.n_peers; i++)
		if (!config__peer_check(p, i))
			return false;
	/* One response as large as a request must fit a client's output. */
	if (p->cfg.client_output < p->cfg.max_message + WIRE_HEADER_LEN)
		return config__fail(p,
		    *config__key_line(p,
		        config__key_find(CONFIG__LIMITS, "client_output")),
		    "limits", "client_output",
		    "must be at least max_message + 4");
	return true;
}

/* Parse the open file into p->cfg. */
static revokd_err
config__parse(config__parser *p)
{
	int rc = ini_parse_stream(config__reader, p, config__handler, p);

	if (p->rc == REVOKD_OK && rc < 0) {
		config__fail(p, 0, NULL, NULL, "inih: out of memory");
		p->rc = REVOKD_ENOMEM;
	}
	if (p->rc == REVOKD_OK && rc > 0) /* not expected: the reader stops */
		config__fail(p, rc, NULL, NULL, "syntax error");
	if (p->rc == REVOKD_OK)
		config__finish(p);
	return p->rc;
}

revokd_err
agent_config_load(const char *path, agent_config *out, char *err,
    size_t err_len)
{
	config__parser *p;
	revokd_err rc;

	assert(path != NULL && out != NULL);
	if (strlen(path) >= sizeof(out->path)) {
		revokd_errf(err, err_len, "%.64s...: path too long", path);
		return REVOKD_EINVAL;
	}
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		revokd_errf(err, err_len, "%s: out of memory", path);
		return REVOKD_ENOMEM;
	}
	p->path = path;
	snprintf(p->cfg.path, sizeof(p->cfg.path), "%s", path);
	config__defaults(&p->cfg);
	if ((p->file = fopen(path, "re")) == NULL) {
		int errnum = errno;

		rc = revokd_err_from_errno(errnum);
		revokd_errf(err, err_len, "%s: %s", path, strerror(errnum));
		goto out;
	}
	if ((rc = config__parse(p)) == REVOKD_OK)
		*out = p->cfg;
	else
		revokd_errf(err, err_len, "%s", p->msg);
out:
	if (p->file != NULL)
		fclose(p->file);
	free(p->raw);
	free(p);
	return rc;
}
