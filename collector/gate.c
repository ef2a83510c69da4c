/* The front gate (see gate.h). Each client connection reads through a filter
 * bufferevent whose input function is gate_filter_in. Per connection:
 *
 *   GATE_HEAD  nothing passes to evhttp until a whole request head is in;
 *              then the head is checked: refused (GATE_REFUSED), or its body
 *              size reserved against max_pending_body_bytes (GATE_PASS).
 *   GATE_PASS  the head passes, then pass_left body bytes (-1: a chunked body,
 *              everything until evhttp dispatches the request).
 *   GATE_WAIT  the request is with evhttp; the next one waits in the socket's
 *              buffer until its answer is written (gate_answered).
 *   GATE_CLOSING  the gate refused the request, or the answer said
 *              Connection: close. The filter is unhooked; the socket's output
 *              is written, then shut down, the client's input discarded for at
 *              most GATE_LINGER_S, then evhttp is told the connection closed.
 *              A refused request never had a body byte buffered.
 *
 * One request at a time passes, so a refusal never overtakes an answer.
 *
 * Closing is the gate's job because evhttp, when it closes after an answer,
 * shuts the socket down as soon as the answer has left the filter, while it
 * may still sit in the socket bufferevent's output: the client would get a
 * bare close. So gate_answered takes "close" back from evhttp (evhttp then
 * waits for a next request) and closes once the socket has written it all. */
#include "gate.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "auth.h"
#include "metrics.h"
#include "vgcollector.h"

#define GATE_HEAD_MAX (64 * 1024)   /* as evhttp_set_max_headers_size in http.c */
#define GATE_READ_HIGH (128 * 1024) /* socket bytes held while a request is in */
#define GATE_LINGER_S 2		    /* draining a refused client before closing */

enum gate_state { GATE_HEAD, GATE_PASS, GATE_WAIT, GATE_CLOSING };

struct gate {
	struct server *srv;
	struct bufferevent *bev;   /* the filter; evhttp owns it */
	struct bufferevent *under; /* socket or TLS; the filter owns it */
	enum gate_state state;
	long long pass_left; /* GATE_PASS: bytes still to pass; -1 until dispatch */
	bool http10;	     /* the request passed is HTTP/1.0 */
	size_t line, scan;   /* GATE_HEAD: gate_head_end's place in the input */
	size_t reserved;     /* held against max_pending_body_bytes */
	struct event *linger;
	bool shut, finished;
	struct gate *prev, *next; /* gate_all */
};

static struct gate *gate_all;
static size_t gate_pending; /* sum of reserved over gate_all */

size_t gate_pending_bytes(void)
{
	return gate_pending;
}

static void gate_release(struct gate *g)
{
	gate_pending -= g->reserved;
	g->reserved = 0;
}

struct gate *gate_find(struct bufferevent *bev)
{
	/* At most max_connections pointers, once per request. */
	for (struct gate *g = gate_all; g; g = g->next)
		if (g->bev == bev)
			return g;
	return NULL;
}

size_t gate_head_end(struct evbuffer *src, size_t *line, size_t *scan)
{
	size_t len = evbuffer_get_length(src);
	struct evbuffer_ptr at, nl;
	char c = 0;

	while (*scan < len) {
		if (evbuffer_ptr_set(src, &at, *scan, EVBUFFER_PTR_SET) != 0)
			return 0;
		nl = evbuffer_search(src, "\n", 1, &at);
		if (nl.pos < 0) {
			*scan = len; /* no newline up to here: never look at these again */
			return 0;
		}
		if ((size_t)nl.pos == *line + 1 &&
		    evbuffer_ptr_set(src, &at, *line, EVBUFFER_PTR_SET) == 0)
			evbuffer_copyout_from(src, &at, &c, 1);
		if ((size_t)nl.pos == *line || ((size_t)nl.pos == *line + 1 && c == '\r')) {
			*line = *scan = 0;
			return (size_t)nl.pos + 1;
		}
		*line = *scan = (size_t)nl.pos + 1;
	}
	return 0;
}

