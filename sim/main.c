/*
 * revokd-sim: runs revokd's replication engines over a simulated network,
 * one named scenario or many random chaos schedules, and reports lag,
 * convergence, bytes and invariant violations. Deterministic: the same
 * arguments give the same report, byte for byte.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim/sim.h"

/* Chaos runs last between half of this and this, by default. */
#define SIM__CHAOS_MAX_US (40 * SIM_S)

/* What the command line asked for. */
typedef struct sim__opts {
	sim_config cfg;
	bool json;
	bool scenario_given, regions_given, duration_given, loss_given;
	bool rate_given;
	uint64_t chaos; /* runs; 0: a single scenario */
} sim__opts;

/* The run in progress, for the signal handler's cleanup. */
static sim *volatile sim__current;

static void
sim__on_signal(int sig)
{
	sim_rmdir_on_signal(sim__current);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Remove the run's stores when interrupted or killed politely. */
static void
sim__catch_signals(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP, SIGPIPE };

	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		signal(sigs[i], sim__on_signal);
}

static void
sim__usage(FILE *f)
{
	fprintf(f,
	    "usage: revokd-sim --scenario NAME [--regions N] [--seed S] "
	    "[--duration D] [--json]\n"
	    "                  [--entries N] [--diff D] [--loss P] "
	    "[--rate R] [--dir DIR] [--trace]\n"
	    "       revokd-sim --chaos N [--seed S] [--duration D] [--json]\n"
	    "                  [--rate R] [--dir DIR] [--trace]\n"
	    "\n"
	    "Runs one revokd replication engine per region over a simulated\n"
	    "network in virtual time, each with a real LMDB store, and checks\n"
	    "the invariants itself: lag, convergence after heal, no lost\n"
	    "operation, versions never decrease, correct final values "
	    "(restored\n"
	    "tokens stay restored unless revoked again), staleness never\n"
	    "under-stated. The same arguments give the same report.\n"
	    "\n"
	    "Faults sit in the middle third of D. The workload (Poisson, per\n"
	    "region, from 1 s on, once connections are up) stops at the last\n"
	    "heal, or at D when nothing heals; the run then goes on until\n"
	    "every store is identical (limit 120 s).\n"
	    "\n"
	    "--chaos N runs N random schedules, run i with seed S+i: 3-5\n"
	    "regions, D/2 to D seconds, full, partial, asymmetric and "
	    "flapping\n"
	    "partitions, crashes, loss up to 20%%, skew and drift, and rarely\n"
	    "duplicated, reordered or dropped frames; all healed at 80%% of\n"
	    "the run. Failing runs are printed with the command reproducing\n"
	    "them.\n"
	    "\n"
	    "scenarios:\n"
	    "  steady             no faults\n"
	    "  partition-heal     regions split in two halves, then healed\n"
	    "                     (--entries N --diff D: N entries "
	    "everywhere,\n"
	    "                     D revocations made apart, no other "
	    "workload)\n"
	    "  partial-partition  only the link region 0 - region 2 is cut\n"
	    "  asymmetric         frames 0 -> 1 are cut, one way only\n"
	    "  flapping           the 0 - 1 link goes down and up every 2 s\n"
	    "  loss               --loss P percent on every link (default 2)\n"
	    "  skew               clocks skewed by up to +-5 s; 5-20 s tokens\n"
	    "  drift              skew plus drift up to +-100 ppm\n"
	    "  crash-restart      region 1 is down for 5 s, keeps its store\n"
	    "  bootstrap          the last region joins empty at D/3 a "
	    "cluster\n"
	    "                     holding --entries (default 100000)\n"
	    "  burst              region 0 revokes 10,000 tokens within 1 s "
	    "at D/2\n"
	    "\n"
	    "options:\n"
	    "  --scenario NAME  one of the above (default steady)\n"
	    "  --regions N      2 to 7, from us-east-1, us-west-2, eu-west-1,\n"
	    "                   eu-central-1, ap-southeast-1, ap-northeast-1,\n"
	    "                   sa-east-1 (default 3)\n"
	    "  --seed S         seed of every random choice (default 1)\n"
	    "  --duration D     seconds of virtual time (default 30; with\n"
	    "                   --chaos the longest run, default 40)\n"
	    "  --entries N      entries preloaded into every store (default "
	    "0)\n"
	    "  --diff D         partition-heal: revocations made apart\n"
	    "  --loss P         frame loss in percent on every link; lost\n"
	    "                   frames are retransmitted as by TCP\n"
	    "  --rate R         operations per second per region (default 20)\n"
	    "  --dir DIR        where the run's temporary stores go\n"
	    "                   (default $TMPDIR or /tmp; removed at exit)\n"
	    "  --chaos N        N random fault schedules, run i with seed S+i\n"
	    "  --json           one JSON object instead of a summary\n"
	    "  --trace          faults, crashes and connection changes on\n"
	    "                   stderr, with their virtual times\n"
	    "  --help           this text\n"
	    "  --version        the version\n"
	    "\n"
	    "Exit status: 0 no violation, 1 violations found, 2 bad usage or\n"
	    "the simulation itself failed.\n");
}

