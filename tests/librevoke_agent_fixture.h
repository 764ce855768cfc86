/*
 * librevoke_agent_fixture.h: the fixture of the tests of librevoke against
 * a real revokd (test_librevoke_agent.c, test_librevoke_agent_life.c): a
 * cluster (bench/cluster.h), a model of what was imported, random probes
 * and the model's answers to them, a writer thread, checker threads
 * sharing one reader, and comparisons of the socket client and the reader.
 *
 * Most tests share one fixture (fixture_up): two regions; node 0 preloaded
 * through its admin socket with Imports of a few thousand random items
 * (revoked jtis and sids, some restored, subjects with bumps and
 * not-befores); then node 1 is stopped, so node 0's watermark for it
 * freezes and staleness is a function of the clock alone: a socket answer,
 * a reader answer and a socket answer, asked in that order, have staleness
 * s1 <= r <= s2 (+1 for the rounding to ms). A writer thread may write
 * other ids meanwhile.
 *
 * The teardown joins every thread, stops every agent, and fails the test
 * when one did not exit 0 or its log holds a sanitizer report. The seed is
 * printed (seed_init); REVOKD_TEST_SEED=n runs the same again.
 */
#ifndef TESTS_LIBREVOKE_AGENT_FIXTURE_H
#define TESTS_LIBREVOKE_AGENT_FIXTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/cluster.h"
#include "revoke.h"

/* Deadlines, generous for sanitizer builds on two cores. */
#define READY_MS 30000   /* agents connected and synced */
#define VISIBLE_MS 15000 /* the preload reaching node 1 */
#define PHASE_MS 20000   /* a loop of checks stops here at the latest */
#define FREEZE_MS 300    /* after node 1 is gone: node 0 saves its last */
#define CALL_MS 5000     /* the client's timeout per call */

/* The preload. */
#define N_JTI 2000
#define N_SID 1000
#define N_SUB 800
#define RESTORED_PCT 20

/* Checks. */
#define N_MANY 2000 /* queries in one pipelined call */
#define N_THREADS 8

/* The writer. */
#define WRITER_MAX 20000
#define WRITER_SUBJECTS 16
#define WRITER_IMPORT 32
#define WRITER_MIN 10 /* writes it must have made while checks ran */
#define WRITER_PAUSE_US 500

/* The longest id the agent takes, in bytes. */
#define ID_MAX 1024

/* The seed of every random choice, set by seed_init. */
extern uint64_t test_seed;

/* ------------------------------------------------------------------------ */
/* The model                                                                */
/* ------------------------------------------------------------------------ */

/* An id as given to the agent: any bytes; text ids hold no NUL. */
typedef struct test_id {
	char *b;
	size_t len;
	bool text; /* may be given with length 0 (strlen) */
} test_id;

/* A jti or sid as imported: revoked, or restored since. */
typedef struct token_model {
	test_id id;
	bool revoked; /* false: restored */
} token_model;

/* A subject as imported: its version and its latest not-before. */
typedef struct subject_model {
	test_id id;
	uint64_t version;
	uint64_t not_before_ms;
} subject_model;

/* Every id preloaded, and what the agent must answer for it. */
typedef struct model {
	token_model jti[N_JTI];
	token_model sid[N_SID];
	subject_model sub[N_SUB];
} model;

/* One check: the query, what the model says, room for absent ids. */
typedef struct probe {
	revoke_query q;
	revoke_answer want;
	char own[3][48];
} probe;

/* ------------------------------------------------------------------------ */
/* Probes                                                                   */
/* ------------------------------------------------------------------------ */

/* A random check: some of jti, sid, sub, each preloaded or absent. */
void probe_make(revokd_rng *rng, const model *m, probe *p);

/* A check of one written id (kind 'j' or 's') that must be revoked. */
void probe_written(probe *p, char kind, const char *id);

/* got gives want's verdict and version, or the test fails saying so. */
void assert_answer(const char *who, const revoke_query *q,
    const revoke_answer *got, const revoke_answer *want);

/* Staleness asked socket (s1), reader (r), socket (s2), in that order. */
void assert_staleness_order(uint64_t s1, uint64_t r, uint64_t s2);

/* expr returns want, or the test fails naming both. */
#define assert_status(expr, want)                                              \
	do {                                                                   \
		revoke_status st_ = (expr);                                    \
		if (st_ != (want))                                             \
			fail_msg("%s: %s, expected %s", #expr,                 \
			    revoke_strerror(st_), revoke_strerror(want));      \
	} while (0)

/* ------------------------------------------------------------------------ */
/* The writer                                                               */
/* ------------------------------------------------------------------------ */

/*
 * A thread writing new revocations to node 0's admin socket, one request
 * at a time: what it counts was acknowledged, so committed. Its ids start
 * with 'w' and are never checked by the probes. The test reads its counts
 * only after joining it.
 */
