/*
 * filter.c: the filter of present keys, a blocked Bloom filter in a file
 * beside the LMDB environment. Most checks ask about keys the store does not
 * hold (few tokens are ever revoked); with the filter such a lookup reads one
 * cache line instead of descending the B-tree, which at a million entries
 * costs about a microsecond of cache misses.
 *
 * Theory. The writer sets a key's bits before the transaction that inserts
 * the key commits and never clears a bit of a filter in use, so a filter
 * holds every key of every snapshot whose metadata "crdt.filter" names the
 * filter's id. A reader trusts the filter for a snapshot only when the
 * filter is ready, its id is the snapshot's, and the header's sequence
 * number did not move while it probed: the writer bumps the sequence before
 * it clears bits to rebuild, and a rebuilt filter gets a new id. A key the
 * filter lacks is absent; a key it has is looked up in the B-tree.
 *
 * Crashes and copies. Bits go through a shared mapping, so after kill -9 the
 * page cache still holds them; after a power loss the file may lag the
 * store. The header records whether the writer closed it cleanly, the boot
 * of the kernel it last wrote under, and the inode of data.mdb. A filter
 * that is unclean from another boot, belongs to another data.mdb, has
 * another id than the store, or is too small for it is rebuilt with a new
 * id, a step at a time (crdt_store_filter_step), while readers use the
 * B-tree.
 *
 * Keys are HMAC outputs, uniformly random, so their bytes index the filter
 * directly: the first 8 choose a 64-byte block, the other 8 and the top
 * bits of the first choose 8 bits in it. At 16 bits per key this gives
 * about 0.1% false positives.
 */
#include "crdt/crdt_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/rand.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CRDT__FILTER_NAME "keys.filter"
#define CRDT__FILTER_MAGIC "RVKFILT1"
#define CRDT__FILTER_VERSION 1
#define CRDT__FILTER_MODE 0640
#define CRDT__FILTER_HDR 4096    /* the header's page */
#define CRDT__BLOCK 64           /* bytes of one block: a cache line */
#define CRDT__KEYS_PER_BLOCK 32  /* 16 bits per key */
#define CRDT__MIN_CAPACITY 65536 /* keys a new filter is sized for */
#define CRDT__MAX_LOG2 40        /* blocks: 64 TiB, far past any map */
#define CRDT__META_FILTER "crdt.filter"

/* Stores this small are filtered at once when opened. */
#define CRDT__OPEN_SCAN 65536

/* Keys scanned by a write while a rebuild is under way, per key written. */
#define CRDT__SCAN_PER_WRITE 4

struct crdt__filter_hdr {
	char magic[8];
	uint32_t version;
	uint32_t log2_blocks;
	_Atomic uint64_t seq;   /* bumped before bits are cleared */
	_Atomic uint32_t ready; /* holds every key of its id's snapshots */
	uint32_t clean;         /* closed by the writer, bits synced */
	uint8_t id[CRDT__FILTER_ID_LEN];
	char boot[40];     /* boot_id of the kernel it was written under */
	uint64_t data_dev; /* data.mdb it belongs to */
	uint64_t data_ino;
	uint64_t capacity; /* keys it was sized for */
	uint64_t added;    /* keys added since it was built */
};

_Static_assert(sizeof(struct crdt__filter_hdr) <= CRDT__FILTER_HDR,
    "the filter header fits its page");

static struct crdt__filter_hdr *
crdt__hdr(const crdt__filter *f)
{
	return (struct crdt__filter_hdr *)f->map;
}

static size_t
crdt__filter_size(uint32_t log2_blocks)
{
	return CRDT__FILTER_HDR + ((size_t)CRDT__BLOCK << log2_blocks);
}

/* This kernel's boot id, or "" when it cannot be read. */
static void
crdt__boot_id(char out[40])
{
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "re");

	memset(out, 0, 40);
	if (f == NULL)
		return;
	if (fgets(out, 40, f) == NULL)
		out[0] = '\0';
	out[strcspn(out, "\n")] = '\0';
	fclose(f);
}

