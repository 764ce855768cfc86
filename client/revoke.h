/*
 * revoke.h: librevoke, for services that verify JWTs and must honour
 * revocations made in any region.
 *
 * Three parts:
 *
 *   revoke_client  talks to the local revokd over its query socket: one
 *                  connection, blocking calls, or many checks pipelined in
 *                  one call. A broken connection is reopened on the next
 *                  call.
 *
 *   revoke_reader  opens the agent's data dir read-only and answers the
 *                  same checks in-process, with no IPC (about a
 *                  microsecond). It needs the cluster secret (to turn ids
 *                  into the agent's keys) and read access to the data dir.
 *                  It gives the socket's verdicts; its staleness comes from
 *                  what the agent saves every 50 ms, so it can read up to
 *                  that much older, never fresher, than the socket's.
 *
 *   revoke_verifier  verifies a compact JWS (ES256, RS256, EdDSA only;
 *                  keys from a JWKS file by kid), its iss, aud, exp, nbf,
 *                  iat and age, then its revocation (jti, sid, sub with
 *                  ver, iat against not-before) through a client or a
 *                  reader. Every failure has a reason.
 *
 * Processes: open clients, readers and verifiers after fork(), in the
 * process that uses them (LMDB's environments do not survive a fork).
 *
 * Threads: a revoke_client is used by one thread at a time (give each
 * thread its own). A revoke_reader and a revoke_verifier may be shared by
 * all the threads of a process (a process opens one reader per data dir);
 * a verifier whose source is a client makes its threads take turns on it.
 *
 * Memory: strings given to the library are borrowed for the duration of
 * the call; results are written into the caller's structures.
 */
#ifndef REVOKE_H
#define REVOKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The library's version. */
#define REVOKE_VERSION "0.1.0"

/* ------------------------------------------------------------------------ */
/* Errors and verdicts                                                      */
/* ------------------------------------------------------------------------ */

/* What a call did. REVOKE_OK is zero. */
typedef enum revoke_status {
	REVOKE_OK = 0,
	REVOKE_E_INVALID, /* a bad argument */
	REVOKE_E_NOMEM,
	REVOKE_E_CONNECT, /* the agent's socket cannot be reached */
	REVOKE_E_CLOSED,  /* the connection broke; the next call reconnects */
	REVOKE_E_TIMEOUT,
	REVOKE_E_PROTOCOL, /* the agent answered something unexpected */
	REVOKE_E_AGENT,    /* the agent refused the request */
	REVOKE_E_STORE,    /* reader: the data dir cannot be read */
	REVOKE_E_SECRET,   /* reader: the cluster secret cannot be read */
	REVOKE_E_KEYS,     /* verifier: the JWKS file cannot be used */
} revoke_status;

/* A sentence for a status. Never NULL. */
const char *revoke_strerror(revoke_status s);

/*
 * What the last failed open or load of this thread was about, naming the
 * file or socket and the cause ("/etc/revokd/jwks.json: no key usable
 * with the allowed algorithms (kid \"k1\": crv P-384 is not supported)");
 * "" when none failed yet. Set by revoke_client_open, revoke_reader_open,
 * revoke_verifier_new and JWKS reloads; valid until the thread's next call
 * into librevoke. Never NULL.
 */
const char *revoke_last_error(void);

/* The verdict of a revocation check (the local protocol's Verdict). */
typedef enum revoke_verdict {
	REVOKE_VALID = 0,
	REVOKE_REVOKED_TOKEN = 1,
	REVOKE_REVOKED_SESSION = 2,
	REVOKE_STALE_VERSION = 3,
	REVOKE_REVOKED_NOT_BEFORE = 4,
} revoke_verdict;

/* "VALID", "REVOKED_TOKEN", ... Never NULL. */
const char *revoke_verdict_name(revoke_verdict v);

/*
 * What to check. A length of 0 means strlen; NULL and empty ids are absent.
 * At least one id must be given; none may be longer than 1024 bytes.
 */
typedef struct revoke_query {
	const char *jti;
	size_t jti_len;
	const char *sid;
	size_t sid_len;
	const char *sub;
	size_t sub_len;
	bool has_ver;
	uint64_t ver; /* the token's ver claim */
	bool has_iat;
	int64_t iat; /* the token's iat claim, unix seconds */
} revoke_query;

/* The answer. */
typedef struct revoke_answer {
	revoke_verdict verdict;
	uint64_t version;      /* the subject's version (0 without sub) */
	uint64_t staleness_ms; /* how old the agent's knowledge may be */
} revoke_answer;

