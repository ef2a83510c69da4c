/* Unit tests for collector pieces that need no database: the config table,
 * the ingest decoder's limits and scope rules, and the rate limiter. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "gz.h"
#include "ingest_json.h"
#include "ratelimit.h"
#include "unit.h"

static int decode(const char *body, const struct ingest_scope *scope, int max_rows,
		  struct ingest_batch *b, char *err, size_t errlen)
{
	struct ingest_limits lim;

	lim.max_inflated_bytes = 1 << 20;
	lim.max_batch_rows = max_rows;
	lim.max_element_values = 16384;
	lim.max_reject_raw_bytes = 65536;
	row_limits_default(&lim.row);
	return ingest_decode(body, strlen(body), false, &lim, scope, 1.8e9, b, err, errlen);
}

struct status_case {
	const char *name;
	const char *body;
	int max_rows;
	int status;
	const char *expect;
};

static const struct status_case status_cases[] = {
	{ "decode_empty_array_is_ok", "[]", 10, 200, "" },
	{ "decode_rejects_object_body", "{\"id\":1}", 10, 400, "JSON array" },
	{ "decode_reports_truncated_json", "[{\"id\":\"a\"", 10, 400, "truncated" },
	{ "decode_reports_garbage_position", "[1,]x", 10, 400, "byte" },
	{ "decode_rejects_trailing_garbage", "[] []", 10, 400, "byte 3" },
	{ "decode_refuses_more_rows_than_cap", "[{},{},{}]", 2, 413, "max_batch_rows" },
};

UNIT_TEST(ingest_decode_status_table)
{
	struct ingest_scope any = { NULL, NULL };

	for (size_t i = 0; i < sizeof(status_cases) / sizeof(status_cases[0]); i++) {
		struct ingest_batch b;
		char err[256] = "";
		int st = decode(status_cases[i].body, &any, status_cases[i].max_rows, &b, err,
				sizeof(err));
		CHECK_MSG(st == status_cases[i].status, "%s: status %d", status_cases[i].name, st);
		CHECK_MSG(strstr(err, status_cases[i].expect) != NULL, "%s: error \"%s\"",
			  status_cases[i].name, err);
		ingest_batch_release(&b);
	}
}

UNIT_TEST(ingest_counts_repeated_ids_in_one_batch_as_duplicates)
{
	struct ingest_scope any = { NULL, NULL };
	struct ingest_batch b;
	char err[256];
	const char *body = "[{\"id\":\"a\",\"timestamp\":1.8e9,\"modality\":\"llm\"},"
			   "{\"id\":\"a\",\"timestamp\":1.8e9,\"modality\":\"llm\"},"
			   "{\"id\":\"b\",\"timestamp\":1.8e9,\"modality\":\"bad\"}]";

	CHECK(decode(body, &any, 10, &b, err, sizeof(err)) == 200);
	CHECK(b.nrows == 1 && b.duplicates == 1 && b.nrejects == 1);
	CHECK(b.nrejects == 1 && b.rejects[0].index == 2 && strstr(b.rejects[0].raw, "\"bad\""));
	ingest_batch_release(&b);
}

UNIT_TEST(ingest_refuses_rows_holding_a_nul_escape_and_keeps_the_rest)
{
	struct ingest_scope any = { NULL, NULL };
	struct ingest_batch b;
	char err[256];
	/* cJSON would cut "x\u0000y" to "x": ids "x\u0000y" and "x\u0000z" would
	 * then collide. An escaped backslash before u0000 is ordinary text. */
	const char *body = "[{\"id\":\"ok\",\"timestamp\":1.8e9,\"modality\":\"llm\"},"
			   "{\"id\":\"x\\u0000y\",\"timestamp\":1.8e9,\"modality\":\"llm\"},"
			   "{\"id\":\"x\\u0000z\",\"timestamp\":1.8e9,\"modality\":\"llm\"},"
			   "{\"id\":\"m\",\"timestamp\":1.8e9,\"modality\":\"llm\","
			   "\"metadata\":{\"k\":[\"\\u0000\"]}},"
			   "{\"id\":\"lit\",\"timestamp\":1.8e9,\"modality\":\"llm\","
			   "\"error_message\":\"path C:\\\\u0000\"}]";

	CHECK(decode(body, &any, 10, &b, err, sizeof(err)) == 200);
	CHECK_MSG(b.nrows == 2 && b.nrejects == 3 && b.duplicates == 0,
		  "rows %d rejects %d duplicates %d", b.nrows, b.nrejects, b.duplicates);
	for (int i = 0; i < b.nrejects; i++)
		CHECK_MSG(b.rejects[i].index == i + 1 && strstr(b.rejects[i].reason, "\\u0000"),
			  "reject %d: index %d, %s", i, b.rejects[i].index, b.rejects[i].reason);
	CHECK(b.nrows == 2 && strcmp(b.rows[1].error_message, "path C:\\u0000") == 0);
	ingest_batch_release(&b);
}

