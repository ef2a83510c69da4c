/* `vgcollector rollup`: the /v1/rollups query, read straight from PostgreSQL
 * for a person at a terminal. Options become the API's parameters and go
 * through the same parser and SQL; --csv prints exactly the API's CSV. Names
 * from the database are escaped before they reach the terminal. */
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "cli.h"
#include "cli_table.h"
#include "config.h"
#include "db.h"
#include "rollup.h"
#include "rollup_query.h"
#include "rollup_sql.h"
#include "timefmt.h"

/* Options; most become the API parameter named last. */
static const struct cli_option cli_rollup_opts[] = {
	{ "--from", "DATE", "start, inclusive (default: 30 days ago)", "from" },
	{ "--to", "DATE", "end, exclusive (default: now)", "to" },
	{ "--by", "COLUMNS", "project, agent, tenant, modality, provider, model (default tenant)",
	  "group_by" },
	{ "--granularity", "G", "hour, day, month or total", "granularity" },
	{ "--tenant", "T", "only these tenants (comma list)", "tenant" },
	{ "--project", "P", "only these projects", "project" },
	{ "--agent", "A", "only these agents", "agent" },
	{ "--modality", "M", "only these modalities", "modality" },
	{ "--provider", "P", "only these providers", "provider" },
	{ "--model", "M", "only these models", "model" },
	{ "--csv", NULL, "print CSV, as GET /v1/rollups?format=csv", NULL },
	{ "--csv-raw", NULL, "print CSV with cells as stored, like csv_raw=1", NULL },
	{ NULL, NULL, NULL, NULL },
};

static const char *const cli_rollup_keys[] = { CLI_DB_KEYS, "max_rollup_periods", NULL };

static const struct cli_command cli_rollup_cmd = {
	.name = "rollup",
	.synopsis =
		"[--from DATE] [--to DATE] [--by tenant,agent,...]\n"
		"                          [--granularity hour|day|month|total] [--tenant T] "
		"[--project P]\n"
		"                          [--agent A] [--modality M] [--provider P] [--model M]\n"
		"                          [--csv | --csv-raw] [--db CONNINFO]",
	.about =
		"Sums cost_rollup_hourly over [--from, --to) in UTC (dates YYYY-MM-DD or RFC 3339\n"
		"timestamps on whole hours; default: the last 30 days), by period and the --by\n"
		"columns (project, agent, tenant, modality, provider, model; default tenant).\n"
		"Filters take a comma list; an empty value (--tenant '') selects unattributed rows.\n"
		"Prints an aligned table with a totals line; control characters in names are\n"
		"shown escaped (\\x1b, \\u009b, and \\\\ for a backslash). --csv prints the same CSV\n"
		"as GET /v1/rollups?format=csv, with cells a spreadsheet would run as formulas\n"
		"(=, +, -, @, tab, CR first) neutralised by a leading '; --csv-raw prints them\n"
		"as stored, like csv_raw=1.\n",
	.options = cli_rollup_opts,
	.config_keys = cli_rollup_keys,
};

static int cli_rollup_frac(const char *s)
{
	const char *dot = strchr(s, '.');

	return dot ? (int)strlen(dot + 1) : 0;
}

/* Prints rows and totals as a table: text columns left, numbers right with
 * aligned decimals, a rule, then the totals line. */
