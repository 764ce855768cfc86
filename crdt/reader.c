/*
 * reader.c: snapshots of the store: lookups, verdicts, scans and range
 * summaries.
 */
#include "crdt/crdt_int.h"

#include <openssl/crypto.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct crdt_reader {
	crdt_store *s;
	MDB_txn *txn; /* holds a reader slot; active between begin and end */
	bool active;
	bool filtered;       /* this snapshot may consult the filter */
	uint64_t filter_seq; /* the filter's sequence when it was judged */
	size_t filter_txnid; /* the snapshot it was judged for */
};

static const char *const crdt__verdict_names[] = {
	[CRDT_VALID] = "VALID",
	[CRDT_REVOKED_TOKEN] = "REVOKED_TOKEN",
	[CRDT_REVOKED_SESSION] = "REVOKED_SESSION",
	[CRDT_STALE_VERSION] = "STALE_VERSION",
	[CRDT_REVOKED_NOT_BEFORE] = "REVOKED_NOT_BEFORE",
};

const char *
crdt_verdict_name(crdt_verdict v)
{
	if ((unsigned)v > CRDT_REVOKED_NOT_BEFORE)
		return "UNKNOWN";
	return crdt__verdict_names[v];
}

/* ------------------------------------------------------------------------ */
/* Snapshots                                                                */
/* ------------------------------------------------------------------------ */

revokd_err
crdt_reader_new(crdt_store *s, crdt_reader **out)
{
	crdt_reader *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return REVOKD_ENOMEM;
	r->s = s;
	*out = r;
	return REVOKD_OK;
}

void
crdt_reader_free(crdt_reader *r)
{
	if (r == NULL)
		return;
	if (r->txn != NULL)
		mdb_txn_abort(r->txn); /* frees the reader slot */
	free(r);
}

/* Begin or renew the snapshot once. */
static int
crdt__reader_take(crdt_reader *r)
{
	if (r->txn == NULL)
		return mdb_txn_begin(r->s->env, NULL, MDB_RDONLY, &r->txn);
	return mdb_txn_renew(r->txn);
}

/*
 * Whether this snapshot may consult the filter; judged again only when the
 * snapshot or the filter's sequence moved (one meta lookup per write).
 */
static revokd_err
crdt__reader_judge_filter(crdt_reader *r)
{
	size_t id = mdb_txn_id(r->txn);
	uint64_t seq = 0;
	bool usable;
	revokd_err err;

	if (r->filter_txnid == id && r->filtered &&
	    crdt__filter_seq(r->s) == r->filter_seq)
		return REVOKD_OK;
	err = crdt__filter_usable(r->s, r->txn, &seq, &usable);
	r->filtered = err == REVOKD_OK && usable;
	r->filter_seq = seq;
	r->filter_txnid = id;
	return err;
}

revokd_err
crdt_reader_begin(crdt_reader *r)
{
	revokd_err err;
	int rc;

	if (r->active)
		crdt_reader_end(r);
	if ((rc = crdt__reader_take(r)) != 0)
		return crdt__mdb_err(rc); /* MAP_RESIZED: the caller remaps */
	/* The filter's bits are read after the snapshot's txnid. */
	atomic_thread_fence(memory_order_acquire);
	if ((err = crdt__reader_judge_filter(r)) != REVOKD_OK) {
		mdb_txn_reset(r->txn);
		return err;
	}
	r->active = true;
	return REVOKD_OK;
}

revokd_err
crdt_store_remap(crdt_store *s)
{
	revokd_err err = crdt__filter_remap(s);

	if (err != REVOKD_OK)
		return err;
	return crdt__mdb_err(mdb_env_set_mapsize(s->env, 0));
}

size_t
crdt_reader_snapshot_id(const crdt_reader *r)
{
	return r->active ? mdb_txn_id(r->txn) : 0;
}

void
crdt_reader_end(crdt_reader *r)
{
	if (r->active)
		mdb_txn_reset(r->txn);
	r->active = false;
}

/* ------------------------------------------------------------------------ */
/* Lookups and verdicts                                                     */
/* ------------------------------------------------------------------------ */

revokd_err
crdt_reader_get(crdt_reader *r, const crdt_key *key, crdt_entry *out)
{
	MDB_val k = { CRDT_KEY_LEN, (void *)key->b }, v;
	revokd_err err;
	int rc;

	if (!r->active)
		return REVOKD_EINVAL;
	if (r->filtered && crdt__filter_absent(r->s, key, r->filter_seq))
		return REVOKD_ENOTFOUND;
	if ((rc = mdb_get(r->txn, r->s->entries, &k, &v)) != 0)
		return crdt__mdb_err(rc);
	if ((err = crdt_value_decode(v.mv_data, v.mv_size, out)) != REVOKD_OK)
		return err;
	out->key = *key;
	return REVOKD_OK;
}

