/*
 * crash_fixture.h: the fixture of the crash-safety tests (test_crash.c):
 * a cluster of real agents (bench/cluster.h) in *state, a bulk writer that
 * pipelines Import batches on an admin socket and remembers which were
 * acknowledged, the agent's store opened read-only from the test to see
 * what is on disk, where the agent was when it was killed, and a small
 * filesystem of the test's own (a tmpfs in a private mount namespace).
 *
 * Theory of what a kill may lose. An admin write is answered only once its
 * transaction is committed (fsync'd), and the answers of one connection
 * come in the order of its requests, so the k-th answer read on a
 * connection acknowledges the k-th batch sent on it. Answers the agent
 * wrote before it was killed are still readable from the socket afterwards:
 * they are acknowledgements too. A batch is one Import, committed in one
 * transaction, so after a kill each batch is either all there or not at
 * all; only the acknowledged ones must be there.
 *
 * The seed of every random choice is printed (crash_seed_init);
 * REVOKD_TEST_SEED=n runs the same choices again.
 */
#ifndef REVOKD_CRASH_FIXTURE_H
#define REVOKD_CRASH_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/cluster.h"
#include "crdt/crdt.h"

/* Deadlines, generous for sanitizer builds on two cores. */
#define CRASH_READY_MS 30000  /* agents connected and synced */
#define CRASH_START_MS 30000  /* an agent answering after a restart */
#define CRASH_ANSWER_MS 15000 /* one admin answer */

/* Items in one Import at most (the agent's limit). */
#define CRASH_IMPORT_MAX 10000

/* The seed of every random choice, set by crash_seed_init. */
extern uint64_t crash_seed;

/* crash_seed from REVOKD_TEST_SEED, else from the time and the pid; printed. */
void crash_seed_init(void);

/* ------------------------------------------------------------------------ */
/* Cluster                                                                  */
/* ------------------------------------------------------------------------ */

/* Writers a test may use (crash_state.w). */
#define CRASH_WRITERS 3

struct crash_writer;

/*
 * What a test holds, in *state: the cluster, a keyer for its secret, the
 * writers, the test's bitmap, and the mount point of a small filesystem.
 * The teardown frees all of it, also after a failed assertion.
 */
typedef struct crash_state {
	cluster c;
	crdt_keyer *keyer;
	struct crash_writer *w[CRASH_WRITERS];
	bool *seen;
	char small_fs[600]; /* mounted by crash_small_fs, or "" */
} crash_state;

/* cmocka setup: an empty crash_state in *state. */
int crash_setup(void **state);

/*
 * cmocka teardown: stop every agent (SIGTERM), unmount the small
 * filesystem, free everything; fails when an agent did not exit 0 or its
 * log holds a sanitizer report.
 */
int crash_teardown(void **state);

/*
 * Make t's cluster of n regions (options o) and its keyer, and writers
 * t->w[0..CRASH_WRITERS) tagged with tags[k] (NULL: none), or fail.
 */
void crash_cluster(crash_state *t, unsigned n, const cluster_options *o,
    const char *const tags[CRASH_WRITERS]);

/* Replace the text `from` by `to` in node i's config, or fail. */
void crash_conf_replace(cluster *c, unsigned i, const char *from,
    const char *to);

/* Start node i, or fail the test with its log. */
void crash_start(cluster *c, unsigned i);

/* Wait until node i has every running peer connected and synced, or fail. */
void crash_wait_ready(cluster *c, unsigned i);

/* The admin socket of node i connected (retried while it starts), or fail. */
int crash_admin_open(cluster *c, unsigned i);

/* ------------------------------------------------------------------------ */
/* Where a killed agent was                                                 */
/* ------------------------------------------------------------------------ */

/* What the agent's loop thread was doing just before a kill. */
typedef enum crash_where {
	CRASH_AT_IDLE,    /* waiting for events (epoll) */
	CRASH_AT_SYNC,    /* fsync, fdatasync, msync: inside a commit */
	CRASH_AT_WRITE,   /* lseek, write, writev, pwrite: a commit's pages
	                   * (LMDB) or an answer (libuv) */
	CRASH_AT_SOCKET,  /* read, readv, recvmsg: taking requests */
	CRASH_AT_RUNNING, /* on a CPU, in no system call */
	CRASH_AT_OTHER,   /* another system call */
	CRASH_AT_UNKNOWN, /* /proc could not tell */
	CRASH_AT_COUNT
} crash_where;

