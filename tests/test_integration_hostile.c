/*
 * test_integration_hostile.c: real revokd agents on loopback
 * (bench/cluster.h) facing hostile or broken clients.
 *
 * Peers: TLS clients (OpenSSL's libssl, in this process) with no
 * certificate, a certificate from another CA, an expired certificate, and a
 * valid cluster certificate whose holder claims another region's name in
 * its Hello; and a plain TCP client sending garbage. Each must be refused
 * and logged (a peer_refused line naming the client's address), and the
 * agent must go on serving: it answers a Check and keeps its real peers
 * connected, never having dropped them.
 *
 * Local clients: garbage, oversize and truncated frames, a thousand idle
 * connections, and a client that sends and never reads. Only the offending
 * connection may suffer: another client keeps getting answers throughout.
 *
 * The hostile certificates are made with the openssl command line in the
 * cluster dir: a second CA and a "beta" it signed, and a "beta" signed by
 * the cluster CA but valid only in January 2020 (`openssl ca` with
 * -startdate and -enddate, which OpenSSL 3.0's x509 command cannot set).
 *
 * Each group shares one cluster; the group teardown stops every agent with
 * SIGTERM and fails when one did not exit 0 or its log holds a sanitizer
 * report.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench/cluster.h"
#include "wire/wire.h"

#define READY_MS 30000   /* agents connected and synced */
#define ANSWER_MS 5000   /* one answer to a well-behaved client */
#define REFUSAL_MS 10000 /* an attempt refused, closed and logged */

#define VALID REVOKD__LOCAL__VERDICT__VALID
#define REVOKED REVOKD__LOCAL__VERDICT__REVOKED_TOKEN

/* The region attacked (alpha), and a token revoked there beforehand. */
#define TARGET 0
#define KNOWN "known-revoked"

/* Local limits of the agent under local attack (config.h rules). */
#define MAX_MESSAGE 1048576
#define CLIENT_OUTPUT (MAX_MESSAGE + 4)

#define IDLE_CLIENTS 1000

/* ------------------------------------------------------------------------ */
/* Fixtures                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * Group teardowns that failed: cmocka 1.1 reports a failed group teardown
 * but does not count it in its result, so main() adds these.
 */
static int teardown_failures;

/* Stop every agent, then fail on a bad exit or a sanitizer report. */
static int
group_teardown(void **state)
{
	cluster *c = *state;
	char why[1024];
	bool ok = true;

	if (c == NULL)
		return 0;
	if (c->n > 0 && !(ok = cluster_shutdown(c, why, sizeof(why))))
		print_error("agent trouble: %s\n", why);
	cluster_free(c);
	free(c);
	teardown_failures += !ok;
	return ok ? 0 : -1;
}

/* A cluster of n, started and connected, with KNOWN revoked everywhere. */
static int
group_start(void **state, unsigned n, const cluster_options *o)
{
	cluster *c = calloc(1, sizeof(*c));

	*state = c;
	if (c == NULL || cluster_new(n, o, c) != REVOKD_OK)
		return -1;
	for (unsigned i = 0; i < n; i++)
		if (!cluster_start(c, i)) {
			cluster_print_log(c, i);
			return -1;
		}
	for (unsigned i = 0; i < n; i++)
		if (!cluster_wait_ready(c, i, READY_MS)) {
			cluster_print_log(c, i);
			return -1;
		}
	if (cluster_revoke(c, TARGET, KNOWN, n > 1 ? n - 1 : 0, NULL) == 0)
		return -1;
	for (unsigned i = 0; i < n; i++)
		if (!cluster_wait_verdict(c, i, KNOWN, REVOKED, READY_MS))
			return -1;
	return 0;
}

/*
 * The hostile certificates, in DIR/hostile: other-ca.pem, other-beta.pem
 * and .key (a "beta" from that CA, which has the cluster CA's very
 * subject name but another key), expired-beta.pem and .key (a "beta" from
 * the cluster CA, valid in January 2020 only). The script checks that
 * openssl verify refuses each for the intended reason.
 */
