/* A chunked HTTP reply whose body a pool worker produces piece by piece, with
 * backpressure: the worker waits while the client's connection holds more
 * than a cap of unsent bytes, so a slow client never makes the collector
 * buffer a whole body. */
#ifndef VGC_HTTP_STREAM_H
#define VGC_HTTP_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

struct http_stream;
struct pool_worker;

/* Runs on a worker thread: writes the body with http_stream_write and returns
 * 200, or a status with err. A failure before the first byte left is answered
 * by the spec's fail; after it, the stream ends without its last chunk (the
 * client sees a cut transfer) and err is logged. */
typedef int (*http_stream_produce_fn)(struct http_stream *st, struct pool_worker *w, void *arg,
				      char *err, size_t errlen);

/* Runs on the loop when the producer failed before its first byte: answers hr
 * (an ordinary error reply). */
typedef void (*http_stream_fail_fn)(struct http_req *hr, int status, const char *err, void *arg);

struct http_stream_spec {
	const char *content_type;
	void (*headers)(struct http_req *hr, void *arg); /* more headers, set just before
							  * the first byte; may be NULL */
	http_stream_produce_fn produce;
	http_stream_fail_fn fail;
	void (*arg_free)(void *arg); /* on the loop, once the stream is over */
};

/* Queues the producer on hr->pool with arg (owned by the stream from here,
 * freed by spec->arg_free even when this fails). buffer_bytes caps the bytes
 * waiting for the client, in the connection and in the stream together.
 * False when the pool's queue is full: it has answered 503. spec must outlive
 * the stream. Loop thread. */
bool http_stream_start(struct http_req *hr, const struct http_stream_spec *spec, void *arg,
		       size_t buffer_bytes);

/* Worker thread: appends data to the body, waiting while the client has
 * buffer_bytes unsent. False once the client went away: stop producing. */
bool http_stream_write(struct http_stream *st, const void *data, size_t len)
	__attribute__((warn_unused_result));

#endif
