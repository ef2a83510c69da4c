/* Re-rating as audited adjustments (see billing_rerate.h). The card's price
 * of each row comes from the rate card's own SQL (vgc_rate_card_rate, schema
 * 0014); the deltas are summed per (tenant, UTC day, project, provider,
 * model) in PostgreSQL, exact numeric throughout. */
#include "billing_rerate.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "timefmt.h"

void billing_rerate_init(struct billing_rerate *r)
{
	memset(r, 0, sizeof(*r));
	r->dry_run = true;
	snprintf(r->ran_by, sizeof(r->ran_by), "cli");
}

void billing_rerate_release(struct billing_rerate *r)
{
	free(r->tenant);
	free(r->reason);
	free(r->idem);
	r->tenant = r->reason = r->idem = NULL;
}

static int billing_rerate_time(const char *name, const char *v, long long *us, char *err,
			       size_t errlen)
{
	bool date_only;

	if (!v) {
		snprintf(err, errlen, "%s: required (YYYY-MM-DD or RFC 3339)", name);
		return 400;
	}
	if (!timefmt_parse(v, us, &date_only) || *us < 0 || *us > 253402300800000000LL) {
		snprintf(err, errlen,
			 "%s: \"%.64s\" is not a date (YYYY-MM-DD) or an RFC 3339 timestamp "
			 "between 1970 and 9999",
			 name, v);
		return 400;
	}
	return 200;
}

int billing_rerate_range(struct billing_rerate *r, const char *from, const char *to, char *err,
			 size_t errlen)
{
	int st = billing_rerate_time("from", from, &r->from_us, err, errlen);

	if (st == 200)
		st = billing_rerate_time("to", to, &r->to_us, err, errlen);
	if (st == 200 && r->from_us >= r->to_us) {
		snprintf(err, errlen, "from, to: from must be before to (the range is [from, to))");
		st = 400;
	}
	return st;
}

/* A string member: NULL when absent or null; 400 when another type or too long. */
static int billing_rerate_text(const cJSON *root, const char *name, char **out, char *err,
			       size_t errlen)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, name);

	*out = NULL;
	if (!v || cJSON_IsNull(v))
		return 200;
	if (!cJSON_IsString(v) || !*v->valuestring ||
	    strlen(v->valuestring) > BILLING_RERATE_MAX_TEXT) {
		snprintf(err, errlen, "%s: expected a non-empty string of at most %d bytes", name,
			 BILLING_RERATE_MAX_TEXT);
		return 400;
	}
	if (!(*out = strdup(v->valuestring))) {
		snprintf(err, errlen, "out of memory");
		return 503;
	}
	return 200;
}

int billing_rerate_parse(struct billing_rerate *r, const char *body, size_t len, char *err,
			 size_t errlen)
{
	static const char *const known[] = { "from", "to", "tenant", "dry_run", "reason", NULL };
	cJSON *root = cJSON_ParseWithLength(body, len);
	const cJSON *dry;
	char *from = NULL, *to = NULL;
	int st = 200;

	if (!root || !cJSON_IsObject(root)) {
		snprintf(err, errlen,
			 "body: expected a JSON object {\"from\",\"to\",\"tenant\"?,\"dry_run\"?,"
			 "\"reason\"?}");
		cJSON_Delete(root);
		return 400;
	}
	for (const cJSON *m = root->child; m && st == 200; m = m->next) {
		int k = 0;

		while (known[k] && strcmp(known[k], m->string))
			k++;
		if (!known[k]) {
			snprintf(
				err, errlen,
				"%.64s: unknown member; expected from, to, tenant, dry_run, reason",
				m->string);
			st = 400;
		}
	}
	dry = cJSON_GetObjectItemCaseSensitive(root, "dry_run");
	if (st == 200 && dry && !cJSON_IsBool(dry)) {
		snprintf(err, errlen, "dry_run: expected true or false");
		st = 400;
	}
	if (st == 200 && dry)
		r->dry_run = cJSON_IsTrue(dry);
	if (st == 200)
		st = billing_rerate_text(root, "from", &from, err, errlen);
	if (st == 200)
		st = billing_rerate_text(root, "to", &to, err, errlen);
	if (st == 200)
		st = billing_rerate_range(r, from, to, err, errlen);
	if (st == 200)
		st = billing_rerate_text(root, "tenant", &r->tenant, err, errlen);
	if (st == 200)
		st = billing_rerate_text(root, "reason", &r->reason, err, errlen);
	free(from);
	free(to);
	cJSON_Delete(root);
	return st;
}

/* The rows of the range that the current card rates, with their delta, per
 * adjustment key. Rows the card cannot rate now (unrated) are left out: their
 * stored price stands. A stored NULL (unrated then) counts as 0. */
static const char billing_rerate_deltas_sql[] =
	"CREATE TEMP TABLE vgc_rerate_deltas ON COMMIT DROP AS"
	" SELECT c.tenant_id, (c.ts AT TIME ZONE 'UTC')::date AS day, c.project, c.provider,"
	" c.model_id, count(*) AS rows, sum(p.price - coalesce(c.rated_price_usd, 0)) AS delta"
	" FROM cost_rows c CROSS JOIN LATERAL vgc_rate_card_rate(c.tenant_id, c.modality,"
	" c.provider, c.model_id, c.cost_usd, c.book_cost_usd, c.input_units, c.output_units) p"
	" WHERE c.ts >= $1::timestamptz AND c.ts < $2::timestamptz"
	" AND ($3::text IS NULL OR c.tenant_id = $3::text) AND p.price IS NOT NULL"
	" GROUP BY 1, 2, 3, 4, 5";

