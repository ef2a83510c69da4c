/* The budget model: validation of a budget's fields, the SQL that stores them,
 * and the one status query (spend, percent, forecast, state) that the HTTP
 * API, the CLI, the metrics and the alert claims all read. */
#include "budget.h"

#include <ctype.h>
#include <event2/http.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "db.h"
#include "rollup_params.h"
#include "row.h"

#define BUDGET_ISO "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'"

/* Spend is summed over the live hours (cost_rollup_hourly and the deltas not
 * yet folded into it, schema/0022), exact numeric, for the calendar
 * period (UTC) holding now. The forecast is the spend plus the average hourly
 * spend of the current hour and the 23 before it (fewer when the period began
 * later) times the whole hours left after the current one; it depends only on
 * the current hour and the data, so the answer is stable within an hour. */
const char budget_status_cte[] =
	"SELECT g.id, g.name,"
	" json_build_object('id', g.id, 'name', g.name, 'scope', json_strip_nulls(json_build_object("
	"  'tenant', g.tenant_id, 'project', g.project, 'agent', g.agent_id,"
	"  'provider', g.provider, 'model', g.model_id)),"
	"  'period', g.period, 'period_start', to_char(g.ps_u, " BUDGET_ISO "),"
	"  'period_end', to_char(g.pe_u, " BUDGET_ISO "), 'limit_usd', g.limit_usd::text,"
	"  'spent_usd', g.spent::text, 'percent', g.pct, 'forecast_usd', g.forecast::text,"
	"  'state', g.state, 'thresholds', g.thresholds, 'thresholds_crossed', g.crossed,"
	"  'webhook_url', CASE WHEN $4::bool THEN g.webhook_url ELSE regexp_replace("
	"   substring(g.webhook_url FROM '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*'),"
	"   '//([^@/]*@)?(\\[[^]]*\\]|[^:]*)(:[0-9]*)?$', '//\\2') END) AS doc,"
	" (g.spent / g.limit_usd)::float8 AS spent_ratio,"
	" (g.forecast / g.limit_usd)::float8 AS forecast_ratio,"
	" g.period, g.limit_usd::text AS limit_text, g.spent::text AS spent_text,"
	" g.pct::text AS pct_text, g.forecast::text AS forecast_text, g.state,"
	" coalesce(nullif(concat_ws(' ', 'tenant=' || g.tenant_id, 'project=' || g.project,"
	"  'agent=' || g.agent_id, 'provider=' || g.provider, 'model=' || g.model_id), ''), '*')"
	"  AS scope,"
	" to_char(g.h0u, " BUDGET_ISO ") AS as_of,"
	" g.ps, g.crossed, g.webhook_url, g.spent, g.pct"
	" FROM (SELECT f.*, CASE WHEN f.spent >= f.limit_usd THEN 'over'"
	"   WHEN f.forecast > f.limit_usd THEN 'forecast_over'"
	"   WHEN EXISTS (SELECT 1 FROM unnest(f.crossed) c WHERE c < 100) THEN 'warn'"
	"   ELSE 'ok' END AS state"
	"  FROM (SELECT s.*, round(s.spent + s.recent * s.left_h / s.n_h, 6) AS forecast,"
	"    round(s.spent * 100 / s.limit_usd, 2) AS pct,"
	"    ARRAY(SELECT t FROM unnest(s.thresholds) t"
	"     WHERE s.spent * 100 >= t * s.limit_usd ORDER BY t) AS crossed"
	"   FROM (SELECT b.*, w.ps_u, w.pe_u, w.h0u, w.ps_u AT TIME ZONE 'UTC' AS ps,"
	"     coalesce(x.spent, 0) AS spent, coalesce(x.recent, 0) AS recent,"
	"     (extract(epoch FROM w.h0u - w.ws_u) / 3600)::int + 1 AS n_h,"
	"     greatest((extract(epoch FROM w.pe_u - w.h0u) / 3600)::int - 1, 0) AS left_h"
	"    FROM budgets b"
	"    CROSS JOIN LATERAL (SELECT p.ps_u, p.pe_u, p.h0u,"
	"      greatest(p.ps_u, p.h0u - interval '23 hours') AS ws_u"
	"     FROM (SELECT date_trunc(b.period, now() AT TIME ZONE 'UTC') AS ps_u,"
	"       date_trunc(b.period, now() AT TIME ZONE 'UTC') + CASE b.period"
	"        WHEN 'day' THEN interval '1 day' WHEN 'week' THEN interval '7 days'"
	"        ELSE interval '1 month' END AS pe_u,"
	"       date_trunc('hour', now() AT TIME ZONE 'UTC') AS h0u) p) w"
	"    LEFT JOIN LATERAL (SELECT sum(h.cost_usd) AS spent,"
	"      sum(h.cost_usd) FILTER (WHERE h.hour >= w.ws_u AT TIME ZONE 'UTC') AS recent"
	"     FROM vgc_rollup_hourly_live h"
	"     WHERE h.hour >= w.ps_u AT TIME ZONE 'UTC' AND h.hour < w.pe_u AT TIME ZONE 'UTC'"
	"      AND (b.tenant_id IS NULL OR h.tenant_id = b.tenant_id)"
	"      AND (b.project IS NULL OR h.project = b.project)"
	"      AND (b.agent_id IS NULL OR h.agent_id = b.agent_id)"
	"      AND (b.provider IS NULL OR h.provider = b.provider)"
	"      AND (b.model_id IS NULL OR h.model_id = b.model_id)) x ON true"
	"    WHERE ($1::text IS NULL OR b.tenant_id = $1::text)"
	"     AND ($2::text IS NULL OR b.project = $2::text)"
	"     AND ($3::text[] IS NULL OR b.tenant_id IS NULL OR b.tenant_id = ANY ($3::text[]))"
	"   ) s) f) g";

