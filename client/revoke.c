/*
 * revoke.c: librevoke's names for statuses and verdicts, and the checks of
 * a query that the socket client and the direct reader share.
 */
#include "client_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* The calling thread's last failure, for revoke_last_error. */
static _Thread_local char revoke__error[512];

static const char *const revoke__status_text[] = {
	[REVOKE_OK] = "success",
	[REVOKE_E_INVALID] = "invalid argument",
	[REVOKE_E_NOMEM] = "out of memory",
	[REVOKE_E_CONNECT] = "cannot connect to the agent's query socket",
	[REVOKE_E_CLOSED] = "the connection to the agent broke",
	[REVOKE_E_TIMEOUT] = "the agent did not answer in time",
	[REVOKE_E_PROTOCOL] = "the agent's answer does not follow the protocol",
	[REVOKE_E_AGENT] = "the agent refused the request",
	[REVOKE_E_STORE] = "the agent's data dir cannot be read",
	[REVOKE_E_SECRET] = "the cluster secret cannot be read",
	[REVOKE_E_KEYS] = "the JWKS file cannot be used",
};

const char *
revoke_last_error(void)
{
	return revoke__error;
}

void
revoke__errorf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(revoke__error, sizeof(revoke__error), fmt, ap);
	va_end(ap);
}

const char *
revoke_strerror(revoke_status s)
{
	if ((unsigned)s >=
	    sizeof(revoke__status_text) / sizeof(revoke__status_text[0]))
		return "unknown status";
	return revoke__status_text[s];
}

static const char *const revoke__verdict_names[] = {
	[REVOKE_VALID] = "VALID",
	[REVOKE_REVOKED_TOKEN] = "REVOKED_TOKEN",
	[REVOKE_REVOKED_SESSION] = "REVOKED_SESSION",
	[REVOKE_STALE_VERSION] = "STALE_VERSION",
	[REVOKE_REVOKED_NOT_BEFORE] = "REVOKED_NOT_BEFORE",
};

const char *
revoke_verdict_name(revoke_verdict v)
{
	if ((unsigned)v > REVOKE_REVOKED_NOT_BEFORE)
		return "UNKNOWN";
	return revoke__verdict_names[v];
}

size_t
revoke__id_len(const char *s, size_t len)
{
	if (s == NULL)
		return 0;
	return len != 0 ? len : strlen(s);
}

revoke_status
revoke__query_valid(const revoke_query *q)
{
	size_t jti = revoke__id_len(q->jti, q->jti_len);
	size_t sid = revoke__id_len(q->sid, q->sid_len);
	size_t sub = revoke__id_len(q->sub, q->sub_len);

	if (jti == 0 && sid == 0 && sub == 0)
		return REVOKE_E_INVALID;
	if (jti > REVOKE__ID_MAX || sid > REVOKE__ID_MAX ||
	    sub > REVOKE__ID_MAX)
		return REVOKE_E_INVALID;
	return REVOKE_OK;
}