/* The device and inode of the store's data.mdb. */
static revokd_err
crdt__data_file(const crdt_store *s, uint64_t *dev, uint64_t *ino)
{
	struct stat st;
	int fd, rc;

	if ((rc = mdb_env_get_fd(s->env, &fd)) != 0)
		return crdt__mdb_err(rc);
	if (fstat(fd, &st) != 0)
		return revokd_err_from_errno(errno);
	*dev = (uint64_t)st.st_dev;
	*ino = (uint64_t)st.st_ino;
	return REVOKD_OK;
}

/*
 * Map the header and 2^log2 blocks, or the header alone when log2 < 0
 * (unmapping any earlier mapping).
 */
static revokd_err
crdt__filter_map(crdt__filter *f, int log2)
{
	int prot = f->writable ? PROT_READ | PROT_WRITE : PROT_READ;
	size_t len =
	    log2 < 0 ? CRDT__FILTER_HDR : crdt__filter_size((uint32_t)log2);
	void *p = mmap(NULL, len, prot, MAP_SHARED, f->fd, 0);

	if (p == MAP_FAILED)
		return revokd_err_from_errno(errno);
	if (f->map != NULL)
		munmap(f->map, f->map_len);
	f->map = p;
	f->map_len = len;
	f->has_blocks = log2 >= 0;
	f->log2_blocks = log2 < 0 ? 0 : (uint32_t)log2;
	return REVOKD_OK;
}

/* True when the file holds a well-formed header and all its blocks. */
static bool
crdt__filter_valid(const crdt__filter *f, off_t file_size)
{
	const struct crdt__filter_hdr *h = crdt__hdr(f);

	return memcmp(h->magic, CRDT__FILTER_MAGIC, 8) == 0 &&
	       h->version == CRDT__FILTER_VERSION &&
	       h->log2_blocks <= CRDT__MAX_LOG2 &&
	       (size_t)file_size >= crdt__filter_size(h->log2_blocks);
}

/* ------------------------------------------------------------------------ */
/* Bits                                                                     */
/* ------------------------------------------------------------------------ */

static uint64_t
crdt__le64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* The key's block and its 8 bit positions (0..511) in it. */
static _Atomic uint64_t *
crdt__probe(const crdt__filter *f, const crdt_key *key, uint16_t bit[8])
{
	uint64_t w0 = crdt__le64(key->b), w1 = crdt__le64(key->b + 8);
	uint64_t block = w0 & (((uint64_t)1 << f->log2_blocks) - 1);

	for (int i = 0; i < 7; i++)
		bit[i] = (uint16_t)(w1 >> (9 * i) & 511);
	bit[7] = (uint16_t)(w0 >> 55);
	return (_Atomic uint64_t *)(f->map + CRDT__FILTER_HDR +
	                            block * CRDT__BLOCK);
}

static void
crdt__filter_set(crdt__filter *f, const crdt_key *key)
{
	uint16_t bit[8];
	_Atomic uint64_t *w = crdt__probe(f, key, bit);

	for (int i = 0; i < 8; i++)
		atomic_fetch_or_explicit(&w[bit[i] >> 6],
		    (uint64_t)1 << (bit[i] & 63), memory_order_relaxed);
}

bool
crdt__filter_absent(const crdt_store *s, const crdt_key *key, uint64_t seq)
{
	const crdt__filter *f = &s->filter;
	struct crdt__filter_hdr *h = crdt__hdr(f);
	uint16_t bit[8];
	_Atomic uint64_t *w = crdt__probe(f, key, bit);
	bool absent = false;

	for (int i = 0; i < 8 && !absent; i++)
		absent = !(atomic_load_explicit(&w[bit[i] >> 6],
		               memory_order_relaxed) >>
		               (bit[i] & 63) &
		           1);
	/* Bits read while a rebuild cleared them prove nothing. */
	atomic_thread_fence(memory_order_acquire);
	return absent &&
	       atomic_load_explicit(&h->seq, memory_order_relaxed) == seq;
}

