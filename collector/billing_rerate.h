/* Re-rating: what the current rate card would bill for stored rows, against
 * what they were billed, as audited adjustments; the rows never change.
 * Shared by POST /v1/billing/rerate, GET /v1/billing/rerates and `vgcollector
 * prices rerate`. */
#ifndef VGC_BILLING_RERATE_H
#define VGC_BILLING_RERATE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Longest reason and Idempotency-Key kept. */
#define BILLING_RERATE_MAX_TEXT 1024

struct billing_rerate {
	long long from_us, to_us; /* [from, to) over the rows' timestamps */
	char *tenant;		  /* NULL: every tenant (owned) */
	bool dry_run;
	char *reason; /* why (owned, may be NULL) */
	char *idem;   /* the Idempotency-Key (owned, may be NULL) */
	char ran_by[64];
};

void billing_rerate_init(struct billing_rerate *r);
void billing_rerate_release(struct billing_rerate *r);

/* Sets from/to from text (YYYY-MM-DD or RFC 3339); 400 naming the field. */
int billing_rerate_range(struct billing_rerate *r, const char *from, const char *to, char *err,
			 size_t errlen) __attribute__((warn_unused_result));
/* Fills r from a JSON body {"from","to","tenant"?,"dry_run"?,"reason"?};
 * dry_run defaults to true. 400 naming the bad member. */
int billing_rerate_parse(struct billing_rerate *r, const char *body, size_t len, char *err,
			 size_t errlen) __attribute__((warn_unused_result));

/* Runs r in one transaction and writes {"run","dry_run","tenants":[{"tenant_id",
 * "rows","delta_usd"}]} to out. A commit whose Idempotency-Key was seen
 * answers that run's answer again and adds nothing (409 when its range or
 * tenant differ). Returns 200, 409 with err, or a 5xx with the database's
 * words in err (log only). */
int billing_rerate_run(PGconn *conn, const struct billing_rerate *r, struct buf *out, char *err,
		       size_t errlen);

/* {"runs":[...]} newest first, at most limit. */
int billing_rerate_list(PGconn *conn, int limit, struct buf *out, char *err, size_t errlen);

#endif
