/* The read API's SQL. The text is assembled only from fixed fragments chosen
 * by the parsed query's enums; every value a peer sent travels as a
 * PQexecParams parameter. */
#include "rollup_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "row_fields.h"
#include "timefmt.h"

#define ROLLUP_SQL_US_PER_DAY TIMEFMT_US_PER_DAY

/* Columns of cost_rows and cost_rollup_hourly, indexed by enum rollup_col. */
static const char *const rollup_sql_cols[ROLLUP_NCOLS] = {
	"project", "agent_id", "tenant_id", "modality", "provider", "model_id", "session_id",
};

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

/* The filters of a query: " AND (col = ANY($n) OR col IS NULL)" for each
 * filtered column. Each array parameter is added once (first use) and its
 * number kept in pnum, so every branch of a statement shares it. */
static bool rollup_sql_filters(const struct rollup_query *q, struct rollup_sql *s,
			       int pnum[ROLLUP_NCOLS])
{
	bool ok = true;

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
		if (has_value && pnum[c] == 0) {
			ok = ok && buf_printf(&s->text, "%s = ANY(", rollup_sql_cols[c]) &&
			     rollup_sql_param(s, rollup_sql_array(f), "text[]") &&
			     buf_putc(&s->text, ')');
			pnum[c] = s->nparams;
		} else if (has_value) {
			ok = ok && buf_printf(&s->text, "%s = ANY($%d::text[])", rollup_sql_cols[c],
					      pnum[c]);
		}
		if (has_null)
			ok = ok && buf_printf(&s->text, "%s%s IS NULL", has_value ? " OR " : "",
					      rollup_sql_cols[c]);
		ok = ok && buf_putc(&s->text, ')');
	}
	return ok;
}

/* WHERE over time (timecol) and every filter. */
static bool rollup_sql_where(const struct rollup_query *q, struct rollup_sql *s,
			     const char *timecol)
{
	int pnum[ROLLUP_NCOLS] = { 0 };
	bool ok = buf_puts(&s->text, " WHERE true");

	if (q->has_from)
		ok = ok && buf_printf(&s->text, " AND %s >= ", timecol) &&
		     rollup_sql_param(s, rollup_sql_time(q->from_us), "timestamptz");
	if (q->has_to)
		ok = ok && buf_printf(&s->text, " AND %s < ", timecol) &&
		     rollup_sql_param(s, rollup_sql_time(q->to_us), "timestamptz");
	return ok && rollup_sql_filters(q, s, pnum);
}

/* An instant as a parameter, added once: *pnum is its number after. */
static bool rollup_sql_time_ref(struct rollup_sql *s, long long us, int *pnum)
{
	if (*pnum)
		return buf_printf(&s->text, "$%d::timestamptz", *pnum);
	if (!rollup_sql_param(s, rollup_sql_time(us), "timestamptz"))
		return false;
	*pnum = s->nparams;
	return true;
}

/* The columns a read groups by: which branch columns the source carries. */
struct rollup_sql_keys {
	int n;
	enum rollup_col cols[ROLLUP_NGROUP];
};

/* True when cost_rollup_tenant_daily can stand in for cost_rollup_daily: every
 * group column and every filtered column is tenant or project. */
static bool rollup_sql_narrow(const struct rollup_query *q, const struct rollup_sql_keys *k)
{
	for (int i = 0; i < k->n; i++)
		if (k->cols[i] != ROLLUP_COL_TENANT && k->cols[i] != ROLLUP_COL_PROJECT)
			return false;
	for (int c = 0; c < ROLLUP_NCOLS; c++)
		if (q->filters[c].n && c != ROLLUP_COL_TENANT && c != ROLLUP_COL_PROJECT)
			return false;
	return true;
}

/* ", col, ..." of the keys. */
static bool rollup_sql_key_list(struct buf *t, const struct rollup_sql_keys *k)
{
	bool ok = true;

	for (int i = 0; i < k->n; i++)
		ok = ok && buf_printf(t, ", %s", rollup_sql_cols[k->cols[i]]);
	return ok;
}

/* The period holding an instant (the column col, or the time us as a
 * parameter). */
