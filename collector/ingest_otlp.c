/* OTLP trace export -> cost rows. Both encodings are read into one neutral
 * view of a span (its ids as hex, times, status and attributes); one mapping
 * turns a GenAI span's view into a row, reading the newer semantic-convention
 * attribute names first, then the deprecated ones older instrumentations
 * still send. */
#include "ingest_otlp.h"

#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "num.h"
#include "otlp_trace.pb-c.h"

enum otlp_type { OTLP_NONE = 0, OTLP_STR, OTLP_INT, OTLP_DBL, OTLP_BOOL };

struct otlp_attr {
	const char *key;
	enum otlp_type type;
	const char *s;
	long long i;
	double d;
};

/* A growable list of attributes, reused from span to span. */
struct otlp_attrs {
	struct otlp_attr *a;
	size_t n, cap;
};

struct otlp_span {
	char trace_id[33], span_id[17]; /* lowercase hex */
	const char *id_error;		/* why the ids cannot name a row, or NULL */
	const char *name;
	uint64_t start, end;
	int status_code; /* 2 = ERROR */
	const char *status_message;
	struct otlp_attrs attrs;
};

/* What a span inherits from its resource and instrumentation scope. */
struct otlp_origin {
	struct otlp_attrs res;
	const char *scope;
};

/* Agent, workflow and tool spans wrap the model calls that are their
 * children: storing them too would count those calls twice. */
static const char *const otlp_wrapper_ops[] = { "invoke_agent", "create_agent", "invoke_workflow",
						"execute_tool" };

#define OTLP_STATUS_ERROR 2

static struct otlp_attr *otlp_attrs_push(struct otlp_attrs *l)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 32;
		struct otlp_attr *a = realloc(l->a, cap * sizeof(*a));

		if (!a)
			return NULL;
		l->a = a;
		l->cap = cap;
	}
	memset(&l->a[l->n], 0, sizeof(l->a[0]));
	return &l->a[l->n++];
}

/* The last attribute named key (OTLP forbids repeats; the last wins). */
static const struct otlp_attr *otlp_get(const struct otlp_attrs *l, const char *key)
{
	for (size_t i = l->n; i-- > 0;)
		if (l->a[i].key && strcmp(l->a[i].key, key) == 0)
			return &l->a[i];
	return NULL;
}

/* A string attribute, NULL when absent, empty or of another type. */
static const char *otlp_str(const struct otlp_attrs *l, const char *key)
{
	const struct otlp_attr *a = otlp_get(l, key);

	return a && a->type == OTLP_STR && a->s && *a->s ? a->s : NULL;
}

/* A numeric attribute (int, double, or a string holding a decimal): 1 with
 * *out set, 0 when absent, -1 (err names it) when not a number. */
static int otlp_num(const struct otlp_attrs *l, const char *key, double *out, char *err,
		    size_t errlen)
{
	const struct otlp_attr *a = otlp_get(l, key);
	char *end;

	if (!a || a->type == OTLP_NONE)
		return 0;
	switch (a->type) {
	case OTLP_INT: *out = (double)a->i; return 1;
	case OTLP_DBL:
		if (isfinite(a->d)) {
			*out = a->d;
			return 1;
		}
		break;
	case OTLP_STR:
		errno = 0;
		*out = a->s && *a->s ? strtod(a->s, &end) : NAN;
		if (a->s && *a->s && !*end && errno == 0 && isfinite(*out))
			return 1;
		break;
	default: break;
	}
	snprintf(err, errlen, "%s: must be a number", key);
	return -1;
}

/* The first of keys present (1 or -1 as otlp_num), or 0. */
static int otlp_num_first(const struct otlp_attrs *l, const char *const *keys, double *out,
			  char *err, size_t errlen)
{
	for (; *keys; keys++) {
		int got = otlp_num(l, *keys, out, err, errlen);

		if (got)
			return got;
	}
	return 0;
}

static const char *otlp_str_first(const struct otlp_attrs *a, const struct otlp_attrs *b,
				  const char *key)
{
	const char *s = otlp_str(a, key);

	return s ? s : b ? otlp_str(b, key) : NULL;
}

/* A GenAI span that is neither an agent, workflow nor tool span. */
static bool otlp_is_cost_span(const struct otlp_attrs *l)
{
	const char *op = otlp_str(l, "gen_ai.operation.name");

	if (!op)
		return false;
	for (size_t i = 0; i < sizeof(otlp_wrapper_ops) / sizeof(otlp_wrapper_ops[0]); i++)
		if (strcmp(op, otlp_wrapper_ops[i]) == 0)
			return false;
	return true;
}

