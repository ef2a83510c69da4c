/* Ingest request handling on the loop: authenticate, pick the format from the
 * table below (route and content type), check encoding and size, move the
 * body into a job and queue it on the pool. The worker inflates the body once,
 * decodes it with the format's decoder (ingest_json.c, ingest_otlp.c,
 * ingest_turns.c),
 * validates and stores (ingest_store.c) and builds the format's answer; the
 * loop sends it only after the transaction has committed. */
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
#include "ingest_json.h"
#include "ingest_otlp.h"
#include "ingest_turns.h"
#include "ingest_store.h"
#include "metrics.h"
#include "pool.h"

struct ingest_job;

/* One ingest format: where it is posted, the content type that selects it
 * (NULL: any), how its body becomes a batch (NULL: the turns, stored as
 * jsonb by their own path), and how the answer and the errors are written. */
struct ingest_format {
	const char *route;
	const char *content_type;
	ingest_decode_fn decode;
	void (*answer)(struct ingest_job *job, const struct ingest_batch *b,
		       const struct ingest_result *res);
	bool otlp;	  /* answers and errors are OTLP messages */
	bool proto;	  /* ... in binary protobuf (else JSON) */
	const char *what; /* "the batch", for our words on a 5xx */
};

struct ingest_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct http_req *hr;
	struct evbuffer *body; /* moved out of the request: no copy */
	bool gzip;
	const struct ingest_format *fmt;
	long long key_id;
	char *project; /* the key's scope, copied: the key cache may be swapped */
	char *tenant;
	struct ingest_limits limits;
	double now;

	/* Results, written by the worker. */
	int status;
	char err[1024];
	size_t inflated_len;
	int accepted, duplicates, rejected, unpriced;
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
	job->unpriced = res->unpriced;
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

/* The OTLP answer: empty on full success, else partialSuccess naming the
 * first few reasons (the rejected spans are kept in ingest_rejects). */
static void ingest_answer_otlp(struct ingest_job *job, const struct ingest_batch *b,
			       const struct ingest_result *res)
{
	struct buf msg;
	int shown = 0;

	job->accepted = res->accepted;
	job->duplicates = res->duplicates;
	job->rejected = b->nrejects + res->nrejects;
	buf_init(&msg, 2048);
	for (int i = 0; i < b->nrejects + res->nrejects && shown < 3; i++, shown++) {
		const struct ingest_reject *r =
			i < b->nrejects ? &b->rejects[i] : &res->rejects[i - b->nrejects];

		buf_printf(&msg, "%sspan %d: %s", shown ? "; " : "", r->index, r->reason);
	}
	if (job->rejected > shown)
		buf_printf(&msg, "; and %d more", job->rejected - shown);
	(void)ingest_otlp_answer(job->fmt->proto, job->rejected, msg.data, &job->answer);
	buf_release(&msg);
}

static const struct ingest_format ingest_formats[] = {
	{ "/v1/ingest", NULL, ingest_json_decode, ingest_answer_rows, false, false, "the batch" },
	{ "/v1/ingest/turns", NULL, NULL, NULL, false, false, "the turns" },
	{ "/v1/traces", "application/x-protobuf", ingest_otlp_decode_proto, ingest_answer_otlp,
	  true, true, "the spans" },
	{ "/v1/traces", "application/json", ingest_otlp_decode_json, ingest_answer_otlp, true,
	  false, "the spans" },
};

/* The format for route and the request's content type (its parameters, such
 * as "; charset=utf-8", aside); NULL when the route takes no such type. */
static const struct ingest_format *ingest_format_of(const char *route, const char *ctype)
{
	size_t n = ctype ? strcspn(ctype, "; \t") : 0;

	for (size_t i = 0; i < sizeof(ingest_formats) / sizeof(ingest_formats[0]); i++) {
		const struct ingest_format *f = &ingest_formats[i];

		if (strcmp(f->route, route) != 0)
			continue;
		if (!f->content_type || (ctype && strlen(f->content_type) == n &&
					 strncasecmp(f->content_type, ctype, n) == 0))
			return f;
	}
	return NULL;
}

/* Worker thread: the turns: parse, store each as jsonb, answer. */
static void ingest_work_turns(struct ingest_job *job, struct pool_worker *w, const char *text,
			      size_t len)
{
	cJSON *root = NULL;
	int stored = 0;

	job->status =
		ingest_parse_turns(text, len, &job->limits, &root, job->err, sizeof(job->err));
	if (job->status == 200)
		job->status = ingest_store_turns(w, root, NULL, job->key_id, job->project,
						 job->tenant, &stored, job->err, sizeof(job->err));
	if (job->status == 200) {
		job->accepted = stored;
		job->rejected = cJSON_GetArraySize(root) - stored;
		ingest_turns_answer(root, stored, &job->answer);
	}
	cJSON_Delete(root);
}

