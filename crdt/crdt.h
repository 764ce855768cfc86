/*
 * crdt.h: revokd's replicated state. Pseudonymous keys, the hybrid logical
 * clock, the two lattices (token entries and subject entries), and the LMDB
 * replica store with its range fingerprints.
 *
 * No sockets, no threads, no clock: time comes in as arguments.
 *
 * Theory of the state. Every entry is addressed by a 16-byte key, the first
 * 16 bytes of HMAC-SHA-256(cluster secret, kind byte || id), so no identifier
 * is ever stored or replicated in the clear. An entry's value is a join
 * semilattice: merging is commutative, associative and idempotent, so any two
 * replicas that have seen the same set of entries, in any order and with any
 * duplicates, hold identical state. A merge says whether the state changed;
 * only changes are relayed.
 *
 *   Token entries (jti, sid): exp = max; revoked_at, restored_at = max each;
 *   revoked iff revoked_at != 0 and revoked_at >= restored_at (revoke wins a
 *   tie); (origin, reason) ride with revoked_at, the larger (revoked_at,
 *   origin, reason) triple winning. Pruned locally once exp + leeway < now.
 *
 *   Subject entries (sub, client, tenant): version is a G-counter (one count
 *   per writer region, value = sum, merge = pointwise max); not_before_ms =
 *   max. Never pruned.
 */
#ifndef CRDT_H
#define CRDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/revokd.h"

/* ------------------------------------------------------------------------ */
/* Keys                                                                     */
/* ------------------------------------------------------------------------ */

/* Length of a pseudonymous key, in bytes. */
#define CRDT_KEY_LEN 16

/* Length of the cluster secret, in bytes. */
#define CRDT_SECRET_LEN 32

/* A pseudonymous key. Keys sort as byte strings (memcmp order). */
typedef struct crdt_key {
	uint8_t b[CRDT_KEY_LEN];
} crdt_key;

/*
 * What a key names. The value is the kind byte hashed into the key and stored
 * with the entry, so it is part of the wire and store formats: never renumber.
 */
typedef enum crdt_kind {
	CRDT_KIND_JTI = 1,    /* a token, by its jti claim */
	CRDT_KIND_SID = 2,    /* a session, by its sid claim */
	CRDT_KIND_SUB = 3,    /* a user, by its sub claim */
	CRDT_KIND_CLIENT = 4, /* an OAuth client, by its client_id */
	CRDT_KIND_TENANT = 5, /* a tenant */
} crdt_kind;

/* True when kind is one of crdt_kind. */
bool crdt_kind_valid(int kind);

/* True for kinds holding a token entry (jti, sid); false for subjects. */
bool crdt_kind_is_token(crdt_kind kind);

/* The kind's lower-case name ("jti"), or "?" when kind is not valid. */
const char *crdt_kind_name(crdt_kind kind);

/* The kind named name ("jti", "sid", ...), or 0 when there is none. */
crdt_kind crdt_kind_from_name(const char *name);

/* memcmp order of two keys: <0, 0 or >0. */
int crdt_key_cmp(const crdt_key *a, const crdt_key *b);

/*
 * Derives keys from the cluster secret. It keeps a keyed HMAC context, so a
 * derivation costs two SHA-256 compressions and no allocation. A keyer is not
 * thread-safe: give each thread its own.
 */
typedef struct crdt_keyer crdt_keyer;

/* A keyer for secret, which must be CRDT_SECRET_LEN bytes. */
revokd_err crdt_keyer_new(const uint8_t *secret, size_t len, crdt_keyer **out);

/* Free a keyer and wipe its key. NULL is allowed. */
void crdt_keyer_free(crdt_keyer *k);

/* The key of (kind, id): HMAC-SHA-256(secret, kind byte || id), truncated. */
revokd_err crdt_key_derive(crdt_keyer *k, crdt_kind kind, const void *id,
    size_t id_len, crdt_key *out);

/* ------------------------------------------------------------------------ */
/* Hybrid logical clock                                                     */
/* ------------------------------------------------------------------------ */

/*
 * An HLC timestamp: physical milliseconds since the Unix epoch in the upper
 * 48 bits, a logical counter in the lower 16. Ordered as an integer. Zero
 * means "never".
 */
typedef uint64_t crdt_hlc;

/* Bits of the logical counter. */
#define CRDT_HLC_LOGICAL_BITS 16

/* The physical milliseconds of an HLC timestamp. */
#define CRDT_HLC_MS(h) ((uint64_t)(h) >> CRDT_HLC_LOGICAL_BITS)

