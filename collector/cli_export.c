/* `vgcollector export focus`: the FOCUS 1.2 export of one billing period,
 * the same bytes GET /v1/export/focus answers (focus.c), streamed to stdout
 * or a file. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "focus.h"
#include "focus_http.h"

static const struct cli_option cli_export_focus_opts[] = {
	{ "--period", "YYYY-MM", "the billing period, a UTC month (required)", NULL },
	{ "--tenant", "T", "only this tenant's lines ('' for the unattributed ones)", NULL },
	{ "--out", "FILE", "write the CSV here instead of stdout", NULL },
	{ NULL, NULL, NULL, NULL },
};

static const char *const cli_export_keys[] = { CLI_DB_KEYS, "focus_billing_account",
					       "export_fetch_rows", NULL };

static const struct cli_command cli_export_focus_cmd = {
	.name = "export focus",
	.synopsis = "--period YYYY-MM [--tenant T] [--out FILE] [--db CONNINFO]",
	.about = "Writes the FOCUS 1.2 cost export of a billing period (a UTC month) as CSV:\n"
		 "one line per day, tenant, project, agent, provider, model and modality,\n"
		 "from the rollups. A closed month's export is the one frozen at its close;\n"
		 "an open month also bills the late rows of the closed months before it.\n",
	.options = cli_export_focus_opts,
	.config_keys = cli_export_keys,
};

static const struct cli_command *const cli_export_cmds[] = { &cli_export_focus_cmd, NULL };

/* The export's sink: each piece of CSV straight to the file. */
static bool cli_export_write(void *arg, const char *data, size_t len)
{
	return fwrite(data, 1, len, arg) == len;
}

static int cli_export_focus(const struct cli_args *a, const struct config *cfg, PGconn *conn)
{
	const char *period = cli_args_value(a, "--period"), *tenant = cli_args_value(a, "--tenant");
	const char *path = cli_args_value(a, "--out");
	struct rollup_query q;
	struct focus_params p;
	struct focus_result r;
	struct focus_sink sink;
	char account[256], err[1024];
	int st, rc = 1;
	FILE *f;

	if (!(f = path ? fopen(path, "wb") : stdout)) {
		fprintf(stderr, "vgcollector export focus: %s: cannot open for writing\n", path);
		return 1;
	}
	rollup_query_init(&q, ROLLUP_KIND_ROLLUPS);
	if (tenant) {
		q.filters[ROLLUP_COL_TENANT].values[0] = tenant[0] ? strdup(tenant) : NULL;
		q.filters[ROLLUP_COL_TENANT].n = 1;
	}
	focus_http_account(cfg->focus_billing_account, account, sizeof(account));
	sink = (struct focus_sink){ cli_export_write, f };
	p = (struct focus_params){ 0, account, &q, false, &sink, cfg->export_fetch_rows };
	focus_period_parse(period, &p.month_us);
	/* Written as it is read: the file never waits whole in memory. */
	st = focus_export(conn, &p, &r, err, sizeof(err));
	if (st == FOCUS_STOPPED)
		fprintf(stderr, "vgcollector export focus: write failed\n");
	else if (st != 200)
		fprintf(stderr, "vgcollector export focus: %s\n", err);
	rc = st == 200 ? 0 : 1;
	if ((path ? fclose(f) : fflush(f)) != 0 && rc == 0) {
		fprintf(stderr, "vgcollector export focus: write failed\n");
		rc = 1;
	}
	if (rc != 0 && path)
		remove(path); /* never leave a cut export behind as if whole */
	focus_result_free(&r);
	rollup_query_free(&q);
	return rc;
}

int cli_export(int argc, char **argv)
{
	const struct cli_command *cmd;
	struct cli_args a;
	struct config cfg;
	long long month;
	PGconn *conn;
	int rc;

	if (!(cmd = cli_subcommand("export", cli_export_cmds, argc, argv, &rc)))
		return rc;
	rc = cli_parse(cmd, argc - 1, argv + 1, &a);
	if (rc < 0) {
		const char *period = cli_args_value(&a, "--period");

		if (!period || !focus_period_parse(period, &month)) {
			fprintf(stderr, "vgcollector export focus: --period: required, a month as "
					"YYYY-MM\n");
			rc = 2;
		}
	}
	if (rc >= 0 || !cli_config_load(cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : 2;
	}
	rc = 1;
	if ((conn = cli_db_connect(cmd, &cfg))) {
		rc = cli_export_focus(&a, &cfg, conn);
		PQfinish(conn);
	}
	config_free(&cfg);
	cli_args_free(&a);
	return rc;
}
