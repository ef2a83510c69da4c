/* vgcollector: the cost-telemetry collector. One binary, several commands;
 * this file only dispatches them (each is a cli_NAME.c, see cli.h). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *summary;
};

static const struct command commands[] = {
	{ "serve", cli_serve, "run the collector (HTTP ingest and read API)" },
	{ "migrate", cli_migrate, "apply schema migrations to the database" },
	{ "keys", cli_keys, "create, list or revoke API keys" },
	{ "rollup", cli_rollup, "print cost rollups as a table or CSV, from the database" },
	{ "agents", cli_agents, "print the fleet roster: workers, liveness, delivery health" },
	{ "reconcile", cli_reconcile, "compare recorded cost with a provider's usage file" },
	{ "retention", cli_retention, "drop expired cost_rows partitions, create future ones" },
	{ "rollup-fold", cli_rollup_fold,
	  "fold the waiting rollup deltas into the rollup tables now" },
	{ "rollup-daily", cli_rollup_daily, "summarise closed days into the daily rollup now" },
	{ "budgets", cli_budgets, "set, list or remove budgets (spend limits with alerts)" },
	{ "export", cli_export, "write the FOCUS 1.2 cost export of a billing period" },
	{ "periods", cli_periods, "list, close or reopen billing periods (UTC months)" },
	{ "prices", cli_prices,
	  "the price book (import) and the rate card (ls, set, rm, default-markup, plan, sync)" },
	{ "config-sample", cli_config_sample, "print a config file with every key and default" },
	{ NULL, NULL, NULL },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: vgcollector COMMAND [ARGS]   (vgcollector COMMAND --help for more)\n\n"
		   "Commands:\n");
	for (const struct command *c = commands; c->name; c++)
		fprintf(f, "  %-14s %s\n", c->name, c->summary);
	fprintf(f, "\nEvery command reads its settings from the config file (--config FILE, else\n"
		   "$VGC_CONFIG, else " CONFIG_DEFAULT_PATH " if it exists), then\n"
		   "VGC_<KEY> environment variables, then flags. The database is the db key\n"
		   "(--db, $VGC_DB, or db_file); empty uses libpq's PG* defaults. It is a\n"
		   "conninfo string (\"host=/run/pg dbname=vgc\") or a URI (postgresql://...).\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (cli_is_help(argv[1])) {
		usage(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0) {
		printf("vgcollector %s\n", VGC_VERSION);
		return 0;
	}
	for (const struct command *c = commands; c->name; c++)
		if (strcmp(argv[1], c->name) == 0)
			return c->fn(argc - 1, argv + 1);
	fprintf(stderr, "vgcollector: unknown command \"%s\"\n\n", argv[1]);
	usage(stderr);
	return 2;
}
