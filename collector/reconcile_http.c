/* POST /v1/reconcile: the usage file as the body (CSV or JSON, gzip allowed),
 * the query in the query string. On the loop: authenticate (read or admin),
 * check type, encoding and size, parse and scope the query. On a worker of
 * the long-read pool (never ingest's): inflate up to reconcile_max_bytes, sum
 * the file per (model, day), run reconcile_sql and render the JSON report. */
#include "reconcile_http.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "gz.h"
#include "http.h"
#include "pool.h"
#include "reconcile.h"
#include "reconcile_file.h"
#include "reconcile_sql.h"
#include "rollup_params.h"

struct reconcile_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct http_req *hr;
	struct evbuffer *body; /* moved out of the request */
	bool gzip;
	enum reconcile_format format;
	size_t max_bytes; /* reconcile_max_bytes: the file after gunzip */
	struct reconcile_file_limits lim;
	struct reconcile_query q; /* owns its strings */

	/* Results, written by the worker. */
	int status;
	char err[1024];
	struct buf answer;
};

static void reconcile_job_free(struct reconcile_job *job)
{
	if (job->body)
		evbuffer_free(job->body);
	reconcile_query_free(&job->q);
	buf_release(&job->answer);
	free(job);
}

/* Worker thread. */
static void reconcile_work(struct pool_job *pj, struct pool_worker *w)
{
	struct reconcile_job *job = (struct reconcile_job *)pj;
	size_t len = evbuffer_get_length(job->body);
	const char *text = (const char *)evbuffer_pullup(job->body, -1);
	struct reconcile_file f;
	struct reconcile_report rep;
	struct buf inflated;
	PGconn *conn;

	buf_init(&inflated, 0);
	if (!text)
		text = "";
	if (job->gzip) {
		switch (gz_inflate(text, len, job->max_bytes, &inflated, job->err,
				   sizeof(job->err))) {
		case GZ_OK: break;
		case GZ_TOO_BIG:
			snprintf(
				job->err, sizeof(job->err),
				"the usage file inflates past reconcile_max_bytes (%zu bytes); sum "
				"it per model and day, or split it by date",
				job->max_bytes);
			job->status = 413;
			goto out;
		case GZ_BAD: job->status = 400; goto out;
		}
		text = inflated.data ? inflated.data : "";
		len = inflated.len;
	} else if (len > job->max_bytes) {
		snprintf(
			job->err, sizeof(job->err),
			"the usage file is larger than reconcile_max_bytes (%zu bytes); sum it per "
			"model and day, or split it by date",
			job->max_bytes);
		job->status = 413;
		goto out;
	}
	job->status = reconcile_file_parse(job->q.provider, text, len, job->format, job->q.from_us,
					   job->q.to_us, &job->lim, &f, job->err, sizeof(job->err));
	/* The text is summed into f: let its memory go before the query runs. */
	buf_release(&inflated);
	evbuffer_free(job->body);
	job->body = NULL;
	if (job->status != 200)
		goto out;
	if (!(conn = pool_worker_conn(w, job->err, sizeof(job->err)))) {
		job->status = 503;
		reconcile_file_release(&f);
		goto out;
	}
	job->status = reconcile_sql_run(conn, &job->q, &f, &rep, job->err, sizeof(job->err));
	reconcile_file_release(&f);
	if (job->status == 200) {
		if (!reconcile_render_json(&rep, &job->answer)) {
			snprintf(job->err, sizeof(job->err), "out of memory rendering the report");
			job->status = 503;
		}
		reconcile_report_free(&rep);
	} else if (job->status == 503 && PQstatus(conn) != CONNECTION_OK) {
		pool_worker_reset(w);
	}
out:
	buf_release(&inflated);
}

/* Loop thread. */
static void reconcile_done(struct pool_job *pj)
{
	struct reconcile_job *job = (struct reconcile_job *)pj;
	struct http_req *hr = job->hr;

	if (job->status == 200)
		http_reply(hr, 200, "application/json", job->answer.data, job->answer.len);
	else if (job->status < 500)
		http_reply_error(hr, job->status, "%s", job->err); /* the file's fault, our words */
	else
		http_reply_internal(hr, job->status,
				    job->status == 503
					    ? "the database is unreachable or busy; retry shortly"
					    : "the reconciliation failed inside the collector",
				    job->err);
	reconcile_job_free(job);
}

