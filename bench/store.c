/*
 * store.c: the "store" suite: the crdt replica store on its own.
 *
 *   merge_new_entries_per_s     new revocations merged, --batch per commit
 *   merge_update_entries_per_s  existing entries changed, --batch per commit
 *   lookups_per_s               crdt_reader_get, random keys, half hits
 *   mdb_get_per_s               raw mdb_get of the same keys, same run
 *   lookup_vs_mdb_get           the ratio of the two (goal >= 0.8)
 *   checks_with_derive_per_s    key derivation (HMAC) + verdict for a jti
 *   disk_pages_per_s            the floor: random 4 KiB pages written and
 *                               fdatasync'd, --batch pages per sync, in a
 *                               file beside the store (no LMDB)
 *   bytes_per_entry             data.mdb's blocks on disk / entries
 *   tree_bytes_per_entry        pages of the entries tree / entries
 *
 * Lookups and raw gets run interleaved, rounds times each, and the medians
 * are reported, so both see the same machine state.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "crdt/crdt_int.h"

#define UPDATES 100000

const uint8_t bench_secret[CRDT_SECRET_LEN] = "revokd-bench-cluster-secret-32b";

int
bench_token_id(uint64_t i, char *buf, size_t cap)
{
	return snprintf(buf, cap, "bench-token-%" PRIu64, i);
}

static void
token_entry(crdt_keyer *k, uint64_t i, int64_t now, crdt_entry *e)
{
	char id[48];

	memset(e, 0, sizeof(*e));
	e->kind = CRDT_KIND_JTI;
	crdt_key_derive(k, CRDT_KIND_JTI, id,
	    (size_t)bench_token_id(i, id, sizeof(id)), &e->key);
	e->u.token.exp = now + 86400;
	e->u.token.revoked_at = CRDT_HLC_AT((uint64_t)now * 1000) + i;
	e->u.token.origin = 1;
}

static int
apply_batch(crdt_store *s, crdt_entry *batch, size_t n, int64_t now)
{
	crdt_apply_stats st;
	revokd_err err = crdt_store_apply(s, batch, n, now, NULL, &st);

	if (err != REVOKD_OK) {
		fprintf(stderr, "revokd-bench: store: apply: %s\n",
		    revokd_strerror(err));
		return -1;
	}
	return 0;
}

double
bench_populate(crdt_store *s, crdt_keyer *k, uint64_t entries, int64_t now,
    crdt_entry *batch, uint64_t batch_len)
{
	double t0, t = 0;

	for (uint64_t i = 0; i < entries;) {
		size_t n = 0;

		for (; n < batch_len && i < entries; n++, i++)
			token_entry(k, i, now, &batch[n]);
		t0 = bench_now();
		if (apply_batch(s, batch, n, now) != 0)
			return -1;
		t += bench_now() - t0;
	}
	return (double)entries / t;
}

/* Raise revoked_at of UPDATES random existing entries; entries/s. */
static double
update_round(crdt_store *s, crdt_keyer *k, uint64_t entries, int64_t now,
    revokd_rng *rng, uint64_t bump, crdt_entry *batch, uint64_t batch_len)
{
	double t0, t = 0;
	uint64_t done = 0;

	while (done < UPDATES) {
		size_t n = 0;

		for (; n < batch_len && done < UPDATES; n++, done++) {
			token_entry(k, revokd_rng_below(rng, entries), now,
			    &batch[n]);
			batch[n].u.token.revoked_at += bump << 32;
		}
		t0 = bench_now();
		if (apply_batch(s, batch, n, now) != 0)
			return -1;
		t += bench_now() - t0;
	}
	return UPDATES / t;
}

crdt_key *
bench_lookup_keys(crdt_keyer *k, uint64_t entries, revokd_rng *rng)
{
	crdt_key *keys = malloc(entries * sizeof(*keys));

	if (keys == NULL)
		return NULL;
	for (uint64_t i = 0; i < entries; i++) {
		char id[48];
		uint64_t pick = revokd_rng_below(rng, entries);

		if (i % 2 == 0)
			crdt_key_derive(k, CRDT_KIND_JTI, id,
			    (size_t)bench_token_id(pick, id, sizeof(id)),
			    &keys[i]);
		else
			revokd_rng_bytes(rng, keys[i].b, CRDT_KEY_LEN);
	}
	return keys;
}

