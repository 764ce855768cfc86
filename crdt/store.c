/*
 * store.c: the LMDB replica store: open, apply, prune, metadata.
 */
#include "crdt/crdt_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define CRDT__DEFAULT_MAP_SIZE ((size_t)8 << 30)
#define CRDT__DEFAULT_READERS 1022
#define CRDT__DEFAULT_LEEWAY 300
#define CRDT__BUCKET_VAL_LEN 24
#define CRDT__FILE_MODE 0660

/* Modes of data.mdb and lock.mdb, set by the writer. */
#define CRDT__DATA_MODE 0640
#define CRDT__LOCK_MODE 0660
#define CRDT__LOCK_NAME "revokd.lock"

/* Free bytes below which a failed write is taken for a full disk. */
#define CRDT__FULL_SLACK ((uint64_t)1 << 20)

revokd_err
crdt__mdb_err(int rc)
{
	switch (rc) {
	case MDB_SUCCESS:
		return REVOKD_OK;
	case MDB_NOTFOUND:
		return REVOKD_ENOTFOUND;
	case MDB_MAP_FULL:
		return REVOKD_EMAPFULL;
	case MDB_MAP_RESIZED:
		return REVOKD_EMAPRESIZED;
	case MDB_READERS_FULL:
		return REVOKD_EREADERS;
	case MDB_TXN_FULL:
		return REVOKD_ETOOBIG;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
	case MDB_BAD_VALSIZE:
		return REVOKD_ECORRUPT;
	default:
		return rc > 0 ? revokd_err_from_errno(rc) : REVOKD_EIO;
	}
}

/* ------------------------------------------------------------------------ */
/* Small encodings                                                          */
/* ------------------------------------------------------------------------ */

static void
crdt__bucket_encode(const crdt_summary *sum, uint8_t *out)
{
	memcpy(out, &sum->count, 8);
	memcpy(out + 8, &sum->fp_lo, 8);
	memcpy(out + 16, &sum->fp_hi, 8);
}

static void
crdt__bucket_decode(const uint8_t *p, crdt_summary *sum)
{
	memcpy(&sum->count, p, 8);
	memcpy(&sum->fp_lo, p + 8, 8);
	memcpy(&sum->fp_hi, p + 16, 8);
}

static bool
crdt__expired(const crdt_store *s, int64_t exp, int64_t now)
{
	/* exp + leeway < now, without overflow for any exp. */
	return exp < now - s->prune_leeway;
}

/* ------------------------------------------------------------------------ */
/* Bucket summaries inside a write transaction                              */
/* ------------------------------------------------------------------------ */

static crdt_summary *
crdt__working(crdt_store *s, const crdt_key *key)
{
	uint32_t b = crdt_key_bucket(key);

	if (!s->is_dirty[b]) {
		s->is_dirty[b] = 1;
		s->working[b] = s->bucket[b];
		s->dirty[s->n_dirty++] = b;
	}
	return &s->working[b];
}

static revokd_err
crdt__buckets_write(crdt_store *s, MDB_txn *txn)
{
	static const crdt_summary zero;

	for (size_t i = 0; i < s->n_dirty; i++) {
		uint32_t b = s->dirty[i];
		uint8_t kb[2] = { (uint8_t)(b >> 8), (uint8_t)b };
		uint8_t vb[CRDT__BUCKET_VAL_LEN];
		MDB_val k = { sizeof(kb), kb }, v = { sizeof(vb), vb };
		int rc;

		if (crdt_summary_equal(&s->working[b], &zero)) {
			rc = mdb_del(txn, s->buckets, &k, NULL);
			if (rc == MDB_NOTFOUND)
				rc = 0;
		} else {
			crdt__bucket_encode(&s->working[b], vb);
			rc = mdb_put(txn, s->buckets, &k, &v, 0);
		}
		if (rc != 0)
			return crdt__mdb_err(rc);
	}
	return REVOKD_OK;
}

