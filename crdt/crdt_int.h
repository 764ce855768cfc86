/*
 * crdt_int.h: internals shared by the store and its readers.
 */
#ifndef CRDT_INT_H
#define CRDT_INT_H

#include <lmdb.h>

#include "crdt/crdt.h"

/* Entries a prune step examines between deletions (bounds its memory). */
#define CRDT__PRUNE_CHUNK 4096

/* Layout version of the store, kept under meta "crdt.schema". */
#define CRDT__SCHEMA 1

/*
 * Theory of the bucket summaries. bucket[] holds the summary of every bucket
 * as of the last committed write transaction (whose LMDB id is last_txnid).
 * A write transaction never touches bucket[] directly: the first change to a
 * bucket copies it to working[] and lists it in dirty[]; at the end the dirty
 * buckets are written to the "buckets" database in the same transaction, and
 * only once the commit has succeeded are they copied back to bucket[]. An
 * aborted transaction just forgets working[]. So bucket[] always equals what
 * is on disk, and a reader whose snapshot is last_txnid may combine bucket[]
 * with its own scans.
 */
struct crdt_store {
	MDB_env *env;
	MDB_dbi entries; /* key -> canonical value */
	MDB_dbi buckets; /* be16 bucket -> count, fp_lo, fp_hi (u64 LE) */
	MDB_dbi meta;    /* name -> bytes */
	bool read_only;
	int lock_fd;
	int64_t prune_leeway;

	/* Writer only. */
	crdt_summary *bucket;  /* committed summaries, CRDT_BUCKETS */
	crdt_summary *working; /* this transaction's copies */
	uint32_t *dirty;       /* buckets in working[], n_dirty of them */
	size_t n_dirty;
	uint8_t *is_dirty;   /* one byte per bucket */
	uint64_t count;      /* entries as of the last commit */
	size_t last_txnid;   /* id of the last committed snapshot */
	crdt_key prune_next; /* where the prune sweep resumes */
	bool meta_async;     /* MDB_NOMETASYNC is set now */
	bool unsynced;       /* a REPLICA commit is not yet durable */
	bool no_sync;        /* opened with no_sync: nothing to sync */
	crdt_key *prune_buf; /* CRDT__PRUNE_CHUNK keys to delete */
};

/* Length of a full HMAC-SHA-256. */
#define CRDT__MAC_LEN 32

/* Metadata name and length of the secret's fingerprint. */
#define CRDT__META_SECRET "crdt.secret"
#define CRDT__SECRET_FP_LEN 16

/* The fingerprint of k's secret. */
revokd_err crdt__secret_fingerprint(crdt_keyer *k,
    uint8_t out[CRDT__SECRET_FP_LEN]);

/* A keyer for a key of any length (RFC 4231's test keys are not 32 bytes). */
revokd_err crdt__keyer_new_any(const uint8_t *secret, size_t len,
    crdt_keyer **out);

/* HMAC-SHA-256 of a || b with the keyer's key, all 32 bytes. */
revokd_err crdt__keyer_mac(crdt_keyer *k, const void *a, size_t a_len,
    const void *b, size_t b_len, uint8_t out[CRDT__MAC_LEN]);

/* An LMDB (or errno) return code as a revokd_err. */
revokd_err crdt__mdb_err(int rc);

/* The one-entry summary of key and an encoded value. */
void crdt__value_summary(const crdt_key *key, const uint8_t *value, size_t len,
    crdt_summary *out);

#endif /* CRDT_INT_H */
