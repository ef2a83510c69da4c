/* `vgcollector periods ls|close|reopen`: billing periods through periods.c,
 * the same store and rules as GET /v1/periods and POST /v1/periods/{month}. */
#include <cJSON.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "focus.h"
#include "focus_http.h"
#include "periods.h"

static const char *const cli_periods_keys[] = { CLI_DB_KEYS, "period_grace_s",
						"focus_billing_account", NULL };

static const struct cli_option cli_periods_ls_opts[] = {
	{ "--json", NULL, "print the JSON GET /v1/periods answers instead of a table", NULL },
	{ NULL, NULL, NULL, NULL },
};

static const struct cli_option cli_periods_close_opts[] = {
	{ "--force", NULL, "close even though some workers have not reported", NULL },
	{ NULL, NULL, NULL, NULL },
};

static const struct cli_command cli_periods_ls_cmd = {
	.name = "periods ls",
	.synopsis = "[--json] [--db CONNINFO]",
	.about = "Lists each month that holds rows: open or closed, and its completeness\n"
		 "(workers that reported after the month's end plus period_grace_s with an\n"
		 "empty backlog, and late rows since the close).\n",
	.options = cli_periods_ls_opts,
	.config_keys = cli_periods_keys,
};

static const struct cli_command cli_periods_close_cmd = {
	.name = "periods close",
	.synopsis = "YYYY-MM [--force] [--db CONNINFO]",
	.about = "Closes a billing period once, freezing its FOCUS export. Refused (exit 1)\n"
		 "unless every worker that wrote rows in the month has reported, naming\n"
		 "those that have not; --force closes anyway.\n",
	.options = cli_periods_close_opts,
	.config_keys = cli_periods_keys,
	.max_args = 1,
};

static const struct cli_command cli_periods_reopen_cmd = {
	.name = "periods reopen",
	.synopsis = "YYYY-MM [--db CONNINFO]",
	.about = "Reopens a closed billing period (an admin act, logged and recorded in\n"
		 "billing_period_events): its frozen export is dropped and it is billed live\n"
		 "again. Refused while a later month is closed.\n",
	.config_keys = cli_periods_keys,
	.max_args = 1,
};

static const struct cli_command *const cli_periods_cmds[] = {
	&cli_periods_ls_cmd,
	&cli_periods_close_cmd,
	&cli_periods_reopen_cmd,
	NULL,
};

static const char *cli_periods_str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);

	return cJSON_IsString(v) ? v->valuestring : "-";
}

static int cli_periods_ls(const struct cli_args *a, const struct config *cfg, PGconn *conn)
{
	struct rollup_query q;
	struct buf b;
	char err[1024];
	int st;
	cJSON *root, *p;

	memset(&q, 0, sizeof(q));
	buf_init(&b, 0);
	st = periods_list(conn, &q, cfg->period_grace_s, &b, err, sizeof(err));
	if (st != 200) {
		fprintf(stderr, "vgcollector periods ls: %s\n", err);
		buf_release(&b);
		return 1;
	}
	if (cli_args_value(a, "--json")) {
		printf("%.*s\n", (int)b.len, b.data);
		buf_release(&b);
		return 0;
	}
	root = cJSON_ParseWithLength(b.data, b.len);
	buf_release(&b);
	printf("%-8s  %-6s  %-20s  %-16s  %-9s  %s\n", "PERIOD", "STATE", "CLOSED AT", "CLOSED BY",
	       "REPORTED", "LATE ROWS");
	cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(root, "periods"))
	{
		const cJSON *c = cJSON_GetObjectItemCaseSensitive(p, "completeness");
		char rep[32];

		snprintf(rep, sizeof(rep), "%d/%d",
			 cJSON_GetObjectItemCaseSensitive(c, "workers_reported")->valueint,
			 cJSON_GetObjectItemCaseSensitive(c, "workers")->valueint);
		printf("%-8s  %-6s  %-20s  %-16s  %-9s  %d\n", cli_periods_str(p, "period"),
		       cli_periods_str(p, "state"), cli_periods_str(p, "closed_at"),
		       cli_periods_str(p, "closed_by"), rep,
		       cJSON_GetObjectItemCaseSensitive(c, "late_rows")->valueint);
	}
	cJSON_Delete(root);
	return 0;
}

/* Who acts from the command line: "cli:$USER". */
static void cli_periods_by(char *out, size_t outlen)
{
	const char *u = getenv("USER");

	snprintf(out, outlen, "cli:%.48s", u && u[0] ? u : "unknown");
}

static int cli_periods_act(const struct cli_command *cmd, const struct cli_args *a,
			   const struct config *cfg, PGconn *conn)
{
	char by[64], err[1024], account[256];
	long long month;
	struct buf b;
	int st;

	if (a->nargs != 1 || !focus_period_parse(a->args[0], &month)) {
		fprintf(stderr, "vgcollector %s: expected one month as YYYY-MM\n", cmd->name);
		return 2;
	}
	cli_periods_by(by, sizeof(by));
	buf_init(&b, 0);
	if (cmd == &cli_periods_close_cmd) {
		focus_http_account(cfg->focus_billing_account, account, sizeof(account));
		st = periods_close(conn, month, cli_args_value(a, "--force") != NULL, by,
				   cfg->period_grace_s, account, &b, err, sizeof(err));
	} else {
		st = periods_reopen(conn, month, by, err, sizeof(err));
	}
	if (st != 200) {
		fprintf(stderr, "vgcollector %s: %s\n", cmd->name, err);
		buf_release(&b);
		return 1;
	}
	if (cmd == &cli_periods_close_cmd)
		printf("%.*s\n", (int)b.len, b.data ? b.data : "");
	else
		printf("reopened %s\n", a->args[0]);
	buf_release(&b);
	return 0;
}

int cli_periods(int argc, char **argv)
{
	const struct cli_command *cmd;
	struct cli_args a;
	struct config cfg;
	PGconn *conn;
	int rc;

	if (!(cmd = cli_subcommand("periods", cli_periods_cmds, argc, argv, &rc)))
		return rc;
	rc = cli_parse(cmd, argc - 1, argv + 1, &a);
	if (rc >= 0 || !cli_config_load(cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : 2;
	}
	rc = 1;
	if ((conn = cli_db_connect(cmd, &cfg))) {
		rc = cmd == &cli_periods_ls_cmd ? cli_periods_ls(&a, &cfg, conn)
						: cli_periods_act(cmd, &a, &cfg, conn);
		PQfinish(conn);
	}
	config_free(&cfg);
	cli_args_free(&a);
	return rc;
}