/* Forget the transaction's bucket copies; publish them first if committed. */
static void
crdt__buckets_end(crdt_store *s, bool committed)
{
	for (size_t i = 0; i < s->n_dirty; i++) {
		uint32_t b = s->dirty[i];

		if (committed) {
			s->count += s->working[b].count - s->bucket[b].count;
			s->bucket[b] = s->working[b];
		}
		s->is_dirty[b] = 0;
	}
	s->n_dirty = 0;
}

/*
 * The id of the newest committed snapshot. Not mdb_txn_id of the last write
 * transaction: a commit that changed nothing writes no meta page, and the
 * snapshot id then stays where it was.
 */
static size_t
crdt__last_txnid(crdt_store *s)
{
	MDB_envinfo info;

	mdb_env_info(s->env, &info);
	return info.me_last_txnid;
}

/*
 * The error of a failed commit. LMDB reports a write cut short by a full
 * disk as EIO ("short write, filesystem full?"); when the data file's
 * filesystem has (almost) no room left, say so, not "input/output error".
 */
static revokd_err
crdt__commit_err(crdt_store *s, int rc)
{
	struct statvfs fs;
	int fd;

	if (rc == EIO && mdb_env_get_fd(s->env, &fd) == 0 &&
	    fstatvfs(fd, &fs) == 0 &&
	    (uint64_t)fs.f_bavail * fs.f_frsize < CRDT__FULL_SLACK)
		return REVOKD_ENOSPACE;
	return crdt__mdb_err(rc);
}

/*
 * Pages of the map held back from new entries: deleting takes pages too
 * (copy on write), so a store that let writes fill its map to the brim
 * could not prune itself back. A 64th of the map, from 32 to 4,096 pages.
 */
static size_t
crdt__reserve_pages(size_t map_pages)
{
	size_t r = map_pages / 64;

	return r < 32 ? 32 : r > 4096 ? 4096 : r;
}

/*
 * Whether new entries may take pages: REVOKD_EMAPFULL when fewer than the
 * reserve are left, counting the pages never used and, when those are
 * short, the free list (an upper bound: old readers may still hold some).
 */
static revokd_err
crdt__room_for_entries(crdt_store *s)
{
	MDB_envinfo info;
	MDB_stat st;
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t pages, reserve, free_pages;
	int rc;

	if ((rc = mdb_env_info(s->env, &info)) != 0 ||
	    (rc = mdb_env_stat(s->env, &st)) != 0)
		return crdt__mdb_err(rc);
	pages = info.me_mapsize / st.ms_psize;
	reserve = crdt__reserve_pages(pages);
	free_pages =
	    pages > info.me_last_pgno + 1 ? pages - info.me_last_pgno - 1 : 0;
	if (free_pages >= reserve)
		return REVOKD_OK;
	/* The free list (database 0) opens in a read-only transaction only. */
	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
		return crdt__mdb_err(rc);
	if ((rc = mdb_cursor_open(txn, 0, &cur)) == 0) {
		while (free_pages < reserve &&
		       (rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == 0) {
			size_t n; /* an MDB_IDL: its count, then page numbers */

			if (v.mv_size < sizeof(n))
				continue;
			memcpy(&n, v.mv_data, sizeof(n));
			free_pages += n;
		}
		mdb_cursor_close(cur);
	}
	mdb_txn_abort(txn);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return crdt__mdb_err(rc);
	return free_pages >= reserve ? REVOKD_OK : REVOKD_EMAPFULL;
}

/* Commit txn (writing the dirty buckets), or abort it when err is set. */
static revokd_err
crdt__commit(crdt_store *s, MDB_txn *txn, revokd_err err)
{
	size_t id;
	int rc;

	if (err == REVOKD_OK)
		err = crdt__buckets_write(s, txn);
	if (err != REVOKD_OK) {
		mdb_txn_abort(txn);
		crdt__buckets_end(s, false);
		return err;
	}
	/* The filter's bits for this txn's keys are seen before its commit. */
	atomic_thread_fence(memory_order_release);
	if ((rc = mdb_txn_commit(txn)) != 0) {
		crdt__buckets_end(s, false);
		return crdt__commit_err(s, rc);
	}
	crdt__buckets_end(s, true);
	id = crdt__last_txnid(s);
	/*
	 * A commit that wrote (the snapshot moved) leaves its meta page
	 * unsynced when meta-async; a fully synced one flushes it and every
	 * earlier one (same file).
	 */
	if (id != s->last_txnid)
		s->unsynced = s->meta_async;
	s->last_txnid = id;
	return REVOKD_OK;
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                           */
/* ------------------------------------------------------------------------ */

static revokd_err
crdt__lock_dir(crdt_store *s, const char *dir)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/%s", dir, CRDT__LOCK_NAME) >=
	    (int)sizeof(path))
		return REVOKD_EINVAL;
	s->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (s->lock_fd < 0)
		return revokd_err_from_errno(errno);
	if (flock(s->lock_fd, LOCK_EX | LOCK_NB) != 0)
		return errno == EWOULDBLOCK ? REVOKD_ELOCKED
		                            : revokd_err_from_errno(errno);
	return REVOKD_OK;
}

