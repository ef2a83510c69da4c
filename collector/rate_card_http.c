/* The rate card's endpoints (see rate_card_http.h). On the loop: the key's
 * scope and role, the path's id or tenant, the query; the small body is moved
 * to the job. On a worker: the body checked strictly (jsoncheck) and parsed,
 * then one transaction (rate_card_admin.c). */
#include "rate_card_http.h"

#include <cJSON.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "http.h"
#include "jsoncheck.h"
#include "num.h"
#include "pool.h"
#include "rate_card_admin.h"
#include "rollup_params.h"
#include "row.h"

#define RATE_RULES_PREFIX "/v1/billing/rate-card/rules/"
#define RATE_PLANS_PREFIX "/v1/billing/plans/"
/* JSON values a rule body may hold: 11 members and their names. */
#define RATE_HTTP_MAX_VALUES 32

enum rate_http_op {
	RATE_OP_CARD,
	RATE_OP_RULES,
	RATE_OP_RULE_PUT,
	RATE_OP_RULE_RM,
	RATE_OP_DEFAULT,
	RATE_OP_PLAN,
};

struct rate_http_job {
	struct pool_job job; /* first: the pool hands this pointer back */
	struct http_req *hr;
	enum rate_http_op op;
	struct evbuffer *body; /* writes' body, moved out of the request */
	cJSON *root;
	long long rule_id;		     /* RULE_RM */
	long long expected;		     /* expected_revision, or -1 */
	char tenant[RATE_CARD_TEXT_MAX + 1]; /* PLAN */
	/* Results, written by the worker. */
	int status;
	char err[1024];
	struct buf answer;
};

static void rate_http_job_free(struct rate_http_job *job)
{
	if (job->body)
		evbuffer_free(job->body);
	cJSON_Delete(job->root);
	buf_release(&job->answer);
	free(job);
}

/* Worker: the body as one strict JSON object with a bounded number of values,
 * parsed into job->root. 200, 400 (err names the member) or 503. */
static int rate_http_body(struct rate_http_job *job)
{
	size_t len = evbuffer_get_length(job->body);
	const char *body = len ? (const char *)evbuffer_pullup(job->body, -1) : "";
	struct jsoncheck_info info;

	if (!body) {
		snprintf(job->err, sizeof(job->err), "out of memory");
		return 503;
	}
	if (!jsoncheck_object_info(body, len, &info)) {
		if (info.key && row_utf8_valid(info.key, info.key_len))
			snprintf(job->err, sizeof(job->err), "%.*s: not valid JSON at byte %zu",
				 (int)(info.key_len < 64 ? info.key_len : 64), info.key, info.at);
		else
			snprintf(job->err, sizeof(job->err),
				 "body: expected one JSON object (not valid JSON at byte %zu)",
				 info.at);
		return 400;
	}
	if (info.values > RATE_HTTP_MAX_VALUES) {
		snprintf(job->err, sizeof(job->err), "body: %zu JSON values; at most %d",
			 info.values, RATE_HTTP_MAX_VALUES);
		return 400;
	}
	if (info.nul) {
		snprintf(job->err, sizeof(job->err),
			 "body: holds the escape \\u0000 (a NUL character)");
		return 400;
	}
	if (!(job->root = cJSON_ParseWithLength(body, len))) {
		snprintf(job->err, sizeof(job->err), "out of memory");
		return 503;
	}
	return 200;
}

/* A decimal member (a string, or a JSON number) into out; absent or null
 * leaves out "". False with err naming it. */
static bool rate_http_decimal(const cJSON *v, const char *field,
			      char out[RATE_CARD_DECIMAL_MAX + 1], char *err, size_t errlen)
{
	out[0] = '\0';
	if (!v || cJSON_IsNull(v))
		return true;
	if (cJSON_IsString(v))
		return rate_card_decimal(field, v->valuestring, out, err, errlen);
	if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) {
		if (v->valuedouble < 0) {
			snprintf(err, errlen, "%s %g: must not be negative", field, v->valuedouble);
			return false;
		}
		num_format(v->valuedouble, out, RATE_CARD_DECIMAL_MAX + 1);
		return true;
	}
	snprintf(err, errlen, "%s: must be a decimal string such as \"1.3\"", field);
	return false;
}

/* A scope member: a string, or absent/null for any. */
static bool rate_http_text(const cJSON *v, const char *field, const char **out, char *err,
			   size_t errlen)
{
	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsString(v)) {
		snprintf(err, errlen, "%s: must be a string or null", field);
		return false;
	}
	*out = v->valuestring;
	return rate_card_text(field, v->valuestring, err, errlen);
}

