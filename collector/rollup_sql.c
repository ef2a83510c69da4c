/* The read API's SQL. The text is assembled only from fixed fragments chosen
 * by the parsed query's enums; every value a peer sent travels as a
 * PQexecParams parameter. */
#include "rollup_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "row_fields.h"
#include "timefmt.h"

/* Columns of cost_rows and cost_rollup_hourly, indexed by enum rollup_col. */
static const char *const rollup_sql_cols[ROLLUP_NCOLS] = {
	"project", "agent_id", "tenant_id", "modality", "provider", "model_id", "session_id",
};

const char *const rollup_sql_measures[ROLLUP_NMEASURES] = {
	"requests",	   "errors",	  "fallbacks",	  "cost_usd",
	"rated_price_usd", "input_units", "output_units", "cached_input_units",
};

bool rollup_sql_measure_is_count(int i)
{
	return i < 3;
}

bool rollup_sql_measure_is_money(int i)
{
	return i == 3 || i == 4;
}

void rollup_sql_free(struct rollup_sql *s)
{
	for (int i = 0; i < s->nparams; i++)
		free(s->params[i]);
	s->nparams = 0;
	buf_release(&s->text);
}

/* Adds a parameter (taking ownership of v) and writes its placeholder. */
static bool rollup_sql_param(struct rollup_sql *s, char *v, const char *cast)
{
	if (!v || s->nparams == ROLLUP_SQL_MAX_PARAMS) {
		free(v);
		return false;
	}
	s->params[s->nparams++] = v;
	return buf_printf(&s->text, "$%d::%s", s->nparams, cast);
}

static char *rollup_sql_time(long long us)
{
	char t[40];

	timefmt_format(us, t, sizeof(t));
	return strdup(t);
}

/* A PostgreSQL array literal of the non-NULL values: {"a","b\"c"}. */
static char *rollup_sql_array(const struct rollup_filter *f)
{
	struct buf b;

	buf_init(&b, 0);
	buf_putc(&b, '{');
	for (int i = 0, n = 0; i < f->n; i++) {
		if (!f->values[i])
			continue;
		if (n++)
			buf_putc(&b, ',');
		buf_putc(&b, '"');
		for (const char *p = f->values[i]; *p; p++) {
			if (*p == '"' || *p == '\\')
				buf_putc(&b, '\\');
			buf_putc(&b, *p);
		}
		buf_putc(&b, '"');
	}
	buf_putc(&b, '}');
	if (b.over) {
		buf_release(&b);
		return NULL;
	}
	return buf_steal(&b, NULL);
}

/* WHERE over time (timecol) and every filter. */
static bool rollup_sql_where(const struct rollup_query *q, struct rollup_sql *s,
			     const char *timecol)
{
	bool ok = buf_puts(&s->text, " WHERE true");

	if (q->has_from)
		ok = ok && buf_printf(&s->text, " AND %s >= ", timecol) &&
		     rollup_sql_param(s, rollup_sql_time(q->from_us), "timestamptz");
	if (q->has_to)
		ok = ok && buf_printf(&s->text, " AND %s < ", timecol) &&
		     rollup_sql_param(s, rollup_sql_time(q->to_us), "timestamptz");
	for (int c = 0; ok && c < ROLLUP_NCOLS; c++) {
		const struct rollup_filter *f = &q->filters[c];
		bool has_null = false, has_value = false;

		for (int i = 0; i < f->n; i++) {
			if (f->values[i])
				has_value = true;
			else
				has_null = true;
		}
		if (!f->n)
			continue;
		ok = buf_puts(&s->text, " AND (");
		if (has_value)
			ok = ok && buf_printf(&s->text, "%s = ANY(", rollup_sql_cols[c]) &&
			     rollup_sql_param(s, rollup_sql_array(f), "text[]") &&
			     buf_putc(&s->text, ')');
		if (has_null)
			ok = ok && buf_printf(&s->text, "%s%s IS NULL", has_value ? " OR " : "",
					      rollup_sql_cols[c]);
		ok = ok && buf_putc(&s->text, ')');
	}
	return ok;
}

/* Starts an empty statement in out; free it with rollup_sql_free whatever happens. */
static struct buf *rollup_sql_begin(struct rollup_sql *out)
{
	memset(out, 0, sizeof(*out));
	buf_init(&out->text, 0);
	return &out->text;
}

static const char rollup_sql_period_fmt[] = "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'";

/* One statement for rows and totals: GROUPING SETS ((period, cols...), ()).
 * Grouping on the timestamp and formatting after aggregation keeps the sort
 * cheap; for total the period is a constant NULL, which still lets
 * GROUPING() tell the totals row apart (and gives no data rows on no data). */
