/* Key scope for the read API: narrows a parsed query to what a scoped key
 * may read, or refuses it. */
#ifndef VGC_ROLLUP_SCOPE_H
#define VGC_ROLLUP_SCOPE_H

#include <stddef.h>

#include "rollup_query.h"

/* Confines q to a key's scope (NULL = unrestricted): without a filter on
 * tenant (project) the query is narrowed to the key's tenant (project); a
 * filter naming anything else is refused. Returns 200, 403 with err, or 503. */
int rollup_scope_apply(struct rollup_query *q, const char *project, const char *tenant,
		       const char *key_prefix, char *err, size_t errlen)
	__attribute__((warn_unused_result));

#endif