static bool rollup_sql_period_of(const struct rollup_query *q, struct rollup_sql *s,
				 const char *col, long long us, int *pnum)
{
	struct buf *t = &s->text;

	if (q->granularity == ROLLUP_TOTAL)
		return buf_puts(t, "NULL::timestamp");
	return buf_printf(t, "date_trunc('%s', ", rollup_params_granularity_name(q->granularity)) &&
	       (col ? buf_puts(t, col) : rollup_sql_time_ref(s, us, pnum)) &&
	       buf_puts(t, " AT TIME ZONE 'UTC')");
}

/* "SELECT <period>, <keys>" of one branch. The period is cut here from an
 * instant inside it (the column col, or the time us as a parameter), not by
 * the outer statement, so the outer one groups on a plain column. */
static bool rollup_sql_branch_head(const struct rollup_query *q, const struct rollup_sql_keys *k,
				   struct rollup_sql *s, const char *col, long long us, int *pnum)
{
	return buf_puts(&s->text, "SELECT ") && rollup_sql_period_of(q, s, col, us, pnum) &&
	       buf_puts(&s->text, " AS period") && rollup_sql_key_list(&s->text, k);
}

/* ", sum(m) AS m, ..." over every stored measure. */
static bool rollup_sql_branch_sums(struct buf *t)
{
	bool ok = true;

	for (int i = 0; i < ROLLUP_NMEASURES; i++)
		if (rollup_measure_stored(&rollup_measures[i]))
			ok = ok && buf_printf(t, ", sum(%s) AS %s", rollup_measures[i].name,
					      rollup_measures[i].name);
	return ok;
}

/* An instant written as a parameter once (see rollup_sql_time_ref). */
struct rollup_sql_span {
	long long us;
	int *pnum;
};

/* A partial day at one end of the range: its hours [a, b), inside the UTC
 * day starting at day. */
struct rollup_sql_end {
	bool present;
	struct rollup_sql_span a, b, day;
};

/* One branch over the partial days at both ends of the range that are not
 * listed, summed per (period, keys), from table (cost_rollup_tenant_hourly
 * when narrow, else cost_rollup_hourly); the listed ones are read with the
 * listed whole days (rollup_sql_source). Each end's hours lie in one day, so
 * its period is a constant, picked by a CASE on the hour when both ends are
 * there, and the planner sees a few groups, not one per hour (a misestimate
 * that made it sort every hour); each end's dirty-day test is a one-time
 * filter. One branch, not one per end and table: each branch of the
 * statement costs its planning, about 0.15 ms, on every read. */
static bool rollup_sql_partials(const struct rollup_query *q, const struct rollup_sql_keys *k,
				struct rollup_sql *s, int pnum[ROLLUP_NCOLS], const char *table,
				const struct rollup_sql_end ends[2])
{
	struct buf *t = &s->text;
	bool both = ends[0].present && ends[1].present, ok = buf_puts(t, " UNION ALL SELECT ");

	if (both && q->granularity != ROLLUP_TOTAL)
		ok = ok && buf_puts(t, "CASE WHEN hour < ") &&
		     rollup_sql_time_ref(s, ends[0].b.us, ends[0].b.pnum) &&
		     buf_puts(t, " THEN ") &&
		     rollup_sql_period_of(q, s, NULL, ends[0].a.us, ends[0].a.pnum) &&
		     buf_puts(t, " ELSE ") &&
		     rollup_sql_period_of(q, s, NULL, ends[1].a.us, ends[1].a.pnum) &&
		     buf_puts(t, " END");
	else
		ok = ok && rollup_sql_period_of(q, s, NULL, ends[ends[0].present ? 0 : 1].a.us,
						ends[ends[0].present ? 0 : 1].a.pnum);
	ok = ok && buf_puts(t, " AS period") && rollup_sql_key_list(t, k) &&
	     rollup_sql_branch_sums(t) && buf_printf(t, " FROM %s WHERE (", table);
	for (int i = 0, n = 0; i < 2; i++) {
		if (!ends[i].present)
			continue;
		ok = ok && buf_puts(t, n++ ? " OR (hour >= " : "(hour >= ") &&
		     rollup_sql_time_ref(s, ends[i].a.us, ends[i].a.pnum) &&
		     buf_puts(t, " AND hour < ") &&
		     rollup_sql_time_ref(s, ends[i].b.us, ends[i].b.pnum) &&
		     buf_puts(t, " AND NOT EXISTS (SELECT 1 FROM vgc_rollup_dirty_days x"
				 " WHERE x.day = ") &&
		     rollup_sql_time_ref(s, ends[i].day.us, ends[i].day.pnum) && buf_puts(t, "))");
	}
	return ok && buf_putc(t, ')') && rollup_sql_filters(q, s, pnum) &&
	       buf_puts(t, " GROUP BY 1") && rollup_sql_key_list(t, k);
}

