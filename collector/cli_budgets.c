/* `vgcollector budgets set|list|rm`: budget administration with blocking
 * libpq, through budget.c, so the CLI and the HTTP API store and show the
 * same thing. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "buf.h"
#include "cli.h"
#include "cli_table.h"
#include "db.h"

static const char *const cli_budgets_db_keys[] = { CLI_DB_KEYS, NULL };

static const struct cli_option cli_budgets_set_opts[] = {
	{ "--name", "N", "the budget's name (required): letters, digits, '-', '_', '.'", NULL },
	{ "--tenant", "T", "count only this tenant's rows (default: every tenant)", NULL },
	{ "--project", "P", "count only this project's rows", NULL },
	{ "--agent", "A", "count only this agent's rows", NULL },
	{ "--provider", "X", "count only this provider's rows", NULL },
	{ "--model", "M", "count only this model's rows", NULL },
	{ "--period", "day|week|month", "calendar period in UTC, weeks from Monday (required)",
	  NULL },
	{ "--limit-usd", "AMOUNT", "the limit, a decimal amount (required)", NULL },
	{ "--thresholds", "50,80,100", "percents of the limit that raise an alert", NULL },
	{ "--webhook", "URL", "http(s) URL that gets each alert as a signed POST", NULL },
	{ "--webhook-secret", "S", "HMAC-SHA256 key for X-Vgc-Signature (with --webhook)", NULL },
	{ NULL, NULL, NULL, NULL },
};

static const struct cli_option cli_budgets_list_opts[] = {
	{ "--json", NULL, "print the JSON GET /v1/budgets answers instead of a table", NULL },
	{ NULL, NULL, NULL, NULL },
};

static const struct cli_option cli_budgets_rm_opts[] = {
	{ "--tenant", "T", "the budget's tenant, when several tenants use the name", NULL },
	{ NULL, NULL, NULL, NULL },
};

static const struct cli_command cli_budgets_set_cmd = {
	.name = "budgets set",
	.synopsis = "--name N [--tenant T] [--project P] [--agent A] [--provider X]\n"
		    "                      [--model M] --period day|week|month --limit-usd AMOUNT\n"
		    "                      [--thresholds 50,80,100] [--webhook URL]\n"
		    "                      [--webhook-secret S] [--db CONNINFO]",
	.about = "Creates the budget, or replaces every field of the one with that tenant and\n"
		 "name, and prints its id. Absent scope parts mean all.\n",
	.options = cli_budgets_set_opts,
	.config_keys = cli_budgets_db_keys,
};

static const struct cli_command cli_budgets_list_cmd = {
	.name = "budgets list",
	.synopsis = "[--json] [--db CONNINFO]",
	.about = "Prints each budget with its spend, percent, forecast and state for the\n"
		 "current period. The webhook secret is never shown.\n",
	.options = cli_budgets_list_opts,
	.config_keys = cli_budgets_db_keys,
};

static const struct cli_command cli_budgets_rm_cmd = {
	.name = "budgets rm",
	.synopsis = "NAME_OR_ID [--tenant T] [--db CONNINFO]",
	.about = "Deletes the budget and its alerts.\n",
	.options = cli_budgets_rm_opts,
	.config_keys = cli_budgets_db_keys,
	.max_args = 1,
};

static const struct cli_command *const cli_budgets_cmds[] = {
	&cli_budgets_set_cmd,
	&cli_budgets_list_cmd,
	&cli_budgets_rm_cmd,
	NULL,
};

/* Fills spec from the flags and checks it; prints and returns 2 when bad. */
static int cli_budgets_spec(const struct cli_args *a, struct budget_spec *spec)
{
	const char *th = cli_args_value(a, "--thresholds");
	char err[1024];

	memset(spec, 0, sizeof(*spec));
	spec->name = cli_args_value(a, "--name");
	spec->tenant = cli_args_value(a, "--tenant");
	spec->project = cli_args_value(a, "--project");
	spec->agent = cli_args_value(a, "--agent");
	spec->provider = cli_args_value(a, "--provider");
	spec->model = cli_args_value(a, "--model");
	spec->period = cli_args_value(a, "--period");
	spec->limit_usd = cli_args_value(a, "--limit-usd");
	spec->webhook = cli_args_value(a, "--webhook");
	spec->webhook_secret = cli_args_value(a, "--webhook-secret");
	if (!spec->name || !spec->period || !spec->limit_usd) {
		fprintf(stderr, "vgcollector budgets set: --name, --period and --limit-usd are "
				"required\n");
		return 2;
	}
	if ((th && !budget_thresholds_parse(spec, th, err, sizeof(err))) ||
	    !budget_spec_check(spec, err, sizeof(err))) {
		fprintf(stderr, "vgcollector budgets set: %s\n", err);
		return 2;
	}
	return -1;
}

static int cli_budgets_set(const struct budget_spec *spec, PGconn *conn)
{
	char err[1024];
	long long id;
	bool created;
	int status;

	if (!budget_upsert(conn, spec, NULL, NULL, 0, &id, &created, &status, err, sizeof(err))) {
		fprintf(stderr, "vgcollector budgets set: %s\n", err);
		return 1;
	}
	printf("%lld\n", id);
	return 0;
}

