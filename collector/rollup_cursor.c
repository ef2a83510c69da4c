/* Encodes and checks the /v1/rows page cursor. A peer can send any bytes as
 * next=, so decoding checks everything the SQL will take from it. */
#include "rollup_cursor.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "rollup_params.h"
#include "row.h"

bool rollup_cursor_encode(long long ts_us, const char *id, struct buf *out)
{
	char head[32], *enc = NULL;
	struct buf raw;
	size_t cap = 0;
	bool ok;

	buf_init(&raw, 0);
	snprintf(head, sizeof(head), "%lld|", ts_us);
	buf_puts(&raw, head);
	buf_puts(&raw, id);
	ok = !raw.over;
	if (ok) {
		cap = b64url_encoded_len(raw.len) + 1;
		ok = (enc = malloc(cap)) && b64url_encode(raw.data, raw.len, enc, cap) &&
		     buf_puts(out, enc);
	}
	free(enc);
	buf_release(&raw);
	return ok && !out->over;
}

int rollup_cursor_decode(const char *v, long long *ts_us, char **id, char *err, size_t errlen)
{
	unsigned char raw[512];
	const char *why = "it does not decode";
	size_t n;
	char *bar, *end;
	long long ts;

	if (strlen(v) > 600 || !b64url_decode(v, raw, sizeof(raw) - 1, &n))
		goto bad;
	raw[n] = '\0';
	if (memchr(raw, '\0', n) || !(bar = strchr((char *)raw, '|')) || bar == (char *)raw ||
	    !bar[1])
		goto bad;
	*bar = '\0';
	errno = 0;
	ts = strtoll((char *)raw, &end, 10);
	if (errno || *end || ts < ROLLUP_TIME_MIN_US || ts > ROLLUP_TIME_MAX_US) {
		why = "its time is not a time in the supported range";
		goto bad;
	}
	if (!row_utf8_valid(bar + 1, strlen(bar + 1))) {
		why = "its id is not UTF-8";
		goto bad;
	}
	if (!(*id = strdup(bar + 1))) {
		snprintf(err, errlen, "out of memory");
		return 503;
	}
	*ts_us = ts;
	return 200;
bad:
	snprintf(err, errlen, "next: not a cursor this endpoint returned (%s)", why);
	return 400;
}
