/* The rate card on ingest (see rate_card.h): set-based, inside the one
 * ingest statement. The rule is picked once per distinct (tenant, modality,
 * provider, model) of the batch, not once per row, by one call of
 * vgc_rate_card_picks (schema/0024_rate_pick_index.sql), and joined back to
 * the rows by hash on those keys; the price is computed once per row. */
#include "rate_card.h"

#include <string.h>

#include "price_book.h"

/* A key (tenant, modality, provider, model) with each nullable column as
 * (value or '', is null), so that NULLs join back by hash. */
#define RATE_KEYS(t)                                                                               \
	"coalesce(" t "tenant_id, ''), " t "tenant_id IS NULL, " t "modality, coalesce(" t         \
	"provider, ''), " t "provider IS NULL, coalesce(" t "model_id, ''), " t "model_id IS NULL"

bool rate_card_pick_sql(struct buf *out)
{
	/* The rules are read in this statement's snapshot; the function's
	 * plan, kept for the connection, holds no data. */
	return buf_puts(
		out,
		"rate_pick (k1, k2, k3, k4, k5, k6, k7, rule_id, kind, markup, basis, fixed,"
		" unit, token) AS (SELECT " RATE_KEYS(
			"p.") ", p.rule_id, p.kind, p.markup, p.basis, p.fixed, p.unit, p.token"
			      " FROM (SELECT array_agg(tenant_id) AS t, array_agg(modality) AS m,"
			      " array_agg(provider) AS p, array_agg(model_id) AS mo"
			      " FROM (SELECT DISTINCT tenant_id, modality, provider, model_id"
			      " FROM vgc_stage) d) a,"
			      " vgc_rate_card_picks(a.t, a.m, a.p, a.mo) AS p (tenant_id, modality,"
			      " provider, model_id, rule_id, kind, markup, basis, fixed, unit, token))");
}

/* The billable quantity of the row in the rule's unit (STT minutes, TTS
 * characters, LLM input + output tokens, 1 per request); NULL when the unit
 * does not measure the row's modality. */
static bool rate_quantity_sql(struct buf *out)
{
	return buf_puts(out,
			"(CASE WHEN k.unit = 'request' THEN 1"
			" WHEN s.modality = 'stt' AND k.unit = 'minute' THEN s.input_units"
			" WHEN s.modality = 'stt' AND k.unit = 'second' THEN s.input_units * 60"
			" WHEN s.modality = 'tts' AND k.unit = 'char' THEN s.input_units"
			" WHEN s.modality = 'tts' AND k.unit = '1k_char' THEN s.input_units / 1000"
			" WHEN s.modality = 'llm' AND k.unit = 'token'"
			" THEN s.input_units + s.output_units"
			" WHEN s.modality = 'llm' AND k.unit = '1k_token'"
			" THEN (s.input_units + s.output_units) / 1000"
			" WHEN s.modality = 'llm' AND k.unit = '1m_token'"
			" THEN (s.input_units + s.output_units) / 1000000 END)");
}

bool rate_card_source_sql(struct buf *out)
{
	/* The price: no rule, the recorded cost (as stored: the book's when the
	 * row came without one) x the default markup; fixed x quantity;
	 * cost_plus on the book or the recorded cost. */
	buf_puts(out, "(SELECT s.*, CASE WHEN k.rule_id IS NULL THEN (");
	price_book_unpriced_sql(out, "cost_usd");
	buf_puts(out, ") * (SELECT default_markup FROM rate_card)"
		      " WHEN k.kind = 'fixed' THEN k.fixed * ");
	rate_quantity_sql(out);
	buf_puts(out, " WHEN k.basis = 'book' THEN (");
	price_book_field_sql(out, "book_cost_usd");
	buf_puts(out, ") * k.markup ELSE (");
	price_book_unpriced_sql(out, "cost_usd");
	buf_puts(out, ") * k.markup END AS rate_raw,"
		      " CASE WHEN k.rule_id IS NULL THEN"
		      " (SELECT 'default:' || trim_scale(default_markup)::text FROM rate_card)"
		      " WHEN k.kind = 'fixed' AND ");
	rate_quantity_sql(out);
	buf_puts(out, " IS NULL THEN 'unrated:unit' WHEN k.kind = 'cost_plus' AND k.basis = 'book'"
		      " AND (");
	price_book_field_sql(out, "book_cost_usd");
	buf_puts(out, ") IS NULL THEN 'unrated:no_price' ELSE k.token END AS rate_token FROM ");
	price_book_source_sql(out);
	/* rate_pick's first seven columns are its key (k1..k7). */
	return buf_puts(out, " LEFT JOIN rate_pick k ON (k.k1, k.k2, k.k3, k.k4, k.k5, k.k6, k.k7)"
			     " = (" RATE_KEYS("s.") ") OFFSET 0) s");
}

bool rate_card_sets(const char *column)
{
	return strcmp(column, "rated_price_usd") == 0 || strcmp(column, "rate_rule") == 0 ||
	       strcmp(column, "rate_revision") == 0;
}

bool rate_card_field_sql(struct buf *out, const char *column)
{
	if (strcmp(column, "rate_rule") == 0)
		return buf_puts(out, "s.rate_token");
	if (strcmp(column, "rate_revision") == 0)
		return buf_puts(out, "(SELECT revision FROM rate_card)");
	return price_money_round_sql(out, "s.rate_raw");
}
