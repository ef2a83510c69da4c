/* Chunked replies produced on a pool worker (see http_stream.h).
 *
 * The worker appends to pending under mu and, once a piece is there, wakes
 * the loop and waits. The loop (http_stream_pump) moves pending into evhttp
 * only while the connection holds less than half the cap unsent; otherwise it
 * watches the connection's innermost output buffer and moves it when that
 * has drained. So the bytes held for one client stay under the cap plus a
 * piece, however slowly it reads. A client that reads nothing for
 * idle_timeout_s is dropped.
 *
 * Lifetime: the stream outlives both sides. It is freed on the loop once the
 * worker's job is done (the pool's done callback) and the reply is over:
 * ended, cut, answered as an error, or the client went away. libevent frees
 * the request with the connection, except when the connection failed under a
 * reply not yet ended: then evhttp has detached the request and it is ours
 * to free (req_owned). */
#include "http_stream.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pool.h"

#define HTTP_STREAM_PIECE_MAX (64 * 1024) /* what the worker hands over at once */

struct http_stream {
	struct pool_job job; /* first: the pool hands this pointer back */
	const struct http_stream_spec *spec;
	void *arg;
	size_t cap;   /* buffer_bytes */
	size_t piece; /* the worker waits while pending holds this much */

	/* Loop thread only. */
	struct http_req *hr;
	struct evhttp_request *req; /* NULL once libevent freed it */
	bool req_owned;		    /* evhttp detached req: we free it */
	bool closed;		    /* the client's connection is gone */
	bool started;		    /* the status line and headers left */
	bool job_done;		    /* the pool called done: the worker let go */
	bool over;		    /* the reply is ended, cut or answered */
	bool watching;		    /* waiting for the connection to drain */
	long long sent;		    /* body bytes handed to evhttp */
	char request_id[20];	    /* for the log once hr is gone */
	struct evbuffer *out;	    /* the connection's innermost output */
	struct evbuffer_cb_entry *drain_cb;
	struct event *wake;  /* activated by the worker and by the drain */
	struct event *stall; /* the client read nothing for idle_timeout_s */
	struct evbuffer *move;

	/* Shared, under mu. */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct evbuffer *pending; /* produced, not yet handed to evhttp */
	bool gone;		  /* the client went away: the worker stops */
	bool write_failed;	  /* out of memory appending */
	long long produced;	  /* body bytes the worker wrote */
	int status;		  /* the producer's, once job_done */
	char err[1024];
};

static void http_stream_pump(struct http_stream *st);

/* The bytes waiting in the connection: evhttp's buffer and, under the gate's
 * filter, the socket's (or TLS) one. */
