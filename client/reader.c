/*
 * reader.c: the direct reader of librevoke: the agent's store opened
 * read-only, checks answered in-process.
 *
 * Theory. LMDB lets any number of processes read while the agent writes;
 * a read transaction sees one committed state and never blocks the writer.
 * A check derives the ids' keys with the cluster secret (as the agent
 * does), takes a snapshot, reads the verdict and the saved watermarks from
 * it, and ends it. The answer is the agent's, from the same code
 * (crdt_reader_check), at the snapshot's state.
 *
 * Threads. A check needs a crdt_reader and a crdt_keyer, neither
 * thread-safe, so the reader keeps a pool of (reader, keyer) slots: a
 * check takes one, uses it, and gives it back; the pool grows to the
 * number of threads checking at once. Each slot holds one LMDB reader slot
 * (the store is opened MDB_NOTLS). When the agent grows the map, a
 * snapshot cannot begin until this process adopts the new size, which
 * LMDB allows only while no snapshot of the store is open in the process:
 * every check holds the map lock shared while its snapshot is open, and
 * the remap takes it exclusively.
 *
 * Staleness. The agent saves its watermarks ("revokd.watermarks", see
 * agent/engine_fresh.c) every 50 ms: per configured region its id (u16
 * LE) and a time (u64 LE, µs since the epoch on the agent's clock, which
 * is this host's); the first is the agent's own, the others its peers'.
 * staleness = now - the oldest peer watermark, as the agent computes it;
 * 0 with no peers. Read from the snapshot, so it is never fresher than
 * the socket's answer at the same moment, and at most 50 ms older. A store
 * without watermarks (an agent that has not run since it was made) gives
 * the staleness of a peer never heard: now - 0.
 *
 * Closing frees every slot's LMDB reader slot (crdt_reader_free aborts
 * its transaction) before the environment closes: nothing stale is left
 * in the lock file.
 */
#include "client_int.h"

#include <openssl/crypto.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crdt/crdt.h"

/* The agent's name for its saved watermarks (agent/engine_int.h). */
#define REVOKE__META_WATERMARKS "revokd.watermarks"

/* Bytes of one saved watermark: a u16 region id, a u64 time. */
#define REVOKE__WM_LEN 10

/* Times a check adopts a grown map before giving up. */
#define REVOKE__REMAP_TRIES 8

typedef struct revoke__slot {
	crdt_reader *rd;
	crdt_keyer *keyer;
	/* The saved watermarks' oldest peer time, as of snapshot wm_snapshot
	 * (0: none read yet); UINT64_MAX when no peer has one. */
	size_t wm_snapshot;
	bool wm_saved; /* the agent has saved watermarks */
	uint64_t wm_oldest;
	struct revoke__slot *next_free;
	struct revoke__slot *next_all;
} revoke__slot;

struct revoke_reader {
	crdt_store *store;
	uint8_t secret[CRDT_SECRET_LEN]; /* for the keyers of new slots */
	pthread_rwlock_t map;            /* shared: a snapshot is open */
	pthread_mutex_t lock;            /* the pool */
	revoke__slot *free;
	revoke__slot *all;
};

/*
 * What a check, a version read or the secret's check found in one
 * snapshot: check set for a check, sub for a version, neither for the
 * secret (its answer in secret).
 */
typedef struct revoke__read {
	const crdt_check *check;
	const crdt_key *sub;
	revokd_err secret;
	crdt_check_result result;
	crdt_entry subject;
	bool has_subject;
	uint64_t staleness_ms;
} revoke__read;

/* ------------------------------------------------------------------------ */
/* Opening and closing                                                      */
/* ------------------------------------------------------------------------ */

static revoke_status revoke__secret_check(revoke_reader *r,
    const char *data_dir, const char *secret_file);

