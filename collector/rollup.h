/* The read API: GET /v1/rollups, /v1/costs and /v1/rows. Handlers run on the
 * loop and hand the query to a pool job; the worker runs the SQL built by
 * rollup_sql.c and renders the answer. The rendering and execution helpers
 * are shared with `vgcollector rollup` (cli_rollup.c). */
#ifndef VGC_ROLLUP_H
#define VGC_ROLLUP_H

#include <libpq-fe.h>

#include "buf.h"
#include "rollup_query.h"
#include "rollup_sql.h"
#include "vgcollector.h"

void rollup_handle_rollups(struct http_req *hr);
void rollup_handle_costs(struct http_req *hr);
void rollup_handle_unpriced(struct http_req *hr);
void rollup_handle_rows(struct http_req *hr);
/* GET /v1/billing/usage (billing_usage.c renders it). */
void rollup_handle_usage(struct http_req *hr);

/* Runs s on conn (blocking). Returns the result (caller PQclears) or NULL with
 * the database's text in err, *status from db_classify (503 when the fault
 * may pass: connection lost, shutdown, ...; else 500) and the statement's
 * SQLSTATE in state (db_result_sqlstate; state may be NULL). */
PGresult *rollup_exec(PGconn *conn, const struct rollup_sql *s, int *status, char *state, char *err,
		      size_t errlen);

/* Runs a rollup query (rollup_sql_rollups' columns, the totals row last).
 * Returns the result (caller PQclears) or NULL with err, *status and state
 * as rollup_exec. */
PGresult *rollup_fetch(PGconn *conn, const struct rollup_query *q, int *status, char *state,
		       char *err, size_t errlen);

/* Appends the CSV of a rollup_fetch result: a header, then one line per row,
 * without the totals; NULL is an empty field. Unless q->csv_raw, a text cell
 * starting with =, +, -, @, tab or CR is neutralised (OWASP): a ' is put in
 * front and the cell quoted, so a spreadsheet shows it instead of running it.
 * Numbers and periods are ours and are never touched. */
bool rollup_render_csv(const struct rollup_query *q, const PGresult *res, struct buf *out);

/* Runs q (any kind) on conn and appends the whole answer, JSON or, for a
 * rollup with q->csv, CSV. Returns 200, or 500/503 with err, which may hold
 * the database's text: for a log or an operator, never for an HTTP client;
 * state gets the failed statement's SQLSTATE as rollup_exec ("" when none
 * failed; may be NULL). */
int rollup_answer(PGconn *conn, const struct rollup_query *q, struct buf *out, char *state,
		  char *err, size_t errlen) __attribute__((warn_unused_result));

#endif