/* Copies p[0..len) into out (NUL-terminated) with evhttp's trimming: leading
 * spaces, trailing spaces and tabs. False if it did not fit. */
static bool gate_value(const char *p, size_t len, char *out, size_t outlen)
{
	while (len && *p == ' ')
		p++, len--;
	while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
		len--;
	if (len >= outlen) {
		memcpy(out, p, outlen - 1);
		out[outlen - 1] = '\0';
		return false;
	}
	memcpy(out, p, len);
	out[len] = '\0';
	return true;
}

static bool gate_request_line(const char *p, size_t len, struct gate_head *h)
{
	const char *sp1 = memchr(p, ' ', len), *sp2, *end, *path;
	size_t n;

	if (!sp1 || sp1 == p || (size_t)(sp1 - p) >= sizeof(h->method))
		return false;
	memcpy(h->method, p, (size_t)(sp1 - p));
	h->method[sp1 - p] = '\0';
	sp2 = memchr(sp1 + 1, ' ', len - (size_t)(sp1 + 1 - p));
	if (!sp2 || sp2 == sp1 + 1)
		return false;
	n = len - (size_t)(sp2 + 1 - p);
	if (n != 8 || (memcmp(sp2 + 1, "HTTP/1.1", 8) && memcmp(sp2 + 1, "HTTP/1.0", 8)))
		return false;
	h->http10 = sp2[8] == '0';
	path = sp1 + 1;
	if (*path != '/') { /* absolute-form: skip scheme://authority */
		const char *s = memchr(path, '/', (size_t)(sp2 - path));
		if (s && s + 1 < sp2 && s[1] == '/')
			s = memchr(s + 2, '/', (size_t)(sp2 - (s + 2)));
		path = s ? s : sp2;
	}
	end = memchr(path, '?', (size_t)(sp2 - path));
	n = (size_t)((end ? end : sp2) - path);
	if (n >= sizeof(h->path))
		n = sizeof(h->path) - 1;
	memcpy(h->path, path, n);
	h->path[n] = '\0';
	h->may_have_body = !strcmp(h->method, "POST") || !strcmp(h->method, "PUT") ||
			   !strcmp(h->method, "PATCH");
	return true;
}

bool gate_parse_head(const char *p, size_t len, struct gate_head *h, char *err, size_t errlen)
{
	const char *end = p + len, *line = p, *nl;
	bool first = true, has_te = false;
	char v[64];

	memset(h, 0, sizeof(*h));
	snprintf(h->method, sizeof(h->method), "-");
	snprintf(h->path, sizeof(h->path), "-");
	for (; line < end && (nl = memchr(line, '\n', (size_t)(end - line))); line = nl + 1) {
		size_t n = (size_t)(nl - line);
		const char *colon;
		size_t nlen, vlen;

		if (n && line[n - 1] == '\r')
			n--;
		if (first) {
			first = false;
			if (!gate_request_line(line, n, h)) {
				snprintf(err, errlen,
					 "malformed request line (expected METHOD /path "
					 "HTTP/1.1)");
				return false;
			}
			if (strcmp(h->method, "GET") && strcmp(h->method, "HEAD") &&
			    strcmp(h->method, "POST") && strcmp(h->method, "PUT") &&
			    strcmp(h->method, "DELETE") && strcmp(h->method, "OPTIONS") &&
			    strcmp(h->method, "PATCH")) {
				snprintf(err, errlen, "method %s is not supported", h->method);
				return false;
			}
			continue;
		}
		if (n == 0)
			break;
		if (line[0] == ' ' || line[0] == '\t') {
			snprintf(err, errlen,
				 "a header line starts with a space or tab (obsolete "
				 "line folding), which is not accepted");
			return false;
		}
		colon = memchr(line, ':', n);
		if (!colon || colon == line) {
			snprintf(err, errlen, "malformed header line (expected Name: value)");
			return false;
		}
		nlen = (size_t)(colon - line);
		colon++;
		vlen = n - nlen - 1;
		if (nlen == 14 && !strncasecmp(line, "Content-Length", 14)) {
			unsigned long long cl = 0;
			size_t i;
			bool fits = gate_value(colon, vlen, v, sizeof(v));

			for (i = 0; fits && v[i] >= '0' && v[i] <= '9' && i < 18; i++)
				cl = cl * 10 + (unsigned long long)(v[i] - '0');
			if (!fits || i == 0 || v[i]) {
				snprintf(err, errlen,
					 "Content-Length \"%s%s\" is not a number of bytes", v,
					 fits ? "" : "...");
				return false;
			}
			if (h->has_length && cl != h->length) {
				snprintf(err, errlen,
					 "two different Content-Length headers (%llu and %llu)",
					 h->length, cl);
				return false;
			}
			h->has_length = true;
			h->length = cl;
		} else if (nlen == 17 && !strncasecmp(line, "Transfer-Encoding", 17)) {
			bool fits = gate_value(colon, vlen, v, sizeof(v));

			if (has_te || !fits || strcasecmp(v, "chunked") != 0) {
				snprintf(err, errlen,
					 "Transfer-Encoding \"%s%s\" is not supported: send "
					 "Content-Length or a single Transfer-Encoding: chunked",
					 v, fits ? "" : "...");
				return false;
			}
			has_te = true;
			h->chunked = true;
		} else if (nlen == 13 && !strncasecmp(line, "Authorization", 13) &&
			   !h->authorization[0] && !h->authorization_too_long) {
			h->authorization_too_long = !gate_value(colon, vlen, h->authorization,
								sizeof(h->authorization));
		}
	}
	if (h->has_length && h->chunked) {
		snprintf(err, errlen,
			 "both Content-Length and Transfer-Encoding are set; send one");
		return false;
	}
	return true;
}

