/* The read API's query model, shared by GET /v1/rollups, /v1/costs, /v1/rows
 * and `vgcollector rollup`: parameters parsed and validated into a struct.
 * Pure: no I/O, no clock of its own, so the HTTP path and the CLI agree. */
#ifndef VGC_ROLLUP_QUERY_H
#define VGC_ROLLUP_QUERY_H

#include <stdbool.h>
#include <stddef.h>

#include "rollup_params.h"

/* One filter: the row matches when its column equals any value. A NULL value
 * (written as an empty parameter, `tenant=`) selects rows where the column is
 * NULL, i.e. unattributed. n == 0: no filter. */
struct rollup_filter {
	int n;
	char *values[ROLLUP_MAX_VALUES]; /* owned; NULL entries mean SQL NULL */
};

/* A parsed, validated query. Times are epoch microseconds, UTC, half-open
 * [from, to). Owns its strings: free with rollup_query_free. */
struct rollup_query {
	enum rollup_kind kind;
	long long from_us, to_us;
	bool has_from, has_to;
	enum rollup_granularity granularity;
	int ncols; /* group_by, in the order given */
	enum rollup_col cols[ROLLUP_NGROUP];
	struct rollup_filter filters[ROLLUP_NCOLS];
	bool csv;	   /* format=csv (or Accept: text/csv) */
	bool format_given; /* format= was present: Accept is ignored */
	bool csv_raw;	   /* csv_raw=1: text cells are not neutralised */
	/* Set by the handler, not a parameter: the reader is a tenant key that
	 * may not see acquisition cost (cost, book cost, margin). */
	bool hide_cost;

	/* /v1/costs */
	char period[8]; /* today, week, month, all, or "" with start/end */

	/* /v1/rows */
	int limit;
	bool has_cursor;
	long long cursor_ts_us;
	char *cursor_id; /* owned */
};

/* Limits and the clock, given by the caller so parsing stays pure. */
struct rollup_limits {
	int max_periods; /* max_rollup_periods: most result periods a rollup may span */
	double now;	 /* epoch seconds: defaults and /v1/costs' rolling windows */
};

void rollup_query_init(struct rollup_query *q, enum rollup_kind kind);
void rollup_query_free(struct rollup_query *q);

/* Parses and validates params (from rollup_params_split) for q->kind (set by
 * rollup_query_init). Every name and value must be UTF-8 without control
 * characters (C0, DEL, C1) and every instant within ROLLUP_TIME_MIN_US..
 * ROLLUP_TIME_MAX_US. Returns 200, or 400 with a message in err that names the
 * parameter, or 503 when out of memory. */
int rollup_query_parse(struct rollup_query *q, const struct rollup_param *params, int nparams,
		       const struct rollup_limits *lim, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
