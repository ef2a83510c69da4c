/* The read API's refusals, one named case per bad query: each runs the query
 * string through rollup_params_split and rollup_query_parse, as GET /v1/rollups,
 * /v1/costs and /v1/rows do, and holds the 400's whole message byte for byte. */
#include <stdio.h>
#include <string.h>

#include "rollup_query.h"
#include "unit.h"

/* The HTTP path's limits: max_rollup_periods' default and a fixed clock. */
#define BAD_READ_MAX_PERIODS 100000
#define BAD_READ_NOW 1780000000.0 /* 2026-05-28T20:26:40Z */

/* name, endpoint, raw query string (as after '?'), the whole 400 message. Each
 * row becomes its own unit test (BAD_READ_CASE below), named by its first field. */
// clang-format off
#define BAD_READS(X) \
	X(rollups_refuse_unknown_parameter, ROLLUP_KIND_ROLLUPS, "colour=red", \
	  "unknown parameter \"colour\"; /v1/rollups takes from, to, granularity, group_by, format, csv_raw, project, agent, tenant, modality, provider, model") \
	X(rollups_refuse_unknown_group_by_column, ROLLUP_KIND_ROLLUPS, "group_by=tenant%2Ccolour", \
	  "group_by: unknown value \"colour\"; expected a comma list of project, agent, tenant, modality, provider, model") \
	X(rollups_refuse_group_by_column_twice, ROLLUP_KIND_ROLLUPS, "group_by=tenant%2Ctenant", \
	  "group_by: \"tenant\" is listed twice") \
	X(rollups_refuse_granularity_week, ROLLUP_KIND_ROLLUPS, "granularity=week", \
	  "granularity: \"week\": expected hour, day, month or total") \
	X(rollups_refuse_format_xml, ROLLUP_KIND_ROLLUPS, "format=xml", \
	  "format: \"xml\": expected json or csv") \
	X(rollups_refuse_month_13, ROLLUP_KIND_ROLLUPS, "from=2024-13-01", \
	  "from: \"2024-13-01\" is not a date (YYYY-MM-DD) or an RFC 3339 timestamp (2024-05-01T00:00:00Z)") \
	X(rollups_refuse_february_30, ROLLUP_KIND_ROLLUPS, "from=2024-02-30&to=2024-03-02", \
	  "from: \"2024-02-30\" is not a date (YYYY-MM-DD) or an RFC 3339 timestamp (2024-05-01T00:00:00Z)") \
	X(rollups_refuse_to_yesterday, ROLLUP_KIND_ROLLUPS, "to=yesterday", \
	  "to: \"yesterday\" is not a date (YYYY-MM-DD) or an RFC 3339 timestamp (2024-05-01T00:00:00Z)") \
	X(rollups_refuse_from_off_the_hour, ROLLUP_KIND_ROLLUPS, "from=2024-01-01T10%3A30%3A00Z&to=2024-01-02", \
	  "from: 2024-01-01T10:30:00Z is not on an hour boundary; rollups are summed from whole UTC hours") \
	X(rollups_refuse_from_after_to, ROLLUP_KIND_ROLLUPS, "from=2024-05-02&to=2024-05-01", \
	  "from, to: from must be before to (the range is [from, to))") \
	X(rollups_refuse_empty_range, ROLLUP_KIND_ROLLUPS, "from=2024-05-01&to=2024-05-01", \
	  "from, to: from must be before to (the range is [from, to))") \
	X(rollups_refuse_more_than_max_rollup_periods, ROLLUP_KIND_ROLLUPS, "from=2000-01-01&to=2024-01-01&granularity=hour", \
	  "from, to: the range spans 210384 hour periods, more than max_rollup_periods (100000); narrow it or use a coarser granularity") \
	X(rollups_refuse_modality_video, ROLLUP_KIND_ROLLUPS, "modality=video", \
	  "modality: \"video\": expected stt, llm or tts") \
	X(rollups_refuse_limit, ROLLUP_KIND_ROLLUPS, "limit=5", \
	  "unknown parameter \"limit\"; /v1/rollups takes from, to, granularity, group_by, format, csv_raw, project, agent, tenant, modality, provider, model") \
	X(costs_refuse_period_year, ROLLUP_KIND_COSTS, "period=year", \
	  "period: \"year\": expected today, week, month or all") \
	X(costs_refuse_start_may_1, ROLLUP_KIND_COSTS, "start=May+1", \
	  "start: \"May 1\" is not a date (YYYY-MM-DD) or an RFC 3339 timestamp (2024-05-01T00:00:00Z)") \
	X(costs_refuse_period_with_start, ROLLUP_KIND_COSTS, "period=week&start=2024-05-01", \
	  "period: give either period or start/end, not both") \
	X(costs_refuse_group_by, ROLLUP_KIND_COSTS, "group_by=tenant", \
	  "unknown parameter \"group_by\"; /v1/costs takes start, end, period, project, tenant") \
	X(rows_refuse_limit_1001, ROLLUP_KIND_ROWS, "limit=1001", \
	  "limit: \"1001\": expected a whole number from 1 to 1000") \
	X(rows_refuse_limit_0, ROLLUP_KIND_ROWS, "limit=0", \
	  "limit: \"0\": expected a whole number from 1 to 1000") \
	X(rows_refuse_cursor_with_bad_characters, ROLLUP_KIND_ROWS, "next=not-a-cursor%21", \
	  "next: not a cursor this endpoint returned (it does not decode)") \
	X(rows_refuse_cursor_without_bar, ROLLUP_KIND_ROWS, "next=bm9waXBl", \
	  "next: not a cursor this endpoint returned (it does not decode)") \
	X(rows_refuse_granularity, ROLLUP_KIND_ROWS, "granularity=day", \
	  "unknown parameter \"granularity\"; /v1/rows takes from, to, limit, next, project, agent, tenant, modality, provider, model, session_id") \
	X(rows_refuse_offset_25_hours, ROLLUP_KIND_ROWS, "from=2024-01-01T00%3A00%3A00%2B25%3A00", \
	  "from: \"2024-01-01T00:00:00+25:00\" is not a date (YYYY-MM-DD) or an RFC 3339 timestamp (2024-05-01T00:00:00Z)") \
	X(rows_refuse_cursor_at_max_int64, ROLLUP_KIND_ROWS, "next=OTIyMzM3MjAzNjg1NDc3NTgwN3x4", \
	  "next: not a cursor this endpoint returned (its time is not a time in the supported range)") \
	X(rows_refuse_cursor_at_min_int64, ROLLUP_KIND_ROWS, "next=LTkyMjMzNzIwMzY4NTQ3NzU4MDh8eA", \
	  "next: not a cursor this endpoint returned (its time is not a time in the supported range)") \
	X(rollups_refuse_to_in_year_1, ROLLUP_KIND_ROLLUPS, "to=0001-01-01T01:00:00Z", \
	  "to: \"0001-01-01T01:00:00Z\" is outside the supported range, 1970-01-01T00:00:00Z to 10000-01-01T00:00:00Z (years 1970 to 9999)") \
	X(rollups_refuse_from_in_year_1, ROLLUP_KIND_ROLLUPS, "from=0001-01-01T00:00:00Z&to=0001-01-01T01:00:00Z", \
	  "from: \"0001-01-01T00:00:00Z\" is outside the supported range, 1970-01-01T00:00:00Z to 10000-01-01T00:00:00Z (years 1970 to 9999)") \
	X(costs_refuse_end_before_1970_by_offset, ROLLUP_KIND_COSTS, "end=0001-01-01T00:00:00%2B01:00", \
	  "end: \"0001-01-01T00:00:00+01:00\" is outside the supported range, 1970-01-01T00:00:00Z to 10000-01-01T00:00:00Z (years 1970 to 9999)") \
	X(rollups_refuse_invalid_utf8_agent, ROLLUP_KIND_ROLLUPS, "agent=%ff", \
	  "agent: not valid UTF-8") \
	X(rows_refuse_invalid_utf8_agent, ROLLUP_KIND_ROWS, "agent=%ff", \
	  "agent: not valid UTF-8") \
	X(costs_refuse_invalid_utf8_project, ROLLUP_KIND_COSTS, "project=%c3%28", \
	  "project: not valid UTF-8") \
	X(rows_refuse_nul_in_session_id, ROLLUP_KIND_ROWS, "session_id=a%00b", \
	  "session_id: holds a NUL byte (%00)") \
	X(rollups_refuse_escape_in_tenant, ROLLUP_KIND_ROLLUPS, "tenant=%1b%5b31m", \
	  "tenant: control character U+001B at byte 0; only printable text") \
	X(rows_refuse_c1_control_in_model, ROLLUP_KIND_ROWS, "model=x%c2%9by", \
	  "model: control character U+009B at byte 1; only printable text") \
	X(rollups_refuse_invalid_utf8_group_by, ROLLUP_KIND_ROLLUPS, "group_by=agent%ff", \
	  "group_by: not valid UTF-8")
// clang-format on

static void bad_read(int *unit_failed_, enum rollup_kind kind, const char *query, const char *want)
{
	struct rollup_param params[ROLLUP_MAX_PARAMS];
	struct rollup_limits lim = { BAD_READ_MAX_PERIODS, BAD_READ_NOW };
	struct rollup_query q;
	char qs[512], err[1024] = "";
	int n, st;

	snprintf(qs, sizeof(qs), "%s", query);
	rollup_query_init(&q, kind);
	st = rollup_params_split(qs, params, &n, err, sizeof(err));
	if (st == 200)
		st = rollup_query_parse(&q, params, n, &lim, err, sizeof(err));
	rollup_query_free(&q);
	CHECK_MSG(st == 400, "%s: status %d (%s)", query, st, err);
	CHECK_MSG(strcmp(err, want) == 0, "%s:\n      got  %s\n      want %s", query, err, want);
}

#define BAD_READ_CASE(name, kind, query, want)                                                     \
	UNIT_TEST(name)                                                                            \
	{                                                                                          \
		bad_read(unit_failed_, kind, query, want);                                         \
	}
BAD_READS(BAD_READ_CASE)
