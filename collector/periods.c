/* Billing periods: the evidence that a month is complete (the roster), the
 * close that freezes a month's FOCUS lines once, and the reopen. */
#include "periods.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "focus.h"
#include "log.h"
#include "rollup.h"
#include "rollup_shape.h"
#include "rollup_sql.h"
#include "timefmt.h"

/* Columns of periods_sql's rows. */
enum { PERIODS_C_JSON, PERIODS_C_CLOSED, PERIODS_C_NOT_REPORTED, PERIODS_C_ENDED };

/* Every month holding rows (or closed), with its state and completeness, in
 * one statement: the months' rows per tenant and agent come from /v1/rollups'
 * own statement, so no read scans cost_rows. A worker is an agent_id with the
 * tenant of its rows; its heartbeats count for that tenant when sent with that
 * tenant's key or with an unscoped one (a worker serving many tenants beats
 * once, with its tenant NULL). With month_us >= 0, that month alone. */
static bool periods_sql(const struct rollup_query *q, int grace_s, long long month_us,
			struct rollup_sql *s)
{
	struct rollup_query rq;
	struct buf head;
	char g[24];
	bool ok;

	memset(&rq, 0, sizeof(rq));
	rq.kind = ROLLUP_KIND_ROLLUPS;
	rq.granularity = ROLLUP_MONTH;
	rq.ncols = 2;
	rq.cols[0] = ROLLUP_COL_TENANT;
	rq.cols[1] = ROLLUP_COL_AGENT;
	if (month_us >= 0) {
		rq.has_from = rq.has_to = true;
		rq.from_us = month_us;
		rq.to_us = focus_next_month(month_us);
	}
	memcpy(rq.filters, q->filters, sizeof(rq.filters)); /* borrowed */
	if (!rollup_sql_rollups(&rq, s))
		return false;
	buf_init(&head, 0);
	/* The rollup answer's measure columns, named as the rollup shape names them. */
	ok = buf_puts(&head, "WITH r(g, month, tenant_id, agent_id");
	for (int i = 0; i < ROLLUP_NMEASURES; i++)
		ok = ok && buf_printf(&head, ", %s", rollup_measures[i].name);
	ok = ok && buf_puts(&head, ") AS (") && buf_append(&head, s->text.data, s->text.len);
	buf_release(&s->text);
	s->text = head;
	snprintf(g, sizeof(g), "%d", grace_s);
	ok = ok &&
	     buf_puts(&s->text,
		      "), m AS (SELECT month::timestamptz AS month, tenant_id, agent_id, requests,"
		      " unpriced_rows FROM r WHERE g = 0),"
		      " ag AS (SELECT m.month, m.tenant_id, m.agent_id, coalesce(bool_or("
		      "a.last_seen > m.month + interval '1 month' + make_interval(secs => ") &&
	     focus_sql_param(s, g, "int") &&
	     buf_puts(&s->text,
		      ") AND a.sink_queued = 0 AND a.sink_spooled_rows = 0), false) AS reported"
		      " FROM m LEFT JOIN agents a ON a.agent_id = m.agent_id"
		      " AND (a.tenant_id IS NULL OR a.tenant_id = m.tenant_id)"
		      " WHERE m.agent_id IS NOT NULL GROUP BY m.month, m.tenant_id, m.agent_id),"
		      " months AS (SELECT month FROM m UNION ");
	if (month_us >= 0) {
		char t[40];

		timefmt_format(month_us, t, sizeof(t));
		ok = ok && buf_puts(&s->text, "SELECT ") && focus_sql_param(s, t, "timestamptz");
	} else {
		ok = ok && buf_puts(&s->text, "SELECT period::timestamp AT TIME ZONE 'UTC'"
					      " FROM billing_periods");
	}
	ok = ok &&
	     buf_puts(
		     &s->text,
		     ") SELECT json_build_object('period', to_char(mo.month AT TIME ZONE 'UTC',"
		     " 'YYYY-MM'), 'state', CASE WHEN bp.period IS NULL THEN 'open' ELSE"
		     " 'closed' END, 'closed_at', to_char(bp.closed_at AT TIME ZONE 'UTC',"
		     " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'closed_by', bp.closed_by,"
		     " 'forced', bp.forced, 'completeness', json_build_object("
		     "'workers', (SELECT count(*) FROM ag WHERE ag.month = mo.month),"
		     " 'workers_reported', (SELECT count(*) FROM ag WHERE ag.month = mo.month"
		     " AND ag.reported), 'not_reported', coalesce((SELECT json_agg("
		     "json_build_object('tenant', tenant_id, 'agent_id', agent_id) ORDER BY"
		     " tenant_id, agent_id) FROM ag WHERE ag.month = mo.month AND NOT"
		     " ag.reported), '[]'::json), 'unpriced_rows', coalesce((SELECT sum(unpriced_rows) FROM m WHERE m.month = mo.month), 0), 'late_rows', late))::text, bp.period IS NOT NULL, coalesce((SELECT"
		     " string_agg(coalesce(tenant_id, '(no tenant)') || '/' || agent_id, ', '"
		     " ORDER BY tenant_id, agent_id) FROM ag WHERE ag.month = mo.month AND NOT"
		     " ag.reported), ''), mo.month + interval '1 month' <= now()"
		     " FROM months mo LEFT JOIN billing_periods bp"
		     " ON bp.period = (mo.month AT TIME ZONE 'UTC')::date,"
		     " LATERAL (SELECT CASE WHEN bp.period IS NULL THEN 0 ELSE"
		     " coalesce((SELECT sum(requests) FROM m WHERE m.month = mo.month), 0) -"
		     " coalesce((SELECT sum(requests) FROM billing_period_lines"
		     " WHERE billing_period = bp.period AND charge_class = ''") &&
	     focus_sql_filters(s, q) &&
	     buf_puts(&s->text, "), 0) END AS late) lt ORDER BY mo.month");
	return ok && !s->text.over;
}

