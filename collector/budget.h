/* The budget model: a budget's fields and their validation (shared by the CLI
 * and PUT /v1/budgets/{name}), and the SQL that stores budgets and computes
 * their status: spend, percent, forecast and state, on numeric. */
#ifndef VGC_BUDGET_H
#define VGC_BUDGET_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

struct buf;

#define BUDGET_MAX_THRESHOLDS 16
#define BUDGET_NAME_MAX 64

/* One budget as the CLI or PUT gives it. Strings are borrowed from the caller;
 * NULL scope parts mean all. */
struct budget_spec {
	const char *name;
	const char *tenant, *project, *agent, *provider, *model;
	const char *period;    /* day, week or month */
	const char *limit_usd; /* decimal text */
	int thresholds[BUDGET_MAX_THRESHOLDS];
	int nthresholds; /* 0: the default 50,80,100 */
	const char *webhook, *webhook_secret;
};

/* Columns of budget_status's result, in order. */
enum budget_col {
	BUDGET_COL_ID = 0,
	BUDGET_COL_NAME,
	BUDGET_COL_DOC, /* the budget as GET /v1/budgets shows it, JSON */
	BUDGET_COL_SPENT_RATIO,
	BUDGET_COL_FORECAST_RATIO,
	BUDGET_COL_PERIOD,
	BUDGET_COL_LIMIT,
	BUDGET_COL_SPENT,
	BUDGET_COL_PERCENT,
	BUDGET_COL_FORECAST,
	BUDGET_COL_STATE,
	BUDGET_COL_SCOPE, /* "tenant=a project=b", or "*" */
	BUDGET_COL_AS_OF,
};

/* True when name may name a budget (1..64 of letters, digits, '-', '_', '.'). */
bool budget_name_ok(const char *name);
/* Parses "50,80,100" into spec's thresholds. */
bool budget_thresholds_parse(struct budget_spec *spec, const char *text, char *err, size_t errlen)
	__attribute__((warn_unused_result));
/* Checks every field; err starts with the field's name. */
bool budget_spec_check(const struct budget_spec *spec, char *err, size_t errlen)
	__attribute__((warn_unused_result));

/* Creates or updates spec by (tenant, name) (blocking), and marks the tenant
 * for evaluation. With key_tenant / key_project (a scoped key's scope; NULL:
 * unscoped) an existing budget outside that scope is left alone and *status
 * is 403. A new budget beyond max_per_tenant of its tenant (0: no quota) is
 * 429. *status is 200 on success, else the HTTP status of the failure, with
 * err. */
bool budget_upsert(PGconn *conn, const struct budget_spec *spec, const char *key_tenant,
		   const char *key_project, int max_per_tenant, long long *id, bool *created,
		   int *status, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Deletes by name (or by id when by_id) inside the key's scope, of tenant when
 * given. *status is 200, 404 when there is no such budget in scope, 409 when
 * the name is used by several tenants and none was named, or the failure's. */
bool budget_remove(PGconn *conn, const char *name_or_id, bool by_id, const char *tenant,
		   const char *key_tenant, const char *key_project, long long *id, int *status,
		   char *err, size_t errlen) __attribute__((warn_unused_result));

/* Every budget inside the scope (NULL: no restriction) with its status now,
 * ordered by name; columns are enum budget_col. full_webhook false shows a
 * webhook as its scheme and host only (the rest is often the credential).
 * NULL with err and *status on failure. The caller owns the result. */
PGresult *budget_status(PGconn *conn, const char *key_tenant, const char *key_project,
			bool full_webhook, int *status, char *err, size_t errlen);

/* {"as_of":"...","budgets":[...]} for a budget_status result. */
void budget_render_json(const PGresult *res, struct buf *out);

/* The status query as SQL text, for budget_eval.c's claim statement: it reads
 * $1 tenant and $2 project (NULL: all), $3 a text[] of tenants whose budgets
 * (and the tenant-less ones) to take (NULL: all) and $4 whether the doc shows
 * the whole webhook URL, and yields the enum budget_col columns
 * plus ps (period start), crossed (int[]), webhook_url, spent and pct. */
extern const char budget_status_cte[];

#endif
