/* GET /v1/billing/usage: revenue, cost and margin per tenant, VoiceGateway's
 * shape, from the rollup tables and the re-rating adjustments. Rendering
 * only: the SQL is rollup_sql_usage; money is copied as PostgreSQL's text. */
#include "billing_usage.h"

#include <stdio.h>
#include <string.h>

#include "csv.h"
#include "rollup.h"
#include "rollup_sql.h"
#include "row.h"
#include "timefmt.h"

/* The usage columns after g (see rollup_sql_usage): name, whether it is
 * acquisition cost (hidden from tenant keys), whether it is money. */
static const struct {
	const char *name;
	bool cost, money;
} billing_usage_cols[] = {
	{ "tenant_id", false, false },	   { "requests", false, false },
	{ "cost_usd", true, true },	   { "rated_usd", false, true },
	{ "margin_usd", true, true },	   { "margin_pct", true, true },
	{ "book_cost_usd", true, true },   { "adjustments_usd", false, true },
	{ "unpriced_rows", false, false }, { "unrated_rows", false, false },
};
#define BILLING_USAGE_NCOLS (int)(sizeof(billing_usage_cols) / sizeof(billing_usage_cols[0]))

static const char *const billing_usage_line_cols[] = {
	"modality",	"model_id", "provider",	 "requests",   "input_units",
	"output_units", "cost_usd", "rated_usd", "margin_usd",
};

static const char *cell(const PGresult *res, int r, int c)
{
	return PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c);
}

/* One tenant (or the totals, from the tenant's count on: skip_name). */
static void billing_usage_object(const struct rollup_query *q, const PGresult *res, int r,
				 bool skip_name, struct buf *out)
{
	int n = 0;

	buf_putc(out, '{');
	for (int c = skip_name ? 1 : 0; c < BILLING_USAGE_NCOLS; c++) {
		const char *v = cell(res, r, c + 1);

		if (q->hide_cost && billing_usage_cols[c].cost)
			continue;
		buf_printf(out, "%s\"%s\":", n++ ? "," : "", billing_usage_cols[c].name);
		if (c == 0 || billing_usage_cols[c].money || !v)
			row_json_string(out, v); /* a name or exact decimal text, or null */
		else
			buf_puts(out, v);
	}
	buf_putc(out, '}');
}

static void billing_usage_lines(const struct rollup_query *q, const PGresult *res, struct buf *out)
{
	buf_puts(out, ",\"line_items\":[");
	for (int r = 0; r < PQntuples(res); r++) {
		int n = 0;

		buf_puts(out, r ? ",{" : "{");
		for (int c = 0; c < 9; c++) {
			const char *v = cell(res, r, c);

			if (q->hide_cost && (c == 6 || c == 8))
				continue; /* cost_usd, margin_usd */
			buf_printf(out, "%s\"%s\":", n++ ? "," : "", billing_usage_line_cols[c]);
			if (c < 3 || c >= 6 || !v)
				row_json_string(out, v);
			else
				buf_puts(out, v); /* a count or units: a JSON number */
		}
		buf_putc(out, '}');
	}
	buf_putc(out, ']');
}

static void billing_usage_json(const struct rollup_query *q, const PGresult *res,
			       const PGresult *lines, struct buf *out)
{
	const struct rollup_filter *tf = &q->filters[ROLLUP_COL_TENANT];
	int n = PQntuples(res), first = 1;
	char t[40];

	buf_puts(out, "{\"period\":");
	row_json_string(out, q->period[0] ? q->period : "custom");
	buf_puts(out, ",\"start\":");
	if (q->has_from) {
		timefmt_format(q->from_us, t, sizeof(t));
		row_json_string(out, t);
	} else {
		buf_puts(out, "null");
	}
	timefmt_format(q->to_us, t, sizeof(t));
	buf_printf(out, ",\"end\":\"%s\",\"tenant\":", t);
	row_json_string(out, tf->n == 1 ? tf->values[0] : NULL);
	buf_puts(out, ",\"tenants\":[");
	for (int r = 0; r < n; r++) {
		if (PQgetvalue(res, r, 0)[0] != '0')
			continue;
		if (!first)
			buf_putc(out, ',');
		first = 0;
		billing_usage_object(q, res, r, false, out);
	}
	buf_puts(out, "],\"totals\":");
	for (int r = 0; r < n; r++)
		if (PQgetvalue(res, r, 0)[0] != '0')
			billing_usage_object(q, res, r, true, out);
	if (lines)
		billing_usage_lines(q, lines, out);
	buf_putc(out, '}');
}

static void billing_usage_csv(const struct rollup_query *q, const PGresult *res, struct buf *out)
{
	int n = 0;

	for (int c = 0; c < BILLING_USAGE_NCOLS; c++)
		if (!(q->hide_cost && billing_usage_cols[c].cost))
			buf_printf(out, "%s%s", n++ ? "," : "", billing_usage_cols[c].name);
	buf_puts(out, "\r\n");
	for (int r = 0; r < PQntuples(res); r++) {
		if (PQgetvalue(res, r, 0)[0] != '0')
			continue; /* the totals row */
		n = 0;
		for (int c = 0; c < BILLING_USAGE_NCOLS; c++) {
			if (q->hide_cost && billing_usage_cols[c].cost)
				continue;
			buf_puts(out, n++ ? "," : "");
			csv_field(out, cell(res, r, c + 1), c == 0);
		}
		buf_puts(out, "\r\n");
	}
}

int billing_usage_answer(PGconn *conn, const struct rollup_query *q, struct buf *out, char *state,
			 char *err, size_t errlen)
{
	struct rollup_sql sql;
	PGresult *res, *lines = NULL;
	int status = 503;
	bool built = rollup_sql_usage(q, &sql);

	res = built ? rollup_exec(conn, &sql, &status, state, err, errlen) : NULL;
	if (!built)
		snprintf(err, errlen, "out of memory");
	rollup_sql_free(&sql);
	if (!res)
		return status;
	if (!q->csv && q->filters[ROLLUP_COL_TENANT].n) {
		built = rollup_sql_usage_lines(q, &sql);
		lines = built ? rollup_exec(conn, &sql, &status, state, err, errlen) : NULL;
		if (!built)
			snprintf(err, errlen, "out of memory");
		rollup_sql_free(&sql);
		if (!lines) {
			PQclear(res);
			return status;
		}
	}
	if (q->csv)
		billing_usage_csv(q, res, out);
	else
		billing_usage_json(q, res, lines, out);
	PQclear(res);
	PQclear(lines);
	if (!out->over)
		return 200;
	snprintf(err, errlen, "out of memory rendering the answer");
	return 503;
}