static PGresult *periods_run(PGconn *conn, const struct rollup_query *q, int grace_s,
			     long long month_us, int *status, char *err, size_t errlen)
{
	struct rollup_sql s;
	PGresult *res = NULL;

	*status = 503;
	if (periods_sql(q, grace_s, month_us, &s))
		res = rollup_exec(conn, &s, status, NULL, err, errlen);
	else
		snprintf(err, errlen, "out of memory");
	rollup_sql_free(&s);
	return res;
}

int periods_list(PGconn *conn, const struct rollup_query *q, int grace_s, struct buf *out,
		 char *err, size_t errlen)
{
	int status;
	PGresult *res = periods_run(conn, q, grace_s, -1, &status, err, errlen);

	if (!res)
		return status;
	buf_puts(out, "{\"periods\":[");
	for (int r = 0; r < PQntuples(res); r++)
		buf_printf(out, "%s%s", r ? "," : "", PQgetvalue(res, r, PERIODS_C_JSON));
	buf_puts(out, "]}");
	PQclear(res);
	if (out->over) {
		snprintf(err, errlen, "out of memory");
		return 503;
	}
	return 200;
}

/* Runs a command; false with err (database text) and *status. */
static bool periods_exec(PGconn *conn, const char *sql, int n, const char *const *params,
			 int *status, char *err, size_t errlen)
{
	PGresult *res = db_query(conn, sql, n, params, status, err, errlen);
	bool ok = res != NULL;

	PQclear(res);
	return ok;
}

/* BEGIN and the periods' lock: every close and reopen runs one at a time. */
static bool periods_begin(PGconn *conn, int *status, char *err, size_t errlen)
{
	return periods_exec(conn, "BEGIN", 0, NULL, status, err, errlen) &&
	       periods_exec(conn, "SELECT pg_advisory_xact_lock(vgc_periods_lock_key())", 0, NULL,
			    status, err, errlen);
}

