/* `vgcollector agents`: the fleet roster, read straight from PostgreSQL with
 * the same SQL as GET /v1/agents, as an aligned table (offline and dropping
 * workers marked) or, with --json, the API's JSON. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents_store.h"
#include "buf.h"
#include "cli.h"
#include "cli_table.h"
#include "config.h"

static const struct cli_option cli_agents_opts[] = {
	{ "--tenant", "T", "only this tenant's workers ('' for workers without one)", NULL },
	{ "--status", "S", "only idle, busy or offline workers", NULL },
	{ "--json", NULL, "print the JSON GET /v1/agents answers", NULL },
	{ NULL, NULL, NULL, NULL },
};

static const char *const cli_agents_keys[] = { CLI_DB_KEYS, "agent_ttl_s", NULL };

static const struct cli_command cli_agents_cmd = {
	.name = "agents",
	.synopsis = "[--tenant T] [--status idle|busy|offline] [--json] [--db CONNINFO]",
	.about = "Lists the workers that sent POST /v1/agents/heartbeat: status (offline when\n"
		 "the last beat is older than agent_ttl_s), sessions, when last seen, and\n"
		 "the delivery health their libvgsink reports (ok, backlog, dropping,\n"
		 "rejecting, or unknown without sink counters). The first column marks\n"
		 "workers that are dropping rows (!) or offline (x).\n",
	.options = cli_agents_opts,
	.config_keys = cli_agents_keys,
};

/* The table's columns: header and where the value comes from. */
static const struct {
	const char *head;
	int col;
	bool right;
} cli_agents_cols[] = {
	{ "", -1, false },
	{ "AGENT", AGENTS_COL_AGENT_ID, false },
	{ "NAME", AGENTS_COL_AGENT_NAME, false },
	{ "TENANT", AGENTS_COL_TENANT, false },
	{ "PROJECT", AGENTS_COL_PROJECT, false },
	{ "STATUS", AGENTS_COL_STATUS, false },
	{ "SESSIONS", AGENTS_COL_SESSIONS, true },
	{ "VERSION", AGENTS_COL_VERSION, false },
	{ "REGION", AGENTS_COL_REGION, false },
	{ "HOST", AGENTS_COL_HOST, false },
	{ "LAST SEEN", AGENTS_COL_AGE_S, true },
	{ "DELIVERY", AGENTS_COL_DELIVERY, false },
	{ "RECORDED", AGENTS_COL_RECORDED, true },
	{ "SENT", AGENTS_COL_SENT, true },
	{ "DROPPED", AGENTS_COL_DROPPED, true },
	{ "REJECTED", AGENTS_COL_REJECTED, true },
	{ "BACKLOG", AGENTS_COL_BACKLOG, true },
};
#define CLI_AGENTS_NCOLS (int)(sizeof(cli_agents_cols) / sizeof(cli_agents_cols[0]))

/* The text of one cell (owned by the caller), NULL when out of memory. */
static char *cli_agents_cell(const PGresult *res, int r, int c)
{
	int col = cli_agents_cols[c].col;
	struct buf b;

	buf_init(&b, 0);
	if (col < 0) {
		bool dropping = strcmp(PQgetvalue(res, r, AGENTS_COL_DELIVERY), "dropping") == 0;
		bool offline = strcmp(PQgetvalue(res, r, AGENTS_COL_STATUS), "offline") == 0;

		buf_printf(&b, "%s%s", dropping ? "!" : "", offline ? "x" : "");
	} else if (PQgetisnull(res, r, col)) {
		buf_puts(&b, col == AGENTS_COL_TENANT ? "(none)" : "-");
	} else if (col == AGENTS_COL_AGE_S) {
		buf_printf(&b, "%ss ago", PQgetvalue(res, r, col));
	} else {
		cli_table_escape(&b, PQgetvalue(res, r, col));
	}
	buf_putc(&b, '\0');
	if (b.over) {
		buf_release(&b);
		return NULL;
	}
	return buf_steal(&b, NULL);
}