/* Records the run with its answer; returns run_id and the answer. */
static const char billing_rerate_record_sql[] =
	"WITH t AS (SELECT tenant_id, sum(rows) AS rows, sum(delta) AS delta"
	" FROM vgc_rerate_deltas GROUP BY tenant_id),"
	" id AS (SELECT nextval(pg_get_serial_sequence('billing_rerate_runs', 'run_id')) AS run_id),"
	" a AS (SELECT id.run_id, json_build_object('run', id.run_id, 'dry_run', $4::bool,"
	" 'tenants', coalesce((SELECT json_agg(json_build_object('tenant_id', tenant_id,"
	" 'rows', rows, 'delta_usd', delta::text) ORDER BY tenant_id NULLS FIRST) FROM t),"
	" '[]'))::text AS answer FROM id)"
	" INSERT INTO billing_rerate_runs (run_id, range_from, range_to, tenant_id, dry_run,"
	" ran_by, reason, idempotency_key, rows, delta_usd, answer)"
	" SELECT a.run_id, $1::timestamptz, $2::timestamptz, $3::text, $4::bool, $5::text,"
	" $6::text, $7::text, coalesce((SELECT sum(rows) FROM t), 0),"
	" coalesce((SELECT sum(delta) FROM t), 0), a.answer FROM a"
	" RETURNING run_id, answer";

static const char billing_rerate_adjust_sql[] =
	"INSERT INTO billing_adjustments (run_id, tenant_id, day, project, provider, model_id,"
	" rows, delta_usd) SELECT $1::bigint, tenant_id, day, project, provider, model_id, rows,"
	" delta FROM vgc_rerate_deltas WHERE delta <> 0";

int billing_rerate_run(PGconn *conn, const struct billing_rerate *r, struct buf *out, char *err,
		       size_t errlen)
{
	const char *idem = r->dry_run ? NULL : r->idem; /* a dry run adds nothing to repeat */
	char from[40], to[40];
	const char *p[7] = {
		from, to, r->tenant, r->dry_run ? "t" : "f", r->ran_by, r->reason, idem
	};
	PGresult *res;
	int status = 500;

	timefmt_format(r->from_us, from, sizeof(from));
	timefmt_format(r->to_us, to, sizeof(to));
	if (!(res = db_query(conn, "BEGIN", 0, NULL, &status, err, errlen)))
		return status;
	PQclear(res);
	if (idem) {
		/* One commit per key at a time; a repeat finds the first run. */
		res = db_query(conn, "SELECT pg_advisory_xact_lock(hashtext('vgc_rerate:' || $1))",
			       1, &idem, &status, err, errlen);
		if (!res)
			goto fail;
		PQclear(res);
		res = db_query(conn,
			       "SELECT answer, range_from = $2::timestamptz AND range_to ="
			       " $3::timestamptz AND tenant_id IS NOT DISTINCT FROM $4::text"
			       " FROM billing_rerate_runs WHERE idempotency_key = $1",
			       4, (const char *const[]){ idem, from, to, r->tenant }, &status, err,
			       errlen);
		if (!res)
			goto fail;
		if (PQntuples(res) == 1) {
			bool same = PQgetvalue(res, 0, 1)[0] == 't';

			if (same)
				buf_puts(out, PQgetvalue(res, 0, 0));
			else
				snprintf(err, errlen,
					 "Idempotency-Key: already used by a re-rating of another "
					 "range or tenant");
			PQclear(res);
			db_rollback(conn);
			return same ? (out->over ? 503 : 200) : 409;
		}
		PQclear(res);
	}
	if (!(res = db_query(conn, billing_rerate_deltas_sql, 3, p, &status, err, errlen)))
		goto fail;
	PQclear(res);
	if (!(res = db_query(conn, billing_rerate_record_sql, 7, p, &status, err, errlen)))
		goto fail;
	buf_puts(out, PQgetvalue(res, 0, 1));
	if (!r->dry_run) {
		const char *run = PQgetvalue(res, 0, 0);
		PGresult *ins =
			db_query(conn, billing_rerate_adjust_sql, 1, &run, &status, err, errlen);
		if (!ins) {
			PQclear(res);
			goto fail;
		}
		PQclear(ins);
	}
	PQclear(res);
	if (!(res = db_query(conn, "COMMIT", 0, NULL, &status, err, errlen)))
		goto fail;
	PQclear(res);
	return out->over ? 503 : 200;
fail:
	db_rollback(conn);
	buf_reset(out);
	return status;
}

int billing_rerate_list(PGconn *conn, int limit, struct buf *out, char *err, size_t errlen)
{
	char lim[16];
	const char *p[1] = { lim };
	int status = 500;
	PGresult *res;

	snprintf(lim, sizeof(lim), "%d", limit);
	res = db_query(
		conn,
		"SELECT json_build_object('runs', coalesce(json_agg(json_build_object("
		"'run', run_id, 'created_at', to_char(created_at AT TIME ZONE 'UTC',"
		" 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'from', to_char(range_from AT TIME ZONE 'UTC',"
		" 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'to', to_char(range_to AT TIME ZONE 'UTC',"
		" 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), 'tenant', tenant_id, 'dry_run', dry_run,"
		" 'ran_by', ran_by, 'reason', reason, 'rows', rows, 'delta_usd', delta_usd::text)"
		" ORDER BY run_id DESC), '[]'))::text FROM (SELECT * FROM billing_rerate_runs"
		" ORDER BY run_id DESC LIMIT $1::int) r",
		1, p, &status, err, errlen);
	if (!res)
		return status;
	buf_puts(out, PQgetvalue(res, 0, 0));
	PQclear(res);
	return out->over ? 503 : 200;
}