bool budget_name_ok(const char *name)
{
	size_t n = name ? strlen(name) : 0;

	if (n == 0 || n > BUDGET_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && !strchr("-_.", name[i]))
			return false;
	return true;
}

bool budget_thresholds_parse(struct budget_spec *spec, const char *text, char *err, size_t errlen)
{
	const char *p = text;

	spec->nthresholds = 0;
	while (*p) {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p || !isdigit((unsigned char)*p) || (*end && *end != ',')) {
			snprintf(err, errlen,
				 "thresholds \"%.64s\": expected integer percents separated by "
				 "commas, like 50,80,100",
				 text);
			return false;
		}
		if (spec->nthresholds == BUDGET_MAX_THRESHOLDS) {
			snprintf(err, errlen, "thresholds \"%.64s\": at most %d", text,
				 BUDGET_MAX_THRESHOLDS);
			return false;
		}
		spec->thresholds[spec->nthresholds++] = v > 100000 ? 100000 : (int)v;
		p = *end ? end + 1 : end;
	}
	if (spec->nthresholds == 0) {
		snprintf(err, errlen, "thresholds \"\": give at least one percent");
		return false;
	}
	return true;
}

/* A scope part: 1..640 bytes without control characters. */
static bool budget_part_ok(const char *what, const char *v, char *err, size_t errlen)
{
	size_t n;

	if (!v)
		return true;
	n = strlen(v);
	if (!row_utf8_valid(v, n)) {
		snprintf(err, errlen, "%s: not valid UTF-8", what);
		return false;
	}
	if (n == 0 || n > 640) {
		snprintf(err, errlen, "%s \"%.*s\": must be 1 to 640 bytes", what,
			 rollup_params_clip(v, 64), v);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f) {
			snprintf(err, errlen, "%s: control characters are not allowed", what);
			return false;
		}
	}
	return true;
}

/* Decimal text: digits, at most one '.', at most 20 digits before it and 12
 * after, and above zero. */
static bool budget_amount_ok(const char *v, char *err, size_t errlen)
{
	size_t i = 0, before = 0, after = 0;
	bool nonzero = false;

	if (!v) {
		snprintf(err, errlen, "limit_usd: required (a decimal amount such as 250.00)");
		return false;
	}
	for (; isdigit((unsigned char)v[i]); i++, before++)
		nonzero |= v[i] != '0';
	if (v[i] == '.')
		for (i++; isdigit((unsigned char)v[i]); i++, after++)
			nonzero |= v[i] != '0';
	if (v[i] || before == 0 || before > 20 || after > 12 || (v[before] == '.' && after == 0)) {
		snprintf(
			err, errlen,
			"limit_usd \"%.64s\": expected a decimal amount such as 250.00 (at most 20 "
			"digits before the point and 12 after)",
			v);
		return false;
	}
	if (!nonzero) {
		snprintf(err, errlen, "limit_usd \"%.64s\": must be above zero", v);
		return false;
	}
	return true;
}

