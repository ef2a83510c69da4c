/* One page of GET /v1/agents (and `vgcollector agents --json`): the JSON
 * answer, and the opaque cursor that names where the next page starts. */
#ifndef VGC_AGENTS_PAGE_H
#define VGC_AGENTS_PAGE_H

#include <libpq-fe.h>
#include <stdbool.h>

#include "agents_store.h"
#include "buf.h"

/* Appends {"ttl_s":..,"agents":[..],"next_cursor":..} for res, a result of
 * agents_store_list with page limit limit (a row past it means there is a
 * next page; its cursor is the key of row limit - 1; else null). False when
 * out of memory, as out->over also says. */
bool agents_page_render(const PGresult *res, int limit, int ttl_s, struct buf *out);

/* Row r of agents_store_list as the API's JSON object for one worker, onto
 * out. False on out of memory. */
bool agents_page_agent_json(const PGresult *res, int r, struct buf *out);

/* Appends the cursor for row r of res to out (base64url; no NUL). */
bool agents_page_cursor(const PGresult *res, int r, struct buf *out);

/* Decodes a cursor= value into key[0..AGENTS_NKEYS) (one allocation, which the
 * caller frees through key[0]). 200, 400 naming cursor, or 503 (memory). */
int agents_page_cursor_decode(const char *v, char *key[AGENTS_NKEYS], char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