/* ---- span -> row ------------------------------------------------------------- */

/* Fills r from the span. Strings point into sp, o, scope or the scratch
 * buffers id, model and meta (the batch copies them when it keeps the row).
 * False with reason set when the span cannot be a row. */
static bool otlp_span_fill(struct row *r, const struct otlp_span *sp, const struct otlp_origin *o,
			   const struct ingest_scope *scope, char *id, size_t idlen,
			   struct buf *model, struct buf *meta, char *reason, size_t rlen)
{
	static const char *const in_keys[] = { "gen_ai.usage.input_tokens",
					       "gen_ai.usage.prompt_tokens", NULL };
	static const char *const out_keys[] = { "gen_ai.usage.output_tokens",
						"gen_ai.usage.completion_tokens", NULL };
	static const char *const unit_keys[] = { "vg.input_units", NULL };
	static const char *const cached_keys[] = { "gen_ai.usage.cache_read.input_tokens", NULL };
	static const char *const cost_keys[] = { "gen_ai.usage.cost.amount", NULL };
	const struct otlp_attrs *a = &sp->attrs;
	const char *s, *m, *currency, *service = otlp_str(&o->res, "service.name");
	double cost = 0;
	int got;

	if (sp->id_error) {
		snprintf(reason, rlen, "%s", sp->id_error);
		return false;
	}
	snprintf(id, idlen, "%s-%s", sp->trace_id, sp->span_id);
	r->id = id;
	if (sp->start == 0) {
		snprintf(reason, rlen, "startTimeUnixNano is missing");
		return false;
	}
	r->timestamp = (double)(sp->start / 1000000000u) + (double)(sp->start % 1000000000u) / 1e9;
	if (sp->end) {
		if (sp->end < sp->start) {
			snprintf(reason, rlen, "endTimeUnixNano is before startTimeUnixNano");
			return false;
		}
		r->total_latency_ms = (double)(sp->end - sp->start) / 1e6;
	}

	r->modality = ROW_LLM;
	if ((s = otlp_str(a, "vg.modality")))
		(void)row_modality_parse(s, &r->modality);
	r->provider = otlp_str(a, "gen_ai.provider.name");
	if (!r->provider)
		r->provider = otlp_str(a, "gen_ai.system");
	m = otlp_str(a, "gen_ai.response.model");
	if (!m)
		m = otlp_str(a, "gen_ai.request.model");
	if (m) {
		buf_reset(model);
		if (r->provider)
			buf_printf(model, "%s/", r->provider);
		buf_puts(model, m);
		if (model->over) {
			snprintf(reason, rlen, "out of memory");
			return false;
		}
		r->model_id = model->data;
	}

	got = otlp_num_first(a, r->modality == ROW_LLM ? in_keys : unit_keys, &r->input_units,
			     reason, rlen);
	if (got == 0 && r->modality != ROW_LLM)
		got = otlp_num_first(a, in_keys, &r->input_units, reason, rlen);
	if (got < 0 || otlp_num_first(a, out_keys, &r->output_units, reason, rlen) < 0 ||
	    otlp_num_first(a, cached_keys, &r->cached_input_units, reason, rlen) < 0)
		return false;

	currency = otlp_str(a, "gen_ai.usage.cost.currency");
	got = otlp_num_first(a, cost_keys, &cost, reason, rlen);
	if (got < 0)
		return false;
	if (got > 0 && currency && strcmp(currency, "USD") == 0) {
		r->cost_usd = cost;
		r->pricing_source = OTLP_PRICING_SPAN;
	} else {
		r->cost_usd = 0;
		r->pricing_source = OTLP_PRICING_UNPRICED;
	}

	r->session_id = otlp_str(a, "gen_ai.conversation.id");
	r->agent_id = otlp_str(a, "gen_ai.agent.id");
	if (!r->agent_id)
		r->agent_id = otlp_str(a, "gen_ai.agent.name");
	if (!r->agent_id)
		r->agent_id = service;

	s = otlp_str_first(a, &o->res, "vg.project");
	if (scope->project && s && strcmp(s, scope->project) != 0) {
		snprintf(reason, rlen,
			 "vg.project \"%.128s\": this key may only write project \"%s\"", s,
			 scope->project);
		return false;
	}
	r->project = s ? s : scope->project ? scope->project : "default";