static revokd_err
crdt__load_buckets(crdt_store *s, MDB_txn *txn)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc;

	if ((rc = mdb_cursor_open(txn, s->buckets, &cur)) != 0)
		return crdt__mdb_err(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const uint8_t *kb = k.mv_data;
		uint32_t b;

		if (k.mv_size != 2 || v.mv_size != CRDT__BUCKET_VAL_LEN)
			break;
		b = (uint32_t)kb[0] << 8 | kb[1];
		if (b >= CRDT_BUCKETS)
			break;
		crdt__bucket_decode(v.mv_data, &s->bucket[b]);
		s->count += s->bucket[b].count;
	}
	mdb_cursor_close(cur);
	return rc == MDB_NOTFOUND ? REVOKD_OK : REVOKD_ECORRUPT;
}

/* Check (or, in a new store, write) the schema version. */
static revokd_err
crdt__check_schema(crdt_store *s, MDB_txn *txn)
{
	uint32_t want = CRDT__SCHEMA;
	MDB_val k = { sizeof("crdt.schema") - 1, (void *)"crdt.schema" };
	MDB_val v;
	int rc = mdb_get(txn, s->meta, &k, &v);

	if (rc == MDB_NOTFOUND && !s->read_only) {
		v.mv_size = sizeof(want);
		v.mv_data = &want;
		return crdt__mdb_err(mdb_put(txn, s->meta, &k, &v, 0));
	}
	if (rc != 0)
		return rc == MDB_NOTFOUND ? REVOKD_ESCHEMA : crdt__mdb_err(rc);
	if (v.mv_size != sizeof(want) || memcmp(v.mv_data, &want, 4) != 0)
		return REVOKD_ESCHEMA;
	return REVOKD_OK;
}

static revokd_err
crdt__open_dbis(crdt_store *s)
{
	unsigned create = s->read_only ? 0 : MDB_CREATE;
	MDB_txn *txn;
	int rc;
	revokd_err err;

	rc = mdb_txn_begin(s->env, NULL, s->read_only ? MDB_RDONLY : 0, &txn);
	if (rc != 0)
		return crdt__mdb_err(rc);
	if ((rc = mdb_dbi_open(txn, "entries", create, &s->entries)) != 0 ||
	    (rc = mdb_dbi_open(txn, "buckets", create, &s->buckets)) != 0 ||
	    (rc = mdb_dbi_open(txn, "meta", create, &s->meta)) != 0) {
		mdb_txn_abort(txn);
		return rc == MDB_NOTFOUND ? REVOKD_ENOTFOUND
		                          : crdt__mdb_err(rc);
	}
	err = crdt__check_schema(s, txn);
	if (err == REVOKD_OK && !s->read_only)
		err = crdt__load_buckets(s, txn);
	if (err != REVOKD_OK) {
		mdb_txn_abort(txn);
		return err;
	}
	/* Commit even when read-only: DBIs opened in a txn live past it. */
	if ((rc = mdb_txn_commit(txn)) != 0)
		return crdt__mdb_err(rc);
	s->last_txnid = crdt__last_txnid(s);
	return REVOKD_OK;
}

