/* The JSON formats: an ingest request body into validated rows: a scan
 * that checks the array's framing and splits it into elements, then cJSON and
 * per-row validation one element at a time. Pure: no I/O, so the fuzz target
 * links exactly this code. */
#ifndef VGC_INGEST_DECODE_H
#define VGC_INGEST_DECODE_H

#include <stdbool.h>
#include <stddef.h>

#include "ingest_batch.h"

struct cJSON;

/* Why an element holding \u0000 is refused. */
#define INGEST_NUL_ERROR "a string holds \\u0000 (NUL), which PostgreSQL cannot store"

/* The rows format (POST /v1/ingest): text is a JSON array of row objects,
 * already inflated. An ingest_decode_fn. */
int ingest_json_decode(const char *text, size_t len, const struct ingest_limits *lim,
		       const struct ingest_scope *scope, double now, struct ingest_batch *out,
		       char *err, size_t errlen) __attribute__((warn_unused_result));

/* ingest_inflate then ingest_json_decode, for callers holding the body as
 * sent. Returns the HTTP status to answer: 200 (the batch is filled,
 * possibly with rejects), 400 (malformed, err says what and where), 413 (over
 * a limit, err names it) or 503 (out of memory). Release the batch in every
 * case. */
int ingest_decode(const char *body, size_t len, bool gzip, const struct ingest_limits *lim,
		  const struct ingest_scope *scope, double now, struct ingest_batch *out, char *err,
		  size_t errlen) __attribute__((warn_unused_result));

/* Decodes a turns body: a JSON array of objects (gunzipped first when asked),
 * with the same framing rules and status convention as ingest_decode. *root
 * (caller frees with cJSON_Delete) gets one item per element, parsed and freed
 * in turn: a raw item holding the element as compact JSON in valid UTF-8 when
 * it is to be stored, otherwise a string item saying why not. */
int ingest_parse_array(const char *body, size_t len, bool gzip, const struct ingest_limits *lim,
		       struct buf *inflated, struct cJSON **root, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* ingest_parse_array on text already inflated. */
int ingest_parse_turns(const char *text, size_t len, const struct ingest_limits *lim,
		       struct cJSON **root, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Why a turn is refused, or NULL to store it. item is from ingest_parse_array's
 * root, which holds every verdict: nul and index are unused (pass NULL, i). */
const char *ingest_turn_error(const struct cJSON *item, const bool *nul, int index);

#endif
