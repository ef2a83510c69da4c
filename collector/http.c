/* The HTTP front end on evhttp: listeners (plain or TLS through
 * bufferevent_openssl), each connection read through the gate (gate.c), a
 * single dispatcher that routes by the route table (path, method) and does
 * each route's declared checks (key, role, rate limit, body cap) and pool
 * choice before its handler runs, request ids, and JSON replies.
 *
 * Request lifetime: the dispatcher allocates an http_req per request. A
 * handler either replies before returning (then the dispatcher frees it) or
 * calls http_defer and hands it to a pool job. While deferred, a close
 * callback on the connection clears hr->req if the client goes away, so the
 * job's answer is then dropped instead of touching a freed request. */
#include "http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "config.h"
#include "conns.h"
#include "gate.h"
#include "keywatch.h"
#include "metrics.h"
#include "ratelimit.h"
#include "replica.h"
#include "row.h"

/* One server per process: the routes, and what http_routes_set worked out
 * for each (same index): its metrics series and its body cap's config row. */
struct http_route_state {
	int slot;
	const struct config_param *cap;
};

static const struct http_route *http_routes;
static struct http_route_state *http_route_states;
static int http_route_unknown = -1;
static unsigned long long http_request_seq;

static void http_on_close(struct evhttp_connection *evcon, void *arg)
{
	struct http_req *hr = arg;

	hr->req = NULL;
	hr->evcon = NULL;
}

static void http_req_free(struct http_req *hr)
{
	free(hr);
}

const char *http_header(struct http_req *hr, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(hr->req), name);
}

void http_set_header(struct http_req *hr, const char *name, const char *value)
{
	if (hr->req)
		evhttp_add_header(evhttp_request_get_output_headers(hr->req), name, value);
}

const char *http_body(struct http_req *hr, size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(hr->req);

	*len = evbuffer_get_length(in);
	return (const char *)evbuffer_pullup(in, -1);
}

bool http_query(struct http_req *hr, struct evkeyvalq *out)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(hr->req);
	const char *q = uri ? evhttp_uri_get_query(uri) : NULL;

	out->tqh_first = NULL;
	out->tqh_last = &out->tqh_first;
	if (!q)
		return true;
	return evhttp_parse_query_str(q, out) == 0;
}

void http_defer(struct http_req *hr)
{
	hr->async = true;
	hr->srv->inflight++;
	evhttp_connection_set_closecb(hr->evcon, http_on_close, hr);
}

static const char *http_method_name(struct evhttp_request *req)
{
	if (!req)
		return "-";
	switch (evhttp_request_get_command(req)) {
	case EVHTTP_REQ_GET: return "GET";
	case EVHTTP_REQ_HEAD: return "HEAD";
	case EVHTTP_REQ_POST: return "POST";
	case EVHTTP_REQ_PUT: return "PUT";
	case EVHTTP_REQ_DELETE: return "DELETE";
	default: return "OTHER";
	}
}

void http_finish(struct http_req *hr, int status)
{
	double took = clock_monotonic() - hr->started;
	/* For the log line; the client may have hung up while the job ran. */
	const char *uri = hr->req ? evhttp_request_get_uri(hr->req) : "(client gone)";
	const char *method = http_method_name(hr->req);

	metrics_http_request(hr->route, status);
	if (status >= 500)
		log_req(LOG_LVL_WARN, &hr->log, "%s %s -> %d in %.1f ms", method, uri, status,
			took * 1e3);
	else
		log_req(LOG_LVL_DEBUG, &hr->log, "%s %s -> %d in %.1f ms", method, uri, status,
			took * 1e3);
	hr->replied = true;
	if (hr->async) {
		if (hr->evcon)
			evhttp_connection_set_closecb(hr->evcon, NULL, NULL);
		hr->srv->inflight--;
		http_req_free(hr);
	}
}

