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

#endif
