/* A JSON syntax check that allocates nothing (see jsoncheck.h): a recursive
 * descent over RFC 8259's grammar with a depth bound. */
#include "jsoncheck.h"

#define JSONCHECK_MAX_DEPTH 64

struct jsoncheck {
	const unsigned char *start, *p, *end;
	bool nul;	  /* a string holds \u0000 */
	bool raw_control; /* stopped at a raw control character in a string */
	size_t values;
	const unsigned char *key, *key_end;	    /* the top-level key being read */
	const unsigned char *nul_key, *nul_key_end; /* the key at the first \u0000 */
};

static bool jc_value(struct jsoncheck *j, int depth);

static void jc_ws(struct jsoncheck *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static bool jc_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Four hex digits after \\u, or -1. */
static long jc_u4(struct jsoncheck *j)
{
	long v = 0;

	if (j->end - j->p < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		unsigned char c = j->p[i];
		if (!jc_hex(c))
			return -1;
		v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	j->p += 4;
	return v;
}

static bool jc_string(struct jsoncheck *j)
{
	j->p++; /* the opening quote */
	while (j->p < j->end) {
		unsigned char c = *j->p++;

		if (c == '"')
			return true;
		if (c < 0x20) {
			j->p--;
			j->raw_control = true;
			return false;
		}
		if (c != '\\')
			continue;
		if (j->p >= j->end)
			return false;
		c = *j->p++;
		if (c == 'u') {
			long u = jc_u4(j);
			/* UTF-16 surrogates must pair up, as cJSON (the collector) requires. */
			if (u >= 0xDC00 && u <= 0xDFFF)
				return false;
			if (u >= 0xD800 && u <= 0xDBFF) {
				if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
					return false;
				j->p += 2;
				u = jc_u4(j);
				if (u < 0xDC00 || u > 0xDFFF)
					return false;
			}
			if (u < 0)
				return false;
			if (u == 0 && !j->nul) {
				j->nul = true;
				j->nul_key = j->key;
				j->nul_key_end = j->key_end;
			}
		} else if (c != '"' && c != '\\' && c != '/' && c != 'b' && c != 'f' && c != 'n' &&
			   c != 'r' && c != 't') {
			return false;
		}
	}
	return false;
}

static bool jc_digits(struct jsoncheck *j)
{
	const unsigned char *start = j->p;

	while (j->p < j->end && *j->p >= '0' && *j->p <= '9')
		j->p++;
	return j->p > start;
}

static bool jc_number(struct jsoncheck *j)
{
	if (*j->p == '-')
		j->p++;
	if (j->p < j->end && *j->p == '0')
		j->p++;
	else if (!jc_digits(j))
		return false;
	if (j->p < j->end && *j->p == '.') {
		j->p++;
		if (!jc_digits(j))
			return false;
	}
	if (j->p < j->end && (*j->p == 'e' || *j->p == 'E')) {
		j->p++;
		if (j->p < j->end && (*j->p == '+' || *j->p == '-'))
			j->p++;
		if (!jc_digits(j))
			return false;
	}
	return true;
}

static bool jc_word(struct jsoncheck *j, const char *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (j->p + i >= j->end || j->p[i] != (unsigned char)w[i])
			return false;
	j->p += n;
	return true;
}

/* An object or array: open was just seen. */
static bool jc_container(struct jsoncheck *j, int depth, bool object)
{
	const unsigned char close = object ? '}' : ']';

	if (depth > JSONCHECK_MAX_DEPTH)
		return false;
	j->p++;
	jc_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return true;
	}
	for (;;) {
		if (object) {
			const unsigned char *key = j->p + 1;

			if (depth == 1) /* failing inside a name is failing in no member */
				j->key = j->key_end = NULL;
			if (j->p >= j->end || *j->p != '"' || !jc_string(j))
				return false;
			j->values++;
			if (depth == 1) {
				j->key = key;
				j->key_end = j->p - 1;
			}
			jc_ws(j);
			if (j->p >= j->end || *j->p++ != ':')
				return false;
		}
		if (!jc_value(j, depth + 1))
			return false;
		if (depth == 1) /* the value is whole: what follows is the object's */
			j->key = j->key_end = NULL;
		jc_ws(j);
		if (j->p >= j->end)
			return false;
		if (*j->p == close) {
			j->p++;
			return true;
		}
		if (*j->p++ != ',')
			return false;
		jc_ws(j);
	}
}

static bool jc_value(struct jsoncheck *j, int depth)
{
	jc_ws(j);
	if (j->p >= j->end)
		return false;
	j->values++;
	switch (*j->p) {
	case '{': return jc_container(j, depth, true);
	case '[': return jc_container(j, depth, false);
	case '"': return jc_string(j);
	case 't': return jc_word(j, "true", 4);
	case 'f': return jc_word(j, "false", 5);
	case 'n': return jc_word(j, "null", 4);
	default: return jc_number(j);
	}
}

bool jsoncheck_object_info(const char *s, size_t len, struct jsoncheck_info *info)
{
	struct jsoncheck j = { 0 };
	bool ok;

	j.start = j.p = (const unsigned char *)s;
	j.end = j.start + len;
	jc_ws(&j);
	ok = j.p < j.end && *j.p == '{' && jc_container(&j, 1, true);
	info->trailing = false;
	if (ok) {
		j.key = j.key_end = NULL; /* bytes after the object belong to no member */
		jc_ws(&j);
		ok = j.p == j.end;
		info->trailing = !ok;
	}
	info->nul = j.nul;
	info->values = j.values;
	info->raw_control = !ok && j.raw_control;
	/* A failed step may have moved past the end by one; point at the end. */
	info->at = ok ? 0 : (size_t)((j.p < j.end ? j.p : j.end) - j.start);
	info->key = !ok && j.key ? (const char *)j.key : NULL;
	info->key_len = info->key ? (size_t)(j.key_end - j.key) : 0;
	info->nul_key = (const char *)j.nul_key;
	info->nul_key_len = j.nul_key ? (size_t)(j.nul_key_end - j.nul_key) : 0;
	return ok;
}

bool jsoncheck_object(const char *s, size_t len, bool *nul)
{
	struct jsoncheck_info info;
	bool ok = jsoncheck_object_info(s, len, &info);

	*nul = info.nul;
	return ok;
}
