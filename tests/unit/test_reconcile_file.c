/* collector/reconcile_file.c: the provider usage file, CSV and JSON, one named
 * case per row: what it accepts and where each refusal points. */
#include <string.h>

#include "reconcile_file.h"
#include "unit.h"

#define MAY1 1714521600000000LL /* 2024-05-01T00:00:00Z */
#define JUN1 1717200000000000LL /* 2024-06-01T00:00:00Z */

static const struct reconcile_file_limits reconcile_file_lim = { 1000, 1000 };

/* name, provider, format, text, records parsed (-1: refused), error text or first model */
// clang-format off
#define RECONCILE_FILE_CASES(X) \
	X(reconcile_file_reads_a_csv_with_token_columns, "openai", RECONCILE_CSV, "model,cost_usd,input_tokens,output_tokens\ngpt-4o,1.25,100,20\n", 1, "gpt-4o") \
	X(reconcile_file_strips_the_provider_prefix, "openai", RECONCILE_CSV, "model,cost_usd,input_tokens,output_tokens\nopenai/gpt-4o,1,1,1\n", 1, "gpt-4o") \
	X(reconcile_file_keeps_other_slashes_in_a_model, "together", RECONCILE_CSV, "model,cost_usd,units\nmeta-llama/Llama-3,1,1\n", 1, "meta-llama/Llama-3") \
	X(reconcile_file_reads_crlf_quotes_and_a_bom, "openai", RECONCILE_CSV, "\xEF\xBB\xBFModel , cost_usd,input_tokens,output_tokens\r\n\"gpt,4\"\"o\",1,2,3\r\n\r\n", 1, "gpt,4\"o") \
	X(reconcile_file_ignores_unknown_columns, "deepgram", RECONCILE_CSV, "account,model,cost_usd,audio_seconds\nx,nova-2,0.5,60\n", 1, "nova-2") \
	X(reconcile_file_takes_a_header_only_file, "openai", RECONCILE_CSV, "model,cost_usd,input_tokens,output_tokens\n", 0, "") \
	X(reconcile_file_takes_exponents_and_negative_cost, "cartesia", RECONCILE_CSV, "model,cost_usd,characters\nsonic,-1.5e-7,10\n", 1, "sonic") \
	X(reconcile_file_reads_json_with_strings_and_numbers, "openai", RECONCILE_JSON, "[{\"model\":\"gpt-4o\",\"cost_usd\":\"1.5\",\"input_tokens\":10,\"output_tokens\":2,\"n_requests\":null}]", 1, "gpt-4o") \
	X(reconcile_file_decodes_json_escapes, "openai", RECONCILE_JSON, "[{\"model\":\"g\\u00e9\\ud83d\\ude00\",\"cost_usd\":1,\"input_tokens\":1,\"output_tokens\":1}]", 1, "g\xC3\xA9\xF0\x9F\x98\x80") \
	X(reconcile_file_refuses_an_empty_csv, "openai", RECONCILE_CSV, "", -1, "line 1, column 1: the file is empty") \
	X(reconcile_file_refuses_a_missing_unit_column, "deepgram", RECONCILE_CSV, "model,cost_usd,units\nnova-2,1,1\n", -1, "line 1, column 4: missing column \"audio_seconds\"") \
	X(reconcile_file_refuses_another_provider, "openai", RECONCILE_CSV, "model,cost_usd,input_tokens,output_tokens,provider\ngpt-4o,1,1,1,groq\n", -1, "line 2, column 5 (provider): unknown provider \"groq\"") \
	X(reconcile_file_refuses_a_comma_decimal, "openai", RECONCILE_CSV, "model,cost_usd,input_tokens,output_tokens\ngpt-4o,\"1,5\",1,1\n", -1, "line 2, column 2 (cost_usd): \"1,5\": not a number") \
	X(reconcile_file_refuses_negative_units, "openai", RECONCILE_CSV, "model,cost_usd,input_tokens,output_tokens\ngpt-4o,1,-1,1\n", -1, "line 2, column 3 (input_tokens)") \
	X(reconcile_file_refuses_requests_past_bigint, "openai", RECONCILE_CSV, "model,cost_usd,input_tokens,output_tokens,n_requests\ngpt-4o,1,1,1,9223372036854775807\ngpt-4o,1,1,1,99999999999999999999\n", -1, "line 3, column 5 (n_requests): \"99999999999999999999\": out of range (0 to 9223372036854775807)") \
	X(reconcile_file_refuses_json_requests_past_bigint, "openai", RECONCILE_JSON, "[{\"model\":\"a\",\"cost_usd\":1,\"input_tokens\":1,\"output_tokens\":1,\"n_requests\":9223372036854775808}]", -1, "line 1, column 76 (n_requests): \"9223372036854775808\": out of range") \
	X(reconcile_file_refuses_fractional_requests, "openai", RECONCILE_CSV, "model,cost_usd,input_tokens,output_tokens,n_requests\ngpt-4o,1,1,1,2.5\n", -1, "line 2, column 5 (n_requests)") \
	X(reconcile_file_refuses_a_huge_exponent, "openai", RECONCILE_CSV, "model,cost_usd,input_tokens,output_tokens\ngpt-4o,1e999,1,1\n", -1, "exponent out of range") \
	X(reconcile_file_refuses_february_30, "openai", RECONCILE_CSV, "model,date,cost_usd,input_tokens,output_tokens\ngpt-4o,2024-02-30,1,1,1\n", -1, "line 2, column 2 (date)") \
	X(reconcile_file_refuses_a_date_outside_the_period, "openai", RECONCILE_CSV, "model,date,cost_usd,input_tokens,output_tokens\ngpt-4o,2024-06-01,1,1,1\n", -1, "2024-06-01 is outside the period") \
	X(reconcile_file_refuses_a_missing_date_in_a_daily_file, "openai", RECONCILE_CSV, "model,date,cost_usd,input_tokens,output_tokens\ngpt-4o,,1,1,1\n", -1, "line 2, column 2 (date): empty") \
	X(reconcile_file_refuses_a_short_record, "openai", RECONCILE_CSV, "model,cost_usd,input_tokens,output_tokens\ngpt-4o,1,1\n", -1, "line 2, column 4 (output_tokens): missing") \
	X(reconcile_file_refuses_a_long_record, "openai", RECONCILE_CSV, "model,cost_usd,input_tokens,output_tokens\ngpt-4o,1,1,1,1\n", -1, "line 2, column 5: more fields") \
	X(reconcile_file_counts_lines_inside_quotes, "openai", RECONCILE_CSV, "note,model,cost_usd,input_tokens,output_tokens\n\"a\nb\",m,1,1,1\n,c,x,1,1\n", -1, "line 4, column 3 (cost_usd)") \
	X(reconcile_file_refuses_an_unclosed_quote, "openai", RECONCILE_CSV, "model,cost_usd,input_tokens,output_tokens\n\"gpt,1,1,1\n", -1, "line 2, column 1 (model): a quoted field is never closed") \
	X(reconcile_file_refuses_a_control_character_in_a_model, "openai", RECONCILE_CSV, "model,cost_usd,input_tokens,output_tokens\ng\x1bpt,1,1,1\n", -1, "line 2, column 1 (model): text: control character") \
	X(reconcile_file_refuses_json_that_is_not_an_array, "openai", RECONCILE_JSON, "{\"model\":\"x\"}", -1, "line 1, column 1 (file): expected a JSON array") \
	X(reconcile_file_refuses_json_booleans, "openai", RECONCILE_JSON, "[{\"model\":\"x\",\n \"cost_usd\":true}]", -1, "line 2, column 13 (cost_usd): expected a string, a number or null") \
	X(reconcile_file_refuses_a_json_date_only_on_later_records, "openai", RECONCILE_JSON, "[{\"model\":\"a\",\"cost_usd\":1,\"input_tokens\":1,\"output_tokens\":1},\n{\"model\":\"b\",\"date\":\"2024-05-02\",\"cost_usd\":1,\"input_tokens\":1,\"output_tokens\":1}]", -1, "line 2, column 21 (date): a date, but record 1 has none") \
	X(reconcile_file_refuses_a_duplicate_json_member, "openai", RECONCILE_JSON, "[{\"model\":\"a\",\"model\":\"b\"}]", -1, "(model): this member appears twice") \
	X(reconcile_file_refuses_text_after_the_array, "openai", RECONCILE_JSON, "[]\n x", -1, "line 2, column 2 (file): text after the closing ']'") \
	X(reconcile_file_refuses_a_nul_byte, "openai", RECONCILE_CSV, "model\n\0", -1, "line 2: a NUL byte")
