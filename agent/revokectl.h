/*
 * revokectl.h: what the two halves of revokectl share. revokectl.c reads
 * the command line, talks to the agent and runs the commands;
 * revokectl_print.c holds everything revokectl prints: the help texts, and
 * the agent's answers as lines for humans or as JSON (one object per
 * answer, or per dump entry).
 *
 * Everything printed for an answer goes to stdout, and only that; errors
 * go to stderr. Printers never stop on an output error: ctl_output_ok()
 * tells at the end whether everything reached stdout.
 */
#ifndef AGENT_REVOKECTL_H
#define AGENT_REVOKECTL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "local.pb-c.h"

/* The name of this program, the prefix of every error line. */
#define CTL_NAME "revokectl"

/* Print "revokectl: MESSAGE" on stderr; returns status, for tail calls. */
int ctl_fail(int status, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------------------ */
/* Commands and help                                                        */
/* ------------------------------------------------------------------------ */

/* The commands, in the order of the global --help. */
typedef enum ctl_cmd {
	CTL_REVOKE_TOKEN,
	CTL_RESTORE_TOKEN,
	CTL_REVOKE_SESSION,
	CTL_RESTORE_SESSION,
	CTL_REVOKE_USER,
	CTL_CHECK,
	CTL_USER_VERSION,
	CTL_STATUS,
	CTL_IMPORT,
	CTL_DUMP,
	CTL_NO_CMD,
} ctl_cmd;

/* Where the admin socket is when nothing says otherwise. */
#define CTL_SOCKET_ENV "REVOKD_ADMIN_SOCKET"
#define CTL_SOCKET_DEFAULT "/run/revokd/admin.sock"

/* A command's name ("revoke-token"). */
const char *ctl_command_name(ctl_cmd cmd);

/* What a command takes as its one argument ("JTI"), or NULL. */
const char *ctl_command_operand(ctl_cmd cmd);

/* The global --help, listing every command. */
void ctl_usage(FILE *f);

/* A command's --help. */
void ctl_command_usage(FILE *f, ctl_cmd cmd);

/* ------------------------------------------------------------------------ */
/* Names from local.proto                                                   */
/* ------------------------------------------------------------------------ */

/* A verdict's name from local.proto ("REVOKED_TOKEN"), into buf. */
const char *ctl_verdict_name(int verdict, char *buf, size_t len);

/* An error code's name from local.proto ("ERROR_MALFORMED"), into buf. */
const char *ctl_error_name(int code, char *buf, size_t len);

/* ------------------------------------------------------------------------ */
/* Answers                                                                  */
/* ------------------------------------------------------------------------ */

/* What a write command asked for, to say what was done. */
typedef struct ctl_write_what {
	const char *verb; /* "revoked", "restored" */
	const char *kind; /* "jti", "sid", "user" */
	const char *id;   /* as given: printed quoted and escaped */
	bool user;
	bool bumped;            /* user: the version was bumped */
	uint64_t not_before_ms; /* user: 0 when none was set */
} ctl_write_what;

/* A write's answer (revoke, restore, revoke-user). */
void ctl_print_write(bool json, const ctl_write_what *w,
    const Revokd__Local__WriteResult *r);

/* A check's verdict; the version is shown to humans only with_version. */
void ctl_print_check(bool json, bool with_version,
    const Revokd__Local__CheckResult *r);

/* A user's version and not-before. */
void ctl_print_version(bool json, const Revokd__Local__VersionResult *r);

/* The agent's status and its table of peers. */
void ctl_print_status(bool json, const Revokd__Local__StatusResult *r);

/* One dump entry: one line, or one JSON object on one line. */
void ctl_print_dump_entry(bool json, const Revokd__Local__DumpEntry *e);

/* The summary of an import: items written, requests, items skipped. */
void ctl_print_import(bool json, uint64_t items, uint64_t requests,
    uint64_t skipped);

/*
 * Whether everything printed so far reached stdout (flushed now). False
 * after a write error or a JSON encoding that failed for lack of memory.
 */
bool ctl_output_ok(void);

#endif /* AGENT_REVOKECTL_H */
