/* POST /v1/billing/price-book[?effective_from=DATE]: one voice-prices feed
 * as the body (admin key). On the loop: the key, the size and the date. On a
 * worker: inflate, parse the feed strictly and store it as a revision. */
#include "price_book_http.h"

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gz.h"
#include "http.h"
#include "pool.h"
#include "price_book.h"
#include "vgcollector.h"

struct price_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct http_req *hr;
	struct evbuffer *body; /* moved out of the request */
	bool gzip;
	size_t max_bytes;
	struct price_import imp;

	/* Results, written by the worker. */
	int status;
	bool created;
	char revision[65];
	char err[1024];
};

static void price_job_free(struct price_job *job)
{
	if (job->body)
		evbuffer_free(job->body);
	price_import_release(&job->imp);
	free(job);
}

/* Worker thread. */
static void price_work(struct pool_job *pj, struct pool_worker *w)
{
	struct price_job *job = (struct price_job *)pj;
	size_t len = evbuffer_get_length(job->body);
	const char *text = (const char *)evbuffer_pullup(job->body, -1);
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
			snprintf(job->err, sizeof(job->err),
				 "the inflated feed is larger than max_price_feed_bytes (%zu)",
				 job->max_bytes);
			job->status = 413;
			goto out;
		case GZ_BAD: job->status = 400; goto out;
		}
		text = inflated.data ? inflated.data : "";
		len = inflated.len;
	}
	if (!price_import_add_feed(&job->imp, text, len, job->err, sizeof(job->err))) {
		job->status = 400;
		goto out;
	}
	if (!(conn = pool_worker_conn(w, job->err, sizeof(job->err)))) {
		job->status = 503;
		goto out;
	}
	job->status = price_import_store(conn, &job->imp, job->revision, &job->created, job->err,
					 sizeof(job->err));
	if (job->status == 503 && PQstatus(conn) != CONNECTION_OK)
		pool_worker_reset(w);
out:
	buf_release(&inflated);
}

/* Loop thread. */
static void price_done(struct pool_job *pj)
{
	struct price_job *job = (struct price_job *)pj;
	struct http_req *hr = job->hr;
	char body[160];

	if (job->status == 200) {
		snprintf(body, sizeof(body), "{\"revision\":\"%s\",\"created\":%s}", job->revision,
			 job->created ? "true" : "false");
		http_reply_json(hr, job->created ? 201 : 200, body);
	} else if (job->status < 500) {
		http_reply_error(hr, job->status, "%s", job->err); /* the feed's fault, our words */
	} else {
		http_reply_internal(hr, job->status,
				    job->status == 503
					    ? "the database is unreachable or busy; retry shortly"
					    : "the price book import failed inside the collector",
				    job->err);
	}
	price_job_free(job);
}

void price_book_http_import(struct http_req *hr)
{
	struct server *srv = hr->srv;
	struct evkeyvalq q;
	struct evkeyval *kv;
	struct price_job *job;
	size_t len;
	bool gzip, ok = true;
	char err[256];

	if (hr->key->tenant || hr->key->project) {
		http_reply_error(hr, 403,
				 "key %s is scoped to a tenant or project; the price book is the "
				 "operator's and takes an unscoped admin key",
				 hr->key->prefix);
		return;
	}
	if (!http_body_check(hr, &gzip))
		return;
	len = evbuffer_get_length(evhttp_request_get_input_buffer(hr->req));
	if (len > srv->cfg.max_price_feed_bytes) {
		http_reply_error(hr, 413,
				 "feed of %zu bytes is larger than max_price_feed_bytes (%zu)", len,
				 srv->cfg.max_price_feed_bytes);
		return;
	}
	if (!http_query(hr, &q)) {
		http_reply_error(hr, 400, "the query string is malformed");
		return;
	}
	if (!(job = calloc(1, sizeof(*job))) || !(job->body = evbuffer_new())) {
		free(job);
		evhttp_clear_headers(&q);
		http_reply_oom(hr);
		return;
	}
	price_import_init(&job->imp);
	for (kv = q.tqh_first; kv; kv = kv->next.tqe_next) {
		if (strcmp(kv->key, "effective_from") == 0) {
			ok = price_import_effective(&job->imp, kv->value, err, sizeof(err));
		} else {
			snprintf(err, sizeof(err),
				 "unknown parameter \"%.64s\": the only one is effective_from",
				 kv->key);
			ok = false;
		}
		if (!ok)
			break;
	}
	evhttp_clear_headers(&q);
	if (!ok) {
		http_reply_error(hr, 400, "%s", err);
		price_job_free(job);
		return;
	}
	job->job.work = price_work;
	job->job.done = price_done;
	job->hr = hr;
	job->gzip = gzip;
	job->max_bytes = srv->cfg.max_price_feed_bytes;
	evbuffer_add_buffer(job->body, evhttp_request_get_input_buffer(hr->req));
	if (!pool_submit(hr->pool, &job->job)) {
		price_job_free(job);
		http_reply_saturated(hr);
		return;
	}
	http_defer(hr);
}