// clang-format on

static void reconcile_file_case(int *unit_failed_, const char *provider, enum reconcile_format fmt,
				const char *text, size_t len, int n, const char *want)
{
	struct reconcile_file f;
	char err[512] = "";
	bool ok = reconcile_file_parse(provider, text, len, fmt, MAY1, JUN1, &reconcile_file_lim,
				       &f, err, sizeof(err)) == 200;

	CHECK_MSG(ok == (n >= 0), "%s: parse %s: %s", text, ok ? "succeeded" : "failed", err);
	if (!ok) {
		CHECK_MSG(strstr(err, want) != NULL, "error \"%s\" lacks \"%s\"", err, want);
		CHECK(f.n == 0 && f.recs == NULL);
		return;
	}
	CHECK_MSG(f.n == n, "%d records, want %d", f.n, n);
	if (n > 0)
		CHECK_MSG(strcmp(f.recs[0].model, want) == 0, "model \"%s\", want \"%s\"",
			  f.recs[0].model, want);
	reconcile_file_release(&f);
}

#define RECONCILE_FILE_CASE(name, provider, fmt, text, n, want)                                    \
	UNIT_TEST(name)                                                                            \
	{                                                                                          \
		reconcile_file_case(unit_failed_, provider, fmt, text, sizeof(text) - 1, n, want); \
	}
