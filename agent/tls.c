/*
 * tls.c: the agent's identity (CA, certificate, key) and the proof of a
 * peer's, with OpenSSL 3.0's EVP and X509 APIs.
 *
 * Theory of a certificate's check. The same check serves our own
 * certificate at load and a peer's in its Hello:
 *
 *   chain  It must verify against the CA file's certificates alone: no
 *          intermediates (Hello carries one certificate), strict X.509
 *          (X509_V_FLAG_X509_STRICT), security level 2 (no RSA under 2048
 *          bits, no SHA-1), every certificate valid at the `now` we are
 *          given, never the system clock. No purpose or EKU is required:
 *          the CA is the cluster's own and everything it signs is a region.
 *   name   The certificate names a region when one of its DNS SANs equals
 *          the name (ASCII case-insensitive), or, when it has no DNS SAN at
 *          all, when one of its CNs does: RFC 6125's rule, and what mbedTLS
 *          applies to nng's server_name, so a certificate that passes TLS
 *          passes here. No wildcards (X509_CHECK_FLAG_NO_WILDCARDS): a
 *          region is one name, not a pattern, so "*.x" names no region.
 *
 * Signatures are EVP_DigestSign/Verify with SHA-256 for every key type but
 * EdDSA (Ed25519, Ed448), which signs the message itself. RSA uses PKCS#1
 * v1.5. At load the key signs a test message that the certificate's public
 * key must verify, so a key that cannot sign, or signs too long, is found
 * at start and not at the first peer.
 *
 * OpenSSL's error queue is emptied before returning from every function
 * here: reasons are carried in our own strings.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "agent/tls.h"

/* Largest PEM file we read. */
#define AGENT__PEM_MAX (1u << 20)

/* Room for a reason from a certificate check. */
#define AGENT__WHY_MAX 256

/* Bytes agent_auth_message writes at most. */
#define AGENT__AUTH_MSG_MAX (WIRE_NONCE_LEN + 2 * (WIRE_NAME_MAX + 1) + 32)

_Static_assert(sizeof(AGENT_AUTH_CONTEXT) - 1 <= 32,
    "the auth context must fit the room tls.h promises");

struct agent_tls {
	char *ca_pem; /* the files' text, NUL-terminated */
	char *cert_pem;
	char *key_pem;      /* wiped on free */
	size_t key_pem_cap; /* bytes allocated for key_pem */
	X509_STORE *store;  /* the CA file's certificates */
	X509 *cert;
	EVP_PKEY *key;
	uint8_t *cert_der; /* OPENSSL_malloc'd by i2d_X509 */
	size_t cert_der_len;
	time_t not_after;
};

