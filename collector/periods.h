/* Billing periods (UTC calendar months): each month's state and the evidence
 * that it is complete, closing once (freezing its FOCUS lines) and reopening.
 * The store behind GET /v1/periods, POST /v1/periods/{month}/close|reopen and
 * `vgcollector periods`. All calls block: run them on a pool worker or in the
 * CLI. */
#ifndef VGC_PERIODS_H
#define VGC_PERIODS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "rollup_query.h"

/* Appends {"periods":[...]} to out: every month that holds rows or is
 * closed, oldest first, seen through q's tenant and project filters. A worker
 * has reported for a month when its last heartbeat came after the month's
 * end plus grace_s with an empty backlog. Returns 200, else a status and
 * err (database text: log it). */
int periods_list(PGconn *conn, const struct rollup_query *q, int grace_s, struct buf *out,
		 char *err, size_t errlen) __attribute__((warn_unused_result));

/* Closes the month starting at month_us, once, as `by`: 200 with the
 * period's JSON in out; 409 with err naming why (already closed, not yet
 * ended, workers that have not reported, unless force); else a status and
 * err (database text). Safe on several collectors at once. */
int periods_close(PGconn *conn, long long month_us, bool force, const char *by, int grace_s,
		  const char *account_id, struct buf *out, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Reopens a closed month (its frozen lines are dropped), as `by`: 200; 409
 * when it is not closed or a later month is; logged and recorded. */
int periods_reopen(PGconn *conn, long long month_us, const char *by, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The late rows of every closed month (rows in the rollups that arrived
 * after its close); false with err on a database error. */
bool periods_late_rows(PGconn *conn, long long *late, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