static const char hostile_script[] =
    "set -e\n"
    "d=\"$1\"; h=\"$d/hostile\"; mkdir -p \"$h\"; cd \"$h\"\n"
    "key() { openssl genpkey -algorithm EC "
    "-pkeyopt ec_paramgen_curve:P-256 -out \"$1\"; }\n"
    "printf '%s\\n' 'basicConstraints=critical,CA:FALSE' "
    "'keyUsage=critical,digitalSignature' "
    "'extendedKeyUsage=serverAuth,clientAuth' "
    "'subjectAltName=DNS:beta' > ext\n"
    "key other-ca.key\n"
    "openssl req -new -x509 -key other-ca.key -out other-ca.pem -days 30 "
    "-subj '/CN=revokd cluster CA' "
    "-addext 'basicConstraints=critical,CA:TRUE' "
    "-addext 'keyUsage=critical,keyCertSign,cRLSign'\n"
    "key other-beta.key\n"
    "openssl req -new -key other-beta.key -subj /CN=beta -out other.csr\n"
    "openssl x509 -req -in other.csr -CA other-ca.pem -CAkey other-ca.key "
    "-set_serial 7 -days 30 -extfile ext -out other-beta.pem\n"
    "key expired-beta.key\n"
    "openssl req -new -key expired-beta.key -subj /CN=beta "
    "-out expired.csr\n"
    "mkdir db; : > db/index.txt; echo 01 > db/serial\n"
    "printf '%s\\n' '[ca]' 'default_ca = d' '[d]' 'database = db/index.txt' "
    "'new_certs_dir = db' 'serial = db/serial' 'default_md = sha256' "
    "'policy = p' 'unique_subject = no' '[p]' 'commonName = supplied' "
    "> ca.cnf\n"
    "openssl ca -batch -notext -config ca.cnf -cert \"$d/pki/ca.pem\" "
    "-keyfile \"$d/pki/ca.key\" -in expired.csr -out expired-beta.pem "
    "-startdate 20200101000000Z -enddate 20200201000000Z -extfile ext\n"
    /* Check they are what they claim: refused for the right reason. */
    "openssl verify -CAfile \"$d/pki/ca.pem\" expired-beta.pem 2>&1 | "
    "grep -q 'certificate has expired'\n"
    "if openssl verify -CAfile \"$d/pki/ca.pem\" other-beta.pem; then "
    "exit 1; fi\n"
    "openssl verify -CAfile other-ca.pem other-beta.pem\n"
    "chmod 600 *.key\n";

static int
tls_group_setup(void **state)
{
	const char *argv[] = { "/bin/sh", NULL, NULL, NULL };
	char path[512], out[16384];
	cluster *c;

	if (group_start(state, 3, NULL) != 0)
		return -1;
	c = *state;
	snprintf(path, sizeof(path), "%s/hostile.sh", c->dir);
	if (!cluster_write_file(c, "hostile.sh", hostile_script, 0600))
		return -1;
	argv[1] = path;
	argv[2] = c->dir;
	if (cluster_run(argv, out, sizeof(out), 60000) != 0) {
		print_error("making the hostile certificates failed:\n%s", out);
		return -1;
	}
	return 0;
}

static int
local_group_setup(void **state)
{
	char limits[128];
	cluster_options o = { .extra_limits = limits };

	snprintf(limits, sizeof(limits), "max_message = %u\nclient_output = %u",
	    MAX_MESSAGE, CLIENT_OUTPUT);
	return group_start(state, 1, &o);
}

/* ------------------------------------------------------------------------ */
/* Checks that the agent is still fine                                      */
/* ------------------------------------------------------------------------ */

/*
 * The target answers Checks on a fresh connection, has every peer
 * connected and synced, and has never logged a peer going down.
 */
