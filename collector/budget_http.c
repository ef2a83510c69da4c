/* The budgets API. GET renders every budget inside the key's scope as
 * budget.c's status query builds it, with a strong ETag over the body, so a
 * worker polling with If-None-Match gets 304 until a spend, limit or state
 * (or the hour of the forecast) changes. PUT takes the CLI's fields as JSON,
 * checked and parsed on the pool with ingest's strict rules (the loop only
 * moves the body). */
#include "budget_http.h"

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing_scope.h"
#include "budget.h"
#include "buf.h"
#include "config.h"
#include "http.h"
#include "jsoncheck.h"
#include "pool.h"
#include "rollup_params.h"
#include "row.h"

#define BUDGET_HTTP_PREFIX "/v1/budgets/"
/* JSON values a budget body may hold: 11 members, their names and 16
 * thresholds need 39; a body with more is refused before cJSON builds a tree
 * for it (a tree costs about ten times its text). */
#define BUDGET_HTTP_MAX_VALUES 64

enum budget_http_op { BUDGET_OP_LIST, BUDGET_OP_PUT, BUDGET_OP_DELETE };

struct budget_http_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct http_req *hr;
	enum budget_http_op op;
	char *tenant, *project;		  /* the key's scope, copied */
	char prefix[32];		  /* the key's, for messages */
	bool admin;			  /* the key may see webhook URLs whole */
	char *want_tenant, *want_project; /* ?tenant= and ?project=, copied */
	int max_per_tenant;
	char name[BUDGET_NAME_MAX + 1];
	struct evbuffer *body; /* PUT's, moved out of the request */
	cJSON *root;	       /* PUT's body parsed; spec points into it */
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
	free(job->want_tenant);
	free(job->want_project);
	if (job->body)
		evbuffer_free(job->body);
	cJSON_Delete(job->root);
	buf_release(&job->answer);
	free(job);
}

static int budget_http_decode(struct budget_http_job *job);

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
		res = budget_status(conn, job->tenant ? job->tenant : job->want_tenant,
				    job->project ? job->project : job->want_project, job->admin,
				    &job->status, job->err, sizeof(job->err));
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
		if ((job->status = budget_http_decode(job)) != 200)
			break;
		if (budget_upsert(conn, &job->spec, job->tenant, job->project, job->max_per_tenant,
				  &job->id, &job->created, &job->status, job->err,
				  sizeof(job->err)))
			buf_printf(&job->answer, "{\"id\":%lld,\"name\":\"%s\",\"created\":%s}",
				   job->id, job->name, job->created ? "true" : "false");
		break;
	case BUDGET_OP_DELETE:
		if (budget_remove(conn, job->name, false, job->want_tenant, job->tenant,
				  job->project, &job->id, &job->status, job->err, sizeof(job->err)))
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
	} else if (job->status >= 400 && job->status < 500) {
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
		snprintf(job->prefix, sizeof(job->prefix), "%s", key->prefix);
		job->admin = key->role == ROLE_ADMIN;
		job->max_per_tenant = hr->srv->cfg.budgets_max_per_tenant;
	}
	if (!job || (key->tenant && !job->tenant) || (key->project && !job->project)) {
		if (job)
			budget_http_job_free(job);
		http_reply_oom(hr);
		return NULL;
	}
	return job;
}

/* Reads ?tenant= and ?project= (those allowed) into the job, each checked as
 * the read API checks its parameters. False after answering 400 or 503. */
