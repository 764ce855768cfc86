/*
 * test_crdt_filter.c: the filter of present keys (crdt/filter.c), which
 * answers lookups of absent keys without descending the B-tree. Lookups must
 * be exact whatever state the filter is in: ready, outgrown and being
 * rebuilt, reopened cleanly, left behind by a killed writer or a power loss,
 * copied with the data, restored from a backup, missing or damaged, worn by
 * pruned keys, or read by another process while the writer rebuilds it. When
 * it is ready, absent keys must mostly be answered by the filter alone.
 *
 * The tests read the filter's header through filter_hdr below, a copy of
 * the layout of struct crdt__filter_hdr (private to filter.c), and damage
 * the file with pread and pwrite the way a power loss or an operator would.
 * Keys are random bytes, as HMAC outputs are. A reader in another process
 * is a forked child that opens the dir itself (LMDB forbids opening one env
 * twice in a process) and reports over a pipe.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "store_fixture.h"
#include "testutil.h"

/* Entries per crdt_store_apply in these tests. */
#define BATCH 1000

/* Stores this small are filtered when opened (CRDT__OPEN_SCAN). */
#define OPEN_SCAN 65536

/* Blocks (log2) of the smallest filter: 65,536 keys at 32 per block. */
#define MIN_LOG2 11

/* Absent keys asked of the filter to see that it answers them. */
#define ABSENT_SAMPLE 2000

/* The header's page; blocks follow it (CRDT__FILTER_HDR). */
#define HDR_PAGE 4096

/* A boot id no kernel had: the filter was last written before a reboot. */
#define OTHER_BOOT "00000000-0000-4000-8000-000000000000"

/* The layout of struct crdt__filter_hdr (filter.c), read and written here. */
struct filter_hdr {
	char magic[8];
	uint32_t version;
	uint32_t log2_blocks;
	uint64_t seq;
	uint32_t ready;
	uint32_t clean;
	uint8_t id[CRDT__FILTER_ID_LEN];
	char boot[40];
	uint64_t data_dev;
	uint64_t data_ino;
	uint64_t capacity;
	uint64_t added;
};

_Static_assert(offsetof(struct filter_hdr, seq) == 16, "filter.c's layout");
_Static_assert(offsetof(struct filter_hdr, id) == 32, "filter.c's layout");
_Static_assert(offsetof(struct filter_hdr, data_dev) == 88,
    "filter.c's layout");
_Static_assert(sizeof(struct filter_hdr) == 120, "filter.c's layout");

/* ------------------------------------------------------------------------ */
/* Helpers                                                                  */
/* ------------------------------------------------------------------------ */

/* n random keys, freed at teardown. */
static crdt_key *
random_keys(struct fx *f, revokd_rng *rng, size_t n)
{
	crdt_key *keys = fx_alloc(f, n * sizeof(*keys));

	for (size_t i = 0; i < n; i++)
		revokd_rng_bytes(rng, keys[i].b, CRDT_KEY_LEN);
	return keys;
}

/* A batch buffer of BATCH entries, freed at teardown. */
static crdt_entry *
batch_buf(struct fx *f)
{
	return fx_alloc(f, BATCH * sizeof(crdt_entry));
}

/* Revoked token entries for keys[0..n) expiring at exp, into buf. */
static void
fill_tokens(crdt_entry *buf, const crdt_key *keys, size_t n, int64_t exp)
{
	for (size_t i = 0; i < n; i++)
		buf[i] = token(&keys[i], CRDT_KIND_JTI, exp, AT(1), 0);
}

/* Apply tokens for keys[0..n) (new keys) at NOW in batches of BATCH. */
static void
apply_keys(crdt_store *s, crdt_entry *buf, const crdt_key *keys, size_t n,
    int64_t exp)
{
	for (size_t i = 0; i < n; i += BATCH) {
		size_t len = n - i < BATCH ? n - i : BATCH;
		crdt_apply_stats st;

		fill_tokens(buf, keys + i, len, exp);
		st = apply_ok(s, buf, len, NOW, NULL);
		assert_int_equal(st.added, len);
	}
}

/* Assert r's snapshot finds every one of keys[0..n). */
static void
expect_found(crdt_reader *r, const crdt_key *keys, size_t n)
{
	crdt_entry e;

	for (size_t i = 0; i < n; i++) {
		revokd_err err = crdt_reader_get(r, &keys[i], &e);

		if (err != REVOKD_OK)
			fail_msg("key %zu of %zu not found: %s", i, n,
			    revokd_err_name(err));
	}
}

/* Assert r's snapshot finds none of keys[0..n). */
static void
expect_not_found(crdt_reader *r, const crdt_key *keys, size_t n)
{
	crdt_entry e;

	for (size_t i = 0; i < n; i++) {
		revokd_err err = crdt_reader_get(r, &keys[i], &e);

		if (err != REVOKD_ENOTFOUND)
			fail_msg("key %zu of %zu: %s, not ENOTFOUND", i, n,
			    revokd_err_name(err));
	}
}

/* How many of keys[0..n) the writer's filter says are absent. */
static size_t
filter_says_absent(const crdt_store *s, const crdt_key *keys, size_t n)
{
	uint64_t seq = crdt__filter_seq(s);
	size_t absent = 0;

	assert_true(crdt_store_filter_ready(s));
	for (size_t i = 0; i < n; i++)
		absent += crdt__filter_absent(s, &keys[i], seq);
	return absent;
}