static int
sim__bad_usage(const char *fmt, const char *arg)
{
	fprintf(stderr, "revokd-sim: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, " (see --help)\n");
	return 2;
}

/* A whole number in [lo, hi]. */
static bool
sim__parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s == '\0' || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return false;
	*out = v;
	return true;
}

/* A number in [lo, hi]. */
static bool
sim__parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	if (*s == '\0')
		return false;
	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || !(v >= lo && v <= hi))
		return false;
	*out = v;
	return true;
}

static bool
sim__known_scenario(const char *name)
{
	for (size_t i = 0; sim_scenarios[i] != NULL; i++)
		if (strcmp(sim_scenarios[i], name) == 0)
			return true;
	return false;
}

enum {
	SIM__OPT_SCENARIO = 256,
	SIM__OPT_REGIONS,
	SIM__OPT_SEED,
	SIM__OPT_DURATION,
	SIM__OPT_JSON,
	SIM__OPT_ENTRIES,
	SIM__OPT_DIFF,
	SIM__OPT_LOSS,
	SIM__OPT_RATE,
	SIM__OPT_DIR,
	SIM__OPT_CHAOS,
	SIM__OPT_TRACE,
	SIM__OPT_HELP,
	SIM__OPT_VERSION,
};

static const struct option sim__options[] = {
	{ "scenario", required_argument, NULL, SIM__OPT_SCENARIO },
	{ "regions", required_argument, NULL, SIM__OPT_REGIONS },
	{ "seed", required_argument, NULL, SIM__OPT_SEED },
	{ "duration", required_argument, NULL, SIM__OPT_DURATION },
	{ "json", no_argument, NULL, SIM__OPT_JSON },
	{ "entries", required_argument, NULL, SIM__OPT_ENTRIES },
	{ "diff", required_argument, NULL, SIM__OPT_DIFF },
	{ "loss", required_argument, NULL, SIM__OPT_LOSS },
	{ "rate", required_argument, NULL, SIM__OPT_RATE },
	{ "dir", required_argument, NULL, SIM__OPT_DIR },
	{ "chaos", required_argument, NULL, SIM__OPT_CHAOS },
	{ "trace", no_argument, NULL, SIM__OPT_TRACE },
	{ "help", no_argument, NULL, SIM__OPT_HELP },
	{ "version", no_argument, NULL, SIM__OPT_VERSION },
	{ NULL, 0, NULL, 0 },
};

