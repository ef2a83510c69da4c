/* The read API's parameterized SQL, built from a parsed struct rollup_query;
 * shared by the HTTP handlers (rollup.c) and `vgcollector rollup`. Pure: no
 * libpq calls. */
#ifndef VGC_ROLLUP_SQL_H
#define VGC_ROLLUP_SQL_H

#include <stdbool.h>

#include "buf.h"
#include "rollup_shape.h"
#include "rollup_query.h"

/* Parameterized SQL. The text comes only from fixed fragments chosen by the
 * parsed enums; every value travels in params (owned by the rollup_sql,
 * all text format). Free with rollup_sql_free. */
#define ROLLUP_SQL_MAX_PARAMS 16
struct rollup_sql {
	struct buf text;
	int nparams;
	char *params[ROLLUP_SQL_MAX_PARAMS];
};

/* Result columns of rollup_sql_rollups: 0 is 1 on the one totals row (last)
 * and 0 on the others; 1 the period (NULL for total); then q->cols in order;
 * then ROLLUP_NMEASURES measures in the order of rollup_measures[]. */
#define ROLLUP_COL0_GROUPS 2 /* the first group column */

bool rollup_sql_rollups(const struct rollup_query *q, struct rollup_sql *out)
	__attribute__((warn_unused_result));
/* /v1/costs: columns kind ('p', 'm', 'j' or 't' for total), name, requests, cost. */
bool rollup_sql_costs(const struct rollup_query *q, struct rollup_sql *out)
	__attribute__((warn_unused_result));
/* /v1/rows: columns json (one object per row), cursor ts (epoch us), id. Asks
 * for limit + 1 rows so the caller knows whether there is a next page. */
bool rollup_sql_rows(const struct rollup_query *q, struct rollup_sql *out)
	__attribute__((warn_unused_result));
/* /v1/billing/unpriced: the rows the price book did not price, per
 * (provider, model_id, modality): columns those three, rows, cost_usd (text),
 * first and last timestamp (RFC 3339 text); most rows first. */
bool rollup_sql_unpriced(const struct rollup_query *q, struct rollup_sql *out)
	__attribute__((warn_unused_result));
/* /v1/billing/usage, per tenant from the rollups plus the re-rating
 * adjustments whose UTC day starts in the range: columns g (1 on the totals
 * row, last), tenant_id, requests, cost_usd, rated_usd, margin_usd,
 * margin_pct (NULL when revenue is 0), book_cost_usd, adjustments_usd,
 * unpriced_rows, unrated_rows. */
bool rollup_sql_usage(const struct rollup_query *q, struct rollup_sql *out)
	__attribute__((warn_unused_result));
/* Its line items: modality, model_id, provider, requests, input_units,
 * output_units, cost_usd, rated_usd, margin_usd. */
bool rollup_sql_usage_lines(const struct rollup_query *q, struct rollup_sql *out)
	__attribute__((warn_unused_result));
void rollup_sql_free(struct rollup_sql *s);

#endif
