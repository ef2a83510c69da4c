/* Calendar maths (days from and to a civil date) and RFC 3339 parsing and
 * formatting in UTC, for the read API's parameters, answers and cursors. */
#include "timefmt.h"

#include <stdio.h>
#include <string.h>

/* Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm). */
long long timefmt_days_from_civil(long long y, int m, int d)
{
	long long era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void timefmt_civil_from_days(long long z, int *y, int *m, int *d)
{
	long long era, doe, yoe, doy, mp;

	z += 719468;
	era = (z >= 0 ? z : z - 146096) / 146097;
	doe = z - era * 146097;
	yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = (int)(yoe + era * 400 + (*m <= 2));
}

long long timefmt_floor_div(long long a, long long b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

void timefmt_format(long long us, char *out, size_t outlen)
{
	long long days = timefmt_floor_div(us, TIMEFMT_US_PER_DAY),
		  rem = us - days * TIMEFMT_US_PER_DAY;
	int y, m, d;
	long long secs = rem / TIMEFMT_US_PER_S, frac = rem % TIMEFMT_US_PER_S;

	timefmt_civil_from_days(days, &y, &m, &d);
	if (frac)
		snprintf(out, outlen, "%04d-%02d-%02dT%02lld:%02lld:%02lld.%06lldZ", y, m, d,
			 secs / 3600, secs / 60 % 60, secs % 60, frac);
	else
		snprintf(out, outlen, "%04d-%02d-%02dT%02lld:%02lld:%02lldZ", y, m, d, secs / 3600,
			 secs / 60 % 60, secs % 60);
}

static bool timefmt_digits(const char *s, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

static int timefmt_days_in_month(int y, int m)
{
	static const int dm[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}

bool timefmt_parse(const char *s, long long *us, bool *date_only)
{
	int y, mo, d, h = 0, mi = 0, se = 0, oh = 0, om = 0, sign = 0;
	long long frac = 0, t;
	size_t len = strlen(s);
	const char *p;

	if (len < 10 || !timefmt_digits(s, 4, &y) || s[4] != '-' ||
	    !timefmt_digits(s + 5, 2, &mo) || s[7] != '-' || !timefmt_digits(s + 8, 2, &d))
		return false;
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > timefmt_days_in_month(y, mo))
		return false;
	*date_only = len == 10;
	if (len > 10) {
		if ((s[10] != 'T' && s[10] != 't' && s[10] != ' ') || len < 20 ||
		    !timefmt_digits(s + 11, 2, &h) || s[13] != ':' ||
		    !timefmt_digits(s + 14, 2, &mi) || s[16] != ':' ||
		    !timefmt_digits(s + 17, 2, &se) || h > 23 || mi > 59 || se > 59)
			return false;
		p = s + 19;
		if (*p == '.') {
			int n = 0;
			for (p++; *p >= '0' && *p <= '9'; p++, n++) {
				if (n < 6)
					frac = frac * 10 + (*p - '0');
			}
			if (n == 0)
				return false;
			for (; n < 6; n++)
				frac *= 10;
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == ' ' || *p == '-') {
			/* ' ': a '+' that a query string decoded as a space */
			sign = *p == '-' ? -1 : 1;
			if (!timefmt_digits(p + 1, 2, &oh) || p[3] != ':' ||
			    !timefmt_digits(p + 4, 2, &om) || oh > 23 || om > 59)
				return false;
			p += 6;
		} else {
			return false;
		}
		if (*p)
			return false;
	}
	t = timefmt_days_from_civil(y, mo, d) * 86400LL + h * 3600LL + mi * 60LL + se;
	t -= sign * (oh * 3600LL + om * 60LL);
	*us = t * TIMEFMT_US_PER_S + frac;
	return true;
}
