/*
 * report.c: the run's report, as one JSON object (jansson, keys in a fixed
 * order) or as a short summary for humans.
 */
#include "sim/sim.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Lag statistics                                                           */
/* ------------------------------------------------------------------------ */

static int
sim__u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

uint64_t
sim_percentile(const uint64_t *v, size_t n, double p)
{
	size_t rank;

	if (n == 0)
		return 0;
	rank = (size_t)(p / 100.0 * (double)n + 0.999999999);
	if (rank < 1)
		rank = 1;
	return v[(rank > n ? n : rank) - 1];
}

/* Percentiles of one sample set. */
typedef struct sim__lagstat {
	size_t n;
	uint64_t p50, p99, max;
} sim__lagstat;

static bool
sim__lagstat_of(const uint64_t *v, size_t n, sim__lagstat *out)
{
	uint64_t *sorted;

	memset(out, 0, sizeof(*out));
	if (n == 0)
		return true;
	if ((sorted = malloc(n * sizeof(*sorted))) == NULL)
		return false;
	memcpy(sorted, v, n * sizeof(*sorted));
	qsort(sorted, n, sizeof(*sorted), sim__u64_cmp);
	out->n = n;
	out->p50 = sim_percentile(sorted, n, 50);
	out->p99 = sim_percentile(sorted, n, 99);
	out->max = sorted[n - 1];
	free(sorted);
	return true;
}

/* Every lag sample of the run, in one array (caller frees). */
static uint64_t *
sim__all_samples(const sim *s, size_t *n)
{
	size_t total = 0, k = 0;
	uint64_t *all;

	for (unsigned r = 0; r < s->n; r++)
		for (unsigned x = 0; x < s->n; x++)
			total += s->oracle.lag[r][x].n;
	if ((all = malloc((total ? total : 1) * sizeof(*all))) == NULL)
		return NULL;
	for (unsigned r = 0; r < s->n; r++) {
		for (unsigned x = 0; x < s->n; x++) {
			const sim_lag *l = &s->oracle.lag[r][x];

			if (l->n == 0)
				continue;
			memcpy(all + k, l->v, l->n * sizeof(*all));
			k += l->n;
		}
	}
	*n = total;
	return all;
}

static double
sim__ms(uint64_t us)
{
	return (double)us / 1000.0;
}

