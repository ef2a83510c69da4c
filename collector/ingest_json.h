/* The JSON formats: an ingest request body into validated rows: a scan
 * that checks the array's framing and splits it into elements, then cJSON and
 * per-row validation one element at a time. Pure: no I/O, so the fuzz target
 * links exactly this code. */
#ifndef VGC_INGEST_JSON_H
#define VGC_INGEST_JSON_H

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

/* ---- the framing scan, shared with the turns format (ingest_turns.c) ---- */

/* One element of the top-level array, as the scan found it. */
struct ingest_elem {
	size_t off, len; /* its text, without the white space around it */
	size_t values;	 /* JSON values in it, object keys included */
	bool nul;	 /* a string in it holds the escape \u0000 */
};

/* The scan's result: the array's elements in order (n counts them all; only
 * the first max_batch_rows are kept). */
struct ingest_scan {
	struct ingest_elem *elems; /* owned */
	size_t n, cap;
};

/* Scans the (inflated) text: checks the array's framing and splits it into
 * elements (sc->elems, caller frees). 200, 400 (err names the byte) or 413. */
int ingest_json_scan(const char *text, size_t len, const struct ingest_limits *lim,
		     struct ingest_scan *sc, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Parses element e of text with cJSON; NULL (err set, answer 400) when its
 * text is not exactly one JSON value. */
struct cJSON *ingest_json_parse_elem(const char *text, const struct ingest_elem *e, char *err,
				     size_t errlen);

/* False (reason set) when element e is over a cap (max_bytes 0: no byte cap),
 * so it is rejected unread. */
bool ingest_json_elem_fits(const struct ingest_elem *e, size_t max_values, size_t max_bytes,
			   char *reason, size_t n);

#endif