/* One option into o; 0, or the exit status (-1: exit 0 after output). */
static int
sim__option(sim__opts *o, int c, const char *arg)
{
	sim_config *cfg = &o->cfg;
	uint64_t v;
	double d;

	switch (c) {
	case SIM__OPT_SCENARIO:
		if (!sim__known_scenario(arg))
			return sim__bad_usage("unknown scenario '%s'", arg);
		snprintf(cfg->scenario, sizeof(cfg->scenario), "%s", arg);
		o->scenario_given = true;
		return 0;
	case SIM__OPT_REGIONS:
		if (!sim__parse_u64(arg, 2, SIM_REGIONS, &v))
			return sim__bad_usage("--regions must be 2 to 7, not "
			                      "'%s'",
			    arg);
		cfg->regions = (unsigned)v;
		o->regions_given = true;
		return 0;
	case SIM__OPT_SEED:
		if (!sim__parse_u64(arg, 0, INT64_MAX, &cfg->seed))
			return sim__bad_usage("--seed must be a whole number "
			                      "below 2^63, not '%s'",
			    arg);
		return 0;
	case SIM__OPT_DURATION:
		if (!sim__parse_u64(arg, 1, 3600, &v))
			return sim__bad_usage("--duration must be 1 to 3600 "
			                      "seconds, not '%s'",
			    arg);
		cfg->duration_us = v * SIM_S;
		o->duration_given = true;
		return 0;
	case SIM__OPT_JSON:
		o->json = true;
		return 0;
	case SIM__OPT_ENTRIES:
		if (!sim__parse_u64(arg, 0, 20000000, &cfg->entries))
			return sim__bad_usage("--entries must be 0 to "
			                      "20000000, not '%s'",
			    arg);
		return 0;
	case SIM__OPT_DIFF:
		if (!sim__parse_u64(arg, 0, 1000000, &cfg->diff))
			return sim__bad_usage("--diff must be 0 to 1000000, "
			                      "not '%s'",
			    arg);
		return 0;
	case SIM__OPT_LOSS:
		if (!sim__parse_double(arg, 0, 90, &d))
			return sim__bad_usage("--loss must be 0 to 90 "
			                      "(percent), not '%s'",
			    arg);
		cfg->loss = d / 100;
		o->loss_given = true;
		return 0;
	case SIM__OPT_RATE:
		if (!sim__parse_double(arg, 0, 100000, &cfg->rate))
			return sim__bad_usage("--rate must be 0 to 100000 "
			                      "ops/s, not '%s'",
			    arg);
		o->rate_given = true;
		return 0;
	case SIM__OPT_DIR:
		cfg->dir = arg;
		return 0;
	case SIM__OPT_CHAOS:
		if (!sim__parse_u64(arg, 1, 100000, &o->chaos))
			return sim__bad_usage("--chaos must be 1 to 100000 "
			                      "runs, not '%s'",
			    arg);
		return 0;
	case SIM__OPT_TRACE:
		cfg->trace = true;
		return 0;
	case SIM__OPT_HELP:
		sim__usage(stdout);
		return -1;
	case SIM__OPT_VERSION:
		printf("revokd-sim %s\n", REVOKD_VERSION);
		return -1;
	default:
		return 2; /* getopt printed the problem */
	}
}

static int
sim__parse(sim__opts *o, int argc, char **argv)
{
	int c, rc;

	memset(o, 0, sizeof(*o));
	sim_config_default(&o->cfg);
	o->cfg.signal_slot = &sim__current;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "", sim__options, NULL)) != -1) {
		if (c == '?')
			return sim__bad_usage("unknown or incomplete option "
			                      "'%s'",
			    argv[optind - 1]);
		if ((rc = sim__option(o, c, optarg)) != 0)
			return rc;
	}
	if (optind < argc)
		return sim__bad_usage("unexpected argument '%s'", argv[optind]);
	if (o->chaos > 0 && (o->scenario_given || o->regions_given ||
	                        o->cfg.entries || o->cfg.diff || o->loss_given))
		return sim__bad_usage("%s", "--chaos draws its own scenario: "
		                            "drop --scenario, --regions, "
		                            "--entries, --diff and --loss");
	return 0;
}

/* ------------------------------------------------------------------------ */
/* One scenario                                                             */
/* ------------------------------------------------------------------------ */

static int
sim__one(sim__opts *o)
{
	char err[128];
	sim *s;
	revokd_err rc;
	int status;

	if (sim_scenario_setup(&o->cfg, err, sizeof(err)) != REVOKD_OK)
		return sim__bad_usage("%s", err);
	if ((rc = sim_new(&o->cfg, &s)) != REVOKD_OK) {
		fprintf(stderr, "revokd-sim: setting up the run: %s\n",
		    revokd_strerror(rc));
		return 2;
	}
	if ((rc = sim_run(s)) != REVOKD_OK) {
		fprintf(stderr, "revokd-sim: the simulation failed: %s\n",
		    revokd_strerror(rc));
		sim_free(s);
		return 2;
	}
	if (o->json) {
		char *text = sim_report_json(s);

		if (text == NULL) {
			fprintf(stderr, "revokd-sim: out of memory\n");
			sim_free(s);
			return 2;
		}
		printf("%s\n", text);
		free(text);
	} else {
		sim_report_human(s, stdout);
	}
	status = s->oracle.violations > 0 ? 1 : 0;
	sim_free(s);
	return status;
}