static bool budget_webhook_ok(const char *url, const char *secret, char *err, size_t errlen)
{
	struct evhttp_uri *u;
	const char *scheme;
	bool ok;

	if (!url && !secret)
		return true;
	if (!url) {
		snprintf(err, errlen, "webhook_secret: given without webhook");
		return false;
	}
	if (!secret || !secret[0] || strlen(secret) > 256) {
		snprintf(err, errlen,
			 "webhook_secret: required with webhook, 1 to 256 bytes (the HMAC key)");
		return false;
	}
	if (strlen(url) > 2048 || !(u = evhttp_uri_parse(url))) {
		snprintf(err, errlen, "webhook \"%.64s\": not a URL", url);
		return false;
	}
	scheme = evhttp_uri_get_scheme(u);
	ok = scheme && (strcmp(scheme, "http") == 0 || strcmp(scheme, "https") == 0) &&
	     evhttp_uri_get_host(u) && evhttp_uri_get_host(u)[0];
	evhttp_uri_free(u);
	if (!ok)
		snprintf(err, errlen,
			 "webhook \"%.64s\": expected http://HOST/... or https://HOST/...", url);
	return ok;
}

bool budget_spec_check(const struct budget_spec *spec, char *err, size_t errlen)
{
	if (!budget_name_ok(spec->name)) {
		snprintf(err, errlen, "name \"%.64s\": 1 to %d letters, digits, '-', '_' or '.'",
			 spec->name ? spec->name : "", BUDGET_NAME_MAX);
		return false;
	}
	if (!spec->period ||
	    (strcmp(spec->period, "day") != 0 && strcmp(spec->period, "week") != 0 &&
	     strcmp(spec->period, "month") != 0)) {
		snprintf(err, errlen, "period \"%.64s\": expected day, week or month",
			 spec->period ? spec->period : "");
		return false;
	}
	if (!budget_amount_ok(spec->limit_usd, err, errlen) ||
	    !budget_part_ok("tenant", spec->tenant, err, errlen) ||
	    !budget_part_ok("project", spec->project, err, errlen) ||
	    !budget_part_ok("agent", spec->agent, err, errlen) ||
	    !budget_part_ok("provider", spec->provider, err, errlen) ||
	    !budget_part_ok("model", spec->model, err, errlen))
		return false;
	for (int i = 0; i < spec->nthresholds; i++) {
		if (spec->thresholds[i] < 1 || spec->thresholds[i] > 1000) {
			snprintf(err, errlen, "thresholds %d: each must be 1 to 1000 percent",
				 spec->thresholds[i]);
			return false;
		}
		for (int k = 0; k < i; k++) {
			if (spec->thresholds[k] == spec->thresholds[i]) {
				snprintf(err, errlen, "thresholds %d: given twice",
					 spec->thresholds[i]);
				return false;
			}
		}
	}
	return budget_webhook_ok(spec->webhook, spec->webhook_secret, err, errlen);
}

/* Runs a statement with text parameters; on failure sets err and *status. */
static PGresult *budget_exec(PGconn *conn, const char *sql, int n, const char *const *params,
			     ExecStatusType want, int *status, char *err, size_t errlen)
{
	PGresult *res = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);

	if (PQresultStatus(res) == want) {
		*status = 200;
		return res;
	}
	db_result_error(conn, res, err, errlen);
	*status = db_fault_status(db_classify(conn, res));
	PQclear(res);
	return NULL;
}

/* Runs a statement without parameters' results; false with err on failure. */
static bool budget_command(PGconn *conn, const char *sql, int *status, char *err, size_t errlen)
{
	PGresult *res = budget_exec(conn, sql, 0, NULL, PGRES_COMMAND_OK, status, err, errlen);

	PQclear(res);
	return res != NULL;
}

