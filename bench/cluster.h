/*
 * cluster.h: real revokd agents on loopback, for the integration tests and
 * the benchmarks: a PKI made by scripts/gen-certs, one config per region,
 * processes started and stopped, a blocking client for the local sockets.
 *
 * Everything lives under one temporary directory. Agents run in their own
 * process group; every one this kit started is killed at cluster_free and,
 * should the caller die first, at exit (an atexit handler) or on SIGINT,
 * SIGTERM or SIGHUP (cluster_guard), so a failing test or an interrupted
 * benchmark leaves nothing running.
 */
#ifndef REVOKD_CLUSTER_H
#define REVOKD_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/revokd.h"
#include "local.pb-c.h"

/* Regions a cluster can have. */
#define CLUSTER_MAX 8

/* One region's agent. */
typedef struct cluster_node {
	char name[32];
	uint16_t id;
	uint16_t port; /* peer listener */
	uint16_t metrics_port;
	char dir[320]; /* its directory: config, data, sockets, log */
	char conf[400];
	char query[400]; /* socket paths */
	char admin[400];
	char log[400];
	pid_t pid; /* 0 when not running */
} cluster_node;

/* A cluster of agents. */
typedef struct cluster {
	char dir[256];
	unsigned n;
	cluster_node node[CLUSTER_MAX];
} cluster;

/* Options of cluster_new. */
typedef struct cluster_options {
	const char *extra_agent;  /* lines appended to [agent] */
	const char *extra_limits; /* lines for a [limits] section */
} cluster_options;

/*
 * Make a cluster of n regions (alpha, beta, gamma, ...) in a fresh temp
 * dir: certificates, secret, configs with free loopback ports. Nothing is
 * started.
 */
revokd_err cluster_new(unsigned n, const cluster_options *o, cluster *out);

/* Kill every agent still running and remove the directory. */
void cluster_free(cluster *c);

/*
 * Start node i (revokd --config); false if it exited at once or is running
 * already. Returns once its admin socket accepts connections, or after
 * 500 ms.
 */
bool cluster_start(cluster *c, unsigned i);

/* SIGTERM node i and wait for it (up to 10 s, then SIGKILL). */
int cluster_stop(cluster *c, unsigned i);

/* SIGKILL node i and reap it. */
void cluster_kill(cluster *c, unsigned i);

/*
 * Wait (up to timeout_ms) until node i answers Status with every peer that
 * is running connected and synced. False on timeout.
 */
bool cluster_wait_ready(cluster *c, unsigned i, unsigned timeout_ms);

/*
 * Send req to the socket at path and read one response into *resp (free
 * with revokd__local__response__free_unpacked). REVOKD_EIO and friends
 * when the socket cannot be reached or closes.
 */
revokd_err cluster_call(const char *path, const Revokd__Local__Request *req,
    Revokd__Local__Response **resp);

/* The verdict of a jti at node i's query socket, or -1 on error. */
int cluster_check_jti(cluster *c, unsigned i, const char *jti);

/*
 * Revoke jti at node i through the admin socket, waiting for wait_peers
 * confirmations (0: none). The batch id, or 0 on error.
 */
uint64_t cluster_revoke(cluster *c, unsigned i, const char *jti,
    uint32_t wait_peers, Revokd__Local__Response **resp);

/* Lines of node i's log containing needle (0 when it has no log yet). */
unsigned cluster_log_count(cluster *c, unsigned i, const char *needle);

/* True when node i's log holds a line containing needle (within ms). */
bool cluster_log_has(cluster *c, unsigned i, const char *needle,
    unsigned timeout_ms);

/* Write a file under the cluster dir (name relative), mode. */
bool cluster_write_file(cluster *c, const char *name, const char *text,
    unsigned mode);

/*
 * A free TCP port on 127.0.0.1 (bound once, then released), below the
 * ephemeral range when there is room, so that no outgoing connection takes
 * it while its agent is down.
 */
uint16_t cluster_free_port(void);

/* Milliseconds on the monotonic clock. */
uint64_t cluster_now_ms(void);

/*
 * Kill the process group of pid (a child started in a group of its own)
 * with the cluster's agents, at exit and on SIGINT, SIGTERM or SIGHUP
 * (add), or no longer (after reaping it). Agents are guarded by
 * cluster_start itself.
 */
void cluster_guard(pid_t pid, bool add);

/* ------------------------------------------------------------------------ */
/* More helpers: a persistent client, logs, other processes                 */
/* ------------------------------------------------------------------------ */

/*
 * Connect to the Unix socket at path (reads time out after 10 s): the
 * descriptor, or -1. For clients that keep a connection or pipeline.
 */
int cluster_open(const char *path);

/* Send one framed request on fd; false when the write fails. */
bool cluster_send(int fd, const Revokd__Local__Request *req);

/*
 * Read one framed response from fd within timeout_ms into *resp (free with
 * revokd__local__response__free_unpacked). REVOKD_ETIMEDOUT when nothing
 * whole came in time, REVOKD_ECLOSED at end of stream, REVOKD_EIO on an
 * error, REVOKD_EMALFORMED when the frame does not decode.
 */
revokd_err cluster_recv(int fd, unsigned timeout_ms,
    Revokd__Local__Response **resp);

/*
 * Poll node i until jti's verdict is `verdict` (within timeout_ms); an
 * agent still starting is waited for.
 */
bool cluster_wait_verdict(cluster *c, unsigned i, const char *jti, int verdict,
    unsigned timeout_ms);

/*
 * True when one line of node i's log holds every needle (a NULL-terminated
 * list), within timeout_ms.
 */
bool cluster_log_line(cluster *c, unsigned i, unsigned timeout_ms, ...);

/*
 * True when node i's log holds a sanitizer report (AddressSanitizer,
 * LeakSanitizer, UndefinedBehaviorSanitizer); its first line into line.
 */
bool cluster_log_sanitizer(cluster *c, unsigned i, char *line, size_t len);

/*
 * Stop every running agent with SIGTERM, then look at every log: false,
 * with why, when an agent did not exit 0 or a log holds a sanitizer
 * report. Tests call it in teardown, so an agent's sanitizer errors fail
 * the test that ran it.
 */
bool cluster_shutdown(cluster *c, char *why, size_t len);

/* Print the last lines of node i's log (at most 16 KiB) to stderr. */
void cluster_print_log(cluster *c, unsigned i);

/* The revokd binary the kit runs ($REVOKD_BIN, else the one built). */
const char *cluster_revokd_path(void);

/*
 * Run argv (argv[0] a path) with stdout and stderr into out (NUL-ended,
 * truncated to len), killing it after timeout_ms: its exit code, 128 +
 * the signal that ended it, or -1 when it could not run or timed out.
 */
int cluster_run(const char *const argv[], char *out, size_t len,
    unsigned timeout_ms);

#endif /* REVOKD_CLUSTER_H */
