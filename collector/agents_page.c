/* GET /v1/agents's page: the agents' JSON as the database rendered it, and
 * a keyset cursor. The cursor is base64url of the page key's three texts
 * joined by NUL bytes (no text holds one): a peer can send anything as
 * cursor=, so decoding checks every part the SQL will take. */
#include "agents_page.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "b64url.h"
#include "row.h"

/* The longest cursor decoded: three bounded texts, with room to spare. */
#define AGENTS_PAGE_CURSOR_MAX 16384

bool agents_page_cursor(const PGresult *res, int r, struct buf *out)
{
	struct buf raw;
	char *enc = NULL;
	size_t cap;
	bool ok;

	buf_init(&raw, 0);
	for (int k = 0; k < AGENTS_NKEYS; k++) {
		const char *v = PQgetvalue(res, r, AGENTS_COL_KEY + k);
		buf_append(&raw, v, strlen(v) + (k < AGENTS_NKEYS - 1));
	}
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

bool agents_page_render(const PGresult *res, int limit, int ttl_s, struct buf *out)
{
	int n = PQntuples(res);

	buf_printf(out, "{\"ttl_s\":%d,\"agents\":[", ttl_s);
	for (int r = 0; r < n && r < limit; r++) {
		buf_puts(out, r ? "," : "");
		buf_puts(out, PQgetvalue(res, r, AGENTS_COL_JSON));
	}
	buf_puts(out, "],\"next_cursor\":");
	if (n > limit) {
		buf_putc(out, '"');
		agents_page_cursor(res, limit - 1, out);
		buf_putc(out, '"');
	} else {
		buf_puts(out, "null");
	}
	buf_putc(out, '}');
	return !out->over;
}

int agents_page_cursor_decode(const char *v, char *key[AGENTS_NKEYS], char *err, size_t errlen)
{
	size_t len = strlen(v), n;
	unsigned char *raw;
	const char *why = "it does not decode";
	char *p;

	for (int k = 0; k < AGENTS_NKEYS; k++)
		key[k] = NULL;
	if (len > b64url_encoded_len(AGENTS_PAGE_CURSOR_MAX)) {
		why = "it is too long";
		goto bad;
	}
	if (!(raw = malloc(len + 1))) {
		snprintf(err, errlen, "out of memory");
		return 503;
	}
	if (!b64url_decode(v, raw, len, &n)) {
		free(raw);
		goto bad;
	}
	raw[n] = '\0';
	p = (char *)raw;
	for (int k = 0; k < AGENTS_NKEYS; k++) {
		size_t plen = strnlen(p, (size_t)((char *)raw + n - p));

		/* Tenant and project are '' or '+name'; agent_id is never empty. */
		if ((k < AGENTS_NKEYS - 1 && p + plen >= (char *)raw + n) ||
		    (k == AGENTS_NKEYS - 1 && p + plen != (char *)raw + n) ||
		    !row_utf8_valid(p, plen) || (k == 1 ? plen == 0 : plen && p[0] != '+')) {
			free(raw);
			goto bad;
		}
		key[k] = p;
		p += plen + 1;
	}
	return 200;
bad:
	for (int k = 0; k < AGENTS_NKEYS; k++)
		key[k] = NULL;
	snprintf(err, errlen, "cursor: not a cursor this endpoint returned (%s)", why);
	return 400;
}