struct agent_peer_cert {
	X509 *cert;
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                            */
/* ------------------------------------------------------------------------ */

/* Append n bytes of s to the string in buf, printable ASCII only. */
static void
agent__append(char *buf, size_t len, const unsigned char *s, size_t n)
{
	size_t at = strlen(buf);

	for (size_t i = 0; i < n && at + 1 < len; i++)
		buf[at++] = s[i] >= 0x20 && s[i] < 0x7f ? (char)s[i] : '?';
	buf[at] = '\0';
}

/* s made safe for a log line (peers choose names) into buf. */
static const char *
agent__printable(const char *s, char *buf, size_t len)
{
	buf[0] = '\0';
	agent__append(buf, len, (const unsigned char *)s, strlen(s));
	return buf;
}

/* An ASN1_TIME as a time_t. */
static bool
agent__asn1_time(const ASN1_TIME *a, time_t *out)
{
	struct tm tm;

	if (a == NULL || ASN1_TIME_to_tm(a, &tm) != 1)
		return false;
	*out = timegm(&tm);
	return true;
}

/* An ASN1_TIME as "YYYY-MM-DD". */
static const char *
agent__date(const ASN1_TIME *a, char *buf, size_t len)
{
	struct tm tm;

	if (a == NULL || ASN1_TIME_to_tm(a, &tm) != 1 ||
	    strftime(buf, len, "%Y-%m-%d", &tm) == 0)
		snprintf(buf, len, "?");
	return buf;
}

/* The digest to sign with for key: none for EdDSA, SHA-256 otherwise. */
static const char *
agent__digest_for(const EVP_PKEY *key)
{
	if (EVP_PKEY_is_a(key, "ED25519") || EVP_PKEY_is_a(key, "ED448"))
		return NULL;
	return "SHA256";
}

/* ------------------------------------------------------------------------ */
/* Files                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Read path whole into a malloc'd NUL-terminated string (*out, *cap bytes
 * allocated). A private file (the key) is refused when its mode gives group
 * or others any access; that is checked on the open file, before a byte is
 * read.
 */
static revokd_err
agent__read_file(const char *path, bool is_key, char **out, size_t *cap,
    char *err, size_t err_len)
{
	struct stat st;
	char *buf = NULL;
	size_t size, len = 0;
	revokd_err rc;
	int fd, e;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		e = errno;
		snprintf(err, err_len, "%s: %s", path, strerror(e));
		return revokd_err_from_errno(e);
	}
	if (fstat(fd, &st) != 0) {
		e = errno;
		snprintf(err, err_len, "%s: %s", path, strerror(e));
		rc = revokd_err_from_errno(e);
		goto done;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, err_len, "%s: not a regular file", path);
		rc = REVOKD_EINVAL;
		goto done;
	}
	if (is_key && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		snprintf(err, err_len,
		    "key %s is %s by group or others (mode %04o)", path,
		    (st.st_mode & (S_IRGRP | S_IROTH)) ? "readable"
		                                       : "accessible",
		    (unsigned)(st.st_mode & 07777));
		rc = REVOKD_EPERM;
		goto done;
	}
	if (st.st_size > (off_t)AGENT__PEM_MAX) {
		snprintf(err, err_len, "%s: larger than %u bytes", path,
		    AGENT__PEM_MAX);
		rc = REVOKD_ETOOBIG;
		goto done;
	}
	size = (size_t)st.st_size + 1;
	if ((buf = malloc(size)) == NULL) {
		rc = REVOKD_ENOMEM;
		goto done;
	}
	while (len + 1 < size) {
		ssize_t got = read(fd, buf + len, size - 1 - len);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			e = errno;
			snprintf(err, err_len, "%s: %s", path, strerror(e));
			rc = revokd_err_from_errno(e);
			goto done;
		}
		if (got == 0)
			break;
		len += (size_t)got;
	}
	buf[len] = '\0';
	*out = buf;
	*cap = size;
	buf = NULL;
	rc = REVOKD_OK;
done:
	if (buf != NULL) {
		OPENSSL_cleanse(buf, size);
		free(buf);
	}
	close(fd);
	return rc;
}

/* A passphrase callback that has none: encrypted keys are refused. */
static int
agent__no_password(char *buf, int size, int rwflag, void *arg)
{
	(void)buf;
	(void)size;
	(void)rwflag;
	(void)arg;
	return -1;
}

/* ------------------------------------------------------------------------ */
/* Certificate checks                                                       */
/* ------------------------------------------------------------------------ */

/* Why X509_verify_cert refused, as a short sentence. */
static void
agent__verify_reason(X509_STORE_CTX *ctx, char *why, size_t len)
{
	int e = X509_STORE_CTX_get_error(ctx);
	X509 *cur = X509_STORE_CTX_get_current_cert(ctx);
	const char *who = X509_STORE_CTX_get_error_depth(ctx) > 0
	                      ? "CA certificate"
	                      : "certificate";
	char date[32];

	switch (e) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		snprintf(why, len, "%s has expired (notAfter %s)", who,
		    agent__date(cur ? X509_get0_notAfter(cur) : NULL, date,
		        sizeof(date)));
		return;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		snprintf(why, len, "%s is not yet valid (notBefore %s)", who,
		    agent__date(cur ? X509_get0_notBefore(cur) : NULL, date,
		        sizeof(date)));
		return;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_UNTRUSTED:
		snprintf(why, len, "not signed by the cluster CA: %s",
		    X509_verify_cert_error_string(e));
		return;
	case X509_V_OK:
		snprintf(why, len, "%s does not verify", who);
		return;
	default:
		snprintf(why, len, "%s refused: %s", who,
		    X509_verify_cert_error_string(e));
	}
}

