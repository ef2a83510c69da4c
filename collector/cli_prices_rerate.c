/* `vgcollector prices rerate --from --to [--tenant] [--commit] [--reason]`:
 * re-rating as POST /v1/billing/rerate does it; and `prices reconcile --from
 * --to [--min-margin 0.1]`: the tenants whose margin is under a floor. */
#include "cli_prices_rerate.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "billing_rerate.h"
#include "buf.h"
#include "rollup.h"
#include "rollup_query.h"
#include "rollup_sql.h"

static const struct cli_option cli_prices_rerate_opts[] = {
	{ "--from", "DATE", "first instant of the rows re-rated (YYYY-MM-DD or RFC 3339)", NULL },
	{ "--to", "DATE", "end of the rows re-rated, exclusive", NULL },
	{ "--tenant", "T", "only this tenant's rows", NULL },
	{ "--commit", NULL, "append the adjustments (default: a dry run that only reports)", NULL },
	{ "--reason", "TEXT", "why, kept with the run", NULL },
	{ NULL, NULL, NULL, NULL },
};

static const struct cli_option cli_prices_reconcile_opts[] = {
	{ "--from", "DATE", "start of the range (YYYY-MM-DD or RFC 3339 on a whole hour)", NULL },
	{ "--to", "DATE", "end of the range, exclusive", NULL },
	{ "--min-margin", "X", "the floor of margin / revenue, a decimal (default 0.1)", NULL },
	{ NULL, NULL, NULL, NULL },
};

static const char *const cli_prices_billing_keys[] = { CLI_DB_KEYS, NULL };

const struct cli_command cli_prices_rerate_cmd = {
	.name = "prices rerate",
	.synopsis = "--from DATE --to DATE [--tenant T] [--commit] [--reason TEXT] [--config FILE] "
		    "[--db CONNINFO]",
	.about = "Prices the stored rows of [from, to) by the current rate card and prints,\n"
		 "per tenant, the rows and the exact sum of (card price - stored price). With\n"
		 "--commit it appends one adjustment per (tenant, day, project, provider,\n"
		 "model) under a new run, kept with who ran it (cli) and --reason; the rows\n"
		 "themselves never change. The run id is printed on the first line.\n",
	.options = cli_prices_rerate_opts,
	.config_keys = cli_prices_billing_keys,
	.max_args = 0,
};

const struct cli_command cli_prices_reconcile_cmd = {
	.name = "prices reconcile",
	.synopsis = "--from DATE --to DATE [--min-margin X] [--config FILE] [--db CONNINFO]",
	.about = "Lists the tenants whose margin (revenue + adjustments - recorded cost)\n"
		 "divided by revenue (rated price + adjustments) is under --min-margin over\n"
		 "[from, to), from the rollup tables; a tenant with cost and no revenue is\n"
		 "always under. Exits 1 when any tenant is listed, 0 when none.\n",
	.options = cli_prices_reconcile_opts,
	.config_keys = cli_prices_billing_keys,
	.max_args = 0,
};

static int cli_prices_rerate(const struct cli_args *a, PGconn *conn)
{
	struct billing_rerate r;
	struct buf out;
	char err[2048];
	int st, rc = 1;
	const char *tenant = cli_args_value(a, "--tenant"), *reason = cli_args_value(a, "--reason");
	PGresult *res;

	billing_rerate_init(&r);
	buf_init(&out, 0);
	r.dry_run = cli_args_value(a, "--commit") == NULL;
	st = billing_rerate_range(&r, cli_args_value(a, "--from"), cli_args_value(a, "--to"), err,
				  sizeof(err));
	if (st != 200) {
		fprintf(stderr, "vgcollector prices rerate: %s\n", err);
		return 2;
	}
	if ((tenant && !(r.tenant = strdup(tenant))) || (reason && !(r.reason = strdup(reason)))) {
		fprintf(stderr, "vgcollector prices rerate: out of memory\n");
		goto out;
	}
	if ((st = billing_rerate_run(conn, &r, &out, err, sizeof(err))) != 200) {
		fprintf(stderr, "vgcollector prices rerate: %s\n", err);
		goto out;
	}
	/* The answer's JSON, as a table: PostgreSQL reads it back for us. */
	res = PQexecParams(conn,
			   "SELECT a->>'run', t->>'tenant_id', t->>'rows', t->>'delta_usd'"
			   " FROM (SELECT $1::json AS a) j LEFT JOIN LATERAL"
			   " json_array_elements(a->'tenants') t ON true",
			   1, NULL, (const char *const[]){ out.data }, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) < 1) {
		fprintf(stderr, "vgcollector prices rerate: %s", PQerrorMessage(conn));
		PQclear(res);
		goto out;
	}
	printf("%s\n%s run %s\n%-32s %10s %s\n", PQgetvalue(res, 0, 0),
	       r.dry_run ? "dry run (nothing written; --commit appends the adjustments)"
			 : "committed",
	       PQgetvalue(res, 0, 0), "TENANT", "ROWS", "DELTA_USD");
	for (int i = 0; i < PQntuples(res); i++)
		if (!PQgetisnull(res, i, 2))
			printf("%-32s %10s %s\n",
			       PQgetisnull(res, i, 1) ? "(none)" : PQgetvalue(res, i, 1),
			       PQgetvalue(res, i, 2), PQgetvalue(res, i, 3));
	PQclear(res);
	rc = 0;