/*
 * A fresh snapshot finds every present key, the filter holds them all (no
 * false negatives), absent keys are not found, and the filter answers at
 * least 99% of them by itself (about 0.1% are false positives).
 */
static void
expect_exact(crdt_store *s, crdt_reader *r, const crdt_key *present,
    size_t n_present, const crdt_key *absent, size_t n_absent)
{
	renew(r);
	assert_true(crdt_store_filter_ready(s));
	expect_found(r, present, n_present);
	assert_int_equal(filter_says_absent(s, present, n_present), 0);
	expect_not_found(r, absent, n_absent);
	assert_true(filter_says_absent(s, absent, n_absent) >=
	            n_absent - n_absent / 100);
}

/* Run filter steps until no rebuild is under way; how many it took. */
static size_t
finish_rebuild(crdt_store *s, size_t max)
{
	size_t steps = 0;
	bool more = true;

	while (more) {
		assert_true(++steps < 100000);
		assert_int_equal(crdt_store_filter_step(s, max, &more),
		    REVOKD_OK);
	}
	return steps;
}

/* The writer's mapped header (it moves when the filter grows). */
static const struct filter_hdr *
hdr_of(const crdt_store *s)
{
	assert_non_null(s->filter.map);
	return (const struct filter_hdr *)(const void *)s->filter.map;
}

/* dir/name into path. */
static void
path_in(const char *dir, const char *name, char *path, size_t cap)
{
	assert_true(snprintf(path, cap, "%s/%s", dir, name) < (int)cap);
}

