/* The reconciliation report: its parameters, its columns (one table drives
 * JSON, CSV and the CLI's text table), the sentence for each flagged line,
 * and the JSON and CSV renderers. Numbers are PostgreSQL's numeric text,
 * copied through, so money is never rounded here. */
#include "reconcile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "csv.h"
#include "reconcile_file.h"
#include "rollup_params.h"
#include "row.h"
#include "timefmt.h"

const struct reconcile_column reconcile_columns[RC_NCOLS] = {
	[RC_KIND] = { "kind", RC_HIDDEN, NULL },
	[RC_MODEL] = { "model", RC_TEXT, "model" },
	[RC_DATE] = { "date", RC_TEXT, "date" },
	[RC_OUR_UNITS] = { "our_units", RC_NUMBER, "our units" },
	[RC_PROVIDER_UNITS] = { "provider_units", RC_NUMBER, "invoice units" },
	[RC_UNITS_DIFF] = { "units_diff", RC_NUMBER, "units diff" },
	[RC_UNITS_DIFF_PCT] = { "units_diff_pct", RC_NUMBER, "units %" },
	[RC_OUR_COST] = { "our_cost_usd", RC_MONEY, "our cost" },
	[RC_PROVIDER_COST] = { "provider_cost_usd", RC_MONEY, "invoice cost" },
	[RC_COST_DIFF] = { "cost_diff_usd", RC_MONEY, "cost diff" },
	[RC_COST_DIFF_PCT] = { "cost_diff_pct", RC_NUMBER, "cost %" },
	[RC_OUR_RATE] = { "our_rate_usd", RC_MONEY, "our rate" },
	[RC_PROVIDER_RATE] = { "provider_rate_usd", RC_MONEY, "invoice rate" },
	[RC_RATE_RATIO] = { "rate_ratio", RC_NUMBER, NULL },
	[RC_OUR_REQUESTS] = { "our_requests", RC_NUMBER, NULL },
	[RC_PROVIDER_REQUESTS] = { "provider_requests", RC_NUMBER, NULL },
	[RC_PRICING_SOURCES] = { "pricing_sources", RC_TEXT, "pricing source" },
	[RC_PRICING_SOURCES_JSON] = { "pricing_sources", RC_HIDDEN, NULL },
	[RC_CAUSE] = { "cause", RC_TEXT, "cause" },
};

void reconcile_query_init(struct reconcile_query *q)
{
	memset(q, 0, sizeof(*q));
	strcpy(q->threshold_pct, "5");
	strcpy(q->units_agree_pct, "1");
}

void reconcile_query_free(struct reconcile_query *q)
{
	free(q->tenant);
	free(q->project);
	q->tenant = q->project = NULL;
}

/* A whole UTC day in the supported range. */
static int reconcile_query_day(const char *name, const char *v, long long *us, char *err,
			       size_t errlen)
{
	bool date_only;

	if (!timefmt_parse(v, us, &date_only) || *us < ROLLUP_TIME_MIN_US ||
	    *us > ROLLUP_TIME_MAX_US) {
		snprintf(err, errlen,
			 "%s: \"%.*s\" is not a date (YYYY-MM-DD) from 1970-01-01 to 9999-12-31",
			 name, rollup_params_clip(v, 64), v);
		return 400;
	}
	if (timefmt_floor_div(*us, TIMEFMT_US_PER_DAY) * TIMEFMT_US_PER_DAY != *us) {
		snprintf(
			err, errlen,
			"%s: \"%.*s\" is not at midnight UTC; the billing period is whole UTC days",
			name, rollup_params_clip(v, 64), v);
		return 400;
	}
	return 200;
}

static int reconcile_query_pct(const char *name, const char *v, char out[65], char *err,
			       size_t errlen)
{
	const char *why = reconcile_file_number_problem(v, false, false);

	if (why || strlen(v) > 64) {
		snprintf(err, errlen, "%s: \"%.*s\": %s", name, rollup_params_clip(v, 64), v,
			 why ? why : "too long");
		return 400;
	}
	/* Echoed into the JSON report as a number, which may not start "05". */
	while (v[0] == '0' && v[1] >= '0' && v[1] <= '9')
		v++;
	strcpy(out, v);
	return 200;
}

static int reconcile_query_name(const char *name, const char *v, char **out, char *err,
				size_t errlen)
{
	int st = rollup_params_check_text(name, v, err, errlen);

	if (st != 200)
		return st;
	if (strlen(v) > ROLLUP_MAX_VALUE_LEN || !v[0]) {
		snprintf(err, errlen, "%s: expected 1 to %d bytes", name, ROLLUP_MAX_VALUE_LEN);
		return 400;
	}
	free(*out);
	if (!(*out = strdup(v))) {
		snprintf(err, errlen, "out of memory");
		return 503;
	}
	return 200;
}

