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

/* What jsoncheck_object_info found. Pointers point into the checked text. */
struct jsoncheck_info {
	bool nul;	     /* a string holds the escape \u0000 */
	size_t values;	     /* values read, object keys included, up to the end or error */
	size_t at;	     /* on failure, the offset where the text stopped being JSON */
	bool raw_control;    /* on failure, ... at a raw control character inside a string */
	bool trailing;	     /* on failure, the object was whole: bytes follow it */
	const char *key;     /* on failure, the outermost object's member being read, as */
	size_t key_len;	     /* written (escapes not decoded); NULL outside any member */
	const char *nul_key; /* the outermost member whose value (or name, with */
	size_t nul_key_len;  /* nul_key NULL) first held \u0000 */
};

/* jsoncheck_object, telling where and in which member the text failed, which
 * member first holds \u0000, and how many values it read (a caller bounds
 * them before building a tree). */
bool jsoncheck_object_info(const char *s, size_t len, struct jsoncheck_info *info);

#endif