static int cli_agents_table(const PGresult *res, int ttl_s)
{
	int nrow = PQntuples(res) + 1, width[CLI_AGENTS_NCOLS] = { 0 }, rc = 0;
	char **cell = calloc((size_t)nrow * CLI_AGENTS_NCOLS, sizeof(char *));

	if (!cell) {
		fprintf(stderr, "vgcollector agents: out of memory\n");
		return 1;
	}
	for (int r = 0; r < nrow && rc == 0; r++) {
		for (int c = 0; c < CLI_AGENTS_NCOLS; c++) {
			char **p = &cell[r * CLI_AGENTS_NCOLS + c];

			*p = r == 0 ? strdup(cli_agents_cols[c].head)
				    : cli_agents_cell(res, r - 1, c);
			if (!*p) {
				rc = 1;
				break;
			}
			if (cli_table_width(*p) > width[c])
				width[c] = cli_table_width(*p);
		}
	}
	for (int r = 0; r < nrow && rc == 0; r++) {
		for (int c = 0; c < CLI_AGENTS_NCOLS; c++) {
			const char *v = cell[r * CLI_AGENTS_NCOLS + c];
			int pad = width[c] - cli_table_width(v);
			bool right = cli_agents_cols[c].right;

			printf("%s%*s%s%*s", c ? "  " : "", right ? pad : 0, "", v,
			       right || c == CLI_AGENTS_NCOLS - 1 ? 0 : pad, "");
		}
		putchar('\n');
	}
	if (rc == 0)
		printf("\n%d worker%s; ! dropping rows, x offline (no heartbeat for more than "
		       "agent_ttl_s = %d s)\n",
		       nrow - 1, nrow == 2 ? "" : "s", ttl_s);
	else
		fprintf(stderr, "vgcollector agents: out of memory\n");
	for (int i = 0; i < nrow * CLI_AGENTS_NCOLS; i++)
		free(cell[i]);
	free(cell);
	return rc;
}

int cli_agents(int argc, char **argv)
{
	struct agents_filter f = { 0 };
	struct config cfg;
	struct cli_args a;
	const char *tenant, *status;
	char err[1024];
	int st, rc = cli_parse(&cli_agents_cmd, argc, argv, &a);
	PGconn *conn;
	PGresult *res;

	if (rc >= 0 || !cli_config_load(&cli_agents_cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : 2;
	}
	tenant = cli_args_value(&a, "--tenant");
	status = cli_args_value(&a, "--status");
	if (status && strcmp(status, "idle") != 0 && strcmp(status, "busy") != 0 &&
	    strcmp(status, "offline") != 0) {
		fprintf(stderr,
			"vgcollector agents: --status \"%s\": must be idle, busy or offline\n",
			status);
		config_free(&cfg);
		cli_args_free(&a);
		return 2;
	}
	if (tenant) {
		f.tenant.match = tenant[0] ? AGENTS_EQ : AGENTS_NULL;
		f.tenant.value = tenant;
	}
	f.status = status;
	rc = 1;
	if ((conn = cli_db_connect(&cli_agents_cmd, &cfg))) {
		res = agents_store_list(conn, &f, cfg.agent_ttl_s, &st, err, sizeof(err));
		if (!res) {
			fprintf(stderr, "vgcollector agents: %s\n", err);
		} else if (cli_args_value(&a, "--json")) {
			printf("{\"ttl_s\":%d,\"agents\":[", cfg.agent_ttl_s);
			for (int r = 0; r < PQntuples(res); r++)
				printf("%s%s", r ? "," : "", PQgetvalue(res, r, AGENTS_COL_JSON));
			printf("]}\n");
			rc = 0;
		} else {
			rc = cli_agents_table(res, cfg.agent_ttl_s);
		}
		PQclear(res);
		PQfinish(conn);
	}
	config_free(&cfg);
	cli_args_free(&a);
	return rc;
}