/* convergence_ms: from the last heal to identical stores. */
static uint64_t
sim__convergence_us(const sim *s)
{
	if (!s->converged || !s->had_heal ||
	    s->converged_at_us < s->last_heal_us)
		return 0;
	return s->converged_at_us - s->last_heal_us;
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                     */
/* ------------------------------------------------------------------------ */

/* Add to obj, taking value; false (and obj still owned) on failure. */
static bool
sim__set(json_t *obj, const char *key, json_t *value)
{
	return value != NULL && json_object_set_new(obj, key, value) == 0;
}

static json_t *
sim__pairs(const sim *s)
{
	json_t *pairs = json_array();

	for (unsigned r = 0; r < s->n && pairs; r++) {
		for (unsigned x = 0; x < s->n; x++) {
			const sim_lag *l = &s->oracle.lag[r][x];
			sim__lagstat st;
			json_t *p;

			if (l->n == 0)
				continue;
			if (!sim__lagstat_of(l->v, l->n, &st) ||
			    (p = json_object()) == NULL ||
			    json_array_append_new(pairs, p) != 0) {
				json_decref(pairs);
				return NULL;
			}
			sim__set(p, "from", json_string(s->node[r].name));
			sim__set(p, "to", json_string(s->node[x].name));
			sim__set(p, "one_way_ms",
			    json_real(sim__ms(sim_one_way_us(r, x))));
			sim__set(p, "lag_p50_ms", json_real(sim__ms(st.p50)));
			sim__set(p, "lag_p99_ms", json_real(sim__ms(st.p99)));
			sim__set(p, "lag_max_ms", json_real(sim__ms(st.max)));
		}
	}
	return pairs;
}

static json_t *
sim__bytes(const sim *s)
{
	const sim_bytes *b = &s->stats.bytes;
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	sim__set(o, "delta", json_integer((json_int_t)b->delta));
	sim__set(o, "repair", json_integer((json_int_t)b->repair));
	sim__set(o, "handshake", json_integer((json_int_t)b->handshake));
	sim__set(o, "control", json_integer((json_int_t)b->control));
	sim__set(o, "total",
	    json_integer((
	        json_int_t)(b->delta + b->repair + b->handshake + b->control)));
	return o;
}

static json_t *
sim__strings(char *const *v, size_t n)
{
	json_t *a = json_array();

	for (size_t i = 0; i < n && a; i++)
		json_array_append_new(a, json_string(v[i]));
	return a;
}

static json_t *
sim__regions(const sim *s)
{
	json_t *a = json_array();

	for (unsigned i = 0; i < s->n && a; i++)
		json_array_append_new(a, json_string(s->node[i].name));
	return a;
}

static json_t *
sim__connections(const sim *s)
{
	json_t *o = json_object();

	if (o == NULL)
		return NULL;
	sim__set(o, "established", json_integer(s->stats.connects));
	sim__set(o, "closed_timeout", json_integer(s->stats.closed_timeout));
	sim__set(o, "closed_on_error", json_integer(s->stats.closed_error));
	sim__set(o, "closed_restart", json_integer(s->stats.closed_restart));
	return o;
}

/* A node joined late into a preloaded cluster: bootstrap was measured. */
static bool
sim__has_joiner(const sim *s)
{
	for (unsigned i = 0; i < s->n; i++)
		if (s->cfg.joins_late[i] && s->preloaded > 0)
			return true;
	return false;
}

/* The keys after the required ones. */
static void
sim__extras(const sim *s, json_t *o)
{
	const sim_stats *st = &s->stats;
	uint64_t settle =
	    s->converged && s->converged_at_us >= s->cfg.workload_end_us
	        ? s->converged_at_us - s->cfg.workload_end_us
	        : 0;

	sim__set(o, "duration_s", json_real((double)s->cfg.duration_us / 1e6));
	sim__set(o, "sim_time_s", json_real((double)s->now / 1e6));
	sim__set(o, "ops", json_integer((json_int_t)st->ops));
	sim__set(o, "entries", json_integer((json_int_t)s->preloaded));
	sim__set(o, "settle_ms", json_real(sim__ms(settle)));
	if (sim__has_joiner(s))
		sim__set(o, "bootstrap_ms",
		    s->bootstrapped ? json_real(sim__ms(s->bootstrap_us))
		                    : json_null());
	sim__set(o, "connections_closed_on_error",
	    json_integer((json_int_t)st->closed_error));
	if (st->first_error[0] != '\0')
		sim__set(o, "first_error", json_string(st->first_error));
	sim__set(o, "connections", sim__connections(s));
	sim__set(o, "frames", json_integer((json_int_t)st->frames));
	sim__set(o, "retransmits", json_integer((json_int_t)st->retransmits));
	sim__set(o, "frames_lost", json_integer((json_int_t)st->frames_lost));
	sim__set(o, "hostile_dup", json_integer((json_int_t)st->dup));
	sim__set(o, "hostile_reordered",
	    json_integer((json_int_t)st->reordered));
	sim__set(o, "hostile_dropped", json_integer((json_int_t)st->dropped));
	sim__set(o, "recon_done", json_integer((json_int_t)st->recon_done));
	sim__set(o, "recon_aborted",
	    json_integer((json_int_t)st->recon_aborted));
	sim__set(o, "recon_limited",
	    json_integer((json_int_t)st->recon_limited));
	sim__set(o, "overflows", json_integer((json_int_t)st->overflows));
	sim__set(o, "pruned", json_integer((json_int_t)st->pruned));
	sim__set(o, "crashes", json_integer((json_int_t)st->crashes));
	sim__set(o, "events", json_integer((json_int_t)st->events));
}

static json_t *
sim__report(const sim *s)
{
	json_t *o = json_object();
	sim__lagstat all = { 0 };
	uint64_t *samples;
	size_t n = 0;

	if (o == NULL || (samples = sim__all_samples(s, &n)) == NULL) {
		json_decref(o);
		return NULL;
	}
	if (!sim__lagstat_of(samples, n, &all)) {
		free(samples);
		json_decref(o);
		return NULL;
	}
	free(samples);
	if (!sim__set(o, "scenario", json_string(s->cfg.scenario)) ||
	    !sim__set(o, "seed", json_integer((json_int_t)s->cfg.seed)) ||
	    !sim__set(o, "regions", sim__regions(s)) ||
	    !sim__set(o, "pairs", sim__pairs(s)) ||
	    !sim__set(o, "lag_p99_ms", json_real(sim__ms(all.p99))) ||
	    !sim__set(o, "converged", json_boolean(s->converged)) ||
	    !sim__set(o, "convergence_ms",
	        json_real(sim__ms(sim__convergence_us(s)))) ||
	    !sim__set(o, "bytes", sim__bytes(s)) ||
	    !sim__set(o, "repair_diff_bytes",
	        json_integer((json_int_t)s->repair_diff_bytes)) ||
	    !sim__set(o, "violations",
	        json_integer((json_int_t)s->oracle.violations)) ||
	    !sim__set(o, "violation_list",
	        sim__strings(s->oracle.list, s->oracle.n_list))) {
		json_decref(o);
		return NULL;
	}
	sim__extras(s, o);
	return o;
}

char *
sim_report_json(const sim *s)
{
	json_t *o = sim__report(s);
	char *text;

	if (o == NULL)
		return NULL;
	text = json_dumps(o,
	    JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12));
	json_decref(o);
	return text;
}

