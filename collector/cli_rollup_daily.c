/* `vgcollector rollup-daily`: summarises every due closed day into
 * cost_rollup_daily now, the same work `serve` does in the background. */
#include <libpq-fe.h>
#include <stdio.h>

#include "cli.h"
#include "rollup_daily.h"

static const char *const cli_rollup_daily_keys[] = { CLI_DB_KEYS, "rollup_daily_settle_s", NULL };

static const struct cli_command cli_rollup_daily_cmd = {
	.name = "rollup-daily",
	.synopsis = "[--config FILE] [--db CONNINFO] [--rollup-daily-settle-s N]",
	.about = "Recomputes each closed UTC day whose hours were written by anything but\n"
		 "the rollup summariser's fold (which keeps the days in step itself) since it\n"
		 "was last summarised: the days listed in vgc_rollup_dirty_days, each due\n"
		 "once it ended rollup_daily_settle_s ago, from cost_rollup_hourly into\n"
		 "cost_rollup_daily, one day per transaction. `serve` does the same every\n"
		 "rollup_daily_interval_s. Safe next to running collectors: answers stay\n"
		 "exact whether a day is summarised or not.\n",
	.config_keys = cli_rollup_daily_keys,
};

int cli_rollup_daily(int argc, char **argv)
{
	struct cli_args a;
	struct config cfg;
	struct rollup_daily_report rep;
	long long dirty = 0, due = 0;
	char err[2048];
	PGconn *conn;
	int rc = cli_parse(&cli_rollup_daily_cmd, argc, argv, &a);

	if (rc >= 0 || !cli_config_load(&cli_rollup_daily_cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : 2;
	}
	cli_args_free(&a);
	conn = cli_db_connect(&cli_rollup_daily_cmd, &cfg);
	if (!conn) {
		config_free(&cfg);
		return 1;
	}
	rc = 1;
	if (!rollup_daily_run(conn, cfg.rollup_daily_settle_s, &rep, err, sizeof(err)) ||
	    !rollup_daily_pending(conn, cfg.rollup_daily_settle_s, &dirty, &due, err,
				  sizeof(err))) {
		fprintf(stderr, "vgcollector rollup-daily: %s\n", err);
	} else {
		printf("summarised %d day%s (%lld daily groups); %lld day%s still listed, %lld of "
		       "them due%s\n",
		       rep.days, rep.days == 1 ? "" : "s", rep.groups, dirty, dirty == 1 ? "" : "s",
		       due, rep.busy ? " (a due day is being written: run again)" : "");
		rc = 0;
	}
	PQfinish(conn);
	config_free(&cfg);
	return rc;
}
