/* Client connection accounting and the connection cap. evhttp 2.1 has no hook
 * for a connection closing, so each connection's bufferevent is tracked with an
 * extra reference and a sweep notices when evhttp has let go of it. */
#ifndef VGC_CONNS_H
#define VGC_CONNS_H

#include <stdbool.h>
#include <stddef.h>

struct bufferevent;
struct event_base;
struct conns;

struct conns *conns_new(struct event_base *base);
/* Releases every tracked bufferevent; call after evhttp_free. */
void conns_free(struct conns *c);

/* Takes a new client bufferevent (from the evhttp bevcb). Below max it is
 * counted as open; at the cap it is refused: it may read at most one byte, and
 * one loop turn later it gets an EOF, so evhttp closes it before any request
 * is dispatched and the client sees the close at once. False: out of memory
 * (the caller frees bev). */
bool conns_add(struct conns *c, struct bufferevent *bev, int max);
int conns_open(const struct conns *c);
/* Bytes of answers written but not yet sent on every tracked connection (the
 * gate's filter and the socket or TLS bufferevent under it). A drain waits
 * for 0, so the loop does not end with an answer still in a buffer. */
size_t conns_unsent(const struct conns *c);

#endif
