/* Read API handlers. On the loop: authenticate (read or admin), parse and
 * scope the query (rollup_query.c, rollup_scope.c), queue a pool job. On a
 * worker: run the parameterized SQL (rollup_sql.c) and render JSON or CSV.
 * Money comes out of PostgreSQL as numeric text and is copied through
 * unchanged, so nothing is ever rounded. */
#include "rollup.h"

#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing_scope.h"
#include "billing_usage.h"
#include "clock.h"
#include "csv.h"
#include "db.h"
#include "http.h"
#include "pool.h"
#include "replica.h"
#include "rollup_cursor.h"
#include "rollup_scope.h"
#include "rollup_sql.h"
#include "row.h"
#include "timefmt.h"

struct rollup_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct http_req *hr;
	struct rollup_query q; /* owns copies of every value: the request may go away */

	/* Results, written by the worker. */
	int status;
	char err[1024];
	struct buf answer;
};

/* ---- execution and rendering (shared with the CLI) ------------------------- */

PGresult *rollup_exec(PGconn *conn, const struct rollup_sql *s, int *status, char *state, char *err,
		      size_t errlen)
{
	PGresult *res = PQexecParams(conn, s->text.data, s->nparams, NULL,
				     (const char *const *)s->params, NULL, NULL, 0);

	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		return res;
	db_result_error(conn, res, err, errlen);
	db_result_sqlstate(res, state);
	*status = db_fault_status(db_classify(conn, res));
	PQclear(res);
	return NULL;
}

static const char *value_or_null(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NULL : PQgetvalue(res, row, col);
}

bool rollup_render_csv(const struct rollup_query *q, const PGresult *res, struct buf *out)
{
	int first = q->granularity == ROLLUP_TOTAL ? ROLLUP_COL0_GROUPS : 1, ncol = PQnfields(res);
	int measures = ROLLUP_COL0_GROUPS + q->ncols; /* before it: the period and names */

	if (q->granularity != ROLLUP_TOTAL)
		buf_puts(out, "period,");
	for (int i = 0; i < q->ncols; i++)
		buf_printf(out, "%s,", rollup_params_col_name(q->cols[i]));
	for (int i = 0, n = 0; i < ROLLUP_NMEASURES; i++)
		if (!(q->hide_cost && rollup_measure_is_cost(&rollup_measures[i])))
			buf_printf(out, "%s%s", n++ ? "," : "", rollup_measures[i].name);
	buf_puts(out, "\r\n");
	for (int r = 0; r < PQntuples(res); r++) {
		if (PQgetvalue(res, r, 0)[0] != '0')
			continue; /* the totals row */
		for (int c = first, n = 0; c < ncol; c++) {
			if (c >= measures && q->hide_cost &&
			    rollup_measure_is_cost(&rollup_measures[c - measures]))
				continue;
			buf_puts(out, n++ ? "," : "");
			csv_field(out, value_or_null(res, r, c),
				  !q->csv_raw && c >= ROLLUP_COL0_GROUPS && c < measures);
		}
		buf_puts(out, "\r\n");
	}
	return !out->over;
}

/* The measures of row r, as JSON members. */
static void json_measures(const struct rollup_query *q, struct buf *out, const PGresult *res, int r)
{
	for (int i = 0, n = 0; i < ROLLUP_NMEASURES; i++) {
		const char *v = PQgetvalue(res, r, ROLLUP_COL0_GROUPS + q->ncols + i);

		if (q->hide_cost && rollup_measure_is_cost(&rollup_measures[i]))
			continue;
		buf_printf(out, "%s\"%s\":", n++ ? "," : "", rollup_measures[i].name);
		if (rollup_measures[i].kind == ROLLUP_MEASURE_MONEY)
			row_json_string(out, v); /* exact decimal string */
		else
			buf_puts(out, v); /* integer or exact numeric text: a JSON number */
	}
}

