/*
 * librevoke_agent_fixture.c: the fixture of the tests of librevoke against
 * a real revokd: the model, probes, the writer and checker threads, the
 * cluster's setup and teardown, and comparisons of socket and reader.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <sys/wait.h>
#include <unistd.h>

#include "librevoke_agent_fixture.h"

uint64_t test_seed;

/* ------------------------------------------------------------------------ */
/* The model                                                                */
/* ------------------------------------------------------------------------ */

static uint64_t
wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A unique id of kind ('j', 's', 'u') and index, of random length. */
static void
id_make(revokd_rng *rng, char kind, unsigned index, test_id *out)
{
	static const char alnum[] = "abcdefghijklmnopqrstuvwxyz"
	                            "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:";
	char head[32];
	size_t n, tail;

	out->text = revokd_rng_below(rng, 2) == 0;
	if (out->text) {
		n = (size_t)snprintf(head, sizeof(head), "%c%u-", kind, index);
	} else {
		/* Starts with a control byte: never equal to a text id. */
		head[0] = (char)(kind & 0x1f);
		head[1] = (char)(index >> 24);
		head[2] = (char)(index >> 16);
		head[3] = (char)(index >> 8);
		head[4] = (char)index;
		n = 5;
	}
	tail = revokd_rng_below(rng, 200) == 0
	           ? ID_MAX - n
	           : (size_t)revokd_rng_below(rng, 40);
	out->len = n + tail;
	out->b = malloc(out->len + 1);
	assert_non_null(out->b);
	memcpy(out->b, head, n);
	for (size_t i = n; i < out->len; i++)
		out->b[i] =
		    out->text ? alnum[revokd_rng_below(rng, sizeof(alnum) - 1)]
		              : (char)revokd_rng_below(rng, 256);
	out->b[out->len] = '\0';
}

static void
model_free(model *m)
{
	for (unsigned i = 0; i < N_JTI; i++)
		free(m->jti[i].id.b);
	for (unsigned i = 0; i < N_SID; i++)
		free(m->sid[i].id.b);
	for (unsigned i = 0; i < N_SUB; i++)
		free(m->sub[i].id.b);
}

/* As crdt: a token issued at iat (s) is before not_before_ms. */
static bool
issued_before(int64_t iat, uint64_t not_before_ms)
{
	if (not_before_ms == 0)
		return false;
	if (iat < 0)
		return true;
	if ((uint64_t)iat > UINT64_MAX / 1000)
		return false;
	return (uint64_t)iat * 1000 < not_before_ms;
}

/* What the agent must answer: NULL models are ids it never saw. */
static revoke_answer
model_answer(const token_model *jti, const token_model *sid,
    const subject_model *sub, const revoke_query *q)
{
	revoke_answer a = { REVOKE_VALID, 0, 0 };

	if (jti != NULL && jti->revoked)
		a.verdict = REVOKE_REVOKED_TOKEN;
	else if (sid != NULL && sid->revoked)
		a.verdict = REVOKE_REVOKED_SESSION;
	if (sub == NULL)
		return a;
	a.version = sub->version;
	if (a.verdict != REVOKE_VALID)
		return a;
	if (q->has_ver && q->ver < sub->version)
		a.verdict = REVOKE_STALE_VERSION;
	else if (q->has_iat && issued_before(q->iat, sub->not_before_ms))
		a.verdict = REVOKE_REVOKED_NOT_BEFORE;
	return a;
}

/* ------------------------------------------------------------------------ */
/* Probes                                                                   */
/* ------------------------------------------------------------------------ */

/* Put a modelled id into the query: with its length, or 0 when text. */
static void
probe_id(revokd_rng *rng, const test_id *id, const char **s, size_t *len)
{
	*s = id->b;
	*len = id->text && revokd_rng_below(rng, 2) ? 0 : id->len;
}

/* An id no one wrote, in slot k of p. */
static void
probe_absent(revokd_rng *rng, probe *p, unsigned k, const char **s, size_t *len)
{
	snprintf(p->own[k], sizeof(p->own[k]), "a%c-%016" PRIx64, "jsu"[k],
	    revokd_rng_next(rng));
	*s = p->own[k];
	*len = revokd_rng_below(rng, 2) ? 0 : strlen(p->own[k]);
}

