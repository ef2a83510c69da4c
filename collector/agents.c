/* Roster handlers. On the loop: authenticate, check the request, move what
 * the job needs into it (the key's scope copied: the key cache may be
 * swapped) and queue it on the pool. On a worker: decode the beat and upsert
 * it (agents_beat.c, agents_store.c), or run the listing and render it. The
 * tenant always comes from the key, never from the body. */
#include "agents.h"

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agents_beat.h"
#include "agents_flush.h"
#include "agents_page.h"
#include "agents_store.h"
#include "buf.h"
#include "http.h"
#include "pool.h"
#include "rollup_params.h"

struct agents_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct http_req *hr;
	char *tenant, *project; /* the key's scope, copied; NULL: unscoped */

	/* Heartbeat. */
	struct evbuffer *body; /* moved out of the request: no copy */
	struct agents_beat_limits lim;
	long long max_per_tenant;

	/* Listing: the filter's and the cursor's strings point into qs and
	 * cursor, owned here. */
	bool list;
	struct agents_filter filter;
	struct agents_page page;
	char *qs, *cursor;
	int ttl_s;

	/* Results, written by the worker. */
	int status;
	char err[1024];
	struct buf answer;
};

static void agents_job_free(struct agents_job *job)
{
	if (job->body)
		evbuffer_free(job->body);
	free(job->tenant);
	free(job->project);
	free(job->qs);
	free(job->cursor);
	buf_release(&job->answer);
	free(job);
}

/* Worker thread. */
static void agents_work(struct pool_job *pj, struct pool_worker *w)
{
	struct agents_job *job = (struct agents_job *)pj;
	PGconn *conn;

	if (!job->list) {
		size_t len = evbuffer_get_length(job->body);
		const char *body = (const char *)evbuffer_pullup(job->body, -1);
		struct agents_beat b;
		cJSON *root = NULL;

		job->status = agents_beat_decode(body ? body : "", len, &job->lim, &b, &root,
						 job->err, sizeof(job->err));
		const char *project = job->project ? job->project : b.project;

		/* A known worker's beat waits for the next flush (agents_flush.c);
		 * a new worker's is stored now, under the quota. */
		if (job->status == 200 && !agents_flush_offer(&b, job->tenant, project)) {
			conn = pool_worker_conn(w, job->err, sizeof(job->err));
			job->status = conn ? agents_store_beat(conn, &b, job->tenant, project,
							       job->max_per_tenant, job->err,
							       sizeof(job->err))
					   : 503;
			if (job->status == 200)
				agents_flush_known(job->tenant, project, b.agent_id);
		}
		cJSON_Delete(root);
	} else if ((conn = pool_worker_conn(w, job->err, sizeof(job->err)))) {
		PGresult *res = agents_store_list(conn, &job->filter, &job->page, job->ttl_s,
						  &job->status, job->err, sizeof(job->err));

		if (res) {
			agents_page_render(res, job->page.limit, job->ttl_s, &job->answer);
			PQclear(res);
			job->status = 200;
			if (job->answer.over) {
				job->status = 503;
				snprintf(job->err, sizeof(job->err),
					 "out of memory rendering the roster");
			}
		}
	} else {
		job->status = 503;
	}
	if (job->status >= 500 && (conn = w->conn) && PQstatus(conn) != CONNECTION_OK)
		pool_worker_reset(w);
}

/* Loop thread. */
static void agents_done(struct pool_job *pj)
{
	struct agents_job *job = (struct agents_job *)pj;
	struct http_req *hr = job->hr;
	char ok[64];

	if (job->status == 200 && job->list) {
		http_reply(hr, 200, "application/json", job->answer.data ? job->answer.data : "",
			   job->answer.len);
	} else if (job->status == 200) {
		snprintf(ok, sizeof(ok), "{\"ok\":true,\"ttl_s\":%d}", hr->srv->cfg.agent_ttl_s);
		http_reply_json(hr, 200, ok);
	} else if (job->status >= 500) {
		/* job->err may be the database's text: the log gets it. */
		http_reply_internal(hr, job->status,
				    job->status == 503
					    ? "the database is unreachable or busy; retry shortly"
					    : (job->list ? "the roster could not be read"
							 : "the heartbeat could not be stored"),
				    job->err);
	} else {
		http_reply_error(hr, job->status, "%s", job->err);
	}
	agents_job_free(job);
}

