/*
 * test_agent_tls.c: the agent's identity and the peer handshake
 * (agent/tls.h, agent/handshake.h).
 *
 * Every certificate is made here with OpenSSL, once for the whole run, into
 * a temporary directory: a cluster CA and regions alpha and beta (EC P-256,
 * CN and DNS SAN, as scripts/gen-certs makes them), a second CA with the
 * same name as the cluster's and an "alpha" it signed, an expired and a
 * not-yet-valid alpha, an alpha with a CN and no SAN, one with CN alpha and
 * SAN beta (the SAN decides), a wildcard, an upper-case name and an Ed25519
 * alpha. Time is the fixed NOW, never the clock.
 *
 * The handshakes pass frames between two agent_hs by hand; the attacks are
 * frames forged with wire_peer_encode and real keys.
 */
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/handshake.h"
#include "agent/tls.h"
#include "testutil.h"
#include "wire/wire.h"

/* 2023-11-14 22:13:20 UTC. */
#define NOW ((time_t)1700000000)
#define DAY ((time_t)86400)

#define AUTH_MSG_MAX (WIRE_NONCE_LEN + 2 * (WIRE_NAME_MAX + 1) + 32)

/* ------------------------------------------------------------------------ */
/* Certificates                                                             */
/* ------------------------------------------------------------------------ */

typedef struct cert_spec {
	const char *file; /* FILE.pem and FILE.key in the directory */
	const char *cn;   /* NULL: none */
	const char *san;  /* a DNS SAN; NULL: none */
	time_t not_before, not_after;
	bool ca;
	bool ed25519;
} cert_spec;

static struct {
	char *dir;
	long serial;
	EVP_PKEY *ca_key, *other_ca_key;
	X509 *ca, *other_ca;
} fx;

/* The path of name in the fixture directory (a few live at once). */
static const char *
path(const char *name)
{
	static char bufs[8][512];
	static unsigned next;
	char *p = bufs[next++ % 8];

	snprintf(p, sizeof(bufs[0]), "%s/%s", fx.dir, name);
	return p;
}

