/* `vgcollector migrate`: applies the schema migrations the database lacks. */
#include <libpq-fe.h>
#include <stdio.h>

#include "cli.h"
#include "migrate.h"

static const char *const cli_migrate_keys[] = { CLI_DB_KEYS, NULL };

static const struct cli_command cli_migrate_cmd = {
	.name = "migrate",
	.synopsis = "[--config FILE] [--db CONNINFO]",
	.about = "Applies every schema migration the database lacks, each in one transaction,\n"
		 "recorded in schema_migrations. Safe to run from several hosts at once.\n",
	.config_keys = cli_migrate_keys,
};

int cli_migrate(int argc, char **argv)
{
	struct cli_args a;
	struct config cfg;
	char err[2048];
	PGconn *conn;
	int applied, rc = cli_parse(&cli_migrate_cmd, argc, argv, &a);

	if (rc >= 0 || !cli_config_load(&cli_migrate_cmd, &a, &cfg)) {
		cli_args_free(&a);
		return rc >= 0 ? rc : 2;
	}
	cli_args_free(&a);
	conn = cli_db_connect(&cli_migrate_cmd, &cfg);
	config_free(&cfg);
	if (!conn)
		return 1;
	if (!migrate_run(conn, &applied, err, sizeof(err))) {
		fprintf(stderr, "vgcollector migrate: %s\n", err);
		PQfinish(conn);
		return 1;
	}
	printf("schema is current: %d migration%s applied, %d known\n", applied,
	       applied == 1 ? "" : "s", migrations_count);
	PQfinish(conn);
	return 0;
}
