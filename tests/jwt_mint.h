/*
 * jwt_mint.h: keys, JWKS files and compact JWS tokens made with OpenSSL,
 * for the tests of librevoke's verifier and of revoke-verify. Anything can
 * be minted, including what a verifier must refuse (alg none, a token
 * signed with HS256 using the public key as the secret, a bad signature).
 */
#ifndef TESTS_JWT_MINT_H
#define TESTS_JWT_MINT_H

#include <stdbool.h>
#include <stddef.h>

#include "revoke.h"

/* A key pair of one algorithm (REVOKE_ALG_ES256, _RS256 or _EDDSA). */
typedef struct mint_key mint_key;

/* A fresh key pair named kid. Aborts the test on failure. */
mint_key *mint_key_new(unsigned alg, const char *kid);

void mint_key_free(mint_key *k);

/* The public key as one JWK object (malloc'd JSON text). */
char *mint_key_jwk(const mint_key *k);

/* The public key in PEM (SubjectPublicKeyInfo), malloc'd. */
char *mint_key_pem(const mint_key *k);

/* Write a JWKS file {"keys": [...]} of the n keys' public JWKs to path. */
void mint_jwks_write(const char *path, mint_key *const *keys, size_t n);

/*
 * A compact JWS (malloc'd): base64url(header) "." base64url(payload) "."
 * base64url(signature). header_json NULL means {"alg": <k's>, "kid": <k's>,
 * "typ": "JWT"}. The signature is made with k for k's algorithm (ES256 as
 * raw r||s), whatever the header says.
 */
char *mint_token(const mint_key *k, const char *header_json,
    const char *payload_json);

/* A token with {"alg":"none"} and an empty signature. */
char *mint_token_none(const char *payload_json);

/*
 * A token whose header says HS256 and whose signature is HMAC-SHA-256
 * keyed with the text of k's public PEM: the algorithm confusion attack.
 */
char *mint_token_hs256_confusion(const mint_key *k, const char *payload_json);

/* base64url without padding of len bytes (malloc'd). */
char *mint_b64url(const void *data, size_t len);

#endif /* TESTS_JWT_MINT_H */