/* The header as the file holds it. */
static void
read_file_hdr(const char *dir, struct filter_hdr *h)
{
	char path[4096];
	int fd;

	path_in(dir, "keys.filter", path, sizeof(path));
	assert_true((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0);
	assert_int_equal(pread(fd, h, sizeof(*h), 0), sizeof(*h));
	close(fd);
}

/* Overwrite the file's header with h. */
static void
write_file_hdr(const char *dir, const struct filter_hdr *h)
{
	char path[4096];
	int fd;

	path_in(dir, "keys.filter", path, sizeof(path));
	assert_true((fd = open(path, O_WRONLY | O_CLOEXEC)) >= 0);
	assert_int_equal(pwrite(fd, h, sizeof(*h), 0), sizeof(*h));
	close(fd);
}

/* Clear every bit of the file's blocks. */
static void
zero_file_bits(const char *dir)
{
	static const uint8_t zero[HDR_PAGE];
	char path[4096];
	struct stat st;
	int fd;

	path_in(dir, "keys.filter", path, sizeof(path));
	assert_true((fd = open(path, O_WRONLY | O_CLOEXEC)) >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(st.st_size > HDR_PAGE);
	for (off_t at = HDR_PAGE; at < st.st_size; at += HDR_PAGE)
		assert_int_equal(pwrite(fd, zero, sizeof(zero), at),
		    sizeof(zero));
	close(fd);
}

/*
 * What a power loss can leave: a header last written unclean under
 * another boot, over blocks whose bits never reached the disk.
 */
static void
lose_power(const char *dir)
{
	struct filter_hdr h;

	read_file_hdr(dir, &h);
	h.clean = 0;
	memset(h.boot, 0, sizeof(h.boot));
	memcpy(h.boot, OTHER_BOOT, sizeof(OTHER_BOOT));
	write_file_hdr(dir, &h);
	zero_file_bits(dir);
}

/* This kernel's boot id. */
static void
this_boot(char out[40])
{
	FILE *fp = fopen("/proc/sys/kernel/random/boot_id", "re");

	memset(out, 0, 40);
	assert_non_null(fp);
	assert_non_null(fgets(out, 40, fp));
	out[strcspn(out, "\n")] = '\0';
	fclose(fp);
}

/* The whole of a file (freed at teardown); its length in *len. */
static uint8_t *
slurp(struct fx *f, const char *dir, const char *name, size_t *len)
{
	char path[4096];
	struct stat st;
	uint8_t *buf;
	int fd;

	path_in(dir, name, path, sizeof(path));
	assert_true((fd = open(path, O_RDONLY | O_CLOEXEC)) >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = fx_alloc(f, (size_t)st.st_size + 1);
	assert_int_equal(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* Write len bytes as dir/name, in place when the file exists. */
static void
spill(const char *dir, const char *name, const uint8_t *buf, size_t len)
{
	char path[4096];
	int fd;

	path_in(dir, name, path, sizeof(path));
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	assert_true(fd >= 0);
	assert_true(tu_write_full(fd, buf, len));
	close(fd);
}

/* Close the fixture's store and reader. */
static void
close_fixture(struct fx *f)
{
	crdt_reader_free(f->r);
	f->r = NULL;
	crdt_store_close(f->s);
	f->s = NULL;
}

/* Open the fixture's store (writer) and reader again. */
static void
open_fixture(struct fx *f)
{
	f->s = open_store(f->dir, &fast_opts);
	assert_int_equal(crdt_reader_new(f->s, &f->r), REVOKD_OK);
}

/*
 * Open dir read-only in this process (which has no writer of dir open) as
 * f->s2 and f->r2 and assert a snapshot finds every key; closed after.
 */
static void
expect_found_read_only(struct fx *f, const char *dir, const crdt_key *keys,
    size_t n)
{
	crdt_store_options opt = { .read_only = true };

	f->s2 = open_store(dir, &opt);
	assert_int_equal(crdt_reader_new(f->s2, &f->r2), REVOKD_OK);
	assert_int_equal(crdt_reader_begin(f->r2), REVOKD_OK);
	expect_found(f->r2, keys, n);
	crdt_reader_free(f->r2);
	f->r2 = NULL;
	crdt_store_close(f->s2);
	f->s2 = NULL;
}

/* ------------------------------------------------------------------------ */
/* Ready and growing                                                        */
/* ------------------------------------------------------------------------ */

/*
 * With the filter ready, every present key is found and in the filter,
 * and absent keys are answered by the filter; lookups trust it (a key whose
 * bits are cleared is no longer found).
 */
static void
test_ready_and_exact(void **state)
{
	struct fx *f = *state;
	const size_t n = 50 * BATCH;
	crdt_entry *buf = batch_buf(f);
	crdt_key *keys, *absent;
	struct filter_hdr *h;
	revokd_rng rng;

	revokd_rng_seed(&rng, 1);
	keys = random_keys(f, &rng, n);
	absent = random_keys(f, &rng, n);
	assert_true(crdt_store_filter_ready(f->s)); /* empty: built at open */
	apply_keys(f->s, buf, keys, n, NOW + 3600);
	expect_exact(f->s, f->r, keys, n, absent, n);
	h = (struct filter_hdr *)(void *)f->s->filter.map;
	assert_int_equal(h->added, n);
	assert_int_equal(h->log2_blocks, MIN_LOG2);

	/* Clear the bits under the open snapshot: present keys vanish. */
	memset(f->s->filter.map + HDR_PAGE, 0, f->s->filter.map_len - HDR_PAGE);
	expect_not_found(f->r, keys, 100);
}

/* Keys of earlier batches checked after each batch (all, every 50). */
#define SAMPLE 500

/* Assert r finds the batch just applied and a sample of earlier keys. */
static void
expect_batch_and_sample(crdt_reader *r, revokd_rng *rng, const crdt_key *keys,
    size_t done)
{
	expect_found(r, keys + done - BATCH, BATCH);
	for (int i = 0; i < SAMPLE; i++)
		expect_found(r, &keys[revokd_rng_below(rng, done)], 1);
}

/*
 * The store outgrows the filter: a rebuild into a larger one starts (the
 * filter is not ready, yet every key is found, also through a snapshot
 * taken before the rebuild cleared the bits), carried forward by writes,
 * and ends ready and exact.
 */
static void
test_growth(void **state)
{
	struct fx *f = *state;
	const size_t n = 200 * BATCH;
	crdt_entry *buf = batch_buf(f);
	crdt_key *keys, *absent;
	size_t grew_at = 0;
	uint8_t id0[CRDT__FILTER_ID_LEN];
	revokd_rng rng;

	revokd_rng_seed(&rng, 2);
	keys = random_keys(f, &rng, n);
	absent = random_keys(f, &rng, ABSENT_SAMPLE);
	assert_int_equal(crdt_reader_new(f->s, &f->r2), REVOKD_OK);
	memcpy(id0, hdr_of(f->s)->id, sizeof(id0));
	assert_int_equal(hdr_of(f->s)->capacity, OPEN_SCAN);
	for (size_t done = 0; done < n;) {
		uint32_t log2 = hdr_of(f->s)->log2_blocks;

		if (grew_at == 0)
			renew(f->r2); /* a snapshot from before the batch */
		apply_keys(f->s, buf, keys + done, BATCH, NOW + 3600);
		done += BATCH;
		renew(f->r);
		expect_batch_and_sample(f->r, &rng, keys, done);
		if (done % (50 * BATCH) == 0)
			expect_found(f->r, keys, done);
		if (hdr_of(f->s)->log2_blocks == log2)
			continue;
		/* This batch outgrew the filter: a rebuild is under way. */
		assert_int_equal(grew_at, 0);
		grew_at = done;
		assert_true(done > OPEN_SCAN && done - BATCH <= OPEN_SCAN);
		assert_true(hdr_of(f->s)->capacity >= 2 * done);
		assert_memory_not_equal(hdr_of(f->s)->id, id0, sizeof(id0));
		assert_false(crdt_store_filter_ready(f->s));
		assert_int_equal(hdr_of(f->s)->ready, 0);
		expect_found(f->r2, keys, done - BATCH);
		expect_found(f->r, keys, done);
	}
	assert_true(grew_at > 0);
	crdt_reader_end(f->r2);
	/* Writes carried the sweep to its end; steps finish it if not. */
	finish_rebuild(f->s, 10000);
	assert_true(hdr_of(f->s)->capacity >= crdt_store_count(f->s));
	expect_exact(f->s, f->r, keys, n, absent, ABSENT_SAMPLE);
}

/* ------------------------------------------------------------------------ */
/* Reopening                                                                */
/* ------------------------------------------------------------------------ */

/*
 * A clean close marks the file clean and the reopen keeps the filter (same
 * id, ready at once) and marks it unclean while open. A writer that died in
 * this boot left its bits in the page cache: its filter is kept too.
 */
static void
test_clean_reopen_keeps_filter(void **state)
{
	struct fx *f = *state;
	const size_t n = 5 * BATCH;
	crdt_entry *buf = batch_buf(f);
	uint8_t id0[CRDT__FILTER_ID_LEN];
	crdt_key *keys, *absent;
	struct filter_hdr fh;
	char boot[40];
	revokd_rng rng;

	revokd_rng_seed(&rng, 3);
	keys = random_keys(f, &rng, n);
	absent = random_keys(f, &rng, ABSENT_SAMPLE);
	this_boot(boot);
	apply_keys(f->s, buf, keys, n, NOW + 3600);
	memcpy(id0, hdr_of(f->s)->id, sizeof(id0));
	assert_int_equal(hdr_of(f->s)->clean, 0);
	read_file_hdr(f->dir, &fh);
	assert_int_equal(fh.clean, 0);
	assert_string_equal(fh.boot, boot);

	close_fixture(f);
	read_file_hdr(f->dir, &fh);
	assert_int_equal(fh.clean, 1);
	assert_int_equal(fh.ready, 1);
	assert_memory_equal(fh.id, id0, sizeof(id0));
	open_fixture(f);
	assert_true(crdt_store_filter_ready(f->s));
	assert_memory_equal(hdr_of(f->s)->id, id0, sizeof(id0));
	assert_int_equal(hdr_of(f->s)->clean, 0);
	read_file_hdr(f->dir, &fh);
	assert_int_equal(fh.clean, 0);
	expect_exact(f->s, f->r, keys, n, absent, ABSENT_SAMPLE);

	/* Unclean from this boot (kill -9): kept. */
	close_fixture(f);
	read_file_hdr(f->dir, &fh);
	fh.clean = 0;
	write_file_hdr(f->dir, &fh);
	open_fixture(f);
	assert_memory_equal(hdr_of(f->s)->id, id0, sizeof(id0));
	expect_exact(f->s, f->r, keys, n, absent, ABSENT_SAMPLE);
}

/*
 * A writer killed with SIGKILL in another process: its filter is unclean
 * from this boot, kept by the next writer, and holds the keys it added.
 */
static void
test_killed_writer_keeps_filter(void **state)
{
	struct fx *f = *state;
	const size_t n = 5 * BATCH;
	crdt_entry *buf = batch_buf(f);
	uint8_t id0[CRDT__FILTER_ID_LEN];
	crdt_key *keys, *absent;
	struct filter_hdr fh;
	int up[2], status;
	char c;
	revokd_rng rng;

	revokd_rng_seed(&rng, 4);
	keys = random_keys(f, &rng, n);
	absent = random_keys(f, &rng, ABSENT_SAMPLE);
	memcpy(id0, hdr_of(f->s)->id, sizeof(id0));
	close_fixture(f);
	assert_int_equal(pipe(up), 0);
	f->child = fork();
	assert_true(f->child >= 0);
	if (f->child == 0) {
		crdt_store *s = NULL;

		close(up[0]);
		if (crdt_store_open(f->dir, &fast_opts, &s) != REVOKD_OK)
			_exit(2);
		for (size_t i = 0; i < n; i += BATCH) {
			fill_tokens(buf, keys + i, BATCH, NOW + 3600);
			if (crdt_store_apply(s, buf, BATCH, NOW, NULL, NULL) !=
			    REVOKD_OK)
				_exit(3);
		}
		(void)!write(up[1], "w", 1);
		pause();
		_exit(4);
	}
	close(up[1]);
	f->from_child = up[0];
	assert_true(tu_read_full(f->from_child, &c, 1, 20000));
	kill(f->child, SIGKILL);
	assert_int_equal(waitpid(f->child, &status, 0), f->child);
	f->child = 0;
	assert_true(WIFSIGNALED(status));

	read_file_hdr(f->dir, &fh);
	assert_int_equal(fh.clean, 0);
	open_fixture(f);
	assert_memory_equal(hdr_of(f->s)->id, id0, sizeof(id0));
	expect_exact(f->s, f->r, keys, n, absent, ABSENT_SAMPLE);
}

/* Close, lose power, reopen: the filter has a new id. */
static void
reopen_after_power_loss(struct fx *f, uint8_t id[CRDT__FILTER_ID_LEN])
{
	char boot[40];

	memcpy(id, hdr_of(f->s)->id, CRDT__FILTER_ID_LEN);
	close_fixture(f);
	lose_power(f->dir);
	open_fixture(f);
	this_boot(boot);
	assert_memory_not_equal(hdr_of(f->s)->id, id, CRDT__FILTER_ID_LEN);
	assert_string_equal(hdr_of(f->s)->boot, boot);
}

/*
 * A filter left unclean under another boot may lack bits that never
 * reached the disk: the writer rebuilds it. A small store is filtered again
 * at open; a large one is looked up in the B-tree until steps finish it.
 */
static void
test_unclean_other_boot_rebuilt(void **state)
{
	struct fx *f = *state;
	const size_t small = 5 * BATCH, n = 70 * BATCH;
	crdt_entry *buf = batch_buf(f);
	uint8_t id[CRDT__FILTER_ID_LEN];
	crdt_key *keys, *absent;
	size_t steps;
	revokd_rng rng;

	revokd_rng_seed(&rng, 5);
	keys = random_keys(f, &rng, n);
	absent = random_keys(f, &rng, ABSENT_SAMPLE);
	apply_keys(f->s, buf, keys, small, NOW + 3600);
	reopen_after_power_loss(f, id);
	expect_exact(f->s, f->r, keys, small, absent, ABSENT_SAMPLE);

	apply_keys(f->s, buf, keys + small, n - small, NOW + 3600);
	finish_rebuild(f->s, 100000);
	reopen_after_power_loss(f, id);
	assert_false(crdt_store_filter_ready(f->s));
	assert_int_equal(hdr_of(f->s)->ready, 0);
	renew(f->r);
	expect_found(f->r, keys, n);
	expect_not_found(f->r, absent, ABSENT_SAMPLE);
	steps = finish_rebuild(f->s, 1000);
	assert_true(steps >= n / 1000);
	expect_exact(f->s, f->r, keys, n, absent, ABSENT_SAMPLE);
}

/* ------------------------------------------------------------------------ */
/* Copies, backups, damage                                                  */
/* ------------------------------------------------------------------------ */

/*
 * data.mdb copied with a keys.filter copied earlier (it lacks the newest
 * keys but has the store's id and is clean): the copy's data.mdb is another
 * file, so readers do not trust the filter and the writer rebuilds it.
 */
static void
test_copy_gets_new_filter(void **state)
{
	struct fx *f = *state;
	const size_t n = 10 * BATCH, half = n / 2;
	crdt_entry *buf = batch_buf(f);
	uint8_t id[CRDT__FILTER_ID_LEN];
	crdt_key *keys, *absent;
	uint8_t *old_filter, *data;
	size_t filter_len, data_len;
	struct filter_hdr fh;
	char path[4096];
	struct stat st;
	revokd_rng rng;

	revokd_rng_seed(&rng, 6);
	keys = random_keys(f, &rng, n);
	absent = random_keys(f, &rng, ABSENT_SAMPLE);
	apply_keys(f->s, buf, keys, half, NOW + 3600);
	close_fixture(f);
	old_filter = slurp(f, f->dir, "keys.filter", &filter_len);
	open_fixture(f);
	apply_keys(f->s, buf, keys + half, n - half, NOW + 3600);
	memcpy(id, hdr_of(f->s)->id, sizeof(id));
	assert_memory_equal(((struct filter_hdr *)(void *)old_filter)->id, id,
	    sizeof(id));
	close_fixture(f);

	f->dir2 = tu_tmpdir();
	data = slurp(f, f->dir, "data.mdb", &data_len);
	spill(f->dir2, "data.mdb", data, data_len);
	spill(f->dir2, "keys.filter", old_filter, filter_len);
	expect_found_read_only(f, f->dir2, keys, n);

	f->s2 = open_store(f->dir2, &fast_opts);
	assert_int_equal(crdt_reader_new(f->s2, &f->r2), REVOKD_OK);
	assert_memory_not_equal(hdr_of(f->s2)->id, id, sizeof(id));
	path_in(f->dir2, "data.mdb", path, sizeof(path));
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(hdr_of(f->s2)->data_ino, (uint64_t)st.st_ino);
	expect_exact(f->s2, f->r2, keys, n, absent, ABSENT_SAMPLE);
	/* The original keeps its own. */
	open_fixture(f);
	assert_memory_equal(hdr_of(f->s)->id, id, sizeof(id));
	read_file_hdr(f->dir2, &fh);
	assert_memory_not_equal(fh.id, id, sizeof(id));
}

/*
 * A backup of data.mdb restored in place (same inode) over a store whose
 * filter was rebuilt after keys were pruned: the clean filter no longer
 * holds those keys, and only its id, which the backup does not name, tells
 * readers and the writer not to trust it.
 */
static void
test_restored_backup_not_trusted(void **state)
{
	struct fx *f = *state;
	const size_t n = 5 * BATCH;
	const int64_t later = NOW + 100 + LEEWAY + 1;
	crdt_entry *buf = batch_buf(f);
	uint8_t id[CRDT__FILTER_ID_LEN];
	crdt_key *doomed, *kept;
	uint8_t *backup;
	size_t backup_len;
	char path[4096];
	revokd_rng rng;

	revokd_rng_seed(&rng, 7);
	doomed = random_keys(f, &rng, n);
	kept = random_keys(f, &rng, n);
	apply_keys(f->s, buf, doomed, n, NOW + 100);
	apply_keys(f->s, buf, kept, n, NOW + 3600);
	close_fixture(f);
	backup = slurp(f, f->dir, "data.mdb", &backup_len);

	open_fixture(f);
	assert_int_equal(prune_sweep(f->s, later, 4096), n);
	close_fixture(f);
	path_in(f->dir, "keys.filter", path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	open_fixture(f); /* rebuilt without the pruned keys */
	expect_exact(f->s, f->r, kept, n, doomed, n);
	memcpy(id, hdr_of(f->s)->id, sizeof(id));
	close_fixture(f);

	spill(f->dir, "data.mdb", backup, backup_len);
	expect_found_read_only(f, f->dir, doomed, n);
	open_fixture(f);
	assert_memory_not_equal(hdr_of(f->s)->id, id, sizeof(id));
	assert_true(crdt_store_filter_ready(f->s));
	renew(f->r);
	expect_found(f->r, doomed, n);
	expect_found(f->r, kept, n);
	assert_int_equal(filter_says_absent(f->s, doomed, n), 0);
	assert_int_equal(filter_says_absent(f->s, kept, n), 0);
}

/* Ways a keys.filter can be missing or damaged. */
enum damage { GONE, GARBAGE, TRUNCATED, NO_BLOCKS, N_DAMAGE };

static void
damage_filter(const char *dir, enum damage d, revokd_rng *rng)
{
	uint8_t junk[HDR_PAGE];
	char path[4096];

	path_in(dir, "keys.filter", path, sizeof(path));
	switch (d) {
	case GONE:
		assert_int_equal(unlink(path), 0);
		break;
	case GARBAGE:
		revokd_rng_bytes(rng, junk, sizeof(junk));
		write_file_hdr(dir, (const struct filter_hdr *)(void *)junk);
		break;
	case TRUNCATED:
		assert_int_equal(truncate(path, 100), 0);
		break;
	case NO_BLOCKS: /* a well-formed header over one block */
		assert_int_equal(truncate(path, HDR_PAGE + 64), 0);
		break;
	default:
		fail();
	}
}

/*
 * With keys.filter missing, its header garbage, or the file cut short, a
 * reader looks keys up in the B-tree and the writer rebuilds the filter.
 */
static void
test_missing_or_damaged_filter(void **state)
{
	struct fx *f = *state;
	const size_t n = 3 * BATCH;
	crdt_entry *buf = batch_buf(f);
	uint8_t id[CRDT__FILTER_ID_LEN];
	crdt_key *keys, *absent;
	revokd_rng rng;

	revokd_rng_seed(&rng, 8);
	keys = random_keys(f, &rng, n);
	absent = random_keys(f, &rng, ABSENT_SAMPLE);
	apply_keys(f->s, buf, keys, n, NOW + 3600);
	for (int d = 0; d < N_DAMAGE; d++) {
		memcpy(id, hdr_of(f->s)->id, sizeof(id));
		close_fixture(f);
		damage_filter(f->dir, (enum damage)d, &rng);
		expect_found_read_only(f, f->dir, keys, n);
		open_fixture(f);
		assert_memory_not_equal(hdr_of(f->s)->id, id, sizeof(id));
		expect_exact(f->s, f->r, keys, n, absent, ABSENT_SAMPLE);
	}
}

/* ------------------------------------------------------------------------ */
/* A reader in another process                                              */
/* ------------------------------------------------------------------------ */

/* Keys of the newest batch a spinning child checks per snapshot. */
#define RACE_KEYS 32

/* The parent's last message: every key is in and the rebuild is done. */
#define FINAL_BIT (UINT64_C(1) << 63)

/* What the reader child saw. */
struct child_report {
	int32_t open_err, begin_err, remap_err, final_usable;
	uint64_t snapshots;     /* fresh snapshots checked */
	uint64_t told;          /* of them, after a count from the parent */
	uint64_t filtered;      /* of those, the filter was usable for */
	uint64_t min_absent;    /* fewest absent keys it answered then */
	uint64_t final_absent;  /* absent keys it answered at the end */
	uint64_t missing;       /* committed keys not found */
	uint64_t first_missing; /* the first one's index */
	uint64_t remaps;
};

/* What the child is given (its own copy, after fork). */
struct child_args {
	const char *dir;
	const crdt_key *keys, *absent;
	size_t n;
	int in_fd, out_fd;
};

/* The child's state across snapshots. */
struct child {
	const struct child_args *a;
	crdt_store *s;
	crdt_reader *r;
	revokd_rng rng;
	size_t known;     /* committed, as the parent said */
	size_t committed; /* committed, as the snapshot's B-tree says */
	bool final;
	struct child_report rep;
};

static bool
first_entry(void *arg, const crdt_entry *e)
{
	*(crdt_key *)arg = e->key;
	return false;
}

/* True when r's snapshot holds key, asked of the B-tree alone. */
static bool
in_btree(crdt_reader *r, const crdt_key *key)
{
	crdt_key got;

	memset(&got, 0, sizeof(got));
	if (crdt_reader_scan(r, key, NULL, first_entry, &got) != REVOKD_OK)
		return false;
	return crdt_key_cmp(&got, key) == 0;
}

/* Read the parent's counts; true when one came. */
static bool
child_poll(struct child *c)
{
	struct pollfd p = { c->a->in_fd, POLLIN, 0 };
	bool told = false;
	uint64_t msg;

	while (poll(&p, 1, 0) == 1) {
		if (!tu_read_full(c->a->in_fd, &msg, sizeof(msg), 20000))
			_exit(5);
		c->known = (size_t)(msg & ~FINAL_BIT);
		c->final = (msg & FINAL_BIT) != 0;
		told = true;
	}
	return told;
}

/* A fresh snapshot, remapping when the writer grew the map or filter. */
static bool
child_begin(struct child *c)
{
	revokd_err err = crdt_reader_begin(c->r);

	if (err == REVOKD_EMAPRESIZED) {
		c->rep.remaps++;
		c->rep.remap_err = crdt_store_remap(c->s);
		if (c->rep.remap_err != REVOKD_OK)
			return false;
		err = crdt_reader_begin(c->r);
	}
	c->rep.begin_err = err;
	return err == REVOKD_OK;
}

/* Note whether keys[i] is found. */
static void
child_expect(struct child *c, size_t i)
{
	crdt_entry e;

	if (crdt_reader_get(c->r, &c->a->keys[i], &e) == REVOKD_OK)
		return;
	if (c->rep.missing++ == 0)
		c->rep.first_missing = i;
}

/* The batches the snapshot holds, asked of the B-tree from the known. */
static void
child_count(struct child *c)
{
	size_t at = c->known > c->committed ? c->known : c->committed;

	while (at + BATCH <= c->a->n &&
	       in_btree(c->r, &c->a->keys[at + BATCH - 1]))
		at += BATCH;
	c->committed = at;
}

/*
 * Whether the filter is usable for a snapshot like the reader's, and if so
 * how many absent keys it answers (r->filtered is private to reader.c).
 */
static void
child_judge(struct child *c)
{
	uint64_t seq = 0, absent = 0;
	bool usable = false;
	MDB_txn *txn;

	if (mdb_txn_begin(c->s->env, NULL, MDB_RDONLY, &txn) != 0)
		_exit(6);
	if (crdt__filter_usable(c->s, txn, &seq, &usable) != REVOKD_OK)
		usable = false;
	for (size_t i = 0; usable && i < ABSENT_SAMPLE; i++)
		absent += crdt__filter_absent(c->s, &c->a->absent[i], seq);
	mdb_txn_abort(txn);
	/*
	 * A rebuild that began during the probes makes the rest answer "maybe"
	 * (the reader then asks the B-tree): such a count says nothing of the
	 * filter's false positives, so it is not judged.
	 */
	if (usable && crdt__filter_seq(c->s) != seq)
		return;
	if (usable) {
		c->rep.filtered++;
		if (absent < c->rep.min_absent)
			c->rep.min_absent = absent;
	}
	if (c->final) {
		c->rep.final_usable = usable;
		c->rep.final_absent = absent;
	}
}

/*
 * One fresh snapshot: the newest committed batch is found (its last keys
 * only while spinning, so a snapshot taken just after a commit is probed
 * at once); after a count from the parent also a sample of older keys and
 * the filter's use; at the end every key.
 */
static bool
child_snapshot(struct child *c, bool told)
{
	size_t newest;

	if (!child_begin(c))
		return false;
	c->rep.snapshots++;
	child_count(c);
	newest = told ? BATCH : RACE_KEYS;
	for (size_t i = 0; i < newest && i < c->committed; i++)
		child_expect(c, c->committed - 1 - i);
	if (told && c->committed > 0) {
		c->rep.told++;
		for (int i = 0; i < ABSENT_SAMPLE; i++)
			child_expect(c,
			    revokd_rng_below(&c->rng, c->committed));
		child_judge(c);
	}
	if (c->final)
		for (size_t i = 0; i < c->a->n; i++)
			child_expect(c, i);
	crdt_reader_end(c->r);
	return true;
}

/* The read-only child: check snapshots until the parent's last word. */
static _Noreturn void
reader_child(const struct child_args *a)
{
	crdt_store_options opt = { .read_only = true };
	struct child c;

	memset(&c, 0, sizeof(c));
	c.a = a;
	c.rep.min_absent = c.rep.first_missing = UINT64_MAX;
	revokd_rng_seed(&c.rng, 77);
	c.rep.open_err = crdt_store_open(a->dir, &opt, &c.s);
	if (c.rep.open_err == REVOKD_OK &&
	    crdt_reader_new(c.s, &c.r) == REVOKD_OK &&
	    tu_write_full(a->out_fd, "o", 1))
		while (!c.final && child_snapshot(&c, child_poll(&c)))
			;
	if (!tu_write_full(a->out_fd, &c.rep, sizeof(c.rep)))
		_exit(7);
	_exit(0);
}

/* Fork reader_child on a with pipes both ways; wait until it opened. */
static void
start_reader_child(struct fx *f, struct child_args *a)
{
	int down[2], up[2];
	char c;

	assert_int_equal(pipe(down), 0);
	assert_int_equal(pipe(up), 0);
	f->child = fork();
	assert_true(f->child >= 0);
	if (f->child == 0) {
		/* The writer's flock is shared across fork: leave it. */
		close(f->s->lock_fd);
		close(down[1]);
		close(up[0]);
		a->in_fd = down[0];
		a->out_fd = up[1];
		reader_child(a);
	}
	close(down[0]);
	close(up[1]);
	f->to_child = down[1];
	f->from_child = up[0];
	if (!tu_read_full(f->from_child, &c, 1, 20000) || c != 'o')
		fail_msg("the reader child did not open the store");
}

/* Tell the child how many keys are committed; false when it is gone. */
static bool
tell_child(struct fx *f, uint64_t msg)
{
	return tu_write_full(f->to_child, &msg, sizeof(msg));
}

/* The child's report and its exit. */
static void
finish_reader_child(struct fx *f, struct child_report *rep)
{
	int status;

	memset(rep, 0, sizeof(*rep));
	if (!tu_read_full(f->from_child, rep, sizeof(*rep), 60000))
		fail_msg("no report from the reader child");
	assert_int_equal(waitpid(f->child, &status, 0), f->child);
	f->child = 0;
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/*
 * A read-only reader in another process checks fresh snapshots while the
 * writer applies batches past a growth rebuild: it never misses a
 * committed key, adopts the grown filter, and uses the filter at the end.
 */
static void
test_reader_in_another_process(void **state)
{
	struct fx *f = *state;
	const size_t n = 150 * BATCH;
	crdt_entry *buf = batch_buf(f);
	struct child_args a = { 0 };
	struct child_report rep;
	revokd_rng rng;

	revokd_rng_seed(&rng, 9);
	a.dir = f->dir;
	a.n = n;
	a.keys = random_keys(f, &rng, n);
	a.absent = random_keys(f, &rng, ABSENT_SAMPLE);
	start_reader_child(f, &a);
	for (size_t done = 0; done < n;) {
		apply_keys(f->s, buf, a.keys + done, BATCH, NOW + 3600);
		done += BATCH;
		if (!tell_child(f, done))
			break; /* it stopped: its report says why */
	}
	finish_rebuild(f->s, 10000);
	assert_true(crdt_store_filter_ready(f->s));
	assert_true(hdr_of(f->s)->log2_blocks > MIN_LOG2);
	(void)tell_child(f, n | FINAL_BIT);
	finish_reader_child(f, &rep);

	if (rep.open_err != REVOKD_OK || rep.remap_err != REVOKD_OK ||
	    rep.begin_err != REVOKD_OK)
		fail_msg("the child's open %s, remap %s, begin %s",
		    revokd_err_name(rep.open_err),
		    revokd_err_name(rep.remap_err),
		    revokd_err_name(rep.begin_err));
	if (rep.missing != 0)
		fail_msg("the child missed %llu committed keys, first #%llu",
		    (unsigned long long)rep.missing,
		    (unsigned long long)rep.first_missing);
	assert_true(rep.remaps >= 1);
	assert_true(rep.told > 0 && rep.filtered > 0);
	assert_true(rep.min_absent >= ABSENT_SAMPLE - ABSENT_SAMPLE / 100);
	assert_int_equal(rep.final_usable, 1);
	assert_true(rep.final_absent >= ABSENT_SAMPLE - ABSENT_SAMPLE / 100);
}

/* ------------------------------------------------------------------------ */
/* Prune                                                                    */
/* ------------------------------------------------------------------------ */

/*
 * Pruned keys are gone and the rest stay. Keys added and pruned wear the
 * filter (their bits stay): past twice its capacity in keys added, it is
 * rebuilt, and no longer holds the keys pruned before.
 */
static void
test_prune_and_worn_filter(void **state)
{
	struct fx *f = *state;
	const size_t n_kept = 10 * BATCH, n_doomed = 30 * BATCH, rounds = 5;
	const int64_t later = NOW + 100 + LEEWAY + 1;
	crdt_entry *buf = batch_buf(f);
	uint8_t id[CRDT__FILTER_ID_LEN];
	crdt_key *kept, *doomed;
	size_t rebuilt_in = rounds;
	revokd_rng rng;

	revokd_rng_seed(&rng, 10);
	kept = random_keys(f, &rng, n_kept);
	doomed = random_keys(f, &rng, rounds * n_doomed);
	apply_keys(f->s, buf, kept, n_kept, NOW + 86400);
	for (size_t i = 0; i < rounds; i++) {
		crdt_key *round = doomed + i * n_doomed;

		memcpy(id, hdr_of(f->s)->id, sizeof(id));
		apply_keys(f->s, buf, round, n_doomed, NOW + 100);
		if (rebuilt_in == rounds &&
		    memcmp(id, hdr_of(f->s)->id, sizeof(id)) != 0)
			rebuilt_in = i;
		renew(f->r);
		expect_found(f->r, round, n_doomed);
		assert_int_equal(prune_sweep(f->s, later, 4096), n_doomed);
		assert_int_equal(crdt_store_count(f->s), n_kept);
		renew(f->r);
		expect_not_found(f->r, round, n_doomed);
		expect_found(f->r, kept, n_kept);
	}
	/* 10,000 added, then 30,000 a round: past 2 x 65,536 in the 5th. */
	assert_int_equal(rebuilt_in, 4);
	finish_rebuild(f->s, 10000);
	expect_exact(f->s, f->r, kept, n_kept, doomed, rebuilt_in * n_doomed);
}

/* ------------------------------------------------------------------------ */
/* Failed opens                                                             */
/* ------------------------------------------------------------------------ */

/* Open a store that must fail with want; true when descriptor 0 survived. */
static bool
failed_open_keeps_fd0(const char *dir, const crdt_store_options *opt,
    revokd_err want)
{
	int saved = dup(0), null = open("/dev/null", O_RDONLY | O_CLOEXEC);
	crdt_store *s = NULL;
	revokd_err err;
	bool open0;

	assert_true(null >= 0);
	assert_int_equal(dup2(null, 0), 0);
	close(null);
	err = crdt_store_open(dir, opt, &s);
	open0 = fcntl(0, F_GETFD) != -1;
	if (saved >= 0) {
		dup2(saved, 0);
		close(saved);
	} else {
		close(0);
	}
	assert_int_equal(err, want);
	assert_null(s);
	return open0;
}

/*
 * An open that fails before the filter is opened (another writer holds the
 * lock; no store in the dir) must not close a descriptor it does not own:
 * until crdt__filter_open sets it, the filter's fd field is calloc's 0.
 */
static void
test_failed_open_keeps_descriptors(void **state)
{
	struct fx *f = *state;
	crdt_store_options ro = { .read_only = true };

	f->dir2 = tu_tmpdir();
	assert_true(failed_open_keeps_fd0(f->dir, &fast_opts, REVOKD_ELOCKED));
	assert_true(failed_open_keeps_fd0(f->dir2, &ro, REVOKD_ENOTFOUND));
}

int
main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_ready_and_exact),
		T(test_growth),
		T(test_clean_reopen_keeps_filter),
		T(test_killed_writer_keeps_filter),
		T(test_unclean_other_boot_rebuilt),
		T(test_copy_gets_new_filter),
		T(test_restored_backup_not_trusted),
		T(test_missing_or_damaged_filter),
		T(test_reader_in_another_process),
		T(test_prune_and_worn_filter),
		T(test_failed_open_keeps_descriptors),
	};
#undef T

	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
