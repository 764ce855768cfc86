/*
 * scale.c: the "scale" suite: one agent over a large store (default 10M
 * entries), against the goal of DESIGN.md: restart to serving <= 1 s, RSS
 * <= 64 MiB outside the page cache.
 *
 * The store is filled in-process, straight into the agent's data dir and
 * under the cluster's secret (an agent refuses a store bound to another),
 * without fsync per commit and synced once at the end, so that the fill
 * costs minutes, not hours, and leaves no dirty pages to be written back
 * while restarts are timed. Then the agent (real revokd, cluster.h) is
 * started and restarted.
 *
 *   populate_per_s            entries merged per second while filling
 *   populate_sync_s           the one fsync after the fill
 *   data_mdb_bytes_per_entry  data.mdb's size / entries
 *   pages_bytes_per_entry     pages in use (up to the last) x page size /
 *                             entries
 *   data_dir_bytes_per_entry  blocks on disk of every file of the data dir
 *                             (whatever the store keeps beside data.mdb) /
 *                             entries
 *   first_start_ms            spawn to the first answered check, first start
 *                             (may include one-time work)
 *   restart_p50_ms, _max_ms   the same over --rounds restarts (SIGTERM,
 *                             wait, spawn), data.mdb in the page cache
 *   rss_anon_idle_mib         the agent's RssAnon once serving
 *   rss_anon_mib, rss_file_mib  RssAnon and RssFile after CHECKS checks
 *                             (half hits, half misses), every answer checked
 *   cold_restart_ms           one more restart after data.mdb's pages were
 *                             dropped from the page cache
 *                             (POSIX_FADV_DONTNEED; binaries stay cached)
 */
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/cluster.h"
#include "crdt/crdt_int.h"

/* Entries when --entries is not given. */
#define SCALE_DEFAULT_ENTRIES 10000000

/* Entries per commit while filling, at least: the fill is not measured. */
#define SCALE_BATCH 20000

/* Checks before RSS is read, and how many are in flight on the socket. */
#define SCALE_CHECKS 100000
#define SCALE_WINDOW 64

/* The start probe's interval, and how long an agent may take to serve. */
#define SCALE_POLL_US 1000
#define SCALE_SERVE_LIMIT_S 60

/* The goals. */
#define SCALE_GOAL_RESTART_MS 1000
#define SCALE_GOAL_RSS_MIB 64

static const char *const B = "scale";

static double
scale_mib(uint64_t bytes)
{
	return (double)bytes / (1024 * 1024);
}

static void
scale_path(char *buf, size_t cap, const char *dir, const char *name)
{
	snprintf(buf, cap, "%s/%s", dir, name);
}

/* ------------------------------------------------------------------------ */
/* Filling the data dir                                                     */
/* ------------------------------------------------------------------------ */

/* A keyer of the secret the kit wrote for the cluster. */
static bool
scale_keyer(const cluster *c, crdt_keyer **out)
{
	uint8_t secret[CRDT_SECRET_LEN];
	char path[1024], err[256] = "";
	revokd_err e;

	scale_path(path, sizeof(path), c->dir, "pki/cluster.secret");
	e = revokd_secret_load(path, secret, sizeof(secret), err, sizeof(err));
	if (e == REVOKD_OK)
		e = crdt_keyer_new(secret, sizeof(secret), out);
	if (e != REVOKD_OK)
		fprintf(stderr, "revokd-bench: scale: cluster secret: %s\n",
		    err[0] ? err : revokd_strerror(e));
	return e == REVOKD_OK;
}

/* Bytes on disk of every file in dir. */
static uint64_t
scale_dir_bytes(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	uint64_t total = 0;

	while (d != NULL && (de = readdir(d)) != NULL) {
		struct stat st;

		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ==
		        0 &&
		    S_ISREG(st.st_mode))
			total += (uint64_t)st.st_blocks * 512;
	}
	if (d != NULL)
		closedir(d);
	return total;
}

/* data.mdb's size, and the pages LMDB uses, per entry. */
static void
scale_bytes(const bench_opts *o, crdt_store *s, const cluster *c, uint64_t n)
{
	char path[1024];
	struct stat st;
	MDB_envinfo info;
	MDB_stat ms;

	scale_path(path, sizeof(path), c->node[0].dir, "data/data.mdb");
	if (stat(path, &st) == 0)
		bench_emit(o, B, "data_mdb_bytes_per_entry",
		    (double)st.st_size / (double)n, "B");
	if (mdb_env_info(s->env, &info) == 0 && mdb_env_stat(s->env, &ms) == 0)
		bench_emit(o, B, "pages_bytes_per_entry",
		    (double)(info.me_last_pgno + 1) * ms.ms_psize / (double)n,
		    "B");
}

