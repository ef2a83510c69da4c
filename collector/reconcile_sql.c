/* The reconciliation statement. The file travels as array parameters (one
 * element per (model, day) line, already summed) and is unnested in SQL, so every sum, difference,
 * percentage and implied rate is numeric arithmetic in PostgreSQL. */
#include "reconcile_sql.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "db.h"
#include "timefmt.h"

/* Our model name for matching: model_id without a leading "<provider>/". */
#define RECONCILE_SQL_MODEL(col)                                                                   \
	"CASE WHEN left(" col ", length($1::text) + 1) = $1::text || '/' AND length(" col          \
	") > length($1::text) + 1 THEN substr(" col ", length($1::text) + 2) ELSE " col " END"

#define RECONCILE_SQL_SCOPE                                                                        \
	" AND ($4::text IS NULL OR tenant_id = $4) AND ($5::text IS NULL OR project = $5)"

/* A line's or the totals' columns after its key, from ou (our units), pu
 * (the provider's), oc, pc (costs), orq, prq (requests) and src: both sides,
 * their differences, both implied rates and the pricing sources. */
#define RECONCILE_SQL_SIDES                                                                        \
	" ou, pu, pu - ou,"                                                                        \
	"  CASE WHEN ou <> 0 THEN trim_scale(round((pu - ou) * 100 / ou, 2)) END,"                 \
	"  oc, pc, pc - oc,"                                                                       \
	"  CASE WHEN oc <> 0 THEN trim_scale(round((pc - oc) * 100 / oc, 2)) END,"                 \
	"  CASE WHEN ou <> 0 THEN trim_scale(round(oc / ou, 15)) END,"                             \
	"  CASE WHEN pu <> 0 THEN trim_scale(round(pc / pu, 15)) END,"                             \
	"  CASE WHEN ou <> 0 AND pu <> 0 AND oc <> 0"                                              \
	"   THEN trim_scale(round((pc / pu) / (oc / ou), 4)) END,"                                 \
	"  orq, prq, array_to_string(src, ', '), coalesce(to_json(src)::text, '[]'),"

/* $1 provider, $2 from, $3 to, $4 tenant, $5 project, $6 per_day, $7 models,
 * $8 days, $9 costs, $10 and $11 the unit columns (summed), $12 requests,
 * $13 threshold_pct, $14 units_agree_pct. Columns follow enum reconcile_col;
 * the totals row comes last. A gap "more than N%" compares |diff| * 100 with
 * N * |ours|, so no division decides a flag. */
static const char reconcile_sql_text[] =
	"WITH f AS ("
	" SELECT model, day, sum(cost) AS cost, sum(ua + ub) AS units, sum(rq) AS requests"
	" FROM unnest($7::text[], $8::date[], $9::numeric[], $10::numeric[], $11::numeric[],"
	"             $12::numeric[]) AS t(model, day, cost, ua, ub, rq)"
	" GROUP BY model, day),"
	" h AS ("
	" SELECT " RECONCILE_SQL_MODEL(
		"model_id") " AS model,"
			    "  CASE WHEN $6::boolean THEN (hour AT TIME ZONE 'UTC')::date END AS day,"
			    "  CASE modality WHEN 'llm' THEN input_units + output_units"
			    "   WHEN 'stt' THEN input_units * 60 ELSE input_units END AS units,"
			    "  cost_usd, requests"
			    " FROM vgc_rollup_hourly_live"
			    " WHERE provider = $1::text AND hour >= $2::timestamptz AND hour < $3::timestamptz" RECONCILE_SQL_SCOPE
			    "),"
			    " o AS (SELECT model, day, sum(units) AS units, sum(cost_usd) AS cost,"
			    "  sum(requests) AS requests FROM h GROUP BY model, day),"
			    " s AS ("
			    " SELECT model, day, array_agg(DISTINCT src ORDER BY src) AS src FROM ("
			    "  SELECT " RECONCILE_SQL_MODEL(
				    "model_id") " AS model,"
						"   CASE WHEN $6::boolean THEN (ts AT TIME ZONE 'UTC')::date END AS day,"
						"   coalesce(pricing_source, '(none)') AS src"
						"  FROM cost_rows WHERE provider = $1::text AND ts >= $2::timestamptz AND ts < $3::timestamptz" RECONCILE_SQL_SCOPE
						" ) x GROUP BY model, day),"
						" j AS ("
						" SELECT coalesce(o.model, f.model) AS model, coalesce(o.day, f.day) AS day,"
						"  o.units AS ou, f.units AS pu, o.cost AS oc, f.cost AS pc,"
						"  o.requests AS orq, f.requests AS prq,"
						"  CASE WHEN o.units IS NULL OR f.units IS NULL THEN 'coverage'"
						"   WHEN CASE WHEN o.units = 0 THEN f.units <> 0"
						"        ELSE abs(f.units - o.units) * 100 > $14::numeric * abs(o.units) END THEN 'units'"
						"   WHEN CASE WHEN o.cost = 0 THEN f.cost <> 0"
						"        ELSE abs(f.cost - o.cost) * 100 > $13::numeric * abs(o.cost) END THEN 'rate'"
						"  END AS cause"
						" FROM o FULL JOIN f ON o.model = f.model AND o.day IS NOT DISTINCT FROM f.day),"
						" l AS ("
						" SELECT j.*, s.src FROM j LEFT JOIN s"
						"  ON s.model IS NOT DISTINCT FROM j.model AND s.day IS NOT DISTINCT FROM j.day),"
						" t AS ("
						" SELECT coalesce(sum(ou), 0) AS ou, coalesce(sum(pu), 0) AS pu,"
						"  coalesce(sum(oc), 0) AS oc, coalesce(sum(pc), 0) AS pc,"
						"  coalesce(sum(orq), 0) AS orq, sum(prq) AS prq,"
						"  (SELECT array_agg(DISTINCT e ORDER BY e) FROM l, unnest(l.src) e) AS src"
						" FROM l)"
						" SELECT 0 AS kind, model, to_char(day, 'YYYY-MM-DD') AS day," RECONCILE_SQL_SIDES
						" cause"
						" FROM l"
						" UNION ALL"
						" SELECT 1, NULL, NULL," RECONCILE_SQL_SIDES " NULL"
						" FROM t"
						" ORDER BY 1, 2 NULLS LAST, 3";