static void
assert_still_serving(cluster *c)
{
	assert_int_equal(cluster_check_jti(c, TARGET, KNOWN), REVOKED);
	assert_int_equal(cluster_check_jti(c, TARGET, "never-revoked"), VALID);
	assert_true(cluster_wait_ready(c, TARGET, READY_MS));
	assert_false(cluster_log_has(c, TARGET, "event=peer_down", 0));
}

/* The target logged peer_refused for the client at local port `port`. */
static void
assert_refused_logged(cluster *c, uint16_t port, const char *reason)
{
	char addr[64];

	snprintf(addr, sizeof(addr), "addr=127.0.0.1:%u ", port);
	if (!cluster_log_line(c, TARGET, REFUSAL_MS, "event=peer_refused", addr,
	        reason ? reason : "reason=", (const char *)NULL)) {
		print_error("no peer_refused line with %s%s in %s\n", addr,
		    reason ? reason : "", c->node[TARGET].log);
		fail();
	}
}

/* ------------------------------------------------------------------------ */
/* A hostile peer                                                           */
/* ------------------------------------------------------------------------ */

/* What became of one connection attempt. */
typedef struct attempt {
	uint16_t local_port; /* ours, as the agent logs it */
	bool handshake;      /* TLS completed */
	size_t received;     /* application bytes the agent sent us */
	uint8_t data[16384]; /* the first of them */
	bool closed;         /* the agent closed the connection in time */
} attempt;

/* A TCP connection to the target's peer port: the descriptor. */
static int
tcp_connect(cluster *c, attempt *a)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(c->node[TARGET].port);
	assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	a->local_port = ntohs(sa.sin_port);
	return fd;
}

/* Wait for fd to be readable until `end`; false on timeout. */
static bool
readable_before(int fd, uint64_t end)
{
	uint64_t now = cluster_now_ms();
	struct pollfd pfd = { fd, POLLIN, 0 };

	return now < end && poll(&pfd, 1, (int)(end - now)) > 0;
}

/* Read and drop raw bytes until EOF or an error (closed), or time's up. */
static void
drain_raw(int fd, attempt *a)
{
	uint64_t end = cluster_now_ms() + REFUSAL_MS;
	char buf[4096];

	while (readable_before(fd, end)) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			a->closed = true;
			return;
		}
	}
}

/* Read TLS records until the agent closes (or alerts), or time's up. */
static void
drain_tls(SSL *ssl, int fd, attempt *a)
{
	uint64_t end = cluster_now_ms() + REFUSAL_MS;
	char buf[4096];

	for (int reads = 0;
	     reads < 1000 && (SSL_pending(ssl) > 0 || readable_before(fd, end));
	     reads++) {
		int n = SSL_read(ssl, buf, sizeof(buf));

		if (n > 0) {
			size_t room = sizeof(a->data) - a->received;

			if (a->received < sizeof(a->data))
				memcpy(a->data + a->received, buf,
				    (size_t)n < room ? (size_t)n : room);
			a->received += (size_t)n;
			continue;
		}
		if (SSL_get_error(ssl, n) == SSL_ERROR_WANT_READ)
			continue;
		a->closed = true;
		return;
	}
}

/*
 * Connect to the target with TLS, presenting cert/key (NULL: none); once
 * the handshake is through, send `frame`. Then wait for the agent to
 * close. The agent's certificate is not checked: the client is the one
 * under test.
 */
static void
tls_attempt(cluster *c, const char *cert, const char *key, const uint8_t *frame,
    size_t frame_len, attempt *a)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *ssl;
	int fd;

	memset(a, 0, sizeof(*a));
	assert_non_null(ctx);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	if (cert != NULL) {
		assert_int_equal(
		    SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM),
		    1);
		assert_int_equal(
		    SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM), 1);
	}
	fd = tcp_connect(c, a);
	{
		struct timeval tv = { REFUSAL_MS / 1000, 0 };

		/* SSL_connect blocks: bound it. */
		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	}
	ssl = SSL_new(ctx);
	assert_non_null(ssl);
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) == 1) {
		a->handshake = true;
		if (frame != NULL)
			assert_int_equal(SSL_write(ssl, frame, (int)frame_len),
			    (int)frame_len);
		drain_tls(ssl, fd, a);
	} else {
		drain_raw(fd, a);
	}
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	ERR_clear_error();
	close(fd);
}

