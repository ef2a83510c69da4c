/* `vgcollector reconcile`: compares our recorded cost with a provider's usage
 * file and names the cause of each gap. The same query and report as POST
 * /v1/reconcile (reconcile.c, reconcile_sql.c); here printed as an aligned
 * table like `vgcollector rollup`, as CSV or as the API's JSON. Exit 0: no
 * line flagged; 1: some line flagged; 2: bad input or a database error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cli.h"
#include "cli_table.h"
#include "config.h"
#include "gz.h"
#include "reconcile.h"
#include "reconcile_file.h"
#include "reconcile_sql.h"
#include "timefmt.h"

#define CLI_RECONCILE_BAD 2

static const struct cli_option cli_reconcile_opts[] = {
	{ "--provider", "NAME", "the provider the file is from (openai, deepgram, ...)",
	  "provider" },
	{ "--usage-file", "FILE", "the provider's usage file, CSV or JSON (gzip allowed)", NULL },
	{ "--from", "DATE", "start of the billing period, inclusive (YYYY-MM-DD, UTC)", "from" },
	{ "--to", "DATE", "end of the billing period, exclusive (YYYY-MM-DD, UTC)", "to" },
	{ "--tenant", "T", "only our rows of this tenant", "tenant" },
	{ "--project", "P", "only our rows of this project", "project" },
	{ "--threshold-pct", "N", "cost gap, in % of ours, that flags `rate` (default 5)",
	  "threshold_pct" },
	{ "--units-agree-pct", "N", "units gap, in % of ours, that flags `units` (default 1)",
	  "units_agree_pct" },
	{ "--format", "F", "text (default), csv or json (as POST /v1/reconcile)", NULL },
	{ NULL, NULL, NULL, NULL },
};

static const char *const cli_reconcile_keys[] = { CLI_DB_KEYS, "max_inflated_bytes",
						  "reconcile_max_records", "reconcile_max_groups",
						  NULL };

static const struct cli_command cli_reconcile_cmd = {
	.name = "reconcile",
	.synopsis = "--provider NAME --usage-file FILE --from DATE --to DATE\n"
		    "                          [--tenant T] [--project P] [--threshold-pct 5]\n"
		    "                          [--units-agree-pct 1] [--format text|csv|json]",
	.about = "Compares the provider's usage file (one record per model, or per model and\n"
		 "day when it has a date column) with our rows of that provider over [--from,\n"
		 "--to) in UTC days, summed from cost_rollup_hourly. Each line shows both sides'\n"
		 "units and cost, their differences, both implied rates, the pricing_source\n"
		 "values behind our cost and a cause when flagged: coverage (one side lacks the\n"
		 "model), units (units differ by more than --units-agree-pct) or rate (units\n"
		 "agree, cost differs by more than --threshold-pct). Then totals, and a sentence\n"
		 "per flagged line saying what to check. Exit status: 0 nothing flagged, 1\n"
		 "something flagged, 2 bad input or a database error.\n",
	.options = cli_reconcile_opts,
	.config_keys = cli_reconcile_keys,
};

/* Reads path whole (at most max bytes after inflating a gzip file) into out. */
static bool cli_reconcile_read(const char *path, size_t max, struct buf *out, char *err,
			       size_t errlen)
{
	FILE *f = fopen(path, "rb");
	struct buf raw;
	char chunk[65536];
	size_t n;
	bool ok = true;

	if (!f) {
		snprintf(err, errlen, "%s: cannot open: %m", path);
		return false;
	}
	buf_init(&raw, max);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (!buf_append(&raw, chunk, n))
			break;
	if (ferror(f) || raw.over) {
		snprintf(err, errlen,
			 raw.over ? "%s: larger than max_inflated_bytes (%zu)" : "%s: cannot read",
			 path, max);
		ok = false;
	}
	fclose(f);
	if (ok && raw.len >= 2 && (unsigned char)raw.data[0] == 0x1F &&
	    (unsigned char)raw.data[1] == 0x8B) {
		char why[512];

		switch (gz_inflate(raw.data, raw.len, max, out, why, sizeof(why))) {
		case GZ_OK: break;
		case GZ_TOO_BIG:
			snprintf(err, errlen, "%s: inflates past max_inflated_bytes (%zu)", path,
				 max);
			ok = false;
			break;
		case GZ_BAD:
			snprintf(err, errlen, "%s: %s", path, why);
			ok = false;
			break;
		}
	} else if (ok) {
		*out = raw;
		return true;
	}
	buf_release(&raw);
	return ok;
}