static bool budget_http_params(struct http_req *hr, struct budget_http_job *job, bool project)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hr->req);
	const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
	struct rollup_param params[ROLLUP_MAX_PARAMS];
	char err[512], *qs;
	int n = 0;

	if (!q || !*q)
		return true;
	if (!(qs = strdup(q))) {
		http_reply_oom(hr);
		return false;
	}
	if (rollup_params_split(qs, params, &n, err, sizeof(err)) != 200) {
		http_reply_error(hr, 400, "%s", err);
		free(qs);
		return false;
	}
	for (int i = 0; i < n; i++) {
		char **dst = strcmp(params[i].name, "tenant") == 0 ? &job->want_tenant
			     : project && strcmp(params[i].name, "project") == 0
				     ? &job->want_project
				     : NULL;

		if (rollup_params_check_text(dst ? params[i].name : "a parameter name",
					     dst ? params[i].value : params[i].name, err,
					     sizeof(err)) != 200) {
			http_reply_error(hr, 400, "%s", err);
			free(qs);
			return false;
		}
		if (!dst) {
			http_reply_error(hr, 400, "%.*s: unknown parameter (known: tenant%s)",
					 rollup_params_clip(params[i].name, 64), params[i].name,
					 project ? ", project" : "");
			free(qs);
			return false;
		}
		free(*dst);
		if (!(*dst = strdup(params[i].value))) {
			http_reply_oom(hr);
			free(qs);
			return false;
		}
	}
	free(qs);
	return true;
}

void budget_http_handle_list(struct http_req *hr)
{
	struct budget_http_job *job;

	if (billing_scope_refuse(hr, "budget spend"))
		return;
	if (!(job = budget_http_job_new(hr, hr->key, BUDGET_OP_LIST)))
		return;
	if (!budget_http_params(hr, job, true)) {
		budget_http_job_free(job);
		return;
	}
	/* A filter outside the key's scope would select nothing the key may see. */
	if ((job->tenant && job->want_tenant && strcmp(job->tenant, job->want_tenant) != 0) ||
	    (job->project && job->want_project && strcmp(job->project, job->want_project) != 0)) {
		http_reply_error(hr, 403, "%s: outside the scope of key %s",
				 job->tenant && job->want_tenant &&
						 strcmp(job->tenant, job->want_tenant) != 0
					 ? "tenant"
					 : "project",
				 job->prefix);
		budget_http_job_free(job);
		return;
	}
	budget_http_submit(hr, job);
}

/* A string member, NULL when absent or null; false (err set) for another type
 * or text that is not UTF-8. */
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
	if (!row_utf8_valid(v->valuestring, strlen(v->valuestring))) {
		snprintf(err, errlen, "%s: not valid UTF-8", name);
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
				 "%.*s: unknown field (known: tenant, project, agent, "
				 "provider, model, period, limit_usd, thresholds, "
				 "webhook, webhook_secret)",
				 row_utf8_valid(item->string, strlen(item->string))
					 ? rollup_params_clip(item->string, 64)
					 : 13,
				 row_utf8_valid(item->string, strlen(item->string))
					 ? item->string
					 : "a field name");
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
	if (cJSON_IsString(th)) {
		if (!row_utf8_valid(th->valuestring, strlen(th->valuestring))) {
			snprintf(err, errlen, "thresholds: not valid UTF-8");
			return false;
		}
		return budget_thresholds_parse(spec, th->valuestring, err, errlen);
	}
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
static bool budget_http_in_scope(const struct budget_http_job *job, char *err, size_t errlen)
{
	const struct budget_spec *spec = &job->spec;

	if (job->tenant && (!spec->tenant || strcmp(spec->tenant, job->tenant) != 0)) {
		snprintf(err, errlen,
			 "key %s is scoped to tenant \"%s\": the budget's tenant must be it",
			 job->prefix, job->tenant);
		return false;
	}
	if (job->project && (!spec->project || strcmp(spec->project, job->project) != 0)) {
		snprintf(err, errlen,
			 "key %s is scoped to project \"%s\": the budget's project must be it",
			 job->prefix, job->project);
		return false;
	}
	return true;
}