static int cli_budgets_list(const struct cli_args *a, PGconn *conn)
{
	static const enum budget_col cols[] = { BUDGET_COL_ID,	     BUDGET_COL_NAME,
						BUDGET_COL_PERIOD,   BUDGET_COL_LIMIT,
						BUDGET_COL_SPENT,    BUDGET_COL_PERCENT,
						BUDGET_COL_FORECAST, BUDGET_COL_STATE,
						BUDGET_COL_SCOPE };
	static const char *const heads[] = { "ID",	  "NAME",      "PERIOD",
					     "LIMIT_USD", "SPENT_USD", "PERCENT",
					     "FORECAST",  "STATE",     "SCOPE" };
	enum { NCOLS = sizeof(cols) / sizeof(cols[0]) };
	int width[NCOLS], status;
	char err[1024];
	PGresult *res = budget_status(conn, NULL, NULL, true, &status, err, sizeof(err));
	struct buf *cells;
	int nrows;

	if (!res) {
		fprintf(stderr, "vgcollector budgets list: %s\n", err);
		return 1;
	}
	if (cli_args_value(a, "--json")) {
		struct buf b;

		buf_init(&b, 0);
		budget_render_json(res, &b);
		printf("%s\n", b.data ? b.data : "");
		buf_release(&b);
		PQclear(res);
		return 0;
	}
	/* Names and scopes are the tenants' text: escaped as `agents` escapes
	 * them, so no byte of theirs drives the terminal. */
	nrows = PQntuples(res);
	if (!(cells = calloc((size_t)nrows * NCOLS + 1, sizeof(*cells)))) {
		fprintf(stderr, "vgcollector budgets list: out of memory\n");
		PQclear(res);
		return 1;
	}
	for (int c = 0; c < NCOLS; c++) {
		width[c] = (int)strlen(heads[c]);
		for (int r = 0; r < nrows; r++) {
			struct buf *b = &cells[r * NCOLS + c];

			buf_init(b, 0);
			cli_table_escape(b, PQgetvalue(res, r, (int)cols[c]));
			if (b->data && cli_table_width(b->data) > width[c])
				width[c] = cli_table_width(b->data);
		}
	}
	for (int c = 0; c < NCOLS; c++)
		cli_table_cell(heads[c], c + 1 < NCOLS ? width[c] : cli_table_width(heads[c]),
			       false, c == 0);
	putchar('\n');
	for (int r = 0; r < nrows; r++) {
		for (int c = 0; c < NCOLS; c++) {
			const char *text =
				cells[r * NCOLS + c].data ? cells[r * NCOLS + c].data : "";

			cli_table_cell(text, c + 1 < NCOLS ? width[c] : cli_table_width(text),
				       false, c == 0);
		}
		putchar('\n');
	}
	for (int i = 0; i < nrows * NCOLS; i++)
		buf_release(&cells[i]);
	free(cells);
	PQclear(res);
	return 0;
}

static int cli_budgets_rm(const struct cli_args *a, PGconn *conn)
{
	const char *which = a->args[0];
	const char *tenant = cli_args_value(a, "--tenant");
	bool by_id = which[strspn(which, "0123456789")] == '\0';
	char err[1024];
	long long id;
	int status;

	/* A name made of digits is tried as an id first, then as a name. */
	if (!budget_remove(conn, which, by_id, tenant, NULL, NULL, &id, &status, err,
			   sizeof(err)) &&
	    !(by_id && status == 404 &&
	      budget_remove(conn, which, false, tenant, NULL, NULL, &id, &status, err,
			    sizeof(err)))) {
		fprintf(stderr, "vgcollector budgets rm: %s\n", err);
		return 1;
	}
	printf("removed budget id=%lld\n", id);
	return 0;
}

int cli_budgets(int argc, char **argv)
{
	const struct cli_command *cmd;
	struct budget_spec spec;
	struct cli_args a;
	struct config cfg;
	PGconn *conn;
	int rc;

	if (!(cmd = cli_subcommand("budgets", cli_budgets_cmds, argc, argv, &rc)))
		return rc;
	rc = cli_parse(cmd, argc - 1, argv + 1, &a);
	if (rc < 0 && cmd == &cli_budgets_set_cmd)
		rc = cli_budgets_spec(&a, &spec);
	if (rc < 0 && cmd == &cli_budgets_rm_cmd && a.nargs != 1) {
		fprintf(stderr, "vgcollector budgets rm: expected one NAME_OR_ID\n");
		rc = 2;
	}
	if (rc >= 0 || !cli_config_load(cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : 2;
	}
	conn = cli_db_connect(cmd, &cfg);
	config_free(&cfg);
	if (!conn) {
		cli_args_free(&a);
		return 1;
	}
	if (cmd == &cli_budgets_set_cmd)
		rc = cli_budgets_set(&spec, conn);
	else if (cmd == &cli_budgets_list_cmd)
		rc = cli_budgets_list(&a, conn);
	else
		rc = cli_budgets_rm(&a, conn);
	PQfinish(conn);
	cli_args_free(&a);
	return rc;
}