/* The text table's columns. */
static bool cli_reconcile_shown(const struct reconcile_report *r, int c)
{
	return reconcile_columns[c].header && (c != RC_DATE || r->per_day);
}

/* Prints the report as an aligned table (text left, numbers right with their
 * decimals aligned), a rule, the totals line, then a sentence per flagged line. */
static bool cli_reconcile_table(const struct reconcile_report *r)
{
	int nrow = r->nlines + 2, frac[RC_NCOLS] = { 0 }, width[RC_NCOLS] = { 0 };
	char **cell = calloc((size_t)nrow * RC_NCOLS, sizeof(char *));
	char tmp[512], t1[40], t2[40];
	struct buf b;
	bool ok = cell != NULL;

	for (int c = 0; ok && c < RC_NCOLS; c++) {
		for (int row = 0; reconcile_columns[c].kind != RC_TEXT && row <= r->nlines; row++) {
			const char *v = reconcile_report_value(r, row, (enum reconcile_col)c);
			const char *dot = v ? strchr(v, '.') : NULL;

			if (dot && (int)strlen(dot + 1) > frac[c])
				frac[c] = (int)strlen(dot + 1);
		}
	}
	for (int row = 0; ok && row < nrow; row++) {
		for (int c = 0; ok && c < RC_NCOLS; c++) {
			const char *v = NULL;

			if (!cli_reconcile_shown(r, c))
				continue;
			buf_init(&b, 0);
			if (row == 0) {
				for (const char *h = reconcile_columns[c].header; *h; h++)
					buf_putc(&b, (char)(*h >= 'a' && *h <= 'z' ? *h - 32 : *h));
			} else if (row == nrow - 1 && c == RC_MODEL) {
				buf_puts(&b, "TOTAL");
			} else {
				v = reconcile_report_value(r, row - 1, (enum reconcile_col)c);
				if (c == RC_MODEL && !v && row < nrow - 1)
					buf_puts(&b, "(no model)");
				else if (!v)
					buf_puts(&b, row < nrow - 1 ? "-" : "");
				else if (reconcile_columns[c].kind == RC_TEXT)
					cli_table_escape(&b, v);
				else {
					cli_table_number(v, frac[c], tmp, sizeof(tmp));
					buf_puts(&b, tmp);
				}
			}
			ok = !b.over && (cell[row * RC_NCOLS + c] = buf_steal(&b, NULL)) != NULL;
			buf_release(&b);
			if (ok && cli_table_width(cell[row * RC_NCOLS + c]) > width[c])
				width[c] = cli_table_width(cell[row * RC_NCOLS + c]);
		}
	}
	if (ok) {
		timefmt_format(r->q->from_us, t1, sizeof(t1));
		timefmt_format(r->q->to_us, t2, sizeof(t2));
		printf("reconcile %s %.10s .. %.10s (UTC, to exclusive)%s%s%s%s, %s: %d line%s, %d "
		       "flagged\n\n",
		       r->q->provider, t1, t2, r->q->tenant ? ", tenant " : "",
		       r->q->tenant ? r->q->tenant : "", r->q->project ? ", project " : "",
		       r->q->project ? r->q->project : "",
		       r->per_day ? "per model and day" : "per model", r->nlines,
		       r->nlines == 1 ? "" : "s", r->flagged);
		for (int row = 0; row < nrow; row++) {
			bool first = true;

			if (row == nrow - 1) {
				int total = -2;

				for (int c = 0; c < RC_NCOLS; c++)
					total += cli_reconcile_shown(r, c) ? width[c] + 2 : 0;
				cli_table_rule(total);
			}
			for (int c = 0; c < RC_NCOLS; c++) {
				if (!cli_reconcile_shown(r, c))
					continue;
				cli_table_cell(cell[row * RC_NCOLS + c], width[c],
					       reconcile_columns[c].kind != RC_TEXT, first);
				first = false;
			}
			putchar('\n');
		}
		if (r->flagged)
			printf("\n%d flagged:\n", r->flagged);
		for (int row = 0; row < r->nlines; row++) {
			if (!reconcile_report_value(r, row, RC_CAUSE))
				continue;
			buf_init(&b, 0);
			buf_printf(&b, "  %s: ", reconcile_report_value(r, row, RC_CAUSE));
			{
				struct buf note;

				buf_init(&note, 0);
				reconcile_report_note(r, row, &note);
				cli_table_escape(&b, note.data ? note.data : "");
				buf_release(&note);
			}
			if (b.data)
				puts(b.data);
			buf_release(&b);
		}
	} else {
		fprintf(stderr, "vgcollector reconcile: out of memory\n");
	}
	for (int i = 0; cell && i < nrow * RC_NCOLS; i++)
		free(cell[i]);
	free(cell);
	return ok;
}