/* ver and iat, often right around the subject's version and not-before. */
static void
probe_claims(revokd_rng *rng, const subject_model *sub, revoke_query *q)
{
	uint64_t v = sub ? sub->version : revokd_rng_below(rng, 4);
	uint64_t nb = sub ? sub->not_before_ms
	                  : wall_ms() - revokd_rng_below(rng, 10000000);
	int64_t nb_s = (int64_t)(nb / 1000);
	const int64_t iats[] = { nb_s - 1, nb_s, nb_s + 1,
		(int64_t)((nb + 999) / 1000), (int64_t)(wall_ms() / 1000), 0,
		-1, INT64_MIN, INT64_MAX,
		(int64_t)revokd_rng_below(rng, 4000000000u) };
	const uint64_t vers[] = { v, v ? v - 1 : 0, v + 1, 0, UINT64_MAX,
		revokd_rng_below(rng, 8) };

	q->has_ver = revokd_rng_below(rng, 10) < 6;
	q->ver = vers[revokd_rng_below(rng, sizeof(vers) / sizeof(vers[0]))];
	q->has_iat = revokd_rng_below(rng, 10) < 6;
	q->iat = iats[revokd_rng_below(rng, sizeof(iats) / sizeof(iats[0]))];
}

/* A random check: some of jti, sid, sub, each preloaded or absent. */
void
probe_make(revokd_rng *rng, const model *m, probe *p)
{
	unsigned which = 1 + (unsigned)revokd_rng_below(rng, 7);
	const token_model *jti = NULL, *sid = NULL;
	const subject_model *sub = NULL;

	memset(p, 0, sizeof(*p));
	if (which & 1) {
		if (revokd_rng_below(rng, 10) < 7) {
			jti = &m->jti[revokd_rng_below(rng, N_JTI)];
			probe_id(rng, &jti->id, &p->q.jti, &p->q.jti_len);
		} else {
			probe_absent(rng, p, 0, &p->q.jti, &p->q.jti_len);
		}
	}
	if (which & 2) {
		if (revokd_rng_below(rng, 10) < 7) {
			sid = &m->sid[revokd_rng_below(rng, N_SID)];
			probe_id(rng, &sid->id, &p->q.sid, &p->q.sid_len);
		} else {
			probe_absent(rng, p, 1, &p->q.sid, &p->q.sid_len);
		}
	}
	if (which & 4) {
		if (revokd_rng_below(rng, 10) < 7) {
			sub = &m->sub[revokd_rng_below(rng, N_SUB)];
			probe_id(rng, &sub->id, &p->q.sub, &p->q.sub_len);
		} else {
			probe_absent(rng, p, 2, &p->q.sub, &p->q.sub_len);
		}
	}
	probe_claims(rng, sub, &p->q);
	p->want = model_answer(jti, sid, sub, &p->q);
}

/* A check of one written id (kind 'j' or 's') that must be revoked. */
void
probe_written(probe *p, char kind, const char *id)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->own[0], sizeof(p->own[0]), "%s", id);
	if (kind == 'j') {
		p->q.jti = p->own[0];
		p->want.verdict = REVOKE_REVOKED_TOKEN;
	} else {
		p->q.sid = p->own[0];
		p->want.verdict = REVOKE_REVOKED_SESSION;
	}
}

/* An id for a message: text as is, else the first bytes in hex. */
static const char *
id_show(const char *s, size_t len, char *buf, size_t cap)
{
	size_t n = s == NULL ? 0 : len ? len : strlen(s);
	bool text = true;
	size_t off = 0;

	if (n == 0)
		return "-";
	for (size_t i = 0; i < n; i++)
		text = text && s[i] >= 0x20 && s[i] < 0x7f;
	if (text) {
		snprintf(buf, cap, "\"%.*s%s\"", n > 48 ? 48 : (int)n, s,
		    n > 48 ? "..." : "");
		return buf;
	}
	off += (size_t)snprintf(buf, cap, "0x");
	for (size_t i = 0; i < n && i < 16 && off + 3 < cap; i++)
		off += (size_t)snprintf(buf + off, cap - off, "%02x",
		    (unsigned char)s[i]);
	snprintf(buf + off, cap - off, "%s (%zu bytes)", n > 16 ? "..." : "",
	    n);
	return buf;
}

static void
query_show(const revoke_query *q, char *buf, size_t cap)
{
	char a[128], b[128], c[128];

	snprintf(buf, cap,
	    "jti %s sid %s sub %s ver %s%" PRIu64 " iat %s%" PRId64,
	    id_show(q->jti, q->jti_len, a, sizeof(a)),
	    id_show(q->sid, q->sid_len, b, sizeof(b)),
	    id_show(q->sub, q->sub_len, c, sizeof(c)),
	    q->has_ver ? "" : "(none) ", q->ver, q->has_iat ? "" : "(none) ",
	    q->iat);
}

