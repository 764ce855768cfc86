/*
 * main.c: revokd, the revocation replication agent.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "agent/agent.h"
#include "agent/log.h"

static void
usage(FILE *f)
{
	fprintf(f,
	    "usage: revokd --config FILE [--check]\n"
	    "\n"
	    "Runs this region's revocation agent: keeps the revocation state\n"
	    "in the data dir, replicates it with the peer regions over mutual\n"
	    "TLS, and answers verifiers on the query socket and admins on the\n"
	    "admin socket. Logs go to stderr, one line per event.\n"
	    "\n"
	    "options:\n"
	    "  --config FILE  the configuration (INI; docs/operations.md)\n"
	    "  --check        check the configuration, secret and "
	    "certificates,\n"
	    "                 then exit (0 when all is well)\n"
	    "  --help         this text\n"
	    "  --version      the version\n"
	    "\n"
	    "SIGTERM or SIGINT stop it cleanly: writes already received are\n"
	    "committed and answered first.\n");
}

/* Everything --check looks at, without opening the store or sockets. */
static int
check_only(const agent_config *cfg)
{
	uint8_t secret[CRDT_SECRET_LEN];
	char err[AGENT_ERR_LEN];
	agent_tls *tls;

	if (revokd_secret_load(cfg->secret_file, secret, sizeof(secret), err,
	        sizeof(err)) != REVOKD_OK ||
	    agent_tls_load(cfg->ca, cfg->cert, cfg->key, cfg->region,
	        time(NULL), &tls, err, sizeof(err)) != REVOKD_OK) {
		fprintf(stderr, "revokd: %s\n", err);
		return 1;
	}
	memset(secret, 0, sizeof(secret));
	agent_tls_free(tls);
	printf("revokd: %s: configuration, secret and certificates are good\n",
	    cfg->path);
	return 0;
}

/*
 * Descriptors the agent may need: both local sockets full, the unproven
 * peer connections (64) and two links per peer, the store's files, the
 * metrics server, and some room.
 */
static rlim_t
fds_needed(const agent_config *cfg)
{
	return (rlim_t)2 * cfg->max_connections + 64 + 2 * cfg->n_peers + 64;
}

/*
 * Raise the soft descriptor limit to the hard one (systemd's soft default
 * is 1,024, far below what max_connections allows), and say so when even
 * the hard limit is short: local clients could then take the descriptors
 * that peers need to reconnect.
 */
static void
raise_fd_limit(const agent_config *cfg)
{
	struct rlimit rl;
	char have[32], need[32];

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur >= fds_needed(cfg))
		return;
	snprintf(have, sizeof(have), "%llu", (unsigned long long)rl.rlim_cur);
	snprintf(need, sizeof(need), "%llu",
	    (unsigned long long)fds_needed(cfg));
	agent_log(AGENT_LOG_WARN, "fd_limit", "limit", have, "needed", need,
	    "hint", "raise the hard RLIMIT_NOFILE or lower max_connections",
	    NULL);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "check", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static agent_config cfg;
	static agent a;
	const char *path = NULL;
	char err[AGENT_ERR_LEN];
	bool check = false;
	uv_loop_t loop;
	int c;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("revokd %s\n", REVOKD_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (path == NULL || optind != argc) {
		fprintf(stderr,
		    "revokd: --config FILE is required, and nothing "
		    "else (see --help)\n");
		return 2;
	}
	if (agent_config_load(path, &cfg, err, sizeof(err)) != REVOKD_OK) {
		fprintf(stderr, "revokd: %s\n", err);
		return 1;
	}
	if (check)
		return check_only(&cfg);
	agent_log_setup(stderr, cfg.log_format, cfg.log_level, cfg.region);
	raise_fd_limit(&cfg);
	signal(SIGPIPE, SIG_IGN);
	uv_loop_init(&loop);
	if (agent_start(&a, &cfg, &loop, err, sizeof(err)) != REVOKD_OK) {
		uv_run(&loop, UV_RUN_DEFAULT); /* close what was opened */
		uv_loop_close(&loop);
		fprintf(stderr, "revokd: %s\n", err);
		return 1;
	}
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return 0;
}
