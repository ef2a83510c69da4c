/* The OTLP/HTTP trace formats (POST /v1/traces): an ExportTraceServiceRequest
 * as binary protobuf or as OTLP's JSON mapping into a batch of cost rows, one
 * per GenAI span, and the OTLP answers in either encoding. Pure: no I/O, so
 * the fuzz target links exactly this code. */
#ifndef VGC_INGEST_OTLP_H
#define VGC_INGEST_OTLP_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "ingest_batch.h"

/* The pricing_source of a row whose span carried its own USD cost, and of
 * one that had none (stored with cost_usd 0, never passed off as priced). */
#define OTLP_PRICING_SPAN "otel"
#define OTLP_PRICING_UNPRICED "unpriced"

/* ingest_decode_fn for application/x-protobuf and application/json. Spans
 * that are not GenAI spans are neither stored nor rejected; a GenAI span that
 * cannot become a valid row is a reject (its index counts every span of the
 * request, in order). */
int ingest_otlp_decode_proto(const char *text, size_t len, const struct ingest_limits *lim,
			     const struct ingest_scope *scope, double now, struct ingest_batch *out,
			     char *err, size_t errlen) __attribute__((warn_unused_result));
int ingest_otlp_decode_json(const char *text, size_t len, const struct ingest_limits *lim,
			    const struct ingest_scope *scope, double now, struct ingest_batch *out,
			    char *err, size_t errlen) __attribute__((warn_unused_result));

/* An ExportTraceServiceResponse: empty with rejected 0, else partialSuccess
 * {rejectedSpans, errorMessage}. proto picks binary protobuf over JSON. False
 * when out of memory. */
bool ingest_otlp_answer(bool proto, long long rejected, const char *message, struct buf *out);

/* A google.rpc.Status {code, message}, the body of an OTLP error answer. */
bool ingest_otlp_status(bool proto, int code, const char *message, struct buf *out);

#endif
