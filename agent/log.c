/*
 * log.c: logfmt and JSON lines.
 */
#include "agent/log.h"

#include <jansson.h>
#include <string.h>
#include <time.h>

static FILE *log_out;
static agent_log_format log_format = AGENT_LOG_LOGFMT;
static agent_log_level log_level = AGENT_LOG_INFO;
static char log_region[WIRE_NAME_MAX + 1];

static const char *const log_level_names[] = { "debug", "info", "warn",
	"error" };

void
agent_log_setup(FILE *out, agent_log_format format, agent_log_level level,
    const char *region)
{
	log_out = out;
	log_format = format;
	log_level = level;
	snprintf(log_region, sizeof(log_region), "%s", region ? region : "");
}

int
agent_log_enabled(agent_log_level level)
{
	return level >= log_level;
}

static void
log_time(char *buf, size_t len)
{
	struct timespec ts;
	struct tm tm;
	size_t n;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, len - n, ".%03ldZ", ts.tv_nsec / 1000000);
}

/* Append v to line as a logfmt value: quoted when it needs to be. */
static void
log_fmt_value(char *line, size_t cap, size_t *n, const char *v)
{
	bool quote = *v == '\0' || strpbrk(v, " =\"\\\t\n") != NULL;

	if (!quote) {
		*n += (size_t)snprintf(line + *n, *n < cap ? cap - *n : 0, "%s",
		    v);
		return;
	}
	if (*n < cap)
		line[(*n)++] = '"';
	for (; *v && *n + 2 < cap; v++) {
		if (*v == '"' || *v == '\\')
			line[(*n)++] = '\\';
		line[(*n)++] = *v == '\n' || *v == '\t' ? ' ' : *v;
	}
	if (*n < cap)
		line[(*n)++] = '"';
}

static void
log_logfmt(agent_log_level level, const char *event, va_list ap)
{
	char line[2048], ts[40];
	size_t n;
	const char *k;

	log_time(ts, sizeof(ts));
	n = (size_t)snprintf(line, sizeof(line), "ts=%s level=%s region=", ts,
	    log_level_names[level]);
	log_fmt_value(line, sizeof(line), &n, log_region);
	n += (size_t)snprintf(line + n, n < sizeof(line) ? sizeof(line) - n : 0,
	    " event=%s", event);
	while ((k = va_arg(ap, const char *)) != NULL) {
		const char *v = va_arg(ap, const char *);

		n += (size_t)snprintf(line + n,
		    n < sizeof(line) ? sizeof(line) - n : 0, " %s=", k);
		log_fmt_value(line, sizeof(line), &n, v ? v : "");
	}
	if (n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	line[n] = '\0';
	fputs(line, log_out ? log_out : stderr);
}

static void
log_json(agent_log_level level, const char *event, va_list ap)
{
	json_t *o = json_object();
	char ts[40], *text;
	const char *k;

	if (o == NULL)
		return;
	log_time(ts, sizeof(ts));
	json_object_set_new(o, "ts", json_string(ts));
	json_object_set_new(o, "level", json_string(log_level_names[level]));
	json_object_set_new(o, "region", json_string(log_region));
	json_object_set_new(o, "event", json_string(event));
	while ((k = va_arg(ap, const char *)) != NULL) {
		const char *v = va_arg(ap, const char *);

		json_object_set_new(o, k, json_string(v ? v : ""));
	}
	text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	if (text != NULL) {
		fprintf(log_out ? log_out : stderr, "%s\n", text);
		free(text);
	}
	json_decref(o);
}

void
agent_logv(agent_log_level level, const char *event, va_list ap)
{
	if (!agent_log_enabled(level))
		return;
	if (log_format == AGENT_LOG_JSON)
		log_json(level, event, ap);
	else
		log_logfmt(level, event, ap);
	fflush(log_out ? log_out : stderr);
}

void
agent_log(agent_log_level level, const char *event, ...)
{
	va_list ap;

	va_start(ap, event);
	agent_logv(level, event, ap);
	va_end(ap);
}
