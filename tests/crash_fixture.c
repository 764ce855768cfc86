/*
 * crash_fixture.c: the fixture of the crash-safety tests (crash_fixture.h).
 */
#include "crash_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

uint64_t crash_seed;

void
crash_seed_init(void)
{
	const char *env = getenv("REVOKD_TEST_SEED");

	if (env != NULL)
		crash_seed = strtoull(env, NULL, 0);
	else
		crash_seed =
		    (uint64_t)time(NULL) * 1000003u ^ (uint64_t)getpid();
	printf("crash: seed %llu (REVOKD_TEST_SEED=%llu repeats it)\n",
	    (unsigned long long)crash_seed, (unsigned long long)crash_seed);
	fflush(stdout);
}

/* ------------------------------------------------------------------------ */
/* Cluster                                                                  */
/* ------------------------------------------------------------------------ */

int
crash_setup(void **state)
{
	crash_state *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -1;
	*state = t;
	return 0;
}

int
crash_teardown(void **state)
{
	crash_state *t = *state;
	char why[1024];
	bool ok = true;

	if (t->c.n > 0 && !(ok = cluster_shutdown(&t->c, why, sizeof(why))))
		print_error("agent trouble: %s\n", why);
	/* The agents are gone: what they wrote can go. */
	if (t->small_fs[0] != '\0')
		(void)umount2(t->small_fs, MNT_DETACH);
	cluster_free(&t->c);
	for (int k = 0; k < CRASH_WRITERS; k++)
		if (t->w[k] != NULL) {
			crash_writer_free(t->w[k]);
			free(t->w[k]);
		}
	crdt_keyer_free(t->keyer);
	free(t->seen);
	free(t);
	return ok ? 0 : -1;
}

void
crash_cluster(crash_state *t, unsigned n, const cluster_options *o,
    const char *const tags[CRASH_WRITERS])
{
	assert_int_equal(cluster_new(n, o, &t->c), REVOKD_OK);
	t->keyer = crash_keyer(&t->c);
	for (int k = 0; k < CRASH_WRITERS; k++) {
		if (tags[k] == NULL)
			continue;
		assert_non_null(t->w[k] = calloc(1, sizeof(*t->w[k])));
		crash_writer_init(t->w[k], tags[k], t->keyer);
	}
}