static double
lookup_round(crdt_store *s, const crdt_key *keys, uint64_t n, uint64_t *hits)
{
	crdt_reader *r;
	crdt_entry e;
	double t0, t;

	*hits = 0;
	if (crdt_reader_new(s, &r) != REVOKD_OK ||
	    crdt_reader_begin(r) != REVOKD_OK)
		return -1;
	t0 = bench_now();
	for (uint64_t i = 0; i < n; i++)
		*hits += crdt_reader_get(r, &keys[i], &e) == REVOKD_OK;
	t = bench_now() - t0;
	crdt_reader_free(r);
	return (double)n / t;
}

double
bench_mdb_get_round(crdt_store *s, const crdt_key *keys, uint64_t n,
    uint64_t *hits)
{
	MDB_txn *txn;
	MDB_val k = { CRDT_KEY_LEN, NULL }, v;
	double t0, t;

	*hits = 0;
	if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
		return -1;
	t0 = bench_now();
	for (uint64_t i = 0; i < n; i++) {
		k.mv_data = (void *)keys[i].b;
		*hits += mdb_get(txn, s->entries, &k, &v) == 0;
	}
	t = bench_now() - t0;
	mdb_txn_abort(txn);
	return (double)n / t;
}

/* Derive the jti key of an id string and check it: checks/s. */
static double
check_round(crdt_store *s, crdt_keyer *k, uint64_t entries, revokd_rng *rng)
{
	crdt_reader *r;
	crdt_check_result res;
	uint64_t n = entries < 1000000 ? entries : 1000000, revoked = 0;
	double t0, t;

	if (crdt_reader_new(s, &r) != REVOKD_OK ||
	    crdt_reader_begin(r) != REVOKD_OK)
		return -1;
	t0 = bench_now();
	for (uint64_t i = 0; i < n; i++) {
		char id[48];
		crdt_key key;
		crdt_check c = { .jti = &key };
		/* Half the ids were populated, half were not. */
		uint64_t pick =
		    revokd_rng_below(rng, entries) + (i % 2 ? entries : 0);

		crdt_key_derive(k, CRDT_KIND_JTI, id,
		    (size_t)bench_token_id(pick, id, sizeof(id)), &key);
		if (crdt_reader_check(r, &c, &res) == REVOKD_OK)
			revoked += res.verdict == CRDT_REVOKED_TOKEN;
	}
	t = bench_now() - t0;
	crdt_reader_free(r);
	if (revoked < n / 2 - n / 20 || revoked > n / 2 + n / 20) {
		fprintf(stderr,
		    "revokd-bench: store: %" PRIu64 " of %" PRIu64
		    " checks revoked, expected about half\n",
		    revoked, n);
		return -1;
	}
	return (double)n / t;
}

/*
 * What the disk gives a store whose entries each dirty one random page:
 * batch random 4 KiB pages written into a 256 MiB file, then fdatasync, for
 * about two seconds. Pages per second.
 */
static double
disk_pages_round(const char *dir, uint64_t batch, revokd_rng *rng)
{
	enum { PAGE = 4096, PAGES = 65536 };
	static uint8_t page[PAGE];
	char path[4096];
	uint64_t pages = 0;
	double t0, t = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/disk-probe", dir);
	if ((fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600)) < 0 ||
	    ftruncate(fd, (off_t)PAGES * PAGE) != 0) {
		perror("revokd-bench: store: disk probe");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memset(page, 0x5a, sizeof(page));
	t0 = bench_now();
	while (t < 2.0) {
		for (uint64_t i = 0; i < batch; i++)
			if (pwrite(fd, page, PAGE,
			        (off_t)revokd_rng_below(rng, PAGES) * PAGE) !=
			    PAGE)
				goto fail;
		if (fdatasync(fd) != 0)
			goto fail;
		pages += batch;
		t = bench_now() - t0;
	}
	close(fd);
	unlink(path);
	return (double)pages / t;
fail:
	perror("revokd-bench: store: disk probe");
	close(fd);
	unlink(path);
	return -1;
}

/* Bytes of data.mdb on disk, and of the entries tree alone, per entry. */
static void
bytes_per_entry(crdt_store *s, const char *dir, uint64_t entries, double *disk,
    double *tree)
{
	char path[4096];
	struct stat st;
	MDB_stat ms;
	MDB_txn *txn;

	*disk = *tree = 0;
	snprintf(path, sizeof(path), "%s/data.mdb", dir);
	if (stat(path, &st) == 0)
		*disk = (double)st.st_blocks * 512 / (double)entries;
	if (mdb_txn_begin(s->env, NULL, MDB_RDONLY, &txn) != 0)
		return;
	if (mdb_stat(txn, s->entries, &ms) == 0)
		*tree = (double)(ms.ms_branch_pages + ms.ms_leaf_pages +
		                 ms.ms_overflow_pages) *
		        ms.ms_psize / (double)entries;
	mdb_txn_abort(txn);
}

