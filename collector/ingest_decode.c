/* Ingest body decoding: gzip -> JSON array -> rows. Every limit is checked
 * before the memory it protects is spent: inflate stops at max_inflated_bytes,
 * and a pre-scan counts array elements and JSON values before cJSON builds a
 * tree (a tree costs ~10x the text, so it must be bounded too). */
#include "ingest_decode.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gz.h"

/* Values per row we accept on average before calling a body abusive: a full
 * wire row has ~25 fields, metadata adds some. */
#define INGEST_VALUES_PER_ROW 256

/* True when s[i] (a backslash inside a string) starts the escape \u0000. */
static bool ingest_is_nul_escape(const char *s, size_t len, size_t i)
{
	return i + 5 < len && memcmp(s + i + 1, "u0000", 5) == 0;
}

/* Counts top-level array elements and all JSON values without building a tree,
 * and notes whether any string holds the escape \u0000 (cJSON would cut the
 * string at that NUL, and PostgreSQL cannot store one). With mark (nmark
 * flags), also flags the elements that hold it. Returns false only when the
 * text is plainly not an array. */
static bool ingest_prescan(const char *s, size_t len, size_t *elements, size_t *values,
			   bool *unclosed, bool *nul, bool *mark, size_t nmark)
{
	size_t i = 0, depth = 0, elems = 0, vals = 0;
	bool in_str = false, any = false;

	*nul = false;
	while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
		i++;
	if (i == len || s[i] != '[')
		return false;
	for (; i < len; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\') {
				if (ingest_is_nul_escape(s, len, i)) {
					*nul = true;
					if (mark && depth >= 1 && elems < nmark)
						mark[elems] = true;
				}
				i++;
			} else if (c == '"') {
				in_str = false;
			}
			continue;
		}
		switch (c) {
		case '"':
			in_str = true;
			if (depth == 1)
				any = true;
			break;
		case '[':
		case '{':
			depth++;
			vals++;
			if (depth == 2)
				any = true;
			break;
		case ']':
		case '}':
			if (depth)
				depth--;
			break;
		case ',':
			vals++;
			if (depth == 1)
				elems++;
			break;
		case ' ':
		case '\t':
		case '\n':
		case '\r': break;
		default:
			if (depth == 1)
				any = true;
			break;
		}
	}
	*elements = any ? elems + 1 : 0;
	*values = vals;
	*unclosed = in_str || depth > 0;
	return true;
}

/* Describes a JSON parse failure at offset off: line, column, and whether the
 * text simply ended (a truncated upload). */
