/* The ingest decoder's framing scan and per-element rules: raw control
 * characters and trailing bytes, duplicate keys, elements over their caps, the
 * reject's cut raw text, and the turns verdicts. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "ingest_json.h"
#include "ingest_turns.h"
#include "unit.h"

#define ROW_HEAD "{\"id\":\"a\",\"timestamp\":1.8e9,\"modality\":\"llm\""

static void limits(struct ingest_limits *lim)
{
	lim->max_inflated_bytes = 1 << 20;
	lim->max_batch_rows = 10;
	lim->max_element_values = 64;
	lim->max_reject_raw_bytes = 32;
	row_limits_default(&lim->row);
}

static int decode_len(const char *body, size_t len, struct ingest_batch *b, char *err,
		      size_t errlen)
{
	struct ingest_limits lim;
	struct ingest_scope any = { NULL, NULL };

	limits(&lim);
	return ingest_decode(body, len, false, &lim, &any, 1.8e9, b, err, errlen);
}

/* Bodies with raw bytes, so each has its length. */
#define BODY(s) s, sizeof(s) - 1

static const struct {
	const char *name, *body;
	size_t len;
	const char *expect;
} framing_cases[] = {
	{ "ingest_refuses_raw_nul_in_a_string", BODY("[" ROW_HEAD ",\"agent_id\":\"X\0A\"}]"),
	  "raw control character 0x00 inside a string at byte 59 " },
	{ "ingest_refuses_raw_tab_in_a_string", BODY("[{\"a\":\"x\ty\"}]"),
	  "control character 0x09 inside a string at byte 8 " },
	{ "ingest_refuses_raw_control_after_a_backslash", BODY("[{\"a\":\"x\\\x01\"}]"),
	  "control character 0x01 inside a string at byte 9 " },
	{ "ingest_refuses_nul_as_an_element", BODY("[\0]"), "unexpected byte 0x00 at byte 1 " },
	{ "ingest_refuses_nul_after_the_array", BODY("[{}]\0garbage"),
	  "unexpected byte 0x00 at byte 4 (line 1, column 5) after the array" },
	{ "ingest_refuses_text_after_the_array", BODY("[]\n x"),
	  "unexpected 'x' at byte 4 (line 2, column 2) after the array" },
	{ "ingest_refuses_a_second_array", BODY("[] []"), "at byte 3 " },
	{ "ingest_refuses_a_leading_comma", BODY("[,{}]"), "unexpected ',' at byte 1 " },
	{ "ingest_refuses_a_trailing_comma", BODY("[{},]"), "unexpected ']' at byte 4 " },
	{ "ingest_refuses_two_commas", BODY("[{},,{}]"), "unexpected ',' at byte 4 " },
	{ "ingest_refuses_a_brace_closing_the_array", BODY("[{}}"), "unexpected '}' at byte 3 " },
	{ "ingest_refuses_a_mismatched_bracket_inside", BODY("[{\"a\":1]]"),
	  "unexpected ']' at byte 7 " },
	{ "ingest_refuses_two_values_in_one_element", BODY("[1 2]"), "unexpected '2' at byte 3 " },
	{ "ingest_reports_a_truncated_body", BODY("[{\"a\":\"b"), "truncated after 8 bytes" },
};

UNIT_TEST(ingest_framing_table)
{
	for (size_t i = 0; i < sizeof(framing_cases) / sizeof(framing_cases[0]); i++) {
		struct ingest_batch b;
		char err[512] = "";
		int st = decode_len(framing_cases[i].body, framing_cases[i].len, &b, err,
				    sizeof(err));

		CHECK_MSG(st == 400 && strstr(err, framing_cases[i].expect), "%s: %d \"%s\"",
			  framing_cases[i].name, st, err);
		ingest_batch_release(&b);
	}
}

UNIT_TEST(ingest_accepts_white_space_around_and_between_elements)
{
	static const char body[] = " \r\n[\t" ROW_HEAD "} ,\n" ROW_HEAD ",\"id\":\"b\"} ]\r\n\t ";
	struct ingest_batch b;
	char err[256] = "";

	CHECK_MSG(decode_len(BODY(body), &b, err, sizeof(err)) == 200, "%s", err);
	/* The second element repeats "id": refused on its own. */
	CHECK(b.total == 2 && b.nrows == 1 && b.nrejects == 1);
	ingest_batch_release(&b);
}