static revokd_err
crdt__alloc_buckets(crdt_store *s)
{
	s->bucket = calloc(CRDT_BUCKETS, sizeof(*s->bucket));
	s->working = calloc(CRDT_BUCKETS, sizeof(*s->working));
	s->dirty = calloc(CRDT_BUCKETS, sizeof(*s->dirty));
	s->is_dirty = calloc(CRDT_BUCKETS, 1);
	s->prune_buf = calloc(CRDT__PRUNE_CHUNK, sizeof(*s->prune_buf));
	if (!s->bucket || !s->working || !s->dirty || !s->is_dirty ||
	    !s->prune_buf)
		return REVOKD_ENOMEM;
	return REVOKD_OK;
}

/*
 * The writer sets the files' modes whatever its umask: direct readers in
 * the data dir's group read data.mdb and take reader slots in lock.mdb,
 * which they must be able to write.
 */
static revokd_err
crdt__set_modes(MDB_env *env, const char *dir)
{
	char lock[PATH_MAX];
	int fd, rc;

	if ((rc = mdb_env_get_fd(env, &fd)) != 0)
		return crdt__mdb_err(rc);
	if (snprintf(lock, sizeof(lock), "%s/lock.mdb", dir) >=
	    (int)sizeof(lock))
		return REVOKD_EINVAL;
	if (fchmod(fd, CRDT__DATA_MODE) != 0 ||
	    chmod(lock, CRDT__LOCK_MODE) != 0)
		return revokd_err_from_errno(errno);
	return REVOKD_OK;
}

static revokd_err
crdt__open_env(crdt_store *s, const char *dir, const crdt_store_options *o)
{
	unsigned flags = MDB_NOTLS | MDB_NORDAHEAD;
	revokd_err err;
	int rc, dead;

	if (s->read_only)
		flags |= MDB_RDONLY;
	if (o->no_sync)
		flags |= MDB_NOSYNC;
	if ((rc = mdb_env_create(&s->env)) != 0)
		return crdt__mdb_err(rc);
	if ((rc = mdb_env_set_maxdbs(s->env, 3)) != 0 ||
	    (rc = mdb_env_set_maxreaders(s->env,
	         o->max_readers ? o->max_readers : CRDT__DEFAULT_READERS)) != 0)
		return crdt__mdb_err(rc);
	if (!s->read_only &&
	    (rc = mdb_env_set_mapsize(s->env,
	         o->map_size ? o->map_size : CRDT__DEFAULT_MAP_SIZE)) != 0)
		return crdt__mdb_err(rc);
	if ((rc = mdb_env_open(s->env, dir, flags, CRDT__FILE_MODE)) != 0)
		return rc == ENOENT ? REVOKD_ENOTFOUND : crdt__mdb_err(rc);
	if (!s->read_only && (err = crdt__set_modes(s->env, dir)) != REVOKD_OK)
		return err;
	/* Free the slots of readers that died holding a snapshot. */
	if ((rc = mdb_reader_check(s->env, &dead)) != 0)
		return crdt__mdb_err(rc);
	return REVOKD_OK;
}

revokd_err
crdt_store_open(const char *dir, const crdt_store_options *opt,
    crdt_store **out)
{
	static const crdt_store_options defaults;
	const crdt_store_options *o = opt ? opt : &defaults;
	crdt_store *s;
	revokd_err err;

	if ((s = calloc(1, sizeof(*s))) == NULL)
		return REVOKD_ENOMEM;
	s->lock_fd = -1;
	s->filter.fd = -1;
	s->read_only = o->read_only;
	s->no_sync = o->no_sync;
	s->prune_leeway =
	    o->prune_leeway ? o->prune_leeway : CRDT__DEFAULT_LEEWAY;
	if ((!s->read_only &&
	        ((err = crdt__lock_dir(s, dir)) != REVOKD_OK ||
	            (err = crdt__alloc_buckets(s)) != REVOKD_OK)) ||
	    (err = crdt__open_env(s, dir, o)) != REVOKD_OK ||
	    (err = crdt__open_dbis(s)) != REVOKD_OK ||
	    (err = crdt__filter_open(s, dir)) != REVOKD_OK) {
		crdt_store_close(s);
		return err;
	}
	*out = s;
	return REVOKD_OK;
}