void http_reply(struct http_req *hr, int status, const char *content_type, const char *body,
		size_t len)
{
	if (hr->req) {
		struct evbuffer *b = evbuffer_new();
		struct evkeyvalq *h = evhttp_request_get_output_headers(hr->req);

		if (b)
			evbuffer_add(b, body, len);
		evhttp_add_header(h, "Content-Type", content_type);
		if (hr->srv->state == SERVER_DRAINING)
			evhttp_add_header(h, "Connection", "close");
		evhttp_send_reply(hr->req, status, NULL, b);
		if (b)
			evbuffer_free(b);
	}
	http_finish(hr, status);
}

void http_reply_json(struct http_req *hr, int status, const char *json)
{
	http_reply(hr, status, "application/json", json, strlen(json));
}

void http_reply_error(struct http_req *hr, int status, const char *fmt, ...)
{
	char msg[2048];
	struct buf b;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	buf_init(&b, 0);
	buf_puts(&b, "{\"error\":");
	row_json_string(&b, msg);
	buf_puts(&b, "}");
	if (status >= 400 && status < 500 && status != 404)
		log_req(LOG_LVL_INFO, &hr->log, "%d: %s", status, msg);
	http_reply(hr, status, "application/json", b.data ? b.data : "{}", b.len);
	buf_release(&b);
}

void http_reply_status(struct http_req *hr, int status, const char *msg)
{
	if (status == 503)
		http_set_header(hr, "Retry-After", "1");
	http_reply_error(hr, status, "%s", msg);
}

void http_reply_oom(struct http_req *hr)
{
	http_set_header(hr, "Retry-After", "1");
	http_reply_error(hr, 503, "out of memory");
}

void http_reply_saturated(struct http_req *hr)
{
	http_set_header(hr, "Retry-After", "1");
	http_reply_error(hr, 503, "database pool saturated (%d requests waiting); retry shortly",
			 hr->srv->cfg.db_queue_max);
}

/* False, after answering 413, when the body is larger than max_body_bytes. */
static bool http_body_fits(struct http_req *hr)
{
	size_t len = evbuffer_get_length(evhttp_request_get_input_buffer(hr->req));

	if (len > hr->srv->cfg.max_body_bytes) {
		http_reply_error(hr, 413, "body of %zu bytes is larger than max_body_bytes (%zu)",
				 len, hr->srv->cfg.max_body_bytes);
		return false;
	}
	return true;
}

/* False, after answering 413 naming the key, when the body is larger than
 * cap bytes, the value of the route's cap key name. */
static bool http_body_within(struct http_req *hr, size_t cap, const char *name)
{
	size_t len = evbuffer_get_length(evhttp_request_get_input_buffer(hr->req));

	if (len > cap) {
		http_reply_error(hr, 413, "body: %zu bytes, more than %s (%zu)", len, name, cap);
		return false;
	}
	return true;
}

bool http_body_check(struct http_req *hr, bool *gzip)
{
	const char *enc = http_header(hr, "Content-Encoding");

	if (enc && strcasecmp(enc, "identity") != 0 && strcasecmp(enc, "gzip") != 0 &&
	    strcasecmp(enc, "x-gzip") != 0) {
		http_reply_error(
			hr, 415,
			"Content-Encoding \"%.64s\" is not supported: use gzip or identity", enc);
		return false;
	}
	if (!http_body_fits(hr))
		return false;
	*gzip = enc && strcasecmp(enc, "identity") != 0;
	return true;
}

void http_reply_internal(struct http_req *hr, int status, const char *public_msg,
			 const char *detail)
{
	struct buf b;
	char msg[512];

	log_req(LOG_LVL_WARN, &hr->log, "%d: %s: %s", status, public_msg, detail ? detail : "");
	if (status == 503)
		http_set_header(hr, "Retry-After", "1");
	snprintf(msg, sizeof(msg), "%s (request id %s)", public_msg, hr->request_id);
	buf_init(&b, 0);
	buf_puts(&b, "{\"error\":");
	row_json_string(&b, msg);
	buf_puts(&b, ",\"request_id\":");
	row_json_string(&b, hr->request_id);
	buf_puts(&b, "}");
	http_reply(hr, status, "application/json", b.data ? b.data : "{}", b.len);
	buf_release(&b);
}

/* A path ending in '*' matches what starts with the part before it. */
static bool http_route_matches(const struct http_route *r, const char *path)
{
	size_t n = strlen(r->path);

	if (n && r->path[n - 1] == '*')
		return strncmp(r->path, path, n - 1) == 0 && path[n - 1];
	return strcmp(r->path, path) == 0;
}