	s = otlp_str_first(a, &o->res, "vg.tenant");
	if (scope->tenant && s && strcmp(s, scope->tenant) != 0) {
		snprintf(reason, rlen,
			 "vg.tenant \"%.128s\": this key may only write tenant \"%s\"", s,
			 scope->tenant);
		return false;
	}
	r->tenant_id = scope->tenant ? scope->tenant : s;

	if (sp->status_code == OTLP_STATUS_ERROR) {
		r->status = ROW_ERROR;
		r->error_message =
			sp->status_message && *sp->status_message ? sp->status_message : NULL;
	}

	buf_reset(meta);
	buf_printf(meta, "{\"otel\":{\"trace_id\":\"%s\",\"span_id\":\"%s\",\"service.name\":",
		   sp->trace_id, sp->span_id);
	if (service)
		row_json_string(meta, service);
	else
		buf_puts(meta, "null");
	buf_puts(meta, ",\"scope\":");
	if (o->scope && *o->scope)
		row_json_string(meta, o->scope);
	else
		buf_puts(meta, "null");
	buf_puts(meta, "}}");
	if (meta->over) {
		snprintf(reason, rlen, "out of memory");
		return false;
	}
	r->metadata_json = meta->data;
	return true;
}

/* The span as OTLP JSON, for ingest_rejects' raw text. */
static void otlp_span_json(const struct otlp_span *sp, struct buf *out)
{
	char num[40];

	buf_reset(out);
	buf_printf(out,
		   "{\"traceId\":\"%s\",\"spanId\":\"%s\",\"startTimeUnixNano\":\"%" PRIu64
		   "\",\"endTimeUnixNano\":\"%" PRIu64 "\",\"name\":",
		   sp->trace_id, sp->span_id, sp->start, sp->end);
	row_json_string(out, sp->name ? sp->name : "");
	buf_printf(out, ",\"status\":{\"code\":%d,\"message\":", sp->status_code);
	row_json_string(out, sp->status_message ? sp->status_message : "");
	buf_puts(out, "},\"attributes\":[");
	for (size_t i = 0; i < sp->attrs.n; i++) {
		const struct otlp_attr *a = &sp->attrs.a[i];

		buf_puts(out, i ? ",{\"key\":" : "{\"key\":");
		row_json_string(out, a->key ? a->key : "");
		buf_puts(out, ",\"value\":");
		switch (a->type) {
		case OTLP_STR:
			buf_puts(out, "{\"stringValue\":");
			row_json_string(out, a->s ? a->s : "");
			buf_putc(out, '}');
			break;
		case OTLP_INT: buf_printf(out, "{\"intValue\":\"%lld\"}", a->i); break;
		case OTLP_DBL:
			if (isfinite(a->d)) {
				num_format(a->d, num, sizeof(num));
				buf_printf(out, "{\"doubleValue\":%s}", num);
			} else {
				buf_puts(out, "{}");
			}
			break;
		case OTLP_BOOL:
			buf_printf(out, "{\"boolValue\":%s}", a->i ? "true" : "false");
			break;
		default: buf_puts(out, "{}"); break;
		}
		buf_putc(out, '}');
	}
	buf_puts(out, "]}");
}

/* Per-request state shared by both encodings' walks. */
struct otlp_walk {
	struct ingest_batch *b;
	const struct ingest_limits *lim;
	const struct ingest_scope *scope;
	double now;
	int index; /* spans seen so far, GenAI or not */
	struct buf model, meta, raw;
	char *err;
	size_t errlen;
};

/* Stores the span's row in the batch, or its reject. Returns 200 or 503. */
static int otlp_span_take(struct otlp_walk *w, const struct otlp_span *sp,
			  const struct otlp_origin *o)
{
	struct row r;
	size_t len[ROW_NSTRINGS];
	char id[64], reason[512];
	int index = w->index++;
	bool ok;

	if (!otlp_is_cost_span(&sp->attrs))
		return 200;
	row_init(&r);
	ok = otlp_span_fill(&r, sp, o, w->scope, id, sizeof(id), &w->model, &w->meta, reason,
			    sizeof(reason)) &&
	     row_validate_measure(&r, &w->lim->row, w->now, len, reason, sizeof(reason));
	if (!ok) {
		otlp_span_json(sp, &w->raw);
		if (w->raw.over || !ingest_batch_reject(w->b, index, w->raw.data, w->raw.len,
							reason, w->lim->max_reject_raw_bytes)) {
			snprintf(w->err, w->errlen, "out of memory recording rejects");
			return 503;
		}
	} else if (!ingest_batch_keep(w->b, &r, len, index)) {
		snprintf(w->err, w->errlen, "out of memory decoding the spans");
		return 503;
	}
	return 200;
}

