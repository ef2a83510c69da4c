/* Turns an ingest request body into validated rows: gunzip (bounded), JSON,
 * then per-row validation and key scope. Pure: no I/O, so the fuzz target
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
	char *raw;    /* owned: the row as JSON text, valid UTF-8 */
};

/* A decoded batch. Owns the inflated text, the cJSON tree the rows point into,
 * printed metadata and the reject list. */
struct ingest_batch {
	struct buf inflated;
	struct cJSON *root;
	int total;	  /* elements in the array */
	struct row *rows; /* valid rows, first occurrence of each id */
	int *row_index;	  /* their index in the request */
	int nrows;
	int duplicates; /* ids repeated within this batch */
	struct ingest_reject *rejects;
	int nrejects;
	char **owned; /* metadata texts to free */
	int nowned;
	bool *nul; /* per element: holds \u0000 (NULL: none does) */
};

/* Why an element holding \u0000 is refused. */
#define INGEST_NUL_ERROR "a string holds \\u0000 (NUL), which PostgreSQL cannot store"

/* Decodes body. Returns the HTTP status to answer: 200 (the batch is filled,
 * possibly with rejects), 400 (malformed, err says what and where) or 413
 * (over a limit, err names it). Release the batch in every case. */
int ingest_decode(const char *body, size_t len, bool gzip, const struct ingest_limits *lim,
		  const struct ingest_scope *scope, double now, struct ingest_batch *out, char *err,
		  size_t errlen) __attribute__((warn_unused_result));
void ingest_batch_release(struct ingest_batch *b);

/* Parses a body that must be a JSON array (gunzipping first when asked).
 * Shared by the turns endpoint. Same return convention as ingest_decode.
 * *nul (caller frees) flags the elements holding \u0000, or is NULL when none
 * does. */
int ingest_parse_array(const char *body, size_t len, bool gzip, const struct ingest_limits *lim,
		       struct buf *inflated, struct cJSON **root, bool **nul, char *err,
		       size_t errlen) __attribute__((warn_unused_result));

/* Why element index of a turns array is refused, or NULL to store it; nul is
 * ingest_parse_array's. */
const char *ingest_turn_error(const struct cJSON *item, const bool *nul, int index);

/* Copies s into a new string with invalid UTF-8 bytes replaced by U+FFFD. */
char *ingest_utf8_sanitize(const char *s);

#endif
