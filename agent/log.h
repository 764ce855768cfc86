/*
 * log.h: one line per event on stderr: time, level, region, event, and
 * fields, as logfmt (default) or JSON lines.
 *
 *   ts=2026-11-22T13:20:05.123Z level=warn region=eu-west-1
 *     event=peer_refused peer_addr=10.0.0.7:51234 reason="expired"
 *
 * A line is built whole and written with one call, so lines from different
 * threads never interleave.
 */
#ifndef AGENT_LOG_H
#define AGENT_LOG_H

#include <stdarg.h>
#include <stdio.h>

#include "agent/config.h"

/* Where and how to log (before the first line; defaults: logfmt, info). */
void agent_log_setup(FILE *out, agent_log_format format, agent_log_level level,
    const char *region);

/*
 * Log event at level with fields given as key, value pairs of strings,
 * ended by NULL: agent_log(AGENT_LOG_INFO, "peer_up", "peer", name, NULL).
 */
void agent_log(agent_log_level level, const char *event, ...);

/* As agent_log with a va_list of the pairs. */
void agent_logv(agent_log_level level, const char *event, va_list ap);

/* True when level would be logged (to skip formatting work). */
int agent_log_enabled(agent_log_level level);

#endif /* AGENT_LOG_H */
