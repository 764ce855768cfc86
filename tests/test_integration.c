/*
 * test_integration.c: real revokd agents on loopback (bench/cluster.h):
 * replication between three regions, restarts after SIGTERM and kill -9,
 * configuration errors, and the data dir lock. The hostile inputs (TLS
 * clients that must be refused, bad local frames) are in
 * test_integration_hostile.c.
 *
 * Every test makes its own cluster in a fresh temporary directory and the
 * teardown stops every agent still running with SIGTERM, then fails the test
 * when an agent did not exit 0 or its log holds a sanitizer report: under
 * REVOKD_SANITIZE this is an ASan/UBSan run of the agents too. Every wait
 * polls with a deadline; the deadlines allow for agents built with ASan.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/cluster.h"

/* Deadlines, generous for sanitizer builds on two cores. */
#define READY_MS 30000   /* agents connected and synced */
#define VISIBLE_MS 15000 /* a revocation reaching another region */
#define RUN_MS 15000     /* a revokd that must exit on its own */

#define VALID REVOKD__LOCAL__VERDICT__VALID
#define REVOKED REVOKD__LOCAL__VERDICT__REVOKED_TOKEN

/* Writes made while a region is down, and acknowledged before a kill. */
#define WHILE_DOWN 40
#define ACK_BURST 300

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */
/* ------------------------------------------------------------------------ */

static int
setup(void **state)
{
	cluster *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return -1;
	*state = c;
	return 0;
}

/* Stop every agent, then fail on a bad exit or a sanitizer report. */
static int
teardown(void **state)
{
	cluster *c = *state;
	char why[1024];
	bool ok = true;

	if (c->n > 0 && !(ok = cluster_shutdown(c, why, sizeof(why))))
		print_error("agent trouble: %s\n", why);
	cluster_free(c);
	free(c);
	return ok ? 0 : -1;
}

/* Start node i, saying why when it does not start. */
static void
start(cluster *c, unsigned i)
{
	if (!cluster_start(c, i)) {
		cluster_print_log(c, i);
		fail_msg("%s did not start", c->node[i].name);
	}
}

/* Start every node not running; wait until each has all others connected. */
static void
start_all(cluster *c)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->node[i].pid <= 0)
			start(c, i);
	for (unsigned i = 0; i < c->n; i++)
		if (!cluster_wait_ready(c, i, READY_MS)) {
			cluster_print_log(c, i);
			fail_msg("%s not ready", c->node[i].name);
		}
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                 */
/* ------------------------------------------------------------------------ */

/*
 * Revoke jti at node i waiting for peers (all, or `peers` of them): the
 * response, asserted to be a WriteResult.
 */
static Revokd__Local__Response *
revoke_waiting(cluster *c, unsigned i, const char *jti, bool all,
    uint32_t peers)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__RevokeToken q = REVOKD__LOCAL__REVOKE_TOKEN__INIT;
	Revokd__Local__Wait w = REVOKD__LOCAL__WAIT__INIT;
	Revokd__Local__Response *resp = NULL;

	q.jti.data = (uint8_t *)jti;
	q.jti.len = strlen(jti);
	w.all = all;
	w.peers = peers;
	w.timeout_ms = 10000;
	q.wait = &w;
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_REVOKE_TOKEN;
	req.revoke_token = &q;
	assert_int_equal(cluster_call(c->node[i].admin, &req, &resp),
	    REVOKD_OK);
	assert_int_equal(resp->body_case, REVOKD__LOCAL__RESPONSE__BODY_WRITE);
	return resp;
}

/* resp confirms the write in every region but i's, each once. */
static void
assert_confirmed_by_others(cluster *c, unsigned i,
    const Revokd__Local__Response *resp)
{
	const Revokd__Local__WriteResult *w = resp->write;

	assert_false(w->timed_out);
	assert_int_not_equal(w->batch, 0);
	assert_int_equal(w->n_confirmations, c->n - 1);
	for (unsigned j = 0; j < c->n; j++) {
		unsigned seen = 0;

		for (size_t k = 0; k < w->n_confirmations; k++)
			seen += strcmp(w->confirmations[k]->region,
			            c->node[j].name) == 0;
		assert_int_equal(seen, j == i ? 0 : 1);
	}
}