static void otlp_walk_init(struct otlp_walk *w, struct ingest_batch *b,
			   const struct ingest_limits *lim, const struct ingest_scope *scope,
			   double now, char *err, size_t errlen)
{
	memset(w, 0, sizeof(*w));
	w->b = b;
	w->lim = lim;
	w->scope = scope;
	w->now = now;
	w->err = err;
	w->errlen = errlen;
	buf_init(&w->model, 0);
	buf_init(&w->meta, 0);
	buf_init(&w->raw, 0);
}

static void otlp_walk_release(struct otlp_walk *w)
{
	buf_release(&w->model);
	buf_release(&w->meta);
	buf_release(&w->raw);
}

/* Room for n cost spans, refused past max_batch_rows. */
static int otlp_batch_size(struct ingest_batch *b, int spans, int n,
			   const struct ingest_limits *lim, char *err, size_t errlen)
{
	b->total = spans;
	if (n > lim->max_batch_rows) {
		snprintf(err, errlen, "request has %d GenAI spans, more than max_batch_rows (%d)",
			 n, lim->max_batch_rows);
		return 413;
	}
	if (!ingest_batch_alloc(b, n)) {
		snprintf(err, errlen, "out of memory decoding %d spans", n);
		return 503;
	}
	return 200;
}

static const char otlp_hex[] = "0123456789abcdef";

/* Binary id -> lowercase hex; the reason when it cannot name a row. */
static const char *otlp_id_hex(const uint8_t *p, size_t n, size_t want, char *out, const char *what)
{
	bool zero = true;

	out[0] = '\0';
	if (n != want)
		return what[0] == 't' ? "traceId must be 16 bytes" : "spanId must be 8 bytes";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = otlp_hex[p[i] >> 4];
		out[2 * i + 1] = otlp_hex[p[i] & 15];
		zero = zero && p[i] == 0;
	}
	out[2 * n] = '\0';
	return zero ? (what[0] == 't' ? "traceId is all zeroes" : "spanId is all zeroes") : NULL;
}

/* ---- binary protobuf --------------------------------------------------------- */

static bool otlp_pb_attrs(struct otlp_attrs *l, Vgc__Otlp__KeyValue **kv, size_t n)
{
	l->n = 0;
	for (size_t i = 0; i < n; i++) {
		struct otlp_attr *a = otlp_attrs_push(l);
		const Vgc__Otlp__AnyValue *v = kv[i]->value;

		if (!a)
			return false;
		a->key = kv[i]->key;
		if (!v)
			continue;
		switch (v->value_case) {
		case VGC__OTLP__ANY_VALUE__VALUE_STRING_VALUE:
			a->type = OTLP_STR;
			a->s = v->string_value;
			break;
		case VGC__OTLP__ANY_VALUE__VALUE_INT_VALUE:
			a->type = OTLP_INT;
			a->i = (long long)v->int_value;
			break;
		case VGC__OTLP__ANY_VALUE__VALUE_DOUBLE_VALUE:
			a->type = OTLP_DBL;
			a->d = v->double_value;
			break;
		case VGC__OTLP__ANY_VALUE__VALUE_BOOL_VALUE:
			a->type = OTLP_BOOL;
			a->i = v->bool_value;
			break;
		default: break;
		}
	}
	return true;
}

/* True when one of the span's attributes names a cost operation (a cheap
 * first pass, to size the batch). */
static bool otlp_pb_is_cost_span(const Vgc__Otlp__Span *s)
{
	for (size_t i = s->n_attributes; i-- > 0;) {
		const Vgc__Otlp__KeyValue *kv = s->attributes[i];

		if (kv->key && strcmp(kv->key, "gen_ai.operation.name") == 0) {
			const Vgc__Otlp__AnyValue *v = kv->value;
			struct otlp_attrs one;
			struct otlp_attr a = { kv->key, OTLP_STR, NULL, 0, 0 };

			if (!v || v->value_case != VGC__OTLP__ANY_VALUE__VALUE_STRING_VALUE)
				return false;
			a.s = v->string_value;
			one.a = &a;
			one.n = one.cap = 1;
			return otlp_is_cost_span(&one);
		}
	}
	return false;
}

/* protobuf-c's allocator for one request: malloc, refused once the
 * request's messages would take more than budget bytes. */
struct otlp_budget {
	size_t used, budget;
	bool over;
};