/* The index in http_routes of the route path matches, or -1. */
static int http_route_find(const char *path)
{
	int idx = 0;

	for (const struct http_route *r = http_routes; path && r && r->path; r++, idx++)
		if (http_route_matches(r, path))
			return idx;
	return -1;
}

int http_route_slot(const char *path)
{
	int idx = http_route_find(path);

	return idx < 0 ? http_route_unknown : http_route_states[idx].slot;
}

bool http_routes_set(const struct http_route *routes, char *err, size_t errlen)
{
	size_t n = 0;
	struct http_route_state *st;

	while (routes[n].path)
		n++;
	if (!(st = calloc(n ? n : 1, sizeof(*st)))) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		const struct http_route *r = &routes[i];

		if (r->body == HTTP_BODY_CAPPED) {
			st[i].cap = r->body_cap ? config_find(r->body_cap) : NULL;
			if (!st[i].cap || st[i].cap->type != CFG_SIZE) {
				snprintf(err, errlen, "route %s: body_cap \"%s\" is not a size key",
					 r->path, r->body_cap ? r->body_cap : "");
				free(st);
				return false;
			}
		}
		st[i].slot = metrics_route_register(r->path);
	}
	free(http_route_states);
	http_route_states = st;
	http_routes = routes;
	http_route_unknown = metrics_route_register("other");
	return true;
}

static const char *http_reason(int status)
{
	switch (status) {
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 413: return "Payload Too Large";
	case 431: return "Request Header Fields Too Large";
	case 503: return "Service Unavailable";
	default: return "Error";
	}
}

/* The gate's early answer (gate_reply_fn): a whole HTTP/1.1 reply written
 * straight to the connection, counted and logged like any other. */
static void http_early_reply(struct evbuffer *out, const char *method, const char *path, int status,
			     const char *extra_headers, const char *msg)
{
	char id[20];
	struct log_ctx lc = { id, NULL, NULL };
	struct buf b;

	snprintf(id, sizeof(id), "%016llx", ++http_request_seq);
	buf_init(&b, 0);
	buf_puts(&b, "{\"error\":");
	row_json_string(&b, msg);
	buf_puts(&b, "}");
	evbuffer_add_printf(
		out,
		"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
		"Content-Length: %zu\r\nConnection: close\r\nX-Request-Id: %s\r\n%s\r\n",
		status, http_reason(status), b.data ? b.len : 2, id,
		extra_headers ? extra_headers : "");
	evbuffer_add(out, b.data ? b.data : "{}", b.data ? b.len : 2);
	buf_release(&b);
	metrics_http_request(http_route_slot(path), status);
	log_req(status >= 500 ? LOG_LVL_WARN : LOG_LVL_INFO, &lc,
		"%s %s -> %d before its body was read: %s", method, path, status, msg);
}

/* Authenticates the request and checks its role is one of roles. On failure
 * it answers 401/403/429 and returns NULL. */
static const struct auth_key *http_auth(struct http_req *hr, unsigned roles)
{
	struct server *srv = hr->srv;
	enum auth_result why;
	const struct auth_key *k = auth_lookup(srv->keys, http_header(hr, "Authorization"), &why);
	int retry;

	if (!k) {
		metrics_auth_failure();
		http_set_header(hr, "WWW-Authenticate", "Bearer");
		http_reply_error(hr, 401, "%s", auth_problem(why));
		return NULL;
	}
	snprintf(hr->key_prefix, sizeof(hr->key_prefix), "%s", k->prefix);
	hr->log.key_prefix = hr->key_prefix;
	if (k->project) {
		snprintf(hr->project, sizeof(hr->project), "%s", k->project);
		hr->log.project = hr->project;
	}
	if (!(roles & (1u << k->role))) {
		http_reply_error(hr, 403, "key %s has role %s, which may not use %s", k->prefix,
				 auth_role_name(k->role),
				 evhttp_uri_get_path(evhttp_request_get_evhttp_uri(hr->req)));
		return NULL;
	}
	if (!ratelimit_take(srv->ratelimit, k->id, srv->cfg.rate_limit_rps,
			    srv->cfg.rate_limit_burst, clock_monotonic(), &retry)) {
		char ra[16];
		metrics_rate_limited();
		snprintf(ra, sizeof(ra), "%d", retry);
		http_set_header(hr, "Retry-After", ra);
		http_reply_error(hr, 429,
				 "key %s is over its rate limit of %g requests/s; retry in %d s",
				 k->prefix, srv->cfg.rate_limit_rps, retry);
		return NULL;
	}
	if (srv->keywatch)
		keywatch_note_used(srv->keywatch, k->id);
	hr->key = k;
	return k;
}

