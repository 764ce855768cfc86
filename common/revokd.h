/*
 * revokd.h: what every module of revokd shares: the version, the project's
 * single error enum, a seeded random source for tests, the simulator and
 * the benchmarks (never for keys or nonces: those come from OpenSSL), a
 * byte buffer, private files, and times and numbers read from and written
 * as text for the command lines.
 */
#ifndef REVOKD_H
#define REVOKD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The version every binary prints for --version. */
#define REVOKD_VERSION "0.1.0"

/*
 * The error map: one line per error, name and message. Codes from LMDB, errno,
 * nng and OpenSSL are translated into these where they enter our code, so a
 * caller only ever sees a revokd_err.
 */
#define REVOKD_ERR_MAP(X)                                                      \
	X(OK, "success")                                                       \
	X(NOMEM, "out of memory")                                              \
	X(INVAL, "invalid argument")                                           \
	X(IO, "input/output error")                                            \
	X(NOTFOUND, "not found")                                               \
	X(EXIST, "already exists")                                             \
	X(CORRUPT, "stored data is corrupt")                                   \
	X(SCHEMA, "store was written by an incompatible version")              \
	X(LOCKED, "data dir is locked by another process")                     \
	X(MAPFULL, "store is full: map size reached")                          \
	X(NOSPACE, "no space left on device")                                  \
	X(MAPRESIZED, "store map was grown by the writer")                     \
	X(READERS, "too many store readers")                                   \
	X(PERM, "permission denied")                                           \
	X(CRYPTO, "cryptographic operation failed")                            \
	X(TOOBIG, "size limit exceeded")                                       \
	X(MALFORMED, "malformed input")                                        \
	X(KIND, "entry kind does not match the stored entry")                  \
	X(LIMIT, "too many writer regions in one counter")                     \
	X(CLOCK, "remote clock too far ahead")                                 \
	X(AGAIN, "try again")                                                  \
	X(CLOSED, "connection closed")                                         \
	X(TIMEDOUT, "timed out")                                               \
	X(AUTH, "authentication failed")                                       \
	X(PROTO, "protocol error")                                             \
	X(CONFIG, "invalid configuration")                                     \
	X(INTERNAL, "internal error")

/* A revokd error code. REVOKD_OK is zero; every error is positive. */
typedef enum revokd_err {
#define REVOKD__ERR_ENUM(name, msg) REVOKD_E##name,
	REVOKD_ERR_MAP(REVOKD__ERR_ENUM)
#undef REVOKD__ERR_ENUM
	    REVOKD_ERR_COUNT
} revokd_err;

/* REVOKD_OK under its usual name. */
#define REVOKD_OK REVOKD_EOK

/* A sentence describing err, for humans. Never NULL. */
const char *revokd_strerror(revokd_err err);

/* The code's short name ("NOMEM"), for logs and JSON. Never NULL. */
const char *revokd_err_name(revokd_err err);

/* An errno value as a revokd_err. */
revokd_err revokd_err_from_errno(int errnum);

/*
 * printf into err, the caller's buffer of err_len bytes for the message
 * that goes with a revokd_err (cut to fit). Nothing when err is NULL or
 * err_len is 0, so that a caller may decline the message.
 */