static bool rate_http_expected(const cJSON *v, long long *out, char *err, size_t errlen)
{
	*out = -1;
	if (!v || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9e15 ||
	    v->valuedouble != floor(v->valuedouble)) {
		snprintf(err, errlen, "expected_revision: must be the card's revision, an integer");
		return false;
	}
	*out = (long long)v->valuedouble;
	return true;
}

/* Refuses members the body may not hold, naming the first. */
static bool rate_http_known(const cJSON *root, const char *const *known, char *err, size_t errlen)
{
	for (const cJSON *m = root->child; m; m = m->next) {
		bool ok = false;

		for (int i = 0; known[i] && !ok; i++)
			ok = strcmp(m->string, known[i]) == 0;
		if (!ok) {
			snprintf(err, errlen, "%.64s: unknown field", m->string);
			return false;
		}
	}
	return true;
}

static const char *const rate_rule_members[] = {
	"tenant", "plan",  "modality", "provider",	    "model", "markup",
	"basis",  "fixed", "unit",     "expected_revision", NULL,
};

/* Worker: POST /rules' body into a rule. 200 or 400. */
static int rate_http_rule(struct rate_http_job *job, struct rate_rule *r)
{
	const cJSON *root = job->root;
	char *err = job->err;
	size_t errlen = sizeof(job->err);
	memset(r, 0, sizeof(*r));
	if (!rate_http_known(root, rate_rule_members, err, errlen) ||
	    !rate_http_text(cJSON_GetObjectItemCaseSensitive(root, "tenant"), "tenant", &r->tenant,
			    err, errlen) ||
	    !rate_http_text(cJSON_GetObjectItemCaseSensitive(root, "plan"), "plan", &r->plan, err,
			    errlen) ||
	    !rate_http_text(cJSON_GetObjectItemCaseSensitive(root, "modality"), "modality",
			    &r->modality, err, errlen) ||
	    !rate_http_text(cJSON_GetObjectItemCaseSensitive(root, "provider"), "provider",
			    &r->provider, err, errlen) ||
	    !rate_http_text(cJSON_GetObjectItemCaseSensitive(root, "model"), "model", &r->model,
			    err, errlen) ||
	    !rate_http_text(cJSON_GetObjectItemCaseSensitive(root, "basis"), "basis", &r->basis,
			    err, errlen) ||
	    !rate_http_text(cJSON_GetObjectItemCaseSensitive(root, "unit"), "unit", &r->unit, err,
			    errlen) ||
	    !rate_http_decimal(cJSON_GetObjectItemCaseSensitive(root, "markup"), "markup",
			       r->markup, err, errlen) ||
	    !rate_http_decimal(cJSON_GetObjectItemCaseSensitive(root, "fixed"), "fixed", r->fixed,
			       err, errlen) ||
	    !rate_http_expected(cJSON_GetObjectItemCaseSensitive(root, "expected_revision"),
				&job->expected, err, errlen) ||
	    !rate_rule_check(r, err, errlen))
		return 400;
	return 200;
}