/* A job with the key's scope copied; NULL (503 answered) when out of memory. */
static struct agents_job *agents_job_new(struct http_req *hr, const struct auth_key *key)
{
	struct agents_job *job = calloc(1, sizeof(*job));

	if (job) {
		job->job.work = agents_work;
		job->job.done = agents_done;
		job->hr = hr;
		buf_init(&job->answer, 0);
		job->tenant = key->tenant ? strdup(key->tenant) : NULL;
		job->project = key->project ? strdup(key->project) : NULL;
	}
	if (!job || (key->tenant && !job->tenant) || (key->project && !job->project)) {
		if (job)
			agents_job_free(job);
		http_reply_oom(hr);
		return NULL;
	}
	return job;
}

static void agents_submit(struct http_req *hr, struct agents_job *job)
{
	if (!pool_submit(hr->pool, &job->job)) {
		agents_job_free(job);
		http_reply_saturated(hr);
		return;
	}
	http_defer(hr);
}

void agents_handle_heartbeat(struct http_req *hr)
{
	struct server *srv = hr->srv;
	const struct auth_key *key = hr->key;
	const char *enc;
	struct agents_job *job;

	enc = http_header(hr, "Content-Encoding");
	if (enc && strcasecmp(enc, "identity") != 0) {
		http_reply_error(hr, 415,
				 "Content-Encoding \"%.64s\" is not supported for heartbeats: send "
				 "plain JSON",
				 enc);
		return;
	}
	if (!(job = agents_job_new(hr, key)))
		return;
	if (!(job->body = evbuffer_new())) {
		agents_job_free(job);
		http_reply_oom(hr);
		return;
	}
	job->lim.max_string_chars = (size_t)srv->cfg.max_string_chars;
	job->lim.max_error_chars = (size_t)srv->cfg.max_error_message_chars;
	job->lim.max_values = (size_t)srv->cfg.max_element_values;
	job->max_per_tenant = srv->cfg.agents_max_per_tenant;
	evbuffer_add_buffer(job->body, evhttp_request_get_input_buffer(hr->req));
	agents_submit(hr, job);
}

/* Narrows one filter to the key's scope (NULL: none), or refuses. */
static int agents_scope(struct agents_filter_one *f, const char *scope, const char *what,
			const char *key_prefix, char *err, size_t errlen)
{
	if (!scope)
		return 200;
	if (f->match == AGENTS_ANY) {
		f->match = AGENTS_EQ;
		f->value = scope;
		return 200;
	}
	if (f->match == AGENTS_EQ && strcmp(f->value, scope) == 0)
		return 200;
	if (f->match == AGENTS_EQ)
		snprintf(err, errlen, "key %s is scoped to %s \"%s\" and may not read %s \"%.64s\"",
			 key_prefix, what, scope, what, f->value);
	else
		snprintf(err, errlen,
			 "key %s is scoped to %s \"%s\" and may not read workers without a %s",
			 key_prefix, what, scope, what);
	return 403;
}

/* The parameters GET /v1/agents takes, in the order messages list them. */
enum agents_param {
	AGENTS_P_TENANT,
	AGENTS_P_PROJECT,
	AGENTS_P_AGENT_NAME,
	AGENTS_P_STATUS,
	AGENTS_P_DELIVERY,
	AGENTS_P_LIMIT,
	AGENTS_P_CURSOR,
	AGENTS_NPARAMS
};
static const char *const agents_param_names[AGENTS_NPARAMS] = {
	"tenant", "project", "agent_name", "status", "delivery", "limit", "cursor",
};

/* limit=: a whole number from 1 to AGENTS_MAX_PAGE. */
static int agents_parse_limit(const char *v, int *out, char *err, size_t errlen)
{
	long n = 0;
	size_t i;

	for (i = 0; v[i] >= '0' && v[i] <= '9' && i < 9; i++)
		n = n * 10 + (v[i] - '0');
	if (i == 0 || v[i] || n < 1 || n > AGENTS_MAX_PAGE) {
		snprintf(err, errlen, "limit \"%.*s\": must be a whole number from 1 to %d",
			 rollup_params_clip(v, 32), v, AGENTS_MAX_PAGE);
		return 400;
	}
	*out = (int)n;
	return 200;
}

