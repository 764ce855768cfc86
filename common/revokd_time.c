/*
 * revokd_time.c: times and the plain numbers they are made of, read from
 * and written as text, the way every command line of the project takes
 * them: decimal numbers with nothing around them, ISO-8601 UTC times from
 * 1970 to 9999, and unix seconds or milliseconds.
 */
#include "common/revokd.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* ------------------------------------------------------------------------ */
/* The clock                                                                */
/* ------------------------------------------------------------------------ */

uint64_t
revokd_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * An age that reaches back before 2000-01-01 measures from a time that was
 * never set (a watermark of 0: nothing heard yet): not a real age.
 */
#define REVOKD__AGE_SANE_FROM_MS 946684800000ull

bool
revokd_age_unknown(uint64_t age_ms, uint64_t now_ms)
{
	return now_ms < REVOKD__AGE_SANE_FROM_MS ||
	       age_ms > now_ms - REVOKD__AGE_SANE_FROM_MS;
}

/* ------------------------------------------------------------------------ */
/* Reading                                                                  */
/* ------------------------------------------------------------------------ */

bool
revokd_parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;

	if (*s == '\0')
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' ||
		    v > (max - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return true;
}

/* n digits at s. */
static bool
revokd__digits(const char *s, int n, unsigned *out)
{
	unsigned v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	*out = v;
	return true;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian), for y >= 1970. */
static int64_t
revokd__days_from_civil(unsigned y, unsigned m, unsigned d)
{
	int64_t yy = (int64_t)y - (m <= 2);
	int64_t era = yy / 400;
	int64_t yoe = yy - era * 400;
	int64_t doy = (153 * ((int64_t)m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;

	return era * 146097 + doe - 719468;
}

static bool
revokd__valid_date(unsigned y, unsigned m, unsigned d)
{
	static const unsigned mdays[12] = { 31, 29, 31, 30, 31, 30, 31, 31, 30,
		31, 30, 31 };
	bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;

	return y >= 1970 && y <= 9999 && m >= 1 && m <= 12 && d >= 1 &&
	       d <= mdays[m - 1] && !(m == 2 && d == 29 && !leap);
}

/* Milliseconds of a fraction ".123456" at *p; more digits are cut. */
static bool
revokd__parse_fraction(const char **p, unsigned *ms)
{
	unsigned scale = 1000;

	*ms = 0;
	if (**p != '.')
		return true;
	(*p)++;
	if (**p < '0' || **p > '9')
		return false;
	for (; **p >= '0' && **p <= '9'; (*p)++) {
		if (scale > 1) {
			scale /= 10;
			*ms += (unsigned)(**p - '0') * scale;
		}
	}
	return true;
}

bool
revokd_parse_seconds_ms(const char *s, uint32_t *out)
{
	uint64_t whole = 0;
	unsigned frac = 0;
	const char *p = s;

	if ((*p < '0' || *p > '9') && *p != '.')
		return false;
	for (; *p >= '0' && *p <= '9'; p++)
		if ((whole = whole * 10 + (uint64_t)(*p - '0')) >
		    UINT32_MAX / 1000)
			return false;
	if (!revokd__parse_fraction(&p, &frac) || *p != '\0' ||
	    whole * 1000 + frac == 0)
		return false;
	*out = (uint32_t)(whole * 1000 + frac);
	return true;
}

bool
revokd_parse_iso_ms(const char *s, uint64_t *out)
{
	unsigned y, mo, d, h, mi, sec, ms;
	const char *p = s + 19;

	if (strlen(s) < 20 || !revokd__digits(s, 4, &y) || s[4] != '-' ||
	    !revokd__digits(s + 5, 2, &mo) || s[7] != '-' ||
	    !revokd__digits(s + 8, 2, &d) || s[10] != 'T' ||
	    !revokd__digits(s + 11, 2, &h) || s[13] != ':' ||
	    !revokd__digits(s + 14, 2, &mi) || s[16] != ':' ||
	    !revokd__digits(s + 17, 2, &sec) ||
	    !revokd__parse_fraction(&p, &ms) || strcmp(p, "Z") != 0)
		return false;
	if (!revokd__valid_date(y, mo, d) || h > 23 || mi > 59 || sec > 59)
		return false;
	*out = ((uint64_t)revokd__days_from_civil(y, mo, d) * 86400 +
	           h * 3600u + mi * 60u + sec) *
	           1000 +
	       ms;
	return true;
}

/* Twenty characters are the time without a fraction, and nothing else. */
bool
revokd_parse_iso_s(const char *s, int64_t *out)
{
	uint64_t ms;

	if (strlen(s) != 20 || !revokd_parse_iso_ms(s, &ms))
		return false;
	*out = (int64_t)(ms / 1000);
	return true;
}

bool
revokd_parse_time_ms(const char *s, uint64_t *ms)
{
	uint64_t secs;

	if (revokd_parse_u64(s, REVOKD_TIME_MAX_S, &secs)) {
		*ms = secs * 1000;
		return true;
	}
	return revokd_parse_iso_ms(s, ms);
}

/* ------------------------------------------------------------------------ */
/* Writing                                                                  */
/* ------------------------------------------------------------------------ */

const char *
revokd_format_s(int64_t s, char *buf, size_t len)
{
	time_t t = (time_t)s;
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL)
		snprintf(buf, len, "%" PRId64, s);
	else
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02dZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec);
	return buf;
}

const char *
revokd_format_ms(uint64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms > (uint64_t)INT64_MAX || gmtime_r(&t, &tm) == NULL)
		snprintf(buf, len, "%" PRIu64 " ms", ms);
	else
		snprintf(buf, len, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ",
		    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
		    tm.tm_min, tm.tm_sec, (unsigned)(ms % 1000));
	return buf;
}
