/* Ingest request handling on the loop: authenticate, check encoding and size,
 * move the body into a job and queue it on the pool. The worker decodes,
 * validates and stores (ingest_decode.c, ingest_store.c) and builds the JSON
 * answer; the loop sends it only after the transaction has committed. */
#include "ingest.h"

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "budget_eval.h"
#include "clock.h"
#include "http.h"
#include "ingest_decode.h"
#include "ingest_store.h"
#include "metrics.h"
#include "pool.h"

struct ingest_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct http_req *hr;
	struct evbuffer *body; /* moved out of the request: no copy */
	bool gzip;
	bool turns;
	long long key_id;
	char *project; /* the key's scope, copied: the key cache may be swapped */
	char *tenant;
	struct ingest_limits limits;
	double now;

	/* Results, written by the worker. */
	int status;
	char err[1024];
	size_t inflated_len;
	int accepted, duplicates, rejected;
	struct buf answer;
};

static void ingest_job_free(struct ingest_job *job)
{
	if (job->body)
		evbuffer_free(job->body);
	free(job->project);
	free(job->tenant);
	buf_release(&job->answer);
	free(job);
}

static void ingest_answer_rows(struct ingest_job *job, const struct ingest_batch *b,
			       const struct ingest_result *res)
{
	struct buf *a = &job->answer;

	int i = 0, k = 0;

	job->accepted = res->accepted;
	job->duplicates = res->duplicates;
	job->rejected = b->nrejects + res->nrejects;
	buf_printf(a, "{\"accepted\":%d,\"duplicates\":%d,\"rejected\":%d,\"errors\":[",
		   res->accepted, res->duplicates, job->rejected);
	/* The decoder's rejects and the store's, merged in request order. */
	while (i < b->nrejects || k < res->nrejects) {
		const struct ingest_reject *r =
			k >= res->nrejects || (i < b->nrejects &&
					       b->rejects[i].index < res->rejects[k].index)
				? &b->rejects[i++]
				: &res->rejects[k++];

		buf_printf(a, "%s{\"index\":%d,\"error\":", i + k > 1 ? "," : "", r->index);
		row_json_string(a, r->reason);
		buf_putc(a, '}');
	}
	buf_puts(a, "]}");
}

/* Worker thread: decode, validate, store, and build the answer. */
static void ingest_work(struct pool_job *pj, struct pool_worker *w)
{
	struct ingest_job *job = (struct ingest_job *)pj;
	size_t len = evbuffer_get_length(job->body);
	const char *body = (const char *)evbuffer_pullup(job->body, -1);
	struct ingest_scope scope = { job->project, job->tenant };
	struct ingest_batch b;
	struct ingest_result res;

	if (job->turns) {
		cJSON *root = NULL;
		const cJSON *item;
		struct buf inflated;
		int stored = 0, total;

		buf_init(&inflated, job->limits.max_inflated_bytes);
		job->status = ingest_parse_array(body ? body : "", len, job->gzip, &job->limits,
						 &inflated, &root, job->err, sizeof(job->err));
		job->inflated_len = job->gzip ? inflated.len : len;
		if (job->status == 200)
			job->status = ingest_store_turns(w, root, NULL, job->key_id, job->project,
							 job->tenant, &stored, job->err,
							 sizeof(job->err));
		if (job->status == 200) {
			int i = 0, n = 0;

			total = cJSON_GetArraySize(root);
			job->accepted = stored;
			job->rejected = total - stored;
			buf_printf(&job->answer, "{\"accepted\":%d,\"rejected\":%d,\"errors\":[",
				   stored, total - stored);
			cJSON_ArrayForEach(item, root)
			{
				const char *why = ingest_turn_error(item, NULL, i);

				if (why) {
					buf_printf(&job->answer,
						   "%s{\"index\":%d,\"error\":", n++ ? "," : "", i);
					row_json_string(&job->answer, why);
					buf_putc(&job->answer, '}');
				}
				i++;
			}
			buf_puts(&job->answer, "]}");
		}
		cJSON_Delete(root);
		buf_release(&inflated);
		return;
	}

	job->status = ingest_decode(body ? body : "", len, job->gzip, &job->limits, &scope,
				    job->now, &b, job->err, sizeof(job->err));
	job->inflated_len = job->gzip ? b.inflated.len : len;
	if (job->status == 200) {
		job->status = ingest_store(w, &b, job->key_id, &res, job->err, sizeof(job->err));
		if (job->status == 200)
			ingest_answer_rows(job, &b, &res);
		ingest_result_release(&res);
	}
	ingest_batch_release(&b);
}