static bool rollup_render_json(const struct rollup_query *q, const PGresult *res, struct buf *out)
{
	int n = PQntuples(res) - 1; /* the last row holds the totals */
	char t[40];

	timefmt_format(q->from_us, t, sizeof(t));
	buf_printf(out, "{\"from\":\"%s\",", t);
	timefmt_format(q->to_us, t, sizeof(t));
	buf_printf(out, "\"to\":\"%s\",\"granularity\":\"%s\",\"group_by\":[", t,
		   rollup_params_granularity_name(q->granularity));
	for (int i = 0; i < q->ncols; i++)
		buf_printf(out, "%s\"%s\"", i ? "," : "", rollup_params_col_name(q->cols[i]));
	buf_puts(out, "],\"rows\":[");
	for (int r = 0; r < n; r++) {
		buf_puts(out, r ? ",{" : "{");
		if (q->granularity != ROLLUP_TOTAL) {
			buf_puts(out, "\"period\":");
			row_json_string(out, PQgetvalue(res, r, 1));
			buf_putc(out, ',');
		}
		for (int i = 0; i < q->ncols; i++) {
			buf_printf(out, "\"%s\":", rollup_params_col_name(q->cols[i]));
			row_json_string(out, value_or_null(res, r, ROLLUP_COL0_GROUPS + i));
			buf_putc(out, ',');
		}
		json_measures(q, out, res, r);
		buf_putc(out, '}');
	}
	buf_puts(out, "],\"totals\":{");
	json_measures(q, out, res, n);
	buf_puts(out, "}}");
	return !out->over;
}

/* Runs the statement if it was built, then frees it. NULL with err and *status
 * when it could not be built or run. */
static PGresult *rollup_run(PGconn *conn, bool built, struct rollup_sql *sql, int *status,
			    char *state, char *err, size_t errlen)
{
	PGresult *res = NULL;

	*status = 503;
	if (built)
		res = rollup_exec(conn, sql, status, state, err, errlen);
	else
		snprintf(err, errlen, "out of memory");
	rollup_sql_free(sql);
	return res;
}

/* 200 once the answer is complete, 503 when it ran out of memory. */
static int rollup_rendered(const struct buf *out, char *err, size_t errlen)
{
	if (!out->over)
		return 200;
	snprintf(err, errlen, "out of memory rendering the answer");
	return 503;
}

PGresult *rollup_fetch(PGconn *conn, const struct rollup_query *q, int *status, char *state,
		       char *err, size_t errlen)
{
	struct rollup_sql sql;
	PGresult *res =
		rollup_run(conn, rollup_sql_rollups(q, &sql), &sql, status, state, err, errlen);

	if (res && PQntuples(res) < 1) {
		snprintf(err, errlen, "rollup query returned no totals row");
		*status = 500;
		PQclear(res);
		res = NULL;
	}
	return res;
}

static int answer_rollups(PGconn *conn, const struct rollup_query *q, struct buf *out, char *state,
			  char *err, size_t errlen)
{
	int status;
	PGresult *res = rollup_fetch(conn, q, &status, state, err, errlen);

	if (!res)
		return status;
	if (q->csv)
		rollup_render_csv(q, res, out);
	else
		rollup_render_json(q, res, out);
	PQclear(res);
	return rollup_rendered(out, err, errlen);
}

/* /v1/costs in VoiceGateway's shape. Costs are JSON numbers, as there, but
 * printed from the exact numeric text. */
static int answer_costs(PGconn *conn, const struct rollup_query *q, struct buf *out, char *state,
			char *err, size_t errlen)
{
	static const struct {
		char kind;
		const char *member;
	} groups[] = { { 'p', "by_provider" }, { 'm', "by_model" }, { 'j', "by_project" } };
	struct rollup_sql sql;
	int status;
	PGresult *res =
		rollup_run(conn, rollup_sql_costs(q, &sql), &sql, &status, state, err, errlen);
	char t[40];
	const char *total = "0";

	if (!res)
		return status;
	for (int r = 0; r < PQntuples(res); r++)
		if (PQgetvalue(res, r, 0)[0] == 't')
			total = PQgetvalue(res, r, 3);
	buf_puts(out, "{\"period\":");
	row_json_string(out, q->period[0] ? q->period : "custom");
	if (q->has_from) {
		timefmt_format(q->from_us, t, sizeof(t));
		buf_printf(out, ",\"from\":\"%s\"", t);
	}
	timefmt_format(q->to_us, t, sizeof(t));
	buf_printf(out, ",\"to\":\"%s\",\"total\":%s", t, total);
	for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
		int n = 0;

		buf_printf(out, ",\"%s\":{", groups[g].member);
		for (int r = 0; r < PQntuples(res); r++) {
			const char *name = value_or_null(res, r, 1);

			if (PQgetvalue(res, r, 0)[0] != groups[g].kind)
				continue;
			buf_puts(out, n++ ? "," : "");
			row_json_string(out, name ? name : "unknown");
			buf_printf(out, ":{\"cost\":%s,\"requests\":%s}", PQgetvalue(res, r, 3),
				   PQgetvalue(res, r, 2));
		}
		buf_putc(out, '}');
	}
	buf_putc(out, '}');
	PQclear(res);
	return rollup_rendered(out, err, errlen);
}

