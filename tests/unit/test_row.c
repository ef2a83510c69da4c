/* Unit tests for the shared row model: validation rules, decoding from the
 * wire JSON, encoding, number formatting and bounded gzip. */
#include <cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gz.h"
#include "num.h"
#include "row.h"
#include "sinkrow.h"
#include "unit.h"

#define NOW 1.8e9

static struct row valid_row(void)
{
	struct row r;

	row_init(&r);
	r.id = "r-1";
	r.timestamp = NOW - 10;
	r.modality = ROW_LLM;
	r.project = "default";
	r.cost_usd = 0.5;
	return r;
}

static bool validate(const struct row *r, char *err, size_t errlen)
{
	struct row_limits lim;

	row_limits_default(&lim);
	return row_validate(r, &lim, NOW, err, errlen);
}

struct reject_case {
	const char *name;
	void (*mutate)(struct row *r);
	const char *expect; /* substring of the error */
};

static void m_empty_id(struct row *r)
{
	r->id = "";
}
static void m_long_id(struct row *r)
{
	static char id[130];
	memset(id, 'x', 129);
	r->id = id;
}
static void m_negative_cost(struct row *r)
{
	r->cost_usd = -1;
}
static void m_nan_units(struct row *r)
{
	r->input_units = NAN;
}
static void m_tenant_space(struct row *r)
{
	r->tenant_id = "acme corp";
}
static void m_tenant_long(struct row *r)
{
	static char t[130];
	memset(t, 'a', 129);
	r->tenant_id = t;
}
static void m_too_old(struct row *r)
{
	r->timestamp = NOW - 401 * 86400.0;
}
static void m_future(struct row *r)
{
	r->timestamp = NOW + 7200;
}
static void m_bad_utf8(struct row *r)
{
	r->model_id = "gpt\xff";
}
static void m_negative_latency(struct row *r)
{
	r->ttfb_ms = -3;
}
static void m_long_provider(struct row *r)
{
	static char p[300];
	memset(p, 'p', 299);
	r->provider = p;
}
/* n copies of the 4-byte UTF-8 character U+1F600 in a static buffer. */
static const char *emoji(char *buf, int n)
{
	for (int i = 0; i < n; i++)
		memcpy(buf + 4 * i, "\xf0\x9f\x98\x80", 4);
	buf[4 * n] = '\0';
	return buf;
}
static void m_agent_256_emoji(struct row *r)
{
	static char a[4 * 256 + 1];
	r->agent_id = emoji(a, 256); /* 256 characters, within max_string_chars */
}
static void m_model_256_cjk(struct row *r)
{
	static char m[3 * 256 + 1];
	for (int i = 0; i < 256; i++)
		memcpy(m + 3 * i, "\xe6\xbc\xa2", 3);
	m[3 * 256] = '\0';
	r->model_id = m;
}
static void m_provider_161_emoji(struct row *r)
{
	static char p[4 * 161 + 1];
	r->provider = emoji(p, 161);
}

static const struct reject_case reject_cases[] = {
	{ "row_rejects_agent_id_over_its_byte_limit", m_agent_256_emoji,
	  "agent_id: 1024 bytes of UTF-8, the limit is 640 (max_agent_id_bytes)" },
	{ "row_rejects_model_id_over_its_byte_limit", m_model_256_cjk,
	  "model_id: 768 bytes of UTF-8, the limit is 640 (max_model_id_bytes)" },
	{ "row_rejects_provider_one_char_over_its_byte_limit", m_provider_161_emoji,
	  "provider: 644 bytes" },
	{ "row_rejects_empty_id", m_empty_id, "id: required" },
	{ "row_rejects_id_over_128_chars", m_long_id, "id: 129 characters" },
	{ "row_rejects_negative_cost", m_negative_cost, "cost_usd" },
	{ "row_rejects_nan_units", m_nan_units, "input_units" },
	{ "row_rejects_tenant_with_space", m_tenant_space, "tenant_id \"acme corp\"" },
	{ "row_rejects_tenant_over_128_chars", m_tenant_long, "tenant_id" },
	{ "row_rejects_older_than_max_age", m_too_old, "max_row_age_days" },
	{ "row_rejects_too_far_in_future", m_future, "max_clock_skew_s" },
	{ "row_rejects_invalid_utf8", m_bad_utf8, "model_id: not valid UTF-8" },
	{ "row_rejects_negative_latency", m_negative_latency, "ttfb_ms" },
	{ "row_rejects_string_over_cap", m_long_provider, "provider: 299 characters" },
};