/* The upsert's statements, inside budget_upsert's transaction. */
static bool budget_upsert_tx(PGconn *conn, const struct budget_spec *spec, const char *key_tenant,
			     const char *key_project, int max_per_tenant, long long *id,
			     bool *created, int *status, char *err, size_t errlen)
{
	char th[BUDGET_MAX_THRESHOLDS * 8 + 4];
	size_t len = 0;
	const char *params[13];
	PGresult *res;

	params[0] = spec->tenant;
	params[1] = spec->name;
	/* One tenant's creations queue behind each other, so the quota holds. */
	res = budget_exec(conn,
			  "SELECT pg_advisory_xact_lock(hashtext('vgcollector.budgets'),"
			  " hashtext(coalesce($1::text, '')))",
			  1, params, PGRES_TUPLES_OK, status, err, errlen);
	if (!res)
		return false;
	PQclear(res);
	if (max_per_tenant > 0) {
		res = budget_exec(
			conn,
			"SELECT count(*), coalesce(bool_or(name = $2), false) FROM budgets"
			" WHERE tenant_id = $1 OR ($1::text IS NULL AND tenant_id IS NULL)",
			2, params, PGRES_TUPLES_OK, status, err, errlen);
		if (!res)
			return false;
		if (PQgetvalue(res, 0, 1)[0] != 't' &&
		    strtoll(PQgetvalue(res, 0, 0), NULL, 10) >= max_per_tenant) {
			snprintf(err, errlen,
				 "%s already has %s budgets, the most budgets_max_per_tenant (%d) "
				 "allows; remove one or raise the quota",
				 spec->tenant ? "this tenant" : "the tenant-less scope",
				 PQgetvalue(res, 0, 0), max_per_tenant);
			*status = 429;
			PQclear(res);
			return false;
		}
		PQclear(res);
	}
	len += (size_t)snprintf(th, sizeof(th), "{");
	for (int i = 0; i < spec->nthresholds; i++)
		len += (size_t)snprintf(th + len, sizeof(th) - len, "%s%d", i ? "," : "",
					spec->thresholds[i]);
	snprintf(th + len, sizeof(th) - len, "}");
	params[0] = spec->name;
	params[1] = spec->tenant;
	params[2] = spec->project;
	params[3] = spec->agent;
	params[4] = spec->provider;
	params[5] = spec->model;
	params[6] = spec->period;
	params[7] = spec->limit_usd;
	params[8] = spec->nthresholds ? th : "{50,80,100}";
	params[9] = spec->webhook;
	params[10] = spec->webhook_secret;
	params[11] = key_tenant;
	params[12] = key_project;
	res = budget_exec(
		conn,
		"INSERT INTO budgets (name, tenant_id, project, agent_id, provider, model_id, period,"
		" limit_usd, thresholds, webhook_url, webhook_secret)"
		" VALUES ($1, $2, $3, $4, $5, $6, $7, $8::numeric, $9::int[], $10, $11)"
		" ON CONFLICT (tenant_id, name) DO UPDATE SET"
		" project = EXCLUDED.project, agent_id = EXCLUDED.agent_id,"
		" provider = EXCLUDED.provider, model_id = EXCLUDED.model_id,"
		" period = EXCLUDED.period, limit_usd = EXCLUDED.limit_usd,"
		" thresholds = EXCLUDED.thresholds, webhook_url = EXCLUDED.webhook_url,"
		" webhook_secret = EXCLUDED.webhook_secret, updated_at = now()"
		" WHERE ($12::text IS NULL OR budgets.tenant_id = $12::text)"
		" AND ($13::text IS NULL OR budgets.project = $13::text)"
		" RETURNING id, xmax = 0",
		13, params, PGRES_TUPLES_OK, status, err, errlen);
	if (!res)
		return false;
	if (PQntuples(res) != 1) {
		snprintf(err, errlen, "budget \"%s\" exists outside this key's scope", spec->name);
		*status = 403;
		PQclear(res);
		return false;
	}
	*id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	*created = PQgetvalue(res, 0, 1)[0] == 't';
	PQclear(res);
	/* A changed limit or scope changes the budget's status: evaluate it. */
	params[0] = spec->tenant;
	res = budget_exec(
		conn,
		"INSERT INTO budget_dirty (tenant) VALUES (coalesce($1::text, ''))"
		" ON CONFLICT (tenant) DO UPDATE SET xid = EXCLUDED.xid, marked_at = now()",
		1, params, PGRES_COMMAND_OK, status, err, errlen);
	PQclear(res);
	return res != NULL;
}