uint64_t
crdt__filter_seq(const crdt_store *s)
{
	if (s->filter.map == NULL)
		return 0;
	return atomic_load_explicit(&crdt__hdr(&s->filter)->seq,
	    memory_order_acquire);
}

/* ------------------------------------------------------------------------ */
/* Readers                                                                  */
/* ------------------------------------------------------------------------ */

/* True when the header describes a filter readers of this store may use. */
static bool
crdt__filter_trusted(const crdt_store *s, const struct crdt__filter_hdr *h)
{
	const crdt__filter *f = &s->filter;
	char boot[40];

	if (h->data_dev != f->data_dev || h->data_ino != f->data_ino)
		return false;
	if (h->clean)
		return true;
	crdt__boot_id(boot);
	return boot[0] != '\0' && strncmp(boot, h->boot, sizeof(boot)) == 0;
}

revokd_err
crdt__filter_usable(const crdt_store *s, MDB_txn *txn, uint64_t *seq,
    bool *usable)
{
	const crdt__filter *f = &s->filter;
	struct crdt__filter_hdr *h;
	MDB_val k = { sizeof(CRDT__META_FILTER) - 1, CRDT__META_FILTER }, v;
	bool ok;

	*usable = false;
	if (f->map == NULL || !f->has_blocks)
		return REVOKD_OK;
	h = crdt__hdr(f);
	*seq = atomic_load_explicit(&h->seq, memory_order_acquire);
	if (!atomic_load_explicit(&h->ready, memory_order_acquire))
		return REVOKD_OK;
	if (h->log2_blocks != f->log2_blocks)
		return REVOKD_EMAPRESIZED; /* rebuilt larger: remap */
	ok = (f->writable || crdt__filter_trusted(s, h)) &&
	     mdb_get(txn, s->meta, &k, &v) == 0 &&
	     v.mv_size == CRDT__FILTER_ID_LEN &&
	     memcmp(v.mv_data, h->id, CRDT__FILTER_ID_LEN) == 0;
	atomic_thread_fence(memory_order_acquire);
	*usable =
	    ok && atomic_load_explicit(&h->seq, memory_order_relaxed) == *seq;
	return REVOKD_OK;
}

/* ------------------------------------------------------------------------ */
/* Open and close                                                           */
/* ------------------------------------------------------------------------ */

static revokd_err
crdt__filter_path(const char *dir, char *path, size_t cap)
{
	if (snprintf(path, cap, "%s/%s", dir, CRDT__FILTER_NAME) >= (int)cap)
		return REVOKD_EINVAL;
	return REVOKD_OK;
}

/*
 * A read-only store maps the filter when there is a well-formed one; with
 * none, or one it cannot read, lookups use the B-tree.
 */
