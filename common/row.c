/* Cost row decoding, validation and encoding: the wire contract in one place.
 * The collector validates every row it stores with row_validate, and libvgsink
 * validates every row it records with the same function. */
#include "row.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include "num.h"

static const char *const modality_names[] = { "stt", "llm", "tts" };
static const char *const status_names[] = { "success", "error", "fallback" };

void row_limits_default(struct row_limits *lim)
{
	lim->max_string_chars = 256;
	lim->max_error_message_chars = 4096;
	lim->max_metadata_bytes = 16384;
	lim->max_row_age_s = 400.0 * 86400.0;
	lim->max_clock_skew_s = 3600.0;
	lim->max_project_bytes = 512;
	lim->max_agent_id_bytes = 640;
	lim->max_provider_bytes = 640;
	lim->max_model_id_bytes = 640;
}

bool row_key_bytes_fit(const struct row_limits *lim, size_t *total)
{
	*total = ROW_ROLLUP_KEY_FIXED_BYTES + lim->max_project_bytes + lim->max_agent_id_bytes +
		 lim->max_provider_bytes + lim->max_model_id_bytes;
	return lim->max_project_bytes <= ROW_ROLLUP_KEY_MAX_BYTES &&
	       lim->max_agent_id_bytes <= ROW_ROLLUP_KEY_MAX_BYTES &&
	       lim->max_provider_bytes <= ROW_ROLLUP_KEY_MAX_BYTES &&
	       lim->max_model_id_bytes <= ROW_ROLLUP_KEY_MAX_BYTES &&
	       *total <= ROW_ROLLUP_KEY_MAX_BYTES;
}

void row_init(struct row *r)
{
	memset(r, 0, sizeof(*r));
	r->ttfb_ms = NAN;
	r->total_latency_ms = NAN;
	r->turn_index = -1;
}

const char *row_modality_name(enum row_modality m)
{
	return modality_names[m];
}

const char *row_status_name(enum row_status s)
{
	return status_names[s];
}

bool row_modality_parse(const char *s, enum row_modality *out)
{
	for (int i = 0; i < 3; i++) {
		if (strcmp(s, modality_names[i]) == 0) {
			*out = (enum row_modality)i;
			return true;
		}
	}
	return false;
}

bool row_status_parse(const char *s, enum row_status *out)
{
	for (int i = 0; i < 3; i++) {
		if (strcmp(s, status_names[i]) == 0) {
			*out = (enum row_status)i;
			return true;
		}
	}
	return false;
}

bool row_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		unsigned char c;
		size_t n;
		unsigned int cp;
		uint64_t w;

		/* Eight ASCII bytes with no NUL at a time: the common case. */
		while (end - p >= 8) {
			memcpy(&w, p, 8);
			if ((w & 0x8080808080808080ULL) ||
			    ((w - 0x0101010101010101ULL) & ~w & 0x8080808080808080ULL))
				break;
			p += 8;
		}
		if (p == end)
			break;
		c = *p;
		if (c == 0)
			return false;
		if (c < 0x80) {
			p++;
			continue;
		}
		if ((c & 0xE0) == 0xC0) {
			n = 1;
			cp = c & 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			n = 2;
			cp = c & 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			n = 3;
			cp = c & 0x07;
		} else {
			return false;
		}
		if ((size_t)(end - p) <= n)
			return false;
		for (size_t i = 1; i <= n; i++) {
			if ((p[i] & 0xC0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3F);
		}
		/* Reject overlong forms, surrogates and values past U+10FFFF. */
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			return false;
		p += n + 1;
	}
	return true;
}

/* Counts UTF-8 characters (s is already known to be valid). */
static size_t row_utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((unsigned char)*s & 0xC0) != 0x80;
	return n;
}

/* ---- decoding -------------------------------------------------------------- */

/* One object's members by name: an open-addressing table of FNV-1a hashes,
 * built in one pass that also finds a repeated key. A field lookup is then one
 * probe and, on a hash match, one strcmp, instead of a scan of the members;
 * and no sort is needed to find duplicates. */
