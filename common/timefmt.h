/* Time as the read API writes and reads it: epoch microseconds, UTC, the
 * proleptic Gregorian calendar, and RFC 3339 text. Pure: no clock, no locale. */
#ifndef VG_TIMEFMT_H
#define VG_TIMEFMT_H

#include <stdbool.h>
#include <stddef.h>

#define TIMEFMT_US_PER_S 1000000LL
#define TIMEFMT_US_PER_HOUR (3600LL * TIMEFMT_US_PER_S)
#define TIMEFMT_US_PER_DAY (86400LL * TIMEFMT_US_PER_S)

/* a / b rounded towards minus infinity (b != 0). */
long long timefmt_floor_div(long long a, long long b);

/* Days since 1970-01-01 of a date, and back. */
long long timefmt_days_from_civil(long long y, int m, int d);
void timefmt_civil_from_days(long long days, int *y, int *m, int *d);

/* Parses YYYY-MM-DD (midnight UTC) or an RFC 3339 timestamp (T, t or a space
 * between date and time; Z, z or an offset; up to any number of fraction
 * digits, of which six count) into epoch microseconds. A space in place of an
 * offset's '+' is taken as '+': a query string decodes '+' as a space.
 * *date_only tells which form it was. False when s is neither. */
bool timefmt_parse(const char *s, long long *us, bool *date_only)
	__attribute__((warn_unused_result));

/* Formats epoch microseconds as RFC 3339 UTC ("2024-05-01T00:00:00Z", with
 * .ffffff only when not whole seconds). out needs 32 bytes. */
void timefmt_format(long long us, char *out, size_t outlen);

#endif
