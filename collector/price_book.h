/* The price book: what each row cost us by our own prices. Imports
 * voice-prices feeds as revisions (parse: pure, run on a pool worker or the
 * CLI; store: one transaction), and gives ingest the SQL that prices a row. */
#ifndef VGC_PRICE_BOOK_H
#define VGC_PRICE_BOOK_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* One import being built: the canonical JSON of its feeds and their rates as
 * COPY text for price_book_rates (without the revision column). Owned;
 * release with price_import_release. */
struct price_import {
	struct buf canonical; /* "[feed,...]" without the closing ']' until stored */
	struct buf rates;     /* COPY lines: provider, model, modality, meter, ... */
	int nfeeds, nrates;
	bool closed;	    /* canonical has its ']' */
	char effective[40]; /* the import's effective_from as RFC 3339, or "" */
	char provider[64];  /* the first feed's provider, for messages */
};

void price_import_init(struct price_import *imp);
void price_import_release(struct price_import *imp);

/* Sets the import's effective date (YYYY-MM-DD or RFC 3339); false with err
 * naming it when it is neither. */
bool price_import_effective(struct price_import *imp, const char *when, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Parses one voice-prices feed (text[0..len), strict JSON) into imp. False
 * with err naming the bad field or value: not USD, an unsupported meter/unit
 * pair, a malformed amount, ... */
bool price_import_add_feed(struct price_import *imp, const char *text, size_t len, char *err,
			   size_t errlen) __attribute__((warn_unused_result));

/* Stores the import as a revision in one transaction. revision gets its id
 * (64 hex digits); *created is false when that revision was already stored
 * (then nothing changes). 200, or 503/500 like db_fault_status with err. */
int price_import_store(PGconn *conn, struct price_import *imp, char revision[65], bool *created,
		       char *err, size_t errlen) __attribute__((warn_unused_result));

/* Ingest's SQL: the staged rows (vgc_stage) each joined to the rates in
 * effect at its time, as a subquery named s with vgc_stage's columns; and
 * the value of a BOOK field of the row table (book_cost_usd or
 * book_revision) over it. The cost is computed once per row in the
 * subquery (OFFSET 0 keeps the planner from copying it into each use). */
bool price_book_source_sql(struct buf *out);
/* The numeric column (a plain column name: it is read several times) rounded
 * half-even to 12 fractional digits when it has more. PostgreSQL's round()
 * on numeric rounds halves away from zero, so the one case where the two
 * differ (exactly half, after an even 12th digit: x * 10^13 is an integer
 * = 5 mod 20) is truncated instead. */
bool price_money_round_sql(struct buf *out, const char *column);
bool price_book_field_sql(struct buf *out, const char *column);
/* cost_usd or pricing_source of a row sent without a cost: the book's cost
 * (and 'book') when it prices the row, else what was sent. */
bool price_book_unpriced_sql(struct buf *out, const char *column);

#endif