/* A path under the cluster dir. */
static const char *
cpath(cluster *c, const char *name)
{
	static char buf[4][512];
	static unsigned next;
	char *p = buf[next++ % 4];

	snprintf(p, sizeof(buf[0]), "%s/%s", c->dir, name);
	return p;
}

/* A certificate that fails at the TLS layer: refused before any Hello. */
static void
tls_refused(cluster *c, const char *cert, const char *key)
{
	attempt a;

	tls_attempt(c, cert, key, NULL, 0, &a);
	assert_false(a.handshake);
	assert_int_equal(a.received, 0);
	assert_true(a.closed);
	assert_refused_logged(c, a.local_port, NULL);
	assert_still_serving(c);
}

static void
test_tls_no_certificate(void **state)
{
	tls_refused(*state, NULL, NULL);
}

static void
test_tls_other_ca(void **state)
{
	cluster *c = *state;

	tls_refused(c, cpath(c, "hostile/other-beta.pem"),
	    cpath(c, "hostile/other-beta.key"));
}

static void
test_tls_expired(void **state)
{
	cluster *c = *state;

	tls_refused(c, cpath(c, "hostile/expired-beta.pem"),
	    cpath(c, "hostile/expired-beta.key"));
}

/* The DER of the PEM certificate at path (malloc'd), its length in *len. */
static uint8_t *
cert_der(const char *path, size_t *len)
{
	FILE *f = fopen(path, "r");
	X509 *x;
	uint8_t *der = NULL;
	int n;

	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	n = i2d_X509(x, &der);
	X509_free(x);
	assert_true(n > 0);
	*len = (size_t)n;
	return der;
}

/*
 * What the agent sent was its own Hello and nothing else: no Auth, since
 * it signs a peer's nonce only once the peer's Hello passed.
 */
static void
assert_only_hello(const attempt *a)
{
	wire_decoder d;
	const uint8_t *frame;
	size_t len;
	unsigned frames = 0;

	assert_true(a->received > 0 && a->received <= sizeof(a->data));
	wire_decoder_init(&d, WIRE_MAX_FRAME_DEFAULT);
	assert_int_equal(wire_decoder_feed(&d, a->data, a->received),
	    REVOKD_OK);
	while (wire_decoder_next(&d, &frame, &len) == REVOKD_OK) {
		wire_peer_msg m;

		assert_int_equal(wire_peer_decode(frame, len, &m), REVOKD_OK);
		assert_int_equal(m.type, WIRE_HELLO);
		assert_string_equal(m.u.hello.region, "alpha");
		wire_peer_msg_free(&m);
		frames++;
	}
	wire_decoder_free(&d);
	assert_int_equal(frames, 1);
}

/*
 * gamma's real certificate and key get through TLS, but its Hello claims
 * to be beta (beta's name and id): refused, naming the mismatch, and the
 * real beta stays connected.
 */