int reconcile_query_set(struct reconcile_query *q, const char *name, const char *v, char *err,
			size_t errlen)
{
	if (strcmp(name, "provider") == 0) {
		if (!reconcile_file_provider_valid(v)) {
			snprintf(err, errlen,
				 "provider: \"%.*s\": expected a provider name such as openai "
				 "(1-64 of a-z, 0-9, '.', '-', '_')",
				 rollup_params_clip(v, 64), v);
			return 400;
		}
		strcpy(q->provider, v);
		return 200;
	}
	if (strcmp(name, "from") == 0) {
		q->has_from = true;
		return reconcile_query_day("from", v, &q->from_us, err, errlen);
	}
	if (strcmp(name, "to") == 0) {
		q->has_to = true;
		return reconcile_query_day("to", v, &q->to_us, err, errlen);
	}
	if (strcmp(name, "tenant") == 0)
		return reconcile_query_name("tenant", v, &q->tenant, err, errlen);
	if (strcmp(name, "project") == 0)
		return reconcile_query_name("project", v, &q->project, err, errlen);
	if (strcmp(name, "threshold_pct") == 0)
		return reconcile_query_pct(name, v, q->threshold_pct, err, errlen);
	if (strcmp(name, "units_agree_pct") == 0)
		return reconcile_query_pct(name, v, q->units_agree_pct, err, errlen);
	snprintf(err, errlen,
		 "%.*s: unknown parameter; /v1/reconcile takes provider, from, to, tenant, "
		 "project, threshold_pct, units_agree_pct",
		 rollup_params_clip(name, 64), name);
	return 400;
}

int reconcile_query_check(const struct reconcile_query *q, char *err, size_t errlen)
{
	const char *missing = !q->provider[0] ? "provider"
			      : !q->has_from  ? "from"
			      : !q->has_to    ? "to"
					      : NULL;

	if (missing) {
		snprintf(err, errlen, "%s: required", missing);
		return 400;
	}
	if (q->from_us >= q->to_us) {
		snprintf(err, errlen,
			 "from, to: from must be before to (the period is [from, to))");
		return 400;
	}
	return 200;
}

void reconcile_report_free(struct reconcile_report *r)
{
	PQclear(r->res);
	r->res = NULL;
}

const char *reconcile_report_value(const struct reconcile_report *r, int row, enum reconcile_col c)
{
	return PQgetisnull(r->res, row, (int)c) ? NULL : PQgetvalue(r->res, row, (int)c);
}

/* "gpt-4o" or "gpt-4o on 2024-05-01", as JSON-safe text (the caller escapes). */
static void reconcile_what(const struct reconcile_report *r, int row, struct buf *out)
{
	const char *model = reconcile_report_value(r, row, RC_MODEL);
	const char *date = reconcile_report_value(r, row, RC_DATE);

	buf_printf(out, "%s%s%s", model ? model : "rows without a model", date ? " on " : "",
		   date ? date : "");
}

void reconcile_report_note(const struct reconcile_report *r, int row, struct buf *out)
{
	const char *cause = reconcile_report_value(r, row, RC_CAUSE);
	const char *p = r->q->provider;
#define V(c) (reconcile_report_value(r, row, (c)) ? reconcile_report_value(r, row, (c)) : "-")

	if (!cause)
		return;
	reconcile_what(r, row, out);
	if (strcmp(cause, "coverage") == 0 && !reconcile_report_value(r, row, RC_OUR_UNITS)) {
		buf_printf(out,
			   ": the invoice bills %s units (%s USD) that we never recorded. Check "
			   "that every worker using this model records its cost rows (and that "
			   "none were rejected), and that model_id is \"%s/<model>\" or the bare "
			   "name.",
			   V(RC_PROVIDER_UNITS), V(RC_PROVIDER_COST), p);
	} else if (strcmp(cause, "coverage") == 0) {
		buf_printf(out,
			   ": we recorded %s units (%s USD) that the invoice does not bill. Check "
			   "the model name the provider bills under, and whether these calls went "
			   "to another %s account or provider.",
			   V(RC_OUR_UNITS), V(RC_OUR_COST), p);
	} else if (strcmp(cause, "units") == 0) {
		buf_printf(out,
			   ": units differ by %s%% (ours %s, invoice %s). This is a metering gap "
			   "that no rate change closes: check what the workers count (cached or "
			   "retried calls, audio rounding, streaming cut-offs) against the "
			   "provider's usage.",
			   V(RC_UNITS_DIFF_PCT), V(RC_OUR_UNITS), V(RC_PROVIDER_UNITS));
	} else {
		buf_printf(out,
			   ": units agree but cost differs by %s%%. Our rate is %s USD per unit, "
			   "the invoice's %s USD per unit, a ratio of %s (invoice / ours). Check "
			   "the price behind pricing_source %s against the provider's current "
			   "price list.",
			   V(RC_COST_DIFF_PCT), V(RC_OUR_RATE), V(RC_PROVIDER_RATE),
			   V(RC_RATE_RATIO), V(RC_PRICING_SOURCES));
	}
#undef V
}

