/* The OTLP trace decoders, case by case: which spans become rows, which are
 * rejected and why, what makes the whole body a 400 or 413, the legacy
 * attribute names, the key's scope, and the two encodings of the answer. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ingest_otlp.h"
#include "unit.h"

#define TRACE "\"traceId\":\"5B8EFFF798038103D269B633813FC60C\",\"spanId\":\"EEE19B7EC3C1B174\""
#define TIMES                                                                                      \
	"\"startTimeUnixNano\":\"1800000000000000000\",\"endTimeUnixNano\":\"1800000000250000000\""
#define OP(op) "{\"key\":\"gen_ai.operation.name\",\"value\":{\"stringValue\":\"" op "\"}}"
#define KV(k, v) ",{\"key\":\"" k "\",\"value\":" v "}"
#define SPAN(attrs) "{" TRACE "," TIMES ",\"attributes\":[" attrs "]}"
#define REQ(spans)                                                                                   \
	"{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":\"service.name\",\"value\":"    \
	"{\"stringValue\":\"bot\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"s\"},\"spans\":[" spans \
	"]}]}]}"

static int decode(const char *body, const struct ingest_scope *scope, int max_rows,
		  struct ingest_batch *b, char *err, size_t errlen)
{
	struct ingest_limits lim;

	lim.max_inflated_bytes = 1 << 20;
	lim.max_decoded_bytes = 1 << 24;
	lim.max_batch_rows = max_rows;
	lim.max_element_values = 64;
	lim.max_reject_raw_bytes = 4096;
	row_limits_default(&lim.row);
	memset(b, 0, sizeof(*b));
	return ingest_otlp_decode_json(body, strlen(body), &lim, scope, 1.8e9, b, err, errlen);
}

static const struct {
	const char *name, *body;
	int status, rows, rejects;
	const char *expect; /* the reject's reason, or the 400's message, starts so */
} otlp_cases[] = {
	{ "a plain span is ignored", REQ(SPAN("{\"key\":\"http.method\",\"value\":{}}")), 200, 0, 0,
	  NULL },
	{ "an agent span is ignored", REQ(SPAN(OP("invoke_agent"))), 200, 0, 0, NULL },
	{ "a tool span is ignored", REQ(SPAN(OP("execute_tool"))), 200, 0, 0, NULL },
	{ "a chat span is a row", REQ(SPAN(OP("chat"))), 200, 1, 0, NULL },
	{ "a span ending before it starts is rejected",
	  REQ("{" TRACE ",\"startTimeUnixNano\":\"1800000000000000000\",\"endTimeUnixNano\":"
	      "\"1700000000000000000\",\"attributes\":[" OP("chat") "]}"),
	  200, 0, 1, "endTimeUnixNano is before startTimeUnixNano" },
	{ "a short traceId is rejected",
	  REQ("{\"traceId\":\"abc\",\"spanId\":\"EEE19B7EC3C1B174\"," TIMES
	      ",\"attributes\":[" OP("chat") "]}"),
	  200, 0, 1, "traceId must be 32 hex digits" },
	{ "an all-zero spanId is rejected",
	  REQ("{\"traceId\":\"5B8EFFF798038103D269B633813FC60C\",\"spanId\":\"0000000000000000\"," TIMES
	      ",\"attributes\":[" OP("chat") "]}"),
	  200, 0, 1, "spanId is all zeroes" },
	{ "tokens that are not a number are rejected",
	  REQ(SPAN(OP("chat") KV("gen_ai.usage.input_tokens", "{\"stringValue\":\"many\"}"))), 200,
	  0, 1, "gen_ai.usage.input_tokens: must be a number" },
	{ "negative tokens break the row rules",
	  REQ(SPAN(OP("chat") KV("gen_ai.usage.output_tokens", "{\"intValue\":\"-3\"}"))), 200, 0,
	  1, "output_units" },
	{ "a body that is not JSON is a 400", "{\"resourceSpans\":[", 400, 0, 0, "body is not" },
	{ "resourceSpans that is not an array is a 400", "{\"resourceSpans\":{}}", 400, 0, 0,
	  "resourceSpans: must be an array" },
	{ "attributes that are not an array is a 400",
	  REQ("{" TRACE "," TIMES ",\"attributes\":7}"), 400, 0, 0, "resourceSpans[0]" },
	{ "an empty request is a full success", "{}", 200, 0, 0, NULL },
};

UNIT_TEST(otlp_json_spans_rows_rejects_and_400s)
{
	struct ingest_scope any = { NULL, NULL };

	for (size_t i = 0; i < sizeof(otlp_cases) / sizeof(otlp_cases[0]); i++) {
		struct ingest_batch b;
		char err[512] = "";
		int status = decode(otlp_cases[i].body, &any, 10, &b, err, sizeof(err));
		const char *got = status == 400 ? err : b.nrejects ? b.rejects[0].reason : NULL;

		CHECK_MSG(status == otlp_cases[i].status, "%s: status %d (%s)", otlp_cases[i].name,
			  status, err);
		CHECK_MSG(b.nrows == otlp_cases[i].rows && b.nrejects == otlp_cases[i].rejects,
			  "%s: %d rows, %d rejects (%s)", otlp_cases[i].name, b.nrows, b.nrejects,
			  got ? got : "");
		if (otlp_cases[i].expect)
			CHECK_MSG(got && strncmp(got, otlp_cases[i].expect,
						 strlen(otlp_cases[i].expect)) == 0,
				  "%s: got %s", otlp_cases[i].name, got ? got : "(none)");
		ingest_batch_release(&b);
	}
}