/* Loop thread: answer the client (if still there) and account. */
static void ingest_done(struct pool_job *pj)
{
	struct ingest_job *job = (struct ingest_job *)pj;
	struct http_req *hr = job->hr;
	size_t compressed = job->gzip ? evbuffer_get_length(job->body) : 0;

	metrics_bytes(evbuffer_get_length(job->body), compressed, job->inflated_len);
	if (job->status == 200) {
		metrics_rows((uint64_t)job->accepted, (uint64_t)job->duplicates,
			     (uint64_t)job->rejected);
		metrics_ingest_latency(clock_monotonic() - hr->started);
		if (job->accepted > 0)
			budget_eval_note_commit(hr->srv->budgets);
		if (job->rejected)
			log_req(LOG_LVL_INFO, &hr->log,
				"stored %d rows, %d duplicates, %d rejected", job->accepted,
				job->duplicates, job->rejected);
		http_reply(hr, 200, "application/json", job->answer.data ? job->answer.data : "{}",
			   job->answer.len);
	} else if (job->status == 503) {
		/* Our words to the client; the database's text only to the log. */
		http_reply_internal(
			hr, 503,
			job->turns ? "the turns could not be stored just now; retry shortly"
				   : "the batch could not be stored just now; retry shortly",
			job->err);
	} else if (job->status >= 500) {
		http_reply_internal(hr, job->status,
				    job->turns ? "the turns could not be stored"
					       : "the batch could not be stored",
				    job->err);
	} else {
		/* 400 and 413 from the decoder: the client's own fault, in our words. */
		http_reply_error(hr, job->status, "%s", job->err);
	}
	ingest_job_free(job);
}

static void ingest_submit(struct http_req *hr, bool turns)
{
	struct server *srv = hr->srv;
	const struct auth_key *key = hr->key;
	struct ingest_job *job;
	bool gzip;

	if (!http_body_check(hr, &gzip))
		return;
	job = calloc(1, sizeof(*job));
	if (!job || !(job->body = evbuffer_new())) {
		free(job);
		http_reply_oom(hr);
		return;
	}
	job->job.work = ingest_work;
	job->job.done = ingest_done;
	job->hr = hr;
	job->gzip = gzip;
	job->turns = turns;
	job->key_id = key->id;
	job->project = key->project ? strdup(key->project) : NULL;
	job->tenant = key->tenant ? strdup(key->tenant) : NULL;
	job->limits.max_inflated_bytes = srv->cfg.max_inflated_bytes;
	job->limits.max_batch_rows = srv->cfg.max_batch_rows;
	config_row_limits(&srv->cfg, &job->limits.row);
	job->limits.max_element_values = (size_t)srv->cfg.max_element_values;
	job->limits.max_reject_raw_bytes = srv->cfg.max_reject_raw_bytes;
	job->now = clock_epoch();
	buf_init(&job->answer, 0);
	if ((key->project && !job->project) || (key->tenant && !job->tenant)) {
		ingest_job_free(job);
		http_reply_oom(hr);
		return;
	}
	evbuffer_add_buffer(job->body, evhttp_request_get_input_buffer(hr->req));
	if (!pool_submit(hr->pool, &job->job)) {
		ingest_job_free(job);
		http_reply_saturated(hr);
		return;
	}
	http_defer(hr);
}

void ingest_handle(struct http_req *hr)
{
	ingest_submit(hr, false);
}

void ingest_handle_turns(struct http_req *hr)
{
	ingest_submit(hr, true);
}
