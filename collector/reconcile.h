/* Reconciliation against a provider's invoice: the query (provider, period,
 * scope, thresholds), the report's columns, and its JSON and CSV forms with a
 * sentence per flagged line. Shared by `vgcollector reconcile` and POST
 * /v1/reconcile, so both give the same report. The SQL is reconcile_sql.c. */
#ifndef VGC_RECONCILE_H
#define VGC_RECONCILE_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* What to reconcile. Owns its strings: reconcile_query_free. */
struct reconcile_query {
	char provider[65];
	long long from_us, to_us; /* [from, to), whole UTC days */
	bool has_from, has_to;
	char *tenant;		  /* NULL: every tenant */
	char *project;		  /* NULL: every project */
	char threshold_pct[65];	  /* cost gap (percent of ours) that flags `rate` */
	char units_agree_pct[65]; /* units gap (percent of ours) that flags `units` */
};

void reconcile_query_init(struct reconcile_query *q);
void reconcile_query_free(struct reconcile_query *q);

/* Sets parameter name (provider, from, to, tenant, project, threshold_pct,
 * units_agree_pct) from value. Returns 200, 400 with err naming the
 * parameter, or 503 when out of memory. */
int reconcile_query_set(struct reconcile_query *q, const char *name, const char *value, char *err,
			size_t errlen) __attribute__((warn_unused_result));
/* Checks that provider, from and to were given and from < to: 200 or 400. */
int reconcile_query_check(const struct reconcile_query *q, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* The report's columns, in the order reconcile_sql returns them. */
enum reconcile_col {
	RC_KIND = 0, /* "0" for a line, "1" for the totals (the last row) */
	RC_MODEL,
	RC_DATE,
	RC_OUR_UNITS,
	RC_PROVIDER_UNITS,
	RC_UNITS_DIFF,
	RC_UNITS_DIFF_PCT,
	RC_OUR_COST,
	RC_PROVIDER_COST,
	RC_COST_DIFF,
	RC_COST_DIFF_PCT,
	RC_OUR_RATE,
	RC_PROVIDER_RATE,
	RC_RATE_RATIO,
	RC_OUR_REQUESTS,
	RC_PROVIDER_REQUESTS,
	RC_PRICING_SOURCES,	 /* "catalog, override" */
	RC_PRICING_SOURCES_JSON, /* ["catalog","override"] */
	RC_CAUSE,		 /* coverage, units, rate or NULL */
	RC_NCOLS
};

enum reconcile_kind { RC_TEXT, RC_MONEY, RC_NUMBER, RC_HIDDEN };

/* One column: its name in JSON and CSV, how it is written, its text-table header. */
struct reconcile_column {
	const char *name;
	enum reconcile_kind kind; /* RC_MONEY: a decimal string in JSON */
	const char *header;	  /* NULL: not in the text table */
};
extern const struct reconcile_column reconcile_columns[RC_NCOLS];

/* A finished report: the lines, then the totals row. */
struct reconcile_report {
	const struct reconcile_query *q; /* not owned */
	PGresult *res;			 /* owned */
	bool per_day;
	int nlines;
	int flagged;
};

void reconcile_report_free(struct reconcile_report *r);
/* A cell's text, NULL for SQL NULL. Row nlines is the totals. */
const char *reconcile_report_value(const struct reconcile_report *r, int row, enum reconcile_col c);
/* Appends line row's sentence: what to check (only for a flagged line). */
void reconcile_report_note(const struct reconcile_report *r, int row, struct buf *out);

/* {"provider","from","to",...,"lines":[...],"totals":{...},"flagged":N} */
bool reconcile_render_json(const struct reconcile_report *r, struct buf *out);
/* A header, then one line per report line (no totals), as rollup CSV: CRLF,
 * RFC 4180 quoting, a text cell a spreadsheet would run neutralised by a '. */
bool reconcile_render_csv(const struct reconcile_report *r, struct buf *out);

#endif
