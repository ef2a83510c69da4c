/* The opaque /v1/rows page cursor: base64url of "<ts_us>|<id>", the keyset
 * position of the last row of a page (newest first). */
#ifndef VGC_ROLLUP_CURSOR_H
#define VGC_ROLLUP_CURSOR_H

#include <stdbool.h>
#include <stddef.h>

#include "buf.h"

/* Appends the cursor for the row (ts_us, id) to out. False when out of memory,
 * as out->over also says. */
bool rollup_cursor_encode(long long ts_us, const char *id, struct buf *out);

/* Decodes the next= parameter v: its time must be in ROLLUP_TIME_MIN_US..
 * ROLLUP_TIME_MAX_US and its id UTF-8 (ids may hold control characters: the
 * cursor is ours). Returns 200 with *id a string the caller frees, 400 with a
 * message that names next, or 503 when out of memory. */
int rollup_cursor_decode(const char *v, long long *ts_us, char **id, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
