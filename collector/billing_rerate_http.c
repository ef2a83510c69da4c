/* POST /v1/billing/rerate and GET /v1/billing/rerates. On the loop: the key
 * (operators only), the small capped body checked strictly and parsed; on a
 * worker of the long pool: the re-rating (a read over cost_rows) or the list. */
#include "billing_rerate_http.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing_rerate.h"
#include "http.h"
#include "jsoncheck.h"
#include "pool.h"
#include "vgcollector.h"

/* Most runs GET /v1/billing/rerates lists. */
#define BILLING_RERATE_LIST_MAX 200

struct rerate_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct http_req *hr;
	bool list;
	struct billing_rerate r;

	/* Results, written by the worker. */
	int status;
	char err[1024];
	struct buf answer;
};

static void rerate_job_free(struct rerate_job *job)
{
	billing_rerate_release(&job->r);
	buf_release(&job->answer);
	free(job);
}

/* Worker thread. */
static void rerate_work(struct pool_job *pj, struct pool_worker *w)
{
	struct rerate_job *job = (struct rerate_job *)pj;
	PGconn *conn;

	buf_reset(&job->answer);
	if (!(conn = pool_worker_conn(w, job->err, sizeof(job->err)))) {
		job->status = 503;
		return;
	}
	job->status = job->list ? billing_rerate_list(conn, BILLING_RERATE_LIST_MAX, &job->answer,
						      job->err, sizeof(job->err))
				: billing_rerate_run(conn, &job->r, &job->answer, job->err,
						     sizeof(job->err));
	if (job->status == 503 && PQstatus(conn) != CONNECTION_OK)
		pool_worker_reset(w);
}

/* Loop thread. */
static void rerate_done(struct pool_job *pj)
{
	struct rerate_job *job = (struct rerate_job *)pj;
	struct http_req *hr = job->hr;

	if (job->status == 200)
		http_reply_json(hr, 200, job->answer.data ? job->answer.data : "{}");
	else if (job->status < 500)
		http_reply_error(hr, job->status, "%s", job->err); /* our words */
	else
		http_reply_internal(hr, job->status,
				    job->status == 503
					    ? "the database is unreachable or busy; retry shortly"
					    : "the re-rating failed inside the collector",
				    job->err);
	rerate_job_free(job);
}

/* A new job, or NULL after answering: re-rating is the operator's. */
static struct rerate_job *rerate_job_new(struct http_req *hr, const char *what)
{
	struct rerate_job *job;

	if (hr->key->tenant || hr->key->project) {
		http_reply_error(hr, 403,
				 "key %s is scoped to a tenant or project; %s takes an "
				 "unscoped key",
				 hr->key->prefix, what);
		return NULL;
	}
	if (!(job = calloc(1, sizeof(*job)))) {
		http_reply_oom(hr);
		return NULL;
	}
	billing_rerate_init(&job->r);
	buf_init(&job->answer, 0);
	job->job.work = rerate_work;
	job->job.done = rerate_done;
	job->hr = hr;
	return job;
}

static void rerate_submit(struct http_req *hr, struct rerate_job *job)
{
	if (!pool_submit(hr->pool, &job->job)) {
		rerate_job_free(job);
		http_reply_saturated(hr);
		return;
	}
	http_defer(hr);
}

void billing_rerate_http_run(struct http_req *hr)
{
	struct rerate_job *job = rerate_job_new(hr, "re-rating");
	const char *idem = http_header(hr, "Idempotency-Key");
	struct jsoncheck_info info;
	char err[512];
	size_t len;
	const char *body;
	int st;

	if (!job)
		return;
	/* The route caps the body at max_small_body_bytes; checked by ingest's
	 * strict JSON rules before cJSON reads it. */
	body = http_body(hr, &len);
	if (!body || !jsoncheck_object_info(body, len, &info) || info.nul) {
		snprintf(err, sizeof(err),
			 "body: expected a JSON object {\"from\",\"to\",\"tenant\"?,"
			 "\"dry_run\"?,\"reason\"?}");
		st = 400;
	} else {
		st = billing_rerate_parse(&job->r, body, len, err, sizeof(err));
	}
	if (st == 200 && idem && (!*idem || strlen(idem) > BILLING_RERATE_MAX_TEXT)) {
		snprintf(err, sizeof(err), "Idempotency-Key: expected 1 to %d bytes",
			 BILLING_RERATE_MAX_TEXT);
		st = 400;
	}
	if (st == 200 && idem && !(job->r.idem = strdup(idem))) {
		snprintf(err, sizeof(err), "out of memory");
		st = 503;
	}
	if (st != 200) {
		http_reply_status(hr, st, err);
		rerate_job_free(job);
		return;
	}
	snprintf(job->r.ran_by, sizeof(job->r.ran_by), "key:%s", hr->key->prefix);
	rerate_submit(hr, job);
}

void billing_rerate_http_list(struct http_req *hr)
{
	struct rerate_job *job = rerate_job_new(hr, "the list of re-ratings");

	if (!job)
		return;
	job->list = true;
	rerate_submit(hr, job);
}
