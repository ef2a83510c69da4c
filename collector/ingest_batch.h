/* The batch model every ingest format decodes into: the limits a decoder
 * honours, the sending key's scope, and the batch of validated rows and
 * rejects that ingest_store commits. Format-neutral: the JSON rows decoder
 * (ingest_json.c) and the OTLP trace decoder (ingest_otlp.c) both fill it. */
#ifndef VGC_INGEST_BATCH_H
#define VGC_INGEST_BATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "row.h"

struct ingest_limits {
	size_t max_inflated_bytes;
	size_t max_decoded_bytes; /* a decoder's own tree or messages (OTLP) */
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

/* A decoded batch. Only the valid rows' strings are kept (one block per row,
 * in owned), so memory does not depend on the shape of the request. */
struct ingest_batch {
	struct buf inflated;
	int total;	  /* elements (rows, spans) in the request */
	struct row *rows; /* valid rows, first occurrence of each id */
	int *row_index;	  /* their index in the request */
	int nrows;
	int duplicates; /* ids repeated within this batch */
	struct ingest_reject *rejects;
	int nrejects;
	char **owned; /* the rows' string blocks, to free */
	int nowned;
	int cap;	  /* rows, rejects and owned each have room for cap entries */
	const char **ids; /* the kept rows' ids: open addressing, 2 * cap or more slots */
	size_t ids_cap;
};

/* A format's decoder: turns the (already inflated) request text into a batch.
 * Returns the HTTP status to answer: 200 (the batch is filled, possibly with
 * rejects), 400 (malformed, err says what and where), 413 (over a limit, err
 * names it) or 503 (out of memory). Pure: no I/O. The caller releases the
 * batch in every case. */
typedef int (*ingest_decode_fn)(const char *text, size_t len, const struct ingest_limits *lim,
				const struct ingest_scope *scope, double now,
				struct ingest_batch *out, char *err, size_t errlen);

/* Inflates body into *inflated when gzip (bounded by max_inflated_bytes),
 * else checks its size against that cap; *text and *textlen get the text to
 * decode. Returns 200, 400 (bad gzip) or 413. */
int ingest_inflate(const char *body, size_t len, bool gzip, const struct ingest_limits *lim,
		   struct buf *inflated, const char **text, size_t *textlen, char *err,
		   size_t errlen) __attribute__((warn_unused_result));

/* Makes room for n rows and rejects. False when out of memory. */
bool ingest_batch_alloc(struct ingest_batch *b, int n) __attribute__((warn_unused_result));

/* Records element index as rejected for reason, keeping raw[0..rawlen) cut to
 * cap bytes. False when out of memory. */
bool ingest_batch_reject(struct ingest_batch *b, int index, const char *raw, size_t rawlen,
			 const char *reason, size_t cap) __attribute__((warn_unused_result));

/* Keeps row r (element index) unless its id was already kept in this batch
 * (then counts a duplicate): copies its strings (len from
 * row_validate_measure) into one block the batch owns. False when out of
 * memory. */
bool ingest_batch_keep(struct ingest_batch *b, struct row *r, const size_t len[ROW_NSTRINGS],
		       int index) __attribute__((warn_unused_result));

void ingest_batch_release(struct ingest_batch *b);

/* Copies s into a new string with invalid UTF-8 bytes replaced by U+FFFD. */
char *ingest_utf8_sanitize(const char *s);

#endif