static int cli_rollup_table(const struct rollup_query *q, const PGresult *res)
{
	/* Text columns: the period (unless one total), then the --by columns. */
	int period = q->granularity != ROLLUP_TOTAL;
	int ntext = period + q->ncols, label = ntext ? 0 : 1;
	int ncol = label + ntext + ROLLUP_NMEASURES, nrow = PQntuples(res) + 1;
	int first = q->granularity == ROLLUP_TOTAL ? ROLLUP_COL0_GROUPS : 1;
	int m0 = ROLLUP_COL0_GROUPS + q->ncols; /* the first measure in res */
	char ***cell = calloc((size_t)nrow, sizeof(char **));
	int *width = calloc((size_t)ncol, sizeof(int)), frac[ROLLUP_NMEASURES] = { 0 };
	char tmp[256];
	struct buf name;

	if (!cell || !width) {
		free(cell);
		free(width);
		fprintf(stderr, "vgcollector rollup: out of memory\n");
		return 1;
	}
	for (int i = 0; i < ROLLUP_NMEASURES; i++) {
		frac[i] = rollup_measures[i].kind == ROLLUP_MEASURE_MONEY ? 2 : 0;
		for (int r = 0; r < PQntuples(res); r++) {
			int f = cli_rollup_frac(PQgetvalue(res, r, m0 + i));
			frac[i] = f > frac[i] ? f : frac[i];
		}
	}
	/* Row 0: the header; then res's rows, the last of which is the totals. */
	for (int r = 0; r < nrow; r++) {
		if (!(cell[r] = calloc((size_t)ncol, sizeof(char *))))
			goto oom;
		for (int c = 0; c < ncol; c++) {
			const char *v = "";
			if (r == 0) {
				if (c < label)
					v = "";
				else if (c < label + ntext)
					v = c - label < period
						    ? "period"
						    : rollup_params_col_name(
							      q->cols[c - label - period]);
				else
					v = rollup_measures[c - label - ntext].name;
				snprintf(tmp, sizeof(tmp), "%s", v);
				for (char *p = tmp; *p; p++)
					*p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
			} else if (r == nrow - 1) {
				if (c == 0)
					snprintf(tmp, sizeof(tmp), "TOTAL");
				else if (c < label + ntext)
					tmp[0] = '\0';
				else
					cli_table_number(
						PQgetvalue(res, r - 1, c - ntext + m0 - label),
						frac[c - label - ntext], tmp, sizeof(tmp));
			} else {
				int src = c - label + first; /* column in res */
				if (c < label) {
					tmp[0] = '\0';
				} else if (c < label + ntext) {
					bool tenant =
						c - label >= period &&
						q->cols[c - label - period] == ROLLUP_COL_TENANT;
					v = PQgetisnull(res, r - 1, src)
						    ? (tenant ? "(unattributed)" : "-")
						    : PQgetvalue(res, r - 1, src);
					buf_init(&name, 0);
					cli_table_escape(&name, v);
					cell[r][c] = name.over ? NULL : buf_steal(&name, NULL);
					buf_release(&name);
					if (!cell[r][c])
						goto oom;
					if (cli_table_width(cell[r][c]) > width[c])
						width[c] = cli_table_width(cell[r][c]);
					continue;
				} else {
					cli_table_number(PQgetvalue(res, r - 1, src),
							 frac[c - label - ntext], tmp, sizeof(tmp));
				}
			}
			if (!(cell[r][c] = strdup(tmp)))
				goto oom;
			if (cli_table_width(tmp) > width[c])
				width[c] = cli_table_width(tmp);
		}
	}
	for (int r = 0; r < nrow; r++) {
		if (r == nrow - 1) {
			int total = 0;
			for (int c = 0; c < ncol; c++)
				total += width[c] + (c ? 2 : 0);
			cli_table_rule(total);
		}
		for (int c = 0; c < ncol; c++)
			cli_table_cell(cell[r][c], width[c], c >= label + ntext, c == 0);
		putchar('\n');
	}
	for (int r = 0; r < nrow; r++) {
		for (int c = 0; c < ncol; c++)
			free(cell[r][c]);
		free(cell[r]);
	}
	free(cell);
	free(width);
	return 0;
oom:
	for (int r = 0; r < nrow; r++) {
		for (int c = 0; cell[r] && c < ncol; c++)
			free(cell[r][c]);
		free(cell[r]);
	}
	free(cell);
	free(width);
	fprintf(stderr, "vgcollector rollup: out of memory\n");
	return 1;
}

/* Runs the rollup on conn and prints it. */
static int cli_rollup_print(PGconn *conn, const struct rollup_query *q)
{
	char err[1024], from[40], to[40];
	int status, rc = 1;
	PGresult *res;
	struct buf out;

	if (q->csv) {
		buf_init(&out, 0);
		status = rollup_answer(conn, q, &out, NULL, err, sizeof(err));
		if (status == 200)
			fwrite(out.data ? out.data : "", 1, out.len, stdout);
		else
			fprintf(stderr, "vgcollector rollup: %s\n", err);
		buf_release(&out);
		return status == 200 ? 0 : 1;
	}
	if (!(res = rollup_fetch(conn, q, &status, NULL, err, sizeof(err)))) {
		fprintf(stderr, "vgcollector rollup: %s\n", err);
		return 1;
	}
	timefmt_format(q->from_us, from, sizeof(from));
	timefmt_format(q->to_us, to, sizeof(to));
	printf("cost rollup %s .. %s (UTC, to exclusive), granularity %s, %d row%s\n\n", from, to,
	       rollup_params_granularity_name(q->granularity), PQntuples(res) - 1,
	       PQntuples(res) == 2 ? "" : "s");
	rc = cli_rollup_table(q, res);
	PQclear(res);
	return rc;
}

int cli_rollup(int argc, char **argv)
{
	struct rollup_param params[CLI_MAX_GIVEN];
	struct rollup_query q;
	struct rollup_limits lim;
	struct config cfg;
	struct cli_args a;
	char err[1024];
	bool csv = false, csv_raw = false;
	int n = 0, st, rc = cli_parse(&cli_rollup_cmd, argc, argv, &a);
	PGconn *conn;

	if (rc >= 0 || !cli_config_load(&cli_rollup_cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : 2;
	}
	for (int i = 0; i < a.ngiven; i++) {
		const struct cli_option *o = a.given[i].opt;

		if (o->param) {
			params[n].name = o->param;
			params[n++].value = a.given[i].value;
		} else {
			csv = true;
			csv_raw = csv_raw || strcmp(o->flag, "--csv-raw") == 0;
		}
	}
	lim.max_periods = cfg.max_rollup_periods;
	lim.now = (double)time(NULL);

	rollup_query_init(&q, ROLLUP_KIND_ROLLUPS);
	st = rollup_query_parse(&q, params, n, &lim, err, sizeof(err));
	if (st != 200) {
		/* The API's messages name parameters; say which option that is. */
		fprintf(stderr, "vgcollector rollup: %s%s\n", err,
			strncmp(err, "group_by", 8) == 0 ? " (group_by is --by)" : "");
		rollup_query_free(&q);
		config_free(&cfg);
		cli_args_free(&a);
		return 2;
	}
	q.csv = csv;
	q.csv_raw = csv_raw;
	conn = cli_db_connect(&cli_rollup_cmd, &cfg);
	if (!conn) {
		rollup_query_free(&q);
		config_free(&cfg);
		cli_args_free(&a);
		return 1;
	}
	rc = cli_rollup_print(conn, &q);
	PQfinish(conn);
	rollup_query_free(&q);
	config_free(&cfg);
	cli_args_free(&a);
	return rc;
}
