/* The front gate: a bufferevent filter between each client socket and evhttp
 * that lets a request's body through only once its head has been checked.
 * libevent 2.1 has no per-request hook before the body is read (no
 * evhttp_set_newreqcb), so the gate reads the head itself. Loop thread only. */
#ifndef VGC_GATE_H
#define VGC_GATE_H

#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct gate;
struct server;

/* Wraps under (a socket or TLS bufferevent whose fd evhttp sets later) in the
 * gate's filter and returns the filter, which evhttp then owns; freeing it
 * frees under. NULL when out of memory (under is freed). */
struct bufferevent *gate_new(struct server *srv, struct bufferevent *under);

/* The gate whose filter is bev, or NULL when bev is not a gate (evhttp made
 * it itself because our bufferevent callback failed). */
struct gate *gate_find(struct bufferevent *bev);

/* evhttp dispatched the request the gate let through: its reserved bytes go
 * back to max_pending_body_bytes. */
void gate_dispatched(struct gate *g);

/* The answer to req has left evhttp (its on_complete callback, called before
 * evhttp decides to keep or close the connection): the gate checks the next
 * request, or closes the connection itself once the answer is written. */
struct evhttp_request;
void gate_answered(struct gate *g, struct evhttp_request *req);

/* Writes a whole HTTP/1.1 answer {"error": msg} with Connection: close to out
 * for a request the gate refuses before evhttp sees it, counting and logging it
 * like any answer. http.c, which owns request ids, routes and the log line,
 * provides it through gate_set_reply before the first connection. */
struct evbuffer;
typedef void (*gate_reply_fn)(struct evbuffer *out, const char *method, const char *path,
			      int status, const char *extra_headers, const char *msg);
void gate_set_reply(gate_reply_fn fn);

/* The largest body the route of path takes, and the config key that sets it
 * (*key). http.c provides it from the route table; without one the cap is
 * max_body_bytes. A body declared larger gets 413 before it is read. */
struct config;
typedef size_t (*gate_cap_fn)(const struct config *cfg, const char *path, const char **key);
void gate_set_cap(gate_cap_fn fn);

/* Body bytes reserved now by requests the gate let through and evhttp has not
 * dispatched yet (for /metrics). */
size_t gate_pending_bytes(void);

/* What the gate found in a request head (exposed for the unit tests). */
struct gate_head {
	char method[16];
	char path[256];	    /* the target without its query, cut to fit */
	bool may_have_body; /* POST, PUT, PATCH: evhttp reads a body only for these */
	bool chunked;
	bool has_length;
	unsigned long long length; /* Content-Length */
	char authorization[600];   /* the first Authorization header */
	bool authorization_too_long;
	bool http10;
};

/* The length of the request head at the start of src (through its empty
 * line), or 0 while the empty line has not arrived. Lines end in LF or CRLF,
 * as evhttp reads them. *line and *scan (0 for a new head) keep the place
 * between calls, so each byte is searched once however the head trickles in. */
struct evbuffer;
size_t gate_head_end(struct evbuffer *src, size_t *line, size_t *scan);

/* Parses the head p[0..len). False: a malformed request line or header line,
 * a method evhttp does not know, or framing the gate refuses (two
 * different Content-Length values, a bad Content-Length, a Transfer-Encoding
 * other than chunked, both Content-Length and Transfer-Encoding, a folded
 * header line); err then says why, naming the header. */
bool gate_parse_head(const char *p, size_t len, struct gate_head *h, char *err, size_t errlen);

#endif
