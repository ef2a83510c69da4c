/* agents_beat_decode: the heartbeat body VoiceGateway and libvgsink send,
 * each bad field refused with a message naming it. */
#include <cJSON.h>
#include <string.h>

#include "agents_beat.h"
#include "unit.h"

static const struct agents_beat_limits agents_lim = { 256, 4096, 16384 };

static int agents_decode(const char *body, struct agents_beat *b, char *err, size_t errlen)
{
	cJSON *root = NULL;
	int st = agents_beat_decode(body, strlen(body), &agents_lim, b, &root, err, errlen);

	cJSON_Delete(root); /* the tests below read only numbers and status codes */
	return st;
}

UNIT_TEST(agents_beat_takes_the_canonical_voicegateway_payload)
{
	const char *body =
		"{\"agent_id\":\"worker-host-1\",\"agent_name\":\"myvoiceagents\",\"status\":"
		"\"idle\",\"active_sessions\":0,\"version\":\"0.13.0\",\"project\":\"mahimai-"
		"realty\",\"tenant_id\":null,\"region\":\"iad\",\"host\":\"worker-host-1\","
		"\"started_at\":1783200000.0,\"ts\":1783200015.0}";
	struct agents_beat b;
	cJSON *root = NULL;
	char err[256] = "";

	CHECK(agents_beat_decode(body, strlen(body), &agents_lim, &b, &root, err, sizeof(err)) ==
	      200);
	CHECK(b.agent_id && strcmp(b.agent_id, "worker-host-1") == 0);
	CHECK(b.status && strcmp(b.status, "idle") == 0);
	CHECK(b.has_sessions && b.active_sessions == 0);
	CHECK(b.project && strcmp(b.project, "mahimai-realty") == 0);
	CHECK(b.has_started_at && b.started_at == 1783200000.0);
	CHECK(b.has_ts && b.ts == 1783200015.0);
	CHECK(!b.has_sink);
	cJSON_Delete(root);
}

UNIT_TEST(agents_beat_reads_the_sink_counters)
{
	struct agents_beat b;
	char err[256] = "";

	CHECK(agents_decode("{\"agent_id\":\"a\",\"sink\":{\"recorded\":10,\"sent\":6,\"dropped\":"
			    "1,\"rejected\":1,\"queued\":1,\"spooled_rows\":1,\"spool_bytes\":"
			    "900,\"last_error\":null}}",
			    &b, err, sizeof(err)) == 200);
	CHECK(b.has_sink && b.sink.recorded == 10 && b.sink.sent == 6 && b.sink.dropped == 1 &&
	      b.sink.spool_bytes == 900 && !b.sink.last_error);
}

UNIT_TEST(agents_beat_refuses_each_bad_field_naming_it)
{
	static const struct {
		const char *body, *prefix;
	} cases[] = {
		{ "{}", "agent_id:" },
		{ "{\"agent_id\":null}", "agent_id:" },
		{ "{\"agent_id\":\"\"}", "agent_id:" },
		{ "{\"agent_id\":7}", "agent_id:" },
		{ "{\"agent_id\":\"a\\u0001b\"}", "agent_id:" },
		{ "{\"agent_id\":\"a\",\"status\":\"sleeping\"}", "status \"sleeping\":" },
		{ "{\"agent_id\":\"a\",\"status\":\"offline\"}", "status \"offline\":" },
		{ "{\"agent_id\":\"a\",\"status\":3}", "status:" },
		{ "{\"agent_id\":\"a\",\"active_sessions\":-1}", "active_sessions:" },
		{ "{\"agent_id\":\"a\",\"active_sessions\":2.5}", "active_sessions:" },
		{ "{\"agent_id\":\"a\",\"active_sessions\":\"2\"}", "active_sessions:" },
		{ "{\"agent_id\":\"a\",\"ts\":-1}", "ts:" },
		{ "{\"agent_id\":\"a\",\"started_at\":1e300}", "started_at:" },
		{ "{\"agent_id\":\"a\",\"host\":[]}", "host:" },
		{ "{\"agent_id\":\"a\",\"sink\":1}", "sink:" },
		{ "{\"agent_id\":\"a\",\"sink\":{\"sent\":-3}}", "sink.sent:" },
		{ "{\"agent_id\":\"a\",\"sink\":{\"last_error\":5}}", "sink.last_error:" },
		{ "[]", "body:" },
		{ "{", "body:" },
	};
	struct agents_beat b;
	char err[256];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int st = agents_decode(cases[i].body, &b, err, sizeof(err));

		CHECK_MSG(st == 400 && strncmp(err, cases[i].prefix, strlen(cases[i].prefix)) == 0,
			  "%s -> %d %s (want 400 %s...)", cases[i].body, st, err, cases[i].prefix);
	}
}

