/* Key scope on the read path: a key scoped to a tenant or project reads only
 * that tenant's or project's rows, whatever filters the query names. */
#include "rollup_scope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Confines one filter to scope (NULL: no restriction). */
static int rollup_scope_one(struct rollup_filter *f, const char *scope, const char *what,
			    const char *key_prefix, char *err, size_t errlen)
{
	if (!scope)
		return 200;
	if (f->n == 0) {
		if (!(f->values[0] = strdup(scope))) {
			snprintf(err, errlen, "out of memory");
			return 503;
		}
		f->n = 1;
		return 200;
	}
	for (int i = 0; i < f->n; i++) {
		if (f->values[i] && strcmp(f->values[i], scope) == 0)
			continue;
		if (f->values[i])
			snprintf(err, errlen,
				 "key %s is scoped to %s \"%s\" and may not read %s \"%.*s\"",
				 key_prefix, what, scope, what,
				 rollup_params_clip(f->values[i], 64), f->values[i]);
		else
			snprintf(err, errlen,
				 "key %s is scoped to %s \"%s\" and may not read rows without a %s",
				 key_prefix, what, scope, what);
		return 403;
	}
	return 200;
}

int rollup_scope_apply(struct rollup_query *q, const char *project, const char *tenant,
		       const char *key_prefix, char *err, size_t errlen)
{
	int st = rollup_scope_one(&q->filters[ROLLUP_COL_TENANT], tenant, "tenant", key_prefix, err,
				  errlen);

	if (st != 200)
		return st;
	return rollup_scope_one(&q->filters[ROLLUP_COL_PROJECT], project, "project", key_prefix,
				err, errlen);
}
