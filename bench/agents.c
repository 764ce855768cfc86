/*
 * agents.c: suites over real agents on loopback (cluster.h), with mutual
 * TLS between them.
 *
 * lag: region alpha takes revocations at a fixed rate (--rate, default
 * 10,000/s) on one pipelined admin connection; one in every 20 is a probe:
 * from its acknowledgement on, watchers read beta's and gamma's stores
 * (read-only LMDB, every 250 us: the figures' resolution) until it is
 * revoked there. The figure is the time from acknowledgement to
 * visibility, p50 and p99 per region. Requests leave in bursts of what is
 * due each millisecond.
 *
 *   lag_ack_p50_ms, lag_ack_p99_ms      admin request to acknowledgement
 *   lag_p50_ms, lag_p99_ms, lag_max_ms  acknowledgement to visibility
 *   lag_offered_per_s, lag_acked_per_s  the rate asked for and achieved
 *
 * ingest: --entries revocations imported into alpha (Import requests of
 * 10,000, eight in flight), replicated to beta and gamma.
 *
 *   ingest_per_s        items acknowledged by alpha per second
 *   replicated_per_s    items per second until beta and gamma hold all
 */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/cluster.h"
#include "crdt/crdt.h"

#define PROBE_EVERY 20
#define LAG_POLL_US 250
#define MAX_PROBES 100000

/* ------------------------------------------------------------------------ */
/* A pipelined connection                                                   */
/* ------------------------------------------------------------------------ */