/* The logical counter of an HLC timestamp. */
#define CRDT_HLC_LOGICAL(h) ((uint64_t)(h)&0xffffu)

/* The HLC timestamp at physical ms with logical counter 0. */
#define CRDT_HLC_AT(ms) ((crdt_hlc)(ms) << CRDT_HLC_LOGICAL_BITS)

/*
 * A node's clock state: the last timestamp it issued or observed. Every
 * timestamp it issues is strictly greater than every one before, even when
 * the physical clock steps backwards.
 */
typedef struct crdt_clock {
	crdt_hlc last;
} crdt_clock;

/* A fresh timestamp for a local event (a write, or a send) at phys_ms. */
crdt_hlc crdt_clock_tick(crdt_clock *c, uint64_t phys_ms);

/*
 * Observe a timestamp received from another node at local time phys_ms, and
 * return a fresh local timestamp greater than both. A remote timestamp more
 * than max_ahead_ms ahead of phys_ms is not absorbed (a peer with a broken
 * clock must not drag ours into the future): the clock ticks locally and
 * REVOKD_ECLOCK is returned, with *out still written.
 */
revokd_err crdt_clock_recv(crdt_clock *c, uint64_t phys_ms, crdt_hlc remote,
    uint64_t max_ahead_ms, crdt_hlc *out);

/* ------------------------------------------------------------------------ */
/* Lattices                                                                 */
/* ------------------------------------------------------------------------ */

/* The most writer regions one subject's version counter can hold. */
#define CRDT_MAX_WRITERS 64

/* A token entry (kinds jti and sid). */
typedef struct crdt_token {
	int64_t exp;          /* expiry, unix seconds */
	crdt_hlc revoked_at;  /* last revocation, 0 if never */
	crdt_hlc restored_at; /* last restoration, 0 if never */
	uint16_t origin;      /* region id that wrote revoked_at */
	uint8_t reason;       /* reason code given with revoked_at */
} crdt_token;

/* True when the token entry says revoked: revoke wins a tie. */
bool crdt_token_revoked(const crdt_token *t);

/* Join from into into. Returns true when into changed. */
bool crdt_token_merge(crdt_token *into, const crdt_token *from);

/*
 * A subject entry (kinds sub, client, tenant). The counter lists the writer
 * regions in strictly increasing order with non-zero counts; that canonical
 * form is what makes equal states encode, and fingerprint, equally.
 */
typedef struct crdt_subject {
	uint64_t not_before_ms; /* tokens with iat below are revoked */
	uint32_t n;             /* regions in use in the counter */
	uint16_t region[CRDT_MAX_WRITERS]; /* writer region ids, increasing */
	uint64_t count[CRDT_MAX_WRITERS];  /* their counts, non-zero */
} crdt_subject;

/* The version: the sum of the counts. */
uint64_t crdt_subject_version(const crdt_subject *s);

/* Add delta to region's count (a local "revoke all tokens of the user"). */
revokd_err crdt_subject_bump(crdt_subject *s, uint16_t region, uint64_t delta);

/*
 * Join from into into; *changed says whether into changed. Fails with
 * REVOKD_ELIMIT, leaving into untouched, when the union would hold more than
 * CRDT_MAX_WRITERS regions, and REVOKD_EMALFORMED when either is not
 * canonical.
 */
revokd_err crdt_subject_merge(crdt_subject *into, const crdt_subject *from,
    bool *changed);

/* One replicated entry: a key, its kind, and that kind's lattice value. */
typedef struct crdt_entry {
	crdt_key key;
	crdt_kind kind;
	union {
		crdt_token token;     /* when crdt_kind_is_token(kind) */
		crdt_subject subject; /* otherwise */
	} u;
} crdt_entry;

/*
 * Join from into into (same key assumed). REVOKD_EKIND when the kinds differ;
 * otherwise as the lattice's merge.
 */
revokd_err crdt_entry_merge(crdt_entry *into, const crdt_entry *from,
    bool *changed);

/* True when a and b hold the same key, kind and value. */
bool crdt_entry_equal(const crdt_entry *a, const crdt_entry *b);

/* Largest encoded size of an entry's value. */
#define CRDT_VALUE_MAX (10 + 10 * CRDT_MAX_WRITERS)

/*
 * The canonical encoding of e's value (kind byte first) into buf, which holds
 * at least CRDT_VALUE_MAX bytes. Returns the length.
 */
size_t crdt_value_encode(const crdt_entry *e, uint8_t *buf);

/*
 * The length of the canonical value starting at buf, from its first bytes
 * (kind, and n for subjects); 0 when avail bytes do not say.
 */
