/* Roster handlers. On the loop: authenticate, check the request, move what
 * the job needs into it (the key's scope copied: the key cache may be
 * swapped) and queue it on the pool. On a worker: decode the beat and upsert
 * it (agents_beat.c, agents_store.c), or run the listing and render it. The
 * tenant always comes from the key, never from the body. */
#include "agents.h"

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agents_beat.h"
#include "agents_store.h"
#include "buf.h"
#include "http.h"
#include "pool.h"

struct agents_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct http_req *hr;
	char *tenant, *project; /* the key's scope, copied; NULL: unscoped */

	/* Heartbeat. */
	struct evbuffer *body; /* moved out of the request: no copy */
	struct agents_beat_limits lim;

	/* Listing: the filter's strings are owned here. */
	bool list;
	struct agents_filter filter;
	char *values[4];
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
	for (int i = 0; i < 4; i++)
		free(job->values[i]);
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
		if (job->status == 200) {
			conn = pool_worker_conn(w, job->err, sizeof(job->err));
			job->status =
				conn ? agents_store_beat(conn, &b, job->tenant,
							 job->project ? job->project : b.project,
							 job->err, sizeof(job->err))
				     : 503;
		}
		cJSON_Delete(root);
	} else if ((conn = pool_worker_conn(w, job->err, sizeof(job->err)))) {
		PGresult *res = agents_store_list(conn, &job->filter, job->ttl_s, &job->status,
						  job->err, sizeof(job->err));

		if (res) {
			buf_printf(&job->answer, "{\"ttl_s\":%d,\"agents\":[", job->ttl_s);
			for (int r = 0; r < PQntuples(res); r++) {
				buf_puts(&job->answer, r ? "," : "");
				buf_puts(&job->answer, PQgetvalue(res, r, AGENTS_COL_JSON));
			}
			buf_puts(&job->answer, "]}");
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

/* Reads the query string into job->filter. 200, or 400 with err. */
static int agents_parse_query(struct http_req *hr, struct agents_job *job, char *err, size_t errlen)
{
	static const char *const names[] = { "tenant", "project", "agent_name", "status" };
	struct agents_filter_one *one[] = { &job->filter.tenant, &job->filter.project,
					    &job->filter.agent_name, NULL };
	struct evkeyvalq q;
	struct evkeyval *kv;
	int st = 200;

	if (!http_query(hr, &q)) {
		snprintf(err, errlen, "query string: malformed");
		return 400;
	}
	for (kv = q.tqh_first; kv; kv = kv->next.tqe_next) {
		int i = 0;

		while (i < 4 && strcmp(kv->key, names[i]) != 0)
			i++;
		if (i == 4) {
			snprintf(err, errlen,
				 "%.64s: unknown parameter (tenant, project, agent_name, status)",
				 kv->key);
			st = 400;
			break;
		}
		if (job->values[i]) {
			snprintf(err, errlen, "%s: given more than once", names[i]);
			st = 400;
			break;
		}
		if (!(job->values[i] = strdup(kv->value))) {
			snprintf(err, errlen, "out of memory");
			st = 503;
			break;
		}
		if (one[i]) {
			/* An empty value selects workers without one. */
			one[i]->match = kv->value[0] ? AGENTS_EQ : AGENTS_NULL;
			one[i]->value = job->values[i];
		} else if (strcmp(kv->value, "idle") != 0 && strcmp(kv->value, "busy") != 0 &&
			   strcmp(kv->value, "offline") != 0) {
			snprintf(err, errlen,
				 "status \"%.32s\": must be \"idle\", \"busy\" or \"offline\"",
				 kv->value);
			st = 400;
			break;
		} else {
			job->filter.status = job->values[i];
		}
	}
	evhttp_clear_headers(&q);
	return st;
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
