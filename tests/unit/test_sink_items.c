/* libvgsink's packed rows (sink_items.c): every field comes back as it went
 * in, repeated strings are stored once per chunk, ids stay exact. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sink_int.h"
#include "unit.h"

static void items_lengths(struct row *r, size_t len[ROW_NSTRINGS])
{
	const char **f[ROW_NSTRINGS];

	row_string_fields(r, f);
	for (int i = 0; i < ROW_NSTRINGS; i++)
		len[i] = *f[i] ? strlen(*f[i]) : 0;
}

static void items_full_row(struct row *r, const char *id, const char *metadata)
{
	row_init(r);
	r->id = id;
	r->timestamp = 1764633600.123456;
	r->modality = ROW_TTS;
	r->model_id = "cartesia/sonic";
	r->provider = "cartesia";
	r->project = "fleet";
	r->input_units = 1234.5;
	r->output_units = 7;
	r->cached_input_units = 0;
	r->cost_usd = 0.00039;
	r->rated_price_usd = 0.1 + 0.2;
	r->pricing_source = "catalog";
	r->rate_rule = "per_char";
	r->ttfb_ms = 420.5;
	r->total_latency_ms = NAN;
	r->status = ROW_FALLBACK;
	r->fallback_from = "elevenlabs";
	r->error_message = NULL;
	r->metadata_json = metadata;
	r->session_id = "sess-1";
	r->agent_id = "agent-7";
	r->tenant_id = "acme";
	r->revision = "r1";
	r->turn_index = 12;
}

static bool items_same_string(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

/* Every field of r equals the same field of the unpacked item. */
static bool items_round_trips(struct row *r)
{
	size_t len[ROW_NSTRINGS];
	const char **fa[ROW_NSTRINGS], **fb[ROW_NSTRINGS];
	struct sink_item *it;
	struct row back;
	char id[37];
	bool ok;

	items_lengths(r, len);
	it = sink_item_pack(r, len, NULL);
	if (!it)
		return false;
	sink_item_row(it, &back, id);
	row_string_fields(r, fa);
	row_string_fields(&back, fb);
	/* Numbers bit for bit (NaN, null, included). */
	ok = memcmp(&r->timestamp, &back.timestamp, sizeof(double)) == 0 &&
	     memcmp(&r->input_units, &back.input_units, sizeof(double)) == 0 &&
	     memcmp(&r->output_units, &back.output_units, sizeof(double)) == 0 &&
	     memcmp(&r->cached_input_units, &back.cached_input_units, sizeof(double)) == 0 &&
	     memcmp(&r->cost_usd, &back.cost_usd, sizeof(double)) == 0 &&
	     memcmp(&r->rated_price_usd, &back.rated_price_usd, sizeof(double)) == 0 &&
	     memcmp(&r->ttfb_ms, &back.ttfb_ms, sizeof(double)) == 0 &&
	     memcmp(&r->total_latency_ms, &back.total_latency_ms, sizeof(double)) == 0 &&
	     r->modality == back.modality && r->status == back.status &&
	     r->turn_index == back.turn_index;
	for (int i = 0; i < ROW_NSTRINGS; i++)
		ok = ok && items_same_string(*fa[i], *fb[i]);
	sink_item_free(it);
	return ok;
}

UNIT_TEST(sink_items_pack_round_trips_every_field)
{
	struct row r;

	items_full_row(&r, "1b4e28ba-2fa1-41d2-883f-0016d3cca427", "{\"region\":\"eu\"}");
	CHECK(items_round_trips(&r));
}

UNIT_TEST(sink_items_pack_round_trips_absent_strings_and_null_numbers)
{
	struct row r;

	row_init(&r);
	r.id = "x";
	r.modality = ROW_STT;
	r.project = "default";
	r.ttfb_ms = NAN;
	r.total_latency_ms = NAN;
	r.turn_index = -1;
	CHECK(items_round_trips(&r));
}

UNIT_TEST(sink_items_keep_ids_that_are_not_canonical_uuids_as_text)
{
	struct row r;

	items_full_row(&r, "1B4E28BA-2FA1-41D2-883F-0016D3CCA427", NULL);
	CHECK(items_round_trips(&r));
	items_full_row(&r, "row-17", NULL);
	CHECK(items_round_trips(&r));
	items_full_row(&r, "1b4e28ba-2fa1-41d2-883f-0016d3cca42", NULL); /* 35 chars */
	CHECK(items_round_trips(&r));
}