/* Names of crash_where, for the figures. */
extern const char *const crash_where_name[CRASH_AT_COUNT];

/*
 * SIGKILL node i at once, after one look at what its loop thread (the
 * process's first thread) was doing (/proc/PID/syscall); reaps it.
 */
crash_where crash_kill(cluster *c, unsigned i);

/* ------------------------------------------------------------------------ */
/* Keys and the store on disk                                               */
/* ------------------------------------------------------------------------ */

/* A keyer for the cluster's secret (c->dir/pki/cluster.secret), or fail. */
crdt_keyer *crash_keyer(cluster *c);

/* The key of jti id. */
void crash_jti_key(crdt_keyer *k, const char *id, crdt_key *out);

/* A node's store opened read-only, with one reader. */
typedef struct crash_store {
	crdt_store *store;
	crdt_reader *reader;
} crash_store;

/*
 * Open node i's store read-only (running or not) and begin a snapshot:
 * REVOKD_OK, or the store's error (the test decides what that means).
 */
revokd_err crash_store_open(cluster *c, unsigned i, crash_store *out);

/* True when the snapshot holds key as a revoked token. */
bool crash_store_revoked(crash_store *s, const crdt_key *key);

/* End the snapshot and close the store. */
void crash_store_close(crash_store *s);

/* ------------------------------------------------------------------------ */
/* The bulk writer                                                          */
/* ------------------------------------------------------------------------ */

/* One Import sent: items [first, first + n) of the writer. */
typedef struct crash_batch {
	uint32_t first, n;
	bool acked;
} crash_batch;

/*
 * Every item a writer sent: item k is jti "<tag>-<k>", its key keys[k].
 * Batches are kept in the order sent; those of the open connection from
 * conn_first on, the first conn_acked of them answered (acknowledged or
 * refused).
 */
typedef struct crash_writer {
	char tag[16];
	crdt_keyer *keyer;
	crdt_key *keys;
	size_t n_items, cap_items;
	crash_batch *batches;
	size_t n_batches, cap_batches;
	size_t conn_first, conn_acked; /* batches of the open connection */
	size_t acked_items, acked_batches;
	int64_t exp;     /* of every item sent; 0: the agent's default */
	int fd;          /* the admin connection, -1 when none */
	char error[256]; /* an answer that was not a WriteResult */
} crash_writer;

/* A writer of jtis tagged tag with keys from keyer (not owned). */
void crash_writer_init(crash_writer *w, const char *tag, crdt_keyer *keyer);

/* Close its connection and free it. */
void crash_writer_free(crash_writer *w);

/* Use a new connection to node i's admin socket (closing any old one). */
void crash_writer_connect(crash_writer *w, cluster *c, unsigned i);

/* Batches sent on the open connection and not answered yet. */
size_t crash_writer_in_flight(const crash_writer *w);

/* Send one Import of n new items; false when the write fails. */
bool crash_writer_send(crash_writer *w, uint32_t n);

/*
 * Read the next answer within timeout_ms: REVOKD_OK for a WriteResult (its
 * batch is acknowledged); REVOKD_EIO for an Error answer, its code and
 * message ("ERROR_STORE: ...") in w->error; or the connection's error
 * (REVOKD_ETIMEDOUT, REVOKD_ECLOSED, ...).
 */
revokd_err crash_writer_recv(crash_writer *w, unsigned timeout_ms);

/*
 * After the agent died: read every answer still in the socket (they
 * acknowledge their batches), then close. How many were read.
 */
size_t crash_writer_drain(crash_writer *w);

/* Send n items in one Import and wait for its answer, or fail the test. */
void crash_writer_import(crash_writer *w, uint32_t n);

/* ------------------------------------------------------------------------ */
/* A small filesystem                                                       */
/* ------------------------------------------------------------------------ */

/*
 * Mount a tmpfs of `bytes` on node 0's data dir (created if needed) in a
 * private mount namespace of this process (a new user namespace when not
 * privileged), remembered in t->small_fs for the teardown: true on
 * success; false, with why, when the machine does not allow it. Agents
 * started afterwards see it. Call it before any thread is started.
 */
bool crash_small_fs(crash_state *t, size_t bytes, char *why, size_t len);

/* Write the file path until its filesystem is full: the bytes written. */
size_t crash_fill(const char *path);

/* The size of the file at path (0 when there is none). */
size_t crash_file_size(const char *path);

#endif /* REVOKD_CRASH_FIXTURE_H */
