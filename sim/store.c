/*
 * store.c: the simulator's use of the replica store: opening with its
 * options, preloading (one store filled, its file copied to the others),
 * measuring how two stores differ, and removing the run's directory.
 */
#include "sim/sim.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Map size of a simulated store: room for millions of entries. */
#define SIM__MAP_SIZE (4ull << 30)

revokd_err
sim_store_open(const char *dir, int64_t leeway_s, crdt_store **out)
{
	crdt_store_options o = { 0 };

	o.no_sync = true;
	o.map_size = SIM__MAP_SIZE;
	o.prune_leeway = leeway_s;
	return crdt_store_open(dir, &o, out);
}

/* ------------------------------------------------------------------------ */
/* Preloading                                                               */
/* ------------------------------------------------------------------------ */

/* A revoked token with a far-future expiry, for the preload. */
static void
sim__preload_entry(revokd_rng *rng, unsigned regions, crdt_entry *e)
{
	uint64_t epoch_ms = SIM_EPOCH_US / SIM_MS;

	memset(e, 0, sizeof(*e));
	revokd_rng_bytes(rng, e->key.b, CRDT_KEY_LEN);
	e->kind = CRDT_KIND_JTI;
	e->u.token.exp = (int64_t)(SIM_EPOCH_US / SIM_S) + 10 * 365 * 86400;
	e->u.token.revoked_at =
	    CRDT_HLC_AT(epoch_ms - 1000 - revokd_rng_below(rng, 1000000000));
	e->u.token.origin = (uint16_t)(1 + revokd_rng_below(rng, regions));
}

static revokd_err
sim__fill(const char *dir, uint64_t count, uint64_t seed, unsigned regions)
{
	crdt_entry *batch;
	crdt_store *st;
	revokd_rng rng;
	revokd_err err;

	if ((batch = calloc(SIM_PRELOAD_BATCH, sizeof(*batch))) == NULL)
		return REVOKD_ENOMEM;
	if ((err = sim_store_open(dir, SIM_PRUNE_LEEWAY_S, &st)) != REVOKD_OK) {
		free(batch);
		return err;
	}
	revokd_rng_seed(&rng, seed ^ 0x7072656c6f6164ull);
	for (uint64_t done = 0; done < count && err == REVOKD_OK;) {
		size_t k = count - done < SIM_PRELOAD_BATCH
		               ? (size_t)(count - done)
		               : SIM_PRELOAD_BATCH;
		crdt_apply_stats stats;

		for (size_t i = 0; i < k; i++)
			sim__preload_entry(&rng, regions, &batch[i]);
		err = crdt_store_apply(st, batch, k,
		    (int64_t)(SIM_EPOCH_US / SIM_S), NULL, &stats);
		done += k;
	}
	crdt_store_close(st);
	free(batch);
	return err;
}

static revokd_err
sim__copy_file(const char *from, const char *to)
{
	size_t cap = 1 << 20;
	char *buf;
	int in = -1, out = -1;
	revokd_err err = REVOKD_OK;
	ssize_t n;

	if ((buf = malloc(cap)) == NULL)
		return REVOKD_ENOMEM;
	if ((in = open(from, O_RDONLY | O_CLOEXEC)) < 0 ||
	    (out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600)) <
	        0) {
		err = revokd_err_from_errno(errno);
		goto done;
	}
	while ((n = read(in, buf, cap)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || write(out, buf, (size_t)n) != n) {
			err = revokd_err_from_errno(errno ? errno : EIO);
			break;
		}
	}
	if (close(out) != 0 && err == REVOKD_OK)
		err = revokd_err_from_errno(errno);
	out = -1;
done:
	if (out >= 0)
		close(out);
	if (in >= 0)
		close(in);
	free(buf);
	return err;
}

revokd_err
sim_store_preload(const char *dir, const char *const *copies, size_t n_copies,
    uint64_t count, uint64_t seed, unsigned regions)
{
	char from[4096], to[4096];
	revokd_err err;

	if ((err = sim__fill(dir, count, seed, regions)) != REVOKD_OK)
		return err;
	snprintf(from, sizeof(from), "%s/data.mdb", dir);
	for (size_t i = 0; i < n_copies; i++) {
		snprintf(to, sizeof(to), "%s/data.mdb", copies[i]);
		if ((err = sim__copy_file(from, to)) != REVOKD_OK)
			return err;
	}
	return REVOKD_OK;
}

/* ------------------------------------------------------------------------ */
/* Differences                                                              */
/* ------------------------------------------------------------------------ */

