/* The FOCUS export and billing periods over HTTP. On the loop: authenticate,
 * parse and scope the parameters. On a pool worker: focus.c or periods.c,
 * then the answer. Read and admin keys read; only admin keys close or reopen.
 * A key scoped to a tenant or project sees only its own lines and workers. */
#include "focus_http.h"

#include <cJSON.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "billing_scope.h"
#include "buf.h"
#include "clock.h"
#include "focus.h"
#include "http_stream.h"
#include "jsoncheck.h"
#include "periods.h"
#include "pool.h"
#include "rollup_params.h"
#include "rollup_scope.h"
#include "timefmt.h"

enum focus_http_op {
	FOCUS_OP_EXPORT,
	FOCUS_OP_MANIFEST,
	FOCUS_OP_LIST,
	FOCUS_OP_CLOSE,
	FOCUS_OP_REOPEN
};

struct focus_http_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct http_req *hr;
	enum focus_http_op op;
	struct rollup_query q; /* the tenant and project filters; owns its strings */
	long long month_us;
	bool force;
	int grace_s;
	int fetch_rows; /* export_fetch_rows */
	char account[256];
	char by[64];

	/* Results, written by the worker. */
	int status;
	char err[1024];
	struct buf answer;
};

void focus_http_account(const char *configured, char *out, size_t outlen)
{
	if (configured && configured[0]) {
		snprintf(out, outlen, "%s", configured);
		return;
	}
	if (gethostname(out, outlen) != 0 || !out[0])
		snprintf(out, outlen, "vgcollector");
	out[outlen - 1] = '\0';
}

static void focus_http_job_free(struct focus_http_job *job)
{
	rollup_query_free(&job->q);
	buf_release(&job->answer);
	free(job);
}

/* Worker thread. */
static void focus_http_work(struct pool_job *pj, struct pool_worker *w)
{
	struct focus_http_job *job = (struct focus_http_job *)pj;
	struct focus_params p = { job->month_us, job->account,
				  &job->q,	 job->op == FOCUS_OP_MANIFEST,
				  NULL,		 job->fetch_rows };
	struct focus_result r;
	PGconn *conn = pool_worker_conn(w, job->err, sizeof(job->err));

	if (!conn) {
		job->status = 503;
		return;
	}
	buf_reset(&job->answer); /* re-runnable from a clean result */
	switch (job->op) {
	case FOCUS_OP_EXPORT: /* streamed: focus_http_produce */
	case FOCUS_OP_MANIFEST:
		job->status = focus_export(conn, &p, &r, job->err, sizeof(job->err));
		if (job->status == 200)
			focus_manifest_render(&p, &r, (long long)(clock_epoch() * 1e6),
					      &job->answer);
		focus_result_free(&r);
		break;
	case FOCUS_OP_LIST:
		job->status = periods_list(conn, &job->q, job->grace_s, &job->answer, job->err,
					   sizeof(job->err));
		break;
	case FOCUS_OP_CLOSE:
		job->status = periods_close(conn, job->month_us, job->force, job->by, job->grace_s,
					    job->account, &job->answer, job->err, sizeof(job->err));
		break;
	case FOCUS_OP_REOPEN:
		job->status =
			periods_reopen(conn, job->month_us, job->by, job->err, sizeof(job->err));
		if (job->status == 200)
			buf_puts(&job->answer, "{\"reopened\":true}");
		break;
	}
	if (job->status == 200 && job->answer.over) {
		job->status = 503;
		snprintf(job->err, sizeof(job->err), "out of memory rendering the answer");
	}
	if (job->status >= 500 && PQstatus(conn) != CONNECTION_OK)
		pool_worker_reset(w);
}

/* Answers a failed request: 409 names the problem; anything else is internal. */
static void focus_http_fail(struct http_req *hr, int status, const char *err)
{
	if (status == 409)
		http_reply_error(hr, 409, "%s", err);
	else
		http_reply_internal(
			hr, status >= 500 ? status : 500,
			status == 503 ? "the database is unreachable or busy; retry shortly"
				      : "the billing period request failed inside the collector",
			err);
}

/* Loop thread. */
static void focus_http_done(struct pool_job *pj)
{
	struct focus_http_job *job = (struct focus_http_job *)pj;
	struct http_req *hr = job->hr;
	const char *body = job->answer.data ? job->answer.data : "";

	if (job->status == 200)
		http_reply(hr, 200, "application/json", body, job->answer.len);
	else
		focus_http_fail(hr, job->status, job->err);
	focus_http_job_free(job);
}

/* The export's sink: each piece of CSV into the chunked reply. Worker thread. */
static bool focus_http_sink_write(void *arg, const char *data, size_t len)
{
	return http_stream_write(arg, data, len);
}

