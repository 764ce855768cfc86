/*
 * jwt_fixture.c: the fixture and helpers of the JWT verifier tests.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jwt_fixture.h"
#include "testutil.h"

/* printf into a malloc'd string. */
char *
fmt(const char *f, ...)
{
	va_list ap;
	char *s;

	va_start(ap, f);
	assert_true(vasprintf(&s, f, ap) >= 0);
	va_end(ap);
	return s;
}

/* A token of k over payload (freed). */
char *
token_of(const mint_key *k, char *payload)
{
	char *t = mint_token(k, NULL, payload);

	free(payload);
	return t;
}

/* Verify token (freed) at now; the result. */
revoke_result
verify(revoke_verifier *v, char *token, int64_t now)
{
	revoke_result r;

	assert_int_equal(revoke_jwt_verify(v, token, strlen(token), now, &r),
	    REVOKE_OK);
	free(token);
	return r;
}

/* A verifier with o's options (jwks_file defaulting to the fixture's). */
revoke_verifier *
verifier(const struct jfx *f, revoke_verifier_options o)
{
	revoke_verifier *v = NULL;

	if (o.jwks_file == NULL)
		o.jwks_file = f->jwks;
	assert_int_equal(revoke_verifier_new(&o, &v), REVOKE_OK);
	return v;
}

int
group_setup(void **state)
{
	struct jfx *f = calloc(1, sizeof(*f));
	mint_key *keys[3];

	assert_non_null(f);
	f->dir = tu_tmpdir();
	f->jwks = fmt("%s/jwks.json", f->dir);
	keys[0] = f->es = mint_key_new(REVOKE_ALG_ES256, "es-1");
	keys[1] = f->rs = mint_key_new(REVOKE_ALG_RS256, "rs-1");
	keys[2] = f->ed = mint_key_new(REVOKE_ALG_EDDSA, "ed-1");
	mint_jwks_write(f->jwks, keys, 3);
	*state = f;
	return 0;
}

int
group_teardown(void **state)
{
	struct jfx *f = *state;

	mint_key_free(f->es);
	mint_key_free(f->rs);
	mint_key_free(f->ed);
	free(f->jwks);
	tu_rmdir(f->dir);
	free(f);
	return 0;
}