/* The whole UTC days of the range, [*dfrom, *dto) (either end open when the
 * query has none). False when the read sums hours alone: hour granularity, or
 * a range holding no whole day. */
static bool rollup_sql_days(const struct rollup_query *q, long long *dfrom, long long *dto)
{
	*dfrom = *dto = 0;
	if (q->has_from)
		*dfrom = timefmt_floor_div(q->from_us + ROLLUP_SQL_US_PER_DAY - 1,
					   ROLLUP_SQL_US_PER_DAY) *
			 ROLLUP_SQL_US_PER_DAY;
	if (q->has_to)
		*dto = timefmt_floor_div(q->to_us, ROLLUP_SQL_US_PER_DAY) * ROLLUP_SQL_US_PER_DAY;
	return q->granularity != ROLLUP_HOUR && !(q->has_from && q->has_to && *dfrom >= *dto);
}

/* The deltas ingest appended and the summariser has not folded, in [from, to)
 * and the filters, summed per (period, keys): one branch after the others. A
 * day with deltas is answered from its daily rows (when not listed) plus
 * these, never from its hours for their sake. */
static bool rollup_sql_deltas(const struct rollup_query *q, const struct rollup_sql_keys *k,
			      struct rollup_sql *s, int pnum[ROLLUP_NCOLS], int *p_from, int *p_to)
{
	struct buf *t = &s->text;
	bool ok = buf_puts(t, " UNION ALL ") && rollup_sql_branch_head(q, k, s, "hour", 0, NULL) &&
		  rollup_sql_branch_sums(t) && buf_puts(t, " FROM vgc_rollup_deltas WHERE true");

	if (q->has_from)
		ok = ok && buf_puts(t, " AND hour >= ") &&
		     rollup_sql_time_ref(s, q->from_us, p_from);
	if (q->has_to)
		ok = ok && buf_puts(t, " AND hour < ") && rollup_sql_time_ref(s, q->to_us, p_to);
	return ok && rollup_sql_filters(q, s, pnum) && buf_puts(t, " GROUP BY 1") &&
	       rollup_sql_key_list(t, k);
}

/* The rows a read sums, as " FROM ...". Two parts that add up: the rows the
 * summariser has folded, from the rollup tables (which agree with each other
 * at every commit), and the ones it has not, from vgc_rollup_deltas
 * (schema/0022_rollup_deltas.sql); a delta is in exactly one of the two in any
 * snapshot. Hour granularity, or a range holding no whole UTC day, reads
 * vgc_rollup_hourly_live (the hours plus the deltas) alone (rollup_sql_days is
 * false). Otherwise the source is a subquery of branches, each yielding
 * (period, keys..., measures...) with the period already cut:
 * - the deltas in [from, to), summed per period and keys (rollup_sql_deltas);
 * - each whole day inside [from, to) that is not listed in
 *   vgc_rollup_dirty_days comes from cost_rollup_daily, or from the narrower
 *   cost_rollup_tenant_daily when the keys and filters allow (rollup_sql_narrow);
 * - the listed days inside the range, whole or partial (hours written by
 *   anything but the summariser's fold, schema/0026_rollup_fold_in_step.sql,
 *   and not yet summarised), come from the hours, summed per day and keys in
 *   their branch, so the outer statement gets one row per group and day;
 * - the partial days at either end that are not listed come from the hours
 *   too, or from cost_rollup_tenant_hourly when narrow, in one branch
 *   (rollup_sql_partials).
 * One statement, so one snapshot: the list and the tables agree, see
 * schema/0004_rollup_daily.sql and 0008. The hours of a listed day are found
 * by joining the (short) list to the hourly index, never by scanning the
 * range. With sorted, the subquery is ordered by (period, keys) so the outer
 * GROUP BY aggregates in order: hashing a thousand groups of numeric sums
 * costs more than sorting them (measured: 14 ms against 3 ms). */