static void *otlp_budget_alloc(void *data, size_t size)
{
	struct otlp_budget *b = data;

	if (size > b->budget - b->used) {
		b->over = true;
		return NULL;
	}
	b->used += size;
	return malloc(size);
}

static void otlp_budget_free(void *data, void *p)
{
	(void)data;
	free(p);
}

int ingest_otlp_decode_proto(const char *text, size_t len, const struct ingest_limits *lim,
			     const struct ingest_scope *scope, double now, struct ingest_batch *out,
			     char *err, size_t errlen)
{
	struct otlp_budget budget = { 0, lim->max_decoded_bytes, false };
	ProtobufCAllocator alloc = { otlp_budget_alloc, otlp_budget_free, &budget };
	Vgc__Otlp__ExportTraceServiceRequest *req =
		vgc__otlp__export_trace_service_request__unpack(&alloc, len, (const uint8_t *)text);
	struct otlp_walk w;
	struct otlp_span sp;
	struct otlp_origin o;
	int spans = 0, n = 0, status;

	if (!req && budget.over) {
		snprintf(err, errlen,
			 "request takes more than max_decoded_bytes (%zu) once decoded",
			 lim->max_decoded_bytes);
		return 413;
	}
	if (!req) {
		snprintf(err, errlen,
			 "body is not a valid ExportTraceServiceRequest in binary protobuf");
		return 400;
	}
	for (size_t i = 0; i < req->n_resource_spans; i++)
		for (size_t k = 0; k < req->resource_spans[i]->n_scope_spans; k++) {
			const Vgc__Otlp__ScopeSpans *ss = req->resource_spans[i]->scope_spans[k];

			for (size_t j = 0; j < ss->n_spans; j++) {
				spans++;
				n += otlp_pb_is_cost_span(ss->spans[j]);
			}
		}
	status = otlp_batch_size(out, spans, n, lim, err, errlen);
	if (status != 200 || n == 0) {
		vgc__otlp__export_trace_service_request__free_unpacked(req, &alloc);
		return status;
	}
	otlp_walk_init(&w, out, lim, scope, now, err, errlen);
	memset(&sp, 0, sizeof(sp));
	memset(&o, 0, sizeof(o));
	for (size_t i = 0; i < req->n_resource_spans && status == 200; i++) {
		const Vgc__Otlp__ResourceSpans *rs = req->resource_spans[i];

		o.res.n = 0;
		if (rs->resource &&
		    !otlp_pb_attrs(&o.res, rs->resource->attributes, rs->resource->n_attributes))
			goto oom;
		for (size_t k = 0; k < rs->n_scope_spans && status == 200; k++) {
			const Vgc__Otlp__ScopeSpans *ss = rs->scope_spans[k];

			o.scope = ss->scope ? ss->scope->name : NULL;
			for (size_t j = 0; j < ss->n_spans && status == 200; j++) {
				const Vgc__Otlp__Span *s = ss->spans[j];

				if (!otlp_pb_is_cost_span(s)) {
					w.index++;
					continue;
				}
				if (!otlp_pb_attrs(&sp.attrs, s->attributes, s->n_attributes))
					goto oom;
				sp.id_error = otlp_id_hex(s->trace_id.data, s->trace_id.len, 16,
							  sp.trace_id, "trace");
				if (!sp.id_error)
					sp.id_error = otlp_id_hex(s->span_id.data, s->span_id.len,
								  8, sp.span_id, "span");
				sp.name = s->name;
				sp.start = s->start_time_unix_nano;
				sp.end = s->end_time_unix_nano;
				sp.status_code = s->status ? s->status->code : 0;
				sp.status_message = s->status ? s->status->message : NULL;
				status = otlp_span_take(&w, &sp, &o);
			}
		}
	}
	goto done;
oom:
	snprintf(err, errlen, "out of memory decoding the spans");
	status = 503;
done:
	free(sp.attrs.a);
	free(o.res.a);
	otlp_walk_release(&w);
	vgc__otlp__export_trace_service_request__free_unpacked(req, &alloc);
	return status;
}

/* ---- OTLP JSON --------------------------------------------------------------- */

/* A member that must be an array when present: NULL when absent; *bad when
 * present and not one. */
static const cJSON *otlp_json_array(const cJSON *obj, const char *key, bool *bad)
{
	const cJSON *v = cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;

	if (v && !cJSON_IsArray(v) && !cJSON_IsNull(v))
		*bad = true;
	return cJSON_IsArray(v) ? v : NULL;
}

