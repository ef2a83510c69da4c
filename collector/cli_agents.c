/* `vgcollector agents`: the fleet roster, read straight from PostgreSQL with
 * the same SQL as GET /v1/agents and page by page like it (one page in memory
 * at a time), as an aligned table (offline and dropping workers marked) or,
 * with --json, the API's JSON. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents_page.h"
#include "agents_store.h"
#include "buf.h"
#include "cli.h"
#include "cli_table.h"
#include "config.h"

static const struct cli_option cli_agents_opts[] = {
	{ "--tenant", "T", "only this tenant's workers ('' for workers without one)", NULL },
	{ "--project", "P", "only this project's workers ('' for workers without one)", NULL },
	{ "--status", "S", "only idle, busy or offline workers (a comma-separated list)", NULL },
	{ "--delivery", "D",
	  "only ok, backlog, dropping, rejecting or unknown delivery (a comma-separated list)",
	  NULL },
	{ "--limit", "N", "print one page of N workers (at most 5000) and the cursor to go on",
	  NULL },
	{ "--cursor", "C", "start after the page that gave this cursor", NULL },
	{ "--json", NULL, "print the JSON GET /v1/agents answers", NULL },
	{ NULL, NULL, NULL, NULL },
};

static const char *const cli_agents_keys[] = { CLI_DB_KEYS, "agent_ttl_s", NULL };

static const struct cli_command cli_agents_cmd = {
	.name = "agents",
	.synopsis = "[--tenant T] [--project P] [--status S] [--delivery D] [--limit N]\n"
		    "       [--cursor C] [--json] [--db CONNINFO]",
	.about = "Lists the workers that sent POST /v1/agents/heartbeat: status (offline when\n"
		 "the last beat is older than agent_ttl_s), sessions, when last seen, and\n"
		 "the delivery health their libvgsink reports (ok, backlog, dropping,\n"
		 "rejecting, or unknown without sink counters). The first column marks\n"
		 "workers that are dropping rows (!) or offline (x). Workers come in the\n"
		 "API's page order (tenant, agent_id, project), fetched a page at a time.\n",
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

/* Prints one page of rows as table lines (the header first when head), with
 * width holding each column's width so far: it only grows, so the pages line
 * up unless a later one holds a wider value. */
static int cli_agents_table(const PGresult *res, int nrows, bool head, int *width)
{
	int nrow = nrows + 1, rc = 0;
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
	for (int r = head ? 0 : 1; r < nrow && rc == 0; r++) {
		for (int c = 0; c < CLI_AGENTS_NCOLS; c++) {
			const char *v = cell[r * CLI_AGENTS_NCOLS + c];
			int pad = width[c] - cli_table_width(v);
			bool right = cli_agents_cols[c].right;

			printf("%s%*s%s%*s", c ? "  " : "", right ? pad : 0, "", v,
			       right || c == CLI_AGENTS_NCOLS - 1 ? 0 : pad, "");
		}
		putchar('\n');
	}
	if (rc)
		fprintf(stderr, "vgcollector agents: out of memory\n");
	for (int i = 0; i < nrow * CLI_AGENTS_NCOLS; i++)
		free(cell[i]);
	free(cell);
	return rc;
}

/* Reads the filter and page options; 0, or 2 after saying what is wrong. */
static int cli_agents_options(const struct cli_args *a, struct agents_filter *f,
			      struct agents_page *page, bool *one_page, char **cursor)
{
	const char *tenant = cli_args_value(a, "--tenant"),
		   *project = cli_args_value(a, "--project");
	const char *status = cli_args_value(a, "--status"),
		   *delivery = cli_args_value(a, "--delivery");
	const char *limit = cli_args_value(a, "--limit"), *cur = cli_args_value(a, "--cursor");
	char err[512], *key[AGENTS_NKEYS] = { NULL };
	char *end;
	long n;

