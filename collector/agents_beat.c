/* Decoding the heartbeat body: every field but agent_id may be absent or
 * null, unknown fields are ignored, and each bad field gets a 400 naming it,
 * in ingest's error style. */
#include "agents_beat.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "jsoncheck.h"
#include "row.h"

/* The largest count a JSON number holds exactly (2^53). */
#define AGENTS_BEAT_MAX_COUNT 9007199254740992.0
/* Epoch seconds past this (year 5138) are not a time a worker means. */
#define AGENTS_BEAT_MAX_EPOCH 1e11

static size_t agents_beat_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* A string field: absent or null leaves *out NULL. 200 or 400. */
static int agents_beat_string(const cJSON *obj, const char *name, size_t max_chars,
			      const char **out, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	size_t chars;

	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 200;
	if (!cJSON_IsString(v) || !v->valuestring) {
		snprintf(err, errlen, "%s: must be a string or null", name);
		return 400;
	}
	/* cJSON ends a string at a \u0000; row_utf8_valid refuses raw bytes
	 * PostgreSQL could not store. */
	if (!row_utf8_valid(v->valuestring, strlen(v->valuestring))) {
		snprintf(err, errlen, "%s: not valid UTF-8", name);
		return 400;
	}
	for (const char *p = v->valuestring; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7F) {
			snprintf(err, errlen, "%s: control characters are not allowed", name);
			return 400;
		}
	}
	chars = agents_beat_chars(v->valuestring);
	if (chars > max_chars) {
		snprintf(err, errlen, "%s: %zu characters, the limit is %zu", name, chars,
			 max_chars);
		return 400;
	}
	*out = v->valuestring;
	return 200;
}

/* A whole number >= 0 (and at most max). *has says whether it was given. */
static int agents_beat_count(const cJSON *obj, const char *name, const char *prefix, double max,
			     bool *has, long long *out, char *err, size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	double d;

	*has = false;
	*out = 0;
	if (!v || cJSON_IsNull(v))
		return 200;
	d = cJSON_GetNumberValue(v);
	if (!cJSON_IsNumber(v) || !isfinite(d) || d < 0 || d != floor(d) || d > max) {
		snprintf(err, errlen, "%s%s: must be a whole number from 0 to %.0f", prefix, name,
			 max);
		return 400;
	}
	*has = true;
	*out = (long long)d;
	return 200;
}

/* Epoch seconds, fractions allowed. */
static int agents_beat_time(const cJSON *obj, const char *name, bool *has, double *out, char *err,
			    size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
	double d;

	*has = false;
	*out = 0;
	if (!v || cJSON_IsNull(v))
		return 200;
	d = cJSON_GetNumberValue(v);
	if (!cJSON_IsNumber(v) || !isfinite(d) || d < 0 || d > AGENTS_BEAT_MAX_EPOCH) {
		snprintf(err, errlen, "%s: must be epoch seconds (a number from 0 to %.0f)", name,
			 AGENTS_BEAT_MAX_EPOCH);
		return 400;
	}
	*has = true;
	*out = d;
	return 200;
}

static int agents_beat_sink(const cJSON *obj, const struct agents_beat_limits *lim,
			    struct agents_beat *out, char *err, size_t errlen)
{
	const cJSON *s = cJSON_GetObjectItemCaseSensitive(obj, "sink");
	static const char *const names[] = { "recorded", "sent",	 "dropped",    "rejected",
					     "queued",	 "spooled_rows", "spool_bytes" };
	long long *fields[] = { &out->sink.recorded,   &out->sink.sent,	  &out->sink.dropped,
				&out->sink.rejected,   &out->sink.queued, &out->sink.spooled_rows,
				&out->sink.spool_bytes };
	bool has;
	int st;

	out->has_sink = false;
	if (!s || cJSON_IsNull(s))
		return 200;
	if (!cJSON_IsObject(s)) {
		snprintf(err, errlen, "sink: must be an object of counters or null");
		return 400;
	}
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((st = agents_beat_count(s, names[i], "sink.", AGENTS_BEAT_MAX_COUNT, &has,
					    fields[i], err, errlen)) != 200)
			return st;
	if ((st = agents_beat_string(s, "last_error", lim->max_error_chars, &out->sink.last_error,
				     err, errlen)) != 200) {
		char msg[512];

		snprintf(msg, sizeof(msg), "%s", err);
		snprintf(err, errlen, "sink.%s", msg);
		return st;
	}
	out->has_sink = true;
	return 200;
}

/* The top-level member the scan blames (where it failed, else the first
 * \u0000), fit to start a message, into name: "body" when there is none or it
 * is not plain text. */