/* ------------------------------------------------------------------------ */
/* The socket client                                                        */
/* ------------------------------------------------------------------------ */

typedef struct revoke_client revoke_client;

/* Options; zero fields take the defaults. */
typedef struct revoke_client_options {
	int timeout_ms;     /* per call; default 1000 */
	size_t max_message; /* largest answer; default 1 MiB */
} revoke_client_options;

/* Connect to the query socket at path. */
revoke_status revoke_client_open(const char *path,
    const revoke_client_options *opt, revoke_client **out);

/* Close. NULL is allowed. */
void revoke_client_close(revoke_client *c);

/* One check. */
revoke_status revoke_client_check(revoke_client *c, const revoke_query *q,
    revoke_answer *out);

/*
 * n checks in one round trip: all are sent, then all answers read, in
 * order. On error, none of out is to be trusted.
 */
revoke_status revoke_client_check_many(revoke_client *c, const revoke_query *q,
    size_t n, revoke_answer *out);

/* A subject's version and not-before (ms), for minting tokens. */
revoke_status revoke_client_version(revoke_client *c, const char *sub,
    size_t sub_len, uint64_t *version, uint64_t *not_before_ms,
    uint64_t *staleness_ms);

/* ------------------------------------------------------------------------ */
/* The direct reader                                                        */
/* ------------------------------------------------------------------------ */

typedef struct revoke_reader revoke_reader;

/*
 * Open the agent's data dir read-only, with the cluster secret's file
 * (32 bytes; must not be readable by group or others).
 */
revoke_status revoke_reader_open(const char *data_dir, const char *secret_file,
    revoke_reader **out);

/* Close, freeing every reader slot it held. NULL is allowed. */
void revoke_reader_close(revoke_reader *r);

/* One check, in-process. Safe from many threads at once. */
revoke_status revoke_reader_check(revoke_reader *r, const revoke_query *q,
    revoke_answer *out);

/* A subject's version and not-before, in-process. */
revoke_status revoke_reader_version(revoke_reader *r, const char *sub,
    size_t sub_len, uint64_t *version, uint64_t *not_before_ms,
    uint64_t *staleness_ms);

/* ------------------------------------------------------------------------ */
/* JWT verification                                                         */
/* ------------------------------------------------------------------------ */

/* Algorithms a verifier may accept (a bit set). */
#define REVOKE_ALG_ES256 1u
#define REVOKE_ALG_RS256 2u
#define REVOKE_ALG_EDDSA 4u

/* Why a token was refused (REVOKE_TOKEN_OK: it was not). */
typedef enum revoke_reason {
	REVOKE_TOKEN_OK = 0,
	REVOKE_TOKEN_MALFORMED,     /* not three base64url parts, bad JSON */
	REVOKE_TOKEN_ALG,           /* alg none, unknown or not allowed */
	REVOKE_TOKEN_UNKNOWN_KEY,   /* no key with that kid, even reloaded */
	REVOKE_TOKEN_KEY_MISMATCH,  /* the key cannot be used with that alg */
	REVOKE_TOKEN_SIGNATURE,     /* the signature does not verify */
	REVOKE_TOKEN_EXPIRED,       /* exp + leeway <= now */
	REVOKE_TOKEN_NOT_YET_VALID, /* nbf - leeway > now */
	REVOKE_TOKEN_ISSUED_IN_FUTURE, /* iat - leeway > now */
	REVOKE_TOKEN_TOO_OLD,          /* iat + max_age + leeway <= now */
	REVOKE_TOKEN_CLAIM_MISSING,    /* exp, or a claim a check needs */
	REVOKE_TOKEN_ISSUER,           /* iss is not the one required */
	REVOKE_TOKEN_AUDIENCE,         /* aud does not hold the one required */
	REVOKE_TOKEN_REVOKED,          /* jti revoked */
	REVOKE_TOKEN_SESSION_REVOKED,  /* sid revoked */
	REVOKE_TOKEN_STALE_VERSION,    /* ver below the user's version */
	REVOKE_TOKEN_REVOKED_NOT_BEFORE, /* iat before the user's not-before */
	REVOKE_TOKEN_STALE_STATE, /* the agent's staleness is over policy */
	REVOKE_TOKEN_UNAVAILABLE, /* the revocation check could not run */
} revoke_reason;

