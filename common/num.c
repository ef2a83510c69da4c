/* Shortest round-trip decimal formatting of doubles (see num.h for why). */
#include "num.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

size_t num_format(double d, char *out, size_t outlen)
{
	/* Whole numbers (unit counts, mostly) need no search. */
	if (d == floor(d) && fabs(d) < 9007199254740992.0 && !(d == 0 && signbit(d))) {
		int n = snprintf(out, outlen, "%lld", (long long)d);
		return n > 0 && (size_t)n < outlen ? (size_t)n : 0;
	}
	/* 15 significant digits round-trip for every value that was typed with 15 or
	 * fewer, which covers money and unit counts; 16 and 17 catch the rest. */
	for (int prec = 15; prec <= 17; prec++) {
		int n = snprintf(out, outlen, "%.*g", prec, d);
		if (n > 0 && (prec == 17 || strtod(out, NULL) == d))
			return (size_t)n;
	}
	return 0;
}
