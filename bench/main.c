/*
 * revokd-bench: measures revokd. One suite per run; results as a table or,
 * with --json, one JSON object per line.
 */
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench/bench.h"
#include "common/revokd.h"

static const struct bench_suite {
	const char *name;
	int (*run)(const bench_opts *o);
	const char *what;
} bench_suites[] = {
	{ "store", bench_store,
	    "crdt store: lookups vs raw mdb_get, batched merges, bytes/entry" },
	{ "lag", bench_lag,
	    "3 agents, mTLS: --rate revocations/s, ack to visibility" },
	{ "reader", bench_reader,
	    "librevoke's direct reader: checks/s on one thread" },
	{ "query", bench_query,
	    "query socket checks vs redis SISMEMBER vs socket ping-pong" },
	{ "ingest", bench_ingest,
	    "3 agents, mTLS: import --entries into one, replicated to two" },
	{ "repair", bench_repair,
	    "revokd-sim partition-heal: repair bytes vs the raw difference" },
	{ "scale", bench_scale,
	    "1 agent, 10M entries: restart to serving, RSS, bytes/entry" },
	{ "hostile", bench_hostile,
	    "hostile query clients: a good client's latency, agent memory" },
};

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: revokd-bench SUITE [--json] [--entries N] [--rounds N]\n"
	    "                    [--seed S] [--dir DIR] [--batch N] "
	    "[--no-sync]\n"
	    "                    [--rate N] [--seconds N] [--hits PCT]\n"
	    "\n"
	    "Measures revokd and prints the figures, one JSON object per line\n"
	    "with --json: {\"bench\", \"metric\", \"value\", \"unit\"}.\n"
	    "\n"
	    "suites:\n");
	for (size_t i = 0; i < sizeof(bench_suites) / sizeof(bench_suites[0]);
	     i++)
		fprintf(f, "  %-8s %s\n", bench_suites[i].name,
		    bench_suites[i].what);
	fprintf(f,
	    "\n"
	    "options:\n"
	    "  --json        JSON lines instead of a table\n"
	    "  --entries N   state size (default 1000000; scale: 10000000)\n"
	    "  --rounds N    repetitions, medians reported (default 3)\n"
	    "  --seed S      seed of the random keys (default 1)\n"
	    "  --dir DIR     scratch directory (default $TMPDIR or /tmp)\n"
	    "  --batch N     entries per write transaction (default 1000)\n"
	    "  --no-sync     commit without fsync, to isolate the CPU cost\n"
	    "  --rate N      lag: revocations per second (default 10000)\n"
	    "  --seconds N   lag: how long to send (default 10)\n"
	    "                query: seconds per run (default 2)\n"
	    "                hostile: seconds per phase (default 2)\n"
	    "  --hits PCT    query: percent of checks of revoked ids "
	    "(default 50)\n"
	    "  --help        this text\n"
	    "  --version     the version\n");
}

