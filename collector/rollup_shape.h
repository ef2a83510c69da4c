/* The rollup tables' shape, in one place: their key columns and their
 * measures, each with its kind and how it is aggregated from cost rows.
 * Ingest, the read API and the daily summariser build their SQL from it. */
#ifndef VGC_ROLLUP_SHAPE_H
#define VGC_ROLLUP_SHAPE_H

#include <stdbool.h>

struct buf;

/* What a measure's value is, and so how the read API writes it. */
enum rollup_measure_kind {
	ROLLUP_MEASURE_COUNT, /* a count of rows: bigint, a JSON number */
	ROLLUP_MEASURE_MONEY, /* dollars: numeric, a decimal string in JSON */
	ROLLUP_MEASURE_UNITS, /* a sum of units: numeric, a JSON number */
};

struct rollup_measure {
	const char *name; /* its column in every rollup table, and the read API's name */
	enum rollup_measure_kind kind;
	/* Its aggregate over cost rows (ingest's upsert into the hourly table).
	 * NULL for a derived measure, which no table stores: the read API
	 * computes it as sum(minus[0]) - sum(minus[1]). */
	const char *from_rows;
	const char *uses; /* the cost_rows column from_rows reads, or NULL */
	const char *minus[2];
};

/* The key columns of cost_rollup_hourly and cost_rollup_daily after the
 * hour (day): every group a rollup row stands for. */
#define ROLLUP_NKEYS 6
extern const char *const rollup_keys[ROLLUP_NKEYS];

/* Every measure the read API answers, in its order (JSON, CSV, CLI). */
#define ROLLUP_NMEASURES 13
extern const struct rollup_measure rollup_measures[ROLLUP_NMEASURES];

/* True for a measure the rollup tables store (not derived). */
static inline bool rollup_measure_stored(const struct rollup_measure *m)
{
	return m->from_rows != 0;
}

/* True for a measure of acquisition cost (recorded or book cost): what a
 * tenant key does not see with hide_cost_from_tenants = on. */
bool rollup_measure_is_cost(const struct rollup_measure *m);

/* Appends the shape as JSON {"keys":[...],"measures":[{name, kind,
 * from_rows, stored}]}: what tests/tools/rollup-shape prints. */
bool rollup_shape_json(struct buf *out);

#endif