static void
test_tls_claims_another_region(void **state)
{
	cluster *c = *state;
	wire_peer_msg m;
	uint8_t *der, *frame;
	size_t der_len, frame_len;
	attempt a;

	der = cert_der(cpath(c, "pki/gamma.pem"), &der_len);
	memset(&m, 0, sizeof(m));
	m.type = WIRE_HELLO;
	m.u.hello.protocol = WIRE_PROTOCOL;
	snprintf(m.u.hello.cluster, sizeof(m.u.hello.cluster), "test");
	snprintf(m.u.hello.region, sizeof(m.u.hello.region), "%s",
	    c->node[1].name);
	m.u.hello.region_id = c->node[1].id;
	m.u.hello.cert = der;
	m.u.hello.cert_len = der_len;
	for (unsigned k = 0; k < WIRE_NONCE_LEN; k++)
		m.u.hello.nonce[k] = (uint8_t)(k * 7 + 1);
	assert_int_equal(wire_peer_encode(&m, &frame, &frame_len), REVOKD_OK);

	tls_attempt(c, cpath(c, "pki/gamma.pem"), cpath(c, "pki/gamma.key"),
	    frame, frame_len, &a);
	free(frame);
	OPENSSL_free(der);
	assert_true(a.handshake);
	assert_true(a.closed);
	assert_refused_logged(c, a.local_port,
	    "certificate names gamma, not beta");
	assert_only_hello(&a);
	assert_still_serving(c);
}

/* A plain TCP client sending something that is not TLS. */
static void
test_plain_tcp_garbage(void **state)
{
	static const char junk[] = "GET / HTTP/1.1\r\nHost: revokd\r\n\r\n"
	                           "\x16\x03\x01\xff\xff garbage \x00\x01";
	cluster *c = *state;
	attempt a = { 0 };
	int fd = tcp_connect(c, &a);

	assert_int_equal(write(fd, junk, sizeof(junk)), (ssize_t)sizeof(junk));
	drain_raw(fd, &a);
	close(fd);
	assert_true(a.closed);
	assert_refused_logged(c, a.local_port, NULL);
	assert_still_serving(c);
}

/* ------------------------------------------------------------------------ */
/* Local clients                                                            */
/* ------------------------------------------------------------------------ */

/* A Check of jti on fd: the verdict, or -1 when no answer came in time. */
static int
check_on(int fd, const char *jti)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Check q = REVOKD__LOCAL__CHECK__INIT;
	Revokd__Local__Response *resp = NULL;
	int verdict = -1;

	q.jti.data = (uint8_t *)jti;
	q.jti.len = strlen(jti);
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_CHECK;
	req.check = &q;
	if (!cluster_send(fd, &req) ||
	    cluster_recv(fd, ANSWER_MS, &resp) != REVOKD_OK)
		return -1;
	if (resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_CHECK)
		verdict = (int)resp->check->verdict;
	revokd__local__response__free_unpacked(resp, NULL);
	return verdict;
}

/* A well-behaved client on its own connection, and on a fresh one. */
static void
assert_others_answered(cluster *c, int good)
{
	assert_int_equal(check_on(good, KNOWN), REVOKED);
	assert_int_equal(cluster_check_jti(c, TARGET, KNOWN), REVOKED);
}

/* The next response on fd is an error with code; the error's message. */
static void
expect_error(int fd, Revokd__Local__ErrorCode code)
{
	Revokd__Local__Response *resp = NULL;

	assert_int_equal(cluster_recv(fd, ANSWER_MS, &resp), REVOKD_OK);
	assert_int_equal(resp->body_case, REVOKD__LOCAL__RESPONSE__BODY_ERROR);
	assert_int_equal(resp->error->code, code);
	revokd__local__response__free_unpacked(resp, NULL);
}

/* The agent closes fd (after what it had to say) within time. */
static void
expect_eof(int fd)
{
	Revokd__Local__Response *resp = NULL;

	assert_int_equal(cluster_recv(fd, ANSWER_MS, &resp), REVOKD_ECLOSED);
}

static void
put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/*
 * A well-framed payload that is no Request gets ERROR_MALFORMED and the
 * connection goes on; bytes that are no frame at all (text, whose first
 * four bytes read as a huge length) get ERROR_TOO_BIG and a close.
 */
