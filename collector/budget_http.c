/* The budgets API. GET renders every budget inside the key's scope as
 * budget.c's status query builds it, with a strong ETag over the body, so a
 * worker polling with If-None-Match gets 304 until a spend, limit or state
 * (or the hour of the forecast) changes. PUT takes the CLI's fields as JSON. */
#include "budget_http.h"

#include <cJSON.h>
#include <event2/http.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "buf.h"
#include "http.h"
#include "pool.h"

#define BUDGET_HTTP_PREFIX "/v1/budgets/"

enum budget_http_op { BUDGET_OP_LIST, BUDGET_OP_PUT, BUDGET_OP_DELETE };

struct budget_http_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct http_req *hr;
	enum budget_http_op op;
	char *tenant, *project; /* the key's scope, copied */
	char name[BUDGET_NAME_MAX + 1];
	cJSON *root; /* PUT's body; spec points into it */
	struct budget_spec spec;
	/* Results, written by the worker. */
	int status;
	char err[1024];
	long long id;
	bool created;
	struct buf answer;
};

static void budget_http_job_free(struct budget_http_job *job)
{
	free(job->tenant);
	free(job->project);
	cJSON_Delete(job->root);
	buf_release(&job->answer);
	free(job);
}

static void budget_http_work(struct pool_job *pj, struct pool_worker *w)
{
	struct budget_http_job *job = (struct budget_http_job *)pj;
	PGconn *conn = pool_worker_conn(w, job->err, sizeof(job->err));
	PGresult *res;

	job->status = 503;
	if (!conn)
		return;
	switch (job->op) {
	case BUDGET_OP_LIST:
		res = budget_status(conn, job->tenant, job->project, &job->status, job->err,
				    sizeof(job->err));
		if (res) {
			budget_render_json(res, &job->answer);
			PQclear(res);
			if (job->answer.over) {
				job->status = 503;
				snprintf(job->err, sizeof(job->err), "out of memory");
			}
		}
		break;
	case BUDGET_OP_PUT:
		if (budget_upsert(conn, &job->spec, job->tenant, job->project, &job->id,
				  &job->created, &job->status, job->err, sizeof(job->err)))
			buf_printf(&job->answer, "{\"id\":%lld,\"name\":\"%s\",\"created\":%s}",
				   job->id, job->name, job->created ? "true" : "false");
		break;
	case BUDGET_OP_DELETE:
		if (budget_remove(conn, job->name, false, job->tenant, job->project, &job->id,
				  &job->status, job->err, sizeof(job->err)))
			buf_printf(&job->answer, "{\"id\":%lld,\"name\":\"%s\",\"deleted\":true}",
				   job->id, job->name);
		break;
	}
	if (job->status == 503 && PQstatus(conn) != CONNECTION_OK)
		pool_worker_reset(w);
}

/* A strong ETag: the first 128 bits of the body's SHA-256, hex, quoted. */
static void budget_http_etag(const struct buf *b, char out[40])
{
	unsigned char md[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)(b->data ? b->data : ""), b->len, md);
	out[0] = '"';
	for (int i = 0; i < 16; i++)
		snprintf(out + 1 + 2 * i, 3, "%02x", md[i]);
	out[33] = '"';
	out[34] = '\0';
}