#define ROW_MEMBERS_SMALL 64 /* slots on the stack: objects of up to 32 members */

struct row_members {
	const cJSON **slot;
	uint32_t *hash;
	size_t mask;
	const cJSON *small_slot[ROW_MEMBERS_SMALL];
	uint32_t small_hash[ROW_MEMBERS_SMALL];
};

static uint32_t row_name_hash(const char *s)
{
	uint32_t h = 2166136261u;

	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	return h;
}

static void row_members_release(struct row_members *m)
{
	if (m->slot != m->small_slot) {
		free(m->slot);
		free(m->hash);
	}
}

/* Indexes obj's members; the first key obj holds twice goes to *dup (else
 * NULL). False when out of memory. */
static bool row_members_build(struct row_members *m, const cJSON *obj, const char **dup)
{
	size_t n = 0, size = ROW_MEMBERS_SMALL;

	*dup = NULL;
	for (const cJSON *v = obj->child; v; v = v->next)
		n++;
	while (size < 2 * n)
		size *= 2;
	m->mask = size - 1;
	m->slot = m->small_slot;
	m->hash = m->small_hash;
	if (size > ROW_MEMBERS_SMALL) {
		m->slot = calloc(size, sizeof(*m->slot));
		m->hash = calloc(size, sizeof(*m->hash));
		if (!m->slot || !m->hash) {
			free(m->slot);
			free(m->hash);
			m->slot = m->small_slot; /* release frees nothing */
			return false;
		}
	} else {
		memset(m->small_slot, 0, sizeof(m->small_slot));
	}
	for (const cJSON *v = obj->child; v && !*dup; v = v->next) {
		const char *key = v->string ? v->string : "";
		uint32_t h = row_name_hash(key);
		size_t i = h & m->mask;

		for (; m->slot[i]; i = (i + 1) & m->mask) {
			if (m->hash[i] == h &&
			    strcmp(m->slot[i]->string ? m->slot[i]->string : "", key) == 0) {
				*dup = key;
				break;
			}
		}
		m->slot[i] = v;
		m->hash[i] = h;
	}
	return true;
}

static const cJSON *row_members_get(const struct row_members *m, const char *name)
{
	uint32_t h = row_name_hash(name);

	for (size_t i = h & m->mask; m->slot[i]; i = (i + 1) & m->mask)
		if (m->hash[i] == h && m->slot[i]->string && strcmp(m->slot[i]->string, name) == 0)
			return m->slot[i];
	return NULL;
}

/* Reads one object's fields through its member index. */
struct field_err {
	char *err;
	size_t errlen;
	const struct row_members *members;
};

static const cJSON *row_field(struct field_err *fe, const char *name)
{
	return row_members_get(fe->members, name);
}

static bool row_get_string(struct field_err *fe, const char *name, const char **out, bool required)
{
	const cJSON *v = row_field(fe, name);

	if (!v || cJSON_IsNull(v)) {
		if (required) {
			snprintf(fe->err, fe->errlen, "%s: required", name);
			return false;
		}
		*out = NULL;
		return true;
	}
	if (!cJSON_IsString(v) || !v->valuestring) {
		snprintf(fe->err, fe->errlen, "%s: must be a string", name);
		return false;
	}
	*out = v->valuestring;
	return true;
}

/* Reads a number; absent or null leaves *out unchanged (the caller's default). */
static bool row_get_number(struct field_err *fe, const char *name, double *out, bool required)
{
	const cJSON *v = row_field(fe, name);

	if (!v || cJSON_IsNull(v)) {
		if (required) {
			snprintf(fe->err, fe->errlen, "%s: required", name);
			return false;
		}
		return true;
	}
	if (!cJSON_IsNumber(v)) {
		snprintf(fe->err, fe->errlen, "%s: must be a number", name);
		return false;
	}
	*out = v->valuedouble;
	return true;
}

/* The last member of obj named name, as PostgreSQL's jsonb keeps it. */
static const cJSON *row_last_member(const cJSON *obj, const char *name)
{
	const cJSON *last = NULL;

	for (const cJSON *v = obj->child; v; v = v->next)
		if (v->string && strcmp(v->string, name) == 0)
			last = v;
	return last;
}