/* The answer to a request is written: its connection's gate may let the next
 * request in. */
static void http_on_answered(struct evhttp_request *req, void *arg)
{
	gate_answered(arg, req);
}

/* The client asked to read its own writes (REPLICA_CONSISTENCY_HEADER: primary). */
static bool http_wants_primary(struct http_req *hr)
{
	const char *want = http_header(hr, REPLICA_CONSISTENCY_HEADER);

	return want && strcasecmp(want, "primary") == 0;
}

/* The route's declared checks, in order: the key and its role, the body cap;
 * then the pool its queries run on. False when it has answered. */
static bool http_admit(struct http_req *hr, const struct http_route *route,
		       const struct http_route_state *st)
{
	struct server *srv = hr->srv;

	if (route->roles != HTTP_OPEN && !http_auth(hr, route->roles))
		return false;
	if (route->body == HTTP_BODY_CAPPED &&
	    !http_body_within(hr, config_size(&srv->cfg, st->cap), st->cap->name))
		return false;
	hr->pool = route->pool == HTTP_POOL_LONG ? srv->long_pool : srv->pool;
	if (route->pool == HTTP_POOL_READ) {
		struct replica_choice c =
			replica_choose(srv->replica, srv->pool, http_wants_primary(hr));
		hr->pool = c.pool;
		http_set_header(hr, REPLICA_SOURCE_HEADER, c.on_replica ? "replica" : "primary");
	}
	return true;
}

static void http_dispatch(struct evhttp_request *req, void *arg)
{
	struct server *srv = arg;
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	int method = cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD ? HTTP_GET
		     : cmd == EVHTTP_REQ_POST			     ? HTTP_POST
		     : cmd == EVHTTP_REQ_PUT			     ? HTTP_PUT
		     : cmd == EVHTTP_REQ_DELETE			     ? HTTP_DELETE
								     : 0;
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct gate *gate = gate_find(evhttp_connection_get_bufferevent(evcon));
	struct http_req *hr;
	const struct http_route *route = NULL;
	int idx;

	if (!gate && srv->tls) {
		/* http_bevcb failed and evhttp made a plain socket bufferevent of its
		 * own: this is plain text on a TLS listener. Never answer it. */
		log_error("dropping a plain-text connection on the TLS listener");
		evhttp_connection_free(evcon);
		return;
	}
	if (gate) {
		gate_dispatched(gate);
		evhttp_request_set_on_complete_cb(req, http_on_answered, gate);
	}
	hr = calloc(1, sizeof(*hr));
	if (!hr) {
		evhttp_send_reply(req, 503, "Out of memory", NULL);
		return;
	}
	hr->srv = srv;
	hr->req = req;
	hr->evcon = evcon;
	hr->started = clock_monotonic();
	hr->route = http_route_unknown;
	snprintf(hr->request_id, sizeof(hr->request_id), "%016llx", ++http_request_seq);
	hr->log.request_id = hr->request_id;
	http_set_header(hr, "X-Request-Id", hr->request_id);

	idx = http_route_find(path);
	if (idx >= 0) {
		route = &http_routes[idx];
		hr->route = http_route_states[idx].slot;
	}
	if (!route)
		http_reply_error(hr, 404, "no such endpoint: %s", path ? path : "(bad URI)");
	else if (!(route->methods & method))
		http_reply_error(hr, 405, "%s does not accept this method", route->path);
	else if (srv->state == SERVER_DRAINING && strcmp(route->path, "/healthz") != 0) {
		http_set_header(hr, "Retry-After", "1");
		http_reply_error(hr, 503,
				 "collector is shutting down; retry against another replica");
	} else if (http_admit(hr, route, &http_route_states[idx]))
		route->handler(hr);

	if (hr->replied && !hr->async)
		http_req_free(hr);
	else if (!hr->replied && !hr->async)
		http_reply_error(hr, 500, "handler did not answer"), http_req_free(hr);
}