revokd_err
crdt_reader_meta_get(crdt_reader *r, const char *name, void *buf, size_t cap,
    size_t *len)
{
	MDB_val k = { strlen(name), (void *)name }, v;
	int rc;

	if (!r->active)
		return REVOKD_EINVAL;
	if ((rc = mdb_get(r->txn, r->s->meta, &k, &v)) != 0)
		return crdt__mdb_err(rc);
	if (v.mv_size > cap)
		return REVOKD_ETOOBIG;
	memcpy(buf, v.mv_data, v.mv_size);
	*len = v.mv_size;
	return REVOKD_OK;
}

revokd_err
crdt_reader_secret_check(crdt_reader *r, crdt_keyer *k)
{
	uint8_t want[CRDT__SECRET_FP_LEN], got[CRDT__SECRET_FP_LEN];
	size_t len;
	revokd_err err;

	if ((err = crdt__secret_fingerprint(k, want)) != REVOKD_OK)
		return err;
	err =
	    crdt_reader_meta_get(r, CRDT__META_SECRET, got, sizeof(got), &len);
	if (err == REVOKD_ETOOBIG)
		return REVOKD_EAUTH;
	if (err != REVOKD_OK)
		return err;
	return len == sizeof(got) && CRYPTO_memcmp(got, want, len) == 0
	           ? REVOKD_OK
	           : REVOKD_EAUTH;
}

/*
 * The entry under key, which must be a token entry (token) or a subject
 * entry (!token): *found says whether there is one.
 */
static revokd_err
crdt__lookup(crdt_reader *r, const crdt_key *key, bool token, crdt_entry *e,
    bool *found)
{
	revokd_err err = crdt_reader_get(r, key, e);

	*found = err == REVOKD_OK;
	if (err == REVOKD_ENOTFOUND)
		return REVOKD_OK;
	if (err != REVOKD_OK)
		return err;
	return crdt_kind_is_token(e->kind) == token ? REVOKD_OK : REVOKD_EKIND;
}

/* True when a token issued at iat (seconds) is before not_before_ms. */
static bool
crdt__issued_before(int64_t iat, uint64_t not_before_ms)
{
	if (not_before_ms == 0)
		return false; /* never set */
	if (iat < 0)
		return true;
	if ((uint64_t)iat > UINT64_MAX / 1000)
		return false;
	return (uint64_t)iat * 1000 < not_before_ms;
}

static crdt_verdict
crdt__subject_verdict(const crdt_subject *s, uint64_t version,
    const crdt_check *c)
{
	if (c->has_ver && c->ver < version)
		return CRDT_STALE_VERSION;
	if (c->has_iat && crdt__issued_before(c->iat, s->not_before_ms))
		return CRDT_REVOKED_NOT_BEFORE;
	return CRDT_VALID;
}

/* The verdict of the token entry under key: revoked gives if_revoked. */
static revokd_err
crdt__token_verdict(crdt_reader *r, const crdt_key *key,
    crdt_verdict if_revoked, crdt_verdict *out)
{
	crdt_entry e;
	bool found;
	revokd_err err = crdt__lookup(r, key, true, &e, &found);

	if (err == REVOKD_OK && found && crdt_token_revoked(&e.u.token))
		*out = if_revoked;
	return err;
}

revokd_err
crdt_reader_check(crdt_reader *r, const crdt_check *c, crdt_check_result *out)
{
	crdt_check_result res = { CRDT_VALID, 0 };
	crdt_entry e;
	bool found;
	revokd_err err;

	if (c->jti != NULL && (err = crdt__token_verdict(r, c->jti,
	                           CRDT_REVOKED_TOKEN, &res.verdict)))
		return err;
	if (c->sid != NULL && res.verdict == CRDT_VALID &&
	    (err = crdt__token_verdict(r, c->sid, CRDT_REVOKED_SESSION,
	         &res.verdict)))
		return err;
	/* The version is always reported, even for a revoked token. */
	if (c->sub != NULL) {
		if ((err = crdt__lookup(r, c->sub, false, &e, &found)))
			return err;
		if (found) {
			res.version = crdt_subject_version(&e.u.subject);
			if (res.verdict == CRDT_VALID)
				res.verdict = crdt__subject_verdict(
				    &e.u.subject, res.version, c);
		}
	}
	*out = res;
	return REVOKD_OK;
}

/* ------------------------------------------------------------------------ */
/* Scans and summaries                                                      */
/* ------------------------------------------------------------------------ */

/*
 * Visit each (key, raw value) with lo <= key < hi (hi NULL: no bound).
 * visit returns false to stop.
 */
typedef bool (
    *crdt__raw_fn)(void *arg, const crdt_key *key, const MDB_val *value);