static void ingest_json_error(const char *s, size_t len, size_t off, char *err, size_t errlen)
{
	size_t line = 1, col = 1;

	for (size_t i = 0; i < off && i < len; i++) {
		if (s[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	if (off >= len)
		snprintf(err, errlen, "body is not valid JSON: truncated after %zu bytes", len);
	else
		snprintf(
			err, errlen,
			"body is not valid JSON: unexpected '%c' at byte %zu (line %zu, column %zu)",
			(s[off] >= 0x20 && s[off] < 0x7f) ? s[off] : '?', off, line, col);
}

int ingest_parse_array(const char *body, size_t len, bool gzip, const struct ingest_limits *lim,
		       struct buf *inflated, cJSON **root, bool **nul, char *err, size_t errlen)
{
	const char *text = body, *end = NULL;
	size_t text_len = len, elems = 0, values = 0;
	bool unclosed = false, any_nul = false;

	*root = NULL;
	*nul = NULL;
	if (gzip) {
		switch (gz_inflate(body, len, lim->max_inflated_bytes, inflated, err, errlen)) {
		case GZ_OK: break;
		case GZ_TOO_BIG: return 413;
		case GZ_BAD: return 400;
		}
		text = inflated->data;
		text_len = inflated->len;
	} else if (len > lim->max_inflated_bytes) {
		snprintf(err, errlen, "body is larger than max_inflated_bytes (%zu)",
			 lim->max_inflated_bytes);
		return 413;
	}
	if (!text ||
	    !ingest_prescan(text, text_len, &elems, &values, &unclosed, &any_nul, NULL, 0)) {
		snprintf(err, errlen, "body must be a JSON array of rows");
		return 400;
	}
	if (elems > (size_t)lim->max_batch_rows) {
		snprintf(err, errlen, "batch has %zu rows, more than max_batch_rows (%d)", elems,
			 lim->max_batch_rows);
		return 413;
	}
	if (values > (size_t)lim->max_batch_rows * INGEST_VALUES_PER_ROW) {
		snprintf(err, errlen, "batch has %zu JSON values, more than %d per allowed row",
			 values, INGEST_VALUES_PER_ROW);
		return 413;
	}
	*root = cJSON_ParseWithLengthOpts(text, text_len, &end, 0);
	if (!*root) {
		size_t off = end && !unclosed ? (size_t)(end - text) : text_len;
		ingest_json_error(text, text_len, off, err, errlen);
		return 400;
	}
	if (end) {
		while ((size_t)(end - text) < text_len &&
		       (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
			end++;
		if ((size_t)(end - text) < text_len && *end) {
			ingest_json_error(text, text_len, (size_t)(end - text), err, errlen);
			return 400;
		}
	}
	if (!cJSON_IsArray(*root)) {
		snprintf(err, errlen, "body must be a JSON array of rows");
		return 400;
	}
	/* Rare: a second pass says which elements hold \u0000. */
	if (any_nul) {
		*nul = calloc(elems ? elems : 1, sizeof(**nul));
		if (!*nul) {
			snprintf(err, errlen, "out of memory decoding the batch");
			return 503;
		}
		ingest_prescan(text, text_len, &elems, &values, &unclosed, &any_nul, *nul, elems);
	}
	return 200;
}

const char *ingest_turn_error(const cJSON *item, const bool *nul, int index)
{
	if (!cJSON_IsObject(item))
		return "turn must be a JSON object";
	if (nul && nul[index])
		return INGEST_NUL_ERROR;
	return NULL;
}

char *ingest_utf8_sanitize(const char *s)
{
	size_t len = strlen(s);
	char *out = malloc(len * 3 + 1), *o = out;
	const char *p = s;

	if (!out)
		return NULL;
	while (*p) {
		size_t n = 1;
		unsigned char c = (unsigned char)*p;
		if (c >= 0x80)
			n = (c & 0xE0) == 0xC0	 ? 2
			    : (c & 0xF0) == 0xE0 ? 3
			    : (c & 0xF8) == 0xF0 ? 4
						 : 0;
		if (n && strnlen(p, n) == n && row_utf8_valid(p, n)) {
			memcpy(o, p, n);
			o += n;
			p += n;
		} else {
			memcpy(o, "\xEF\xBF\xBD", 3);
			o += 3;
			p++;
		}
	}
	*o = '\0';
	return out;
}

static bool ingest_add_reject(struct ingest_batch *b, int index, const cJSON *item,
			      const char *reason)
{
	char *raw = cJSON_PrintUnformatted(item);
	struct ingest_reject *r = &b->rejects[b->nrejects];

	r->index = index;
	r->reason = ingest_utf8_sanitize(reason);
	r->raw = raw ? ingest_utf8_sanitize(raw) : NULL;
	free(raw);
	if (!r->reason || !r->raw) {
		free(r->reason);
		free(r->raw);
		return false;
	}
	b->nrejects++;
	return true;
}

/* Applies the key's scope: stamps its project and tenant, or refuses a row
 * that names another. */
static bool ingest_apply_scope(struct row *r, const cJSON *item, const struct ingest_scope *scope,
			       char *err, size_t errlen)
{
	if (scope->project) {
		const cJSON *p = cJSON_GetObjectItemCaseSensitive(item, "project");
		if (p && cJSON_IsString(p) && strcmp(p->valuestring, scope->project) != 0) {
			snprintf(err, errlen,
				 "project \"%.128s\": this key may only write project \"%s\"",
				 p->valuestring, scope->project);
			return false;
		}
		r->project = scope->project;
	}
	if (scope->tenant) {
		if (r->tenant_id && strcmp(r->tenant_id, scope->tenant) != 0) {
			snprintf(err, errlen,
				 "tenant_id \"%.128s\": this key may only write tenant \"%s\"",
				 r->tenant_id, scope->tenant);
			return false;
		}
		r->tenant_id = scope->tenant;
	}
	return true;
}

/* A small open-addressing set of ids, to count repeats within one batch. */
struct idset {
	const char **slots;
	size_t cap;
};

static uint64_t ingest_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* Returns true when id was already in the set (and adds it otherwise). */
static bool idset_seen(struct idset *set, const char *id)
{
	size_t i = (size_t)ingest_hash(id) & (set->cap - 1);

	while (set->slots[i]) {
		if (strcmp(set->slots[i], id) == 0)
			return true;
		i = (i + 1) & (set->cap - 1);
	}
	set->slots[i] = id;
	return false;
}

int ingest_decode(const char *body, size_t len, bool gzip, const struct ingest_limits *lim,
		  const struct ingest_scope *scope, double now, struct ingest_batch *out, char *err,
		  size_t errlen)
{
	struct idset ids = { NULL, 0 };
	const cJSON *item;
	int status, n, i = 0;

	memset(out, 0, sizeof(*out));
	buf_init(&out->inflated, lim->max_inflated_bytes);
	status = ingest_parse_array(body, len, gzip, lim, &out->inflated, &out->root, &out->nul,
				    err, errlen);
	if (status != 200)
		return status;
	n = cJSON_GetArraySize(out->root);
	out->total = n;
	if (n > lim->max_batch_rows) {
		snprintf(err, errlen, "batch has %d rows, more than max_batch_rows (%d)", n,
			 lim->max_batch_rows);
		return 413;
	}
	if (n == 0)
		return 200;
	out->rows = calloc((size_t)n, sizeof(*out->rows));
	out->row_index = calloc((size_t)n, sizeof(*out->row_index));
	out->rejects = calloc((size_t)n, sizeof(*out->rejects));
	out->owned = calloc((size_t)n, sizeof(*out->owned));
	for (ids.cap = 16; ids.cap < (size_t)n * 2; ids.cap *= 2)
		;
	ids.slots = calloc(ids.cap, sizeof(*ids.slots));
	if (!out->rows || !out->row_index || !out->rejects || !out->owned || !ids.slots) {
		free(ids.slots);
		snprintf(err, errlen, "out of memory decoding %d rows", n);
		return 503;
	}
	cJSON_ArrayForEach(item, out->root)
	{
		struct row *r = &out->rows[out->nrows];
		char *meta = NULL, reason[512];
		bool ok = !(out->nul && out->nul[i]);

		if (!ok)
			snprintf(reason, sizeof(reason), "%s", INGEST_NUL_ERROR);
		else
			ok = row_from_json(item, r, &meta, reason, sizeof(reason));

		if (meta)
			out->owned[out->nowned++] = meta;
		if (ok)
			ok = ingest_apply_scope(r, item, scope, reason, sizeof(reason));
		if (ok)
			ok = row_validate(r, &lim->row, now, reason, sizeof(reason));
		if (!ok) {
			if (!ingest_add_reject(out, i, item, reason)) {
				free(ids.slots);
				snprintf(err, errlen, "out of memory recording rejects");
				return 503;
			}
		} else if (idset_seen(&ids, r->id)) {
			out->duplicates++;
		} else {
			out->row_index[out->nrows++] = i;
		}
		i++;
	}
	free(ids.slots);
	return 200;
}

void ingest_batch_release(struct ingest_batch *b)
{
	free(b->nul);
	for (int i = 0; i < b->nrejects; i++) {
		free(b->rejects[i].reason);
		free(b->rejects[i].raw);
	}
	for (int i = 0; i < b->nowned; i++)
		free(b->owned[i]);
	free(b->rejects);
	free(b->owned);
	free(b->rows);
	free(b->row_index);
	cJSON_Delete(b->root);
	buf_release(&b->inflated);
	memset(b, 0, sizeof(*b));
}
