/* Shortest round-trip decimal formatting of doubles (see num.h for why). */
#include "num.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* The %.15g text of d, when d has at most 15 significant digits and %.15g
 * writes it without an exponent (1e-4 <= |d| < 1e15): the fewest decimals k
 * for which the integer v = round(|d| * 10^k) gives back d as v / 10^k. Both
 * are exact doubles (v < 10^15 < 2^53, 10^k <= 10^15), so that division
 * rounds the decimal v * 10^-k exactly as strtod reads it. 0 when d is not
 * such a number: the caller searches with printf. */
static size_t num_format_fixed(double d, char *out, size_t outlen)
{
	double a = fabs(d);
	long long scale = 1;
	char digits[24];
	size_t n = 0, len = 0;

	if (!(a >= 1e-4 && a < 1e15) || outlen < 24)
		return 0;
	for (int k = 1; k <= 15; k++) {
		double p = a * (double)(scale *= 10);
		long long v, whole, frac;

		if (p >= 1e15)
			return 0; /* more than 15 significant digits */
		v = llround(p);
		if ((double)v / (double)scale != a)
			continue;
		/* The fewest k: had frac ended in 0, v / 10 at k - 1 would have
		 * given back d already. */
		whole = v / scale;
		frac = v % scale;
		if (d < 0)
			out[len++] = '-';
		do {
			digits[n++] = (char)('0' + whole % 10);
			whole /= 10;
		} while (whole);
		while (n)
			out[len++] = digits[--n];
		out[len++] = '.';
		for (int i = k - 1; i >= 0; i--) {
			out[len + (size_t)i] = (char)('0' + frac % 10);
			frac /= 10;
		}
		len += (size_t)k;
		out[len] = '\0';
		return len;
	}
	return 0;
}

size_t num_format(double d, char *out, size_t outlen)
{
	size_t fixed;

	/* Whole numbers (unit counts, mostly) need no search. */
	if (d == floor(d) && fabs(d) < 9007199254740992.0 && !(d == 0 && signbit(d))) {
		int n = snprintf(out, outlen, "%lld", (long long)d);
		return n > 0 && (size_t)n < outlen ? (size_t)n : 0;
	}
	fixed = num_format_fixed(d, out, outlen);
	if (fixed)
		return fixed;
	/* 15 significant digits round-trip for every value that was typed with 15 or
	 * fewer, which covers money and unit counts; 16 and 17 catch the rest. */
	for (int prec = 15; prec <= 17; prec++) {
		int n = snprintf(out, outlen, "%.*g", prec, d);
		if (n > 0 && (prec == 17 || strtod(out, NULL) == d))
			return (size_t)n;
	}
	return 0;
}
