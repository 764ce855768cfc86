/*
 * cluster.c: real revokd agents on loopback (see cluster.h).
 */
#include "bench/cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *const cluster_names[CLUSTER_MAX] = { "alpha", "beta",
	"gamma", "delta", "epsilon", "zeta", "eta", "theta" };

/*
 * The process groups of every agent this process started, and of what the
 * caller added with cluster_guard: killed at exit and on SIGINT, SIGTERM
 * or SIGHUP, so that nothing started here outlives it.
 */
static volatile pid_t cluster_pids[64];
static bool cluster_guard_set;

static int cluster_connect(const char *path);

uint64_t
cluster_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void
cluster_sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static void
cluster_kill_all(void)
{
	for (size_t i = 0; i < sizeof(cluster_pids) / sizeof(*cluster_pids);
	     i++)
		if (cluster_pids[i] > 0) {
			kill(-cluster_pids[i], SIGKILL);
			waitpid(cluster_pids[i], NULL, 0);
			cluster_pids[i] = 0;
		}
}

/* Only async-signal-safe calls: kill the groups, then die of sig. */
static void
cluster_on_signal(int sig)
{
	for (size_t i = 0; i < sizeof(cluster_pids) / sizeof(*cluster_pids);
	     i++)
		if (cluster_pids[i] > 0)
			kill(-cluster_pids[i], SIGKILL);
	signal(sig, SIG_DFL);
	raise(sig);
}

/* At the first guarded child: the exit handler and the signal handlers. */
static void
cluster_guard_install(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };

	if (cluster_guard_set)
		return;
	cluster_guard_set = true;
	atexit(cluster_kill_all);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction sa = { .sa_handler = cluster_on_signal }, old;

		/* A handler the program set itself is left alone. */
		if (sigaction(sigs[i], NULL, &old) == 0 &&
		    old.sa_handler == SIG_DFL)
			sigaction(sigs[i], &sa, NULL);
	}
}

void
cluster_guard(pid_t pid, bool add)
{
	cluster_guard_install();
	for (size_t i = 0; i < sizeof(cluster_pids) / sizeof(*cluster_pids);
	     i++)
		if (add ? cluster_pids[i] == 0 : cluster_pids[i] == pid) {
			cluster_pids[i] = add ? pid : 0;
			return;
		}
}

/* Bind 127.0.0.1:port (0: any) and release it: the port bound, or 0. */
static uint16_t
cluster_try_port(uint16_t port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	uint16_t got = 0;

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(port);
	if (fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
		got = ntohs(sa.sin_port);
	if (fd >= 0)
		close(fd);
	return got;
}

/* The lowest port the kernel hands out to outgoing connections. */
static unsigned
cluster_ephemeral_low(void)
{
	FILE *f = fopen("/proc/sys/net/ipv4/ip_local_port_range", "r");
	unsigned low = 32768, high;

	if (f != NULL) {
		if (fscanf(f, "%u %u", &low, &high) != 2)
			low = 32768;
		fclose(f);
	}
	return low;
}

/*
 * A port below the ephemeral range when there is room: an agent restarted
 * on its port must find it free, and a port in that range can be taken
 * meanwhile by any outgoing connection on the machine. Ports are handed out
 * in sequence from a random start, so one process never gets a port twice
 * and two processes (ctest -j) collide only when their starts are close.
 */
uint16_t
cluster_free_port(void)
{
	static unsigned next;
	unsigned low = cluster_ephemeral_low(), base = 10000;

	if (next == 0 && getrandom(&next, sizeof(next), 0) != sizeof(next))
		next = (unsigned)getpid() * 2654435761u ^
		       (unsigned)cluster_now_ms();
	for (int k = 0; low > base + 1000 && k < 1000; k++) {
		unsigned port = base + next++ % (low - base);
		uint16_t got = cluster_try_port((uint16_t)port);

		if (got != 0)
			return got;
	}
	return cluster_try_port(0);
}

bool
cluster_write_file(cluster *c, const char *name, const char *text,
    unsigned mode)
{
	char path[1024];
	FILE *f;
	bool ok;

	snprintf(path, sizeof(path), "%s/%s", c->dir, name);
	if ((f = fopen(path, "w")) == NULL)
		return false;
	ok = fputs(text, f) >= 0;
	ok = fclose(f) == 0 && ok;
	return ok && chmod(path, mode) == 0;
}

/* ------------------------------------------------------------------------ */
/* Making a cluster                                                         */
/* ------------------------------------------------------------------------ */

static revokd_err
cluster_pki(cluster *c)
{
	char cmd[4096];
	int n = snprintf(cmd, sizeof(cmd), "%s/scripts/gen-certs %s/pki",
	    REVOKD_SOURCE_DIR, c->dir);

	for (unsigned i = 0; i < c->n; i++)
		n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " %s",
		    c->node[i].name);
	return system(cmd) == 0 ? REVOKD_OK : REVOKD_EIO;
}