/* One row's members (without braces). */
static void reconcile_json_row(const struct reconcile_report *r, int row, struct buf *out)
{
	bool first = true;

	for (int c = RC_MODEL; c < RC_NCOLS; c++) {
		const char *v = reconcile_report_value(r, row, (enum reconcile_col)c);
		const struct reconcile_column *col = &reconcile_columns[c];

		if (c == RC_PRICING_SOURCES || (c == RC_DATE && !r->per_day))
			continue;
		if (row == r->nlines && (c == RC_MODEL || c == RC_DATE || c == RC_CAUSE))
			continue;
		buf_printf(out, "%s\"%s\":", first ? "" : ",", col->name);
		first = false;
		if (!v)
			buf_puts(out, "null");
		else if (col->kind == RC_HIDDEN || col->kind == RC_NUMBER)
			buf_puts(out, v); /* numeric text or a JSON array: exact as is */
		else
			row_json_string(out, v);
	}
	if (row < r->nlines) {
		struct buf note;

		buf_printf(out, ",\"flagged\":%s,\"note\":",
			   reconcile_report_value(r, row, RC_CAUSE) ? "true" : "false");
		buf_init(&note, 0);
		reconcile_report_note(r, row, &note);
		row_json_string(out, note.len ? note.data : NULL);
		buf_release(&note);
	}
}

bool reconcile_render_json(const struct reconcile_report *r, struct buf *out)
{
	char t[40];

	buf_puts(out, "{\"provider\":");
	row_json_string(out, r->q->provider);
	timefmt_format(r->q->from_us, t, sizeof(t));
	buf_printf(out, ",\"from\":\"%s\"", t);
	timefmt_format(r->q->to_us, t, sizeof(t));
	buf_printf(out, ",\"to\":\"%s\",\"tenant\":", t);
	row_json_string(out, r->q->tenant);
	buf_puts(out, ",\"project\":");
	row_json_string(out, r->q->project);
	buf_printf(out, ",\"threshold_pct\":%s,\"units_agree_pct\":%s,\"per_day\":%s,\"lines\":[",
		   r->q->threshold_pct, r->q->units_agree_pct, r->per_day ? "true" : "false");
	for (int i = 0; i < r->nlines; i++) {
		buf_puts(out, i ? ",{" : "{");
		reconcile_json_row(r, i, out);
		buf_putc(out, '}');
	}
	buf_puts(out, "],\"totals\":{");
	reconcile_json_row(r, r->nlines, out);
	buf_printf(out, "},\"flagged\":%d}", r->flagged);
	return !out->over;
}

bool reconcile_render_csv(const struct reconcile_report *r, struct buf *out)
{
	for (int c = RC_MODEL; c < RC_NCOLS; c++) {
		if (reconcile_columns[c].kind == RC_HIDDEN || (c == RC_DATE && !r->per_day))
			continue;
		buf_printf(out, "%s,", reconcile_columns[c].name);
	}
	buf_puts(out, "flagged,note\r\n");
	for (int i = 0; i < r->nlines; i++) {
		struct buf note;

		for (int c = RC_MODEL; c < RC_NCOLS; c++) {
			if (reconcile_columns[c].kind == RC_HIDDEN || (c == RC_DATE && !r->per_day))
				continue;
			csv_field(out, reconcile_report_value(r, i, (enum reconcile_col)c),
				  reconcile_columns[c].kind == RC_TEXT);
			buf_putc(out, ',');
		}
		buf_puts(out, reconcile_report_value(r, i, RC_CAUSE) ? "true," : "false,");
		buf_init(&note, 0);
		reconcile_report_note(r, i, &note);
		csv_field(out, note.data, true);
		buf_release(&note);
		buf_puts(out, "\r\n");
	}
	return !out->over;
}
