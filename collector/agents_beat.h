/* The heartbeat body (POST /v1/agents/heartbeat): VoiceGateway's presence
 * contract plus libvgsink's optional `sink` counters, decoded and checked.
 * Pure: no database, no loop; the HTTP handler and the unit tests use it. */
#ifndef VGC_AGENTS_BEAT_H
#define VGC_AGENTS_BEAT_H

#include <stdbool.h>
#include <stddef.h>

#define AGENTS_ID_MAX_CHARS 128

struct cJSON;

/* Caps the collector's config sets (max_string_chars, max_error_message_chars,
 * max_element_values). */
struct agents_beat_limits {
	size_t max_string_chars;
	size_t max_error_chars;
	size_t max_values; /* JSON values in the body, keys included */
};

/* libvgsink's cumulative counters, as the beat carried them. */
struct agents_sink {
	long long recorded, sent, dropped, rejected, queued, spooled_rows, spool_bytes;
	const char *last_error; /* NULL: none */
};

/* One decoded beat. Strings point into the cJSON tree agents_beat_decode
 * returns, which the caller frees (cJSON_Delete) after the last use. NULL
 * means absent or null; tenant_id from the body is advisory and not kept. */
struct agents_beat {
	const char *agent_id; /* always set */
	const char *agent_name, *status, *version, *project, *region, *host;
	bool has_sessions, has_started_at, has_ts, has_sink;
	long long active_sessions;
	double started_at, ts; /* epoch seconds */
	struct agents_sink sink;
};

/* Parses and checks body with ingest's strict rules: exactly one JSON object
 * and nothing after it, no raw control characters, no \u0000 (cJSON would cut
 * the string there), at most max_values values, all checked by a scan that
 * allocates nothing before cJSON builds a tree. 200 with *root (the caller's)
 * and out filled, 400 with err naming the field ("status \"sleeping\": must
 * be ..."; "body: ..." when no field is to blame), 413 over max_values, or
 * 503 when out of memory. Unknown fields are ignored. */
int agents_beat_decode(const char *body, size_t len, const struct agents_beat_limits *lim,
		       struct agents_beat *out, struct cJSON **root, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
