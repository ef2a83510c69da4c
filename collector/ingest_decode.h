/* Turns an ingest request body into validated rows: gunzip (bounded), a scan
 * that checks the array's framing and splits it into elements, then cJSON and
 * per-row validation one element at a time. Pure: no I/O, so the fuzz target
 * links exactly this code. */
#ifndef VGC_INGEST_DECODE_H
#define VGC_INGEST_DECODE_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "row.h"

struct cJSON;

struct ingest_limits {
	size_t max_inflated_bytes;
	int max_batch_rows;
	size_t max_element_values;   /* JSON values (keys included) in one element */
	size_t max_reject_raw_bytes; /* a reject's stored raw text is cut past this */
	struct row_limits row;
};

/* The sending key's scope; NULL fields mean "any". */
struct ingest_scope {
	const char *project;
	const char *tenant;
};

struct ingest_reject {
	int index;
	char *reason; /* owned */
	char *raw;    /* owned: the element's text as sent, valid UTF-8, cut to
		       * max_reject_raw_bytes (then ending "…[cut: N bytes in all]") */
};

/* A decoded batch. Every element is parsed, checked and freed in turn: only
 * the valid rows' strings are kept (one block per row, in owned), so memory
 * does not depend on the shape of the JSON. */
struct ingest_batch {
	struct buf inflated;
	int total;	  /* elements in the array */
	struct row *rows; /* valid rows, first occurrence of each id */
	int *row_index;	  /* their index in the request */
	int nrows;
	int duplicates; /* ids repeated within this batch */
	struct ingest_reject *rejects;
	int nrejects;
	char **owned; /* the rows' string blocks, to free */
	int nowned;
};

/* Why an element holding \u0000 is refused. */
#define INGEST_NUL_ERROR "a string holds \\u0000 (NUL), which PostgreSQL cannot store"

/* Decodes body. Returns the HTTP status to answer: 200 (the batch is filled,
 * possibly with rejects), 400 (malformed, err says what and where), 413 (over
 * a limit, err names it) or 503 (out of memory). Release the batch in every
 * case. */
int ingest_decode(const char *body, size_t len, bool gzip, const struct ingest_limits *lim,
		  const struct ingest_scope *scope, double now, struct ingest_batch *out, char *err,
		  size_t errlen) __attribute__((warn_unused_result));
void ingest_batch_release(struct ingest_batch *b);

/* Decodes a turns body: a JSON array of objects (gunzipped first when asked),
 * with the same framing rules and status convention as ingest_decode. *root
 * (caller frees with cJSON_Delete) gets one item per element, parsed and freed
 * in turn: a raw item holding the element as compact JSON in valid UTF-8 when
 * it is to be stored, otherwise a string item saying why not. */
int ingest_parse_array(const char *body, size_t len, bool gzip, const struct ingest_limits *lim,
		       struct buf *inflated, struct cJSON **root, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Why a turn is refused, or NULL to store it. item is from ingest_parse_array's
 * root, which holds every verdict: nul and index are unused (pass NULL, i). */
const char *ingest_turn_error(const struct cJSON *item, const bool *nul, int index);

/* Copies s into a new string with invalid UTF-8 bytes replaced by U+FFFD. */
char *ingest_utf8_sanitize(const char *s);

#endif