static revokd_err
crdt__scan_raw(crdt_reader *r, const crdt_key *lo, const crdt_key *hi,
    crdt__raw_fn visit, void *arg)
{
	static const crdt_key zero;
	MDB_cursor *cur;
	MDB_val k = { CRDT_KEY_LEN, (void *)(lo ? lo : &zero)->b }, v;
	revokd_err err = REVOKD_OK;
	int rc;

	if (!r->active)
		return REVOKD_EINVAL;
	if ((rc = mdb_cursor_open(r->txn, r->s->entries, &cur)) != 0)
		return crdt__mdb_err(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		crdt_key key;

		if (k.mv_size != CRDT_KEY_LEN) {
			err = REVOKD_ECORRUPT;
			break;
		}
		memcpy(key.b, k.mv_data, CRDT_KEY_LEN);
		if (hi != NULL && crdt_key_cmp(&key, hi) >= 0)
			break;
		if (!visit(arg, &key, &v))
			break;
	}
	mdb_cursor_close(cur);
	if (err == REVOKD_OK && rc != 0 && rc != MDB_NOTFOUND)
		err = crdt__mdb_err(rc);
	return err;
}

struct crdt__decode_visit {
	crdt_entry_fn fn;
	void *arg;
	revokd_err err;
};

static bool
crdt__visit_decoded(void *arg, const crdt_key *key, const MDB_val *value)
{
	struct crdt__decode_visit *dv = arg;
	crdt_entry e;

	dv->err = crdt_value_decode(value->mv_data, value->mv_size, &e);
	if (dv->err != REVOKD_OK)
		return false;
	e.key = *key;
	return dv->fn(dv->arg, &e);
}

revokd_err
crdt_reader_scan(crdt_reader *r, const crdt_key *lo, const crdt_key *hi,
    crdt_entry_fn fn, void *arg)
{
	struct crdt__decode_visit dv = { fn, arg, REVOKD_OK };
	revokd_err err = crdt__scan_raw(r, lo, hi, crdt__visit_decoded, &dv);

	return err != REVOKD_OK ? err : dv.err;
}

struct crdt__sum_visit {
	crdt_summary *total;
	crdt_summary *buckets; /* NULL when not wanted */
};

static bool
crdt__visit_sum(void *arg, const crdt_key *key, const MDB_val *value)
{
	struct crdt__sum_visit *sv = arg;
	crdt_summary one;

	crdt__value_summary(key, value->mv_data, value->mv_size, &one);
	crdt_summary_add(sv->total, &one);
	if (sv->buckets != NULL)
		crdt_summary_add(&sv->buckets[crdt_key_bucket(key)], &one);
	return true;
}

/* Add the summary of [lo, hi) to *out by scanning. */
static revokd_err
crdt__scan_summary(crdt_reader *r, const crdt_key *lo, const crdt_key *hi,
    crdt_summary *out)
{
	struct crdt__sum_visit sv = { out, NULL };

	return crdt__scan_raw(r, lo, hi, crdt__visit_sum, &sv);
}

/* True when key is the first key of its bucket. */
static bool
crdt__bucket_aligned(const crdt_key *key)
{
	crdt_key first;

	crdt_bucket_first_key(crdt_key_bucket(key), &first);
	return crdt_key_cmp(key, &first) == 0;
}

revokd_err
crdt_reader_range_summary(crdt_reader *r, const crdt_key *lo,
    const crdt_key *hi, crdt_summary *out)
{
	static const crdt_key zero;
	crdt_summary sum = { 0 }, part;
	crdt_key edge;
	uint32_t first, last;
	revokd_err err = REVOKD_OK;

	if (!r->active)
		return REVOKD_EINVAL;
	lo = lo ? lo : &zero;
	first = crdt_key_bucket(lo);
	last = hi ? crdt_key_bucket(hi) : CRDT_BUCKETS;
	if (hi != NULL && crdt_key_cmp(lo, hi) >= 0) {
		*out = sum;
		return REVOKD_OK;
	}
	/*
	 * Memory summaries only match a snapshot of the last commit; a range
	 * inside one bucket has no whole bucket to take from memory.
	 */
	if (r->s->bucket == NULL || mdb_txn_id(r->txn) != r->s->last_txnid ||
	    first == last) {
		err = crdt__scan_summary(r, lo, hi, &sum);
		*out = sum;
		return err;
	}
	/* [lo, hi) = the head of lo's bucket, whole buckets, hi's bucket's
	 * head. */
	if (!crdt__bucket_aligned(lo)) {
		if (++first < CRDT_BUCKETS)
			crdt_bucket_first_key(first, &edge);
		err = crdt__scan_summary(r, lo,
		    first < CRDT_BUCKETS ? &edge : NULL, &sum);
	}
	if (err == REVOKD_OK) {
		crdt_store_buckets_sum(r->s, first, last, &part);
		crdt_summary_add(&sum, &part);
	}
	if (err == REVOKD_OK && hi != NULL && !crdt__bucket_aligned(hi)) {
		crdt_bucket_first_key(last, &edge);
		err = crdt__scan_summary(r, &edge, hi, &sum);
	}
	*out = sum;
	return err;
}

revokd_err
crdt_reader_recompute(crdt_reader *r, crdt_summary *total,
    crdt_summary *buckets)
{
	struct crdt__sum_visit sv = { total, buckets };

	memset(total, 0, sizeof(*total));
	if (buckets != NULL)
		memset(buckets, 0, CRDT_BUCKETS * sizeof(*buckets));
	return crdt__scan_raw(r, NULL, NULL, crdt__visit_sum, &sv);
}