/* got gives want's verdict and version, or the test fails saying so. */
void
assert_answer(const char *who, const revoke_query *q, const revoke_answer *got,
    const revoke_answer *want)
{
	char text[640];

	if (got->verdict == want->verdict && got->version == want->version)
		return;
	query_show(q, text, sizeof(text));
	fail_msg("%s answered %s version %" PRIu64 ", expected %s version "
	         "%" PRIu64 "\n  for %s\n  (seed %" PRIu64 ")",
	    who, revoke_verdict_name(got->verdict), got->version,
	    revoke_verdict_name(want->verdict), want->version, text, test_seed);
}

/* Staleness asked socket (s1), reader (r), socket (s2), in that order. */
void
assert_staleness_order(uint64_t s1, uint64_t r, uint64_t s2)
{
	if (s1 <= r && r <= s2 + 1)
		return;
	fail_msg("staleness out of order: socket %" PRIu64 " ms, then reader "
	         "%" PRIu64 " ms, then socket %" PRIu64 " ms (seed %" PRIu64
	         ")",
	    s1, r, s2, test_seed);
}

/* ------------------------------------------------------------------------ */
/* The writer                                                               */
/* ------------------------------------------------------------------------ */

static bool
writer_call(writer *w, int fd, const Revokd__Local__Request *req,
    Revokd__Local__Response **resp)
{
	revokd_err err;

	if (!cluster_send(fd, req)) {
		snprintf(w->error, sizeof(w->error), "write %u: send failed",
		    w->writes);
		return false;
	}
	if ((err = cluster_recv(fd, 10000, resp)) != REVOKD_OK) {
		snprintf(w->error, sizeof(w->error), "write %u: %s", w->writes,
		    revokd_strerror(err));
		return false;
	}
	if ((*resp)->body_case != REVOKD__LOCAL__RESPONSE__BODY_WRITE) {
		snprintf(w->error, sizeof(w->error), "write %u: answered %s",
		    w->writes,
		    (*resp)->body_case == REVOKD__LOCAL__RESPONSE__BODY_ERROR
		        ? (*resp)->error->message
		        : "not a WriteResult");
		revokd__local__response__free_unpacked(*resp, NULL);
		return false;
	}
	return true;
}

/* An Import of WRITER_IMPORT new jtis. */
static bool
writer_import(writer *w, int fd)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Import imp = REVOKD__LOCAL__IMPORT__INIT;
	Revokd__Local__ImportItem it[WRITER_IMPORT], *itp[WRITER_IMPORT];
	Revokd__Local__Response *resp;
	char id[WRITER_IMPORT][48];
	bool ok;

	for (unsigned k = 0; k < WRITER_IMPORT; k++) {
		revokd__local__import_item__init(&it[k]);
		snprintf(id[k], sizeof(id[k]), "w%u-i-%u", w->tag,
		    w->imported + k);
		it[k].kind = "jti";
		it[k].id.data = (uint8_t *)id[k];
		it[k].id.len = strlen(id[k]);
		itp[k] = &it[k];
	}
	imp.items = itp;
	imp.n_items = WRITER_IMPORT;
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_IMPORT;
	req.import = &imp;
	if (!writer_call(w, fd, &req, &resp))
		return false;
	ok = resp->write->items == WRITER_IMPORT;
	revokd__local__response__free_unpacked(resp, NULL);
	if (!ok)
		snprintf(w->error, sizeof(w->error), "import: items not %u",
		    WRITER_IMPORT);
	w->imported += ok ? WRITER_IMPORT : 0;
	return ok;
}

/* A bump of one of the writer's subjects; the version must follow. */
static bool
writer_bump(writer *w, int fd)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__RevokeUser u = REVOKD__LOCAL__REVOKE_USER__INIT;
	Revokd__Local__Response *resp;
	unsigned k = w->writes / 4 % WRITER_SUBJECTS;
	char id[48];
	bool ok;

	snprintf(id, sizeof(id), "w%u-u-%u", w->tag, k);
	u.sub.data = (uint8_t *)id;
	u.sub.len = strlen(id);
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_REVOKE_USER;
	req.revoke_user = &u;
	if (!writer_call(w, fd, &req, &resp))
		return false;
	ok = resp->write->version == w->bumps[k] + 1;
	if (!ok)
		snprintf(w->error, sizeof(w->error),
		    "bump of %s: version %" PRIu64 ", expected %" PRIu64, id,
		    resp->write->version, w->bumps[k] + 1);
	revokd__local__response__free_unpacked(resp, NULL);
	w->bumps[k] += ok;
	return ok;
}