/* Does x chain to a certificate of store and is every link valid at now? */
static revokd_err
agent__verify_chain(X509_STORE *store, X509 *x, time_t now, char *why,
    size_t len)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	X509_VERIFY_PARAM *param;
	revokd_err rc = REVOKD_EAUTH;

	if (ctx == NULL || X509_STORE_CTX_init(ctx, store, x, NULL) != 1) {
		snprintf(why, len, "cannot verify: out of memory");
		rc = REVOKD_ENOMEM;
		goto done;
	}
	param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
	X509_VERIFY_PARAM_set_time(param, now);
	X509_VERIFY_PARAM_set_auth_level(param, 2);
	if (X509_verify_cert(ctx) == 1)
		rc = REVOKD_OK;
	else
		agent__verify_reason(ctx, why, len);
done:
	X509_STORE_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

/* The names x offers (DNS SANs, else CNs), comma-separated, for messages. */
static void
agent__describe_names(X509 *x, char *buf, size_t len)
{
	GENERAL_NAMES *gens =
	    X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	const X509_NAME *subject = X509_get_subject_name(x);
	int n = 0;

	buf[0] = '\0';
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);

		if (g->type != GEN_DNS)
			continue;
		if (n++ > 0)
			agent__append(buf, len, (const unsigned char *)", ", 2);
		agent__append(buf, len, ASN1_STRING_get0_data(g->d.dNSName),
		    (size_t)ASN1_STRING_length(g->d.dNSName));
	}
	GENERAL_NAMES_free(gens);
	if (n > 0)
		return;
	for (int j = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
	     j >= 0;
	     j = X509_NAME_get_index_by_NID(subject, NID_commonName, j)) {
		unsigned char *utf8;
		int ulen = ASN1_STRING_to_UTF8(&utf8,
		    X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, j)));

		if (ulen < 0)
			continue;
		if (n++ > 0)
			agent__append(buf, len, (const unsigned char *)", ", 2);
		agent__append(buf, len, utf8, (size_t)ulen);
		OPENSSL_free(utf8);
	}
	ERR_clear_error();
}

/* Does x name region, by the rule at the top of this file? */
static revokd_err
agent__check_name(X509 *x, const char *region, char *why, size_t len)
{
	char names[128], want[2 * WIRE_NAME_MAX];

	if (region[0] != '\0' && X509_check_host(x, region, strlen(region),
	                             X509_CHECK_FLAG_NO_WILDCARDS, NULL) == 1)
		return REVOKD_OK;
	ERR_clear_error();
	agent__describe_names(x, names, sizeof(names));
	agent__printable(region, want, sizeof(want));
	if (names[0] == '\0')
		snprintf(why, len,
		    "certificate names nothing (no DNS SAN or "
		    "CN), not %s",
		    want);
	else
		snprintf(why, len, "certificate names %s, not %s", names, want);
	return REVOKD_EAUTH;
}

/* The whole check of a certificate: chain, validity at now, name. */
static revokd_err
agent__check_cert(X509_STORE *store, X509 *x, const char *region, time_t now,
    char *why, size_t len)
{
	revokd_err rc = agent__verify_chain(store, x, now, why, len);

	if (rc != REVOKD_OK)
		return rc;
	return agent__check_name(x, region, why, len);
}

/* ------------------------------------------------------------------------ */
/* Loading                                                                  */
/* ------------------------------------------------------------------------ */