/* True when an If-None-Match list names etag (or is "*"). */
static bool budget_http_etag_matches(const char *inm, const char *etag)
{
	size_t n = strlen(etag);

	for (const char *p = inm; p && *p;) {
		p += strspn(p, " \t,");
		if (strncmp(p, "W/", 2) == 0)
			p += 2;
		if (*p == '*' || strncmp(p, etag, n) == 0)
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

static void budget_http_done(struct pool_job *pj)
{
	struct budget_http_job *job = (struct budget_http_job *)pj;
	struct http_req *hr = job->hr;
	char etag[40];

	if (job->status == 200 && job->op == BUDGET_OP_LIST) {
		const char *inm = hr->req ? http_header(hr, "If-None-Match") : NULL;

		budget_http_etag(&job->answer, etag);
		http_set_header(hr, "ETag", etag);
		http_set_header(hr, "Cache-Control", "no-cache");
		if (inm && budget_http_etag_matches(inm, etag))
			http_reply(hr, 304, "application/json", "", 0);
		else
			http_reply(hr, 200, "application/json", job->answer.data, job->answer.len);
	} else if (job->status == 200) {
		http_reply(hr, 200, "application/json", job->answer.data, job->answer.len);
	} else if (job->status == 403 || job->status == 404) {
		http_reply_error(hr, job->status, "%s", job->err);
	} else {
		http_reply_internal(hr, job->status,
				    job->status == 503
					    ? "the database is unreachable or busy; retry shortly"
					    : "the budget request failed inside the collector",
				    job->err);
	}
	budget_http_job_free(job);
}

static void budget_http_submit(struct http_req *hr, struct budget_http_job *job)
{
	job->job.work = budget_http_work;
	job->job.done = budget_http_done;
	job->hr = hr;
	if (!pool_submit(hr->pool, &job->job)) {
		budget_http_job_free(job);
		http_reply_saturated(hr);
		return;
	}
	http_defer(hr);
}

/* A job with the key's scope copied; NULL (503 sent) when out of memory. */
static struct budget_http_job *budget_http_job_new(struct http_req *hr, const struct auth_key *key,
						   enum budget_http_op op)
{
	struct budget_http_job *job = calloc(1, sizeof(*job));

	if (job) {
		job->op = op;
		buf_init(&job->answer, 0);
		job->tenant = key->tenant ? strdup(key->tenant) : NULL;
		job->project = key->project ? strdup(key->project) : NULL;
	}
	if (!job || (key->tenant && !job->tenant) || (key->project && !job->project)) {
		if (job)
			budget_http_job_free(job);
		http_reply_oom(hr);
		return NULL;
	}
	return job;
}

void budget_http_handle_list(struct http_req *hr)
{
	struct budget_http_job *job;

	if (!(job = budget_http_job_new(hr, hr->key, BUDGET_OP_LIST)))
		return;
	budget_http_submit(hr, job);
}

/* A string member, NULL when absent or null; false (err set) for another type. */
static bool budget_http_string(const cJSON *root, const char *name, const char **out, char *err,
			       size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);

	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsString(v)) {
		snprintf(err, errlen, "%s: expected a string%s", name,
			 strcmp(name, "limit_usd") == 0
				 ? " holding a decimal amount, like \"250.00\""
				 : "");
		return false;
	}
	*out = v->valuestring;
	return true;
}