/* A new revoked jti or sid. */
static bool
writer_token(writer *w, int fd, bool session)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__RevokeToken t = REVOKD__LOCAL__REVOKE_TOKEN__INIT;
	Revokd__Local__RevokeSession s = REVOKD__LOCAL__REVOKE_SESSION__INIT;
	Revokd__Local__Response *resp;
	char id[48];

	snprintf(id, sizeof(id), "w%u-%c-%u", w->tag, session ? 's' : 'j',
	    session ? w->sids : w->jtis);
	if (session) {
		s.sid.data = (uint8_t *)id;
		s.sid.len = strlen(id);
		req.body_case = REVOKD__LOCAL__REQUEST__BODY_REVOKE_SESSION;
		req.revoke_session = &s;
	} else {
		t.jti.data = (uint8_t *)id;
		t.jti.len = strlen(id);
		req.body_case = REVOKD__LOCAL__REQUEST__BODY_REVOKE_TOKEN;
		req.revoke_token = &t;
	}
	if (!writer_call(w, fd, &req, &resp))
		return false;
	revokd__local__response__free_unpacked(resp, NULL);
	if (session)
		w->sids++;
	else
		w->jtis++;
	return true;
}

static void *
writer_main(void *arg)
{
	writer *w = arg;
	int fd = cluster_open(w->admin);
	bool ok = fd >= 0;

	if (!ok)
		snprintf(w->error, sizeof(w->error), "cannot connect to %s",
		    w->admin);
	while (ok && !atomic_load(&w->stop) && w->writes < WRITER_MAX &&
	       cluster_now_ms() < w->deadline_ms) {
		switch (w->writes % 4) {
		case 0:
			ok = writer_token(w, fd, false);
			break;
		case 1:
			ok = writer_token(w, fd, true);
			break;
		case 2:
			ok = writer_bump(w, fd);
			break;
		default:
			ok = w->writes % 32 == 3 ? writer_import(w, fd)
			                         : writer_token(w, fd, false);
			break;
		}
		w->writes += ok;
		usleep(WRITER_PAUSE_US); /* leave the agent time to answer */
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

void
writer_start(writer *w, const char *admin, unsigned tag)
{
	memset(w, 0, sizeof(*w));
	w->admin = admin;
	w->tag = tag;
	w->deadline_ms = cluster_now_ms() + 2 * PHASE_MS;
	atomic_init(&w->stop, false);
	assert_int_equal(pthread_create(&w->thread, NULL, writer_main, w), 0);
	w->running = true;
}

/* Stop and join the writer, if it runs. Safe to call twice. */
static void
writer_stop(writer *w)
{
	if (!w->running)
		return;
	atomic_store(&w->stop, true);
	pthread_join(w->thread, NULL);
	w->running = false;
}

/* ------------------------------------------------------------------------ */
/* Checker threads                                                          */
/* ------------------------------------------------------------------------ */

static void
checker_wrong(checker *k, const char *what, const revoke_query *q)
{
	char text[640];

	if (k->wrong++ > 0)
		return;
	if (q != NULL)
		query_show(q, text, sizeof(text));
	snprintf(k->first, sizeof(k->first), "%s for %s", what,
	    q ? text : "a version");
}

static void *
checker_main(void *arg)
{
	checker *k = arg;
	uint64_t last = 0;
	revokd_rng rng;
	probe p;

	revokd_rng_seed(&rng, k->seed);
	for (; k->done < k->max && cluster_now_ms() < k->deadline_ms &&
	       (k->done < k->min || cluster_now_ms() < k->min_until_ms ||
	           atomic_load(k->hold));
	     k->done++) {
		const subject_model *s =
		    &k->m->sub[revokd_rng_below(&rng, N_SUB)];
		uint64_t v, nb, st;
		revoke_answer a;

		probe_make(&rng, k->m, &p);
		if (revoke_reader_check(k->reader, &p.q, &a) != REVOKE_OK)
			checker_wrong(k, "check failed", &p.q);
		else if (a.verdict != p.want.verdict ||
		         a.version != p.want.version)
			checker_wrong(k, "wrong answer", &p.q);
		else if (a.staleness_ms < last)
			checker_wrong(k, "staleness went back", &p.q);
		last = a.staleness_ms;
		if (k->done % 8 != 0)
			continue;
		if (revoke_reader_version(k->reader, s->id.b, s->id.len, &v,
		        &nb, &st) != REVOKE_OK ||
		    v != s->version || nb != s->not_before_ms)
			checker_wrong(k, "wrong version", NULL);
	}
	return NULL;
}

/* Let the checkers end, and join them. Safe to call twice. */
static void
checkers_join(fixture *f)
{
	atomic_store(&f->hold, false);
	for (unsigned i = 0; i < f->n_checkers; i++)
		pthread_join(f->checkers[i].thread, NULL);
	f->n_checkers = 0;
}

/*
 * Start n threads checking through f's reader at once, each at least
 * `each` times and for at least min_ms, and while f->hold is true.
 */
void
checkers_start(fixture *f, unsigned n, unsigned each, unsigned min_ms)
{
	uint64_t t0 = cluster_now_ms();

	assert_true(n <= N_THREADS);
	memset(f->checkers, 0, sizeof(f->checkers));
	for (unsigned i = 0; i < n; i++) {
		checker *k = &f->checkers[i];

		k->reader = f->reader;
		k->m = &f->m;
		k->seed = test_seed * 31 + 1000 + i;
		k->min = each;
		k->min_until_ms = t0 + min_ms;
		k->max = 1000 * each;
		k->deadline_ms = t0 + PHASE_MS;
		k->hold = &f->hold;
		if (pthread_create(&k->thread, NULL, checker_main, k) != 0)
			break;
		f->n_checkers++;
	}
	assert_int_equal(f->n_checkers, n);
}

/* Join the checkers started (n of them): every answer must be right. */
void
checkers_finish(fixture *f, unsigned n, uint64_t t0)
{
	unsigned done = 0;

	checkers_join(f);
	for (unsigned i = 0; i < n; i++) {
		const checker *k = &f->checkers[i];

		if (k->wrong > 0)
			fail_msg("thread %u: %u wrong, the first: %s (seed "
			         "%" PRIu64 ")",
			    i, k->wrong, k->first, test_seed);
		assert_true(k->done >= k->min);
		done += k->done;
	}
	print_message("%u threads: %u checks through one reader in %" PRIu64
	              " ms\n",
	    n, done, cluster_now_ms() - t0);
}

/* n threads checking through f's reader, as checkers_start says. */
void
run_checkers(fixture *f, unsigned n, unsigned each, unsigned min_ms)
{
	uint64_t t0 = cluster_now_ms();

	checkers_start(f, n, each, min_ms);
	checkers_finish(f, n, t0);
}

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */
/* ------------------------------------------------------------------------ */

void
seed_init(void)
{
	const char *s = getenv("REVOKD_TEST_SEED");

	test_seed = s != NULL ? strtoull(s, NULL, 0)
	                      : (uint64_t)time(NULL) << 16 ^ (uint64_t)getpid();
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("seed %" PRIu64 " (REVOKD_TEST_SEED=%" PRIu64
	       " runs it again)\n",
	    test_seed, test_seed);
	fflush(stdout);
}

int
setup(void **state)
{
	fixture *f = calloc(1, sizeof(*f));

	if (f == NULL)
		return -1;
	f->probes = calloc(N_MANY, sizeof(*f->probes));
	f->queries = calloc(N_MANY, sizeof(*f->queries));
	f->answers = calloc(N_MANY, sizeof(*f->answers));
	atomic_init(&f->hold, false);
	*state = f;
	return f->probes && f->queries && f->answers ? 0 : -1;
}

/* Join the threads, close librevoke, stop every agent, check their logs. */
int
teardown(void **state)
{
	fixture *f = *state;
	char why[1024];
	bool ok = true;

	writer_stop(&f->w);
	checkers_join(f);
	/* An agent a test stopped with SIGSTOP must see the SIGTERM. */
	for (unsigned i = 0; i < f->c.n; i++)
		if (f->c.node[i].pid > 0)
			kill(f->c.node[i].pid, SIGCONT);
	revoke_client_close(f->client);
	revoke_client_close(f->quick);
	revoke_reader_close(f->reader);
	if (f->c.n > 0 && !(ok = cluster_shutdown(&f->c, why, sizeof(why))))
		print_error("agent trouble: %s\n", why);
	cluster_free(&f->c);
	model_free(&f->m);
	free(f->probes);
	free(f->queries);
	free(f->answers);
	free(f->big_q);
	free(f->big_a);
	free(f);
	return ok ? 0 : -1;
}

void
start(cluster *c, unsigned i)
{
	if (!cluster_start(c, i)) {
		cluster_print_log(c, i);
		fail_msg("%s did not start", c->node[i].name);
	}
}

void
wait_ready(cluster *c, unsigned i)
{
	if (!cluster_wait_ready(c, i, READY_MS)) {
		cluster_print_log(c, i);
		fail_msg("%s not ready", c->node[i].name);
	}
}

void
assert_clean_exit(int status)
{
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* A list of import items, pointing into the model's ids. */
typedef struct item_list {
	Revokd__Local__ImportItem v[N_JTI + N_SID + 3 * N_SUB + 1];
	Revokd__Local__ImportItem *p[N_JTI + N_SID + 3 * N_SUB + 1];
	size_t n;
} item_list;

static Revokd__Local__ImportItem *
item_add(item_list *l, const char *kind, const test_id *id)
{
	Revokd__Local__ImportItem *it = &l->v[l->n];

	revokd__local__import_item__init(it);
	it->kind = (char *)kind;
	it->id.data = (uint8_t *)id->b;
	it->id.len = id->len;
	l->p[l->n++] = it;
	return it;
}

/* A token item revoking (or restoring) m's id, with a random reason. */
static void
token_item(revokd_rng *rng, item_list *l, const char *kind, token_model *m,
    bool restore)
{
	Revokd__Local__ImportItem *it = item_add(l, kind, &m->id);

	it->restore = restore;
	it->reason = restore ? 0 : (uint32_t)revokd_rng_below(rng, 256);
	m->revoked = !restore;
}

/* A subject item: a bump, a not-before (past or a little ahead), or both. */
static void
subject_item(revokd_rng *rng, item_list *l, subject_model *m)
{
	Revokd__Local__ImportItem *it = item_add(l, "sub", &m->id);

	it->bump = revokd_rng_below(rng, 3) != 0;
	if (revokd_rng_below(rng, 2))
		it->not_before_ms =
		    wall_ms() - 20000000 + revokd_rng_below(rng, 21000000);
	if (!it->bump && it->not_before_ms == 0)
		it->bump = true;
	m->version += it->bump;
	if (it->not_before_ms > m->not_before_ms)
		m->not_before_ms = it->not_before_ms;
}

static void
import_items(fixture *f, item_list *l)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Import imp = REVOKD__LOCAL__IMPORT__INIT;
	Revokd__Local__Response *resp = NULL;

	imp.items = l->p;
	imp.n_items = l->n;
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_IMPORT;
	req.import = &imp;
	assert_int_equal(cluster_call(f->c.node[0].admin, &req, &resp),
	    REVOKD_OK);
	if (resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_ERROR)
		print_error("import refused: %s\n", resp->error->message);
	assert_int_equal(resp->body_case, REVOKD__LOCAL__RESPONSE__BODY_WRITE);
	assert_int_equal(resp->write->items, l->n);
	revokd__local__response__free_unpacked(resp, NULL);
}

/*
 * Two Imports at node 0: every jti and sid revoked and every subject's
 * first item; then restores of some, the subjects' other items, and a
 * marker, whose arrival at node 1 says the preload got there.
 */
void
preload(fixture *f)
{
	static const test_id marker = { "preload-marker", 14, true };
	token_model marker_model = { marker, false };
	item_list *l = malloc(sizeof(*l));
	revokd_rng *rng = &f->rng;
	model *m = &f->m;

	assert_non_null(l);
	for (unsigned i = 0; i < N_JTI; i++)
		id_make(rng, 'j', i, &m->jti[i].id);
	for (unsigned i = 0; i < N_SID; i++)
		id_make(rng, 's', i, &m->sid[i].id);
	for (unsigned i = 0; i < N_SUB; i++)
		id_make(rng, 'u', i, &m->sub[i].id);

	l->n = 0;
	for (unsigned i = 0; i < N_JTI; i++)
		token_item(rng, l, "jti", &m->jti[i], false);
	for (unsigned i = 0; i < N_SID; i++)
		token_item(rng, l, "sid", &m->sid[i], false);
	for (unsigned i = 0; i < N_SUB; i++)
		subject_item(rng, l, &m->sub[i]);
	import_items(f, l);

	l->n = 0;
	for (unsigned i = 0; i < N_JTI; i++)
		if (revokd_rng_below(rng, 100) < RESTORED_PCT)
			token_item(rng, l, "jti", &m->jti[i], true);
	for (unsigned i = 0; i < N_SID; i++)
		if (revokd_rng_below(rng, 100) < RESTORED_PCT)
			token_item(rng, l, "sid", &m->sid[i], true);
	for (unsigned i = 0; i < N_SUB; i++)
		subject_item(rng, l, &m->sub[revokd_rng_below(rng, N_SUB)]);
	token_item(rng, l, "jti", &marker_model, false);
	print_message("preload: %zu + %zu items\n",
	    (size_t)(N_JTI + N_SID + N_SUB), l->n);
	import_items(f, l);
	free(l);
}

/* Node 0's Status: its only peer's connection and watermark age. */
static bool
peer_status(fixture *f, bool *connected, uint64_t *watermark_age_ms)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Status q = REVOKD__LOCAL__STATUS__INIT;
	Revokd__Local__Response *resp;
	bool ok;

	req.body_case = REVOKD__LOCAL__REQUEST__BODY_STATUS;
	req.status = &q;
	if (cluster_call(f->c.node[0].admin, &req, &resp) != REVOKD_OK)
		return false;
	ok = resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_STATUS &&
	     resp->status->n_peers == 1;
	if (ok) {
		*connected = resp->status->peers[0]->connected;
		*watermark_age_ms = resp->status->peers[0]->watermark_age_ms;
	}
	revokd__local__response__free_unpacked(resp, NULL);
	return ok;
}

/*
 * Wait until node 0's peer is connected (up) or not (!up); when up, also
 * until node 0 holds a watermark of it (an agent that never had one saves
 * none). Then leave node 0 time for a save (every 50 ms).
 */
static void
wait_peer(fixture *f, bool up)
{
	uint64_t end = cluster_now_ms() + READY_MS, age = 0;
	bool connected = !up, done = false;

	while (!done && cluster_now_ms() < end) {
		done = peer_status(f, &connected, &age) && connected == up &&
		       (!up || age < READY_MS);
		if (!done)
			usleep(10000);
	}
	if (!done)
		fail_msg("node 0: peer %s, watermark age %" PRIu64
		         " ms; waited for it %s",
		    connected ? "connected" : "not connected", age,
		    up ? "connected with a watermark" : "gone");
	usleep(FREEZE_MS * 1000);
}

/* A client on node 0's query socket, a reader on its data dir. */
void
open_librevoke(fixture *f)
{
	revoke_client_options o = { .timeout_ms = CALL_MS };

	snprintf(f->data_dir, sizeof(f->data_dir), "%s/data", f->c.node[0].dir);
	snprintf(f->secret, sizeof(f->secret), "%s/pki/cluster.secret",
	    f->c.dir);
	assert_status(revoke_client_open(f->c.node[0].query, &o, &f->client),
	    REVOKE_OK);
	assert_status(revoke_reader_open(f->data_dir, f->secret, &f->reader),
	    REVOKE_OK);
}

/*
 * The fixture of most tests: two regions, node 0 preloaded, node 1
 * stopped (node 0's watermark for it frozen), a client and a reader open
 * on node 0.
 */
void
fixture_up(fixture *f, unsigned test)
{
	revokd_rng_seed(&f->rng, test_seed + test);
	assert_int_equal(cluster_new(2, NULL, &f->c), REVOKD_OK);
	start(&f->c, 0);
	start(&f->c, 1);
	wait_ready(&f->c, 0);
	wait_ready(&f->c, 1);
	preload(f);
	assert_true(cluster_wait_verdict(&f->c, 1, "preload-marker",
	    REVOKD__LOCAL__VERDICT__REVOKED_TOKEN, VISIBLE_MS));
	wait_peer(f, true);
	assert_clean_exit(cluster_stop(&f->c, 1));
	wait_peer(f, false);

	open_librevoke(f);
}

/* ------------------------------------------------------------------------ */
/* Comparisons                                                              */
/* ------------------------------------------------------------------------ */

/*
 * Probes 0..n-1 asked of the socket in one pipelined call, then each of
 * the reader, then the socket once more: the same verdicts and versions as
 * the model, and the staleness in order.
 */
void
many_agree(fixture *f, size_t n)
{
	uint64_t max_r = 0;
	revoke_answer r, last;

	for (size_t i = 0; i < n; i++)
		f->queries[i] = f->probes[i].q;
	assert_status(
	    revoke_client_check_many(f->client, f->queries, n, f->answers),
	    REVOKE_OK);
	for (size_t i = 0; i < n; i++) {
		assert_status(
		    revoke_reader_check(f->reader, &f->queries[i], &r),
		    REVOKE_OK);
		assert_answer("socket (pipelined)", &f->queries[i],
		    &f->answers[i], &f->probes[i].want);
		assert_answer("reader", &f->queries[i], &r, &f->answers[i]);
		assert_staleness_order(f->answers[i].staleness_ms,
		    r.staleness_ms, UINT64_MAX - 1);
		if (r.staleness_ms > max_r)
			max_r = r.staleness_ms;
	}
	assert_status(revoke_client_check(f->client, &f->queries[0], &last),
	    REVOKE_OK);
	assert_staleness_order(0, max_r, last.staleness_ms);
}

/* Probes 0..n-1 asked of the reader alone; staleness never goes back. */
void
reader_agrees(fixture *f, size_t n, uint64_t *staleness)
{
	for (size_t i = 0; i < n; i++) {
		revoke_answer r;

		assert_status(
		    revoke_reader_check(f->reader, &f->probes[i].q, &r),
		    REVOKE_OK);
		assert_answer("reader", &f->probes[i].q, &r,
		    &f->probes[i].want);
		assert_staleness_order(*staleness, r.staleness_ms,
		    UINT64_MAX - 1);
		*staleness = r.staleness_ms;
	}
}

/* A subject's version as socket, reader, socket: all equal to want. */
void
versions_agree(fixture *f, const char *sub, size_t len, uint64_t version,
    uint64_t not_before_ms)
{
	uint64_t v[3], nb[3], st[3];
	char text[128];

	assert_status(
	    revoke_client_version(f->client, sub, len, &v[0], &nb[0], &st[0]),
	    REVOKE_OK);
	assert_status(
	    revoke_reader_version(f->reader, sub, len, &v[1], &nb[1], &st[1]),
	    REVOKE_OK);
	assert_status(
	    revoke_client_version(f->client, sub, len, &v[2], &nb[2], &st[2]),
	    REVOKE_OK);
	for (int k = 0; k < 3; k++)
		if (v[k] != version || nb[k] != not_before_ms)
			fail_msg("%s says %s has version %" PRIu64
			         " not-before %" PRIu64 ", expected %" PRIu64
			         " and %" PRIu64 " (seed %" PRIu64 ")",
			    k == 1 ? "reader" : "socket",
			    id_show(sub, len, text, sizeof(text)), v[k], nb[k],
			    version, not_before_ms, test_seed);
	assert_staleness_order(st[0], st[1], st[2]);
}

/*
 * After the writer stopped: every id it wrote (each acknowledged, so
 * committed) revoked at both the socket and the reader, every subject it
 * bumped at the version it made.
 */
void
writer_writes_agree(fixture *f)
{
	const writer *w = &f->w;
	size_t n = 0, total = (size_t)w->jtis + w->sids + w->imported;
	char id[48];

	for (size_t i = 0; i < total; i++) {
		if (i < w->jtis)
			snprintf(id, sizeof(id), "w%u-j-%zu", w->tag, i);
		else if (i < (size_t)w->jtis + w->sids)
			snprintf(id, sizeof(id), "w%u-s-%zu", w->tag,
			    i - w->jtis);
		else
			snprintf(id, sizeof(id), "w%u-i-%zu", w->tag,
			    i - w->jtis - w->sids);
		probe_written(&f->probes[n++],
		    i >= w->jtis && i < (size_t)w->jtis + w->sids ? 's' : 'j',
		    id);
		if (n == N_MANY || i + 1 == total) {
			many_agree(f, n);
			n = 0;
		}
	}
	for (unsigned k = 0; k < WRITER_SUBJECTS; k++) {
		snprintf(id, sizeof(id), "w%u-u-%u", w->tag, k);
		versions_agree(f, id, 0, w->bumps[k], 0);
	}
	print_message("writer: %u writes acknowledged (%u jtis, %u sids, %u "
	              "imported), all revoked at both\n",
	    w->writes, w->jtis, w->sids, w->imported);
}

/* Stop the writer; it must have worked, and written enough. */
void
writer_finish(fixture *f)
{
	writer_stop(&f->w);
	if (f->w.error[0] != '\0')
		fail_msg("writer: %s", f->w.error);
	assert_true(f->w.writes >= WRITER_MIN);
}
