/*
 * client_int.h: what librevoke's parts share and do not export.
 */
#ifndef CLIENT_INT_H
#define CLIENT_INT_H

#include <stdbool.h>
#include <stddef.h>

#include "revoke.h"

/* The longest id (jti, sid, sub) a check may carry: the agent's limit. */
#define REVOKE__ID_MAX 1024

/*
 * The length of an id given as (s, len): len, or strlen(s) when len is 0;
 * 0 when s is NULL.
 */
size_t revoke__id_len(const char *s, size_t len);

/*
 * REVOKE_OK when q asks something (a non-empty jti, sid or sub; an empty
 * id is absent, as on the wire) and no id is longer than REVOKE__ID_MAX;
 * REVOKE_E_INVALID otherwise.
 */
revoke_status revoke__query_valid(const revoke_query *q);

/* Set what revoke_last_error tells this thread. */
void revoke__errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif /* CLIENT_INT_H */
