/* The format-neutral batch: inflating a body, recording rows and rejects,
 * and the within-batch id set that counts repeats. */
#include "ingest_batch.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gz.h"

int ingest_inflate(const char *body, size_t len, bool gzip, const struct ingest_limits *lim,
		   struct buf *inflated, const char **text, size_t *textlen, char *err,
		   size_t errlen)
{
	*text = body;
	*textlen = len;
	if (gzip) {
		switch (gz_inflate(body, len, lim->max_inflated_bytes, inflated, err, errlen)) {
		case GZ_OK: break;
		case GZ_TOO_BIG: return 413;
		case GZ_BAD: return 400;
		}
		*text = inflated->data ? inflated->data : "";
		*textlen = inflated->len;
	} else if (len > lim->max_inflated_bytes) {
		snprintf(err, errlen, "body is larger than max_inflated_bytes (%zu)",
			 lim->max_inflated_bytes);
		return 413;
	}
	return 200;
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

bool ingest_batch_reject(struct ingest_batch *b, int index, const char *raw, size_t rawlen,
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

/* Copies the row's strings into one block owned by the batch, so the
 * decoder's own storage (a cJSON tree, a protobuf message) can be freed. */
static bool ingest_batch_copy(struct ingest_batch *b, struct row *r, const size_t len[ROW_NSTRINGS])
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

/* FNV-1a over the id's bytes. */
static uint64_t ingest_hash(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ULL;
	return h;
}

/* The slot holding id, or the empty one where it would go. */
static const char **ingest_id_slot(struct ingest_batch *b, const char *id)
{
	size_t i = (size_t)ingest_hash(id) & (b->ids_cap - 1);

	while (b->ids[i] && strcmp(b->ids[i], id) != 0)
		i = (i + 1) & (b->ids_cap - 1);
	return &b->ids[i];
}

bool ingest_batch_alloc(struct ingest_batch *b, int n)
{
	b->cap = n;
	b->rows = calloc((size_t)n + 1, sizeof(*b->rows));
	b->row_index = calloc((size_t)n + 1, sizeof(*b->row_index));
	b->rejects = calloc((size_t)n + 1, sizeof(*b->rejects));
	b->owned = calloc((size_t)n + 1, sizeof(*b->owned));
	for (b->ids_cap = 16; b->ids_cap < (size_t)n * 2; b->ids_cap *= 2)
		;
	b->ids = calloc(b->ids_cap, sizeof(*b->ids));
	return b->rows && b->row_index && b->rejects && b->owned && b->ids;
}

bool ingest_batch_keep(struct ingest_batch *b, struct row *r, const size_t len[ROW_NSTRINGS],
		       int index)
{
	const char **slot = ingest_id_slot(b, r->id);

	if (*slot) {
		b->duplicates++;
		return true;
	}
	if (!ingest_batch_copy(b, r, len))
		return false;
	b->rows[b->nrows] = *r;
	*slot = b->rows[b->nrows].id;
	b->row_index[b->nrows++] = index;
	return true;
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
	free(b->ids);
	buf_release(&b->inflated);
	memset(b, 0, sizeof(*b));
}