static void rate_http_work(struct pool_job *pj, struct pool_worker *w)
{
	static const char *const default_members[] = { "default_markup", "expected_revision",
						       NULL };
	static const char *const plan_members[] = { "plan", "expected_revision", NULL };
	struct rate_http_job *job = (struct rate_http_job *)pj;
	char *err = job->err;
	size_t errlen = sizeof(job->err);
	long long revision = 0, rule_id = 0;
	char markup[RATE_CARD_DECIMAL_MAX + 1];
	struct rate_rule r;
	const char *plan;
	PGconn *conn;

	buf_reset(&job->answer);
	if (job->body && !job->root && (job->status = rate_http_body(job)) != 200)
		return;
	/* The body's fields, before any database work. */
	switch (job->op) {
	case RATE_OP_RULE_PUT:
		if ((job->status = rate_http_rule(job, &r)) != 200)
			return;
		break;
	case RATE_OP_DEFAULT:
		job->status = 400;
		if (!rate_http_known(job->root, default_members, err, errlen) ||
		    !rate_http_decimal(
			    cJSON_GetObjectItemCaseSensitive(job->root, "default_markup"),
			    "default_markup", markup, err, errlen) ||
		    !rate_http_expected(
			    cJSON_GetObjectItemCaseSensitive(job->root, "expected_revision"),
			    &job->expected, err, errlen))
			return;
		if (!markup[0]) {
			snprintf(err, errlen,
				 "default_markup: required, a decimal >= 0 such as \"1.2\"");
			return;
		}
		break;
	case RATE_OP_PLAN:
		job->status = 400;
		if (!rate_http_known(job->root, plan_members, err, errlen) ||
		    !rate_http_text(cJSON_GetObjectItemCaseSensitive(job->root, "plan"), "plan",
				    &plan, err, errlen) ||
		    !rate_http_expected(
			    cJSON_GetObjectItemCaseSensitive(job->root, "expected_revision"),
			    &job->expected, err, errlen))
			return;
		if (!cJSON_GetObjectItemCaseSensitive(job->root, "plan")) {
			snprintf(err, errlen, "plan: required (a plan's name, or null for none)");
			return;
		}
		break;
	default: break;
	}
	job->status = 503;
	if (!(conn = pool_worker_conn(w, err, errlen)))
		return;
	switch (job->op) {
	case RATE_OP_CARD:
	case RATE_OP_RULES:
		job->status =
			rate_card_render(conn, job->op == RATE_OP_RULES, &job->answer, err, errlen);
		break;
	case RATE_OP_RULE_PUT:
		job->status = rate_card_rule_put(conn, &r, job->expected, &rule_id, &revision, err,
						 errlen);
		if (job->status == 200 || job->status == 201)
			buf_printf(&job->answer,
				   "{\"rule_id\":%lld,\"created\":%s,\"revision\":%lld}", rule_id,
				   job->status == 201 ? "true" : "false", revision);
		break;
	case RATE_OP_RULE_RM:
		job->status = rate_card_rule_rm(conn, job->rule_id, job->expected, &revision, err,
						errlen);
		if (job->status == 200)
			buf_printf(&job->answer,
				   "{\"rule_id\":%lld,\"deleted\":true,\"revision\":%lld}",
				   job->rule_id, revision);
		break;
	case RATE_OP_DEFAULT:
		job->status =
			rate_card_default_set(conn, markup, job->expected, &revision, err, errlen);
		if (job->status == 200)
			buf_printf(&job->answer, "{\"revision\":%lld}", revision);
		break;
	case RATE_OP_PLAN:
		job->status = rate_card_plan_set(conn, job->tenant, plan, job->expected, &revision,
						 err, errlen);
		if (job->status == 200) {
			buf_puts(&job->answer, "{\"tenant\":");
			row_json_string(&job->answer, job->tenant);
			buf_puts(&job->answer, ",\"plan\":");
			if (plan)
				row_json_string(&job->answer, plan);
			else
				buf_puts(&job->answer, "null");
			buf_printf(&job->answer, ",\"revision\":%lld}", revision);
		}
		break;
	}
	if ((job->status == 200 || job->status == 201) && job->answer.over) {
		job->status = 503;
		snprintf(err, errlen, "out of memory");
	}
	if (job->status == 503 && PQstatus(conn) != CONNECTION_OK)
		pool_worker_reset(w);
}

static void rate_http_done(struct pool_job *pj)
{
	struct rate_http_job *job = (struct rate_http_job *)pj;
	struct http_req *hr = job->hr;

	if (job->status == 200 || job->status == 201)
		http_reply(hr, job->status, "application/json", job->answer.data, job->answer.len);
	else if (job->status >= 400 && job->status < 500)
		http_reply_error(hr, job->status, "%s", job->err);
	else
		http_reply_internal(hr, job->status,
				    job->status == 503
					    ? "the database is unreachable or busy; retry shortly"
					    : "the rate card request failed inside the collector",
				    job->err);
	rate_http_job_free(job);
}

/* A job for an unscoped key (403 otherwise; writes also need an admin key),
 * the body moved in for writes. NULL after answering. */
static struct rate_http_job *rate_http_job_new(struct http_req *hr, enum rate_http_op op,
					       bool write)
{
	const struct auth_key *key = hr->key;
	struct rate_http_job *job;

	if (key->tenant || key->project) {
		http_reply_error(hr, 403,
				 "key %s is scoped to a tenant or project; the rate card holds the "
				 "operator's markups and takes an unscoped read or admin key",
				 key->prefix);
		return NULL;
	}
	if (write && key->role != ROLE_ADMIN) {
		http_reply_error(hr, 403,
				 "key %s is a read key; changing the rate card takes an "
				 "admin key",
				 key->prefix);
		return NULL;
	}
	if (!(job = calloc(1, sizeof(*job)))) {
		http_reply_oom(hr);
		return NULL;
	}
	job->op = op;
	job->expected = -1;
	buf_init(&job->answer, 0);
	if (op == RATE_OP_RULE_PUT || op == RATE_OP_DEFAULT || op == RATE_OP_PLAN) {
		/* Capped by the dispatcher (max_small_body_bytes); moved, not
		 * read: the worker checks and parses it. */
		if (!(job->body = evbuffer_new()) ||
		    evbuffer_add_buffer(job->body, evhttp_request_get_input_buffer(hr->req)) != 0) {
			rate_http_job_free(job);
			http_reply_oom(hr);
			return NULL;
		}
	}
	return job;
}

