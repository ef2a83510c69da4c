/* Ingest body decoding: gzip -> framing scan -> each element through cJSON ->
 * rows. Every limit is checked before the memory it protects is spent:
 * inflate stops at max_inflated_bytes; the scan, which sees the real length
 * (cJSON works on C strings and would stop at a NUL), refuses raw control
 * characters and bytes after the array, splits the array into elements and
 * counts each one's values. An element over its caps is rejected unread,
 * before cJSON builds a tree for it (a tree costs ~10x its text), and only one
 * element's tree exists at a time. */
#include "ingest_decode.h"

#include <cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gz.h"

/* One element of the top-level array, as the scan found it. */
struct ingest_elem {
	size_t off, len; /* its text, without the white space around it */
	size_t values;	 /* JSON values in it, object keys included */
	bool nul;	 /* a string in it holds the escape \u0000 */
};

/* The scan's result: the array's elements in order (n counts them all; only
 * the first max_batch_rows are kept). */
struct ingest_scan {
	struct ingest_elem *elems; /* owned */
	size_t n, cap;
};

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

/* Inflates (when asked) and scans the body. *text points at the JSON text. */
static int ingest_prepare(const char *body, size_t len, bool gzip, const struct ingest_limits *lim,
			  struct buf *inflated, const char **text, struct ingest_scan *sc,
			  char *err, size_t errlen)
{
	memset(sc, 0, sizeof(*sc));
	*text = body;
	if (gzip) {
		switch (gz_inflate(body, len, lim->max_inflated_bytes, inflated, err, errlen)) {
		case GZ_OK: break;
		case GZ_TOO_BIG: return 413;
		case GZ_BAD: return 400;
		}
		*text = inflated->data ? inflated->data : "";
		len = inflated->len;
	} else if (len > lim->max_inflated_bytes) {
		snprintf(err, errlen, "body is larger than max_inflated_bytes (%zu)",
			 lim->max_inflated_bytes);
		return 413;
	}
	return ingest_scan(*text, len, (size_t)lim->max_batch_rows, sc, err, errlen);
}

/* Parses element e of text with cJSON; NULL (err set, answer 400) when its
 * text is not exactly one JSON value. */
