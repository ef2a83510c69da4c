/* Editing and reading the rate card (see rate_card_admin.h). Every write runs
 * in one transaction that first locks the card's one row (so writers take
 * turns and expected_revision is checked against what they replace); the
 * card's triggers bump its revision (schema/0014_rate_card.sql). */
#include "rate_card_admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db.h"
#include "row.h"

static const char *const rate_card_units[] = {
	"minute", "second", "char", "1k_char", "token", "1k_token", "1m_token", "request", NULL,
};
#define RATE_CARD_UNITS "minute, second, char, 1k_char, token, 1k_token, 1m_token, request"

bool rate_card_decimal(const char *field, const char *text, char out[RATE_CARD_DECIMAL_MAX + 1],
		       char *err, size_t errlen)
{
	size_t n = strlen(text), digits = 0, dots = 0;

	if (text[0] == '-') {
		snprintf(err, errlen, "%s \"%.40s\": must not be negative", field, text);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (text[i] >= '0' && text[i] <= '9')
			digits++;
		else if (text[i] == '.' && i > 0 && i + 1 < n)
			dots++;
		else
			dots = 2;
	}
	if (!digits || dots > 1 || n > RATE_CARD_DECIMAL_MAX) {
		snprintf(err, errlen,
			 "%s \"%.40s\": must be a decimal number >= 0 such as \"1.3\" or "
			 "\"0.006\" (at most %d characters, no exponent)",
			 field, text, RATE_CARD_DECIMAL_MAX);
		return false;
	}
	memcpy(out, text, n + 1);
	return true;
}

bool rate_card_text(const char *field, const char *text, char *err, size_t errlen)
{
	size_t n = strlen(text);

	if (n == 0 || n > RATE_CARD_TEXT_MAX || !row_utf8_valid(text, n)) {
		snprintf(err, errlen, "%s: must be 1 to %d bytes of UTF-8", field,
			 RATE_CARD_TEXT_MAX);
		return false;
	}
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f) {
			snprintf(err, errlen, "%s: holds a control character", field);
			return false;
		}
	return true;
}

bool rate_rule_check(const struct rate_rule *r, char *err, size_t errlen)
{
	bool unit_ok = false;

	if (r->modality && strcmp(r->modality, "stt") != 0 && strcmp(r->modality, "llm") != 0 &&
	    strcmp(r->modality, "tts") != 0) {
		snprintf(err, errlen, "modality \"%.32s\": must be \"stt\", \"llm\" or \"tts\"",
			 r->modality);
		return false;
	}
	if (r->markup[0] && r->fixed[0]) {
		snprintf(err, errlen,
			 "markup and fixed: a rule is either cost_plus (markup, optional basis) or "
			 "fixed (fixed and unit), not both");
		return false;
	}
	if (!r->markup[0] && !r->fixed[0]) {
		snprintf(err, errlen,
			 "markup or fixed: a rule needs one (markup for cost_plus, fixed and unit "
			 "for fixed)");
		return false;
	}
	if (r->basis && strcmp(r->basis, "book") != 0 && strcmp(r->basis, "recorded") != 0) {
		snprintf(err, errlen, "basis \"%.32s\": must be \"book\" or \"recorded\"",
			 r->basis);
		return false;
	}
	if (r->fixed[0] && r->basis) {
		snprintf(err, errlen, "basis: only a markup (cost_plus) rule takes a basis");
		return false;
	}
	if (r->markup[0] && r->unit) {
		snprintf(err, errlen, "unit: only a fixed rule takes a unit");
		return false;
	}
	if (r->fixed[0] && !r->unit) {
		snprintf(err, errlen, "unit: a fixed rule needs one of " RATE_CARD_UNITS);
		return false;
	}
	for (int i = 0; r->unit && rate_card_units[i]; i++)
		unit_ok = unit_ok || strcmp(r->unit, rate_card_units[i]) == 0;
	if (r->unit && !unit_ok) {
		snprintf(err, errlen, "unit \"%.32s\": must be one of " RATE_CARD_UNITS, r->unit);
		return false;
	}
	return true;
}

#define RATE_CARD_RULE_JSON                                                                        \
	"json_build_object('rule_id', r.rule_id, 'modality', r.modality, 'provider', r.provider,"  \
	" 'model', r.model, 'tenant', r.tenant_id, 'plan', r.plan, 'kind', r.kind,"                \
	" 'markup', trim_scale(r.markup)::text, 'unit_price_usd', trim_scale(r.fixed)::text,"      \
	" 'unit', r.unit, 'basis', CASE WHEN r.kind = 'cost_plus' THEN r.basis END,"               \
	" 'rule', vgc_rate_card_token(r, c.default_markup))"

int rate_card_render(PGconn *conn, bool rules_only, struct buf *out, char *err, size_t errlen)
{
	int status = 500;
	PGresult *res = db_query(
		conn,
		rules_only
			? "SELECT json_build_object('revision', c.revision, 'rules',"
			  " coalesce((SELECT json_agg(" RATE_CARD_RULE_JSON " ORDER BY r.rule_id)"
			  " FROM rate_card_rules r), '[]'))::text FROM rate_card c"
			: "SELECT json_build_object('revision', c.revision, 'default_markup',"
			  " trim_scale(c.default_markup)::text, 'rules',"
			  " coalesce((SELECT json_agg(" RATE_CARD_RULE_JSON " ORDER BY r.rule_id)"
			  " FROM rate_card_rules r), '[]'))::text FROM rate_card c",
		0, NULL, &status, err, errlen);

	if (!res)
		return status;
	if (PQntuples(res) != 1) {
		snprintf(err, errlen, "the rate_card row is missing");
		PQclear(res);
		return 500;
	}
	buf_puts(out, PQgetvalue(res, 0, 0));
	PQclear(res);
	if (out->over) {
		snprintf(err, errlen, "out of memory");
		return 503;
	}
	return 200;
}