revoke_status
revoke_reader_open(const char *data_dir, const char *secret_file,
    revoke_reader **out)
{
	crdt_store_options opt = { .read_only = true };
	revoke_reader *r;
	revoke_status st = REVOKE_OK;
	char err[512];
	revokd_err e;

	if (data_dir == NULL || secret_file == NULL || out == NULL)
		return REVOKE_E_INVALID;
	if ((r = calloc(1, sizeof(*r))) == NULL)
		return REVOKE_E_NOMEM;
	if (pthread_rwlock_init(&r->map, NULL) != 0) {
		free(r);
		return REVOKE_E_NOMEM;
	}
	if (pthread_mutex_init(&r->lock, NULL) != 0) {
		pthread_rwlock_destroy(&r->map);
		free(r);
		return REVOKE_E_NOMEM;
	}
	if (revokd_secret_load(secret_file, r->secret, sizeof(r->secret), err,
	        sizeof(err)) != REVOKD_OK) {
		revoke__errorf("%s", err);
		st = REVOKE_E_SECRET;
	} else if ((e = crdt_store_open(data_dir, &opt, &r->store)) !=
	           REVOKD_OK) {
		revoke__errorf("%s: %s", data_dir, revokd_strerror(e));
		st = REVOKE_E_STORE;
	}
	if (st == REVOKE_OK)
		st = revoke__secret_check(r, data_dir, secret_file);
	if (st != REVOKE_OK) {
		revoke_reader_close(r);
		return st;
	}
	*out = r;
	return REVOKE_OK;
}

void
revoke_reader_close(revoke_reader *r)
{
	revoke__slot *s, *next;

	if (r == NULL)
		return;
	for (s = r->all; s != NULL; s = next) {
		next = s->next_all;
		crdt_reader_free(s->rd);
		crdt_keyer_free(s->keyer);
		free(s);
	}
	crdt_store_close(r->store);
	OPENSSL_cleanse(r->secret, sizeof(r->secret));
	pthread_mutex_destroy(&r->lock);
	pthread_rwlock_destroy(&r->map);
	free(r);
}