/* Every certificate of the CA file into t->store. */
static revokd_err
agent__load_ca(agent_tls *t, const char *path, char *err, size_t err_len)
{
	BIO *bio = BIO_new_mem_buf(t->ca_pem, -1);
	revokd_err rc = REVOKD_OK;
	X509 *x;
	int n = 0;

	t->store = X509_STORE_new();
	if (bio == NULL || t->store == NULL) {
		rc = REVOKD_ENOMEM;
		goto done;
	}
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		int ok = X509_STORE_add_cert(t->store, x);

		X509_free(x);
		if (ok != 1) {
			rc = REVOKD_ENOMEM;
			goto done;
		}
		n++;
	}
	if (n == 0) {
		snprintf(err, err_len, "%s: no PEM certificate found", path);
		rc = REVOKD_EMALFORMED;
	}
done:
	BIO_free(bio);
	ERR_clear_error();
	return rc;
}

/* Our certificate (the first of its file), its DER and its expiry. */
static revokd_err
agent__load_cert(agent_tls *t, const char *path, char *err, size_t err_len)
{
	BIO *bio = BIO_new_mem_buf(t->cert_pem, -1);
	int len;

	if (bio == NULL)
		return REVOKD_ENOMEM;
	t->cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (t->cert == NULL) {
		snprintf(err, err_len, "%s: no PEM certificate found", path);
		return REVOKD_EMALFORMED;
	}
	len = i2d_X509(t->cert, &t->cert_der);
	if (len <= 0) {
		ERR_clear_error();
		return REVOKD_ENOMEM;
	}
	t->cert_der_len = (size_t)len;
	if (t->cert_der_len > WIRE_CERT_MAX) {
		snprintf(err, err_len,
		    "%s: certificate of %zu bytes, Hello carries %d at most",
		    path, t->cert_der_len, WIRE_CERT_MAX);
		return REVOKD_ETOOBIG;
	}
	if (!agent__asn1_time(X509_get0_notAfter(t->cert), &t->not_after)) {
		snprintf(err, err_len, "%s: unreadable notAfter", path);
		return REVOKD_EMALFORMED;
	}
	return REVOKD_OK;
}

/* Does our key sign what our certificate's public key verifies? */
static bool
agent__key_signs(const agent_tls *t)
{
	uint8_t nonce[WIRE_NONCE_LEN] = { 0 };
	uint8_t msg[AGENT__AUTH_MSG_MAX], sig[AGENT_SIG_MAX];
	size_t msg_len, sig_len;
	agent_peer_cert self = { t->cert };

	agent_auth_message(nonce, "self", "test", msg, &msg_len);
	return agent_tls_sign(t, msg, msg_len, sig, &sig_len) == REVOKD_OK &&
	       agent_peer_verify(&self, msg, msg_len, sig, sig_len) ==
	           REVOKD_OK;
}