UNIT_TEST(agents_beat_counts_agent_id_in_characters_not_bytes)
{
	char body[1024], id[600] = "";
	struct agents_beat b;
	char err[256];

	for (int i = 0; i < 128; i++)
		strcat(id, "\xc3\xa9"); /* 128 characters, 256 bytes */
	snprintf(body, sizeof(body), "{\"agent_id\":\"%s\"}", id);
	CHECK(agents_decode(body, &b, err, sizeof(err)) == 200);
	snprintf(body, sizeof(body), "{\"agent_id\":\"%sx\"}", id);
	CHECK(agents_decode(body, &b, err, sizeof(err)) == 400);
}

UNIT_TEST(agents_beat_ignores_unknown_fields_and_the_tenant)
{
	struct agents_beat b;
	char err[256] = "";

	CHECK(agents_decode("{\"agent_id\":\"a\",\"tenant_id\":\"evil\",\"gpu\":{\"x\":[1]}}", &b,
			    err, sizeof(err)) == 200);
	CHECK(!b.status && !b.has_sessions && !b.has_sink);
}

UNIT_TEST(agents_beat_refuses_nul_trailing_bytes_and_raw_controls_naming_the_field)
{
	static const struct {
		const char *body;
		size_t len; /* 0: strlen */
		int status;
		const char *starts;
	} cases[] = {
		{ "{\"agent_id\":\"nul\\u0000A\"}", 0, 400, "agent_id: a string holds \\u0000" },
		{ "{\"agent_id\":\"nul\0B\"}", 20, 400, "agent_id: raw control character 0x00" },
		{ "{\"agent_id\":\"trail\"} junk", 0, 400, "body: not valid JSON at byte 21" },
		{ "{\"agent_id\":\"a\",\"host\":\"h\\u0000\"}", 0, 400, "host: a string holds" },
		{ "{\"agent_id\":\"a\",\"sink\":{\"last_error\":\"x\\u0000\"}}", 0, 400,
		  "sink: a string holds" },
		{ "[1,2]", 0, 400, "body: not valid JSON" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct agents_beat b;
		cJSON *root = NULL;
		char err[512] = "";
		size_t len = cases[i].len ? cases[i].len : strlen(cases[i].body);
		int st = agents_beat_decode(cases[i].body, len, &agents_lim, &b, &root, err,
					    sizeof(err));

		cJSON_Delete(root);
		CHECK_MSG(st == cases[i].status, "case %zu: %d %s", i, st, err);
		CHECK_MSG(strncmp(err, cases[i].starts, strlen(cases[i].starts)) == 0,
			  "case %zu: %s", i, err);
	}
}

UNIT_TEST(agents_beat_refuses_more_values_than_the_bound_before_parsing)
{
	static const struct agents_beat_limits small = { 256, 4096, 64 };
	char body[1024];
	size_t n = (size_t)snprintf(body, sizeof(body), "{\"agent_id\":\"a\",\"x\":[");
	struct agents_beat b;
	cJSON *root = NULL;
	char err[512] = "";

	for (int i = 0; i < 100; i++)
		n += (size_t)snprintf(body + n, sizeof(body) - n, "%s0", i ? "," : "");
	n += (size_t)snprintf(body + n, sizeof(body) - n, "]}");
	CHECK(agents_beat_decode(body, n, &small, &b, &root, err, sizeof(err)) == 413);
	CHECK(root == NULL);
	CHECK_MSG(strstr(err, "max_element_values") != NULL, "%s", err);
}