static void
crdt__filter_open_reader(crdt_store *s, const char *dir)
{
	crdt__filter *f = &s->filter;
	char path[PATH_MAX];
	struct stat st;

	if (crdt__filter_path(dir, path, sizeof(path)) != REVOKD_OK ||
	    crdt__data_file(s, &f->data_dev, &f->data_ino) != REVOKD_OK ||
	    (f->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return;
	if (fstat(f->fd, &st) != 0 || st.st_size < CRDT__FILTER_HDR ||
	    crdt__filter_map(f, -1) != REVOKD_OK ||
	    !crdt__filter_valid(f, st.st_size) ||
	    crdt__filter_map(f, (int)crdt__hdr(f)->log2_blocks) != REVOKD_OK)
		crdt__filter_close(s);
}

revokd_err
crdt__filter_remap(crdt_store *s)
{
	crdt__filter *f = &s->filter;
	struct stat st;
	uint32_t log2;

	if (f->map == NULL || f->writable)
		return REVOKD_OK;
	log2 = crdt__hdr(f)->log2_blocks;
	if (log2 == f->log2_blocks)
		return REVOKD_OK;
	if (log2 > CRDT__MAX_LOG2 || fstat(f->fd, &st) != 0 ||
	    (size_t)st.st_size < crdt__filter_size(log2))
		return REVOKD_ECORRUPT;
	return crdt__filter_map(f, (int)log2);
}

/* The filter id the store's newest snapshot names; zero when none. */
static revokd_err
crdt__store_filter_id(crdt_store *s, uint8_t id[CRDT__FILTER_ID_LEN])
{
	size_t len = 0;
	revokd_err err;
	crdt_reader *r;

	memset(id, 0, CRDT__FILTER_ID_LEN);
	if ((err = crdt_reader_new(s, &r)) != REVOKD_OK)
		return err;
	if ((err = crdt_reader_begin(r)) == REVOKD_OK)
		err = crdt_reader_meta_get(r, CRDT__META_FILTER, id,
		    CRDT__FILTER_ID_LEN, &len);
	crdt_reader_free(r);
	if (err == REVOKD_ENOTFOUND || err == REVOKD_ETOOBIG ||
	    (err == REVOKD_OK && len != CRDT__FILTER_ID_LEN)) {
		memset(id, 0, CRDT__FILTER_ID_LEN);
		return REVOKD_OK; /* no usable id: the filter is rebuilt */
	}
	return err;
}

/* Write the header page to disk. */
static revokd_err
crdt__filter_sync_header(crdt__filter *f)
{
	if (msync(f->map, CRDT__FILTER_HDR, MS_SYNC) != 0)
		return revokd_err_from_errno(errno);
	return REVOKD_OK;
}

/*
 * Blocks for a store of count keys, with room to grow fourfold: a rebuild
 * sweeps every key, and growing by four keeps the sweeps of a growing store
 * to a third of its inserts (doubling: one per insert).
 */
static uint32_t
crdt__filter_log2_for(uint64_t count)
{
	uint64_t want =
	    count * 4 > CRDT__MIN_CAPACITY ? count * 4 : CRDT__MIN_CAPACITY;
	uint32_t log2 = 0;

	while (((uint64_t)CRDT__KEYS_PER_BLOCK << log2) < want &&
	       log2 < CRDT__MAX_LOG2)
		log2++;
	return log2;
}

/*
 * Make the file len bytes, every one backed by the disk. The filter is
 * written through a shared mapping, where a page that a full disk cannot
 * back is a SIGBUS that kills the agent; here it is REVOKD_ENOSPACE.
 */
static revokd_err
crdt__filter_alloc(int fd, size_t len)
{
	int rc = posix_fallocate(fd, 0, (off_t)len);

	return rc == 0 ? REVOKD_OK : revokd_err_from_errno(rc);
}

/*
 * Start a rebuild: the filter stops being ready, grows when the store
 * outgrew it, is cleared, and gets a new id. The prune-like sweep of
 * crdt_store_filter_step then adds every key.
 */
static revokd_err
crdt__filter_rebuild(crdt_store *s)
{
	crdt__filter *f = &s->filter;
	struct crdt__filter_hdr *h = crdt__hdr(f);
	uint32_t log2 = crdt__filter_log2_for(s->count);
	uint8_t id[CRDT__FILTER_ID_LEN];
	revokd_err err;

	if (RAND_bytes(id, sizeof(id)) != 1)
		return REVOKD_ECRYPTO; /* nothing changed: retried later */
	atomic_store_explicit(&h->ready, 0, memory_order_seq_cst);
	atomic_fetch_add_explicit(&h->seq, 1, memory_order_seq_cst);
	if (f->has_blocks && log2 < f->log2_blocks)
		log2 = f->log2_blocks; /* stays: a rebuild only grows */
	if (!f->has_blocks || log2 != f->log2_blocks) {
		struct stat st;

		if (fstat(f->fd, &st) != 0)
			return revokd_err_from_errno(errno);
		if ((size_t)st.st_size < crdt__filter_size(log2) &&
		    (err = crdt__filter_alloc(f->fd,
		         crdt__filter_size(log2))) != REVOKD_OK)
			return err;
		if ((err = crdt__filter_map(f, (int)log2)) != REVOKD_OK)
			return err;
		h = crdt__hdr(f);
	}
	memset(f->map + CRDT__FILTER_HDR, 0, f->map_len - CRDT__FILTER_HDR);
	memcpy(h->magic, CRDT__FILTER_MAGIC, 8);
	h->version = CRDT__FILTER_VERSION;
	h->log2_blocks = f->log2_blocks = log2;
	h->capacity = (uint64_t)CRDT__KEYS_PER_BLOCK << log2;
	h->added = 0;
	h->clean = 0;
	h->data_dev = f->data_dev;
	h->data_ino = f->data_ino;
	crdt__boot_id(h->boot);
	memcpy(h->id, id, sizeof(id));
	f->building = true;
	memset(f->next.b, 0, CRDT_KEY_LEN);
	return crdt__filter_sync_header(f);
}

/* True when the writer may keep the filter it found. */
static bool
crdt__filter_keep(crdt_store *s, off_t file_size)
{
	crdt__filter *f = &s->filter;
	struct crdt__filter_hdr *h = crdt__hdr(f);
	uint8_t id[CRDT__FILTER_ID_LEN];

	return crdt__filter_valid(f, file_size) && atomic_load(&h->ready) &&
	       crdt__filter_trusted(s, h) &&
	       crdt__store_filter_id(s, id) == REVOKD_OK &&
	       memcmp(id, h->id, sizeof(id)) == 0 && s->count <= h->capacity;
}

static revokd_err
crdt__filter_open_writer(crdt_store *s, const char *dir)
{
	crdt__filter *f = &s->filter;
	char path[PATH_MAX];
	struct stat st;
	revokd_err err;

	f->writable = true;
	if ((err = crdt__filter_path(dir, path, sizeof(path))) ||
	    (err = crdt__data_file(s, &f->data_dev, &f->data_ino)))
		return err;
	f->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, CRDT__FILTER_MODE);
	if (f->fd < 0 || fchmod(f->fd, CRDT__FILTER_MODE) != 0 ||
	    fstat(f->fd, &st) != 0)
		return revokd_err_from_errno(errno);
	if (st.st_size < CRDT__FILTER_HDR &&
	    (err = crdt__filter_alloc(f->fd, CRDT__FILTER_HDR)) != REVOKD_OK)
		return err;
	if ((err = crdt__filter_map(f, -1)) != REVOKD_OK)
		return err;
	if (crdt__filter_keep(s, st.st_size)) {
		struct crdt__filter_hdr *h;

		err = crdt__filter_map(f, (int)crdt__hdr(f)->log2_blocks);
		if (err != REVOKD_OK)
			return err;
		h = crdt__hdr(f);
		h->clean = 0; /* on disk before any bit is set */
		crdt__boot_id(h->boot);
		return crdt__filter_sync_header(f);
	}
	return crdt__filter_rebuild(s);
}

revokd_err
crdt__filter_open(crdt_store *s, const char *dir)
{
	bool more = true;
	revokd_err err;

	s->filter.fd = -1;
	if (s->read_only) {
		crdt__filter_open_reader(s, dir);
		return REVOKD_OK;
	}
	err = crdt__filter_open_writer(s, dir);
	/*
	 * No room for the filter to grow (a full disk): open without it, as
	 * while one is rebuilt (lookups use the B-tree; readers see it is
	 * not ready); a later start rebuilds it. Refusing to start would
	 * stop the checks over derived data.
	 */
	if (err == REVOKD_ENOSPACE && s->filter.map != NULL &&
	    !s->filter.has_blocks)
		return REVOKD_OK;
	if (err != REVOKD_OK)
		return err;
	if (s->count <= CRDT__OPEN_SCAN)
		err = crdt_store_filter_step(s, CRDT__OPEN_SCAN + 1, &more);
	return err;
}

void
crdt__filter_close(crdt_store *s)
{
	crdt__filter *f = &s->filter;

	if (f->map != NULL && f->writable &&
	    msync(f->map, f->map_len, MS_SYNC) == 0) {
		crdt__hdr(f)->clean = 1;
		(void)crdt__filter_sync_header(f);
	}
	if (f->map != NULL)
		munmap(f->map, f->map_len);
	if (f->fd >= 0)
		close(f->fd);
	f->map = NULL;
	f->fd = -1;
}

/* ------------------------------------------------------------------------ */
/* Writer                                                                   */
/* ------------------------------------------------------------------------ */

void
crdt__filter_add(crdt_store *s, const crdt_key *key)
{
	crdt__filter *f = &s->filter;

	if (!f->has_blocks)
		return;
	crdt__filter_set(f, key);
	crdt__hdr(f)->added++;
}

/* Add up to max keys from f->next on; *done when the sweep reached the end. */
static revokd_err
crdt__filter_scan(crdt_store *s, size_t max, bool *done)
{
	crdt__filter *f = &s->filter;
	MDB_val k = { CRDT_KEY_LEN, f->next.b }, v;
	MDB_txn *txn;
	MDB_cursor *cur;
	size_t seen = 0;
	int rc;

	if ((rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn)) != 0)
		return crdt__mdb_err(rc);
	if ((rc = mdb_cursor_open(txn, s->entries, &cur)) != 0) {
		mdb_txn_abort(txn);
		return crdt__mdb_err(rc);
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	     rc == 0 && seen < max;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), seen++) {
		if (k.mv_size != CRDT_KEY_LEN) {
			rc = MDB_CORRUPTED;
			break;
		}
		crdt__filter_set(f, (const crdt_key *)k.mv_data);
	}
	if (rc == 0)
		memcpy(f->next.b, k.mv_data, CRDT_KEY_LEN);
	*done = rc == MDB_NOTFOUND;
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	return rc == 0 || rc == MDB_NOTFOUND ? REVOKD_OK : crdt__mdb_err(rc);
}