/* A slot from the pool, made when none is free. */
static revoke_status
revoke__slot_take(revoke_reader *r, revoke__slot **out)
{
	revoke__slot *s;

	pthread_mutex_lock(&r->lock);
	if ((s = r->free) != NULL)
		r->free = s->next_free;
	pthread_mutex_unlock(&r->lock);
	if (s != NULL) {
		*out = s;
		return REVOKE_OK;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return REVOKE_E_NOMEM;
	if (crdt_reader_new(r->store, &s->rd) != REVOKD_OK ||
	    crdt_keyer_new(r->secret, sizeof(r->secret), &s->keyer) !=
	        REVOKD_OK) {
		crdt_reader_free(s->rd);
		free(s);
		return REVOKE_E_NOMEM;
	}
	pthread_mutex_lock(&r->lock);
	s->next_all = r->all;
	r->all = s;
	pthread_mutex_unlock(&r->lock);
	*out = s;
	return REVOKE_OK;
}

static void
revoke__slot_give(revoke_reader *r, revoke__slot *s)
{
	pthread_mutex_lock(&r->lock);
	s->next_free = r->free;
	r->free = s;
	pthread_mutex_unlock(&r->lock);
}

/* ------------------------------------------------------------------------ */
/* Snapshots                                                                */
/* ------------------------------------------------------------------------ */

static uint64_t
revoke__now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * Read the saved watermarks of s's snapshot into s's cache: whether there
 * are any and the oldest peer time among them (the first watermark is the
 * agent's own: not a staleness).
 */
static revoke_status
revoke__watermarks(revoke__slot *s)
{
	uint8_t buf[CRDT_META_MAX];
	size_t len = 0;

	s->wm_oldest = UINT64_MAX;
	switch (crdt_reader_meta_get(s->rd, REVOKE__META_WATERMARKS, buf,
	    sizeof(buf), &len)) {
	case REVOKD_OK:
		s->wm_saved = true;
		break;
	case REVOKD_ENOTFOUND:
		s->wm_saved = false;
		return REVOKE_OK;
	default:
		return REVOKE_E_STORE;
	}
	for (size_t off = REVOKE__WM_LEN; off + REVOKE__WM_LEN <= len;
	     off += REVOKE__WM_LEN) {
		uint64_t t = 0;

		for (int b = 7; b >= 0; b--)
			t = t << 8 | buf[off + 2 + b];
		if (t < s->wm_oldest)
			s->wm_oldest = t;
	}
	return REVOKE_OK;
}

/*
 * The staleness the saved watermarks in s's snapshot give. They change only
 * with the snapshot: read once per snapshot id.
 */
static revoke_status
revoke__staleness(revoke__slot *s, uint64_t *ms)
{
	size_t id = crdt_reader_snapshot_id(s->rd);
	uint64_t now = revoke__now_us();
	revoke_status st;

	*ms = 0;
	if (id != s->wm_snapshot) {
		s->wm_snapshot = 0;
		if ((st = revoke__watermarks(s)) != REVOKE_OK)
			return st;
		s->wm_snapshot = id;
	}
	if (!s->wm_saved) {
		/* An agent that never saved any knows nothing of its peers:
		 * as the agent says of a peer never heard, since the epoch. */
		*ms = now / 1000;
		return REVOKE_OK;
	}
	if (s->wm_oldest != UINT64_MAX && now > s->wm_oldest)
		*ms = (now - s->wm_oldest) / 1000;
	return REVOKE_OK;
}

/* Adopt the map size the agent grew the store to. */
static revoke_status
revoke__remap(revoke_reader *r)
{
	revokd_err err;

	pthread_rwlock_wrlock(&r->map);
	err = crdt_store_remap(r->store);
	pthread_rwlock_unlock(&r->map);
	return err == REVOKD_OK ? REVOKE_OK : REVOKE_E_STORE;
}

/* What *rd asks, from one snapshot taken with slot s. */
static revoke_status
revoke__read_snapshot(revoke_reader *r, revoke__slot *s, revoke__read *rd)
{
	revoke_status st = REVOKE_OK;
	revokd_err err;

	for (int tries = 0;; tries++) {
		pthread_rwlock_rdlock(&r->map);
		if ((err = crdt_reader_begin(s->rd)) != REVOKD_EMAPRESIZED)
			break;
		pthread_rwlock_unlock(&r->map);
		if (tries == REVOKE__REMAP_TRIES ||
		    (st = revoke__remap(r)) != REVOKE_OK)
			return REVOKE_E_STORE;
	}
	if (err != REVOKD_OK) {
		pthread_rwlock_unlock(&r->map);
		return REVOKE_E_STORE;
	}
	if (rd->check != NULL)
		err = crdt_reader_check(s->rd, rd->check, &rd->result);
	else if (rd->sub == NULL) {
		rd->secret = crdt_reader_secret_check(s->rd, s->keyer);
		err = REVOKD_OK;
	} else {
		/* As the agent: anything but a subject entry is none. */
		err = crdt_reader_get(s->rd, rd->sub, &rd->subject);
		rd->has_subject =
		    err == REVOKD_OK && rd->subject.kind == CRDT_KIND_SUB;
		if (err == REVOKD_ENOTFOUND)
			err = REVOKD_OK;
	}
	if (err != REVOKD_OK)
		st = REVOKE_E_STORE;
	else
		st = revoke__staleness(s, &rd->staleness_ms);
	crdt_reader_end(s->rd);
	pthread_rwlock_unlock(&r->map);
	return st;
}

/*
 * The secret must be the one the agent made the store's keys with: under
 * another, every id would derive keys that are not there, and every token
 * would look valid.
 */
static revoke_status
revoke__secret_check(revoke_reader *r, const char *data_dir,
    const char *secret_file)
{
	revoke__read rd = { 0 };
	revoke__slot *s;
	revoke_status st;

	if ((st = revoke__slot_take(r, &s)) != REVOKE_OK)
		return st;
	st = revoke__read_snapshot(r, s, &rd);
	revoke__slot_give(r, s);
	if (st != REVOKE_OK)
		return st;
	switch (rd.secret) {
	case REVOKD_OK:
		return REVOKE_OK;
	case REVOKD_ENOTFOUND:
		revoke__errorf("%s: no agent has recorded its cluster secret "
		               "there yet (start revokd on it once)",
		    data_dir);
		return REVOKE_E_SECRET;
	case REVOKD_EAUTH:
		revoke__errorf("%s is not the cluster secret the store in %s "
		               "was made with",
		    secret_file, data_dir);
		return REVOKE_E_SECRET;
	default:
		revoke__errorf("%s: %s", data_dir, revokd_strerror(rd.secret));
		return REVOKE_E_STORE;
	}
}

/* The key of an id given as (s, len); false when it is absent. */
static bool
revoke__key(crdt_keyer *k, crdt_kind kind, const char *s, size_t len,
    crdt_key *out, revokd_err *err)
{
	size_t n = revoke__id_len(s, len);

	if (n == 0)
		return false;
	if (*err == REVOKD_OK)
		*err = crdt_key_derive(k, kind, s, n, out);
	return true;
}

/* ------------------------------------------------------------------------ */
/* Check and Version                                                        */
/* ------------------------------------------------------------------------ */

revoke_status
revoke_reader_check(revoke_reader *r, const revoke_query *q, revoke_answer *out)
{
	crdt_key jti, sid, sub;
	crdt_check c = { 0 };
	revoke__read rd = { .check = &c };
	revokd_err err = REVOKD_OK;
	revoke__slot *s;
	revoke_status st;

	if (r == NULL || q == NULL || out == NULL)
		return REVOKE_E_INVALID;
	if ((st = revoke__query_valid(q)) != REVOKE_OK)
		return st;
	if ((st = revoke__slot_take(r, &s)) != REVOKE_OK)
		return st;
	if (revoke__key(s->keyer, CRDT_KIND_JTI, q->jti, q->jti_len, &jti,
	        &err))
		c.jti = &jti;
	if (revoke__key(s->keyer, CRDT_KIND_SID, q->sid, q->sid_len, &sid,
	        &err))
		c.sid = &sid;
	if (revoke__key(s->keyer, CRDT_KIND_SUB, q->sub, q->sub_len, &sub,
	        &err))
		c.sub = &sub;
	c.has_ver = q->has_ver;
	c.ver = q->ver;
	c.has_iat = q->has_iat;
	c.iat = q->iat;
	st = err != REVOKD_OK ? REVOKE_E_NOMEM
	                      : revoke__read_snapshot(r, s, &rd);
	revoke__slot_give(r, s);
	if (st != REVOKE_OK)
		return st;
	out->verdict = (revoke_verdict)rd.result.verdict;
	out->version = rd.result.version;
	out->staleness_ms = rd.staleness_ms;
	return REVOKE_OK;
}

revoke_status
revoke_reader_version(revoke_reader *r, const char *sub, size_t sub_len,
    uint64_t *version, uint64_t *not_before_ms, uint64_t *staleness_ms)
{
	size_t n = revoke__id_len(sub, sub_len);
	revoke__read rd = { 0 };
	crdt_key key;
	revoke__slot *s;
	revoke_status st;

	if (r == NULL || n == 0 || n > REVOKE__ID_MAX)
		return REVOKE_E_INVALID;
	if ((st = revoke__slot_take(r, &s)) != REVOKE_OK)
		return st;
	rd.sub = &key;
	if (crdt_key_derive(s->keyer, CRDT_KIND_SUB, sub, n, &key) != REVOKD_OK)
		st = REVOKE_E_NOMEM;
	else
		st = revoke__read_snapshot(r, s, &rd);
	revoke__slot_give(r, s);
	if (st != REVOKE_OK)
		return st;
	if (version)
		*version = rd.has_subject
		               ? crdt_subject_version(&rd.subject.u.subject)
		               : 0;
	if (not_before_ms)
		*not_before_ms =
		    rd.has_subject ? rd.subject.u.subject.not_before_ms : 0;
	if (staleness_ms)
		*staleness_ms = rd.staleness_ms;
	return REVOKE_OK;
}
