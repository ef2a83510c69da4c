/* The turns format (POST /v1/ingest/turns): a JSON array of objects, each
 * stored whole as jsonb. Parsing is pure (it shares the rows format's framing
 * scan, ingest_json.h) and fuzzed with it; the answer lists each refused
 * turn. */
#ifndef VGC_INGEST_TURNS_H
#define VGC_INGEST_TURNS_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "ingest_batch.h"

struct cJSON;

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

/* The answer: {"accepted", "rejected", "errors": [{"index", "error"}]} for
 * root (from ingest_parse_turns) of which stored were stored. */
void ingest_turns_answer(const struct cJSON *root, int stored, struct buf *out);

#endif
