/* vgsink_record refuses a bad row at once, with a message naming the field,
 * and queues nothing for it; good rows next to it are kept. */
#include <string.h>

#include "sinkrow.h"
#include "unit.h"

UNIT_TEST(sink_record_refuses_bad_rows_with_the_field_named)
{
	static const struct {
		const char *name, *modality, *status, *tenant, *metadata;
		double cost;
		const char *expect;
	} cases[] = {
		{ "unknown modality", "video", NULL, NULL, NULL, 0, "modality" },
		{ "unknown status", "llm", "maybe", NULL, NULL, 0, "status" },
		{ "tenant with a space", "llm", NULL, "acme corp", NULL, 0, "tenant_id" },
		{ "negative cost", "llm", NULL, NULL, NULL, -1, "cost_usd" },
		{ "metadata not an object", "llm", NULL, NULL, "[1]", 0, "metadata_json" },
		{ "metadata holding a NUL", "llm", NULL, NULL, "{\"a\":\"x\\u0000\"}", 0,
		  "\\u0000" },
		{ "metadata holding a raw control character", "llm", NULL, NULL,
		  "{\"a\":\"x\x01y\"}", 0, "metadata_json" },
		{ "metadata holding a raw tab", "llm", NULL, NULL, "{\"a\":\"x\ty\"}", 0,
		  "metadata_json" },
	};
	vgsink_config cfg;
	vgsink_stats st;
	char err[512];
	vgsink *s;

	vgsink_config_init(&cfg);
	cfg.url = "http://127.0.0.1:9"; /* nothing listens: rows stay queued */
	cfg.api_key = "k";
	cfg.flush_interval_ms = 3600000;
	s = vgsink_open(&cfg, err, sizeof(err));
	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		vgsink_row r = sinkrow_minimal();

		r.modality = cases[i].modality;
		r.status = cases[i].status;
		r.tenant_id = cases[i].tenant;
		r.metadata_json = cases[i].metadata;
		if (cases[i].cost < 0)
			r.cost_usd = cases[i].cost;
		CHECK_MSG(vgsink_record(s, &r) == -1, "%s: accepted", cases[i].name);
		CHECK_MSG(strstr(vgsink_errstr(s), cases[i].expect) != NULL,
			  "%s: error \"%s\" lacks \"%s\"", cases[i].name, vgsink_errstr(s),
			  cases[i].expect);
	}
	/* The text C:\u0000 (an escaped backslash) holds no NUL. */
	vgsink_row ok = sinkrow_minimal();
	ok.metadata_json = "{\"path\":\"C:\\\\u0000\"}";
	CHECK_MSG(vgsink_record(s, &ok) == 0, "%s", vgsink_errstr(s));
	/* Repeated keys in metadata are the client's data: the collector stores
	 * them as jsonb does (the last wins), so the sink takes them too. */
	ok.metadata_json = "{\"tenant\":\"a\",\"tenant\":\"b\"}";
	CHECK_MSG(vgsink_record(s, &ok) == 0, "%s", vgsink_errstr(s));
	vgsink_stats_get(s, &st);
	CHECK_MSG(st.recorded == 2 && st.queued == 2, "recorded %llu queued %llu",
		  (unsigned long long)st.recorded, (unsigned long long)st.queued);
	vgsink_close(s, 0);
}