void
crdt_store_close(crdt_store *s)
{
	if (s == NULL)
		return;
	crdt__filter_close(s);
	if (s->env != NULL)
		mdb_env_close(s->env);
	if (s->lock_fd >= 0)
		close(s->lock_fd); /* releases the flock */
	free(s->bucket);
	free(s->working);
	free(s->dirty);
	free(s->is_dirty);
	free(s->prune_buf);
	free(s);
}

uint64_t
crdt_store_count(const crdt_store *s)
{
	return s->count;
}

void
crdt_store_buckets_sum(const crdt_store *s, uint32_t first, uint32_t last,
    crdt_summary *out)
{
	memset(out, 0, sizeof(*out));
	if (s->bucket == NULL)
		return;
	for (uint32_t b = first; b < last && b < CRDT_BUCKETS; b++)
		crdt_summary_add(out, &s->bucket[b]);
}

/* ------------------------------------------------------------------------ */
/* Apply                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Merge one incoming entry in txn. *merged is the resulting state; *changed
 * and *added say what happened.
 */
static revokd_err
crdt__apply_one(crdt_store *s, MDB_txn *txn, const crdt_entry *in,
    crdt_entry *merged, bool *changed, bool *added)
{
	MDB_val k = { CRDT_KEY_LEN, (void *)in->key.b }, v;
	uint8_t buf[CRDT_VALUE_MAX];
	crdt_summary old_sum, new_sum;
	bool existed;
	revokd_err err;
	int rc;

	rc = mdb_get(txn, s->entries, &k, &v);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return crdt__mdb_err(rc);
	existed = rc == 0;
	memset(merged, 0, sizeof(*merged));
	merged->key = in->key;
	merged->kind = in->kind;
	if (existed) {
		if ((err = crdt_value_decode(v.mv_data, v.mv_size, merged)))
			return err;
		crdt__value_summary(&in->key, v.mv_data, v.mv_size, &old_sum);
	}
	if ((err = crdt_entry_merge(merged, in, changed)) != REVOKD_OK)
		return err;
	*added = *changed && !existed;
	if (!*changed)
		return REVOKD_OK;

	v.mv_size = crdt_value_encode(merged, buf);
	v.mv_data = buf;
	if (!existed)
		crdt__filter_add(s, &in->key); /* before the commit */
	if ((rc = mdb_put(txn, s->entries, &k, &v, 0)) != 0)
		return crdt__mdb_err(rc);
	crdt__value_summary(&in->key, buf, v.mv_size, &new_sum);
	if (existed)
		crdt_summary_sub(crdt__working(s, &in->key), &old_sum);
	crdt_summary_add(crdt__working(s, &in->key), &new_sum);
	return REVOKD_OK;
}

/* Set the meta-page sync mode for the next commits. */
static revokd_err
crdt__durability(crdt_store *s, crdt_durability d)
{
	bool want = d == CRDT_REPLICA;
	int rc;

	if (s->no_sync || s->meta_async == want)
		return REVOKD_OK;
	if ((rc = mdb_env_set_flags(s->env, MDB_NOMETASYNC, want)) != 0)
		return crdt__mdb_err(rc);
	s->meta_async = want;
	return REVOKD_OK;
}

revokd_err
crdt_store_reader_check(crdt_store *s, int *cleared)
{
	int dead = 0, rc = mdb_reader_check(s->env, &dead);

	if (rc != 0)
		return crdt__mdb_err(rc);
	*cleared = dead;
	return REVOKD_OK;
}