void
crash_conf_replace(cluster *c, unsigned i, const char *from, const char *to)
{
	char buf[16384], out[16384], *at;
	FILE *f = fopen(c->node[i].conf, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	assert_non_null(at = strstr(buf, from));
	snprintf(out, sizeof(out), "%.*s%s%s", (int)(at - buf), buf, to,
	    at + strlen(from));
	assert_non_null(f = fopen(c->node[i].conf, "w"));
	assert_true(fputs(out, f) >= 0);
	assert_int_equal(fclose(f), 0);
}

void
crash_start(cluster *c, unsigned i)
{
	if (!cluster_start(c, i)) {
		cluster_print_log(c, i);
		fail_msg("%s did not start", c->node[i].name);
	}
}

void
crash_wait_ready(cluster *c, unsigned i)
{
	if (!cluster_wait_ready(c, i, CRASH_READY_MS)) {
		cluster_print_log(c, i);
		fail_msg("%s not ready", c->node[i].name);
	}
}

int
crash_admin_open(cluster *c, unsigned i)
{
	uint64_t end = cluster_now_ms() + CRASH_START_MS;
	int fd;

	while (
	    (fd = cluster_open(c->node[i].admin)) < 0 && cluster_now_ms() < end)
		usleep(5000);
	if (fd < 0) {
		cluster_print_log(c, i);
		fail_msg("%s: admin socket does not answer", c->node[i].name);
	}
	return fd;
}

/* ------------------------------------------------------------------------ */
/* Where a killed agent was                                                 */
/* ------------------------------------------------------------------------ */

const char *const crash_where_name[CRASH_AT_COUNT] = { "idle (epoll)",
	"sync (fsync/fdatasync/msync)", "write (lseek/writev/pwrite)",
	"socket read", "running (no syscall)", "other syscall", "unknown" };

static crash_where
crash_classify(long nr)
{
	switch (nr) {
#ifdef SYS_epoll_wait
	case SYS_epoll_wait:
#endif
	case SYS_epoll_pwait:
		return CRASH_AT_IDLE;
	case SYS_fsync:
	case SYS_fdatasync:
	case SYS_msync:
		return CRASH_AT_SYNC;
	case SYS_pwrite64:
	case SYS_lseek:
	case SYS_write:
	case SYS_writev:
		return CRASH_AT_WRITE;
	case SYS_read:
	case SYS_readv:
	case SYS_recvmsg:
		return CRASH_AT_SOCKET;
	default:
		return CRASH_AT_OTHER;
	}
}

/* What pid's first thread is doing, from /proc/PID/syscall. */
static crash_where
crash_where_now(pid_t pid)
{
	char path[64], buf[256];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/syscall", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return CRASH_AT_UNKNOWN;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return CRASH_AT_UNKNOWN;
	buf[n] = '\0';
	if (strncmp(buf, "running", 7) == 0)
		return CRASH_AT_RUNNING;
	if (buf[0] == '-')
		return CRASH_AT_UNKNOWN; /* blocked outside a system call */
	return crash_classify(strtol(buf, NULL, 10));
}

crash_where
crash_kill(cluster *c, unsigned i)
{
	crash_where at = crash_where_now(c->node[i].pid);

	cluster_kill(c, i);
	return at;
}

/* ------------------------------------------------------------------------ */
/* Keys and the store on disk                                               */
/* ------------------------------------------------------------------------ */

crdt_keyer *
crash_keyer(cluster *c)
{
	uint8_t secret[CRDT_SECRET_LEN];
	char path[600], err[512];
	crdt_keyer *k = NULL;

	snprintf(path, sizeof(path), "%s/pki/cluster.secret", c->dir);
	if (revokd_secret_load(path, secret, sizeof(secret), err,
	        sizeof(err)) != REVOKD_OK)
		fail_msg("secret: %s", err);
	assert_int_equal(crdt_keyer_new(secret, sizeof(secret), &k), REVOKD_OK);
	return k;
}

void
crash_jti_key(crdt_keyer *k, const char *id, crdt_key *out)
{
	assert_int_equal(crdt_key_derive(k, CRDT_KIND_JTI, id, strlen(id), out),
	    REVOKD_OK);
}

revokd_err
crash_store_open(cluster *c, unsigned i, crash_store *out)
{
	crdt_store_options o = { .read_only = true };
	char dir[600];
	revokd_err err;

	memset(out, 0, sizeof(*out));
	snprintf(dir, sizeof(dir), "%s/data", c->node[i].dir);
	if ((err = crdt_store_open(dir, &o, &out->store)) != REVOKD_OK)
		return err;
	if ((err = crdt_reader_new(out->store, &out->reader)) == REVOKD_OK &&
	    (err = crdt_reader_begin(out->reader)) == REVOKD_OK)
		return REVOKD_OK;
	crash_store_close(out);
	return err;
}

bool
crash_store_revoked(crash_store *s, const crdt_key *key)
{
	crdt_entry e;

	return crdt_reader_get(s->reader, key, &e) == REVOKD_OK &&
	       e.kind == CRDT_KIND_JTI && crdt_token_revoked(&e.u.token);
}

void
crash_store_close(crash_store *s)
{
	crdt_reader_free(s->reader);
	crdt_store_close(s->store);
	memset(s, 0, sizeof(*s));
}

/* ------------------------------------------------------------------------ */
/* The bulk writer                                                          */
/* ------------------------------------------------------------------------ */

void
crash_writer_init(crash_writer *w, const char *tag, crdt_keyer *keyer)
{
	memset(w, 0, sizeof(*w));
	snprintf(w->tag, sizeof(w->tag), "%s", tag);
	w->keyer = keyer;
	w->fd = -1;
}

void
crash_writer_free(crash_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	free(w->keys);
	free(w->batches);
	memset(w, 0, sizeof(*w));
	w->fd = -1;
}

void
crash_writer_connect(crash_writer *w, cluster *c, unsigned i)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = crash_admin_open(c, i);
	w->conn_first = w->n_batches;
	w->conn_acked = 0;
}

