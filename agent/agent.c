/*
 * agent.c: starting, running and stopping the agent: the store, the
 * engine, the peer transport, the sockets, timers and signals.
 */
#include "agent/agent.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "agent/log.h"

uint64_t
agent_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* ------------------------------------------------------------------------ */
/* The engine's outputs                                                     */
/* ------------------------------------------------------------------------ */

static void
agent_engine_send(void *arg, unsigned peer, wire_peer_type type, uint8_t *frame,
    size_t len)
{
	agent *a = arg;

	(void)type;
	agent_net_send(a->net, peer, frame, len);
}

static const char *
agent_peer_event_name(engine_peer_event ev)
{
	switch (ev) {
	case ENGINE_PEER_OVERFLOW:
		return "backlog_overflow";
	case ENGINE_PEER_RECON_START:
		return "repair_start";
	case ENGINE_PEER_RECON_DONE:
		return "repair_done";
	case ENGINE_PEER_RECON_ABORT:
		return "repair_abort";
	case ENGINE_PEER_CLOCK:
		return "clock";
	case ENGINE_PEER_CLOCK_AHEAD:
		return "clock_ahead";
	case ENGINE_PEER_RECON_LIMITED:
		return "repair_limited";
	}
	return "?";
}

/* Peer events worth a line: problems at warn, repairs at debug. */
static void
agent_peer_notice(agent *a, const engine_notice *n)
{
	const char *peer = a->cfg.peers[n->peer].name;
	agent_log_level level = AGENT_LOG_DEBUG;
	engine_peer_status st;
	char offset[32] = "";

	if (n->event == ENGINE_PEER_OVERFLOW ||
	    n->event == ENGINE_PEER_CLOCK_AHEAD ||
	    n->event == ENGINE_PEER_RECON_LIMITED)
		level = AGENT_LOG_WARN;
	if (n->event == ENGINE_PEER_CLOCK) {
		engine_get_peer_status(a->engine, n->peer, &st);
		/* A peer clock off by more than a second is worth a look. */
		if (st.offset_us > 1000000 || st.offset_us < -1000000)
			level = AGENT_LOG_WARN;
		snprintf(offset, sizeof(offset), "%lld",
		    (long long)st.offset_us / 1000);
	}
	if (!agent_log_enabled(level))
		return;
	agent_log(level, agent_peer_event_name(n->event), "peer", peer,
	    n->event == ENGINE_PEER_CLOCK ? "offset_ms" : NULL, offset, NULL);
}

static void
agent_engine_notice(void *arg, const engine_notice *n)
{
	agent *a = arg;

	switch (n->type) {
	case ENGINE_NOTICE_CONFIRMED:
		agent_admin_confirmed(a, n->peer, n->batch);
		break;
	case ENGINE_NOTICE_PEER:
		agent_peer_notice(a, n);
		break;
	default:
		break;
	}
}

/* ------------------------------------------------------------------------ */
/* The transport's callbacks                                                */
/* ------------------------------------------------------------------------ */

static void
agent_peer_up(void *arg, unsigned peer)
{
	agent *a = arg;

	engine_peer_up(a->engine, peer, agent_now_us());
	agent_schedule(a);
}

static void
agent_peer_down(void *arg, unsigned peer)
{
	agent *a = arg;

	engine_peer_down(a->engine, peer, agent_now_us());
	agent_schedule(a);
}

static revokd_err
agent_peer_frames(void *arg, unsigned peer, const engine_frame *frames,
    size_t n)
{
	agent *a = arg;
	revokd_err err =
	    engine_receive_frames(a->engine, peer, frames, n, agent_now_us());

	agent_schedule(a);
	return err;
}

static void
agent_burst_begin(void *arg)
{
	agent *a = arg;

	engine_hold(a->engine);
}

static void
agent_burst_end(void *arg)
{
	agent *a = arg;

	engine_release(a->engine, agent_now_us());
	agent_schedule(a);
}

static void
agent_send_done(void *arg, unsigned peer)
{
	agent *a = arg;

	engine_send_done(a->engine, peer, agent_now_us());
	agent_schedule(a);
}

/* ------------------------------------------------------------------------ */
/* Timers and signals                                                       */
/* ------------------------------------------------------------------------ */

static void
agent_tick_cb(uv_timer_t *t)
{
	agent *a = t->data;
	uint64_t now_us = agent_now_us();

	engine_tick(a->engine, now_us);
	agent_admin_expire(a, now_us / 1000);
	agent_metrics_refresh(a);
	agent_schedule(a);
}