static revokd_err
cluster_config(cluster *c, unsigned i, const cluster_options *o)
{
	cluster_node *nd = &c->node[i];
	char text[8192];
	int n;

	n = snprintf(text, sizeof(text),
	    "[agent]\nregion = %s\nregion_id = %u\ncluster = test\n"
	    "data_dir = %s/data\nsecret_file = %s/pki/cluster.secret\n"
	    "query_socket = %s\nadmin_socket = %s\n"
	    "metrics = 127.0.0.1:%u\n%s\n"
	    "[tls]\nlisten = tls+tcp://127.0.0.1:%u\nca = %s/pki/ca.pem\n"
	    "cert = %s/pki/%s.pem\nkey = %s/pki/%s.key\n",
	    nd->name, nd->id, nd->dir, c->dir, nd->query, nd->admin,
	    nd->metrics_port, o && o->extra_agent ? o->extra_agent : "",
	    nd->port, c->dir, c->dir, nd->name, c->dir, nd->name);
	if (o && o->extra_limits)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
		    "\n[limits]\n%s\n", o->extra_limits);
	for (unsigned j = 0; j < c->n; j++)
		if (j != i)
			n += snprintf(text + n, sizeof(text) - (size_t)n,
			    "\n[peer %s]\nid = %u\nurl = "
			    "tls+tcp://127.0.0.1:%u\n",
			    c->node[j].name, c->node[j].id, c->node[j].port);
	if (mkdir(nd->dir, 0700) != 0)
		return REVOKD_EIO;
	snprintf(text + n, sizeof(text) - (size_t)n, "%s", "");
	{
		FILE *f = fopen(nd->conf, "w");

		if (f == NULL)
			return REVOKD_EIO;
		fputs(text, f);
		fclose(f);
	}
	return REVOKD_OK;
}

revokd_err
cluster_new(unsigned n, const cluster_options *o, cluster *out)
{
	const char *base = getenv("TMPDIR");
	cluster *c = out;
	revokd_err err;

	if (n == 0 || n > CLUSTER_MAX)
		return REVOKD_EINVAL;
	memset(c, 0, sizeof(*c));
	snprintf(c->dir, sizeof(c->dir), "%s/revokd-cluster.XXXXXX",
	    base ? base : "/tmp");
	if (mkdtemp(c->dir) == NULL)
		return REVOKD_EIO;
	cluster_guard_install();
	c->n = n;
	for (unsigned i = 0; i < n; i++) {
		cluster_node *nd = &c->node[i];
		char dir[sizeof(nd->dir)];

		snprintf(nd->name, sizeof(nd->name), "%s", cluster_names[i]);
		nd->id = (uint16_t)(i + 1);
		nd->port = cluster_free_port();
		nd->metrics_port = cluster_free_port();
		/* From a copy: gcc sees every field as part of *c. */
		snprintf(dir, sizeof(dir), "%s/%s", c->dir, nd->name);
		memcpy(nd->dir, dir, sizeof(nd->dir));
		snprintf(nd->conf, sizeof(nd->conf), "%s/revokd.conf", dir);
		snprintf(nd->query, sizeof(nd->query), "%s/q.sock", dir);
		snprintf(nd->admin, sizeof(nd->admin), "%s/a.sock", dir);
		snprintf(nd->log, sizeof(nd->log), "%s/log", dir);
	}
	if ((err = cluster_pki(c)) != REVOKD_OK)
		return err;
	for (unsigned i = 0; i < n; i++)
		if ((err = cluster_config(c, i, o)) != REVOKD_OK)
			return err;
	return REVOKD_OK;
}