bool budget_upsert(PGconn *conn, const struct budget_spec *spec, const char *key_tenant,
		   const char *key_project, int max_per_tenant, long long *id, bool *created,
		   int *status, char *err, size_t errlen)
{
	int ignore;
	char ignore_err[8];

	if (!budget_command(conn, "BEGIN", status, err, errlen))
		return false;
	if (!budget_upsert_tx(conn, spec, key_tenant, key_project, max_per_tenant, id, created,
			      status, err, errlen)) {
		if (!budget_command(conn, "ROLLBACK", &ignore, ignore_err, sizeof(ignore_err)))
			*status = 503; /* the connection is gone; the pool resets it */
		return false;
	}
	return budget_command(conn, "COMMIT", status, err, errlen);
}

bool budget_remove(PGconn *conn, const char *name_or_id, bool by_id, const char *tenant,
		   const char *key_tenant, const char *key_project, long long *id, int *status,
		   char *err, size_t errlen)
{
	const char *params[5] = { name_or_id, key_tenant, key_project, tenant, by_id ? "t" : "f" };
	/* The tenant is marked changed, so evaluations drop the budget's gauges. */
	PGresult *res = budget_exec(
		conn,
		"WITH m AS (SELECT id FROM budgets"
		" WHERE CASE WHEN $5::bool THEN id::text = $1 ELSE name = $1 END"
		" AND ($2::text IS NULL OR tenant_id = $2::text)"
		" AND ($3::text IS NULL OR project = $3::text)"
		" AND ($4::text IS NULL OR tenant_id = $4::text)),"
		" d AS (DELETE FROM budgets WHERE id IN (SELECT id FROM m)"
		" AND (SELECT count(*) FROM m) = 1 RETURNING id, tenant_id),"
		" mk AS (INSERT INTO budget_dirty (tenant) SELECT coalesce(tenant_id, '') FROM d"
		" ON CONFLICT (tenant) DO UPDATE SET xid = EXCLUDED.xid, marked_at = now())"
		" SELECT (SELECT count(*) FROM m), (SELECT id FROM d)",
		5, params, PGRES_TUPLES_OK, status, err, errlen);
	long long n;

	if (!res)
		return false;
	n = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	if (n > 1) {
		snprintf(err, errlen,
			 "budget name \"%.64s\" is used by %lld tenants: name the tenant "
			 "(tenant=T, or --tenant T)",
			 name_or_id, n);
		*status = 409;
		PQclear(res);
		return false;
	}
	if (n == 0 || PQgetisnull(res, 0, 1)) {
		snprintf(err, errlen, "no budget %s \"%.64s\"%s", by_id ? "with id" : "named",
			 name_or_id, key_tenant || key_project ? " inside this key's scope" : "");
		*status = 404;
		PQclear(res);
		return false;
	}
	*id = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	return true;
}

PGresult *budget_status(PGconn *conn, const char *key_tenant, const char *key_project,
			bool full_webhook, int *status, char *err, size_t errlen)
{
	const char *params[4] = { key_tenant, key_project, NULL, full_webhook ? "t" : "f" };
	struct buf sql;
	PGresult *res;

	buf_init(&sql, 0);
	buf_puts(&sql, budget_status_cte);
	buf_puts(&sql, " ORDER BY g.name, g.id");
	if (sql.over) {
		buf_release(&sql);
		snprintf(err, errlen, "out of memory");
		*status = 503;
		return NULL;
	}
	res = budget_exec(conn, sql.data, 4, params, PGRES_TUPLES_OK, status, err, errlen);
	buf_release(&sql);
	return res;
}

void budget_render_json(const PGresult *res, struct buf *out)
{
	int n = PQntuples(res);

	buf_puts(out, "{\"as_of\":");
	if (n > 0)
		buf_printf(out, "\"%s\"", PQgetvalue(res, 0, BUDGET_COL_AS_OF));
	else
		buf_puts(out, "null");
	buf_puts(out, ",\"budgets\":[");
	for (int r = 0; r < n; r++) {
		buf_puts(out, r ? "," : "");
		buf_puts(out, PQgetvalue(res, r, BUDGET_COL_DOC));
	}
	buf_puts(out, "]}");
}
