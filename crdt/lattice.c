/*
 * lattice.c: the token and subject lattices, their canonical encoding, and
 * the per-entry fingerprint hash.
 */
#include "crdt/crdt_int.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Token entries                                                            */
/* ------------------------------------------------------------------------ */

bool
crdt_token_revoked(const crdt_token *t)
{
	return t->revoked_at != 0 && t->revoked_at >= t->restored_at;
}

/* Order of the (revoked_at, origin, reason) triples of a and b. */
static int
crdt__revocation_cmp(const crdt_token *a, const crdt_token *b)
{
	if (a->revoked_at != b->revoked_at)
		return a->revoked_at < b->revoked_at ? -1 : 1;
	if (a->origin != b->origin)
		return a->origin < b->origin ? -1 : 1;
	if (a->reason != b->reason)
		return a->reason < b->reason ? -1 : 1;
	return 0;
}

bool
crdt_token_merge(crdt_token *into, const crdt_token *from)
{
	bool changed = false;

	if (from->exp > into->exp) {
		into->exp = from->exp;
		changed = true;
	}
#ifndef CRDT_TEST_BROKEN_MERGE
	if (from->restored_at > into->restored_at) {
		into->restored_at = from->restored_at;
		changed = true;
	}
#else
	/*
	 * Deliberately wrong, for the one test that proves the simulator's
	 * invariant checks can fail: a restore never spreads.
	 */
	(void)0;
#endif
	if (crdt__revocation_cmp(from, into) > 0) {
		into->revoked_at = from->revoked_at;
		into->origin = from->origin;
		into->reason = from->reason;
		changed = true;
	}
	return changed;
}

/* ------------------------------------------------------------------------ */
/* Subject entries                                                          */
/* ------------------------------------------------------------------------ */

uint64_t
crdt_subject_version(const crdt_subject *s)
{
	uint64_t v = 0;

	/* Saturating: counts only grow, so the version must never wrap. */
	for (uint32_t i = 0; i < s->n; i++)
		v = s->count[i] > UINT64_MAX - v ? UINT64_MAX : v + s->count[i];
	return v;
}

static bool
crdt__subject_canonical(const crdt_subject *s)
{
	if (s->n > CRDT_MAX_WRITERS)
		return false;
	for (uint32_t i = 0; i < s->n; i++) {
		if (s->count[i] == 0)
			return false;
		if (i > 0 && s->region[i - 1] >= s->region[i])
			return false;
	}
	return true;
}

revokd_err
crdt_subject_bump(crdt_subject *s, uint16_t region, uint64_t delta)
{
	uint32_t i = 0;

	if (!crdt__subject_canonical(s))
		return REVOKD_EMALFORMED;
	if (delta == 0)
		return REVOKD_OK;
	while (i < s->n && s->region[i] < region)
		i++;
	if (i < s->n && s->region[i] == region) {
		if (s->count[i] > UINT64_MAX - delta)
			return REVOKD_EINVAL;
		s->count[i] += delta;
		return REVOKD_OK;
	}
	if (s->n == CRDT_MAX_WRITERS)
		return REVOKD_ELIMIT;
	memmove(&s->region[i + 1], &s->region[i],
	    (s->n - i) * sizeof(s->region[0]));
	memmove(&s->count[i + 1], &s->count[i],
	    (s->n - i) * sizeof(s->count[0]));
	s->region[i] = region;
	s->count[i] = delta;
	s->n++;
	return REVOKD_OK;
}

/* Pointwise max of two canonical counters into out; false on overflow. */
static bool
crdt__counter_join(const crdt_subject *a, const crdt_subject *b,
    crdt_subject *out)
{
	uint32_t i = 0, j = 0, n = 0;

	while (i < a->n || j < b->n) {
		uint16_t region;
		uint64_t count;

		if (j == b->n || (i < a->n && a->region[i] < b->region[j])) {
			region = a->region[i];
			count = a->count[i++];
		} else if (i == a->n || b->region[j] < a->region[i]) {
			region = b->region[j];
			count = b->count[j++];
		} else {
			region = a->region[i];
			count = a->count[i] > b->count[j] ? a->count[i]
			                                  : b->count[j];
			i++;
			j++;
		}
		if (n == CRDT_MAX_WRITERS)
			return false;
		out->region[n] = region;
		out->count[n++] = count;
	}
	out->n = n;
	return true;
}

static bool
crdt__counter_equal(const crdt_subject *a, const crdt_subject *b)
{
	return a->n == b->n &&
	       memcmp(a->region, b->region, a->n * sizeof(a->region[0])) == 0 &&
	       memcmp(a->count, b->count, a->n * sizeof(a->count[0])) == 0;
}