/* BEGIN, and the card locked at expected (< 0: any) revision. 200, or 409
 * or 503/500 with err (rolled back). */
static int rate_card_begin(PGconn *conn, long long expected, char *err, size_t errlen)
{
	int status = 503;
	PGresult *res;
	long long have;

	if (!db_exec(conn, "BEGIN", err, errlen))
		return 503;
	res = db_query(conn, "SELECT revision FROM rate_card FOR UPDATE", 0, NULL, &status, err,
		       errlen);
	if (!res) {
		db_rollback(conn);
		return status;
	}
	have = PQntuples(res) == 1 ? strtoll(PQgetvalue(res, 0, 0), NULL, 10) : -1;
	PQclear(res);
	if (expected >= 0 && have != expected) {
		snprintf(err, errlen,
			 "expected_revision %lld: the rate card is at revision %lld (it changed "
			 "since it was read); read it again and retry",
			 expected, have);
		db_rollback(conn);
		return 409;
	}
	return 200;
}

/* The card's revision after the write, and COMMIT. */
static int rate_card_commit(PGconn *conn, long long *revision, char *err, size_t errlen)
{
	int status = 503;
	PGresult *res =
		db_query(conn, "SELECT revision FROM rate_card", 0, NULL, &status, err, errlen);

	if (!res) {
		db_rollback(conn);
		return status;
	}
	*revision = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	if (!db_exec(conn, "COMMIT", err, errlen))
		return 503;
	return 200;
}

int rate_card_rule_put(PGconn *conn, const struct rate_rule *r, long long expected_revision,
		       long long *rule_id, long long *revision, char *err, size_t errlen)
{
	const char *p[10] = {
		r->tenant,
		r->plan,
		r->modality,
		r->provider,
		r->model,
		r->markup[0] ? "cost_plus" : "fixed",
		r->markup[0] ? r->markup : NULL,
		r->basis,
		r->fixed[0] ? r->fixed : NULL,
		r->unit,
	};
	int status = rate_card_begin(conn, expected_revision, err, errlen);
	PGresult *res;
	bool created;

	if (status != 200)
		return status;
	/* One rule per scope: a write to a scope replaces its rule (the scope's
	 * model as the book names it, normalised by the table's trigger). */
	res = db_query(
		conn,
		"INSERT INTO rate_card_rules (tenant_id, plan, modality, provider, model, kind,"
		" markup, basis, fixed, unit) VALUES ($1, $2, $3, $4, $5, $6, $7::numeric,"
		" coalesce($8, 'recorded'), $9::numeric, $10)"
		" ON CONFLICT (tenant_id, plan, modality, provider, model) DO UPDATE SET"
		" kind = excluded.kind, markup = excluded.markup, basis = excluded.basis,"
		" fixed = excluded.fixed, unit = excluded.unit"
		" RETURNING rule_id, xmax = 0",
		10, p, &status, err, errlen);
	if (!res) {
		db_rollback(conn);
		return status;
	}
	*rule_id = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	created = PQgetvalue(res, 0, 1)[0] == 't';
	PQclear(res);
	status = rate_card_commit(conn, revision, err, errlen);
	return status != 200 ? status : created ? 201 : 200;
}

int rate_card_rule_rm(PGconn *conn, long long rule_id, long long expected_revision,
		      long long *revision, char *err, size_t errlen)
{
	char id[24];
	const char *p[1] = { id };
	int status = rate_card_begin(conn, expected_revision, err, errlen);
	PGresult *res;
	int n;

	if (status != 200)
		return status;
	snprintf(id, sizeof(id), "%lld", rule_id);
	res = db_query(conn, "DELETE FROM rate_card_rules WHERE rule_id = $1", 1, p, &status, err,
		       errlen);
	if (!res) {
		db_rollback(conn);
		return status;
	}
	n = atoi(PQcmdTuples(res));
	PQclear(res);
	if (n == 0) {
		db_rollback(conn);
		snprintf(err, errlen, "rule_id %lld: no such rule", rule_id);
		return 404;
	}
	return rate_card_commit(conn, revision, err, errlen);
}

int rate_card_default_set(PGconn *conn, const char *markup, long long expected_revision,
			  long long *revision, char *err, size_t errlen)
{
	const char *p[1] = { markup };
	int status = rate_card_begin(conn, expected_revision, err, errlen);
	PGresult *res;

	if (status != 200)
		return status;
	res = db_query(conn,
		       "UPDATE rate_card SET default_markup = $1::numeric,"
		       " revision = revision + 1",
		       1, p, &status, err, errlen);
	if (!res) {
		db_rollback(conn);
		return status;
	}
	PQclear(res);
	return rate_card_commit(conn, revision, err, errlen);
}

int rate_card_plan_set(PGconn *conn, const char *tenant, const char *plan,
		       long long expected_revision, long long *revision, char *err, size_t errlen)
{
	const char *p[2] = { tenant, plan };
	int status = rate_card_begin(conn, expected_revision, err, errlen);
	PGresult *res;

	if (status != 200)
		return status;
	res = plan ? db_query(conn,
			      "INSERT INTO tenant_plans (tenant_id, plan) VALUES ($1, $2)"
			      " ON CONFLICT (tenant_id) DO UPDATE SET plan = excluded.plan",
			      2, p, &status, err, errlen)
		   : db_query(conn, "DELETE FROM tenant_plans WHERE tenant_id = $1", 1, p, &status,
			      err, errlen);
	if (!res) {
		db_rollback(conn);
		return status;
	}
	PQclear(res);
	return rate_card_commit(conn, revision, err, errlen);
}
