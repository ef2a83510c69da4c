/* collector/focus.c's months: the billing_period parameter (YYYY-MM, nothing
 * else), the next month across a year's end, and the name back. */
#include <string.h>

#include "focus.h"
#include "timefmt.h"
#include "unit.h"

/* name, text, accepted, the month's first instant as RFC 3339 when accepted */
// clang-format off
#define FOCUS_PERIODS(X) \
	X(focus_period_takes_a_month, "2026-11", true, "2026-11-01T00:00:00Z") \
	X(focus_period_takes_january_1970, "1970-01", true, "1970-01-01T00:00:00Z") \
	X(focus_period_takes_december_9999, "9999-12", true, "9999-12-01T00:00:00Z") \
	X(focus_period_refuses_month_13, "2026-13", false, "") \
	X(focus_period_refuses_month_0, "2026-00", false, "") \
	X(focus_period_refuses_a_one_digit_month, "2026-1", false, "") \
	X(focus_period_refuses_a_day, "2026-11-01", false, "") \
	X(focus_period_refuses_a_slash, "2026/11", false, "") \
	X(focus_period_refuses_a_sign, "+026-11", false, "") \
	X(focus_period_refuses_before_1970, "1969-12", false, "") \
	X(focus_period_refuses_empty, "", false, "")
// clang-format on

static void focus_period_case(int *unit_failed_, const char *text, bool ok, const char *want)
{
	long long us = -1;
	char got[40], name[16];

	CHECK_MSG(focus_period_parse(text, &us) == ok, "\"%s\": accepted should be %d", text, ok);
	if (!ok)
		return;
	timefmt_format(us, got, sizeof(got));
	CHECK_MSG(strcmp(got, want) == 0, "\"%s\" -> %s, want %s", text, got, want);
	focus_period_name(us, name, sizeof(name));
	CHECK_MSG(strcmp(name, text) == 0, "name of %s is %s", want, name);
}

#define FOCUS_PERIOD_CASE(name, text, ok, want)                                                    \
	UNIT_TEST(name)                                                                            \
	{                                                                                          \
		focus_period_case(unit_failed_, text, ok, want);                                   \
	}
FOCUS_PERIODS(FOCUS_PERIOD_CASE)

UNIT_TEST(focus_next_month_crosses_the_year_end)
{
	long long us;
	char got[40];

	CHECK(focus_period_parse("2026-12", &us));
	timefmt_format(focus_next_month(us), got, sizeof(got));
	CHECK_MSG(strcmp(got, "2027-01-01T00:00:00Z") == 0, "got %s", got);
	CHECK(focus_period_parse("2028-02", &us)); /* a leap February: 29 days */
	timefmt_format(focus_next_month(us), got, sizeof(got));
	CHECK_MSG(strcmp(got, "2028-03-01T00:00:00Z") == 0, "got %s", got);
}
