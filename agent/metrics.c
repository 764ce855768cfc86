/*
 * metrics.c: /metrics (Prometheus text) and /healthz (JSON), served on the
 * loop by the bounded HTTP server of httpd.h (its limits: 32 connections,
 * 5 s from accept to close, 8 KiB of request head; only GET and HEAD of
 * the two paths). The answers come from a snapshot that the loop rebuilds
 * at every tick (at least every 250 ms). /healthz adds the time since the
 * snapshot to its staleness, so it never reports fresher than the truth.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent/agent.h"
#include "agent/httpd.h"
#include "agent/log.h"

struct agent_metrics {
	agent_httpd *httpd;
	char *text;            /* /metrics body */
	char *health;          /* /healthz body, without staleness */
	uint64_t staleness_ms; /* at snap_us */
	uint64_t snap_us;
	uint64_t max_staleness_ms;
	char addr[AGENT_URL_MAX]; /* for log lines */
};

/* ------------------------------------------------------------------------ */
/* Building the snapshot (loop thread)                                      */
/* ------------------------------------------------------------------------ */

static void
put(revokd_buf *b, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		(void)revokd_buf_append(b, line,
		    (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* A metric's HELP and TYPE lines. */
static void
head(revokd_buf *b, const char *name, const char *type, const char *help)
{
	put(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Counters of the local sockets and of refused peer connections. */
static void
metrics_sockets(agent *a, revokd_buf *b, const char *r)
{
	agent_local *socks[2] = { a->query, a->admin };
	static const char *const names[2] = { "query", "admin" };
	agent_net_stats ns;

	head(b, "revokd_socket_connections", "gauge",
	    "Local socket connections open.");
	for (int i = 0; i < 2; i++)
		if (socks[i])
			put(b,
			    "revokd_socket_connections{region=\"%s\",socket=\"%"
			    "s\"} %u\n",
			    r, names[i], agent_local_connections(socks[i]));
	head(b, "revokd_socket_dropped_total", "counter",
	    "Local clients cut (unread output; over the sockets' memory "
	    "budget), refused (too many) or sent oversize requests.");
	for (int i = 0; i < 2; i++) {
		agent_local_stats st;

		if (!socks[i])
			continue;
		agent_local_get_stats(socks[i], &st);
		put(b,
		    "revokd_socket_dropped_total{region=\"%s\",socket=\"%s\","
		    "why=\"slow\"} %llu\n",
		    r, names[i], (unsigned long long)st.cut_slow);
		put(b,
		    "revokd_socket_dropped_total{region=\"%s\",socket=\"%s\","
		    "why=\"memory\"} %llu\n",
		    r, names[i], (unsigned long long)st.cut_memory);
		put(b,
		    "revokd_socket_dropped_total{region=\"%s\",socket=\"%s\","
		    "why=\"refused\"} %llu\n",
		    r, names[i], (unsigned long long)st.refused);
		put(b,
		    "revokd_socket_dropped_total{region=\"%s\",socket=\"%s\","
		    "why=\"oversize\"} %llu\n",
		    r, names[i], (unsigned long long)st.oversize);
	}
	if (a->net == NULL)
		return;
	agent_net_get_stats(a->net, &ns);
	head(b, "revokd_peer_refused_total", "counter",
	    "Peer connections refused (TLS, handshake, timeout, too many).");
	put(b, "revokd_peer_refused_total{region=\"%s\"} %llu\n", r,
	    (unsigned long long)(ns.refused + ns.timeouts));
}

static void
metrics_agent(agent *a, revokd_buf *b, const char *r)
{
	engine_stats es;

	engine_get_stats(a->engine, &es);
	head(b, "revokd_entries", "gauge", "Entries in the store.");
	put(b, "revokd_entries{region=\"%s\"} %llu\n", r,
	    (unsigned long long)crdt_store_count(a->store));
	head(b, "revokd_staleness_seconds", "gauge",
	    "How old the oldest origin region's known writes may be.");
	put(b, "revokd_staleness_seconds{region=\"%s\"} %.3f\n", r,
	    agent_staleness_ms(a) / 1000.0);
	head(b, "revokd_checks_total", "counter", "Checks answered.");
	put(b, "revokd_checks_total{region=\"%s\"} %llu\n", r,
	    (unsigned long long)a->checks);
	head(b, "revokd_checks_revoked_total", "counter",
	    "Checks answered with a revoked verdict.");
	put(b, "revokd_checks_revoked_total{region=\"%s\"} %llu\n", r,
	    (unsigned long long)a->check_revoked);
	head(b, "revokd_writes_total", "counter", "Admin writes committed.");
	put(b, "revokd_writes_total{region=\"%s\"} %llu\n", r,
	    (unsigned long long)a->writes);
	head(b, "revokd_write_errors_total", "counter",
	    "Admin writes refused by the store.");
	put(b, "revokd_write_errors_total{region=\"%s\"} %llu\n", r,
	    (unsigned long long)a->write_errors);
	head(b, "revokd_merges_total", "counter",
	    "Entries from peers that changed local state.");
	put(b, "revokd_merges_total{region=\"%s\"} %llu\n", r,
	    (unsigned long long)es.entries_changed);
	head(b, "revokd_repairs_total", "counter",
	    "Reconciliation sessions finished.");
	put(b, "revokd_repairs_total{region=\"%s\"} %llu\n", r,
	    (unsigned long long)es.recon_done);
	head(b, "revokd_repairs_refused_total", "counter",
	    "Reconciliation sessions peers asked to lead, refused as too "
	    "many.");
	put(b, "revokd_repairs_refused_total{region=\"%s\"} %llu\n", r,
	    (unsigned long long)es.recon_limited);
	head(b, "revokd_pruned_total", "counter", "Expired entries pruned.");
	put(b, "revokd_pruned_total{region=\"%s\"} %llu\n", r,
	    (unsigned long long)es.pruned);
	metrics_sockets(a, b, r);
	head(b, "revokd_confirm_lag_seconds", "gauge",
	    "Mean time from commit to a peer's confirmation of waited writes.");
	put(b, "revokd_confirm_lag_seconds{region=\"%s\"} %.3f\n", r,
	    a->confirm_lag_n
	        ? a->confirm_lag_ms_sum / 1000.0 / (double)a->confirm_lag_n
	        : 0.0);
}

static void
metrics_peers(agent *a, revokd_buf *b, const char *r)
{
	uint64_t now_us = agent_now_us();
	static const char *const heads[][3] = {
		{ "revokd_peer_connected", "gauge", "1 when the link is up." },
		{ "revokd_peer_synced", "gauge",
		    "1 when the peer's freshness claims count." },
		{ "revokd_peer_rtt_seconds", "gauge",
		    "Round trip, ping/pong." },
		{ "revokd_peer_clock_offset_seconds", "gauge",
		    "Peer clock minus ours." },
		{ "revokd_peer_lag_seconds", "gauge",
		    "Age of what we know the peer's region wrote." },
		{ "revokd_peer_backlog", "gauge", "Entries waiting for it." },
		{ "revokd_peer_bytes_sent_total", "counter",
		    "Bytes sent, by kind (delta, repair, control)." },
		{ "revokd_peer_bytes_received_total", "counter",
		    "Bytes received." },
	};

	for (size_t m = 0; m < sizeof(heads) / sizeof(heads[0]); m++) {
		head(b, heads[m][0], heads[m][1], heads[m][2]);
		for (unsigned i = 0; i < a->cfg.n_peers; i++) {
			const char *p = a->cfg.peers[i].name;
			uint64_t wm =
			    engine_watermark(a->engine, a->cfg.peers[i].id);
			engine_peer_status st;

			engine_get_peer_status(a->engine, i, &st);
			switch (m) {
			case 0:
			case 1:
				put(b, "%s{region=\"%s\",peer=\"%s\"} %d\n",
				    heads[m][0], r, p,
				    m == 0 ? st.up : st.synced);
				break;
			case 2:
			case 3:
				put(b, "%s{region=\"%s\",peer=\"%s\"} %.6f\n",
				    heads[m][0], r, p,
				    m == 2 ? st.rtt_us / 1e6
				           : st.offset_us / 1e6);
				break;
			case 4:
				put(b, "%s{region=\"%s\",peer=\"%s\"} %.3f\n",
				    heads[m][0], r, p,
				    now_us > wm ? (now_us - wm) / 1e6 : 0.0);
				break;
			case 5:
				put(b, "%s{region=\"%s\",peer=\"%s\"} %zu\n",
				    heads[m][0], r, p, st.backlog);
				break;
			case 6:
				put(b,
				    "%s{region=\"%s\",peer=\"%s\",kind="
				    "\"delta\"}"
				    " %llu\n%s{region=\"%s\",peer=\"%s\","
				    "kind=\"repair\"} %llu\n%s{region=\"%s\","
				    "peer=\"%s\",kind=\"control\"} %llu\n",
				    heads[m][0], r, p,
				    (unsigned long long)st.sent.delta,
				    heads[m][0], r, p,
				    (unsigned long long)st.sent.repair,
				    heads[m][0], r, p,
				    (unsigned long long)st.sent.control);
				break;
			default:
				put(b, "%s{region=\"%s\",peer=\"%s\"} %llu\n",
				    heads[m][0], r, p,
				    (unsigned long long)st.bytes_received);
			}
		}
	}
}

/* Connections this endpoint dropped (httpd.h's limits). */
static void
metrics_http(struct agent_metrics *m, revokd_buf *b, const char *r)
{
	agent_httpd_stats st;

	agent_httpd_get_stats(m->httpd, &st);
	head(b, "revokd_metrics_dropped_total", "counter",
	    "Connections to /metrics and /healthz refused (32 open already), "
	    "cut at their 5 s deadline, or with heads over 8 KiB.");
	put(b,
	    "revokd_metrics_dropped_total{region=\"%s\",why=\"refused\"} "
	    "%llu\n",
	    r, (unsigned long long)st.refused);
	put(b,
	    "revokd_metrics_dropped_total{region=\"%s\",why=\"timeout\"} "
	    "%llu\n",
	    r, (unsigned long long)st.timeouts);
	put(b,
	    "revokd_metrics_dropped_total{region=\"%s\",why=\"oversize\"} "
	    "%llu\n",
	    r, (unsigned long long)st.oversize);
}

/* /healthz without the time-dependent fields, as JSON text. */
static char *
metrics_health(agent *a)
{
	json_t *o = json_object(), *peers = json_array();
	char *text;

	for (unsigned i = 0; i < a->cfg.n_peers; i++) {
		engine_peer_status st;

		engine_get_peer_status(a->engine, i, &st);
		json_array_append_new(peers,
		    json_pack("{s:s,s:b,s:b,s:f,s:f}", "region",
		        a->cfg.peers[i].name, "connected", st.up, "synced",
		        st.synced, "clock_offset_ms", st.offset_us / 1000.0,
		        "rtt_ms", st.rtt_us / 1000.0));
	}
	json_object_set_new(o, "region", json_string(a->cfg.region));
	json_object_set_new(o, "entries",
	    json_integer((json_int_t)crdt_store_count(a->store)));
	json_object_set_new(o, "peers", peers);
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return text;
}

void
agent_metrics_refresh(agent *a)
{
	struct agent_metrics *m = a->metrics;
	revokd_buf b = { 0 };

	if (m == NULL || a->engine == NULL)
		return;
	metrics_agent(a, &b, a->cfg.region);
	metrics_peers(a, &b, a->cfg.region);
	metrics_http(m, &b, a->cfg.region);
	(void)revokd_buf_append(&b, "", 1);
	free(m->text);
	free(m->health);
	m->text = (char *)b.data;
	m->health = metrics_health(a);
	m->staleness_ms = agent_staleness_ms(a);
	m->snap_us = agent_now_us();
}

/* ------------------------------------------------------------------------ */
/* Serving (loop thread, from httpd.c)                                      */
/* ------------------------------------------------------------------------ */

/* text as the body of r, with status (500 when out of memory). */
static void
metrics_reply(agent_httpd_reply *r, unsigned status, const char *type,
    const char *text)
{
	r->content_type = type;
	r->status = revokd_buf_append(&r->body, text, strlen(text)) == REVOKD_OK
	                ? status
	                : 500;
}

static void
metrics_get_metrics(struct agent_metrics *m, agent_httpd_reply *r)
{
	metrics_reply(r, m->text ? 200 : 503,
	    "text/plain; version=0.0.4; charset=utf-8",
	    m->text ? m->text : "starting\n");
}

static void
metrics_get_health(struct agent_metrics *m, agent_httpd_reply *r)
{
	uint64_t now_us = agent_now_us(), staleness = 0;
	json_t *o = NULL;
	char *text = NULL;
	bool ok;

	if (m->health != NULL) {
		o = json_loads(m->health, 0, NULL);
		staleness =
		    m->staleness_ms +
		    (now_us > m->snap_us ? (now_us - m->snap_us) / 1000 : 0);
	}
	if (o == NULL) {
		metrics_reply(r, 503, "application/json",
		    "{\"status\":\"starting\"}");
		return;
	}
	ok = staleness <= m->max_staleness_ms;
	json_object_set_new(o, "status", json_string(ok ? "ok" : "stale"));
	json_object_set_new(o, "server_time_ms",
	    json_integer((json_int_t)(now_us / 1000)));
	json_object_set_new(o, "staleness_ms",
	    json_integer((json_int_t)staleness));
	json_object_set_new(o, "max_staleness_ms",
	    json_integer((json_int_t)m->max_staleness_ms));
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	metrics_reply(r, ok ? 200 : 503, "application/json",
	    text ? text : "{}");
	free(text);
}

/* The handler of httpd.h: GET (or HEAD) of /metrics and /healthz. */
static void
metrics_serve(void *arg, const char *method, const char *path,
    agent_httpd_reply *r)
{
	struct agent_metrics *m = arg;
	bool known =
	    strcmp(path, "/metrics") == 0 || strcmp(path, "/healthz") == 0;

	if (!known)
		metrics_reply(r, 404, "text/plain; charset=utf-8",
		    "not found\n");
	else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		metrics_reply(r, 405, "text/plain; charset=utf-8",
		    "method not allowed\n");
	else if (strcmp(path, "/metrics") == 0)
		metrics_get_metrics(m, r);
	else
		metrics_get_health(m, r);
}

static void
metrics_log(void *arg, const char *event, const char *detail)
{
	struct agent_metrics *m = arg;

	agent_log(AGENT_LOG_WARN, event, "metrics", m->addr, "reason", detail,
	    NULL);
}

revokd_err
agent_metrics_start(agent *a, char *err, size_t err_len)
{
	struct agent_metrics *m;
	agent_httpd_config hc = { .addr = a->cfg.metrics,
		.handler = metrics_serve,
		.log = metrics_log };
	char why[AGENT_ERR_LEN];
	revokd_err e;

	if (a->cfg.metrics[0] == '\0')
		return REVOKD_OK;
	if ((m = calloc(1, sizeof(*m))) == NULL)
		return REVOKD_ENOMEM;
	m->max_staleness_ms = a->cfg.max_staleness_ms;
	snprintf(m->addr, sizeof(m->addr), "%s", a->cfg.metrics);
	hc.arg = m;
	if ((e = agent_httpd_start(a->loop, &hc, &m->httpd, why,
	         sizeof(why))) != REVOKD_OK) {
		/* why is "ADDR: reason". */
		snprintf(err, err_len, "metrics %s", why);
		free(m);
		return e;
	}
	a->metrics = m;
	agent_metrics_refresh(a);
	return REVOKD_OK;
}

void
agent_metrics_stop(struct agent_metrics *m)
{
	if (m == NULL)
		return;
	agent_httpd_stop(m->httpd);
	free(m->text);
	free(m->health);
	free(m);
}
