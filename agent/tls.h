/*
 * tls.h: the agent's identity and the proof of a peer's, with OpenSSL.
 *
 * nng (over mbedTLS) authenticates both ends of a peer connection against
 * the cluster CA, but cannot tell us which certificate the other end showed
 * (DEPS.md). So identity is proven again inside the connection: each side
 * sends its certificate and a fresh nonce (Hello), then signs the other's
 * nonce together with both names (Auth). A peer is who it says only when its
 * certificate chains to the cluster CA, is valid now, names the region it
 * claims, and its key signed our nonce.
 *
 * A certificate names a region through its DNS SANs (exact, case-
 * insensitive, no wildcards); its CN counts only when it has no DNS SAN.
 * That is also what mbedTLS checks for nng's server_name, so a certificate
 * that passes TLS passes here. Region certificates must be signed directly
 * by a certificate in the CA file: Hello carries one certificate.
 */
#ifndef AGENT_TLS_H
#define AGENT_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/revokd.h"
#include "wire/wire.h"

/* Largest signature we make or accept (WIRE_SIG_MAX). */
#define AGENT_SIG_MAX WIRE_SIG_MAX

/* The domain separation prefix of what Auth signs (without its NUL). */
#define AGENT_AUTH_CONTEXT "revokd-peer-auth-v1"

/* Room for agent_auth_message. */
#define AGENT_AUTH_MSG_MAX                                                     \
	(sizeof(AGENT_AUTH_CONTEXT) + WIRE_NONCE_LEN + 2 * (WIRE_NAME_MAX + 1))

/* Our CA, certificate and key, loaded and checked. */
typedef struct agent_tls agent_tls;

/*
 * Load the CA, our certificate and our private key (PEM files). Refused,
 * with err naming the file and the reason: a file that cannot be read (from
 * errno: ENOTFOUND, EPERM, ...); a key file open to group or others (EPERM);
 * no PEM in a file, or an encrypted key (EMALFORMED); a file over 1 MiB or
 * a certificate over 16 KiB (ETOOBIG); a certificate that does not chain to
 * the CA, is not valid at `now`, does not name `region`, or does not match
 * the key (EAUTH); a key that cannot make a signature its certificate
 * verifies (ECRYPTO).
 */
revokd_err agent_tls_load(const char *ca_file, const char *cert_file,
    const char *key_file, const char *region, time_t now, agent_tls **out,
    char *err, size_t err_len);

/* Free (and wipe the key). NULL is allowed. */
void agent_tls_free(agent_tls *t);

/* PEM text of the CA, the certificate and the key, for nng's TLS config. */
const char *agent_tls_ca_pem(const agent_tls *t);
const char *agent_tls_cert_pem(const agent_tls *t);
const char *agent_tls_key_pem(const agent_tls *t);

/* Our certificate, DER, as Hello carries it (lives as long as t). */
const uint8_t *agent_tls_cert_der(const agent_tls *t, size_t *len);

/* Seconds until our certificate expires (negative when it has). */
int64_t agent_tls_expires_in(const agent_tls *t, time_t now);

/*
 * The bytes Auth signs: AGENT_AUTH_CONTEXT (without its NUL), the nonce of
 * the side that will verify, the signer's name and NUL, the verifier's name
 * and NUL. *len is set; buf holds AGENT_AUTH_MSG_MAX bytes.
 */
void agent_auth_message(const uint8_t *verifier_nonce, const char *signer,
    const char *verifier, uint8_t *buf, size_t *len);

/*
 * Sign msg with our key (EC and RSA over SHA-256; Ed25519/Ed448 directly)
 * into sig, which holds AGENT_SIG_MAX bytes; *sig_len is set.
 */
revokd_err agent_tls_sign(const agent_tls *t, const uint8_t *msg, size_t len,
    uint8_t *sig, size_t *sig_len);

/* A peer's proven certificate. */
typedef struct agent_peer_cert agent_peer_cert;

/*
 * Check a peer's certificate (DER): chains to our CA, valid at `now`, names
 * `claimed` (CN or DNS SAN). REVOKD_EAUTH with the reason in why ("expired",
 * "not signed by the cluster CA", "certificate names X, not Y", ...).
 */
revokd_err agent_tls_check_peer(const agent_tls *t, const uint8_t *der,
    size_t len, const char *claimed, time_t now, agent_peer_cert **out,
    char *why, size_t why_len);

/* Verify sig over msg with the peer certificate's key: OK or EAUTH. */
revokd_err agent_peer_verify(const agent_peer_cert *c, const uint8_t *msg,
    size_t len, const uint8_t *sig, size_t sig_len);

/* Free a peer certificate. NULL is allowed. */
void agent_peer_cert_free(agent_peer_cert *c);

/* Fill buf with len bytes from OpenSSL's CSPRNG. */
revokd_err agent_random(void *buf, size_t len);

#endif /* AGENT_TLS_H */
