/* GET /v1/agents's page: each worker's JSON rendered from the columns of
 * agents_store_list (rendered here, not by the database: building 500 JSON
 * objects took a third of the page's PostgreSQL CPU), and
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

/* The value of column c: a JSON string (text), or null. */
static void agents_page_text(struct buf *out, const PGresult *res, int r, int c)
{
	row_json_string(out, PQgetisnull(res, r, c) ? NULL : PQgetvalue(res, r, c));
}

/* The value of column c: a JSON number as PostgreSQL printed the integer, or null. */
static void agents_page_number(struct buf *out, const PGresult *res, int r, int c)
{
	buf_puts(out, PQgetisnull(res, r, c) ? "null" : PQgetvalue(res, r, c));
}

/* The worker's members in the API's order: name, column, and whether a number. */
static const struct agents_page_member {
	const char *name;
	int col;
	bool number;
} agents_page_members[] = {
	{ "agent_id", AGENTS_COL_AGENT_ID, false },
	{ "agent_name", AGENTS_COL_AGENT_NAME, false },
	{ "tenant_id", AGENTS_COL_TENANT, false },
	{ "project", AGENTS_COL_PROJECT, false },
	{ "status", AGENTS_COL_STATUS, false },
	{ "active_sessions", AGENTS_COL_SESSIONS, true },
	{ "version", AGENTS_COL_VERSION, false },
	{ "region", AGENTS_COL_REGION, false },
	{ "host", AGENTS_COL_HOST, false },
	{ "started_at", AGENTS_COL_STARTED_AT, false },
	{ "last_seen", AGENTS_COL_LAST_SEEN, false },
	{ "last_seen_age_s", AGENTS_COL_AGE_S, true },
}, agents_page_sink[] = {
	{ "recorded", AGENTS_COL_RECORDED, true },
	{ "sent", AGENTS_COL_SENT, true },
	{ "dropped", AGENTS_COL_DROPPED, true },
	{ "rejected", AGENTS_COL_REJECTED, true },
	{ "queued", AGENTS_COL_QUEUED, true },
	{ "spooled_rows", AGENTS_COL_SPOOLED, true },
	{ "spool_bytes", AGENTS_COL_SPOOL_BYTES, true },
	{ "last_error", AGENTS_COL_LAST_ERROR, false },
};

static void agents_page_object(struct buf *out, const PGresult *res, int r,
			       const struct agents_page_member *m, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		buf_printf(out, "%s\"%s\":", i ? "," : "", m[i].name);
		if (m[i].number)
			agents_page_number(out, res, r, m[i].col);
		else
			agents_page_text(out, res, r, m[i].col);
	}
}

bool agents_page_agent_json(const PGresult *res, int r, struct buf *out)
{
	buf_putc(out, '{');
	agents_page_object(out, res, r, agents_page_members,
			   sizeof(agents_page_members) / sizeof(agents_page_members[0]));
	/* A worker that never reported its sink has no sink object. */
	if (PQgetisnull(res, r, AGENTS_COL_RECORDED)) {
		buf_puts(out, ",\"sink\":null");
	} else {
		buf_puts(out, ",\"sink\":{");
		agents_page_object(out, res, r, agents_page_sink,
				   sizeof(agents_page_sink) / sizeof(agents_page_sink[0]));
		buf_putc(out, '}');
	}
	buf_puts(out, ",\"delivery\":");
	agents_page_text(out, res, r, AGENTS_COL_DELIVERY);
	return buf_putc(out, '}') && !out->over;
}

bool agents_page_render(const PGresult *res, int limit, int ttl_s, struct buf *out)
{
	int n = PQntuples(res);

	buf_printf(out, "{\"ttl_s\":%d,\"agents\":[", ttl_s);
	for (int r = 0; r < n && r < limit; r++) {
		buf_puts(out, r ? "," : "");
		agents_page_agent_json(res, r, out);
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
