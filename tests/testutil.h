/*
 * testutil.h: helpers shared by the tests: temporary directories, random
 * crdt entries, and commands run as subprocesses. Header-only so each test
 * program stays one file.
 */
#ifndef REVOKD_TESTUTIL_H
#define REVOKD_TESTUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/revokd.h"
#include "crdt/crdt.h"

/* A fresh empty directory (free with tu_rmdir); aborts on failure. */
static inline char *
tu_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *path;

	if (asprintf(&path, "%s/revokd-test.XXXXXX", base ? base : "/tmp") <
	        0 ||
	    mkdtemp(path) == NULL) {
		perror("tu_tmpdir");
		abort();
	}
	return path;
}

static inline int
tu__rm(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	return remove(p);
}

/* Remove dir and everything below it, and free the path. */
static inline void
tu_rmdir(char *dir)
{
	if (dir == NULL)
		return;
	nftw(dir, tu__rm, 16, FTW_DEPTH | FTW_PHYS);
	free(dir);
}

/*
 * A random key from a pool of pool_size keys (so that random operations hit
 * the same keys again); pool_size 0 means a fresh random key.
 */
static inline void
tu_random_key(revokd_rng *rng, uint32_t pool_size, crdt_key *out)
{
	if (pool_size == 0) {
		revokd_rng_bytes(rng, out->b, CRDT_KEY_LEN);
		return;
	}
	revokd_rng r;

	revokd_rng_seed(&r, 0x6b657973 + revokd_rng_below(rng, pool_size));
	revokd_rng_bytes(&r, out->b, CRDT_KEY_LEN);
}

/* A random token value with exp in [now, now + 3600). */
static inline void
tu_random_token(revokd_rng *rng, int64_t now, crdt_token *t)
{
	/* Small HLC range so ties between revoke and restore happen. */
	uint64_t base = (uint64_t)now * 1000;

	memset(t, 0, sizeof(*t));
	t->exp = now + (int64_t)revokd_rng_below(rng, 3600);
	if (revokd_rng_below(rng, 4) != 0)
		t->revoked_at = CRDT_HLC_AT(base + revokd_rng_below(rng, 8)) +
		                revokd_rng_below(rng, 3);
	if (revokd_rng_below(rng, 3) == 0)
		t->restored_at = CRDT_HLC_AT(base + revokd_rng_below(rng, 8)) +
		                 revokd_rng_below(rng, 3);
	t->origin = (uint16_t)revokd_rng_below(rng, 4);
	t->reason = (uint8_t)revokd_rng_below(rng, 3);
}

/* A random canonical subject value over writer regions [0, regions). */
static inline void
tu_random_subject(revokd_rng *rng, uint32_t regions, crdt_subject *s)
{
	memset(s, 0, sizeof(*s));
	for (uint16_t r = 0; r < regions && s->n < CRDT_MAX_WRITERS; r++) {
		if (revokd_rng_below(rng, 2) == 0)
			continue;
		s->region[s->n] = r;
		s->count[s->n++] = 1 + revokd_rng_below(rng, 5);
	}
	if (revokd_rng_below(rng, 2) == 0)
		s->not_before_ms =
		    1700000000000ull + revokd_rng_below(rng, 5000);
}

/*
 * A random entry. The kind follows from the key (keys from the pool always
 * keep one kind), so a stream of these never mixes kinds under one key.
 */
static inline void
tu_random_entry(revokd_rng *rng, uint32_t pool_size, int64_t now, crdt_entry *e)
{
	memset(e, 0, sizeof(*e));
	tu_random_key(rng, pool_size, &e->key);
	e->kind = (crdt_kind)(CRDT_KIND_JTI + e->key.b[15] % 3);
	if (crdt_kind_is_token(e->kind))
		tu_random_token(rng, now, &e->u.token);
	else
		tu_random_subject(rng, 6, &e->u.subject);
}

/* Write all of buf to fd; false on error. */
static inline bool
tu_write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t w = write(fd, p, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		len -= (size_t)w;
	}
	return true;
}

