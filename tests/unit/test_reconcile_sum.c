/* collector/reconcile_sum.c: exact decimal sums of usage-file numbers, one
 * named case per row: the numbers added and the text the sum must read. */
#include <string.h>

#include "reconcile_sum.h"
#include "unit.h"

/* name, numbers (NULL-terminated), the sum as text */
// clang-format off
#define RECONCILE_SUM_CASES(X) \
	X(reconcile_sum_carries_across_limbs, ((const char *[]){ "999999999", "1", NULL }), "1000000000") \
	X(reconcile_sum_carries_a_fraction_into_the_integer, ((const char *[]){ "0.999999999999999999", "0.000000000000000001", NULL }), "1.000000000000000000") \
	X(reconcile_sum_keeps_the_largest_scale, ((const char *[]){ "1.50", "2", NULL }), "3.50") \
	X(reconcile_sum_reads_exponents_as_numeric_does, ((const char *[]){ "1.5e-7", "1e3", "2.5E+1", NULL }), "1025.00000015") \
	X(reconcile_sum_reaches_the_largest_and_smallest_numbers, ((const char *[]){ "1e60", "1e-60", NULL }), "1000000000000000000000000000000000000000000000000000000000000.000000000000000000000000000000000000000000000000000000000001") \
	X(reconcile_sum_goes_negative_and_borrows, ((const char *[]){ "1000000000", "-1000000000.5", NULL }), "-0.5") \
	X(reconcile_sum_cancels_to_an_unsigned_zero, ((const char *[]){ "-2.25", "2.25", NULL }), "0.00") \
	X(reconcile_sum_takes_leading_zeros, ((const char *[]){ "007.10", "-0", NULL }), "7.10") \
	X(reconcile_sum_adds_many_limbs_of_digits, ((const char *[]){ "123456789012345678901234567890.123456789012345678901234567890", "876543210987654321098765432109.876543210987654321098765432110", NULL }), "1000000000000000000000000000000.000000000000000000000000000000")
// clang-format on

static void reconcile_sum_case(int *unit_failed_, const char *const *nums, const char *want)
{
	struct reconcile_sum s;
	struct buf b;

	memset(&s, 0, sizeof(s));
	for (int i = 0; nums[i]; i++)
		CHECK_MSG(reconcile_sum_add(&s, nums[i]), "adding %s", nums[i]);
	buf_init(&b, 0);
	CHECK(reconcile_sum_format(&s, &b));
	CHECK_MSG(b.data && strcmp(b.data, want) == 0, "sum \"%s\", want \"%s\"",
		  b.data ? b.data : "", want);
	buf_release(&b);
}

#define RECONCILE_SUM_CASE(name, nums, want)                                                       \
	UNIT_TEST(name)                                                                            \
	{                                                                                          \
		reconcile_sum_case(unit_failed_, nums, want);                                      \
	}
RECONCILE_SUM_CASES(RECONCILE_SUM_CASE)