revokd_err
crdt_subject_merge(crdt_subject *into, const crdt_subject *from, bool *changed)
{
	crdt_subject joined;

	if (!crdt__subject_canonical(into) || !crdt__subject_canonical(from))
		return REVOKD_EMALFORMED;
	if (!crdt__counter_join(into, from, &joined))
		return REVOKD_ELIMIT;
	joined.not_before_ms = from->not_before_ms > into->not_before_ms
	                           ? from->not_before_ms
	                           : into->not_before_ms;
	*changed = joined.not_before_ms != into->not_before_ms ||
	           !crdt__counter_equal(&joined, into);
	if (*changed)
		*into = joined;
	return REVOKD_OK;
}

/* ------------------------------------------------------------------------ */
/* Entries                                                                  */
/* ------------------------------------------------------------------------ */

revokd_err
crdt_entry_merge(crdt_entry *into, const crdt_entry *from, bool *changed)
{
	if (into->kind != from->kind)
		return REVOKD_EKIND;
	if (crdt_kind_is_token(into->kind)) {
		*changed = crdt_token_merge(&into->u.token, &from->u.token);
		return REVOKD_OK;
	}
	return crdt_subject_merge(&into->u.subject, &from->u.subject, changed);
}

bool
crdt_entry_equal(const crdt_entry *a, const crdt_entry *b)
{
	uint8_t va[CRDT_VALUE_MAX], vb[CRDT_VALUE_MAX];
	size_t la, lb;

	if (crdt_key_cmp(&a->key, &b->key) != 0)
		return false;
	la = crdt_value_encode(a, va);
	lb = crdt_value_encode(b, vb);
	return la == lb && memcmp(va, vb, la) == 0;
}

/* ------------------------------------------------------------------------ */
/* Canonical encoding                                                       */
/* ------------------------------------------------------------------------ */

/*
 * Token:   kind u8, reason u8, origin u16, exp i64, revoked_at u64,
 *          restored_at u64                               (28 bytes)
 * Subject: kind u8, n u8, not_before_ms u64, then n times
 *          (region u16, count u64)                       (10 + 10n bytes)
 * All integers little-endian. This is the store's value format and the input
 * of the fingerprint hash: changing it changes both.
 */
#define CRDT__TOKEN_LEN 28
#define CRDT__SUBJECT_HEAD 10
#define CRDT__COUNTER_LEN 10

