/* The HTTP front: evhttp setup (listeners, TLS, limits, timeouts), the route
 * table and its dispatcher (authentication, roles, body caps, pool choice),
 * and JSON replies. Loop thread only. */
#ifndef VGC_HTTP_H
#define VGC_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "auth.h"
#include "vgcollector.h"

struct buf;

typedef void (*http_handler)(struct http_req *hr);

enum http_method { HTTP_GET = 1, HTTP_POST = 2, HTTP_PUT = 4, HTTP_DELETE = 8 };

/* Who may call a route: HTTP_OPEN (no key asked), or a bitmask of
 * HTTP_ROLE(ROLE_*). */
#define HTTP_OPEN 0u
#define HTTP_ROLE(role) (1u << (role))
#define HTTP_ROLES_WRITE (HTTP_ROLE(ROLE_INGEST) | HTTP_ROLE(ROLE_ADMIN))
#define HTTP_ROLES_READ (HTTP_ROLE(ROLE_READ) | HTTP_ROLE(ROLE_ADMIN))
#define HTTP_ROLES_ANY (HTTP_ROLE(ROLE_INGEST) | HTTP_ROLE(ROLE_READ) | HTTP_ROLE(ROLE_ADMIN))

/* What the dispatcher checks of a route's body before its handler runs. */
enum http_body {
	HTTP_BODY_NONE = 0, /* not read: the gate's max_body_bytes is the only cap */
	HTTP_BODY_CAPPED,   /* at most the size config key body_cap names, else 413 */
	HTTP_BODY_STREAM    /* ingest-sized: the handler checks it (http_body_check) */
};

/* Where a route's queries run (hr->pool). */
enum http_pool {
	HTTP_POOL_PRIMARY = 0, /* the primary's pool */
	HTTP_POOL_READ,	       /* a read the standby (read_db) may serve while usable */
	HTTP_POOL_LONG	       /* long reads: db_long_pool_size, apart from ingest's */
};

/* One endpoint. The dispatcher (http.c) matches path and method, answers 503
 * while draining (but /healthz), authenticates the key and checks its role
 * against roles (401/403/429), checks the body against its policy (413), picks
 * the database pool (hr->pool, by the route's pool: for HTTP_POOL_READ the
 * standby's while read_db is usable), and only then calls handler, with hr->key set
 * unless the route is HTTP_OPEN. A path ending in '*' matches every path with
 * the part before it as prefix. */
struct http_route {
	const char *path;
	int methods;	      /* HTTP_GET | ... */
	unsigned roles;	      /* HTTP_OPEN or HTTP_ROLE(...) bits */
	enum http_body body;  /* body policy */
	const char *body_cap; /* HTTP_BODY_CAPPED: a CFG_SIZE config key; else NULL */
	enum http_pool pool;  /* where its queries run */
	http_handler handler;
};

/* Checks the table (every body_cap names a size key) and gives each route its
 * own metrics series, however many there are. routes ends with a NULL path
 * and must outlive the server. Startup only. */
bool http_routes_set(const struct http_route *routes, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* The metrics series of the route path matches ("other" when none). */
int http_route_slot(const char *path);

/* Starts serving cfg.listen with the routes given to http_routes_set. */
bool http_start(struct server *srv, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Stops accepting new connections (draining). */
void http_stop_listening(struct server *srv);
/* Applies reloadable limits and timeouts from srv->cfg. */
void http_apply_limits(struct server *srv);
/* Config reload hooks (config.c rows): the limits above, and the TLS
 * certificate and key, re-read on every reload so renewed files take. */
extern const struct config_hook http_limits_hook;
extern const struct config_hook http_tls_hook;
/* (Re)loads the TLS certificate and key into a new context. */
bool http_tls_load(struct server *srv, const char *cert, const char *key, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void http_free(struct server *srv);

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
/* The reply was sent some other way (http_stream.c's chunks): counts and logs
 * it with status and, for async requests, frees hr. */
void http_finish(struct http_req *hr, int status);
/* Answers {"error": "<formatted message>"}. */
void http_reply_error(struct http_req *hr, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Answers {"error": msg} with status; a 503 also gets Retry-After: 1. */
void http_reply_status(struct http_req *hr, int status, const char *msg);
/* Answers 503 with Retry-After: 1: out of memory, or the database pool's
 * queue full (db_queue_max requests waiting). */
void http_reply_oom(struct http_req *hr);
void http_reply_saturated(struct http_req *hr);
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