/* Each connection reads through a gate (gate.c) over a socket or, with TLS, an
 * SSL bufferevent using the current context; a reload swaps the context and open
 * connections keep the old one (refcounted). */
static struct bufferevent *http_bevcb(struct event_base *base, void *arg)
{
	struct server *srv = arg;
	struct bufferevent *under = NULL, *bev = NULL;
	int max = srv->cfg.max_connections;
	SSL *ssl;

	if (srv->tls && (ssl = SSL_new((SSL_CTX *)srv->tls)) != NULL)
		under = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
						       BEV_OPT_CLOSE_ON_FREE);
	else if (srv->tls)
		max = 0; /* no SSL object: refuse rather than fall back to plain text */
	if (!under)
		under = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (under)
		bev = gate_new(srv, under); /* frees under on failure */
	if (bev && conns_add(srv->conns, bev, max))
		return bev;
	if (bev)
		bufferevent_free(bev);
	/* On NULL evhttp makes a plain socket bufferevent of its own; on a TLS
	 * listener http_dispatch drops that connection unanswered. */
	log_error("out of memory for a new client connection");
	return NULL;
}

/* A server context with cert and key loaded and matched; NULL with err. */
static SSL_CTX *http_tls_ctx(const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	unsigned long e;

	if (!ctx)
		goto ssl_error;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
		e = ERR_get_error();
		snprintf(err, errlen, "tls_cert_file %s: %s", cert, ERR_reason_error_string(e));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
		e = ERR_get_error();
		snprintf(err, errlen, "tls_key_file %s: %s", key, ERR_reason_error_string(e));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "tls_key_file %s does not match tls_cert_file %s", key, cert);
		goto fail;
	}
	ERR_clear_error();
	return ctx;
ssl_error:
	e = ERR_get_error();
	snprintf(err, errlen, "TLS: %s", ERR_reason_error_string(e));
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}

bool http_tls_load(struct server *srv, const char *cert, const char *key, char *err, size_t errlen)
{
	SSL_CTX *ctx = http_tls_ctx(cert, key, err, errlen);

	if (!ctx)
		return false;
	if (srv->tls)
		SSL_CTX_free((SSL_CTX *)srv->tls);
	srv->tls = (struct ssl_ctx_st *)ctx;
	return true;
}

void http_apply_limits(struct server *srv)
{
	evhttp_set_max_body_size(srv->http, (ev_ssize_t)srv->cfg.max_body_bytes);
	evhttp_set_max_headers_size(srv->http, 64 * 1024);
	evhttp_set_timeout(srv->http, srv->cfg.idle_timeout_s);
}

const struct config_hook http_limits_hook = { NULL, http_apply_limits, false };

/* Reload check: the new certificate and key load and match (into a context
 * thrown away; the apply loads them again). Empty files: TLS stays as it is. */
static bool http_tls_check(struct server *srv, const struct config *next, char *err, size_t errlen)
{
	SSL_CTX *ctx;

	(void)srv;
	if (!next->tls_cert_file[0])
		return true;
	if (!(ctx = http_tls_ctx(next->tls_cert_file, next->tls_key_file, err, errlen)))
		return false;
	SSL_CTX_free(ctx);
	return true;
}

/* Reload apply: new connections use the new context; open ones keep theirs. */
static void http_tls_apply(struct server *srv)
{
	char err[512];

	if (srv->cfg.tls_cert_file[0] &&
	    !http_tls_load(srv, srv->cfg.tls_cert_file, srv->cfg.tls_key_file, err, sizeof(err)))
		log_error("TLS certificate not reloaded, the running one stays: %s", err);
}

const struct config_hook http_tls_hook = { http_tls_check, http_tls_apply, true };