static int
cluster_rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

void
cluster_free(cluster *c)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->node[i].pid > 0)
			cluster_kill(c, i);
	if (c->dir[0] != '\0' && getenv("REVOKD_KEEP_CLUSTER") == NULL)
		nftw(c->dir, cluster_rm, 16, FTW_DEPTH | FTW_PHYS);
	memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------------------ */
/* Processes                                                                */
/* ------------------------------------------------------------------------ */

bool
cluster_start(cluster *c, unsigned i)
{
	cluster_node *nd = &c->node[i];
	const char *bin =
	    getenv("REVOKD_BIN") ? getenv("REVOKD_BIN") : REVOKD_PATH;
	pid_t pid;
	int status;

	if (nd->pid > 0 || (pid = fork()) < 0)
		return false;
	if (pid == 0) {
		int fd = open(nd->log, O_WRONLY | O_CREAT | O_APPEND, 0600);

		setpgid(0, 0);
		if (fd >= 0) {
			dup2(fd, STDERR_FILENO);
			close(fd);
		}
		execl(bin, bin, "--config", nd->conf, (char *)NULL);
		_exit(127);
	}
	setpgid(pid, pid);
	nd->pid = pid;
	cluster_guard(pid, true);
	/*
	 * An agent that refuses its config exits at once. A socket file left
	 * by a killed agent exists but refuses connections: connect.
	 */
	for (int k = 0; k < 20; k++) {
		int fd;

		if (waitpid(pid, &status, WNOHANG) == pid) {
			cluster_guard(pid, false);
			nd->pid = 0;
			return false;
		}
		if ((fd = cluster_connect(nd->admin)) >= 0) {
			close(fd);
			return true;
		}
		cluster_sleep_ms(25);
	}
	return true;
}

int
cluster_stop(cluster *c, unsigned i)
{
	cluster_node *nd = &c->node[i];
	int status = -1;

	if (nd->pid <= 0)
		return -1;
	kill(nd->pid, SIGTERM);
	for (int k = 0; k < 1000; k++) {
		if (waitpid(nd->pid, &status, WNOHANG) == nd->pid)
			break;
		cluster_sleep_ms(10);
		if (k == 999) {
			kill(-nd->pid, SIGKILL);
			waitpid(nd->pid, &status, 0);
		}
	}
	cluster_guard(nd->pid, false);
	nd->pid = 0;
	return status;
}

void
cluster_kill(cluster *c, unsigned i)
{
	cluster_node *nd = &c->node[i];

	if (nd->pid <= 0)
		return;
	kill(-nd->pid, SIGKILL);
	waitpid(nd->pid, NULL, 0);
	cluster_guard(nd->pid, false);
	nd->pid = 0;
}

/* ------------------------------------------------------------------------ */
/* The client                                                               */
/* ------------------------------------------------------------------------ */

static bool
cluster_io(int fd, void *buf, size_t len, bool writing)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = writing ? write(fd, p, len) : read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return false;
		p += n;
		len -= (size_t)n;
	}
	return true;
}

