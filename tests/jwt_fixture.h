/*
 * jwt_fixture.h: the fixture and helpers of the tests of librevoke's JWT
 * verifier (test_jwt.c, test_jwt_revocation.c): a dir holding one key per
 * algorithm, minted by jwt_mint.c, and their JWKS; verifiers reading it;
 * tokens verified and freed in one call.
 */
#ifndef TESTS_JWT_FIXTURE_H
#define TESTS_JWT_FIXTURE_H

#include <stdint.h>

#include "jwt_mint.h"
#include "revoke.h"

/* What the tests share: a dir, one key per algorithm, their JWKS. */
struct jfx {
	char *dir;
	char *jwks; /* es-1, rs-1, ed-1 */
	mint_key *es, *rs, *ed;
};

/* printf into a malloc'd string. */
char *fmt(const char *f, ...);

/* A token of k over payload (freed). */
char *token_of(const mint_key *k, char *payload);

/* Verify token (freed) at now; the result. */
revoke_result verify(revoke_verifier *v, char *token, int64_t now);

/* Verify token (freed) at now, expecting reason. */
#define expect_reason(v, token, now, want)                                     \
	do {                                                                   \
		revoke_result r_ = verify((v), (token), (now));                \
		assert_string_equal(revoke_reason_name(r_.reason),             \
		    revoke_reason_name(want));                                 \
	} while (0)

/* A verifier with o's options (jwks_file defaulting to the fixture's). */
revoke_verifier *verifier(const struct jfx *f, revoke_verifier_options o);

/*
 * cmocka group setup: a struct jfx at *state, with a fresh dir, keys es-1,
 * rs-1 and ed-1, and their JWKS.
 */
int group_setup(void **state);

/* cmocka group teardown: free the keys, remove the dir. */
int group_teardown(void **state);

#endif /* TESTS_JWT_FIXTURE_H */