	if (tenant) {
		f->tenant.match = tenant[0] ? AGENTS_EQ : AGENTS_NULL;
		f->tenant.value = tenant;
	}
	if (project) {
		f->project.match = project[0] ? AGENTS_EQ : AGENTS_NULL;
		f->project.value = project;
	}
	if ((status &&
	     agents_store_parse_set("--status", status, agents_store_status_names, AGENTS_NSTATUS,
				    &f->status, err, sizeof(err)) != 200) ||
	    (delivery &&
	     agents_store_parse_set("--delivery", delivery, agents_store_delivery_names,
				    AGENTS_NDELIVERY, &f->delivery, err, sizeof(err)) != 200) ||
	    (cur && agents_page_cursor_decode(cur, key, err, sizeof(err)) != 200)) {
		fprintf(stderr, "vgcollector agents: %s\n", err);
		return 2;
	}
	for (int k = 0; k < AGENTS_NKEYS; k++)
		page->after[k] = key[k];
	*cursor = key[0];
	page->limit = AGENTS_DEFAULT_PAGE;
	*one_page = limit != NULL;
	if (limit) {
		n = strtol(limit, &end, 10);
		if (!*limit || *end || n < 1 || n > AGENTS_MAX_PAGE) {
			fprintf(stderr,
				"vgcollector agents: --limit \"%s\": must be a whole number from 1 "
				"to %d\n",
				limit, AGENTS_MAX_PAGE);
			return 2;
		}
		page->limit = (int)n;
	}
	return 0;
}

/* Prints the roster page by page (only one page in memory), or with
 * one_page just the page asked for and the cursor to go on. 0 or 1. */
static int cli_agents_print(PGconn *conn, const struct agents_filter *f, struct agents_page *page,
			    bool one_page, bool json, int ttl_s)
{
	int width[CLI_AGENTS_NCOLS] = { 0 }, st, rc = 0;
	long long shown = 0;
	char err[1024];
	PGresult *res, *prev = NULL;
	struct buf b;

	buf_init(&b, 0);
	if (json && !one_page)
		printf("{\"ttl_s\":%d,\"agents\":[", ttl_s);
	for (;;) {
		int n;

		if (!(res = agents_store_list(conn, f, page, ttl_s, &st, err, sizeof(err)))) {
			fprintf(stderr, "vgcollector agents: %s\n", err);
			rc = 1;
			break;
		}
		PQclear(prev);
		prev = res;
		n = PQntuples(res) < page->limit ? PQntuples(res) : page->limit;
		if (json && one_page) {
			buf_reset(&b);
			if (!agents_page_render(res, page->limit, ttl_s, &b)) {
				fprintf(stderr, "vgcollector agents: out of memory\n");
				rc = 1;
			} else {
				printf("%s\n", b.data);
			}
		} else if (json) {
			for (int r = 0; r < n; r++) {
				buf_reset(&b);
				if (!agents_page_agent_json(res, r, &b)) {
					fprintf(stderr, "vgcollector agents: out of memory\n");
					rc = 1;
					break;
				}
				printf("%s%s", shown + r ? "," : "", b.data);
			}
		} else if ((rc = cli_agents_table(res, n, shown == 0, width)) != 0) {
			break;
		}
		shown += n;
		if (one_page || PQntuples(res) <= page->limit || rc)
			break;
		/* The next page starts after this one's last row, which res keeps. */
		for (int k = 0; k < AGENTS_NKEYS; k++)
			page->after[k] = PQgetvalue(res, n - 1, AGENTS_COL_KEY + k);
	}
	if (rc == 0 && json && !one_page)
		printf("],\"next_cursor\":null}\n");
	if (rc == 0 && !json) {
		if (shown == 0)
			printf("(no workers)\n");
		printf("\n%lld worker%s; ! dropping rows, x offline (no heartbeat for more than "
		       "agent_ttl_s = %d s)\n",
		       shown, shown == 1 ? "" : "s", ttl_s);
		if (one_page && PQntuples(res) > page->limit) {
			buf_reset(&b);
			if (agents_page_cursor(res, page->limit - 1, &b))
				printf("more: --cursor %s\n", b.data);
		}
	}
	PQclear(prev);
	buf_release(&b);
	return rc;
}

int cli_agents(int argc, char **argv)
{
	struct agents_filter f = { 0 };
	struct agents_page page = { 0 };
	struct config cfg;
	struct cli_args a;
	bool one_page = false;
	char *cursor = NULL;
	int rc = cli_parse(&cli_agents_cmd, argc, argv, &a);
	PGconn *conn;

	if (rc >= 0 || !cli_config_load(&cli_agents_cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : 2;
	}
	rc = cli_agents_options(&a, &f, &page, &one_page, &cursor);
	if (rc == 0) {
		rc = 1;
		if ((conn = cli_db_connect(&cli_agents_cmd, &cfg))) {
			rc = cli_agents_print(conn, &f, &page, one_page,
					      cli_args_value(&a, "--json") != NULL,
					      cfg.agent_ttl_s);
			PQfinish(conn);
		}
	}
	free(cursor);
	config_free(&cfg);
	cli_args_free(&a);
	return rc;
}
