/* A JSON syntax check that allocates nothing: the sink validates each row's
 * metadata text with it on the recording hot path (cJSON would build a tree). */
#ifndef VG_JSONCHECK_H
#define VG_JSONCHECK_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..len) is exactly one JSON object (RFC 8259), with optional
 * surrounding white space, nested at most 64 deep. Then *nul says whether a
 * string in it holds the escape \u0000: valid JSON, but PostgreSQL cannot
 * store the NUL (and cJSON would cut the string there). */
bool jsoncheck_object(const char *s, size_t len, bool *nul);

/* What jsoncheck_info_object found, for a message naming where and what. */
struct jsoncheck_info {
	bool nul;	  /* a string holds the escape \u0000 */
	size_t values;	  /* JSON values, object keys included, up to the end or error */
	size_t error_at;  /* when not valid: the byte where the text stops being JSON */
	bool raw_control; /* ... a raw control character inside a string */
	/* The top-level key whose value holds the error (when not valid) or else
	 * the first \u0000, as it is in s (escapes not decoded); key_len 0: none. */
	size_t key_off, key_len;
};

/* jsoncheck_object, also counting values and saying where it failed. */
bool jsoncheck_info_object(const char *s, size_t len, struct jsoncheck_info *info);

#endif
