/* The reconciliation query: one parameterized statement that takes the usage
 * file as arrays, sums our side from cost_rollup_hourly (pricing_source from
 * cost_rows), and computes every difference, percentage, rate and cause in
 * numeric. One statement, no session state: it works through pgbouncer's
 * transaction mode. */
#ifndef VGC_RECONCILE_SQL_H
#define VGC_RECONCILE_SQL_H

#include <libpq-fe.h>
#include <stddef.h>

#include "reconcile.h"
#include "reconcile_file.h"

/* Runs the reconciliation of f against our rows for q on conn (blocking) and
 * fills out (reconcile_report_free). Returns 200, or 500/503 (as db_classify
 * says) with err holding the database's text: for a log, never a client. */
int reconcile_sql_run(PGconn *conn, const struct reconcile_query *q, const struct reconcile_file *f,
		      struct reconcile_report *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
