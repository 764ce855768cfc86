/*
 * config.h: revokd's configuration file (INI, parsed with inih).
 *
 *   [agent]
 *   region = eu-west-1            ; this region's name: its certificate's CN
 *   region_id = 3                 ; 1..65535, unique in the cluster
 *   cluster = prod                ; must match every peer's
 *   data_dir = /var/lib/revokd
 *   secret_file = /etc/revokd/cluster.secret   ; 32 bytes, mode 0600/0400
 *   query_socket = /run/revokd/query.sock      ; verifiers, mode 0660
 *   admin_socket = /run/revokd/admin.sock      ; admins, mode 0600
 *   metrics = 127.0.0.1:9464      ; HTTP /metrics and /healthz (this is the
 *                                 ; default); "off" for none
 *   max_token_lifetime = 3600     ; s; exp of a revocation given none
 *   prune_leeway = 300            ; s past exp before an entry is pruned
 *   max_staleness = 5000          ; ms; /healthz fails beyond it
 *   log_format = logfmt           ; or json
 *   log_level = info              ; debug, info, warn, error
 *
 *   [tls]
 *   listen = tls+tcp://0.0.0.0:7400
 *   ca = /etc/revokd/pki/ca.pem
 *   cert = /etc/revokd/pki/eu-west-1.pem
 *   key = /etc/revokd/pki/eu-west-1.key       ; mode 0600/0400
 *
 *   [limits]
 *   max_message = 1048576         ; bytes, frames in and out (64 KiB..64 MiB)
 *   backlog = 65536               ; entries queued per peer
 *   max_connections = 4096        ; local socket connections
 *   client_output = 4194304       ; bytes buffered for one local client;
 *                                 ; at least max_message + 4
 *   map_size = 8589934592         ; bytes the store may grow to
 *
 *   [peer us-east-1]              ; one section per peer region
 *   id = 1
 *   url = tls+tcp://us-east-1.internal:7400
 *
 * Syntax is inih's: "key = value" (or "key: value"), comments start with
 * ';' or '#' at the start of a line, and with ';' after a value. Socket
 * paths are at most 107 bytes (a Unix socket address). Port 0 in listen and
 * metrics means any free port; peer URLs need a real one.
 *
 * Every problem is reported as "FILE:LINE: [section] key: what is wrong"
 * (without LINE when a required key is missing), and loading stops there.
 */
#ifndef AGENT_CONFIG_H
#define AGENT_CONFIG_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent/engine.h"
#include "common/revokd.h"

/* Room for one error message. */
#define AGENT_ERR_LEN 512

/* Longest URL, and longest address of the metrics server. */
#define AGENT_URL_MAX 256

/* Log output formats and levels. */
typedef enum agent_log_format {
	AGENT_LOG_LOGFMT = 0,
	AGENT_LOG_JSON = 1,
} agent_log_format;

typedef enum agent_log_level {
	AGENT_LOG_DEBUG = 0,
	AGENT_LOG_INFO = 1,
	AGENT_LOG_WARN = 2,
	AGENT_LOG_ERROR = 3,
} agent_log_level;

/* One peer region. */
typedef struct agent_peer_config {
	char name[WIRE_NAME_MAX + 1];
	uint16_t id;
	char url[AGENT_URL_MAX];
	int line; /* of its section header, for later errors */
} agent_peer_config;

/* The whole configuration, with defaults filled in. */
typedef struct agent_config {
	char path[PATH_MAX]; /* of the file it came from */

	char region[WIRE_NAME_MAX + 1];
	uint16_t region_id;
	char cluster[WIRE_NAME_MAX + 1];
	char data_dir[PATH_MAX];
	char secret_file[PATH_MAX];
	char query_socket[PATH_MAX];
	char admin_socket[PATH_MAX];
	char metrics[AGENT_URL_MAX]; /* "host:port", or "" when off */
	int64_t max_token_lifetime;  /* s, default 3600 */
	int64_t prune_leeway;        /* s, default 300 */
	uint64_t max_staleness_ms;   /* default 5000 */
	agent_log_format log_format;
	agent_log_level log_level;

	char listen[AGENT_URL_MAX];
	char ca[PATH_MAX];
	char cert[PATH_MAX];
	char key[PATH_MAX];

	size_t max_message;       /* default 1 MiB */
	size_t backlog;           /* default 65536 */
	unsigned max_connections; /* default 4096 */
	size_t client_output;     /* default 4 MiB */
	size_t map_size;          /* default 8 GiB */

	unsigned n_peers;
	agent_peer_config peers[ENGINE_MAX_PEERS];
} agent_config;

/*
 * Read and check path into *out. Unknown sections and keys, values that do
 * not parse or are out of range, missing required keys (region, region_id,
 * cluster, data_dir, secret_file, query_socket, admin_socket, listen, ca,
 * cert, key), duplicate keys or peers, a peer with our own name or id, two
 * peers with one id, and a peer without id or url are errors: REVOKD_ECONFIG
 * with the message in err. Files it names are not opened here.
 */
revokd_err agent_config_load(const char *path, agent_config *out, char *err,
    size_t err_len);

#endif /* AGENT_CONFIG_H */