UNIT_TEST(sink_items_big_rows_round_trip_outside_the_chunk)
{
	struct row r;
	size_t n = 12000;
	char *meta = malloc(n + 1);

	memcpy(meta, "{\"k\":\"", 6);
	memset(meta + 6, 'a', n - 8);
	memcpy(meta + n - 2, "\"}", 3);
	items_full_row(&r, "1b4e28ba-2fa1-41d2-883f-0016d3cca427", meta);
	CHECK(items_round_trips(&r));
	free(meta);
}

UNIT_TEST(sink_items_store_a_repeated_string_once_per_chunk)
{
	struct row a, b;
	size_t len[ROW_NSTRINGS];
	struct sink_item *x, *y, *z;
	struct row bx, by;
	char idx[37], idy[37];
	char model[32];

	items_full_row(&a, "1b4e28ba-2fa1-41d2-883f-0016d3cca427", "{\"w\":1}");
	items_lengths(&a, len);
	x = sink_item_pack(&a, len, NULL);
	/* The same values from another buffer: shared by content, not address. */
	strcpy(model, a.model_id);
	items_full_row(&b, "2b4e28ba-2fa1-41d2-883f-0016d3cca427", "{\"w\":1}");
	b.model_id = model;
	items_lengths(&b, len);
	y = sink_item_pack(&b, len, NULL);
	z = sink_item_pack(&b, len, NULL);
	CHECK(x && y && z);
	sink_item_row(x, &bx, idx);
	sink_item_row(y, &by, idy);
	/* Within one chunk (a chunk boundary between them is the only exception,
	 * and the unit tests' allocations are deterministic). */
	CHECK(x->chunk != y->chunk ||
	      (bx.model_id == by.model_id && bx.metadata_json == by.metadata_json));
	CHECK(strcmp(by.model_id, "cartesia/sonic") == 0);
	/* y repeats x: it takes less than half of what x took (x's strings
	 * and a 36-byte text id would be over 110 bytes more). */
	CHECK_MSG(x->chunk != y->chunk || y->chunk != z->chunk ||
			  (char *)z - (char *)y <= (long)(sizeof(struct sink_item) + 16 + 32),
		  "an all-repeated row took %ld bytes", (long)((char *)z - (char *)y));
	CHECK(strcmp(idy, "2b4e28ba-2fa1-41d2-883f-0016d3cca427") == 0);
	sink_item_free(x);
	sink_item_free(y);
	sink_item_free(z);
}

UNIT_TEST(sink_item_uuid_format_writes_lower_case_hex_with_dashes)
{
	const unsigned char u[16] = { 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef,
				      0xf0, 0x0d, 0xba, 0x5e, 0x00, 0x11, 0x22, 0xff };
	char out[37];

	sink_item_uuid_format(u, out);
	CHECK_MSG(strcmp(out, "01234567-89ab-cdef-f00d-ba5e001122ff") == 0, "got %s", out);
}

/* Ids the sink makes travel as 16 bytes and come back as distinct canonical
 * version 4 UUIDs; a row too big for a chunk keeps its generated id too. */
UNIT_TEST(sink_items_generated_ids_come_back_as_distinct_v4_uuids)
{
	static const unsigned char a[16] = { 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef,
					     0x8f, 0xed, 0xcb, 0xa9, 0x87, 0x65, 0x43, 0x21 };
	static const unsigned char b[16] = { 0xff, 0, 1, 2,  3,	 4,  0x45, 6,
					     0xb7, 8, 9, 10, 11, 12, 13,   14 };
	char big[8192], ida[37], idb[37], idc[37];
	struct sink_item *x, *y, *z;
	size_t len[ROW_NSTRINGS];
	struct row r, back;

	items_full_row(&r, SINK_UUID_PLACEHOLDER, NULL);
	items_lengths(&r, len);
	x = sink_item_pack(&r, len, a);
	y = sink_item_pack(&r, len, b);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	r.error_message = big; /* past ITEMS_BIG_BYTES: a malloc of its own */
	items_lengths(&r, len);
	z = sink_item_pack(&r, len, a);
	CHECK(x && y && z);
	if (!x || !y || !z)
		return;
	sink_item_row(x, &back, ida);
	CHECK_MSG(strcmp(back.id, "12345678-9abc-4def-8fed-cba987654321") == 0, "%s", back.id);
	sink_item_row(y, &back, idb);
	CHECK_MSG(strcmp(back.id, "ff000102-0304-4506-b708-090a0b0c0d0e") == 0, "%s", back.id);
	sink_item_row(z, &back, idc);
	CHECK_MSG(strcmp(back.id, "12345678-9abc-4def-8fed-cba987654321") == 0, "%s", back.id);
	CHECK(back.error_message && strlen(back.error_message) == sizeof(big) - 1);
	sink_item_free(x);
	sink_item_free(y);
	sink_item_free(z);
}