/* A RevokeToken request for jti, without waiting. */
static void
revoke_request(Revokd__Local__Request *req, Revokd__Local__RevokeToken *q,
    const char *jti)
{
	revokd__local__request__init(req);
	revokd__local__revoke_token__init(q);
	q->jti.data = (uint8_t *)jti;
	q->jti.len = strlen(jti);
	req->body_case = REVOKD__LOCAL__REQUEST__BODY_REVOKE_TOKEN;
	req->revoke_token = q;
}

/* The exit status of a stopped agent was a clean exit 0. */
static void
assert_clean_exit(int status)
{
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ------------------------------------------------------------------------ */
/* Convergence                                                              */
/* ------------------------------------------------------------------------ */

/*
 * A revocation made in each region is answered REVOKED_TOKEN in the other
 * two; a write waiting for every peer is confirmed by both others, and is
 * visible there by the time the confirmation arrives.
 */
static void
test_three_regions_converge(void **state)
{
	cluster *c = *state;
	char jti[CLUSTER_MAX][64];

	assert_int_equal(cluster_new(3, NULL, c), REVOKD_OK);
	start_all(c);
	for (unsigned i = 0; i < c->n; i++) {
		snprintf(jti[i], sizeof(jti[i]), "eager-from-%s",
		    c->node[i].name);
		for (unsigned j = 0; j < c->n; j++)
			assert_int_equal(cluster_check_jti(c, j, jti[i]),
			    VALID);
		assert_int_not_equal(cluster_revoke(c, i, jti[i], 0, NULL), 0);
		/* Acknowledged means committed: visible here at once. */
		assert_int_equal(cluster_check_jti(c, i, jti[i]), REVOKED);
	}
	for (unsigned i = 0; i < c->n; i++)
		for (unsigned j = 0; j < c->n; j++)
			assert_true(cluster_wait_verdict(c, j, jti[i], REVOKED,
			    VISIBLE_MS));

	/* Wait for peers: `peers = 2` from alpha and gamma, `all` from beta. */
	for (unsigned i = 0; i < c->n; i++) {
		Revokd__Local__Response *resp;

		snprintf(jti[i], sizeof(jti[i]), "confirmed-from-%s",
		    c->node[i].name);
		resp = revoke_waiting(c, i, jti[i], i == 1, i == 1 ? 0 : 2);
		assert_confirmed_by_others(c, i, resp);
		revokd__local__response__free_unpacked(resp, NULL);
		for (unsigned j = 0; j < c->n; j++)
			assert_int_equal(cluster_check_jti(c, j, jti[i]),
			    REVOKED);
	}
}

/* ------------------------------------------------------------------------ */
/* Restarts                                                                 */
/* ------------------------------------------------------------------------ */

/* The first verdict node i gives on jti once it answers at all. */
static int
first_answer(cluster *c, unsigned i, const char *jti)
{
	uint64_t end = cluster_now_ms() + READY_MS;
	int verdict;

	while ((verdict = cluster_check_jti(c, i, jti)) < 0 &&
	       cluster_now_ms() < end)
		usleep(2000);
	return verdict;
}

/*
 * gamma is stopped (SIGTERM, or SIGKILL when hard) while alpha and beta
 * take revocations, then restarted: it still holds what it had, catches up
 * on everything it missed, and its new writes reach both others again.
 */
static void
restart_catches_up(cluster *c, bool hard)
{
	const unsigned g = 2;
	char jti[64];
	Revokd__Local__Response *resp;
	uint64_t end;

	assert_int_equal(cluster_new(3, NULL, c), REVOKD_OK);
	start_all(c);
	resp = revoke_waiting(c, g, "own-before-stop", true, 0);
	assert_confirmed_by_others(c, g, resp);
	revokd__local__response__free_unpacked(resp, NULL);
	if (hard)
		cluster_kill(c, g);
	else
		assert_clean_exit(cluster_stop(c, g));

	for (unsigned k = 0; k < WHILE_DOWN; k++) {
		snprintf(jti, sizeof(jti), "while-down-%u", k);
		assert_int_not_equal(cluster_revoke(c, k % 2, jti, 0, NULL), 0);
	}
	/* Both live regions have them, so the only one missing is gamma. */
	assert_true(
	    cluster_wait_verdict(c, 0, "while-down-1", REVOKED, VISIBLE_MS));
	assert_true(
	    cluster_wait_verdict(c, 1, "while-down-0", REVOKED, VISIBLE_MS));

	start(c, g);
	/* Its very first answer already has its own data. */
	assert_int_equal(first_answer(c, g, "own-before-stop"), REVOKED);
	end = cluster_now_ms() + READY_MS;
	for (unsigned k = 0; k < WHILE_DOWN; k++) {
		uint64_t now = cluster_now_ms();

		snprintf(jti, sizeof(jti), "while-down-%u", k);
		assert_true(cluster_wait_verdict(c, g, jti, REVOKED,
		    now < end ? (unsigned)(end - now) : 0));
	}
	for (unsigned i = 0; i < c->n; i++)
		assert_true(cluster_wait_ready(c, i, READY_MS));
	resp = revoke_waiting(c, g, "own-after-restart", true, 0);
	assert_confirmed_by_others(c, g, resp);
	revokd__local__response__free_unpacked(resp, NULL);
}

static void
test_restart_after_sigterm(void **state)
{
	restart_catches_up(*state, false);
}

static void
test_restart_after_kill9(void **state)
{
	restart_catches_up(*state, true);
}

/*
 * gamma alone (its peers stopped, so nothing can come back from them)
 * takes a burst of pipelined revocations and is killed -9 the moment the
 * last of ACK_BURST/2 acknowledgements is read, with more still in flight.
 * After a restart, still alone, every acknowledged one is revoked there;
 * once the peers return they get them too.
 */
static void
test_acknowledged_survives_kill9(void **state)
{
	cluster *c = *state;
	const unsigned g = 2;
	unsigned acked = 0;
	char jti[64];
	int fd;

	assert_int_equal(cluster_new(3, NULL, c), REVOKD_OK);
	start_all(c);
	assert_clean_exit(cluster_stop(c, 0));
	assert_clean_exit(cluster_stop(c, 1));

	assert_true((fd = cluster_open(c->node[g].admin)) >= 0);
	for (unsigned k = 0; k < ACK_BURST; k++) {
		Revokd__Local__Request req;
		Revokd__Local__RevokeToken q;

		snprintf(jti, sizeof(jti), "acked-%u", k);
		revoke_request(&req, &q, jti);
		assert_true(cluster_send(fd, &req));
	}
	while (acked < ACK_BURST / 2) {
		Revokd__Local__Response *resp = NULL;

		assert_int_equal(cluster_recv(fd, 10000, &resp), REVOKD_OK);
		assert_int_equal(resp->body_case,
		    REVOKD__LOCAL__RESPONSE__BODY_WRITE);
		assert_int_not_equal(resp->write->batch, 0);
		revokd__local__response__free_unpacked(resp, NULL);
		acked++;
	}
	cluster_kill(c, g);
	close(fd);

	start(c, g);
	assert_true(cluster_wait_verdict(c, g, "acked-0", REVOKED, READY_MS));
	for (unsigned k = 0; k < acked; k++) {
		snprintf(jti, sizeof(jti), "acked-%u", k);
		assert_int_equal(cluster_check_jti(c, g, jti), REVOKED);
	}
	start_all(c);
	snprintf(jti, sizeof(jti), "acked-%u", acked - 1);
	assert_true(cluster_wait_verdict(c, 0, jti, REVOKED, VISIBLE_MS));
	assert_true(cluster_wait_verdict(c, 1, jti, REVOKED, VISIBLE_MS));
}

/* ------------------------------------------------------------------------ */
/* Configuration                                                            */
/* ------------------------------------------------------------------------ */

/* The text of a file (malloc'd, NUL-ended). */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = calloc(1, 1 << 16);
	size_t n;

	assert_non_null(f);
	assert_non_null(buf);
	n = fread(buf, 1, (1 << 16) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/*
 * Node 0's config with the line starting with `key =` replaced by
 * `replacement` (or, when key is NULL, `replacement` added at the end),
 * written to name in the cluster dir: the path into path, and the line
 * number of the replacement.
 */
static unsigned
config_variant(cluster *c, const char *key, const char *replacement,
    const char *name, char *path, size_t path_len)
{
	char *text = slurp(c->node[0].conf), *out = calloc(1, 1 << 17);
	unsigned line = 1, at = 0;
	size_t klen = key ? strlen(key) : 0, n = 0;

	assert_non_null(out);
	for (char *p = text; *p != '\0';) {
		char *nl = strchr(p, '\n');
		size_t len = nl ? (size_t)(nl - p) + 1 : strlen(p);

		if (key && strncmp(p, key, klen) == 0 && p[klen] == ' ') {
			n += (size_t)sprintf(out + n, "%s\n", replacement);
			at = line;
		} else {
			memcpy(out + n, p, len);
			n += len;
		}
		p += len;
		line++;
	}
	if (key == NULL) {
		n += (size_t)sprintf(out + n, "%s\n", replacement);
		at = line;
	}
	assert_int_not_equal(at, 0);
	assert_true(cluster_write_file(c, name, out, 0600));
	snprintf(path, path_len, "%s/%s", c->dir, name);
	free(text);
	free(out);
	return at;
}

/* Run revokd with args; the exit code, output in out. */
static int
run_revokd(const char *conf, bool check, char *out, size_t len)
{
	const char *argv[] = { cluster_revokd_path(), "--config", conf,
		check ? "--check" : NULL, NULL };

	return cluster_run(argv, out, len, RUN_MS);
}

/*
 * A refusal to start must be one line. The other checks of a test come
 * first; a refusal of more lines is noted here and fails the test at its
 * end (assert_all_one_line), so one such fault does not hide the others.
 */
static char extra_lines[8192];

static void
note_one_line(const char *what, const char *out)
{
	const char *nl = strchr(out, '\n');
	size_t n = strlen(extra_lines);

	if (nl != NULL && nl[1] == '\0')
		return;
	snprintf(extra_lines + n, sizeof(extra_lines) - n,
	    "%s: not one line:\n%s", what, out);
}

static void
assert_all_one_line(void)
{
	if (extra_lines[0] != '\0')
		print_error("%s", extra_lines);
	assert_string_equal(extra_lines, "");
}

/* revokd refuses conf, in one line naming FILE:LINE: and holding what. */
static void
assert_refused_at(const char *conf, unsigned line, const char *what)
{
	char out[4096], where[600];

	snprintf(where, sizeof(where), "%s:%u:", conf, line);
	for (int check = 0; check < 2; check++) {
		int rc = run_revokd(conf, check, out, sizeof(out));

		if (rc == 0 || strstr(out, where) == NULL ||
		    strstr(out, what) == NULL)
			print_error("revokd%s on %s: exit %d, said: %s\n",
			    check ? " --check" : "", conf, rc, out);
		assert_true(rc > 0 && rc < 128);
		assert_non_null(strstr(out, where));
		assert_non_null(strstr(out, what));
		note_one_line(conf, out);
	}
}

/* revokd refuses conf, in one line naming `what` (a file it names). */
static void
assert_refused_naming(const char *conf, const char *what)
{
	char out[4096];

	for (int check = 0; check < 2; check++) {
		int rc = run_revokd(conf, check, out, sizeof(out));

		if (rc == 0 || strstr(out, what) == NULL)
			print_error("revokd%s on %s: exit %d, said: %s\n",
			    check ? " --check" : "", conf, rc, out);
		assert_true(rc > 0 && rc < 128);
		assert_non_null(strstr(out, what));
		note_one_line(conf, out);
	}
}

/* revokd refuses to start while path has mode 0644, and says so. */
static void
assert_private_file_refused(cluster *c, const char *path)
{
	char out[4096];
	int rc;

	assert_int_equal(chmod(path, 0644), 0);
	for (int check = 0; check < 2; check++) {
		rc = run_revokd(c->node[0].conf, check, out, sizeof(out));
		if (rc == 0 || strstr(out, path) == NULL ||
		    strstr(out, "0644") == NULL)
			print_error(
			    "revokd%s with %s 0644: exit %d, said: %s\n",
			    check ? " --check" : "", path, rc, out);
		assert_true(rc > 0 && rc < 128);
		assert_non_null(strstr(out, path));
		assert_non_null(strstr(out, "0644"));
		note_one_line(path, out);
	}
	assert_int_equal(chmod(path, 0600), 0);
}

/*
 * Bad values, unknown and duplicate keys name their file and line; a
 * missing certificate is named; a secret or a key readable by others is
 * refused naming the file and its mode; the good configuration passes
 * --check and starts.
 */
static void
test_config_errors(void **state)
{
	cluster *c = *state;
	char path[600], out[4096];
	unsigned line;

	extra_lines[0] = '\0';
	assert_int_equal(cluster_new(1, NULL, c), REVOKD_OK);
	assert_int_equal(run_revokd(c->node[0].conf, true, out, sizeof(out)),
	    0);

	line = config_variant(c, "region_id", "region_id = banana", "bad1.conf",
	    path, sizeof(path));
	assert_refused_at(path, line, "region_id");
	line = config_variant(c, "region_id", "region_id = 70000", "bad2.conf",
	    path, sizeof(path));
	assert_refused_at(path, line, "region_id");
	line = config_variant(c, NULL, "colour = blue", "bad3.conf", path,
	    sizeof(path));
	assert_refused_at(path, line, "colour");
	line = config_variant(c, "cluster", "cluster = test\ncluster = again",
	    "bad4.conf", path, sizeof(path));
	assert_refused_at(path, line + 1, "cluster");

	config_variant(c, "cert", "cert = /nonexistent/alpha.pem", "bad5.conf",
	    path, sizeof(path));
	assert_refused_naming(path, "/nonexistent/alpha.pem");

	snprintf(path, sizeof(path), "%s/pki/cluster.secret", c->dir);
	assert_private_file_refused(c, path);
	snprintf(path, sizeof(path), "%s/pki/%s.key", c->dir, c->node[0].name);
	assert_private_file_refused(c, path);

	/* Nothing was left behind that stops the good one. */
	start_all(c);
	assert_int_equal(cluster_check_jti(c, 0, "anything"), VALID);
	assert_all_one_line();
}

/* ------------------------------------------------------------------------ */
/* The data dir lock                                                        */
/* ------------------------------------------------------------------------ */

/*
 * A second agent on a running agent's data dir (its own sockets and ports)
 * exits non-zero with one line saying the data dir is locked, and leaves
 * the first one serving.
 */
static void
test_data_dir_locked(void **state)
{
	cluster *c = *state;
	char text[4096], path[600], out[4096], sock[600];
	struct stat st;
	int rc;

	extra_lines[0] = '\0';
	assert_int_equal(cluster_new(1, NULL, c), REVOKD_OK);
	start_all(c);
	assert_int_not_equal(cluster_revoke(c, 0, "first-agent", 0, NULL), 0);

	snprintf(sock, sizeof(sock), "%s/second-q.sock", c->dir);
	snprintf(text, sizeof(text),
	    "[agent]\nregion = %s\nregion_id = %u\ncluster = test\n"
	    "data_dir = %s/data\nsecret_file = %s/pki/cluster.secret\n"
	    "query_socket = %s\nadmin_socket = %s/second-a.sock\n"
	    "metrics = 127.0.0.1:%u\n\n"
	    "[tls]\nlisten = tls+tcp://127.0.0.1:%u\nca = %s/pki/ca.pem\n"
	    "cert = %s/pki/%s.pem\nkey = %s/pki/%s.key\n",
	    c->node[0].name, c->node[0].id, c->node[0].dir, c->dir, sock,
	    c->dir, cluster_free_port(), cluster_free_port(), c->dir, c->dir,
	    c->node[0].name, c->dir, c->node[0].name);
	assert_true(cluster_write_file(c, "second.conf", text, 0600));
	snprintf(path, sizeof(path), "%s/second.conf", c->dir);

	rc = run_revokd(path, false, out, sizeof(out));
	if (rc <= 0 || strstr(out, "locked") == NULL)
		print_error("second revokd: exit %d, said: %s\n", rc, out);
	assert_true(rc > 0 && rc < 128);
	assert_non_null(strstr(out, "locked"));
	assert_non_null(strstr(out, c->node[0].dir));
	note_one_line("second agent", out);
	assert_int_not_equal(stat(sock, &st), 0);

	assert_int_equal(cluster_check_jti(c, 0, "first-agent"), REVOKED);
	assert_true(cluster_wait_ready(c, 0, READY_MS));
	assert_all_one_line();
}

/*
 * Dump pages through everything, each answer within max_message: with the
 * smallest max_message, a page of 10,000 entries would not fit, so pages
 * end early with `more` set, and paging on `more` sees every key once.
 */
static void
test_dump_pages_fit(void **state)
{
	enum { ITEMS = 4000 };
	cluster *c = *state;
	cluster_options o = {
		.extra_limits = "max_message = 65536\nclient_output = 65540"
	};
	Revokd__Local__ImportItem items[ITEMS], *itemp[ITEMS];
	Revokd__Local__Import imp = REVOKD__LOCAL__IMPORT__INIT;
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Dump dump = REVOKD__LOCAL__DUMP__INIT;
	Revokd__Local__Response *resp;
	static char ids[ITEMS][24];
	uint8_t after[16], prev[16];
	size_t total = 0, pages = 0;
	bool more = true;

	assert_int_equal(cluster_new(1, &o, c), REVOKD_OK);
	start_all(c);
	for (int i = 0; i < ITEMS; i++) {
		revokd__local__import_item__init(&items[i]);
		snprintf(ids[i], sizeof(ids[i]), "dump-%d", i);
		items[i].kind = (char *)"jti";
		items[i].id.data = (uint8_t *)ids[i];
		items[i].id.len = strlen(ids[i]);
		itemp[i] = &items[i];
	}
	/* Two imports: a request must fit max_message too. */
	for (int half = 0; half < 2; half++) {
		imp.items = itemp + half * (ITEMS / 2);
		imp.n_items = ITEMS / 2;
		req.body_case = REVOKD__LOCAL__REQUEST__BODY_IMPORT;
		req.import = &imp;
		assert_int_equal(cluster_call(c->node[0].admin, &req, &resp),
		    REVOKD_OK);
		assert_int_equal(resp->body_case,
		    REVOKD__LOCAL__RESPONSE__BODY_WRITE);
		revokd__local__response__free_unpacked(resp, NULL);
	}

	dump.limit = 10000;
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_DUMP;
	req.dump = &dump;
	while (more) {
		Revokd__Local__DumpResult *d;

		assert_true(pages++ < 100);
		assert_int_equal(cluster_call(c->node[0].admin, &req, &resp),
		    REVOKD_OK);
		assert_int_equal(resp->body_case,
		    REVOKD__LOCAL__RESPONSE__BODY_DUMP);
		assert_true(
		    revokd__local__response__get_packed_size(resp) <= 65536);
		d = resp->dump;
		for (size_t i = 0; i < d->n_entries; i++) {
			assert_int_equal(d->entries[i]->key.len, 16);
			memcpy(after, d->entries[i]->key.data, 16);
			if (total > 0) /* ascending: nothing twice */
				assert_true(memcmp(prev, after, 16) < 0);
			memcpy(prev, after, 16);
			total++;
		}
		more = d->more;
		assert_true(d->n_entries > 0 || !more);
		revokd__local__response__free_unpacked(resp, NULL);
		dump.after.data = after;
		dump.after.len = 16;
	}
	assert_int_equal(total, ITEMS);
	assert_true(pages > 2); /* 10,000 entries would not fit one page */
}

/*
 * A data dir made under one cluster secret, and an agent started with
 * another: its keys would not match any id, so it refuses to start, and
 * says why.
 */
static void
test_data_dir_other_secret(void **state)
{
	cluster *c = *state;
	char path[600], out[4096];
	uint8_t other[32];
	FILE *f;
	int rc;

	extra_lines[0] = '\0';
	assert_int_equal(cluster_new(1, NULL, c), REVOKD_OK);
	start_all(c);
	assert_int_not_equal(cluster_revoke(c, 0, "made-under-one", 0, NULL),
	    0);
	assert_clean_exit(cluster_stop(c, 0));

	for (size_t i = 0; i < sizeof(other); i++)
		other[i] = (uint8_t)(i * 7 + 1);
	snprintf(path, sizeof(path), "%s/pki/cluster.secret", c->dir);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(other, 1, sizeof(other), f), sizeof(other));
	fclose(f);
	rc = run_revokd(c->node[0].conf, false, out, sizeof(out));
	if (rc <= 0 || strstr(out, "another cluster secret") == NULL)
		print_error("revokd with another secret: exit %d, said: %s\n",
		    rc, out);
	assert_true(rc > 0 && rc < 128);
	assert_non_null(strstr(out, "another cluster secret"));
	note_one_line("another secret", out);
	assert_all_one_line();
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_three_regions_converge,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_after_sigterm,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_restart_after_kill9, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(
		    test_acknowledged_survives_kill9, setup, teardown),
		cmocka_unit_test_setup_teardown(test_config_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_data_dir_locked, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_dump_pages_fit, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_data_dir_other_secret,
		    setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