bool rollup_sql_rollups(const struct rollup_query *q, struct rollup_sql *out)
{
	struct buf *t = rollup_sql_begin(out);
	char period[80];
	bool ok;

	if (q->granularity == ROLLUP_TOTAL)
		snprintf(period, sizeof(period), "NULL::timestamp");
	else if (q->granularity == ROLLUP_HOUR)
		snprintf(period, sizeof(period), "(hour AT TIME ZONE 'UTC')");
	else
		snprintf(period, sizeof(period), "date_trunc('%s', hour AT TIME ZONE 'UTC')",
			 rollup_params_granularity_name(q->granularity));
	ok = buf_printf(t, "SELECT GROUPING(%s), to_char(%s, %s)", period, period,
			rollup_sql_period_fmt);
	for (int i = 0; i < q->ncols; i++)
		ok = ok && buf_printf(t, ", %s", rollup_sql_cols[q->cols[i]]);
	for (int i = 0; i < ROLLUP_NMEASURES; i++)
		ok = ok && buf_printf(t, ", coalesce(sum(%s), 0)", rollup_sql_measures[i]);
	ok = ok && buf_puts(t, " FROM cost_rollup_hourly") && rollup_sql_where(q, out, "hour") &&
	     buf_printf(t, " GROUP BY GROUPING SETS ((%s", period);
	for (int i = 0; i < q->ncols; i++)
		ok = ok && buf_printf(t, ", %s", rollup_sql_cols[q->cols[i]]);
	ok = ok && buf_puts(t, "), ()) ORDER BY 1, 2");
	for (int i = 0; i < q->ncols; i++)
		ok = ok && buf_printf(t, ", %d", i + 3);
	return ok && !t->over;
}

bool rollup_sql_costs(const struct rollup_query *q, struct rollup_sql *out)
{
	struct buf *t = rollup_sql_begin(out);
	bool ok;

	ok = buf_puts(t, "SELECT CASE WHEN GROUPING(provider) = 0 THEN 'p'"
			 " WHEN GROUPING(model_id) = 0 THEN 'm'"
			 " WHEN GROUPING(project) = 0 THEN 'j' ELSE 't' END,"
			 " CASE WHEN GROUPING(provider) = 0 THEN provider"
			 " WHEN GROUPING(model_id) = 0 THEN model_id ELSE project END,"
			 " coalesce(sum(requests), 0), coalesce(sum(cost_usd), 0)"
			 " FROM cost_rollup_hourly") &&
	     rollup_sql_where(q, out, "hour") &&
	     buf_puts(t, " GROUP BY GROUPING SETS ((provider), (model_id), (project), ())"
			 " ORDER BY 1, 2");
	return ok && !t->over;
}

/* /v1/rows' JSON object, one pair per field of the row's table (the wire's
 * names; times as epoch seconds, money as decimal strings), plus received_at. */
static bool rollup_sql_row_object(struct buf *t)
{
	bool ok = buf_puts(t, "json_build_object(");

	for (int i = 0; i < ROW_NFIELDS && ok; i++) {
		const struct row_field *f = &row_fields[i];

		ok = buf_printf(t, "%s'%s', ", i ? ", " : "", f->name);
		if (f->kind == ROW_KIND_TIME)
			ok = ok && buf_printf(t, "extract(epoch FROM %s)", f->column);
		else
			ok = ok && buf_printf(t, "%s%s", f->column, f->money ? "::text" : "");
	}
	return ok && buf_puts(t, ", 'received_at', to_char(received_at AT TIME ZONE 'UTC',"
				 " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'))::text");
}

bool rollup_sql_rows(const struct rollup_query *q, struct rollup_sql *out)
{
	struct buf *t = rollup_sql_begin(out);
	char lim[16];
	bool ok;

	ok = buf_puts(t, "SELECT ") && rollup_sql_row_object(t) &&
	     buf_puts(t, ", (extract(epoch FROM ts) * 1000000)::bigint, id FROM cost_rows") &&
	     rollup_sql_where(q, out, "ts");
	if (ok && q->has_cursor) {
		char ts[24];
		snprintf(ts, sizeof(ts), "%lld", q->cursor_ts_us);
		ok = buf_puts(t, " AND (ts, id) < ('epoch'::timestamptz + ") &&
		     rollup_sql_param(out, strdup(ts), "bigint") &&
		     buf_puts(t, " * interval '1 microsecond', ") &&
		     rollup_sql_param(out, strdup(q->cursor_id), "text") && buf_putc(t, ')');
	}
	snprintf(lim, sizeof(lim), "%d", q->limit + 1);
	ok = ok && buf_puts(t, " ORDER BY ts DESC, id DESC LIMIT ") &&
	     rollup_sql_param(out, strdup(lim), "int");
	return ok && !t->over;
}
