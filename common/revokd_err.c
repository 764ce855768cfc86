/*
 * revokd_err.c: names and messages of the error map, errno translation,
 * and the messages that go with errors.
 */
#include "common/revokd.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>

static const char *const revokd__err_msg[] = {
#define REVOKD__ERR_MSG(name, msg) msg,
	REVOKD_ERR_MAP(REVOKD__ERR_MSG)
#undef REVOKD__ERR_MSG
};

static const char *const revokd__err_names[] = {
#define REVOKD__ERR_NAME(name, msg) #name,
	REVOKD_ERR_MAP(REVOKD__ERR_NAME)
#undef REVOKD__ERR_NAME
};

const char *
revokd_strerror(revokd_err err)
{
	if ((unsigned)err >= REVOKD_ERR_COUNT)
		return "unknown error";
	return revokd__err_msg[err];
}

const char *
revokd_err_name(revokd_err err)
{
	if ((unsigned)err >= REVOKD_ERR_COUNT)
		return "UNKNOWN";
	return revokd__err_names[err];
}

revokd_err
revokd_err_from_errno(int errnum)
{
	switch (errnum) {
	case 0:
		return REVOKD_OK;
	case ENOMEM:
		return REVOKD_ENOMEM;
	case EINVAL:
		return REVOKD_EINVAL;
	case ENOENT:
		return REVOKD_ENOTFOUND;
	case EEXIST:
		return REVOKD_EEXIST;
	case EACCES:
	case EPERM:
		return REVOKD_EPERM;
	case ENOSPC:
	case EDQUOT:
		return REVOKD_ENOSPACE;
	case EAGAIN:
		return REVOKD_EAGAIN;
	case ETIMEDOUT:
		return REVOKD_ETIMEDOUT;
	case ECONNRESET:
	case EPIPE:
		return REVOKD_ECLOSED;
	default:
		return REVOKD_EIO;
	}
}

void
revokd_errf(char *err, size_t err_len, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || err_len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_len, fmt, ap);
	va_end(ap);
}

revokd_err
revokd_failf(char *err, size_t err_len, revokd_err code, const char *fmt, ...)
{
	va_list ap;

	if (err != NULL && err_len > 0) {
		va_start(ap, fmt);
		vsnprintf(err, err_len, fmt, ap);
		va_end(ap);
	}
	return code;
}
