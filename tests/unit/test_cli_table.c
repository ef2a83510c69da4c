/* collector/cli_table.c and collector/csv.c: the cells the CLI's text tables
 * and the CSV reports print, one named case per row. */
#include <string.h>

#include "buf.h"
#include "cli_table.h"
#include "csv.h"
#include "unit.h"

/* name, decimal, fraction digits, printed */
// clang-format off
#define CLI_TABLE_NUMBERS(X) \
	X(cli_table_number_leaves_three_digits_alone, "123", 0, "123") \
	X(cli_table_number_separates_thousands, "1234567", 0, "1,234,567") \
	X(cli_table_number_pads_the_fraction, "1234.5", 2, "1,234.50") \
	X(cli_table_number_keeps_a_longer_fraction, "0.123456789", 2, "0.123456789") \
	X(cli_table_number_puts_no_separator_after_a_short_minus, "-123", 0, "-123") \
	X(cli_table_number_separates_a_negative_number, "-1234567.5", 2, "-1,234,567.50") \
	X(cli_table_number_separates_six_negative_digits, "-123456", 0, "-123,456") \
	X(cli_table_number_keeps_zero, "0", 2, "0.00")
// clang-format on

#define CLI_TABLE_NUMBER_CASE(name, s, frac, want)                                                 \
	UNIT_TEST(name)                                                                            \
	{                                                                                          \
		char out[64];                                                                      \
		cli_table_number(s, frac, out, sizeof(out));                                       \
		CHECK_MSG(strcmp(out, want) == 0, "%s: got \"%s\", want \"%s\"", s, out, want);    \
	}
CLI_TABLE_NUMBERS(CLI_TABLE_NUMBER_CASE)

UNIT_TEST(cli_table_number_stops_at_the_buffer_end)
{
	char out[6];

	cli_table_number("-1234567", 0, out, sizeof(out));
	CHECK(strlen(out) < sizeof(out));
	CHECK(strncmp(out, "-1,2", 4) == 0);
}

UNIT_TEST(cli_table_escape_escapes_controls_and_backslashes)
{
	struct buf b;

	buf_init(&b, 0);
	cli_table_escape(&b, "a\x1b[2J\\b\xc2\x9b\x7f"
			     "caf\xc3\xa9");
	CHECK_MSG(b.data && strcmp(b.data, "a\\x1b[2J\\\\b\\u009b\\x7f"
					   "caf\xc3\xa9") == 0,
		  "got %s", b.data ? b.data : "(null)");
	buf_release(&b);
}

UNIT_TEST(cli_table_width_counts_utf8_characters)
{
	CHECK(cli_table_width("caf\xc3\xa9") == 4);
	CHECK(cli_table_width("") == 0);
}

/* name, cell, neutralise, written */
// clang-format off
#define CSV_FIELDS(X) \
	X(csv_field_writes_plain_text_as_is, "acme", true, "acme") \
	X(csv_field_quotes_a_comma, "a,b", false, "\"a,b\"") \
	X(csv_field_doubles_quotes, "say \"hi\"", false, "\"say \"\"hi\"\"\"") \
	X(csv_field_quotes_a_newline, "a\nb", false, "\"a\nb\"") \
	X(csv_field_neutralises_a_formula, "=1+1", true, "\"'=1+1\"") \
	X(csv_field_neutralises_a_leading_minus, "-5", true, "\"'-5\"") \
	X(csv_field_leaves_a_formula_raw_when_asked, "=1+1", false, "=1+1") \
	X(csv_field_writes_nothing_for_null, NULL, true, "")
// clang-format on

#define CSV_FIELD_CASE(name, s, neutralise, want)                                                  \
	UNIT_TEST(name)                                                                            \
	{                                                                                          \
		struct buf b;                                                                      \
		buf_init(&b, 0);                                                                   \
		csv_field(&b, s, neutralise);                                                      \
		CHECK_MSG(strcmp(b.data ? b.data : "", want) == 0, "got \"%s\", want \"%s\"",      \
			  b.data ? b.data : "", want);                                             \
		buf_release(&b);                                                                   \
	}
CSV_FIELDS(CSV_FIELD_CASE)
