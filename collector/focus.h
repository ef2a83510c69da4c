/* The FOCUS 1.2 cost export of one billing period (a UTC month): its lines,
 * from the rollups for an open month or from the lines frozen at the close for
 * a closed one, rendered as CSV, and the tie-out manifest. Shared by
 * GET /v1/export/focus[/manifest] and `vgcollector export focus`. */
#ifndef VGC_FOCUS_H
#define VGC_FOCUS_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "rollup_query.h"
#include "rollup_sql.h"

/* Where the CSV goes, piece by piece as it is read: write copies data and
 * returns false to stop the export (the client went away, a full disk). */
struct focus_sink {
	bool (*write)(void *arg, const char *data, size_t len);
	void *arg;
};

/* The status of an export its sink stopped. */
#define FOCUS_STOPPED 499

/* Lines read per FETCH when focus_params.fetch_rows is 0. */
#define FOCUS_FETCH_ROWS_DEFAULT 1000

/* What to export. q carries the tenant and project filters (the key's scope
 * and tenant=); its other fields are unused. */
struct focus_params {
	long long month_us;	/* the month's first instant, UTC */
	const char *account_id; /* BillingAccountId and BillingAccountName of an open
				 * month (a closed one keeps the one it closed with) */
	const struct rollup_query *q;
	bool manifest_only;	       /* the CSV is not wanted: a closed month's whole export
					* answers from the manifest stored at its close */
	const struct focus_sink *sink; /* NULL: the CSV is only counted and hashed */
	int fetch_rows;		       /* lines per FETCH; 0: the default */
};

/* The export's figures (its CSV went to the sink), owned by the caller:
 * focus_result_free. */
struct focus_result {
	long long rows;
	char *billed_cost;     /* sum of BilledCost over every line */
	char *usage_cost;      /* ... over the lines of the month's own days */
	char *correction_cost; /* ... over the Correction lines */
	char *rollup_cost_usd; /* /v1/rollups' month total (closed: as at the close) */
	bool ties_out;	       /* usage_cost equals rollup_cost_usd, digit for digit */
	bool closed;
	char closed_at[40]; /* RFC 3339, when closed */
	char sha256[65];    /* of the CSV's bytes, in hex */
};

/* "YYYY-MM" into the month's first instant; false unless exactly that form
 * with a month 01-12 and a year 1970-9999. */
bool focus_period_parse(const char *s, long long *month_us);

/* The first instant of the month after the one holding us. */
long long focus_next_month(long long month_us);

/* "YYYY-MM" of the month holding us; out needs 8 bytes. */
void focus_period_name(long long month_us, char *out, size_t outlen);

/* The same inside the caller's transaction (the close, which stores the
 * manifest of what it froze). */
int focus_export_tx(PGconn *conn, const struct focus_params *p, struct focus_result *out, char *err,
		    size_t errlen) __attribute__((warn_unused_result));

/* Runs the export in one read-only snapshot, its CSV read through a cursor
 * and written to p->sink fetch_rows lines at a time. Returns 200, FOCUS_STOPPED
 * when the sink stopped it, or 503/500 with err (which may hold the database's
 * text: log it, do not show it). Nothing reaches the sink before the first
 * lines were read. */
int focus_export(PGconn *conn, const struct focus_params *p, struct focus_result *out, char *err,
		 size_t errlen) __attribute__((warn_unused_result));

/* The manifest JSON of an export: generated_at is the close time for a
 * closed month (so it never changes), else now_us. */
void focus_manifest_render(const struct focus_params *p, const struct focus_result *r,
			   long long now_us, struct buf *out);

void focus_result_free(struct focus_result *r);

/* Appends to s the statement head "WITH ... lines AS (...)" whose lines are
 * the month's export as it would be billed now, were the month open: its own
 * days' usage from the rollups and, when cfrom_us < month_us, the Correction
 * lines for the closed days in [cfrom_us, month_us) (rollups minus what is
 * already billed). Used by the export and by the close, which freezes them. */
bool focus_sql_lines(const struct focus_params *p, long long cfrom_us, struct rollup_sql *s);

/* The start of the run of closed months that ends just before month_us (the
 * months whose late rows this month bills), or month_us when the month
 * before is open. Sets *closed, closed_at (40 bytes), account (256 bytes,
 * the billing account frozen at the close) and *rated (its lines carry the
 * rated price: closed after x_RatedPrice existed) for the month itself. */
bool focus_closed_run(PGconn *conn, long long month_us, long long *cfrom_us, bool *closed,
		      char *closed_at, char *account, bool *rated, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* SQL helpers for statements over the lines: a parameter (a copy of v) and
 * its placeholder "$n::cast"; " AND (...)" for q's tenant and project filters. */
bool focus_sql_param(struct rollup_sql *s, const char *v, const char *cast);
bool focus_sql_filters(struct rollup_sql *s, const struct rollup_query *q);

#endif