static int
cluster_connect(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { 10, 0 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -1;
	if (strlen(path) >= sizeof(sa.sun_path)) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	return fd;
}

revokd_err
cluster_call(const char *path, const Revokd__Local__Request *req,
    Revokd__Local__Response **resp)
{
	size_t len = revokd__local__request__get_packed_size(req);
	uint8_t *buf = malloc(4 + len), hdr[4];
	uint32_t n;
	int fd = cluster_connect(path);
	revokd_err err = REVOKD_EIO;

	if (buf == NULL || fd < 0)
		goto out;
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	revokd__local__request__pack(req, buf + 4);
	if (!cluster_io(fd, buf, 4 + len, true) ||
	    !cluster_io(fd, hdr, 4, false))
		goto out;
	n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	free(buf);
	if (n > (16u << 20) || (buf = malloc(n + 1)) == NULL) {
		buf = NULL;
		goto out;
	}
	if (!cluster_io(fd, buf, n, false))
		goto out;
	*resp = revokd__local__response__unpack(NULL, n, buf);
	err = *resp ? REVOKD_OK : REVOKD_EMALFORMED;
out:
	free(buf);
	if (fd >= 0)
		close(fd);
	return err;
}

int
cluster_check_jti(cluster *c, unsigned i, const char *jti)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Check q = REVOKD__LOCAL__CHECK__INIT;
	Revokd__Local__Response *resp;
	int verdict = -1;

	q.jti.data = (uint8_t *)jti;
	q.jti.len = strlen(jti);
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_CHECK;
	req.check = &q;
	if (cluster_call(c->node[i].query, &req, &resp) != REVOKD_OK)
		return -1;
	if (resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_CHECK)
		verdict = (int)resp->check->verdict;
	revokd__local__response__free_unpacked(resp, NULL);
	return verdict;
}

uint64_t
cluster_revoke(cluster *c, unsigned i, const char *jti, uint32_t wait_peers,
    Revokd__Local__Response **out)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__RevokeToken q = REVOKD__LOCAL__REVOKE_TOKEN__INIT;
	Revokd__Local__Wait w = REVOKD__LOCAL__WAIT__INIT;
	Revokd__Local__Response *resp;
	uint64_t batch = 0;

	q.jti.data = (uint8_t *)jti;
	q.jti.len = strlen(jti);
	if (wait_peers) {
		w.peers = wait_peers;
		w.timeout_ms = 10000;
		q.wait = &w;
	}
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_REVOKE_TOKEN;
	req.revoke_token = &q;
	if (cluster_call(c->node[i].admin, &req, &resp) != REVOKD_OK)
		return 0;
	if (resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_WRITE)
		batch = resp->write->batch;
	if (out != NULL)
		*out = resp;
	else
		revokd__local__response__free_unpacked(resp, NULL);
	return batch;
}

/* ------------------------------------------------------------------------ */
/* Waiting                                                                  */
/* ------------------------------------------------------------------------ */

static bool
cluster_ready_once(cluster *c, unsigned i)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Status q = REVOKD__LOCAL__STATUS__INIT;
	Revokd__Local__Response *resp;
	bool ready = false;

	req.body_case = REVOKD__LOCAL__REQUEST__BODY_STATUS;
	req.status = &q;
	if (cluster_call(c->node[i].admin, &req, &resp) != REVOKD_OK)
		return false;
	if (resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_STATUS) {
		ready = true;
		for (size_t k = 0; k < resp->status->n_peers; k++) {
			Revokd__Local__PeerStatus *ps = resp->status->peers[k];
			bool running = false;

			for (unsigned j = 0; j < c->n; j++)
				if (strcmp(c->node[j].name, ps->region) == 0)
					running = c->node[j].pid > 0;
			if (running && !(ps->connected && ps->synced))
				ready = false;
		}
	}
	revokd__local__response__free_unpacked(resp, NULL);
	return ready;
}

bool
cluster_wait_ready(cluster *c, unsigned i, unsigned timeout_ms)
{
	uint64_t end = cluster_now_ms() + timeout_ms;

	while (cluster_now_ms() < end) {
		if (cluster_ready_once(c, i))
			return true;
		cluster_sleep_ms(20);
	}
	return false;
}

unsigned
cluster_log_count(cluster *c, unsigned i, const char *needle)
{
	FILE *in = fopen(c->node[i].log, "r");
	char line[4096];
	unsigned n = 0;

	if (in == NULL)
		return 0;
	while (fgets(line, sizeof(line), in) != NULL)
		n += strstr(line, needle) != NULL;
	fclose(in);
	return n;
}

