/* Client connection accounting and the connection cap (see conns.h). A bev
 * evhttp has freed keeps our reference, so it stays valid; evhttp's
 * bufferevent_free cleared its callbacks, which is how the sweep tells. */
#include "conns.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdlib.h>

#include "metrics.h"

#define CONNS_SWEEP_MS 100

struct conn {
	struct bufferevent *bev; /* one reference is ours */
	bool refused;
};

struct conns {
	struct event_base *base;
	struct event *sweep;
	struct conn *v;
	int n, cap;
	int open; /* tracked and not refused */
};

static void conns_release(struct conns *c, int i)
{
	if (!c->v[i].refused) {
		c->open--;
		metrics_conn_close();
	}
	bufferevent_decref(c->v[i].bev); /* the last one: closes the socket */
	c->v[i] = c->v[--c->n];
}

static void conns_sweep(evutil_socket_t fd, short what, void *arg)
{
	struct conns *c = arg;
	bufferevent_event_cb eventcb;

	(void)fd, (void)what;
	for (int i = 0; i < c->n;) {
		eventcb = NULL;
		bufferevent_getcb(c->v[i].bev, NULL, NULL, &eventcb, NULL);
		if (!eventcb)
			conns_release(c, i);
		else
			i++;
	}
	if (c->n > 0) {
		struct timeval tv = { 0, CONNS_SWEEP_MS * 1000 };
		evtimer_add(c->sweep, &tv);
	}
}

/* One loop turn after a refusal: evhttp has adopted the bev, so an EOF makes
 * it drop the connection (the sweep then releases our reference). */
static void conns_refuse(evutil_socket_t fd, short what, void *arg)
{
	struct bufferevent *bev = arg;
	bufferevent_event_cb eventcb = NULL;
	void *cbarg = NULL;

	(void)fd, (void)what;
	bufferevent_getcb(bev, NULL, NULL, &eventcb, &cbarg);
	if (eventcb)
		eventcb(bev, BEV_EVENT_EOF | BEV_EVENT_READING, cbarg);
	bufferevent_decref(bev); /* the reference conns_add took for us */
}

struct conns *conns_new(struct event_base *base)
{
	struct conns *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->base = base;
	c->sweep = evtimer_new(base, conns_sweep, c);
	if (!c->sweep) {
		free(c);
		return NULL;
	}
	return c;
}

void conns_free(struct conns *c)
{
	if (!c)
		return;
	while (c->n > 0)
		conns_release(c, c->n - 1);
	event_free(c->sweep);
	free(c->v);
	free(c);
}

bool conns_add(struct conns *c, struct bufferevent *bev, int max)
{
	static const struct timeval now = { 0, 0 };
	struct timeval tv = { 0, CONNS_SWEEP_MS * 1000 };
	bool refuse;

	conns_sweep(-1, 0, c); /* frees slots before counting */
	if (c->n == c->cap) {
		int cap = c->cap ? c->cap * 2 : 64;
		struct conn *v = realloc(c->v, (size_t)cap * sizeof(*v));
		if (!v)
			return false;
		c->v = v;
		c->cap = cap;
	}
	refuse = c->open >= max;
	if (refuse) {
		/* Evhttp sees at most one byte: never a whole request line. */
		bufferevent_setwatermark(bev, EV_READ, 0, 1);
		bufferevent_incref(bev);
		if (event_base_once(c->base, -1, EV_TIMEOUT, conns_refuse, bev, &now) != 0) {
			bufferevent_decref(bev);
			return false;
		}
		metrics_conn_refused();
	} else {
		c->open++;
		metrics_conn_open();
	}
	bufferevent_incref(bev);
	c->v[c->n].bev = bev;
	c->v[c->n].refused = refuse;
	c->n++;
	if (!evtimer_pending(c->sweep, NULL))
		evtimer_add(c->sweep, &tv);
	return true;
}

int conns_open(const struct conns *c)
{
	return c->open;
}

size_t conns_unsent(const struct conns *c)
{
	size_t n = 0;

	for (int i = 0; c && i < c->n; i++) {
		struct bufferevent *bev = c->v[i].bev, *under = bufferevent_get_underlying(bev);

		n += evbuffer_get_length(bufferevent_get_output(bev));
		if (under)
			n += evbuffer_get_length(bufferevent_get_output(under));
	}
	return n;
}