/* Our private key, which must be our certificate's. */
static revokd_err
agent__load_key(agent_tls *t, const char *path, char *err, size_t err_len)
{
	BIO *bio = BIO_new_mem_buf(t->key_pem, -1);

	if (bio == NULL)
		return REVOKD_ENOMEM;
	t->key = PEM_read_bio_PrivateKey(bio, NULL, agent__no_password, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (t->key == NULL) {
		snprintf(err, err_len, "%s: %s", path,
		    strstr(t->key_pem, "ENCRYPTED") != NULL
		        ? "encrypted keys are not supported"
		        : "no PEM private key found");
		return REVOKD_EMALFORMED;
	}
	if (X509_check_private_key(t->cert, t->key) != 1) {
		ERR_clear_error();
		snprintf(err, err_len, "%s: key does not match certificate",
		    path);
		return REVOKD_EAUTH;
	}
	if (!agent__key_signs(t)) {
		snprintf(err, err_len,
		    "%s: key cannot make a signature its certificate verifies "
		    "(of at most %d bytes)",
		    path, AGENT_SIG_MAX);
		return REVOKD_ECRYPTO;
	}
	return REVOKD_OK;
}

revokd_err
agent_tls_load(const char *ca_file, const char *cert_file, const char *key_file,
    const char *region, time_t now, agent_tls **out, char *err, size_t err_len)
{
	agent_tls *t = calloc(1, sizeof(*t));
	char why[AGENT__WHY_MAX];
	size_t cap;
	revokd_err rc;

	if (t == NULL)
		return REVOKD_ENOMEM;
	/* The key first: its mode is checked before anything is trusted. */
	if ((rc = agent__read_file(key_file, true, &t->key_pem, &t->key_pem_cap,
	         err, err_len)) != REVOKD_OK ||
	    (rc = agent__read_file(cert_file, false, &t->cert_pem, &cap, err,
	         err_len)) != REVOKD_OK ||
	    (rc = agent__read_file(ca_file, false, &t->ca_pem, &cap, err,
	         err_len)) != REVOKD_OK ||
	    (rc = agent__load_ca(t, ca_file, err, err_len)) != REVOKD_OK ||
	    (rc = agent__load_cert(t, cert_file, err, err_len)) != REVOKD_OK)
		goto fail;
	rc =
	    agent__check_cert(t->store, t->cert, region, now, why, sizeof(why));
	if (rc != REVOKD_OK) {
		snprintf(err, err_len, "%s: %s", cert_file, why);
		goto fail;
	}
	if ((rc = agent__load_key(t, key_file, err, err_len)) != REVOKD_OK)
		goto fail;
	*out = t;
	return REVOKD_OK;
fail:
	if (rc == REVOKD_ENOMEM)
		snprintf(err, err_len, "out of memory");
	agent_tls_free(t);
	return rc;
}

void
agent_tls_free(agent_tls *t)
{
	if (t == NULL)
		return;
	if (t->key_pem != NULL)
		OPENSSL_cleanse(t->key_pem, t->key_pem_cap);
	free(t->key_pem);
	free(t->cert_pem);
	free(t->ca_pem);
	EVP_PKEY_free(t->key);
	X509_free(t->cert);
	X509_STORE_free(t->store);
	OPENSSL_free(t->cert_der);
	free(t);
}

const char *
agent_tls_ca_pem(const agent_tls *t)
{
	return t->ca_pem;
}

const char *
agent_tls_cert_pem(const agent_tls *t)
{
	return t->cert_pem;
}

const char *
agent_tls_key_pem(const agent_tls *t)
{
	return t->key_pem;
}

const uint8_t *
agent_tls_cert_der(const agent_tls *t, size_t *len)
{
	*len = t->cert_der_len;
	return t->cert_der;
}

int64_t
agent_tls_expires_in(const agent_tls *t, time_t now)
{
	return (int64_t)t->not_after - (int64_t)now;
}

/* ------------------------------------------------------------------------ */
/* Signatures                                                               */
/* ------------------------------------------------------------------------ */

/* Append n bytes at *at. */
static void
agent__put(uint8_t *buf, size_t *at, const void *p, size_t n)
{
	memcpy(buf + *at, p, n);
	*at += n;
}

void
agent_auth_message(const uint8_t *verifier_nonce, const char *signer,
    const char *verifier, uint8_t *buf, size_t *len)
{
	size_t signer_len = strnlen(signer, WIRE_NAME_MAX + 1);
	size_t verifier_len = strnlen(verifier, WIRE_NAME_MAX + 1);
	size_t at = 0;

	/* Names come from the config and from decoded Hellos: both bound. */
	assert(signer_len <= WIRE_NAME_MAX && verifier_len <= WIRE_NAME_MAX);
	signer_len = signer_len > WIRE_NAME_MAX ? WIRE_NAME_MAX : signer_len;
	verifier_len =
	    verifier_len > WIRE_NAME_MAX ? WIRE_NAME_MAX : verifier_len;
	agent__put(buf, &at, AGENT_AUTH_CONTEXT,
	    sizeof(AGENT_AUTH_CONTEXT) - 1);
	agent__put(buf, &at, verifier_nonce, WIRE_NONCE_LEN);
	agent__put(buf, &at, signer, signer_len);
	agent__put(buf, &at, "", 1);
	agent__put(buf, &at, verifier, verifier_len);
	agent__put(buf, &at, "", 1);
	*len = at;
}

revokd_err
agent_tls_sign(const agent_tls *t, const uint8_t *msg, size_t len, uint8_t *sig,
    size_t *sig_len)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	revokd_err rc = REVOKD_ECRYPTO;
	size_t n = 0;

	if (ctx == NULL)
		return REVOKD_ENOMEM;
	if (EVP_DigestSignInit_ex(ctx, NULL, agent__digest_for(t->key), NULL,
	        NULL, t->key, NULL) != 1 ||
	    EVP_DigestSign(ctx, NULL, &n, msg, len) != 1)
		goto done;
	if (n > AGENT_SIG_MAX) {
		rc = REVOKD_ETOOBIG;
		goto done;
	}
	if (EVP_DigestSign(ctx, sig, &n, msg, len) != 1)
		goto done;
	*sig_len = n;
	rc = REVOKD_OK;
done:
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return rc;
}