UNIT_TEST(ingest_tenant_scoped_key_stamps_and_refuses_other_tenant)
{
	struct ingest_scope scope = { NULL, "acme" };
	struct ingest_batch b;
	char err[256];
	const char *body =
		"[{\"id\":\"a\",\"timestamp\":1.8e9,\"modality\":\"llm\"},"
		"{\"id\":\"b\",\"timestamp\":1.8e9,\"modality\":\"llm\",\"tenant_id\":\"other\"}]";

	CHECK(decode(body, &scope, 10, &b, err, sizeof(err)) == 200);
	CHECK(b.nrows == 1 && strcmp(b.rows[0].tenant_id, "acme") == 0);
	CHECK(b.nrejects == 1 && strstr(b.rejects[0].reason, "may only write tenant \"acme\""));
	ingest_batch_release(&b);
}

UNIT_TEST(ingest_project_scoped_key_stamps_and_refuses_other_project)
{
	struct ingest_scope scope = { "voice", NULL };
	struct ingest_batch b;
	char err[256];
	const char *body =
		"[{\"id\":\"a\",\"timestamp\":1.8e9,\"modality\":\"llm\"},"
		"{\"id\":\"b\",\"timestamp\":1.8e9,\"modality\":\"llm\",\"project\":\"other\"}]";

	CHECK(decode(body, &scope, 10, &b, err, sizeof(err)) == 200);
	CHECK(b.nrows == 1 && strcmp(b.rows[0].project, "voice") == 0);
	CHECK(b.nrejects == 1 && strstr(b.rejects[0].reason, "may only write project \"voice\""));
	ingest_batch_release(&b);
}

UNIT_TEST(ingest_gzip_bomb_is_413)
{
	struct ingest_limits lim;
	struct ingest_scope any = { NULL, NULL };
	struct ingest_batch b;
	struct buf z;
	char err[256];
	size_t n = 4 << 20;
	char *zeros = calloc(1, n);

	lim.max_inflated_bytes = 1 << 20;
	lim.max_batch_rows = 10;
	lim.max_element_values = 16384;
	lim.max_reject_raw_bytes = 65536;
	row_limits_default(&lim.row);
	buf_init(&z, 0);
	CHECK(zeros && gz_deflate(zeros, n, 9, &z, err, sizeof(err)));
	CHECK(ingest_decode(z.data, z.len, true, &lim, &any, 1.8e9, &b, err, sizeof(err)) == 413);
	ingest_batch_release(&b);
	buf_release(&z);
	free(zeros);
}

UNIT_TEST(config_defaults_validate)
{
	struct config c;
	char err[256];

	config_init(&c);
	CHECK_MSG(config_validate(&c, err, sizeof(err)), "%s", err);
	CHECK(c.max_body_bytes == 8u << 20 && c.max_inflated_bytes == 64u << 20);
	CHECK(c.max_batch_rows == 10000 && c.max_row_age_days == 400 && c.max_clock_skew_s == 3600);
	config_free(&c);
}

struct cfg_case {
	const char *name;
	const char *file;
	const char *expect;
};

static const struct cfg_case cfg_cases[] = {
	{ "config_rejects_unknown_key_with_line", "pool_size = 2\nbogus = 1\n",
	  ":2: unknown key \"bogus\"" },
	{ "config_rejects_bad_int_with_line", "# c\npool_size = lots\n",
	  ":2: pool_size = \"lots\"" },
	{ "config_rejects_line_without_equals", "listen 127.0.0.1:1\n",
	  ":1: expected \"key = value\"" },
	{ "config_rejects_bad_size", "max_body_bytes = 12Q\n", ":1: max_body_bytes" },
};

UNIT_TEST(config_file_errors_name_file_and_line)
{
	for (size_t i = 0; i < sizeof(cfg_cases) / sizeof(cfg_cases[0]); i++) {
		char path[] = "/tmp/vgc-unit-XXXXXX";
		int fd = mkstemp(path);
		struct config c;
		char err[512] = "";

		CHECK(fd >= 0 && write(fd, cfg_cases[i].file, strlen(cfg_cases[i].file)) > 0);
		close(fd);
		config_init(&c);
		CHECK_MSG(!config_load_file(&c, path, err, sizeof(err)), "%s: accepted",
			  cfg_cases[i].name);
		CHECK_MSG(strstr(err, path) && strstr(err, cfg_cases[i].expect), "%s: \"%s\"",
			  cfg_cases[i].name, err);
		config_free(&c);
		unlink(path);
	}
}

UNIT_TEST(config_sizes_accept_suffixes)
{
	struct config c;
	char err[256];

	config_init(&c);
	CHECK(config_set(&c, "max_body_bytes", "16M", "t", err, sizeof(err)));
	CHECK(c.max_body_bytes == 16u << 20);
	config_free(&c);
}

UNIT_TEST(ratelimit_refuses_past_burst_and_refills)
{
	struct ratelimit *rl = ratelimit_new();
	int retry = 0;

	CHECK(ratelimit_take(rl, 1, 1.0, 2, 100.0, &retry));
	CHECK(ratelimit_take(rl, 1, 1.0, 2, 100.0, &retry));
	CHECK(!ratelimit_take(rl, 1, 1.0, 2, 100.0, &retry) && retry == 1);
	CHECK(ratelimit_take(rl, 2, 1.0, 2, 100.0, &retry)); /* another key is independent */
	CHECK(ratelimit_take(rl, 1, 1.0, 2, 101.1, &retry));
	ratelimit_free(rl);
}