static void gate_finish(struct gate *g)
{
	bufferevent_event_cb cb = NULL;
	void *arg = NULL;

	if (g->finished)
		return;
	g->finished = true;
	if (g->linger)
		event_del(g->linger);
	/* evhttp still waits for a request line: an EOF makes it free the
	 * connection (and, through the filter, the socket). */
	bufferevent_getcb(g->bev, NULL, NULL, &cb, &arg);
	if (cb)
		cb(g->bev, BEV_EVENT_EOF | BEV_EVENT_READING, arg);
}

static void gate_linger_timeout(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	gate_finish(arg);
}

static void gate_linger_read(struct bufferevent *under, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(under);

	(void)arg;
	evbuffer_drain(in, evbuffer_get_length(in));
}

/* The answer is written: send FIN, keep discarding what the client still
 * sends (closing with unread data would reset the connection, and the client
 * could lose the answer), and close when it closes or GATE_LINGER_S passed. */
static void gate_linger_write(struct bufferevent *under, void *arg)
{
	struct gate *g = arg;
	struct timeval tv = { GATE_LINGER_S, 0 };
	evutil_socket_t fd;

	if (g->shut || evbuffer_get_length(bufferevent_get_output(under)) > 0)
		return;
	g->shut = true;
	fd = bufferevent_getfd(under);
	if (fd >= 0)
		shutdown(fd, SHUT_WR);
	g->linger = evtimer_new(bufferevent_get_base(under), gate_linger_timeout, g);
	if (!g->linger || evtimer_add(g->linger, &tv) != 0)
		gate_finish(g);
}

static void gate_linger_event(struct bufferevent *under, short what, void *arg)
{
	(void)under, (void)what;
	gate_finish(arg);
}

/* Unhooks the filter: from here the socket is the gate's alone, and evhttp,
 * behind the filter, hears nothing until gate_finish. The socket's output is
 * written, then the linger starts. */
static void gate_close(struct gate *g)
{
	g->state = GATE_CLOSING;
	bufferevent_setcb(g->under, gate_linger_read, gate_linger_write, gate_linger_event, g);
	bufferevent_setwatermark(g->under, EV_READ, 0, 0);
	bufferevent_enable(g->under, EV_READ | EV_WRITE);
	if (evbuffer_get_length(bufferevent_get_output(g->under)) == 0)
		gate_linger_write(g->under, g);
}

static gate_reply_fn gate_reply;

void gate_set_reply(gate_reply_fn fn)
{
	gate_reply = fn;
}