/* ------------------------------------------------------------------------ */
/* Chaos                                                                    */
/* ------------------------------------------------------------------------ */

/* The line for a failing chaos run, with how to reproduce it. */
static void
sim__chaos_line(const sim__opts *o, uint64_t seed, revokd_err rc, const sim *s)
{
	const char *first = rc != REVOKD_OK        ? revokd_strerror(rc)
	                    : s->oracle.n_list > 0 ? s->oracle.list[0]
	                                           : "?";

	printf("chaos seed %" PRIu64 ": %llu violations, first: %s; "
	       "reproduce: revokd-sim --chaos 1 --seed %" PRIu64,
	    seed, (unsigned long long)s->oracle.violations, first, seed);
	if (o->duration_given)
		printf(" --duration %" PRIu64,
		    (uint64_t)(o->cfg.duration_us / SIM_S));
	if (o->rate_given)
		printf(" --rate %g", o->cfg.rate);
	printf("\n");
}

/* Run chaos seed; its violations appended to failures when it fails. */
static int
sim__chaos_run(const sim__opts *o, uint64_t seed, json_t *failures,
    bool *failed)
{
	sim_config cfg = o->cfg;
	sim *s;
	revokd_err rc;

	sim_chaos_setup(&cfg, seed,
	    o->duration_given ? o->cfg.duration_us : SIM__CHAOS_MAX_US);
	if ((rc = sim_new(&cfg, &s)) != REVOKD_OK) {
		fprintf(stderr, "revokd-sim: chaos seed %" PRIu64 ": %s\n",
		    seed, revokd_strerror(rc));
		return 2;
	}
	rc = sim_run(s);
	*failed = rc != REVOKD_OK || s->oracle.violations > 0;
	if (*failed) {
		json_t *f = json_object(), *v = json_array();

		json_object_set_new(f, "seed", json_integer((json_int_t)seed));
		if (rc != REVOKD_OK)
			json_array_append_new(v,
			    json_string(revokd_strerror(rc)));
		for (size_t i = 0; i < s->oracle.n_list; i++)
			json_array_append_new(v,
			    json_string(s->oracle.list[i]));
		json_object_set_new(f, "violations", v);
		json_array_append_new(failures, f);
		if (!o->json)
			sim__chaos_line(o, seed, rc, s);
	}
	sim_free(s);
	return 0;
}

static int
sim__chaos(sim__opts *o)
{
	json_t *failures = json_array();
	uint64_t failed = 0;
	int rc = 0;

	if (failures == NULL)
		return 2;
	for (uint64_t i = 0; i < o->chaos && rc == 0; i++) {
		bool f = false;

		rc = sim__chaos_run(o, o->cfg.seed + i, failures, &f);
		failed += f;
	}
	if (o->json) {
		json_t *out = json_object();
		char *text;

		json_object_set_new(out, "runs",
		    json_integer((json_int_t)o->chaos));
		json_object_set_new(out, "failed",
		    json_integer((json_int_t)failed));
		json_object_set(out, "failures", failures);
		text = json_dumps(out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
		if (text != NULL)
			printf("%s\n", text);
		free(text);
		json_decref(out);
	} else {
		printf("chaos: %" PRIu64 " runs from seed %" PRIu64 ", %" PRIu64
		       " failed\n",
		    o->chaos, o->cfg.seed, failed);
	}
	json_decref(failures);
	return rc != 0 ? rc : failed > 0 ? 1 : 0;
}

int
main(int argc, char **argv)
{
	sim__opts o;
	int rc = sim__parse(&o, argc, argv);

	if (rc != 0)
		return rc < 0 ? 0 : rc;
	sim__catch_signals();
	return o.chaos > 0 ? sim__chaos(&o) : sim__one(&o);
}
