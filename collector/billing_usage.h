/* GET /v1/billing/usage: revenue, recorded and book cost, adjustments and
 * margin per tenant, from the rollup tables (see billing_usage.c). */
#ifndef VGC_BILLING_USAGE_H
#define VGC_BILLING_USAGE_H

#include <libpq-fe.h>
#include <stddef.h>

#include "buf.h"
#include "rollup_query.h"

/* Runs the usage read for q (kind ROLLUP_KIND_USAGE, scoped) and renders it
 * as JSON or CSV into out; q->hide_cost leaves out every acquisition cost
 * field. Returns 200, or a status with err (the database's words: log only)
 * and the failed statement's SQLSTATE in state (rollup_exec; may be NULL). */
int billing_usage_answer(PGconn *conn, const struct rollup_query *q, struct buf *out, char *state,
			 char *err, size_t errlen);

#endif
