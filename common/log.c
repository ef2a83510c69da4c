/* Process-wide logging: formats one logfmt or JSON line per event and writes it
 * to stderr with a single write, so lines from several threads never interleave. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

_Atomic int log_level_current = LOG_LVL_INFO;
/* Read by every thread that logs, written on reload: atomic like the level. */
static _Atomic int log_format_current = LOG_FMT_LOGFMT;

static bool log_json(void)
{
	return atomic_load_explicit(&log_format_current, memory_order_relaxed) == LOG_FMT_JSON;
}

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void log_configure(enum log_level level, enum log_format format)
{
	atomic_store_explicit(&log_level_current, (int)level, memory_order_relaxed);
	atomic_store_explicit(&log_format_current, (int)format, memory_order_relaxed);
}

bool log_level_parse(const char *s, enum log_level *out)
{
	for (int i = 0; i < 4; i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return true;
		}
	}
	return false;
}

bool log_format_parse(const char *s, enum log_format *out)
{
	if (strcmp(s, "logfmt") == 0)
		*out = LOG_FMT_LOGFMT;
	else if (strcmp(s, "json") == 0)
		*out = LOG_FMT_JSON;
	else
		return false;
	return true;
}

const char *log_level_name(enum log_level level)
{
	return level_names[level];
}

/* Appends s quoted for the current format; logfmt and JSON share escaping rules. */
static size_t log_put_quoted(char *out, size_t pos, size_t cap, const char *s)
{
	if (pos < cap)
		out[pos++] = '"';
	for (; *s && pos + 7 < cap; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			out[pos++] = '\\';
			out[pos++] = (char)c;
		} else if (c == '\n') {
			out[pos++] = '\\';
			out[pos++] = 'n';
		} else if (c < 0x20) {
			pos += (size_t)snprintf(out + pos, cap - pos, "\\u%04x", c);
		} else {
			out[pos++] = (char)c;
		}
	}
	if (pos < cap)
		out[pos++] = '"';
	return pos;
}

/* True when every byte is printable ASCII (nothing to escape). */
static bool log_printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

static size_t log_put_field(bool json, char *out, size_t pos, size_t cap, const char *key,
			    const char *val)
{
	if (!val || pos + strlen(key) + 8 >= cap)
		return pos;
	if (json) {
		pos += (size_t)snprintf(out + pos, cap - pos, ",\"%s\":", key);
		return log_put_quoted(out, pos, cap, val);
	}
	pos += (size_t)snprintf(out + pos, cap - pos, " %s=", key);
	/* logfmt: bare when the value needs no quoting, as logfmt parsers expect. */
	if (*val && strcspn(val, " \"=\\") == strlen(val) && log_printable(val))
		return pos + (size_t)snprintf(out + pos, cap - pos, "%s", val);
	return log_put_quoted(out, pos, cap, val);
}

void log_emit(enum log_level level, const struct log_ctx *ctx, const char *file, int line,
	      const char *fmt, ...)
{
	char msg[2048], where[256], ts[96], out[4096];
	va_list ap;
	struct timeval tv;
	struct tm tm;
	size_t pos;
	bool json = log_json(); /* once, so a reload cannot change it mid-line */

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);

	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
		 (int)(tv.tv_usec / 1000));

	if (json)
		pos = (size_t)snprintf(out, sizeof(out), "{\"ts\":\"%s\",\"level\":\"%s\"", ts,
				       level_names[level]);
	else
		pos = (size_t)snprintf(out, sizeof(out), "ts=%s level=%s", ts, level_names[level]);
	pos = log_put_field(json, out, pos, sizeof(out), "msg", msg);
	if (ctx) {
		pos = log_put_field(json, out, pos, sizeof(out), "request_id", ctx->request_id);
		pos = log_put_field(json, out, pos, sizeof(out), "key", ctx->key_prefix);
		pos = log_put_field(json, out, pos, sizeof(out), "project", ctx->project);
	}
	if (file) {
		snprintf(where, sizeof(where), "%s:%d", file, line);
		pos = log_put_field(json, out, pos, sizeof(out), "at", where);
	}
	if (pos > sizeof(out) - 3)
		pos = sizeof(out) - 3;
	if (json)
		out[pos++] = '}';
	out[pos++] = '\n';
	if (write(STDERR_FILENO, out, pos) < 0) {
		/* Nowhere left to report a failed log write. */
	}
}

void log_exit_fatal(void)
{
	exit(1);
}
