/* The cost row: the one model, validator and JSON codec shared by the collector
 * and libvgsink, so the two sides of the wire cannot drift apart. */
#ifndef VG_ROW_H
#define VG_ROW_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"
#include "row_fields.h"

struct cJSON;

enum row_modality { ROW_STT = 0, ROW_LLM, ROW_TTS };
enum row_status { ROW_SUCCESS = 0, ROW_ERROR, ROW_FALLBACK };

/* One cost row. Strings are borrowed: they point into storage owned by whoever
 * filled the row (a cJSON tree in the collector, the sink's copy in libvgsink).
 * NULL means JSON null / absent. */
struct row {
	const char *id;
	double timestamp; /* epoch seconds */
	enum row_modality modality;
	const char *model_id, *provider, *project; /* project is never NULL once decoded */
	double input_units, output_units, cached_input_units;
	double cost_usd, rated_price_usd;
	const char *pricing_source, *rate_rule;
	double ttfb_ms, total_latency_ms; /* NaN = null */
	enum row_status status;
	const char *fallback_from, *error_message;
	const char *metadata_json; /* compact JSON object text, or NULL */
	const char *session_id, *agent_id, *tenant_id, *revision;
	long long turn_index; /* < 0 = null */
};

/* Limits on a row. The 128-character id and tenant caps are part of the wire
 * contract; the others are configurable in the collector. */
struct row_limits {
	size_t max_string_chars;	/* model_id, provider, session_id, ... */
	size_t max_error_message_chars; /* error_message */
	size_t max_metadata_bytes;	/* metadata, as compact JSON */
	double max_row_age_s;		/* older rows are rejected; 0 = no check */
	double max_clock_skew_s;	/* rows further in the future are rejected; 0 = no check */
	/* The rollup key's strings, in UTF-8 bytes: the unique index on
	 * cost_rollup_hourly holds them all in one btree entry, and an entry
	 * over ROW_ROLLUP_KEY_MAX_BYTES fails the insert. See row_key_bytes_fit. */
	size_t max_project_bytes, max_agent_id_bytes, max_provider_bytes, max_model_id_bytes;
};

/* The most bytes one btree entry may take (PostgreSQL's limit for 8 kB
 * pages), and what the rollup key's other parts can take at most: the index
 * tuple header and null bitmap (16), the hour (8), the alignment and length
 * headers of its six text columns (6 * 7), a 128-byte tenant_id, the modality
 * (3), and the final alignment (7). */
#define ROW_ROLLUP_KEY_MAX_BYTES 2704
#define ROW_ROLLUP_KEY_FIXED_BYTES (16 + 8 + 6 * 7 + 128 + 3 + 7)

#define ROW_ID_MAX_CHARS 128
#define ROW_TENANT_MAX_CHARS 128
#define ROW_PROJECT_MAX_CHARS 128

void row_limits_default(struct row_limits *lim);
/* True when the four byte limits plus the key's fixed parts fit one btree
 * entry; *total gets that sum. */
bool row_key_bytes_fit(const struct row_limits *lim, size_t *total);
void row_init(struct row *r);

const char *row_modality_name(enum row_modality m);
const char *row_status_name(enum row_status s);
bool row_modality_parse(const char *s, enum row_modality *out);
bool row_status_parse(const char *s, enum row_status *out);

/* Fills r from one JSON object of the ingest array. Strings stay owned by obj;
 * metadata is printed into *metadata_owned (caller frees; NULL when absent).
 * Unknown fields are ignored; a key the object holds twice refuses it
 * ("duplicate key \"cost_usd\""), while inside metadata the last of a repeated
 * key wins, as in jsonb (metadata.tenant included). Returns false with a
 * message naming the field. */
bool row_from_json(const struct cJSON *obj, struct row *r, char **metadata_owned, char *err,
		   size_t errlen) __attribute__((warn_unused_result));

/* Checks every rule of the wire contract. now is epoch seconds. */
bool row_validate(const struct row *r, const struct row_limits *lim, double now, char *err,
		  size_t errlen) __attribute__((warn_unused_result));

/* The string fields (TEXT and JSON kinds), in row_fields order; points f[i]
 * at each member of r. */
void row_string_fields(struct row *r, const char **f[ROW_NSTRINGS]);

/* row_validate that also gives each string's strlen (0 for NULL) in that
 * order, so a caller copying the row need not measure it again. */
bool row_validate_measure(const struct row *r, const struct row_limits *lim, double now,
			  size_t len[ROW_NSTRINGS], char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* row_validate's checks one field at a time, for a caller that walks the
 * field table itself (libvgsink's record call): a string field's value s
 * (len gets its strlen), or a TIME, AMOUNT or MEASURE field's value v. */
bool row_check_string_field(const struct row_field *f, const char *s, size_t *len,
			    const struct row_limits *lim, char *err, size_t errlen)
	__attribute__((warn_unused_result));
bool row_check_number_field(const struct row_field *f, double v, const struct row_limits *lim,
			    double now, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* True when s is 1-128 chars of letters, digits, '-' and '_'. */
bool row_tenant_valid(const char *s);

/* True when s (len bytes) is valid UTF-8 with no NUL. */
bool row_utf8_valid(const char *s, size_t len);

/* Appends r as one JSON object with every wire field (nulls included), in
 * row_fields order: the form VoiceGateway's Python sink sends. */
bool row_to_json(const struct row *r, struct buf *out);

/* Appends s as a JSON string literal (with quotes). */
bool row_json_string(struct buf *out, const char *s);

#endif
