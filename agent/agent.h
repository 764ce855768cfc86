/*
 * agent.h: the revokd agent, around one libuv loop.
 *
 * Theory of ownership. One loop thread owns everything here: the engine,
 * every write to the store (through the engine), the query and admin
 * sockets, the timers. nng's threads only report to it (net.h). Queries are
 * answered on the loop from one read snapshot per batch of requests;
 * admin writes that arrive in one loop iteration are committed together
 * (group commit, in a uv_check handle at the end of the iteration) and are
 * answered only once committed, or once enough peers confirmed them.
 */
#ifndef AGENT_AGENT_H
#define AGENT_AGENT_H

#include <uv.h>

#include "agent/config.h"
#include "agent/engine.h"
#include "agent/local.h"
#include "agent/net.h"
#include "agent/tls.h"
#include "crdt/crdt.h"
#include "local.pb-c.h"

/* A write waiting for its group commit, then maybe for confirmations. */
struct agent_write;

/* The metrics and health endpoint (metrics.c). */
struct agent_metrics;

typedef struct agent {
	agent_config cfg;
	uv_loop_t *loop;
	uint64_t started_ms;
	bool running; /* started completely */
	bool stopping;

	crdt_store *store;
	crdt_keyer *keyer;
	crdt_reader *reader; /* the loop's snapshot for queries */
	agent_tls *tls;
	engine *engine;
	agent_net *net;
	agent_local *query;
	agent_local *admin;
	struct agent_metrics *metrics;

	uv_timer_t tick;   /* the engine's next tick, and wait deadlines */
	uv_check_t commit; /* group commit at the end of an iteration */
	uv_signal_t sigterm, sigint;

	/* Writes waiting for the group commit, then for peers. */
	struct agent_write *queued, *queued_tail;
	size_t queued_ops;
	struct agent_write *waiting;

	/* Counters for status and metrics. */
	uint64_t checks, check_revoked, versions, writes, write_errors;
	uint64_t confirm_lag_ms_sum, confirm_lag_n;
} agent;

/*
 * Start everything the configuration asks for on loop: store (locked),
 * secret, TLS identity, engine, peer transport, sockets, metrics, signals.
 * Errors give one line in err.
 */
revokd_err agent_start(agent *a, const agent_config *cfg, uv_loop_t *loop,
    char *err, size_t err_len);

/*
 * Stop: refuse new requests, answer queued writes (committed first), close
 * sockets and connections, save watermarks, close the store. Run the loop
 * afterwards until it has no more handles.
 */
void agent_stop(agent *a);

/* Microseconds on the wall clock (the engine's `now`). */
uint64_t agent_now_us(void);

/* Re-arm the tick timer for the engine's next wish. */
void agent_schedule(agent *a);

/* ------------------------------------------------------------------------ */
/* query.c                                                                  */
/* ------------------------------------------------------------------------ */

/* on_frames of the query socket (admin requests refused). */
void agent_on_query_frames(void *arg, agent_local_conn *c,
    const agent_local_frame *frames, size_t n);

/* on_frames of the admin socket (everything allowed). */
void agent_on_admin_frames(void *arg, agent_local_conn *c,
    const agent_local_frame *frames, size_t n);

/* on_oversize of both sockets: a TOO_BIG error answer. */
void agent_on_oversize(void *arg, agent_local_slot *slot, size_t declared);

/* Fill slot with resp, encoded. */
void agent_reply(agent_local_slot *slot, Revokd__Local__Response *resp);

/* Fill slot with an error answer. */
void agent_reply_error(agent_local_slot *slot, Revokd__Local__ErrorCode code,
    const char *message);

/* Fill *out (allocated members freed by agent_status_free). */
void agent_status(agent *a, Revokd__Local__StatusResult *out);
void agent_status_free(Revokd__Local__StatusResult *s);

/* Staleness now, in ms. */
uint64_t agent_staleness_ms(agent *a);

/* ------------------------------------------------------------------------ */
/* admin.c                                                                  */
/* ------------------------------------------------------------------------ */

/*
 * An admin request (a write, an import or a dump) into slot. Writes are
 * queued for the group commit.
 */
void agent_admin_request(agent *a, const Revokd__Local__Request *req,
    agent_local_slot *slot);

/* The group commit (uv_check callback). */
void agent_admin_commit(uv_check_t *h);

/* The engine confirmed local batch `batch` at peer. */
void agent_admin_confirmed(agent *a, unsigned peer, uint64_t batch);

/* Answer waits past their deadline; the earliest deadline left (or 0). */
uint64_t agent_admin_expire(agent *a, uint64_t now_ms);

/* Answer everything still waiting (shutdown). */
void agent_admin_flush(agent *a);

/* ------------------------------------------------------------------------ */
/* metrics.c                                                                */
/* ------------------------------------------------------------------------ */

/*
 * Serve /metrics and /healthz on cfg.metrics (httpd.h, on the loop). The
 * answers come from a snapshot the loop refreshes at every tick.
 */
revokd_err agent_metrics_start(agent *a, char *err, size_t err_len);

/* Refresh the snapshot (loop thread). */
void agent_metrics_refresh(agent *a);

/* Stop serving. NULL-safe. */
void agent_metrics_stop(struct agent_metrics *m);

#endif /* AGENT_AGENT_H */