/* Merge n tokens into s, then make them durable in one fsync. */
static bool
scale_populate(const bench_opts *o, crdt_store *s, crdt_keyer *k, uint64_t n)
{
	uint64_t len = o->batch > SCALE_BATCH ? o->batch : SCALE_BATCH;
	crdt_entry *batch = calloc(len, sizeof(*batch));
	double rate = -1, t0;

	if (batch != NULL)
		rate = bench_populate(s, k, n, (int64_t)time(NULL), batch, len);
	free(batch);
	if (rate < 0)
		return false;
	bench_emit(o, B, "populate_per_s", rate, "1/s");
	/* The store was opened no_sync, for which crdt_store_sync is a no-op:
	 * force LMDB's flush. */
	t0 = bench_now();
	if (mdb_env_sync(s->env, 1) != 0)
		return false;
	bench_emit(o, B, "populate_sync_s", bench_now() - t0, "s");
	return true;
}

/* Fill node 0's data dir with n revoked tokens under the cluster secret. */
static bool
scale_fill(const bench_opts *o, const cluster *c, uint64_t n)
{
	crdt_store_options so = { .no_sync = true };
	crdt_store *s = NULL;
	crdt_keyer *k = NULL;
	char dir[1024];
	bool ok = false;

	scale_path(dir, sizeof(dir), c->node[0].dir, "data");
	if (mkdir(dir, 0750) != 0 || !scale_keyer(c, &k))
		goto out;
	if (crdt_store_open(dir, &so, &s) != REVOKD_OK ||
	    crdt_store_bind_secret(s, k) != REVOKD_OK ||
	    !scale_populate(o, s, k, n))
		goto out;
	scale_bytes(o, s, c, n);
	ok = true;
out:
	if (!ok)
		fprintf(stderr, "revokd-bench: scale: cannot fill %s\n", dir);
	crdt_store_close(s); /* the agent takes the data dir's lock */
	crdt_keyer_free(k);
	if (ok)
		bench_emit(o, B, "data_dir_bytes_per_entry",
		    (double)scale_dir_bytes(dir) / (double)n, "B");
	return ok;
}

/* ------------------------------------------------------------------------ */
/* Starting and stopping                                                    */
/* ------------------------------------------------------------------------ */

/* Polls the query socket from before the spawn until a check is answered. */
struct scale_probe {
	cluster *c;
	atomic_bool stop; /* the agent could not start: give up */
	double served;    /* bench_now() of the first answer; 0: none */
	int verdict;
};

static void *
scale_probe_main(void *arg)
{
	struct scale_probe *p = arg;
	double deadline = bench_now() + SCALE_SERVE_LIMIT_S;
	char jti[48];

	bench_token_id(0, jti, sizeof(jti));
	while (!atomic_load(&p->stop) && bench_now() < deadline) {
		int v = cluster_check_jti(p->c, 0, jti);

		if (v >= 0) {
			p->served = bench_now();
			p->verdict = v;
			break;
		}
		usleep(SCALE_POLL_US);
	}
	return NULL;
}

/*
 * Spawn the agent and time it to its first answered check: ms, or -1. The
 * probe runs on its own thread because cluster_start only returns once
 * the admin socket answers, polled every 25 ms: too coarse here.
 */
static double
scale_timed_start(cluster *c)
{
	struct scale_probe p = { .c = c };
	pthread_t t;
	bool started;
	double t0;

	atomic_init(&p.stop, false);
	if (pthread_create(&t, NULL, scale_probe_main, &p) != 0)
		return -1;
	t0 = bench_now();
	if (!(started = cluster_start(c, 0)))
		atomic_store(&p.stop, true);
	pthread_join(t, NULL);
	if (started && p.served > 0 &&
	    p.verdict == REVOKD__LOCAL__VERDICT__REVOKED_TOKEN)
		return (p.served - t0) * 1000;
	fprintf(stderr, "revokd-bench: scale: the agent %s\n",
	    !started        ? "did not start"
	    : p.served == 0 ? "did not serve in time"
	                    : "answered a check of a revoked token wrongly");
	return -1;
}

/* SIGTERM the agent; false unless it exits 0. */
static bool
scale_stop(cluster *c)
{
	int status = cluster_stop(c, 0);

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	fprintf(stderr, "revokd-bench: scale: the agent did not exit cleanly "
	                "on SIGTERM\n");
	return false;
}

/* The first start, then o->rounds restarts: their median and max. */
static bool
scale_restarts(const bench_opts *o, cluster *c)
{
	double *v = calloc(o->rounds, sizeof(*v));
	double first = v != NULL ? scale_timed_start(c) : -1;
	bool ok = first >= 0;

	for (unsigned i = 0; ok && i < o->rounds; i++)
		ok = scale_stop(c) && (v[i] = scale_timed_start(c)) >= 0;
	if (ok) {
		/* Sorts v: its last is the slowest. */
		double p50 = bench_median(v, o->rounds);

		bench_emit(o, B, "first_start_ms", first, "ms");
		bench_emit(o, B, "restarts", o->rounds, "restarts");
		bench_emit(o, B, "restart_p50_ms", p50, "ms");
		bench_emit(o, B, "restart_max_ms", v[o->rounds - 1], "ms");
		bench_emit(o, B, "restart_goal_met",
		    p50 <= SCALE_GOAL_RESTART_MS, "bool");
	}
	free(v);
	return ok;
}

