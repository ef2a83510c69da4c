/* The cost row's field table: every field once, in wire order, with what its
 * decoder, validator, JSON and COPY encoders and SQL column need. It is the
 * only list of the row's fields in C; schema/ stays the database's source. */
#ifndef VG_ROW_FIELDS_H
#define VG_ROW_FIELDS_H

#include <stdbool.h>
#include <stddef.h>

struct buf;

/* What a field holds in struct row, and so how each codec treats it. */
enum row_kind {
	ROW_KIND_TEXT,	   /* const char *, NULL = null */
	ROW_KIND_TIME,	   /* double epoch seconds; timestamptz in SQL */
	ROW_KIND_MODALITY, /* enum row_modality; its name on the wire and in SQL */
	ROW_KIND_STATUS,   /* enum row_status; its name on the wire and in SQL */
	ROW_KIND_AMOUNT,   /* double >= 0, never null; exact decimal text (num.c) */
	ROW_KIND_MEASURE,  /* double >= 0, NaN = null */
	ROW_KIND_JSON,	   /* const char * holding a compact JSON object, NULL = null */
	ROW_KIND_COUNT,	   /* long long 0..2147483647, < 0 = null */
	/* Set by the collector in the ingest transaction (the price book's
	 * cost of the row, price_book.c; the rate card's revision that rated
	 * it, rate_card.c): not in struct row nor vgsink_row, a
	 * worker's value for it is never read, staged as null and replaced. */
	ROW_KIND_BOOK,
};

/* The length rule of a TEXT or JSON field (see row_validate). */
enum row_cap {
	ROW_CAP_NONE,	  /* not a string */
	ROW_CAP_ID,	  /* required, 1-ROW_ID_MAX_CHARS characters */
	ROW_CAP_STRING,	  /* max_string_chars */
	ROW_CAP_PROJECT,  /* not empty, ROW_PROJECT_MAX_CHARS */
	ROW_CAP_ERROR,	  /* max_error_message_chars */
	ROW_CAP_METADATA, /* max_metadata_bytes */
	ROW_CAP_TENANT,	  /* row_tenant_valid */
};

#define ROW_NO_BYTES ((size_t)-1)
#define ROW_NO_OFFSET ((size_t)-1) /* a BOOK field has no member */

struct row_field {
	const char *name;   /* the JSON key on the wire */
	const char *column; /* the column in cost_rows and the staging table */
	enum row_kind kind;
	size_t offset; /* of the member in struct row */
	enum row_cap cap;
	size_t bytes;	      /* offset of its byte limit in struct row_limits, or ROW_NO_BYTES */
	bool required;	      /* a wire row without it is refused */
	const char *absent;   /* TEXT: what an absent value decodes as, or NULL */
	const char *sql_type; /* as information_schema.columns.data_type names it */
	bool sql_not_null;    /* NOT NULL in cost_rows */
	const char *sql_default; /* cost_rows' default as information_schema shows it, or NULL */
	bool money;		 /* AMOUNT in dollars: read endpoints give it as a decimal string */
};

#define ROW_NFIELDS 27
/* The TEXT and JSON fields, the order row_string_fields gives them in. */
#define ROW_NSTRINGS 13

extern const struct row_field row_fields[ROW_NFIELDS];

/* The member at offset off of r (a struct row; libvgsink uses it on a
 * vgsink_row with sink/sink_row.c's offsets). */
#define ROW_FIELD_PTR(r, off) ((void *)((char *)(r) + (off)))
#define ROW_FIELD_CPTR(r, off) ((const void *)((const char *)(r) + (off)))

/* True for the kinds held as a string (TEXT, JSON). Inline: every codec's
 * loop over the table asks it for each field of each row. */
static inline bool row_field_is_string(const struct row_field *f)
{
	return f->kind == ROW_KIND_TEXT || f->kind == ROW_KIND_JSON;
}

/* Appends the table as a JSON array of {name, column, kind, sql_type,
 * not_null, default}: what tests/tools/row-fields prints. */
bool row_fields_json(struct buf *out);

#endif