/* Appends s as a quoted array element ("a\"b"). */
static void reconcile_sql_elem(struct buf *b, const char *s)
{
	buf_putc(b, '"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			buf_putc(b, '\\');
		buf_putc(b, *s);
	}
	buf_putc(b, '"');
}

/* The six array literals of the file's lines: models, days, costs, the two
 * unit columns and requests. */
static bool reconcile_sql_arrays(const struct reconcile_file *f, struct buf a[6])
{
	for (int k = 0; k < 6; k++)
		buf_putc(&a[k], '{');
	for (int i = 0; i < f->n; i++) {
		const struct reconcile_record *r = &f->recs[i];
		const char *sep = i ? "," : "";

		for (int k = 0; k < 6; k++)
			buf_puts(&a[k], sep);
		reconcile_sql_elem(&a[0], r->model);
		buf_puts(&a[1], r->date[0] ? r->date : "NULL");
		buf_puts(&a[2], r->cost);
		buf_puts(&a[3], r->units[0]);
		buf_puts(&a[4], r->units[1] ? r->units[1] : "0");
		buf_puts(&a[5], r->n_requests ? r->n_requests : "NULL");
	}
	for (int k = 0; k < 6; k++)
		buf_putc(&a[k], '}');
	for (int k = 0; k < 6; k++)
		if (a[k].over)
			return false;
	return true;
}

int reconcile_sql_run(PGconn *conn, const struct reconcile_query *q, const struct reconcile_file *f,
		      struct reconcile_report *out, char *err, size_t errlen)
{
	struct buf a[6];
	char from[40], to[40];
	const char *params[14];
	PGresult *res;
	int status = 200;

	memset(out, 0, sizeof(*out));
	out->q = q;
	out->per_day = f->per_day;
	for (int k = 0; k < 6; k++)
		buf_init(&a[k], 0);
	if (!reconcile_sql_arrays(f, a)) {
		snprintf(err, errlen, "out of memory");
		status = 503;
		goto done;
	}
	timefmt_format(q->from_us, from, sizeof(from));
	timefmt_format(q->to_us, to, sizeof(to));
	params[0] = q->provider;
	params[1] = from;
	params[2] = to;
	params[3] = q->tenant;
	params[4] = q->project;
	params[5] = f->per_day ? "t" : "f";
	for (int k = 0; k < 6; k++)
		params[6 + k] = a[k].data;
	params[12] = q->threshold_pct;
	params[13] = q->units_agree_pct;
	res = PQexecParams(conn, reconcile_sql_text, 14, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1 ||
	    PQnfields(res) != RC_NCOLS) {
		db_result_error(conn, res, err, errlen);
		status = PQresultStatus(res) == PGRES_TUPLES_OK
				 ? 500
				 : db_fault_status(db_classify(conn, res));
		PQclear(res);
		goto done;
	}
	out->res = res;
	out->nlines = PQntuples(res) - 1;
	for (int i = 0; i < out->nlines; i++)
		out->flagged += !PQgetisnull(res, i, RC_CAUSE);
done:
	for (int k = 0; k < 6; k++)
		buf_release(&a[k]);
	return status;
}