/* /v1/rows: newest first, each row built as JSON by PostgreSQL. */
static int answer_rows(PGconn *conn, const struct rollup_query *q, struct buf *out, char *state,
		       char *err, size_t errlen)
{
	struct rollup_sql sql;
	int status, n;
	PGresult *res =
		rollup_run(conn, rollup_sql_rows(q, &sql), &sql, &status, state, err, errlen);

	if (!res)
		return status;
	n = PQntuples(res);
	buf_puts(out, "{\"rows\":[");
	for (int r = 0; r < n && r < q->limit; r++) {
		buf_puts(out, r ? "," : "");
		buf_puts(out, PQgetvalue(res, r, 0));
	}
	buf_puts(out, "],\"next\":");
	if (n > q->limit) {
		/* More rows: the cursor is the last row shown. */
		buf_putc(out, '"');
		rollup_cursor_encode(strtoll(PQgetvalue(res, q->limit - 1, 1), NULL, 10),
				     PQgetvalue(res, q->limit - 1, 2), out);
		buf_putc(out, '"');
	} else {
		buf_puts(out, "null");
	}
	buf_putc(out, '}');
	PQclear(res);
	return rollup_rendered(out, err, errlen);
}

/* {"from","to","models":[{provider, model_id, modality, rows, cost_usd,
 * first_seen, last_seen}]}: the models the price book lacks. */
static int answer_unpriced(PGconn *conn, const struct rollup_query *q, struct buf *out, char *state,
			   char *err, size_t errlen)
{
	static const char *const names[] = { "provider", "model_id",   "modality", "rows",
					     "cost_usd", "first_seen", "last_seen" };
	struct rollup_sql sql;
	int status;
	PGresult *res =
		rollup_run(conn, rollup_sql_unpriced(q, &sql), &sql, &status, state, err, errlen);
	char t[40];

	if (!res)
		return status;
	timefmt_format(q->from_us, t, sizeof(t));
	buf_printf(out, "{\"from\":\"%s\",", t);
	timefmt_format(q->to_us, t, sizeof(t));
	buf_printf(out, "\"to\":\"%s\",\"models\":[", t);
	for (int r = 0; r < PQntuples(res); r++) {
		buf_puts(out, r ? ",{" : "{");
		for (int c = 0; c < 7; c++) {
			buf_printf(out, "%s\"%s\":", c ? "," : "", names[c]);
			if (c == 3)
				buf_puts(out, PQgetvalue(res, r, c)); /* a count */
			else
				row_json_string(out,
						value_or_null(res, r, c)); /* money as a string */
		}
		buf_putc(out, '}');
	}
	buf_puts(out, "]}");
	PQclear(res);
	return out->over ? 503 : 200;
}

int rollup_answer(PGconn *conn, const struct rollup_query *q, struct buf *out, char *state,
		  char *err, size_t errlen)
{
	if (state)
		state[0] = '\0';
	switch (q->kind) {
	case ROLLUP_KIND_ROLLUPS: return answer_rollups(conn, q, out, state, err, errlen);
	case ROLLUP_KIND_COSTS: return answer_costs(conn, q, out, state, err, errlen);
	case ROLLUP_KIND_UNPRICED: return answer_unpriced(conn, q, out, state, err, errlen);
	case ROLLUP_KIND_USAGE: return billing_usage_answer(conn, q, out, state, err, errlen);
	case ROLLUP_KIND_ROWS: break;
	}
	return answer_rows(conn, q, out, state, err, errlen);
}

/* ---- the pool job -------------------------------------------------------------- */

static void rollup_job_free(struct rollup_job *job)
{
	rollup_query_free(&job->q);
	buf_release(&job->answer);
	free(job);
}

/* Worker thread. May run twice: again on the primary when the standby's
 * connection failed, or the standby lacked what the read names
 * (pool_set_fallback, replica.c), so it starts from an empty answer. */
static void rollup_work(struct pool_job *pj, struct pool_worker *w)
{
	struct rollup_job *job = (struct rollup_job *)pj;
	char state[DB_SQLSTATE_SIZE];
	PGconn *conn;

	buf_reset(&job->answer);
	if (!(conn = pool_worker_conn(w, job->err, sizeof(job->err)))) {
		job->status = 503;
		return;
	}
	job->status = rollup_answer(conn, &job->q, &job->answer, state, job->err, sizeof(job->err));
	if (job->status == 503 && PQstatus(conn) != CONNECTION_OK)
		pool_worker_reset(w);
	else if (job->status != 200)
		pool_worker_failed(w, state, job->err);
}