out:
	buf_release(&out);
	billing_rerate_release(&r);
	return rc;
}

static int cli_prices_reconcile(const struct cli_args *a, PGconn *conn)
{
	const char *from = cli_args_value(a, "--from"), *to = cli_args_value(a, "--to");
	const char *floor = cli_args_value(a, "--min-margin");
	struct rollup_param params[2] = { { "from", from }, { "to", to } };
	struct rollup_limits lim = { 1, 0 };
	struct rollup_query q;
	struct rollup_sql sql;
	struct buf text;
	char err[1024], *fl;
	int st, rc = 1, listed = 0;
	PGresult *res = NULL;

	if (!from || !to) {
		fprintf(stderr, "vgcollector prices reconcile: --from and --to are required\n");
		return 2;
	}
	rollup_query_init(&q, ROLLUP_KIND_USAGE);
	st = rollup_query_parse(&q, params, 2, &lim, err, sizeof(err));
	if (st != 200) {
		fprintf(stderr, "vgcollector prices reconcile: %s\n", err);
		rollup_query_free(&q);
		return 2;
	}
	buf_init(&text, 0);
	if (!rollup_sql_usage(&q, &sql) || sql.nparams == ROLLUP_SQL_MAX_PARAMS ||
	    !(fl = strdup(floor ? floor : "0.1"))) {
		fprintf(stderr, "vgcollector prices reconcile: out of memory\n");
		goto out;
	}
	sql.params[sql.nparams++] = fl;
	/* Compared in PostgreSQL: exact decimals, and a bad floor is its 22P02. */
	buf_printf(&text,
		   "SELECT coalesce(tenant_id, '(none)'), rated, adj, cost, margin,"
		   " round(margin / nullif(rated + adj, 0), 4) FROM (%s) u(g, tenant_id, requests,"
		   " cost, rated, margin, pct, book, adj, unpriced, unrated)"
		   " WHERE g = 0 AND (cost <> 0 OR rated + adj <> 0)"
		   " AND (rated + adj <= 0 OR margin < $%d::numeric * (rated + adj))"
		   " ORDER BY margin / nullif(rated + adj, 0) NULLS FIRST, tenant_id",
		   sql.text.data, sql.nparams);
	res = PQexecParams(conn, text.data, sql.nparams, NULL, (const char *const *)sql.params,
			   NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_TUPLES_OK) {
		const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);

		if (state && strcmp(state, "22P02") == 0) {
			fprintf(stderr,
				"vgcollector prices reconcile: --min-margin: \"%s\" is not a "
				"decimal\n",
				floor);
			rc = 2;
		} else {
			fprintf(stderr, "vgcollector prices reconcile: %s", PQerrorMessage(conn));
		}
		goto out;
	}
	printf("%-32s %16s %16s %16s %16s %8s\n", "TENANT", "RATED_USD", "ADJUSTMENTS_USD",
	       "COST_USD", "MARGIN_USD", "MARGIN");
	for (int i = 0; i < PQntuples(res); i++, listed++)
		printf("%-32s %16s %16s %16s %16s %8s\n", PQgetvalue(res, i, 0),
		       PQgetvalue(res, i, 1), PQgetvalue(res, i, 2), PQgetvalue(res, i, 3),
		       PQgetvalue(res, i, 4), PQgetisnull(res, i, 5) ? "-" : PQgetvalue(res, i, 5));
	printf("%d tenant%s under a margin of %s\n", listed, listed == 1 ? "" : "s",
	       floor ? floor : "0.1");
	rc = listed ? 1 : 0;
out:
	PQclear(res);
	buf_release(&text);
	rollup_sql_free(&sql);
	rollup_query_free(&q);
	return rc;
}

int cli_prices_billing(const struct cli_command *cmd, int argc, char **argv)
{
	struct cli_args a;
	struct config cfg;
	PGconn *conn;
	int rc = cli_parse(cmd, argc - 1, argv + 1, &a);

	if (rc >= 0 || !cli_config_load(cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : 2;
	}
	rc = 1;
	if ((conn = cli_db_connect(cmd, &cfg))) {
		rc = cmd == &cli_prices_rerate_cmd ? cli_prices_rerate(&a, conn)
						   : cli_prices_reconcile(&a, conn);
		PQfinish(conn);
	}
	cli_args_free(&a);
	config_free(&cfg);
	return rc;
}