revokd_err
agent_tls_check_peer(const agent_tls *t, const uint8_t *der, size_t len,
    const char *claimed, time_t now, agent_peer_cert **out, char *why,
    size_t why_len)
{
	const unsigned char *p = der;
	agent_peer_cert *c;
	X509 *x = NULL;
	revokd_err rc;

	if (len == 0 || len > WIRE_CERT_MAX) {
		snprintf(why, why_len, "certificate of %zu bytes", len);
		return REVOKD_EAUTH;
	}
	x = d2i_X509(NULL, &p, (long)len);
	if (x == NULL || p != der + len) {
		snprintf(why, why_len,
		    "certificate is not one DER X.509 "
		    "certificate");
		rc = REVOKD_EAUTH;
		goto fail;
	}
	/* X509_STORE is safe to share; verification only reads it. */
	rc = agent__check_cert(t->store, x, claimed, now, why, why_len);
	if (rc != REVOKD_OK)
		goto fail;
	if ((c = malloc(sizeof(*c))) == NULL) {
		snprintf(why, why_len, "out of memory");
		rc = REVOKD_ENOMEM;
		goto fail;
	}
	c->cert = x;
	*out = c;
	return REVOKD_OK;
fail:
	X509_free(x);
	ERR_clear_error();
	return rc;
}

revokd_err
agent_peer_verify(const agent_peer_cert *c, const uint8_t *msg, size_t len,
    const uint8_t *sig, size_t sig_len)
{
	EVP_PKEY *key = X509_get0_pubkey(c->cert);
	EVP_MD_CTX *ctx;
	bool ok = false;

	if (key == NULL || sig_len == 0 || sig_len > AGENT_SIG_MAX) {
		ERR_clear_error();
		return REVOKD_EAUTH;
	}
	if ((ctx = EVP_MD_CTX_new()) == NULL)
		return REVOKD_ENOMEM;
	if (EVP_DigestVerifyInit_ex(ctx, NULL, agent__digest_for(key), NULL,
	        NULL, key, NULL) == 1)
		ok = EVP_DigestVerify(ctx, sig, sig_len, msg, len) == 1;
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok ? REVOKD_OK : REVOKD_EAUTH;
}

void
agent_peer_cert_free(agent_peer_cert *c)
{
	if (c == NULL)
		return;
	X509_free(c->cert);
	free(c);
}

revokd_err
agent_random(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len > 0) {
		int n = len > INT_MAX ? INT_MAX : (int)len;

		if (RAND_bytes(p, n) != 1) {
			ERR_clear_error();
			return REVOKD_ECRYPTO;
		}
		p += n;
		len -= (size_t)n;
	}
	return REVOKD_OK;
}