/* Splits "host:port" or "[v6]:port". */
static bool http_parse_addr(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon;
	char *end;
	long p;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');
		if (!close || close[1] != ':' || (size_t)(close - s - 1) >= hostlen)
			return false;
		memcpy(host, s + 1, (size_t)(close - s - 1));
		host[close - s - 1] = '\0';
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || (size_t)(colon - s) >= hostlen)
			return false;
		memcpy(host, s, (size_t)(colon - s));
		host[colon - s] = '\0';
	}
	p = strtol(colon + 1, &end, 10);
	if (*end || p < 1 || p > 65535)
		return false;
	*port = (int)p;
	return true;
}

/* The gate's cap for a body on path (gate_cap_fn): its route's cap key when it
 * has one, else max_body_bytes. */
static size_t http_gate_cap(const struct config *cfg, const char *path, const char **key)
{
	int idx = http_route_find(path);
	const struct config_param *cap = idx >= 0 ? http_route_states[idx].cap : NULL;

	if (!cap || config_size(cfg, cap) > cfg->max_body_bytes) {
		*key = "max_body_bytes";
		return cfg->max_body_bytes;
	}
	*key = cap->name;
	return config_size(cfg, cap);
}

bool http_start(struct server *srv, char *err, size_t errlen)
{
	gate_set_reply(http_early_reply);
	gate_set_cap(http_gate_cap);
	char *list, *tok, *save = NULL;
	struct evhttp_bound_socket *bound;
	int one = 1;

	RAND_bytes((unsigned char *)&http_request_seq, sizeof(http_request_seq));
	http_request_seq &= 0x0000ffffffffffffULL;

	srv->http = evhttp_new(srv->base);
	if (!srv->http) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						      EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						      EVHTTP_REQ_OPTIONS | EVHTTP_REQ_PATCH);
	evhttp_set_gencb(srv->http, http_dispatch, srv);
	srv->conns = conns_new(srv->base);
	if (!srv->conns) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	evhttp_set_bevcb(srv->http, http_bevcb, srv);
	http_apply_limits(srv);

	list = strdup(srv->cfg.listen);
	if (!list) {
		snprintf(err, errlen, "out of memory");
		return false;
	}
	for (tok = strtok_r(list, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save)) {
		char host[256];
		int port;

		if (!http_parse_addr(tok, host, sizeof(host), &port)) {
			snprintf(err, errlen, "listen \"%s\": expected HOST:PORT or [IPv6]:PORT",
				 tok);
			free(list);
			return false;
		}
		bound = evhttp_bind_socket_with_handle(srv->http, host, (ev_uint16_t)port);
		if (!bound) {
			snprintf(err, errlen, "cannot listen on %s: %m", tok);
			free(list);
			return false;
		}
		/* Accepted sockets inherit it (Linux): a reply written in several
		 * pieces, as TLS records always are, must not wait for the
		 * client's delayed ACK. */
		(void)setsockopt(evhttp_bound_socket_get_fd(bound), IPPROTO_TCP, TCP_NODELAY, &one,
				 sizeof(one));
		log_info("listening on %s://%s", srv->tls ? "https" : "http", tok);
	}
	free(list);
	return true;
}

static void http_first_bound(struct evhttp_bound_socket *bound, void *arg)
{
	struct evhttp_bound_socket **first = arg;

	if (!*first)
		*first = bound;
}

/* One listener at a time: the list cannot change while libevent walks it. */
void http_stop_listening(struct server *srv)
{
	struct evhttp_bound_socket *bound;

	if (!srv->http)
		return;
	for (;;) {
		bound = NULL;
		evhttp_foreach_bound_socket(srv->http, http_first_bound, &bound);
		if (!bound)
			break;
		evhttp_del_accept_socket(srv->http, bound);
	}
}

void http_free(struct server *srv)
{
	if (srv->http)
		evhttp_free(srv->http);
	srv->http = NULL;
	conns_free(srv->conns); /* after evhttp let go of every connection */
	srv->conns = NULL;
	if (srv->tls)
		SSL_CTX_free((SSL_CTX *)srv->tls);
	srv->tls = NULL;
}