/* Streams the export (worker thread): the CSV goes out as it is read. */
static int focus_http_produce(struct http_stream *st, struct pool_worker *w, void *arg, char *err,
			      size_t errlen)
{
	struct focus_http_job *job = arg;
	struct focus_sink sink = { focus_http_sink_write, st };
	struct focus_params p = { job->month_us, job->account, &job->q,
				  false,	 &sink,	       job->fetch_rows };
	struct focus_result r;
	PGconn *conn = pool_worker_conn(w, err, errlen);
	int status;

	if (!conn)
		return 503;
	status = focus_export(conn, &p, &r, err, errlen);
	focus_result_free(&r);
	if (status >= 500 && PQstatus(conn) != CONNECTION_OK)
		pool_worker_reset(w);
	return status;
}

/* Loop thread: the export failed before its first byte. */
static void focus_http_produce_failed(struct http_req *hr, int status, const char *err, void *arg)
{
	(void)arg;
	focus_http_fail(hr, status, err);
}

/* Loop thread: the export's headers, just before its first byte. */
static void focus_http_export_headers(struct http_req *hr, void *arg)
{
	struct focus_http_job *job = arg;
	char disp[80], name[16];

	focus_period_name(job->month_us, name, sizeof(name));
	snprintf(disp, sizeof(disp), "attachment; filename=\"focus-%s.csv\"", name);
	http_set_header(hr, "Content-Disposition", disp);
}

static void focus_http_job_free_arg(void *arg)
{
	focus_http_job_free(arg);
}

static const struct http_stream_spec focus_http_export_stream = {
	.content_type = "text/csv; charset=utf-8; header=present",
	.headers = focus_http_export_headers,
	.produce = focus_http_produce,
	.fail = focus_http_produce_failed,
	.arg_free = focus_http_job_free_arg,
};

static struct focus_http_job *focus_http_job_new(struct http_req *hr, enum focus_http_op op)
{
	struct focus_http_job *job = calloc(1, sizeof(*job));

	if (!job) {
		http_reply_oom(hr);
		return NULL;
	}
	job->hr = hr;
	job->op = op;
	rollup_query_init(&job->q, ROLLUP_KIND_ROLLUPS);
	buf_init(&job->answer, 0);
	job->grace_s = hr->srv->cfg.period_grace_s;
	job->fetch_rows = hr->srv->cfg.export_fetch_rows;
	focus_http_account(hr->srv->cfg.focus_billing_account, job->account, sizeof(job->account));
	return job;
}

static void focus_http_submit(struct http_req *hr, struct focus_http_job *job)
{
	job->job.work = focus_http_work;
	job->job.done = focus_http_done;
	/* The route table puts the export (a whole month) and the close (freezing
	 * one) on the long pool, so ingest never waits behind them. */
	if (!pool_submit(hr->pool, &job->job)) {
		focus_http_job_free(job);
		http_reply_saturated(hr);
		return;
	}
	http_defer(hr);
}

/* billing_period= (required unless list) and tenant= (optional) from the
 * query string, then the key's scope. 200, or a status with err. */
static int focus_http_params(struct http_req *hr, const struct auth_key *key,
			     struct focus_http_job *job, bool need_period, char *err, size_t errlen)
{
	struct evkeyvalq kv;
	struct evkeyval *e;
	bool have_period = false;
	int st = 200;

	if (!http_query(hr, &kv)) {
		snprintf(err, errlen, "query string: malformed");
		return 400;
	}
	for (e = kv.tqh_first; e && st == 200; e = e->next.tqe_next) {
		if (need_period && strcmp(e->key, "billing_period") == 0) {
			if (!focus_period_parse(e->value, &job->month_us)) {
				snprintf(err, errlen,
					 "billing_period \"%.16s\": must be a month as YYYY-MM "
					 "(e.g. 2026-11)",
					 e->value);
				st = 400;
			}
			have_period = true;
		} else if (strcmp(e->key, "tenant") == 0) {
			struct rollup_filter *f = &job->q.filters[ROLLUP_COL_TENANT];

			if (f->n) {
				snprintf(err, errlen, "tenant: given more than once");
				st = 400;
			} else if (rollup_params_check_text("tenant", e->value, err, errlen) !=
				   200) {
				st = 400;
			} else {
				/* An empty value selects the unattributed lines. */
				f->values[0] = e->value[0] ? strdup(e->value) : NULL;
				f->n = 1;
				if (e->value[0] && !f->values[0]) {
					snprintf(err, errlen, "out of memory");
					st = 503;
				}
			}
		} else {
			snprintf(err, errlen, "%.64s: unknown parameter (%s)", e->key,
				 need_period ? "billing_period, tenant" : "tenant");
			st = 400;
		}
	}
	evhttp_clear_headers(&kv);
	if (st == 200 && need_period && !have_period) {
		snprintf(err, errlen, "billing_period: required, a month as YYYY-MM");
		st = 400;
	}
	if (st == 200)
		st = rollup_scope_apply(&job->q, key->project, key->tenant, key->prefix, err,
					errlen);
	return st;
}