RECONCILE_FILE_CASES(RECONCILE_FILE_CASE)

UNIT_TEST(reconcile_file_keeps_number_text_exact_and_sums_llm_columns_later)
{
	static const char text[] = "model,date,cost_usd,input_tokens,output_tokens,n_requests\n"
				   "gpt-4o,2024-05-31,0.100000000000000000000001,7,3,\n";
	struct reconcile_file f;
	char err[256];

	CHECK(reconcile_file_parse("openai", text, sizeof(text) - 1, RECONCILE_CSV, MAY1, JUN1,
				   &reconcile_file_lim, &f, err, sizeof(err)) == 200);
	CHECK(f.per_day && f.n == 1);
	if (f.n != 1)
		return;
	CHECK(strcmp(f.recs[0].cost, "0.100000000000000000000001") == 0);
	CHECK(strcmp(f.recs[0].units[0], "7") == 0 && strcmp(f.recs[0].units[1], "3") == 0);
	CHECK(strcmp(f.recs[0].date, "2024-05-31") == 0 && f.recs[0].n_requests == NULL);
	reconcile_file_release(&f);
}

UNIT_TEST(reconcile_file_knows_each_providers_unit_columns)
{
	CHECK(strcmp(reconcile_file_unit_columns("groq")[1], "output_tokens") == 0);
	CHECK(strcmp(reconcile_file_unit_columns("assemblyai")[0], "audio_seconds") == 0);
	CHECK(strcmp(reconcile_file_unit_columns("elevenlabs")[0], "characters") == 0);
	CHECK(strcmp(reconcile_file_unit_columns("whatever")[0], "units") == 0 &&
	      !reconcile_file_unit_columns("whatever")[1]);
	CHECK(reconcile_file_provider_valid("open-ai.v2") &&
	      !reconcile_file_provider_valid("Open") && !reconcile_file_provider_valid("") &&
	      !reconcile_file_provider_valid("-x"));
}

/* Parses text with limits lim: the status, and the file when 200. */
static int reconcile_file_try(const char *text, const struct reconcile_file_limits *lim,
			      struct reconcile_file *f, char *err, size_t errlen)
{
	return reconcile_file_parse("openai", text, strlen(text), RECONCILE_CSV, MAY1, JUN1, lim, f,
				    err, errlen);
}