static void
test_local_garbage(void **state)
{
	static const uint8_t junk[] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0x07,
		0x0f, 0xff };
	static const char text[] = "GET / HTTP/1.1\r\nHost: revokd\r\n\r\n";
	cluster *c = *state;
	uint8_t frame[4 + sizeof(junk)];
	int good, bad;

	assert_true((good = cluster_open(c->node[TARGET].query)) >= 0);
	assert_true((bad = cluster_open(c->node[TARGET].query)) >= 0);
	put_be32(frame, sizeof(junk));
	memcpy(frame + 4, junk, sizeof(junk));
	assert_int_equal(write(bad, frame, sizeof(frame)),
	    (ssize_t)sizeof(frame));
	expect_error(bad, REVOKD__LOCAL__ERROR_CODE__ERROR_MALFORMED);
	assert_others_answered(c, good);
	assert_int_equal(check_on(bad, KNOWN), REVOKED);
	close(bad);

	assert_true((bad = cluster_open(c->node[TARGET].query)) >= 0);
	assert_int_equal(write(bad, text, strlen(text)), (ssize_t)strlen(text));
	expect_error(bad, REVOKD__LOCAL__ERROR_CODE__ERROR_TOO_BIG);
	expect_eof(bad);
	close(bad);
	assert_others_answered(c, good);
	close(good);
}

/* A header one byte over max_message: ERROR_TOO_BIG, then EOF. */
static void
test_local_oversize(void **state)
{
	cluster *c = *state;
	uint8_t frame[4 + 64] = { 0 };
	int good, bad;

	assert_true((good = cluster_open(c->node[TARGET].query)) >= 0);
	assert_true((bad = cluster_open(c->node[TARGET].query)) >= 0);
	put_be32(frame, MAX_MESSAGE + 1);
	assert_int_equal(write(bad, frame, sizeof(frame)),
	    (ssize_t)sizeof(frame));
	expect_error(bad, REVOKD__LOCAL__ERROR_CODE__ERROR_TOO_BIG);
	expect_eof(bad);
	close(bad);
	assert_others_answered(c, good);
	close(good);
}

/*
 * A frame cut short: while it waits for the rest, others are answered;
 * when the client closes mid-frame, only it is gone.
 */
static void
test_local_truncated(void **state)
{
	cluster *c = *state;
	uint8_t frame[4 + 10] = { 0x0a, 0x05 };
	int good, bad;

	assert_true((good = cluster_open(c->node[TARGET].query)) >= 0);
	assert_true((bad = cluster_open(c->node[TARGET].query)) >= 0);
	put_be32(frame, 100);
	assert_int_equal(write(bad, frame, sizeof(frame)),
	    (ssize_t)sizeof(frame));
	assert_others_answered(c, good);
	close(bad);
	assert_others_answered(c, good);
	close(good);
}

/*
 * A thousand idle connections to the query socket: another client's
 * Checks are answered all along, and so, at the end, are the idle ones.
 */
static void
test_local_idle_connections(void **state)
{
	cluster *c = *state;
	struct rlimit rl;
	int good, idle[IDLE_CLIENTS];

	/* The agent inherited the limit main() raised, if it could. */
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 ||
	    rl.rlim_cur < IDLE_CLIENTS + 100) {
		print_message("RLIMIT_NOFILE too low for %d connections\n",
		    IDLE_CLIENTS);
		skip();
	}
	assert_true((good = cluster_open(c->node[TARGET].query)) >= 0);
	for (unsigned k = 0; k < IDLE_CLIENTS; k++) {
		idle[k] = cluster_open(c->node[TARGET].query);
		assert_true(idle[k] >= 0);
		if (k % 100 == 99)
			assert_others_answered(c, good);
	}
	for (unsigned r = 0; r < 50; r++)
		assert_int_equal(check_on(good, KNOWN), REVOKED);
	assert_int_equal(check_on(idle[0], KNOWN), REVOKED);
	assert_int_equal(check_on(idle[IDLE_CLIENTS / 2], KNOWN), REVOKED);
	assert_int_equal(check_on(idle[IDLE_CLIENTS - 1], KNOWN), REVOKED);
	for (unsigned k = 0; k < IDLE_CLIENTS; k++)
		close(idle[k]);
	assert_others_answered(c, good);
	close(good);
}