/* A COUNT field: absent or null leaves *out at -1 (null). */
static bool row_get_count(struct field_err *fe, const struct row_field *f, long long *out)
{
	const cJSON *v = row_field(fe, f->name);

	if (!v || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < 0 ||
	    v->valuedouble > 2147483647.0) {
		snprintf(fe->err, fe->errlen, "%s: must be an integer from 0 to 2147483647",
			 f->name);
		return false;
	}
	*out = (long long)v->valuedouble;
	return true;
}

/* The JSON field: printed compact into *owned, and the tenant read from it
 * when the row names none. */
static bool row_get_metadata(struct field_err *fe, const struct row_field *f, struct row *r,
			     char **owned)
{
	const cJSON *v = row_field(fe, f->name);
	const char **m = ROW_FIELD_PTR(r, f->offset);

	if (!v || cJSON_IsNull(v))
		return true;
	if (!cJSON_IsObject(v)) {
		snprintf(fe->err, fe->errlen, "%s: must be a JSON object", f->name);
		return false;
	}
	*owned = cJSON_PrintUnformatted(v);
	if (!*owned) {
		snprintf(fe->err, fe->errlen, "%s: out of memory", f->name);
		return false;
	}
	*m = *owned;
	if (!r->tenant_id) {
		/* The Python sink tags tenants in metadata; read it from there.
		 * Metadata is the client's own data, stored as jsonb, which keeps
		 * the last of repeated keys: read the same one it keeps. */
		const cJSON *t = row_last_member(v, "tenant");
		if (t && !cJSON_IsNull(t)) {
			if (!cJSON_IsString(t)) {
				snprintf(fe->err, fe->errlen, "%s.tenant: must be a string",
					 f->name);
				return false;
			}
			r->tenant_id = t->valuestring;
		}
	}
	return true;
}

/* Reads every field of the row fe's members index into r. */
static bool row_read_fields(struct field_err *fe, struct row *r, char **metadata_owned)
{
	const char *modality = NULL, *status = NULL;
	char *err = fe->err;
	size_t errlen = fe->errlen;

	/* Every field but turn_index and metadata, in table order; then the
	 * enum values, turn_index and metadata: the order errors are reported. */
	for (int i = 0; i < ROW_NFIELDS; i++) {
		const struct row_field *f = &row_fields[i];
		void *m = ROW_FIELD_PTR(r, f->offset);
		bool ok = true;

		switch (f->kind) {
		case ROW_KIND_TEXT: ok = row_get_string(fe, f->name, m, f->required); break;
		case ROW_KIND_MODALITY:
			ok = row_get_string(fe, f->name, &modality, f->required);
			break;
		case ROW_KIND_STATUS: ok = row_get_string(fe, f->name, &status, f->required); break;
		case ROW_KIND_TIME:
		case ROW_KIND_AMOUNT:
		case ROW_KIND_MEASURE: ok = row_get_number(fe, f->name, m, f->required); break;
		case ROW_KIND_JSON:
		case ROW_KIND_COUNT:
		case ROW_KIND_BOOK: break; /* the collector's, never the worker's */
		}
		if (!ok)
			return false;
	}
	if (!row_modality_parse(modality, &r->modality)) {
		snprintf(err, errlen, "modality \"%.32s\": must be \"stt\", \"llm\" or \"tts\"",
			 modality);
		return false;
	}
	if (status && !row_status_parse(status, &r->status)) {
		snprintf(err, errlen,
			 "status \"%.32s\": must be \"success\", \"error\" or \"fallback\"",
			 status);
		return false;
	}
	for (int i = 0; i < ROW_NFIELDS; i++)
		if (row_fields[i].kind == ROW_KIND_COUNT &&
		    !row_get_count(fe, &row_fields[i], ROW_FIELD_PTR(r, row_fields[i].offset)))
			return false;
	for (int i = 0; i < ROW_NFIELDS; i++)
		if (row_fields[i].kind == ROW_KIND_JSON &&
		    !row_get_metadata(fe, &row_fields[i], r, metadata_owned))
			return false;
	for (int i = 0; i < ROW_NFIELDS; i++) {
		const char **m;

		if (!row_fields[i].absent)
			continue;
		m = ROW_FIELD_PTR(r, row_fields[i].offset);
		if (!*m)
			*m = row_fields[i].absent;
	}
	return true;
}