static cJSON *ingest_parse_elem(const char *text, const struct ingest_elem *e, char *err,
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

/* False (reason set) when element e is over a cap, so it is rejected unread. */
static bool ingest_elem_fits(const struct ingest_elem *e, size_t max_values, size_t max_bytes,
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

/* Length of the longest valid UTF-8 sequence at p (n bytes left), or 0. */
static size_t ingest_utf8_seq(const char *p, size_t n)
{
	unsigned char c = (unsigned char)*p;
	size_t k = c < 0x80		? 1
		   : (c & 0xE0) == 0xC0 ? 2
		   : (c & 0xF0) == 0xE0 ? 3
		   : (c & 0xF8) == 0xF0 ? 4
					: 0;

	return k && k <= n && row_utf8_valid(p, k) ? k : 0;
}

/* s[0..len) with each invalid UTF-8 byte replaced by U+FFFD, in a new string. */
static char *ingest_utf8_sanitize_len(const char *s, size_t len)
{
	size_t size = 1, i, k;
	char *out, *o;

	for (i = 0; i < len; i += k ? k : 1) {
		k = ingest_utf8_seq(s + i, len - i);
		size += k ? k : 3;
	}
	out = malloc(size);
	if (!out)
		return NULL;
	for (o = out, i = 0; i < len; i += k ? k : 1) {
		k = ingest_utf8_seq(s + i, len - i);
		if (k) {
			memcpy(o, s + i, k);
			o += k;
		} else {
			memcpy(o, "\xEF\xBF\xBD", 3);
			o += 3;
		}
	}
	*o = '\0';
	return out;
}

char *ingest_utf8_sanitize(const char *s)
{
	return ingest_utf8_sanitize_len(s, strlen(s));
}

/* n moved back, by at most 3 bytes, off UTF-8 continuation bytes: a cut at
 * the result does not split a character. s[n] must be readable. */
static size_t ingest_utf8_floor(const char *s, size_t n)
{
	for (int j = 0; j < 3 && n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80; j++)
		n--;
	return n;
}

/* An element's text for ingest_rejects: valid UTF-8, at most cap bytes of it
 * cut on a character boundary, then a note of how long it was. */
static char *ingest_raw_cut(const char *s, size_t len, size_t cap)
{
	size_t take = len <= cap ? len : ingest_utf8_floor(s, cap), keep;
	char *clean = ingest_utf8_sanitize_len(s, take), *out;

	if (!clean)
		return NULL;
	keep = strlen(clean);
	if (take == len && keep <= cap)
		return clean;
	if (keep > cap) /* U+FFFD for a bad byte takes 3 */
		keep = ingest_utf8_floor(clean, cap);
	out = malloc(keep + 64);
	if (out) {
		memcpy(out, clean, keep);
		snprintf(out + keep, 64, "\xE2\x80\xA6[cut: %zu bytes in all]", len);
	}
	free(clean);
	return out;
}

static bool ingest_add_reject(struct ingest_batch *b, int index, const char *raw, size_t rawlen,
			      const char *reason, size_t cap)
{
	struct ingest_reject *r = &b->rejects[b->nrejects];

	r->index = index;
	r->reason = ingest_utf8_sanitize(reason);
	r->raw = ingest_raw_cut(raw, rawlen, cap);
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

/* Copies the row's strings (len from row_validate_measure) into one block
 * owned by the batch, so the element's cJSON tree can be freed. */
static bool ingest_keep_row(struct ingest_batch *b, struct row *r, const size_t len[ROW_NSTRINGS])
{
	const char **f[ROW_NSTRINGS];
	size_t size = 1;
	char *block, *p;

	row_string_fields(r, f);
	for (int i = 0; i < ROW_NSTRINGS; i++)
		if (*f[i])
			size += len[i] + 1;
	block = p = malloc(size);
	if (!block)
		return false;
	for (int i = 0; i < ROW_NSTRINGS; i++) {
		if (!*f[i])
			continue;
		memcpy(p, *f[i], len[i] + 1);
		*f[i] = p;
		p += len[i] + 1;
	}
	b->owned[b->nowned++] = block;
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

/* The slot holding id, or the empty one where it would go. */
static const char **idset_slot(struct idset *set, const char *id)
{
	size_t i = (size_t)ingest_hash(id) & (set->cap - 1);

	while (set->slots[i] && strcmp(set->slots[i], id) != 0)
		i = (i + 1) & (set->cap - 1);
	return &set->slots[i];
}

/* Decodes element i (e) into the batch: a row kept, a duplicate counted or a
 * reject recorded. Returns 200, or 400/503 for the whole body. */
static int ingest_decode_elem(struct ingest_batch *out, const char *text,
			      const struct ingest_elem *e, int i, const struct ingest_limits *lim,
			      const struct ingest_scope *scope, double now, struct idset *ids,
			      char *err, size_t errlen)
{
	struct row *r = &out->rows[out->nrows];
	size_t len[ROW_NSTRINGS];
	char *meta = NULL, reason[512];
	cJSON *item = NULL;
	bool ok = ingest_elem_fits(e, lim->max_element_values, ingest_row_max_bytes(&lim->row),
				   reason, sizeof(reason));
	int status = 200;

	if (ok) {
		item = ingest_parse_elem(text, e, err, errlen);
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
		if (!ingest_add_reject(out, i, text + e->off, e->len, reason,
				       lim->max_reject_raw_bytes)) {
			snprintf(err, errlen, "out of memory recording rejects");
			status = 503;
		}
	} else {
		const char **slot = idset_slot(ids, r->id);

		if (*slot) {
			out->duplicates++;
		} else if (!ingest_keep_row(out, r, len)) {
			snprintf(err, errlen, "out of memory decoding the batch");
			status = 503;
		} else {
			*slot = r->id;
			out->row_index[out->nrows++] = i;
		}
	}
	free(meta);
	cJSON_Delete(item);
	return status;
}

int ingest_decode(const char *body, size_t len, bool gzip, const struct ingest_limits *lim,
		  const struct ingest_scope *scope, double now, struct ingest_batch *out, char *err,
		  size_t errlen)
{
	struct idset ids = { NULL, 0 };
	struct ingest_scan sc;
	const char *text;
	int status, n;

	memset(out, 0, sizeof(*out));
	buf_init(&out->inflated, lim->max_inflated_bytes);
	status = ingest_prepare(body, len, gzip, lim, &out->inflated, &text, &sc, err, errlen);
	if (status != 200 || sc.n == 0)
		goto done;
	n = out->total = (int)sc.n;
	out->rows = calloc((size_t)n, sizeof(*out->rows));
	out->row_index = calloc((size_t)n, sizeof(*out->row_index));
	out->rejects = calloc((size_t)n, sizeof(*out->rejects));
	out->owned = calloc((size_t)n, sizeof(*out->owned));
	for (ids.cap = 16; ids.cap < (size_t)n * 2; ids.cap *= 2)
		;
	ids.slots = calloc(ids.cap, sizeof(*ids.slots));
	if (!out->rows || !out->row_index || !out->rejects || !out->owned || !ids.slots) {
		snprintf(err, errlen, "out of memory decoding %d rows", n);
		status = 503;
		goto done;
	}
	for (int i = 0; i < n && status == 200; i++)
		status = ingest_decode_elem(out, text, &sc.elems[i], i, lim, scope, now, &ids, err,
					    errlen);
done:
	free(ids.slots);
	free(sc.elems);
	return status;
}

void ingest_batch_release(struct ingest_batch *b)
{
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
	buf_release(&b->inflated);
	memset(b, 0, sizeof(*b));
}

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

	if (!ingest_elem_fits(e, lim->max_element_values, 0, reason, sizeof(reason)))
		return cJSON_CreateString(reason);
	item = ingest_parse_elem(text, e, err, errlen);
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

int ingest_parse_array(const char *body, size_t len, bool gzip, const struct ingest_limits *lim,
		       struct buf *inflated, cJSON **root, char *err, size_t errlen)
{
	struct ingest_scan sc;
	const char *text;
	int status;

	*root = NULL;
	status = ingest_prepare(body, len, gzip, lim, inflated, &text, &sc, err, errlen);
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

const char *ingest_turn_error(const cJSON *item, const bool *nul, int index)
{
	(void)nul;
	(void)index;
	return cJSON_IsRaw(item) ? NULL : cJSON_GetStringValue(item);
}