/* What the diff keeps of an entry: key, fingerprint, raw size. */
struct sim__digest {
	crdt_key key;
	uint64_t fp_lo, fp_hi;
	uint32_t raw;
};

struct sim__digests {
	struct sim__digest *v;
	size_t n, cap;
	size_t i; /* walk position while scanning the other store */
	uint64_t count, bytes;
	bool oom;
};

static void
sim__digest_of(const crdt_entry *e, struct sim__digest *d)
{
	uint8_t buf[CRDT_VALUE_MAX];
	crdt_summary sum;

	crdt_entry_summary(e, &sum);
	d->key = e->key;
	d->fp_lo = sum.fp_lo;
	d->fp_hi = sum.fp_hi;
	d->raw = (uint32_t)(CRDT_KEY_LEN + crdt_value_encode(e, buf));
}

static bool
sim__collect(void *arg, const crdt_entry *e)
{
	struct sim__digests *d = arg;

	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 4096;
		struct sim__digest *v = realloc(d->v, cap * sizeof(*v));

		if (v == NULL) {
			d->oom = true;
			return false;
		}
		d->v = v;
		d->cap = cap;
	}
	sim__digest_of(e, &d->v[d->n++]);
	return true;
}

/* b's entry e against the digests of a, in key order. */
static bool
sim__walk(void *arg, const crdt_entry *e)
{
	struct sim__digests *d = arg;
	struct sim__digest x;

	sim__digest_of(e, &x);
	while (d->i < d->n && crdt_key_cmp(&d->v[d->i].key, &x.key) < 0) {
		d->count++;
		d->bytes += d->v[d->i++].raw;
	}
	if (d->i < d->n && crdt_key_cmp(&d->v[d->i].key, &x.key) == 0) {
		const struct sim__digest *y = &d->v[d->i++];

		if (y->fp_lo != x.fp_lo || y->fp_hi != x.fp_hi) {
			d->count += 2;
			d->bytes += y->raw + x.raw;
		}
		return true;
	}
	d->count++;
	d->bytes += x.raw;
	return true;
}

revokd_err
sim_store_scan(crdt_store *st, crdt_entry_fn fn, void *arg)
{
	crdt_reader *r;
	revokd_err err;

	if ((err = crdt_reader_new(st, &r)) != REVOKD_OK)
		return err;
	if ((err = crdt_reader_begin(r)) == REVOKD_OK)
		err = crdt_reader_scan(r, NULL, NULL, fn, arg);
	crdt_reader_free(r);
	return err;
}

revokd_err
sim_store_diff(crdt_store *a, crdt_store *b, uint64_t *count, uint64_t *bytes)
{
	struct sim__digests d = { 0 };
	revokd_err err;

	err = sim_store_scan(a, sim__collect, &d);
	if (err == REVOKD_OK && !d.oom)
		err = sim_store_scan(b, sim__walk, &d);
	if (err == REVOKD_OK && d.oom)
		err = REVOKD_ENOMEM;
	for (; d.i < d.n; d.i++) {
		d.count++;
		d.bytes += d.v[d.i].raw;
	}
	free(d.v);
	if (err == REVOKD_OK) {
		*count = d.count;
		*bytes = d.bytes;
	}
	return err;
}

/* ------------------------------------------------------------------------ */
/* Cleanup                                                                  */
/* ------------------------------------------------------------------------ */

static int
sim__rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* dst = a "/" b, in cap bytes, with no library call; false if too long. */
static bool
sim__join(char *dst, size_t cap, const char *a, const char *b)
{
	size_t n = 0;

	for (; *a && n < cap; a++)
		dst[n++] = *a;
	if (n < cap)
		dst[n++] = '/';
	for (; *b && n < cap; b++)
		dst[n++] = *b;
	if (n == cap)
		return false;
	dst[n] = '\0';
	return true;
}

void
sim_rmdir_on_signal(const sim *s)
{
	static const char *const files[] = { "data.mdb", "lock.mdb",
		"revokd.lock" };
	char path[4096];

	if (s == NULL || s->dir == NULL)
		return;
	for (unsigned i = 0; i < s->n; i++) {
		if (s->node[i].dir == NULL)
			continue;
		for (size_t f = 0; f < sizeof(files) / sizeof(files[0]); f++)
			if (sim__join(path, sizeof(path), s->node[i].dir,
			        files[f]))
				(void)unlink(path);
		(void)rmdir(s->node[i].dir);
	}
	(void)rmdir(s->dir);
}

void
sim_rmdir(const char *dir)
{
	if (dir != NULL)
		nftw(dir, sim__rm, 16, FTW_DEPTH | FTW_PHYS);
}