static int
conn_open(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (strlen(path) >= sizeof(sa.sun_path)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

static bool
conn_full(int fd, void *buf, size_t len, bool writing)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = writing ? write(fd, p, len) : read(fd, p, len);

		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static bool
conn_send(int fd, const Revokd__Local__Request *req)
{
	size_t len = revokd__local__request__get_packed_size(req);
	uint8_t stack[256],
	    *buf = len + 4 <= sizeof(stack) ? stack : malloc(len + 4);
	bool ok;

	if (buf == NULL)
		return false;
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	revokd__local__request__pack(req, buf + 4);
	ok = conn_full(fd, buf, len + 4, true);
	if (buf != stack)
		free(buf);
	return ok;
}

static Revokd__Local__Response *
conn_recv(int fd)
{
	uint8_t hdr[4], stack[256], *buf = stack;
	uint32_t n;
	Revokd__Local__Response *r = NULL;

	if (!conn_full(fd, hdr, 4, false))
		return NULL;
	n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	if (n > sizeof(stack) && (buf = malloc(n)) == NULL)
		return NULL;
	if (conn_full(fd, buf, n, false))
		r = revokd__local__response__unpack(NULL, n, buf);
	if (buf != stack)
		free(buf);
	return r;
}

/* ------------------------------------------------------------------------ */
/* lag                                                                      */
/* ------------------------------------------------------------------------ */

struct probe {
	char jti[32];
	double sent, acked; /* monotonic s; acked 0 until acknowledged */
	double seen[2];     /* visible at beta, gamma; 0 until */
};

struct lag_run {
	cluster *c;
	int admin;
	uint64_t total; /* revocations to send */
	double rate;
	double *sent_at; /* per revocation */
	double *ack_ms;  /* per revocation: request to ack */
	struct probe *probes;
	uint64_t n_probes;
	volatile uint64_t acked; /* acknowledgements read so far */
	volatile bool done;
	pthread_mutex_t mu;
};

static void
lag_jti(uint64_t i, char *buf, size_t len)
{
	snprintf(buf, len, "lag-%" PRIu64, i);
}

/*
 * Send what is due, once per millisecond: pacing every request with its own
 * sleep would cost the benchmark a core of the machine it measures.
 */
static void *
lag_sender(void *arg)
{
	struct lag_run *r = arg;
	double t0 = bench_now();
	uint64_t i = 0;

	while (i < r->total) {
		uint64_t due = (uint64_t)((bench_now() - t0) * r->rate) + 1;

		for (; i < due && i < r->total; i++) {
			Revokd__Local__Request req =
			    REVOKD__LOCAL__REQUEST__INIT;
			Revokd__Local__RevokeToken q =
			    REVOKD__LOCAL__REVOKE_TOKEN__INIT;
			char jti[32];

			lag_jti(i, jti, sizeof(jti));
			q.jti.data = (uint8_t *)jti;
			q.jti.len = strlen(jti);
			req.body_case =
			    REVOKD__LOCAL__REQUEST__BODY_REVOKE_TOKEN;
			req.revoke_token = &q;
			r->sent_at[i] = bench_now();
			if (!conn_send(r->admin, &req))
				return NULL;
		}
		usleep(1000);
	}
	return NULL;
}

static void *
lag_acker(void *arg)
{
	struct lag_run *r = arg;

	for (uint64_t i = 0; i < r->total; i++) {
		Revokd__Local__Response *resp = conn_recv(r->admin);
		double now = bench_now();

		if (resp == NULL)
			break;
		revokd__local__response__free_unpacked(resp, NULL);
		r->ack_ms[i] = (now - r->sent_at[i]) * 1000;
		if (i % PROBE_EVERY == 0 && i / PROBE_EVERY < MAX_PROBES) {
			struct probe *p = &r->probes[i / PROBE_EVERY];

			pthread_mutex_lock(&r->mu);
			lag_jti(i, p->jti, sizeof(p->jti));
			p->acked = now;
			pthread_mutex_unlock(&r->mu);
		}
		r->acked = i + 1;
	}
	r->done = true;
	return NULL;
}

/*
 * A watcher reads the peer's store directly (read-only LMDB, as librevoke's
 * direct reader does): polling it costs the agents under test nothing.
 */
struct lag_watch {
	struct lag_run *r;
	int region; /* 0: beta, 1: gamma */
	crdt_store *store;
	crdt_reader *reader;
	crdt_keyer *keyer;
};

/* Look up every acknowledged, not yet seen probe in one snapshot. */
static bool
lag_poll(struct lag_watch *w, uint64_t *next)
{
	struct lag_run *r = w->r;
	uint64_t top = r->acked / PROBE_EVERY + 1;
	revokd_err err = crdt_reader_begin(w->reader);
	double now;

	/* The agent grew its map: adopt it (this thread's only snapshot). */
	if (err == REVOKD_EMAPRESIZED &&
	    crdt_store_remap(w->store) == REVOKD_OK)
		err = crdt_reader_begin(w->reader);
	if (err != REVOKD_OK)
		return false;
	now = bench_now();
	for (uint64_t k = *next; k < top && k < r->n_probes; k++) {
		struct probe *p = &r->probes[k];
		crdt_key key;
		crdt_entry e;

		if (p->acked == 0 || p->seen[w->region])
			continue;
		crdt_key_derive(w->keyer, CRDT_KIND_JTI, p->jti, strlen(p->jti),
		    &key);
		if (crdt_reader_get(w->reader, &key, &e) == REVOKD_OK &&
		    crdt_token_revoked(&e.u.token))
			p->seen[w->region] = now;
	}
	crdt_reader_end(w->reader);
	while (*next < r->n_probes && r->probes[*next].seen[w->region])
		(*next)++;
	return true;
}

/* Open node i's store read-only, and a keyer of the cluster secret. */
static bool
lag_watch_open(struct lag_watch *w, cluster *c, unsigned i)
{
	crdt_store_options so = { .read_only = true };
	char path[600];
	uint8_t secret[CRDT_SECRET_LEN];
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "%s/pki/cluster.secret", c->dir);
	if ((f = fopen(path, "rb")) == NULL)
		return false;
	ok = fread(secret, 1, sizeof(secret), f) == sizeof(secret);
	fclose(f);
	snprintf(path, sizeof(path), "%s/data", c->node[i].dir);
	return ok &&
	       crdt_keyer_new(secret, sizeof(secret), &w->keyer) == REVOKD_OK &&
	       crdt_store_open(path, &so, &w->store) == REVOKD_OK &&
	       crdt_reader_new(w->store, &w->reader) == REVOKD_OK;
}

static void
lag_watch_close(struct lag_watch *w)
{
	crdt_reader_free(w->reader);
	crdt_store_close(w->store);
	crdt_keyer_free(w->keyer);
}

static void *
lag_watcher(void *arg)
{
	struct lag_watch *w = arg;
	uint64_t next = 0;
	double deadline = 0;

	while (!w->r->done || next < w->r->n_probes) {
		if (!lag_poll(w, &next))
			break;
		if (w->r->done && deadline == 0)
			deadline = bench_now() + 10;
		if (deadline != 0 && bench_now() > deadline)
			break;
		usleep(LAG_POLL_US);
	}
	return NULL;
}

static void
lag_report(const bench_opts *o, struct lag_run *r, double elapsed)
{
	uint64_t n = r->n_probes;
	double *v = calloc(n + 1, sizeof(double));
	static const char *const names[] = { "beta", "gamma" };
	char metric[64];

	for (int region = 0; region < 2 && v; region++) {
		uint64_t k = 0, missing = 0;

		for (uint64_t i = 0; i < n; i++) {
			if (r->probes[i].seen[region] == 0) {
				missing++;
				continue;
			}
			v[k++] =
			    (r->probes[i].seen[region] - r->probes[i].acked) *
			    1000;
		}
		if (k == 0)
			continue;
		qsort(v, k, sizeof(double), bench_cmp_double);
		snprintf(metric, sizeof(metric), "lag_p50_ms_%s",
		    names[region]);
		bench_emit(o, "lag", metric, v[k / 2], "ms");
		snprintf(metric, sizeof(metric), "lag_p99_ms_%s",
		    names[region]);
		bench_emit(o, "lag", metric, v[(k * 99) / 100], "ms");
		snprintf(metric, sizeof(metric), "lag_max_ms_%s",
		    names[region]);
		bench_emit(o, "lag", metric, v[k - 1], "ms");
		snprintf(metric, sizeof(metric), "lag_probes_%s",
		    names[region]);
		bench_emit(o, "lag", metric, (double)k, "probes");
		if (missing > 0) {
			snprintf(metric, sizeof(metric), "lag_missing_%s",
			    names[region]);
			bench_emit(o, "lag", metric, (double)missing, "probes");
		}
	}
	free(v);
	v = calloc(r->acked + 1, sizeof(double));
	if (v != NULL && r->acked > 0) {
		memcpy(v, r->ack_ms, r->acked * sizeof(double));
		qsort(v, r->acked, sizeof(double), bench_cmp_double);
		bench_emit(o, "lag", "lag_ack_p50_ms", v[r->acked / 2], "ms");
		bench_emit(o, "lag", "lag_ack_p99_ms", v[(r->acked * 99) / 100],
		    "ms");
	}
	free(v);
	bench_emit(o, "lag", "lag_offered_per_s", r->rate, "1/s");
	bench_emit(o, "lag", "lag_acked_per_s", (double)r->acked / elapsed,
	    "1/s");
}

int
bench_lag(const bench_opts *o)
{
	static cluster c;
	struct lag_run r = { .c = &c, .rate = o->rate ? (double)o->rate : 1e4 };
	struct lag_watch w[2] = { { &r, 0, NULL, NULL, NULL },
		{ &r, 1, NULL, NULL, NULL } };
	pthread_t ts, ta, tw[2];
	double t0, elapsed;
	int rc = 1;

	r.total = (uint64_t)(r.rate * (o->seconds ? o->seconds : 10));
	r.n_probes = (r.total + PROBE_EVERY - 1) / PROBE_EVERY;
	if (r.n_probes > MAX_PROBES)
		r.n_probes = MAX_PROBES;
	r.sent_at = calloc(r.total, sizeof(double));
	r.ack_ms = calloc(r.total, sizeof(double));
	r.probes = calloc(r.n_probes, sizeof(*r.probes));
	pthread_mutex_init(&r.mu, NULL);
	if (!r.sent_at || !r.ack_ms || !r.probes ||
	    cluster_new(3, NULL, &c) != REVOKD_OK)
		goto out;
	for (unsigned i = 0; i < 3; i++)
		if (!cluster_start(&c, i))
			goto out;
	for (unsigned i = 0; i < 3; i++)
		if (!cluster_wait_ready(&c, i, 10000))
			goto out;
	r.admin = conn_open(c.node[0].admin);
	if (r.admin < 0 || !lag_watch_open(&w[0], &c, 1) ||
	    !lag_watch_open(&w[1], &c, 2))
		goto out;
	t0 = bench_now();
	pthread_create(&ts, NULL, lag_sender, &r);
	pthread_create(&ta, NULL, lag_acker, &r);
	for (int k = 0; k < 2; k++)
		pthread_create(&tw[k], NULL, lag_watcher, &w[k]);
	pthread_join(ts, NULL);
	pthread_join(ta, NULL);
	elapsed = bench_now() - t0;
	for (int k = 0; k < 2; k++)
		pthread_join(tw[k], NULL);
	lag_report(o, &r, elapsed);
	rc = 0;
out:
	if (rc != 0)
		fprintf(stderr, "revokd-bench: lag: could not run the cluster "
		                "(logs kept with REVOKD_KEEP_CLUSTER=1)\n");
	lag_watch_close(&w[0]);
	lag_watch_close(&w[1]);
	cluster_free(&c);
	free(r.sent_at);
	free(r.ack_ms);
	free(r.probes);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* ingest                                                                   */
/* ------------------------------------------------------------------------ */

#define INGEST_CHUNK 10000
#define INGEST_IN_FLIGHT 8

struct ingest_run {
	int admin;
	uint64_t total;
	volatile uint64_t sent, acked; /* requests */
	volatile bool failed;
};

static void *
ingest_sender(void *arg)
{
	struct ingest_run *r = arg;
	Revokd__Local__ImportItem *items = calloc(INGEST_CHUNK, sizeof(*items));
	Revokd__Local__ImportItem **ptrs = calloc(INGEST_CHUNK, sizeof(*ptrs));
	char(*ids)[32] = calloc(INGEST_CHUNK, sizeof(*ids));
	uint64_t next = 0;

	while (items && ptrs && ids && next < r->total && !r->failed) {
		Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
		Revokd__Local__Import imp = REVOKD__LOCAL__IMPORT__INIT;
		size_t n = 0;

		while (r->sent - r->acked >= INGEST_IN_FLIGHT && !r->failed)
			usleep(50);
		for (; n < INGEST_CHUNK && next < r->total; n++, next++) {
			revokd__local__import_item__init(&items[n]);
			snprintf(ids[n], sizeof(ids[n]), "ing-%" PRIu64, next);
			items[n].kind = (char *)"jti";
			items[n].id.data = (uint8_t *)ids[n];
			items[n].id.len = strlen(ids[n]);
			ptrs[n] = &items[n];
		}
		imp.items = ptrs;
		imp.n_items = n;
		req.body_case = REVOKD__LOCAL__REQUEST__BODY_IMPORT;
		req.import = &imp;
		if (!conn_send(r->admin, &req))
			r->failed = true;
		r->sent++;
	}
	free(items);
	free(ptrs);
	free(ids);
	return NULL;
}

static void *
ingest_acker(void *arg)
{
	struct ingest_run *r = arg;
	uint64_t requests = (r->total + INGEST_CHUNK - 1) / INGEST_CHUNK;

	while (r->acked < requests && !r->failed) {
		Revokd__Local__Response *resp = conn_recv(r->admin);

		if (resp == NULL ||
		    resp->body_case != REVOKD__LOCAL__RESPONSE__BODY_WRITE)
			r->failed = true;
		if (resp != NULL)
			revokd__local__response__free_unpacked(resp, NULL);
		r->acked++;
	}
	return NULL;
}

/* Entries node i holds, from Status; 0 on error. */
static uint64_t
ingest_entries(cluster *c, unsigned i)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Status q = REVOKD__LOCAL__STATUS__INIT;
	Revokd__Local__Response *resp;
	uint64_t n = 0;

	req.body_case = REVOKD__LOCAL__REQUEST__BODY_STATUS;
	req.status = &q;
	if (cluster_call(c->node[i].admin, &req, &resp) != REVOKD_OK)
		return 0;
	if (resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_STATUS)
		n = resp->status->entries;
	revokd__local__response__free_unpacked(resp, NULL);
	return n;
}

int
bench_ingest(const bench_opts *o)
{
	static cluster c;
	struct ingest_run r = { .total = o->entries };
	pthread_t ts, ta;
	double t0, t_ack, t_all = 0;
	int rc = 1;

	if (cluster_new(3, NULL, &c) != REVOKD_OK)
		goto out;
	for (unsigned i = 0; i < 3; i++)
		if (!cluster_start(&c, i))
			goto out;
	for (unsigned i = 0; i < 3; i++)
		if (!cluster_wait_ready(&c, i, 10000))
			goto out;
	if ((r.admin = conn_open(c.node[0].admin)) < 0)
		goto out;
	t0 = bench_now();
	pthread_create(&ts, NULL, ingest_sender, &r);
	pthread_create(&ta, NULL, ingest_acker, &r);
	pthread_join(ts, NULL);
	pthread_join(ta, NULL);
	t_ack = bench_now() - t0;
	if (r.failed)
		goto out;
	for (int k = 0; k < 12000; k++) {
		if (ingest_entries(&c, 1) >= r.total &&
		    ingest_entries(&c, 2) >= r.total) {
			t_all = bench_now() - t0;
			break;
		}
		usleep(10000);
	}
	bench_emit(o, "ingest", "items", (double)r.total, "items");
	bench_emit(o, "ingest", "ingest_per_s", (double)r.total / t_ack, "1/s");
	if (t_all > 0)
		bench_emit(o, "ingest", "replicated_per_s",
		    (double)r.total / t_all, "1/s");
	else
		fprintf(stderr, "revokd-bench: ingest: peers did not catch "
		                "up within 120 s\n");
	rc = t_all > 0 ? 0 : 1;
out:
	if (rc != 0 && t_all == 0 && !r.failed)
		fprintf(stderr,
		    "revokd-bench: ingest: could not run the "
		    "cluster (logs kept with REVOKD_KEEP_CLUSTER=1)\n");
	cluster_free(&c);
	return rc;
}