UNIT_TEST(row_validation_table)
{
	for (size_t i = 0; i < sizeof(reject_cases) / sizeof(reject_cases[0]); i++) {
		struct row r = valid_row();
		char err[512] = "";
		reject_cases[i].mutate(&r);
		CHECK_MSG(!validate(&r, err, sizeof(err)), "%s: accepted", reject_cases[i].name);
		CHECK_MSG(strstr(err, reject_cases[i].expect) != NULL,
			  "%s: error \"%s\" lacks \"%s\"", reject_cases[i].name, err,
			  reject_cases[i].expect);
	}
}

UNIT_TEST(row_accepts_minimal_valid_row)
{
	struct row r = valid_row();
	char err[256] = "";

	CHECK_MSG(validate(&r, err, sizeof(err)), "%s", err);
}

UNIT_TEST(row_accepts_late_row_within_max_age)
{
	struct row r = valid_row();
	char err[256] = "";

	r.timestamp = NOW - 90 * 86400.0;
	CHECK_MSG(validate(&r, err, sizeof(err)), "%s", err);
}

static bool decode(const char *json, struct row *r, char **meta, char *err, size_t errlen,
		   cJSON **root)
{
	*root = cJSON_Parse(json);
	return *root && row_from_json(*root, r, meta, err, errlen);
}

UNIT_TEST(row_decode_defaults_project_and_reads_tenant_from_metadata)
{
	struct row r;
	char *meta = NULL, err[256];
	cJSON *root;

	CHECK(decode(
		"{\"id\":\"a\",\"timestamp\":1.8e9,\"modality\":\"stt\",\"metadata\":{\"tenant\":\"acme\"},"
		"\"unknown_field\":[1,2]}",
		&r, &meta, err, sizeof(err), &root));
	CHECK(strcmp(r.project, "default") == 0);
	CHECK(r.tenant_id && strcmp(r.tenant_id, "acme") == 0);
	CHECK(r.modality == ROW_STT && r.status == ROW_SUCCESS);
	CHECK(isnan(r.ttfb_ms) && r.turn_index < 0);
	free(meta);
	cJSON_Delete(root);
}

UNIT_TEST(row_decode_explicit_tenant_beats_metadata)
{
	struct row r;
	char *meta = NULL, err[256];
	cJSON *root;

	CHECK(decode("{\"id\":\"a\",\"timestamp\":1,\"modality\":\"tts\",\"tenant_id\":\"t1\","
		     "\"metadata\":{\"tenant\":\"t2\"}}",
		     &r, &meta, err, sizeof(err), &root));
	CHECK(strcmp(r.tenant_id, "t1") == 0);
	free(meta);
	cJSON_Delete(root);
}

struct decode_err_case {
	const char *json;
	const char *expect;
};

static const struct decode_err_case decode_errors[] = {
	{ "{\"timestamp\":1,\"modality\":\"llm\"}", "id: required" },
	{ "{\"id\":\"a\",\"modality\":\"llm\"}", "timestamp: required" },
	{ "{\"id\":\"a\",\"timestamp\":1}", "modality: required" },
	{ "{\"id\":\"a\",\"timestamp\":1,\"modality\":\"video\"}", "modality \"video\"" },
	{ "{\"id\":\"a\",\"timestamp\":1,\"modality\":\"llm\",\"status\":\"ok\"}",
	  "status \"ok\"" },
	{ "{\"id\":7,\"timestamp\":1,\"modality\":\"llm\"}", "id: must be a string" },
	{ "{\"id\":\"a\",\"timestamp\":\"now\",\"modality\":\"llm\"}",
	  "timestamp: must be a number" },
	{ "{\"id\":\"a\",\"timestamp\":1,\"modality\":\"llm\",\"turn_index\":1.5}", "turn_index" },
	{ "{\"id\":\"a\",\"timestamp\":1,\"modality\":\"llm\",\"metadata\":[1]}",
	  "metadata: must be a JSON object" },
	{ "[1]", "row must be a JSON object" },
};

UNIT_TEST(row_decode_errors_name_the_field)
{
	for (size_t i = 0; i < sizeof(decode_errors) / sizeof(decode_errors[0]); i++) {
		struct row r;
		char *meta = NULL, err[256] = "";
		cJSON *root = NULL;

		CHECK_MSG(!decode(decode_errors[i].json, &r, &meta, err, sizeof(err), &root),
			  "accepted %s", decode_errors[i].json);
		CHECK_MSG(strstr(err, decode_errors[i].expect) != NULL, "%s: got \"%s\"",
			  decode_errors[i].json, err);
		free(meta);
		cJSON_Delete(root);
	}
}

