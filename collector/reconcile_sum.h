/* Exact decimal sums for the usage file's numbers, so the file is summed per
 * (model, day) while it is read instead of kept one record per line. Fixed
 * point wide enough for any number reconcile_file_number_problem accepts,
 * summed over any number of records a file may hold. */
#ifndef VGC_RECONCILE_SUM_H
#define VGC_RECONCILE_SUM_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"

/* Base 10^9 limbs; RECONCILE_SUM_FRAC of them after the decimal point. A
 * checked number has at most 64 characters and |exponent| <= 60, so its digits
 * lie within 10^-125 .. 10^124; 135 fraction digits and 153 integer digits
 * leave room for 10^28 of them summed. */
#define RECONCILE_SUM_LIMBS 32
#define RECONCILE_SUM_FRAC 15

/* A running sum: positive and negative parts apart, and the largest display
 * scale added (PostgreSQL's numeric sum keeps it: 1.50 + 2 is 3.50). A value
 * type; zero-initialise it. */
struct reconcile_sum {
	uint32_t pos[RECONCILE_SUM_LIMBS], neg[RECONCILE_SUM_LIMBS];
	int scale;
	bool any; /* something was added */
};

/* Adds s, a number reconcile_file_number_problem accepts. False when the sum
 * would leave the fixed range (never for a checked file). */
bool reconcile_sum_add(struct reconcile_sum *s, const char *num)
	__attribute__((warn_unused_result));

/* Appends the sum as plain decimal text with exactly its scale's fraction
 * digits ("-0.25", "3.50", "0"). */
bool reconcile_sum_format(const struct reconcile_sum *s, struct buf *out);

#endif
