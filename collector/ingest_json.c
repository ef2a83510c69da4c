/* Ingest body decoding: gzip -> framing scan -> each element through cJSON ->
 * rows. Every limit is checked before the memory it protects is spent:
 * inflate stops at max_inflated_bytes; the scan, which sees the real length
 * (cJSON works on C strings and would stop at a NUL), refuses raw control
 * characters and bytes after the array, splits the array into elements and
 * counts each one's values. An element over its caps is rejected unread,
 * before cJSON builds a tree for it (a tree costs ~10x its text), and only one
 * element's tree exists at a time. */
#include "ingest_json.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool ingest_ws(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* "body is not valid JSON: ..." naming byte off, its line and column; in_string
 * says a raw control character there is inside a string. */
static void ingest_bad_at(const char *s, size_t len, size_t off, bool in_string, const char *after,
			  char *err, size_t errlen)
{
	size_t line = 1, col = 1;
	unsigned char c;
	char what[16];

	if (off >= len) {
		snprintf(err, errlen, "body is not valid JSON: truncated after %zu bytes", len);
		return;
	}
	for (size_t i = 0; i < off; i++) {
		if (s[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
	}
	c = (unsigned char)s[off];
	if (c >= 0x20 && c < 0x7f)
		snprintf(what, sizeof(what), "'%c'", c);
	else
		snprintf(what, sizeof(what), "byte 0x%02x", c);
	if (in_string)
		snprintf(err, errlen,
			 "body is not valid JSON: raw control character 0x%02x inside a string at "
			 "byte %zu (line %zu, column %zu); JSON requires the escape \\u%04x",
			 c, off, line, col, c);
	else
		snprintf(
			err, errlen,
			"body is not valid JSON: unexpected %s at byte %zu (line %zu, column %zu)%s",
			what, off, line, col, after);
}

static bool ingest_scan_push(struct ingest_scan *sc, const struct ingest_elem *e, size_t max)
{
	if (sc->n < max) {
		if (sc->n == sc->cap) {
			size_t cap = sc->cap ? sc->cap * 2 : 64;
			struct ingest_elem *p;

			if (cap > max)
				cap = max;
			p = realloc(sc->elems, cap * sizeof(*p));
			if (!p)
				return false;
			sc->elems = p;
			sc->cap = cap;
		}
		sc->elems[sc->n] = *e;
	}
	sc->n++;
	return true;
}

/* Checks the array's framing over the real length of s and splits it into
 * elements (their own syntax is cJSON's to check). Returns 200, 400 (err says
 * what and where), 413 (more than max elements) or 503 (out of memory). */
static int ingest_scan(const char *s, size_t len, size_t max, struct ingest_scan *sc, char *err,
		       size_t errlen)
{
	struct ingest_elem cur = { 0, 0, 0, false };
	size_t i = 0, depth = 1, end = 0;
	bool in_str = false, in_word = false, open = false;

	while (i < len && ingest_ws((unsigned char)s[i]))
		i++;
	if (i == len || s[i] != '[') {
		snprintf(err, errlen, "body must be a JSON array of rows");
		return 400;
	}
	for (i++; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (in_str) {
			if (c < 0x20) {
				ingest_bad_at(s, len, i, true, "", err, errlen);
				return 400;
			}
			if (c == '"') {
				in_str = false;
				end = i + 1;
			} else if (c == '\\') {
				if (i + 1 < len && (unsigned char)s[i + 1] < 0x20) {
					ingest_bad_at(s, len, i + 1, true, "", err, errlen);
					return 400;
				}
				if (i + 5 < len && memcmp(s + i + 1, "u0000", 5) == 0)
					cur.nul = true;
				i++;
			}
			continue;
		}
		if (ingest_ws(c)) {
			in_word = false;
			continue;
		}
		if (c < 0x20 || (depth == 1 && c == '}')) {
			ingest_bad_at(s, len, i, false, "", err, errlen);
			return 400;
		}
		if (depth == 1 && (c == ',' || c == ']')) {
			if (!open) {
				/* "[,", ",," or ",]"; "[]" is the empty array. */
				if (c == ',' || sc->n > 0) {
					ingest_bad_at(s, len, i, false, "", err, errlen);
					return 400;
				}
				depth = 0;
				break;
			}
			cur.len = end - cur.off;
			if (!ingest_scan_push(sc, &cur, max)) {
				snprintf(err, errlen, "out of memory decoding the batch");
				return 503;
			}
			open = in_word = false;
			if (c == ']') {
				depth = 0;
				break;
			}
			continue;
		}
		if (!open) {
			memset(&cur, 0, sizeof(cur));
			cur.off = i;
			open = true;
		}
		end = i + 1;
		switch (c) {
		case '"':
			in_str = true;
			cur.values++;
			in_word = false;
			break;
		case '[':
		case '{':
			depth++;
			cur.values++;
			in_word = false;
			break;
		case ']':
		case '}':
			depth--;
			in_word = false;
			break;
		case ',':
		case ':': in_word = false; break;
		default:
			if (!in_word)
				cur.values++;
			in_word = true;
			break;
		}
	}
	if (depth) {
		ingest_bad_at(s, len, len, false, "", err, errlen);
		return 400;
	}
	for (i++; i < len && ingest_ws((unsigned char)s[i]); i++)
		;
	if (i < len) {
		ingest_bad_at(s, len, i, false, " after the array's closing ']'", err, errlen);
		return 400;
	}
	if (sc->n > max) {
		snprintf(err, errlen, "batch has %zu rows, more than max_batch_rows (%zu)", sc->n,
			 max);
		return 413;
	}
	return 200;
}

int ingest_json_scan(const char *text, size_t len, const struct ingest_limits *lim,
		     struct ingest_scan *sc, char *err, size_t errlen)
{
	memset(sc, 0, sizeof(*sc));
	return ingest_scan(text, len, (size_t)lim->max_batch_rows, sc, err, errlen);
}

cJSON *ingest_json_parse_elem(const char *text, const struct ingest_elem *e, char *err,
			      size_t errlen)
{
	const char *end = NULL;
	cJSON *item = cJSON_ParseWithLengthOpts(text + e->off, e->len, &end, 0);

	if (item && end == text + e->off + e->len)
		return item;
	if (item) /* a value, then more: point at the more */
		while (ingest_ws((unsigned char)*end))
			end++;
	cJSON_Delete(item);
	/* The byte after the element (',' or ']') is there to read. */
	ingest_bad_at(text, e->off + e->len + 1, end ? (size_t)(end - text) : e->off, false, "",
		      err, errlen);
	return NULL;
}

/* The most JSON text a cost row within lim can take: every character of every
 * string escaped as a UTF-16 surrogate pair (12 bytes), the metadata escaped
 * byte by byte (6), and 64 KiB for field names, numbers and white space. */
static size_t ingest_row_max_bytes(const struct row_limits *l)
{
	size_t chars = ROW_ID_MAX_CHARS + ROW_TENANT_MAX_CHARS + ROW_PROJECT_MAX_CHARS +
		       9 * l->max_string_chars + l->max_error_message_chars;

	return 12 * chars + 6 * l->max_metadata_bytes + 65536;
}

bool ingest_json_elem_fits(const struct ingest_elem *e, size_t max_values, size_t max_bytes,
			   char *reason, size_t n)
{
	if (e->values > max_values) {
		snprintf(reason, n,
			 "element holds %zu JSON values (keys included), more than "
			 "max_element_values (%zu): rejected unread",
			 e->values, max_values);
		return false;
	}
	if (max_bytes && e->len > max_bytes) {
		snprintf(reason, n,
			 "element is %zu bytes of JSON, more than a cost row within the configured "
			 "limits can take (%zu): rejected unread",
			 e->len, max_bytes);
		return false;
	}
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

/* Decodes element i (e) into the batch: a row kept, a duplicate counted or a
 * reject recorded. Returns 200, or 400/503 for the whole body. */
static int ingest_decode_elem(struct ingest_batch *out, const char *text,
			      const struct ingest_elem *e, int i, const struct ingest_limits *lim,
			      const struct ingest_scope *scope, double now, char *err,
			      size_t errlen)
{
	struct row *r = &out->rows[out->nrows];
	size_t len[ROW_NSTRINGS];
	char *meta = NULL, reason[512];
	cJSON *item = NULL;
	bool ok = ingest_json_elem_fits(e, lim->max_element_values, ingest_row_max_bytes(&lim->row),
					reason, sizeof(reason));
	int status = 200;

	if (ok) {
		item = ingest_json_parse_elem(text, e, err, errlen);
		if (!item)
			return 400;
		if (e->nul) {
			snprintf(reason, sizeof(reason), "%s", INGEST_NUL_ERROR);
			ok = false;
		}
	}
	if (ok)
		ok = row_from_json(item, r, &meta, reason, sizeof(reason));
	if (ok)
		ok = ingest_apply_scope(r, item, scope, reason, sizeof(reason));
	if (ok)
		ok = row_validate_measure(r, &lim->row, now, len, reason, sizeof(reason));
	if (!ok) {
		if (!ingest_batch_reject(out, i, text + e->off, e->len, reason,
					 lim->max_reject_raw_bytes)) {
			snprintf(err, errlen, "out of memory recording rejects");
			status = 503;
		}
	} else if (!ingest_batch_keep(out, r, len, i)) {
		snprintf(err, errlen, "out of memory decoding the batch");
		status = 503;
	}
	free(meta);
	cJSON_Delete(item);
	return status;
}

int ingest_json_decode(const char *text, size_t len, const struct ingest_limits *lim,
		       const struct ingest_scope *scope, double now, struct ingest_batch *out,
		       char *err, size_t errlen)
{
	struct ingest_scan sc;
	int status, n;

	status = ingest_json_scan(text, len, lim, &sc, err, errlen);
	if (status != 200 || sc.n == 0)
		goto done;
	n = out->total = (int)sc.n;
	if (!ingest_batch_alloc(out, n)) {
		snprintf(err, errlen, "out of memory decoding %d rows", n);
		status = 503;
		goto done;
	}
	for (int i = 0; i < n && status == 200; i++)
		status = ingest_decode_elem(out, text, &sc.elems[i], i, lim, scope, now, err,
					    errlen);
done:
	free(sc.elems);
	return status;
}

int ingest_decode(const char *body, size_t len, bool gzip, const struct ingest_limits *lim,
		  const struct ingest_scope *scope, double now, struct ingest_batch *out, char *err,
		  size_t errlen)
{
	const char *text;
	size_t textlen;
	int status;

	memset(out, 0, sizeof(*out));
	buf_init(&out->inflated, lim->max_inflated_bytes);
	status = ingest_inflate(body, len, gzip, lim, &out->inflated, &text, &textlen, err, errlen);
	if (status != 200)
		return status;
	return ingest_json_decode(text, textlen, lim, scope, now, out, err, errlen);
}