static void agents_beat_key(const struct jsoncheck_info *info, bool ok, char *name, size_t n)
{
	const char *k = ok ? info->nul_key : info->key;
	size_t len = ok ? info->nul_key_len : info->key_len;

	snprintf(name, n, "body");
	if (len == 0 || len >= n)
		return;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)k[i] < 0x21 || (unsigned char)k[i] > 0x7E || k[i] == '\\' ||
		    k[i] == '"')
			return;
	snprintf(name, n, "%.*s", (int)len, k);
}

/* The strict pre-scan (see agents_beat_decode). */
static int agents_beat_scan(const char *body, size_t len, const struct agents_beat_limits *lim,
			    char *err, size_t errlen)
{
	struct jsoncheck_info info;
	char name[64];
	bool ok = jsoncheck_object_info(body, len, &info);

	if (info.values > lim->max_values) {
		snprintf(err, errlen,
			 "body: holds more than %zu JSON values (keys included), the limit "
			 "max_element_values sets; a heartbeat has about 30",
			 lim->max_values);
		return 413;
	}
	agents_beat_key(&info, ok, name, sizeof(name));
	if (!ok && info.raw_control) {
		snprintf(err, errlen,
			 "%s: raw control character 0x%02x inside a string at byte %zu; JSON "
			 "requires the escape \\u%04x",
			 name, (unsigned char)body[info.at], info.at, (unsigned char)body[info.at]);
		return 400;
	}
	if (!ok) {
		snprintf(err, errlen,
			 "%s: not valid JSON at byte %zu of %zu: the body must be exactly one JSON "
			 "object, with nothing after it",
			 name, info.at, len);
		return 400;
	}
	if (info.nul) {
		snprintf(err, errlen,
			 "%s: a string holds \\u0000 (NUL), which PostgreSQL cannot store", name);
		return 400;
	}
	return 200;
}

int agents_beat_decode(const char *body, size_t len, const struct agents_beat_limits *lim,
		       struct agents_beat *out, struct cJSON **root, char *err, size_t errlen)
{
	static const struct {
		const char *name;
		size_t off;
	} strings[] = {
		{ "agent_name", offsetof(struct agents_beat, agent_name) },
		{ "version", offsetof(struct agents_beat, version) },
		{ "project", offsetof(struct agents_beat, project) },
		{ "region", offsetof(struct agents_beat, region) },
		{ "host", offsetof(struct agents_beat, host) },
	};
	const cJSON *id;
	cJSON *j;
	int st;

	memset(out, 0, sizeof(*out));
	*root = NULL;
	if ((st = agents_beat_scan(body, len, lim, err, errlen)) != 200)
		return st;
	j = cJSON_ParseWithLength(body, len);
	if (!j) {
		snprintf(err, errlen, "body: not valid JSON");
		return 400;
	}
	*root = j;
	if (!cJSON_IsObject(j)) {
		snprintf(err, errlen, "body: must be one JSON object");
		return 400;
	}
	id = cJSON_GetObjectItemCaseSensitive(j, "agent_id");
	if (!id || cJSON_IsNull(id)) {
		snprintf(err, errlen, "agent_id: required (1-%d characters)", AGENTS_ID_MAX_CHARS);
		return 400;
	}
	if ((st = agents_beat_string(j, "agent_id", AGENTS_ID_MAX_CHARS, &out->agent_id, err,
				     errlen)) != 200)
		return st;
	if (!out->agent_id[0]) {
		snprintf(err, errlen, "agent_id: must not be empty");
		return 400;
	}
	for (size_t i = 0; i < sizeof(strings) / sizeof(strings[0]); i++)
		if ((st = agents_beat_string(j, strings[i].name, lim->max_string_chars,
					     (const char **)((char *)out + strings[i].off), err,
					     errlen)) != 200)
			return st;
	if ((st = agents_beat_string(j, "status", 16, &out->status, err, errlen)) != 200) {
		snprintf(err, errlen, "status: must be \"idle\", \"busy\" or null");
		return st;
	}
	if (out->status && strcmp(out->status, "idle") != 0 && strcmp(out->status, "busy") != 0) {
		snprintf(err, errlen,
			 "status \"%.16s\": must be \"idle\", \"busy\" or null (\"offline\" is the "
			 "collector's to say)",
			 out->status);
		return 400;
	}
	if ((st = agents_beat_count(j, "active_sessions", "", 2147483647.0, &out->has_sessions,
				    &out->active_sessions, err, errlen)) != 200 ||
	    (st = agents_beat_time(j, "started_at", &out->has_started_at, &out->started_at, err,
				   errlen)) != 200 ||
	    (st = agents_beat_time(j, "ts", &out->has_ts, &out->ts, err, errlen)) != 200)
		return st;
	return agents_beat_sink(j, lim, out, err, errlen);
}