/* ------------------------------------------------------------------------ */
/* Human summary                                                            */
/* ------------------------------------------------------------------------ */

static void
sim__human_pairs(const sim *s, FILE *f)
{
	fprintf(f, "  %-15s %-15s %8s %9s %9s %9s\n", "from", "to", "one-way",
	    "lag p50", "lag p99", "lag max");
	for (unsigned r = 0; r < s->n; r++) {
		for (unsigned x = 0; x < s->n; x++) {
			const sim_lag *l = &s->oracle.lag[r][x];
			sim__lagstat st;

			if (l->n == 0 || !sim__lagstat_of(l->v, l->n, &st))
				continue;
			fprintf(f, "  %-15s %-15s %8.1f %9.1f %9.1f %9.1f\n",
			    s->node[r].name, s->node[x].name,
			    sim__ms(sim_one_way_us(r, x)), sim__ms(st.p50),
			    sim__ms(st.p99), sim__ms(st.max));
		}
	}
}

void
sim_report_human(const sim *s, FILE *f)
{
	const sim_bytes *b = &s->stats.bytes;

	fprintf(f, "revokd-sim %s: %u regions, seed %llu, %.1f s, %llu ops",
	    s->cfg.scenario, s->n, (unsigned long long)s->cfg.seed,
	    (double)s->cfg.duration_us / 1e6, (unsigned long long)s->stats.ops);
	if (s->preloaded > 0)
		fprintf(f, ", %llu entries", (unsigned long long)s->preloaded);
	fprintf(f, "\n");
	sim__human_pairs(s, f);
	if (s->converged)
		fprintf(f, "converged %.1f ms after %s\n",
		    sim__ms(s->had_heal
		                ? sim__convergence_us(s)
		                : s->converged_at_us - s->cfg.workload_end_us),
		    s->had_heal ? "the last heal" : "the workload stopped");
	else
		fprintf(f, "NOT converged\n");
	if (s->bootstrapped)
		fprintf(f,
		    "bootstrap: %.1f ms from join to holding the "
		    "preloaded entries\n",
		    sim__ms(s->bootstrap_us));
	fprintf(f,
	    "bytes: delta %llu, repair %llu, handshake %llu, control %llu; "
	    "repair_diff_bytes %llu\n",
	    (unsigned long long)b->delta, (unsigned long long)b->repair,
	    (unsigned long long)b->handshake, (unsigned long long)b->control,
	    (unsigned long long)s->repair_diff_bytes);
	if (s->stats.closed_error > 0)
		fprintf(f, "connections closed on error: %llu (first: %s)\n",
		    (unsigned long long)s->stats.closed_error,
		    s->stats.first_error);
	fprintf(f, "violations: %llu\n",
	    (unsigned long long)s->oracle.violations);
	for (size_t i = 0; i < s->oracle.n_list; i++)
		fprintf(f, "  %s\n", s->oracle.list[i]);
}
