/* Unit tests for the read API's query parsing (rollup_query.c): the query
 * string splitter, text and time-range checks, cursors and the /v1/costs
 * window. Pure code: no database, no HTTP. */
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "rollup_cursor.h"
#include "rollup_query.h"
#include "timefmt.h"
#include "unit.h"

#define NOW 1780000000.0 /* 2026-05-28T20:26:40Z */

struct parse_case {
	const char *name;
	enum rollup_kind kind;
	const char *query; /* raw, as after '?' */
	int status;
	const char *expect; /* in err (status != 200), or "" */
};

static const struct parse_case parse_cases[] = {
	{ "query_accepts_plain_filters", ROLLUP_KIND_ROLLUPS, "agent=a&tenant=b", 200, "" },
	{ "query_decodes_plus_and_percent", ROLLUP_KIND_ROWS, "agent=a+b%2Cc", 200, "" },
	{ "query_skips_empty_pieces", ROLLUP_KIND_ROWS, "agent=a&&limit=5&", 200, "" },
	{ "query_refuses_nul_in_value", ROLLUP_KIND_ROWS, "session_id=a%00b", 400,
	  "session_id: holds a NUL byte" },
	{ "query_refuses_nul_in_name", ROLLUP_KIND_ROWS, "ag%00ent=a", 400, "NUL byte" },
	{ "query_refuses_piece_without_equals", ROLLUP_KIND_ROWS, "agent", 400,
	  "agent: expected name=value" },
	{ "query_refuses_invalid_utf8", ROLLUP_KIND_ROLLUPS, "agent=%ff", 400,
	  "agent: not valid UTF-8" },
	{ "query_refuses_c0_control", ROLLUP_KIND_ROLLUPS, "tenant=a%1b", 400,
	  "tenant: control character U+001B at byte 1" },
	{ "query_refuses_del", ROLLUP_KIND_COSTS, "project=%7f", 400, "project: control" },
	{ "query_refuses_c1_control", ROLLUP_KIND_ROWS, "model=%c2%9b", 400, "U+009B" },
	{ "query_accepts_other_utf8", ROLLUP_KIND_ROWS, "agent=%c2%a0%e2%82%ac", 200, "" },
	{ "query_refuses_bad_name_without_echo", ROLLUP_KIND_ROWS, "%ff=1", 400,
	  "a parameter name: not valid UTF-8" },
	{ "rollups_refuse_to_before_1970", ROLLUP_KIND_ROLLUPS, "to=0001-01-01T01:00:00Z", 400,
	  "to: \"0001-01-01T01:00:00Z\" is outside the supported range" },
	{ "rollups_clamp_default_from_to_1970", ROLLUP_KIND_ROLLUPS, "to=1970-01-02", 200, "" },
	{ "rows_refuse_offset_before_1970", ROLLUP_KIND_ROWS, "from=1970-01-01T00:00:00%2B01:00",
	  400, "from: " },
	{ "rows_accept_year_9999", ROLLUP_KIND_ROWS, "to=9999-12-31T23:59:59.999999Z", 200, "" },
	{ "costs_accept_end_through_9999", ROLLUP_KIND_COSTS, "end=9999-12-31", 200, "" },
	{ "costs_refuse_start_after_current_hour", ROLLUP_KIND_COSTS, "start=2026-05-28T22:00:00Z",
	  400, "start: " },
	{ "cursor_refuses_max_time", ROLLUP_KIND_ROWS, "next=OTIyMzM3MjAzNjg1NDc3NTgwN3x4", 400,
	  "next: not a cursor" },
	{ "cursor_refuses_negative_time", ROLLUP_KIND_ROWS, "next=LTF8eA", 400,
	  "next: not a cursor" },
	{ "csv_raw_takes_1_or_0", ROLLUP_KIND_ROLLUPS, "csv_raw=yes", 400, "csv_raw: " },
	{ "csv_raw_is_rollups_only", ROLLUP_KIND_ROWS, "csv_raw=1", 400, "unknown parameter" },
};

static int parse(const struct parse_case *c, struct rollup_query *q, char *err, size_t errlen)
{
	struct rollup_param params[ROLLUP_MAX_PARAMS];
	struct rollup_limits lim = { 100000, NOW };
	char qs[512];
	int n, st;

	snprintf(qs, sizeof(qs), "%s", c->query);
	rollup_query_init(q, c->kind);
	st = rollup_params_split(qs, params, &n, err, errlen);
	if (st == 200)
		st = rollup_query_parse(q, params, n, &lim, err, errlen);
	return st;
}

UNIT_TEST(rollup_query_parse_table)
{
	for (size_t i = 0; i < sizeof(parse_cases) / sizeof(parse_cases[0]); i++) {
		const struct parse_case *c = &parse_cases[i];
		struct rollup_query q;
		char err[512] = "";
		int st = parse(c, &q, err, sizeof(err));

		CHECK_MSG(st == c->status, "%s: status %d (%s)", c->name, st, err);
		CHECK_MSG(strstr(err, c->expect) != NULL, "%s: error \"%s\"", c->name, err);
		rollup_query_free(&q);
	}
}

UNIT_TEST(costs_with_only_start_end_at_the_end_of_the_current_hour)
{
	const struct parse_case c = { "", ROLLUP_KIND_COSTS, "start=2026-01-01", 200, "" };
	struct rollup_query q;
	char err[256] = "", to[40];

	CHECK(parse(&c, &q, err, sizeof(err)) == 200);
	timefmt_format(q.to_us, to, sizeof(to));
	CHECK(q.has_from && q.has_to);
	CHECK_MSG(strcmp(to, "2026-05-28T21:00:00Z") == 0, "to %s", to);
	rollup_query_free(&q);
}

UNIT_TEST(cursor_round_trips_an_id_with_control_characters)
{
	struct buf b;
	struct rollup_query q;
	char query[256], err[256] = "";
	struct parse_case c = { "", ROLLUP_KIND_ROWS, query, 200, "" };

	buf_init(&b, 0);
	CHECK(rollup_cursor_encode(1780000000123456LL, "id\x1b|x", &b));
	snprintf(query, sizeof(query), "next=%s", b.data);
	buf_release(&b);
	CHECK_MSG(parse(&c, &q, err, sizeof(err)) == 200, "%s", err);
	CHECK(q.has_cursor && q.cursor_ts_us == 1780000000123456LL);
	CHECK(q.cursor_id && strcmp(q.cursor_id, "id\x1b|x") == 0);
	rollup_query_free(&q);
}
