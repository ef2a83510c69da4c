/* The rollup shape (see rollup_shape.h). Adding a measure: one entry here
 * and a migration adding its column to the rollup tables (hourly, daily and
 * the tenant summaries); tests/test_schema.py holds this table against them. */
#include "rollup_shape.h"

#include <string.h>

#include "buf.h"
#include "row.h"

const char *const rollup_keys[ROLLUP_NKEYS] = {
	"project", "agent_id", "tenant_id", "modality", "provider", "model_id",
};

#define COUNT(name, agg, uses)                                                                     \
	{                                                                                          \
		name, ROLLUP_MEASURE_COUNT, agg, uses,                                             \
		{                                                                                  \
			0, 0                                                                       \
		}                                                                                  \
	}
#define SUM(name, kind)                                                                            \
	{                                                                                          \
#name, kind, "sum(" #name ")", #name,                                              \
		{                                                                                  \
			0, 0                                                                       \
		}                                                                                  \
	}

const struct rollup_measure rollup_measures[] = {
	COUNT("requests", "count(*)", 0),
	COUNT("errors", "count(*) FILTER (WHERE status = 'error')", "status"),
	COUNT("fallbacks", "count(*) FILTER (WHERE status = 'fallback')", "status"),
	SUM(cost_usd, ROLLUP_MEASURE_MONEY),
	/* An unrated row (rated_price_usd NULL) adds nothing to the sum. */
	{ "rated_price_usd",
	  ROLLUP_MEASURE_MONEY,
	  "coalesce(sum(rated_price_usd), 0)",
	  "rated_price_usd",
	  { 0, 0 } },
	SUM(input_units, ROLLUP_MEASURE_UNITS),
	SUM(output_units, ROLLUP_MEASURE_UNITS),
	SUM(cached_input_units, ROLLUP_MEASURE_UNITS),
	/* The price book's cost of the priced rows, and how many were priced:
	 * an unpriced row (book_cost_usd NULL) adds to neither. */
	{ "book_cost_usd",
	  ROLLUP_MEASURE_MONEY,
	  "coalesce(sum(book_cost_usd), 0)",
	  "book_cost_usd",
	  { 0, 0 } },
	COUNT("priced_rows", "count(book_cost_usd)", "book_cost_usd"),
	{ "unpriced_rows", ROLLUP_MEASURE_COUNT, 0, 0, { "requests", "priced_rows" } },
	/* How many rows carry a rated price, and how many do not. */
	COUNT("rated_rows", "count(rated_price_usd)", "rated_price_usd"),
	{ "unrated_rows", ROLLUP_MEASURE_COUNT, 0, 0, { "requests", "rated_rows" } },
};

_Static_assert(sizeof(rollup_measures) / sizeof(rollup_measures[0]) == ROLLUP_NMEASURES,
	       "ROLLUP_NMEASURES counts rollup_measures");

static const char *const rollup_shape_kinds[] = {
	[ROLLUP_MEASURE_COUNT] = "count",
	[ROLLUP_MEASURE_MONEY] = "money",
	[ROLLUP_MEASURE_UNITS] = "units",
};

bool rollup_measure_is_cost(const struct rollup_measure *m)
{
	return strcmp(m->name, "cost_usd") == 0 || strcmp(m->name, "book_cost_usd") == 0;
}

bool rollup_shape_json(struct buf *out)
{
	buf_puts(out, "{\"keys\":[");
	for (int i = 0; i < ROLLUP_NKEYS; i++) {
		if (i)
			buf_putc(out, ',');
		row_json_string(out, rollup_keys[i]);
	}
	buf_puts(out, "],\"measures\":[");
	for (int i = 0; i < ROLLUP_NMEASURES; i++) {
		const struct rollup_measure *m = &rollup_measures[i];

		buf_puts(out, i ? ",{\"name\":" : "{\"name\":");
		row_json_string(out, m->name);
		buf_puts(out, ",\"kind\":");
		row_json_string(out, rollup_shape_kinds[m->kind]);
		buf_puts(out, ",\"from_rows\":");
		row_json_string(out, m->from_rows);
		buf_puts(out, ",\"minus\":");
		if (m->minus[0]) {
			buf_putc(out, '[');
			row_json_string(out, m->minus[0]);
			buf_putc(out, ',');
			row_json_string(out, m->minus[1]);
			buf_putc(out, ']');
		} else {
			buf_puts(out, "null");
		}
		buf_putc(out, '}');
	}
	buf_puts(out, "]}\n");
	return !out->over;
}