/* Drop data.mdb's pages from the page cache, then time one more start. */
static bool
scale_cold_restart(const bench_opts *o, cluster *c)
{
	char path[1024];
	double ms;
	int fd;

	if (!scale_stop(c))
		return false;
	scale_path(path, sizeof(path), c->node[0].dir, "data/data.mdb");
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return false;
	/* Only clean pages that nobody maps go: write back what the agent
	 * wrote since the fill first. */
	if (fdatasync(fd) != 0 ||
	    posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) != 0) {
		close(fd);
		return false;
	}
	close(fd);
	if ((ms = scale_timed_start(c)) < 0)
		return false;
	bench_emit(o, B, "cold_restart_ms", ms, "ms");
	return true;
}

/* ------------------------------------------------------------------------ */
/* Serving                                                                  */
/* ------------------------------------------------------------------------ */

/* Send check i: even ones a populated token, odd ones an unknown one. */
static bool
scale_send_check(int fd, revokd_rng *rng, uint64_t n, uint64_t i)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Check q = REVOKD__LOCAL__CHECK__INIT;
	char jti[48];
	uint64_t pick = revokd_rng_below(rng, n) + (i % 2 ? n : 0);

	q.jti.data = (uint8_t *)jti;
	q.jti.len = (size_t)bench_token_id(pick, jti, sizeof(jti));
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_CHECK;
	req.check = &q;
	return cluster_send(fd, &req);
}

/* Read the answer to check i: 0 right, 1 wrong, -1 none. */
static int
scale_recv_check(int fd, uint64_t i)
{
	int want = i % 2 ? REVOKD__LOCAL__VERDICT__VALID
	                 : REVOKD__LOCAL__VERDICT__REVOKED_TOKEN;
	Revokd__Local__Response *resp;
	int wrong;

	if (cluster_recv(fd, 10000, &resp) != REVOKD_OK)
		return -1;
	wrong = resp->body_case != REVOKD__LOCAL__RESPONSE__BODY_CHECK ||
	        (int)resp->check->verdict != want;
	revokd__local__response__free_unpacked(resp, NULL);
	return wrong;
}

/* SCALE_CHECKS checks, SCALE_WINDOW in flight: wrong answers, or -1. */
static int64_t
scale_checks(const char *path, uint64_t n, revokd_rng *rng)
{
	int fd = cluster_open(path);
	uint64_t sent = 0, got = 0;
	int64_t wrong = 0;

	while (fd >= 0 && got < SCALE_CHECKS) {
		int r;

		for (; sent < SCALE_CHECKS && sent - got < SCALE_WINDOW; sent++)
			if (!scale_send_check(fd, rng, n, sent))
				break;
		if ((r = scale_recv_check(fd, got++)) < 0)
			break;
		wrong += r;
	}
	if (fd >= 0)
		close(fd);
	return got == SCALE_CHECKS ? wrong : -1;
}

/* The running agent's memory, idle and after the checks (all right). */
static bool
scale_serve(const bench_opts *o, cluster *c, uint64_t n)
{
	pid_t pid = c->node[0].pid;
	revokd_rng rng;
	uint64_t anon;
	int64_t wrong;

	revokd_rng_seed(&rng, o->seed);
	bench_emit(o, B, "rss_anon_idle_mib",
	    scale_mib(bench_proc_status(pid, "RssAnon")), "MiB");
	if ((wrong = scale_checks(c->node[0].query, n, &rng)) != 0) {
		fprintf(stderr, "revokd-bench: scale: %s\n",
		    wrong < 0 ? "the checks were not all answered"
		              : "some checks were answered wrongly");
		return false;
	}
	anon = bench_proc_status(pid, "RssAnon");
	bench_emit(o, B, "checks", SCALE_CHECKS, "checks");
	bench_emit(o, B, "rss_anon_mib", scale_mib(anon), "MiB");
	bench_emit(o, B, "rss_file_mib",
	    scale_mib(bench_proc_status(pid, "RssFile")), "MiB");
	bench_emit(o, B, "rss_goal_met", scale_mib(anon) <= SCALE_GOAL_RSS_MIB,
	    "bool");
	return anon > 0;
}

int
bench_scale(const bench_opts *o)
{
	static cluster c;
	uint64_t n = o->entries_set ? o->entries : SCALE_DEFAULT_ENTRIES;
	int rc = 1;

	/* A write to an agent that died must fail, not kill us before
	 * cluster_free stops what we started. */
	signal(SIGPIPE, SIG_IGN);
	/* The kit makes its directory under TMPDIR: --dir goes there. */
	if (o->dir != NULL && setenv("TMPDIR", o->dir, 1) != 0)
		return 1;
	if (cluster_new(1, NULL, &c) != REVOKD_OK) {
		fprintf(stderr, "revokd-bench: scale: cannot make a cluster\n");
		goto out;
	}
	bench_emit(o, B, "entries", (double)n, "entries");
	if (scale_fill(o, &c, n) && scale_restarts(o, &c) &&
	    scale_serve(o, &c, n) && scale_cold_restart(o, &c) &&
	    scale_stop(&c))
		rc = 0;
	else if (c.node[0].log[0] != '\0')
		cluster_print_log(&c, 0);
out:
	cluster_free(&c);
	return rc;
}