/* err for a body jsoncheck refused, naming the member it failed in. */
static void budget_http_bad_json(const char *body, size_t len, const struct jsoncheck_info *info,
				 char *err, size_t errlen)
{
	const char *what = "body";
	int what_len = 4;
	char why[128];

	if (info->key && row_utf8_valid(info->key, info->key_len)) {
		what = info->key;
		what_len = rollup_params_clip(info->key,
					      (int)(info->key_len < 64 ? info->key_len : 64));
	}
	if (info->at >= len)
		snprintf(why, sizeof(why), "truncated after %zu bytes", len);
	else if (info->trailing)
		snprintf(why, sizeof(why), "bytes after the JSON object, from byte %zu", info->at);
	else if ((unsigned char)body[info->at] < 0x20)
		snprintf(why, sizeof(why),
			 "raw control character 0x%02x at byte %zu; JSON requires the escape "
			 "\\u%04x",
			 (unsigned char)body[info->at], info->at, (unsigned char)body[info->at]);
	else
		snprintf(why, sizeof(why), "not valid JSON at byte %zu", info->at);
	snprintf(err, errlen, "%.*s: %s", what_len, what, why);
}

/* Worker: checks PUT's body as ingest checks a row (the real length, so a raw
 * NUL counts; one object and nothing after it; no \u0000; a bounded number of
 * values before any tree is built; UTF-8), then parses and checks the fields.
 * Returns 200, 400 or 403 (err set), or 503 when out of memory. */
static int budget_http_decode(struct budget_http_job *job)
{
	size_t len = evbuffer_get_length(job->body);
	const char *body = len ? (const char *)evbuffer_pullup(job->body, -1) : "";
	struct jsoncheck_info info;
	char *err = job->err;
	size_t errlen = sizeof(job->err);

	if (!body) {
		snprintf(err, errlen, "out of memory");
		return 503;
	}
	if (!jsoncheck_object_info(body, len, &info)) {
		if (len == 0 || (info.at == 0 && body[0] != '{'))
			snprintf(err, errlen, "body: expected a JSON object");
		else
			budget_http_bad_json(body, len, &info, err, errlen);
		return 400;
	}
	if (info.values > BUDGET_HTTP_MAX_VALUES) {
		snprintf(err, errlen,
			 "body: %zu JSON values; a budget has at most %d (its fields and %d "
			 "thresholds)",
			 info.values, BUDGET_HTTP_MAX_VALUES, BUDGET_MAX_THRESHOLDS);
		return 400;
	}
	if (info.nul) {
		bool named = info.nul_key && row_utf8_valid(info.nul_key, info.nul_key_len);

		snprintf(err, errlen, "%.*s: holds the escape \\u0000 (a NUL character)",
			 named ? rollup_params_clip(
					 info.nul_key,
					 (int)(info.nul_key_len < 64 ? info.nul_key_len : 64))
			       : 12,
			 named ? info.nul_key : "a field name");
		return 400;
	}
	if (!(job->root = cJSON_ParseWithLength(body, len))) {
		snprintf(err, errlen, "out of memory");
		return 503; /* the text is valid JSON: only memory can fail here */
	}
	if (!budget_http_parse(job->root, &job->spec, err, errlen) ||
	    !budget_spec_check(&job->spec, err, errlen))
		return 400;
	if (!budget_http_in_scope(job, err, errlen))
		return 403;
	return 200;
}

void budget_http_handle_one(struct http_req *hr)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hr->req);
	const char *path = uri ? evhttp_uri_get_path(uri) : "";
	const char *name = path + strlen(BUDGET_HTTP_PREFIX);
	enum evhttp_cmd_type cmd = evhttp_request_get_command(hr->req);
	const struct auth_key *key = hr->key;
	struct budget_http_job *job;

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
	if (job->op == BUDGET_OP_DELETE && !budget_http_params(hr, job, false)) {
		budget_http_job_free(job);
		return;
	}
	if (job->op == BUDGET_OP_PUT) {
		/* Capped by the dispatcher (max_small_body_bytes); moved, not
		 * copied or read: the worker checks and parses it. */
		if (!(job->body = evbuffer_new()) ||
		    evbuffer_add_buffer(job->body, evhttp_request_get_input_buffer(hr->req)) != 0) {
			budget_http_job_free(job);
			http_reply_oom(hr);
			return;
		}
	}
	budget_http_submit(hr, job);
}