static int
parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s == '\0' || *s == '-')
		return -1;
	v = strtoull(s, &end, 10);
	if (*end != '\0')
		return -1;
	*out = v;
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "entries", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "seed", required_argument, NULL, 's' },
		{ "dir", required_argument, NULL, 'd' },
		{ "batch", required_argument, NULL, 'b' },
		{ "no-sync", no_argument, NULL, 'S' },
		{ "rate", required_argument, NULL, 'R' },
		{ "seconds", required_argument, NULL, 'T' },
		{ "hits", required_argument, NULL, 'H' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	bench_opts o = { .entries = 1000000,
		.rounds = 3,
		.seed = 1,
		.batch = 1000,
		.hits = 50 };
	uint64_t rounds = o.rounds;
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			o.json = true;
			break;
		case 'n':
			if (parse_u64(optarg, &o.entries) != 0 ||
			    o.entries == 0) {
				fprintf(stderr,
				    "revokd-bench: --entries: "
				    "want a positive integer, got "
				    "'%s'\n",
				    optarg);
				return 2;
			}
			o.entries_set = true;
			break;
		case 'r':
			if (parse_u64(optarg, &rounds) != 0 || rounds == 0 ||
			    rounds > 100) {
				fprintf(stderr,
				    "revokd-bench: --rounds: want "
				    "1 to 100, got '%s'\n",
				    optarg);
				return 2;
			}
			o.rounds = (unsigned)rounds;
			break;
		case 's':
			if (parse_u64(optarg, &o.seed) != 0) {
				fprintf(stderr,
				    "revokd-bench: --seed: want an "
				    "integer, got '%s'\n",
				    optarg);
				return 2;
			}
			break;
		case 'd':
			o.dir = optarg;
			break;
		case 'b':
			if (parse_u64(optarg, &o.batch) != 0 || o.batch == 0 ||
			    o.batch > 1000000) {
				fprintf(stderr,
				    "revokd-bench: --batch: want 1 "
				    "to 1000000, got '%s'\n",
				    optarg);
				return 2;
			}
			break;
		case 'S':
			o.no_sync = true;
			break;
		case 'H':
			if (parse_u64(optarg, &o.hits) != 0 || o.hits > 100) {
				fprintf(stderr,
				    "revokd-bench: --hits: want 0 to 100, "
				    "got '%s'\n",
				    optarg);
				return 2;
			}
			break;
		case 'R':
		case 'T':
			if (parse_u64(optarg,
			        c == 'R' ? &o.rate : &o.seconds) != 0 ||
			    (c == 'R' ? o.rate : o.seconds) == 0) {
				fprintf(stderr,
				    "revokd-bench: --%s: want a "
				    "positive integer, got '%s'\n",
				    c == 'R' ? "rate" : "seconds", optarg);
				return 2;
			}
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("revokd-bench %s\n", REVOKD_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "revokd-bench: name one suite (see --help)\n");
		return 2;
	}
	for (size_t i = 0; i < sizeof(bench_suites) / sizeof(bench_suites[0]);
	     i++)
		if (strcmp(argv[optind], bench_suites[i].name) == 0)
			return bench_suites[i].run(&o);
	fprintf(stderr, "revokd-bench: unknown suite '%s' (see --help)\n",
	    argv[optind]);
	return 2;
}

/* ------------------------------------------------------------------------ */
/* Shared helpers                                                           */
/* ------------------------------------------------------------------------ */

double
bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void
bench_emit(const bench_opts *o, const char *suite, const char *metric,
    double value, const char *unit)
{
	if (o->json)
		printf("{\"bench\":\"%s\",\"metric\":\"%s\",\"value\":%.6g,"
		       "\"unit\":\"%s\"}\n",
		    suite, metric, value, unit);
	else
		printf("%-8s %-32s %14.6g %s\n", suite, metric, value, unit);
	fflush(stdout);
}

int
bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double
bench_median(double *v, unsigned n)
{
	qsort(v, n, sizeof(*v), bench_cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

char *
bench_mkdtemp(const bench_opts *o)
{
	const char *base = o->dir ? o->dir : getenv("TMPDIR");
	char *path;

	if (asprintf(&path, "%s/revokd-bench.XXXXXX", base ? base : "/tmp") <
	        0 ||
	    mkdtemp(path) == NULL) {
		perror("revokd-bench: scratch directory");
		exit(1);
	}
	return path;
}

static int
bench__rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

void
bench_rmdir(char *dir)
{
	if (dir == NULL)
		return;
	nftw(dir, bench__rm, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

uint64_t
bench_rss_anon(void)
{
	return bench_proc_status(0, "RssAnon");
}

uint64_t
bench_proc_status(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t len = strlen(field);
	uint64_t kb = 0;
	FILE *f;

	if (pid == 0)
		snprintf(path, sizeof(path), "/proc/self/status");
	else
		snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, field, len) == 0 && line[len] == ':' &&
		    sscanf(line + len + 1, "%" SCNu64, &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}