/* Confines the query to the key's scope: an unset filter takes the key's
 * value, a different one is refused. 200, 403 or 503. */
static int reconcile_scope(struct reconcile_query *q, const struct auth_key *key, char *err,
			   size_t errlen)
{
	struct {
		char **filter;
		const char *scope, *what;
	} s[] = { { &q->tenant, key->tenant, "tenant" }, { &q->project, key->project, "project" } };

	for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
		if (!s[i].scope)
			continue;
		if (*s[i].filter && strcmp(*s[i].filter, s[i].scope) != 0) {
			snprintf(err, errlen,
				 "key %s is scoped to %s \"%s\" and may not reconcile %s \"%.*s\"",
				 key->prefix, s[i].what, s[i].scope, s[i].what,
				 rollup_params_clip(*s[i].filter, 64), *s[i].filter);
			return 403;
		}
		if (!*s[i].filter && !(*s[i].filter = strdup(s[i].scope))) {
			snprintf(err, errlen, "out of memory");
			return 503;
		}
	}
	return 200;
}

/* The query string into q: 200, or 400/503 with err. */
static int reconcile_http_query(struct http_req *hr, struct reconcile_query *q, char *err,
				size_t errlen)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hr->req);
	const char *raw = uri ? evhttp_uri_get_query(uri) : NULL;
	struct rollup_param *params = calloc(ROLLUP_MAX_PARAMS, sizeof(*params));
	char *qs = strdup(raw ? raw : "");
	int n = 0, st;

	if (!params || !qs) {
		free(params);
		free(qs);
		snprintf(err, errlen, "out of memory");
		return 503;
	}
	st = rollup_params_split(qs, params, &n, err, errlen);
	for (int i = 0; st == 200 && i < n; i++)
		st = reconcile_query_set(q, params[i].name, params[i].value, err, errlen);
	if (st == 200)
		st = reconcile_query_check(q, err, errlen);
	free(params);
	free(qs);
	return st;
}

void reconcile_http_handle(struct http_req *hr)
{
	struct server *srv = hr->srv;
	const struct auth_key *key = hr->key;
	const char *type;
	struct reconcile_job *job;
	enum reconcile_format format;
	bool gzip;
	char err[1024];
	int st;

	type = http_header(hr, "Content-Type");
	if (type && strncasecmp(type, "text/csv", 8) == 0 && strchr("; ", type[8]))
		format = RECONCILE_CSV;
	else if (type && strncasecmp(type, "application/json", 16) == 0 && strchr("; ", type[16]))
		format = RECONCILE_JSON;
	else {
		http_reply_error(hr, 415,
				 "Content-Type \"%.64s\": send the usage file as text/csv or "
				 "application/json",
				 type ? type : "");
		return;
	}
	if (!http_body_check(hr, &gzip))
		return;
	if (!(job = calloc(1, sizeof(*job))) || !(job->body = evbuffer_new())) {
		free(job);
		http_reply_oom(hr);
		return;
	}
	reconcile_query_init(&job->q);
	buf_init(&job->answer, 0);
	st = reconcile_http_query(hr, &job->q, err, sizeof(err));
	if (st == 200)
		st = reconcile_scope(&job->q, key, err, sizeof(err));
	if (st != 200) {
		http_reply_status(hr, st, err);
		reconcile_job_free(job);
		return;
	}
	job->job.work = reconcile_work;
	job->job.done = reconcile_done;
	job->hr = hr;
	job->gzip = gzip;
	job->format = format;
	job->max_bytes = srv->cfg.reconcile_max_bytes;
	job->lim.max_records = srv->cfg.reconcile_max_records;
	job->lim.max_groups = srv->cfg.reconcile_max_groups;
	evbuffer_add_buffer(job->body, evhttp_request_get_input_buffer(hr->req));
	if (!pool_submit(hr->pool, &job->job)) {
		reconcile_job_free(job);
		http_reply_saturated(hr);
		return;
	}
	http_defer(hr);
}