/* Worker thread: inflate once, decode, validate, store, and build the answer. */
static void ingest_work(struct pool_job *pj, struct pool_worker *w)
{
	struct ingest_job *job = (struct ingest_job *)pj;
	size_t len = evbuffer_get_length(job->body), textlen;
	const char *body = (const char *)evbuffer_pullup(job->body, -1), *text;
	struct ingest_scope scope = { job->project, job->tenant };
	struct ingest_batch b;
	struct ingest_result res;

	memset(&b, 0, sizeof(b));
	buf_init(&b.inflated, job->limits.max_inflated_bytes);
	job->status = ingest_inflate(body ? body : "", len, job->gzip, &job->limits, &b.inflated,
				     &text, &textlen, job->err, sizeof(job->err));
	job->inflated_len = job->gzip ? b.inflated.len : len;
	if (job->status == 200 && !job->fmt->decode)
		ingest_work_turns(job, w, text, textlen);
	else if (job->status == 200)
		job->status = job->fmt->decode(text, textlen, &job->limits, &scope, job->now, &b,
					       job->err, sizeof(job->err));
	if (job->status == 200 && job->fmt->decode) {
		job->status = ingest_store(w, &b, job->key_id, &res, job->err, sizeof(job->err));
		if (job->status == 200) {
			job->fmt->answer(job, &b, &res);
			job->unpriced = res.unpriced;
		}
		ingest_result_release(&res);
	}
	ingest_batch_release(&b);
}

/* An error answer in the format's own terms: OTLP's google.rpc.Status in the
 * request's encoding, or our JSON {"error": ...}. public is what the client
 * reads; detail (the database's text) goes only to the log. */
static void ingest_reply_failure(struct http_req *hr, const struct ingest_format *fmt, int status,
				 const char *public, const char *detail)
{
	struct buf b;
	char msg[1200];

	if (!fmt || !fmt->otlp) {
		if (detail)
			http_reply_internal(hr, status, public, detail);
		else
			http_reply_error(hr, status, "%s", public);
		return;
	}
	if (detail) {
		log_req(LOG_LVL_WARN, &hr->log, "%d: %s: %s", status, public, detail);
		snprintf(msg, sizeof(msg), "%s (request id %s)", public, hr->request_id);
	} else {
		log_req(LOG_LVL_INFO, &hr->log, "%d: %s", status, public);
		snprintf(msg, sizeof(msg), "%s", public);
	}
	if (status == 503 || status == 429)
		http_set_header(hr, "Retry-After", "1");
	buf_init(&b, 0);
	/* google.rpc.Code: INVALID_ARGUMENT, RESOURCE_EXHAUSTED, UNAVAILABLE, INTERNAL. */
	(void)ingest_otlp_status(fmt->proto,
				 status == 400	 ? 3
				 : status == 413 ? 8
				 : status == 503 ? 14
						 : 13,
				 msg, &b);
	http_reply(hr, status, fmt->proto ? "application/x-protobuf" : "application/json",
		   b.data ? b.data : "", b.len);
	buf_release(&b);
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
		metrics_unpriced((uint64_t)job->unpriced);
		metrics_ingest_latency(clock_monotonic() - hr->started);
		if (job->accepted > 0)
			budget_eval_note_commit(hr->srv->budgets);
		if (job->rejected)
			log_req(LOG_LVL_INFO, &hr->log,
				"stored %d rows, %d duplicates, %d rejected", job->accepted,
				job->duplicates, job->rejected);
		if (job->fmt->otlp)
			http_reply(hr, 200,
				   job->fmt->proto ? "application/x-protobuf" : "application/json",
				   job->answer.data ? job->answer.data : "", job->answer.len);
		else
			http_reply(hr, 200, "application/json",
				   job->answer.data ? job->answer.data : "{}", job->answer.len);
	} else if (job->status >= 500) {
		/* Our words to the client; the database's text only to the log. */
		char public[160];

		snprintf(public, sizeof(public),
			 job->status == 503 ? "%s could not be stored just now; retry shortly"
					    : "%s could not be stored",
			 job->fmt->what);
		ingest_reply_failure(hr, job->fmt, job->status, public, job->err);
	} else {
		/* 400 and 413 from the decoder: the client's own fault, in our words. */
		ingest_reply_failure(hr, job->fmt, job->status, job->err, NULL);
	}
	ingest_job_free(job);
}

static void ingest_submit(struct http_req *hr, const char *route)
{
	struct server *srv = hr->srv;
	const struct auth_key *key = hr->key;
	const char *ctype = http_header(hr, "Content-Type");
	const struct ingest_format *fmt;
	struct ingest_job *job;
	bool gzip;

	fmt = ingest_format_of(route, ctype);
	if (!fmt) {
		char msg[256];

		snprintf(msg, sizeof(msg),
			 "Content-Type \"%.64s\" is not supported: send application/x-protobuf or "
			 "application/json",
			 ctype ? ctype : "");
		/* In OTLP JSON: the one encoding a client sending another type may read. */
		ingest_reply_failure(hr, ingest_format_of(route, "application/json"), 415, msg,
				     NULL);
		return;
	}
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
	job->fmt = fmt;
	job->key_id = key->id;
	job->project = key->project ? strdup(key->project) : NULL;
	job->tenant = key->tenant ? strdup(key->tenant) : NULL;
	job->limits.max_inflated_bytes = srv->cfg.max_inflated_bytes;
	job->limits.max_decoded_bytes = srv->cfg.max_decoded_bytes;
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
	ingest_submit(hr, "/v1/ingest");
}

void ingest_handle_turns(struct http_req *hr)
{
	ingest_submit(hr, "/v1/ingest/turns");
}

void ingest_handle_traces(struct http_req *hr)
{
	ingest_submit(hr, "/v1/traces");
}