/* Loop thread. */
static void rollup_done(struct pool_job *pj)
{
	struct rollup_job *job = (struct rollup_job *)pj;
	struct http_req *hr = job->hr;

	if (job->job.rerouted && hr->req) { /* the standby failed it; the primary ran it */
		evhttp_remove_header(evhttp_request_get_output_headers(hr->req),
				     REPLICA_SOURCE_HEADER);
		http_set_header(hr, REPLICA_SOURCE_HEADER, "primary");
	}
	if (job->status == 200) {
		http_reply(hr, 200,
			   job->q.csv ? "text/csv; charset=utf-8; header=present"
				      : "application/json",
			   job->answer.data ? job->answer.data : "", job->answer.len);
	} else {
		/* job->err may be the database's text (paths, index names): the log
		 * gets it, with the request id; the client gets our words. */
		http_reply_internal(hr, job->status,
				    job->status == 503
					    ? "the database is unreachable or busy; retry shortly"
					    : "the read failed inside the collector",
				    job->err);
	}
	rollup_job_free(job);
}

/* A copy of the request's raw query string ("" without one), for
 * rollup_params_split; NULL when out of memory. */
static char *rollup_query_string(struct http_req *hr)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hr->req);
	const char *qs = uri ? evhttp_uri_get_query(uri) : NULL;

	return strdup(qs ? qs : "");
}

static void rollup_submit(struct http_req *hr, enum rollup_kind kind)
{
	struct server *srv = hr->srv;
	const struct auth_key *key = hr->key;
	struct rollup_param *params;
	struct rollup_limits lim = { srv->cfg.max_rollup_periods, clock_epoch() };
	struct rollup_job *job;
	char err[1024], *qs;
	int n, st;

	job = calloc(1, sizeof(*job));
	params = calloc(ROLLUP_MAX_PARAMS, sizeof(*params));
	qs = rollup_query_string(hr);
	if (!job || !params || !qs) {
		free(job);
		free(params);
		free(qs);
		http_reply_oom(hr);
		return;
	}
	rollup_query_init(&job->q, kind);
	buf_init(&job->answer, 0);
	/* Split here rather than with evhttp: it would cut a value at %00. */
	st = rollup_params_split(qs, params, &n, err, sizeof(err));
	if (st == 200)
		st = rollup_query_parse(&job->q, params, n, &lim, err, sizeof(err));
	free(params);
	free(qs);
	if (st == 200 && kind == ROLLUP_KIND_ROLLUPS && !job->q.format_given) {
		const char *accept = http_header(hr, "Accept");
		job->q.csv = accept && strstr(accept, "text/csv") != NULL;
	}
	if (st == 200)
		st = rollup_scope_apply(&job->q, key->project, key->tenant, key->prefix, err,
					sizeof(err));
	/* Acquisition cost is operator information: never shown to a tenant key
	 * in billing, and nowhere with hide_cost_from_tenants = on. */
	job->q.hide_cost = key->tenant && (kind == ROLLUP_KIND_USAGE ||
					   srv->cfg.hide_cost_from_tenants == CONFIG_ON);
	if (st == 200 && job->q.hide_cost &&
	    (kind == ROLLUP_KIND_COSTS || kind == ROLLUP_KIND_UNPRICED) &&
	    billing_scope_refuse(hr, kind == ROLLUP_KIND_COSTS ? "/v1/costs" : "unpriced cost")) {
		rollup_job_free(job);
		return;
	}
	if (st != 200) {
		http_reply_status(hr, st, err);
		rollup_job_free(job);
		return;
	}
	job->job.work = rollup_work;
	job->job.done = rollup_done;
	job->hr = hr;
	if (!pool_submit(hr->pool, &job->job)) {
		rollup_job_free(job);
		http_reply_saturated(hr);
		return;
	}
	http_defer(hr);
}

void rollup_handle_rollups(struct http_req *hr)
{
	rollup_submit(hr, ROLLUP_KIND_ROLLUPS);
}

void rollup_handle_costs(struct http_req *hr)
{
	rollup_submit(hr, ROLLUP_KIND_COSTS);
}

void rollup_handle_unpriced(struct http_req *hr)
{
	rollup_submit(hr, ROLLUP_KIND_UNPRICED);
}

void rollup_handle_usage(struct http_req *hr)
{
	rollup_submit(hr, ROLLUP_KIND_USAGE);
}

void rollup_handle_rows(struct http_req *hr)
{
	rollup_submit(hr, ROLLUP_KIND_ROWS);
}
