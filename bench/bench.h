/*
 * bench.h: what the revokd-bench suites share: timing, result output, and
 * scratch directories.
 */
#ifndef BENCH_H
#define BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "crdt/crdt.h"

/* Options common to every suite. */
typedef struct bench_opts {
	bool json;        /* JSON lines instead of a table */
	const char *dir;  /* where scratch stores go (default: TMPDIR) */
	uint64_t entries; /* state size, where a suite has one */
	bool entries_set; /* --entries was given (else the suite default) */
	unsigned rounds;  /* repetitions; medians are reported */
	uint64_t seed;    /* for the random keys */
	uint64_t batch;   /* entries per write transaction */
	bool no_sync;     /* commit without fsync (to isolate CPU cost) */
	uint64_t rate;    /* lag: revocations per second */
	uint64_t seconds; /* lag: how long to send */
	uint64_t hits;    /* query: percent of checks of revoked ids */
} bench_opts;

/* Monotonic time in seconds. */
double bench_now(void);

/*
 * Report one figure: {"bench": suite, "metric": metric, "value": value,
 * "unit": unit} as a JSON line, or a table row.
 */
void bench_emit(const bench_opts *o, const char *suite, const char *metric,
    double value, const char *unit);

/* qsort comparison of doubles. */
int bench_cmp_double(const void *a, const void *b);

/* The median of n values (sorts them). */
double bench_median(double *v, unsigned n);

/* A fresh scratch directory under o->dir (free with bench_rmdir). */
char *bench_mkdtemp(const bench_opts *o);

/* Remove a scratch directory and everything in it, and free the path. */
void bench_rmdir(char *dir);

/* Resident set size of this process outside file mappings, in bytes. */
uint64_t bench_rss_anon(void);

/*
 * A size field ("RssAnon", "RssFile", ...) of /proc/PID/status (pid 0:
 * this process), in bytes; 0 when it cannot be read.
 */
uint64_t bench_proc_status(pid_t pid, const char *field);

/* The cluster secret of the stores the suites fill. */
extern const uint8_t bench_secret[CRDT_SECRET_LEN];

/* The jti string of populated token i ("bench-token-<i>"); its length. */
int bench_token_id(uint64_t i, char *buf, size_t cap);

/*
 * Fill a store with entries revoked tokens 0..entries-1 (exp a day after
 * now), batch_len per commit, using batch (batch_len entries) as scratch:
 * entries merged per second, or -1 on error.
 */
double bench_populate(crdt_store *s, crdt_keyer *k, uint64_t entries,
    int64_t now, crdt_entry *batch, uint64_t batch_len);

/* entries keys to look up: half populated, half absent, in random order. */
crdt_key *bench_lookup_keys(crdt_keyer *k, uint64_t entries, revokd_rng *rng);

/*
 * Raw mdb_get of keys[0..n) in one snapshot of s, the floor of a lookup:
 * per second; *hits found.
 */
double bench_mdb_get_round(crdt_store *s, const crdt_key *keys, uint64_t n,
    uint64_t *hits);

/* The suites. Each returns a process exit status. */
int bench_store(const bench_opts *o);
int bench_lag(const bench_opts *o);
int bench_ingest(const bench_opts *o);
int bench_reader(const bench_opts *o);
int bench_query(const bench_opts *o);
int bench_repair(const bench_opts *o);
int bench_scale(const bench_opts *o);
int bench_hostile(const bench_opts *o);

#endif /* BENCH_H */
