/* The cost row's field table (see row_fields.h). Adding a field: a member in
 * struct row and vgsink_row, one entry here and its twin in
 * sink/sink_row.c, and a migration in schema/;
 * tests/test_schema.py holds this table against the live cost_rows. */
#include "row_fields.h"

#include "buf.h"
#include "row.h"

#define R(m) offsetof(struct row, m)
#define B(m) offsetof(struct row_limits, m)
#define NB ROW_NO_BYTES

#define TEXT(name, cap, bytes, req, absent, notnull)                                               \
	{                                                                                          \
#name, #name, ROW_KIND_TEXT, R(name), cap, bytes, req, absent, "text", notnull,    \
			NULL, false                                                                \
	}
#define AMOUNT(name)                                                                               \
	{                                                                                          \
#name, #name, ROW_KIND_AMOUNT, R(name), ROW_CAP_NONE, NB, false, NULL, "numeric",  \
			true, "0", false                                                           \
	}
#define MONEY(name)                                                                                \
	{                                                                                          \
#name, #name, ROW_KIND_AMOUNT, R(name), ROW_CAP_NONE, NB, false, NULL, "numeric",  \
			true, "0", true                                                            \
	}
#define MEASURE(name)                                                                              \
	{                                                                                          \
#name, #name, ROW_KIND_MEASURE, R(name), ROW_CAP_NONE, NB, false, NULL,            \
			"double precision", false, NULL, false                                     \
	}

#define BOOK(name, type, money)                                                                    \
	{                                                                                          \
#name, #name, ROW_KIND_BOOK, ROW_NO_OFFSET, ROW_CAP_NONE, NB, false, NULL, type,   \
			false, NULL, money                                                         \
	}

const struct row_field row_fields[] = {
	TEXT(id, ROW_CAP_ID, NB, true, NULL, true),
	{ "timestamp", "ts", ROW_KIND_TIME, R(timestamp), ROW_CAP_NONE, NB, true, NULL,
	  "timestamp with time zone", true, NULL, false },
	{ "modality", "modality", ROW_KIND_MODALITY, R(modality), ROW_CAP_NONE, NB, true, NULL,
	  "text", true, NULL, false },
	TEXT(model_id, ROW_CAP_STRING, B(max_model_id_bytes), false, NULL, false),
	TEXT(provider, ROW_CAP_STRING, B(max_provider_bytes), false, NULL, false),
	TEXT(project, ROW_CAP_PROJECT, B(max_project_bytes), false, "default", true),
	AMOUNT(input_units),
	AMOUNT(output_units),
	AMOUNT(cached_input_units),
	MONEY(cost_usd),
	/* Set by the collector on ingest from the rate card (rate_card.c): NULL
	 * when unrated. */
	{ "rated_price_usd", "rated_price_usd", ROW_KIND_AMOUNT, R(rated_price_usd), ROW_CAP_NONE,
	  NB, false, NULL, "numeric", false, "0", true },
	TEXT(pricing_source, ROW_CAP_STRING, NB, false, NULL, false),
	TEXT(rate_rule, ROW_CAP_STRING, NB, false, NULL, false),
	MEASURE(ttfb_ms),
	MEASURE(total_latency_ms),
	{ "status", "status", ROW_KIND_STATUS, R(status), ROW_CAP_NONE, NB, false, NULL, "text",
	  true, "'success'::text", false },
	TEXT(fallback_from, ROW_CAP_STRING, NB, false, NULL, false),
	TEXT(error_message, ROW_CAP_ERROR, NB, false, NULL, false),
	{ "metadata", "metadata", ROW_KIND_JSON, R(metadata_json), ROW_CAP_METADATA, NB, false,
	  NULL, "jsonb", false, NULL, false },
	TEXT(session_id, ROW_CAP_STRING, NB, false, NULL, false),
	TEXT(agent_id, ROW_CAP_STRING, B(max_agent_id_bytes), false, NULL, false),
	TEXT(tenant_id, ROW_CAP_TENANT, NB, false, NULL, false),
	TEXT(revision, ROW_CAP_STRING, NB, false, NULL, false),
	{ "turn_index", "turn_index", ROW_KIND_COUNT, R(turn_index), ROW_CAP_NONE, NB, false, NULL,
	  "integer", false, NULL, false },
	BOOK(book_cost_usd, "numeric", true),
	BOOK(book_revision, "text", false),
	BOOK(rate_revision, "bigint", false),
};

_Static_assert(sizeof(row_fields) / sizeof(row_fields[0]) == ROW_NFIELDS,
	       "ROW_NFIELDS counts row_fields");

static const char *const row_kind_names[] = {
	[ROW_KIND_TEXT] = "text",	  [ROW_KIND_TIME] = "time",
	[ROW_KIND_MODALITY] = "modality", [ROW_KIND_STATUS] = "status",
	[ROW_KIND_AMOUNT] = "amount",	  [ROW_KIND_MEASURE] = "measure",
	[ROW_KIND_JSON] = "json",	  [ROW_KIND_COUNT] = "count",
	[ROW_KIND_BOOK] = "book",
};

bool row_fields_json(struct buf *out)
{
	buf_putc(out, '[');
	for (int i = 0; i < ROW_NFIELDS; i++) {
		const struct row_field *f = &row_fields[i];

		buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
		row_json_string(out, f->name);
		buf_puts(out, ",\"column\":");
		row_json_string(out, f->column);
		buf_puts(out, ",\"kind\":");
		row_json_string(out, row_kind_names[f->kind]);
		buf_puts(out, ",\"sql_type\":");
		row_json_string(out, f->sql_type);
		buf_puts(out, f->sql_not_null ? ",\"not_null\":true" : ",\"not_null\":false");
		buf_puts(out, ",\"default\":");
		row_json_string(out, f->sql_default);
		buf_putc(out, '}');
	}
	buf_puts(out, "]\n");
	return !out->over;
}