static void
add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);

	assert_non_null(ext);
	assert_int_equal(X509_add_ext(x, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A certificate for key, signed by issuer (NULL: self-signed). */
static X509 *
make_cert(const cert_spec *s, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_get_subject_name(x);
	EVP_PKEY *signer = issuer ? issuer_key : key;
	X509V3_CTX v3;
	char san[128];

	assert_non_null(x);
	X509_set_version(x, X509_VERSION_3);
	ASN1_INTEGER_set(X509_get_serialNumber(x), ++fx.serial);
	assert_non_null(ASN1_TIME_set(X509_getm_notBefore(x), s->not_before));
	assert_non_null(ASN1_TIME_set(X509_getm_notAfter(x), s->not_after));
	if (s->cn != NULL)
		X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
		    (const unsigned char *)s->cn, -1, -1, 0);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&v3, issuer ? issuer : x, x, NULL, NULL, 0);
	add_ext(x, &v3, NID_basic_constraints,
	    s->ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	add_ext(x, &v3, NID_key_usage,
	    s->ca ? "critical,keyCertSign,cRLSign"
	          : "critical,digitalSignature");
	if (!s->ca)
		add_ext(x, &v3, NID_ext_key_usage, "serverAuth,clientAuth");
	if (s->san != NULL) {
		snprintf(san, sizeof(san), "DNS:%s", s->san);
		add_ext(x, &v3, NID_subject_alt_name, san);
	}
	add_ext(x, &v3, NID_subject_key_identifier, "hash");
	add_ext(x, &v3, NID_authority_key_identifier, "keyid:always");
	assert_true(
	    X509_sign(x, signer,
	        EVP_PKEY_is_a(signer, "ED25519") ? NULL : EVP_sha256()) > 0);
	return x;
}

static void
write_cert(const char *file, X509 *x)
{
	char name[128];
	FILE *f;

	snprintf(name, sizeof(name), "%s.pem", file);
	f = fopen(path(name), "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509(f, x), 1);
	fclose(f);
}

static void
write_key(const char *file, EVP_PKEY *key)
{
	char name[128];
	int fd;
	FILE *f;

	snprintf(name, sizeof(name), "%s.key", file);
	fd = open(path(name), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(
	    PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	fclose(f);
}

static EVP_PKEY *
new_key(bool ed25519)
{
	EVP_PKEY *k = ed25519 ? EVP_PKEY_Q_keygen(NULL, NULL, "ED25519")
	                      : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");

	assert_non_null(k);
	return k;
}

/* Make s.file's key and certificate, signed by issuer, and write both. */
static void
issue(const cert_spec *s, X509 *issuer, EVP_PKEY *issuer_key)
{
	EVP_PKEY *key = new_key(s->ed25519);
	X509 *x = make_cert(s, key, issuer, issuer_key);

	write_cert(s->file, x);
	write_key(s->file, key);
	X509_free(x);
	EVP_PKEY_free(key);
}

static const cert_spec region_certs[] = {
	{ "alpha", "alpha", "alpha", NOW - 30 * DAY, NOW + 365 * DAY },
	{ "beta", "beta", "beta", NOW - 30 * DAY, NOW + 365 * DAY },
	{ "expired", "alpha", "alpha", NOW - 30 * DAY, NOW - DAY },
	{ "future", "alpha", "alpha", NOW + DAY, NOW + 365 * DAY },
	{ "cnonly", "alpha", NULL, NOW - DAY, NOW + 365 * DAY },
	{ "mixed", "alpha", "beta", NOW - DAY, NOW + 365 * DAY },
	{ "wildcard", "wild", "*.alpha", NOW - DAY, NOW + 365 * DAY },
	{ "upper", "ALPHA", "Alpha", NOW - DAY, NOW + 365 * DAY },
	{ "ed", "alpha", "alpha", NOW - DAY, NOW + 365 * DAY, false, true },
};

static int
setup(void **state)
{
	const cert_spec ca = { "ca", "revokd cluster CA", NULL, NOW - 60 * DAY,
		NOW + 3650 * DAY, true };
	/* Everyone's gen-certs names its CA the same: only the key differs. */
	const cert_spec other = { "other-ca", "revokd cluster CA", NULL,
		NOW - 60 * DAY, NOW + 3650 * DAY, true };
	const cert_spec rogue = { "rogue", "alpha", "alpha", NOW - DAY,
		NOW + 365 * DAY };
	FILE *f;

	(void)state;
	fx.dir = tu_tmpdir();
	fx.ca_key = new_key(false);
	fx.ca = make_cert(&ca, fx.ca_key, NULL, NULL);
	write_cert("ca", fx.ca);
	fx.other_ca_key = new_key(false);
	fx.other_ca = make_cert(&other, fx.other_ca_key, NULL, NULL);
	write_cert("other-ca", fx.other_ca);
	for (size_t i = 0; i < sizeof(region_certs) / sizeof(*region_certs);
	     i++)
		issue(&region_certs[i], fx.ca, fx.ca_key);
	issue(&rogue, fx.other_ca, fx.other_ca_key);

	f = fopen(path("garbage.pem"), "w");
	assert_non_null(f);
	fputs("this is not PEM\n", f);
	fclose(f);
	return 0;
}

static int
teardown(void **state)
{
	(void)state;
	X509_free(fx.ca);
	X509_free(fx.other_ca);
	EVP_PKEY_free(fx.ca_key);
	EVP_PKEY_free(fx.other_ca_key);
	tu_rmdir(fx.dir);
	return 0;
}

/* Load FILE.pem and FILE.key against ca.pem as region, at now. */
static revokd_err
load_as(const char *ca, const char *file, const char *key, const char *region,
    time_t now, agent_tls **out, char *err, size_t err_len)
{
	char cert_name[128], key_name[128], ca_name[128];

	snprintf(ca_name, sizeof(ca_name), "%s.pem", ca);
	snprintf(cert_name, sizeof(cert_name), "%s.pem", file);
	snprintf(key_name, sizeof(key_name), "%s.key", key);
	return agent_tls_load(path(ca_name), path(cert_name), path(key_name),
	    region, now, out, err, err_len);
}

/* A certificate that must load. */
static agent_tls *
load_ok(const char *ca, const char *file, const char *region, time_t now)
{
	agent_tls *t = NULL;
	char err[512] = "";
	revokd_err rc =
	    load_as(ca, file, file, region, now, &t, err, sizeof(err));

	if (rc != REVOKD_OK)
		fail_msg("load %s as %s: %s: %s", file, region,
		    revokd_err_name(rc), err);
	return t;
}

/* A certificate that must be refused with rc and a reason containing s. */
static void
load_refused(const char *file, const char *key, const char *region,
    revokd_err want, const char *reason)
{
	agent_tls *t = NULL;
	char err[512] = "";
	revokd_err rc =
	    load_as("ca", file, key, region, NOW, &t, err, sizeof(err));

	if (rc != want || strstr(err, reason) == NULL)
		fail_msg("load %s/%s as %s: got %s \"%s\", want %s \"%s\"",
		    file, key, region, revokd_err_name(rc), err,
		    revokd_err_name(want), reason);
	assert_null(t);
}

/* ------------------------------------------------------------------------ */
/* agent_tls_load                                                           */
/* ------------------------------------------------------------------------ */

static void
test_load_good(void **state)
{
	agent_tls *t = load_ok("ca", "alpha", "alpha", NOW);
	const uint8_t *der;
	size_t len = 0;

	(void)state;
	assert_non_null(strstr(agent_tls_ca_pem(t), "BEGIN CERTIFICATE"));
	assert_non_null(strstr(agent_tls_cert_pem(t), "BEGIN CERTIFICATE"));
	assert_non_null(strstr(agent_tls_key_pem(t), "PRIVATE KEY"));
	der = agent_tls_cert_der(t, &len);
	assert_non_null(der);
	assert_true(len > 100 && len < 1000);
	assert_int_equal(agent_tls_expires_in(t, NOW), 365 * DAY);
	assert_int_equal(agent_tls_expires_in(t, NOW + 366 * DAY), -DAY);
	agent_tls_free(t);

	/* Case-insensitive names, CN without SAN, Ed25519. */
	agent_tls_free(load_ok("ca", "upper", "alpha", NOW));
	agent_tls_free(load_ok("ca", "cnonly", "alpha", NOW));
	agent_tls_free(load_ok("ca", "ed", "alpha", NOW));
	agent_tls_free(NULL);
}

static void
test_load_refused(void **state)
{
	(void)state;
	assert_int_equal(chmod(path("alpha.key"), 0644), 0);
	load_refused("alpha", "alpha", "alpha", REVOKD_EPERM,
	    "alpha.key is readable by group or others (mode 0644)");
	assert_int_equal(chmod(path("alpha.key"), 0620), 0);
	load_refused("alpha", "alpha", "alpha", REVOKD_EPERM,
	    "alpha.key is accessible by group or others (mode 0620)");
	assert_int_equal(chmod(path("alpha.key"), 0400), 0);
	agent_tls_free(load_ok("ca", "alpha", "alpha", NOW));
	assert_int_equal(chmod(path("alpha.key"), 0600), 0);
	load_refused("alpha", "beta", "alpha", REVOKD_EAUTH,
	    "beta.key: key does not match certificate");
	load_refused("alpha", "alpha", "beta", REVOKD_EAUTH,
	    "alpha.pem: certificate names alpha, not beta");
	load_refused("rogue", "rogue", "alpha", REVOKD_EAUTH,
	    "rogue.pem: not signed by the cluster CA: ");
	load_refused("expired", "expired", "alpha", REVOKD_EAUTH,
	    "expired.pem: certificate has expired (notAfter 2023-11-13)");
	load_refused("future", "future", "alpha", REVOKD_EAUTH,
	    "future.pem: certificate is not yet valid (notBefore "
	    "2023-11-15)");
	load_refused("mixed", "mixed", "alpha", REVOKD_EAUTH,
	    "certificate names beta, not alpha");
	load_refused("wildcard", "wildcard", "x.alpha", REVOKD_EAUTH,
	    "certificate names *.alpha, not x.alpha");
	load_refused("missing", "alpha", "alpha", REVOKD_ENOTFOUND,
	    "missing.pem: No such file or directory");
	load_refused("alpha", "missing", "alpha", REVOKD_ENOTFOUND,
	    "missing.key: No such file or directory");
	load_refused("garbage", "alpha", "alpha", REVOKD_EMALFORMED,
	    "garbage.pem: no PEM certificate found");
}

static void
test_load_bad_ca_and_key(void **state)
{
	agent_tls *t = NULL;
	char err[512] = "";
	revokd_err rc;

	(void)state;
	rc = agent_tls_load(path("garbage.pem"), path("alpha.pem"),
	    path("alpha.key"), "alpha", NOW, &t, err, sizeof(err));
	assert_int_equal(rc, REVOKD_EMALFORMED);
	assert_non_null(strstr(err, "garbage.pem: no PEM certificate found"));

	/* The key file holds a certificate: no key in it. */
	assert_int_equal(chmod(path("garbage.pem"), 0600), 0);
	rc = agent_tls_load(path("ca.pem"), path("alpha.pem"),
	    path("garbage.pem"), "alpha", NOW, &t, err, sizeof(err));
	assert_int_equal(rc, REVOKD_EMALFORMED);
	assert_non_null(strstr(err, "garbage.pem: no PEM private key found"));
	assert_null(t);

	/* The other CA trusts its own "alpha" and nothing of ours. */
	agent_tls_free(load_ok("other-ca", "rogue", "alpha", NOW));
	rc = load_as("other-ca", "alpha", "alpha", "alpha", NOW, &t, err,
	    sizeof(err));
	assert_int_equal(rc, REVOKD_EAUTH);
	assert_null(t);
}

/* ------------------------------------------------------------------------ */
/* agent_tls_check_peer, signatures                                         */
/* ------------------------------------------------------------------------ */

/* The DER of FILE.pem (OPENSSL_free it). */
static uint8_t *
read_der(const char *file, size_t *len)
{
	char name[128];
	unsigned char *der = NULL;
	FILE *f;
	X509 *x;
	int n;

	snprintf(name, sizeof(name), "%s.pem", file);
	f = fopen(path(name), "r");
	assert_non_null(f);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	assert_non_null(x);
	n = i2d_X509(x, &der);
	assert_true(n > 0);
	X509_free(x);
	*len = (size_t)n;
	return der;
}

static void
test_check_peer(void **state)
{
	static const struct {
		const char *file, *claimed;
		time_t now;
		const char *reason; /* NULL: accepted */
	} cases[] = {
		{ "alpha", "alpha", NOW, NULL },
		{ "beta", "beta", NOW, NULL },
		{ "upper", "alpha", NOW, NULL },
		{ "cnonly", "alpha", NOW, NULL },
		{ "cnonly", "beta", NOW, "certificate names alpha, not beta" },
		{ "mixed", "beta", NOW, NULL },
		{ "mixed", "alpha", NOW, "certificate names beta, not alpha" },
		{ "wildcard", "x.alpha", NOW, "certificate names *.alpha" },
		{ "alpha", "beta", NOW, "certificate names alpha, not beta" },
		{ "alpha", "alph", NOW, "certificate names alpha, not alph" },
		{ "alpha", "alpha", NOW + 400 * DAY,
		    "certificate has expired (notAfter 2024-11-13)" },
		{ "rogue", "alpha", NOW, "not signed by the cluster CA: " },
		{ "other-ca", "revokd cluster CA", NOW,
		    "not signed by the cluster CA: " },
		{ "expired", "alpha", NOW, "certificate has expired" },
		{ "expired", "alpha", NOW - 2 * DAY, NULL },
		{ "future", "alpha", NOW, "certificate is not yet valid" },
		{ "future", "alpha", NOW + 2 * DAY, NULL },
		{ "ed", "alpha", NOW, NULL },
	};
	agent_tls *t = load_ok("ca", "beta", "beta", NOW);

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		agent_peer_cert *c = NULL;
		char why[256] = "";
		size_t len;
		uint8_t *der = read_der(cases[i].file, &len);
		revokd_err rc = agent_tls_check_peer(t, der, len,
		    cases[i].claimed, cases[i].now, &c, why, sizeof(why));
		revokd_err want = cases[i].reason ? REVOKD_EAUTH : REVOKD_OK;

		if (rc != want ||
		    (cases[i].reason && strstr(why, cases[i].reason) == NULL))
			fail_msg("case %zu (%s as %s): got %s \"%s\"", i,
			    cases[i].file, cases[i].claimed,
			    revokd_err_name(rc), why);
		assert_true((c != NULL) == (want == REVOKD_OK));
		agent_peer_cert_free(c);

		OPENSSL_free(der);
	}
	agent_tls_free(t);
}

/* Only one whole DER certificate is taken. */
static void
test_check_peer_der(void **state)
{
	agent_tls *t = load_ok("ca", "beta", "beta", NOW);
	agent_peer_cert *c = NULL;
	size_t len;
	uint8_t *der = read_der("alpha", &len), *longer = calloc(1, len + 1);
	char why[256];

	(void)state;
	assert_non_null(longer);
	memcpy(longer, der, len);
	assert_int_equal(agent_tls_check_peer(t, longer, len + 1, "alpha", NOW,
	                     &c, why, sizeof(why)),
	    REVOKD_EAUTH);
	assert_string_equal(why,
	    "certificate is not one DER X.509 certificate");
	assert_int_equal(agent_tls_check_peer(t, der, len - 1, "alpha", NOW, &c,
	                     why, sizeof(why)),
	    REVOKD_EAUTH);
	assert_int_equal(
	    agent_tls_check_peer(t, der, 0, "alpha", NOW, &c, why, sizeof(why)),
	    REVOKD_EAUTH);
	assert_null(c);
	free(longer);
	OPENSSL_free(der);
	agent_tls_free(t);
}

/* t signs; the certificate of file verifies, and nothing altered does. */
static void
sign_verify(agent_tls *t, const char *file, const char *other)
{
	uint8_t nonce[WIRE_NONCE_LEN], msg[AUTH_MSG_MAX], sig[AGENT_SIG_MAX];
	size_t msg_len, sig_len = 0, len;
	agent_peer_cert *c = NULL, *o = NULL;
	char why[256];
	uint8_t *der;

	assert_int_equal(agent_random(nonce, sizeof(nonce)), REVOKD_OK);
	agent_auth_message(nonce, "alpha", "beta", msg, &msg_len);
	assert_int_equal(agent_tls_sign(t, msg, msg_len, sig, &sig_len),
	    REVOKD_OK);
	assert_true(sig_len > 0 && sig_len <= AGENT_SIG_MAX);

	der = read_der(file, &len);
	assert_int_equal(
	    agent_tls_check_peer(t, der, len, "alpha", NOW, &c, why, 256),
	    REVOKD_OK);
	OPENSSL_free(der);
	der = read_der(other, &len);
	assert_int_equal(
	    agent_tls_check_peer(t, der, len, "alpha", NOW, &o, why, 256),
	    REVOKD_OK);
	OPENSSL_free(der);

	assert_int_equal(agent_peer_verify(c, msg, msg_len, sig, sig_len),
	    REVOKD_OK);
	assert_int_equal(agent_peer_verify(o, msg, msg_len, sig, sig_len),
	    REVOKD_EAUTH);
	sig[sig_len / 2] ^= 0x10;
	assert_int_equal(agent_peer_verify(c, msg, msg_len, sig, sig_len),
	    REVOKD_EAUTH);
	sig[sig_len / 2] ^= 0x10;
	msg[msg_len - 3] ^= 0x01;
	assert_int_equal(agent_peer_verify(c, msg, msg_len, sig, sig_len),
	    REVOKD_EAUTH);
	msg[msg_len - 3] ^= 0x01;
	assert_int_equal(agent_peer_verify(c, msg, msg_len, sig, sig_len - 1),
	    REVOKD_EAUTH);
	assert_int_equal(agent_peer_verify(c, msg, msg_len, sig, 0),
	    REVOKD_EAUTH);
	assert_int_equal(agent_peer_verify(c, msg, msg_len, sig, sig_len),
	    REVOKD_OK);
	agent_peer_cert_free(c);
	agent_peer_cert_free(o);
}

static void
test_sign_verify(void **state)
{
	agent_tls *alpha = load_ok("ca", "alpha", "alpha", NOW);
	agent_tls *ed = load_ok("ca", "ed", "alpha", NOW);

	(void)state;
	sign_verify(alpha, "alpha", "ed");
	sign_verify(ed, "ed", "alpha");
	agent_tls_free(alpha);
	agent_tls_free(ed);
}

static void
test_auth_message(void **state)
{
	uint8_t nonce[WIRE_NONCE_LEN], buf[AUTH_MSG_MAX];
	uint8_t other[AUTH_MSG_MAX];
	size_t len, other_len, ctx = strlen(AGENT_AUTH_CONTEXT);
	char longest[WIRE_NAME_MAX + 1];

	(void)state;
	for (size_t i = 0; i < sizeof(nonce); i++)
		nonce[i] = (uint8_t)i;
	agent_auth_message(nonce, "alpha", "beta", buf, &len);
	assert_int_equal(len, ctx + WIRE_NONCE_LEN + 6 + 5);
	assert_memory_equal(buf, AGENT_AUTH_CONTEXT, ctx);
	assert_memory_equal(buf + ctx, nonce, WIRE_NONCE_LEN);
	assert_memory_equal(buf + ctx + WIRE_NONCE_LEN, "alpha\0beta\0", 11);

	/* Names are delimited: moving a byte between them changes it. */
	agent_auth_message(nonce, "alph", "abeta", other, &other_len);
	assert_int_equal(other_len, len);
	assert_memory_not_equal(buf, other, len);

	memset(longest, 'n', WIRE_NAME_MAX);
	longest[WIRE_NAME_MAX] = '\0';
	agent_auth_message(nonce, longest, longest, buf, &len);
	assert_int_equal(len, ctx + WIRE_NONCE_LEN + 2 * (WIRE_NAME_MAX + 1));
	assert_true(len <= AUTH_MSG_MAX);
}

static void
test_random(void **state)
{
	uint8_t a[32] = { 0 }, b[32] = { 0 }, zero[32] = { 0 };

	(void)state;
	assert_int_equal(agent_random(a, sizeof(a)), REVOKD_OK);
	assert_int_equal(agent_random(b, sizeof(b)), REVOKD_OK);
	assert_memory_not_equal(a, b, sizeof(a));
	assert_memory_not_equal(a, zero, sizeof(a));
	assert_int_equal(agent_random(a, 0), REVOKD_OK);
}

/* ------------------------------------------------------------------------ */
/* Handshake                                                                */
/* ------------------------------------------------------------------------ */

/* alpha knows gamma and beta (beta is its peer 1); beta knows alpha. */
static const engine_peer_config alpha_peers[] = { { 3, "gamma" },
	{ 2, "beta" } };
static const engine_peer_config beta_peers[] = { { 1, "alpha" } };

/* One end: its identity, configuration, handshake and Hello. */
typedef struct side {
	agent_tls *tls;
	agent_hs_config cfg;
	agent_hs *hs;
	uint8_t *hello;
	size_t hello_len;
} side;

static void
side_start(side *s, agent_tls *tls, const char *cluster, const char *region,
    uint16_t id)
{
	bool is_alpha = strcmp(region, "alpha") == 0;

	memset(s, 0, sizeof(*s));
	s->tls = tls;
	s->cfg.tls = tls;
	s->cfg.cluster = cluster;
	s->cfg.region = region;
	s->cfg.region_id = id;
	s->cfg.peers = is_alpha ? alpha_peers : beta_peers;
	s->cfg.n_peers = is_alpha ? 2 : 1;
	assert_int_equal(
	    agent_hs_new(&s->cfg, &s->hs, &s->hello, &s->hello_len), REVOKD_OK);
	assert_non_null(s->hello);
	assert_false(agent_hs_done(s->hs));
	assert_string_equal(agent_hs_claimed(s->hs), "");
}

static void
side_end(side *s)
{
	agent_hs_free(s->hs);
	free(s->hello);
	agent_tls_free(s->tls);
}

/* The standard ends: alpha (id 1) and beta (id 2) of cluster prod. */
static void
alpha_start(side *s)
{
	side_start(s, load_ok("ca", "alpha", "alpha", NOW), "prod", "alpha", 1);
}

static void
beta_start(side *s)
{
	side_start(s, load_ok("ca", "beta", "beta", NOW), "prod", "beta", 2);
}

/* Deliver a whole frame (header included); it must be accepted. */
static uint8_t *
deliver_ok(agent_hs *hs, const uint8_t *frame, size_t len, size_t *out_len)
{
	uint8_t *reply = NULL;
	size_t reply_len = 0;
	char why[256] = "";
	revokd_err rc = agent_hs_receive(hs, frame + WIRE_HEADER_LEN,
	    len - WIRE_HEADER_LEN, NOW, &reply, &reply_len, why, sizeof(why));

	if (rc != REVOKD_OK)
		fail_msg("refused: %s \"%s\"", revokd_err_name(rc), why);
	if (out_len != NULL)
		*out_len = reply_len;
	return reply;
}

/* Deliver a frame payload; it must be refused with want and a reason. */
static void
refuse_payload(agent_hs *hs, const uint8_t *payload, size_t len,
    revokd_err want, const char *prefix)
{
	uint8_t *reply = NULL;
	size_t reply_len = 0;
	char why[256] = "";
	revokd_err rc = agent_hs_receive(hs, payload, len, NOW, &reply,
	    &reply_len, why, sizeof(why));

	if (rc != want || strncmp(why, prefix, strlen(prefix)) != 0)
		fail_msg("got %s \"%s\", want %s \"%s...\"",
		    revokd_err_name(rc), why, revokd_err_name(want), prefix);
	assert_null(reply);
	assert_false(agent_hs_done(hs));
	/* A failed handshake stays failed. */
	rc = agent_hs_receive(hs, payload, len, NOW, &reply, &reply_len, why,
	    sizeof(why));
	assert_int_equal(rc, REVOKD_EPROTO);
	assert_string_equal(why, "handshake already failed");
}

static void
refuse(agent_hs *hs, const uint8_t *frame, size_t len, revokd_err want,
    const char *prefix)
{
	refuse_payload(hs, frame + WIRE_HEADER_LEN, len - WIRE_HEADER_LEN, want,
	    prefix);
}

/* The nonce in a Hello frame. */
static void
hello_nonce(const uint8_t *frame, size_t len, uint8_t *nonce)
{
	wire_peer_msg m;

	assert_int_equal(wire_peer_decode(frame + WIRE_HEADER_LEN,
	                     len - WIRE_HEADER_LEN, &m),
	    REVOKD_OK);
	assert_int_equal(m.type, WIRE_HELLO);
	memcpy(nonce, m.u.hello.nonce, WIRE_NONCE_LEN);
	wire_peer_msg_free(&m);
}

/* A Hello with the fields given, cert's certificate, nonce (NULL: new). */
static uint8_t *
forge_hello(uint32_t protocol, const char *cluster, const char *region,
    uint16_t id, const agent_tls *cert, const uint8_t *nonce, size_t *len)
{
	wire_peer_msg m;
	uint8_t *frame = NULL;

	memset(&m, 0, sizeof(m));
	m.type = WIRE_HELLO;
	m.u.hello.protocol = protocol;
	snprintf(m.u.hello.cluster, sizeof(m.u.hello.cluster), "%s", cluster);
	snprintf(m.u.hello.region, sizeof(m.u.hello.region), "%s", region);
	m.u.hello.region_id = id;
	m.u.hello.cert = agent_tls_cert_der(cert, &m.u.hello.cert_len);
	if (nonce != NULL)
		memcpy(m.u.hello.nonce, nonce, WIRE_NONCE_LEN);
	else
		assert_int_equal(agent_random(m.u.hello.nonce, WIRE_NONCE_LEN),
		    REVOKD_OK);
	assert_int_equal(wire_peer_encode(&m, &frame, len), REVOKD_OK);
	return frame;
}

/* An Auth signed by key over (nonce, signer, verifier). */
static uint8_t *
forge_auth(const agent_tls *key, const uint8_t *nonce, const char *signer,
    const char *verifier, size_t *len)
{
	uint8_t msg[AUTH_MSG_MAX], sig[AGENT_SIG_MAX], *frame = NULL;
	size_t msg_len, sig_len;
	wire_peer_msg m;

	agent_auth_message(nonce, signer, verifier, msg, &msg_len);
	assert_int_equal(agent_tls_sign(key, msg, msg_len, sig, &sig_len),
	    REVOKD_OK);
	memset(&m, 0, sizeof(m));
	m.type = WIRE_AUTH;
	m.u.auth.sig = sig;
	m.u.auth.sig_len = sig_len;
	assert_int_equal(wire_peer_encode(&m, &frame, len), REVOKD_OK);
	return frame;
}

static void
test_handshake_ok(void **state)
{
	side a, b;
	uint8_t *auth_a, *auth_b, *reply = NULL;
	size_t auth_a_len, auth_b_len, reply_len = 0;
	char why[256];

	(void)state;
	alpha_start(&a);
	beta_start(&b);
	auth_a = deliver_ok(a.hs, b.hello, b.hello_len, &auth_a_len);
	auth_b = deliver_ok(b.hs, a.hello, a.hello_len, &auth_b_len);
	assert_non_null(auth_a);
	assert_non_null(auth_b);
	assert_string_equal(agent_hs_claimed(a.hs), "beta");
	assert_string_equal(agent_hs_claimed(b.hs), "alpha");
	assert_false(agent_hs_done(a.hs));
	assert_null(deliver_ok(a.hs, auth_b, auth_b_len, NULL));
	assert_null(deliver_ok(b.hs, auth_a, auth_a_len, NULL));
	assert_true(agent_hs_done(a.hs));
	assert_true(agent_hs_done(b.hs));
	assert_int_equal(agent_hs_peer(a.hs), 1);
	assert_int_equal(agent_hs_peer(b.hs), 0);

	/* Done is done: more frames go to the engine, not here. */
	assert_int_equal(agent_hs_receive(a.hs, auth_b + WIRE_HEADER_LEN,
	                     auth_b_len - WIRE_HEADER_LEN, NOW, &reply,
	                     &reply_len, why, sizeof(why)),
	    REVOKD_EPROTO);
	assert_string_equal(why, "handshake already complete");
	assert_null(reply);
	assert_true(agent_hs_done(a.hs));
	free(auth_a);
	free(auth_b);
	side_end(&a);
	side_end(&b);
}

/* Nonces are fresh: two handshakes of the same config differ. */
static void
test_handshake_fresh_nonce(void **state)
{
	side a1, a2;
	uint8_t n1[WIRE_NONCE_LEN], n2[WIRE_NONCE_LEN];

	(void)state;
	alpha_start(&a1);
	alpha_start(&a2);
	hello_nonce(a1.hello, a1.hello_len, n1);
	hello_nonce(a2.hello, a2.hello_len, n2);
	assert_memory_not_equal(n1, n2, WIRE_NONCE_LEN);
	side_end(&a1);
	side_end(&a2);
}

/*
 * Hellos refused on their fields or their certificate: an end with the
 * identity given (loaded at `loaded`) says cluster, region and id to alpha
 * or to beta.
 */
static const struct hello_case {
	const char *what;
	const char *ca, *file, *as;
	time_t loaded;
	const char *cluster, *region;
	uint16_t id;
	bool to_alpha;
	revokd_err want;
	const char *prefix;
} hello_cases[] = {
	{ "wrong cluster", "ca", "beta", "beta", NOW, "staging", "beta", 2,
	    true, REVOKD_EAUTH, "cluster staging, want prod (region beta)" },
	{ "unknown region", "ca", "beta", "beta", NOW, "prod", "delta", 4, true,
	    REVOKD_EAUTH, "unknown region delta" },
	{ "wrong id", "ca", "beta", "beta", NOW, "prod", "beta", 9, true,
	    REVOKD_EAUTH, "region beta claims id 9, configured 2" },
	/* An "alpha" from another CA (which it trusts itself). */
	{ "another CA", "other-ca", "rogue", "alpha", NOW, "prod", "alpha", 1,
	    false, REVOKD_EAUTH,
	    "region alpha: not signed by the cluster CA: " },
	/* Loaded while valid, met after it expired. */
	{ "expired", "ca", "expired", "alpha", NOW - 2 * DAY, "prod", "alpha",
	    1, false, REVOKD_EAUTH,
	    "region alpha: certificate has expired (notAfter 2023-11-13)" },
	/* Holding alpha's certificate and key, claim to be beta to alpha. */
	{ "alpha claims beta", "ca", "alpha", "alpha", NOW, "prod", "beta", 2,
	    true, REVOKD_EAUTH,
	    "region beta: certificate names alpha, not beta" },
};

static void
test_handshake_hello_refused(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(hello_cases) / sizeof(*hello_cases);
	     i++) {
		const struct hello_case *c = &hello_cases[i];
		side to, from;

		print_message("hello case: %s\n", c->what);
		if (c->to_alpha)
			alpha_start(&to);
		else
			beta_start(&to);
		side_start(&from, load_ok(c->ca, c->file, c->as, c->loaded),
		    c->cluster, c->region, c->id);
		refuse(to.hs, from.hello, from.hello_len, c->want, c->prefix);
		assert_string_equal(agent_hs_claimed(to.hs), c->region);
		side_end(&to);
		side_end(&from);
	}
}

static void
test_handshake_wrong_protocol(void **state)
{
	agent_tls *beta = load_ok("ca", "beta", "beta", NOW);
	side a;
	uint8_t *hello;
	size_t len;

	(void)state;
	alpha_start(&a);
	hello = forge_hello(2, "prod", "beta", 2, beta, NULL, &len);
	refuse(a.hs, hello, len, REVOKD_EPROTO,
	    "protocol 2, want 1 (region beta)");
	free(hello);
	side_end(&a);
	agent_tls_free(beta);
}

/* A recorded Hello and Auth of beta, replayed to a new alpha. */
static void
test_handshake_replayed_auth(void **state)
{
	side a1, a2, b;
	uint8_t *auth_a, *auth_b, *auth_a2;
	size_t auth_a_len, auth_b_len, auth_a2_len;

	(void)state;
	alpha_start(&a1);
	beta_start(&b);
	auth_a = deliver_ok(a1.hs, b.hello, b.hello_len, &auth_a_len);
	auth_b = deliver_ok(b.hs, a1.hello, a1.hello_len, &auth_b_len);
	assert_null(deliver_ok(a1.hs, auth_b, auth_b_len, NULL));
	assert_true(agent_hs_done(a1.hs));

	alpha_start(&a2);
	auth_a2 = deliver_ok(a2.hs, b.hello, b.hello_len, &auth_a2_len);
	refuse(a2.hs, auth_b, auth_b_len, REVOKD_EAUTH,
	    "region beta: auth signature does not verify");
	free(auth_a);
	free(auth_b);
	free(auth_a2);
	side_end(&a1);
	side_end(&a2);
	side_end(&b);
}

/*
 * beta's Hello (its real, public certificate), then an Auth signed by the
 * key of `signer_file` over alpha's nonce and the names given: only beta's
 * key over ("beta", "alpha") may pass. The others are a thief without
 * beta's key, an Auth beta made for gamma (relayed), and the names swapped.
 */
static const struct auth_case {
	const char *signer_file, *signer, *verifier;
	revokd_err want;
} auth_cases[] = {
	{ "beta", "beta", "alpha", REVOKD_OK },
	{ "cnonly", "beta", "alpha", REVOKD_EAUTH },
	{ "beta", "beta", "gamma", REVOKD_EAUTH },
	{ "beta", "alpha", "beta", REVOKD_EAUTH },
};

static void
test_handshake_forged_auth(void **state)
{
	agent_tls *beta = load_ok("ca", "beta", "beta", NOW);

	(void)state;
	for (size_t i = 0; i < sizeof(auth_cases) / sizeof(*auth_cases); i++) {
		const struct auth_case *c = &auth_cases[i];
		agent_tls *key = load_ok("ca", c->signer_file,
		    strcmp(c->signer_file, "beta") == 0 ? "beta" : "alpha",
		    NOW);
		uint8_t nonce[WIRE_NONCE_LEN], *hello, *reply, *auth;
		size_t hello_len, reply_len, auth_len;
		side a;

		alpha_start(&a);
		hello_nonce(a.hello, a.hello_len, nonce);
		hello = forge_hello(WIRE_PROTOCOL, "prod", "beta", 2, beta,
		    NULL, &hello_len);
		reply = deliver_ok(a.hs, hello, hello_len, &reply_len);
		auth =
		    forge_auth(key, nonce, c->signer, c->verifier, &auth_len);
		if (c->want == REVOKD_OK)
			assert_null(deliver_ok(a.hs, auth, auth_len, NULL));
		else
			refuse(a.hs, auth, auth_len, c->want,
			    "region beta: auth signature does not verify");
		assert_true(agent_hs_done(a.hs) == (c->want == REVOKD_OK));
		free(hello);
		free(reply);
		free(auth);
		side_end(&a);
		agent_tls_free(key);
	}
	agent_tls_free(beta);
}

static void
test_handshake_auth_first(void **state)
{
	side a, b, b2;
	uint8_t *auth_b;
	size_t auth_b_len;

	(void)state;
	alpha_start(&a);
	beta_start(&b);
	auth_b = deliver_ok(b.hs, a.hello, a.hello_len, &auth_b_len);
	/* a never saw b's Hello: here is b's Auth first. */
	alpha_start(&b2);
	refuse(b2.hs, auth_b, auth_b_len, REVOKD_EPROTO, "auth before hello");
	free(auth_b);
	side_end(&a);
	side_end(&b);
	side_end(&b2);
}

static void
test_handshake_second_hello(void **state)
{
	side a, b;
	uint8_t *auth_a;
	size_t auth_a_len;

	(void)state;
	alpha_start(&a);
	beta_start(&b);
	auth_a = deliver_ok(a.hs, b.hello, b.hello_len, &auth_a_len);
	refuse(a.hs, b.hello, b.hello_len, REVOKD_EPROTO,
	    "second hello (region beta)");
	free(auth_a);
	side_end(&a);
	side_end(&b);
}

static void
test_handshake_batch(void **state)
{
	wire_peer_msg m;
	uint8_t *frame, *auth_a;
	size_t len, auth_a_len;
	side a, b;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.type = WIRE_BATCH;
	m.u.batch.seq = 1;
	assert_int_equal(wire_peer_encode(&m, &frame, &len), REVOKD_OK);

	/* Before Hello, and between Hello and Auth. */
	alpha_start(&a);
	refuse(a.hs, frame, len, REVOKD_EPROTO,
	    "batch message during the handshake");
	side_end(&a);
	alpha_start(&a);
	beta_start(&b);
	auth_a = deliver_ok(a.hs, b.hello, b.hello_len, &auth_a_len);
	refuse(a.hs, frame, len, REVOKD_EPROTO,
	    "batch message during the handshake");
	free(auth_a);
	free(frame);
	side_end(&a);
	side_end(&b);
}

static void
test_handshake_garbage(void **state)
{
	static const uint8_t garbage[] = { 0xff, 0x13, 0x37, 0x00, 0x42, 0xde,
		0xad, 0xbe, 0xef };
	side a;

	(void)state;
	alpha_start(&a);
	refuse_payload(a.hs, garbage, sizeof(garbage), REVOKD_EPROTO,
	    "undecodable frame: ");
	side_end(&a);
	/* A Hello cut short. */
	alpha_start(&a);
	refuse_payload(a.hs, a.hello + WIRE_HEADER_LEN,
	    a.hello_len - WIRE_HEADER_LEN - 5, REVOKD_EPROTO,
	    "undecodable frame: ");
	side_end(&a);
}

/* Our own Hello sent back to us, and one that only repeats our nonce. */
static void
test_handshake_reflected(void **state)
{
	agent_tls *beta = load_ok("ca", "beta", "beta", NOW);
	uint8_t nonce[WIRE_NONCE_LEN], *hello;
	size_t len;
	side a;

	(void)state;
	alpha_start(&a);
	refuse(a.hs, a.hello, a.hello_len, REVOKD_EAUTH,
	    "region alpha is this agent's own");
	side_end(&a);

	alpha_start(&a);
	hello_nonce(a.hello, a.hello_len, nonce);
	hello =
	    forge_hello(WIRE_PROTOCOL, "prod", "beta", 2, beta, nonce, &len);
	refuse(a.hs, hello, len, REVOKD_EAUTH,
	    "region beta sent our own nonce back");
	free(hello);
	side_end(&a);
	agent_tls_free(beta);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_load_good),
		cmocka_unit_test(test_load_refused),
		cmocka_unit_test(test_load_bad_ca_and_key),
		cmocka_unit_test(test_check_peer),
		cmocka_unit_test(test_check_peer_der),
		cmocka_unit_test(test_sign_verify),
		cmocka_unit_test(test_auth_message),
		cmocka_unit_test(test_random),
		cmocka_unit_test(test_handshake_ok),
		cmocka_unit_test(test_handshake_fresh_nonce),
		cmocka_unit_test(test_handshake_hello_refused),
		cmocka_unit_test(test_handshake_wrong_protocol),
		cmocka_unit_test(test_handshake_replayed_auth),
		cmocka_unit_test(test_handshake_forged_auth),
		cmocka_unit_test(test_handshake_auth_first),
		cmocka_unit_test(test_handshake_second_hello),
		cmocka_unit_test(test_handshake_batch),
		cmocka_unit_test(test_handshake_garbage),
		cmocka_unit_test(test_handshake_reflected),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
