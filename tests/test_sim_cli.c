/*
 * test_sim_cli.c: the revokd-sim command: bad usage (exit 2, one line on
 * stderr), --help and --version, byte-identical reports for the same
 * arguments, and the proof that the invariant checks can fail: the same
 * simulator built over the deliberately broken merge of revokd_crdt_broken
 * must report violations.
 *
 * usage: test_sim_cli PATH-TO-revokd-sim PATH-TO-revokd-sim-broken
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/revokd.h"
#include "testutil.h"

static const char *sim_path, *broken_path;

/* ------------------------------------------------------------------------ */
/* Usage                                                                    */
/* ------------------------------------------------------------------------ */

static void
expect_usage_error(char *const argv[], const char *mentions)
{
	tu_result r = tu_run(NULL, argv);

	assert_int_equal(r.status, 2);
	assert_int_equal(tu_lines(r.err), 1);
	assert_non_null(strstr(r.err, "revokd-sim: "));
	assert_non_null(strstr(r.err, mentions));
	assert_string_equal(r.out, "");
	tu_result_free(&r);
}

static void
test_bad_usage(void **state)
{
	char *p = (char *)sim_path;

	(void)state;
	expect_usage_error((char *[]){ p, "--scenario", "nope", NULL }, "nope");
	expect_usage_error((char *[]){ p, "--regions", "8", NULL },
	    "--regions");
	expect_usage_error((char *[]){ p, "--regions", "1", NULL },
	    "--regions");
	expect_usage_error((char *[]){ p, "--seed", "-3", NULL }, "--seed");
	expect_usage_error((char *[]){ p, "--duration", "0", NULL },
	    "--duration");
	expect_usage_error((char *[]){ p, "--loss", "abc", NULL }, "--loss");
	expect_usage_error((char *[]){ p, "--bogus", NULL }, "--bogus");
	expect_usage_error((char *[]){ p, "stray", NULL }, "stray");
	expect_usage_error((char *[]){ p, "--scenario", "partial-partition",
	                       "--regions", "2", NULL },
	    "partial-partition");
	expect_usage_error(
	    (char *[]){ p, "--scenario", "steady", "--diff", "10", NULL },
	    "--diff");
	expect_usage_error(
	    (char *[]){ p, "--chaos", "2", "--scenario", "steady", NULL },
	    "--chaos");
}

static void
test_help_version(void **state)
{
	char *p = (char *)sim_path;
	tu_result r;

	(void)state;
	r = tu_run(NULL, (char *[]){ p, "--help", NULL });
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, "partition-heal"));
	assert_non_null(strstr(r.out, "--chaos"));
	tu_result_free(&r);
	r = tu_run(NULL, (char *[]){ p, "--version", NULL });
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.out, REVOKD_VERSION));
	tu_result_free(&r);
}

/* ------------------------------------------------------------------------ */
/* Reports                                                                  */
/* ------------------------------------------------------------------------ */

/* The report of a --json run, parsed; status into *status. */
static json_t *
report(char *const argv[], int *status, char **text)
{
	tu_result r = tu_run(NULL, argv);
	json_error_t jerr;
	json_t *j = json_loads(r.out, 0, &jerr);

	assert_non_null(j);
	*status = r.status;
	*text = r.out;
	free(r.err);
	return j;
}

static void
test_report_keys(void **state)
{
	static const char *const keys[] = { "scenario", "seed", "regions",
		"pairs", "lag_p99_ms", "converged", "convergence_ms", "bytes",
		"repair_diff_bytes", "violations", "violation_list" };
	char *p = (char *)sim_path, *text;
	int status;
	json_t *j = report((char *[]){ p, "--scenario", "partition-heal",
	                       "--duration", "9", "--json", NULL },
	    &status, &text);
	const char *key;
	json_t *value, *pair;
	size_t i = 0;

	(void)state;
	assert_int_equal(status, 0);
	json_object_foreach(j, key, value)
	{
		if (i < sizeof(keys) / sizeof(keys[0]))
			assert_string_equal(key, keys[i]);
		i++;
	}
	assert_true(i >= sizeof(keys) / sizeof(keys[0]));
	assert_int_equal(json_array_size(json_object_get(j, "regions")), 3);
	assert_int_equal(json_array_size(json_object_get(j, "pairs")), 6);
	pair = json_array_get(json_object_get(j, "pairs"), 0);
	assert_non_null(json_object_get(pair, "lag_p99_ms"));
	assert_true(json_is_true(json_object_get(j, "converged")));
	assert_true(json_real_value(json_object_get(j, "convergence_ms")) > 0);
	assert_non_null(
	    json_object_get(json_object_get(j, "bytes"), "handshake"));
	json_decref(j);
	free(text);
}

/* Same arguments, same bytes; another seed, another report. */
static void
test_deterministic(void **state)
{
	char *p = (char *)sim_path, *a, *b, *c;
	int status;
	json_t *ja, *jb, *jc;

	(void)state;
	ja = report((char *[]){ p, "--scenario", "crash-restart", "--seed", "3",
	                "--duration", "9", "--json", NULL },
	    &status, &a);
	assert_int_equal(status, 0);
	jb = report((char *[]){ p, "--scenario", "crash-restart", "--seed", "3",
	                "--duration", "9", "--json", NULL },
	    &status, &b);
	jc = report((char *[]){ p, "--scenario", "crash-restart", "--seed", "4",
	                "--duration", "9", "--json", NULL },
	    &status, &c);
	assert_string_equal(a, b);
	assert_string_not_equal(a, c);
	json_decref(ja);
	json_decref(jb);
	json_decref(jc);
	free(a);
	free(b);
	free(c);
}

/* The checks can fail: a merge that drops restores is caught. */
static void
test_broken_merge_caught(void **state)
{
	char *p = (char *)broken_path, *text;
	int status;
	json_t *j = report((char *[]){ p, "--scenario", "steady", "--duration",
	                       "10", "--json", NULL },
	    &status, &text);

	(void)state;
	assert_int_equal(status, 1);
	assert_true(json_integer_value(json_object_get(j, "violations")) > 0);
	assert_true(json_array_size(json_object_get(j, "violation_list")) > 0);
	json_decref(j);
	free(text);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_usage),
		cmocka_unit_test(test_help_version),
		cmocka_unit_test(test_report_keys),
		cmocka_unit_test(test_deterministic),
		cmocka_unit_test(test_broken_merge_caught),
	};

	if (argc != 3) {
		fprintf(stderr, "usage: test_sim_cli REVOKD-SIM BROKEN\n");
		return 2;
	}
	sim_path = argv[1];
	broken_path = argv[2];
	return cmocka_run_group_tests(tests, NULL, NULL);
}