size_t crdt_value_size(const uint8_t *buf, size_t avail);

/*
 * Decode a value encoded by crdt_value_encode into e (key untouched).
 * REVOKD_ECORRUPT when buf is not a canonical encoding.
 */
revokd_err crdt_value_decode(const uint8_t *buf, size_t len, crdt_entry *e);

/* ------------------------------------------------------------------------ */
/* Fingerprints                                                             */
/* ------------------------------------------------------------------------ */

/*
 * The summary of a set of entries: how many, and the sum modulo 2^128 of
 * SHA-256(key || encoded value) truncated to 128 bits. Sums are additive, so
 * the summary of a union of disjoint sets is the sum of their summaries, and
 * an entry's change is "subtract the old hash, add the new".
 */
typedef struct crdt_summary {
	uint64_t count;
	uint64_t fp_lo; /* low 64 bits of the 128-bit sum */
	uint64_t fp_hi; /* high 64 bits */
} crdt_summary;

/* Add b into a. */
void crdt_summary_add(crdt_summary *a, const crdt_summary *b);

/* Subtract b from a. */
void crdt_summary_sub(crdt_summary *a, const crdt_summary *b);

/* True when a and b have equal counts and fingerprints. */
bool crdt_summary_equal(const crdt_summary *a, const crdt_summary *b);

/* The summary of the single entry e (count 1). */
void crdt_entry_summary(const crdt_entry *e, crdt_summary *out);

/*
 * Buckets: the key space split by the first CRDT_BUCKET_BITS bits of the key.
 * The store keeps each bucket's summary up to date in every write
 * transaction, so the summary of any run of buckets costs no I/O.
 */
#define CRDT_BUCKET_BITS 12
#define CRDT_BUCKETS (1u << CRDT_BUCKET_BITS)

/* The bucket of key. */
uint32_t crdt_key_bucket(const crdt_key *key);

/* The first key of bucket b. */
void crdt_bucket_first_key(uint32_t b, crdt_key *out);

/* ------------------------------------------------------------------------ */
/* The replica store                                                        */
/* ------------------------------------------------------------------------ */

/*
 * The replica store: entries in LMDB, keyed by crdt_key, plus the bucket
 * summaries, in one environment under a data dir.
 *
 * One process writes (the agent): it holds an exclusive lock on the data dir
 * while open. Any number of processes may open the same dir read-only (the
 * direct reader of librevoke) and read while the writer writes. Write calls
 * of one store must come from one thread at a time; each crdt_reader belongs
 * to one thread at a time. In the writer's process, readers must not run
 * during a write call (a write may grow and remap the filter of present
 * keys): the agent reads and writes on one thread.
 *
 * Durability: when a write call returns REVOKD_OK its transaction is on disk
 * (unless no_sync was asked for) and survives kill -9 and power loss.
 */
typedef struct crdt_store crdt_store;

/* Options of crdt_store_open. Zero means "the default". */
typedef struct crdt_store_options {
	bool read_only;       /* open an existing store for reading only */
	bool no_sync;         /* skip fsync at commit (tests, simulator) */
	size_t map_size;      /* bytes the store may grow to; default 8 GiB */
	unsigned max_readers; /* LMDB reader slots; default 1022 */
	int64_t prune_leeway; /* seconds past exp before pruning; default 300 */
} crdt_store_options;

/*
 * Open (creating when it does not exist and not read_only) the store in dir,
 * which must exist. Clears reader slots left by dead processes. A writer
 * takes the data dir's lock: REVOKD_ELOCKED when another writer holds it.
 */
revokd_err crdt_store_open(const char *dir, const crdt_store_options *opt,
    crdt_store **out);

/* Close the store. Every reader of it must be freed first. NULL is allowed. */
void crdt_store_close(crdt_store *s);

/* How many entries the store holds (writer only; read-only stores give 0). */
uint64_t crdt_store_count(const crdt_store *s);

/*
 * The filter of present keys (keys.filter in the data dir) lets lookups of
 * absent keys skip the B-tree. The writer keeps it; after a power loss, a
 * copy of the data dir, or when the store outgrows it, the writer rebuilds
 * it by sweeping the keys, part of the sweep with each write and the rest
 * in steps: up to max keys per call, *more while a rebuild is under way.
 * Lookups are correct throughout; they are only slower until it is ready.
 */
revokd_err crdt_store_filter_step(crdt_store *s, size_t max, bool *more);

/* True when the filter is ready for lookups. */
bool crdt_store_filter_ready(const crdt_store *s);