void
agent_schedule(agent *a)
{
	uint64_t now_us = agent_now_us();
	uint64_t next_us = engine_next_tick(a->engine, now_us);
	uint64_t wait_ms = agent_admin_expire(a, now_us / 1000);
	uint64_t delay_ms = (next_us - now_us + 999) / 1000;

	if (a->stopping)
		return;
	if (wait_ms != 0 && wait_ms - now_us / 1000 < delay_ms)
		delay_ms = wait_ms - now_us / 1000;
	/* The metrics snapshot is refreshed at least every 250 ms. */
	if (delay_ms > 250)
		delay_ms = 250;
	uv_timer_start(&a->tick, agent_tick_cb, delay_ms, 0);
}

static void
agent_signal_cb(uv_signal_t *s, int signum)
{
	agent *a = s->data;

	agent_log(AGENT_LOG_INFO, "stopping", "signal",
	    signum == SIGTERM ? "SIGTERM" : "SIGINT", NULL);
	agent_stop(a);
}

/* ------------------------------------------------------------------------ */
/* Start                                                                    */
/* ------------------------------------------------------------------------ */

static revokd_err
agent_open_store(agent *a, char *err, size_t err_len)
{
	crdt_store_options so = { .map_size = a->cfg.map_size,
		.prune_leeway = a->cfg.prune_leeway };
	revokd_err e;

	if (mkdir(a->cfg.data_dir, 0750) != 0 && errno != EEXIST) {
		snprintf(err, err_len, "data_dir %s: %s", a->cfg.data_dir,
		    strerror(errno));
		return REVOKD_EIO;
	}
	e = crdt_store_open(a->cfg.data_dir, &so, &a->store);
	if (e == REVOKD_OK)
		e = crdt_store_bind_secret(a->store, a->keyer);
	if (e == REVOKD_ELOCKED)
		snprintf(err, err_len,
		    "data_dir %s: locked by another revokd process",
		    a->cfg.data_dir);
	else if (e == REVOKD_EAUTH)
		snprintf(err, err_len,
		    "data_dir %s holds entries made under another cluster "
		    "secret than %s: use the secret it was made with, or an "
		    "empty data_dir",
		    a->cfg.data_dir, a->cfg.secret_file);
	else if (e != REVOKD_OK)
		snprintf(err, err_len, "data_dir %s: %s", a->cfg.data_dir,
		    revokd_strerror(e));
	if (e == REVOKD_OK)
		e = crdt_reader_new(a->store, &a->reader);
	return e;
}

static revokd_err
agent_open_keyer(agent *a, char *err, size_t err_len)
{
	uint8_t secret[CRDT_SECRET_LEN];
	revokd_err e = revokd_secret_load(a->cfg.secret_file, secret,
	    sizeof(secret), err, err_len);

	if (e == REVOKD_OK)
		e = crdt_keyer_new(secret, sizeof(secret), &a->keyer);
	OPENSSL_cleanse(secret, sizeof(secret));
	return e;
}

static revokd_err
agent_open_engine(agent *a)
{
	engine_peer_config peers[ENGINE_MAX_PEERS];
	engine_config ec = { .region_id = a->cfg.region_id,
		.region = a->cfg.region,
		.store = a->store,
		.n_peers = a->cfg.n_peers,
		.peers = peers,
		.max_frame = a->cfg.max_message,
		.backlog_max = a->cfg.backlog };
	engine_io io = { a, agent_engine_send, agent_engine_notice };

	if (agent_random(&ec.seed, sizeof(ec.seed)) != REVOKD_OK)
		return REVOKD_ECRYPTO;
	for (unsigned i = 0; i < a->cfg.n_peers; i++) {
		memset(&peers[i], 0, sizeof(peers[i]));
		peers[i].region_id = a->cfg.peers[i].id;
		snprintf(peers[i].name, sizeof(peers[i].name), "%s",
		    a->cfg.peers[i].name);
	}
	return engine_new(&ec, &io, agent_now_us(), &a->engine);
}

static revokd_err
agent_open_net(agent *a, char *err, size_t err_len)
{
	agent_net_config nc = { .loop = a->loop,
		.tls = a->tls,
		.listen_url = a->cfg.listen,
		.cluster = a->cfg.cluster,
		.region = a->cfg.region,
		.region_id = a->cfg.region_id,
		.n_peers = a->cfg.n_peers,
		.peers = a->cfg.peers,
		.max_frame = a->cfg.max_message,
		.arg = a,
		.peer_up = agent_peer_up,
		.peer_down = agent_peer_down,
		.frames = agent_peer_frames,
		.send_done = agent_send_done,
		.burst_begin = agent_burst_begin,
		.burst_end = agent_burst_end };

	return agent_net_start(&nc, &a->net, err, err_len);
}