/* A short sentence for a reason ("token expired"). Never NULL. */
const char *revoke_reason_string(revoke_reason r);

/* The machine name of a reason ("EXPIRED"). Never NULL. */
const char *revoke_reason_name(revoke_reason r);

/* What a log callback is told about a time-related refusal. */
typedef struct revoke_time_report {
	revoke_reason reason;
	const char *region;    /* the verifier's region option, or "" */
	int64_t server_time;   /* the verifier's now, unix s */
	int64_t iat, exp, nbf; /* 0 when absent */
	int64_t drift_s;       /* how far outside the window, seconds: the */
	                       /* smallest clock change that passes, >= 1 */
} revoke_time_report;

/* leeway_s of no leeway at all (0 means the default). */
#define REVOKE_LEEWAY_NONE (-1)

/* The longest token revoke_jwt_verify reads; longer ones are MALFORMED. */
#define REVOKE_TOKEN_MAX 16384

/* Options of a verifier. Zero fields take the defaults. */
typedef struct revoke_verifier_options {
	const char *jwks_file;     /* required */
	const char *issuer;        /* required iss; NULL: not checked */
	const char *audience;      /* required aud; NULL: not checked */
	unsigned algorithms;       /* REVOKE_ALG_*; 0: all three */
	int leeway_s;              /* default 30; REVOKE_LEEWAY_NONE for 0;
	                              more than 120 is refused */
	int64_t max_age_s;         /* iat older than this is refused; 0: none */
	int reload_cooldown_s;     /* between JWKS reloads; default 30 */
	uint64_t max_staleness_ms; /* refuse beyond it; 0: no policy */
	revoke_client *client;     /* the revocation source: one of these */
	revoke_reader *reader;     /*   two, or neither (no revocation check) */
	const char *region;        /* named in time reports; optional */
	void (*log)(void *arg, const revoke_time_report *r); /* optional */
	void *log_arg;
} revoke_verifier_options;

typedef struct revoke_verifier revoke_verifier;

/* A verifier; the JWKS file is loaded now. */
revoke_status revoke_verifier_new(const revoke_verifier_options *opt,
    revoke_verifier **out);

/* Free. NULL is allowed. */
void revoke_verifier_free(revoke_verifier *v);

/* Longest claim string kept in a result (longer ones are refused). */
#define REVOKE_CLAIM_MAX 256

/* The claims that were read (strings NUL-terminated, "" when absent). */
typedef struct revoke_claims {
	char alg[8];
	char kid[REVOKE_CLAIM_MAX];
	char iss[REVOKE_CLAIM_MAX];
	char sub[REVOKE_CLAIM_MAX];
	char jti[REVOKE_CLAIM_MAX];
	char sid[REVOKE_CLAIM_MAX];
	bool has_exp, has_nbf, has_iat, has_ver;
	int64_t exp, nbf, iat;
	uint64_t ver;
} revoke_claims;

/* A verification's outcome. */
typedef struct revoke_result {
	revoke_reason reason; /* REVOKE_TOKEN_OK when the token is good */
	revoke_claims claims;
	bool checked;         /* the revocation check ran */
	revoke_answer answer; /* its answer, when checked */
} revoke_result;

/*
 * Verify a compact JWS of len bytes (0: strlen) at time now (unix seconds;
 * 0: the clock). The status says whether verification could run at all (a
 * JWKS or revocation source problem gives REVOKE_TOKEN_UNAVAILABLE and the
 * status); the token's fate is out->reason. REVOKE_E_INVALID for a NULL
 * argument or a negative now.
 *
 * Checks run in this order, the first refusal ending it: structure
 * (MALFORMED: at most 16 KiB, three canonical unpadded base64url parts,
 * JSON objects without duplicate members, no "crit", claims of the right
 * types, times as JSON integers); alg (ALG); the key by kid (UNKNOWN_KEY,
 * after a reload the cooldown allows; a token without kid takes the JWKS's
 * only key for its alg, never a guess among several; KEY_MISMATCH); the
 * signature; exp, nbf, iat and max age; iss; aud; then revocation, where a
 * token with none of jti, sid and sub is refused (CLAIM_MISSING: nothing
 * could revoke it). out->claims holds what was read, also on a refusal.
 * The log callback runs in the calling thread, before this returns.
 */
revoke_status revoke_jwt_verify(revoke_verifier *v, const char *token,
    size_t len, int64_t now, revoke_result *out);

#ifdef __cplusplus
}
#endif

#endif /* REVOKE_H */