revokd_err
crdt_store_sync(crdt_store *s)
{
	int rc;

	if (s->read_only || s->no_sync || !s->unsynced)
		return REVOKD_OK;
	if ((rc = mdb_env_sync(s->env, 1)) != 0)
		return crdt__mdb_err(rc);
	s->unsynced = false;
	return REVOKD_OK;
}

revokd_err
crdt_store_apply(crdt_store *s, const crdt_entry *in, size_t n, int64_t now,
    crdt_entry *changed, crdt_apply_stats *stats)
{
	return crdt_store_apply_as(s, CRDT_DURABLE, in, n, now, changed, stats);
}

revokd_err
crdt_store_apply_as(crdt_store *s, crdt_durability d, const crdt_entry *in,
    size_t n, int64_t now, crdt_entry *changed, crdt_apply_stats *stats)
{
	crdt_apply_stats st = { 0 };
	crdt_entry merged;
	revokd_err err = REVOKD_OK;
	MDB_txn *txn;
	int rc;

	if (s->read_only)
		return REVOKD_EPERM;
	if ((err = crdt__durability(s, d)) != REVOKD_OK ||
	    (err = crdt__room_for_entries(s)) != REVOKD_OK)
		return err;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return crdt__mdb_err(rc);
	for (size_t i = 0; i < n && err == REVOKD_OK; i++) {
		bool did_change = false, added = false;

		if (!crdt_kind_valid(in[i].kind)) {
			err = REVOKD_EINVAL;
			break;
		}
		if (crdt_kind_is_token(in[i].kind) &&
		    crdt__expired(s, in[i].u.token.exp, now)) {
			st.expired++;
			continue;
		}
		err = crdt__apply_one(s, txn, &in[i], &merged, &did_change,
		    &added);
		if (err != REVOKD_OK)
			break;
		if (!did_change) {
			st.same++;
			continue;
		}
		if (changed != NULL)
			changed[st.changed] = merged;
		st.changed++;
		st.added += added;
	}
	if ((err = crdt__commit(s, txn, err)) != REVOKD_OK)
		return err;
	if (stats != NULL)
		*stats = st;
	crdt__filter_after_write(s, st.added);
	return REVOKD_OK;
}

/* ------------------------------------------------------------------------ */
/* Prune                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Pruning sweeps the entries in key order, a chunk per call, resuming where
 * the last call stopped. There is no expiry index: with expiries spread at
 * random, an index sorted by exp costs a second random page write for every
 * new entry, doubling the I/O of every batch, while the sweep costs only
 * reads, which the page cache serves.
 */

/*
 * Examine up to max entries from s->prune_next and list the expired token
 * entries among them in doomed[] (room for max). *seen is how many were
 * examined; *at_end is true when the sweep reached the last key, and the
 * next sweep then starts over.
 */
static revokd_err
crdt__prune_collect(crdt_store *s, MDB_txn *txn, int64_t now, size_t max,
    crdt_key *doomed, size_t *n_doomed, size_t *seen, bool *at_end)
{
	MDB_cursor *cur;
	MDB_val k = { CRDT_KEY_LEN, s->prune_next.b }, v;
	int rc;

	*n_doomed = *seen = 0;
	if ((rc = mdb_cursor_open(txn, s->entries, &cur)) != 0)
		return crdt__mdb_err(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && *seen < max;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), (*seen)++) {
		crdt_entry e;

		if (k.mv_size != CRDT_KEY_LEN ||
		    crdt_value_decode(v.mv_data, v.mv_size, &e) != REVOKD_OK) {
			mdb_cursor_close(cur);
			return REVOKD_ECORRUPT;
		}
		if (crdt_kind_is_token(e.kind) &&
		    crdt__expired(s, e.u.token.exp, now))
			memcpy(doomed[(*n_doomed)++].b, k.mv_data,
			    CRDT_KEY_LEN);
	}
	*at_end = rc != 0;
	if (rc == 0)
		memcpy(s->prune_next.b, k.mv_data, CRDT_KEY_LEN);
	else
		memset(s->prune_next.b, 0, CRDT_KEY_LEN);
	mdb_cursor_close(cur);
	return rc == 0 || rc == MDB_NOTFOUND ? REVOKD_OK : crdt__mdb_err(rc);
}

