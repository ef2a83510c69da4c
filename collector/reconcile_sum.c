/* Exact decimal sums in fixed point: each digit of a checked number is added
 * at its place into base 10^9 limbs of the positive or the negative part. */
#include "reconcile_sum.h"

#include <string.h>

#define RS_BASE 1000000000u
#define RS_DIGITS (9 * RECONCILE_SUM_LIMBS)
#define RS_FRAC_DIGITS (9 * RECONCILE_SUM_FRAC)

static const uint32_t rs_pow10[9] = {
	1, 10, 100, 1000, 10000, 100000, 1000000, 10000000, 100000000
};

/* a - b for a >= b, into out. */
static void rs_sub(const uint32_t *a, const uint32_t *b, uint32_t *out)
{
	uint32_t borrow = 0;

	for (int i = 0; i < RECONCILE_SUM_LIMBS; i++) {
		uint32_t sub = b[i] + borrow;

		borrow = a[i] < sub;
		out[i] = borrow ? a[i] + RS_BASE - sub : a[i] - sub;
	}
}

static int rs_cmp(const uint32_t *a, const uint32_t *b)
{
	for (int i = RECONCILE_SUM_LIMBS - 1; i >= 0; i--)
		if (a[i] != b[i])
			return a[i] < b[i] ? -1 : 1;
	return 0;
}

/* Adds digit d at decimal place at (counted from the last fraction digit)
 * to a, carrying up; false on a carry out of the top limb. */
static bool rs_add_digit(uint32_t *a, long at, uint32_t d)
{
	int i = (int)(at / 9);

	a[i] += d * rs_pow10[at % 9];
	while (a[i] >= RS_BASE) {
		a[i] -= RS_BASE;
		if (++i == RECONCILE_SUM_LIMBS)
			return false;
		a[i]++;
	}
	return true;
}

bool reconcile_sum_add(struct reconcile_sum *s, const char *num)
{
	const char *p = num, *mant, *mant_end, *dot = NULL;
	bool negative = false, exp_negative = false;
	int nfrac = 0, e = 0, scale;
	long power;
	uint32_t *to;

	if (*p == '-') {
		negative = true;
		p++;
	}
	to = negative ? s->neg : s->pos;
	mant = p;
	for (; (*p >= '0' && *p <= '9') || *p == '.'; p++)
		if (*p == '.')
			dot = p;
	mant_end = p;
	if (dot)
		nfrac = (int)(mant_end - dot - 1);
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			exp_negative = *p++ == '-';
		for (; *p >= '0' && *p <= '9'; p++)
			if ((e = e * 10 + (*p - '0')) > 100000)
				return false;
		if (exp_negative)
			e = -e;
	}
	/* The last mantissa digit stands for 10^(e - nfrac). */
	power = (long)e - nfrac;
	for (const char *d = mant_end - 1; d >= mant; d--) {
		long at;

		if (*d == '.')
			continue;
		at = power++ + RS_FRAC_DIGITS;
		if (*d == '0')
			continue;
		if (at < 0 || at >= RS_DIGITS || !rs_add_digit(to, at, (uint32_t)(*d - '0')))
			return false;
	}
	scale = nfrac - e > 0 ? nfrac - e : 0;
	if (scale > s->scale)
		s->scale = scale < RS_FRAC_DIGITS ? scale : RS_FRAC_DIGITS;
	s->any = true;
	return true;
}

bool reconcile_sum_format(const struct reconcile_sum *s, struct buf *out)
{
	uint32_t v[RECONCILE_SUM_LIMBS];
	char digits[RS_DIGITS + 1];
	bool negative = rs_cmp(s->neg, s->pos) > 0;
	int first;

	if (negative)
		rs_sub(s->neg, s->pos, v);
	else
		rs_sub(s->pos, s->neg, v);
	for (int i = 0; i < RECONCILE_SUM_LIMBS; i++) {
		uint32_t limb = v[i];

		for (int k = 0; k < 9; k++) {
			digits[RS_DIGITS - 1 - (i * 9 + k)] = (char)('0' + limb % 10);
			limb /= 10;
		}
	}
	digits[RS_DIGITS] = '\0';
	if (negative && rs_cmp(s->neg, s->pos) != 0)
		buf_putc(out, '-');
	first = 0;
	while (first < RS_DIGITS - RS_FRAC_DIGITS - 1 && digits[first] == '0')
		first++;
	buf_append(out, digits + first, (size_t)(RS_DIGITS - RS_FRAC_DIGITS - first));
	if (s->scale > 0) {
		buf_putc(out, '.');
		buf_append(out, digits + RS_DIGITS - RS_FRAC_DIGITS, (size_t)s->scale);
	}
	return !out->over;
}