/* Read len bytes from fd within timeout_ms; false on EOF, error, timeout. */
static inline bool
tu_read_full(int fd, void *buf, size_t len, int timeout_ms)
{
	uint8_t *p = buf;

	while (len > 0) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		ssize_t got;

		if (poll(&pfd, 1, timeout_ms) <= 0)
			return false;
		got = read(fd, p, len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return false;
		p += got;
		len -= (size_t)got;
	}
	return true;
}

/* CPU time (user and system) this process has used, in µs. */
static inline uint64_t
tu_cpu_us_self(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000 +
	       (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

/*
 * Wait up to ms for the child *pid to exit: its wait status, with *pid set
 * to 0 (reaped), or -1 when it is still running.
 */
static inline int
tu_reap_within(pid_t *pid, unsigned ms)
{
	int status;

	for (unsigned waited = 0; waited <= ms; waited += 5) {
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			*pid = 0;
			return status;
		}
		poll(NULL, 0, 5);
	}
	return -1;
}

/* ------------------------------------------------------------------------ */
/* Commands run as subprocesses                                             */
/* ------------------------------------------------------------------------ */

/* What a command run by tu_run printed, and how it ended. */
typedef struct tu_result {
	int status;      /* exit status; -1 if it did not exit normally */
	char *out, *err; /* all of stdout and stderr, NUL-terminated */
} tu_result;

/* The whole file at path, NUL-terminated (caller frees); aborts on failure. */
static inline char *
tu_slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	long len = -1;

	if (f != NULL && fseek(f, 0, SEEK_END) == 0)
		len = ftell(f);
	if (len >= 0 && fseek(f, 0, SEEK_SET) == 0)
		buf = malloc((size_t)len + 1);
	if (buf == NULL || fread(buf, 1, (size_t)len, f) != (size_t)len) {
		perror(path);
		abort();
	}
	buf[len] = '\0';
	fclose(f);
	return buf;
}

/* A new file at path holding text; aborts on failure. */
static inline void
tu_write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || !tu_write_full(fd, text, strlen(text)) ||
	    close(fd) != 0) {
		perror(path);
		abort();
	}
}

/* In a child: stdin from in, stdout and stderr into out and err, run argv. */
static inline void
tu__exec(const char *in, const char *out, const char *err, char *const argv[])
{
	int i = open(in, O_RDONLY);
	int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int e = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (i < 0 || o < 0 || e < 0 || dup2(i, 0) < 0 || dup2(o, 1) < 0 ||
	    dup2(e, 2) < 0)
		_exit(127);
	execv(argv[0], argv);
	_exit(127);
}

/*
 * Run argv (argv[0] a path, NULL-terminated) with input on stdin (NULL:
 * /dev/null), capturing stdout and stderr; free with tu_result_free.
 * Aborts when the command cannot be run at all.
 */
static inline tu_result
tu_run(const char *input, char *const argv[])
{
	char *dir = tu_tmpdir(), out[4096], err[4096], in[4096];
	tu_result r = { -1, NULL, NULL };
	int status;
	pid_t pid;

	snprintf(out, sizeof(out), "%s/out", dir);
	snprintf(err, sizeof(err), "%s/err", dir);
	snprintf(in, sizeof(in), "%s/in", dir);
	if (input != NULL)
		tu_write_file(in, input);
	if ((pid = fork()) == 0)
		tu__exec(input != NULL ? in : "/dev/null", out, err, argv);
	if (pid < 0 || waitpid(pid, &status, 0) != pid) {
		perror("tu_run");
		abort();
	}
	if (WIFEXITED(status))
		r.status = WEXITSTATUS(status);
	r.out = tu_slurp(out);
	r.err = tu_slurp(err);
	tu_rmdir(dir);
	return r;
}

static inline void
tu_result_free(tu_result *r)
{
	free(r->out);
	free(r->err);
}

/* Lines in s: its newlines. */
static inline size_t
tu_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

#endif /* REVOKD_TESTUTIL_H */