/* An event of a local socket (its detail names the socket). */
static void
agent_socket_log(void *arg, const char *event, const char *detail)
{
	(void)arg;
	agent_log(AGENT_LOG_WARN, event, "detail", detail, NULL);
}

static revokd_err
agent_open_socket(agent *a, const char *name, const char *path, unsigned mode,
    bool admin, agent_local **out, char *err, size_t err_len)
{
	agent_local_config lc = { .name = name,
		.path = path,
		.mode = mode,
		.max_frame = a->cfg.max_message,
		.max_output = a->cfg.client_output,
		.max_connections = a->cfg.max_connections,
		.arg = a,
		.on_frames =
		    admin ? agent_on_admin_frames : agent_on_query_frames,
		.on_oversize = agent_on_oversize,
		.log = agent_socket_log };

	return agent_local_start(a->loop, &lc, out, err, err_len);
}

static void
agent_start_handles(agent *a)
{
	uv_timer_init(a->loop, &a->tick);
	a->tick.data = a;
	uv_check_init(a->loop, &a->commit);
	a->commit.data = a;
	uv_check_start(&a->commit, agent_admin_commit);
	uv_signal_init(a->loop, &a->sigterm);
	a->sigterm.data = a;
	uv_signal_start(&a->sigterm, agent_signal_cb, SIGTERM);
	uv_signal_init(a->loop, &a->sigint);
	a->sigint.data = a;
	uv_signal_start(&a->sigint, agent_signal_cb, SIGINT);
}

revokd_err
agent_start(agent *a, const agent_config *cfg, uv_loop_t *loop, char *err,
    size_t err_len)
{
	revokd_err e;

	memset(a, 0, sizeof(*a));
	a->cfg = *cfg;
	a->loop = loop;
	a->started_ms = uv_now(loop);
	agent_start_handles(a);
	if ((e = agent_open_keyer(a, err, err_len)) != REVOKD_OK ||
	    (e = agent_tls_load(a->cfg.ca, a->cfg.cert, a->cfg.key,
	         a->cfg.region, time(NULL), &a->tls, err, err_len)) !=
	        REVOKD_OK ||
	    (e = agent_open_store(a, err, err_len)) != REVOKD_OK)
		goto fail;
	if ((e = agent_open_engine(a)) != REVOKD_OK) {
		snprintf(err, err_len, "engine: %s", revokd_strerror(e));
		goto fail;
	}
	if ((e = agent_open_net(a, err, err_len)) != REVOKD_OK ||
	    (e = agent_open_socket(a, "query", a->cfg.query_socket, 0660, false,
	         &a->query, err, err_len)) != REVOKD_OK ||
	    (e = agent_open_socket(a, "admin", a->cfg.admin_socket, 0600, true,
	         &a->admin, err, err_len)) != REVOKD_OK ||
	    (e = agent_metrics_start(a, err, err_len)) != REVOKD_OK)
		goto fail;
	agent_schedule(a);
	a->running = true;
	agent_log(AGENT_LOG_INFO, "started", "version", REVOKD_VERSION,
	    "listen", a->cfg.listen, "query_socket", a->cfg.query_socket,
	    "admin_socket", a->cfg.admin_socket, NULL);
	return REVOKD_OK;
fail:
	agent_stop(a);
	return e;
}

/* ------------------------------------------------------------------------ */
/* Stop                                                                     */
/* ------------------------------------------------------------------------ */

void
agent_stop(agent *a)
{
	if (a->stopping)
		return;
	a->stopping = true;
	/* Writes already received are committed and answered first. */
	if (a->engine != NULL)
		agent_admin_flush(a);
	agent_metrics_stop(a->metrics);
	a->metrics = NULL;
	if (a->query)
		agent_local_stop(a->query);
	if (a->admin)
		agent_local_stop(a->admin);
	if (a->net)
		agent_net_stop(a->net);
	a->query = a->admin = NULL;
	a->net = NULL;
	if (a->engine != NULL)
		engine_save(a->engine, agent_now_us());
	engine_free(a->engine);
	a->engine = NULL;
	crdt_reader_free(a->reader);
	crdt_store_close(a->store);
	crdt_keyer_free(a->keyer);
	agent_tls_free(a->tls);
	a->reader = NULL;
	a->store = NULL;
	a->keyer = NULL;
	a->tls = NULL;
	uv_close((uv_handle_t *)&a->tick, NULL);
	uv_close((uv_handle_t *)&a->commit, NULL);
	uv_close((uv_handle_t *)&a->sigterm, NULL);
	uv_close((uv_handle_t *)&a->sigint, NULL);
	/* A start that failed says so in one line of its own (main.c). */
	if (a->running)
		agent_log(AGENT_LOG_INFO, "stopped", NULL);
}