size_t
crash_writer_in_flight(const crash_writer *w)
{
	return w->n_batches - w->conn_first - w->conn_acked;
}

/* Room for n more items and one more batch. */
static void
crash_writer_grow(crash_writer *w, size_t n)
{
	if (w->n_items + n > w->cap_items) {
		size_t cap = w->cap_items ? w->cap_items : 4096;

		while (cap < w->n_items + n)
			cap *= 2;
		w->keys = realloc(w->keys, cap * sizeof(*w->keys));
		assert_non_null(w->keys);
		w->cap_items = cap;
	}
	if (w->n_batches == w->cap_batches) {
		size_t cap = w->cap_batches ? 2 * w->cap_batches : 256;

		w->batches = realloc(w->batches, cap * sizeof(*w->batches));
		assert_non_null(w->batches);
		w->cap_batches = cap;
	}
}

bool
crash_writer_send(crash_writer *w, uint32_t n)
{
	Revokd__Local__Request req = REVOKD__LOCAL__REQUEST__INIT;
	Revokd__Local__Import imp = REVOKD__LOCAL__IMPORT__INIT;
	Revokd__Local__ImportItem *items = calloc(n, sizeof(*items));
	Revokd__Local__ImportItem **itemp = calloc(n, sizeof(*itemp));
	char(*ids)[32] = calloc(n, sizeof(*ids));
	bool ok;

	assert_true(n > 0 && n <= CRASH_IMPORT_MAX);
	assert_true(items && itemp && ids);
	crash_writer_grow(w, n);
	for (uint32_t k = 0; k < n; k++) {
		size_t item = w->n_items + k;

		revokd__local__import_item__init(&items[k]);
		snprintf(ids[k], sizeof(ids[k]), "%s-%zu", w->tag, item);
		items[k].kind = (char *)"jti";
		items[k].exp = w->exp;
		items[k].id.data = (uint8_t *)ids[k];
		items[k].id.len = strlen(ids[k]);
		itemp[k] = &items[k];
		crash_jti_key(w->keyer, ids[k], &w->keys[item]);
	}
	imp.items = itemp;
	imp.n_items = n;
	req.body_case = REVOKD__LOCAL__REQUEST__BODY_IMPORT;
	req.import = &imp;
	ok = w->fd >= 0 && cluster_send(w->fd, &req);
	/* Sent in part counts as sent: the agent may have taken it all. */
	w->batches[w->n_batches++] =
	    (crash_batch){ (uint32_t)w->n_items, n, false };
	w->n_items += n;
	free(items);
	free(itemp);
	free(ids);
	return ok;
}

revokd_err
crash_writer_recv(crash_writer *w, unsigned timeout_ms)
{
	Revokd__Local__Response *resp = NULL;
	crash_batch *b;
	revokd_err err;

	if (w->fd < 0 || crash_writer_in_flight(w) == 0)
		return REVOKD_EINVAL;
	if ((err = cluster_recv(w->fd, timeout_ms, &resp)) != REVOKD_OK)
		return err;
	b = &w->batches[w->conn_first + w->conn_acked++];
	if (resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_WRITE &&
	    resp->write->batch != 0) {
		b->acked = true;
		w->acked_items += b->n;
		w->acked_batches++;
	} else if (resp->body_case == REVOKD__LOCAL__RESPONSE__BODY_ERROR) {
		const ProtobufCEnumValue *v =
		    protobuf_c_enum_descriptor_get_value(
		        &revokd__local__error_code__descriptor,
		        resp->error->code);

		snprintf(w->error, sizeof(w->error), "%s: %s",
		    v ? v->name : "?",
		    resp->error->message ? resp->error->message : "");
		err = REVOKD_EIO;
	} else {
		snprintf(w->error, sizeof(w->error), "answer of type %d",
		    (int)resp->body_case);
		err = REVOKD_EIO;
	}
	revokd__local__response__free_unpacked(resp, NULL);
	return err;
}

