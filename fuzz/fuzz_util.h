/*
 * fuzz_util.h: what the libFuzzer targets share: a reader that takes
 * integers and byte runs off the fuzzer's input (running dry gives zeros),
 * a failure that names what broke, and a scratch directory made once per
 * process and removed when it exits.
 *
 * Scratch directories live under $REVOKD_FUZZ_TMP, else /dev/shm (memory:
 * stores and sockets there cost no disk I/O), else $TMPDIR or /tmp.
 * scripts/fuzz points REVOKD_FUZZ_TMP at a directory of its own and removes
 * it afterwards, so what a crashing process could not clean up goes too.
 */
#ifndef REVOKD_FUZZ_UTIL_H
#define REVOKD_FUZZ_UTIL_H

#include <ftw.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * UBSan findings stop the run as ASan's do, so libFuzzer keeps the input
 * (the build's -fsanitize=undefined recovers by default). Defined here, in
 * the one file of each target that includes this header.
 */
const char *__ubsan_default_options(void);
const char *
__ubsan_default_options(void)
{
	return "halt_on_error=1:print_stacktrace=1";
}

/* ------------------------------------------------------------------------ */
/* Reading the input                                                        */
/* ------------------------------------------------------------------------ */

/* The rest of the fuzzer's input. */
typedef struct fz_in {
	const uint8_t *p;
	size_t n;
} fz_in;

static inline bool
fz_empty(const fz_in *in)
{
	return in->n == 0;
}

static inline uint8_t
fz_u8(fz_in *in)
{
	if (in->n == 0)
		return 0;
	in->n--;
	return *in->p++;
}

/* n bytes little-endian (n <= 8); missing bytes read as zero. */
static inline uint64_t
fz_le(fz_in *in, int n)
{
	uint64_t v = 0;

	for (int i = 0; i < n; i++)
		v |= (uint64_t)fz_u8(in) << (8 * i);
	return v;
}

static inline uint16_t
fz_u16(fz_in *in)
{
	return (uint16_t)fz_le(in, 2);
}

static inline uint32_t
fz_u32(fz_in *in)
{
	return (uint32_t)fz_le(in, 4);
}

static inline uint64_t
fz_u64(fz_in *in)
{
	return fz_le(in, 8);
}

/* Up to want bytes, borrowed from the input: *len says how many. */
static inline const uint8_t *
fz_bytes(fz_in *in, size_t want, size_t *len)
{
	const uint8_t *p = in->p;

	*len = want < in->n ? want : in->n;
	in->p += *len;
	in->n -= *len;
	return p;
}

/*
 * Harness code that loops over whole stores or tables: kept out of the
 * coverage feedback, whose counters it would only blur (and slow). Not
 * inlined: coverage is added after inlining, into the caller's body.
 */
#define FZ_NOCOV __attribute__((no_sanitize("coverage"), noinline))

/* ------------------------------------------------------------------------ */
/* Failing                                                                  */
/* ------------------------------------------------------------------------ */

/* An invariant broke: say which, where, and crash so libFuzzer keeps it. */
#define FZ_CHECK(cond, ...)                                                    \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr,                                        \
			    "%s:%d: invariant failed: %s: ", __FILE__,         \
			    __LINE__, #cond);                                  \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

/* REVOKD_FUZZ_VERBOSE is set: targets say what each input did (triage). */
static inline bool
fz_verbose(void)
{
	static int v = -1;

	if (v < 0)
		v = getenv("REVOKD_FUZZ_VERBOSE") != NULL;
	return v;
}

/* ------------------------------------------------------------------------ */
/* Scratch directories                                                      */
/* ------------------------------------------------------------------------ */

static inline int
fz__rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

/* Remove path and everything under it. */
static inline void
fz_rmtree(const char *path)
{
	if (path != NULL)
		nftw(path, fz__rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Remove what is inside path, keeping path. */
static inline int
fz__rm_inside(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	(void)st;
	(void)flag;
	if (ftw->level > 0)
		remove(path);
	return 0;
}

static inline void
fz_empty_dir(const char *path)
{
	nftw(path, fz__rm_inside, 16, FTW_DEPTH | FTW_PHYS);
}

static char fz__tmp_root[256];

static inline void
fz__tmp_cleanup(void)
{
	fz_rmtree(fz__tmp_root);
}

/*
 * The process's scratch directory, made on first use (named after tag) and
 * removed at exit. Short, so that Unix socket paths inside it fit.
 */
static inline const char *
fz_tmpdir(const char *tag)
{
	const char *base = getenv("REVOKD_FUZZ_TMP");

	if (fz__tmp_root[0] != '\0')
		return fz__tmp_root;
	if (base == NULL || *base == '\0')
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : NULL;
	if (base == NULL && ((base = getenv("TMPDIR")) == NULL || !*base))
		base = "/tmp";
	snprintf(fz__tmp_root, sizeof(fz__tmp_root), "%s/rvk-%s-XXXXXX", base,
	    tag);
	if (mkdtemp(fz__tmp_root) == NULL) {
		perror(fz__tmp_root);
		abort();
	}
	atexit(fz__tmp_cleanup);
	return fz__tmp_root;
}

#endif /* REVOKD_FUZZ_UTIL_H */