/*
 * A client that pipelines Status requests and never reads: its unread
 * answers pass client_output and the agent cuts it (our writes fail),
 * while another client keeps getting answers. Bounded by bytes and time.
 */
static void
test_local_never_reads(void **state)
{
	cluster *c = *state;
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Status st = REVOKD__LOCAL__STATUS__INIT;
	uint8_t buf[6 * 1024];
	size_t one, sent = 0, next_check = 0;
	uint64_t end = cluster_now_ms() + 60000;
	bool cut = false;
	int good, bad;

	req.body_case = REVOKD__LOCAL__REQUEST__BODY_STATUS;
	req.status = &st;
	one = revokd__local__request__get_packed_size(&req);
	for (size_t off = 0; off + 4 + one <= sizeof(buf); off += 4 + one) {
		put_be32(buf + off, (uint32_t)one);
		revokd__local__request__pack(&req, buf + off + 4);
	}
	assert_true((good = cluster_open(c->node[TARGET].query)) >= 0);
	assert_true((bad = cluster_open(c->node[TARGET].query)) >= 0);
	while (!cut && cluster_now_ms() < end && sent < (64u << 20)) {
		size_t len = sizeof(buf) - sizeof(buf) % (4 + one);
		ssize_t n = send(bad, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0) {
			sent += (size_t)n;
		} else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			struct pollfd pfd = { bad, POLLOUT, 0 };

			poll(&pfd, 1, 50);
		} else {
			cut = errno == EPIPE || errno == ECONNRESET;
			break;
		}
		if (sent >= next_check) {
			assert_int_equal(check_on(good, KNOWN), REVOKED);
			next_check = sent + (128u << 10);
		}
	}
	close(bad);
	if (!cut)
		print_error("not cut after %zu bytes of requests\n", sent);
	assert_true(cut);
	assert_others_answered(c, good);
	close(good);
}

/*
 * What happened to the offending clients above reached the log: an
 * oversize request and a client cut for not reading are events an
 * operator must be able to see (local.h names them: "oversize",
 * "cut_slow").
 */
static void
test_local_events_logged(void **state)
{
	cluster *c = *state;
	bool oversize = cluster_log_has(c, TARGET, "oversize", 1000);
	bool cut = cluster_log_has(c, TARGET, "cut_slow", 1000);

	if (!oversize || !cut)
		print_error("%s holds no line about %s%s%s\n",
		    c->node[TARGET].log, oversize ? "" : "the oversize frame",
		    !oversize && !cut ? " nor " : "",
		    cut ? "" : "the client cut for not reading");
	assert_true(oversize);
	assert_true(cut);
}

int
main(void)
{
	const struct CMUnitTest tls_tests[] = {
		cmocka_unit_test(test_tls_no_certificate),
		cmocka_unit_test(test_tls_other_ca),
		cmocka_unit_test(test_tls_expired),
		cmocka_unit_test(test_tls_claims_another_region),
		cmocka_unit_test(test_plain_tcp_garbage),
	};
	const struct CMUnitTest local_tests[] = {
		cmocka_unit_test(test_local_garbage),
		cmocka_unit_test(test_local_oversize),
		cmocka_unit_test(test_local_truncated),
		cmocka_unit_test(test_local_idle_connections),
		cmocka_unit_test(test_local_never_reads),
		cmocka_unit_test(test_local_events_logged),
	};
	struct rlimit rl;
	int failed;

	/* Room for the idle connections, here and in the agents. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
	    rl.rlim_cur < 4 * IDLE_CLIENTS) {
		rl.rlim_cur = rl.rlim_max < 4 * IDLE_CLIENTS ? rl.rlim_max
		                                             : 4 * IDLE_CLIENTS;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	failed = cmocka_run_group_tests_name("peers", tls_tests,
	    tls_group_setup, group_teardown);
	failed += cmocka_run_group_tests_name("local", local_tests,
	    local_group_setup, group_teardown);
	return failed + teardown_failures;
}