/* An int64/fixed64 in OTLP JSON: a decimal string or a number. */
static bool otlp_json_u64(const cJSON *v, uint64_t *out)
{
	char *end;

	*out = 0;
	if (!v || cJSON_IsNull(v))
		return true;
	if (cJSON_IsNumber(v)) {
		if (!(v->valuedouble >= 0 && v->valuedouble < 1.8446744073709552e19))
			return false;
		*out = (uint64_t)v->valuedouble;
		return true;
	}
	if (!cJSON_IsString(v) || !v->valuestring[0] || v->valuestring[0] == '-')
		return false;
	errno = 0;
	*out = strtoull(v->valuestring, &end, 10);
	return !*end && errno == 0;
}

/* Attributes from a JSON KeyValue array; false (the body is malformed) when
 * an entry is not an object with a string key. */
static int otlp_json_attrs(struct otlp_attrs *l, const cJSON *arr, const char *where, char *err,
			   size_t errlen)
{
	const cJSON *kv;
	int i = 0;

	l->n = 0;
	cJSON_ArrayForEach(kv, arr)
	{
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(kv, "key");
		const cJSON *val = cJSON_GetObjectItemCaseSensitive(kv, "value");
		const cJSON *x;
		struct otlp_attr *a;

		if (!cJSON_IsObject(kv) || !cJSON_IsString(key)) {
			snprintf(err, errlen,
				 "%s.attributes[%d]: must be an object with a string key", where,
				 i);
			return 400;
		}
		if (!(a = otlp_attrs_push(l))) {
			snprintf(err, errlen, "out of memory decoding the spans");
			return 503;
		}
		a->key = key->valuestring;
		if ((x = cJSON_GetObjectItemCaseSensitive(val, "stringValue")) &&
		    cJSON_IsString(x)) {
			a->type = OTLP_STR;
			a->s = x->valuestring;
		} else if ((x = cJSON_GetObjectItemCaseSensitive(val, "intValue"))) {
			char *end;

			if (cJSON_IsNumber(x) && x->valuedouble == floor(x->valuedouble) &&
			    fabs(x->valuedouble) < 9.2e18) {
				a->type = OTLP_INT;
				a->i = (long long)x->valuedouble;
			} else if (cJSON_IsString(x) && x->valuestring[0]) {
				errno = 0;
				a->i = strtoll(x->valuestring, &end, 10);
				a->type = !*end && errno == 0 ? OTLP_INT : OTLP_NONE;
			}
		} else if ((x = cJSON_GetObjectItemCaseSensitive(val, "doubleValue"))) {
			if (cJSON_IsNumber(x)) {
				a->type = OTLP_DBL;
				a->d = x->valuedouble;
			}
		} else if ((x = cJSON_GetObjectItemCaseSensitive(val, "boolValue")) &&
			   cJSON_IsBool(x)) {
			a->type = OTLP_BOOL;
			a->i = cJSON_IsTrue(x);
		}
		i++;
	}
	return 200;
}