static gate_cap_fn gate_cap;

void gate_set_cap(gate_cap_fn fn)
{
	gate_cap = fn;
}

/* Answers the request at the head of src itself and closes the connection. */
static void gate_refuse(struct gate *g, struct evbuffer *src, const struct gate_head *h, int status,
			const char *extra_headers, const char *msg)
{
	gate_reply(bufferevent_get_output(g->under), h->method, h->path, status, extra_headers,
		   msg);
	evbuffer_drain(src, evbuffer_get_length(src));
	gate_close(g);
}

/* GATE_HEAD: decides on the head at the start of src once it is complete. */
static void gate_check(struct gate *g, struct evbuffer *src)
{
	const struct config *cfg = &g->srv->cfg;
	size_t avail = evbuffer_get_length(src);
	size_t hlen = gate_head_end(src, &g->line, &g->scan);
	const char *p;
	unsigned long long declared;
	struct gate_head h;
	char msg[512];

	if (!hlen || hlen > GATE_HEAD_MAX) {
		if (hlen || avail > GATE_HEAD_MAX) {
			size_t n = avail < 2048 ? avail : 2048;

			/* The request line, for the log and the metrics. */
			p = (const char *)evbuffer_pullup(src, (ev_ssize_t)n);
			(void)gate_parse_head(p, n, &h, msg, sizeof(msg));
			snprintf(msg, sizeof(msg), "request head larger than %d bytes",
				 GATE_HEAD_MAX);
			gate_refuse(g, src, &h, 431, NULL, msg);
		}
		return;
	}
	p = (const char *)evbuffer_pullup(src, (ev_ssize_t)hlen);
	if (!gate_parse_head(p, hlen, &h, msg, sizeof(msg))) {
		gate_refuse(g, src, &h, 400, NULL, msg);
		return;
	}
	declared = !h.may_have_body ? 0 : h.chunked ? cfg->max_body_bytes : h.length;
	if (declared > 0) {
		enum auth_result why;

		if (!auth_lookup(g->srv->keys, h.authorization_too_long ? "-" : h.authorization,
				 &why)) {
			metrics_auth_failure();
			gate_refuse(g, src, &h, 401, "WWW-Authenticate: Bearer\r\n",
				    auth_problem(why));
			return;
		}
		const char *cap_key = "max_body_bytes";
		size_t cap = gate_cap ? gate_cap(cfg, h.path, &cap_key) : cfg->max_body_bytes;

		if (!h.chunked && declared > cap) {
			if (!strcmp(cap_key, "max_body_bytes"))
				snprintf(msg, sizeof(msg),
					 "body of %llu bytes is larger than max_body_bytes (%zu)",
					 declared, cap);
			else
				snprintf(msg, sizeof(msg), "body: %llu bytes, more than %s (%zu)",
					 declared, cap_key, cap);
			gate_refuse(g, src, &h, 413, NULL, msg);
			return;
		}
		if (gate_pending > cfg->max_pending_body_bytes ||
		    declared > cfg->max_pending_body_bytes - gate_pending) {
			metrics_pending_body_refused();
			snprintf(
				msg, sizeof(msg),
				"the collector is receiving %zu bytes of request bodies and this one "
				"(%llu) would pass max_pending_body_bytes (%zu); retry shortly",
				gate_pending, declared, cfg->max_pending_body_bytes);
			gate_refuse(g, src, &h, 503, "Retry-After: 1\r\n", msg);
			return;
		}
	}
	g->http10 = h.http10;
	g->reserved = (size_t)declared;
	gate_pending += g->reserved;
	g->state = GATE_PASS;
	g->pass_left = h.chunked && declared ? -1 : (long long)(hlen + declared);
}

static enum bufferevent_filter_result gate_filter_in(struct evbuffer *src, struct evbuffer *dst,
						     ev_ssize_t limit,
						     enum bufferevent_flush_mode mode, void *ctx)
{
	struct gate *g = ctx;
	size_t n;