UNIT_TEST(row_json_round_trips_through_decoder)
{
	struct row r = valid_row(), back;
	struct buf b;
	char *meta = NULL, err[256];
	cJSON *root;

	r.tenant_id = "acme";
	r.error_message = "line1\n\"quoted\"\t\\";
	r.metadata_json = "{\"k\":1}";
	r.turn_index = 3;
	r.ttfb_ms = 12.5;
	buf_init(&b, 0);
	CHECK(row_to_json(&r, &b));
	root = cJSON_Parse(b.data);
	CHECK(root && row_from_json(root, &back, &meta, err, sizeof(err)));
	CHECK(strcmp(back.error_message, r.error_message) == 0);
	CHECK(strcmp(back.tenant_id, "acme") == 0 && back.turn_index == 3 && back.ttfb_ms == 12.5);
	CHECK(back.cost_usd == 0.5);
	free(meta);
	cJSON_Delete(root);
	buf_release(&b);
}

struct num_case {
	double v;
	const char *text;
};

static const struct num_case num_cases[] = {
	{ 0.00039, "0.00039" },
	{ 0.1, "0.1" },
	{ 1200, "1200" },
	{ 0.3, "0.3" },
	{ 1e-07, "1e-07" },
	{ 123456.789, "123456.789" },
	{ 0.1 + 0.2, "0.30000000000000004" },
};

UNIT_TEST(num_format_prints_shortest_round_trip)
{
	for (size_t i = 0; i < sizeof(num_cases) / sizeof(num_cases[0]); i++) {
		char out[40];
		num_format(num_cases[i].v, out, sizeof(out));
		CHECK_MSG(strcmp(out, num_cases[i].text) == 0, "got %s want %s", out,
			  num_cases[i].text);
	}
}

/* The definition num_format must meet: the first of %.15g, %.16g and %.17g
 * that reads back as d (whole numbers as integers). */
static void num_format_reference(double d, char *out, size_t outlen)
{
	if (d == floor(d) && fabs(d) < 9007199254740992.0 && !(d == 0 && signbit(d))) {
		snprintf(out, outlen, "%lld", (long long)d);
		return;
	}
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(out, outlen, "%.*g", prec, d);
		if (strtod(out, NULL) == d)
			return;
	}
}

static uint64_t num_rand_state = 0x9e3779b97f4a7c15ULL;

static uint64_t num_rand(void)
{
	num_rand_state ^= num_rand_state << 13;
	num_rand_state ^= num_rand_state >> 7;
	num_rand_state ^= num_rand_state << 17;
	return num_rand_state;
}

/* Its fast path for short decimals writes exactly what printf's search does:
 * decimals of 1 to 17 digits as the wire carries them (read by strtod), at
 * scales from 10^-19 to 10^15 and both signs, and doubles with random bits. */
UNIT_TEST(num_format_matches_the_printf_search_on_600k_numbers)
{
	int bad = 0;

	for (int i = 0; i < 600000 && bad < 5; i++) {
		char text[64], got[40], want[40];
		double d;

		if (i % 3 == 2) {
			uint64_t bits = num_rand();
			/* exponents from 2^-40 to 2^60 */
			bits = (bits & 0x800fffffffffffffULL) |
			       ((uint64_t)(1023 - 40 + (int)(num_rand() % 100)) << 52);
			memcpy(&d, &bits, sizeof(d));
		} else {
			int digits = 1 + (int)(num_rand() % 17),
			    scale = (int)(num_rand() % 35) - 19;
			unsigned long long v = num_rand() % 100000000000000000ULL;

			for (int k = digits; k < 17; k++)
				v /= 10;
			snprintf(text, sizeof(text), "%s%llue%d", num_rand() % 4 ? "" : "-", v,
				 scale);
			d = strtod(text, NULL);
		}
		num_format(d, got, sizeof(got));
		num_format_reference(d, want, sizeof(want));
		if (strcmp(got, want) != 0) {
			CHECK_MSG(0, "%.17g: got %s want %s", d, got, want);
			bad++;
		}
	}
}