/* Freezes the month's lines and records the close; inside the transaction. */
static int periods_freeze(PGconn *conn, long long month_us, bool force, const char *by,
			  const char *completeness, const char *account_id, char *err,
			  size_t errlen)
{
	struct rollup_query none;
	struct focus_params fp = { month_us, account_id, &none, false, NULL, 0 };
	struct focus_result fr;
	struct rollup_sql s;
	char day[40], t[40], acct[256], rows[24];
	const char *f = force ? "true" : "false";
	const char *params[5] = { day, by, f, completeness, account_id };
	long long cfrom;
	bool closed, rated, ok;
	int status = 500;
	PGresult *res;

	memset(&none, 0, sizeof(none));
	focus_period_name(month_us, day, sizeof(day));
	strcat(day, "-01");
	if (!focus_closed_run(conn, month_us, &cfrom, &closed, t, acct, &rated, err, errlen))
		return 503;
	(void)rated; /* a month being closed now freezes its lines' rated price */
	if (!periods_exec(conn,
			  "INSERT INTO billing_periods (period, closed_by, forced, completeness,"
			  " billing_account) VALUES ($1::date, $2, $3::boolean, $4::jsonb, $5)",
			  5, params, &status, err, errlen) ||
	    !periods_exec(
		    conn,
		    "INSERT INTO billing_period_events (period, action, by_whom, forced, detail)"
		    " VALUES ($1::date, 'close', $2, $3::boolean, $4::jsonb)",
		    4, params, &status, err, errlen))
		return status;
	ok = focus_sql_lines(&fp, cfrom, &s) &&
	     buf_puts(&s.text, " INSERT INTO billing_period_lines (billing_period, charge_day,"
			       " charge_class, tenant_id, project, agent_id, provider, model_id,"
			       " modality, requests, cost_usd, list_cost_usd, quantity,"
			       " rated_price_usd) SELECT ") &&
	     focus_sql_param(&s, day, "date") &&
	     buf_puts(&s.text, ", charge_day, charge_class, tenant_id, project, agent_id,"
			       " provider, model_id, modality, requests, cost_usd, list_cost_usd,"
			       " quantity, rated_price_usd FROM lines") &&
	     !s.text.over;
	if (!ok) {
		rollup_sql_free(&s);
		snprintf(err, errlen, "out of memory");
		return 503;
	}
	res = db_query(conn, s.text.data, s.nparams, (const char *const *)s.params, &status, err,
		       errlen);
	rollup_sql_free(&s);
	if (!res)
		return status;
	PQclear(res);

	/* The manifest of the whole export as frozen, rendered from the frozen
	 * lines as every later export will be, stored for the manifest to answer. */
	if ((status = focus_export_tx(conn, &fp, &fr, err, errlen)) == 200) {
		const char *mp[6] = { day,	     fr.sha256,		rows, fr.billed_cost,
				      fr.usage_cost, fr.correction_cost };

		snprintf(rows, sizeof(rows), "%lld", fr.rows);
		if (!periods_exec(
			    conn,
			    "UPDATE billing_periods SET csv_sha256 = $2, csv_rows = $3::bigint,"
			    " billed_cost = $4::numeric, usage_cost = $5::numeric,"
			    " correction_cost = $6::numeric WHERE period = $1::date",
			    6, mp, &status, err, errlen))
			status = status == 200 ? 500 : status;
	}
	focus_result_free(&fr);
	return status;
}

int periods_close(PGconn *conn, long long month_us, bool force, const char *by, int grace_s,
		  const char *account_id, struct buf *out, char *err, size_t errlen)
{
	struct rollup_query none;
	char name[16];
	PGresult *res = NULL;
	int status = 500;
	bool committed = false;

	memset(&none, 0, sizeof(none));
	focus_period_name(month_us, name, sizeof(name));
	if (!periods_begin(conn, &status, err, errlen))
		goto out;
	if (!(res = periods_run(conn, &none, grace_s, month_us, &status, err, errlen)))
		goto out;
	status = 409;
	if (PQgetvalue(res, 0, PERIODS_C_CLOSED)[0] == 't') {
		snprintf(err, errlen, "%s is already closed: %s", name,
			 PQgetvalue(res, 0, PERIODS_C_JSON));
		goto out;
	}
	if (PQgetvalue(res, 0, PERIODS_C_ENDED)[0] != 't') {
		snprintf(err, errlen, "%s has not ended yet; a month closes after its last day",
			 name);
		goto out;
	}
	if (!force && PQgetvalue(res, 0, PERIODS_C_NOT_REPORTED)[0]) {
		snprintf(err, errlen,
			 "%s is not proven complete: these workers have not reported since the "
			 "month's end plus period_grace_s (%d s) with an empty backlog: %.700s; "
			 "close with force to close anyway",
			 name, grace_s, PQgetvalue(res, 0, PERIODS_C_NOT_REPORTED));
		goto out;
	}
	status = periods_freeze(conn, month_us, force, by, PQgetvalue(res, 0, PERIODS_C_JSON),
				account_id, err, errlen);
	PQclear(res);
	res = NULL;
	if (status != 200)
		goto out;
	if (!periods_exec(conn, "COMMIT", 0, NULL, &status, err, errlen))
		goto out;
	committed = true;
	log_info("billing period closed period=%s by=%s forced=%s", name, by,
		 force ? "true" : "false");
	if (!(res = periods_run(conn, &none, grace_s, month_us, &status, err, errlen)))
		goto out;
	if (PQntuples(res) == 1)
		buf_puts(out, PQgetvalue(res, 0, PERIODS_C_JSON));
	status = 200;
out:
	if (res)
		PQclear(res);
	if (!committed)
		PQclear(PQexec(conn, "ROLLBACK"));
	return status;
}

