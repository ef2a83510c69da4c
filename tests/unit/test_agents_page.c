/* agents_page_cursor_decode: the GET /v1/agents cursor a peer sends back,
 * with every part the SQL takes checked. */
#include <stdlib.h>
#include <string.h>

#include "agents_page.h"
#include "b64url.h"
#include "unit.h"

/* raw[0..len) as a cursor, decoded: the status. */
static int agents_page_try(const char *raw, size_t len, char *key[AGENTS_NKEYS], char *err,
			   size_t errlen)
{
	char enc[256];

	if (!b64url_encode(raw, len, enc, sizeof(enc)))
		return -1;
	return agents_page_cursor_decode(enc, key, err, errlen);
}

UNIT_TEST(agents_page_cursor_takes_the_three_key_texts)
{
	static const char raw[] = "+acme\0w-1\0+p";
	char *key[AGENTS_NKEYS], err[256];

	CHECK(agents_page_try(raw, sizeof(raw) - 1, key, err, sizeof(err)) == 200);
	CHECK(strcmp(key[0], "+acme") == 0 && strcmp(key[1], "w-1") == 0 &&
	      strcmp(key[2], "+p") == 0);
	free(key[0]);
	/* No tenant and no project: the empty texts. */
	CHECK(agents_page_try("\0w\0", 3, key, err, sizeof(err)) == 200);
	CHECK(key[0][0] == '\0' && strcmp(key[1], "w") == 0 && key[2][0] == '\0');
	free(key[0]);
}

UNIT_TEST(agents_page_cursor_refuses_what_it_never_made)
{
	static const struct {
		const char *raw;
		size_t len;
	} bad[] = {
		{ "no-separators", 13 }, { "+a\0w", 4 }, /* two parts */
		{ "+a\0w\0+p\0x", 9 },			 /* four parts */
		{ "acme\0w\0", 7 },			 /* a tenant without its '+' */
		{ "+a\0\0", 4 },			 /* an empty agent_id */
		{ "+a\0w\0p", 6 },			 /* a project without its '+' */
		{ "+a\0\xff\0", 5 },			 /* not UTF-8 */
	};
	char *key[AGENTS_NKEYS], err[256];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int st = agents_page_try(bad[i].raw, bad[i].len, key, err, sizeof(err));

		CHECK_MSG(st == 400, "case %zu: %d", i, st);
		CHECK_MSG(strncmp(err, "cursor: ", 8) == 0, "case %zu: %s", i, err);
		CHECK(key[0] == NULL);
	}
	CHECK(agents_page_cursor_decode("!!", key, err, sizeof(err)) == 400);
}