UNIT_TEST(otlp_legacy_names_map_and_ids_are_lowercase_hex)
{
	struct ingest_scope any = { NULL, NULL };
	struct ingest_batch b;
	char err[512];
	const char *body = REQ(SPAN(
		OP("chat") KV("gen_ai.system", "{\"stringValue\":\"openai\"}")
			KV("gen_ai.request.model", "{\"stringValue\":\"gpt-3.5\"}")
				KV("gen_ai.usage.prompt_tokens", "{\"intValue\":31}") KV(
					"gen_ai.usage.completion_tokens", "{\"intValue\":\"9\"}")
					KV("gen_ai.usage.cost.amount", "{\"doubleValue\":0.25}")
						KV("gen_ai.usage.cost.currency",
						   "{\"stringValue\":\"USD\"}")));

	CHECK(decode(body, &any, 10, &b, err, sizeof(err)) == 200 && b.nrows == 1);
	CHECK(strcmp(b.rows[0].id, "5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174") == 0);
	CHECK(strcmp(b.rows[0].provider, "openai") == 0);
	CHECK(strcmp(b.rows[0].model_id, "openai/gpt-3.5") == 0);
	CHECK(b.rows[0].input_units == 31 && b.rows[0].output_units == 9);
	CHECK(b.rows[0].cost_usd == 0.25 && strcmp(b.rows[0].pricing_source, "otel") == 0);
	CHECK(strcmp(b.rows[0].agent_id, "bot") == 0 && strcmp(b.rows[0].project, "default") == 0);
	CHECK(b.rows[0].total_latency_ms == 250 && b.rows[0].timestamp == 1.8e9);
	ingest_batch_release(&b);
}

UNIT_TEST(otlp_scoped_key_refuses_another_tenant_and_stamps_its_own)
{
	struct ingest_scope acme = { NULL, "acme" };
	struct ingest_batch b;
	char err[512];

	CHECK(decode(REQ(SPAN(OP("chat") KV("vg.tenant", "{\"stringValue\":\"globex\"}"))), &acme,
		     10, &b, err, sizeof(err)) == 200);
	CHECK(b.nrows == 0 && b.nrejects == 1 &&
	      strstr(b.rejects[0].reason, "may only write tenant \"acme\""));
	ingest_batch_release(&b);
	CHECK(decode(REQ(SPAN(OP("chat"))), &acme, 10, &b, err, sizeof(err)) == 200);
	CHECK(b.nrows == 1 && strcmp(b.rows[0].tenant_id, "acme") == 0);
	CHECK(strcmp(b.rows[0].pricing_source, "unpriced") == 0 && b.rows[0].cost_usd == 0);
	ingest_batch_release(&b);
}

UNIT_TEST(otlp_more_genai_spans_than_max_batch_rows_is_413)
{
	struct ingest_scope any = { NULL, NULL };
	struct ingest_batch b;
	char err[512];

	CHECK(decode(REQ(SPAN(OP("chat")) "," SPAN(OP("chat"))), &any, 1, &b, err, sizeof(err)) ==
	      413);
	CHECK(strstr(err, "max_batch_rows") != NULL);
	ingest_batch_release(&b);
}

UNIT_TEST(otlp_protobuf_garbage_is_400)
{
	struct ingest_scope any = { NULL, NULL };
	struct ingest_limits lim;
	struct ingest_batch b;
	char err[512];

	lim.max_inflated_bytes = 1 << 20;
	lim.max_decoded_bytes = 1 << 24;
	lim.max_batch_rows = 10;
	lim.max_element_values = 64;
	lim.max_reject_raw_bytes = 256;
	row_limits_default(&lim.row);
	memset(&b, 0, sizeof(b));
	CHECK(ingest_otlp_decode_proto("\x0a\xff\xff\xff\xff\x0f", 6, &lim, &any, 1.8e9, &b, err,
				       sizeof(err)) == 400);
	ingest_batch_release(&b);
	/* An empty body is an empty request: a full success. */
	CHECK(ingest_otlp_decode_proto("", 0, &lim, &any, 1.8e9, &b, err, sizeof(err)) == 200);
	ingest_batch_release(&b);
}

UNIT_TEST(otlp_answers_in_json_and_protobuf)
{
	struct buf out;

	buf_init(&out, 0);
	CHECK(ingest_otlp_answer(false, 0, NULL, &out) && strcmp(out.data, "{}") == 0);
	buf_reset(&out);
	CHECK(ingest_otlp_answer(false, 2, "span 1: \"x\"", &out));
	CHECK(strcmp(out.data, "{\"partialSuccess\":{\"rejectedSpans\":\"2\","
			       "\"errorMessage\":\"span 1: \\\"x\\\"\"}}") == 0);
	buf_reset(&out);
	CHECK(ingest_otlp_answer(true, 0, NULL, &out) && out.len == 0);
	buf_reset(&out);
	/* partial_success (1) { rejected_spans (1) = 2, error_message (2) = "x" } */
	CHECK(ingest_otlp_answer(true, 2, "x", &out) && out.len == 7 &&
	      memcmp(out.data, "\x0a\x05\x08\x02\x12\x01x", 7) == 0);
	buf_reset(&out);
	CHECK(ingest_otlp_status(true, 3, "bad", &out) && out.len == 7 &&
	      memcmp(out.data,
		     "\x08\x03\x12\x03"
		     "bad",
		     7) == 0);
	buf_reset(&out);
	CHECK(ingest_otlp_status(false, 3, "bad", &out) &&
	      strcmp(out.data, "{\"code\":3,\"message\":\"bad\"}") == 0);
	buf_release(&out);
}