bool row_from_json(const cJSON *obj, struct row *r, char **metadata_owned, char *err, size_t errlen)
{
	struct row_members members;
	struct field_err fe = { err, errlen, &members };
	const char *dup;
	bool ok;

	*metadata_owned = NULL;
	row_init(r);
	if (!cJSON_IsObject(obj)) {
		snprintf(err, errlen, "row must be a JSON object");
		return false;
	}
	if (!row_members_build(&members, obj, &dup)) {
		snprintf(err, errlen, "out of memory checking for duplicate keys");
		return false;
	}
	/* One rule for a repeated field: the row is refused. Taking the first or
	 * the last would let two readers of the same text bill different sums. */
	if (dup) {
		snprintf(err, errlen, "duplicate key \"%.64s\"", dup);
		ok = false;
	} else {
		ok = row_read_fields(&fe, r, metadata_owned);
	}
	row_members_release(&members);
	return ok;
}

/* ---- validation ------------------------------------------------------------ */

void row_string_fields(struct row *r, const char **f[ROW_NSTRINGS])
{
	int n = 0;

	for (int i = 0; i < ROW_NFIELDS && n < ROW_NSTRINGS; i++)
		if (row_field_is_string(&row_fields[i]))
			f[n++] = ROW_FIELD_PTR(r, row_fields[i].offset);
}

