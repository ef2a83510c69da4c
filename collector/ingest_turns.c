/* The turns format: each element of the array parsed and judged in turn (a
 * raw item with its compact JSON when it is to be stored, else a string item
 * with the reason), and the answer listing the refused ones. */
#include "ingest_turns.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ingest_json.h"
#include "row.h"

/* One turn's verdict for ingest_parse_array: a raw item holding the turn as
 * compact JSON in valid UTF-8, or a string item saying why it is refused.
 * NULL with err set (and *status) when the body must be refused whole. */
static cJSON *ingest_turn_verdict(const char *text, const struct ingest_elem *e,
				  const struct ingest_limits *lim, int *status, char *err,
				  size_t errlen)
{
	char reason[256];
	cJSON *item, *verdict;
	char *json, *clean;

	if (!ingest_json_elem_fits(e, lim->max_element_values, 0, reason, sizeof(reason)))
		return cJSON_CreateString(reason);
	item = ingest_json_parse_elem(text, e, err, errlen);
	if (!item) {
		*status = 400;
		return NULL;
	}
	if (!cJSON_IsObject(item)) {
		cJSON_Delete(item);
		return cJSON_CreateString("turn must be a JSON object");
	}
	if (e->nul) {
		cJSON_Delete(item);
		return cJSON_CreateString(INGEST_NUL_ERROR);
	}
	json = cJSON_PrintUnformatted(item);
	cJSON_Delete(item);
	clean = json && !row_utf8_valid(json, strlen(json)) ? ingest_utf8_sanitize(json) : NULL;
	verdict = json ? cJSON_CreateRaw(clean ? clean : json) : NULL;
	free(json);
	free(clean);
	return verdict;
}

int ingest_parse_turns(const char *text, size_t len, const struct ingest_limits *lim, cJSON **root,
		       char *err, size_t errlen)
{
	struct ingest_scan sc;
	int status;

	*root = NULL;
	status = ingest_json_scan(text, len, lim, &sc, err, errlen);
	if (status == 200 && !(*root = cJSON_CreateArray()))
		status = 503;
	for (size_t i = 0; i < sc.n && status == 200; i++) {
		cJSON *v = ingest_turn_verdict(text, &sc.elems[i], lim, &status, err, errlen);

		if (!v || !cJSON_AddItemToArray(*root, v)) {
			cJSON_Delete(v);
			if (status == 200) {
				snprintf(err, errlen, "out of memory decoding turns");
				status = 503;
			}
		}
	}
	free(sc.elems);
	return status;
}

int ingest_parse_array(const char *body, size_t len, bool gzip, const struct ingest_limits *lim,
		       struct buf *inflated, cJSON **root, char *err, size_t errlen)
{
	const char *text;
	size_t textlen;
	int status = ingest_inflate(body, len, gzip, lim, inflated, &text, &textlen, err, errlen);

	*root = NULL;
	if (status != 200)
		return status;
	return ingest_parse_turns(text, textlen, lim, root, err, errlen);
}

const char *ingest_turn_error(const cJSON *item, const bool *nul, int index)
{
	(void)nul;
	(void)index;
	return cJSON_IsRaw(item) ? NULL : cJSON_GetStringValue(item);
}

void ingest_turns_answer(const cJSON *root, int stored, struct buf *out)
{
	const cJSON *item;
	int total = cJSON_GetArraySize(root), i = 0, n = 0;

	buf_printf(out, "{\"accepted\":%d,\"rejected\":%d,\"errors\":[", stored, total - stored);
	cJSON_ArrayForEach(item, root)
	{
		const char *why = ingest_turn_error(item, NULL, i);

		if (why) {
			buf_printf(out, "%s{\"index\":%d,\"error\":", n++ ? "," : "", i);
			row_json_string(out, why);
			buf_putc(out, '}');
		}
		i++;
	}
	buf_puts(out, "]}");
}
