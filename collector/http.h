/* The HTTP front: evhttp setup (listeners, TLS, limits, timeouts), routing,
 * authentication helpers and JSON replies. Loop thread only. */
#ifndef VGC_HTTP_H
#define VGC_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"
#include "vgcollector.h"

struct buf;

typedef void (*http_handler)(struct http_req *hr);

/* A route whose path ends in '*' matches every path with the part before it
 * as prefix. */
enum http_method { HTTP_GET = 1, HTTP_POST = 2, HTTP_PUT = 4, HTTP_DELETE = 8 };

struct http_route {
	const char *path;
	int methods;
	http_handler handler;
};

/* Starts serving cfg.listen with the given routes. */
bool http_start(struct server *srv, const struct http_route *routes, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* Stops accepting new connections (draining). */
void http_stop_listening(struct server *srv);
/* Applies reloadable limits and timeouts from srv->cfg. */
void http_apply_limits(struct server *srv);
/* (Re)loads the TLS certificate and key into a new context. */
bool http_tls_load(struct server *srv, const char *cert, const char *key, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void http_free(struct server *srv);

/* Authenticates the request and checks its role is one of roles (a bitmask of
 * 1 << ROLE_*). On failure it answers 401/403/429 and returns NULL. */
const struct auth_key *http_auth(struct http_req *hr, unsigned roles);

const char *http_header(struct http_req *hr, const char *name);
void http_set_header(struct http_req *hr, const char *name, const char *value);
/* The body, made contiguous. *len gets its size. */
const char *http_body(struct http_req *hr, size_t *len);
/* The decoded query string as a list (evkeyvalq); NULL on a malformed URI. */
struct evkeyvalq;
bool http_query(struct http_req *hr, struct evkeyvalq *out);

/* Answers and, for async requests, frees hr. */
void http_reply(struct http_req *hr, int status, const char *content_type, const char *body,
		size_t len);
void http_reply_json(struct http_req *hr, int status, const char *json);
/* Answers {"error": "<formatted message>"}. */
void http_reply_error(struct http_req *hr, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Answers {"error": msg} with status; a 503 also gets Retry-After: 1. */
void http_reply_status(struct http_req *hr, int status, const char *msg);
/* Answers 503 with Retry-After: 1: out of memory, or the database pool's
 * queue full (db_queue_max requests waiting). */
void http_reply_oom(struct http_req *hr);
void http_reply_saturated(struct http_req *hr);
/* False, after answering 413, when the body is larger than max_body_bytes. */
bool http_body_fits(struct http_req *hr);
/* Checks the request body before it is queued; on false it has answered:
 * 413 past max_body_bytes, or 415 for a Content-Encoding other than gzip,
 * x-gzip or identity. *gzip says whether the body needs inflating. */
bool http_body_check(struct http_req *hr, bool *gzip);
/* Answers a failure whose cause is internal (the database's text, a path, an
 * index name): detail goes only to the log, with the request id; the client
 * gets {"error":"<public> (request id R)","request_id":"R"}. A 503 also gets
 * Retry-After: 1. public says what happened in our words. */
void http_reply_internal(struct http_req *hr, int status, const char *public_msg,
			 const char *detail);
/* Marks hr as owned by a job: it outlives the handler. */
void http_defer(struct http_req *hr);

#endif