void revokd_errf(char *err, size_t err_len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* revokd_errf, then return code: `return revokd_failf(err, ...);`. */
revokd_err revokd_failf(char *err, size_t err_len, revokd_err code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * A small, fast, seeded pseudo-random source (xoshiro256**, seeded through
 * splitmix64). Deterministic for a given seed on every platform, which is what
 * the simulator's reproducibility and the property tests rest on.
 */
typedef struct revokd_rng {
	uint64_t s[4];
} revokd_rng;

/* Seed rng from one 64-bit value. */
void revokd_rng_seed(revokd_rng *rng, uint64_t seed);

/* The next 64 random bits. */
uint64_t revokd_rng_next(revokd_rng *rng);

/* A uniform integer in [0, bound); bound must be positive. */
uint64_t revokd_rng_below(revokd_rng *rng, uint64_t bound);

/* A uniform double in [0, 1). */
double revokd_rng_unit(revokd_rng *rng);

/* Fill buf with len random bytes. */
void revokd_rng_bytes(revokd_rng *rng, void *buf, size_t len);

/*
 * A growable byte buffer. Grows by doubling; never shrinks until freed.
 * A zeroed revokd_buf is empty and ready.
 */
typedef struct revokd_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
} revokd_buf;

/* Make room for len more bytes; REVOKD_ENOMEM when it cannot. */
revokd_err revokd_buf_reserve(revokd_buf *b, size_t len);

/* Append len bytes. */
revokd_err revokd_buf_append(revokd_buf *b, const void *data, size_t len);

/* Drop the first len bytes, keeping the rest. */
void revokd_buf_consume(revokd_buf *b, size_t len);

/* Free the memory and empty the buffer. */
void revokd_buf_free(revokd_buf *b);

/* ------------------------------------------------------------------------ */
/* Private files                                                            */
/* ------------------------------------------------------------------------ */

/*
 * Check that path is a regular file that only its owner may read or write
 * (no group or other permission bits), as secrets and private keys must be.
 * REVOKD_EPERM (mode), REVOKD_ENOTFOUND, or REVOKD_EIO, with err saying which
 * and naming the file and its mode.
 */
revokd_err revokd_private_file_check(const char *path, char *err,
    size_t err_len);

/* The longest secret revokd_secret_load reads. */
#define REVOKD_SECRET_MAX 64

/*
 * Load a secret of exactly len bytes (at most REVOKD_SECRET_MAX) from a
 * private file, checked on the descriptor it is read from. Errors as
 * revokd_private_file_check, or REVOKD_ECONFIG for a wrong length.
 */
revokd_err revokd_secret_load(const char *path, uint8_t *secret, size_t len,
    char *err, size_t err_len);

/* ------------------------------------------------------------------------ */
/* Times and numbers as text                                                */
/* ------------------------------------------------------------------------ */

/*
 * How the command lines read and write times and numbers. Readers take
 * the whole string, nothing around it (no sign, no space), and write *out
 * only on success. Writers never fail: what cannot be a date is written
 * as a number.
 */

/* The latest time accepted anywhere: 9999-12-31T23:59:59Z, unix seconds. */
#define REVOKD_TIME_MAX_S 253402300799ull

/* Room for a time written by revokd_format_s or revokd_format_ms. */
#define REVOKD_TIME_LEN 40

/* The wall clock, unix ms. */
uint64_t revokd_clock_ms(void);

/*
 * Whether an age in ms, measured at now_ms, reaches back before 2000: it
 * was then measured from a time never set (nothing heard yet), and is no
 * real age.
 */
bool revokd_age_unknown(uint64_t age_ms, uint64_t now_ms);

/* A decimal number in [0, max], digits only. */
bool revokd_parse_u64(const char *s, uint64_t max, uint64_t *out);

/*
 * Seconds above 0 with optional decimals ("2", "0.5", ".25") into whole
 * ms, at most UINT32_MAX; digits past the third decimal are cut.
 */
bool revokd_parse_seconds_ms(const char *s, uint32_t *ms);

/*
 * YYYY-MM-DDTHH:MM:SS[.fff]Z (UTC, 1970 to 9999) into unix ms; digits
 * past the third decimal are cut.
 */
bool revokd_parse_iso_ms(const char *s, uint64_t *ms);

/* YYYY-MM-DDTHH:MM:SSZ, whole seconds only, into unix seconds. */
bool revokd_parse_iso_s(const char *s, int64_t *secs);

/*
 * Unix seconds (up to REVOKD_TIME_MAX_S) or an ISO-8601 UTC time as
 * revokd_parse_iso_ms reads it, in unix ms.
 */
bool revokd_parse_time_ms(const char *s, uint64_t *ms);

/*
 * Unix seconds as ISO-8601 UTC ("2026-11-22T13:00:00Z") into buf, or as
 * the number when gmtime cannot break it down. Returns buf.
 */
const char *revokd_format_s(int64_t s, char *buf, size_t len);

/*
 * Unix ms as ISO-8601 UTC with milliseconds ("2026-11-22T13:00:00.250Z")
 * into buf, or as "N ms" when gmtime cannot break it down. Returns buf.
 */
const char *revokd_format_ms(uint64_t ms, char *buf, size_t len);

#endif /* REVOKD_H */
