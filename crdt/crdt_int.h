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

/* Length of the filter of present keys' id. */
#define CRDT__FILTER_ID_LEN 16

/* The filter of present keys as this process maps it (filter.c). */
typedef struct crdt__filter {
	int fd;       /* -1: no filter; lookups use the B-tree */
	uint8_t *map; /* header page, then 2^log2_blocks blocks */
	size_t map_len;
	uint32_t log2_blocks; /* blocks mapped */
	bool has_blocks;      /* false while only the header is mapped */
	bool writable;        /* the writer's */
	bool building;        /* writer: a rebuild's sweep is under way */
	crdt_key next;        /* writer: where the sweep resumes */
	uint64_t data_dev;    /* the data.mdb this store opened */
	uint64_t data_ino;
} crdt__filter;

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

	crdt__filter filter; /* of present keys; writer and readers */
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

/*
 * Open the store's filter of present keys (after its databases): a writer
 * creates, checks or starts rebuilding it; a reader maps it when it has a
 * well-formed one and otherwise does without.
 */
revokd_err crdt__filter_open(crdt_store *s, const char *dir);

/* Unmap the filter; the writer first syncs it and marks it clean. */
void crdt__filter_close(crdt_store *s);

/* Writer: key is about to be inserted (before the commit). */
void crdt__filter_add(crdt_store *s, const crdt_key *key);

/*
 * Writer, after a commit that wrote written keys: start a rebuild when the
 * filter is outgrown, or carry one forward. A failure here leaves the
 * filter not ready (lookups use the B-tree) and is retried by later writes
 * and steps: the commit stands either way.
 */
void crdt__filter_after_write(crdt_store *s, size_t written);

/*
 * Whether readers of snapshot txn may consult the filter (*usable), and the
 * sequence number to probe it with. REVOKD_EMAPRESIZED when the writer
 * rebuilt it larger: crdt_store_remap adopts it.
 */
revokd_err crdt__filter_usable(const crdt_store *s, MDB_txn *txn, uint64_t *seq,
    bool *usable);

/* True when key is surely not in the store (the filter lacks it). */
bool crdt__filter_absent(const crdt_store *s, const crdt_key *key,
    uint64_t seq);

/* The filter's sequence number now (0 without a filter). */
uint64_t crdt__filter_seq(const crdt_store *s);

/* A reader: map the filter again at the size the writer rebuilt it to. */
revokd_err crdt__filter_remap(crdt_store *s);

#endif /* CRDT_INT_H */
