/* The rate card on ingest: what we bill for each row. Gives the ingest
 * statement the SQL that picks each staged row's rule and sets its
 * rated_price_usd, rate_rule and rate_revision (see schema/0014_rate_card.sql
 * and schema/0019_rate_on_ingest.sql for the card's tables). */
#ifndef VGC_RATE_CARD_H
#define VGC_RATE_CARD_H

#include <stdbool.h>

#include "buf.h"

/* The CTE "rate_pick AS (...)": for each distinct (tenant, modality,
 * provider, model) of the staged rows that some rule matches, the single most
 * specific rule (tenant > plan > global; model > provider > modality-only;
 * ties: the rule created or changed last) and its token, from one call of
 * vgc_rate_card_picks (schema/0024_rate_pick_index.sql). */
bool rate_card_pick_sql(struct buf *out);

/* The rows for cost_rows, as a subquery named s: price_book_source_sql's
 * staged rows priced by the book, each with its rule from rate_pick, its
 * exact price before rounding (rate_raw) and its token (rate_token). */
bool rate_card_source_sql(struct buf *out);

/* True when column is one the card sets on every row (rated_price_usd,
 * rate_rule, rate_revision), overwriting the worker's. */
bool rate_card_sets(const char *column);

/* The value of such a column over rate_card_source_sql's s. */
bool rate_card_field_sql(struct buf *out, const char *column);

#endif
