/* Batches: rows encoded once as a gzip JSON array in the ingest format (so a
 * retry resends exactly the same rows and ids), and split in halves after a
 * 413. */
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>

#include "gz.h"
#include "sink_int.h"

#define SINK_GZIP_LEVEL 5

static struct sink_batch *sink_batch_new(void)
{
	struct sink_batch *b = calloc(1, sizeof(*b));

	if (b)
		buf_init(&b->body, 0);
	return b;
}

void sink_batch_free(struct sink_batch *b)
{
	if (!b)
		return;
	buf_release(&b->body);
	free(b);
}

static bool sink_batch_gzip(struct sink_batch *b, const struct buf *json, char *err, size_t errlen)
{
	return gz_deflate(json->data, json->len, SINK_GZIP_LEVEL, &b->body, err, errlen);
}

struct sink_batch *sink_batch_from_items(struct sink_item *items, int n, char *err, size_t errlen)
{
	struct sink_batch *b = sink_batch_new();
	struct buf json;
	bool ok = b != NULL;

	buf_init(&json, 0);
	ok = ok && buf_putc(&json, '[');
	for (struct sink_item *it = items; ok && it; it = it->next) {
		struct row r;
		char id[37];

		sink_item_row(it, &r, id);
		if (it != items)
			ok = buf_putc(&json, ',');
		ok = ok && row_to_json(&r, &json);
	}
	ok = ok && buf_putc(&json, ']') && sink_batch_gzip(b, &json, err, errlen);
	buf_release(&json);
	if (!ok) {
		if (!err[0])
			snprintf(err, errlen, "out of memory forming a batch");
		sink_batch_free(b);
		return NULL;
	}
	b->nrows = n;
	b->min_seq = items ? items->seq : UINT64_MAX;
	return b;
}

/* Encodes rows [from, to) of a parsed array as a new batch. */
static struct sink_batch *sink_batch_slice(const cJSON *arr, int from, int to, uint64_t min_seq,
					   char *err, size_t errlen)
{
	struct sink_batch *b = sink_batch_new();
	struct buf json;
	bool ok = b != NULL;

	buf_init(&json, 0);
	ok = ok && buf_putc(&json, '[');
	for (int i = from; ok && i < to; i++) {
		char *one = cJSON_PrintUnformatted(cJSON_GetArrayItem(arr, i));
		ok = one && (i == from || buf_putc(&json, ',')) && buf_puts(&json, one);
		cJSON_free(one);
	}
	ok = ok && buf_putc(&json, ']') && sink_batch_gzip(b, &json, err, errlen);
	buf_release(&json);
	if (!ok) {
		sink_batch_free(b);
		return NULL;
	}
	b->nrows = to - from;
	b->min_seq = min_seq;
	return b;
}

bool sink_batch_split(const struct sink_batch *b, struct sink_batch **a, struct sink_batch **c,
		      char *err, size_t errlen)
{
	struct buf json;
	cJSON *arr;
	int n, half;

	*a = *c = NULL;
	if (b->nrows < 2)
		return false;
	buf_init(&json, 0);
	if (gz_inflate(b->body.data, b->body.len, (size_t)1 << 31, &json, err, errlen) != GZ_OK) {
		buf_release(&json);
		return false;
	}
	arr = cJSON_ParseWithLength(json.data, json.len);
	buf_release(&json);
	n = cJSON_GetArraySize(arr);
	if (!cJSON_IsArray(arr) || n < 2) {
		snprintf(err, errlen, "batch to split is not a JSON array of 2 or more rows");
		cJSON_Delete(arr);
		return false;
	}
	half = n / 2;
	*a = sink_batch_slice(arr, 0, half, b->min_seq, err, errlen);
	*c = sink_batch_slice(arr, half, n, b->min_seq, err, errlen);
	cJSON_Delete(arr);
	if (!*a || !*c) {
		sink_batch_free(*a);
		sink_batch_free(*c);
		*a = *c = NULL;
		return false;
	}
	return true;
}