revokd_err
crdt_store_filter_step(crdt_store *s, size_t max, bool *more)
{
	crdt__filter *f = &s->filter;
	struct crdt__filter_hdr *h;
	bool done = false;
	revokd_err err;

	*more = false;
	if (s->read_only)
		return REVOKD_EPERM;
	if (f->map == NULL || !f->building)
		return REVOKD_OK;
	if ((err = crdt__filter_scan(s, max, &done)) != REVOKD_OK)
		return err;
	if (!done) {
		*more = true;
		return REVOKD_OK;
	}
	/* Every key is in: snapshots from the next commit on may use it. */
	h = crdt__hdr(f);
	err = crdt_store_meta_put(s, CRDT__META_FILTER, h->id,
	    CRDT__FILTER_ID_LEN);
	if (err != REVOKD_OK)
		return err;
	f->building = false;
	atomic_store_explicit(&h->ready, 1, memory_order_release);
	return REVOKD_OK;
}

void
crdt__filter_after_write(crdt_store *s, size_t written)
{
	crdt__filter *f = &s->filter;
	struct crdt__filter_hdr *h;
	bool more;

	if (f->map == NULL || !f->has_blocks)
		return;
	h = crdt__hdr(f);
	/* Outgrown, or worn by deleted keys' bits: start again. */
	if (!f->building &&
	    (s->count > h->capacity || h->added > 2 * h->capacity))
		(void)crdt__filter_rebuild(s);
	else if (f->building && written > 0)
		(void)crdt_store_filter_step(s, written * CRDT__SCAN_PER_WRITE,
		    &more);
}

bool
crdt_store_filter_ready(const crdt_store *s)
{
	return s->filter.map != NULL &&
	       atomic_load(&crdt__hdr(&s->filter)->ready) != 0;
}