size_t
crash_writer_drain(crash_writer *w)
{
	size_t got = 0;

	while (crash_writer_in_flight(w) > 0 &&
	       crash_writer_recv(w, 1000) == REVOKD_OK)
		got++;
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	return got;
}

void
crash_writer_import(crash_writer *w, uint32_t n)
{
	revokd_err err;

	assert_true(crash_writer_send(w, n));
	if ((err = crash_writer_recv(w, CRASH_ANSWER_MS)) != REVOKD_OK)
		fail_msg("import of %u items: %s %s", n, revokd_strerror(err),
		    w->error);
}

/* ------------------------------------------------------------------------ */
/* A small filesystem                                                       */
/* ------------------------------------------------------------------------ */

/* Write text to a /proc file; false on failure. */
static bool
crash_proc_write(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);
	bool ok;

	if (fd < 0)
		return false;
	ok = write(fd, text, strlen(text)) == (ssize_t)strlen(text);
	return close(fd) == 0 && ok;
}

/*
 * A private mount namespace: as root a new one alone; otherwise in a new
 * user namespace that maps our own uid and gid, so files keep their owner.
 */
static bool
crash_private_mounts(char *why, size_t len)
{
	char map[64];
	uid_t uid = getuid();
	gid_t gid = getgid();

	if (unshare(CLONE_NEWNS) != 0) {
		if (unshare(CLONE_NEWUSER | CLONE_NEWNS) != 0) {
			snprintf(why, len, "unshare(user+mount): %s",
			    strerror(errno));
			return false;
		}
		snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)uid,
		    (unsigned)uid);
		if (!crash_proc_write("/proc/self/setgroups", "deny") ||
		    !crash_proc_write("/proc/self/uid_map", map)) {
			snprintf(why, len, "uid_map: %s", strerror(errno));
			return false;
		}
		snprintf(map, sizeof(map), "%u %u 1\n", (unsigned)gid,
		    (unsigned)gid);
		if (!crash_proc_write("/proc/self/gid_map", map)) {
			snprintf(why, len, "gid_map: %s", strerror(errno));
			return false;
		}
	}
	/* Nothing mounted here propagates back to the machine. */
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) {
		snprintf(why, len, "make / private: %s", strerror(errno));
		return false;
	}
	return true;
}

bool
crash_small_fs(crash_state *t, size_t bytes, char *why, size_t len)
{
	char dir[sizeof(t->small_fs)], opts[64];

	snprintf(dir, sizeof(dir), "%s/data", t->c.node[0].dir);
	if (mkdir(dir, 0750) != 0 && errno != EEXIST) {
		snprintf(why, len, "mkdir %s: %s", dir, strerror(errno));
		return false;
	}
	if (!crash_private_mounts(why, len))
		return false;
	snprintf(opts, sizeof(opts), "size=%zu,mode=0750", bytes);
	if (mount("revokd-test", dir, "tmpfs", MS_NOSUID | MS_NODEV, opts) !=
	    0) {
		snprintf(why, len, "mount tmpfs on %s: %s", dir,
		    strerror(errno));
		return false;
	}
	memcpy(t->small_fs, dir, sizeof(dir));
	return true;
}

size_t
crash_fill(const char *path)
{
	static char block[4096];
	size_t total = 0;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	for (;;) {
		ssize_t n = write(fd, block, sizeof(block));

		if (n <= 0)
			break;
		total += (size_t)n;
	}
	/* Then the last bytes a whole block could not take. */
	for (;;) {
		ssize_t n = write(fd, block, 1);

		if (n <= 0)
			break;
		total += (size_t)n;
	}
	close(fd);
	return total;
}

size_t
crash_file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (size_t)st.st_size : 0;
}