	(void)mode;
	if (g->state == GATE_HEAD)
		gate_check(g, src);
	if (g->state != GATE_PASS)
		return BEV_NEED_MORE;
	n = evbuffer_get_length(src);
	if (g->pass_left >= 0 && (long long)n > g->pass_left)
		n = (size_t)g->pass_left;
	if (limit >= 0 && n > (size_t)limit)
		n = (size_t)limit;
	if (n == 0)
		return BEV_NEED_MORE;
	evbuffer_remove_buffer(src, dst, n);
	if (g->pass_left >= 0 && (g->pass_left -= (long long)n) == 0)
		g->state = GATE_WAIT;
	return BEV_OK;
}

void gate_dispatched(struct gate *g)
{
	struct evbuffer *seen = bufferevent_get_input(g->bev);

	gate_release(g);
	g->state = GATE_WAIT;
	/* Bytes after a chunked body reached evhttp unchecked; evhttp reads
	 * nothing until this answer is written, so take them back for the gate. */
	if (evbuffer_get_length(seen))
		evbuffer_prepend_buffer(bufferevent_get_input(g->under), seen);
}

void gate_answered(struct gate *g, struct evhttp_request *req)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	const char *conn_in = evhttp_find_header(in, "Connection");
	const char *conn_out = evhttp_find_header(out, "Connection");

	if (g->state != GATE_WAIT)
		return;
	/* evhttp's rule for closing after an answer. */
	if ((g->http10 && !(conn_in && !strncasecmp(conn_in, "keep-alive", 10))) ||
	    (conn_in && !strcasecmp(conn_in, "close")) ||
	    (conn_out && !strcasecmp(conn_out, "close"))) {
		/* Called before evhttp decides: it keeps the connection, and the
		 * gate closes it once the answer is on the wire. */
		evhttp_remove_header(in, "Connection");
		evhttp_remove_header(out, "Connection");
		if (g->http10)
			evhttp_add_header(in, "Connection", "keep-alive");
		gate_close(g);
		return;
	}
	g->state = GATE_HEAD;
	g->line = g->scan = 0;
	/* A pipelined head may already wait in the socket's buffer; deferred,
	 * so evhttp has started reading its next request when it passes. */
	if (evbuffer_get_length(bufferevent_get_input(g->under)))
		bufferevent_trigger(g->under, EV_READ,
				    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

/* be_filter moves evhttp's output to the socket when output is added while
 * writing is enabled, or when the socket has drained. evhttp adds an answer
 * first and enables writing after, so on an idle socket the answer would wait
 * for an event that never comes. A deferred write trigger on the socket runs
 * the filter once evhttp has enabled writing. */
static void gate_out_added(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct gate *g = arg;

	(void)buf;
	if (info->n_added && g->state != GATE_CLOSING)
		bufferevent_trigger(g->under, EV_WRITE,
				    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

static void gate_free(void *ctx)
{
	struct gate *g = ctx;

	gate_release(g);
	if (g->prev)
		g->prev->next = g->next;
	else
		gate_all = g->next;
	if (g->next)
		g->next->prev = g->prev;
	if (g->linger)
		event_free(g->linger);
	free(g);
}

struct bufferevent *gate_new(struct server *srv, struct bufferevent *under)
{
	struct gate *g = calloc(1, sizeof(*g));

	if (!g) {
		bufferevent_free(under);
		return NULL;
	}
	g->srv = srv;
	g->under = under;
	g->bev = bufferevent_filter_new(under, gate_filter_in, NULL, BEV_OPT_CLOSE_ON_FREE,
					gate_free, g);
	if (!g->bev) {
		free(g);
		bufferevent_free(under);
		return NULL;
	}
	g->next = gate_all;
	if (gate_all)
		gate_all->prev = g;
	gate_all = g;
	if (!evbuffer_add_cb(bufferevent_get_output(g->bev), gate_out_added, g)) {
		bufferevent_free(g->bev); /* frees under, and g through gate_free */
		return NULL;
	}
	/* Bounds what a client can park in the socket's buffer while the gate
	 * holds its next head. */
	bufferevent_setwatermark(under, EV_READ, 0, GATE_READ_HIGH);
	return g->bev;
}
