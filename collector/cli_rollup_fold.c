/* `vgcollector rollup-fold`: folds every waiting rollup delta into the rollup
 * tables now, the same work `serve` does every rollup_fold_s. */
#include <libpq-fe.h>
#include <stdio.h>

#include "cli.h"
#include "rollup_fold.h"

static const char *const cli_rollup_fold_keys[] = { CLI_DB_KEYS, "rollup_fold_max_deltas", NULL };

static const struct cli_command cli_rollup_fold_cmd = {
	.name = "rollup-fold",
	.synopsis = "[--config FILE] [--db CONNINFO] [--rollup-fold-max-deltas N]",
	.about = "Folds the sums each ingest appended to vgc_rollup_deltas into\n"
		 "cost_rollup_hourly, cost_rollup_daily and the per-tenant summaries, at\n"
		 "most rollup_fold_max_deltas delta rows per transaction, until none are\n"
		 "left. `serve` does the same every rollup_fold_s. Safe next to running\n"
		 "collectors: one summariser folds at a time (this command waits for a fold\n"
		 "in flight to commit), and answers are exact whether the deltas are folded\n"
		 "or not.\n",
	.config_keys = cli_rollup_fold_keys,
};

int cli_rollup_fold(int argc, char **argv)
{
	struct cli_args a;
	struct config cfg;
	struct rollup_fold_report rep;
	long long rows = 0, deltas = 0, groups = 0;
	char err[2048];
	PGconn *conn;
	int rc = cli_parse(&cli_rollup_fold_cmd, argc, argv, &a);

	if (rc >= 0 || !cli_config_load(&cli_rollup_fold_cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : 2;
	}
	cli_args_free(&a);
	conn = cli_db_connect(&cli_rollup_fold_cmd, &cfg);
	if (!conn) {
		config_free(&cfg);
		return 1;
	}
	/* The first fold counts what waits (and stops at once on nothing), the
	 * next ones only fold: a count is a scan of the whole backlog. */
	for (bool first = true;; first = false) {
		if (!rollup_fold_step(conn, cfg.rollup_fold_max_deltas, true, first, &rep, err,
				      sizeof(err))) {
			fprintf(stderr, "vgcollector rollup-fold: %s\n", err);
			PQfinish(conn);
			config_free(&cfg);
			return 1;
		}
		rows += rep.rows;
		deltas += rep.deltas;
		groups += rep.groups;
		if (rep.more == 0)
			break;
	}
	printf("folded %lld cost row%s (%lld delta%s, %lld hourly group%s)\n", rows,
	       rows == 1 ? "" : "s", deltas, deltas == 1 ? "" : "s", groups,
	       groups == 1 ? "" : "s");
	PQfinish(conn);
	config_free(&cfg);
	return 0;
}