static void focus_http_read(struct http_req *hr, enum focus_http_op op)
{
	const struct auth_key *key = hr->key;
	struct focus_http_job *job;
	char err[1024];
	int st;

	if (billing_scope_refuse(hr, "the FOCUS export"))
		return;
	if (!(job = focus_http_job_new(hr, op)))
		return;
	st = focus_http_params(hr, key, job, op != FOCUS_OP_LIST, err, sizeof(err));
	if (st != 200) {
		http_reply_status(hr, st, err);
		focus_http_job_free(job);
		return;
	}
	/* The export streams from the long pool (the route's) with bounded memory. */
	if (op == FOCUS_OP_EXPORT)
		(void)http_stream_start(hr, &focus_http_export_stream, job,
					hr->srv->cfg.export_buffer_bytes);
	else
		focus_http_submit(hr, job);
}

void focus_http_handle_export(struct http_req *hr)
{
	focus_http_read(hr, FOCUS_OP_EXPORT);
}

void focus_http_handle_manifest(struct http_req *hr)
{
	focus_http_read(hr, FOCUS_OP_MANIFEST);
}

void focus_http_handle_periods(struct http_req *hr)
{
	focus_http_read(hr, FOCUS_OP_LIST);
}

#define FOCUS_HTTP_PERIODS_PREFIX "/v1/periods/"

/* POST /v1/periods/{YYYY-MM}/close (body {"force":true} optional) and
 * POST /v1/periods/{YYYY-MM}/reopen. */
void focus_http_handle_period_act(struct http_req *hr)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hr->req);
	const char *path = uri ? evhttp_uri_get_path(uri) : "";
	const char *rest = path + strlen(FOCUS_HTTP_PERIODS_PREFIX);
	const struct auth_key *key = hr->key;
	struct focus_http_job *job;
	char month[8];
	const char *act = strchr(rest, '/');
	enum focus_http_op op;
	long long month_us;
	size_t len;

	if (!act || act - rest != 7) {
		http_reply_error(hr, 404, "expected /v1/periods/YYYY-MM/close or /reopen");
		return;
	}
	memcpy(month, rest, 7);
	month[7] = '\0';
	if (!focus_period_parse(month, &month_us)) {
		http_reply_error(hr, 400, "period \"%s\": must be a month as YYYY-MM", month);
		return;
	}
	if (strcmp(act, "/close") == 0) {
		op = FOCUS_OP_CLOSE;
	} else if (strcmp(act, "/reopen") == 0) {
		op = FOCUS_OP_REOPEN;
	} else {
		http_reply_error(hr, 404, "expected /v1/periods/YYYY-MM/close or /reopen");
		return;
	}
	if (key->tenant || key->project) {
		http_reply_error(hr, 403,
				 "key %s is scoped to a tenant or project; closing a billing "
				 "period takes an unscoped admin key",
				 key->prefix);
		return;
	}
	if (!(job = focus_http_job_new(hr, op)))
		return;
	job->month_us = month_us;
	snprintf(job->by, sizeof(job->by), "key:%s", key->prefix);
	/* The route caps the body at max_small_body_bytes; {"force":true} is all
	 * it may say, checked by ingest's strict rules before cJSON reads it. */
	const char *body = http_body(hr, &len);
	if (len > 0) {
		struct jsoncheck_info info;
		bool strict = jsoncheck_object_info(body, len, &info) && !info.nul;
		cJSON *root = strict ? cJSON_ParseWithLength(body, len) : NULL, *f;
		const char *bad = NULL;

		if (!root || !cJSON_IsObject(root))
			bad = "body: expected a JSON object such as {\"force\":true}";
		else if ((f = cJSON_GetObjectItemCaseSensitive(root, "force")) && !cJSON_IsBool(f))
			bad = "force: must be true or false";
		else if (f)
			job->force = cJSON_IsTrue(f);
		for (cJSON *it = root ? root->child : NULL; it && !bad; it = it->next)
			if (strcmp(it->string, "force") != 0)
				bad = "body: unknown member (only \"force\")";
		cJSON_Delete(root);
		if (bad) {
			http_reply_error(hr, 400, "%s", bad);
			focus_http_job_free(job);
			return;
		}
	}
	focus_http_submit(hr, job);
}
