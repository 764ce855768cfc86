/*
 * fuzz_config.c: the configuration file parser (agent/config.c, over
 * inih). The input is the file: it goes into a memory file (memfd) that
 * the parser opens by its /proc/self/fd path, so nothing touches the disk.
 *
 * Checked on every input: the parser returns REVOKD_OK or an error with a
 * one-line message naming the file ("PATH: ..." or "PATH:LINE: ...", as
 * config.h promises); and a configuration it accepts holds what config.h
 * says it checks: a valid region name and id, strings that end within their
 * fields, socket paths that fit a Unix address, limits within their ranges,
 * client_output at least max_message + 4, peers with names and ids that are
 * not ours and ids that are unique.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "agent/config.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int config_fd = -1;
static char config_path[64];

/* A string field ends inside its array and is not empty when required. */
#define CHECK_STR(field, nonempty)                                             \
	do {                                                                   \
		size_t n_ = strnlen((field), sizeof(field));                   \
		FZ_CHECK(n_ < sizeof(field), #field " is not terminated");     \
		FZ_CHECK(!(nonempty) || n_ > 0, #field " is empty");           \
	} while (0)

static void
check_config(const agent_config *c)
{
	CHECK_STR(c->region, true);
	CHECK_STR(c->cluster, true);
	CHECK_STR(c->data_dir, true);
	CHECK_STR(c->secret_file, true);
	CHECK_STR(c->query_socket, true);
	CHECK_STR(c->admin_socket, true);
	CHECK_STR(c->metrics, false);
	CHECK_STR(c->listen, true);
	CHECK_STR(c->ca, true);
	CHECK_STR(c->cert, true);
	CHECK_STR(c->key, true);
	FZ_CHECK(strlen(c->region) <= WIRE_NAME_MAX &&
	             strlen(c->cluster) <= WIRE_NAME_MAX,
	    "names of %zu and %zu bytes", strlen(c->region),
	    strlen(c->cluster));
	FZ_CHECK(c->region_id >= 1, "region_id 0");
	FZ_CHECK(strlen(c->query_socket) <= 107 &&
	             strlen(c->admin_socket) <= 107,
	    "a socket path too long for sun_path");
	FZ_CHECK(strncmp(c->listen, "tls+tcp://", 10) == 0, "listen %s",
	    c->listen);
	FZ_CHECK(c->max_token_lifetime >= 1 &&
	             c->max_token_lifetime <= 31536000,
	    "max_token_lifetime %lld", (long long)c->max_token_lifetime);
	FZ_CHECK(c->prune_leeway >= 0 && c->prune_leeway <= 31536000,
	    "prune_leeway %lld", (long long)c->prune_leeway);
	FZ_CHECK(c->max_staleness_ms >= 1 && c->max_staleness_ms <= 86400000,
	    "max_staleness %llu", (unsigned long long)c->max_staleness_ms);
	FZ_CHECK(c->max_message >= 65536 && c->max_message <= 67108864,
	    "max_message %zu", c->max_message);
	FZ_CHECK(c->backlog >= 1 && c->backlog <= 16777216, "backlog %zu",
	    c->backlog);
	FZ_CHECK(c->max_connections >= 1 && c->max_connections <= 1000000,
	    "max_connections %u", c->max_connections);
	FZ_CHECK(c->client_output >= c->max_message + 4 &&
	             c->client_output <= 1073741824,
	    "client_output %zu (max_message %zu)", c->client_output,
	    c->max_message);
	FZ_CHECK(c->map_size >= 1048576, "map_size %zu", c->map_size);
	FZ_CHECK(c->log_format == AGENT_LOG_LOGFMT ||
	             c->log_format == AGENT_LOG_JSON,
	    "log_format %d", (int)c->log_format);
	FZ_CHECK(c->log_level >= AGENT_LOG_DEBUG &&
	             c->log_level <= AGENT_LOG_ERROR,
	    "log_level %d", (int)c->log_level);
	FZ_CHECK(c->n_peers <= ENGINE_MAX_PEERS, "%u peers", c->n_peers);
	for (unsigned i = 0; i < c->n_peers; i++) {
		const agent_peer_config *p = &c->peers[i];

		CHECK_STR(p->name, true);
		CHECK_STR(p->url, true);
		FZ_CHECK(strlen(p->name) <= WIRE_NAME_MAX, "peer name");
		FZ_CHECK(p->id >= 1 && p->id != c->region_id,
		    "peer %s has id %u (ours %u)", p->name, p->id,
		    c->region_id);
		FZ_CHECK(strcmp(p->name, c->region) != 0, "peer %s is us",
		    p->name);
		FZ_CHECK(strncmp(p->url, "tls+tcp://", 10) == 0, "peer url %s",
		    p->url);
		for (unsigned j = 0; j < i; j++)
			FZ_CHECK(c->peers[j].id != p->id &&
			             strcmp(c->peers[j].name, p->name) != 0,
			    "peers %u and %u share an id or a name", j, i);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	agent_config *c = malloc(sizeof(*c));
	char err[AGENT_ERR_LEN];
	revokd_err rc;

	FZ_CHECK(c != NULL, "out of memory");
	if (config_fd < 0) {
		config_fd = memfd_create("revokd-fuzz.conf", MFD_CLOEXEC);
		FZ_CHECK(config_fd >= 0, "memfd_create: %s", strerror(errno));
		snprintf(config_path, sizeof(config_path), "/proc/self/fd/%d",
		    config_fd);
	}
	FZ_CHECK(ftruncate(config_fd, 0) == 0 &&
	             pwrite(config_fd, data, size, 0) == (ssize_t)size,
	    "writing the memory file");
	memset(err, 0x55, sizeof(err));
	memset(c, 0xaa, sizeof(*c));
	rc = agent_config_load(config_path, c, err, sizeof(err));
	if (rc == REVOKD_OK) {
		check_config(c);
	} else {
		size_t n = strnlen(err, sizeof(err));

		FZ_CHECK(n < sizeof(err), "error message not terminated");
		FZ_CHECK(strncmp(err, config_path, strlen(config_path)) == 0 &&
		             err[strlen(config_path)] == ':',
		    "error message does not name the file: %s", err);
		FZ_CHECK(strchr(err, '\n') == NULL,
		    "error message of more than one line: %s", err);
		FZ_CHECK(rc == REVOKD_ECONFIG || rc == REVOKD_ENOMEM,
		    "agent_config_load gave %s", revokd_err_name(rc));
	}
	free(c);
	return 0;
}
