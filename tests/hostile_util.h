/*
 * hostile_util.h: what the hostile-input tests (test_hostile_*.c) measure
 * of a running agent from the outside: its memory, CPU time and open
 * descriptors from /proc, a figure from its /metrics page, and the
 * descriptor limit of this process (which the agents it starts inherit).
 * Header-only, like testutil.h.
 */
#ifndef REVOKD_HOSTILE_UTIL_H
#define REVOKD_HOSTILE_UTIL_H

#include <arpa/inet.h>
#include <dirent.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

/* A "Field:  N kB" line of /proc/PID/status, in bytes; 0 when unreadable. */
static inline uint64_t
hu_proc_status(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t len = strlen(field);
	uint64_t kb = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/status", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	while (fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, len) == 0 && line[len] == ':' &&
		    sscanf(line + len + 1, "%" SCNu64, &kb) == 1)
			break;
	fclose(f);
	return kb * 1024;
}

/* The agent's anonymous resident memory (heap, stacks), in MiB. */
static inline double
hu_rss_anon_mib(pid_t pid)
{
	return (double)hu_proc_status(pid, "RssAnon") / (1024.0 * 1024.0);
}

/* User plus system CPU time of pid so far, in ms; 0 when unreadable. */
static inline uint64_t
hu_cpu_ms(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long long utime = 0, stime = 0;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", (long)pid);
	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	/* The command may hold spaces: fields count from its ')'. */
	if ((p = strrchr(buf, ')')) == NULL ||
	    sscanf(p + 2,
	        "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime,
	        &stime) != 2)
		return 0;
	return (utime + stime) * 1000 /
	       (unsigned long long)sysconf(_SC_CLK_TCK);
}

/* Descriptors pid has open; -1 when unreadable. */
static inline int
hu_fds(pid_t pid)
{
	char path[64];
	struct dirent *d;
	DIR *dir;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%ld/fd", (long)pid);
	if ((dir = opendir(path)) == NULL)
		return -1;
	while ((d = readdir(dir)) != NULL)
		n += d->d_name[0] != '.';
	closedir(dir);
	return n;
}

/*
 * Raise this process's soft RLIMIT_NOFILE to want (or as far as the hard
 * limit allows): the soft limit after. Agents started later inherit it.
 */
static inline rlim_t
hu_raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	return rl.rlim_cur;
}

/*
 * GET path from the HTTP server at 127.0.0.1:port into buf (headers and
 * body, NUL-ended, truncated to len); the bytes read, or -1. Bounded by
 * timeout_ms in all.
 */
static inline ssize_t
hu_http_get(uint16_t port, const char *path, char *buf, size_t len,
    unsigned timeout_ms)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct timespec ts;
	char req[256];
	size_t got = 0;
	uint64_t end;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int n;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	end = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 +
	      timeout_ms;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons(port);
	n = snprintf(req, sizeof(req),
	    "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
	    path);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
	    write(fd, req, (size_t)n) != n) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	while (got + 1 < len) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		uint64_t now;
		ssize_t r;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		now =
		    (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
		if (now >= end || poll(&pfd, 1, (int)(end - now)) <= 0)
			break;
		if ((r = read(fd, buf + got, len - 1 - got)) <= 0)
			break;
		got += (size_t)r;
	}
	close(fd);
	buf[got] = '\0';
	return (ssize_t)got;
}

/*
 * The value of the first /metrics line that starts with `series` (a metric
 * name with its labels, as the agent prints them), or -1.
 */
static inline double
hu_metric(uint16_t port, const char *series)
{
	static char page[256 * 1024];
	size_t len = strlen(series);
	const char *p;

	if (hu_http_get(port, "/metrics", page, sizeof(page), 5000) <= 0)
		return -1;
	for (p = page; p != NULL && *p != '\0'; p = strchr(p, '\n')) {
		if (*p == '\n')
			p++;
		if (strncmp(p, series, len) == 0 && p[len] == ' ')
			return strtod(p + len + 1, NULL);
	}
	return -1;
}

#endif /* REVOKD_HOSTILE_UTIL_H */