static bool rollup_sql_source(const struct rollup_query *q, const struct rollup_sql_keys *k,
			      bool sorted, struct rollup_sql *s)
{
	long long dfrom, dto;
	int pnum[ROLLUP_NCOLS] = { 0 }, p_from = 0, p_to = 0, p_dfrom = 0, p_dto = 0, p_day = 0;
	struct rollup_sql_end ends[2];
	struct buf *t = &s->text;
	bool narrow = rollup_sql_narrow(q, k), ok;

	if (!rollup_sql_days(q, &dfrom, &dto))
		return buf_puts(t, " FROM vgc_rollup_hourly_live") &&
		       rollup_sql_where(q, s, "hour");

	/* Whole, summarised days: rows per day and group already, not summed again here. */
	ok = buf_puts(t, " FROM (") && rollup_sql_branch_head(q, k, s, "d.day", 0, NULL);
	for (int i = 0; i < ROLLUP_NMEASURES; i++)
		if (rollup_measure_stored(&rollup_measures[i]))
			ok = ok && buf_printf(t, ", %s", rollup_measures[i].name);
	ok = ok && buf_printf(t, " FROM %s d WHERE vgc_rollup_serial()",
			      narrow ? "cost_rollup_tenant_daily" : "cost_rollup_daily");
	if (q->has_from)
		ok = ok && buf_puts(t, " AND d.day >= ") && rollup_sql_time_ref(s, dfrom, &p_dfrom);
	if (q->has_to)
		ok = ok && buf_puts(t, " AND d.day < ") && rollup_sql_time_ref(s, dto, &p_dto);
	ok = ok &&
	     buf_puts(t, " AND NOT EXISTS (SELECT 1 FROM vgc_rollup_dirty_days x"
			 " WHERE x.day = d.day)") &&
	     rollup_sql_filters(q, s, pnum);

	/* The partial days at either end, [from, dfrom) and [dto, to). */
	ends[0].present = q->has_from && q->from_us < dfrom;
	ends[0].a = (struct rollup_sql_span){ q->from_us, &p_from };
	ends[0].b = (struct rollup_sql_span){ dfrom, &p_dfrom };
	ends[0].day = (struct rollup_sql_span){ dfrom - ROLLUP_SQL_US_PER_DAY, &p_day };
	ends[1].present = q->has_to && dto < q->to_us;
	ends[1].a = (struct rollup_sql_span){ dto, &p_dto };
	ends[1].b = (struct rollup_sql_span){ q->to_us, &p_to };
	ends[1].day = (struct rollup_sql_span){ dto, &p_dto };

	/* Listed days, whole or partial: their hours in [from, to), summed per day. */
	ok = ok && buf_puts(t, " UNION ALL ") &&
	     rollup_sql_branch_head(q, k, s, "x.day", 0, NULL) && rollup_sql_branch_sums(t) &&
	     buf_puts(t, " FROM vgc_rollup_dirty_days x"
			 " JOIN cost_rollup_hourly h ON h.hour >= x.day"
			 " AND h.hour < x.day + interval '24 hours' WHERE true");
	if (q->has_from)
		ok = ok && buf_puts(t, " AND x.day >= ") &&
		     (ends[0].present ? rollup_sql_time_ref(s, ends[0].day.us, ends[0].day.pnum)
				      : rollup_sql_time_ref(s, dfrom, &p_dfrom));
	if (ends[0].present)
		ok = ok && buf_puts(t, " AND h.hour >= ") &&
		     rollup_sql_time_ref(s, q->from_us, &p_from);
	if (q->has_to && ends[1].present)
		ok = ok && buf_puts(t, " AND x.day <= ") && rollup_sql_time_ref(s, dto, &p_dto) &&
		     buf_puts(t, " AND h.hour < ") && rollup_sql_time_ref(s, q->to_us, &p_to);
	else if (q->has_to)
		ok = ok && buf_puts(t, " AND x.day < ") && rollup_sql_time_ref(s, dto, &p_dto);
	ok = ok && rollup_sql_filters(q, s, pnum) && buf_puts(t, " GROUP BY 1") &&
	     rollup_sql_key_list(t, k);

	/* The partial days not listed. */
	if (ends[0].present || ends[1].present)
		ok = ok && rollup_sql_partials(q, k, s, pnum,
					       narrow ? "cost_rollup_tenant_hourly"
						      : "cost_rollup_hourly",
					       ends);
	ok = ok && rollup_sql_deltas(q, k, s, pnum, &p_from, &p_to);
	if (sorted) {
		ok = ok && buf_puts(t, " ORDER BY 1");
		for (int i = 0; i < k->n; i++)
			ok = ok && buf_printf(t, ", %d", i + 2);
	}
	return ok && buf_puts(t, ") s");
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
	struct rollup_sql_keys k = { .n = q->ncols };
	long long dfrom, dto;
	char period[80];
	bool ok;

	memcpy(k.cols, q->cols, sizeof(q->cols[0]) * (size_t)q->ncols);
	if (rollup_sql_days(q, &dfrom, &dto))
		snprintf(period, sizeof(period), "period"); /* cut by the source */
	else if (q->granularity == ROLLUP_TOTAL)
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
	for (int i = 0; i < ROLLUP_NMEASURES; i++) {
		const struct rollup_measure *m = &rollup_measures[i];

		if (rollup_measure_stored(m))
			ok = ok && buf_printf(t, ", coalesce(sum(%s), 0)", m->name);
		else
			ok = ok && buf_printf(t, ", coalesce(sum(%s), 0) - coalesce(sum(%s), 0)",
					      m->minus[0], m->minus[1]);
	}
	ok = ok && rollup_sql_source(q, &k, true, out) &&
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
	const struct rollup_sql_keys k = {
		3, { ROLLUP_COL_PROVIDER, ROLLUP_COL_MODEL, ROLLUP_COL_PROJECT }
	};
	bool ok;

	ok = buf_puts(t, "SELECT CASE WHEN GROUPING(provider) = 0 THEN 'p'"
			 " WHEN GROUPING(model_id) = 0 THEN 'm'"
			 " WHEN GROUPING(project) = 0 THEN 'j' ELSE 't' END,"
			 " CASE WHEN GROUPING(provider) = 0 THEN provider"
			 " WHEN GROUPING(model_id) = 0 THEN model_id ELSE project END,"
			 " coalesce(sum(requests), 0), coalesce(sum(cost_usd), 0)") &&
	     rollup_sql_source(q, &k, false, out) &&
	     buf_puts(t, " GROUP BY GROUPING SETS ((provider), (model_id), (project), ())"
			 " ORDER BY 1, 2");
	return ok && !t->over;
}