/* Fills spec from the PUT body; false with err naming the field. */
static bool budget_http_parse(cJSON *root, struct budget_spec *spec, char *err, size_t errlen)
{
	static const char *const known[] = { "name",	   "tenant",  "project",	"agent",
					     "provider",   "model",   "period",		"limit_usd",
					     "thresholds", "webhook", "webhook_secret", NULL };
	const cJSON *item, *th;
	const char *name = NULL;

	if (!cJSON_IsObject(root)) {
		snprintf(err, errlen, "body: expected a JSON object");
		return false;
	}
	cJSON_ArrayForEach(item, root)
	{
		const char *const *k = known;

		while (*k && strcmp(*k, item->string) != 0)
			k++;
		if (!*k) {
			snprintf(err, errlen,
				 "%.64s: unknown field (known: tenant, project, agent, "
				 "provider, model, period, limit_usd, thresholds, "
				 "webhook, webhook_secret)",
				 item->string);
			return false;
		}
	}
	if (!budget_http_string(root, "name", &name, err, errlen) ||
	    !budget_http_string(root, "tenant", &spec->tenant, err, errlen) ||
	    !budget_http_string(root, "project", &spec->project, err, errlen) ||
	    !budget_http_string(root, "agent", &spec->agent, err, errlen) ||
	    !budget_http_string(root, "provider", &spec->provider, err, errlen) ||
	    !budget_http_string(root, "model", &spec->model, err, errlen) ||
	    !budget_http_string(root, "period", &spec->period, err, errlen) ||
	    !budget_http_string(root, "limit_usd", &spec->limit_usd, err, errlen) ||
	    !budget_http_string(root, "webhook", &spec->webhook, err, errlen) ||
	    !budget_http_string(root, "webhook_secret", &spec->webhook_secret, err, errlen))
		return false;
	if (name && strcmp(name, spec->name) != 0) {
		snprintf(err, errlen, "name \"%.64s\": differs from the name in the path \"%s\"",
			 name, spec->name);
		return false;
	}
	th = cJSON_GetObjectItemCaseSensitive(root, "thresholds");
	if (cJSON_IsString(th))
		return budget_thresholds_parse(spec, th->valuestring, err, errlen);
	if (th && !cJSON_IsNull(th)) {
		if (!cJSON_IsArray(th) || cJSON_GetArraySize(th) < 1 ||
		    cJSON_GetArraySize(th) > BUDGET_MAX_THRESHOLDS) {
			snprintf(err, errlen, "thresholds: expected 1 to %d integer percents",
				 BUDGET_MAX_THRESHOLDS);
			return false;
		}
		cJSON_ArrayForEach(item, th)
		{
			if (!cJSON_IsNumber(item) || item->valuedouble != (double)item->valueint) {
				snprintf(err, errlen, "thresholds: expected integer percents");
				return false;
			}
			spec->thresholds[spec->nthresholds++] = item->valueint;
		}
	}
	return true;
}

/* A scoped admin key may only place budgets inside its own scope. */
static bool budget_http_in_scope(const struct auth_key *key, const struct budget_spec *spec,
				 char *err, size_t errlen)
{
	if (key->tenant && (!spec->tenant || strcmp(spec->tenant, key->tenant) != 0)) {
		snprintf(err, errlen,
			 "key %s is scoped to tenant \"%s\": the budget's tenant must be it",
			 key->prefix, key->tenant);
		return false;
	}
	if (key->project && (!spec->project || strcmp(spec->project, key->project) != 0)) {
		snprintf(err, errlen,
			 "key %s is scoped to project \"%s\": the budget's project must be it",
			 key->prefix, key->project);
		return false;
	}
	return true;
}

void budget_http_handle_one(struct http_req *hr)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hr->req);
	const char *path = uri ? evhttp_uri_get_path(uri) : "";
	const char *name = path + strlen(BUDGET_HTTP_PREFIX);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(hr->req);
	const struct auth_key *key = hr->key;
	struct budget_http_job *job;
	char err[1024];
	const char *body;
	size_t len;

	if (!budget_name_ok(name)) {
		http_reply_error(hr, 400,
				 "name \"%.64s\": 1 to %d letters, digits, '-', '_' or '.'", name,
				 BUDGET_NAME_MAX);
		return;
	}
	if (!(job = budget_http_job_new(hr, key,
					cmd == EVHTTP_REQ_PUT ? BUDGET_OP_PUT : BUDGET_OP_DELETE)))
		return;
	snprintf(job->name, sizeof(job->name), "%s", name);
	job->spec.name = job->name;
	if (job->op == BUDGET_OP_PUT) {
		body = http_body(hr, &len); /* the dispatcher capped it */
		job->root = cJSON_ParseWithLength(body ? body : "", len);
		if (!job->root)
			snprintf(err, sizeof(err), "body: not valid JSON");
		if (!job->root || !budget_http_parse(job->root, &job->spec, err, sizeof(err)) ||
		    !budget_spec_check(&job->spec, err, sizeof(err))) {
			http_reply_error(hr, 400, "%s", err);
			budget_http_job_free(job);
			return;
		}
		if (!budget_http_in_scope(key, &job->spec, err, sizeof(err))) {
			http_reply_error(hr, 403, "%s", err);
			budget_http_job_free(job);
			return;
		}
	}
	budget_http_submit(hr, job);
}
