/* common/timefmt.c: RFC 3339 and date parsing, formatting and the calendar
 * maths, one named case per row. */
#include <string.h>

#include "timefmt.h"
#include "unit.h"

/* name, text, parses, date_only, epoch microseconds, formatted back ("": skip) */
// clang-format off
#define TIMEFMT_PARSES(X) \
	X(timefmt_parses_a_date_as_midnight_utc, "2024-05-01", true, true, 1714521600000000LL, "2024-05-01T00:00:00Z") \
	X(timefmt_parses_the_epoch, "1970-01-01T00:00:00Z", true, false, 0LL, "1970-01-01T00:00:00Z") \
	X(timefmt_parses_lower_case_t_and_z, "2024-05-01t10:00:00z", true, false, 1714557600000000LL, "2024-05-01T10:00:00Z") \
	X(timefmt_parses_a_space_between_date_and_time, "2024-05-01 10:00:00Z", true, false, 1714557600000000LL, "") \
	X(timefmt_applies_a_positive_offset, "2024-05-01T02:00:00+02:00", true, false, 1714521600000000LL, "2024-05-01T00:00:00Z") \
	X(timefmt_applies_a_negative_offset, "2024-04-30T22:00:00-02:00", true, false, 1714521600000000LL, "2024-05-01T00:00:00Z") \
	X(timefmt_takes_a_space_as_a_decoded_plus, "2024-05-01T02:00:00 02:00", true, false, 1714521600000000LL, "") \
	X(timefmt_keeps_six_fraction_digits, "2024-05-01T00:00:00.1234567Z", true, false, 1714521600123456LL, "2024-05-01T00:00:00.123456Z") \
	X(timefmt_pads_a_short_fraction, "2024-05-01T00:00:00.5Z", true, false, 1714521600500000LL, "2024-05-01T00:00:00.500000Z") \
	X(timefmt_parses_a_leap_day, "2024-02-29", true, true, 1709164800000000LL, "2024-02-29T00:00:00Z") \
	X(timefmt_parses_the_last_day_of_9999, "9999-12-31T23:59:59.999999Z", true, false, 253402300799999999LL, "9999-12-31T23:59:59.999999Z") \
	X(timefmt_parses_dates_before_1970, "1969-12-31T23:00:00Z", true, false, -3600000000LL, "1969-12-31T23:00:00Z") \
	X(timefmt_refuses_month_13, "2024-13-01", false, false, 0LL, "") \
	X(timefmt_refuses_february_29_of_a_common_year, "2023-02-29", false, false, 0LL, "") \
	X(timefmt_refuses_february_29_of_1900, "1900-02-29", false, false, 0LL, "") \
	X(timefmt_refuses_year_0, "0000-01-01", false, false, 0LL, "") \
	X(timefmt_refuses_a_missing_zone, "2024-05-01T00:00:00", false, false, 0LL, "") \
	X(timefmt_refuses_hour_24, "2024-05-01T24:00:00Z", false, false, 0LL, "") \
	X(timefmt_refuses_an_offset_of_25_hours, "2024-05-01T00:00:00+25:00", false, false, 0LL, "") \
	X(timefmt_refuses_an_empty_fraction, "2024-05-01T00:00:00.Z", false, false, 0LL, "") \
	X(timefmt_refuses_trailing_text, "2024-05-01T00:00:00Zx", false, false, 0LL, "") \
	X(timefmt_refuses_words, "yesterday", false, false, 0LL, "")
// clang-format on

static void timefmt_case(int *unit_failed_, const char *text, bool parses, bool date_only,
			 long long us, const char *formatted)
{
	long long got = 0;
	bool got_date_only = false;
	char out[40];

	CHECK_MSG(timefmt_parse(text, &got, &got_date_only) == parses, "%s: parses is not %d", text,
		  parses);
	if (!parses)
		return;
	CHECK_MSG(got == us, "%s: %lld, want %lld", text, got, us);
	CHECK_MSG(got_date_only == date_only, "%s: date_only %d", text, got_date_only);
	if (*formatted) {
		timefmt_format(got, out, sizeof(out));
		CHECK_MSG(strcmp(out, formatted) == 0, "%s: formatted %s, want %s", text, out,
			  formatted);
	}
}

#define TIMEFMT_CASE(name, text, parses, date_only, us, formatted)                                 \
	UNIT_TEST(name)                                                                            \
	{                                                                                          \
		timefmt_case(unit_failed_, text, parses, date_only, us, formatted);                \
	}
TIMEFMT_PARSES(TIMEFMT_CASE)

UNIT_TEST(timefmt_civil_days_round_trip_from_year_1_to_10000)
{
	for (long long days = timefmt_days_from_civil(1, 1, 1);
	     days <= timefmt_days_from_civil(10000, 1, 1); days += 17) {
		int y, m, d;

		timefmt_civil_from_days(days, &y, &m, &d);
		CHECK_MSG(timefmt_days_from_civil(y, m, d) == days, "day %lld", days);
	}
}

UNIT_TEST(timefmt_floor_div_rounds_towards_minus_infinity)
{
	CHECK(timefmt_floor_div(7, 2) == 3);
	CHECK(timefmt_floor_div(-7, 2) == -4);
	CHECK(timefmt_floor_div(-8, 2) == -4);
	CHECK(timefmt_floor_div(0, 5) == 0);
}