static size_t http_stream_unsent(struct http_stream *st)
{
	struct bufferevent *bev =
		st->hr->evcon ? evhttp_connection_get_bufferevent(st->hr->evcon) : NULL;
	struct bufferevent *under = bev ? bufferevent_get_underlying(bev) : NULL;
	size_t n = 0;

	if (bev)
		n += evbuffer_get_length(bufferevent_get_output(bev));
	if (under)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

/* The connection's innermost output buffer changed: wake the pump once it has
 * drained below half the cap. */
static void http_stream_drained(struct evbuffer *buf, const struct evbuffer_cb_info *info,
				void *arg)
{
	struct http_stream *st = arg;

	(void)buf;
	if (st->watching && info->n_deleted && http_stream_unsent(st) < st->cap / 2)
		event_active(st->wake, EV_WRITE, 0);
}

static void http_stream_unwatch(struct http_stream *st)
{
	if (st->drain_cb)
		evbuffer_remove_cb_entry(st->out, st->drain_cb);
	st->drain_cb = NULL;
	st->out = NULL;
	st->watching = false;
	if (st->stall)
		event_del(st->stall);
}

static void http_stream_free(struct http_stream *st)
{
	http_stream_unwatch(st);
	if (st->req && st->req_owned)
		evhttp_request_free(st->req);
	if (st->wake)
		event_free(st->wake);
	if (st->stall)
		event_free(st->stall);
	if (st->pending)
		evbuffer_free(st->pending);
	if (st->move)
		evbuffer_free(st->move);
	pthread_mutex_destroy(&st->mu);
	pthread_cond_destroy(&st->cv);
	if (st->spec->arg_free)
		st->spec->arg_free(st->arg);
	free(st);
}

/* The client's connection closed (evhttp is freeing it): the worker stops at
 * its next write, and the stream ends once the worker has let go. */
static void http_stream_on_close(struct evhttp_connection *evcon, void *arg)
{
	struct http_stream *st = arg;

	(void)evcon;
	http_stream_unwatch(st);
	/* Detached from a failed connection before its reply ended: ours. */
	st->req_owned = st->req && !evhttp_request_get_connection(st->req);
	if (!st->req_owned)
		st->req = NULL;
	st->hr->req = NULL;
	st->hr->evcon = NULL;
	st->closed = true;
	pthread_mutex_lock(&st->mu);
	st->gone = true;
	pthread_cond_broadcast(&st->cv);
	pthread_mutex_unlock(&st->mu);
	/* Never freed inside libevent's callback: the pump runs a turn later. */
	event_active(st->wake, EV_WRITE, 0);
}

/* The reply is over (sent, cut, or never to be sent): counted and logged as
 * an answer with status, and hr let go. */
static void http_stream_over(struct http_stream *st, int status)
{
	st->over = true;
	http_stream_unwatch(st);
	if (st->hr->evcon)
		evhttp_connection_set_closecb(st->hr->evcon, NULL, NULL);
	http_finish(st->hr, status);
	st->hr = NULL;
}

/* Cuts a started reply: the connection closes without the last chunk. */
static void http_stream_cut(struct http_stream *st, const char *why)
{
	struct evhttp_connection *evcon = st->hr->evcon;

	log_req(LOG_LVL_WARN, &st->hr->log, "stream cut after %lld bytes: %s", st->sent, why);
	if (evcon)
		evhttp_connection_free(evcon); /* calls http_stream_on_close */
	http_stream_over(st, 500);
}

static void http_stream_begin(struct http_stream *st)
{
	if (st->hr->srv->state == SERVER_DRAINING)
		http_set_header(st->hr, "Connection", "close");
	http_set_header(st->hr, "Content-Type", st->spec->content_type);
	if (st->spec->headers)
		st->spec->headers(st->hr, st->arg);
	evhttp_send_reply_start(st->req, 200, "OK");
	st->started = true;
}

/* Hands what the worker produced to evhttp while the client keeps up, and
 * ends the reply once the worker is done and everything left. Loop thread. */
static void http_stream_pump(struct http_stream *st)
{
	size_t left, moved;
	bool stalled = false;

	if (st->over) {
		if (st->job_done)
			http_stream_free(st);
		return;
	}
	if (st->closed) { /* the client went away */
		log_req(LOG_LVL_INFO, &st->hr->log, "client went away after %lld bytes of a stream",
			st->sent);
		http_stream_over(st, 499);
		if (st->job_done)
			http_stream_free(st);
		return;
	}
	pthread_mutex_lock(&st->mu);
	if (http_stream_unsent(st) < st->cap / 2 && evbuffer_get_length(st->pending)) {
		evbuffer_add_buffer(st->move, st->pending);
		pthread_cond_broadcast(&st->cv);
	}
	left = evbuffer_get_length(st->pending);
	pthread_mutex_unlock(&st->mu);
	if ((moved = evbuffer_get_length(st->move)) > 0) {
		if (!st->started)
			http_stream_begin(st);
		st->sent += (long long)evbuffer_get_length(st->move);
		evhttp_send_reply_chunk(st->req, st->move);
		evbuffer_drain(st->move, evbuffer_get_length(st->move));
	}
	if (left) {
		/* The client is behind: go on once its connection drains. It has
		 * idle_timeout_s to take something, counted from its last progress. */
		struct timeval tv = { st->hr->srv->cfg.idle_timeout_s, 0 };

		if (!st->watching || moved)
			event_add(st->stall, &tv);
		st->watching = true;
		stalled = true;
	} else if (st->watching) {
		st->watching = false;
		event_del(st->stall);
	}
	if (stalled || !st->job_done)
		return;
	if (st->status == 200) {
		if (!st->started)
			http_stream_begin(st);
		struct evhttp_request *req = st->req;
		struct bufferevent *bev = evhttp_connection_get_bufferevent(st->hr->evcon);

		st->req = NULL; /* evhttp's again, and may be freed at once */
		/* evhttp_send_reply_end adds the last chunk, then asks to be told
		 * when it is written. With writing enabled, the gate's filter
		 * (no deferred callbacks) would write it at once, before evhttp
		 * asks: the answer would never complete, and the next request on
		 * the connection would never be read. Disabled, evhttp's own
		 * enable writes it and then tells it. */
		bufferevent_disable(bev, EV_WRITE);
		evhttp_send_reply_end(req);
		http_stream_over(st, 200);
	} else if (!st->started) {
		struct http_req *hr = st->hr;

		st->over = true;
		http_stream_unwatch(st);
		evhttp_connection_set_closecb(hr->evcon, NULL, NULL);
		st->hr = NULL;
		st->req = NULL;
		st->spec->fail(hr, st->status, st->err, st->arg); /* answers and frees hr */
	} else {
		http_stream_cut(st, st->err);
	}
	http_stream_free(st);
}

static void http_stream_on_wake(evutil_socket_t fd, short what, void *arg)
{
	(void)fd, (void)what;
	http_stream_pump(arg);
}

static void http_stream_on_stall(evutil_socket_t fd, short what, void *arg)
{
	struct http_stream *st = arg;
	char why[96];

	(void)fd, (void)what;
	if (st->over || !st->watching)
		return;
	snprintf(why, sizeof(why), "the client read nothing for %d s (idle_timeout_s)",
		 st->hr->srv->cfg.idle_timeout_s);
	http_stream_cut(st, why);
	if (st->job_done)
		http_stream_free(st);
}

static void http_stream_work(struct pool_job *pj, struct pool_worker *w)
{
	struct http_stream *st = (struct http_stream *)pj;
	char err[sizeof(st->err)] = "";
	int status = st->spec->produce(st, w, st->arg, err, sizeof(err));

	pthread_mutex_lock(&st->mu);
	if (status == 200 && st->write_failed) {
		status = 503;
		snprintf(err, sizeof(err), "out of memory buffering the reply");
	}
	st->status = status;
	memcpy(st->err, err, sizeof(err));
	pthread_mutex_unlock(&st->mu);
}

static void http_stream_done(struct pool_job *pj)
{
	struct http_stream *st = (struct http_stream *)pj;

	st->job_done = true;
	if (st->closed) {
		struct log_ctx lc = { st->request_id, NULL, NULL };

		log_req(LOG_LVL_INFO, &lc, "the stream's producer stopped after %lld bytes",
			st->produced);
	}
	http_stream_pump(st);
}

bool http_stream_write(struct http_stream *st, const void *data, size_t len)
{
	bool ok;

	pthread_mutex_lock(&st->mu);
	if (!st->gone && evbuffer_add(st->pending, data, len) != 0)
		st->write_failed = true;
	else if (!st->gone)
		st->produced += (long long)len;
	if (!st->gone && !st->write_failed && evbuffer_get_length(st->pending) >= st->piece) {
		event_active(st->wake, EV_WRITE, 0);
		while (!st->gone && evbuffer_get_length(st->pending) >= st->piece)
			pthread_cond_wait(&st->cv, &st->mu);
	}
	ok = !st->gone && !st->write_failed;
	pthread_mutex_unlock(&st->mu);
	return ok;
}

bool http_stream_start(struct http_req *hr, const struct http_stream_spec *spec, void *arg,
		       size_t buffer_bytes)
{
	struct http_stream *st = calloc(1, sizeof(*st));
	struct bufferevent *bev, *under;

	if (!st) {
		if (spec->arg_free)
			spec->arg_free(arg);
		http_reply_oom(hr);
		return false;
	}
	st->spec = spec;
	st->arg = arg;
	st->hr = hr;
	st->req = hr->req;
	snprintf(st->request_id, sizeof(st->request_id), "%s", hr->request_id);
	st->cap = buffer_bytes;
	st->piece = buffer_bytes / 4 < HTTP_STREAM_PIECE_MAX ? buffer_bytes / 4 + 1
							     : HTTP_STREAM_PIECE_MAX;
	pthread_mutex_init(&st->mu, NULL);
	pthread_cond_init(&st->cv, NULL);
	st->pending = evbuffer_new();
	st->move = evbuffer_new();
	st->wake = event_new(hr->srv->base, -1, 0, http_stream_on_wake, st);
	st->stall = evtimer_new(hr->srv->base, http_stream_on_stall, st);
	bev = evhttp_connection_get_bufferevent(hr->evcon);
	under = bufferevent_get_underlying(bev);
	st->out = bufferevent_get_output(under ? under : bev);
	st->drain_cb = st->out ? evbuffer_add_cb(st->out, http_stream_drained, st) : NULL;
	if (!st->pending || !st->move || !st->wake || !st->stall || !st->drain_cb) {
		http_stream_free(st);
		http_reply_oom(hr);
		return false;
	}
	st->job.work = http_stream_work;
	st->job.done = http_stream_done;
	if (!pool_submit(hr->pool, &st->job)) {
		http_stream_free(st);
		http_reply_saturated(hr);
		return false;
	}
	http_defer(hr);
	evhttp_connection_set_closecb(hr->evcon, http_stream_on_close, st);
	return true;
}
