/* Where each field of the row table (common/row_fields.c) sits in vgsink_row,
 * the library's public struct: the sink's half of the table, kept here so
 * common/ never includes the library above it. Same order as row_fields. */
#include <stddef.h>

#include "sink_int.h"

#define S(name, member)                                                                            \
	{                                                                                          \
#name, offsetof(vgsink_row, member)                                                \
	}

const struct sink_row_field sink_row_fields[] = {
	S(id, id),
	S(timestamp, timestamp),
	S(modality, modality),
	S(model_id, model_id),
	S(provider, provider),
	S(project, project),
	S(input_units, input_units),
	S(output_units, output_units),
	S(cached_input_units, cached_input_units),
	S(cost_usd, cost_usd),
	S(rated_price_usd, rated_price_usd),
	S(pricing_source, pricing_source),
	S(rate_rule, rate_rule),
	S(ttfb_ms, ttfb_ms),
	S(total_latency_ms, total_latency_ms),
	S(status, status),
	S(fallback_from, fallback_from),
	S(error_message, error_message),
	S(metadata, metadata_json),
	S(session_id, session_id),
	S(agent_id, agent_id),
	S(tenant_id, tenant_id),
	S(revision, revision),
	S(turn_index, turn_index),
	/* The collector's own (ROW_KIND_BOOK): no member, never sent. */
	{ "book_cost_usd", ROW_NO_OFFSET },
	{ "book_revision", ROW_NO_OFFSET },
	{ "rate_revision", ROW_NO_OFFSET },
};

_Static_assert(sizeof(sink_row_fields) / sizeof(sink_row_fields[0]) == ROW_NFIELDS,
	       "sink_row_fields has one entry per row_fields entry");
