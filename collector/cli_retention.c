/* `vgcollector retention`: one retention and partition pass from the command
 * line, the same pass `serve` runs every hour. */
#include <libpq-fe.h>
#include <stdio.h>

#include "buf.h"
#include "cli.h"
#include "retention.h"

static const struct cli_option cli_retention_opts[] = {
	{ "--dry-run", NULL, "only print what would be dropped and created", NULL },
	{ NULL, NULL, NULL, NULL },
};

static const char *const cli_retention_keys[] = { CLI_DB_KEYS,
						  "retention_months",
						  "partitions_ahead",
						  "max_row_age_days",
						  "agent_ttl_s",
						  "agent_forget_after_s",
						  NULL };

static const struct cli_command cli_retention_cmd = {
	.name = "retention",
	.synopsis = "[--dry-run] [--config FILE] [--db CONNINFO]\n"
		    "                             [--retention-months N] [--partitions-ahead N]\n"
		    "                             [--max-row-age-days N] [--agent-ttl-s N]\n"
		    "                             [--agent-forget-after-s N]",
	.about = "Drops the monthly cost_rows partitions lying wholly before now minus\n"
		 "retention_months (0 keeps everything), with their ids, and creates the\n"
		 "partitions for this month and partitions_ahead months after it. `serve`\n"
		 "does the same every hour. Only one process works at a time (advisory lock).\n"
		 "Rows older than the newest dropped month are refused by ingest from then on.\n"
		 "retention_months * 28 days must be at least max_row_age_days.\n"
		 "It also forgets roster workers offline for longer than agent_forget_after_s.\n",
	.options = cli_retention_opts,
	.config_keys = cli_retention_keys,
};

int cli_retention(int argc, char **argv)
{
	struct cli_args a;
	struct config cfg;
	struct retention_report rep;
	struct buf out;
	char err[2048];
	PGconn *conn;
	bool dry_run;
	int rc = cli_parse(&cli_retention_cmd, argc, argv, &a);

	if (rc >= 0 || !cli_config_load(&cli_retention_cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : 2;
	}
	dry_run = cli_args_value(&a, "--dry-run") != NULL;
	cli_args_free(&a);
	rc = 1;
	conn = cli_db_connect(&cli_retention_cmd, &cfg);
	if (!conn) {
		config_free(&cfg);
		return 1;
	}
	buf_init(&out, 0);
	if (!retention_run(conn, cfg.retention_months, cfg.partitions_ahead, cfg.agent_ttl_s,
			   cfg.agent_forget_after_s, dry_run, &out, &rep, err, sizeof(err))) {
		fputs(out.data ? out.data : "", stdout);
		fprintf(stderr, "vgcollector retention: %s\n", err);
	} else if (rep.locked_out) {
		fprintf(stderr, "vgcollector retention: another process holds the retention lock;"
				" nothing done\n");
	} else {
		fputs(out.data ? out.data : "", stdout);
		if (dry_run)
			printf("dry run: %d partition%s would be dropped, %d created%s\n",
			       rep.dropped, rep.dropped == 1 ? "" : "s", rep.created,
			       cfg.retention_months ? ""
						    : " (retention_months = 0 keeps everything)");
		else
			printf("%d partition%s dropped with %lld ids, %d created%s\n", rep.dropped,
			       rep.dropped == 1 ? "" : "s", rep.ids_deleted, rep.created,
			       cfg.retention_months ? ""
						    : " (retention_months = 0 keeps everything)");
		rc = 0;
	}
	buf_release(&out);
	PQfinish(conn);
	config_free(&cfg);
	return rc;
}