/* Prints the report in the asked format; false when out of memory. */
static bool cli_reconcile_print(const struct reconcile_report *r, const char *format)
{
	struct buf out;
	bool ok;

	if (strcmp(format, "text") == 0)
		return cli_reconcile_table(r);
	buf_init(&out, 0);
	ok = strcmp(format, "csv") == 0 ? reconcile_render_csv(r, &out)
					: reconcile_render_json(r, &out);
	if (ok) {
		fwrite(out.data, 1, out.len, stdout);
		if (strcmp(format, "json") == 0)
			putchar('\n');
	} else {
		fprintf(stderr, "vgcollector reconcile: out of memory\n");
	}
	buf_release(&out);
	return ok;
}

/* The file's format: its extension, else what its text looks like. */
static enum reconcile_format cli_reconcile_format_of(const char *path, const struct buf *text)
{
	size_t n = strlen(path);

	if (n >= 5 && strcmp(path + n - 5, ".json") == 0)
		return RECONCILE_JSON;
	if (n >= 4 && strcmp(path + n - 4, ".csv") == 0)
		return RECONCILE_CSV;
	return reconcile_file_sniff(text->data ? text->data : "", text->len);
}

int cli_reconcile(int argc, char **argv)
{
	struct reconcile_query q;
	struct reconcile_report rep;
	struct reconcile_file f;
	struct reconcile_file_limits lim;
	struct config cfg;
	struct cli_args a;
	struct buf text;
	char err[1024];
	const char *path, *format;
	int rc = cli_parse(&cli_reconcile_cmd, argc, argv, &a), st = 200;
	PGconn *conn;

	if (rc >= 0 || !cli_config_load(&cli_reconcile_cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : CLI_RECONCILE_BAD;
	}
	reconcile_query_init(&q);
	buf_init(&text, 0);
	rc = CLI_RECONCILE_BAD;
	for (int i = 0; st == 200 && i < a.ngiven; i++)
		if (a.given[i].opt->param)
			st = reconcile_query_set(&q, a.given[i].opt->param, a.given[i].value, err,
						 sizeof(err));
	if (st == 200)
		st = reconcile_query_check(&q, err, sizeof(err));
	if (st != 200) {
		/* The messages name API parameters; the flags spell them with dashes. */
		fprintf(stderr, "vgcollector reconcile: %s (see --help)\n", err);
		goto out;
	}
	format = cli_args_value(&a, "--format");
	format = format ? format : "text";
	if (strcmp(format, "text") != 0 && strcmp(format, "csv") != 0 &&
	    strcmp(format, "json") != 0) {
		fprintf(stderr,
			"vgcollector reconcile: --format \"%s\": expected text, csv or json\n",
			format);
		goto out;
	}
	if (!(path = cli_args_value(&a, "--usage-file"))) {
		fprintf(stderr, "vgcollector reconcile: --usage-file: required\n");
		goto out;
	}
	if (!cli_reconcile_read(path, cfg.max_inflated_bytes, &text, err, sizeof(err))) {
		fprintf(stderr, "vgcollector reconcile: %s\n", err);
		goto out;
	}
	lim.max_records = cfg.reconcile_max_records;
	lim.max_groups = cfg.reconcile_max_groups;
	if (reconcile_file_parse(q.provider, text.data ? text.data : "", text.len,
				 cli_reconcile_format_of(path, &text), q.from_us, q.to_us, &lim, &f,
				 err, sizeof(err)) != 200) {
		fprintf(stderr, "vgcollector reconcile: %s: %s\n", path, err);
		goto out;
	}
	if (!(conn = cli_db_connect(&cli_reconcile_cmd, &cfg))) {
		reconcile_file_release(&f);
		goto out;
	}
	st = reconcile_sql_run(conn, &q, &f, &rep, err, sizeof(err));
	reconcile_file_release(&f);
	PQfinish(conn);
	if (st != 200) {
		fprintf(stderr, "vgcollector reconcile: the query failed: %s\n", err);
		goto out;
	}
	if (cli_reconcile_print(&rep, format))
		rc = rep.flagged ? 1 : 0;
	reconcile_report_free(&rep);
out:
	buf_release(&text);
	reconcile_query_free(&q);
	config_free(&cfg);
	cli_args_free(&a);
	return rc;
}