/* One parameter into the job. 200, or 400 (503) with err. */
static int agents_parse_param(struct agents_job *job, enum agents_param id, const char *v,
			      char *err, size_t errlen)
{
	struct agents_filter_one *one[] = { &job->filter.tenant, &job->filter.project,
					    &job->filter.agent_name };

	switch (id) {
	case AGENTS_P_TENANT:
	case AGENTS_P_PROJECT:
	case AGENTS_P_AGENT_NAME:
		/* An empty value selects workers without one. */
		one[id]->match = v[0] ? AGENTS_EQ : AGENTS_NULL;
		one[id]->value = v;
		return 200;
	case AGENTS_P_STATUS:
		return agents_store_parse_set("status", v, agents_store_status_names,
					      AGENTS_NSTATUS, &job->filter.status, err, errlen);
	case AGENTS_P_DELIVERY:
		return agents_store_parse_set("delivery", v, agents_store_delivery_names,
					      AGENTS_NDELIVERY, &job->filter.delivery, err, errlen);
	case AGENTS_P_LIMIT: return agents_parse_limit(v, &job->page.limit, err, errlen);
	case AGENTS_P_CURSOR: {
		char *key[AGENTS_NKEYS];
		int st = agents_page_cursor_decode(v, key, err, errlen);

		for (int k = 0; k < AGENTS_NKEYS; k++)
			job->page.after[k] = key[k];
		job->cursor = key[0]; /* the one allocation */
		return st;
	}
	case AGENTS_NPARAMS: break;
	}
	return 400;
}

/* Reads the query string into job->filter and job->page, with the read
 * API's rules: percent-decoding that refuses %00, and every name and value
 * UTF-8 without control characters. 200, or 400 (503) with err. */
static int agents_parse_query(struct http_req *hr, struct agents_job *job, char *err, size_t errlen)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hr->req);
	const char *raw = uri ? evhttp_uri_get_query(uri) : NULL;
	struct rollup_param params[ROLLUP_MAX_PARAMS];
	bool seen[AGENTS_NPARAMS] = { false };
	int n, st;

	job->page.limit = AGENTS_DEFAULT_PAGE;
	if (!(job->qs = strdup(raw ? raw : ""))) {
		snprintf(err, errlen, "out of memory");
		return 503;
	}
	if ((st = rollup_params_split(job->qs, params, &n, err, errlen)) != 200)
		return st;
	for (int i = 0; i < n; i++) {
		const char *name = params[i].name, *v = params[i].value;
		int id = 0;

		if ((st = rollup_params_check_text("a parameter name", name, err, errlen)) != 200)
			return st;
		while (id < AGENTS_NPARAMS && strcmp(name, agents_param_names[id]) != 0)
			id++;
		if (id == AGENTS_NPARAMS) {
			snprintf(err, errlen,
				 "unknown parameter \"%.*s\"; /v1/agents takes tenant, project, "
				 "agent_name, status, delivery, limit, cursor",
				 rollup_params_clip(name, 64), name);
			return 400;
		}
		if ((st = rollup_params_check_text(name, v, err, errlen)) != 200)
			return st;
		if (seen[id]) {
			snprintf(err, errlen, "%s: given more than once", name);
			return 400;
		}
		seen[id] = true;
		if ((st = agents_parse_param(job, (enum agents_param)id, v, err, errlen)) != 200)
			return st;
	}
	return 200;
}

void agents_handle_list(struct http_req *hr)
{
	const struct auth_key *key = hr->key;
	struct agents_job *job;
	char err[512];
	int st;

	if (!(job = agents_job_new(hr, key)))
		return;
	job->list = true;
	job->ttl_s = hr->srv->cfg.agent_ttl_s;
	st = agents_parse_query(hr, job, err, sizeof(err));
	if (st == 200)
		st = agents_scope(&job->filter.tenant, job->tenant, "tenant", key->prefix, err,
				  sizeof(err));
	if (st == 200)
		st = agents_scope(&job->filter.project, job->project, "project", key->prefix, err,
				  sizeof(err));
	if (st != 200) {
		http_reply_status(hr, st, err);
		agents_job_free(job);
		return;
	}
	agents_submit(hr, job);
}