int periods_reopen(PGconn *conn, long long month_us, const char *by, char *err, size_t errlen)
{
	char name[16], day[40];
	const char *params[2] = { day, by };
	int status = 500;
	PGresult *res;

	focus_period_name(month_us, name, sizeof(name));
	snprintf(day, sizeof(day), "%s-01", name);
	if (!periods_begin(conn, &status, err, errlen))
		goto fail;
	res = PQexecParams(conn,
			   "SELECT (SELECT count(*) FROM billing_periods WHERE period = $1::date),"
			   " (SELECT min(to_char(period, 'YYYY-MM')) FROM billing_periods"
			   " WHERE period > $1::date)",
			   1, NULL, params, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_result_error(conn, res, err, errlen);
		status = db_fault_status(db_classify(conn, res));
		PQclear(res);
		goto fail;
	}
	status = 409;
	if (strcmp(PQgetvalue(res, 0, 0), "0") == 0)
		snprintf(err, errlen, "%s is not closed", name);
	else if (!PQgetisnull(res, 0, 1))
		snprintf(err, errlen,
			 "%s cannot reopen while a later month (%s) is closed: it billed this "
			 "month's late rows; reopen that first",
			 name, PQgetvalue(res, 0, 1));
	else
		status = 200;
	PQclear(res);
	if (status != 200 ||
	    !periods_exec(conn, "DELETE FROM billing_periods WHERE period = $1::date", 1, params,
			  &status, err, errlen) ||
	    !periods_exec(conn,
			  "INSERT INTO billing_period_events (period, action, by_whom)"
			  " VALUES ($1::date, 'reopen', $2)",
			  2, params, &status, err, errlen) ||
	    !periods_exec(conn, "COMMIT", 0, NULL, &status, err, errlen))
		goto fail;
	log_warn("billing period reopened period=%s by=%s", name, by);
	return 200;
fail:
	PQclear(PQexec(conn, "ROLLBACK"));
	return status;
}

bool periods_late_rows(PGconn *conn, long long *late, char *err, size_t errlen)
{
	struct rollup_query rq;
	struct rollup_sql s;
	PGresult *res;
	int status;
	bool ok;

	*late = 0;
	res = PQexec(conn, "SELECT (extract(epoch FROM min(period)::timestamp) * 1000000)::bigint,"
			   " (extract(epoch FROM max(period)::timestamp) * 1000000)::bigint"
			   " FROM billing_periods");
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		db_result_error(conn, res, err, errlen);
		PQclear(res);
		return false;
	}
	if (PQgetisnull(res, 0, 0)) {
		PQclear(res);
		return true; /* nothing closed */
	}
	/* The closed months' rows now, per month, from the rollups, less the rows
	 * their frozen usage lines hold. */
	memset(&rq, 0, sizeof(rq));
	rq.kind = ROLLUP_KIND_ROLLUPS;
	rq.granularity = ROLLUP_MONTH;
	rq.has_from = rq.has_to = true;
	rq.from_us = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	rq.to_us = focus_next_month(strtoll(PQgetvalue(res, 0, 1), NULL, 10));
	PQclear(res);
	ok = rollup_sql_rollups(&rq, &s);
	if (ok) {
		struct buf head;

		buf_init(&head, 0);
		ok = buf_puts(&head, "WITH r(g, month, requests, errors, fallbacks, cost_usd,"
				     " rated_price_usd, input_units, output_units,"
				     " cached_input_units) AS (") &&
		     buf_append(&head, s.text.data, s.text.len) &&
		     buf_puts(&head, ") SELECT coalesce(sum(r.requests), 0) - coalesce((SELECT"
				     " sum(requests) FROM billing_period_lines WHERE"
				     " charge_class = ''), 0) FROM r JOIN billing_periods b ON"
				     " b.period = (r.month::timestamptz AT TIME ZONE 'UTC')::date"
				     " WHERE r.g = 0") &&
		     !head.over;
		buf_release(&s.text);
		s.text = head;
	}
	if (!ok) {
		rollup_sql_free(&s);
		snprintf(err, errlen, "out of memory");
		return false;
	}
	res = rollup_exec(conn, &s, &status, NULL, err, errlen);
	rollup_sql_free(&s);
	if (!res)
		return false;
	*late = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	return true;
}