static revokd_err
crdt__prune_delete(crdt_store *s, MDB_txn *txn, const crdt_key *key)
{
	MDB_val k = { CRDT_KEY_LEN, (void *)key->b }, v;
	crdt_summary sum;
	int rc;

	if ((rc = mdb_get(txn, s->entries, &k, &v)) != 0)
		return crdt__mdb_err(rc);
	crdt__value_summary(key, v.mv_data, v.mv_size, &sum);
	crdt_summary_sub(crdt__working(s, key), &sum);
	return crdt__mdb_err(mdb_del(txn, s->entries, &k, NULL));
}

revokd_err
crdt_store_prune(crdt_store *s, int64_t now, size_t max, size_t *pruned,
    bool *more)
{
	crdt_key resume = s->prune_next;
	size_t total = 0, left = max;
	bool at_end = false;
	MDB_txn *txn;
	revokd_err err = REVOKD_OK;
	int rc;

	if (s->read_only)
		return REVOKD_EPERM;
	if (max == 0)
		return REVOKD_EINVAL;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return crdt__mdb_err(rc);
	/* Collect and delete in chunks so memory stays bounded for any max. */
	while (err == REVOKD_OK && left > 0 && !at_end) {
		size_t n = 0, seen = 0;
		size_t chunk =
		    left < CRDT__PRUNE_CHUNK ? left : CRDT__PRUNE_CHUNK;

		err = crdt__prune_collect(s, txn, now, chunk, s->prune_buf, &n,
		    &seen, &at_end);
		for (size_t i = 0; i < n && err == REVOKD_OK; i++)
			err = crdt__prune_delete(s, txn, &s->prune_buf[i]);
		total += n;
		left -= seen;
	}
	if ((err = crdt__commit(s, txn, err)) != REVOKD_OK) {
		s->prune_next = resume; /* nothing happened: redo this step */
		return err;
	}
	*pruned = total;
	*more = !at_end;
	crdt__filter_after_write(s, 0);
	return REVOKD_OK;
}

/* ------------------------------------------------------------------------ */
/* Metadata                                                                 */
/* ------------------------------------------------------------------------ */

revokd_err
crdt_store_meta_put(crdt_store *s, const char *name, const void *value,
    size_t len)
{
	MDB_val k = { strlen(name), (void *)name }, v = { len, (void *)value };
	MDB_txn *txn;
	revokd_err err;
	int rc;

	if (s->read_only)
		return REVOKD_EPERM;
	if (k.mv_size == 0 || k.mv_size > 255 || len > CRDT_META_MAX)
		return REVOKD_EINVAL;
	/* Metadata is rewritten often and rebuilt after a loss: no meta sync.
	 */
	if ((err = crdt__durability(s, CRDT_REPLICA)) != REVOKD_OK)
		return err;
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return crdt__mdb_err(rc);
	rc = mdb_put(txn, s->meta, &k, &v, 0);
	return crdt__commit(s, txn, crdt__mdb_err(rc));
}

revokd_err
crdt_store_bind_secret(crdt_store *s, crdt_keyer *k)
{
	uint8_t fp[CRDT__SECRET_FP_LEN];
	crdt_reader *r;
	revokd_err err;

	if ((err = crdt__secret_fingerprint(k, fp)) != REVOKD_OK ||
	    (err = crdt_reader_new(s, &r)) != REVOKD_OK)
		return err;
	if ((err = crdt_reader_begin(r)) == REVOKD_OK)
		err = crdt_reader_secret_check(r, k);
	crdt_reader_free(r);
	if (err != REVOKD_ENOTFOUND)
		return err;
	return crdt_store_meta_put(s, CRDT__META_SECRET, fp, sizeof(fp));
}