/* The bytes a tenant id may hold: letters, digits, '-' and '_'. */
static const bool row_tenant_byte[256] = {
	['-'] = 1, ['_'] = 1, ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1,
	['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1, ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1,
	['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1,
	['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
	['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1, ['a'] = 1, ['b'] = 1,
	['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,
	['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1,
	['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

static bool row_tenant_valid_len(const char *s, size_t n)
{
	bool ok = n >= 1 && n <= ROW_TENANT_MAX_CHARS;

	for (size_t i = 0; ok && i < n; i++)
		ok = row_tenant_byte[(unsigned char)s[i]];
	return ok;
}

/* True when s's len bytes are all ASCII, eight at a time: then they are valid
 * UTF-8 (s was measured by strlen, so it holds no NUL), len characters. */
static bool row_ascii(const char *s, size_t len)
{
	uint64_t acc = 0, w;
	size_t i = 0;

	for (; i + 8 <= len; i += 8) {
		memcpy(&w, s + i, 8);
		acc |= w;
	}
	for (; i < len; i++)
		acc |= (unsigned char)s[i];
	return !(acc & 0x8080808080808080ULL);
}

bool row_tenant_valid(const char *s)
{
	return row_tenant_valid_len(s, strlen(s));
}

static bool row_check_string(const char *name, const char *s, size_t len, size_t max_chars,
			     char *err, size_t errlen)
{
	size_t chars;

	if (!row_ascii(s, len) && !row_utf8_valid(s, len)) {
		snprintf(err, errlen, "%s: not valid UTF-8", name);
		return false;
	}
	/* A string of no more bytes than the limit has no more characters. */
	chars = len <= max_chars ? len : row_utf8_chars(s);
	if (chars > max_chars) {
		snprintf(err, errlen, "%s: %zu characters, the limit is %zu", name, chars,
			 max_chars);
		return false;
	}
	return true;
}

static bool row_check_metadata(const char *s, size_t len, const struct row_limits *lim, char *err,
			       size_t errlen)
{
	if (len > lim->max_metadata_bytes) {
		snprintf(err, errlen, "metadata: %zu bytes as JSON, the limit is %zu", len,
			 lim->max_metadata_bytes);
		return false;
	}
	if (!row_ascii(s, len) && !row_utf8_valid(s, len)) {
		snprintf(err, errlen, "metadata: not valid UTF-8");
		return false;
	}
	return true;
}

/* One string field by its rule; len gets its length. */
bool row_check_string_field(const struct row_field *rule, const char *s, size_t *len,
			    const struct row_limits *lim, char *err, size_t errlen)
{
	*len = strlen(s);
	if (rule->bytes != ROW_NO_BYTES) {
		size_t max = *(const size_t *)(const void *)((const char *)lim + rule->bytes);

		if (*len > max) {
			snprintf(err, errlen,
				 "%s: %zu bytes of UTF-8, the limit is %zu (max_%s_bytes)",
				 rule->name, *len, max, rule->name);
			return false;
		}
	}
	switch (rule->cap) {
	case ROW_CAP_ID:
		if (*len == 0) {
			snprintf(err, errlen, "id: required, 1-%d characters", ROW_ID_MAX_CHARS);
			return false;
		}
		return row_check_string(rule->name, s, *len, ROW_ID_MAX_CHARS, err, errlen);
	case ROW_CAP_PROJECT:
		if (*len == 0) {
			snprintf(err, errlen, "project: must not be empty");
			return false;
		}
		return row_check_string(rule->name, s, *len, ROW_PROJECT_MAX_CHARS, err, errlen);
	case ROW_CAP_ERROR:
		return row_check_string(rule->name, s, *len, lim->max_error_message_chars, err,
					errlen);
	case ROW_CAP_METADATA: return row_check_metadata(s, *len, lim, err, errlen);
	case ROW_CAP_TENANT:
		if (!row_tenant_valid_len(s, *len)) {
			snprintf(err, errlen,
				 "tenant_id \"%.140s\": 1-%d of only letters, digits, '-' and '_'",
				 s, ROW_TENANT_MAX_CHARS);
			return false;
		}
		return true;
	case ROW_CAP_STRING:
	case ROW_CAP_NONE: break;
	}
	return row_check_string(rule->name, s, *len, lim->max_string_chars, err, errlen);
}

static bool row_check_amount(const char *name, double v, bool nullable, char *err, size_t errlen)
{
	if (nullable && isnan(v))
		return true;
	if (!isfinite(v) || v < 0) {
		char num[40];
		num_format(v, num, sizeof(num));
		snprintf(err, errlen, "%s: must be a finite number >= 0, got %s", name, num);
		return false;
	}
	return true;
}

/* The TIME field: epoch seconds within the wire's range and the limits. */
static bool row_check_time(const char *name, double t, const struct row_limits *lim, double now,
			   char *err, size_t errlen)
{
	if (!isfinite(t) || t < 0 || t > 32503680000.0) {
		snprintf(err, errlen, "%s: must be epoch seconds between 1970 and 3000", name);
		return false;
	}
	if (lim->max_row_age_s > 0 && t < now - lim->max_row_age_s) {
		snprintf(err, errlen, "%s %.3f: older than max_row_age_days (%.0f days)", name, t,
			 lim->max_row_age_s / 86400.0);
		return false;
	}
	if (lim->max_clock_skew_s > 0 && t > now + lim->max_clock_skew_s) {
		snprintf(err, errlen, "%s %.3f: more than max_clock_skew_s (%.0f s) in the future",
			 name, t, lim->max_clock_skew_s);
		return false;
	}
	return true;
}

bool row_check_number_field(const struct row_field *f, double v, const struct row_limits *lim,
			    double now, char *err, size_t errlen)
{
	if (f->kind == ROW_KIND_TIME)
		return row_check_time(f->name, v, lim, now, err, errlen);
	return row_check_amount(f->name, v, f->kind == ROW_KIND_MEASURE, err, errlen);
}

/* Strings first, then amounts, then the time, each in table order: the order
 * errors are reported in. */
bool row_validate_measure(const struct row *r, const struct row_limits *lim, double now,
			  size_t len[ROW_NSTRINGS], char *err, size_t errlen)
{
	int n = 0;

	if (!r->id) {
		snprintf(err, errlen, "id: required, 1-%d characters", ROW_ID_MAX_CHARS);
		return false;
	}
	for (int i = 0; i < ROW_NFIELDS && n < ROW_NSTRINGS; i++) {
		const struct row_field *f = &row_fields[i];
		const char *s;

		if (!row_field_is_string(f))
			continue;
		s = *(const char *const *)ROW_FIELD_CPTR(r, f->offset);
		len[n] = 0;
		if (s && !row_check_string_field(f, s, &len[n], lim, err, errlen))
			return false;
		n++;
	}
	for (int i = 0; i < ROW_NFIELDS; i++) {
		const struct row_field *f = &row_fields[i];

		if ((f->kind == ROW_KIND_AMOUNT || f->kind == ROW_KIND_MEASURE) &&
		    !row_check_amount(f->name, *(const double *)ROW_FIELD_CPTR(r, f->offset),
				      f->kind == ROW_KIND_MEASURE, err, errlen))
			return false;
	}
	for (int i = 0; i < ROW_NFIELDS; i++) {
		const struct row_field *f = &row_fields[i];

		if (f->kind == ROW_KIND_TIME &&
		    !row_check_time(f->name, *(const double *)ROW_FIELD_CPTR(r, f->offset), lim,
				    now, err, errlen))
			return false;
	}
	return true;
}

bool row_validate(const struct row *r, const struct row_limits *lim, double now, char *err,
		  size_t errlen)
{
	size_t len[ROW_NSTRINGS];

	return row_validate_measure(r, lim, now, len, err, errlen);
}

/* ---- encoding -------------------------------------------------------------- */

bool row_json_string(struct buf *out, const char *s)
{
	static const char hex[] = "0123456789abcdef";

	if (!s)
		return buf_puts(out, "null");
	if (!buf_reserve(out, strlen(s) + 2))
		return false;
	buf_putc(out, '"');
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') {
			char e[2] = { '\\', (char)c };
			buf_append(out, e, 2);
		} else if (c < 0x20) {
			char e[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
			buf_append(out, e, 6);
		} else {
			buf_putc(out, (char)c);
		}
	}
	return buf_putc(out, '"');
}

static void row_json_key(struct buf *out, const char *key, bool first)
{
	if (!first)
		buf_putc(out, ',');
	buf_putc(out, '"');
	buf_puts(out, key);
	buf_puts(out, "\":");
}

static void row_json_number(struct buf *out, double v)
{
	char num[40];

	if (isnan(v)) {
		buf_puts(out, "null");
		return;
	}
	num_format(v, num, sizeof(num));
	buf_puts(out, num);
}

bool row_to_json(const struct row *r, struct buf *out)
{
	char num[40];

	buf_putc(out, '{');
	for (int i = 0; i < ROW_NFIELDS; i++) {
		const struct row_field *f = &row_fields[i];
		const void *m;

		if (f->kind == ROW_KIND_BOOK)
			continue; /* not the worker's to send */
		m = ROW_FIELD_CPTR(r, f->offset);
		row_json_key(out, f->name, i == 0);
		switch (f->kind) {
		case ROW_KIND_TEXT: {
			const char *v = *(const char *const *)m;
			row_json_string(out, v || !f->absent ? v : f->absent);
			break;
		}
		case ROW_KIND_TIME:
			snprintf(num, sizeof(num), "%.6f", *(const double *)m);
			buf_puts(out, num);
			break;
		case ROW_KIND_MODALITY:
			row_json_string(out, row_modality_name(*(const enum row_modality *)m));
			break;
		case ROW_KIND_STATUS:
			row_json_string(out, row_status_name(*(const enum row_status *)m));
			break;
		case ROW_KIND_AMOUNT:
		case ROW_KIND_MEASURE: row_json_number(out, *(const double *)m); break;
		case ROW_KIND_JSON: {
			const char *v = *(const char *const *)m;
			buf_puts(out, v ? v : "{}");
			break;
		}
		case ROW_KIND_COUNT:
			if (*(const long long *)m < 0)
				buf_puts(out, "null");
			else
				buf_printf(out, "%lld", *(const long long *)m);
			break;
		case ROW_KIND_BOOK: break;
		}
	}
	buf_putc(out, '}');
	return !out->over;
}