static void rate_http_submit(struct http_req *hr, struct rate_http_job *job)
{
	job->job.work = rate_http_work;
	job->job.done = rate_http_done;
	job->hr = hr;
	if (!pool_submit(hr->pool, &job->job)) {
		rate_http_job_free(job);
		http_reply_saturated(hr);
		return;
	}
	http_defer(hr);
}

/* The request's query: none, or (allow_expected) expected_revision=N. False
 * after answering 400. */
static bool rate_http_query(struct http_req *hr, struct rate_http_job *job, bool allow_expected)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hr->req);
	const char *q = uri ? evhttp_uri_get_query(uri) : NULL;
	struct rollup_param params[ROLLUP_MAX_PARAMS];
	char err[512], *qs, *end;
	int n = 0;
	bool ok = true;

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
	for (int i = 0; i < n && ok; i++) {
		if (!allow_expected || strcmp(params[i].name, "expected_revision") != 0) {
			http_reply_error(hr, 400, "%.*s: unknown parameter%s",
					 rollup_params_clip(params[i].name, 64), params[i].name,
					 allow_expected ? " (known: expected_revision)" : "");
			ok = false;
			break;
		}
		job->expected = strtoll(params[i].value, &end, 10);
		if (!params[i].value[0] || *end || job->expected < 0) {
			http_reply_error(
				hr, 400,
				"expected_revision \"%.32s\": must be the card's revision, "
				"an integer",
				params[i].value);
			ok = false;
		}
	}
	free(qs);
	return ok;
}

static void rate_http_start(struct http_req *hr, enum rate_http_op op, bool write)
{
	struct rate_http_job *job = rate_http_job_new(hr, op, write);

	if (!job)
		return;
	if (!rate_http_query(hr, job, false)) {
		rate_http_job_free(job);
		return;
	}
	rate_http_submit(hr, job);
}

void rate_card_http_card(struct http_req *hr)
{
	bool put = evhttp_request_get_command(hr->req) == EVHTTP_REQ_PUT;

	rate_http_start(hr, put ? RATE_OP_DEFAULT : RATE_OP_CARD, put);
}

void rate_card_http_rules(struct http_req *hr)
{
	bool post = evhttp_request_get_command(hr->req) == EVHTTP_REQ_POST;

	rate_http_start(hr, post ? RATE_OP_RULE_PUT : RATE_OP_RULES, post);
}

void rate_card_http_rule_rm(struct http_req *hr)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hr->req);
	const char *path = uri ? evhttp_uri_get_path(uri) : "";
	const char *id = path + strlen(RATE_RULES_PREFIX);
	struct rate_http_job *job;
	char *end;
	long long rule_id = strtoll(id, &end, 10);

	if (!*id || *end || rule_id <= 0 || id[0] == '+' || id[0] == ' ') {
		http_reply_error(hr, 400, "rule_id \"%.32s\": must be a rule's id, an integer", id);
		return;
	}
	if (!(job = rate_http_job_new(hr, RATE_OP_RULE_RM, true)))
		return;
	job->rule_id = rule_id;
	if (!rate_http_query(hr, job, true)) {
		rate_http_job_free(job);
		return;
	}
	rate_http_submit(hr, job);
}

void rate_card_http_plan(struct http_req *hr)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hr->req);
	const char *path = uri ? evhttp_uri_get_path(uri) : "";
	struct rate_http_job *job;
	char err[256];
	size_t len = 0;
	char *tenant = evhttp_uridecode(path + strlen(RATE_PLANS_PREFIX), 0, &len);

	if (!tenant) {
		http_reply_oom(hr);
		return;
	}
	if (strlen(tenant) != len || !rate_card_text("tenant", tenant, err, sizeof(err))) {
		http_reply_error(hr, 400, "%s",
				 strlen(tenant) != len ? "tenant: holds a NUL" : err);
		free(tenant);
		return;
	}
	if (!(job = rate_http_job_new(hr, RATE_OP_PLAN, true))) {
		free(tenant);
		return;
	}
	snprintf(job->tenant, sizeof(job->tenant), "%s", tenant);
	free(tenant);
	if (!rate_http_query(hr, job, false)) {
		rate_http_job_free(job);
		return;
	}
	rate_http_submit(hr, job);
}