UNIT_TEST(ingest_rejects_a_row_repeating_a_key_naming_it)
{
	static const char body[] =
		"[" ROW_HEAD ",\"cost_usd\":1,\"cost_usd\":2},"
		"{\"cost_usd\":1,\"id\":\"b\",\"timestamp\":1.8e9,"
		"\"modality\":\"llm\",\"provider\":\"p\",\"cost_usd\":2},"
		"{\"id\":\"c\",\"timestamp\":1.8e9,\"modality\":\"llm\","
		"\"metadata\":{\"k\":1,\"k\":2,\"tenant\":\"x\",\"tenant\":\"y\"}}]";
	struct ingest_batch b;
	char err[256] = "";

	CHECK_MSG(decode_len(BODY(body), &b, err, sizeof(err)) == 200, "%s", err);
	CHECK(b.nrejects == 2 && b.nrows == 1);
	for (int i = 0; i < b.nrejects; i++)
		CHECK_MSG(strcmp(b.rejects[i].reason, "duplicate key \"cost_usd\"") == 0, "%s",
			  b.rejects[i].reason);
	/* Inside metadata the last of a repeated key wins, as jsonb keeps it. */
	CHECK(b.nrows == 1 && strcmp(b.rows[0].tenant_id, "y") == 0);
	ingest_batch_release(&b);
}

/* Rows are read through a hash index of their members: keys whose hashes are
 * equal are still different keys, and a row of more members than the index
 * holds on the stack is read, and checked for repeats, just the same. */
UNIT_TEST(ingest_reads_rows_of_many_keys_and_colliding_hashes)
{
	struct ingest_limits lim;
	struct ingest_scope any = { NULL, NULL };
	struct buf body;
	struct ingest_batch b;
	char err[256] = "";

	buf_init(&body, 0);
	/* "k32728" and "k261234" have the same 32-bit FNV-1a hash. */
	buf_puts(&body, "[" ROW_HEAD ",\"k32728\":1,\"k261234\":2,\"cost_usd\":0.5}");
	for (int dup = 0; dup < 2; dup++) {
		buf_puts(&body, ",{");
		for (int k = 0; k < 40; k++)
			buf_printf(&body, "\"x%d\":%d,", k, k);
		buf_printf(&body, "\"tenant_id\":\"t%d\",\"x%d\":1,", dup, dup ? 39 : 40);
		buf_puts(&body, "\"id\":\"m\",\"timestamp\":1.8e9,\"modality\":\"tts\"}");
	}
	buf_puts(&body, "]");
	CHECK(!body.over);
	limits(&lim);
	lim.max_element_values = 256; /* the default, 64, allows 32 members */
	CHECK_MSG(ingest_decode(body.data, body.len, false, &lim, &any, 1.8e9, &b, err,
				sizeof(err)) == 200,
		  "%s", err);
	CHECK_MSG(b.nrows == 2 && b.nrejects == 1, "%d rows, %d rejects: %s", b.nrows, b.nrejects,
		  b.nrejects ? b.rejects[0].reason : "");
	CHECK(b.nrows == 2 && strcmp(b.rows[0].id, "a") == 0 && b.rows[0].cost_usd == 0.5);
	CHECK(b.nrows == 2 && strcmp(b.rows[1].tenant_id, "t0") == 0 &&
	      b.rows[1].modality == ROW_TTS);
	CHECK(b.nrejects == 1 && b.rejects[0].index == 2 &&
	      strcmp(b.rejects[0].reason, "duplicate key \"x39\"") == 0);
	ingest_batch_release(&b);
	buf_release(&body);
}

UNIT_TEST(ingest_rejects_an_element_over_max_element_values_unread)
{
	char body[1024];
	struct ingest_batch b;
	char err[256] = "";
	int n = snprintf(body, sizeof(body), "[" ROW_HEAD ",\"metadata\":{\"k\":[");

	for (int i = 0; i < 70; i++)
		n += snprintf(body + n, sizeof(body) - (size_t)n, "%s1", i ? "," : "");
	/* Past the cap the element is not even parsed: bad JSON inside is not seen. */
	n += snprintf(body + n, sizeof(body) - (size_t)n,
		      ",tru]}},{\"id\":\"b\",\"timestamp\":1.8e9,\"modality\":\"llm\"}]");
	CHECK_MSG(decode_len(body, (size_t)n, &b, err, sizeof(err)) == 200, "%s", err);
	CHECK(b.nrows == 1 && b.nrejects == 1 && b.rejects[0].index == 0);
	CHECK_MSG(b.nrejects == 1 && strstr(b.rejects[0].reason, "holds 82 JSON values") &&
			  strstr(b.rejects[0].reason, "max_element_values (64)"),
		  "%s", b.nrejects ? b.rejects[0].reason : "");
	ingest_batch_release(&b);
}