typedef struct writer {
	const char *admin;
	unsigned tag;
	uint64_t deadline_ms;
	atomic_bool stop;
	pthread_t thread;
	bool running;
	unsigned writes;                 /* requests acknowledged */
	unsigned jtis;                   /* w<tag>-j-<n> */
	unsigned sids;                   /* w<tag>-s-<n> */
	unsigned imported;               /* w<tag>-i-<n>, jtis */
	uint64_t bumps[WRITER_SUBJECTS]; /* w<tag>-u-<k> */
	char error[256];
} writer;

/* Start w writing to the admin socket at admin, its ids tagged tag. */
void writer_start(writer *w, const char *admin, unsigned tag);

/* ------------------------------------------------------------------------ */
/* Checker threads                                                          */
/* ------------------------------------------------------------------------ */

/* A thread checking through a shared reader; it never asserts. */
typedef struct checker {
	pthread_t thread;
	revoke_reader *reader;
	const model *m;
	uint64_t seed;
	unsigned min;          /* checks at least, */
	uint64_t min_until_ms; /* and for this long at least, */
	unsigned max;          /* but no more than */
	uint64_t deadline_ms;  /* nor later; */
	atomic_bool *hold;     /* and while it is true */
	unsigned done;
	unsigned wrong;
	char first[768];
} checker;

/* ------------------------------------------------------------------------ */
/* Fixture                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * What a test holds: the cluster, the model, librevoke's handles on node 0,
 * the threads, and room for the queries; the teardown frees it all.
 */
typedef struct fixture {
	cluster c;
	model m;
	revokd_rng rng;
	char data_dir[512];
	char secret[512];
	revoke_client *client;
	revoke_reader *reader;
	writer w;
	checker checkers[N_THREADS];
	unsigned n_checkers;   /* running */
	atomic_bool hold;      /* checkers go on while it is true */
	probe *probes;         /* N_MANY */
	revoke_query *queries; /* N_MANY, copies of the probes' */
	revoke_answer *answers;
	revoke_query *big_q; /* N_BIG, in test_librevoke_agent.c */
	revoke_answer *big_a;
	revoke_client *quick; /* a short timeout */
} fixture;

/* test_seed from REVOKD_TEST_SEED, else from the time and the pid; printed. */
void seed_init(void);

/* cmocka setup: an empty fixture in *state, no cluster yet. */
int setup(void **state);

/* Join the threads, close librevoke, stop every agent, check their logs. */
int teardown(void **state);

/* Start node i of c, or fail the test with its log. */
void start(cluster *c, unsigned i);

/* Wait until node i of c is ready, or fail the test with its log. */
void wait_ready(cluster *c, unsigned i);

/* status (of waitpid) says the process exited 0. */
void assert_clean_exit(int status);

/*
 * Two Imports at node 0: every jti and sid revoked and every subject's
 * first item; then restores of some, the subjects' other items, and a
 * marker, whose arrival at node 1 says the preload got there.
 */
void preload(fixture *f);

/* A client on node 0's query socket, a reader on its data dir. */
void open_librevoke(fixture *f);

/*
 * The fixture of most tests: two regions, node 0 preloaded, node 1
 * stopped (node 0's watermark for it frozen), a client and a reader open
 * on node 0. test picks the seed, test_seed + test.
 */
void fixture_up(fixture *f, unsigned test);

/* ------------------------------------------------------------------------ */
/* Comparisons                                                              */
/* ------------------------------------------------------------------------ */

/*
 * Probes 0..n-1 asked of the socket in one pipelined call, then each of
 * the reader, then the socket once more: the same verdicts and versions as
 * the model, and the staleness in order.
 */
void many_agree(fixture *f, size_t n);

/* Probes 0..n-1 asked of the reader alone; staleness never goes back. */
void reader_agrees(fixture *f, size_t n, uint64_t *staleness);

/* A subject's version as socket, reader, socket: all equal to want. */
void versions_agree(fixture *f, const char *sub, size_t len, uint64_t version,
    uint64_t not_before_ms);

/*
 * After the writer stopped: every id it wrote (each acknowledged, so
 * committed) revoked at both the socket and the reader, every subject it
 * bumped at the version it made.
 */
void writer_writes_agree(fixture *f);

/* Stop the writer; it must have worked, and written enough. */
void writer_finish(fixture *f);

/*
 * Start n threads checking through f's reader at once, each at least
 * `each` times and for at least min_ms, and while f->hold is true.
 */
void checkers_start(fixture *f, unsigned n, unsigned each, unsigned min_ms);

/* Join the checkers started (n of them): every answer must be right. */
void checkers_finish(fixture *f, unsigned n, uint64_t t0);

/* n threads checking through f's reader, as checkers_start says. */
void run_checkers(fixture *f, unsigned n, unsigned each, unsigned min_ms);

#endif /* TESTS_LIBREVOKE_AGENT_FIXTURE_H */