bool
cluster_log_has(cluster *c, unsigned i, const char *needle, unsigned timeout_ms)
{
	uint64_t end = cluster_now_ms() + timeout_ms;
	static char buf[1 << 20];

	do {
		FILE *f = fopen(c->node[i].log, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;

		if (f)
			fclose(f);
		buf[n] = '\0';
		if (strstr(buf, needle) != NULL)
			return true;
		cluster_sleep_ms(20);
	} while (cluster_now_ms() < end);
	return false;
}

/* ------------------------------------------------------------------------ */
/* A persistent client                                                      */
/* ------------------------------------------------------------------------ */

int
cluster_open(const char *path)
{
	return cluster_connect(path);
}

bool
cluster_send(int fd, const Revokd__Local__Request *req)
{
	size_t len = revokd__local__request__get_packed_size(req);
	uint8_t stack[512],
	    *buf = len + 4 <= sizeof(stack) ? stack : malloc(len + 4);
	bool ok;

	if (buf == NULL)
		return false;
	buf[0] = (uint8_t)(len >> 24);
	buf[1] = (uint8_t)(len >> 16);
	buf[2] = (uint8_t)(len >> 8);
	buf[3] = (uint8_t)len;
	revokd__local__request__pack(req, buf + 4);
	ok = cluster_io(fd, buf, 4 + len, true);
	if (buf != stack)
		free(buf);
	return ok;
}

/* len bytes from fd before the monotonic deadline `end`. */
static revokd_err
cluster_read_until(int fd, uint8_t *p, size_t len, uint64_t end)
{
	while (len > 0) {
		uint64_t now = cluster_now_ms();
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t n;

		if (now >= end)
			return REVOKD_ETIMEDOUT;
		if (poll(&pfd, 1, (int)(end - now)) == 0)
			return REVOKD_ETIMEDOUT;
		n = read(fd, p, len);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n == 0)
			return REVOKD_ECLOSED;
		if (n < 0)
			return errno == ECONNRESET ? REVOKD_ECLOSED
			                           : REVOKD_EIO;
		p += n;
		len -= (size_t)n;
	}
	return REVOKD_OK;
}

revokd_err
cluster_recv(int fd, unsigned timeout_ms, Revokd__Local__Response **resp)
{
	uint64_t end = cluster_now_ms() + timeout_ms;
	uint8_t hdr[4], *buf;
	revokd_err err;
	uint32_t n;

	if ((err = cluster_read_until(fd, hdr, 4, end)) != REVOKD_OK)
		return err;
	n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];
	if (n > (16u << 20))
		return REVOKD_EMALFORMED;
	if ((buf = malloc(n + 1)) == NULL)
		return REVOKD_ENOMEM;
	if ((err = cluster_read_until(fd, buf, n, end)) == REVOKD_OK) {
		*resp = revokd__local__response__unpack(NULL, n, buf);
		err = *resp ? REVOKD_OK : REVOKD_EMALFORMED;
	}
	free(buf);
	return err;
}

bool
cluster_wait_verdict(cluster *c, unsigned i, const char *jti, int verdict,
    unsigned timeout_ms)
{
	uint64_t end = cluster_now_ms() + timeout_ms;

	do {
		if (cluster_check_jti(c, i, jti) == verdict)
			return true;
		cluster_sleep_ms(10);
	} while (cluster_now_ms() < end);
	return false;
}

/* ------------------------------------------------------------------------ */
/* Logs                                                                     */
/* ------------------------------------------------------------------------ */

/* Node i's log into buf (at most len - 1 bytes, NUL-ended). */
static void
cluster_log_read(cluster *c, unsigned i, char *buf, size_t len)
{
	FILE *f = fopen(c->node[i].log, "r");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;

	if (f)
		fclose(f);
	buf[n] = '\0';
}

/* True when the line [p, end) holds every needle of the list. */
static bool
cluster_line_matches(const char *p, const char *end, const char *const *list,
    size_t n)
{
	char line[4096];
	size_t len = (size_t)(end - p) < sizeof(line) - 1 ? (size_t)(end - p)
	                                                  : sizeof(line) - 1;

	memcpy(line, p, len);
	line[len] = '\0';
	for (size_t k = 0; k < n; k++)
		if (strstr(line, list[k]) == NULL)
			return false;
	return true;
}