/* What crdt_store_apply did with a batch. */
typedef struct crdt_apply_stats {
	size_t changed; /* entries whose state changed (written to changed[]) */
	size_t added;   /* of those, keys that were new */
	size_t expired; /* token entries dropped as already expired */
	size_t same;    /* entries that changed nothing */
} crdt_apply_stats;

/*
 * How a write transaction reaches the disk.
 *
 * CRDT_DURABLE: data pages and the meta page are fsync'd before the call
 * returns; the transaction survives kill -9 and power loss.
 *
 * CRDT_REPLICA: data pages are fsync'd, the meta page is written but not
 * (LMDB's MDB_NOMETASYNC). The store stays consistent whatever happens; a
 * process crash loses nothing; a power failure may lose the last such
 * transaction, until the next commit or crdt_store_sync makes it durable.
 * For entries that peers hold anyway (replication), which repair restores.
 */
typedef enum crdt_durability {
	CRDT_DURABLE = 0,
	CRDT_REPLICA = 1,
} crdt_durability;

/*
 * Free the reader slots of processes that died holding a snapshot (they
 * would pin old pages and grow the file). *cleared is how many.
 */
revokd_err crdt_store_reader_check(crdt_store *s, int *cleared);

/* Make every committed transaction durable (an fsync), if one is not. */
revokd_err crdt_store_sync(crdt_store *s);

/*
 * Merge n entries into the store in one write transaction, at time now (unix
 * seconds). Token entries already past exp + prune_leeway are dropped. For
 * every entry that changed the stored state, the new merged state is written
 * to changed[] (capacity n; NULL when not wanted), in input order; that subset
 * is what a replica relays. Duplicate keys within a batch are fine.
 *
 * All or nothing: on error nothing is committed, and *stats is not written.
 * REVOKD_EKIND or REVOKD_ELIMIT name an entry that cannot be merged;
 * REVOKD_EMAPFULL means the store is full: new entries may not take the
 * last 64th of the map (32 to 4,096 pages), kept so that pruning can always
 * delete (copy on write takes pages) and give room back.
 */
revokd_err crdt_store_apply(crdt_store *s, const crdt_entry *in, size_t n,
    int64_t now, crdt_entry *changed, crdt_apply_stats *stats);

/* crdt_store_apply with a chosen durability (crdt_store_apply: DURABLE). */
revokd_err crdt_store_apply_as(crdt_store *s, crdt_durability d,
    const crdt_entry *in, size_t n, int64_t now, crdt_entry *changed,
    crdt_apply_stats *stats);

/*
 * Prune: one step of a sweep through the entries in key order. Examines at
 * most max entries, from where the previous step stopped, and deletes, in
 * one transaction, the token entries among them whose exp + prune_leeway <
 * now. *pruned is how many went. *more is true until the step that reaches
 * the last key; the step after that starts a new sweep from the first key.
 * So calling until *more is false, starting right after a step that said
 * false (or on a freshly opened store), visits every entry once.
 */
revokd_err crdt_store_prune(crdt_store *s, int64_t now, size_t max,
    size_t *pruned, bool *more);

/*
 * The summary of buckets [first, last) from memory (writer only): no I/O.
 * first <= last <= CRDT_BUCKETS.
 */
void crdt_store_buckets_sum(const crdt_store *s, uint32_t first, uint32_t last,
    crdt_summary *out);

/* Small named values kept with the state (the agent's watermarks, say). */

/* Largest metadata value, in bytes. */
#define CRDT_META_MAX 4096

/*
 * Set metadata name to len bytes of value, in its own write transaction,
 * committed as CRDT_REPLICA (metadata is rewritten often). Names starting
 * with "crdt." are the store's own.
 */
revokd_err crdt_store_meta_put(crdt_store *s, const char *name,
    const void *value, size_t len);

/*
 * Bind the store to the cluster secret of k (writer): the first call saves
 * a fingerprint of the secret (an HMAC of a fixed text, not the secret);
 * later calls compare. REVOKD_EAUTH when the store's keys were made under
 * another secret: its entries mean nothing under this one.
 */
revokd_err crdt_store_bind_secret(crdt_store *s, crdt_keyer *k);

/* ------------------------------------------------------------------------ */
/* Readers                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * A reusable read transaction. Between crdt_reader_begin and crdt_reader_end
 * every call sees one consistent snapshot; ending and beginning again renews
 * the snapshot without allocation. One thread at a time.
 */
typedef struct crdt_reader crdt_reader;