static int
run(const bench_opts *o, const char *dir, crdt_store *s, crdt_keyer *k)
{
	const char *B = "store";
	int64_t now = (int64_t)time(NULL);
	double *look = calloc(o->rounds, sizeof(double));
	double *raw = calloc(o->rounds, sizeof(double));
	double *upd = calloc(o->rounds, sizeof(double));
	double *chk = calloc(o->rounds, sizeof(double));
	crdt_entry *batch = calloc(o->batch, sizeof(*batch));
	double merge_new, ratio, disk, tree, pages = 0;
	crdt_key *keys = NULL;
	uint64_t hits_a = 0, hits_b = 0;
	revokd_rng rng;
	int rc = 1;

	revokd_rng_seed(&rng, o->seed);
	if (!look || !raw || !upd || !chk || !batch)
		goto out;
	if ((merge_new =
	            bench_populate(s, k, o->entries, now, batch, o->batch)) < 0)
		goto out;
	if ((keys = bench_lookup_keys(k, o->entries, &rng)) == NULL)
		goto out;
	for (unsigned i = 0; i < o->rounds; i++) {
		if ((look[i] = lookup_round(s, keys, o->entries, &hits_a)) <
		        0 ||
		    (raw[i] = bench_mdb_get_round(s, keys, o->entries,
		         &hits_b)) < 0 ||
		    (chk[i] = check_round(s, k, o->entries, &rng)) < 0 ||
		    (upd[i] = update_round(s, k, o->entries, now, &rng, i + 1,
		         batch, o->batch)) < 0)
			goto out;
		if (hits_a != hits_b) {
			fprintf(stderr,
			    "revokd-bench: store: lookups found "
			    "%" PRIu64 ", mdb_get %" PRIu64 "\n",
			    hits_a, hits_b);
			goto out;
		}
	}
	bench_emit(o, B, "entries", (double)o->entries, "entries");
	bench_emit(o, B, "batch", (double)o->batch, "entries");
	bench_emit(o, B, "fsync_per_commit", o->no_sync ? 0 : 1, "bool");
	bench_emit(o, B, "hit_fraction", (double)hits_a / o->entries, "ratio");
	if (!o->no_sync && (pages = disk_pages_round(dir, o->batch, &rng)) < 0)
		goto out;
	bench_emit(o, B, "merge_new_entries_per_s", merge_new, "1/s");
	bench_emit(o, B, "merge_update_entries_per_s",
	    bench_median(upd, o->rounds), "1/s");
	ratio = bench_median(look, o->rounds) / bench_median(raw, o->rounds);
	if (!o->no_sync)
		bench_emit(o, B, "disk_pages_per_s", pages, "1/s");
	bench_emit(o, B, "lookups_per_s", bench_median(look, o->rounds), "1/s");
	bench_emit(o, B, "mdb_get_per_s", bench_median(raw, o->rounds), "1/s");
	bench_emit(o, B, "lookup_vs_mdb_get", ratio, "ratio");
	bench_emit(o, B, "checks_with_derive_per_s",
	    bench_median(chk, o->rounds), "1/s");
	bytes_per_entry(s, dir, o->entries, &disk, &tree);
	bench_emit(o, B, "bytes_per_entry", disk, "B");
	bench_emit(o, B, "tree_bytes_per_entry", tree, "B");
	rc = 0;
out:
	free(batch);
	free(keys);
	free(look);
	free(raw);
	free(upd);
	free(chk);
	return rc;
}

int
bench_store(const bench_opts *o)
{
	char *dir = bench_mkdtemp(o);
	crdt_store_options so = { .map_size = (size_t)64 << 30,
		.no_sync = o->no_sync };
	crdt_store *s = NULL;
	crdt_keyer *k = NULL;
	revokd_err err;
	int rc = 1;

	if ((err = crdt_keyer_new(bench_secret, sizeof(bench_secret), &k)) ||
	    (err = crdt_store_open(dir, &so, &s))) {
		fprintf(stderr, "revokd-bench: store: %s\n",
		    revokd_strerror(err));
		goto out;
	}
	rc = run(o, dir, s, k);
out:
	crdt_store_close(s);
	crdt_keyer_free(k);
	bench_rmdir(dir);
	return rc;
}