UNIT_TEST(gz_round_trip)
{
	struct buf z, out;
	char err[128];
	const char *text = "[{\"id\":\"x\"}]";

	buf_init(&z, 0);
	buf_init(&out, 1024);
	CHECK(gz_deflate(text, strlen(text), 6, &z, err, sizeof(err)));
	CHECK(gz_inflate(z.data, z.len, 1024, &out, err, sizeof(err)) == GZ_OK);
	CHECK(out.len == strlen(text) && memcmp(out.data, text, out.len) == 0);
	buf_release(&z);
	buf_release(&out);
}

UNIT_TEST(gz_inflate_stops_at_cap_without_allocating_past_it)
{
	size_t big = 8 << 20;
	char *zeros = calloc(1, big);
	struct buf z, out;
	char err[128];

	buf_init(&z, 0);
	buf_init(&out, 65536);
	CHECK(zeros && gz_deflate(zeros, big, 9, &z, err, sizeof(err)));
	CHECK(gz_inflate(z.data, z.len, 65536, &out, err, sizeof(err)) == GZ_TOO_BIG);
	CHECK(out.cap <= 65537);
	CHECK(strstr(err, "max_inflated_bytes") != NULL);
	free(zeros);
	buf_release(&z);
	buf_release(&out);
}

UNIT_TEST(gz_inflate_reports_truncated_and_garbage)
{
	struct buf z, out;
	char err[128];
	const char *text = "hello hello hello hello";

	buf_init(&z, 0);
	buf_init(&out, 1024);
	CHECK(gz_deflate(text, strlen(text), 6, &z, err, sizeof(err)));
	CHECK(gz_inflate(z.data, z.len - 6, 1024, &out, err, sizeof(err)) == GZ_BAD);
	buf_reset(&out);
	CHECK(gz_inflate("not gzip at all", 15, 1024, &out, err, sizeof(err)) == GZ_BAD);
	CHECK(strstr(err, "gzip") != NULL);
	buf_release(&z);
	buf_release(&out);
}

UNIT_TEST(row_utf8_valid_checks_past_the_ascii_fast_path)
{
	static const char nul[] = "abcdefghij\0klmnop";

	CHECK(row_utf8_valid("abcdefghijklmnop", 16));
	CHECK(row_utf8_valid("abcdefgh\xc3\xa9tude and more text", 27));
	CHECK(!row_utf8_valid("abcdefgh\xc3\x28 and more", 18));    /* bad continuation */
	CHECK(!row_utf8_valid("abcdefghijklmnop\xed\xa0\x80", 19)); /* a surrogate */
	CHECK(!row_utf8_valid(nul, sizeof(nul) - 1));		    /* NUL inside a word */
	CHECK(!row_utf8_valid("abcdefghijklmno\xff", 16));	    /* last byte */
}

UNIT_TEST(row_counts_characters_not_bytes_against_the_limit)
{
	struct row r;
	struct row_limits lim;
	char err[256], s[300];

	row_limits_default(&lim);
	lim.max_string_chars = 4;
	row_init(&r);
	r.id = "x";
	r.timestamp = 1.7e9;
	r.project = "p";
	r.model_id = "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9"; /* 4 characters in 8 bytes */
	CHECK_MSG(row_validate(&r, &lim, 1.7e9, err, sizeof(err)), "%s", err);
	snprintf(s, sizeof(s), "abcde");
	r.model_id = s;
	CHECK(!row_validate(&r, &lim, 1.7e9, err, sizeof(err)));
	CHECK(strstr(err, "model_id: 5 characters") != NULL);
}

UNIT_TEST(row_byte_limits_allow_the_longest_key_that_fits)
{
	struct row r = valid_row();
	struct row_limits lim;
	static char a[4 * 160 + 1], p[4 * 160 + 1], m[4 * 160 + 1], pr[4 * 128 + 1];
	char err[256] = "";
	size_t total;

	r.agent_id = emoji(a, 160); /* 640 bytes each: exactly the default limits */
	r.provider = emoji(p, 160);
	r.model_id = emoji(m, 160);
	r.project = emoji(pr, 128);	 /* 128 characters, 512 bytes */
	r.error_message = emoji(a, 160); /* not in the key: still counted in characters */
	CHECK_MSG(validate(&r, err, sizeof(err)), "%s", err);
	row_limits_default(&lim);
	CHECK(row_key_bytes_fit(&lim, &total) && total <= ROW_ROLLUP_KEY_MAX_BYTES);
	lim.max_model_id_bytes += ROW_ROLLUP_KEY_MAX_BYTES - total + 1;
	CHECK(!row_key_bytes_fit(&lim, &total) && total == ROW_ROLLUP_KEY_MAX_BYTES + 1);
}