/* /v1/rows' JSON object, one pair per field of the row's table (the wire's
 * names; times as epoch seconds, money as decimal strings), plus received_at. */
static bool rollup_sql_row_object(struct buf *t, bool hide_cost)
{
	bool ok = buf_puts(t, "json_build_object(");

	for (int i = 0, n = 0; i < ROW_NFIELDS && ok; i++) {
		const struct row_field *f = &row_fields[i];

		if (hide_cost &&
		    (strcmp(f->name, "cost_usd") == 0 || strcmp(f->name, "book_cost_usd") == 0))
			continue; /* acquisition cost: see hide_cost_from_tenants */
		ok = buf_printf(t, "%s'%s', ", n++ ? ", " : "", f->name);
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

	ok = buf_puts(t, "SELECT ") && rollup_sql_row_object(t, q->hide_cost) &&
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

bool rollup_sql_unpriced(const struct rollup_query *q, struct rollup_sql *out)
{
	struct buf *t = rollup_sql_begin(out);
	bool ok;

	ok = buf_puts(t,
		      "SELECT provider, model_id, modality, count(*), sum(cost_usd)::text,"
		      " to_char(min(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
		      " to_char(max(ts) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
		      " FROM cost_rows") &&
	     rollup_sql_where(q, out, "ts") &&
	     buf_puts(t, " AND book_cost_usd IS NULL GROUP BY 1, 2, 3 ORDER BY 4 DESC, 1, 2, 3");
	return ok && !t->over;
}

/* The rollup statement for u (granularity total), as the CTE r with its
 * columns named: g (1 on the totals row), period, the group columns, then
 * every measure by its name. */
static bool rollup_sql_usage_rollups(const struct rollup_query *u, struct rollup_sql *out)
{
	struct rollup_sql inner;
	struct buf *t = rollup_sql_begin(out);
	bool ok = rollup_sql_rollups(u, &inner);

	ok = ok && buf_puts(t, "WITH r(g, period");
	for (int i = 0; ok && i < u->ncols; i++)
		ok = buf_printf(t, ", %s", rollup_sql_cols[u->cols[i]]);
	for (int i = 0; ok && i < ROLLUP_NMEASURES; i++)
		ok = buf_printf(t, ", %s", rollup_measures[i].name);
	ok = ok && buf_printf(t, ") AS (%s)", inner.text.data);
	/* The inner statement's parameters keep their numbers. */
	for (int i = 0; i < inner.nparams; i++) {
		out->params[out->nparams++] = inner.params[i];
		inner.params[i] = NULL;
	}
	inner.nparams = 0;
	rollup_sql_free(&inner);
	return ok;
}

bool rollup_sql_usage(const struct rollup_query *q, struct rollup_sql *out)
{
	struct rollup_query u = *q; /* shares q's strings: never freed */
	struct buf *t = &out->text;
	bool ok;

	u.granularity = ROLLUP_TOTAL;
	u.ncols = 1;
	u.cols[0] = ROLLUP_COL_TENANT;
	ok = rollup_sql_usage_rollups(&u, out) &&
	     buf_puts(t, ", x AS (SELECT g, tenant_id, requests, cost_usd, rated_price_usd,"
			 " book_cost_usd, unpriced_rows, unrated_rows, 0::numeric AS adj FROM r"
			 " UNION ALL SELECT GROUPING(tenant_id), tenant_id, 0, 0, 0, 0, 0, 0,"
			 " coalesce(sum(delta_usd), 0) FROM billing_adjustments") &&
	     rollup_sql_where(q, out, "(day::timestamp AT TIME ZONE 'UTC')");
	ok = ok &&
	     buf_puts(t,
		      " GROUP BY GROUPING SETS ((tenant_id), ())),"
		      " y AS (SELECT g, tenant_id, sum(requests) AS requests,"
		      " sum(cost_usd) AS cost, sum(rated_price_usd) AS rated,"
		      " sum(book_cost_usd) AS book, sum(unpriced_rows) AS unpriced,"
		      " sum(unrated_rows) AS unrated, sum(adj) AS adj FROM x GROUP BY g, tenant_id)"
		      " SELECT g, tenant_id, requests, cost, rated, rated + adj - cost,"
		      " round(100 * (rated + adj - cost) / nullif(rated + adj, 0), 2),"
		      " book, adj, unpriced, unrated FROM y ORDER BY g, tenant_id NULLS FIRST");
	return ok && !t->over;
}

bool rollup_sql_usage_lines(const struct rollup_query *q, struct rollup_sql *out)
{
	struct rollup_query u = *q; /* shares q's strings: never freed */
	struct buf *t = &out->text;
	bool ok;

	u.granularity = ROLLUP_TOTAL;
	u.ncols = 3;
	u.cols[0] = ROLLUP_COL_MODALITY;
	u.cols[1] = ROLLUP_COL_MODEL;
	u.cols[2] = ROLLUP_COL_PROVIDER;
	ok = rollup_sql_usage_rollups(&u, out) &&
	     buf_puts(t, " SELECT modality, model_id, provider, requests, input_units,"
			 " output_units, cost_usd, rated_price_usd, rated_price_usd - cost_usd"
			 " FROM r WHERE g = 0 ORDER BY modality, provider NULLS FIRST,"
			 " model_id NULLS FIRST");
	return ok && !t->over;
}