/* Hex id -> lowercase hex; the reason when it cannot name a row. */
static const char *otlp_json_id(const cJSON *v, size_t bytes, char *out, const char *what)
{
	bool zero = true;

	out[0] = '\0';
	if (!cJSON_IsString(v) || strlen(v->valuestring) != 2 * bytes)
		return what[0] == 't' ? "traceId must be 32 hex digits"
				      : "spanId must be 16 hex digits";
	for (size_t i = 0; i < 2 * bytes; i++) {
		char c = v->valuestring[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return what[0] == 't' ? "traceId must be 32 hex digits"
					      : "spanId must be 16 hex digits";
		out[i] = c;
		zero = zero && c == '0';
	}
	out[2 * bytes] = '\0';
	return zero ? (what[0] == 't' ? "traceId is all zeroes" : "spanId is all zeroes") : NULL;
}

/* Is this JSON span a cost span? Reads only gen_ai.operation.name. */
static bool otlp_json_is_cost_span(const cJSON *span)
{
	const cJSON *attrs = cJSON_GetObjectItemCaseSensitive(span, "attributes"), *kv;
	const cJSON *found = NULL;

	if (!cJSON_IsArray(attrs))
		return false;
	cJSON_ArrayForEach(kv, attrs)
	{
		const cJSON *key = cJSON_GetObjectItemCaseSensitive(kv, "key");

		if (cJSON_IsString(key) && strcmp(key->valuestring, "gen_ai.operation.name") == 0)
			found = kv;
	}
	if (found) {
		const cJSON *v = cJSON_GetObjectItemCaseSensitive(
			cJSON_GetObjectItemCaseSensitive(found, "value"), "stringValue");
		struct otlp_attr a = { "gen_ai.operation.name", OTLP_STR, NULL, 0, 0 };
		struct otlp_attrs one = { &a, 1, 1 };

		if (!cJSON_IsString(v))
			return false;
		a.s = v->valuestring;
		return otlp_is_cost_span(&one);
	}
	return false;
}

/* Walks resourceSpans[].scopeSpans[].spans[]; with w NULL it only checks the
 * framing and counts (*spans, *n cost spans). */
static int otlp_json_walk(const cJSON *root, struct otlp_walk *w, int *spans, int *n, char *err,
			  size_t errlen)
{
	bool bad = false;
	const cJSON *rss = otlp_json_array(root, "resourceSpans", &bad), *rs;
	struct otlp_span sp;
	struct otlp_origin o;
	int status = 200, i = 0;
	char where[160];

	if (bad) {
		snprintf(err, errlen, "resourceSpans: must be an array");
		return 400;
	}
	memset(&sp, 0, sizeof(sp));
	memset(&o, 0, sizeof(o));
	cJSON_ArrayForEach(rs, rss)
	{
		const cJSON *res = cJSON_GetObjectItemCaseSensitive(rs, "resource");
		const cJSON *ra = otlp_json_array(res, "attributes", &bad);
		const cJSON *sss = otlp_json_array(rs, "scopeSpans", &bad), *ss;
		int k = 0;

		if (!cJSON_IsObject(rs) || bad) {
			snprintf(err, errlen,
				 "resourceSpans[%d]: must be an object with array attributes and "
				 "scopeSpans",
				 i);
			status = 400;
			goto done;
		}
		if (w) {
			snprintf(where, sizeof(where), "resourceSpans[%d].resource", i);
			status = otlp_json_attrs(&o.res, ra, where, err, errlen);
			if (status != 200)
				goto done;
		}
		cJSON_ArrayForEach(ss, sss)
		{
			const cJSON *scope = cJSON_GetObjectItemCaseSensitive(ss, "scope");
			const cJSON *name = cJSON_GetObjectItemCaseSensitive(scope, "name");
			const cJSON *arr = otlp_json_array(ss, "spans", &bad), *s;
			int j = 0;

			if (!cJSON_IsObject(ss) || bad) {
				snprintf(err, errlen,
					 "resourceSpans[%d].scopeSpans[%d]: must be an object with "
					 "array spans",
					 i, k);
				status = 400;
				goto done;
			}
			o.scope = cJSON_IsString(name) ? name->valuestring : NULL;
			cJSON_ArrayForEach(s, arr)
			{
				const cJSON *st = cJSON_GetObjectItemCaseSensitive(s, "status");
				const cJSON *code = cJSON_GetObjectItemCaseSensitive(st, "code");
				const cJSON *msg = cJSON_GetObjectItemCaseSensitive(st, "message");
				const cJSON *sn = cJSON_GetObjectItemCaseSensitive(s, "name");
				bool cost;

				snprintf(where, sizeof(where),
					 "resourceSpans[%d].scopeSpans[%d].spans[%d]", i, k, j);
				if (!cJSON_IsObject(s) ||
				    (otlp_json_array(s, "attributes", &bad), bad)) {
					snprintf(err, errlen,
						 "%s: must be an object with array attributes",
						 where);
					status = 400;
					goto done;
				}
				cost = otlp_json_is_cost_span(s);
				if (!w) {
					(*spans)++;
					*n += cost;
					j++;
					continue;
				}
				j++;
				if (!cost) {
					w->index++;
					continue;
				}
				status = otlp_json_attrs(
					&sp.attrs,
					cJSON_GetObjectItemCaseSensitive(s, "attributes"), where,
					err, errlen);
				if (status != 200)
					goto done;
				sp.id_error =
					otlp_json_id(cJSON_GetObjectItemCaseSensitive(s, "traceId"),
						     16, sp.trace_id, "trace");
				if (!sp.id_error)
					sp.id_error = otlp_json_id(
						cJSON_GetObjectItemCaseSensitive(s, "spanId"), 8,
						sp.span_id, "span");
				if (!otlp_json_u64(cJSON_GetObjectItemCaseSensitive(
							   s, "startTimeUnixNano"),
						   &sp.start) ||
				    !otlp_json_u64(
					    cJSON_GetObjectItemCaseSensitive(s, "endTimeUnixNano"),
					    &sp.end)) {
					snprintf(err, errlen,
						 "%s: startTimeUnixNano and endTimeUnixNano must "
						 "be unsigned integers",
						 where);
					status = 400;
					goto done;
				}
				sp.name = cJSON_IsString(sn) ? sn->valuestring : NULL;
				sp.status_code = cJSON_IsNumber(code) ? code->valueint : 0;
				if (cJSON_IsString(code))
					sp.status_code =
						strcmp(code->valuestring, "STATUS_CODE_ERROR") == 0
							? OTLP_STATUS_ERROR
							: 0;
				sp.status_message = cJSON_IsString(msg) ? msg->valuestring : NULL;
				status = otlp_span_take(w, &sp, &o);
				if (status != 200)
					goto done;
			}
			k++;
		}
		i++;
	}
done:
	free(sp.attrs.a);
	free(o.res.a);
	return status;
}

/* At most what cJSON's tree of text takes: a node (with its allocation and
 * its key's) per value, and the text's bytes again for the strings. A value
 * other than the first in its container follows a ',', and a container's
 * first follows its '{' or '[', so those bound the values (commas inside
 * strings only make the bound larger). */
static size_t otlp_json_tree_bytes(const char *text, size_t len)
{
	size_t nodes = 1;

	for (size_t i = 0; i < len; i++)
		nodes += text[i] == ',' || text[i] == '{' || text[i] == '[';
	return nodes * (sizeof(cJSON) + 64) + len;
}

int ingest_otlp_decode_json(const char *text, size_t len, const struct ingest_limits *lim,
			    const struct ingest_scope *scope, double now, struct ingest_batch *out,
			    char *err, size_t errlen)
{
	cJSON *root;
	struct otlp_walk w;
	int spans = 0, n = 0, status;

	if (otlp_json_tree_bytes(text, len) > lim->max_decoded_bytes) {
		snprintf(err, errlen,
			 "request takes more than max_decoded_bytes (%zu) once decoded",
			 lim->max_decoded_bytes);
		return 413;
	}
	root = cJSON_ParseWithLength(text, len);
	if (!root || !cJSON_IsObject(root)) {
		snprintf(err, errlen,
			 "body is not an ExportTraceServiceRequest in OTLP JSON (a JSON object)");
		cJSON_Delete(root);
		return 400;
	}
	status = otlp_json_walk(root, NULL, &spans, &n, err, errlen);
	if (status == 200)
		status = otlp_batch_size(out, spans, n, lim, err, errlen);
	if (status == 200 && n > 0) {
		otlp_walk_init(&w, out, lim, scope, now, err, errlen);
		status = otlp_json_walk(root, &w, NULL, NULL, err, errlen);
		otlp_walk_release(&w);
	}
	cJSON_Delete(root);
	return status;
}

/* ---- answers ----------------------------------------------------------------- */

static bool otlp_pack(const ProtobufCMessage *m, struct buf *out)
{
	size_t n = protobuf_c_message_get_packed_size(m);

	if (!buf_reserve(out, n + 1))
		return false;
	out->len += protobuf_c_message_pack(m, (uint8_t *)out->data + out->len);
	out->data[out->len] = '\0';
	return true;
}

bool ingest_otlp_answer(bool proto, long long rejected, const char *message, struct buf *out)
{
	if (proto) {
		Vgc__Otlp__ExportTraceServiceResponse resp =
			VGC__OTLP__EXPORT_TRACE_SERVICE_RESPONSE__INIT;
		Vgc__Otlp__ExportTracePartialSuccess ps =
			VGC__OTLP__EXPORT_TRACE_PARTIAL_SUCCESS__INIT;

		if (rejected > 0) {
			ps.rejected_spans = rejected;
			ps.error_message = (char *)(message ? message : "");
			resp.partial_success = &ps;
		}
		return otlp_pack(&resp.base, out);
	}
	if (rejected <= 0)
		return buf_puts(out, "{}");
	buf_printf(out,
		   "{\"partialSuccess\":{\"rejectedSpans\":\"%lld\",\"errorMessage\":", rejected);
	row_json_string(out, message ? message : "");
	buf_puts(out, "}}");
	return !out->over;
}

bool ingest_otlp_status(bool proto, int code, const char *message, struct buf *out)
{
	if (proto) {
		Vgc__Otlp__RpcStatus st = VGC__OTLP__RPC_STATUS__INIT;

		st.code = code;
		st.message = (char *)(message ? message : "");
		return otlp_pack(&st.base, out);
	}
	buf_printf(out, "{\"code\":%d,\"message\":", code);
	row_json_string(out, message ? message : "");
	buf_putc(out, '}');
	return !out->over;
}