/* libvgsink validates with the same row.c: a row whose agent_id would
 * overflow the rollup index is refused at record time, naming the field. */
UNIT_TEST(sink_record_refuses_a_row_over_a_rollup_key_byte_limit)
{
	static char a[4 * 256 + 1];
	vgsink_stats st;
	vgsink_row r = sinkrow_minimal();
	char err[256];
	vgsink *s;

	s = sinkrow_open_unsent(err, sizeof(err));
	CHECK_MSG(s != NULL, "%s", err);
	if (!s)
		return;
	r.agent_id = emoji(a, 256);
	CHECK(vgsink_record(s, &r) == -1);
	CHECK_MSG(strstr(vgsink_errstr(s), "agent_id: 1024 bytes") != NULL, "%s", vgsink_errstr(s));
	vgsink_stats_get(s, &st);
	CHECK(st.queued == 0);
	vgsink_close(s, 0);
}

/* ---- the field table ------------------------------------------------------------ */

UNIT_TEST(row_fields_count_their_strings)
{
	int n = 0;

	for (int i = 0; i < ROW_NFIELDS; i++)
		n += row_field_is_string(&row_fields[i]);
	CHECK_MSG(n == ROW_NSTRINGS, "%d string fields, ROW_NSTRINGS is %d", n, ROW_NSTRINGS);
}

UNIT_TEST(row_json_keys_follow_the_field_table)
{
	struct row r = valid_row();
	struct buf b;
	cJSON *root, *v;
	int i = 0;

	buf_init(&b, 0);
	CHECK(row_to_json(&r, &b));
	root = cJSON_Parse(b.data);
	CHECK(root != NULL);
	/* The collector's own (BOOK) fields are not the worker's to send. */
	cJSON_ArrayForEach(v, root)
	{
		while (i < ROW_NFIELDS && row_fields[i].kind == ROW_KIND_BOOK)
			i++;
		CHECK_MSG(i < ROW_NFIELDS && strcmp(v->string, row_fields[i].name) == 0,
			  "key %d is \"%s\"", i, v->string);
		i++;
	}
	while (i < ROW_NFIELDS && row_fields[i].kind == ROW_KIND_BOOK)
		i++;
	CHECK_MSG(i == ROW_NFIELDS, "%d keys", i);
	cJSON_Delete(root);
	buf_release(&b);
}

UNIT_TEST(row_string_fields_point_at_the_table_members)
{
	struct row r = valid_row();
	const char **f[ROW_NSTRINGS];
	int n = 0;

	row_string_fields(&r, f);
	for (int i = 0; i < ROW_NFIELDS; i++)
		if (row_field_is_string(&row_fields[i]))
			CHECK_MSG((char *)f[n++] == (char *)&r + row_fields[i].offset, "%s",
				  row_fields[i].name);
}

/* The decoder reports a type error before a bad enum value, and turn_index
 * before metadata, whatever the order of the keys. */
static const struct decode_err_case decode_error_order[] = {
	{ "{\"id\":\"a\",\"timestamp\":1,\"modality\":\"video\",\"session_id\":5}",
	  "session_id: must be a string" },
	{ "{\"id\":\"a\",\"timestamp\":1,\"modality\":\"llm\",\"metadata\":[1],\"turn_index\":-1}",
	  "turn_index: must be an integer from 0 to 2147483647" },
	{ "{\"status\":\"ok\",\"id\":\"a\",\"timestamp\":1,\"modality\":\"x\"}",
	  "modality \"x\": must be \"stt\", \"llm\" or \"tts\"" },
};

UNIT_TEST(row_decode_reports_errors_in_a_fixed_order)
{
	for (size_t i = 0; i < sizeof(decode_error_order) / sizeof(decode_error_order[0]); i++) {
		struct row r;
		char *meta = NULL, err[256] = "";
		cJSON *root = NULL;

		CHECK_MSG(!decode(decode_error_order[i].json, &r, &meta, err, sizeof(err), &root),
			  "accepted %s", decode_error_order[i].json);
		CHECK_MSG(strcmp(err, decode_error_order[i].expect) == 0, "%s: got \"%s\"",
			  decode_error_order[i].json, err);
		free(meta);
		cJSON_Delete(root);
	}
}