UNIT_TEST(ingest_cuts_a_rejects_raw_on_a_utf8_boundary_and_says_so)
{
	/* Byte 32 (the cap) is the second byte of an "é": the cut goes before it. */
	static const char body[] =
		"[{\"id\":\"a\",\"modality\":\"x\",\"m\":\"x\xc3\xa9\xc3\xa9\"}]";
	static const char want[] = "{\"id\":\"a\",\"modality\":\"x\",\"m\":\"x"
				   "\xe2\x80\xa6[cut: 37 bytes in all]";
	struct ingest_batch b;
	char err[256] = "";

	CHECK_MSG(decode_len(BODY(body), &b, err, sizeof(err)) == 200, "%s", err);
	CHECK_MSG(b.nrejects == 1 && strcmp(b.rejects[0].raw, want) == 0, "raw \"%s\"",
		  b.nrejects ? b.rejects[0].raw : "");
	ingest_batch_release(&b);
}

UNIT_TEST(ingest_keeps_a_short_rejects_raw_as_sent)
{
	static const char body[] = "[ {\"id\" : \"a\", \"modality\":\"x\"} ]";
	struct ingest_batch b;
	char err[256] = "";

	CHECK_MSG(decode_len(BODY(body), &b, err, sizeof(err)) == 200, "%s", err);
	CHECK(b.nrejects == 1 &&
	      strcmp(b.rejects[0].raw, "{\"id\" : \"a\", \"modality\":\"x\"}") == 0);
	ingest_batch_release(&b);
}

UNIT_TEST(ingest_turns_verdicts_per_element)
{
	static const char body[] =
		"[{\"a\":1},2,{\"b\":\"\\u0000\"},{\"c\":\"\xff\"},"
		"[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
		"1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
		"1,1,1,1,1,1,1]]";
	struct ingest_limits lim;
	struct buf inflated;
	cJSON *root = NULL;
	char err[256] = "";
	const char *why[5];
	int n = 0;

	limits(&lim);
	buf_init(&inflated, 0);
	CHECK_MSG(ingest_parse_array(BODY(body), false, &lim, &inflated, &root, err, sizeof(err)) ==
			  200,
		  "%s", err);
	for (const cJSON *it = root ? root->child : NULL; it && n < 5; it = it->next)
		why[n++] = ingest_turn_error(it, NULL, 0);
	CHECK(n == 5);
	if (n == 5) {
		CHECK(why[0] == NULL && strcmp(root->child->valuestring, "{\"a\":1}") == 0);
		CHECK(why[1] && strstr(why[1], "JSON object"));
		CHECK(why[2] && strstr(why[2], "\\u0000"));
		CHECK(why[3] == NULL); /* stored with U+FFFD for the bad byte */
		CHECK(why[4] && strstr(why[4], "max_element_values"));
	}
	cJSON_Delete(root);
	buf_release(&inflated);
}

UNIT_TEST(ingest_cuts_a_rejects_raw_grown_past_the_cap_by_replacement_characters)
{
	/* 26 bytes as sent, but each \xff becomes the 3-byte U+FFFD. */
	static const char body[] =
		"[{\"id\":\"a\",\"x\":\"\xff\xff\xff\xff\xff\xff\xff\xff\xff\"}]";
	struct ingest_batch b;
	char err[256] = "";

	CHECK_MSG(decode_len(BODY(body), &b, err, sizeof(err)) == 200, "%s", err);
	CHECK_MSG(b.nrejects == 1 && strstr(b.rejects[0].raw, "[cut: 26 bytes in all]") &&
			  strlen(b.rejects[0].raw) <=
				  32 + strlen("\xe2\x80\xa6[cut: 26 bytes in all]"),
		  "raw \"%s\"", b.nrejects ? b.rejects[0].raw : "");
	ingest_batch_release(&b);
}