/* A reader of s (not yet begun). */
revokd_err crdt_reader_new(crdt_store *s, crdt_reader **out);

/* End (if begun) and free the reader. NULL is allowed. */
void crdt_reader_free(crdt_reader *r);

/*
 * Take a fresh snapshot. REVOKD_EMAPRESIZED on a read-only store whose
 * writer grew the map past this process's mapping: end every snapshot of
 * the store in this process, call crdt_store_remap, and begin again.
 */
revokd_err crdt_reader_begin(crdt_reader *r);

/*
 * Adopt the map size the writer grew the store to. Only with no snapshot
 * of s open in this process (LMDB's rule): a multi-threaded caller holds
 * its readers off while it remaps.
 */
revokd_err crdt_store_remap(crdt_store *s);

/*
 * The id of the begun snapshot: equal ids are the same committed state, so
 * what a caller derived from one snapshot holds for another of the same id.
 */
size_t crdt_reader_snapshot_id(const crdt_reader *r);

/* Release the snapshot (keeps the reader slot for the next begin). */
void crdt_reader_end(crdt_reader *r);

/* The entry under key into *out; REVOKD_ENOTFOUND when there is none. */
revokd_err crdt_reader_get(crdt_reader *r, const crdt_key *key,
    crdt_entry *out);

/*
 * Whether the snapshot's store is bound to k's secret: REVOKD_OK, or
 * REVOKD_EAUTH (another secret), or REVOKD_ENOTFOUND (never bound).
 */
revokd_err crdt_reader_secret_check(crdt_reader *r, crdt_keyer *k);

/*
 * Metadata name into buf (capacity cap), its length in *len.
 * REVOKD_ENOTFOUND when unset, REVOKD_ETOOBIG when cap is too small.
 */
revokd_err crdt_reader_meta_get(crdt_reader *r, const char *name, void *buf,
    size_t cap, size_t *len);

/*
 * The verdicts of DESIGN.md, in the order checks are made: a revoked token
 * wins over a revoked session, which wins over a stale version, which wins
 * over a not-before revocation. Part of the local protocol: never renumber.
 */
typedef enum crdt_verdict {
	CRDT_VALID = 0,
	CRDT_REVOKED_TOKEN = 1,
	CRDT_REVOKED_SESSION = 2,
	CRDT_STALE_VERSION = 3,
	CRDT_REVOKED_NOT_BEFORE = 4,
} crdt_verdict;

/* The verdict's name as in DESIGN.md ("REVOKED_TOKEN"). */
const char *crdt_verdict_name(crdt_verdict v);

/* What to check. NULL keys and false has_ flags mean "not given". */
typedef struct crdt_check {
	const crdt_key *jti;
	const crdt_key *sid;
	const crdt_key *sub;
	bool has_ver;
	uint64_t ver; /* the token's ver claim */
	bool has_iat;
	int64_t iat; /* the token's iat claim, unix seconds */
} crdt_check;

/* The answer to a check. */
typedef struct crdt_check_result {
	crdt_verdict verdict;
	uint64_t version; /* the subject's version (0 without sub) */
} crdt_check_result;

/*
 * Check a token against the snapshot. A token is STALE_VERSION when
 * ver < version, and REVOKED_NOT_BEFORE when iat * 1000 < not_before_ms.
 */
revokd_err crdt_reader_check(crdt_reader *r, const crdt_check *c,
    crdt_check_result *out);

/*
 * Call fn for every entry with lo <= key < hi, in key order (hi NULL: to the
 * end). fn returns false to stop early. The entry passed to fn lives until
 * fn returns.
 */
typedef bool (*crdt_entry_fn)(void *arg, const crdt_entry *e);
revokd_err crdt_reader_scan(crdt_reader *r, const crdt_key *lo,
    const crdt_key *hi, crdt_entry_fn fn, void *arg);

/*
 * The summary of the entries with lo <= key < hi (hi NULL: to the end).
 * Whole buckets come from the store's bucket summaries (writer only); only
 * the partial buckets at either end are scanned. On a read-only store the
 * whole range is scanned.
 */
revokd_err crdt_reader_range_summary(crdt_reader *r, const crdt_key *lo,
    const crdt_key *hi, crdt_summary *out);

/*
 * The summary of the whole store recomputed from its entries, and the
 * per-bucket summaries (CRDT_BUCKETS of them, when buckets is not NULL). For
 * tests and audits: it reads every entry.
 */
revokd_err crdt_reader_recompute(crdt_reader *r, crdt_summary *total,
    crdt_summary *buckets);

#endif /* CRDT_H */