bool
cluster_log_line(cluster *c, unsigned i, unsigned timeout_ms, ...)
{
	static char buf[1 << 20];
	const char *list[16];
	uint64_t end = cluster_now_ms() + timeout_ms;
	size_t n = 0;
	va_list ap;

	va_start(ap, timeout_ms);
	while (n < sizeof(list) / sizeof(*list) &&
	       (list[n] = va_arg(ap, const char *)) != NULL)
		n++;
	va_end(ap);
	do {
		cluster_log_read(c, i, buf, sizeof(buf));
		for (const char *p = buf; *p != '\0';) {
			const char *nl = strchr(p, '\n');
			const char *eol = nl ? nl : p + strlen(p);

			if (cluster_line_matches(p, eol, list, n))
				return true;
			p = nl ? nl + 1 : eol;
		}
		cluster_sleep_ms(20);
	} while (cluster_now_ms() < end);
	return false;
}

bool
cluster_log_sanitizer(cluster *c, unsigned i, char *line, size_t len)
{
	static const char *const marks[] = { "ERROR: AddressSanitizer",
		"ERROR: LeakSanitizer",
		"runtime error:", "UndefinedBehaviorSanitizer" };
	static char buf[1 << 20];

	cluster_log_read(c, i, buf, sizeof(buf));
	for (size_t k = 0; k < sizeof(marks) / sizeof(*marks); k++) {
		const char *p = strstr(buf, marks[k]), *nl;

		if (p == NULL)
			continue;
		while (p > buf && p[-1] != '\n')
			p--;
		nl = strchr(p, '\n');
		snprintf(line, len, "%.*s", nl ? (int)(nl - p) : (int)strlen(p),
		    p);
		return true;
	}
	return false;
}

void
cluster_print_log(cluster *c, unsigned i)
{
	char buf[16384];
	FILE *f = fopen(c->node[i].log, "r");
	size_t n = 0;

	if (f != NULL) {
		if (fseek(f, -(long)(sizeof(buf) - 1), SEEK_END) != 0)
			rewind(f);
		else if (fgets(buf, sizeof(buf), f) ==
		         NULL) /* a partial line */
			rewind(f);
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	fprintf(stderr, "--- the end of %s's log (%s):\n%s---\n",
	    c->node[i].name, c->node[i].log, buf);
}

bool
cluster_shutdown(cluster *c, char *why, size_t len)
{
	char line[512];
	bool ok = true;

	why[0] = '\0';
	for (unsigned i = 0; i < c->n; i++) {
		int status;

		if (c->node[i].pid <= 0)
			continue;
		status = cluster_stop(c, i);
		if (ok && !(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
			snprintf(why, len, "%s: SIGTERM ended it with %s %d",
			    c->node[i].name,
			    WIFEXITED(status) ? "exit" : "signal",
			    WIFEXITED(status) ? WEXITSTATUS(status)
			                      : WTERMSIG(status));
			ok = false;
		}
	}
	for (unsigned i = 0; i < c->n && ok; i++)
		if (cluster_log_sanitizer(c, i, line, sizeof(line))) {
			snprintf(why, len, "%s: %s", c->node[i].name, line);
			ok = false;
		}
	return ok;
}

/* ------------------------------------------------------------------------ */
/* Other processes                                                          */
/* ------------------------------------------------------------------------ */

const char *
cluster_revokd_path(void)
{
	return getenv("REVOKD_BIN") ? getenv("REVOKD_BIN") : REVOKD_PATH;
}

int
cluster_run(const char *const argv[], char *out, size_t len,
    unsigned timeout_ms)
{
	uint64_t end = cluster_now_ms() + timeout_ms;
	char path[] = "/tmp/revokd-run.XXXXXX";
	int fd = mkstemp(path), status = -1;
	pid_t pid;
	ssize_t n;

	out[0] = '\0';
	if (fd < 0)
		return -1;
	unlink(path);
	if ((pid = fork()) < 0) {
		close(fd);
		return -1;
	}
	if (pid == 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		execv(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &status, WNOHANG) != pid) {
		if (cluster_now_ms() >= end) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			close(fd);
			return -1;
		}
		cluster_sleep_ms(5);
	}
	n = pread(fd, out, len - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return WIFSIGNALED(status) ? 128 + WTERMSIG(status) : -1;
}