static void
put_le(uint8_t *p, uint64_t v, int bytes)
{
	for (int i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
get_le(const uint8_t *p, int bytes)
{
	uint64_t v = 0;

	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

size_t
crdt_value_encode(const crdt_entry *e, uint8_t *buf)
{
	const crdt_subject *s = &e->u.subject;
	uint8_t *p;

	buf[0] = (uint8_t)e->kind;
	if (crdt_kind_is_token(e->kind)) {
		const crdt_token *t = &e->u.token;

		buf[1] = t->reason;
		put_le(buf + 2, t->origin, 2);
		put_le(buf + 4, (uint64_t)t->exp, 8);
		put_le(buf + 12, t->revoked_at, 8);
		put_le(buf + 20, t->restored_at, 8);
		return CRDT__TOKEN_LEN;
	}
	buf[1] = (uint8_t)s->n;
	put_le(buf + 2, s->not_before_ms, 8);
	p = buf + CRDT__SUBJECT_HEAD;
	for (uint32_t i = 0; i < s->n; i++, p += CRDT__COUNTER_LEN) {
		put_le(p, s->region[i], 2);
		put_le(p + 2, s->count[i], 8);
	}
	return (size_t)(p - buf);
}

size_t
crdt_value_size(const uint8_t *buf, size_t avail)
{
	if (avail < 1 || !crdt_kind_valid(buf[0]))
		return 0;
	if (crdt_kind_is_token((crdt_kind)buf[0]))
		return CRDT__TOKEN_LEN;
	if (avail < 2 || buf[1] > CRDT_MAX_WRITERS)
		return 0;
	return CRDT__SUBJECT_HEAD + (size_t)buf[1] * CRDT__COUNTER_LEN;
}

static revokd_err
crdt__token_decode(const uint8_t *buf, size_t len, crdt_token *t)
{
	if (len != CRDT__TOKEN_LEN)
		return REVOKD_ECORRUPT;
	t->reason = buf[1];
	t->origin = (uint16_t)get_le(buf + 2, 2);
	t->exp = (int64_t)get_le(buf + 4, 8);
	t->revoked_at = get_le(buf + 12, 8);
	t->restored_at = get_le(buf + 20, 8);
	return REVOKD_OK;
}

static revokd_err
crdt__subject_decode(const uint8_t *buf, size_t len, crdt_subject *s)
{
	const uint8_t *p = buf + CRDT__SUBJECT_HEAD;

	if (len < CRDT__SUBJECT_HEAD || buf[1] > CRDT_MAX_WRITERS ||
	    len != CRDT__SUBJECT_HEAD + (size_t)buf[1] * CRDT__COUNTER_LEN)
		return REVOKD_ECORRUPT;
	s->n = buf[1];
	s->not_before_ms = get_le(buf + 2, 8);
	for (uint32_t i = 0; i < s->n; i++, p += CRDT__COUNTER_LEN) {
		s->region[i] = (uint16_t)get_le(p, 2);
		s->count[i] = get_le(p + 2, 8);
	}
	return crdt__subject_canonical(s) ? REVOKD_OK : REVOKD_ECORRUPT;
}

revokd_err
crdt_value_decode(const uint8_t *buf, size_t len, crdt_entry *e)
{
	crdt_entry d;
	revokd_err err;

	if (len < 1 || !crdt_kind_valid(buf[0]))
		return REVOKD_ECORRUPT;
	d.kind = (crdt_kind)buf[0];
	if (crdt_kind_is_token(d.kind))
		err = crdt__token_decode(buf, len, &d.u.token);
	else
		err = crdt__subject_decode(buf, len, &d.u.subject);
	if (err != REVOKD_OK)
		return err;
	e->kind = d.kind;
	if (crdt_kind_is_token(d.kind))
		e->u.token = d.u.token;
	else
		e->u.subject = d.u.subject;
	return REVOKD_OK;
}

/* ------------------------------------------------------------------------ */
/* Fingerprints                                                             */
/* ------------------------------------------------------------------------ */

void
crdt_summary_add(crdt_summary *a, const crdt_summary *b)
{
	uint64_t lo = a->fp_lo + b->fp_lo;

	a->fp_hi += b->fp_hi + (lo < a->fp_lo);
	a->fp_lo = lo;
	a->count += b->count;
}

void
crdt_summary_sub(crdt_summary *a, const crdt_summary *b)
{
	uint64_t lo = a->fp_lo - b->fp_lo;

	a->fp_hi -= b->fp_hi + (lo > a->fp_lo);
	a->fp_lo = lo;
	a->count -= b->count;
}

bool
crdt_summary_equal(const crdt_summary *a, const crdt_summary *b)
{
	return a->count == b->count && a->fp_lo == b->fp_lo &&
	       a->fp_hi == b->fp_hi;
}

void
crdt__value_summary(const crdt_key *key, const uint8_t *value, size_t len,
    crdt_summary *out)
{
	uint8_t buf[CRDT_KEY_LEN + CRDT_VALUE_MAX];
	uint8_t md[EVP_MAX_MD_SIZE];

	if (len > CRDT_VALUE_MAX)
		len = CRDT_VALUE_MAX; /* only corrupt values; decode refuses
		                         them */
	memcpy(buf, key->b, CRDT_KEY_LEN);
	memcpy(buf + CRDT_KEY_LEN, value, len);
	/*
	 * SHA-256 over a stack buffer fails only if OpenSSL itself is broken;
	 * a silent zero hash would corrupt every fingerprint, so stop.
	 */
	if (!EVP_Digest(buf, CRDT_KEY_LEN + len, md, NULL, EVP_sha256(), NULL))
		abort();
	out->count = 1;
	out->fp_lo = get_le(md, 8);
	out->fp_hi = get_le(md + 8, 8);
}

void
crdt_entry_summary(const crdt_entry *e, crdt_summary *out)
{
	uint8_t value[CRDT_VALUE_MAX];

	crdt__value_summary(&e->key, value, crdt_value_encode(e, value), out);
}

uint32_t
crdt_key_bucket(const crdt_key *key)
{
	return ((uint32_t)key->b[0] << 8 | key->b[1]) >>
	       (16 - CRDT_BUCKET_BITS);
}

void
crdt_bucket_first_key(uint32_t b, crdt_key *out)
{
	uint32_t prefix = b << (16 - CRDT_BUCKET_BITS);

	memset(out->b, 0, CRDT_KEY_LEN);
	out->b[0] = (uint8_t)(prefix >> 8);
	out->b[1] = (uint8_t)prefix;
}