UNIT_TEST(reconcile_file_sums_records_per_model_and_day_exactly)
{
	static const char text[] = "model,date,cost_usd,input_tokens,output_tokens,n_requests\n"
				   "a,2024-05-01,1.50,7,3,2\n"
				   "openai/a,2024-05-01,-0.25,1e3,0.5,\n"
				   "b,2024-05-01,1.5e-7,1,1,\n"
				   "a,2024-05-02,0.1,1,1,9223372036854775807\n"
				   "a,2024-05-01,0.000000000000000000001,0,0,9223372036854775807\n";
	struct reconcile_file f;
	char err[256] = "";

	CHECK_MSG(reconcile_file_try(text, &reconcile_file_lim, &f, err, sizeof(err)) == 200, "%s",
		  err);
	CHECK_MSG(f.n == 3 && f.nrecords == 5, "%d lines from %d records", f.n, f.nrecords);
	if (f.n != 3)
		return;
	CHECK(strcmp(f.recs[0].model, "a") == 0 && strcmp(f.recs[0].date, "2024-05-01") == 0);
	CHECK_MSG(strcmp(f.recs[0].cost, "1.250000000000000000001") == 0, "%s", f.recs[0].cost);
	CHECK_MSG(strcmp(f.recs[0].units[0], "1007") == 0, "%s", f.recs[0].units[0]);
	CHECK_MSG(strcmp(f.recs[0].units[1], "3.5") == 0, "%s", f.recs[0].units[1]);
	CHECK_MSG(strcmp(f.recs[0].n_requests, "9223372036854775809") == 0, "%s",
		  f.recs[0].n_requests);
	CHECK_MSG(strcmp(f.recs[1].cost, "0.00000015") == 0 && f.recs[1].n_requests == NULL, "%s",
		  f.recs[1].cost);
	CHECK(strcmp(f.recs[2].date, "2024-05-02") == 0 && strcmp(f.recs[2].cost, "0.1") == 0);
	reconcile_file_release(&f);
}

UNIT_TEST(reconcile_file_sums_negative_totals_and_cancels_to_zero)
{
	static const char text[] = "model,cost_usd,input_tokens,output_tokens\n"
				   "a,-2.5,1,1\na,1.25,1,1\nb,1.00,0,0\nb,-1,0,0\n";
	struct reconcile_file f;
	char err[256] = "";

	CHECK_MSG(reconcile_file_try(text, &reconcile_file_lim, &f, err, sizeof(err)) == 200, "%s",
		  err);
	if (f.n != 2)
		return;
	CHECK_MSG(strcmp(f.recs[0].cost, "-1.25") == 0, "%s", f.recs[0].cost);
	CHECK_MSG(strcmp(f.recs[1].cost, "0.00") == 0, "%s", f.recs[1].cost);
	reconcile_file_release(&f);
}

UNIT_TEST(reconcile_file_refuses_more_records_than_reconcile_max_records_with_413)
{
	static const struct reconcile_file_limits lim = { 2, 1000 };
	struct reconcile_file f;
	char err[256] = "";

	CHECK(reconcile_file_try("model,cost_usd,input_tokens,output_tokens\na,1,1,1\na,1,1,1\n",
				 &lim, &f, err, sizeof(err)) == 200);
	reconcile_file_release(&f);
	CHECK(reconcile_file_try("model,cost_usd,input_tokens,output_tokens\na,1,1,1\na,1,1,1\n"
				 "a,1,1,1\n",
				 &lim, &f, err, sizeof(err)) == 413);
	CHECK_MSG(strstr(err, "line 4") && strstr(err, "reconcile_max_records (2)"), "%s", err);
	CHECK(f.n == 0 && f.recs == NULL);
}

UNIT_TEST(reconcile_file_refuses_more_models_than_reconcile_max_groups_with_413)
{
	static const struct reconcile_file_limits lim = { 1000, 2 };
	struct reconcile_file f;
	char err[256] = "";

	CHECK(reconcile_file_try("model,cost_usd,input_tokens,output_tokens\na,1,1,1\nb,1,1,1\n"
				 "a,1,1,1\nc,1,1,1\n",
				 &lim, &f, err, sizeof(err)) == 413);
	CHECK_MSG(strstr(err, "line 5") && strstr(err, "reconcile_max_groups (2)"), "%s", err);
}
